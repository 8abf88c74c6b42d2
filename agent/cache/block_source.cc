#include "agent/cache/block_source.h"

#include <algorithm>

#include "agent/base/hash.h"
#include "agent/base/log.h"
#include "agent/cache/mounts.h"

namespace strata::cache {

uint64_t ContentKey::Hash() const {
  // NUL-separated: no field holds a NUL.
  std::string s = store_uri + '\0' + object + '\0' + etag + '\0' + std::to_string(object_size) + '\0' +
                  std::to_string(block_size) + '\0' + std::to_string(index);
  return Xxh64(s.data(), s.size());
}

std::string ContentKey::ToString() const {
  return store_uri + "/" + object + "@" + etag + "#" + std::to_string(object_size) + "/" +
         std::to_string(block_size) + ":" + std::to_string(index);
}

Result<Fetched> SourceChain::Fetch(const BlockRequest& r, char* buf) {
  Status last = Status::Unavailable("no block source");
  for (BlockSource* s : sources_) {
    Result<Fetched> got = s->Fetch(r, buf);
    if (got.ok() || got.status().code() == Status::Code::kStale) return got;
    last = got.status();
    LOG_DEBUG("cache: %s could not serve %s (+%u): %s; asking the next source", s->name(),
              r.KeyOf(r.first).ToString().c_str(), r.count, last.message().c_str());
  }
  return last;
}

namespace {

class StoreSource : public BlockSource {
 public:
  explicit StoreSource(MountTable* mounts) : mounts_(mounts) {}
  const char* name() const override { return "store"; }

  Result<Fetched> Fetch(const BlockRequest& r, char* buf) override {
    ufs::Ufs* store = mounts_->ByUri(r.store_uri);
    if (store == nullptr) return Status::NotFound("no store " + r.store_uri + " is mounted here");
    uint64_t want = r.length();
    if (want == 0) return Fetched{name()};
    Result<size_t> got = store->Read(r.object, r.etag, r.offset(), want, buf);
    if (!got.ok()) return got.status();
    if (*got != want)
      return Status::Stale("store returned " + std::to_string(*got) + " of " + std::to_string(want) +
                           " bytes at block " + std::to_string(r.first) + " of " + r.object +
                           " (the object changed?)");
    return Fetched{name()};
  }

 private:
  MountTable* const mounts_;
};

}  // namespace

std::unique_ptr<BlockSource> MakeStoreSource(MountTable* mounts) {
  return std::make_unique<StoreSource>(mounts);
}

}  // namespace strata::cache
