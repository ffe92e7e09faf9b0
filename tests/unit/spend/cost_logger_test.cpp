// The cost logger with a fake sink (no database): batches, retries after failures, the
// queue bound and the spill files, replay, stop. The fake sink is idempotent by row_id as
// the real one is for rows that may have been written before (maybe_written), and as strict
// as it is for the others: a fresh batch holding a row it already has fails whole (the
// primary key). It can be told to fail, and to commit a batch and then lose the answer.
#include "switchyard/spend/cost_logger.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

using namespace switchyard;
using namespace switchyard::spend;
using namespace std::chrono_literals;

namespace {

class fake_sink final : public spend_sink {
 public:
  bool up = true;
  std::string poison;  // a row id the database refuses (an SQL error, not an outage)
  bool lose_next_answer = false;  // the next batch commits, then its caller sees an outage
  std::size_t batches = 0, failures = 0, max_batch = 0;
  std::size_t fresh_conflicts = 0;  // fresh batches refused for holding a row already written
  std::size_t checked_batches = 0;  // batches with a row marked maybe_written
  std::set<std::string> ids;
  std::map<std::string, double> totals;

  net::awaitable<core::result<sink_result>> write(std::shared_ptr<const std::vector<spend_row>> rows) override {
    if (!up) {
      ++failures;
      co_return core::make_error(core::errc::unavailable, "database down");
    }
    for (const auto& row : *rows) {
      if (!poison.empty() && row.row_id == poison) {
        co_return core::make_error(core::errc::internal, "invalid input syntax for type uuid");
      }
    }
    const bool fresh = std::none_of(rows->begin(), rows->end(), [](const spend_row& r) { return r.maybe_written; });
    if (fresh && std::any_of(rows->begin(), rows->end(), [&](const spend_row& r) { return ids.contains(r.row_id); })) {
      ++fresh_conflicts;
      co_return core::make_error(core::errc::internal, "duplicate key value violates unique constraint");
    }
    if (!fresh) {
      ++checked_batches;
    }
    ++batches;
    max_batch = std::max(max_batch, rows->size());
    sink_result r;
    for (const auto& row : *rows) {
      if (ids.insert(row.row_id).second) {
        ++r.inserted;
        totals[row.api_key] += row.spend;
      }
    }
    for (const auto& [k, v] : totals) {
      r.key_totals.emplace_back(k, v);
    }
    if (lose_next_answer) {
      lose_next_answer = false;
      ++failures;
      co_return core::make_error(core::errc::unavailable, "connection lost after the commit");
    }
    co_return r;
  }
};

spend_row row(int i, const std::string& key = "k") {
  spend_row r;
  r.row_id = "row-" + std::to_string(i);
  r.api_key = key;
  r.spend = 0.01;
  r.start_us = 1'700'000'000'000'000 + i;
  r.end_us = r.start_us + 10;
  return r;
}

struct temp_dir {
  std::filesystem::path path;
  temp_dir() {
    char tmpl[] = "/tmp/switchyard-spill-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~temp_dir() { std::filesystem::remove_all(path); }
};

// Runs `body` on a fresh loop until it returns; fails the test after 60 s (a hang).
template <class F>
void run_loop(F body) {
  net::io_context io;
  bool done = false;
  net::co_spawn(io, body(io.get_executor()), [&](std::exception_ptr e) {
    done = true;
    if (e) {
      std::rethrow_exception(e);
    }
  });
  io.run_for(60s);
  ASSERT_TRUE(done) << "the test's coroutine did not finish";
}

net::awaitable<void> wait_until(std::function<bool()> cond) {
  net::steady_timer t(co_await net::this_coro::executor);
  for (int i = 0; i < 6000 && !cond(); ++i) {
    t.expires_after(10ms);
    co_await t.async_wait(net::as_tuple(net::use_awaitable));
  }
}

logger_options fast(const std::string& dir = {}) {
  logger_options o;
  o.flush_interval = 5ms;
  o.batch_rows = 10;
  o.max_batch_rows = 10;
  o.retry_min = 5ms;
  o.retry_max = 20ms;
  o.spill_dir = dir;
  return o;
}

}  // namespace

TEST(cost_logger, writes_every_row_in_batches_and_reports_key_totals) {
  fake_sink sink;
  std::map<std::string, double> seen;
  run_loop([&](net::any_io_executor ex) -> net::awaitable<void> {
    cost_logger log(ex, sink, fast());
    log.on_key_total = [&](const std::string& k, double v) { seen[k] = v; };
    log.start();
    for (int i = 0; i < 95; ++i) {
      log.add(row(i, i % 2 == 0 ? "a" : "b"));
    }
    co_await wait_until([&] { return sink.ids.size() == 95; });
    co_await log.stop(std::chrono::steady_clock::now() + 5s);
    EXPECT_EQ(log.stats().written, 95u);
  });
  EXPECT_EQ(sink.ids.size(), 95u);
  EXPECT_LE(sink.max_batch, 10u);
  EXPECT_NEAR(seen["a"], 0.48, 1e-9);
  EXPECT_NEAR(seen["b"], 0.47, 1e-9);
}

// A backlog (rows queued faster than one batch a flush) is written in bigger batches, up to
// max_batch_rows and never more, so the writer catches up instead of falling behind.
TEST(cost_logger, a_backlog_goes_in_bigger_batches_up_to_the_limit) {
  fake_sink sink;
  run_loop([&](net::any_io_executor ex) -> net::awaitable<void> {
    auto o = fast();
    o.max_batch_rows = 40;
    cost_logger log(ex, sink, o);
    for (int i = 0; i < 95; ++i) {
      log.add(row(i));
    }
    log.start();
    co_await wait_until([&] { return sink.ids.size() == 95; });
    co_await log.stop(std::chrono::steady_clock::now() + 5s);
    EXPECT_EQ(log.stats().written, 95u);
  });
  EXPECT_EQ(sink.ids.size(), 95u);
  EXPECT_EQ(sink.max_batch, 40u);
  EXPECT_EQ(sink.batches, 3u);
}

TEST(cost_logger, a_database_outage_loses_nothing) {
  fake_sink sink;
  sink.up = false;
  run_loop([&](net::any_io_executor ex) -> net::awaitable<void> {
    cost_logger log(ex, sink, fast());
    log.start();
    for (int i = 0; i < 50; ++i) {
      log.add(row(i));
    }
    co_await wait_until([&] { return sink.failures >= 3; });
    EXPECT_FALSE(log.stats().database_ok);
    EXPECT_EQ(log.stats().queued, 50u);
    sink.up = true;
    co_await wait_until([&] { return sink.ids.size() == 50; });
    EXPECT_TRUE(log.stats().database_ok);
    co_await log.stop(std::chrono::steady_clock::now() + 5s);
  });
  EXPECT_EQ(sink.ids.size(), 50u);
}

// An outage's backlog grows the queue's storage; once it is written, that storage is given
// back (a few batches' worth is kept), so the process' memory does not stay at its peak.
TEST(cost_logger, a_written_backlog_gives_its_storage_back) {
  fake_sink sink;
  sink.up = false;
  run_loop([&](net::any_io_executor ex) -> net::awaitable<void> {
    auto o = fast();
    o.max_batch_rows = 100;
    cost_logger log(ex, sink, o);
    log.start();
    for (int i = 0; i < 5000; ++i) {
      log.add(row(i));
    }
    co_await wait_until([&] { return sink.failures >= 2; });
    EXPECT_GE(log.capacity_rows(), 5000u);
    sink.up = true;
    co_await wait_until([&] { return sink.ids.size() == 5000 && log.stats().backlogs_released > 0; });
    EXPECT_EQ(log.stats().backlogs_released, 1u);
    EXPECT_LE(log.capacity_rows(), 4 * o.max_batch_rows);
    // Steady traffic afterwards keeps its storage and frees nothing more.
    for (int i = 5000; i < 5100; ++i) {
      log.add(row(i));
    }
    co_await wait_until([&] { return sink.ids.size() == 5100; });
    co_await log.stop(std::chrono::steady_clock::now() + 5s);
    EXPECT_EQ(log.stats().backlogs_released, 1u);
  });
  EXPECT_EQ(sink.ids.size(), 5100u);
}

TEST(cost_logger, past_the_bound_rows_spill_and_are_replayed_once) {
  temp_dir dir;
  fake_sink sink;
  sink.up = false;
  auto opts = fast(dir.path.string());
  opts.max_queue_rows = 20;
  run_loop([&](net::any_io_executor ex) -> net::awaitable<void> {
    cost_logger log(ex, sink, opts);
    log.start();
    for (int i = 0; i < 75; ++i) {
      log.add(row(i));
    }
    EXPECT_LE(log.stats().queued, 20u);
    EXPECT_GE(log.stats().spilled, 55u);
    co_await wait_until([&] { return sink.failures >= 2; });
    sink.up = true;
    co_await wait_until([&] { return sink.ids.size() == 75; });
    co_await log.stop(std::chrono::steady_clock::now() + 5s);
    EXPECT_EQ(log.stats().dropped, 0u);
  });
  EXPECT_EQ(sink.ids.size(), 75u);
  // Replayed files are removed.
  std::size_t files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.path)) {
    files += e.path().extension() == ".log" ? 1 : 0;
  }
  EXPECT_EQ(files, 0u);
}

TEST(cost_logger, stop_spills_what_it_cannot_write_and_the_next_start_replays_it) {
  temp_dir dir;
  fake_sink sink;
  sink.up = false;
  run_loop([&](net::any_io_executor ex) -> net::awaitable<void> {
    cost_logger log(ex, sink, fast(dir.path.string()));
    log.start();
    for (int i = 0; i < 30; ++i) {
      log.add(row(i));
    }
    co_await log.stop(std::chrono::steady_clock::now() + 50ms);
    EXPECT_EQ(log.stats().spilled, 30u);
    EXPECT_EQ(log.stats().queued, 0u);
  });
  EXPECT_TRUE(sink.ids.empty());
  // A new process: the spill left behind is written once the database answers.
  sink.up = true;
  run_loop([&](net::any_io_executor ex) -> net::awaitable<void> {
    cost_logger log(ex, sink, fast(dir.path.string()));
    log.start();
    co_await wait_until([&] { return sink.ids.size() == 30; });
    EXPECT_EQ(log.stats().replayed, 30u);
    co_await log.stop(std::chrono::steady_clock::now() + 5s);
  });
  EXPECT_EQ(sink.ids.size(), 30u);
}

TEST(cost_logger, a_spill_file_it_cannot_read_is_kept_and_the_others_are_replayed) {
  temp_dir dir;
  // A directory by a spill file's name (as a file that cannot be read): before, it read as
  // an empty file (or threw from the read) and was removed as if replayed.
  std::filesystem::create_directory(dir.path / "spill-000000000001.log");
  {
    spill_file f(dir.path.string());
    std::vector<spend_row> rows;
    for (int i = 0; i < 12; ++i) {
      rows.push_back(row(i));
    }
    f.append_blocking(rows);  // spill-000000000002.log
  }
  fake_sink sink;
  run_loop([&](net::any_io_executor ex) -> net::awaitable<void> {
    cost_logger log(ex, sink, fast(dir.path.string()));
    log.start();
    co_await wait_until([&] { return sink.ids.size() == 12 && log.stats().unreadable_spills == 1; });
    EXPECT_EQ(log.stats().replayed, 12u);
    EXPECT_EQ(log.stats().unreadable_spills, 1u);
    co_await log.stop(std::chrono::steady_clock::now() + 5s);
  });
  EXPECT_EQ(sink.ids.size(), 12u);
  EXPECT_TRUE(std::filesystem::is_directory(dir.path / "spill-000000000001.log"));
  EXPECT_FALSE(std::filesystem::exists(dir.path / "spill-000000000002.log"));
  EXPECT_EQ(spill_file(dir.path.string()).size_blocking(), 0u) << "a directory has no size to count";
}

TEST(spill_file, a_path_that_cannot_be_read_is_an_error_not_an_empty_file) {
  temp_dir dir;
  const auto r = spill_file::read_blocking((dir.path / "no-such.log").string());
  EXPECT_NE(r.error.find("no-such.log: No such file or directory"), std::string::npos) << r.error;
  const auto d = spill_file::read_blocking(dir.path.string());
  EXPECT_NE(d.error.find("is a directory"), std::string::npos) << d.error;
  EXPECT_TRUE(d.rows.empty());
}

TEST(cost_logger, a_replay_after_a_crash_counts_nothing_twice) {
  temp_dir dir;
  // A spill file whose rows were already written (the process died before removing it).
  {
    spill_file f(dir.path.string());
    std::vector<spend_row> rows;
    for (int i = 0; i < 12; ++i) {
      rows.push_back(row(i));
    }
    f.append_blocking(rows);
  }
  fake_sink sink;
  for (int i = 0; i < 12; ++i) {
    sink.ids.insert("row-" + std::to_string(i));
  }
  run_loop([&](net::any_io_executor ex) -> net::awaitable<void> {
    cost_logger log(ex, sink, fast(dir.path.string()));
    log.start();
    co_await wait_until([&] { return sink.batches >= 2; });
    co_await log.stop(std::chrono::steady_clock::now() + 5s);
    EXPECT_EQ(log.stats().replayed, 0u);  // nothing new
    EXPECT_EQ(log.stats().written, 0u);
    EXPECT_EQ(log.stats().already_written, 12u);
  });
  EXPECT_EQ(sink.fresh_conflicts, 0u);  // rows read back from a file are checked
  EXPECT_EQ(sink.ids.size(), 12u);
  EXPECT_TRUE(sink.totals.empty());
}

// A batch that committed but whose answer was lost (the connection dropped at the commit)
// is written again marked maybe_written, so the sink checks its rows instead of refusing
// them as duplicates: each counts once, none is set aside, and later rows go fresh again.
TEST(cost_logger, a_batch_whose_answer_was_lost_is_checked_when_written_again) {
  temp_dir dir;
  fake_sink sink;
  sink.lose_next_answer = true;
  run_loop([&](net::any_io_executor ex) -> net::awaitable<void> {
    cost_logger log(ex, sink, fast(dir.path.string()));
    log.start();
    for (int i = 0; i < 10; ++i) {
      log.add(row(i));
    }
    co_await wait_until([&] { return sink.checked_batches >= 1 && log.stats().queued == 0; });
    for (int i = 10; i < 20; ++i) {
      log.add(row(i));
    }
    co_await wait_until([&] { return sink.ids.size() == 20 && log.stats().queued == 0; });
    co_await log.stop(std::chrono::steady_clock::now() + 5s);
    EXPECT_EQ(log.stats().written, 10u);  // the other 10 were in before their answer was lost
    EXPECT_EQ(log.stats().already_written, 10u);  // ... and the retry found them there
    EXPECT_EQ(log.stats().rejected, 0u);
  });
  EXPECT_EQ(sink.fresh_conflicts, 0u);
  EXPECT_EQ(sink.checked_batches, 1u);
  EXPECT_EQ(sink.ids.size(), 20u);
  EXPECT_NEAR(sink.totals["k"], 0.20, 1e-9);
}

// Runs `rows` rows (row-0, row-1, ...) through a logger whose sink already holds `already`,
// unmarked: the sink refuses the fresh batch holding it as Postgres would (its primary key).
struct refused_run {
  cost_logger::counters stats;
  bool set_aside_on_disk = false;  // anything in <spill_dir>/rejected
};
refused_run write_with_one_already_there(fake_sink& sink, int rows, const std::string& already) {
  temp_dir dir;
  sink.ids.insert(already);
  refused_run out;
  run_loop([&](net::any_io_executor ex) -> net::awaitable<void> {
    cost_logger log(ex, sink, fast(dir.path.string()));
    log.start();
    for (int i = 0; i < rows; ++i) {
      log.add(row(i));
    }
    co_await wait_until([&] { return sink.checked_batches >= 1 && log.stats().queued == 0; });
    co_await log.stop(std::chrono::steady_clock::now() + 5s);
    out.stats = log.stats();
  });
  const auto aside = dir.path / "rejected";
  out.set_aside_on_disk = std::filesystem::exists(aside) && !std::filesystem::is_empty(aside);
  return out;
}

// A fresh batch refused as such (here: one of its rows is there already, unmarked) is
// written once more whole through the checked path, not row by row: nothing is set aside,
// the row already there counts once.
TEST(cost_logger, a_refused_fresh_batch_is_written_again_checked_before_row_by_row) {
  fake_sink sink;
  const auto run = write_with_one_already_there(sink, 10, "row-3");
  EXPECT_EQ(run.stats.written, 9u);
  EXPECT_EQ(run.stats.rejected, 0u);
  EXPECT_EQ(sink.ids.size(), 10u);
  EXPECT_EQ(sink.fresh_conflicts, 1u);
  EXPECT_EQ(sink.checked_batches, 1u);  // the whole batch once, not ten single rows
  EXPECT_EQ(sink.batches, 1u);
  EXPECT_NEAR(sink.totals["k"], 0.09, 1e-9);
}

// The same for a batch of one row (a quiet gateway writes many): retried checked, not set
// aside.
TEST(cost_logger, a_refused_fresh_row_alone_is_written_again_checked_not_set_aside) {
  fake_sink sink;
  const auto run = write_with_one_already_there(sink, 1, "row-0");
  EXPECT_EQ(run.stats.rejected, 0u);
  EXPECT_FALSE(run.set_aside_on_disk);
  EXPECT_EQ(sink.fresh_conflicts, 1u);
  EXPECT_EQ(sink.checked_batches, 1u);
}

TEST(cost_logger, without_a_spill_directory_overflow_is_counted_as_dropped) {
  fake_sink sink;
  sink.up = false;
  auto opts = fast();
  opts.max_queue_rows = 5;
  run_loop([&](net::any_io_executor ex) -> net::awaitable<void> {
    cost_logger log(ex, sink, opts);
    log.start();
    for (int i = 0; i < 25; ++i) {
      log.add(row(i));
    }
    EXPECT_LE(log.stats().queued, 5u);
    EXPECT_GE(log.stats().dropped, 20u);
    EXPECT_EQ(log.stats().queued + log.stats().dropped, 25u);
    co_await log.stop(std::chrono::steady_clock::now());
  });
}

TEST(spill_file, corrupt_records_are_skipped_and_kept_aside) {
  temp_dir dir;
  std::string path;
  {
    spill_file f(dir.path.string());
    f.append_blocking({row(1), row(2), row(3)});
    f.rotate_blocking();
    auto files = f.closed_files_blocking();
    ASSERT_EQ(files.size(), 1u);
    path = files[0];
  }
  // Flip a byte inside the second record's payload, and append garbage.
  std::string data;
  {
    std::ifstream in(path, std::ios::binary);
    data.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  auto second = data.find("SYS1", 4);
  ASSERT_NE(second, std::string::npos);
  data[second + 40] ^= 0x55;
  data += "garbage that is not a record";
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << data;
  }
  auto r = spill_file::read_blocking(path);
  ASSERT_EQ(r.rows.size(), 2u);
  EXPECT_EQ(r.rows[0].row_id, "row-1");
  EXPECT_EQ(r.rows[1].row_id, "row-3");
  EXPECT_EQ(r.corrupt, 2u);
  EXPECT_TRUE(std::filesystem::exists(path + ".corrupt"));
}

// A long outage spills into files of a bounded size, so that a replay, which reads one
// file at a time, holds a bounded amount in memory; order and content are kept.
TEST(spill_file, a_long_spill_is_cut_into_files_of_a_bounded_size) {
  temp_dir dir;
  constexpr std::uint64_t cap = 4096;
  spill_file f(dir.path.string(), cap);
  for (int batch = 0; batch < 20; ++batch) {
    std::vector<spend_row> rows;
    for (int i = 0; i < 5; ++i) {
      rows.push_back(row(batch * 5 + i));
    }
    f.append_blocking(rows);
  }
  f.rotate_blocking();
  const auto files = f.closed_files_blocking();
  ASSERT_GE(files.size(), 3u);
  std::vector<std::string> ids;
  for (const auto& p : files) {
    // At most the cap, plus the one batch that crossed it.
    EXPECT_LT(std::filesystem::file_size(p), 2 * cap) << p;
    for (auto& r : spill_file::read_blocking(p).rows) {
      ids.push_back(r.row_id);
    }
  }
  ASSERT_EQ(ids.size(), 100u);
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(ids[static_cast<std::size_t>(i)], "row-" + std::to_string(i));
  }
}

TEST(spill_file, round_trip_keeps_every_field) {
  temp_dir dir;
  spend_row r = row(7, "key-hash");
  r.model = "gpt-4o";
  r.tags_json = R"(["x","y"])";
  r.usage_estimated = true;
  r.success = false;
  r.error_type = "rate_limit_error";
  spill_file f(dir.path.string());
  f.append_blocking({r});
  f.rotate_blocking();
  auto back = spill_file::read_blocking(f.closed_files_blocking().at(0));
  ASSERT_EQ(back.rows.size(), 1u);
  const auto& b = back.rows[0];
  EXPECT_EQ(b.row_id, r.row_id);
  EXPECT_EQ(b.api_key, "key-hash");
  EXPECT_EQ(b.model, "gpt-4o");
  EXPECT_EQ(b.tags_json, R"(["x","y"])");
  EXPECT_TRUE(b.usage_estimated);
  EXPECT_FALSE(b.success);
  EXPECT_EQ(b.error_type, "rate_limit_error");
  EXPECT_EQ(b.start_us, r.start_us);
}

TEST(cost_logger, a_row_the_database_refuses_is_kept_aside_and_never_blocks_the_queue) {
  temp_dir dir;
  fake_sink sink;
  sink.poison = "row-5";
  run_loop([&](net::any_io_executor ex) -> net::awaitable<void> {
    cost_logger log(ex, sink, fast(dir.path.string()));
    log.start();
    for (int i = 0; i < 30; ++i) {
      log.add(row(i));
    }
    co_await wait_until([&] { return sink.ids.size() == 29; });
    co_await log.stop(std::chrono::steady_clock::now() + 5s);
    EXPECT_EQ(log.stats().rejected, 1u);
    EXPECT_EQ(log.stats().queued, 0u);
  });
  EXPECT_EQ(sink.ids.size(), 29u);
  EXPECT_FALSE(sink.ids.contains("row-5"));
  spill_file aside((dir.path / "rejected").string());
  auto files = aside.closed_files_blocking();
  ASSERT_EQ(files.size(), 1u);
  auto back = spill_file::read_blocking(files[0]);
  ASSERT_EQ(back.rows.size(), 1u);
  EXPECT_EQ(back.rows[0].row_id, "row-5");
}

TEST(spend_row, json_is_valid_whatever_bytes_the_strings_hold) {
  spend_row r = row(1);
  r.end_user = std::string("bad \xff\xfe utf-8 \xc3\x28 and \"quotes\" \\ \n\x01");
  r.session_id = "caf\xc3\xa9";  // valid UTF-8 kept
  r.tags_json = "not json";
  std::string out;
  append_json(out, r);
  auto j = nlohmann::json::parse(out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << out;
  EXPECT_EQ(j["session_id"], "caf\xc3\xa9");
  EXPECT_NE(j["end_user"].get<std::string>().find("\xEF\xBF\xBD"), std::string::npos);
  EXPECT_EQ(j["request_tags"], nlohmann::json::array());
  auto back = row_from_json(out);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->row_id, r.row_id);
}

TEST(spend_row, stored_json_keeps_small_values_and_bounds_big_ones) {
  EXPECT_EQ(stored_json(R"([{"role":"user","content":"hi"}])"), R"([{"role":"user","content":"hi"}])");
  // NUL characters, which jsonb refuses, become U+FFFD.
  auto nul = nlohmann::json::parse(stored_json(R"(["a\u0000b"])"));
  EXPECT_EQ(nul[0], "a\xEF\xBF\xBD" "b");
  const std::string big = "\"" + std::string(max_stored_bytes, 'y') + "\"";
  auto cut = nlohmann::json::parse(stored_json(big));
  EXPECT_EQ(cut["truncated"], true);
  EXPECT_EQ(cut["bytes"], big.size());
  EXPECT_EQ(cut["text"].get<std::string>().size(), max_stored_bytes);
  // Only the beginning of a bigger value.
  auto head = nlohmann::json::parse(stored_json(R"({"a":)", 100'000));
  EXPECT_EQ(head["truncated"], true);
  EXPECT_EQ(head["bytes"], 100'000);
  // A cut never splits a UTF-8 sequence.
  std::string accents;
  while (accents.size() < max_stored_bytes + 10) {
    accents += "\xC3\xA9";  // e-acute
  }
  auto u = nlohmann::json::parse(stored_json("\"" + accents + "\""));
  EXPECT_EQ(u["text"].get<std::string>().size() % 2, 1u) << "the opening quote and whole two-byte characters";
  auto s = nlohmann::json::parse(stored_stream_response(false, "done", false));
  EXPECT_EQ(s["object"], "text_completion");
  EXPECT_EQ(s["choices"][0]["text"], "done");
  EXPECT_FALSE(s.contains("truncated"));
}

// spend_logs' own COPY line: times as timestamptz text to the microsecond (before 1970
// too), empty optional strings as NULL, and the years it cannot spell refused.
TEST(spend_row, log_copy_lines_spell_times_and_nulls) {
  spend_row r = row(0);
  r.start_us = -1;                    // 1969-12-31 23:59:59.999999
  r.end_us = 951'782'400'000'001;     // 2000-02-29 00:00:00.000001
  r.completion_start_us = 0;          // none
  std::string line;
  append_log_copy_line(line, r);
  ASSERT_FALSE(line.empty());
  EXPECT_EQ(line.back(), '\n');
  std::vector<std::string> f;
  std::size_t at = 0;
  for (std::size_t tab; (tab = line.find('\t', at)) != std::string::npos; at = tab + 1) {
    f.push_back(line.substr(at, tab - at));
  }
  f.push_back(line.substr(at, line.size() - at - 1));
  ASSERT_EQ(f.size(), 38u);
  EXPECT_EQ(f[0], "row-0");
  EXPECT_EQ(f[4], "\\N");  // key_alias
  EXPECT_EQ(f[22], "1969-12-31 23:59:59.999999+00");
  EXPECT_EQ(f[23], "2000-02-29 00:00:00.000001+00");
  EXPECT_EQ(f[24], "\\N");
  EXPECT_EQ(f[25], "2147483647");  // the duration in ms, clamped to an integer column
  EXPECT_EQ(f[26], "success");
  EXPECT_TRUE(log_copy_can_write(r));
  // Times in one second, the next second, a second of another day, then the first again:
  // the text up to the second is made once per second and must follow every change.
  const std::pair<std::int64_t, const char*> times[] = {
      {951'782'400'000'002, "2000-02-29 00:00:00.000002+00"},
      {951'782'400'999'999, "2000-02-29 00:00:00.999999+00"},
      {951'782'401'000'000, "2000-02-29 00:00:01.000000+00"},
      {951'868'799'500'000, "2000-02-29 23:59:59.500000+00"},
      {951'868'800'500'000, "2000-03-01 00:00:00.500000+00"},
      {-1'000'001, "1969-12-31 23:59:58.999999+00"},
      {951'782'400'000'003, "2000-02-29 00:00:00.000003+00"},
  };
  for (const auto& [us, text] : times) {
    r.start_us = us;
    line.clear();
    append_log_copy_line(line, r);
    const std::size_t from = [&] {
      std::size_t p = 0;
      for (int i = 0; i < 22; ++i) {
        p = line.find('\t', p) + 1;
      }
      return p;
    }();
    EXPECT_EQ(line.substr(from, line.find('\t', from) - from), text);
  }
  r.start_us = -62'000'000'000'000'000;  // year 5 BC
  EXPECT_FALSE(log_copy_can_write(r));
}
