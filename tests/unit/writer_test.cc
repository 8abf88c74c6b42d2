// The writer over a real LMDB index and staging directory, with an in-memory
// store that can fail uploads: retries lose and duplicate nothing, the
// journal survives a restart, through-mode failures stay staged.
#include <fcntl.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <thread>

#include "agent/cache/writer.h"
#include "tests/unit/rig.h"

using namespace strata;
using testing::RandomBytes;
using testing::Rig;

namespace {

struct WriterRig : Rig {
  std::unique_ptr<cache::Writer> writer;
  cache::WriteMode mode;

  explicit WriterRig(cache::WriteMode m) : Rig(64u << 20), mode(m) { OpenWriter(); }
  void OpenWriter() {
    cache::WriterOptions wo;
    wo.staging_dir = dir.path + "/staging";
    wo.staging_limit = 32u << 20;
    wo.block_size = opts.block_size;
    wo.modes = {mode};
    writer = std::make_unique<cache::Writer>(wo, &mounts, idx.get(), engine.get(), meta.get());
    meta->SetStaged(writer.get());
    REQUIRE(writer->Start().ok());
  }
  void RestartAll() {
    writer.reset();
    Restart();
    OpenWriter();
  }
  // Writes `data` as a new file; returns what the final commit said.
  Status WriteFile(const std::string& path, const std::string& data) {
    auto f = writer->Open(path, O_CREAT | O_TRUNC | O_WRONLY, {});
    REQUIRE(f.ok());
    uint64_t at = 0;
    REQUIRE(writer->Write(*f, 0, data.data(), data.size(), false, &at).ok());
    Status s = writer->Commit(*f);
    writer->Close(*f);
    return s;
  }
};

}  // namespace

TEST_CASE("async uploads retry through store failures without loss or duplicates", "[unit][write]") {
  WriterRig r(cache::WriteMode::kAsync);
  std::string data = RandomBytes(300000, 1);
  r.store->FailNextPuts(3);  // as a store answering 503 three times
  REQUIRE(r.WriteFile("a", data).ok());  // staged and journaled: acknowledged
  CHECK(r.writer->Stats().pending_files == 1);
  uint64_t flushed = 0;
  Status s = r.writer->Flush("", 30000, &flushed);
  INFO(s.message());
  REQUIRE(s.ok());
  CHECK(r.store->Data("a") == data);
  CHECK(r.store->puts() == 1);  // the failed attempts stored nothing
  cache::WriterStats st = r.writer->Stats();
  CHECK(st.pending_files == 0);
  CHECK(st.upload_failures == 3);
  CHECK(st.uploads == 1);
}

TEST_CASE("a through-mode failure is reported, kept and retried", "[unit][write]") {
  WriterRig r(cache::WriteMode::kThrough);
  std::string data = RandomBytes(100000, 2);
  r.store->FailNextPuts(1);
  Status s = r.WriteFile("b", data);
  CHECK_FALSE(s.ok());  // the caller hears of it
  CHECK_FALSE(r.store->Has("b"));
  uint64_t flushed = 0;
  REQUIRE(r.writer->Flush("", 30000, &flushed).ok());
  CHECK(r.store->Data("b") == data);
  CHECK(r.store->puts() == 1);
}

TEST_CASE("the journal survives a restart and the restarted writer uploads", "[unit][write]") {
  WriterRig r(cache::WriteMode::kAsync);
  std::string data = RandomBytes(200000, 3);
  r.store->FailNextPuts(1000);  // nothing gets out before the "crash"
  REQUIRE(r.WriteFile("dir/c", data).ok());
  REQUIRE(r.WriteFile("d", "small").ok());
  // Unlinked before upload: must never reach the store.
  REQUIRE(r.WriteFile("gone", "x").ok());
  REQUIRE(r.writer->Unlink("gone").ok());
  r.RestartAll();
  r.store->FailNextPuts(0);
  // Readers see the staged data before the upload.
  auto m = r.meta->Stat("dir/c");
  REQUIRE(m.ok());
  CHECK(m->size == data.size());
  uint64_t flushed = 0;
  REQUIRE(r.writer->Flush("", 30000, &flushed).ok());
  CHECK(r.store->Data("dir/c") == data);
  CHECK(r.store->Data("d") == "small");
  CHECK_FALSE(r.store->Has("gone"));
}

TEST_CASE("a file's content type and user metadata reach the store, across a restart, and stay through an edit",
          "[unit][write]") {
  WriterRig r(cache::WriteMode::kAsync);
  r.store->FailNextPuts(1000);
  ufs::Attrs a;
  a.mode = S_IFREG | 0644;
  a.user = {"text/plain", {{"color", "blue"}}};
  auto f = r.writer->Open("m", O_CREAT | O_WRONLY, a);
  REQUIRE(f.ok());
  uint64_t at = 0;
  REQUIRE(r.writer->Write(*f, 0, "abc", 3, false, &at).ok());
  REQUIRE(r.writer->Commit(*f).ok());
  CHECK(r.writer->MetaOf(*f).user == a.user);
  r.writer->Close(*f);
  r.RestartAll();  // only the journal knows the metadata now
  r.store->FailNextPuts(0);
  uint64_t flushed = 0;
  REQUIRE(r.writer->Flush("", 30000, &flushed).ok());
  CHECK(r.store->AttrsOf("m").user == a.user);
  CHECK(r.meta->Stat("m")->user == a.user);
  // Opened again and appended to: the metadata stays.
  auto g = r.writer->Open("m", O_WRONLY, {});
  REQUIRE(g.ok());
  REQUIRE(r.writer->Write(*g, 0, "d", 1, true, &at).ok());
  REQUIRE(r.writer->Commit(*g).ok());
  r.writer->Close(*g);
  REQUIRE(r.writer->Flush("", 30000, &flushed).ok());
  CHECK(r.store->Data("m") == "abcd");
  CHECK(r.store->AttrsOf("m").user == a.user);
}

TEST_CASE("partial writes over a stored object keep its other bytes", "[unit][write]") {
  WriterRig r(cache::WriteMode::kThrough);
  const uint64_t bs = r.opts.block_size;
  std::string base = RandomBytes(3 * bs + 100, 4);
  r.store->Put("obj", base);
  auto m = r.meta->Stat("obj");
  REQUIRE(m.ok());
  auto f = r.writer->Open("obj", O_WRONLY, {});
  REQUIRE(f.ok());
  uint64_t at = 0;
  // Inside block 1, across blocks 1-2, and an append.
  REQUIRE(r.writer->Write(*f, bs + 10, "AAAA", 4, false, &at).ok());
  REQUIRE(r.writer->Write(*f, 2 * bs - 2, "BBBB", 4, false, &at).ok());
  REQUIRE(r.writer->Write(*f, 0, "CC", 2, true, &at).ok());
  CHECK(at == base.size());
  std::string want = base;
  want.replace(bs + 10, 4, "AAAA");
  want.replace(2 * bs - 2, 4, "BBBB");
  want += "CC";
  std::string got(want.size(), '\0');
  auto n = r.writer->Read(*f, 0, got.size(), got.data());
  REQUIRE(n.ok());
  CHECK(got == want);
  REQUIRE(r.writer->Commit(*f).ok());
  // Truncate into block 1, then grow: zeros after the cut.
  REQUIRE(r.writer->Truncate(*f, bs + 12).ok());
  REQUIRE(r.writer->Truncate(*f, bs + 20).ok());
  REQUIRE(r.writer->Commit(*f).ok());
  r.writer->Close(*f);
  std::string cut = want.substr(0, bs + 12) + std::string(8, '\0');
  CHECK(r.store->Data("obj") == cut);
}

TEST_CASE("a full staging area refuses writes with ENOSPC and loses nothing", "[unit][write]") {
  WriterRig r(cache::WriteMode::kCacheOnly);  // nothing drains: the area stays full
  std::string data = RandomBytes(20u << 20, 5);
  REQUIRE(r.WriteFile("one", data).ok());
  auto f = r.writer->Open("two", O_CREAT | O_TRUNC | O_WRONLY, {});
  REQUIRE(f.ok());
  uint64_t at = 0;
  Status s = r.writer->Write(*f, 0, data.data(), data.size(), false, &at);
  CHECK(s.code() == Status::Code::kNoSpace);
  r.writer->Close(*f);
  std::string got(data.size(), '\0');
  auto one = r.writer->OpenStaged("one");
  REQUIRE(one);
  REQUIRE(r.writer->Read(one, 0, got.size(), got.data()).ok());
  CHECK(got == data);
  r.writer->Close(one);
  CHECK_FALSE(r.store->Has("one"));
}

TEST_CASE("an async append journals the stored version by reference, not a copy, and survives a restart",
          "[unit][write]") {
  WriterRig r(cache::WriteMode::kAsync);
  const uint64_t bs = r.opts.block_size;
  std::string base = RandomBytes(10 * bs, 5);
  r.store->Put("big", base);
  REQUIRE(r.meta->Stat("big").ok());
  r.store->FailNextPuts(1000);  // nothing gets out before the "crash"
  auto f = r.writer->Open("big", O_WRONLY | O_APPEND, {});
  REQUIRE(f.ok());
  uint64_t at = 0;
  REQUIRE(r.writer->Write(*f, 0, "XY", 2, true, &at).ok());
  CHECK(at == base.size());
  REQUIRE(r.writer->Commit(*f).ok());
  r.writer->Close(*f);
  // The staging area holds the two bytes (one page), not ten blocks (the
  // uploader, already trying, reads the stored version; it does not stage it).
  uint64_t staged_disk = 0;
  for (auto& e : testing::fs::directory_iterator(r.dir.path + "/staging")) {
    struct stat st;
    REQUIRE(::stat(e.path().c_str(), &st) == 0);
    staged_disk += static_cast<uint64_t>(st.st_blocks) * 512;
  }
  CHECK(staged_disk < bs);
  r.RestartAll();
  r.store->FailNextPuts(0);
  uint64_t flushed = 0;
  REQUIRE(r.writer->Flush("", 30000, &flushed).ok());
  CHECK(r.store->Data("big") == base + "XY");
}

TEST_CASE("a partial write waiting for the store's bytes does not hold readers of the file", "[unit][write]") {
  WriterRig r(cache::WriteMode::kThrough);
  const uint64_t bs = r.opts.block_size;
  std::string base = RandomBytes(3 * bs, 6);
  r.store->Put("slow", base);
  REQUIRE(r.Read(r.Ref("slow"), 0, bs) == base.substr(0, bs));  // block 0 cached
  r.Settle();
  auto f = r.writer->Open("slow", O_RDWR, {});
  REQUIRE(f.ok());
  r.store->SetDelayMs(1000);  // block 1 comes from a slow store
  std::atomic<bool> write_done{false};
  std::thread writer([&] {
    uint64_t at = 0;
    CHECK(r.writer->Write(*f, bs + 5, "XY", 2, false, &at).ok());
    write_done = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the write is waiting for the store
  std::string got(bs, '\0');
  auto n = r.writer->Read(*f, 0, bs, got.data());
  bool read_first = !write_done;  // answered while the write still waited
  writer.join();
  REQUIRE(n.ok());
  CHECK(got == base.substr(0, bs));
  CHECK(read_first);
  std::string want = base;
  want.replace(bs + 5, 2, "XY");
  std::string all(want.size(), '\0');
  REQUIRE(r.writer->Read(*f, 0, all.size(), all.data()).ok());
  CHECK(all == want);
  r.store->SetDelayMs(0);
  REQUIRE(r.writer->Commit(*f).ok());
  r.writer->Close(*f);
  CHECK(r.store->Data("slow") == want);
}

TEST_CASE("a write to a file being uploaded does not wait for the upload, and the store ends with the last version",
          "[unit][write]") {
  WriterRig r(cache::WriteMode::kAsync);
  const uint64_t bs = r.opts.block_size;
  std::string data = RandomBytes(4 * bs, 8);
  auto f = r.writer->Open("busy", O_CREAT | O_TRUNC | O_RDWR, {});
  REQUIRE(f.ok());
  uint64_t at = 0;
  REQUIRE(r.writer->Write(*f, 0, data.data(), data.size(), false, &at).ok());
  r.store->SetPutDelayMs(1500);
  REQUIRE(r.writer->Commit(*f).ok());  // journaled; an uploader starts
  for (int i = 0; i < 200 && r.store->puts_started() == 0; i++)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  REQUIRE(r.store->puts_started() == 1);
  // Both halves of the file change while the upload is between them.
  REQUIRE(r.writer->Write(*f, 5, "AB", 2, false, &at).ok());
  REQUIRE(r.writer->Write(*f, 3 * bs + 7, "CD", 2, false, &at).ok());
  // The writes returned while the upload was still running: they did not
  // wait for it (no clock needed to tell).
  CHECK(r.store->puts() == 0);
  data.replace(5, 2, "AB");
  data.replace(3 * bs + 7, 2, "CD");
  std::string got(data.size(), '\0');
  REQUIRE(r.writer->Read(*f, 0, got.size(), got.data()).ok());
  CHECK(got == data);
  r.store->SetPutDelayMs(0);
  REQUIRE(r.writer->Commit(*f).ok());
  r.writer->Close(*f);
  uint64_t flushed = 0;
  REQUIRE(r.writer->Flush("", 30000, &flushed).ok());
  CHECK(r.store->Data("busy") == data);
  // The counters may trail the flush by a moment on a loaded machine (seen
  // under parallel builds; the cause is not found): they must reach zero,
  // not at once.
  for (int i = 0; i < 200 && r.writer->Stats().pending_files != 0; i++)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  CHECK(r.writer->Stats().pending_files == 0);
}

TEST_CASE("a truncate while the file uploads: the bytes past the cut stay zeros after the upload", "[unit][write]") {
  WriterRig r(cache::WriteMode::kAsync);
  const uint64_t bs = r.opts.block_size;
  std::string base = RandomBytes(4 * bs, 9);
  r.store->Put("cut", base);
  auto f = r.writer->Open("cut", O_RDWR, {});
  REQUIRE(f.ok());
  uint64_t at = 0;
  REQUIRE(r.writer->Write(*f, 3 * bs, "Z", 1, false, &at).ok());  // blocks 0-2 stay the stored ones
  r.store->SetPutDelayMs(1500);
  REQUIRE(r.writer->Commit(*f).ok());
  for (int i = 0; i < 200 && r.store->puts_started() == 0; i++)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  REQUIRE(r.writer->Truncate(*f, bs / 2).ok());
  REQUIRE(r.writer->Truncate(*f, 2 * bs).ok());  // grows again: [bs/2, 2 bs) reads as zeros
  uint64_t flushed = 0;
  REQUIRE(r.writer->Flush("", 30000, &flushed).ok());  // the first upload ends (old version)
  std::string want = base.substr(0, bs / 2) + std::string(2 * bs - bs / 2, '\0');
  std::string got(2 * bs, '\1');
  REQUIRE(r.writer->Read(*f, 0, got.size(), got.data()).ok());
  CHECK(got == want);
  r.store->SetPutDelayMs(0);
  REQUIRE(r.writer->Commit(*f).ok());
  r.writer->Close(*f);
  REQUIRE(r.writer->Flush("", 30000, &flushed).ok());
  CHECK(r.store->Data("cut") == want);
}
