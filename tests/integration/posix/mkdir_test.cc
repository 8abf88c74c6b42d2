// mkdir(2) and rmdir(2).
#include "tests/integration/posix/posix.h"

using namespace strata::it;
using namespace strata::it::posix;

TEST_CASE("posix mkdir/rmdir: errno of every edge case, as root and as nobody", "[fuse][s3][posix]") {
  Rig rig;
  for (const std::string& root : rig.roots()) {
    INFO(root);
    const std::string d = root + "/mkdir";
    REQUIRE(::mkdir(d.c_str(), 0755) == 0);
    REQUIRE(WriteText(d + "/f", "x") == 0);
    CHECK(Err(::mkdir(d.c_str(), 0755)) == "EEXIST");
    CHECK(Err(::mkdir((d + "/f").c_str(), 0755)) == "EEXIST");
    CHECK(Err(::mkdir((d + "/no/such").c_str(), 0755)) == "ENOENT");
    CHECK(Err(::mkdir((d + "/f/sub").c_str(), 0755)) == "ENOTDIR");
    CHECK(Err(::mkdir((d + "/" + std::string(256, 'n')).c_str(), 0755)) == "ENAMETOOLONG");
    CHECK(AsNobody([&] { return ::mkdir((d + "/theirs").c_str(), 0755); }) == "EACCES");
    REQUIRE(::mkdir((d + "/sub").c_str(), 0750) == 0);
    struct stat st;
    CHECK(::stat((d + "/sub").c_str(), &st) == 0);
    CHECK(S_ISDIR(st.st_mode));
    CHECK((st.st_mode & 07777) == 0750);
    REQUIRE(WriteText(d + "/sub/x", "x") == 0);
    CHECK(Err(::rmdir((d + "/sub").c_str())) == "ENOTEMPTY");
    CHECK(Err(::rmdir((d + "/f").c_str())) == "ENOTDIR");
    CHECK(Err(::rmdir((d + "/missing").c_str())) == "ENOENT");
    CHECK(Err(::rmdir((d + "/sub/.").c_str())) == "EINVAL");
    CHECK(AsNobody([&] { return ::rmdir((d + "/sub").c_str()); }) == "EACCES");
    REQUIRE(::unlink((d + "/sub/x").c_str()) == 0);
    CHECK(Err(::rmdir((d + "/sub").c_str())) == "0");
    CHECK(Err(::stat((d + "/sub").c_str(), &st)) == "ENOENT");
  }
}
