// The FUSE frontend: the libfuse3 low-level API over the cache. The only
// place where a Status becomes an errno.
//
// Threads: libfuse's multithreaded loop. Metadata misses ask the store from
// the worker (bounded by the store's deadline); read misses never do: the
// request is parked in the engine and answered from the fetch worker.
//
// Until writes land the mount is read-only (the kernel answers EROFS).
#pragma once

#include <memory>
#include <string>

#include "agent/base/status.h"
#include "agent/cache/engine.h"
#include "agent/cache/metadata.h"

namespace strata::fuse {

struct Options {
  std::string mount_point;
  std::string fsname = "strata";
  double attr_timeout_s = 60;
  int max_threads = 16;
  int max_readahead_blocks = 8;  // sequential readahead window, in blocks
  bool allow_other = false;
  unsigned max_read = 1u << 20;
};

class Frontend {
 public:
  Frontend(Options opts, cache::Metadata* meta, cache::Engine* engine);
  ~Frontend();

  // Creates the session and mounts it; installs SIGINT/SIGTERM/SIGHUP
  // handlers that end the loop.
  Status Mount();
  // Serves until unmounted or signalled. Returns 0 on a clean exit.
  int Loop();
  // Ends the loop from any thread (a wake-up via a stat of the mount).
  void Exit();
  // Unmounts. Idempotent. The session is destroyed with the Frontend, which
  // must outlive the engine's fetch workers (they may still reply).
  void Unmount();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// Checks a mount point before mounting: exists, is a directory, is empty,
// is not mounted (a stale FUSE mount left by a crash is named as such).
Status CheckMountPoint(const std::string& path);
// errno for a Status (the one translation).
int ErrnoOf(const Status& s);

}  // namespace strata::fuse
