// fofa/model/device_model.hpp — the device side of Forward-OFA: DeviceModel (immutable, the
// sub-model of one session) and DeviceSession (one user's mutable state: history, K/V caches,
// workspace). No back-propagation, no controller, no mapper: only the kept blocks with the
// weights the cloud materialised, P, the final LayerNorm and the session's embedding rows.
//
//   DeviceModel model = fofa::io::load_device("session.fofa");   // io/device_file.hpp
//   DeviceSession s(model);                  // runs the file's history through the kept blocks
//   RankingView r = s.rerank();              // the file's candidates, best first (model.rerank()
//                                            // does the same with a temporary session)
//   s.push(r.items[0]);                      // a click: with start positions, one new row per
//   r = s.rerank();                          // kept block, reusing cached keys/values
//
// Rules:
//   - A DeviceModel is immutable and cheap to copy (shared); share it between threads, give each
//     thread its own DeviceSession. A session keeps the model's storage alive.
//   - rerank(): every candidate must be one of the file's candidates, else fofa::Error naming the
//     id; an empty list gives an empty ranking; duplicates are scored independently; equal scores
//     keep the given order; a non-finite score is an error naming the candidate (as is a non-finite
//     user state in reset/push). The returned views are valid until the session's next call.
//   - push(item): the item must have an embedding row in the file (a candidate or a history item).
//     With positions "start" and padding "none", while the window holds < max_len items only the new
//     row is computed (K/V of earlier rows are cached per kept block). When the window is full, the
//     oldest item is dropped and the newest max_len are recomputed from scratch (positions shift).
//     Positions "end" or padding "left_window" shift every row on each push: always recomputed.
//   - reset(history) recomputes from a new history (1..any items, the newest max_len are kept).
//   - After construction a session allocates nothing on the heap in reset/push/rerank, as long as
//     a rerank passes at most as many candidates as the file holds (longer lists grow buffers once).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "fofa/layers/transformer_block.hpp"
#include "fofa/model/backbone.hpp"
#include "fofa/model/config.hpp"
#include "fofa/model/plan.hpp"
#include "fofa/model/weights.hpp"

namespace fofa {

// The tensors of one kept block, concatenated in this order into the device file's "blocks.k"
// (one tensor per block keeps the header small). The gate is present when the mapper is on.
inline std::vector<TensorSpec> device_block_layout(const ModelConfig& cfg) {
  const index_t d = cfg.d, f = cfg.ffn;
  std::vector<TensorSpec> s = {{"ln1.weight", {d}},     {"ln1.bias", {d}},        {"attn.q.weight", {d, d}},
                               {"attn.q.bias", {d}},    {"attn.k.weight", {d, d}}, {"attn.k.bias", {d}},
                               {"attn.v.weight", {d, d}}, {"attn.v.bias", {d}},    {"attn.out.weight", {d, d}},
                               {"attn.out.bias", {d}},  {"ln2.weight", {d}},       {"ln2.bias", {d}},
                               {"ffn.w1.weight", {f, d}}, {"ffn.w1.bias", {f}},    {"ffn.w2.weight", {d, f}},
                               {"ffn.w2.bias", {d}}};
  if (cfg.mapper_on()) s.push_back({"ffn.gate", {d}});
  return s;
}

inline index_t device_block_floats(const ModelConfig& cfg) {
  index_t n = 0;
  for (const TensorSpec& s : device_block_layout(cfg)) n += s.shape.numel();
  return n;
}

// What a device file holds, as views into storage that `storage` keeps alive (io fills it).
struct DeviceContents {
  ModelConfig config;
  std::vector<index_t> kept;  // ascending block indices of the full model
  std::vector<float> pi;      // [L] controller distribution (informational), may be empty
  float budget = 1.0f;
  TensorView<const float> pos_emb;                     // [n, d]
  TensorView<const float> input_ln_weight, input_ln_bias;  // [d] when config.input_ln
  TensorView<const float> final_ln_weight, final_ln_bias;  // [d] when config.final_ln
  std::vector<TensorView<const float>> blocks;         // per kept block: [device_block_floats]
  TensorView<const std::int32_t> item_ids;             // [m], strictly ascending, in [1, V]
  TensorView<const float> item_emb;                    // [m, d]: E rows of item_ids
  TensorView<const std::int32_t> history;              // [t], 1 <= t <= n: the session's window
  TensorView<const std::int32_t> candidates;           // [c]: the session's candidate list
  std::shared_ptr<const void> storage;
};

// A ranking computed by a session; views into the session's buffers.
struct RankingView {
  std::span<const index_t> order;        // positions in the candidate list, best first
  std::span<const std::int32_t> items;   // ids, best first
  std::span<const float> scores;         // logits in the given candidate order
};

template <class D, class F>
class DeviceSessionT;

template <class D = Extent<>, class F = Extent<>>
class DeviceModelT {
 public:
  using Block = TransformerBlock<D, F>;

  DeviceModelT() = default;
  // Validates everything (shapes, ids, finite weights) and builds the kept blocks.
  explicit DeviceModelT(const DeviceContents& c) {
    auto im = std::make_shared<Impl>();
    build(*im, c);
    impl_ = std::move(im);
  }

  const ModelConfig& config() const { return impl().cfg; }
  std::span<const index_t> kept() const { return impl().kept; }
  std::span<const float> pi() const { return impl().pi; }
  float budget() const { return impl().budget; }
  std::span<const std::int32_t> history() const { return span_of(impl().history); }
  std::span<const std::int32_t> candidates() const { return span_of(impl().candidates); }
  std::span<const std::int32_t> item_ids() const { return span_of(impl().item_ids); }
  // FLOPs of one full request: sum of c_k over the kept blocks (docs/DESIGN.md cost model).
  double flops() const { return impl().cfg.block_flops() * static_cast<double>(impl().kept.size()); }
  // Row of `id` in the embedding table, or -1.
  index_t row_of(std::int32_t id) const {
    const auto ids = item_ids();
    const auto it = std::lower_bound(ids.begin(), ids.end(), id);
    return it != ids.end() && *it == id ? static_cast<index_t>(it - ids.begin()) : -1;
  }
  bool is_candidate(std::int32_t id) const {
    const index_t r = row_of(id);
    return r >= 0 && impl().candidate_row[static_cast<std::size_t>(r)] != 0;
  }
  // One-shot rerank over the file's history with a temporary session (allocates; keep a
  // DeviceSession for repeated requests and clicks).
  Ranking rerank(std::span<const std::int32_t> candidates) const;
  Ranking rerank() const { return rerank(candidates()); }
  // True when push() extends the K/V caches instead of recomputing (start positions, no padding).
  bool incremental_push() const {
    return impl().cfg.positions == Positions::start && impl().cfg.padding == Padding::none;
  }

  // The work buffers of one session: X, one block's scratch, and the input LayerNorm's input.
  WorkspacePlan workspace_plan() const {
    const ModelConfig& c = impl().cfg;
    const index_t n = c.max_len, d = c.d;
    WorkspacePlan p;
    p.add<float>(n * d).add<float>(n * d);
    p.add(Block::workspace(n, n, d, c.ffn));
    return p;
  }
  // Bytes one session allocates: K/V caches of every kept block, workspace, state and outputs.
  std::size_t session_bytes() const {
    const ModelConfig& c = impl().cfg;
    const index_t n = c.max_len, d = c.d, kept = static_cast<index_t>(impl().kept.size());
    const index_t cands = impl().candidates.numel();
    WorkspacePlan p = workspace_plan();
    p.add<float>(std::max<index_t>(kept, 1) * n * 2 * d).add<float>(d);
    p.add<std::int32_t>(n).add<std::int32_t>(n);
    p.add<float>(cands).add<index_t>(cands).add<std::int32_t>(cands);
    return p.bytes();
  }

 private:
  friend class DeviceSessionT<D, F>;

  struct Impl {
    ModelConfig cfg;
    std::vector<index_t> kept;
    std::vector<float> pi;
    float budget = 1.0f;
    std::vector<Block> blocks;
    LayerNorm<D> input_ln, final_ln;
    TensorView<const float> pos_emb, item_emb;
    TensorView<const std::int32_t> item_ids, history, candidates;
    std::vector<std::uint8_t> candidate_row;  // per embedding row: 1 if a candidate
    float emb_scale = 1.0f;
    std::shared_ptr<const void> storage;
  };

  static std::span<const std::int32_t> span_of(const TensorView<const std::int32_t>& v) {
    return {v.data(), static_cast<std::size_t>(v.numel())};
  }
  static void check_finite(const char* what, TensorView<const float> v) {
    FOFA_CHECK(v.data() != nullptr || v.numel() == 0, "device file: tensor ", what, " is missing");
    for (index_t i = 0; i < v.numel(); ++i)
      FOFA_CHECK(std::isfinite(v.data()[i]), "device file: tensor ", what, " has a non-finite value at flat index ",
                 i);
  }

  static void build(Impl& im, const DeviceContents& c) {
    const ModelConfig& cfg = c.config;
    cfg.validate();
    im.cfg = cfg;
    const index_t d = cfg.d, n = cfg.max_len, L = cfg.blocks;
    FOFA_CHECK(std::isfinite(c.budget) && c.budget > 0.0f && c.budget <= 1.0f, "device file: budget ", c.budget,
               " is not in (0, 1]");
    im.budget = c.budget;
    FOFA_CHECK(c.pi.empty() || static_cast<index_t>(c.pi.size()) == L, "device file: pi has ", c.pi.size(),
               " entries for ", L, " blocks");
    for (float p : c.pi) FOFA_CHECK(std::isfinite(p) && p >= 0.0f && p <= 1.0f, "device file: pi value ", p);
    im.pi = c.pi;
    FOFA_CHECK(c.kept.size() == c.blocks.size(), "device file: ", c.kept.size(), " kept blocks but ",
               c.blocks.size(), " block tensors");
    for (std::size_t i = 0; i < c.kept.size(); ++i) {
      FOFA_CHECK(c.kept[i] >= 0 && c.kept[i] < L, "device file: kept block ", c.kept[i], " outside [0, ", L, ")");
      FOFA_CHECK(i == 0 || c.kept[i] > c.kept[i - 1], "device file: kept blocks are not strictly ascending");
    }
    FOFA_CHECK(!c.kept.empty() || cfg.controller.min_blocks == 0, "device file: no kept block but min_blocks = ",
               cfg.controller.min_blocks);
    im.kept = c.kept;

    check_shape("device pos_emb.weight", c.pos_emb.shape(), {n, d});
    check_finite("pos_emb.weight", c.pos_emb);
    im.pos_emb = c.pos_emb;
    if (cfg.input_ln) {
      check_finite("input_ln.weight", c.input_ln_weight);
      check_finite("input_ln.bias", c.input_ln_bias);
      im.input_ln = LayerNorm<D>(c.input_ln_weight, c.input_ln_bias, cfg.eps);
      check_shape("device input_ln.weight", c.input_ln_weight.shape(), {d});
    }
    if (cfg.final_ln) {
      check_finite("final_ln.weight", c.final_ln_weight);
      check_finite("final_ln.bias", c.final_ln_bias);
      im.final_ln = LayerNorm<D>(c.final_ln_weight, c.final_ln_bias, cfg.eps);
      check_shape("device final_ln.weight", c.final_ln_weight.shape(), {d});
    }

    const std::vector<TensorSpec> layout = device_block_layout(cfg);
    const index_t block_floats = device_block_floats(cfg);
    im.blocks.reserve(c.kept.size());
    for (std::size_t i = 0; i < c.kept.size(); ++i) {
      const std::string name = "blocks." + std::to_string(c.kept[i]);
      check_shape(name.c_str(), c.blocks[i].shape(), {block_floats});
      check_finite(name.c_str(), c.blocks[i]);
      std::vector<TensorView<const float>> part;
      const float* p = c.blocks[i].data();
      for (const TensorSpec& s : layout) {
        part.emplace_back(p, s.shape);
        p += s.shape.numel();
      }
      const float* gate = cfg.mapper_on() ? part[16].data() : nullptr;
      LayerNorm<D> ln1(part[0], part[1], cfg.eps), ln2(part[10], part[11], cfg.eps);
      MultiHeadAttention<D> attn(part[2], part[3], part[4], part[5], part[6], part[7], part[8], part[9], cfg.heads);
      FeedForward<D, F> ffn(part[12], part[13], part[14], part[15], cfg.activation, gate);
      im.blocks.emplace_back(cfg.norm, std::move(ln1), std::move(attn), std::move(ln2), std::move(ffn));
    }

    FOFA_CHECK(c.item_ids.rank() == 1, "device file: items.ids must be 1-D, got ", c.item_ids.shape().str());
    const index_t m = c.item_ids.numel();
    check_shape("device items.emb", c.item_emb.shape(), {m, d});
    check_finite("items.emb", c.item_emb);
    for (index_t i = 0; i < m; ++i) {
      const std::int32_t id = c.item_ids.data()[i];
      FOFA_CHECK(id >= 1 && id <= cfg.items, "device file: item id ", id, " outside [1, ", cfg.items, "]");
      FOFA_CHECK(i == 0 || id > c.item_ids.data()[i - 1], "device file: items.ids not strictly ascending at ", i);
    }
    im.item_ids = c.item_ids;
    im.item_emb = c.item_emb;
    im.emb_scale = cfg.emb_scale == EmbScale::sqrt_d ? std::sqrt(static_cast<float>(d)) : 1.0f;
    im.storage = c.storage;

    // Ids are validated through a temporary model view of the table.
    auto row_of = [&](std::int32_t id) {
      const std::int32_t* b = c.item_ids.data();
      const std::int32_t* e = b + m;
      const std::int32_t* it = std::lower_bound(b, e, id);
      return it != e && *it == id ? static_cast<index_t>(it - b) : index_t{-1};
    };
    FOFA_CHECK(c.history.rank() == 1 && c.history.numel() >= 1 && c.history.numel() <= n,
               "device file: session.history must hold 1..", n, " items, got shape ", c.history.shape().str());
    for (index_t i = 0; i < c.history.numel(); ++i)
      FOFA_CHECK(row_of(c.history.data()[i]) >= 0, "device file: history item ", c.history.data()[i],
                 " has no embedding row");
    FOFA_CHECK(c.candidates.rank() == 1, "device file: session.candidates must be 1-D");
    im.candidate_row.assign(static_cast<std::size_t>(m), 0);
    for (index_t i = 0; i < c.candidates.numel(); ++i) {
      const index_t r = row_of(c.candidates.data()[i]);
      FOFA_CHECK(r >= 0, "device file: candidate item ", c.candidates.data()[i], " has no embedding row");
      im.candidate_row[static_cast<std::size_t>(r)] = 1;
    }
    im.history = c.history;
    im.candidates = c.candidates;
  }

  const Impl& impl() const {
    FOFA_CHECK(impl_ != nullptr, "use of an empty DeviceModel");
    return *impl_;
  }

  std::shared_ptr<const Impl> impl_;
};

// One user's state on the device; not thread-safe itself (one per thread), cheap to reset.
template <class D = Extent<>, class F = Extent<>>
class DeviceSessionT {
 public:
  using Model = DeviceModelT<D, F>;

  // Allocates every buffer the session will need and runs the file's history.
  explicit DeviceSessionT(Model model) : model_(std::move(model)) {
    const auto& im = model_.impl();
    const index_t n = im.cfg.max_len, d = im.cfg.d;
    const index_t kept = static_cast<index_t>(im.kept.size());
    kv_.resize(std::max<index_t>(kept, 1) * n * 2 * d);
    u_.resize(d);
    ws_ = Workspace(model_.workspace_plan());
    ids_.assign(static_cast<std::size_t>(n), 0);
    rows_.assign(static_cast<std::size_t>(n), 0);
    const std::size_t c = static_cast<std::size_t>(im.candidates.numel());
    scores_.reserve(c);
    order_.reserve(c);
    items_.reserve(c);
    reset(model_.history());
  }

  const Model& model() const { return model_; }
  std::span<const std::int32_t> history() const { return {ids_.data(), static_cast<std::size_t>(t_)}; }
  std::span<const float> user_state() const { return {u_.data(), static_cast<std::size_t>(u_.size())}; }
  // Rows the last reset()/push() ran through the kept blocks (1 for a cached push).
  index_t last_update_rows() const { return last_rows_; }

  // Recomputes the state from `history` (newest max_len kept); ids need embedding rows in the file.
  void reset(std::span<const std::int32_t> history) {
    FOFA_CHECK(!history.empty(), "device: empty history: SASRec needs at least one item");
    const auto& im = model_.impl();
    for (std::int32_t id : history) row_checked(id, "history");
    const auto window = newest_window(history, im.cfg.max_len);
    t_ = static_cast<index_t>(window.size());
    for (index_t i = 0; i < t_; ++i) {
      ids_[static_cast<std::size_t>(i)] = window[static_cast<std::size_t>(i)];
      rows_[static_cast<std::size_t>(i)] = static_cast<std::int32_t>(model_.row_of(window[static_cast<std::size_t>(i)]));
    }
    recompute();
  }

  // Appends a click (see the rules at the top of this file).
  void push(std::int32_t item) {
    const auto& im = model_.impl();
    const std::int32_t row = static_cast<std::int32_t>(row_checked(item, "pushed"));
    const index_t n = im.cfg.max_len;
    if (t_ == n) {  // window full: drop the oldest, recompute the newest n
      std::memmove(ids_.data(), ids_.data() + 1, static_cast<std::size_t>(n - 1) * sizeof(std::int32_t));
      std::memmove(rows_.data(), rows_.data() + 1, static_cast<std::size_t>(n - 1) * sizeof(std::int32_t));
      ids_[static_cast<std::size_t>(n - 1)] = item;
      rows_[static_cast<std::size_t>(n - 1)] = row;
      recompute();
      return;
    }
    ids_[static_cast<std::size_t>(t_)] = item;
    rows_[static_cast<std::size_t>(t_)] = row;
    ++t_;
    if (!model_.incremental_push()) {
      recompute();
      return;
    }
    // Only the new row: embed at position t-1, run it through each kept block over the cache.
    const index_t d = im.cfg.d, pos = t_ - 1;
    ws_.rewind();
    float* x = ws_.take<float>(d);
    embed(1, &rows_[static_cast<std::size_t>(pos)], pos, x);
    for (std::size_t j = 0; j < im.blocks.size(); ++j)
      im.blocks[j].forward(1, pos, 0, x, d, kv(j), 2 * d, im.blocks[j].ffn(), ws_);
    finish(x);
    last_rows_ = 1;
  }

  // Scores and sorts `candidates` (each must be one of the file's candidates).
  RankingView rerank(std::span<const std::int32_t> candidates) {
    const auto& im = model_.impl();
    const index_t d = im.cfg.d;
    const std::size_t c = candidates.size();
    for (std::int32_t id : candidates) {
      const index_t r = model_.row_of(id);
      FOFA_CHECK(r >= 0 && im.candidate_row[static_cast<std::size_t>(r)],
                 "device: candidate item ", id, " is not among this device file's candidates");
    }
    scores_.resize(c);
    order_.resize(c);
    items_.resize(c);
    const auto& k = kernels::kernels();
    for (std::size_t j = 0; j < c; ++j) {
      const index_t r = model_.row_of(candidates[j]);
      k.dot_rows(1, d, u_.data(), im.item_emb.data() + r * d, d, &scores_[j]);
      order_[j] = static_cast<index_t>(j);
    }
    check_finite_scores(scores_, candidates, "device: ");
    // Highest score first; equal scores keep the given order (a strict total order: no allocation).
    std::sort(order_.begin(), order_.end(), [&](index_t a, index_t b) {
      const float sa = scores_[static_cast<std::size_t>(a)], sb = scores_[static_cast<std::size_t>(b)];
      return sa > sb || (sa == sb && a < b);
    });
    for (std::size_t j = 0; j < c; ++j) items_[j] = candidates[static_cast<std::size_t>(order_[j])];
    return {order_, items_, scores_};
  }
  RankingView rerank() { return rerank(model_.candidates()); }

 private:
  index_t row_checked(std::int32_t id, const char* what) const {
    const index_t r = model_.row_of(id);
    FOFA_CHECK(r >= 0, "device: ", what, " item ", id, " has no embedding row in this device file");
    return r;
  }
  float* kv(std::size_t j) {
    const auto& c = model_.impl().cfg;
    return kv_.data() + static_cast<index_t>(j) * c.max_len * 2 * c.d;
  }

  // x[rows, d] = E[row] * scale + P[first_pos + i] (then input LN), rows taken from the table.
  void embed(index_t rows, const std::int32_t* table_rows, index_t first_pos, float* x) {
    const auto& im = model_.impl();
    const index_t d = im.cfg.d;
    const auto& k = kernels::kernels();
    if (!im.cfg.input_ln) {
      k.gather_rows(rows, d, im.item_emb.data(), d, table_rows, im.emb_scale, im.pos_emb.data() + first_pos * d, d,
                    x, d);
      return;
    }
    const std::size_t mark = ws_.used();
    float* e = ws_.take<float>(rows * d);
    k.gather_rows(rows, d, im.item_emb.data(), d, table_rows, im.emb_scale, im.pos_emb.data() + first_pos * d, d, e,
                  d);
    im.input_ln.forward(rows, e, d, x, d);
    ws_.rewind(mark);
  }

  // Runs the whole window through the kept blocks, refilling every cache.
  void recompute() {
    const auto& im = model_.impl();
    const index_t d = im.cfg.d, n = im.cfg.max_len;
    const index_t R = im.cfg.padding == Padding::none ? t_ : n, pad = R - t_;
    const index_t first_pos = im.cfg.positions == Positions::start ? 0 : n - t_;
    ws_.rewind();
    float* x = ws_.take<float>(R * d);
    std::memset(x, 0, static_cast<std::size_t>(pad * d) * sizeof(float));
    embed(t_, rows_.data(), first_pos, x + pad * d);
    const std::size_t last = im.blocks.size() - 1;
    for (std::size_t j = 0; j < im.blocks.size(); ++j) {
      // Only the newest row of the last block is needed; its K/V still cover every row.
      im.blocks[j].forward(R, 0, j == last ? R - 1 : 0, x, d, kv(j), 2 * d, im.blocks[j].ffn(), ws_);
      // pmixer zeroes padded rows after every block; they feed the next block's keys.
      if (pad > 0 && j != last) std::memset(x, 0, static_cast<std::size_t>(pad * d) * sizeof(float));
    }
    finish(x + (R - 1) * d);
    last_rows_ = R;
  }

  // u = LNf(newest row); a non-finite state would rank garbage, so it is an error (plan.hpp).
  void finish(const float* row) {
    const auto& im = model_.impl();
    const index_t d = im.cfg.d;
    if (im.cfg.final_ln)
      im.final_ln.forward(1, row, d, u_.data(), d);
    else
      std::memcpy(u_.data(), row, static_cast<std::size_t>(d) * sizeof(float));
    check_finite(user_state(), "user state", "device: ");
  }

  Model model_;
  AlignedBuffer<float> kv_, u_;
  Workspace ws_;
  std::vector<std::int32_t> ids_, rows_;
  index_t t_ = 0, last_rows_ = 0;
  std::vector<float> scores_;
  std::vector<index_t> order_;
  std::vector<std::int32_t> items_;
};

template <class D, class F>
Ranking DeviceModelT<D, F>::rerank(std::span<const std::int32_t> candidates) const {
  DeviceSessionT<D, F> session(*this);
  const RankingView r = session.rerank(candidates);
  Ranking out;
  out.order.assign(r.order.begin(), r.order.end());
  out.items.assign(r.items.begin(), r.items.end());
  out.scores.assign(r.scores.begin(), r.scores.end());
  return out;
}

using DeviceModel = DeviceModelT<>;
using DeviceSession = DeviceSessionT<>;

}  // namespace fofa
