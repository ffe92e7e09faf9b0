#include "switchyard/store/postgres/migrations.hpp"

#include "switchyard/store/postgres/db_executor.hpp"

#include "store_test_support.hpp"

#include <pqxx/pqxx>

namespace {

using namespace store_test;
namespace core = switchyard::core;
namespace pg = switchyard::store::postgres;
namespace fs = std::filesystem;

using versions = std::vector<std::string>;

class migrations_test : public ::testing::Test {
 protected:
  void SetUp() override {
    server_url = env_or_empty("SWITCHYARD_TEST_DATABASE_URL");
    if (server_url.empty()) {
      FAIL() << missing_env_message("SWITCHYARD_TEST_DATABASE_URL");
    }
    db = std::make_unique<fresh_database>(server_url);
    std::string tmpl = (fs::temp_directory_path() / "swy-migrations-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    if (!dir.empty()) {
      fs::remove_all(dir, ec);
    }
  }

  void write(const std::string& name, const std::string& sql) { std::ofstream(fs::path(dir) / name) << sql; }

  pg::db_options options() const {
    pg::db_options o;
    o.url = db->url();
    o.pool_size = 1;
    return o;
  }

  // Runs migrate_blocking through an executor, as the app does.
  core::result<versions> migrate(pg::db_executor& exec, const std::string& from) {
    std::optional<core::result<versions>> out;
    run_coro(io, [&]() -> net::awaitable<void> {
      out = co_await exec.run(pg::migrate_blocking, from);
    });
    return out ? std::move(*out) : core::result<versions>(core::make_error(core::errc::internal, "did not run"));
  }

  std::vector<std::pair<std::string, bool>> recorded() {
    pqxx::connection c{db->url()};
    pqxx::read_transaction tx{c};
    std::vector<std::pair<std::string, bool>> out;
    for (const auto& row :
         tx.exec("SELECT version, applied_at <= now() FROM switchyard_schema_migrations ORDER BY version")) {
      out.emplace_back(row[0].as<std::string>(), row[1].as<bool>());
    }
    return out;
  }

  bool table_exists(const std::string& name) {
    pqxx::connection c{db->url()};
    pqxx::read_transaction tx{c};
    return !tx.exec_params1("SELECT to_regclass($1) IS NULL", name)[0].as<bool>();
  }

  std::string server_url;
  std::unique_ptr<fresh_database> db;
  std::string dir;
  net::io_context io;
};

TEST_F(migrations_test, shipped_migrations_apply_once) {
  pg::db_executor exec{options()};
  auto first = migrate(exec, source_dir + "/migrations");
  ASSERT_TRUE(first.has_value()) << first.error().message;
  ASSERT_FALSE(first->empty());
  EXPECT_EQ(first->front(), "0001_init");
  EXPECT_TRUE(table_exists("switchyard_instance"));
  for (const char* t : {"verification_tokens", "users", "teams", "organizations", "budgets", "team_memberships",
                        "organization_memberships", "deleted_verification_tokens", "deleted_teams",
                        "deprecated_verification_tokens", "audit_log"}) {
    EXPECT_TRUE(table_exists(t)) << t;
  }

  auto second = migrate(exec, source_dir + "/migrations");
  ASSERT_TRUE(second.has_value()) << second.error().message;
  EXPECT_TRUE(second->empty()) << "nothing new to apply";
  EXPECT_EQ(recorded().size(), first->size());
}

// 0014 adds the key's foreign key to budgets on a database that may hold keys naming a
// budget that is gone (a /budget/delete racing a key write, before the key had it): they
// are cleared and audited first, so the migration applies; the others keep their budget.
TEST_F(migrations_test, key_budget_foreign_key_clears_dangling_ids_first) {
  for (const auto& entry : fs::directory_iterator(source_dir + "/migrations")) {
    const auto name = entry.path().filename().string();
    if (name.ends_with(".sql") && name < "0014") {
      fs::copy_file(entry.path(), fs::path(dir) / name);
    }
  }
  pg::db_executor exec{options()};
  auto before = migrate(exec, dir);
  ASSERT_TRUE(before.has_value()) << before.error().message;
  ASSERT_EQ(before->back(), "0013_spend_set_at");
  {
    pqxx::connection c{db->url()};
    pqxx::work tx{c};
    tx.exec("INSERT INTO budgets (budget_id) VALUES ('still-here')");
    tx.exec("INSERT INTO verification_tokens (token, budget_id) VALUES ('dangling', 'gone'), ('kept', 'still-here'),"
            " ('none', NULL)");
    tx.commit();
  }
  fs::copy_file(fs::path(source_dir) / "migrations" / "0014_key_budget_fkey.sql", fs::path(dir) / "0014_key_budget_fkey.sql");
  auto r = migrate(exec, dir);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(*r, (versions{"0014_key_budget_fkey"}));

  pqxx::connection c{db->url()};
  pqxx::work tx{c};
  auto budgets = tx.exec("SELECT token, coalesce(budget_id, '-') FROM verification_tokens ORDER BY token");
  ASSERT_EQ(budgets.size(), 3u);
  EXPECT_EQ(budgets[0][1].as<std::string>(), "-") << "dangling: cleared";
  EXPECT_EQ(budgets[1][1].as<std::string>(), "still-here") << "kept";
  EXPECT_EQ(budgets[2][1].as<std::string>(), "-");
  auto audited = tx.exec(
      "SELECT object_id, changed_by, before->>'budget_id', after->'budget_id' = 'null'::jsonb FROM audit_log"
      " WHERE table_name = 'verification_tokens'");
  ASSERT_EQ(audited.size(), 1u);
  EXPECT_EQ(audited[0][0].as<std::string>(), "dangling");
  EXPECT_EQ(audited[0][1].as<std::string>(), "migration 0014");
  EXPECT_EQ(audited[0][2].as<std::string>(), "gone");
  EXPECT_TRUE(audited[0][3].as<bool>());
  // The constraint holds from now on.
  EXPECT_THROW(tx.exec("UPDATE verification_tokens SET budget_id = 'gone' WHERE token = 'none'"),
               pqxx::foreign_key_violation);
}

TEST_F(migrations_test, numeric_order_each_once_and_new_files_later) {
  write("0002_second.sql", "CREATE TABLE t2 (id int REFERENCES t1(id));");
  write("0010_tenth.sql", "INSERT INTO t1 VALUES (10); INSERT INTO t2 VALUES (10);");
  write("0001_first.sql", "CREATE TABLE t1 (id int PRIMARY KEY);");
  write("README.md", "not a migration");
  pg::db_executor exec{options()};

  auto r = migrate(exec, dir);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(*r, (versions{"0001_first", "0002_second", "0010_tenth"}));
  auto rec = recorded();
  ASSERT_EQ(rec.size(), 3u);
  EXPECT_EQ(rec[0].first, "0001_first");
  EXPECT_TRUE(rec[0].second) << "applied_at is set";

  write("0011_eleventh.sql", "CREATE TABLE t11 (id int);");
  auto again = migrate(exec, dir);
  ASSERT_TRUE(again.has_value()) << again.error().message;
  EXPECT_EQ(*again, (versions{"0011_eleventh"}));
  EXPECT_EQ(recorded().size(), 4u);
}

TEST_F(migrations_test, failing_migration_is_rolled_back_and_not_recorded) {
  write("0001_ok.sql", "CREATE TABLE good (id int);");
  write("0002_bad.sql", "CREATE TABLE half_done (id int);\nSELECT no_such_column FROM good;");
  pg::db_executor exec{options()};

  auto r = migrate(exec, dir);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, core::errc::internal);
  EXPECT_NE(r.error().message.find("0002_bad"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("no_such_column"), std::string::npos) << r.error().message;
  EXPECT_TRUE(table_exists("good"));
  EXPECT_FALSE(table_exists("half_done")) << "the failing file's transaction must roll back";
  auto rec = recorded();
  ASSERT_EQ(rec.size(), 1u);
  EXPECT_EQ(rec[0].first, "0001_ok");

  // Fixed file: the next run applies just that one.
  write("0002_bad.sql", "CREATE TABLE half_done (id int);");
  auto fixed = migrate(exec, dir);
  ASSERT_TRUE(fixed.has_value()) << fixed.error().message;
  EXPECT_EQ(*fixed, (versions{"0002_bad"}));

  // The advisory lock was released despite the failure: another session can take it.
  pqxx::connection c{db->url()};
  pqxx::nontransaction tx{c};
  EXPECT_TRUE(tx.exec1("SELECT pg_try_advisory_lock(" + std::to_string(pg::migration_lock_key) + ")")[0].as<bool>());
}

TEST_F(migrations_test, concurrent_runners_do_not_double_apply) {
  // Not idempotent on purpose: applying any file twice would fail.
  write("0001_slow.sql", "CREATE TABLE once_a (id int); SELECT pg_sleep(0.3);");
  write("0002_more.sql", "CREATE TABLE once_b (id int);");
  pg::db_executor a{options()};
  pg::db_executor b{options()};
  std::optional<core::result<versions>> ra;
  std::optional<core::result<versions>> rb;
  run_coro(io, [&]() -> net::awaitable<void> {
    auto ex = co_await net::this_coro::executor;
    auto from = dir;
    net::co_spawn(
        ex,
        [&, from]() -> net::awaitable<void> {
          ra = co_await a.run(pg::migrate_blocking, from);
        },
        net::detached);
    net::co_spawn(
        ex,
        [&, from]() -> net::awaitable<void> {
          rb = co_await b.run(pg::migrate_blocking, from);
        },
        net::detached);
    while (!ra || !rb) {
      co_await sleep_for(10ms);
    }
  });
  ASSERT_TRUE(ra && rb);
  ASSERT_TRUE(ra->has_value()) << ra->error().message;
  ASSERT_TRUE(rb->has_value()) << rb->error().message;
  versions all = **ra;
  all.insert(all.end(), (*rb)->begin(), (*rb)->end());
  std::sort(all.begin(), all.end());
  EXPECT_EQ(all, (versions{"0001_slow", "0002_more"})) << "each file applied exactly once overall";
  EXPECT_TRUE((*ra)->empty() || (*rb)->empty()) << "the second runner waited for the lock and found nothing to do";
  EXPECT_EQ(recorded().size(), 2u);
}

TEST_F(migrations_test, bad_directories_and_names_are_errors) {
  pg::db_executor exec{options()};
  auto missing = migrate(exec, dir + "/nope");
  ASSERT_FALSE(missing.has_value());
  EXPECT_NE(missing.error().message.find("not a directory"), std::string::npos) << missing.error().message;

  write("1_short.sql", "SELECT 1;");
  auto misnamed = migrate(exec, dir);
  ASSERT_FALSE(misnamed.has_value());
  EXPECT_NE(misnamed.error().message.find("1_short.sql"), std::string::npos) << misnamed.error().message;
  fs::remove(fs::path(dir) / "1_short.sql");

  write("0001_a.sql", "SELECT 1;");
  write("0001_b.sql", "SELECT 1;");
  auto dup = migrate(exec, dir);
  ASSERT_FALSE(dup.has_value());
  EXPECT_NE(dup.error().message.find("same number"), std::string::npos) << dup.error().message;
  EXPECT_FALSE(table_exists("switchyard_schema_migrations")) << "a bad directory fails before touching the database";
}

}  // namespace
