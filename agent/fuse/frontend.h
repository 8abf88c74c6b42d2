// The FUSE frontend: the libfuse3 low-level API over the cache. The only
// place where a Status becomes an errno.
//
// Threads: libfuse's multithreaded loop. Metadata misses ask the store from
// the worker (bounded by the store's deadline); read misses never do: the
// request is parked in the engine and answered from the fetch worker.
//
// Writes go to the cache::Writer (staging, journal, uploads); a flush, fsync
// or close waits for what the mount's write mode promises (on the worker).
#pragma once

#include <memory>
#include <functional>
#include <string>

#include "agent/base/status.h"
#include "agent/cache/engine.h"
#include "agent/cache/metadata.h"
#include "agent/cache/writer.h"

namespace strata::fuse {

struct Options {
  std::string mount_point;
  std::string fsname = "strata";
  double attr_timeout_s = 60;
  int max_threads = 16;
  int max_readahead_blocks = 16;  // sequential readahead window, in blocks
  bool allow_other = false;
  // Largest read the kernel sends. Below 1 MiB on purpose: libfuse splices
  // a reply only through a pipe that holds it whole plus a few pages, and a
  // pipe may not grow past /proc/sys/fs/pipe-max-size (1 MiB by default), so
  // 1 MiB reads would always be copied. 992 KiB leaves room for a reply of up
  // to six slices.
  unsigned max_read = 992u << 10;
  unsigned max_write = 1u << 20;
  unsigned kernel_readahead_kb = 4096;  // the mount's read_ahead_kb
  // Attributes of files the store keeps none for (objects not written by
  // Strata or s3fs).
  uint32_t uid = 0, gid = 0;
  uint32_t file_mode = 0644, dir_mode = 0755;
  // Called when a stored file is opened (must not block).
  std::function<void(const cache::FileRef&)> on_open;
};

class Frontend {
 public:
  Frontend(Options opts, cache::Metadata* meta, cache::Engine* engine, cache::Writer* writer);
  ~Frontend();

  // Creates the session and mounts it; installs SIGINT/SIGTERM/SIGHUP
  // handlers that end the loop.
  Status Mount();
  // Serves until unmounted or signalled. Returns 0 on a clean exit.
  int Loop();
  // `path` changed or went away behind the kernel's back (another front end
  // wrote it): the kernel forgets what it cached of it. Any thread but a
  // FUSE worker's.
  void Invalidate(const std::string& path);
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
