// Anthropic's Messages API as a front door (POST /v1/messages, /v1/messages/count_tokens):
// the pure pieces the pipeline needs to serve it to any deployment.
//
//   to an Anthropic deployment:  passthrough_call() forwards the client's bytes with only
//                                the `model` value spliced in (and gateway-only members
//                                removed, the deployment's drop lists and defaults applied,
//                                when there are any): prompt caching, thinking,
//                                tools and beta features reach Anthropic exactly as sent;
//                                the answer is relayed as received, read only for its usage
//                                (message_usage(), stream_watch).
//   to any other provider:       to_chat_request() turns the request into an OpenAI chat
//                                request for that provider's adapter (adapter.hpp);
//                                to_messages_response() and event_writer turn the OpenAI
//                                answer (JSON, or chunk payloads) back into Anthropic's.
//
// Errors on this route are Anthropic-shaped: error_body() / error_event().
// Thread: any; pure functions, and per-request objects (event_writer, stream_watch).
#pragma once
#include "switchyard/config/config.hpp"
#include "switchyard/core/error.hpp"
#include "switchyard/providers/json_scan.hpp"
#include "switchyard/providers/openai.hpp"
#include "switchyard/upstream/sse_parser.hpp"

#include <nlohmann/json_fwd.hpp>

#include <cstddef>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace switchyard::providers::anthropic_front {

// ---- errors -----------------------------------------------------------------

// Anthropic's error type for an HTTP status (400 invalid_request_error, 401
// authentication_error, 402 billing_error, 403 permission_error, 404 not_found_error,
// 408/504 timeout_error, 413 request_too_large, 429 rate_limit_error, 529
// overloaded_error, other 4xx invalid_request_error, other 5xx api_error).
std::string_view error_type_of(int status);
// The HTTP status Anthropic sends with an error type (the inverse; unknown: 500).
int status_of_error_type(std::string_view type);
// {"type":"error","error":{"type":...,"message":...}}
std::string error_body(const core::error& e);
// The same as one SSE event: "event: error\ndata: {...}\n\n".
std::string error_event(const core::error& e);

// ---- request ------------------------------------------------------------------

// An Anthropic Messages request (parsed) -> the OpenAI chat request with the same
// meaning: system -> a system message; text, image (base64 or url), document, tool_use
// and tool_result blocks -> content parts, assistant tool_calls and tool messages;
// tools, tool_choice (disable_parallel_tool_use -> parallel_tool_calls false),
// stop_sequences, max_tokens, temperature, top_p, stream, metadata.user_id -> user.
// Dropped, having no OpenAI equivalent: thinking / redacted_thinking blocks of earlier
// turns, `thinking`, top_k, cache_control, service_tier. Gateway members (fallbacks,
// mock_response, ...) are copied for the pipeline. 400 naming the member for anything
// malformed or that only Anthropic can serve (server tools, unknown block types).
core::result<nlohmann::json> to_chat_request(const nlohmann::json& body);

// ---- answer -------------------------------------------------------------------

// An OpenAI chat.completion (JSON text) -> an Anthropic message (JSON text) with the
// completion's id and model (`model` and a fresh msg_ id when it has none):
// reasoning_content -> a thinking block, content -> a text block, tool_calls -> tool_use
// blocks (arguments parsed), finish_reason -> stop_reason, usage -> Anthropic's usage
// (input_tokens without the cache-read and cache-written tokens, which get their own
// members). 500 if the text is not a chat.completion.
core::result<std::string> to_messages_response(std::string_view chat_json, std::string_view model);

// finish_reason -> stop_reason (stop: end_turn, length: max_tokens, tool_calls and
// function_call: tool_use, content_filter: refusal).
std::string_view stop_reason_of(std::string_view finish_reason);

// Usage as Anthropic reports it (input_tokens excludes cached and cache-written tokens).
nlohmann::json usage_json(const usage& u);

// OpenAI chat.completion.chunk payloads -> Anthropic's event stream: message_start and a
// ping first, then content_block_start / content_block_delta (text_delta, thinking_delta)
// / content_block_stop per block as the chunks come, each tool call at the end as a whole
// tool_use block (one input_json_delta holding a JSON object), then message_delta (stop
// reason, usage) and message_stop. Payloads that are not chunk objects are ignored.
class event_writer {
 public:
  // `model`: message_start's model when the first chunk names none (it names the
  // provider's model, which is used).
  explicit event_writer(std::string model);
  // Appends the events for one chunk payload (JSON text) to `out`.
  void feed(std::string_view payload, std::string& out);
  // Usage known from the chunks so far.
  void set_usage(const usage& u) { usage_ = u; }
  // The last events (closing the open block, message_delta, message_stop).
  void finish(std::string& out);
  // Events written so far.
  std::size_t events() const { return events_; }
  // The text of the answer (text deltas), for stored prompts.
  const std::string& text() const { return text_; }
  void keep_text(bool on) { keep_text_ = on; }

 private:
  enum class block { none, text, thinking, tool };
  void start(std::string& out);
  void open(block kind, nlohmann::json content_block, std::string& out);
  void close(std::string& out);
  void event(std::string_view type, const nlohmann::json& data, std::string& out);

  std::string model_;
  std::string id_;
  bool started_ = false;
  bool finished_ = false;
  block open_ = block::none;
  int index_ = -1;                   // index of the open (or last) block
  // The tool calls so far, by OpenAI tool_calls index; written as blocks at the end.
  struct pending_call {
    std::string id;
    std::string name;
    std::string args;
  };
  std::map<long long, pending_call> calls_;
  std::string finish_reason_;
  usage usage_;
  std::size_t events_ = 0;
  bool keep_text_ = false;
  std::string text_;
};

// ---- pass-through to an Anthropic deployment ----------------------------------

// Request headers of the client forwarded to Anthropic.
struct client_headers {
  std::string_view version;  // anthropic-version (default 2023-06-01)
  std::string_view beta;     // anthropic-beta (joined with the deployment's own, if any)
};

// The upstream call for `path` ("/v1/messages" or "/v1/messages/count_tokens") of an
// Anthropic deployment, from the client's validated body (`scan` = scan_json(body)):
// the body is the client's bytes, with the `model` value replaced by the deployment's
// model when it differs, gateway-only members removed when present (`metadata` is
// Anthropic's own and kept; only its user_id when it carries more), and a leading UTF-8
// byte order mark left out. On /v1/messages, also the deployment's drop lists and the
// request's own `additional_drop_params` (the members they name left out, never `model`)
// and the deployment's request defaults that are Messages parameters as they are
// (max_tokens, temperature, top_p, top_k, thinking: added where the client did not set
// them). Identical bytes otherwise; `body` must outlive the call (its parts are views
// into it).
core::result<upstream_call> passthrough_call(const config::deployment& d, std::string_view path,
                                             std::string_view body, const json_scan& scan, client_headers h);

// The usage of an Anthropic message (JSON text, validated on the way: nullopt when it is
// not JSON); known=false when it has none. prompt_tokens counts input + cache read +
// cache written (as the chat adapter does).
std::optional<usage> message_usage(std::string_view message_json);

// Reads a relayed Anthropic event stream as it passes: usage (message_start,
// message_delta), the end (message_stop), and `error` events. Only the events that
// carry these are parsed; text deltas are looked at only when keep_text is on.
// Until message_start (Anthropic's first event; only pings may come before it) the
// stream is not yet known to be Anthropic's: another event there, or bytes that are no
// events at all past max_prefix_bytes, is an error, and a stream that ends before it is
// read as the JSON body it may be (an error, or a whole message where events were asked
// for). A relay holds the bytes back until started(), so that such an answer reaches
// the client as a real error status (and a retry or fallback may still serve it).
class stream_watch {
 public:
  static constexpr std::size_t max_prefix_bytes = 1u << 20;
  explicit stream_watch(bool keep_text = false) : keep_text_(keep_text) {}
  // The error of an `error` event (status from its type), of an unreadable event, or
  // of a stream that does not begin with message_start; the bytes are still the
  // client's to receive once started().
  core::result<void> feed(std::string_view bytes);
  // Error if the stream ended before message_stop (a cut stream); before message_start,
  // the error its bytes carry (see above).
  core::result<void> finish();
  const usage& tokens() const { return usage_; }
  std::size_t events() const { return events_; }
  // message_start has been seen: the stream is Anthropic's, its bytes can be relayed.
  bool started() const { return started_; }
  bool stopped() const { return stopped_; }
  const std::string& text() const { return text_; }

 private:
  core::result<void> on_event(const upstream::sse_parser::event& ev);

  upstream::sse_parser parser_;
  std::vector<upstream::sse_parser::event> batch_;
  long long input_ = 0, cache_read_ = 0, cache_creation_ = 0, output_ = 0;
  usage usage_;
  std::size_t events_ = 0;
  bool started_ = false;
  bool stopped_ = false;
  bool keep_text_ = false;
  std::string text_;
  std::string prefix_;  // the bytes before message_start, up to max_prefix_bytes
  std::optional<core::error> failure_;
};

// The error for the body of a streamed request's answer that is no event stream (JSON
// where events were asked for): Anthropic's error JSON is that error (status from its
// type); a whole message, or anything else, a clear 500 naming what came.
core::error not_an_event_stream(std::string_view body);

// ---- count_tokens ----------------------------------------------------------------

// The estimate for deployments without a token-counting endpoint: the characters of
// every string in system, messages and tools, 4 to a token (rounded up), at least 1.
long long estimate_input_tokens(const json_scan& scan);

}  // namespace switchyard::providers::anthropic_front
