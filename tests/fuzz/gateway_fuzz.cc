// libFuzzer target for what a gateway client controls before it is trusted:
// the request head parser (request line, headers, percent-decoding of the
// path and query) and the SigV4 check that canonicalizes the parsed request
// (signed headers, query, credential scope, presigned parameters, dates).
// Nothing may crash, hang or read out of bounds, and a request only passes
// the check with the right signature (never here: the key is secret).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <unistd.h>

#include "agent/gateway/auth.h"
#include "agent/gateway/request.h"

namespace {
std::unique_ptr<strata::gateway::Auth> auth;
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  char path[] = "/tmp/strata-gwfuzz-XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0) std::abort();
  const std::string creds = "{\"keys\": [{\"access_key\": \"AKIDFUZZ\", \"secret_key\": \"fuzz-secret\"}], "
                            "\"tokens\": [{\"token\": \"0123456789abcdef0123\"}]}";
  if (write(fd, creds.data(), creds.size()) != static_cast<ssize_t>(creds.size())) std::abort();
  close(fd);
  auto a = strata::gateway::Auth::Load(path, "us-east-1");
  unlink(path);
  if (!a.ok()) std::abort();
  auth = std::move(a).value();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  strata::gateway::Request r;
  std::string why;
  if (!strata::gateway::ParseRequestHead(in, 100, &r, &why)) return 0;
  strata::gateway::Verified v;
  strata::gateway::S3Error e = auth->VerifyS3(r, 1369353600, &v);
  if (e.ok()) std::abort();  // a forged request passed
  (void)auth->VerifyToken(r);
  return 0;
}
