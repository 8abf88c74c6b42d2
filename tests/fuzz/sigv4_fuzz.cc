// libFuzzer target for SigV4 canonicalization alone (the gateway_fuzz target
// reaches it only through whole requests): any method, path, query and
// headers are signed without a crash, and the signature is a property of
// the request, not of how it was spelled: query pairs in another order,
// header names in another case give the same signature; signing twice
// gives the same answer; the signature is 64 hex digits.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "ufs/s3/sigv4.h"

namespace {
std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    size_t at = s.find(sep, start);
    out.push_back(s.substr(start, at == std::string::npos ? std::string::npos : at - start));
    if (at == std::string::npos) return out;
    start = at + 1;
  }
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace strata::ufs::s3;
  // Lines: method, path, then "name=value" query pairs up to an empty line,
  // then "name:value" headers.
  std::vector<std::string> lines = Split(std::string(reinterpret_cast<const char*>(data), size), '\n');
  if (lines.size() < 2) return 0;
  SignInput in;
  in.method = lines[0];
  in.path = lines[1];
  size_t i = 2;
  for (; i < lines.size() && !lines[i].empty(); i++) {
    size_t eq = lines[i].find('=');
    in.query.emplace_back(lines[i].substr(0, eq), eq == std::string::npos ? "" : lines[i].substr(eq + 1));
  }
  for (i++; i < lines.size(); i++) {
    size_t colon = lines[i].find(':');
    if (colon == std::string::npos || colon == 0) continue;
    in.headers.emplace_back(lines[i].substr(0, colon), lines[i].substr(colon + 1));
  }
  in.headers.emplace_back("host", "127.0.0.1:9000");
  in.headers.emplace_back("x-amz-date", "20261203T120000Z");
  in.payload_hash = "UNSIGNED-PAYLOAD";
  in.region = "us-east-1";
  in.amz_date = "20261203T120000Z";
  const Credentials creds{"AKIDFUZZ", "fuzz/secret+key", ""};
  Signature a = SignV4(in, creds);
  if (a.signature.size() != 64 ||
      !std::all_of(a.signature.begin(), a.signature.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); }))
    std::abort();
  if (SignV4(in, creds).authorization != a.authorization) std::abort();
  // Spelled otherwise, signed the same: query pairs reversed (they are
  // sorted), header names upper-cased (they are lower-cased). Pairs with
  // one name are kept in their order, as their values sort them.
  SignInput other = in;
  std::stable_sort(other.query.begin(), other.query.end(),
                   [](const auto& x, const auto& y) { return x.first > y.first; });
  for (auto& [name, value] : other.headers)
    for (char& c : name) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (SignV4(other, creds).signature != a.signature) std::abort();
  return 0;
}
