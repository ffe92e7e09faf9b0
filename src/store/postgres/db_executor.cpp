#include "switchyard/store/postgres/db_executor.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <poll.h>
#include <pqxx/pqxx>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <string_view>

namespace switchyard::store::postgres {

namespace {

using clock = std::chrono::steady_clock;

bool has_param(const std::string& url, std::string_view key) {
  // Good enough for the two keys we add: they are not substrings of other libpq keywords.
  return url.find(std::string(key) + "=") != std::string::npos;
}

// Appends key=value to a libpq URI ("postgresql://...?a=b") or key=value string.
void add_param(std::string& url, std::string_view key, const std::string& value) {
  if (has_param(url, key)) {
    return;
  }
  bool uri = url.starts_with("postgresql://") || url.starts_with("postgres://");
  if (uri) {
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
  std::unique_ptr<pqxx::connection> conn;
  clock::time_point retry_at{};
  std::chrono::milliseconds backoff{0};
  std::string last_error;
  bool failed = false;  // logged as lost; log the recovery once
};

thread_local thread_slot tls_slot;

}  // namespace

struct db_executor::impl {
  explicit impl(db_options o) : opts(std::move(o)), pool(std::max<std::size_t>(1, opts.pool_size)) {
    conninfo = opts.url;
    auto secs = std::max<long long>(1, opts.connect_timeout.count());
    add_param(conninfo, "connect_timeout", std::to_string(secs));
    add_param(conninfo, "application_name", "switchyard");
  }

  db_options opts;
  std::string conninfo;
  net::thread_pool pool;
  std::atomic<bool> healthy{false};
  std::atomic<bool> stopped{false};
  std::atomic<std::size_t> in_flight{0};

  // Runs on a db thread. Never throws.
  core::result<void> execute_blocking(const job& j) noexcept;

 private:
  pqxx::connection* connection_blocking(thread_slot& s, core::error& err) noexcept;
  void drop(thread_slot& s, std::string_view why) noexcept;
};

pqxx::connection* db_executor::impl::connection_blocking(thread_slot& s, core::error& err) noexcept {
  if (s.owner != this) {
    s = thread_slot{};
    s.owner = this;
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
  if (now < s.retry_at) {
    err = core::make_error(core::errc::unavailable, "database unavailable (reconnecting): " + s.last_error);
    return nullptr;
  }
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

core::result<void> db_executor::impl::execute_blocking(const job& j) noexcept {
  struct release {
    std::atomic<std::size_t>& n;
    ~release() { n.fetch_sub(1, std::memory_order_acq_rel); }
  } guard{in_flight};

  if (stopped.load(std::memory_order_acquire)) {
    return core::make_error(core::errc::unavailable, "database executor stopped");
  }
  thread_slot& s = tls_slot;
  core::error err;
  pqxx::connection* c = connection_blocking(s, err);
  if (c == nullptr) {
    healthy.store(false, std::memory_order_relaxed);
    return err;
  }

  auto lost = [&](std::string_view what) -> core::error {
    auto msg = trim_message(what);
    drop(s, msg);
    healthy.store(false, std::memory_order_relaxed);
    return core::make_error(core::errc::unavailable, "database connection lost: " + msg);
  };
  try {
    j(*c);
    healthy.store(true, std::memory_order_relaxed);
    return {};
  } catch (const pqxx::broken_connection& e) {
    return lost(e.what());
  } catch (const pqxx::in_doubt_error& e) {
    return lost(e.what());
  } catch (const pqxx::sql_error& e) {
    if (session_lost_state(e.sqlstate()) || !c->is_open()) {
      return lost(e.what());
    }
    healthy.store(true, std::memory_order_relaxed);
    auto msg = trim_message(e.what());
    if (!e.sqlstate().empty()) {
      msg += " (SQLSTATE " + e.sqlstate() + ")";
    }
    return core::make_error(core::errc::internal, "database error: " + msg);
  } catch (const std::exception& e) {
    if (!c->is_open()) {
      return lost(e.what());
    }
    return core::make_error(core::errc::internal, "database job failed: " + trim_message(e.what()));
  } catch (...) {
    return core::make_error(core::errc::internal, "database job failed: unknown exception");
  }
}

db_executor::db_executor(db_options opts) : impl_(std::make_unique<impl>(std::move(opts))) {}

db_executor::~db_executor() { stop(); }

bool db_executor::healthy() const noexcept { return impl_->healthy.load(std::memory_order_relaxed); }

std::size_t db_executor::in_flight() const noexcept { return impl_->in_flight.load(std::memory_order_relaxed); }

std::size_t db_executor::pool_size() const noexcept { return std::max<std::size_t>(1, impl_->opts.pool_size); }

void db_executor::stop() {
  impl_->stopped.store(true, std::memory_order_release);
  // No pool.stop(): queued jobs must still run (and fail fast) so their callers resume.
  impl_->pool.join();
}

namespace {
net::awaitable<core::result<void>> ready(core::result<void> r) { co_return r; }
}  // namespace

// Not a coroutine on purpose: GCC 12 mis-handles a lambda init-capture that moves a
// coroutine parameter (the parameter is destroyed twice).
net::awaitable<core::result<void>> db_executor::run_job(job j) {
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
  // Lazy: starts when awaited (run() awaits at once). `im` outlives the job: stop() (and
  // so ~db_executor) joins the pool first. The completion is dispatched to the awaiting
  // coroutine's executor: the caller resumes on its own executor (the loop).
  return net::co_spawn(
      im->pool,
      [im, j = std::move(j)]() -> net::awaitable<core::result<void>> { co_return im->execute_blocking(j); },
      net::use_awaitable);
}

net::awaitable<core::result<void>> db_executor::ping() {
  co_return co_await run([](pqxx::connection& c) {
    pqxx::nontransaction tx{c};
    tx.exec("SELECT 1");
  });
}

}  // namespace switchyard::store::postgres
