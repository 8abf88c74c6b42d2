#include "agent/peer/peer.h"

#include <algorithm>
#include <cstring>
#include <future>
#include <thread>

#include "agent/base/clock.h"
#include "agent/base/log.h"
#include "agent/base/paths.h"
#include "agent/cache/engine.h"
#include "agent/cache/metadata.h"
#include "agent/cache/mounts.h"
#include "agent/cache/slice.h"
#include "agent/gossip/wire.h"
#include "agent/peer/frames.h"

namespace strata::peer {

namespace {
constexpr int kAvoidMs = 5000;       // a peer that failed is skipped this long
constexpr int kPendingEveryMs = 250;  // an owner fetching says so this often
constexpr int64_t kMaxWaitMs = 120000;  // an owner's own fetch is bounded by the store's deadlines
constexpr size_t kIdlePerPeer = 16;
constexpr uint32_t kPeerRequestBytes = 4u << 20;  // blocks per peer request: this many bytes' worth
}  // namespace

bool PeerSource::HasPeers(const std::vector<Candidate>& members) const {
  for (const Candidate& c : members)
    if (c.name != cluster_->name()) return true;
  return false;
}

std::vector<Candidate> OwnerCandidates(gossip::Membership& m) {
  std::vector<Candidate> out;
  for (const gossip::Member& mm : m.Members()) {
    // A suspect still owns its blocks (most suspicions end in a refutation;
    // moving ownership on each would refetch from the store).
    bool member = mm.state == gossip::State::kAlive || mm.state == gossip::State::kSuspect;
    if (!member || !mm.meta.serves) continue;
    double w = mm.meta.capacity > 0 ? static_cast<double>(mm.meta.capacity) / (1u << 30) : 1.0;
    out.push_back({mm.name, mm.addr, std::max(w, 1e-3)});
  }
  return out;
}

// --- client ---

struct PeerSource::Pool {
  std::mutex mu;
  std::map<std::string, std::vector<gossip::StreamConn>> idle;
};

PeerSource::PeerSource(gossip::Cluster* cluster, cache::BlockSource* fallback)
    : cluster_(cluster), fallback_(fallback), pool_(std::make_unique<Pool>()) {}

PeerSource::~PeerSource() = default;

const Candidate* PeerSource::OwnerOf(const cache::BlockRequest& r, uint64_t idx, const std::vector<Candidate>& members) {
  for (const Candidate* c : RankOwners(r.KeyOf(idx).Hash(), members))
    if (c->name == cluster_->name() || !Avoided(c->name)) return c;
  return nullptr;
}

uint32_t PeerSource::Coalescable(const cache::BlockRequest& r) {
  if (r.local_only || r.range_len > 0 || r.count <= 1) return r.count;
  std::vector<Candidate> members = OwnerCandidates(cluster_->membership());
  if (!HasPeers(members)) return r.count;
  const Candidate* first = OwnerOf(r, r.first, members);
  const bool remote = first != nullptr && first->name != cluster_->name();
  // A peer's answer is sealed and sent as one frame: small requests, many
  // in flight, keep the pipe full (a store request may be long).
  const uint32_t cap = remote ? std::max<uint32_t>(1, kPeerRequestBytes / r.block_size) : r.count;
  uint32_t n = 1;
  while (n < r.count && n < cap && OwnerOf(r, r.first + n, members) == first) n++;
  return n;
}

const char* PeerSource::Answerer(const cache::BlockRequest& r) {
  if (r.local_only) return fallback_->Answerer(r);
  std::vector<Candidate> members = OwnerCandidates(cluster_->membership());
  if (!HasPeers(members)) return fallback_->Answerer(r);
  const Candidate* owner = OwnerOf(r, r.first, members);
  return owner != nullptr && owner->name != cluster_->name() ? "peer" : fallback_->Answerer(r);
}

bool PeerSource::Avoided(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = avoid_until_.find(name);
  return it != avoid_until_.end() && it->second > NowMonoMs();
}

Result<cache::Fetched> PeerSource::Fetch(const cache::BlockRequest& r, char* buf) {
  std::vector<Candidate> members = OwnerCandidates(cluster_->membership());
  const std::string& self = cluster_->name();
  if (r.local_only || !HasPeers(members)) return fallback_->Fetch(r, buf);
  // Consecutive blocks with one owner go together.
  auto owner_of = [&](uint64_t idx) { return OwnerOf(r, idx, members); };
  uint64_t peer_bytes = 0, other_bytes = 0;
  const char* other_source = fallback_->name();
  const uint32_t count = r.range_len > 0 ? 1 : r.count;
  uint32_t i = 0;
  while (i < count) {
    const Candidate* owner = owner_of(r.first + i);
    uint32_t n = 1;
    while (i + n < count && owner_of(r.first + i + n) == owner) n++;
    cache::BlockRequest sub = r;
    sub.first = r.first + i;
    sub.count = n;
    char* at = buf + (r.range_len > 0 ? 0 : i * static_cast<uint64_t>(r.block_size));
    bool done = false;
    if (owner != nullptr && owner->name != self) {
      int64_t t0 = NowMonoMs();
      Status s = FetchFrom(owner->addr, sub, at);
      std::lock_guard<std::mutex> lock(mu_);
      if (s.ok()) {
        done = true;
        peer_bytes += sub.length();
        stats_.hits += n;
        stats_.bytes_from_peers += sub.length();
        stats_.latency.Observe(static_cast<double>(NowMonoMs() - t0) / 1000.0);
      } else if (s.code() == Status::Code::kStale) {
        stats_.stale += n;
      } else {
        stats_.misses += n;
        if (s.code() == Status::Code::kTimeout) stats_.timeouts++;
        // Gone (refused, reset, no connect): skip it until gossip knows.
        // A slow answer costs this request only.
        if (s.code() == Status::Code::kUnavailable || s.code() == Status::Code::kIOError)
          avoid_until_[owner->name] = NowMonoMs() + kAvoidMs;
        LOG_DEBUG("peer: %s for %s: %s; the store serves", owner->name.c_str(), sub.KeyOf(sub.first).ToString().c_str(),
                  s.message().c_str());
      }
    } else {
      std::lock_guard<std::mutex> lock(mu_);
      stats_.local_owner += n;
    }
    if (!done) {
      Result<cache::Fetched> f = fallback_->Fetch(sub, at);
      if (!f.ok()) return f.status();
      other_source = f->source;
      other_bytes += sub.length();
    }
    i += n;
  }
  cache::Fetched out;
  out.source = peer_bytes >= other_bytes ? "peer" : other_source;
  return out;
}

Result<gossip::StreamConn> PeerSource::Take(const std::string& addr, bool* pooled) {
  if (pooled != nullptr) {
    *pooled = false;
    std::lock_guard<std::mutex> lock(pool_->mu);
    auto& idle = pool_->idle[addr];
    if (!idle.empty()) {
      gossip::StreamConn c = std::move(idle.back());
      idle.pop_back();
      *pooled = true;
      return c;
    }
  }
  Result<gossip::StreamConn> c = cluster_->Dial(addr, cluster_->peer_timeout_ms());
  if (!c.ok() && c.status().code() != Status::Code::kTimeout) return Status::Unavailable(c.status().message());
  return c;
}

void PeerSource::Give(const std::string& addr, gossip::StreamConn conn) {
  std::lock_guard<std::mutex> lock(pool_->mu);
  auto& idle = pool_->idle[addr];
  if (idle.size() < kIdlePerPeer) idle.push_back(std::move(conn));
}

Status PeerSource::FetchFrom(const std::string& addr, const cache::BlockRequest& r, char* buf, bool warm) {
  const int timeout = cluster_->peer_timeout_ms();
  bool pooled = false;
  Result<gossip::StreamConn> conn = Take(addr, &pooled);
  if (!conn.ok()) return conn.status();
  Status sent = conn->Send(gossip::FrameType::kBlockRequest, EncodeBlockRequest(r, warm), timeout);
  if (!sent.ok() && pooled) {
    // A pooled connection the peer closed meanwhile: once more on a new one.
    conn = Take(addr, nullptr);
    if (!conn.ok()) return conn.status();
    sent = conn->Send(gossip::FrameType::kBlockRequest, EncodeBlockRequest(r, warm), timeout);
  }
  STRATA_RETURN_IF_ERROR(sent);
  const int64_t give_up = NowMonoMs() + kMaxWaitMs;
  for (;;) {
    // The block's bytes are opened straight into `buf`; the small frames
    // (pending, stale, miss) come whole.
    const size_t want = warm ? 0 : r.length();
    gossip::FrameType type;
    std::string_view body;
    bool tailed = false;
    Status s = conn->ReceiveTail(&type, &body, buf, want, &tailed, timeout);
    if (!s.ok()) return s;
    ReplyCode code;
    std::string message;
    uint32_t data_len = 0;
    std::string_view data;
    bool parsed = type == gossip::FrameType::kBlockReply &&
                  (tailed ? DecodeBlockReplyHead(body, &code, &message, &data_len)
                          : DecodeBlockReply(body, &code, &message, &data));
    if (!parsed) return Status::IOError("peer " + addr + ": malformed block reply");
    if (!tailed) data_len = static_cast<uint32_t>(data.size());
    if (code == ReplyCode::kPending) {
      if (NowMonoMs() > give_up) return Status::Timeout("peer " + addr + ": still fetching");
      continue;
    }
    Status out;
    if (code == ReplyCode::kOk) {
      if (!tailed || data_len != want) return Status::IOError("peer " + addr + ": short block reply");
    } else {
      out = code == ReplyCode::kStale ? Status::Stale("peer " + addr + ": " + message)
                                      : Status::NotFound("peer " + addr + ": " + message);
    }
    Give(addr, std::move(*conn));
    return out;
  }
}

std::function<bool(uint64_t)> PeerSource::OwnedHere(const cache::FileRef& f, uint64_t block_size) {
  auto members = std::make_shared<std::vector<Candidate>>(OwnerCandidates(cluster_->membership()));
  std::string self = cluster_->name();
  cache::BlockRequest r{f.store_uri, f.ufs_path, f.etag, f.size, static_cast<uint32_t>(block_size)};
  return [members, self, r](uint64_t idx) {
    std::vector<const Candidate*> ranked = RankOwners(r.KeyOf(idx).Hash(), *members);
    return ranked.empty() || ranked[0]->name == self;
  };
}

std::vector<uint64_t> PeerSource::WarmOthers(const cache::FileRef& f, uint64_t block_size,
                                             const std::function<void(uint64_t)>& progress,
                                             const std::atomic<bool>* cancel) {
  constexpr uint32_t kRun = 16;     // blocks per warm request
  constexpr size_t kInFlight = 4;   // warm requests at once
  std::vector<Candidate> members = OwnerCandidates(cluster_->membership());
  const std::string self = cluster_->name();
  cache::BlockRequest base{f.store_uri, f.ufs_path, f.etag, f.size, static_cast<uint32_t>(block_size)};
  struct Task {
    std::string addr;
    cache::BlockRequest r;
  };
  std::vector<Task> tasks;
  const uint64_t nblocks = (f.size + block_size - 1) / block_size;
  for (uint64_t b = 0; b < nblocks;) {
    std::vector<const Candidate*> ranked = RankOwners(base.KeyOf(b).Hash(), members);
    const Candidate* owner = ranked.empty() ? nullptr : ranked[0];
    uint32_t n = 1;
    while (b + n < nblocks && n < kRun) {
      std::vector<const Candidate*> next = RankOwners(base.KeyOf(b + n).Hash(), members);
      if (next.empty() || next[0] != owner) break;
      n++;
    }
    if (owner != nullptr && owner->name != self) {
      cache::BlockRequest r = base;
      r.first = b;
      r.count = n;
      tasks.push_back({owner->addr, r});
    }
    b += n;
  }
  std::mutex mu;
  std::vector<uint64_t> failed;
  std::atomic<size_t> next{0};
  auto worker = [&] {
    for (size_t i = next++; i < tasks.size(); i = next++) {
      const Task& t = tasks[i];
      Status s = cancel && *cancel ? Status::Unavailable("cancelled") : FetchFrom(t.addr, t.r, nullptr, true);
      if (s.ok()) {
        progress(t.r.length());
        continue;
      }
      std::lock_guard<std::mutex> lock(mu);
      for (uint32_t k = 0; k < t.r.count; k++) failed.push_back(t.r.first + k);
    }
  };
  std::vector<std::thread> threads;
  for (size_t i = 1; i < std::min(kInFlight, tasks.size()); i++) threads.emplace_back(worker);
  worker();
  for (std::thread& t : threads) t.join();
  std::sort(failed.begin(), failed.end());
  return failed;
}

Result<CachedAnswer> PeerSource::QueryCached(const std::string& addr, const CachedQuery& q) {
  const int timeout = cluster_->peer_timeout_ms();
  Result<gossip::StreamConn> conn = Take(addr, nullptr);
  if (!conn.ok()) return conn.status();
  STRATA_RETURN_IF_ERROR(conn->Send(gossip::FrameType::kCached, EncodeCachedQuery(q), timeout));
  gossip::FrameType type;
  std::string_view body;
  STRATA_RETURN_IF_ERROR(conn->Receive(&type, &body, timeout * 5));
  CachedAnswer a;
  if (type != gossip::FrameType::kCached || !DecodeCachedAnswer(body, &a))
    return Status::IOError("peer " + addr + ": malformed answer");
  Give(addr, std::move(*conn));
  return a;
}

PeerStats PeerSource::Stats() {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

// --- server ---

PeerServer::PeerServer(gossip::Cluster* cluster, cache::MountTable* mounts, cache::Metadata* meta,
                       cache::Engine* engine)
    : cluster_(cluster), mounts_(mounts), meta_(meta), engine_(engine) {
  cluster_->SetHandler(gossip::FrameType::kBlockRequest,
                       [this](gossip::FrameType, std::string_view body, gossip::StreamConn& conn) {
                         return Handle(body, conn);
                       });
  cluster_->SetHandler(gossip::FrameType::kCached,
                       [this](gossip::FrameType, std::string_view body, gossip::StreamConn& conn) {
                         return HandleCached(body, conn);
                       });
}

bool PeerServer::Handle(std::string_view body, gossip::StreamConn& conn) {
  const int timeout = std::max(1000, cluster_->peer_timeout_ms() * 4);
  cache::BlockRequest r;
  bool warm = false;
  if (!DecodeBlockRequest(body, &r, &warm)) return false;
  requests_++;
  // The answer is worked out on another thread (a metadata lookup, a store
  // fetch: both may be slow); this one tells the asker "pending" meanwhile,
  // so it waits for us rather than going to the store itself.
  struct Answer {
    ReplyCode code = ReplyCode::kOk;
    std::string message;
    bool with_data = false;  // an OK with data: the whole reply frame is in `frame`
  };
  // The reply frame is built in place in this connection's buffer (kept from
  // request to request: no fresh multi-MiB allocation each time); the task
  // is always joined before Handle returns.
  thread_local std::string conn_frame;
  std::string* frame = &conn_frame;
  std::future<Answer> answer = std::async(std::launch::async, [this, r, warm, frame] {
    Answer a;
    std::optional<size_t> mount;
    for (size_t i = 0; i < mounts_->size(); i++)
      if (mounts_->at(i).ufs->uri() == r.store_uri) mount = i;
    if (!mount) return Answer{ReplyCode::kMiss, "store not mounted here"};
    Result<index::FileMeta> m = meta_->Stat(JoinPath(mounts_->at(*mount).path, r.object));
    if (!m.ok()) return Answer{ReplyCode::kMiss, m.status().message()};
    if (m->etag != r.etag || m->size != r.object_size)
      return Answer{ReplyCode::kStale, "this agent holds version " + m->etag};
    cache::FileRef ref = meta_->RefOf(*m);
    ref.local_only = true;  // our own miss goes to the store, never to a third agent
    Status s;
    if (warm) {
      // A cluster load: into our cache, nothing sent back but the outcome.
      const uint64_t first = r.first, last = r.first + r.count;
      s = engine_->Load(ref, static_cast<int>(last - first), [](uint64_t) {}, nullptr, std::nullopt,
                        [first, last](uint64_t idx) { return idx >= first && idx < last; });
    } else {
      // The bytes go straight from the cache into the frame that is sealed
      // and sent: one copy on this side.
      const uint64_t len = r.length();
      const std::string head = EncodeBlockReplyHead(ReplyCode::kOk, "", len);
      gossip::StreamConn::NewFrame(frame, gossip::FrameType::kBlockReply, head.size() + len);
      a.with_data = true;
      char* body = gossip::StreamConn::BodyOf(*frame);
      std::copy(head.begin(), head.end(), body);
      char* data = body + head.size();
      std::promise<Status> done;
      engine_->Read(ref, r.offset(), len, [&](Status st, std::vector<cache::Slice> parts) {
        size_t at = 0;
        if (st.ok()) st = cache::CopySlices(parts, data, len, &at);
        if (st.ok() && at != len) st = Status::IOError("short read from the cache");
        done.set_value(st);
      });
      s = done.get_future().get();
    }
    if (s.code() == Status::Code::kStale) return Answer{ReplyCode::kStale, s.message()};
    if (!s.ok()) return Answer{ReplyCode::kMiss, s.message()};
    return a;
  });
  auto reply = [&](ReplyCode code, const std::string& msg) {
    return conn.Send(gossip::FrameType::kBlockReply, EncodeBlockReply(code, msg, {}), timeout).ok();
  };
  bool alive = true;
  while (alive && answer.wait_for(std::chrono::milliseconds(kPendingEveryMs)) != std::future_status::ready)
    alive = reply(ReplyCode::kPending, "");
  Answer a = answer.get();  // joins the task even when the asker left
  if (!alive) return false;
  if (!a.with_data) return reply(a.code, a.message);
  bytes_served_ += r.length();
  return conn.SendFrame(*frame, timeout).ok();
}

bool PeerServer::HandleCached(std::string_view body, gossip::StreamConn& conn) {
  CachedQuery q;
  if (!DecodeCachedQuery(body, &q)) return false;
  CachedAnswer a;
  a.code = ReplyCode::kMiss;
  for (size_t i = 0; i < mounts_->size(); i++) {
    if (mounts_->at(i).ufs->uri() != q.store_uri) continue;
    Result<index::FileMeta> m = meta_->Stat(JoinPath(mounts_->at(i).path, q.object));
    if (!m.ok()) break;
    if (m->etag != q.etag || m->size != q.object_size) {
      a.code = ReplyCode::kStale;
      break;
    }
    cache::Engine::FileCache fc = engine_->CachedOf(m->file_id, true);
    a.code = ReplyCode::kOk;
    a.blocks = fc.blocks;
    a.bytes = fc.bytes;
    a.indexes = std::move(fc.indexes);
  }
  return conn.Send(gossip::FrameType::kCached, EncodeCachedAnswer(a), std::max(1000, cluster_->peer_timeout_ms() * 4)).ok();
}

PeerStats PeerServer::Stats() {
  PeerStats s;
  s.bytes_served = bytes_served_;
  s.requests_served = requests_;
  return s;
}

}  // namespace strata::peer
