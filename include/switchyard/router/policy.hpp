// Retry and fallback decisions, as LiteLLM's Router makes them: error classes, how many
// retries, whether an error is retried within its group, the backoff, and which
// fallback groups.
// Pure functions over config and the request body; no state, no I/O.
// Owner: none (free functions). Thread: any. Never blocks.
#pragma once
#include "switchyard/config/config.hpp"
#include "switchyard/core/error.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace switchyard::router {

enum class error_class {
  bad_request,      // 400 (and other 4xx not listed below)
  authentication,   // 401
  permission,       // 403
  not_found,        // 404
  timeout,          // 408
  rate_limit,       // 429
  context_window,   // a 400 saying the prompt is too long
  content_policy,   // a 400 saying the content was filtered
  internal_server,  // 5xx and connection errors
};

error_class classify(const core::error& e);
// LiteLLM exception name, e.g. "RateLimitError" (retry_policy: name + "Retries",
// allowed_fails_policy: name + "AllowedFails").
const char* class_name(error_class c);
// Retry-After as seconds, when it is a number (HTTP dates are ignored).
std::optional<double> retry_after_seconds(std::string_view v);

struct retry_settings {
  std::optional<int> router_num_retries;   // router_settings.num_retries
  std::optional<int> litellm_num_retries;  // litellm_settings.num_retries
  nlohmann::json retry_policy;             // router_settings.retry_policy (object or null)
  // router_settings.model_group_retry_policy: {group: policy}; a group listed here uses
  // its own policy instead of retry_policy (LiteLLM's get_num_retries_from_retry_policy).
  nlohmann::json model_group_retry_policy = nlohmann::json::object();
  double min_retry_after_s = 0;            // router_settings.retry_after

  static retry_settings from(const config::config& cfg);
  // The retry policy that applies to `group` (its own, else retry_policy; may be null).
  const nlohmann::json& policy_for(std::string_view group) const;
};

// The request's retry budget when nothing failed yet (x-litellm-max-retries):
// body num_retries > router_settings.num_retries > litellm_settings.num_retries > 2
// (LiteLLM's code default, openai.DEFAULT_MAX_RETRIES).
int max_retries(const retry_settings& s, const nlohmann::json& body);
// For a given error: body num_retries > retry_policy[<Class>Retries] > max_retries(...).
// `group`: the model group of the failed attempt (model_group_retry_policy).
int retries_for(const retry_settings& s, const nlohmann::json& body, error_class c, std::string_view group = {});

struct group_health {
  std::size_t deployments = 0;  // in the group
  std::size_t healthy = 0;      // not cooled down right now (including the one that failed)
  std::size_t other_healthy = 0;  // healthy, other than the one that failed
};

// LiteLLM's should_retry_this_error, except that a 400 is never retried (context-window and
// content-policy errors are 400s: they go straight to their fallbacks). 404: never. 429: not
// when no deployment is healthy and generic fallbacks exist. 401: only in multi-deployment
// groups. No healthy deployment: only when `retry_policy_matches` (a retry_policy entry for
// the error class). Everything else (408, 5xx, connection errors, other 4xx): yes.
bool should_retry(const core::error& e, error_class c, const group_health& h, bool has_generic_fallbacks,
                  bool retry_policy_matches);

// Wait before retry number `retry` (0-based): 0 when another healthy deployment remains;
// else the provider's Retry-After if 0 < x <= 60 s; else min(0.5·2^retry, 8) s scaled by a
// jitter factor (1 - 0.25·jitter_u, jitter_u in [0,1)); never less than min_retry_after_s.
std::chrono::milliseconds backoff(int retry, const group_health& h, std::optional<double> retry_after_s,
                                  double min_retry_after_s, double jitter_u);

struct fallback_settings {
  nlohmann::json fallbacks;                 // [{group: [groups]}]
  nlohmann::json context_window_fallbacks;  // same shape
  nlohmann::json content_policy_fallbacks;  // same shape
  nlohmann::json default_fallbacks;         // [groups]
  int max_fallbacks = 5;

  // router_settings wins over litellm_settings, key by key.
  static fallback_settings from(const config::config& cfg);
};

// The fallback groups for `group` after an error of class `c`, from the config lists:
// the error picks the list (context window / content policy / generic, the first two
// falling back to generic when they have no entry); within a list: the exact group, then
// the name without its provider prefix, then "*"; generic: then default_fallbacks.
std::vector<std::string> fallbacks_for(const fallback_settings& s, std::string_view group, error_class c);
// A request body's `fallbacks`: a list of group names, or the config shape; empty if absent.
// `present` is set when the body has the key (it then replaces the config).
std::vector<std::string> request_fallbacks(const nlohmann::json& body, std::string_view group, bool& present);
// Python-style list for messages: ['a', 'b'].
std::string py_list(const std::vector<std::string>& v);

}  // namespace switchyard::router
