#include "switchyard/auth/key_auth.hpp"

#include "switchyard/core/ids.hpp"

#include <algorithm>
#include <array>
#include <functional>
#include <ctime>

namespace switchyard::auth {

namespace {

std::string iso_utc(std::chrono::system_clock::time_point t) {
  std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace

key_authenticator::key_authenticator(const authenticator& master, key_cache* cache,
                                     bool allow_requests_on_db_unavailable, access_groups groups)
    : master_(master),
      cache_(cache),
      allow_on_db_unavailable_(allow_requests_on_db_unavailable),
      groups_(std::move(groups)) {}

namespace {

// The sha256 hex of a virtual key (LiteLLM stores keys by it), remembered for the keys
// this thread saw last: a client sends one key on every request, and the hash was the
// largest part of authenticating from the key cache. A slot holds the key itself and is
// used only for the same bytes; the memo holds no more than the request buffers did
// (raw keys), in one thread's memory, for at most 64 keys.
const std::string& hashed_key(const std::string& key) {
  struct slot {
    std::string raw;
    std::string hex;
  };
  constexpr std::size_t slots = 64;
  thread_local std::array<slot, slots> memo;
  auto& s = memo[std::hash<std::string_view>{}(key) % slots];
  // Compared in constant time: how far a guess matches a remembered key must not show.
  if (s.hex.empty() || !core::secure_equal(s.raw, key)) {
    s.hex = core::sha256_hex(key);
    s.raw = key;
  }
  return s.hex;
}

core::result<principal> resolved(const key_cache::key_ptr& k, std::string key) {
  if (!k) {
    return invalid_key_error(key);
  }
  if (auto ok = check_key_usable(*k, key, std::chrono::system_clock::now()); !ok) {
    return ok.error();
  }
  principal p;
  p.key_redacted = core::redact_key(key);
  p.key = std::move(key);
  p.vkey = k;
  return p;
}

}  // namespace

std::optional<core::result<principal>> key_authenticator::authenticate_cached(const std::string& key) const {
  // The master key, no auth, no key or no key store: the master authenticator decides. A
  // virtual key goes straight to the cache (no invalid-key error is built for it first:
  // that message carries a second sha256 and ~250 bytes of text).
  if (jwt_ != nullptr && master_.enabled() && looks_like_jwt(key)) {
    auto who = jwt_->authenticate(key);  // from the JWKS in memory (auth/jwt_auth.hpp)
    if (!who || owners_ == nullptr) {
      return who;
    }
    auto hit = owners_->cached(jwt_owner_key(*who->vkey));
    if (!hit) {
      return std::nullopt;  // authenticate() looks the owners up
    }
    who->vkey = *hit;
    return who;
  }
  if (cache_ == nullptr || key.empty() || !master_.enabled() || master_.is_master_key(key)) {
    return master_.authenticate_key(key);
  }
  // Stored as the sha256 hex of the whole string (LiteLLM's scheme).
  auto hit = cache_->cached(hashed_key(key));
  if (!hit) {
    return std::nullopt;
  }
  return resolved(*hit, key);
}

net::awaitable<core::result<principal>> key_authenticator::authenticate(std::string key) const {
  if (auto now = authenticate_cached(key)) {
    co_return std::move(*now);
  }
  if (jwt_ != nullptr && owners_ != nullptr && looks_like_jwt(key)) {
    auto who = jwt_->authenticate(key);  // verified (cached() said so): its owners are missing
    if (!who) {
      co_return who;
    }
    auto owner_key = jwt_owner_key(*who->vkey);
    auto owners = co_await owners_->get(owner_key);
    if (!owners) {
      co_return owners.error();
    }
    if (*owners) {
      who->vkey = *owners;
    }
    co_return who;
  }
  auto hash = core::sha256_hex(key);  // named: no temporaries inside co_await (GCC 12)
  auto r = co_await cache_->get(hash);
  if (!r) {
    if (r.error().code == core::errc::unavailable && allow_on_db_unavailable_) {
      principal p;  // LiteLLM's allow_requests_on_db_unavailable: let it through, unchecked
      p.key_redacted = core::redact_key(key);
      p.key = std::move(key);
      co_return p;
    }
    auto e = core::make_error(core::errc::unavailable,
                              "Authentication Error - the key database is unavailable and this key is not cached; "
                              "try again later");
    co_return e;
  }
  co_return resolved(*r, std::move(key));
}

core::result<void> check_key_usable(const virtual_key& k, std::string_view presented_key,
                                    std::chrono::system_clock::time_point now) {
  if (k.blocked) {
    return core::make_error(core::errc::unauthorized,
                            "Authentication Error, Key is blocked. Update via `/key/unblock` if you're admin.");
  }
  if (k.team_blocked) {
    return core::make_error(core::errc::unauthorized, "Authentication Error - Team=" + k.team_id +
                                                          " is blocked. Update via `/team/unblock` if you're admin.");
  }
  if (k.grace_until && now >= *k.grace_until) {
    return invalid_key_error(presented_key);
  }
  if (k.expires && now >= *k.expires) {
    auto e = core::make_error(core::errc::unauthorized, "Authentication Error - Expired Key. Key Expiry time " +
                                                            iso_utc(*k.expires) + " and current time " +
                                                            iso_utc(now));
    e.type = "expired_key";
    return e;
  }
  return {};
}

bool model_allowed(const principal& p, std::string_view model, const access_groups& groups) {
  if (p.is_master || !p.vkey) {
    return true;
  }
  return check_access(*p.vkey, model, groups) == access_denial::none;
}

core::result<void> check_model_access(const principal& p, std::string_view model, const access_groups& groups) {
  if (p.is_master || !p.vkey) {
    return {};
  }
  auto d = check_access(*p.vkey, model, groups);
  if (d == access_denial::none) {
    return {};
  }
  return access_error(*p.vkey, d, model);
}

std::vector<std::string> allowed_models(const principal& p, const std::vector<std::string>& models,
                                        const access_groups& groups) {
  std::vector<std::string> out;
  for (const auto& m : models) {
    if (model_allowed(p, m, groups)) {
      out.push_back(m);
    }
  }
  return out;
}

role role_of(const principal& p) {
  if (p.is_master) {
    return role::proxy_admin;
  }
  return p.vkey ? parse_role(p.vkey->user_role) : role::none;
}

}  // namespace switchyard::auth
