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

}  // namespace switchyard::admin
