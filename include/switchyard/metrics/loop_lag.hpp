// Event-loop lag: a timer asks to run every `interval`; how late it runs is how long
// other work kept the loop busy (a blocking call, a huge body copied, a slow scrape).
// Each sample goes to a histogram (switchyard_event_loop_lag_seconds) and the largest one
// since the last scrape to a gauge; a sample past `warn_after` logs a warning (at most
// one a second).
// Owner: app/. Thread: the loop thread. Never blocks.
#pragma once
#include "switchyard/core/asio.hpp"
#include "switchyard/metrics/registry.hpp"

#include <boost/asio/steady_timer.hpp>

#include <chrono>

namespace switchyard::metrics {

class loop_lag_probe {
 public:
  loop_lag_probe(net::any_io_executor ex, registry& reg,
                 std::chrono::milliseconds interval = std::chrono::milliseconds(100),
                 std::chrono::milliseconds warn_after = std::chrono::milliseconds(25));
  void start();
  void stop();
  // One sample (the timer's own path; public for tests).
  void record(std::chrono::steady_clock::duration lag);

 private:
  void arm();

  net::steady_timer timer_;
  std::chrono::milliseconds interval_;
  std::chrono::milliseconds warn_after_;
  std::chrono::steady_clock::time_point due_{};
  std::chrono::steady_clock::time_point last_warn_{};
  series& hist_;
  series& max_;
  double max_since_scrape_ = 0;
  bool stopped_ = false;
};

}  // namespace switchyard::metrics
