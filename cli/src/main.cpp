#include "manifold/cli/commands.hpp"

int main(int argc, char** argv) {
  return manifold::cli::run(argc, argv);
}
