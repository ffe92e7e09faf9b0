#include "switchyard/store/postgres/db_executor.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <poll.h>
#include <pqxx/pqxx>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string_view>
#include <thread>
#include <vector>

namespace switchyard::store::postgres {

namespace {

// The beginnings of the messages of a job's own failures (is_job_failure).
constexpr std::string_view sql_failure_prefix = "database error: ";
constexpr std::string_view job_failure_prefix = "database job failed: ";
// ... and of every errc::unavailable made here (is_unavailable_failure).
constexpr std::string_view unavailable_prefixes[] = {"database unavailable", "database connection lost",
                                                     "database timeout", "database busy",
                                                     "database executor stopped"};

using clock = std::chrono::steady_clock;

bool has_param(const std::string& url, std::string_view key) {
  // Good enough for the keys we add: "key=" is not the tail of another libpq keyword.
  return url.find(std::string(key) + "=") != std::string::npos;
}

bool is_uri(const std::string& url) { return url.starts_with("postgresql://") || url.starts_with("postgres://"); }

// Appends key=value to a libpq URI ("postgresql://...?a=b") or key=value string.
void add_param(std::string& url, std::string_view key, const std::string& value) {
  if (has_param(url, key)) {
    return;
  }
  if (is_uri(url)) {
    url += url.find('?') == std::string::npos ? '?' : '&';
  } else if (!url.empty()) {
    url += ' ';
  }
  url += key;
  url += '=';
  url += value;
}

// SQLSTATEs that mean "the session is gone" rather than "your SQL failed":
// class 08 (connection exception) and 57P01..57P03 (admin/crash shutdown, cannot connect now).
bool session_lost_state(const std::string& sqlstate) {
  return sqlstate.starts_with("08") || sqlstate == "57P01" || sqlstate == "57P02" || sqlstate == "57P03";
}

std::string trim_message(std::string_view m) {
  while (!m.empty() && (m.back() == '\n' || m.back() == ' ')) {
    m.remove_suffix(1);
  }
  return std::string(m);
}

// Has the server hung up on this idle connection? A connection between jobs has no
// query in flight, so anything readable is a goodbye (FATAL + EOF), or at worst a notice.
bool hung_up_blocking(pqxx::connection& c) noexcept {
  // A goodbye is a FATAL message then EOF; libpq reads them in separate calls.
  for (int round = 0; round < 4; ++round) {
    int fd = c.sock();
    if (fd < 0) {
      return true;
    }
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 0) <= 0) {
      return false;  // nothing (more) pending, or poll failed: the job will tell
    }
    if ((p.revents & (POLLHUP | POLLERR | POLLNVAL)) != 0) {
      return true;
    }
    try {
      c.get_notifs();  // consumes what arrived; throws broken_connection at EOF
    } catch (...) {
      return true;
    }
    if (!c.is_open()) {
      return true;
    }
  }
  return false;
}

// One per db thread: its connection and reconnect state. A pool thread only ever runs
// jobs of its own executor, so a thread_local is per executor; `owner` guards anyway.
struct thread_slot {
  const void* owner = nullptr;
  std::size_t index = 0;  // into impl::watched
  std::uint64_t retry_epoch = 0;
  std::unique_ptr<pqxx::connection> conn;
  clock::time_point retry_at{};
  std::chrono::milliseconds backoff{0};
  std::string last_error;
  bool failed = false;  // logged as lost; log the recovery once
};

thread_local thread_slot tls_slot;

// A job between run_job() and its caller: shared by the loop side and the db thread.
struct pending_job {
  std::function<void(pqxx::connection&)> fn;
  clock::time_point deadline;
  net::any_io_executor caller;  // where the caller waits (one handler at a time)
  // On `caller` only:
  std::optional<core::result<void>> out;
  net::steady_timer* wake = nullptr;  // the caller's deadline timer while it waits
  // Set by the caller when it gave up: the db thread skips the job if it has not started.
  std::atomic<bool> abandoned{false};
};

// What the watchdog sees of a db thread's running job.
struct watched_slot {
  int fd = -1;  // the connection's socket while a job runs on it, else -1
  clock::time_point deadline{};
  bool aborted = false;  // the watchdog shut the socket down
};

}  // namespace

struct db_executor::impl {
  explicit impl(db_options o)
      : opts(std::move(o)), pool(std::max<std::size_t>(1, opts.pool_size)), watched(std::max<std::size_t>(1, opts.pool_size)) {
    conninfo = opts.url;
    auto secs = std::max<long long>(1, opts.connect_timeout.count());
    add_param(conninfo, "connect_timeout", std::to_string(secs));
    add_param(conninfo, "keepalives", "1");
    add_param(conninfo, "keepalives_idle", std::to_string(std::max<long long>(1, opts.keepalives_idle.count())));
    add_param(conninfo, "keepalives_interval",
              std::to_string(std::max<long long>(1, opts.keepalives_interval.count())));
    add_param(conninfo, "keepalives_count", std::to_string(std::max(1, opts.keepalives_count)));
    if (opts.statement_timeout.count() > 0) {
      // Set at connection start (a startup option, not a SET statement): no extra round
      // trip, and nothing shows up as a statement of its own in pg_stat_statements.
      auto ms = std::to_string(opts.statement_timeout.count());
      add_param(conninfo, "options",
                is_uri(conninfo) ? "-c%20statement_timeout%3D" + ms : "'-c statement_timeout=" + ms + "'");
    }
    add_param(conninfo, "application_name", "switchyard");
    watchdog = std::thread([this] { watch(); });
  }

  db_options opts;
  std::string conninfo;
  net::thread_pool pool;
  std::atomic<bool> healthy{false};
  std::atomic<bool> stopped{false};
  std::atomic<std::size_t> in_flight{0};
  std::atomic<std::size_t> aborted{0};
  std::atomic<std::uint64_t> retry_epoch{0};
  std::atomic<std::size_t> next_index{0};

  // The watchdog: shuts down the socket of a job that outlived its deadline.
  std::mutex watch_mutex;
  std::condition_variable watch_cv;
  std::vector<watched_slot> watched;  // one per db thread; under watch_mutex
  clock::time_point watch_next = clock::time_point::max();  // when it wakes next
  bool watch_stop = false;
  std::thread watchdog;

  // Runs on a db thread. Never throws.
  core::result<void> execute_blocking(pending_job& p) noexcept;
  net::awaitable<core::result<void>> await_job(std::shared_ptr<pending_job> p);
  void stop_watchdog() noexcept;

 private:
  pqxx::connection* connection_blocking(thread_slot& s, core::error& err) noexcept;
  void drop(thread_slot& s, std::string_view why) noexcept;
  void watch() noexcept;
  void publish(std::size_t index, int fd, clock::time_point deadline) noexcept;
  bool unpublish(std::size_t index) noexcept;  // true: the watchdog aborted the job
};

void db_executor::impl::watch() noexcept {
  std::unique_lock lk(watch_mutex);
  while (!watch_stop) {
    auto now = clock::now();
    auto next = clock::time_point::max();
    for (auto& w : watched) {
      if (w.fd < 0 || w.aborted) {
        continue;
      }
      if (w.deadline <= now) {
        // shutdown(), not close(): the descriptor stays libpq's (no reuse race); the db
        // thread's blocked read returns at once and libpq reports a broken connection.
        // (PQcancel would open a new connection to the very server that does not answer.)
        ::shutdown(w.fd, SHUT_RDWR);
        w.aborted = true;
      } else {
        next = std::min(next, w.deadline);
      }
    }
    watch_next = next;
    if (next == clock::time_point::max()) {
      watch_cv.wait(lk);
    } else {
      watch_cv.wait_until(lk, next);
    }
  }
}

void db_executor::impl::publish(std::size_t index, int fd, clock::time_point deadline) noexcept {
  bool wake = false;
  {
    std::lock_guard lk(watch_mutex);
    watched[index] = watched_slot{fd, deadline, false};
    wake = deadline < watch_next;
    if (wake) {
      watch_next = deadline;
    }
  }
  if (wake) {
    watch_cv.notify_one();
  }
}

bool db_executor::impl::unpublish(std::size_t index) noexcept {
  std::lock_guard lk(watch_mutex);
  bool was_aborted = watched[index].aborted;
  watched[index] = watched_slot{};
  return was_aborted;
}

void db_executor::impl::stop_watchdog() noexcept {
  {
    std::lock_guard lk(watch_mutex);
    if (watch_stop) {
      return;
    }
    watch_stop = true;
  }
  watch_cv.notify_one();
  if (watchdog.joinable()) {
    watchdog.join();
  }
}

pqxx::connection* db_executor::impl::connection_blocking(thread_slot& s, core::error& err) noexcept {
  if (s.owner != this) {
    s = thread_slot{};
    s.owner = this;
    s.index = next_index.fetch_add(1, std::memory_order_relaxed) % watched.size();
  }
  if (s.conn && s.conn->is_open()) {
    if (!hung_up_blocking(*s.conn)) {
      return s.conn.get();
    }
    // Closed by the server while idle (restart, failover, idle kill): reconnect now
    // rather than fail this job. (Also avoids a PGresult leak inside libpqxx 6.4 when
    // a query is sent on such a connection.)
    drop(s, "server closed the connection");
  }
  s.conn.reset();
  auto now = clock::now();
  auto epoch = retry_epoch.load(std::memory_order_relaxed);
  if (now < s.retry_at && s.retry_epoch == epoch) {
    err = core::make_error(core::errc::unavailable, "database unavailable (reconnecting): " + s.last_error);
    return nullptr;
  }
  s.retry_epoch = epoch;
  try {
    s.conn = std::make_unique<pqxx::connection>(conninfo);
    if (s.failed) {
      spdlog::info("postgres: reconnected");
    }
    s.failed = false;
    s.backoff = std::chrono::milliseconds{0};
    s.retry_at = {};
    return s.conn.get();
  } catch (const std::exception& e) {
    s.conn.reset();
    s.last_error = trim_message(e.what());
  } catch (...) {
    s.conn.reset();
    s.last_error = "unknown error while connecting";
  }
  s.backoff = s.backoff.count() == 0 ? opts.reconnect_backoff_min
                                      : std::min(s.backoff * 2, opts.reconnect_backoff_max);
  s.retry_at = clock::now() + s.backoff;
  if (!s.failed) {
    spdlog::warn("postgres: cannot connect: {} (retrying with backoff up to {} ms)", s.last_error,
                 opts.reconnect_backoff_max.count());
  }
  s.failed = true;
  err = core::make_error(core::errc::unavailable, "database unavailable: " + s.last_error);
  return nullptr;
}

void db_executor::impl::drop(thread_slot& s, std::string_view why) noexcept {
  s.conn.reset();  // PQfinish: does not wait for the server
  s.last_error = std::string(why);
  // The next job reconnects at once; backoff starts when that attempt fails.
  s.retry_at = {};
  if (!s.failed) {
    spdlog::warn("postgres: connection lost: {}", why);
  }
  s.failed = true;
}

core::result<void> db_executor::impl::execute_blocking(pending_job& p) noexcept {
  struct release {
    std::atomic<std::size_t>& n;
    ~release() { n.fetch_sub(1, std::memory_order_acq_rel); }
  } guard{in_flight};

  if (stopped.load(std::memory_order_acquire)) {
    return core::make_error(core::errc::unavailable, "database executor stopped");
  }
  // Queued behind slow jobs past its deadline: its caller has had its answer already.
  if (p.abandoned.load(std::memory_order_acquire) || clock::now() >= p.deadline) {
    return core::make_error(core::errc::unavailable, "database timeout: no free connection before the deadline");
  }
  thread_slot& s = tls_slot;
  core::error err;
  pqxx::connection* c = connection_blocking(s, err);
  if (c == nullptr) {
    healthy.store(false, std::memory_order_relaxed);
    return err;
  }
  if (clock::now() >= p.deadline) {  // connecting took the rest of it
    return core::make_error(core::errc::unavailable, "database timeout: connecting took too long");
  }

  bool timed_out = false;
  auto lost = [&](std::string_view what) -> core::error {
    if (timed_out) {
      aborted.fetch_add(1, std::memory_order_relaxed);
      drop(s, "no answer before the job's deadline");
      healthy.store(false, std::memory_order_relaxed);
      return core::make_error(core::errc::unavailable, "database timeout: no answer before the deadline");
    }
    auto msg = trim_message(what);
    drop(s, msg);
    healthy.store(false, std::memory_order_relaxed);
    return core::make_error(core::errc::unavailable, "database connection lost: " + msg);
  };
  // Unpublished before any handler below can close the connection (drop): the watchdog
  // never touches a descriptor that may have been reused.
  struct published {
    impl& im;
    std::size_t index;
    bool& timed_out;
    ~published() { timed_out = im.unpublish(index); }
  };
  try {
    {
      published pub{*this, s.index, timed_out};
      publish(s.index, c->sock(), p.deadline);
      p.fn(*c);
    }
    if (timed_out) {
      // Finished just as the watchdog shut the socket down: the connection is unusable.
      return lost("");
    }
    healthy.store(true, std::memory_order_relaxed);
    return {};
  } catch (const pqxx::broken_connection& e) {
    return lost(e.what());
  } catch (const pqxx::in_doubt_error& e) {
    return lost(e.what());
  } catch (const pqxx::sql_error& e) {
    if (timed_out || session_lost_state(e.sqlstate()) || !c->is_open()) {
      return lost(e.what());
    }
    healthy.store(true, std::memory_order_relaxed);
    auto msg = trim_message(e.what());
    if (e.sqlstate() == "57014") {
      // statement_timeout (or a cancel): the server is slow, not the SQL wrong.
      return core::make_error(core::errc::unavailable, "database timeout: " + msg);
    }
    if (!e.sqlstate().empty()) {
      msg += " (SQLSTATE " + e.sqlstate() + ")";
    }
    return core::make_error(core::errc::internal, std::string(sql_failure_prefix) + msg);
  } catch (const std::exception& e) {
    if (timed_out || !c->is_open()) {
      return lost(e.what());
    }
    return core::make_error(core::errc::internal, std::string(job_failure_prefix) + trim_message(e.what()));
  } catch (...) {
    if (timed_out) {
      return lost("");
    }
    return core::make_error(core::errc::internal, std::string(job_failure_prefix) + "unknown exception");
  }
}

db_executor::db_executor(db_options opts) : impl_(std::make_unique<impl>(std::move(opts))) {}

db_executor::~db_executor() { stop(); }

bool db_executor::healthy() const noexcept { return impl_->healthy.load(std::memory_order_relaxed); }

std::size_t db_executor::in_flight() const noexcept { return impl_->in_flight.load(std::memory_order_relaxed); }

std::size_t db_executor::pool_size() const noexcept { return std::max<std::size_t>(1, impl_->opts.pool_size); }

std::size_t db_executor::aborted() const noexcept { return impl_->aborted.load(std::memory_order_relaxed); }

void db_executor::retry_now() noexcept { impl_->retry_epoch.fetch_add(1, std::memory_order_relaxed); }

std::chrono::milliseconds db_executor::impl_job_timeout() const noexcept { return impl_->opts.job_timeout; }

void db_executor::stop() {
  impl_->stopped.store(true, std::memory_order_release);
  // No pool.stop(): queued jobs must still run (and fail fast) so their callers resume.
  // Running jobs end by their deadline at the latest: the watchdog runs until they have.
  impl_->pool.join();
  impl_->stop_watchdog();
}

namespace {

net::awaitable<core::result<void>> ready(core::result<void> r) { co_return r; }

// Waits on the caller's executor for the db thread's answer or the deadline, whichever
// comes first. The db thread posts the answer to the caller's executor, where `wake` is
// only ever touched; after a timeout the late answer lands in `out` and nobody reads it.
}  // namespace

net::awaitable<core::result<void>> db_executor::impl::await_job(std::shared_ptr<pending_job> p) {
  p->caller = co_await net::this_coro::executor;
  net::steady_timer wake(p->caller, p->deadline);
  p->wake = &wake;
  // Also when this frame is destroyed without resuming (the loop shutting down): a late
  // answer must not touch the timer.
  struct forget {
    pending_job& p;
    ~forget() { p.wake = nullptr; }
  } forget_wake{*p};
  net::post(pool, [this, p]() {
    auto r = execute_blocking(*p);
    net::post(p->caller, [p, r = std::move(r)]() mutable {
      p->out = std::move(r);
      if (p->wake != nullptr) {
        p->wake->cancel();
      }
    });
  });
  while (!p->out) {
    auto [ec] = co_await wake.async_wait(net::as_tuple(net::use_awaitable));
    if (p->out || wake.expiry() <= clock::now()) {
      break;
    }
    // Cancelled from outside (not by the answer), e.g. the loop shutting down: keep waiting.
    if (ec && ec != net::error::operation_aborted) {
      break;
    }
  }
  if (p->out) {
    co_return std::move(*p->out);
  }
  p->abandoned.store(true, std::memory_order_release);
  co_return core::make_error(core::errc::unavailable, "database timeout: no answer before the deadline");
}

// Not a coroutine on purpose: GCC 12 mis-handles a lambda init-capture that moves a
// coroutine parameter (the parameter is destroyed twice).
net::awaitable<core::result<void>> db_executor::run_job(job j, std::chrono::milliseconds timeout) {
  impl* im = impl_.get();
  if (im->stopped.load(std::memory_order_acquire)) {
    return ready(core::make_error(core::errc::unavailable, "database executor stopped"));
  }
  auto before = im->in_flight.fetch_add(1, std::memory_order_acq_rel);
  if (before >= std::max<std::size_t>(1, im->opts.max_in_flight)) {
    im->in_flight.fetch_sub(1, std::memory_order_acq_rel);
    return ready(core::make_error(core::errc::unavailable,
                                  "database busy: " + std::to_string(before) + " jobs in flight"));
  }
  auto p = std::make_shared<pending_job>();
  p->fn = std::move(j);
  p->deadline = clock::now() + timeout;
  // Lazy: starts when awaited (run() awaits at once). `im` outlives the job: stop() (and
  // so ~db_executor) joins the pool first.
  return im->await_job(std::move(p));
}

net::awaitable<core::result<void>> db_executor::ping(std::chrono::milliseconds timeout) {
  if (timeout.count() <= 0) {
    timeout = impl_->opts.job_timeout;
  }
  return run_within(timeout, [](pqxx::connection& c) {
    pqxx::nontransaction tx{c};
    tx.exec("SELECT 1");
  });
}

bool is_job_failure(const core::error& e) {
  return e.code == core::errc::internal &&
         (e.message.starts_with(sql_failure_prefix) || e.message.starts_with(job_failure_prefix));
}

bool is_unavailable_failure(const core::error& e) {
  return e.code == core::errc::unavailable &&
         std::any_of(std::begin(unavailable_prefixes), std::end(unavailable_prefixes),
                     [&](std::string_view p) { return e.message.starts_with(p); });
}

}  // namespace switchyard::store::postgres
