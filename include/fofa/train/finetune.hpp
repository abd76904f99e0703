// fofa/train/finetune.hpp — SPEC 8 "on-device fine-tuning": the static model plus a few SGD steps
// on the device's own history, expressed with the training graph of model_graph.hpp.
//
// For one user: start from the shared (static) model, run `steps` plain SGD steps (p -= lr * g) on
// that user's own history only (the items before the evaluated one), with the SPEC 6 loss of a
// static model: every position predicts the next item, mean BCE on the positives + mean BCE on
// `negatives` uniform items per position that are not in that history, drawn from a per-user
// seeded stream (fresh negatives every step). No dropout (the device runs deterministically).
//
// Device constraint: the device holds only its blocks, the LayerNorms and the embedding rows it was
// sent (SPEC 5), so ONLY the block parameters (attention, FFN, ln1/ln2) and the final / input
// LayerNorms are fine-tuned; item and position embeddings stay frozen.
// The shared model is never written: a DeviceFinetuner owns a private copy of the model (one per
// thread), and reset() restores its trainable tensors from the shared model before every user, so
// each user's result depends only on (shared model, history, seed, user) and not on threads.
// Defined for static models (controller and mapper off): a Forward-OFA device receives generated
// weights whose fine-tuning would need the mapper's structure on the device.
#pragma once

#include <algorithm>
#include <cmath>
#include <span>
#include <vector>

#include "fofa/train/model_graph.hpp"

namespace fofa::train {

struct FinetuneOptions {
  int steps = 0;      // S; 0 = exactly the static model (no fine-tuning)
  double lr = 1e-2;   // SGD learning rate
  int negatives = 1;  // sampled negatives per position

  void validate() const {
    FOFA_CHECK(steps >= 0, "fine-tuning steps must be >= 0, got ", steps);
    FOFA_CHECK(std::isfinite(lr) && lr > 0, "fine-tuning lr must be a finite number > 0, got ", lr);
    FOFA_CHECK(negatives >= 1, "fine-tuning negatives must be >= 1, got ", negatives);
  }
};

// True for the tensors a device fine-tunes: its blocks and LayerNorms (not embeddings, not the
// cloud-side controller / mapper).
inline bool finetuned_on_device(const std::string& name) {
  return name.rfind("blocks.", 0) == 0 || name.rfind("final_ln.", 0) == 0 || name.rfind("input_ln.", 0) == 0;
}

// Forward + backward FLOPs of one fine-tuning step over the blocks, roughly 3x the forward
// (backward = 2 matrix products per forward one), with blocks costed at length n as in SPEC 7.
inline double finetune_step_flops(const ModelConfig& cfg) {
  return 3.0 * static_cast<double>(cfg.blocks) * cfg.block_flops();
}

template <class T>
class DeviceFinetuner {
 public:
  DeviceFinetuner(const TrainableModel<T>& shared, FinetuneOptions opt)
      : shared_(&shared), local_(shared), opt_(opt), grads_(local_.params()), tape_(local_.params(), grads_) {
    opt_.validate();
    FOFA_CHECK(!shared.adaptive(),
               "on-device fine-tuning is defined for static models (controller and mapper off); this model has ",
               shared.config().controller.enabled ? "a controller" : "a mapper");
    for (int i = 0; i < local_.params().size(); ++i)
      if (finetuned_on_device(local_.params()[i].name)) trainable_.push_back(i);
  }

  DeviceFinetuner(const DeviceFinetuner&) = delete;  // the tape points into local_
  DeviceFinetuner& operator=(const DeviceFinetuner&) = delete;

  // The fine-tuned copy (after run()) or the shared model's values (after reset()).
  const TrainableModel<T>& model() const { return local_; }
  const std::vector<int>& trainable() const { return trainable_; }

  // Restores the trainable tensors from the shared model (the others are never changed).
  void reset() {
    for (int i : trainable_) local_.params()[i].value = shared_->params()[i].value;
  }

  // The training sample of one step: the newest max_len + 1 items of `history` give inputs and
  // next-item positives; negatives come from `rng` and avoid every item of `history`.
  TrainSample sample(std::span<const std::int32_t> history, Rng& rng) const {
    const ModelConfig& cfg = local_.config();
    FOFA_CHECK(history.size() >= 2, "fine-tuning needs at least 2 history items, got ", history.size());
    const std::size_t keep = std::min(history.size(), static_cast<std::size_t>(cfg.max_len) + 1);
    const auto h = history.last(keep);
    std::vector<std::int32_t> sorted(history.begin(), history.end());
    std::sort(sorted.begin(), sorted.end());
    sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
    FOFA_CHECK(static_cast<std::int64_t>(sorted.size()) < cfg.items, "the history holds every item: no negatives");
    TrainSample s;
    s.input.assign(h.begin(), h.end() - 1);
    s.positives.assign(h.begin() + 1, h.end());
    s.prefix = static_cast<index_t>(s.input.size());
    s.loss_begin = 0;
    for (std::size_t r = 0; r < s.input.size(); ++r)
      for (int j = 0; j < opt_.negatives; ++j) {
        std::int32_t x;
        do x = static_cast<std::int32_t>(1 + rng.below(static_cast<std::uint64_t>(cfg.items)));
        while (std::binary_search(sorted.begin(), sorted.end(), x));
        s.negatives.push_back(x);
      }
    return s;
  }

  // SPEC 6 loss (mean positive BCE + mean negative BCE) of `s` under the current local weights.
  double loss(const TrainSample& s) {
    tape_.reset();
    const double v = static_cast<double>(tape_.scalar(local_.forward_loss(tape_, s, weights(s), TrainOptions{})));
    tape_.reset();
    return v;
  }

  // forward_scores() of the local (fine-tuned) copy.
  std::vector<float> scores(std::span<const std::int32_t> history, std::span<const std::int32_t> candidates,
                            double budget, std::vector<int>* kept = nullptr) {
    tape_.reset();
    auto out = local_.forward_scores(tape_, history, candidates, budget, kept);
    tape_.reset();
    return out;
  }

  // reset(), then opt.steps SGD steps on `history` with negatives from Rng(seed, stream).
  // Returns the steps run: 0 when the history has fewer than 2 items (nothing to learn from).
  int run(std::span<const std::int32_t> history, std::uint64_t seed, std::uint64_t stream) {
    reset();
    if (opt_.steps == 0 || history.size() < 2) return 0;
    Rng rng(seed, stream);
    const T lr = static_cast<T>(opt_.lr);
    for (int step = 0; step < opt_.steps; ++step) {
      const TrainSample s = sample(history, rng);
      grads_.zero();
      tape_.reset();
      autograd::Var l = local_.forward_loss(tape_, s, weights(s), TrainOptions{});
      tape_.backward(l);
      tape_.reset();
      for (int i : trainable_) {
        auto& p = local_.params()[i].value;
        const T* g = grads_.data(i);
        for (std::size_t k = 0; k < p.size(); ++k) p[k] -= lr * g[k];
      }
    }
    for (int i : trainable_)
      for (T v : local_.params()[i].value)
        FOFA_CHECK(std::isfinite(static_cast<double>(v)), "on-device fine-tuning diverged (lr ", opt_.lr,
                   ", ", opt_.steps, " steps) in ", local_.params()[i].name, "; use a lower --finetune-lr");
    return opt_.steps;
  }

 private:
  LossWeights weights(const TrainSample& s) const {
    const double rows = static_cast<double>(s.positives.size());
    return {.positive = 1.0 / rows, .negative = 1.0 / (rows * opt_.negatives), .sparsity = 0, .hinge = 0};
  }

  const TrainableModel<T>* shared_;
  TrainableModel<T> local_;
  FinetuneOptions opt_;
  std::vector<int> trainable_;
  autograd::GradSet<T> grads_;
  autograd::Tape<T> tape_;
};

}  // namespace fofa::train
