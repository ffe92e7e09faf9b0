// The in-memory engine (one instance's enforcement) with an injected clock: budgets
// reserved then settled, fixed windows anchored at first use, parallel slots, all-or-
// nothing reservations, the outage share; budget periods derived from budget_reset_at.
#include "switchyard/limits/checks.hpp"
#include "switchyard/limits/engine.hpp"

#include <gtest/gtest.h>

namespace sy = switchyard;
using sy::limits::check;
using sy::limits::kind;
using sy::limits::memory_engine;
using namespace std::chrono_literals;

namespace {

struct fake_clock {
  std::int64_t ms = 1'000'000;
  memory_engine::clock_fn fn() {
    return [this] { return ms; };
  }
};

check make(kind k, std::string id, std::int64_t limit, std::int64_t amount) {
  check c;
  c.k = k;
  c.scope = "api_key";
  c.id = std::move(id);
  c.limit = limit;
  c.amount = amount;
  c.period = "all";
  return c;
}

sy::limits::settle_op op(const check& c, std::int64_t reserved, std::int64_t actual) {
  sy::limits::settle_op o;
  o.c = c;
  o.member = "r";
  o.reserved = reserved;
  o.actual = actual;
  return o;
}

}  // namespace

TEST(memory_engine, budget_for_exactly_ten_requests) {
  fake_clock clk;
  memory_engine e(clk.fn(), 60s);
  auto c = make(kind::budget, "k", 10'000, 1'000);  // worst case = actual = 1000 nano-USD
  int ok = 0;
  for (int i = 0; i < 25; ++i) {
    auto d = e.reserve({c});
    if (d.ok) {
      ++ok;
    } else {
      EXPECT_EQ(d.failed, 0);
    }
  }
  EXPECT_EQ(ok, 10);  // all reserved at once: the 11th does not fit before any settles
  for (int i = 0; i < ok; ++i) {
    e.settle(op(c, 1'000, 1'000));
  }
  auto d = e.reserve({c});
  EXPECT_FALSE(d.ok);
  EXPECT_EQ(d.used, 10'000);
}

TEST(memory_engine, settle_releases_what_was_not_spent) {
  fake_clock clk;
  memory_engine e(clk.fn(), 60s);
  auto c = make(kind::budget, "k", 10'000, 4'000);
  ASSERT_TRUE(e.reserve({c}).ok);
  ASSERT_TRUE(e.reserve({c}).ok);
  EXPECT_FALSE(e.reserve({c}).ok);  // 8000 reserved, 4000 more does not fit
  e.settle(op(c, 4'000, 500));      // the first cost 500
  auto d = e.reserve({c});          // 500 + 4000 + 4000 <= 10000
  ASSERT_TRUE(d.ok);
  EXPECT_EQ(d.remaining[0], 10'000 - 500 - 8'000);
}

TEST(memory_engine, seed_is_the_stored_spend_and_full_budget_refuses_free_requests) {
  fake_clock clk;
  memory_engine e(clk.fn(), 60s);
  auto c = make(kind::budget, "k", 10'000, 0);
  c.seed = 10'000;  // Postgres says it is all spent
  auto d = e.reserve({c});
  EXPECT_FALSE(d.ok);
  EXPECT_EQ(d.used, 10'000);
}

TEST(memory_engine, fixed_window_anchored_at_first_use) {
  fake_clock clk;
  memory_engine e(clk.fn(), 1000ms);
  auto c = make(kind::requests, "k", 5, 1);
  clk.ms += 300;  // the window starts at the first request, not on a clock boundary
  for (int i = 0; i < 5; ++i) {
    auto d = e.reserve({c});
    ASSERT_TRUE(d.ok);
    EXPECT_EQ(d.remaining[0], 4 - i);
    clk.ms += 100;
  }
  auto d = e.reserve({c});
  ASSERT_FALSE(d.ok);
  EXPECT_EQ(d.reset_ms, 500);  // first use + 1000 - now
  clk.ms += 499;
  EXPECT_FALSE(e.reserve({c}).ok);
  clk.ms += 1;
  d = e.reserve({c});
  ASSERT_TRUE(d.ok);
  EXPECT_EQ(d.remaining[0], 4);
  EXPECT_EQ(d.reset_in_ms[0], 1000);
}

TEST(memory_engine, tokens_are_settled_to_the_actual_count) {
  fake_clock clk;
  memory_engine e(clk.fn(), 60s);
  auto c = make(kind::tokens, "k", 1000, 600);
  ASSERT_TRUE(e.reserve({c}).ok);
  ASSERT_TRUE(e.reserve({c}).ok);   // 600 of 1000: below the limit, the estimate may pass it
  EXPECT_FALSE(e.reserve({c}).ok);  // 1200: the window is at its limit
  e.settle(op(c, 600, 100));        // used 100 of the 600 reserved
  e.settle(op(c, 600, 100));
  auto d = e.reserve({c});
  ASSERT_TRUE(d.ok);
  EXPECT_EQ(d.remaining[0], 1000 - 200 - 600);
}

// A tpm limit smaller than a request's estimate (prompt + max_tokens, or 1024 without
// one) does not refuse every request: a window below its limit admits the request, as
// LiteLLM's does, and what the answer used is what counts.
TEST(memory_engine, a_token_estimate_over_the_limit_passes_while_the_window_is_below_it) {
  fake_clock clk;
  memory_engine e(clk.fn(), 60s);
  auto c = make(kind::tokens, "k", 500, 5 + 1024);
  ASSERT_TRUE(e.reserve({c}).ok);
  EXPECT_FALSE(e.reserve({c}).ok);  // in flight, its estimate holds the window
  e.settle(op(c, 5 + 1024, 15));
  ASSERT_TRUE(e.reserve({c}).ok);  // 15 used
  e.settle(op(c, 5 + 1024, 600));
  auto d = e.reserve({c});         // 615 used: at its limit
  ASSERT_FALSE(d.ok);
  EXPECT_EQ(d.used, 615);
  clk.ms += 60'000;
  EXPECT_TRUE(e.reserve({c}).ok);  // a new window
  c.limit = 0;
  c.id = "zero";
  EXPECT_FALSE(e.reserve({c}).ok);  // tpm_limit 0 refuses everything
}

TEST(memory_engine, parallel_slots_are_held_until_settled) {
  fake_clock clk;
  memory_engine e(clk.fn(), 60s);
  auto c = make(kind::parallel, "k", 2, 1);
  ASSERT_TRUE(e.reserve({c}).ok);
  ASSERT_TRUE(e.reserve({c}).ok);
  EXPECT_FALSE(e.reserve({c}).ok);
  clk.ms += 3'600'000;  // time does not free a slot here: only its request's end does
  EXPECT_FALSE(e.reserve({c}).ok);
  e.settle(op(c, 1, 0));
  EXPECT_TRUE(e.reserve({c}).ok);
}

TEST(memory_engine, all_or_nothing_across_entities) {
  fake_clock clk;
  memory_engine e(clk.fn(), 60s);
  auto key = make(kind::requests, "key", 100, 1);
  auto team = make(kind::requests, "team", 100, 1);
  team.scope = "team";
  auto team_budget = make(kind::budget, "team", 2'000, 1'000);
  team_budget.scope = "team";
  ASSERT_TRUE(e.reserve({key, team, team_budget}).ok);
  ASSERT_TRUE(e.reserve({key, team, team_budget}).ok);
  auto d = e.reserve({key, team, team_budget});
  ASSERT_FALSE(d.ok);
  EXPECT_EQ(d.failed, 2);
  // The refused request counted nowhere: the key's window still says 2.
  auto k = e.reserve({key});
  ASSERT_TRUE(k.ok);
  EXPECT_EQ(k.remaining[0], 100 - 3);
}

TEST(memory_engine, outage_share_divides_limits) {
  fake_clock clk;
  memory_engine e(clk.fn(), 60s);
  auto c = make(kind::requests, "k", 5, 1);
  int ok = 0;
  for (int i = 0; i < 10; ++i) {
    ok += e.reserve({c}, 2).ok ? 1 : 0;
  }
  EXPECT_EQ(ok, 3);  // ceil(5 / 2) on this instance
  auto b = make(kind::budget, "k", 10'000, 1'000);
  b.seed = 4'000;  // 6000 left, 3000 of it here
  ok = 0;
  for (int i = 0; i < 10; ++i) {
    ok += e.reserve({b}, 2).ok ? 1 : 0;
  }
  EXPECT_EQ(ok, 3);
}

TEST(memory_engine, a_new_budget_period_is_a_new_counter) {
  fake_clock clk;
  memory_engine e(clk.fn(), 60s);
  auto c = make(kind::budget, "k", 2'000, 1'000);
  c.period = "100";
  ASSERT_TRUE(e.reserve({c}).ok);
  ASSERT_TRUE(e.reserve({c}).ok);
  EXPECT_FALSE(e.reserve({c}).ok);
  c.period = "200";
  c.seed = 0;
  EXPECT_TRUE(e.reserve({c}).ok);
}

TEST(memory_engine, an_idle_budget_counter_is_seeded_again) {
  fake_clock clk;
  memory_engine e(clk.fn(), 1000ms);
  auto c = make(kind::budget, "k", 10'000, 1'000);
  c.key_ttl_ms = 3'600'000;
  ASSERT_TRUE(e.reserve({c}).ok);
  e.settle(op(c, 1'000, 1'000));
  c.seed = 9'500;  // what Postgres says now (another writer, an admin)
  auto d = e.reserve({c});
  ASSERT_TRUE(d.ok);
  EXPECT_EQ(d.remaining[0], 10'000 - 1'000 - 1'000);  // the counter is kept while in use
  e.settle(op(c, 1'000, 0));
  clk.ms += 3'600'001;
  EXPECT_FALSE(e.reserve({c}).ok);  // idle past its TTL: seeded again from 9500
}

TEST(durations, litellm_strings) {
  using sy::limits::parse_duration;
  EXPECT_EQ(parse_duration("30s")->count, 30);
  EXPECT_EQ(parse_duration("30s")->unit, 's');
  EXPECT_EQ(parse_duration("30m")->unit, 'm');
  EXPECT_EQ(parse_duration("24h")->unit, 'h');
  EXPECT_EQ(parse_duration("7d")->unit, 'd');
  EXPECT_EQ(parse_duration("1mo")->unit, 'M');
  EXPECT_EQ(parse_duration("45")->unit, 's');
  EXPECT_FALSE(parse_duration(""));
  EXPECT_FALSE(parse_duration("abc"));
  EXPECT_FALSE(parse_duration("0s"));
  EXPECT_EQ(parse_duration("3w")->count, 21);  // weeks, as the management API and reset job take them
  EXPECT_EQ(parse_duration("3w")->unit, 'd');
  EXPECT_FALSE(parse_duration("9999999w"));
  // A row's period past 100 years would overflow the clock: no schedule instead.
  EXPECT_FALSE(parse_duration("9223372036854775807d"));
  EXPECT_FALSE(parse_duration("99999d"));
  EXPECT_FALSE(parse_duration("1201mo"));
  EXPECT_EQ(parse_duration("36600d")->count, 36600);
  using namespace std::chrono;
  sys_days jan31 = 2026y / January / 31;
  auto feb = sy::limits::add_duration(jan31 + 5h, *parse_duration("1mo"));
  EXPECT_EQ(feb, sys_days{2026y / February / 28} + 5h);
}

// A reset is visible at once: past budget_reset_at the period (and so the counter) is a
// new one that starts at 0, whatever the cached spend says, on every instance alike.
TEST(budget_period, reset_is_visible_the_moment_budget_reset_at_passes) {
  using namespace std::chrono;
  sy::auth::entity_limits e;
  e.max_budget = 1.0;
  e.spend = 0.9;
  e.budget_duration = "2s";
  const system_clock::time_point reset = sys_days{2026y / December / 5} + 10s;
  e.budget_reset_at = reset;

  auto before = sy::limits::period_of(e, reset - 1ms);
  EXPECT_FALSE(before.fresh);
  EXPECT_EQ(before.id, std::to_string(duration_cast<seconds>(reset.time_since_epoch()).count()));

  auto at = sy::limits::period_of(e, reset);
  EXPECT_TRUE(at.fresh);  // the cached spend belongs to the previous period
  EXPECT_EQ(at.id, std::to_string(duration_cast<seconds>((reset + 2s).time_since_epoch()).count()));
  EXPECT_NE(at.id, before.id);

  auto later = sy::limits::period_of(e, reset + 7s);  // three periods on
  EXPECT_EQ(later.id, std::to_string(duration_cast<seconds>((reset + 8s).time_since_epoch()).count()));

  // Through the engine: the old counter is full, the new period's starts from 0.
  fake_clock clk;
  memory_engine eng(clk.fn(), 60s);
  check c = make(kind::budget, "k", sy::limits::to_nano(1.0), sy::limits::to_nano(0.2));
  c.period = before.id;
  c.seed = sy::limits::to_nano(e.spend);
  EXPECT_FALSE(eng.reserve({c}).ok);
  c.period = at.id;
  c.seed = at.fresh ? 0 : sy::limits::to_nano(e.spend);
  EXPECT_TRUE(eng.reserve({c}).ok);

  // No schedule: one period.
  sy::auth::entity_limits plain;
  plain.max_budget = 1.0;
  EXPECT_EQ(sy::limits::period_of(plain, reset).id, "all");
}

// budget_duration "1w" (accepted by the management API, reset by the reset job) is a
// schedule like "7d": the counter changes period when budget_reset_at passes, instead of
// one counter for ever that keeps a spent budget refused after its reset.
TEST(budget_period, a_weekly_budget_starts_a_new_counter_at_its_reset) {
  using namespace std::chrono;
  sy::auth::entity_limits e;
  e.max_budget = 1.0;
  e.spend = 1.0;  // spent
  e.budget_duration = "1w";
  const system_clock::time_point reset = sys_days{2026y / December / 7};  // a Monday
  e.budget_reset_at = reset;
  auto before = sy::limits::period_of(e, reset - 1s);
  EXPECT_EQ(before.id, std::to_string(duration_cast<seconds>(reset.time_since_epoch()).count()));
  auto after = sy::limits::period_of(e, reset + 1s);
  EXPECT_TRUE(after.fresh);
  EXPECT_EQ(after.id, std::to_string(duration_cast<seconds>((reset + days{7}).time_since_epoch()).count()));

  fake_clock clk;
  memory_engine eng(clk.fn(), 60s);
  check c = make(kind::budget, "k", sy::limits::to_nano(1.0), sy::limits::to_nano(0.2));
  c.period = before.id;
  c.seed = sy::limits::to_nano(e.spend);
  EXPECT_FALSE(eng.reserve({c}).ok);
  c.period = after.id;
  c.seed = 0;
  EXPECT_TRUE(eng.reserve({c}).ok);
}

// An admin who sets the spend names new counters: the one seeded before is left behind,
// and the new one starts from the spend that was set (in both kinds of period).
TEST(budget_period, a_spend_set_by_an_admin_starts_a_new_counter) {
  using namespace std::chrono;
  sy::auth::entity_limits e;
  e.max_budget = 1.0;
  e.spend = 0.9;
  const system_clock::time_point now = sys_days{2026y / December / 5} + 10s;
  EXPECT_EQ(sy::limits::period_of(e, now).id, "all");
  e.spend_set_at = now - 1s;
  const auto ms = std::to_string(duration_cast<milliseconds>((now - 1s).time_since_epoch()).count());
  EXPECT_EQ(sy::limits::period_of(e, now).id, "all@" + ms);
  e.budget_duration = "30d";
  e.budget_reset_at = now + 24h;
  EXPECT_EQ(sy::limits::period_of(e, now).id,
            std::to_string(duration_cast<seconds>((now + 24h).time_since_epoch()).count()) + "@" + ms);

  // Through the engine: the old counter is full; the admin sets 0; the new one has room.
  fake_clock clk;
  memory_engine eng(clk.fn(), 60s);
  check c = make(kind::budget, "k", sy::limits::to_nano(1.0), sy::limits::to_nano(0.2));
  c.period = "all";
  c.seed = sy::limits::to_nano(0.9);
  EXPECT_FALSE(eng.reserve({c}).ok);
  c.period = "all@" + ms;
  c.seed = 0;
  EXPECT_TRUE(eng.reserve({c}).ok);
}

TEST(units, nano_usd_never_rounds_a_cost_down_to_free) {
  EXPECT_EQ(sy::limits::to_nano(0), 0);
  EXPECT_EQ(sy::limits::to_nano(1e-5), 10'000);
  EXPECT_EQ(sy::limits::to_nano(1e-12), 1);
  EXPECT_EQ(sy::limits::to_nano(0.1 + 0.2), 300'000'000);  // float noise is not a nano-dollar
}

// What Redis admitted is recorded locally, so a check decided locally (Redis slow or gone)
// starts from it and never lets more through than the limit.
TEST(memory_engine, recorded_reservations_count_for_later_local_checks) {
  fake_clock clk;
  memory_engine e(clk.fn(), 60s);
  auto rpm = make(kind::requests, "k", 2, 1);
  auto slots = make(kind::parallel, "k", 1, 1);
  e.record({rpm, slots});
  e.record({rpm});
  auto d = e.reserve({rpm});
  ASSERT_FALSE(d.ok);
  EXPECT_EQ(d.used, 2);
  EXPECT_FALSE(e.reserve({slots}).ok);
  e.settle(op(slots, 1, 0));
  EXPECT_TRUE(e.reserve({slots}).ok);
  clk.ms += 60'000;  // the window the recorded requests were in has ended
  EXPECT_TRUE(e.reserve({rpm}).ok);
}

// A check may carry its counter's hash (the limits stage keeps it while a reused check
// names the same counter, and clears it when kind, scope, id or period changes): the
// hash tells those four apart, and key_of() is the kept hash, or the computed one.
TEST(counter_keys, a_kept_key_is_used_and_every_name_part_changes_the_hash) {
  const check c = make(kind::budget, "hash-of-a-key", 100, 1);
  EXPECT_EQ(sy::limits::key_of(c), sy::limits::counter_key(c));
  check kept = c;
  kept.key = 12345;
  EXPECT_EQ(sy::limits::key_of(kept), 12345u);
  const auto base = sy::limits::counter_key(c);
  check other = c;
  other.k = kind::requests;
  EXPECT_NE(sy::limits::counter_key(other), base);
  other = c;
  other.scope = "team";
  EXPECT_NE(sy::limits::counter_key(other), base);
  other = c;
  other.id = "hash-of-a-kez";
  EXPECT_NE(sy::limits::counter_key(other), base);
  other = c;
  other.period = "all@1";
  EXPECT_NE(sy::limits::counter_key(other), base);
  other = c;
  other.limit = 7;  // not part of the name
  other.amount = 9;
  other.label = "Key=x";
  EXPECT_EQ(sy::limits::counter_key(other), base);
}
