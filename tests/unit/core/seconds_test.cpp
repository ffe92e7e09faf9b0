// core::saturated_*: any double of seconds to a duration, never past int64's range.
#include "switchyard/core/seconds.hpp"

#include <gtest/gtest.h>

#include <limits>

namespace {

using namespace switchyard::core;
constexpr std::int64_t century_ms = 100LL * 365 * 24 * 3600 * 1000;

TEST(saturated_ms, ordinary_values_are_converted_as_before) {
  EXPECT_EQ(saturated_ms(600), 600'000);
  EXPECT_EQ(saturated_ms(0.0015), 1);          // truncated
  EXPECT_EQ(saturated_ms_rounded(0.0015), 2);  // rounded
  EXPECT_EQ(saturated_millis(2.5).count(), 2500);
  EXPECT_EQ(saturated_seconds(59.9).count(), 59);
}

TEST(saturated_ms, beyond_any_horizon_is_a_hundred_years) {
  const double inf = std::numeric_limits<double>::infinity();
  for (double s : {1e308, inf, max_seconds, max_seconds * 2}) {
    EXPECT_EQ(saturated_ms(s), century_ms) << s;
    EXPECT_EQ(saturated_ms_rounded(s), century_ms) << s;
    EXPECT_EQ(saturated_seconds(s).count(), century_ms / 1000) << s;
  }
  // Added to a clock's now() in nanoseconds, it stays in range.
  const auto later = std::chrono::system_clock::now() + saturated_millis(1e308);
  EXPECT_GT(later, std::chrono::system_clock::now());
}

TEST(saturated_ms, nan_zero_and_negative_are_zero) {
  for (double s : {std::numeric_limits<double>::quiet_NaN(), 0.0, -0.0, -5.0, -1e308,
                   -std::numeric_limits<double>::infinity()}) {
    EXPECT_EQ(saturated_ms(s), 0) << s;
    EXPECT_EQ(saturated_ms_rounded(s), 0) << s;
    EXPECT_EQ(saturated_seconds(s).count(), 0) << s;
  }
}

}  // namespace
