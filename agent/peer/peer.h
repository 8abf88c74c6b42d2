// Blocks from the cluster: the client side (a BlockSource in front of the
// store) and the server side (a stream handler answering other agents).
//
// PeerSource. For each block of a request, the owner is the first alive
// member of the block's rendezvous ranking (owners.h). Runs of blocks with
// the same owner go to it in one request over a pooled, sealed stream; the
// blocks this agent owns, and any the owner cannot give, come from the
// fallback (the store). The request names the version (store URI, key,
// ETag, size): an owner holding another version answers "stale" and the
// store serves. A dead or slow owner costs at most the peer timeout: every
// frame of the answer must come within it (an owner fetching from the store
// sends "pending" frames meanwhile), and a peer that failed is skipped for a
// few seconds (until gossip says more).
//
// PeerServer. Answers block requests from the engine: from the cache, or
// fetched from the store once for every asker (the engine's single flight),
// when its own metadata says the version asked for is current.
//
// Thread safety: Fetch and the handler run on many threads at once.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "agent/base/histogram.h"
#include "agent/cache/block_source.h"
#include "agent/gossip/cluster.h"
#include "agent/peer/frames.h"
#include "agent/peer/owners.h"

namespace strata::cache {
class Engine;
class Metadata;
class MountTable;
}  // namespace strata::cache

namespace strata::peer {

struct PeerStats {
  uint64_t hits = 0;        // blocks a peer served
  uint64_t misses = 0;      // owned elsewhere but the peer could not serve (error, timeout)
  uint64_t stale = 0;       // the peer held another version
  uint64_t timeouts = 0;
  uint64_t local_owner = 0;  // blocks this agent owns: straight to the store
  uint64_t bytes_from_peers = 0;
  uint64_t bytes_served = 0;  // to other agents
  uint64_t requests_served = 0;
  LatencyHistogram latency;  // peer fetches, request to last byte
};

// The members that own blocks now (alive or suspect, serving), this agent included.
std::vector<Candidate> OwnerCandidates(gossip::Membership& m);

class PeerSource : public cache::BlockSource {
 public:
  PeerSource(gossip::Cluster* cluster, cache::BlockSource* fallback);
  ~PeerSource() override;
  const char* name() const override { return "peer"; }
  Result<cache::Fetched> Fetch(const cache::BlockRequest& r, char* buf) override;
  // The leading blocks of `r` with the same owner.
  uint32_t Coalescable(const cache::BlockRequest& r) override;
  // "peer" when another member owns r.first, else the fallback's answerer.
  const char* Answerer(const cache::BlockRequest& r) override;
  PeerStats Stats();

  // A cluster load of `f`: which blocks this agent owns (it loads those
  // itself), and the others loaded by their owners (warm requests, a few in
  // flight). Returns the blocks no owner loaded (dead, timed out), for the
  // caller to load here. `progress` gets the bytes of each block loaded.
  std::function<bool(uint64_t)> OwnedHere(const cache::FileRef& f, uint64_t block_size);
  std::vector<uint64_t> WarmOthers(const cache::FileRef& f, uint64_t block_size,
                                   const std::function<void(uint64_t)>& progress, const std::atomic<bool>* cancel);
  // What `member` holds of a version (`agentctl stat --cluster`, `owner`).
  Result<CachedAnswer> QueryCached(const std::string& addr, const CachedQuery& q);

 private:
  struct Pool;
  // Blocks [first, first+count) (or the request's range) from `addr`; with
  // `warm`, loaded there and not sent (buf unused).
  Status FetchFrom(const std::string& addr, const cache::BlockRequest& r, char* buf, bool warm = false);
  // A pooled connection to `addr` (*pooled set) when `pooled` is given and
  // one is idle, else a new one.
  Result<gossip::StreamConn> Take(const std::string& addr, bool* pooled);
  void Give(const std::string& addr, gossip::StreamConn conn);
  bool Avoided(const std::string& name);
  // Whether another member than this agent owns blocks.
  bool HasPeers(const std::vector<Candidate>& members) const;
  // The member to ask for block `idx` of `r`'s object: the first of its
  // ranking that is this agent or not avoided (null: none).
  const Candidate* OwnerOf(const cache::BlockRequest& r, uint64_t idx, const std::vector<Candidate>& members);

  gossip::Cluster* const cluster_;
  cache::BlockSource* const fallback_;
  std::unique_ptr<Pool> pool_;
  std::mutex mu_;
  std::map<std::string, int64_t> avoid_until_;  // guarded by mu_
  PeerStats stats_;                             // guarded by mu_
};

// Registers the block handler on `cluster`.
class PeerServer {
 public:
  PeerServer(gossip::Cluster* cluster, cache::MountTable* mounts, cache::Metadata* meta, cache::Engine* engine);
  PeerStats Stats();  // bytes_served, requests_served

 private:
  bool Handle(std::string_view body, gossip::StreamConn& conn);
  bool HandleCached(std::string_view body, gossip::StreamConn& conn);
  gossip::Cluster* const cluster_;
  cache::MountTable* const mounts_;
  cache::Metadata* const meta_;
  cache::Engine* const engine_;
  std::atomic<uint64_t> bytes_served_{0}, requests_{0};
};

}  // namespace strata::peer
