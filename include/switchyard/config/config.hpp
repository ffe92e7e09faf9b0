// LiteLLM config.yaml -> immutable typed structs, shared as shared_ptr<const config>.
// Owner: app/ loads it once at startup (and on reload) and hands it to every stage.
// Thread: any; the structs are immutable after load. Loading reads files (blocking):
// call it only at startup or through run_blocking.
// config/ is the only module that uses yaml-cpp.
#pragma once
#include "switchyard/config/provider_registry.hpp"
#include "switchyard/core/reset_schedule.hpp"

#include <nlohmann/json.hpp>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace switchyard::config {

// ssl_verify (litellm_settings, or a deployment's litellm_params): how an https upstream's
// certificate is checked. verify false: not at all; a CA bundle: against that bundle only
// (as httpx's verify=<path>); neither: against the system trust store.
struct tls_trust {
  bool verify = true;
  std::string ca_bundle;
  bool operator==(const tls_trust&) const = default;
};

// A model's capability flags as LiteLLM's price map writes them (supports_function_calling,
// supports_system_messages, supports_none_reasoning_effort, ...): name -> value.
using capability_flags = std::map<std::string, bool, std::less<>>;

// One entry of model_list.
struct deployment {
  std::string model_name;    // the public group name clients send
  std::string id;            // model_info.id, else a stable hash of litellm_params
  std::string model;         // litellm_params.model as written, e.g. "openai/gpt-4o"
  // The provider's descriptor (a registry entry, never null; a pointer keeps the
  // deployment cheap to copy and every per-request lookup a field read).
  const provider_info* provider = &provider_for_bare_names();
  std::string upstream_model;  // model without its provider prefix, e.g. "gpt-4o"
  std::string api_base;      // empty -> provider->default_api_base (e.g. https://api.openai.com/v1)
  std::string api_key;       // resolved secret (else the provider's api_key_env); never logged
  std::string api_version;
  std::string organization;
  std::map<std::string, std::string> extra_headers;
  std::optional<double> timeout;         // seconds per attempt
  std::optional<double> stream_timeout;  // seconds between stream chunks
  std::optional<std::string> mock_response;
  std::optional<double> rpm, tpm, weight;
  std::optional<int> order;
  std::optional<int> max_parallel_requests;
  std::optional<double> cooldown_time;
  // Request parameters the deployment sets (litellm_params temperature, max_tokens, stop,
  // response_format, reasoning_effort, num_ctx, keep_alive, ... and the members of
  // extra_body): sent upstream when the request does not set them (the request wins, as in
  // LiteLLM, whose router spreads the client's kwargs over the deployment's params).
  nlohmann::json request_defaults = nlohmann::json::object();
  // Request parameters removed before the call: litellm_params.additional_drop_params,
  // litellm_settings.additional_drop_params and a drop_params written as a list.
  std::vector<std::string> drop_param_names;
  std::vector<std::string> tags;  // litellm_params.tags (tag routing)
  std::optional<tls_trust> ssl_verify;  // litellm_params.ssl_verify; unset: litellm_settings'

  // The credentials file the deployment names (Vertex AI: vertex_credentials given as a
  // path, else GOOGLE_APPLICATION_CREDENTIALS), read when the config is loaded: loads run
  // off the event loop (a reload on its own thread), so building the deployment's token
  // source on the loop reads no file. Unset: the deployment names no file.
  struct credentials_file {
    std::string path;
    std::string text;   // the file's contents
    std::string error;  // why it could not be read (then `text` is empty)
  };
  std::optional<credentials_file> credentials;

  nlohmann::json litellm_params;  // every param as resolved (os.environ/ substituted)
  nlohmann::json model_info;      // model_info as resolved (object, maybe empty)
  std::string origin;  // "<file>:<line>" of the model_list entry, for messages
};

// The most retries one request makes, whatever asks for more (a request's num_retries,
// router_settings / litellm_settings num_retries, a retry policy): each retry is another
// provider call, so an unbounded count let one request turn into thousands of calls.
// LiteLLM sets no bound; a config value above it is used as this, with a startup warning.
inline constexpr int max_num_retries = 10;

struct router_settings {
  std::string routing_strategy = "simple-shuffle";
  std::optional<int> num_retries;
  std::optional<double> timeout;
  std::optional<double> stream_timeout;
  std::optional<double> cooldown_time;
  std::optional<int> allowed_fails;
  std::string redis_host, redis_password, redis_url;
  std::optional<int> redis_port;
  nlohmann::json model_group_alias = nlohmann::json::object();
  // Tag routing: with enable_tag_filtering, a request's tags (body `tags` or
  // metadata.tags) pick the deployments whose litellm_params.tags match (any of them, or
  // all with tag_filtering_match_any: false); "default"-tagged deployments take the rest.
  bool enable_tag_filtering = false;
  bool tag_filtering_match_any = true;
  // A deployment that does not load (unknown provider, bad value) is skipped with a
  // warning instead of stopping the start.
  bool ignore_invalid_deployments = false;
  // {group: retry_policy}: the retry policy of one model group, over retry_policy.
  nlohmann::json model_group_retry_policy = nlohmann::json::object();
  nlohmann::json raw = nlohmann::json::object();  // the whole section, for later stages
};

struct cache_params {
  std::string type;  // "redis", "local", ...
  std::string host, password, url, namespace_;
  std::optional<int> port;
  std::optional<double> ttl;
  std::optional<double> default_in_memory_ttl;  // seconds
  std::optional<double> default_in_redis_ttl;   // seconds
  std::optional<double> socket_timeout;         // seconds (redis-py's), the cache's Redis lookups
  std::string mode;  // "default_on" (also when empty) or "default_off"
  std::optional<std::vector<std::string>> supported_call_types;  // unset: every type
  std::optional<int> max_connections;
};

struct litellm_settings {
  bool drop_params = false;
  // additional_drop_params, and drop_params written as a list of names: removed from
  // every request (copied into each deployment's drop_param_names).
  std::vector<std::string> additional_drop_params;
  bool json_logs = false;
  std::optional<int> num_retries;
  std::optional<double> request_timeout;  // seconds; LiteLLM default 6000
  bool cache = false;
  cache_params cache_params_;
  // Budgets (docs/budgets.md). max_budget + budget_duration: the whole proxy's budget
  // (LiteLLM's user "litellm-proxy-budget"); max_end_user_budget: the default of end users
  // without a budget of their own; timezone: where reset boundaries (midnight, the 1st)
  // fall, UTC by default (an unknown zone is a config error).
  std::optional<double> max_budget;
  std::string budget_duration;  // "" none; else valid (core::parse_budget_duration)
  std::optional<double> max_end_user_budget;
  std::string timezone;
  std::optional<tls_trust> ssl_verify;  // every https upstream without its own
  core::time_zone budget_tz = core::time_zone::utc();
  nlohmann::json raw = nlohmann::json::object();
};

struct general_settings {
  std::string master_key;  // also LITELLM_MASTER_KEY / SWITCHYARD_MASTER_KEY
  std::string database_url;  // also DATABASE_URL
  std::optional<double> max_request_size_mb;
  std::optional<double> max_response_size_mb;
  bool allow_requests_on_db_unavailable = false;
  int database_connection_pool_limit = 10;
  // LiteLLM's "timeout for database connections" (s); here libpq's connect_timeout.
  std::optional<double> database_connection_timeout;
  // Spend log (docs/spend.md): no spend_logs rows, but the running totals and daily
  // rollups are still kept.
  bool disable_spend_logs = false;
  // The request's messages and the answer are stored in the spend row (bounded).
  bool store_prompts_in_spend_logs = false;
  // Access rules (docs/configuration.md, "Access rules"): route patterns non-admins may
  // call (empty: all), routes only admins may call, client addresses (IP or CIDR) served.
  std::vector<std::string> allowed_routes;
  std::vector<std::string> admin_only_routes;
  std::vector<std::string> allowed_ips;
  // Routes served without a key (information routes only; config::public_route_allowed).
  std::vector<std::string> public_routes;
  // The client's x-* and anthropic-beta headers go to the provider (never credentials).
  bool forward_client_headers_to_llm_api = false;
  // CORS (docs/configuration.md, "CORS"): off while the list is empty.
  std::vector<std::string> cors_allow_origins;
  bool cors_allow_credentials = false;
  // HTTPS listener (as LiteLLM's --ssl_certfile_path / --ssl_keyfile_path, which win).
  std::string ssl_certfile_path;
  std::string ssl_keyfile_path;
  // Models added with /model/new live in Postgres and are merged with model_list
  // (docs/configuration.md, "Models in the database"); also STORE_MODEL_IN_DB=True.
  bool store_model_in_db = false;
  nlohmann::json raw = nlohmann::json::object();
};

// Redis connection as resolved from router_settings, cache_params and REDIS_* env.
// Order: router_settings (redis_url, else redis_host/redis_port/redis_password/redis_db),
// else litellm_settings.cache_params when its type is empty or redis* (url, else
// host/port/password/db), else the env
// (REDIS_URL, else REDIS_HOST/REDIS_PORT/REDIS_PASSWORD). Within one source a URL wins;
// an explicit password fills in when the URL has none.
struct redis_endpoint {
  std::string host;  // empty: no Redis configured
  int port = 6379;
  std::string password;
  std::string username;  // from a URL's user part (Redis 6 ACL), usually empty
  int db = 0;            // URL path /N, redis_db, cache_params.db
  bool tls = false;      // rediss:// URL, cache_params.ssl: true, or REDIS_SSL=true
  bool tls_verify = true;          // false: ssl_cert_reqs none (REDIS_SSL_CERT_REQS)
  bool tls_check_hostname = true;  // false: ssl_check_hostname false
  std::string tls_ca_file;         // ssl_ca_certs (REDIS_SSL_CA_CERTS); empty: the system store
  std::string source;    // e.g. "router_settings", "litellm_settings.cache_params", "env REDIS_URL"
};

// The response cache as resolved from litellm_settings.cache / cache_params and the env
// (docs/cache.md). `enabled` is false when caching is off or its type is not supported
// (one warning in config::warnings says so).
struct cache_settings {
  bool enabled = false;
  bool use_redis = false;  // type redis: a memory tier in front of Redis; false: memory only
  redis_endpoint redis;    // the cache's Redis (its own from cache_params, else the shared one)
  std::string namespace_;  // keys become "<namespace>:<hash>"
  double ttl_s = 600;      // write TTL unless the request sets one
  // Type redis with default_in_memory_ttl: how long the memory tier keeps a copy at most
  // (0: as long as the entry lives).
  double memory_max_ttl_s = 0;
  std::optional<double> redis_timeout_s;  // cache_params.socket_timeout: a lookup's wait on Redis
  bool default_on = true;  // false (mode default_off): only requests with cache.use-cache: true
  bool chat = true, completion = true, embedding = true;  // supported_call_types
};

struct config {
  std::string path;  // the file it was loaded from
  std::vector<deployment> model_list;
  router_settings router;
  litellm_settings litellm;
  general_settings general;
  redis_endpoint redis;
  cache_settings cache;
  std::vector<std::string> warnings;  // unknown keys etc., one message each
  // Keys the config uses that the gateway recognises but does not act on, each with
  // what happens instead; main() prints them as one warning (and --check-config one per
  // line). Listed once per key path (model_list indexes folded to model_list[]).
  struct unsupported_key {
    std::string key;     // e.g. "litellm_settings.success_callback", "model_list[].litellm_params.max_retries"
    std::string note;    // what happens instead
    std::string origin;  // "<file>:<line>" of the first use
  };
  std::vector<unsupported_key> unsupported;
  std::vector<std::string> files;     // every file read: `path` first, then includes in load order
  // Each of those files' path, a NUL and its bytes, as parsed: the config's version is
  // their hash (never the files read again: they may have changed since).
  std::string loaded_bytes;
  std::map<std::string, std::string> environment_variables;  // as exported (values are secrets)
  // The top-level callback_settings section (named callbacks' settings, e.g. a generic_api
  // endpoint and headers), os.environ/ resolved; an empty object when absent.
  nlohmann::json callback_settings = nlohmann::json::object();

  // Model names in model_list order, deduplicated.
  std::vector<std::string> model_names() const;
};

// A config error: reported as "<file>:<line>: <key>: <message>", exit code 2.
// Lines are 1-based; line 0 means the error has no line (a missing top-level file, a
// value from the process environment, whose "file" is "environment"): then what() is
// "<file>: <key>: <message>". `key` is a path such as model_list[0].litellm_params.rpm
// (the index counts entries within that file), "yaml" for syntax errors, "config" for
// an unreadable top-level file. Warnings in config::warnings use the same format.
class config_error : public std::runtime_error {
 public:
  config_error(std::string file, int line, std::string key, std::string message);
  const std::string& file() const { return file_; }
  int line() const { return line_; }
  const std::string& key() const { return key_; }
  const std::string& detail() const { return detail_; }

 private:
  std::string file_;
  int line_;
  std::string key_;
  std::string detail_;
};

// Looks up environment variables; tests pass their own.
using env_lookup = std::function<std::optional<std::string>(const std::string&)>;
env_lookup process_env();

// The price table's `litellm_provider` of a model name without a prefix (e.g.
// "claude-3-5-haiku-latest" -> "anthropic"), or empty when it has none. app/ passes the
// loaded price table's lookup (config/ does not depend on spend/).
using model_provider_lookup = std::function<std::string(std::string_view model)>;

// A deployment kept in Postgres (store_model_in_db): litellm_params as stored, secrets
// already decrypted, os.environ/ references still references (the loader resolves them).
struct db_model {
  std::string id;  // model_id
  std::string model_name;
  nlohmann::json litellm_params = nlohmann::json::object();
  nlohmann::json model_info = nlohmann::json::object();
  bool operator==(const db_model&) const = default;
};

// Reads the credentials file `d` names (see deployment::credentials), if any:
// litellm_params.vertex_credentials as a path, else `google_application_credentials` (the
// GOOGLE_APPLICATION_CREDENTIALS value, null or empty: none) for a Vertex AI deployment.
// Blocking: call it where the config is loaded, never on the event loop.
void read_credentials_file(deployment& d, const char* google_application_credentials);

// litellm_params keys whose values are credentials: never shown (/model/info, /model/new's
// answer) and encrypted when stored. Header maps (headers, extra_headers) are handled
// apart: their names are shown, their values are secrets.
bool is_secret_param(std::string_view key);
bool is_header_param(std::string_view key);

struct load_options {
  env_lookup env;                  // empty: process_env()
  // Places models written without a prefix (empty: every such model is openai).
  model_provider_lookup bare_model_provider;
  bool export_environment = true;  // setenv() each environment_variables entry (overwrites)
  // Deployments from Postgres, appended after model_list with the same checks. One that
  // does not load, or whose id a model_list entry already uses (the config wins), is
  // skipped with a warning (origin "database", key "db_model[<id>]"); only the one named
  // by `strict_db_model` throws instead (how /model/new and /model/update check a model).
  std::vector<db_model> db_models;
  std::string strict_db_model;
};

// Reads and validates `path` (and its `include`s). Blocking (file I/O).
// Applies `environment_variables` (setenv) first, resolves os.environ/VAR everywhere,
// then the env fallbacks: LITELLM_MASTER_KEY / SWITCHYARD_MASTER_KEY, DATABASE_URL,
// REDIS_HOST / REDIS_PORT / REDIS_PASSWORD / REDIS_URL, and a deployment's key from its
// provider's variable (provider_info::api_key_env) when it has no api_key.
// Throws config_error.
std::shared_ptr<const config> load_config_blocking(const std::string& path, const env_lookup& env = process_env());
// One line listing config::unsupported (empty if none), for the startup warning.
std::string unsupported_summary(const config& c);
// Whether the gateway acts on `key` of general_settings or litellm_settings (`section`
// names which, as in the file): false for a key it does not know and for one it reports as
// recognised but not supported, whatever its value. A reload uses it: such a key never
// applies, so a change to it does not wait for a restart either.
bool is_acted_on_setting(std::string_view section, std::string_view key);
// As above; `environment_variables` are always visible to os.environ/ and the env
// fallbacks, and also exported with setenv() when options.export_environment (not
// thread-safe: call before other threads start). Messages never contain secret values.
std::shared_ptr<const config> load_config_blocking(const std::string& path, const load_options& options);

}  // namespace switchyard::config
