#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "agent/base/log.h"

int main(int argc, char** argv) {
  // Expected warnings (injected failures, corrupt blocks) would drown the report.
  strata::log::SetLevel(strata::log::Level::kError);
  return Catch::Session().run(argc, argv);
}
