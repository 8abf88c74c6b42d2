// The file:// store keeps a file's content type and user metadata in its
// `user.*` extended attributes.
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>

#include "ufs/local.h"

using namespace strata;

TEST_CASE("file:// keeps user metadata in user.* xattrs: Put, Stat, List, Rename", "[unit]") {
  char tmpl[] = "/var/tmp/strata-local-XXXXXX";  // a disk file system: user xattrs (tmpfs may lack them)
  std::string root = ::mkdtemp(tmpl);
  std::unique_ptr<ufs::Ufs> u = ufs::NewLocalUfs("file://" + root, root);
  const std::string data = "hello";
  auto src = [&](uint64_t off, size_t len, char* buf) {
    std::memcpy(buf, data.data() + off, len);
    return Status::OK();
  };
  ufs::Attrs a;
  a.mode = S_IFREG | 0640;
  a.user = {"text/plain", {{"color", "blue"}, {"owner", "Ann"}}};
  Result<ufs::Entry> put = u->Put("f", data.size(), src, a);
  REQUIRE(put.ok());
  CHECK(put->attrs.user == a.user);
  CHECK(u->Stat("f")->attrs.user == a.user);
  Result<std::vector<ufs::Entry>> listed = u->List("");
  REQUIRE(listed.ok());
  REQUIRE(listed->size() == 1);
  CHECK((*listed)[0].attrs.user == a.user);
  REQUIRE(u->Rename("f", "g").ok());
  CHECK(u->Stat("g")->attrs.user == a.user);
  // chmod keeps it; a plain file has none.
  ufs::Attrs mode;
  mode.mode = 0600;
  CHECK(u->SetAttrs("g", mode)->attrs.user == a.user);
  REQUIRE(u->Put("plain", data.size(), src, {}).ok());
  CHECK(u->Stat("plain")->attrs.user.empty());
  std::filesystem::remove_all(root);
}
