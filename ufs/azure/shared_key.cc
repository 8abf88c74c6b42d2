#include "ufs/azure/shared_key.h"

#include <strings.h>

#include <algorithm>
#include <cstdlib>
#include <ctime>
#include <map>

#include "agent/base/clock.h"
#include "agent/base/hash.h"

namespace strata::ufs::azure {
namespace {

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// The order the service sorts canonicalized headers in (a culture-aware
// Windows sort, as the SDKs reproduce it): at the first level '-' counts
// for nothing and '_' comes before digits, digits before letters; equal
// names so far are then told apart by their bytes.
int Weight(unsigned char c) {
  if (c >= 'a' && c <= 'z') return 300 + c;
  if (c >= '0' && c <= '9') return 200 + c;
  if (c == '.') return 99;
  if (c == '_') return 100;
  if (c == '~') return 101;
  return c;
}
bool HeaderLess(const std::string& a, const std::string& b) {
  size_t i = 0, j = 0;
  for (;;) {
    while (i < a.size() && a[i] == '-') i++;
    while (j < b.size() && b[j] == '-') j++;
    if (i == a.size() || j == b.size()) {
      if (i != a.size() || j != b.size()) return i == a.size();
      return a < b;
    }
    int wa = Weight(static_cast<unsigned char>(a[i])), wb = Weight(static_cast<unsigned char>(b[j]));
    if (wa != wb) return wa < wb;
    i++, j++;
  }
}

std::string IsoSeconds(int64_t unix_seconds) { return FormatUtc(unix_seconds, "%Y-%m-%dT%H:%M:%SZ"); }

}  // namespace

std::string HttpDate(int64_t unix_seconds) { return FormatUtc(unix_seconds, "%a, %d %b %Y %H:%M:%S GMT"); }

Result<Credentials> ParseConnectionString(const std::string& s) {
  std::map<std::string, std::string> kv;
  size_t at = 0;
  while (at < s.size()) {
    size_t semi = s.find(';', at);
    std::string part = s.substr(at, semi == std::string::npos ? std::string::npos : semi - at);
    at = semi == std::string::npos ? s.size() : semi + 1;
    if (part.empty()) continue;
    size_t eq = part.find('=');
    if (eq == std::string::npos) return Status::InvalidArgument("azure: bad connection string part '" + part + "' (want Name=value)");
    kv[Lower(part.substr(0, eq))] = part.substr(eq + 1);  // values may hold '=' (base64)
  }
  Credentials c;
  if (kv["usedevelopmentstorage"] == "true") {
    // Azurite's well-known account.
    c.account = "devstoreaccount1";
    c.key = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
    c.endpoint = "http://127.0.0.1:10000/devstoreaccount1";
    return c;
  }
  c.account = kv["accountname"];
  c.key = kv["accountkey"];
  c.sas = kv["sharedaccesssignature"];
  if (!c.sas.empty() && c.sas[0] == '?') c.sas.erase(0, 1);
  c.endpoint = kv["blobendpoint"];
  if (c.endpoint.empty() && !c.account.empty()) {
    std::string proto = kv.count("defaultendpointsprotocol") ? kv["defaultendpointsprotocol"] : "https";
    std::string suffix = kv.count("endpointsuffix") ? kv["endpointsuffix"] : "core.windows.net";
    c.endpoint = proto + "://" + c.account + ".blob." + suffix;
  }
  if (c.endpoint.empty()) return Status::InvalidArgument("azure: the connection string names neither AccountName nor BlobEndpoint");
  if (c.key.empty() && c.sas.empty())
    return Status::InvalidArgument("azure: the connection string has neither AccountKey nor SharedAccessSignature");
  return c;
}

Result<Credentials> CredentialsFromEnv(const std::string& endpoint_override) {
  Credentials c;
  if (std::string cs = Env("AZURE_STORAGE_CONNECTION_STRING"); !cs.empty()) {
    Result<Credentials> parsed = ParseConnectionString(cs);
    if (!parsed.ok()) return parsed.status().With("AZURE_STORAGE_CONNECTION_STRING");
    c = *parsed;
  } else {
    c.account = Env("AZURE_STORAGE_ACCOUNT");
    c.key = Env("AZURE_STORAGE_KEY");
    c.sas = Env("AZURE_STORAGE_SAS_TOKEN");
    if (!c.sas.empty() && c.sas[0] == '?') c.sas.erase(0, 1);
    if (c.account.empty())
      return Status::InvalidArgument(
          "azure: no credentials: set AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT with "
          "AZURE_STORAGE_KEY or AZURE_STORAGE_SAS_TOKEN");
    if (c.key.empty() && c.sas.empty())
      return Status::InvalidArgument("azure: AZURE_STORAGE_ACCOUNT is set but neither AZURE_STORAGE_KEY nor AZURE_STORAGE_SAS_TOKEN");
    c.endpoint = "https://" + c.account + ".blob.core.windows.net";
  }
  if (!endpoint_override.empty()) c.endpoint = endpoint_override;
  while (!c.endpoint.empty() && c.endpoint.back() == '/') c.endpoint.pop_back();
  if (!c.key.empty()) {
    std::string raw;
    if (!Unbase64(c.key, &raw)) return Status::InvalidArgument("azure: the account key is not base64: check AZURE_STORAGE_KEY");
  }
  return c;
}

Result<Signed> SignSharedKey(const SignInput& in, const std::string& account, const std::string& key_b64) {
  std::string key;
  if (!Unbase64(key_b64, &key)) return Status::InvalidArgument("azure: the account key is not base64");
  auto header = [&](const char* name) -> std::string {
    for (const auto& [k, v] : in.headers)
      if (strcasecmp(k.c_str(), name) == 0) return v;
    return "";
  };
  std::string length = header("Content-Length");
  if (length == "0") length.clear();
  Signed out;
  out.string_to_sign = in.method + "\n" + header("Content-Encoding") + "\n" + header("Content-Language") + "\n" + length +
                       "\n" + header("Content-MD5") + "\n" + header("Content-Type") + "\n" + header("Date") + "\n" +
                       header("If-Modified-Since") + "\n" + header("If-Match") + "\n" + header("If-None-Match") + "\n" +
                       header("If-Unmodified-Since") + "\n" + header("Range") + "\n";
  std::vector<std::pair<std::string, std::string>> ms;
  for (const auto& [k, v] : in.headers) {
    std::string name = Lower(k);
    if (name.rfind("x-ms-", 0) != 0) continue;
    size_t start = v.find_first_not_of(" \t");
    ms.emplace_back(name, start == std::string::npos ? "" : v.substr(start));
  }
  std::stable_sort(ms.begin(), ms.end(), [](const auto& a, const auto& b) { return HeaderLess(a.first, b.first); });
  for (const auto& [k, v] : ms) out.string_to_sign += k + ":" + v + "\n";
  out.string_to_sign += "/" + account + in.encoded_path;
  // Query names lowercased and sorted; a repeated name's values joined by ','.
  std::map<std::string, std::vector<std::string>> q;
  for (const auto& [k, v] : in.query) q[Lower(k)].push_back(v);
  for (auto& [k, values] : q) {
    std::sort(values.begin(), values.end());
    std::string joined;
    for (const std::string& v : values) joined += (joined.empty() ? "" : ",") + v;
    out.string_to_sign += "\n" + k + ":" + joined;
  }
  out.authorization = "SharedKey " + account + ":" + Base64(HmacSha256(key, out.string_to_sign));
  return out;
}

Result<std::string> BlobReadSas(const std::string& account, const std::string& key_b64, const std::string& blob_path,
                                int64_t expiry_unix) {
  std::string key;
  if (!Unbase64(key_b64, &key)) return Status::InvalidArgument("azure: the account key is not base64");
  const std::string expiry = IsoSeconds(expiry_unix);
  // Permissions, start, expiry, resource, identifier, IP, protocol, version,
  // resource type, snapshot time, encryption scope, then the five response
  // header overrides (none).
  const std::string to_sign = "r\n\n" + expiry + "\n/blob/" + account + blob_path + "\n\n\n\n" + kApiVersion +
                              "\nb\n\n\n\n\n\n\n";
  const std::string sig = Base64(HmacSha256(key, to_sign));
  return EncodeQuery({{"sv", kApiVersion}, {"se", expiry}, {"sr", "b"}, {"sp", "r"}, {"sig", sig}});
}

}  // namespace strata::ufs::azure
