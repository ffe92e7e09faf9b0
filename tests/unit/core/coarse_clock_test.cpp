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

TEST(coarse_clock, advances_and_deadlines_are_never_early) {
  auto a = core::coarse_now();
  std::this_thread::sleep_for(30ms);
  auto b = core::coarse_now();
  EXPECT_GE(b - a, 20ms);
  for (int i = 0; i < 200; ++i) {
    auto precise = steady::now() + 50ms;
    auto deadline = core::coarse_deadline(50ms);
    ASSERT_GE(deadline, precise) << i;
    ASSERT_LE(deadline, precise + core::coarse_resolution() + 1ms) << i;
  }
}
