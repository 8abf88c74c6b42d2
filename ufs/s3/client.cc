#include "ufs/s3/client.h"

#include <ctime>

#include "agent/base/hash.h"

namespace strata::ufs::s3 {
namespace {

const std::string kEmptySha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

rest::Options RestOptions(const S3Options& o) {
  rest::Options r;
  r.endpoint = o.endpoint.empty() ? "https://s3." + o.region + ".amazonaws.com" : o.endpoint;
  r.connect_timeout_ms = o.connect_timeout_ms;
  r.request_timeout_ms = o.request_timeout_ms;
  r.max_attempts = o.max_attempts;
  r.ca_bundle = o.ca_bundle;
  return r;
}

}  // namespace

Client::Client(S3Options opts, Counters* counters)
    : opts_(std::move(opts)),
      keys_{opts_.access_key, opts_.secret_key, opts_.session_token},
      http_(RestOptions(opts_), counters,
            [this](const rest::Request& req, const std::string& host, Pairs* headers) {
              Credentials keys;
              {
                std::lock_guard<std::mutex> l(keys_mu_);
                keys = keys_;
              }
              SignInput in;
              in.method = req.method;
              in.path = req.path;
              in.query = req.query;
              in.region = opts_.region;
              in.amz_date = AmzDate(std::time(nullptr));
              in.payload_hash = req.body_len > 0 ? Hex(Sha256(std::string_view(req.body, req.body_len))) : kEmptySha256;
              headers->emplace_back("x-amz-date", in.amz_date);
              headers->emplace_back("x-amz-content-sha256", in.payload_hash);
              if (!keys.session_token.empty()) headers->emplace_back("x-amz-security-token", keys.session_token);
              if (keys.access_key.empty()) return;  // anonymous
              in.headers = *headers;
              in.headers.emplace_back("host", host);
              headers->emplace_back("Authorization", SignV4(in, keys).authorization);
            },
            "s3") {}

void Client::SetKeys(Credentials keys) {
  std::lock_guard<std::mutex> l(keys_mu_);
  keys_ = std::move(keys);
}

rest::Request Client::ToRest(const Request& req) const {
  rest::Request r;
  r.method = req.method;
  if (!opts_.path_style) r.host = req.bucket + "." + http_.host();
  r.path = opts_.path_style ? "/" + req.bucket + "/" + req.key : "/" + req.key;
  r.query = req.query;
  r.headers = req.headers;
  r.sink = req.sink;
  r.sink_len = req.sink_len;
  r.body = req.body;
  r.body_len = req.body_len;
  r.timeout_ms = req.timeout_ms;
  r.max_attempts = req.max_attempts;
  r.check_body = req.check_body;
  return r;
}

std::string Client::Url(const Request& req) const { return http_.Url(ToRest(req)); }

Result<size_t> Client::ReadRange(const Request& req, uint64_t off, size_t len, const std::string& etag, char* buf,
                                 const std::function<Status(const rest::Response&)>& error) {
  return http_.ReadRange(ToRest(req), "Range", off, len, etag, buf,
                         [&](const rest::Request&, const rest::Response& r) { return error(r); });
}

Status Client::Execute(const Request& req, Response* resp) {
  *resp = Response();
  Status s = http_.Execute(ToRest(req), resp);
  for (const auto& [k, v] : resp->headers)
    if (k.rfind("x-amz-meta-", 0) == 0) resp->meta.emplace_back(k.substr(11), v);
  return s;
}

}  // namespace strata::ufs::s3
