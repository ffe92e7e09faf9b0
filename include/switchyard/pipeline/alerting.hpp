// Alerting (general_settings.alerting: ["slack", "webhook"]): budget crossed and soft
// budget crossed, deployment cooled down or failing its health check, provider outage
// (many failures of a deployment within a window), slow requests (alerting_threshold),
// database errors. Each alert goes to Slack (SLACK_WEBHOOK_URL: {"text": ...}) and/or a
// webhook (WEBHOOK_URL: LiteLLM's WebhookEvent JSON). One incident sends one alert per
// window: an alert whose (type, subject) was sent less than its ttl ago is suppressed.
// See docs/observability.md, "Alerting".
//
// raise() and the observer only queue (bounded; full: dropped and counted); a sender on
// the loop POSTs with the upstream client, retrying with backoff. Never fails a request.
// Owner: app/. Thread: the loop thread. Never blocks.
#pragma once
#include "switchyard/config/config.hpp"
#include "switchyard/metrics/registry.hpp"
#include "switchyard/pipeline/callbacks.hpp"
#include "switchyard/pipeline/stage.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>

namespace switchyard::pipeline {

struct alerting_settings {
  std::string slack_url;    // empty: no Slack
  std::string webhook_url;  // empty: no webhook
  double threshold_s = 300;  // alerting_threshold: slower requests alert (llm_too_slow)
  std::set<std::string> types;  // alert_types; empty: all
  std::chrono::seconds budget_ttl{24 * 3600};  // alerting_args.budget_alert_ttl
  std::chrono::seconds outage_ttl{60};         // alerting_args.outage_alert_ttl: other alerts' window
  int minor_outage_threshold = 5;              // alerting_args.minor_outage_alert_threshold
  int major_outage_threshold = 10;             // alerting_args.major_outage_alert_threshold
  bool enabled() const { return !slack_url.empty() || !webhook_url.empty(); }
  bool wants(const std::string& type) const { return types.empty() || types.count(type) != 0; }
  // From general_settings and the env (SLACK_WEBHOOK_URL, WEBHOOK_URL); warnings for
  // channels named without their URL go to `warnings`.
  static alerting_settings from(const config::config& cfg, const std::function<std::string(const char*)>& env,
                                std::vector<std::string>& warnings);
};

struct alert {
  std::string type;     // LiteLLM's alert type: budget_alerts, cooldown_deployment, outage_alerts, ...
  std::string subject;  // what the incident is about (dedup key within the type)
  std::string message;  // human text (Slack)
  nlohmann::json webhook = nlohmann::json::object();  // the webhook body (event, event_group, event_message, ...)
};

struct alert_stats {
  std::uint64_t raised = 0;      // accepted and queued
  std::uint64_t suppressed = 0;  // same incident within its window
  std::uint64_t sent = 0;        // POSTs accepted
  std::uint64_t failed = 0;      // POSTs given up after the retries
  std::uint64_t dropped = 0;     // queue full
};

class alerter final : public observer {
 public:
  using clock_fn = std::function<std::chrono::steady_clock::time_point()>;
  alerter(alerting_settings s, upstream_caller& up, std::unique_ptr<sender_clock> clk, sender_options send = {});
  ~alerter() override;

  // Dedups and queues; false when suppressed, not wanted (alert_types) or dropped.
  bool raise(alert a) noexcept;
  // Budget refusals, cooled-down deployments, outages and slow requests of a request.
  void on_finish(const request_ctx& ctx) noexcept override;

  void soft_budget_crossed(const std::string& level, const std::string& id, const std::string& alias, double spend,
                           double soft_budget, std::optional<double> max_budget) noexcept;
  void deployment_unhealthy(const std::string& model_id, const std::string& model_name,
                            const std::string& error) noexcept;
  void database_error(const std::string& message) noexcept;

  net::awaitable<void> run();  // the sender: co_spawn on the loop
  void stop();
  const alert_stats& stats() const { return stats_; }
  const alerting_settings& settings() const { return s_; }
  void register_metrics(metrics::registry& reg) const;

 private:
  struct pending {
    std::string url;
    std::string body;
  };
  void failure_for_outage(const std::string& id, const std::string& group, const std::string& provider,
                          const std::string& error, std::chrono::steady_clock::time_point now);

  alerting_settings s_;
  upstream_caller& up_;
  std::unique_ptr<sender_clock> clock_;
  sender_options send_;
  std::map<std::string, std::chrono::steady_clock::time_point> last_sent_;  // "type\x1fsubject"
  std::unordered_map<std::string, std::deque<std::chrono::steady_clock::time_point>> failures_;  // per deployment
  std::deque<pending> queue_;
  alert_stats stats_;
  bool stopping_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace switchyard::pipeline
