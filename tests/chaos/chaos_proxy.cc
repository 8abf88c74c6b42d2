// A fault-injecting HTTP/1.1 proxy between the agent and an S3 store, for the
// faults a real server will not make on demand (issue 13, item 1).
//
//   chaos_proxy LISTEN_PORT UPSTREAM_PORT
//
// Every request is read whole (head and Content-Length body), forwarded on
// the connection's own upstream connection, and the answer read whole; a
// request chosen for a fault gets one of these instead of the plain answer:
//
//   slowdown     503 SlowDown, not forwarded
//   error500     500 InternalError, not forwarded
//   reset        the connection reset (RST) before any answer, not forwarded
//   lost         forwarded (the store did it), then reset: the answer is lost
//   reset-body   the head and half the body, then a reset
//   short-body   the head (full Content-Length) and half the body, then FIN
//   stall        the head, then silence until the client gives up
//   stall-body   the head and half the body, then silence
//   slow-body    the whole answer at 2 MiB/s (a 4 MiB block in 2 s, inside
//                the tests' 6 s deadline)
//   bad-list     a listing (GET ?list-type=2) cut in half, Content-Length fitted
//   garble-list  a listing with its XML tags broken
//   wrong-etag   a ranged GET answered with another ETag
//
// Control requests on the same port (never forwarded):
//   GET /__chaos/set?kind=K&every=N&rate=P&seed=S&match=M&skip=X
//       every Nth matching request (or each with probability P, seeded), one
//       kind or "mix" (all but wrong-etag, in turn); M and X are substrings
//       of the request line ("GET /", "uploadId") that a request must have
//       and must not have; kind=none stops injecting.
//   GET /__chaos/stats   {"requests":N,"injected":N,"slowdown":N,...}
// Both ports are on 127.0.0.1; a thread per client connection.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

const char* const kKinds[] = {"slowdown", "error500",  "reset",     "lost",        "reset-body", "short-body",
                              "stall",    "stall-body", "slow-body", "bad-list",    "garble-list", "wrong-etag"};
constexpr int kMixKinds = 11;  // the first 11: all but wrong-etag

int g_upstream_port = 0;

struct Plan {
  std::string kind = "none";
  int every = 0;
  double rate = 0;
  std::string match, skip;
  std::mt19937_64 rng{1};
  uint64_t seen = 0;  // matching requests so far
  int mix_next = 0;
};

std::mutex g_mu;
Plan g_plan;                              // guarded by g_mu
std::map<std::string, uint64_t> g_count;  // guarded by g_mu
uint64_t g_requests = 0;                  // guarded by g_mu

bool SendAll(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}
bool SendAll(int fd, const std::string& s) { return SendAll(fd, s.data(), s.size()); }

void Reset(int fd) {
  linger l{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
  ::close(fd);
}

// Reads from fd into buf until it holds a whole message head ("\r\n\r\n").
// Returns the head's length (with the blank line), 0 at EOF or error.
size_t ReadHead(int fd, std::string* buf) {
  for (;;) {
    size_t end = buf->find("\r\n\r\n");
    if (end != std::string::npos) return end + 4;
    if (buf->size() > (1u << 20)) return 0;
    char tmp[65536];
    ssize_t n = ::recv(fd, tmp, sizeof(tmp), 0);
    if (n <= 0) return 0;
    buf->append(tmp, static_cast<size_t>(n));
  }
}

bool ReadN(int fd, std::string* buf, size_t want) {
  while (buf->size() < want) {
    char tmp[262144];
    ssize_t n = ::recv(fd, tmp, std::min(sizeof(tmp), want - buf->size()), 0);
    if (n <= 0) return false;
    buf->append(tmp, static_cast<size_t>(n));
  }
  return true;
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// The value of a header in a message head ("" when absent).
std::string HeaderOf(const std::string& head, const std::string& name) {
  std::string lower = Lower(head);
  size_t at = lower.find("\r\n" + Lower(name) + ":");
  if (at == std::string::npos) return "";
  size_t v = at + 3 + name.size();
  size_t end = head.find("\r\n", v);
  std::string value = head.substr(v, end - v);
  value.erase(0, value.find_first_not_of(' '));
  return value;
}

std::string SetHeader(const std::string& head, const std::string& name, const std::string& value) {
  std::string lower = Lower(head);
  size_t at = lower.find("\r\n" + Lower(name) + ":");
  if (at == std::string::npos) return head.substr(0, head.size() - 2) + name + ": " + value + "\r\n\r\n";
  size_t end = head.find("\r\n", at + 2);
  return head.substr(0, at + 2) + name + ": " + value + head.substr(end);
}

// One whole response from the upstream: its head and body. HEAD answers and
// 1xx/204/304 have no body; chunked bodies are read through to their end.
bool ReadResponse(int fd, std::string* carry, bool head_request, std::string* head, std::string* body) {
  size_t n = ReadHead(fd, carry);
  if (n == 0) return false;
  *head = carry->substr(0, n);
  carry->erase(0, n);
  int status = std::atoi(head->c_str() + 9);
  if (status == 100) return ReadResponse(fd, carry, head_request, head, body);
  body->clear();
  if (head_request || status == 204 || status == 304) return true;
  if (Lower(HeaderOf(*head, "transfer-encoding")) == "chunked") {
    // Re-framed with a Content-Length for the client.
    for (;;) {
      size_t line;
      while ((line = carry->find("\r\n")) == std::string::npos)
        if (!ReadN(fd, carry, carry->size() + 1)) return false;
      size_t len = std::strtoul(carry->c_str(), nullptr, 16);
      if (!ReadN(fd, carry, line + 2 + len + 2)) return false;
      body->append(*carry, line + 2, len);
      carry->erase(0, line + 2 + len + 2);
      if (len == 0) break;
    }
    std::string h = *head;
    size_t at = Lower(h).find("\r\ntransfer-encoding:");
    h.erase(at, h.find("\r\n", at + 2) - at);
    *head = SetHeader(h, "Content-Length", std::to_string(body->size()));
    return true;
  }
  size_t len = std::strtoull(HeaderOf(*head, "content-length").c_str(), nullptr, 10);
  if (!ReadN(fd, carry, len)) return false;
  *body = carry->substr(0, len);
  carry->erase(0, len);
  return true;
}

int DialUpstream() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(g_upstream_port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    ::close(fd);
    return -1;
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return fd;
}

std::string Query(const std::string& target, const std::string& name) {
  size_t q = target.find('?');
  if (q == std::string::npos) return "";
  std::string rest = "&" + target.substr(q + 1);
  size_t at = rest.find("&" + name + "=");
  if (at == std::string::npos) return "";
  size_t v = at + name.size() + 2;
  std::string raw = rest.substr(v, rest.find('&', v) - v), out;
  for (size_t i = 0; i < raw.size(); i++) {
    if (raw[i] == '%' && i + 2 < raw.size()) {
      out.push_back(static_cast<char>(std::strtol(raw.substr(i + 1, 2).c_str(), nullptr, 16)));
      i += 2;
    } else {
      out.push_back(raw[i] == '+' ? ' ' : raw[i]);
    }
  }
  return out;
}

std::string Answer(int status, const std::string& type, const std::string& body) {
  return "HTTP/1.1 " + std::to_string(status) + (status == 200 ? " OK" : " Error") + "\r\nContent-Type: " + type +
         "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

// Handles /__chaos/...; returns the answer.
std::string Control(const std::string& target) {
  std::lock_guard<std::mutex> lock(g_mu);
  if (target.rfind("/__chaos/set", 0) == 0) {
    Plan p;
    p.kind = Query(target, "kind");
    p.every = std::atoi(Query(target, "every").c_str());
    p.rate = std::atof(Query(target, "rate").c_str());
    p.match = Query(target, "match");
    p.skip = Query(target, "skip");
    p.rng.seed(std::strtoull(Query(target, "seed").c_str(), nullptr, 10));
    bool known = p.kind == "none" || p.kind == "mix";
    for (const char* k : kKinds) known = known || p.kind == k;
    if (!known) return Answer(400, "text/plain", "unknown kind " + p.kind + "\n");
    g_plan = p;
    return Answer(200, "text/plain", "ok\n");
  }
  std::string json = "{\"requests\":" + std::to_string(g_requests);
  uint64_t injected = 0;
  for (const char* k : kKinds) {
    json += ",\"" + std::string(k) + "\":" + std::to_string(g_count[k]);
    injected += g_count[k];
  }
  json += ",\"injected\":" + std::to_string(injected) + "}\n";
  return Answer(200, "application/json", json);
}

// The fault for this request ("" = none).
std::string Choose(const std::string& request_line, bool ranged_get, bool listing) {
  std::lock_guard<std::mutex> lock(g_mu);
  g_requests++;
  Plan& p = g_plan;
  if (p.kind == "none") return "";
  if (!p.match.empty() && request_line.find(p.match) == std::string::npos) return "";
  if (!p.skip.empty() && request_line.find(p.skip) != std::string::npos) return "";
  std::string kind = p.kind;
  if (kind == "bad-list" || kind == "garble-list") {
    if (!listing) return "";
  } else if (kind == "wrong-etag") {
    if (!ranged_get) return "";
  }
  p.seen++;
  bool hit = p.every > 0 ? p.seen % static_cast<uint64_t>(p.every) == 0
                         : std::uniform_real_distribution<double>(0, 1)(p.rng) < p.rate;
  if (!hit) return "";
  if (kind == "mix") {
    // In turn, skipping the listing kinds for requests that are not listings.
    for (int tries = 0; tries < kMixKinds; tries++) {
      kind = kKinds[p.mix_next++ % kMixKinds];
      if (listing || (kind != "bad-list" && kind != "garble-list")) break;
    }
  }
  g_count[kind]++;
  return kind;
}

void Serve(int client) {
  int upstream = -1;
  std::string carry, up_carry;
  for (;;) {
    size_t n = ReadHead(client, &carry);
    if (n == 0) break;
    std::string head = carry.substr(0, n);
    carry.erase(0, n);
    size_t len = std::strtoull(HeaderOf(head, "content-length").c_str(), nullptr, 10);
    if (!ReadN(client, &carry, len)) break;
    std::string body = carry.substr(0, len);
    carry.erase(0, len);
    std::string line = head.substr(0, head.find("\r\n"));
    std::string method = line.substr(0, line.find(' '));
    std::string target = line.substr(line.find(' ') + 1);
    target = target.substr(0, target.rfind(' '));
    if (target.rfind("/__chaos/", 0) == 0) {
      if (!SendAll(client, Control(target))) break;
      continue;
    }
    if (Lower(HeaderOf(head, "expect")) == "100-continue") head = SetHeader(head, "Expect", "");
    bool ranged_get = method == "GET" && !HeaderOf(head, "range").empty();
    bool listing = method == "GET" && target.find("list-type=2") != std::string::npos;
    std::string fault = Choose(line, ranged_get, listing);
    if (fault == "slowdown" || fault == "error500") {
      bool slow = fault == "slowdown";
      std::string xml = std::string("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>") +
                        (slow ? "SlowDown" : "InternalError") + "</Code><Message>chaos proxy</Message></Error>";
      if (!SendAll(client, Answer(slow ? 503 : 500, "application/xml", method == "HEAD" ? "" : xml))) break;
      continue;
    }
    if (fault == "reset") {
      Reset(client);
      client = -1;
      break;
    }
    if (upstream < 0 && (upstream = DialUpstream()) < 0) {
      SendAll(client, Answer(502, "text/plain", "chaos proxy: upstream refused\n"));
      break;
    }
    std::string rhead, rbody;
    if (!SendAll(upstream, head) || !SendAll(upstream, body) ||
        !ReadResponse(upstream, &up_carry, method == "HEAD", &rhead, &rbody))
      break;
    if (Lower(HeaderOf(rhead, "connection")) == "close") {
      ::close(upstream);
      upstream = -1;
      up_carry.clear();
    }
    int status = std::atoi(rhead.c_str() + 9);
    size_t half = rbody.size() / 2;
    if (fault == "lost") {
      Reset(client);
      client = -1;
      break;
    }
    if (fault == "reset-body" || fault == "short-body") {
      SendAll(client, rhead);
      SendAll(client, rbody.data(), half);
      if (fault == "reset-body") Reset(client);
      else ::close(client);
      client = -1;
      break;
    }
    if (fault == "stall" || fault == "stall-body") {
      SendAll(client, rhead);
      if (fault == "stall-body") SendAll(client, rbody.data(), half);
      // Silence until the client hangs up (or 10 minutes).
      pollfd p{client, POLLIN, 0};
      ::poll(&p, 1, 600000);
      break;
    }
    if (fault == "slow-body") {
      if (!SendAll(client, rhead)) break;
      bool ok = true;
      for (size_t off = 0; ok && off < rbody.size(); off += 16384) {
        ok = SendAll(client, rbody.data() + off, std::min<size_t>(16384, rbody.size() - off));
        std::this_thread::sleep_for(std::chrono::microseconds(8000));  // 2 MiB/s: a block in 2 s
      }
      if (!ok) break;
      continue;
    }
    if ((fault == "bad-list" || fault == "garble-list") && status == 200) {
      if (fault == "bad-list") rbody.resize(half);
      else
        for (char& c : rbody)
          if (c == '<') c = '{';
      rhead = SetHeader(rhead, "Content-Length", std::to_string(rbody.size()));
    }
    if (fault == "wrong-etag") rhead = SetHeader(rhead, "ETag", "\"0123456789abcdef0123456789abcdef\"");
    if (!SendAll(client, rhead) || !SendAll(client, rbody)) break;
  }
  if (client >= 0) ::close(client);
  if (upstream >= 0) ::close(upstream);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: chaos_proxy LISTEN_PORT UPSTREAM_PORT\n");
    return 2;
  }
  int port = std::atoi(argv[1]);
  g_upstream_port = std::atoi(argv[2]);
  int ls = ::socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  ::setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(ls, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || ::listen(ls, 256) != 0) {
    std::perror("chaos_proxy: listen");
    return 1;
  }
  for (;;) {
    int c = ::accept(ls, nullptr, nullptr);
    if (c < 0) continue;
    ::setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    std::thread(Serve, c).detach();
  }
}
