// session_repo: the admin UI's sign-ins in Postgres (migrations/0008_ui_sessions.sql):
// pending OIDC sign-ins (state, PKCE verifier, nonce), the users a first sign-in creates,
// and server-side sessions keyed by the sha256 of the cookie's value.
//
// Owner: none (free functions). Thread: a db thread only, via db_executor::run.
// Blocking: every *_blocking function runs SQL. No pqxx types leak.
#pragma once
#include "switchyard/store/postgres/pqxx_fwd.hpp"

#include <chrono>
#include <optional>
#include <string>

namespace switchyard::store::postgres {

struct pending_login {
  std::string code_verifier;
  std::string nonce;
  std::string provider;
};

// Stores a sign-in started now (and deletes those older than `max_age`).
void insert_login_blocking(pqxx::connection& c, const std::string& state, const pending_login& l,
                           std::chrono::seconds max_age);
// Takes (deletes and returns) the sign-in `state` when it is younger than `max_age`.
std::optional<pending_login> take_login_blocking(pqxx::connection& c, const std::string& state,
                                                 std::chrono::seconds max_age);

struct sso_identity {
  std::string user_id;      // the id a new user gets
  std::string email;        // "" if none
  std::string sso_user_id;  // the provider's subject ("<provider>:<sub>")
  std::string display_name;
  std::string new_user_role;     // role of a user created now
  std::string role_claim;        // a role the provider's claims map to ("" none): applied every sign-in
  bool make_admin = false;       // the admin list names this user: proxy_admin every sign-in
  std::string new_user_defaults_json = "{}";  // default_internal_user_params (max_budget, models, ...)
};
struct ui_user {
  std::string user_id;
  std::string user_role;
  std::string organization_id;
  std::string email;
  bool created = false;
  bool role_changed = false;  // upsert_sso_user_blocking: an existing user's role changed
};
// The user of an identity: found by sso_user_id, else by user_id, else by email, else
// created (audited "created" by "sso"). The role is updated when the admin list or the
// role claim says so; a change of it is audited ("updated" by "sso") and role_changed.
ui_user upsert_sso_user_blocking(pqxx::connection& c, const sso_identity& who);

// The user `user_id` (created as proxy_admin when missing: the password sign-in's
// default admin user).
ui_user ensure_admin_user_blocking(pqxx::connection& c, const std::string& user_id);

void create_session_blocking(pqxx::connection& c, const std::string& session_hash, const std::string& user_id,
                             const std::string& csrf_token, const std::string& provider, std::chrono::seconds ttl);

struct session_row {
  ui_user user;
  std::string csrf_token;
  std::string provider;
  std::string expires_at;  // ISO-8601
};
// A live session (not ended, not expired) and its user as now stored.
std::optional<session_row> session_blocking(pqxx::connection& c, const std::string& session_hash);
// Ends the session; false if it was not live.
bool end_session_blocking(pqxx::connection& c, const std::string& session_hash);

}  // namespace switchyard::store::postgres
