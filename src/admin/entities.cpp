#include "entities.hpp"

#include "switchyard/store/postgres/budget_repo.hpp"
#include "switchyard/store/postgres/tenant_repo.hpp"

namespace switchyard::admin {

core::result<json> written_row(const core::result<pg::entity_write>& r, core::error none) {
  if (!r) {
    return r.error();
  }
  if (!r->problem.empty()) {
    return bad_request(r->problem, r->problem_field);
  }
  if (!r->row_json) {
    return none;
  }
  return ok(json::parse(*r->row_json));
}

net::awaitable<core::result<json>> write_budgeted(const route_context& c, std::string kind, const entity_request& in,
                                                  bool is_new, core::error none) {
  pg::budgeted_write w;
  w.kind = std::move(kind);
  w.id = in.id;
  w.is_new = is_new;
  w.patch_json = in.patch.dump();
  w.budget_json = in.budget.dump();
  auto r = co_await c.db().run(pg::write_budgeted_blocking, w, c.actor);
  co_return with_budget_found(written_row(r, std::move(none)), in.patch);
}

net::awaitable<core::result<std::optional<json>>> get_row(const route_context& c, std::string_view kind, std::string id,
                                                          bool expand) {
  std::string k(kind);
  auto r = co_await c.db().run(pg::get_entity_blocking, k, id, expand);
  if (!r) {
    co_return r.error();
  }
  if (!*r) {
    co_return std::optional<json>{};
  }
  co_return std::optional<json>(json::parse(**r));
}

std::optional<core::error> keep_in_org(const route_context& c, json& patch, bool is_new, const char* what) {
  if (c.sc != scope::org) {
    return std::nullopt;
  }
  if (auto o = patch.find("organization_id"); o != patch.end() && *o != c.self_org) {
    return forbidden(std::string("you may only manage ") + what + " of your organization");
  }
  if (is_new) {
    patch["organization_id"] = c.self_org;
  }
  return std::nullopt;
}

core::result<entity_request> read_entity_request(const route_context& c, entity e, const char* id_field, bool is_new,
                                                 bool with_budget) {
  auto patch = patch_from(c.body, e, c.now, c.budget_tz());
  if (!patch) {
    return patch.error();
  }
  auto budget = with_budget ? patch_from(c.body, entity::budget, c.now, c.budget_tz()) : ok(json::object());
  if (!budget) {
    return budget.error();
  }
  auto id = string_field(c.body, id_field, !is_new);
  if (!id) {
    return id.error();
  }
  return entity_request{std::move(*patch), std::move(*budget), id_or_new(*id)};
}

net::awaitable<core::result<void>> fresh_budget_period(const route_context& c, std::string table, std::string id,
                                                       json& patch) {
  auto d = patch.find("budget_duration");
  if (d == patch.end() || !d->is_string() || patch.contains("spend")) {
    co_return core::result<void>{};
  }
  auto current = co_await c.db().run(pg::budget_duration_of_blocking, table, id);
  if (!current) {
    co_return current.error();
  }
  if (*current && **current != d->get<std::string>()) {
    patch["spend"] = 0.0;
  }
  co_return core::result<void>{};
}

core::result<std::string> required_query_id(const route_context& c, const char* param) {
  std::string id = query_param(c.req.query, param).value_or("");
  if (id.empty()) {
    return field_error(param, "required (GET " + std::string(c.r.path) + "?" + param + "=...)");
  }
  return id;
}

net::awaitable<core::result<json>> expanded_row(const route_context& c, std::string_view kind, std::string id,
                                                const char* param, const char* label) {
  auto r = co_await get_row(c, kind, id, true);
  if (!r) {
    co_return r.error();
  }
  if (!*r) {
    co_return not_found(std::string(label) + " not found: " + id, param);
  }
  co_return ok(std::move(**r));
}

net::awaitable<core::result<json>> org_member_row(const route_context& c, bool team, std::string id) {
  auto r = co_await get_row(c, team ? "teams" : "users", id, false);
  if (!r) {
    co_return r.error();
  }
  if (!*r) {
    co_return not_found(std::string(team ? "Team" : "User") + " not found: " + id, team ? "team_id" : "user_id");
  }
  if (c.sc == scope::org && text_of(**r, "organization_id") != c.self_org) {
    co_return forbidden(std::string(team ? "team" : "user") + " " + id + " is not in your organization");
  }
  co_return ok(std::move(**r));
}

core::result<json> with_budget_found(core::result<json> r, const json& patch) {
  if (!r && r.error().status == 400 && r.error().param == "budget_id") {
    return not_found("Budget not found: " + text_of(patch, "budget_id"), "budget_id");
  }
  return r;
}

net::awaitable<core::result<json>> insert_row(const route_context& c, std::string_view kind, std::string id,
                                              const json& patch, std::string exists, const char* param) {
  std::string k(kind);
  auto patch_text = patch.dump();
  auto r = co_await c.db().run(pg::insert_entity_blocking, k, id, patch_text, c.actor);
  if (r && !r->email_taken.empty()) {
    // LiteLLM's current answer (older versions gave a 400).
    auto e = bad_request("User with email " + r->email_taken + " already exists", "user_email");
    e.status = 409;
    co_return e;
  }
  co_return written_row(r, bad_request(std::move(exists), param));
}

net::awaitable<core::result<json>> update_row(const route_context& c, std::string_view kind, std::string id,
                                              const json& patch, std::string action, std::string missing,
                                              const char* param) {
  std::string k(kind);
  auto patch_text = patch.dump();
  auto r = co_await c.db().run(pg::update_entity_blocking, k, id, patch_text, c.actor, action);
  co_return written_row(r, not_found(std::move(missing), param));
}

net::awaitable<core::result<row_page>> list_rows(const route_context& c, list_request lr) {
  auto page = int_param(c.req.query, "page", 1, 1, 1000000);
  if (!page) {
    co_return page.error();
  }
  auto size = int_param(c.req.query, "page_size", lr.default_size, 1, 1000);
  if (!size) {
    co_return size.error();
  }
  pg::entity_list_query q;
  q.kind = lr.kind;
  q.page = *page;
  q.size = *size;
  q.member_of = std::move(lr.member_of);
  json& filter = lr.filter;
  if (auto org = query_param(c.req.query, "organization_id"); lr.by_org && org && !org->empty()) {
    filter["organization_id"] = *org;
  }
  if (c.sc == scope::own) {
    if (q.member_of && *q.member_of != c.self_user) {
      co_return forbidden("you may only list your own teams");
    }
    q.member_of = c.self_user;
  }
  if (c.sc == scope::org) {
    if (filter.contains("organization_id") && filter["organization_id"] != c.self_org) {
      co_return forbidden("you may only list your own organization");
    }
    filter["organization_id"] = c.self_org;
  }
  q.filter_json = filter.dump();
  auto r = co_await c.db().run(pg::list_entities_blocking, q);
  if (!r) {
    co_return r.error();
  }
  row_page out;
  for (const auto& t : r->rows) {
    out.rows.push_back(json::parse(t));
  }
  out.total = r->total_count;
  out.page = q.page;
  out.size = q.size;
  co_return out;
}

net::awaitable<core::result<json>> delete_tenants(const route_context& c, tenant_delete what) {
  auto ids = string_list(c.body, what.ids_field);
  if (!ids) {
    co_return ids.error();
  }
  if (ids->empty()) {
    co_return field_error(what.ids_field, "required: a non-empty list");
  }
  if (c.sc == scope::org) {
    const bool team = std::string_view(what.kind) == "teams";
    for (const auto& id : *ids) {
      if (auto chk = co_await org_member_row(c, team, id); !chk) {
        co_return chk.error();
      }
    }
  }
  std::string kind = what.kind;
  auto r = co_await c.db().run(pg::delete_entities_blocking, kind, *ids, c.actor);
  if (!r) {
    co_return r.error();
  }
  if (r->empty()) {
    co_return not_found("Not found: " + json(*ids).dump(), what.ids_field);
  }
  json rows = json::array();
  json deleted_ids = json::array();
  std::string owner = what.owner;
  for (const auto& t : *r) {
    auto row = json::parse(t);
    auto id = text_of(row, what.id_column);
    c.invalidation().publish_owner(owner, id);
    deleted_ids.push_back(id);
    rows.push_back(std::move(row));
  }
  if (what.deleted_field == nullptr) {
    co_return ok(std::move(rows));
  }
  co_return ok(json{{what.deleted_field, std::move(deleted_ids)}});
}

}  // namespace switchyard::admin
