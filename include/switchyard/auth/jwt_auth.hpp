// JWT auth for API callers (general_settings.enable_jwt_auth with litellm_jwtauth, as
// LiteLLM): a service sends its identity provider's token as the bearer key, and the
// gateway verifies it from the provider's JWKS kept in memory (auth/jwks_cache.hpp): the
// signature (RS256), expiry, and the issuer and audience when configured. Never a network
// call per request: an unknown kid is refused and triggers a background refresh.
//
// The token's claims make the caller: `user_id_jwt_field` the user, `team_id_jwt_field`
// (or the first of `team_ids_jwt_field`) the team, both used for spend and the management
// role rules; a token whose `scope` holds `admin_jwt_scope` is a proxy admin, any other an
// internal user. With `user_roles_jwt_field` and `user_allowed_roles`, a token without an
// allowed role is refused.
//
// A verified token is remembered (by its exact text, up to 4096 tokens) with the JWKS it
// was verified against, until it expires or that JWKS is replaced by a refresh: a client
// sending the same token again costs a hash lookup instead of an RSA verification, and a
// key removed from the JWKS stops working at the next refresh all the same.
//
// Owner: app/. Thread: the loop thread (reads the jwks_caches; the memo is unguarded).
// Never blocks.
#pragma once
#include "switchyard/auth/authenticator.hpp"
#include "switchyard/auth/jwks_cache.hpp"

#include <nlohmann/json_fwd.hpp>

#include <chrono>
#include <functional>
#include <optional>
#include <unordered_map>
#include <string>
#include <vector>

namespace switchyard::auth {

struct jwt_auth_settings {
  bool enabled = false;
  std::vector<std::string> jwks_urls;  // JWT_PUBLIC_KEY_URL (comma-separated)
  std::string audience;                // JWT_AUDIENCE ("" : not checked)
  std::string issuer;                  // JWT_ISSUER ("" : not checked)
  std::string user_id_jwt_field;       // "" : no user
  std::string user_email_jwt_field;
  std::string team_id_jwt_field;
  std::string team_ids_jwt_field;
  std::string admin_jwt_scope = "litellm_proxy_admin";
  std::string user_roles_jwt_field;
  std::vector<std::string> user_allowed_roles;
  std::chrono::seconds public_key_ttl{600};
  std::chrono::seconds leeway{60};

  // From general_settings (enable_jwt_auth, litellm_jwtauth) and the environment
  // (`env` returns "" for an unset variable). A message for a bad setting (enabled
  // without JWT_PUBLIC_KEY_URL, a field of the wrong type).
  static core::result<jwt_auth_settings> from(const nlohmann::json& general_settings,
                                              const std::function<std::string(const char*)>& env);
};

// The claim `name` of `claims`, or null: "a.b" reaches into nested objects (LiteLLM's dot
// notation, e.g. realm_access.roles); a claim whose own name holds dots (a URI) is found
// whole.
const nlohmann::json* find_claim(const nlohmann::json& claims, const std::string& name);

// The owner cache's key of a JWT caller (user, team, role; see app/key_lookup.hpp) and
// its parts back.
std::string jwt_owner_key(const virtual_key& who);
struct jwt_owner {
  std::string user_id, team_id, role;
};
jwt_owner parse_jwt_owner_key(std::string_view key);

// True when `key` has the shape of a JWS (three base64url parts, a JSON header): virtual
// keys and the master key never do.
bool looks_like_jwt(std::string_view key);

class jwt_authenticator {
 public:
  using clock_fn = std::function<std::chrono::system_clock::time_point()>;
  // `caches`: one per settings.jwks_urls entry, owned by the caller.
  jwt_authenticator(jwt_auth_settings s, std::vector<jwks_cache*> caches, clock_fn now = {});

  // 401 auth_error with the reason (signature, expired, audience, issuer, unknown kid,
  // missing user claim, role not allowed); else a principal whose vkey carries the user,
  // team and role (no key row: token is empty).
  core::result<principal> authenticate(const std::string& token) const;
  const jwt_auth_settings& settings() const { return s_; }
  std::size_t remembered() const { return memo_.size(); }

 private:
  core::result<principal> verify(const std::string& token, std::chrono::system_clock::time_point now) const;

  struct memo_entry {
    principal who;
    std::chrono::system_clock::time_point expires;
    std::size_t cache_index = 0;
    std::shared_ptr<const core::jwks> keys;  // the JWKS it was verified with (still the cache's?)
  };
  static constexpr std::size_t memo_limit = 4096;

  jwt_auth_settings s_;
  std::vector<jwks_cache*> caches_;
  clock_fn now_;
  mutable std::unordered_map<std::string, memo_entry> memo_;
};

}  // namespace switchyard::auth
