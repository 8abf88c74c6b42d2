// The gateway's SigV4 verification against AWS's published S3 examples
// (the Signature Version 4 examples in the S3 API reference: GET Object
// with a Range header, and the presigned GET), plus the clock window, the
// expiry, tampering, and grants.
#include <catch2/catch.hpp>
#include <fstream>

#include "agent/gateway/auth.h"
#include "tests/unit/rig.h"

using strata::gateway::Auth;
using strata::gateway::Request;
using strata::gateway::Verified;

namespace {

const char* const kAk = "AKIAIOSFODNN7EXAMPLE";
const char* const kSk = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
constexpr int64_t kWhen = 1369353600;  // 20130524T000000Z

std::unique_ptr<Auth> LoadAuth(const std::string& dir, const std::string& extra = "") {
  std::ofstream(dir + "/creds.json") << "{\"keys\": [{\"access_key\": \"" << kAk << "\", \"secret_key\": \"" << kSk
                                     << "\", \"write\": [\"/examplebucket/in\"]}" << extra << "]}";
  auto a = Auth::Load(dir + "/creds.json", "us-east-1");
  REQUIRE(a.ok());
  return std::move(a).value();
}

// GET /test.txt with Range: bytes=0-9, the S3 reference's header example.
Request GetObjectExample() {
  Request r;
  r.method = "GET";
  r.path = "/test.txt";
  r.headers = {{"host", "examplebucket.s3.amazonaws.com"},
               {"range", "bytes=0-9"},
               {"x-amz-content-sha256", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
               {"x-amz-date", "20130524T000000Z"},
               {"authorization",
                "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
                "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"
                "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"}};
  return r;
}

// The reference's presigned GET of /test.txt, valid 86400 s.
Request PresignedExample() {
  Request r;
  r.method = "GET";
  r.path = "/test.txt";
  r.headers = {{"host", "examplebucket.s3.amazonaws.com"}};
  r.query = {{"X-Amz-Algorithm", "AWS4-HMAC-SHA256"},
             {"X-Amz-Credential", "AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request"},
             {"X-Amz-Date", "20130524T000000Z"},
             {"X-Amz-Expires", "86400"},
             {"X-Amz-SignedHeaders", "host"},
             {"X-Amz-Signature", "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"}};
  return r;
}

}  // namespace

TEST_CASE("the gateway accepts AWS's published SigV4 examples and refuses their variations", "[unit][gateway]") {
  strata::testing::TempDir dir;
  auto auth = LoadAuth(dir.path);
  Verified v;
  CHECK(auth->VerifyS3(GetObjectExample(), kWhen, &v).ok());
  REQUIRE(v.grant != nullptr);
  CHECK(v.grant->name == kAk);
  CHECK(v.payload_hash == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  // Within the 15-minute window on either side, and not past it.
  Verified w;
  CHECK(auth->VerifyS3(GetObjectExample(), kWhen + 14 * 60, &w).ok());
  CHECK(auth->VerifyS3(GetObjectExample(), kWhen - 16 * 60, &w).code == "RequestTimeTooSkewed");
  // A changed header, a changed path, a changed signature.
  Request r = GetObjectExample();
  r.headers[1].second = "bytes=0-10";
  CHECK(auth->VerifyS3(r, kWhen, &w).code == "SignatureDoesNotMatch");
  r = GetObjectExample();
  r.path = "/test.txt2";
  CHECK(auth->VerifyS3(r, kWhen, &w).code == "SignatureDoesNotMatch");
  r = GetObjectExample();
  r.headers[4].second.back() = '0';
  CHECK(auth->VerifyS3(r, kWhen, &w).code == "SignatureDoesNotMatch");
  CHECK(w.grant == nullptr);
  // Another region than the gateway's, an unknown key, no signature at all.
  r = GetObjectExample();
  r.headers[4].second.replace(r.headers[4].second.find("us-east-1"), 9, "eu-west-1");
  CHECK(auth->VerifyS3(r, kWhen, &w).code == "AuthorizationHeaderMalformed");
  r = GetObjectExample();
  r.headers[4].second.replace(r.headers[4].second.find(kAk), 4, "XXXX");
  CHECK(auth->VerifyS3(r, kWhen, &w).code == "InvalidAccessKeyId");
  r = GetObjectExample();
  r.headers.pop_back();
  CHECK(auth->VerifyS3(r, kWhen, &w).code == "AccessDenied");

  // Presigned: valid until its expiry, whatever the clock skew before that.
  CHECK(auth->VerifyS3(PresignedExample(), kWhen + 3600, &w).ok());
  CHECK(w.payload_hash == "UNSIGNED-PAYLOAD");
  CHECK(auth->VerifyS3(PresignedExample(), kWhen + 86401, &w).message == "Request has expired");
  Request p = PresignedExample();
  p.query[3].second = "86399";
  CHECK(auth->VerifyS3(p, kWhen, &w).code == "SignatureDoesNotMatch");
  p = PresignedExample();
  p.query[3].second = "604801";
  CHECK(auth->VerifyS3(p, kWhen, &w).code == "AuthorizationQueryParametersError");
}

TEST_CASE("grants: paths and what is below them, lists left out, empty lists, reloads", "[unit][gateway]") {
  strata::testing::TempDir dir;
  auto auth = LoadAuth(dir.path, ", {\"access_key\": \"RO\", \"secret_key\": \"x\", \"write\": []}");
  Verified v;
  REQUIRE(auth->VerifyS3(GetObjectExample(), kWhen, &v).ok());
  const strata::gateway::Grant& g = *v.grant;
  CHECK(g.Allows("examplebucket/anything", false));  // read left out: everything
  CHECK(g.Allows("examplebucket/in", true));
  CHECK(g.Allows("examplebucket/in/deep/key", true));
  CHECK_FALSE(g.Allows("examplebucket/inside", true));  // a path, not a string prefix
  CHECK_FALSE(g.Allows("examplebucket", true));
  strata::gateway::Grant ro;
  ro.write_all = false;
  CHECK_FALSE(ro.Allows("examplebucket/in", true));
  // A file that does not parse leaves the credentials in force.
  std::ofstream(dir.path + "/creds.json") << "{\"keys\": [";
  CHECK_FALSE(auth->Reload().ok());
  Verified again;
  CHECK(auth->VerifyS3(GetObjectExample(), kWhen, &again).ok());
  // A reload that drops the key refuses it from then on.
  std::ofstream(dir.path + "/creds.json") << "{\"keys\": []}";
  REQUIRE(auth->Reload().ok());
  CHECK(auth->VerifyS3(GetObjectExample(), kWhen, &again).code == "InvalidAccessKeyId");
}
