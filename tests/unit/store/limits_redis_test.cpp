// The shared limits engine against a REAL Redis: two engines (two gateway instances) on
// one set of counters, with leases. A limit far away is drawn from leases (few round
// trips); near it every request asks Redis; whatever the mix, the counters never pass a
// limit, and when the engines stop, what their leases held and did not use is back.
#include "switchyard/limits/engine.hpp"

#include "store_test_support.hpp"

#include <algorithm>
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

// `clock`: the engines' clock (ms), still unless the test moves it; `ticking`: a real one
// instead.
net::awaitable<instances> two(const std::string& url, const lim::redis_engine_options& o, std::int64_t& clock,
                              bool ticking = false) {
  auto ex = co_await net::this_coro::executor;
  instances in;
  in.c1 = std::make_unique<rd::redis_client>(ex, options_from_url(url));
  in.c2 = std::make_unique<rd::redis_client>(ex, options_from_url(url));
  auto a = co_await in.c1->connect();
  auto b = co_await in.c2->connect();
  if (!a || !b) {
    throw std::runtime_error("Redis not reachable");
  }
  lim::memory_engine::clock_fn fn = [&clock] { return clock; };
  if (ticking) {
    fn = [] { return std::chrono::duration_cast<std::chrono::milliseconds>(steady::now().time_since_epoch()).count(); };
  }
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
    auto in = co_await two(srv.url(), o, clock_ms, true);  // the waits are timed on the engines' clock
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

check with_id(check c, std::string id) {
  c.id = std::move(id);
  return c;
}

// One instance with a name of its own (its reservations' prefix in Redis).
struct named_instance {
  std::unique_ptr<rd::redis_client> client;
  std::unique_ptr<lim::redis_engine> engine;
};

net::awaitable<named_instance> instance_named(const std::string& url, lim::redis_engine_options o,
                                              std::int64_t& clock, std::string name) {
  auto ex = co_await net::this_coro::executor;
  named_instance in;
  in.client = std::make_unique<rd::redis_client>(ex, options_from_url(url));
  if (!co_await in.client->connect()) {
    throw std::runtime_error("Redis not reachable");
  }
  o.instance_id = std::move(name);
  in.engine = std::make_unique<lim::redis_engine>(ex, in.client.get(), o, [&clock] { return clock; });
  in.engine->start();
  co_return in;
}

net::awaitable<std::vector<std::string>> members_of(rd::redis_client& c, std::string key) {
  std::vector<std::string> cmd{"ZRANGE", std::move(key), "0", "-1"};
  auto r = co_await c.command(std::move(cmd), 2000ms);
  std::vector<std::string> out;
  if (r && r->type == rd::reply::kind::array) {
    for (const auto& e : r->elements) {
      out.push_back(e.str);
    }
  }
  co_return out;
}

// The amounts a budget's reservations ("<instance>/<id>:<amount>") hold.
std::int64_t held_by(const std::vector<std::string>& members) {
  std::int64_t sum = 0;
  for (const auto& m : members) {
    sum += std::stoll(m.substr(m.rfind(':') + 1));
  }
  return sum;
}

std::size_t count_of(const std::vector<std::string>& members, const std::string& instance) {
  return static_cast<std::size_t>(std::count_if(members.begin(), members.end(), [&](const std::string& m) {
    return m.starts_with(instance + "/");
  }));
}

// Redis' clock (ms), the one the scripts read.
net::awaitable<std::int64_t> redis_now_ms(rd::redis_client& c) {
  std::vector<std::string> cmd{"TIME"};
  auto r = co_await c.command(std::move(cmd), 2000ms);
  if (!r || r->type != rd::reply::kind::array || r->elements.size() != 2) {
    throw std::runtime_error("TIME failed");
  }
  co_return std::stoll(r->elements[0].str) * 1000 + std::stoll(r->elements[1].str) / 1000;
}

TEST_F(limits_redis_test, a_dead_instances_reservations_are_dropped_once_it_is_unheard_of) {
  run([&]() -> net::awaitable<void> {
    auto o = options();
    o.lease = 1000ms;          // the still clock: a lease is drawn until the instance stops
    o.instance_stale = 60s;    // unheard of for a minute: gone
    auto dead = co_await instance_named(url, o, clock_ms, "dead");
    auto slow = co_await instance_named(url, o, clock_ms, "slow");
    auto live = co_await instance_named(url, o, clock_ms, "live");
    // A budget near its limit (every request asks Redis), a parallel limit, and a budget
    // far from its limit (drawn from a lease).
    const std::vector<check> near{with_id(make(kind::budget, 10'000, 1000), "near")};
    const std::vector<check> par{with_id(make(kind::parallel, 2, 1), "par")};
    const std::vector<check> far{with_id(make(kind::budget, 1'000'000'000, 1000), "far")};
    tally t;
    for (int i = 0; i < 5; ++i) {
      co_await reserve_one(*dead.engine, near, "d" + std::to_string(i), t);
      co_await reserve_one(*slow.engine, near, "s" + std::to_string(i), t);
    }
    co_await reserve_one(*dead.engine, par, "dp", t);
    co_await reserve_one(*slow.engine, par, "sp", t);
    co_await reserve_one(*dead.engine, far, "df", t);
    EXPECT_EQ(t.ok, 13);
    EXPECT_EQ(dead.engine->leases(), 1u);
    // Full: the live instance is refused.
    tally before;
    co_await reserve_one(*live.engine, near, "l0", before);
    co_await reserve_one(*live.engine, par, "lp0", before);
    EXPECT_EQ(before.refused, 2);

    // `dead` is killed (nothing given back, nothing settled, no more heartbeats); `slow`
    // stops too, as a gateway whose heartbeats are late. Redis last heard of them 10
    // minutes ago (reservations live 15) and 30 s ago.
    dead.engine->stop();
    slow.engine->stop();
    auto& rc = *live.client;
    const std::int64_t now = co_await redis_now_ms(rc);
    const std::string heard_of = prefix + "instances";
    std::vector<std::string> unheard{"ZADD", heard_of, std::to_string(now - 600'000), "dead",
                                     std::to_string(now - 30'000), "slow"};
    auto z = co_await rc.command(std::move(unheard), 2000ms);
    CO_ASSERT(z && !z->is_error(), "ZADD failed");

    // The live instance's next scripts drop what `dead` held, and only that.
    tally after;
    for (int i = 0; i < 8; ++i) {
      co_await reserve_one(*live.engine, near, "l" + std::to_string(i + 1), after);
    }
    EXPECT_EQ(after.ok, 5);  // `slow`'s 5000 still held
    tally slots;
    for (int i = 0; i < 3; ++i) {
      co_await reserve_one(*live.engine, par, "lp" + std::to_string(i + 1), slots);
    }
    EXPECT_EQ(slots.ok, 1);  // `slow`'s slot still held
    tally far_after;
    co_await reserve_one(*live.engine, far, "lf", far_after);
    EXPECT_EQ(far_after.ok, 1);

    const auto near_members = co_await members_of(rc, prefix + "{api_key:near}:reserved:all");
    EXPECT_EQ(count_of(near_members, "dead"), 0u);
    EXPECT_EQ(count_of(near_members, "slow"), 5u);
    EXPECT_EQ(count_of(near_members, "live"), 5u);
    EXPECT_EQ(co_await int_of(rc, prefix + "{api_key:near}:budget:all", "r"), held_by(near_members));
    const auto par_members = co_await members_of(rc, prefix + "{api_key:par}:max_parallel_requests");
    EXPECT_EQ(count_of(par_members, "dead"), 0u);
    EXPECT_EQ(count_of(par_members, "slow"), 1u);
    EXPECT_EQ(count_of(par_members, "live"), 1u);
    // The dead instance's lease is gone too: what is reserved is the live one's alone.
    const auto far_members = co_await members_of(rc, prefix + "{api_key:far}:reserved:all");
    EXPECT_EQ(count_of(far_members, "dead"), 0u);
    EXPECT_EQ(co_await int_of(rc, prefix + "{api_key:far}:budget:all", "r"), held_by(far_members));
    EXPECT_EQ(held_by(far_members) > 0, true);
    live.engine->stop();
  });
}

// A lease is drawn for its time counted from when it was asked for, not from when the
// answer came: the ask told Redis this instance was alive, so the lease is never drawn
// after Redis could have found the instance gone (instance_stale > lease) and dropped it.
TEST_F(limits_redis_test, a_lease_is_drawn_for_its_time_from_the_ask_not_from_the_answer) {
  private_server srv{private_server::kind::redis};
  run([&]() -> net::awaitable<void> {
    auto o = options();
    o.lease = 1000ms;
    o.timeout = 3600s;  // Redis is stopped below: no ask times out
    o.heartbeat = 3600s;
    auto a = co_await instance_named(srv.url(), o, clock_ms, "a");
    const std::vector<check> warm{with_id(make(kind::requests, 100'000, 1), "warm")};
    tally t;
    co_await reserve_one(*a.engine, warm, "w", t);  // the scripts are loaded
    const std::vector<check> cs{make(kind::budget, 1'000'000'000, 1000)};
    srv.signal_redis("STOP");
    bool done = false;
    lim::decision first;
    auto ex = co_await net::this_coro::executor;
    net::co_spawn(ex, reserve_one(*a.engine, cs, "r1", t), [&](std::exception_ptr, lim::decision d) {
      first = std::move(d);
      done = true;
    });
    co_await eventually([&]() -> net::awaitable<bool> { co_return a.engine->reserve_scripts() == 2; }, 20000ms, 1ms);
    clock_ms += 1000;  // the answer comes a lease's time after the ask
    srv.signal_redis("CONT");
    co_await eventually([&]() -> net::awaitable<bool> { co_return done; }, 20000ms, 1ms);
    CO_ASSERT(done && first.ok && !first.lease.empty() && first.lease[0] != 0, "no lease granted");
    lim::decision next;
    EXPECT_FALSE(a.engine->try_local(cs, next)) << "a lease drawn past its time";
    a.engine->stop();
  });
}

// The waits of "one ask at a time" (docs/limits.md, "Leases"), step by step: Redis (a
// private one) is stopped while asks are in flight, the engine's clock is moved by the
// test and the waiters are woken when the test says. Nothing here depends on how fast
// the machine is: no command can time out (timeout 1 h) and no heartbeat runs.
lim::redis_engine_options paused_options(lim::redis_engine_options o) {
  o.timeout = 3600s;
  o.heartbeat = 3600s;
  return o;
}

// A waiter past its deadline behind an ask that was already in flight when it began to
// wait (Redis is slow): decided locally, without waiting for that ask.
TEST_F(limits_redis_test, a_waiter_past_its_deadline_behind_a_stalled_ask_decides_locally) {
  private_server srv{private_server::kind::redis};
  run([&]() -> net::awaitable<void> {
    auto a = co_await instance_named(srv.url(), paused_options(options()), clock_ms, "a");
    const std::vector<check> warm{with_id(make(kind::requests, 100'000, 1), "warm")};
    tally t;
    co_await reserve_one(*a.engine, warm, "w", t);  // the scripts are loaded
    const std::vector<check> cs{make(kind::budget, 1'000'000'000, 1000)};
    srv.signal_redis("STOP");
    auto ex = co_await net::this_coro::executor;
    bool asked = false;
    bool waited = false;
    lim::decision second;
    net::co_spawn(ex, reserve_one(*a.engine, cs, "r1", t), [&](std::exception_ptr, lim::decision) { asked = true; });
    net::co_spawn(ex, reserve_one(*a.engine, cs, "r2", t, false), [&](std::exception_ptr, lim::decision d) {
      second = std::move(d);
      waited = true;
    });
    // r1 asks Redis (for a lease too); r2 finds that ask in flight and waits for it.
    co_await eventually([&]() -> net::awaitable<bool> {
      co_return a.engine->reserve_scripts() == 2 && a.engine->waiting() == 1;
    }, 20000ms, 1ms);
    EXPECT_EQ(a.engine->waiting(), 1u);
    a.engine->wake_waiters();  // before its deadline: r2 waits on
    co_await eventually([&]() -> net::awaitable<bool> { co_return a.engine->waiting() == 1; }, 20000ms, 1ms);
    EXPECT_FALSE(waited);
    clock_ms += 3600 * 1000;  // r2's deadline
    a.engine->wake_waiters();
    co_await eventually([&]() -> net::awaitable<bool> { co_return waited; }, 20000ms, 1ms);
    EXPECT_TRUE(waited) << "the waiter did not decide while the ask it waited for stalled";
    EXPECT_TRUE(second.ok);
    EXPECT_FALSE(asked);  // r1's ask is still in flight
    EXPECT_EQ(a.engine->reserve_scripts(), 2u);  // r2 sent nothing
    srv.signal_redis("CONT");
    co_await eventually([&]() -> net::awaitable<bool> { co_return asked; }, 20000ms, 1ms);
    EXPECT_TRUE(asked);
    a.engine->stop();
  });
}

// A waiter past its deadline whose asks came back in time (the one it found in flight
// did, and another request asks now): Redis is answering, so it asks Redis itself, and a
// budget another instance has nearly spent is not passed on this instance's share.
TEST_F(limits_redis_test, a_waiter_past_its_deadline_after_asks_that_came_back_asks_redis_itself) {
  private_server srv{private_server::kind::redis};
  run([&]() -> net::awaitable<void> {
    const auto o = paused_options(options());
    auto other = co_await instance_named(srv.url(), o, clock_ms, "other");
    auto a = co_await instance_named(srv.url(), o, clock_ms, "a");
    // 10 requests' worth; the other instance takes 9 (near the limit: no leases).
    const std::vector<check> cs{make(kind::budget, 10'000, 1000)};
    tally t;
    for (int i = 0; i < 9; ++i) {
      co_await reserve_one(*other.engine, cs, "o" + std::to_string(i), t);
    }
    EXPECT_EQ(t.ok, 9);
    const std::vector<check> warm{with_id(make(kind::requests, 100'000, 1), "warm")};
    co_await reserve_one(*a.engine, warm, "w", t);  // the scripts are loaded
    srv.signal_redis("STOP");
    auto ex = co_await net::this_coro::executor;
    std::vector<lim::decision> ds(3);
    int done = 0;
    for (int i = 0; i < 3; ++i) {
      net::co_spawn(ex, reserve_one(*a.engine, cs, "r" + std::to_string(i), t),
                    [&ds, &done, i](std::exception_ptr, lim::decision d) {
                      ds[static_cast<std::size_t>(i)] = std::move(d);
                      ++done;
                    });
    }
    // r0 asks; r1 and r2 wait for it.
    co_await eventually([&]() -> net::awaitable<bool> {
      co_return a.engine->reserve_scripts() == 2 && a.engine->waiting() == 2;
    }, 20000ms, 1ms);
    EXPECT_EQ(a.engine->waiting(), 2u);
    // Every wait's deadline passes; then Redis answers r0 (no lease: too little is left).
    // r1, woken, finds nothing in flight and asks; r2 finds r1's ask, sent after it began
    // to wait: not a stalled one. It asks Redis itself instead of deciding on the share.
    clock_ms += 3600 * 1000;
    srv.signal_redis("CONT");
    co_await eventually([&]() -> net::awaitable<bool> { co_return done == 3; }, 20000ms, 1ms);
    CO_ASSERT(done == 3, "not every request was decided");
    EXPECT_TRUE(ds[0].ok);
    for (std::size_t i = 1; i < 3; ++i) {
      EXPECT_FALSE(ds[i].ok) << i;
      EXPECT_TRUE(ds[i].shared) << i << ": decided locally";
    }
    EXPECT_EQ(t.ok, 11);  // 9 + r0 + warm-up: the budget's 10, not one more
    EXPECT_EQ(a.engine->reserve_scripts(), 4u);
    EXPECT_EQ(co_await int_of(*a.client, prefix + "{api_key:k1}:budget:all", "r"), 10'000);
    other.engine->stop();
    a.engine->stop();
  });
}

}  // namespace
