// link(2): no store keeps hard links.
#include "tests/integration/posix/posix.h"

using namespace strata::it;
using namespace strata::it::posix;

TEST_CASE("posix link: EPERM (no hard links), ENOENT, EEXIST before that", "[fuse][s3][posix]") {
  Rig rig;
  for (const std::string& root : rig.roots()) {
    INFO(root);
    const std::string d = root + "/link";
    REQUIRE(::mkdir(d.c_str(), 0755) == 0);
    REQUIRE(WriteText(d + "/f", "x") == 0);
    REQUIRE(WriteText(d + "/g", "y") == 0);
    CHECK(Err(::link((d + "/f").c_str(), (d + "/h").c_str())) == "EPERM");
    CHECK(Err(::link((d + "/missing").c_str(), (d + "/h").c_str())) == "ENOENT");
    CHECK(Err(::link((d + "/f").c_str(), (d + "/g").c_str())) == "EEXIST");
    CHECK(Err(::link(d.c_str(), (d + "/dirlink").c_str())) == "EPERM");  // directories never
    struct stat st;
    CHECK(Err(::stat((d + "/h").c_str(), &st)) == "ENOENT");
  }
}
