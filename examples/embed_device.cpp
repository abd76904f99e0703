// Minimal embedding of the fofa device runtime: load a device file, rerank its candidates,
// register a click, rerank again. Make a device file with:
//   fofa random-model model.fofa --items 1000
//   fofa export-device model.fofa --history 3,17,42 --candidates 5,6,7,8,9 --budget 0.5 session.fofa
#include <cstdio>
#include <exception>

#include <fofa/fofa.hpp>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DEVICE_FILE\n", argv[0]);
    return 2;
  }
  try {
    const fofa::DeviceModel model = fofa::io::load_device(argv[1]);  // mmap + full validation
    fofa::DeviceSession session(model);  // per-user state; share `model` between threads
    fofa::RankingView r = session.rerank();  // the file's candidates, best first
    for (std::size_t i = 0; i < r.items.size(); ++i) std::printf("%zu. item %d\n", i + 1, r.items[i]);
    session.push(r.items[0]);  // the user clicks the top item: one new row per kept block
    r = session.rerank();
    std::printf("after clicking: top item %d (score %.4f)\n", r.items[0], r.scores[static_cast<std::size_t>(r.order[0])]);
  } catch (const fofa::Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  return 0;
}
