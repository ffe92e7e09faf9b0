// The limits stage (extensions::limits, before route) and its `finish` observer: budgets
// and rate limits, reserve -> settle (docs/limits.md).
//
// Before the provider call, one atomic check-and-reserve over every counter of the
// request (limits::redis_engine: one Lua script with Redis, in memory without): the
// worst-case cost against each budget (prompt estimate x input price + (max_tokens, or
// the model's max_output_tokens, or a default) x output price, at the group's most
// expensive deployment), the request against each rpm window, its token estimate against
// each tpm window, a parallel slot. Refusals: 429 budget_exceeded (LiteLLM's message
// shapes) or 429 throttling_error with retry-after and x-ratelimit-* headers; accepted
// requests carry LiteLLM's per-scope x-ratelimit-{scope}-* headers. In `finish` the
// reservation is settled to the actual cost (billed_of, the spend observer's formula) and
// tokens, and the parallel slots are released (queued; never blocks). A stream that
// streams past its reservation asks for more per chunk (stream_budget) and is ended with
// an error event and [DONE] once a budget is spent.
//
// Entities: the key's (key, user, team, organisation: auth::virtual_key::limits), the
// ones in limits_settings::extra (the whole proxy), the request's end user (its cache may
// have to look it up first: run() waits, run_async() looks), and those `entities_of`
// adds. A blocked end user is refused with 400. Owner: app/. Thread: the loop thread.
// Never blocks.
#pragma once
#include "switchyard/auth/end_user_cache.hpp"
#include "switchyard/auth/limits.hpp"
#include "switchyard/config/config.hpp"
#include "switchyard/limits/engine.hpp"
#include "switchyard/pipeline/stage.hpp"
#include "switchyard/pipeline/request_ctx.hpp"
#include "switchyard/router/router.hpp"
#include "switchyard/spend/pricer.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace switchyard::pipeline {

struct limits_settings {
  // general_settings.max_parallel_requests: a key's max_parallel_requests when it has none.
  std::optional<std::int64_t> default_key_parallel;
  // general_settings.global_max_parallel_requests: requests in flight on the whole proxy.
  std::optional<std::int64_t> global_parallel;
  // Completion tokens a budget reserves when neither the request (max_tokens,
  // max_completion_tokens) nor the price table (max_output_tokens) says.
  std::int64_t default_max_tokens = 4096;
  // Completion tokens a tpm window reserves without max_tokens (LiteLLM's 1024).
  std::int64_t tpm_default_output = 1024;
  // Entities every request is charged to (e.g. the proxy's budget), after the key's.
  std::vector<auth::entity_limits> extra;
  // More entities for one request; the pointers must outlive run().
  std::function<void(const request_ctx&, std::vector<const auth::entity_limits*>&)> entities_of;
  // End users (the body's `user`, or x-litellm-end-user-id): their limits and blocked flag,
  // looked up (once, then cached) before the request's checks are built. Null: none.
  auth::end_user_cache* end_users = nullptr;

  // From general_settings and SWITCHYARD_LIMITS_DEFAULT_MAX_TOKENS.
  static limits_settings from(const config::config& cfg);
  // Something applies to requests without a limited key.
  bool has_global() const {
    return global_parallel.has_value() || !extra.empty() || static_cast<bool>(entities_of) || end_users != nullptr;
  }
};

class limits_stage final : public stage, public observer, public stream_budget {
 public:
  using sys_clock_fn = std::function<std::chrono::system_clock::time_point()>;
  limits_stage(limits::redis_engine& engine, router::router& rt, spend::pricer& prices, limits_settings s,
               sys_clock_fn now = nullptr);
  ~limits_stage() override;

  const char* name() const override { return "limits"; }
  verdict run(request_ctx& ctx) override;
  net::awaitable<verdict> run_async(request_ctx& ctx) override;
  void on_finish(const request_ctx& ctx) noexcept override;
  net::awaitable<std::optional<core::error>> extend(request_ctx& ctx, long long tokens) override;

 private:
  struct group_price {
    double input = 0;   // USD per token, the group's highest
    double output = 0;
    long long max_output_tokens = 0;
  };
  const group_price& price_of_group(const std::string& model);
  // run() once the end user (if any) is known: `eu` is it, or null for none.
  verdict build(request_ctx& ctx, const auth::end_user* eu);
  verdict decide(request_ctx& ctx, const limits::decision& d);

  limits::redis_engine& engine_;
  router::router& rt_;
  spend::pricer& prices_;
  limits_settings s_;
  sys_clock_fn now_;
  std::unordered_map<std::string, group_price> group_prices_;
  std::uint64_t next_id_ = 0;
  std::string id_prefix_;
  // The slots of finished requests, reused (take_slot), and build()'s list of entities:
  // a request of a key seen before allocates neither.
  std::vector<std::shared_ptr<limits_slot>> slots_;
  std::size_t next_slot_ = 0;
  std::vector<const auth::entity_limits*> entities_;
  std::shared_ptr<limits_slot> take_slot();
  // A request's reservation id in Redis (made only for a request that asks Redis).
  std::string next_reservation_id() { return id_prefix_ + std::to_string(++next_id_); }
};

}  // namespace switchyard::pipeline
