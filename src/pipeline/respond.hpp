// Helpers every stage uses to answer (private to pipeline/).
#pragma once
#include "switchyard/pipeline/request_ctx.hpp"
#include "switchyard/pipeline/upstream_caller.hpp"
#include "switchyard/providers/adapter.hpp"
#include "switchyard/upstream/client.hpp"

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace switchyard::pipeline {

// The x-litellm-* response headers, as preformatted head lines (http::response::head_lines).
std::string litellm_headers(const request_ctx& ctx);
// Sends `e` as an OpenAI-shaped error with the x-litellm-* headers, and records it.
net::awaitable<void> send_error(request_ctx& ctx, core::error e);
// The event that ends a stream already begun with `e`, in the shape of the route's SDK:
// OpenAI's `data: {"error": ...}` (chat, completions), Anthropic's `event: error`
// (/v1/messages), the Responses API's `event: error`. Each SDK raises it as an API error.
std::string stream_error_event(providers::call_type type, const core::error& e);

// A failed exchange with the provider (timeout, connection) as LiteLLM words it.
core::error transport_error(const core::error& e, const config::deployment& d, std::chrono::milliseconds timeout);
// Upstream headers passed on to the client under the llm_provider- prefix.
void add_provider_headers(std::string& lines, const upstream::header_list& in);
// The provider's retry-after header, empty if none.
std::string retry_after_of(const upstream::header_list& h);
// The request an adapter built, with the attempt's timeouts (connecting: at most 10 s).
upstream::request upstream_request_of(providers::upstream_call call, std::chrono::milliseconds timeout);
// A provider's error status as the error its attempt ends with: `adapter` translates the
// body (null: the generic upstream error in the provider's words, for bodies passed
// through untranslated), with the provider's Retry-After.
core::error upstream_status_error(const config::deployment& d, const providers::adapter* adapter, int status,
                                  std::string_view body, const upstream::header_list& headers);
// One exchange with ctx.dep's provider, as every attempt runner starts it: the time waited
// goes to ctx.upstream_time and the status to ctx.upstream_status; a transport failure
// (transport_error) or a status of 400 and above (upstream_status_error; for a stream, its
// first MB of body is read for that) is the error the attempt ends with.
net::awaitable<core::result<upstream::response>> send_upstream(request_ctx& ctx, upstream_caller& up,
                                                               upstream::request req,
                                                               std::chrono::milliseconds timeout,
                                                               const providers::adapter* adapter);
net::awaitable<core::result<std::unique_ptr<upstream::body_stream>>> open_upstream(
    request_ctx& ctx, upstream_caller& up, upstream::request req, std::chrono::milliseconds timeout,
    const providers::adapter* adapter);
// The read side of a relayed stream: the bytes that came with the head first, then the
// provider's reads. The client's socket is watched (a disconnect cancels the upstream
// read) from the first wait on: a body that came whole with the head costs no watch, and
// no epoll_ctl before the first byte. Time waited goes to ctx.upstream_time. The relay
// calls ctx.resp.stop_watching() before the reader goes away.
class stream_reader {
 public:
  stream_reader(request_ctx& ctx, upstream::body_stream& s) : ctx_(ctx), s_(s), initial_(s.take_buffered()) {}
  stream_reader(const stream_reader&) = delete;
  stream_reader& operator=(const stream_reader&) = delete;
  // The next piece (empty: the body ended), or the read's error.
  net::awaitable<core::result<std::string>> next();
  // The client went away while the relay waited (the upstream read was cancelled).
  bool client_left() const { return client_left_; }

 private:
  request_ctx& ctx_;
  upstream::body_stream& s_;
  std::string initial_;
  bool watching_ = false;
  bool client_left_ = false;
};
// Opens the client's event stream: the x-litellm-* headers and the provider's; the time to
// the first token is taken here.
net::awaitable<bool> begin_event_stream(request_ctx& ctx, const upstream::body_stream& s);
// Budgets on a stream (docs/limits.md, "Streams"): `events` events relayed in all, one
// token each, covered by the request's reservation, else asked of the limits stage. The
// error to end the stream with when they do not all fit; ctx.stream_token_allowance then
// covers those that still did. Nothing to do without a budget (ctx.stream_limit null).
net::awaitable<std::optional<core::error>> cover_stream_events(request_ctx& ctx, long long events);
// The same for `payloads`, the events about to go out after `relayed` ones: when not all
// fit, `payloads` is cut to those that do.
net::awaitable<std::optional<core::error>> cover_stream_payloads(request_ctx& ctx, long long relayed,
                                                                 std::vector<std::string>& payloads);
// x-litellm-response-cost for ctx.usage on ctx.dep (nothing when unpriced or unknown).
void add_response_cost(const request_ctx& ctx, std::string& lines);

}  // namespace switchyard::pipeline
