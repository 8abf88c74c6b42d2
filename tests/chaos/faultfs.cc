// A fault-injecting FUSE passthrough for the cache-disk tests (issue 13,
// item 2): this kernel has no device-mapper, so no dm-error target; this
// layer goes under <cache-dir>/blocks instead and fails on demand.
//
//   faultfs BACKING_DIR MOUNT_POINT CONTROL_FILE
//
// CONTROL_FILE holds one word, read every 50 ms:
//   ok       plain passthrough (also when the file is missing)
//   eio      every read fails with EIO (a dying disk)
//   enospc   every create, write and mkdir fails with ENOSPC (a full disk)
//   erofs    every change fails with EROFS (a disk remounted read-only)
// Runs in the foreground, single-threaded; SIGTERM or fusermount3 -u ends it.
#define FUSE_USE_VERSION 35
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>

namespace {

enum Mode { kOk, kEio, kEnospc, kErofs };
std::atomic<int> g_mode{kOk};
std::string g_backing;

std::string Real(const char* path) { return g_backing + path; }

int Err(int rc) { return rc < 0 ? -errno : rc; }

bool Changes() {  // refused under erofs
  return g_mode == kErofs;
}

int FsGetattr(const char* path, struct stat* st, fuse_file_info*) { return Err(::lstat(Real(path).c_str(), st)); }

int FsReaddir(const char* path, void* buf, fuse_fill_dir_t fill, off_t, fuse_file_info*, fuse_readdir_flags) {
  DIR* d = ::opendir(Real(path).c_str());
  if (d == nullptr) return -errno;
  while (dirent* e = ::readdir(d)) fill(buf, e->d_name, nullptr, 0, static_cast<fuse_fill_dir_flags>(0));
  ::closedir(d);
  return 0;
}

int FsMkdir(const char* path, mode_t mode) {
  if (Changes()) return -EROFS;
  if (g_mode == kEnospc) return -ENOSPC;
  return Err(::mkdir(Real(path).c_str(), mode));
}

int FsUnlink(const char* path) {
  if (Changes()) return -EROFS;
  return Err(::unlink(Real(path).c_str()));
}

int FsRmdir(const char* path) {
  if (Changes()) return -EROFS;
  return Err(::rmdir(Real(path).c_str()));
}

int FsRename(const char* from, const char* to, unsigned int flags) {
  if (Changes()) return -EROFS;
  if (flags != 0) return -EINVAL;
  return Err(::rename(Real(from).c_str(), Real(to).c_str()));
}

int FsTruncate(const char* path, off_t size, fuse_file_info* fi) {
  if (Changes()) return -EROFS;
  return Err(fi != nullptr ? ::ftruncate(static_cast<int>(fi->fh), size) : ::truncate(Real(path).c_str(), size));
}

int FsOpen(const char* path, fuse_file_info* fi) {
  if ((fi->flags & O_ACCMODE) != O_RDONLY && Changes()) return -EROFS;
  // O_DIRECT stays with the kernel: our buffers are not aligned for it.
  int fd = ::open(Real(path).c_str(), fi->flags & ~O_DIRECT);
  if (fd < 0) return -errno;
  fi->fh = static_cast<uint64_t>(fd);
  return 0;
}

int FsCreate(const char* path, mode_t mode, fuse_file_info* fi) {
  if (Changes()) return -EROFS;
  if (g_mode == kEnospc) return -ENOSPC;
  int fd = ::open(Real(path).c_str(), fi->flags & ~O_DIRECT, mode);
  if (fd < 0) return -errno;
  fi->fh = static_cast<uint64_t>(fd);
  return 0;
}

int FsRead(const char*, char* buf, size_t size, off_t off, fuse_file_info* fi) {
  if (g_mode == kEio) return -EIO;
  ssize_t n = ::pread(static_cast<int>(fi->fh), buf, size, off);
  return n < 0 ? -errno : static_cast<int>(n);
}

int FsWrite(const char*, const char* buf, size_t size, off_t off, fuse_file_info* fi) {
  if (Changes()) return -EROFS;
  if (g_mode == kEnospc) return -ENOSPC;
  ssize_t n = ::pwrite(static_cast<int>(fi->fh), buf, size, off);
  return n < 0 ? -errno : static_cast<int>(n);
}

int FsStatfs(const char*, struct statvfs* st) { return Err(::statvfs(g_backing.c_str(), st)); }

int FsRelease(const char*, fuse_file_info* fi) { return Err(::close(static_cast<int>(fi->fh))); }

int FsFsync(const char*, int datasync, fuse_file_info* fi) {
  if (g_mode == kEio) return -EIO;
  int fd = static_cast<int>(fi->fh);
  return Err(datasync ? ::fdatasync(fd) : ::fsync(fd));
}

int FsUtimens(const char* path, const timespec tv[2], fuse_file_info*) {
  if (Changes()) return -EROFS;
  return Err(::utimensat(AT_FDCWD, Real(path).c_str(), tv, AT_SYMLINK_NOFOLLOW));
}

int FsChmod(const char* path, mode_t mode, fuse_file_info*) {
  if (Changes()) return -EROFS;
  return Err(::chmod(Real(path).c_str(), mode));
}

void* FsInit(fuse_conn_info*, fuse_config* cfg) {
  // Reads go through the page cache (the agent splices block files, which
  // direct I/O would refuse): a test drops the page cache after switching
  // to eio so that reads reach FsRead.
  cfg->attr_timeout = 0;
  cfg->entry_timeout = 0;
  cfg->negative_timeout = 0;
  return nullptr;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: faultfs BACKING_DIR MOUNT_POINT CONTROL_FILE\n");
    return 2;
  }
  g_backing = argv[1];
  std::string control = argv[3];
  std::thread([control] {
    for (;;) {
      std::string word;
      std::ifstream(control) >> word;
      g_mode = word == "eio" ? kEio : word == "enospc" ? kEnospc : word == "erofs" ? kErofs : kOk;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }).detach();
  fuse_operations ops = {};
  ops.getattr = FsGetattr;
  ops.readdir = FsReaddir;
  ops.mkdir = FsMkdir;
  ops.unlink = FsUnlink;
  ops.rmdir = FsRmdir;
  ops.rename = FsRename;
  ops.truncate = FsTruncate;
  ops.open = FsOpen;
  ops.create = FsCreate;
  ops.read = FsRead;
  ops.write = FsWrite;
  ops.statfs = FsStatfs;
  ops.release = FsRelease;
  ops.fsync = FsFsync;
  ops.utimens = FsUtimens;
  ops.chmod = FsChmod;
  ops.init = FsInit;
  char* fargv[] = {argv[0], const_cast<char*>("-f"), const_cast<char*>("-s"), const_cast<char*>("-o"),
                   const_cast<char*>("default_permissions,fsname=faultfs"), argv[2]};
  return fuse_main(6, fargv, &ops, nullptr);
}
