// An open file for reading, as every front end (FUSE, the gateway) needs it:
// which copy to read — the staged one when this host is writing the file,
// else the store's version through the block cache — the sequential
// readahead window, and the first-read peek. A front end translates its
// requests into Read() and the Status into its own error space; it never
// talks to the fetch machinery.
//
// Thread safety: Read may be called from any thread, several at a time. The
// caller keeps the Reader alive until every Read has called `done`; once
// `done` has run, Read no longer touches the Reader.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "agent/base/status.h"
#include "agent/cache/engine.h"
#include "agent/cache/metadata.h"
#include "agent/cache/writer.h"

namespace strata::cache {

class Reader {
 public:
  struct Options {
    uint64_t max_readahead_blocks = 16;  // 0: no readahead
  };

  // Opens `path` for reading: its staged copy when this host is writing it,
  // else the version the metadata knows. NotFound, IsADirectory, or Busy when
  // the file changed under the open (try again).
  static Result<std::unique_ptr<Reader>> Open(Engine* engine, Metadata* meta, Writer* writer,
                                              const std::string& path, Options opts);
  // Reads through `staged`, a file opened for writing on this host.
  static std::unique_ptr<Reader> OfStaged(Engine* engine, Writer* writer, Writer::FilePtr staged, Options opts);

  // Reads [off, off+len) (short at the end of the file). `done` is called
  // exactly once, on this thread or a fetch worker.
  void Read(uint64_t off, size_t len, Engine::ReadDone done);

  // The stored version read (file_id 0 when reading a staged copy).
  const FileRef& ref() const { return ref_; }
  const Writer::FilePtr& staged() const { return staged_; }

 private:
  Reader(Engine* engine, Writer* writer, Options opts) : engine_(engine), writer_(writer), opts_(opts) {}

  Engine* const engine_;
  Writer* const writer_;
  const Options opts_;
  FileRef ref_;             // constant after Open
  Writer::FilePtr staged_;  // constant after Open

  std::mutex mu_;
  uint64_t next_off_ = 0;       // guarded by mu_: where a sequential reader goes next
  uint64_t window_ = 0;         // guarded by mu_: readahead blocks
  uint64_t prefetched_to_ = 0;  // guarded by mu_: first block not yet asked for
  bool read_before_ = false;    // guarded by mu_
};

}  // namespace strata::cache
