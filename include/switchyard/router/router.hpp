// Model name -> deployment, as LiteLLM's Router picks one. Groups are the model_list entries sharing a
// model_name; model_group_alias maps names to groups; wildcard groups (`*`, `openai/*`)
// take any name they match and send the matched part as the upstream model. pick() drops
// cooled-down deployments and those at max_parallel_requests, applies the pre-call checks
// (context window, lowest `order`) when enabled, then the routing strategy:
//   simple-shuffle         random, weighted by weight, else rpm, else tpm, else uniform
//   least-busy             fewest attempts in flight (begin/end through track())
//   latency-based-routing  lowest average latency of the samples within
//                          routing_strategy_args.ttl (default 3600 s), choosing at random
//                          among those within lowest * (1 + lowest_latency_buffer); streams
//                          use time to first token; a deployment without samples counts as 0
//   usage-based-routing-v2 lowest tokens this minute among the deployments still under
//                          their rpm/tpm (this request counted: rpm + 1, tpm + prompt
//                          estimate); none left -> 429. Counts are per wall-clock minute,
//                          local, and (with Redis) the shared totals of every instance as
//                          last read (redis_cooldown_sync polls them) plus this instance's
//                          increments made after that read was sent
//   usage-based-routing (v1) is served as v2; others as simple-shuffle (warning at startup)
// Cooldowns (cooldowns.hpp) are kept here; the Redis sync plugs into cooldowns().
// Owner: app/, one per config snapshot. Thread: the loop thread (not thread-safe: it owns a
// random generator and counters). Never blocks.
#pragma once
#include "switchyard/config/config.hpp"
#include "switchyard/core/error.hpp"
#include "switchyard/router/cooldowns.hpp"
#include "switchyard/spend/prices.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace switchyard::router {

enum class strategy { simple_shuffle, least_busy, latency_based, usage_based };

struct pick_options {
  std::size_t estimated_tokens = 0;  // for the context-window pre-call check; 0 = unknown
  bool stream = false;               // latency-based: rank by time to first token
  // Deployments that already failed this request: avoided while another one is available
  // (a retry goes to a different healthy deployment when there is one).
  std::vector<std::string> avoid;
  // Fallbacks only: a name that is no group may be a deployment's model_info.id, which is
  // then used directly, cooldown or not (LiteLLM's fallback lookup does the same).
  bool allow_deployment_id = false;
};

// A request's tags: body `tags`, else metadata.tags (a list of strings, or one string).
std::vector<std::string> request_tags(const nlohmann::json& body);

class router;

// What a config reload changes, by deployment identity (config::deployment::id: the
// model_info.id, else a hash of model_name and litellm_params as written). A deployment is
// unchanged when its id is in both configs with the same fingerprint; changed when the
// id stays but its model_name, litellm_params or model_info differ (an explicit id whose
// params were edited).
struct deployment_diff {
  std::vector<std::string> unchanged, changed, added, removed;
};
deployment_diff diff_deployments(const config::config& before, const config::config& after);
// sha256 of a deployment's model_name, litellm_params (as resolved) and model_info.
std::string deployment_fingerprint(const config::deployment& d);

// Counts one attempt as in flight on a deployment until destroyed (least-busy,
// max_parallel_requests). Movable; the router must outlive it.
class in_flight {
 public:
  in_flight() = default;
  in_flight(router* r, std::string id);
  in_flight(in_flight&& o) noexcept;
  in_flight& operator=(in_flight&& o) noexcept;
  in_flight(const in_flight&) = delete;
  in_flight& operator=(const in_flight&) = delete;
  ~in_flight();

 private:
  router* r_ = nullptr;
  std::string id_;
};

class router {
 public:
  explicit router(std::shared_ptr<const config::config> cfg);

  // Swaps in the tables of `next` (groups, aliases, wildcards, strategy, pre-call checks,
  // cooldown settings). The state kept per deployment (cooldowns and failure windows,
  // latency samples, usage counts) survives for the unchanged deployments and is dropped
  // for the changed and removed ones; in-flight counts always survive (their attempts
  // still end). Deployments already handed out stay valid: they share ownership of the
  // config they came from. Returns the diff it applied.
  deployment_diff reload(std::shared_ptr<const config::config> next);

  // The group name a requested model resolves to (aliases, then wildcards), or empty.
  std::string resolve(std::string_view requested) const;
  // The model group a request is served as: resolve()'s, except for a wildcard match,
  // which is a group of its own named as requested (each model a pattern matches is a
  // different model; the deployment picked for it carries that name too). Empty when
  // nothing matches.
  std::string served_group(std::string_view requested) const;
  // Picks one deployment of the group `requested` resolves to. For a wildcard group the
  // result is a copy with the requested name filled in; otherwise it aliases the config.
  // With enable_tag_filtering, the group is first narrowed to the deployments whose
  // litellm_params.tags match `tags` (plus those tagged "default"; a request without
  // tags gets the "default" ones when there are any, else every deployment); no match:
  // 400 naming the tags. Errors: unknown model -> 400 naming it; every deployment cooled down -> 429 "No
  // deployments available for selected model, Try again in N seconds..." with Retry-After N
  // (N = seconds until the first one comes back); all at max_parallel_requests -> 429;
  // pre-call checks leaving nothing -> 400 ContextWindowExceededError.
  // `tags`: the request's tags (request_tags), for tag routing; nullptr: none.
  core::result<std::shared_ptr<const config::deployment>> pick(std::string_view requested, std::string_view route,
                                                               const pick_options& opts = {},
                                                               const std::vector<std::string>* tags = nullptr);
  // Public model names: groups plus non-hidden aliases, in config order.
  std::vector<std::string> public_models() const;
  const config::config& cfg() const { return *cfg_; }
  strategy routing_strategy() const { return strategy_; }

  // Deployments in the group `requested` resolves to, and how many are not cooled down.
  std::size_t group_size(std::string_view requested) const;
  std::size_t healthy_count(std::string_view requested) const;
  // Every deployment of the group `requested` resolves to (wildcard groups: copies with the
  // requested name filled in); empty for an unknown model. For worst-case prices.
  std::vector<std::shared_ptr<const config::deployment>> deployments_of(std::string_view requested) const;

  // Attempt bookkeeping: track() while the attempt runs; then on_success / on_failure.
  // usage-based-routing-v2 also counts the request for the deployment's rpm here.
  in_flight track(const config::deployment& d);
  int in_flight_count(const std::string& id) const;
  // latency: whole attempt; ttft: time to first token (streams; zero if none); tokens: total
  // tokens of the answer (usage-based routing; 0 if unknown), counted up to
  // max_routed_tokens.
  void on_success(const config::deployment& d, std::chrono::steady_clock::duration latency,
                  std::chrono::steady_clock::duration ttft, long long tokens = 0);
  // The most tokens usage-based routing counts for one answer: its prompt and completion,
  // each believed up to spend::max_billed_tokens, as the spend path bills them. A count
  // beyond any call's (a broken or hostile provider's 10^15) would otherwise keep its
  // deployment above every other for the rest of the minute, however little it served
  // after, and overflow the minute's counter.
  static constexpr long long max_routed_tokens = 2 * spend::max_billed_tokens;

  // usage-based-routing-v2: this minute's counts. `minute` = epoch seconds / 60.
  struct usage_counts {
    long long minute = 0;
    long long rpm = 0;
    long long tpm = 0;
  };
  static long long current_minute();
  // The minute counts belong to: current_minute(), or what a test's clock says.
  long long minute_now() const { return minute_clock_ ? minute_clock_() : current_minute(); }
  void set_minute_clock(std::function<long long()> clock) { minute_clock_ = std::move(clock); }
  usage_counts usage_of(const std::string& id) const;  // effective counts for this minute
  usage_counts local_usage_of(const std::string& id) const;  // this instance's, this minute
  // Called with every local increment (the Redis sync adds them to the shared counters).
  using usage_listener = std::function<void(const std::string& id, long long minute, long long rpm_delta,
                                            long long tpm_delta)>;
  void set_usage_listener(usage_listener l) { usage_listener_ = std::move(l); }
  // Totals read from Redis (all instances) for `minute`; `local_at_send`: local_usage_of(id)
  // when the read was sent (increments before it are in the totals: one connection, in order).
  void set_shared_usage(const std::string& id, long long minute, long long rpm, long long tpm,
                        usage_counts local_at_send);
  // Counts the failure; returns the cooldown applied, if this failure cooled the deployment.
  std::optional<std::chrono::milliseconds> on_failure(const config::deployment& d, std::string_view group,
                                                      const core::error& e);

  cooldowns& cooldown_state() { return cooldowns_; }
  const cooldowns& cooldown_state() const { return cooldowns_; }
  // Every configured deployment id (for loading shared cooldowns at startup).
  std::vector<std::string> deployment_ids() const;

  // Rough prompt size: characters of messages / prompt / input divided by 4.
  static std::size_t estimate_tokens(const nlohmann::json& body);

 private:
  friend class in_flight;
  struct stats {
    int in_flight = 0;
    std::deque<std::pair<std::chrono::steady_clock::time_point, double>> latency;  // seconds
    std::deque<std::pair<std::chrono::steady_clock::time_point, double>> ttft;
  };
  struct match {
    std::string group;         // key of groups_
    std::string wildcard_part; // for wildcard groups: what `*` matched
    bool wildcard = false;
  };
  void build_tables();
  match find(std::string_view requested) const;
  static std::vector<const config::deployment*> filter_by_tags(const std::vector<const config::deployment*>& deps,
                                                               const std::vector<std::string>& tags, bool match_any);
  std::shared_ptr<const config::deployment> materialize(const config::deployment* d, const match& m,
                                                        std::string_view requested) const;
  const config::deployment* choose(const std::vector<const config::deployment*>& c, const pick_options& opts);
  double average(const std::deque<std::pair<std::chrono::steady_clock::time_point, double>>& q) const;
  void trim(std::deque<std::pair<std::chrono::steady_clock::time_point, double>>& q,
            std::chrono::steady_clock::time_point now) const;

  std::shared_ptr<const config::config> cfg_;
  std::unordered_map<std::string, std::vector<const config::deployment*>> groups_;
  std::vector<std::string> wildcard_groups_;  // patterns ending in '*', longest prefix first
  std::unordered_map<std::string, std::string> aliases_;  // alias -> group
  std::vector<std::string> hidden_aliases_;
  strategy strategy_ = strategy::simple_shuffle;
  bool pre_call_checks_ = false;
  std::chrono::duration<double> latency_ttl_{3600.0};
  double latency_buffer_ = 0.0;
  cooldowns cooldowns_;
  std::unordered_map<std::string, stats> stats_;
  struct shared_usage {
    usage_counts totals;
    usage_counts local_at_send;
  };
  std::unordered_map<std::string, usage_counts> usage_local_;
  std::unordered_map<std::string, shared_usage> usage_shared_;
  usage_listener usage_listener_;
  std::function<long long()> minute_clock_;
  void add_usage(const std::string& id, long long rpm, long long tpm);
  std::mt19937_64 rng_;
};

}  // namespace switchyard::router
