#include <catch2/catch.hpp>

#include "agent/cache/mounts.h"
#include "ufs/local.h"

using namespace strata;

TEST_CASE("paths resolve to the store with the longest mount path", "[unit]") {
  cache::MountTable t;
  REQUIRE(t.Add("", ufs::NewLocalUfs("file:///a", "/a")).ok());
  REQUIRE(t.Add("/ref/", ufs::NewLocalUfs("file:///b", "/b")).ok());
  REQUIRE(t.Add("ref/deep/x", ufs::NewLocalUfs("file:///c", "/c")).ok());
  CHECK_FALSE(t.Add("ref", ufs::NewLocalUfs("file:///d", "/d")).ok());  // taken
  auto r = t.Resolve("data/f.bin");
  CHECK(r.mount == 0);
  CHECK(r.ufs_path == "data/f.bin");
  r = t.Resolve("ref");
  CHECK(r.mount == 1);
  CHECK(r.ufs_path == "");
  r = t.Resolve("ref/y/z");
  CHECK(r.mount == 1);
  CHECK(r.ufs_path == "y/z");
  r = t.Resolve("ref/deep/x/file");
  CHECK(r.mount == 2);
  CHECK(r.ufs_path == "file");
  r = t.Resolve("reference");  // a prefix of the name is not a parent
  CHECK(r.mount == 0);
  CHECK(t.IsSyntheticDir("ref/deep"));
  CHECK_FALSE(t.IsSyntheticDir("data"));
  CHECK(t.MountPointsUnder("") == std::vector<std::string>{"ref"});
  CHECK(t.MountPointsUnder("ref") == std::vector<std::string>{"deep"});
}

TEST_CASE("the first store must be the root", "[unit]") {
  cache::MountTable t;
  CHECK_FALSE(t.Add("sub", ufs::NewLocalUfs("file:///a", "/a")).ok());
  CHECK_FALSE(cache::NormalizePath("a/../b").ok());
  CHECK(*cache::NormalizePath("//a///b/") == "a/b");
}
