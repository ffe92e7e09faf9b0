// The watchdog's deadlines are checked against an injected clock (fake_now) that the test
// moves by hand, one tick at a time (io.run_one: each tick is one handler), so no result
// depends on how punctual the kernel or the scheduler is. The real-clock test only checks
// what holds anywhere: a deadline is never early.
#include "switchyard/core/watchdog.hpp"

#include "unit/fake_coarse_clock.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

using namespace switchyard;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

namespace {

clock_type::time_point fake_time = clock_type::time_point(std::chrono::hours(1));
clock_type::time_point fake_now() noexcept { return fake_time; }

struct probe final : core::watched {
  int fired = 0;
  clock_type::time_point fired_at{};
  std::function<void()> on_fire;
  void expired() override {
    ++fired;
    fired_at = clock_type::now();
    if (on_fire) {
      on_fire();
    }
  }
};

class watchdog_test : public ::testing::Test {
 protected:
  watchdog_test() { fake_time = clock_type::time_point(std::chrono::hours(1)); }

  std::shared_ptr<core::watchdog> make_dog() { return core::watchdog::make(io.get_executor(), 1ms, &fake_now); }

  // Runs exactly one handler (a tick); false if none ran (nothing was pending) within
  // a safety limit that a 1 ms timer never needs.
  bool one_tick() {
    io.restart();
    return io.run_one_for(10s) == 1;
  }

  // Nothing left for the loop: the watchdog's timer is not waiting.
  bool loop_is_idle() {
    io.restart();
    io.poll();
    return io.stopped();
  }

  net::io_context io;
};

}  // namespace

TEST_F(watchdog_test, fires_once_at_the_first_tick_at_or_after_the_deadline) {
  auto dog = make_dog();
  probe p;
  p.register_with(dog);
  const auto start = fake_time;
  p.arm_after(50ms);  // the timer was idle: timed from now
  EXPECT_EQ(p.deadline(), start + 50ms);
  fake_time = start + 50ms - 1ns;
  ASSERT_TRUE(one_tick());
  EXPECT_EQ(p.fired, 0) << "1 ns early";
  fake_time = start + 50ms;
  ASSERT_TRUE(one_tick());
  EXPECT_EQ(p.fired, 1);
  EXPECT_FALSE(p.armed()) << "disarmed before expired()";
  EXPECT_EQ(p.deadline(), clock_type::time_point::max());
  EXPECT_TRUE(loop_is_idle()) << "nothing armed: no tick left";
  EXPECT_EQ(p.fired, 1);
}

// While the timer runs, arm_after() reads no clock: the next tick (at or after the call)
// starts the count, so d is never shortened, whatever the coarse clock or the kernel's
// tick does; at most one tick is added.
TEST_F(watchdog_test, arm_after_while_ticking_counts_from_the_next_tick) {
  auto dog = make_dog();
  probe keeper;
  probe p;
  keeper.register_with(dog);
  p.register_with(dog);
  keeper.arm_after(1h);
  ASSERT_TRUE(dog->ticking());
  p.arm_after(50ms);
  EXPECT_TRUE(p.armed());
  EXPECT_EQ(p.deadline(), core::watched::pending());
  fake_time += 7ms;  // the tick comes 7 ms after the call
  ASSERT_TRUE(one_tick());
  const auto tick_time = fake_time;
  EXPECT_EQ(p.deadline(), tick_time + 50ms);
  fake_time = tick_time + 50ms - 1ns;
  ASSERT_TRUE(one_tick());
  EXPECT_EQ(p.fired, 0);
  fake_time = tick_time + 50ms;
  ASSERT_TRUE(one_tick());
  EXPECT_EQ(p.fired, 1);
  EXPECT_EQ(keeper.fired, 0);
  EXPECT_TRUE(dog->ticking()) << "keeper is still armed";
}

TEST_F(watchdog_test, arm_after_zero_fires_at_the_next_tick) {
  auto dog = make_dog();
  probe keeper;
  probe p;
  keeper.register_with(dog);
  p.register_with(dog);
  keeper.arm_after(1h);
  p.arm_after(0ms);
  ASSERT_TRUE(one_tick());
  EXPECT_EQ(p.fired, 1);
}

TEST_F(watchdog_test, absolute_deadlines_compare_with_the_watchdogs_clock) {
  auto dog = make_dog();
  probe p;
  p.register_with(dog);
  p.arm(fake_time + 30ms);
  fake_time += 29ms;
  ASSERT_TRUE(one_tick());
  EXPECT_EQ(p.fired, 0);
  fake_time += 1ms;
  ASSERT_TRUE(one_tick());
  EXPECT_EQ(p.fired, 1);
}

TEST_F(watchdog_test, disarmed_or_rearmed_later_does_not_fire) {
  auto dog = make_dog();
  probe a;
  probe b;
  a.register_with(dog);
  b.register_with(dog);
  a.arm_after(30ms);
  a.disarm();
  b.arm_after(30ms);
  fake_time += 20ms;
  ASSERT_TRUE(one_tick());
  b.arm_after(10s);  // pushed out before it was due
  fake_time += 20ms;
  ASSERT_TRUE(one_tick());  // times b's new deadline from here
  fake_time += 1s;
  ASSERT_TRUE(one_tick());
  EXPECT_EQ(a.fired, 0);
  EXPECT_EQ(b.fired, 0);
  EXPECT_TRUE(b.armed());
}

TEST_F(watchdog_test, objects_destroyed_while_registered_leave_it_and_the_timer_stops) {
  auto dog = make_dog();
  {
    std::vector<std::unique_ptr<probe>> many;
    for (int i = 0; i < 10; ++i) {
      many.push_back(std::make_unique<probe>());
      many.back()->register_with(dog);
      many.back()->arm_after(std::chrono::milliseconds(5 * i));
    }
    EXPECT_EQ(dog->size(), 10u);
    many.erase(many.begin() + 3, many.begin() + 7);  // swap-removal keeps the rest tracked
    EXPECT_EQ(dog->size(), 6u);
    ASSERT_TRUE(one_tick());  // times the pending ones
    fake_time += 100ms;
    ASSERT_TRUE(one_tick());
    for (auto& p : many) {
      EXPECT_EQ(p->fired, 1);
    }
  }
  EXPECT_EQ(dog->size(), 0u);
  EXPECT_FALSE(dog->ticking());
  EXPECT_TRUE(loop_is_idle()) << "nothing registered: the tick timer is not re-armed";
}

TEST_F(watchdog_test, several_due_in_one_tick_all_fire) {
  auto dog = make_dog();
  auto a = std::make_unique<probe>();
  auto b = std::make_unique<probe>();
  a->register_with(dog);
  b->register_with(dog);
  a->arm_after(10ms);
  b->arm_after(10ms);
  ASSERT_TRUE(one_tick());
  fake_time += 10ms;
  // Both due in the same tick: each fires once, and both stay registered afterwards.
  ASSERT_TRUE(one_tick());
  EXPECT_EQ(a->fired, 1);
  EXPECT_EQ(b->fired, 1);
  b.reset();
  EXPECT_EQ(dog->size(), 1u);
}

TEST_F(watchdog_test, rearmed_from_expired_fires_again) {
  auto dog = make_dog();
  probe p;
  p.register_with(dog);
  p.on_fire = [&] {
    if (p.fired == 1) {
      p.arm_after(10ms);  // the timer is not running inside expired(): timed from now
    }
  };
  p.arm_after(10ms);
  fake_time += 10ms;
  ASSERT_TRUE(one_tick());
  ASSERT_EQ(p.fired, 1);
  EXPECT_EQ(p.deadline(), fake_time + 10ms);
  fake_time += 10ms;
  ASSERT_TRUE(one_tick());
  EXPECT_EQ(p.fired, 2);
  EXPECT_TRUE(loop_is_idle());
}

TEST_F(watchdog_test, outlived_by_its_objects) {
  probe p;
  {
    auto dog = make_dog();
    p.register_with(dog);
    p.arm_after(1ms);
  }
  fake_time += 1s;
  io.restart();
  io.run();  // the pending tick finds the watchdog gone; then nothing is left
  EXPECT_EQ(p.fired, 0);
}

TEST_F(watchdog_test, ticks_only_while_something_is_armed) {
  auto dog = make_dog();
  probe idle;  // registered (a pooled connection), never armed
  idle.register_with(dog);
  EXPECT_FALSE(dog->ticking());
  EXPECT_TRUE(loop_is_idle());
  probe busy;
  busy.register_with(dog);
  busy.arm_after(10ms);
  EXPECT_TRUE(dog->ticking());
  fake_time += 10ms;
  ASSERT_TRUE(one_tick());
  EXPECT_EQ(busy.fired, 1);
  EXPECT_EQ(idle.fired, 0);
  EXPECT_FALSE(dog->ticking());
  EXPECT_TRUE(loop_is_idle()) << "nothing armed: the loop has no timer of ours left";
  busy.arm_after(5ms);  // arming again restarts the tick
  EXPECT_TRUE(dog->ticking());
  fake_time += 5ms;
  ASSERT_TRUE(one_tick());
  EXPECT_EQ(busy.fired, 2);
}

// On the real clock, with the kernel's coarse clock or a simulated one far behind (a tick
// 60 ms late): a deadline is never early, whether the timer was idle or already ticking.
// Only that lower bound is checked: how late it fires depends on the scheduler.
TEST(watchdog_real_clock, never_early_whatever_the_coarse_clock_does) {
  for (int variant = 0; variant < 3; ++variant) {
    std::optional<switchyard::testing::fake_coarse_clock> coarse;
    if (variant > 0) {
      coarse.emplace(variant == 1 ? 4ms : 10ms);
      coarse->set_late(60ms);
    }
    net::io_context io;
    auto dog = core::watchdog::make(io.get_executor(), 5ms);
    probe from_idle;
    probe from_ticking;
    from_idle.register_with(dog);
    from_ticking.register_with(dog);
    const auto t0 = clock_type::now();
    from_idle.arm_after(30ms);  // starts the timer
    const auto t1 = clock_type::now();
    from_ticking.arm_after(30ms);  // the timer runs: timed by its next tick
    const auto give_up = clock_type::now() + 10s;  // a safety limit, not an expectation
    while ((from_idle.fired == 0 || from_ticking.fired == 0) && clock_type::now() < give_up) {
      io.restart();
      io.run_one_for(100ms);
    }
    ASSERT_EQ(from_idle.fired, 1) << variant;
    ASSERT_EQ(from_ticking.fired, 1) << variant;
    EXPECT_GE(from_idle.fired_at - t0, 30ms) << variant;
    EXPECT_GE(from_ticking.fired_at - t1, 30ms) << variant;
  }
}
