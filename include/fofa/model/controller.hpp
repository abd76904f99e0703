// fofa/model/controller.hpp — StructureController: from the session prefix X0 and the device
// budget, the distribution vector pi over blocks (SPEC section 3, docs/DESIGN.md).
//
//   g  = tanh(W_ce mean_i X0[i] + b_ce)   (extractor "mean")  or  h_t0 of a GRU over X0 ("gru")
//   pi = sigmoid(W_h [g ; b] + b_h)
// The inference mask from pi is select_blocks() (model/plan.hpp).
#pragma once

#include <cmath>

#include "fofa/layers/gru.hpp"
#include "fofa/model/weights.hpp"

namespace fofa {

template <class D = Extent<>>
class StructureController {
 public:
  StructureController() = default;
  StructureController(const ModelConfig& cfg, const ModelWeights& w) : cfg_(cfg) {
    FOFA_CHECK(cfg.controller.enabled, "StructureController built for a config with the controller disabled");
    const index_t d = cfg.d, dc = cfg.controller.width;
    if (cfg.controller.extractor == ExtractorKind::mean)
      extractor_ = Linear<D, Extent<>>(w.get("controller.extractor.weight", {dc, d}),
                                       w.get("controller.extractor.bias", {dc}));
    else
      gru_ = GRU<D, Extent<>>(w.get("controller.gru.weight_ih", {3 * dc, d}), w.get("controller.gru.weight_hh", {3 * dc, dc}),
                              w.get("controller.gru.bias_ih", {3 * dc}), w.get("controller.gru.bias_hh", {3 * dc}));
    head_ = Linear<>(w.get("controller.head.weight", {cfg.blocks, dc + 1}), w.get("controller.head.bias", {cfg.blocks}));
  }

  static WorkspacePlan workspace(const ModelConfig& cfg) {
    const index_t dc = cfg.controller.width;
    WorkspacePlan p;
    p.add<float>(cfg.d).add<float>(dc + 1).add<float>(cfg.blocks);
    p.add(GRU<D, Extent<>>::workspace(cfg.max_len, dc));
    return p;
  }

  // pi[L] for the prefix x0[t0, d] (t0 >= 1) and budget b.
  void distribution(const float* x0, index_t t0, index_t ldx, float budget, float* pi, Workspace& ws) const {
    FOFA_CHECK(t0 >= 1, "controller: empty prefix");
    const std::size_t mark = ws.used();
    const index_t d = cfg_.d, dc = cfg_.controller.width, L = cfg_.blocks;
    const auto& k = kernels::kernels();
    float* feat = ws.take<float>(dc + 1);  // [g ; b]
    if (cfg_.controller.extractor == ExtractorKind::mean) {
      float* mean = ws.take<float>(d);
      column_mean(x0, t0, ldx, d, mean);
      extractor_.forward(1, mean, d, feat, dc);
      k.unary(kernels::UnaryOp::tanh, dc, feat, feat);
    } else {
      gru_.forward(t0, x0, ldx, feat, ws);
    }
    feat[dc] = budget;
    head_.forward(1, feat, dc + 1, pi, L);
    k.unary(kernels::UnaryOp::sigmoid, L, pi, pi);
    ws.rewind(mark);
  }

  // mean[d] = arithmetic mean of the rows of x[rows, d].
  static void column_mean(const float* x, index_t rows, index_t ldx, index_t d, float* mean) {
    for (index_t j = 0; j < d; ++j) mean[j] = 0.0f;
    for (index_t i = 0; i < rows; ++i)
      for (index_t j = 0; j < d; ++j) mean[j] += x[i * ldx + j];
    const float inv = 1.0f / static_cast<float>(rows);
    for (index_t j = 0; j < d; ++j) mean[j] *= inv;
  }

 private:
  ModelConfig cfg_;
  Linear<D, Extent<>> extractor_;
  GRU<D, Extent<>> gru_;
  Linear<> head_;
};

}  // namespace fofa
