// tenant_repo: users, teams, organisations and budgets in Postgres (migrations/0002_keys.sql),
// with team memberships, the team archive and the audit log.
//
// Owner: none (free functions). Thread: a db thread only, via db_executor::run:
//   auto row = co_await db.run(pg::get_entity_blocking, kind, id, expand);
// Blocking: every *_blocking function runs SQL. Out: JSON text (to_jsonb of the rows;
// timestamps as ISO-8601) or plain structs; no pqxx types.
//
// `kind` is a table name: "users", "teams", "organizations", "end_users" or "budgets" (anything else
// throws std::invalid_argument). Patches are JSON objects of column -> value, as in
// key_repo; only the kind's patch columns are applied. Every change writes audit_log rows
// (table_name = kind) in the same transaction.
// Errors: SQL failures throw (db_executor::run turns them into result errors), except
// foreign-key, check and unique violations of a patch, which come back as `problem`: a
// message for the caller naming the field and the value's problem ("budget_id 'x' does
// not exist"), without the database's text.
#pragma once
#include "switchyard/store/postgres/key_repo.hpp"
#include "switchyard/store/postgres/pqxx_fwd.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace switchyard::store::postgres {

struct entity_write {
  std::optional<std::string> row_json;  // the row after the change; empty: not found / exists
  std::string problem;                  // a refused value (foreign key, check, unique), for a 400
  std::string problem_field;            // the field holding it, when known
  std::string email_taken;              // a new user's email is this user's (case-insensitive)
};

// The columns a patch may set, per kind.
const std::vector<std::string>& entity_patch_columns(const std::string& kind);

// Inserts the row `id` with the patch ("created" audit row). row_json empty if `id` exists.
// A user whose user_email another user has (compared case-insensitively, as LiteLLM) is not
// inserted: email_taken is that user's email. The check holds a transaction-scoped advisory
// lock on the lower-cased email, so two concurrent inserts of one email cannot both pass
// (no unique index: databases may already hold duplicates).
entity_write insert_entity_blocking(pqxx::connection& c, const std::string& kind, const std::string& id,
                                    const std::string& patch_json, const change_actor& who);

// /user/new in one transaction: the user `id` (as insert_entity_blocking), its memberships
// of `teams` (role "user", audited "member_added" as /team/member_add) and, when
// `key_token` is set, its key (as insert_key_blocking, with `key_patch_json`). Nothing is
// written unless all of it is: a refused key (alias or value taken) or a team that does
// not exist leaves no user behind.
struct new_user_key {
  std::string token;
  std::string patch_json;
};
struct new_user_write {
  entity_write user;         // row_json: the user row after the memberships
  key_write_result key;      // with a key: the key written, or why not
  std::string missing_team;  // a team of `teams` that does not exist
};
new_user_write insert_user_blocking(pqxx::connection& c, const std::string& id, const std::string& patch_json,
                                    const std::vector<std::string>& teams, const std::optional<new_user_key>& key,
                                    const change_actor& who);

// Applies the patch to row `id` ("updated", or `action`, with before/after). Empty if none.
entity_write update_entity_blocking(pqxx::connection& c, const std::string& kind, const std::string& id,
                                    const std::string& patch_json, const change_actor& who,
                                    const std::string& action);

// /team/new (`is_new`) and /team/update in one transaction, the team's row locked: the
// team's row as insert_entity_blocking / update_entity_blocking write it, then its
// members' default budget, then `members_json` (members_with_roles: added as
// add_team_members_blocking adds them, a member's role replaced). Nothing is written
// unless all of it is, so a failure leaves no team without the default budget it was
// given, and a retry makes no second team. row_json: the team's row after all of it;
// empty when a new team's id is taken or the team to update does not exist.
// The members' default budget (team_member_budget, team_member_budget_duration), kept as
// LiteLLM keeps it: a budgets row whose id is the team's metadata.team_member_budget_id
// (`team-<alias>-budget-<hex>`, `team-budget-<hex>` without an alias). The row the team
// names takes `member_budget_json` (a budgets patch; "{}": left alone); when the team
// names none (or one that is gone) and `create_member_budget` is set, a budgets row is
// made with it and named in the team's metadata.
struct team_write {
  std::string team_id;
  bool is_new = false;
  std::string patch_json = "{}";          // the team's columns
  std::string member_budget_json = "{}";  // a budgets patch
  bool create_member_budget = false;      // worth a budgets row (a value, not only nulls)
  std::string members_json = "[]";        // [{role, user_id?, user_email?}]
};
entity_write write_team_blocking(pqxx::connection& c, const team_write& in, const change_actor& who);

// An organisation or an end user (`kind`: "organizations", "end_users") and the budgets
// row that holds its limits, in one transaction, its row locked: /organization/new|update
// and /customer/new|update. The row is written as insert_entity_blocking /
// update_entity_blocking write it; `budget_json` is a budgets patch ("{}": none). A new
// row that names no budget_id gets a new budgets row with the limits (an organisation
// always, as in LiteLLM; an end user only when there are limits); an update's limits go
// to the row its budget_id names (after the update), or to a new one it is then linked
// to. Nothing is written unless all of it is: a refused row leaves no budgets row behind,
// a refused budget no changed row. row_json: the row after all of it; empty when a new
// row's id is taken or the row to update does not exist.
struct budgeted_write {
  std::string kind = "organizations";
  std::string id;
  bool is_new = false;
  std::string patch_json = "{}";
  std::string budget_json = "{}";
};
entity_write write_budgeted_blocking(pqxx::connection& c, const budgeted_write& in, const change_actor& who);

// The row `id`, or empty. With `expand`, related rows are added under extra fields:
// teams: "keys", "team_memberships"; users: "keys", "teams"; organizations:
// "litellm_budget_table", "teams", "members"; end_users: "litellm_budget_table"; budgets: nothing.
std::optional<std::string> get_entity_blocking(pqxx::connection& c, const std::string& kind, const std::string& id,
                                               bool expand);

// Deletes the rows in `ids` (audited "deleted") and returns them (JSON text each).
// teams: archived in deleted_teams; their keys are deleted and archived too; members lose
// the team. users: their keys are deleted and archived; teams drop them from
// members_with_roles. organizations: teams and users keep existing, without the
// organisation. budgets: references to them are cleared.
std::vector<std::string> delete_entities_blocking(pqxx::connection& c, const std::string& kind,
                                                  const std::vector<std::string>& ids, const change_actor& who);

struct entity_list_query {
  std::string kind;
  std::string filter_json = "{}";        // {column: value} equality filters (columns of the kind)
  std::optional<std::string> member_of;  // teams: only teams this user is a member of
  int page = 1;                          // 1-based
  int size = 25;                         // 1..1000
};
struct entity_page {
  std::vector<std::string> rows;  // ordered by created_at, id
  std::int64_t total_count = 0;
};
entity_page list_entities_blocking(pqxx::connection& c, const entity_list_query& q);

// /team/member_add: `members_json` is an array of {user_id?, user_email?, role}. Users that
// do not exist are created (user_id: the given one, else the user with that email, else a
// uuid). Each gets a team_memberships row (budget: a new budgets row with
// `max_budget_in_team` when set), the team in users.teams, and an entry in the team's
// members_with_roles (replacing an older one). A membership a sign-in added from the
// groups claim (sso_managed) becomes an ordinary one, which sign-ins never remove.
// Audited "member_added". Empty row_json if the team does not exist.
// `updated_users_json` is the JSON array of the members' rows.
// With `skip_members`, a member already in the team (its user_id, or the user with its
// email, has a membership that the groups claim did not add, or an entry in
// members_with_roles) is left as it is (role and budget unchanged; LiteLLM's
// /team/member_add) and its index is in `already_in`; when every member is, nothing is
// written and team_json is the row as it was.
struct member_write {
  std::optional<std::string> team_json;
  std::string updated_users_json = "[]";
  std::string problem;
  std::vector<std::size_t> already_in;
};
member_write add_team_members_blocking(pqxx::connection& c, const std::string& team_id, const std::string& members_json,
                                       const std::optional<double>& max_budget_in_team, const change_actor& who,
                                       bool skip_members);

// /team/member_delete: by user_id, else by user_email. Audited "member_removed".
// problem set when the user is not a member.
member_write remove_team_member_blocking(pqxx::connection& c, const std::string& team_id, const std::string& user_id,
                                         const std::string& user_email, const change_actor& who);

// /team/member_update, in one transaction with the team's row locked: the member
// (`user_id`, else the member of the team with `user_email`: its members_with_roles entry,
// else its user row) gets `role` (when set: team_memberships.role and its entry in
// members_with_roles, the entry's user_email set to `user_email` when given) and its own
// budget in the team, `budget_patch_json` (budgets columns max_budget, tpm_limit,
// rpm_limit; a value sets it, null clears it, an absent column is left as it is, as
// LiteLLM's merge-patch):
// * a budgets row of the membership's own, which nothing else names: patched in place;
// * otherwise (none, or one shared with others, e.g. the team's default): a new row, made
//   from the shared one's (else the team default's) limits, schedule included, with the
//   patch over them, so editing one member never changes another's budget;
// * when no limit is left (max_budget, soft_budget, max_parallel_requests, tpm_limit,
//   rpm_limit, model_max_budget, budget_duration all unset), the membership names no row
//   and the member falls back to the team's default.
// A member in members_with_roles without a team_memberships row gets one; a membership a
// sign-in added from the groups claim (sso_managed) becomes an ordinary one. Audited:
// team_memberships "updated" (object `<team_id>:<user_id>`), budgets "created"/"updated",
// teams "updated" when the role changed. user_id empty: the user is not a member (nothing
// written); team_found false: no such team.
struct member_update {
  std::string team_id;
  std::string user_id;
  std::string user_email;
  std::optional<std::string> role;  // "admin" or "user"
  std::string budget_patch_json = "{}";
};
struct member_update_result {
  bool team_found = false;
  std::string user_id;          // the member changed; empty when not a member
  std::string membership_json;  // the team_memberships row after the change
};
member_update_result update_team_member_blocking(pqxx::connection& c, const member_update& in,
                                                 const change_actor& who);

// Organisation members (organization_memberships; /organization/member_add, _update,
// _delete). The permissions read a caller's role and organisation from their users row
// (user_role, organization_id), so each change keeps that row in step, in the same
// transaction:
// * a member without an organisation gets this one as theirs (users.organization_id),
//   except a proxy_admin or proxy_admin_viewer (whose powers are global: an org_admin
//   would otherwise get an org_admin's powers over them);
// * role org_admin makes the user's user_role org_admin (a proxy_admin or
//   proxy_admin_viewer keeps theirs); one whose users.organization_id is another
//   organisation cannot be made its org_admin (`problem`): a user is org_admin of one;
// * leaving org_admin (another role, or removed) makes an org_admin of this organisation
//   an internal_user again, and removal clears users.organization_id when it is this one.
// `users_changed` lists the users whose row changed (their cached keys must reload).
struct org_member_spec {
  std::string user_id;     // "" -> user_email
  std::string user_email;  // "" -> user_id
  std::string role;        // org_admin | internal_user | internal_user_viewer
};
struct org_member_write {
  bool org_found = false;
  std::string problem;  // a 400; nothing was written
  std::string updated_users_json = "[]";
  std::string memberships_json = "[]";
  std::vector<std::string> users_changed;
};
// Adds the members in one transaction (the organisation's row locked). A user found by
// neither user_id nor user_email is created (user_id or a uuid; the users table's default
// role). A member already in the organisation is a problem. With `max_budget`, each new
// membership gets a budgets row of its own with that max_budget. Audited: users
// "created"/"updated", budgets "created", organization_memberships "created" (object
// `<organization_id>:<user_id>`).
org_member_write add_org_members_blocking(pqxx::connection& c, const std::string& organization_id,
                                          const std::vector<org_member_spec>& members,
                                          const std::optional<double>& max_budget, const change_actor& who);

// /organization/member_update (role and/or max_budget: the membership's budgets row
// patched, made when it has none) or, with `remove`, /organization/member_delete. The
// member: user_id, else the user with user_email. One transaction, audited
// (organization_memberships "updated"/"deleted", budgets, users).
struct org_member_change {
  std::string organization_id;
  std::string user_id;
  std::string user_email;
  std::optional<std::string> role;
  std::optional<double> max_budget;
  bool remove = false;
  bool by_proxy_admin = false;  // only a proxy admin changes a global admin's membership
};
struct org_member_change_result {
  bool org_found = false;
  bool email_unknown = false;  // user_email names no user
  bool not_member = false;
  bool global_admin = false;   // the member is a proxy admin (viewer) and the caller is not
  std::string problem;         // a 400 (see add_org_members_blocking)
  std::string user_id;
  std::string membership_json;  // after the update (with litellm_budget_table) / the deleted row
  std::vector<std::string> users_changed;
};
org_member_change_result change_org_member_blocking(pqxx::connection& c, const org_member_change& in,
                                                    const change_actor& who);

// The ids of the teams a user is a member of (team_memberships).
std::vector<std::string> teams_of_user_blocking(pqxx::connection& c, const std::string& user_id);

// The UI sign-in's team memberships (docs/sso.md, "Teams from a groups claim"), in one
// transaction, audited as `who`:
// * `default_teams` (a user created by this sign-in: default_internal_user_params.teams):
//   joined as /team/member_add would; teams that do not exist are listed in `missing`.
// * with `groups_known`: each team of `groups` is joined as "user", marked sso_managed,
//   unless the user is a member already (whatever the role or origin: never changed); a
//   team that does not exist is created first with `new_team_patch_json` (a /team/new
//   patch). Then every sso_managed membership of a team not in `named` is removed as
//   /team/member_delete would. Memberships not marked are never removed.
struct sso_default_team {
  std::string team_id;
  std::string role = "user";  // "admin" or "user"
  std::optional<double> max_budget_in_team;
};
struct sso_team_sync {
  std::string user_id;
  std::vector<sso_default_team> default_teams;
  bool groups_known = false;         // false: the claim is absent or unreadable; leave SSO memberships alone
  std::vector<std::string> groups;   // the teams to join (the claim's ids, at most the cap)
  std::vector<std::string> named;    // every id the claim names (kept memberships), a superset of groups
  std::string new_team_patch_json = "{}";
};
struct sso_team_changes {
  std::vector<std::string> created, joined, left, missing;
};
sso_team_changes sync_sso_teams_blocking(pqxx::connection& c, const sso_team_sync& in, const change_actor& who);

}  // namespace switchyard::store::postgres
