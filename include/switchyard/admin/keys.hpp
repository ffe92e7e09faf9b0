// Key management API (reference §1.4): POST /key/generate, /key/update, /key/delete,
// /key/block, /key/unblock, /key/regenerate (and /key/{key}/regenerate); GET /key/info,
// /key/list. Roles (admin/permissions.hpp): proxy_admin (and the master key) manages every
// key; proxy_admin_viewer reads every key; internal_user and org_admin manage only their own
// keys (user_id = theirs; /key/generate forces it; /key/block|unblock are admin-only);
// internal_user_viewer reads only their own; a key without a user may only read itself.
//
// Every change is written with an audit row (who: the litellm-changed-by header, else the
// caller's key alias / user id, else "proxy_admin" for the master key) and invalidated in
// every instance's key cache (key_invalidation); deletions are archived.
//
// Owner: app/. Thread: the loop thread. Never blocks: SQL runs on db_executor threads.
// The pure request helpers below are used by the endpoints and unit-tested on their own.
#pragma once
#include "switchyard/auth/key_auth.hpp"
#include "switchyard/auth/key_invalidation.hpp"
#include "switchyard/admin/permissions.hpp"
#include "switchyard/core/asio.hpp"
#include "switchyard/core/error.hpp"
#include "switchyard/http/message.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace switchyard::store::postgres {
class db_executor;
struct key_record;
}

namespace switchyard::admin {

using sys_time = std::chrono::system_clock::time_point;

// "30s", "30m", "30h", "30d", "1mo" (calendar months) added to `now`; nullopt if malformed.
std::optional<sys_time> add_duration(std::string_view duration, sys_time now);

// A new key: "sk-" + 32 hex digits (128 bits from OpenSSL's CSPRNG).
std::string generate_key_string();
// "sk-...abcd" (LiteLLM's key_name).
std::string key_name_of(std::string_view key);
// A key as given to /key/info, /key/delete, ...: "sk-..." is hashed, anything else is
// taken to be a hash already (LiteLLM's rule).
std::string token_of(std::string_view key_or_hash);

// ISO-8601 UTC with milliseconds, e.g. "2026-11-23T11:00:00.000Z".
std::string iso_utc(sys_time t);

// The verification_tokens columns a /key/generate, /key/update or /key/regenerate body
// sets, checked field by field: a wrong type is 422 naming the field (param = field).
// `duration` becomes `expires` (null: never); unknown fields are ignored (LiteLLM accepts
// more than we store). The request's `key` / `new_key` are not part of the patch.
core::result<nlohmann::json> key_patch_from(const nlohmann::json& body, sys_time now);

class key_endpoints {
 public:
  // `db` / `invalidation` null: no database configured (every call: 500 "No connected db").
  key_endpoints(const auth::key_authenticator& auth, store::postgres::db_executor* db,
                auth::key_invalidation* invalidation);

  // `op`: "generate", "update", "delete", "block", "unblock", "regenerate", "info", "list".
  // `path_key`: the {key} of /key/{key}/regenerate, else empty.
  net::awaitable<void> handle(http::request& req, http::responder& resp, std::string op, std::string path_key = {});

 private:
  net::awaitable<core::result<nlohmann::json>> run_op(const http::request& req, const auth::principal& who,
                                                      std::string op, std::string path_key, scope sc);
  // Fetches the key `token` and checks that the caller may touch it (scope own: their
  // user's key, or the calling key itself). 404 / 403.
  // A non-admin making or moving a key into `team_id`: they must be the team's `admin`
  // member, or the team's team_member_permissions must list `route`; else 401
  // team_member_permission_error (reference §1.4).
  net::awaitable<core::result<void>> check_team_key(std::string team_id, std::string user_id, std::string route);
  net::awaitable<core::result<store::postgres::key_record>> owned_key(std::string token, const auth::principal& who,
                                                                       scope sc);

  const auth::key_authenticator& auth_;
  store::postgres::db_executor* db_;
  auth::key_invalidation* invalidation_;
};

}  // namespace switchyard::admin
