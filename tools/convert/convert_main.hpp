// tools/convert/convert_main.hpp — the fofa-convert command line, as a function the tests can call.
//
// convert_main(args, out, err) parses the arguments, loads the checkpoint (.pt zip or safetensors,
// told apart by content), applies the preset, prints the inferred configuration, the variables
// and the leftover tensors, and writes OUT.fofa atomically (temp file, fsync, rename) only after
// everything validated, so a refused input never leaves a file behind.
// Exit codes: 0 converted, 1 the input or preset was refused (fofa::Error), 2 usage error.
#pragma once

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <system_error>
#include <ostream>
#include <string>
#include <vector>

#include "fofa/io/file_util.hpp"
#include "fofa/io/model_file.hpp"
#include "presets.hpp"
#include "presets_embedded.hpp"

namespace fofa::convert {

inline constexpr const char* kConvertUsage = R"(usage: fofa-convert --preset NAME|MAPPING.json [options] IN.pt|IN.safetensors OUT.fofa

Converts a PyTorch state dict (torch.save zip file, or safetensors) into a .fofa model that
`fofa score` runs. Nothing in the checkpoint is executed: the pickle reader only knows
OrderedDict, the tensor rebuild functions and the storage types.

  --preset NAME        a built-in layout (see --list-presets) or a JSON mapping file
  --heads H            attention heads (required: a state dict does not record them)
  --max-len N          positions to keep (default: all the checkpoint has; layouts anchored
                       at the end of the window must keep all)
  --set KEY=VALUE      override a config field, e.g. --set eps=1e-6 --set norm=post
                       (VALUE is read as JSON when it parses, else as a string)
  --strict             fail when source tensors are left over
  --list-presets       print the built-in presets and exit
  --show-preset NAME   print a built-in preset (a template for your own mapping) and exit
  -h, --help           this text

exit codes: 0 converted, 1 input refused (message on stderr, no output file), 2 usage error
)";

namespace detail {

inline nlohmann::json find_preset(const std::string& name) {
  for (const auto& [n, text] : kBuiltinPresets)
    if (n == name) return nlohmann::json::parse(text);
  if (name.size() > 5 && name.compare(name.size() - 5, 5, ".json") == 0) {
    return io::parse_json_strict(io::read_text_file(name, "mapping file"), "mapping file '" + name + "'");
  }
  std::string names;
  for (const auto& [n, text] : kBuiltinPresets) names += (names.empty() ? "" : ", ") + std::string(n);
  ::fofa::detail::throw_error("fofa: unknown preset '", name, "' (built in: ", names, "; or a path ending in .json)");
}

struct UsageError {
  std::string message;
};

// A positive count: decimal digits only (no space, sign or hex), as `fofa` parses counts.
inline index_t parse_count(const std::string& flag, const std::string& v) {
  unsigned long long x = 0;  // unsigned from_chars: digits only, no sign
  const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
  if (v.empty() || ec != std::errc{} || end != v.data() + v.size() || x < 1 || x > (1ull << 31))
    throw UsageError{flag + " needs a positive integer (decimal digits only), got '" + v + "'"};
  return static_cast<index_t>(x);
}

}  // namespace detail

inline int convert_main(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  ConvertOptions opt;
  std::string preset_name;
  std::vector<std::string> files;
  bool strict = false;
  try {
    std::vector<std::string> seen;  // valued options given so far (each at most once; --set repeats)
    for (std::size_t i = 0; i < args.size(); ++i) {
      // --name=VALUE is --name VALUE, as in `fofa`.
      const std::size_t eq = args[i].rfind("--", 0) == 0 ? args[i].find('=') : std::string::npos;
      const std::string a = args[i].substr(0, eq);
      auto value = [&]() -> std::string {
        if (a != "--set") {
          if (std::find(seen.begin(), seen.end(), a) != seen.end()) throw detail::UsageError{a + " given twice"};
          seen.push_back(a);
        }
        if (eq != std::string::npos) return args[i].substr(eq + 1);
        if (i + 1 >= args.size()) throw detail::UsageError{a + " needs a value"};
        return args[++i];
      };
      if (a == "-h" || a == "--help") {
        out << kConvertUsage;
        return 0;
      } else if (a == "--list-presets") {
        for (const auto& [n, text] : kBuiltinPresets)
          out << n << ": " << nlohmann::json::parse(text).value("description", "") << "\n\n";
        return 0;
      } else if (a == "--show-preset") {
        out << detail::find_preset(value()).dump(2) << "\n";
        return 0;
      } else if (a == "--preset") {
        preset_name = value();
      } else if (a == "--heads") {
        opt.heads = detail::parse_count(a, value());
      } else if (a == "--max-len") {
        opt.max_len = detail::parse_count(a, value());
      } else if (a == "--set") {
        const std::string kv = value();
        const auto eq = kv.find('=');
        if (eq == std::string::npos || eq == 0) throw detail::UsageError{"--set needs KEY=VALUE, got '" + kv + "'"};
        const std::string key = kv.substr(0, eq), v = kv.substr(eq + 1);
        if (key == "heads" || key == "max_len") throw detail::UsageError{"use --heads / --max-len for " + key};
        opt.overrides[key] = nlohmann::json::accept(v) ? nlohmann::json::parse(v) : nlohmann::json(v);
      } else if (a == "--strict") {
        if (eq != std::string::npos) throw detail::UsageError{"--strict takes no value"};
        strict = true;
      } else if (!a.empty() && a[0] == '-') {
        throw detail::UsageError{"unknown option '" + a + "'"};
      } else {
        files.push_back(a);
      }
    }
    if (preset_name.empty()) throw detail::UsageError{"--preset is required"};
    if (files.size() != 2) throw detail::UsageError{"expected IN and OUT, got " + std::to_string(files.size()) + " file(s)"};
  } catch (const detail::UsageError& e) {
    err << "fofa-convert: " << e.message << "\n\n" << kConvertUsage;
    return 2;
  } catch (const Error& e) {
    err << "fofa-convert: " << e.what() << "\n";
    return 1;
  }

  const std::string& in = files[0];
  const std::string& dst = files[1];
  try {
    // A directory, missing directory, device or one of the inputs (a mapping file too): refused
    // before the conversion, not after.
    io::check_writable(dst, {in, preset_name.ends_with(".json") ? preset_name : ""});
    std::ostream& report = io::is_stdout(dst) ? err : out;  // not into the output itself
    const nlohmann::json preset = detail::find_preset(preset_name);
    const StateDict sd = load_state_dict(in);
    const Conversion c = apply_preset(preset, sd, opt);
    nlohmann::json shown = io::config_to_json(c.config);
    if (!c.config.controller.enabled && !c.config.mapper_on()) {  // a static model: no adaptive parts to show
      shown.erase("controller");
      shown.erase("mapper");
    }
    report << "preset " << preset.value("name", preset_name) << ": " << sd.tensors.size() << " source tensors -> "
           << c.weights.size() << " fofa tensors\n";
    report << "inferred config: " << shown.dump() << "\n";
    if (!c.vars.empty()) {
      report << "variables:";
      for (const auto& [k, v] : c.vars) report << " " << k << "=" << v;
      report << "\n";
    }
    for (const auto& l : c.leftovers) report << "leftover (not converted): " << l << "\n";
    for (const auto& l : c.non_tensors) report << "skipped (not a tensor): " << l << "\n";
    FOFA_CHECK(!strict || c.leftovers.empty(), "--strict: ", c.leftovers.size(), " source tensor(s) left over");
    nlohmann::json meta = {{"converted_from", std::filesystem::path(in).filename().string()},
                           {"preset", preset.value("name", preset_name)}};
    const std::size_t bytes = io::save_model(dst, c.config, c.weights, meta);
    report << "wrote " << dst << " (" << bytes << " bytes)\n";
    return 0;
  } catch (const Error& e) {
    err << "fofa-convert: " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {  // e.g. std::bad_alloc, filesystem errors
    err << "fofa-convert: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace fofa::convert
