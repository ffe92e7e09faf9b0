// key_repo against a real Postgres: each test gets its own database with the shipped
// migrations applied, and calls the repo through db_executor as the gateway does.
#include "switchyard/store/postgres/key_repo.hpp"
#include "switchyard/store/postgres/tenant_repo.hpp"

#include "switchyard/store/postgres/db_executor.hpp"
#include "switchyard/store/postgres/migrations.hpp"

#include "store_test_support.hpp"

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

namespace {

using namespace store_test;
namespace core = switchyard::core;
namespace pg = switchyard::store::postgres;
using json = nlohmann::json;

class key_repo_test : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server_url = env_or_empty("SWITCHYARD_TEST_DATABASE_URL");
    if (server_url.empty()) {
      FAIL() << missing_env_message("SWITCHYARD_TEST_DATABASE_URL");
    }
    db = std::make_unique<fresh_database>(server_url);
    pg::db_options o;
    o.url = db->url();
    o.pool_size = 1;
    exec = std::make_unique<pg::db_executor>(o);
    auto r = run([](pqxx::connection& c, const std::string& dir) { return pg::migrate_blocking(c, dir); },
                 source_dir + "/migrations");
    ASSERT_TRUE(r.has_value()) << r.error().message;
  }

  // Runs one blocking repo call through the executor and returns its result.
  template <class F, class... Args>
  core::result<std::invoke_result_t<F&, pqxx::connection&, Args&...>> run(F f, Args... args) {
    using value = std::invoke_result_t<F&, pqxx::connection&, Args&...>;
    std::optional<core::result<value>> out;
    run_coro(io, [&]() -> net::awaitable<void> { out = co_await exec->run(f, args...); });
    return std::move(*out);
  }

  std::optional<pg::key_record> find(const std::string& token) {
    auto r = run(pg::find_key_by_hash_blocking, token);
    EXPECT_TRUE(r.has_value()) << r.error().message;
    return r.has_value() ? *r : std::nullopt;
  }

  std::int64_t count(const std::string& sql) {
    pqxx::connection c{db->url()};
    pqxx::read_transaction tx{c};
    return tx.exec1(sql)[0].as<std::int64_t>();
  }

  std::unique_ptr<fresh_database> db;
  // The io_context must outlive the executor's threads: a db thread still holds a copy of
  // the loop's executor for a moment after it posted the completion (db_executor.hpp).
  // Members are destroyed in reverse order, so `exec` (which joins) goes first.
  net::io_context io;
  std::unique_ptr<pg::db_executor> exec;
  pg::change_actor admin{"alice", "hash-of-master"};
};

TEST_F(key_repo_test, insert_then_find_with_typed_fields) {
  json patch = {{"key_name", "sk-...abcd"}, {"key_alias", "ci"},   {"models", {"a", "b"}},
                {"max_budget", 2.5},        {"tpm_limit", 1000},   {"metadata", {{"team", "x"}}},
                {"expires", "2030-01-02T03:04:05Z"}, {"token", "ignored"}, {"rotation_count", 99}};
  auto k = run(pg::insert_key_blocking, std::string("h1"), patch.dump(), admin);
  ASSERT_TRUE(k.has_value()) << k.error().message;
  ASSERT_TRUE(k->key.has_value());
  EXPECT_EQ(k->key->token, "h1") << "token comes from the argument, not the patch";
  EXPECT_EQ(k->key->rotation_count, 0) << "rotation_count is not patchable";

  auto f = find("h1");
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->key_name, "sk-...abcd");
  EXPECT_EQ(f->key_alias, "ci");
  EXPECT_EQ(f->models, (std::vector<std::string>{"a", "b"}));
  ASSERT_TRUE(f->max_budget.has_value());
  EXPECT_DOUBLE_EQ(*f->max_budget, 2.5);
  EXPECT_EQ(f->tpm_limit, 1000);
  EXPECT_FALSE(f->rpm_limit.has_value());
  EXPECT_FALSE(f->blocked);
  ASSERT_TRUE(f->expires.has_value());
  EXPECT_EQ(std::chrono::duration_cast<std::chrono::seconds>(f->expires->time_since_epoch()).count(), 1893553445);
  EXPECT_EQ(json::parse(f->row_json)["metadata"]["team"], "x");
  EXPECT_FALSE(f->via_deprecated_token.has_value());

  EXPECT_FALSE(find("nope").has_value());
  auto dup = run(pg::insert_key_blocking, std::string("h1"), std::string("{}"), admin);
  ASSERT_TRUE(dup.has_value());
  EXPECT_FALSE(dup->key.has_value()) << "an existing token is not overwritten";
  EXPECT_TRUE(dup->token_taken);

  auto audit = run(pg::audit_for_blocking, std::string("verification_tokens"), std::string("h1"));
  ASSERT_TRUE(audit.has_value());
  EXPECT_EQ(*audit, (std::vector<std::pair<std::string, std::string>>{{"created", "alice"}}));
}

TEST_F(key_repo_test, update_and_block_are_audited_with_before_and_after) {
  ASSERT_TRUE(run(pg::insert_key_blocking, std::string("h2"), std::string(R"({"models":["a"]})"), admin).has_value());
  auto u = run(pg::update_key_blocking, std::string("h2"), std::string(R"({"models":[],"expires":null})"),
               pg::change_actor{"bob", ""}, std::string("updated"));
  ASSERT_TRUE(u.has_value()) << u.error().message;
  ASSERT_TRUE(u->key.has_value());
  EXPECT_TRUE(u->key->models.empty());

  auto b = run(pg::set_key_blocked_blocking, std::string("h2"), true, admin);
  ASSERT_TRUE(b.has_value() && b->has_value());
  EXPECT_TRUE((*b)->blocked);
  EXPECT_TRUE(find("h2")->blocked);
  auto ub = run(pg::set_key_blocked_blocking, std::string("h2"), false, admin);
  ASSERT_TRUE(ub.has_value() && ub->has_value());
  EXPECT_FALSE(find("h2")->blocked);

  auto missing = run(pg::update_key_blocking, std::string("nope"), std::string("{}"), admin, std::string("updated"));
  ASSERT_TRUE(missing.has_value());
  EXPECT_FALSE(missing->key.has_value());

  auto audit = run(pg::audit_for_blocking, std::string("verification_tokens"), std::string("h2"));
  ASSERT_TRUE(audit.has_value());
  EXPECT_EQ(*audit, (std::vector<std::pair<std::string, std::string>>{
                        {"created", "alice"}, {"updated", "bob"}, {"blocked", "alice"}, {"unblocked", "alice"}}));
  EXPECT_EQ(count("SELECT count(*) FROM audit_log WHERE object_id = 'h2' AND action = 'updated' "
                  "AND before->'models' = '[\"a\"]' AND after->'models' = '[]'"),
            1);
}

TEST_F(key_repo_test, delete_archives_and_audits_in_one_go) {
  ASSERT_TRUE(run(pg::insert_key_blocking, std::string("d1"), std::string("{}"), admin).has_value());
  ASSERT_TRUE(run(pg::insert_key_blocking, std::string("d2"), std::string(R"({"key_alias":"two"})"), admin).has_value());
  ASSERT_TRUE(run(pg::insert_key_blocking, std::string("d3"), std::string("{}"), admin).has_value());
  auto r = run(pg::delete_keys_blocking, std::vector<std::string>{"d1", "unknown"}, std::vector<std::string>{"two"},
               pg::change_actor{"carol", "hash-c"});
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(*r, (std::vector<std::string>{"d1", "d2"}));
  EXPECT_FALSE(find("d1").has_value());
  EXPECT_FALSE(find("d2").has_value());
  EXPECT_TRUE(find("d3").has_value());
  EXPECT_EQ(count("SELECT count(*) FROM deleted_verification_tokens WHERE deleted_by = 'carol' "
                  "AND deleted_by_api_key = 'hash-c' AND row_data->>'key_alias' = 'two' AND token = 'd2'"),
            1);
  EXPECT_EQ(count("SELECT count(*) FROM deleted_verification_tokens"), 2);
  EXPECT_EQ(count("SELECT count(*) FROM audit_log WHERE action = 'deleted' AND changed_by = 'carol' "
                  "AND before IS NOT NULL"),
            2);
}

TEST_F(key_repo_test, regenerate_keeps_the_old_hash_during_grace_only) {
  ASSERT_TRUE(run(pg::insert_key_blocking, std::string("old"), std::string(R"({"spend":1.5,"key_alias":"r"})"), admin)
                  .has_value());
  auto later = std::chrono::system_clock::now() + std::chrono::hours(1);
  auto r = run(pg::regenerate_key_blocking, std::string("old"), std::string("new"), std::string("sk-...wxyz"),
               std::optional<pg::sys_time>(later), std::string(R"({"models":["m"]})"), admin);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  ASSERT_TRUE(r->key.has_value());
  EXPECT_FALSE(r->token_taken);
  EXPECT_EQ(r->key->token, "new");
  EXPECT_EQ(r->key->key_name, "sk-...wxyz");
  EXPECT_EQ(r->key->rotation_count, 1);
  EXPECT_DOUBLE_EQ(r->key->spend, 1.5) << "spend is kept";
  EXPECT_EQ(r->key->models, (std::vector<std::string>{"m"}));

  auto via_old = find("old");
  ASSERT_TRUE(via_old.has_value()) << "inside the grace period the old hash resolves";
  EXPECT_EQ(via_old->token, "new");
  EXPECT_EQ(via_old->via_deprecated_token, "old");
  ASSERT_TRUE(via_old->deprecated_revoke_at.has_value());

  // Second rotation without grace: the first old hash now points at the newest token.
  auto r2 = run(pg::regenerate_key_blocking, std::string("new"), std::string("newer"), std::string("sk-...0000"),
                std::optional<pg::sys_time>(), std::string("{}"), admin);
  ASSERT_TRUE(r2.has_value() && r2->key.has_value());
  EXPECT_EQ(r2->key->rotation_count, 2);
  EXPECT_FALSE(find("new").has_value()) << "no grace: the previous value stops at once";
  ASSERT_TRUE(find("old").has_value());
  EXPECT_EQ(find("old")->token, "newer");

  // Grace over.
  {
    pqxx::connection c{db->url()};
    pqxx::work tx{c};
    tx.exec("UPDATE deprecated_verification_tokens SET revoke_at = now() - interval '1 second'");
    tx.commit();
  }
  EXPECT_FALSE(find("old").has_value());

  auto missing = run(pg::regenerate_key_blocking, std::string("nope"), std::string("x"), std::string("sk-...x"),
                     std::optional<pg::sys_time>(), std::string("{}"), admin);
  ASSERT_TRUE(missing.has_value());
  EXPECT_FALSE(missing->key.has_value());
  EXPECT_FALSE(missing->token_taken);
}

// /v2/key/info's lookup: the keys asked for in their order, each once, an old hash in its
// grace period resolving to its key, and nothing for a hash that names no key.
TEST_F(key_repo_test, several_keys_by_hash_in_the_order_asked_each_once) {
  for (const char* t : {"k1", "k2", "k3"}) {
    ASSERT_TRUE(run(pg::insert_key_blocking, std::string(t), std::string("{}"), admin).has_value());
  }
  auto later = std::chrono::system_clock::now() + std::chrono::hours(1);
  ASSERT_TRUE(run(pg::regenerate_key_blocking, std::string("k3"), std::string("k3b"), std::string("sk-...k3b"),
                  std::optional<pg::sys_time>(later), std::string("{}"), admin)
                  .has_value());
  auto r = run(pg::find_keys_by_hashes_blocking,
               std::vector<std::string>{"k2", "nope", "k3", "k1", "k2", "k3b"});
  ASSERT_TRUE(r.has_value()) << r.error().message;
  std::vector<std::string> tokens;
  for (const auto& k : *r) {
    tokens.push_back(k.token);
  }
  EXPECT_EQ(tokens, (std::vector<std::string>{"k2", "k3b", "k1"}));
  auto none = run(pg::find_keys_by_hashes_blocking, std::vector<std::string>{});
  ASSERT_TRUE(none.has_value());
  EXPECT_TRUE(none->empty());
}

// A new value that is already another key's was a unique violation thrown out of the
// repository (a 500 quoting the database): it is reported, and nothing changes.
TEST_F(key_repo_test, regenerate_to_a_taken_value_changes_nothing) {
  ASSERT_TRUE(run(pg::insert_key_blocking, std::string("a"), std::string(R"({"key_alias":"ka"})"), admin).has_value());
  ASSERT_TRUE(run(pg::insert_key_blocking, std::string("b"), std::string(R"({"key_alias":"kb"})"), admin).has_value());
  auto r = run(pg::regenerate_key_blocking, std::string("a"), std::string("b"), std::string("sk-...b"),
               std::optional<pg::sys_time>(), std::string("{}"), admin);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_TRUE(r->token_taken);
  EXPECT_FALSE(r->key.has_value());
  ASSERT_TRUE(find("a").has_value());
  EXPECT_EQ(find("a")->rotation_count, 0);
  EXPECT_EQ(find("b")->key_alias, "kb");
  EXPECT_EQ(count("SELECT count(*) FROM audit_log WHERE action = 'regenerated'"), 0);
}

// Aliases are unique among keys: an insert, an update or a regeneration that would give
// another key's alias writes nothing; keeping a key's own alias is fine, also where an
// older duplicate exists (made before the rule, straight in the table here).
TEST_F(key_repo_test, a_key_alias_another_key_has_is_refused) {
  ASSERT_TRUE(run(pg::insert_key_blocking, std::string("u1"), std::string(R"({"key_alias":"dup"})"), admin)
                  ->key.has_value());
  auto again = run(pg::insert_key_blocking, std::string("u2"), std::string(R"({"key_alias":"dup"})"), admin);
  ASSERT_TRUE(again.has_value()) << again.error().message;
  EXPECT_TRUE(again->alias_taken);
  EXPECT_FALSE(again->key.has_value());
  EXPECT_FALSE(find("u2").has_value()) << "nothing written";

  ASSERT_TRUE(run(pg::insert_key_blocking, std::string("u3"), std::string(R"({"key_alias":"other"})"), admin)
                  ->key.has_value());
  auto moved = run(pg::update_key_blocking, std::string("u3"), std::string(R"({"key_alias":"dup"})"), admin,
                   std::string("updated"));
  ASSERT_TRUE(moved.has_value());
  EXPECT_TRUE(moved->alias_taken);
  EXPECT_EQ(find("u3")->key_alias, "other");
  auto regen = run(pg::regenerate_key_blocking, std::string("u3"), std::string("u4"), std::string("sk-...u4"),
                   std::optional<pg::sys_time>(), std::string(R"({"key_alias":"dup"})"), admin);
  ASSERT_TRUE(regen.has_value());
  EXPECT_TRUE(regen->alias_taken);
  EXPECT_TRUE(find("u3").has_value());

  auto own = run(pg::update_key_blocking, std::string("u1"), std::string(R"({"key_alias":"dup","max_budget":3})"),
                 admin, std::string("updated"));
  ASSERT_TRUE(own.has_value() && own->key.has_value()) << "its own alias";
  {
    pqxx::connection c{db->url()};
    pqxx::work tx{c};
    tx.exec("UPDATE verification_tokens SET key_alias = 'dup' WHERE token = 'u3'");
    tx.commit();
  }
  auto legacy = run(pg::update_key_blocking, std::string("u3"), std::string(R"({"key_alias":"dup","max_budget":4})"),
                    admin, std::string("updated"));
  ASSERT_TRUE(legacy.has_value() && legacy->key.has_value()) << "an older duplicate keeps its alias";
  auto unset = run(pg::insert_key_blocking, std::string("u5"), std::string(R"({"key_alias":null})"), admin);
  ASSERT_TRUE(unset.has_value() && unset->key.has_value());
  auto unset2 = run(pg::insert_key_blocking, std::string("u6"), std::string("{}"), admin);
  ASSERT_TRUE(unset2.has_value() && unset2->key.has_value()) << "keys without an alias are not duplicates";
}

// A key's budget_id references budgets (migration 0014): the route checks the budget
// exists first, but a budget deleted after that check must not leave the key naming it.
// Each write is refused as budget_missing and writes nothing; deleting a budget in use
// clears it on its keys (ON DELETE SET NULL, as LiteLLM's foreign key).
TEST_F(key_repo_test, a_budget_id_that_names_no_budget_is_refused_and_a_deleted_budget_cleared) {
  const std::string gone = R"({"budget_id":"deleted-meanwhile","key_alias":"b1"})";
  auto made = run(pg::insert_key_blocking, std::string("b1"), gone, admin);
  ASSERT_TRUE(made.has_value()) << made.error().message;
  EXPECT_TRUE(made->budget_missing);
  EXPECT_FALSE(made->key.has_value());
  EXPECT_FALSE(find("b1").has_value()) << "nothing written";

  ASSERT_TRUE(run(pg::insert_key_blocking, std::string("b2"), std::string("{}"), admin)->key.has_value());
  auto updated = run(pg::update_key_blocking, std::string("b2"), std::string(R"({"budget_id":"deleted-meanwhile"})"),
                     admin, std::string("updated"));
  ASSERT_TRUE(updated.has_value()) << updated.error().message;
  EXPECT_TRUE(updated->budget_missing);
  EXPECT_FALSE(updated->key.has_value());
  auto regen = run(pg::regenerate_key_blocking, std::string("b2"), std::string("b3"), std::string("sk-...b3"),
                   std::optional<pg::sys_time>(), std::string(R"({"budget_id":"deleted-meanwhile"})"), admin);
  ASSERT_TRUE(regen.has_value()) << regen.error().message;
  EXPECT_TRUE(regen->budget_missing);
  EXPECT_FALSE(regen->key.has_value());
  EXPECT_TRUE(find("b2").has_value()) << "not moved";
  EXPECT_EQ(count("SELECT count(*) FROM verification_tokens WHERE budget_id IS NOT NULL"), 0);
  EXPECT_EQ(count("SELECT count(*) FROM audit_log WHERE table_name = 'verification_tokens' AND action <> 'created'"),
            0);

  // /user/new's key, in the user's transaction: no user either.
  pg::new_user_key key{"b4", gone};
  auto user = run(pg::insert_user_blocking, std::string("u-b4"), std::string("{}"), std::vector<std::string>{},
                  std::optional<pg::new_user_key>(key), admin);
  ASSERT_TRUE(user.has_value()) << user.error().message;
  EXPECT_TRUE(user->key.budget_missing);
  EXPECT_EQ(count("SELECT count(*) FROM users WHERE user_id = 'u-b4'"), 0);

  // A budget that exists is taken, and its delete clears it on the key.
  auto budget = run(pg::insert_entity_blocking, std::string("budgets"), std::string("kept-then-deleted"),
                    std::string(R"({"max_budget":1})"), admin);
  ASSERT_TRUE(budget.has_value() && budget->row_json.has_value());
  auto linked = run(pg::update_key_blocking, std::string("b2"), std::string(R"({"budget_id":"kept-then-deleted"})"),
                    admin, std::string("updated"));
  ASSERT_TRUE(linked.has_value() && linked->key.has_value());
  auto deleted = run(pg::delete_entities_blocking, std::string("budgets"),
                     std::vector<std::string>{"kept-then-deleted"}, admin);
  ASSERT_TRUE(deleted.has_value()) << deleted.error().message;
  EXPECT_EQ(deleted->size(), 1u);
  EXPECT_EQ(count("SELECT count(*) FROM verification_tokens WHERE token = 'b2' AND budget_id IS NULL"), 1);
}

TEST_F(key_repo_test, list_is_paginated_and_filtered) {
  for (int i = 0; i < 5; ++i) {
    json patch = {{"user_id", i % 2 == 0 ? "u-even" : "u-odd"}};
    ASSERT_TRUE(run(pg::insert_key_blocking, "k" + std::to_string(i), patch.dump(), admin).has_value());
  }
  pg::key_list_query q;
  q.page = 1;
  q.size = 2;
  auto p1 = run(pg::list_keys_blocking, q);
  ASSERT_TRUE(p1.has_value()) << p1.error().message;
  EXPECT_EQ(p1->total_count, 5);
  ASSERT_EQ(p1->keys.size(), 2u);
  q.page = 3;
  auto p3 = run(pg::list_keys_blocking, q);
  ASSERT_TRUE(p3.has_value());
  ASSERT_EQ(p3->keys.size(), 1u);
  q.page = 1;
  q.size = 10;
  q.user_id = "u-even";
  auto even = run(pg::list_keys_blocking, q);
  ASSERT_TRUE(even.has_value());
  EXPECT_EQ(even->total_count, 3);
  EXPECT_EQ(even->keys.size(), 3u);
}

TEST_F(key_repo_test, bad_patch_is_an_error_not_a_crash) {
  auto r = run(pg::insert_key_blocking, std::string("bad"), std::string("[1,2]"), admin);
  EXPECT_FALSE(r.has_value());
  auto wrong_type = run(pg::insert_key_blocking, std::string("bad2"), std::string(R"({"tpm_limit":"lots"})"), admin);
  EXPECT_FALSE(wrong_type.has_value());
  EXPECT_FALSE(find("bad2").has_value()) << "the failed insert rolled back";
}

}  // namespace

// The auth hot path caches what one lookup returns: the key with its team, user and
// organisation (the key's organization_id, else its team's).
TEST_F(key_repo_test, find_loads_team_user_and_org_with_the_key) {
  std::string users = "users", teams = "teams", orgs = "organizations";
  ASSERT_TRUE(run(pg::insert_entity_blocking, orgs, std::string("o1"), json{{"models", {"a"}}}.dump(), admin)
                  .value()
                  .row_json);
  ASSERT_TRUE(run(pg::insert_entity_blocking, teams, std::string("t1"),
                  json{{"models", {"a", "b"}}, {"organization_id", "o1"}, {"model_aliases", {{"fast", "a"}}}}.dump(),
                  admin)
                  .value()
                  .row_json);
  ASSERT_TRUE(run(pg::insert_entity_blocking, users, std::string("u1"),
                  json{{"user_role", "internal_user_viewer"}}.dump(), admin)
                  .value()
                  .row_json);
  auto ins = run(pg::insert_key_blocking, std::string("tok1"), json{{"team_id", "t1"}, {"user_id", "u1"}}.dump(), admin);
  ASSERT_TRUE(ins.has_value() && ins->key);
  auto k = find("tok1");
  ASSERT_TRUE(k);
  ASSERT_TRUE(k->team_json && k->user_json && k->org_json);
  EXPECT_EQ(json::parse(*k->team_json)["model_aliases"]["fast"], "a");
  EXPECT_EQ(json::parse(*k->user_json)["user_role"], "internal_user_viewer");
  EXPECT_EQ(json::parse(*k->org_json)["organization_id"], "o1") << "through the team";

  auto lone = run(pg::insert_key_blocking, std::string("tok2"), json{{"team_id", "missing"}}.dump(), admin);
  ASSERT_TRUE(lone.has_value() && lone->key);
  auto k2 = find("tok2");
  ASSERT_TRUE(k2);
  EXPECT_FALSE(k2->team_json || k2->user_json || k2->org_json);
}

TEST_F(key_repo_test, tenant_writes_are_audited_and_team_deletes_archived_with_their_keys) {
  std::string teams = "teams";
  auto bad = run(pg::insert_entity_blocking, teams, std::string("t-bad"), json{{"organization_id", "nope"}}.dump(), admin);
  ASSERT_TRUE(bad.has_value());
  EXPECT_FALSE(bad->row_json);
  EXPECT_EQ(bad->problem, "Organization not found for organization_id=nope") << "LiteLLM's words, not Postgres'";
  EXPECT_EQ(bad->problem_field, "organization_id");
  // A check the handlers make first (user_role): the repository still names the field, not
  // the constraint.
  std::string users = "users";
  auto role = run(pg::insert_entity_blocking, users, std::string("u-bad"), json{{"user_role", "wizard"}}.dump(), admin);
  ASSERT_TRUE(role.has_value());
  EXPECT_FALSE(role->row_json);
  EXPECT_EQ(role->problem, "user_role 'wizard' is not an allowed value");
  EXPECT_EQ(role->problem_field, "user_role");

  ASSERT_TRUE(run(pg::insert_entity_blocking, teams, std::string("t2"), json{{"team_alias", "x"}}.dump(), admin)
                  .value()
                  .row_json);
  EXPECT_FALSE(run(pg::insert_entity_blocking, teams, std::string("t2"), std::string("{}"), admin).value().row_json)
      << "exists";
  std::string action = "updated";
  auto up = run(pg::update_entity_blocking, teams, std::string("t2"), json{{"team_alias", "y"}, {"spend", 3}}.dump(),
                admin, action);
  ASSERT_TRUE(up.has_value() && up->row_json);
  EXPECT_EQ(json::parse(*up->row_json)["team_alias"], "y");
  auto members = json::array({{{"user_id", "m1"}, {"role", "admin"}}}).dump();
  std::optional<double> budget = 4.0;
  auto added = run(pg::add_team_members_blocking, std::string("t2"), members, budget, admin, false);
  ASSERT_TRUE(added.has_value() && added->team_json);
  EXPECT_EQ(count("SELECT count(*) FROM team_memberships m JOIN budgets b USING (budget_id) WHERE m.user_id = 'm1' "
                  "AND m.role = 'admin' AND b.max_budget = 4"),
            1);
  ASSERT_TRUE(run(pg::insert_key_blocking, std::string("tok3"), json{{"team_id", "t2"}}.dump(), admin).value().key);

  std::vector<std::string> ids{"t2", "not-there"};
  auto del = run(pg::delete_entities_blocking, teams, ids, admin);
  ASSERT_TRUE(del.has_value());
  ASSERT_EQ(del->size(), 1u);
  EXPECT_EQ(count("SELECT count(*) FROM deleted_teams WHERE team_id = 't2' AND deleted_by = 'alice' "
                  "AND row_data->>'team_alias' = 'y'"),
            1);
  EXPECT_EQ(count("SELECT count(*) FROM deleted_verification_tokens WHERE token = 'tok3'"), 1);
  EXPECT_EQ(count("SELECT count(*) FROM verification_tokens WHERE token = 'tok3'"), 0);
  EXPECT_EQ(count("SELECT count(*) FROM users WHERE user_id = 'm1' AND teams = '{}'"), 1);
  EXPECT_EQ(count("SELECT count(*) FROM audit_log WHERE table_name = 'teams' AND object_id = 't2'"), 4)
      << "created, updated, member_added, deleted";
}
