// OAuth2 access tokens for deployments that authenticate with one instead of a key:
// Vertex AI (a Google service account: a JWT signed RS256 with its private key, exchanged
// at its token_uri for an access token; the JWT-bearer grant) and Azure OpenAI with Entra
// ID (tenant_id, client_id, client_secret: the client-credentials grant; or a fixed
// azure_ad_token). See docs/architecture.md, "Tokens for providers".
//
// One token_source per distinct credential, shared by the deployments that use it. A
// request takes the held token without waiting; once the token is past its refresh point
// (well before it expires) one request starts a refresh in the background and keeps using
// the held token. Only a request that finds no valid token (the first one, or after a long
// idle) waits, for the one fetch in flight (single-flight); a fetch is bounded by a
// timeout, so it ends with a token or an error, never a hang. Adapters stay pure: the
// pipeline puts the token into build_options::bearer_token before build().
//
// Owner: the LLM pipeline. Thread: the loop thread (not thread-safe). Never blocks: a
// credentials file was read with the config (config::deployment::credentials).
#pragma once
#include "switchyard/config/config.hpp"
#include "switchyard/core/asio.hpp"
#include "switchyard/core/error.hpp"
#include "switchyard/pipeline/upstream_caller.hpp"

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace switchyard::pipeline {

// The fields of a Google service-account key (the JSON file from the Cloud console) that
// the JWT-bearer flow needs.
struct service_account {
  std::string client_email;
  std::string private_key;  // PEM (PKCS#8), as in the file
  std::string private_key_id;
  std::string token_uri;    // default https://oauth2.googleapis.com/token
  std::string project_id;
};
// 400-class error naming the missing field, or a key that is not an RSA private key.
core::result<service_account> parse_service_account(std::string_view json_text);

inline constexpr std::string_view cloud_platform_scope = "https://www.googleapis.com/auth/cloud-platform";

// The signed assertion: base64url(header).base64url(claims).base64url(RS256 signature),
// claims {iss: client_email, scope, aud: token_uri, iat: now, exp: now + 3600}.
core::result<std::string> google_jwt(const service_account& sa, long long now_unix,
                                     std::string_view scope = cloud_platform_scope);
// base64url without padding (RFC 7515).
std::string base64url(std::string_view bytes);
// application/x-www-form-urlencoded value.
std::string form_encode(std::string_view value);

struct access_token {
  std::string token;
  std::chrono::seconds lifetime{0};
};
// A token endpoint's answer ({"access_token", "expires_in"}, Google's and Microsoft's
// alike); a refusal ({"error", "error_description"}) becomes a 401 naming `who`.
core::result<access_token> parse_token_answer(int status, std::string_view body, std::string_view who);

class token_source {
 public:
  using clock = std::chrono::steady_clock;
  using now_fn = std::function<clock::time_point()>;
  // The token request for one fetch (a JWT is signed per fetch: it carries the time).
  using request_maker = std::function<core::result<upstream::request>()>;

  // A source that fetches: `who` names the credential in errors and logs.
  token_source(std::string who, request_maker make, upstream_caller& up, now_fn now);
  // A fixed token (azure_ad_token), or a fixed error (credentials that cannot be read).
  explicit token_source(std::string fixed_token);
  explicit token_source(core::error fixed_error);

  // The held token if it is still valid (starting a background refresh on `ex` when it is
  // past its refresh point); nullopt when the caller must wait (get()).
  std::optional<std::string> current(const net::any_io_executor& ex);
  // current(), else the result of the fetch in flight (starting one if none is).
  net::awaitable<core::result<std::string>> get();

  // Fetches started so far (tests).
  std::size_t fetches() const;

  struct state;  // shared with the fetch in flight, which may outlive a request

 private:
  std::shared_ptr<state> s_;
};

class token_broker {
 public:
  // Builds the sources of every deployment of `cfg` that needs one. `now` is injectable
  // for tests.
  token_broker(const config::config& cfg, upstream_caller& up, token_source::now_fn now = {});
  ~token_broker();
  token_broker(const token_broker&) = delete;
  token_broker& operator=(const token_broker&) = delete;

  // The deployment's source; nullptr when it authenticates otherwise (a key, or nothing).
  // Deployments the config did not list (wildcards) get theirs on first use.
  token_source* source_for(const config::deployment& d);

 private:
  std::shared_ptr<token_source> make_source(const config::deployment& d);

  upstream_caller& up_;
  token_source::now_fn now_;
  std::unordered_map<std::string, std::shared_ptr<token_source>> by_credential_;
  std::unordered_map<std::string, std::shared_ptr<token_source>> by_deployment_;  // null: none needed
};

}  // namespace switchyard::pipeline
