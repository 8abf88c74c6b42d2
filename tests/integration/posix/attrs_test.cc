// chmod(2), chown(2) and utimensat(2).
#include "tests/integration/posix/posix.h"

using namespace strata::it;
using namespace strata::it::posix;

TEST_CASE("posix chmod/chown/utimensat: errno of every edge case; attributes kept", "[fuse][s3][posix]") {
  Rig rig;
  for (const std::string& root : rig.roots()) {
    INFO(root);
    const std::string d = root + "/attrs";
    REQUIRE(::mkdir(d.c_str(), 0755) == 0);
    REQUIRE(WriteText(d + "/f", "x") == 0);
    CHECK(Err(::chmod((d + "/missing").c_str(), 0600)) == "ENOENT");
    CHECK(Err(::chown((d + "/missing").c_str(), 1, 1)) == "ENOENT");
    CHECK(Err(::chmod((d + "/f").c_str(), 0640)) == "0");
    CHECK(Err(::chown((d + "/f").c_str(), 1234, 5678)) == "0");
    struct stat st;
    REQUIRE(::stat((d + "/f").c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0640);
    CHECK(st.st_uid == 1234);
    CHECK(st.st_gid == 5678);
    timespec times[2] = {{1000000000, 0}, {1500000000, 0}};
    CHECK(Err(::utimensat(AT_FDCWD, (d + "/f").c_str(), times, 0)) == "0");
    REQUIRE(::stat((d + "/f").c_str(), &st) == 0);
    CHECK(st.st_mtim.tv_sec == 1500000000);
    CHECK(Err(::utimensat(AT_FDCWD, (d + "/missing").c_str(), times, 0)) == "ENOENT");
    // nobody owns nothing here.
    CHECK(AsNobody([&] { return ::chmod((d + "/f").c_str(), 0777); }) == "EPERM");
    CHECK(AsNobody([&] { return ::chown((d + "/f").c_str(), kNobody, kNobody); }) == "EPERM");
    CHECK(AsNobody([&] { return ::utimensat(AT_FDCWD, (d + "/f").c_str(), times, 0); }) == "EPERM");
    CHECK(AsNobody([&] { return ::utimensat(AT_FDCWD, (d + "/f").c_str(), nullptr, 0); }) == "EACCES");
    REQUIRE(::stat((d + "/f").c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0640);
    // Directories keep their mode too.
    CHECK(Err(::chmod(d.c_str(), 0700)) == "0");
    REQUIRE(::stat(d.c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0700);
  }
}
