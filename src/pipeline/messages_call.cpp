// Anthropic's /v1/messages and /v1/messages/count_tokens: one provider call each
// (retries and fallbacks around it are the attempt loop's, as for chat).
//
// To an Anthropic deployment the request is the client's bytes (model spliced in) and
// the answer is relayed as received: JSON as one body, a stream read by read, with only
// the usage (and the end, and error events) read from it as it passes. To any other
// deployment the request is translated to OpenAI chat, sent through that provider's
// adapter, and its answer (JSON, or OpenAI chunks from the adapter's stream translator)
// translated back into Anthropic's message or event stream.
#include "messages_call.hpp"

#include "respond.hpp"

#include "switchyard/core/ids.hpp"
#include "switchyard/providers/anthropic_front.hpp"
#include "switchyard/spend/record.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <ctime>

namespace switchyard::pipeline {

using clock = std::chrono::steady_clock;
using providers::call_type;
namespace front = providers::anthropic_front;

namespace {

bool is_anthropic(const config::deployment& d) { return d.provider->wire == config::wire_format::anthropic; }

front::client_headers client_headers_of(const request_ctx& ctx) {
  return {ctx.req.header("anthropic-version"), ctx.req.header("anthropic-beta")};
}

// x-litellm-response-cost for a non-streamed answer.
void add_cost(const request_ctx& ctx, const config::deployment& d, std::string& head_lines) {
  if (ctx.prices == nullptr || !ctx.usage.known) {
    return;
  }
  const spend::tokens t{ctx.usage.prompt_tokens, ctx.usage.completion_tokens, ctx.usage.cached_tokens,
                        ctx.usage.cache_creation_tokens, ctx.usage.reasoning_tokens};
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, ctx.prices->cost(d, t));
  (void)ec;
  http::append_head_line(head_lines, "x-litellm-response-cost", std::string_view(buf, static_cast<std::size_t>(end - buf)));
}

void keep_json(request_ctx& ctx, const std::string& body) {
  ctx.kept_bytes = body.size();
  ctx.kept_response.assign(body, 0, std::min(body.size(), spend::max_stored_bytes));
}

void keep_text(request_ctx& ctx, const std::string& text) {
  ctx.kept_bytes = text.size();
  ctx.kept_response.assign(text, 0, std::min(text.size(), spend::max_stored_bytes));
}

}  // namespace

// ---------------------------------------------------------------- /v1/messages

net::awaitable<std::optional<core::error>> provider_call::messages_attempt(request_ctx& ctx) {
  const auto& d = *ctx.dep;
  if (auto mr = ctx.body.find("mock_response"); mr != ctx.body.end() && mr->is_string()) {
    co_await messages_mock(ctx, mr->get<std::string>());
    co_return std::nullopt;
  }
  if (d.mock_response) {
    co_await messages_mock(ctx, *d.mock_response);
    co_return std::nullopt;
  }
  if (is_anthropic(d)) {
    co_return co_await messages_passthrough(ctx);
  }
  co_return co_await messages_translated(ctx);
}

net::awaitable<void> provider_call::messages_mock(request_ctx& ctx, const std::string& content) {
  const long long created = static_cast<long long>(std::time(nullptr));
  auto chat = front::to_chat_request(ctx.full_body());
  const nlohmann::json request = chat ? std::move(*chat) : nlohmann::json::object();
  const std::string id = "chatcmpl-" + core::uuid4();
  if (!ctx.stream) {
    auto msg = front::to_messages_response(
        providers::mock_chat_completion(ctx.requested_model, content, request, id, created), ctx.requested_model);
    http::response r;
    r.body = msg ? std::move(*msg) : front::error_body(msg.error());
    r.head_lines = litellm_headers(ctx);
    co_await ctx.resp.send(std::move(r));
    co_return;
  }
  front::event_writer w(ctx.requested_model);
  std::string out;
  for (const auto& f : providers::mock_chat_stream(ctx.requested_model, content, request, id, created, true)) {
    std::string_view p = f;
    if (p.substr(0, 6) == "data: ") {
      p.remove_prefix(6);
    }
    while (!p.empty() && (p.back() == '\n' || p.back() == '\r')) {
      p.remove_suffix(1);
    }
    if (p != "[DONE]") {
      w.feed(p, out);
    }
  }
  w.finish(out);
  auto h = litellm_headers(ctx);
  h += "cache-control: no-cache\r\nx-accel-buffering: no\r\n";
  if (co_await ctx.resp.begin_stream(200, "text/event-stream", {}, std::move(h))) {
    co_await ctx.resp.write_last(out);
  }
}

net::awaitable<std::optional<core::error>> provider_call::messages_passthrough(request_ctx& ctx) {
  const auto& d = *ctx.dep;
  auto call = front::passthrough_call(d, "/v1/messages", ctx.req.body, ctx.scan, client_headers_of(ctx));
  if (!call) {
    co_return call.error();
  }
  const auto timeout = ctx.stream ? stream_timeout_of(d) : timeout_of(d);
  auto ur = upstream_request_of(std::move(*call), timeout);
  const bool keep = ctx.keep_response;

  if (!ctx.stream) {
    auto r = co_await send_upstream(ctx, upstream_, std::move(ur), timeout, nullptr);
    if (!r) {
      co_return r.error();
    }
    auto u = front::message_usage(r->body);  // one scan: validates and reads the usage
    if (!u) {
      co_return core::make_error(core::errc::upstream_error,
                                 "AnthropicException - the provider returned a response that is not valid JSON");
    }
    ctx.usage = *u;
    http::response out;
    out.body = std::move(r->body);  // as received
    if (keep) {
      keep_json(ctx, out.body);
    }
    out.head_lines = litellm_headers(ctx);
    add_cost(ctx, d, out.head_lines);
    add_provider_headers(out.head_lines, r->headers);
    co_await ctx.resp.send(std::move(out));
    co_return std::nullopt;
  }

  auto opened = co_await open_upstream(ctx, upstream_, std::move(ur), timeout, nullptr);
  if (!opened) {
    co_return opened.error();
  }
  auto s = std::move(*opened);

  front::stream_watch watch(keep);
  auto* raw = s.get();
  stream_reader reader(ctx, *s);
  bool head_sent = false;
  auto send_head = [&]() -> net::awaitable<bool> {
    head_sent = true;
    return begin_event_stream(ctx, *s);
  };
  std::optional<core::error> failure;
  bool ended = false;  // the client's body was ended
  // Budgets, as on chat (provider_call::relay_stream): the reservation covers
  // ctx.stream_token_allowance tokens, one per event relayed. A read that would pass it
  // asks the limits stage for more; when that does not fit, the read is not relayed and
  // the stream ends with an error event (a provider that ignores max_tokens).
  bool budget_cut = false;
  std::size_t events_relayed = 0;
  // Until message_start the bytes are held, not relayed (stream_watch): an answer that
  // turns out not to be Anthropic's event stream (a broken or unexpected first event,
  // JSON where events were asked for) then still gets a real status, a retry or a fallback.
  std::string held;
  for (;;) {
    auto piece = co_await reader.next();
    if (reader.client_left()) {
      break;
    }
    if (!piece) {
      failure = transport_error(piece.error(), d, stream_timeout_of(d));
      break;
    }
    if (piece->empty()) {
      if (auto fin = watch.finish(); !fin) {
        failure = fin.error();
      }
      break;
    }
    events_relayed = watch.events();
    auto fed = watch.feed(*piece);
    if (fed && ctx.stream_limit != nullptr) {  // no coroutine per read without a budget
      if (auto e = co_await cover_stream_events(ctx, static_cast<long long>(ctx.events_sent + watch.events()))) {
        failure = std::move(*e);
        budget_cut = true;
        raw->cancel();
        break;
      }
    }
    if (!fed && !head_sent) {
      failure = fed.error();  // nothing reached the client: a retry may serve it
      raw->cancel();
      break;
    }
    if (!head_sent) {
      if (!watch.started()) {
        held += *piece;
        continue;  // the end (or a read error) decides what these bytes were
      }
      if (!held.empty()) {
        held += *piece;
        *piece = std::move(held);
        held.clear();
      }
      if (!co_await send_head()) {
        raw->cancel();
        break;
      }
    }
    if (!fed) {
      // An error event after the answer began: relayed as sent, and the stream ends.
      ctx.late_failure = fed.error();
      raw->cancel();
      co_await ctx.resp.write_last(*piece);
      ended = true;
      break;
    }
    if (s->complete()) {
      if (auto fin = watch.finish(); !fin) {
        failure = fin.error();
        *piece += front::error_event(*failure);
        ctx.late_failure = failure;
      }
      co_await ctx.resp.write_last(*piece);
      ended = true;
      break;
    }
    if (!co_await ctx.resp.write(*piece)) {
      raw->cancel();
      break;
    }
  }
  ctx.usage = watch.tokens();
  if (budget_cut) {
    // The provider's final count never came (the stream was cut): the request is billed
    // as estimated, on the basis its reservation was made on (the prompt's estimate, one
    // token per event relayed), as a cut chat stream is, so the spend stays within budget.
    ctx.usage.known = false;
    ctx.events_sent += events_relayed;
  } else {
    ctx.events_sent += watch.events();
  }
  if (keep) {
    keep_text(ctx, watch.text());
  }
  ctx.resp.stop_watching();
  if (reader.client_left() || ctx.resp.client_gone() || ended) {
    co_return std::nullopt;
  }
  if (failure && !head_sent) {
    co_return failure;  // retry, fall back, or a real status
  }
  if (!head_sent && !co_await send_head()) {
    co_return std::nullopt;
  }
  std::string tail;
  if (failure) {
    ctx.late_failure = failure;
    spdlog::warn("messages stream failed after the first event (call_id={}): {}", ctx.req.call_id, failure->message);
    tail = front::error_event(*failure);
  }
  co_await ctx.resp.write_last(tail);
  co_return std::nullopt;
}

net::awaitable<std::optional<core::error>> provider_call::messages_translated(request_ctx& ctx) {
  const auto& d = *ctx.dep;
  const auto& adapter = providers::adapter_for(*d.provider);
  auto chat = front::to_chat_request(ctx.full_body());
  if (!chat) {
    co_return chat.error();
  }
  std::string bearer;
  if (token_source* src = token_source_of(d)) {
    auto t = co_await src->get();
    if (!t) {
      co_return t.error();
    }
    bearer = std::move(*t);
  }
  auto call = adapter.build(call_type::chat, d, *chat, providers::build_options{ctx.stream, drop_params_of(ctx), bearer});
  if (!call) {
    co_return call.error();
  }
  const auto timeout = ctx.stream ? stream_timeout_of(d) : timeout_of(d);
  auto ur = upstream_request_of(std::move(*call), timeout);
  const bool keep = ctx.keep_response;

  if (!ctx.stream) {
    auto r = co_await send_upstream(ctx, upstream_, std::move(ur), timeout, &adapter);
    if (!r) {
      co_return r.error();
    }
    auto tr = adapter.translate_response(call_type::chat, d, r->body, ctx.requested_model);
    if (!tr) {
      co_return tr.error();
    }
    auto msg = front::to_messages_response(tr->body, ctx.requested_model);
    if (!msg) {
      co_return msg.error();
    }
    ctx.usage = tr->tokens;
    http::response out;
    out.body = std::move(*msg);
    if (keep) {
      keep_json(ctx, out.body);
    }
    out.head_lines = litellm_headers(ctx);
    add_cost(ctx, d, out.head_lines);
    add_provider_headers(out.head_lines, r->headers);
    co_await ctx.resp.send(std::move(out));
    co_return std::nullopt;
  }

  auto opened = co_await open_upstream(ctx, upstream_, std::move(ur), timeout, &adapter);
  if (!opened) {
    co_return opened.error();
  }
  auto s = std::move(*opened);

  auto translator = adapter.make_stream(call_type::chat, d, ctx.requested_model, true);
  front::event_writer writer(ctx.requested_model);
  writer.keep_text(keep);
  auto* raw = s.get();
  stream_reader reader(ctx, *s);
  bool head_sent = false;
  auto send_head = [&]() -> net::awaitable<bool> {
    head_sent = true;
    return begin_event_stream(ctx, *s);
  };
  std::vector<std::string> payloads;
  std::string out;
  std::size_t chat_events = 0;  // the provider's events translated so far
  auto translate = [&] {
    for (const auto& p : payloads) {
      writer.feed(p, out);
    }
    chat_events += payloads.size();
    payloads.clear();
    if (translator->tokens().known) {
      writer.set_usage(translator->tokens());
    }
  };
  std::optional<core::error> failure;
  // Budgets, as on chat: one token per chat event translated; past the reservation the
  // limits stage is asked for more, and when that does not fit, the events still covered
  // go out, then an error event.
  bool budget_cut = false;
  auto within_budget = [&]() -> net::awaitable<bool> {
    if (auto e = co_await cover_stream_payloads(ctx, static_cast<long long>(ctx.events_sent + chat_events), payloads)) {
      failure = std::move(*e);
      budget_cut = true;
      co_return false;
    }
    co_return true;
  };
  for (;;) {
    auto piece = co_await reader.next();
    if (reader.client_left()) {
      break;
    }
    if (!piece) {
      failure = transport_error(piece.error(), d, stream_timeout_of(d));
      break;
    }
    if (piece->empty()) {
      if (auto fin = translator->finish(payloads); !fin) {
        failure = fin.error();
      }
      break;
    }
    if (auto fed = translator->feed(*piece, payloads); !fed) {
      failure = fed.error();
      raw->cancel();
      break;
    }
    if (ctx.stream_limit != nullptr && !payloads.empty() && !co_await within_budget()) {
      raw->cancel();
      break;
    }
    if (s->complete()) {
      if (auto fin = translator->finish(payloads); !fin) {
        failure = fin.error();
      }
      break;
    }
    translate();
    if (out.empty()) {
      continue;
    }
    if (!head_sent && !co_await send_head()) {
      raw->cancel();
      break;
    }
    if (!co_await ctx.resp.write(out)) {
      raw->cancel();
      break;
    }
    out.clear();
  }
  translate();
  ctx.usage = translator->tokens();
  if (budget_cut) {
    // Cut: billed as estimated, one token per event relayed, as the reservation counted.
    ctx.usage.known = false;
    ctx.events_sent += chat_events;
  } else {
    ctx.events_sent += writer.events();
  }
  if (keep) {
    keep_text(ctx, writer.text());
  }
  ctx.resp.stop_watching();
  if (reader.client_left() || ctx.resp.client_gone()) {
    co_return std::nullopt;
  }
  if (failure && !head_sent && out.empty()) {
    co_return failure;
  }
  if (!head_sent && !co_await send_head()) {
    co_return std::nullopt;
  }
  if (failure) {
    ctx.late_failure = failure;
    spdlog::warn("messages stream failed after the first event (call_id={}): {}", ctx.req.call_id, failure->message);
    out += front::error_event(*failure);
  } else {
    writer.finish(out);
  }
  co_await ctx.resp.write_last(out);
  co_return std::nullopt;
}

// ---------------------------------------------------------------- count_tokens

net::awaitable<std::optional<core::error>> provider_call::count_tokens(request_ctx& ctx) {
  const auto& d = *ctx.dep;
  if (!is_anthropic(d) || d.mock_response) {
    http::response r;
    r.body = R"({"input_tokens":)" + std::to_string(front::estimate_input_tokens(ctx.scan)) + "}";
    r.head_lines = litellm_headers(ctx);
    co_await ctx.resp.send(std::move(r));
    co_return std::nullopt;
  }
  auto call = front::passthrough_call(d, "/v1/messages/count_tokens", ctx.req.body, ctx.scan, client_headers_of(ctx));
  if (!call) {
    co_return call.error();
  }
  const auto timeout = timeout_of(d);
  auto ur = upstream_request_of(std::move(*call), timeout);
  auto r = co_await send_upstream(ctx, upstream_, std::move(ur), timeout, nullptr);
  if (!r) {
    co_return r.error();
  }
  if (!providers::json_valid(r->body, providers::max_json_depth)) {
    co_return core::make_error(core::errc::upstream_error,
                               "AnthropicException - the provider's token count is not valid JSON");
  }
  http::response out;
  out.body = std::move(r->body);
  out.head_lines = litellm_headers(ctx);
  add_provider_headers(out.head_lines, r->headers);
  co_await ctx.resp.send(std::move(out));
  co_return std::nullopt;
}

net::awaitable<verdict> count_tokens_stage::run_async(request_ctx& ctx) {
  router::pick_options opts{ctx.estimated_tokens, false, {}, false};
  auto picked = router_.pick(ctx.requested_model, ctx.route, opts);
  if (!picked) {
    co_return verdict::fail(picked.error());
  }
  ctx.dep_ref = std::move(*picked);
  ctx.dep = ctx.dep_ref.get();
  ctx.attempt_started = clock::now();
  auto err = co_await call_.count_tokens(ctx);
  if (!err) {
    co_return verdict::done();
  }
  co_return verdict::fail(std::move(*err));
}

}  // namespace switchyard::pipeline
