#include "switchyard/core/watchdog.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <memory>
#include <vector>

using namespace switchyard;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

namespace {

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

// Runs the loop for `d` (or until it has nothing left to do).
void run_for(net::io_context& io, std::chrono::milliseconds d) {
  io.restart();
  io.run_for(d);
}

}  // namespace

TEST(watchdog, fires_once_after_the_deadline_within_a_tick) {
  net::io_context io;
  auto dog = core::watchdog::make(io.get_executor(), 10ms);
  probe p;
  p.register_with(dog);
  const auto start = clock_type::now();
  p.arm_after(50ms);
  run_for(io, 200ms);
  ASSERT_EQ(p.fired, 1);
  EXPECT_GE(p.fired_at - start, 50ms);
  EXPECT_LT(p.fired_at - start, 150ms);
  EXPECT_EQ(p.deadline(), clock_type::time_point::max());  // disarmed before expired()
}

TEST(watchdog, disarmed_or_rearmed_later_does_not_fire) {
  net::io_context io;
  auto dog = core::watchdog::make(io.get_executor(), 10ms);
  probe a;
  probe b;
  a.register_with(dog);
  b.register_with(dog);
  a.arm_after(30ms);
  a.disarm();
  b.arm_after(30ms);
  net::steady_timer t(io, 20ms);
  t.async_wait([&](auto) { b.arm_after(10s); });  // pushed out before it was due
  run_for(io, 120ms);
  EXPECT_EQ(a.fired, 0);
  EXPECT_EQ(b.fired, 0);
}

TEST(watchdog, objects_destroyed_while_registered_leave_it_and_the_timer_stops) {
  net::io_context io;
  auto dog = core::watchdog::make(io.get_executor(), 5ms);
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
    run_for(io, 100ms);
    for (auto& p : many) {
      EXPECT_EQ(p->fired, 1);
    }
  }
  EXPECT_EQ(dog->size(), 0u);
  // Nothing registered: the tick timer is not re-armed, so run() returns at once.
  io.restart();
  const auto t0 = clock_type::now();
  io.run_for(1s);
  EXPECT_LT(clock_type::now() - t0, 500ms);
}

TEST(watchdog, several_due_in_one_tick_all_fire) {
  net::io_context io;
  auto dog = core::watchdog::make(io.get_executor(), 5ms);
  auto a = std::make_unique<probe>();
  auto b = std::make_unique<probe>();
  a->register_with(dog);
  b->register_with(dog);
  a->arm_after(10ms);
  b->arm_after(10ms);
  // Both due in the same tick: each fires once, and both stay registered afterwards.
  run_for(io, 50ms);
  EXPECT_EQ(a->fired, 1);
  EXPECT_EQ(b->fired, 1);
  b.reset();
  EXPECT_EQ(dog->size(), 1u);
}

TEST(watchdog, outlived_by_its_objects) {
  net::io_context io;
  probe p;
  {
    auto dog = core::watchdog::make(io.get_executor(), 5ms);
    p.register_with(dog);
    p.arm_after(1ms);
  }
  run_for(io, 30ms);  // the pending tick finds the watchdog gone
  EXPECT_EQ(p.fired, 0);
}

TEST(watchdog, ticks_only_while_something_is_armed) {
  net::io_context io;
  auto dog = core::watchdog::make(io.get_executor(), 5ms);
  probe idle;  // registered (a pooled connection), never armed
  idle.register_with(dog);
  EXPECT_FALSE(dog->ticking());
  probe busy;
  busy.register_with(dog);
  busy.arm_after(10ms);
  EXPECT_TRUE(dog->ticking());
  run_for(io, 60ms);
  EXPECT_EQ(busy.fired, 1);
  EXPECT_EQ(idle.fired, 0);
  EXPECT_FALSE(dog->ticking());  // nothing armed: the loop has no timer of ours left
  io.restart();
  const auto t0 = clock_type::now();
  io.run_for(1s);
  EXPECT_LT(clock_type::now() - t0, 500ms);
  busy.arm_after(5ms);  // arming again restarts the tick
  EXPECT_TRUE(dog->ticking());
  run_for(io, 50ms);
  EXPECT_EQ(busy.fired, 2);
}
