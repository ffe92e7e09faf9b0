// /organization/new, /organization/update, /organization/delete, /organization/info,
// /organization/list, and its members: /organization/member_add, _update, _delete. An
// organisation always has a budgets row (as in LiteLLM): the request's limits go there.
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

// The organisation with its budget, teams and members; `row` if it is gone meanwhile.
net::awaitable<core::result<json>> full_org(const route_context& c, const std::string& id, json row) {
  auto full = co_await get_row(c, "organizations", id, true);
  if (!full) {
    co_return full.error();
  }
  co_return ok(full->value_or(std::move(row)));
}

// LiteLLM's roles of an organisation member (its OrgMember).
bool org_member_role(const std::string& role) {
  return role == "org_admin" || role == "internal_user" || role == "internal_user_viewer";
}

// The organisation a member route is about: required; an org_admin's own only.
core::result<std::string> member_org(const route_context& c) {
  auto id = string_field(c.body, "organization_id", true);
  if (!id) {
    return id.error();
  }
  if (c.sc == scope::org && *id != c.self_org) {
    return forbidden("you may only manage the members of your own organization");
  }
  return id;
}

// max_budget_in_organization: absent or null, else a number not below 0.
core::result<std::optional<double>> member_budget(const json& body) {
  auto it = body.find("max_budget_in_organization");
  if (it == body.end() || it->is_null()) {
    return std::optional<double>{};
  }
  if (!it->is_number()) {
    return field_error("max_budget_in_organization", "expected a number or null");
  }
  if (auto e = check_not_negative("max_budget_in_organization", *it)) {
    return *e;
  }
  return std::optional<double>{it->get<double>()};
}

// A member object's user_id / user_email (one at least), as LiteLLM's Member requires.
core::result<void> member_ids(const json& m, const std::string& where, std::string& user_id, std::string& email) {
  for (auto [name, out] : {std::pair{"user_id", &user_id}, std::pair{"user_email", &email}}) {
    auto it = m.find(name);
    if (it == m.end() || it->is_null()) {
      continue;
    }
    if (!it->is_string()) {
      return field_error(where + name, "expected a string or null");
    }
    *out = it->get<std::string>();
  }
  if (user_id.empty() && email.empty()) {
    return field_error(where.empty() ? "user_id" : where.substr(0, where.size() - 1),
                       "Either user_id or user_email must be provided");
  }
  return {};
}

// The users whose role or organisation changed: their cached keys reload on every instance.
void users_changed(const route_context& c, const std::vector<std::string>& users) {
  for (const auto& u : users) {
    c.invalidation().publish_owner("user", u);
  }
}

core::error org_not_found(const std::string& id, int status) {
  auto e = core::make_error(status == 400 ? core::errc::bad_request : core::errc::not_found,
                            "Organization not found for organization_id=" + id, "organization_id");
  return e;
}

}  // namespace

handler_result organization_new(const route_context& c) {
  auto in = read_org_request(c, true);
  if (!in) {
    co_return in.error();
  }
  auto exists = bad_request("Organization already exists: " + in->id, "organization_id");
  auto row = co_await write_budgeted(c, "organizations", *in, true, std::move(exists));
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
  auto missing = not_found("Organization not found: " + in->id, "organization_id");
  auto row = co_await write_budgeted(c, "organizations", *in, false, std::move(missing));
  if (!row) {
    co_return row.error();
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

// POST /organization/member_add: {organization_id, member: {role, user_id | user_email}
// or a list of them, max_budget_in_organization}. All members in one transaction.
handler_result organization_member_add(const route_context& c) {
  auto org = member_org(c);
  if (!org) {
    co_return org.error();
  }
  auto budget = member_budget(c.body);
  if (!budget) {
    co_return budget.error();
  }
  auto given = c.body.find("member");
  if (given == c.body.end() || !(given->is_object() || (given->is_array() && !given->empty()))) {
    co_return field_error("member", "required: a member {role, user_id or user_email} or a list of them");
  }
  const json list = given->is_array() ? *given : json::array({*given});
  std::vector<pg::org_member_spec> members;
  for (std::size_t i = 0; i < list.size(); ++i) {
    const std::string where = given->is_array() ? "member[" + std::to_string(i) + "]." : "member.";
    const json& m = list[i];
    if (!m.is_object()) {
      co_return field_error(where.substr(0, where.size() - 1), "expected an object");
    }
    pg::org_member_spec spec;
    auto role = m.find("role");
    if (role == m.end() || !role->is_string() || !org_member_role(role->get<std::string>())) {
      co_return field_error(where + "role", "required: one of org_admin, internal_user, internal_user_viewer");
    }
    spec.role = role->get<std::string>();
    if (auto ids = member_ids(m, where, spec.user_id, spec.user_email); !ids) {
      co_return ids.error();
    }
    members.push_back(std::move(spec));
  }
  auto r = co_await c.db().run(pg::add_org_members_blocking, *org, members, *budget, c.actor);
  if (!r) {
    co_return r.error();
  }
  if (!r->org_found) {
    co_return org_not_found(*org, 404);
  }
  if (!r->problem.empty()) {
    co_return bad_request(r->problem, "member");
  }
  users_changed(c, r->users_changed);
  co_return ok(json{{"organization_id", *org},
                    {"updated_users", json::parse(r->updated_users_json)},
                    {"updated_organization_memberships", json::parse(r->memberships_json)}});
}

namespace {

// /organization/member_update and /organization/member_delete: the member by user_id, else
// user_email; LiteLLM's answers for an unknown organisation, email or member.
handler_result change_member(const route_context& c, pg::org_member_change in) {
  auto org = member_org(c);
  if (!org) {
    co_return org.error();
  }
  in.organization_id = *org;
  if (auto ids = member_ids(c.body, "", in.user_id, in.user_email); !ids) {
    co_return ids.error();
  }
  in.by_proxy_admin = c.sc == scope::all;
  auto r = co_await c.db().run(pg::change_org_member_blocking, in, c.actor);
  if (!r) {
    co_return r.error();
  }
  if (!r->org_found) {
    co_return org_not_found(*org, in.remove ? 404 : 400);
  }
  if (r->email_unknown) {
    co_return bad_request("Unique user not found for user_email=" + in.user_email +
                              ". Potential duplicate OR non-existent user_email in LiteLLM_UserTable. Use 'user_id' "
                              "instead.",
                          "user_email");
  }
  if (r->not_member) {
    co_return not_found("Member not found in organization for user_id=" + r->user_id, "user_id");
  }
  if (r->global_admin) {
    auto e = core::make_error(core::errc::forbidden,
                              "Only PROXY_ADMIN may modify the organization role of a user who is a global PROXY_ADMIN.",
                              "user_id");
    e.type = "auth_error";
    co_return e;
  }
  if (!r->problem.empty()) {
    co_return bad_request(r->problem, "role");
  }
  users_changed(c, r->users_changed);
  co_return ok(json::parse(r->membership_json));
}

}  // namespace

// PATCH /organization/member_update: {organization_id, user_id | user_email, role,
// max_budget_in_organization}; the membership row with its litellm_budget_table.
handler_result organization_member_update(const route_context& c) {
  pg::org_member_change in;
  if (auto r = c.body.find("role"); r != c.body.end() && !r->is_null()) {
    if (!r->is_string() || !org_member_role(r->get<std::string>())) {
      co_return field_error("role", "one of org_admin, internal_user, internal_user_viewer");
    }
    in.role = r->get<std::string>();
  }
  auto budget = member_budget(c.body);
  if (!budget) {
    co_return budget.error();
  }
  in.max_budget = *budget;
  co_return co_await change_member(c, std::move(in));
}

// DELETE /organization/member_delete: {organization_id, user_id | user_email}; the deleted
// membership row.
handler_result organization_member_delete(const route_context& c) {
  pg::org_member_change in;
  in.remove = true;
  co_return co_await change_member(c, std::move(in));
}

}  // namespace switchyard::admin
