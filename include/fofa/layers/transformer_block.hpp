// fofa/layers/transformer_block.hpp — one SASRec transformer block in the three norm placements
// of docs/DESIGN.md, over a key/value cache so the same code serves the cloud (all rows at once)
// and the device (one new row per click).
//
//   pre:        A = X + Attn(LN1 X);               X = A + FFN(LN2 A)
//   query_only: Q = LN1 X; A = Q + Attn(q: Q, kv: X); B = LN2 A; X = B + FFN(B)   (pmixer)
//   post:       A = LN1(X + Attn(X));              X = LN2(A + FFN(A))           (BERT)
//
// The block owns LN1, attention, LN2 and its static FFN; forward() takes the FFN to run as an
// argument, because Forward-OFA replaces it per user (materialised mapper weights and gate).
#pragma once

#include "fofa/layers/attention.hpp"
#include "fofa/layers/feed_forward.hpp"
#include "fofa/layers/layer_norm.hpp"
#include "fofa/model/config.hpp"

namespace fofa {

template <class D = Extent<>, class F = Extent<>>
class TransformerBlock {
 public:
  TransformerBlock() = default;
  TransformerBlock(Norm norm, LayerNorm<D> ln1, MultiHeadAttention<D> attn, LayerNorm<D> ln2, FeedForward<D, F> ffn)
      : norm_(norm), ln1_(std::move(ln1)), attn_(std::move(attn)), ln2_(std::move(ln2)), ffn_(std::move(ffn)) {
    FOFA_CHECK(ln1_.dim() == attn_.dim() && ln2_.dim() == attn_.dim() && ffn_.dim() == attn_.dim(),
               "block dimensions disagree: ln1 ", ln1_.dim(), ", attn ", attn_.dim(), ", ln2 ", ln2_.dim(),
               ", ffn ", ffn_.dim());
  }

  Norm norm() const { return norm_; }
  index_t dim() const { return attn_.dim(); }
  const LayerNorm<D>& ln1() const { return ln1_; }
  const MultiHeadAttention<D>& attn() const { return attn_; }
  const LayerNorm<D>& ln2() const { return ln2_; }
  const FeedForward<D, F>& ffn() const { return ffn_; }  // the static FFN

  // Work floats forward() takes for `rows` new rows over at most max_keys positions.
  static WorkspacePlan workspace(index_t rows, index_t max_keys, index_t d, index_t f) {
    WorkspacePlan p;
    p.add<float>(rows * d);
    p.add(MultiHeadAttention<D>::workspace(rows, max_keys, d));
    p.add(FeedForward<D, F>::workspace(rows, f));
    return p;
  }

  // Runs the block on `rows` new positions cached .. cached + rows - 1.
  //   x  [rows, d] (stride ldx): the block input, replaced by the output for rows >= out_from
  //      (rows before out_from are left in an unspecified state: the caller needs only later rows);
  //   kv [cached + rows, 2d] (stride ldkv): this block's K|V cache; rows < cached must hold the
  //      values of earlier calls, rows of the new positions are written.
  //   ffn: the FFN to run (the static one, or a user's materialised one).
  void forward(index_t rows, index_t cached, index_t out_from, float* x, index_t ldx, float* kv, index_t ldkv,
               const FeedForward<D, F>& ffn, Workspace& ws) const {
    FOFA_CHECK(rows >= 1 && cached >= 0 && out_from >= 0 && out_from < rows, "block forward: rows ", rows,
               ", cached ", cached, ", out_from ", out_from);
    const std::size_t mark = ws.used();
    const index_t d = dim(), qr = rows - out_from;
    float* xo = x + out_from * ldx;
    float* kv_new = kv + cached * ldkv;
    switch (norm_) {
      case Norm::pre: {
        float* n = ws.take<float>(rows * d);
        ln1_.forward(rows, x, ldx, n, d);
        attn_.project_kv(rows, n, d, kv_new, ldkv);
        attn_.attend(qr, cached + out_from, n + out_from * d, d, kv, ldkv, xo, ldx, true, ws);
        ln2_.forward(qr, xo, ldx, n, d);
        ffn.forward(qr, n, d, xo, ldx, true, ws);
        break;
      }
      case Norm::query_only: {
        float* n = ws.take<float>(qr * d);
        attn_.project_kv(rows, x, ldx, kv_new, ldkv);
        ln1_.forward(qr, xo, ldx, n, d);
        attn_.attend(qr, cached + out_from, n, d, kv, ldkv, n, d, true, ws);
        ln2_.forward(qr, n, d, xo, ldx);
        ffn.forward(qr, xo, ldx, xo, ldx, true, ws);
        break;
      }
      case Norm::post: {
        float* n = ws.take<float>(qr * d);
        attn_.project_kv(rows, x, ldx, kv_new, ldkv);
        attn_.attend(qr, cached + out_from, xo, ldx, kv, ldkv, xo, ldx, true, ws);
        ln1_.forward(qr, xo, ldx, n, d);
        ffn.forward(qr, n, d, n, d, true, ws);
        ln2_.forward(qr, n, d, xo, ldx);
        break;
      }
    }
    ws.rewind(mark);
  }

 private:
  Norm norm_ = Norm::pre;
  LayerNorm<D> ln1_;
  MultiHeadAttention<D> attn_;
  LayerNorm<D> ln2_;
  FeedForward<D, F> ffn_;
};

}  // namespace fofa
