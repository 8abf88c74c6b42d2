// Fixed-layout binary encoding of index values: little helpers so every table
// row is written and read the same way. Integers are big-endian (keys sort
// numerically); strings are length-prefixed.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace strata::index {

class Writer {
 public:
  void U8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void U32(uint32_t v) {
    for (int i = 3; i >= 0; i--) out_.push_back(static_cast<char>(v >> (8 * i)));
  }
  void U64(uint64_t v) {
    for (int i = 7; i >= 0; i--) out_.push_back(static_cast<char>(v >> (8 * i)));
  }
  void I64(int64_t v) { U64(static_cast<uint64_t>(v)); }
  void Str(std::string_view s) {
    U32(static_cast<uint32_t>(s.size()));
    out_.append(s);
  }
  std::string& data() { return out_; }

 private:
  std::string out_;
};

// Reads what Writer wrote. Reading past the end sets ok() to false and yields
// zeros; callers check ok() once at the end.
class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  uint8_t U8() { return Need(1) ? static_cast<uint8_t>(in_[pos_++]) : 0; }
  uint32_t U32() {
    if (!Need(4)) return 0;
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v = (v << 8) | static_cast<uint8_t>(in_[pos_++]);
    return v;
  }
  uint64_t U64() {
    if (!Need(8)) return 0;
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = (v << 8) | static_cast<uint8_t>(in_[pos_++]);
    return v;
  }
  int64_t I64() { return static_cast<int64_t>(U64()); }
  std::string Str() {
    uint32_t n = U32();
    if (!Need(n)) return {};
    std::string s(in_.substr(pos_, n));
    pos_ += n;
    return s;
  }
  bool ok() const { return ok_; }
  // Everything read: fields a newer writer appends are absent.
  bool done() const { return pos_ == in_.size(); }

 private:
  bool Need(size_t n) {
    if (!ok_ || in_.size() - pos_ < n) ok_ = false;
    return ok_;
  }
  std::string_view in_;
  size_t pos_ = 0;
  bool ok_ = true;
};

}  // namespace strata::index
