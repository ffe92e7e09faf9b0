// What happened to one LLM request, recorded as it happens: by the responder for what
// was sent (status, bytes, first byte), by the attempt loop for each provider attempt.
// `finish` hands it to the observers (access log, spend, metrics, callbacks) once.
// Owner: request_ctx (one per request). Thread: the loop thread. Never blocks.
#pragma once
#include "switchyard/config/config.hpp"
#include "switchyard/core/error.hpp"
#include "switchyard/providers/openai.hpp"

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace switchyard::pipeline {

using time_point = std::chrono::steady_clock::time_point;

// One call to one deployment (a retry or a fallback is another attempt).
struct attempt {
  // The deployment tried (kept alive: wildcard deployments are per-request copies).
  // Its id, model group (model_name), provider and api_base are read from it.
  std::shared_ptr<const config::deployment> dep;
  std::string group;  // the model group the router picked it from (a fallback's name)
  time_point start{};
  time_point end{};
  time_point first_token{};  // streams: when the first event went to the client; else unset
  int status = 0;            // the provider's HTTP status, or the error's status without one
  std::optional<core::error> error;  // why it failed (also set for a stream cut after its head)
  providers::usage usage;            // as reported by the provider (usage.known) or counted so far
  int retry = 0;     // 0 for the first attempt in its group, then 1, 2, ...
  int fallback = 0;  // 0 in the requested group, n in the n-th fallback group tried
  bool mock = false; // answered by mock_response, no provider call
  bool cooled = false;  // this failure put the deployment in cooldown
  // Abandoned: the client left while the provider was answering, and the call was
  // cancelled. Neither a success nor the deployment's failure; billed as an estimate.
  bool cancelled = false;
  // Tracing on (a trace callback configured): this attempt's span id (16 hex digits), also
  // sent to the provider as the parent in its `traceparent` header. Empty otherwise.
  std::string span_id;
};

// W3C trace context of a request, filled only while a trace callback is configured: the
// trace id and parent span from the client's `traceparent` (else a new trace), and the
// request's own span id. Empty trace_id: tracing is off.
struct trace_context {
  std::string trace_id;        // 32 hex digits
  std::string parent_span_id;  // 16 hex digits, empty when the client sent none
  std::string span_id;         // 16 hex digits: the request's span
  bool sampled = true;         // the client's trace-flags sampled bit (kept for the provider)
};

// When one stage of the chain ran (tracing on only): the child spans auth, parse, limits,
// route, cache. The provider stage is not listed: its attempts are its spans.
struct stage_time {
  const char* name = "";
  time_point start{};
  time_point end{};
};

struct outcome {
  int status = 0;                    // the HTTP status sent (0: nothing was sent)
  std::optional<core::error> error;  // the error answered, or that ended a started stream
  bool client_gone = false;          // the client left before the answer was complete
  bool streamed = false;             // the answer was a chunked event stream
  std::size_t bytes_in = 0;          // request body bytes
  std::size_t bytes_out = 0;         // response body bytes handed to the transport
  time_point received{};             // the request head was complete
  time_point first_byte{};           // the response head went out (unset: never)
  time_point done{};                 // finish ran
  std::vector<attempt> attempts;     // in order
  providers::usage usage;            // of the attempt that answered
  // The stage that answered when it was not the provider (e.g. "auth", "parse"), else
  // empty: lets observers tell a refusal from a provider answer without parsing errors.
  const char* answered_by = "";
  bool cache_hit = false;  // answered from the response cache (no provider call, cost 0)
  trace_context trace;             // tracing on only
  std::vector<stage_time> stages;  // tracing on only, in order

  // The attempt that answered (the last one), if any reached a provider.
  const attempt* final_attempt() const { return attempts.empty() ? nullptr : &attempts.back(); }
  int retries() const;    // attempts beyond the first in the group that answered
  int fallbacks() const;  // fallback groups tried
};

}  // namespace switchyard::pipeline
