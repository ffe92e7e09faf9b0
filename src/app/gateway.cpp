#include "switchyard/app/gateway.hpp"
#include "switchyard/core/seconds.hpp"
#include "switchyard/core/file.hpp"
#include "switchyard/core/hex.hpp"

#include "switchyard/admin/db_models.hpp"
#include "switchyard/admin/health.hpp"
#include "switchyard/admin/management.hpp"
#include "switchyard/admin/sso.hpp"
#include "switchyard/admin/ui_assets.hpp"
#include "switchyard/admin/routes.hpp"
#include "switchyard/app/key_lookup.hpp"
#include "switchyard/auth/authenticator.hpp"
#include "switchyard/auth/jwt_auth.hpp"
#include <stdexcept>
#include "switchyard/auth/key_auth.hpp"
#include "switchyard/auth/end_user_cache.hpp"
#include "switchyard/auth/key_invalidation.hpp"
#include "switchyard/core/route_groups.hpp"
#include "switchyard/core/ids.hpp"
#include "switchyard/core/log.hpp"
#include "switchyard/http/cors.hpp"
#include "switchyard/http/server.hpp"
#include "switchyard/cache/response_cache.hpp"
#include "switchyard/limits/engine.hpp"
#include "switchyard/pipeline/cache_stage.hpp"
#include "switchyard/pipeline/limits_stage.hpp"
#include "switchyard/metrics/group.hpp"
#include "switchyard/metrics/loop_lag.hpp"
#include "switchyard/metrics/registry.hpp"
#include "switchyard/pipeline/health_checker.hpp"
#include "switchyard/pipeline/llm_pipeline.hpp"
#include "switchyard/pipeline/metrics_observer.hpp"
#include "switchyard/pipeline/alerting.hpp"
#include "switchyard/pipeline/callbacks.hpp"
#include "switchyard/pipeline/responses_api.hpp"
#include "switchyard/pipeline/spend_observer.hpp"
#include "switchyard/providers/capabilities.hpp"
#include "switchyard/spend/cost_logger.hpp"
#include "switchyard/spend/pg_sink.hpp"
#include "switchyard/spend/pricer.hpp"
#include "switchyard/router/redis_cooldown_sync.hpp"
#include "switchyard/router/router.hpp"
#include "switchyard/store/postgres/budget_repo.hpp"
#include "switchyard/store/postgres/db_executor.hpp"
#include "switchyard/store/postgres/migrations.hpp"
#include "switchyard/store/postgres/model_repo.hpp"
#include "switchyard/store/postgres/spend_repo.hpp"
#include "switchyard/store/redis/redis_client.hpp"
#include "switchyard/upstream/client.hpp"

#include <pqxx/pqxx>
#include <signal.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <ctime>
#include <map>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>

namespace switchyard::app {

namespace {

std::chrono::milliseconds env_ms(const char* name, std::chrono::milliseconds fallback) {
  if (const char* v = std::getenv(name); v != nullptr && *v != '\0') {
    try {
      return std::chrono::milliseconds(std::stoll(v));
    } catch (...) {
      spdlog::warn("ignoring {}='{}': not a number of milliseconds", name, v);
    }
  }
  return fallback;
}

// The path routes are matched on: percent-decoded, as Starlette gives LiteLLM's routes
// (`/v1/models/my%20model`, `/openai/deployments/gpt%2D4o/...`), without the trailing
// slashes. `+` stays a plus (that is a query's spelling of a space), and %00 is kept as
// written: no route or model name holds a NUL.
std::string normalize_path(std::string p) {
  if (p.find('%') != std::string::npos) {
    const auto hex = core::hex_value;
    std::string out;
    out.reserve(p.size());
    for (std::size_t i = 0; i < p.size(); ++i) {
      if (p[i] == '%' && i + 2 < p.size() && hex(p[i + 1]) >= 0 && hex(p[i + 2]) >= 0) {
        const char c = static_cast<char>(hex(p[i + 1]) * 16 + hex(p[i + 2]));
        if (c != '\0') {
          out += c;
          i += 2;
          continue;
        }
      }
      out += p[i];
    }
    p = std::move(out);
  }
  while (p.size() > 1 && p.back() == '/') {
    p.pop_back();
  }
  return p;
}

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

// Model access groups (model_info.access_groups) -> the model names in each.
auth::access_groups access_groups_of(const config::config& cfg) {
  auth::access_groups out;
  for (const auto& d : cfg.model_list) {
    auto it = d.model_info.is_object() ? d.model_info.find("access_groups") : d.model_info.end();
    if (it == d.model_info.end() || !it->is_array()) {
      continue;
    }
    for (const auto& g : *it) {
      if (!g.is_string()) {
        continue;
      }
      auto& names = out[g.get<std::string>()];
      if (std::find(names.begin(), names.end(), d.model_name) == names.end()) {
        names.push_back(d.model_name);
      }
    }
  }
  return out;
}

// Where the SQL migrations are: SWITCHYARD_MIGRATIONS_DIR, else ./migrations, else the
// source tree this binary was built from.
std::string migrations_dir() {
  if (const char* v = std::getenv("SWITCHYARD_MIGRATIONS_DIR"); v != nullptr && *v != '\0') {
    return v;
  }
  std::error_code ec;
  if (std::filesystem::is_directory("migrations", ec)) {
    return "migrations";
  }
  return SWITCHYARD_SOURCE_MIGRATIONS;
}

// Where the admin UI's files are: SWITCHYARD_UI_DIR, else ./ui (the container's /app/ui),
// else the source tree this binary was built from.
std::string ui_dir() {
  if (const char* v = std::getenv("SWITCHYARD_UI_DIR"); v != nullptr && *v != '\0') {
    return v;
  }
  std::error_code ec;
  if (std::filesystem::is_regular_file("ui/index.html", ec)) {
    return "ui";
  }
  return SWITCHYARD_SOURCE_UI;
}

admin::ui_assets load_ui() {
  auto ui = admin::ui_assets::load(ui_dir());
  if (ui.loaded()) {
    spdlog::info("admin UI at /ui/ from {} ({} assets)", ui.dir(), ui.asset_count());
  } else {
    spdlog::warn("admin UI: {}; /ui answers 404", ui.problem());
  }
  return ui;
}

// /v1/responses/{id} and /v1/responses/{id}/cancel (also without /v1); id empty: neither.
struct response_path {
  std::string id;
  bool cancel = false;
};
response_path response_route(std::string_view path) {
  if (starts_with(path, "/v1/")) {
    path.remove_prefix(3);
  }
  if (!starts_with(path, "/responses/")) {
    return {};
  }
  path.remove_prefix(11);
  response_path r;
  if (auto slash = path.find('/'); slash != std::string_view::npos) {
    if (path.substr(slash) != "/cancel") {
      return {};
    }
    r.cancel = true;
    path = path.substr(0, slash);
  }
  r.id = std::string(path);
  return r;
}

// /openai/deployments/{model}/<op> and /engines/{model}/<op> (also under /v1).
struct routed_model {
  std::string model;
  providers::call_type type = providers::call_type::chat;
};
routed_model model_route(std::string_view path) {
  if (starts_with(path, "/v1/")) {
    path.remove_prefix(3);
  }
  std::string_view rest;
  if (starts_with(path, "/openai/deployments/")) {
    rest = path.substr(20);
  } else if (starts_with(path, "/engines/")) {
    rest = path.substr(9);
  } else {
    return {};
  }
  auto slash = rest.find('/');
  if (slash == std::string_view::npos || slash == 0) {
    return {};
  }
  routed_model r;
  auto op = rest.substr(slash);
  if (op == "/chat/completions") {
    r.type = providers::call_type::chat;
  } else if (op == "/completions") {
    r.type = providers::call_type::completion;
  } else if (op == "/embeddings") {
    r.type = providers::call_type::embedding;
  } else {
    return {};
  }
  r.model = std::string(rest.substr(0, slash));
  return r;
}

// Key lookups wait for the schema: before the migrations ran, Postgres has no key
// tables, and a lookup would fail as an internal error (500) instead of "unavailable".
net::awaitable<core::result<std::optional<auth::virtual_key>>> lookup_when_migrated(
    const auth::key_cache::lookup_fn* inner, const bool* migrated, std::string hash) {
  if (!*migrated) {
    co_return core::make_error(core::errc::unavailable, "the key database is not ready yet (migrations pending)");
  }
  co_return co_await (*inner)(std::move(hash));
}

// An end user's row as the end-user cache keeps it (docs/budgets.md). Waits for the schema
// as key lookups do.
net::awaitable<core::result<std::optional<auth::end_user>>> lookup_end_user(store::postgres::db_executor* db,
                                                                             const bool* migrated,
                                                                             std::chrono::milliseconds timeout,
                                                                             std::string id) {
  if (!*migrated) {
    co_return core::make_error(core::errc::unavailable, "the database is not ready yet (migrations pending)");
  }
  auto r = co_await db->run_within(timeout, &store::postgres::find_end_user_blocking, std::move(id));
  if (!r) {
    co_return r.error();
  }
  if (!*r) {
    co_return std::optional<auth::end_user>();
  }
  const auto& row = **r;
  auth::end_user u;
  u.blocked = row.blocked;
  u.limits.alias = row.alias;
  u.limits.spend = row.spend;
  u.limits.max_budget = row.max_budget;
  u.limits.soft_budget = row.soft_budget;
  u.limits.rpm_limit = row.rpm_limit;
  u.limits.tpm_limit = row.tpm_limit;
  u.limits.max_parallel_requests = row.max_parallel_requests;
  u.limits.budget_duration = row.budget_duration;
  u.limits.budget_reset_at = row.budget_reset_at;
  u.limits.spend_set_at = row.spend_set_at;
  co_return std::optional<auth::end_user>(std::move(u));
}

// The adapters' capability flags from the price table (providers/capabilities.hpp): the
// entry of a deployment's model, as it is priced. The table lives as long as the lookup.
bool register_capabilities(std::shared_ptr<const spend::price_table> table) {
  providers::set_capability_lookup(
      [table = std::move(table)](const config::deployment& d) -> const config::capability_flags* {
        const auto* p = table->entry_for(d, d.provider != nullptr && d.provider->local);
        return p != nullptr ? &p->flags : nullptr;
      });
  return true;
}

// The price table: the shipped one, with the entries of LITELLM_MODEL_COST_MAP_URL (a
// local path or file:// URL) replacing its own. A broken user file stops the start.
std::shared_ptr<const spend::price_table> load_prices() {
  auto table = std::make_shared<spend::price_table>();
  auto shipped = spend::price_table::load_blocking(spend::shipped_prices_path());
  if (shipped) {
    *table = std::move(*shipped);
  } else {
    spdlog::warn("no shipped price table ({}); every model costs 0 unless priced in the config",
                 shipped.error().message);
  }
  if (const char* v = std::getenv("LITELLM_MODEL_COST_MAP_URL"); v != nullptr && *v != '\0') {
    std::string path = v;
    if (path.rfind("file://", 0) == 0) {
      path = path.substr(7);
    }
    if (path.rfind("http://", 0) == 0 || path.rfind("https://", 0) == 0) {
      spdlog::warn("LITELLM_MODEL_COST_MAP_URL={}: only local files are read (no network fetch at start); "
                   "using the shipped price table",
                   path);
    } else {
      auto mine = spend::price_table::load_blocking(path);
      if (!mine) {
        throw config::config_error(path, 0, "LITELLM_MODEL_COST_MAP_URL", mine.error().message);
      }
      table->merge(*mine);
      spdlog::info("prices: {} entries from {} over the shipped table", mine->size(), path);
    }
  }
  return table;
}

std::size_t env_size(const char* name, std::size_t fallback) {
  if (const char* v = std::getenv(name); v != nullptr && *v != '\0') {
    char* end = nullptr;
    auto n = std::strtoull(v, &end, 10);
    if (end != v && *end == '\0' && n > 0) {
      return static_cast<std::size_t>(n);
    }
    spdlog::warn("ignoring {}='{}': not a positive whole number", name, v);
  }
  return fallback;
}

// How long each kind of Postgres call may take, all in all (queue, connect, statements).
// Past it the caller gets a 503 and a stuck connection is shut down (db_executor).
struct db_timeouts {
  std::chrono::milliseconds key_lookup{2000};    // a request's key not in the cache
  std::chrono::milliseconds management{5000};    // /key/*, /team/*, ... calls
  std::chrono::milliseconds spend_batch{10000};  // one batch of the spend writer
  std::chrono::milliseconds probe_interval{2000};  // readiness: SELECT 1 this often
  std::chrono::milliseconds probe_timeout{1000};   // ... answered within this
  std::chrono::seconds connect{2};                 // libpq connect_timeout
  std::chrono::milliseconds migrations{300000};    // the schema migrations at start
};

db_timeouts db_timeouts_of(const config::config& cfg) {
  db_timeouts t;
  t.key_lookup = env_ms("SWITCHYARD_DB_KEY_TIMEOUT_MS", t.key_lookup);
  t.management = env_ms("SWITCHYARD_DB_TIMEOUT_MS", t.management);
  t.spend_batch = env_ms("SWITCHYARD_DB_SPEND_TIMEOUT_MS", t.spend_batch);
  t.probe_interval = env_ms("SWITCHYARD_DB_PROBE_INTERVAL_MS", t.probe_interval);
  t.probe_timeout = env_ms("SWITCHYARD_DB_PROBE_TIMEOUT_MS", t.probe_timeout);
  for (auto* d : {&t.key_lookup, &t.management, &t.spend_batch, &t.probe_interval, &t.probe_timeout}) {
    *d = std::max(*d, std::chrono::milliseconds{100});
  }
  if (cfg.general.database_connection_timeout) {
    // libpq counts whole seconds (and treats 1 as 2).
    auto s = static_cast<long long>(*cfg.general.database_connection_timeout + 0.999);
    t.connect = std::chrono::seconds(std::clamp<long long>(s, 1, 600));
  }
  return t;
}

// maximum_spend_logs_retention_period ("30d", "12h", "2w", "1mo") in whole days (at least 1).
std::optional<int> retention_days(const config::config& cfg) {
  auto it = cfg.general.raw.find("maximum_spend_logs_retention_period");
  if (it == cfg.general.raw.end() || !it->is_string()) {
    return std::nullopt;
  }
  const std::string& v = it->get_ref<const std::string&>();
  char* end = nullptr;
  double n = std::strtod(v.c_str(), &end);
  std::string unit = end != nullptr ? std::string(end) : std::string();
  double days = unit == "d" ? n : unit == "h" ? n / 24 : unit == "w" ? n * 7 : unit == "mo" ? n * 30 : unit == "m" ? n / 1440 : unit == "s" ? n / 86400 : -1;
  if (days < 0) {
    spdlog::warn("general_settings.maximum_spend_logs_retention_period '{}' not understood (use e.g. 30d): kept forever", v);
    return std::nullopt;
  }
  return std::max(1, static_cast<int>(days + 0.999));
}

bool env_is(const char* name, std::string_view value) {
  const char* v = std::getenv(name);
  return v != nullptr && std::string_view(v) == value;
}

// The names in litellm_settings.<key> (a string or a list of strings).
std::vector<std::string> callback_names(const config::config& cfg, const char* key) {
  std::vector<std::string> out;
  auto it = cfg.litellm.raw.find(key);
  if (it == cfg.litellm.raw.end()) {
    return out;
  }
  if (it->is_string()) {
    out.push_back(it->get<std::string>());
  } else if (it->is_array()) {
    for (const auto& v : *it) {
      if (v.is_string()) {
        out.push_back(v.get<std::string>());
      }
    }
  }
  return out;
}

bool litellm_flag(const config::config& cfg, const char* key) {
  auto it = cfg.litellm.raw.find(key);
  return it != cfg.litellm.raw.end() && it->is_boolean() && it->get<bool>();
}

// The configuration's version: the sha256 of every file it was read from (each file's
// path and bytes as parsed, in load order). Metrics show its first 12 hex digits. Not the
// files as they are now: a worker started from the supervisor's copy of the config, or a
// file edited while a reload read it, would otherwise carry the version of bytes it never
// parsed, and the next reload would take the edit for "unchanged".
std::string files_hash(const config::config& cfg) { return core::sha256_hex(cfg.loaded_bytes); }

// The version of what serves: the files' hash, combined with the digest of the models
// kept in the database when there are any (a change there is a new version too).
std::string config_hash(const std::string& files, const std::string& db_digest) {
  return db_digest.empty() ? files : core::sha256_hex(files + "\n" + db_digest);
}

// What a stored model's check says: its key within the model and the message (no file);
// a config file that no longer loads is said as such.
std::string db_model_reason(const config::config_error& e) {
  if (e.file() != "database") {
    return std::string("the config file does not load: ") + e.what();
  }
  std::string key = e.key();
  if (key.starts_with("db_model[")) {
    const auto close = key.find(']');
    key = close == std::string::npos ? std::string() : key.substr(close + 1);
    if (!key.empty() && key.front() == '.') {
      key.erase(0, 1);
    }
  }
  return key.empty() ? e.detail() : key + ": " + e.detail();
}

// A config read for a reload, off the loop: the config, or the reason it was refused
// ("<file>:<line>: <key>: <message>", never a secret value).
struct loaded_config {
  std::shared_ptr<const config::config> cfg;
  std::string hash;
  std::string error;
};

loaded_config load_for_reload(const std::string& path, const config::load_options& lo) {
  loaded_config out;
  try {
    out.cfg = config::load_config_blocking(path, lo);
    out.hash = files_hash(*out.cfg);
  } catch (const config::config_error& e) {
    out.error = e.what();
  } catch (const std::exception& e) {
    out.error = path + ": " + e.what();
  }
  return out;
}

// Tests only: with SWITCHYARD_TEST_RELOAD_HOLD=<path>, a reload that has read its files
// waits (on the reload thread, never the loop) while <path> exists, at most 60 s, so that a
// test can send a SIGHUP while a reload runs. Says so once in the log.
void hold_reload_for_tests(const std::string& source) {
  const char* hold = std::getenv("SWITCHYARD_TEST_RELOAD_HOLD");
  if (hold == nullptr || *hold == '\0' || !std::filesystem::exists(hold)) {
    return;
  }
  spdlog::info("config reload ({}): files read, held while {} exists (SWITCHYARD_TEST_RELOAD_HOLD)", source, hold);
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::filesystem::exists(hold) && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

// The settings a reload does not apply (they shape what was built at start: stores,
// listeners, observers, the master key): those that differ, as "<section>.<key>".
// Keys the gateway does not know or does not support are never among them: they apply
// neither now nor after a restart. They are named as at start instead: an unknown key in
// the loader's warnings (logged with the reload), the unsupported ones in the one summary
// line, logged here as the start logs it.
std::vector<std::string> restart_only_changes(const config::config& a, const config::config& b) {
  if (auto summary = config::unsupported_summary(b); !summary.empty()) {
    spdlog::warn("config: {}", summary);
  }
  // Read per request from the config generation or the router, so a reload applies them.
  static const std::vector<std::string_view> applied_general = {"allowed_routes", "admin_only_routes", "allowed_ips",
                                                                "enforce_user_param"};
  static const std::vector<std::string_view> applied_litellm = {
      "drop_params",      "additional_drop_params", "num_retries",   "request_timeout",
      "fallbacks",        "context_window_fallbacks", "content_policy_fallbacks", "default_fallbacks",
      "retry_policy",     "model_group_retry_policy", "allowed_fails_policy"};
  std::vector<std::string> out;
  const auto compare = [&out](const nlohmann::json& x, const nlohmann::json& y, const char* section,
                              const std::vector<std::string_view>& applied) {
    const auto empty = nlohmann::json::object();
    const auto& xo = x.is_object() ? x : empty;
    const auto& yo = y.is_object() ? y : empty;
    std::vector<std::string> keys;
    for (auto it = xo.begin(); it != xo.end(); ++it) {
      keys.push_back(it.key());
    }
    for (auto it = yo.begin(); it != yo.end(); ++it) {
      if (!xo.contains(it.key())) {
        keys.push_back(it.key());
      }
    }
    for (const auto& k : keys) {
      if (std::find(applied.begin(), applied.end(), k) != applied.end() || !config::is_acted_on_setting(section, k)) {
        continue;
      }
      const auto xi = xo.find(k);
      const auto yi = yo.find(k);
      if (xi == xo.end() || yi == yo.end() || *xi != *yi) {
        out.push_back(std::string(section) + "." + k);
      }
    }
  };
  compare(a.general.raw, b.general.raw, "general_settings", applied_general);
  compare(a.litellm.raw, b.litellm.raw, "litellm_settings", applied_litellm);
  if (a.environment_variables != b.environment_variables) {
    out.emplace_back("environment_variables");
  }
  if (a.callback_settings != b.callback_settings) {
    out.emplace_back("callback_settings");
  }
  return out;
}

std::string iso_time(std::chrono::system_clock::time_point t) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  const std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms % 1000));
}

}  // namespace

namespace {

bool is_probe(std::string_view p) {
  return p == "/health/liveliness" || p == "/health/liveness" || p == "/healthz" || p == "/health/readiness" ||
         p == "/readyz";
}

// general_settings.allowed_ips: the client addresses served (IPv4/IPv6, CIDR networks;
// an IPv4-mapped IPv6 peer is compared as IPv4). Entries are validated by the loader.
class ip_allow_list {
 public:
  explicit ip_allow_list(const std::vector<std::string>& entries) {
    for (const auto& e : entries) {
      boost::system::error_code ec;
      const auto slash = e.find('/');
      auto addr = net::ip::make_address(e.substr(0, slash), ec);
      if (ec) {
        continue;
      }
      const int bits = addr.is_v4() ? 32 : 128;
      const int prefix = slash == std::string::npos ? bits : std::stoi(e.substr(slash + 1));
      nets_.push_back({addr, prefix});
    }
  }
  bool empty() const { return nets_.empty(); }
  bool allows(const std::string& remote) const {
    boost::system::error_code ec;
    auto a = net::ip::make_address(remote, ec);
    if (ec) {
      return false;
    }
    if (a.is_v6() && a.to_v6().is_v4_mapped()) {
      a = net::ip::make_address_v4(net::ip::v4_mapped, a.to_v6());
    }
    for (const auto& n : nets_) {
      if (n.addr.is_v4() && a.is_v4()) {
        const auto mask = n.prefix == 0 ? 0u : ~0u << (32 - n.prefix);
        if ((n.addr.to_v4().to_uint() & mask) == (a.to_v4().to_uint() & mask)) {
          return true;
        }
      } else if (n.addr.is_v6() && a.is_v6()) {
        const auto x = n.addr.to_v6().to_bytes();
        const auto y = a.to_v6().to_bytes();
        int left = n.prefix;
        bool same = true;
        for (std::size_t i = 0; i < x.size() && left > 0 && same; ++i, left -= 8) {
          const auto mask = left >= 8 ? 0xffu : (0xffu << (8 - left)) & 0xffu;
          same = (x[i] & mask) == (y[i] & mask);
        }
        if (same) {
          return true;
        }
      }
    }
    return false;
  }

 private:
  struct network {
    net::ip::address addr;
    int prefix;
  };
  std::vector<network> nets_;
};

// The gateway's io_context. Its pending handlers can be destroyed on demand: a request
// coroutine still suspended when the loop stops (it outlived the grace period) is then
// destroyed while the stages and observers its `finish` reaches still exist; left to
// the io_context's own destructor, it would run after them (~impl).
class loop_context : public net::io_context {
 public:
  using net::io_context::io_context;
  void destroy_pending() { shutdown(); }
};

}  // namespace

// What a config reload replaces as a whole: the config and the request path built from it
// (the LLM pipeline: its retry, fallback and timeout settings, token sources; the
// Responses API's lookups). A request takes the generation current when it starts (one
// shared_ptr copy) and finishes on it, whatever reloads happen meanwhile; the last
// request of an old generation frees it. The router and the stages with state (limits,
// cache, observers) are not rebuilt: the router swaps its tables in place and keeps the
// state of the deployments that did not change (router::reload).
struct config_generation {
  std::shared_ptr<const config::config> cfg;
  std::string hash;  // files_hash(*cfg)
  std::chrono::system_clock::time_point loaded_at;
  std::string source;  // "startup", "SIGHUP", "POST /config/reload"
  std::uint64_t number = 1;
  std::unique_ptr<pipeline::llm_pipeline> llm;
  std::unique_ptr<pipeline::responses_api> responses_api;
};

struct gateway::impl {
  ~impl() { ioc.destroy_pending(); }
  impl(const impl&) = delete;
  impl& operator=(const impl&) = delete;
  impl(options o, std::shared_ptr<const config::config> c)
      : opts(std::move(o)),
        cfg(std::move(c)),
        timeouts(db_timeouts_of(*cfg)),
        db(make_db()),
        probe_db(make_probe_db()),
        redis(make_redis()),
        auth(cfg->general.master_key, cfg->general.raw.value("litellm_key_header_name", std::string{})),
        rt(cfg),
        client(ioc.get_executor(), upstream_options_of(*cfg)),
        ext(make_extensions()),
        gen(make_generation(cfg, files_hash(*cfg), "startup", 1)),
        health(make_probes(), key_auth, rt),
        server(ioc.get_executor(), make_server_options(), [this](http::request& req, http::responder& resp) {
          return dispatch(req, resp);
        }),
        signals(ioc, SIGINT, SIGTERM),
        hangup(ioc, SIGHUP),
        grace_timer(ioc) {
    register_process_metrics();
    wire_observability();
    if (cfg->general.store_model_in_db && !db) {
      spdlog::warn("general_settings.store_model_in_db needs a database (database_url / DATABASE_URL); without one "
                   "/model/new, /model/update and /model/delete answer 500");
    }
    key_auth.set_route_rules({cfg->general.allowed_routes, cfg->general.admin_only_routes});
    std::vector<std::string> public_routes;
    for (const auto& r : cfg->general.public_routes) {
      if (core::public_route_allowed(r)) {  // the others were named in a startup warning
        public_routes.push_back(r);
      }
    }
    key_auth.set_public_routes(std::move(public_routes));
    if (db) {
      key_auth.set_session_auth([this](std::string cookie, std::string csrf, bool safe) {
        return sso.session_principal(std::move(cookie), std::move(csrf), safe);
      });
    }
    if (jwt_auth) {
      key_auth.set_jwt(jwt_auth.get(), jwt_owners.get());
      for (auto& k : jwt_keys) {
        k->start();
      }
    }
  }

  auth::jwt_auth_settings load_jwt_settings() const {
    auto s = auth::jwt_auth_settings::from(cfg->general.raw, [](const char* name) {
      const char* v = std::getenv(name);
      return std::string(v != nullptr ? v : "");
    });
    if (!s) {
      throw std::runtime_error(s.error().message);
    }
    return *s;
  }

  admin::sso_settings load_sso_settings() const {
    auto s = admin::sso_settings::from(cfg->general.raw, cfg->litellm.raw, cfg->general.master_key,
                                       [](const char* name) {
                                         const char* v = std::getenv(name);
                                         return std::string(v != nullptr ? v : "");
                                       });
    if (!s) {
      throw std::runtime_error(s.error().message);
    }
    if (!s->provider.empty()) {
      spdlog::info("UI sign-in: {} (OIDC), client {}", s->provider, s->client_id);
    }
    return *s;
  }

  std::vector<std::unique_ptr<auth::jwks_cache>> make_jwt_keys() {
    std::vector<std::unique_ptr<auth::jwks_cache>> out;
    for (const auto& url : jwt_settings.jwks_urls) {
      out.push_back(std::make_unique<auth::jwks_cache>(
          ioc.get_executor(), client, auth::jwks_options{.url = url, .ttl = jwt_settings.public_key_ttl}));
    }
    return out;
  }

  std::unique_ptr<auth::jwt_authenticator> make_jwt_auth() const {
    if (!jwt_settings.enabled) {
      return nullptr;
    }
    std::vector<auth::jwks_cache*> caches;
    for (const auto& k : jwt_keys) {
      caches.push_back(k.get());
    }
    spdlog::info("JWT auth on: keys from {}", jwt_keys.front()->url());
    return std::make_unique<auth::jwt_authenticator>(jwt_settings, std::move(caches));
  }

  options opts;
  std::shared_ptr<const config::config> cfg;
  ip_allow_list allowed_ips{cfg->general.allowed_ips};
  http::cors_policy cors{cfg->general.cors_allow_origins, cfg->general.cors_allow_credentials};
  // One thread runs the loop and does all socket I/O on it (the Postgres threads only
  // post completions back), so Asio's per-descriptor I/O locks are off; posting from
  // other threads stays locked (the locks cost ~1% of the CPU per request; see
  // docs/architecture.md, "Threads").
  loop_context ioc{BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO};
  // Declared after the io_context: destroyed before it, on this (the loop) thread.
  db_timeouts timeouts;
  std::unique_ptr<store::postgres::db_executor> db;
  // The readiness probe's own connection: a busy pool does not look like a dead database,
  // and a dead database is noticed within probe_interval + probe_timeout.
  std::unique_ptr<store::postgres::db_executor> probe_db;
  std::unique_ptr<store::redis::redis_client> redis;
  std::optional<bool> db_ok;     // last background probe; unset until the first one
  bool migrated = false;
  auth::authenticator auth;
  // Virtual keys (docs/virtual-keys.md): a memory cache over Postgres (none without a database), the
  // auth decision on top, and cross-instance invalidation through Redis.
  auth::key_cache::lookup_fn db_lookup = db ? make_key_lookup(*db, timeouts.key_lookup) : nullptr;
  std::unique_ptr<auth::key_cache> key_cache =
      db ? std::make_unique<auth::key_cache>(
               ioc.get_executor(),
               [inner = &db_lookup, ready = &migrated](std::string hash) {
                 return lookup_when_migrated(inner, ready, std::move(hash));
               })
         : nullptr;
  auth::key_authenticator key_auth{auth, key_cache.get(), cfg->general.allow_requests_on_db_unavailable,
                                   access_groups_of(*cfg)};
  std::unique_ptr<auth::key_invalidation> key_invalidation =
      key_cache ? std::make_unique<auth::key_invalidation>(ioc.get_executor(), *key_cache, redis.get()) : nullptr;
  // Budgets (docs/budgets.md). End users' limits and blocked flag from Postgres (for the
  // limits engine; the request's `user` is the id); the proxy's own budget as an entity;
  // the reset job's timer (a management write wakes it) and this instance's name in
  // budget_resets rows.
  std::unique_ptr<auth::end_user_cache> end_users =
      db ? std::make_unique<auth::end_user_cache>(
               ioc.get_executor(),
               [d = db.get(), ready = &migrated, t = timeouts.key_lookup](std::string id) {
                 return lookup_end_user(d, ready, t, std::move(id));
               },
               auth::end_user_cache_options{.default_max_budget = cfg->litellm.max_end_user_budget})
         : nullptr;
  std::optional<auth::entity_limits> proxy_entity =
      auth::proxy_limits(cfg->litellm.max_budget, cfg->litellm.budget_duration);
  net::steady_timer reset_timer{ioc};
  std::string instance_id = make_instance_id();
  router::router rt;
  // Shares cooldowns through Redis when configured (after rt and redis: destroyed first).
  std::unique_ptr<router::redis_cooldown_sync> cooldown_sync =
      redis ? std::make_unique<router::redis_cooldown_sync>(ioc.get_executor(), *redis, rt) : nullptr;
  upstream::client client;
  pipeline::client_caller caller{client};
  // JWT auth for API callers (docs/sso.md): the provider's keys in memory, refreshed in
  // the background; none unless general_settings.enable_jwt_auth.
  auth::jwt_auth_settings jwt_settings = load_jwt_settings();
  std::vector<std::unique_ptr<auth::jwks_cache>> jwt_keys = make_jwt_keys();
  std::unique_ptr<auth::jwt_authenticator> jwt_auth = make_jwt_auth();
  // JWT callers' user and team rows (their models and limits), as keys' are cached.
  auth::key_cache::lookup_fn owner_lookup = db && jwt_auth ? make_owner_lookup(*db, timeouts.key_lookup) : nullptr;
  std::unique_ptr<auth::key_cache> jwt_owners =
      owner_lookup ? std::make_unique<auth::key_cache>(
                         ioc.get_executor(),
                         [inner = &owner_lookup, ready = &migrated](std::string key) {
                           return lookup_when_migrated(inner, ready, std::move(key));
                         })
                   : nullptr;
  // The cost logger: prices, a Postgres connection of its own, the row queue and its
  // `finish` observer (none without a database: headers are still priced).
  spend::pricer pricer{load_prices()};
  // The adapters read the price map's capability flags where model_info says nothing.
  [[maybe_unused]] const bool capabilities_registered = register_capabilities(pricer.shared_table());
  std::unique_ptr<store::postgres::db_executor> spend_db = make_spend_db();
  // general_settings.disable_spend_logs: totals and rollups only, no spend_logs rows.
  std::unique_ptr<spend::pg_sink> spend_sink =
      spend_db ? std::make_unique<spend::pg_sink>(*spend_db, !cfg->general.disable_spend_logs) : nullptr;
  std::unique_ptr<spend::cost_logger> cost_logger = make_cost_logger();
  std::unique_ptr<pipeline::spend_observer> spend_obs =
      cost_logger ? std::make_unique<pipeline::spend_observer>(pricer, *cost_logger,
                                                               cfg->general.store_prompts_in_spend_logs)
                  : nullptr;
  // The response cache (docs/cache.md): its own Redis client when cache_params names
  // another Redis than the shared one; none when caching is off.
  std::unique_ptr<store::redis::redis_client> cache_redis_own = make_cache_redis();
  std::unique_ptr<cache::response_cache> response_cache = make_response_cache();
  std::unique_ptr<pipeline::cache_stage> cache_stage =
      response_cache ? std::make_unique<pipeline::cache_stage>(
                           ioc.get_executor(), cfg->cache, *response_cache, rt,
                           env_ms("SWITCHYARD_CACHE_COALESCE_MS", std::chrono::milliseconds{30000}))
                     : nullptr;
  // Budgets and rate limits (docs/limits.md): wired when keys can carry limits (a
  // database) or the config sets global ones; shared through Redis when configured.
  pipeline::limits_settings limit_settings = with_budget_entities(pipeline::limits_settings::from(*cfg));
  std::unique_ptr<limits::redis_engine> limits_engine = make_limits_engine();
  std::unique_ptr<pipeline::limits_stage> limits_stage =
      limits_engine ? std::make_unique<pipeline::limits_stage>(*limits_engine, rt, pricer, limit_settings) : nullptr;
  // Prometheus metrics (docs/observability.md): on unless SWITCHYARD_DISABLE_METRICS=1.
  std::unique_ptr<metrics::registry> metrics_reg =
      env_is("SWITCHYARD_DISABLE_METRICS", "1")
          ? nullptr
          : std::make_unique<metrics::registry>(env_size("SWITCHYARD_METRICS_MAX_SERIES", 1000));
  std::unique_ptr<metrics::loop_lag_probe> loop_lag =
      metrics_reg ? std::make_unique<metrics::loop_lag_probe>(ioc.get_executor(), *metrics_reg) : nullptr;
  // In a worker group: this worker's slot of the group's metrics (metrics/group.hpp).
  std::unique_ptr<metrics::group_view> metrics_group =
      metrics_reg && opts.metrics_board && opts.worker_index >= 0
          ? std::make_unique<metrics::group_view>(ioc.get_executor(), *metrics_reg, opts.metrics_board,
                                                 opts.worker_index)
          : nullptr;
  std::unique_ptr<pipeline::metrics_observer> metrics_obs = make_metrics_observer();
  // Logging callbacks and alerting (docs/observability.md): one sender per configured
  // callback, the observer that queues each request's event, the alerter.
  std::vector<std::unique_ptr<pipeline::callback_sender>> callback_senders = make_callback_senders();
  std::unique_ptr<pipeline::callback_observer> callback_obs = make_callback_observer();
  std::unique_ptr<pipeline::alerter> alerts = make_alerter();
  std::size_t llm_in_flight = 0;  // LLM requests being served (/health/backlog)
  // GET /health and the background checks (docs/observability.md).
  pipeline::health_checker health_check{
      ioc.get_executor(), cfg, caller, rt, pipeline::health_options::from(*cfg),
      cooldown_sync ? pipeline::health_checker::publisher([this](const std::string& id, const router::cooldown_entry& e) {
        cooldown_sync->publish(id, e);
      })
                    : pipeline::health_checker::publisher()};
  // /v1/responses conversations of providers without the Responses API (shared through
  // Redis when configured): docs/responses.md.
  pipeline::responses_store responses_store{ioc.get_executor(), redis.get(),
                                            pipeline::responses_store_options::from_env()};
  pipeline::extensions ext;  // the stages and observers every generation's pipeline uses
  std::shared_ptr<config_generation> gen;  // the config in use (replaced by reload_config)
  admin::health_endpoints health;
  // Sign-in for the admin UI (docs/sso.md): password and OIDC sign-in, sessions in Postgres.
  admin::sso_endpoints sso{load_sso_settings(), db.get(), client, auth, ioc.get_executor(), key_invalidation.get()};
  // Models in the database (general_settings.store_model_in_db; docs/configuration.md,
  // "Models in the database"). The rows are read on the db threads and merged with the
  // config file by the same path as a reload (reload_config with the rows), so unchanged
  // deployments keep their state. A write announces itself on Redis (every instance syncs
  // at once); a poll every db_models_poll catches what a missed message did not.
  bool store_models = cfg->general.store_model_in_db && db != nullptr;
  std::unique_ptr<core::secret_box> model_box =
      store_models ? std::make_unique<core::secret_box>(admin::model_secret_passphrase(cfg->general.master_key))
                   : nullptr;
  std::vector<config::db_model> db_models;  // as merged into the current generation
  std::string db_models_digest;             // sha256 of their rows ("" when there are none)
  std::optional<std::string> db_models_failed;  // digest of rows whose reload was refused (the file did not load)
  std::chrono::milliseconds db_models_poll = env_ms("SWITCHYARD_DB_MODELS_POLL_MS", std::chrono::milliseconds{5000});
  net::steady_timer db_models_timer{ioc};  // the poll; cancelled: sync now
  net::steady_timer db_models_synced{ioc, net::steady_timer::time_point::max()};  // cancelled after each sync
  std::uint64_t db_sync_requested = 1;  // the first sync loads the rows at start
  std::uint64_t db_sync_done = 0;
  bool db_models_fetch_failed = false;
  static constexpr const char* models_channel = "switchyard:model-change";
  // The admin UI's pages (ui/), read once here and served from memory.
  const admin::ui_assets ui = load_ui();
  admin::management_api management{{key_auth, db.get(), key_invalidation.get(), cfg, &pricer, response_cache.get(),
                                    [this](std::string model) { return health_check.report(std::move(model)); },
                                    [this] { return llm_in_flight; }, active_callbacks(),
                                    callbacks_for(true), callbacks_for(false), alerting_channels(),
                                    [this](std::string service) { return check_service(std::move(service)); },
                                    [this] { reset_timer.cancel(); },
                                    [this](std::string source) { return reload_on_request(std::move(source)); },
                                    [this] { return version_json(); },
                                    store_models ? std::function<net::awaitable<std::optional<std::string>>(
                                                       config::db_model)>([this](config::db_model m) {
                                      return check_db_model(std::move(m));
                                    })
                                                 : nullptr,
                                    store_models ? std::function<net::awaitable<void>()>([this] {
                                      return db_models_changed();
                                    })
                                                 : nullptr,
                                    model_box.get()}};
  http::server server;
  net::signal_set signals;
  net::signal_set hangup;  // SIGHUP: reload (on_hangup)
  // Where a reload reads and validates the config files: off the loop, one at a time.
  // Declared after the io_context: joined before it goes away (a load in flight posts
  // its result to the loop).
  net::thread_pool reload_pool{1};
  bool reloading = false;
  bool reload_again = false;  // a SIGHUP arrived during a reload: one more when it ends
  metrics::family* config_info = nullptr;
  metrics::family* config_reloads = nullptr;
  net::steady_timer grace_timer;
  std::chrono::steady_clock::time_point grace_deadline{};
  bool stopping = false;
  // The callback senders and the alerter still running; `senders_done` is cancelled as each
  // ends, so the stop can wait for their last sends (finish_stop).
  std::size_t senders_running = 0;
  net::steady_timer senders_done{ioc};
  // The budget reset job is waiting on a reset's transaction: a stop waits for it (within
  // its deadline), so a reset that commits is also logged and reaches the other instances'
  // key caches. `reset_done` is cancelled when the call returns.
  bool reset_in_call = false;
  net::steady_timer reset_done{ioc};

  std::shared_ptr<config_generation> make_generation(std::shared_ptr<const config::config> c, std::string hash,
                                                     std::string source, std::uint64_t number) {
    auto g = std::make_shared<config_generation>();
    g->cfg = c;
    g->hash = std::move(hash);
    g->loaded_at = std::chrono::system_clock::now();
    g->source = std::move(source);
    g->number = number;
    g->llm = std::make_unique<pipeline::llm_pipeline>(c, key_auth, rt, caller, ext);
    g->responses_api = std::make_unique<pipeline::responses_api>(c, key_auth, caller, responses_store);
    return g;
  }

  // GET /config/version: which config serves new requests. Hashes, times, paths and
  // counts only: never a value from the file (keys and passwords live there).
  nlohmann::json version_json() const {
    const auto& g = *gen;
    return {{"hash", g.hash},
            {"version", g.hash.substr(0, 12)},
            {"loaded_at", iso_time(g.loaded_at)},
            {"source", g.source},
            {"generation", g.number},
            {"path", g.cfg->path},
            {"files", g.cfg->files},
            {"deployments", g.cfg->model_list.size()},
            {"model_groups", g.cfg->model_names().size()}};
  }

  // SIGHUP: everything a hangup reloads, in one place (the config; whatever else reloads
  // on SIGHUP belongs here too). A hangup during a reload runs one more after it, so the
  // file as it is after the last signal is the one loaded.
  void on_hangup() {
    hangup.async_wait([this](const boost::system::error_code& ec, int) {
      if (ec) {
        return;
      }
      on_hangup();  // re-armed first: a signal during the reload is not lost (nor fatal)
      if (stopping) {
        return;
      }
      if (server.tls()) {
        net::co_spawn(ioc, reload_tls(), net::detached);
      }
      if (reloading) {
        reload_again = true;
        return;
      }
      hangup_reloads();
    });
  }

  // The TLS certificate and key, read on reload_pool's thread (not on the loop): new
  // handshakes use the re-read pair; a bad pair is refused and the old one keeps serving
  // (docs/tls.md). The pool's one thread takes hangups in order, so the last one's files win.
  net::awaitable<void> reload_tls() {
    struct made {
      std::shared_ptr<net::ssl::context> ctx;
      std::string error;
    };
    // Named before the co_await: GCC 12 destroys a temporary with captures in a co_await
    // expression twice.
    auto make = [cert = opts.ssl_certfile_path, key = opts.ssl_keyfile_path]() -> made {
      try {
        return {http::make_tls_context(cert, key), {}};
      } catch (const std::exception& e) {
        return {nullptr, e.what()};
      }
    };
    auto m = co_await on_reload_pool<made>(std::move(make));
    if (stopping) {
      co_return;
    }
    if (m.ctx) {
      server.use_tls(std::move(m.ctx));
      spdlog::info("SIGHUP: TLS certificate reloaded from {}", opts.ssl_certfile_path);
    } else {
      spdlog::error("SIGHUP: TLS certificate NOT reloaded, the previous one keeps serving: {}", m.error);
    }
  }

  // The reloads a hangup asks for: one, and one more for each hangup during it.
  void hangup_reloads() {
    net::co_spawn(ioc, [this]() -> net::awaitable<void> {
      do {
        reload_again = false;
        auto r = co_await reload_config("SIGHUP");
        (void)r;  // logged by reload_config
      } while (reload_again && !stopping);
    }, net::detached);
  }

  // POST /config/reload: the reload, then one more if a SIGHUP came during it (the
  // hangup found a reload running and left it to run when that one ends).
  net::awaitable<core::result<nlohmann::json>> reload_on_request(std::string source) {
    auto r = co_await reload_config(std::move(source));
    if (reload_again && !stopping) {
      hangup_reloads();
    }
    co_return r;
  }

  // The one config reload (SIGHUP, POST /config/reload). The file and its includes are
  // read and validated on reload_pool's thread; the loop only swaps: the router's tables
  // (state of unchanged deployments kept), a new generation for requests that start from
  // now on, and the settings read per request (access groups, route rules, allowed IPs).
  // An invalid file changes nothing and is the error (400, with its file:line); the same
  // files as now change nothing either ("unchanged").
  // `models` (the db model sync): the stored models to merge, and their digest; without
  // them the models merged last time are kept.
  net::awaitable<core::result<nlohmann::json>> reload_config(std::string source,
                                                             std::optional<std::vector<config::db_model>> models = {},
                                                             std::string models_digest = {}) {
    if (reloading) {
      auto e = core::make_error(core::errc::bad_request, "A config reload is already running; try again when it ends");
      e.status = 409;
      co_return e;
    }
    reloading = true;
    struct done_guard {
      bool& flag;
      ~done_guard() { flag = false; }
    } guard{reloading};
    const std::string path = gen->cfg->path;
    config::load_options lo = reload_options();
    if (!models) {
      models = db_models;
      models_digest = db_models_digest;
    }
    if (store_models) {
      lo.db_models = *models;
    }
    struct job {
      explicit job(net::io_context& io) : wake(io, net::steady_timer::time_point::max()) {}
      net::steady_timer wake;
      loaded_config out;
    };
    auto j = std::make_shared<job>(ioc);
    net::post(reload_pool, [j, path, lo, source]() mutable {
      auto out = load_for_reload(path, lo);
      hold_reload_for_tests(source);
      auto ex = j->wake.get_executor();
      net::post(ex, [j = std::move(j), out = std::move(out)]() mutable {
        j->out = std::move(out);
        j->wake.cancel();
      });
    });
    co_await j->wake.async_wait(net::as_tuple(net::use_awaitable));
    loaded_config loaded = std::move(j->out);
    if (loaded.cfg) {
      loaded.hash = config_hash(loaded.hash, models_digest);
    }
    if (!loaded.cfg) {
      spdlog::error("config reload ({}) refused, still serving {} (loaded {}): {}", source, gen->hash.substr(0, 12),
                    iso_time(gen->loaded_at), loaded.error);
      count_reload("refused");
      auto e = core::make_error(core::errc::bad_request, "Config reload refused: " + loaded.error);
      co_return e;
    }
    if (loaded.hash == gen->hash) {
      file_loads_again(source);
      spdlog::info("config reload ({}): {} unchanged", source, gen->hash.substr(0, 12));
      count_reload("unchanged");
      auto out = version_json();
      out["status"] = "unchanged";
      co_return core::result<nlohmann::json>{boost::system::in_place_value, std::move(out)};
    }
    auto before = gen->cfg;
    const std::string before_version = gen->hash.substr(0, 12);
    auto next = loaded.cfg;
    const auto restart = restart_only_changes(*before, *next);
    const auto diff = rt.reload(next);
    gen = make_generation(next, loaded.hash, source, gen->number + 1);
    db_models = std::move(*models);
    db_models_digest = std::move(models_digest);
    file_loads_again(source);
    key_auth.set_access_groups(access_groups_of(*next));
    key_auth.set_route_rules({next->general.allowed_routes, next->general.admin_only_routes});
    allowed_ips = ip_allow_list(next->general.allowed_ips);
    health_check.set_config(next);
    management.set_config(next);
    if (config_info != nullptr) {
      config_info->clear();
      config_info->with({std::string_view(gen->hash).substr(0, 12)}).set(1);
    }
    count_reload("reloaded");
    for (const auto& w : next->warnings) {
      spdlog::warn("config: {}", w);
    }
    spdlog::info("config reloaded ({}): {} -> {}: {} deployment(s) added, {} removed, {} changed, {} unchanged",
                 source, before_version, gen->hash.substr(0, 12), diff.added.size(), diff.removed.size(), diff.changed.size(),
                 diff.unchanged.size());
    if (!restart.empty()) {
      std::string list;
      for (const auto& k : restart) {
        list += list.empty() ? k : ", " + k;
      }
      spdlog::warn("config reload: these settings changed but apply only after a restart: {}", list);
    }
    auto out = version_json();
    out["status"] = "reloaded";
    out["added"] = diff.added.size();
    out["removed"] = diff.removed.size();
    out["changed"] = diff.changed.size();
    out["unchanged"] = diff.unchanged.size();
    out["needs_restart"] = restart;
    if (source == "POST /config/reload" && opts.num_workers > 1 && opts.listen_fd >= 0) {
      // One worker took the call; the supervisor re-reads and hangs up every worker, so
      // all of them (this one finds its files unchanged) serve the same config.
      ::kill(::getppid(), SIGHUP);
    }
    co_return core::result<nlohmann::json>{boost::system::in_place_value, std::move(out)};
  }

  // The config file loaded: stored models refused with it before (a file that did not
  // load) are read and applied now.
  void file_loads_again(const std::string& source) {
    if (!db_models_failed) {
      return;
    }
    db_models_failed.reset();
    if (source != "database") {
      ++db_sync_requested;
      db_models_timer.cancel();
    }
  }

  config::load_options reload_options() {
    config::load_options lo;
    lo.export_environment = false;  // setenv is not thread-safe; os.environ/ still sees them
    lo.bare_model_provider = [prices = pricer.shared_table()](std::string_view model) -> std::string {
      const auto* p = prices->find(model);
      return p != nullptr ? p->provider : std::string();
    };
    return lo;
  }

  // Runs fn() on reload_pool's thread (file reads, config loads) and resumes on the loop
  // with its result.
  template <class T, class F>
  net::awaitable<T> on_reload_pool(F fn) {
    struct job {
      explicit job(net::io_context& io) : wake(io, net::steady_timer::time_point::max()) {}
      net::steady_timer wake;
      std::optional<T> out;
    };
    auto j = std::make_shared<job>(ioc);
    net::post(reload_pool, [j, fn = std::move(fn)]() mutable {
      T out = fn();
      auto ex = j->wake.get_executor();
      net::post(ex, [j = std::move(j), out = std::move(out)]() mutable {
        j->out = std::move(out);
        j->wake.cancel();
      });
    });
    co_await j->wake.async_wait(net::as_tuple(net::use_awaitable));
    co_return std::move(*j->out);
  }

  // /model/new, /model/update: loads the config with `m` added (or replacing the stored
  // model of its id), off the loop. nullopt: it loads; else why not (no file, no secret).
  net::awaitable<std::optional<std::string>> check_db_model(config::db_model m) {
    config::load_options lo = reload_options();
    for (const auto& x : db_models) {
      if (x.id != m.id) {
        lo.db_models.push_back(x);
      }
    }
    lo.strict_db_model = m.id;
    lo.db_models.push_back(std::move(m));
    const std::string path = gen->cfg->path;
    auto check = [path, lo]() -> std::optional<std::string> {
      try {
        (void)config::load_config_blocking(path, lo);
        return std::nullopt;
      } catch (const config::config_error& e) {
        return db_model_reason(e);
      } catch (const std::exception& e) {
        return std::string(e.what());
      }
    };
    co_return co_await on_reload_pool<std::optional<std::string>>(std::move(check));
  }

  // After a write: every other instance hears it on Redis; this one syncs before the
  // answer, so the caller's next request already sees the change here.
  net::awaitable<void> db_models_changed() {
    if (redis) {
      std::vector<std::string> cmd{"PUBLISH", models_channel, instance_id};
      auto r = co_await redis->command(std::move(cmd));
      if (!r || r->is_error()) {
        spdlog::warn("models in the database: PUBLISH failed ({}); other instances apply the change at their next poll",
                     r ? r->str : r.error().message);
      }
    }
    const auto target = ++db_sync_requested;
    db_models_timer.cancel();
    while (db_sync_done < target && !stopping) {
      co_await db_models_synced.async_wait(net::as_tuple(net::use_awaitable));
    }
  }

  // The sync: one at a time, when asked (a write here, a message from another instance)
  // and every db_models_poll. Started once the migrations ran.
  net::awaitable<void> db_models_loop() {
    if (redis) {
      store::redis::redis_client::message_handler on_message = [this](std::string_view, std::string_view from) {
        if (from != instance_id) {
          ++db_sync_requested;
          db_models_timer.cancel();
        }
      };
      std::string ch = models_channel;
      auto r = co_await redis->subscribe(std::move(ch), std::move(on_message));
      if (!r) {
        spdlog::warn("models in the database: subscribe to {} pending ({}); polling meanwhile", models_channel,
                     r.error().message);
      }
    }
    while (!stopping) {
      if (db_sync_done >= db_sync_requested) {
        db_models_timer.expires_after(db_models_poll);
        co_await db_models_timer.async_wait(net::as_tuple(net::use_awaitable));
        if (stopping) {
          break;
        }
      }
      const auto epoch = db_sync_requested;
      co_await sync_db_models();
      db_sync_done = std::max(db_sync_done, epoch);
      db_models_synced.cancel();
    }
    db_models_synced.cancel();
  }

  // Reads the stored models (a db thread) and, when they changed, reloads with them.
  net::awaitable<void> sync_db_models() {
    auto rows = co_await db->run(store::postgres::list_models_blocking);
    if (!rows) {
      if (!db_models_fetch_failed) {
        spdlog::warn("models in the database: cannot read them ({}); still serving the ones merged before",
                     rows.error().message);
        db_models_fetch_failed = true;
      }
      co_return;
    }
    db_models_fetch_failed = false;
    std::string all;
    for (const auto& r : *rows) {
      for (const auto* part : {&r.model_id, &r.model_name, &r.litellm_params_json, &r.model_info_json}) {
        all += *part;
        all += '\0';
      }
    }
    const std::string digest = rows->empty() ? std::string() : core::sha256_hex(all);
    // Unchanged, or refused with the config file as it was: nothing to do until the rows
    // change or a reload of the file succeeds (which clears db_models_failed).
    if (digest == db_models_digest || (db_models_failed && digest == *db_models_failed)) {
      co_return;
    }
    std::vector<config::db_model> models;
    for (const auto& r : *rows) {
      auto m = admin::db_model_of(r, *model_box);
      if (!m) {
        spdlog::warn("models in the database: model {} skipped: {}", r.model_id, m.error().message);
        continue;
      }
      models.push_back(std::move(*m));
    }
    net::steady_timer wait(ioc);
    while (reloading && !stopping) {  // a reload from a signal or the API: after it
      wait.expires_after(std::chrono::milliseconds(10));
      co_await wait.async_wait(net::as_tuple(net::use_awaitable));
    }
    if (stopping) {
      co_return;
    }
    auto r = co_await reload_config("database", std::move(models), digest);
    if (!r) {
      db_models_failed = digest;  // reload_config logged why (once: the poll skips this digest)
    }
    if (reload_again && !stopping) {
      hangup_reloads();  // a SIGHUP came during this reload: the file is read again now
    }
  }

  void count_reload(std::string_view result) {
    if (config_reloads != nullptr) {
      config_reloads->with({result}).inc();
    }
  }

  std::unique_ptr<store::postgres::db_executor> make_db() const {
    if (cfg->general.database_url.empty()) {
      return nullptr;
    }
    auto o = db_options_of(timeouts.management);
    o.pool_size = static_cast<std::size_t>(std::max(1, cfg->general.database_connection_pool_limit));
    o.max_in_flight = std::max<std::size_t>(64, o.pool_size * 8);
    return std::make_unique<store::postgres::db_executor>(o);
  }

  std::unique_ptr<store::postgres::db_executor> make_probe_db() const {
    if (cfg->general.database_url.empty()) {
      return nullptr;
    }
    auto o = db_options_of(timeouts.probe_timeout);
    o.pool_size = 1;
    o.max_in_flight = 4;
    // Back quickly after an outage: readiness is what tells the world it is over.
    o.reconnect_backoff_max = std::min(o.reconnect_backoff_max, timeouts.probe_interval / 4);
    return std::make_unique<store::postgres::db_executor>(o);
  }

  std::unique_ptr<store::postgres::db_executor> make_spend_db() const {
    if (cfg->general.database_url.empty()) {
      return nullptr;
    }
    auto o = db_options_of(timeouts.spend_batch);
    o.pool_size = 1;
    return std::make_unique<store::postgres::db_executor>(o);
  }

  // One deadline for the jobs of an executor, and the server-side statement_timeout at it.
  store::postgres::db_options db_options_of(std::chrono::milliseconds job_timeout) const {
    store::postgres::db_options o;
    o.url = cfg->general.database_url;
    o.connect_timeout = timeouts.connect;
    o.job_timeout = job_timeout;
    o.statement_timeout = job_timeout;
    return o;
  }

  std::unique_ptr<spend::cost_logger> make_cost_logger() {
    if (!spend_sink) {
      return nullptr;
    }
    if (const char* off = std::getenv("SWITCHYARD_DISABLE_COST_LOGGER"); off != nullptr && std::string_view(off) == "1") {
      spdlog::warn("SWITCHYARD_DISABLE_COST_LOGGER=1: no spend is recorded (no spend logs, no running totals)");
      return nullptr;
    }
    spend::logger_options o;
    o.max_queue_rows = env_size("SWITCHYARD_SPEND_QUEUE_ROWS", o.max_queue_rows);
    o.max_queue_bytes = env_size("SWITCHYARD_SPEND_QUEUE_MB", o.max_queue_bytes >> 20) << 20;
    const char* dir = std::getenv("SWITCHYARD_DATA_DIR");
    o.spill_dir = std::string(dir != nullptr && *dir != '\0' ? dir : ".data") + "/spend-spill";
    auto l = std::make_unique<spend::cost_logger>(ioc.get_executor(), *spend_sink, o);
    l->on_key_total = [this](const std::string& hash, double spend) {
      if (key_cache) {
        key_cache->set_spend(hash, spend);
      }
    };
    return l;
  }

  static bool same_redis(const config::redis_endpoint& a, const config::redis_endpoint& b) {
    return a.host == b.host && a.port == b.port && a.db == b.db && a.password == b.password &&
           a.username == b.username && a.tls == b.tls && a.tls_verify == b.tls_verify &&
           a.tls_check_hostname == b.tls_check_hostname && a.tls_ca_file == b.tls_ca_file;
  }

  static store::redis::redis_options redis_options_of(const config::redis_endpoint& e) {
    store::redis::redis_options o;
    o.host = e.host;
    o.port = static_cast<std::uint16_t>(e.port);
    o.username = e.username;
    o.password = e.password;
    o.db = e.db;
    o.tls = e.tls;
    o.tls_verify = e.tls_verify;
    o.tls_check_hostname = e.tls_check_hostname;
    o.tls_ca_file = e.tls_ca_file;
    return o;
  }

  std::unique_ptr<store::redis::redis_client> make_cache_redis() {
    const auto& c = cfg->cache;
    if (!c.enabled || !c.use_redis || (redis && same_redis(c.redis, cfg->redis))) {
      return nullptr;
    }
    return std::make_unique<store::redis::redis_client>(ioc.get_executor(), redis_options_of(c.redis));
  }

  store::redis::redis_client* cache_redis() const {
    if (!cfg->cache.enabled || !cfg->cache.use_redis) {
      return nullptr;
    }
    return cache_redis_own ? cache_redis_own.get() : redis.get();
  }

  std::unique_ptr<cache::response_cache> make_response_cache() {
    const auto& c = cfg->cache;
    if (!c.enabled) {
      return nullptr;
    }
    cache::cache_options o;
    // 0: no memory tier (every lookup asks Redis, so /cache/delete on one instance is
    // seen by all at once; also how bench/ measures a Redis hit).
    const char* mem = std::getenv("SWITCHYARD_CACHE_MEMORY_MB");
    o.memory_bytes = mem != nullptr && std::string_view(mem) == "0"
                         ? 0
                         : env_size("SWITCHYARD_CACHE_MEMORY_MB", o.memory_bytes >> 20) << 20;
    o.max_entry_bytes = env_size("SWITCHYARD_CACHE_MAX_ENTRY_KB", o.max_entry_bytes >> 10) << 10;
    // cache_params.socket_timeout (LiteLLM hands it to its Redis client) is how long a
    // lookup waits on Redis; the gateway's own variable, when set, wins over it.
    if (c.redis_timeout_s) {
      o.redis_timeout = std::max(std::chrono::milliseconds{1}, core::saturated_millis(*c.redis_timeout_s));
    }
    o.redis_timeout = env_ms("SWITCHYARD_CACHE_REDIS_TIMEOUT_MS", o.redis_timeout);
    if (c.memory_max_ttl_s > 0) {
      o.memory_max_ttl_ms = std::max<std::int64_t>(1, core::saturated_ms(c.memory_max_ttl_s));
    }
    auto* r = cache_redis();
    spdlog::info("response cache on: {} (memory tier {} MB, entries up to {} KB, ttl {} s{}{}{}{})",
                 r != nullptr ? "memory + redis " + c.redis.host + ":" + std::to_string(c.redis.port) : "memory only",
                 o.memory_bytes >> 20, o.max_entry_bytes >> 10, c.ttl_s,
                 o.memory_max_ttl_ms > 0 ? ", memory copies at most " + std::to_string(o.memory_max_ttl_ms) + " ms" : "",
                 r != nullptr ? ", redis lookups wait " + std::to_string(o.redis_timeout.count()) + " ms" : "",
                 c.namespace_.empty() ? "" : ", namespace ", c.namespace_);
    return std::make_unique<cache::response_cache>(ioc.get_executor(), r, o);
  }

  // The request's end user and the whole proxy (litellm_settings.max_budget) are charged
  // like the key's entities (docs/budgets.md).
  pipeline::limits_settings with_budget_entities(pipeline::limits_settings s) {
    s.end_users = end_users.get();
    if (proxy_entity) {
      s.extra.push_back(*proxy_entity);
    }
    return s;
  }

  std::unique_ptr<limits::redis_engine> make_limits_engine() {
    if (!db && !limit_settings.has_global()) {
      return nullptr;
    }
    limits::redis_engine_options o;
    if (const char* w = std::getenv("LITELLM_RATE_LIMIT_WINDOW_SIZE"); w != nullptr && std::atof(w) > 0) {
      o.window = core::saturated_millis(std::atof(w));
    }
    o.window = env_ms("SWITCHYARD_RATE_LIMIT_WINDOW_MS", o.window);
    o.timeout = env_ms("SWITCHYARD_LIMITS_REDIS_TIMEOUT_MS", o.timeout);
    o.reservation_ttl = env_ms("SWITCHYARD_LIMITS_RESERVATION_TTL_MS", o.reservation_ttl);
    o.lease = env_ms("SWITCHYARD_LIMITS_LEASE_MS", o.lease);
    o.instance_stale = env_ms("SWITCHYARD_LIMITS_INSTANCE_STALE_MS", o.instance_stale);
    spdlog::info("limits: budgets and rate limits enforced {} (window {} ms)",
                 redis ? "through Redis, shared by every instance" : "in memory, per instance", o.window.count());
    return std::make_unique<limits::redis_engine>(ioc.get_executor(), redis.get(), o, [] {
      return std::chrono::duration_cast<std::chrono::milliseconds>(
                 std::chrono::steady_clock::now().time_since_epoch())
          .count();
    });
  }

  pipeline::extensions make_extensions() {
    pipeline::extensions e;
    e.prices = &pricer;
    if (limits_stage) {
      e.limits = limits_stage.get();
      e.observers.push_back(limits_stage.get());
    }
    e.responses = &responses_store;
    if (cache_stage) {
      e.cache = cache_stage.get();
      e.body_memo = &cache_stage->body_memo();
      e.observers.push_back(cache_stage.get());  // lands the flight before the others run
    }
    if (spend_obs) {
      e.observers.push_back(spend_obs.get());
    }
    if (metrics_obs) {
      e.observers.push_back(metrics_obs.get());
    }
    if (callback_obs) {
      e.observers.push_back(callback_obs.get());
      for (const auto& s : callback_senders) {
        e.tracing = e.tracing || s->target().kind == "otel";
      }
      e.keep_response = !litellm_flag(*cfg, "turn_off_message_logging");
    }
    if (alerts) {
      e.observers.push_back(alerts.get());
    }
    return e;
  }

  std::unique_ptr<pipeline::metrics_observer> make_metrics_observer() {
    if (!metrics_reg) {
      return nullptr;
    }
    pipeline::metrics_options o;
    o.end_user_label = litellm_flag(*cfg, "enable_end_user_cost_tracking_prometheus_only");
    if (!cfg->general.master_key.empty()) {
      o.master_key_hash = core::sha256_hex(cfg->general.master_key);
    }
    return std::make_unique<pipeline::metrics_observer>(*metrics_reg, pricer, rt, std::move(o));
  }

  // The callbacks that run: "prometheus" while metrics are on (configured or not: they are
  // on by default), then each callback whose sender was built.
  std::vector<std::string> active_callbacks() const {
    std::vector<std::string> out;
    if (metrics_reg) {
      out.emplace_back("prometheus");
    }
    for (const auto& s : callback_senders) {
      out.push_back(s->target().name);
    }
    return out;
  }

  // Those called on success (true) or on failure (false).
  std::vector<std::string> callbacks_for(bool success) const {
    std::vector<std::string> out;
    if (metrics_reg) {
      out.emplace_back("prometheus");
    }
    for (const auto& s : callback_senders) {
      if (success ? s->target().on_success : s->target().on_failure) {
        out.push_back(s->target().name);
      }
    }
    return out;
  }

  std::vector<std::string> alerting_channels() const {
    std::vector<std::string> out;
    if (alerts && !alerts->settings().slack_url.empty()) {
      out.emplace_back("slack");
    }
    if (alerts && !alerts->settings().webhook_url.empty()) {
      out.emplace_back("webhook");
    }
    return out;
  }

  static std::string getenv_str(const char* name) {
    const char* v = std::getenv(name);
    return v != nullptr ? std::string(v) : std::string();
  }

  // The delivery settings of the logging callbacks' senders (SWITCHYARD_CALLBACK_*); the
  // alert sender takes its retries and back-off from them too.
  static pipeline::sender_options callback_sender_options() {
    pipeline::sender_options so;
    so.batch_size = std::max<std::size_t>(1, env_size("SWITCHYARD_CALLBACK_BATCH_SIZE", so.batch_size));
    so.flush_interval = env_ms("SWITCHYARD_CALLBACK_FLUSH_MS", so.flush_interval);
    so.queue_capacity = std::max<std::size_t>(1, env_size("SWITCHYARD_CALLBACK_QUEUE", so.queue_capacity));
    so.max_retries = static_cast<int>(env_size("SWITCHYARD_CALLBACK_RETRIES", static_cast<std::size_t>(so.max_retries)));
    so.backoff_base = env_ms("SWITCHYARD_CALLBACK_BACKOFF_MS", so.backoff_base);
    return so;
  }

  // litellm_settings.callbacks / success_callback / failure_callback: a sender for each
  // name that can run (callbacks: called on success and failure; success_callback /
  // failure_callback: on that one); one warning for each that cannot.
  std::vector<std::unique_ptr<pipeline::callback_sender>> make_callback_senders() {
    std::vector<std::unique_ptr<pipeline::callback_sender>> out;
    std::vector<std::pair<std::string, std::pair<bool, bool>>> names;  // name -> (success, failure)
    for (const char* key : {"callbacks", "success_callback", "failure_callback"}) {
      for (auto& n : callback_names(*cfg, key)) {
        const bool succ = std::string_view(key) != "failure_callback";
        const bool fail = std::string_view(key) != "success_callback";
        auto it = std::find_if(names.begin(), names.end(), [&](const auto& p) { return p.first == n; });
        if (it == names.end()) {
          names.push_back({n, {succ, fail}});
        } else {
          it->second.first = it->second.first || succ;
          it->second.second = it->second.second || fail;
        }
      }
    }
    const auto so = callback_sender_options();
    for (const auto& [name, when] : names) {
      if (name == "prometheus") {
        if (!metrics_reg) {
          spdlog::warn("litellm_settings: prometheus is configured but SWITCHYARD_DISABLE_METRICS=1 turns metrics off");
        }
        continue;
      }
      auto t = pipeline::make_callback_target(name, cfg->callback_settings, &getenv_str);
      if (!t.target) {
        spdlog::warn("litellm_settings: callback '{}' is not run: {}", name, t.error);
        continue;
      }
      t.target->on_success = t.target->on_success && when.first;
      t.target->on_failure = t.target->on_failure && when.second;
      spdlog::info("callback {} ({}): batches to {} (on success: {}, on failure: {})", name, t.target->kind,
                   t.target->url, t.target->on_success, t.target->on_failure);
      out.push_back(std::make_unique<pipeline::callback_sender>(std::move(*t.target), caller, so,
                                                                pipeline::steady_sender_clock(ioc.get_executor())));
    }
    return out;
  }

  std::unique_ptr<pipeline::callback_observer> make_callback_observer() {
    if (callback_senders.empty()) {
      return nullptr;
    }
    pipeline::event_options o;
    o.log_content = !litellm_flag(*cfg, "turn_off_message_logging");
    o.redact_caller = litellm_flag(*cfg, "redact_user_api_key_info");
    if (!cfg->general.master_key.empty()) {
      o.master_key_hash = core::sha256_hex(cfg->general.master_key);
    }
    std::vector<pipeline::callback_sender*> senders;
    for (auto& s : callback_senders) {
      senders.push_back(s.get());
    }
    return std::make_unique<pipeline::callback_observer>(std::move(senders), pricer, std::move(o), metrics_reg.get());
  }

  std::unique_ptr<pipeline::alerter> make_alerter() {
    std::vector<std::string> warnings;
    auto s = pipeline::alerting_settings::from(*cfg, &getenv_str, warnings);
    for (const auto& w : warnings) {
      spdlog::warn("{}", w);
    }
    if (!s.enabled()) {
      return nullptr;
    }
    spdlog::info("alerting:{}{} (slow requests past {} s)", s.slack_url.empty() ? "" : " slack",
                 s.webhook_url.empty() ? "" : " webhook", s.threshold_s);
    // Each alert is one POST sent as soon as it is raised (Slack takes one message a POST),
    // so the batch size and flush interval do not apply; the retries and back-off do.
    return std::make_unique<pipeline::alerter>(std::move(s), caller, pipeline::steady_sender_clock(ioc.get_executor()),
                                               callback_sender_options());
  }

  // Metrics of the callbacks and alerts; health checks and the database feed the alerter.
  void wire_observability() {
    if (metrics_reg) {
      std::vector<const pipeline::callback_sender*> senders;
      for (const auto& s : callback_senders) {
        senders.push_back(s.get());
      }
      pipeline::register_callback_metrics(*metrics_reg, std::move(senders));
      if (alerts) {
        alerts->register_metrics(*metrics_reg);
      }
    }
    if (alerts) {
      health_check.on_unhealthy([a = alerts.get()](const nlohmann::json& e) {
        a->deployment_unhealthy(e.value("model_id", std::string()), e.value("model_name", std::string()),
                                e.value("error", std::string()));
      });
    }
  }

  // /health/services?service=: a configured callback (an empty batch to its endpoint) or
  // alerting channel (a test alert to its URL).
  net::awaitable<core::result<nlohmann::json>> check_service(std::string service) {
    std::optional<pipeline::callback_target> t;
    for (const auto& s : callback_senders) {
      if (s->target().name == service) {
        t = s->target();
      }
    }
    if (!t && alerts && (service == "slack" || service == "webhook")) {
      const auto& st = alerts->settings();
      const std::string& url = service == "slack" ? st.slack_url : st.webhook_url;
      if (!url.empty()) {
        t.emplace();
        t->name = service;
        t->kind = service;
        t->url = url;
        t->encode = [](const std::vector<std::shared_ptr<const pipeline::callback_event>>&) {
          return nlohmann::json{{"text", "Switchyard test alert from /health/services"},
                                {"event", "test_alert"},
                                {"event_message", "Switchyard test alert from /health/services"}}
              .dump();
        };
      }
    }
    if (!t) {
      std::vector<std::string> known;
      for (const auto& s : callback_senders) {
        known.push_back(s->target().name);
      }
      for (auto& a : alerting_channels()) {
        known.push_back(std::move(a));
      }
      co_return core::make_error(core::errc::bad_request,
                                 "Service not configured: " + service + ". Configured: [" + fmt::format("{}", fmt::join(known, ", ")) + "]",
                                 "service");
    }
    auto r = co_await pipeline::check_callback(*t, caller);
    if (r.value("status", "") != "healthy") {
      auto e = core::make_error(core::errc::unavailable, "Service unhealthy: " + r.value("error", std::string()));
      co_return e;
    }
    co_return core::result<nlohmann::json>{boost::system::in_place_value,
                                           nlohmann::json{{"status", "success"}, {"message", r.value("message", std::string())}}};
  }

  // Gauges and counters that mirror state kept elsewhere: read when /metrics is scraped.
  void register_process_metrics() {
    if (!metrics_reg) {
      return;
    }
    auto& r = *metrics_reg;
    // Gauges of several workers add up unless merge_by() says otherwise (metrics/group.hpp).
    auto& build = r.gauge("switchyard_build_info", "The gateway's version (always 1)", {"version"})
                      .merge_by(metrics::merge_rule::max);
    build.with({std::string_view(SWITCHYARD_VERSION)}).set(1);
    config_info = &r.gauge("switchyard_config_info",
                           "The configuration in use: the start of the sha256 of its files (always 1)", {"version"})
                        .merge_by(metrics::merge_rule::max);
    config_info->with({std::string_view(gen->hash).substr(0, 12)}).set(1);
    config_reloads = &r.counter("switchyard_config_reloads",
                                "Config reloads (SIGHUP, POST /config/reload) by result: reloaded, unchanged, refused",
                                {"result"});
    auto& start = r.gauge("switchyard_start_time_seconds", "When the process started (unix time)")
                      .merge_by(metrics::merge_rule::min)
                      .with({});
    start.set(std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count());
    auto* conns = &r.gauge("switchyard_open_connections", "Client connections open now").with({});
    auto* in_flight = &r.gauge("switchyard_in_flight_requests", "LLM requests being served now").with({});
    r.on_scrape([this, conns, in_flight] {
      conns->set(static_cast<double>(server.active_connections()));
      in_flight->set(static_cast<double>(llm_in_flight));
    });
    auto* bounded = &r.counter("switchyard_usage_bounded",
                               "Calls whose reported usage was beyond the tokens one call is billed for (held to it)")
                         .with({});
    r.on_scrape([bounded] { bounded->set(static_cast<double>(spend::usage_bounded_total())); });
    auto* pg_up = &r.gauge("switchyard_postgres_up",
                           "1 when the last Postgres probe answered and the schema is migrated, else 0 (absent "
                           "without a database)")
                     .merge_by(metrics::merge_rule::min)
                     .with({});
    auto* redis_up = &r.gauge("switchyard_redis_up", "1 when Redis is connected, else 0 (absent without Redis)")
                          .merge_by(metrics::merge_rule::min);
    auto* redis_series = redis ? &redis_up->with({}) : nullptr;
    r.on_scrape([this, pg_up, redis_series] {
      pg_up->set(db && migrated && db_ok.value_or(false) ? 1 : 0);
      if (redis_series != nullptr) {
        redis_series->set(redis->connected() ? 1 : 0);
      }
    });
    if (key_cache) {
      auto* size = &r.gauge("switchyard_key_cache_entries", "Virtual keys cached in memory").with({});
      auto* hits = &r.counter("switchyard_key_cache_hits", "Key checks answered from memory").with({});
      auto* misses = &r.counter("switchyard_key_cache_misses", "Key checks that queried Postgres").with({});
      auto* ratio = &r.gauge("switchyard_key_cache_hit_ratio", "hits / (hits + misses) since start")
                         .merge_by(metrics::merge_rule::mean)
                         .with({});
      r.on_scrape([this, size, hits, misses, ratio] {
        size->set(static_cast<double>(key_cache->size()));
        const auto h = static_cast<double>(key_cache->hits());
        const auto m = static_cast<double>(key_cache->lookups());
        hits->set(h);
        misses->set(m);
        ratio->set(h + m > 0 ? h / (h + m) : 0);
      });
    }
    if (cost_logger) {
      auto* queued = &r.gauge("switchyard_spend_queue_rows", "Spend rows waiting in memory for Postgres").with({});
      auto* written = &r.counter("switchyard_spend_rows_written", "Spend rows written to Postgres").with({});
      auto* already = &r.counter("switchyard_spend_rows_already_written",
                                 "Spend rows a retried write found in Postgres already (a commit whose answer was lost)")
                           .with({});
      auto* failures = &r.counter("switchyard_spend_flush_failures", "Spend batches that failed to be written").with({});
      auto* spilled = &r.counter("switchyard_spend_rows_spilled", "Spend rows written to the spill files").with({});
      auto* dropped = &r.counter("switchyard_spend_rows_dropped", "Spend rows lost").with({});
      auto* spill_bytes = &r.gauge("switchyard_spend_spill_bytes", "Bytes in the spend spill files").with({});
      r.on_scrape([this, queued, written, already, failures, spilled, dropped, spill_bytes] {
        const auto& st = cost_logger->stats();
        queued->set(static_cast<double>(st.queued));
        written->set(static_cast<double>(st.written));  // replayed rows included (a subset)
        already->set(static_cast<double>(st.already_written));
        failures->set(static_cast<double>(st.flush_failures));
        spilled->set(static_cast<double>(st.spilled));
        dropped->set(static_cast<double>(st.dropped));
        spill_bytes->set(static_cast<double>(cost_logger->spill_bytes()));
      });
    }
  }

  // After the last request finished (or the grace period ended): the spend queue is
  // written (or spilled) before the loop stops.
  bool finishing = false;
  void finish_stop(std::chrono::steady_clock::time_point deadline) {
    if (finishing) {
      return;
    }
    finishing = true;
    net::co_spawn(
        ioc,
        [this, deadline]() -> net::awaitable<void> {
          if (loop_lag) {
            loop_lag->stop();
          }
          if (metrics_group) {
            metrics_group->stop();
          }
          health_check.stop();
          for (auto& s : callback_senders) {
            s->stop();  // what is queued goes out once more, without retries (waited for below)
          }
          if (alerts) {
            alerts->stop();
          }
          if (limits_engine) {
            // Queued settles reach Redis (parallel slots, budgets) before the loop stops.
            co_await limits_engine->drain(std::min(deadline, std::chrono::steady_clock::now() + std::chrono::seconds{2}));
            limits_engine->stop();
          }
          if (cost_logger) {
            co_await cost_logger->stop(deadline);
          }
          // The senders send what is queued once more (sent from the signal on, alongside
          // the spend): the loop stops when they are done, or at the deadline.
          while (senders_running > 0 && std::chrono::steady_clock::now() < deadline) {
            senders_done.expires_at(deadline);
            co_await senders_done.async_wait(net::as_tuple(net::use_awaitable));
          }
          while (reset_in_call && std::chrono::steady_clock::now() < deadline) {
            reset_done.expires_at(deadline);
            co_await reset_done.async_wait(net::as_tuple(net::use_awaitable));
          }
          ioc.stop();
        },
        [this](std::exception_ptr) { ioc.stop(); });
  }

  std::unique_ptr<store::redis::redis_client> make_redis() {
    if (cfg->redis.host.empty()) {
      return nullptr;
    }
    return std::make_unique<store::redis::redis_client>(ioc.get_executor(), redis_options_of(cfg->redis));
  }

  admin::health_probes make_probes() {
    admin::health_probes p;
    p.allow_requests_on_db_unavailable = cfg->general.allow_requests_on_db_unavailable;
    p.success_callbacks = active_callbacks();
    if (cfg->cache.enabled) {
      p.cache_type = cfg->cache.use_redis ? "redis" : "local";
    }
    p.metrics = metrics_reg.get();
    if (metrics_group) {
      p.render_metrics = [this](metrics::format f) { return metrics_group->render(f); };
    }
    p.metrics_require_auth = litellm_flag(*cfg, "require_auth_for_metrics_endpoint");
    if (db) {
      p.db = [this]() -> net::awaitable<admin::dependency_state> {
        if (!migrated) {
          // Not ready until the schema is: management calls would fail on missing tables.
          co_return admin::dependency_state::disconnected;
        }
        if (!db_ok) {
          auto r = co_await probe_db->ping(timeouts.probe_timeout);
          db_ok = r.has_value();
        }
        co_return *db_ok ? admin::dependency_state::connected : admin::dependency_state::disconnected;
      };
    }
    if (redis) {
      p.cache = [this]() -> net::awaitable<admin::dependency_state> {
        co_return redis->connected() ? admin::dependency_state::connected : admin::dependency_state::disconnected;
      };
    }
    return p;
  }

  // Background: connect Redis, apply migrations (retrying while Postgres is down), and
  // keep the readiness state of Postgres fresh. Never blocks the loop.
  net::awaitable<void> maintain_stores() {
    if (redis) {
      if (auto r = co_await redis->connect(); !r) {
        spdlog::warn("redis {}:{} not reachable yet ({}); retrying in the background", cfg->redis.host,
                     cfg->redis.port, r.error().message);
      } else {
        spdlog::info("redis connected ({}:{})", cfg->redis.host, cfg->redis.port);
      }
      if (limits_engine) {
        limits_engine->start();  // settle batches and the live-instance heartbeat
      }
      if (cooldown_sync) {
        // Subscribe and load shared cooldowns without holding up the migrations.
        net::co_spawn(ioc, [this]() { return cooldown_sync->start(); }, net::detached);
      }
    }
    if (cache_redis_own) {
      if (auto r = co_await cache_redis_own->connect(); !r) {
        spdlog::warn("cache redis {}:{} not reachable yet ({}); retrying in the background", cfg->cache.redis.host,
                     cfg->cache.redis.port, r.error().message);
      } else {
        spdlog::info("cache redis connected ({}:{})", cfg->cache.redis.host, cfg->cache.redis.port);
      }
    }
    if (key_invalidation) {
      net::co_spawn(ioc, [this]() { return key_invalidation->start(); }, net::detached);
    }
    if (!db) {
      co_return;
    }
    net::steady_timer tick(ioc);
    bool warned = false;
    for (;;) {
      if (!migrated) {
        auto dir = migrations_dir();
        auto applied = co_await db->run_within(
            timeouts.migrations,
            [](pqxx::connection& c, const std::string& d) { return store::postgres::migrate_blocking(c, d); }, dir);
        if (applied) {
          migrated = true;
          db_ok = true;
          spdlog::info("postgres connected; schema up to date ({} migration(s) applied now, from {})",
                       applied->size(), dir);
          co_await ensure_proxy_budget();
          reset_timer.cancel();  // the reset job looks now
          if (store_models) {
            spdlog::info("models in the database: on (merged with the config file's model_list; synced on {}{}, "
                         "and polled every {} ms)",
                         redis ? "Redis channel " : "", redis ? models_channel : "each change here",
                         db_models_poll.count());
            net::co_spawn(ioc, [this]() { return db_models_loop(); }, net::detached);
          }
        } else {
          db_ok = false;
          if (!warned) {
            spdlog::warn("postgres not ready: {}; retrying in the background", applied.error().message);
            warned = true;
            if (alerts) {
              alerts->database_error("postgres not ready: " + applied.error().message);
            }
          }
        }
      } else {
        auto r = co_await probe_db->ping(timeouts.probe_timeout);
        bool ok = r.has_value();
        if (db_ok && *db_ok != ok) {
          if (ok) {
            spdlog::info("postgres reachable again");
            // Threads still in reconnect backoff from the outage try at once.
            db->retry_now();
            if (spend_db) {
              spend_db->retry_now();
            }
          } else {
            spdlog::warn("postgres unreachable: {}", r.error().message);
            if (alerts) {
              alerts->database_error("postgres unreachable: " + r.error().message);
            }
          }
        }
        db_ok = ok;
      }
      tick.expires_after(migrated ? timeouts.probe_interval : std::chrono::milliseconds(1000));
      auto [ec] = co_await tick.async_wait(net::as_tuple(net::use_awaitable));
      if (ec || stopping) {
        co_return;
      }
    }
  }

  static std::string make_instance_id() {
    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    return std::string(host) + ":" + std::to_string(::getpid()) + ":" + core::uuid4().substr(0, 8);
  }

  // The budget reset job (docs/budgets.md): wakes when the earliest budget_reset_at is due
  // (at the latest every SWITCHYARD_BUDGET_RESET_POLL_S, default 60, for periods other
  // instances created; at once after a management write here), resets what is due under
  // Postgres's advisory lock (other instances skip that pass), and invalidates what it
  // reset in every instance.
  net::awaitable<void> reset_budgets() {
    const auto poll = std::chrono::seconds(static_cast<long>(std::max<std::size_t>(1, env_size("SWITCHYARD_BUDGET_RESET_POLL_S", 60))));
    bool warned = false;
    if (key_invalidation && (end_users || jwt_owners)) {
      key_invalidation->set_listener([this](std::string_view msg) {
        if (msg.starts_with("end_user:")) {
          if (end_users) {
            end_users->invalidate(msg.substr(9));
          }
        } else if (msg.starts_with("budget:")) {
          if (end_users) {
            end_users->clear();  // end users name budget rows too
          }
          if (jwt_owners) {
            jwt_owners->clear();
          }
        } else if (jwt_owners) {
          auth::key_invalidation::apply(*jwt_owners, msg);  // a team or user changed
        }
      });
    }
    for (;;) {
      std::chrono::steady_clock::duration wait = std::chrono::seconds(1);
      if (migrated) {
        reset_in_call = true;
        auto r = co_await db->run_within(timeouts.migrations, &store::postgres::reset_due_budgets_blocking,
                                         instance_id, cfg->litellm.budget_tz);
        if (!r) {
          if (!warned) {
            spdlog::warn("budget reset: {}; retrying", r.error().message);
            warned = true;
          }
        } else {
          warned = false;
          if (r->locked && r->entities > 0) {
            spdlog::info("budget reset: {} budget(s) reset by instance {} ({} keys, {} users, {} teams, {} "
                         "organisations, {} end users)",
                         r->entities, instance_id, r->keys.size(), r->users.size(), r->teams.size(),
                         r->organizations.size(), r->end_users.size());
            invalidate_reset(*r);
          }
        }
        reset_in_call = false;
        reset_done.cancel();
        if (stopping) {
          co_return;
        }
        if (r) {
          auto next = co_await db->run_within(timeouts.migrations, &store::postgres::next_budget_reset_due_blocking);
          wait = poll;
          if (next && *next) {
            auto until = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                **next - std::chrono::system_clock::now());
            // Past due (another instance is resetting it now): look again shortly.
            wait = std::clamp<std::chrono::steady_clock::duration>(until, std::chrono::milliseconds(50), poll);
          }
        }
      }
      reset_timer.expires_after(wait);
      auto [ec] = co_await reset_timer.async_wait(net::as_tuple(net::use_awaitable));
      if (stopping) {
        co_return;
      }
      (void)ec;  // cancelled: a management write; look again now
    }
  }

  void invalidate_reset(const store::postgres::budget_reset_result& r) {
    if (!key_invalidation) {
      return;
    }
    for (const auto& k : r.keys) {
      key_invalidation->publish(k);
    }
    for (const auto& u : r.users) {
      key_invalidation->publish_owner("user", u);
    }
    for (const auto& t : r.teams) {
      key_invalidation->publish_owner("team", t);
    }
    for (const auto& o : r.organizations) {
      key_invalidation->publish_owner("org", o);
    }
    for (const auto& e : r.end_users) {
      key_invalidation->publish_owner("end_user", e);
    }
  }

  // Budget gauges and soft budgets (docs/budgets.md): every SWITCHYARD_BUDGET_METRICS_S
  // (default 30) the keys and teams with a budget are read off the loop; teams get
  // LiteLLM's budget gauges (keys get theirs per request, metrics_observer), and an entity
  // whose spend reached its soft_budget is logged once per budget period and counted.
  net::awaitable<void> watch_budgets() {
    const auto every = std::chrono::seconds(static_cast<long>(std::max<std::size_t>(1, env_size("SWITCHYARD_BUDGET_METRICS_S", 30))));
    metrics::family* remaining = nullptr;
    metrics::family* max_budget = nullptr;
    metrics::family* crossed = nullptr;
    if (metrics_reg) {
      remaining = &metrics_reg->gauge("litellm_remaining_team_budget_metric", "Remaining budget for team",
                                      {"team_id", "team_alias"}).merge_by(metrics::merge_rule::min);
      max_budget = &metrics_reg->gauge("litellm_team_max_budget_metric", "Maximum budget set for team",
                                       {"team_id", "team_alias"}).merge_by(metrics::merge_rule::max);
      crossed = &metrics_reg->counter("switchyard_soft_budget_crossed",
                                      "Keys and teams whose spend reached their soft_budget (once per budget period)",
                                      {"level"});
    }
    std::map<std::string, std::string> warned;  // "<level>:<id>" -> the period it was warned in
    net::steady_timer tick(ioc);
    for (;;) {
      if (migrated) {
        auto rows = co_await db->run_within(timeouts.migrations, &store::postgres::budget_status_blocking, 1000);
        if (rows) {
          for (const auto& s : *rows) {
            if (s.level == "team" && s.max_budget && remaining != nullptr) {
              remaining->with({s.id, s.alias}).set(*s.max_budget - s.spend);
              max_budget->with({s.id, s.alias}).set(*s.max_budget);
            }
            const std::string who = s.level + ":" + s.id;
            if (!s.soft_budget || s.spend < *s.soft_budget) {
              warned.erase(who);  // a new period (or a raised soft_budget) may warn again
              continue;
            }
            auto [it, fresh] = warned.try_emplace(who, s.period);
            if (!fresh && it->second == s.period) {
              continue;
            }
            it->second = s.period;
            spdlog::warn("soft budget crossed: {} {}{} spend {:.6f} >= soft_budget {:.6f} (max_budget {})", s.level,
                         s.level == "key" ? core::redact_key(s.id) : s.id, s.alias.empty() ? "" : " (" + s.alias + ")",
                         s.spend, *s.soft_budget, s.max_budget ? fmt::format("{:.6f}", *s.max_budget) : "none");
            if (crossed != nullptr) {
              crossed->with({s.level}).inc();
            }
            if (alerts) {
              alerts->soft_budget_crossed(s.level, s.id, s.alias, s.spend, *s.soft_budget, s.max_budget);
            }
          }
        }
      }
      tick.expires_after(every);
      auto [ec] = co_await tick.async_wait(net::as_tuple(net::use_awaitable));
      if (ec || stopping) {
        co_return;
      }
    }
  }

  // litellm_settings.max_budget: the "litellm-proxy-budget" user row exists with it.
  net::awaitable<void> ensure_proxy_budget() {
    if (!cfg->litellm.max_budget) {
      co_return;
    }
    std::optional<std::chrono::system_clock::time_point> next;
    if (auto d = core::parse_budget_duration(cfg->litellm.budget_duration)) {
      next = core::next_budget_reset(*d, std::chrono::system_clock::now(), cfg->litellm.budget_tz);
    }
    auto r = co_await db->run_within(timeouts.migrations, &store::postgres::ensure_proxy_budget_blocking,
                                     *cfg->litellm.max_budget, cfg->litellm.budget_duration, next);
    if (!r) {
      spdlog::warn("proxy budget: could not write user {}: {}", store::postgres::proxy_budget_user,
                   r.error().message);
    }
  }

  // maximum_spend_logs_retention_period: whole day partitions older than the period are
  // dropped, once an hour (and soon after the start).
  net::awaitable<void> drop_old_spend(int days) {
    net::steady_timer tick(ioc);
    tick.expires_after(std::chrono::seconds(10));
    for (;;) {
      auto [ec] = co_await tick.async_wait(net::as_tuple(net::use_awaitable));
      if (ec || stopping) {
        co_return;
      }
      if (migrated) {
        const auto cutoff = std::chrono::floor<std::chrono::days>(std::chrono::system_clock::now()) -
                            std::chrono::days(days);
        const std::chrono::year_month_day ymd{cutoff};
        const std::string day = fmt::format("{:04}-{:02}-{:02}", static_cast<int>(ymd.year()),
                                            static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()));
        auto dropped = co_await spend_db->run_within(timeouts.migrations,
                                                     &store::postgres::drop_spend_partitions_before_blocking, day);
        if (dropped && *dropped > 0) {
          spdlog::info("spend logs: {} day partition(s) before {} dropped (retention {} days)", *dropped, day, days);
        } else if (!dropped) {
          spdlog::warn("spend logs: dropping partitions before {} failed: {}", day, dropped.error().message);
        }
      }
      tick.expires_after(std::chrono::hours(1));
    }
  }

  // ssl_verify: litellm_settings' for every https upstream, a deployment's own for its
  // api_base's origin.
  static upstream::client_options upstream_options_of(const config::config& c) {
    upstream::client_options o;
    if (c.litellm.ssl_verify) {
      o.verify_tls = c.litellm.ssl_verify->verify;
      o.ca_bundle = c.litellm.ssl_verify->ca_bundle;
    }
    for (const auto& d : c.model_list) {
      if (!d.ssl_verify) {
        continue;
      }
      std::string base = d.api_base.empty() ? std::string(d.provider->default_api_base) : d.api_base;
      if (!base.empty()) {
        o.trust_by_url.emplace_back(std::move(base), upstream::tls_trust{d.ssl_verify->verify, d.ssl_verify->ca_bundle});
      }
    }
    return o;
  }

  http::server_options make_server_options() const {
    http::server_options so;
    so.tls_cert_file = opts.ssl_certfile_path;
    so.tls_key_file = opts.ssl_keyfile_path;
    so.host = opts.host;
    so.port = opts.port;
    so.reuse_port = opts.num_workers > 1;
    so.listen_fd = opts.listen_fd;
    if (cfg->general.max_request_size_mb) {
      so.max_body_bytes = static_cast<std::size_t>(*cfg->general.max_request_size_mb * 1024.0 * 1024.0);
    }
    so.header_timeout = env_ms("SWITCHYARD_HEADER_TIMEOUT_MS", so.header_timeout);
    so.idle_timeout = env_ms("SWITCHYARD_IDLE_TIMEOUT_MS", so.idle_timeout);
    // Read at the error: the policy in use then (a reload may change the origins).
    so.early_error_headers = [this](std::string_view origin) { return cors.headers_for(origin); };
    return so;
  }

  // Management calls before the migrations ran (Postgres just started, or unreachable
  // at startup): 503, as during an outage, not a 500 about missing tables.
  static net::awaitable<void> schema_not_ready(http::responder& resp) {
    auto e = core::make_error(core::errc::unavailable,
                              "The database is not ready yet (schema migrations pending); try again shortly");
    co_await resp.send(http::error_response(e));
  }

  // Counts an LLM request as in flight for its lifetime (/health/backlog, metrics).
  struct in_flight_guard {
    std::size_t& n;
    explicit in_flight_guard(std::size_t& c) : n(c) { ++n; }
    ~in_flight_guard() { --n; }
    in_flight_guard(const in_flight_guard&) = delete;
    in_flight_guard& operator=(const in_flight_guard&) = delete;
  };

  net::awaitable<void> dispatch(http::request& req, http::responder& resp) {
    std::string path = normalize_path(req.path);
    // Compared as views: a length check first, no strlen + memcmp per literal (this is
    // the hot path of every LLM request).
    const std::string_view p = path;
    const std::string_view method = req.method;
    const bool get = method == "GET" || method == "HEAD";
    const bool post = method == "POST";
    // The config generation this request runs on, start to end (a reload meanwhile
    // serves only the requests that start after it).
    const std::shared_ptr<config_generation> g = gen;
    if (!allowed_ips.empty() && !allowed_ips.allows(req.remote_address) && !is_probe(p)) {
      // LiteLLM's answer. Probes stay open: a kubelet or a load balancer checks from
      // addresses an operator does not list.
      auto e = core::make_error(core::errc::forbidden, "Access forbidden: IP address not allowed.");
      e.type = "auth_error";
      co_await resp.send(http::error_response(e));
      co_return;
    }
    if (cors.enabled()) {
      // Preflights carry no credentials: answered here, before any auth.
      if (http::cors_policy::is_preflight(req)) {
        co_await resp.send(cors.preflight(req));
        co_return;
      }
      cors.add_headers(req.header("origin"), resp);
    }
    // What the path takes, for the Allow header of a 405 (RFC 9110 requires it).
    std::string_view allow;
    std::optional<admin::method_set> allowed_admin;
    if (p == "/health/liveliness" || p == "/health/liveness" || p == "/healthz") {
      allow = "GET, HEAD";
      if (get) {
        co_return co_await health.liveliness(req, resp);
      }
    } else if (p == "/health/readiness" || p == "/readyz") {
      allow = "GET, HEAD";
      if (get) {
        co_return co_await health.readiness(req, resp);
      }
    } else if (p == "/metrics" && metrics_reg) {
      allow = "GET, HEAD";
      if (get) {
        co_return co_await health.metrics(req, resp);
      }
    } else if (p == "/v1/models" || p == "/models") {
      allow = "GET, HEAD";
      if (get) {
        co_return co_await health.models(req, resp);
      }
    } else if (starts_with(path, "/v1/models/") || starts_with(path, "/models/")) {
      allow = "GET, HEAD";
      if (get) {
        auto id = path.substr(path.find("/models/") + 8);
        co_return co_await health.model(req, resp, std::move(id));
      }
    } else if (p == "/v1/chat/completions" || p == "/chat/completions") {
      allow = "POST";
      if (post) {
        in_flight_guard busy(llm_in_flight);
        co_return co_await g->llm->handle(req, resp, providers::call_type::chat);
      }
    } else if (p == "/v1/completions" || p == "/completions") {
      allow = "POST";
      if (post) {
        in_flight_guard busy(llm_in_flight);
        co_return co_await g->llm->handle(req, resp, providers::call_type::completion);
      }
    } else if (p == "/v1/embeddings" || p == "/embeddings") {
      allow = "POST";
      if (post) {
        in_flight_guard busy(llm_in_flight);
        co_return co_await g->llm->handle(req, resp, providers::call_type::embedding);
      }
    } else if (p == "/v1/responses" || p == "/responses") {
      allow = "POST";
      if (post) {
        in_flight_guard busy(llm_in_flight);
        co_return co_await g->llm->handle(req, resp, providers::call_type::responses);
      }
    } else if (auto r = response_route(p); !r.id.empty()) {
      // GET / DELETE /v1/responses/{id}, POST /v1/responses/{id}/cancel
      allow = r.cancel ? "POST" : "GET, HEAD, DELETE";
      if ((r.cancel && post) || (!r.cancel && (get || method == "DELETE"))) {
        co_return co_await g->responses_api->handle(req, resp, std::move(r.id), r.cancel);
      }
    } else if (p == "/v1/messages" || p == "/anthropic/v1/messages") {
      // Anthropic's Messages API (Claude Code, the Anthropic SDKs), to any model group.
      allow = "POST";
      if (post) {
        in_flight_guard busy(llm_in_flight);
        co_return co_await g->llm->handle(req, resp, providers::call_type::messages);
      }
    } else if (p == "/v1/messages/count_tokens" || p == "/anthropic/v1/messages/count_tokens") {
      allow = "POST";
      if (post) {
        co_return co_await g->llm->count_tokens(req, resp);
      }
    } else if (auto m = model_route(path); !m.model.empty()) {
      allow = "POST";
      if (post) {
        in_flight_guard busy(llm_in_flight);
        co_return co_await g->llm->handle(req, resp, m.type, m.model);
      }
    } else if (p == "/") {
      allow = "GET, HEAD";
      if (get) {
        http::response r;
        r.body = R"({"message":"Switchyard LLM gateway. OpenAI-compatible API under /v1.","version":")" +
                 std::string(SWITCHYARD_VERSION) + "\"}";
        co_await resp.send(std::move(r));
        co_return;
      }
    } else if (admin::ui_assets::handles(p)) {
      allow = "GET, HEAD";
      if (get) {
        // The path as sent: the trailing slash of /ui/ matters here (a relative asset URL,
        // the redirect from /ui).
        co_await resp.send(ui.respond(req.path));
        co_return;
      }
    } else if (admin::sso_endpoints::handles(p)) {
      if (db && !migrated) {
        co_return co_await schema_not_ready(resp);
      }
      co_return co_await sso.handle(req, resp);
    } else if (std::string_view param; const auto* route = admin::find_route(p, &param)) {
      // The management API (admin/routes.hpp): looked up only once the LLM routes above
      // did not match, so those keep their few string compares.
      allowed_admin = route->methods;
      if ((route->methods & admin::method_bit(method)) != 0) {
        if (db && !migrated && route->needs_db) {
          co_return co_await schema_not_ready(resp);
        }
        std::string path_param(param);  // named: no temporaries inside co_await (GCC 12)
        co_return co_await management.handle(req, resp, *route, std::move(path_param));
      }
    } else {
      auto e = core::make_error(core::errc::not_found, "Not Found: " + req.method + " " + req.path);
      co_await resp.send(http::error_response(e));
      co_return;
    }
    auto e = core::make_error(core::errc::bad_request, "Method Not Allowed: " + req.method + " " + req.path);
    e.status = 405;
    auto answer = http::error_response(e);
    std::string allowed(allow);
    if (allowed_admin) {
      allowed = admin::method_names(static_cast<admin::method_set>(*allowed_admin));
    }
    if (!allowed.empty()) {
      answer.headers.emplace_back("allow", std::move(allowed));
    }
    co_await resp.send(std::move(answer));
  }

  // The grace period is over: the clients' connections close, and the calls still
  // waiting on a provider are given up, so their requests end through `finish` (the
  // outcome and spend recorded) while everything they use still exists. The drain above
  // then stops the rest; a request that does not end within 2 s more (a retry's back-off,
  // a DNS lookup) is ended by the loop's destruction (~impl).
  void give_up_in_flight() {
    spdlog::warn("grace period over: closing {} remaining connection(s)", server.active_connections());
    server.force_close();
    client.abort_all();
    grace_timer.expires_after(std::chrono::seconds(2));
    grace_timer.async_wait([this](const boost::system::error_code& ec) {
      if (!ec) {
        finish_stop(std::chrono::steady_clock::now() + std::chrono::seconds(2));
      }
    });
  }

  void begin_stop(int signo) {
    if (stopping) {
      spdlog::warn("second signal {}: closing every connection now", signo);
      server.force_close();
      client.abort_all();
      finishing = false;  // a stop already under way gives up its deadline
      finish_stop(std::chrono::steady_clock::now());
      return;
    }
    stopping = true;
    db_models_timer.cancel();
    db_models_synced.cancel();
    spdlog::info("signal {}: draining (no new connections; in-flight requests get {}s to finish)", signo,
                 opts.grace_period_s);
    signals.async_wait([this](const boost::system::error_code& ec, int s) {
      if (!ec) {
        begin_stop(s);
      }
    });
    grace_deadline =
        std::chrono::steady_clock::now() + core::saturated_millis(opts.grace_period_s);
    grace_timer.expires_at(grace_deadline);
    grace_timer.async_wait([this](const boost::system::error_code& ec) {
      if (!ec) {
        give_up_in_flight();
      }
    });
    server.drain([this] {
      spdlog::info("all connections closed; exiting");
      grace_timer.cancel();
      finish_stop(std::max(grace_deadline, std::chrono::steady_clock::now() + std::chrono::seconds(2)));
    });
  }
};

gateway::gateway(options opts, std::shared_ptr<const config::config> cfg)
    : impl_(std::make_unique<impl>(std::move(opts), std::move(cfg))) {}

gateway::~gateway() = default;

int gateway::run() {
  auto& m = *impl_;
  m.server.listen();
  m.signals.async_wait([&m](const boost::system::error_code& ec, int s) {
    if (!ec) {
      m.begin_stop(s);
    }
  });
  m.on_hangup();
  {
    // A worker of a group starts with these blocked (app/supervisor.cpp): one that arrived
    // while it started is delivered now, to the handlers above.
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    for (int s : {SIGTERM, SIGINT, SIGHUP}) {
      sigaddset(&stop_signals, s);
    }
    pthread_sigmask(SIG_UNBLOCK, &stop_signals, nullptr);
  }
  if (m.metrics_group) {
    // Before the first connection: a replacement worker merges its predecessor's last
    // snapshot here, in one piece.
    m.metrics_group->start();
  }
  m.server.start();
  if (m.loop_lag) {
    m.loop_lag->start();
  }
  const auto sender_ended = [&m](std::exception_ptr) {
    --m.senders_running;
    m.senders_done.cancel();
  };
  for (auto& s : m.callback_senders) {
    ++m.senders_running;
    net::co_spawn(m.ioc, [sp = s.get()]() { return sp->run(); }, sender_ended);
  }
  if (m.alerts) {
    ++m.senders_running;
    net::co_spawn(m.ioc, [a = m.alerts.get()]() { return a->run(); }, sender_ended);
  }
  if (m.health_check.options().background) {
    spdlog::info("background health checks every {} s", m.health_check.options().interval.count() / 1000.0);
    net::co_spawn(m.ioc, [&m]() { return m.health_check.run_background(); }, net::detached);
  }
  if (m.cost_logger) {
    m.cost_logger->start();
    if (auto days = retention_days(*m.cfg)) {
      net::co_spawn(m.ioc, [&m, d = *days]() { return m.drop_old_spend(d); }, net::detached);
    }
  }
  if (m.db) {
    net::co_spawn(m.ioc, [&m]() { return m.watch_budgets(); }, net::detached);
    net::co_spawn(m.ioc, [&m]() { return m.reset_budgets(); }, [](std::exception_ptr e) {
      if (e) {
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& ex) {
          spdlog::error("budget reset job stopped: {}", ex.what());
        }
      }
    });
  }
  net::co_spawn(m.ioc, [&m]() { return m.maintain_stores(); }, [](std::exception_ptr e) {
    if (e) {
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        spdlog::error("store maintenance stopped: {}", ex.what());
      }
    }
  });
  auto ep = m.server.local_endpoint();
  if (!m.auth.enabled()) {
    spdlog::warn("no master key configured (general_settings.master_key / LITELLM_MASTER_KEY): auth is OFF");
  }
  spdlog::info("{} deployment(s) in {} model group(s) from {}", m.cfg->model_list.size(),
               m.cfg->model_names().size(), m.cfg->path);
  core::log_notice(fmt::format("switchyard listening on {}://{}:{}", m.server.tls() ? "https" : "http",
                               ep.address().to_string(), ep.port()));
  m.ioc.run();
  if (m.redis) {
    m.redis->close();
  }
  if (m.cache_redis_own) {
    m.cache_redis_own->close();
  }
  if (m.db) {
    m.db->stop();
  }
  if (m.probe_db) {
    m.probe_db->stop();
  }
  if (m.spend_db) {
    m.spend_db->stop();
  }
  return 0;
}

}  // namespace switchyard::app
