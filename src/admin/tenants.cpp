#include "switchyard/admin/tenants.hpp"

#include "admin_util.hpp"

#include "switchyard/core/ids.hpp"
#include "switchyard/store/postgres/db_executor.hpp"
#include "switchyard/store/postgres/key_repo.hpp"
#include "switchyard/store/postgres/tenant_repo.hpp"

#include <algorithm>
#include <array>
#include <set>

namespace switchyard::admin {

namespace {

constexpr field_spec user_fields[] = {
    {"user_email", kind::str_or_null},      {"user_alias", kind::str_or_null},
    {"user_role", kind::str},               {"organization_id", kind::str_or_null},
    {"max_budget", kind::num_or_null},      {"budget_duration", kind::duration_or_null},
    {"models", kind::str_array},            {"tpm_limit", kind::int_or_null},
    {"rpm_limit", kind::int_or_null},       {"metadata", kind::object},
    {"spend", kind::num},                   {"sso_user_id", kind::str_or_null},
};

constexpr field_spec team_fields[] = {
    {"team_alias", kind::str_or_null},          {"organization_id", kind::str_or_null},
    {"models", kind::str_array},                {"max_budget", kind::num_or_null},
    {"soft_budget", kind::num_or_null},         {"budget_duration", kind::duration_or_null},
    {"tpm_limit", kind::int_or_null},           {"rpm_limit", kind::int_or_null},
    {"max_parallel_requests", kind::int_or_null}, {"metadata", kind::object},
    {"model_aliases", kind::object},            {"blocked", kind::boolean},
    {"team_member_permissions", kind::str_array}, {"spend", kind::num},
};

constexpr field_spec org_fields[] = {
    {"organization_alias", kind::str}, {"models", kind::str_array}, {"metadata", kind::object},
    {"budget_id", kind::str_or_null},  {"spend", kind::num},
};

constexpr field_spec budget_fields[] = {
    {"max_budget", kind::num_or_null},  {"soft_budget", kind::num_or_null},
    {"max_parallel_requests", kind::int_or_null}, {"tpm_limit", kind::int_or_null},
    {"rpm_limit", kind::int_or_null},   {"budget_duration", kind::duration_or_null},
    {"model_max_budget", kind::object},
};

template <std::size_t N>
core::result<json> patch_of(const json& body, const field_spec (&specs)[N], sys_time now) {
  return patch_from(body, specs, N, now);
}

json parse(const std::string& text) { return json::parse(text); }

core::error bad_request(std::string message, std::string param = {}) {
  return core::make_error(core::errc::bad_request, std::move(message), std::move(param));
}

core::error forbidden(std::string message) {
  auto e = core::make_error(core::errc::forbidden, "Authentication Error - " + std::move(message));
  e.type = "auth_error";
  return e;
}

std::string new_id() { return core::uuid4(); }

// The tags field of teams goes into metadata.tags (as for keys).
std::optional<core::error> merge_tags(const json& body, json& patch, sys_time now) {
  if (auto it = body.find("tags"); it != body.end() && !it->is_null()) {
    if (auto e = check_kind("tags", kind::str_array, *it, now)) {
      return e;
    }
    json md = patch.contains("metadata") ? patch["metadata"] : json::object();
    md["tags"] = *it;
    patch["metadata"] = std::move(md);
  }
  return std::nullopt;
}

// members_with_roles / member: [{role, user_id?, user_email?}] (a single object is a list of one).
core::result<json> members_of(const json& body, const char* name) {
  json out = json::array();
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) {
    return ok(std::move(out));
  }
  json list = it->is_object() ? json::array({*it}) : *it;
  if (!list.is_array()) {
    return field_error(name, "expected a member object or an array of them");
  }
  for (const auto& m : list) {
    if (!m.is_object()) {
      return field_error(name, "expected objects {role, user_id or user_email}");
    }
    std::string role = "user";
    if (auto r = m.find("role"); r != m.end() && !r->is_null()) {
      if (!r->is_string() || (*r != "admin" && *r != "user")) {
        return field_error(name, "role must be \"admin\" or \"user\"");
      }
      role = r->get<std::string>();
    }
    json entry = {{"role", role}};
    for (const char* f : {"user_id", "user_email"}) {
      if (auto v = m.find(f); v != m.end() && !v->is_null()) {
        if (!v->is_string()) {
          return field_error(name, std::string(f) + " must be a string");
        }
        entry[f] = *v;
      }
    }
    if (!entry.contains("user_id") && !entry.contains("user_email")) {
      return field_error(name, "each member needs user_id or user_email");
    }
    out.push_back(std::move(entry));
  }
  return ok(std::move(out));
}

std::string text_of(const json& j, const char* name) {
  auto it = j.find(name);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// Secrets never leave /model/info.
bool secret_param(const std::string& k) {
  static const std::set<std::string> names = {"api_key",        "aws_secret_access_key", "aws_access_key_id",
                                              "aws_session_token", "vertex_credentials", "azure_ad_token",
                                              "client_secret",  "password",              "extra_headers"};
  return names.contains(k) || k.ends_with("_api_key") || k.ends_with("_secret") || k.ends_with("_token");
}

}  // namespace

json model_info_entry(const config::deployment& d) {
  json params = json::object();
  if (d.litellm_params.is_object()) {
    for (const auto& [k, v] : d.litellm_params.items()) {
      if (!secret_param(k)) {
        params[k] = v;
      }
    }
  }
  json info = d.model_info.is_object() ? d.model_info : json::object();
  info["id"] = d.id;
  if (!info.contains("mode")) {
    info["mode"] = nullptr;
  }
  if (!info.contains("db_model")) {
    info["db_model"] = false;
  }
  return {{"model_name", d.model_name}, {"litellm_params", std::move(params)}, {"model_info", std::move(info)}};
}

tenant_endpoints::tenant_endpoints(const auth::key_authenticator& auth, store::postgres::db_executor* db,
                                   auth::key_invalidation* invalidation, std::shared_ptr<const config::config> cfg)
    : auth_(auth), db_(db), invalidation_(invalidation), cfg_(std::move(cfg)) {}

bool tenant_endpoints::handles(const std::string& route, const std::string& method) {
  static const std::array<const char*, 4> gets = {"/user/info", "/user/list", "/team/info", "/team/list"};
  static const std::array<const char*, 9> posts = {"/user/new",        "/user/update",        "/user/delete",
                                                   "/team/new",        "/team/update",        "/team/delete",
                                                   "/team/member_add", "/team/member_delete", "/organization/new"};
  const bool get = method == "GET" || method == "HEAD";
  const bool post = method == "POST";
  auto in = [&](const auto& list) { return std::find(list.begin(), list.end(), route) != list.end(); };
  if (in(gets) || route == "/organization/info" || route == "/organization/list" || route == "/budget/list" ||
      route == "/model/info" || route == "/v1/model/info") {
    return get;
  }
  if (in(posts) || route == "/team/block" || route == "/team/unblock" || route == "/budget/new" || route == "/budget/update" || route == "/budget/delete") {
    return post;
  }
  if (route == "/budget/info") {
    return get || post;
  }
  if (route == "/organization/update") {
    return post || method == "PATCH";
  }
  if (route == "/organization/delete") {
    return post || method == "DELETE";
  }
  return false;
}

net::awaitable<void> tenant_endpoints::handle(http::request& req, http::responder& resp, std::string route) {
  auto key = auth_.master().key_from([&](std::string_view n) { return req.header(n); });
  auto who = co_await auth_.authenticate(std::move(key));
  if (!who) {
    co_await resp.send(http::error_response(who.error()));
    co_return;
  }
  resp.annotate({}, who->key_redacted);
  if (route == "/v1/model/info") {
    route = "/model/info";
  }
  auto role = auth::role_of(*who);
  auto sc = route_scope(role, route);
  if (sc == scope::denied) {
    // Named first: no temporaries inside co_await (GCC 12).
    std::string user_id = who->vkey ? who->vkey->user_id : std::string();
    auto denied = http::error_response(route_denied(role, route, user_id));
    co_await resp.send(std::move(denied));
    co_return;
  }
  if (db_ == nullptr && route != "/model/info") {
    co_await resp.send(http::error_response(core::make_error(core::errc::internal, "No connected db.")));
    co_return;
  }
  auto out = co_await run(req, *who, std::move(route), sc);
  if (!out) {
    co_await resp.send(http::error_response(out.error()));
    co_return;
  }
  http::response r;
  r.body = out->dump(-1, ' ', false, json::error_handler_t::replace);
  co_await resp.send(std::move(r));
}

net::awaitable<core::result<json>> tenant_endpoints::run(const http::request& req, const auth::principal& who,
                                                         std::string route, scope sc) {
  const auto now = std::chrono::system_clock::now();
  const auto actor = actor_of(req, who);
  const std::string self_user = who.vkey ? who.vkey->user_id : std::string();
  const std::string self_org = who.vkey ? who.vkey->user_organization_id : std::string();
  if (sc == scope::org && self_org.empty()) {
    co_return forbidden("org_admin without an organization_id may not manage users or teams");
  }

  // ------------------------------------------------------------------ /model/info
  if (route == "/model/info") {
    auto only = query_param(req.query, "litellm_model_id");
    json data = json::array();
    for (const auto& d : cfg_->model_list) {
      if (only && !only->empty() && d.id != *only) {
        continue;
      }
      if (!auth::model_allowed(who, d.model_name, auth_.groups())) {
        continue;
      }
      data.push_back(model_info_entry(d));
    }
    co_return ok(json{{"data", std::move(data)}});
  }

  // ------------------------------------------------------------------ GET routes
  if (route == "/user/info") {
    std::string id = query_param(req.query, "user_id").value_or("");
    if (id.empty()) {
      id = self_user;
    }
    if (id.empty()) {
      co_return field_error("user_id", "required (GET /user/info?user_id=...)");
    }
    if (sc == scope::own && id != self_user) {
      co_return forbidden("you may only view your own user (user_id=" + self_user + ")");
    }
    std::string kind = "users";
    bool expand = true;
    auto r = co_await db_->run(pg::get_entity_blocking, kind, id, expand);
    if (!r) {
      co_return r.error();
    }
    if (!*r) {
      co_return not_found("User not found: " + id, "user_id");
    }
    json row = parse(**r);
    if (sc == scope::org && text_of(row, "organization_id") != self_org) {
      co_return forbidden("user " + id + " is not in your organization");
    }
    json keys = row.value("keys", json::array());
    for (auto& k : keys) {
      k["token_id"] = k.value("token", "");
    }
    json info = row;
    info.erase("keys");
    json team_rows = row.value("teams", json::array());
    info["teams"] = json::array();
    for (const auto& t : team_rows) {
      if (t.is_object()) {
        info["teams"].push_back(text_of(t, "team_id"));
      }
    }
    co_return ok(json{{"user_id", id}, {"user_info", std::move(info)}, {"keys", std::move(keys)},
                      {"teams", std::move(team_rows)}});
  }

  if (route == "/user/list" || route == "/team/list" || route == "/organization/list" || route == "/budget/list") {
    pg::entity_list_query q;
    q.kind = route == "/user/list" ? "users" : route == "/team/list" ? "teams"
             : route == "/organization/list" ? "organizations" : "budgets";
    json filter = json::object();
    auto page = int_param(req.query, "page", 1, 1, 1000000);
    if (!page) {
      co_return page.error();
    }
    auto size = int_param(req.query, "page_size", route == "/user/list" ? 25 : 1000, 1, 1000);
    if (!size) {
      co_return size.error();
    }
    q.page = *page;
    q.size = *size;
    if (route == "/user/list") {
      if (auto role = query_param(req.query, "role"); role && !role->empty()) {
        filter["user_role"] = *role;
      }
      if (auto email = query_param(req.query, "user_email"); email && !email->empty()) {
        filter["user_email"] = *email;
      }
    }
    if (auto org = query_param(req.query, "organization_id"); org && !org->empty() && route != "/budget/list") {
      filter["organization_id"] = *org;
    }
    if (route == "/team/list") {
      if (auto u = query_param(req.query, "user_id"); u && !u->empty()) {
        q.member_of = *u;
      }
    }
    if (sc == scope::own) {
      if (q.member_of && *q.member_of != self_user) {
        co_return forbidden("you may only list your own teams");
      }
      q.member_of = self_user;
    }
    if (sc == scope::org) {
      if (filter.contains("organization_id") && filter["organization_id"] != self_org) {
        co_return forbidden("you may only list your own organization");
      }
      filter[q.kind == "organizations" ? "organization_id" : "organization_id"] = self_org;
    }
    q.filter_json = filter.dump();
    auto r = co_await db_->run(pg::list_entities_blocking, q);
    if (!r) {
      co_return r.error();
    }
    json rows = json::array();
    for (const auto& t : r->rows) {
      rows.push_back(parse(t));
    }
    if (route == "/user/list") {
      auto total_pages = (r->total_count + q.size - 1) / q.size;
      co_return ok(json{{"users", std::move(rows)}, {"total", r->total_count}, {"page", q.page},
                        {"page_size", q.size}, {"total_pages", total_pages}});
    }
    co_return ok(std::move(rows));
  }

  if (route == "/team/info" || route == "/organization/info" || (route == "/budget/info" && req.method != "POST")) {
    const char* param = route == "/team/info" ? "team_id" : route == "/organization/info" ? "organization_id" : "budget_id";
    std::string kind = route == "/team/info" ? "teams" : route == "/organization/info" ? "organizations" : "budgets";
    std::string id = query_param(req.query, param).value_or("");
    if (id.empty()) {
      co_return field_error(param, std::string("required (GET ") + route + "?" + param + "=...)");
    }
    if (route == "/organization/info" && sc == scope::org && id != self_org) {
      co_return forbidden("you may only view your own organization");
    }
    bool expand = true;
    auto r = co_await db_->run(pg::get_entity_blocking, kind, id, expand);
    if (!r) {
      co_return r.error();
    }
    if (!*r) {
      co_return not_found(std::string(kind == "teams" ? "Team" : kind == "budgets" ? "Budget" : "Organization") +
                              " not found: " + id,
                          param);
    }
    json row = parse(**r);
    if (kind != "teams") {
      co_return ok(std::move(row));
    }
    json memberships = row.value("team_memberships", json::array());
    if (sc == scope::org && text_of(row, "organization_id") != self_org) {
      co_return forbidden("team " + id + " is not in your organization");
    }
    if (sc == scope::own &&
        std::none_of(memberships.begin(), memberships.end(), [&](const json& m) { return text_of(m, "user_id") == self_user; })) {
      co_return forbidden("you are not a member of team " + id);
    }
    json keys = row.value("keys", json::array());
    for (auto& k : keys) {
      k["token_id"] = k.value("token", "");
    }
    row.erase("keys");
    row.erase("team_memberships");
    co_return ok(json{{"team_id", id}, {"team_info", std::move(row)}, {"keys", std::move(keys)},
                      {"team_memberships", std::move(memberships)}});
  }

  // ------------------------------------------------------------------ bodies
  json body = json::parse(req.body.empty() ? std::string("{}") : req.body, nullptr, false);
  if (body.is_discarded() || !body.is_object()) {
    co_return core::make_error(core::errc::invalid_json, "Request body must be a JSON object");
  }

  // Fetches a team or user for an org_admin check; the row JSON.
  auto org_check = [this, sc, &self_org](bool team, std::string id) -> net::awaitable<core::result<json>> {
    std::string kind = team ? "teams" : "users";
    const char* what = team ? "team" : "user";
    bool expand = false;
    auto r = co_await db_->run(pg::get_entity_blocking, kind, id, expand);
    if (!r) {
      co_return r.error();
    }
    if (!*r) {
      co_return not_found(std::string(team ? "Team" : "User") + " not found: " + id, team ? "team_id" : "user_id");
    }
    json row = parse(**r);
    if (sc == scope::org && text_of(row, "organization_id") != self_org) {
      co_return forbidden(std::string(what) + " " + id + " is not in your organization");
    }
    co_return ok(std::move(row));
  };
  auto team_org_check = [&org_check](std::string id) { return org_check(true, std::move(id)); };
  auto user_org_check = [&org_check](std::string id) { return org_check(false, std::move(id)); };

  // ------------------------------------------------------------------ users
  if (route == "/user/new" || route == "/user/update") {
    const bool is_new = route == "/user/new";
    auto patch = patch_of(body, user_fields, now);
    if (!patch) {
      co_return patch.error();
    }
    if (auto r = patch->find("user_role"); r != patch->end()) {
      if (!auth::valid_user_role(r->get<std::string>())) {
        co_return field_error("user_role", "must be one of proxy_admin, proxy_admin_viewer, org_admin, internal_user, "
                                           "internal_user_viewer, team, customer");
      }
      if (sc == scope::org && (*r == "proxy_admin" || *r == "proxy_admin_viewer")) {
        co_return forbidden("an org_admin may not grant " + r->get<std::string>());
      }
    }
    auto id_field = string_field(body, "user_id", false);
    if (!id_field) {
      co_return id_field.error();
    }
    auto teams = string_list(body, "teams");
    if (!teams) {
      co_return teams.error();
    }
    if (sc == scope::org) {
      if (auto o = patch->find("organization_id"); o != patch->end() && *o != self_org) {
        co_return forbidden("you may only manage users of your organization");
      }
      if (is_new) {
        (*patch)["organization_id"] = self_org;
      }
    }
    if (is_new) {
      // The teams must exist (and, for an org_admin, be in their organisation) before the
      // user is created.
      for (const auto& t : *teams) {
        if (auto chk = co_await team_org_check(t); !chk) {
          co_return chk.error();
        }
      }
      auto auto_key = body.find("auto_create_key");
      if (auto_key != body.end() && !auto_key->is_boolean() && !auto_key->is_null()) {
        co_return field_error("auto_create_key", "expected a boolean");
      }
      if (!patch->contains("user_role")) {
        (*patch)["user_role"] = "internal_user";
      }
      std::string id = id_field->empty() ? new_id() : *id_field;
      std::string kind = "users";
      auto patch_text = patch->dump();
      auto r = co_await db_->run(pg::insert_entity_blocking, kind, id, patch_text, actor);
      if (!r) {
        co_return r.error();
      }
      if (!r->problem.empty()) {
        co_return bad_request(r->problem);
      }
      if (!r->row_json) {
        co_return bad_request("User already exists: " + id, "user_id");
      }
      for (const auto& t : *teams) {
        json m = json::array({{{"user_id", id}, {"role", "user"}}});
        auto members = m.dump();
        std::optional<double> no_budget;
        auto added = co_await db_->run(pg::add_team_members_blocking, t, members, no_budget, actor);
        if (!added) {
          co_return added.error();
        }
      }
      json out = parse(*r->row_json);
      if (!teams->empty()) {
        out["teams"] = *teams;
      }
      if (auto_key == body.end() || auto_key->is_null() || auto_key->get<bool>()) {
        std::string key = generate_key_string();
        auto token = core::sha256_hex(key);
        json kp = {{"user_id", id}, {"key_name", key_name_of(key)}};
        if (auto a = body.find("key_alias"); a != body.end() && a->is_string()) {
          kp["key_alias"] = *a;
        }
        auto kp_text = kp.dump();
        auto k = co_await db_->run(pg::insert_key_blocking, token, kp_text, actor);
        if (!k) {
          co_return k.error();
        }
        out["key"] = key;
        out["token_id"] = token;
        out["key_name"] = key_name_of(key);
        out["expires"] = nullptr;
      }
      co_return ok(std::move(out));
    }
    // update: user_id, else the user with user_email
    std::string id = *id_field;
    if (id.empty()) {
      auto email = string_field(body, "user_email", false);
      if (!email) {
        co_return email.error();
      }
      if (email->empty()) {
        co_return field_error("user_id", "required: user_id or user_email");
      }
      pg::entity_list_query q;
      q.kind = "users";
      q.filter_json = json{{"user_email", *email}}.dump();
      auto found = co_await db_->run(pg::list_entities_blocking, q);
      if (!found) {
        co_return found.error();
      }
      if (found->rows.empty()) {
        co_return not_found("User not found: " + *email, "user_email");
      }
      id = text_of(parse(found->rows.front()), "user_id");
    }
    if (sc == scope::org) {
      if (auto chk = co_await user_org_check(id); !chk) {
        co_return chk.error();
      }
    }
    std::string kind = "users";
    std::string action = "updated";
    auto patch_text = patch->dump();
    auto r = co_await db_->run(pg::update_entity_blocking, kind, id, patch_text, actor, action);
    if (!r) {
      co_return r.error();
    }
    if (!r->problem.empty()) {
      co_return bad_request(r->problem);
    }
    if (!r->row_json) {
      co_return not_found("User not found: " + id, "user_id");
    }
    invalidation_->publish_owner("user", id);
    co_return ok(json{{"user_id", id}, {"data", parse(*r->row_json)}});
  }

  // ------------------------------------------------------------------ deletes
  if (route == "/user/delete" || route == "/team/delete" || route == "/organization/delete") {
    const char* field = route == "/user/delete" ? "user_ids" : route == "/team/delete" ? "team_ids" : "organization_ids";
    std::string kind = route == "/user/delete" ? "users" : route == "/team/delete" ? "teams" : "organizations";
    auto ids = string_list(body, field);
    if (!ids) {
      co_return ids.error();
    }
    if (ids->empty()) {
      co_return field_error(field, "required: a non-empty list");
    }
    if (sc == scope::org) {
      for (const auto& id : *ids) {
        if (kind == "users") {
          if (auto chk = co_await user_org_check(id); !chk) {
            co_return chk.error();
          }
        } else if (auto chk = co_await team_org_check(id); !chk) {
          co_return chk.error();
        }
      }
    }
    auto r = co_await db_->run(pg::delete_entities_blocking, kind, *ids, actor);
    if (!r) {
      co_return r.error();
    }
    if (r->empty()) {
      co_return not_found("Not found: " + json(*ids).dump(), field);
    }
    json rows = json::array();
    json deleted_ids = json::array();
    const char* id_col = kind == "users" ? "user_id" : kind == "teams" ? "team_id" : "organization_id";
    for (const auto& t : *r) {
      auto row = parse(t);
      auto id = text_of(row, id_col);
      invalidation_->publish_owner(kind == "users" ? "user" : kind == "teams" ? "team" : "org", id);
      deleted_ids.push_back(id);
      rows.push_back(std::move(row));
    }
    if (kind == "organizations") {
      co_return ok(std::move(rows));
    }
    co_return ok(json{{kind == "users" ? "deleted_users" : "deleted_teams", std::move(deleted_ids)}});
  }

  // ------------------------------------------------------------------ teams
  if (route == "/team/new" || route == "/team/update") {
    const bool is_new = route == "/team/new";
    auto patch = patch_of(body, team_fields, now);
    if (!patch) {
      co_return patch.error();
    }
    if (auto e = merge_tags(body, *patch, now)) {
      co_return *e;
    }
    auto members = members_of(body, "members_with_roles");
    if (!members) {
      co_return members.error();
    }
    auto id_field = string_field(body, "team_id", !is_new);
    if (!id_field) {
      co_return id_field.error();
    }
    if (sc == scope::org) {
      if (auto o = patch->find("organization_id"); o != patch->end() && *o != self_org) {
        co_return forbidden("you may only manage teams of your organization");
      }
      if (is_new) {
        (*patch)["organization_id"] = self_org;
      } else if (auto chk = co_await team_org_check(*id_field); !chk) {
        co_return chk.error();
      }
    }
    std::string id = id_field->empty() ? new_id() : *id_field;
    std::string kind = "teams";
    auto patch_text = patch->dump();
    pg::entity_write w;
    if (is_new) {
      auto r = co_await db_->run(pg::insert_entity_blocking, kind, id, patch_text, actor);
      if (!r) {
        co_return r.error();
      }
      w = std::move(*r);
      if (w.problem.empty() && !w.row_json) {
        co_return bad_request("Team id = " + id + " already exists. Please use a different team id.", "team_id");
      }
    } else {
      std::string action = "updated";
      auto r = co_await db_->run(pg::update_entity_blocking, kind, id, patch_text, actor, action);
      if (!r) {
        co_return r.error();
      }
      w = std::move(*r);
      if (w.problem.empty() && !w.row_json) {
        co_return not_found("Team not found: " + id, "team_id");
      }
    }
    if (!w.problem.empty()) {
      co_return bad_request(w.problem);
    }
    if (!members->empty()) {
      auto members_text = members->dump();
      std::optional<double> no_budget;
      auto added = co_await db_->run(pg::add_team_members_blocking, id, members_text, no_budget, actor);
      if (!added) {
        co_return added.error();
      }
      if (added->team_json) {
        w.row_json = added->team_json;
      }
    }
    if (is_new) {
      co_return ok(parse(*w.row_json));
    }
    invalidation_->publish_owner("team", id);
    co_return ok(json{{"team_id", id}, {"data", parse(*w.row_json)}});
  }

  if (route == "/team/block" || route == "/team/unblock") {
    auto team_id = string_field(body, "team_id", true);
    if (!team_id) {
      co_return team_id.error();
    }
    if (sc == scope::org) {
      if (auto chk = co_await team_org_check(*team_id); !chk) {
        co_return chk.error();
      }
    }
    const bool block = route == "/team/block";
    std::string kind = "teams";
    std::string action = block ? "blocked" : "unblocked";
    auto patch_text = json{{"blocked", block}}.dump();
    auto r = co_await db_->run(pg::update_entity_blocking, kind, *team_id, patch_text, actor, action);
    if (!r) {
      co_return r.error();
    }
    if (!r->row_json) {
      co_return not_found("Team not found: " + *team_id, "team_id");
    }
    invalidation_->publish_owner("team", *team_id);
    co_return ok(parse(*r->row_json));
  }

  if (route == "/team/member_add" || route == "/team/member_delete") {
    auto team_id = string_field(body, "team_id", true);
    if (!team_id) {
      co_return team_id.error();
    }
    if (sc == scope::org) {
      if (auto chk = co_await team_org_check(*team_id); !chk) {
        co_return chk.error();
      }
    }
    if (route == "/team/member_add") {
      auto members = members_of(body, "member");
      if (!members) {
        co_return members.error();
      }
      if (members->empty()) {
        co_return field_error("member", "required: {role, user_id or user_email}");
      }
      std::optional<double> budget;
      if (auto b = body.find("max_budget_in_team"); b != body.end() && !b->is_null()) {
        if (!b->is_number()) {
          co_return field_error("max_budget_in_team", "expected a number");
        }
        budget = b->get<double>();
      }
      auto members_text = members->dump();
      auto r = co_await db_->run(pg::add_team_members_blocking, *team_id, members_text, budget, actor);
      if (!r) {
        co_return r.error();
      }
      if (!r->team_json) {
        co_return not_found("Team not found: " + *team_id, "team_id");
      }
      json out = parse(*r->team_json);
      out["updated_users"] = parse(r->updated_users_json);
      co_return ok(std::move(out));
    }
    auto user_id = string_field(body, "user_id", false);
    if (!user_id) {
      co_return user_id.error();
    }
    auto email = string_field(body, "user_email", false);
    if (!email) {
      co_return email.error();
    }
    if (user_id->empty() && email->empty()) {
      co_return field_error("user_id", "required: user_id or user_email");
    }
    auto r = co_await db_->run(pg::remove_team_member_blocking, *team_id, *user_id, *email, actor);
    if (!r) {
      co_return r.error();
    }
    if (!r->team_json) {
      co_return not_found("Team not found: " + *team_id, "team_id");
    }
    if (!r->problem.empty()) {
      co_return bad_request(r->problem, "user_id");
    }
    co_return ok(parse(*r->team_json));
  }

  // ------------------------------------------------------------------ organisations
  if (route == "/organization/new" || route == "/organization/update") {
    const bool is_new = route == "/organization/new";
    auto patch = patch_of(body, org_fields, now);
    if (!patch) {
      co_return patch.error();
    }
    auto budget = patch_of(body, budget_fields, now);
    if (!budget) {
      co_return budget.error();
    }
    auto id_field = string_field(body, "organization_id", !is_new);
    if (!id_field) {
      co_return id_field.error();
    }
    if (is_new && !patch->contains("organization_alias")) {
      co_return field_error("organization_alias", "required");
    }
    std::string id = id_field->empty() ? new_id() : *id_field;
    std::string budget_kind = "budgets";
    std::string org_kind = "organizations";
    if (is_new) {
      if (!patch->contains("budget_id") || (*patch)["budget_id"].is_null()) {
        // LiteLLM: an organisation always has a budget row; the request's limits go there.
        std::string budget_id = new_id();
        auto budget_text = budget->dump();
        auto b = co_await db_->run(pg::insert_entity_blocking, budget_kind, budget_id, budget_text, actor);
        if (!b) {
          co_return b.error();
        }
        (*patch)["budget_id"] = budget_id;
      }
      auto patch_text = patch->dump();
      auto r = co_await db_->run(pg::insert_entity_blocking, org_kind, id, patch_text, actor);
      if (!r) {
        co_return r.error();
      }
      if (!r->problem.empty()) {
        co_return bad_request(r->problem);
      }
      if (!r->row_json) {
        co_return bad_request("Organization already exists: " + id, "organization_id");
      }
      bool expand = true;
      auto full = co_await db_->run(pg::get_entity_blocking, org_kind, id, expand);
      if (!full) {
        co_return full.error();
      }
      co_return ok(parse(full->value_or(*r->row_json)));
    }
    std::string action = "updated";
    auto patch_text = patch->dump();
    auto r = co_await db_->run(pg::update_entity_blocking, org_kind, id, patch_text, actor, action);
    if (!r) {
      co_return r.error();
    }
    if (!r->problem.empty()) {
      co_return bad_request(r->problem);
    }
    if (!r->row_json) {
      co_return not_found("Organization not found: " + id, "organization_id");
    }
    if (!budget->empty()) {
      auto budget_id = text_of(parse(*r->row_json), "budget_id");
      auto budget_text = budget->dump();
      if (budget_id.empty()) {
        budget_id = new_id();
        auto b = co_await db_->run(pg::insert_entity_blocking, budget_kind, budget_id, budget_text, actor);
        if (!b) {
          co_return b.error();
        }
        auto link = json{{"budget_id", budget_id}}.dump();
        auto u = co_await db_->run(pg::update_entity_blocking, org_kind, id, link, actor, action);
        if (!u) {
          co_return u.error();
        }
      } else {
        auto b = co_await db_->run(pg::update_entity_blocking, budget_kind, budget_id, budget_text, actor, action);
        if (!b) {
          co_return b.error();
        }
      }
    }
    invalidation_->publish_owner("org", id);
    bool expand = true;
    auto full = co_await db_->run(pg::get_entity_blocking, org_kind, id, expand);
    if (!full) {
      co_return full.error();
    }
    co_return ok(parse(full->value_or(*r->row_json)));
  }

  // ------------------------------------------------------------------ budgets
  if (route == "/budget/new" || route == "/budget/update") {
    const bool is_new = route == "/budget/new";
    auto patch = patch_of(body, budget_fields, now);
    if (!patch) {
      co_return patch.error();
    }
    auto id_field = string_field(body, "budget_id", !is_new);
    if (!id_field) {
      co_return id_field.error();
    }
    std::string id = id_field->empty() ? new_id() : *id_field;
    std::string kind = "budgets";
    auto patch_text = patch->dump();
    if (is_new) {
      auto r = co_await db_->run(pg::insert_entity_blocking, kind, id, patch_text, actor);
      if (!r) {
        co_return r.error();
      }
      if (!r->problem.empty()) {
        co_return bad_request(r->problem);
      }
      if (!r->row_json) {
        co_return bad_request("Budget already exists: " + id, "budget_id");
      }
      co_return ok(parse(*r->row_json));
    }
    std::string action = "updated";
    auto r = co_await db_->run(pg::update_entity_blocking, kind, id, patch_text, actor, action);
    if (!r) {
      co_return r.error();
    }
    if (!r->problem.empty()) {
      co_return bad_request(r->problem);
    }
    if (!r->row_json) {
      co_return not_found("Budget not found: " + id, "budget_id");
    }
    co_return ok(parse(*r->row_json));
  }

  if (route == "/budget/info") {  // POST {"budgets": [...]}
    auto ids = string_list(body, "budgets");
    if (!ids) {
      co_return ids.error();
    }
    if (ids->empty()) {
      co_return field_error("budgets", "required: a non-empty list of budget ids");
    }
    json rows = json::array();
    std::string kind = "budgets";
    for (const auto& id : *ids) {
      bool expand = false;
      auto r = co_await db_->run(pg::get_entity_blocking, kind, id, expand);
      if (!r) {
        co_return r.error();
      }
      if (*r) {
        rows.push_back(parse(**r));
      }
    }
    co_return ok(std::move(rows));
  }

  if (route == "/budget/delete") {
    auto id = string_field(body, "id", false);
    if (!id) {
      co_return id.error();
    }
    std::string bid = *id;
    if (bid.empty()) {
      auto alt = string_field(body, "budget_id", true);
      if (!alt) {
        co_return field_error("id", "required");
      }
      bid = *alt;
    }
    std::string kind = "budgets";
    std::vector<std::string> ids{bid};
    auto r = co_await db_->run(pg::delete_entities_blocking, kind, ids, actor);
    if (!r) {
      co_return r.error();
    }
    if (r->empty()) {
      co_return not_found("Budget not found: " + bid, "id");
    }
    co_return ok(parse(r->front()));
  }

  co_return not_found("Not Found: " + route, "");
}

}  // namespace switchyard::admin
