// The store of /v1/responses conversations (pipeline/responses_store.hpp), memory tier:
// TTL on an injected clock, the byte bound, entries too large to keep, erase. (The Redis
// tier is exercised by tests/e2e/responses.test.mjs with two gateways.)
#include "switchyard/pipeline/responses_store.hpp"

#include "fakes.hpp"

#include <gtest/gtest.h>

namespace switchyard::pipeline {
namespace {

using testing::run_coro;

struct store_fixture {
  std::int64_t now = 1'000'000;
  net::io_context io;
  responses_store store;
  explicit store_fixture(responses_store_options o)
      : store(io.get_executor(), nullptr, std::move(o), [this] { return now; }) {}

  std::optional<std::string> get(const std::string& id) {
    std::optional<std::string> out;
    run_coro([&]() -> net::awaitable<void> { out = co_await store.get(id); });
    return out;
  }
  bool erase(const std::string& id) {
    bool out = false;
    run_coro([&]() -> net::awaitable<void> { out = co_await store.erase(id); });
    return out;
  }
};

TEST(ResponsesStore, KeepsEntriesForTheirTTL) {
  responses_store_options o;
  o.ttl = std::chrono::seconds(60);
  store_fixture f(o);
  ASSERT_TRUE(f.store.put("resp_1", R"({"owner":"","response":{},"items":[]})"));
  EXPECT_EQ(f.get("resp_1"), R"({"owner":"","response":{},"items":[]})");
  f.now += 59'999;
  EXPECT_TRUE(f.get("resp_1"));
  f.now += 1;
  EXPECT_FALSE(f.get("resp_1"));  // expired at stored + ttl
  EXPECT_FALSE(f.get("resp_unknown"));
  EXPECT_EQ(f.store.counters().memory_hits, 2u);
  EXPECT_EQ(f.store.counters().misses, 2u);
}

TEST(ResponsesStore, BoundedInBytesOldestFirst) {
  responses_store_options o;
  o.memory_bytes = 10'000;
  o.max_entry_bytes = 4'000;
  store_fixture f(o);
  const std::string value(3'000, 'x');
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(f.store.put("resp_" + std::to_string(i), value));
    EXPECT_LE(f.store.memory_bytes(), o.memory_bytes);
  }
  EXPECT_FALSE(f.get("resp_0"));  // evicted
  EXPECT_TRUE(f.get("resp_9"));
  EXPECT_FALSE(f.store.put("resp_big", std::string(4'001, 'y')));  // larger than one entry may be
  EXPECT_EQ(f.store.counters().too_large, 1u);
  EXPECT_FALSE(f.get("resp_big"));
}

TEST(ResponsesStore, EraseForgets) {
  store_fixture f(responses_store_options{});
  f.store.put("resp_1", "{}");
  EXPECT_TRUE(f.erase("resp_1"));
  EXPECT_FALSE(f.get("resp_1"));
  EXPECT_FALSE(f.erase("resp_1"));
}

}  // namespace
}  // namespace switchyard::pipeline
