// db_executor: libpqxx off the loop. The one door to Postgres.
//
// Owner: app/ creates one per process (before the loop runs) and stops it during shutdown,
// after the last job was awaited and before the io_context is destroyed.
// Threads: a private net::thread_pool of `pool_size` threads; each thread owns one
// pqxx::connection (opened lazily on its first job, reopened with backoff after a failure).
// run()/ping() are called from the loop (any thread works) and resume on the CALLER's
// executor; the job itself runs, and may block, on a db thread only. stop() blocks (joins).
// Blocking: jobs block their db thread (never the loop). A dead Postgres costs a job at most
// `connect_timeout`; while a thread is in reconnect backoff its jobs fail at once.
// Deadlines: every job has one (run(): `job_timeout`; run_within(): the caller's). It bounds
// the whole wait: the queue, connecting, the statements. When it passes, the caller resumes
// with errc::unavailable ("database timeout") whether or not the db thread has returned; the
// job's late result is dropped. A job still running then has its socket shut down by a
// watchdog thread, so its db thread gets free at once (the connection is replaced on the
// next job) instead of waiting on a silent server; a queued job whose deadline has passed
// is skipped. So a hung Postgres never holds a caller, a db thread or memory past the
// deadlines (at most `max_in_flight` jobs are queued).
//
//   auto row = co_await db.run(
//       [](pqxx::connection& c, const std::string& id) {   // on a db thread
//         pqxx::read_transaction tx{c};                     // plain struct out,
//         return key_row_from(tx.exec_params1(sql::key_by_id, id)); // no pqxx types leak
//       },
//       id);                                                // back on the loop
// (Values go in as arguments, not captures: see run() for the GCC 12 reason.)
//
// Errors: every exception thrown by a job is caught on the db thread and returned:
//   errc::unavailable  connection broken / connect failed / reconnect backoff / too many
//                      jobs in flight ("database busy") / deadline passed ("database
//                      timeout") / executor stopped
//   errc::internal     SQL errors (message: Postgres' text + SQLSTATE) and other exceptions
// A job may run twice only if the caller runs it twice: nothing is retried here.
#pragma once
#include "switchyard/core/asio.hpp"
#include "switchyard/core/error.hpp"
#include "switchyard/store/postgres/pqxx_fwd.hpp"

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

namespace switchyard::store::postgres {

// Whether `e` is a job's SQL or exception failure as run() reports it (errc::internal,
// "database error: <Postgres' text> (SQLSTATE ...)" or "database job failed: ..."): text
// for the operator's log, not for a client.
bool is_job_failure(const core::error& e);

// Whether `e` is one of run()'s "no database to answer" errors (errc::unavailable: cannot
// connect, reconnect backoff, connection lost, timeout, busy, stopped). Some quote libpq or
// the server, which can name the database's host, port and user: for the operator's log,
// not for a client.
bool is_unavailable_failure(const core::error& e);

struct db_options {
  // libpq connection string: a URI ("postgresql://user@host:port/db") or key=value pairs.
  // connect_timeout, keepalives*, options (statement_timeout) and application_name are
  // appended unless already present.
  std::string url;
  std::size_t pool_size = 2;       // threads == connections
  std::size_t max_in_flight = 64;  // queued + running jobs; beyond: errc::unavailable
  std::chrono::seconds connect_timeout{2};  // libpq connect_timeout (it rounds 1 up to 2)
  // run()'s deadline: queue wait + connect + statements, measured from the call.
  std::chrono::milliseconds job_timeout{5000};
  // The server's statement_timeout for every session (0: none). Ends a statement the server
  // is still running after the caller gave up (the watchdog only frees our side).
  std::chrono::milliseconds statement_timeout{5000};
  // TCP keepalives, so a peer that vanished (host down, network cut) is noticed by the
  // kernel even between jobs (libpq ignores them on Unix sockets).
  std::chrono::seconds keepalives_idle{10};
  std::chrono::seconds keepalives_interval{3};
  int keepalives_count = 3;
  std::chrono::milliseconds reconnect_backoff_min{100};
  std::chrono::milliseconds reconnect_backoff_max{5000};
};

class db_executor {
 public:
  explicit db_executor(db_options opts);
  ~db_executor();  // stop()
  db_executor(const db_executor&) = delete;
  db_executor& operator=(const db_executor&) = delete;

  // Runs `f(conn, args...)` on a db thread (args are stored by value and passed as
  // lvalues); resumes on the caller's executor with its value. F must not return pqxx
  // types (results, rows) or references: copy what you need into plain structs.
  //
  // GCC 12 (Debian 12's compiler) destroys a lambda temporary with non-trivial captures
  // TWICE when it is created inside a co_await expression (double free; see
  // equeim/tremotesf2#551). So on GCC < 13 `f` must be trivially destructible: capture
  // nothing (or only ints, pointers, references) and pass strings and the like as args:
  //   co_await db.run([](pqxx::connection& c, const std::string& id) {...}, id);   // ok
  //   co_await db.run([id](pqxx::connection& c) {...});   // id a std::string: rejected
  // The same holds for any coroutine call: never write `co_await g([s = std::string()]{})`.
  template <class F, class... Args>
  auto run(F f, Args... args)
      -> net::awaitable<core::result<std::invoke_result_t<F&, pqxx::connection&, Args&...>>> {
    return run_within(impl_job_timeout(), std::move(f), std::move(args)...);
  }

  // run() with its own deadline (from now) instead of `job_timeout`.
  template <class F, class... Args>
  auto run_within(std::chrono::milliseconds timeout, F f, Args... args)
      -> net::awaitable<core::result<std::invoke_result_t<F&, pqxx::connection&, Args&...>>>;

  // SELECT 1 on a db thread, within `timeout` (0: job_timeout).
  net::awaitable<core::result<void>> ping(std::chrono::milliseconds timeout = std::chrono::milliseconds{0});

  // Threads in reconnect backoff try again on their next job (call it once Postgres is
  // known to answer again, so the first jobs after an outage do not fail on old backoff).
  void retry_now() noexcept;

  // Jobs whose deadline passed while running (their connection was shut down) so far.
  std::size_t aborted() const noexcept;

  // Outcome of the latest job (any thread): true once a job reached the server (SQL
  // errors count as reachable), false after a connection failure. Starts false.
  bool healthy() const noexcept;

  std::size_t in_flight() const noexcept;  // jobs queued or running
  std::size_t pool_size() const noexcept;

  // Blocks until running jobs finish (each at most until its deadline); queued jobs and
  // every later run() complete with errc::unavailable. Idempotent. Never call it from a
  // job (it joins the db threads).
  void stop();

 private:
  using job = std::function<void(pqxx::connection&)>;
  std::chrono::milliseconds impl_job_timeout() const noexcept;
  // Admission (cap) now, then an awaitable that hops to the pool and completes on the
  // awaiting coroutine's executor (which must run one handler at a time: the loop, a
  // strand) at the latest when `timeout` has passed. Await it at once. Nothing of *this is
  // touched after resuming, so the executor may be stopped while callers await.
  net::awaitable<core::result<void>> run_job(job j, std::chrono::milliseconds timeout);

  struct impl;
  std::unique_ptr<impl> impl_;
};

template <class F, class... Args>
auto db_executor::run_within(std::chrono::milliseconds timeout, F f, Args... args)
    -> net::awaitable<core::result<std::invoke_result_t<F&, pqxx::connection&, Args&...>>> {
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
  static_assert(std::is_trivially_destructible_v<F>,
                "db_executor::run: on GCC 12 a job lambda must not capture strings, smart pointers or other "
                "non-trivial values (GCC destroys such a temporary twice inside co_await). Pass them as "
                "extra arguments: db.run([](pqxx::connection& c, const std::string& s) {...}, s)");
#endif
  using value_type = std::invoke_result_t<F&, pqxx::connection&, Args&...>;
  static_assert(!std::is_reference_v<value_type>, "db_executor::run: return a value, not a reference");
  // Shared with the db thread: it stays valid even if this coroutine is destroyed first
  // or stops waiting (deadline); `out` is then filled by the late job and never read.
  // (Named jobs: a lambda with captures inside the co_await expression would hit the GCC
  // 12 bug described above.)
  struct state {
    F fn;
    std::tuple<Args...> args;
    std::optional<std::conditional_t<std::is_void_v<value_type>, bool, value_type>> out;
  };
  auto st = std::make_shared<state>(state{std::move(f), std::tuple<Args...>(std::move(args)...), std::nullopt});
  job j = [st](pqxx::connection& c) {
    std::apply(
        [&](Args&... a) {
          if constexpr (std::is_void_v<value_type>) {
            st->fn(c, a...);
            st->out.emplace(true);
          } else {
            st->out.emplace(st->fn(c, a...));
          }
        },
        st->args);
  };
  auto r = co_await run_job(std::move(j), timeout);
  if (!r) {
    co_return r.error();
  }
  if constexpr (std::is_void_v<value_type>) {
    co_return core::result<void>{};
  } else {
    co_return std::move(*st->out);
  }
}

}  // namespace switchyard::store::postgres
