// symlink(2) and readlink(2).
#include "tests/integration/posix/posix.h"

using namespace strata::it;
using namespace strata::it::posix;

TEST_CASE("posix symlink/readlink: errno of every edge case; targets kept", "[fuse][s3][posix]") {
  Rig rig;
  for (const std::string& root : rig.roots()) {
    INFO(root);
    const std::string d = root + "/symlink";
    REQUIRE(::mkdir(d.c_str(), 0755) == 0);
    REQUIRE(WriteText(d + "/f", "target bytes") == 0);
    CHECK(Err(::symlink("f", (d + "/l").c_str())) == "0");
    CHECK(Err(::symlink("f", (d + "/l").c_str())) == "EEXIST");
    CHECK(Err(::symlink("f", (d + "/no/such").c_str())) == "ENOENT");
    CHECK(Err(::symlink("f", (d + "/" + std::string(256, 'n')).c_str())) == "ENAMETOOLONG");
    CHECK(AsNobody([&] { return ::symlink("f", (d + "/theirs").c_str()); }) == "EACCES");
    char buf[256] = {};
    CHECK(::readlink((d + "/l").c_str(), buf, sizeof(buf)) == 1);
    CHECK(std::string(buf) == "f");
    CHECK(Err(static_cast<int>(::readlink((d + "/f").c_str(), buf, sizeof(buf)))) == "EINVAL");
    CHECK(Err(static_cast<int>(::readlink((d + "/missing").c_str(), buf, sizeof(buf)))) == "ENOENT");
    struct stat st;
    CHECK(::lstat((d + "/l").c_str(), &st) == 0);
    CHECK(S_ISLNK(st.st_mode));
    CHECK(ReadFile(d + "/l") == "target bytes");  // followed
    CHECK(Err(::symlink("missing-target", (d + "/dangling").c_str())) == "0");
    CHECK(Err(::open((d + "/dangling").c_str(), O_RDONLY)) == "ENOENT");
    CHECK(Err(::unlink((d + "/l").c_str())) == "0");
    CHECK(ReadFile(d + "/f") == "target bytes");
  }
}
