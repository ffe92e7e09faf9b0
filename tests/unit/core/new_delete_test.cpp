// The gateway's global operator new/delete (src/new_delete.cpp), linked into this binary.
#include "switchyard/core/block_cache.hpp"

#include <gtest/gtest.h>
#include <malloc.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <thread>
#include <vector>

namespace blk = switchyard::core::blocks;

namespace {

// Through a volatile pointer so that the compiler cannot elide the new/delete pairs.
void* (*volatile new_fn)(std::size_t) = [](std::size_t n) { return ::operator new(n); };
void (*volatile delete_fn)(void*) = [](void* p) { ::operator delete(p); };
void (*volatile sized_delete_fn)(void*, std::size_t) = [](void* p, std::size_t n) { ::operator delete(p, n); };

}  // namespace

TEST(new_delete, a_freed_block_serves_the_next_allocation_of_its_class) {
  ASSERT_EQ(blk::ceil_class(3000), blk::ceil_class(2900));
  void* a = new_fn(3000);
  void* guard = new_fn(100);
  delete_fn(a);
  void* other = new_fn(1500);  // another class: malloc alone would carve it out of a's chunk
  void* b = new_fn(2900);
  EXPECT_EQ(a, b) << "the 3072-byte class should have handed back the freed block";
  EXPECT_NE(other, a);
  delete_fn(other);
  delete_fn(guard);
  sized_delete_fn(b, 2900);
  void* c = new_fn(3072);
  EXPECT_EQ(c, a) << "sized delete keeps the block too";
  delete_fn(c);
}

TEST(new_delete, blocks_in_range_are_class_sized_and_others_are_plain) {
  void* p = new_fn(1025);
  EXPECT_GE(malloc_usable_size(p), blk::class_size(blk::ceil_class(1025)));
  delete_fn(p);
  void* small = new_fn(100);
  EXPECT_LT(malloc_usable_size(small), 200U);
  delete_fn(small);
  void* big = new_fn(200 * 1024);
  EXPECT_GE(malloc_usable_size(big), 200U * 1024);
  std::memset(big, 0x5a, 200 * 1024);
  delete_fn(big);
  void* zero = new_fn(0);
  EXPECT_NE(zero, nullptr);
  delete_fn(zero);
}

TEST(new_delete, huge_requests_throw_or_return_null_as_the_standard_says) {
  EXPECT_THROW((void)new_fn(std::size_t{1} << 62), std::bad_alloc);
  void* p = ::operator new(std::size_t{1} << 62, std::nothrow);
  EXPECT_EQ(p, nullptr);
  void* q = ::operator new[](4096, std::nothrow);
  ASSERT_NE(q, nullptr);
  ::operator delete[](q, std::nothrow);
}

TEST(new_delete, blocks_moving_between_threads_keep_their_contents) {
  // Producers allocate and fill, consumers check and free: blocks are cached by the
  // thread that frees them and reused by it.
  constexpr int threads = 4;
  constexpr int rounds = 3000;
  std::atomic<int> bad{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([t, &bad] {
      std::vector<std::pair<std::unique_ptr<std::uint8_t[]>, std::size_t>> held;
      for (int i = 0; i < rounds; ++i) {
        std::size_t n = 900 + static_cast<std::size_t>((i * 7919 + t * 104729) % 70000);
        auto p = std::make_unique<std::uint8_t[]>(n);
        std::memset(p.get(), static_cast<int>((i + t) & 0xff), n);
        held.emplace_back(std::move(p), n);
        if (held.size() > 40) {
          auto& [q, m] = held[static_cast<std::size_t>(i) % held.size()];
          std::uint8_t want = q[0];
          for (std::size_t k = 0; k < m; k += 97) {
            if (q[k] != want) {
              bad.fetch_add(1);
              break;
            }
          }
          held.erase(held.begin() + static_cast<std::ptrdiff_t>(static_cast<std::size_t>(i) % held.size()));
        }
      }
    });
  }
  for (auto& th : pool) {
    th.join();
  }
  EXPECT_EQ(bad.load(), 0);
}

TEST(new_delete, a_thread_returns_its_cached_blocks_to_malloc_when_it_ends) {
  auto in_use = [] { return mallinfo2().uordblks; };
  std::size_t before = in_use();
  std::size_t during = 0;
  std::thread th([&] {
    std::vector<void*> ps;
    for (int i = 0; i < 60; ++i) {
      ps.push_back(new_fn(8000));  // 60 x 8 KB = 480 KB, all kept by this thread's lists
    }
    for (void* p : ps) {
      delete_fn(p);
    }
    during = in_use();
  });
  th.join();
  std::size_t after = in_use();
  EXPECT_GE(during, before + 400 * 1024) << "the freed blocks should have stayed cached";
  EXPECT_LT(after, during - 400 * 1024) << "thread exit should have freed them";
}
