#include "switchyard/admin/sso.hpp"

#include "admin_util.hpp"

#include "switchyard/auth/jwt_auth.hpp"
#include "switchyard/auth/key_invalidation.hpp"
#include "switchyard/core/ids.hpp"
#include "switchyard/core/json_get.hpp"
#include "switchyard/core/jwt.hpp"
#include "switchyard/store/postgres/db_executor.hpp"
#include "switchyard/store/postgres/session_repo.hpp"
#include "switchyard/store/postgres/tenant_repo.hpp"
#include "switchyard/upstream/client.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <unordered_set>

namespace switchyard::admin {

namespace {

constexpr std::string_view session_cookie = "switchyard_session";
constexpr std::string_view csrf_cookie = "switchyard_csrf";
// Why the last sign-in was refused, for the UI's sign-in page: set by the server only, so a
// crafted link cannot put words on that page (the redirect's `?error=signin` carries none).
constexpr std::string_view signin_error_cookie = "switchyard_signin_error";
// What the sign-in page shows when the ID token is refused, or its keys cannot be read.
constexpr std::string_view id_token_refused =
    "Sign-in refused: the identity provider's answer did not pass the gateway's checks. Sign in again; if this "
    "keeps happening, ask an administrator to look at the gateway's log.";
// The provider's own words (an error_description, from its token endpoint or in the
// callback's URL, which anyone can craft) never reach the sign-in page: the browser gets
// one of these, the log and API clients the detail.
constexpr std::string_view token_refused =
    "Sign-in failed: the identity provider did not complete the sign-in. Sign in again; if this keeps "
    "happening, ask an administrator to look at the gateway's log.";
constexpr std::string_view provider_refused =
    "Sign-in refused by the identity provider. Sign in again; if this keeps happening, ask an administrator "
    "to look at the gateway's log.";
constexpr std::string_view jwks_unreadable =
    "Sign-in failed: the identity provider's signing keys could not be read. Try again in a moment; if this "
    "keeps happening, ask an administrator to look at the gateway's log.";

std::string trim_slash(std::string s) {
  while (!s.empty() && s.back() == '/') {
    s.pop_back();
  }
  return s;
}

// "scheme://host[:port]" of a URL ("" when it has none).
std::string origin_of(const std::string& url) {
  auto scheme = url.find("://");
  if (scheme == std::string::npos) {
    return {};
  }
  auto path = url.find('/', scheme + 3);
  return path == std::string::npos ? url : url.substr(0, path);
}

bool is_role(std::string_view r) {
  return r == "proxy_admin" || r == "proxy_admin_viewer" || r == "org_admin" || r == "internal_user" ||
         r == "internal_user_viewer";
}

bool is_admin_role(std::string_view r) { return r == "proxy_admin" || r == "proxy_admin_viewer"; }

core::error sso_error(int status, std::string message) {
  auto e = core::make_error(status == 403 ? core::errc::forbidden : core::errc::unauthorized, std::move(message));
  e.type = "auth_error";
  return e;
}

std::string random_token() { return core::base64url_encode(core::random_hex(32)); }

// base64url(sha256(verifier)), PKCE's S256 challenge.
std::string pkce_challenge(const std::string& verifier) {
  const auto hex = core::sha256_hex(verifier);
  std::string raw;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
    raw += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
  }
  return core::base64url_encode(raw);
}

std::string claim_text(const json& claims, const std::string& name) {
  if (name.empty() || !claims.is_object()) {
    return {};
  }
  auto it = claims.find(name);
  if (it == claims.end()) {
    return {};
  }
  if (it->is_string()) {
    return it->get<std::string>();
  }
  if (it->is_array()) {
    for (const auto& v : *it) {
      if (v.is_string() && is_role(v.get<std::string>())) {
        return v.get<std::string>();
      }
    }
  }
  return {};
}

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while (i <= s.size()) {
    auto j = s.find(',', i);
    if (j == std::string::npos) {
      j = s.size();
    }
    auto v = s.substr(i, j - i);
    v.erase(0, v.find_first_not_of(' '));
    v.erase(v.find_last_not_of(' ') + 1);
    if (!v.empty()) {
      out.push_back(v);
    }
    i = j + 1;
  }
  return out;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

http::response json_response(int status, const json& body) {
  http::response r;
  r.status = status;
  r.body = body.dump();
  return r;
}

http::response redirect(std::string location, int status = 302) {
  http::response r;
  r.status = status;
  r.content_type = "text/plain";
  r.headers.emplace_back("location", std::move(location));
  r.headers.emplace_back("cache-control", "no-store");
  return r;
}

// A refused sign-in: a browser (it asks for HTML) is sent back to the UI's sign-in page,
// the reason in a short-lived cookie that only /sso/session reads (and clears); any other
// client gets the OpenAI-shaped error. The reason names no secret (it is the error the
// API would answer, or `shown` in its place), so the cookie needs no Secure flag.
http::response callback_error(const http::request& req, const core::error& e, std::string_view shown = {}) {
  if (req.header("accept").find("text/html") == std::string_view::npos) {
    return http::error_response(e);
  }
  http::response r;
  r.status = 303;
  r.content_type = "text/plain";
  r.headers.emplace_back("location", "/ui/?error=signin");
  r.headers.emplace_back("set-cookie", std::string(signin_error_cookie) + "=" +
                                           core::base64url_encode(shown.empty() ? e.message.substr(0, 1024)
                                                                                 : std::string(shown)) +
                                           "; Path=/sso/session; Max-Age=300; HttpOnly; SameSite=Lax");
  r.headers.emplace_back("cache-control", "no-store");
  return r;
}


// The fields of /team/new that litellm_settings.default_team_params may set (LiteLLM's
// DefaultTeamSSOParams and team_member_permissions), with /team/new's types.
std::span<const field_spec> default_team_fields() {
  static const std::vector<field_spec> fields = [] {
    constexpr std::string_view names[] = {"max_budget", "budget_duration", "models",
                                          "tpm_limit",  "rpm_limit",       "team_member_permissions"};
    std::vector<field_spec> out;
    for (const auto& f : fields_of(entity::team)) {
      if (std::find(std::begin(names), std::end(names), f.name) != std::end(names)) {
        out.push_back(f);
      }
    }
    return out;
  }();
  return fields;
}

std::string json_kind(const json& v) {
  if (v.is_string()) {
    return "a string";
  }
  if (v.is_number()) {
    return "a number";
  }
  if (v.is_boolean()) {
    return "a boolean";
  }
  if (v.is_object()) {
    return "an object";
  }
  if (v.is_array()) {
    return "a list";
  }
  return "null";
}

}  // namespace

sso_groups read_sso_groups(const json& claims, const std::string& field) {
  sso_groups out;
  if (field.empty()) {
    return out;
  }
  const json* v = auth::find_claim(claims, field);
  if (v == nullptr || v->is_null()) {
    // Entra ID leaves the groups out of a token when the user is in more groups than it
    // holds, and names where to fetch them instead ("groups overage").
    const json* names = auth::find_claim(claims, "_claim_names");
    if (names != nullptr && names->is_object() && names->contains(field)) {
      out.problem = "the ID token carries Entra ID's groups overage marker (_claim_names." + field +
                    ") instead of the groups: the user is in more groups than a token holds (limit the app "
                    "registration's group claims to the groups assigned to the application)";
    }
    return out;
  }
  constexpr std::size_t max_id_bytes = 256;
  std::vector<std::string> ids;
  std::unordered_set<std::string> seen;
  auto bad_id = [&](const json& e) {
    out.problem = "claim '" + field + "' holds " +
                  (e.is_string() ? "a string of " + std::to_string(e.get_ref<const std::string&>().size()) + " bytes"
                                 : json_kind(e)) +
                  " where a team id (a non-empty string of at most " + std::to_string(max_id_bytes) +
                  " bytes) belongs";
  };
  auto take = [&](const json& e) {
    if (!e.is_string() || e.get_ref<const std::string&>().empty() ||
        e.get_ref<const std::string&>().size() > max_id_bytes) {
      bad_id(e);
      return false;
    }
    if (seen.insert(e.get<std::string>()).second) {
      ids.push_back(e.get<std::string>());
    }
    return true;
  };
  if (v->is_string()) {
    if (!take(*v)) {
      return out;
    }
  } else if (v->is_array()) {
    for (const auto& e : *v) {
      if (!take(e)) {
        return out;
      }
    }
  } else {
    out.problem = "claim '" + field + "' is " + json_kind(*v) + ", not a list of team ids or one team id";
    return out;
  }
  out.ids = std::move(ids);
  return out;
}

core::result<sso_settings> sso_settings::from(const json& general, const json& litellm, const std::string& master_key,
                                              const std::function<std::string(const char*)>& env) {
  sso_settings s;
  auto fail = [](std::string m) { return core::make_error(core::errc::bad_request, std::move(m)); };
  if (!env("GOOGLE_CLIENT_ID").empty()) {
    s.provider = "google";
    s.client_id = env("GOOGLE_CLIENT_ID");
    s.client_secret = env("GOOGLE_CLIENT_SECRET");
    s.discovery_url = "https://accounts.google.com/.well-known/openid-configuration";
    s.user_id_attribute = "sub";
    s.display_name_attribute = "name";
  } else if (!env("MICROSOFT_CLIENT_ID").empty()) {
    s.provider = "microsoft";
    s.client_id = env("MICROSOFT_CLIENT_ID");
    s.client_secret = env("MICROSOFT_CLIENT_SECRET");
    auto tenant = env("MICROSOFT_TENANT");
    if (tenant.empty()) {
      return fail("MICROSOFT_CLIENT_ID is set without MICROSOFT_TENANT (the directory's tenant id)");
    }
    s.discovery_url = "https://login.microsoftonline.com/" + tenant + "/v2.0/.well-known/openid-configuration";
    s.user_id_attribute = "oid";
    s.display_name_attribute = "name";
  } else if (!env("GENERIC_CLIENT_ID").empty()) {
    s.provider = "generic";
    s.client_id = env("GENERIC_CLIENT_ID");
    s.client_secret = env("GENERIC_CLIENT_SECRET");
    s.authorization_endpoint = env("GENERIC_AUTHORIZATION_ENDPOINT");
    s.token_endpoint = env("GENERIC_TOKEN_ENDPOINT");
    s.userinfo_endpoint = env("GENERIC_USERINFO_ENDPOINT");
    if (s.authorization_endpoint.empty() || s.token_endpoint.empty()) {
      return fail("GENERIC_CLIENT_ID is set without GENERIC_AUTHORIZATION_ENDPOINT and GENERIC_TOKEN_ENDPOINT");
    }
    s.jwks_uri = env("GENERIC_JWKS_URI");
    s.issuer = env("GENERIC_ISSUER");
    s.discovery_url = !s.issuer.empty() ? trim_slash(s.issuer) + "/.well-known/openid-configuration"
                                        : origin_of(s.authorization_endpoint) + "/.well-known/openid-configuration";
    if (auto v = env("GENERIC_SCOPE"); !v.empty()) {
      s.scope = v;
    }
    s.user_id_attribute = env("GENERIC_USER_ID_ATTRIBUTE");
    if (s.user_id_attribute.empty()) {
      s.user_id_attribute = "preferred_username";
    }
    if (auto v = env("GENERIC_USER_EMAIL_ATTRIBUTE"); !v.empty()) {
      s.email_attribute = v;
    }
    s.display_name_attribute = env("GENERIC_USER_DISPLAY_NAME_ATTRIBUTE");
    if (s.display_name_attribute.empty()) {
      s.display_name_attribute = "sub";
    }
    s.role_attribute = env("GENERIC_USER_ROLE_ATTRIBUTE");
  }
  if (!s.provider.empty() && s.client_secret.empty()) {
    return fail("the " + s.provider + " sign-in has a client id but no client secret");
  }
  s.proxy_base_url = trim_slash(env("PROXY_BASE_URL"));
  if (auto v = env("UI_USERNAME"); !v.empty()) {
    s.ui_username = v;
  }
  s.ui_password = env("UI_PASSWORD");
  if (s.ui_password.empty()) {
    s.ui_password = master_key;
  }
  if (general.is_object()) {
    if (auto it = general.find("ui_access_mode"); it != general.end() && !it->is_null()) {
      // LiteLLM's newer mapping form (SSO groups) is not read: every user may sign in.
      if (it->is_string()) {
        s.admin_only = it->get<std::string>() == "admin_only";
      } else if (!it->is_object()) {
        return fail("general_settings.ui_access_mode: expected \"admin_only\" (or unset)");
      }
    }
    if (auto it = general.find("proxy_admin_email"); it != general.end()) {
      if (it->is_string()) {
        for (auto& v : split_list(it->get<std::string>())) {
          s.admins.push_back(lower(v));
        }
      } else if (it->is_array()) {
        for (const auto& v : *it) {
          if (v.is_string()) {
            s.admins.push_back(lower(v.get<std::string>()));
          }
        }
      }
    }
  }
  for (auto& v : split_list(env("PROXY_ADMIN_ID"))) {
    s.admins.push_back(lower(v));
  }
  if (litellm.is_object()) {
    if (auto it = litellm.find("default_internal_user_params"); it != litellm.end() && it->is_object()) {
      s.default_user_params = *it;
      if (auto r = it->find("user_role"); r != it->end() && r->is_string()) {
        if (!is_role(r->get<std::string>())) {
          return fail("litellm_settings.default_internal_user_params.user_role: '" + r->get<std::string>() +
                      "' is not a role");
        }
        s.default_role = r->get<std::string>();
      }
      if (auto t = it->find("teams"); t != it->end() && !t->is_null()) {
        const std::string where = "litellm_settings.default_internal_user_params.teams";
        if (!t->is_array()) {
          return fail(where + ": expected a list of team ids or {team_id, user_role, max_budget_in_team}");
        }
        for (std::size_t i = 0; i < t->size(); ++i) {
          const json& e = (*t)[i];
          const std::string at = where + "[" + std::to_string(i) + "]";
          default_team d;
          if (e.is_string() && !e.get_ref<const std::string&>().empty()) {
            d.team_id = e.get<std::string>();
          } else if (e.is_object()) {
            auto id = e.find("team_id");
            if (id == e.end() || !id->is_string() || id->get_ref<const std::string&>().empty()) {
              return fail(at + ".team_id: expected a team id (a non-empty string)");
            }
            d.team_id = id->get<std::string>();
            if (auto r = e.find("user_role"); r != e.end() && !r->is_null()) {
              if (!r->is_string() || (*r != "user" && *r != "admin")) {
                return fail(at + ".user_role: expected \"user\" or \"admin\"");
              }
              d.role = r->get<std::string>();
            }
            if (auto b = e.find("max_budget_in_team"); b != e.end() && !b->is_null()) {
              if (!b->is_number() || b->get<double>() < 0) {
                return fail(at + ".max_budget_in_team: expected a number >= 0");
              }
              d.max_budget_in_team = b->get<double>();
            }
          } else {
            return fail(at + ": expected a team id or {team_id, user_role, max_budget_in_team}, got " + json_kind(e));
          }
          s.default_teams.push_back(std::move(d));
        }
      }
    }
    if (auto tz = litellm.find("timezone"); tz != litellm.end() && tz->is_string()) {
      if (auto zone = core::time_zone::load(tz->get<std::string>())) {
        s.budget_tz = std::move(*zone);  // an unreadable zone stopped the config loader already
      }
    }
    if (auto d = litellm.find("default_team_params"); d != litellm.end() && !d->is_null()) {
      if (!d->is_object()) {
        return fail("litellm_settings.default_team_params: expected a mapping");
      }
      // Checked as /team/new checks its body; other keys were reported by the config loader.
      json known = json::object();
      for (const auto& f : default_team_fields()) {
        if (auto v = d->find(f.name); v != d->end()) {
          known[f.name] = *v;
        }
      }
      auto patch = patch_from(known, default_team_fields(), std::chrono::system_clock::now(), s.budget_tz);
      if (!patch) {
        return fail("litellm_settings.default_team_params." + patch.error().message);
      }
      s.default_team_params = std::move(known);
    }
  }
  if (general.is_object()) {
    if (auto j = general.find("litellm_jwtauth"); j != general.end() && j->is_object()) {
      if (auto f = j->find("team_ids_jwt_field"); f != j->end() && !f->is_null()) {
        if (!f->is_string()) {
          return fail("general_settings.litellm_jwtauth.team_ids_jwt_field: expected a string (a claim name)");
        }
        s.team_ids_claim = f->get<std::string>();
      }
    }
  }
  return s;
}

sso_endpoints::sso_endpoints(sso_settings s, store::postgres::db_executor* db, upstream::client& client,
                             const auth::authenticator& master, net::any_io_executor ex,
                             auth::key_invalidation* invalidation)
    : s_(std::move(s)), db_(db), invalidation_(invalidation), client_(client), master_(master), ex_(std::move(ex)) {
  if (!s_.jwks_uri.empty()) {
    jwks_ = std::make_unique<auth::jwks_cache>(ex_, client_, auth::jwks_options{.url = s_.jwks_uri});
    jwks_->start();
  }
}

sso_endpoints::~sso_endpoints() = default;

bool sso_endpoints::handles(std::string_view p) {
  return p == "/sso/key/generate" || p == "/sso/callback" || p == "/login" || p == "/sso/session" ||
         p == "/sso/logout";
}

net::awaitable<void> sso_endpoints::handle(http::request& req, http::responder& resp) {
  const std::string_view p = req.path;
  const bool get = req.method == "GET" || req.method == "HEAD";
  const bool post = req.method == "POST";
  if (db_ == nullptr || !master_.enabled()) {
    // As LiteLLM: the UI needs a master key and a database.
    co_await resp.send(http::error_response(core::make_error(
        core::errc::bad_request, "Sign-in needs a master key and a database (general_settings.master_key, "
                                 "DATABASE_URL)")));
    co_return;
  }
  if (p == "/sso/key/generate" && get) {
    co_return co_await start(req, resp);
  }
  if (p == "/sso/callback" && get) {
    co_return co_await callback(req, resp);
  }
  if (p == "/login" && post) {
    co_return co_await password_login(req, resp);
  }
  if (p == "/sso/session" && get) {
    co_return co_await session_info(req, resp);
  }
  if (p == "/sso/logout" && post) {
    co_return co_await logout(req, resp);
  }
  auto e = core::make_error(core::errc::bad_request, "Method Not Allowed: " + req.method + " " + req.path);
  e.status = 405;
  co_await resp.send(http::error_response(e));
}

std::string sso_endpoints::base_url(const http::request& req) const {
  if (!s_.proxy_base_url.empty()) {
    return s_.proxy_base_url;
  }
  auto proto = req.header("x-forwarded-proto");
  return std::string(proto == "https" ? "https" : "http") + "://" + std::string(req.header("host"));
}

bool sso_endpoints::secure(const http::request& req) const {
  return base_url(req).starts_with("https://") || req.header("x-forwarded-proto") == "https";
}

net::awaitable<core::result<void>> sso_endpoints::discover() {
  if (discovered_) {
    co_return core::result<void>{};
  }
  upstream::request r;
  r.method = "GET";
  r.url = s_.discovery_url;
  r.timeout = std::chrono::seconds(10);
  auto got = co_await client_.send(std::move(r));
  json doc;
  if (got && got->status == 200) {
    doc = json::parse(got->body, nullptr, false);
  }
  if (!doc.is_object()) {
    if (!s_.jwks_uri.empty() && !s_.authorization_endpoint.empty()) {
      discovered_ = true;  // everything given explicitly
      co_return core::result<void>{};
    }
    co_return core::make_error(core::errc::unavailable,
                               "Sign-in: the provider's discovery document " + s_.discovery_url +
                                   " could not be read (" +
                                   (got ? "HTTP " + std::to_string(got->status) : got.error().message) +
                                   "); set GENERIC_JWKS_URI and GENERIC_ISSUER");
  }
  auto text = [&](const char* n) { return doc.contains(n) && doc[n].is_string() ? doc[n].get<std::string>() : ""; };
  if (s_.authorization_endpoint.empty()) {
    s_.authorization_endpoint = text("authorization_endpoint");
  }
  if (s_.token_endpoint.empty()) {
    s_.token_endpoint = text("token_endpoint");
  }
  if (s_.userinfo_endpoint.empty() && s_.provider != "generic") {
    s_.userinfo_endpoint = text("userinfo_endpoint");
  }
  if (s_.issuer.empty()) {
    s_.issuer = text("issuer");
  }
  if (s_.jwks_uri.empty()) {
    s_.jwks_uri = text("jwks_uri");
    if (s_.jwks_uri.empty()) {
      co_return core::make_error(core::errc::unavailable, "Sign-in: the discovery document has no jwks_uri");
    }
    jwks_ = std::make_unique<auth::jwks_cache>(ex_, client_, auth::jwks_options{.url = s_.jwks_uri});
    jwks_->start();
  }
  discovered_ = true;
  co_return core::result<void>{};
}

net::awaitable<void> sso_endpoints::start(http::request& req, http::responder& resp) {
  if (s_.provider.empty()) {
    // No identity provider: LiteLLM's username/password form.
    http::response r;
    r.content_type = "text/html; charset=utf-8";
    r.headers.emplace_back("cache-control", "no-store");
    r.body =
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Sign in - Switchyard</title></head><body>"
        "<form method=\"post\" action=\"/login\"><h1>Sign in</h1>"
        "<label>Username <input name=\"username\" autocomplete=\"username\" required></label>"
        "<label>Password <input name=\"password\" type=\"password\" autocomplete=\"current-password\" required>"
        "</label><button type=\"submit\">Sign in</button></form></body></html>";
    co_await resp.send(std::move(r));
    co_return;
  }
  if (auto d = co_await discover(); !d) {
    co_await resp.send(http::error_response(d.error()));
    co_return;
  }
  store::postgres::pending_login l{random_token(), random_token(), s_.provider};
  const std::string state = random_token();
  auto stored = co_await db_->run(store::postgres::insert_login_blocking, state, l, s_.login_ttl);
  if (!stored) {
    co_await resp.send(http::error_response(for_client(stored.error(), "/sso/key/generate")));
    co_return;
  }
  const std::string redirect_uri = base_url(req) + "/sso/callback";
  std::string url = s_.authorization_endpoint;
  url += url.find('?') == std::string::npos ? '?' : '&';
  url += "response_type=code&client_id=" + core::percent_encode(s_.client_id) +
         "&redirect_uri=" + core::percent_encode(redirect_uri) + "&scope=" + core::percent_encode(s_.scope) +
         "&state=" + state + "&nonce=" + l.nonce + "&code_challenge=" + pkce_challenge(l.code_verifier) +
         "&code_challenge_method=S256";
  if (s_.provider == "microsoft") {
    url += "&response_mode=query";
  }
  co_await resp.send(redirect(std::move(url)));
}

net::awaitable<core::result<json>> sso_endpoints::verify_id_token(std::string token, std::string nonce) {
  core::claim_checks want;
  want.audiences = {s_.client_id};
  want.nonce = std::move(nonce);
  // Entra's multi-tenant issuer has a {tenantid} placeholder: checked below with the tid.
  const bool tenant_placeholder = s_.issuer.find("{tenantid}") != std::string::npos;
  want.issuer = tenant_placeholder ? std::string() : s_.issuer;
  bool unknown_kid = false;
  auto keys = jwks_->keys();
  auto r = core::verify_jwt(token, *keys, want, std::chrono::system_clock::now(), &unknown_kid);
  if (!r && unknown_kid) {
    // A key the cache has not seen yet (rotation, or the first sign-in): fetch once.
    if (auto f = co_await jwks_->refresh_now(); !f) {
      co_return core::make_error(core::errc::unavailable, "Sign-in: the provider's JWKS could not be read: " +
                                                              f.error().message);
    }
    keys = jwks_->keys();
    r = core::verify_jwt(token, *keys, want, std::chrono::system_clock::now(), &unknown_kid);
  }
  if (!r) {
    co_return sso_error(401, "Sign-in refused: invalid ID token: " + r.error().message);
  }
  if (tenant_placeholder) {
    // Claims are the identity provider's: read by type (a non-string is absent).
    auto tid = core::string_or(r->claims, "tid");
    auto expected = s_.issuer;
    expected.replace(expected.find("{tenantid}"), 10, tid);
    if (tid.empty() || core::string_or(r->claims, "iss") != expected) {
      co_return sso_error(401, "Sign-in refused: invalid ID token: issuer does not match the tenant");
    }
  }
  co_return ok(std::move(r->claims));
}

net::awaitable<void> sso_endpoints::callback(http::request& req, http::responder& resp) {
  if (auto err = query_param(req.query, "error")) {
    auto desc = query_param(req.query, "error_description").value_or("");
    auto refused = sso_error(401, "Sign-in refused by the identity provider: " + *err + (desc.empty() ? "" : ": " + desc));
    spdlog::warn("sso: {}", refused.message);
    co_await resp.send(callback_error(req, refused, provider_refused));
    co_return;
  }
  auto code = query_param(req.query, "code").value_or("");
  auto state = query_param(req.query, "state").value_or("");
  if (code.empty() || state.empty()) {
    co_await resp.send(callback_error(req,
        core::make_error(core::errc::bad_request, "Sign-in callback without code and state")));
    co_return;
  }
  auto pending = co_await db_->run(store::postgres::take_login_blocking, state, s_.login_ttl);
  if (!pending) {
    co_await resp.send(callback_error(req, for_client(pending.error(), "/sso/callback")));
    co_return;
  }
  if (!*pending) {
    co_await resp.send(callback_error(req,
        sso_error(401, "Sign-in refused: unknown, used or expired state (start again at /sso/key/generate)")));
    co_return;
  }
  if (auto d = co_await discover(); !d) {
    co_await resp.send(callback_error(req, d.error()));
    co_return;
  }
  upstream::request tr;
  tr.method = "POST";
  tr.url = s_.token_endpoint;
  tr.headers.emplace_back("content-type", "application/x-www-form-urlencoded");
  tr.headers.emplace_back("accept", "application/json");
  tr.body = "grant_type=authorization_code&code=" + core::percent_encode(code) +
            "&redirect_uri=" + core::percent_encode(base_url(req) + "/sso/callback") +
            "&client_id=" + core::percent_encode(s_.client_id) +
            "&client_secret=" + core::percent_encode(s_.client_secret) +
            "&code_verifier=" + core::percent_encode((*pending)->code_verifier);
  tr.timeout = std::chrono::seconds(15);
  auto answer = co_await client_.send(std::move(tr));
  if (!answer) {
    co_await resp.send(callback_error(req, answer.error()));
    co_return;
  }
  json tokens = json::parse(answer->body, nullptr, false);
  if (answer->status != 200 || !tokens.is_object() || !tokens.contains("id_token") || !tokens["id_token"].is_string()) {
    std::string why = tokens.is_object()
                          ? core::string_or(tokens, "error") + " " + core::string_or(tokens, "error_description")
                          : answer->body.substr(0, 200);
    auto refused =
        sso_error(401, "Sign-in refused: the token endpoint answered HTTP " + std::to_string(answer->status) + ": " + why);
    spdlog::warn("sso: {}", refused.message);
    co_await resp.send(callback_error(req, refused, token_refused));
    co_return;
  }
  std::string id_token = tokens["id_token"].get<std::string>();
  std::string nonce = (*pending)->nonce;
  auto claims = co_await verify_id_token(std::move(id_token), std::move(nonce));
  if (!claims) {
    // Which check failed (signature, issuer, audience, expiry, nonce, with the values) is
    // for the operator: the log has it, and so has the error an API client gets. The
    // person at the browser gets a fixed message saying what to do.
    spdlog::warn("sso: {}", claims.error().message);
    const bool refused = claims.error().status == 401;
    co_await resp.send(callback_error(req, claims.error(), refused ? id_token_refused : jwks_unreadable));
    co_return;
  }
  // The userinfo endpoint fills in what the ID token leaves out (the ID token wins).
  if (!s_.userinfo_endpoint.empty() && tokens.contains("access_token") && tokens["access_token"].is_string()) {
    upstream::request ur;
    ur.method = "GET";
    ur.url = s_.userinfo_endpoint;
    ur.headers.emplace_back("authorization", "Bearer " + tokens["access_token"].get<std::string>());
    ur.timeout = std::chrono::seconds(10);
    auto info = co_await client_.send(std::move(ur));
    if (info && info->status == 200) {
      auto j = json::parse(info->body, nullptr, false);
      // Only the same subject's answer, and only when the ID token names one.
      if (const auto sub = core::string_or(*claims, "sub"); !sub.empty() && core::string_or(j, "sub") == sub) {
        for (auto& [k, v] : j.items()) {
          if (!claims->contains(k)) {
            (*claims)[k] = v;
          }
        }
      }
    }
  }
  store::postgres::sso_identity who;
  const auto sub = core::string_or(*claims, "sub");
  who.user_id = claim_text(*claims, s_.user_id_attribute);
  if (who.user_id.empty()) {
    who.user_id = sub;
  }
  who.email = claim_text(*claims, s_.email_attribute);
  who.display_name = claim_text(*claims, s_.display_name_attribute);
  who.sso_user_id = s_.provider + ":" + sub;
  who.new_user_role = s_.default_role;
  if (auto role = claim_text(*claims, s_.role_attribute); is_role(role)) {
    who.role_claim = role;
  }
  for (const auto& a : s_.admins) {
    who.make_admin = who.make_admin || a == lower(who.user_id) || (!who.email.empty() && a == lower(who.email));
  }
  who.new_user_defaults_json = s_.default_user_params.dump();
  if (who.user_id.empty() || sub.empty()) {
    co_await resp.send(callback_error(req, sso_error(401, "Sign-in refused: the ID token names no user (sub)")));
    co_return;
  }
  auto user = co_await db_->run(store::postgres::upsert_sso_user_blocking, who);
  if (!user) {
    co_await resp.send(callback_error(req, for_client(user.error(), "/sso/callback")));
    co_return;
  }
  if (user->created) {
    spdlog::info("sso: first sign-in of {} ({}), created with role {}", user->user_id, s_.provider, user->user_role);
  }
  if (user->role_changed) {
    spdlog::info("sso: sign-in of {}: role now {}", user->user_id, user->user_role);
    if (invalidation_ != nullptr) {
      // A cached key carries its user's role (what it may do on the management API): each
      // of the user's keys reloads it at its next request, on every instance, as after
      // /user/update. Also when the sign-in goes no further (admin_only below).
      invalidation_->publish_owner("user", user->user_id);
    }
  }
  if (s_.admin_only && !is_admin_role(user->user_role)) {
    co_await resp.send(callback_error(req,
        sso_error(403, "Sign-in refused: ui_access_mode is admin_only and " + user->user_id + " has role " +
                           user->user_role + " (only proxy_admin and proxy_admin_viewer may use the UI)")));
    co_return;
  }
  co_await sync_teams(user->user_id, user->created, std::move(*claims));
  co_await begin_session(req, resp, user->user_id, s_.provider, true);
}

net::awaitable<void> sso_endpoints::sync_teams(std::string user_id, bool created, json claims) {
  store::postgres::sso_team_sync in;
  in.user_id = user_id;
  if (created) {
    for (const auto& d : s_.default_teams) {
      in.default_teams.push_back({d.team_id, d.role, d.max_budget_in_team});
    }
  }
  if (!s_.team_ids_claim.empty()) {
    auto g = read_sso_groups(claims, s_.team_ids_claim);
    if (!g.problem.empty()) {
      spdlog::warn("sso: sign-in of {}: {}; the claim is ignored and team memberships are left as they are", user_id,
                   g.problem);
    }
    if (g.ids) {
      in.groups_known = true;
      in.named = std::move(*g.ids);
      const auto n = std::min(in.named.size(), sso_settings::max_groups);
      in.groups.assign(in.named.begin(), in.named.begin() + static_cast<std::ptrdiff_t>(n));
      if (in.named.size() > n) {
        spdlog::warn("sso: sign-in of {}: claim '{}' names {} groups; the first {} are joined, and no team of the "
                     "others is left",
                     user_id, s_.team_ids_claim, in.named.size(), n);
      }
      // Checked at startup (sso_settings::from), so only budget_reset_at is new here.
      auto patch = patch_from(s_.default_team_params, default_team_fields(), std::chrono::system_clock::now(),
                              s_.budget_tz);
      json team = patch ? std::move(*patch) : json::object();
      team["metadata"] = {{"created_by", "sso"}};
      in.new_team_patch_json = team.dump();
    }
  }
  if (in.default_teams.empty() && !in.groups_known) {
    co_return;
  }
  const store::postgres::change_actor who{"sso", ""};
  auto r = co_await db_->run(store::postgres::sync_sso_teams_blocking, in, who);
  if (!r) {
    // The sign-in goes on: the next one tries again.
    spdlog::warn("sso: sign-in of {}: team memberships not updated: {}", user_id, r.error().message);
    co_return;
  }
  auto list = [](const std::vector<std::string>& v) {
    std::string out;
    for (const auto& t : v) {
      out += (out.empty() ? "" : ", ") + t;
    }
    return out;
  };
  if (invalidation_ != nullptr) {
    // The team's cached keys carry their user's membership (its max_budget_in_team): each
    // reloads it at its next request, on every instance, as after /team/member_add and
    // /team/member_delete. A team created here has no keys yet.
    for (const auto* teams : {&r->joined, &r->left}) {
      for (const auto& t : *teams) {
        invalidation_->publish_owner("team", t);
      }
    }
  }
  if (!r->missing.empty()) {
    spdlog::warn("sso: sign-in of {}: default_internal_user_params.teams names teams that do not exist: {}", user_id,
                 list(r->missing));
  }
  if (!r->created.empty() || !r->joined.empty() || !r->left.empty()) {
    spdlog::info("sso: sign-in of {}: teams created [{}], joined [{}], left [{}]", user_id, list(r->created),
                 list(r->joined), list(r->left));
  }
}

net::awaitable<void> sso_endpoints::password_login(http::request& req, http::responder& resp) {
  std::string username;
  std::string password;
  const bool form = req.header("content-type").starts_with("application/x-www-form-urlencoded");
  if (form) {
    username = query_param(req.body, "username").value_or("");
    password = query_param(req.body, "password").value_or("");
  } else {
    auto j = json::parse(req.body, nullptr, false);
    if (j.is_object()) {
      // Strings only: json::value() throws for a number ({"username": 5}).
      username = core::string_or(j, "username");
      password = core::string_or(j, "password");
    }
  }
  if (username.empty() || password.empty()) {
    co_await resp.send(http::error_response(
        core::make_error(core::errc::bad_request, "username and password are required (form or JSON)")));
    co_return;
  }
  // Both compared in constant time, and both always compared.
  const bool user_ok = core::secure_equal(username, s_.ui_username);
  const bool pass_ok = core::secure_equal(password, s_.ui_password);
  if (!user_ok || !pass_ok) {
    co_await resp.send(http::error_response(sso_error(401, "Invalid credentials used to access UI. Check "
                                                           "'UI_USERNAME', 'UI_PASSWORD' in .env file")));
    co_return;
  }
  auto user = co_await db_->run(store::postgres::ensure_admin_user_blocking, std::string("default_user_id"));
  if (!user) {
    co_await resp.send(http::error_response(for_client(user.error(), "/login")));
    co_return;
  }
  co_await begin_session(req, resp, user->user_id, "password", form);
}

net::awaitable<void> sso_endpoints::begin_session(http::request& req, http::responder& resp, std::string user_id,
                                                  std::string provider, bool to_ui) {
  const std::string value = random_token();
  const std::string csrf = random_token();
  auto made = co_await db_->run(store::postgres::create_session_blocking, core::sha256_hex(value), user_id, csrf,
                                provider, s_.session_ttl);
  if (!made) {
    co_await resp.send(http::error_response(for_client(made.error(), "session")));
    co_return;
  }
  const std::string attrs = "; Path=/; Max-Age=" + std::to_string(s_.session_ttl.count()) + "; SameSite=Lax" +
                            (secure(req) ? "; Secure" : "");
  http::response r = to_ui ? redirect(base_url(req) + "/ui/", req.method == "POST" ? 303 : 302)
                           : json_response(200, {{"user_id", user_id}, {"csrf_token", csrf}, {"provider", provider}});
  r.headers.emplace_back("set-cookie", std::string(session_cookie) + "=" + value + attrs + "; HttpOnly");
  // Readable by the UI's script (double submit); the server compares it with the session's.
  r.headers.emplace_back("set-cookie", std::string(csrf_cookie) + "=" + csrf + attrs);
  r.headers.emplace_back("cache-control", "no-store");
  co_await resp.send(std::move(r));
}

net::awaitable<core::result<auth::principal>> sso_endpoints::session_principal(std::string cookie, std::string csrf,
                                                                               bool safe_method) {
  const auto value = auth::cookie_value(cookie, session_cookie);
  if (value.empty()) {
    co_return sso_error(401, "Authentication Error, no session: sign in at /sso/key/generate");
  }
  auto found = co_await db_->run(store::postgres::session_blocking, core::sha256_hex(value));
  if (!found) {
    co_return for_client(found.error(), "session");  // answered by the management API
  }
  if (!*found) {
    co_return sso_error(401, "Authentication Error, the session has ended or expired: sign in again");
  }
  const auto& s = **found;
  if (!safe_method && (csrf.empty() || !core::secure_equal(csrf, s.csrf_token))) {
    co_return sso_error(403, "Authentication Error, CSRF token missing or wrong: send the session's csrf_token in "
                             "the x-csrf-token header");
  }
  if (s_.admin_only && !is_admin_role(s.user.user_role)) {
    co_return sso_error(403, "Authentication Error, ui_access_mode is admin_only: role " + s.user.user_role +
                                 " may not use the UI");
  }
  auth::principal p;
  p.key_redacted = "session:" + s.user.user_id;
  auto k = std::make_shared<auth::virtual_key>();
  k->key_name = p.key_redacted;
  k->user_id = s.user.user_id;
  k->user_role = s.user.user_role;
  k->user_organization_id = s.user.organization_id;
  k->user.exists = true;
  p.vkey = std::move(k);
  co_return p;
}

net::awaitable<void> sso_endpoints::session_info(http::request& req, http::responder& resp) {
  const auto value = auth::cookie_value(req.header("cookie"), session_cookie);
  if (value.empty()) {
    // After a refused sign-in: its reason, once.
    const auto raw = auth::cookie_value(req.header("cookie"), signin_error_cookie);
    const auto refused = raw.empty() ? std::nullopt : core::base64url_decode(raw);
    auto r = http::error_response(sso_error(401, refused && !refused->empty()
                                                     ? *refused
                                                     : std::string("Authentication Error, no session: sign in at "
                                                                   "/sso/key/generate")));
    if (!raw.empty()) {
      r.headers.emplace_back("set-cookie", std::string(signin_error_cookie) + "=; Path=/sso/session; Max-Age=0");
    }
    co_await resp.send(std::move(r));
    co_return;
  }
  auto found = co_await db_->run(store::postgres::session_blocking, core::sha256_hex(value));
  if (!found) {
    co_await resp.send(http::error_response(for_client(found.error(), "/sso/session")));
    co_return;
  }
  if (!*found) {
    co_await resp.send(http::error_response(
        sso_error(401, "Authentication Error, the session has ended or expired: sign in again")));
    co_return;
  }
  const auto& s = **found;
  // Built before the co_await: GCC 12 miscompiles braced JSON with literals inside one.
  json body = json::object();
  body["user_id"] = s.user.user_id;
  body["user_role"] = s.user.user_role;
  body["user_email"] = s.user.email.empty() ? json() : json(s.user.email);
  body["organization_id"] = s.user.organization_id.empty() ? json() : json(s.user.organization_id);
  body["provider"] = s.provider;
  body["csrf_token"] = s.csrf_token;
  body["expires_at"] = s.expires_at;
  body["ui_access_mode"] = std::string(s_.admin_only ? "admin_only" : "all");
  auto r = json_response(200, body);
  co_await resp.send(std::move(r));
}

net::awaitable<void> sso_endpoints::logout(http::request& req, http::responder& resp) {
  std::string cookie(req.header("cookie"));
  std::string csrf(req.header("x-csrf-token"));
  const auto value = auth::cookie_value(cookie, session_cookie);
  auto who = co_await session_principal(std::move(cookie), std::move(csrf), false);
  if (!who && who.error().status != 403) {
    co_await resp.send(http::error_response(who.error()));
    co_return;
  }
  if (!who && who.error().message.find("CSRF") != std::string::npos) {
    co_await resp.send(http::error_response(who.error()));
    co_return;
  }
  auto ended = co_await db_->run(store::postgres::end_session_blocking, core::sha256_hex(value));
  if (!ended) {
    co_await resp.send(http::error_response(for_client(ended.error(), "/sso/logout")));
    co_return;
  }
  auto r = json_response(200, {{"message", "signed out"}});
  const std::string attrs = std::string("; Path=/; Max-Age=0; SameSite=Lax") + (secure(req) ? "; Secure" : "");
  r.headers.emplace_back("set-cookie", std::string(session_cookie) + "=" + attrs + "; HttpOnly");
  r.headers.emplace_back("set-cookie", std::string(csrf_cookie) + "=" + attrs);
  co_await resp.send(std::move(r));
}

}  // namespace switchyard::admin
