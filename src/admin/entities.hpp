// What the tenant handlers (users.cpp, teams.cpp, organizations.cpp, budgets.cpp) share
// (private to admin/): one row of a kind ("users", "teams", "organizations", "budgets")
// fetched, inserted, updated, listed or deleted, with the API's errors (404, 400, 403), the
// org_admin checks, and the request field tables.
// Thread: the loop thread. Never blocks: SQL runs on db_executor threads.
#pragma once
#include "handlers.hpp"

#include "switchyard/store/postgres/tenant_repo.hpp"

#include <optional>
#include <span>
#include <string>

namespace switchyard::admin {

// The row `id` of `kind`, with its related rows when `expand`; empty when there is none.
net::awaitable<core::result<std::optional<json>>> get_row(const route_context& c, std::string_view kind, std::string id,
                                                          bool expand);

// For an org_admin (scope org): the patch's organization_id must be theirs, and a new row
// (`is_new`) is put in their organisation. 403 "you may only manage <what> of your
// organization".
std::optional<core::error> keep_in_org(const route_context& c, json& patch, bool is_new, const char* what);

// What a /<entity>/new or /update body holds, checked in this order: the entity's fields,
// with `with_budget` the fields of its budgets row, and the id field `id_field` (required
// unless new; a new uuid4 when a new row has none).
struct entity_request {
  json patch;
  json budget;  // {} without with_budget
  std::string id;
};
core::result<entity_request> read_entity_request(const route_context& c, entity e, const char* id_field, bool is_new,
                                                 bool with_budget = false);

// A new budget_duration starts a new period: when `patch` sets budget_duration to a value
// other than the row's, and does not set spend itself, spend goes back to 0 with the new
// budget_reset_at (LiteLLM keeps the old spend, so a key already past its budget is refused
// until the first reset). `table`: "verification_tokens", "users" or "teams".
net::awaitable<core::result<void>> fresh_budget_period(const route_context& c, std::string table, std::string id,
                                                       json& patch);

// The query parameter `param` of a GET /<entity>/info, required: 422 naming it.
core::result<std::string> required_query_id(const route_context& c, const char* param);

// The expanded row `id` of `kind`, or 404 "<label> not found: <id>" (param `param`).
net::awaitable<core::result<json>> expanded_row(const route_context& c, std::string_view kind, std::string id,
                                                const char* param, const char* label);

// A team (`team`) or user the caller names: 404 when missing; for an org_admin (scope org)
// 403 when it is outside their organisation. The row.
net::awaitable<core::result<json>> org_member_row(const route_context& c, bool team, std::string id);

// Inserts the row `id` of `kind` with `patch`: 400 with the refused value's problem (a
// foreign key, a check, a unique value), 400 `exists` (param `param`) when the id is taken. The new row.
net::awaitable<core::result<json>> insert_row(const route_context& c, std::string_view kind, std::string id,
                                              const json& patch, std::string exists, const char* param);

// Applies `patch` to row `id` of `kind` (audited as `action`): 400 with the refused
// value's problem, 404 `missing` (param `param`) when there is no such row. The changed row.
net::awaitable<core::result<json>> update_row(const route_context& c, std::string_view kind, std::string id,
                                              const json& patch, std::string action, std::string missing,
                                              const char* param);

// A write refused for its budget_id, which names no budgets row (a 400 with param
// budget_id: the foreign key): 404 `Budget not found: <id>` instead, as the key and user
// routes answer an unknown budget_id. (LiteLLM hands the id of /organization/* and
// /customer/* to the database unchecked and has no answer of its own for it.) Any other
// result as it is.
core::result<json> with_budget_found(core::result<json> r, const json& patch);

// The row an insert or update wrote: 400 with the refused value's problem (a foreign key,
// a check, a unique value; tenant_repo words it), else `none` when no row was written.
core::result<json> written_row(const core::result<pg::entity_write>& r, core::error none);

// An organisation or an end user (`kind`: "organizations", "end_users") and its budgets
// row (`in.budget`) in one transaction (tenant_repo's write_budgeted_blocking): the row
// written; 400 with a refused value's problem (an unknown budget_id: 404, as
// with_budget_found), else `none` when no row was written (a new row's id taken, the one
// to update missing).
net::awaitable<core::result<json>> write_budgeted(const route_context& c, std::string kind, const entity_request& in,
                                                  bool is_new, core::error none);

// A page of rows of `kind` for a /<entity>/list: `page` and `page_size` (default
// `default_size`) from the query, and the query's `organization_id` when `by_org`. An
// internal user (scope own) sees the teams they are in, an org_admin (scope org) their
// organisation's rows; asking for others is 403.
struct list_request {
  std::string kind;
  int default_size = 1000;
  bool by_org = true;
  json filter = json::object();  // more equality filters
  std::optional<std::string> member_of = std::nullopt;  // teams: of this user
};
struct row_page {
  json rows = json::array();
  std::int64_t total = 0;
  int page = 1;
  int size = 0;
};
net::awaitable<core::result<row_page>> list_rows(const route_context& c, list_request lr);

// POST /user/delete, /team/delete, /organization/delete: the ids in `ids_field`
// (non-empty), checked for an org_admin, deleted and archived, and every instance's cached
// keys of them invalidated (as `owner`). Users and teams answer {<deleted_field>: ids},
// organisations the deleted rows.
struct tenant_delete {
  const char* kind;           // "users"
  const char* ids_field;      // "user_ids"
  const char* id_column;      // "user_id"
  const char* owner;          // "user", for key_invalidation::publish_owner
  const char* deleted_field;  // "deleted_users"; null: answer the rows
};
net::awaitable<core::result<json>> delete_tenants(const route_context& c, tenant_delete what);

}  // namespace switchyard::admin
