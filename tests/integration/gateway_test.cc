// The S3 / REST gateway with real clients: the AWS CLI (Debian's awscli) and
// curl, against an agent over a real store; bytes compared through the
// gateway, the mount and the store itself.
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <thread>

#include "tests/integration/harness.h"

using namespace strata::it;
using namespace std::chrono_literals;

namespace {

const char* const kAk = "AKIDSTRATATEST";
const char* const kSk = "strata/test+secret=0123456789";
const char* const kRoAk = "AKIDREADONLY";
const char* const kRoSk = "read-only-secret";
const char* const kToken = "tok-0123456789abcdef";

struct Gw {
  std::unique_ptr<Store> store = MakeStore("s3");
  TempDir dir;
  Agent agent;
  int port = FreePort();

  explicit Gw(std::vector<std::string> more = {}) {
    std::ofstream(dir.path + "/creds.json")
        << "{\"keys\": [{\"access_key\": \"" << kAk << "\", \"secret_key\": \"" << kSk << "\"},"
        << " {\"access_key\": \"" << kRoAk << "\", \"secret_key\": \"" << kRoSk << "\", \"write\": []}],"
        << " \"tokens\": [{\"token\": \"" << kToken << "\", \"write\": [\"/data/rest\"]}]}";
    // The bucket "data" is the store's directory data/.
    WriteRandomFile(dir.path + "/seed", 100, 1);
    store->Put("data/seed.bin", dir.path + "/seed");
    std::vector<std::string> args = store->agent_args();
    args.insert(args.end(), {"--gateway-addr", "127.0.0.1:" + std::to_string(port), "--gateway-credentials",
                             dir.path + "/creds.json"});
    args.insert(args.end(), more.begin(), more.end());
    agent.Start(store->uri(), args);
  }
  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port); }
  // The AWS CLI with the full-access key (or another).
  CmdResult Aws(const std::string& args, const char* ak = kAk, const char* sk = kSk) const {
    return Run(std::string("AWS_ACCESS_KEY_ID=") + ak + " AWS_SECRET_ACCESS_KEY=" + ShellQuote(sk) +
               " AWS_DEFAULT_REGION=us-east-1 AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null "
               "AWS_EC2_METADATA_DISABLED=true /usr/bin/aws --endpoint-url " + endpoint() + " " + args);
  }
  std::string Curl(const std::string& args) const {
    return Run("curl -s -m 30 " + args).out;
  }
};

}  // namespace

TEST_CASE("the AWS CLI copies files up and down through the gateway; the mount and the store see them", "[gateway][s3]") {
  Gw g;
  TempDir src;
  struct F {
    std::string name;
    uint64_t size;
  };
  std::vector<F> files = {{"empty", 0}, {"one", 1}, {"five", 5u << 20}, {"big", 20u << 20}};  // big: multipart-sized
  for (size_t i = 0; i < files.size(); i++) WriteRandomFile(src.path + "/" + files[i].name, files[i].size, 10 + i);
  for (const F& f : files) {
    // Single PUTs (multipart comes with the multipart API).
    CmdResult r = g.Aws("s3 cp --only-show-errors " + src.path + "/" + f.name + " s3://data/up/" + f.name +
                        " --expected-size " + std::to_string(f.size));
    INFO(r.out);
    REQUIRE(r.code == 0);
  }
  for (const F& f : files) {
    std::string want = ReadFile(src.path + "/" + f.name);
    CHECK(ReadFile(g.agent.mnt("data/up/" + f.name)) == want);  // the mount on this host, at once
    CHECK(g.store->Fetch("data/up/" + f.name) == want);          // the store (through mode)
    CmdResult r = g.Aws("s3 cp --only-show-errors s3://data/up/" + f.name + " " + src.path + "/" + f.name + ".back");
    INFO(r.out);
    REQUIRE(r.code == 0);
    CHECK(ReadFile(src.path + "/" + f.name + ".back") == want);
  }
  CmdResult ls = g.Aws("s3 ls --recursive s3://data/");
  REQUIRE(ls.code == 0);
  for (const F& f : files) CHECK(ls.out.find("up/" + f.name + "\n") != std::string::npos);
  CHECK(ls.out.find("seed.bin") != std::string::npos);
  CHECK(ls.out.find(".strata-put") == std::string::npos);
  // A file written through the mount is an object at once.
  WriteRandomFile(g.agent.mnt("data/from-mount.bin"), 3000, 5);
  CmdResult got = g.Aws("s3 cp --only-show-errors s3://data/from-mount.bin " + src.path + "/fm");
  REQUIRE(got.code == 0);
  CHECK(ReadFile(src.path + "/fm") == ReadFile(g.agent.mnt("data/from-mount.bin")));
  // sync of a tree, then listing with a delimiter and pages of 2.
  Run("mkdir -p " + src.path + "/tree/d0 " + src.path + "/tree/d1");
  for (int i = 0; i < 5; i++) WriteRandomFile(src.path + "/tree/d" + std::to_string(i % 2) + "/f" + std::to_string(i), 1000 + i, 20 + i);
  CmdResult sync = g.Aws("s3 sync --only-show-errors " + src.path + "/tree s3://data/tree");
  INFO(sync.out);
  REQUIRE(sync.code == 0);
  CmdResult page = g.Aws("s3api list-objects-v2 --bucket data --prefix tree/ --page-size 2 --query 'Contents[].Key' --output text");
  INFO(page.out);
  REQUIRE(page.code == 0);
  CHECK(page.out.find("tree/d0/f0") != std::string::npos);
  CHECK(page.out.find("tree/d1/f3") != std::string::npos);
  CmdResult top = g.Aws("s3api list-objects-v2 --bucket data --prefix tree/ --delimiter / --query 'CommonPrefixes[].Prefix' --output text");
  CHECK(top.out == "tree/d0/\ttree/d1/\n");
  for (int i = 0; i < 5; i++) {
    std::string rel = "tree/d" + std::to_string(i % 2) + "/f" + std::to_string(i);
    CHECK(g.store->Fetch("data/" + rel) == ReadFile(src.path + "/" + rel));
  }
  // Delete: gone from the mount and the store.
  REQUIRE(g.Aws("s3 rm --only-show-errors s3://data/up/one").code == 0);
  CHECK_FALSE(g.store->Fetch("data/up/one").has_value());
  CHECK(access(g.agent.mnt("data/up/one").c_str(), F_OK) != 0);
}

TEST_CASE("ranges, conditions, presigned URLs and copies through the gateway", "[gateway][s3]") {
  Gw g;
  TempDir t;
  WriteRandomFile(t.path + "/obj", 100000, 3);
  const std::string data = ReadFile(t.path + "/obj");
  REQUIRE(g.Aws("s3 cp --only-show-errors " + t.path + "/obj s3://data/obj").code == 0);
  CmdResult head = g.Aws("s3api head-object --bucket data --key obj --query ETag --output text");
  REQUIRE(head.code == 0);
  std::string etag = head.out.substr(0, head.out.find('\n'));
  REQUIRE(etag.size() > 2);
  CHECK(g.Aws("s3api get-object --bucket data --key obj --range bytes=1000-1999 " + t.path + "/part").code == 0);
  CHECK(ReadFile(t.path + "/part") == data.substr(1000, 1000));
  CHECK(g.Aws("s3api get-object --bucket data --key obj --range bytes=-10 " + t.path + "/tail").code == 0);
  CHECK(ReadFile(t.path + "/tail") == data.substr(data.size() - 10));
  CmdResult bad = g.Aws("s3api get-object --bucket data --key obj --range bytes=200000-300000 " + t.path + "/x");
  CHECK(bad.out.find("InvalidRange") != std::string::npos);
  CmdResult pre = g.Aws("s3api get-object --bucket data --key obj --if-match '\"0000\"' " + t.path + "/x");
  CHECK(pre.out.find("PreconditionFailed") != std::string::npos);
  CHECK(g.Aws("s3api get-object --bucket data --key obj --if-match '" + etag + "' " + t.path + "/y").code == 0);
  CmdResult nm = g.Aws("s3api get-object --bucket data --key obj --if-none-match '" + etag + "' " + t.path + "/z");
  CHECK(nm.out.find("304") != std::string::npos);
  CmdResult missing = g.Aws("s3api head-object --bucket data --key nothing-here");
  CHECK(missing.out.find("404") != std::string::npos);

  // Presigned: curl fetches the bytes; an expired one is refused.
  CmdResult url = g.Aws("s3 presign s3://data/obj --expires-in 300");
  REQUIRE(url.code == 0);
  std::string u = url.out.substr(0, url.out.find('\n'));
  Run("curl -s -f -o " + t.path + "/pre " + ShellQuote(u));
  CHECK(ReadFile(t.path + "/pre") == data);
  CmdResult short_url = g.Aws("s3 presign s3://data/obj --expires-in 1");
  std::this_thread::sleep_for(2100ms);
  std::string expired = g.Curl(ShellQuote(short_url.out.substr(0, short_url.out.find('\n'))));
  CHECK(expired.find("Request has expired") != std::string::npos);
  std::string tampered = u;
  tampered.replace(tampered.find("/obj"), 4, "/seed.bin");
  CHECK(g.Curl(ShellQuote(tampered)).find("SignatureDoesNotMatch") != std::string::npos);

  // Copy: a new object with the same bytes; a copy onto itself without a change is refused.
  REQUIRE(g.Aws("s3 cp --only-show-errors s3://data/obj s3://data/copies/obj2").code == 0);
  CHECK(g.store->Fetch("data/copies/obj2") == data);
  CHECK(ReadFile(g.agent.mnt("data/copies/obj2")) == data);
}

TEST_CASE("wrong secrets, missing rights, bad digests and bad paths change nothing", "[gateway][s3]") {
  Gw g;
  TempDir t;
  WriteRandomFile(t.path + "/f", 5000, 4);
  CmdResult wrong = g.Aws("s3 ls s3://data/", kAk, "not-the-secret");
  CHECK(wrong.code != 0);
  CHECK(wrong.out.find("SignatureDoesNotMatch") != std::string::npos);
  CmdResult unknown = g.Aws("s3 ls s3://data/", "AKIDNOBODY", "x");
  CHECK(unknown.out.find("InvalidAccessKeyId") != std::string::npos);
  // The read-only key reads, and may not write.
  CHECK(g.Aws("s3 ls s3://data/", kRoAk, kRoSk).code == 0);
  CmdResult denied = g.Aws("s3 cp --only-show-errors " + t.path + "/f s3://data/ro-attempt", kRoAk, kRoSk);
  CHECK(denied.out.find("AccessDenied") != std::string::npos);
  CHECK_FALSE(g.store->Fetch("data/ro-attempt").has_value());
  // A Content-MD5 that does not match: BadDigest, and the old object stays.
  REQUIRE(g.Aws("s3 cp --only-show-errors " + t.path + "/f s3://data/keep").code == 0);
  WriteRandomFile(t.path + "/g", 5000, 5);
  CmdResult digest = g.Aws("s3api put-object --bucket data --key keep --body " + t.path +
                           "/g --content-md5 AAAAAAAAAAAAAAAAAAAAAA==");
  CHECK(digest.out.find("BadDigest") != std::string::npos);
  CHECK(g.store->Fetch("data/keep") == ReadFile(t.path + "/f"));
  CHECK(ReadFile(g.agent.mnt("data/keep")) == ReadFile(t.path + "/f"));
  // Counted: the refusals by code, the operations by name.
  std::string metrics = Run("curl -s --unix-socket " + ShellQuote(g.agent.socket()) + " http://localhost/metrics").out;
  CHECK(metrics.find("strata_gateway_errors_total{code=\"SignatureDoesNotMatch\"} 1\n") != std::string::npos);
  CHECK(metrics.find("strata_gateway_errors_total{code=\"BadDigest\"} 1\n") != std::string::npos);
  CHECK(metrics.find("strata_gateway_requests_total{op=\"PutObject\"} 3\n") != std::string::npos);
  CHECK(metrics.find("strata_gateway_request_seconds_count{op=\"PutObject\"} 3\n") != std::string::npos);
  // Anonymous and traversal attempts.
  CHECK(g.Curl(g.endpoint() + "/data/seed.bin").find("AccessDenied") != std::string::npos);
  std::string trav = g.Curl("--path-as-is " + g.endpoint() + "/data/../../etc/passwd");
  CHECK(trav.find("<Code>") != std::string::npos);
  CHECK(trav.find("root:") == std::string::npos);
  std::string enc = g.Curl("--path-as-is " + g.endpoint() + "/data/%2e%2e/%2e%2e/etc/passwd");
  CHECK(enc.find("root:") == std::string::npos);
  CHECK(enc.find("<Code>") != std::string::npos);
  // A client that sends its headers slowly is cut off, with a 400.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(g.port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
  const std::string partial = "GET /data/seed.bin HTTP/1.1\r\nHost: x\r\n";
  REQUIRE(::send(fd, partial.data(), partial.size(), 0) == static_cast<ssize_t>(partial.size()));
  auto t0 = std::chrono::steady_clock::now();
  std::string answer;
  char buf[4096];
  timeval tv{30, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  for (ssize_t n; (n = ::recv(fd, buf, sizeof(buf), 0)) > 0;) answer.append(buf, static_cast<size_t>(n));
  ::close(fd);
  CHECK(answer.find("400") != std::string::npos);
  CHECK(std::chrono::steady_clock::now() - t0 < 25s);
}

TEST_CASE("the REST file API: bearer tokens, upload, download, list, delete", "[gateway][s3]") {
  Gw g;
  TempDir t;
  WriteRandomFile(t.path + "/r", 70000, 6);
  const std::string auth = "-H 'Authorization: Bearer " + std::string(kToken) + "' ";
  const std::string base = g.endpoint() + "/api/v1/files";
  CHECK(g.Curl("-o /dev/null -w '%{http_code}' " + base + "/data/seed.bin") == "401");
  CHECK(g.Curl("-o /dev/null -w '%{http_code}' -H 'Authorization: Bearer nope-nope-nope-nope' " + base + "/data/seed.bin") == "401");
  CHECK(g.Curl("-o /dev/null -w '%{http_code}' " + auth + "-T " + t.path + "/r " + base + "/data/rest/r.bin") == "201");
  CHECK(g.store->Fetch("data/rest/r.bin") == ReadFile(t.path + "/r"));
  CHECK(g.Curl(auth + base + "/data/rest/r.bin") == ReadFile(t.path + "/r"));
  CHECK(g.Curl(auth + "-r 10-19 " + base + "/data/rest/r.bin") == ReadFile(t.path + "/r").substr(10, 10));
  std::string list = g.Curl(auth + "'" + base + "/data/rest?list'");
  CHECK(list.find("\"name\":\"r.bin\"") != std::string::npos);
  // The token may write only below /data/rest.
  CHECK(g.Curl("-o /dev/null -w '%{http_code}' " + auth + "-T " + t.path + "/r " + base + "/data/elsewhere") == "403");
  CHECK_FALSE(g.store->Fetch("data/elsewhere").has_value());
  CHECK(g.Curl("-o /dev/null -w '%{http_code}' -X DELETE " + auth + base + "/data/rest/r.bin") == "204");
  CHECK_FALSE(g.store->Fetch("data/rest/r.bin").has_value());
}

TEST_CASE("multipart uploads: parts, copies of parts, the checks at completion, abort", "[gateway][s3]") {
  Gw g;
  TempDir t;
  WriteRandomFile(t.path + "/p1", 5u << 20, 31);
  WriteRandomFile(t.path + "/p2", 1000, 32);
  auto field = [](const std::string& out) { return out.substr(0, out.find_first_of("\t\n")); };
  CmdResult create = g.Aws("s3api create-multipart-upload --bucket data --key mp/obj --query UploadId --output text");
  REQUIRE(create.code == 0);
  const std::string id = field(create.out);
  CmdResult e1 = g.Aws("s3api upload-part --bucket data --key mp/obj --upload-id " + id + " --part-number 1 --body " + t.path + "/p1 --query ETag --output text");
  CmdResult e2 = g.Aws("s3api upload-part --bucket data --key mp/obj --upload-id " + id + " --part-number 2 --body " + t.path + "/p2 --query ETag --output text");
  REQUIRE(e1.code == 0);
  REQUIRE(e2.code == 0);
  CmdResult parts = g.Aws("s3api list-parts --bucket data --key mp/obj --upload-id " + id + " --query 'Parts[].Size' --output text");
  CHECK(parts.out == "5242880\t1000\n");
  CmdResult uploads = g.Aws("s3api list-multipart-uploads --bucket data --query 'Uploads[].Key' --output text");
  CHECK(uploads.out.find("mp/obj") != std::string::npos);
  auto complete = [&](const std::string& json) {
    std::ofstream(t.path + "/c.json") << json;
    return g.Aws("s3api complete-multipart-upload --bucket data --key mp/obj --upload-id " + id +
                 " --multipart-upload file://" + t.path + "/c.json");
  };
  const std::string p1 = "{\"PartNumber\": 1, \"ETag\": " + std::string("\"\\\"") + field(e1.out).substr(1, 32) + "\\\"\"}";
  const std::string p2 = "{\"PartNumber\": 2, \"ETag\": " + std::string("\"\\\"") + field(e2.out).substr(1, 32) + "\\\"\"}";
  // Out of order, a wrong ETag, a small part before the last: refused, the upload stays.
  CHECK(complete("{\"Parts\": [" + p2 + ", " + p1 + "]}").out.find("InvalidPartOrder") != std::string::npos);
  CHECK(complete("{\"Parts\": [{\"PartNumber\": 1, \"ETag\": \"\\\"00000000000000000000000000000000\\\"\"}]}").out.find("InvalidPart") != std::string::npos);
  CmdResult small = g.Aws("s3api upload-part --bucket data --key mp/obj --upload-id " + id + " --part-number 3 --body " + t.path + "/p2 --query ETag --output text");
  const std::string p3 = "{\"PartNumber\": 3, \"ETag\": " + std::string("\"\\\"") + field(small.out).substr(1, 32) + "\\\"\"}";
  CHECK(complete("{\"Parts\": [" + p1 + ", " + p2 + ", " + p3 + "]}").out.find("EntityTooSmall") != std::string::npos);
  CHECK_FALSE(g.store->Fetch("data/mp/obj").has_value());
  CmdResult done = complete("{\"Parts\": [" + p1 + ", " + p2 + "]}");
  INFO(done.out);
  REQUIRE(done.code == 0);
  const std::string want = ReadFile(t.path + "/p1") + ReadFile(t.path + "/p2");
  CHECK(g.store->Fetch("data/mp/obj") == want);
  CHECK(ReadFile(g.agent.mnt("data/mp/obj")) == want);
  CHECK(g.Aws("s3api list-parts --bucket data --key mp/obj --upload-id " + id).out.find("NoSuchUpload") != std::string::npos);
  // UploadPartCopy: a range of the object just made, as part 1 of another.
  CmdResult c2 = g.Aws("s3api create-multipart-upload --bucket data --key mp/copy --query UploadId --output text");
  const std::string id2 = field(c2.out);
  CmdResult pc = g.Aws("s3api upload-part-copy --bucket data --key mp/copy --upload-id " + id2 +
                       " --part-number 1 --copy-source data/mp/obj --copy-source-range bytes=100-5999 --query CopyPartResult.ETag --output text");
  REQUIRE(pc.code == 0);
  const std::string pc1 = "{\"PartNumber\": 1, \"ETag\": " + std::string("\"\\\"") + field(pc.out).substr(1, 32) + "\\\"\"}";
  std::ofstream(t.path + "/c2.json") << "{\"Parts\": [" << pc1 << "]}";
  REQUIRE(g.Aws("s3api complete-multipart-upload --bucket data --key mp/copy --upload-id " + id2 + " --multipart-upload file://" + t.path + "/c2.json").code == 0);
  CHECK(g.store->Fetch("data/mp/copy") == want.substr(100, 5900));
  // Abort: the parts are gone, nothing was stored.
  CmdResult c3 = g.Aws("s3api create-multipart-upload --bucket data --key mp/aborted --query UploadId --output text");
  const std::string id3 = field(c3.out);
  REQUIRE(g.Aws("s3api upload-part --bucket data --key mp/aborted --upload-id " + id3 + " --part-number 1 --body " + t.path + "/p2").code == 0);
  CHECK(g.Aws("s3api abort-multipart-upload --bucket data --key mp/aborted --upload-id " + id3).code == 0);
  CHECK(g.Aws("s3api list-parts --bucket data --key mp/aborted --upload-id " + id3).out.find("NoSuchUpload") != std::string::npos);
  CHECK_FALSE(g.store->Fetch("data/mp/aborted").has_value());
}

TEST_CASE("a PUT larger than the staging area gets SlowDown and changes nothing", "[gateway][s3]") {
  Gw g({"--staging-size", "8MiB"});
  TempDir t;
  WriteRandomFile(t.path + "/huge", 12u << 20, 41);
  CmdResult r = g.Aws("s3api put-object --bucket data --key huge --body " + t.path + "/huge");
  INFO(r.out);
  CHECK(r.code != 0);
  CHECK(r.out.find("SlowDown") != std::string::npos);
  CHECK_FALSE(g.store->Fetch("data/huge").has_value());
  CHECK(access(g.agent.mnt("data/huge").c_str(), F_OK) != 0);
  // Room again afterwards: a small PUT goes through.
  WriteRandomFile(t.path + "/small", 1000, 42);
  CHECK(g.Aws("s3api put-object --bucket data --key small --body " + t.path + "/small").code == 0);
  CHECK(g.store->Fetch("data/small") == ReadFile(t.path + "/small"));
}

TEST_CASE("the AWS SDK for JavaScript v3: PUT (Buffer and aws-chunked stream), GET, ranges, conditions, copy, multipart, pages, DeleteObjects", "[gateway][s3]") {
  Gw g;
  CmdResult r = Run(std::string("AWS_ACCESS_KEY_ID=") + kAk + " AWS_SECRET_ACCESS_KEY=" + ShellQuote(kSk) +
                    " node tests/s3/sdk_check.js " + g.endpoint() + " data");
  INFO(r.out);
  CHECK(r.code == 0);
  CHECK(r.out.find("all steps passed") != std::string::npos);
  // What the SDK stored is what the store holds.
  CHECK(g.store->Fetch("data/sdk/small").has_value());
  CHECK(g.store->Fetch("data/sdk/stream")->size() == 3u * 1024 * 1024 + 17);
  CHECK_FALSE(g.store->Fetch("data/sdk/mp").has_value());
}

TEST_CASE("rclone copies a tree through the gateway and checks it byte for byte", "[gateway][s3]") {
  Gw g;
  TempDir src;
  Run("mkdir -p " + src.path + "/t/a/b");
  WriteRandomFile(src.path + "/t/top.bin", 3000, 51);
  WriteRandomFile(src.path + "/t/a/mid.bin", 100000, 52);
  WriteRandomFile(src.path + "/t/a/b/large.bin", 12u << 20, 53);  // multipart with a 5 MiB cutoff
  const std::string env = std::string("RCLONE_CONFIG_GW_TYPE=s3 RCLONE_CONFIG_GW_PROVIDER=Other RCLONE_CONFIG_GW_ACCESS_KEY_ID=") +
                          kAk + " RCLONE_CONFIG_GW_SECRET_ACCESS_KEY=" + ShellQuote(kSk) +
                          " RCLONE_CONFIG_GW_ENDPOINT=" + g.endpoint() + " RCLONE_CONFIG_GW_REGION=us-east-1 RCLONE_CONFIG=/dev/null "
                          "env -u AWS_CA_BUNDLE ";  // rclone refuses a CA bundle for plain HTTP
  CmdResult copy = Run(env + "timeout 120 rclone copy --s3-upload-cutoff 5M --s3-chunk-size 5M " + src.path + "/t gw:data/rc");
  INFO(copy.out);
  REQUIRE(copy.code == 0);
  CmdResult check = Run(env + "timeout 120 rclone check --download " + src.path + "/t gw:data/rc");
  INFO(check.out);
  CHECK(check.code == 0);
  CHECK(g.store->Fetch("data/rc/a/b/large.bin") == ReadFile(src.path + "/t/a/b/large.bin"));
  CHECK(ReadFile(g.agent.mnt("data/rc/a/mid.bin")) == ReadFile(src.path + "/t/a/mid.bin"));
  CmdResult ls = Run(env + "timeout 60 rclone lsf -R gw:data/rc | sort");
  CHECK(ls.out == "a/\na/b/\na/b/large.bin\na/mid.bin\ntop.bin\n");
}

TEST_CASE("s3fs-fuse mounts the gateway: a tree copied in is read back there and through Strata's own mount", "[gateway][s3]") {
  Gw g;
  TempDir t;
  Run("mkdir -p " + t.path + "/s3fs " + t.path + "/src/d/e");
  std::ofstream(t.path + "/passwd") << kAk << ":" << kSk << "\n";
  Run("chmod 600 " + t.path + "/passwd");
  WriteRandomFile(t.path + "/src/one.bin", 5000, 61);
  WriteRandomFile(t.path + "/src/d/two.bin", 300000, 62);
  WriteRandomFile(t.path + "/src/d/e/three.bin", 7u << 20, 63);
  CmdResult m = Run("s3fs data " + t.path + "/s3fs -o url=" + g.endpoint() + " -o use_path_request_style -o passwd_file=" +
                    t.path + "/passwd -o endpoint=us-east-1 -o sigv4 -o retries=1 -o connect_timeout=10 -o readwrite_timeout=30");
  INFO(m.out);
  REQUIRE(m.code == 0);
  bool mounted = false;
  for (int i = 0; i < 100 && !mounted; i++) {
    mounted = IsMounted(t.path + "/s3fs");
    if (!mounted) std::this_thread::sleep_for(100ms);
  }
  REQUIRE(mounted);
  CmdResult cp = Run("(cp -a " + t.path + "/src " + t.path + "/s3fs/fromfs && sync)");
  INFO(cp.out);
  CHECK(cp.code == 0);
  for (const char* rel : {"one.bin", "d/two.bin", "d/e/three.bin"}) {
    const std::string want = ReadFile(t.path + "/src/" + rel);
    CHECK(ReadFile(t.path + "/s3fs/fromfs/" + rel) == want);              // back through s3fs
    CHECK(ReadFile(g.agent.mnt(std::string("data/fromfs/") + rel)) == want);  // through Strata's mount
    CHECK(g.store->Fetch(std::string("data/fromfs/") + rel) == want);         // in the store
  }
  Run("fusermount3 -u " + t.path + "/s3fs || fusermount -u " + t.path + "/s3fs || umount -l " + t.path + "/s3fs");
}

TEST_CASE("the gateway over TLS: curl and the AWS CLI with the certificate, plain HTTP refused", "[gateway][s3]") {
  TempDir tls;
  CmdResult gen = Run("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout " +
                      tls.path + "/key.pem -out " + tls.path + "/cert.pem");
  INFO(gen.out);
  REQUIRE(gen.code == 0);
  Gw g({"--gateway-tls-cert", tls.path + "/cert.pem", "--gateway-tls-key", tls.path + "/key.pem"});
  const std::string https = "https://127.0.0.1:" + std::to_string(g.port);
  const std::string auth = "-H 'Authorization: Bearer " + std::string(kToken) + "' ";
  TempDir t;
  WriteRandomFile(t.path + "/f", 200000, 71);
  CHECK(g.Curl("--cacert " + tls.path + "/cert.pem -o /dev/null -w '%{http_code}' " + auth + "-T " + t.path + "/f " + https +
               "/api/v1/files/data/rest/tls.bin") == "201");
  CHECK(g.Curl("--cacert " + tls.path + "/cert.pem " + auth + https + "/api/v1/files/data/rest/tls.bin") == ReadFile(t.path + "/f"));
  CHECK(g.store->Fetch("data/rest/tls.bin") == ReadFile(t.path + "/f"));
  // The AWS CLI, trusting the certificate.
  CmdResult ls = Run(std::string("AWS_ACCESS_KEY_ID=") + kAk + " AWS_SECRET_ACCESS_KEY=" + ShellQuote(kSk) +
                     " AWS_DEFAULT_REGION=us-east-1 AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_CA_BUNDLE=" +
                     tls.path + "/cert.pem /usr/bin/aws --endpoint-url " + https + " s3 cp s3://data/rest/tls.bin " + t.path + "/back");
  INFO(ls.out);
  CHECK(ls.code == 0);
  CHECK(ReadFile(t.path + "/back") == ReadFile(t.path + "/f"));
  // Plain HTTP on the TLS port gets nothing it could use; an unknown certificate is refused by the client.
  CHECK(g.Curl(auth + g.endpoint() + "/api/v1/files/data/rest/tls.bin") != ReadFile(t.path + "/f"));
  CHECK(Run("curl -s -m 10 -o /dev/null " + auth + https + "/api/v1/files/data/rest/tls.bin").code != 0);
}

TEST_CASE("x-amz-meta-* and Content-Type are stored with the object: in the store, through copies, multipart and edits on the mount", "[gateway][s3]") {
  Gw g;
  TempDir t;
  WriteRandomFile(t.path + "/small", 5000, 31);
  WriteRandomFile(t.path + "/large", 12u << 20, 32);  // over the CLI's 8 MiB multipart threshold
  auto head = [&](const std::string& key) {
    CmdResult r = g.Aws("s3api head-object --bucket data --key " + key + " --output json");
    INFO(r.out);
    REQUIRE(r.code == 0);
    return nlohmann::json::parse(r.out);
  };
  REQUIRE(g.Aws("s3 cp --only-show-errors --content-type text/csv --metadata color=blue,Owner=Ann " + t.path +
                "/small s3://data/m/small").code == 0);
  nlohmann::json h = head("m/small");
  CHECK(h["ContentType"] == "text/csv");
  CHECK(h["Metadata"] == nlohmann::json({{"color", "blue"}, {"owner", "Ann"}}));
  // In the store as the same x-amz-meta-* keys, beside the POSIX ones.
  std::map<std::string, std::string> stored = g.store->Meta("data/m/small");
  CHECK(stored["color"] == "blue");
  CHECK(stored["owner"] == "Ann");
  CHECK(stored.count("mode") == 1);
  // A copy keeps it (COPY) or takes the request's (REPLACE).
  REQUIRE(g.Aws("s3api copy-object --bucket data --key m/kept --copy-source data/m/small").code == 0);
  CHECK(head("m/kept")["Metadata"] == nlohmann::json({{"color", "blue"}, {"owner", "Ann"}}));
  CHECK(head("m/kept")["ContentType"] == "text/csv");
  REQUIRE(g.Aws("s3api copy-object --bucket data --key m/replaced --copy-source data/m/small "
                "--metadata-directive REPLACE --metadata shape=round --content-type text/plain").code == 0);
  CHECK(head("m/replaced")["Metadata"] == nlohmann::json({{"shape", "round"}}));
  CHECK(head("m/replaced")["ContentType"] == "text/plain");
  // Onto itself with new metadata: the same bytes, the new metadata.
  REQUIRE(g.Aws("s3api copy-object --bucket data --key m/small --copy-source data/m/small "
                "--metadata-directive REPLACE --metadata color=green").code == 0);
  CHECK(head("m/small")["Metadata"] == nlohmann::json({{"color", "green"}}));
  CHECK(g.store->Meta("data/m/small")["color"] == "green");
  CHECK(g.store->Fetch("data/m/small") == ReadFile(t.path + "/small"));
  // Multipart: given at creation, stored at completion.
  REQUIRE(g.Aws("s3 cp --only-show-errors --metadata job=42 " + t.path + "/large s3://data/m/large").code == 0);
  h = head("m/large");
  CHECK(h["Metadata"] == nlohmann::json({{"job", "42"}}));
  CHECK(g.store->Meta("data/m/large")["job"] == "42");
  CHECK(g.store->Fetch("data/m/large") == ReadFile(t.path + "/large"));
  // Edited through the mount, the file keeps its metadata.
  {
    std::ofstream out(g.agent.mnt("data/m/small"), std::ios::app);
    out << "appended";
  }
  h = head("m/small");
  CHECK(h["ContentLength"] == 5008);
  CHECK(h["Metadata"] == nlohmann::json({{"color", "green"}}));
  CHECK(g.store->Meta("data/m/small")["color"] == "green");
  // S3's 2 KiB limit; the object is not written.
  CmdResult big = g.Aws("s3api put-object --bucket data --key m/too-much --body " + t.path + "/small --metadata k=" +
                        std::string(2100, 'x'));
  CHECK(big.out.find("MetadataTooLarge") != std::string::npos);
  CHECK_FALSE(g.store->Fetch("data/m/too-much").has_value());
}

TEST_CASE("virtual-hosted-style requests: the bucket in the host name under --gateway-domain", "[gateway][s3]") {
  Gw g({"--gateway-domain", "s3.strata.test"});
  TempDir t;
  // The client resolves the bucket's host name through its own /etc/hosts
  // (a private mount namespace): every request names data.s3.strata.test.
  std::ofstream(t.path + "/hosts") << "127.0.0.1 localhost s3.strata.test data.s3.strata.test\n";
  std::ofstream(t.path + "/config") << "[default]\ns3 =\n  addressing_style = virtual\n";
  WriteRandomFile(t.path + "/obj", 70000, 41);
  auto aws = [&](const std::string& args) {
    std::string cmd = "mount --bind " + t.path + "/hosts /etc/hosts && AWS_ACCESS_KEY_ID=" + std::string(kAk) +
                      " AWS_SECRET_ACCESS_KEY=" + ShellQuote(kSk) + " AWS_DEFAULT_REGION=us-east-1 AWS_CONFIG_FILE=" +
                      t.path + "/config AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true "
                      "/usr/bin/aws --debug --endpoint-url http://s3.strata.test:" + std::to_string(g.port) + " " + args;
    return Run("unshare -m sh -c " + ShellQuote(cmd) + " 2>&1");
  };
  CmdResult put = aws("s3 cp --only-show-errors " + t.path + "/obj s3://data/vh/obj");
  INFO(put.out.substr(0, 4000));
  REQUIRE(put.code == 0);
  CHECK(put.out.find("data.s3.strata.test") != std::string::npos);  // the CLI did use the bucket's host name
  CHECK(g.store->Fetch("data/vh/obj") == ReadFile(t.path + "/obj"));
  CmdResult get = aws("s3 cp --only-show-errors s3://data/vh/obj " + t.path + "/back");
  REQUIRE(get.code == 0);
  CHECK(ReadFile(t.path + "/back") == ReadFile(t.path + "/obj"));
  CmdResult ls = aws("s3api list-objects-v2 --bucket data --prefix vh/ --query 'Contents[].Key' --output text");
  REQUIRE(ls.code == 0);
  CHECK(ls.out.find("vh/obj\n") != std::string::npos);
  // Path style keeps working beside it.
  CHECK(g.Aws("s3api head-object --bucket data --key vh/obj").code == 0);
}

TEST_CASE("SIGHUP re-reads the gateway's credentials: a new key works, a removed one is refused", "[gateway][s3]") {
  Gw g;
  REQUIRE(g.Aws("s3 ls s3://data/", kRoAk, kRoSk).code == 0);
  std::ofstream(g.dir.path + "/creds.json.new")
      << "{\"keys\": [{\"access_key\": \"" << kAk << "\", \"secret_key\": \"" << kSk << "\"},"
      << " {\"access_key\": \"AKIDNEW\", \"secret_key\": \"new-secret\", \"write\": []}]}";
  REQUIRE(std::rename((g.dir.path + "/creds.json.new").c_str(), (g.dir.path + "/creds.json").c_str()) == 0);
  REQUIRE(kill(g.agent.pid(), SIGHUP) == 0);
  bool reloaded = false;
  for (int i = 0; i < 100 && !reloaded; i++) {
    reloaded = g.Aws("s3 ls s3://data/", "AKIDNEW", "new-secret").code == 0;
    if (!reloaded) std::this_thread::sleep_for(100ms);
  }
  REQUIRE(reloaded);
  CHECK(g.Aws("s3 ls s3://data/", kRoAk, kRoSk).out.find("InvalidAccessKeyId") != std::string::npos);
  // The new key's grants came with it: read-only.
  TempDir t;
  WriteRandomFile(t.path + "/f", 10, 1);
  CHECK(g.Aws("s3 cp " + t.path + "/f s3://data/denied", "AKIDNEW", "new-secret").out.find("AccessDenied") != std::string::npos);
  // A broken file keeps the last good credentials.
  std::ofstream(g.dir.path + "/creds.json") << "{ not json";
  REQUIRE(kill(g.agent.pid(), SIGHUP) == 0);
  std::this_thread::sleep_for(500ms);
  CHECK(g.Aws("s3 ls s3://data/", "AKIDNEW", "new-secret").code == 0);
  CHECK(g.agent.log().find("the credentials in force stay") != std::string::npos);
}

TEST_CASE("the gateway over an Azure Blob store: the AWS CLI writes and reads, the blobs are in Azurite", "[gateway][azure]") {
  auto store = MakeStore("azure");
  TempDir t;
  std::ofstream(t.path + "/creds.json") << "{\"keys\": [{\"access_key\": \"" << kAk << "\", \"secret_key\": \"" << kSk << "\"}]}";
  WriteRandomFile(t.path + "/seed", 3000, 1);
  store->Put("data/seed.bin", t.path + "/seed");
  int port = FreePort();
  std::vector<std::string> args = store->agent_args();
  args.insert(args.end(), {"--gateway-addr", "127.0.0.1:" + std::to_string(port), "--gateway-credentials",
                           t.path + "/creds.json", "--upload-part-size", "5MiB"});
  Agent agent;
  agent.Start(store->uri(), args);
  auto aws = [&](const std::string& a) {
    return Run(std::string("AWS_ACCESS_KEY_ID=") + kAk + " AWS_SECRET_ACCESS_KEY=" + ShellQuote(kSk) +
               " AWS_DEFAULT_REGION=us-east-1 AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null "
               "AWS_EC2_METADATA_DISABLED=true /usr/bin/aws --endpoint-url http://127.0.0.1:" + std::to_string(port) +
               " " + a);
  };
  WriteRandomFile(t.path + "/big", 12u << 20, 2);  // multipart through the gateway, blocks in the store
  CmdResult up = aws("s3 cp --only-show-errors --metadata color=blue " + t.path + "/big s3://data/in/big.bin");
  INFO(up.out);
  REQUIRE(up.code == 0);
  CHECK(store->Fetch("data/in/big.bin") == ReadFile(t.path + "/big"));
  CHECK(store->Meta("data/in/big.bin")["color"] == "blue");
  CHECK(aws("s3 cp --only-show-errors s3://data/seed.bin " + t.path + "/seed.back").code == 0);
  CHECK(ReadFile(t.path + "/seed.back") == ReadFile(t.path + "/seed"));
  CmdResult ls = aws("s3 ls --recursive s3://data/");
  CHECK(ls.out.find("in/big.bin") != std::string::npos);
  // A name Azure cannot keep as metadata is refused with the reason, and nothing is written.
  CmdResult bad = aws("s3api put-object --bucket data --key in/bad --body " + t.path + "/seed --metadata my-key=1");
  CHECK(bad.code != 0);
  CHECK_FALSE(store->Fetch("data/in/bad").has_value());
}

TEST_CASE("S3's size limits: a PUT or a part declared over 5 GiB is refused before its body", "[gateway][s3]") {
  Gw g;
  TempDir t;
  std::ofstream(t.path + "/keys") << "big.bin\n";
  CmdResult urls = Run(std::string("AWS_ACCESS_KEY_ID=") + kAk + " AWS_SECRET_ACCESS_KEY=" + ShellQuote(kSk) +
                       " node tests/s3/s3op.js " + g.endpoint() + " presign-many data " + t.path + "/keys PUT");
  INFO(urls.out);
  REQUIRE(urls.code == 0);
  std::string url = urls.out.substr(0, urls.out.find('\n'));
  // Declares 6 GB and sends nothing: the answer must come at once, without the body.
  CmdResult r = Run("curl -sS -m 20 -X PUT -H 'Content-Length: 6000000000' --data-binary @/dev/null " + ShellQuote(url));
  INFO(r.out);
  CHECK(r.out.find("<Code>EntityTooLarge</Code>") != std::string::npos);
  CHECK_FALSE(g.store->Fetch("data/big.bin").has_value());
  std::string metrics = Run("curl -sS --unix-socket " + g.agent.socket() + " http://x/metrics").out;
  CHECK(metrics.find("strata_gateway_errors_total{code=\"EntityTooLarge\"} 1\n") != std::string::npos);
}
