#include "switchyard/admin/routes.hpp"

#include "handlers.hpp"

#include <utility>

namespace switchyard::admin {

namespace {

using namespace rules;
constexpr method_set get = method_get;
constexpr method_set post = method_post;
constexpr method_set get_or_post = method_get | method_post;
constexpr method_set patch_or_post = method_patch | method_post;
constexpr method_set delete_or_post = method_delete | method_post;

// Every management route. README.md's "Endpoints" table lists the same routes with the
// same methods (tests/unit/admin/routes_test.cpp checks it).
constexpr route table[] = {
    // path                alias                    methods         rule           db     handler
    {"/key/generate",        {},                      post,           own_key_write, true,  key_generate},
    {"/key/update",          {},                      post,           own_key_write, true,  key_update},
    {"/key/delete",          {},                      post,           own_key_write, true,  key_delete},
    {"/key/regenerate",      "/key/{key}/regenerate", post,           own_key_write, true,  key_regenerate},
    {"/key/block",           {},                      post,           admin_only,    true,  key_block},
    {"/key/unblock",         {},                      post,           admin_only,    true,  key_unblock},
    {"/key/info",            {},                      get,            self_key_read, true,  key_info},
    {"/key/list",            {},                      get,            own_key_read,  true,  key_list},
    // Several keys at once. /key/bulk_update: proxy admins (LiteLLM's handler refuses the
    // others with its own 403, which the handler gives too); /v2/key/info: as /key/info.
    {"/key/bulk_update",     {},                      post,           own_key_write, true,  key_bulk_update},
    {"/v2/key/info",         {},                      post,           self_key_read, true,  key_info_v2},
    // The calling key's own logging callbacks: any key (an info route in LiteLLM). It reads
    // the key's row itself when there is a database; the master key needs none.
    {"/key/health",          {},                      post,           anyone,        false, key_health},

    {"/user/new",            {},                      post,           org_write,     true,  user_new},
    {"/user/update",         {},                      post,           org_write,     true,  user_update},
    {"/user/delete",         {},                      post,           org_write,     true,  user_delete},
    {"/user/info",           {},                      get,            member_read,   true,  user_info},
    {"/user/list",           {},                      get,            org_read,      true,  user_list},

    {"/team/new",            {},                      post,           org_write,     true,  team_new},
    {"/team/update",         {},                      post,           org_write,     true,  team_update},
    {"/team/delete",         {},                      post,           org_write,     true,  team_delete},
    {"/team/member_add",     {},                      post,           org_write,     true,  team_member_add},
    {"/team/member_delete",  {},                      post,           org_write,     true,  team_member_delete},
    {"/team/member_update",  {},                      post,           team_admin_write, true, team_member_update},
    {"/team/block",          {},                      post,           org_write,     true,  team_block},
    {"/team/unblock",        {},                      post,           org_write,     true,  team_unblock},
    {"/team/info",           {},                      get,            member_read,   true,  team_info},
    {"/team/list",           {},                      get,            member_read,   true,  team_list},
    // The team's member permissions: proxy admins, the team's admin members, an org_admin
    // for a team of their organisation (the handler checks, as /team/member_update).
    {"/team/permissions_list",   {},                  get,            member_read,   true,  team_permissions_list},
    {"/team/permissions_update", {},                  post,           team_admin_write, true, team_permissions_update},

    {"/organization/new",    {},                      post,           admin_only,    true,  organization_new},
    {"/organization/update", {},                      patch_or_post,  admin_only,    true,  organization_update},
    {"/organization/delete", {},                      delete_or_post, admin_only,    true,  organization_delete},
    {"/organization/info",   {},                      get,            org_read,      true,  organization_info},
    {"/organization/list",   {},                      get,            org_read,      true,  organization_list},
    // Members: proxy admins, an org_admin in their own organisation (the handler checks it).
    // LiteLLM's methods (PATCH update, DELETE delete), and POST as the other writes.
    {"/organization/member_add",    {},               post,           org_write,     true,  organization_member_add},
    {"/organization/member_update", {},               patch_or_post,  org_write,     true,  organization_member_update},
    {"/organization/member_delete", {},               delete_or_post, org_write,     true,  organization_member_delete},

    {"/budget/new",          {},                      post,           admin_only,    true,  budget_new},
    {"/budget/update",       {},                      post,           admin_only,    true,  budget_update},
    {"/budget/delete",       {},                      post,           admin_only,    true,  budget_delete},
    {"/budget/info",         {},                      get_or_post,    admin_read,    true,  budget_info},
    {"/budget/list",         {},                      get,            admin_read,    true,  budget_list},

    // End users (LiteLLM's customers; docs/budgets.md). LiteLLM's /end_user/* paths too.
    {"/customer/new",        "/end_user/new",         post,           admin_only,    true,  customer_new},
    {"/customer/info",       "/end_user/info",        get,            admin_read,    true,  customer_info},
    {"/customer/update",     "/end_user/update",      post,           admin_only,    true,  customer_update},
    {"/customer/delete",     "/end_user/delete",      post,           admin_only,    true,  customer_delete},
    {"/customer/block",      "/end_user/block",       post,           admin_only,    true,  customer_block},
    {"/customer/unblock",    "/end_user/unblock",     post,           admin_only,    true,  customer_unblock},
    {"/customer/list",       "/end_user/list",        get,            admin_read,    true,  customer_list},

    // Spend (docs/spend.md): reports read the daily rollups. Internal users see their own
    // requests, an org_admin their organisation's; /spend/calculate prices a request from
    // the config and the price table alone.
    {"/spend/logs",          {},                      get,            member_read,   true,  spend_logs},
    {"/spend/logs/ui",       {},                      get,            member_read,   true,  spend_logs_ui},
    {"/spend/tags",          {},                      get,            admin_read,    true,  spend_tags},
    {"/spend/calculate",     {},                      post,           anyone,        false, spend_calculate},
    {"/global/spend",        {},                      get,            member_read,   true,  global_spend},
    {"/global/spend/keys",   {},                      get,            member_read,   true,  global_spend_keys},
    {"/global/spend/teams",  {},                      get,            admin_read,    true,  global_spend_teams},
    {"/global/spend/models", {},                      get,            member_read,   true,  global_spend_models},
    {"/global/spend/report", {},                      get,            admin_read,    true,  global_spend_report},
    // Spend per request tag: every key's tags, so the admins only (as /spend/tags).
    {"/global/spend/tags",   {},                      get,            admin_read,    true,  global_spend_tags},
    {"/user/daily/activity", {},                      get,            member_read,   true,  user_daily_activity},
    {"/team/daily/activity", {},                      get,            member_read,   true,  team_daily_activity},

    // The response cache (docs/cache.md): no database needed.
    {"/cache/ping",          {},                      get,            admin_read,    false, cache_ping},
    {"/cache/delete",        {},                      post,           admin_only,    false, cache_delete},
    {"/cache/flushall",      {},                      post,           admin_only,    false, cache_flushall},
    // Observability (docs/observability.md): deployment checks make provider calls, so
    // only the admins; the backlog and the callbacks for any key.
    {"/health",              {},                      get,            admin_read,    false, deployment_health},
    {"/health/backlog",      {},                      get,            anyone,        false, health_backlog},
    {"/active/callbacks",    {},                      get,            anyone,        false, active_callbacks},
    // Reaches out to a configured callback or alerting channel: admins.
    {"/health/services",     {},                      get,            admin_read,    false, service_health},

    // Hot reload (docs/configuration.md, "Hot reload"): only the admins change the config
    // in use; its version (a hash, a time, a source: no secret) also for the viewer.
    {"/config/reload",       {},                      post,           admin_only,    false, config_reload},
    {"/config/version",      {},                      get,            admin_read,    false, config_version},

    // The model list needs no database: it answers from the config, also before the
    // migrations ran.
    {"/model/info",          "/v1/model/info",        get,            anyone,        false, model_info},
    {"/model_group/info",    {},                      get,            anyone,        false, model_group_info},
    // Models in the database (general_settings.store_model_in_db): proxy admins only.
    {"/model/new",           {},                      post,           admin_only,    true,  model_new},
    {"/model/update",        {},                      post,           admin_only,    true,  model_update},
    {"/model/delete",        {},                      post,           admin_only,    true,  model_delete},
};

// `path` against a pattern with at most one {param} segment; the segment goes to `param`.
bool matches(std::string_view pattern, std::string_view path, std::string_view* param) {
  auto open = pattern.find('{');
  if (open == std::string_view::npos) {
    return pattern == path;
  }
  auto close = pattern.find('}', open);
  auto prefix = pattern.substr(0, open);
  auto suffix = pattern.substr(close + 1);
  if (path.size() <= prefix.size() + suffix.size() || !path.starts_with(prefix) || !path.ends_with(suffix)) {
    return false;
  }
  if (param != nullptr) {
    *param = path.substr(prefix.size(), path.size() - prefix.size() - suffix.size());
  }
  return true;
}

}  // namespace

method_set method_bit(std::string_view method) {
  if (method == "GET" || method == "HEAD") {
    return method_get;
  }
  if (method == "POST") {
    return method_post;
  }
  if (method == "PATCH") {
    return method_patch;
  }
  if (method == "DELETE") {
    return method_delete;
  }
  return 0;
}

std::string method_names(method_set methods) {
  static constexpr std::pair<method_set, const char*> names[] = {
      {method_get, "GET"}, {method_post, "POST"}, {method_patch, "PATCH"}, {method_delete, "DELETE"}};
  std::string out;
  for (const auto& [bit, name] : names) {
    if ((methods & bit) != 0) {
      out += out.empty() ? "" : ", ";
      out += name;
    }
  }
  return out;
}

std::span<const route> management_routes() { return table; }

std::span<const std::string_view> builtin_paths() {
  static constexpr std::string_view paths[] = {
      "/health/liveliness", "/health/liveness", "/healthz", "/health/readiness", "/readyz", "/metrics",
      "/v1/models",         "/models",          "/v1/models/{id}", "/"};
  return paths;
}

const route* find_route(std::string_view path, std::string_view* param) {
  for (const auto& r : table) {
    if (r.path == path || (!r.alias.empty() && matches(r.alias, path, param))) {
      return &r;
    }
  }
  return nullptr;
}

}  // namespace switchyard::admin
