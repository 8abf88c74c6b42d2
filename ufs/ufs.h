// The under-file-system interface: what the cache needs from a store.
//
// Paths are relative to the store's root: "" is the root, "a/b/c" a file or
// directory below it (no leading or trailing slash). An Entry's `etag` is an
// opaque version token; Read() pins it, so a block is never mixed from two
// versions of an object.
//
// Thread safety: every method may be called from any thread at once.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "agent/base/status.h"

namespace strata::ufs {

// A file's content type and user metadata (S3's Content-Type and
// x-amz-meta-*): in object headers on s3://, in `user.*` extended attributes
// on file:// (the content type as `user.mime_type`, the freedesktop.org key).
// Keys are lowercase, sorted, without the x-amz-meta- prefix, and never one
// of the POSIX keys below.
struct UserMeta {
  std::string content_type;  // "" = none kept
  std::vector<std::pair<std::string, std::string>> pairs;
  bool empty() const { return content_type.empty() && pairs.empty(); }
  bool operator==(const UserMeta&) const = default;
};
// The x-amz-meta- keys that carry POSIX attributes (s3fs-fuse's), which
// user metadata cannot use.
bool IsPosixMetaKey(std::string_view key);

// POSIX attributes kept with a file: by the file system itself on file://,
// in object user metadata on s3:// (x-amz-meta-mode / -uid / -gid / -mtime,
// the keys s3fs-fuse uses, so a bucket stays readable by both).
constexpr uint32_t kNoId = UINT32_MAX;
struct Attrs {
  uint32_t mode = 0;  // type and permission bits (st_mode); 0 = the store keeps none
  uint32_t uid = kNoId;
  uint32_t gid = kNoId;
  int64_t mtime_ns = 0;  // 0 = not kept
  // Written by Put / StartStream and read back by Stat; SetAttrs keeps what
  // the file has.
  UserMeta user;
};

struct Entry {
  std::string name;  // last path component (listings); empty for Stat of the root
  bool is_dir = false;
  uint64_t size = 0;
  int64_t mtime_ns = 0;  // the file's time: Attrs::mtime_ns when kept, else the store's
  std::string etag;  // "" for directories
  Attrs attrs;
  // False when the listing could not say (S3 listings carry no user metadata):
  // a Stat of the path tells.
  bool attrs_known = true;
  std::string link_target;  // symbolic links (S_IFLNK in attrs.mode)
};

// Object stores: whether a listed name can be a file name here (not empty,
// "." or "..", no NUL, at most 255 bytes), and a path's key below a prefix.
bool UsableName(const std::string& name);
std::string KeyOf(const std::string& prefix, const std::string& path);

// Attributes as object metadata, for the stores that keep them so (S3's
// x-amz-meta-*, Azure's x-ms-meta-*): the POSIX keys s3fs-fuse uses (mode,
// uid, gid in decimal; mtime in seconds, with a fraction when it has one)
// and the user's pairs. Not the content type (each store has its header).
std::vector<std::pair<std::string, std::string>> MetaPairs(const Attrs& a);
// Reads them back into *e (names lowercased): absent or malformed POSIX keys
// leave the defaults, a mode sets is_dir, mtime the entry's time, the rest
// are user metadata (sorted).
void ApplyMetaPairs(const std::vector<std::pair<std::string, std::string>>& meta, Entry* e);

// Reads [off, off + len) of the bytes being uploaded into buf.
using ReadAt = std::function<Status(uint64_t off, size_t len, char* buf)>;

// The stored version a new object replaces, for copying its unchanged
// ranges inside the store: `unchanged(off, len)` is true when bytes
// [off, off+len) of the new object are those same bytes of `path`@`etag`.
struct CopyBase {
  std::string path;
  std::string etag;
  std::function<bool(uint64_t off, uint64_t len)> unchanged;
};

// An object uploaded while it is still being written (a multipart upload
// whose parts go as soon as their bytes are final), so closing a large file
// waits only for its tail. Made by Ufs::StartStream.
//
// Contract: the bytes `src` returns below the end of the parts sent never
// change; the caller drops the stream (and uploads the file whole) before it
// changes such bytes. Destroying an unfinished stream aborts it and waits for
// the parts in flight, so it may block on the network.
// Thread safety: one caller at a time; parts are sent on the stream's own
// threads.
class StreamUpload {
 public:
  virtual ~StreamUpload() = default;
  // Bytes [0, n) are written: the parts wholly below n may be sent now.
  virtual void Advance(uint64_t n) = 0;
  // Where the parts sent (or queued) so far end: bytes below it are final.
  virtual uint64_t sent_end() const = 0;
  // The first error a part met, OK while none has.
  virtual Status status() const = 0;
  // Sends the rest of a `size`-byte object and completes it. With nothing
  // sent yet, a plain PUT with `attrs`; else the attributes given at start
  // stay, and the time is the completion's.
  virtual Result<Entry> Finish(uint64_t size, const Attrs& attrs) = 0;
};

// Request counters of one store, read by `agentctl stat` and /metrics.
struct Counters {
  std::atomic<uint64_t> get_requests{0};
  std::atomic<uint64_t> head_requests{0};
  std::atomic<uint64_t> list_requests{0};
  std::atomic<uint64_t> bytes_read{0};
  std::atomic<uint64_t> put_requests{0};  // PUT/POST/COPY/DELETE: every request that changes the store
  std::atomic<uint64_t> bytes_written{0};
  std::atomic<uint64_t> retries{0};
  std::atomic<uint64_t> part_copies{0};  // multipart parts copied inside the store
  std::atomic<uint64_t> streamed_parts{0};  // parts sent while their file was still being written
  std::atomic<uint64_t> errors{0};
};

class Ufs {
 public:
  virtual ~Ufs() = default;

  // The URI this store was opened from ("file:///data", "s3://bucket/prefix").
  virtual const std::string& uri() const = 0;
  // Checks that the store is reachable and usable (directory exists, bucket
  // exists, credentials accepted). Called once at start, bounded by a deadline.
  virtual Status Probe() = 0;
  // Takes new credentials from `vars` (the variables of a credentials file:
  // AWS_ACCESS_KEY_ID ...) for the requests from now on; false when the
  // store keeps its own (a local directory; Azure reads its keys at start).
  virtual bool ReloadCredentials(const std::map<std::string, std::string>& vars) {
    (void)vars;
    return false;
  }
  // Attributes of one path. NotFound when neither a file nor a directory.
  virtual Result<Entry> Stat(const std::string& path) = 0;
  // The same for a path a fresh listing showed as a file, so no directory
  // of that name exists (listings let a directory shadow a same-named
  // object): object stores skip the directory check Stat makes.
  virtual Result<Entry> StatListedFile(const std::string& path) { return Stat(path); }
  // The entries directly below `dir`, in no particular order.
  virtual Result<std::vector<Entry>> List(const std::string& dir) = 0;
  // Reads up to `len` bytes at `off` of the version `etag` of `path` into `buf`;
  // returns the count (short only at end of object). Stale when the object is
  // no longer that version.
  virtual Result<size_t> Read(const std::string& path, const std::string& etag, uint64_t off,
                              size_t len, char* buf) = 0;

  // --- writes ---
  // Stores `size` bytes from `src` as the file `path` with `attrs`, replacing
  // it whole (a reader never sees a half-written file). Returns the new entry.
  // With `base`, ranges it calls unchanged may be copied inside the store
  // from that version instead of read from `src` (S3's UploadPartCopy); a
  // store that cannot copy reads them from `src`.
  virtual Result<Entry> Put(const std::string& path, uint64_t size, const ReadAt& src, const Attrs& attrs,
                            const CopyBase* base = nullptr) = 0;
  // An upload of `path` that sends parts while the file is written, or
  // nullptr where the store has nothing better than Put (a file system).
  virtual std::unique_ptr<StreamUpload> StartStream(const std::string& path, ReadAt src, const Attrs& attrs) {
    (void)path, (void)src, (void)attrs;
    return nullptr;
  }
  // Removes a file or symbolic link. NotFound when absent.
  virtual Status Delete(const std::string& path) = 0;
  virtual Status Mkdir(const std::string& path, const Attrs& attrs) = 0;
  // NotEmpty when the directory has entries.
  virtual Status Rmdir(const std::string& path) = 0;
  // Moves a file or a whole directory, replacing a file at `to`. Atomic on
  // file://; copy then delete on s3:// (see rename_is_atomic()).
  virtual Status Rename(const std::string& from, const std::string& to) = 0;
  virtual bool rename_is_atomic() const = 0;
  // True when adding or removing an entry changes the directory's mtime
  // (a file system; not S3, where a directory is a prefix or a marker).
  virtual bool dir_times_follow_entries() const { return false; }
  // Changes mode / owner / mtime (fields left at their "none" values stay).
  virtual Result<Entry> SetAttrs(const std::string& path, const Attrs& attrs) = 0;
  virtual Status Symlink(const std::string& path, const std::string& target, const Attrs& attrs) = 0;

  Counters& counters() { return counters_; }

 private:
  Counters counters_;
};

// Settings of s3:// stores. Defaults come from the AWS_* environment; flags
// and config keys override them.
struct S3Options {
  std::string endpoint;  // "http://127.0.0.1:4568"; empty = AWS for the region
  std::string region = "us-east-1";
  std::string access_key;
  std::string secret_key;
  std::string session_token;
  bool path_style = true;  // bucket in the path (MinIO, Ceph, s3rver) vs the host name
  int connect_timeout_ms = 5000;
  int request_timeout_ms = 30000;  // whole operation, retries included
  int max_attempts = 5;
  uint64_t part_size = 16u << 20;  // multipart part size (grown so a file needs < 10,000 parts)
  int upload_parallel = 4;         // parts in flight per upload
  int list_page = 1000;            // keys per ListObjectsV2 page (S3's maximum)
  std::string ca_bundle;  // AWS_CA_BUNDLE
};

// Settings of az:// stores; the credentials come from the AZURE_STORAGE_*
// environment (see ufs/azure/azure_ufs.h).
struct AzureOptions {
  std::string endpoint;  // --azure-endpoint: Azurite, sovereign clouds; empty = the account's
  int connect_timeout_ms = 5000;
  int request_timeout_ms = 30000;  // whole operation, retries included
  int max_attempts = 5;
  uint64_t block_size = 16u << 20;  // Put Block size (grown so a blob needs <= 50,000 blocks)
  int upload_parallel = 4;          // blocks in flight per upload
  int list_page = 5000;             // blobs per List Blobs page (Azure's maximum)
  std::string ca_bundle;
};

// A credentials file in systemd's EnvironmentFile= format: KEY=VALUE lines,
// values optionally quoted, '#' comments, an optional "export ". A missing
// file is an empty map (the unit's `-/etc/strata/agent.env` is optional too).
Result<std::map<std::string, std::string>> ReadCredentialsFile(const std::string& path);

// Fills S3Options from AWS_ENDPOINT_URL, AWS_REGION / AWS_DEFAULT_REGION,
// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_CA_BUNDLE.
S3Options S3OptionsFromEnv();

// Opens "file:///abs/dir", "s3://bucket[/prefix]" or "az://container[/prefix]".
// Does not touch the network; call Probe() for that.
Result<std::unique_ptr<Ufs>> Open(const std::string& uri, const S3Options& s3, const AzureOptions& azure = {});

}  // namespace strata::ufs
