// Global operator new/delete for the switchyard executable: blocks of 1-64 KB go through
// per-thread free lists (switchyard/core/block_cache.hpp explains why); everything else
// is plain malloc/free, as with libstdc++'s own operators. Every block is a malloc block,
// so the two paths mix freely (a block may be cached by any thread or freed at once).
//
// Not linked into sanitizer builds: cached blocks would hide use-after-free from ASan.
// tests/unit/core/new_delete_test.cpp links this file into its own test binary.

#include "switchyard/core/block_cache.hpp"

#include <malloc.h>

#include <cstdlib>
#include <new>

namespace {

namespace blk = switchyard::core::blocks;

constinit thread_local blk::free_lists lists{};
constinit thread_local bool registered = false;
constinit thread_local bool finished = false;  // this thread's lists were drained at its exit

struct drainer {
  drainer() = default;
  drainer(const drainer&) = delete;
  drainer& operator=(const drainer&) = delete;
  ~drainer() {
    finished = true;
    lists.drain([](void* p) { std::free(p); });
  }
};

void register_drain() {
  registered = true;
  static thread_local drainer d;  // destroyed at thread exit: returns the blocks to malloc
  (void)&d;
}

[[gnu::noinline]] void* new_slow(std::size_t n) {
  for (;;) {
    if (void* p = std::malloc(n == 0 ? 1 : n)) {
      return p;
    }
    std::new_handler h = std::get_new_handler();
    if (h == nullptr) {
      throw std::bad_alloc();
    }
    h();
  }
}

inline void* allocate(std::size_t n) {
  if (n - blk::min_block <= blk::max_block - blk::min_block) {  // n in [min_block, max_block]
    int c = blk::ceil_class(n);
    if (void* p = lists.take(c)) {
      return p;
    }
    if (void* p = std::malloc(blk::class_size(c))) {
      return p;
    }
    return new_slow(blk::class_size(c));
  }
  if (void* p = std::malloc(n == 0 ? 1 : n)) {
    return p;
  }
  return new_slow(n);
}

inline void release(void* p) noexcept {
  if (p == nullptr) {
    return;
  }
  std::size_t usable = malloc_usable_size(p);
  if (usable >= blk::min_block && usable < blk::max_block + 64 && !finished) {
    if (!registered) {
      register_drain();
    }
    if (lists.keep(p, blk::floor_class(usable))) {
      return;
    }
  }
  std::free(p);
}

// A sized delete below this size cannot be a cached-size block (malloc pads by < 24 bytes).
constexpr std::size_t surely_small = blk::min_block - 64;

inline void release_sized(void* p, std::size_t n) noexcept {
  if (n < surely_small) {
    std::free(p);
    return;
  }
  release(p);
}

}  // namespace

void* operator new(std::size_t n) { return allocate(n); }
void* operator new[](std::size_t n) { return allocate(n); }

void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return allocate(n);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return allocate(n);
  } catch (...) {
    return nullptr;
  }
}

void operator delete(void* p) noexcept { release(p); }
void operator delete[](void* p) noexcept { release(p); }
void operator delete(void* p, std::size_t n) noexcept { release_sized(p, n); }
void operator delete[](void* p, std::size_t n) noexcept { release_sized(p, n); }
void operator delete(void* p, const std::nothrow_t&) noexcept { release(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { release(p); }
