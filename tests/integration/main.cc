#define CATCH_CONFIG_RUNNER
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>

int main(int argc, char** argv) {
  if (::geteuid() != 0 || ::access("/dev/fuse", R_OK | W_OK) != 0) {
    std::fprintf(stderr, "integration tests need root and /dev/fuse (real FUSE mounts)\n");
    return 2;
  }
  return Catch::Session().run(argc, argv);
}
