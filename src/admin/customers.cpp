// /customer/new, /customer/info, /customer/update, /customer/delete, /customer/block,
// /customer/unblock, /customer/list (LiteLLM's customers = end users: the `user` of a
// request; also under /end_user/*). An end user's limits live in a budgets row (budget_id),
// as in LiteLLM: limits in the body create one, or change the one it has. Every change is
// heard by every instance's end-user cache ("end_user:<id>" on the key invalidation
// channel). docs/budgets.md.
#include "entities.hpp"

#include "switchyard/store/postgres/tenant_repo.hpp"

namespace switchyard::admin {

namespace {

constexpr const char* table = "end_users";

std::string missing(const std::string& id) { return "End User Id=" + id + " does not exist in db"; }

// LiteLLM's regions for allowed_model_region.
std::optional<core::error> check_region(const json& patch) {
  if (auto r = patch.find("allowed_model_region"); r != patch.end() && !r->is_null() && *r != "eu" && *r != "us") {
    return field_error("allowed_model_region", "must be \"eu\" or \"us\"");
  }
  return std::nullopt;
}

// The end user with its budgets row (litellm_budget_table).
net::awaitable<core::result<json>> full_row(const route_context& c, const std::string& id) {
  auto r = co_await get_row(c, table, id, true);
  if (!r) {
    co_return r.error();
  }
  if (!*r) {
    co_return bad_request(missing(id), "user_id");
  }
  co_return ok(std::move(**r));
}

void changed(const route_context& c, const std::string& id) { c.invalidation().publish_owner("end_user", id); }

// /customer/block and /customer/unblock: {"user_ids": [...]}. Blocking an unknown id
// creates it blocked (as LiteLLM's upsert); unblocking one is a 400.
handler_result set_blocked(const route_context& c, bool blocked) {
  auto ids = string_list(c.body, "user_ids");
  if (!ids) {
    co_return ids.error();
  }
  if (ids->empty()) {
    co_return field_error("user_ids", "required: a non-empty list of end user ids");
  }
  json rows = json::array();
  const json patch = {{"blocked", blocked}};
  for (const auto& id : *ids) {
    auto existing = co_await get_row(c, table, id, false);
    if (!existing) {
      co_return existing.error();
    }
    if (!*existing && !blocked) {
      co_return bad_request(missing(id), "user_ids");
    }
    core::result<json> row = ok(json());
    if (*existing) {
      row = co_await update_row(c, table, id, patch, blocked ? "blocked" : "unblocked", missing(id), "user_ids");
    } else {
      row = co_await insert_row(c, table, id, patch, "End user already exists: " + id, "user_ids");
    }
    if (!row) {
      co_return row.error();
    }
    changed(c, id);
    rows.push_back(std::move(*row));
  }
  co_return ok(json{{"blocked_users", std::move(rows)}});
}

}  // namespace

handler_result customer_new(const route_context& c) {
  auto in = read_entity_request(c, entity::end_user, "user_id", false, true);
  if (!in) {
    co_return in.error();
  }
  if (auto e = check_region(in->patch)) {
    co_return *e;
  }
  bool given_budget = in->patch.contains("budget_id") && !in->patch["budget_id"].is_null();
  if (given_budget && !in->budget.empty()) {
    co_return bad_request("Pass either budget_id or the budget's fields (max_budget, ...), not both", "budget_id");
  }
  auto row = co_await write_budgeted(c, table, *in, true,
                                     bad_request("Customer already exists, passed user_id=" + in->id, "user_id"));
  if (!row) {
    co_return row.error();
  }
  changed(c, in->id);
  co_return co_await full_row(c, in->id);
}

handler_result customer_update(const route_context& c) {
  auto in = read_entity_request(c, entity::end_user, "user_id", false, true);
  if (!in) {
    co_return in.error();
  }
  if (auto e = check_region(in->patch)) {
    co_return *e;
  }
  auto row = co_await write_budgeted(c, table, *in, false, bad_request(missing(in->id), "user_id"));
  if (!row) {
    co_return row.error();
  }
  changed(c, in->id);
  co_return co_await full_row(c, in->id);
}

handler_result customer_delete(const route_context& c) {
  auto ids = string_list(c.body, "user_ids");
  if (!ids) {
    co_return ids.error();
  }
  if (ids->empty()) {
    co_return field_error("user_ids", "required: a non-empty list of end user ids");
  }
  std::string k = table;
  auto r = co_await c.db().run(pg::delete_entities_blocking, k, *ids, c.actor);
  if (!r) {
    co_return r.error();
  }
  if (r->empty()) {
    co_return bad_request("End users not found: none of user_ids exists", "user_ids");
  }
  json deleted = json::array();
  for (const auto& text : *r) {
    auto id = text_of(json::parse(text), "user_id");
    changed(c, id);
    deleted.push_back(id);
  }
  co_return ok(json{{"deleted_customers", deleted.size()},
                    {"message", "Successfully deleted customers with ids: " + deleted.dump()}});
}

handler_result customer_block(const route_context& c) { return set_blocked(c, true); }

handler_result customer_unblock(const route_context& c) { return set_blocked(c, false); }

handler_result customer_info(const route_context& c) {
  auto id = required_query_id(c, "end_user_id");
  if (!id) {
    co_return id.error();
  }
  auto r = co_await get_row(c, table, *id, true);
  if (!r) {
    co_return r.error();
  }
  if (!*r) {
    co_return bad_request(missing(*id), "end_user_id");
  }
  co_return ok(std::move(**r));
}

handler_result customer_list(const route_context& c) {
  list_request lr{.kind = table, .by_org = false};
  auto page = co_await list_rows(c, std::move(lr));
  if (!page) {
    co_return page.error();
  }
  co_return ok(std::move(page->rows));
}

}  // namespace switchyard::admin
