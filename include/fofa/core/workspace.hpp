// fofa/core/workspace.hpp — a bump arena sized from a configuration, never from a guess.
//
// A layer or model describes the buffers one request needs with a WorkspacePlan (a list of
// element counts); the arena is allocated once with plan.bytes() and each request takes its
// buffers from it with take<T>(n), so a warmed-up request performs no heap allocation.
// Taking more than was planned throws fofa::Error (a bug in the plan, not a reason to grow).
#pragma once

#include <cstddef>

#include "fofa/core/aligned.hpp"

namespace fofa {

class WorkspacePlan {
 public:
  template <class T>
  WorkspacePlan& add(index_t count) {
    FOFA_CHECK(count >= 0, "negative workspace request ", count);
    bytes_ += static_cast<std::size_t>(aligned_count<T>(count)) * sizeof(T);
    return *this;
  }
  WorkspacePlan& add(const WorkspacePlan& other) {
    bytes_ += other.bytes_;
    return *this;
  }
  std::size_t bytes() const { return bytes_; }

 private:
  std::size_t bytes_ = 0;
};

class Workspace {
 public:
  Workspace() = default;
  explicit Workspace(const WorkspacePlan& plan) : buf_(static_cast<index_t>(plan.bytes())) {}

  template <class T>
  T* take(index_t count) {
    const std::size_t b = static_cast<std::size_t>(aligned_count<T>(count)) * sizeof(T);
    FOFA_CHECK(used_ + b <= buf_.bytes(), "workspace exhausted: need ", used_ + b, " bytes, planned ", buf_.bytes());
    T* p = reinterpret_cast<T*>(buf_.data() + used_);
    used_ += b;
    return p;
  }
  // Releases everything taken since `mark` (a value returned by used()).
  void rewind(std::size_t mark = 0) { used_ = mark; }
  std::size_t used() const { return used_; }
  std::size_t capacity() const { return buf_.bytes(); }

 private:
  AlignedBuffer<unsigned char> buf_;
  std::size_t used_ = 0;
};

}  // namespace fofa
