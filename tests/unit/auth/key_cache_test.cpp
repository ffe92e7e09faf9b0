// key_cache and key_authenticator with a scripted lookup (no database): single flight,
// TTLs, negative caching, invalidation, outage behaviour, and the auth decisions.
// Entry ages read the coarse clock, simulated here (a 4 ms tick) and moved by hand: a TTL
// passes when the test says so, not when the scheduler lets it.
#include "switchyard/auth/key_auth.hpp"
#include "switchyard/auth/key_cache.hpp"
#include "switchyard/core/ids.hpp"
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

// A lookup backed by a map, slow on purpose (so requests overlap), countable and breakable.
struct fake_db {
  std::map<std::string, auth::virtual_key> rows;
  bool down = false;
  int queries = 0;
  std::chrono::milliseconds delay{20};
};

net::awaitable<core::result<std::optional<auth::virtual_key>>> fake_lookup(fake_db* db, std::string hash) {
  ++db->queries;
  net::steady_timer t(co_await net::this_coro::executor, db->delay);
  co_await t.async_wait(net::as_tuple(net::use_awaitable));
  if (db->down) {
    co_return core::make_error(core::errc::unavailable, "connection refused");
  }
  auto it = db->rows.find(hash);
  if (it == db->rows.end()) {
    co_return std::optional<auth::virtual_key>{};
  }
  co_return std::optional<auth::virtual_key>{it->second};
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

net::awaitable<void> sleep_ms(int ms) {
  net::steady_timer t(co_await net::this_coro::executor, std::chrono::milliseconds(ms));
  co_await t.async_wait(net::as_tuple(net::use_awaitable));
}

class key_cache_test : public ::testing::Test {
 protected:
  key_cache_test() {
    auth::virtual_key k;
    k.token = "h-a";
    k.models = {"a"};
    db.rows["h-a"] = k;
  }
  auth::key_cache make(auth::key_cache_options o = {}) {
    fake_db* p = &db;
    return auth::key_cache(io.get_executor(), [p](std::string h) { return fake_lookup(p, std::move(h)); }, o);
  }
  switchyard::testing::fake_coarse_clock coarse{4ms};
  net::io_context io;
  fake_db db;
};

TEST_F(key_cache_test, concurrent_misses_share_one_lookup_then_hits_are_free) {
  auto cache = std::make_unique<auth::key_cache>(io.get_executor(), [p = &db](std::string h) {
    return fake_lookup(p, std::move(h));
  });
  int found = 0;
  int finished = 0;
  for (int i = 0; i < 50; ++i) {
    net::co_spawn(io, [&]() -> net::awaitable<void> {
      auto r = co_await cache->get("h-a");
      if (r && *r && (*r)->token == "h-a") {
        ++found;
      }
      ++finished;
    }, net::detached);
  }
  run(io, [&]() -> net::awaitable<void> {
    while (finished < 50) {
      co_await sleep_ms(5);
    }
  });
  EXPECT_EQ(found, 50);
  EXPECT_EQ(db.queries, 1) << "single flight";
  run(io, [&]() -> net::awaitable<void> {
    for (int i = 0; i < 100; ++i) {
      auto r = co_await cache->get("h-a");
      EXPECT_TRUE(r && *r);
    }
  });
  EXPECT_EQ(db.queries, 1) << "hits never query";
  EXPECT_EQ(cache->lookups(), 1u);
}

TEST_F(key_cache_test, unknown_keys_are_cached_briefly) {
  auth::key_cache_options o;
  o.negative_ttl = 100ms;
  auto cache = make(o);
  run(io, [&]() -> net::awaitable<void> {
    for (int i = 0; i < 20; ++i) {
      auto r = co_await cache.get("nope");
      EXPECT_TRUE(r.has_value());
      EXPECT_EQ(*r, nullptr);
    }
    EXPECT_EQ(db.queries, 1);
    coarse.advance(96ms);  // the lookup took no coarse time: the entry is 96 ms old
    EXPECT_EQ(*co_await cache.get("nope"), nullptr) << "younger than negative_ttl";
    EXPECT_EQ(db.queries, 1);
    coarse.advance(4ms);
    auth::virtual_key k;
    k.token = "nope";
    db.rows["nope"] = k;
    auto r = co_await cache.get("nope");
    EXPECT_TRUE(r && *r) << "after negative_ttl the key is looked up again";
    EXPECT_EQ(db.queries, 2);
  });
}

TEST_F(key_cache_test, invalidate_forces_a_fresh_lookup) {
  auto cache = make();
  run(io, [&]() -> net::awaitable<void> {
    auto r = co_await cache.get("h-a");
    EXPECT_FALSE((*r)->blocked);
    db.rows["h-a"].blocked = true;
    r = co_await cache.get("h-a");
    EXPECT_FALSE((*r)->blocked) << "still cached";
    cache.invalidate("h-a");
    r = co_await cache.get("h-a");
    EXPECT_TRUE((*r)->blocked);
    EXPECT_EQ(db.queries, 2);
  });
}

TEST_F(key_cache_test, outage_keeps_cached_keys_and_refuses_unknown_ones) {
  auth::key_cache_options o;
  o.ttl = 50ms;
  auto cache = make(o);
  run(io, [&]() -> net::awaitable<void> {
    EXPECT_TRUE(*co_await cache.get("h-a"));
    db.down = true;
    coarse.advance(80ms);  // past the TTL: served stale, refreshed in the background (fails)
    for (int i = 0; i < 10; ++i) {
      auto r = co_await cache.get("h-a");
      EXPECT_TRUE(r && *r) << "cached key keeps working while the database is down";
      coarse.advance(10ms);
      co_await sleep_ms(5);  // lets the background refresh run (and fail)
    }
    EXPECT_GE(db.queries, 2) << "refreshes were tried";
    auto unknown = co_await cache.get("h-unknown");
    EXPECT_FALSE(unknown.has_value());
    EXPECT_EQ(unknown.error().code, core::errc::unavailable);
    db.down = false;
    unknown = co_await cache.get("h-unknown");
    EXPECT_TRUE(unknown.has_value()) << "recovers: errors were not cached";
  });
}

TEST_F(key_cache_test, answers_from_memory_without_a_coroutine_when_it_can) {
  auth::key_cache_options o;
  o.negative_ttl = 100ms;
  auto cache = make(o);
  EXPECT_FALSE(cache.cached("h-a").has_value()) << "never seen: needs a lookup";
  EXPECT_EQ(db.queries, 0) << "cached() never starts a lookup for a miss";
  run(io, [&]() -> net::awaitable<void> {
    (void)co_await cache.get("h-a");
    (void)co_await cache.get("nope");
  });
  auto hit = cache.cached("h-a");
  ASSERT_TRUE(hit.has_value());
  ASSERT_NE(*hit, nullptr);
  EXPECT_EQ((*hit)->token, "h-a");
  auto negative = cache.cached("nope");
  ASSERT_TRUE(negative.has_value()) << "a fresh \"no such key\" is an answer";
  EXPECT_EQ(*negative, nullptr);
  coarse.advance(100ms);
  EXPECT_FALSE(cache.cached("nope").has_value()) << "past negative_ttl: look it up again";
  EXPECT_EQ(db.queries, 2);

  auth::authenticator master("sk-master");
  auth::key_authenticator ka(master, &cache, false);
  auto m = ka.authenticate_cached("sk-master");
  ASSERT_TRUE(m.has_value());
  EXPECT_TRUE(*m && (*m)->is_master);
  auto empty = ka.authenticate_cached("");
  ASSERT_TRUE(empty.has_value());
  EXPECT_FALSE(*empty);
  EXPECT_FALSE(ka.authenticate_cached("sk-new").has_value()) << "unknown to memory: authenticate() looks it up";
  auth::virtual_key k;
  k.token = core::sha256_hex("sk-new");
  db.rows[k.token] = k;
  run(io, [&]() -> net::awaitable<void> {
    auto r = co_await ka.authenticate("sk-new");
    EXPECT_TRUE(r.has_value());
  });
  const int queries = db.queries;
  auto now = ka.authenticate_cached("sk-new");
  ASSERT_TRUE(now.has_value());
  ASSERT_TRUE(now->has_value());
  EXPECT_EQ((*now)->key, "sk-new");
  EXPECT_NE((*now)->vkey, nullptr);
  EXPECT_FALSE((*now)->is_master);
  EXPECT_EQ(db.queries, queries);
  cache.invalidate(k.token);
  EXPECT_FALSE(ka.authenticate_cached("sk-new").has_value());
}

// Keys' hashes are remembered per thread (more keys than slots here, so slots are
// shared and replaced): every key still finds its own row, unknown keys none, and keys
// one byte apart are told apart.
TEST_F(key_cache_test, remembered_key_hashes_never_mix_keys_up) {
  auto cache = make();
  auth::authenticator master("sk-master");
  auth::key_authenticator ka(master, &cache, false);
  constexpr int n = 300;
  auto key_of = [](int i) { return "sk-memo-" + std::to_string(i); };
  for (int i = 0; i < n; i += 2) {  // even keys exist, odd ones do not
    auth::virtual_key k;
    k.token = core::sha256_hex(key_of(i));
    k.key_alias = key_of(i);
    db.rows[k.token] = k;
  }
  run(io, [&]() -> net::awaitable<void> {
    for (int i = 0; i < n; ++i) {
      (void)co_await ka.authenticate(key_of(i));  // fills the key cache (and its negatives)
    }
  });
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < n; ++i) {
      auto r = ka.authenticate_cached(key_of(i));
      ASSERT_TRUE(r.has_value()) << key_of(i);
      if (i % 2 == 0) {
        ASSERT_TRUE(r->has_value()) << key_of(i);
        EXPECT_EQ((*r)->vkey->key_alias, key_of(i));
      } else {
        EXPECT_FALSE(r->has_value()) << key_of(i) << " must stay unknown";
      }
    }
  }
  // One byte apart from a known key, same length: not that key.
  auto near = ka.authenticate_cached("sk-memo-1O");  // "sk-memo-10" exists
  EXPECT_TRUE(!near.has_value() || !near->has_value());
}

TEST_F(key_cache_test, authenticator_decisions) {
  auto cache = make();
  auth::authenticator master("sk-master");
  auth::key_authenticator ka(master, &cache, false);
  auto put = [&](const std::string& key, auth::virtual_key k) {
    k.token = core::sha256_hex(key);
    db.rows[k.token] = k;
  };
  auth::virtual_key plain;
  plain.models = {"a"};
  put("sk-good", plain);
  auth::virtual_key blocked;
  blocked.blocked = true;
  put("sk-blocked", blocked);
  auth::virtual_key expired;
  expired.expires = std::chrono::system_clock::now() - 1s;
  put("sk-expired", expired);
  auth::virtual_key grace_over;
  grace_over.grace_until = std::chrono::system_clock::now() - 1s;
  put("sk-old", grace_over);
  run(io, [&]() -> net::awaitable<void> {
    auto m = co_await ka.authenticate("sk-master");
    EXPECT_TRUE(m && m->is_master);
    auto g = co_await ka.authenticate("sk-good");
    EXPECT_TRUE(g.has_value());
    if (g) {
      EXPECT_FALSE(g->is_master);
      EXPECT_TRUE(auth::model_allowed(*g, "a"));
      auto denied = auth::check_model_access(*g, "b");
      EXPECT_FALSE(denied.has_value());
      if (!denied) {
        EXPECT_EQ(denied.error().status, 403);
        EXPECT_EQ(denied.error().type, "key_model_access_denied");
        EXPECT_EQ(denied.error().param, "model");
        EXPECT_EQ(denied.error().message,
                  "key not allowed to access model. This key can only access models=['a']. Tried to access b");
      }
      EXPECT_EQ(auth::allowed_models(*g, {"a", "b", "c"}), std::vector<std::string>{"a"});
    }
    auto b = co_await ka.authenticate("sk-blocked");
    EXPECT_TRUE(!b && b.error().status == 401 && b.error().type == "auth_error");
    auto e = co_await ka.authenticate("sk-expired");
    EXPECT_TRUE(!e && e.error().status == 401 && e.error().type == "expired_key");
    auto o = co_await ka.authenticate("sk-old");
    EXPECT_TRUE(!o && o.error().status == 401 && o.error().type == "auth_error");
    auto u = co_await ka.authenticate("sk-unknown");
    EXPECT_TRUE(!u && u.error().status == 401);
    if (!u) {
      EXPECT_NE(u.error().message.find(core::sha256_hex("sk-unknown")), std::string::npos);
    }
    auto none = co_await ka.authenticate("");
    EXPECT_TRUE(!none && none.error().status == 401);
    db.down = true;
    auto d = co_await ka.authenticate("sk-never-seen");
    EXPECT_TRUE(!d && d.error().status == 503);
    auto still = co_await ka.authenticate("sk-good");
    EXPECT_TRUE(still.has_value()) << "cached key during the outage";
  });
  auth::key_authenticator lenient(master, &cache, true);
  run(io, [&]() -> net::awaitable<void> {
    auto d = co_await lenient.authenticate("sk-never-seen-2");
    EXPECT_TRUE(d.has_value()) << "allow_requests_on_db_unavailable";
    if (d) {
      EXPECT_EQ(d->vkey, nullptr);
    }
  });
}

TEST(key_access, master_and_unrestricted_keys_reach_every_model) {
  auth::principal master;
  master.is_master = true;
  EXPECT_TRUE(auth::model_allowed(master, "x"));
  auth::principal all;
  all.vkey = std::make_shared<const auth::virtual_key>();
  EXPECT_TRUE(auth::model_allowed(all, "x"));
  auto k = std::make_shared<auth::virtual_key>();
  k->models = {"all-proxy-models"};
  auth::principal sentinel;
  sentinel.vkey = k;
  EXPECT_TRUE(auth::model_allowed(sentinel, "x"));
}

}  // namespace
