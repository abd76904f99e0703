// fofa-train-parity: the C++ half of tests/train/torch_train_parity.py. Reads a .fofa model and a
// JSON batch, prints JSON with the batch loss and every parameter gradient at the given weights,
// and the losses of `steps` Adam steps on the same batch (no dropout, no clipping).
//   fofa-train-parity MODEL.fofa BATCH.json > OUT.json
// BATCH.json: {"samples": [{"seq": [...], "t0": 2, "budget": 0.7, "negatives": [[...], ...],
//              "noise": [...]}, ...], "tau": 1.0, "lambda": 0.01, "mu": 1.0, "lr": 1e-3, "steps": 10}
#include <fstream>
#include <iostream>

#include <nlohmann/json.hpp>

#include "fofa/autograd/optim.hpp"
#include "fofa/io/model_file.hpp"
#include "fofa/train/model_graph.hpp"

using namespace fofa;
using namespace fofa::train;

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: fofa-train-parity MODEL.fofa BATCH.json\n";
    return 2;
  }
  try {
    const auto loaded = io::load_model(argv[1]);
    TrainableModel<float> model(loaded.config);
    model.load(loaded.weights);
    std::ifstream in(argv[2]);
    const auto j = nlohmann::json::parse(in);
    std::vector<TrainSample> batch;
    std::int64_t rows = 0;
    int per_row = 1;
    for (const auto& s : j.at("samples")) {
      const auto seq = s.at("seq").get<std::vector<std::int32_t>>();
      const auto t0 = s.at("t0").get<index_t>();
      TrainSample x;
      x.input.assign(seq.begin(), seq.end() - 1);
      x.prefix = t0;
      x.loss_begin = t0 - 1;
      x.positives.assign(seq.begin() + t0, seq.end());
      const auto neg = s.at("negatives").get<std::vector<std::vector<std::int32_t>>>();
      per_row = static_cast<int>(neg.at(0).size());
      for (const auto& r : neg) x.negatives.insert(x.negatives.end(), r.begin(), r.end());
      x.budget = s.at("budget").get<double>();
      x.noise = s.at("noise").get<std::vector<double>>();
      rows += static_cast<std::int64_t>(x.positives.size());
      batch.push_back(std::move(x));
    }
    const double B = static_cast<double>(batch.size());
    const LossWeights w{.positive = 1.0 / static_cast<double>(rows),
                        .negative = 1.0 / (static_cast<double>(rows) * per_row),
                        .sparsity = j.at("lambda").get<double>() / B,
                        .hinge = j.at("mu").get<double>() / B};
    const TrainOptions opt{.dropout = 0.0, .tau = j.at("tau").get<double>(), .hard_mask = true};
    autograd::GradSet<float> grads(model.params());
    autograd::Adam<float> adam(model.params(), {.lr = j.at("lr").get<double>()});
    nlohmann::json out;
    out["losses"] = nlohmann::json::array();
    const int steps = j.at("steps").get<int>();
    for (int step = 0; step <= steps; ++step) {
      grads.zero();
      autograd::Tape<float> tape(model.params(), grads);
      double loss = 0;
      for (const auto& s : batch) {
        auto l = model.forward_loss(tape, s, w, opt);
        loss += static_cast<double>(tape.scalar(l));
        tape.backward(l);
        tape.reset();
      }
      out["losses"].push_back(loss);
      if (step == 0) {
        for (int i = 0; i < model.params().size(); ++i) out["grads"][model.params()[i].name] = grads.grad(i);
      }
      if (step < steps) adam.step(model.params(), grads);
    }
    std::cout << out.dump() << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "fofa-train-parity: " << e.what() << "\n";
    return 1;
  }
}
