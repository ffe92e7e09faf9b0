// The kernel's coarse clock is only checked for what holds on any Linux box, whatever its
// tick (1, 4 or 10 ms) and however late the tick runs: never ahead of steady_clock, never
// backwards, advancing. The arithmetic is checked on simulated ticks of 1, 4 and 10 ms
// (unit/fake_coarse_clock.hpp), on time and late: ages lag by the tick and its delay,
// deadlines do not depend on it.
#include "switchyard/core/coarse_clock.hpp"

#include "unit/fake_coarse_clock.hpp"

#include <gtest/gtest.h>

#include <optional>
#include <thread>

using namespace std::chrono_literals;
namespace core = switchyard::core;
using steady = std::chrono::steady_clock;
using switchyard::testing::fake_coarse_clock;

TEST(coarse_clock, kernel_clock_is_steady_clock_never_ahead_never_backwards) {
  const auto res = core::coarse_resolution();
  EXPECT_GT(res.count(), 0);
  EXPECT_LE(res, 10ms) << "Linux ticks at 100 Hz at the slowest";
  auto previous = core::coarse_now();
  for (int i = 0; i < 200; ++i) {
    const auto coarse = core::coarse_now();
    const auto after = steady::now();
    ASSERT_LE(coarse, after) << i;
    ASSERT_GE(coarse, previous) << i;
    previous = coarse;
  }
}

TEST(coarse_clock, kernel_clock_advances) {
  const auto first = core::coarse_now();
  const auto give_up = steady::now() + 10s;  // a safety limit, not an expectation
  while (core::coarse_now() == first && steady::now() < give_up) {
    std::this_thread::sleep_for(1ms);
  }
  EXPECT_GT(core::coarse_now(), first);
}

TEST(coarse_clock, an_installed_source_replaces_the_kernel_clock) {
  const auto kernel_res = core::coarse_resolution();
  {
    fake_coarse_clock fake(4ms);
    EXPECT_EQ(core::coarse_resolution(), 4ms);
    EXPECT_EQ(core::coarse_now(), fake.true_now());
    {
      fake_coarse_clock inner(10ms);
      EXPECT_EQ(core::coarse_resolution(), 10ms);
    }
    EXPECT_EQ(core::coarse_resolution(), 4ms) << "the previous source is restored";
  }
  EXPECT_EQ(core::coarse_resolution(), kernel_res);
}

// On time, the coarse clock is less than one tick behind; a late tick leaves it behind by
// the delay too (which no margin added to it could cover: 60 ms here).
TEST(coarse_clock, lags_by_less_than_a_tick_plus_how_late_the_tick_is_on_simulated_ticks) {
  for (auto res : {1ms, 4ms, 10ms}) {
    const std::chrono::nanoseconds tick = res;
    fake_coarse_clock fake(res);
    for (std::chrono::nanoseconds late : {0ns, tick / 2, 3 * tick, std::chrono::nanoseconds(60ms)}) {
      fake.set_late(late);
      // Every phase within three ticks, in steps that are no divisor of the tick.
      const auto step = tick / 16 + 7ns;
      for (auto walked = 0ns; walked < 3 * tick; walked += step) {
        const auto now = fake.true_now();
        const auto coarse = core::coarse_now();
        ASSERT_LE(coarse, now - late) << res.count() << " ms tick, " << late.count() << " ns late";
        ASSERT_GT(coarse, now - late - tick) << res.count() << " ms tick, " << late.count() << " ns late";
        fake.advance(step);
      }
    }
  }
}

// Deadlines never read the coarse clock: never early with the kernel's clock, nor with a
// simulated one of 4 or 10 ms ticking 60 ms late.
TEST(coarse_clock, deadlines_are_never_early_whatever_the_coarse_clock_does) {
  for (int variant = 0; variant < 3; ++variant) {
    std::optional<fake_coarse_clock> fake;
    if (variant > 0) {
      fake.emplace(variant == 1 ? 4ms : 10ms);
      fake->set_late(60ms);
    }
    for (int i = 0; i < 200; ++i) {
      for (auto d : {0ms, 1ms, 50ms}) {
        const auto before = steady::now();
        ASSERT_GE(core::deadline_after(d), before + d) << variant << ", " << i;
        ASSERT_GE(core::coarse_deadline(d), before + d) << variant << ", " << i;
      }
    }
  }
}
