// One LLM request as it goes through the stages: what the client sent, who it is, what
// the router chose, and the outcome record that `finish` hands to the observers.
// Owner: llm_pipeline::handle() (one per request, on its coroutine frame).
// Thread: the loop thread. Never blocks.
#pragma once
#include "switchyard/auth/key_auth.hpp"
#include "switchyard/config/config.hpp"
#include "switchyard/core/asio.hpp"
#include "switchyard/http/message.hpp"
#include "switchyard/pipeline/billed.hpp"
#include "switchyard/pipeline/outcome.hpp"
#include "switchyard/pipeline/recording_responder.hpp"
#include "switchyard/providers/adapter.hpp"
#include "switchyard/providers/json_scan.hpp"
#include "switchyard/spend/pricer.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace switchyard::pipeline {

// The names a call type goes by: its route under /v1, and LiteLLM's call_type in spend logs.
struct call_type_names {
  const char* route;       // "/chat/completions"
  const char* spend_name;  // "acompletion"
};
const call_type_names& names_of(providers::call_type t);

struct cache_slot;   // the cache stage's per-request state (src/pipeline/cache_stage.cpp)
struct limits_slot;     // the limits stage's reservation (src/pipeline/limits_stage.cpp)
struct responses_slot;  // a /v1/responses request's state (src/pipeline/responses_call.hpp)
struct request_ctx;

// Asked by the stream relay when a stream is about to send more completion tokens (one per
// event) than its budget reservation covers (a provider that ignores max_tokens): reserve
// more, or say why the stream must end. Implemented by the limits stage.
class stream_budget {
 public:
  virtual ~stream_budget() = default;
  // Raise ctx.stream_token_allowance to at least `tokens`, or return the error to end with.
  virtual net::awaitable<std::optional<core::error>> extend(request_ctx& ctx, long long tokens) = 0;
};

struct request_ctx {
  request_ctx(http::request& r, http::responder& w) : req(r), resp(w, out) {
    out.received = r.received_at;
    out.bytes_in = r.body.size();
  }
  request_ctx(const request_ctx&) = delete;
  request_ctx& operator=(const request_ctx&) = delete;

  outcome out;  // declared before resp, which records into it
  http::request& req;
  recording_responder resp;
  providers::call_type type = providers::call_type::chat;
  std::string route;       // "/chat/completions", for messages
  std::string path_model;  // model named in the path (/openai/deployments/{m}/...), if any
  // The body, read once without a DOM (docs/json-readers.md): validated, top-level
  // members as spans into req.body. `model` and `stream` are read from the scan
  // (requested_model, stream); `body` holds only the other members the gateway reads
  // (num_retries, fallbacks, stream_options, mock_*, drop_params, ...:
  // is_gateway_read_member() in stages.cpp), null when there are none. Everything else
  // stays bytes unless an adapter that translates the request needs the whole document
  // (full_body()).
  providers::json_scan scan;
  nlohmann::json body;
  std::optional<nlohmann::json> full;  // the whole parsed body, built on first use
  std::string requested_model;
  bool stream = false;
  bool client_wants_usage = false;
  auth::principal who;
  const config::deployment* dep = nullptr;  // the deployment of the current/last attempt
  std::shared_ptr<const config::deployment> dep_ref;  // keeps `dep` alive (wildcard copies)
  // Router bookkeeping (x-litellm-* headers): retries in the group that answered or failed
  // last, the request's retry budget (-1: not routed yet), fallback groups tried.
  int attempted_retries = 0;
  int max_retries = -1;
  int attempted_fallbacks = 0;
  std::size_t estimated_tokens = 0;
  std::chrono::steady_clock::time_point attempt_started{};
  std::chrono::steady_clock::duration ttft{};  // streams: time to the first byte sent
  std::optional<core::error> late_failure;     // a stream that failed after its first byte
  std::chrono::steady_clock::duration upstream_time{};  // time spent waiting on the provider
  providers::usage usage;  // of the current attempt
  int upstream_status = 0; // the provider's HTTP status in the current attempt (0: none yet)
  // The current attempt's provider call was abandoned because the client left while it
  // waited (respond.hpp: send_upstream).
  bool upstream_cancelled = false;
  std::size_t events_sent = 0;  // stream events handed to the client (usage estimates)
  // general_settings.store_prompts_in_spend_logs only: the answer the client got, for its
  // spend row: the JSON body (its first spend::max_stored_bytes), or a stream's text
  // (content deltas) up to that size; kept_bytes is the whole size.
  // Also kept (keep_response) when a callback logs message content.
  std::string kept_response;
  std::size_t kept_bytes = 0;
  bool kept_json = false;  // kept_response is a whole translated (OpenAI JSON) answer
  bool keep_response = false;  // store_prompts_in_spend_logs, or a callback logs content
  bool finished = false;   // finish ran
  // billed_of's answer once finish ran (the outcome is final then): the observers that
  // read it (spend, metrics, callbacks) price the request once between them.
  mutable std::optional<billed> final_bill;
  spend::pricer* prices = nullptr;  // for x-litellm-response-cost; null: not priced
  // The response cache (pipeline/cache_stage.hpp): the request's key (sent as
  // x-litellm-cache-key on every answer of a cacheable request; empty: not cacheable),
  // the model group it was computed for, and the stage's per-request state.
  std::string cache_key;
  std::string cache_group;
  // The body's hash in the cache's memo of bodies seen before, once the parse stage made
  // it (the cache stage does not hash the body again).
  std::uint64_t body_hash = 0;
  bool body_hashed = false;
  std::uint64_t body_memo_version = 0;  // the memo slot found holding these bytes (key_memo::find)
  std::shared_ptr<cache_slot> cache;
  // Set by a stage that sent the provider part of the request only (embeddings with some
  // input items cached): makes the client's answer from the provider's (non-stream) one.
  std::function<core::result<std::string>(std::string_view)> shape_answer;
  // Budgets and rate limits (pipeline/limits_stage.hpp): the request's reservation (null:
  // nothing reserved), the x-ratelimit-* head lines every answer carries, and for a
  // stream, the completion tokens its reservation covers (-1: no budget) and who to ask
  // for more.
  std::shared_ptr<limits_slot> limits;
  std::string limit_headers;
  long long stream_token_allowance = -1;
  stream_budget* stream_limit = nullptr;
  std::shared_ptr<responses_slot> responses;  // /v1/responses only
  // general_settings.forward_client_headers_to_llm_api: the client's x-* and
  // anthropic-beta headers go to the provider (respond.cpp, add_client_headers), except
  // credentials and the gateway's own; `key_header` is litellm_key_header_name, lower-case.
  bool forward_client_headers = false;
  std::string_view key_header;

  // The whole body as a DOM (path model applied), parsed on first use.
  const nlohmann::json& full_body();
  // The request's end user: the x-litellm-end-user-id header, else the body's `user`
  // string (LiteLLM's order); empty: none. Found on first use, for the limits, the spend
  // row, metrics and callbacks alike.
  const std::string& end_user() const;

 private:
  mutable std::string end_user_;
  mutable bool end_user_final_ = false;
};

}  // namespace switchyard::pipeline
