// Callback events and their wire formats (OTLP/HTTP JSON, Langfuse ingestion, generic_api),
// and the targets built from the config and the environment. The sender is in
// callback_sender.cpp.
#include "switchyard/pipeline/callbacks.hpp"

#include "switchyard/core/ids.hpp"
#include "switchyard/core/utf8.hpp"
#include "switchyard/pipeline/llm_pipeline.hpp"
#include "switchyard/pipeline/request_ctx.hpp"
#include "switchyard/pipeline/spend_observer.hpp"
#include "switchyard/providers/json_scan.hpp"
#include "switchyard/router/policy.hpp"

#include <spdlog/spdlog.h>

#include <array>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <span>

namespace switchyard::pipeline {

using json = nlohmann::json;
using event_ptr = std::shared_ptr<const callback_event>;

namespace {

// steady_clock time points of one request as Unix nanoseconds, from one reading of both clocks.
struct to_unix {
  std::chrono::steady_clock::time_point steady_now = std::chrono::steady_clock::now();
  std::int64_t system_now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count();
  std::int64_t operator()(std::chrono::steady_clock::time_point t) const {
    if (t == std::chrono::steady_clock::time_point{}) {
      return 0;
    }
    return system_now + std::chrono::duration_cast<std::chrono::nanoseconds>(t - steady_now).count();
  }
};

const char* operation_of(const std::string& call_type) {
  if (call_type == "aembedding") {
    return "embeddings";
  }
  if (call_type == "atext_completion") {
    return "text_completion";
  }
  return "chat";
}

json attr(const std::string& key, const std::string& v) { return {{"key", key}, {"value", {{"stringValue", v}}}}; }
json attr_int(const std::string& key, long long v) {
  // OTLP/JSON encodes 64-bit integers as decimal strings (protobuf's JSON mapping).
  return {{"key", key}, {"value", {{"intValue", std::to_string(v)}}}};
}
json attr_double(const std::string& key, double v) { return {{"key", key}, {"value", {{"doubleValue", v}}}}; }
json attr_bool(const std::string& key, bool v) { return {{"key", key}, {"value", {{"boolValue", v}}}}; }

// Whether the request's input is logged (message logging on).
bool has_input(const callback_event& e) { return !e.input_raw.empty() || e.request_body; }

// The request's input as the callbacks show it: messages (chat), prompt, or input.
json input_of(std::string_view input_raw, const std::optional<std::string_view>& request_body) {
  if (!input_raw.empty()) {
    return json::parse(input_raw, nullptr, false);  // valid: checked by the request's scan
  }
  if (!request_body) {
    return nullptr;
  }
  auto j = json::parse(*request_body, nullptr, false);
  if (j.is_object()) {
    for (const char* k : {"messages", "prompt", "input"}) {
      if (auto it = j.find(k); it != j.end()) {
        return *it;
      }
    }
    return j;
  }
  return std::string(*request_body);  // cut short or not JSON: the text itself
}

json input_of(const callback_event& e) {
  return input_of(e.input_raw, e.request_body ? std::optional<std::string_view>(*e.request_body) : std::nullopt);
}

// The answer: the first choice's message (chat JSON), else the text kept (streams).
json output_of(const callback_event& e) {
  if (!e.response) {
    return nullptr;
  }
  auto j = json::parse(*e.response, nullptr, false);
  if (j.is_object()) {
    if (auto ch = j.find("choices"); ch != j.end() && ch->is_array() && !ch->empty() && (*ch)[0].is_object()) {
      const auto& c0 = (*ch)[0];
      if (auto m = c0.find("message"); m != c0.end()) {
        return *m;
      }
      if (auto t = c0.find("text"); t != c0.end()) {
        return *t;
      }
    }
    return j;
  }
  return *e.response;
}

json caller_metadata(const callback_event& e) {
  json m = json::object();
  if (!e.key_hash.empty()) {
    m["user_api_key_hash"] = e.key_hash;
  }
  if (!e.key_alias.empty()) {
    m["user_api_key_alias"] = e.key_alias;
  }
  if (!e.team_id.empty()) {
    m["user_api_key_team_id"] = e.team_id;
  }
  if (!e.team_alias.empty()) {
    m["user_api_key_team_alias"] = e.team_alias;
  }
  if (!e.user_id.empty()) {
    m["user_api_key_user_id"] = e.user_id;
  }
  if (!e.end_user.empty()) {
    m["user_api_key_end_user_id"] = e.end_user;
  }
  return m;
}

std::string nanos(std::int64_t ns) { return std::to_string(ns); }

std::string base64(std::string_view in) {
  static constexpr char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const unsigned v = (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8) |
                       static_cast<unsigned char>(in[i + 2]);
    out += tbl[(v >> 18) & 63];
    out += tbl[(v >> 12) & 63];
    out += tbl[(v >> 6) & 63];
    out += tbl[v & 63];
  }
  if (i + 1 == in.size()) {
    const unsigned v = static_cast<unsigned char>(in[i]) << 16;
    out += tbl[(v >> 18) & 63];
    out += tbl[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    const unsigned v = (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8);
    out += tbl[(v >> 18) & 63];
    out += tbl[(v >> 12) & 63];
    out += tbl[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

std::string trim(std::string s) {
  const auto b = s.find_first_not_of(" \t");
  const auto e = s.find_last_not_of(" \t");
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

std::string percent_decode(const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out += static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

// "k=v,k2=v2" (OTEL_EXPORTER_OTLP_HEADERS, GENERIC_LOGGER_HEADERS); values percent-decoded
// as the OpenTelemetry spec says. Malformed pairs are skipped.
upstream::header_list parse_header_pairs(const std::string& s) {
  upstream::header_list out;
  std::size_t pos = 0;
  while (pos <= s.size()) {
    auto comma = s.find(',', pos);
    if (comma == std::string::npos) {
      comma = s.size();
    }
    const std::string pair = s.substr(pos, comma - pos);
    if (auto eq = pair.find('='); eq != std::string::npos) {
      auto k = trim(pair.substr(0, eq));
      auto v = trim(percent_decode(pair.substr(eq + 1)));
      if (!k.empty() && k.find_first_of("\r\n") == std::string::npos && v.find_first_of("\r\n") == std::string::npos) {
        out.emplace_back(std::move(k), std::move(v));
      }
    }
    pos = comma + 1;
  }
  return out;
}

std::string strip_slash(std::string s) {
  while (!s.empty() && s.back() == '/') {
    s.pop_back();
  }
  return s;
}

bool http_url(const std::string& u) { return u.rfind("http://", 0) == 0 || u.rfind("https://", 0) == 0; }

}  // namespace

namespace {

// The request members reported as model parameters, in name order (the order of a JSON
// object's members as nlohmann writes them, which the payloads have always had).
constexpr std::string_view model_parameter_names[] = {
    "frequency_penalty", "max_completion_tokens", "max_tokens", "n", "presence_penalty",
    "seed",              "stop",                  "temperature", "top_p"};
constexpr std::size_t model_parameter_count = std::size(model_parameter_names);

// A body member the callbacks read: its index in model_parameter_names, or one of these
// past them (the request's input, in order of preference), or -1. By length first: one
// comparison for most keys.
constexpr int input_messages = model_parameter_count, input_prompt = input_messages + 1,
              input_input = input_messages + 2, read_member_count = input_messages + 3;
int read_member(std::string_view k) {
  std::string_view name;
  int at = -1;
  switch (k.size()) {
    case 1: name = "n", at = 3; break;
    case 4: k[1] == 'e' ? (name = "seed", at = 5) : (name = "stop", at = 6); break;
    case 5: k[0] == 't' ? (name = "top_p", at = 8) : (name = "input", at = input_input); break;
    case 6: name = "prompt", at = input_prompt; break;
    case 8: name = "messages", at = input_messages; break;
    case 10: name = "max_tokens", at = 2; break;
    case 11: name = "temperature", at = 7; break;
    case 16: name = "presence_penalty", at = 4; break;
    case 17: name = "frequency_penalty", at = 0; break;
    case 21: name = "max_completion_tokens", at = 1; break;
    default: return -1;
  }
  return k == name ? at : -1;
}

}  // namespace

json model_parameters_json(const callback_event& e) {
  json out = json::object();
  for (const auto& [k, v] : e.model_parameters) {
    auto j = json::parse(v, nullptr, false);
    if (!j.is_discarded()) {
      out[std::string(k)] = std::move(j);
    }
  }
  return out;
}

std::string iso_time(std::int64_t unix_ns) {
  const std::time_t secs = static_cast<std::time_t>(unix_ns / 1'000'000'000);
  const long ms = static_cast<long>((unix_ns / 1'000'000) % 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char out[48];
  std::snprintf(out, sizeof out, "%s.%03ldZ", buf, ms);
  return out;
}

namespace {

// `ns`: one reading of both clocks for every time of the request (its spans included).
callback_fields fields_with(const request_ctx& ctx, spend::pricer& prices, const event_options& o, const to_unix& ns) {
  const auto& out = ctx.out;
  callback_fields f;
  f.call_id = ctx.req.call_id;
  f.call_type = names_of(ctx.type).spend_name;
  f.requested_model = ctx.requested_model;
  f.stream = ctx.stream;
  f.status = out.status;
  f.success = out.status > 0 && out.status < 400 && !out.error;
  f.cache_hit = out.cache_hit;
  if (out.error) {
    f.error_class = router::class_name(router::classify(*out.error));
    f.error_message = out.error->message;
  }
  if (!o.redact_caller) {
    if (const auto& k = ctx.who.vkey) {
      f.key_hash = k->token;
      f.key_alias = k->key_alias;
      f.team_id = k->team_id;
      f.team_alias = k->team_alias;
      f.user_id = k->user_id;
    } else if (ctx.who.is_master) {
      f.key_hash = o.master_key_hash;
    }
    f.end_user = ctx.end_user();
  }
  if (const auto* fa = out.final_attempt(); fa != nullptr && fa->dep) {
    const auto& d = *fa->dep;
    f.model = d.upstream_model;
    f.model_group = d.model_name;
    f.model_id = d.id;
    f.provider = d.provider->name;
    f.api_base = d.api_base.empty() ? std::string_view(d.provider->default_api_base) : std::string_view(d.api_base);
    const auto bill = billed_of(ctx, prices);
    f.prompt_tokens = bill.t.prompt;
    f.completion_tokens = bill.t.completion;
    f.cost = bill.spend;
    f.first_token_ns = ns(fa->first_token);
  }
  f.start_ns = ns(out.received);
  f.end_ns = ns(out.done != time_point{} ? out.done : std::chrono::steady_clock::now());
  if (f.start_ns == 0) {
    f.start_ns = f.end_ns;
  }
  f.trace_id = out.trace.trace_id;
  // The members read below, in one pass over the body's (the last of a repeated key, as
  // json_scan::find gives it).
  std::array<const providers::json_member*, read_member_count> read{};
  if (ctx.scan.ok) {
    for (const auto& m : ctx.scan.members) {
      if (const int at = read_member(m.key); at >= 0) {
        read[static_cast<std::size_t>(at)] = &m;
      }
    }
    // Kept as received (the scan validated them); parsed only by the encoders that need a DOM.
    for (std::size_t i = 0; i < model_parameter_count; ++i) {
      if (read[i] != nullptr) {
        f.params[f.param_count++] = {model_parameter_names[i], read[i]->value};
      }
    }
  }
  if (o.log_content) {
    for (int at : {input_messages, input_prompt, input_input}) {
      if (const auto* m = read[static_cast<std::size_t>(at)]; m != nullptr) {
        if (m->value.size() <= o.max_content_bytes) {
          f.input_raw = m->value;
        }
        break;
      }
    }
    if (f.input_raw.empty()) {
      f.request_body = std::string_view(ctx.req.body).substr(0, std::min(ctx.req.body.size(), o.max_content_bytes));
    }
    if (!ctx.kept_response.empty()) {
      f.response =
          std::string_view(ctx.kept_response).substr(0, std::min(ctx.kept_response.size(), o.max_content_bytes));
      f.response_is_json = ctx.kept_json && f.response->size() == ctx.kept_response.size();
    }
  }
  return f;
}

}  // namespace

callback_fields fields_of(const request_ctx& ctx, spend::pricer& prices, const event_options& o) {
  return fields_with(ctx, prices, o, to_unix{});
}

namespace {

// The members a callback_event and callback_fields share, from one to the other (text is
// viewed one way, copied the other).
template <class To, class From>
void copy_shared(To& to, const From& from) {
  to.call_id = from.call_id;
  to.call_type = from.call_type;
  to.requested_model = from.requested_model;
  to.model = from.model;
  to.model_group = from.model_group;
  to.model_id = from.model_id;
  to.provider = from.provider;
  to.api_base = from.api_base;
  to.stream = from.stream;
  to.success = from.success;
  to.cache_hit = from.cache_hit;
  to.response_is_json = from.response_is_json;
  to.status = from.status;
  to.error_class = from.error_class;
  to.error_message = from.error_message;
  to.key_hash = from.key_hash;
  to.key_alias = from.key_alias;
  to.team_id = from.team_id;
  to.team_alias = from.team_alias;
  to.user_id = from.user_id;
  to.end_user = from.end_user;
  to.prompt_tokens = from.prompt_tokens;
  to.completion_tokens = from.completion_tokens;
  to.cost = from.cost;
  to.start_ns = from.start_ns;
  to.end_ns = from.end_ns;
  to.first_token_ns = from.first_token_ns;
  to.trace_id = from.trace_id;
  to.input_raw = from.input_raw;
}

}  // namespace

callback_fields fields_of(const callback_event& e) {
  callback_fields f;
  copy_shared(f, e);
  for (const auto& [k, v] : e.model_parameters) {
    if (f.param_count < f.params.size()) {
      f.params[f.param_count++] = {k, v};
    }
  }
  if (e.request_body) {
    f.request_body = *e.request_body;
  }
  if (e.response) {
    f.response = *e.response;
  }
  return f;
}

callback_event event_of(const request_ctx& ctx, spend::pricer& prices, const event_options& o) {
  const to_unix ns;
  const auto f = fields_with(ctx, prices, o, ns);
  callback_event e;
  copy_shared(e, f);
  e.route = ctx.route;
  e.parent_span_id = ctx.out.trace.parent_span_id;
  e.span_id = ctx.out.trace.span_id;
  for (std::size_t i = 0; i < f.param_count; ++i) {
    e.model_parameters.emplace_back(f.params[i].first, std::string(f.params[i].second));
  }
  if (f.request_body) {
    e.request_body = std::string(*f.request_body);
  }
  if (f.response) {
    e.response = std::string(*f.response);
  }
  // Spans (otel only).
  const auto& out = ctx.out;
  for (const auto& s : out.stages) {
    e.stages.push_back({s.name, ns(s.start), ns(s.end)});
  }
  // The attempts' spans are only read by the trace exporter (otel), which skips a request
  // without a trace id.
  if (!e.trace_id.empty()) {
    for (const auto& a : out.attempts) {
      callback_event::attempt_span s;
      s.span_id = a.span_id;
      if (a.dep) {
        s.model = a.dep->upstream_model;
        s.model_id = a.dep->id;
        s.model_group = a.group;
        s.provider = std::string(a.dep->provider->name);
        s.api_base = a.dep->api_base.empty() ? std::string(a.dep->provider->default_api_base) : a.dep->api_base;
      }
      s.start_ns = ns(a.start);
      s.end_ns = ns(a.end != time_point{} ? a.end : out.done);
      s.status = a.status;
      s.retry = a.retry;
      s.fallback = a.fallback;
      s.mock = a.mock;
      s.prompt_tokens = a.usage.prompt_tokens;
      s.completion_tokens = a.usage.completion_tokens;
      if (a.error) {
        s.error = a.error->message;
      }
      e.attempts.push_back(std::move(s));
    }
  }
  return e;
}

json otlp_traces_json(const std::vector<event_ptr>& batch, const std::string& service_name) {
  json spans = json::array();
  for (const auto& ep : batch) {
    const auto& e = *ep;
    if (e.trace_id.size() != 32 || e.span_id.size() != 16) {
      continue;  // tracing was off for this request (cannot happen while otel runs)
    }
    const std::string op = operation_of(e.call_type);
    json root = {
        {"traceId", e.trace_id},
        {"spanId", e.span_id},
        {"name", op + " " + e.requested_model},
        {"kind", 2},  // SPAN_KIND_SERVER
        {"startTimeUnixNano", nanos(e.start_ns)},
        {"endTimeUnixNano", nanos(std::max(e.end_ns, e.start_ns))},
    };
    if (!e.parent_span_id.empty()) {
      root["parentSpanId"] = e.parent_span_id;
    }
    json a = json::array({attr("gen_ai.operation.name", op), attr("gen_ai.request.model", e.requested_model),
                          attr_int("http.response.status_code", e.status), attr("litellm.call_id", e.call_id),
                          attr("url.path", e.route), attr_bool("gen_ai.request.stream", e.stream),
                          attr_bool("litellm.cache_hit", e.cache_hit)});
    if (!e.provider.empty()) {
      a.push_back(attr("gen_ai.system", e.provider));
      a.push_back(attr("gen_ai.response.model", e.model));
      a.push_back(attr("litellm.model_group", e.model_group));
      a.push_back(attr("litellm.model_id", e.model_id));
      a.push_back(attr_int("gen_ai.usage.input_tokens", e.prompt_tokens));
      a.push_back(attr_int("gen_ai.usage.output_tokens", e.completion_tokens));
      a.push_back(attr_double("gen_ai.usage.cost", e.cost));
    }
    const json params = model_parameters_json(e);
    for (const char* k : {"temperature", "max_tokens", "top_p"}) {
      if (auto it = params.find(k); it != params.end() && it->is_number()) {
        // The GenAI semantic conventions type max_tokens as an int, the others as doubles.
        if (std::string_view(k) == "max_tokens" && it->is_number_integer()) {
          a.push_back(attr_int(std::string("gen_ai.request.") + k, it->get<long long>()));
        } else {
          a.push_back(attr_double(std::string("gen_ai.request.") + k, it->get<double>()));
        }
      }
    }
    const json caller = caller_metadata(e);  // named: items() does not extend a temporary's life
    for (const auto& [k, v] : caller.items()) {
      a.push_back(attr("metadata." + k, v.get<std::string>()));
    }
    if (!e.input_raw.empty()) {
      a.push_back(attr("gen_ai.prompt", e.input_raw));  // JSON text as received: no parse
    } else if (e.request_body) {
      a.push_back(attr("gen_ai.prompt", input_of(e).dump(-1, ' ', false, json::error_handler_t::replace)));
    }
    if (e.response) {
      a.push_back(attr("gen_ai.completion", *e.response));  // the answer as sent (JSON body or stream text)
    }
    if (!e.success) {
      a.push_back(attr("error.type", e.error_class.empty() ? std::to_string(e.status) : e.error_class));
      root["status"] = {{"code", 2}, {"message", e.error_message}};  // STATUS_CODE_ERROR
    } else {
      root["status"] = {{"code", 1}};  // STATUS_CODE_OK
    }
    root["attributes"] = std::move(a);
    spans.push_back(std::move(root));
    for (const auto& s : e.stages) {
      spans.push_back({{"traceId", e.trace_id},
                       {"spanId", new_span_id()},
                       {"parentSpanId", e.span_id},
                       {"name", s.name},
                       {"kind", 1},  // SPAN_KIND_INTERNAL
                       {"startTimeUnixNano", nanos(s.start_ns)},
                       {"endTimeUnixNano", nanos(std::max(s.end_ns, s.start_ns))},
                       {"attributes", json::array({attr("switchyard.stage", s.name)})},
                       {"status", {{"code", 0}}}});
    }
    for (const auto& at : e.attempts) {
      if (at.span_id.size() != 16) {
        continue;
      }
      json aa = json::array({attr("gen_ai.operation.name", op), attr("gen_ai.system", at.provider),
                             attr("gen_ai.request.model", at.model), attr("litellm.model_id", at.model_id),
                             attr("litellm.model_group", at.model_group), attr("server.address", at.api_base),
                             attr_int("http.response.status_code", at.status), attr_int("litellm.retry", at.retry),
                             attr_int("litellm.fallback", at.fallback), attr_bool("litellm.mock", at.mock),
                             attr_int("gen_ai.usage.input_tokens", at.prompt_tokens),
                             attr_int("gen_ai.usage.output_tokens", at.completion_tokens)});
      json st = {{"code", 1}};
      if (!at.error.empty()) {
        aa.push_back(attr("error.type", std::to_string(at.status)));
        st = {{"code", 2}, {"message", at.error}};
      }
      spans.push_back({{"traceId", e.trace_id},
                       {"spanId", at.span_id},
                       {"parentSpanId", e.span_id},
                       {"name", op + " " + at.model},
                       {"kind", 3},  // SPAN_KIND_CLIENT
                       {"startTimeUnixNano", nanos(at.start_ns)},
                       {"endTimeUnixNano", nanos(std::max(at.end_ns, at.start_ns))},
                       {"attributes", std::move(aa)},
                       {"status", std::move(st)}});
    }
  }
  return {{"resourceSpans",
           json::array({{{"resource", {{"attributes", json::array({attr("service.name", service_name),
                                                                   attr("telemetry.sdk.name", "switchyard")})}}},
                         {"scopeSpans", json::array({{{"scope", {{"name", "switchyard"}, {"version", SWITCHYARD_VERSION}}},
                                                      {"spans", std::move(spans)}}})}}})}};
}

json langfuse_batch_json(const std::vector<event_ptr>& batch, const std::string& now_iso) {
  json items = json::array();
  for (const auto& ep : batch) {
    const auto& e = *ep;
    const std::string trace_id = e.trace_id.empty() ? e.call_id : e.trace_id;
    const std::string name = "litellm-" + e.call_type;
    json meta = caller_metadata(e);
    meta["model_group"] = e.model_group;
    meta["model_id"] = e.model_id;
    meta["api_base"] = e.api_base;
    meta["cache_hit"] = e.cache_hit;
    meta["status_code"] = e.status;
    json trace = {{"id", trace_id}, {"timestamp", iso_time(e.start_ns)}, {"name", name}, {"metadata", meta},
                  {"tags", json::array()}};
    const std::string& user = !e.end_user.empty() ? e.end_user : e.user_id;
    if (!user.empty()) {
      trace["userId"] = user;
    }
    if (has_input(e)) {
      trace["input"] = input_of(e);
    }
    if (e.response) {
      trace["output"] = output_of(e);
    }
    items.push_back({{"id", core::uuid4()}, {"timestamp", now_iso}, {"type", "trace-create"}, {"body", std::move(trace)}});

    json gen = {{"id", e.call_id},
                {"traceId", trace_id},
                {"name", name},
                {"startTime", iso_time(e.start_ns)},
                {"endTime", iso_time(std::max(e.end_ns, e.start_ns))},
                {"model", e.model.empty() ? e.requested_model : e.model},
                {"modelParameters", model_parameters_json(e)},
                {"usage",
                 {{"input", e.prompt_tokens},
                  {"output", e.completion_tokens},
                  {"total", e.prompt_tokens + e.completion_tokens},
                  {"unit", "TOKENS"}}},
                {"usageDetails",
                 {{"input", e.prompt_tokens},
                  {"output", e.completion_tokens},
                  {"total", e.prompt_tokens + e.completion_tokens}}},
                {"costDetails", {{"total", e.cost}}},
                {"level", e.success ? "DEFAULT" : "ERROR"},
                {"metadata", std::move(meta)}};
    if (e.first_token_ns != 0) {
      gen["completionStartTime"] = iso_time(e.first_token_ns);
    }
    if (!e.success) {
      gen["statusMessage"] = e.error_message;
    }
    if (has_input(e)) {
      gen["input"] = input_of(e);
    }
    if (e.response) {
      gen["output"] = output_of(e);
    }
    items.push_back(
        {{"id", core::uuid4()}, {"timestamp", now_iso}, {"type", "generation-create"}, {"body", std::move(gen)}});
  }
  return {{"batch", std::move(items)}};
}

namespace {

// The generic_api payload is written straight as text, with no DOM: the same bytes as
// nlohmann's dump of the object would give (members in name order, its string escapes,
// its number spellings), so the receiver sees what it always has, but for the times,
// written exactly from their nanoseconds (text_cursor::unix_seconds).

using core::plain_ascii;

// Copies the bytes at the start of `v` that a JSON string holds as they are (plain_ascii)
// to `to`, and says how many: core::plain_prefix's scan, with each 16-byte block stored
// before it is checked, so the copy costs no second pass (a block with a special byte
// stops at it; what was stored past it is written over). `to` has room for v.size().
[[gnu::always_inline]] inline std::size_t copy_plain_prefix(char* to, std::string_view v) {
  const char* p = v.data();
  const std::size_t n = v.size();
#if defined(__SSE2__)
  if (n >= 16) {
    std::size_t i = 0;
    for (; i + 16 <= n; i += 16) {
      const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(to + i), x);
      if (const unsigned m = core::special_bytes(x); m != 0) {
        return i + static_cast<std::size_t>(__builtin_ctz(m));
      }
    }
    if (i == n) {
      return n;
    }
    const std::size_t last = n - 16;
    const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + last));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(to + last), x);
    const unsigned m = core::special_bytes(x) >> (i - last);  // the bytes already checked left out
    return m == 0 ? n : i + static_cast<std::size_t>(__builtin_ctz(m));
  }
#endif
  if (n >= 8 && n < 16) {  // two overlapping words, stored as they are checked
    std::uint64_t head = 0, tail = 0;
    std::memcpy(&head, p, 8);
    std::memcpy(&tail, p + n - 8, 8);
    std::memcpy(to, &head, 8);
    std::memcpy(to + n - 8, &tail, 8);
    if (!core::special_in_word(head) && !core::special_in_word(tail)) {
      return n;
    }
  } else if (n >= 4 && n < 8) {
    std::uint32_t a = 0, b = 0;
    std::memcpy(&a, p, 4);
    std::memcpy(&b, p + n - 4, 4);
    std::memcpy(to, &a, 4);
    std::memcpy(to + n - 4, &b, 4);
    if (!core::special_in_word(a | (static_cast<std::uint64_t>(b) << 32))) {
      return n;
    }
  }
  const std::size_t plain = core::plain_prefix(v);
  if (plain != 0) {  // an empty view may have no data pointer at all (memcpy's null)
    std::memcpy(to, p, plain);
  }
  return plain;
}

// "00" to "99", for writing numbers two digits at a time.
constexpr char pairs[] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

// Writes JSON text at a position with room enough (the caller sized the buffer for the
// worst case: at most 6 bytes per byte of a string, 64 per number).
class text_cursor {
 public:
  explicit text_cursor(char* at) : p_(at) {}
  char* end() const { return p_; }

  template <std::size_t N>
  void lit(const char (&s)[N]) {  // a literal, without its terminating zero
    std::memcpy(p_, s, N - 1);
    p_ += N - 1;
  }
  void raw(std::string_view v) {
    if (!v.empty()) {  // an empty view may have no data pointer at all (memcpy's null)
      std::memcpy(p_, v.data(), v.size());
      p_ += v.size();
    }
  }
  void boolean(bool v) {
    if (v) {
      lit("true");
    } else {
      lit("false");
    }
  }
  void integer(long long v) {
    if (v >= 0 && v < 1000) {  // token counts and status codes, mostly
      if (v < 10) {
        *p_++ = static_cast<char>('0' + v);
      } else if (v < 100) {
        std::memcpy(p_, pairs + 2 * v, 2);
        p_ += 2;
      } else {
        *p_ = static_cast<char>('0' + v / 100);
        std::memcpy(p_ + 1, pairs + 2 * (v % 100), 2);
        p_ += 3;
      }
      return;
    }
    p_ = std::to_chars(p_, p_ + 24, v).ptr;
  }
  // As nlohmann writes a double: its shortest spelling that reads back the same, "1.0"
  // for 1, null for NaN and infinities.
  void number(double v) {
    if (!std::isfinite(v)) {
      lit("null");
      return;
    }
    p_ = nlohmann::detail::to_chars(p_, p_ + 64, v);
  }
  // Unix nanoseconds as seconds, exactly: "1700000000.001234567" without its trailing
  // zeros ("1700000000.5", "1700000000.0"). A double holds a time of today to about a
  // quarter of a microsecond, so a reader gets the double nearest the true time; the
  // shortest spelling of the double (number) would cost a float-to-text conversion per time.
  void unix_seconds(std::int64_t ns) {
    if (ns < 0) {
      number(static_cast<double>(ns) * 1e-9);
      return;
    }
    // The seconds are mostly those of the time before (a request's times are close).
    if (const std::int64_t sec = ns / 1'000'000'000; sec == last_sec_ && last_sec_len_ != 0) {
      std::memcpy(p_, last_sec_text_, sizeof last_sec_text_);
      p_ += last_sec_len_;
    } else {
      char* const from = p_;
      p_ = std::to_chars(p_, p_ + 24, sec).ptr;
      last_sec_ = sec;
      last_sec_len_ = std::min<std::size_t>(static_cast<std::size_t>(p_ - from), sizeof last_sec_text_);
      std::memcpy(last_sec_text_, from, sizeof last_sec_text_);  // room: 64 per number
      if (static_cast<std::size_t>(p_ - from) > sizeof last_sec_text_) {
        last_sec_len_ = 0;  // too long to keep (not a time of this era)
      }
    }
    *p_++ = '.';
    auto frac = static_cast<std::uint32_t>(ns % 1'000'000'000);
    if (frac == 0) {
      *p_++ = '0';
      return;
    }
    // Nine digits, two at a time.
    char digits[9];
    for (int k = 7; k >= 1; k -= 2) {
      std::memcpy(digits + k, pairs + 2 * (frac % 100), 2);
      frac /= 100;
    }
    digits[0] = static_cast<char>('0' + frac);
    std::size_t len = 9;
    while (digits[len - 1] == '0') {
      --len;
    }
    std::memcpy(p_, digits, 9);  // room for all nine; the zeros past len are written over
    p_ += len;
  }
  // A JSON string with nlohmann's escapes. The usual case (nothing to escape) is inlined
  // where it is written; the rest is a call.
  [[gnu::always_inline]] void str(std::string_view v) {
    *p_++ = '"';
    const std::size_t i = copy_plain_prefix(p_, v);
    if (i == v.size()) [[likely]] {
      p_ += i;
      *p_++ = '"';
      return;
    }
    str_escaped(v, i);
  }

 private:
  std::int64_t last_sec_ = -1;
  std::size_t last_sec_len_ = 0;
  char last_sec_text_[16]{};

  // str's string from its byte `i` on (the bytes before are written at p_, plain).
  [[gnu::noinline]] void str_escaped(std::string_view v, std::size_t i) {
    const auto* in = reinterpret_cast<const unsigned char*>(v.data());
    p_ += i;
    for (std::size_t j = i; j < v.size(); ++j) {
      if (in[j] >= 0x80) {
        // Other than ASCII: nlohmann's serializer checks the UTF-8 and replaces what is
        // invalid (U+FFFD, 3 bytes for a byte at most).
        p_ -= i + 1;
        raw(json(std::string(v)).dump(-1, ' ', false, json::error_handler_t::replace));
        return;
      }
    }
    for (; i < v.size(); ++i) {
      const unsigned char c = in[i];
      if (plain_ascii[c]) {
        *p_++ = static_cast<char>(c);
        continue;
      }
      switch (c) {
        case '"': lit("\\\""); break;
        case '\\': lit("\\\\"); break;
        case '\b': lit("\\b"); break;
        case '\f': lit("\\f"); break;
        case '\n': lit("\\n"); break;
        case '\r': lit("\\r"); break;
        case '\t': lit("\\t"); break;
        default: {
          static constexpr char hex[] = "0123456789abcdef";
          lit("\\u00");
          *p_++ = hex[c >> 4];
          *p_++ = hex[c & 15];
        }
      }
    }
    *p_++ = '"';
  }

  char* p_;
};

// Room for a string written by text_cursor::str.
std::size_t str_room(std::string_view v) { return 6 * v.size() + 2; }

// A scanned scalar spelled as nlohmann writes it after a parse (an integer without
// leading zeros or exponent, true, false, null): copied as is. Anything else (a
// fraction, an exponent, an array, a string) is parsed and written again.
bool canonical_scalar(std::string_view v) {
  if (v == "true" || v == "false" || v == "null") {
    return true;
  }
  std::size_t i = v.size() > 1 && v[0] == '-' ? 1 : 0;
  if (i == v.size() || v.size() - i > 18 || (v[i] == '0' && v.size() - i > 1) || (i == 1 && v == "-0")) {
    return false;
  }
  for (; i < v.size(); ++i) {
    if (v[i] < '0' || v[i] > '9') {
      return false;
    }
  }
  return true;
}

// One generic_api object (LiteLLM's StandardLoggingPayload fields we fill), appended to
// `out`: its members in name order, then the request's input and the answer, spliced in.
void write_generic_payload(std::string& out, const callback_fields& e) {
  // What is not copied as is, made first so that its size is known: model parameters not
  // spelled as nlohmann writes them (parsed and written again), the input of a body that
  // could not be scanned.
  std::vector<std::pair<std::string_view, std::string>> params_again;
  const auto params = std::span(e.params.data(), e.param_count);
  for (const auto& [k, v] : params) {
    if (!canonical_scalar(v)) {
      auto j = json::parse(v, nullptr, false);
      params_again.emplace_back(k, j.is_discarded() ? std::string() : j.dump(-1, ' ', false, json::error_handler_t::replace));
    }
  }
  std::string input_again;
  if (e.input_raw.empty() && e.request_body) {
    input_again = input_of(e.input_raw, e.request_body).dump(-1, ' ', false, json::error_handler_t::replace);
  }
  const bool response_raw = e.response && (e.response_is_json || providers::json_valid(*e.response));
  const std::string_view model = e.model.empty() ? e.requested_model : e.model;
  const std::string_view trace_id = e.trace_id.empty() ? e.call_id : e.trace_id;

  // Room for the worst case: member names, punctuation and numbers, then each string.
  std::size_t room = 1024;
  for (std::string_view x : {e.api_base, e.call_type, e.provider, std::string_view(e.end_user), e.error_class,
                             e.error_message, e.call_id, e.key_alias, e.key_hash, e.team_alias, e.team_id, e.user_id,
                             e.model_group, e.model_id, e.requested_model}) {
    room += str_room(x);
  }
  room += str_room(e.end_user) + str_room(model) + str_room(trace_id);  // metadata's end user, model, trace_id
  for (const auto& [k, v] : params) {
    room += str_room(k) + 1 + v.size();
  }
  for (const auto& [k, v] : params_again) {
    room += v.size();
  }
  room += e.input_raw.size() + input_again.size();
  if (e.response) {
    room += response_raw ? e.response->size() : str_room(*e.response);
  }
  // Written in a buffer kept for the next payloads (grown, never cleared), then appended:
  // writing at the end of `out` would need it resized, which zero-fills the room each time.
  thread_local std::string scratch;
  if (scratch.size() < room) {
    scratch.resize(std::max(room, 2 * scratch.size()));
  }
  text_cursor w(scratch.data());

  w.lit("{\"api_base\":");
  w.str(e.api_base);
  w.lit(",\"cache_hit\":");
  w.boolean(e.cache_hit);
  w.lit(",\"call_type\":");
  w.str(e.call_type);
  w.lit(",\"completionStartTime\":");
  char* const completion_start = w.end();
  w.unix_seconds(e.first_token_ns != 0 ? e.first_token_ns : e.end_ns);
  const std::string_view completion_start_text(completion_start, static_cast<std::size_t>(w.end() - completion_start));
  w.lit(",\"completion_tokens\":");
  w.integer(e.completion_tokens);
  w.lit(",\"custom_llm_provider\":");
  w.str(e.provider);
  w.lit(",\"endTime\":");
  if (e.first_token_ns == 0) {
    w.raw(completion_start_text);  // no first token (not streamed): the same time
  } else {
    w.unix_seconds(e.end_ns);
  }
  w.lit(",\"end_user\":");
  w.str(e.end_user);
  if (!e.success) {
    w.lit(",\"error_information\":{\"error_class\":");
    w.str(e.error_class);
    w.lit(",\"error_code\":\"");
    w.integer(e.status);
    w.lit("\"},\"error_str\":");
    w.str(e.error_message);
  }
  w.lit(",\"id\":");
  w.str(e.call_id);
  // The caller (members in name order; empty ones left out).
  w.lit(",\"metadata\":{");
  bool first = true;
  const std::pair<std::string_view, std::string_view> caller[] = {
      {"\"user_api_key_alias\":", e.key_alias},  {"\"user_api_key_end_user_id\":", e.end_user},
      {"\"user_api_key_hash\":", e.key_hash},    {"\"user_api_key_team_alias\":", e.team_alias},
      {"\"user_api_key_team_id\":", e.team_id}, {"\"user_api_key_user_id\":", e.user_id}};
  for (const auto& [k, v] : caller) {
    if (!v.empty()) {
      if (!first) {
        w.lit(",");
      }
      first = false;
      w.raw(k);
      w.str(v);
    }
  }
  w.lit("},\"model\":");
  w.str(model);
  w.lit(",\"model_group\":");
  w.str(e.model_group);
  w.lit(",\"model_id\":");
  w.str(e.model_id);
  w.lit(",\"model_parameters\":{");
  first = true;
  auto again = params_again.begin();
  for (const auto& [k, v] : params) {
    std::string_view text = v;
    if (!canonical_scalar(v)) {
      text = (again++)->second;
      if (text.empty()) {
        continue;  // not JSON (cannot happen: the scan checked it)
      }
    }
    if (!first) {
      w.lit(",");
    }
    first = false;
    w.str(k);
    w.lit(":");
    w.raw(text);
  }
  w.lit("},\"prompt_tokens\":");
  w.integer(e.prompt_tokens);
  w.lit(",\"requested_model\":");
  w.str(e.requested_model);
  w.lit(",\"response_cost\":");
  w.number(e.cost);
  w.lit(",\"startTime\":");
  w.unix_seconds(e.start_ns);
  if (e.success) {
    w.lit(",\"status\":\"success\",\"status_code\":");
  } else {
    w.lit(",\"status\":\"failure\",\"status_code\":");
  }
  w.integer(e.status);
  w.lit(",\"stream\":");
  w.boolean(e.stream);
  w.lit(",\"total_tokens\":");
  w.integer(e.prompt_tokens + e.completion_tokens);
  w.lit(",\"trace_id\":");
  w.str(trace_id);
  // The request's input as received (no parse) and the answer: the body as sent when it
  // is whole, valid JSON, else as a string (a stream's text, a body cut at the bound).
  w.lit(",\"messages\":");
  if (!e.input_raw.empty()) {
    w.raw(e.input_raw);
  } else if (e.request_body) {
    w.raw(input_again);
  } else {
    w.lit("null");
  }
  w.lit(",\"response\":");
  if (!e.response) {
    w.lit("null");
  } else if (response_raw) {
    w.raw(*e.response);
  } else {
    w.str(*e.response);
  }
  w.lit("}");
  out.append(scratch.data(), static_cast<std::size_t>(w.end() - scratch.data()));
}

// A batch of generic_api payloads appended to `out`: `before_first`, then each payload with
// `between` in between and `after_each` after each, then `after_all` (0: nothing).
void append_generic_payloads(std::string& out, const std::vector<event_ptr>& batch, char before_first,
                             char between, char after_each, char after_all) {
  if (before_first != 0) {
    out += before_first;
  }
  bool first = true;
  for (const auto& ep : batch) {
    if (!first && between != 0) {
      out += between;
    }
    first = false;
    write_generic_payload(out, fields_of(*ep));
    if (after_each != 0) {
      out += after_each;
    }
  }
  if (after_all != 0) {
    out += after_all;
  }
}

}  // namespace

void append_generic_payload(std::string& out, const callback_fields& f) { write_generic_payload(out, f); }

json generic_payload_json(const std::vector<event_ptr>& batch) {
  json out = json::array();
  for (const auto& t : generic_payload_texts(batch)) {
    out.push_back(json::parse(t));
  }
  return out;
}

std::vector<std::string> generic_payload_texts(const std::vector<event_ptr>& batch) {
  std::vector<std::string> out;
  out.reserve(batch.size());
  for (const auto& ep : batch) {
    std::string s;
    write_generic_payload(s, fields_of(*ep));
    out.push_back(std::move(s));
  }
  return out;
}


target_or_error make_callback_target(const std::string& name, const json& settings,
                                     const std::function<std::string(const char*)>& env) {
  callback_target t;
  t.name = name;
  const json* cs = nullptr;
  if (settings.is_object()) {
    if (auto it = settings.find(name); it != settings.end() && it->is_object()) {
      cs = &*it;
    }
  }
  std::string kind = name;
  if (cs != nullptr) {
    kind = cs->value("callback_type", name);
    // LiteLLM's per-callback switch (its docs show `message_logging: False` for otel).
    if (auto ml = cs->find("message_logging"); ml != cs->end()) {
      t.log_content = !((ml->is_boolean() && !ml->get<bool>()) ||
                        (ml->is_string() && (*ml == "false" || *ml == "False")));
    }
  }
  if (kind == "webhook") {
    kind = "generic_api";
  }
  t.kind = kind;
  if (kind == "otel") {
    std::string url = env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    if (url.empty()) {
      std::string base = env("OTEL_EXPORTER_OTLP_ENDPOINT");
      if (base.empty()) {
        base = env("OTEL_ENDPOINT");  // LiteLLM's older name
      }
      if (base.empty()) {
        base = "http://localhost:4318";  // the OTLP/HTTP default
      }
      base = strip_slash(base);
      url = base.size() >= 10 && base.compare(base.size() - 10, 10, "/v1/traces") == 0 ? base : base + "/v1/traces";
    }
    if (!http_url(url)) {
      return {std::nullopt, "otel: the OTLP endpoint must be an http(s) URL (OTLP/HTTP JSON), got '" + url + "'"};
    }
    t.url = url;
    std::string h = env("OTEL_EXPORTER_OTLP_HEADERS");
    if (h.empty()) {
      h = env("OTEL_HEADERS");
    }
    t.headers = parse_header_pairs(h);
    for (auto& p : parse_header_pairs(env("OTEL_EXPORTER_OTLP_TRACES_HEADERS"))) {
      t.headers.push_back(std::move(p));
    }
    std::string service = env("OTEL_SERVICE_NAME");
    if (service.empty()) {
      service = "litellm";  // what LiteLLM reports, so existing dashboards keep matching
    }
    // Invalid UTF-8 (an answer cut at the content bound inside a character) becomes
    // U+FFFD, as for the other receivers: a strict dump would throw and lose the whole
    // batch, and a collector refuses a string that is not UTF-8.
    t.encode = [service](const std::vector<event_ptr>& b) {
      return otlp_traces_json(b, service).dump(-1, ' ', false, json::error_handler_t::replace);
    };
    return {std::move(t), {}};
  }
  if (kind == "langfuse") {
    const std::string pub = env("LANGFUSE_PUBLIC_KEY");
    const std::string sec = env("LANGFUSE_SECRET_KEY");
    if (pub.empty() || sec.empty()) {
      return {std::nullopt, "langfuse: LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY must be set"};
    }
    std::string host = env("LANGFUSE_HOST");
    if (host.empty()) {
      host = "https://cloud.langfuse.com";
    }
    if (!http_url(host)) {
      host = "https://" + host;  // LiteLLM accepts a bare host name
    }
    t.url = strip_slash(host) + "/api/public/ingestion";
    t.headers.emplace_back("authorization", "Basic " + base64(pub + ":" + sec));
    t.encode = [](const std::vector<event_ptr>& b) {
      const auto now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count();
      return langfuse_batch_json(b, iso_time(now)).dump(-1, ' ', false, json::error_handler_t::replace);
    };
    return {std::move(t), {}};
  }
  if (kind == "generic_api") {
    std::string format = "json_array";
    if (cs != nullptr) {
      t.url = cs->value("endpoint", std::string());
      if (auto h = cs->find("headers"); h != cs->end() && h->is_object()) {
        for (const auto& [k, v] : h->items()) {
          if (v.is_string()) {
            t.headers.emplace_back(k, v.get<std::string>());
          }
        }
      }
      if (auto ev = cs->find("event_types"); ev != cs->end() && ev->is_array()) {
        t.on_success = t.on_failure = false;
        for (const auto& x : *ev) {
          t.on_success = t.on_success || x == "llm_api_success";
          t.on_failure = t.on_failure || x == "llm_api_failure";
        }
      }
      format = cs->value("log_format", format);
    }
    if (t.url.empty()) {
      t.url = env("GENERIC_LOGGER_ENDPOINT");
      if (t.headers.empty()) {
        t.headers = parse_header_pairs(env("GENERIC_LOGGER_HEADERS"));
      }
    }
    if (t.url.empty()) {
      return {std::nullopt, name + ": no endpoint (callback_settings." + name +
                                ".endpoint or GENERIC_LOGGER_ENDPOINT)"};
    }
    if (!http_url(t.url)) {
      return {std::nullopt, name + ": the endpoint must be an http(s) URL, got '" + t.url + "'"};
    }
    for (const auto& [k, v] : t.headers) {
      if (k.find_first_of("\r\n:") != std::string::npos || v.find_first_of("\r\n") != std::string::npos) {
        return {std::nullopt, name + ": header '" + k + "' has a line break or colon in it"};
      }
    }
    if (format == "ndjson") {
      t.encode = [](const std::vector<event_ptr>& b) {
        std::string out;
        append_generic_payloads(out, b, 0, 0, '\n', 0);
        return out;
      };
      t.text = callback_target::text_framing{0, 0, '\n', 0};
    } else if (format == "single") {
      t.encode = [](const std::vector<event_ptr>& b) {
        if (b.empty()) {
          return std::string("{}");
        }
        std::string out;
        write_generic_payload(out, fields_of(*b.front()));
        return out;
      };
      t.single = true;
      t.text = callback_target::text_framing{};
    } else if (format == "json_array") {
      t.encode = [](const std::vector<event_ptr>& b) {
        std::string out;
        out.reserve(b.size() * 2048);  // about one payload of the usual size each
        append_generic_payloads(out, b, '[', ',', 0, ']');
        return out;
      };
      t.text = callback_target::text_framing{'[', ',', 0, ']'};
    } else {
      return {std::nullopt, name + ": log_format must be json_array, ndjson or single, got '" + format + "'"};
    }
    return {std::move(t), {}};
  }
  return {std::nullopt, "callback '" + name + "' is not supported by this gateway"};
}

}  // namespace switchyard::pipeline
