// Hashes and encodings: SHA-256 / HMAC for SigV4 (OpenSSL), xxh3 for block
// checksums and fixed-width index keys, hex, URI percent-encoding.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace strata {

std::string Sha256(std::string_view data);                          // raw 32 bytes
std::string Md5(std::string_view data);                             // raw 16 bytes
std::string HmacSha256(std::string_view key, std::string_view data);  // raw 32 bytes
std::string Hex(std::string_view raw);                               // lowercase
uint64_t Xxh64(const void* data, size_t len);                        // XXH3 64-bit
// 16-byte XXH3-128 digest of `s`, big-endian: a fixed-width index key.
std::string KeyHash128(std::string_view s);

// RFC 3986 percent-encoding as SigV4 wants it: unreserved characters
// (A-Z a-z 0-9 - _ . ~) stay; everything else is %XX (uppercase). With
// keep_slash, '/' stays too (object keys in the path).
std::string UriEncode(std::string_view s, bool keep_slash);
// A query string: names and values URI-encoded, sorted by name then value,
// "a=1&b=2". SigV4's canonical query, and what every store is sent.
std::string EncodeQuery(const std::vector<std::pair<std::string, std::string>>& query);
// Standard base64 with padding; Unbase64 is false for anything malformed.
std::string Base64(std::string_view raw);
bool Unbase64(std::string_view b64, std::string* raw);
// 0-15 for a hex digit (either case), -1 for anything else.
int HexValue(char c);
// Decodes %XX; with plus_is_space, '+' becomes ' ' (form encoding). Invalid
// escapes are kept literally.
std::string UriDecode(std::string_view s, bool plus_is_space = false);

}  // namespace strata
