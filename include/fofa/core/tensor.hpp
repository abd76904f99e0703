// fofa/core/tensor.hpp — shapes, strided views and owning tensors.
//
// Shapes and strides are in PyTorch order: the last dimension is contiguous (stride 1),
// so a [N, K] nn.Linear weight saved by PyTorch is a fofa [N, K] tensor byte for byte.
// Tensor<T> owns 64-byte aligned contiguous storage; TensorView<T> is a non-owning view
// with arbitrary (non-negative) strides. Checked accessors throw fofa::Error naming shapes.
#pragma once

#include <algorithm>
#include <array>
#include <initializer_list>
#include <string>

#include "fofa/core/aligned.hpp"

namespace fofa {

inline constexpr int kMaxRank = 4;

class Shape {
 public:
  Shape() = default;
  Shape(std::initializer_list<index_t> dims) {
    FOFA_CHECK(dims.size() <= static_cast<std::size_t>(kMaxRank), "rank ", dims.size(), " > ", kMaxRank);
    for (index_t d : dims) push_back(d);
  }
  template <class It>
  static Shape from_range(It first, It last) {
    Shape s;
    for (; first != last; ++first) s.push_back(static_cast<index_t>(*first));
    return s;
  }
  void push_back(index_t d) {
    FOFA_CHECK(rank_ < kMaxRank, "rank > ", kMaxRank);
    FOFA_CHECK(d >= 0, "negative dimension ", d);
    dims_[static_cast<std::size_t>(rank_++)] = d;
  }
  int rank() const { return rank_; }
  index_t operator[](int i) const { return dims_[static_cast<std::size_t>(i)]; }
  index_t& operator[](int i) { return dims_[static_cast<std::size_t>(i)]; }
  index_t numel() const {
    index_t n = 1;
    for (int i = 0; i < rank_; ++i) n *= dims_[static_cast<std::size_t>(i)];
    return n;
  }
  const index_t* begin() const { return dims_.data(); }
  const index_t* end() const { return dims_.data() + rank_; }
  friend bool operator==(const Shape& a, const Shape& b) {
    return a.rank_ == b.rank_ && std::equal(a.begin(), a.end(), b.begin());
  }
  std::string str() const {
    std::string s = "[";
    for (int i = 0; i < rank_; ++i) s += (i ? ", " : "") + std::to_string((*this)[i]);
    return s + "]";
  }

 private:
  std::array<index_t, kMaxRank> dims_{};
  int rank_ = 0;
};

using Strides = std::array<index_t, kMaxRank>;

inline Strides contiguous_strides(const Shape& s) {
  Strides st{};
  index_t acc = 1;
  for (int i = s.rank() - 1; i >= 0; --i) {
    st[static_cast<std::size_t>(i)] = acc;
    acc *= s[i];
  }
  return st;
}

template <class T>
class TensorView {
 public:
  TensorView() = default;
  TensorView(T* data, Shape shape) : data_(data), shape_(shape), strides_(contiguous_strides(shape)) {}
  TensorView(T* data, Shape shape, Strides strides) : data_(data), shape_(shape), strides_(strides) {}
  // A view of const T from a view of T.
  template <class U, class = std::enable_if_t<std::is_same_v<const U, T> && !std::is_same_v<U, T>>>
  TensorView(const TensorView<U>& o) : data_(o.data()), shape_(o.shape()), strides_(o.strides()) {}

  T* data() const { return data_; }
  const Shape& shape() const { return shape_; }
  const Strides& strides() const { return strides_; }
  int rank() const { return shape_.rank(); }
  index_t dim(int i) const { return shape_[i]; }
  index_t stride(int i) const { return strides_[static_cast<std::size_t>(i)]; }
  index_t numel() const { return shape_.numel(); }
  bool empty() const { return numel() == 0; }
  bool is_contiguous() const { return strides_ == contiguous_strides(shape_) || numel() <= 1; }
  // Row-major 2-D with unit last stride: what the kernels take (pointer + leading dimension).
  bool is_row_major_2d() const { return rank() == 2 && (stride(1) == 1 || dim(1) <= 1); }

  template <class... I>
  T& operator()(I... idx) const {
    static_assert(sizeof...(I) <= kMaxRank);
    const index_t ix[] = {static_cast<index_t>(idx)...};
    index_t off = 0;
    for (std::size_t k = 0; k < sizeof...(I); ++k) off += ix[k] * strides_[k];
    return data_[off];
  }
  // Checked element access: throws on rank or range errors.
  template <class... I>
  T& at(I... idx) const {
    const index_t ix[] = {static_cast<index_t>(idx)...};
    FOFA_CHECK(static_cast<int>(sizeof...(I)) == rank(), "index rank ", sizeof...(I), " for shape ", shape_.str());
    for (int k = 0; k < rank(); ++k)
      FOFA_CHECK(ix[k] >= 0 && ix[k] < shape_[k], "index ", ix[k], " out of range in dim ", k, " of ", shape_.str());
    return (*this)(idx...);
  }
  // Sub-view [begin, end) along the first dimension.
  TensorView slice_rows(index_t begin, index_t end) const {
    FOFA_CHECK(rank() >= 1 && begin >= 0 && begin <= end && end <= dim(0),
               "row slice [", begin, ", ", end, ") of ", shape_.str());
    Shape s = shape_;
    s[0] = end - begin;
    return TensorView(data_ + begin * stride(0), s, strides_);
  }
  // Element i along the first dimension, one rank lower.
  TensorView row(index_t i) const {
    FOFA_CHECK(rank() >= 1 && i >= 0 && i < dim(0), "row ", i, " of ", shape_.str());
    Shape s;
    Strides st{};
    for (int k = 1; k < rank(); ++k) {
      s.push_back(shape_[k]);
      st[static_cast<std::size_t>(k - 1)] = strides_[static_cast<std::size_t>(k)];
    }
    return TensorView(data_ + i * stride(0), s, st);
  }
  // Same data, new contiguous shape with the same number of elements.
  TensorView reshape(Shape s) const {
    FOFA_CHECK(is_contiguous(), "reshape of a non-contiguous view ", shape_.str());
    FOFA_CHECK(s.numel() == numel(), "cannot reshape ", shape_.str(), " to ", s.str());
    return TensorView(data_, s);
  }

 private:
  T* data_ = nullptr;
  Shape shape_;
  Strides strides_{};
};

// Owning, contiguous, zero-initialised, 64-byte aligned.
template <class T>
class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(Shape shape) : shape_(shape), buf_(shape.numel()) {}
  Tensor(Shape shape, std::initializer_list<T> values) : Tensor(shape) {
    FOFA_CHECK(static_cast<index_t>(values.size()) == shape.numel(), values.size(), " values for shape ", shape.str());
    std::copy(values.begin(), values.end(), buf_.data());
  }
  static Tensor from(TensorView<const T> v) {
    Tensor t(v.shape());
    copy(v, t.view());
    return t;
  }

  T* data() { return buf_.data(); }
  const T* data() const { return buf_.data(); }
  const Shape& shape() const { return shape_; }
  int rank() const { return shape_.rank(); }
  index_t dim(int i) const { return shape_[i]; }
  index_t numel() const { return shape_.numel(); }
  std::size_t bytes() const { return static_cast<std::size_t>(numel()) * sizeof(T); }
  TensorView<T> view() { return {buf_.data(), shape_}; }
  TensorView<const T> view() const { return {buf_.data(), shape_}; }
  operator TensorView<T>() { return view(); }
  operator TensorView<const T>() const { return view(); }
  template <class... I>
  T& operator()(I... idx) { return view()(idx...); }
  template <class... I>
  const T& operator()(I... idx) const { return view()(idx...); }
  T& operator[](index_t i) { return buf_[i]; }
  const T& operator[](index_t i) const { return buf_[i]; }
  void fill(T v) { std::fill(buf_.data(), buf_.data() + numel(), v); }

  // Copies any strided view of the same shape into dst.
  static void copy(TensorView<const T> src, TensorView<T> dst) {
    FOFA_CHECK(src.shape() == dst.shape(), "copy shape ", src.shape().str(), " -> ", dst.shape().str());
    const Shape& s = src.shape();
    index_t idx[kMaxRank] = {};
    const index_t n = s.numel();
    for (index_t e = 0; e < n; ++e) {
      index_t so = 0, d_o = 0;
      for (int k = 0; k < s.rank(); ++k) {
        so += idx[k] * src.stride(k);
        d_o += idx[k] * dst.stride(k);
      }
      dst.data()[d_o] = src.data()[so];
      for (int k = s.rank() - 1; k >= 0; --k) {
        if (++idx[k] < s[k]) break;
        idx[k] = 0;
      }
    }
  }

 private:
  Shape shape_;
  AlignedBuffer<T> buf_;
};

// Throws fofa::Error naming both shapes when they differ.
inline void check_shape(const char* what, const Shape& got, const Shape& want) {
  FOFA_CHECK(got == want, what, ": shape ", got.str(), " does not match expected ", want.str());
}

}  // namespace fofa
