// The shared limits engine against a REAL Redis: two engines (two gateway instances) on
// one set of counters, with leases. A limit far away is drawn from leases (few round
// trips); near it every request asks Redis; whatever the mix, the counters never pass a
// limit, and when the engines stop, what their leases held and did not use is back.
#include "switchyard/limits/engine.hpp"

#include "store_test_support.hpp"

#include <memory>

namespace {

using namespace store_test;
namespace lim = switchyard::limits;
namespace rd = switchyard::store::redis;
using lim::check;
using lim::kind;

class limits_redis_test : public redis_fixture {
 protected:
  lim::redis_engine_options options() const {
    lim::redis_engine_options o;
    o.prefix = prefix;
    o.window = 600s;      // no window ends during a test
    o.lease = 3600s;      // leases end when the engines stop (the clock below stands still)
    o.timeout = 2000ms;   // a loaded machine: Redis answers, late or not
    return o;
  }

  check make(kind k, std::int64_t limit, std::int64_t amount) const {
    check c;
    c.k = k;
    c.scope = "api_key";
    c.id = "k1";
    c.limit = limit;
    c.amount = amount;
    c.period = "all";
    c.key_ttl_ms = 3600000;
    return c;
  }

  std::int64_t clock_ms = 1'000'000;  // a still clock: leases never run out by time
};

struct tally {
  int ok = 0;
  int refused = 0;
};

// Reserve scripts the two engines sent to Redis.
std::uint64_t trips(const lim::redis_engine& a, const lim::redis_engine& b) {
  return a.reserve_scripts() + b.reserve_scripts();
}

// One request on engine `e`: drawn from a lease, or one EVALSHA.
net::awaitable<lim::decision> reserve_one(lim::redis_engine& e, const std::vector<check>& cs, std::string id,
                                          tally& t, bool shared = true) {
  lim::decision d;
  if (!e.try_local(cs, d)) {
    d = co_await e.reserve(cs, std::move(id));
  }
  EXPECT_EQ(d.shared, shared);
  if (d.ok) {
    ++t.ok;
  } else {
    ++t.refused;
  }
  co_return d;
}

net::awaitable<std::int64_t> int_of(rd::redis_client& c, std::string key, std::string field = {}) {
  std::vector<std::string> cmd = field.empty() ? std::vector<std::string>{"GET", key}
                                               : std::vector<std::string>{"HGET", key, field};
  auto r = co_await c.command(std::move(cmd), 2000ms);
  if (!r || r->is_nil()) {
    co_return -1;
  }
  co_return std::stoll(r->str);
}

// Two instances: each with its own client and engine.
struct instances {
  std::unique_ptr<rd::redis_client> c1, c2;
  std::unique_ptr<lim::redis_engine> e1, e2;
};

net::awaitable<instances> two(const std::string& url, const lim::redis_engine_options& o, std::int64_t& clock) {
  auto ex = co_await net::this_coro::executor;
  instances in;
  in.c1 = std::make_unique<rd::redis_client>(ex, options_from_url(url));
  in.c2 = std::make_unique<rd::redis_client>(ex, options_from_url(url));
  auto a = co_await in.c1->connect();
  auto b = co_await in.c2->connect();
  if (!a || !b) {
    throw std::runtime_error("Redis not reachable");
  }
  auto fn = [&clock] { return clock; };
  in.e1 = std::make_unique<lim::redis_engine>(ex, in.c1.get(), o, fn);
  in.e2 = std::make_unique<lim::redis_engine>(ex, in.c2.get(), o, fn);
  in.e1->start();
  in.e2->start();
  co_return in;
}

net::awaitable<void> stop_both(instances& in) {
  const auto deadline = steady::now() + 10s;
  co_await in.e1->drain(deadline);
  co_await in.e2->drain(deadline);
  in.e1->stop();
  in.e2->stop();
}

TEST_F(limits_redis_test, a_far_rpm_limit_is_drawn_from_leases_and_never_passed) {
  run([&]() -> net::awaitable<void> {
    auto in = co_await two(url, options(), clock_ms);
    const std::vector<check> cs{make(kind::requests, 1000, 1)};
    tally t;
    for (int i = 0; i < 1200; ++i) {
      auto& e = i % 2 == 0 ? *in.e1 : *in.e2;
      co_await reserve_one(e, cs, "r" + std::to_string(i), t);
      if (i == 799) {
        // Far from the limit, most requests never waited for Redis (without leases every
        // one would have); near it, and once refused, each asks.
        EXPECT_EQ(t.ok, 800);
        EXPECT_LE(trips(*in.e1, *in.e2), 800u / 8) << "round trips";
      }
    }
    EXPECT_LE(t.ok, 1000);
    EXPECT_GE(t.ok, 900);  // what leases strand near the limit is small
    // Once the engines stop, what their leases did not use is given back: the counter is
    // what was admitted.
    co_await stop_both(in);
    EXPECT_EQ(co_await int_of(*in.c1, prefix + "{api_key:k1}:requests"), t.ok);

    // New engines on the same window use what was given back, to the last request.
    auto again = co_await two(url, options(), clock_ms);
    tally t2;
    for (int i = 0; i < 400; ++i) {
      auto& e = i % 2 == 0 ? *again.e1 : *again.e2;
      co_await reserve_one(e, cs, "s" + std::to_string(i), t2);
    }
    co_await stop_both(again);
    EXPECT_EQ(t.ok + t2.ok, 1000);
    EXPECT_EQ(co_await int_of(*again.c1, prefix + "{api_key:k1}:requests"), 1000);
  });
}

TEST_F(limits_redis_test, a_budget_drawn_from_leases_is_settled_to_the_cent_and_never_passed) {
  run([&]() -> net::awaitable<void> {
    auto in = co_await two(url, options(), clock_ms);
    // Worst case 1000 nano-USD a request, actual cost 400; the budget pays 2500 of them.
    const std::vector<check> cs{make(kind::budget, 1'000'000, 1000)};
    tally t;
    auto one = [&](lim::redis_engine& e, int i, tally& tl) -> net::awaitable<void> {
      auto d = co_await reserve_one(e, cs, "r" + std::to_string(i), tl);
      if (d.ok) {
        lim::settle_op op;
        op.c = cs[0];
        op.member = "r" + std::to_string(i);
        op.reserved = 1000;
        op.actual = 400;
        op.lease = d.lease.empty() ? 0 : d.lease[0];
        e.settle(op, d.shared);
      }
    };
    for (int i = 0; i < 3000; ++i) {
      co_await one(i % 2 == 0 ? *in.e1 : *in.e2, i, t);
      if (i == 1999) {
        EXPECT_EQ(t.ok, 2000);
        EXPECT_LE(trips(*in.e1, *in.e2), 2000u / 8) << "round trips";
      }
    }
    co_await stop_both(in);
    const std::string h = prefix + "{api_key:k1}:budget:all";
    EXPECT_EQ(co_await int_of(*in.c1, h, "s"), 400LL * t.ok);  // every cost counted, once
    EXPECT_EQ(co_await int_of(*in.c1, h, "r"), 0);            // every lease given back
    EXPECT_LE(400LL * t.ok, 1'000'000);
    EXPECT_EQ(in.e1->leases() + in.e2->leases(), 0u);

    // What settles still in flight held at the end is usable again, to the last request
    // whose worst case fits: 2498 x 400 + 1000 > 1,000,000.
    auto again = co_await two(url, options(), clock_ms);
    tally t2;
    for (int i = 0; i < 150 && t2.refused < 4; ++i) {
      auto& e = i % 2 == 0 ? *again.e1 : *again.e2;
      co_await one(e, 10000 + i, t2);
      co_await e.drain(steady::now() + 10s);  // each settle reaches Redis before the next
    }
    co_await stop_both(again);
    EXPECT_EQ(t.ok + t2.ok, 2498);
    EXPECT_EQ(co_await int_of(*again.c1, h, "s"), 400LL * 2498);
    EXPECT_EQ(co_await int_of(*again.c1, h, "r"), 0);
  });
}

TEST_F(limits_redis_test, a_burst_that_finds_no_room_waits_for_one_ask) {
  run([&]() -> net::awaitable<void> {
    auto in = co_await two(url, options(), clock_ms);
    const std::vector<check> cs{make(kind::requests, 100'000, 1)};
    tally t;
    // Waves of 64 requests at once on each engine: when a lease runs out, one request of
    // the wave asks Redis for the next and the others wait for it, instead of each asking.
    auto ex = co_await net::this_coro::executor;
    for (int wave = 0; wave < 40; ++wave) {
      int done = 0;
      for (int i = 0; i < 128; ++i) {
        auto& e = i % 2 == 0 ? *in.e1 : *in.e2;
        net::co_spawn(ex, reserve_one(e, cs, "w" + std::to_string(wave) + "-" + std::to_string(i), t),
                      [&done](std::exception_ptr, lim::decision) { ++done; });
      }
      co_await eventually([&]() -> net::awaitable<bool> { co_return done == 128; }, 30000ms, 1ms);
      CO_ASSERT(done == 128, "a wave did not finish");
    }
    EXPECT_EQ(t.ok, 40 * 128);
    EXPECT_LE(trips(*in.e1, *in.e2), 40u * 128 / 16) << "round trips";
    co_await stop_both(in);
    EXPECT_EQ(co_await int_of(*in.c1, prefix + "{api_key:k1}:requests"), t.ok);
    EXPECT_EQ(in.e1->leases() + in.e2->leases(), 0u);
  });
}

TEST_F(limits_redis_test, requests_waiting_for_an_ask_to_a_stalled_redis_wait_no_longer_than_the_timeout) {
  private_server srv{private_server::kind::redis};
  run([&]() -> net::awaitable<void> {
    auto o = options();
    o.timeout = 100ms;
    auto in = co_await two(srv.url(), o, clock_ms);
    const std::vector<check> cs{make(kind::requests, 100'000, 1)};
    // Redis (a private one: the shared one serves other tests) stops answering; 20
    // requests arrive together, find no lease: one asks, the others wait for it, and all
    // are decided (locally) after about the timeout, not when Redis answers again.
    srv.signal_redis("STOP");
    tally t;
    int done = 0;
    auto ex = co_await net::this_coro::executor;
    for (int i = 0; i < 20; ++i) {
      net::co_spawn(ex, reserve_one(*in.e1, cs, "p" + std::to_string(i), t, false),
                    [&done](std::exception_ptr, lim::decision) { ++done; });
    }
    // Redis answers nothing until it is continued below: every request that finishes was
    // decided without it (the bound is only there to end a failing test).
    co_await eventually([&]() -> net::awaitable<bool> { co_return done == 20; }, 60000ms, 5ms);
    EXPECT_EQ(done, 20);
    EXPECT_EQ(t.ok, 20);  // far from the limit: the local share lets them through
    srv.signal_redis("CONT");
    // One ask, and one more by a request woken when it timed out: not one per request.
    EXPECT_LE(in.e1->reserve_scripts(), 3u);
    co_await stop_both(in);
  });
}

TEST_F(limits_redis_test, a_budget_for_ten_requests_is_never_leased) {
  run([&]() -> net::awaitable<void> {
    auto in = co_await two(url, options(), clock_ms);
    const std::vector<check> cs{make(kind::budget, 10'000, 1000)};
    tally t;
    for (int i = 0; i < 30; ++i) {
      auto& e = i % 2 == 0 ? *in.e1 : *in.e2;
      co_await reserve_one(e, cs, "r" + std::to_string(i), t);
      EXPECT_EQ(in.e1->leases() + in.e2->leases(), 0u);
    }
    EXPECT_EQ(t.ok, 10);  // exactly: near a limit every request asks Redis
    EXPECT_EQ(trips(*in.e1, *in.e2), 30u);
    co_await stop_both(in);
  });
}

TEST_F(limits_redis_test, a_request_with_a_parallel_slot_takes_no_lease) {
  run([&]() -> net::awaitable<void> {
    auto in = co_await two(url, options(), clock_ms);
    const std::vector<check> cs{make(kind::requests, 100'000, 1), make(kind::parallel, 1000, 1)};
    tally t;
    for (int i = 0; i < 20; ++i) {
      co_await reserve_one(*in.e1, cs, "r" + std::to_string(i), t);
    }
    EXPECT_EQ(t.ok, 20);
    EXPECT_EQ(in.e1->reserve_scripts(), 20u);  // slots are not leased: every such request asks Redis
    EXPECT_EQ(in.e1->leases(), 0u);  // and its rpm check holds no room it would never draw
    co_await stop_both(in);
  });
}

TEST_F(limits_redis_test, token_leases_settle_to_the_actual_tokens) {
  run([&]() -> net::awaitable<void> {
    auto in = co_await two(url, options(), clock_ms);
    // 100 tokens reserved a request, 30 used, and one request of 5000 used (more than
    // its lease could absorb): the window counts exactly the tokens used.
    const std::vector<check> cs{make(kind::tokens, 10'000'000, 100)};
    tally t;
    std::int64_t used = 0;
    for (int i = 0; i < 400; ++i) {
      auto& e = i % 2 == 0 ? *in.e1 : *in.e2;
      auto d = co_await reserve_one(e, cs, "r" + std::to_string(i), t);
      CO_ASSERT(d.ok, "refused");
      lim::settle_op op;
      op.c = cs[0];
      op.member = "r" + std::to_string(i);
      op.reserved = 100;
      op.actual = i == 200 ? 5000 : 30;
      op.lease = d.lease.empty() ? 0 : d.lease[0];
      used += op.actual;
      e.settle(op, d.shared);
    }
    co_await stop_both(in);
    EXPECT_EQ(co_await int_of(*in.c1, prefix + "{api_key:k1}:tokens"), used);
    EXPECT_LE(trips(*in.e1, *in.e2), 400u / 8);
  });
}

}  // namespace
