// open(2) and creat(2).
#include "tests/integration/posix/posix.h"

using namespace strata::it;
using namespace strata::it::posix;

TEST_CASE("posix open/creat: errno of every edge case, as root and as nobody", "[fuse][s3][posix]") {
  Rig rig;
  for (const std::string& root : rig.roots()) {
    INFO(root);
    const std::string d = root + "/open";
    REQUIRE(::mkdir(d.c_str(), 0755) == 0);
    REQUIRE(WriteText(d + "/f", "hello") == 0);
    CHECK(Err(::open((d + "/missing").c_str(), O_RDONLY)) == "ENOENT");
    CHECK(Err(::open((d + "/no/such").c_str(), O_RDONLY | O_CREAT, 0644)) == "ENOENT");
    CHECK(Err(::open((d + "/f").c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644)) == "EEXIST");
    CHECK(Err(::open(d.c_str(), O_WRONLY)) == "EISDIR");
    CHECK(Err(::open(d.c_str(), O_RDWR)) == "EISDIR");
    CHECK(Err(::open((d + "/f/x").c_str(), O_RDONLY)) == "ENOTDIR");
    CHECK(Err(::open((d + "/f").c_str(), O_RDONLY | O_DIRECTORY)) == "ENOTDIR");
    CHECK(Err(::open((d + "/" + std::string(256, 'n')).c_str(), O_WRONLY | O_CREAT, 0644)) == "ENAMETOOLONG");
    // creat() truncates an existing file.
    int fd = ::creat((d + "/f").c_str(), 0644);
    CHECK(fd >= 0);
    if (fd >= 0) ::close(fd);
    struct stat st;
    CHECK(::stat((d + "/f").c_str(), &st) == 0);
    CHECK(st.st_size == 0);
    // O_TRUNC on open of a file with bytes.
    REQUIRE(WriteText(d + "/g", "0123456789") == 0);
    fd = ::open((d + "/g").c_str(), O_WRONLY | O_TRUNC);
    CHECK(fd >= 0);
    if (fd >= 0) ::close(fd);
    CHECK(::stat((d + "/g").c_str(), &st) == 0);
    CHECK(st.st_size == 0);

    // nobody: a directory of root's (0755) and files of root's.
    REQUIRE(WriteText(d + "/private", "secret") == 0);
    REQUIRE(::chmod((d + "/private").c_str(), 0600) == 0);
    CHECK(AsNobody([&] { return ::open((d + "/new").c_str(), O_WRONLY | O_CREAT, 0644); }) == "EACCES");
    CHECK(AsNobody([&] { return ::open((d + "/private").c_str(), O_RDONLY); }) == "EACCES");
    CHECK(AsNobody([&] { return ::open((d + "/g").c_str(), O_WRONLY); }) == "EACCES");
    CHECK(AsNobody([&] { return ::open((d + "/g").c_str(), O_RDONLY); }) == "0");
    REQUIRE(::mkdir((d + "/shared").c_str(), 0777) == 0);
    REQUIRE(::chmod((d + "/shared").c_str(), 0777) == 0);
    CHECK(AsNobody([&] { return ::open((d + "/shared/mine").c_str(), O_WRONLY | O_CREAT, 0644); }) == "0");
    CHECK(::stat((d + "/shared/mine").c_str(), &st) == 0);
    CHECK(st.st_uid == kNobody);
  }
}
