// spend_repo against a real Postgres: rows land once (a replayed batch adds nothing), the
// totals and daily rollups move by the inserted rows only, day partitions are made on
// first use, and the retention drops whole days.
#include "switchyard/store/postgres/spend_repo.hpp"
#include "switchyard/store/postgres/spend_query_repo.hpp"

#include "switchyard/spend/record.hpp"
#include "switchyard/store/postgres/db_executor.hpp"
#include "switchyard/store/postgres/migrations.hpp"

#include "store_test_support.hpp"

#include <nlohmann/json.hpp>
#include <fstream>
#include <iterator>
#include <pqxx/pqxx>

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
  pg::db_options o;
  o.url = db->url();
  o.pool_size = 1;
  o.statement_timeout = 0ms;
  pg::db_executor dbx{o};
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
