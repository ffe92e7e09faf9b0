// end_user_cache with a scripted lookup (no database): single flight, the default budget of
// end users without a row or without a budget, TTLs and stale-while-revalidate on the
// simulated coarse clock, invalidation, outages; proxy_limits.
#include "switchyard/auth/end_user_cache.hpp"
#include "unit/fake_coarse_clock.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/steady_timer.hpp>
#include <gtest/gtest.h>

#include <map>

namespace {

namespace net = switchyard::net;
namespace auth = switchyard::auth;
namespace core = switchyard::core;
using namespace std::chrono_literals;

struct fake_rows {
  std::map<std::string, auth::end_user> rows;
  bool down = false;
  int queries = 0;
};

net::awaitable<core::result<std::optional<auth::end_user>>> lookup(fake_rows* db, std::string id) {
  ++db->queries;
  net::steady_timer t(co_await net::this_coro::executor, 10ms);
  co_await t.async_wait(net::as_tuple(net::use_awaitable));
  if (db->down) {
    co_return core::make_error(core::errc::unavailable, "connection refused");
  }
  auto it = db->rows.find(id);
  if (it == db->rows.end()) {
    co_return std::optional<auth::end_user>{};
  }
  co_return std::optional<auth::end_user>{it->second};
}

template <class F>
void run(net::io_context& io, F f) {
  bool done = false;
  std::exception_ptr err;
  net::co_spawn(io, std::move(f), [&](std::exception_ptr e) {
    done = true;
    err = e;
  });
  io.restart();
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!done && std::chrono::steady_clock::now() < deadline) {
    io.run_one_for(50ms);
  }
  ASSERT_TRUE(done);
  if (err) {
    std::rethrow_exception(err);
  }
}

class end_user_cache_test : public ::testing::Test {
 protected:
  end_user_cache_test() {
    auth::end_user u;
    u.limits.max_budget = 7;
    u.limits.spend = 1.5;
    u.limits.rpm_limit = 10;
    db.rows["with-budget"] = u;
    auth::end_user b;
    b.blocked = true;
    db.rows["blocked-no-budget"] = b;
  }
  std::unique_ptr<auth::end_user_cache> make(auth::end_user_cache_options o = {}) {
    o.default_max_budget = 2.5;
    return std::make_unique<auth::end_user_cache>(
        io.get_executor(), [p = &db](std::string id) { return lookup(p, std::move(id)); }, o);
  }
  switchyard::testing::fake_coarse_clock coarse{4ms};
  net::io_context io;
  fake_rows db;
};

TEST_F(end_user_cache_test, rows_unknown_ids_and_the_default_budget) {
  auto cache = make();
  run(io, [&]() -> net::awaitable<void> {
    auto a = co_await cache->get("with-budget");
    EXPECT_TRUE(a.has_value());
    EXPECT_TRUE((*a)->known);
    EXPECT_EQ((*a)->limits.level, auth::limit_level::end_user);
    EXPECT_EQ((*a)->limits.id, "with-budget");
    EXPECT_EQ((*a)->limits.max_budget, 7.0) << "its own budget wins over max_end_user_budget";
    EXPECT_EQ((*a)->limits.spend, 1.5);
    EXPECT_EQ((*a)->limits.rpm_limit, 10);
    auto b = co_await cache->get("blocked-no-budget");
    EXPECT_TRUE((*b)->blocked);
    EXPECT_EQ((*b)->limits.max_budget, 2.5) << "a row without a budget gets max_end_user_budget";
    auto n = co_await cache->get("never-seen");
    EXPECT_FALSE((*n)->known);
    EXPECT_FALSE((*n)->blocked);
    EXPECT_EQ((*n)->limits.id, "never-seen");
    EXPECT_EQ((*n)->limits.max_budget, 2.5);
  });
}

TEST_F(end_user_cache_test, concurrent_misses_share_one_lookup) {
  auto cache = make();
  int finished = 0;
  for (int i = 0; i < 30; ++i) {
    net::co_spawn(io, [&]() -> net::awaitable<void> {
      auto r = co_await cache->get("with-budget");
      EXPECT_TRUE(r && (*r)->known);
      ++finished;
    }, net::detached);
  }
  run(io, [&]() -> net::awaitable<void> {
    while (finished < 30) {
      net::steady_timer t(co_await net::this_coro::executor, 5ms);
      co_await t.async_wait(net::as_tuple(net::use_awaitable));
    }
  });
  EXPECT_EQ(db.queries, 1);
  EXPECT_EQ(cache->lookups(), 1u);
}

TEST_F(end_user_cache_test, ttl_stale_while_revalidate_negative_ttl_and_invalidate) {
  auth::end_user_cache_options o;
  o.ttl = 1000ms;
  o.negative_ttl = 100ms;
  auto cache = make(o);
  run(io, [&]() -> net::awaitable<void> {
    (void)co_await cache->get("with-budget");
    (void)co_await cache->get("ghost");
    EXPECT_EQ(db.queries, 2);
    coarse.advance(96ms);
    (void)co_await cache->get("with-budget");
    (void)co_await cache->get("ghost");
    EXPECT_EQ(db.queries, 2) << "both fresh";
    coarse.advance(4ms);
    EXPECT_FALSE((*co_await cache->get("ghost"))->known);
    EXPECT_EQ(db.queries, 3) << "an id without a row is looked up again after negative_ttl";

    db.rows["with-budget"].limits.spend = 4;
    coarse.advance(1000ms);
    auto stale = cache->cached("with-budget");
    EXPECT_TRUE(stale.has_value());
    EXPECT_EQ((*stale)->limits.spend, 1.5) << "answered from memory at once";
    EXPECT_EQ(cache->lookups(), 4u) << "and one refresh started";
    while (cache->lookups() > 0 && (*cache->cached("with-budget"))->limits.spend != 4) {
      net::steady_timer t(co_await net::this_coro::executor, 5ms);
      co_await t.async_wait(net::as_tuple(net::use_awaitable));
    }
    EXPECT_EQ((*co_await cache->get("with-budget"))->limits.spend, 4);

    db.rows["with-budget"].blocked = true;
    cache->invalidate("with-budget");
    EXPECT_FALSE(cache->cached("with-budget").has_value());
    EXPECT_TRUE((*co_await cache->get("with-budget"))->blocked) << "invalidate: the next get reads the row";
  });
}

TEST_F(end_user_cache_test, outage_keeps_cached_entries_and_fails_unknown_ones) {
  auth::end_user_cache_options o;
  o.ttl = 1000ms;
  auto cache = make(o);
  run(io, [&]() -> net::awaitable<void> {
    (void)co_await cache->get("with-budget");
    db.down = true;
    coarse.advance(2000ms);
    auto r = co_await cache->get("with-budget");
    EXPECT_TRUE(r.has_value()) << "a stale entry keeps serving";
    auto miss = co_await cache->get("someone-else");
    EXPECT_FALSE(miss.has_value());
    EXPECT_EQ(miss.error().code, core::errc::unavailable);
  });
}

TEST(proxy_limits, from_the_config) {
  EXPECT_FALSE(auth::proxy_limits(std::nullopt, "1d"));
  auto p = auth::proxy_limits(100.0, "30d");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->level, auth::limit_level::proxy);
  EXPECT_EQ(p->id, "litellm-proxy-budget");
  EXPECT_EQ(p->max_budget, 100.0);
  EXPECT_EQ(p->budget_duration, "30d");
}

}  // namespace
