// key_authenticator: the auth stage's decision for one request: master key, or a virtual
// key from key_cache (exists, not blocked, not expired, inside a regenerate grace period);
// and which models a principal may use.
//
// Owner: app/ (one per process, after the authenticator and the cache it refers to).
// Thread: the loop thread (key_cache is loop-only). Blocking: never (cache misses await
// the cache's single-flight lookup).
#pragma once
#include "switchyard/auth/authenticator.hpp"
#include "switchyard/auth/jwt_auth.hpp"
#include "switchyard/auth/key_cache.hpp"
#include "switchyard/auth/model_access.hpp"
#include "switchyard/auth/route_access.hpp"
#include "switchyard/core/asio.hpp"

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace switchyard::auth {

class key_authenticator {
 public:
  // `cache` null: no database, only the master key is accepted (no virtual keys).
  // `groups`: the config's model access groups (model_info.access_groups).
  key_authenticator(const authenticator& master, key_cache* cache, bool allow_requests_on_db_unavailable,
                    access_groups groups = {});

  // 401 auth_error: no key, unknown key, blocked key, regenerated key past its grace.
  // 401 expired_key: past `expires`. 503: the database is unreachable and the key is not
  // cached (unless allow_requests_on_db_unavailable: then a principal without vkey).
  net::awaitable<core::result<principal>> authenticate(std::string key) const;
  // authenticate()'s answer when no lookup is needed (the master key, no auth, no key,
  // a cached key or a cached "no such key"), without a coroutine; nullopt: call
  // authenticate(). The hot path of every request with a key seen before.
  std::optional<core::result<principal>> authenticate_cached(const std::string& key) const;

  const authenticator& master() const { return master_; }
  key_cache* cache() const { return cache_; }
  const access_groups& groups() const { return groups_; }

  // JWT auth (general_settings.enable_jwt_auth): a bearer token shaped like a JWT is
  // verified by `jwt` instead of being looked up as a virtual key; with `owners` (a
  // database), the caller's user and team rows (model lists, budgets, rate limits) come
  // from that cache (app/key_lookup.hpp, make_owner_lookup). Set once at startup.
  void set_jwt(const jwt_authenticator* jwt, key_cache* owners = nullptr) {
    jwt_ = jwt;
    owners_ = owners;
  }

  // Sign-in sessions of the admin UI (admin/sso): the management API asks this when a
  // request has no key. Arguments: the Cookie header, the x-csrf-token header, and whether
  // the method changes nothing (GET, HEAD). Set once at startup; empty without a database.
  using session_fn = std::function<net::awaitable<core::result<principal>>(std::string, std::string, bool)>;
  void set_session_auth(session_fn f) { session_ = std::move(f); }
  const session_fn& session_auth() const { return session_; }

  // The config's route lists (auth/route_access.hpp); set once at startup.
  void set_route_rules(route_rules r) { routes_ = std::move(r); }
  // A config reload: the new config's model access groups.
  void set_access_groups(access_groups g) { groups_ = std::move(g); }
  // 403 when `who` may not call `path`: the key's allowed_routes and the config's lists.
  core::result<void> check_route(const principal& who, std::string_view path) const {
    if (routes_.empty() && (!who.vkey || who.vkey->allowed_routes.empty())) {
      return {};
    }
    return auth::check_route(who, path, routes_);
  }
  // general_settings.public_routes, only the entries that may be public
  // (core::public_route_allowed); set once at startup.
  void set_public_routes(std::vector<std::string> r) { public_ = std::move(r); }
  // A request without a key to `path` is served as an anonymous caller.
  bool is_public(std::string_view path) const {
    for (const auto& p : public_) {
      if (route_matches(p, path)) {
        return true;
      }
    }
    return false;
  }

 private:
  const authenticator& master_;
  key_cache* cache_;
  bool allow_on_db_unavailable_;
  access_groups groups_;
  route_rules routes_;
  std::vector<std::string> public_;
  const jwt_authenticator* jwt_ = nullptr;
  key_cache* owners_ = nullptr;
  session_fn session_;
};

// Pure checks on a resolved key at `now` (no lookup): blocked (key or team), expired,
// grace over.
core::result<void> check_key_usable(const virtual_key& k, std::string_view presented_key,
                                    std::chrono::system_clock::time_point now);

// Model access for a principal: master (or no vkey) -> every model; else the key, team,
// user and organisation lists must all allow it (auth/model_access.hpp). `model` is the
// name after aliases (apply_model_aliases).
bool model_allowed(const principal& p, std::string_view model, const access_groups& groups = {});
// 403 key_/team_/user_/org_model_access_denied (param "model") with LiteLLM's message.
core::result<void> check_model_access(const principal& p, std::string_view model, const access_groups& groups = {});
// The subset of `models` the principal may use, order kept.
std::vector<std::string> allowed_models(const principal& p, const std::vector<std::string>& models,
                                        const access_groups& groups = {});

// The principal's management role: proxy_admin for the master key (and when auth is
// off), the user's user_role for a virtual key, none otherwise.
role role_of(const principal& p);

}  // namespace switchyard::auth
