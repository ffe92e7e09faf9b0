// steady_clock time read from CLOCK_MONOTONIC_COARSE, for deadlines and ages that do
// not need more than a few milliseconds of precision (socket timeouts, idle pools, cache
// TTLs). It is the same clock as std::chrono::steady_clock (CLOCK_MONOTONIC on Linux),
// read without the TSC: a few ns instead of ~25 ns per call in a VM (issue 6: ~15 clock
// reads per proxied request were ~1.6% of the gateway's CPU). It only advances once per
// kernel tick, so it lags steady_clock::now() by up to coarse_resolution(), plus however
// late the tick itself runs (a busy VM: tens of µs seen in CI).
//
// Thread: any. Never blocks.
#pragma once
#include <chrono>

namespace switchyard::core {

std::chrono::steady_clock::time_point coarse_now() noexcept;

// The coarse clock's tick (clock_getres), read once.
std::chrono::nanoseconds coarse_resolution() noexcept;

// now + d, not earlier than steady_clock::now() + d but for a late kernel tick's delay
// (µs), and about one tick later at most.
inline std::chrono::steady_clock::time_point coarse_deadline(std::chrono::steady_clock::duration d) noexcept {
  return coarse_now() + coarse_resolution() + d;
}

}  // namespace switchyard::core
