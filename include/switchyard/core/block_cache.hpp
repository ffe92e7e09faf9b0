#pragma once

// Per-thread free lists for heap blocks of 1-64 KB, in front of malloc.
//
// glibc's thread cache (tcache) only holds chunks up to 1032 bytes (the
// glibc.malloc.tcache_max tunable cannot raise that before glibc 2.42), so every
// bigger block takes malloc's slow path: bins, unlinking, consolidation, ~800
// instructions per free. A proxied request allocates a handful of such blocks and frees
// them again: coroutine frames of 1-3 KB (Asio recycles frames only up to 1020 bytes),
// the rewritten request body, response buffers. malloc's slow path measured ~8% of the
// gateway's CPU per request (a profile of the bench in bench/).
//
// These lists keep freed blocks by size class (8 classes per power of two, 1 KB to
// 64 KB) and hand them back to the next allocation of that class, bounded per class and
// per thread. The blocks are plain malloc blocks throughout: any of them may be given to
// free() instead, and a block freed on another thread is simply cached there.
//
// The global operator new/delete replacement that uses them is src/new_delete.cpp,
// linked into the switchyard executable only (not into sanitizer builds).

#include <cstddef>
#include <cstdint>

namespace switchyard::core::blocks {

inline constexpr std::size_t min_block = 1024;
inline constexpr std::size_t max_block = 64 * 1024;
inline constexpr int class_count = 49;  // 1024, then 8 steps per doubling up to 65536
// Enough for one block per class for each of a few hundred requests in flight; the byte
// cap bounds what an idle thread keeps.
inline constexpr std::uint16_t max_per_class = 256;
inline constexpr std::size_t max_cached_bytes = 8 * 1024 * 1024;  // per thread

namespace detail {
constexpr int log2_floor(std::size_t v) {
  return 63 - __builtin_clzll(static_cast<unsigned long long>(v));
}
}  // namespace detail

// Size of class c: 1024 for class 0, then 2^k + j * 2^(k-3) for k = 10..15, j = 1..8.
constexpr std::size_t class_size(int c) {
  if (c <= 0) {
    return min_block;
  }
  int k = 10 + (c - 1) / 8;
  std::size_t j = static_cast<std::size_t>((c - 1) % 8 + 1);
  return (std::size_t{1} << k) + j * (std::size_t{1} << (k - 3));
}

// The smallest class that holds n bytes; n in [min_block, max_block].
constexpr int ceil_class(std::size_t n) {
  if (n <= min_block) {
    return 0;
  }
  int k = detail::log2_floor(n - 1);  // n in (2^k, 2^(k+1)]
  std::size_t step_shift = static_cast<std::size_t>(k - 3);
  std::size_t j = ((n - (std::size_t{1} << k)) + (std::size_t{1} << step_shift) - 1) >> step_shift;  // 1..8
  return (k - 10) * 8 + static_cast<int>(j);
}

// The largest class whose size is <= u (a block's usable size); u >= min_block.
constexpr int floor_class(std::size_t u) {
  if (u >= max_block) {
    return class_count - 1;
  }
  int k = detail::log2_floor(u);  // u in [2^k, 2^(k+1))
  std::size_t j = (u - (std::size_t{1} << k)) >> static_cast<std::size_t>(k - 3);  // 0..7
  return (k - 10) * 8 + static_cast<int>(j);
}

// One thread's lists. Trivially constructible and destructible so that it can be a
// constinit thread_local; drain() releases what it holds.
struct free_lists {
  struct node {
    node* next;
  };
  node* head[class_count];
  std::uint16_t count[class_count];
  std::size_t bytes;

  // A cached block of class c, or nullptr.
  void* take(int c) noexcept {
    node* n = head[c];
    if (n == nullptr) {
      return nullptr;
    }
    head[c] = n->next;
    --count[c];
    bytes -= class_size(c);
    return n;
  }

  // Keeps p (at least class_size(c) bytes) unless class c or the thread is full.
  bool keep(void* p, int c) noexcept {
    std::size_t size = class_size(c);
    if (count[c] >= max_per_class || bytes + size > max_cached_bytes) {
      return false;
    }
    auto* n = static_cast<node*>(p);
    n->next = head[c];
    head[c] = n;
    ++count[c];
    bytes += size;
    return true;
  }

  // Hands every cached block to release(void*) and empties the lists.
  template <class Release>
  void drain(Release release) noexcept {
    for (int c = 0; c < class_count; ++c) {
      while (head[c] != nullptr) {
        node* n = head[c];
        head[c] = n->next;
        release(static_cast<void*>(n));
      }
      count[c] = 0;
    }
    bytes = 0;
  }
};

}  // namespace switchyard::core::blocks
