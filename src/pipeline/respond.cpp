#include "respond.hpp"

#include "switchyard/providers/anthropic_front.hpp"
#include "switchyard/providers/openai.hpp"
#include "switchyard/providers/responses.hpp"

#include <algorithm>
#include <charconv>
#include <utility>

namespace switchyard::pipeline {

using clock = std::chrono::steady_clock;

namespace {

long long ms_of(clock::duration d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d).count(); }

}  // namespace

std::string litellm_headers(const request_ctx& ctx) {
  std::string h;
  h.reserve(512);
  if (ctx.dep != nullptr) {
    http::append_head_line(h, "x-litellm-model-id", ctx.dep->id);
    http::append_head_line(h, "x-litellm-model-group", ctx.dep->model_name);
    if (auto base = providers::strip_query_view(providers::api_base_view(*ctx.dep));
        !ctx.dep->mock_response && !base.empty()) {
      http::append_head_line(h, "x-litellm-model-api-base", base);
    }
  }
  h += "x-litellm-version: " SWITCHYARD_VERSION "\r\n";
  if (!ctx.cache_key.empty()) {
    http::append_head_line(h, "x-litellm-cache-key", ctx.cache_key);
  }
  char num[32];
  auto put_int = [&](std::string_view name, long long v) {
    auto [end, ec] = std::to_chars(num, num + sizeof num, v);
    (void)ec;
    http::append_head_line(h, name, std::string_view(num, static_cast<std::size_t>(end - num)));
  };
  if (ctx.max_retries >= 0) {
    put_int("x-litellm-attempted-retries", ctx.attempted_retries);
    put_int("x-litellm-max-retries", ctx.max_retries);
    put_int("x-litellm-attempted-fallbacks", ctx.attempted_fallbacks);
  }
  if (ctx.who.vkey) {
    // The key's spend as last written (before this request): LiteLLM's x-litellm-key-spend.
    char buf[64];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, ctx.who.vkey->spend);
    (void)ec;
    http::append_head_line(h, "x-litellm-key-spend", std::string_view(buf, static_cast<std::size_t>(end - buf)));
  }
  h += ctx.limit_headers;  // x-ratelimit-* of the limits that apply (empty: none)
  auto total = clock::now() - ctx.req.received_at;
  put_int("x-litellm-response-duration-ms", ms_of(total));
  put_int("x-litellm-overhead-duration-ms", ms_of(total - ctx.upstream_time));
  return h;
}

core::error transport_error(const core::error& e, const config::deployment& d, std::chrono::milliseconds timeout) {
  const std::string label(d.provider->exception_label);
  if (e.code == core::errc::upstream_timeout) {
    return core::make_error(core::errc::upstream_timeout,
                            "litellm.Timeout: " + label + " - Request timed out after " +
                                std::to_string(static_cast<double>(timeout.count()) / 1000.0) +
                                " seconds. model=" + d.model_name + ". " + e.message);
  }
  return core::make_error(core::errc::upstream_unreachable,
                          "litellm.APIConnectionError: " + label + " - " + e.message + ". model=" + d.model_name);
}

void add_provider_headers(std::string& lines, const upstream::header_list& in) {
  for (const auto& [k, v] : in) {
    if (k != "content-length" && k != "transfer-encoding" && k != "connection" && k != "keep-alive") {
      lines += "llm_provider-";
      http::append_head_line(lines, k, v);
    }
  }
}

std::string retry_after_of(const upstream::header_list& h) {
  for (const auto& [k, v] : h) {
    if (k == "retry-after") {
      return v;
    }
  }
  return {};
}

upstream::request upstream_request_of(providers::upstream_call call, std::chrono::milliseconds timeout) {
  upstream::request ur;
  ur.url = std::move(call.url);
  ur.headers = std::move(call.headers);
  ur.body = std::move(call.body);
  ur.body_parts = std::move(call.body_parts);  // views into the client's body and ur.body
  ur.timeout = timeout;
  ur.connect_timeout = std::min(timeout, std::chrono::milliseconds{10'000});
  return ur;
}

core::error upstream_status_error(const config::deployment& d, const providers::adapter* adapter, int status,
                                  std::string_view body, const upstream::header_list& headers) {
  auto e = adapter != nullptr ? adapter->translate_error(d, status, body)
                              : providers::upstream_error(status, body, d.provider->exception_label);
  e.retry_after = retry_after_of(headers);
  return e;
}

// Tracing on: the provider gets the attempt's span as its parent (W3C traceparent),
// replacing any traceparent a deployment's extra_headers carried.
void add_traceparent(const request_ctx& ctx, upstream::request& req) {
  const auto& t = ctx.out.trace;
  if (t.trace_id.empty() || ctx.out.attempts.empty() || ctx.out.attempts.back().span_id.empty()) {
    return;
  }
  std::string v = "00-" + t.trace_id + "-" + ctx.out.attempts.back().span_id + (t.sampled ? "-01" : "-00");
  for (auto& [k, val] : req.headers) {
    if (k.size() == 11 && std::equal(k.begin(), k.end(), "traceparent", [](char a, char b) {
          return (a >= 'A' && a <= 'Z' ? static_cast<char>(a - 'A' + 'a') : a) == b;
        })) {
      val = std::move(v);
      return;
    }
  }
  req.headers.emplace_back("traceparent", std::move(v));
}

// general_settings.forward_client_headers_to_llm_api (LiteLLM's rule: the client's x-*
// headers and anthropic-beta). Never forwarded: credentials (x-api-key, x-goog-api-key,
// the configured key header), the gateway's own x-litellm-* controls, the OpenAI SDK's
// x-stainless-* telemetry, and x-amz-* (they would contradict a SigV4 signature). A
// header the request to the provider already has (the adapter's, the deployment's
// extra_headers) is kept as it is.
void add_client_headers(const request_ctx& ctx, upstream::request& req) {
  if (!ctx.forward_client_headers) {
    return;
  }
  for (const auto& [k, v] : ctx.req.headers) {  // names are lower-case
    const bool candidate = (k.size() > 2 && k[0] == 'x' && k[1] == '-') || k == "anthropic-beta";
    if (!candidate || k == "x-api-key" || k == "x-goog-api-key" || k.starts_with("x-litellm-") ||
        k.starts_with("x-stainless-") || k.starts_with("x-amz-") || (!ctx.key_header.empty() && k == ctx.key_header)) {
      continue;
    }
    bool present = false;
    for (const auto& [name, value] : req.headers) {
      if (name.size() == k.size() && std::equal(k.begin(), k.end(), name.begin(), [](char a, char b) {
            return a == (b >= 'A' && b <= 'Z' ? static_cast<char>(b - 'A' + 'a') : b);
          })) {
        present = true;
        break;
      }
    }
    if (!present) {
      req.headers.emplace_back(k, v);
    }
  }
}

namespace {

// How long a provider call waits before the client's socket is watched. A client that
// leaves after that cancels the call: nobody would read the answer, and the provider
// would go on generating (and billing) it for up to the deployment's timeout. Shorter
// waits, most of them, pay no socket watch (responder::watch_disconnect_after); a client
// that leaves sooner has its call run to the end, as before.
constexpr std::chrono::milliseconds disconnect_watch_delay{1000};

core::error client_left(request_ctx& ctx) {
  ctx.upstream_cancelled = true;
  auto e = core::make_error(core::errc::upstream_unreachable,
                            "The client disconnected while waiting for the provider; the provider call was cancelled");
  e.status = 499;  // nginx's "client closed request": nothing was sent, nobody to send it to
  e.retryable = false;
  return e;
}

}  // namespace

net::awaitable<core::result<upstream::response>> send_upstream(request_ctx& ctx, upstream_caller& up,
                                                               upstream::request req,
                                                               std::chrono::milliseconds timeout,
                                                               const providers::adapter* adapter) {
  const auto& d = *ctx.dep;
  add_traceparent(ctx, req);
  add_client_headers(ctx, req);
  upstream::call_cancel cancel;
  req.cancel = &cancel;
  const auto t0 = clock::now();
  ctx.resp.watch_disconnect_after(disconnect_watch_delay, [&cancel] { cancel.cancel(); });
  auto r = co_await up.send(std::move(req));
  ctx.resp.stop_watching();
  ctx.upstream_time += clock::now() - t0;
  if (!r) {
    if (cancel.requested()) {
      co_return client_left(ctx);
    }
    co_return transport_error(r.error(), d, timeout);
  }
  ctx.upstream_status = r->status;
  if (r->status >= 400) {
    co_return upstream_status_error(d, adapter, r->status, r->body, r->headers);
  }
  co_return r;
}

net::awaitable<core::result<std::unique_ptr<upstream::body_stream>>> open_upstream(
    request_ctx& ctx, upstream_caller& up, upstream::request req, std::chrono::milliseconds timeout,
    const providers::adapter* adapter) {
  const auto& d = *ctx.dep;
  add_traceparent(ctx, req);
  add_client_headers(ctx, req);
  upstream::call_cancel cancel;
  req.cancel = &cancel;
  const auto t0 = clock::now();
  ctx.resp.watch_disconnect_after(disconnect_watch_delay, [&cancel] { cancel.cancel(); });
  auto opened = co_await up.open(std::move(req));
  ctx.resp.stop_watching();
  ctx.upstream_time += clock::now() - t0;
  if (!opened) {
    if (cancel.requested()) {
      co_return client_left(ctx);
    }
    co_return transport_error(opened.error(), d, timeout);
  }
  auto& s = *opened;
  ctx.upstream_status = s->status();
  if (s->status() >= 400) {
    // The refusal's body (its first MB) is what the provider said.
    std::string body;
    for (;;) {
      auto piece = co_await s->read_some();
      if (!piece || piece->empty() || body.size() > (1u << 20)) {
        break;
      }
      body += *piece;
    }
    co_return upstream_status_error(d, adapter, s->status(), body, s->headers());
  }
  co_return std::move(opened);
}

net::awaitable<core::result<std::string>> stream_reader::next() {
  if (!initial_.empty()) {
    co_return std::exchange(initial_, std::string{});
  }
  if (!watching_) {
    watching_ = true;
    ctx_.resp.watch_disconnect([this] {
      client_left_ = true;
      s_.cancel();
    });
  }
  const auto t0 = clock::now();
  auto piece = co_await s_.read_some();
  ctx_.upstream_time += clock::now() - t0;
  co_return piece;
}

net::awaitable<bool> begin_event_stream(request_ctx& ctx, const upstream::body_stream& s) {
  ctx.ttft = clock::now() - ctx.attempt_started;
  auto h = litellm_headers(ctx);
  h += "cache-control: no-cache\r\nx-accel-buffering: no\r\n";
  add_provider_headers(h, s.headers());
  co_return co_await ctx.resp.begin_stream(200, "text/event-stream", {}, std::move(h));
}

net::awaitable<std::optional<core::error>> cover_stream_events(request_ctx& ctx, long long events) {
  if (ctx.stream_limit == nullptr || events <= ctx.stream_token_allowance) {
    co_return std::nullopt;
  }
  co_return co_await ctx.stream_limit->extend(ctx, events);
}

net::awaitable<std::optional<core::error>> cover_stream_payloads(request_ctx& ctx, long long relayed,
                                                                 std::vector<std::string>& payloads) {
  auto e = co_await cover_stream_events(ctx, relayed + static_cast<long long>(payloads.size()));
  if (e) {
    const auto keep = std::max<long long>(0, ctx.stream_token_allowance - relayed);
    if (payloads.size() > static_cast<std::size_t>(keep)) {
      payloads.resize(static_cast<std::size_t>(keep));
    }
  }
  co_return e;
}

void add_response_cost(const request_ctx& ctx, std::string& lines) {
  if (ctx.prices == nullptr || !ctx.usage.known || ctx.dep == nullptr) {
    return;
  }
  const spend::tokens t{ctx.usage.prompt_tokens, ctx.usage.completion_tokens, ctx.usage.cached_tokens,
                        ctx.usage.cache_creation_tokens, ctx.usage.reasoning_tokens};
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, ctx.prices->cost(*ctx.dep, t));
  (void)ec;
  http::append_head_line(lines, "x-litellm-response-cost", std::string_view(buf, static_cast<std::size_t>(end - buf)));
}

net::awaitable<void> send_error(request_ctx& ctx, core::error e) {
  auto r = http::error_response(e);
  if (ctx.type == providers::call_type::messages) {
    r.body = providers::anthropic_front::error_body(e);  // Anthropic's shape on its route
  }
  r.head_lines = litellm_headers(ctx);
  ctx.out.error = std::move(e);
  co_await ctx.resp.send(std::move(r));
}

std::string stream_error_event(providers::call_type type, const core::error& e) {
  switch (type) {
    case providers::call_type::messages:
      return providers::anthropic_front::error_event(e);
    case providers::call_type::responses: {
      // The sequence number belongs to the stream's writer, which is what failed: the
      // event goes without one (the SDKs raise an `error` event before reading it).
      auto ev = providers::error_event_fields(e);
      ev["type"] = "error";
      return "event: error\ndata: " + ev.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n\n";
    }
    default:
      return "data: " + http::error_body(e) + "\n\n";
  }
}

}  // namespace switchyard::pipeline
