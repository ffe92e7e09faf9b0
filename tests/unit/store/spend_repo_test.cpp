// spend_repo against a real Postgres: rows land once (a replayed batch adds nothing), the
// totals and daily rollups move by the inserted rows only, day partitions are made on
// first use, and the retention drops whole days.
#include "switchyard/store/postgres/spend_repo.hpp"
#include "switchyard/store/postgres/spend_query_repo.hpp"

#include "switchyard/spend/pg_sink.hpp"
#include "switchyard/spend/record.hpp"
#include "switchyard/store/postgres/db_executor.hpp"
#include "switchyard/store/postgres/migrations.hpp"

#include "store_test_support.hpp"

#include <nlohmann/json.hpp>
#include <fstream>
#include <iterator>
#include <pqxx/pqxx>
#include <optional>
#include <thread>

namespace {

using namespace store_test;
namespace pg = switchyard::store::postgres;
using json = nlohmann::json;

class spend_repo_test : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server_url = env_or_empty("SWITCHYARD_TEST_DATABASE_URL");
    if (server_url.empty()) {
      FAIL() << missing_env_message("SWITCHYARD_TEST_DATABASE_URL");
    }
    db = std::make_unique<fresh_database>(server_url);
    conn = std::make_unique<pqxx::connection>(db->url());
    pg::migrate_blocking(*conn, source_dir + "/migrations");
    pqxx::work tx{*conn};
    tx.exec0("INSERT INTO organizations (organization_id) VALUES ('o1')");
    tx.exec0("INSERT INTO teams (team_id, organization_id) VALUES ('t1', 'o1')");
    tx.exec0("INSERT INTO users (user_id) VALUES ('u1')");
    tx.exec0("INSERT INTO verification_tokens (token, user_id, team_id) VALUES ('k1', 'u1', 't1'), ('k2', NULL, 't1')");
    tx.commit();
  }

  static json row(const std::string& id, const std::string& key, double spend, std::int64_t start_us,
                  bool success = true) {
    return {{"row_id", id},          {"request_id", "req-" + id}, {"call_type", "acompletion"},
            {"api_key", key},        {"user_id", key == "k1" ? "u1" : ""}, {"team_id", "t1"},
            {"organization_id", "o1"}, {"end_user", "cust-1"},      {"model", "gpt-4o"},
            {"model_group", "gpt-4o"}, {"custom_llm_provider", "openai"}, {"prompt_tokens", 10},
            {"completion_tokens", 5}, {"total_tokens", 15},        {"spend", spend},
            {"start_us", start_us},  {"end_us", start_us + 1000}, {"success", success},
            {"status_code", success ? 200 : 500}, {"request_tags", json::array({"a", "b"})}};
  }

  // A db_executor of one connection to the test's database.
  pg::db_options one_connection(std::optional<std::chrono::milliseconds> statement_timeout = std::nullopt) const {
    pg::db_options o;
    o.url = db->url();
    o.pool_size = 1;
    if (statement_timeout) {
      o.statement_timeout = *statement_timeout;
    }
    return o;
  }

  double scalar(const std::string& sql) {
    pqxx::read_transaction tx{*conn};
    return tx.exec1(sql)[0].as<double>();
  }

  std::unique_ptr<fresh_database> db;
  std::unique_ptr<pqxx::connection> conn;
};

constexpr std::int64_t day1 = 1'764'806'400'000'000;  // 2025-12-04 00:00:00 UTC, in microseconds
constexpr std::int64_t hour = 3'600'000'000;

TEST_F(spend_repo_test, rows_totals_and_rollups_count_once) {
  json batch = json::array({row("00000000-0000-4000-8000-000000000001", "k1", 0.5, day1 + hour),
                            row("00000000-0000-4000-8000-000000000002", "k2", 0.25, day1 + 2 * hour, false),
                            row("00000000-0000-4000-8000-000000000003", "k1", 1.0, day1 + 30 * hour)});
  auto r = pg::write_spend_batch_blocking(*conn, batch.dump());
  EXPECT_EQ(r.inserted, 3u);
  ASSERT_EQ(r.key_totals.size(), 2u);
  EXPECT_EQ(r.key_totals[0].first, "k1");
  EXPECT_DOUBLE_EQ(r.key_totals[0].second, 1.5);
  // The same batch again (a replay): nothing moves.
  auto again = pg::write_spend_batch_blocking(*conn, batch.dump());
  EXPECT_EQ(again.inserted, 0u);
  EXPECT_DOUBLE_EQ(scalar("SELECT count(*) FROM spend_logs"), 3);
  EXPECT_DOUBLE_EQ(scalar("SELECT spend FROM verification_tokens WHERE token = 'k1'"), 1.5);
  EXPECT_DOUBLE_EQ(scalar("SELECT spend FROM verification_tokens WHERE token = 'k2'"), 0.25);
  EXPECT_DOUBLE_EQ(scalar("SELECT spend FROM users WHERE user_id = 'u1'"), 1.5);
  EXPECT_DOUBLE_EQ(scalar("SELECT spend FROM teams WHERE team_id = 't1'"), 1.75);
  EXPECT_DOUBLE_EQ(scalar("SELECT spend FROM organizations WHERE organization_id = 'o1'"), 1.75);
  EXPECT_DOUBLE_EQ(scalar("SELECT spend FROM end_users WHERE user_id = 'cust-1'"), 1.75);
  // Two days, so two partitions.
  EXPECT_DOUBLE_EQ(scalar("SELECT count(*) FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent "
                          "WHERE p.relname = 'spend_logs'"),
                   2);
  // Rollups: per key and day; failures counted apart; tags too.
  EXPECT_DOUBLE_EQ(scalar("SELECT sum(spend) FROM daily_spend WHERE entity_type = 'key' AND entity_id = 'k1'"), 1.5);
  EXPECT_DOUBLE_EQ(scalar("SELECT count(*) FROM daily_spend WHERE entity_type = 'key' AND entity_id = 'k1'"), 2);
  EXPECT_DOUBLE_EQ(scalar("SELECT failed_requests FROM daily_spend WHERE entity_type = 'key' AND entity_id = 'k2'"),
                   1);
  EXPECT_DOUBLE_EQ(scalar("SELECT sum(api_requests) FROM daily_spend WHERE entity_type = 'team'"), 3);
  EXPECT_DOUBLE_EQ(scalar("SELECT sum(spend) FROM daily_spend WHERE entity_type = 'tag' AND entity_id = 'a'"), 1.75);
  EXPECT_DOUBLE_EQ(scalar("SELECT sum(prompt_tokens) FROM daily_spend WHERE entity_type = 'org'"), 30);
  // 'all': every request, whoever made it, so that global reports read the rollups only.
  EXPECT_DOUBLE_EQ(scalar("SELECT sum(api_requests) FROM daily_spend WHERE entity_type = 'all' AND entity_id = ''"),
                   scalar("SELECT count(*) FROM spend_logs"));
  EXPECT_DOUBLE_EQ(scalar("SELECT sum(spend) FROM daily_spend WHERE entity_type = 'all'"),
                   scalar("SELECT sum(spend) FROM spend_logs"));
  // Each key's spend per day, the master key's ('') included, for "top keys".
  EXPECT_DOUBLE_EQ(scalar("SELECT sum(spend) FROM daily_key_spend WHERE api_key = 'k1'"), 1.5);
  EXPECT_DOUBLE_EQ(scalar("SELECT count(*) FROM daily_key_spend WHERE api_key = 'k1'"), 2);
  // A batch mixing old and new rows moves totals by the new ones only.
  batch.push_back(row("00000000-0000-4000-8000-000000000004", "k1", 2.0, day1 + 3 * hour));
  auto mixed = pg::write_spend_batch_blocking(*conn, batch.dump());
  EXPECT_EQ(mixed.inserted, 1u);
  EXPECT_DOUBLE_EQ(scalar("SELECT spend FROM verification_tokens WHERE token = 'k1'"), 3.5);
}

TEST_F(spend_repo_test, retention_drops_whole_days) {
  json batch = json::array({row("00000000-0000-4000-8000-000000000011", "k1", 0.1, day1),
                            row("00000000-0000-4000-8000-000000000012", "k1", 0.1, day1 + 24 * hour),
                            row("00000000-0000-4000-8000-000000000013", "k1", 0.1, day1 + 48 * hour)});
  pg::write_spend_batch_blocking(*conn, batch.dump());
  EXPECT_EQ(pg::drop_spend_partitions_before_blocking(*conn, "2025-12-06"), 2u);
  EXPECT_DOUBLE_EQ(scalar("SELECT count(*) FROM spend_logs"), 1);
  // Writing into a dropped day makes the partition again.
  json late = json::array({row("00000000-0000-4000-8000-000000000014", "k1", 0.1, day1 + hour)});
  EXPECT_EQ(pg::write_spend_batch_blocking(*conn, late.dump()).inserted, 1u);
}

TEST_F(spend_repo_test, a_bad_batch_throws_and_changes_nothing) {
  EXPECT_ANY_THROW(pg::write_spend_batch_blocking(*conn, R"([{"row_id": "not-a-uuid", "start_us": 1}])"));
  EXPECT_DOUBLE_EQ(scalar("SELECT count(*) FROM spend_logs"), 0);
}

}  // namespace

namespace {

// A batch that committed but whose caller timed out (the answer came after the deadline):
// the spend writer puts its rows back and writes them again; the second write must add
// nothing (rows are keyed by row_id), or a hung-then-recovered database counts spend twice.
TEST_F(spend_repo_test, a_batch_committed_after_its_deadline_is_not_counted_twice) {
  pg::db_executor dbx{one_connection(0ms)};
  json batch = json::array({row("7a1c0000-0000-4000-8000-000000000001", "k1", 0.5, day1),
                            row("7a1c0000-0000-4000-8000-000000000002", "k1", 0.25, day1 + hour)});
  const std::string text = batch.dump();
  net::io_context io;
  std::optional<switchyard::core::result<std::size_t>> late;
  std::optional<switchyard::core::result<std::size_t>> retry;
  run_coro(io, [&]() -> net::awaitable<void> {
    // Commits, then stays busy past the deadline: the caller sees a timeout.
    late = co_await dbx.run_within(
        500ms,
        [](pqxx::connection& c, const std::string& js) {
          auto n = pg::write_spend_batch_blocking(c, js).inserted;
          pqxx::nontransaction tx{c};
          tx.exec("SELECT pg_sleep(5)");
          return n;
        },
        text);
    retry = co_await dbx.run(
        [](pqxx::connection& c, const std::string& js) { return pg::write_spend_batch_blocking(c, js).inserted; }, text);
  });
  ASSERT_TRUE(late.has_value());
  ASSERT_FALSE(late->has_value()) << "the first write should have timed out";
  EXPECT_EQ(late->error().code, switchyard::core::errc::unavailable);
  ASSERT_TRUE(retry.has_value());
  ASSERT_TRUE(retry->has_value()) << retry->error().message;
  EXPECT_EQ(**retry, 0u) << "the late-committed rows were inserted again";
  EXPECT_DOUBLE_EQ(scalar("SELECT count(*) FROM spend_logs"), 2);
  EXPECT_DOUBLE_EQ(scalar("SELECT spend FROM verification_tokens WHERE token = 'k1'"), 0.75);
}

}  // namespace

namespace {

// The gateway's path: rows as COPY text. Every byte a header can carry arrives as the
// JSON path would store it (escapes, invalid UTF-8 and NUL as U+FFFD), and the batch
// counts once like the JSON one.
TEST_F(spend_repo_test, copy_rows_land_as_sent_and_count_once) {
  namespace spend = switchyard::spend;
  spend::spend_row a;
  a.row_id = "c0900000-0000-4000-8000-000000000001";
  a.request_id = "req\twith\ttabs\nand\\newlines\r";
  a.call_type = "acompletion";
  a.api_key = "k1";
  a.user_id = "u1";
  a.team_id = "t1";
  a.organization_id = "o1";
  a.end_user = std::string("bad \xff utf8 and nul ") + '\0' + " end";
  a.model = a.model_group = "gpt-4o";
  a.provider = "openai";
  a.prompt_tokens = 10;
  a.completion_tokens = 5;
  a.total_tokens = 15;
  a.spend = 0.125;
  a.start_us = day1 + hour;
  a.end_us = day1 + hour + 2'500;
  a.completion_start_us = day1 + hour + 1'000;
  a.status_code = 200;
  a.requester_ip = "127.0.0.1";
  a.session_id = "s\\1";
  a.tags_json = R"(["x","y\"z"])";
  a.metadata_json = "not json";  // falls back to {}
  spend::spend_row b = a;
  b.row_id = "c0900000-0000-4000-8000-000000000002";
  b.request_id = "req-b";
  b.api_key = "k2";
  b.user_id.clear();
  b.end_user.clear();
  b.tags_json = "[]";
  b.metadata_json = "{}";
  b.success = false;
  b.status_code = 429;
  b.error_type = "rate_limit_error";
  b.spend = 0.25;
  b.start_us = day1 + 30 * hour;  // the next day: a second partition
  b.end_us = b.start_us;
  b.messages_json = R"([{"role":"user","content":"hi"}])";
  std::string text;
  spend::append_copy_line(text, a);
  spend::append_copy_line(text, b);
  const std::vector<std::string> days{pg::spend_day_of(a.start_us), pg::spend_day_of(b.start_us)};
  EXPECT_EQ(days[0], "20251204");
  EXPECT_EQ(days[1], "20251205");
  auto r = pg::write_spend_copy_blocking(*conn, text, days);
  EXPECT_EQ(r.inserted, 2u);
  ASSERT_EQ(r.key_totals.size(), 2u);
  EXPECT_EQ(r.key_totals[0].first, "k1");
  EXPECT_DOUBLE_EQ(r.key_totals[0].second, 0.125);
  // A replay adds nothing.
  EXPECT_EQ(pg::write_spend_copy_blocking(*conn, text, days).inserted, 0u);
  EXPECT_DOUBLE_EQ(scalar("SELECT spend FROM teams WHERE team_id = 't1'"), 0.375);
  EXPECT_DOUBLE_EQ(scalar("SELECT sum(api_requests) FROM daily_spend WHERE entity_type = 'all'"), 2);
  EXPECT_DOUBLE_EQ(scalar("SELECT failed_requests FROM daily_spend WHERE entity_type = 'key' AND entity_id = 'k2'"),
                   1);
  EXPECT_DOUBLE_EQ(scalar("SELECT sum(spend) FROM daily_spend WHERE entity_type = 'tag' AND entity_id = 'y\"z'"),
                   0.125);
  pqxx::read_transaction tx{*conn};
  auto row = tx.exec1(
      "SELECT request_id, end_user, session_id, request_tags::text, metadata::text, status, request_duration_ms, "
      "completion_start_time = start_time + interval '1 ms', user_id IS NULL, key_alias IS NULL "
      "FROM spend_logs WHERE row_id = 'c0900000-0000-4000-8000-000000000001'");
  EXPECT_EQ(row[0].as<std::string>(), a.request_id);
  EXPECT_EQ(row[1].as<std::string>(), "bad \xEF\xBF\xBD utf8 and nul \xEF\xBF\xBD end");
  EXPECT_EQ(row[2].as<std::string>(), "s\\1");
  EXPECT_EQ(row[3].as<std::string>(), R"(["x", "y\"z"])");
  EXPECT_EQ(row[4].as<std::string>(), "{}");
  EXPECT_EQ(row[5].as<std::string>(), "success");
  EXPECT_EQ(row[6].as<int>(), 2);
  EXPECT_TRUE(row[7].as<bool>());
  EXPECT_FALSE(row[8].as<bool>());
  EXPECT_TRUE(row[9].as<bool>());
  auto other = tx.exec1(
      "SELECT status, error_type, status_code, user_id IS NULL, end_user IS NULL, messages::text, response IS NULL "
      "FROM spend_logs WHERE row_id = 'c0900000-0000-4000-8000-000000000002'");
  EXPECT_EQ(other[0].as<std::string>(), "failure");
  EXPECT_EQ(other[1].as<std::string>(), "rate_limit_error");
  EXPECT_EQ(other[2].as<int>(), 429);
  EXPECT_TRUE(other[3].as<bool>());
  EXPECT_TRUE(other[4].as<bool>());
  EXPECT_EQ(other[5].as<std::string>(), R"([{"role": "user", "content": "hi"}])");
  EXPECT_TRUE(other[6].as<bool>());
}

TEST(spend_day_of, floors_to_the_utc_day) {
  EXPECT_EQ(pg::spend_day_of(0), "19700101");
  EXPECT_EQ(pg::spend_day_of(-1), "19691231");
  EXPECT_EQ(pg::spend_day_of(day1), "20251204");
  EXPECT_EQ(pg::spend_day_of(day1 - 1), "20251203");
  EXPECT_EQ(pg::spend_day_of(951'782'400'000'000), "20000229");  // a leap day
  // A batch's days: each once, sorted, and the next day too for a start just before midnight.
  EXPECT_EQ(pg::spend_days_of({day1 + 30 * hour, day1 + hour, day1 + 2 * hour}),
            (std::vector<std::string>{"20251204", "20251205"}));
  EXPECT_EQ(pg::spend_days_of({day1 - 1}), (std::vector<std::string>{"20251203", "20251204"}));
  EXPECT_TRUE(pg::spend_days_of({}).empty());
}

}  // namespace

namespace {

// The requests of no team and of no end user have rollups of their own ('no_team',
// 'no_end_user'), written with the others; migration 0006 made them once from the rollups
// already there ('all' less the entity's). Both must agree with the rows.
TEST_F(spend_repo_test, requests_of_no_team_or_end_user_have_their_own_rollups) {
  json a = row("0e000000-0000-4000-8000-000000000001", "k1", 0.5, day1);
  json b = row("0e000000-0000-4000-8000-000000000002", "k2", 0.25, day1 + hour);
  b["team_id"] = "";
  b["end_user"] = "";
  json c = row("0e000000-0000-4000-8000-000000000003", "k2", 0.125, day1 + 2 * hour);
  c["team_id"] = "";
  pg::write_spend_batch_blocking(*conn, json::array({a, b, c}).dump());
  const auto by = [&](const char* type) {
    return "SELECT coalesce(sum(spend), 0) FROM daily_spend WHERE entity_type = '" + std::string(type) + "'";
  };
  EXPECT_DOUBLE_EQ(scalar(by("no_team")), 0.375);
  EXPECT_DOUBLE_EQ(scalar(by("no_end_user")), 0.25);
  EXPECT_DOUBLE_EQ(scalar("SELECT sum(api_requests) FROM daily_spend WHERE entity_type = 'no_team'"), 2);

  // The backfill: the same rollups made from 'all' less 'team' / 'end_user'.
  const std::string written_team = "SELECT string_agg(concat_ws('|', day, api_key, model, spend, api_requests, "
                                   "prompt_tokens), ',' ORDER BY day, api_key, model) FROM daily_spend "
                                   "WHERE entity_type = 'no_team'";
  std::string before;
  {
    pqxx::read_transaction tx{*conn};
    before = tx.exec1(written_team)[0].as<std::string>();
  }
  {
    pqxx::work tx{*conn};
    tx.exec0("DELETE FROM daily_spend WHERE entity_type IN ('no_team', 'no_end_user')");
    std::ifstream f(source_dir + "/migrations/0006_spend_unassigned.sql");
    ASSERT_TRUE(f.good());
    const std::string sql{std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
    tx.exec0(sql);
    tx.commit();
  }
  pqxx::read_transaction tx{*conn};
  EXPECT_EQ(tx.exec1(written_team)[0].as<std::string>(), before);
  EXPECT_DOUBLE_EQ(tx.exec1(by("no_end_user"))[0].as<double>(), 0.25);
}

}  // namespace

namespace {

// /global/spend/report by team and by customer, from hand-made rollups: days in order,
// groups by name (bytes) with the null customer last, a key's model added up over its
// model groups and providers, teams sharing a name (or having none) merged.
TEST_F(spend_repo_test, the_group_report_nests_orders_and_merges) {
  {
    pqxx::work tx{*conn};
    tx.exec0("INSERT INTO teams (team_id, team_alias) VALUES ('t2', 'Zed'), ('t3', 'Alpha'), ('t4', 'Alpha')");
    tx.exec0(
        "INSERT INTO daily_spend (entity_type, entity_id, day, api_key, model, model_group, custom_llm_provider, "
        "prompt_tokens, completion_tokens, spend, api_requests) VALUES "
        "('team', 't2', '2026-10-02', 'k1', 'm', 'g1', 'openai', 1, 1, 0.5, 1),"
        "('team', 't2', '2026-10-01', 'k1', 'm', 'g1', 'openai', 1, 1, 0.25, 1),"
        "('team', 't2', '2026-10-01', 'k1', 'm', 'g2', 'azure', 2, 2, 0.125, 1),"
        "('team', 't3', '2026-10-01', 'k2', 'm', 'g1', 'openai', 3, 0, 1, 1),"
        "('team', 't4', '2026-10-01', 'k1', 'm', 'g1', 'openai', 0, 4, 2, 1),"
        "('team', 't1', '2026-10-01', 'k3', 'm', 'g1', 'openai', 0, 5, 3, 1),"
        "('no_team', '', '2026-10-01', 'k4', 'm', 'g1', 'openai', 0, 6, 4, 1),"
        "('end_user', 'c-b', '2026-10-01', 'k1', 'm', 'g1', 'openai', 1, 0, 1, 1),"
        "('end_user', 'c-a', '2026-10-01', 'k1', 'm', 'g1', 'openai', 1, 0, 2, 1),"
        "('no_end_user', '', '2026-10-01', 'k1', 'm', 'g1', 'openai', 1, 0, 4, 1)");
    tx.commit();
  }
  const auto team = json::parse(pg::spend_report_by_group_blocking(*conn, "team", "2026-10-01", "2026-10-31"));
  ASSERT_EQ(team.size(), 2u);
  EXPECT_EQ(team[0]["group_by_day"], "2026-10-01T00:00:00+00:00");
  const auto& t = team[0]["teams"];
  // Alpha (t3 and t4 together), Unassigned Team (t1 has no name, and the no-team rows), Zed.
  ASSERT_EQ(t.size(), 3u) << t.dump();
  EXPECT_EQ(t[0]["team_name"], "Alpha");
  EXPECT_DOUBLE_EQ(t[0]["total_spend"].get<double>(), 3);
  ASSERT_EQ(t[0]["metadata"].size(), 2u);
  EXPECT_EQ(t[0]["metadata"][0]["api_key"], "k1");
  EXPECT_EQ(t[0]["metadata"][1]["api_key"], "k2");
  EXPECT_EQ(t[1]["team_name"], "Unassigned Team");
  EXPECT_DOUBLE_EQ(t[1]["total_spend"].get<double>(), 7);
  EXPECT_EQ(t[2]["team_name"], "Zed");
  ASSERT_EQ(t[2]["metadata"].size(), 1u);  // g1 and g2 of k1's model m, added up
  EXPECT_DOUBLE_EQ(t[2]["metadata"][0]["spend"].get<double>(), 0.375);
  EXPECT_EQ(t[2]["metadata"][0]["total_tokens"], 6);
  EXPECT_DOUBLE_EQ(team[1]["teams"][0]["total_spend"].get<double>(), 0.5);

  const auto customers = json::parse(pg::spend_report_by_group_blocking(*conn, "customer", "2026-10-01", "2026-10-01"));
  ASSERT_EQ(customers.size(), 1u);
  const auto& c = customers[0]["customers"];
  ASSERT_EQ(c.size(), 3u);
  EXPECT_EQ(c[0]["customer"], "c-a");
  EXPECT_EQ(c[1]["customer"], "c-b");
  EXPECT_TRUE(c[2]["customer"].is_null());
  EXPECT_DOUBLE_EQ(c[2]["total_spend"].get<double>(), 4);
  EXPECT_EQ(json::parse(pg::spend_report_by_group_blocking(*conn, "team", "2027-01-01", "2027-01-31")), json::array());
}

}  // namespace

namespace {

namespace spend = switchyard::spend;

// A mixed batch: three keys (one the master key's ''), users, teams, organisations and end
// users present or not, two models, tags (some repeated, some none), failures, three days
// (one row a microsecond before midnight), odd prices, prompts on some rows.
std::vector<spend::spend_row> mixed_rows(int n) {
  std::vector<spend::spend_row> rows;
  for (int i = 0; i < n; ++i) {
    spend::spend_row r;
    char id[64];
    std::snprintf(id, sizeof id, "f2e50000-0000-4000-8000-%012d", i);
    r.row_id = id;
    r.request_id = "req-" + std::to_string(i);
    r.call_type = i % 7 == 0 ? "aembedding" : "acompletion";
    // The group fields change every other row: runs of one group and changes both.
    const int g = i / 2;
    const char* keys[] = {"k1", "k2", ""};
    r.api_key = keys[g % 3];
    r.key_alias = g % 3 == 0 ? "alias-1" : "";
    r.user_id = g % 3 == 0 ? "u1" : "";
    r.team_id = g % 4 == 3 ? "" : "t1";
    r.organization_id = r.team_id.empty() ? "" : "o1";
    r.end_user = g % 5 == 0 ? "" : "cust-" + std::to_string(g % 2);
    r.model = g % 2 == 0 ? "gpt-4o" : "claude-x";
    r.model_group = g % 6 == 0 ? "" : r.model;
    r.model_id = "dep-" + std::to_string(g % 2);
    r.provider = g % 2 == 0 ? "openai" : "anthropic";
    r.api_base = i % 2 == 0 ? "http://127.0.0.1:1/v1" : "";
    r.prompt_tokens = 10 + i;
    r.completion_tokens = i % 9;
    r.total_tokens = r.prompt_tokens + r.completion_tokens;
    r.cached_tokens = i % 4;
    r.cache_creation_tokens = i % 3;
    r.reasoning_tokens = i % 2;
    r.usage_estimated = i % 11 == 0;
    r.spend = 0.000123 * (i + 1) / 7.0;
    r.start_us = day1 + (g % 3) * 24 * hour + i * 1'000'003;
    if (i == 5) {
      r.start_us = day1 + 24 * hour - 1;  // the last microsecond of the first day
    }
    r.end_us = r.start_us + 1'234'567;
    r.completion_start_us = i % 2 == 0 ? r.start_us + 500'001 : 0;
    r.success = i % 8 != 7;
    r.status_code = r.success ? 200 : 429;
    r.error_type = r.success ? "" : "rate_limit_error";
    r.cache_hit = i % 10 == 0;
    r.retries = i % 3;
    r.fallbacks = i % 2;
    r.requester_ip = "10.0.0." + std::to_string(i % 4);
    r.session_id = i % 3 == 1 ? "sess\t1" : "";
    const char* tags[] = {"[]", R"(["a","b"])", R"(["a","a"])", R"(["y\"z"])"};
    r.tags_json = tags[g % 4];
    r.metadata_json = i % 5 == 1 ? R"({"k": [1, 2]})" : "{}";
    if (i == 9) {
      // NUL characters (a request's tags and metadata may hold them; jsonb refuses them)
      // are written as U+FFFD, in a key too: the row is not refused.
      r.tags_json = R"(["n\u0000ul","a"])";
      r.metadata_json = R"({"k\u0000": "v\u0000", "ok": 1})";
    }
    if (i % 6 == 2) {
      r.messages_json = R"([{"role":"user","content":"hi"}])";
      r.response_json = R"({"choices":[]})";
    }
    rows.push_back(std::move(r));
  }
  return rows;
}

std::vector<std::string> days_of(const std::vector<spend::spend_row>& rows) {
  std::vector<std::int64_t> starts;
  for (const auto& r : rows) {
    starts.push_back(r.start_us);
  }
  return pg::spend_days_of(std::move(starts));
}

pg::spend_batch_result write_fresh(pqxx::connection& c, const std::vector<spend::spend_row>& rows,
                                   bool keep_rows = true) {
  std::string logs, groups;
  for (const auto& r : rows) {
    spend::append_log_copy_line(logs, r);
  }
  spend::append_group_lines(groups, rows);
  return pg::write_spend_fresh_blocking(c, logs, groups, rows.size(), days_of(rows), keep_rows);
}

pg::spend_batch_result write_checked(pqxx::connection& c, const std::vector<spend::spend_row>& rows,
                                     bool keep_rows = true) {
  std::string text;
  for (const auto& r : rows) {
    spend::append_copy_line(text, r);
  }
  return pg::write_spend_copy_blocking(c, text, days_of(rows), keep_rows);
}

// Everything the writer leaves in the database, as text: the rows, the rollups and the
// entities' totals (spend to 12 significant digits: the paths add in different orders).
std::string everything(pqxx::connection& c) {
  pqxx::read_transaction tx{c};
  std::string out;
  const char* queries[] = {
      "SELECT string_agg(t::text, E'\\n' ORDER BY row_id) FROM (SELECT row_id, request_id, call_type, api_key, "
      "key_alias, user_id, team_id, organization_id, end_user, model, model_group, model_id, custom_llm_provider, "
      "api_base, prompt_tokens, completion_tokens, total_tokens, cached_tokens, cache_creation_tokens, "
      "reasoning_tokens, usage_estimated, spend, start_time, end_time, completion_start_time, request_duration_ms, "
      "status, status_code, error_type, cache_hit, retries, fallbacks, requester_ip_address, request_tags, "
      "session_id, metadata, messages, response, tableoid::regclass AS part FROM spend_logs) t",
      "SELECT string_agg(concat_ws('|', entity_type, entity_id, day, api_key, model, model_group, "
      "custom_llm_provider, prompt_tokens, completion_tokens, cache_read_input_tokens, cache_creation_input_tokens, "
      "round(spend::numeric, 12), api_requests, successful_requests, failed_requests), E'\\n' "
      "ORDER BY entity_type, entity_id, day, api_key, model, model_group, custom_llm_provider) FROM daily_spend",
      "SELECT string_agg(concat_ws('|', entity_type, entity_id, day, model, prompt_tokens, completion_tokens, "
      "cache_read_input_tokens, cache_creation_input_tokens, round(spend::numeric, 12), api_requests, "
      "successful_requests, failed_requests), E'\\n' ORDER BY entity_type, entity_id, day, model) "
      "FROM daily_spend_totals",
      "SELECT string_agg(day || '|' || api_key || '=' || round(spend::numeric, 12), ',' ORDER BY day, api_key) "
      "FROM daily_key_spend",
      "SELECT string_agg(token || '=' || round(spend::numeric, 12), ',' ORDER BY token) FROM verification_tokens",
      "SELECT string_agg(user_id || '=' || round(spend::numeric, 12), ',' ORDER BY user_id) FROM users",
      "SELECT string_agg(team_id || '=' || round(spend::numeric, 12), ',' ORDER BY team_id) FROM teams",
      "SELECT string_agg(organization_id || '=' || round(spend::numeric, 12), ',' ORDER BY organization_id) "
      "FROM organizations",
      "SELECT string_agg(user_id || '=' || round(spend::numeric, 12), ',' ORDER BY user_id) FROM end_users"};
  for (const char* q : queries) {
    auto v = tx.exec1(q)[0];
    out += (v.is_null() ? std::string("(none)") : v.as<std::string>()) + "\n---\n";
  }
  return out;
}

void add_entities(pqxx::connection& c) {
  pqxx::work tx{c};
  tx.exec0("INSERT INTO organizations (organization_id) VALUES ('o1')");
  tx.exec0("INSERT INTO teams (team_id, organization_id) VALUES ('t1', 'o1')");
  tx.exec0("INSERT INTO users (user_id) VALUES ('u1')");
  tx.exec0("INSERT INTO verification_tokens (token, user_id, team_id) VALUES ('k1', 'u1', 't1'), ('k2', NULL, 't1')");
  tx.commit();
}

// The fresh path (rows straight into spend_logs, sums from the gateway) leaves exactly what
// the checked path (staged, inserted where new, summed by Postgres) leaves: the same rows
// to the microsecond, the same rollups and totals.
TEST_F(spend_repo_test, fresh_and_checked_batches_leave_the_same_rows_rollups_and_totals) {
  const auto rows = mixed_rows(97);
  auto fresh = write_fresh(*conn, rows);
  EXPECT_EQ(fresh.inserted, 97u);
  fresh_database other_db(env_or_empty("SWITCHYARD_TEST_DATABASE_URL"));
  pqxx::connection other{other_db.url()};
  pg::migrate_blocking(other, source_dir + "/migrations");
  add_entities(other);
  auto checked = write_checked(other, rows);
  EXPECT_EQ(checked.inserted, 97u);
  const std::string a = everything(*conn), b = everything(other);
  EXPECT_EQ(a, b);
  EXPECT_NE(a.find("spend_logs_20251205"), std::string::npos) << "rows over three days, in their partitions";
  EXPECT_NE(a.find("23:59:59.999999"), std::string::npos) << "the last microsecond of a day kept";
  EXPECT_NE(a.find("n\xEF\xBF\xBDul"), std::string::npos) << "a NUL in a tag written as U+FFFD";
  EXPECT_NE(a.find("k\xEF\xBF\xBD"), std::string::npos) << "a NUL in a metadata key written as U+FFFD";
  ASSERT_EQ(fresh.key_totals.size(), checked.key_totals.size());
  for (std::size_t i = 0; i < fresh.key_totals.size(); ++i) {
    EXPECT_EQ(fresh.key_totals[i].first, checked.key_totals[i].first);
    EXPECT_NEAR(fresh.key_totals[i].second, checked.key_totals[i].second, 1e-12);
  }
  // disable_spend_logs: the same sums, no rows, both ways.
  fresh_database third_db(env_or_empty("SWITCHYARD_TEST_DATABASE_URL")), fourth_db(env_or_empty("SWITCHYARD_TEST_DATABASE_URL"));
  pqxx::connection third{third_db.url()}, fourth{fourth_db.url()};
  for (auto* c : {&third, &fourth}) {
    pg::migrate_blocking(*c, source_dir + "/migrations");
    add_entities(*c);
  }
  EXPECT_EQ(write_fresh(third, rows, false).inserted, 97u);
  EXPECT_EQ(write_checked(fourth, rows, false).inserted, 97u);
  EXPECT_EQ(everything(third), everything(fourth));
  EXPECT_NE(everything(third).find("(none)\n---\n"), std::string::npos) << "no spend_logs rows";
}

// Rows written fresh and then written again through the checked path (their commit's answer
// was lost; a spill file read back) add nothing: the fresh path's start times are the
// checked path's to the microsecond, so the primary key recognises them.
TEST_F(spend_repo_test, a_fresh_batch_written_again_as_checked_adds_nothing) {
  const auto rows = mixed_rows(40);
  write_fresh(*conn, rows);
  const std::string before = everything(*conn);
  auto again = write_checked(*conn, rows);
  EXPECT_EQ(again.inserted, 0u);
  EXPECT_EQ(everything(*conn), before);
  // One new row among them: it alone counts.
  auto more = mixed_rows(41);
  auto r = write_checked(*conn, more);
  EXPECT_EQ(r.inserted, 1u);
  EXPECT_DOUBLE_EQ(scalar("SELECT count(*) FROM spend_logs"), 41);
  EXPECT_NEAR(scalar("SELECT spend FROM verification_tokens WHERE token = 'k2'"),
              scalar("SELECT sum(spend) FROM spend_logs WHERE api_key = 'k2'"), 1e-12);
}

// A fresh batch holding a row already written fails whole (the primary key) and changes
// nothing: the writer then writes its rows one by one through the checked path.
TEST_F(spend_repo_test, a_fresh_batch_with_a_row_already_written_fails_whole) {
  auto rows = mixed_rows(10);
  write_fresh(*conn, {rows[3]});
  const std::string before = everything(*conn);
  EXPECT_ANY_THROW(write_fresh(*conn, rows));
  EXPECT_EQ(everything(*conn), before);
}

// pg_sink takes the fresh path for rows never sent and the checked one for rows marked
// maybe_written; a marked batch of rows already there adds nothing.
TEST_F(spend_repo_test, the_sink_checks_rows_marked_as_maybe_written) {
  pg::db_executor dbx{one_connection()};
  spend::pg_sink sink{dbx};
  auto rows = std::make_shared<std::vector<spend::spend_row>>(mixed_rows(30));
  net::io_context io;
  std::vector<switchyard::core::result<spend::sink_result>> results;
  run_coro(io, [&]() -> net::awaitable<void> {
    results.push_back(co_await sink.write(rows));
    auto marked = std::make_shared<std::vector<spend::spend_row>>(*rows);
    for (auto& r : *marked) {
      r.maybe_written = true;
    }
    results.push_back(co_await sink.write(marked));
    results.push_back(co_await sink.write(rows));  // unmarked again: refused as a whole
  });
  ASSERT_EQ(results.size(), 3u);
  ASSERT_TRUE(results[0].has_value()) << results[0].error().message;
  EXPECT_EQ(results[0]->inserted, 30u);
  ASSERT_TRUE(results[1].has_value()) << results[1].error().message;
  EXPECT_EQ(results[1]->inserted, 0u);
  ASSERT_FALSE(results[2].has_value());
  EXPECT_NE(results[2].error().code, switchyard::core::errc::unavailable);
  EXPECT_DOUBLE_EQ(scalar("SELECT count(*) FROM spend_logs"), 30);
}

}  // namespace

namespace {

// The writer updates the same rollup rows batch after batch: those updates must stay HOT
// (no index holds a column they change), or every batch adds index entries for every row
// it touches. Checked twice: no index of a rollup table holds a column the writer adds to
// (the cause), and Postgres's own counters show HOT updates of daily_spend (the effect:
// none at all with such an index; how many of them depends on when pages get pruned, so
// only "some" is asserted).
TEST_F(spend_repo_test, rollup_updates_stay_hot) {
  {
    pqxx::read_transaction tx{*conn};
    auto r = tx.exec(
        "SELECT c.relname, i.relname, a.attname FROM pg_index x JOIN pg_class c ON c.oid = x.indrelid "
        "JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_attribute a ON a.attrelid = c.oid "
        "AND a.attnum = ANY (x.indkey) WHERE c.relname IN ('daily_spend', 'daily_spend_totals', 'daily_key_spend') "
        "AND a.attname NOT IN ('entity_type', 'entity_id', 'day', 'api_key', 'model', 'model_group', "
        "'custom_llm_provider')");
    for (const auto& row : r) {
      ADD_FAILURE() << "index " << row[1].c_str() << " of " << row[0].c_str() << " holds " << row[2].c_str()
                    << ", which the spend writer updates";
    }
  }
  auto rows = mixed_rows(30);
  for (int b = 0; b < 3; ++b) {
    for (auto& r : rows) {
      r.row_id[9] = static_cast<char>('a' + b);  // new rows, the same groups
    }
    write_fresh(*conn, rows);
  }
  {
    pqxx::nontransaction tx{*conn};
    tx.exec("SELECT pg_stat_force_next_flush()");
  }
  // The counters reach the shared statistics once the writer's session is idle: wait for
  // them (bounded).
  pqxx::connection reader{db->url()};
  long long updated = 0, hot = 0;
  for (int i = 0; i < 300 && updated == 0; ++i) {
    pqxx::nontransaction tx{reader};
    tx.exec("SELECT pg_stat_clear_snapshot()");
    auto r = tx.exec1("SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'daily_spend'");
    updated = r[0].as<long long>();
    hot = r[1].as<long long>();
    if (updated == 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  ASSERT_GT(updated, 0) << "no update counted within 6 s";
  EXPECT_GT(hot, 0) << "none of " << updated << " rollup updates was HOT";
}

}  // namespace

namespace {

// A day partition dropped behind this process's back (by another gateway's retention): the
// fresh path, which trusts its memory of the partitions, fails as a whole; the same batch
// through the checked path (what the cost logger sends next) makes the partition again.
TEST_F(spend_repo_test, a_partition_dropped_by_another_gateway_is_made_again) {
  pg::db_executor dbx{one_connection()};
  spend::pg_sink sink{dbx};
  auto all = mixed_rows(20);
  auto first = std::make_shared<std::vector<spend::spend_row>>(all.begin(), all.begin() + 10);
  auto second = std::make_shared<std::vector<spend::spend_row>>(all.begin() + 10, all.end());
  net::io_context io;
  std::vector<switchyard::core::result<spend::sink_result>> results;
  run_coro(io, [&]() -> net::awaitable<void> {
    results.push_back(co_await sink.write(first));
    {
      pqxx::work tx{*conn};
      tx.exec0("DROP TABLE spend_logs_20251204");
      tx.commit();
    }
    results.push_back(co_await sink.write(second));
    for (auto& r : *second) {
      r.maybe_written = true;
    }
    results.push_back(co_await sink.write(second));
  });
  ASSERT_EQ(results.size(), 3u);
  ASSERT_TRUE(results[0].has_value()) << results[0].error().message;
  ASSERT_FALSE(results[1].has_value()) << "the fresh path wrote into a partition that is gone";
  EXPECT_NE(results[1].error().code, switchyard::core::errc::unavailable);
  ASSERT_TRUE(results[2].has_value()) << results[2].error().message;
  EXPECT_EQ(results[2]->inserted, 10u);
  EXPECT_GT(scalar("SELECT count(*) FROM spend_logs_20251204"), 0);
}

}  // namespace
