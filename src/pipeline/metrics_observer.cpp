#include "switchyard/pipeline/metrics_observer.hpp"

#include "switchyard/pipeline/request_ctx.hpp"
#include "switchyard/pipeline/spend_observer.hpp"
#include "switchyard/router/policy.hpp"

#include <spdlog/spdlog.h>

#include <array>
#include <charconv>

namespace switchyard::pipeline {

namespace {

using metrics::family;
using metrics::series;
using sv = std::string_view;

// LiteLLM's latency buckets (seconds), for every latency histogram it defines.
const std::vector<double>& litellm_latency_buckets() {
  static const std::vector<double> b{0.005, 0.00625, 0.0125, 0.025, 0.05, 0.1, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0,
                                     3.5,   4.0,     4.5,    5.0,   5.5,  6.0, 6.5, 7.0, 7.5, 8.0, 8.5, 9.0,
                                     9.5,   10.0,    15.0,   20.0,  25.0, 30.0, 60.0, 120.0, 180.0, 240.0, 300.0};
  return b;
}

double seconds(std::chrono::steady_clock::duration d) { return std::chrono::duration<double>(d).count(); }

// A status code as text, in a buffer owned by the caller (no allocation).
struct status_text {
  std::array<char, 12> buf{};
  sv view;
  explicit status_text(int status) {
    auto r = std::to_chars(buf.data(), buf.data() + buf.size(), status);
    view = sv(buf.data(), static_cast<std::size_t>(r.ptr - buf.data()));
  }
};

}  // namespace

// The label values of one request, as views into its context (valid during on_finish).
struct metrics_observer::labels {
  sv end_user, hashed_api_key, api_key_alias, team, team_alias, user, requested_model;
  // Of the deployment that answered (empty without one).
  sv model, litellm_model_name, model_group, model_id, api_base, api_provider;
};

struct metrics_observer::families {
  family& requests;
  family& proxy_total;
  family& proxy_failed;
  family& spend;
  family& total_tokens;
  family& input_tokens;
  family& output_tokens;
  family& api_latency;
  family& total_latency;
  family& overhead;
  family& ttft;
  family& dep_success;
  family& dep_failure;
  family& dep_total;
  family& dep_state;
  family& dep_cooled;
  family& fallback_ok;
  family& fallback_failed;
  family& key_remaining;
  family& key_max;
  family& cache_hits;
  family& cache_misses;
  family& cached_tokens;
  family& dep_rpm_used;
  family& dep_tpm_used;
};

// The series one request touches on its usual path, resolved once per combination of
// caller, requested model, deployment and status.
struct metrics_observer::bundle {
  series* requests = nullptr;
  series* proxy_total = nullptr;
  series* spend = nullptr;
  series* total_tokens = nullptr;
  series* input_tokens = nullptr;
  series* output_tokens = nullptr;
  series* api_latency = nullptr;
  series* total_latency = nullptr;
  series* overhead = nullptr;
  series* ttft = nullptr;  // made on the first stream
  // Made on the first cacheable request (none while the response cache is off).
  series* cache_hits = nullptr;
  series* cache_misses = nullptr;
  series* cached_tokens = nullptr;
  // Made on the first request of a key with a max_budget.
  series* key_remaining = nullptr;
  series* key_max = nullptr;
  // The answering deployment's series when its attempt succeeded (the usual path).
  series* dep_total = nullptr;
  series* dep_success = nullptr;
  int* dep_state = nullptr;  // its entry in last_state_ (nodes never move)
};

metrics_observer::metrics_observer(metrics::registry& reg, spend::pricer& prices, const router::router& rt,
                                   metrics_options opts)
    : reg_(reg), prices_(prices), router_(rt), opts_(std::move(opts)) {
  const std::vector<std::string> user_model{"end_user", "hashed_api_key", "api_key_alias", "model",
                                            "team",     "team_alias",     "user"};
  const std::vector<std::string> user_requested{"end_user", "hashed_api_key", "api_key_alias", "requested_model",
                                                "team",     "team_alias",     "user",          "status_code"};
  const std::vector<std::string> user_failed{"end_user", "hashed_api_key", "api_key_alias",    "requested_model",
                                             "team",     "team_alias",     "user",             "exception_status",
                                             "exception_class"};
  const std::vector<std::string> tokens{"end_user", "hashed_api_key", "api_key_alias", "model",
                                        "team",     "team_alias",     "user",          "requested_model"};
  const std::vector<std::string> dep{"requested_model", "litellm_model_name", "model_id", "api_base", "api_provider",
                                     "hashed_api_key",  "api_key_alias",      "team",     "team_alias"};
  auto dep_failed = dep;
  dep_failed.insert(dep_failed.end(), {"exception_status", "exception_class"});
  const std::vector<std::string> deployment{"litellm_model_name", "model_id", "api_base", "api_provider"};
  const std::vector<std::string> fallback{"requested_model", "fallback_model",   "hashed_api_key", "api_key_alias",
                                          "team",            "team_alias",       "exception_status",
                                          "exception_class"};
  const std::vector<std::string> cache_labels{"end_user", "hashed_api_key", "api_key_alias", "model",
                                              "team",     "team_alias",     "user"};
  const auto& b = litellm_latency_buckets();
  f_ = std::unique_ptr<families>(new families{
      reg.counter("litellm_requests_metric", "Total number of LLM calls to litellm - track total per API Key, team, user",
                  user_model),
      reg.counter("litellm_proxy_total_requests_metric",
                  "Total number of requests made to the proxy server - track number of client side requests",
                  user_requested),
      reg.counter("litellm_proxy_failed_requests_metric",
                  "Total number of failed responses from proxy - the client did not get a success response from "
                  "litellm proxy",
                  user_failed),
      reg.counter("litellm_spend_metric", "Total spend on LLM requests", user_model),
      reg.counter("litellm_total_tokens_metric", "Total number of input + output tokens from LLM requests", tokens),
      reg.counter("litellm_input_tokens_metric", "Total number of input tokens from LLM requests", tokens),
      reg.counter("litellm_output_tokens_metric", "Total number of output tokens from LLM requests", tokens),
      reg.histogram("litellm_llm_api_latency_metric", "Total latency (seconds) for a models LLM API call",
                    {"model", "hashed_api_key", "api_key_alias", "team", "team_alias", "requested_model", "end_user",
                     "user"},
                    b),
      reg.histogram("litellm_request_total_latency_metric",
                    "Total latency (seconds) for a request to LiteLLM",
                    {"end_user", "hashed_api_key", "api_key_alias", "requested_model", "team", "team_alias", "user",
                     "model"},
                    b),
      reg.histogram("litellm_overhead_latency_metric", "Latency overhead (seconds) added by the gateway",
                    {"model_group", "api_provider", "api_base", "litellm_model_name", "hashed_api_key",
                     "api_key_alias"},
                    b),
      reg.histogram("litellm_llm_api_time_to_first_token_metric",
                    "Time to first token for a models LLM API call (streaming only)",
                    {"model", "hashed_api_key", "api_key_alias", "team", "team_alias"}, b),
      reg.counter("litellm_deployment_success_responses", "LLM Deployment Analytics - Total number of successful LLM API calls via litellm", dep),
      reg.counter("litellm_deployment_failure_responses",
                  "LLM Deployment Analytics - Total number of failed LLM API calls for a specific LLM deployment",
                  dep_failed),
      reg.counter("litellm_deployment_total_requests",
                  "LLM Deployment Analytics - Total number of LLM API calls via litellm - success + failure", dep),
      reg.gauge("litellm_deployment_state",
                "LLM Deployment Analytics - The state of the deployment: 0 = healthy, 1 = partial outage, 2 = complete "
                "outage",
                deployment)
          .merge_by(metrics::merge_rule::max),  // a worker group shows the worst state seen
      reg.counter("litellm_deployment_cooled_down",
                  "LLM Deployment Analytics - Number of times a deployment has been cooled down by LiteLLM load "
                  "balancing logic. exception_status is the status of the exception that caused the cooldown",
                  {"litellm_model_name", "model_id", "api_base", "api_provider", "exception_status"}),
      reg.counter("litellm_deployment_successful_fallbacks",
                  "LLM Deployment Analytics - Number of successful fallback requests from primary model -> fallback "
                  "model",
                  fallback),
      reg.counter("litellm_deployment_failed_fallbacks",
                  "LLM Deployment Analytics - Number of failed fallback requests from primary model -> fallback model",
                  fallback),
      reg.gauge("litellm_remaining_api_key_budget_metric", "Remaining budget for api key",
                {"hashed_api_key", "api_key_alias"})
          .merge_by(metrics::merge_rule::min),  // the freshest figure is the lowest
      reg.gauge("litellm_api_key_max_budget_metric", "Maximum budget set for api key",
                {"hashed_api_key", "api_key_alias"})
          .merge_by(metrics::merge_rule::max),
      // The response cache (docs/cache.md); `model` is the requested model group, as a hit
      // has no deployment.
      reg.counter("litellm_cache_hits_metric", "Total number of LiteLLM cache hits", cache_labels),
      reg.counter("litellm_cache_misses_metric", "Total number of LiteLLM cache misses", cache_labels),
      reg.counter("litellm_cached_tokens_metric", "Total tokens served from the LiteLLM cache", cache_labels),
      // usage-based-routing-v2's counts for this minute, which it routes by: every
      // instance's when they share Redis (docs/observability.md).
      reg.gauge("switchyard_deployment_rpm_used",
                "Requests counted for the deployment this minute by usage-based routing (all instances sharing "
                "Redis)",
                deployment)
          .merge_by(metrics::merge_rule::max),  // each worker sees the shared count
      reg.gauge("switchyard_deployment_tpm_used",
                "Tokens counted for the deployment this minute by usage-based routing (all instances sharing Redis)",
                deployment)
          .merge_by(metrics::merge_rule::max),
  });
  reg.on_scrape([this] { sample_deployments(); });
}

metrics_observer::~metrics_observer() = default;

void metrics_observer::sample_deployments() {
  const auto now = std::chrono::steady_clock::now();
  for (const auto& d : router_.cfg().model_list) {
    int state = 0;
    if (auto it = last_state_.find(sv(d.id)); it != last_state_.end()) {
      state = it->second;
    }
    if (router_.cooldown_state().is_cooled(d.id, now)) {
      state = 2;
    }
    const std::initializer_list<sv> labels{sv(d.model), sv(d.id), sv(d.api_base), sv(d.provider->name)};
    f_->dep_state.with(labels).set(state);
    if (router_.routing_strategy() == router::strategy::usage_based) {
      const auto used = router_.usage_of(d.id);
      f_->dep_rpm_used.with(labels).set(static_cast<double>(used.rpm));
      f_->dep_tpm_used.with(labels).set(static_cast<double>(used.tpm));
    }
  }
}

metrics_observer::bundle& metrics_observer::bundle_for(const request_ctx& ctx, const labels& l) {
  status_text st(ctx.out.status);
  // Whether an LLM call was made: only then are its series (requests, spend, tokens,
  // latency, overhead) made, so a refused request leaves no empty series behind.
  const auto* fa = ctx.out.final_attempt();
  const sv called = fa != nullptr ? sv("1") : sv("0");
  key_.clear();
  for (sv part : {l.hashed_api_key, l.end_user, l.requested_model, l.model_id, sv(l.model), st.view, called}) {
    key_.append(part);
    key_.push_back('\x1f');
  }
  // Aliases and team come from the key record, which may change (a refreshed key): part
  // of the key too, so an edited alias gets its own series.
  for (sv part : {l.api_key_alias, l.team, l.team_alias, l.user}) {
    key_.append(part);
    key_.push_back('\x1f');
  }
  if (auto it = bundles_.find(sv(key_)); it != bundles_.end()) {
    return *it->second;
  }
  if (bundles_.size() >= opts_.max_cached_bundles) {
    bundles_.clear();
  }
  auto b = std::make_unique<bundle>();
  const sv ek = l.end_user, hk = l.hashed_api_key, al = l.api_key_alias, tm = l.team, ta = l.team_alias,
           us = l.user, rm = l.requested_model, m = l.model;
  b->proxy_total = &f_->proxy_total.with({ek, hk, al, rm, tm, ta, us, st.view});
  b->total_latency = &f_->total_latency.with({ek, hk, al, rm, tm, ta, us, m});
  if (fa != nullptr) {
    b->requests = &f_->requests.with({ek, hk, al, m, tm, ta, us});
    b->spend = &f_->spend.with({ek, hk, al, m, tm, ta, us});
    b->total_tokens = &f_->total_tokens.with({ek, hk, al, m, tm, ta, us, rm});
    b->input_tokens = &f_->input_tokens.with({ek, hk, al, m, tm, ta, us, rm});
    b->output_tokens = &f_->output_tokens.with({ek, hk, al, m, tm, ta, us, rm});
    b->api_latency = &f_->api_latency.with({m, hk, al, tm, ta, rm, ek, us});
    b->overhead = &f_->overhead.with({l.model_group, l.api_provider, l.api_base, l.litellm_model_name, hk, al});
  }
  if (fa != nullptr && fa->dep && !fa->mock) {
    const sv mn = l.litellm_model_name, id = l.model_id, base = l.api_base, pr = l.api_provider;
    b->dep_total = &f_->dep_total.with({rm, mn, id, base, pr, hk, al, tm, ta});
    b->dep_success = &f_->dep_success.with({rm, mn, id, base, pr, hk, al, tm, ta});
    auto it = last_state_.find(id);
    if (it == last_state_.end()) {
      it = last_state_.emplace(std::string(id), 0).first;
    }
    b->dep_state = &it->second;
  }
  // A bundle holding an overflow series is not kept: each request must go through with(),
  // which counts the folded sample.
  bool folded = false;
  for (const series* x : {b->requests, b->proxy_total, b->spend, b->total_tokens, b->input_tokens, b->output_tokens,
                          b->api_latency, b->total_latency, b->overhead, b->dep_total, b->dep_success}) {
    folded = folded || (x != nullptr && x->folded());
  }
  if (folded) {
    scratch_ = std::move(b);
    return *scratch_;
  }
  auto& out = *b;
  bundles_.emplace(key_, std::move(b));
  return out;
}

void metrics_observer::record_attempts(const request_ctx& ctx, const labels& l, bundle& b) {
  const auto* fa = ctx.out.final_attempt();
  for (const auto& a : ctx.out.attempts) {
    if (a.mock || !a.dep || a.cancelled) {
      continue;  // no provider call, or one its client abandoned: says nothing of the deployment
    }
    if (&a == fa && !a.error && b.dep_total != nullptr) {
      b.dep_total->inc();
      b.dep_success->inc();
      *b.dep_state = 0;
      continue;
    }
    const auto& d = *a.dep;
    const sv model_name = d.model, id = d.id, base = d.api_base, provider = d.provider->name;
    const sv hk = l.hashed_api_key, al = l.api_key_alias, tm = l.team, ta = l.team_alias, rm = l.requested_model;
    f_->dep_total.with({rm, model_name, id, base, provider, hk, al, tm, ta}).inc();
    int state = 0;
    if (a.error) {
      status_text st(a.status);
      const char* cls = router::class_name(router::classify(*a.error));
      f_->dep_failure.with({rm, model_name, id, base, provider, hk, al, tm, ta, st.view, sv(cls)}).inc();
      if (a.cooled) {
        f_->dep_cooled.with({model_name, id, base, provider, st.view}).inc();
      }
      state = 1;
    } else {
      f_->dep_success.with({rm, model_name, id, base, provider, hk, al, tm, ta}).inc();
    }
    if (auto it = last_state_.find(id); it != last_state_.end()) {
      it->second = state;
    } else {
      last_state_.emplace(std::string(id), state);
    }
  }
}

// A cacheable request: a hit (and the tokens it served) or a miss. The series are made on
// first use; one that holds the overflow series is looked up (and counted) again each time.
void metrics_observer::record_cache(const request_ctx& ctx, const labels& l, bundle& b) {
  const auto& o = ctx.out;
  const sv model = ctx.cache_group.empty() ? l.requested_model : sv(ctx.cache_group);
  const auto resolve = [&](series*& slot, family& fam) -> series& {
    if (slot != nullptr) {
      return *slot;
    }
    auto& s = fam.with({l.end_user, l.hashed_api_key, l.api_key_alias, model, l.team, l.team_alias, l.user});
    if (!s.folded()) {
      slot = &s;
    }
    return s;
  };
  if (o.cache_hit) {
    resolve(b.cache_hits, f_->cache_hits).inc();
    if (o.usage.known) {
      resolve(b.cached_tokens, f_->cached_tokens)
          .inc(static_cast<double>(o.usage.prompt_tokens + o.usage.completion_tokens));
    }
  } else {
    resolve(b.cache_misses, f_->cache_misses).inc();
  }
}

void metrics_observer::on_finish(const request_ctx& ctx) noexcept {
  try {
    const auto& o = ctx.out;
    labels l;
    if (const auto& k = ctx.who.vkey) {
      l.hashed_api_key = k->token;
      l.api_key_alias = k->key_alias;
      l.team = k->team_id;
      l.team_alias = k->team_alias;
      l.user = k->user_id;
    } else if (ctx.who.is_master) {
      l.hashed_api_key = opts_.master_key_hash;
    }
    if (opts_.end_user_label) {  // only read when the option asks for the label
      l.end_user = ctx.end_user();
    }
    l.requested_model = ctx.requested_model;
    const auto* fa = o.final_attempt();
    if (fa != nullptr && fa->dep) {
      const auto& d = *fa->dep;
      l.model = d.upstream_model;
      l.litellm_model_name = d.model;
      l.model_group = d.model_name;
      l.model_id = d.id;
      l.api_base = d.api_base;
      l.api_provider = d.provider->name;
    }
    auto& b = bundle_for(ctx, l);
    const bool ok = o.status > 0 && o.status < 400 && !o.error;
    b.proxy_total->inc();
    if (!ok) {
      status_text st(o.status);
      const char* cls = o.error ? router::class_name(router::classify(*o.error)) : "";
      f_->proxy_failed
          .with({l.end_user, l.hashed_api_key, l.api_key_alias, l.requested_model, l.team, l.team_alias, l.user,
                 st.view, sv(cls)})
          .inc();
    }
    if (fa != nullptr) {
      // An LLM call was made (or answered by mock_response).
      b.requests->inc();
      const auto bill = billed_of(ctx, prices_);
      b.spend->inc(bill.spend);
      b.input_tokens->inc(static_cast<double>(bill.t.prompt));
      b.output_tokens->inc(static_cast<double>(bill.t.completion));
      b.total_tokens->inc(static_cast<double>(bill.t.prompt + bill.t.completion));
      b.api_latency->observe(seconds(fa->end - fa->start));
      if (fa->first_token != time_point{}) {
        if (b.ttft == nullptr) {
          b.ttft = &f_->ttft.with({l.model, l.hashed_api_key, l.api_key_alias, l.team, l.team_alias});
        }
        b.ttft->observe(seconds(fa->first_token - fa->start));
        if (b.ttft->folded()) {
          b.ttft = nullptr;  // looked up (and counted) again next time
        }
      }
      record_attempts(ctx, l, b);
      if (o.fallbacks() > 0 && !o.attempts.empty() && o.attempts.front().error) {
        const auto& first = o.attempts.front();
        status_text st(first.status);
        const char* cls = router::class_name(router::classify(*first.error));
        auto& fam = ok ? f_->fallback_ok : f_->fallback_failed;
        fam.with({l.requested_model, sv(fa->group), l.hashed_api_key, l.api_key_alias, l.team, l.team_alias, st.view,
                  sv(cls)})
            .inc();
      }
    }
    if (o.received != time_point{} && o.done != time_point{}) {
      const auto total = o.done - o.received;
      b.total_latency->observe(seconds(total));
      if (fa != nullptr) {
        b.overhead->observe(std::max(0.0, seconds(total - ctx.upstream_time)));
      }
    }
    if (!ctx.cache_key.empty()) {
      record_cache(ctx, l, b);
    }
    if (ctx.who.vkey && ctx.who.vkey->max_budget) {
      // Made here when missing: the key may have been given its budget after this
      // bundle was made (the bundle's key does not hold the budget).
      if (b.key_remaining == nullptr) {
        b.key_remaining = &f_->key_remaining.with({l.hashed_api_key, l.api_key_alias});
        b.key_max = &f_->key_max.with({l.hashed_api_key, l.api_key_alias});
      }
      b.key_max->set(*ctx.who.vkey->max_budget);
      b.key_remaining->set(*ctx.who.vkey->max_budget - ctx.who.vkey->spend);
      if (b.key_remaining->folded() || b.key_max->folded()) {
        b.key_remaining = b.key_max = nullptr;  // looked up (and counted) again next time
      }
    }
  } catch (const std::exception& e) {
    // Out of memory while creating a series: the request is not failed for it.
    spdlog::error("metrics: request {} not recorded: {}", ctx.req.call_id, e.what());
  }
}

}  // namespace switchyard::pipeline
