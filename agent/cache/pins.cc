#include "agent/cache/pins.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "agent/base/json.h"

namespace strata::cache {

using nlohmann::json;

Status PinTable::Load() {
  Result<std::optional<std::string>> row = index_->GetSetting("pins");
  if (!row.ok()) return row.status();
  std::lock_guard<std::mutex> lock(mu_);
  pins_.clear();
  ttls_.clear();
  if (row->has_value()) {
    json j = json::parse(**row, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return Status::Corrupt("the saved pins and TTLs are not readable JSON");
    for (const json& p : j.value("pins", json::array()))
      pins_.push_back({p.value("path", ""), p.value("recursive", false)});
    for (const json& t : j.value("ttls", json::array()))
      ttls_.push_back({{t.value("path", ""), t.value("recursive", false)}, t.value("expire_ms", int64_t{0})});
  }
  engine_->SetPins(pins_);
  return Status::OK();
}

Status PinTable::SaveLocked() {
  json j = {{"pins", json::array()}, {"ttls", json::array()}};
  for (const PinRule& p : pins_) j["pins"].push_back({{"path", p.path}, {"recursive", p.recursive}});
  for (const TtlRule& t : ttls_)
    j["ttls"].push_back({{"path", t.target.path}, {"recursive", t.target.recursive}, {"expire_ms", t.expire_ms}});
  return index_->PutSetting("pins", strata::JsonText(j));
}

Status PinTable::Pin(const std::string& path, bool recursive) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = std::find_if(pins_.begin(), pins_.end(), [&](const PinRule& p) { return p.path == path; });
  if (it != pins_.end()) it->recursive = recursive;
  else pins_.push_back({path, recursive});
  STRATA_RETURN_IF_ERROR(SaveLocked());
  engine_->SetPins(pins_);
  return Status::OK();
}

Status PinTable::Unpin(const std::string& path) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = std::find_if(pins_.begin(), pins_.end(), [&](const PinRule& p) { return p.path == path; });
  if (it == pins_.end()) return Status::NotFound("/" + path + " is not pinned");
  pins_.erase(it);
  STRATA_RETURN_IF_ERROR(SaveLocked());
  engine_->SetPins(pins_);
  return Status::OK();
}

Status PinTable::SetTtl(const std::string& path, bool recursive, int64_t expire_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = std::find_if(ttls_.begin(), ttls_.end(), [&](const TtlRule& t) { return t.target.path == path; });
  if (expire_ms == 0) {
    if (it == ttls_.end()) return Status::NotFound("/" + path + " has no TTL");
    ttls_.erase(it);
  } else if (it != ttls_.end()) {
    *it = {{path, recursive}, expire_ms};
  } else {
    ttls_.push_back({{path, recursive}, expire_ms});
  }
  return SaveLocked();
}

std::vector<TtlRule> PinTable::TakeExpired(int64_t now_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<TtlRule> due;
  auto keep = std::stable_partition(ttls_.begin(), ttls_.end(), [&](const TtlRule& t) { return t.expire_ms > now_ms; });
  due.assign(keep, ttls_.end());
  if (due.empty()) return due;
  ttls_.erase(keep, ttls_.end());
  (void)SaveLocked();
  return due;
}

std::vector<PinRule> PinTable::pins() {
  std::lock_guard<std::mutex> lock(mu_);
  return pins_;
}

std::vector<TtlRule> PinTable::ttls() {
  std::lock_guard<std::mutex> lock(mu_);
  return ttls_;
}

}  // namespace strata::cache
