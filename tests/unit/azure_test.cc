// Azure Shared Key: Strata's signer against the official Azure SDK for
// JavaScript (@azure/storage-common's policy, run by tests/azure/sign.js) on
// awkward names, query orders and metadata names; connection strings.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "agent/base/hash.h"
#include "tests/unit/rig.h"
#include "ufs/azure/shared_key.h"

using namespace strata::ufs::azure;
using strata::Result;
using strata::testing::RunNode;

namespace {
const char kAccount[] = "devstoreaccount1";
const char kKey[] = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
const char kDate[] = "Sat, 28 Nov 2026 00:00:00 GMT";

}  // namespace

TEST_CASE("Azure Shared Key signatures equal the Azure SDK's on awkward requests", "[unit][azure]") {
  struct Case {
    std::string method, path;
    Pairs query, headers;
  };
  const Pairs base = {{"x-ms-date", kDate}, {"x-ms-version", kApiVersion}};
  auto with = [&](Pairs more) {
    Pairs h = base;
    h.insert(h.end(), more.begin(), more.end());
    return h;
  };
  std::vector<Case> cases = {
      {"GET", "/devstoreaccount1/c/plain", {}, base},
      {"GET", "/devstoreaccount1/c/with space/and+plus%percent", {}, with({{"x-ms-range", "bytes=0-4194303"}, {"If-Match", "\"0x8DB\""}})},
      {"HEAD", "/devstoreaccount1/c/ünïcødé/日本語.txt", {}, base},
      {"GET", "/devstoreaccount1/c", {{"restype", "container"}, {"comp", "list"}, {"prefix", "dir a/b+c"}, {"delimiter", "/"},
                                      {"include", "metadata"}, {"marker", "2!80!MDAwMDE2IWRpci9maWxlLTAwMDEhMDAwMDI4ITk5OTktMTItMzFUMjM6NTk6NTkuOTk5OTk5OVoh"}}, base},
      {"GET", "/devstoreaccount1/c", {{"maxresults", "5000"}, {"comp", "list"}, {"restype", "container"}}, base},
      {"PUT", "/devstoreaccount1/c/big.bin", {{"comp", "block"}, {"blockid", "c3RyYXRhLTAwMDAwMDAx"}},
       with({{"Content-Length", "4194304"}})},
      {"PUT", "/devstoreaccount1/c/meta", {},
       with({{"Content-Length", "5"}, {"x-ms-blob-type", "BlockBlob"}, {"x-ms-blob-content-type", "text/plain"},
             {"x-ms-meta-mode", "33188"}, {"x-ms-meta-uid", "0"}, {"x-ms-meta-mtime", "1700000000.5"},
             {"x-ms-meta-a_b", "1"}, {"x-ms-meta-a1", "2"}, {"x-ms-meta-ab", "3"}, {"x-ms-meta-_x", "4"},
             {"x-ms-meta-hdi_isfolder", "true"}})},
      {"PUT", "/devstoreaccount1/c/empty", {}, with({{"Content-Length", "0"}, {"x-ms-blob-type", "BlockBlob"}})},
      {"PUT", "/devstoreaccount1/c/dst", {{"comp", "block"}, {"blockid", "AAAA"}},
       with({{"Content-Length", "0"}, {"x-ms-copy-source", "http://127.0.0.1:10000/devstoreaccount1/c/src?sv=2021-12-02&sig=a%2Bb"},
             {"x-ms-source-range", "bytes=0-99"}, {"x-ms-source-if-match", "\"0x1\""}})},
      {"DELETE", "/devstoreaccount1/c/a/b/c", {}, base},
  };
  std::vector<std::string> ours;
  nlohmann::json req = nlohmann::json::array();
  for (const Case& c : cases) {
    std::string encoded = strata::UriEncode(c.path, true);
    Result<Signed> s = SignSharedKey({c.method, encoded, c.query, c.headers}, kAccount, kKey);
    REQUIRE(s.ok());
    ours.push_back(s->authorization);
    std::string url = "http://127.0.0.1:10000" + encoded;
    std::string q = strata::EncodeQuery(c.query);
    if (!q.empty()) url += "?" + q;
    nlohmann::json headers = nlohmann::json::array();
    for (const auto& [k, v] : c.headers)
      if (k != "x-ms-date") headers.push_back({k, v});
    req.push_back({{"method", c.method}, {"url", url}, {"headers", headers}, {"date", kDate}, {"account", kAccount},
                   {"key", kKey}});
  }
  nlohmann::json theirs = nlohmann::json::parse(RunNode("tests/azure/sign.js", req.dump()));
  REQUIRE(theirs.size() == ours.size());
  for (size_t i = 0; i < ours.size(); i++) {
    INFO(cases[i].method << " " << cases[i].path);
    CHECK(ours[i] == theirs[i].get<std::string>());
  }
}

TEST_CASE("Azure connection strings: keys, SAS, endpoints, Azurite's shorthand, and clear errors", "[unit][azure]") {
  Result<Credentials> c = ParseConnectionString(
      "DefaultEndpointsProtocol=http;AccountName=acct;AccountKey=a2V5==;BlobEndpoint=http://127.0.0.1:10000/acct;");
  REQUIRE(c.ok());
  CHECK(c->account == "acct");
  CHECK(c->key == "a2V5==");  // '=' inside a value stays
  CHECK(c->endpoint == "http://127.0.0.1:10000/acct");
  c = ParseConnectionString("AccountName=acct;SharedAccessSignature=?sv=2021-12-02&sig=x%2By;EndpointSuffix=core.chinacloudapi.cn");
  REQUIRE(c.ok());
  CHECK(c->sas == "sv=2021-12-02&sig=x%2By");
  CHECK(c->endpoint == "https://acct.blob.core.chinacloudapi.cn");
  c = ParseConnectionString("UseDevelopmentStorage=true");
  REQUIRE(c.ok());
  CHECK(c->account == "devstoreaccount1");
  CHECK_FALSE(ParseConnectionString("AccountName=acct").ok());
  CHECK_FALSE(ParseConnectionString("garbage").ok());
}
