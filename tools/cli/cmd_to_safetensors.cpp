// `fofa to-safetensors IN.fofa OUT.safetensors`: every tensor as F32/I32 safetensors; the .fofa
// header (kind, config, device info, meta) travels in __metadata__ so from-safetensors restores it.
#include <iostream>

#include "cli.hpp"

namespace fofa::cli {

int cmd_to_safetensors(const std::vector<std::string>& args, std::ostream& out) {
  const Args a(args, {}, {});
  a.expect_positional(2, "IN.fofa and OUT.safetensors");
  io::check_writable(a.positional()[1], {a.positional()[0]});
  std::ostream& report = report_to(a.positional()[1], out);
  const io::FofaFile f = io::FofaFile::map(a.positional()[0]);
  const std::size_t bytes = io::fofa_to_safetensors(f).write(a.positional()[1]);
  report << "wrote " << a.positional()[1] << ": " << bytes << " bytes, " << f.tensors().size() << " tensors\n";
  return 0;
}

}  // namespace fofa::cli
