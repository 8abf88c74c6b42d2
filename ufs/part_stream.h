// An object uploaded in parts while its file is still being written (the
// StreamUpload of ufs.h), for any store that assembles objects from parts:
// S3's multipart upload, Azure's blocks and block list. The store says how
// a part is sent and how the parts become the object (a PartSink); the
// stream queues parts as their bytes become final and sends them on its own
// threads.
//
// Parts are numbered from 1 in order; their size starts at `first_part` and
// doubles every 1,000 parts (the final size is not known; S3 allows 10,000
// parts, Azure 50,000 blocks).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ufs/ufs.h"

namespace strata::ufs {

// One object's parts, as a store takes them. SendPart may be called from
// several threads at once; the rest from one.
class PartSink {
 public:
  virtual ~PartSink() = default;
  // Sends bytes [off, off + len) of `src` as part `number` (`buf`: scratch);
  // returns what names the part at completion (S3: its ETag; Azure: its block id).
  virtual Result<std::string> SendPart(uint64_t number, uint64_t off, size_t len, const ReadAt& src,
                                       std::vector<char>* buf) = 0;
  // Makes the parts, in order, the object; returns its ETag.
  virtual Result<std::string> Complete(const std::vector<std::string>& parts) = 0;
  // Drops the parts sent (an unfinished stream is destroyed).
  virtual void Abort() = 0;
  // Nothing was sent: the whole object in one upload.
  virtual Result<Entry> PutWhole(uint64_t size, const ReadAt& src, const Attrs& attrs) = 0;
};

// `attrs` are the ones the parts were started with (the entry Finish returns
// keeps them, with the completion's time); `counters` counts streamed parts.
std::unique_ptr<StreamUpload> NewPartStream(std::unique_ptr<PartSink> sink, std::string path, ReadAt src,
                                            const Attrs& attrs, uint64_t first_part, int parallel, Counters* counters);

}  // namespace strata::ufs
