// Coarse deadlines for socket operations without an Asio timer per operation.
//
// beast::tcp_stream's expiry starts a timer wait for every read and write (a handler
// allocation, a timer-queue insert and a cancel): ~7% of the gateway's CPU per proxied
// request, measured with callgrind. Here an operation's deadline is one
// stored value; a single timer per watchdog wakes every `tick` while any registered
// object is armed and calls expired() on whatever is past its deadline (an idle
// process, or one whose connections are all idle in a pool, does not wake).
//
// Never early: deadlines are compared with steady_clock (or the `now` a test injects),
// never with the coarse clock, whose lag has no bound (core/coarse_clock.hpp); and
// arm_after(d) reads no clock at all while the timer runs: d is counted from the next
// tick, which runs at or after the call. A deadline fires between 0 and 2 ticks late
// (a 20 ms tick by default: at most 40 ms; more when the process itself waits for a
// CPU), which no timeout we have needs tighter.
//
// Owner: whoever owns the watched objects (http::server, upstream::client), one per
// io_context. Thread: that io_context's thread only. Never blocks.
#pragma once
#include "switchyard/core/asio.hpp"
#include "switchyard/core/coarse_clock.hpp"

#include <chrono>
#include <cstddef>
#include <memory>
#include <vector>

namespace switchyard::core {

class watchdog;

// Base of an object with a deadline (a connection). Registered for its whole life
// (register_with), armed per operation (arm / disarm: a store, no allocation).
class watched {
 public:
  using clock = std::chrono::steady_clock;
  watched() = default;
  watched(const watched&) = delete;
  watched& operator=(const watched&) = delete;
  virtual ~watched();

  void register_with(const std::shared_ptr<watchdog>& w);
  // Fires once the watchdog's clock reaches `deadline` (steady_clock time, e.g. from
  // core::deadline_after; never one computed from core::coarse_now(), which lags).
  void arm(clock::time_point deadline);
  // Fires at least d after this call, whatever the coarse clock does: d is counted from
  // the watchdog's next tick (a store, no clock read), or from now when its timer is idle.
  void arm_after(std::chrono::milliseconds d);
  void disarm() { deadline_ = clock::time_point::max(); }
  bool armed() const { return deadline_ != clock::time_point::max(); }
  // max(): disarmed; pending(): an arm_after() that the next tick has not timed yet.
  clock::time_point deadline() const { return deadline_; }
  static constexpr clock::time_point pending() { return clock::time_point::min(); }

 protected:
  // The deadline passed (it is disarmed first). Typically cancels the socket's
  // operations; must not destroy this object synchronously.
  virtual void expired() = 0;

 private:
  friend class watchdog;
  std::weak_ptr<watchdog> dog_;
  watchdog* raw_ = nullptr;  // == dog_ while registered (cleared by ~watchdog)
  std::size_t slot_ = static_cast<std::size_t>(-1);
  clock::time_point deadline_ = clock::time_point::max();
  clock::duration after_{};  // arm_after's d while deadline_ == pending()
};

class watchdog : public std::enable_shared_from_this<watchdog> {
 public:
  // The clock deadlines are compared with: steady_clock::now, or a test's.
  using now_fn = watched::clock::time_point (*)() noexcept;

  static std::shared_ptr<watchdog> make(net::any_io_executor ex,
                                        std::chrono::milliseconds tick = std::chrono::milliseconds(20),
                                        now_fn now = &watched::clock::now);
  watchdog(net::any_io_executor ex, std::chrono::milliseconds tick, now_fn now = &watched::clock::now);
  ~watchdog();
  watchdog(const watchdog&) = delete;
  watchdog& operator=(const watchdog&) = delete;

  std::size_t size() const { return items_.size(); }
  bool ticking() const { return running_; }
  // Stops the timer; registered objects stay registered but never expire.
  void stop();
  // Expires every registered object now, armed or not (their operations are cancelled;
  // the handlers run later): a stop that gives up on everything in flight.
  void expire_all();

 private:
  friend class watched;
  void add(watched& w);
  void remove(watched& w);
  void start_timer();
  void on_tick();

  net::steady_timer timer_;
  std::chrono::milliseconds tick_;
  now_fn now_;
  std::vector<watched*> items_;
  std::vector<watched*> due_;  // scratch for on_tick
  bool running_ = false;
  bool stopped_ = false;
};

}  // namespace switchyard::core
