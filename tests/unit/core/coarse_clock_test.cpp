#include "switchyard/core/coarse_clock.hpp"

#include <gtest/gtest.h>

#include <thread>

using namespace std::chrono_literals;
namespace core = switchyard::core;
using steady = std::chrono::steady_clock;

TEST(coarse_clock, is_steady_clock_at_most_one_tick_behind) {
  auto res = core::coarse_resolution();
  EXPECT_GT(res.count(), 0);
  EXPECT_LE(res, 10ms);
  for (int i = 0; i < 200; ++i) {
    auto before = steady::now();
    auto coarse = core::coarse_now();
    auto after = steady::now();
    ASSERT_LE(coarse, after) << i;
    ASSERT_GE(coarse, before - res - 1ms) << i;
  }
}

// "Never early" up to the delay of a late kernel tick: the coarse clock is updated by the
// tick, and a tick that runs late (a vCPU descheduled; seen here under the test suite's load: 66 µs) leaves it
// behind by more than the resolution that coarse_deadline() adds. So a quarter of a tick
// of slack (1 ms at HZ=250). The samples are spread over several ticks, so without the
// added tick this fails (most samples are further behind than that).
TEST(coarse_clock, advances_and_deadlines_are_not_early) {
  auto a = core::coarse_now();
  std::this_thread::sleep_for(30ms);
  auto b = core::coarse_now();
  EXPECT_GE(b - a, 20ms);
  const auto slack = core::coarse_resolution() / 4;
  for (int i = 0; i < 200; ++i) {
    auto precise = steady::now() + 50ms;
    auto deadline = core::coarse_deadline(50ms);
    ASSERT_GE(deadline, precise - slack) << i;
    ASSERT_LE(deadline, precise + core::coarse_resolution() + 1ms) << i;
    std::this_thread::sleep_for(100us);
  }
}
