#include "provider_call.hpp"

#include "respond.hpp"

#include "switchyard/core/ids.hpp"
#include "switchyard/core/seconds.hpp"
#include "switchyard/spend/record.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <optional>

namespace switchyard::pipeline {

using json = nlohmann::json;
using clock = std::chrono::steady_clock;
using providers::call_type;

namespace {

std::chrono::milliseconds seconds_to_ms(double s) {
  if (s <= 0) {
    s = 0.001;
  }
  return core::saturated_millis(s);  // timeout: .inf waits a hundred years, not zero
}

// Gemini 3's thought signatures travel in tool call ids (call_<hex>__thought__<signature>,
// LiteLLM's form), for the Gemini adapter to send back. Another provider refuses such ids
// (OpenAI allows 40 characters, Anthropic only [A-Za-z0-9_-]), which would fail a fallback
// or a switch of model in the middle of a tool conversation; as LiteLLM does, they get the
// id without its signature (the same cut on both sides, so calls and results still pair).
constexpr std::string_view thought_separator = "__thought__";

bool keeps_thought_signatures(const config::deployment& d) {
  const auto w = d.provider->wire;
  return w == config::wire_format::gemini ||
         (w == config::wire_format::vertex && d.upstream_model.rfind("claude", 0) != 0);
}

bool cut_signature(json& id) {
  if (!id.is_string()) {
    return false;
  }
  auto& s = id.get_ref<std::string&>();
  const auto at = s.find(thought_separator);
  if (at == std::string::npos) {
    return false;
  }
  s.resize(at);
  return true;
}

// A copy of `body` whose messages' tool call ids have no signature; nullopt: none had one.
std::optional<json> without_thought_signatures(const json& body) {
  auto msgs = body.find("messages");
  if (msgs == body.end() || !msgs->is_array()) {
    return std::nullopt;
  }
  json out = body;
  bool cut = false;
  for (auto& m : out["messages"]) {
    if (!m.is_object()) {
      continue;
    }
    if (auto id = m.find("tool_call_id"); id != m.end()) {
      cut = cut_signature(*id) || cut;
    }
    if (auto calls = m.find("tool_calls"); calls != m.end() && calls->is_array()) {
      for (auto& c : *calls) {
        if (c.is_object()) {
          if (auto id = c.find("id"); id != c.end()) {
            cut = cut_signature(*id) || cut;
          }
        }
      }
    }
  }
  if (!cut) {
    return std::nullopt;
  }
  return out;
}

}  // namespace

// store_prompts_in_spend_logs: the text of OpenAI chunk payloads (chat delta content, or a
// text_completion's text), appended to ctx.kept_response up to the stored size.
void keep_stream_text(request_ctx& ctx, const std::vector<std::string>& payloads) {
  for (const auto& p : payloads) {
    auto j = nlohmann::json::parse(p, nullptr, false);
    if (!j.is_object()) {
      continue;
    }
    auto ch = j.find("choices");
    if (ch == j.end() || !ch->is_array() || ch->empty() || !(*ch)[0].is_object()) {
      continue;
    }
    const auto& c0 = (*ch)[0];
    const nlohmann::json* text = nullptr;
    if (auto d = c0.find("delta"); d != c0.end() && d->is_object()) {
      if (auto t = d->find("content"); t != d->end() && t->is_string()) {
        text = &*t;
      }
    } else if (auto t = c0.find("text"); t != c0.end() && t->is_string()) {
      text = &*t;
    }
    if (text == nullptr) {
      continue;
    }
    const auto& s = text->get_ref<const std::string&>();
    ctx.kept_bytes += s.size();
    if (ctx.kept_response.size() < spend::max_stored_bytes) {
      ctx.kept_response.append(s, 0, std::min(s.size(), spend::max_stored_bytes - ctx.kept_response.size()));
    }
  }
}


net::awaitable<std::optional<core::error>> provider_call::attempt(request_ctx& ctx) {
  if (ctx.type == call_type::responses && responses_ != nullptr) {
    co_return co_await responses_->attempt(ctx);  // its own runner: responses_call.hpp
  }
  if (ctx.type == call_type::messages) {
    co_return co_await messages_attempt(ctx);  // messages_call.cpp
  }
  if (ctx.type != call_type::embedding) {
    if (auto mr = ctx.body.find("mock_response"); mr != ctx.body.end() && mr->is_string()) {
      co_await answer_mock(ctx, mr->get<std::string>());
      co_return std::nullopt;
    }
    if (ctx.dep->mock_response) {
      co_await answer_mock(ctx, *ctx.dep->mock_response);
      co_return std::nullopt;
    }
  }
  co_return co_await call(ctx);
}

net::awaitable<void> provider_call::answer_mock(request_ctx& ctx, const std::string& content) {
  const long long created = static_cast<long long>(std::time(nullptr));
  const std::string& model = ctx.requested_model;
  if (ctx.type == call_type::completion) {
    std::string id = "cmpl-" + core::uuid4();
    auto text = providers::mock_text_completion(model, content, ctx.full_body(), id, created);
    if (!ctx.stream) {
      http::response r;
      r.body = std::move(text);
      r.head_lines = litellm_headers(ctx);
      co_await ctx.resp.send(std::move(r));
      co_return;
    }
    auto h = litellm_headers(ctx);
    h += "cache-control: no-cache\r\nx-accel-buffering: no\r\n";
    if (co_await ctx.resp.begin_stream(200, "text/event-stream", {}, std::move(h)) &&
        co_await ctx.resp.write("data: " + text + "\n\ndata: [DONE]\n\n")) {
      co_await ctx.resp.end_stream();
    }
    co_return;
  }
  std::string id = "chatcmpl-" + core::uuid4();
  if (!ctx.stream) {
    http::response r;
    r.body = providers::mock_chat_completion(model, content, ctx.full_body(), id, created);
    r.head_lines = litellm_headers(ctx);
    co_await ctx.resp.send(std::move(r));
    co_return;
  }
  auto frames = providers::mock_chat_stream(model, content, ctx.full_body(), id, created, ctx.client_wants_usage);
  auto h = litellm_headers(ctx);
  h += "cache-control: no-cache\r\nx-accel-buffering: no\r\n";
  if (!co_await ctx.resp.begin_stream(200, "text/event-stream", {}, std::move(h))) {
    co_return;
  }
  for (const auto& f : frames) {
    if (!co_await ctx.resp.write(f)) {
      co_return;
    }
  }
  co_await ctx.resp.end_stream();
}

std::chrono::milliseconds provider_call::timeout_of(const config::deployment& d) const {
  if (d.timeout) {
    return seconds_to_ms(*d.timeout);
  }
  if (cfg_->router.timeout) {
    return seconds_to_ms(*cfg_->router.timeout);
  }
  if (cfg_->litellm.request_timeout) {
    return seconds_to_ms(*cfg_->litellm.request_timeout);
  }
  return seconds_to_ms(6000);
}

std::chrono::milliseconds provider_call::stream_timeout_of(const config::deployment& d) const {
  if (d.stream_timeout) {
    return seconds_to_ms(*d.stream_timeout);
  }
  if (cfg_->router.stream_timeout) {
    return seconds_to_ms(*cfg_->router.stream_timeout);
  }
  return timeout_of(d);
}

bool provider_call::drop_params_of(const request_ctx& ctx) const {
  const auto& d = *ctx.dep;
  bool drop_params = cfg_->litellm.drop_params;
  if (auto dp = ctx.body.find("drop_params"); dp != ctx.body.end() && dp->is_boolean()) {
    drop_params = dp->get<bool>();
  }
  if (d.litellm_params.is_object()) {
    if (auto dp = d.litellm_params.find("drop_params"); dp != d.litellm_params.end() && dp->is_boolean()) {
      drop_params = dp->get<bool>();
    }
  }
  return drop_params;
}

net::awaitable<std::optional<core::error>> provider_call::call(request_ctx& ctx) {
  const auto& d = *ctx.dep;
  const auto& adapter = providers::adapter_for(*d.provider);
  // A deployment that authenticates with an OAuth2 token (Vertex AI, Azure Entra ID)
  // gets the held one; only the first request (or one after a long idle) waits.
  std::string bearer;
  if (token_source* src = token_source_of(d)) {
    auto t = co_await src->get();
    if (!t) {
      co_return t.error();
    }
    bearer = std::move(*t);
  }
  const providers::build_options bo{ctx.stream, drop_params_of(ctx), bearer};
  // OpenAI-compatible upstreams get the client's bytes with surgical edits; the others
  // translate the parsed document.
  std::optional<json> unsigned_body;
  if (ctx.type == call_type::chat && !keeps_thought_signatures(d) &&
      std::string_view(ctx.req.body).find(thought_separator) != std::string_view::npos) {
    unsigned_body = without_thought_signatures(ctx.full_body());
  }
  auto raw = unsigned_body ? std::nullopt : adapter.build_raw(ctx.type, d, ctx.req.body, ctx.scan, bo);
  auto call = raw ? std::move(*raw) : adapter.build(ctx.type, d, unsigned_body ? *unsigned_body : ctx.full_body(), bo);
  if (!call) {
    co_return call.error();
  }
  const auto timeout = ctx.stream ? stream_timeout_of(d) : timeout_of(d);
  auto ur = upstream_request_of(std::move(*call), timeout);

  if (!ctx.stream) {
    auto r = co_await send_upstream(ctx, upstream_, std::move(ur), timeout, &adapter);
    if (!r) {
      co_return r.error();
    }
    auto tr = adapter.translate_response(ctx.type, d, r->body, ctx.requested_model);
    if (tr && ctx.type == call_type::embedding && &adapter != &providers::openai_adapter()) {
      // OpenAI-compatible upstreams encode base64 themselves; the others return floats.
      auto ef = ctx.body.find("encoding_format");
      if (ef != ctx.body.end() && *ef == "base64") {
        auto encoded = providers::encode_embeddings_base64(tr->body);
        if (!encoded) {
          co_return encoded.error();
        }
        tr->body = std::move(*encoded);
      }
    }
    if (!tr) {
      co_return tr.error();
    }
    if (ctx.shape_answer) {
      auto shaped = ctx.shape_answer(tr->body);
      if (!shaped) {
        co_return shaped.error();
      }
      tr->body = std::move(*shaped);
    }
    ctx.usage = tr->tokens;
    http::response out;
    out.body = std::move(tr->body);
    if (ctx.keep_response) {
      ctx.kept_bytes = out.body.size();
      ctx.kept_response.assign(out.body, 0, std::min(out.body.size(), spend::max_stored_bytes));
      ctx.kept_json = ctx.kept_response.size() == out.body.size();  // whole: valid JSON (the adapter's)
    }
    out.head_lines = litellm_headers(ctx);
    add_response_cost(ctx, out.head_lines);
    add_provider_headers(out.head_lines, r->headers);
    co_await ctx.resp.send(std::move(out));
    co_return std::nullopt;
  }

  auto opened = co_await open_upstream(ctx, upstream_, std::move(ur), timeout, &adapter);
  if (!opened) {
    co_return opened.error();
  }
  auto s = std::move(*opened);
  co_return co_await relay_stream(ctx, std::move(s), timeout);
}

net::awaitable<std::optional<core::error>> provider_call::relay_stream(request_ctx& ctx,
                                                                      std::unique_ptr<upstream::body_stream> s,
                                                                      std::chrono::milliseconds stream_timeout) {
  const auto& d = *ctx.dep;
  auto translator = providers::adapter_for(*d.provider).make_stream(ctx.type, d, ctx.requested_model,
                                                                ctx.client_wants_usage);
  auto* raw = s.get();
  stream_reader reader(ctx, *s);

  std::vector<std::string> payloads;
  std::string out;
  bool head_sent = false;
  std::optional<core::error> failure;
  const bool keep_text = ctx.keep_response;

  auto take_payloads = [&] {  // pending payloads -> SSE frames in `out`
    out.clear();
    ctx.events_sent += payloads.size();
    if (keep_text) {
      keep_stream_text(ctx, payloads);
    }
    for (const auto& p : payloads) {
      out += "data: ";
      out += p;
      out += "\n\n";
    }
    payloads.clear();
  };
  auto send_head = [&]() -> net::awaitable<bool> {
    head_sent = true;
    return begin_event_stream(ctx, *s);
  };
  // Budgets: the reservation covers ctx.stream_token_allowance completion tokens (one
  // per event, as a stream's usage is estimated when it never comes). Past it the limits
  // stage reserves more, chunk by chunk, or the stream ends here with what still fits,
  // an error event and [DONE] (a provider that ignores max_tokens).
  bool budget_cut = false;
  auto within_budget = [&]() -> net::awaitable<bool> {
    if (auto e = co_await cover_stream_payloads(ctx, static_cast<long long>(ctx.events_sent), payloads)) {
      failure = std::move(*e);
      budget_cut = true;
      co_return false;
    }
    co_return true;
  };
  // The head goes out with the first translated event, so that an error before it
  // still reaches the client as a real HTTP status.
  auto flush = [&]() -> net::awaitable<bool> {
    if (payloads.empty()) {
      co_return true;
    }
    take_payloads();
    if (!head_sent && !co_await send_head()) {
      co_return false;
    }
    co_return co_await ctx.resp.write(out);
  };

  for (;;) {
    auto piece = co_await reader.next();
    if (reader.client_left()) {
      break;
    }
    if (!piece) {
      failure = transport_error(piece.error(), d, stream_timeout);
      break;
    }
    if (piece->empty()) {
      if (auto fin = translator->finish(payloads); !fin) {
        failure = fin.error();
      }
      break;
    }
    std::string_view bytes = *piece;
    if (!head_sent) {
      // Time to first byte: the first event goes out (with the head) before the rest of
      // this read is translated; a provider's first read often holds many events, or the
      // whole answer (~15 us of translation for 20 events, measured in bench/).
      auto end = providers::first_event_end(d.provider->framing, bytes);
      if (end != 0 && end < bytes.size()) {
        if (auto fed = translator->feed(bytes.substr(0, end), payloads); !fed) {
          failure = fed.error();
          raw->cancel();
          break;
        }
        bytes.remove_prefix(end);
        if (ctx.stream_limit != nullptr && !payloads.empty() && !co_await within_budget()) {
          raw->cancel();
          break;
        }
        if (!payloads.empty() && !co_await flush()) {
          raw->cancel();
          break;
        }
      }
    }
    if (auto fed = translator->feed(bytes, payloads); !fed) {
      failure = fed.error();
      raw->cancel();
      break;
    }
    if (ctx.stream_limit != nullptr && !payloads.empty() && !co_await within_budget()) {
      raw->cancel();
      break;
    }
    if (s->complete()) {
      // The body is all here: finish now, so that the last events, [DONE] and the end
      // of the chunked body go out in one write (often the stream's only write).
      if (auto fin = translator->finish(payloads); !fin) {
        failure = fin.error();
      }
      break;
    }
    if (!co_await flush()) {
      raw->cancel();
      break;
    }
  }
  ctx.usage = translator->tokens();
  ctx.resp.stop_watching();
  if (reader.client_left() || ctx.resp.client_gone()) {
    spdlog::info("client disconnected during a stream; upstream request cancelled (call_id={})", ctx.req.call_id);
    co_return std::nullopt;
  }
  if (ctx.stream_limit != nullptr && !budget_cut && !payloads.empty() && !co_await within_budget()) {
    raw->cancel();
  }
  if (failure && !head_sent && payloads.empty()) {
    co_return failure;  // nothing reached the client yet: retry, fall back, or a real status
  }
  // With the first (or no) event: the upstream ended without one, still a well-formed stream.
  if (!head_sent && !co_await send_head()) {
    co_return std::nullopt;
  }
  // The remaining events and the end, in one write.
  take_payloads();
  if (failure) {
    // Mid-stream: an error event on the 200 stream, then the end of the body.
    ctx.late_failure = failure;
    spdlog::warn("stream failed after the first chunk (call_id={}): {}", ctx.req.call_id, failure->message);
    out += stream_error_event(ctx.type, *failure);
    if (budget_cut) {
      out += "data: [DONE]\n\n";  // a clear end the SDKs stop on
    }
  } else {
    out += "data: [DONE]\n\n";
  }
  co_await ctx.resp.write_last(out);
  co_return std::nullopt;
}

}  // namespace switchyard::pipeline
