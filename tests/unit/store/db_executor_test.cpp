#include "switchyard/store/postgres/db_executor.hpp"

#include "store_test_support.hpp"

#include <pqxx/pqxx>

#include <atomic>
#include <thread>

namespace {

using namespace store_test;
namespace core = switchyard::core;
namespace pg = switchyard::store::postgres;

class db_executor_test : public ::testing::Test {
 protected:
  void SetUp() override {
    url = env_or_empty("SWITCHYARD_TEST_DATABASE_URL");
    if (url.empty()) {
      FAIL() << missing_env_message("SWITCHYARD_TEST_DATABASE_URL");
    }
  }

  pg::db_options options(std::size_t pool = 2) const {
    pg::db_options o;
    o.url = url;
    o.pool_size = pool;
    return o;
  }

  template <class F>
  void run(F f, std::chrono::seconds limit = 60s) {
    run_coro(io, std::move(f), limit);
  }

  std::string url;
  net::io_context io;
};

struct key_row {  // what a repository job returns: a plain struct, no pqxx types
  long long id = 0;
  std::string name;
};

TEST_F(db_executor_test, run_returns_values_and_void) {
  pg::db_executor db{options()};
  run([&]() -> net::awaitable<void> {
    auto n = co_await db.run([](pqxx::connection& c) {
      pqxx::read_transaction tx{c};
      return tx.exec1("SELECT 20 + 22")[0].as<int>();
    });
    CO_ASSERT(n.has_value(), n.error().message);
    EXPECT_EQ(*n, 42);

    auto row = co_await db.run([](pqxx::connection& c) {
      pqxx::read_transaction tx{c};
      auto r = tx.exec_params1("SELECT $1::bigint, $2::text", 7, "seven");
      return key_row{r[0].as<long long>(), r[1].as<std::string>()};
    });
    CO_ASSERT(row.has_value(), row.error().message);
    EXPECT_EQ(row->id, 7);
    EXPECT_EQ(row->name, "seven");

    bool ran = false;
    auto v = co_await db.run([&ran](pqxx::connection& c) {
      pqxx::nontransaction tx{c};
      tx.exec("SELECT 1");
      ran = true;
    });
    EXPECT_TRUE(v.has_value());
    EXPECT_TRUE(ran);

    auto p = co_await db.ping();
    EXPECT_TRUE(p.has_value());
    EXPECT_TRUE(db.healthy());
    EXPECT_EQ(db.in_flight(), 0u);
  });
}

TEST_F(db_executor_test, arguments_reach_the_job_including_move_only_ones) {
  pg::db_executor db{options()};
  run([&]() -> net::awaitable<void> {
    std::string name = "seven";
    auto owned = std::make_unique<std::string>("moved");
    auto r = co_await db.run(
        [](pqxx::connection& c, const std::string& n, std::unique_ptr<std::string>& p, int k) {
          pqxx::read_transaction tx{c};
          auto row = tx.exec_params1("SELECT $1::text || ':' || $2::text || ':' || $3::int", n, *p, k);
          return row[0].as<std::string>();
        },
        name, std::move(owned), 7);
    CO_ASSERT(r.has_value(), r.error().message);
    EXPECT_EQ(*r, "seven:moved:7");

  });
}

TEST_F(db_executor_test, sql_error_is_internal_and_connection_survives) {
  pg::db_executor db{options(1)};
  run([&]() -> net::awaitable<void> {
    auto r = co_await db.run([](pqxx::connection& c) {
      pqxx::read_transaction tx{c};
      return tx.exec("SELECT * FROM no_such_table_here").size();
    });
    CO_ASSERT(!r.has_value(), "expected an error");
    EXPECT_EQ(r.error().code, core::errc::internal);
    EXPECT_NE(r.error().message.find("no_such_table_here"), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find("42P01"), std::string::npos) << r.error().message;
    EXPECT_TRUE(pg::is_job_failure(r.error())) << "Postgres' text: for the log, not a client";
    EXPECT_FALSE(pg::is_unavailable_failure(r.error())) << "an SQL error is not an outage";
    EXPECT_TRUE(db.healthy()) << "an SQL error means the server answered";

    auto pid1 = co_await db.run([](pqxx::connection& c) {
      pqxx::nontransaction tx{c};
      return tx.exec1("SELECT pg_backend_pid()")[0].as<int>();
    });
    auto bad = co_await db.run([](pqxx::connection& c) {
      pqxx::work tx{c};
      tx.exec("SELECT 1/0");
    });
    EXPECT_FALSE(bad.has_value());
    auto pid2 = co_await db.run([](pqxx::connection& c) {
      pqxx::nontransaction tx{c};
      return tx.exec1("SELECT pg_backend_pid()")[0].as<int>();
    });
    CO_ASSERT(pid1 && pid2, "pid queries failed");
    EXPECT_EQ(*pid1, *pid2) << "an SQL error must not cost the connection";
  });
}

TEST_F(db_executor_test, job_exception_is_internal) {
  pg::db_executor db{options(1)};
  run([&]() -> net::awaitable<void> {
    auto r = co_await db.run([](pqxx::connection&) -> int { throw std::runtime_error("boom in job"); });
    CO_ASSERT(!r.has_value(), "expected an error");
    EXPECT_EQ(r.error().code, core::errc::internal);
    EXPECT_NE(r.error().message.find("boom in job"), std::string::npos) << r.error().message;
    EXPECT_TRUE(pg::is_job_failure(r.error()));
    auto ok = co_await db.ping();
    EXPECT_TRUE(ok.has_value());
  });
}

TEST_F(db_executor_test, job_runs_on_a_db_thread_and_resumes_on_the_loop) {
  pg::db_executor db{options()};
  run([&]() -> net::awaitable<void> {
    auto loop_thread = std::this_thread::get_id();
    auto job_thread = co_await db.run([](pqxx::connection&) { return std::this_thread::get_id(); });
    CO_ASSERT(job_thread.has_value(), job_thread.error().message);
    EXPECT_NE(*job_thread, loop_thread);
    EXPECT_EQ(std::this_thread::get_id(), loop_thread);
  });
}

// A query in flight must leave the loop free. The query here cannot finish until the loop
// itself lets it: it waits in Postgres for an advisory lock that the test holds, and the
// test releases the lock only from a handler on the loop, after the loop has served other
// work while the query waited. If db.run blocked the loop, the release could never run and
// the test would end at run()'s time limit. No timing is measured.
TEST_F(db_executor_test, a_query_in_flight_does_not_block_the_loop) {
  constexpr long long lock_id = 7340021;
  pqxx::connection holder{url};
  {
    pqxx::nontransaction tx{holder};
    tx.exec("SELECT pg_advisory_lock(" + std::to_string(lock_id) + ")");
  }
  const auto waiters = [&] {
    pqxx::nontransaction tx{holder};
    return tx.exec1("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND objid = " +
                    std::to_string(lock_id))[0]
        .as<int>();
  };
  pg::db_executor db{options()};
  run([&]() -> net::awaitable<void> {
    auto ex = co_await net::this_coro::executor;
    co_await db.ping();
    bool done = false;
    std::string error;
    auto job = [&]() -> net::awaitable<void> {
      auto r = co_await db.run([](pqxx::connection& c) {
        pqxx::nontransaction tx{c};
        tx.exec("SELECT pg_advisory_lock(" + std::to_string(lock_id) + ")");
        tx.exec("SELECT pg_advisory_unlock(" + std::to_string(lock_id) + ")");
      });
      if (!r) error = r.error().message;
      done = true;
    };
    net::co_spawn(ex, job, net::detached);
    // Until Postgres shows the query waiting for the lock, the loop keeps turning.
    int turns = 0;
    while (waiters() == 0) {
      co_await net::post(ex, net::use_awaitable);
      ++turns;
    }
    // The query is in flight: the loop still serves other work, and the query cannot end.
    for (int i = 0; i < 100; ++i) {
      co_await net::post(ex, net::use_awaitable);
      ++turns;
    }
    EXPECT_FALSE(done) << "the query ended while the lock was held";
    {
      pqxx::nontransaction tx{holder};
      tx.exec("SELECT pg_advisory_unlock(" + std::to_string(lock_id) + ")");
    }
    while (!done) co_await sleep_for(1ms);
    EXPECT_EQ(error, "");
    EXPECT_GE(turns, 100);
  });
}

TEST_F(db_executor_test, jobs_run_in_parallel_on_the_pool) {
  pg::db_executor db{options(2)};
  run([&]() -> net::awaitable<void> {
    auto ex = co_await net::this_coro::executor;
    std::vector<int> pids;
    int finished = 0;
    // Each job waits (on its worker thread) until both jobs have started: they can only
    // both get there if they run at the same time, on two threads. Serialised on one
    // thread, the first would give up after 20 s and report -1.
    std::atomic<int> started{0};
    auto job = [&]() -> net::awaitable<void> {
      auto r = co_await db.run([&started](pqxx::connection& c) {
        started.fetch_add(1);
        const auto until = steady::now() + 20s;
        while (started.load() < 2 && steady::now() < until) {
          std::this_thread::sleep_for(1ms);
        }
        const bool together = started.load() >= 2;
        pqxx::nontransaction tx{c};
        const int pid = tx.exec1("SELECT pg_backend_pid()")[0].as<int>();
        return together ? pid : -1;
      });
      if (r) {
        pids.push_back(*r);
      }
      ++finished;
    };
    co_await db.ping();
    co_await db.ping();
    net::co_spawn(ex, job, net::detached);
    net::co_spawn(ex, job, net::detached);
    while (finished < 2) {
      co_await sleep_for(5ms);
    }
    CO_ASSERT(pids.size() == 2u, "a job failed");
    EXPECT_NE(pids[0], -1) << "the two jobs did not run at the same time";
    EXPECT_NE(pids[1], -1) << "the two jobs did not run at the same time";
    EXPECT_NE(pids[0], pids[1]) << "one connection per thread";
  });
}

TEST_F(db_executor_test, jobs_beyond_the_cap_fail_fast_with_busy) {
  auto o = options(1);
  o.max_in_flight = 2;
  pg::db_executor db{o};
  run([&]() -> net::awaitable<void> {
    auto ex = co_await net::this_coro::executor;
    co_await db.ping();
    int ok = 0;
    int finished = 0;
    auto slow = [&]() -> net::awaitable<void> {
      auto r = co_await db.run([](pqxx::connection& c) {
        pqxx::nontransaction tx{c};
        tx.exec("SELECT pg_sleep(0.2)");
      });
      ok += r.has_value() ? 1 : 0;
      ++finished;
    };
    net::co_spawn(ex, slow, net::detached);
    net::co_spawn(ex, slow, net::detached);
    co_await sleep_for(20ms);
    EXPECT_EQ(db.in_flight(), 2u);
    auto t0 = steady::now();
    auto third = co_await db.run([](pqxx::connection&) { return 1; });
    EXPECT_LT(since(t0), 50ms);
    CO_ASSERT(!third.has_value(), "the third job should be refused");
    EXPECT_EQ(third.error().code, core::errc::unavailable);
    EXPECT_NE(third.error().message.find("busy"), std::string::npos) << third.error().message;
    EXPECT_FALSE(pg::is_job_failure(third.error())) << "the gateway's own words, not a job's failure";
    EXPECT_TRUE(pg::is_unavailable_failure(third.error()));
    while (finished < 2) {
      co_await sleep_for(5ms);
    }
    EXPECT_EQ(ok, 2);
    auto after = co_await db.run([](pqxx::connection&) { return 1; });
    EXPECT_TRUE(after.has_value()) << "capacity is back once jobs finish";
  });
}

TEST_F(db_executor_test, stop_completes_queued_jobs_with_unavailable) {
  auto db = std::make_unique<pg::db_executor>(options(1));
  run([&]() -> net::awaitable<void> {
    auto ex = co_await net::this_coro::executor;
    co_await db->ping();
    std::vector<std::optional<core::result<int>>> results(3);
    auto job = [&](int i) {
      return [&, i]() -> net::awaitable<void> {
        results[static_cast<std::size_t>(i)] = co_await db->run([](pqxx::connection& c) {
          pqxx::nontransaction tx{c};
          tx.exec("SELECT pg_sleep(0.3)");
          return 1;
        });
      };
    };
    for (int i = 0; i < 3; ++i) {
      net::co_spawn(ex, job(i), net::detached);
    }
    co_await sleep_for(50ms);
    db->stop();  // blocks until the running job finishes; the queued ones fail fast
    auto late = co_await db->run([](pqxx::connection&) { return 1; });
    CO_ASSERT(!late.has_value(), "run() after stop() must fail");
    EXPECT_EQ(late.error().code, core::errc::unavailable);
    for (int i = 0; i < 100 && !(results[0] && results[1] && results[2]); ++i) {
      co_await sleep_for(10ms);
    }
    CO_ASSERT(results[0] && results[1] && results[2], "every queued job must complete");
    int ok = 0;
    int unavailable = 0;
    for (auto& r : results) {
      if (r->has_value()) {
        ++ok;
      } else if (r->error().code == core::errc::unavailable) {
        ++unavailable;
      }
    }
    EXPECT_EQ(ok, 1);
    EXPECT_EQ(unavailable, 2);
    db.reset();  // destructor after stop(): fine
  });
}

TEST_F(db_executor_test, backend_killed_mid_query_is_unavailable_then_reconnects) {
  pg::db_executor db{options(1)};
  run([&]() -> net::awaitable<void> {
    auto ex = co_await net::this_coro::executor;
    auto pid = co_await db.run([](pqxx::connection& c) {
      pqxx::nontransaction tx{c};
      return tx.exec1("SELECT pg_backend_pid()")[0].as<int>();
    });
    CO_ASSERT(pid.has_value(), pid.error().message);
    std::optional<core::result<void>> slow;
    net::co_spawn(
        ex,
        [&]() -> net::awaitable<void> {
          slow = co_await db.run([](pqxx::connection& c) {
            pqxx::nontransaction tx{c};
            tx.exec("SELECT pg_sleep(5)");
          });
        },
        net::detached);
    co_await sleep_for(200ms);
    {
      pqxx::connection admin{url};  // blocking, briefly: fine in a test
      pqxx::nontransaction tx{admin};
      tx.exec_params("SELECT pg_terminate_backend($1)", *pid);
    }
    for (int i = 0; i < 300 && !slow; ++i) {
      co_await sleep_for(10ms);
    }
    CO_ASSERT(slow.has_value(), "the killed job did not complete");
    CO_ASSERT(!slow->has_value(), "the killed job succeeded?");
    EXPECT_EQ(slow->error().code, core::errc::unavailable) << slow->error().message;
    EXPECT_TRUE(pg::is_unavailable_failure(slow->error())) << slow->error().message;
    EXPECT_FALSE(db.healthy());

    auto pid2 = co_await db.run([](pqxx::connection& c) {
      pqxx::nontransaction tx{c};
      return tx.exec1("SELECT pg_backend_pid()")[0].as<int>();
    });
    CO_ASSERT(pid2.has_value(), "the next job must reconnect at once: " + pid2.error().message);
    EXPECT_NE(*pid2, *pid);
    EXPECT_TRUE(db.healthy());
  });
}

TEST_F(db_executor_test, unreachable_server_fails_fast_then_backs_off) {
  pg::db_options o;
  o.url = "postgresql://switchyard@127.0.0.1:1/none";  // nothing listens on port 1
  o.pool_size = 1;
  o.reconnect_backoff_min = 500ms;
  pg::db_executor db{o};
  run([&]() -> net::awaitable<void> {
    auto t0 = steady::now();
    auto r = co_await db.ping();
    EXPECT_LT(since(t0), 1000ms);
    CO_ASSERT(!r.has_value(), "ping to nowhere succeeded");
    EXPECT_EQ(r.error().code, core::errc::unavailable);
    EXPECT_TRUE(pg::is_unavailable_failure(r.error())) << "libpq's text names the host: " << r.error().message;
    EXPECT_FALSE(db.healthy());

    t0 = steady::now();
    auto again = co_await db.ping();  // within the backoff: no connect attempt at all
    EXPECT_LT(since(t0), 50ms);
    CO_ASSERT(!again.has_value(), "second ping succeeded");
    EXPECT_EQ(again.error().code, core::errc::unavailable);
    EXPECT_NE(again.error().message.find("reconnecting"), std::string::npos) << again.error().message;
    EXPECT_TRUE(pg::is_unavailable_failure(again.error()));
  });
}

TEST_F(db_executor_test, connect_timeout_bounds_a_silent_server) {
  silent_server silent{io};
  pg::db_options o;
  o.url = "postgresql://switchyard@127.0.0.1:" + std::to_string(silent.port()) + "/none";
  o.pool_size = 1;
  o.connect_timeout = 2s;  // libpq's minimum
  pg::db_executor db{o};
  run([&]() -> net::awaitable<void> {
    auto t0 = steady::now();
    auto r = co_await db.ping();
    auto took = since(t0);
    EXPECT_GE(took, 1500ms) << "the server never answers: only the timeout can end this";
    EXPECT_LT(took, 3000ms) << "connect_timeout was not applied";
    CO_ASSERT(!r.has_value(), "connected to a silent server?");
    EXPECT_EQ(r.error().code, core::errc::unavailable);
    EXPECT_FALSE(db.healthy());
  });
}

// Postgres stopped under a live executor, then started again: the same executor recovers.
TEST_F(db_executor_test, outage_fails_fast_and_recovers) {
  private_server server{private_server::kind::postgres};
  auto o = options(2);
  o.url = server.url();
  o.reconnect_backoff_max = 1000ms;
  pg::db_executor db{o};
  run(
      [&]() -> net::awaitable<void> {
        auto ex = co_await net::this_coro::executor;
        // Both threads connected (two concurrent jobs).
        int warm = 0;
        auto warm_job = [&]() -> net::awaitable<void> {
          auto r = co_await db.run([](pqxx::connection& c) {
            pqxx::nontransaction tx{c};
            tx.exec("SELECT pg_sleep(0.1)");
          });
          warm += r.has_value() ? 1 : 0;
        };
        net::co_spawn(ex, warm_job, net::detached);
        net::co_spawn(ex, warm_job, net::detached);
        for (int i = 0; i < 200 && warm < 2; ++i) {
          co_await sleep_for(10ms);
        }
        CO_ASSERT(warm == 2, "warm-up failed");
        EXPECT_TRUE(db.healthy());

        server.stop();  // blocking in the test is fine: nothing else runs on this loop now

        for (int i = 0; i < 6; ++i) {
          auto t0 = steady::now();
          auto r = co_await db.ping();
          auto took = since(t0);
          EXPECT_LT(took, 1000ms) << "attempt " << i << " did not fail fast";
          CO_ASSERT(!r.has_value(), "ping succeeded with Postgres stopped");
          EXPECT_EQ(r.error().code, core::errc::unavailable) << r.error().message;
          EXPECT_FALSE(db.healthy());
        }

        server.start();
        bool back = co_await eventually(
            [&]() -> net::awaitable<bool> { co_return (co_await db.ping()).has_value(); }, 20000ms, 100ms);
        CO_ASSERT(back, "the executor did not recover after Postgres came back");
        EXPECT_TRUE(db.healthy());
        // Both threads reconnect (each on its own schedule).
        bool both = co_await eventually(
            [&]() -> net::awaitable<bool> {
              auto a = db.run([](pqxx::connection& c) {
                pqxx::nontransaction tx{c};
                tx.exec("SELECT pg_sleep(0.05)");
              });
              auto r1 = co_await std::move(a);
              auto r2 = co_await db.ping();
              co_return r1.has_value() && r2.has_value();
            },
            10000ms, 100ms);
        EXPECT_TRUE(both);
      },
      120s);
}

}  // namespace

// Deadlines. Bounds are generous upper limits (a loaded machine), never punctuality checks.
namespace deadlines {

net::awaitable<core::result<int>> backend_pid(pg::db_executor& db) {
  co_return co_await db.run([](pqxx::connection& c) {
    pqxx::nontransaction tx{c};
    return tx.exec1("SELECT pg_backend_pid()")[0].as<int>();
  });
}

}  // namespace deadlines

// A statement that outlives its deadline: the caller has its timeout on time, the db thread
// is freed (its connection shut down and replaced), and the next job runs on a fresh one.
TEST_F(db_executor_test, statement_past_its_deadline_times_out_and_the_next_job_runs) {
  auto o = options(1);
  o.statement_timeout = 0ms;  // only our deadline: the server would sleep the full 5 s
  pg::db_executor db{o};
  run([&]() -> net::awaitable<void> {
    auto ex = co_await net::this_coro::executor;
    auto pid1 = co_await deadlines::backend_pid(db);
    CO_ASSERT(pid1.has_value(), pid1.error().message);

    // A job queued behind the sleeper, with a deadline of its own: it fails by then and
    // never runs (it does not wait for the sleeper).
    std::optional<core::result<int>> queued;
    std::optional<ms> queued_took;
    bool queued_ran = false;
    auto behind = [&]() -> net::awaitable<void> {
      auto t0 = steady::now();
      queued = co_await db.run_within(
          300ms,
          [](pqxx::connection&, bool* ran) {
            *ran = true;
            return 1;
          },
          &queued_ran);
      queued_took = since(t0);
    };

    std::atomic<bool> sleeping{false};
    std::optional<core::result<void>> slept;
    std::optional<ms> took_opt;
    auto sleeper = [&]() -> net::awaitable<void> {
      auto t0 = steady::now();
      slept = co_await db.run_within(
          700ms,
          [](pqxx::connection& c, std::atomic<bool>* started) {
            started->store(true);
            pqxx::nontransaction tx{c};
            tx.exec("SELECT pg_sleep(5)");
          },
          &sleeping);
      took_opt = since(t0);
    };
    net::co_spawn(ex, sleeper, net::detached);
    // The second job is queued only once the first one holds the (only) db thread.
    bool started = co_await eventually([&]() -> net::awaitable<bool> { co_return sleeping.load(); }, 5000ms, 5ms);
    CO_ASSERT(started, "the sleeper never started");
    net::co_spawn(ex, behind, net::detached);
    bool slept_done = co_await eventually([&]() -> net::awaitable<bool> { co_return slept.has_value(); }, 10000ms, 10ms);
    CO_ASSERT(slept_done, "the sleeper's caller never resumed");
    auto& r = *slept;
    auto took = *took_opt;
    CO_ASSERT(!r.has_value(), "pg_sleep(5) finished within 700 ms?");
    EXPECT_EQ(r.error().code, core::errc::unavailable);
    EXPECT_NE(r.error().message.find("timeout"), std::string::npos) << r.error().message;
    EXPECT_GE(took, 650ms);
    EXPECT_LT(took, 5000ms) << "the deadline did not end the wait";

    bool queued_done = co_await eventually([&]() -> net::awaitable<bool> { co_return queued.has_value(); }, 5000ms, 10ms);
    CO_ASSERT(queued_done, "the queued job never completed");
    EXPECT_FALSE(queued->has_value());
    EXPECT_EQ(queued->error().code, core::errc::unavailable);
    EXPECT_LT(*queued_took, 5000ms);

    // The db thread is free: the next job runs at once, on a new connection.
    auto t1 = steady::now();
    auto pid2 = co_await deadlines::backend_pid(db);
    CO_ASSERT(pid2.has_value(), pid2.error().message);
    EXPECT_LT(since(t1), 5000ms);
    EXPECT_NE(*pid2, *pid1) << "the stuck connection should have been replaced";
    EXPECT_FALSE(queued_ran) << "a job past its deadline must not run";
    EXPECT_EQ(db.aborted(), 1u);
    EXPECT_EQ(db.in_flight(), 0u);
    EXPECT_TRUE(db.healthy());
  });
}

// The server's own statement_timeout ends a slow statement: a timeout (unavailable, not an
// SQL error), and the connection stays (nothing was shut down on our side).
TEST_F(db_executor_test, statement_timeout_is_set_on_every_session) {
  auto o = options(1);
  o.statement_timeout = 300ms;
  o.job_timeout = 20000ms;
  pg::db_executor db{o};
  run([&]() -> net::awaitable<void> {
    auto pid1 = co_await deadlines::backend_pid(db);
    CO_ASSERT(pid1.has_value(), pid1.error().message);
    auto t0 = steady::now();
    auto r = co_await db.run([](pqxx::connection& c) {
      pqxx::nontransaction tx{c};
      tx.exec("SELECT pg_sleep(10)");
    });
    CO_ASSERT(!r.has_value(), "pg_sleep(10) outlived statement_timeout");
    EXPECT_LT(since(t0), 8000ms);
    EXPECT_EQ(r.error().code, core::errc::unavailable);
    EXPECT_NE(r.error().message.find("timeout"), std::string::npos) << r.error().message;
    auto pid2 = co_await deadlines::backend_pid(db);
    CO_ASSERT(pid2.has_value(), pid2.error().message);
    EXPECT_EQ(*pid2, *pid1) << "the server ended the statement; the session is fine";
    EXPECT_EQ(db.aborted(), 0u);
  });
}

// Every Postgres process paused (SIGSTOP): calls end by their deadlines, db threads are not
// lost, and after SIGCONT the same executor works again.
TEST_F(db_executor_test, paused_server_costs_each_call_its_deadline_only) {
  private_server server{private_server::kind::postgres};
  auto o = options(2);
  o.url = server.url();
  o.job_timeout = 1000ms;
  o.reconnect_backoff_max = 1000ms;
  pg::db_executor db{o};
  run(
      [&]() -> net::awaitable<void> {
        auto pid1 = co_await deadlines::backend_pid(db);
        CO_ASSERT(pid1.has_value(), pid1.error().message);
        server.signal_postgres("STOP");
        struct resume {
          private_server& s;
          ~resume() {
            try {
              s.signal_postgres("CONT");
            } catch (...) {
            }
          }
        } always{server};
        for (int i = 0; i < 5; ++i) {
          auto t0 = steady::now();
          auto r = co_await db.ping();
          EXPECT_LT(since(t0), 4000ms) << "call " << i << " outlived its 1 s deadline by far";
          CO_ASSERT(!r.has_value(), "a paused server answered?");
          EXPECT_EQ(r.error().code, core::errc::unavailable) << r.error().message;
        }
        EXPECT_LE(db.in_flight(), 5u) << "jobs piled up";
        server.signal_postgres("CONT");
        db.retry_now();
        bool back = co_await eventually(
            [&]() -> net::awaitable<bool> { co_return (co_await db.ping()).has_value(); }, 20000ms, 100ms);
        EXPECT_TRUE(back) << "no recovery after SIGCONT";
      },
      120s);
}
