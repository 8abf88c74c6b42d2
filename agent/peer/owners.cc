#include "agent/peer/owners.h"

#include <algorithm>
#include <cmath>

#include "agent/base/hash.h"

namespace strata::peer {

namespace {
uint64_t Mix(uint64_t x) {  // splitmix64 finalizer
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}
uint64_t NameHash(const std::string& s) { return Mix(Xxh64(s.data(), s.size())); }
}  // namespace

std::vector<const Candidate*> RankOwners(uint64_t key, const std::vector<Candidate>& members) {
  std::vector<std::pair<double, const Candidate*>> scored;
  scored.reserve(members.size());
  for (const Candidate& c : members) {
    if (c.weight <= 0) continue;
    uint64_t h = Mix(key ^ NameHash(c.name));
    double u = (static_cast<double>(h >> 11) + 0.5) / 9007199254740992.0;  // (0, 1)
    scored.push_back({c.weight / -std::log(u), &c});
  }
  std::sort(scored.begin(), scored.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second->name < b.second->name;
  });
  std::vector<const Candidate*> out;
  for (auto& [score, c] : scored) out.push_back(c);
  return out;
}

}  // namespace strata::peer
