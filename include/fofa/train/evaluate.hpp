// fofa/train/evaluate.hpp — SPEC section 7 evaluation of a TrainableModel on a leave-one-out split.
//
// Validation: history = the user's training items, positive = the validation item. Test: history =
// training items + validation item, positive = the test item. Sampled protocol: the positive plus
// `negatives` items the user never interacted with (per-user seeded stream, so the candidates do
// not depend on threads or on which model is evaluated); optionally full ranking over all items
// except the user's other interactions. Also reports the blocks kept and the FLOPs fraction of the
// deterministic inference mask. Users are split over `threads` threads; the result does not depend
// on the thread count (per-user results are merged in user order).
// finetune.steps > 0: SPEC 8 on-device fine-tuning (finetune.hpp): every evaluated user is scored
// by a private copy of the static model after that many SGD steps on the user's own history (the
// items before the evaluated one); the shared model is not modified. steps = 0 is plain evaluation.
// A non-finite score (finite weights that overflow float) is an error naming the user and the
// candidate (model/plan.hpp check_finite_scores), never a ranking of infinities or NaNs.
#pragma once

#include <algorithm>
#include <exception>
#include <optional>
#include <thread>
#include <vector>

#include "fofa/train/dataset.hpp"
#include "fofa/train/finetune.hpp"
#include "fofa/train/metrics.hpp"
#include "fofa/train/model_graph.hpp"

namespace fofa::train {

enum class EvalSplit { validation, test };

struct EvalOptions {
  EvalSplit split = EvalSplit::test;
  int negatives = 100;
  std::uint64_t seed = 42;
  double budget = 1.0;
  std::int64_t max_users = 0;  // > 0: a seeded subset of this many evaluated users
  bool full_ranking = false;
  int threads = 1;
  FinetuneOptions finetune{};  // steps = 0: no fine-tuning (exactly the static evaluation)
};

// The per-user stream of fine-tuning negatives (independent of threads and of the candidates).
inline std::uint64_t finetune_stream(std::size_t user) { return 0xF17E000000000000ull ^ static_cast<std::uint64_t>(user); }

struct EvalResult {
  RankingMetrics sampled, full;
  std::int64_t users = 0;
  double blocks_kept = 0;     // mean over users
  double flops_fraction = 0;  // mean kept blocks / L (blocks have equal cost)
  std::vector<std::int64_t> block_chosen;     // per block: users for whom it was kept
  std::vector<std::int64_t> kept_histogram;   // [0..L]: users keeping that many blocks
  double finetune_steps = 0;   // mean SGD steps run per user (users with < 2 history items run none)
  double finetune_flops = 0;   // mean fine-tuning FLOPs per request: steps * finetune_step_flops(config)
};

template <class T>
EvalResult evaluate(const TrainableModel<T>& model, const SplitData& data, const EvalOptions& opt) {
  FOFA_CHECK(opt.threads >= 1, "evaluation needs at least one thread, got ", opt.threads);
  FOFA_CHECK(opt.negatives >= 1, "evaluation needs at least one sampled negative, got ", opt.negatives);
  FOFA_CHECK(opt.max_users >= 0, "max_users must be >= 0 (0: every user), got ", opt.max_users);
  check_budget(opt.budget);
  opt.finetune.validate();
  FOFA_CHECK(opt.finetune.steps == 0 || !model.adaptive(),
             "on-device fine-tuning is defined for static models (controller and mapper off)");
  FOFA_CHECK(data.items <= model.config().items, "data set has item ids up to ",
             data.items, " but the model knows ", model.config().items);
  std::vector<std::size_t> users;
  for (std::size_t u = 0; u < data.users.size(); ++u)
    if (data.users[u].evaluated()) users.push_back(u);
  FOFA_CHECK(!users.empty(), "no user to evaluate: the leave-one-out split evaluates users with 3 or more ",
             "interactions, and this data set has none");
  if (opt.max_users > 0 && static_cast<std::int64_t>(users.size()) > opt.max_users) {
    Rng rng(opt.seed, 0x5e1ec7);
    for (std::size_t i = 0; i < static_cast<std::size_t>(opt.max_users); ++i)
      std::swap(users[i], users[i + rng.below(users.size() - i)]);
    users.resize(static_cast<std::size_t>(opt.max_users));
    std::sort(users.begin(), users.end());
  }
  const index_t L = model.config().blocks;
  struct PerUser {
    std::int64_t rank = 0, full_rank = 0;
    int kept = 0, finetune_steps = 0;
    std::vector<int> mask;
  };
  std::vector<PerUser> per(users.size());
  auto work = [&](std::size_t begin, std::size_t end) {
    autograd::GradSet<T> unused(model.params());
    autograd::Tape<T> tape(const_cast<ParamSet<T>&>(model.params()), unused);  // forward only: never writes params
    std::optional<DeviceFinetuner<T>> ft;
    if (opt.finetune.steps > 0) ft.emplace(model, opt.finetune);
    std::vector<std::int32_t> all_items;
    if (opt.full_ranking)
      for (std::int32_t i = 1; i <= static_cast<std::int32_t>(model.config().items); ++i) all_items.push_back(i);
    for (std::size_t i = begin; i < end; ++i) {
      const std::size_t u = users[i];
      const UserSplit& s = data.users[u];
      std::vector<std::int32_t> history = s.train;
      std::int32_t positive = s.valid;
      if (opt.split == EvalSplit::test) {
        history.push_back(s.valid);
        positive = s.test;
      }
      const auto cands = sampled_candidates(data, u, positive, opt.seed, opt.negatives);
      std::vector<int> mask;
      if (ft) per[i].finetune_steps = ft->run(history, opt.seed, finetune_stream(u));
      const auto scores = ft ? ft->scores(history, cands, opt.budget, &mask)
                             : model.forward_scores(tape, history, cands, opt.budget, &mask);
      check_finite_scores(scores, cands, "evaluation of user ", u, " (0-based, in data file order): ");
      per[i].rank = rank_of_positive(scores);
      per[i].mask = mask;
      per[i].kept = static_cast<int>(std::count(mask.begin(), mask.end(), 1));
      tape.reset();
      if (opt.full_ranking) {
        std::vector<float> all(1, 0.0f);
        const auto s_all = ft ? ft->scores(history, all_items, opt.budget)
                              : model.forward_scores(tape, history, all_items, opt.budget);
        check_finite_scores(s_all, all_items, "evaluation of user ", u, " (0-based, in data file order): ");
        all.insert(all.end(), s_all.begin(), s_all.end());
        per[i].full_rank = rank_full(all, positive, data.history_sorted[u]);
        tape.reset();
      }
    }
  };
  const std::size_t nt = std::min<std::size_t>(static_cast<std::size_t>(opt.threads), std::max<std::size_t>(users.size(), 1));
  std::vector<std::thread> pool;
  const std::size_t chunk = (users.size() + nt - 1) / nt;
  // One slot per thread: the error reported is that of the lowest failing user's chunk, whatever
  // the timing, so an error message does not depend on the thread count either.
  std::vector<std::exception_ptr> failures(nt);
  auto run_chunk = [&](std::size_t t) {
    try {
      work(std::min(users.size(), t * chunk), std::min(users.size(), (t + 1) * chunk));
    } catch (...) {
      failures[t] = std::current_exception();
    }
  };
  for (std::size_t t = 1; t < nt; ++t) pool.emplace_back(run_chunk, t);
  run_chunk(0);
  for (auto& th : pool) th.join();
  for (const std::exception_ptr& f : failures)
    if (f) std::rethrow_exception(f);

  EvalResult r;
  r.users = static_cast<std::int64_t>(users.size());
  r.block_chosen.assign(static_cast<std::size_t>(L), 0);
  r.kept_histogram.assign(static_cast<std::size_t>(L + 1), 0);
  for (const PerUser& p : per) {
    r.sampled.add(p.rank);
    if (opt.full_ranking) r.full.add(p.full_rank);
    r.blocks_kept += p.kept;
    r.finetune_steps += p.finetune_steps;
    ++r.kept_histogram[static_cast<std::size_t>(p.kept)];
    for (std::size_t k = 0; k < p.mask.size(); ++k) r.block_chosen[k] += p.mask[k];
  }
  if (r.users) {
    r.blocks_kept /= static_cast<double>(r.users);
    r.finetune_steps /= static_cast<double>(r.users);
  }
  r.finetune_flops = r.finetune_steps * finetune_step_flops(model.config());
  r.flops_fraction = r.blocks_kept / static_cast<double>(L);
  return r;
}

}  // namespace fofa::train
