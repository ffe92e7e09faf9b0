// The response cache in the chain (docs/cache.md): a stage between route and provider
// that may answer, and an observer of `finish` that stores what the provider answered.
//
//   run():        cacheable? key (model group + answer-changing params, namespace) ->
//                 memory hit: answer (one JSON, or SSE replayed for a streaming request);
//                 an identical request in flight here: wait for it (run_async), then look
//                 again; else lead, look Redis up (run_async, a few ms at most); a miss
//                 arms a tap on the responder that copies the answer as it is sent (the
//                 JSON, or the SSE events assembled into one JSON).
//   on_finish():  the answer went out whole (200, no error, no client gone, a stream that
//                 ended with [DONE]): store it (memory now, Redis fire-and-forget); then
//                 land the flight, which wakes the requests that waited for it.
//
// Why a tap and an observer rather than wrapping the provider call: the responder is the
// one place every answer passes (JSON, SSE from any provider's translator, mock
// responses), already recording the outcome; and `finish` is the one place that knows the
// request ended and how, exactly once, also for a client that left or an exception.
// Owner: app/ (one per gateway, when caching is on). Thread: the loop thread. Never blocks.
#pragma once
#include "switchyard/cache/key_memo.hpp"
#include "switchyard/cache/response_cache.hpp"
#include "switchyard/config/config.hpp"
#include "switchyard/pipeline/stage.hpp"
#include "switchyard/providers/json_scan.hpp"
#include "switchyard/router/router.hpp"

#include <chrono>
#include <string_view>
#include <vector>

namespace switchyard::pipeline {

class cache_stage final : public stage, public observer {
 public:
  // `coalesce_wait`: how long a request waits for an identical one in flight.
  cache_stage(net::any_io_executor ex, config::cache_settings settings, cache::response_cache& rc,
              const router::router& rt, std::chrono::milliseconds coalesce_wait);

  const char* name() const override { return "cache"; }
  verdict run(request_ctx& ctx) override;
  net::awaitable<verdict> run_async(request_ctx& ctx) override;
  void on_finish(const request_ctx& ctx) noexcept override;

  const cache::inflight& flights() const { return flights_; }
  // Keys taken from the memo of bodies seen before (for tests and docs/cache.md).
  std::uint64_t keys_remembered() const { return memo_.hits(); }
  // That memo: the parse stage takes a remembered body's scan from it (extensions::body_memo).
  cache::key_memo& body_memo() { return memo_; }

 private:
  bool fresh(const request_ctx& ctx, const cache::entry& e) const;
  void arm_capture(request_ctx& ctx) const;
  // Sends `e`; with `keep_value` false its value is moved into the response.
  net::awaitable<bool> answer(request_ctx& ctx, cache::entry& e, bool keep_value);
  net::awaitable<verdict> run_items(request_ctx& ctx);
  void remember_key(const request_ctx& ctx);

  config::cache_settings settings_;
  cache::response_cache& rc_;
  const router::router& rt_;
  std::chrono::milliseconds coalesce_wait_;
  cache::inflight flights_;
  cache::key_memo memo_;
};

// A scan's members as offsets into `body`; empty when a key is not inside it (a key with
// escapes is decoded elsewhere) or the body is not an object with members.
std::vector<cache::member_spans> member_spans_of(const providers::json_scan& scan, std::string_view body);
// The successful scan of `body` rebuilt from its remembered members (`body` holds the very
// bytes they were taken from).
void restore_scan(providers::json_scan& out, const std::vector<cache::member_spans>& members, std::string_view body);

}  // namespace switchyard::pipeline
