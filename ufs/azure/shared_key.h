// Azure Storage credentials and request signing: Shared Key (HMAC-SHA256
// over the canonicalized headers and resource), account SAS tokens as given,
// and service SAS tokens made here (Put Block From URL's source). Proven
// against the Azure SDK for JavaScript's StorageSharedKeyCredential
// (tests/unit/azure_test.cc).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "agent/base/status.h"

namespace strata::ufs::azure {

using Pairs = std::vector<std::pair<std::string, std::string>>;

// The x-ms-version every request names.
constexpr char kApiVersion[] = "2021-12-02";

struct Credentials {
  std::string account;
  std::string key;  // base64, as the portal shows it; empty with a SAS or anonymous
  std::string sas;  // query string without '?', empty unless a SAS is used
  std::string endpoint;  // "https://ACCOUNT.blob.core.windows.net", or BlobEndpoint=
};

// From AZURE_STORAGE_CONNECTION_STRING, else AZURE_STORAGE_ACCOUNT with
// AZURE_STORAGE_KEY or AZURE_STORAGE_SAS_TOKEN. `endpoint_override`
// (--azure-endpoint) wins over both.
Result<Credentials> CredentialsFromEnv(const std::string& endpoint_override);
// Parses "DefaultEndpointsProtocol=...;AccountName=...;AccountKey=...;
// BlobEndpoint=...;SharedAccessSignature=..." (and UseDevelopmentStorage=true).
Result<Credentials> ParseConnectionString(const std::string& s);

struct SignInput {
  std::string method;
  std::string encoded_path;  // as sent, from '/': "/account/container/a%20b"
  Pairs query;               // raw names and values
  Pairs headers;             // every header sent (names in any case)
};

struct Signed {
  std::string string_to_sign;
  std::string authorization;  // "SharedKey account:signature"
};

// Shared Key for the Blob service (version 2009-09-19 and later).
Result<Signed> SignSharedKey(const SignInput& in, const std::string& account, const std::string& key_b64);

// A service SAS for one blob: read access until `expiry_unix`, for a source
// URL another request reads from. `blob_path` is "/container/blob".
Result<std::string> BlobReadSas(const std::string& account, const std::string& key_b64, const std::string& blob_path,
                                int64_t expiry_unix);

// "Mon, 02 Jan 2006 15:04:05 GMT" for a Unix time.
std::string HttpDate(int64_t unix_seconds);

}  // namespace strata::ufs::azure
