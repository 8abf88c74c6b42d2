// libFuzzer target for everything an agent decodes from the network before
// trusting it: gossip packets (through a live Membership), push-pull state,
// peer block requests and replies, and sealed messages.
//   make fuzz              a longer run (FUZZ_SECONDS, default 300)
//   make test              runs it for a few seconds
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "agent/gossip/keyring.h"
#include "agent/gossip/membership.h"
#include "agent/gossip/wire.h"
#include "agent/peer/frames.h"

using namespace strata;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  static gossip::Membership* m = [] {
    gossip::MembershipOptions o;
    o.name = "fuzz";
    o.addr = "127.0.0.1:1";
    o.seed = 1;
    return new gossip::Membership(o);
  }();
  static int64_t now = 1000;
  // As a packet (with and without the header), then time moves on.
  std::string packet = gossip::PacketHeader();
  packet.append(in);
  m->OnPacket(packet, now);
  m->OnPacket(in, now);
  now += 7;
  m->Tick(now);
  (void)m->TakeOutbox();
  gossip::PushPull pp;
  if (gossip::DecodePushPull(in, &pp)) m->MergeRemote(pp, now);
  cache::BlockRequest r;
  if (peer::DecodeBlockRequest(in, &r)) (void)r.length();
  peer::ReplyCode code;
  std::string msg;
  std::string_view bytes;
  (void)peer::DecodeBlockReply(in, &code, &msg, &bytes);
  static gossip::Keyring ring = [] {
    gossip::Key k{};
    k.fill(7);
    return gossip::Keyring::FromKeys({k});
  }();
  (void)ring.Open(in, "strata/fuzz/gossip");
  return 0;
}
