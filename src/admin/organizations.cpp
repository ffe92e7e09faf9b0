// /organization/new, /organization/update, /organization/delete, /organization/info,
// /organization/list. An organisation always has a budgets row (as in LiteLLM): the
// request's limits go there.
#include "entities.hpp"

#include "switchyard/store/postgres/tenant_repo.hpp"

namespace switchyard::admin {

namespace {

// What /organization/new and /organization/update read from the body: the row, its
// budget's limits, the id, and (new) the required organization_alias.
core::result<entity_request> read_org_request(const route_context& c, bool is_new) {
  auto in = read_entity_request(c, entity::organization, "organization_id", is_new, true);
  if (in && is_new && !in->patch.contains("organization_alias")) {
    return field_error("organization_alias", "required");
  }
  return in;
}

// A new budgets row with these limits; its id.
net::awaitable<core::result<std::string>> new_budget(const route_context& c, const json& limits) {
  std::string kind = "budgets";
  std::string budget_id = id_or_new("");
  auto budget_text = limits.dump();
  auto b = co_await c.db().run(pg::insert_entity_blocking, kind, budget_id, budget_text, c.actor);
  if (!b) {
    co_return b.error();
  }
  co_return budget_id;
}

// /organization/update with limits: the organisation's budgets row takes them (a new one
// when it has none).
net::awaitable<core::result<void>> update_budget(const route_context& c, std::string org_id, const json& org_row,
                                                const json& limits) {
  std::string org_kind = "organizations";
  std::string budget_kind = "budgets";
  std::string action = "updated";
  auto budget_id = text_of(org_row, "budget_id");
  if (!budget_id.empty()) {
    auto budget_text = limits.dump();
    auto b = co_await c.db().run(pg::update_entity_blocking, budget_kind, budget_id, budget_text, c.actor, action);
    if (!b) {
      co_return b.error();
    }
    co_return core::result<void>{};
  }
  auto created = co_await new_budget(c, limits);
  if (!created) {
    co_return created.error();
  }
  auto link = json{{"budget_id", *created}}.dump();
  auto u = co_await c.db().run(pg::update_entity_blocking, org_kind, org_id, link, c.actor, action);
  if (!u) {
    co_return u.error();
  }
  co_return core::result<void>{};
}

// An organisation's budget_id that names no budgets row (refused by its foreign key):
// 404 `Budget not found: <id>`, as the key and user routes answer it. (LiteLLM's own
// update hands the id to the database unchecked and has no answer of its own for it.)
core::result<json> with_budget_found(core::result<json> r, const json& patch) {
  if (!r && r.error().status == 400 && r.error().param == "budget_id") {
    return not_found("Budget not found: " + text_of(patch, "budget_id"), "budget_id");
  }
  return r;
}

// The organisation with its budget, teams and members; `row` if it is gone meanwhile.
net::awaitable<core::result<json>> full_org(const route_context& c, const std::string& id, json row) {
  auto full = co_await get_row(c, "organizations", id, true);
  if (!full) {
    co_return full.error();
  }
  co_return ok(full->value_or(std::move(row)));
}

}  // namespace

handler_result organization_new(const route_context& c) {
  auto in = read_org_request(c, true);
  if (!in) {
    co_return in.error();
  }
  if (!in->patch.contains("budget_id") || in->patch["budget_id"].is_null()) {
    auto budget_id = co_await new_budget(c, in->budget);
    if (!budget_id) {
      co_return budget_id.error();
    }
    in->patch["budget_id"] = *budget_id;
  }
  auto inserted = co_await insert_row(c, "organizations", in->id, in->patch, "Organization already exists: " + in->id,
                                      "organization_id");
  auto row = with_budget_found(std::move(inserted), in->patch);
  if (!row) {
    co_return row.error();
  }
  co_return co_await full_org(c, in->id, std::move(*row));
}

handler_result organization_update(const route_context& c) {
  auto in = read_org_request(c, false);
  if (!in) {
    co_return in.error();
  }
  auto updated = co_await update_row(c, "organizations", in->id, in->patch, "updated",
                                     "Organization not found: " + in->id, "organization_id");
  auto row = with_budget_found(std::move(updated), in->patch);
  if (!row) {
    co_return row.error();
  }
  if (!in->budget.empty()) {
    if (auto b = co_await update_budget(c, in->id, *row, in->budget); !b) {
      co_return b.error();
    }
  }
  c.invalidation().publish_owner("org", in->id);
  co_return co_await full_org(c, in->id, std::move(*row));
}

handler_result organization_delete(const route_context& c) {
  return delete_tenants(c, {"organizations", "organization_ids", "organization_id", "org", nullptr});
}

handler_result organization_info(const route_context& c) {
  auto id = required_query_id(c, "organization_id");
  if (!id) {
    co_return id.error();
  }
  if (c.sc == scope::org && *id != c.self_org) {
    co_return forbidden("you may only view your own organization");
  }
  co_return co_await expanded_row(c, "organizations", *id, "organization_id", "Organization");
}

handler_result organization_list(const route_context& c) {
  list_request lr{.kind = "organizations"};
  auto page = co_await list_rows(c, std::move(lr));
  if (!page) {
    co_return page.error();
  }
  co_return ok(std::move(page->rows));
}

}  // namespace switchyard::admin
