#include "switchyard/pipeline/attempt_loop.hpp"
#include "switchyard/pipeline/llm_pipeline.hpp"
#include "switchyard/spend/prices.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>

namespace switchyard::pipeline {

using clock = std::chrono::steady_clock;
using json = nlohmann::json;

namespace {

bool body_flag(const json& body, const char* key) {
  auto it = body.find(key);
  return it != body.end() && ((it->is_boolean() && it->get<bool>()) || (it->is_string() && *it == "true"));
}

}  // namespace

attempt_loop::attempt_loop(router::router& rt, router::retry_settings retry, router::fallback_settings fallbacks,
                           attempt_runner& runner)
    : router_(rt), retry_(std::move(retry)), fallbacks_(std::move(fallbacks)), runner_(runner) {}

net::awaitable<std::optional<core::error>> attempt_loop::run(request_ctx& ctx) {
  ctx.max_retries = router::max_retries(retry_, ctx.body);
  auto err = co_await try_group(ctx, ctx.requested_model, true);
  if (!err || ctx.resp.client_gone() || body_flag(ctx.body, "disable_fallbacks")) {
    co_return err;
  }
  bool from_request = false;
  auto groups = router::request_fallbacks(ctx.body, ctx.requested_model, from_request);
  if (!from_request) {
    auto group = router_.resolve(ctx.requested_model);
    groups = router::fallbacks_for(fallbacks_, group.empty() ? ctx.requested_model : group, router::classify(*err));
  }
  if (groups.empty()) {
    co_return err;
  }
  std::vector<std::string> tried{ctx.requested_model};
  auto listed = groups;
  auto last = co_await run_fallbacks(ctx, std::move(groups), *err, 1, tried, !from_request);
  if (!last || ctx.resp.client_gone()) {
    co_return last;
  }
  last->message +=
      "\nReceived Model Group=" + ctx.requested_model + "\nAvailable Model Group Fallbacks=" + router::py_list(listed);
  co_return last;
}

net::awaitable<std::optional<core::error>> attempt_loop::run_fallbacks(request_ctx& ctx,
                                                                       std::vector<std::string> groups,
                                                                       core::error last, int depth,
                                                                       std::vector<std::string>& tried, bool chain) {
  if (depth > fallbacks_.max_fallbacks) {
    co_return last;
  }
  for (const auto& g : groups) {
    if (std::find(tried.begin(), tried.end(), g) != tried.end()) {
      continue;
    }
    tried.push_back(g);
    ++ctx.attempted_fallbacks;
    spdlog::info("falling back from a failed model group to '{}' (call_id={}): {}", g, ctx.req.call_id, last.message);
    auto e = co_await try_group(ctx, g, false);
    if (!e || ctx.resp.client_gone()) {
      co_return e;
    }
    last = std::move(*e);
    if (chain) {
      auto resolved = router_.resolve(g);
      auto next = router::fallbacks_for(fallbacks_, resolved.empty() ? g : resolved, router::classify(last));
      if (!next.empty()) {
        auto r = co_await run_fallbacks(ctx, std::move(next), last, depth + 1, tried, true);
        if (!r) {
          co_return std::nullopt;
        }
        last = std::move(*r);
      }
    }
  }
  co_return last;
}

net::awaitable<std::optional<core::error>> attempt_loop::try_group(request_ctx& ctx, std::string group,
                                                                   bool primary) {
  ctx.attempted_retries = 0;
  if (primary && body_flag(ctx.body, "mock_testing_fallbacks")) {
    co_return core::upstream_status_error(
        500, "litellm.InternalServerError: This is a mock exception for model=" + group + ", to trigger a fallback.");
  }
  if (primary && body_flag(ctx.body, "mock_testing_rate_limit_error")) {
    co_return core::upstream_status_error(
        429, "litellm.RateLimitError: This is a mock exception for model=" + group + ", to trigger a rate limit error.");
  }
  router::pick_options opts{ctx.estimated_tokens, ctx.stream, {}, !primary};
  std::vector<std::string> tags;
  if (router_.cfg().router.enable_tag_filtering) {
    tags = router::request_tags(ctx.body);
  }
  for (int retry = 0;; ++retry) {
    auto picked = router_.pick(group, ctx.route, opts, &tags);
    if (!picked) {
      co_return picked.error();
    }
    ctx.dep_ref = std::move(*picked);
    ctx.dep = ctx.dep_ref.get();
    const auto dep = ctx.dep_ref;  // this attempt's deployment, whatever later attempts pick
    if (!providers::supports(*dep->provider, ctx.type)) {
      co_return core::make_error(core::errc::bad_request,
                                 std::string(dep->provider->name) + " does not support " + ctx.route +
                                     " (model=" + dep->model_name + ")",
                                 "model");
    }
    auto err = co_await attempt_on(ctx, group, retry);
    if (!err) {
      if (ctx.late_failure) {
        // Counts for cooldowns; no retry.
        ctx.out.attempts.back().cooled = router_.on_failure(*dep, group, *ctx.late_failure).has_value();
      } else if (!ctx.out.attempts.back().mock) {
        // The answer's tokens as the spend path bills them: each count held to
        // spend::max_billed_tokens (an absurd report must not starve the deployment).
        spend::tokens billed{ctx.usage.prompt_tokens, ctx.usage.completion_tokens};
        spend::bound_tokens(billed);
        const long long total = std::clamp(ctx.usage.total_tokens, 0LL, spend::max_billed_tokens);
        router_.on_success(*dep, ctx.out.attempts.back().end - ctx.out.attempts.back().start, ctx.ttft,
                           std::max(total, billed.prompt + billed.completion));
      }
      co_return std::nullopt;
    }
    if (ctx.resp.client_gone()) {
      co_return err;
    }
    opts.avoid.push_back(dep->id);
    if (auto cooled = router_.on_failure(*dep, group, *err)) {
      ctx.out.attempts.back().cooled = true;
      spdlog::warn("deployment {} of '{}' cooled down for {} ms after: {}", dep->id, group, cooled->count(),
                   err->message);
    }
    auto wait = retry_wait(ctx, group, *err, retry);
    if (!wait) {
      co_return err;
    }
    if (wait->count() > 0) {
      net::steady_timer timer(co_await net::this_coro::executor);
      timer.expires_after(*wait);
      // A client that leaves during the back-off ends the retries at once: nobody would
      // read the answer, and the next attempt would still be a billed provider call.
      const bool streamed = ctx.resp.started();
      if (!streamed) {
        ctx.resp.watch_disconnect([&timer] { timer.cancel(); });
      }
      co_await timer.async_wait(net::as_tuple(net::use_awaitable));
      const bool gone = ctx.resp.client_gone();
      if (!streamed) {
        ctx.resp.stop_watching();
      }
      if (gone || ctx.resp.client_gone()) {
        co_return err;  // nobody to answer any more
      }
    }
    ctx.attempted_retries = retry + 1;
  }
}

net::awaitable<std::optional<core::error>> attempt_loop::attempt_on(request_ctx& ctx, const std::string& group,
                                                                    int retry) {
  const auto mr = ctx.body.find("mock_response");
  const bool is_mock = ctx.type != providers::call_type::embedding &&
                       (ctx.dep->mock_response.has_value() || (mr != ctx.body.end() && mr->is_string()));
  {
    auto& a = ctx.out.attempts.emplace_back();
    a.dep = ctx.dep_ref;
    a.group = group;
    a.retry = retry;
    a.fallback = ctx.attempted_fallbacks;
    a.mock = is_mock;
    if (!ctx.out.trace.trace_id.empty()) {
      a.span_id = new_span_id();
    }
  }
  ctx.attempt_started = clock::now();
  ctx.out.attempts.back().start = ctx.attempt_started;
  ctx.ttft = {};
  ctx.late_failure.reset();
  ctx.usage = {};
  ctx.upstream_status = 0;
  ctx.upstream_cancelled = false;
  std::optional<core::error> err;
  {
    std::optional<router::in_flight> busy;  // a mock answer is no provider call
    if (!is_mock) {
      busy.emplace(router_.track(*ctx.dep));
    }
    err = co_await runner_.attempt(ctx);
  }
  auto& a = ctx.out.attempts.back();  // the runner never adds attempts: still ours
  a.end = clock::now();
  a.usage = ctx.usage;
  a.cancelled = ctx.upstream_cancelled;
  if (ctx.ttft.count() > 0) {
    a.first_token = a.start + ctx.ttft;
  }
  if (err) {
    a.error = err;
    a.status = ctx.upstream_status != 0 ? ctx.upstream_status : err->status;
  } else {
    a.error = ctx.late_failure;
    a.status = ctx.upstream_status != 0 ? ctx.upstream_status : 200;
  }
  co_return err;
}

std::optional<std::chrono::milliseconds> attempt_loop::retry_wait(request_ctx& ctx, const std::string& group,
                                                                  const core::error& err, int retry) {
  const auto cls = router::classify(err);
  const auto policy_group = router_.resolve(group);
  if (retry >= router::retries_for(retry_, ctx.body, cls, policy_group)) {
    return std::nullopt;
  }
  router::group_health h;
  h.deployments = router_.group_size(group);
  h.healthy = router_.healthy_count(group);
  const bool failed_is_healthy = !router_.cooldown_state().is_cooled(ctx.dep->id, clock::now());
  h.other_healthy = h.healthy - (failed_is_healthy && h.healthy > 0 ? 1 : 0);
  bool in_request = false;
  const auto listed = router::request_fallbacks(ctx.body, group, in_request);
  const auto resolved = router_.resolve(group);
  const bool generic =
      !body_flag(ctx.body, "disable_fallbacks") &&
      !(in_request ? listed
                   : router::fallbacks_for(fallbacks_, resolved.empty() ? group : resolved,
                                           router::error_class::rate_limit))
           .empty();
  const auto& policy = retry_.policy_for(policy_group);
  const bool policy_match = policy.is_object() && policy.contains(std::string(router::class_name(cls)) + "Retries");
  if (!router::should_retry(err, cls, h, generic, policy_match)) {
    return std::nullopt;
  }
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  const auto wait = router::backoff(retry, h, router::retry_after_seconds(err.retry_after), retry_.min_retry_after_s,
                                    unit(rng_));
  spdlog::info("retrying '{}' in {} ms (retry {} of {}, call_id={}): {}", group, wait.count(), retry + 1,
               router::retries_for(retry_, ctx.body, cls, policy_group), ctx.req.call_id, err.message);
  return wait;
}

}  // namespace switchyard::pipeline
