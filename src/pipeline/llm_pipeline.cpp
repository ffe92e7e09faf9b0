#include "switchyard/pipeline/llm_pipeline.hpp"

#include "switchyard/core/ids.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <ctime>

namespace switchyard::pipeline {

using json = nlohmann::json;
using clock = std::chrono::steady_clock;
using providers::call_type;

namespace {

long long ms_of(clock::duration d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d).count(); }

std::chrono::milliseconds seconds_to_ms(double s) {
  if (s <= 0) {
    s = 0.001;
  }
  return std::chrono::milliseconds(static_cast<long long>(s * 1000.0));
}

std::string provider_label(const config::deployment& d) { return std::string(d.provider->exception_label); }

const char* route_of(call_type t) {
  switch (t) {
    case call_type::completion: return "/completions";
    case call_type::embedding: return "/embeddings";
    default: return "/chat/completions";
  }
}

core::error transport_error(const core::error& e, const config::deployment& d, std::chrono::milliseconds timeout) {
  if (e.code == core::errc::upstream_timeout) {
    return core::make_error(core::errc::upstream_timeout,
                            std::string("litellm.Timeout: ") + provider_label(d) + " - Request timed out after " +
                                std::to_string(static_cast<double>(timeout.count()) / 1000.0) +
                                " seconds. model=" + d.model_name + ". " + e.message);
  }
  return core::make_error(core::errc::upstream_unreachable, std::string("litellm.APIConnectionError: ") +
                                                                provider_label(d) + " - " + e.message +
                                                                ". model=" + d.model_name);
}

// Upstream headers passed on to the client under the llm_provider- prefix.
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

}  // namespace

llm_pipeline::llm_pipeline(std::shared_ptr<const config::config> cfg, const auth::key_authenticator& auth,
                           router::router& rt, upstream::client& client)
    : cfg_(std::move(cfg)),
      auth_(auth),
      router_(rt),
      client_(client),
      retry_(router::retry_settings::from(*cfg_)),
      fallbacks_(router::fallback_settings::from(*cfg_)) {}

net::awaitable<void> llm_pipeline::handle(http::request& req, http::responder& resp, call_type type,
                                          std::string path_model) {
  request_ctx ctx(req, resp);
  ctx.type = type;
  ctx.route = route_of(type);
  ctx.path_model = std::move(path_model);
  // auth -> parse -> route -> provider. The first three are plain calls on the hot path
  // (no coroutine frame each); only a key not in memory waits for its lookup.
  auto header = [&](std::string_view n) { return ctx.req.header(n); };
  auto key = auth_.master().key_from(header);
  auto who = auth_.authenticate_cached(key);
  if (!who) {
    auto looked_up = co_await auth_.authenticate(key);  // master key or virtual key (cached)
    who.emplace(std::move(looked_up));
  }
  if (!*who) {
    ctx.resp.annotate({}, core::redact_key(key));
    co_await fail(ctx, who->error());
    co_return;
  }
  ctx.who = std::move(**who);
  ctx.resp.annotate({}, ctx.who.key_redacted);
  auto bad = parse_stage(ctx);
  if (!bad) {
    bad = route_stage(ctx);
  }
  if (bad) {
    co_await fail(ctx, std::move(*bad));
    co_return;
  }
  co_await provider_stage(ctx);
  // The cost logger (issue 5) records ctx here, for every outcome.
}

namespace {

// Top-level members the gateway never reads: kept as bytes (see request_ctx::scan).
bool is_bulk_member(std::string_view key) {
  return key == "messages" || key == "prompt" || key == "input" || key == "tools" || key == "functions";
}

// The members read from request_ctx::body (router policy, mocks, build options). A new
// reader of ctx.body must add its member here: the others are not parsed.
bool is_gateway_read_member(std::string_view key) {
  static constexpr std::string_view read[] = {
      "stream_options",    "num_retries",           "fallbacks",
      "disable_fallbacks", "mock_response",         "mock_testing_fallbacks",
      "drop_params",       "encoding_format",       "mock_testing_rate_limit_error",
  };
  for (auto r : read) {
    if (key == r) {
      return true;
    }
  }
  return false;
}

}  // namespace

const nlohmann::json& llm_pipeline::full_body(request_ctx& ctx) {
  if (!ctx.full) {
    ctx.full = json::parse(ctx.req.body, nullptr, false);  // valid: parse_stage checked it
    if (!ctx.path_model.empty() && ctx.full->is_object()) {
      (*ctx.full)["model"] = ctx.path_model;
    }
  }
  return *ctx.full;
}

std::optional<core::error> llm_pipeline::parse_stage(request_ctx& ctx) {
  ctx.scan = providers::scan_json(ctx.req.body, providers::max_json_depth);
  if (!ctx.scan.ok) {
    if (ctx.scan.too_deep) {
      return core::make_error(core::errc::invalid_json, "Invalid request body: JSON nested deeper than " +
                                                            std::to_string(providers::max_json_depth) + " levels");
    }
    return core::make_error(core::errc::invalid_json, "Invalid JSON in request body: " + std::string(ctx.scan.error) +
                                                          " at byte " + std::to_string(ctx.scan.error_offset) +
                                                          " of " + std::to_string(ctx.req.body.size()));
  }
  if (ctx.scan.root != providers::json_kind::object) {
    return core::make_error(core::errc::bad_request, "Request body must be a JSON object");
  }
  // `model` and `stream` are read from the scan; the other members the gateway reads go
  // into ctx.body (a small DOM, usually empty: no allocation); everything else stays bytes.
  std::size_t text_chars = 0;
  const providers::json_member* model = nullptr;
  const providers::json_member* stream = nullptr;
  for (const auto& m : ctx.scan.members) {
    if (is_bulk_member(m.key)) {
      text_chars += m.text_bytes;
    } else if (m.key == "model") {
      model = &m;  // the last duplicate wins, as in a parsed object
    } else if (m.key == "stream") {
      stream = &m;
    } else if (is_gateway_read_member(m.key)) {
      ctx.body[std::string(m.key)] = providers::json_member_value(m);
    }
  }
  ctx.estimated_tokens = text_chars == 0 ? 0 : text_chars / 4 + 1;  // as router::estimate_tokens
  if (!ctx.path_model.empty()) {
    ctx.requested_model = ctx.path_model;  // /openai/deployments/{model}/..., /engines/{model}/...
  } else if (model != nullptr && model->kind == providers::json_kind::string && model->value.size() > 2) {
    ctx.requested_model = providers::json_unescape(model->value.substr(1, model->value.size() - 2));
  } else {
    return core::make_error(core::errc::bad_request, "`model` is required and must be a string", "model");
  }
  ctx.resp.annotate(ctx.requested_model, ctx.who.key_redacted);
  ctx.stream = ctx.type != call_type::embedding && stream != nullptr && stream->kind == providers::json_kind::boolean &&
               stream->value == "true";
  auto so = ctx.body.find("stream_options");
  ctx.client_wants_usage = so != ctx.body.end() && so->is_object() && so->value("include_usage", false);
  const char* required = ctx.type == call_type::chat ? "messages" : ctx.type == call_type::completion ? "prompt" : "input";
  const auto* f = ctx.scan.find(required);
  using providers::json_kind;
  bool ok = f != nullptr && (ctx.type == call_type::chat ? f->kind == json_kind::array
                                                         : (f->kind == json_kind::string || f->kind == json_kind::array));
  if (!ok) {
    return core::make_error(core::errc::bad_request,
                            std::string("`") + required + "` is required and must be " +
                                (ctx.type == call_type::chat ? "an array" : "a string or an array"),
                            required);
  }
  return std::nullopt;
}

// Only checks that the model names a group: the provider stage picks a deployment for each
// attempt (retries and fallbacks re-pick).
std::optional<core::error> llm_pipeline::route_stage(request_ctx& ctx) {
  if (ctx.who.vkey) {
    // The key's aliases, then its team's model_aliases, name the model actually routed.
    auto aliased = auth::apply_model_aliases(*ctx.who.vkey, ctx.requested_model);
    if (aliased != ctx.requested_model) {
      ctx.requested_model = aliased;
    }
  }
  if (auto allowed = auth::check_model_access(ctx.who, ctx.requested_model, auth_.groups()); !allowed) {
    return allowed.error();  // 403 key_/team_/user_/org_model_access_denied
  }
  if (router_.resolve(ctx.requested_model).empty()) {
    auto d = router_.pick(ctx.requested_model, ctx.route);  // the unknown-model error
    if (!d) {
      return d.error();
    }
  }
  return std::nullopt;
}

namespace {

bool body_flag(const json& body, const char* key) {
  auto it = body.find(key);
  return it != body.end() && ((it->is_boolean() && it->get<bool>()) || (it->is_string() && *it == "true"));
}

}  // namespace

// Retries inside fallbacks (reference §3.2, §3.3): the requested group with its retries,
// then, on failure and unless disabled, its fallback groups in order.
net::awaitable<step> llm_pipeline::provider_stage(request_ctx& ctx) {
  ctx.max_retries = router::max_retries(retry_, ctx.body);
  auto err = co_await try_group(ctx, ctx.requested_model, true);
  if (!err || ctx.resp.client_gone()) {
    co_return step::answered;
  }
  if (!body_flag(ctx.body, "disable_fallbacks")) {
    bool from_request = false;
    auto groups = router::request_fallbacks(ctx.body, ctx.requested_model, from_request);
    if (!from_request) {
      auto group = router_.resolve(ctx.requested_model);
      groups = router::fallbacks_for(fallbacks_, group.empty() ? ctx.requested_model : group, router::classify(*err));
    }
    if (!groups.empty()) {
      std::vector<std::string> tried{ctx.requested_model};
      auto listed = groups;
      auto last = co_await run_fallbacks(ctx, std::move(groups), *err, 1, tried, !from_request);
      if (!last || ctx.resp.client_gone()) {
        co_return step::answered;
      }
      err = std::move(last);
      err->message += "\nReceived Model Group=" + ctx.requested_model +
                      "\nAvailable Model Group Fallbacks=" + router::py_list(listed);
    }
  }
  co_await fail(ctx, std::move(*err));
  co_return step::answered;
}

net::awaitable<std::optional<core::error>> llm_pipeline::run_fallbacks(request_ctx& ctx,
                                                                       std::vector<std::string> groups,
                                                                       core::error last, int depth,
                                                                       std::vector<std::string>& tried, bool chain) {
  if (depth > fallbacks_.max_fallbacks) {
    co_return last;
  }
  for (const auto& g : groups) {
    if (std::find(tried.begin(), tried.end(), g) != tried.end()) {
      continue;
    }
    tried.push_back(g);
    ++ctx.attempted_fallbacks;
    spdlog::info("falling back from a failed model group to '{}' (call_id={}): {}", g, ctx.req.call_id, last.message);
    auto e = co_await try_group(ctx, g, false);
    if (!e || ctx.resp.client_gone()) {
      co_return std::nullopt;
    }
    last = std::move(*e);
    if (chain) {
      auto resolved = router_.resolve(g);
      auto next = router::fallbacks_for(fallbacks_, resolved.empty() ? g : resolved, router::classify(last));
      if (!next.empty()) {
        auto r = co_await run_fallbacks(ctx, std::move(next), last, depth + 1, tried, true);
        if (!r) {
          co_return std::nullopt;
        }
        last = std::move(*r);
      }
    }
  }
  co_return last;
}

net::awaitable<std::optional<core::error>> llm_pipeline::try_group(request_ctx& ctx, std::string group,
                                                                   bool primary) {
  ctx.attempted_retries = 0;
  if (primary && body_flag(ctx.body, "mock_testing_fallbacks")) {
    co_return core::upstream_status_error(
        500, "litellm.InternalServerError: This is a mock exception for model=" + group + ", to trigger a fallback.");
  }
  if (primary && body_flag(ctx.body, "mock_testing_rate_limit_error")) {
    co_return core::upstream_status_error(
        429, "litellm.RateLimitError: This is a mock exception for model=" + group + ", to trigger a rate limit error.");
  }
  router::pick_options opts{ctx.estimated_tokens, ctx.stream, {}, !primary};
  for (int retry = 0;; ++retry) {
    auto picked = router_.pick(group, ctx.route, opts);
    if (!picked) {
      co_return picked.error();
    }
    ctx.dep_ref = std::move(*picked);
    ctx.dep = ctx.dep_ref.get();
    const auto dep = ctx.dep_ref;  // this attempt's deployment, whatever later attempts pick
    if (ctx.type != call_type::embedding) {
      if (auto mr = ctx.body.find("mock_response"); mr != ctx.body.end() && mr->is_string()) {
        co_await answer_mock(ctx, mr->get<std::string>());
        co_return std::nullopt;
      }
      if (dep->mock_response) {
        co_await answer_mock(ctx, *dep->mock_response);
        co_return std::nullopt;
      }
    }
    if (!providers::supports(*dep->provider, ctx.type)) {
      co_return core::make_error(core::errc::bad_request,
                                 std::string(dep->provider->name) + " does not support " + ctx.route +
                                     " (model=" + dep->model_name + ")",
                                 "model");
    }
    ctx.attempt_started = clock::now();
    ctx.ttft = {};
    ctx.late_failure.reset();
    std::optional<core::error> err;
    {
      auto busy = router_.track(*dep);
      err = co_await answer_upstream(ctx);
    }
    if (!err) {
      if (ctx.late_failure) {
        router_.on_failure(*dep, group, *ctx.late_failure);  // counts for cooldowns; no retry
      } else {
        router_.on_success(*dep, clock::now() - ctx.attempt_started, ctx.ttft,
                           std::max(ctx.usage.total_tokens, ctx.usage.prompt_tokens + ctx.usage.completion_tokens));
      }
      co_return std::nullopt;
    }
    if (ctx.resp.client_gone()) {
      co_return err;
    }
    opts.avoid.push_back(dep->id);
    if (auto cooled = router_.on_failure(*dep, group, *err)) {
      spdlog::warn("deployment {} of '{}' cooled down for {} ms after: {}", dep->id, group, cooled->count(),
                   err->message);
    }
    const auto cls = router::classify(*err);
    if (retry >= router::retries_for(retry_, ctx.body, cls)) {
      co_return err;
    }
    router::group_health h;
    h.deployments = router_.group_size(group);
    h.healthy = router_.healthy_count(group);
    const bool failed_is_healthy = !router_.cooldown_state().is_cooled(dep->id, clock::now());
    h.other_healthy = h.healthy - (failed_is_healthy && h.healthy > 0 ? 1 : 0);
    bool in_request = false;
    const auto listed = router::request_fallbacks(ctx.body, group, in_request);
    const auto resolved = router_.resolve(group);
    const bool generic =
        !body_flag(ctx.body, "disable_fallbacks") &&
        !(in_request ? listed
                     : router::fallbacks_for(fallbacks_, resolved.empty() ? group : resolved,
                                             router::error_class::rate_limit))
             .empty();
    const bool policy_match = retry_.retry_policy.is_object() &&
                              retry_.retry_policy.contains(std::string(router::class_name(cls)) + "Retries");
    if (!router::should_retry(*err, cls, h, generic, policy_match)) {
      co_return err;
    }
    std::uniform_real_distribution<double> unit(0.0, 1.0);
    const auto wait = router::backoff(retry, h, router::retry_after_seconds(err->retry_after),
                                      retry_.min_retry_after_s, unit(rng_));
    spdlog::info("retrying '{}' in {} ms (retry {} of {}, call_id={}): {}", group, wait.count(), retry + 1,
                 router::retries_for(retry_, ctx.body, cls), ctx.req.call_id, err->message);
    if (wait.count() > 0) {
      net::steady_timer timer(co_await net::this_coro::executor);
      timer.expires_after(wait);
      co_await timer.async_wait(net::as_tuple(net::use_awaitable));
      if (ctx.resp.client_gone()) {
        co_return err;  // nobody to answer any more
      }
    }
    ctx.attempted_retries = retry + 1;
  }
}

std::string llm_pipeline::litellm_headers(const request_ctx& ctx) const {
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
  auto total = clock::now() - ctx.req.received_at;
  put_int("x-litellm-response-duration-ms", ms_of(total));
  put_int("x-litellm-overhead-duration-ms", ms_of(total - ctx.upstream_time));
  return h;
}

net::awaitable<void> llm_pipeline::fail(request_ctx& ctx, core::error e) {
  auto r = http::error_response(e);
  r.head_lines = litellm_headers(ctx);
  co_await ctx.resp.send(std::move(r));
}

net::awaitable<void> llm_pipeline::answer_mock(request_ctx& ctx, const std::string& content) {
  const long long created = static_cast<long long>(std::time(nullptr));
  const std::string& model = ctx.requested_model;
  if (ctx.type == call_type::completion) {
    std::string id = "cmpl-" + core::uuid4();
    auto text = providers::mock_text_completion(model, content, full_body(ctx), id, created);
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
    r.body = providers::mock_chat_completion(model, content, full_body(ctx), id, created);
    r.head_lines = litellm_headers(ctx);
    co_await ctx.resp.send(std::move(r));
    co_return;
  }
  auto frames = providers::mock_chat_stream(model, content, full_body(ctx), id, created, ctx.client_wants_usage);
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

std::chrono::milliseconds llm_pipeline::timeout_of(const config::deployment& d) const {
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

std::chrono::milliseconds llm_pipeline::stream_timeout_of(const config::deployment& d) const {
  if (d.stream_timeout) {
    return seconds_to_ms(*d.stream_timeout);
  }
  if (cfg_->router.stream_timeout) {
    return seconds_to_ms(*cfg_->router.stream_timeout);
  }
  return timeout_of(d);
}

net::awaitable<std::optional<core::error>> llm_pipeline::answer_upstream(request_ctx& ctx) {
  const auto& d = *ctx.dep;
  const auto& adapter = providers::adapter_for(*d.provider);
  bool drop_params = cfg_->litellm.drop_params;
  if (auto dp = ctx.body.find("drop_params"); dp != ctx.body.end() && dp->is_boolean()) {
    drop_params = dp->get<bool>();
  }
  if (d.litellm_params.is_object()) {
    if (auto dp = d.litellm_params.find("drop_params"); dp != d.litellm_params.end() && dp->is_boolean()) {
      drop_params = dp->get<bool>();
    }
  }
  const providers::build_options bo{ctx.stream, drop_params};
  // OpenAI-compatible upstreams get the client's bytes with surgical edits; the others
  // translate the parsed document.
  auto raw = adapter.build_raw(ctx.type, d, ctx.req.body, ctx.scan, bo);
  auto call = raw ? std::move(*raw) : adapter.build(ctx.type, d, full_body(ctx), bo);
  if (!call) {
    co_return call.error();
  }
  upstream::request ur;
  ur.url = std::move(call->url);
  ur.headers = std::move(call->headers);
  ur.body = std::move(call->body);
  ur.body_parts = std::move(call->body_parts);  // views into ctx.req.body and ur.body
  const auto timeout = ctx.stream ? stream_timeout_of(d) : timeout_of(d);
  ur.timeout = timeout;
  ur.connect_timeout = std::min(timeout, std::chrono::milliseconds{10'000});

  auto t0 = clock::now();
  if (!ctx.stream) {
    auto r = co_await client_.send(std::move(ur));
    ctx.upstream_time += clock::now() - t0;
    if (!r) {
      co_return transport_error(r.error(), d, timeout);
    }
    if (r->status >= 400) {
      auto e = adapter.translate_error(d, r->status, r->body);
      e.retry_after = retry_after_of(r->headers);
      co_return e;
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
    ctx.usage = tr->tokens;
    http::response out;
    out.body = std::move(tr->body);
    out.head_lines = litellm_headers(ctx);
    add_provider_headers(out.head_lines, r->headers);
    co_await ctx.resp.send(std::move(out));
    co_return std::nullopt;
  }

  auto opened = co_await client_.open(std::move(ur));
  ctx.upstream_time += clock::now() - t0;
  if (!opened) {
    co_return transport_error(opened.error(), d, timeout);
  }
  auto s = std::move(*opened);
  if (s->status() >= 400) {
    std::string body;
    for (;;) {
      auto piece = co_await s->read_some();
      if (!piece || piece->empty() || body.size() > (1u << 20)) {
        break;
      }
      body += *piece;
    }
    auto e = adapter.translate_error(d, s->status(), body);
    e.retry_after = retry_after_of(s->headers());
    co_return e;
  }
  co_return co_await relay_stream(ctx, std::move(s), timeout);
}

net::awaitable<std::optional<core::error>> llm_pipeline::relay_stream(request_ctx& ctx,
                                                                      std::unique_ptr<upstream::body_stream> s,
                                                                      std::chrono::milliseconds stream_timeout) {
  const auto& d = *ctx.dep;
  auto translator = providers::adapter_for(*d.provider).make_stream(ctx.type, d, ctx.requested_model,
                                                                    ctx.client_wants_usage);
  bool client_left = false;
  auto* raw = s.get();
  // The client's socket is watched (a disconnect cancels the upstream request) only when
  // the relay has to wait for the upstream: a body that came whole with the head (short
  // answers, cached upstreams) costs no watch, and no epoll_ctl before the first byte.
  bool watching = false;
  auto watch = [&] {
    if (!watching) {
      watching = true;
      ctx.resp.watch_disconnect([raw, &client_left] {
        client_left = true;
        raw->cancel();
      });
    }
  };
  std::string initial = s->take_buffered();

  std::vector<std::string> payloads;
  std::string out;
  bool head_sent = false;
  std::optional<core::error> failure;

  auto take_payloads = [&] {  // pending payloads -> SSE frames in `out`
    out.clear();
    for (const auto& p : payloads) {
      out += "data: ";
      out += p;
      out += "\n\n";
    }
    payloads.clear();
  };
  auto send_head = [&]() -> net::awaitable<bool> {
    head_sent = true;
    ctx.ttft = clock::now() - ctx.attempt_started;
    auto h = litellm_headers(ctx);
    h += "cache-control: no-cache\r\nx-accel-buffering: no\r\n";
    add_provider_headers(h, s->headers());
    co_return co_await ctx.resp.begin_stream(200, "text/event-stream", {}, std::move(h));
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

  for (bool first = true;; first = false) {
    core::result<std::string> piece = std::string{};
    if (first && !initial.empty()) {
      piece = std::move(initial);
    } else {
      watch();
      auto t0 = clock::now();
      piece = co_await s->read_some();
      ctx.upstream_time += clock::now() - t0;
    }
    if (client_left) {
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
      // whole answer (~15 us of translation for 20 events, issue 6).
      auto end = providers::first_event_end(d.provider->framing, bytes);
      if (end != 0 && end < bytes.size()) {
        if (auto fed = translator->feed(bytes.substr(0, end), payloads); !fed) {
          failure = fed.error();
          raw->cancel();
          break;
        }
        bytes.remove_prefix(end);
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
  if (client_left || ctx.resp.client_gone()) {
    spdlog::info("client disconnected during a stream; upstream request cancelled (call_id={})", ctx.req.call_id);
    co_return std::nullopt;
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
    out += "data: " + http::error_body(*failure) + "\n\n";
  } else {
    out += "data: [DONE]\n\n";
  }
  co_await ctx.resp.write_last(out);
  co_return std::nullopt;
}

}  // namespace switchyard::pipeline
