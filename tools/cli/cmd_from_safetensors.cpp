// `fofa from-safetensors IN.safetensors OUT.fofa [--config CONFIG.json]`: a .fofa file from
// safetensors (F32/F16/BF16/F64 -> f32, I32/I64 -> i32). The configuration comes from --config or
// from __metadata__["fofa_config"]; a model file is then fully validated before it is written.
#include <iostream>

#include "cli.hpp"

namespace fofa::cli {

int cmd_from_safetensors(const std::vector<std::string>& args, std::ostream& out) {
  const Args a(args, {"--config"}, {});
  a.expect_positional(2, "IN.safetensors and OUT.fofa");
  io::check_writable(a.positional()[1], {a.positional()[0], a.has("--config") ? a.get("--config") : ""});
  std::ostream& report = report_to(a.positional()[1], out);
  std::optional<nlohmann::json> config;
  if (a.has("--config")) {
    const nlohmann::json j = io::parse_json_strict(io::read_text_file(a.get("--config"), "configuration"), a.get("--config"));
    config = j.contains("config") && j["config"].is_object() ? j["config"] : j;
  }
  const io::SafetensorsFile st = io::SafetensorsFile::map(a.positional()[0]);
  // Errors name the input (and --config): the output does not exist yet.
  const std::string source = a.positional()[0] + (a.has("--config") ? " with --config " + a.get("--config") : "");
  std::vector<std::byte> bytes;
  try {
    bytes = io::safetensors_to_fofa(st, config).to_bytes();
  } catch (const Error& e) {
    throw Error(std::string(e.what()) + " (converting " + source + ")");
  }
  // Validate the result as its kind before writing it: never write a file fofa cannot load.
  const io::FofaFile f = io::FofaFile::load_from_memory({bytes.data(), bytes.size()}, "the conversion of " + source);
  if (f.kind() == "model")
    (void)io::model_from_file(f);
  else
    (void)io::device_from_file(f);
  io::write_file_atomic(a.positional()[1], bytes);
  report << "wrote " << a.positional()[1] << ": " << bytes.size() << " bytes, " << f.tensors().size() << " tensors ("
         << f.kind() << ")\n";
  return 0;
}

}  // namespace fofa::cli
