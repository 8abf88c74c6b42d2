// One conformance suite for every store driver, through the ufs::Ufs
// interface the cache uses: file://, S3 on s3rver (and on Ceph RGW in the
// RGW run), Azure Blob on Azurite. Each case runs on each store; where a
// store cannot do a case, the case says so for that store by name (a WARN in
// the output), never silently.
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <fstream>
#include <set>

#include "tests/integration/harness.h"
#include "ufs/ufs.h"

using namespace strata;
using namespace strata::it;

namespace {

constexpr uint64_t kPart = 5u << 20;  // the upload unit under test: S3's smallest part, Azure's block

struct Subject {
  std::string kind;
  std::unique_ptr<Store> store;
  std::unique_ptr<ufs::Ufs> ufs;
};

std::string Name(const std::string& kind) {
  if (kind == "s3") return UsingRgw() ? "S3 (Ceph RGW)" : "S3 (s3rver)";
  if (kind == "azure") return "Azure Blob (Azurite)";
  return "file://";
}

ufs::S3Options S3Opts() {
  ufs::S3Options o;
  o.endpoint = S3Endpoint();
  // The RGW run exports its keys (tests/run.sh); s3rver takes any.
  const char* ak = std::getenv("AWS_ACCESS_KEY_ID");
  const char* sk = std::getenv("AWS_SECRET_ACCESS_KEY");
  o.access_key = ak != nullptr ? ak : "S3RVER";
  o.secret_key = sk != nullptr ? sk : "S3RVER";
  o.part_size = kPart;
  o.list_page = 7;  // listings cross pages with a handful of keys
  o.request_timeout_ms = 60000;
  return o;
}
ufs::AzureOptions AzOpts() {
  ufs::AzureOptions o;
  o.endpoint = SharedAzurite().endpoint();
  o.block_size = kPart;
  o.list_page = 7;
  o.request_timeout_ms = 60000;
  return o;
}

Subject Make(const std::string& kind) {
  Subject s;
  s.kind = kind;
  if (kind == "azure") SharedAzurite();  // its account in the environment first
  s.store = MakeStore(kind);
  Result<std::unique_ptr<ufs::Ufs>> u = ufs::Open(s.store->uri(), S3Opts(), kind == "azure" ? AzOpts() : ufs::AzureOptions{});
  REQUIRE(u.ok());
  s.ufs = std::move(*u);
  REQUIRE(s.ufs->Probe().ok());
  return s;
}

ufs::ReadAt FromString(const std::string& data) {
  return [&data](uint64_t off, size_t len, char* buf) {
    std::memcpy(buf, data.data() + off, len);
    return Status::OK();
  };
}

std::string ReadAll(ufs::Ufs& u, const std::string& path, const std::string& etag, uint64_t size) {
  std::string out(size, '\0');
  for (uint64_t off = 0; off < size;) {
    size_t len = static_cast<size_t>(std::min<uint64_t>(4u << 20, size - off));
    Result<size_t> n = u.Read(path, etag, off, len, out.data() + off);
    REQUIRE(n.ok());
    REQUIRE(*n == len);
    off += len;
  }
  return out;
}

// A file system needs the directories first; object stores get markers.
void MakeDirs(ufs::Ufs& u, const std::string& path) {
  for (size_t slash = path.find('/'); slash != std::string::npos; slash = path.find('/', slash + 1)) {
    Status s = u.Mkdir(path.substr(0, slash), {});
    REQUIRE((s.ok() || s.code() == Status::Code::kAlreadyExists));
  }
}

}  // namespace

TEST_CASE("store conformance: sizes around the upload unit and 100 MiB are byte-identical, ranged reads at every boundary",
          "[conformance][s3]") {
  for (const std::string& kind : StoreKinds()) {
    DYNAMIC_SECTION(Name(kind)) {
      Subject s = Make(kind);
      for (uint64_t size : {uint64_t{0}, uint64_t{1}, kPart - 1, kPart, kPart + 1, uint64_t{100} << 20}) {
        INFO(Name(kind) << ": " << size << " bytes");
        std::string data = RandomBytes(size, size + 1);
        std::string path = "sizes/f" + std::to_string(size);
        MakeDirs(*s.ufs, path);
        Result<ufs::Entry> put = s.ufs->Put(path, size, FromString(data), {});
        REQUIRE(put.ok());
        Result<ufs::Entry> st = s.ufs->Stat(path);
        REQUIRE(st.ok());
        CHECK(st->size == size);
        CHECK(st->etag == put->etag);
        CHECK(ReadAll(*s.ufs, path, st->etag, size) == data);
        CHECK(s.store->Fetch(path) == data);  // as another client sees it
        // Ranged reads across every upload-unit and cache-block boundary.
        std::set<uint64_t> bounds;
        for (uint64_t b = 4u << 20; b < size; b += 4u << 20) bounds.insert(b);  // cache blocks
        for (uint64_t b = kPart; b < size; b += kPart) bounds.insert(b);          // upload parts
        for (uint64_t b : bounds) {
          for (uint64_t off : {b - 1, b}) {
            size_t len = static_cast<size_t>(std::min<uint64_t>(3, size - off));
            std::string buf(len, '\0');
            Result<size_t> n = s.ufs->Read(path, st->etag, off, len, buf.data());
            REQUIRE(n.ok());
            CHECK(buf.substr(0, *n) == data.substr(off, len));
          }
        }
        // Past the end: nothing, not an error.
        char c;
        Result<size_t> past = s.ufs->Read(path, st->etag, size + 10, 1, &c);
        REQUIRE(past.ok());
        CHECK(*past == 0);
      }
    }
  }
}

TEST_CASE("store conformance: a changed object is Stale; listings cross pages; implied directories", "[conformance][s3]") {
  for (const std::string& kind : StoreKinds()) {
    DYNAMIC_SECTION(Name(kind)) {
      Subject s = Make(kind);
      TempDir d;
      std::ofstream(d.path + "/v1") << "version one";
      std::ofstream(d.path + "/v2") << "version two!";
      s.store->Put("obj", d.path + "/v1");
      Result<ufs::Entry> v1 = s.ufs->Stat("obj");
      REQUIRE(v1.ok());
      s.store->Put("obj", d.path + "/v2");
      char buf[16];
      Result<size_t> stale = s.ufs->Read("obj", v1->etag, 0, 5, buf);
      REQUIRE_FALSE(stale.ok());
      CHECK(stale.status().code() == Status::Code::kStale);
      // 20 files and 3 implied directories under one prefix: pages of 7.
      std::vector<std::pair<std::string, std::string>> files;
      for (int i = 0; i < 20; i++) files.emplace_back("many/f" + std::to_string(100 + i), d.path + "/v1");
      for (const char* sub : {"many/d1/x", "many/d2/y/z", "many/d3/w"}) files.emplace_back(sub, d.path + "/v1");
      s.store->PutMany(files);
      Result<std::vector<ufs::Entry>> list = s.ufs->List("many");
      REQUIRE(list.ok());
      int nfiles = 0, ndirs = 0;
      for (const ufs::Entry& e : *list) (e.is_dir ? ndirs : nfiles)++;
      CHECK(nfiles == 20);
      if (kind == "s3" && !UsingRgw()) {
        // An s3rver bug, not the driver's: its delimited listings leave out a
        // common prefix whose keys all lie two or more levels down.
        WARN("S3 (s3rver): listings leave out many/d2/ (only many/d2/y/z below it): 2 of 3 directories");
        CHECK(ndirs == 2);
      } else {
        CHECK(ndirs == 3);
      }
      Result<ufs::Entry> implied = s.ufs->Stat("many/d2/y");
      REQUIRE(implied.ok());
      CHECK(implied->is_dir);
      CHECK(s.ufs->Stat("many/nothing").status().IsNotFound());
    }
  }
}

TEST_CASE("store conformance: awkward names, metadata round trip, rename of a file and a directory", "[conformance][s3]") {
  const std::vector<std::string> names = {"sp ace", "plus+sign", "per%cent", "ünïcødé-日本", "q?mark", "hash#tag",
                                          "amp&er", "eq=ual", "semi;colon", "tilde~", "quo'te", "par(en)", "comma,"};
  for (const std::string& kind : StoreKinds()) {
    DYNAMIC_SECTION(Name(kind)) {
      Subject s = Make(kind);
      for (const std::string& n : names) {
        INFO(Name(kind) << ": '" << n << "'");
        std::string data = "bytes of " + n;
        MakeDirs(*s.ufs, "odd/" + n);
        REQUIRE(s.ufs->Put("odd/" + n, data.size(), FromString(data), {}).ok());
        CHECK(s.store->Fetch("odd/" + n) == data);
        Result<ufs::Entry> st = s.ufs->Stat("odd/" + n);
        REQUIRE(st.ok());
        CHECK(ReadAll(*s.ufs, "odd/" + n, st->etag, data.size()) == data);
      }
      Result<std::vector<ufs::Entry>> list = s.ufs->List("odd");
      REQUIRE(list.ok());
      std::set<std::string> listed;
      for (const ufs::Entry& e : *list) listed.insert(e.name);
      CHECK(listed == std::set<std::string>(names.begin(), names.end()));

      // Metadata: POSIX attributes, content type and user pairs come back.
      ufs::Attrs a;
      a.mode = S_IFREG | 0640;
      a.uid = 1234;
      a.gid = 5678;
      a.mtime_ns = 1700000000123456789;
      a.user = {"text/csv", {{"color", "blue"}, {"owner_name", "Ann"}}};
      std::string data = "with metadata";
      MakeDirs(*s.ufs, "meta/f");
      REQUIRE(s.ufs->Put("meta/f", data.size(), FromString(data), a).ok());
      Result<ufs::Entry> m = s.ufs->Stat("meta/f");
      REQUIRE(m.ok());
      CHECK((m->attrs.mode & 07777) == 0640);
      CHECK(m->mtime_ns / 1000 == a.mtime_ns / 1000);  // microseconds at least (a file system may keep fewer ns)
      CHECK(m->attrs.uid == 1234);
      CHECK(m->attrs.gid == 5678);
      ufs::UserMeta want = a.user;
      if (kind == "s3" && UsingRgw()) {
        WARN("S3 (Ceph RGW): '_' in an x-amz-meta- name comes back as '-' (owner_name -> owner-name)");
        want.pairs = {{"color", "blue"}, {"owner-name", "Ann"}};
      }
      CHECK(m->attrs.user == want);
      ufs::Attrs chmod;
      chmod.mode = 0600;
      Result<ufs::Entry> after = s.ufs->SetAttrs("meta/f", chmod);
      REQUIRE(after.ok());
      CHECK((after->attrs.mode & 07777) == 0600);
      CHECK(after->attrs.user == want);

      // Rename: a file, then a directory with a subdirectory.
      REQUIRE(s.ufs->Rename("meta/f", "meta/g").ok());
      CHECK(s.ufs->Stat("meta/f").status().IsNotFound());
      CHECK(s.store->Fetch("meta/g") == data);
      CHECK(s.ufs->Stat("meta/g")->attrs.user == want);
      REQUIRE(s.ufs->Mkdir("tree", {}).ok());
      for (const char* p : {"tree/a", "tree/sub/b"}) {
        MakeDirs(*s.ufs, p);
        REQUIRE(s.ufs->Put(p, 1, FromString("x"), {}).ok());
      }
      REQUIRE(s.ufs->Rename("tree", "moved").ok());
      CHECK(s.ufs->Stat("tree").status().IsNotFound());
      CHECK(s.store->Fetch("moved/a") == "x");
      CHECK(s.store->Fetch("moved/sub/b") == "x");
      CHECK(s.ufs->Stat("moved")->is_dir);
      CHECK(s.ufs->Rmdir("moved").code() == Status::Code::kNotEmpty);
    }
  }
}

TEST_CASE("store conformance: an upload that fails mid-way leaves no object and keeps the old one", "[conformance][s3]") {
  for (const std::string& kind : StoreKinds()) {
    DYNAMIC_SECTION(Name(kind)) {
      Subject s = Make(kind);
      const uint64_t size = 4 * kPart;
      std::string data = RandomBytes(size, 9);
      // The source fails once the third part is asked for.
      ufs::ReadAt failing = [&](uint64_t off, size_t len, char* buf) {
        if (off >= 2 * kPart) return Status::IOError("injected: the source broke");
        std::memcpy(buf, data.data() + off, len);
        return Status::OK();
      };
      CHECK_FALSE(s.ufs->Put("new", size, failing, {}).ok());
      CHECK(s.ufs->Stat("new").status().IsNotFound());
      CHECK_FALSE(s.store->Fetch("new").has_value());
      std::string old = "the old version";
      REQUIRE(s.ufs->Put("kept", old.size(), FromString(old), {}).ok());
      CHECK_FALSE(s.ufs->Put("kept", size, failing, {}).ok());
      CHECK(s.store->Fetch("kept") == old);
    }
  }
}

TEST_CASE("store conformance: a wrong credential fails at start with a message naming what to fix", "[conformance][s3]") {
  for (const std::string& kind : StoreKinds()) {
    DYNAMIC_SECTION(Name(kind)) {
      Subject s = Make(kind);
      if (kind == "file") {
        WARN("file://: no credentials to get wrong; a missing directory is the case instead");
        Result<std::unique_ptr<ufs::Ufs>> u = ufs::Open("file:///nonexistent-strata-dir", S3Opts());
        REQUIRE(u.ok());
        Status p = (*u)->Probe();
        CHECK(p.IsNotFound());
        CHECK(p.message().find("/nonexistent-strata-dir") != std::string::npos);
        continue;
      }
      if (kind == "s3" && !UsingRgw()) {
        WARN("S3 (s3rver): s3rver checks no signatures, so a wrong secret cannot fail there (the RGW run checks it)");
        continue;
      }
      std::string msg;
      if (kind == "s3") {
        ufs::S3Options o = S3Opts();
        o.secret_key = "wrong-secret";
        Result<std::unique_ptr<ufs::Ufs>> u = ufs::Open(s.store->uri(), o);
        REQUIRE(u.ok());
        msg = (*u)->Probe().message();
        CHECK(msg.find("AWS_SECRET_ACCESS_KEY") != std::string::npos);
      } else {
        std::string good = std::getenv("AZURE_STORAGE_KEY");
        ::setenv("AZURE_STORAGE_KEY", "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXk=", 1);
        Result<std::unique_ptr<ufs::Ufs>> u = ufs::Open(s.store->uri(), S3Opts(), AzOpts());
        ::setenv("AZURE_STORAGE_KEY", good.c_str(), 1);
        REQUIRE(u.ok());
        msg = (*u)->Probe().message();
        CHECK(msg.find("403") != std::string::npos);
        CHECK(msg.find("check AZURE_STORAGE_KEY") != std::string::npos);
      }
      INFO(msg);
      CHECK_FALSE(msg.empty());
    }
  }
}

TEST_CASE("Azure credentials the other ways: a container SAS token, a connection string", "[conformance][azure]") {
  if (UsingRgw()) return;  // ran on the s3rver run
  Azurite& az = SharedAzurite();
  auto store = MakeStore("azure");
  const std::string container = store->uri().substr(5);
  const std::string key = std::getenv("AZURE_STORAGE_KEY");
  auto exercise = [&](const std::string& how) {
    INFO(how);
    Result<std::unique_ptr<ufs::Ufs>> u = ufs::Open(store->uri(), S3Opts(), AzOpts());
    REQUIRE(u.ok());
    REQUIRE((*u)->Probe().ok());
    std::string data = RandomBytes(3 * kPart + 7, 77);  // blocks, and a copy source for Rename
    REQUIRE((*u)->Put(how + "/f", data.size(), FromString(data), {}).ok());
    REQUIRE((*u)->Rename(how + "/f", how + "/g").ok());
    Result<ufs::Entry> st = (*u)->Stat(how + "/g");
    REQUIRE(st.ok());
    CHECK(ReadAll(**u, how + "/g", st->etag, data.size()) == data);
    CHECK(store->Fetch(how + "/g") == data);
    CHECK((*u)->List(how)->size() == 1);
  };
  // A SAS alone: the key is not there to sign with.
  std::string sas = az.Op("container-sas", {container, "racwdl"}).out;
  while (!sas.empty() && sas.back() == '\n') sas.pop_back();
  ::unsetenv("AZURE_STORAGE_KEY");
  ::setenv("AZURE_STORAGE_SAS_TOKEN", sas.c_str(), 1);
  exercise("sas");
  ::unsetenv("AZURE_STORAGE_SAS_TOKEN");
  // A connection string with its own BlobEndpoint (no --azure-endpoint).
  ::setenv("AZURE_STORAGE_CONNECTION_STRING",
           ("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=" + key +
            ";BlobEndpoint=" + az.endpoint() + ";").c_str(), 1);
  {
    ufs::AzureOptions o = AzOpts();
    o.endpoint.clear();
    Result<std::unique_ptr<ufs::Ufs>> u = ufs::Open(store->uri(), S3Opts(), o);
    REQUIRE(u.ok());
    CHECK((*u)->Probe().ok());
  }
  exercise("connection-string");
  ::unsetenv("AZURE_STORAGE_CONNECTION_STRING");
  ::setenv("AZURE_STORAGE_KEY", key.c_str(), 1);
  // No credentials at all: Open says what to set.
  ::unsetenv("AZURE_STORAGE_ACCOUNT");
  Result<std::unique_ptr<ufs::Ufs>> none = ufs::Open(store->uri(), S3Opts(), AzOpts());
  ::setenv("AZURE_STORAGE_ACCOUNT", "devstoreaccount1", 1);
  REQUIRE_FALSE(none.ok());
  CHECK(none.status().message().find("AZURE_STORAGE_CONNECTION_STRING") != std::string::npos);
}
