// steady_clock time read from CLOCK_MONOTONIC_COARSE, for ages that do not need more
// than a few milliseconds of precision (idle pools, cache TTLs). It is the same clock as
// std::chrono::steady_clock (CLOCK_MONOTONIC on Linux), read without the TSC: a few ns
// instead of ~25 ns (up to ~160 ns in some VMs) per call; ~15 clock reads per proxied
// request were ~1.6% of the gateway's CPU in a profile.
//
// It only advances when the kernel updates its timekeeping (a tick: 1, 4 or 10 ms, see
// coarse_resolution()), so it lags steady_clock::now(). With a tickless kernel the lag
// reaches about two ticks, and when the tick itself runs late (a busy VM, a descheduled
// vCPU) the lag grows by that delay: measured on a 2-core VM with a 4 ms tick, 5 to
// 7.5 ms with the reading thread sleeping between reads, 64 ms with both CPUs busy. No
// margin added to it bounds that everywhere, so deadlines, which must never be early,
// are not computed from this clock: see deadline_after() below and watched::arm_after
// (core/watchdog.hpp, no clock read at all).
//
// Tests that check time arithmetic install their own source (use_coarse_clock).
//
// Thread: any. Never blocks.
#pragma once
#include <chrono>

namespace switchyard::core {

std::chrono::steady_clock::time_point coarse_now() noexcept;

// The coarse clock's tick (clock_getres, read once at the first call).
std::chrono::nanoseconds coarse_resolution() noexcept;

// d from now, never early, whatever the coarse clock does: one steady_clock read.
inline std::chrono::steady_clock::time_point deadline_after(std::chrono::steady_clock::duration d) noexcept {
  return std::chrono::steady_clock::now() + d;
}

// The former name of deadline_after() (it was computed from the coarse clock plus one
// tick, which a late tick made early); the same now.
inline std::chrono::steady_clock::time_point coarse_deadline(std::chrono::steady_clock::duration d) noexcept {
  return deadline_after(d);
}

// What coarse_now() and coarse_resolution() read instead of the kernel's clock while it
// is installed: a test's simulated tick (a 4 ms or 10 ms resolution, a late tick).
class coarse_clock_source {
 public:
  virtual ~coarse_clock_source() = default;
  virtual std::chrono::steady_clock::time_point now() const noexcept = 0;
  virtual std::chrono::nanoseconds resolution() const noexcept = 0;
};

// Installs `source` (nullptr: the kernel's clock again) and returns the previous one.
// For tests: install before, and remove after, anything that reads the clock runs; the
// caller keeps `source` alive meanwhile.
const coarse_clock_source* use_coarse_clock(const coarse_clock_source* source) noexcept;

}  // namespace switchyard::core
