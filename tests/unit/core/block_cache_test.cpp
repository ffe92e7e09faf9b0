#include "switchyard/core/block_cache.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <vector>

namespace blk = switchyard::core::blocks;

TEST(block_cache, classes_cover_1k_to_64k_in_rising_steps) {
  EXPECT_EQ(blk::class_size(0), blk::min_block);
  EXPECT_EQ(blk::class_size(blk::class_count - 1), blk::max_block);
  for (int c = 1; c < blk::class_count; ++c) {
    std::size_t prev = blk::class_size(c - 1);
    std::size_t size = blk::class_size(c);
    ASSERT_GT(size, prev) << c;
    // At most 1/8 (12.5%) of waste, and steps far wider than malloc's 16-byte padding.
    EXPECT_LE((size - prev) * 8, prev) << c;
    EXPECT_GE(size - prev, 128U) << c;
  }
}

TEST(block_cache, ceil_class_is_the_smallest_class_that_fits) {
  for (std::size_t n = blk::min_block; n <= blk::max_block; ++n) {
    int c = blk::ceil_class(n);
    ASSERT_GE(c, 0) << n;
    ASSERT_LT(c, blk::class_count) << n;
    ASSERT_GE(blk::class_size(c), n) << n;
    if (c > 0) {
      ASSERT_LT(blk::class_size(c - 1), n) << n;
    }
  }
}

TEST(block_cache, floor_class_is_the_largest_class_that_fits_in_a_block) {
  for (std::size_t u = blk::min_block; u < blk::max_block + 64; ++u) {
    int c = blk::floor_class(u);
    ASSERT_GE(c, 0) << u;
    ASSERT_LT(c, blk::class_count) << u;
    ASSERT_LE(blk::class_size(c), u) << u;
    if (c + 1 < blk::class_count) {
      ASSERT_GT(blk::class_size(c + 1), u) << u;
    }
  }
  // A block made for a class is filed back under that class, whatever malloc's padding.
  for (int c = 0; c < blk::class_count; ++c) {
    for (std::size_t pad = 0; pad < 64; pad += 8) {
      EXPECT_EQ(blk::floor_class(blk::class_size(c) + pad), c) << c << " " << pad;
    }
  }
}

TEST(block_cache, keep_and_take_are_last_in_first_out_per_class) {
  blk::free_lists lists{};
  int c = blk::ceil_class(3000);
  void* a = std::malloc(blk::class_size(c));
  void* b = std::malloc(blk::class_size(c));
  EXPECT_EQ(lists.take(c), nullptr);
  ASSERT_TRUE(lists.keep(a, c));
  ASSERT_TRUE(lists.keep(b, c));
  EXPECT_EQ(lists.count[c], 2);
  EXPECT_EQ(lists.bytes, 2 * blk::class_size(c));
  EXPECT_EQ(lists.take(c + 1), nullptr);  // other classes stay empty
  EXPECT_EQ(lists.take(c), b);
  EXPECT_EQ(lists.take(c), a);
  EXPECT_EQ(lists.take(c), nullptr);
  EXPECT_EQ(lists.bytes, 0U);
  std::free(a);
  std::free(b);
}

TEST(block_cache, a_full_class_or_thread_refuses_more_and_drain_releases_all) {
  blk::free_lists lists{};
  std::vector<void*> refused;
  int small = blk::ceil_class(1500);
  for (int i = 0; i < blk::max_per_class + 5; ++i) {
    void* p = std::malloc(blk::class_size(small));
    if (!lists.keep(p, small)) {
      refused.push_back(p);
    }
  }
  EXPECT_EQ(lists.count[small], blk::max_per_class);
  EXPECT_EQ(refused.size(), 5U);
  // The byte cap: 64 KB blocks fill max_cached_bytes long before 64 of them.
  int big = blk::class_count - 1;
  int kept = 0;
  for (int i = 0; i < blk::max_per_class; ++i) {
    void* p = std::malloc(blk::class_size(big));
    if (lists.keep(p, big)) {
      ++kept;
    } else {
      refused.push_back(p);
    }
  }
  EXPECT_LE(lists.bytes, blk::max_cached_bytes);
  EXPECT_LT(kept, blk::max_per_class);
  EXPECT_GT(kept, 0);
  int released = 0;
  lists.drain([&](void* p) {
    ++released;
    std::free(p);
  });
  EXPECT_EQ(released, blk::max_per_class + kept);
  EXPECT_EQ(lists.bytes, 0U);
  EXPECT_EQ(lists.take(small), nullptr);
  EXPECT_EQ(lists.take(big), nullptr);
  for (void* p : refused) {
    std::free(p);
  }
}
