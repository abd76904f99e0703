// fofa/train/model_graph.hpp — the differentiable Forward-OFA graph used for training.
//
// TrainableModel<T> owns a ParamSet whose names and shapes are exactly expected_tensors(config)
// (docs/DESIGN.md), so a trained set converts losslessly to ModelWeights / a .fofa file and back.
// forward_loss() records one training sample on a Tape (SPEC section 6): backbone on the input
// rows, controller (mean extractor, straight-through Gumbel-sigmoid mask m) and mapper (low-rank
// or full generated FFN weights, gate g) reading the first t0 rows of X0, every block computed and
// mixed as X = m_k * Block_k(X) + (1 - m_k) * X so the mask receives a gradient, BCE on rows
// loss_begin.. with the given positive and negative items, and the sparsity and budget-hinge terms.
// The low-rank correction is applied as x W1^T + (x U1) V1, the same product as
// x (W1 + (U1 V1)^T)^T without materialising the user's matrix. backward_batch() is the trainer's
// path: the same gradients for a group of samples, with the mapper heads run as one GEMM per head.
// Dropout masks are hashes of keys drawn from a per-sample stream (dropout_seed), so both paths
// draw the same masks.
// forward_scores() is the evaluation path: deterministic mask pi > 0.5 with the budget rule of
// DESIGN, no dropout, u = H_out[t - 1], logits <u, E[c]>.
// Not supported in training (fofa::Error): padding "left_window" and the GRU extractor.
#pragma once

#include <array>
#include <cmath>
#include <span>
#include <string>
#include <vector>

#include "fofa/autograd/ops.hpp"
#include "fofa/model/init.hpp"
#include "fofa/model/plan.hpp"
#include "fofa/model/weights.hpp"
#include "fofa/train/random.hpp"

namespace fofa::train {

using autograd::GradSet;
using autograd::ParamSet;
using autograd::Tape;
using autograd::Var;

// One training example, already sampled (so threads only compute).
struct TrainSample {
  std::vector<std::int32_t> input;      // t item ids, oldest first (1 <= t <= max_len)
  std::vector<std::int32_t> positives;  // rows loss_begin..t-1: the next item of each row
  std::vector<std::int32_t> negatives;  // (t - loss_begin) * negatives_per_row ids, row-major
  index_t prefix = 1;                   // t0: rows the controller and mapper read (1..t)
  index_t loss_begin = 0;               // first row with a loss
  double budget = 1.0;                  // b in (0, 1]
  std::vector<double> noise;            // L logistic samples for the Gumbel-sigmoid
  std::uint64_t dropout_seed = 0;
};

// Per-sample loss weights; the trainer sets them so the batch loss is SPEC 6's means.
struct LossWeights {
  double positive = 1, negative = 1;  // multiply sum BCE over the sample's positive / negative logits
  double sparsity = 0, hinge = 0;     // lambda / B and mu / B
};

struct TrainOptions {
  double dropout = 0.0;
  double tau = 1.0;       // Gumbel-sigmoid temperature
  bool hard_mask = true;  // false: forward uses the soft relaxation (finite-difference checks)
};

// What one sample's forward produced (for logging and statistics).
struct SampleStats {
  double loss = 0, bce = 0, flops_fraction = 1;
  std::vector<double> mask, pi;
};

template <class T>
class TrainableModel {
 public:
  explicit TrainableModel(const ModelConfig& cfg) : cfg_(cfg) {
    cfg.validate();
    FOFA_CHECK(cfg.padding == Padding::none, "training supports padding \"none\" only, got \"", to_string(cfg.padding),
               "\"");
    FOFA_CHECK(!cfg.controller.enabled || cfg.controller.extractor == ExtractorKind::mean,
               "training supports the mean controller extractor only (gru is inference-only for now)");
    for (const TensorSpec& s : expected_tensors(cfg)) params_.add(s.name, s.shape, s.name == "item_emb.weight");
    item_emb_ = params_.find("item_emb.weight");
    index_block_params();
  }

  // Seeded initialisation (model/init.hpp: the same init the inference tests use).
  void init(std::uint64_t seed, InitOptions opt = {}) { load(random_weights(cfg_, seed, opt)); }

  void load(const ModelWeights& w) {
    check_weights(cfg_, w);
    for (auto& p : params_) {
      const Tensor<float>& t = w.get(p.name, p.shape);
      for (index_t i = 0; i < t.numel(); ++i) p.value[static_cast<std::size_t>(i)] = static_cast<T>(t[i]);
    }
  }
  ModelWeights weights() const {
    ModelWeights w;
    for (const auto& p : params_) {
      Tensor<float> t(p.shape);
      for (index_t i = 0; i < t.numel(); ++i) t[i] = static_cast<float>(p.value[static_cast<std::size_t>(i)]);
      w.set(p.name, std::move(t));
    }
    return w;
  }

  const ModelConfig& config() const { return cfg_; }
  ParamSet<T>& params() { return params_; }
  const ParamSet<T>& params() const { return params_; }
  bool adaptive() const { return cfg_.controller.enabled || cfg_.mapper_on(); }

  // Records one sample's weighted loss on `tape` and returns it (a [1, 1] node).
  Var forward_loss(Tape<T>& tape, const TrainSample& s, const LossWeights& w, const TrainOptions& opt,
                   SampleStats* stats = nullptr) const {
    check_sample(s);
    Structure st = structure(tape, s.input, s.prefix, s.budget, s.noise, opt);
    generate(tape, st);
    Rng drop_rng(s.dropout_seed, 7);
    Var loss = sample_bce(tape, st, s, w, opt.dropout, drop_rng);
    const double bce = static_cast<double>(tape.scalar(loss));
    const Aux aux = aux_loss(tape, st, s, w);
    if (aux.loss.valid()) loss = autograd::add(tape, loss, aux.loss);
    if (stats) fill_stats(tape, st, static_cast<double>(tape.scalar(loss)), bce, aux.flops_fraction, *stats);
    return loss;
  }

  // The gradient of sum_i forward_loss(samples[i]) added into the GradSet both tapes share, in two
  // stages: `outer` records every sample's X0, controller and mapper code, then the mapper heads
  // of all samples at once (Q = the stacked codes [S, q_w]; U = Q A^T + a is one GEMM per head,
  // and its backward dA = dU^T Q another, instead of one GEMV and one outer product per sample
  // over megabytes of head weights); `inner` records and back-propagates one sample's backbone
  // and BCE at a time on nodes aliasing the outer ones, so their gradients accumulate there; the
  // outer tape's backward then finishes the structure. The same gradient as forward_loss per
  // sample up to float summation order. Returns the sum of the samples' losses; `stats` (when
  // given) receives one entry per sample.
  double backward_batch(Tape<T>& outer, Tape<T>& inner, std::span<const TrainSample> samples, const LossWeights& w,
                        const TrainOptions& opt, std::vector<SampleStats>* stats = nullptr) const {
    const std::size_t S = samples.size();
    outer.reset();
    std::vector<Structure> sts;
    sts.reserve(S);
    std::vector<double> aux_values(S, 0.0), flops(S, 1.0);
    Var aux_total;
    for (std::size_t i = 0; i < S; ++i) {
      const TrainSample& s = samples[i];
      check_sample(s);
      sts.push_back(structure(outer, s.input, s.prefix, s.budget, s.noise, opt));
      const Aux aux = aux_loss(outer, sts[i], s, w);
      flops[i] = aux.flops_fraction;
      if (aux.loss.valid()) {
        aux_values[i] = static_cast<double>(outer.scalar(aux.loss));
        aux_total = aux_total.valid() ? autograd::add(outer, aux_total, aux.loss) : aux.loss;
      }
    }
    generate_batch(outer, sts);
    if (stats) stats->resize(S);
    double total = 0;
    for (std::size_t i = 0; i < S; ++i) {
      const TrainSample& s = samples[i];
      inner.reset();
      Structure in;
      in.x0 = import(inner, outer, sts[i].x0);
      if (sts[i].mask.valid()) in.mask = import(inner, outer, sts[i].mask);
      in.mask_values = sts[i].mask_values;
      for (const Generated& g : sts[i].gen)
        in.gen.push_back({import(inner, outer, g.w1), import(inner, outer, g.w2), import(inner, outer, g.gate)});
      Rng drop_rng(s.dropout_seed, 7);
      Var loss = sample_bce(inner, in, s, w, opt.dropout, drop_rng);
      const double bce = static_cast<double>(inner.scalar(loss));
      inner.backward(loss);
      total += bce + aux_values[i];
      if (stats) fill_stats(outer, sts[i], bce + aux_values[i], bce, flops[i], (*stats)[i]);
    }
    inner.reset();
    if (!aux_total.valid()) aux_total = outer.make(1, 1);  // no structure loss: a zero root
    outer.backward(aux_total);
    outer.reset();
    return total;
  }

  // Evaluation: logits of `candidates` after `history` (newest max_len items), deterministic mask.
  // Returns the mask used through `kept` when given.
  std::vector<float> forward_scores(Tape<T>& tape, std::span<const std::int32_t> history,
                                    std::span<const std::int32_t> candidates, double budget,
                                    std::vector<int>* kept = nullptr) const {
    FOFA_CHECK(!history.empty(), "cannot score an empty history");
    if (static_cast<index_t>(history.size()) > cfg_.max_len) history = history.last(static_cast<std::size_t>(cfg_.max_len));
    const index_t t = static_cast<index_t>(history.size());
    for (std::int32_t c : candidates)
      FOFA_CHECK(c >= 1 && c <= cfg_.items, "candidate item ", c, " outside [1, ", cfg_.items, "]");
    TrainOptions opt;
    Structure st = structure(tape, std::vector<std::int32_t>(history.begin(), history.end()), t, budget, {}, opt,
                             /*deterministic=*/true);
    if (kept) kept->assign(st.mask_values.begin(), st.mask_values.end());
    generate(tape, st);
    Var H = backbone(tape, st, 0.0, nullptr, /*first_row=*/t - 1, /*skip_dropped=*/true);
    const T* u = tape.value(H);
    const auto& E = params_[item_emb_].value;
    std::vector<float> out(candidates.size());
    for (std::size_t i = 0; i < candidates.size(); ++i) {
      T s = 0;
      const T* e = E.data() + static_cast<std::size_t>(candidates[i]) * static_cast<std::size_t>(cfg_.d);
      for (index_t c = 0; c < cfg_.d; ++c) s += u[c] * e[c];
      out[i] = static_cast<float>(s);
    }
    return out;
  }

 private:
  // The mapper's output for one block: w1 = U1 [d, r] (full: W1 [f, d]), w2 = U2 [f, r] (full:
  // W2 [d, f]), gate = G q [1, d] before the tanh.
  struct Generated {
    Var w1, w2, gate;
  };
  struct Structure {
    Var x0;                           // [t, d]
    Var mask;                         // [1, L] (invalid when the controller is off)
    Var pi;                           // [1, L] sigmoid(alpha)
    Var code;                         // [1, dz + ds] mapper code q (invalid when off)
    std::vector<T> mask_values;
    std::vector<Generated> gen;       // per block when the mapper is on (generate / generate_batch)
  };
  struct Aux {
    Var loss;  // sparsity + budget hinge, invalid without a controller
    double flops_fraction = 1.0;
  };

  void check_sample(const TrainSample& s) const {
    const index_t t = static_cast<index_t>(s.input.size());
    FOFA_CHECK(t >= 1 && t <= cfg_.max_len, "training sequence length ", t, " outside [1, ", cfg_.max_len, "]");
    FOFA_CHECK(s.prefix >= 1 && s.prefix <= t, "session prefix t0 = ", s.prefix, " outside [1, ", t, "]");
    FOFA_CHECK(s.loss_begin >= 0 && s.loss_begin < t, "loss_begin ", s.loss_begin, " outside [0, ", t, ")");
    const index_t rows = t - s.loss_begin;
    FOFA_CHECK(static_cast<index_t>(s.positives.size()) == rows, s.positives.size(), " positives for ", rows,
               " loss rows");
    FOFA_CHECK(!s.negatives.empty() && static_cast<index_t>(s.negatives.size()) % rows == 0, s.negatives.size(),
               " negatives for ", rows, " loss rows");
  }

  // A node of `to` over the value and gradient storage of node v of `from`.
  static Var import(Tape<T>& to, Tape<T>& from, Var v) {
    return to.alias(from.rows(v), from.cols(v), from.value(v), from.grad(v));
  }

  // Backbone on st.x0 and the weighted BCE of the sample's positive and negative logits.
  Var sample_bce(Tape<T>& tape, const Structure& st, const TrainSample& s, const LossWeights& w, double rate,
                 Rng& drop) const {
    const index_t t = static_cast<index_t>(s.input.size());
    const index_t rows = t - s.loss_begin;
    Var U = backbone(tape, st, rate, &drop, s.loss_begin);
    Var pos_e = autograd::gather(tape, item_emb_, std::span<const std::int32_t>(s.positives));
    Var pos = autograd::rowwise_dot(tape, U, pos_e);
    Var loss = autograd::bce_with_logits_sum(tape, pos, T(1), static_cast<T>(w.positive));
    const index_t per_row = static_cast<index_t>(s.negatives.size()) / rows;
    std::vector<std::int32_t> ids(static_cast<std::size_t>(rows));
    for (index_t j = 0; j < per_row; ++j) {
      for (index_t r = 0; r < rows; ++r) ids[static_cast<std::size_t>(r)] = s.negatives[static_cast<std::size_t>(r * per_row + j)];
      Var neg = autograd::rowwise_dot(tape, U, autograd::gather(tape, item_emb_, std::span<const std::int32_t>(ids)));
      loss = autograd::add(tape, loss, autograd::bce_with_logits_sum(tape, neg, T(0), static_cast<T>(w.negative)));
    }
    return loss;
  }

  // lambda/B * flops fraction + mu/B * relu(flops fraction - b) on st.pi (controller only).
  Aux aux_loss(Tape<T>& tape, const Structure& st, const TrainSample& s, const LossWeights& w) const {
    Aux a;
    if (!cfg_.controller.enabled) return a;
    // All blocks cost the same c_k, so sum_k c_k pi_k / sum_k c_k is the mean of pi.
    const std::vector<T> uniform_cost(static_cast<std::size_t>(cfg_.blocks), T(1) / static_cast<T>(cfg_.blocks));
    Var frac = autograd::weighted_sum(tape, st.pi, std::span<const T>(uniform_cost));
    a.flops_fraction = static_cast<double>(tape.scalar(frac));
    Var over = autograd::relu_shifted(tape, frac, static_cast<T>(s.budget));
    a.loss = autograd::add(tape, autograd::scale(tape, frac, static_cast<T>(w.sparsity)),
                           autograd::scale(tape, over, static_cast<T>(w.hinge)));
    return a;
  }

  void fill_stats(Tape<T>& tape, const Structure& st, double loss, double bce, double flops_fraction,
                  SampleStats& out) const {
    out.loss = loss;
    out.bce = bce;
    out.flops_fraction = flops_fraction;
    out.mask.assign(st.mask_values.begin(), st.mask_values.end());
    out.pi.clear();
    if (st.pi.valid())
      for (index_t k = 0; k < cfg_.blocks; ++k) out.pi.push_back(static_cast<double>(tape.value(st.pi)[k]));
  }

  // The mapper heads of one sample: st.gen from st.code on the same tape.
  void generate(Tape<T>& tape, Structure& st) const {
    if (!cfg_.mapper_on()) return;
    st.gen.clear();
    for (index_t k = 0; k < cfg_.blocks; ++k) {
      auto head = [&](Slot w, Slot b, index_t rows, index_t cols) {
        return tape.reshape(autograd::linear(tape, st.code, pb(tape, k, w), pb(tape, k, b)), rows, cols);
      };
      const auto [r1, c1, r2, c2] = head_shapes();
      st.gen.push_back({head(Slot::a1_w, Slot::a1_b, r1, c1), head(Slot::a2_w, Slot::a2_b, r2, c2),
                        autograd::linear(tape, st.code, pb(tape, k, Slot::g_w))});
    }
  }

  // The mapper heads of every sample at once: one [S, *] product per head from the stacked codes;
  // sts[i].gen holds row views of the products.
  void generate_batch(Tape<T>& tape, std::vector<Structure>& sts) const {
    if (!cfg_.mapper_on() || sts.empty()) return;
    std::vector<Var> codes;
    for (const Structure& st : sts) codes.push_back(st.code);
    Var Q = autograd::stack_rows(tape, std::span<const Var>(codes));
    const auto [r1, c1, r2, c2] = head_shapes();
    for (Structure& st : sts) st.gen.assign(static_cast<std::size_t>(cfg_.blocks), Generated{});
    for (index_t k = 0; k < cfg_.blocks; ++k) {
      Var A1 = autograd::linear(tape, Q, pb(tape, k, Slot::a1_w), pb(tape, k, Slot::a1_b));
      Var A2 = autograd::linear(tape, Q, pb(tape, k, Slot::a2_w), pb(tape, k, Slot::a2_b));
      Var G = autograd::linear(tape, Q, pb(tape, k, Slot::g_w));
      for (std::size_t i = 0; i < sts.size(); ++i) {
        const auto row = static_cast<index_t>(i);
        auto view = [&](Var m, index_t rows, index_t cols) {
          const index_t n = tape.cols(m);
          return tape.alias(rows, cols, tape.value(m) + row * n, tape.grad(m) + row * n);
        };
        sts[i].gen[static_cast<std::size_t>(k)] = {view(A1, r1, c1), view(A2, r2, c2), view(G, 1, cfg_.d)};
      }
    }
  }

  // Shapes of the generated w1 and w2 of one block: U1 [d, r], U2 [f, r] (full: W1 [f, d], W2 [d, f]).
  std::array<index_t, 4> head_shapes() const {
    const index_t d = cfg_.d, f = cfg_.ffn;
    if (cfg_.mapper.mode == MapperMode::full) return {f, d, d, f};
    return {d, cfg_.mapper.rank, f, cfg_.mapper.rank};
  }

  Var p(Tape<T>& tape, const std::string& name) const { return tape.param(params_.find(name)); }
  // Per-block parameters by slot: indices looked up once (a name lookup per op and sample showed in
  // the profile).
  enum class Slot { ln1_w, ln1_b, q_w, q_b, k_w, k_b, v_w, v_b, out_w, out_b, ln2_w, ln2_b, w1_w, w1_b, w2_w, w2_b,
                    a1_w, a1_b, a2_w, a2_b, v1, v2, g_w, count };
  void index_block_params() {
    static constexpr const char* block_rest[] = {"ln1.weight", "ln1.bias", "attn.q.weight", "attn.q.bias",
                                                 "attn.k.weight", "attn.k.bias", "attn.v.weight", "attn.v.bias",
                                                 "attn.out.weight", "attn.out.bias", "ln2.weight", "ln2.bias",
                                                 "ffn.w1.weight", "ffn.w1.bias", "ffn.w2.weight", "ffn.w2.bias"};
    static constexpr const char* head_rest[] = {"a1.weight", "a1.bias", "a2.weight", "a2.bias", "v1", "v2", "g.weight"};
    constexpr int nb = static_cast<int>(std::size(block_rest));
    block_params_.assign(static_cast<std::size_t>(cfg_.blocks), {});
    for (index_t k = 0; k < cfg_.blocks; ++k) {
      auto& slots = block_params_[static_cast<std::size_t>(k)];
      for (int i = 0; i < static_cast<int>(Slot::count); ++i) {
        const std::string name = i < nb ? block_name(k, block_rest[i]) : mapper_head_name(k, head_rest[i - nb]);
        slots[static_cast<std::size_t>(i)] = params_.contains(name) ? params_.find(name) : -1;
      }
    }
  }
  Var pb(Tape<T>& tape, index_t k, Slot s) const {
    const int i = block_params_[static_cast<std::size_t>(k)][static_cast<std::size_t>(s)];
    FOFA_CHECK(i >= 0, "block ", k, " has no parameter in slot ", static_cast<int>(s));
    return tape.param(i);
  }

  // X0, the controller's mask and the mapper's code from the first `prefix` rows.
  Structure structure(Tape<T>& tape, const std::vector<std::int32_t>& input, index_t prefix, double budget,
                      std::span<const double> noise, const TrainOptions& opt, bool deterministic = false) const {
    const index_t t = static_cast<index_t>(input.size()), d = cfg_.d, L = cfg_.blocks;
    for (std::int32_t id : input)
      FOFA_CHECK(id >= 1 && id <= cfg_.items, "item id ", id, " outside [1, ", cfg_.items, "]");
    FOFA_CHECK(std::isfinite(budget) && budget > 0.0 && budget <= 1.0, "budget must be in (0, 1], got ", budget);
    Structure st;
    const T scale = cfg_.emb_scale == EmbScale::sqrt_d ? std::sqrt(static_cast<T>(d)) : T(1);
    Var e = autograd::gather(tape, item_emb_, std::span<const std::int32_t>(input), scale);
    const index_t pos0 = cfg_.positions == Positions::start ? 0 : cfg_.max_len - t;
    Var P = autograd::slice_rows(tape, p(tape, "pos_emb.weight"), pos0, pos0 + t);
    st.x0 = autograd::add(tape, e, P);
    if (cfg_.input_ln)
      st.x0 = autograd::layernorm(tape, st.x0, p(tape, "input_ln.weight"), p(tape, "input_ln.bias"), static_cast<T>(cfg_.eps));
    if (!adaptive()) {
      st.mask_values.assign(static_cast<std::size_t>(L), T(1));
      return st;
    }
    Var mean_x0 = autograd::mean_rows(tape, autograd::slice_rows(tape, st.x0, 0, prefix));

    Var m_for_code;
    if (cfg_.controller.enabled) {
      Var g = autograd::unary(tape, autograd::Unary::tanh,
                              autograd::linear(tape, mean_x0, p(tape, "controller.extractor.weight"),
                                               p(tape, "controller.extractor.bias")));
      const T b = static_cast<T>(budget);
      Var gb = autograd::concat_cols(tape, g, tape.constant(1, 1, &b));
      Var alpha = autograd::linear(tape, gb, p(tape, "controller.head.weight"), p(tape, "controller.head.bias"));
      st.pi = autograd::unary(tape, autograd::Unary::sigmoid, alpha);
      if (deterministic) {
        std::vector<float> pi(static_cast<std::size_t>(L));
        for (index_t k = 0; k < L; ++k) {
          pi[static_cast<std::size_t>(k)] = static_cast<float>(tape.value(st.pi)[k]);
          FOFA_CHECK(!std::isnan(pi[static_cast<std::size_t>(k)]), "controller produced NaN for block ", k);
        }
        const std::vector<double> cost(static_cast<std::size_t>(L), cfg_.block_flops());
        const auto m = select_blocks(pi, cost, budget, cfg_.controller.min_blocks);
        std::vector<T> mv(m.begin(), m.end());
        st.mask = tape.constant(1, L, mv.data());
      } else {
        FOFA_CHECK(static_cast<index_t>(noise.size()) == L, noise.size(), " Gumbel noise values for ", L, " blocks");
        std::vector<T> nz(noise.begin(), noise.end());
        st.mask = autograd::gumbel_sigmoid_st(tape, alpha, std::span<const T>(nz), static_cast<T>(opt.tau), opt.hard_mask);
      }
      m_for_code = st.mask;
      st.mask_values.assign(tape.value(st.mask), tape.value(st.mask) + L);
    } else {
      std::vector<T> ones(static_cast<std::size_t>(L), T(1));
      m_for_code = tape.constant(1, L, ones.data());
      st.mask_values = ones;
    }
    if (cfg_.mapper_on()) {
      using autograd::Unary;
      Var gz = autograd::unary(tape, Unary::tanh,
                               autograd::linear(tape, mean_x0, p(tape, "mapper.extractor.weight"), p(tape, "mapper.extractor.bias")));
      Var z = autograd::unary(tape, Unary::tanh, autograd::linear(tape, gz, p(tape, "mapper.mlp.weight"), p(tape, "mapper.mlp.bias")));
      Var ecode = autograd::unary(tape, Unary::tanh,
                                  autograd::linear(tape, m_for_code, p(tape, "mapper.structure.weight"), p(tape, "mapper.structure.bias")));
      st.code = autograd::concat_cols(tape, z, ecode);
    }
    return st;
  }

  // Dropout with the next key of the sample's stream (rate 0: identity, no key drawn).
  static Var dropout(Tape<T>& tape, Var x, double rate, Rng* drop) {
    if (rate == 0.0) return x;
    return autograd::dropout(tape, x, rate, drop->next());
  }
  // base + dropout(z * row) (row invalid: z) as one node, the key drawn as dropout() would.
  static Var residual(Tape<T>& tape, Var base, Var z, Var row, double rate, Rng* drop) {
    return autograd::residual_dropout(tape, base, z, row, rate, rate > 0.0 ? drop->next() : 0);
  }

  // A block's FFN branch before its dropout: y = act(x W1u^T + b1) W2u^T + b2 with the user's
  // weights, and the mapper's gate row 1 + tanh(G q) (invalid when the mapper is off).
  struct Branch {
    Var y, gate;
  };
  Branch ffn(Tape<T>& tape, const Structure& st, index_t k, Var x, double rate, Rng* drop) const {
    const index_t d = cfg_.d;
    const auto act = cfg_.activation == Activation::gelu ? autograd::Unary::gelu : autograd::Unary::relu;
    const bool mapper = cfg_.mapper_on();
    const bool full = cfg_.mapper.mode == MapperMode::full;
    const Generated* gen = mapper ? &st.gen[static_cast<std::size_t>(k)] : nullptr;
    Var h;
    if (mapper && full) {
      h = autograd::linear(tape, x, gen->w1, pb(tape, k, Slot::w1_b));
    } else {
      h = autograd::linear(tape, x, pb(tape, k, Slot::w1_w), pb(tape, k, Slot::w1_b));
      if (mapper)  // + (x U1) V1 into h
        h = autograd::matmul_acc(tape, autograd::matmul(tape, x, gen->w1), pb(tape, k, Slot::v1), h);
    }
    h = rate > 0.0 ? autograd::unary_dropout(tape, act, h, rate, drop->next()) : autograd::unary(tape, act, h);
    Branch b;
    if (mapper && full) {
      b.y = autograd::linear(tape, h, gen->w2, pb(tape, k, Slot::w2_b));
    } else {
      b.y = autograd::linear(tape, h, pb(tape, k, Slot::w2_w), pb(tape, k, Slot::w2_b));
      if (mapper) b.y = autograd::matmul_acc(tape, autograd::matmul(tape, h, gen->w2), pb(tape, k, Slot::v2), b.y);
    }
    if (mapper) {
      Var g = autograd::unary(tape, autograd::Unary::tanh, gen->gate);
      const std::vector<T> one(static_cast<std::size_t>(d), T(1));
      b.gate = autograd::add(tape, g, tape.constant(1, d, one.data()));
    }
    return b;
  }

  // Rows [first, rows) of x as a node sharing x's storage (gradients land in x's), or x itself.
  static Var tail_rows(Tape<T>& tape, Var x, index_t first) {
    if (first == 0) return x;
    const index_t C = tape.cols(x);
    return tape.alias(tape.rows(x) - first, C, tape.value(x) + first * C, tape.grad(x) + first * C);
  }

  // The attention branch before its dropout (out projection included), for query rows
  // [first, rows) (keys and values: every row).
  Var attention(Tape<T>& tape, index_t k, Var q_in, Var kv_in, index_t first) const {
    Var q = autograd::linear(tape, q_in, pb(tape, k, Slot::q_w), pb(tape, k, Slot::q_b));
    Var kk = autograd::linear(tape, kv_in, pb(tape, k, Slot::k_w), pb(tape, k, Slot::k_b));
    Var v = autograd::linear(tape, kv_in, pb(tape, k, Slot::v_w), pb(tape, k, Slot::v_b));
    Var a = tail_rows(tape, autograd::causal_attention(tape, q, kk, v, cfg_.heads), first);
    return autograd::linear(tape, a, pb(tape, k, Slot::out_w), pb(tape, k, Slot::out_b));
  }

  // The output rows [first_row, t) of the backbone (t - first_row rows; the caller's loss or score
  // reads no others). Every block computes all rows, except the last, whose rows before first_row
  // only serve as keys and values: it runs its out projection, residuals and FFN on the tail alone.
  // drop: the sample's dropout key stream (nullptr when rate = 0).
  Var backbone(Tape<T>& tape, const Structure& st, double rate, Rng* drop, index_t first_row,
               bool skip_dropped = false) const {
    const T eps = static_cast<T>(cfg_.eps);
    FOFA_CHECK(first_row >= 0 && first_row < tape.rows(st.x0), "backbone: first output row ", first_row, " of ",
               tape.rows(st.x0));
    Var X = dropout(tape, st.x0, rate, drop);
    bool trimmed = first_row == 0;
    for (index_t k = 0; k < cfg_.blocks; ++k) {
      // Evaluation needs no mask gradient, so a dropped block is not computed at all.
      const bool dropped = cfg_.controller.enabled && st.mask_values[static_cast<std::size_t>(k)] == T(0);
      if (skip_dropped && dropped) continue;
      const auto block = tape.open_block();
      // The last block keeps only the output rows after its attention.
      const index_t first = k == cfg_.blocks - 1 ? first_row : 0;
      auto tail = [&](Var x) { return tail_rows(tape, x, first); };
      auto ln = [&](Var x, int which) {
        return autograd::layernorm(tape, x, pb(tape, k, which == 1 ? Slot::ln1_w : Slot::ln2_w),
                                   pb(tape, k, which == 1 ? Slot::ln1_b : Slot::ln2_b), eps);
      };
      // Residual branches: base + dropout(branch) as one node each (the FFN gate folded in).
      auto attn = [&](Var base, Var q_in, Var kv_in) {
        return residual(tape, tail(base), attention(tape, k, q_in, kv_in, first), Var{}, rate, drop);
      };
      auto feed = [&](Var base, Var x) {
        const Branch b = ffn(tape, st, k, x, rate, drop);
        return residual(tape, base, b.y, b.gate, rate, drop);
      };
      Var out;
      if (cfg_.norm == Norm::pre) {
        Var l1 = ln(X, 1);
        Var A = attn(X, l1, l1);
        out = feed(A, ln(A, 2));
      } else if (cfg_.norm == Norm::query_only) {
        Var Q = ln(X, 1);
        Var A = attn(Q, Q, X);
        Var B = ln(A, 2);
        out = feed(B, B);
      } else {
        Var A = ln(attn(X, X, X), 1);
        out = ln(feed(A, A), 2);
      }
      // A dropped block's output gets gradient 0 * dX: its backward would only add zeros (the mask's
      // own gradient <dX, out - X> comes from select_blend), and its nodes' gradients are never read.
      tape.close_block(block, dropped);
      X = cfg_.controller.enabled ? autograd::select_blend(tape, st.mask, k, out, tail(X)) : out;
      trimmed = trimmed || first > 0;
    }
    if (!trimmed) X = tail_rows(tape, X, first_row);  // the last block was skipped (evaluation)
    if (cfg_.final_ln) X = autograd::layernorm(tape, X, p(tape, "final_ln.weight"), p(tape, "final_ln.bias"), eps);
    return X;
  }

  ModelConfig cfg_;
  ParamSet<T> params_;
  int item_emb_ = -1;
  std::vector<std::array<int, static_cast<std::size_t>(Slot::count)>> block_params_;
};

}  // namespace fofa::train
