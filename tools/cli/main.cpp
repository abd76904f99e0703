// tools/cli/main.cpp — the `fofa` executable: dispatches to subcommands.
//
// To add a subcommand: one line in FOFA_CLI_COMMANDS below and a file cmd_<name>.cpp defining
// `int fofa::cli::cmd_<name>(const std::vector<std::string>&, std::ostream&)` (CMake picks it up).
// Exit codes: 0 success, 1 fofa::Error or another failure (message on stderr), 2 usage error.
#include <cstring>
#include <exception>
#include <iostream>
#include <new>
#include <string>
#include <vector>

#include "cli.hpp"

// X(name, "spelling", "usage", "one-line summary")
#define FOFA_CLI_COMMANDS(X)                                                                                    \
  X(info, "info", "fofa info MODEL [--json]", "describe a .fofa model or device file")                          \
  X(score, "score",                                                                                             \
    "fofa score MODEL --history 3,17,42 --candidates 5,6,7 [--budget 0.5] [--json]",                            \
    "mask, pi and candidate logits for a history (model or device file)")                                       \
  X(export_device, "export-device",                                                                             \
    "fofa export-device MODEL --history 3,17,42 --candidates 5,6,7 --budget 0.5 OUT [--json]",                           \
    "write the device sub-model of one session")                                                                \
  X(random_model, "random-model",                                                                               \
    "fofa random-model OUT --items N [--seed S] [--d 64] [--heads 2] [--blocks 6] [--max-len 50] [--ffn 256] "  \
    "[--mapper-scale 0.05] [--head-bias 2]",                                                                    \
    "write a seeded random model (tests, demos, benchmarks)")                                                    \
  X(to_safetensors, "to-safetensors", "fofa to-safetensors IN.fofa OUT.safetensors", "export every tensor (and the header, in __metadata__) as safetensors") \
  X(from_safetensors, "from-safetensors", "fofa from-safetensors IN.safetensors OUT.fofa [--config CONFIG.json]", "import safetensors (F32/F16/BF16/F64/I32/I64) into a validated .fofa")                                                    \
  X(train, "train", "fofa train DATA --config CONFIG.json --out MODEL.fofa [--resume] [--epochs N] [--threads N] [--json]", "train a model on an interaction file (SPEC 6)") \
  X(eval, "eval", "fofa eval MODEL DATA [--json] [--budget B] [--users N (default 0: all)] [--threads N] [--no-full] [--finetune-steps S [--finetune-lr LR]]", "HR/NDCG@5/10/20, sampled and full ranking (SPEC 7)") \
  X(device_latency, "device-latency", "fofa device-latency MODEL DATA [--budget B] [--users N (default 200; 0: all)] [--repeat R (1-1000000)] [--json]", "device request latency on real users' sub-models (SPEC 7)") \
  X(demo, "demo", "fofa demo [DATA] [--epochs N] [--threads N] [--budget B] [--lambda L] [--min-blocks 0|1] [--seed S]", "train a small Forward-OFA and simulate device sessions")

namespace fofa::cli {
#define FOFA_CLI_DECLARE(fn, spelling, usage, summary) int cmd_##fn(const std::vector<std::string>&, std::ostream&);
FOFA_CLI_COMMANDS(FOFA_CLI_DECLARE)
#undef FOFA_CLI_DECLARE

struct Command {
  const char* name;
  const char* usage;
  const char* summary;
  CommandFn run;
};

#define FOFA_CLI_ENTRY(fn, spelling, usage, summary) Command{spelling, usage, summary, &cmd_##fn},
const Command kCommands[] = {FOFA_CLI_COMMANDS(FOFA_CLI_ENTRY)};
#undef FOFA_CLI_ENTRY

void print_help(std::ostream& os) {
  os << "fofa — Forward-OFA on-device recommendation\n\nusage: fofa COMMAND [ARGS]\n"
     << "options: --name VALUE or --name=VALUE; counts are decimal digits, budgets in (0, 1]; -- ends the options\n"
     << "\ncommands:\n";
  for (const Command& c : kCommands) os << "  " << c.name << "\n      " << c.summary << "\n      " << c.usage << "\n";
}
}  // namespace fofa::cli

int main(int argc, char** argv) {
  using namespace fofa::cli;
  if (argc < 2) {
    print_help(std::cerr);
    return 2;
  }
  const std::string name = argv[1];
  if (name == "-h" || name == "--help" || name == "help") {
    print_help(std::cout);
    return 0;
  }
  const Command* cmd = nullptr;
  for (const Command& c : kCommands)
    if (name == c.name) cmd = &c;
  if (!cmd) {
    std::cerr << "fofa: unknown command \"" << name << "\" (try fofa --help)\n";
    return 2;
  }
  const std::vector<std::string> args(argv + 2, argv + argc);
  for (const auto& a : args) {
    if (a == "--") break;  // what follows is positional
    if (a == "-h" || a == "--help") {
      std::cout << "usage: " << cmd->usage << "\n" << cmd->summary << "\n";
      return 0;
    }
  }
  try {
    return cmd->run(args, std::cout);
  } catch (const UsageError& e) {
    std::cerr << "fofa " << cmd->name << ": " << e.what() << "\nusage: " << cmd->usage << "\n";
    return 2;
  } catch (const fofa::Error& e) {
    std::cerr << e.what() << "\n";
    return 1;
  } catch (const std::bad_alloc&) {
    std::cerr << "fofa " << cmd->name << ": out of memory. Tables are sized by the largest item id (ids are not "
              << "remapped: one stray id of 10^8 makes 10^8 embedding rows) and by the configuration.\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "fofa " << cmd->name << ": " << e.what() << "\n";
    return 1;
  }
}
