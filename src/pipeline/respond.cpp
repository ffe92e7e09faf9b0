#include "respond.hpp"

#include "switchyard/providers/anthropic_front.hpp"

#include <charconv>

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
  auto total = clock::now() - ctx.req.received_at;
  put_int("x-litellm-response-duration-ms", ms_of(total));
  put_int("x-litellm-overhead-duration-ms", ms_of(total - ctx.upstream_time));
  return h;
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

}  // namespace switchyard::pipeline
