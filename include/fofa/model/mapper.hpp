// fofa/model/mapper.hpp — ParameterMapper: the structural hypernetwork that turns the session
// prefix X0 and the chosen mask m into each kept block's FFN weights and gate (SPEC section 4).
//
//   z = tanh(W_mlp tanh(W_me mean X0 + b_me) + b_mlp);  e = tanh(W_s m + b_s);  q = [z ; e]
//   lowrank: W1(user) = W1 + (U1 V1)^T, U1 = reshape(A1 q + a1, [d, r]); likewise W2 with [f, r]
//   full:    W1(user) = reshape(A1 q + a1, [f, d]); W2(user) = reshape(A2 q + a2, [d, f])
//   gate g_k = 1 + tanh(G_k q)
// Each block k has its own head (A1, a1, V1, A2, a2, V2, G): no weights are shared between heads.
#pragma once

#include <cmath>

#include "fofa/layers/linear.hpp"
#include "fofa/model/controller.hpp"
#include "fofa/model/plan.hpp"

namespace fofa {

template <class D = Extent<>, class F = Extent<>>
class ParameterMapper {
 public:
  ParameterMapper() = default;
  ParameterMapper(const ModelConfig& cfg, const ModelWeights& w) : cfg_(cfg) {
    FOFA_CHECK(cfg.mapper_on(), "ParameterMapper built for a config with the mapper off");
    const index_t d = cfg.d, f = cfg.ffn, L = cfg.blocks, dz = cfg.mapper.code_width,
                  ds = cfg.mapper.structure_width, qw = dz + ds;
    extractor_ = Linear<D, Extent<>>(w.get("mapper.extractor.weight", {dz, d}), w.get("mapper.extractor.bias", {dz}));
    mlp_ = Linear<>(w.get("mapper.mlp.weight", {dz, dz}), w.get("mapper.mlp.bias", {dz}));
    structure_ = Linear<>(w.get("mapper.structure.weight", {ds, L}), w.get("mapper.structure.bias", {ds}));
    const bool lowrank = cfg.mapper.mode == MapperMode::lowrank;
    const index_t r = cfg.mapper.rank;
    heads_.resize(static_cast<std::size_t>(L));
    for (index_t k = 0; k < L; ++k) {
      Head& h = heads_[static_cast<std::size_t>(k)];
      auto t = [&](const char* rest, Shape s) -> TensorView<const float> {
        return w.get(mapper_head_name(k, rest), s).view();
      };
      const index_t n1 = lowrank ? d * r : f * d, n2 = lowrank ? f * r : d * f;
      h.a1 = Linear<>(t("a1.weight", {n1, qw}), t("a1.bias", {n1}));
      h.a2 = Linear<>(t("a2.weight", {n2, qw}), t("a2.bias", {n2}));
      h.g = Linear<>(t("g.weight", {d, qw}), TensorView<const float>());
      if (lowrank) {
        h.v1t = transpose(t("v1", {r, f}));  // [f, r]
        h.v2t = transpose(t("v2", {r, d}));  // [d, r]
      }
    }
  }

  index_t code_width() const { return cfg_.mapper_code(); }

  static WorkspacePlan workspace(const ModelConfig& cfg) {
    WorkspacePlan p;
    p.add<float>(cfg.d).add<float>(cfg.mapper.code_width).add<float>(cfg.blocks);
    return p;
  }

  // q[dz + ds] from the prefix x0[t0, d] and the mask.
  void code(const float* x0, index_t t0, index_t ldx, std::span<const std::uint8_t> mask, float* q,
            Workspace& ws) const {
    FOFA_CHECK(t0 >= 1, "mapper: empty prefix");
    FOFA_CHECK(static_cast<index_t>(mask.size()) == cfg_.blocks, "mapper: mask of ", mask.size(), " for ",
               cfg_.blocks, " blocks");
    const std::size_t mark = ws.used();
    const index_t d = cfg_.d, dz = cfg_.mapper.code_width, ds = cfg_.mapper.structure_width, L = cfg_.blocks;
    const auto& k = kernels::kernels();
    float* mean = ws.take<float>(d);
    float* gz = ws.take<float>(dz);
    float* m = ws.take<float>(L);
    StructureController<D>::column_mean(x0, t0, ldx, d, mean);
    extractor_.forward(1, mean, d, gz, dz);
    k.unary(kernels::UnaryOp::tanh, dz, gz, gz);
    mlp_.forward(1, gz, dz, q, dz);
    for (index_t i = 0; i < L; ++i) m[i] = mask[static_cast<std::size_t>(i)] ? 1.0f : 0.0f;
    structure_.forward(1, m, L, q + dz, ds);
    k.unary(kernels::UnaryOp::tanh, dz + ds, q, q);
    ws.rewind(mark);
  }

  // Block k's FFN for code q: w1/w2 are the block's static weights [f, d] / [d, f].
  BlockFfnWeights materialise(index_t k, const float* q, const Tensor<float>& w1, const Tensor<float>& b1,
                              const Tensor<float>& w2, const Tensor<float>& b2) const {
    FOFA_CHECK(k >= 0 && k < cfg_.blocks, "mapper: block ", k, " of ", cfg_.blocks);
    const Head& h = heads_[static_cast<std::size_t>(k)];
    const index_t d = cfg_.d, f = cfg_.ffn, qw = code_width();
    const auto& kt = kernels::kernels();
    BlockFfnWeights out;
    out.block = k;
    out.b1 = copy_of(b1.view());
    out.b2 = copy_of(b2.view());
    out.gate = Tensor<float>({d});
    h.g.forward(1, q, qw, out.gate.data(), d);
    kt.unary(kernels::UnaryOp::tanh, d, out.gate.data(), out.gate.data());
    for (index_t i = 0; i < d; ++i) out.gate[i] += 1.0f;
    if (cfg_.mapper.mode == MapperMode::full) {
      out.w1 = Tensor<float>({f, d});
      out.w2 = Tensor<float>({d, f});
      h.a1.forward(1, q, qw, out.w1.data(), f * d);
      h.a2.forward(1, q, qw, out.w2.data(), d * f);
      return out;
    }
    const index_t r = cfg_.mapper.rank;
    out.w1 = copy_of(w1.view());
    out.w2 = copy_of(w2.view());
    Tensor<float> u1({d, r}), u2({f, r});
    h.a1.forward(1, q, qw, u1.data(), d * r);
    h.a2.forward(1, q, qw, u2.data(), f * r);
    // W1 += (U1 V1)^T = V1^T U1^T: rows of V1^T [f, r] times U1 [d, r] as an nn.Linear weight.
    Linear<> u1_lin(u1.view(), TensorView<const float>());
    u1_lin.forward(f, h.v1t.data(), r, out.w1.data(), d, kernels::Activation::none, true);
    Linear<> u2_lin(u2.view(), TensorView<const float>());
    u2_lin.forward(d, h.v2t.data(), r, out.w2.data(), f, kernels::Activation::none, true);
    return out;
  }

 private:
  struct Head {
    Linear<> a1, a2, g;
    Tensor<float> v1t, v2t;  // V1^T [f, r], V2^T [d, r]
  };
  static Tensor<float> transpose(TensorView<const float> m) {
    Tensor<float> t({m.dim(1), m.dim(0)});
    for (index_t i = 0; i < m.dim(0); ++i)
      for (index_t j = 0; j < m.dim(1); ++j) t(j, i) = m(i, j);
    return t;
  }

  ModelConfig cfg_;
  Linear<D, Extent<>> extractor_;
  Linear<> mlp_, structure_;
  std::vector<Head> heads_;
};

}  // namespace fofa
