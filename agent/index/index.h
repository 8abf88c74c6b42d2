// The LMDB index: what is cached (blocks), what the store looked like (file
// and directory metadata), kept in one environment under the cache directory.
//
// Schema (named databases; keys fixed-width, big-endian):
//   info    "schema" -> u32 version; "block_size" -> u64; "next_file_id" -> u64;
//           "setting:<key>" -> text (pins, TTLs)
//   meta    xxh3-128(path)          -> FileMeta   (one row per known path)
//   dirs    xxh3-128(dir path)      -> DirListing (the listing and when it was fetched)
//   blocks  file_id u64, index u64  -> BlockRecord
//   files   file_id u64             -> path      (which file version a block belongs to)
//   journal seq u64                 -> JournalEntry (write-back: staged files not yet uploaded)
//
// A file_id names one *version* of a file: when a path's ETag, size or mtime
// changes it gets a new file_id, so blocks are immutable and a block of the
// old version can never be served as part of the new one. Blocks whose file_id
// no longer belongs to a meta row are garbage, dropped at start.
//
// Durability: MDB_NOMETASYNC (a power loss may undo the last commit but never
// corrupts); no MDB_WRITEMAP (a full disk must be ENOSPC, not SIGBUS). A
// block file is written before its row commits; block checksums catch a file
// that did not reach the disk.
//
// Thread safety: all methods may be called from any thread. A full map is
// grown behind an exclusive gate while no transaction of this process runs.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <vector>

#include "agent/base/block_key.h"
#include "agent/base/status.h"
#include "ufs/ufs.h"

// LMDB's handle types, without its header (index.cc includes it).
struct MDB_env;

namespace strata::index {

constexpr uint32_t kNoId = UINT32_MAX;

// POSIX attributes as the store keeps them (mode 0 / kNoId: it keeps none,
// the mount's defaults apply). `attrs_known` is false for rows made from an
// S3 listing, which carries no user metadata: a Stat fills them in.
struct PosixAttrs {
  uint32_t mode = 0;
  uint32_t uid = kNoId;
  uint32_t gid = kNoId;
  bool attrs_known = true;
  std::string link_target;  // symbolic links
};

struct FileMeta : PosixAttrs {
  std::string path;  // mount-relative, "" = root, "a/b"
  bool is_dir = false;
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  std::string etag;
  uint64_t file_id = 0;       // version id; 0 for directories
  int64_t validated_ms = 0;   // wall time the store last confirmed this
  ufs::UserMeta user;         // content type and user metadata (files)
};

struct DirEntry : PosixAttrs {
  std::string name;
  bool is_dir = false;
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  std::string etag;
};

// A file whose bytes wait on this host to be uploaded (async mode) or stay
// only here (cache-only mode): the write-back journal. Committed, and synced
// to disk, before the writer's close()/fsync() returns.
struct JournalEntry {
  uint64_t seq = 0;         // key; also names the staging file
  std::string path;         // mount-relative
  std::string store_uri;    // the store it belongs to (checked at recovery)
  uint8_t kind = 0;         // 0 file, 1 directory, 2 symbolic link (cache-only mode)
  bool upload = true;       // false: cache-only, never uploaded
  uint64_t size = 0;
  uint32_t mode = 0, uid = kNoId, gid = kNoId;
  int64_t mtime_ns = 0;
  int64_t committed_ms = 0;
  std::string link_target;
  // A file that replaces a stored version need not hold all of it: blocks it
  // never wrote are that version's (base_file_id 0: none; then the staging
  // file holds the whole file, as in rows written before these fields).
  uint64_t base_file_id = 0;
  std::string base_ufs_path, base_etag;
  uint64_t base_object_size = 0;  // the stored version's size
  uint64_t base_size = 0;         // its bytes under the file (less after a truncate)
  std::string present;            // bit i of byte i/8: the staging file holds block i
  ufs::UserMeta user;             // stored with the object
};

struct DirListing {
  std::string path;
  int64_t fetched_ms = 0;
  std::vector<DirEntry> entries;
};

struct BlockRecord {
  uint32_t length = 0;
  int64_t atime_ms = 0;
  // xxh3-64 of each kChecksumChunk-sized piece of the block, in order: a read
  // verifies only the pieces it touches.
  std::vector<uint64_t> checksums;
};

class Index {
 public:
  // Opens (creating) the environment in `dir`. If the stored block size
  // differs from `block_size`, every block row is dropped (the files are
  // removed by reconciliation).
  // `map_size` is the initial LMDB map (sparse; doubled whenever it fills).
  static Result<std::unique_ptr<Index>> Open(const std::string& dir, uint64_t block_size,
                                             size_t map_size = size_t{1} << 30);
  ~Index();

  Result<std::optional<FileMeta>> GetMeta(const std::string& path);
  // Stores `meta`. If the row exists with the same etag/size/mtime, the
  // existing file_id is kept; otherwise a new one is assigned. Returns the
  // row as stored and, in *retired_id, the file_id it replaced (0 if none).
  Result<FileMeta> PutMeta(FileMeta meta, uint64_t* retired_id);
  // Removes the row; *retired_id gets its file_id (0 if none).
  Status DeleteMeta(const std::string& path, uint64_t* retired_id);

  Result<std::optional<DirListing>> GetDir(const std::string& path);
  // Stores a listing and, in the same transaction, a meta row per entry
  // (children of `listing.path`). Children whose version changed or that
  // disappeared have their old file_ids appended to *retired.
  Status PutDir(const DirListing& listing, std::vector<uint64_t>* retired);

  // Changes one entry of a cached listing of `dir` (nullptr removes `name`),
  // so a change made through the mount needs no new listing. No-op when the
  // listing is not cached.
  Status PatchDir(const std::string& dir, const std::string& name, const DirEntry* entry);
  // Removes the rows of `path` and, through the cached listings, of every
  // path below it; *retired gets their file_ids.
  Status DeleteTree(const std::string& path, std::vector<uint64_t>* retired);

  // The write-back journal. PutJournal returns once the row is on disk.
  Status PutJournal(const JournalEntry& e);
  Status DeleteJournal(uint64_t seq);
  Status LoadJournal(std::vector<JournalEntry>* out);
  // Reserves `count` journal sequence numbers; returns the first.
  Result<uint64_t> ReserveJournalSeqs(uint64_t count);

  // Small settings kept with the cache (pins and TTLs), in the info table
  // under "setting:<key>". PutSetting returns once committed.
  Result<std::optional<std::string>> GetSetting(const std::string& key);
  Status PutSetting(const std::string& key, const std::string& value);

  // Block rows. Writes are batched by the caller (the cache's index writer).
  struct BlockOp {
    BlockKey key;
    bool erase = false;
    BlockRecord record;  // when !erase
  };
  Status ApplyBlockOps(const std::vector<BlockOp>& ops);
  // Calls fn for every block row whose file_id is live (has a files row);
  // rows of dead file versions are deleted. Used once at start.
  Status LoadBlocks(const std::function<void(const BlockKey&, const BlockRecord&)>& fn);
  // Path of a file version, if it is live.
  Result<std::optional<std::string>> PathOf(uint64_t file_id);

  struct Stats {
    uint64_t map_size = 0;
    uint64_t used_bytes = 0;
    uint64_t meta_rows = 0;
    uint64_t block_rows = 0;
  };
  Stats GetStats();

  class Txn;  // opaque outside index.cc

 private:
  Index() = default;
  // Runs fn in a write transaction, committing when it returns OK; grows the
  // map and retries on MDB_MAP_FULL.
  Status Write(const std::function<Status(Txn&)>& fn);
  Status Read(const std::function<Status(Txn&)>& fn);
  Status Grow();

  MDB_env* env_ = nullptr;
  unsigned int info_ = 0, meta_ = 0, dirs_ = 0, blocks_ = 0, files_ = 0, journal_ = 0;  // MDB_dbi
  std::shared_mutex gate_;  // shared: any transaction; exclusive: map resize
  std::string dir_;
};

}  // namespace strata::index
