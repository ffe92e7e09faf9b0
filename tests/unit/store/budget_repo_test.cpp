// budget_repo against a real Postgres (a fresh database with the shipped migrations): the
// reset pass (what is due, what it zeroes, the next boundary, the budget_resets rows, the
// advisory lock another instance holds), end-user rows, the proxy's budget row.
#include "switchyard/store/postgres/budget_repo.hpp"

#include "switchyard/store/postgres/migrations.hpp"

#include "store_test_support.hpp"

#include <pqxx/pqxx>

#include <algorithm>

namespace {

using namespace store_test;
namespace core = switchyard::core;
namespace pg = switchyard::store::postgres;

class budget_repo_test : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server_url = env_or_empty("SWITCHYARD_TEST_DATABASE_URL");
    if (server_url.empty()) {
      FAIL() << missing_env_message("SWITCHYARD_TEST_DATABASE_URL");
    }
    db = std::make_unique<fresh_database>(server_url);
    conn = std::make_unique<pqxx::connection>(db->url());
    pg::migrate_blocking(*conn, source_dir + "/migrations");
  }

  std::string one(const std::string& sql) {
    pqxx::nontransaction tx{*conn};
    auto r = tx.exec1(sql);
    return r[0].is_null() ? std::string("null") : r[0].as<std::string>();
  }
  void exec(const std::string& sql) {
    pqxx::work tx{*conn};
    tx.exec0(sql);
    tx.commit();
  }

  std::unique_ptr<fresh_database> db;
  std::unique_ptr<pqxx::connection> conn;
};

TEST_F(budget_repo_test, resets_what_is_due_at_every_level_once) {
  exec(
      "INSERT INTO budgets (budget_id, max_budget, budget_duration, budget_reset_at) VALUES"
      " ('b-due', 10, '1d', '2000-01-01T00:00:00Z'), ('b-later', 10, '1d', now() + interval '1 hour');"
      "INSERT INTO organizations (organization_id, budget_id, spend) VALUES ('o1', 'b-due', 3), ('o2', 'b-later', 3);"
      "INSERT INTO teams (team_id, organization_id, spend, budget_duration, budget_reset_at) VALUES"
      " ('t-due', 'o1', 4, '30s', '2000-01-01T00:00:00Z'), ('t-none', 'o1', 4, NULL, NULL);"
      "INSERT INTO users (user_id, spend, budget_duration, budget_reset_at) VALUES ('u-due', 5, '1mo', now() - interval '1 second');"
      "INSERT INTO team_memberships (user_id, team_id, spend, budget_id) VALUES ('u-due', 't-none', 6, 'b-due');"
      "INSERT INTO end_users (user_id, spend, budget_id) VALUES ('e-due', 7, 'b-due'), ('e-later', 7, 'b-later');"
      "INSERT INTO verification_tokens (token, spend, user_id, budget_duration, budget_reset_at) VALUES"
      " ('k-due', 8, 'u-due', '2s', '2000-01-01T00:00:00Z'), ('k-bad', 8, NULL, 'fortnight', '2000-01-01T00:00:00Z'),"
      " ('k-later', 8, NULL, '1d', now() + interval '1 day');");

  auto r = pg::reset_due_budgets_blocking(*conn, "instance-a", core::time_zone::utc());
  ASSERT_TRUE(r.locked);
  EXPECT_EQ(r.keys, (std::vector<std::string>{"k-bad", "k-due"}));
  EXPECT_EQ(r.users, (std::vector<std::string>{"u-due"}));
  EXPECT_EQ(r.teams, (std::vector<std::string>{"t-due", "t-none"}));  // t-none: its membership's budget
  EXPECT_EQ(r.organizations, (std::vector<std::string>{"o1"}));
  EXPECT_EQ(r.end_users, (std::vector<std::string>{"e-due"}));
  // keys 2 + user + team + budget + organisation + membership + end user
  EXPECT_EQ(r.entities, 8u);

  EXPECT_EQ(one("SELECT string_agg(token || '=' || spend, ',' ORDER BY token) FROM verification_tokens"),
            "k-bad=0,k-due=0,k-later=8");
  EXPECT_EQ(one("SELECT string_agg(user_id || '=' || spend, ',') FROM users"), "u-due=0");
  EXPECT_EQ(one("SELECT string_agg(team_id || '=' || spend, ',' ORDER BY team_id) FROM teams"), "t-due=0,t-none=4");
  EXPECT_EQ(one("SELECT string_agg(organization_id || '=' || spend, ',' ORDER BY organization_id) FROM organizations"), "o1=0,o2=3");
  EXPECT_EQ(one("SELECT spend::text FROM team_memberships"), "0");
  EXPECT_EQ(one("SELECT string_agg(user_id || '=' || spend, ',' ORDER BY user_id) FROM end_users"), "e-due=0,e-later=7");
  // Next boundaries: in the future, on LiteLLM's schedule; a duration that does not parse
  // stops the schedule.
  EXPECT_EQ(one("SELECT budget_reset_at > now() AND extract(second FROM budget_reset_at)::int % 2 = 0"
                " AND date_trunc('second', budget_reset_at) = budget_reset_at FROM verification_tokens WHERE token = 'k-due'"),
            "t");
  EXPECT_EQ(one("SELECT budget_reset_at IS NULL FROM verification_tokens WHERE token = 'k-bad'"), "t");
  EXPECT_EQ(one("SELECT budget_reset_at = (date_trunc('month', now() AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC'"
                " FROM users"),
            "t");
  EXPECT_EQ(one("SELECT budget_reset_at = (date_trunc('day', now() AT TIME ZONE 'UTC') + interval '1 day') AT TIME ZONE 'UTC'"
                " FROM budgets WHERE budget_id = 'b-due'"),
            "t");
  EXPECT_EQ(one("SELECT count(*) FROM budget_resets WHERE instance = 'instance-a'"), "8");
  EXPECT_EQ(one("SELECT string_agg(entity_type || ':' || entity_id, ',' ORDER BY entity_type, entity_id) FROM budget_resets"),
            "budget:b-due,end_user:e-due,key:k-bad,key:k-due,organization:o1,team:t-due,team_membership:t-none:u-due,"
            "user:u-due");

  // Nothing is due any more: a second pass resets nothing.
  auto again = pg::reset_due_budgets_blocking(*conn, "instance-b", core::time_zone::utc());
  EXPECT_TRUE(again.locked);
  EXPECT_EQ(again.entities, 0u);
  EXPECT_EQ(one("SELECT count(*) FROM budget_resets"), "8");

  auto next = pg::next_budget_reset_due_blocking(*conn);
  ASSERT_TRUE(next.has_value());
  EXPECT_GT(*next, std::chrono::system_clock::now() - std::chrono::seconds(5));
}

TEST_F(budget_repo_test, another_instance_holding_the_lock_means_skip) {
  exec("INSERT INTO verification_tokens (token, spend, budget_duration, budget_reset_at) VALUES"
       " ('k', 8, '1d', '2000-01-01T00:00:00Z')");
  pqxx::connection other{db->url()};
  pqxx::work holder{other};
  (void)holder.exec_params1("SELECT pg_try_advisory_xact_lock($1)", pg::budget_reset_lock_id);
  auto r = pg::reset_due_budgets_blocking(*conn, "instance-b", core::time_zone::utc());
  EXPECT_FALSE(r.locked);
  EXPECT_EQ(r.entities, 0u);
  EXPECT_EQ(one("SELECT spend::text FROM verification_tokens"), "8");
  holder.abort();
  auto r2 = pg::reset_due_budgets_blocking(*conn, "instance-b", core::time_zone::utc());
  EXPECT_TRUE(r2.locked);
  EXPECT_EQ(r2.keys, (std::vector<std::string>{"k"}));
}

TEST_F(budget_repo_test, boundaries_follow_the_time_zone) {
  exec("INSERT INTO users (user_id, spend, budget_duration, budget_reset_at) VALUES ('u', 1, '1d', '2000-01-01T00:00:00Z')");
  auto tz = core::time_zone::load("Asia/Kolkata");
  ASSERT_TRUE(tz);
  pg::reset_due_budgets_blocking(*conn, "i", *tz);
  EXPECT_EQ(one("SELECT budget_reset_at = (date_trunc('day', now() AT TIME ZONE 'Asia/Kolkata') + interval '1 day')"
                " AT TIME ZONE 'Asia/Kolkata' FROM users"),
            "t");
}

TEST_F(budget_repo_test, end_users_and_the_proxy_budget_row) {
  exec("INSERT INTO budgets (budget_id, max_budget, rpm_limit, budget_duration, budget_reset_at) VALUES"
       " ('eb', 4, 9, '1d', '2030-01-01T00:00:00Z');"
       "INSERT INTO end_users (user_id, alias, spend, budget_id, blocked) VALUES ('e1', 'E', 1.25, 'eb', true), ('e2', NULL, 0, NULL, false)");
  auto e1 = pg::find_end_user_blocking(*conn, "e1");
  ASSERT_TRUE(e1);
  EXPECT_EQ(e1->alias, "E");
  EXPECT_EQ(e1->spend, 1.25);
  EXPECT_TRUE(e1->blocked);
  EXPECT_EQ(e1->max_budget, 4.0);
  EXPECT_EQ(e1->rpm_limit, 9);
  EXPECT_EQ(e1->budget_duration, "1d");
  ASSERT_TRUE(e1->budget_reset_at);
  auto e2 = pg::find_end_user_blocking(*conn, "e2");
  ASSERT_TRUE(e2);
  EXPECT_FALSE(e2->max_budget);
  EXPECT_FALSE(pg::find_end_user_blocking(*conn, "nobody"));

  auto at = std::chrono::system_clock::time_point(std::chrono::seconds(1'900'000'000));
  pg::ensure_proxy_budget_blocking(*conn, 100, "30d", at);
  exec("UPDATE users SET spend = 12 WHERE user_id = 'litellm-proxy-budget'");
  pg::ensure_proxy_budget_blocking(*conn, 100, "30d", at + std::chrono::hours(1));
  EXPECT_EQ(one("SELECT max_budget || ',' || spend || ',' || budget_duration || ',' || extract(epoch FROM budget_reset_at)::bigint"
                " FROM users WHERE user_id = 'litellm-proxy-budget'"),
            "100,12,30d,1900000000")
      << "the same settings again: nothing changes, the spend stays";
  pg::ensure_proxy_budget_blocking(*conn, 50, "1d", at + std::chrono::hours(2));
  EXPECT_EQ(one("SELECT max_budget || ',' || spend || ',' || budget_duration || ',' || extract(epoch FROM budget_reset_at)::bigint"
                " FROM users WHERE user_id = 'litellm-proxy-budget'"),
            "50,12,1d,1900007200");
}

}  // namespace
