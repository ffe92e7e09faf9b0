// A simulated CLOCK_MONOTONIC_COARSE (core::use_coarse_clock) for tests that check time
// arithmetic: the test moves the true time (what steady_clock::now() would read) by
// hand; the coarse reading is the last kernel tick at or before it, minus `late` when the
// tick runs late. Installed for the object's lifetime.
#pragma once
#include "switchyard/core/coarse_clock.hpp"

#include <chrono>

namespace switchyard::testing {

class fake_coarse_clock final : public core::coarse_clock_source {
 public:
  using time_point = std::chrono::steady_clock::time_point;

  // Starts at `start` (on a tick by default: an hour after the epoch).
  explicit fake_coarse_clock(std::chrono::nanoseconds resolution, time_point start = time_point(std::chrono::hours(1)))
      : resolution_(resolution), true_now_(start), previous_(core::use_coarse_clock(this)) {}
  ~fake_coarse_clock() override { core::use_coarse_clock(previous_); }
  fake_coarse_clock(const fake_coarse_clock&) = delete;
  fake_coarse_clock& operator=(const fake_coarse_clock&) = delete;

  time_point now() const noexcept override {
    const auto since = std::chrono::duration_cast<std::chrono::nanoseconds>(true_now_.time_since_epoch());
    const auto last_tick = since - since % resolution_;
    return time_point(std::chrono::duration_cast<time_point::duration>(last_tick - late_));
  }
  std::chrono::nanoseconds resolution() const noexcept override { return resolution_; }

  time_point true_now() const { return true_now_; }
  void advance(std::chrono::nanoseconds d) { true_now_ += std::chrono::duration_cast<time_point::duration>(d); }
  // How late the kernel's tick runs (0: on time).
  void set_late(std::chrono::nanoseconds late) { late_ = late; }

 private:
  std::chrono::nanoseconds resolution_;
  time_point true_now_;
  std::chrono::nanoseconds late_{0};
  const core::coarse_clock_source* previous_;
};

}  // namespace switchyard::testing
