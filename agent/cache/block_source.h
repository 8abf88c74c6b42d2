// Where the bytes of missing blocks come from.
//
// A BlockSource fetches a run of consecutive blocks of one object version
// into a caller's buffer. The engine holds one source, usually a chain: the
// cluster's peer source first (a later issue), then the StoreSource, which is
// a ranged GET (or pread) from the store the object lives in. Requests name
// the object by what means the same on every host — the store's URI, the key
// inside it, the ETag (or version id) and the size — never by a host-local
// id, so a request can be sent to another agent as it is.
//
// Thread safety: sources are called from fetch workers, several at a time;
// every implementation must be thread-safe and bound each wait by a deadline.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "agent/base/status.h"

namespace strata::cache {

// One version of one file, as a reader sees it.
struct FileRef {
  uint64_t file_id = 0;
  size_t mount = 0;
  std::string path;  // in the mount (policies match on it)
  std::string store_uri;  // the store's URI: with ufs_path and etag, the same on every host
  std::string ufs_path;
  std::string etag;
  uint64_t size = 0;
  // Misses go to the store only, never to a peer: set when a peer asked for
  // these blocks (one hop at most, so two owners can never wait on each other).
  bool local_only = false;
};


class MountTable;

// One block of one object version, named the same on every host.
struct ContentKey {
  std::string store_uri;  // "s3://bucket/prefix", "file:///data"
  std::string object;     // key inside the store
  std::string etag;       // or version id
  uint64_t object_size = 0;
  uint32_t block_size = 0;
  uint64_t index = 0;
  bool operator==(const ContentKey& o) const = default;
  // A stable 64-bit digest of every field (rendezvous hashing, peer lookups).
  uint64_t Hash() const;
  // "s3://b/p/obj@etag#size/bs:index", for logs.
  std::string ToString() const;
};

// Blocks [first, first + count) of one object version.
struct BlockRequest {
  std::string store_uri;
  std::string object;
  std::string etag;
  uint64_t object_size = 0;
  uint32_t block_size = 0;
  uint64_t first = 0;
  uint32_t count = 1;
  bool urgent = false;  // a reader waits for it (vs readahead or a load)
  bool local_only = false;  // FileRef::local_only: no peer source
  // A part of block `first` only: bytes [range_off, range_off + range_len)
  // of the object (a block fetched in pieces, for a sooner first reply).
  uint64_t range_off = 0;
  uint64_t range_len = 0;

  uint64_t offset() const { return range_len > 0 ? range_off : first * block_size; }
  // Bytes asked for: the peek's range, or whole blocks with the last one
  // clamped to the object.
  uint64_t length() const {
    if (range_len > 0) return range_off >= object_size ? 0 : std::min(range_len, object_size - range_off);
    uint64_t start = offset();
    if (start >= object_size) return 0;
    return std::min<uint64_t>(uint64_t{count} * block_size, object_size - start);
  }
  ContentKey KeyOf(uint64_t index) const { return ContentKey{store_uri, object, etag, object_size, block_size, index}; }
};

struct Fetched {
  const char* source = "";  // name() of the source that answered
};

class BlockSource {
 public:
  virtual ~BlockSource() = default;
  // A short constant name ("store", "peer"), used in stats and logs.
  virtual const char* name() const = 0;
  // Fills `buf` with exactly r.length() bytes of the request. Stale when the
  // object is no longer that version (or shorter than said); other errors
  // say why. On error the contents of `buf` are unspecified.
  virtual Result<Fetched> Fetch(const BlockRequest& r, char* buf) = 0;
  // How many leading blocks of `r` belong in one request (default: all).
  // A source in front of others (peers) says where the answerer changes.
  virtual uint32_t Coalescable(const BlockRequest& r) { return r.count; }
  // The name() of the source that would answer `r` now.
  virtual const char* Answerer(const BlockRequest& r) { (void)r; return name(); }
};

// Asks its sources in order; the first that answers wins. A failing source
// is logged and the next one is asked. Stale ends the chain: the object
// changed, and the reader must hear it rather than get an old copy.
class SourceChain : public BlockSource {
 public:
  explicit SourceChain(std::vector<BlockSource*> sources) : sources_(std::move(sources)) {}
  const char* name() const override { return "chain"; }
  const char* Answerer(const BlockRequest& r) override { return sources_.empty() ? name() : sources_[0]->Answerer(r); }
  Result<Fetched> Fetch(const BlockRequest& r, char* buf) override;

 private:
  const std::vector<BlockSource*> sources_;  // not owned
};

// The stores of the mount table, by URI: a ranged read pinned to the ETag.
std::unique_ptr<BlockSource> MakeStoreSource(MountTable* mounts);

}  // namespace strata::cache
