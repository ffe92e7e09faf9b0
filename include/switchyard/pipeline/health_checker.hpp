// Deployment health checks (GET /health): one minimal real call per deployment, as
// LiteLLM's health check makes it: model_info.mode picks the call (chat: a one-word prompt
// with max_tokens 1; completion: the same as a prompt; embedding: input
// ["test from litellm"]), model_info.health_check_model replaces the model called,
// model_info.health_check_timeout (else HEALTH_CHECK_TIMEOUT_SECONDS, else 60 s) bounds it.
// The answer is LiteLLM's {healthy_endpoints, unhealthy_endpoints, healthy_count,
// unhealthy_count}; endpoints carry no secret (no api_key, no headers).
//
// With general_settings.background_health_checks the checks run every
// health_check_interval seconds (300) from the start; /health then serves the last result,
// and a deployment that failed its check is put in cooldown until just after the next
// check is due (interval + its timeout), through the router's cooldowns and, with Redis,
// published to every instance (redis_cooldown_sync). A later passing check lets the
// cooldown run out instead of extending it. If every deployment of a group failed, the
// group answers 429 "No deployments available" (as for cooldowns) until one passes.
//
// Owner: app/. Thread: the loop thread. Never blocks (the calls go through the async
// upstream_caller).
#pragma once
#include "switchyard/config/config.hpp"
#include "switchyard/core/asio.hpp"
#include "switchyard/pipeline/token_broker.hpp"
#include "switchyard/pipeline/upstream_caller.hpp"
#include "switchyard/router/router.hpp"

#include <boost/asio/steady_timer.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace switchyard::pipeline {

struct health_options {
  bool background = false;                           // general_settings.background_health_checks
  std::chrono::milliseconds interval{300'000};       // general_settings.health_check_interval
  std::chrono::milliseconds default_timeout{60'000};  // HEALTH_CHECK_TIMEOUT_SECONDS
  static health_options from(const config::config& cfg);
};

class health_checker {
 public:
  // `publish`: tells other instances about a cooldown this checker decided (Redis), or empty.
  using publisher = std::function<void(const std::string& id, const router::cooldown_entry& e)>;
  health_checker(net::any_io_executor ex, std::shared_ptr<const config::config> cfg, upstream_caller& upstream,
                 router::router& rt, health_options opts, publisher publish = {});
  ~health_checker();

  // /health: the last background result when background checks are on (checked now when
  // none is there yet), else a check now. `model`: only the deployments whose model_name
  // or litellm_params.model is this (empty: all). 404 error for a model nobody has.
  net::awaitable<core::result<nlohmann::json>> report(std::string model);
  // Checks now (all deployments, or those of `model`).
  net::awaitable<nlohmann::json> check_now(std::string model);
  // The background loop; returns when stop() is called.
  net::awaitable<void> run_background();
  void stop();
  // A config reload: checks started from now on cover the new model_list (a check running
  // keeps the deployments it copied; the last background result stays until the next run).
  void set_config(std::shared_ptr<const config::config> cfg) { cfg_ = std::move(cfg); }
  const health_options& options() const { return opts_; }
  // Called by the background loop with each unhealthy endpoint of a run (alerting).
  void on_unhealthy(std::function<void(const nlohmann::json& endpoint)> fn) { on_unhealthy_ = std::move(fn); }

 private:
  struct result {
    bool healthy = false;
    nlohmann::json entry;
  };
  net::awaitable<result> check_one(config::deployment d);
  void apply_to_router(const std::vector<std::pair<std::string, result>>& results);
  std::chrono::milliseconds timeout_of(const config::deployment& d) const;
  static nlohmann::json summarize(const std::vector<std::pair<std::string, result>>& results,
                                  const std::string& model);

  net::any_io_executor ex_;
  std::shared_ptr<const config::config> cfg_;
  upstream_caller& upstream_;
  // Vertex AI and Entra ID deployments are checked with a token of their own (a second
  // cache: at most one more token fetch per credential and token life).
  token_broker tokens_;
  router::router& router_;
  health_options opts_;
  publisher publish_;
  std::function<void(const nlohmann::json&)> on_unhealthy_;
  net::steady_timer tick_;
  bool stopped_ = false;
  // The last background run: (model_name + "\n" + litellm_params.model, result) per deployment.
  std::optional<std::vector<std::pair<std::string, result>>> last_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace switchyard::pipeline
