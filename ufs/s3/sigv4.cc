#include "ufs/s3/sigv4.h"

#include <algorithm>
#include <cctype>
#include <ctime>
#include <map>

#include "agent/base/clock.h"
#include "agent/base/hash.h"

namespace strata::ufs::s3 {
namespace {

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Trims both ends and collapses runs of spaces to one, as the spec asks.
std::string TrimValue(const std::string& v) {
  std::string out;
  bool space = false;
  for (char c : v) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      space = !out.empty();
      continue;
    }
    if (space) out.push_back(' ');
    space = false;
    out.push_back(c);
  }
  return out;
}

}  // namespace

std::string AmzDate(long unix_seconds) { return FormatUtc(unix_seconds, "%Y%m%dT%H%M%SZ"); }

std::string SigningKey(const std::string& secret_key, const std::string& date, const std::string& region,
                       const std::string& service) {
  std::string k = HmacSha256("AWS4" + secret_key, date);
  k = HmacSha256(k, region);
  k = HmacSha256(k, service);
  return HmacSha256(k, "aws4_request");
}

Signature SignV4(const SignInput& in, const Credentials& creds) {
  Signature sig;
  // Header names lowercased; repeated headers joined with ',' in order given.
  std::map<std::string, std::string> headers;
  for (const auto& [k, v] : in.headers) {
    std::string name = Lower(k);
    std::string value = TrimValue(v);
    auto it = headers.find(name);
    if (it == headers.end()) headers.emplace(name, value);
    else it->second += "," + value;
  }
  std::string canonical_headers;
  for (const auto& [k, v] : headers) {
    canonical_headers += k + ":" + v + "\n";
    if (!sig.signed_headers.empty()) sig.signed_headers.push_back(';');
    sig.signed_headers += k;
  }
  std::string path = in.path.empty() ? "/" : in.path;
  sig.canonical_request = in.method + "\n" + UriEncode(path, true) + "\n" + EncodeQuery(in.query) +
                          "\n" + canonical_headers + "\n" + sig.signed_headers + "\n" +
                          in.payload_hash;
  std::string date = in.amz_date.substr(0, 8);
  std::string scope = date + "/" + in.region + "/" + in.service + "/aws4_request";
  sig.string_to_sign =
      "AWS4-HMAC-SHA256\n" + in.amz_date + "\n" + scope + "\n" + Hex(Sha256(sig.canonical_request));
  sig.signature = Hex(HmacSha256(SigningKey(creds.secret_key, date, in.region, in.service), sig.string_to_sign));
  sig.authorization = "AWS4-HMAC-SHA256 Credential=" + creds.access_key + "/" + scope +
                      ", SignedHeaders=" + sig.signed_headers + ", Signature=" + sig.signature;
  return sig;
}

}  // namespace strata::ufs::s3
