// The corners of S3 naming, as the mount shows them (issue 13, item 3): a key
// `a` beside keys under `a/`, directory markers with and without bytes, empty
// and dot segments, segments over 255 bytes, listing pages that end on a
// marker, NFC and NFD forms of one name, names that differ only in case. Run
// on s3rver and again on Ceph RGW; what s3rver cannot hold (it keeps objects
// as files) runs on RGW only. The README's "S3 names" table says the same.
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <set>

#include "tests/integration/harness.h"

using namespace strata::it;
namespace fs = std::filesystem;

namespace {

std::set<std::string> Names(const std::string& dir) {
  std::set<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) out.insert(e.path().filename().string());
  INFO(dir << ": " << ec.message());
  REQUIRE(!ec);
  return out;
}

bool IsDir(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

int StatErrno(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 ? 0 : errno;
}

}  // namespace

TEST_CASE("S3 names: shadowed keys, markers, dot and empty segments, long names, pages, unicode, case",
          "[fuse][s3][names]") {
  auto store = MakeStore("s3");
  TempDir src;
  std::vector<std::pair<std::string, std::string>> objects;
  auto object = [&](const std::string& key, const std::string& bytes) {
    std::string f = src.path + "/" + std::to_string(objects.size());
    std::ofstream(f, std::ios::binary) << bytes;
    objects.emplace_back(key, f);
  };
  const std::string nfc = "caf\xc3\xa9", nfd = "cafe\xcc\x81";
  const std::string name255(255, 'n'), name256(256, 'm');
  object("shadow/a", "the file a");
  object("shadow/a/child", "the child");
  object("shadow/b", "b alone");
  object("markers/empty/", "");
  object("markers/full/", "bytes in a marker");
  object("markers/full/inside", "inside");
  // Pages of two keys (--list-chunk 2): markers and prefixes on page edges.
  for (const char* k : {"pages/d1/", "pages/d1/f", "pages/d2/", "pages/d3/", "pages/d3/g", "pages/f1", "pages/f2",
                        "pages/f3", "pages/z/"})
    object(k, std::string(k).back() == '/' ? "" : k);
  object("uni/" + nfc, "composed");
  object("uni/" + nfd, "decomposed");
  object("case/Readme", "lower");
  object("case/README", "upper");
  if (UsingRgw()) {
    // s3rver keeps objects as files: these names cannot be files there.
    object("empty//b", "after an empty segment");
    object("empty/ok", "ok");
    object("dots/.", "a dot");
    object("dots/..", "two dots");
    object("dots/x.", "ends in a dot");
    object("long/" + name255, "255 bytes");
    object("long/" + name256, "256 bytes");
  }
  store->PutMany(objects);

  Agent agent;
  std::vector<std::string> args = store->agent_args();
  args.insert(args.end(), {"--list-chunk", "2"});
  agent.Start(store->uri(), args);

  // The directory wins over the same-named key, in lookups as in listings.
  CHECK(Names(agent.mnt("shadow")) == std::set<std::string>{"a", "b"});
  CHECK(IsDir(agent.mnt("shadow/a")));
  CHECK(ReadFile(agent.mnt("shadow/a/child")) == "the child");
  CHECK(Names(agent.mnt("shadow/a")) == std::set<std::string>{"child"});
  CHECK(ReadFile(agent.mnt("shadow/b")) == "b alone");

  // Markers are directories, with or without bytes; their bytes are not shown.
  CHECK(Names(agent.mnt("markers")) == std::set<std::string>{"empty", "full"});
  CHECK(IsDir(agent.mnt("markers/empty")));
  CHECK(IsDir(agent.mnt("markers/full")));
  CHECK(Names(agent.mnt("markers/empty")).empty());
  CHECK(Names(agent.mnt("markers/full")) == std::set<std::string>{"inside"});

  // Every entry once, whatever page it fell on.
  CHECK(Names(agent.mnt("pages")) == std::set<std::string>{"d1", "d2", "d3", "f1", "f2", "f3", "z"});
  CHECK(Names(agent.mnt("pages/d1")) == std::set<std::string>{"f"});
  CHECK(Names(agent.mnt("pages/d2")).empty());
  CHECK(ReadFile(agent.mnt("pages/f3")) == "pages/f3");

  // Names are bytes: two normal forms and two cases are four files.
  CHECK(Names(agent.mnt("uni")) == std::set<std::string>{nfc, nfd});
  CHECK(ReadFile(agent.mnt("uni/" + nfc)) == "composed");
  CHECK(ReadFile(agent.mnt("uni/" + nfd)) == "decomposed");
  CHECK(Names(agent.mnt("case")) == std::set<std::string>{"Readme", "README"});
  CHECK(ReadFile(agent.mnt("case/Readme")) == "lower");
  CHECK(ReadFile(agent.mnt("case/README")) == "upper");
  CHECK(StatErrno(agent.mnt("case/readme")) == ENOENT);

  // Over 255 bytes: refused as a local file system would.
  CHECK(StatErrno(agent.mnt("case/" + name256)) == ENAMETOOLONG);
  CHECK(::open(agent.mnt("case/" + name256).c_str(), O_CREAT | O_WRONLY, 0644) == -1);
  CHECK(errno == ENAMETOOLONG);

  if (UsingRgw()) {
    // An empty segment and "." / ".." cannot be file names: left out.
    CHECK(Names(agent.mnt("empty")) == std::set<std::string>{"ok"});
    CHECK(Names(agent.mnt("dots")) == std::set<std::string>{"x."});
    CHECK(ReadFile(agent.mnt("dots/x.")) == "ends in a dot");
    // 255 bytes is a name; 256 is not listed.
    CHECK(Names(agent.mnt("long")) == std::set<std::string>{name255});
    CHECK(ReadFile(agent.mnt("long/" + name255)) == "255 bytes");
  }
  // Nothing above was an error the agent had to log.
  CHECK(agent.log().find("lookup /") == std::string::npos);
  agent.Stop();
}
