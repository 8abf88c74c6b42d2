#include "agent/cache/reader.h"

#include <algorithm>
#include <utility>

namespace strata::cache {

Result<std::unique_ptr<Reader>> Reader::Open(Engine* engine, Metadata* meta, Writer* writer,
                                             const std::string& path, Options opts) {
  std::unique_ptr<Reader> r(new Reader(engine, writer, opts));
  // A staged file that goes away in between has been recorded in the index
  // by then, so the second look finds the stored version.
  for (int attempt = 0; attempt < 3; attempt++) {
    r->staged_ = writer->OpenStaged(path);
    if (r->staged_) return r;
    Result<index::FileMeta> m = meta->Stat(path);
    if (!m.ok()) return m.status();
    if (m->is_dir) return Status::IsADirectory("/" + path + " is a directory");
    if (m->file_id != 0) {
      r->ref_ = meta->RefOf(*m);
      return r;
    }
  }
  return Status::Busy("/" + path + " kept changing while it was opened; try again");
}

std::unique_ptr<Reader> Reader::OfStaged(Engine* engine, Writer* writer, Writer::FilePtr staged, Options opts) {
  std::unique_ptr<Reader> r(new Reader(engine, writer, opts));
  r->staged_ = std::move(staged);
  return r;
}

void Reader::Read(uint64_t off, size_t len, Engine::ReadDone done) {
  if (staged_) {
    auto buf = Buffer::Make(len);
    Result<size_t> n = writer_->Read(staged_, off, len, buf->data());
    if (!n.ok()) return done(n.status(), {});
    if (*n == 0) return done(Status::OK(), {});
    return done(Status::OK(), {Slice{std::move(buf), 0, *n}});
  }
  const uint64_t bs = engine_->block_size();
  uint64_t prefetch_from = 0, prefetch_count = 0;
  bool first_read;
  {
    std::lock_guard<std::mutex> lock(mu_);
    first_read = !std::exchange(read_before_, true);
    // Sequential detection tolerates the kernel's slightly reordered readahead.
    bool sequential = off + (2u << 20) >= next_off_ && off <= next_off_ + (2u << 20) && (off > 0 || next_off_ == 0);
    if (sequential && off + len > 0) {
      window_ = std::clamp<uint64_t>(window_ * 2, 1, std::max<uint64_t>(1, opts_.max_readahead_blocks));
      uint64_t want_to = (off + len - 1) / bs + 1 + window_;
      uint64_t from = std::max(prefetched_to_, (off + len - 1) / bs + 1);
      if (want_to > from) {
        prefetch_from = from;
        prefetch_count = want_to - from;
        prefetched_to_ = want_to;
      }
    } else {
      window_ = 0;
      prefetched_to_ = 0;
    }
    next_off_ = off + len;
  }
  // Readahead is queued first (in the background queue); the demand read's
  // own fetch goes ahead of it. After Read() the Reader may already be gone.
  if (prefetch_count > 0 && opts_.max_readahead_blocks > 0) engine_->Prefetch(ref_, prefetch_from, prefetch_count);
  engine_->Read(ref_, off, len, std::move(done), first_read);
}

}  // namespace strata::cache
