#include "switchyard/pipeline/token_broker.hpp"

#include "switchyard/core/ids.hpp"
#include "switchyard/core/json_get.hpp"
#include "switchyard/core/jwt.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <ctime>

namespace switchyard::pipeline {

using json = nlohmann::json;

namespace {

constexpr std::string_view default_google_token_uri = "https://oauth2.googleapis.com/token";
constexpr std::string_view default_entra_authority = "https://login.microsoftonline.com";
constexpr std::string_view cognitive_services_scope = "https://cognitiveservices.azure.com/.default";
// A token fetch never takes longer than this: the waiting requests then get an error.
constexpr std::chrono::seconds fetch_timeout{30};

core::error credential_error(std::string message) {
  return core::make_error(core::errc::unauthorized, std::move(message));
}

}  // namespace

// ---- pure parts ---------------------------------------------------------------------

std::string base64url(std::string_view bytes) { return core::base64url_encode(bytes); }

std::string form_encode(std::string_view value) { return core::percent_encode(value); }

core::result<service_account> parse_service_account(std::string_view json_text) {
  json j = json::parse(json_text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return credential_error("vertex_credentials is not a JSON object (a service account key file)");
  }
  if (auto type = core::string_or(j, "type"); !type.empty() && type != "service_account") {
    return credential_error("vertex_credentials of type '" + type +
                            "' are not supported: give a service account key (type service_account)");
  }
  service_account sa;
  sa.client_email = core::string_or(j, "client_email");
  sa.private_key = core::string_or(j, "private_key");
  sa.private_key_id = core::string_or(j, "private_key_id");
  sa.token_uri = core::string_or(j, "token_uri");
  sa.project_id = core::string_or(j, "project_id");
  if (sa.token_uri.empty()) {
    sa.token_uri = default_google_token_uri;
  }
  if (sa.client_email.empty() || sa.private_key.empty()) {
    return credential_error("vertex_credentials needs client_email and private_key (a service account key)");
  }
  if (!core::is_rsa_private_key_pem(sa.private_key)) {
    return credential_error("the private_key of vertex_credentials is not a PEM RSA private key");
  }
  return sa;
}

core::result<std::string> google_jwt(const service_account& sa, long long now_unix, std::string_view scope) {
  json header = {{"alg", "RS256"}, {"typ", "JWT"}};
  if (!sa.private_key_id.empty()) {
    header["kid"] = sa.private_key_id;
  }
  json claims = {{"iss", sa.client_email},
                 {"scope", scope},
                 {"aud", sa.token_uri},
                 {"iat", now_unix},
                 {"exp", now_unix + 3600}};
  std::string signing_input = base64url(header.dump()) + "." + base64url(claims.dump());
  auto sig = core::rs256_sign(sa.private_key, signing_input);
  if (!sig) {
    return credential_error("the service account's private_key could not be read");
  }
  return signing_input + "." + base64url(*sig);
}

core::result<access_token> parse_token_answer(int status, std::string_view body, std::string_view who) {
  json j = json::parse(body, nullptr, false);
  if (status >= 200 && status < 300 && j.is_object()) {
    access_token t;
    t.token = core::string_or(j, "access_token");
    long long lifetime = 3600;
    if (auto e = j.find("expires_in"); e != j.end()) {
      if (e->is_number()) {
        lifetime = core::count_or(j, "expires_in");  // 1e300 is a bound, not an undefined conversion
      } else if (e->is_string()) {
        lifetime = std::atoll(e->get<std::string>().c_str());
      }
    }
    if (!t.token.empty() && lifetime > 0) {
      t.lifetime = std::chrono::seconds(std::min(lifetime, 86'400LL));
      return t;
    }
    return core::make_error(core::errc::upstream_error,
                            std::string(who) + ": the token endpoint's answer has no access_token or expires_in");
  }
  std::string why = core::string_or(j, "error");
  if (auto d = core::string_or(j, "error_description"); !d.empty()) {
    why += (why.empty() ? "" : ": ") + d;
  }
  if (why.empty()) {
    why = std::string(body.substr(0, 500));
  }
  if (status >= 400 && status < 500) {
    return credential_error(std::string(who) + ": the token endpoint refused the credentials (HTTP " +
                            std::to_string(status) + "): " + why);
  }
  return core::upstream_status_error(status >= 500 ? status : 502, std::string(who) +
                                                                       ": the token endpoint failed (HTTP " +
                                                                       std::to_string(status) + "): " + why);
}

// ---- token_source -------------------------------------------------------------------

struct token_source::state {
  std::string who;
  request_maker make;
  upstream_caller* up = nullptr;
  now_fn now;
  std::optional<core::error> fixed_error;
  bool fixed = false;

  std::string token;
  clock::time_point usable_until{};  // a little before it expires
  clock::time_point refresh_at{};

  struct flight {
    explicit flight(const net::any_io_executor& ex) : done(ex, clock::time_point::max()) {}
    net::steady_timer done;
    std::optional<core::result<std::string>> out;
  };
  std::shared_ptr<flight> in_flight;
  std::size_t fetches = 0;
};

token_source::token_source(std::string who, request_maker make, upstream_caller& up, now_fn now)
    : s_(std::make_shared<state>()) {
  s_->who = std::move(who);
  s_->make = std::move(make);
  s_->up = &up;
  s_->now = now ? std::move(now) : now_fn([] { return clock::now(); });
}

token_source::token_source(std::string fixed_token) : s_(std::make_shared<state>()) {
  s_->fixed = true;
  s_->token = std::move(fixed_token);
}

token_source::token_source(core::error fixed_error) : s_(std::make_shared<state>()) {
  s_->fixed = true;
  s_->fixed_error = std::move(fixed_error);
}

std::size_t token_source::fetches() const { return s_->fetches; }

namespace {

net::awaitable<void> fetch(std::shared_ptr<token_source::state> s, std::shared_ptr<token_source::state::flight> f) {
  core::result<std::string> out = core::make_error(core::errc::internal, "token fetch did not run");
  auto req = s->make();
  if (!req) {
    out = req.error();
  } else {
    req->timeout = fetch_timeout;
    req->connect_timeout = std::min(req->connect_timeout, std::chrono::milliseconds(fetch_timeout));
    const auto asked = s->now();
    auto r = co_await s->up->send(std::move(*req));
    if (!r) {
      out = core::make_error(core::errc::upstream_unreachable,
                             s->who + ": the token endpoint could not be reached: " + r.error().message);
    } else if (auto t = parse_token_answer(r->status, r->body, s->who); !t) {
      out = t.error();
    } else {
      // Usable until shortly before it expires (a request in flight must not carry an
      // expired token); refreshed in the background from 3/4 of its life on, or 5 minutes
      // before expiry when that comes later.
      using dur = token_source::clock::duration;
      const dur life = t->lifetime;
      const dur margin = std::min<dur>(std::chrono::seconds(30), life / 10);
      const dur lead = std::max<dur>(life / 4, std::min<dur>(std::chrono::minutes(5), life / 2));
      s->token = t->token;
      s->usable_until = asked + life - margin;
      s->refresh_at = asked + life - lead;
      out = t->token;
    }
  }
  if (!out) {
    spdlog::warn("token fetch failed: {}", out.error().message);
  }
  if (s->in_flight == f) {
    s->in_flight.reset();
  }
  f->out = std::move(out);
  f->done.cancel();
}

std::shared_ptr<token_source::state::flight> start(const std::shared_ptr<token_source::state>& s,
                                                   const net::any_io_executor& ex) {
  auto f = std::make_shared<token_source::state::flight>(ex);
  s->in_flight = f;
  ++s->fetches;
  net::co_spawn(ex, fetch(s, f), [f](std::exception_ptr e) {
    if (e && !f->out) {
      f->out = core::make_error(core::errc::internal, "token fetch failed");
      f->done.cancel();
    }
  });
  return f;
}

}  // namespace

std::optional<std::string> token_source::current(const net::any_io_executor& ex) {
  auto& s = *s_;
  if (s.fixed) {
    if (s.fixed_error) {
      return std::nullopt;
    }
    return s.token;
  }
  if (s.token.empty()) {
    return std::nullopt;
  }
  const auto now = s.now();
  if (now >= s.usable_until) {
    return std::nullopt;
  }
  if (now >= s.refresh_at && !s.in_flight) {
    start(s_, ex);  // off the request's path: this request keeps the held token
  }
  return s.token;
}

net::awaitable<core::result<std::string>> token_source::get() {
  auto ex = co_await net::this_coro::executor;
  if (s_->fixed_error) {
    co_return *s_->fixed_error;
  }
  if (auto t = current(ex)) {
    co_return std::move(*t);
  }
  auto f = s_->in_flight ? s_->in_flight : start(s_, ex);
  if (!f->out) {
    co_await f->done.async_wait(net::as_tuple(net::use_awaitable));
  }
  if (!f->out) {
    co_return core::make_error(core::errc::internal, s_->who + ": the token fetch was abandoned");
  }
  co_return *f->out;
}

// ---- token_broker -------------------------------------------------------------------

namespace {

std::string param(const config::deployment& d, std::string_view key) { return core::string_or(d.litellm_params, key); }

bool wants_token(const config::deployment& d) {
  if (d.provider->wire == config::wire_format::vertex) {
    return true;
  }
  if (d.provider->wire == config::wire_format::azure) {
    return !param(d, "azure_ad_token").empty() || !param(d, "tenant_id").empty();
  }
  return false;
}

}  // namespace

token_broker::token_broker(const config::config& cfg, upstream_caller& up, token_source::now_fn now)
    : up_(up), now_(std::move(now)) {
  for (const auto& d : cfg.model_list) {
    (void)source_for(d);
  }
}

token_broker::~token_broker() = default;

token_source* token_broker::source_for(const config::deployment& d) {
  if (d.provider->wire != config::wire_format::vertex && d.provider->wire != config::wire_format::azure) {
    return nullptr;
  }
  if (auto it = by_deployment_.find(d.id); it != by_deployment_.end()) {
    return it->second.get();
  }
  auto src = wants_token(d) ? make_source(d) : nullptr;
  auto* raw = src.get();
  by_deployment_.emplace(d.id, std::move(src));
  return raw;
}

std::shared_ptr<token_source> token_broker::make_source(const config::deployment& d) {
  const std::string label(d.provider->exception_label);
  auto fixed_error = [&](std::string message) {
    spdlog::error("{} ({}): {}", d.model_name, d.origin, message);
    return std::make_shared<token_source>(credential_error(label + " - " + message));
  };
  if (d.provider->wire == config::wire_format::azure) {
    if (auto t = param(d, "azure_ad_token"); !t.empty()) {
      return std::make_shared<token_source>(std::move(t));
    }
    const std::string tenant = param(d, "tenant_id");
    const std::string client_id = param(d, "client_id");
    const std::string secret = param(d, "client_secret");
    if (client_id.empty() || secret.empty()) {
      return fixed_error("Entra ID needs tenant_id, client_id and client_secret");
    }
    const char* host = std::getenv("AZURE_AUTHORITY_HOST");
    std::string authority = host != nullptr && *host != '\0' ? host : std::string(default_entra_authority);
    while (!authority.empty() && authority.back() == '/') {
      authority.pop_back();
    }
    std::string scope = param(d, "azure_scope");
    if (scope.empty()) {
      scope = cognitive_services_scope;
    }
    std::string key = "entra\n" + authority + "\n" + tenant + "\n" + client_id + "\n" + secret + "\n" + scope;
    if (auto it = by_credential_.find(key); it != by_credential_.end()) {
      return it->second;
    }
    std::string url = authority + "/" + tenant + "/oauth2/v2.0/token";
    std::string body = "grant_type=client_credentials&client_id=" + form_encode(client_id) +
                       "&client_secret=" + form_encode(secret) + "&scope=" + form_encode(scope);
    auto make = [url, body]() -> core::result<upstream::request> {
      upstream::request r;
      r.url = url;
      r.headers = {{"content-type", "application/x-www-form-urlencoded"}, {"accept", "application/json"}};
      r.body = body;
      return r;
    };
    auto src = std::make_shared<token_source>(label + " - Entra ID token for client " + client_id, std::move(make),
                                              up_, now_);
    by_credential_.emplace(std::move(key), src);
    return src;
  }
  // Vertex AI: vertex_credentials (a JSON object, JSON text, or a file path), else
  // GOOGLE_APPLICATION_CREDENTIALS (a file path), as Google's client libraries read it.
  // Files were read with the config (deployment::credentials): this runs on the event loop.
  std::string text;
  std::string error;
  if (d.credentials) {
    text = d.credentials->text;
    error = d.credentials->error;
  } else if (auto it = d.litellm_params.find("vertex_credentials"); it != d.litellm_params.end() && !it->is_null()) {
    if (it->is_object()) {
      text = it->dump();
    } else if (it->is_string()) {
      const auto& s = it->get_ref<const std::string&>();
      const auto first = s.find_first_not_of(" \t\r\n");
      if (first != std::string::npos && s[first] == '{') {
        text = s;
      } else {
        error = "the credentials file '" + s + "' was not read with the config";
      }
    } else {
      error = "vertex_credentials must be a service account key (JSON) or the path of its file";
    }
  } else if (!d.api_key.empty()) {
    return nullptr;  // Vertex's API-key mode: the adapter sends the key
  } else {
    error = "no credentials: set vertex_credentials (a service account key) or GOOGLE_APPLICATION_CREDENTIALS";
  }
  if (!error.empty()) {
    return fixed_error(error);
  }
  auto sa = parse_service_account(text);
  if (!sa) {
    return fixed_error(sa.error().message);
  }
  std::string key = "google\n" + sa->client_email + "\n" + sa->token_uri + "\n" + core::sha256_hex(sa->private_key);
  if (auto it = by_credential_.find(key); it != by_credential_.end()) {
    return it->second;
  }
  auto make = [sa = *sa]() -> core::result<upstream::request> {
    auto jwt = google_jwt(sa, static_cast<long long>(std::time(nullptr)));
    if (!jwt) {
      return jwt.error();
    }
    upstream::request r;
    r.url = sa.token_uri;
    r.headers = {{"content-type", "application/x-www-form-urlencoded"}, {"accept", "application/json"}};
    r.body = "grant_type=" + form_encode("urn:ietf:params:oauth:grant-type:jwt-bearer") + "&assertion=" + *jwt;
    return r;
  };
  auto src = std::make_shared<token_source>(label + " - service account " + sa->client_email, std::move(make), up_,
                                            now_);
  by_credential_.emplace(std::move(key), src);
  return src;
}

}  // namespace switchyard::pipeline
