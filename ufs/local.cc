#include "ufs/local.h"
#include "agent/base/paths.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include <cerrno>
#include <algorithm>
#include <cstdio>
#include <vector>

#include "agent/base/clock.h"
#include "agent/base/fd.h"
#include "agent/base/hash.h"

namespace strata::ufs {
namespace {

std::string EtagOf(const struct stat& st) {
  // The inode number alone can come back for a new file; its change time
  // (set by the kernel at creation, in ns) cannot.
  char buf[120];
  std::snprintf(buf, sizeof(buf), "\"%llx-%llx.%lx-%llx-%llx.%lx\"",
                static_cast<unsigned long long>(st.st_size),
                static_cast<unsigned long long>(st.st_mtim.tv_sec),
                static_cast<long>(st.st_mtim.tv_nsec),
                static_cast<unsigned long long>(st.st_ino),
                static_cast<unsigned long long>(st.st_ctim.tv_sec),
                static_cast<long>(st.st_ctim.tv_nsec));
  return buf;
}

// Names of files a Put is still writing (renamed over the target when done).
constexpr char kPutPrefix[] = ".strata-put-";

bool Servable(const struct stat& st) {
  return S_ISDIR(st.st_mode) || S_ISREG(st.st_mode) || S_ISLNK(st.st_mode);
}

// User metadata in extended attributes: `user.mime_type` for the content
// type, `user.<key>` for the rest (symbolic links carry none).
constexpr char kMimeXattr[] = "user.mime_type";

void ReadUserMeta(const std::string& full, UserMeta* out) {
  char names[4096];
  ssize_t n = ::llistxattr(full.c_str(), names, sizeof(names));
  for (ssize_t i = 0; i < n;) {
    std::string name(names + i);
    i += static_cast<ssize_t>(name.size()) + 1;
    if (name.rfind("user.", 0) != 0) continue;
    char value[2048];
    ssize_t len = ::lgetxattr(full.c_str(), name.c_str(), value, sizeof(value));
    if (len < 0) continue;
    std::string v(value, static_cast<size_t>(len));
    if (name == kMimeXattr) out->content_type = std::move(v);
    else if (!IsPosixMetaKey(name.substr(5))) out->pairs.emplace_back(name.substr(5), std::move(v));
  }
  std::sort(out->pairs.begin(), out->pairs.end());
}

Status WriteUserMeta(int fd, const std::string& full, const UserMeta& m) {
  auto set = [&](const std::string& name, const std::string& v) -> Status {
    if (::fsetxattr(fd, name.c_str(), v.data(), v.size(), 0) == 0) return Status::OK();
    if (errno == ENOTSUP)
      return Status::NotSupported("the file system under " + full +
                                  " keeps no user extended attributes, so user metadata cannot be stored");
    return Status::FromErrno(errno, "set " + name + " of " + full);
  };
  if (!m.content_type.empty()) STRATA_RETURN_IF_ERROR(set(kMimeXattr, m.content_type));
  for (const auto& [k, v] : m.pairs) STRATA_RETURN_IF_ERROR(set("user." + k, v));
  return Status::OK();
}

// `full` is needed for symbolic links (their target).
Entry EntryOf(const std::string& name, const struct stat& st, const std::string& full) {
  Entry e;
  e.name = name;
  e.is_dir = S_ISDIR(st.st_mode);
  e.size = e.is_dir ? 0 : static_cast<uint64_t>(st.st_size);
  e.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  if (!e.is_dir) e.etag = EtagOf(st);
  e.attrs.mode = st.st_mode;
  e.attrs.uid = st.st_uid;
  e.attrs.gid = st.st_gid;
  e.attrs.mtime_ns = e.mtime_ns;
  if (S_ISLNK(st.st_mode)) {
    char buf[4096];
    ssize_t n = ::readlink(full.c_str(), buf, sizeof(buf));
    if (n > 0) e.link_target.assign(buf, static_cast<size_t>(n));
  } else {
    ReadUserMeta(full, &e.attrs.user);
  }
  return e;
}

timespec ToTimespec(int64_t ns) {
  timespec ts;
  ts.tv_sec = ns / 1000000000;
  ts.tv_nsec = ns % 1000000000;
  if (ts.tv_nsec < 0) {
    ts.tv_sec -= 1;
    ts.tv_nsec += 1000000000;
  }
  return ts;
}

// Applies owner, then permissions, then mtime (a chown clears set-id bits).
Status ApplyAttrs(const std::string& full, const Attrs& a, bool is_link) {
  if (a.uid != kNoId || a.gid != kNoId) {
    if (::lchown(full.c_str(), a.uid, a.gid) != 0) return Status::FromErrno(errno, "chown " + full);
  }
  if (a.mode != 0 && !is_link) {
    if (::chmod(full.c_str(), a.mode & 07777) != 0) return Status::FromErrno(errno, "chmod " + full);
  }
  if (a.mtime_ns != 0) {
    timespec ts[2] = {{0, UTIME_OMIT}, ToTimespec(a.mtime_ns)};
    if (::utimensat(AT_FDCWD, full.c_str(), ts, AT_SYMLINK_NOFOLLOW) != 0)
      return Status::FromErrno(errno, "set times of " + full);
  }
  return Status::OK();
}

Status SyncDir(const std::string& dir) {
  Fd d(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!d.valid() || ::fsync(d.get()) != 0) return Status::FromErrno(errno, "fsync " + dir);
  return Status::OK();
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
    if (::lstat(full.c_str(), &st) != 0) return Status::FromErrno(errno, "stat " + full);
    if (!Servable(st)) return Status::NotFound("not a regular file, directory or symbolic link: " + full);
    return EntryOf(SplitPath(path).second, st, full);
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
      if (name == "." || name == ".." || name.rfind(kPutPrefix, 0) == 0) continue;
      struct stat st;
      if (::fstatat(dir_fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;  // vanished
      if (!Servable(st)) continue;
      out.push_back(EntryOf(name, st, full + "/" + name));
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

  Result<Entry> Put(const std::string& path, uint64_t size, const ReadAt& src, const Attrs& attrs,
                    const CopyBase* /*base: a local copy costs what a read does*/) override {
    counters().put_requests++;
    std::string full = Full(path);
    auto [dir, name] = SplitPath(full);
    std::string salt = full + std::to_string(NowMonoMs()) + std::to_string(::gettid());
    char rnd[24];
    std::snprintf(rnd, sizeof(rnd), ".%08x", static_cast<unsigned>(Xxh64(salt.data(), salt.size())));
    std::string tmp = dir + "/" + kPutPrefix + name + rnd;
    Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (!fd.valid()) return Status::FromErrno(errno, "create " + tmp);
    Status s = [&]() -> Status {
      std::vector<char> buf(std::min<uint64_t>(size, 4u << 20));
      for (uint64_t off = 0; off < size;) {
        size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), size - off));
        STRATA_RETURN_IF_ERROR(src(off, n, buf.data()));
        STRATA_RETURN_IF_ERROR(PwriteFull(fd.get(), buf.data(), n, off).With(tmp));
        off += n;
        counters().bytes_written += n;
      }
      Attrs a = attrs;
      if (a.mode == 0) a.mode = S_IFREG | 0644;
      STRATA_RETURN_IF_ERROR(ApplyAttrs(tmp, a, false));
      STRATA_RETURN_IF_ERROR(WriteUserMeta(fd.get(), full, a.user));
      if (::fsync(fd.get()) != 0) return Status::FromErrno(errno, "fsync " + tmp);
      if (::rename(tmp.c_str(), full.c_str()) != 0) return Status::FromErrno(errno, "rename to " + full);
      return SyncDir(dir);
    }();
    if (!s.ok()) {
      ::unlink(tmp.c_str());
      return s;
    }
    return Stat(path);
  }

  Status Delete(const std::string& path) override {
    counters().put_requests++;
    std::string full = Full(path);
    if (::unlink(full.c_str()) != 0) return Status::FromErrno(errno, "unlink " + full);
    return Status::OK();
  }

  Status Mkdir(const std::string& path, const Attrs& attrs) override {
    counters().put_requests++;
    std::string full = Full(path);
    mode_t mode = attrs.mode ? (attrs.mode & 07777) : 0755;
    if (::mkdir(full.c_str(), mode) != 0) return Status::FromErrno(errno, "mkdir " + full);
    Attrs a = attrs;
    a.mode = attrs.mode ? attrs.mode : 0;  // mkdir applied the umask; chmod sets what was asked
    return ApplyAttrs(full, a, false);
  }

  Status Rmdir(const std::string& path) override {
    counters().put_requests++;
    std::string full = Full(path);
    if (::rmdir(full.c_str()) != 0) return Status::FromErrno(errno, "rmdir " + full);
    return Status::OK();
  }

  Status Rename(const std::string& from, const std::string& to) override {
    counters().put_requests++;
    std::string a = Full(from), b = Full(to);
    if (::rename(a.c_str(), b.c_str()) != 0) return Status::FromErrno(errno, "rename " + a + " to " + b);
    return Status::OK();
  }
  bool rename_is_atomic() const override { return true; }
  bool dir_times_follow_entries() const override { return true; }

  Result<Entry> SetAttrs(const std::string& path, const Attrs& attrs) override {
    counters().put_requests++;
    std::string full = Full(path);
    struct stat st;
    if (::lstat(full.c_str(), &st) != 0) return Status::FromErrno(errno, "stat " + full);
    STRATA_RETURN_IF_ERROR(ApplyAttrs(full, attrs, S_ISLNK(st.st_mode)));
    return Stat(path);
  }

  Status Symlink(const std::string& path, const std::string& target, const Attrs& attrs) override {
    counters().put_requests++;
    std::string full = Full(path);
    if (::symlink(target.c_str(), full.c_str()) != 0) return Status::FromErrno(errno, "symlink " + full);
    Attrs a = attrs;
    a.mode = 0;
    return ApplyAttrs(full, a, true);
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
