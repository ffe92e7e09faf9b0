// /user/new, /user/update, /user/delete, /user/info, /user/list.
#include "entities.hpp"

#include "switchyard/admin/keys.hpp"
#include "switchyard/core/ids.hpp"
#include "switchyard/store/postgres/key_repo.hpp"
#include "switchyard/store/postgres/tenant_repo.hpp"

#include <algorithm>

namespace switchyard::admin {

namespace {

// What /user/new and /user/update read from the body, checked in this order.
struct user_request {
  json patch;
  std::string user_id;             // "" if not given
  std::vector<std::string> teams;  // /user/new: teams to join
  std::string team_id;             // /user/new: the key's team, joined too ("" if not given)
  std::string budget_id;           // /user/new: the key's budgets row ("" if not given)
};

core::result<user_request> read_user_request(const route_context& c, bool is_new) {
  auto patch = patch_from(c.body, entity::user, c.now, c.budget_tz());
  if (!patch) {
    return patch.error();
  }
  if (auto r = patch->find("user_role"); r != patch->end()) {
    if (!auth::valid_user_role(r->get<std::string>())) {
      return field_error("user_role", "must be one of proxy_admin, proxy_admin_viewer, org_admin, internal_user, "
                                      "internal_user_viewer, team, customer");
    }
    if (c.sc == scope::org && (*r == "proxy_admin" || *r == "proxy_admin_viewer")) {
      return forbidden("an org_admin may not grant " + r->get<std::string>());
    }
  }
  auto id = string_field(c.body, "user_id", false);
  if (!id) {
    return id.error();
  }
  auto teams = string_list(c.body, "teams");
  if (!teams) {
    return teams.error();
  }
  // LiteLLM's /user/new passes team_id and budget_id to the key it makes (the key is the
  // team's, under that budgets row) and adds the user to team_id as a member.
  auto team_id = string_field(c.body, "team_id", false);
  if (!team_id) {
    return team_id.error();
  }
  auto budget_id = string_field(c.body, "budget_id", false);
  if (!budget_id) {
    return budget_id.error();
  }
  if (!team_id->empty() && std::find(teams->begin(), teams->end(), *team_id) == teams->end()) {
    teams->push_back(*team_id);
  }
  if (auto e = keep_in_org(c, *patch, is_new, "users")) {
    return *e;
  }
  return user_request{std::move(*patch), std::move(*id), std::move(*teams), std::move(*team_id),
                      std::move(*budget_id)};
}

// The fields of a /user/new body that also go to the user's first key, as LiteLLM's
// /user/new passes them to its key generation: `duration` (the key's expiry), key_alias,
// models, metadata, the rate limits, its team and budgets row and the rest of the key's
// own settings. The user's budget (max_budget, budget_duration) is the user's only: the
// key is bounded by it anyway.
constexpr const char* user_key_fields[] = {"duration",   "key_alias",   "models",     "aliases",
                                           "config",     "spend",       "metadata",   "tpm_limit",
                                           "rpm_limit",  "max_parallel_requests",     "allowed_cache_controls",
                                           "permissions", "model_max_budget",         "blocked",
                                           "allowed_routes", "team_id",                 "budget_id"};

// The patch of the new user's key, checked before anything is written.
core::result<json> user_key_patch(const route_context& c, const std::string& user_id, const std::string& key) {
  json kb = json::object();
  for (const char* f : user_key_fields) {
    if (auto it = c.body.find(f); it != c.body.end()) {
      kb[f] = *it;
    }
  }
  auto kp = key_patch_from(kb, c.now, c.budget_tz());
  if (!kp) {
    return kp.error();
  }
  (*kp)["user_id"] = user_id;
  (*kp)["key_name"] = key_name_of(key);
  return kp;
}

// The user_id of /user/update: given, else the user with the given user_email.
net::awaitable<core::result<std::string>> user_to_update(const route_context& c, std::string id) {
  if (!id.empty()) {
    co_return id;
  }
  auto email = string_field(c.body, "user_email", false);
  if (!email) {
    co_return email.error();
  }
  if (email->empty()) {
    co_return field_error("user_id", "required: user_id or user_email");
  }
  pg::entity_list_query q;
  q.kind = "users";
  q.filter_json = json{{"user_email", *email}}.dump();
  auto found = co_await c.db().run(pg::list_entities_blocking, q);
  if (!found) {
    co_return found.error();
  }
  if (found->rows.empty()) {
    co_return not_found("User not found: " + *email, "user_email");
  }
  co_return text_of(json::parse(found->rows.front()), "user_id");
}

}  // namespace

handler_result user_new(const route_context& c) {
  auto in = read_user_request(c, true);
  if (!in) {
    co_return in.error();
  }
  // The teams must exist (and, for an org_admin, be in their organisation) before the
  // user is created.
  for (const auto& t : in->teams) {
    if (auto chk = co_await org_member_row(c, true, t); !chk) {
      co_return chk.error();
    }
  }
  if (!in->budget_id.empty()) {
    // Checked before anything is written; a budget deleted after this check is refused by
    // the key's foreign key, with the same answer (budget_missing below).
    auto b = co_await get_row(c, "budgets", in->budget_id, false);
    if (!b) {
      co_return b.error();
    }
    if (!*b) {
      co_return not_found("Budget not found: " + in->budget_id, "budget_id");
    }
  }
  auto auto_key = c.body.find("auto_create_key");
  if (auto_key != c.body.end() && !auto_key->is_boolean() && !auto_key->is_null()) {
    co_return field_error("auto_create_key", "expected a boolean");
  }
  if (!in->patch.contains("user_role")) {
    in->patch["user_role"] = "internal_user";
  }
  std::string id = id_or_new(in->user_id);
  // The user, its teams and its key are written in one transaction: a key that is refused
  // (its alias taken, say) leaves no user behind, so the request can simply be retried.
  std::optional<pg::new_user_key> key_row;
  std::string key;
  if (auto_key == c.body.end() || auto_key->is_null() || auto_key->get<bool>()) {
    key = generate_key_string();
    auto kp = user_key_patch(c, id, key);
    if (!kp) {
      co_return kp.error();
    }
    key_row = pg::new_user_key{core::sha256_hex(key), kp->dump()};
  }
  auto patch_text = in->patch.dump();
  auto r = co_await c.db().run(pg::insert_user_blocking, id, patch_text, in->teams, key_row, c.actor);
  if (!r) {
    co_return r.error();
  }
  if (!r->user.email_taken.empty()) {
    // LiteLLM's current answer (older versions gave a 400).
    auto e = bad_request("User with email " + r->user.email_taken + " already exists", "user_email");
    e.status = 409;
    co_return e;
  }
  if (!r->user.problem.empty()) {
    co_return bad_request(r->user.problem, r->user.problem_field);
  }
  if (!r->missing_team.empty()) {
    co_return not_found("Team not found: " + r->missing_team, r->missing_team == in->team_id ? "team_id" : "teams");
  }
  if (key_row && r->key.alias_taken) {
    co_return core::make_error(core::errc::bad_request,
                               "Key with alias '" + text_of(c.body, "key_alias") +
                                   "' already exists. Unique key aliases across all keys are required.",
                               "key_alias");
  }
  if (key_row && r->key.budget_missing) {
    co_return not_found("Budget not found: " + in->budget_id, "budget_id");
  }
  if (key_row && r->key.token_taken) {
    co_return bad_request("A key with this value already exists", "key");  // as /key/generate
  }
  if (!r->user.row_json) {
    co_return bad_request("User already exists: " + id, "user_id");
  }
  json out = json::parse(*r->user.row_json);
  if (!in->teams.empty()) {
    out["teams"] = in->teams;
  }
  if (r->key.key) {
    c.invalidation().publish(key_row->token);  // drops a cached "no such key"
    const json k = key_object(*r->key.key);
    out["key"] = key;
    out["token_id"] = key_row->token;
    out["key_name"] = key_name_of(key);
    out["expires"] = k.value("expires", json(nullptr));
    out["key_alias"] = k.value("key_alias", json(nullptr));
    out["team_id"] = k.value("team_id", json(nullptr));
    out["budget_id"] = k.value("budget_id", json(nullptr));
  }
  co_return ok(std::move(out));
}

handler_result user_update(const route_context& c) {
  auto in = read_user_request(c, false);
  if (!in) {
    co_return in.error();
  }
  auto id = co_await user_to_update(c, in->user_id);
  if (!id) {
    co_return id.error();
  }
  if (c.sc == scope::org) {
    if (auto chk = co_await org_member_row(c, false, *id); !chk) {
      co_return chk.error();
    }
  }
  if (auto fresh = co_await fresh_budget_period(c, "users", *id, in->patch); !fresh) {
    co_return fresh.error();
  }
  auto row = co_await update_row(c, "users", *id, in->patch, "updated", "User not found: " + *id, "user_id");
  if (!row) {
    co_return row.error();
  }
  c.invalidation().publish_owner("user", *id);
  co_return ok(json{{"user_id", *id}, {"data", std::move(*row)}});
}

handler_result user_delete(const route_context& c) {
  return delete_tenants(c, {"users", "user_ids", "user_id", "user", "deleted_users"});
}

handler_result user_info(const route_context& c) {
  std::string id = query_param(c.req.query, "user_id").value_or("");
  if (id.empty()) {
    id = c.self_user;
  }
  if (id.empty()) {
    co_return field_error("user_id", "required (GET /user/info?user_id=...)");
  }
  if (c.sc == scope::own && id != c.self_user) {
    co_return forbidden("you may only view your own user (user_id=" + c.self_user + ")");
  }
  auto row = co_await expanded_row(c, "users", id, "user_id", "User");
  if (!row) {
    co_return row.error();
  }
  if (c.sc == scope::org && text_of(*row, "organization_id") != c.self_org) {
    co_return forbidden("user " + id + " is not in your organization");
  }
  json keys = row->value("keys", json::array());
  for (auto& k : keys) {
    k["token_id"] = k.value("token", "");
  }
  json info = *row;
  info.erase("keys");
  json team_rows = row->value("teams", json::array());
  info["teams"] = json::array();
  for (const auto& t : team_rows) {
    if (t.is_object()) {
      info["teams"].push_back(text_of(t, "team_id"));
    }
  }
  co_return ok(json{{"user_id", id}, {"user_info", std::move(info)}, {"keys", std::move(keys)},
                    {"teams", std::move(team_rows)}});
}

handler_result user_list(const route_context& c) {
  list_request lr{.kind = "users", .default_size = 25};
  if (auto role = query_param(c.req.query, "role"); role && !role->empty()) {
    lr.filter["user_role"] = *role;
  }
  if (auto email = query_param(c.req.query, "user_email"); email && !email->empty()) {
    lr.filter["user_email"] = *email;
  }
  auto page = co_await list_rows(c, std::move(lr));
  if (!page) {
    co_return page.error();
  }
  auto total_pages = (page->total + page->size - 1) / page->size;
  co_return ok(json{{"users", std::move(page->rows)}, {"total", page->total}, {"page", page->page},
                    {"page_size", page->size}, {"total_pages", total_pages}});
}

}  // namespace switchyard::admin
