// Coarse deadlines for socket operations without an Asio timer per operation.
//
// beast::tcp_stream's expiry starts a timer wait for every read and write (a handler
// allocation, a timer-queue insert and a cancel): ~7% of the gateway's CPU per proxied
// request (issue 6, callgrind). Here an operation's deadline is one stored time_point;
// a single timer per watchdog wakes every `tick` while any registered object is armed
// and calls expired() on whatever is past its deadline (an idle process, or one whose
// connections are all idle in a pool, does not wake). A deadline fires between 0 and
// `tick` late (20 ms by default), which no timeout we have needs tighter.
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
  void arm(clock::time_point deadline);
  // d from now on the coarse clock: not early (but for a late kernel tick, see
  // coarse_deadline), up to one kernel tick late (the watchdog's tick is coarser anyway).
  void arm_after(std::chrono::milliseconds d) { arm(coarse_deadline(d)); }
  void disarm() { deadline_ = clock::time_point::max(); }
  clock::time_point deadline() const { return deadline_; }

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
};

class watchdog : public std::enable_shared_from_this<watchdog> {
 public:
  static std::shared_ptr<watchdog> make(net::any_io_executor ex,
                                        std::chrono::milliseconds tick = std::chrono::milliseconds(20));
  watchdog(net::any_io_executor ex, std::chrono::milliseconds tick);
  ~watchdog();
  watchdog(const watchdog&) = delete;
  watchdog& operator=(const watchdog&) = delete;

  std::size_t size() const { return items_.size(); }
  bool ticking() const { return running_; }
  // Stops the timer; registered objects stay registered but never expire.
  void stop();

 private:
  friend class watched;
  void add(watched& w);
  void remove(watched& w);
  void start_timer();
  void on_tick();

  net::steady_timer timer_;
  std::chrono::milliseconds tick_;
  std::vector<watched*> items_;
  std::vector<watched*> due_;  // scratch for on_tick
  bool running_ = false;
  bool stopped_ = false;
};

}  // namespace switchyard::core
