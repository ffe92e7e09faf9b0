// /budget/new, /budget/update, /budget/delete, /budget/info, /budget/list.
#include "entities.hpp"

#include "switchyard/store/postgres/tenant_repo.hpp"

namespace switchyard::admin {

namespace {

// POST /budget/info {"budgets": [ids]}: the rows that exist.
handler_result budgets_by_id(const route_context& c) {
  auto ids = string_list(c.body, "budgets");
  if (!ids) {
    co_return ids.error();
  }
  if (ids->empty()) {
    co_return field_error("budgets", "required: a non-empty list of budget ids");
  }
  json rows = json::array();
  for (const auto& id : *ids) {
    auto r = co_await get_row(c, "budgets", id, false);
    if (!r) {
      co_return r.error();
    }
    if (*r) {
      rows.push_back(std::move(**r));
    }
  }
  co_return ok(std::move(rows));
}

// A budget row bounds every key, user, team, organisation and end user that names it,
// and those caches hold its figures: they are dropped everywhere (a rare admin write; the
// next request of each reads its row again).
void changed(const route_context& c, const std::string& id) { c.invalidation().publish_owner("budget", id); }

}  // namespace

handler_result budget_new(const route_context& c) {
  auto in = read_entity_request(c, entity::budget, "budget_id", true);
  if (!in) {
    co_return in.error();
  }
  auto r = co_await insert_row(c, "budgets", in->id, in->patch, "Budget already exists: " + in->id, "budget_id");
  if (r) {
    changed(c, in->id);  // a key may name a budget before it exists
  }
  co_return r;
}

handler_result budget_update(const route_context& c) {
  auto in = read_entity_request(c, entity::budget, "budget_id", false);
  if (!in) {
    co_return in.error();
  }
  auto r = co_await update_row(c, "budgets", in->id, in->patch, "updated", "Budget not found: " + in->id,
                                "budget_id");
  if (r) {
    changed(c, in->id);
  }
  co_return r;
}

handler_result budget_delete(const route_context& c) {
  auto id = string_field(c.body, "id", false);
  if (!id) {
    co_return id.error();
  }
  std::string bid = *id;
  if (bid.empty()) {
    auto alt = string_field(c.body, "budget_id", true);
    if (!alt) {
      co_return field_error("id", "required");
    }
    bid = *alt;
  }
  std::string kind = "budgets";
  std::vector<std::string> ids{bid};
  auto r = co_await c.db().run(pg::delete_entities_blocking, kind, ids, c.actor);
  if (!r) {
    co_return r.error();
  }
  if (r->empty()) {
    co_return not_found("Budget not found: " + bid, "id");
  }
  changed(c, bid);
  co_return ok(json::parse(r->front()));
}

handler_result budget_info(const route_context& c) {
  if (c.req.method == "POST") {
    co_return co_await budgets_by_id(c);
  }
  auto id = required_query_id(c, "budget_id");
  if (!id) {
    co_return id.error();
  }
  co_return co_await expanded_row(c, "budgets", *id, "budget_id", "Budget");
}

handler_result budget_list(const route_context& c) {
  list_request lr{.kind = "budgets", .by_org = false};
  auto page = co_await list_rows(c, std::move(lr));
  if (!page) {
    co_return page.error();
  }
  co_return ok(std::move(page->rows));
}

}  // namespace switchyard::admin
