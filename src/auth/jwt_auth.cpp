#include "switchyard/auth/jwt_auth.hpp"
#include "switchyard/core/seconds.hpp"

#include "switchyard/core/ids.hpp"
#include "switchyard/core/jwt.hpp"

#include <nlohmann/json.hpp>

namespace switchyard::auth {

using json = nlohmann::json;

const json* find_claim(const json& claims, const std::string& name) {
  if (name.empty()) {
    return nullptr;
  }
  const json* cur = &claims;
  std::size_t start = 0;
  while (true) {
    const auto dot = name.find('.', start);
    const auto part = name.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (!cur->is_object()) {
      return nullptr;
    }
    auto it = cur->find(part);
    if (it == cur->end()) {
      // A claim name may itself contain dots (URIs): try the rest whole.
      auto whole = cur->find(name.substr(start));
      return whole == cur->end() ? nullptr : &*whole;
    }
    cur = &*it;
    if (dot == std::string::npos) {
      return cur;
    }
    start = dot + 1;
  }
}

namespace {

core::error setting_error(std::string message) { return core::make_error(core::errc::bad_request, std::move(message)); }

std::string claim_string(const json& claims, const std::string& name) {
  const json* v = find_claim(claims, name);
  if (v == nullptr) {
    return {};
  }
  if (v->is_string()) {
    return v->get<std::string>();
  }
  if (v->is_number_integer()) {
    return std::to_string(v->get<long long>());
  }
  return {};
}

std::vector<std::string> claim_list(const json& claims, const std::string& name) {
  std::vector<std::string> out;
  const json* v = find_claim(claims, name);
  if (v == nullptr) {
    return out;
  }
  if (v->is_string()) {
    out.push_back(v->get<std::string>());
  } else if (v->is_array()) {
    for (const auto& e : *v) {
      if (e.is_string()) {
        out.push_back(e.get<std::string>());
      }
    }
  }
  return out;
}

std::vector<std::string> split_scopes(const json& claims) {
  std::vector<std::string> out;
  for (const char* name : {"scope", "scp"}) {
    auto it = claims.find(name);
    if (it == claims.end()) {
      continue;
    }
    if (it->is_array()) {
      for (const auto& e : *it) {
        if (e.is_string()) {
          out.push_back(e.get<std::string>());
        }
      }
    } else if (it->is_string()) {
      const auto s = it->get<std::string>();
      std::size_t i = 0;
      while (i < s.size()) {
        auto j = s.find(' ', i);
        if (j == std::string::npos) {
          j = s.size();
        }
        if (j > i) {
          out.push_back(s.substr(i, j - i));
        }
        i = j + 1;
      }
    }
  }
  return out;
}

}  // namespace

core::result<jwt_auth_settings> jwt_auth_settings::from(const json& general,
                                                        const std::function<std::string(const char*)>& env) {
  jwt_auth_settings s;
  if (!general.is_object()) {
    return s;
  }
  auto en = general.find("enable_jwt_auth");
  if (en == general.end() || !(en->is_boolean() ? en->get<bool>()
                                                : en->is_string() && (en->get<std::string>() == "true" ||
                                                                      en->get<std::string>() == "True"))) {
    return s;
  }
  s.enabled = true;
  const std::string urls = env("JWT_PUBLIC_KEY_URL");
  std::size_t i = 0;
  while (i < urls.size()) {
    auto j = urls.find(',', i);
    if (j == std::string::npos) {
      j = urls.size();
    }
    std::string u = urls.substr(i, j - i);
    while (!u.empty() && u.front() == ' ') {
      u.erase(0, 1);
    }
    while (!u.empty() && u.back() == ' ') {
      u.pop_back();
    }
    if (!u.empty()) {
      s.jwks_urls.push_back(u);
    }
    i = j + 1;
  }
  if (s.jwks_urls.empty()) {
    return setting_error(
        "general_settings.enable_jwt_auth: JWT_PUBLIC_KEY_URL (the identity provider's JWKS URL) is not set");
  }
  s.audience = env("JWT_AUDIENCE");
  s.issuer = env("JWT_ISSUER");
  auto j = general.find("litellm_jwtauth");
  if (j == general.end() || j->is_null()) {
    return s;
  }
  if (!j->is_object()) {
    return setting_error("general_settings.litellm_jwtauth: expected a mapping");
  }
  auto text = [&](const char* name, std::string& out) -> std::optional<core::error> {
    auto it = j->find(name);
    if (it == j->end() || it->is_null()) {
      return std::nullopt;
    }
    if (!it->is_string()) {
      return setting_error(std::string("general_settings.litellm_jwtauth.") + name + ": expected a string");
    }
    out = it->get<std::string>();
    return std::nullopt;
  };
  for (auto [name, out] : {std::pair{"user_id_jwt_field", &s.user_id_jwt_field},
                           std::pair{"user_email_jwt_field", &s.user_email_jwt_field},
                           std::pair{"team_id_jwt_field", &s.team_id_jwt_field},
                           std::pair{"team_ids_jwt_field", &s.team_ids_jwt_field},
                           std::pair{"admin_jwt_scope", &s.admin_jwt_scope},
                           std::pair{"user_roles_jwt_field", &s.user_roles_jwt_field}}) {
    if (auto e = text(name, *out)) {
      return *e;
    }
  }
  if (auto it = j->find("user_allowed_roles"); it != j->end() && !it->is_null()) {
    if (!it->is_array()) {
      return setting_error("general_settings.litellm_jwtauth.user_allowed_roles: expected a list of strings");
    }
    for (const auto& r : *it) {
      if (r.is_string()) {
        s.user_allowed_roles.push_back(r.get<std::string>());
      }
    }
  }
  if (auto it = j->find("public_key_ttl"); it != j->end() && !it->is_null()) {
    if (!it->is_number() || it->get<double>() < 1) {
      return setting_error("general_settings.litellm_jwtauth.public_key_ttl: expected seconds (>= 1)");
    }
    s.public_key_ttl = core::saturated_seconds(it->get<double>());
  }
  return s;
}

std::string jwt_owner_key(const virtual_key& who) {
  // "jwt:" never starts a sha256 hex (the key cache's usual keys); \x1f never occurs in ids.
  return "jwt:" + who.user_id + '\x1f' + who.team_id + '\x1f' + who.user_role;
}

jwt_owner parse_jwt_owner_key(std::string_view key) {
  jwt_owner o;
  if (key.starts_with("jwt:")) {
    key.remove_prefix(4);
  }
  auto a = key.find('\x1f');
  auto b = a == std::string_view::npos ? a : key.find('\x1f', a + 1);
  if (b == std::string_view::npos) {
    o.user_id = std::string(key);
    return o;
  }
  o.user_id = std::string(key.substr(0, a));
  o.team_id = std::string(key.substr(a + 1, b - a - 1));
  o.role = std::string(key.substr(b + 1));
  return o;
}

bool looks_like_jwt(std::string_view key) {
  // A JSON header always starts with '{"', base64url "eyJ".
  if (key.size() < 20 || key.substr(0, 3) != "eyJ") {
    return false;
  }
  const auto d1 = key.find('.');
  return d1 != std::string_view::npos && key.find('.', d1 + 1) != std::string_view::npos;
}

jwt_authenticator::jwt_authenticator(jwt_auth_settings s, std::vector<jwks_cache*> caches, clock_fn now)
    : s_(std::move(s)), caches_(std::move(caches)), now_(std::move(now)) {
  if (!now_) {
    now_ = [] { return std::chrono::system_clock::now(); };
  }
}

core::result<principal> jwt_authenticator::authenticate(const std::string& token) const {
  const auto now = now_();
  if (auto it = memo_.find(token); it != memo_.end()) {
    const auto& m = it->second;
    if (now < m.expires + s_.leeway && caches_[m.cache_index]->keys() == m.keys) {
      return m.who;
    }
    memo_.erase(it);  // expired, or the JWKS was refreshed since: verify again
  }
  return verify(token, now);
}

core::result<principal> jwt_authenticator::verify(const std::string& token,
                                                  std::chrono::system_clock::time_point now) const {
  core::claim_checks want;
  want.issuer = s_.issuer;
  if (!s_.audience.empty()) {
    want.audiences.push_back(s_.audience);
  }
  want.leeway = s_.leeway;
  std::optional<core::result<core::decoded_jwt>> verified;
  std::size_t used_cache = 0;
  std::shared_ptr<const core::jwks> used_keys;
  for (std::size_t i = 0; i < caches_.size(); ++i) {
    auto* cache = caches_[i];
    bool unknown_kid = false;
    auto keys = cache->keys();
    auto r = core::verify_jwt(token, *keys, want, now, &unknown_kid);
    used_cache = i;
    used_keys = keys;
    if (unknown_kid) {
      cache->refresh_soon();
      if (!verified) {
        verified = std::move(r);
      }
      continue;
    }
    verified = std::move(r);
    break;
  }
  if (!verified) {
    return core::make_error(core::errc::unauthorized, "JWT auth: no JWKS configured");
  }
  if (!*verified) {
    auto e = verified->error();
    e.message = "Authentication Error, " + e.message;
    return e;
  }
  const json& claims = (*verified)->claims;
  principal p;
  p.key = token;
  p.key_redacted = core::redact_key(token);
  auto k = std::make_shared<virtual_key>();
  k->key_name = p.key_redacted;
  if (!s_.user_id_jwt_field.empty()) {
    k->user_id = claim_string(claims, s_.user_id_jwt_field);
    if (k->user_id.empty()) {
      return core::make_error(core::errc::unauthorized, "Authentication Error, the JWT has no '" +
                                                            s_.user_id_jwt_field + "' claim (user_id_jwt_field)");
    }
  }
  if (!s_.team_id_jwt_field.empty()) {
    k->team_id = claim_string(claims, s_.team_id_jwt_field);
  }
  if (k->team_id.empty() && !s_.team_ids_jwt_field.empty()) {
    auto teams = claim_list(claims, s_.team_ids_jwt_field);
    if (!teams.empty()) {
      k->team_id = teams.front();
    }
  }
  if (!s_.user_allowed_roles.empty()) {
    auto roles = claim_list(claims, s_.user_roles_jwt_field);
    bool allowed = false;
    for (const auto& r : roles) {
      for (const auto& a : s_.user_allowed_roles) {
        allowed = allowed || r == a;
      }
    }
    if (!allowed) {
      return core::make_error(core::errc::unauthorized,
                              "Authentication Error, the JWT has none of the allowed roles (user_allowed_roles)");
    }
  }
  bool admin = false;
  for (const auto& sc : split_scopes(claims)) {
    admin = admin || (!s_.admin_jwt_scope.empty() && sc == s_.admin_jwt_scope);
  }
  k->user_role = admin ? "proxy_admin" : "internal_user";
  p.vkey = std::move(k);
  if (auto exp = claims.find("exp"); exp != claims.end() && exp->is_number()) {
    if (memo_.size() >= memo_limit) {
      memo_.clear();  // simplest bound; a busy service's tokens come back at once
    }
    const auto expires =
        std::chrono::system_clock::time_point(core::saturated_seconds(exp->get<double>()));
    memo_entry m{p, expires, used_cache, std::move(used_keys)};
    memo_.insert_or_assign(token, std::move(m));
  }
  return p;
}

}  // namespace switchyard::auth
