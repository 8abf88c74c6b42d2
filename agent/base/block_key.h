// The identity of one cached block: a file version and a block number.
#pragma once

#include <cstdint>
#include <functional>

namespace strata {

// File ids with this bit were never recorded in the index (its disk was
// full or failing when the file was first seen): such a file is served from
// its store, and its blocks are never kept.
constexpr uint64_t kUnindexedFileBit = 1ULL << 63;

struct BlockKey {
  uint64_t file_id = 0;  // one version of one file (see index/index.h)
  uint64_t index = 0;    // block number: bytes [index * block_size, +block_size)
  bool operator==(const BlockKey& o) const { return file_id == o.file_id && index == o.index; }
};

struct BlockKeyHash {
  size_t operator()(const BlockKey& k) const {
    return std::hash<uint64_t>()(k.file_id * 0x9E3779B97F4A7C15ULL ^ k.index);
  }
};

}  // namespace strata
