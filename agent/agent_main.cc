// strata-agent: parses the command line and the config file (CLI11) into a
// Config, checks every input into AgentSettings, then runs an Agent (the
// wiring, agent/agent.h). See man/strata-agent.8.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <climits>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <iostream>

#include "agent/agent.h"
#include "agent/base/fd.h"
#include "agent/base/log.h"
#include "agent/base/paths.h"
#include "agent/base/systemd.h"
#include "agent/base/units.h"

namespace strata {
namespace {

struct Config {
  std::string mount_point;
  std::vector<std::string> ufs;
  std::string cache_dir;
  std::string cache_size;
  std::string block_size = "4MiB";
  std::string socket;
  std::string control_group = "strata";
  double metadata_ttl = 60;
  bool attrs_from_listing = false;
  bool foreground = false;
  std::string s3_endpoint, s3_region;
  std::string s3_path_style;  // "", "true", "false"
  double s3_timeout = 30;
  std::string azure_endpoint;
  int s3_retries = 5;
  std::string metrics_addr;
  bool status_paths = false;
  std::string credentials_file;
  int fetch_threads = 16;
  int readahead_blocks = 16;
  double high_watermark = 0.95, low_watermark = 0.85;
  bool allow_other = ::geteuid() == 0;
  int fuse_threads = 16;
  std::string log_level = "info";
  std::string write_mode = "through";
  std::string staging_size;  // default: the cache size
  double staging_full_wait = 0;
  int upload_threads = 4;
  std::string part_size = "16MiB";
  int upload_parallel = 4;
  int list_chunk = 1000;
  uint32_t uid = ::getuid(), gid = ::getgid();
  std::string file_mode = "0644", dir_mode = "0755";
  std::string mem_size;
  bool verify_reads = false;
  std::string scrub_rate = "16MiB";
  std::string policy_dir = "/etc/strata/policies";
  std::string policy_memory = "64MiB";
  uint64_t policy_instructions = 10'000'000;
  int64_t test_clock = -1;
  std::string cluster_bind = "0.0.0.0:7946";
  std::string cluster_advertise;
  std::vector<std::string> joins;
  std::string cluster_key_file;
  std::string cluster_name = "strata";
  std::string node_name;
  std::string peer_timeout = "1s";
  std::string probe_interval = "500ms";
  std::string probe_timeout = "200ms";
  int suspicion_mult = 3;
  std::string gossip_interval = "100ms";
  std::string push_pull_interval = "30s";
  std::string reap_after = "60s";
  bool no_serve = false;
  std::string gateway_addr;
  std::string gateway_credentials;
  std::string gateway_tls_cert, gateway_tls_key;
  std::string gateway_region = "us-east-1";
  std::string gateway_domain;
};

// "0644" -> 0644; only permission bits.
Result<uint32_t> ParseMode(const std::string& s) {
  char* end = nullptr;
  unsigned long v = std::strtoul(s.c_str(), &end, 8);
  if (s.empty() || *end != '\0' || v > 07777) return Status::InvalidArgument("bad mode '" + s + "': octal, e.g. 0644");
  return static_cast<uint32_t>(v);
}

// roff text: backslashes doubled, hyphens escaped, a leading '.' or '\''
// kept from being read as a request.
std::string Roff(const std::string& text) {
  std::string out;
  for (char ch : text) {
    if (ch == '\\') out += "\\e";
    else if (ch == '-') out += "\\-";
    else out += ch;
  }
  if (!out.empty() && (out[0] == '.' || out[0] == '\'')) out.insert(0, "\\&");
  return out;
}

// strata-agent.conf(5), written from the option table itself (make builds
// the page with --man-config), so the page and the parser cannot drift.
std::string ConfigManPage(const CLI::App& app) {
  std::string out = ".TH STRATA-AGENT.CONF 5 \"\" \"strata " STRATA_VERSION "\" \"File Formats\"\n"
      ".SH NAME\nstrata-agent.conf \\- configuration file of strata-agent\n"
      ".SH SYNOPSIS\n.I /etc/strata/agent.conf\n.br\n.I /etc/strata/NAME.conf\n"
      "(for\n.BR strata-agent@NAME.service )\n"
      ".SH DESCRIPTION\n"
      "Every command-line option of\n.BR strata-agent (8)\n"
      "can be set in the file given with\n.BR \\-\\-config ,\n"
      "one per line as\n.IB key \" = \" value\n"
      "(CLI11's config format), the key being the option without its leading dashes.\n"
      "Text may be quoted; a list is written\n.BR \"[\\(dqa\\(dq, \\(dqb\\(dq]\" ;\n"
      "a flag takes\n.BR true \" or \" false .\n"
      "Lines starting with\n.B #\nare comments.\n"
      "An option given on the command line as well wins over the file.\n"
      "Sizes take binary suffixes (\\fB512MiB\\fR, \\fB10GiB\\fR, \\fB1.5G\\fR) or decimal ones (\\fB10GB\\fR);\n"
      "durations take \\fBms\\fR, \\fBs\\fR, \\fBm\\fR, \\fBh\\fR and \\fBd\\fR.\n"
      ".PP\n"
      "The service reads the file at every start;\n.B systemctl reload\n"
      "re-reads the policies and the gateway's credentials only.\n"
      ".SH KEYS\n";
  for (const CLI::Option* o : app.get_options()) {
    if (o->get_lnames().empty() || o->get_group().empty()) continue;  // hidden ones
    const std::string& name = o->get_lnames()[0];
    if (name == "help" || name == "version" || name == "config") continue;
    std::string value = o->get_expected_min() == 0 ? "true" : o->get_type_name();
    if (value.empty()) value = "VALUE";
    out += ".TP\n.B " + Roff(name) + " = \\fI" + Roff(value) + "\\fR\n" + Roff(o->get_description()) + ".\n";
    if (o->get_required()) out += "Required.\n";
    if (!o->get_default_str().empty()) out += "Default:\n.BR " + Roff(o->get_default_str()) + " .\n";
    if (o->get_expected_max() > 1) out += "May be given more than once (a list in the file).\n";
  }
  out += ".SH EXAMPLE\n.nf\n"
         "mount\\-point = \"/mnt/strata\"\n"
         "ufs = [\"s3://my\\-bucket/datasets\", \"ref=file:///nfs/reference\"]\n"
         "cache\\-dir = \"/var/cache/strata\"\n"
         "cache\\-size = \"100GiB\"\n"
         "write\\-mode = \"async\"\n"
         "metrics\\-addr = \"127.0.0.1:9464\"\n"
         ".fi\n"
         ".SH FILES\n.TP\n.I /etc/strata/agent.conf\nthe\n.B strata\\-agent.service\nconfiguration (a conffile of the package)\n"
         ".TP\n.I /etc/strata/agent.env\nenvironment of the service: AWS_* and AZURE_* credentials\n"
         ".TP\n.I /etc/strata/policies/\nthe Lua policies\n"
         ".SH SEE ALSO\n.BR strata\\-agent (8),\n.BR agentctl (1),\n.BR strata\\-policy (7),\n.BR systemd.service (5)\n";
  return out;
}

int Fail(const std::string& msg) {
  std::cerr << "strata-agent: " << msg << "\n";
  return 1;
}

// Forks; the parent waits until the child says it is serving (exit 0) or
// dies / reports failure (exit 1; the child printed why). Returns in the
// child with *ready_fd to write to once mounted.
int Daemonize(int* ready_fd) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return -1;
  pid_t pid = ::fork();
  if (pid < 0) return -1;
  if (pid > 0) {
    ::close(p[1]);
    char c = 0;
    ssize_t n = ::read(p[0], &c, 1);
    ::_exit(n == 1 && c == '1' ? 0 : 1);
  }
  ::close(p[0]);
  ::setsid();
  *ready_fd = p[1];
  return 0;
}

int Run(int argc, char** argv) {
  Config c;
  CLI::App app{"strata-agent: a caching FUSE mount over S3 and local/NFS directories"};
  app.set_config("--config", "", "read options from this file (CLI11 config format: key = value)");
  app.get_formatter()->column_width(38);
  app.set_version_flag("--version", "strata-agent " STRATA_VERSION);
  // A flag given twice (config file, then command line) takes the last value.
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.add_option("--mount-point", c.mount_point, "directory to mount on (must exist, be empty)")->required();
  app.add_option("--ufs", c.ufs,
                 "store to serve: file:///abs/dir, s3://bucket[/prefix] or az://container[/prefix]; the first is the root, "
                 "PATH=URI mounts more stores at sub-paths")
      ->required()
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  app.add_option("--cache-dir", c.cache_dir, "cache directory (block files and the LMDB index)")->required();
  app.add_option("--cache-size", c.cache_size, "cache capacity, e.g. 512MiB, 10GiB")->required();
  app.add_option("--block-size", c.block_size, "cache block size")->capture_default_str();
  app.add_option("--socket", c.socket, "control socket (default /run/strata/agent.sock as root)");
  app.add_option("--control-group", c.control_group,
                 "besides root and the agent's user, members of this group may use the control socket (checked by "
                 "the peer's credentials; the socket file gets the group)")
      ->capture_default_str();
  app.add_option("--metadata-ttl", c.metadata_ttl, "seconds attributes and listings are trusted")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_flag("-f,--foreground", c.foreground, "stay in the foreground (logs to stderr)");
  app.add_option("--credentials-file", c.credentials_file,
                 "store keys as KEY=VALUE lines (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, "
                 "AZURE_STORAGE_*), over the environment; SIGHUP re-reads the AWS ones (a missing file: none)");
  app.add_option("--s3-endpoint", c.s3_endpoint, "S3 endpoint URL (default $AWS_ENDPOINT_URL, else AWS)");
  app.add_option("--s3-region", c.s3_region, "S3 region (default $AWS_REGION, else us-east-1)");
  app.add_option("--s3-path-style", c.s3_path_style,
                 "true: bucket in the URL path (MinIO, Ceph); false: in the host name")
      ->check(CLI::IsMember({"true", "false"}));
  app.add_option("--azure-endpoint", c.azure_endpoint,
                 "Azure Blob endpoint URL, e.g. http://127.0.0.1:10000/devstoreaccount1 for Azurite (default: the "
                 "connection string's BlobEndpoint, else https://ACCOUNT.blob.core.windows.net)");
  app.add_option("--s3-timeout", c.s3_timeout, "seconds one S3 or Azure operation may take, retries included")
      ->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--s3-retries", c.s3_retries, "tries per S3 or Azure request on 5xx / SlowDown / ServerBusy / network errors")
      ->capture_default_str()->check(CLI::Range(1, 20));
  app.add_option("--list-chunk", c.list_chunk,
                 "keys per S3 ListObjectsV2 / Azure List Blobs page (S3 allows 1,000, Azure 5,000; smaller pages "
                 "for stores that choke on large ones)")
      ->capture_default_str()->check(CLI::Range(1, 5000));
  app.add_option("--metrics-addr", c.metrics_addr,
                 "serve /metrics (Prometheus), /healthz, /readyz and the status page /status on HOST:PORT (read-only)");
  app.add_flag("--status-show-paths", c.status_paths,
               "the status page shows log lines whole (default: file names in them are shortened to /…)");
  app.add_option("--fetch-threads", c.fetch_threads, "parallel block fetches")->capture_default_str()->check(CLI::Range(1, 256));
  app.add_flag("--attrs-from-listing", c.attrs_from_listing,
               "S3: take sizes and times from listings and give objects the default --file-mode/--uid/--gid instead "
               "of a HEAD per object for the modes and owners kept in its metadata (fast ls -l of large directories)");
  app.add_option("--readahead-blocks", c.readahead_blocks, "max blocks fetched ahead of a sequential reader")
      ->capture_default_str()->check(CLI::Range(0, 256));
  app.add_option("--high-watermark", c.high_watermark, "eviction starts above this fraction of the cache size")
      ->capture_default_str()->check(CLI::Range(0.1, 1.0));
  app.add_option("--low-watermark", c.low_watermark, "eviction stops below this fraction")
      ->capture_default_str()->check(CLI::Range(0.05, 1.0));
  app.add_option("--allow-other", c.allow_other, "let other users use the mount (default: true as root)");
  app.add_option("--fuse-threads", c.fuse_threads, "max FUSE worker threads")->capture_default_str()->check(CLI::Range(1, 256));
  app.add_option("--write-mode", c.write_mode,
                 "through: close/fsync return once the object is in the store; async: once staged and "
                 "journaled on the cache disk (uploaded in the background); cache-only: never uploaded. "
                 "Per store: --ufs URI,write-mode=MODE")
      ->capture_default_str()->check(CLI::IsMember({"through", "async", "cache-only"}));
  app.add_option("--staging-size", c.staging_size, "room for files being written or waiting for upload (default: --cache-size)");
  app.add_option("--staging-full-wait", c.staging_full_wait,
                 "seconds a write waits for uploads to make room in a full staging area before ENOSPC")
      ->capture_default_str()->check(CLI::Range(0.0, 3600.0));
  app.add_option("--upload-threads", c.upload_threads, "files uploaded at once in the background")
      ->capture_default_str()->check(CLI::Range(1, 64));
  app.add_option("--upload-part-size", c.part_size, "S3 multipart part size (grown to keep under 10,000 parts)")
      ->capture_default_str();
  app.add_option("--upload-parallel", c.upload_parallel, "parts of one upload in flight at once")
      ->capture_default_str()->check(CLI::Range(1, 64));
  app.add_option("--uid", c.uid, "owner of files the store keeps no owner for (default: the agent's)");
  app.add_option("--gid", c.gid, "group of files the store keeps no group for (default: the agent's)");
  app.add_option("--file-mode", c.file_mode, "permissions of files the store keeps none for")->capture_default_str();
  app.add_option("--dir-mode", c.dir_mode, "permissions of directories the store keeps none for")->capture_default_str();
  app.add_option("--mem-size", c.mem_size, "RAM tier above the SSD cache, e.g. 2GiB (default: none)");
  app.add_flag("--verify-reads", c.verify_reads,
               "check SSD blocks against their checksums on every read (default: each chunk on its first read after start)");
  app.add_option("--scrub-rate", c.scrub_rate, "bytes per second the background scrub re-checks cached blocks at (0: off)")
      ->capture_default_str();
  app.add_option("--policy-dir", c.policy_dir, "Lua policies: every *.lua here, loaded in name order (SIGHUP reloads)")
      ->capture_default_str();
  app.add_option("--policy-memory", c.policy_memory, "memory the Lua policies may use")->capture_default_str();
  app.add_option("--policy-instructions", c.policy_instructions, "Lua instructions one policy call may run")
      ->capture_default_str()->check(CLI::Range(uint64_t{10000}, uint64_t{10'000'000'000}));
  app.add_option("--test-clock", c.test_clock,
                 "for tests: the policies' clock starts at this Unix time and moves only by POST /v1/clock?advance=D")
      ->group("");  // hidden
  app.add_option("--cluster-key-file", c.cluster_key_file,
                 "join a cluster: base64 32-byte keys, one per line, the first the primary (no file: a cluster of one)");
  app.add_option("--cluster-bind", c.cluster_bind, "gossip (UDP) and peer streams (TCP) listen here")->capture_default_str();
  app.add_option("--cluster-advertise", c.cluster_advertise, "HOST:PORT the other agents reach this one at (default: the bind address)");
  app.add_option("--join", c.joins, "a member to join: HOST:PORT, dns:NAME (its SRV records, else A/AAAA at the bind port) or dns:NAME:PORT (repeatable)");
  app.add_option("--cluster-name", c.cluster_name, "bound into every packet: clusters sharing a key never mix")->capture_default_str();
  app.add_option("--node-name", c.node_name, "this agent's unique name in the cluster (default: hostname:port)");
  app.add_option("--peer-timeout", c.peer_timeout, "longest wait for a peer's frame before the store serves")->capture_default_str();
  app.add_option("--probe-interval", c.probe_interval, "SWIM: one member probed this often")->capture_default_str();
  app.add_option("--probe-timeout", c.probe_timeout, "SWIM: direct ack awaited this long, then indirect probes")->capture_default_str();
  app.add_option("--suspicion-mult", c.suspicion_mult, "SWIM: a suspect is declared dead after mult * log10(N) probe intervals (shortened by confirmations)")
      ->capture_default_str()->check(CLI::Range(1, 20));
  app.add_option("--gossip-interval", c.gossip_interval, "pending updates go to 3 members this often")->capture_default_str();
  app.add_option("--push-pull-interval", c.push_pull_interval, "full state exchanged with one member this often")->capture_default_str();
  app.add_option("--reap-after", c.reap_after, "dead and departed members are forgotten after this")->capture_default_str();
  app.add_flag("--no-serve", c.no_serve, "read blocks from peers but own none (a short-lived or draining agent)");
  app.add_option("--gateway-addr", c.gateway_addr, "serve the namespace over S3 and REST here, e.g. 0.0.0.0:9000 (default: no gateway)");
  app.add_option("--gateway-credentials", c.gateway_credentials,
                 "JSON: {\"keys\": [{access_key, secret_key, read, write}], \"tokens\": [{token, read, write}]} (SIGHUP re-reads)");
  app.add_option("--gateway-tls-cert", c.gateway_tls_cert, "serve the gateway over TLS with this PEM certificate (chain)");
  app.add_option("--gateway-tls-key", c.gateway_tls_key, "the PEM private key of --gateway-tls-cert");
  app.add_option("--gateway-region", c.gateway_region, "the region S3 clients sign for")->capture_default_str();
  app.add_option("--gateway-domain", c.gateway_domain, "virtual-hosted-style requests: BUCKET.DOMAIN names the bucket");
  app.add_option("--log-level", c.log_level, "debug, info, warn or error")
      ->capture_default_str()->check(CLI::IsMember({"debug", "info", "warn", "error"}));
  for (int i = 1; i < argc; i++)
    if (std::strcmp(argv[i], "--man-config") == 0) {
      std::cout << ConfigManPage(app);
      return 0;
    }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  log::SetJournal(systemd::StderrIsJournal());
  log::SetLevel(c.log_level == "debug" ? log::Level::kDebug
                : c.log_level == "warn" ? log::Level::kWarn
                : c.log_level == "error" ? log::Level::kError
                                         : log::Level::kInfo);

  // --- Inputs, all checked before anything is created.
  Result<uint64_t> cache_size = ParseSize(c.cache_size);
  if (!cache_size.ok()) return Fail("--cache-size: " + cache_size.status().message());
  Result<uint64_t> block_size = ParseSize(c.block_size);
  if (!block_size.ok()) return Fail("--block-size: " + block_size.status().message());
  if (*block_size < 64 * 1024 || *block_size > (256u << 20) || (*block_size & 4095))
    return Fail("--block-size must be a multiple of 4 KiB between 64 KiB and 256 MiB");
  if (*cache_size < *block_size * 4) return Fail("--cache-size must hold at least 4 blocks");
  if (c.low_watermark >= c.high_watermark) return Fail("--low-watermark must be below --high-watermark");
  uint64_t staging_size = *cache_size;
  if (!c.staging_size.empty()) {
    Result<uint64_t> v = ParseSize(c.staging_size);
    if (!v.ok()) return Fail("--staging-size: " + v.status().message());
    staging_size = *v;
  }
  Result<uint64_t> part_size = ParseSize(c.part_size);
  if (!part_size.ok()) return Fail("--upload-part-size: " + part_size.status().message());
  if (*part_size < (5u << 20) || *part_size > (5ull << 30))
    return Fail("--upload-part-size must be between 5 MiB and 5 GiB (S3's limits)");
  Result<uint64_t> scrub_rate = ParseSize(c.scrub_rate);
  if (!scrub_rate.ok()) return Fail("--scrub-rate: " + scrub_rate.status().message());
  uint64_t mem_size = 0;
  if (!c.mem_size.empty()) {
    Result<uint64_t> v = ParseSize(c.mem_size);
    if (!v.ok()) return Fail("--mem-size: " + v.status().message());
    mem_size = *v;
    if (mem_size != 0 && mem_size < *block_size * 4) return Fail("--mem-size must hold at least 4 blocks");
  }
  Result<uint64_t> policy_memory = ParseSize(c.policy_memory);
  if (!policy_memory.ok()) return Fail("--policy-memory: " + policy_memory.status().message());
  if (*policy_memory < (1u << 20)) return Fail("--policy-memory must be at least 1MiB");
  Result<uint32_t> file_mode = ParseMode(c.file_mode);
  if (!file_mode.ok()) return Fail("--file-mode: " + file_mode.status().message());
  Result<uint32_t> dir_mode = ParseMode(c.dir_mode);
  if (!dir_mode.ok()) return Fail("--dir-mode: " + dir_mode.status().message());

  char real[PATH_MAX];
  if (::realpath(c.mount_point.c_str(), real) == nullptr) {
    if (errno == ENOTCONN)
      return Fail("mount point " + c.mount_point + " is a stale FUSE mount left by a crashed agent: run 'fusermount3 -u " +
                  c.mount_point + "'");
    return Fail("mount point " + c.mount_point + ": " + std::strerror(errno));
  }
  std::string mount_point = real;
  Status mp = fuse::CheckMountPoint(mount_point);
  if (!mp.ok()) return Fail(mp.message());

  AgentSettings as;
  as.gateway.addr = c.gateway_addr;
  as.gateway.credentials = c.gateway_credentials;
  as.gateway.tls_cert = c.gateway_tls_cert;
  as.gateway.tls_key = c.gateway_tls_key;
  as.gateway.region = c.gateway_region;
  as.gateway.domain = c.gateway_domain;
  if (!c.gateway_addr.empty() && c.gateway_credentials.empty())
    return Fail("--gateway-addr needs --gateway-credentials (who may read and write)");
  if (!c.gateway_credentials.empty() && ::access(c.gateway_credentials.c_str(), R_OK) != 0)
    return Fail("--gateway-credentials " + c.gateway_credentials + ": cannot be read");
  if (!c.cluster_key_file.empty()) {
    as.cluster = true;
    gossip::ClusterOptions& co = as.cluster_opts;
    co.bind = c.cluster_bind;
    co.advertise = c.cluster_advertise;
    co.joins = c.joins;
    co.key_file = c.cluster_key_file;
    co.cluster_name = c.cluster_name;
    co.node_name = c.node_name;
    struct {
      const char* flag;
      const std::string& text;
      int* out;
    } durations[] = {{"--peer-timeout", c.peer_timeout, &co.peer_timeout_ms},
                     {"--probe-interval", c.probe_interval, &co.membership.probe_interval_ms},
                     {"--probe-timeout", c.probe_timeout, &co.membership.probe_timeout_ms},
                     {"--gossip-interval", c.gossip_interval, &co.membership.gossip_interval_ms},
                     {"--push-pull-interval", c.push_pull_interval, &co.push_pull_interval_ms},
                     {"--reap-after", c.reap_after, &co.membership.reap_ms}};
    for (auto& d : durations) {
      Result<uint64_t> ms = ParseDurationMs(d.text);
      if (!ms.ok() || *ms == 0 || *ms > 86400000) return Fail(std::string(d.flag) + ": a duration like 500ms, 2s or 1m");
      *d.out = static_cast<int>(*ms);
    }
    if (co.membership.probe_timeout_ms >= co.membership.probe_interval_ms)
      return Fail("--probe-timeout must be shorter than --probe-interval");
    co.membership.suspicion_mult = c.suspicion_mult;
    co.membership.meta.serves = c.no_serve ? 0 : 1;
  } else if (!c.joins.empty()) {
    return Fail("--join needs --cluster-key-file: every agent of a cluster holds its key");
  }
  if (!c.credentials_file.empty()) {
    // Read now (no thread runs yet): its variables win over the environment.
    Result<std::map<std::string, std::string>> vars = ufs::ReadCredentialsFile(c.credentials_file);
    if (!vars.ok()) return Fail("--credentials-file: " + vars.status().message());
    for (const auto& [k, v] : *vars) ::setenv(k.c_str(), v.c_str(), 1);
    as.credentials_file = c.credentials_file;
  }
  ufs::S3Options& s3 = as.s3;
  s3 = ufs::S3OptionsFromEnv();
  if (!c.s3_endpoint.empty()) {
    s3.endpoint = c.s3_endpoint;
    s3.path_style = true;
  }
  if (!c.s3_region.empty()) s3.region = c.s3_region;
  if (!c.s3_path_style.empty()) s3.path_style = c.s3_path_style == "true";
  s3.request_timeout_ms = static_cast<int>(c.s3_timeout * 1000);
  s3.max_attempts = c.s3_retries;
  s3.part_size = *part_size;
  s3.upload_parallel = c.upload_parallel;
  s3.list_page = std::min(c.list_chunk, 1000);
  ufs::AzureOptions& az = as.azure;
  az.endpoint = c.azure_endpoint;
  az.request_timeout_ms = s3.request_timeout_ms;
  az.max_attempts = s3.max_attempts;
  az.block_size = s3.part_size;
  az.upload_parallel = s3.upload_parallel;
  if (c.list_chunk != 1000) az.list_page = c.list_chunk;
  az.ca_bundle = s3.ca_bundle;
  if (!az.endpoint.empty() && az.endpoint.find("://") == std::string::npos)
    return Fail("bad Azure endpoint '" + az.endpoint + "': use http://host:port[/account] or https://host");
  if (!s3.endpoint.empty() && s3.endpoint.find("://") == std::string::npos)
    return Fail("bad S3 endpoint '" + s3.endpoint + "': use http://host:port or https://host");

  for (std::string spec : c.ufs) {
    Result<cache::WriteMode> mode = cache::ParseWriteMode(c.write_mode);
    size_t opt = spec.rfind(",write-mode=");
    if (opt != std::string::npos) {
      mode = cache::ParseWriteMode(spec.substr(opt + 12));
      if (!mode.ok()) return Fail("bad --ufs '" + spec + "': " + mode.status().message());
      spec.resize(opt);
    }
    AgentSettings::Store store{"", spec, *mode};
    if (spec.rfind("file://", 0) != 0 && spec.rfind("s3://", 0) != 0 && spec.rfind("az://", 0) != 0) {
      size_t eq = spec.find('=');
      if (eq == std::string::npos)
        return Fail("bad --ufs '" + spec + "': expected file:///abs/dir, s3://bucket[/prefix], az://container[/prefix] or PATH=URI");
      store.path = spec.substr(0, eq);
      store.uri = spec.substr(eq + 1);
    }
    as.stores.push_back(std::move(store));
  }
  as.cache_dir = c.cache_dir;
  as.socket = c.socket.empty() ? DefaultSocketPath() : c.socket;
  as.control_group = c.control_group;
  as.metrics_addr = c.metrics_addr;
  as.status_paths = c.status_paths;
  as.metadata_ttl_s = c.metadata_ttl;
  as.attrs_from_listing = c.attrs_from_listing;
  as.test_clock_s = c.test_clock;

  cache::EngineOptions& eo = as.engine;
  eo.capacity = *cache_size;
  eo.mem_capacity = mem_size;
  eo.block_size = *block_size;
  eo.high_watermark = c.high_watermark;
  eo.low_watermark = c.low_watermark;
  eo.fetch_threads = c.fetch_threads;
  eo.verify_every_read = c.verify_reads;
  eo.scrub_bytes_per_sec = *scrub_rate;

  cache::WriterOptions& wo = as.writer;
  wo.staging_limit = staging_size;
  wo.full_wait_ms = static_cast<int>(c.staging_full_wait * 1000);
  wo.upload_threads = c.upload_threads;
  wo.block_size = *block_size;

  policy::RuntimeOptions& ro = as.policy;
  ro.dir = c.policy_dir;
  ro.limits.memory_bytes = *policy_memory;
  ro.limits.instructions = c.policy_instructions;

  fuse::Options& fo = as.fuse;
  fo.mount_point = mount_point;
  fo.fsname = "strata:" + as.stores[0].uri;
  fo.attr_timeout_s = c.metadata_ttl;
  fo.max_threads = c.fuse_threads;
  fo.max_readahead_blocks = c.readahead_blocks;
  fo.allow_other = c.allow_other;
  fo.uid = c.uid;
  fo.gid = c.gid;
  fo.file_mode = *file_mode;
  fo.dir_mode = *dir_mode;

  // The stores and the cache directory are checked before the agent goes
  // to the background, so their errors reach the terminal.
  std::string as_root_uri = as.stores[0].uri;
  Agent agent(std::move(as));
  Status s = agent.Open();
  if (!s.ok()) return Fail(s.message());
  int ready_fd = -1;
  if (!c.foreground && Daemonize(&ready_fd) != 0) return Fail("cannot fork into the background");
  s = agent.Start();
  if (!s.ok()) return Fail(s.message());
  // Ready once the mount answers (the FUSE loop runs in Serve).
  std::string status = "STATUS=serving " + as_root_uri + " at " + mount_point;
  agent.OnReady([ready_fd, status, log_path = c.cache_dir + "/agent.log"] {
    if (ready_fd >= 0) {
      // Background: from now on logs go to <cache-dir>/agent.log.
      int lf = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      int dn = ::open("/dev/null", O_RDWR);
      if (dn >= 0) ::dup2(dn, STDIN_FILENO), ::dup2(dn, STDOUT_FILENO);
      if (lf >= 0) ::dup2(lf, STDERR_FILENO), log::SetJournal(false);
      if (::write(ready_fd, "1", 1) != 1) LOG_WARN("cannot signal the parent process");
      ::close(ready_fd);
    }
    systemd::Notify("READY=1\n" + status);
  });
  int rc = agent.Serve();
  systemd::Notify("STOPPING=1");
  agent.Stop();
  return rc;
}

}  // namespace
}  // namespace strata

int main(int argc, char** argv) { return strata::Run(argc, argv); }
