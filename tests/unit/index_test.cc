#include <catch2/catch.hpp>
#include <filesystem>

#include "agent/index/index.h"

using namespace strata;
namespace fs = std::filesystem;

namespace {
std::string TempIndexDir() {
  char tmpl[] = "/tmp/strata-index-XXXXXX";
  return ::mkdtemp(tmpl);
}
}  // namespace

TEST_CASE("file versions: same attributes keep the id, a change retires it", "[unit]") {
  std::string dir = TempIndexDir();
  {
    auto idx = index::Index::Open(dir, 4096);
    REQUIRE(idx.ok());
    index::FileMeta m;
    m.path = "a/b.bin";
    m.size = 10;
    m.etag = "\"1\"";
    uint64_t retired = 99;
    auto s1 = (*idx)->PutMeta(m, &retired);
    REQUIRE(s1.ok());
    CHECK(retired == 0);
    CHECK(s1->file_id != 0);
    auto s2 = (*idx)->PutMeta(m, &retired);
    CHECK(s2->file_id == s1->file_id);
    m.etag = "\"2\"";
    auto s3 = (*idx)->PutMeta(m, &retired);
    CHECK(retired == s1->file_id);
    CHECK(s3->file_id != s1->file_id);
    CHECK(**(*idx)->PathOf(s3->file_id) == "a/b.bin");
    CHECK_FALSE((*idx)->PathOf(s1->file_id)->has_value());
    // Blocks of the retired version are dropped when loaded.
    REQUIRE((*idx)->ApplyBlockOps({{{s1->file_id, 0}, false, {10, 1, {7}}},
                                   {{s3->file_id, 0}, false, {10, 2, {8}}}}).ok());
    std::vector<BlockKey> live;
    REQUIRE((*idx)->LoadBlocks([&](const BlockKey& k, const index::BlockRecord& r) {
      live.push_back(k);
      CHECK(r.checksums == std::vector<uint64_t>{8});
    }).ok());
    REQUIRE(live.size() == 1);
    CHECK(live[0].file_id == s3->file_id);
    CHECK((*idx)->GetStats().block_rows == 1);
  }
  // Reopened with another block size: the blocks are gone, metadata stays.
  auto idx = index::Index::Open(dir, 8192);
  REQUIRE(idx.ok());
  CHECK((*idx)->GetStats().block_rows == 0);
  CHECK((*idx)->GetMeta("a/b.bin")->has_value());
  fs::remove_all(dir);
}

TEST_CASE("a new listing retires children that vanished or changed", "[unit]") {
  std::string dir = TempIndexDir();
  auto idx = index::Index::Open(dir, 4096);
  REQUIRE(idx.ok());
  index::DirListing l;
  l.path = "d";
  l.fetched_ms = 5;
  l.entries = {{{}, "x", false, 1, 1, "\"x1\""}, {{}, "y", false, 2, 1, "\"y1\""}, {{}, "sub", true, 0, 0, ""}};
  std::vector<uint64_t> retired;
  REQUIRE((*idx)->PutDir(l, &retired).ok());
  CHECK(retired.empty());
  uint64_t x_id = (**(*idx)->GetMeta("d/x")).file_id;
  uint64_t y_id = (**(*idx)->GetMeta("d/y")).file_id;
  l.entries = {{{}, "x", false, 1, 1, "\"x1\""}, {{}, "y", false, 3, 1, "\"y2\""}};
  REQUIRE((*idx)->PutDir(l, &retired).ok());
  CHECK(retired == std::vector<uint64_t>{y_id});
  CHECK((**(*idx)->GetMeta("d/x")).file_id == x_id);
  CHECK_FALSE((*idx)->GetMeta("d/sub")->has_value());
  auto got = (*idx)->GetDir("d");
  REQUIRE(got->has_value());
  CHECK((*got)->entries.size() == 2);
  fs::remove_all(dir);
}

TEST_CASE("the map grows when full", "[unit]") {
  std::string dir = TempIndexDir();
  auto idx = index::Index::Open(dir, 4096, 1 << 20);
  REQUIRE(idx.ok());
  uint64_t before = (*idx)->GetStats().map_size;
  index::DirListing l;
  l.fetched_ms = 1;
  l.entries.resize(2000);
  for (size_t i = 0; i < l.entries.size(); i++) l.entries[i] = {{}, std::string(200, 'n') + std::to_string(i), false, 1, 1, "e"};
  std::vector<uint64_t> retired;
  for (int d = 0; d < 100 && (*idx)->GetStats().map_size == before; d++) {
    l.path = "big" + std::to_string(d);
    REQUIRE((*idx)->PutDir(l, &retired).ok());
  }
  CHECK((*idx)->GetStats().map_size > before);
  CHECK((*idx)->GetDir("big0")->has_value());
  fs::remove_all(dir);
}

TEST_CASE("user metadata: kept in meta and journal rows; a listing of the same version keeps it", "[unit]") {
  std::string dir = TempIndexDir();
  auto idx = index::Index::Open(dir, 4096);
  REQUIRE(idx.ok());
  index::FileMeta m;
  m.path = "d/f";
  m.size = 3;
  m.etag = "\"1\"";
  m.user = {"text/csv", {{"color", "blue"}, {"owner", "Ann"}}};
  uint64_t retired = 0;
  REQUIRE((*idx)->PutMeta(m, &retired).ok());
  CHECK((*(*idx)->GetMeta("d/f"))->user == m.user);
  // A listing row knows no user metadata: the same version keeps it, a new one does not.
  index::DirListing l;
  l.path = "d";
  index::DirEntry e;
  e.name = "f";
  e.size = 3;
  e.etag = "\"1\"";
  l.entries = {e};
  std::vector<uint64_t> gone;
  REQUIRE((*idx)->PutDir(l, &gone).ok());
  CHECK((*(*idx)->GetMeta("d/f"))->user == m.user);
  l.entries[0].etag = "\"2\"";
  REQUIRE((*idx)->PutDir(l, &gone).ok());
  CHECK((*(*idx)->GetMeta("d/f"))->user.empty());
  // Journal rows: with and without a base version.
  index::JournalEntry j;
  j.seq = 7;
  j.path = "d/g";
  j.user = {"", {{"k", "v"}}};
  REQUIRE((*idx)->PutJournal(j).ok());
  j.seq = 8;
  j.base_file_id = 5;
  j.base_etag = "\"b\"";
  j.user = {"image/png", {}};
  REQUIRE((*idx)->PutJournal(j).ok());
  std::vector<index::JournalEntry> rows;
  REQUIRE((*idx)->LoadJournal(&rows).ok());
  REQUIRE(rows.size() == 2);
  CHECK(rows[0].user == ufs::UserMeta{"", {{"k", "v"}}});
  CHECK(rows[0].base_file_id == 0);
  CHECK(rows[1].user == ufs::UserMeta{"image/png", {}});
  CHECK(rows[1].base_etag == "\"b\"");
  fs::remove_all(dir);
}
