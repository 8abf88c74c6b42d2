#include "agent/gossip/wire.h"

namespace strata::gossip {

namespace {
constexpr char kMagic = 'S';
constexpr uint8_t kVersion = 1;
constexpr size_t kMaxName = 512;
constexpr uint32_t kMaxNodes = 100000;

void EncodeMeta(const NodeMeta& m, WireWriter* w) {
  w->U64(m.capacity);
  w->U64(m.used);
  w->U8(m.serves);
}
NodeMeta DecodeMeta(WireReader* r) {
  NodeMeta m;
  m.capacity = r->U64();
  m.used = r->U64();
  m.serves = r->U8();
  return m;
}
}  // namespace

uint64_t WireReader::Int(int n) {
  if (!ok_ || in_.size() - at_ < static_cast<size_t>(n)) {
    ok_ = false;
    return 0;
  }
  uint64_t v = 0;
  for (int i = 0; i < n; i++) v |= static_cast<uint64_t>(static_cast<uint8_t>(in_[at_ + i])) << (8 * i);
  at_ += n;
  return v;
}

std::string WireReader::Str(size_t max) {
  uint32_t n = U32();
  if (!ok_ || n > max || n > left()) {
    ok_ = false;
    return {};
  }
  std::string s(in_.substr(at_, n));
  at_ += n;
  return s;
}

std::string_view WireReader::Raw(size_t n) {
  if (!ok_ || n > left()) {
    ok_ = false;
    return {};
  }
  std::string_view s = in_.substr(at_, n);
  at_ += n;
  return s;
}

const char* StateName(State s) {
  switch (s) {
    case State::kAlive: return "alive";
    case State::kSuspect: return "suspect";
    case State::kDead: return "dead";
    case State::kLeft: return "left";
  }
  return "?";
}

std::string PacketHeader() { return std::string{kMagic, static_cast<char>(kVersion)}; }

void EncodeMessage(const Message& m, WireWriter* w) {
  WireWriter body;
  switch (m.type) {
    case MsgType::kPing:
      body.U32(m.seq);
      body.Str(m.node);
      body.Str(m.from);
      body.Str(m.from_addr);
      break;
    case MsgType::kIndirectPing:
      body.U32(m.seq);
      body.Str(m.node);
      body.Str(m.addr);
      body.Str(m.from);
      body.Str(m.from_addr);
      body.U8(m.want_nack ? 1 : 0);
      break;
    case MsgType::kAck:
      body.U32(m.seq);
      body.Str(m.node);
      break;
    case MsgType::kNack:
      body.U32(m.seq);
      break;
    case MsgType::kAlive:
      body.U32(m.incarnation);
      body.Str(m.node);
      body.Str(m.addr);
      EncodeMeta(m.meta, &body);
      break;
    case MsgType::kSuspect:
    case MsgType::kDead:
      body.U32(m.incarnation);
      body.Str(m.node);
      body.Str(m.from);
      break;
  }
  w->U8(static_cast<uint8_t>(m.type));
  w->U16(static_cast<uint16_t>(body.size()));
  w->Raw(body.out());
}

bool DecodePacket(std::string_view packet, std::vector<Message>* out) {
  WireReader r(packet);
  if (r.U8() != static_cast<uint8_t>(kMagic) || r.U8() != kVersion) return false;
  while (r.ok() && r.left() > 0) {
    uint8_t type = r.U8();
    uint16_t len = r.U16();
    WireReader b(r.Raw(len));
    if (!r.ok()) return false;
    Message m;
    m.type = static_cast<MsgType>(type);
    switch (m.type) {
      case MsgType::kPing:
        m.seq = b.U32();
        m.node = b.Str(kMaxName);
        m.from = b.Str(kMaxName);
        m.from_addr = b.Str(kMaxName);
        break;
      case MsgType::kIndirectPing:
        m.seq = b.U32();
        m.node = b.Str(kMaxName);
        m.addr = b.Str(kMaxName);
        m.from = b.Str(kMaxName);
        m.from_addr = b.Str(kMaxName);
        m.want_nack = b.U8() != 0;
        break;
      case MsgType::kAck:
        m.seq = b.U32();
        m.node = b.Str(kMaxName);
        break;
      case MsgType::kNack:
        m.seq = b.U32();
        break;
      case MsgType::kAlive:
        m.incarnation = b.U32();
        m.node = b.Str(kMaxName);
        m.addr = b.Str(kMaxName);
        m.meta = DecodeMeta(&b);
        break;
      case MsgType::kSuspect:
      case MsgType::kDead:
        m.incarnation = b.U32();
        m.node = b.Str(kMaxName);
        m.from = b.Str(kMaxName);
        break;
      default:
        return false;
    }
    if (!b.done()) return false;
    out->push_back(std::move(m));
  }
  return r.ok();
}

std::string EncodePushPull(const PushPull& p) {
  WireWriter w;
  w.U8(p.join ? 1 : 0);
  w.U32(static_cast<uint32_t>(p.nodes.size()));
  for (const NodeState& n : p.nodes) {
    w.Str(n.name);
    w.Str(n.addr);
    w.U32(n.incarnation);
    w.U8(static_cast<uint8_t>(n.state));
    EncodeMeta(n.meta, &w);
  }
  return std::move(w.out());
}

bool DecodePushPull(std::string_view body, PushPull* out) {
  WireReader r(body);
  out->join = r.U8() != 0;
  uint32_t n = r.U32();
  if (!r.ok() || n > kMaxNodes) return false;
  for (uint32_t i = 0; i < n && r.ok(); i++) {
    NodeState s;
    s.name = r.Str(kMaxName);
    s.addr = r.Str(kMaxName);
    s.incarnation = r.U32();
    uint8_t st = r.U8();
    if (st > static_cast<uint8_t>(State::kLeft)) return false;
    s.state = static_cast<State>(st);
    s.meta = DecodeMeta(&r);
    if (s.name.empty()) return false;
    out->nodes.push_back(std::move(s));
  }
  return r.done();
}

}  // namespace strata::gossip
