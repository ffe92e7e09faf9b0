// The cost logger's writer under a steady offered load: rows are added on the loop at
// `--rate` rows per second for `--seconds`, as the gateway's spend observer adds them
// (100 keys, 10 teams, 3 models), and written to Postgres through pg_sink in batches. It
// keeps up when the queue stays small while the load runs and every row is written soon
// after it stops. Prints one line of figures and a JSON line for scripts.
//
//   spend_writer_bench --url postgresql://... [--rate 20000] [--seconds 10]
#include "switchyard/core/ids.hpp"
#include "switchyard/spend/cost_logger.hpp"
#include "switchyard/spend/pg_sink.hpp"
#include "switchyard/store/postgres/db_executor.hpp"
#include "switchyard/store/postgres/migrations.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <pqxx/pqxx>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>

#include <unistd.h>

namespace net = switchyard::net;
namespace pg = switchyard::store::postgres;
namespace spend = switchyard::spend;
using clock_type = std::chrono::steady_clock;

namespace {

// utime + stime of a process, in seconds (0 when it cannot be read).
double proc_cpu_seconds(const std::string& stat_path) {
  std::ifstream f(stat_path);
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const auto close = text.rfind(')');  // the command name may hold spaces
  if (close == std::string::npos) {
    return 0;
  }
  std::istringstream rest(text.substr(close + 2));
  std::string field;
  double ticks = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14 || i == 15) {
      ticks += std::atof(field.c_str());
    }
  }
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

}  // namespace

int main(int argc, char** argv) {
  std::string url;
  double rate = 20000;
  double seconds = 10;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--url") {
      url = argv[i + 1];
    } else if (a == "--rate") {
      rate = std::atof(argv[i + 1]);
    } else if (a == "--seconds") {
      seconds = std::atof(argv[i + 1]);
    }
  }
  if (url.empty()) {
    std::fprintf(stderr, "usage: spend_writer_bench --url DATABASE_URL [--rate R] [--seconds S]\n");
    return 2;
  }
  spdlog::set_level(spdlog::level::warn);
  {
    pqxx::connection c{url};
    pg::migrate_blocking(c, SWITCHYARD_SOURCE_MIGRATIONS);
    pqxx::work tx{c};
    tx.exec0("INSERT INTO organizations (organization_id) VALUES ('bench-org') ON CONFLICT DO NOTHING");
    for (int t = 0; t < 10; ++t) {
      tx.exec0("INSERT INTO teams (team_id, organization_id) VALUES ('bench-team-" + std::to_string(t) +
               "', 'bench-org') ON CONFLICT DO NOTHING");
    }
    for (int k = 0; k < 100; ++k) {
      tx.exec0("INSERT INTO verification_tokens (token, team_id) VALUES ('bench-key-" + std::to_string(k) +
               "', 'bench-team-" + std::to_string(k % 10) + "') ON CONFLICT DO NOTHING");
    }
    tx.commit();
  }
  net::io_context io;
  pg::db_options o;
  o.url = url;
  o.pool_size = 1;
  pg::db_executor db(o);
  spend::pg_sink sink(db);
  spend::logger_options lo;
  // A queue large enough for the whole load: the figure is the writer's rate, not the bound.
  lo.max_queue_rows = 10'000'000;
  lo.max_queue_bytes = std::size_t{8} << 30;
  spend::cost_logger logger(io.get_executor(), sink, lo);
  // The writer's Postgres backend (the executor's one connection), for its CPU time.
  int backend = 0;
  {
    net::io_context setup;
    net::co_spawn(
        setup,
        [&]() -> net::awaitable<void> {
          auto pid = co_await db.run([](pqxx::connection& c) {
            pqxx::nontransaction tx{c};
            return tx.exec1("SELECT pg_backend_pid()")[0].as<int>();
          });
          backend = pid ? *pid : 0;
        },
        net::detached);
    setup.run();
  }
  const double backend_cpu0 = proc_cpu_seconds("/proc/" + std::to_string(backend) + "/stat");
  const double self_cpu0 = proc_cpu_seconds("/proc/self/stat");
  logger.start();

  const auto total = static_cast<std::size_t>(rate * seconds);
  std::size_t max_queued = 0;
  double drain_ms = 0;
  double load_s = 0;
  double backend_cpu_end = 0;
  double self_cpu_end = 0;
  net::co_spawn(
      io,
      [&]() -> net::awaitable<void> {
        net::steady_timer tick(io);
        const auto start = clock_type::now();
        std::size_t added = 0;
        static const char* models[] = {"gpt-4o", "gpt-4o-mini", "claude-sonnet-4-5"};
        while (added < total) {
          // Rows due by now at the offered rate, added in one go every millisecond.
          const double elapsed = std::chrono::duration<double>(clock_type::now() - start).count();
          const auto due = std::min(total, static_cast<std::size_t>(elapsed * rate));
          for (; added < due; ++added) {
            spend::spend_row r;
            r.row_id = switchyard::core::uuid4();
            r.request_id = r.row_id;
            r.call_type = "acompletion";
            r.api_key = "bench-key-" + std::to_string(added % 100);
            r.team_id = "bench-team-" + std::to_string(added % 10);
            r.organization_id = "bench-org";
            r.model = r.model_group = models[added % 3];
            r.provider = "openai";
            r.prompt_tokens = 500;
            r.completion_tokens = 100;
            r.total_tokens = 600;
            r.spend = 0.0025;
            r.start_us = std::chrono::duration_cast<std::chrono::microseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
            r.end_us = r.start_us + 1000;
            logger.add(std::move(r));
          }
          max_queued = std::max(max_queued, logger.stats().queued);
          tick.expires_after(std::chrono::milliseconds(1));
          co_await tick.async_wait(net::as_tuple(net::use_awaitable));
        }
        load_s = std::chrono::duration<double>(clock_type::now() - start).count();
        const auto stop_at = clock_type::now();
        while (logger.stats().written + logger.stats().dropped < total) {
          tick.expires_after(std::chrono::milliseconds(5));
          co_await tick.async_wait(net::as_tuple(net::use_awaitable));
          if (clock_type::now() - stop_at > std::chrono::seconds(120)) {
            break;
          }
        }
        drain_ms = std::chrono::duration<double, std::milli>(clock_type::now() - stop_at).count();
        backend_cpu_end = proc_cpu_seconds("/proc/" + std::to_string(backend) + "/stat");
        self_cpu_end = proc_cpu_seconds("/proc/self/stat");
        co_await logger.stop(clock_type::now() + std::chrono::seconds(5));
      },
      [](std::exception_ptr e) {
        if (e) {
          std::rethrow_exception(e);
        }
      });
  io.run();
  db.stop();
  const auto& s = logger.stats();
  const double achieved = static_cast<double>(s.written) / (load_s + drain_ms / 1000.0);
  // CPU per row: the Postgres backend's, and this process's (adding the rows as the
  // observer does, the queue, building the COPY text, libpq). One core's worth of both is
  // the rate a quiet machine sustains; wall-clock rates above depend on what else runs.
  const double rows = static_cast<double>(std::max<std::size_t>(1, s.written));
  const double pg_us = (backend_cpu_end - backend_cpu0) * 1e6 / rows;
  const double self_us = (self_cpu_end - self_cpu0) * 1e6 / rows;
  std::printf(
      "offered %.0f rows/s for %.1f s: %zu rows written (%zu failed batches); queue at most %zu rows; "
      "all written %.0f ms after the load stopped; %.0f rows/s overall; CPU per row: Postgres %.1f us, "
      "writer process %.1f us\n",
      rate, load_s, s.written, s.flush_failures, max_queued, drain_ms, achieved, pg_us, self_us);
  std::printf("BENCHJSON {\"offered\": %.0f, \"written\": %zu, \"max_queued\": %zu, \"drain_ms\": %.0f, "
              "\"rows_per_s\": %.0f, \"pg_cpu_us_per_row\": %.2f, \"writer_cpu_us_per_row\": %.2f}\n",
              rate, s.written, max_queued, drain_ms, achieved, pg_us, self_us);
  return s.written == total ? 0 : 1;
}
