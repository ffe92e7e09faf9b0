#include "switchyard/pipeline/alerting.hpp"
#include "switchyard/core/seconds.hpp"

#include "switchyard/core/ids.hpp"
#include "switchyard/pipeline/request_ctx.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>

namespace switchyard::pipeline {

using json = nlohmann::json;
using clock = std::chrono::steady_clock;

namespace {

// Alert queue bound: alerts are rare; past this many unsent ones new alerts are dropped.
constexpr std::size_t max_pending = 1000;
// Subjects remembered for dedup; past this the expired ones are forgotten.
constexpr std::size_t max_remembered = 10'000;

std::optional<double> number_of(const json& j, const char* key) {
  auto it = j.find(key);
  if (it != j.end() && it->is_number()) {
    return it->get<double>();
  }
  if (it != j.end() && it->is_string()) {
    try {
      return std::stod(it->get<std::string>());
    } catch (...) {
      return std::nullopt;
    }
  }
  return std::nullopt;
}

std::string money(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6f", v);
  return buf;
}

// Failures that say a provider is down (LiteLLM's outage alerts count timeouts, connection
// errors and 5xx, not the client's mistakes).
bool outage_like(const attempt& a) {
  return a.error && (a.status >= 500 || a.status == 408 || a.status == 0 || a.status == 429);
}

}  // namespace

alerting_settings alerting_settings::from(const config::config& cfg, const std::function<std::string(const char*)>& env,
                                          std::vector<std::string>& warnings) {
  alerting_settings s;
  const auto& g = cfg.general.raw;
  auto it = g.find("alerting");
  if (it == g.end() || !it->is_array()) {
    return s;
  }
  for (const auto& ch : *it) {
    if (!ch.is_string()) {
      continue;
    }
    const auto& name = ch.get_ref<const std::string&>();
    if (name == "slack") {
      s.slack_url = env("SLACK_WEBHOOK_URL");
      if (s.slack_url.empty()) {
        s.slack_url = env("ALERTING_WEBHOOK_URL");
      }
      if (s.slack_url.empty()) {
        warnings.push_back("general_settings.alerting: slack is listed but SLACK_WEBHOOK_URL is not set; no Slack alerts");
      }
    } else if (name == "webhook") {
      s.webhook_url = env("WEBHOOK_URL");
      if (s.webhook_url.empty()) {
        warnings.push_back("general_settings.alerting: webhook is listed but WEBHOOK_URL is not set; no webhook alerts");
      }
    } else {
      warnings.push_back("general_settings.alerting: '" + name + "' is not supported (slack, webhook); ignored");
    }
  }
  for (auto* u : {&s.slack_url, &s.webhook_url}) {
    if (!u->empty() && u->rfind("http://", 0) != 0 && u->rfind("https://", 0) != 0) {
      warnings.push_back("general_settings.alerting: '" + *u + "' is not an http(s) URL; ignored");
      u->clear();
    }
  }
  if (auto t = number_of(g, "alerting_threshold"); t && *t > 0) {
    s.threshold_s = *t;
  }
  if (auto at = g.find("alert_types"); at != g.end() && at->is_array()) {
    for (const auto& x : *at) {
      if (x.is_string()) {
        s.types.insert(x.get<std::string>());
      }
    }
    if (s.types.empty()) {
      s.types.insert("");  // an empty list: no alert type wanted
    }
  }
  if (auto a = g.find("alerting_args"); a != g.end() && a->is_object()) {
    if (auto v = number_of(*a, "budget_alert_ttl"); v && *v > 0) {
      s.budget_ttl = core::saturated_seconds(*v);
    }
    if (auto v = number_of(*a, "outage_alert_ttl"); v && *v > 0) {
      s.outage_ttl = core::saturated_seconds(*v);
    }
    if (auto v = number_of(*a, "minor_outage_alert_threshold"); v && *v >= 1) {
      s.minor_outage_threshold = static_cast<int>(*v);
    }
    if (auto v = number_of(*a, "major_outage_alert_threshold"); v && *v >= 1) {
      s.major_outage_threshold = static_cast<int>(*v);
    }
  }
  return s;
}

alerter::alerter(alerting_settings s, upstream_caller& up, std::unique_ptr<sender_clock> clk, sender_options send)
    : s_(std::move(s)), up_(up), clock_(std::move(clk)), send_(send) {}

alerter::~alerter() { *alive_ = false; }

bool alerter::raise(alert a) noexcept {
  try {
    if (!s_.enabled() || !s_.wants(a.type)) {
      return false;
    }
    const auto now = clock_->now();
    const auto ttl = a.type == "budget_alerts" ? s_.budget_ttl : s_.outage_ttl;
    std::string key = a.type + '\x1f' + a.subject;
    if (auto it = last_sent_.find(key); it != last_sent_.end() && now - it->second < ttl) {
      ++stats_.suppressed;
      return false;
    }
    if (last_sent_.size() >= max_remembered) {
      std::erase_if(last_sent_, [&](const auto& kv) { return now - kv.second >= std::max(s_.budget_ttl, s_.outage_ttl); });
    }
    const std::size_t channels = (s_.slack_url.empty() ? 0 : 1) + (s_.webhook_url.empty() ? 0 : 1);
    if (queue_.size() + channels > max_pending) {
      ++stats_.dropped;
      return false;
    }
    last_sent_[std::move(key)] = now;
    spdlog::warn("alert {}: {}", a.type, a.message);
    if (!s_.slack_url.empty()) {
      queue_.push_back({s_.slack_url, json{{"text", a.message}}.dump(-1, ' ', false, json::error_handler_t::replace)});
    }
    if (!s_.webhook_url.empty()) {
      json body = std::move(a.webhook);
      body["alert_type"] = a.type;
      if (!body.contains("event_message")) {
        body["event_message"] = a.message;
      }
      queue_.push_back({s_.webhook_url, body.dump(-1, ' ', false, json::error_handler_t::replace)});
    }
    ++stats_.raised;
    clock_->wake();
    return true;
  } catch (...) {
    ++stats_.dropped;
    return false;
  }
}

void alerter::on_finish(const request_ctx& ctx) noexcept {
  if (!s_.enabled()) {
    return;
  }
  try {
    const auto& o = ctx.out;
    const auto now = clock_->now();
    if (o.error && o.error->type == "budget_exceeded") {
      // The entity is in the message ("Budget has been exceeded! <who> Current cost: ...",
      // "ExceededBudget: <who> over budget. Spend=...").
      const auto& m = o.error->message;
      auto cut = m.find(" Current cost");
      if (cut == std::string::npos) {
        cut = m.find(" over budget");
      }
      std::string who = m.substr(0, cut);
      const auto& k = ctx.who.vkey;
      alert a{"budget_alerts", (k ? k->token : std::string("proxy")) + '\x1f' + who, m, json::object()};
      a.webhook = {{"event", "budget_crossed"},
                   {"event_group", k ? "key" : "proxy"},
                   {"event_message", "Budget Crossed: " + m},
                   {"token", k ? json(k->token) : json(nullptr)},
                   {"key_alias", k && !k->key_alias.empty() ? json(k->key_alias) : json(nullptr)},
                   {"user_id", k && !k->user_id.empty() ? json(k->user_id) : json(nullptr)},
                   {"team_id", k && !k->team_id.empty() ? json(k->team_id) : json(nullptr)},
                   {"team_alias", k && !k->team_alias.empty() ? json(k->team_alias) : json(nullptr)},
                   {"spend", k ? json(k->spend) : json(nullptr)},
                   {"max_budget", k && k->max_budget ? json(*k->max_budget) : json(nullptr)}};
      raise(std::move(a));
    }
    for (const auto& at : o.attempts) {
      if (!at.dep) {
        continue;
      }
      const auto& d = *at.dep;
      if (at.cooled) {
        const std::string err = at.error ? at.error->message : std::string("failed");
        alert a{"cooldown_deployment", d.id,
                "Deployment cooled down: model_group=" + at.group + " model=" + d.model + " id=" + d.id +
                    " status=" + std::to_string(at.status) + ": " + err,
                json::object()};
        a.webhook = {{"event", "cooldown_deployment"}, {"event_group", "deployment"}, {"model_group", at.group},
                     {"model", d.model}, {"model_id", d.id}, {"api_base", d.api_base},
                     {"exception_status", at.status}};
        raise(std::move(a));
      }
      if (outage_like(at)) {
        failure_for_outage(d.id, at.group, std::string(d.provider->name), at.error->message, now);
      }
    }
    if (o.received != time_point{} && o.done != time_point{}) {
      const double secs = std::chrono::duration<double>(o.done - o.received).count();
      if (secs > s_.threshold_s) {
        const auto* fa = o.final_attempt();
        const std::string subject = fa != nullptr && fa->dep ? fa->dep->id : ctx.requested_model;
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.3f", secs);
        alert a{"llm_too_slow", subject,
                "Slow request: " + std::string(buf) + " s (alerting_threshold " + std::to_string(s_.threshold_s) +
                    " s) model=" + ctx.requested_model + (fa && fa->dep ? " deployment=" + fa->dep->id : "") +
                    " call_id=" + ctx.req.call_id,
                json::object()};
        a.webhook = {{"event", "llm_too_slow"},   {"event_group", "deployment"}, {"model_group", ctx.requested_model},
                     {"model_id", subject},       {"duration_s", secs},         {"threshold_s", s_.threshold_s}};
        raise(std::move(a));
      }
    }
  } catch (const std::exception& e) {
    spdlog::error("alerting: request {} not checked: {}", ctx.req.call_id, e.what());
  }
}

void alerter::failure_for_outage(const std::string& id, const std::string& group, const std::string& provider,
                                 const std::string& error, clock::time_point now) {
  auto& q = failures_[id];
  q.push_back(now);
  while (!q.empty() && now - q.front() >= s_.outage_ttl) {
    q.pop_front();
  }
  const auto n = static_cast<int>(q.size());
  const char* level = n >= s_.major_outage_threshold ? "major" : n >= s_.minor_outage_threshold ? "minor" : nullptr;
  if (level == nullptr) {
    return;
  }
  alert a{"outage_alerts", id + '\x1f' + level,
          std::string(level == std::string("major") ? "Major" : "Minor") + " outage: " + std::to_string(n) +
              " failures of deployment " + id + " (model_group=" + group + ", provider=" + provider + ") within " +
              std::to_string(s_.outage_ttl.count()) + " s. Last error: " + error,
          json::object()};
  a.webhook = {{"event", std::string(level) + "_outage"}, {"event_group", "deployment"}, {"model_group", group},
               {"model_id", id}, {"provider", provider}, {"failures", n}, {"window_s", s_.outage_ttl.count()}};
  raise(std::move(a));
}

void alerter::soft_budget_crossed(const std::string& level, const std::string& id, const std::string& alias,
                                  double spend, double soft_budget, std::optional<double> max_budget) noexcept {
  try {
    const std::string shown = level == "key" ? core::redact_key(id) : id;
    alert a{"budget_alerts", "soft\x1f" + level + '\x1f' + id,
            "Soft budget crossed: " + level + " " + shown + (alias.empty() ? "" : " (" + alias + ")") + " spend " +
                money(spend) + " >= soft_budget " + money(soft_budget),
            json::object()};
    a.webhook = {{"event", "soft_budget_crossed"},
                 {"event_group", level},
                 {"event_message", level + " Soft Budget Crossed"},
                 {"spend", spend},
                 {"soft_budget", soft_budget},
                 {"max_budget", max_budget ? json(*max_budget) : json(nullptr)},
                 {"token", level == "key" ? json(id) : json(nullptr)},
                 {"team_id", level == "team" ? json(id) : json(nullptr)},
                 {"key_alias", level == "key" && !alias.empty() ? json(alias) : json(nullptr)},
                 {"team_alias", level == "team" && !alias.empty() ? json(alias) : json(nullptr)},
                 {"user_id", nullptr},
                 {"user_email", nullptr},
                 {"projected_exceeded_date", nullptr},
                 {"projected_spend", nullptr}};
    raise(std::move(a));
  } catch (...) {
    ++stats_.dropped;
  }
}

void alerter::deployment_unhealthy(const std::string& model_id, const std::string& model_name,
                                   const std::string& error) noexcept {
  try {
    alert a{"cooldown_deployment", model_id,
            "Deployment unhealthy (health check failed; held back from routing): model_group=" + model_name +
                " id=" + model_id + ": " + error,
            json::object()};
    a.webhook = {{"event", "deployment_unhealthy"}, {"event_group", "deployment"}, {"model_group", model_name},
                 {"model_id", model_id}, {"error", error}};
    raise(std::move(a));
  } catch (...) {
    ++stats_.dropped;
  }
}

void alerter::database_error(const std::string& message) noexcept {
  try {
    alert a{"db_exceptions", "postgres", "Database error: " + message, json::object()};
    a.webhook = {{"event", "db_exceptions"}, {"event_group", "proxy"}, {"error", message}};
    raise(std::move(a));
  } catch (...) {
    ++stats_.dropped;
  }
}

void alerter::stop() {
  stopping_ = true;
  clock_->wake();
}

net::awaitable<void> alerter::run() {
  auto alive = alive_;
  for (;;) {
    if (!*alive || (stopping_ && queue_.empty())) {
      co_return;  // stopping: what was queued went out once more first, without retries
    }
    if (queue_.empty()) {
      co_await clock_->wait_until(clock_->now() + std::chrono::seconds(60));
      continue;
    }
    pending p = std::move(queue_.front());
    queue_.pop_front();
    for (int attempt = 0;; ++attempt) {
      upstream::request req;
      req.method = "POST";
      req.url = p.url;
      req.headers.emplace_back("content-type", "application/json");
      req.body = p.body;
      req.timeout = send_.timeout;
      req.connect_timeout = std::min(send_.timeout, std::chrono::milliseconds{5000});
      auto r = co_await up_.send(std::move(req));
      if (!*alive) {
        co_return;
      }
      if (r && r->status >= 200 && r->status < 300) {
        ++stats_.sent;
        break;
      }
      const bool retryable = !r || r->status == 408 || r->status == 429 || r->status >= 500;
      if (!retryable || attempt >= send_.max_retries || stopping_) {
        ++stats_.failed;
        spdlog::warn("alerting: an alert to {} was not delivered: {}", p.url,
                     r ? "HTTP " + std::to_string(r->status) : r.error().message);
        break;
      }
      // The whole back-off: raise() wakes the clock for the idle wait above, and a new
      // alert must not bring the retry forward. Only stop() ends it early.
      const auto until = clock_->now() + backoff_delay(send_, attempt);
      while (*alive && !stopping_ && clock_->now() < until) {
        co_await clock_->wait_until(until);
      }
      if (!*alive) {
        co_return;
      }
    }
  }
}

void alerter::register_metrics(metrics::registry& reg) const {
  auto& fam = reg.counter("switchyard_alerts", "Alerts by outcome: raised (queued), suppressed (same incident within "
                                               "its window), sent, failed, dropped (queue full)",
                          {"outcome"});
  auto* raised = &fam.with({"raised"});
  auto* suppressed = &fam.with({"suppressed"});
  auto* sent = &fam.with({"sent"});
  auto* failed = &fam.with({"failed"});
  auto* dropped = &fam.with({"dropped"});
  reg.on_scrape([this, raised, suppressed, sent, failed, dropped] {
    raised->set(static_cast<double>(stats_.raised));
    suppressed->set(static_cast<double>(stats_.suppressed));
    sent->set(static_cast<double>(stats_.sent));
    failed->set(static_cast<double>(stats_.failed));
    dropped->set(static_cast<double>(stats_.dropped));
  });
}

}  // namespace switchyard::pipeline
