// What operators watch: /metrics checked by promtool and scraped by a real
// Prometheus, the Grafana dashboard's queries against what the agent
// exports, and the status page rendered by headless Chromium with its
// figures checked against `agentctl stat --json`.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <thread>

#include "tests/integration/harness.h"

using namespace strata::it;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// An agent with every part that exports figures: a one-node cluster, the
// gateway, the metrics address; a file read cold, then warm.
struct Observed {
  std::unique_ptr<Store> store = MakeStore("file");
  TempDir src, t;
  Agent agent;
  int port = FreePort();
  std::string base;

  explicit Observed(std::vector<std::string> extra = {}) {
    WriteRandomFile(src.path + "/data.bin", 6u << 20, 21);
    store->Put("data.bin", src.path + "/data.bin");
    // base64 of 32 bytes: the cluster key.
    std::ofstream(t.path + "/key") << "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n";
    std::ofstream(t.path + "/creds.json") << "{\"tokens\": [{\"token\": \"observe-token-0123456789\"}]}";
    std::vector<std::string> args = {"--block-size", "1MiB", "--metrics-addr", "127.0.0.1:" + std::to_string(port),
                                     "--cluster-key-file", t.path + "/key", "--cluster-bind",
                                     "127.0.0.1:" + std::to_string(FreePort()), "--node-name", "observed",
                                     "--gateway-addr", "127.0.0.1:" + std::to_string(FreePort()),
                                     "--gateway-credentials", t.path + "/creds.json"};
    args.insert(args.end(), extra.begin(), extra.end());
    agent.Start(store->uri(), args);
    base = "http://127.0.0.1:" + std::to_string(port);
    REQUIRE(Sha256File(agent.mnt("data.bin")) == Sha256File(src.path + "/data.bin"));
    DropPageCache();
    REQUIRE(Sha256File(agent.mnt("data.bin")) == Sha256File(src.path + "/data.bin"));
  }
};

// "name value" of the unlabelled samples and the families' types.
struct Exposition {
  std::map<std::string, std::string> types;
  std::map<std::string, double> values;
  explicit Exposition(const std::string& text) {
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
      if (line.rfind("# TYPE ", 0) == 0) {
        std::istringstream l(line.substr(7));
        std::string name, type;
        l >> name >> type;
        types[name] = type;
      } else if (!line.empty() && line[0] != '#') {
        size_t sp = line.rfind(' ');
        values[line.substr(0, sp)] = std::stod(line.substr(sp + 1));
      }
    }
  }
  // A name as a query may use it: a family, or a histogram's series.
  bool Exports(const std::string& name) const {
    if (types.count(name)) return true;
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      std::string s = suffix;
      if (name.size() > s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0) {
        auto it = types.find(name.substr(0, name.size() - s.size()));
        if (it != types.end() && it->second == "histogram") return true;
      }
    }
    return false;
  }
};

std::string TestOutputDir() {
  std::string dir = std::string(std::getenv("STRATA_BUILD") ? std::getenv("STRATA_BUILD") : "build") + "/test-output";
  fs::create_directories(dir);
  return dir;
}

}  // namespace

TEST_CASE("metrics: promtool clean, hits and misses per tier, scraped by a real Prometheus, every Grafana query "
          "names an exported metric",
          "[metrics]") {
  Observed o;
  std::string text = Run("curl -sS --max-time 10 " + o.base + "/metrics").out;
  // promtool's linter: HELP and TYPE for every family, counters named
  // _total, units in names (_bytes, _seconds), no reserved suffixes.
  {
    std::ofstream(o.t.path + "/metrics.txt") << text;
    CmdResult lint = Run("promtool check metrics < " + o.t.path + "/metrics.txt");
    INFO(lint.out);
    CHECK(lint.code == 0);
    CHECK(lint.out.empty());
  }
  Exposition e(text);
  json st = o.agent.Stat();
  // 6 blocks read cold (the reader waited for the first, readahead had
  // most of the others in flight or done), then again from the SSD tier.
  CHECK(e.values["strata_cache_misses_total"] >= 1);
  CHECK(e.values["strata_cache_hits_total{tier=\"ssd\"}"] >= 6);
  CHECK(e.values["strata_cache_misses_total"] == st["misses"].get<double>());
  CHECK(e.values["strata_read_bytes_total"] == st["bytes_read"].get<double>());
  CHECK(e.values["strata_fetch_seconds_count{source=\"store\"}"] >= 1);
  CHECK(e.values["strata_build_info{version=\"" + std::string(Run("build/strata-agent --version").out.substr(13, 5)) +
                 "\"}"] == 1);
  for (const char* family : {"strata_cache_hits_total", "strata_cache_misses_total", "strata_fetched_bytes_total",
                             "strata_fetch_seconds", "strata_evicted_blocks_total", "strata_write_pending_files",
                             "strata_write_oldest_pending_seconds", "strata_policy_schedule_runs_total",
                             "strata_policy_schedule_failures_total", "strata_gateway_request_seconds",
                             "strata_cluster_members", "strata_peer_fetch_seconds", "strata_healthy"}) {
    INFO(family);
    CHECK(e.types.count(family) == 1);
  }

  // Every query of the dashboard names only metrics the agent exports.
  std::ifstream df("packaging/grafana/strata-dashboard.json");
  json dash = json::parse(df);
  std::set<std::string> named;
  std::regex metric_name("strata_[a-z0-9_]+");
  auto scan = [&](const std::string& expr) {
    for (std::sregex_iterator it(expr.begin(), expr.end(), metric_name), end; it != end; ++it) named.insert(it->str());
  };
  int queries = 0;
  for (const json& p : dash["panels"])
    for (const json& t : p["targets"]) scan(t["expr"].get<std::string>()), queries++;
  for (const json& v : dash["templating"]["list"]) scan(v["definition"].get<std::string>());
  CHECK(queries >= 20);
  for (const std::string& n : named) {
    INFO(n << " is used by the dashboard");
    CHECK(e.Exports(n));
  }
  // The titles the issue asks for.
  std::string titles;
  for (const json& p : dash["panels"]) titles += p["title"].get<std::string>() + "|";
  for (const char* t : {"hit ratio", "Throughput by source", "Evictions", "Uploads", "Cluster members", "Gateway latency"}) {
    INFO(t);
    CHECK(titles.find(t) != std::string::npos);
  }

  // A real Prometheus scrapes the agent; the counter comes back by PromQL.
  int prom_port = FreePort();
  std::ofstream(o.t.path + "/prometheus.yml") << "global:\n  scrape_interval: 1s\nscrape_configs:\n"
                                                 "  - job_name: strata\n    static_configs:\n"
                                                 "      - targets: ['127.0.0.1:" << o.port << "']\n";
  CmdResult conf = Run("promtool check config " + o.t.path + "/prometheus.yml");
  INFO(conf.out);
  REQUIRE(conf.code == 0);
  pid_t prom = ::fork();
  if (prom == 0) {
    std::string cfg = "--config.file=" + o.t.path + "/prometheus.yml";
    std::string data = "--storage.tsdb.path=" + o.t.path + "/tsdb";
    std::string listen = "--web.listen-address=127.0.0.1:" + std::to_string(prom_port);
    int fd = ::open((o.t.path + "/prometheus.log").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, 1), ::dup2(fd, 2);
    ::execlp("prometheus", "prometheus", cfg.c_str(), data.c_str(), listen.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  std::string want = std::to_string(st["bytes_read"].get<uint64_t>());
  std::string got;
  for (int i = 0; i < 120 && got != want; i++) {
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
    CmdResult q = Run("curl -s --max-time 5 'http://127.0.0.1:" + std::to_string(prom_port) +
                      "/api/v1/query?query=strata_read_bytes_total'");
    json r = json::parse(q.out, nullptr, false);
    if (!r.is_discarded() && r.value("status", "") == "success" && !r["data"]["result"].empty())
      got = r["data"]["result"][0]["value"][1].get<std::string>();
  }
  ::kill(prom, SIGTERM);
  ::waitpid(prom, nullptr, 0);
  INFO(Run("tail -n 20 " + o.t.path + "/prometheus.log").out);
  CHECK(got == want);
  o.agent.Stop();
}

TEST_CASE("the status page in headless Chromium: its figures are agentctl stat's, no file names, a screenshot",
          "[status]") {
  TempDir pol;
  std::ofstream(pol.path + "/hourly.lua") << "strata.schedule(\"@hourly\", function() end)\n";
  Observed o({"--policy-dir", pol.path});
  // A broken policy, refused at reload: a logged error whose text names the
  // file.
  std::ofstream(pol.path + "/broken.lua") << "this is not lua (\n";
  CHECK(o.agent.Ctl("policy reload").code != 0);
  std::string page = o.base + "/status";
  // No external assets: no stylesheet, script, image or font is loaded;
  // the script fetches status.json from the same origin only.
  std::string html = Run("curl -sS --max-time 10 " + page).out;
  CHECK(html.find("<title>Strata agent</title>") != std::string::npos);
  for (const char* ref : {"<link", "src=", "url(", "@import", "https://"}) {
    INFO(ref);
    CHECK(html.find(ref) == std::string::npos);
  }

  std::string chromium = "chromium --headless=new --no-sandbox --disable-gpu --hide-scrollbars "
                         "--virtual-time-budget=5000 --window-size=1280,1000 ";
  CmdResult dom = Run(chromium + "--dump-dom " + page + " 2>/dev/null");
  REQUIRE(dom.code == 0);
  REQUIRE(dom.out.find("data-loaded=\"1\"") != std::string::npos);  // the script ran and rendered
  std::map<std::string, std::string> fig;
  std::regex attr("data-figure=\"([a-z_]+)\" data-value=\"([^\"]*)\"");
  for (std::sregex_iterator it(dom.out.begin(), dom.out.end(), attr), end; it != end; ++it)
    fig[(*it)[1].str()] = (*it)[2].str();
  json st = o.agent.Stat();  // after the page: nothing read in between
  INFO(dom.out.substr(0, 4000));
  CHECK(fig["healthy"] == "1");
  CHECK(fig["bytes_read"] == std::to_string(st["bytes_read"].get<uint64_t>()));
  CHECK(std::abs(std::stod(fig["hit_ratio"]) - st["hit_ratio"].get<double>()) < 1e-9);
  for (const json& t : st["tiers"]) {
    std::string tier = t["tier"];
    CHECK(fig["tier_used_" + tier] == std::to_string(t["used_bytes"].get<uint64_t>()));
    CHECK(fig["tier_capacity_" + tier] == std::to_string(t["capacity_bytes"].get<uint64_t>()));
    CHECK(fig["tier_hits_" + tier] == std::to_string(t["hits"].get<uint64_t>()));
  }
  CHECK(fig["source_store"] == std::to_string(st["fetched_bytes_by_source"]["store"].get<uint64_t>()));
  CHECK(fig["pending_files"] == std::to_string(st["writes"]["pending_files"].get<uint64_t>()));
  CHECK(fig["member"] == "observed");
  CHECK(fig.count("next_run") == 1);  // the hourly schedule, with its next run
  CHECK(dom.out.find("data-points=\"0\"") == std::string::npos);  // the chart has the reads in it
  // The broken policy's error is listed, its path shortened.
  CHECK(dom.out.find("reload refused") != std::string::npos);
  CHECK(dom.out.find(pol.path) == std::string::npos);

  std::string shot = TestOutputDir() + "/status-page.png";
  fs::remove(shot);
  CmdResult s = Run(chromium + "--screenshot=" + shot + " " + page + " 2>/dev/null");
  CHECK(s.code == 0);
  CHECK(fs::exists(shot));
  CHECK(fs::file_size(shot) > 10000);
  WARN("status page screenshot: " << shot);
  o.agent.Stop();
}
