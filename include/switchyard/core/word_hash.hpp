// A fast hash for the string keys of the hot path's small lookup tables (the metrics
// bundles, the price memo): eight bytes a step, a multiply and a shift each. std::hash on
// strings mixes byte by byte and was a quarter of those lookups. Not for tables an outsider
// can fill without bound: the tables using it are capped and cleared when full.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace switchyard::core {

inline std::size_t word_hash(std::string_view s) noexcept {
  constexpr std::uint64_t mul = 0xff51afd7ed558ccdULL;
  std::uint64_t h = 0x9e3779b97f4a7c15ULL ^ s.size();
  const char* p = s.data();
  std::size_t n = s.size();
  for (; n >= 8; p += 8, n -= 8) {
    std::uint64_t w = 0;
    std::memcpy(&w, p, 8);
    h = (h ^ w) * mul;
    h ^= h >> 32;
  }
  if (n != 0) {
    std::uint64_t w = 0;
    std::memcpy(&w, p, n);
    h = (h ^ w) * mul;
    h ^= h >> 32;
  }
  return static_cast<std::size_t>(h ^ (h >> 29));
}

// For std::unordered_map<std::string, T, word_hasher, std::equal_to<>>: found by string_view.
struct word_hasher {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept { return word_hash(s); }
};

}  // namespace switchyard::core
