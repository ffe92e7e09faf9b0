#include "switchyard/cache/memory_lru.hpp"

#include <gtest/gtest.h>

namespace switchyard::cache {
namespace {

entry value(std::size_t n, std::int64_t now = 0, std::int64_t ttl = 1000) { return {std::string(n, 'x'), now, now + ttl}; }

TEST(MemoryLru, StaysWithinItsByteBound) {
  const std::size_t bound = 1 << 20;
  memory_lru m(bound);
  for (int i = 0; i < 200; ++i) {
    ASSERT_TRUE(m.put("k" + std::to_string(i), value(100 * 1024)));
    EXPECT_LE(m.bytes(), bound);
  }
  // 1 MiB holds 10 entries of 100 KiB (+ key and overhead), not 11.
  EXPECT_EQ(m.size(), 10u);
  EXPECT_EQ(m.evictions(), 200u - m.size());
  // The most recent survive, the oldest went first.
  EXPECT_NE(m.get("k199", 0), nullptr);
  EXPECT_EQ(m.get("k0", 0), nullptr);
}

TEST(MemoryLru, EvictsTheLeastRecentlyUsed) {
  memory_lru m(3 * (memory_lru::overhead + 2 + 10));
  m.put("k1", value(10));
  m.put("k2", value(10));
  m.put("k3", value(10));
  ASSERT_NE(m.get("k1", 0), nullptr);  // k1 becomes the most recent
  m.put("k4", value(10));              // evicts k2
  EXPECT_EQ(m.get("k2", 0), nullptr);
  EXPECT_NE(m.get("k1", 0), nullptr);
  EXPECT_NE(m.get("k3", 0), nullptr);
  EXPECT_NE(m.get("k4", 0), nullptr);
}

TEST(MemoryLru, ExpiredEntriesAreDropped) {
  memory_lru m(1 << 20);
  m.put("k", value(10, 1000, 500));
  EXPECT_NE(m.get("k", 1499), nullptr);
  EXPECT_EQ(m.get("k", 1500), nullptr);
  EXPECT_EQ(m.size(), 0u);
  EXPECT_EQ(m.bytes(), 0u);
}

TEST(MemoryLru, ReplaceEraseClearKeepTheCount) {
  memory_lru m(1 << 20);
  m.put("k", value(100));
  m.put("k", value(50));
  EXPECT_EQ(m.size(), 1u);
  EXPECT_EQ(m.bytes(), 1 + 50 + memory_lru::overhead);
  EXPECT_EQ(m.get("k", 0)->value.size(), 50u);
  EXPECT_TRUE(m.erase("k"));
  EXPECT_FALSE(m.erase("k"));
  EXPECT_EQ(m.bytes(), 0u);
  m.put("a", value(1));
  m.put("b", value(1));
  m.clear();
  EXPECT_EQ(m.size(), 0u);
  EXPECT_EQ(m.bytes(), 0u);
  EXPECT_EQ(m.get("a", 0), nullptr);
}

TEST(MemoryLru, AnEntryLargerThanTheBoundIsNotKept) {
  memory_lru m(1000);
  m.put("small", value(10));
  EXPECT_FALSE(m.put("big", value(2000)));
  EXPECT_NE(m.get("small", 0), nullptr);  // nothing was evicted for it
  EXPECT_EQ(m.get("big", 0), nullptr);
}

}  // namespace
}  // namespace switchyard::cache
