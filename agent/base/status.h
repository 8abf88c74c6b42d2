// Status and Result<T>: the one way errors travel inside Strata.
//
// A Status is a cheap value: a code plus a human message that carries context
// ("s3: GET bucket/key: 503 SlowDown after 5 tries"). Foreign error spaces
// (errno, MDB_*, CURLcode, HTTP status, uv codes) are translated into a Status
// once, at the module boundary; only the FUSE layer turns a Status into errno.
#pragma once

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace strata {

class [[nodiscard]] Status {
 public:
  enum class Code {
    kOk = 0,
    kNotFound,
    kInvalidArgument,
    kIOError,
    kPermissionDenied,
    kUnavailable,  // the store could not be reached / kept failing
    kTimeout,
    kNoSpace,
    kStale,  // the object changed under us (ETag mismatch)
    kNotADirectory,
    kIsADirectory,
    kAlreadyExists,
    kReadOnly,
    kCorrupt,
    kNotEmpty,      // a directory that still has entries
    kNotSupported,  // the operation has no meaning here (hard links, device nodes)
    kCrossDevice,   // a rename between two stores
    kBusy,          // a mount point or a path in use
  };

  Status() = default;
  static Status OK() { return Status(); }
  static Status NotFound(std::string m) { return Status(Code::kNotFound, std::move(m)); }
  static Status InvalidArgument(std::string m) {
    return Status(Code::kInvalidArgument, std::move(m));
  }
  static Status IOError(std::string m) { return Status(Code::kIOError, std::move(m)); }
  static Status PermissionDenied(std::string m) {
    return Status(Code::kPermissionDenied, std::move(m));
  }
  static Status Unavailable(std::string m) { return Status(Code::kUnavailable, std::move(m)); }
  static Status Timeout(std::string m) { return Status(Code::kTimeout, std::move(m)); }
  static Status NoSpace(std::string m) { return Status(Code::kNoSpace, std::move(m)); }
  static Status Stale(std::string m) { return Status(Code::kStale, std::move(m)); }
  static Status NotADirectory(std::string m) { return Status(Code::kNotADirectory, std::move(m)); }
  static Status IsADirectory(std::string m) { return Status(Code::kIsADirectory, std::move(m)); }
  static Status AlreadyExists(std::string m) { return Status(Code::kAlreadyExists, std::move(m)); }
  static Status ReadOnly(std::string m) { return Status(Code::kReadOnly, std::move(m)); }
  static Status Corrupt(std::string m) { return Status(Code::kCorrupt, std::move(m)); }
  static Status NotEmpty(std::string m) { return Status(Code::kNotEmpty, std::move(m)); }
  static Status NotSupported(std::string m) { return Status(Code::kNotSupported, std::move(m)); }
  static Status CrossDevice(std::string m) { return Status(Code::kCrossDevice, std::move(m)); }
  static Status Busy(std::string m) { return Status(Code::kBusy, std::move(m)); }
  // From an errno value, with context: "open /x: No such file or directory".
  static Status FromErrno(int err, const std::string& context);

  bool ok() const { return code_ == Code::kOk; }
  bool IsNotFound() const { return code_ == Code::kNotFound; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  std::string ToString() const;
  // Prefixes the message with more context: s.With("load /a") -> "load /a: <msg>".
  Status With(const std::string& context) const {
    return ok() ? *this : Status(code_, context + ": " + message_);
  }

 private:
  Status(Code c, std::string m) : code_(c), message_(std::move(m)) {}
  Code code_ = Code::kOk;
  std::string message_;
};

// Either a T or a non-OK Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}
  Result(Status s) : v_(std::move(s)) { assert(!std::get<Status>(v_).ok()); }

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() { return value(); }

 private:
  std::variant<T, Status> v_;
};

#define STRATA_RETURN_IF_ERROR(expr)   \
  do {                                 \
    ::strata::Status _s = (expr);      \
    if (!_s.ok()) return _s;           \
  } while (0)

}  // namespace strata
