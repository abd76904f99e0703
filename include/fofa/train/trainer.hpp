// fofa/train/trainer.hpp — the training loop of SPEC section 6.
//
// Trainer draws every random quantity of a step (user order, session start t0, negatives, budget,
// Gumbel noise, dropout seed) in the calling thread from streams derived from (seed, epoch, user),
// then splits the batch into one contiguous chunk per thread; each thread back-propagates its
// samples in groups of kMapperGroup (TrainableModel::backward_batch) on its own two Tapes and
// GradSet, and the chunks' gradients are summed in thread order. So a run is deterministic for a given seed and thread count, and resuming from an
// end-of-epoch checkpoint reproduces the uninterrupted run bit for bit.
// Each epoch ends with validation (NDCG@10, SPEC 7 sampled protocol) and early stopping; the best
// weights are kept. Checkpoints are .fofa files (weights, Adam moments, best weights, progress in
// "meta.checkpoint") written atomically (temporary file, fsync, rename). A non-finite loss or
// gradient stops training with fofa::Error before the optimiser step, so the last checkpoint on
// disk is the last good state.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <iomanip>
#include <memory>
#include <optional>
#include <ostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "fofa/autograd/optim.hpp"
#include "fofa/io/config_json.hpp"
#include "fofa/io/crc32.hpp"
#include "fofa/io/fofa_file.hpp"
#include "fofa/train/evaluate.hpp"

namespace fofa::train {

struct TrainerOptions {
  int epochs = 20;
  int batch = 128;
  double lr = 1e-3, weight_decay = 0.0;
  bool adamw = false;
  double clip = 5.0;  // global gradient-norm limit; 0 disables
  double dropout = 0.2;
  int negatives = 1;  // per position
  double lambda = 1e-2, mu = 1.0;
  double budget_min = 0.2, budget_max = 1.0;
  double tau_start = 1.0, tau_end = 0.1;
  std::uint64_t seed = 1;
  static constexpr int kMaxThreads = 256;
  int threads = 2;
  int reduce_threads = 0;  // workers for gradient reduction, clipping and Adam; 0: `threads`
  int patience = 3;                // epochs without a better validation NDCG@10
  std::int64_t eval_users = 0;     // 0: every user
  double eval_budget = 1.0;
  int eval_negatives = 100;
  std::int64_t steps_per_epoch = 0;  // 0: one pass over the users
  std::string checkpoint;            // "" = none
  bool progress = true;
  // How progress is drawn (not part of the JSON options: the caller knows its stream). A bar
  // redrawn in place with '\r' four times a second suits a terminal; a log file gets a plain
  // line every 30 s instead.
  bool progress_bar = true;

  void validate() const {
    FOFA_CHECK(epochs >= 1, "epochs must be >= 1, got ", epochs);
    FOFA_CHECK(batch >= 1, "batch must be >= 1, got ", batch);
    FOFA_CHECK(lr > 0 && std::isfinite(lr), "lr must be > 0, got ", lr);
    FOFA_CHECK(weight_decay >= 0 && std::isfinite(weight_decay), "weight_decay must be >= 0, got ", weight_decay);
    FOFA_CHECK(clip >= 0 && std::isfinite(clip), "clip must be >= 0 (0 disables clipping), got ", clip);
    FOFA_CHECK(dropout >= 0 && dropout < 1, "dropout must be in [0, 1), got ", dropout);
    FOFA_CHECK(negatives >= 1, "negatives must be >= 1, got ", negatives);
    FOFA_CHECK(lambda >= 0 && std::isfinite(lambda), "lambda must be >= 0, got ", lambda);
    FOFA_CHECK(mu >= 0 && std::isfinite(mu), "mu must be >= 0, got ", mu);
    FOFA_CHECK(budget_min > 0 && budget_min <= budget_max && budget_max <= 1, "budget range [", budget_min, ", ",
               budget_max, "] must lie in (0, 1]");
    FOFA_CHECK(tau_start > 0 && tau_end > 0 && std::isfinite(tau_start) && std::isfinite(tau_end),
               "tau_start and tau_end must be > 0, got ", tau_start, " and ", tau_end);
    FOFA_CHECK(threads >= 1 && threads <= kMaxThreads, "threads must be in [1, ", kMaxThreads, "], got ", threads);
    FOFA_CHECK(reduce_threads >= 0 && reduce_threads <= kMaxThreads, "reduce_threads must be in [0, ", kMaxThreads,
               "], got ", reduce_threads);
    FOFA_CHECK(patience >= 1, "patience must be >= 1, got ", patience);
    FOFA_CHECK(eval_budget > 0 && eval_budget <= 1, "eval_budget must be in (0, 1], got ", eval_budget);
    FOFA_CHECK(eval_users >= 0, "eval_users must be >= 0 (0: every user), got ", eval_users);
    FOFA_CHECK(eval_negatives >= 1, "eval_negatives must be >= 1, got ", eval_negatives);
    FOFA_CHECK(steps_per_epoch >= 0, "steps_per_epoch must be >= 0 (0: one pass over the users), got ",
               steps_per_epoch);
  }
};

struct EpochRecord {
  int epoch = 0;
  double loss = 0, seconds = 0, sequences_per_second = 0;
  double valid_hr10 = 0, valid_ndcg10 = 0, blocks_kept = 0, train_flops_fraction = 0;
};

inline nlohmann::json to_json(const EpochRecord& r) {
  return {{"epoch", r.epoch},           {"loss", r.loss},
          {"seconds", r.seconds},       {"sequences_per_second", r.sequences_per_second},
          {"valid_hr10", r.valid_hr10}, {"valid_ndcg10", r.valid_ndcg10},
          {"blocks_kept", r.blocks_kept}, {"train_flops_fraction", r.train_flops_fraction}};
}

class Trainer {
 public:
  Trainer(const ModelConfig& cfg, const SplitData& data, TrainerOptions opt)
      : model_(cfg), data_(&data), data_fingerprint_(fingerprint(data)), opt_(std::move(opt)) {
    opt_.validate();
    FOFA_CHECK(data.items <= cfg.items, "data set has item ids up to ", data.items, " but config.items = ", cfg.items);
    model_.init(opt_.seed);
    adam_.emplace(model_.params(), autograd::AdamOptions{.lr = opt_.lr, .weight_decay = opt_.weight_decay,
                                                          .decoupled = opt_.adamw});
    for (std::size_t u = 0; u < data.users.size(); ++u)
      if (data.users[u].train.size() >= 2) trainable_users_.push_back(u);
    FOFA_CHECK(!trainable_users_.empty(), "no user has 2 or more training items");
    FOFA_CHECK(std::any_of(data.users.begin(), data.users.end(), [](const UserSplit& u) { return u.evaluated(); }),
               "no user has 3 or more interactions, so the leave-one-out split has nothing to validate or test");
    train_sorted_.resize(data.users.size());
    for (std::size_t u : trainable_users_) {
      auto h = data.users[u].train;
      std::sort(h.begin(), h.end());
      h.erase(std::unique(h.begin(), h.end()), h.end());
      FOFA_CHECK(static_cast<std::int64_t>(h.size()) < cfg.items, "user ", u, " interacted with every item: no negatives");
      train_sorted_[u] = std::move(h);
    }
    for (int t = 0; t < opt_.threads; ++t) grads_.emplace_back(model_.params());
    // Tapes live as long as the trainer so their arenas are reused by every step.
    // Two per thread: the outer one (structure and batched mapper heads) and the inner one
    // (one sample's backbone at a time) of TrainableModel::backward_batch.
    for (int t = 0; t < 2 * opt_.threads; ++t) {
      tapes_.push_back(std::make_unique<autograd::Tape<float>>(model_.params(), grads_[static_cast<std::size_t>(t / 2)]));
      tapes_.back()->cache_packed_weights(true);  // invalidated at the start of every step()
    }
    best_ = snapshot();
  }

  TrainableModel<float>& model() { return model_; }
  const TrainableModel<float>& model() const { return model_; }
  const std::vector<EpochRecord>& history() const { return history_; }
  int epochs_done() const { return epoch_; }
  double best_ndcg10() const { return best_ndcg_; }
  int best_epoch() const { return best_epoch_; }
  // Whether fit() has nothing left to do: all epochs run, or stopped early (also after resume()).
  bool finished() const { return epoch_ >= opt_.epochs || bad_epochs_ >= opt_.patience; }
  std::int64_t steps_per_epoch() const {
    const auto full = static_cast<std::int64_t>((trainable_users_.size() + static_cast<std::size_t>(opt_.batch) - 1) /
                                                static_cast<std::size_t>(opt_.batch));
    return opt_.steps_per_epoch > 0 ? std::min(opt_.steps_per_epoch, full) : full;
  }

  // The samples of step `step` of epoch `epoch` (deterministic in seed, epoch, step).
  std::vector<TrainSample> batch_samples(int epoch, std::int64_t step) const {
    std::vector<std::size_t> order = trainable_users_;
    Rng perm(opt_.seed, 0xE0000000ull + static_cast<std::uint64_t>(epoch));
    for (std::size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[perm.below(i)]);
    const auto begin = static_cast<std::size_t>(step) * static_cast<std::size_t>(opt_.batch);
    const auto end = std::min(order.size(), begin + static_cast<std::size_t>(opt_.batch));
    std::vector<TrainSample> out;
    for (std::size_t i = begin; i < end; ++i) out.push_back(make_sample(epoch, order[i]));
    return out;
  }

  // Runs the remaining epochs (after a resume: from the checkpoint's epoch). Returns true when
  // early stopping ended the run. The model holds the best weights afterwards. max_epochs >= 0
  // limits the epochs run by this call (an interruption, for tests of resume).
  bool fit(std::ostream* log = nullptr, int max_epochs = -1) {
    bool stopped = bad_epochs_ >= opt_.patience;  // a resumed run that had stopped early stays stopped
    for (int run = 0; epoch_ < opt_.epochs && !stopped && (max_epochs < 0 || run < max_epochs); ++run) {
      EpochRecord rec = train_epoch(log);
      EvalOptions ev{.split = EvalSplit::validation, .negatives = opt_.eval_negatives, .seed = opt_.seed,
                     .budget = opt_.eval_budget, .max_users = opt_.eval_users, .threads = opt_.threads};
      const EvalResult r = evaluate(model_, *data_, ev);
      rec.valid_hr10 = r.sampled.hit_rate(10);
      rec.valid_ndcg10 = r.sampled.ndcg_at(10);
      rec.blocks_kept = r.blocks_kept;
      history_.push_back(rec);
      ++epoch_;
      if (rec.valid_ndcg10 > best_ndcg_) {
        best_ndcg_ = rec.valid_ndcg10;
        best_epoch_ = epoch_;
        best_ = snapshot();
        bad_epochs_ = 0;
      } else if (++bad_epochs_ >= opt_.patience) {
        stopped = true;
      }
      if (log)
        *log << "epoch " << epoch_ << "/" << opt_.epochs << "  loss " << std::fixed << std::setprecision(4) << rec.loss
             << "  valid HR@10 " << rec.valid_hr10 << "  NDCG@10 " << rec.valid_ndcg10 << "  blocks "
             << std::setprecision(2) << rec.blocks_kept << "  " << std::setprecision(0) << rec.sequences_per_second
             << " seq/s" << (best_epoch_ == epoch_ ? "  (best)" : "") << std::defaultfloat << "\n";
      if (!opt_.checkpoint.empty()) {
        save_checkpoint(opt_.checkpoint);
        checkpoint_epoch_ = epoch_;
      }
    }
    if (stopped || epoch_ >= opt_.epochs) restore(best_);  // an interrupted call keeps training state
    return stopped;
  }

  // One pass of training steps; returns the epoch's mean loss and throughput (no validation).
  EpochRecord train_epoch(std::ostream* log = nullptr) {
    const std::int64_t steps = steps_per_epoch();
    const auto t_start = std::chrono::steady_clock::now();
    auto last_draw = t_start - std::chrono::seconds(1);
    double loss_sum = 0, flops_sum = 0;
    std::int64_t sequences = 0;
    for (std::int64_t s = 0; s < steps; ++s) {
      const auto samples = batch_samples(epoch_, s);
      const double tau = tau_at(epoch_ * steps + s, static_cast<std::int64_t>(opt_.epochs) * steps);
      auto [loss, flops] = step(samples, tau, epoch_, s);
      loss_sum += loss;
      flops_sum += flops;
      sequences += static_cast<std::int64_t>(samples.size());
      const auto now = std::chrono::steady_clock::now();
      const auto every = opt_.progress_bar ? std::chrono::milliseconds(250) : std::chrono::milliseconds(30000);
      if (log && opt_.progress && (now - last_draw > every || (opt_.progress_bar && s + 1 == steps))) {
        last_draw = now;
        const double secs = std::chrono::duration<double>(now - t_start).count();
        draw_progress(*log, s + 1, steps, loss_sum / static_cast<double>(s + 1), static_cast<double>(sequences) / secs,
                      secs / static_cast<double>(s + 1) * static_cast<double>(steps - s - 1));
      }
    }
    if (log && opt_.progress && opt_.progress_bar) *log << "\n";
    EpochRecord rec;
    rec.epoch = epoch_ + 1;
    rec.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
    rec.loss = loss_sum / static_cast<double>(std::max<std::int64_t>(steps, 1));
    rec.sequences_per_second = static_cast<double>(sequences) / std::max(rec.seconds, 1e-9);
    rec.train_flops_fraction = flops_sum / static_cast<double>(std::max<std::int64_t>(steps, 1));
    return rec;
  }

  // One optimiser step on `samples`; returns (batch loss, mean train FLOPs fraction).
  std::pair<double, double> step(const std::vector<TrainSample>& samples, double tau, int epoch = 0,
                                 std::int64_t step_index = 0) {
    FOFA_CHECK(!samples.empty(), "empty batch");
    std::int64_t rows = 0;
    for (const auto& s : samples) rows += static_cast<std::int64_t>(s.positives.size());
    const double B = static_cast<double>(samples.size());
    const LossWeights w{.positive = 1.0 / static_cast<double>(rows),
                        .negative = 1.0 / (static_cast<double>(rows) * opt_.negatives),
                        .sparsity = opt_.lambda / B,
                        .hinge = opt_.mu / B};
    const TrainOptions topt{.dropout = opt_.dropout, .tau = tau, .hard_mask = true};
    const std::size_t nt = std::min(grads_.size(), samples.size());
    const std::size_t chunk = (samples.size() + nt - 1) / nt;
    // Per-thread accumulators on their own cache lines (each thread writes its own per sample).
    struct alignas(64) Acc {
      double loss = 0, flops = 0;
    };
    std::vector<Acc> acc(nt);
    for (auto& tp : tapes_) tp->invalidate_packed_weights();  // parameters changed since the last step
    parallel(nt, [&](std::size_t t) {
      if (t > 0 || !grads0_zero_) grads_[t].zero();  // grads_[0] was zeroed by the last step's workers
      if (t == 0) grads0_zero_ = false;
      autograd::Tape<float>& outer = *tapes_[2 * t];
      autograd::Tape<float>& inner = *tapes_[2 * t + 1];
      std::vector<SampleStats> st;
      const std::size_t end = std::min(samples.size(), (t + 1) * chunk);
      for (std::size_t b = t * chunk; b < end; b += kMapperGroup) {
        const std::size_t n = std::min(kMapperGroup, end - b);
        model_.backward_batch(outer, inner, std::span<const TrainSample>(samples.data() + b, n), w, topt, &st);
        for (const SampleStats& x : st) {
          acc[t].loss += x.loss;
          acc[t].flops += x.flops_fraction;
        }
      }
    });
    double total = 0, frac = 0;
    for (std::size_t t = 0; t < nt; ++t) {
      total += acc[t].loss;
      frac += acc[t].flops;
    }
    // grads_[0] += grads_[1] + ... : rows bookkeeping here, the data by the reduction workers, each
    // owning one contiguous slice of every parameter (the per-element order stays thread 0, 1, ...).
    auto& g = grads_[0];
    auto& ps = model_.params();
    const int W = reduce_workers();
    for (std::size_t t = 1; t < nt; ++t) g.merge_touched(grads_[t]);
    if (nt > 1)
      parallel(static_cast<std::size_t>(W), [&](std::size_t wk) {
        for (int i = 0; i < g.size(); ++i) {
          const auto [b, e] = g.slice(i, static_cast<int>(wk), W);
          for (std::size_t t = 1; t < nt; ++t) g.add_slice(grads_[t], i, b, e);
        }
      });
    const double norm = autograd::step_norm(g, opt_.clip).norm;  // the serial sum when it decides the step
    FOFA_CHECK(std::isfinite(total) && std::isfinite(norm), "training diverged: loss ", total, ", gradient norm ", norm,
               " at epoch ", epoch + 1, " step ", step_index + 1,
               opt_.checkpoint.empty()   ? std::string(" (no checkpoint configured)")
               : checkpoint_epoch_ < 0 ? " (no checkpoint written yet: " + opt_.checkpoint +
                                             " is written at the end of every epoch)"
                                       : " (the last good checkpoint " + opt_.checkpoint + ", after epoch " +
                                             std::to_string(checkpoint_epoch_) + ", is kept)",
               "; try a lower lr or a gradient clip");
    // Clipping, Adam and zeroing of grads_[0] over the same slices.
    const float scale = autograd::clip_scale<float>(norm, opt_.clip);
    adam_->begin_step(ps, g);
    parallel(static_cast<std::size_t>(W), [&](std::size_t wk) {
      for (int i = 0; i < g.size(); ++i) {
        const auto [b, e] = g.slice(i, static_cast<int>(wk), W);
        adam_->update(ps, g, i, b, e, scale);
        g.zero_slice(i, b, e);
      }
    });
    g.clear_touched();
    grads0_zero_ = true;
    return {total, frac / B};
  }

  // ---- checkpoints ----------------------------------------------------------------------

  // Identifies the data of a run (computed once, in the constructor): sizes plus a CRC-32 of every
  // user's split (training items, validation and test item).
  static nlohmann::json fingerprint(const SplitData& data) {
    std::uint32_t crc = 0;
    std::int64_t items = 0;
    for (const auto& u : data.users) {
      const item_t head[3] = {static_cast<item_t>(u.train.size()), u.valid, u.test};
      crc = io::crc32_update(crc, head, sizeof head);
      crc = io::crc32_update(crc, u.train.data(), u.train.size() * sizeof(item_t));
      items += static_cast<std::int64_t>(u.train.size());
    }
    return {{"users", data.users.size()}, {"train_items", items}, {"item_ids", data.items}, {"crc32", crc}};
  }

  void save_checkpoint(const std::filesystem::path& path) const {
    io::FofaWriter w("model");
    w.config(io::config_to_json(model_.config()));
    nlohmann::json hist = nlohmann::json::array();
    for (const auto& r : history_) hist.push_back(to_json(r));
    w.meta({{"checkpoint",
             {{"epoch", epoch_}, {"adam_steps", adam_->steps()}, {"best_ndcg10", best_ndcg_},
              {"best_epoch", best_epoch_}, {"bad_epochs", bad_epochs_}, {"seed", opt_.seed}, {"history", hist},
              {"data", data_fingerprint_}}}});
    auto& ps = model_.params();
    auto& m = const_cast<autograd::Adam<float>&>(*adam_).first_moments();
    auto& v = const_cast<autograd::Adam<float>&>(*adam_).second_moments();
    for (int i = 0; i < ps.size(); ++i) {
      const auto& p = ps[i];
      const auto u = static_cast<std::size_t>(i);
      w.add<float>(p.name, TensorView<const float>(p.value.data(), p.shape));
      w.add<float>("optim.m." + p.name, TensorView<const float>(m[u].data(), p.shape));
      w.add<float>("optim.v." + p.name, TensorView<const float>(v[u].data(), p.shape));
      w.add<float>("best." + p.name, TensorView<const float>(best_[u].data(), p.shape));
    }
    w.write(path);
  }

  // Restores weights, optimiser state and progress from a checkpoint of the same configuration.
  void resume(const std::filesystem::path& path) {
    const io::FofaFile f = io::FofaFile::read(path);
    const ModelConfig saved = io::config_from_json(f.config());
    FOFA_CHECK(io::config_to_json(saved) == io::config_to_json(model_.config()), path.string(),
               ": checkpoint configuration differs from the training configuration");
    FOFA_CHECK(f.meta().contains("checkpoint"), path.string(), ": not a training checkpoint (no meta.checkpoint)");
    const auto& c = f.meta()["checkpoint"];
    // Resuming with another seed or on other data would silently continue a different run
    // (checkpoints written before the data fingerprint existed have none and are accepted).
    FOFA_CHECK(c.value("seed", opt_.seed) == opt_.seed, path.string(), ": checkpoint was trained with seed ",
               c.value("seed", opt_.seed), ", this run has seed ", opt_.seed, " (its samples would differ)");
    if (c.contains("data"))
      FOFA_CHECK(c["data"] == data_fingerprint_, path.string(), ": checkpoint was trained on other data (",
                 c["data"].dump(), ") than this run's (", data_fingerprint_.dump(), ")");
    auto& ps = model_.params();
    auto& m = adam_->first_moments();
    auto& v = adam_->second_moments();
    auto load = [&](const std::string& name, const Shape& shape, std::vector<float>& dst) {
      auto view = f.f32(name, shape);
      std::copy(view.data(), view.data() + view.numel(), dst.begin());
    };
    for (int i = 0; i < ps.size(); ++i) {
      auto& p = ps[i];
      const auto u = static_cast<std::size_t>(i);
      load(p.name, p.shape, p.value);
      load("optim.m." + p.name, p.shape, m[u]);
      load("optim.v." + p.name, p.shape, v[u]);
      load("best." + p.name, p.shape, best_[u]);
    }
    epoch_ = c.at("epoch").get<int>();
    adam_->set_steps(c.at("adam_steps").get<long long>());
    best_ndcg_ = c.at("best_ndcg10").get<double>();
    best_epoch_ = c.at("best_epoch").get<int>();
    bad_epochs_ = c.at("bad_epochs").get<int>();
    if (path == std::filesystem::path(opt_.checkpoint)) checkpoint_epoch_ = epoch_;
    history_.clear();
    for (const auto& h : c.at("history")) {
      EpochRecord r;
      r.epoch = h.at("epoch");
      r.loss = h.at("loss");
      r.seconds = h.at("seconds");
      r.sequences_per_second = h.at("sequences_per_second");
      r.valid_hr10 = h.at("valid_hr10");
      r.valid_ndcg10 = h.at("valid_ndcg10");
      r.blocks_kept = h.at("blocks_kept");
      r.train_flops_fraction = h.at("train_flops_fraction");
      history_.push_back(r);
    }
  }

 private:
  using Snapshot = std::vector<std::vector<float>>;
  Snapshot snapshot() const {
    Snapshot s;
    for (const auto& p : model_.params()) s.push_back(p.value);
    return s;
  }
  void restore(const Snapshot& s) {
    int i = 0;
    for (auto& p : model_.params()) p.value = s[static_cast<std::size_t>(i++)];
  }

  // Samples whose mapper heads run as one batch (TrainableModel::backward_batch): the head weights
  // (~5 MB for the SPEC default) are read once per group instead of once per sample, while the
  // group's generated weights (~0.2 MB per sample) stay in the last-level cache.
  static constexpr std::size_t kMapperGroup = 32;

  int reduce_workers() const { return opt_.reduce_threads > 0 ? opt_.reduce_threads : opt_.threads; }

  // Runs fn(w) for w in [0, n) on n threads (the calling thread is worker 0), then rethrows the
  // first worker's exception, if any.
  template <class F>
  static void parallel(std::size_t n, F&& fn) {
    std::vector<std::exception_ptr> errors(n);
    auto guarded = [&](std::size_t w) {
      try {
        fn(w);
      } catch (...) {
        errors[w] = std::current_exception();
      }
    };
    std::vector<std::thread> pool;
    pool.reserve(n);
    for (std::size_t w = 1; w < n; ++w) pool.emplace_back(guarded, w);
    guarded(0);
    for (auto& th : pool) th.join();
    for (auto& e : errors)
      if (e) std::rethrow_exception(e);
  }

  // Exponential annealing tau_start -> tau_end over the whole run.
  double tau_at(std::int64_t step, std::int64_t total) const {
    const double x = total > 1 ? static_cast<double>(step) / static_cast<double>(total - 1) : 1.0;
    return opt_.tau_start * std::pow(opt_.tau_end / opt_.tau_start, std::min(1.0, x));
  }

  TrainSample make_sample(int epoch, std::size_t user) const {
    const ModelConfig& cfg = model_.config();
    Rng rng(opt_.seed, (static_cast<std::uint64_t>(epoch) << 32) ^ static_cast<std::uint64_t>(user));
    const auto& tr = data_->users[user].train;
    const std::size_t keep = std::min(tr.size(), static_cast<std::size_t>(cfg.max_len) + 1);
    const auto first = tr.end() - static_cast<std::ptrdiff_t>(keep);
    TrainSample s;
    s.input.assign(first, tr.end() - 1);
    const auto t = static_cast<index_t>(s.input.size());
    if (model_.adaptive()) {
      s.prefix = 1 + static_cast<index_t>(rng.below(static_cast<std::uint64_t>(t)));
      s.loss_begin = s.prefix - 1;
    } else {
      s.prefix = t;
      s.loss_begin = 0;
    }
    s.positives.assign(first + 1 + s.loss_begin, tr.end());
    const auto& hist = train_sorted_[user];
    for (index_t r = s.loss_begin; r < t; ++r)
      for (int j = 0; j < opt_.negatives; ++j) {
        std::int32_t x;
        do x = static_cast<std::int32_t>(1 + rng.below(static_cast<std::uint64_t>(cfg.items)));
        while (std::binary_search(hist.begin(), hist.end(), x));
        s.negatives.push_back(x);
      }
    s.budget = opt_.budget_min + (opt_.budget_max - opt_.budget_min) * rng.uniform();
    if (s.budget <= 0) s.budget = opt_.budget_max;
    for (index_t k = 0; k < cfg.blocks; ++k) s.noise.push_back(rng.logistic());
    s.dropout_seed = rng.next();
    return s;
  }

  void draw_progress(std::ostream& os, std::int64_t done, std::int64_t total, double loss, double seq_per_s,
                     double eta_s) const {
    constexpr int width = 30;
    const int filled = static_cast<int>(width * done / std::max<std::int64_t>(total, 1));
    std::ostringstream line;
    line << (opt_.progress_bar ? "\r" : "") << "epoch " << epoch_ + 1 << "/" << opt_.epochs << " [" << std::string(static_cast<std::size_t>(filled), '#')
         << std::string(static_cast<std::size_t>(width - filled), '.') << "] " << std::setw(3)
         << 100 * done / std::max<std::int64_t>(total, 1) << "%  loss " << std::fixed << std::setprecision(4) << loss
         << "  " << std::setprecision(0) << seq_per_s << " seq/s  ETA " << static_cast<long>(eta_s) / 60 << ":"
         << std::setw(2) << std::setfill('0') << static_cast<long>(eta_s) % 60 << (opt_.progress_bar ? "   " : "\n");
    os << line.str() << std::flush;
  }

  TrainableModel<float> model_;
  const SplitData* data_;
  nlohmann::json data_fingerprint_;  // fingerprint(*data_), recorded in checkpoints
  TrainerOptions opt_;
  std::optional<autograd::Adam<float>> adam_;
  std::vector<std::size_t> trainable_users_;
  std::vector<std::vector<std::int32_t>> train_sorted_;
  std::vector<autograd::GradSet<float>> grads_;
  std::vector<std::unique_ptr<autograd::Tape<float>>> tapes_;
  bool grads0_zero_ = false;  // grads_[0] zeroed by the previous step's reduction workers
  Snapshot best_;
  std::vector<EpochRecord> history_;
  int epoch_ = 0, best_epoch_ = 0, bad_epochs_ = 0;
  int checkpoint_epoch_ = -1;  // epoch of the checkpoint fit() wrote, or resume() read, at opt_.checkpoint
  double best_ndcg_ = -1.0;
};

}  // namespace fofa::train
