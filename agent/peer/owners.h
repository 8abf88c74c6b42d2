// Which member owns a block: rendezvous (highest random weight) hashing of
// the block's content key over the members that serve, weighted by their
// cache capacity (score = w / -ln(u), u the key-member hash in (0, 1)). A
// member that joins or leaves moves about 1/N of the blocks, and nothing
// else; every agent computes the same owner from the same member list.
//
// Thread safety: plain functions.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace strata::peer {

struct Candidate {
  std::string name;
  std::string addr;
  double weight = 1;  // relative capacity
};

// Candidates in order of preference for `key` (the owner first).
std::vector<const Candidate*> RankOwners(uint64_t key, const std::vector<Candidate>& members);

}  // namespace strata::peer
