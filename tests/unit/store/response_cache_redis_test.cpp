// response_cache against a real Redis: which tier an answer goes to, and writes that
// outlive the cache.
#include "switchyard/cache/response_cache.hpp"

#include "store_test_support.hpp"

namespace {

using namespace store_test;
namespace cache = switchyard::cache;
namespace rd = switchyard::store::redis;

class response_cache_redis_test : public redis_fixture {
 protected:
  cache::cache_options cache_options() const {
    cache::cache_options o;
    o.redis_prefix = prefix;
    o.redis_timeout = 2000ms;  // a lookup here must not be given up on a loaded machine
    return o;
  }
};

net::awaitable<void> until_written(const cache::response_cache& rc) {
  while (rc.pending_writes() > 0) {
    co_await sleep_for(2ms);
  }
}

TEST_F(response_cache_redis_test, an_answer_enters_memory_when_it_is_read_back_from_redis) {
  run([&]() -> net::awaitable<void> {
    auto ex = co_await net::this_coro::executor;
    rd::redis_client redis{ex, options_from_url(url)};
    CO_ASSERT((co_await redis.connect()).has_value(), "connect");
    cache::response_cache rc{ex, &redis, cache_options()};
    cache::stored_usage usage{true, true, 3, 4, 7};
    EXPECT_TRUE(rc.put("k1", R"({"id":"a"})", 60, usage));
    EXPECT_EQ(rc.memory().size(), 0u) << "asked for once: Redis only";
    co_await until_written(rc);
    EXPECT_EQ(rc.counters().writes_dropped, 0u);
    EXPECT_FALSE(rc.get_memory("k1"));

    auto hit = co_await rc.get_redis("k1");
    CO_ASSERT(hit.has_value(), "the entry is in Redis");
    EXPECT_EQ(hit->value, R"({"id":"a"})");
    EXPECT_TRUE(hit->has_usage);
    EXPECT_EQ(hit->total_tokens, 7);
    EXPECT_EQ(rc.memory().size(), 1u) << "asked for again: now in memory too";
    auto mem = rc.get_memory("k1");
    CO_ASSERT(mem.has_value(), "memory hit");
    EXPECT_EQ(mem->value, R"({"id":"a"})");
    EXPECT_EQ(rc.counters().memory_hits, 1u);
    EXPECT_EQ(rc.counters().redis_hits, 1u);

    std::vector<std::string> keys{"k1"};
    EXPECT_EQ((co_await rc.remove(std::move(keys))).value(), 1u);
  });
}

constexpr std::int64_t century_ms = 100LL * 365 * 24 * 3600 * 1000;

TEST_F(response_cache_redis_test, a_ttl_beyond_any_horizon_is_held_to_a_hundred_years) {
  // "cache": {"ttl": 1e308} was converted to milliseconds as it was: an overflow, a
  // negative TTL, and the answer was silently not stored.
  run([&]() -> net::awaitable<void> {
    auto ex = co_await net::this_coro::executor;
    rd::redis_client redis{ex, options_from_url(url)};
    CO_ASSERT((co_await redis.connect()).has_value(), "connect");
    cache::response_cache rc{ex, &redis, cache_options()};
    EXPECT_TRUE(rc.put("forever", R"({"id":"f"})", 1e308));
    co_await until_written(rc);
    EXPECT_EQ(rc.counters().writes_dropped, 0u);
    std::vector<std::string> pttl{"PTTL", prefix + "forever"};  // named: GCC 12 refuses a braced list in co_await
    auto ttl = co_await redis.command(std::move(pttl), 2000ms);
    CO_ASSERT(ttl.has_value() && ttl->type == rd::reply::kind::integer, "PTTL");
    EXPECT_GT(ttl->integer, century_ms - 60'000);
    EXPECT_LE(ttl->integer, century_ms);
    auto hit = co_await rc.get_redis("forever");
    CO_ASSERT(hit.has_value(), "read back");
    EXPECT_EQ(hit->value, R"({"id":"f"})");

    std::vector<std::string> keys{"forever"};
    co_await rc.remove(std::move(keys));
  });
}

TEST_F(response_cache_redis_test, an_entry_written_by_someone_else_is_a_miss_or_read_with_sane_counts) {
  // Anyone who can write to Redis can write under the prefix: a value without the header
  // is a miss; the header's counts are read as the provider readers read counts.
  run([&]() -> net::awaitable<void> {
    auto ex = co_await net::this_coro::executor;
    rd::redis_client redis{ex, options_from_url(url)};
    CO_ASSERT((co_await redis.connect()).has_value(), "connect");
    cache::response_cache rc{ex, &redis, cache_options()};
    const std::pair<const char*, const char*> values[] = {
        {"garbage", "garbage"},
        {"fields", "1 99999999999999999999\n{}"},
        {"counts", "1 99999999999999 1 -5 -5 -10\n{\"id\":\"x\"}"},
    };
    for (const auto& [name, value] : values) {
      std::vector<std::string> set{"SET", prefix + name, value};  // named: GCC 12 and co_await
      CO_ASSERT((co_await redis.command(std::move(set), 2000ms)).has_value(), "SET");
    }
    EXPECT_FALSE(co_await rc.get_redis("garbage"));
    EXPECT_FALSE(co_await rc.get_redis("fields"));  // an expiry beyond int64: not an entry
    auto odd = co_await rc.get_redis("counts");
    CO_ASSERT(odd.has_value(), "a well-formed header is an entry");
    EXPECT_EQ(odd->prompt_tokens, 0);
    EXPECT_EQ(odd->completion_tokens, 0);
    EXPECT_EQ(odd->total_tokens, 0);
    std::vector<std::string> keys{"garbage", "fields", "counts"};
    co_await rc.remove(std::move(keys));
  });
}

TEST_F(response_cache_redis_test, removing_a_group_entry_removes_the_keys_it_lists_in_both_tiers) {
  run([&]() -> net::awaitable<void> {
    auto ex = co_await net::this_coro::executor;
    rd::redis_client redis{ex, options_from_url(url)};
    CO_ASSERT((co_await redis.connect()).has_value(), "connect");
    cache::response_cache rc{ex, &redis, cache_options()};
    EXPECT_TRUE(rc.put("item-a", "[1]", 60));
    EXPECT_TRUE(rc.put("item-b", "[2]", 60));
    EXPECT_TRUE(rc.put("whole", cache::group_entry({"item-a", "item-b"}), 60));
    EXPECT_TRUE(rc.put("other", "[3]", 60));
    co_await until_written(rc);
    CO_ASSERT((co_await rc.get_redis("item-a")).has_value(), "item-a in Redis (and now in memory)");
    std::vector<std::string> keys{"whole"};
    EXPECT_EQ((co_await rc.remove(std::move(keys))).value(), 3u);
    EXPECT_FALSE(rc.get_memory("item-a"));
    EXPECT_FALSE(co_await rc.get_redis("item-a"));
    EXPECT_FALSE(co_await rc.get_redis("item-b"));
    EXPECT_FALSE(co_await rc.get_redis("whole"));
    EXPECT_TRUE(co_await rc.get_redis("other"));  // not listed: kept
    std::vector<std::string> rest{"other"};
    co_await rc.remove(std::move(rest));
  });
}

TEST(response_cache_local, a_group_entry_in_memory_takes_its_keys_with_it) {
  net::io_context io;
  cache::response_cache rc{io.get_executor(), nullptr, cache::cache_options{}};
  EXPECT_TRUE(rc.put("item-a", "[1]", 60));
  EXPECT_TRUE(rc.put("whole", cache::group_entry({"item-a", "item-missing"}), 60));
  std::size_t removed = 0;
  net::co_spawn(io, rc.remove({"whole"}), [&](std::exception_ptr, switchyard::core::result<std::size_t> n) { removed = n.value(); });
  io.run();
  EXPECT_EQ(removed, 2u);
  EXPECT_FALSE(rc.get_memory("item-a"));
  EXPECT_FALSE(rc.get_memory("whole"));
}

TEST(response_cache_local, a_ttl_beyond_any_horizon_is_stored_in_memory) {
  net::io_context io;
  cache::response_cache local{io.get_executor(), nullptr, {}};  // type: local
  EXPECT_TRUE(local.put("forever", R"({"id":"f"})", 1e308));
  auto e = local.get_memory("forever");
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->expires_ms - e->stored_ms, century_ms);
}

TEST_F(response_cache_redis_test, without_a_redis_connection_answers_go_to_memory) {
  run([&]() -> net::awaitable<void> {
    auto ex = co_await net::this_coro::executor;
    rd::redis_client redis{ex, options_from_url(url)};  // never connected
    cache::response_cache rc{ex, &redis, cache_options()};
    EXPECT_TRUE(rc.put("k2", "{}", 60));
    EXPECT_EQ(rc.counters().writes_dropped, 1u);
    EXPECT_EQ(rc.memory().size(), 1u) << "a write Redis cannot take is kept in memory";
    EXPECT_TRUE(rc.get_memory("k2"));
    co_return;
  });
}

// A deletion Redis does not confirm is an error (the entries it holds would be served
// again once it answers), and the memory tier is emptied of the keys all the same.
TEST_F(response_cache_redis_test, a_deletion_redis_does_not_confirm_is_an_error) {
  run([&]() -> net::awaitable<void> {
    auto ex = co_await net::this_coro::executor;
    rd::redis_client redis{ex, options_from_url(url)};  // never connected
    cache::response_cache rc{ex, &redis, cache_options()};
    EXPECT_TRUE(rc.put("k3", "{}", 60));  // to memory: Redis cannot take it
    std::vector<std::string> keys{"k3"};
    auto removed = co_await rc.remove(std::move(keys));
    EXPECT_FALSE(removed.has_value());
    EXPECT_FALSE(rc.get_memory("k3"));
  });
}

TEST_F(response_cache_redis_test, writes_in_flight_outlive_the_cache) {
  run([&]() -> net::awaitable<void> {
    auto ex = co_await net::this_coro::executor;
    rd::redis_client redis{ex, options_from_url(url)};
    CO_ASSERT((co_await redis.connect()).has_value(), "connect");
    {
      cache::response_cache rc{ex, &redis, cache_options()};
      for (int i = 0; i < 50; ++i) {
        EXPECT_TRUE(rc.put("gone" + std::to_string(i), std::string(2000, 'z'), 60));
      }
      EXPECT_EQ(rc.pending_writes(), 50u);
    }  // destroyed with 50 replies to come: they report to the writes' own tally
    std::vector<std::string> last{"GET", prefix + "gone49"};
    auto r = co_await redis.command(std::move(last), 2000ms);  // after the 50 SETs (one connection: in order)
    CO_ASSERT(r.has_value(), "GET");
    EXPECT_EQ(r->str.substr(r->str.find('\n') + 1), std::string(2000, 'z'));
    std::vector<std::string> del{"DEL"};
    for (int i = 0; i < 50; ++i) {
      del.push_back(prefix + "gone" + std::to_string(i));
    }
    co_await redis.command(std::move(del), 2000ms);
  });
}

}  // namespace
