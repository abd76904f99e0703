// fofa-convert: PyTorch checkpoints to .fofa without Python (see convert_main.hpp, --help).
#include <iostream>

#include "convert_main.hpp"

int main(int argc, char** argv) {
  return fofa::convert::convert_main(std::vector<std::string>(argv + 1, argv + argc), std::cout, std::cerr);
}
