#include <catch2/catch.hpp>

#include "agent/base/units.h"

using strata::FormatSize;
using strata::ParseDurationMs;
using strata::ParseSize;

TEST_CASE("sizes parse with binary and decimal units", "[unit]") {
  CHECK(*ParseSize("0") == 0);
  CHECK(*ParseSize("512") == 512);
  CHECK(*ParseSize("512B") == 512);
  CHECK(*ParseSize("4KiB") == 4096);
  CHECK(*ParseSize("4k") == 4096);
  CHECK(*ParseSize("512MiB") == 512ull << 20);
  CHECK(*ParseSize("10GiB") == 10ull << 30);
  CHECK(*ParseSize("10 GiB") == 10ull << 30);
  CHECK(*ParseSize("1.5G") == 3ull << 29);
  CHECK(*ParseSize("2TiB") == 2ull << 40);
  CHECK(*ParseSize("1MB") == 1000000);
  CHECK(*ParseSize("3gb") == 3000000000ull);
}

TEST_CASE("bad sizes are rejected with a message", "[unit]") {
  for (const char* bad : {"", "GiB", "-1GiB", "10XB", "1.2.3M", "12 MiB extra", "99999999999TiB"}) {
    auto r = ParseSize(bad);
    INFO(bad);
    CHECK_FALSE(r.ok());
    CHECK(r.status().message().find("size") != std::string::npos);
  }
}

TEST_CASE("sizes format for people", "[unit]") {
  CHECK(FormatSize(0) == "0 B");
  CHECK(FormatSize(1023) == "1023 B");
  CHECK(FormatSize(4u << 20) == "4.0 MiB");
  CHECK(FormatSize(3ull << 29) == "1.5 GiB");
}

TEST_CASE("durations parse", "[unit]") {
  CHECK(*ParseDurationMs("30") == 30000);
  CHECK(*ParseDurationMs("30s") == 30000);
  CHECK(*ParseDurationMs("15m") == 900000);
  CHECK(*ParseDurationMs("2h") == 7200000);
  CHECK(*ParseDurationMs("7d") == 604800000);
  CHECK(*ParseDurationMs("250ms") == 250);
  CHECK_FALSE(ParseDurationMs("soon").ok());
  CHECK_FALSE(ParseDurationMs("5y").ok());
}
