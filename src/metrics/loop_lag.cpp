#include "switchyard/metrics/loop_lag.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace switchyard::metrics {

loop_lag_probe::loop_lag_probe(net::any_io_executor ex, registry& reg, std::chrono::milliseconds interval,
                               std::chrono::milliseconds warn_after)
    : timer_(ex),
      interval_(interval),
      warn_after_(warn_after),
      hist_(reg.histogram("switchyard_event_loop_lag_seconds",
                          "How late the event loop ran a timer due every 100 ms (time other work held the loop)", {},
                          {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5})
                .with({})),
      max_(reg.gauge("switchyard_event_loop_lag_max_seconds", "The largest event-loop lag since the previous scrape")
               .merge_by(merge_rule::max)
               .with({})) {
  reg.on_scrape([this] { max_.set(max_since_scrape_); });
  reg.on_window_end([this] { max_since_scrape_ = 0; });
}

void loop_lag_probe::start() {
  stopped_ = false;
  arm();
}

void loop_lag_probe::stop() {
  stopped_ = true;
  timer_.cancel();
}

void loop_lag_probe::record(std::chrono::steady_clock::duration lag) {
  const double s = std::max(0.0, std::chrono::duration<double>(lag).count());
  hist_.observe(s);
  max_since_scrape_ = std::max(max_since_scrape_, s);
  if (lag > warn_after_) {
    auto now = std::chrono::steady_clock::now();
    if (now - last_warn_ >= std::chrono::seconds(1)) {
      last_warn_ = now;
      spdlog::warn("event loop lag {:.1f} ms (something held the loop thread)", s * 1000);
    }
  }
}

void loop_lag_probe::arm() {
  if (stopped_) {
    return;
  }
  due_ = std::chrono::steady_clock::now() + interval_;
  timer_.expires_at(due_);
  timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || stopped_) {
      return;
    }
    record(std::chrono::steady_clock::now() - due_);
    arm();
  });
}

}  // namespace switchyard::metrics
