// /team/new, /team/update, /team/delete, /team/member_add, /team/member_delete,
// /team/member_update, /team/block, /team/unblock, /team/info, /team/list.
#include "entities.hpp"

#include "switchyard/store/postgres/tenant_repo.hpp"

#include <algorithm>

namespace switchyard::admin {

namespace {

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

// What /team/new and /team/update read from the body, checked in this order.
struct team_request {
  json patch;
  json members;         // members_with_roles
  std::string team_id;  // "" if not given (/team/new)
  // The members' default budget: a budgets patch from team_member_budget (max_budget),
  // team_member_budget_duration (budget_duration), team_member_rpm_limit (rpm_limit) and
  // team_member_tpm_limit (tpm_limit); {} when none is given.
  json member_budget = json::object();
  bool member_budget_value = false;  // one of them is not null: worth a budgets row
};

// team_member_budget (USD, >= 0, null: none), team_member_budget_duration (null: none),
// team_member_rpm_limit and team_member_tpm_limit (integers >= 0, null: none): LiteLLM keeps
// them all in the one budgets row the team's metadata names (team_member_budget_id).
// A body field that goes to a budgets column under another name.
struct renamed_field {
  const char* field;
  const char* column;
  kind k;
};

// The body's `fields` that are present, each checked (its kind, not negative), under their
// budgets column names.
core::result<json> renamed_fields(const route_context& c, std::initializer_list<renamed_field> fields) {
  json renamed = json::object();
  for (const renamed_field& n : fields) {
    auto it = c.body.find(n.field);
    if (it == c.body.end()) {
      continue;
    }
    if (auto e = check_kind(n.field, n.k, *it, c.now)) {
      return *e;
    }
    if (auto e = check_not_negative(n.field, *it)) {
      return *e;
    }
    renamed[n.column] = *it;
  }
  return ok(std::move(renamed));
}

core::result<json> member_budget_of(const route_context& c) {
  auto renamed = renamed_fields(c, {{"team_member_budget", "max_budget", kind::num_or_null},
                                    {"team_member_budget_duration", "budget_duration", kind::duration_or_null},
                                    {"team_member_rpm_limit", "rpm_limit", kind::int_or_null},
                                    {"team_member_tpm_limit", "tpm_limit", kind::int_or_null}});
  if (!renamed) {
    return renamed.error();
  }
  // As every budgets row: a duration also sets the end of the first period.
  return patch_from(*renamed, entity::budget, c.now, c.budget_tz());
}

core::result<team_request> read_team_request(const route_context& c, bool is_new) {
  auto patch = patch_from(c.body, entity::team, c.now, c.budget_tz());
  if (!patch) {
    return patch.error();
  }
  if (is_new || patch->contains("metadata")) {
    // A metadata patch replaces the stored metadata; the tags go into the new one.
    if (auto e = merge_tags(c.body, *patch, c.now)) {
      return *e;
    }
  } else if (auto t = c.body.find("tags"); t != c.body.end() && !t->is_null()) {
    // Tags alone replace metadata.tags and keep the rest of the team's metadata, as for
    // keys: the repository merges them in the statement that writes the row.
    if (auto e = check_kind("tags", kind::str_array, *t, c.now)) {
      return *e;
    }
    (*patch)["metadata_tags"] = *t;
  }
  auto members = members_of(c.body, "members_with_roles");
  if (!members) {
    return members.error();
  }
  auto id = string_field(c.body, "team_id", !is_new);
  if (!id) {
    return id.error();
  }
  auto member_budget = member_budget_of(c);
  if (!member_budget) {
    return member_budget.error();
  }
  if (auto e = keep_in_org(c, *patch, is_new, "teams")) {
    return *e;
  }
  const auto given = [](const json& v) { return !v.is_null(); };
  const bool value = std::any_of(member_budget->begin(), member_budget->end(), given);
  return team_request{std::move(*patch), std::move(*members), std::move(*id), std::move(*member_budget), value};
}

// The team's row, its members' default budget and members_with_roles, in one transaction
// (tenant_repo's write_team_blocking): 400 with a refused value's problem, else `none`
// when no row was written (a new team's id taken, the team to update missing).
net::awaitable<core::result<json>> write_team(const route_context& c, const team_request& in, std::string id,
                                              bool is_new, core::error none) {
  pg::team_write w;
  w.team_id = std::move(id);
  w.is_new = is_new;
  w.patch_json = in.patch.dump();
  w.member_budget_json = in.member_budget.dump();
  w.create_member_budget = in.member_budget_value;
  w.members_json = in.members.dump();
  auto r = co_await c.db().run(pg::write_team_blocking, w, c.actor);
  co_return written_row(r, std::move(none));
}

// The request's team_id (required), which an org_admin must have in their organisation.
net::awaitable<core::result<std::string>> team_to_change(const route_context& c) {
  auto team_id = string_field(c.body, "team_id", true);
  if (!team_id) {
    co_return team_id.error();
  }
  if (c.sc == scope::org) {
    if (auto chk = co_await org_member_row(c, true, *team_id); !chk) {
      co_return chk.error();
    }
  }
  co_return std::move(*team_id);
}

handler_result set_blocked(const route_context& c, bool block) {
  auto team_id = co_await team_to_change(c);
  if (!team_id) {
    co_return team_id.error();
  }
  json patch = {{"blocked", block}};
  auto row = co_await update_row(c, "teams", *team_id, patch, block ? "blocked" : "unblocked",
                                 "Team not found: " + *team_id, "team_id");
  if (!row) {
    co_return row.error();
  }
  c.invalidation().publish_owner("team", *team_id);
  co_return row;
}

}  // namespace

handler_result team_new(const route_context& c) {
  auto in = read_team_request(c, true);
  if (!in) {
    co_return in.error();
  }
  std::string id = id_or_new(in->team_id);
  auto exists = bad_request("Team id = " + id + " already exists. Please use a different team id.", "team_id");
  co_return co_await write_team(c, *in, id, true, std::move(exists));
}

handler_result team_update(const route_context& c) {
  auto in = read_team_request(c, false);
  if (!in) {
    co_return in.error();
  }
  if (c.sc == scope::org) {
    if (auto chk = co_await org_member_row(c, true, in->team_id); !chk) {
      co_return chk.error();
    }
  }
  const std::string& id = in->team_id;
  if (auto fresh = co_await fresh_budget_period(c, "teams", id, in->patch); !fresh) {
    co_return fresh.error();
  }
  // The default is read when a key is loaded: the keys reloaded below see the change.
  auto row = co_await write_team(c, *in, id, false, not_found("Team not found: " + id, "team_id"));
  if (!row) {
    co_return row.error();
  }
  c.invalidation().publish_owner("team", id);
  co_return ok(json{{"team_id", id}, {"data", std::move(*row)}});
}

handler_result team_delete(const route_context& c) {
  return delete_tenants(c, {"teams", "team_ids", "team_id", "team", "deleted_teams"});
}

handler_result team_block(const route_context& c) { return set_blocked(c, true); }

handler_result team_unblock(const route_context& c) { return set_blocked(c, false); }

handler_result team_member_add(const route_context& c) {
  auto team_id = co_await team_to_change(c);
  if (!team_id) {
    co_return team_id.error();
  }
  auto members = members_of(c.body, "member");
  if (!members) {
    co_return members.error();
  }
  if (members->empty()) {
    co_return field_error("member", "required: {role, user_id or user_email}");
  }
  std::optional<double> budget;
  if (auto b = c.body.find("max_budget_in_team"); b != c.body.end() && !b->is_null()) {
    if (!b->is_number()) {
      co_return field_error("max_budget_in_team", "expected a number");
    }
    if (auto e = check_not_negative("max_budget_in_team", *b)) {
      co_return *e;
    }
    budget = b->get<double>();
  }
  auto members_text = members->dump();
  // As LiteLLM: a member already in the team is not added again (nor its role changed);
  // 400 team_member_already_in_team when that is the one member, or every one of a list.
  const bool skip_members = true;
  auto r = co_await c.db().run(pg::add_team_members_blocking, *team_id, members_text, budget, c.actor, skip_members);
  if (!r) {
    co_return r.error();
  }
  if (!r->team_json) {
    co_return not_found("Team not found: " + *team_id, "team_id");
  }
  json out = json::parse(*r->team_json);
  if (!r->already_in.empty() && r->already_in.size() == members->size()) {
    const std::string existing = out.value("members_with_roles", json::array()).dump();
    std::string message;
    if (c.body.find("member")->is_object()) {
      const auto& m = (*members)[0];
      const auto named = [&m](const char* f) {
        return m.contains(f) && m[f].is_string() ? m[f].get<std::string>() : std::string("None");
      };
      message = "User already in team. Member: user_id=" + named("user_id") + ", user_email=" + named("user_email") +
                ". Existing members=" + existing;
    } else {
      message = "All users are already in team. Existing members=" + existing;
    }
    auto e = bad_request(std::move(message), "member");
    e.type = "team_member_already_in_team";
    co_return e;
  }
  // The team's cached keys carry their user's membership (its max_budget_in_team): the
  // next request of each reloads it, on every instance.
  c.invalidation().publish_owner("team", *team_id);
  out["updated_users"] = json::parse(r->updated_users_json);
  co_return ok(std::move(out));
}

handler_result team_member_delete(const route_context& c) {
  auto team_id = co_await team_to_change(c);
  if (!team_id) {
    co_return team_id.error();
  }
  auto user_id = string_field(c.body, "user_id", false);
  if (!user_id) {
    co_return user_id.error();
  }
  auto email = string_field(c.body, "user_email", false);
  if (!email) {
    co_return email.error();
  }
  if (user_id->empty() && email->empty()) {
    co_return field_error("user_id", "required: user_id or user_email");
  }
  auto r = co_await c.db().run(pg::remove_team_member_blocking, *team_id, *user_id, *email, c.actor);
  if (!r) {
    co_return r.error();
  }
  if (!r->team_json) {
    co_return not_found("Team not found: " + *team_id, "team_id");
  }
  if (!r->problem.empty()) {
    co_return bad_request(r->problem, "user_id");
  }
  c.invalidation().publish_owner("team", *team_id);  // the member's budget in the team is gone
  co_return ok(json::parse(*r->team_json));
}

namespace {

// A value of the request as LiteLLM shows its request object in a message ("None", 'text',
// numbers as they are).
std::string python_repr(const json& body, const char* name) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) {
    return "None";
  }
  return it->is_string() ? "'" + it->get<std::string>() + "'" : it->dump();
}

// The caller may change the team's members: a proxy admin, an admin member of the team
// (LiteLLM's rule), or an org_admin for a team of their organisation (as for the other
// member routes).
bool may_manage_members(const route_context& c, const json& team) {
  if (c.sc == scope::all) {
    return true;
  }
  if (c.sc == scope::org && !c.self_org.empty() && text_of(team, "organization_id") == c.self_org) {
    return true;
  }
  const auto members = team.value("members_with_roles", json::array());
  return !c.self_user.empty() && std::any_of(members.begin(), members.end(), [&c](const json& m) {
           return text_of(m, "user_id") == c.self_user && text_of(m, "role") == "admin";
         });
}

}  // namespace

// LiteLLM's /team/member_update: a member's role and their own budget and rate limits in
// the team (max_budget_in_team, tpm_limit, rpm_limit: a value sets it, null clears it,
// absent leaves it), which replace the team's default for that member.
handler_result team_member_update(const route_context& c) {
  auto team_id = string_field(c.body, "team_id", true);
  if (!team_id) {
    co_return team_id.error();
  }
  auto user_id = string_field(c.body, "user_id", false);
  if (!user_id) {
    co_return user_id.error();
  }
  auto email = string_field(c.body, "user_email", false);
  if (!email) {
    co_return email.error();
  }
  std::optional<std::string> role;
  if (auto r = c.body.find("role"); r != c.body.end() && !r->is_null()) {
    if (!r->is_string() || (*r != "admin" && *r != "user")) {
      co_return field_error("role", "role must be \"admin\" or \"user\"");
    }
    role = r->get<std::string>();
  }
  auto renamed = renamed_fields(c, {{"max_budget_in_team", "max_budget", kind::num_or_null},
                                    {"tpm_limit", "tpm_limit", kind::int_or_null},
                                    {"rpm_limit", "rpm_limit", kind::int_or_null}});
  if (!renamed) {
    co_return renamed.error();
  }
  json budget_patch = std::move(*renamed);
  if (user_id->empty() && email->empty()) {
    co_return bad_request("Either user_id or user_email needs to be passed in", "user_id");
  }
  // LiteLLM's order and words: the team first (400), then who may change it (403).
  const auto no_team = [&team_id] { return bad_request("Team id=" + *team_id + " does not exist in db", "team_id"); };
  auto team = co_await get_row(c, "teams", *team_id, false);
  if (!team) {
    co_return team.error();
  }
  if (!*team) {
    co_return no_team();
  }
  if (!may_manage_members(c, **team)) {
    auto e = core::make_error(core::errc::forbidden,
                              "Call not allowed. User not proxy admin OR team admin. route=/team/member_update, "
                              "team_id=" +
                                  *team_id);
    e.type = "auth_error";
    co_return e;
  }
  pg::member_update w;
  w.team_id = *team_id;
  w.user_id = *user_id;
  w.user_email = *email;
  w.role = role;
  w.budget_patch_json = budget_patch.dump();
  auto r = co_await c.db().run(pg::update_team_member_blocking, w, c.actor);
  if (!r) {
    co_return r.error();
  }
  if (!r->team_found) {
    co_return no_team();
  }
  if (r->user_id.empty()) {
    co_return bad_request("User id doesn't exist in team table. Data=team_id='" + *team_id +
                              "' user_id=" + python_repr(c.body, "user_id") +
                              " user_email=" + python_repr(c.body, "user_email") +
                              " max_budget_in_team=" + python_repr(c.body, "max_budget_in_team") +
                              " role=" + python_repr(c.body, "role") + " tpm_limit=" +
                              python_repr(c.body, "tpm_limit") + " rpm_limit=" + python_repr(c.body, "rpm_limit"),
                          "user_id");
  }
  // The member's keys carry their budget in the team: each reloads it on its next
  // request, on every instance.
  c.invalidation().publish_owner("user", r->user_id);
  const auto echoed = [&c](const char* f) { return c.body.contains(f) ? c.body[f] : json(nullptr); };
  co_return ok(json{{"team_id", *team_id},
                    {"user_id", r->user_id},
                    {"user_email", echoed("user_email")},
                    {"max_budget_in_team", echoed("max_budget_in_team")},
                    {"tpm_limit", echoed("tpm_limit")},
                    {"rpm_limit", echoed("rpm_limit")}});
}

namespace {

// LiteLLM's answer for a team the permission routes cannot find (404).
core::error team_not_found_for(const std::string& team_id) {
  return not_found("Team not found for team_id=" + team_id, "team_id");
}

// The team of a permission route, and whether the caller may see or change its members'
// permissions (may_manage_members; LiteLLM's order: the team first, then who).
net::awaitable<core::result<json>> permission_team(const route_context& c, std::string team_id) {
  auto team = co_await get_row(c, "teams", team_id, false);
  if (!team) {
    co_return team.error();
  }
  if (!*team) {
    co_return team_not_found_for(team_id);
  }
  if (!may_manage_members(c, **team)) {
    auto e = core::make_error(core::errc::forbidden, "Call not allowed. User not proxy admin OR team admin. route=" +
                                                         std::string(c.r.path) + ", team_id=" + team_id);
    e.type = "auth_error";
    co_return e;
  }
  co_return ok(std::move(**team));
}

// What a team's members may be allowed: the key routes this gateway serves (LiteLLM lists
// its key management routes). Of them, /key/generate and /key/update are the ones the
// permissions grant beyond the member's own keys (docs/virtual-keys.md).
json available_team_member_permissions() {
  json out = json::array();
  for (const auto& r : management_routes()) {
    for (auto path : {r.path, r.alias}) {
      if (path.starts_with("/key/")) {
        out.push_back(std::string(path));
      }
    }
  }
  return out;
}

}  // namespace

// GET /team/permissions_list?team_id=: {team_id, team_member_permissions,
// all_available_permissions}. A team without any lists LiteLLM's defaults.
handler_result team_permissions_list(const route_context& c) {
  auto id = required_query_id(c, "team_id");
  if (!id) {
    co_return id.error();
  }
  auto team = co_await permission_team(c, *id);
  if (!team) {
    co_return team.error();
  }
  json perms = team->value("team_member_permissions", json::array());
  if (!perms.is_array() || perms.empty()) {
    perms = json::array({"/key/info", "/key/health"});  // LiteLLM's DEFAULT_TEAM_MEMBER_PERMISSIONS
  }
  co_return ok(json{{"team_id", *id},
                    {"team_member_permissions", std::move(perms)},
                    {"all_available_permissions", available_team_member_permissions()}});
}

// POST /team/permissions_update {team_id, team_member_permissions}: the team row. The
// write is /team/update's (one transaction with its audit row); the team's keys reload.
handler_result team_permissions_update(const route_context& c) {
  auto team_id = string_field(c.body, "team_id", true);
  if (!team_id) {
    co_return team_id.error();
  }
  auto given = c.body.find("team_member_permissions");
  if (given == c.body.end() || !given->is_array()) {
    co_return field_error("team_member_permissions", "required: an array of route paths");
  }
  if (auto e = check_kind("team_member_permissions", kind::str_array, *given, c.now)) {
    co_return *e;
  }
  if (auto team = co_await permission_team(c, *team_id); !team) {
    co_return team.error();
  }
  json patch{{"team_member_permissions", *given}};
  auto row = co_await update_row(c, "teams", *team_id, patch, "updated", "Team not found for team_id=" + *team_id,
                                 "team_id");
  if (!row) {
    co_return row.error();
  }
  c.invalidation().publish_owner("team", *team_id);
  co_return row;
}

handler_result team_info(const route_context& c) {
  auto id = required_query_id(c, "team_id");
  if (!id) {
    co_return id.error();
  }
  auto row = co_await expanded_row(c, "teams", *id, "team_id", "Team");
  if (!row) {
    co_return row.error();
  }
  json memberships = row->value("team_memberships", json::array());
  if (c.sc == scope::org && text_of(*row, "organization_id") != c.self_org) {
    co_return forbidden("team " + *id + " is not in your organization");
  }
  auto is_self = [&c](const json& m) { return text_of(m, "user_id") == c.self_user; };
  if (c.sc == scope::own && std::none_of(memberships.begin(), memberships.end(), is_self)) {
    co_return forbidden("you are not a member of team " + *id);
  }
  json keys = row->value("keys", json::array());
  for (auto& k : keys) {
    k["token_id"] = k.value("token", "");
  }
  row->erase("keys");
  row->erase("team_memberships");
  co_return ok(json{{"team_id", *id}, {"team_info", std::move(*row)}, {"keys", std::move(keys)},
                    {"team_memberships", std::move(memberships)}});
}

handler_result team_list(const route_context& c) {
  list_request lr{.kind = "teams"};
  if (auto u = query_param(c.req.query, "user_id"); u && !u->empty()) {
    lr.member_of = *u;
  }
  auto page = co_await list_rows(c, std::move(lr));
  if (!page) {
    co_return page.error();
  }
  co_return ok(std::move(page->rows));
}

}  // namespace switchyard::admin
