#include "switchyard/router/policy.hpp"
#include "switchyard/core/seconds.hpp"

#include <algorithm>
#include <cctype>
#include <climits>
#include <cmath>

namespace switchyard::router {

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

bool has(const std::string& hay, std::string_view needle) { return hay.find(needle) != std::string::npos; }

std::optional<int> int_in(const nlohmann::json& j, const std::string& key) {
  if (!j.is_object()) {
    return std::nullopt;
  }
  auto it = j.find(key);
  if (it == j.end()) {
    return std::nullopt;
  }
  if (it->is_number()) {
    // Clamped into int first: a client's `"num_retries": 1e300` was an undefined conversion.
    const double d = it->get<double>();
    if (std::isnan(d)) {
      return std::nullopt;
    }
    return static_cast<int>(std::clamp(d, static_cast<double>(INT_MIN), static_cast<double>(INT_MAX)));
  }
  if (it->is_string()) {
    try {
      return std::stoi(it->get<std::string>());
    } catch (...) {
      return std::nullopt;
    }
  }
  return std::nullopt;
}

const nlohmann::json* setting(const config::config& cfg, const char* key) {
  for (const nlohmann::json* sec : {&cfg.router.raw, &cfg.litellm.raw}) {
    if (sec->is_object()) {
      if (auto it = sec->find(key); it != sec->end() && !it->is_null()) {
        return &*it;
      }
    }
  }
  return nullptr;
}

void add_strings(const nlohmann::json& list, std::vector<std::string>& out) {
  if (list.is_string()) {
    out.push_back(list.get<std::string>());
    return;
  }
  if (!list.is_array()) {
    return;
  }
  for (const auto& g : list) {
    if (g.is_string()) {
      out.push_back(g.get<std::string>());
    }
  }
}

// [{group: [groups]}] (or one mapping {group: [groups]}): the entry for `key`.
const nlohmann::json* entry_for(const nlohmann::json& list, const std::string& key) {
  auto look = [&](const nlohmann::json& m) -> const nlohmann::json* {
    if (m.is_object()) {
      if (auto it = m.find(key); it != m.end()) {
        return &*it;
      }
    }
    return nullptr;
  };
  if (list.is_object()) {
    return look(list);
  }
  if (list.is_array()) {
    for (const auto& m : list) {
      if (auto* r = look(m)) {
        return r;
      }
    }
  }
  return nullptr;
}

std::vector<std::string> lookup(const nlohmann::json& list, std::string_view group) {
  std::vector<std::string> out;
  std::string g(group);
  const nlohmann::json* e = entry_for(list, g);
  if (e == nullptr) {
    if (auto slash = g.find('/'); slash != std::string::npos) {
      e = entry_for(list, g.substr(slash + 1));
    }
  }
  if (e == nullptr) {
    e = entry_for(list, "*");
  }
  if (e != nullptr) {
    add_strings(*e, out);
  }
  return out;
}

// A retry count as used: within 0 .. config::max_num_retries, whoever asked.
int bounded_retries(int n) { return std::clamp(n, 0, config::max_num_retries); }

}  // namespace

error_class classify(const core::error& e) {
  const std::string m = lower(e.message);
  if (has(m, "context_length_exceeded") || has(m, "maximum context length") || has(m, "context window") ||
      has(m, "prompt is too long") || has(m, "contextwindowexceeded")) {
    return error_class::context_window;
  }
  if (has(m, "content_policy_violation") || has(m, "content management policy") || has(m, "content_filter") ||
      has(m, "contentpolicyviolation") || has(m, "rejected as a result of the safety system")) {
    return error_class::content_policy;
  }
  switch (e.status) {
    case 401: return error_class::authentication;
    case 403: return error_class::permission;
    case 404: return error_class::not_found;
    case 408: return error_class::timeout;
    case 429: return error_class::rate_limit;
    default: break;
  }
  if (e.status >= 500 || e.code == core::errc::upstream_unreachable) {
    return error_class::internal_server;
  }
  return error_class::bad_request;
}

const char* class_name(error_class c) {
  switch (c) {
    case error_class::bad_request: return "BadRequestError";
    case error_class::authentication: return "AuthenticationError";
    case error_class::permission: return "PermissionDeniedError";
    case error_class::not_found: return "NotFoundError";
    case error_class::timeout: return "TimeoutError";
    case error_class::rate_limit: return "RateLimitError";
    case error_class::context_window: return "ContextWindowExceededError";
    case error_class::content_policy: return "ContentPolicyViolationError";
    case error_class::internal_server: return "InternalServerError";
  }
  return "InternalServerError";
}

std::optional<double> retry_after_seconds(std::string_view v) {
  if (v.empty()) {
    return std::nullopt;
  }
  std::string s(v);
  std::size_t used = 0;
  double x = 0;
  try {
    x = std::stod(s, &used);
  } catch (...) {
    return std::nullopt;
  }
  while (used < s.size() && std::isspace(static_cast<unsigned char>(s[used])) != 0) {
    ++used;
  }
  if (used != s.size() || !std::isfinite(x) || x < 0) {
    return std::nullopt;
  }
  return x;
}

retry_settings retry_settings::from(const config::config& cfg) {
  retry_settings s;
  s.router_num_retries = cfg.router.num_retries;
  s.litellm_num_retries = cfg.litellm.num_retries;
  if (cfg.router.raw.is_object()) {
    if (auto it = cfg.router.raw.find("retry_policy"); it != cfg.router.raw.end() && it->is_object()) {
      s.retry_policy = *it;
    }
    if (cfg.router.model_group_retry_policy.is_object()) {
      s.model_group_retry_policy = cfg.router.model_group_retry_policy;
    }
    if (auto it = cfg.router.raw.find("retry_after"); it != cfg.router.raw.end() && it->is_number()) {
      s.min_retry_after_s = std::max(0.0, it->get<double>());
    }
  }
  return s;
}

int max_retries(const retry_settings& s, const nlohmann::json& body) {
  if (auto v = int_in(body, "num_retries")) {
    return bounded_retries(*v);
  }
  if (s.router_num_retries) {
    return bounded_retries(*s.router_num_retries);
  }
  if (s.litellm_num_retries) {
    return bounded_retries(*s.litellm_num_retries);
  }
  return 2;
}

const nlohmann::json& retry_settings::policy_for(std::string_view group) const {
  if (!group.empty() && model_group_retry_policy.is_object()) {
    if (auto it = model_group_retry_policy.find(std::string(group));
        it != model_group_retry_policy.end() && it->is_object()) {
      return *it;
    }
  }
  return retry_policy;
}

int retries_for(const retry_settings& s, const nlohmann::json& body, error_class c, std::string_view group) {
  if (auto v = int_in(body, "num_retries")) {
    return bounded_retries(*v);
  }
  std::string key = class_name(c);
  // retry_policy keys drop "Exceeded"/"Denied" the LiteLLM way: ContentPolicyViolationErrorRetries,
  // BadRequestErrorRetries, ...
  if (auto v = int_in(s.policy_for(group), key + "Retries")) {
    return bounded_retries(*v);
  }
  return max_retries(s, body);
}

bool should_retry(const core::error& e, error_class c, const group_health& h, bool has_generic_fallbacks,
                  bool retry_policy_matches) {
  if (e.status == 400 || c == error_class::context_window || c == error_class::content_policy) {
    // A provider 400 is never retried (LiteLLM retries it: upstream bug #19216); context-window
    // and content-policy errors go to their fallbacks.
    return false;
  }
  if (c == error_class::not_found) {
    return false;
  }
  if (c == error_class::rate_limit && h.healthy == 0 && has_generic_fallbacks) {
    return false;
  }
  if (c == error_class::authentication && h.deployments <= 1) {
    return false;
  }
  if (h.healthy == 0) {
    return retry_policy_matches;
  }
  return true;
}

std::chrono::milliseconds backoff(int retry, const group_health& h, std::optional<double> retry_after_s,
                                  double min_retry_after_s, double jitter_u) {
  double secs = 0;
  if (h.other_healthy > 0) {
    secs = 0;
  } else if (retry_after_s && *retry_after_s > 0 && *retry_after_s <= 60) {
    secs = *retry_after_s;
  } else {
    const double base = std::min(0.5 * std::pow(2.0, std::max(0, retry)), 8.0);
    secs = base * (1.0 - 0.25 * std::clamp(jitter_u, 0.0, 1.0));
  }
  secs = std::max(secs, min_retry_after_s);
  return std::chrono::milliseconds(core::saturated_ms_rounded(secs));
}

fallback_settings fallback_settings::from(const config::config& cfg) {
  fallback_settings s;
  if (auto* v = setting(cfg, "fallbacks")) {
    s.fallbacks = *v;
  }
  if (auto* v = setting(cfg, "context_window_fallbacks")) {
    s.context_window_fallbacks = *v;
  }
  if (auto* v = setting(cfg, "content_policy_fallbacks")) {
    s.content_policy_fallbacks = *v;
  }
  if (auto* v = setting(cfg, "default_fallbacks")) {
    s.default_fallbacks = *v;
  }
  if (auto* v = setting(cfg, "max_fallbacks"); v != nullptr && v->is_number()) {
    s.max_fallbacks = static_cast<int>(std::clamp(v->get<double>(), 0.0, static_cast<double>(INT_MAX)));
  }
  return s;
}

std::vector<std::string> fallbacks_for(const fallback_settings& s, std::string_view group, error_class c) {
  if (c == error_class::context_window) {
    if (auto v = lookup(s.context_window_fallbacks, group); !v.empty()) {
      return v;
    }
  } else if (c == error_class::content_policy) {
    if (auto v = lookup(s.content_policy_fallbacks, group); !v.empty()) {
      return v;
    }
  }
  auto v = lookup(s.fallbacks, group);
  if (v.empty()) {
    add_strings(s.default_fallbacks, v);
  }
  return v;
}

std::vector<std::string> request_fallbacks(const nlohmann::json& body, std::string_view group, bool& present) {
  present = false;
  std::vector<std::string> out;
  if (!body.is_object()) {
    return out;
  }
  auto it = body.find("fallbacks");
  if (it == body.end() || it->is_null()) {
    return out;
  }
  present = true;
  if (it->is_array() && std::all_of(it->begin(), it->end(), [](const nlohmann::json& x) { return x.is_string(); })) {
    add_strings(*it, out);
    return out;
  }
  return lookup(*it, group);
}

std::string py_list(const std::vector<std::string>& v) {
  std::string out = "[";
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (i > 0) {
      out += ", ";
    }
    out += "'" + v[i] + "'";
  }
  return out + "]";
}

}  // namespace switchyard::router
