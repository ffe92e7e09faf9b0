// Deployment cooldowns: LiteLLM's gate, default mode and legacy mode (same decisions),
// with two deliberate fixes: re-cooling extends the deadline, and remote cooldowns (from
// other instances, through Redis) are applied the moment they arrive.
//
// Pure state, no I/O: the router owns one; the Redis sync (redis_cooldown_sync.hpp) listens
// to local decisions and feeds in remote ones.
// Owner: router. Thread: the loop thread (not thread-safe). Never blocks.
#pragma once
#include "switchyard/config/config.hpp"
#include "switchyard/core/error.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace switchyard::router {

using steady = std::chrono::steady_clock;

struct cooldown_settings {
  bool disabled = false;               // router_settings.disable_cooldowns
  double cooldown_time_s = 5.0;        // router_settings.cooldown_time (LiteLLM default 5 s)
  std::optional<int> allowed_fails;    // router_settings.allowed_fails (3 = unset)
  nlohmann::json allowed_fails_policy; // router_settings.allowed_fails_policy (object or null)

  static cooldown_settings from(const config::config& cfg);
};

// One failed attempt as the cooldown logic sees it.
struct failure_info {
  int status = 0;                       // HTTP status; 0 for a non-HTTP error
  std::string message;                  // the error text (the APIConnectionError gate reads it)
  std::optional<double> retry_after_s;  // the provider's Retry-After, seconds
  std::string error_class;              // LiteLLM exception name, e.g. "RateLimitError"
};

struct cooldown_entry {
  steady::time_point until;
  int status = 0;
  std::string message;
  double cooldown_time_s = 0;
};

class cooldowns {
 public:
  // Called after a local decision cooled (or extended) a deployment; not for remote updates.
  using listener = std::function<void(const std::string& id, const cooldown_entry& e)>;

  explicit cooldowns(cooldown_settings s = {});

  void set_listener(listener l) { listener_ = std::move(l); }
  const cooldown_settings& settings() const { return settings_; }

  void on_success(const config::deployment& d, steady::time_point now);
  // Counts the failure and decides. Returns the cooldown duration when the deployment was
  // cooled by it (the deadline is then max(old, now + duration)).
  std::optional<std::chrono::milliseconds> on_failure(const config::deployment& d, std::size_t group_size,
                                                      const failure_info& f, steady::time_point now);

  // The duration LiteLLM would use: deployment cooldown_time, else Retry-After, else router.
  double duration_s(const config::deployment& d, const failure_info& f) const;

  bool is_cooled(const std::string& id, steady::time_point now) const;
  std::optional<steady::time_point> deadline(const std::string& id, steady::time_point now) const;
  // Cools `id` until `until` unless already cooled for longer. Returns true if the deadline
  // moved. Does not call the listener (used for remote updates and by on_failure).
  bool cool(const std::string& id, const cooldown_entry& e);
  // Ids cooled right now (for messages).
  std::vector<std::string> cooled_ids(steady::time_point now) const;

  // A config reload: the new router_settings apply to decisions from now on (cooldowns
  // already running keep their deadline), and a deployment that changed or left loses its
  // cooldown and failure counts (it is another endpoint now).
  void set_settings(cooldown_settings s) { settings_ = std::move(s); }
  void forget(const std::string& id);

  // Whether this failure may cool at all (the gate of _is_cooldown_required).
  bool gate(const config::deployment& d, const failure_info& f) const;

 private:
  struct window {
    steady::time_point start{};
    int successes = 0;
    int fails = 0;
  };
  bool legacy_mode(const config::deployment& d) const;
  bool default_decision(const config::deployment& d, std::size_t group_size, const failure_info& f,
                        steady::time_point now);
  bool legacy_decision(const config::deployment& d, const failure_info& f, steady::time_point now);

  cooldown_settings settings_;
  listener listener_;
  std::unordered_map<std::string, cooldown_entry> cooled_;
  std::unordered_map<std::string, window> window_;         // default mode, 60 s windows
  std::unordered_map<std::string, window> legacy_window_;  // legacy mode, TTL = cooldown_time
};

// LiteLLM's _should_retry(status): 408, 409, 429 and 5xx.
bool status_should_retry(int status);

}  // namespace switchyard::router
