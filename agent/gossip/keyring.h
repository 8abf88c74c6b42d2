// The cluster keyring: symmetric 32-byte keys that authenticate and encrypt
// every gossip packet and every peer-stream frame (AES-256-GCM), the
// memberlist convention: seal with the primary key, open with any installed
// key, so keys rotate on a running cluster (install everywhere, use, remove).
//
// A sealed message is  version(1) | nonce(12) | ciphertext | tag(16)  with
// "strata/<cluster-name>/<purpose>" as the associated data: two clusters
// that share a key, or a gossip packet replayed as a stream frame, never
// open.
//
// The key file holds one base64 key per line, the primary first; `#` lines
// and blank lines are skipped. Changes through Install/Use/Remove are
// written back to the file (atomically) when it was loaded from one.
//
// Thread safety: every method may be called from any thread.
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "agent/base/status.h"

namespace strata::gossip {

using Key = std::array<uint8_t, 32>;

Result<Key> ParseKey(std::string_view base64);
std::string FormatKey(const Key& key);

class Keyring {
 public:
  static constexpr size_t kOverhead = 1 + 12 + 16;

  // An empty keyring: Seal fails, Open fails (a cluster needs a key).
  Keyring() = default;
  static Result<Keyring> Load(const std::string& file);
  static Keyring FromKeys(std::vector<Key> keys);  // the first is the primary
  Keyring(Keyring&& o) noexcept;
  Keyring& operator=(Keyring&& o) noexcept;

  // Sealed `plain` (with the primary key); `aad` binds the cluster and purpose.
  Result<std::string> Seal(std::string_view plain, std::string_view aad) const;
  // The plaintext, if any installed key opens `sealed` for `aad`.
  Result<std::string> Open(std::string_view sealed, std::string_view aad) const;
  // The same without copies: `p` holds kHead bytes of room, `plain_len`
  // bytes of plaintext, then kTag bytes of room; sealed where it lies.
  static constexpr size_t kHead = 1 + 12, kTag = 16;
  Status SealInPlace(char* p, size_t plain_len, std::string_view aad) const;
  // Opens a sealed message where it lies: the plaintext is at p + kHead,
  // `sealed_len` - kOverhead bytes long.
  Status OpenInPlace(char* p, size_t sealed_len, std::string_view aad) const;
  // The same for a message read in pieces: `head` is its kHead bytes, the
  // ciphertext lies in `text` (in order), `tag` is its kTag bytes. On
  // success each span holds its plaintext; on failure the spans hold
  // unverified bytes that must not be used.
  struct Span {
    char* p;
    size_t len;
  };
  Status OpenSpans(const char* head, const std::vector<Span>& text, const char* tag, std::string_view aad) const;

  std::vector<std::string> List() const;  // base64, primary first
  Status Install(const Key& key);         // added, not used for sealing yet
  Status Use(const Key& key);             // installed key becomes the primary
  Status Remove(const Key& key);          // not the primary
  size_t size() const;

 private:
  Status SaveLocked() const;
  mutable std::mutex mu_;
  std::vector<Key> keys_;  // guarded by mu_; [0] is the primary
  std::string file_;       // "" = not backed by a file
};

}  // namespace strata::gossip
