#include "switchyard/router/cooldowns.hpp"
#include "switchyard/core/seconds.hpp"

#include <algorithm>
#include <cmath>

namespace switchyard::router {

namespace {

constexpr auto default_window = std::chrono::seconds(60);  // LiteLLM's 60 s counter TTL
constexpr int single_deployment_failure_threshold = 1000;   // 100 % failures over this many
constexpr int min_requests_for_failure_rate = 5;

std::chrono::milliseconds to_ms(double s) {
  return std::chrono::milliseconds(core::saturated_ms_rounded(s));
}

std::optional<double> number_in(const nlohmann::json& j, const char* key) {
  if (!j.is_object()) {
    return std::nullopt;
  }
  auto it = j.find(key);
  if (it == j.end()) {
    return std::nullopt;
  }
  if (it->is_number()) {
    return it->get<double>();
  }
  if (it->is_string()) {
    try {
      return std::stod(it->get<std::string>());
    } catch (...) {
      return std::nullopt;
    }
  }
  return std::nullopt;
}

}  // namespace

bool status_should_retry(int status) { return status == 408 || status == 409 || status == 429 || status >= 500; }

cooldown_settings cooldown_settings::from(const config::config& cfg) {
  cooldown_settings s;
  const auto& raw = cfg.router.raw;
  if (raw.is_object()) {
    if (auto it = raw.find("disable_cooldowns"); it != raw.end() && it->is_boolean()) {
      s.disabled = it->get<bool>();
    }
    if (auto it = raw.find("allowed_fails_policy"); it != raw.end() && it->is_object()) {
      s.allowed_fails_policy = *it;
    }
  }
  if (cfg.router.cooldown_time) {
    s.cooldown_time_s = *cfg.router.cooldown_time;
  }
  s.allowed_fails = cfg.router.allowed_fails;
  return s;
}

cooldowns::cooldowns(cooldown_settings s) : settings_(std::move(s)) {}

double cooldowns::duration_s(const config::deployment& d, const failure_info& f) const {
  if (d.cooldown_time) {
    return *d.cooldown_time;
  }
  if (f.retry_after_s && *f.retry_after_s > 0) {
    return *f.retry_after_s;
  }
  return settings_.cooldown_time_s;
}

bool cooldowns::gate(const config::deployment& d, const failure_info& f) const {
  if (settings_.disabled) {
    return false;
  }
  const double configured = d.cooldown_time ? *d.cooldown_time : settings_.cooldown_time_s;
  if (configured <= 0) {
    return false;
  }
  if (f.message.find("APIConnectionError") != std::string::npos) {
    return false;
  }
  const int s = f.status;
  return s == 0 || s == 429 || s == 401 || s == 404 || s == 408 || s >= 500;
}

bool cooldowns::legacy_mode(const config::deployment& d) const {
  if (d.model_info.is_object() &&
      (d.model_info.contains("allowed_fails") || d.model_info.contains("allowed_fails_policy"))) {
    return true;
  }
  return (settings_.allowed_fails && *settings_.allowed_fails != 3) || settings_.allowed_fails_policy.is_object();
}

void cooldowns::on_success(const config::deployment& d, steady::time_point now) {
  auto& w = window_[d.id];
  if (w.successes + w.fails == 0 || now - w.start >= default_window) {
    w = window{now, 0, 0};
  }
  ++w.successes;
}

bool cooldowns::default_decision(const config::deployment& d, std::size_t group_size, const failure_info& f,
                                 steady::time_point now) {
  auto& w = window_[d.id];
  if (w.successes + w.fails == 0 || now - w.start >= default_window) {
    w = window{now, 0, 0};
  }
  ++w.fails;
  const bool multi = group_size > 1;
  const int total = w.successes + w.fails;
  const int status = f.status == 0 ? 500 : f.status;
  if (status == 429 && multi) {
    return true;
  }
  if (w.successes == 0 && total >= single_deployment_failure_threshold) {
    return true;
  }
  if (multi && total >= min_requests_for_failure_rate && w.fails * 2 > total) {
    return true;
  }
  return !status_should_retry(status);
}

bool cooldowns::legacy_decision(const config::deployment& d, const failure_info& f, steady::time_point now) {
  int allowed = settings_.allowed_fails.value_or(3);
  nlohmann::json policy = settings_.allowed_fails_policy;
  if (d.model_info.is_object()) {
    if (auto v = number_in(d.model_info, "allowed_fails")) {
      allowed = static_cast<int>(*v);
    }
    if (auto it = d.model_info.find("allowed_fails_policy"); it != d.model_info.end() && it->is_object()) {
      policy = *it;
    }
  }
  if (policy.is_object() && !f.error_class.empty()) {
    const std::string key = f.error_class + "AllowedFails";
    if (auto v = number_in(policy, key.c_str())) {
      allowed = static_cast<int>(*v);
    }
  }
  const auto ttl = to_ms(d.cooldown_time ? *d.cooldown_time : settings_.cooldown_time_s);
  auto& w = legacy_window_[d.id];
  if (w.fails == 0 || now - w.start >= ttl) {
    w = window{now, 0, 0};
  }
  ++w.fails;
  return w.fails > allowed;
}

std::optional<std::chrono::milliseconds> cooldowns::on_failure(const config::deployment& d, std::size_t group_size,
                                                               const failure_info& f, steady::time_point now) {
  if (!gate(d, f)) {
    // Still counted: the failure rate includes failures that cannot cool by themselves.
    if (!legacy_mode(d)) {
      auto& w = window_[d.id];
      if (w.successes + w.fails == 0 || now - w.start >= default_window) {
        w = window{now, 0, 0};
      }
      ++w.fails;
    }
    return std::nullopt;
  }
  const bool cool_it = legacy_mode(d) ? legacy_decision(d, f, now) : default_decision(d, group_size, f, now);
  if (!cool_it) {
    return std::nullopt;
  }
  const double secs = duration_s(d, f);
  if (secs <= 0) {
    return std::nullopt;
  }
  const auto dur = to_ms(secs);
  cooldown_entry e{now + dur, f.status, f.message, secs};
  cool(d.id, e);
  if (legacy_mode(d)) {
    legacy_window_.erase(d.id);
  }
  if (listener_) {
    listener_(d.id, cooled_[d.id]);
  }
  return dur;
}

bool cooldowns::is_cooled(const std::string& id, steady::time_point now) const {
  auto it = cooled_.find(id);
  return it != cooled_.end() && it->second.until > now;
}

std::optional<steady::time_point> cooldowns::deadline(const std::string& id, steady::time_point now) const {
  auto it = cooled_.find(id);
  if (it == cooled_.end() || it->second.until <= now) {
    return std::nullopt;
  }
  return it->second.until;
}

bool cooldowns::cool(const std::string& id, const cooldown_entry& e) {
  auto [it, inserted] = cooled_.try_emplace(id, e);
  if (inserted) {
    return true;
  }
  if (e.until <= it->second.until) {
    return false;
  }
  it->second = e;
  return true;
}

void cooldowns::forget(const std::string& id) {
  cooled_.erase(id);
  window_.erase(id);
  legacy_window_.erase(id);
}

std::vector<std::string> cooldowns::cooled_ids(steady::time_point now) const {
  std::vector<std::string> out;
  for (const auto& [id, e] : cooled_) {
    if (e.until > now) {
      out.push_back(id);
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace switchyard::router
