// The peer protocol's frames (inside sealed stream frames, gossip/stream.h):
// a block request names the version and the blocks; a reply is a code, a
// message and the bytes. Decoders check every bound (they are fuzzed).
//
// Thread safety: plain functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "agent/cache/block_source.h"

namespace strata::peer {

// `warm`: the owner loads the blocks into its cache and answers without
// the bytes (a cluster-wide load).
std::string EncodeBlockRequest(const cache::BlockRequest& r, bool warm = false);
bool DecodeBlockRequest(std::string_view body, cache::BlockRequest* r, bool* warm = nullptr);
enum class ReplyCode : uint8_t {
  kOk = 0,
  kStale = 1,    // the owner holds another version: ask the store
  kMiss = 2,     // the owner cannot serve (not mounted there, a store error)
  kPending = 3,  // the owner is fetching: the next frame follows
};
std::string EncodeBlockReply(ReplyCode code, std::string_view message, std::string_view data);
// The reply's bytes before `data_len` bytes of data (a sender writes the
// data right after them, without a copy).
std::string EncodeBlockReplyHead(ReplyCode code, std::string_view message, size_t data_len);
bool DecodeBlockReply(std::string_view body, ReplyCode* code, std::string* message, std::string_view* data);
// A reply whose data was received elsewhere (StreamConn::ReceiveTail): `head`
// is the bytes before it, and the data's length comes out.
bool DecodeBlockReplyHead(std::string_view head, ReplyCode* code, std::string* message, uint32_t* data_len);

// "What do you hold of this version?": asked of every member by `agentctl
// stat --cluster` and `agentctl owner`.
struct CachedQuery {
  std::string store_uri, object, etag;
  uint64_t object_size = 0;
};
struct CachedAnswer {
  ReplyCode code = ReplyCode::kOk;  // kStale: another version there; kMiss: not mounted there
  uint64_t blocks = 0, bytes = 0;
  std::vector<uint64_t> indexes;  // the cached blocks
};
std::string EncodeCachedQuery(const CachedQuery& q);
bool DecodeCachedQuery(std::string_view body, CachedQuery* q);
std::string EncodeCachedAnswer(const CachedAnswer& a);
bool DecodeCachedAnswer(std::string_view body, CachedAnswer* a);

}  // namespace strata::peer
