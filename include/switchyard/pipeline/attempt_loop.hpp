// Retries inside fallbacks, as LiteLLM's router does: the requested group with its
// retries (each attempt re-picks a deployment, avoiding those that failed), then, on
// failure and unless disabled, its fallback groups in order (each with its own retries;
// config fallbacks chain up to max_fallbacks deep). Every attempt is recorded in the
// request's outcome. The loop talks to the router (pick, track, success/failure) and to
// an attempt_runner that makes one provider call; both run in-process, so the loop is
// unit-tested with a fake runner or a fake upstream (tests/unit/pipeline/).
// Owner: llm_pipeline. Thread: the loop thread. Never blocks (backoff waits on a timer).
#pragma once
#include "switchyard/core/asio.hpp"
#include "switchyard/core/error.hpp"
#include "switchyard/pipeline/request_ctx.hpp"
#include "switchyard/router/policy.hpp"
#include "switchyard/router/router.hpp"

#include <optional>
#include <random>
#include <string>
#include <vector>

namespace switchyard::pipeline {

// One provider call on ctx.dep. nullopt: the client was answered (success, a stream that
// failed after its first byte: ctx.late_failure, or the client left); else the error,
// nothing sent yet. Sets ctx.usage, ctx.ttft, ctx.upstream_status as it learns them.
class attempt_runner {
 public:
  virtual ~attempt_runner() = default;
  virtual net::awaitable<std::optional<core::error>> attempt(request_ctx& ctx) = 0;
};

class attempt_loop {
 public:
  attempt_loop(router::router& rt, router::retry_settings retry, router::fallback_settings fallbacks,
               attempt_runner& runner);

  // nullopt: the client was answered; else the error to answer with (nothing sent yet).
  net::awaitable<std::optional<core::error>> run(request_ctx& ctx);

 private:
  net::awaitable<std::optional<core::error>> try_group(request_ctx& ctx, std::string group, bool primary);
  net::awaitable<std::optional<core::error>> run_fallbacks(request_ctx& ctx, std::vector<std::string> groups,
                                                           core::error last, int depth,
                                                           std::vector<std::string>& tried, bool chain);
  // One attempt on `dep`, recorded in ctx.out.attempts.
  net::awaitable<std::optional<core::error>> attempt_on(request_ctx& ctx, const std::string& group, int retry);
  // Whether and how long to wait before retry number `retry` + 1 after `err`; nullopt: no retry.
  std::optional<std::chrono::milliseconds> retry_wait(request_ctx& ctx, const std::string& group,
                                                      const core::error& err, int retry);

  router::router& router_;
  router::retry_settings retry_;
  router::fallback_settings fallbacks_;
  attempt_runner& runner_;
  std::mt19937_64 rng_{std::random_device{}()};  // backoff jitter
};

}  // namespace switchyard::pipeline
