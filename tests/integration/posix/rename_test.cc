// rename(2) and renameat2(2).
#include <linux/fs.h>
#include <sys/syscall.h>

#include "tests/integration/posix/posix.h"

using namespace strata::it;
using namespace strata::it::posix;

namespace {
int Rename2(const std::string& from, const std::string& to, unsigned flags) {
  return static_cast<int>(::syscall(SYS_renameat2, AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), flags));
}
}  // namespace

TEST_CASE("posix rename/renameat2: errno of every edge case; EXDEV across stores", "[fuse][s3][posix]") {
  Rig rig;
  for (const std::string& root : rig.roots()) {
    INFO(root);
    const std::string d = root + "/rename";
    REQUIRE(::mkdir(d.c_str(), 0755) == 0);
    REQUIRE(WriteText(d + "/a", "A") == 0);
    REQUIRE(WriteText(d + "/b", "B") == 0);
    REQUIRE(::mkdir((d + "/dir").c_str(), 0755) == 0);
    REQUIRE(::mkdir((d + "/full").c_str(), 0755) == 0);
    REQUIRE(WriteText(d + "/full/x", "x") == 0);
    REQUIRE(::mkdir((d + "/empty").c_str(), 0755) == 0);
    CHECK(Err(::rename((d + "/missing").c_str(), (d + "/c").c_str())) == "ENOENT");
    CHECK(Err(::rename((d + "/a").c_str(), (d + "/no/such").c_str())) == "ENOENT");
    CHECK(Err(::rename((d + "/dir").c_str(), (d + "/full").c_str())) == "ENOTEMPTY");
    CHECK(Err(::rename((d + "/a").c_str(), (d + "/dir").c_str())) == "EISDIR");
    CHECK(Err(::rename((d + "/dir").c_str(), (d + "/a").c_str())) == "ENOTDIR");
    CHECK(Err(::rename((d + "/dir").c_str(), (d + "/dir/sub").c_str())) == "EINVAL");
    CHECK(Err(Rename2(d + "/a", d + "/b", RENAME_NOREPLACE)) == "EEXIST");
    CHECK(Err(Rename2(d + "/a", d + "/b", RENAME_EXCHANGE)) == "EINVAL");
    CHECK(AsNobody([&] { return ::rename((d + "/a").c_str(), (d + "/c").c_str()); }) == "EACCES");
    // A file replaces a file; a directory replaces an empty directory.
    CHECK(Err(::rename((d + "/a").c_str(), (d + "/b").c_str())) == "0");
    CHECK(ReadFile(d + "/b") == "A");
    struct stat st;
    CHECK(Err(::stat((d + "/a").c_str(), &st)) == "ENOENT");
    CHECK(Err(::rename((d + "/dir").c_str(), (d + "/empty").c_str())) == "0");
    CHECK(Err(::stat((d + "/dir").c_str(), &st)) == "ENOENT");
    CHECK(Err(::stat((d + "/empty").c_str(), &st)) == "0");
    CHECK(Err(Rename2(d + "/b", d + "/c", RENAME_NOREPLACE)) == "0");
    CHECK(ReadFile(d + "/c") == "A");
  }
  if (!UsingRgw()) {
    REQUIRE(WriteText(rig.agent.mnt("cross"), "x") == 0);
    CHECK(Err(::rename(rig.agent.mnt("cross").c_str(), rig.agent.mnt("s/cross").c_str())) == "EXDEV");
  }
}
