// fofa/autograd/tape.hpp — a minimal reverse-mode autograd: parameters, gradients, and a tape.
//
// ParamSet<T> holds named trainable tensors (DESIGN tensor names, PyTorch shapes). A Tape<T>
// records one computation in forward order: each op allocates its result (value + gradient,
// zeroed lazily: see "Gradients" in Tape) from an arena that is reused across steps, and pushes a
// backward closure; backward() runs the closures in reverse. Every node is 2-D [rows, cols] row-major (vectors are [1, n]).
// Gradients of parameters ADD into a GradSet<T> bound to the tape, so one GradSet per thread gives
// data parallelism over a batch (reduce with GradSet::add). Parameters flagged sparse_rows (item
// embeddings) record which rows received gradient, so zeroing and reducing touch only those rows.
// T is float for training and double for finite-difference gradient checks.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <type_traits>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "fofa/core/error.hpp"
#include "fofa/core/tensor.hpp"
#include "fofa/kernels/kernel_table.hpp"

namespace fofa::autograd {

// A handle to a tape node.
struct Var {
  int id = -1;
  bool valid() const { return id >= 0; }
};

template <class T>
struct Param {
  std::string name;
  Shape shape;
  std::vector<T> value;
  bool sparse_rows = false;  // gradient arrives in whole rows (embedding tables)
  index_t rows() const { return shape.rank() >= 1 ? shape[0] : 1; }
  index_t cols() const { return shape.rank() >= 2 ? shape.numel() / shape[0] : shape.numel(); }
};

template <class T>
class ParamSet {
 public:
  int add(std::string name, Shape shape, bool sparse_rows = false) {
    FOFA_CHECK(!index_.count(name), "duplicate parameter ", name);
    index_[name] = static_cast<int>(params_.size());
    params_.push_back(Param<T>{std::move(name), shape, std::vector<T>(static_cast<std::size_t>(shape.numel())),
                               sparse_rows});
    return static_cast<int>(params_.size()) - 1;
  }
  int size() const { return static_cast<int>(params_.size()); }
  Param<T>& operator[](int i) { return params_[static_cast<std::size_t>(i)]; }
  const Param<T>& operator[](int i) const { return params_[static_cast<std::size_t>(i)]; }
  bool contains(const std::string& name) const { return index_.count(name) != 0; }
  int find(const std::string& name) const {
    auto it = index_.find(name);
    FOFA_CHECK(it != index_.end(), "no parameter named ", name);
    return it->second;
  }
  Param<T>& at(const std::string& name) { return params_[static_cast<std::size_t>(find(name))]; }
  const Param<T>& at(const std::string& name) const { return params_[static_cast<std::size_t>(find(name))]; }
  index_t numel() const {
    index_t n = 0;
    for (auto& p : params_) n += p.shape.numel();
    return n;
  }
  auto begin() { return params_.begin(); }
  auto end() { return params_.end(); }
  auto begin() const { return params_.begin(); }
  auto end() const { return params_.end(); }

 private:
  std::vector<Param<T>> params_;
  std::unordered_map<std::string, int> index_;
};

// Gradients for every parameter of a ParamSet (same order), dense storage, sparse-row bookkeeping.
template <class T>
class GradSet {
 public:
  GradSet() = default;
  explicit GradSet(const ParamSet<T>& ps) {
    grads_.resize(static_cast<std::size_t>(ps.size()));
    touched_.resize(grads_.size());
    marks_.resize(grads_.size());
    sparse_.resize(grads_.size());
    cols_.resize(grads_.size());
    for (int i = 0; i < ps.size(); ++i) {
      const auto u = static_cast<std::size_t>(i);
      grads_[u].assign(static_cast<std::size_t>(ps[i].shape.numel()), T(0));
      sparse_[u] = ps[i].sparse_rows;
      cols_[u] = ps[i].cols();
      if (sparse_[u]) marks_[u].assign(static_cast<std::size_t>(ps[i].rows()), 0);
    }
  }
  int size() const { return static_cast<int>(grads_.size()); }
  T* data(int i) { return grads_[static_cast<std::size_t>(i)].data(); }
  const T* data(int i) const { return grads_[static_cast<std::size_t>(i)].data(); }
  std::vector<T>& grad(int i) { return grads_[static_cast<std::size_t>(i)]; }
  const std::vector<T>& grad(int i) const { return grads_[static_cast<std::size_t>(i)]; }
  bool sparse(int i) const { return sparse_[static_cast<std::size_t>(i)]; }
  const std::vector<index_t>& touched_rows(int i) const { return touched_[static_cast<std::size_t>(i)]; }
  // Records that row r of sparse parameter i holds gradient.
  void touch(int i, index_t r) {
    const auto u = static_cast<std::size_t>(i);
    if (!marks_[u][static_cast<std::size_t>(r)]) {
      marks_[u][static_cast<std::size_t>(r)] = 1;
      touched_[u].push_back(r);
    }
  }
  void zero() {
    for (std::size_t u = 0; u < grads_.size(); ++u) {
      if (sparse_[u]) {
        const auto c = static_cast<std::size_t>(cols_[u]);
        for (index_t r : touched_[u]) {
          std::fill_n(grads_[u].data() + static_cast<std::size_t>(r) * c, c, T(0));
          marks_[u][static_cast<std::size_t>(r)] = 0;
        }
        touched_[u].clear();
      } else {
        std::fill(grads_[u].begin(), grads_[u].end(), T(0));
      }
    }
  }
  // this += other (same ParamSet layout); sparse parameters only over other's touched rows.
  void add(const GradSet& o) {
    FOFA_CHECK(o.grads_.size() == grads_.size(), "GradSet layouts differ");
    for (std::size_t u = 0; u < grads_.size(); ++u) {
      if (sparse_[u]) {
        const auto c = static_cast<std::size_t>(cols_[u]);
        for (index_t r : o.touched_[u]) {
          touch(static_cast<int>(u), r);
          T* dst = grads_[u].data() + static_cast<std::size_t>(r) * c;
          const T* src = o.grads_[u].data() + static_cast<std::size_t>(r) * c;
          for (std::size_t k = 0; k < c; ++k) dst[k] += src[k];
        }
      } else {
        T* dst = grads_[u].data();
        const T* src = o.grads_[u].data();
        for (std::size_t k = 0, n = grads_[u].size(); k < n; ++k) dst[k] += src[k];
      }
    }
  }
  // ---- slice-parallel reduction (Trainer::step): worker w of W owns one contiguous element range
  // of every parameter, so the workers write disjoint memory while each element is still summed in
  // the order this + o_1 + o_2 + ... (bit-identical to add()). The bookkeeping of sparse rows stays
  // serial: merge_touched(o) for every o in order, then add_slice() per worker and parameter.

  // The [begin, end) element range of parameter i owned by worker w of W: whole rows for sparse
  // parameters, whole 64-byte lines otherwise (no false sharing at slice boundaries).
  std::pair<std::size_t, std::size_t> slice(int i, int w, int W) const {
    const auto u = static_cast<std::size_t>(i);
    const std::size_t n = grads_[u].size();
    const std::size_t unit =
        sparse_[u] ? std::max<std::size_t>(1, static_cast<std::size_t>(cols_[u])) : std::max<std::size_t>(1, 64 / sizeof(T));
    const std::size_t units = (n + unit - 1) / unit;
    const auto at = [&](int k) {
      return std::min(n, units * static_cast<std::size_t>(k) / static_cast<std::size_t>(W) * unit);
    };
    return {at(w), at(w + 1)};
  }
  // The row bookkeeping of add(o): marks o's touched rows of sparse parameters as touched here, in
  // the order add() would.
  void merge_touched(const GradSet& o) {
    FOFA_CHECK(o.grads_.size() == grads_.size(), "GradSet layouts differ");
    for (std::size_t u = 0; u < grads_.size(); ++u)
      if (sparse_[u])
        for (index_t r : o.touched_[u]) touch(static_cast<int>(u), r);
  }
  // The data of add(o) over elements [begin, end) of parameter i (row-aligned for sparse
  // parameters, which add only o's touched rows). Slices of distinct workers may run concurrently.
  void add_slice(const GradSet& o, int i, std::size_t begin, std::size_t end) {
    const auto u = static_cast<std::size_t>(i);
    if (sparse_[u]) {
      const auto c = static_cast<std::size_t>(cols_[u]);
      for (index_t r : o.touched_[u]) {
        const std::size_t off = static_cast<std::size_t>(r) * c;
        if (off < begin || off >= end) continue;
        T* dst = grads_[u].data() + off;
        const T* src = o.grads_[u].data() + off;
        for (std::size_t k = 0; k < c; ++k) dst[k] += src[k];
      }
    } else {
      T* dst = grads_[u].data();
      const T* src = o.grads_[u].data();
      for (std::size_t k = begin; k < end; ++k) dst[k] += src[k];
    }
  }
  // zero() over elements [begin, end) of parameter i (sparse: the touched rows there and their
  // marks). Once every slice of every parameter is zero, clear_touched() finishes zero().
  void zero_slice(int i, std::size_t begin, std::size_t end) {
    const auto u = static_cast<std::size_t>(i);
    if (sparse_[u]) {
      const auto c = static_cast<std::size_t>(cols_[u]);
      for (index_t r : touched_[u]) {
        const std::size_t off = static_cast<std::size_t>(r) * c;
        if (off < begin || off >= end) continue;
        std::fill_n(grads_[u].data() + off, c, T(0));
        marks_[u][static_cast<std::size_t>(r)] = 0;
      }
    } else {
      std::fill(grads_[u].begin() + static_cast<std::ptrdiff_t>(begin), grads_[u].begin() + static_cast<std::ptrdiff_t>(end),
                T(0));
    }
  }
  void clear_touched() {
    for (auto& t : touched_) t.clear();
  }
  void scale(T s) {
    for (std::size_t u = 0; u < grads_.size(); ++u) {
      if (sparse_[u]) {
        const auto c = static_cast<std::size_t>(cols_[u]);
        for (index_t r : touched_[u])
          for (std::size_t k = 0; k < c; ++k) grads_[u][static_cast<std::size_t>(r) * c + k] *= s;
      } else {
        for (auto& g : grads_[u]) g *= s;
      }
    }
  }
  // Sum of squares of all gradient entries (for global-norm clipping).
  double squared_norm() const {
    double s = 0;
    for (std::size_t u = 0; u < grads_.size(); ++u) {
      if (sparse_[u]) {
        const auto c = static_cast<std::size_t>(cols_[u]);
        for (index_t r : touched_[u])
          for (std::size_t k = 0; k < c; ++k) {
            const double g = static_cast<double>(grads_[u][static_cast<std::size_t>(r) * c + k]);
            s += g * g;
          }
      } else {
        for (T g : grads_[u]) s += static_cast<double>(g) * static_cast<double>(g);
      }
    }
    return s;
  }
  // The same sum of squares in an unspecified order (eight interleaved partial sums instead of one
  // chain of dependent additions, several times faster), and the number n of entries it adds (the
  // dense parameters plus the touched rows of the sparse ones). Both sums add n exact non-negative
  // products, so each is within (n - 1) u of the exact sum (u = 2^-53) and they differ by at most
  // about 2 n u relative; either is NaN or infinite exactly when the other is.
  std::pair<double, std::size_t> squared_norm_unordered() const {
    double acc[8] = {};
    std::size_t n = 0;
    auto add = [&](const T* g, std::size_t len) {
      std::size_t k = 0;
      for (; k + 8 <= len; k += 8)
        for (std::size_t j = 0; j < 8; ++j) {
          const double x = static_cast<double>(g[k + j]);
          acc[j] += x * x;
        }
      for (; k < len; ++k) acc[k % 8] += static_cast<double>(g[k]) * static_cast<double>(g[k]);
      n += len;
    };
    for (std::size_t u = 0; u < grads_.size(); ++u) {
      if (sparse_[u]) {
        const auto c = static_cast<std::size_t>(cols_[u]);
        for (index_t r : touched_[u]) add(grads_[u].data() + static_cast<std::size_t>(r) * c, c);
      } else {
        add(grads_[u].data(), grads_[u].size());
      }
    }
    return {((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])), n};
  }

 private:
  std::vector<std::vector<T>> grads_;
  std::vector<std::vector<index_t>> touched_;
  std::vector<std::vector<unsigned char>> marks_;
  std::vector<bool> sparse_;
  std::vector<index_t> cols_;
};

// Bump allocator for node storage; reset() keeps the chunks for the next step.
template <class T>
class Arena {
 public:
  // n elements, zeroed unless zero = false (the caller overwrites every element).
  T* alloc(index_t n, bool zero = true) {
    const auto need = static_cast<std::size_t>(std::max<index_t>(n, 1));
    while (chunk_ < chunks_.size() && used_ + need > chunks_[chunk_].size()) {
      ++chunk_;
      used_ = 0;
    }
    if (chunk_ == chunks_.size()) {
      chunks_.emplace_back(std::max<std::size_t>(need, kChunk));
      used_ = 0;
    }
    T* p = chunks_[chunk_].data() + used_;
    used_ += (need + 15) / 16 * 16;  // 64-byte steps for float
    if (zero) std::fill_n(p, need, T(0));
    return p;
  }
  void reset() {
    chunk_ = 0;
    used_ = 0;
  }

 private:
  static constexpr std::size_t kChunk = std::size_t{1} << 20;
  std::vector<std::vector<T>> chunks_;
  std::size_t chunk_ = 0, used_ = 0;
};

template <class T>
class Tape {
 public:
  struct Node {
    index_t rows = 0, cols = 0;
    T* value = nullptr;
    T* grad = nullptr;
    int param = -1;  // the dense parameter this node aliases (param()), else -1
    int root = -1;   // the node that made the gradient storage (a reshape shares its source's)
  };

  Tape(ParamSet<T>& params, GradSet<T>& grads) : params_(&params), grads_(&grads) {
    FOFA_CHECK(grads.size() == params.size(), "GradSet does not match the ParamSet");
  }

  // New node with zeroed value and a zero gradient (see "Gradients" below).
  Var make(index_t rows, index_t cols) {
    FOFA_CHECK(rows >= 0 && cols >= 0, "negative node shape [", rows, ", ", cols, "]");
    return push_fresh(rows, cols, arena_.alloc(rows * cols));
  }
  // New node whose value the caller overwrites entirely (not zeroed); a zero gradient.
  Var make_output(index_t rows, index_t cols) {
    FOFA_CHECK(rows >= 0 && cols >= 0, "negative node shape [", rows, ", ", cols, "]");
    return push_fresh(rows, cols, arena_.alloc(rows * cols, false));
  }
  // A constant input (gradient computed but unused).
  Var constant(index_t rows, index_t cols, const T* values) {
    Var v = make(rows, cols);
    std::copy_n(values, rows * cols, node(v).value);
    return v;
  }
  // A dense parameter as a node that aliases its value and its gradient in the GradSet.
  // Shape [rows, cols] = [shape[0], rest] (a 1-D parameter is [1, n]).
  Var param(int index) {
    auto& p = (*params_)[index];
    FOFA_CHECK(!p.sparse_rows, "parameter ", p.name, " is row-sparse: use gather()");
    const index_t rows = p.shape.rank() >= 2 ? p.shape[0] : 1;
    const index_t cols = p.shape.numel() / std::max<index_t>(rows, 1);
    return push_ready(Node{rows, cols, p.value.data(), grads_->data(index), index});
  }
  Var param(const std::string& name) { return param(params_->find(name)); }
  // A node over caller-owned value and gradient storage of rows * cols elements (e.g. part of a
  // node of another tape): ops read the value there and ADD their gradient there.
  Var alias(index_t rows, index_t cols, T* value, T* grad) {
    FOFA_CHECK(rows >= 0 && cols >= 0 && value && grad, "alias needs storage for [", rows, ", ", cols, "]");
    return push_ready(Node{rows, cols, value, grad});
  }
  // A node sharing v's storage with a new [rows, cols] shape (row-major reshape).
  Var reshape(Var v, index_t rows, index_t cols) {
    Node n = node(v);
    FOFA_CHECK(n.rows * n.cols == rows * cols, "cannot reshape [", n.rows, ", ", n.cols, "] to [", rows, ", ", cols,
               "]");
    n.rows = rows;
    n.cols = cols;
    nodes_.push_back(n);
    state_.push_back(State::ready);  // unused: the state is the root's
    return Var{static_cast<int>(nodes_.size()) - 1};
  }

  Node& node(Var v) {
    FOFA_CHECK(v.id >= 0 && v.id < static_cast<int>(nodes_.size()), "invalid tape variable ", v.id);
    return nodes_[static_cast<std::size_t>(v.id)];
  }
  T* value(Var v) { return node(v).value; }
  // ---- Gradients ----
  // A node's gradient storage starts unwritten: not zeroed until something needs it, since most
  // nodes' gradients are overwritten by the first op that back-propagates into them. grad(v) hands
  // out the storage for reading and adding, zeroed first (inside an open block: at close_block). An
  // op's backward closure may instead ask at backward time: grad_to_write(v) gives the storage and
  // whether it is still unwritten, in which case the op must write every element exactly once, as
  // "0 + its contribution" would come out (+0 for an exact zero: x + 0.0f, which FMA contraction
  // keeps; a GEMM's chain starting from +0 already does), and grad_to_read(v) gives the storage
  // zeroed if nothing was written there. Ops that use these never call grad() on those nodes.
  T* grad(Var v) {
    Node& n = node(v);
    State& s = state_[static_cast<std::size_t>(n.root)];
    if (s == State::unwritten) {
      if (block_open_ && n.root >= block_first_node_) {
        s = State::zero_at_close;  // nothing reads or writes gradients before backward()
      } else {
        zero_root(n.root);
        s = State::ready;
      }
    }
    return n.grad;
  }
  struct GradWrite {
    T* grad;
    bool overwrite;  // unwritten: write every element once, as 0 + contribution
  };
  GradWrite grad_to_write(Var v) {
    Node& n = node(v);
    State& s = state_[static_cast<std::size_t>(n.root)];
    if (s == State::unwritten || s == State::dead) {
      if (s == State::unwritten) s = State::ready;
      return {n.grad, true};
    }
    return {n.grad, false};
  }
  T* grad_to_read(Var v) {
    Node& n = node(v);
    State& s = state_[static_cast<std::size_t>(n.root)];
    if (s == State::unwritten) {
      zero_root(n.root);
      s = State::ready;
    }
    return n.grad;
  }
  index_t rows(Var v) { return node(v).rows; }
  index_t cols(Var v) { return node(v).cols; }
  T scalar(Var v) {
    FOFA_CHECK(rows(v) * cols(v) == 1, "node is not a scalar");
    return value(v)[0];
  }

  void on_backward(std::function<void()> f) { backward_.push_back(std::move(f)); }
  // The number of backward closures recorded so far (a position for skip_backward()).
  std::size_t closures() const { return backward_.size(); }
  // Drops the closures recorded in [begin, end). Exact when the gradient reaching the nodes they
  // back-propagate is known to be zero (every backward is linear in its output gradient): e.g. a
  // block whose output the mask multiplies by 0.
  void skip_backward(std::size_t begin, std::size_t end) {
    FOFA_CHECK(begin <= end && end <= backward_.size(), "skip_backward [", begin, ", ", end, ") of ",
               backward_.size(), " closures");
    for (std::size_t i = begin; i < end; ++i) backward_[i] = nullptr;
  }
  // A block of ops whose backward the caller may drop once it has recorded them (a block the
  // controller's mask removes: TrainableModel::backbone). Gradients that grad() hands out inside
  // an open block are zeroed at close_block(b, false); close_block(b, true) drops the block's
  // closures (skip_backward) and never zeroes its nodes' gradients: a node's gradient is read only
  // by the closures of the ops that made it, which are dropped, so what later closures add there
  // is never read. Blocks do not nest.
  struct Block {
    std::size_t closures = 0;
    int first_node = 0;
  };
  Block open_block() {
    FOFA_CHECK(!block_open_, "open_block: a block is already open");
    block_open_ = true;
    block_first_node_ = static_cast<int>(nodes_.size());
    return {backward_.size(), block_first_node_};
  }
  void close_block(Block b, bool drop) {
    FOFA_CHECK(block_open_ && b.first_node == block_first_node_ && b.first_node <= static_cast<int>(nodes_.size()),
               "close_block without open_block");
    if (drop) skip_backward(b.closures, backward_.size());
    for (std::size_t i = static_cast<std::size_t>(b.first_node); i < nodes_.size(); ++i) {
      if (nodes_[i].root != static_cast<int>(i)) continue;
      State& s = state_[i];
      if (drop && (s == State::unwritten || s == State::zero_at_close)) {
        s = State::dead;
      } else if (s == State::zero_at_close) {
        zero_root(static_cast<int>(i));
        s = State::ready;
      }
    }
    block_open_ = false;
  }
  // Seeds d(out)/d(out) = seed and runs every recorded backward closure in reverse order.
  void backward(Var out, T seed = T(1)) {
    FOFA_CHECK(!block_open_, "backward() inside an open block (close_block first)");
    FOFA_CHECK(rows(out) * cols(out) == 1, "backward() needs a scalar output, got [", rows(out), ", ", cols(out),
               "]");
    grad(out)[0] += seed;
    for (auto it = backward_.rbegin(); it != backward_.rend(); ++it)
      if (*it) (*it)();
  }
  // Forgets all nodes (parameter gradients stay in the GradSet).
  void reset() {
    nodes_.clear();
    backward_.clear();
    arena_.reset();
    state_.clear();
    block_open_ = false;
  }

  ParamSet<T>& params() { return *params_; }
  GradSet<T>& grads() { return *grads_; }
  T* scratch(index_t n) { return arena_.alloc(n); }
  // Arena memory the caller overwrites before reading (not zeroed); lives until reset().
  T* scratch_uninit(index_t n) { return arena_.alloc(n, false); }
  // A reusable buffer of n elements (slot 0..3), valid until the next call with the same slot.
  T* temp(index_t n, int slot = 0) {
    auto& b = temp_[static_cast<std::size_t>(slot)];
    if (b.size() < static_cast<std::size_t>(n)) b.resize(static_cast<std::size_t>(n));
    return b.data();
  }

  // A reusable PackedMatrix for one-off packs (valid until the next call).
  kernels::PackedMatrix& packed_scratch() { return scratch_pack_; }

  // Packed-weight cache for the float GEMM kernels. Off by default: every product packs its
  // operand afresh. When on, the packed copy of a parameter matrix is reused until
  // invalidate_packed_weights(), so the caller must invalidate whenever parameter values change
  // (the trainer does at the start of every step).
  void cache_packed_weights(bool on) {
    cache_on_ = on;
    ++cache_gen_;
  }
  void invalidate_packed_weights() { ++cache_gen_; }
  // Whether packed_weight(w, ...) is served from the cache (w is a parameter and caching is on).
  bool caches_packed(Var w) { return cache_on_ && node(w).param >= 0; }
  // W = node w [N, K] packed for kernels::gemm: transposed = false gives y = x W^T (+ bias),
  // transposed = true gives y = x W (the weight [K, N] is W^T; no bias).
  const kernels::PackedMatrix& packed_weight(Var w, const T* bias, bool transposed) {
    static_assert(std::is_same_v<T, float>, "packed weights are float only");
    const Node& n = node(w);
    const kernels::KernelTable& kt = kernels::kernels();
    auto pack = [&](kernels::PackedMatrix& out) {
      if (!transposed)
        kt.pack_linear(n.rows, n.cols, n.value, n.cols, bias, out);
      else
        kt.pack_linear_t(n.cols, n.rows, n.value, n.cols, nullptr, out);
    };
    if (!cache_on_ || n.param < 0) {
      pack(tmp_pack_);
      return tmp_pack_;
    }
    if (packed_.size() < static_cast<std::size_t>(params_->size())) packed_.resize(static_cast<std::size_t>(params_->size()));
    PackEntry& e = packed_[static_cast<std::size_t>(n.param)][transposed ? 1 : 0];
    if (e.gen != cache_gen_ || e.bias != bias || e.table != &kt || e.pm.N != (transposed ? n.cols : n.rows) ||
        e.pm.K != (transposed ? n.rows : n.cols)) {
      pack(e.pm);
      e.gen = cache_gen_;
      e.bias = bias;
      e.table = &kt;
    }
    return e.pm;
  }

 private:
  ParamSet<T>* params_;
  GradSet<T>* grads_;
  std::vector<Node> nodes_;
  std::vector<std::function<void()>> backward_;
  Arena<T> arena_;
  // Per node (meaningful at roots): ready (zeroed or written: add to it), unwritten (stale arena
  // memory), zero_at_close (handed out by grad() inside the open block), dead (in a dropped block:
  // never read, so never zeroed).
  enum class State : unsigned char { ready, unwritten, zero_at_close, dead };
  std::vector<State> state_;
  bool block_open_ = false;
  int block_first_node_ = 0;
  Var push_ready(Node n) {
    n.root = static_cast<int>(nodes_.size());
    nodes_.push_back(n);
    state_.push_back(State::ready);
    return Var{n.root};
  }
  Var push_fresh(index_t rows, index_t cols, T* value) {
    Node n{rows, cols, value, arena_.alloc(rows * cols, false)};
    n.root = static_cast<int>(nodes_.size());
    nodes_.push_back(n);
    state_.push_back(State::unwritten);
    return Var{n.root};
  }
  void zero_root(int root) {
    const Node& n = nodes_[static_cast<std::size_t>(root)];
    std::fill_n(n.grad, std::max<index_t>(n.rows * n.cols, 1), T(0));
  }
  std::vector<T> temp_[4];
  struct PackEntry {
    kernels::PackedMatrix pm;
    std::uint64_t gen = 0;
    const T* bias = nullptr;
    const kernels::KernelTable* table = nullptr;
  };
  std::vector<std::array<PackEntry, 2>> packed_;
  kernels::PackedMatrix tmp_pack_, scratch_pack_;
  bool cache_on_ = false;
  std::uint64_t cache_gen_ = 1;
};

}  // namespace fofa::autograd
