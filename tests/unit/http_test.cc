#include <catch2/catch.hpp>

#include "agent/service/cache_service.h"
#include "agent/control/http.h"

using Api = strata::service::CacheService;
using strata::control::HttpParser;

TEST_CASE("requests parse, in one piece or byte by byte", "[unit]") {
  std::string raw =
      "POST /v1/load?path=data%2Fa%20b&recursive=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi";
  HttpParser whole;
  REQUIRE(whole.Feed(raw) == HttpParser::State::kDone);
  CHECK(whole.request().method == "POST");
  CHECK(whole.request().path == "/v1/load");
  CHECK(whole.request().query.at("path") == "data/a b");
  CHECK(whole.request().query.at("recursive") == "1");
  CHECK(whole.request().headers.at("host") == "x");
  CHECK(whole.request().body == "hi");
  HttpParser bytes;
  HttpParser::State st = HttpParser::State::kNeedMore;
  for (char c : raw) st = bytes.Feed(std::string_view(&c, 1));
  CHECK(st == HttpParser::State::kDone);
  CHECK(bytes.request().body == "hi");
}

TEST_CASE("malformed requests are errors", "[unit]") {
  for (std::string bad : {"GARBAGE\r\n\r\n", "GET /x HTTP/2.0\r\n\r\n", "get /x HTTP/1.1\r\n\r\n",
                          "GET x HTTP/1.1\r\n\r\n", "GET /x HTTP/1.1\r\nNoColon\r\n\r\n",
                          "GET /x HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
                          "GET /x HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n",
                          "GET /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
                          "GET /x HTTP/1.1\r\nContent-Length: 1\r\n\r\nab"}) {
    HttpParser p;
    INFO(bad);
    CHECK(p.Feed(bad) == HttpParser::State::kError);
    CHECK_FALSE(p.error().empty());
  }
  HttpParser huge;
  CHECK(huge.Feed("GET /" + std::string(20000, 'a')) == HttpParser::State::kError);
}

TEST_CASE("user paths resolve under the mount point or relative to its root", "[unit]") {
  CHECK(*Api::ResolveUserPath("/mnt/data", "/mnt/data") == "");
  CHECK(*Api::ResolveUserPath("/mnt/data", "/mnt/data/a/b.txt") == "a/b.txt");
  CHECK(*Api::ResolveUserPath("/mnt/data", "a//b/") == "a/b");
  CHECK(*Api::ResolveUserPath("/mnt/data", "") == "");
  auto outside = Api::ResolveUserPath("/mnt/data", "/mnt/database/x");
  REQUIRE_FALSE(outside.ok());
  CHECK(outside.status().message().find("outside the mount") != std::string::npos);
  CHECK_FALSE(Api::ResolveUserPath("/mnt/data", "/etc/passwd").ok());
  CHECK_FALSE(Api::ResolveUserPath("/mnt/data", "a/../../etc").ok());
}
