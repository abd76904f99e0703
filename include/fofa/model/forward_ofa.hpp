// fofa/model/forward_ofa.hpp — ForwardOfa, the cloud side of Forward-OFA: one forward pass per
// device session decides the blocks (StructureController) and their FFN parameters
// (ParameterMapper); score/rerank run the full model under such a plan.
//
//   DevicePlan plan = model.adapt(history, budget);     // mask, pi, materialised FFNs, cost
//   std::vector<float> y = model.score(history, candidates, plan);
//   Ranking r = model.rerank(history, candidates, budget);  // adapt + score + sort
// Hot path without allocation: PreparedPlan p = model.prepare(plan); Workspace ws(model.workspace_plan());
//   model.score(p, history, candidates, out, ws);
//
// Input rules (all tested in tests/model):
//   - item ids must lie in [1, V]: otherwise fofa::Error naming the id (history or candidate);
//   - a history longer than max_len keeps its newest max_len items;
//   - an empty history is an error ("empty history"): SASRec has no user state without one;
//   - an empty candidate list gives an empty result; duplicate candidates are scored
//     independently (equal scores, the earlier one ranks first);
//   - budget must be a number in (0, 1]: NaN, <= 0 or > 1 is an error;
//   - results are finite or an error: finite weights that overflow float (e.g. +-3e38 in
//     final_ln.weight or an item_emb row) make adapt() throw on a non-finite pi or mapper code and
//     score()/rerank() throw on a non-finite user state or logit, naming the candidate (plan.hpp).
// A ForwardOfa is immutable after construction; const methods may run concurrently, each
// thread with its own Workspace.
#pragma once

#include <memory>

#include "fofa/model/backbone.hpp"
#include "fofa/model/controller.hpp"
#include "fofa/model/mapper.hpp"
#include "fofa/model/plan.hpp"

namespace fofa {

template <class D = Extent<>, class F = Extent<>>
class ForwardOfaT {
 public:
  using Ffn = FeedForward<D, F>;

  // A DevicePlan with its FFNs packed for this model's kernels; not copyable (holds pointers
  // into itself and into the model, which must outlive it).
  class PreparedPlan {
   public:
    PreparedPlan() = default;
    PreparedPlan(PreparedPlan&&) = default;
    PreparedPlan& operator=(PreparedPlan&&) = default;
    PreparedPlan(const PreparedPlan&) = delete;
    PreparedPlan& operator=(const PreparedPlan&) = delete;
    std::span<const std::uint8_t> mask() const { return mask_; }

   private:
    friend class ForwardOfaT;
    std::vector<std::uint8_t> mask_;
    std::vector<Ffn> owned_;
    std::vector<const Ffn*> ffn_;
  };

  ForwardOfaT(const ModelConfig& cfg, ModelWeights weights) : cfg_(cfg) {
    cfg.validate();
    check_weights(cfg, weights);
    weights_ = std::make_shared<const ModelWeights>(std::move(weights));
    backbone_ = SasRecBackbone<D, F>(cfg, weights_);
    if (cfg.controller.enabled) controller_ = StructureController<D>(cfg, *weights_);
    if (cfg.mapper_on()) mapper_ = ParameterMapper<D, F>(cfg, *weights_);
    cost_.assign(static_cast<std::size_t>(cfg.blocks), cfg.block_flops());
  }

  const ModelConfig& config() const { return cfg_; }
  const ModelWeights& weights() const { return *weights_; }
  const SasRecBackbone<D, F>& backbone() const { return backbone_; }

  // Buffers of one score() call (and of adapt()), from the configuration.
  WorkspacePlan workspace_plan() const {
    WorkspacePlan p = SasRecBackbone<D, F>::workspace(cfg_);
    p.add<float>(cfg_.d);  // u
    return p;
  }
  WorkspacePlan adapt_workspace_plan() const {
    WorkspacePlan p;
    p.add<float>(cfg_.max_len * cfg_.d).add<float>(cfg_.blocks).add<float>(cfg_.mapper_code());
    p.add(SasRecBackbone<D, F>::workspace(cfg_));
    if (cfg_.controller.enabled) p.add(StructureController<D>::workspace(cfg_));
    if (cfg_.mapper_on()) p.add(ParameterMapper<D, F>::workspace(cfg_));
    return p;
  }

  // The session decision for `history` (newest max_len kept) under `budget` in (0, 1].
  DevicePlan adapt(std::span<const std::int32_t> history, float budget) const {
    check_budget(budget);
    const auto window = checked_window(history);
    Workspace ws(adapt_workspace_plan());
    const index_t t = static_cast<index_t>(window.size()), d = cfg_.d, L = cfg_.blocks;
    float* x0 = ws.take<float>(t * d);
    backbone_.embed(window, x0, d, ws);
    DevicePlan plan;
    plan.budget = budget;
    plan.pi.assign(static_cast<std::size_t>(L), 1.0f);
    if (cfg_.controller.enabled) {
      controller_.distribution(x0, t, d, budget, plan.pi.data(), ws);
      check_finite(plan.pi, "controller pi (per block)");
      plan.mask = select_blocks(plan.pi, cost_, static_cast<double>(budget), cfg_.controller.min_blocks);
    } else {
      plan.mask.assign(static_cast<std::size_t>(L), 1);
    }
    std::vector<float> q;
    if (cfg_.mapper_on()) {
      q.resize(static_cast<std::size_t>(cfg_.mapper_code()));
      mapper_.code(x0, t, d, plan.mask, q.data(), ws);
      check_finite(q, "mapper code");
    }
    for (index_t k = 0; k < L; ++k) {
      if (!plan.mask[static_cast<std::size_t>(k)]) continue;
      const auto& w = *weights_;
      const Tensor<float>& w1 = w.get(block_name(k, "ffn.w1.weight"));
      const Tensor<float>& b1 = w.get(block_name(k, "ffn.w1.bias"));
      const Tensor<float>& w2 = w.get(block_name(k, "ffn.w2.weight"));
      const Tensor<float>& b2 = w.get(block_name(k, "ffn.w2.bias"));
      if (cfg_.mapper_on()) {
        plan.ffn.push_back(mapper_.materialise(k, q.data(), w1, b1, w2, b2));
      } else {
        BlockFfnWeights b;
        b.block = k;
        b.w1 = copy_of(w1.view());
        b.b1 = copy_of(b1.view());
        b.w2 = copy_of(w2.view());
        b.b2 = copy_of(b2.view());
        b.gate = Tensor<float>({d});
        b.gate.fill(1.0f);
        plan.ffn.push_back(std::move(b));
      }
      plan.flops += cost_[static_cast<std::size_t>(k)];
    }
    plan.bytes = static_cast<std::size_t>(device_parameter_floats(cfg_, static_cast<index_t>(plan.ffn.size()))) *
                 sizeof(float);
    return plan;
  }

  // The plan in which every block runs with the static weights (the static SASRec).
  DevicePlan static_plan() const {
    DevicePlan plan;
    const index_t L = cfg_.blocks;
    plan.pi.assign(static_cast<std::size_t>(L), 1.0f);
    plan.mask.assign(static_cast<std::size_t>(L), 1);
    for (index_t k = 0; k < L; ++k) {
      BlockFfnWeights b;
      b.block = k;
      b.w1 = copy_of(weights_->get(block_name(k, "ffn.w1.weight")).view());
      b.b1 = copy_of(weights_->get(block_name(k, "ffn.w1.bias")).view());
      b.w2 = copy_of(weights_->get(block_name(k, "ffn.w2.weight")).view());
      b.b2 = copy_of(weights_->get(block_name(k, "ffn.w2.bias")).view());
      b.gate = Tensor<float>({cfg_.d});
      b.gate.fill(1.0f);
      plan.ffn.push_back(std::move(b));
      plan.flops += cost_[static_cast<std::size_t>(k)];
    }
    plan.bytes = static_cast<std::size_t>(device_parameter_floats(cfg_, L)) * sizeof(float);
    return plan;
  }

  // Packs the plan's FFNs (validated against this model); ungated static FFNs reuse the model's.
  PreparedPlan prepare(const DevicePlan& plan) const {
    const index_t L = cfg_.blocks, d = cfg_.d, f = cfg_.ffn;
    FOFA_CHECK(static_cast<index_t>(plan.mask.size()) == L, "plan has a mask of ", plan.mask.size(),
               " blocks, the model has ", L);
    PreparedPlan p;
    p.mask_ = plan.mask;
    p.ffn_.assign(static_cast<std::size_t>(L), nullptr);
    p.owned_.reserve(plan.ffn.size());  // no reallocation: ffn_ points into owned_
    std::size_t next = 0;
    for (index_t k = 0; k < L; ++k) {
      if (!plan.mask[static_cast<std::size_t>(k)]) continue;
      FOFA_CHECK(next < plan.ffn.size() && plan.ffn[next].block == k, "plan has no FFN weights for kept block ", k);
      const BlockFfnWeights& b = plan.ffn[next++];
      check_shape("plan w1", b.w1.shape(), {f, d});
      check_shape("plan b1", b.b1.shape(), {f});
      check_shape("plan w2", b.w2.shape(), {d, f});
      check_shape("plan b2", b.b2.shape(), {d});
      check_shape("plan gate", b.gate.shape(), {d});
      if (is_static_ffn(k, b)) {
        p.ffn_[static_cast<std::size_t>(k)] = &backbone_.blocks()[static_cast<std::size_t>(k)].ffn();
        continue;
      }
      p.owned_.emplace_back(b.w1.view(), b.b1.view(), b.w2.view(), b.b2.view(), cfg_.activation, b.gate.data());
      p.ffn_[static_cast<std::size_t>(k)] = &p.owned_.back();
    }
    FOFA_CHECK(next == plan.ffn.size(), "plan has ", plan.ffn.size(), " FFN entries for ", next, " kept blocks");
    return p;
  }

  // out[j] = logit of candidates[j]; allocates nothing when ws was made from workspace_plan().
  void score(const PreparedPlan& plan, std::span<const std::int32_t> history,
             std::span<const std::int32_t> candidates, std::span<float> out, Workspace& ws) const {
    const auto window = checked_window(history);
    backbone_.check_items(candidates, "candidate");
    FOFA_CHECK(out.size() == candidates.size(), "score: output of ", out.size(), " for ", candidates.size(),
               " candidates");
    if (candidates.empty()) return;
    const std::size_t mark = ws.used();
    float* u = ws.take<float>(cfg_.d);
    backbone_.user_state(window, plan.mask_, plan.ffn_, u, ws);
    check_finite({u, static_cast<std::size_t>(cfg_.d)}, "user state");
    backbone_.score(u, candidates, out);
    check_finite_scores(out, candidates);
    ws.rewind(mark);
  }

  std::vector<float> score(std::span<const std::int32_t> history, std::span<const std::int32_t> candidates,
                           const DevicePlan& plan) const {
    std::vector<float> out(candidates.size());
    Workspace ws(workspace_plan());
    score(prepare(plan), history, candidates, out, ws);
    return out;
  }
  std::vector<float> score(std::span<const std::int32_t> history, std::span<const std::int32_t> candidates,
                           float budget) const {
    checked_window(history);
    backbone_.check_items(candidates, "candidate");
    return score(history, candidates, adapt(history, budget));
  }
  Ranking rerank(std::span<const std::int32_t> history, std::span<const std::int32_t> candidates,
                 const DevicePlan& plan) const {
    return make_ranking(candidates, score(history, candidates, plan));
  }
  Ranking rerank(std::span<const std::int32_t> history, std::span<const std::int32_t> candidates,
                 float budget) const {
    return make_ranking(candidates, score(history, candidates, budget));
  }

 private:
  std::span<const std::int32_t> checked_window(std::span<const std::int32_t> history) const {
    FOFA_CHECK(!history.empty(), "empty history: SASRec needs at least one item to score");
    backbone_.check_items(history, "history");  // also the ids the window drops: bad input is bad input
    return newest_window(history, cfg_.max_len);
  }
  bool is_static_ffn(index_t k, const BlockFfnWeights& b) const {
    const auto& w = *weights_;
    auto same = [](const Tensor<float>& a, const Tensor<float>& c) {
      return a.shape() == c.shape() && std::equal(a.data(), a.data() + a.numel(), c.data());
    };
    for (index_t i = 0; i < b.gate.numel(); ++i)
      if (b.gate[i] != 1.0f) return false;
    return same(b.w1, w.get(block_name(k, "ffn.w1.weight"))) && same(b.b1, w.get(block_name(k, "ffn.w1.bias"))) &&
           same(b.w2, w.get(block_name(k, "ffn.w2.weight"))) && same(b.b2, w.get(block_name(k, "ffn.w2.bias")));
  }

  ModelConfig cfg_;
  std::shared_ptr<const ModelWeights> weights_;
  SasRecBackbone<D, F> backbone_;
  StructureController<D> controller_;
  ParameterMapper<D, F> mapper_;
  std::vector<double> cost_;
};

using ForwardOfa = ForwardOfaT<>;

}  // namespace fofa
