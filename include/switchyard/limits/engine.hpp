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
#include <boost/container/small_vector.hpp>

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
  // (Inline for the usual handful of checks: a decision drawn from leases allocates nothing.)
  boost::container::small_vector<std::int64_t, 4> remaining;
  boost::container::small_vector<std::int64_t, 4> reset_in_ms;
  // Accepted: per check, the lease it was drawn from (0: reserved on its own). Settles of
  // a leased check go back to its lease (`settle_op::lease`).
  boost::container::small_vector<std::uint64_t, 4> lease;
  bool shared = false;  // decided by Redis (settle there too)
};

// What a finished request gives back, per reserved check.
struct settle_op {
  check c;             // the check as reserved (kind, scope, id, period)
  std::string member;  // the reservation's id (budgets and parallel slots)
  std::int64_t reserved = 0;
  std::int64_t actual = 0;  // budgets: the cost in nano-USD; tokens: the tokens used
  // Drawn from this lease (decision::lease): then only `c.k`, `reserved` and `actual` are
  // read, so the check need not be copied.
  std::uint64_t lease = 0;
  // A budget lease's own settle (made by the engine): `reserved` is what Redis holds under
  // the lease now, `next` what it is to hold, `actual` the spend its draws cost meanwhile.
  std::int64_t next = 0;
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
  std::int64_t now() const { return now_(); }
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
  // An instance not heard from (heartbeat, reserve or settle) for this long is gone: the
  // next script that touches a counter drops its reservations, leases and parallel slots
  // there (the reservation TTL stays the backstop). 0: five heartbeats. Never less than
  // three heartbeats plus `lease`, so a live instance's are never dropped and none of its
  // leases is drawn once they could be (see instance_stale_ms()).
  std::chrono::milliseconds instance_stale{0};
  // This instance's name in Redis (members are "<instance>/<id>"); empty: a fresh uuid.
  // No '/' in it. Tests name their instances.
  std::string instance_id;
  std::size_t max_pending_settles = 100000;      // kept while Redis is down, then dropped
  // Leases (docs/limits.md, "Leases"): a check far from its limit reserves room for
  // `lease_requests` more requests like it, drawn on this instance without Redis for up to
  // `lease` (0: no leases). Room is leased only when at most 1/(lease_divisor x live
  // instances) of what is left, and at least 1/8 of what was asked, fits: near a limit
  // every request asks Redis.
  std::chrono::milliseconds lease{1000};
  std::int64_t lease_requests = 256;
  std::int64_t lease_divisor = 4;
  std::string prefix = "switchyard:limits:";
};

// How long an instance may go unheard before its reservations are dropped (the option, or
// its default, raised to the minimum above).
std::chrono::milliseconds instance_stale_ms(const redis_engine_options& o);

// Shared counters in Redis. Without a client (null) it is a memory engine. `now_ms` is the
// steady clock in ms that the local engine, the leases and the waits for another
// request's ask are timed on (tests inject one).
class redis_engine {
 public:
  redis_engine(net::any_io_executor loop, store::redis::redis_client* redis, redis_engine_options opts,
               memory_engine::clock_fn now_ms);
  ~redis_engine();
  redis_engine(const redis_engine&) = delete;
  redis_engine& operator=(const redis_engine&) = delete;

  // Decides without suspending, `true` and `out` filled: without Redis (the local engine),
  // or when every check can be drawn from a lease this instance holds.
  bool try_local(const std::vector<check>& checks, decision& out);
  // One EVALSHA over every check; Redis down, slow or failing: the local engine decides.
  // `checks` must outlive the wait (the caller's request state holds them).
  net::awaitable<decision> reserve(const std::vector<check>& checks, std::string id);
  // Queues; sent in the next batch (shared) or applied at once (local).
  void settle(settle_op op, bool shared);

  bool shared_mode() const noexcept { return redis_ != nullptr && !degraded_; }
  std::size_t leases() const noexcept { return leases_.size(); }  // held (for tests)
  std::uint64_t reserve_scripts() const noexcept { return reserve_scripts_; }  // EVALSHAs sent
  std::int64_t live_instances() const noexcept { return live_; }
  const std::string& instance_id() const noexcept { return instance_id_; }
  // Requests waiting for another request's ask (for tests).
  std::size_t waiting() const noexcept;
  // Wakes the requests waiting for an ask: each reads the clock again, then waits on, draws
  // from a lease, asks Redis or decides locally. For tests that move the injected clock
  // (a wait's timer is armed for what is left of it when it starts).
  void wake_waiters();
  void start();  // heartbeat (live instances) and the settle flusher
  // Waits until the queued settles were sent (or `deadline`); for a graceful stop.
  net::awaitable<void> drain(std::chrono::steady_clock::time_point deadline);
  void stop();

  struct state;  // shared with the coroutines that outlive a stop (engine.cpp)

 private:
  // Room reserved in Redis for this instance's next requests on one counter.
  struct lease {
    check c;                       // the counter (kind, scope, id, period) and its limit
    std::string member;            // budgets: the reservation's id in Redis
    std::int64_t available = 0;    // may still be drawn
    std::int64_t drawn = 0;        // budgets: drawn by requests not settled yet
    std::int64_t inflight = 0;     // budgets, tokens: those requests (a draw may be 0)
    std::int64_t sent = 0;         // budgets: what Redis holds under `member`
    std::int64_t spend = 0;        // budgets: the draws' cost, not sent yet
    std::int64_t window_delta = 0;  // windows: correction not sent yet
    std::int64_t base = 0;         // remaining beyond this lease when granted (headers)
    std::int64_t draw_until = 0;   // local ms: drawn until then
    std::int64_t window_end = 0;   // windows: local ms the Redis window ends (0: budgets)
    // Draws and their settles not yet counted in the local engine (sync_local): counted
    // in bulk, before the local engine decides anything and at every flusher round.
    std::int64_t unrecorded = 0;
    std::int64_t local_reserved = 0;
    std::int64_t local_actual = 0;
    std::uint64_t key = 0;         // counter_key(c)
    bool closed = false;           // no longer drawn; what is left was given back
    bool dirty = false;            // in dirty_
  };
  bool draw_leases(const std::vector<check>& checks, decision& out);
  void settle_leased(const settle_op& op);
  void close_lease(std::uint64_t handle, lease& l, std::int64_t now);
  void mark_dirty(std::uint64_t handle, lease& l);
  void sweep_leases(std::int64_t now);
  void sync_local(lease& l);
  void sync_local_all();
  void queue_lease_ops();
  std::int64_t want_of(const check& c, std::int64_t now) const;
  // The first lease of the counter with room for `c` (closing those whose time is up or
  // that have too little left); null: none.
  lease* current_of(const check& c, std::uint64_t key, std::int64_t now, std::uint64_t* handle);
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
  std::unordered_map<std::uint64_t, lease> leases_;
  // counter_key -> the open leases of the counter, drawn first to last (their check is
  // compared too: a hash is not a name)
  std::unordered_map<std::uint64_t, std::vector<std::uint64_t>> current_;
  std::vector<std::uint64_t> dirty_;                        // leases with something to send
  std::uint64_t next_lease_ = 0;
  std::uint64_t reserve_scripts_ = 0;
  std::int64_t live_ = 1;
  bool degraded_ = false;
  bool stopped_ = false;
  std::string instance_id_;
  std::int64_t stale_ms_ = 0;  // instance_stale_ms(opts_)
};

// The Lua scripts (public for tests that run them against a real Redis).
extern const char* const reserve_script;
extern const char* const settle_script;
extern const char* const heartbeat_script;

}  // namespace switchyard::limits
