// Background uploads of committed files: a queue ordered by due time, a few
// uploader threads, retries with backoff, and the waits of `agentctl flush`.
//
// An Item is whatever the owner uploads (the Writer's staged files derive
// from it); the Uploader knows only whether an item is queued, uploading or
// cancelled, and calls the owner's upload function on one of its threads,
// never under its own lock. A failed upload is queued again after 0.5 s,
// doubling to a minute; Flush runs due-later items at once.
//
// Streams a writer dropped (ufs::StreamUpload) are destroyed here too: the
// abort waits on the network, and a FUSE worker must not.
//
// Lock order: the owner's locks before mu_; no callback runs under mu_.
// Thread safety: every public method may be called from any thread.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "agent/base/status.h"
#include "ufs/ufs.h"

namespace strata::cache {

class Uploader {
 public:
  struct Item {
    virtual ~Item() = default;

   private:
    friend class Uploader;
    // Guarded by Uploader::mu_.
    bool queued = false;
    bool uploading = false;
    bool cancelled = false;
    int failures = 0;  // consecutive failed uploads
  };
  using ItemPtr = std::shared_ptr<Item>;
  // Uploads an item as it is now; OK when it is in the store (or has
  // nothing left to upload).
  using UploadFn = std::function<Status(const ItemPtr&)>;

  Uploader(int threads, UploadFn upload);
  ~Uploader();
  void Start();
  // Waits for the uploads in flight; what is queued stays queued.
  void Stop();

  // Uploads `item` once `due_ms` (monotonic) has come; no-op when queued
  // already or cancelled.
  void Queue(const ItemPtr& item, int64_t due_ms);
  // Never uploads `item` again (it was removed); an upload running goes on.
  void Cancel(Item* item);
  // Aborts `stream` on an uploader thread.
  void Dispose(std::unique_ptr<ufs::StreamUpload> stream);

  // Waits until no item `match` accepts is queued or uploading, running
  // the ones waiting for a retry at once. `match` runs without mu_ held.
  // Timeout says how many are left and the last error.
  Status Flush(const std::function<bool(const ItemPtr&)>& match, int64_t timeout_ms, uint64_t* flushed);
  // Items queued or uploading now.
  std::vector<ItemPtr> Pending();
  // The last upload error ("" none yet).
  std::string last_error();

 private:
  void Loop();

  const int threads_;
  const UploadFn upload_;
  std::mutex mu_;
  std::condition_variable cv_;  // queue changes, uploads done
  std::multimap<int64_t, ItemPtr> queue_;                           // guarded by mu_
  std::vector<ItemPtr> running_;                                    // guarded by mu_
  std::vector<std::unique_ptr<ufs::StreamUpload>> retired_;        // guarded by mu_
  std::string last_error_;                                          // guarded by mu_
  bool stop_ = false;                                               // guarded by mu_
  std::vector<std::thread> workers_;
};

}  // namespace strata::cache
