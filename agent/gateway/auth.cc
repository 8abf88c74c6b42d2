#include "agent/gateway/auth.h"

#include <openssl/crypto.h>

#include <ctime>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "agent/base/hash.h"
#include "ufs/s3/sigv4.h"

namespace strata::gateway {

namespace {

bool Under(const std::string& path, const std::string& prefix) {
  // Prefixes are namespace paths: "/" is everything, "/data" is data and below.
  std::string p = prefix;
  while (!p.empty() && p.front() == '/') p.erase(0, 1);
  while (!p.empty() && p.back() == '/') p.pop_back();
  if (p.empty()) return true;
  return path == p || (path.size() > p.size() && path.compare(0, p.size(), p) == 0 && path[p.size()] == '/');
}

// "20130524T000000Z" as Unix seconds; -1 when malformed.
int64_t ParseAmzDate(const std::string& s) {
  struct tm tm {};
  if (s.size() != 16 || s[8] != 'T' || s[15] != 'Z') return -1;
  const char* end = ::strptime(s.c_str(), "%Y%m%dT%H%M%SZ", &tm);
  if (end == nullptr || *end != '\0') return -1;
  return static_cast<int64_t>(::timegm(&tm));
}

// "k1=v1, k2=v2" (the Authorization header's fields after the algorithm).
std::map<std::string, std::string> AuthFields(const std::string& s) {
  std::map<std::string, std::string> out;
  size_t at = 0;
  while (at < s.size()) {
    size_t comma = s.find(',', at);
    std::string part = s.substr(at, comma == std::string::npos ? std::string::npos : comma - at);
    at = comma == std::string::npos ? s.size() : comma + 1;
    size_t a = part.find_first_not_of(' ');
    if (a == std::string::npos) continue;
    part = part.substr(a);
    size_t eq = part.find('=');
    if (eq == std::string::npos) continue;
    std::string v = part.substr(eq + 1);
    while (!v.empty() && v.back() == ' ') v.pop_back();
    out[part.substr(0, eq)] = v;
  }
  return out;
}

S3Error Err(int status, std::string code, std::string message) { return {status, std::move(code), std::move(message)}; }

std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t at = 0;
  for (;;) {
    size_t e = s.find(sep, at);
    out.push_back(s.substr(at, e == std::string::npos ? std::string::npos : e - at));
    if (e == std::string::npos) break;
    at = e + 1;
  }
  return out;
}

}  // namespace

bool Grant::Allows(const std::string& path, bool w) const {
  const std::vector<std::string>& list = w ? write : read;
  if (w ? write_all : read_all) return true;
  for (const std::string& p : list)
    if (Under(path, p)) return true;
  return false;
}

Result<std::unique_ptr<Auth>> Auth::Load(const std::string& file, std::string region) {
  std::unique_ptr<Auth> a(new Auth(file, std::move(region)));
  if (!file.empty()) STRATA_RETURN_IF_ERROR(a->Reload());
  return a;
}

Status Auth::Reload() {
  std::ifstream in(file_);
  if (!in) return Status::NotFound("gateway credentials " + file_ + ": cannot be read");
  std::stringstream ss;
  ss << in.rdbuf();
  return Parse(ss.str()).With("gateway credentials " + file_);
}

Status Auth::Parse(const std::string& text) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Status::InvalidArgument("not a JSON object");
  auto paths = [](const nlohmann::json& e, const char* name, std::vector<std::string>* out, bool* all) -> bool {
    *all = !e.contains(name);
    if (*all) return true;
    if (!e[name].is_array()) return false;
    for (const auto& p : e[name]) {
      if (!p.is_string()) return false;
      out->push_back(p.get<std::string>());
    }
    return true;
  };
  std::vector<Key> keys;
  std::vector<Token> tokens;
  std::vector<std::unique_ptr<Grant>> grants;
  if (j.contains("keys")) {
    if (!j["keys"].is_array()) return Status::InvalidArgument("\"keys\" must be a list");
    for (const auto& k : j["keys"]) {
      if (!k.is_object() || !k.contains("access_key") || !k.contains("secret_key") || !k["access_key"].is_string() ||
          !k["secret_key"].is_string())
        return Status::InvalidArgument("each key needs \"access_key\" and \"secret_key\" strings");
      auto g = std::make_unique<Grant>();
      g->name = k["access_key"].get<std::string>();
      if (!paths(k, "read", &g->read, &g->read_all) || !paths(k, "write", &g->write, &g->write_all))
        return Status::InvalidArgument("\"read\" and \"write\" are lists of paths");
      keys.push_back({g->name, k["secret_key"].get<std::string>(), g.get()});
      grants.push_back(std::move(g));
    }
  }
  if (j.contains("tokens")) {
    if (!j["tokens"].is_array()) return Status::InvalidArgument("\"tokens\" must be a list");
    for (const auto& t : j["tokens"]) {
      if (!t.is_object() || !t.contains("token") || !t["token"].is_string() || t["token"].get<std::string>().size() < 16)
        return Status::InvalidArgument("each token needs a \"token\" string of at least 16 characters");
      auto g = std::make_unique<Grant>();
      std::string tok = t["token"].get<std::string>();
      g->name = "token:" + tok.substr(0, 4) + "...";
      if (!paths(t, "read", &g->read, &g->read_all) || !paths(t, "write", &g->write, &g->write_all))
        return Status::InvalidArgument("\"read\" and \"write\" are lists of paths");
      tokens.push_back({tok, g.get()});
      grants.push_back(std::move(g));
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  keys_ = std::move(keys);
  tokens_ = std::move(tokens);
  for (auto& g : grants) grants_.push_back(std::move(g));
  return Status::OK();
}

const Grant* Auth::VerifyToken(const Request& req) {
  const std::string* h = req.Header("authorization");
  if (h == nullptr || h->compare(0, 7, "Bearer ") != 0) return nullptr;
  std::string tok = h->substr(7);
  std::lock_guard<std::mutex> lock(mu_);
  const Grant* found = nullptr;
  for (const Token& t : tokens_)
    if (t.token.size() == tok.size() && CRYPTO_memcmp(t.token.data(), tok.data(), tok.size()) == 0) found = t.grant;
  return found;
}

S3Error Auth::VerifyS3(const Request& req, int64_t now_s, Verified* out) {
  *out = Verified{};
  std::string access_key, scope, signed_headers, signature, amz_date;
  ufs::s3::Pairs query;
  bool presigned = false;
  int64_t expires = 0;
  const std::string* authz = req.Header("authorization");
  if (authz != nullptr) {
    const std::string alg = "AWS4-HMAC-SHA256 ";
    if (authz->compare(0, alg.size(), alg) != 0)
      return Err(400, "InvalidArgument", "Only AWS Signature Version 4 (AWS4-HMAC-SHA256) is supported");
    std::map<std::string, std::string> f = AuthFields(authz->substr(alg.size()));
    std::string cred = f["Credential"];
    signed_headers = f["SignedHeaders"];
    signature = f["Signature"];
    size_t slash = cred.find('/');
    if (slash == std::string::npos || signed_headers.empty() || signature.empty())
      return Err(400, "AuthorizationHeaderMalformed", "The authorization header is malformed");
    access_key = cred.substr(0, slash);
    scope = cred.substr(slash + 1);
    const std::string* d = req.Header("x-amz-date");
    if (d == nullptr) return Err(403, "AccessDenied", "AWS authentication requires a valid x-amz-date header");
    amz_date = *d;
    const std::string* ph = req.Header("x-amz-content-sha256");
    if (ph == nullptr)
      return Err(400, "InvalidRequest", "Missing required header for this request: x-amz-content-sha256");
    out->payload_hash = *ph;
    query = req.query;
  } else if (const std::string* alg = req.Query("X-Amz-Algorithm"); alg != nullptr) {
    presigned = true;
    if (*alg != "AWS4-HMAC-SHA256")
      return Err(400, "AuthorizationQueryParametersError", "X-Amz-Algorithm must be AWS4-HMAC-SHA256");
    const std::string *cred = req.Query("X-Amz-Credential"), *date = req.Query("X-Amz-Date"),
                      *exp = req.Query("X-Amz-Expires"), *sh = req.Query("X-Amz-SignedHeaders"),
                      *sig = req.Query("X-Amz-Signature");
    if (!cred || !date || !exp || !sh || !sig)
      return Err(400, "AuthorizationQueryParametersError",
                 "Query-string authentication requires X-Amz-Credential, -Date, -Expires, -SignedHeaders and -Signature");
    size_t slash = cred->find('/');
    if (slash == std::string::npos) return Err(400, "AuthorizationQueryParametersError", "X-Amz-Credential is malformed");
    access_key = cred->substr(0, slash);
    scope = cred->substr(slash + 1);
    amz_date = *date;
    signed_headers = *sh;
    signature = *sig;
    char* e = nullptr;
    expires = std::strtoll(exp->c_str(), &e, 10);
    if (exp->empty() || *e != '\0' || expires < 1 || expires > 604800)
      return Err(400, "AuthorizationQueryParametersError", "X-Amz-Expires must be between 1 and 604800 seconds");
    const std::string* ph = req.Query("X-Amz-Content-Sha256");
    out->payload_hash = ph != nullptr ? *ph : "UNSIGNED-PAYLOAD";
    for (const auto& kv : req.query)
      if (kv.first != "X-Amz-Signature") query.push_back(kv);
  } else {
    return Err(403, "AccessDenied", "Anonymous access is not allowed: sign the request (AWS Signature Version 4)");
  }

  std::vector<std::string> sc = Split(scope, '/');
  if (sc.size() != 4 || sc[2] != "s3" || sc[3] != "aws4_request")
    return Err(400, presigned ? "AuthorizationQueryParametersError" : "AuthorizationHeaderMalformed",
               "The credential scope must be DATE/REGION/s3/aws4_request");
  if (sc[1] != region_)
    return Err(400, presigned ? "AuthorizationQueryParametersError" : "AuthorizationHeaderMalformed",
               "The region '" + sc[1] + "' is wrong; expecting '" + region_ + "'");
  int64_t t = ParseAmzDate(amz_date);
  if (t < 0 || amz_date.compare(0, 8, sc[0]) != 0)
    return Err(403, "AccessDenied", "The request date is malformed or does not match the credential scope");
  if (presigned) {
    if (t - now_s > kSkewSeconds) return Err(403, "AccessDenied", "Request is not valid yet");
    if (now_s > t + expires) return Err(403, "AccessDenied", "Request has expired");
  } else if (std::llabs(now_s - t) > kSkewSeconds) {
    return Err(403, "RequestTimeTooSkewed", "The difference between the request time and the server's time is too large");
  }

  std::string secret;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const Key& k : keys_)
      if (k.access_key == access_key) {
        secret = k.secret_key;
        out->grant = k.grant;
      }
  }
  if (out->grant == nullptr)
    return Err(403, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records");

  ufs::s3::SignInput in;
  in.method = req.method;
  in.path = req.path;
  in.query = std::move(query);
  for (const std::string& name : Split(signed_headers, ';')) {
    bool any = false;
    for (const auto& [k, v] : req.headers)
      if (k == name) {
        in.headers.emplace_back(k, v);
        any = true;
      }
    if (!any) return Err(403, "SignatureDoesNotMatch", "A signed header is missing: " + name);
  }
  in.payload_hash = out->payload_hash;
  in.region = sc[1];
  in.amz_date = amz_date;
  ufs::s3::Signature want = ufs::s3::SignV4(in, {access_key, secret, ""});
  if (want.signed_headers != signed_headers || want.signature.size() != signature.size() ||
      CRYPTO_memcmp(want.signature.data(), signature.data(), signature.size()) != 0) {
    out->grant = nullptr;
    return Err(403, "SignatureDoesNotMatch",
               "The request signature we calculated does not match the signature you provided. Check your key and signing method.");
  }
  out->signing_key = ufs::s3::SigningKey(secret, sc[0], sc[1], "s3");
  out->scope = scope;
  out->amz_date = amz_date;
  out->seed_signature = signature;
  return {};
}

}  // namespace strata::gateway
