// The gossip wire format: little-endian integers and length-prefixed
// strings, decoded with bounds checks only (a malformed or hostile packet
// is refused, never trusted; the decoders are fuzzed).
//
// A gossip packet (UDP, sealed by the keyring) is
//   'S' | version 1 | messages: ( type u8 | length u16 | body )*
// so a probe carries piggybacked updates. Stream frames (TCP) are
//   length u32 | sealed( type u8 | body )
// with their own types (push-pull state, block requests and replies).
//
// Thread safety: plain values.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace strata::gossip {

class WireWriter {
 public:
  void U8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void U16(uint16_t v) { Int(v, 2); }
  void U32(uint32_t v) { Int(v, 4); }
  void U64(uint64_t v) { Int(v, 8); }
  void Str(std::string_view s) {  // u32 length + bytes
    U32(static_cast<uint32_t>(s.size()));
    out_.append(s);
  }
  void Raw(std::string_view s) { out_.append(s); }
  std::string& out() { return out_; }
  size_t size() const { return out_.size(); }

 private:
  void Int(uint64_t v, int n) {
    for (int i = 0; i < n; i++) out_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  }
  std::string out_;
};

// Reads fields in order; the first short or oversized field makes ok()
// false and every later read a no-op returning zero values.
class WireReader {
 public:
  explicit WireReader(std::string_view in) : in_(in) {}
  uint8_t U8() { return static_cast<uint8_t>(Int(1)); }
  uint16_t U16() { return static_cast<uint16_t>(Int(2)); }
  uint32_t U32() { return static_cast<uint32_t>(Int(4)); }
  uint64_t U64() { return Int(8); }
  // A string of at most `max` bytes.
  std::string Str(size_t max = 4096);
  std::string_view Raw(size_t n);
  bool ok() const { return ok_; }
  bool done() const { return ok_ && at_ == in_.size(); }
  size_t left() const { return in_.size() - at_; }

 private:
  uint64_t Int(int n);
  std::string_view in_;
  size_t at_ = 0;
  bool ok_ = true;
};

enum class State : uint8_t { kAlive = 0, kSuspect = 1, kDead = 2, kLeft = 3 };
const char* StateName(State s);

// What a member tells about itself besides its address.
struct NodeMeta {
  uint64_t capacity = 0;  // cache bytes (weights block ownership)
  uint64_t used = 0;
  uint8_t serves = 1;  // 0: reads from peers but owns no blocks (drains)
  bool operator==(const NodeMeta&) const = default;
};

enum class MsgType : uint8_t { kPing = 1, kIndirectPing, kAck, kNack, kAlive, kSuspect, kDead };

struct Message {
  MsgType type = MsgType::kPing;
  uint32_t seq = 0;         // ping, indirect ping, ack, nack
  uint32_t incarnation = 0;  // alive, suspect, dead
  std::string node;         // ping/indirect: the target; alive/suspect/dead: the subject; ack: the sender
  std::string addr;         // indirect: the target's; alive: the subject's
  std::string from;         // ping/indirect: the sender's name; suspect/dead: who says so
  std::string from_addr;    // ping/indirect: where to answer
  bool want_nack = false;   // indirect ping
  NodeMeta meta;            // alive
};

// Appends `m` to a packet being built.
void EncodeMessage(const Message& m, WireWriter* w);
// A packet's header and messages. False for anything malformed.
std::string PacketHeader();
bool DecodePacket(std::string_view packet, std::vector<Message>* out);

// One member as push-pull exchanges it.
struct NodeState {
  std::string name, addr;
  uint32_t incarnation = 0;
  State state = State::kAlive;
  NodeMeta meta;
};
struct PushPull {
  bool join = false;
  std::vector<NodeState> nodes;
};
std::string EncodePushPull(const PushPull& p);
bool DecodePushPull(std::string_view body, PushPull* out);

}  // namespace strata::gossip
