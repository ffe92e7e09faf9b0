// The enforcement engines: one atomic check-and-reserve over every counter of a request,
// then a settle when it finished. `memory_engine` counts on this instance only;
// `redis_engine` counts in Redis for every instance (one Lua script per request) and falls
// back to a memory engine, on a share of each limit, while Redis is unreachable or slow.
// See docs/limits.md.
// Owner: app/ (one per process). Thread: the loop thread. Never blocks: a Redis check
// waits at most its timeout (a few ms), settles are queued and sent in batches.
#pragma once
#include "switchyard/core/asio.hpp"
#include "switchyard/limits/checks.hpp"

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace switchyard::store::redis {
class redis_client;
}

namespace switchyard::limits {

// The answer to a reserve.
struct decision {
  bool ok = true;
  int failed = -1;            // refused: the index of the check that did not fit
  std::int64_t used = 0;      // refused: that counter's value (budgets: spend + reserved)
  std::int64_t reset_ms = 0;  // refused window: ms until it resets
  // Accepted: per check, what is left after this request, and ms until its window resets
  // (-1: not a window).
  std::vector<std::int64_t> remaining;
  std::vector<std::int64_t> reset_in_ms;
  bool shared = false;  // decided by Redis (settle there too)
};

// What a finished request gives back, per reserved check.
struct settle_op {
  check c;             // the check as reserved (kind, scope, id, period)
  std::string member;  // the reservation's id (budgets and parallel slots)
  std::int64_t reserved = 0;
  std::int64_t actual = 0;  // budgets: the cost in nano-USD; tokens: the tokens used
};

// Counts on this instance only. `now_ms` is a monotonic clock in ms (tests inject one).
// Windows are fixed and anchored at their first use (LiteLLM's): a counter resets when a
// request arrives after its window ended.
class memory_engine {
 public:
  using clock_fn = std::function<std::int64_t()>;
  memory_engine(clock_fn now_ms, std::chrono::milliseconds window);

  // All checks fit (and are reserved) or none is. `share`: the limits (and the part of a
  // budget left above its seed) are divided by it (Redis outage rule: docs/limits.md).
  decision reserve(const std::vector<check>& checks, std::int64_t share = 1);
  // Counts a reservation decided elsewhere (by Redis) without checking it.
  void record(const std::vector<check>& checks);
  void settle(const settle_op& op);

  std::size_t counters() const;  // for tests: the entries held

 private:
  struct window {
    std::int64_t value = 0;
    std::int64_t ends_ms = 0;
  };
  struct budget {
    std::int64_t spend = 0;
    std::int64_t reserved = 0;
    std::int64_t expires_ms = 0;  // dropped when idle past it (0: never), as Redis' key TTL
  };
  clock_fn now_;
  std::int64_t window_ms_;
  std::unordered_map<std::string, window> windows_;
  std::unordered_map<std::string, budget> budgets_;
  std::unordered_map<std::string, std::int64_t> parallel_;
  std::int64_t last_sweep_ms_ = 0;
  void sweep(std::int64_t now);
  void apply(const std::vector<check>& checks, const std::vector<std::string>& names, std::int64_t now);
};

struct redis_engine_options {
  std::chrono::milliseconds window{60000};
  std::chrono::milliseconds timeout{5};  // a check waits at most this on Redis, then counts locally
  // A reservation (budget, parallel slot) whose gateway never settles it is dropped after this.
  std::chrono::milliseconds reservation_ttl{900000};
  std::chrono::milliseconds settle_interval{5};  // settles are batched this long
  std::chrono::milliseconds heartbeat{2000};     // live-instance count, for the outage share
  std::size_t max_pending_settles = 100000;      // kept while Redis is down, then dropped
  std::string prefix = "switchyard:limits:";
};

// Shared counters in Redis. Without a client (null) it is a memory engine.
class redis_engine {
 public:
  redis_engine(net::any_io_executor loop, store::redis::redis_client* redis, redis_engine_options opts,
               memory_engine::clock_fn now_ms);
  ~redis_engine();
  redis_engine(const redis_engine&) = delete;
  redis_engine& operator=(const redis_engine&) = delete;

  // Decides locally (no suspension) when there is no Redis: `true` and `out` filled.
  bool try_local(const std::vector<check>& checks, decision& out);
  // One EVALSHA over every check; Redis down, slow or failing: the local engine decides.
  // `checks` must outlive the wait (the caller's request state holds them).
  net::awaitable<decision> reserve(const std::vector<check>& checks, std::string id);
  // Queues; sent in the next batch (shared) or applied at once (local).
  void settle(settle_op op, bool shared);

  bool shared_mode() const noexcept { return redis_ != nullptr && !degraded_; }
  std::int64_t live_instances() const noexcept { return live_; }
  void start();  // heartbeat (live instances) and the settle flusher
  // Waits until the queued settles were sent (or `deadline`); for a graceful stop.
  net::awaitable<void> drain(std::chrono::steady_clock::time_point deadline);
  void stop();

 private:
  struct state;
  net::awaitable<void> flush_loop();
  net::awaitable<void> heartbeat_loop();
  net::awaitable<bool> ensure_scripts();
  void mark_down(const std::string& why);
  void mark_up();

  net::any_io_executor loop_;
  store::redis::redis_client* redis_;
  redis_engine_options opts_;
  memory_engine local_;
  std::shared_ptr<state> st_;
  std::vector<settle_op> pending_;
  std::int64_t live_ = 1;
  bool degraded_ = false;
  bool stopped_ = false;
  std::string instance_id_;
};

// The Lua scripts (public for tests that run them against a real Redis).
extern const char* const reserve_script;
extern const char* const settle_script;

}  // namespace switchyard::limits
