#include "switchyard/core/coarse_clock.hpp"

#include <time.h>

#include <atomic>

namespace switchyard::core {

namespace {

std::atomic<const coarse_clock_source*> installed{nullptr};

std::chrono::nanoseconds read_resolution() noexcept {
  timespec ts{};
  if (clock_getres(CLOCK_MONOTONIC_COARSE, &ts) != 0) {
    return std::chrono::milliseconds(10);  // the coarsest kernel tick (HZ=100)
  }
  return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
}

}  // namespace

std::chrono::steady_clock::time_point coarse_now() noexcept {
  if (const auto* s = installed.load(std::memory_order_relaxed); s != nullptr) [[unlikely]] {
    return s->now();
  }
  timespec ts{};
  if (clock_gettime(CLOCK_MONOTONIC_COARSE, &ts) != 0) {
    return std::chrono::steady_clock::now();
  }
  auto since = std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
  return std::chrono::steady_clock::time_point(std::chrono::duration_cast<std::chrono::steady_clock::duration>(since));
}

std::chrono::nanoseconds coarse_resolution() noexcept {
  if (const auto* s = installed.load(std::memory_order_relaxed); s != nullptr) [[unlikely]] {
    return s->resolution();
  }
  static const std::chrono::nanoseconds res = read_resolution();
  return res;
}

const coarse_clock_source* use_coarse_clock(const coarse_clock_source* source) noexcept {
  return installed.exchange(source);
}

}  // namespace switchyard::core
