#include "ufs/local.h"
#include "agent/base/paths.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>

#include "agent/base/fd.h"

namespace strata::ufs {
namespace {

std::string EtagOf(const struct stat& st) {
  char buf[80];
  std::snprintf(buf, sizeof(buf), "\"%llx-%llx.%lx-%llx\"",
                static_cast<unsigned long long>(st.st_size),
                static_cast<unsigned long long>(st.st_mtim.tv_sec),
                static_cast<long>(st.st_mtim.tv_nsec),
                static_cast<unsigned long long>(st.st_ino));
  return buf;
}

Entry EntryOf(const std::string& name, const struct stat& st) {
  Entry e;
  e.name = name;
  e.is_dir = S_ISDIR(st.st_mode);
  e.size = e.is_dir ? 0 : static_cast<uint64_t>(st.st_size);
  e.mtime_ms = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000 + st.st_mtim.tv_nsec / 1000000;
  if (!e.is_dir) e.etag = EtagOf(st);
  return e;
}

class LocalUfs final : public Ufs {
 public:
  LocalUfs(std::string uri, std::string root) : uri_(std::move(uri)), root_(std::move(root)) {}

  const std::string& uri() const override { return uri_; }

  Status Probe() override {
    struct stat st;
    if (::stat(root_.c_str(), &st) != 0) return Status::FromErrno(errno, "file store " + root_);
    if (!S_ISDIR(st.st_mode)) return Status::NotADirectory("file store " + root_ + " is not a directory");
    if (::access(root_.c_str(), R_OK | X_OK) != 0)
      return Status::FromErrno(errno, "file store " + root_);
    return Status::OK();
  }

  Result<Entry> Stat(const std::string& path) override {
    counters().head_requests++;
    struct stat st;
    std::string full = Full(path);
    if (::stat(full.c_str(), &st) != 0) return Status::FromErrno(errno, "stat " + full);
    if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))
      return Status::NotFound("not a regular file or directory: " + full);
    return EntryOf(SplitPath(path).second, st);
  }

  Result<std::vector<Entry>> List(const std::string& dir) override {
    counters().list_requests++;
    std::string full = Full(dir);
    Fd dfd(::open(full.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!dfd.valid()) return Status::FromErrno(errno, "opendir " + full);
    DIR* d = ::fdopendir(dfd.get());
    if (d == nullptr) return Status::FromErrno(errno, "opendir " + full);
    int dir_fd = dfd.Release();  // closedir() below owns the descriptor now
    std::vector<Entry> out;
    Status status;
    errno = 0;
    while (struct dirent* de = ::readdir(d)) {
      std::string name = de->d_name;
      if (name == "." || name == "..") continue;
      struct stat st;
      if (::fstatat(dir_fd, de->d_name, &st, 0) != 0) continue;  // vanished or dangling
      if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode)) continue;
      out.push_back(EntryOf(name, st));
    }
    if (errno != 0) status = Status::FromErrno(errno, "readdir " + full);
    ::closedir(d);
    if (!status.ok()) return status;
    return out;
  }

  Result<size_t> Read(const std::string& path, const std::string& etag, uint64_t off, size_t len,
                      char* buf) override {
    counters().get_requests++;
    std::string full = Full(path);
    Fd fd(::open(full.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) return Status::FromErrno(errno, "open " + full);
    struct stat st;
    if (::fstat(fd.get(), &st) != 0) return Status::FromErrno(errno, "fstat " + full);
    if (!etag.empty() && EtagOf(st) != etag)
      return Status::Stale("file store: " + full + " changed since it was opened");
    size_t got = 0;
    STRATA_RETURN_IF_ERROR(PreadFull(fd.get(), buf, len, off, &got).With(full));
    // A writer racing the read would mix versions: check the version again.
    if (!etag.empty() && (::fstat(fd.get(), &st) != 0 || EtagOf(st) != etag))
      return Status::Stale("file store: " + full + " changed during the read");
    counters().bytes_read += got;
    return got;
  }

 private:
  std::string Full(const std::string& path) const {
    return path.empty() ? root_ : root_ + "/" + path;
  }

  const std::string uri_;
  const std::string root_;
};

}  // namespace

std::unique_ptr<Ufs> NewLocalUfs(const std::string& uri, const std::string& root) {
  return std::make_unique<LocalUfs>(uri, root);
}

}  // namespace strata::ufs
