// fofa/core/aligned.hpp — 64-byte aligned owning storage (cache line and AVX-512 width).
#pragma once

#include <cstddef>
#include <cstring>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>

#include "fofa/core/extent.hpp"

namespace fofa {

inline constexpr std::size_t kAlignment = 64;

// Rounds n elements of T up so the next buffer starts on a kAlignment boundary.
template <class T>
constexpr index_t aligned_count(index_t n) {
  constexpr index_t per_line = static_cast<index_t>(kAlignment / sizeof(T));
  return (n + per_line - 1) / per_line * per_line;
}

// Zero-initialised, 64-byte aligned array of trivially copyable T.
template <class T>
class AlignedBuffer {
  static_assert(std::is_trivially_copyable_v<T>);

 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(index_t n) { resize(n); }
  AlignedBuffer(const AlignedBuffer& o) : AlignedBuffer(o.size_) {
    if (size_) std::memcpy(ptr_.get(), o.ptr_.get(), bytes());
  }
  AlignedBuffer& operator=(const AlignedBuffer& o) {
    if (this != &o) {
      AlignedBuffer tmp(o);
      swap(tmp);
    }
    return *this;
  }
  AlignedBuffer(AlignedBuffer&& o) noexcept { swap(o); }
  AlignedBuffer& operator=(AlignedBuffer&& o) noexcept {
    swap(o);
    return *this;
  }

  // Discards the contents; the new storage is zeroed.
  void resize(index_t n) {
    FOFA_CHECK(n >= 0, "negative buffer size ", n);
    ptr_.reset();
    size_ = 0;
    if (n == 0) return;
    const std::size_t b = static_cast<std::size_t>(aligned_count<T>(n)) * sizeof(T);
    void* p = ::operator new(b, std::align_val_t(kAlignment));
    std::memset(p, 0, b);
    ptr_.reset(static_cast<T*>(p));
    size_ = n;
  }
  void swap(AlignedBuffer& o) noexcept {
    std::swap(ptr_, o.ptr_);
    std::swap(size_, o.size_);
  }

  T* data() { return ptr_.get(); }
  const T* data() const { return ptr_.get(); }
  index_t size() const { return size_; }
  std::size_t bytes() const { return static_cast<std::size_t>(size_) * sizeof(T); }
  T& operator[](index_t i) { return ptr_.get()[i]; }
  const T& operator[](index_t i) const { return ptr_.get()[i]; }

 private:
  struct Free {
    void operator()(T* p) const { ::operator delete(p, std::align_val_t(kAlignment)); }
  };
  std::unique_ptr<T, Free> ptr_;
  index_t size_ = 0;
};

}  // namespace fofa
