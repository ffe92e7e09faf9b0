// key_authenticator: the auth stage's decision for one request: master key, or a virtual
// key from key_cache (exists, not blocked, not expired, inside a regenerate grace period);
// and which models a principal may use.
//
// Owner: app/ (one per process, after the authenticator and the cache it refers to).
// Thread: the loop thread (key_cache is loop-only). Blocking: never (cache misses await
// the cache's single-flight lookup).
#pragma once
#include "switchyard/auth/authenticator.hpp"
#include "switchyard/auth/key_cache.hpp"
#include "switchyard/core/asio.hpp"

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

namespace switchyard::auth {

class key_authenticator {
 public:
  // `cache` null: no database, only the master key is accepted (as before issue 5).
  key_authenticator(const authenticator& master, key_cache* cache, bool allow_requests_on_db_unavailable);

  // 401 auth_error: no key, unknown key, blocked key, regenerated key past its grace.
  // 401 expired_key: past `expires`. 503: the database is unreachable and the key is not
  // cached (unless allow_requests_on_db_unavailable: then a principal without vkey).
  net::awaitable<core::result<principal>> authenticate(std::string key) const;

  const authenticator& master() const { return master_; }
  key_cache* cache() const { return cache_; }

 private:
  const authenticator& master_;
  key_cache* cache_;
  bool allow_on_db_unavailable_;
};

// Pure checks on a resolved key at `now` (no lookup): blocked, expired, grace over.
core::result<void> check_key_usable(const virtual_key& k, std::string_view presented_key,
                                    std::chrono::system_clock::time_point now);

// Model access for a principal: master (or no vkey) -> every model; else key.models empty
// or containing "all-proxy-models" -> every model; else exact membership.
bool model_allowed(const principal& p, std::string_view model);
// 403 key_model_access_denied (param "model") with LiteLLM's message, when not allowed.
core::result<void> check_model_access(const principal& p, std::string_view model);
// The subset of `models` the principal may use, order kept.
std::vector<std::string> allowed_models(const principal& p, const std::vector<std::string>& models);

}  // namespace switchyard::auth
