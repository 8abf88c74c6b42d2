// SigV4 signing: AWS's published vectors, then the AWS SDK's own signer
// (@smithy/signature-v4 from npm) on requests with awkward keys.
#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "agent/base/hash.h"
#include "tests/unit/rig.h"
#include "ufs/s3/sigv4.h"

using namespace strata::ufs::s3;

namespace {
const char* kEmpty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const Credentials kSuiteCreds{"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", ""};
const Credentials kDocCreds{"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", ""};

SignInput Suite(const std::string& method, const std::string& path, Pairs query) {
  SignInput in;
  in.method = method;
  in.path = path;
  in.query = std::move(query);
  in.headers = {{"Host", "example.amazonaws.com"}, {"X-Amz-Date", "20150830T123600Z"}};
  in.payload_hash = kEmpty;
  in.region = "us-east-1";
  in.service = "service";
  in.amz_date = "20150830T123600Z";
  return in;
}
}  // namespace

TEST_CASE("sigv4 matches the AWS test suite", "[unit]") {
  // get-vanilla
  Signature s = SignV4(Suite("GET", "/", {}), kSuiteCreds);
  CHECK(s.authorization ==
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        "SignedHeaders=host;x-amz-date, "
        "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
  // get-vanilla-query-order-key-case: the query is sorted before signing.
  CHECK(SignV4(Suite("GET", "/", {{"Param2", "value2"}, {"Param1", "value1"}}), kSuiteCreds).signature ==
        "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500");
  // post-vanilla
  CHECK(SignV4(Suite("POST", "/", {}), kSuiteCreds).signature ==
        "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b");
  // get-utf8: the path is UTF-8, percent-encoded once.
  CHECK(SignV4(Suite("GET", "/\xE1\x88\xB4", {}), kSuiteCreds).signature ==
        "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85");
}

TEST_CASE("sigv4 matches the S3 documentation examples", "[unit]") {
  SignInput in;
  in.method = "GET";
  in.path = "/test.txt";
  in.headers = {{"Host", "examplebucket.s3.amazonaws.com"},
                {"Range", "bytes=0-9"},
                {"x-amz-content-sha256", kEmpty},
                {"x-amz-date", "20130524T000000Z"}};
  in.payload_hash = kEmpty;
  in.region = "us-east-1";
  in.amz_date = "20130524T000000Z";
  Signature s = SignV4(in, kDocCreds);
  CHECK(s.signed_headers == "host;range;x-amz-content-sha256;x-amz-date");
  CHECK(strata::Hex(strata::Sha256(s.canonical_request)) ==
        "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972");
  CHECK(s.signature == "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");

  // GET bucket lifecycle: a query parameter without a value signs as "lifecycle=".
  in.path = "/";
  in.query = {{"lifecycle", ""}};
  in.headers = {{"Host", "examplebucket.s3.amazonaws.com"},
                {"x-amz-content-sha256", kEmpty},
                {"x-amz-date", "20130524T000000Z"}};
  CHECK(SignV4(in, kDocCreds).signature ==
        "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");

  // GET bucket (List Objects) with max-keys and prefix.
  in.query = {{"max-keys", "2"}, {"prefix", "J"}};
  CHECK(SignV4(in, kDocCreds).signature ==
        "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
}

TEST_CASE("canonical query encodes names and values and sorts them", "[unit]") {
  CHECK(strata::EncodeQuery({{"b", "2"}, {"a", "1"}, {"A", "0"}}) == "A=0&a=1&b=2");
  CHECK(strata::EncodeQuery({{"prefix", "dir a/x+y%z"}, {"continuation-token", "1/2=="}}) ==
        "continuation-token=1%2F2%3D%3D&prefix=dir%20a%2Fx%2By%25z");
  CHECK(AmzDate(1440938160) == "20150830T123600Z");
}

// The AWS SDK for JavaScript's signer, run by node on the same requests.
TEST_CASE("sigv4 agrees with the AWS SDK signer on awkward keys", "[unit][sdk]") {
  const char* dir = "tests/s3/node_modules/@smithy/signature-v4";
  std::ifstream probe(std::string(dir) + "/package.json");
  if (!probe) FAIL("the AWS SDK signer is not installed: run packaging/install-deps.sh --test");
  struct Case {
    std::string key;
    Pairs query;
  };
  std::vector<Case> cases = {
      {"plain.txt", {}},
      {"dir with space/file name.bin", {}},
      {"plus+sign/100%/x=y&z.txt", {}},
      {"unicode/\xC3\xA9t\xC3\xA9/\xE6\x97\xA5\xE6\x9C\xAC.txt", {}},
      {"tilde~_-.!*'()", {}},
      {"", {{"list-type", "2"}, {"prefix", "a b/+c%"}, {"delimiter", "/"}, {"encoding-type", "url"},
            {"continuation-token", "1Jx/y+z=="}}},
  };
  nlohmann::json req = nlohmann::json::array();
  std::vector<std::string> ours;
  for (const Case& c : cases) {
    SignInput in;
    in.method = "GET";
    in.path = "/bucket/" + c.key;
    in.query = c.query;
    in.headers = {{"host", "127.0.0.1:4568"},
                  {"x-amz-content-sha256", kEmpty},
                  {"x-amz-date", "20240229T235959Z"},
                  {"range", "bytes=0-99"}};
    in.payload_hash = kEmpty;
    in.region = "eu-central-1";
    in.amz_date = "20240229T235959Z";
    ours.push_back(SignV4(in, kDocCreds).authorization);
    nlohmann::json q = nlohmann::json::object();
    for (auto& [k, v] : c.query) q[k] = v;
    req.push_back({{"path", strata::UriEncode(in.path, true)},
                   {"query", q},
                   {"headers", {{"host", "127.0.0.1:4568"}, {"x-amz-content-sha256", kEmpty}, {"range", "bytes=0-99"}}},
                   {"region", in.region},
                   {"date", "2024-02-29T23:59:59Z"},
                   {"access_key", kDocCreds.access_key},
                   {"secret_key", kDocCreds.secret_key}});
  }
  nlohmann::json theirs = nlohmann::json::parse(strata::testing::RunNode("tests/s3/sign.js", req.dump()));
  REQUIRE(theirs.size() == ours.size());
  for (size_t i = 0; i < ours.size(); i++) {
    INFO("key: " << cases[i].key);
    CHECK(ours[i] == theirs[i].get<std::string>());
  }
}
