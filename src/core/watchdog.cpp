#include "switchyard/core/watchdog.hpp"

#include <boost/asio/steady_timer.hpp>

#include <algorithm>

namespace switchyard::core {

void watched::arm(clock::time_point deadline) {
  deadline_ = std::max(deadline, pending() + clock::duration(1));
  if (raw_ != nullptr && !raw_->running_) {
    raw_->start_timer();
  }
}

void watched::arm_after(std::chrono::milliseconds d) {
  if (raw_ != nullptr && raw_->running_) {
    // Timed by the next tick: it runs at or after this call, so d is not shortened.
    after_ = d;
    deadline_ = pending();
    return;
  }
  // No tick pending (or no watchdog): one clock read now.
  arm((raw_ != nullptr ? raw_->now_() : clock::now()) + d);
}

watched::~watched() {
  if (auto d = dog_.lock()) {
    d->remove(*this);
  }
}

void watched::register_with(const std::shared_ptr<watchdog>& w) {
  if (auto d = dog_.lock()) {
    d->remove(*this);
  }
  dog_ = w;
  raw_ = w.get();
  if (w) {
    w->add(*this);
  }
}

std::shared_ptr<watchdog> watchdog::make(net::any_io_executor ex, std::chrono::milliseconds tick, now_fn now) {
  return std::make_shared<watchdog>(std::move(ex), tick, now);
}

watchdog::watchdog(net::any_io_executor ex, std::chrono::milliseconds tick, now_fn now)
    : timer_(std::move(ex)), tick_(tick), now_(now) {}

watchdog::~watchdog() {
  for (auto* w : items_) {
    w->slot_ = static_cast<std::size_t>(-1);
    w->raw_ = nullptr;
  }
}

void watchdog::expire_all() {
  // expired() only cancels operations, so no object leaves items_ during this loop.
  due_ = items_;
  for (auto* w : due_) {
    w->disarm();
    w->expired();
  }
  due_.clear();
}

void watchdog::stop() {
  stopped_ = true;
  timer_.cancel();
}

void watchdog::add(watched& w) {
  w.slot_ = items_.size();
  items_.push_back(&w);
  if (w.deadline_ != watched::clock::time_point::max()) {
    start_timer();
  }
}

void watchdog::remove(watched& w) {
  const std::size_t i = w.slot_;
  if (i >= items_.size() || items_[i] != &w) {
    return;
  }
  items_[i] = items_.back();
  items_[i]->slot_ = i;
  items_.pop_back();
  w.slot_ = static_cast<std::size_t>(-1);
  w.raw_ = nullptr;
}

void watchdog::start_timer() {
  if (running_ || stopped_) {
    return;
  }
  running_ = true;
  timer_.expires_after(tick_);
  timer_.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
    auto self = weak.lock();
    if (!self) {
      return;
    }
    self->running_ = false;
    if (ec || self->stopped_) {
      return;
    }
    self->on_tick();
  });
}

void watchdog::on_tick() {
  const auto now = now_();
  due_.clear();
  bool armed = false;
  for (auto* w : items_) {
    if (w->deadline_ == watched::pending()) {
      w->deadline_ = now + w->after_;  // armed at or before now: never early
    }
    if (w->deadline_ <= now) {
      w->deadline_ = watched::clock::time_point::max();
      due_.push_back(w);
    } else if (w->deadline_ != watched::clock::time_point::max()) {
      armed = true;
    }
  }
  // expired() only cancels operations (their handlers run later), so every pointer in
  // due_ stays valid through this loop.
  for (auto* w : due_) {
    w->expired();
  }
  due_.clear();
  // Re-armed by an expired() handler (it called arm()), or still armed objects: tick on.
  if (armed) {
    start_timer();
  }
}

}  // namespace switchyard::core
