// Seconds given as a double (a JSON or YAML number, an environment variable: any value,
// 1e308 and YAML's .inf among them) as a duration, saturated. A plain cast of a value past
// int64's range is undefined behaviour, and on x86 gives INT64_MIN: a TTL that stores
// nothing, a timeout already expired, a deadline in the past.
#pragma once
#include <chrono>
#include <cmath>
#include <cstdint>

namespace switchyard::core {

// The longest duration kept: a hundred years. Added to a clock's now() in nanoseconds it
// stays far inside int64's range.
inline constexpr double max_seconds = 100.0 * 365 * 24 * 3600;

// `seconds` held to [0, max_seconds]; NaN gives 0.
inline double clamped_seconds(double seconds) {
  return seconds > 0 ? (seconds < max_seconds ? seconds : max_seconds) : 0.0;  // NaN > 0 is false
}

// Whole milliseconds of `seconds`, truncated, after clamped_seconds().
inline std::int64_t saturated_ms(double seconds) { return static_cast<std::int64_t>(clamped_seconds(seconds) * 1000.0); }

// The same, rounded to the nearest millisecond.
inline std::int64_t saturated_ms_rounded(double seconds) {
  return static_cast<std::int64_t>(std::llround(clamped_seconds(seconds) * 1000.0));
}

inline std::chrono::milliseconds saturated_millis(double seconds) {
  return std::chrono::milliseconds(saturated_ms(seconds));
}

// Whole seconds, truncated, after clamped_seconds().
inline std::chrono::seconds saturated_seconds(double seconds) {
  return std::chrono::seconds(static_cast<std::int64_t>(clamped_seconds(seconds)));
}

}  // namespace switchyard::core
