// unlink(2).
#include "tests/integration/posix/posix.h"

using namespace strata::it;
using namespace strata::it::posix;

TEST_CASE("posix unlink: errno of every edge case; an open file stays readable", "[fuse][s3][posix]") {
  Rig rig;
  for (const std::string& root : rig.roots()) {
    INFO(root);
    const std::string d = root + "/unlink";
    REQUIRE(::mkdir(d.c_str(), 0755) == 0);
    REQUIRE(WriteText(d + "/f", "still here") == 0);
    CHECK(Err(::unlink((d + "/missing").c_str())) == "ENOENT");
    CHECK(Err(::unlink(d.c_str())) == "EISDIR");
    CHECK(Err(::unlink((d + "/f/x").c_str())) == "ENOTDIR");
    CHECK(Err(::unlink((d + "/" + std::string(256, 'n')).c_str())) == "ENAMETOOLONG");
    CHECK(AsNobody([&] { return ::unlink((d + "/f").c_str()); }) == "EACCES");
    // Open and written here: the staged copy stays readable (and writable).
    int fd = ::open((d + "/f").c_str(), O_RDWR | O_APPEND);
    REQUIRE(fd >= 0);
    REQUIRE(::write(fd, " too", 4) == 4);
    CHECK(Err(::unlink((d + "/f").c_str())) == "0");
    char buf[32] = {};
    CHECK(::pread(fd, buf, sizeof(buf), 0) == 14);
    CHECK(std::string(buf) == "still here too");
    CHECK(::write(fd, "!", 1) == 1);
    ::close(fd);
    // Open only for reading: the bytes read before the unlink are cached;
    // past them the store has nothing left, which is a clear error.
    REQUIRE(WriteText(d + "/r", "read me") == 0);
    fd = ::open((d + "/r").c_str(), O_RDONLY);
    REQUIRE(fd >= 0);
    CHECK(::pread(fd, buf, sizeof(buf), 0) == 7);
    CHECK(Err(::unlink((d + "/r").c_str())) == "0");
    ssize_t n = ::pread(fd, buf, sizeof(buf), 0);
    std::string after = n >= 0 ? std::string(buf, static_cast<size_t>(n)) : Err(-1);
    CHECK((after == "read me" || after == "EIO" || after == "ESTALE"));
    ::close(fd);
    struct stat st;
    CHECK(Err(::stat((d + "/f").c_str(), &st)) == "ENOENT");
    CHECK(Err(::unlink((d + "/f").c_str())) == "ENOENT");
  }
}
