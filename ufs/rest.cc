#include "ufs/rest.h"

#include <curl/curl.h>
#include <strings.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <random>
#include <thread>

#include "agent/base/clock.h"
#include "agent/base/hash.h"
#include "agent/base/log.h"
#include "agent/base/thread_pool.h"
#include "ufs/s3/xml.h"

namespace strata::ufs::rest {
namespace {

struct CurlDeleter {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
struct SlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};

// One easy handle per thread: curl keeps that handle's connections alive.
CURL* ThreadHandle() {
  thread_local std::unique_ptr<CURL, CurlDeleter> handle;
  if (!handle) handle.reset(curl_easy_init());
  else curl_easy_reset(handle.get());
  return handle.get();
}

struct Transfer {
  const Request* req;
  Response* resp;
  bool overflow = false;
  size_t sent = 0;  // of req->body
  // Stall detection: when bytes last moved either way, and how long they may not.
  int64_t moved_ms = 0;
  curl_off_t moved_total = -1;
  int64_t stall_ms = 0;
  bool stalled = false;
};

// curl can resend a body (a reused connection found dead, a redirect): it
// rewinds here.
int OnSeek(void* arg, curl_off_t offset, int origin) noexcept {
  auto* t = static_cast<Transfer*>(arg);
  if (origin != SEEK_SET || offset < 0 || static_cast<size_t>(offset) > t->req->body_len) return CURL_SEEKFUNC_FAIL;
  t->sent = static_cast<size_t>(offset);
  return CURL_SEEKFUNC_OK;
}

// Fails a try when no byte has moved for stall_ms once the answer has begun:
// a store that sends its headers and then nothing (or stops mid-body) costs
// a fraction of the deadline, and the retry still fits in it. curl's
// low-speed limit averages over whole seconds and would let a stall eat the
// whole deadline. Before the answer begins the store may be working (a
// CompleteMultipartUpload or a copy of a large object sends nothing for
// seconds); asking again then would run the same work twice at once, so
// only the deadline bounds that wait.
int OnProgress(void* arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow) noexcept {
  (void)dltotal, (void)ultotal;
  auto* t = static_cast<Transfer*>(arg);
  int64_t now = NowMonoMs();
  curl_off_t total = dlnow + ulnow;
  if (total != t->moved_total || t->resp->http_status == 0) {
    t->moved_total = total;
    t->moved_ms = now;
    return 0;
  }
  if (now - t->moved_ms < t->stall_ms) return 0;
  t->stalled = true;
  return 1;  // aborts with CURLE_ABORTED_BY_CALLBACK
}

size_t OnUpload(char* out, size_t size, size_t n, void* arg) noexcept {
  auto* t = static_cast<Transfer*>(arg);
  size_t len = std::min(size * n, t->req->body_len - t->sent);
  if (len > 0) std::memcpy(out, t->req->body + t->sent, len);
  t->sent += len;
  return len;
}

size_t OnBody(char* data, size_t size, size_t n, void* arg) noexcept {
  auto* t = static_cast<Transfer*>(arg);
  size_t len = size * n;
  // Errors always land in body so they can be parsed; data in the sink.
  if (t->req->sink != nullptr && t->resp->http_status / 100 == 2) {
    size_t room = t->req->sink_len - t->resp->sink_written;
    if (len > room) {
      t->overflow = true;
      return 0;  // more than asked for: abort rather than overrun
    }
    std::memcpy(t->req->sink + t->resp->sink_written, data, len);
    t->resp->sink_written += len;
  } else {
    if (t->resp->body.size() + len > (64u << 20)) return 0;
    t->resp->body.append(data, len);
  }
  return len;
}

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\r' || s.back() == '\n' || s.back() == ' ')) s.pop_back();
  size_t i = 0;
  while (i < s.size() && s[i] == ' ') i++;
  return s.substr(i);
}

size_t OnHeader(char* data, size_t size, size_t n, void* arg) noexcept {
  auto* t = static_cast<Transfer*>(arg);
  size_t len = size * n;
  std::string line(data, len);
  if (line.rfind("HTTP/", 0) == 0) {
    // A new response (after 100-continue or a redirect): keep only the last.
    size_t sp = line.find(' ');
    t->resp->http_status = sp == std::string::npos ? 0 : std::atol(line.c_str() + sp + 1);
    t->resp->headers.clear();
    return len;
  }
  size_t colon = line.find(':');
  if (colon == std::string::npos) return len;
  std::string name = line.substr(0, colon);
  for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  std::string value = Trim(line.substr(colon + 1));
  if (name == "etag") t->resp->etag = value;
  else if (name == "last-modified") t->resp->last_modified = value;
  else if (name == "content-length") t->resp->content_length = std::strtoull(value.c_str(), nullptr, 10);
  else if (name == "content-type") t->resp->content_type = value;
  t->resp->headers.emplace_back(std::move(name), std::move(value));
  return len;
}

}  // namespace

const std::string* Response::Header(std::string_view lowercase_name) const {
  for (const auto& [k, v] : headers)
    if (k == lowercase_name) return &v;
  return nullptr;
}

bool Retryable(const Response& r) {
  // 501 Not Implemented is an answer, not a hiccup: asking again changes nothing.
  if (r.http_status == 501 || r.error_code == "NotImplemented") return false;
  return r.http_status >= 500 || r.http_status == 429 || r.error_code == "SlowDown" ||
         r.error_code == "RequestTimeout" || r.error_code == "Throttling" || r.error_code == "ServerBusy" ||
         r.error_code == "OperationTimedOut";
}

Status RunParallel(uint64_t n, int threads, const std::function<Status(uint64_t i, std::vector<char>* scratch)>& fn) {
  std::atomic<uint64_t> next{0};
  std::mutex mu;
  Status failed;
  auto worker = [&] {
    std::vector<char> scratch;
    for (;;) {
      {
        std::lock_guard<std::mutex> lock(mu);
        if (!failed.ok()) return;
      }
      uint64_t i = next++;
      if (i >= n) return;
      Status s = fn(i, &scratch);
      std::lock_guard<std::mutex> lock(mu);
      if (!s.ok() && failed.ok()) failed = s;
    }
  };
  int count = static_cast<int>(std::min<uint64_t>(n, static_cast<uint64_t>(std::max(1, threads))));
  std::vector<std::thread> pool;
  for (int t = 1; t < count; t++) pool.emplace_back(worker);
  worker();
  for (std::thread& t : pool) t.join();
  return failed;
}

void RunBeside(const std::function<void()>& aside, const std::function<void()>& here) {
  // Never destroyed: a caller may still be waiting on it at exit.
  static ThreadPool* pool = new ThreadPool(8, "ufs-aside");
  struct Shared {
    std::atomic<bool> claimed{false};
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;  // guarded by mu
  };
  auto shared = std::make_shared<Shared>();
  const std::function<void()>* fn = &aside;  // lives until the caller returns, which waits for it
  pool->Submit(
      [shared, fn] {
        if (shared->claimed.exchange(true)) return;
        (*fn)();
        std::lock_guard<std::mutex> lock(shared->mu);
        shared->done = true;
        shared->cv.notify_one();
      },
      true);
  here();
  if (!shared->claimed.exchange(true)) {
    aside();
    return;
  }
  std::unique_lock<std::mutex> lock(shared->mu);
  shared->cv.wait(lock, [&] { return shared->done; });
}

Client::Client(Options opts, Counters* counters, Signer sign, std::string name)
    : opts_(std::move(opts)), counters_(counters), sign_(std::move(sign)), name_(std::move(name)) {
  const std::string& ep = opts_.endpoint;
  size_t sep = ep.find("://");
  scheme_ = sep == std::string::npos ? "https" : ep.substr(0, sep);
  host_ = sep == std::string::npos ? ep : ep.substr(sep + 3);
  while (!host_.empty() && host_.back() == '/') host_.pop_back();
}

std::string Client::Url(const Request& req) const {
  std::string url = scheme_ + "://" + (req.host.empty() ? host_ : req.host) + UriEncode(req.path, true);
  std::string q = EncodeQuery(req.query);
  if (!q.empty()) url += "?" + q;
  return url;
}

Result<size_t> Client::ReadRange(Request req, const char* range_header, uint64_t off, size_t len,
                                 const std::string& etag, char* buf,
                                 const std::function<Status(const Request&, const Response&)>& error) {
  if (len == 0) return size_t{0};
  req.headers.emplace_back(range_header, "bytes=" + std::to_string(off) + "-" + std::to_string(off + len - 1));
  if (!etag.empty()) req.headers.emplace_back("If-Match", etag);
  req.sink = buf;
  req.sink_len = len;
  Response resp;
  counters_->get_requests++;
  Status s = Execute(req, &resp);
  if (!s.ok()) {
    counters_->errors++;
    return s;
  }
  if (resp.http_status == 206 || resp.http_status == 200) {
    // A 200 means the store ignored the range: only valid from offset 0.
    if (resp.http_status == 200 && off != 0) {
      counters_->errors++;
      return Status::IOError(name_ + ": GET " + Url(req) + ": the store ignored the range");
    }
    // Stores that ignore If-Match still send the version they served.
    if (!etag.empty() && !resp.etag.empty() && resp.etag != etag)
      return Status::Stale(name_ + ": " + Url(req) + " changed (ETag " + resp.etag + ", opened as " + etag + ")");
    counters_->bytes_read += resp.sink_written;
    return resp.sink_written;
  }
  if (resp.http_status == 416) return size_t{0};  // at or past the end
  counters_->errors++;
  if (resp.http_status == 412)
    return Status::Stale(name_ + ": " + Url(req) + " changed since it was opened (412)");
  return error(req, resp);
}

Status Client::Execute(const Request& req, Response* resp) {
  int budget = req.timeout_ms > 0 ? req.timeout_ms : opts_.request_timeout_ms;
  int attempts = req.max_attempts > 0 ? req.max_attempts : opts_.max_attempts;
  int64_t deadline = NowMonoMs() + budget;
  thread_local std::mt19937_64 rng(std::random_device{}());
  Status last;
  for (int attempt = 1;; attempt++) {
    int64_t left = deadline - NowMonoMs();
    if (left <= 0) {
      return Status::Timeout(name_ + ": " + req.method + " " + Url(req) + ": no answer within " +
                             std::to_string(budget) + " ms (" + std::to_string(attempt - 1) +
                             " tries)" + (last.ok() ? "" : ", last: " + last.message()));
    }
    *resp = Response();
    last = Once(req, resp, left);
    if (last.ok() && resp->http_status / 100 == 2 && req.check_body && !req.check_body(*resp)) {
      last = Status::Corrupt("a " + std::to_string(resp->http_status) + " answer with a damaged body (" +
                             std::to_string(resp->body.size()) + " bytes)");
    }
    bool retry = !last.ok() ? last.code() != Status::Code::kInvalidArgument : Retryable(*resp);
    if (!retry) {
      if (last.ok() || last.code() == Status::Code::kInvalidArgument) return last;
      return last.With(name_ + ": " + req.method + " " + Url(req));
    }
    if (last.ok()) {
      last = Status::Unavailable(std::to_string(resp->http_status) + " " + resp->error_code);
    }
    if (attempt >= attempts) {
      return Status::Unavailable(name_ + ": " + req.method + " " + Url(req) + ": " + last.message() +
                                 " after " + std::to_string(attempt) + " tries");
    }
    counters_->retries++;
    // Full jitter: sleep uniformly in [0, min(cap, base * 2^attempt)).
    int64_t cap = std::min<int64_t>(5000, 100LL << std::min(attempt, 10));
    int64_t sleep_ms = std::uniform_int_distribution<int64_t>(cap / 4, cap)(rng);
    sleep_ms = std::min<int64_t>(sleep_ms, std::max<int64_t>(0, deadline - NowMonoMs()));
    LOG_INFO("%s: %s %s: %s, retry %d in %lld ms", name_.c_str(), req.method.c_str(), req.path.c_str(),
              last.message().c_str(), attempt, static_cast<long long>(sleep_ms));
    std::this_thread::sleep_for(std::chrono::milliseconds(sleep_ms));
  }
}

Status Client::Once(const Request& req, Response* resp, long timeout_ms) {
  CURL* c = ThreadHandle();
  if (c == nullptr) return Status::IOError(name_ + ": curl_easy_init failed");
  std::string url = Url(req);
  const std::string& host = req.host.empty() ? host_ : req.host;
  Pairs headers = req.headers;
  if (sign_) sign_(req, host, &headers);

  std::unique_ptr<curl_slist, SlistDeleter> list;
  auto add = [&list](const std::string& h) { list.reset(curl_slist_append(list.release(), h.c_str())); };
  bool typed = false;
  for (const auto& [k, v] : headers) {
    if (strcasecmp(k.c_str(), "host") != 0) add(k + ": " + v);
    typed = typed || strcasecmp(k.c_str(), "content-type") == 0;
  }
  // curl types a POST as a form; an object created so would keep that type.
  if (!typed) add("Content-Type:");
  add("Expect:");

  Transfer t{&req, resp};
  // A third of the try's time, 2 to 10 s, without a byte either way is a stall.
  t.stall_ms = std::clamp<int64_t>(timeout_ms / 3, 2000, 10000);
  t.moved_ms = NowMonoMs();
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, list.get());
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
  curl_easy_setopt(c, CURLOPT_BUFFERSIZE, 512L * 1024);  // fewer callbacks for block-sized GETs
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(std::min<long>(opts_.connect_timeout_ms, timeout_ms)));
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, OnProgress);
  curl_easy_setopt(c, CURLOPT_XFERINFODATA, &t);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, OnBody);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, OnHeader);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &t);
  if (!opts_.ca_bundle.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, opts_.ca_bundle.c_str());
  if (req.method == "HEAD") {
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  } else if (req.method == "PUT" || req.method == "POST") {
    // Always with a length (0 included): some stores refuse a POST without one.
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, OnUpload);
    curl_easy_setopt(c, CURLOPT_READDATA, &t);
    curl_easy_setopt(c, CURLOPT_SEEKFUNCTION, OnSeek);
    curl_easy_setopt(c, CURLOPT_SEEKDATA, &t);
    curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(req.body_len));
    if (req.method == "POST") curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "POST");
  } else if (req.method != "GET") {
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req.method.c_str());
  }

  CURLcode rc = curl_easy_perform(c);
  if (rc == CURLE_WRITE_ERROR && t.overflow)
    return Status::Corrupt(name_ + ": GET " + url + ": store sent more bytes than the range asked for");
  if (rc != CURLE_OK) {
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp->http_status);
    std::string what = curl_easy_strerror(rc);
    if (t.stalled) return Status::Timeout("no byte moved for " + std::to_string(t.stall_ms) + " ms (stalled)");
    if (rc == CURLE_OPERATION_TIMEDOUT) return Status::Timeout(what);
    if (rc == CURLE_URL_MALFORMAT || rc == CURLE_UNSUPPORTED_PROTOCOL)
      return Status::InvalidArgument(name_ + ": bad endpoint URL " + url + ": " + what);
    return Status::Unavailable(what);
  }
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp->http_status);
  // Errors come as <Error>; CompleteMultipartUpload and CopyObject may send
  // one with a 200 after the headers went out.
  if (!resp->body.empty() && (resp->http_status >= 300 || req.method != "GET") &&
      resp->body.find("<Error>") != std::string::npos) {
    Result<s3::XmlNode> err = s3::ParseXml(resp->body);
    if (err.ok() && err->name == "Error") {
      resp->error_code = err->ChildText("Code");
      resp->error_message = err->ChildText("Message");
      if (resp->http_status < 300 && resp->error_code == "InternalError") resp->http_status = 500;
    }
  }
  if (resp->error_code.empty() && resp->http_status >= 300)
    if (const std::string* code = resp->Header("x-ms-error-code")) resp->error_code = *code;
  return Status::OK();
}

}  // namespace strata::ufs::rest
