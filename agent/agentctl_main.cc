// agentctl: load / evict / stat / flush / pin / unpin / ttl / policy against
// a running strata-agent, over its control socket (HTTP/1.1 + JSON, via
// libcurl's Unix-socket support). `policy check` works without an agent.
// See man/agentctl.1.
#include <curl/curl.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include "agent/base/hash.h"
#include "agent/base/json.h"
#include "agent/base/paths.h"
#include "agent/base/units.h"
#include "agent/policy/runtime.h"

namespace strata {
namespace {

using nlohmann::json;

struct Http {
  long status = 0;
  std::string body;
};

size_t Collect(char* data, size_t size, size_t n, void* arg) {
  static_cast<std::string*>(arg)->append(data, size * n);
  return size * n;
}

class Client {
 public:
  explicit Client(std::string socket) : socket_(std::move(socket)) {}

  // Exits with a clear message when the agent cannot be reached.
  Http Call(const std::string& method, const std::string& target, long timeout_s = 60) {
    CURL* c = curl_easy_init();
    Http out;
    std::string url = "http://localhost" + target;
    curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, socket_.c_str());
    curl_easy_setopt(c, CURLOPT_URL, url.c_str());
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 3L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, timeout_s);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, Collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &out.body);
    if (method == "POST") curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
    CURLcode rc = curl_easy_perform(c);
    if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST) {
      std::cerr << "agentctl: no agent is listening on " << socket_
                << " (is strata-agent running? pass --socket if it uses another path)\n";
      std::exit(1);
    }
    if (rc != CURLE_OK) {
      std::cerr << "agentctl: " << method << " " << target << " on " << socket_ << ": "
                << curl_easy_strerror(rc) << "\n";
      std::exit(1);
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out.status);
    curl_easy_cleanup(c);
    return out;
  }

  // Parses the JSON answer; exits with the agent's error text on failure.
  json CallJson(const std::string& method, const std::string& target, long timeout_s = 60) {
    Http r = Call(method, target, timeout_s);
    json j = json::parse(r.body, nullptr, false);
    if (j.is_discarded()) {
      std::cerr << "agentctl: the agent sent an answer that is not JSON (HTTP " << r.status << ")\n";
      std::exit(1);
    }
    if (r.status >= 400) {
      std::cerr << "agentctl: " << j.value("error", "HTTP " + std::to_string(r.status)) << "\n";
      std::exit(1);
    }
    return j;
  }

 private:
  std::string socket_;
};

std::string Pct(double v) {
  char b[32];
  std::snprintf(b, sizeof(b), "%.1f%%", v);
  return b;
}

std::string Q(const std::string& path, bool recursive) {
  return "?path=" + UriEncode(path, true) + (recursive ? "&recursive=1" : "");
}

void PrintFileRow(const json& f) {
  std::printf("%s\n  size     %s  etag %s\n  cached   %s (%s), %llu of %llu blocks\n",
              f["path"].get<std::string>().c_str(), FormatSize(f["size"].get<uint64_t>()).c_str(),
              f["etag"].get<std::string>().c_str(), FormatSize(f["cached_bytes"].get<uint64_t>()).c_str(),
              Pct(f["cached_percent"].get<double>()).c_str(),
              static_cast<unsigned long long>(f["blocks_cached"].get<uint64_t>()),
              static_cast<unsigned long long>(f["blocks_total"].get<uint64_t>()));
}

void PrintMemberRows(const json& members) {
  for (const json& m : members) {
    if (m.contains("error"))
      std::printf("  %-28s %s\n", m["name"].get<std::string>().c_str(), m["error"].get<std::string>().c_str());
    else
      std::printf("  %-28s %10s  %7s  %llu blocks\n", m["name"].get<std::string>().c_str(),
                  FormatSize(m["cached_bytes"].get<uint64_t>()).c_str(), Pct(m["cached_percent"].get<double>()).c_str(),
                  static_cast<unsigned long long>(m["blocks_cached"].get<uint64_t>()));
  }
}

int Stat(Client& cl, const std::string& path, bool cluster, bool as_json) {
  if (!path.empty()) {
    json j = cl.CallJson("GET", "/v1/stat" + Q(path, false) + (cluster ? "&cluster=1" : ""));
    if (as_json) return std::cout << strata::JsonText(j, 2) << "\n", 0;
    if (j["type"] == "file" && j.contains("members")) {
      PrintFileRow(j);
      std::printf("  on each member:\n");
      PrintMemberRows(j["members"]);
      return 0;
    }
    if (j["type"] == "file") return PrintFileRow(j), 0;
    std::printf("%s (directory: %zu file(s), %llu subdirectory(ies))\n  size     %s\n  cached   %s (%s)\n",
                j["path"].get<std::string>().c_str(), j["files"].size(),
                static_cast<unsigned long long>(j["directories"].get<uint64_t>()),
                FormatSize(j["size"].get<uint64_t>()).c_str(), FormatSize(j["cached_bytes"].get<uint64_t>()).c_str(),
                Pct(j["cached_percent"].get<double>()).c_str());
    for (const json& f : j["files"])
      std::printf("  %7s  %10s  %s\n", Pct(f["cached_percent"].get<double>()).c_str(),
                  FormatSize(f["size"].get<uint64_t>()).c_str(), f["path"].get<std::string>().c_str());
    if (j.contains("members")) {
      std::printf("  on each member (files directly in it):\n");
      PrintMemberRows(j["members"]);
    }
    return 0;
  }
  json j = cl.CallJson("GET", "/v1/stat");
  if (as_json) return std::cout << strata::JsonText(j, 2) << "\n", 0;
  uint64_t cap = j["capacity_bytes"], used = j["used_bytes"], read = j["bytes_read"], hit = j["bytes_from_cache"];
  std::printf("Cache (mount %s)\n", j["mount_point"].get<std::string>().c_str());
  std::printf("  capacity     %s\n", FormatSize(cap).c_str());
  std::printf("  used         %s (%s) in %llu blocks of %s\n", FormatSize(used).c_str(),
              Pct(cap ? 100.0 * used / cap : 0).c_str(), static_cast<unsigned long long>(j["blocks"].get<uint64_t>()),
              FormatSize(j["block_size"].get<uint64_t>()).c_str());
  std::printf("  hit ratio    %s (%s of %s read came from the cache)\n", Pct(100.0 * j["hit_ratio"].get<double>()).c_str(),
              FormatSize(hit).c_str(), FormatSize(read).c_str());
  std::printf("  in flight    %llu fetch(es)\n", static_cast<unsigned long long>(j["inflight_fetches"].get<uint64_t>()));
  std::printf("  evicted      %llu blocks (%s)   checksum failures %llu   fetch errors %llu\n",
              static_cast<unsigned long long>(j["evicted_blocks"].get<uint64_t>()),
              FormatSize(j["evicted_bytes"].get<uint64_t>()).c_str(),
              static_cast<unsigned long long>(j["checksum_failures"].get<uint64_t>()),
              static_cast<unsigned long long>(j["fetch_errors"].get<uint64_t>()));
  std::printf("  checked      %llu block(s) found at start verified by reads, %llu by the scrub\n",
              static_cast<unsigned long long>(j.value("verified_blocks", uint64_t{0})),
              static_cast<unsigned long long>(j.value("scrubbed_blocks", uint64_t{0})));
  if (j.contains("fetched_bytes_by_source") && !j["fetched_bytes_by_source"].empty()) {
    std::string line;
    for (auto& [name, bytes] : j["fetched_bytes_by_source"].items())
      line += (line.empty() ? "" : ", ") + FormatSize(bytes.get<uint64_t>()) + " from " + name;
    std::printf("  fetched      %s\n", line.c_str());
  }
  if (j.contains("tiers") && j["tiers"].size() > 1) {
    std::printf("Tiers\n  %-5s %10s %10s %7s %10s %9s %12s %9s\n", "TIER", "CAPACITY", "USED", "USE%", "PINNED",
                "BLOCKS", "SERVED", "EVICTED");
    for (const json& t : j["tiers"]) {
      uint64_t tc = t["capacity_bytes"], tu = t["used_bytes"];
      std::printf("  %-5s %10s %10s %7s %10s %9llu %12s %9llu\n", t["tier"].get<std::string>().c_str(),
                  FormatSize(tc).c_str(), FormatSize(tu).c_str(), Pct(tc ? 100.0 * tu / tc : 0).c_str(),
                  FormatSize(t["pinned_bytes"].get<uint64_t>()).c_str(),
                  static_cast<unsigned long long>(t["blocks"].get<uint64_t>()),
                  FormatSize(t["bytes_served"].get<uint64_t>()).c_str(),
                  static_cast<unsigned long long>(t["evicted_blocks"].get<uint64_t>()));
    }
    std::printf("  promoted %llu block(s) to RAM, demoted %llu to SSD\n",
                static_cast<unsigned long long>(j["promotions"].get<uint64_t>()),
                static_cast<unsigned long long>(j["demotions"].get<uint64_t>()));
  }
  if (!j["pins"].empty() || !j["ttls"].empty()) {
    std::printf("Pins and TTLs (%s pinned)\n", FormatSize(j["pinned_bytes"].get<uint64_t>()).c_str());
    for (const json& p : j["pins"])
      std::printf("  pin  %s%s\n", p["path"].get<std::string>().c_str(), p["recursive"].get<bool>() ? " (recursive)" : "");
    for (const json& t : j["ttls"]) {
      time_t when = t["expires_ms"].get<int64_t>() / 1000;
      char buf[32];
      std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S", std::localtime(&when));
      std::printf("  ttl  %s%s expires %s\n", t["path"].get<std::string>().c_str(),
                  t["recursive"].get<bool>() ? " (recursive)" : "", buf);
    }
  }
  if (j.contains("policy")) {
    const json& pol = j["policy"];
    std::printf("Policies\n  %zu file(s) loaded, %zu hook(s) failed%s%s\n", pol["files"].get<size_t>(),
                pol["failed_hooks"].get<size_t>(), pol["last_reload"].value("ok", true) ? "" : "; LAST RELOAD REFUSED: ",
                pol["last_reload"].value("error", "").c_str());
  }
  std::printf("Mounts\n  %-12s %-36s %-10s %10s %10s %8s %7s  %s\n", "PATH", "STORE", "WRITES", "CACHED", "FETCHED", "GETS", "ERRORS", "STATE");
  for (const json& m : j["mounts"])
    std::printf("  %-12s %-36s %-10s %10s %10s %8llu %7llu  %s\n", m["path"].get<std::string>().c_str(),
                m["uri"].get<std::string>().c_str(), m["write_mode"].get<std::string>().c_str(),
                FormatSize(m["used_bytes"].get<uint64_t>()).c_str(),
                FormatSize(m["bytes_fetched"].get<uint64_t>()).c_str(),
                static_cast<unsigned long long>(m["get_requests"].get<uint64_t>()),
                static_cast<unsigned long long>(m["errors"].get<uint64_t>()), m["online"].get<bool>() ? "online" : "OFFLINE");
  const json& w = j["writes"];
  std::printf("Writes\n  pending      %llu file(s), %s waiting for upload", static_cast<unsigned long long>(w["pending_files"].get<uint64_t>()),
              FormatSize(w["pending_bytes"].get<uint64_t>()).c_str());
  if (w["pending_files"].get<uint64_t>() > 0)
    std::printf(", oldest %.1f s ago", w["oldest_pending_ms"].get<int64_t>() / 1000.0);
  std::printf("\n  staged       %s of %s   uploaded %llu file(s), %s   failed attempts %llu\n",
              FormatSize(w["staged_bytes"].get<uint64_t>()).c_str(), FormatSize(w["staging_limit"].get<uint64_t>()).c_str(),
              static_cast<unsigned long long>(w["uploads"].get<uint64_t>()), FormatSize(w["uploaded_bytes"].get<uint64_t>()).c_str(),
              static_cast<unsigned long long>(w["upload_failures"].get<uint64_t>()));
  if (w["failing_files"].get<uint64_t>() > 0)
    std::printf("  FAILING      %llu file(s) cannot be uploaded yet: %s\n",
                static_cast<unsigned long long>(w["failing_files"].get<uint64_t>()), w["last_error"].get<std::string>().c_str());
  for (const json& m : j["mounts"])
    if (m["write_mode"] == "cache-only")
      std::printf("  WARNING      %s is CACHE-ONLY: %llu file(s), %s written there are NOT in the store and never will be\n",
                  m["path"].get<std::string>().c_str(), static_cast<unsigned long long>(w["cache_only_files"].get<uint64_t>()),
                  FormatSize(w["cache_only_bytes"].get<uint64_t>()).c_str());
  if (j.contains("gateway")) {
    const json& g = j["gateway"];
    uint64_t reqs = 0, errs = 0, in = 0, out = 0;
    for (auto& [op, o] : g["operations"].items()) {
      reqs += o["requests"].get<uint64_t>();
      errs += o["errors"].get<uint64_t>();
      in += o["bytes_in"].get<uint64_t>();
      out += o["bytes_out"].get<uint64_t>();
    }
    std::printf("Gateway (S3 and REST on port %u)\n  requests     %llu, %llu answered with an error   in %s   out %s\n",
                g["port"].get<unsigned>(), static_cast<unsigned long long>(reqs), static_cast<unsigned long long>(errs),
                FormatSize(in).c_str(), FormatSize(out).c_str());
    for (auto& [op, o] : g["operations"].items())
      std::printf("  %-24s %llu request(s), %llu error(s), %.3f s in all\n", op.c_str(),
                  static_cast<unsigned long long>(o["requests"].get<uint64_t>()),
                  static_cast<unsigned long long>(o["errors"].get<uint64_t>()), o["seconds"].get<double>());
  }
  for (const json& job : j["jobs"])
    std::printf("Job %llu (%s): %s %s, %s of %s\n", static_cast<unsigned long long>(job["id"].get<uint64_t>()),
                job.value("origin", "").c_str(), job["state"].get<std::string>().c_str(), job["path"].get<std::string>().c_str(),
                FormatSize(job["bytes_done"].get<uint64_t>()).c_str(), FormatSize(job["bytes_total"].get<uint64_t>()).c_str());
  return 0;
}

// Progress of a long command on stderr: a bar redrawn in place on a
// terminal; otherwise (a log, a pipe, CI) a plain line every 5 s and one at
// the end; nothing with --json.
class Progress {
 public:
  Progress(const char* what, bool as_json) : what_(what), quiet_(as_json), tty_(::isatty(STDERR_FILENO) != 0) {}
  void Update(double frac, const std::string& detail) {
    if (quiet_) return;
    frac = std::clamp(frac, 0.0, 1.0);
    if (tty_) {
      int width = 30, fill = static_cast<int>(frac * width);
      std::string bar(fill, '#');
      bar.resize(width, '.');
      std::fprintf(stderr, "\r[%s] %5.1f%%  %s   ", bar.c_str(), frac * 100, detail.c_str());
      drawn_ = true;
      return;
    }
    auto now = std::chrono::steady_clock::now();
    if (printed_ && now - last_ < std::chrono::seconds(5)) return;
    std::fprintf(stderr, "%s: %5.1f%%  %s\n", what_, frac * 100, detail.c_str());
    last_ = now;
    printed_ = true;
  }
  void Done() {
    if (drawn_) std::fprintf(stderr, "\n");
  }

 private:
  const char* what_;
  bool quiet_, tty_;
  bool drawn_ = false, printed_ = false;
  std::chrono::steady_clock::time_point last_;
};

void DrawJob(Progress& p, const json& j) {
  uint64_t done = j["bytes_done"], total = j["bytes_total"];
  double frac = total ? static_cast<double>(done) / total : (j["state"] == "listing" ? 0 : 1);
  char detail[256];
  std::snprintf(detail, sizeof(detail), "%llu/%llu files  %s/%s  %s/s",
                static_cast<unsigned long long>(j["files_done"].get<uint64_t>()),
                static_cast<unsigned long long>(j["files_total"].get<uint64_t>()), FormatSize(done).c_str(),
                FormatSize(total).c_str(), FormatSize(static_cast<uint64_t>(j["bytes_per_second"].get<double>())).c_str());
  p.Update(frac, detail);
}

// Follows a job to its end with a progress bar; exit status 0 when done.
int FollowJob(Client& cl, uint64_t id, bool as_json);

int Load(Client& cl, const std::string& path, bool recursive, const std::string& tier, bool cluster, bool as_json) {
  json started = cl.CallJson("POST", "/v1/load" + Q(path, recursive) + (tier.empty() ? "" : "&tier=" + tier) +
                                         (cluster ? "&cluster=1" : ""));
  return FollowJob(cl, started["job"].get<uint64_t>(), as_json);
}

int FollowJob(Client& cl, uint64_t id, bool as_json) {
  std::string job = "/v1/jobs/" + std::to_string(id);
  Progress progress("loading", as_json);
  json j;
  for (;;) {
    j = cl.CallJson("GET", job);
    std::string state = j["state"];
    DrawJob(progress, j);
    if (state == "done" || state == "failed") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  progress.Done();
  if (as_json) {
    std::cout << strata::JsonText(j, 2) << "\n";
  } else {
    std::printf("loaded %llu file(s), %s in %.1f s (%s/s)%s\n",
                static_cast<unsigned long long>(j["files_done"].get<uint64_t>()),
                FormatSize(j["bytes_done"].get<uint64_t>()).c_str(), j["elapsed_seconds"].get<double>(),
                FormatSize(static_cast<uint64_t>(j["bytes_per_second"].get<double>())).c_str(),
                j["files_failed"].get<uint64_t>() ? (", " + std::to_string(j["files_failed"].get<uint64_t>()) + " failed").c_str() : "");
    for (const json& e : j["errors"]) std::fprintf(stderr, "agentctl: %s\n", e.get<std::string>().c_str());
    if (j["files_failed"].get<uint64_t>() > 0)
      std::fprintf(stderr, "agentctl: after fixing what is named above, run the same load again: blocks already cached are not fetched again\n");
  }
  return j["state"] == "done" ? 0 : 1;
}

int Evict(Client& cl, const std::string& path, bool recursive, bool as_json) {
  json j = cl.CallJson("POST", "/v1/evict" + Q(path, recursive), 600);
  if (as_json) std::cout << strata::JsonText(j, 2) << "\n";
  else
    std::printf("evicted %s in %llu block(s) of %llu file(s) under %s\n", FormatSize(j["bytes"].get<uint64_t>()).c_str(),
                static_cast<unsigned long long>(j["blocks"].get<uint64_t>()),
                static_cast<unsigned long long>(j["files"].get<uint64_t>()), j["path"].get<std::string>().c_str());
  return 0;
}

int Pin(Client& cl, const std::string& path, bool recursive, bool as_json) {
  json j = cl.CallJson("POST", "/v1/pin" + Q(path, recursive), 600);
  if (!as_json)
    std::printf("pinned %s (%s); loading it\n", j["path"].get<std::string>().c_str(),
                FormatSize(j["bytes"].get<uint64_t>()).c_str());
  return FollowJob(cl, j["job"].get<uint64_t>(), as_json);
}

int Simple(Client& cl, const std::string& target, const std::string& done, bool as_json) {
  json j = cl.CallJson("POST", target);
  if (as_json) std::cout << strata::JsonText(j, 2) << "\n";
  else std::printf("%s %s\n", done.c_str(), j["path"].get<std::string>().c_str());
  return 0;
}

void PrintPolicyStatus(const json& j) {
  std::printf("Policies from %s: %zu file(s)%s\n", j["dir"].get<std::string>().c_str(), j["files"].size(),
              j.contains("loaded_at") ? (", loaded " + j["loaded_at"].get<std::string>()).c_str() : "");
  for (const json& f : j["files"]) std::printf("  %s\n", f.get<std::string>().c_str());
  const json& lr = j["last_reload"];
  if (!lr["ok"].get<bool>())
    std::printf("LAST RELOAD REFUSED (%s), the policies above stay in force:\n  %s\n", lr["at"].get<std::string>().c_str(),
                lr["error"].get<std::string>().c_str());
  std::printf("Hooks\n");
  if (j["hooks"].empty()) std::printf("  (none)\n");
  for (const json& h : j["hooks"]) {
    std::printf("  %-10s %s:%d  %s, %llu call(s)\n", h["hook"].get<std::string>().c_str(), h["file"].get<std::string>().c_str(),
                h["line"].get<int>(), h["state"].get<std::string>().c_str(),
                static_cast<unsigned long long>(h["calls"].get<uint64_t>()));
    if (!h["error"].get<std::string>().empty()) std::printf("             error: %s\n", h["error"].get<std::string>().c_str());
  }
  std::printf("  in use: on_admit %s, on_evict %s\n", j["default"]["on_admit"].get<std::string>().c_str(),
              j["default"]["on_evict"].get<std::string>().c_str());
  std::printf("Schedules (now %s)\n", j["now"].get<std::string>().c_str());
  if (j["schedules"].empty()) std::printf("  (none)\n");
  for (const json& s : j["schedules"]) {
    std::printf("  %-18s %-6s %s:%d  next %s", ("\"" + s["spec"].get<std::string>() + "\"").c_str(),
                s["tz"].get<std::string>().c_str(), s["file"].get<std::string>().c_str(), s["line"].get<int>(),
                s["next_run"].get<std::string>().c_str());
    if (s["runs"].get<uint64_t>() > 0)
      std::printf("  last %s %s (%.3f s), %llu run(s), %llu failed", s["last_run"].get<std::string>().c_str(),
                  s["last_result"].get<std::string>().c_str(), s["last_seconds"].get<double>(),
                  static_cast<unsigned long long>(s["runs"].get<uint64_t>()),
                  static_cast<unsigned long long>(s["failures"].get<uint64_t>()));
    std::printf("\n");
    if (!s["error"].get<std::string>().empty()) std::printf("    error: %s\n", s["error"].get<std::string>().c_str());
  }
}

int Policy(Client& cl, const std::string& verb, const std::string& file, bool as_json) {
  if (verb == "check") {
    // Locally, in a scratch state: no agent needed, nothing applied.
    policy::Runtime rt({}, nullptr, nullptr);
    Result<std::string> r = rt.Check(file);
    if (as_json) {
      json j = {{"file", file}, {"valid", r.ok()}};
      if (r.ok()) j["report"] = *r;
      else j["error"] = r.status().message();
      std::cout << strata::JsonText(j, 2) << "\n";
      return r.ok() ? 0 : 1;
    }
    if (!r.ok()) {
      std::cerr << "agentctl: " << file << " is not a valid policy: " << r.status().message() << "\n";
      return 1;
    }
    std::cout << *r;
    return 0;
  }
  Http r = cl.Call(verb == "reload" ? "POST" : "GET", verb == "reload" ? "/v1/policy/reload" : "/v1/policy/status");
  json j = json::parse(r.body, nullptr, false);
  if (j.is_discarded()) {
    std::cerr << "agentctl: the agent sent an answer that is not JSON (HTTP " << r.status << ")\n";
    return 1;
  }
  if (r.status >= 400) {
    std::cerr << "agentctl: " << j.value("error", "HTTP " + std::to_string(r.status)) << "\n";
    return 1;
  }
  if (as_json) std::cout << strata::JsonText(j, 2) << "\n";
  else if (verb == "reload") std::printf("reloaded: %zu policy file(s) in force\n", j["files"].size());
  else PrintPolicyStatus(j);
  return 0;
}

int Flush(Client& cl, const std::string& path, double timeout_s, bool as_json) {
  std::string target = "/v1/flush?path=" + UriEncode(path, true) + "&timeout=" + std::to_string(timeout_s);
  // The flush waits in the agent; meanwhile the uploads still pending (all
  // of them, not only PATH's) show how far it is.
  Http r;
  std::atomic<bool> answered{false};
  std::thread call([&] {
    r = cl.Call("POST", target, static_cast<long>(timeout_s) + 30);
    answered = true;
  });
  Progress progress("flushing", as_json);
  uint64_t first = 0;
  for (int i = 0; !answered; i++) {
    if (i % 5 == 1) {  // every 0.5 s, from 0.1 s on (a quick flush shows nothing)
      json st = json::parse(cl.Call("GET", "/v1/stat", 10).body, nullptr, false);
      if (!st.is_discarded() && st.contains("writes")) {
        uint64_t files = st["writes"]["pending_files"], bytes = st["writes"]["pending_bytes"];
        first = std::max(first, bytes);
        progress.Update(first ? 1.0 - static_cast<double>(bytes) / first : 1.0,
                        std::to_string(files) + " file(s), " + FormatSize(bytes) + " waiting for upload");
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  call.join();
  progress.Done();
  json j = json::parse(r.body, nullptr, false);
  if (j.is_discarded() || r.status >= 400) {
    std::cerr << "agentctl: " << (j.is_discarded() ? "HTTP " + std::to_string(r.status) : j.value("error", r.body)) << "\n";
    if (r.status == 504 || r.status == 408 || r.body.find("still waiting") != std::string::npos)
      std::cerr << "agentctl: the files stay journaled and their uploads keep being retried; `agentctl stat` shows "
                   "the failing ones and the store's last error, `agentctl flush --timeout S` waits longer\n";
    return 1;
  }
  if (as_json) std::cout << strata::JsonText(j, 2) << "\n";
  else
    std::printf("flushed: nothing under %s waits for upload (%llu file(s) uploaded while waiting)\n",
                j["path"].get<std::string>().c_str(), static_cast<unsigned long long>(j["files"].get<uint64_t>()));
  return 0;
}

int Members(Client& cl, bool as_json) {
  json j = cl.CallJson("GET", "/v1/members", 10);
  if (as_json) return std::cout << strata::JsonText(j, 2) << "\n", 0;
  std::printf("%-28s %-22s %-8s %5s %6s %10s %10s %7s\n", "NAME", "ADDRESS", "STATE", "INC", "HEALTH", "CAPACITY",
              "USED", "RTT");
  for (const json& m : j["members"]) {
    int rtt = m.value("rtt_ms", -1);
    std::printf("%-28s %-22s %-8s %5u %6d %10s %10s %7s%s\n", m["name"].get<std::string>().c_str(),
                m["address"].get<std::string>().c_str(), m["state"].get<std::string>().c_str(),
                m["incarnation"].get<unsigned>(), m["health"].get<int>(),
                FormatSize(m["capacity"].get<uint64_t>()).c_str(), FormatSize(m["used"].get<uint64_t>()).c_str(),
                rtt < 0 ? "-" : (std::to_string(rtt) + "ms").c_str(), m.value("self", false) ? "  (this agent)" : "");
  }
  return 0;
}

int Keys(Client& cl, const std::string& verb, const std::string& key, bool local, bool as_json) {
  if (verb == "list") {
    json j = cl.CallJson("GET", "/v1/keys", 10);
    if (as_json) return std::cout << strata::JsonText(j, 2) << "\n", 0;
    for (const json& k : j["keys"])
      std::printf("%s%s\n", k.get<std::string>().c_str(), k == j["primary"] ? "  (primary)" : "");
    return 0;
  }
  Http r = cl.Call("POST", "/v1/keys?op=" + verb + "&key=" + UriEncode(key, false) + (local ? "&local=1" : ""), 60);
  json j = json::parse(r.body, nullptr, false);
  if (j.is_discarded() || !j.contains("members")) {
    std::cerr << "agentctl: " << (j.is_discarded() ? r.body : j.value("error", r.body)) << "\n";
    return 1;
  }
  if (as_json) std::cout << strata::JsonText(j, 2) << "\n";
  else
    for (auto& [name, res] : j["members"].items()) std::printf("%-28s %s\n", name.c_str(), res.get<std::string>().c_str());
  return r.status >= 400 ? 1 : 0;
}

int Owner(Client& cl, const std::string& path, bool as_json) {
  json j = cl.CallJson("GET", "/v1/owner" + Q(path, false), 30);
  if (as_json) return std::cout << strata::JsonText(j, 2) << "\n", 0;
  std::printf("%s (etag %s, %llu blocks)\n", j["path"].get<std::string>().c_str(), j["etag"].get<std::string>().c_str(),
              static_cast<unsigned long long>(j["blocks"].get<uint64_t>()));
  for (const json& r : j["ranges"])
    std::printf("  blocks %6llu-%-6llu %-28s has %llu of %llu%s\n",
                static_cast<unsigned long long>(r["first_block"].get<uint64_t>()),
                static_cast<unsigned long long>(r["last_block"].get<uint64_t>()), r["owner"].get<std::string>().c_str(),
                static_cast<unsigned long long>(r["owner_has"].get<uint64_t>()),
                static_cast<unsigned long long>(r["blocks"].get<uint64_t>()), r["owner"] == j["self"] ? "  (this agent)" : "");
  return 0;
}

}  // namespace
}  // namespace strata

int main(int argc, char** argv) {
  CLI::App app{"agentctl: drive a running strata-agent (load, evict, stat, flush, pin, unpin, ttl, policy, members, owner, keys)"};
  std::string socket = strata::DefaultSocketPath();
  app.add_option("--socket", socket, "the agent's control socket")->capture_default_str();
  app.set_version_flag("--version", "agentctl " STRATA_VERSION);
  app.require_subcommand(1);
  std::string path, tier, ttl, file;
  bool recursive = false, as_json = false;
  auto* load = app.add_subcommand("load", "fetch a file (or a tree with -r) into the cache");
  auto* evict = app.add_subcommand("evict", "drop a file (or a tree with -r) from the cache (pinned blocks stay)");
  auto* stat = app.add_subcommand("stat", "cache statistics, or what is cached of PATH");
  auto* flush = app.add_subcommand("flush", "wait until files written below PATH (default: all) are in the store");
  auto* pin = app.add_subcommand("pin", "never evict PATH (a tree with -r); refused when it cannot fit; loads it");
  auto* unpin = app.add_subcommand("unpin", "remove the pin of PATH");
  auto* ttl_cmd = app.add_subcommand("ttl", "evict PATH's blocks DURATION from now (\"off\" removes the TTL)");
  auto* pol = app.add_subcommand("policy", "Lua policies: reload, check FILE, status");
  auto* members = app.add_subcommand("members", "the cluster's members: name, address, state, incarnation, health, capacity, RTT");
  auto* owner = app.add_subcommand("owner", "which member owns each block range of PATH");
  auto* keys = app.add_subcommand("keys", "the cluster keyring: list, install KEY, use KEY, remove KEY (on every member)");
  std::string key_verb, key;
  bool key_local = false;
  keys->add_option("VERB", key_verb, "list, install, use or remove")->required()->check(CLI::IsMember({"list", "install", "use", "remove"}));
  keys->add_option("KEY", key, "a base64 32-byte key (install, use, remove)");
  keys->add_flag("--local", key_local, "change this agent's keyring only");
  owner->add_option("PATH", path, "path under the mount point, or relative to the mount root")->required();
  pol->require_subcommand(1);
  auto* pol_reload = pol->add_subcommand("reload", "reload the policy directory (refused as a whole on any error)");
  auto* pol_check = pol->add_subcommand("check", "validate a policy file without loading it (no agent needed)");
  auto* pol_status = pol->add_subcommand("status", "loaded policies, hooks, schedules, last results and errors");
  pol_check->add_option("FILE", file, "a policy file")->required()->check(CLI::ExistingFile);
  double timeout_s = 600;
  flush->add_option("PATH", path, "path under the mount point, or relative to the mount root");
  flush->add_option("--timeout", timeout_s, "seconds to wait before giving up (exit 1)")->capture_default_str()->check(CLI::Range(0.0, 86400.0));
  for (auto* sc : {load, evict, pin, unpin, ttl_cmd})
    sc->add_option("PATH", path, "path under the mount point, or relative to the mount root")->required();
  for (auto* sc : {load, evict, pin, ttl_cmd}) sc->add_flag("-r,--recursive", recursive, "include everything below a directory");
  bool cluster = false;
  load->add_flag("--cluster", cluster, "every cluster member loads the blocks it owns (one progress bar here)");
  stat->add_flag("--cluster", cluster, "with PATH: what each cluster member holds of it");
  load->add_option("--tier", tier, "the tier to load into: mem or ssd (default ssd)")->check(CLI::IsMember({"mem", "ssd"}));
  ttl_cmd->add_option("DURATION", ttl, "e.g. 30m, 12h, 7d; off removes it")->required();
  stat->add_option("PATH", path, "path under the mount point, or relative to the mount root");
  for (auto* sc : {load, evict, stat, flush, pin, unpin, ttl_cmd, pol_reload, pol_check, pol_status, members, owner, keys})
    sc->add_flag("--json", as_json, "machine-readable output");
  CLI11_PARSE(app, argc, argv);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  if (!path.empty() && path[0] == '/') {
    // Resolve symlinks and "..", so /mnt/../mnt/x still lands under the mount.
    char real[PATH_MAX];
    if (::realpath(path.c_str(), real) != nullptr) path = real;
  }
  strata::Client cl(socket);
  if (*load) return strata::Load(cl, path, recursive, tier, cluster, as_json);
  if (*evict) return strata::Evict(cl, path, recursive, as_json);
  if (*flush) return strata::Flush(cl, path, timeout_s, as_json);
  if (*pin) return strata::Pin(cl, path, recursive, as_json);
  if (*unpin) return strata::Simple(cl, "/v1/unpin" + strata::Q(path, false), "unpinned", as_json);
  if (*ttl_cmd)
    return strata::Simple(cl, "/v1/ttl" + strata::Q(path, recursive) + "&ttl=" + strata::UriEncode(ttl, true),
                          ttl == "off" ? "TTL removed from" : "TTL " + ttl + " set on", as_json);
  if (*members) return strata::Members(cl, as_json);
  if (*owner) return strata::Owner(cl, path, as_json);
  if (*keys) {
    if (key_verb != "list" && key.empty()) {
      std::cerr << "agentctl: keys " << key_verb << " needs KEY\n";
      return 1;
    }
    return strata::Keys(cl, key_verb, key, key_local, as_json);
  }
  if (*pol) return strata::Policy(cl, *pol_reload ? "reload" : *pol_check ? "check" : "status", file, as_json);
  return strata::Stat(cl, path, cluster, as_json);
}
