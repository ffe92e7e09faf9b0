// The handlers of the route table (private to admin/), one file per entity: keys.cpp,
// users.cpp, teams.cpp, organizations.cpp, budgets.cpp, model_info.cpp, and the spend
// reports: spend.cpp, activity.cpp. Each gets a
// route_context built by management_api::handle after the common prelude (caller
// authenticated, access rule checked, Postgres present when the route needs it, JSON body
// parsed) and returns the response body or an error.
// Thread: the loop thread. Never blocks: SQL runs on db_executor threads.
#pragma once
#include "admin_util.hpp"

#include "switchyard/admin/management.hpp"
#include "switchyard/admin/permissions.hpp"
#include "switchyard/admin/routes.hpp"
#include "switchyard/store/postgres/db_executor.hpp"

#include <string>

namespace switchyard::admin {

struct route_context {
  const management_deps& deps;
  const http::request& req;
  const auth::principal& who;
  const route& r;          // r.path names the route in messages and team key permissions
  scope sc;                // the caller's scope on this route (never denied)
  json body;               // the request's JSON object; {} for GET and an empty body
  std::string param;       // the {param} of a patterned alias (/key/{key}/regenerate)
  sys_time now;
  pg::change_actor actor;  // who made the change, for audit_log
  std::string self_user;   // the caller's user_id ("" for the master key)
  std::string self_org;    // the caller's organisation ("" if none)

  pg::db_executor& db() const { return *deps.db; }
  // Where budget periods start (litellm_settings.timezone; UTC without a config).
  const core::time_zone& budget_tz() const {
    static const core::time_zone utc = core::time_zone::utc();
    return deps.cfg ? deps.cfg->litellm.budget_tz : utc;
  }
  auth::key_invalidation& invalidation() const { return *deps.invalidation; }
  bool own_only() const { return sc != scope::all; }
};

using handler_result = net::awaitable<core::result<json>>;

// observability.cpp
handler_result deployment_health(const route_context& c);
handler_result config_reload(const route_context& c);
handler_result config_version(const route_context& c);
handler_result health_backlog(const route_context& c);
handler_result active_callbacks(const route_context& c);
handler_result service_health(const route_context& c);

// keys.cpp
handler_result key_generate(const route_context& c);
handler_result key_update(const route_context& c);
handler_result key_delete(const route_context& c);
handler_result key_regenerate(const route_context& c);
handler_result key_block(const route_context& c);
handler_result key_unblock(const route_context& c);
handler_result key_info(const route_context& c);
handler_result key_info_v2(const route_context& c);  // POST {"keys": [...]}
handler_result key_bulk_update(const route_context& c);
handler_result key_health(const route_context& c);
handler_result key_list(const route_context& c);

// users.cpp
handler_result user_new(const route_context& c);
handler_result user_update(const route_context& c);
handler_result user_delete(const route_context& c);
handler_result user_info(const route_context& c);
handler_result user_list(const route_context& c);

// teams.cpp
handler_result team_new(const route_context& c);
handler_result team_update(const route_context& c);
handler_result team_delete(const route_context& c);
handler_result team_member_add(const route_context& c);
handler_result team_member_delete(const route_context& c);
handler_result team_member_update(const route_context& c);
handler_result team_block(const route_context& c);
handler_result team_unblock(const route_context& c);
handler_result team_info(const route_context& c);
handler_result team_list(const route_context& c);
handler_result team_permissions_list(const route_context& c);    // GET ?team_id=
handler_result team_permissions_update(const route_context& c);

// organizations.cpp
handler_result organization_new(const route_context& c);
handler_result organization_update(const route_context& c);
handler_result organization_delete(const route_context& c);
handler_result organization_info(const route_context& c);
handler_result organization_list(const route_context& c);
handler_result organization_member_add(const route_context& c);
handler_result organization_member_update(const route_context& c);
handler_result organization_member_delete(const route_context& c);

// budgets.cpp
handler_result budget_new(const route_context& c);
handler_result budget_update(const route_context& c);
handler_result budget_delete(const route_context& c);
handler_result budget_info(const route_context& c);  // GET ?budget_id= or POST {"budgets": [...]}
handler_result budget_list(const route_context& c);

// customers.cpp (LiteLLM's customers: end users)
handler_result customer_new(const route_context& c);
handler_result customer_info(const route_context& c);  // GET ?end_user_id=
handler_result customer_update(const route_context& c);
handler_result customer_delete(const route_context& c);
handler_result customer_block(const route_context& c);
handler_result customer_unblock(const route_context& c);
handler_result customer_list(const route_context& c);

// model_info.cpp
handler_result model_info(const route_context& c);
handler_result model_group_info(const route_context& c);

// model_admin.cpp (store_model_in_db)
handler_result model_new(const route_context& c);
handler_result model_update(const route_context& c);
handler_result model_delete(const route_context& c);

// spend.cpp
handler_result spend_logs(const route_context& c);
handler_result spend_tags(const route_context& c);
handler_result spend_calculate(const route_context& c);
handler_result global_spend(const route_context& c);
handler_result global_spend_tags(const route_context& c);
handler_result spend_logs_ui(const route_context& c);
handler_result global_spend_keys(const route_context& c);
handler_result global_spend_teams(const route_context& c);
handler_result global_spend_models(const route_context& c);
handler_result global_spend_report(const route_context& c);

// cache.cpp
handler_result cache_ping(const route_context& c);
handler_result cache_delete(const route_context& c);
handler_result cache_flushall(const route_context& c);

// activity.cpp
handler_result user_daily_activity(const route_context& c);
handler_result team_daily_activity(const route_context& c);

}  // namespace switchyard::admin
