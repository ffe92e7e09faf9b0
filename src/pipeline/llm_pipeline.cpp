#include "switchyard/pipeline/llm_pipeline.hpp"

#include "messages_call.hpp"
#include "provider_call.hpp"
#include "respond.hpp"
#include "responses_call.hpp"
#include "stages.hpp"

#include "switchyard/core/log.hpp"

#include <cctype>
#include <spdlog/spdlog.h>

#include <exception>
#include <random>

namespace switchyard::pipeline {

using clock = std::chrono::steady_clock;
using providers::call_type;

namespace {

// The first observer: one access line per request, written from the outcome.
class access_log final : public observer {
 public:
  void on_finish(const request_ctx& ctx) noexcept override {
    core::access_record rec;
    rec.method = ctx.req.method;
    rec.path = ctx.req.path;
    rec.status = ctx.out.status;
    rec.model = ctx.requested_model;
    rec.key_redacted = ctx.who.key_redacted;
    rec.call_id = ctx.req.call_id;
    rec.duration_ms = std::chrono::duration<double, std::milli>(ctx.out.done - ctx.out.received).count();
    core::log_access(rec);
  }
};

// Runs finish() when the request's coroutine frame goes away without having run it
// (an exception past handle(), or a frame destroyed at shutdown).
struct finish_guard {
  llm_pipeline* p;
  request_ctx& ctx;
  void (llm_pipeline::*fn)(request_ctx&) noexcept;
  ~finish_guard() {
    if (!ctx.finished) {
      (p->*fn)(ctx);
    }
  }
};

// A boolean setting of a raw config section (true, or a string saying so).
bool flag(const nlohmann::json& section, const char* name) {
  auto it = section.find(name);
  if (it == section.end()) {
    return false;
  }
  return it->is_boolean() ? it->get<bool>() : it->is_string() && (*it == "true" || *it == "True");
}

bool is_hex(std::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return false;
    }
  }
  return true;
}

bool all_zero(std::string_view s) { return s.find_first_not_of('0') == std::string_view::npos; }

std::string random_hex_digits(std::size_t n) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static constexpr char digits[] = "0123456789abcdef";
  std::string out(n, '0');
  for (;;) {
    std::uint64_t r = 0;
    for (std::size_t i = 0; i < n; ++i) {
      if (i % 16 == 0) {
        r = rng();
      }
      out[i] = digits[r & 0xf];
      r >>= 4;
    }
    if (!all_zero(out)) {
      return out;
    }
  }
}

}  // namespace

std::string new_span_id() { return random_hex_digits(16); }

trace_context trace_context_of(std::string_view tp) {
  trace_context t;
  // version "00": exactly 55 characters; a later version may append fields after a '-'.
  const bool shaped = tp.size() >= 55 && tp[2] == '-' && tp[35] == '-' && tp[52] == '-' &&
                      (tp.size() == 55 || tp[55] == '-') && tp.substr(0, 2) != "ff";
  if (shaped && is_hex(tp.substr(0, 2)) && is_hex(tp.substr(3, 32)) && is_hex(tp.substr(36, 16)) &&
      is_hex(tp.substr(53, 2)) && !all_zero(tp.substr(3, 32)) && !all_zero(tp.substr(36, 16)) &&
      !(tp.substr(0, 2) == "00" && tp.size() != 55)) {
    t.trace_id = std::string(tp.substr(3, 32));
    t.parent_span_id = std::string(tp.substr(36, 16));
    const int flags = std::stoi(std::string(tp.substr(53, 2)), nullptr, 16);
    t.sampled = (flags & 1) != 0;
  } else {
    t.trace_id = random_hex_digits(32);
  }
  t.span_id = new_span_id();
  return t;
}

struct llm_pipeline::parts {
  parts(std::shared_ptr<const config::config> cfg, const auth::key_authenticator& auth, router::router& rt,
        upstream_caller& upstream, responses_store* store)
      : tokens(*cfg, upstream),
        call(cfg, upstream),
        own_store(store == nullptr ? std::make_unique<responses_store>(net::any_io_executor{}, nullptr) : nullptr),
        responses(cfg, upstream, call, store != nullptr ? *store : *own_store),
        loop(rt, router::retry_settings::from(*cfg), router::fallback_settings::from(*cfg), call),
        auth(auth),
        parse(flag(cfg->general.raw, "enforce_user_param")),
        route(auth, rt),
        provider(loop),
        count(rt, call) {
    call.set_responses_runner(&responses);
    call.set_tokens(&tokens);
  }

  token_broker tokens;
  provider_call call;
  std::unique_ptr<responses_store> own_store;
  responses_call responses;
  attempt_loop loop;
  auth_stage auth;
  parse_stage parse;
  route_stage route;
  provider_stage provider;
  count_tokens_stage count;
  access_log access;
};

llm_pipeline::llm_pipeline(std::shared_ptr<const config::config> cfg, const auth::key_authenticator& auth,
                           router::router& rt, upstream_caller& upstream, extensions ext)
    : parts_(std::make_unique<parts>(cfg, auth, rt, upstream, ext.responses)),
      prices_(ext.prices),
      tracing_(ext.tracing),
      keep_response_(ext.keep_response || cfg->general.store_prompts_in_spend_logs),
      forward_client_headers_(cfg->general.forward_client_headers_to_llm_api),
      key_header_(cfg->general.raw.value("litellm_key_header_name", std::string{})) {
  for (auto& ch : key_header_) {
    ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  }
  // The chain, top to bottom. Optional stages sit where they are listed.
  chain_.push_back(&parts_->auth);
  chain_.push_back(&parts_->parse);
  if (ext.limits != nullptr) {
    chain_.push_back(ext.limits);
  }
  chain_.push_back(&parts_->route);
  if (ext.cache != nullptr) {
    chain_.push_back(ext.cache);
  }
  parts_->parse.remember_bodies(ext.body_memo);
  chain_.push_back(&parts_->provider);
  count_chain_ = {&parts_->auth, &parts_->parse, &parts_->route, &parts_->count};
  observers_.push_back(&parts_->access);
  for (auto* o : ext.observers) {
    observers_.push_back(o);
  }
}

llm_pipeline::~llm_pipeline() = default;

net::awaitable<void> llm_pipeline::handle(http::request& req, http::responder& resp, call_type type,
                                          std::string path_model) {
  request_ctx ctx(req, resp);
  ctx.type = type;
  ctx.route = names_of(type).route;
  ctx.path_model = std::move(path_model);
  ctx.prices = prices_;
  ctx.keep_response = keep_response_;
  ctx.forward_client_headers = forward_client_headers_;
  ctx.key_header = key_header_;
  if (tracing_) {
    ctx.out.trace = trace_context_of(req.header("traceparent"));
    ctx.out.stages.reserve(6);
  }
  ctx.resp.take_access_log();  // finish writes it, with the outcome
  finish_guard guard{this, ctx, &llm_pipeline::finish};
  bool crashed = false;
  try {
    co_await run_chain(ctx, chain_);
  } catch (const std::exception& e) {
    spdlog::error("LLM request failed with an exception (call_id={}): {}", req.call_id, e.what());
    crashed = true;
  }
  if (crashed && !ctx.resp.started() && !ctx.resp.client_gone()) {
    co_await send_error(ctx, core::make_error(core::errc::internal, "Internal error while handling the request"));
  } else if (crashed) {
    auto e = core::make_error(core::errc::internal, "Internal error while handling the request");
    // A stream already begun ends with an error event the client's SDK raises, and a
    // proper last chunk (the connection can serve the next request), not a cut body.
    if (!ctx.resp.ended() && !ctx.resp.client_gone()) {
      co_await ctx.resp.write_last(stream_error_event(ctx.type, e));
    }
    if (!ctx.out.error) {
      ctx.out.error = std::move(e);
    }
  }
  finish(ctx);
}

net::awaitable<void> llm_pipeline::count_tokens(http::request& req, http::responder& resp) {
  request_ctx ctx(req, resp);
  ctx.type = call_type::messages;  // Anthropic's request shape and error shape
  ctx.route = "/v1/messages/count_tokens";
  ctx.resp.take_access_log();
  finish_guard guard{this, ctx, &llm_pipeline::finish_count};
  bool crashed = false;
  try {
    co_await run_chain(ctx, count_chain_);
  } catch (const std::exception& e) {
    spdlog::error("count_tokens failed with an exception (call_id={}): {}", req.call_id, e.what());
    crashed = true;
  }
  if (crashed && !ctx.resp.started() && !ctx.resp.client_gone()) {
    co_await send_error(ctx, core::make_error(core::errc::internal, "Internal error while handling the request"));
  }
  finish_count(ctx);
}

void llm_pipeline::finish_count(request_ctx& ctx) noexcept {
  if (ctx.finished) {
    return;
  }
  ctx.finished = true;
  ctx.out.done = clock::now();
  ctx.out.client_gone = ctx.resp.client_gone();
  parts_->access.on_finish(ctx);  // the access line only: nothing was generated, nothing to bill
}

net::awaitable<void> llm_pipeline::run_chain(request_ctx& ctx, const std::vector<stage*>& chain) {
  const bool timed = tracing_ && &chain == &chain_;
  for (stage* s : chain) {
    const bool timed_stage = timed && s != &parts_->provider;
    const auto t0 = timed_stage ? clock::now() : clock::time_point{};
    auto v = s->run(ctx);  // a plain call: no coroutine frame unless the stage waits
    if (v.s == step::wait) {
      v = co_await s->run_async(ctx);
    }
    if (timed_stage) {
      ctx.out.stages.push_back({s->name(), t0, clock::now()});
    }
    if (v.s == step::answered) {
      if (s != chain.back()) {
        ctx.out.answered_by = s->name();
      }
      if (v.error) {
        co_await send_error(ctx, std::move(*v.error));
      }
      co_return;
    }
  }
}

void llm_pipeline::finish(request_ctx& ctx) noexcept {
  if (ctx.finished) {
    return;
  }
  ctx.finished = true;
  auto& out = ctx.out;
  out.done = clock::now();
  out.client_gone = ctx.resp.client_gone();
  if (const auto* a = out.final_attempt()) {
    out.usage = a->usage;
    if (!out.error && a->error) {
      out.error = a->error;  // a stream that failed after its head
    }
  }
  for (auto* o : observers_) {
    o->on_finish(ctx);
  }
}

}  // namespace switchyard::pipeline
