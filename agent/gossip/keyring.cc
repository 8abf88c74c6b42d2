#include "agent/gossip/keyring.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <memory>
#include <sstream>

namespace strata::gossip {

namespace {
constexpr uint8_t kVersion = 1;
constexpr size_t kNonce = 12;

struct CtxFree {
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};
using Ctx = std::unique_ptr<EVP_CIPHER_CTX, CtxFree>;

std::string Trim(std::string s) {
  auto space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (!s.empty() && space(s.back())) s.pop_back();
  size_t i = 0;
  while (i < s.size() && space(s[i])) i++;
  return s.substr(i);
}

// Opens the ciphertext spans with `key`, the plaintext of each into `outs`
// (which may be the spans themselves); false when the tag does not match.
bool OpenWith(const Key& key, const uint8_t* head, const std::vector<Keyring::Span>& text,
              const std::vector<uint8_t*>& outs, const uint8_t* tag_at, std::string_view aad) {
  Ctx ctx(EVP_CIPHER_CTX_new());
  int n = 0;
  if (!ctx || EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key.data(), head + 1) != 1) return false;
  if (EVP_DecryptUpdate(ctx.get(), nullptr, &n, reinterpret_cast<const uint8_t*>(aad.data()),
                        static_cast<int>(aad.size())) != 1)
    return false;
  uint8_t tag[Keyring::kTag];
  std::copy(tag_at, tag_at + Keyring::kTag, tag);
  if (EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, Keyring::kTag, tag) != 1) return false;
  for (size_t i = 0; i < text.size(); i++) {
    if (text[i].len > 0 && EVP_DecryptUpdate(ctx.get(), outs[i], &n, reinterpret_cast<const uint8_t*>(text[i].p),
                                             static_cast<int>(text[i].len)) != 1)
      return false;
  }
  uint8_t fin_out[16];
  int fin = 0;
  return EVP_DecryptFinal_ex(ctx.get(), fin_out, &fin) == 1;
}
}  // namespace

Result<Key> ParseKey(std::string_view base64) {
  std::string b(Trim(std::string(base64)));
  if (b.size() != 44) return Status::InvalidArgument("a cluster key is 32 bytes in base64 (44 characters), got " +
                                                     std::to_string(b.size()) + " characters");
  uint8_t out[33];
  int n = EVP_DecodeBlock(out, reinterpret_cast<const uint8_t*>(b.data()), static_cast<int>(b.size()));
  if (n != 33 || b[43] != '=' || b[42] == '=') return Status::InvalidArgument("a cluster key must be base64 of 32 bytes");
  Key k;
  std::copy(out, out + 32, k.begin());
  return k;
}

std::string FormatKey(const Key& key) {
  uint8_t out[64];
  int n = EVP_EncodeBlock(out, key.data(), static_cast<int>(key.size()));
  return std::string(reinterpret_cast<char*>(out), static_cast<size_t>(n));
}

Result<Keyring> Keyring::Load(const std::string& file) {
  std::ifstream in(file);
  if (!in) return Status::FromErrno(errno, "cluster key file " + file);
  Keyring ring;
  std::string line;
  int no = 0;
  while (std::getline(in, line)) {
    no++;
    line = Trim(line);
    if (line.empty() || line[0] == '#') continue;
    Result<Key> k = ParseKey(line);
    if (!k.ok()) return Status::InvalidArgument(file + ":" + std::to_string(no) + ": " + k.status().message());
    if (std::find(ring.keys_.begin(), ring.keys_.end(), *k) == ring.keys_.end()) ring.keys_.push_back(*k);
  }
  if (ring.keys_.empty()) return Status::InvalidArgument("cluster key file " + file + " holds no key");
  ring.file_ = file;
  return ring;
}

Keyring Keyring::FromKeys(std::vector<Key> keys) {
  Keyring ring;
  ring.keys_ = std::move(keys);
  return ring;
}

Keyring::Keyring(Keyring&& o) noexcept {
  std::lock_guard<std::mutex> lock(o.mu_);
  keys_ = std::move(o.keys_);
  file_ = std::move(o.file_);
}

Keyring& Keyring::operator=(Keyring&& o) noexcept {
  if (this != &o) {
    std::scoped_lock lock(mu_, o.mu_);
    keys_ = std::move(o.keys_);
    file_ = std::move(o.file_);
  }
  return *this;
}

Status Keyring::SealInPlace(char* buf, size_t plain_len, std::string_view aad) const {
  Key key;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (keys_.empty()) return Status::Unavailable("no cluster key installed");
    key = keys_[0];
  }
  auto* p = reinterpret_cast<uint8_t*>(buf);
  p[0] = kVersion;
  if (RAND_bytes(p + 1, kNonce) != 1) return Status::IOError("no random bytes for a nonce");
  Ctx ctx(EVP_CIPHER_CTX_new());
  int n = 0;
  uint8_t* text = p + 1 + kNonce;
  if (!ctx || EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key.data(), p + 1) != 1 ||
      EVP_EncryptUpdate(ctx.get(), nullptr, &n, reinterpret_cast<const uint8_t*>(aad.data()),
                        static_cast<int>(aad.size())) != 1 ||
      (plain_len > 0 && EVP_EncryptUpdate(ctx.get(), text, &n, text, static_cast<int>(plain_len)) != 1) ||
      EVP_EncryptFinal_ex(ctx.get(), text + plain_len, &n) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTag, text + plain_len) != 1)
    return Status::IOError("AES-GCM seal failed");
  return Status::OK();
}

Result<std::string> Keyring::Seal(std::string_view plain, std::string_view aad) const {
  std::string out(kOverhead + plain.size(), '\0');
  std::copy(plain.begin(), plain.end(), out.begin() + kHead);
  STRATA_RETURN_IF_ERROR(SealInPlace(out.data(), plain.size(), aad));
  return out;
}

Status Keyring::OpenInPlace(char* buf, size_t sealed_len, std::string_view aad) const {
  if (sealed_len < kOverhead) return Status::InvalidArgument("sealed message too short");
  return OpenSpans(buf, {{buf + kHead, sealed_len - kOverhead}}, buf + sealed_len - kTag, aad);
}

Status Keyring::OpenSpans(const char* head, const std::vector<Span>& text, const char* tag, std::string_view aad) const {
  auto* h = reinterpret_cast<const uint8_t*>(head);
  if (h[0] != kVersion) return Status::InvalidArgument("unknown seal version");
  std::vector<Key> keys;
  {
    std::lock_guard<std::mutex> lock(mu_);
    keys = keys_;
  }
  size_t total = 0;
  std::vector<uint8_t*> in_place;
  for (const Span& s : text) {
    total += s.len;
    in_place.push_back(reinterpret_cast<uint8_t*>(s.p));
  }
  const auto* t = reinterpret_cast<const uint8_t*>(tag);
  // A failed try must leave the ciphertext as it was for the next key: the
  // keys before the last open into a scratch copy, the last one in place.
  for (size_t i = 0; i < keys.size(); i++) {
    if (i + 1 == keys.size()) {
      if (OpenWith(keys[i], h, text, in_place, t, aad)) return Status::OK();
      break;
    }
    std::vector<uint8_t> scratch(total + 16);
    std::vector<uint8_t*> outs;
    size_t at = 0;
    for (const Span& s : text) {
      outs.push_back(scratch.data() + at);
      at += s.len;
    }
    if (OpenWith(keys[i], h, text, outs, t, aad)) {
      for (size_t k = 0; k < text.size(); k++) std::copy(outs[k], outs[k] + text[k].len, text[k].p);
      return Status::OK();
    }
  }
  return Status::PermissionDenied("no installed key opens the message (wrong key or cluster name)");
}

Result<std::string> Keyring::Open(std::string_view sealed, std::string_view aad) const {
  std::string copy(sealed);
  STRATA_RETURN_IF_ERROR(OpenInPlace(copy.data(), copy.size(), aad));
  return copy.substr(kHead, copy.size() - kOverhead);
}

std::vector<std::string> Keyring::List() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> out;
  for (const Key& k : keys_) out.push_back(FormatKey(k));
  return out;
}

size_t Keyring::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return keys_.size();
}

Status Keyring::Install(const Key& key) {
  std::lock_guard<std::mutex> lock(mu_);
  if (std::find(keys_.begin(), keys_.end(), key) != keys_.end()) return Status::OK();
  keys_.push_back(key);
  return SaveLocked();
}

Status Keyring::Use(const Key& key) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = std::find(keys_.begin(), keys_.end(), key);
  if (it == keys_.end()) return Status::NotFound("that key is not installed: install it first");
  std::rotate(keys_.begin(), it, it + 1);
  return SaveLocked();
}

Status Keyring::Remove(const Key& key) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = std::find(keys_.begin(), keys_.end(), key);
  if (it == keys_.end()) return Status::NotFound("that key is not installed");
  if (it == keys_.begin()) return Status::InvalidArgument("the primary key cannot be removed: use another key first");
  keys_.erase(it);
  return SaveLocked();
}

Status Keyring::SaveLocked() const {
  if (file_.empty()) return Status::OK();
  std::string tmp = file_ + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    if (!out) return Status::FromErrno(errno, "write " + tmp);
    out << "# strata cluster keys, base64, the primary first (rewritten by agentctl keys)\n";
    for (const Key& k : keys_) out << FormatKey(k) << "\n";
    if (!out.flush()) return Status::FromErrno(errno, "write " + tmp);
  }
  ::chmod(tmp.c_str(), 0600);
  if (::rename(tmp.c_str(), file_.c_str()) != 0) return Status::FromErrno(errno, "rename " + tmp);
  return Status::OK();
}

}  // namespace strata::gossip
