// The management API (/key/*, /user/*, /team/*, /organization/*, /budget/*, /model/info,
// the spend reports /spend/*, /global/spend*, /user|team/daily/activity):
// runs one route of the route table (admin/routes.hpp) with the prelude every route shares,
// written once here: authenticate the caller, check the route's access rule for their
// role, require Postgres when the route needs it, parse the JSON body (400 when it is
// malformed or not an object), then the route's handler, and any error as an OpenAI-shaped
// response.
//
// Request fields and defaults are LiteLLM's (docs/virtual-keys.md); a wrong type is 422
// naming the field (param). Every change writes audit_log rows (who: the litellm-changed-by
// header, else the caller's key alias / user id, else "proxy_admin" for the master key);
// changes to keys, teams, users and organisations invalidate the cached keys on every
// instance (key_invalidation). Postgres down: 503.
//
// Owner: app/ (one per gateway). Thread: the loop thread. Never blocks: SQL runs on
// db_executor threads.
#pragma once
#include "switchyard/admin/routes.hpp"
#include "switchyard/auth/key_auth.hpp"
#include "switchyard/auth/key_invalidation.hpp"
#include "switchyard/config/config.hpp"
#include "switchyard/core/asio.hpp"
#include "switchyard/core/secret_box.hpp"
#include "switchyard/http/message.hpp"

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace switchyard::store::postgres {
class db_executor;
}
namespace switchyard::spend {
class pricer;
}
namespace switchyard::cache {
class response_cache;
}

namespace switchyard::admin {

// What the handlers work with; nothing here is owned. `db` / `invalidation` null: no
// database configured (every route that needs one: 500 "No connected db.").
struct management_deps {
  const auth::key_authenticator& auth;
  store::postgres::db_executor* db = nullptr;
  auth::key_invalidation* invalidation = nullptr;
  std::shared_ptr<const config::config> cfg;
  spend::pricer* pricer = nullptr;  // /spend/calculate; null: every model's cost is unknown
  cache::response_cache* cache = nullptr;  // /cache/*; null: caching is off (503)
  // Observability (docs/observability.md). GET /health: the deployment checks for one
  // model (empty: all); unset: 500. /health/backlog: LLM requests in flight now.
  std::function<net::awaitable<core::result<nlohmann::json>>(std::string model)> deployment_health;
  std::function<std::size_t()> in_flight;
  // The callbacks that run (/active/callbacks): all of them, those called on success, on
  // failure; and the alerting channels.
  std::vector<std::string> callbacks;
  std::vector<std::string> success_callbacks;
  std::vector<std::string> failure_callbacks;
  std::vector<std::string> alerting;
  // /health/services?service=<name>: checks a configured callback or alerting channel
  // (an error: not configured / unhealthy); unset: 400 for every name.
  std::function<net::awaitable<core::result<nlohmann::json>>(std::string service)> service_health;
  // Called after every successful management write (the budget reset job re-reads when
  // the next reset is due); may be empty.
  std::function<void()> budgets_changed;
  // POST /config/reload: re-reads the config file and its includes and swaps a valid one in
  // (`source` names who asked, for GET /config/version); an invalid file is the error, with
  // its file:line. GET /config/version: the loaded config's hash, time and source (never a
  // secret). Unset: 500.
  std::function<net::awaitable<core::result<nlohmann::json>>(std::string source)> reload_config;
  std::function<nlohmann::json()> config_version;
  // Models in the database (store_model_in_db; unset: off, /model/new|update|delete answer
  // 400). check_model: loads the config with this model added (or replacing the stored one
  // of its id) off the loop; the reason it does not load, else nullopt. models_changed:
  // every instance applies the stored models (this one before it returns). model_secrets
  // seals the credentials written.
  std::function<net::awaitable<std::optional<std::string>>(config::db_model)> check_model;
  std::function<net::awaitable<void>()> models_changed;
  const core::secret_box* model_secrets = nullptr;
};

class management_api {
 public:
  explicit management_api(management_deps deps);

  // Answers `req` with route `r` (found by find_route, method already checked).
  // `param`: the {param} segment of a patterned alias (/key/{key}/regenerate), else empty.
  net::awaitable<void> handle(http::request& req, http::responder& resp, const route& r, std::string param);

  // A config reload: handlers started from now on read `cfg` (those running keep theirs).
  void set_config(std::shared_ptr<const config::config> cfg) { deps_.cfg = std::move(cfg); }

 private:
  management_deps deps_;
};

}  // namespace switchyard::admin
