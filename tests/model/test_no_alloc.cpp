// After warm-up, ForwardOfa::score with a PreparedPlan and a Workspace from workspace_plan()
// performs no heap allocation (global operator new is counted in this test executable).
#include <doctest/doctest.h>

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <new>

#include "fofa/model/forward_ofa.hpp"
#include "fofa/model/init.hpp"

// GCC 12 pairs the replaced operator new/delete with malloc/free after inlining and warns falsely.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace {
std::atomic<long> g_allocations{0};
}

// Every replaceable form is replaced, so all allocations are counted and each pair matches.
namespace {
void* counted_malloc(std::size_t n, std::size_t align) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (n == 0) n = 1;
  if (align <= alignof(std::max_align_t)) return std::malloc(n);
  return std::aligned_alloc(align, (n + align - 1) / align * align);  // size: a multiple of align
}
}  // namespace

void* operator new(std::size_t n) {
  if (void* p = counted_malloc(n, 0)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return operator new(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return counted_malloc(n, 0); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return counted_malloc(n, 0); }
void* operator new(std::size_t n, std::align_val_t a) {
  if (void* p = counted_malloc(n, static_cast<std::size_t>(a))) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n, std::align_val_t a) { return operator new(n, a); }
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return counted_malloc(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return counted_malloc(n, static_cast<std::size_t>(a));
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }

using namespace fofa;

TEST_CASE("score with a prepared plan allocates nothing after warm-up") {
  for (Padding padding : {Padding::none, Padding::left_window}) {
    ModelConfig c;
    c.items = 200;
    c.d = 32;
    c.ffn = 64;
    c.max_len = 20;
    c.padding = padding;
    c.controller.width = 16;
    c.controller.extractor = ExtractorKind::gru;
    c.mapper.code_width = 16;
    c.mapper.rank = 4;
    const ForwardOfa m(c, random_weights(c, 9, {0.05f}));
    std::vector<std::int32_t> h, cand;
    for (int i = 0; i < 35; ++i) h.push_back(1 + (i * 37) % 200);
    for (int i = 0; i < 50; ++i) cand.push_back(1 + (i * 13) % 200);
    const auto prepared = m.prepare(m.adapt(h, 0.6f));
    Workspace ws(m.workspace_plan());
    std::vector<float> out(cand.size());
    m.score(prepared, h, cand, out, ws);  // warm-up
    const long before = g_allocations.load();
    for (int rep = 0; rep < 5; ++rep) {
      m.score(prepared, h, cand, out, ws);
      m.score(prepared, std::span(h).first(3), cand, out, ws);
    }
    CHECK(g_allocations.load() == before);
    // the counter does see allocations
    const DevicePlan again = m.adapt(h, 0.6f);
    CHECK(g_allocations.load() > before);
  }
}
