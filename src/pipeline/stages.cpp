#include "stages.hpp"

#include "switchyard/pipeline/cache_stage.hpp"

#include "switchyard/core/ids.hpp"

namespace switchyard::pipeline {

using json = nlohmann::json;
using providers::call_type;
using providers::json_kind;

net::awaitable<verdict> stage::run_async(request_ctx&) { co_return verdict::next(); }

// ---------------------------------------------------------------- auth

verdict auth_stage::run(request_ctx& ctx) {
  auto key = auth_.master().key_from([&](std::string_view n) { return ctx.req.header(n); });
  auto who = auth_.authenticate_cached(key);
  if (!who) {
    return verdict::wait();  // a key not in memory: run_async waits for its lookup
  }
  if (!*who) {
    ctx.who.key_redacted = core::redact_key(key);  // for the access line
  }
  return accept(ctx, std::move(*who));
}

net::awaitable<verdict> auth_stage::run_async(request_ctx& ctx) {
  auto key = auth_.master().key_from([&](std::string_view n) { return ctx.req.header(n); });
  auto who = co_await auth_.authenticate(key);
  if (!who) {
    ctx.who.key_redacted = core::redact_key(key);  // for the access line
  }
  co_return accept(ctx, std::move(who));
}

verdict auth_stage::accept(request_ctx& ctx, core::result<auth::principal> who) const {
  if (!who) {
    return verdict::fail(who.error());
  }
  if (auto allowed = auth_.check_route(*who, ctx.req.path); !allowed) {
    return verdict::fail(allowed.error());
  }
  ctx.who = std::move(*who);
  return verdict::next();
}

// ---------------------------------------------------------------- parse

namespace {

// Top-level members the gateway never reads: kept as bytes (see request_ctx::scan).
bool is_bulk_member(std::string_view key) {
  return key == "messages" || key == "prompt" || key == "input" || key == "tools" || key == "functions" ||
         key == "system";
}

// The members read from request_ctx::body (router policy, mocks, build options). A new
// reader of ctx.body must add its member here: the others are not parsed.
bool is_gateway_read_member(std::string_view key) {
  static constexpr std::string_view read[] = {
      "stream_options",    "num_retries",           "fallbacks",
      "disable_fallbacks", "mock_response",         "mock_testing_fallbacks",
      "drop_params",       "encoding_format",       "mock_testing_rate_limit_error",
      "tags",              "metadata",  // tag routing (router::request_tags)
  };
  for (auto r : read) {
    if (key == r) {
      return true;
    }
  }
  return false;
}

core::error invalid_json(const request_ctx& ctx) {
  if (ctx.scan.too_deep) {
    return core::make_error(core::errc::invalid_json, "Invalid request body: JSON nested deeper than " +
                                                          std::to_string(providers::max_json_depth) + " levels");
  }
  return core::make_error(core::errc::invalid_json, "Invalid JSON in request body: " + std::string(ctx.scan.error) +
                                                        " at byte " + std::to_string(ctx.scan.error_offset) + " of " +
                                                        std::to_string(ctx.req.body.size()));
}

// OpenAI's words for a member that must be a boolean.
core::error not_a_boolean(const std::string& param, json_kind got) {
  const char* what = got == json_kind::number   ? "a number"
                     : got == json_kind::string ? "a string"
                     : got == json_kind::array  ? "an array"
                                                : "an object";
  return core::make_error(core::errc::bad_request, "Invalid type for '" + param +
                                                       "': expected a boolean, but got " + what + " instead.",
                          param);
}

// messages (chat, Anthropic messages), prompt (completions) or input (embeddings,
// responses), of the right kind.
std::optional<core::error> check_required(const request_ctx& ctx) {
  if (ctx.type == call_type::responses) {
    const auto* f = ctx.scan.find("input");
    if (f != nullptr && (f->kind == json_kind::string || f->kind == json_kind::array)) {
      return std::nullopt;
    }
    return core::make_error(core::errc::bad_request,
                            "`input` is required and must be a string or an array of input items", "input");
  }
  const bool list = ctx.type == call_type::chat || ctx.type == call_type::messages;
  const char* required = list ? "messages" : ctx.type == call_type::completion ? "prompt" : "input";
  const auto* f = ctx.scan.find(required);
  bool ok = f != nullptr && (list ? f->kind == json_kind::array
                                  : (f->kind == json_kind::string || f->kind == json_kind::array));
  if (ok) {
    return std::nullopt;
  }
  return core::make_error(core::errc::bad_request,
                          std::string("`") + required + "` is required and must be " +
                              (list ? "an array" : "a string or an array"),
                          required);
}

}  // namespace

const nlohmann::json& request_ctx::full_body() {
  if (!full) {
    full = json::parse(req.body, nullptr, false);  // valid: the parse stage checked it
    if (!path_model.empty() && full->is_object()) {
      (*full)["model"] = path_model;
    }
  }
  return *full;
}

const std::string& request_ctx::end_user() const {
  // Kept once it is final: a header, or a body the parse stage scanned. Before the scan
  // (an observer of a request refused earlier) it is looked up again on each call, so a
  // later scan still counts.
  if (!end_user_final_) {
    end_user_.assign(req.header("x-litellm-end-user-id"));
    end_user_final_ = !end_user_.empty() || scan.ok;
    if (end_user_.empty() && scan.ok) {
      if (const auto* m = scan.find("user");
          m != nullptr && m->kind == json_kind::string && m->value.size() >= 2) {
        end_user_ = providers::json_unescape(m->value.substr(1, m->value.size() - 2));
      }
    }
  }
  return end_user_;
}

verdict parse_stage::run(request_ctx& ctx) {
  const std::vector<cache::member_spans>* seen = nullptr;
  if (memo_ != nullptr && ctx.req.body.size() <= memo_->max_body()) {
    ctx.body_hash = memo_->hash(ctx.req.body);
    ctx.body_hashed = true;
    seen = memo_->find_members(ctx.body_hash, ctx.req.body, &ctx.body_memo_version);
  }
  if (seen != nullptr) {
    restore_scan(ctx.scan, *seen, ctx.req.body);
  } else {
    ctx.scan = providers::scan_json(ctx.req.body, providers::max_json_depth);
  }
  if (!ctx.scan.ok) {
    return verdict::fail(invalid_json(ctx));
  }
  if (ctx.scan.root != json_kind::object) {
    return verdict::fail(core::make_error(core::errc::bad_request, "Request body must be a JSON object"));
  }
  // `model` and `stream` are read from the scan; the other members the gateway reads go
  // into ctx.body (a small DOM, usually empty: no allocation); everything else stays bytes.
  std::size_t text_chars = 0;
  const providers::json_member* model = nullptr;
  const providers::json_member* stream = nullptr;
  bool has_user = false;
  for (const auto& m : ctx.scan.members) {
    has_user = has_user || (m.key == "user" && m.kind == json_kind::string);
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
  } else if (model != nullptr && model->kind == json_kind::string && model->value.size() > 2) {
    ctx.requested_model = providers::json_unescape(model->value.substr(1, model->value.size() - 2));
  } else {
    return verdict::fail(core::make_error(core::errc::bad_request, "`model` is required and must be a string", "model"));
  }
  if (ctx.type != call_type::embedding && stream != nullptr && stream->kind != json_kind::null &&
      stream->kind != json_kind::boolean) {
    // OpenAI's 400. Read as "not true", `"stream": "yes"` got a JSON answer the client's
    // SDK did not expect, and went upstream as it was.
    return verdict::fail(not_a_boolean("stream", stream->kind));
  }
  ctx.stream = ctx.type != call_type::embedding && stream != nullptr && stream->kind == json_kind::boolean &&
               stream->value == "true";
  auto so = ctx.body.find("stream_options");
  if (so != ctx.body.end() && !so->is_null() && !so->is_object()) {
    // OpenAI's 400 (it was dropped and replaced without a word).
    const char* what = so->is_number() ? "a number" : so->is_string() ? "a string" : so->is_array() ? "an array" : "a boolean";
    return verdict::fail(core::make_error(core::errc::bad_request,
                                          std::string("Invalid type for 'stream_options': expected an object, but got ") +
                                              what + " instead.",
                                          "stream_options"));
  }
  if (so != ctx.body.end() && so->is_object()) {
    // OpenAI's 400 for a non-boolean (it threw from json::value() here: a 500).
    if (auto iu = so->find("include_usage"); iu != so->end() && !iu->is_null()) {
      if (!iu->is_boolean()) {
        return verdict::fail(not_a_boolean("stream_options.include_usage",
                                           iu->is_number()   ? json_kind::number
                                           : iu->is_string() ? json_kind::string
                                           : iu->is_array()  ? json_kind::array
                                                             : json_kind::object));
      }
      ctx.client_wants_usage = iu->get<bool>();
    }
  }
  if (auto e = check_required(ctx)) {
    return verdict::fail(std::move(*e));
  }
  if (enforce_user_ && !has_user && ctx.type != call_type::messages) {
    // LiteLLM's message (general_settings.enforce_user_param).
    return verdict::fail(core::make_error(core::errc::bad_request,
                                          "BadRequest please pass param=user in request body. This is a required param",
                                          "user"));
  }
  return verdict::next();
}

// ---------------------------------------------------------------- route

verdict route_stage::run(request_ctx& ctx) {
  if (ctx.who.vkey) {
    // The key's aliases, then its team's model_aliases, name the model actually routed.
    auto aliased = auth::apply_model_aliases(*ctx.who.vkey, ctx.requested_model);
    if (aliased != ctx.requested_model) {
      ctx.requested_model = aliased;
    }
  }
  if (auto allowed = auth::check_model_access(ctx.who, ctx.requested_model, auth_.groups()); !allowed) {
    return verdict::fail(allowed.error());  // 403 key_/team_/user_/org_model_access_denied
  }
  if (router_.resolve(ctx.requested_model).empty()) {
    auto d = router_.pick(ctx.requested_model, ctx.route);  // the unknown-model error
    if (!d) {
      return verdict::fail(d.error());
    }
  }
  return verdict::next();
}

// ---------------------------------------------------------------- provider

net::awaitable<verdict> provider_stage::run_async(request_ctx& ctx) {
  auto err = co_await loop_.run(ctx);
  if (!err) {
    co_return verdict::done();
  }
  if (ctx.resp.client_gone()) {
    ctx.out.error = std::move(*err);  // nobody to answer; the outcome still says why
    co_return verdict::done();
  }
  co_return verdict::fail(std::move(*err));
}

}  // namespace switchyard::pipeline
