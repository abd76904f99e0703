// fofa/model/backbone.hpp — SasRecBackbone: embeddings, L transformer blocks, final LayerNorm
// and dot-product scoring, run with a per-request block mask and per-request FFNs.
//
// Inputs are item ids (int32, 1..V, oldest first). window() keeps the newest max_len;
// check_items() throws naming the first id outside [1, V]. user_state() computes
// u = H_out[last] running only the blocks with mask[k] = 1; the last executed block computes
// its attention output and FFN for the last row only (earlier rows are not needed).
// Buffers come from a Workspace sized by workspace(); nothing is allocated per request.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <vector>

#include "fofa/layers/transformer_block.hpp"
#include "fofa/model/weights.hpp"

namespace fofa {

// The newest max_len ids of a history (all of it when shorter).
inline std::span<const std::int32_t> newest_window(std::span<const std::int32_t> history, index_t max_len) {
  const std::size_t n = static_cast<std::size_t>(max_len);
  return history.size() > n ? history.subspan(history.size() - n) : history;
}

template <class D = Extent<>, class F = Extent<>>
class SasRecBackbone {
 public:
  using Block = TransformerBlock<D, F>;
  using Ffn = FeedForward<D, F>;

  SasRecBackbone() = default;
  // The embedding tables are used in place (the largest tensors: shared, not copied), so the
  // backbone keeps the weights alive; the blocks pack their own copies.
  SasRecBackbone(const ModelConfig& cfg, std::shared_ptr<const ModelWeights> weights)
      : cfg_(cfg), weights_(std::move(weights)) {
    cfg.validate();
    FOFA_CHECK(weights_ != nullptr, "SasRecBackbone: no weights");
    const ModelWeights& w = *weights_;
    d_ = D(cfg.d);
    f_ = F(cfg.ffn);
    const index_t d = cfg.d;
    item_emb_ = &w.get("item_emb.weight", {cfg.items + 1, d});
    pos_emb_ = &w.get("pos_emb.weight", {cfg.max_len, d});
    if (cfg.input_ln) input_ln_ = LayerNorm<D>(w.get("input_ln.weight", {d}), w.get("input_ln.bias", {d}), cfg.eps);
    if (cfg.final_ln) final_ln_ = LayerNorm<D>(w.get("final_ln.weight", {d}), w.get("final_ln.bias", {d}), cfg.eps);
    blocks_.reserve(static_cast<std::size_t>(cfg.blocks));
    for (index_t k = 0; k < cfg.blocks; ++k) {
      auto t = [&](const char* rest) -> TensorView<const float> { return w.get(block_name(k, rest)).view(); };
      LayerNorm<D> ln1(t("ln1.weight"), t("ln1.bias"), cfg.eps), ln2(t("ln2.weight"), t("ln2.bias"), cfg.eps);
      MultiHeadAttention<D> attn(t("attn.q.weight"), t("attn.q.bias"), t("attn.k.weight"), t("attn.k.bias"),
                                 t("attn.v.weight"), t("attn.v.bias"), t("attn.out.weight"), t("attn.out.bias"),
                                 cfg.heads);
      Ffn ffn(t("ffn.w1.weight"), t("ffn.w1.bias"), t("ffn.w2.weight"), t("ffn.w2.bias"), cfg.activation);
      blocks_.emplace_back(cfg.norm, std::move(ln1), std::move(attn), std::move(ln2), std::move(ffn));
    }
  }

  const ModelConfig& config() const { return cfg_; }
  index_t dim() const { return static_cast<index_t>(d_); }
  const Tensor<float>& item_emb() const { return *item_emb_; }
  const Tensor<float>& pos_emb() const { return *pos_emb_; }
  const std::vector<Block>& blocks() const { return blocks_; }
  const LayerNorm<D>& final_ln() const { return final_ln_; }
  const LayerNorm<D>& input_ln() const { return input_ln_; }

  // Throws naming the first id outside [1, V]; `what` says which list it came from.
  void check_items(std::span<const std::int32_t> ids, const char* what) const {
    for (std::int32_t id : ids)
      FOFA_CHECK(id >= 1 && id <= cfg_.items, what, " item id ", id, " is outside [1, ", cfg_.items, "]");
  }

  // Rows the blocks run on for a window of t items.
  index_t rows_for(index_t t) const { return cfg_.padding == Padding::none ? t : cfg_.max_len; }

  static WorkspacePlan workspace(const ModelConfig& cfg) {
    const index_t n = cfg.max_len, d = cfg.d;
    WorkspacePlan p;
    p.add<float>(n * d).add<float>(n * 2 * d);  // X, K|V
    p.add<float>(n * d);                        // embedding before input_ln
    p.add(Block::workspace(n, n, d, cfg.ffn));
    return p;
  }

  // x0[t, d] = E[s_i] * scale + P[pos(i)] (then input_ln) for a window of t <= max_len items
  // whose ids were checked. These are the real rows the controller and mapper read.
  void embed(std::span<const std::int32_t> window, float* x0, index_t ldx, Workspace& ws) const {
    const std::size_t mark = ws.used();
    const index_t t = static_cast<index_t>(window.size()), d = dim(), n = cfg_.max_len;
    FOFA_CHECK(t >= 1 && t <= n, "embed: window of ", t, " items, max_len ", n);
    const float scale = cfg_.emb_scale == EmbScale::sqrt_d ? std::sqrt(static_cast<float>(d)) : 1.0f;
    const index_t first_pos = cfg_.positions == Positions::start ? 0 : n - t;
    const auto& k = kernels::kernels();
    float* dst = x0;
    index_t ldd = ldx;
    if (cfg_.input_ln) {
      dst = ws.take<float>(t * d);
      ldd = d;
    }
    k.gather_rows(t, d, item_emb_->data(), d, window.data(), scale, pos_emb_->data() + first_pos * d, d, dst, ldd);
    if (cfg_.input_ln) input_ln_.forward(t, dst, d, x0, ldx);
    ws.rewind(mark);
  }

  // u[d] = H_out of the newest row, running block k iff mask[k]; ffn[k] is the FFN block k runs
  // (ignored where mask[k] = 0). `window` must hold 1..max_len checked ids.
  void user_state(std::span<const std::int32_t> window, std::span<const std::uint8_t> mask,
                  std::span<const Ffn* const> ffn, float* u, Workspace& ws) const {
    const index_t L = cfg_.blocks;
    FOFA_CHECK(static_cast<index_t>(mask.size()) == L && static_cast<index_t>(ffn.size()) == L,
               "user_state: mask of ", mask.size(), " and ", ffn.size(), " FFNs for ", L, " blocks");
    const std::size_t mark = ws.used();
    const index_t t = static_cast<index_t>(window.size()), d = dim();
    const index_t R = rows_for(t), pad = R - t;
    float* x = ws.take<float>(R * d);
    float* kv = ws.take<float>(R * 2 * d);
    std::memset(x, 0, static_cast<std::size_t>(pad * d) * sizeof(float));
    embed(window, x + pad * d, d, ws);
    index_t last = -1;
    for (index_t k = 0; k < L; ++k)
      if (mask[static_cast<std::size_t>(k)]) last = k;
    for (index_t k = 0; k <= last; ++k) {
      if (!mask[static_cast<std::size_t>(k)]) continue;
      const Ffn* f = ffn[static_cast<std::size_t>(k)];
      FOFA_CHECK(f != nullptr, "user_state: no FFN for kept block ", k);
      blocks_[static_cast<std::size_t>(k)].forward(R, 0, k == last ? R - 1 : 0, x, d, kv, 2 * d, *f, ws);
      // pmixer zeroes padded rows after every block; they feed the next block's keys.
      if (pad > 0 && k != last) std::memset(x, 0, static_cast<std::size_t>(pad * d) * sizeof(float));
    }
    const float* row = x + (R - 1) * d;
    if (cfg_.final_ln)
      final_ln_.forward(1, row, d, u, d);
    else
      std::memcpy(u, row, static_cast<std::size_t>(d) * sizeof(float));
    ws.rewind(mark);
  }

  // out[j] = <u, E[candidates[j]]> for checked ids.
  void score(const float* u, std::span<const std::int32_t> candidates, std::span<float> out) const {
    FOFA_CHECK(out.size() == candidates.size(), "score: ", out.size(), " outputs for ", candidates.size(),
               " candidates");
    const auto& k = kernels::kernels();
    const index_t d = dim();
    for (std::size_t j = 0; j < candidates.size(); ++j)
      k.dot_rows(1, d, u, item_emb_->data() + static_cast<index_t>(candidates[j]) * d, d, &out[j]);
  }

 private:
  ModelConfig cfg_;
  D d_{};
  F f_{};
  std::shared_ptr<const ModelWeights> weights_;
  const Tensor<float>* item_emb_ = nullptr;  // [V+1, d] inside *weights_
  const Tensor<float>* pos_emb_ = nullptr;   // [n, d] inside *weights_
  LayerNorm<D> input_ln_, final_ln_;
  std::vector<Block> blocks_;
};

}  // namespace fofa
