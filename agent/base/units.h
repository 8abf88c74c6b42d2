// Human sizes and durations: "512MiB", "10GiB", "4M", "1.5G", "30s", "15m".
#pragma once

#include <cstdint>
#include <string>

#include "agent/base/status.h"

namespace strata {

// Binary units: K/KiB/M/MiB/G/GiB/T/TiB are powers of 1024; KB/MB/GB/TB are powers
// of 1000 (as in `df -H`); a bare number is bytes. Case-insensitive; fractions
// allowed ("1.5GiB"). Rejects negatives, overflow and trailing garbage.
Result<uint64_t> ParseSize(const std::string& text);
// 4194304 -> "4.0 MiB"; 512 -> "512 B".
std::string FormatSize(uint64_t bytes);
// "30" or "30s", "15m", "2h", "7d", "250ms" -> milliseconds.
Result<uint64_t> ParseDurationMs(const std::string& text);

}  // namespace strata
