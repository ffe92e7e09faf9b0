// Tenant management API (reference §1.5): users, teams (and members), organisations,
// budgets, plus GET /model/info.
//
//   /user/new|update|delete (POST), /user/info|list (GET)
//   /team/new|update|delete|member_add|member_delete|block|unblock (POST), /team/info|list (GET)
//   /organization/new (POST), /organization/update (PATCH or POST),
//   /organization/delete (DELETE or POST), /organization/info|list (GET)
//   /budget/new|update|delete (POST), /budget/info (POST {"budgets"} or GET ?budget_id=),
//   /budget/list (GET)
//   /model/info (GET): the config's model_list without secrets, filtered to the caller's models
//
// Request fields and defaults are LiteLLM's; a wrong type is 422 naming the field (param).
// Who may call what: admin/permissions.hpp. Every change writes audit_log rows (who: the
// litellm-changed-by header, else the caller's key alias / user id, else "proxy_admin");
// deleted teams are archived in deleted_teams (with their keys in deleted_verification_tokens).
// Changes to a team, user or organisation invalidate the cached keys of that owner on every
// instance (key_invalidation::publish_owner). Postgres down: 503.
//
// Owner: app/. Thread: the loop thread. Never blocks: SQL runs on db_executor threads.
#pragma once
#include "switchyard/admin/permissions.hpp"
#include "switchyard/auth/key_auth.hpp"
#include "switchyard/auth/key_invalidation.hpp"
#include "switchyard/config/config.hpp"
#include "switchyard/core/asio.hpp"
#include "switchyard/http/message.hpp"

#include <nlohmann/json.hpp>

#include <memory>
#include <string>

namespace switchyard::store::postgres {
class db_executor;
}

namespace switchyard::admin {

// The /model/info entry of one deployment: model_name, litellm_params without secrets
// (api_key and other credentials), model_info with `id` (and the deployment's mode, ...).
nlohmann::json model_info_entry(const config::deployment& d);

class tenant_endpoints {
 public:
  // `db` / `invalidation` null: no database configured (every DB call: 500 "No connected db").
  tenant_endpoints(const auth::key_authenticator& auth, store::postgres::db_executor* db,
                   auth::key_invalidation* invalidation, std::shared_ptr<const config::config> cfg);

  // Whether `route` (e.g. "/team/new") with `method` is one of ours.
  static bool handles(const std::string& route, const std::string& method);

  net::awaitable<void> handle(http::request& req, http::responder& resp, std::string route);

 private:
  net::awaitable<core::result<nlohmann::json>> run(const http::request& req, const auth::principal& who,
                                                   std::string route, scope sc);

  const auth::key_authenticator& auth_;
  store::postgres::db_executor* db_;
  auth::key_invalidation* invalidation_;
  std::shared_ptr<const config::config> cfg_;
};

}  // namespace switchyard::admin
