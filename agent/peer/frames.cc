#include "agent/peer/frames.h"

#include "agent/gossip/wire.h"

namespace strata::peer {

std::string EncodeBlockRequest(const cache::BlockRequest& r, bool warm) {
  gossip::WireWriter w;
  w.Str(r.store_uri);
  w.Str(r.object);
  w.Str(r.etag);
  w.U64(r.object_size);
  w.U32(r.block_size);
  w.U64(r.first);
  w.U32(r.count);
  w.U64(r.range_off);
  w.U64(r.range_len);
  w.U8((r.urgent ? 1 : 0) | (warm ? 2 : 0));
  return std::move(w.out());
}

bool DecodeBlockRequest(std::string_view body, cache::BlockRequest* r, bool* warm) {
  gossip::WireReader in(body);
  r->store_uri = in.Str(4096);
  r->object = in.Str(4096);
  r->etag = in.Str(1024);
  r->object_size = in.U64();
  r->block_size = in.U32();
  r->first = in.U64();
  r->count = in.U32();
  r->range_off = in.U64();
  r->range_len = in.U64();
  uint8_t flags = in.U8();
  r->urgent = flags & 1;
  if (warm != nullptr) *warm = flags & 2;
  if (!in.done() || r->block_size == 0 || r->count == 0 || r->count > 64) return false;
  if (r->block_size > (64u << 20) || r->first > r->object_size / r->block_size) return false;
  if (r->range_len > 0 && (r->range_len > r->block_size || r->range_off / r->block_size != r->first)) return false;
  return r->length() <= static_cast<uint64_t>(r->count) * r->block_size;
}

std::string EncodeBlockReplyHead(ReplyCode code, std::string_view message, size_t data_len) {
  gossip::WireWriter w;
  w.U8(static_cast<uint8_t>(code));
  w.Str(message);
  w.U32(static_cast<uint32_t>(data_len));
  return std::move(w.out());
}

std::string EncodeBlockReply(ReplyCode code, std::string_view message, std::string_view data) {
  return EncodeBlockReplyHead(code, message, data.size()).append(data);
}

namespace {
bool ReadReplyHead(gossip::WireReader& in, ReplyCode* code, std::string* message, uint32_t* data_len) {
  uint8_t c = in.U8();
  *message = in.Str(4096);
  *data_len = in.U32();
  if (c > static_cast<uint8_t>(ReplyCode::kPending)) return false;
  *code = static_cast<ReplyCode>(c);
  return true;
}
}  // namespace

bool DecodeBlockReply(std::string_view body, ReplyCode* code, std::string* message, std::string_view* data) {
  gossip::WireReader in(body);
  uint32_t n = 0;
  if (!ReadReplyHead(in, code, message, &n)) return false;
  *data = in.Raw(n);
  return in.done();
}

bool DecodeBlockReplyHead(std::string_view head, ReplyCode* code, std::string* message, uint32_t* data_len) {
  gossip::WireReader in(head);
  return ReadReplyHead(in, code, message, data_len) && in.done();
}

std::string EncodeCachedQuery(const CachedQuery& q) {
  gossip::WireWriter w;
  w.Str(q.store_uri);
  w.Str(q.object);
  w.Str(q.etag);
  w.U64(q.object_size);
  return std::move(w.out());
}

bool DecodeCachedQuery(std::string_view body, CachedQuery* q) {
  gossip::WireReader in(body);
  q->store_uri = in.Str(4096);
  q->object = in.Str(4096);
  q->etag = in.Str(1024);
  q->object_size = in.U64();
  return in.done();
}

std::string EncodeCachedAnswer(const CachedAnswer& a) {
  gossip::WireWriter w;
  w.U8(static_cast<uint8_t>(a.code));
  w.U64(a.blocks);
  w.U64(a.bytes);
  w.U32(static_cast<uint32_t>(a.indexes.size()));
  for (uint64_t i : a.indexes) w.U64(i);
  return std::move(w.out());
}

bool DecodeCachedAnswer(std::string_view body, CachedAnswer* a) {
  gossip::WireReader in(body);
  uint8_t c = in.U8();
  a->blocks = in.U64();
  a->bytes = in.U64();
  uint32_t n = in.U32();
  if (!in.ok() || c > static_cast<uint8_t>(ReplyCode::kMiss) || n > in.left() / 8) return false;
  a->code = static_cast<ReplyCode>(c);
  a->indexes.resize(n);
  for (uint32_t i = 0; i < n; i++) a->indexes[i] = in.U64();
  return in.done();
}

}  // namespace strata::peer
