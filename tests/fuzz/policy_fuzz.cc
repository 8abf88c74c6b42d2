// libFuzzer target for the Lua policy API surface: any text as a policy file,
// loaded by the real runtime (sandbox, budgets, strata.schedule / on_* /
// actions with any arguments) with a host that refuses every action, then
// `policy status` and `agentctl policy check` rendered. Nothing may crash,
// throw or hang; a broken file is an error, never an abort.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>

#include "agent/policy/runtime.h"

namespace {

using strata::Result;
using strata::Status;
namespace policy = strata::policy;

class RefusingHost final : public policy::Host {
 public:
  Result<uint64_t> Load(const std::string&, bool, std::optional<strata::cache::Tier>, bool) override { return No(); }
  Result<strata::cache::EvictResult> Evict(const std::string&, bool, int64_t) override { return No(); }
  Status Pin(const std::string&, bool) override { return No(); }
  Status Unpin(const std::string&) override { return No(); }
  Status Ttl(const std::string&, bool, int64_t) override { return No(); }
  Result<std::vector<Entry>> List(const std::string&) override { return No(); }
  std::vector<std::pair<std::string, double>> Stat() override { return {{"hit_ratio", 0.5}}; }
  void Tick(int64_t) override {}
  std::vector<Member> Members() override { return {}; }

 private:
  static Status No() { return Status::NotFound("fuzz: no such path"); }
};

const std::string& Dir() {
  static const std::string dir = [] {
    char tmpl[] = "/tmp/policy-fuzz-XXXXXX";
    return std::string(::mkdtemp(tmpl));
  }();
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string file = Dir() + "/p.lua";
  std::ofstream(file, std::ios::binary | std::ios::trunc).write(reinterpret_cast<const char*>(data), size);
  policy::RuntimeOptions opts;
  opts.dir = Dir();
  opts.limits.memory_bytes = 8u << 20;
  opts.limits.instructions = 200'000;
  RefusingHost host;
  policy::Runtime rt(opts, nullptr, &host);
  (void)rt.Reload();
  std::string status = rt.StatusJson();
  if (status.empty()) std::abort();
  (void)rt.Check(file);
  return 0;
}
