// Sign-in for the admin UI (docs/sso.md), under LiteLLM's route names:
//   GET  /sso/key/generate  starts a sign-in: a redirect to the identity provider
//                           (OIDC authorization code with PKCE S256, state and nonce), or,
//                           without a provider, the username/password form
//   GET  /sso/callback      the provider's return: code -> tokens, the ID token checked
//                           against the provider's JWKS (signature, issuer, audience,
//                           expiry, nonce), the user found or created, a session
//   POST /login             UI_USERNAME / UI_PASSWORD (default: admin / the master key)
//   GET  /sso/session       the signed-in user, role and CSRF token (for the UI)
//   POST /sso/logout        ends the session server-side (CSRF token required)
// Providers: Microsoft Entra ID (MICROSOFT_CLIENT_ID, MICROSOFT_CLIENT_SECRET,
// MICROSOFT_TENANT), Google (GOOGLE_CLIENT_ID, GOOGLE_CLIENT_SECRET), generic OIDC
// (GENERIC_CLIENT_ID, GENERIC_CLIENT_SECRET, GENERIC_AUTHORIZATION_ENDPOINT,
// GENERIC_TOKEN_ENDPOINT, GENERIC_USERINFO_ENDPOINT, GENERIC_SCOPE, ...); the redirect URI
// is PROXY_BASE_URL (else the request's own base) + /sso/callback.
//
// Sessions are rows in Postgres (store/postgres/session_repo.hpp); the cookie
// `switchyard_session` holds a random value (HttpOnly, SameSite=Lax, Secure when the
// gateway is reached over https). session_principal() turns a cookie into the user's
// principal for the management API; state-changing requests must carry the session's
// CSRF token in `x-csrf-token`. `ui_access_mode: admin_only` refuses everyone but
// proxy_admin and proxy_admin_viewer, at sign-in and on every request.
//
// Teams from a groups claim (general_settings.litellm_jwtauth.team_ids_jwt_field): each
// sign-in joins the teams its claim names (creating unknown ones with
// litellm_settings.default_team_params) and leaves those an earlier sign-in joined that
// the claim no longer names (store/postgres/tenant_repo.hpp, sync_sso_teams_blocking).
// The keys of every team it joins or leaves are reloaded on every instance
// (auth::key_invalidation), as after /team/member_add and /team/member_delete.
//
// Owner: app/. Thread: the loop thread. Never blocks (Postgres through db_executor, the
// provider through the upstream client).
#pragma once
#include "switchyard/auth/authenticator.hpp"
#include "switchyard/auth/jwks_cache.hpp"
#include "switchyard/core/asio.hpp"
#include "switchyard/core/reset_schedule.hpp"
#include "switchyard/http/message.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace switchyard::auth {
class key_invalidation;
}
namespace switchyard::store::postgres {
class db_executor;
}
namespace switchyard::upstream {
class client;
}

namespace switchyard::admin {

struct sso_settings {
  std::string provider;  // "microsoft", "google", "generic"; "" : none (password sign-in only)
  std::string client_id;
  std::string client_secret;
  std::string authorization_endpoint;
  std::string token_endpoint;
  std::string userinfo_endpoint;
  std::string jwks_uri;       // "" : from the discovery document
  std::string issuer;         // "" : from the discovery document
  std::string discovery_url;  // the provider's openid-configuration
  std::string scope = "openid email profile";
  std::string user_id_attribute;  // claim that names the user
  std::string email_attribute = "email";
  std::string display_name_attribute;
  std::string role_attribute;  // a claim holding a LiteLLM role ("" : none)
  std::string proxy_base_url;  // PROXY_BASE_URL without a trailing '/'
  std::string ui_username = "admin";
  std::string ui_password;     // UI_PASSWORD, else the master key
  bool admin_only = false;     // general_settings.ui_access_mode: admin_only
  std::vector<std::string> admins;  // PROXY_ADMIN_ID and general_settings.proxy_admin_email (ids or emails)
  std::string default_role = "internal_user";  // litellm_settings.default_internal_user_params.user_role
  nlohmann::json default_user_params = nlohmann::json::object();
  // default_internal_user_params.teams: the teams a user created by a sign-in joins.
  struct default_team {
    std::string team_id;
    std::string role = "user";  // "user" or "admin" (LiteLLM's user_role of a team member)
    std::optional<double> max_budget_in_team;
  };
  std::vector<default_team> default_teams;
  // general_settings.litellm_jwtauth.team_ids_jwt_field: the claim listing the user's
  // groups, each a team_id ("" : no team membership from sign-in). Dots reach into objects.
  std::string team_ids_claim;
  // litellm_settings.default_team_params: what a team created for an unknown group gets
  // (max_budget, budget_duration, models, tpm_limit, rpm_limit, team_member_permissions).
  nlohmann::json default_team_params = nlohmann::json::object();
  static constexpr std::size_t max_groups = 200;  // ids joined per sign-in (Entra's own limit)
  core::time_zone budget_tz = core::time_zone::utc();  // litellm_settings.timezone
  std::chrono::seconds session_ttl{std::chrono::hours(12)};
  std::chrono::seconds login_ttl{std::chrono::minutes(10)};

  // From the config's general_settings / litellm_settings (raw JSON) and the environment.
  // A message for a half-configured provider (a client id without its secret, generic
  // without its endpoints), a bad ui_access_mode, default_internal_user_params.teams or
  // default_team_params value.
  static core::result<sso_settings> from(const nlohmann::json& general, const nlohmann::json& litellm,
                                         const std::string& master_key,
                                         const std::function<std::string(const char*)>& env);
};

// The team ids a groups claim names (`field`, a dotted path): a list of strings or one
// string. `ids` is empty-and-unknown (nullopt) when the claim is absent or unusable;
// `problem` then says why when it is unusable (not a list or string, an id that is not a
// non-empty string of at most 256 bytes, Entra's "groups overage" marker). Ids keep the
// claim's order, without repeats.
struct sso_groups {
  std::optional<std::vector<std::string>> ids;
  std::string problem;
};
sso_groups read_sso_groups(const nlohmann::json& claims, const std::string& field);

class sso_endpoints {
 public:
  // `invalidation` may be null (no key cache): then nothing is reloaded.
  sso_endpoints(sso_settings s, store::postgres::db_executor* db, upstream::client& client,
                const auth::authenticator& master, net::any_io_executor ex,
                auth::key_invalidation* invalidation = nullptr);
  ~sso_endpoints();

  // True for the paths above.
  static bool handles(std::string_view path);
  net::awaitable<void> handle(http::request& req, http::responder& resp);

  // The management API's session check (auth::key_authenticator::session_fn).
  net::awaitable<core::result<auth::principal>> session_principal(std::string cookie, std::string csrf,
                                                                  bool safe_method);
  const sso_settings& settings() const { return s_; }

 private:
  net::awaitable<void> start(http::request& req, http::responder& resp);
  net::awaitable<void> callback(http::request& req, http::responder& resp);
  net::awaitable<void> password_login(http::request& req, http::responder& resp);
  net::awaitable<void> session_info(http::request& req, http::responder& resp);
  net::awaitable<void> logout(http::request& req, http::responder& resp);
  net::awaitable<core::result<void>> discover();
  net::awaitable<core::result<nlohmann::json>> verify_id_token(std::string token, std::string nonce);
  // Joins and leaves the user's teams after a sign-in; failures are logged, never fatal.
  net::awaitable<void> sync_teams(std::string user_id, bool created, nlohmann::json claims);
  net::awaitable<void> begin_session(http::request& req, http::responder& resp, std::string user_id,
                                     std::string provider, bool redirect);
  std::string base_url(const http::request& req) const;
  bool secure(const http::request& req) const;

  sso_settings s_;
  store::postgres::db_executor* db_;
  auth::key_invalidation* invalidation_;
  upstream::client& client_;
  const auth::authenticator& master_;
  net::any_io_executor ex_;
  std::unique_ptr<auth::jwks_cache> jwks_;
  bool discovered_ = false;
};

}  // namespace switchyard::admin
