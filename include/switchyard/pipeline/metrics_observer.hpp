// The Prometheus observer of `finish`: LiteLLM's metric families (names, label names,
// types and latency buckets as LiteLLM's Prometheus logger has them) fed from the outcome
// record of each request. See docs/observability.md for the list and what each counts.
//
// Per request it costs no lock and, in the steady state, no allocation: the series a
// request touches on its usual path (per caller, requested model, deployment and status)
// are resolved once and kept in a small cache of pointers (`bundle`), found with one hash
// lookup of a key written into a reused buffer; failures and retries look their series up
// family by family (also without allocating once seen). The cache is bounded; when full it
// is emptied (the series stay, only the shortcuts go).
//
// Owner: app/. Thread: the loop thread. Never blocks.
#pragma once
#include "switchyard/core/word_hash.hpp"
#include "switchyard/metrics/registry.hpp"
#include "switchyard/pipeline/stage.hpp"
#include "switchyard/router/router.hpp"
#include "switchyard/spend/pricer.hpp"

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace switchyard::pipeline {

struct metrics_options {
  // LiteLLM leaves the end_user label empty unless
  // litellm_settings.enable_end_user_cost_tracking_prometheus_only is true.
  bool end_user_label = false;
  // hashed_api_key of requests made with the master key (its sha256, as LiteLLM reports).
  std::string master_key_hash;
  std::size_t max_cached_bundles = 4096;
};

class metrics_observer final : public observer {
 public:
  metrics_observer(metrics::registry& reg, spend::pricer& prices, const router::router& rt, metrics_options opts);
  ~metrics_observer() override;
  void on_finish(const request_ctx& ctx) noexcept override;

 private:
  struct families;
  struct bundle;
  struct labels;
  bundle& bundle_for(const request_ctx& ctx, const labels& l);
  void record_attempts(const request_ctx& ctx, const labels& l, bundle& b);
  void record_cache(const request_ctx& ctx, const labels& l, bundle& b);
  void sample_deployments();

  metrics::registry& reg_;
  spend::pricer& prices_;
  const router::router& router_;
  metrics_options opts_;
  std::unique_ptr<families> f_;
  std::unordered_map<std::string, std::unique_ptr<bundle>, core::word_hasher, std::equal_to<>> bundles_;
  std::string key_;  // reused for bundle lookups
  std::unique_ptr<bundle> scratch_;  // a bundle with an overflow series (not cached)
  // litellm_deployment_state: the last attempt's outcome per deployment id (0 healthy,
  // 1 partial outage: its last attempt failed); cooled-down deployments read 2 at scrape.
  std::unordered_map<std::string, int, core::word_hasher, std::equal_to<>> last_state_;
};

}  // namespace switchyard::pipeline
