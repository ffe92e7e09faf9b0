#include "switchyard/cache/memory_lru.hpp"

#include <gtest/gtest.h>

#include <list>
#include <random>

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


// A plain model of the cache (a list, most recent first, searched linearly) that the index
// must agree with, whatever its hash does.
struct model {
  std::size_t max_bytes;
  std::list<std::pair<std::string, entry>> items;
  std::size_t bytes = 0;
  static std::size_t cost(const std::string& k, const entry& e) { return k.size() + e.value.size() + memory_lru::overhead; }
  std::list<std::pair<std::string, entry>>::iterator find(const std::string& k) {
    for (auto it = items.begin(); it != items.end(); ++it) {
      if (it->first == k) {
        return it;
      }
    }
    return items.end();
  }
  void drop(std::list<std::pair<std::string, entry>>::iterator it) {
    bytes -= cost(it->first, it->second);
    items.erase(it);
  }
  const entry* get(const std::string& k, std::int64_t now) {
    auto it = find(k);
    if (it == items.end()) {
      return nullptr;
    }
    if (it->second.expires_ms <= now) {
      drop(it);
      return nullptr;
    }
    items.splice(items.begin(), items, it);
    return &items.front().second;
  }
  bool put(const std::string& k, entry e) {
    if (auto it = find(k); it != items.end()) {
      drop(it);
    }
    const auto c = cost(k, e);
    if (c > max_bytes) {
      return false;
    }
    while (!items.empty() && bytes + c > max_bytes) {
      drop(std::prev(items.end()));
    }
    items.emplace_front(k, std::move(e));
    bytes += c;
    return true;
  }
  bool erase(const std::string& k) {
    auto it = find(k);
    if (it == items.end()) {
      return false;
    }
    drop(it);
    return true;
  }
};

// Hashes that put many keys on one home slot, next to the end of the array (so runs wrap
// around to its start), or on two neighbouring homes whose runs interleave.
std::uint64_t one_home(std::string_view) { return 15; }
std::uint64_t two_homes(std::string_view k) { return k.back() % 2 == 0 ? 14 : 15; }
std::uint64_t few_homes(std::string_view k) { return static_cast<unsigned char>(k.back()) * 0x9e3779b97f4a7c15ull % 5; }

TEST(MemoryLru, AgreesWithAPlainModelUnderCollidingHashes) {
  for (memory_lru::hash_fn hash : {memory_lru::hash_fn{one_home}, memory_lru::hash_fn{two_homes}, memory_lru::hash_fn{few_homes}, memory_lru::hash_fn{memory_lru::default_hash}}) {
    std::mt19937 rng(7);
    const std::size_t bound = 40 * (memory_lru::overhead + 40);
    memory_lru m(bound, hash);
    model ref{bound, {}, 0};
    std::vector<std::string> keys;
    for (int i = 0; i < 60; ++i) {
      keys.push_back("key-" + std::to_string(i));
    }
    std::int64_t now = 0;
    for (int step = 0; step < 20000; ++step) {
      const std::string& k = keys[rng() % keys.size()];
      switch (rng() % 10) {
        case 0:
        case 1:
        case 2:
        case 3: {
          const std::size_t size = rng() % 60;
          const std::int64_t ttl = 1 + static_cast<std::int64_t>(rng() % 400);
          const bool a = m.put(k, {std::string(size, 'v'), now, now + ttl});
          const bool b = ref.put(k, {std::string(size, 'v'), now, now + ttl});
          ASSERT_EQ(a, b) << "step " << step;
          break;
        }
        case 4:
          ASSERT_EQ(m.erase(k), ref.erase(k)) << "step " << step;
          break;
        case 5:
          now += static_cast<std::int64_t>(rng() % 50);
          break;
        case 6:
          if (rng() % 200 == 0) {
            m.clear();
            ref.items.clear();
            ref.bytes = 0;
          }
          break;
        default: {
          const entry* a = m.get(k, now);
          const entry* b = ref.get(k, now);
          ASSERT_EQ(a == nullptr, b == nullptr) << "step " << step << " key " << k;
          if (a != nullptr) {
            ASSERT_EQ(a->value, b->value);
            ASSERT_EQ(a->expires_ms, b->expires_ms);
          }
        }
      }
      ASSERT_EQ(m.size(), ref.items.size()) << "step " << step;
      ASSERT_EQ(m.bytes(), ref.bytes) << "step " << step;
      ASSERT_LE(m.bytes(), bound);
    }
    // Every key, in the model's order from the least recent: the same answers.
    for (const auto& k : keys) {
      const entry* a = m.get(k, now);
      const entry* b = ref.get(k, now);
      ASSERT_EQ(a == nullptr, b == nullptr) << k;
    }
  }
}

TEST(MemoryLru, ManyEntriesOnOneHomeAreAllFoundAndDropped) {
  memory_lru m(1 << 20, one_home);
  for (int i = 0; i < 300; ++i) {  // grows the index several times
    ASSERT_TRUE(m.put("k" + std::to_string(i), value(1)));
  }
  for (int i = 0; i < 300; i += 2) {
    ASSERT_TRUE(m.erase("k" + std::to_string(i)));
  }
  for (int i = 0; i < 300; ++i) {
    EXPECT_EQ(m.get("k" + std::to_string(i), 0) != nullptr, i % 2 == 1) << i;
  }
  EXPECT_EQ(m.size(), 150u);
}

}  // namespace
}  // namespace switchyard::cache
