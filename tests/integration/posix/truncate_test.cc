// truncate(2) and ftruncate(2).
#include "tests/integration/posix/posix.h"

using namespace strata::it;
using namespace strata::it::posix;

TEST_CASE("posix truncate/ftruncate: errno of every edge case; bytes after growing and shrinking", "[fuse][s3][posix]") {
  Rig rig;
  for (const std::string& root : rig.roots()) {
    INFO(root);
    const std::string d = root + "/truncate";
    REQUIRE(::mkdir(d.c_str(), 0755) == 0);
    REQUIRE(WriteText(d + "/f", "0123456789") == 0);
    CHECK(Err(::truncate((d + "/missing").c_str(), 0)) == "ENOENT");
    CHECK(Err(::truncate(d.c_str(), 0)) == "EISDIR");
    CHECK(Err(::truncate((d + "/f").c_str(), -1)) == "EINVAL");
    CHECK(Err(::truncate((d + "/f/x").c_str(), 0)) == "ENOTDIR");
    CHECK(AsNobody([&] { return ::truncate((d + "/f").c_str(), 0); }) == "EACCES");
    CHECK(Err(::truncate((d + "/f").c_str(), 4)) == "0");
    CHECK(ReadFile(d + "/f") == "0123");
    CHECK(Err(::truncate((d + "/f").c_str(), 8)) == "0");
    CHECK(ReadFile(d + "/f") == std::string("0123\0\0\0\0", 8));
    int fd = ::open((d + "/f").c_str(), O_RDONLY);
    REQUIRE(fd >= 0);
    CHECK(Err(::ftruncate(fd, 0)) == "EINVAL");  // not open for writing
    ::close(fd);
    fd = ::open((d + "/f").c_str(), O_RDWR);
    REQUIRE(fd >= 0);
    CHECK(Err(::ftruncate(fd, 2)) == "0");
    ::close(fd);
    CHECK(ReadFile(d + "/f") == "01");
  }
}
