// mknod(2): regular files only.
#include <sys/sysmacros.h>

#include "tests/integration/posix/posix.h"

using namespace strata::it;
using namespace strata::it::posix;

TEST_CASE("posix mknod: regular files made; FIFOs, sockets and devices EPERM", "[fuse][s3][posix]") {
  Rig rig;
  for (const std::string& root : rig.roots()) {
    INFO(root);
    const std::string d = root + "/mknod";
    REQUIRE(::mkdir(d.c_str(), 0755) == 0);
    CHECK(Err(::mknod((d + "/reg").c_str(), S_IFREG | 0600, 0)) == "0");
    struct stat st;
    CHECK(::stat((d + "/reg").c_str(), &st) == 0);
    CHECK(S_ISREG(st.st_mode));
    CHECK(st.st_size == 0);
    CHECK(Err(::mknod((d + "/reg").c_str(), S_IFREG | 0600, 0)) == "EEXIST");
    CHECK(Err(::mknod((d + "/fifo").c_str(), S_IFIFO | 0600, 0)) == "EPERM");
    CHECK(Err(::mknod((d + "/sock").c_str(), S_IFSOCK | 0600, 0)) == "EPERM");
    CHECK(Err(::mknod((d + "/chr").c_str(), S_IFCHR | 0600, makedev(1, 3))) == "EPERM");
    CHECK(Err(::mknod((d + "/no/such").c_str(), S_IFREG | 0600, 0)) == "ENOENT");
  }
}
