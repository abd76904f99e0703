// A warmed-up session allocates nothing (counted by replacing the global operator new in this
// test program), and one immutable DeviceModel serves two threads with their own sessions.
#include <doctest/doctest.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <thread>
#include <vector>

#include "device_test_util.hpp"

namespace {
// Counts every heap allocation through operator new while `counting` is set (test-only globals).
std::atomic<long> g_allocations{0};
std::atomic<bool> g_counting{false};

void* counted_alloc(std::size_t n, std::size_t align) {
  if (g_counting.load(std::memory_order_relaxed)) g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (n == 0) n = 1;
  void* p = align > alignof(std::max_align_t) ? std::aligned_alloc(align, (n + align - 1) / align * align)
                                              : std::malloc(n);
  if (!p) throw std::bad_alloc();
  return p;
}
}  // namespace

void* operator new(std::size_t n) { return counted_alloc(n, 0); }
void* operator new[](std::size_t n) { return counted_alloc(n, 0); }
void* operator new(std::size_t n, std::align_val_t a) { return counted_alloc(n, static_cast<std::size_t>(a)); }
void* operator new[](std::size_t n, std::align_val_t a) { return counted_alloc(n, static_cast<std::size_t>(a)); }
// The nothrow forms too (std::stable_sort's temporary buffer uses them): every new and delete of
// the program must pair with this malloc/free pair.
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return counted_alloc(n, 0);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t n, const std::nothrow_t& t) noexcept { return operator new(n, t); }
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  try {
    return counted_alloc(n, static_cast<std::size_t>(a));
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t& t) noexcept {
  return operator new(n, a, t);
}
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }

using namespace fofa;
using namespace fofa::testing;

TEST_CASE("the allocation counter sees allocations (the test can fail)") {
  g_allocations = 0;
  g_counting = true;
  auto* v = new std::vector<int>(100);
  g_counting = false;
  delete v;
  CHECK(g_allocations.load() >= 2);
}

TEST_CASE("a warmed-up device session allocates nothing in reset, push and rerank") {
  for (bool incremental : {true, false}) {
    CAPTURE(incremental);
    ModelConfig cfg;  // SPEC default dimensions
    cfg.items = 500;
    cfg.max_len = 10;
    if (!incremental) cfg.positions = Positions::end;
    const ForwardOfa model = make_model(cfg, 4);
    const auto history = ids_from(3, 6, cfg.items);
    const auto candidates = ids_from(4, 40, cfg.items);
    const DeviceModel dm = device_from_bytes(device_bytes(model, model.adapt(history, 0.5f), history, candidates));
    DeviceSession s(dm);
    s.rerank();  // warm-up
    const std::vector<std::int32_t> subset(candidates.begin(), candidates.begin() + 10);
    g_allocations = 0;
    g_counting = true;
    s.reset(history);
    for (int i = 0; i < 8; ++i) s.push(candidates[static_cast<std::size_t>(i)]);  // fills and slides the window
    const RankingView r = s.rerank();
    const RankingView r2 = s.rerank(subset);
    g_counting = false;
    CHECK(g_allocations.load() == 0);
    CHECK(r2.items.size() == 10);
    (void)r;
  }
}

TEST_CASE("one DeviceModel, two threads, each with its own session") {
  const ModelConfig cfg = tiny_config();
  const ForwardOfa model = make_model(cfg, 17);
  const auto history = ids_from(30, 4, cfg.items);
  const auto candidates = ids_from(31, 16, cfg.items);
  const DeviceModel dm = device_from_bytes(device_bytes(model, model.adapt(history, 0.5f), history, candidates));

  // Each thread plays a different click sequence; the expected scores come from one thread first.
  auto play = [&](int user) {
    std::vector<std::vector<float>> out;
    DeviceSession s(dm);
    for (int round = 0; round < 200; ++round) {
      if (round % 10 == 0) s.reset(history);
      s.push(candidates[static_cast<std::size_t>((round * (user + 3)) % 16)]);
      const RankingView r = s.rerank();
      out.emplace_back(r.scores.begin(), r.scores.end());
    }
    return out;
  };
  const auto expect0 = play(0), expect1 = play(1);
  std::vector<std::vector<float>> got0, got1;
  std::thread a([&] { got0 = play(0); });
  std::thread b([&] { got1 = play(1); });
  a.join();
  b.join();
  CHECK(got0 == expect0);
  CHECK(got1 == expect1);
  CHECK(expect0 != expect1);
}
