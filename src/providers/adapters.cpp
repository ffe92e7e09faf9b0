// The OpenAI adapter (the openai and azure wire formats: OpenAI, Azure OpenAI,
// hosted_vllm and any OpenAI-compatible provider), the adapter of each wire format, and
// the per-provider lookups the pipeline makes (capabilities, stream framing).
#include "switchyard/core/json_get.hpp"
#include "switchyard/providers/adapter.hpp"
#include "switchyard/providers/aws_eventstream.hpp"
#include "switchyard/providers/bedrock.hpp"
#include "switchyard/providers/capabilities.hpp"
#include "switchyard/upstream/sse_parser.hpp"

#include "adapter_util.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <optional>
#include <cstring>
#include <cstdlib>

namespace switchyard::providers {

using json = nlohmann::json;

namespace {

const char* path_of(call_type t) {
  switch (t) {
    case call_type::chat: return "/chat/completions";
    case call_type::messages: return "/chat/completions";
    case call_type::completion: return "/completions";
    case call_type::embedding: return "/embeddings";
    case call_type::responses: return "/chat/completions";  // translated to chat
  }
  return "/chat/completions";
}

// memmem: glibc's two-way search. std::string_view::find calls memchr for the needle's
// first byte, and a needle starting with '"' stops at every quote of a JSON text (it
// cost a third of a stream's relay when measured).
std::size_t find_bytes(std::string_view hay, std::string_view needle, std::size_t from = 0) {
  if (from >= hay.size()) {
    return std::string_view::npos;
  }
  const void* at = ::memmem(hay.data() + from, hay.size() - from, needle.data(), needle.size());
  return at == nullptr ? std::string_view::npos : static_cast<std::size_t>(static_cast<const char*>(at) - hay.data());
}

// True if a chunk says why the choice finished ("finish_reason": "<something>").
bool has_finish_reason(std::string_view data) {
  constexpr std::string_view key = "\"finish_reason\"";
  for (auto pos = find_bytes(data, key); pos != std::string_view::npos; pos = find_bytes(data, key, pos)) {
    pos += key.size();
    while (pos < data.size() && (data[pos] == ' ' || data[pos] == ':' || data[pos] == '\t' || data[pos] == '\n' ||
                                 data[pos] == '\r')) {
      ++pos;
    }
    if (pos < data.size() && data[pos] == '"') {
      return true;
    }
  }
  return false;
}

// An empty JSON array ("[]", whitespace allowed inside).
bool is_empty_array(std::string_view v) {
  if (v.size() < 2 || v.front() != '[') {
    return false;
  }
  for (std::size_t i = 1; i + 1 < v.size(); ++i) {
    if (v[i] != ' ' && v[i] != '\t' && v[i] != '\n' && v[i] != '\r') {
      return false;
    }
  }
  return true;
}

// usage_of() for the raw bytes of a "usage" object (already validated): its integer
// members read without a DOM.
usage usage_of_raw(std::string_view usage_object) {
  thread_local json_scan scan;    // reused: no allocation per response on the hot path
  thread_local json_scan nested;  // for prompt_tokens_details / completion_tokens_details
  scan_json(usage_object, scan, max_json_depth);
  auto number = [](const json_scan& s, std::string_view key) -> long long {
    const auto* m = s.find(key);
    if (m == nullptr || m->kind != json_kind::number) {
      return 0;
    }
    // As core::count_or reads a parsed number: never negative, at most 10^18.
    long long v = 0;
    auto [p, ec] = std::from_chars(m->value.data(), m->value.data() + m->value.size(), v);
    if (ec != std::errc() || p != m->value.data() + m->value.size()) {
      return core::count_of_number(std::strtod(std::string(m->value).c_str(), nullptr));  // 1.0, 1e3, 1e300
    }
    return core::count_of_integer(v);
  };
  return usage_from([&](std::string_view object, std::string_view key) -> long long {
    if (object.empty()) {
      return number(scan, key);
    }
    const auto* o = scan.find(object);
    if (o == nullptr || o->kind != json_kind::object || !scan_json(o->value, nested, max_json_depth)) {
      return 0;
    }
    return number(nested, key);
  });
}

// Request bodies from this size on are forwarded as pieces of the client's own bytes.
constexpr std::size_t scatter_min_bytes = 16 * 1024;

std::string_view label_of(const config::deployment& d) { return d.provider->exception_label; }

// The HTTP status an OpenAI-style error object stands for: its code when that is a status
// (some providers put one there), else what its type or code names, else 500.
int status_of_openai_error(const json& e) {
  if (!e.is_object()) {
    return 500;
  }
  int status = 0;
  auto c = e.value("code", json());
  if (c.is_number_integer()) {
    status = c.get<int>();
  } else if (c.is_string()) {
    const auto& s = c.get_ref<const std::string&>();
    std::from_chars(s.data(), s.data() + s.size(), status);
  }
  if (status >= 400 && status <= 599) {
    return status;
  }
  for (const char* key : {"type", "code"}) {
    const auto name = detail::string_field(e, key);
    if (name == "invalid_request_error" || name == "context_length_exceeded") {
      return 400;
    }
    if (name == "authentication_error" || name == "invalid_api_key") {
      return 401;
    }
    if (name == "permission_error" || name == "permission_denied") {
      return 403;
    }
    if (name == "not_found_error" || name == "model_not_found") {
      return 404;
    }
    if (name == "rate_limit_error" || name == "rate_limit_exceeded" || name == "insufficient_quota" ||
        name == "requests" || name == "tokens") {
      return 429;
    }
  }
  return 500;
}

// Removes the member `whole` (a view into `text`: key to end of value) from the object
// `text`, with the comma that separates it from its neighbour.
void erase_member(std::string& text, std::string_view whole) {
  auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  std::size_t begin = static_cast<std::size_t>(whole.data() - text.data());
  std::size_t end = begin + whole.size();
  std::size_t before = begin;
  while (before > 0 && is_space(text[before - 1])) {
    --before;
  }
  if (before > 0 && text[before - 1] == ',') {
    begin = before - 1;  // a member before it: take the comma that precedes it
  } else {
    std::size_t after = end;
    while (after < text.size() && is_space(text[after])) {
      ++after;
    }
    if (after < text.size() && text[after] == ',') {
      end = after + 1;  // the first member: take the comma that follows it
    }
  }
  text.erase(begin, end - begin);
}

class openai_stream final : public stream_translator {
 public:
  openai_stream(std::string_view label, bool include_usage) : label_(label), include_usage_(include_usage) {}

  // Until the first event the bytes are also kept (up to max_prefix_bytes): an answer that
  // holds no event at all may be the JSON body of a provider that ignores stream: true.
  static constexpr std::size_t max_prefix_bytes = 1u << 20;

  core::result<void> feed(std::string_view bytes, std::vector<std::string>& payloads) override {
    events_.clear();
    parser_.feed(bytes, events_);
    if (!saw_event_) {
      saw_event_ = !events_.empty();
      if (!saw_event_ && prefix_.size() + bytes.size() <= max_prefix_bytes) {
        prefix_ += bytes;
      } else {
        prefix_ = std::string();
        too_long_ = !saw_event_;
      }
    }
    for (auto& ev : events_) {
      if (ev.data == "[DONE]") {
        done_ = true;
        continue;
      }
      if (ev.data.empty()) {
        continue;
      }
      // Every event reaches the client as JSON: one DOM-free scan validates it and lists
      // its top-level members (error, choices, usage); `scan_` is reused across events.
      if (!scan_json(ev.data, scan_, max_json_depth)) {
        return core::make_error(core::errc::upstream_error,
                                label_ + " - the provider sent a stream event that is not valid JSON");
      }
      const json_member* choices = scan_.find("choices");
      if (scan_.find("error") != nullptr && choices == nullptr) {
        return stream_error(ev.data);
      }
      // A finish_reason lives in a choice: only the choices' bytes are searched.
      if (choices != nullptr && has_finish_reason(choices->value)) {
        finished_ = true;
      }
      if (const json_member* u = scan_.find("usage"); u != nullptr && u->kind == json_kind::object) {
        usage_ = usage_of_raw(u->value);
        if (choices != nullptr && is_empty_array(choices->value) && !include_usage_) {
          continue;  // the gateway asked for usage, the client did not
        }
      } else if (u != nullptr && u->kind == json_kind::null && !include_usage_) {
        // With include_usage OpenAI puts "usage":null on every chunk; without it (what the
        // client asked) the member is absent. The scan located it: cut its bytes out.
        erase_member(ev.data, u->whole);
      }
      payloads.push_back(std::move(ev.data));
    }
    return {};
  }

  core::result<void> finish(std::vector<std::string>& payloads) override {
    if (!saw_event_) {
      return not_an_event_stream(payloads);
    }
    if (!done_ && !finished_) {
      return core::make_error(core::errc::upstream_error,
                              label_ + " - the provider's stream ended before [DONE] (stream cut)");
    }
    return {};
  }

  const usage& tokens() const override { return usage_; }

 private:
  // An {"error": ...} event (no choices): the provider's error, with its status.
  core::error stream_error(const std::string& data) const {
    json j = json::parse(data, nullptr, false);
    int status = 500;
    if (!j.is_discarded() && j.is_object()) {
      if (auto e = j.find("error"); e != j.end()) {
        status = status_of_openai_error(*e);
      }
    }
    return upstream_error(status, data, label_);
  }

  // The stream ended without a single event. A provider that ignores stream: true (or
  // fails with status 200) answers with JSON: its error object is that error, with the
  // status it names, so that a retry or fallback gets its chance and the client a real
  // status; a whole completion is replayed as the chunks of its stream (as LiteLLM streams
  // the answers of providers it cannot stream from); anything else is a clear 500.
  core::result<void> not_an_event_stream(std::vector<std::string>& payloads) {
    const auto start = prefix_.find_first_not_of(" \t\r\n");
    if (too_long_ || start == std::string::npos) {
      return core::make_error(core::errc::upstream_error,
                              label_ + (too_long_ ? " - the provider's answer to a streamed request is not an event stream"
                                                  : " - the provider's stream ended before [DONE] (empty stream)"));
    }
    json j = detail::parse_bounded(prefix_);
    if (j.is_object()) {
      auto choices = j.find("choices");
      if (j.contains("error") && choices == j.end()) {
        return stream_error(prefix_);
      }
      if (choices != j.end() && choices->is_array() && replay(j, payloads)) {
        return {};
      }
    }
    return core::make_error(core::errc::upstream_error,
                            label_ + " - the provider's answer to a streamed request is not an event stream");
  }

  // A chat.completion (or text_completion) -> its stream: per choice, a chunk with the
  // message as the delta (tool calls numbered) then one with its finish_reason (a
  // text_completion choice is already a chunk); the usage chunk when the client asked.
  // False if a choice is neither shape.
  bool replay(const json& whole, std::vector<std::string>& payloads) {
    std::vector<std::string> out;
    const bool chat = whole.value("object", "") != "text_completion";
    json head = json::object();
    for (const char* k : {"id", "created", "model", "system_fingerprint", "service_tier"}) {
      if (auto it = whole.find(k); it != whole.end()) {
        head[k] = *it;
      }
    }
    head["object"] = chat ? "chat.completion.chunk" : "text_completion";
    auto chunk = [&](json choice) {
      json c = head;
      c["choices"] = json::array({std::move(choice)});
      out.push_back(detail::dump(c));
    };
    for (const auto& choice : whole["choices"]) {
      if (!choice.is_object()) {
        return false;
      }
      const json index = choice.value("index", json(0));
      const json finish = choice.value("finish_reason", json());
      const json logprobs = choice.value("logprobs", json());
      if (!chat) {
        if (!choice.contains("text")) {
          return false;
        }
        chunk(choice);
        continue;
      }
      auto message = choice.find("message");
      if (message == choice.end() || !message->is_object()) {
        return false;
      }
      json delta = *message;
      if (auto calls = delta.find("tool_calls"); calls != delta.end() && calls->is_array()) {
        int i = 0;
        for (auto& call : *calls) {
          if (call.is_object() && !call.contains("index")) {
            call["index"] = i;
          }
          ++i;
        }
      }
      chunk({{"index", index}, {"delta", std::move(delta)}, {"logprobs", logprobs}, {"finish_reason", nullptr}});
      chunk({{"index", index}, {"delta", json::object()}, {"finish_reason", finish.is_null() ? json("stop") : finish}});
    }
    if (auto u = whole.find("usage"); u != whole.end() && u->is_object()) {
      usage_ = usage_of(whole);
      if (include_usage_) {
        json c = head;
        c["choices"] = json::array();
        c["usage"] = *u;
        out.push_back(detail::dump(c));
      }
    }
    for (auto& p : out) {
      payloads.push_back(std::move(p));
    }
    return true;
  }

  std::string label_;
  bool include_usage_;
  json_scan scan_;
  upstream::sse_parser parser_;
  std::vector<upstream::sse_parser::event> events_;
  usage usage_;
  std::string prefix_;  // the bytes before the first event (see max_prefix_bytes)
  bool saw_event_ = false;
  bool too_long_ = false;
  bool done_ = false;
  bool finished_ = false;
};

// ---- OpenAI's reasoning models (o-series, gpt-5), as LiteLLM treats them -------------
//
// They refuse max_tokens (max_completion_tokens instead) and any temperature but 1
// (gpt-5.1 and later take any temperature while reasoning_effort is "none" or unset).
// LiteLLM renames max_tokens for them and, for another temperature, answers 400 naming
// it or, with drop_params, leaves it out; a null temperature is left out. Which models:
// - openai: the model (its last path segment) is o1, o3 or o4 (alone or followed by
//   "-...": o1-mini, o3-2025-04-16, o4-mini); LiteLLM also wants the name in its price
//   map, whose o-series names all have this shape. gpt-5: "gpt-5" in the name, except
//   gpt-5-chat* (a plain chat model).
// - azure: the deployment name, or model_info.base_model when set (deployments have
//   names of their own), contains o1, o3, o4 or the routing prefix o_series/ (o-series),
//   else gpt-5 (not gpt-5-chat) or the prefix gpt5_series/. The prefixes are stripped
//   from the URL.
// The other parameters each family refuses: see check_params.
// Other OpenAI-compatible providers get the body as sent (LiteLLM maps only these two).
enum class reasoning_family { none, o_series, gpt_5 };

struct reasoning_model {
  reasoning_family family = reasoning_family::none;
  // gpt-5: takes any temperature while reasoning_effort is "none" or unset
  // (supports_none_reasoning_effort: gpt-5.1 and later, as the price map or model_info
  // say; by the name when neither does).
  bool temperature_when_no_reasoning = false;
  // gpt-5: takes reasoning_effort "xhigh" (supports_xhigh_reasoning_effort; LiteLLM
  // refuses it for a model whose flag is not true, an unknown model included).
  bool xhigh = false;
  // gpt-5 search models (gpt-5-search-api): "search" in a gpt-5 name, as LiteLLM tells
  // them apart. They take a short list of parameters (gpt_5_search_refused below).
  bool search_only = false;
  // o-series: what model_info, else the price map, says the model lacks (as LiteLLM
  // reads them: its price map with model_info over it).
  bool no_tools = false;              // supports_function_calling: false
  bool no_parallel_tool_calls = false;  // supports_parallel_function_calling: false
  bool no_response_format = false;   // supports_response_schema: false
  bool system_as_user = false;        // supports_system_messages: false
};

constexpr std::string_view o_series_route = "o_series/";
constexpr std::string_view gpt5_series_route = "gpt5_series/";

bool contains(std::string_view hay, std::string_view needle) { return hay.find(needle) != std::string_view::npos; }

bool is_gpt_5_name(std::string_view name) { return contains(name, "gpt-5") && !contains(name, "gpt-5-chat"); }

// gpt-5.<n> with n >= 1, not a codex or pro variant: the names the price map flags with
// supports_none_reasoning_effort.
bool gpt_5_point_release(std::string_view name) {
  const auto at = name.find("gpt-5.");
  if (at == std::string_view::npos || at + 6 >= name.size()) {
    return false;
  }
  const char minor = name[at + 6];
  return minor >= '1' && minor <= '9' && !contains(name, "codex") && !contains(name, "-pro");
}

std::string_view last_segment(std::string_view model) {
  const auto slash = model.rfind('/');
  return slash == std::string_view::npos ? model : model.substr(slash + 1);
}

reasoning_model reasoning_model_of(call_type type, const config::deployment& d) {
  reasoning_model r;
  if (type == call_type::embedding || type == call_type::completion) {
    return r;
  }
  const bool azure = d.provider->wire == config::wire_format::azure;
  if (!azure && d.provider->name != "openai") {
    return r;
  }
  std::string_view name = d.upstream_model;
  if (azure) {
    if (auto bm = d.model_info.is_object() ? d.model_info.find("base_model") : d.model_info.end();
        bm != d.model_info.end() && bm->is_string() && !bm->get_ref<const std::string&>().empty()) {
      name = bm->get_ref<const std::string&>();
    }
    if (contains(name, "o1") || contains(name, "o3") || contains(name, "o4") || contains(name, o_series_route) ||
        contains(d.upstream_model, o_series_route)) {
      r.family = reasoning_family::o_series;
    } else if (is_gpt_5_name(name) || contains(name, gpt5_series_route) ||
               contains(d.upstream_model, gpt5_series_route)) {
      r.family = reasoning_family::gpt_5;
    }
  } else {
    const auto n = last_segment(name);
    if (n.size() >= 2 && n[0] == 'o' && (n[1] == '1' || n[1] == '3' || n[1] == '4') &&
        (n.size() == 2 || n[2] == '-')) {
      r.family = reasoning_family::o_series;
    } else if (is_gpt_5_name(name)) {
      r.family = reasoning_family::gpt_5;
    }
  }
  if (r.family == reasoning_family::gpt_5 && contains(name, "search")) {
    r.search_only = true;  // none of the gpt-5 rules below: its own list
    return r;
  }
  if (r.family == reasoning_family::none) {
    return r;
  }
  const model_capabilities caps(d);  // the price map's entry looked up once
  if (r.family == reasoning_family::gpt_5) {
    r.temperature_when_no_reasoning =
        caps("supports_none_reasoning_effort").value_or(gpt_5_point_release(last_segment(name)));
    r.xhigh = caps("supports_xhigh_reasoning_effort").value_or(false);
  }
  if (r.family == reasoning_family::o_series) {
    auto lacks = [&caps](const char* flag) { return caps(flag) == false; };
    r.no_tools = lacks("supports_function_calling");
    r.no_parallel_tool_calls = lacks("supports_parallel_function_calling");
    r.no_response_format = lacks("supports_response_schema");
    r.system_as_user = lacks("supports_system_messages");
  }
  return r;
}

// The Azure deployment as the URL names it: without a routing prefix.
std::string_view azure_deployment_of(std::string_view upstream_model) {
  for (auto route : {o_series_route, gpt5_series_route}) {
    if (upstream_model.substr(0, route.size()) == route) {
      return upstream_model.substr(route.size());
    }
  }
  return upstream_model;
}

// reasoning_effort "none" or unset (a string, or the Responses form {"effort": ...}).
bool no_reasoning(const json* effort) {
  if (effort == nullptr || effort->is_null()) {
    return true;
  }
  if (effort->is_object()) {
    auto e = effort->find("effort");
    return e == effort->end() || e->is_null() || *e == "none";
  }
  return *effort == "none";
}

enum class keep_temperature { keep, drop };

// What a reasoning model does with a temperature `value`: sent, left out, or a 400.
core::result<keep_temperature> temperature_for(const reasoning_model& m, const json& value, const json* effort,
                                               bool drop_params, const config::deployment& d) {
  if (value.is_null()) {
    return keep_temperature::drop;
  }
  if (value.is_number() && value.get<double>() == 1.0) {
    return keep_temperature::keep;
  }
  if (m.family == reasoning_family::gpt_5 && m.temperature_when_no_reasoning && no_reasoning(effort)) {
    return keep_temperature::keep;
  }
  if (drop_params) {
    return keep_temperature::drop;
  }
  std::string msg = std::string(m.family == reasoning_family::o_series ? "O-series" : "gpt-5") +
                    " models only take temperature=1, not temperature=" +
                    value.dump(-1, ' ', false, json::error_handler_t::replace);
  if (m.family == reasoning_family::gpt_5 && m.temperature_when_no_reasoning) {
    msg += " with reasoning_effort set (any temperature works with reasoning_effort \"none\" or unset)";
  }
  msg += ", for model=" + d.upstream_model +
         ". To drop it, set `drop_params: true` in the request or, for the proxy, "
         "`litellm_settings: drop_params: true`.";
  return core::make_error(core::errc::bad_request, std::move(msg), "temperature");
}

// The OpenAI parameters each family refuses, as LiteLLM lists them (its o-series and
// gpt-5 configs leave them out of the supported parameters). LiteLLM answers 400 naming
// every one the request sets, or leaves them out with drop_params; a value that changes
// nothing (null, presence_penalty 0, logprobs false, ...) is left out without a word, as
// the other adapters do. gpt-5.1 and later take logprobs, top_p and top_logprobs, but
// only while reasoning_effort is "none" or unset (sampling_params below).
// LiteLLM also refuses tools (tool_choice, functions, function_call), parallel_tool_calls
// and response_format for the o-series models its price map says cannot take them: here
// when the deployment's model_info says so (the price map is not read here).
constexpr std::array<std::string_view, 5> o_series_refused = {"logprobs", "top_p", "presence_penalty",
                                                              "frequency_penalty", "top_logprobs"};
constexpr std::array<std::string_view, 8> gpt_5_refused = {
    "presence_penalty", "frequency_penalty", "stop", "logit_bias", "modalities", "prediction", "audio",
    "web_search_options"};
// gpt-5 search models: LiteLLM's config gives them max_tokens (sent as
// max_completion_tokens), max_completion_tokens, stream, stream_options,
// web_search_options, service_tier, safety_identifier, response_format, user, store,
// verbosity, max_retries and extra_headers; the other chat parameters it knows are
// refused (so temperature too, even 1, and reasoning_effort). Members it does not know
// pass as sent, as on any model.
constexpr std::array<std::string_view, 20> gpt_5_search_refused = {
    "functions",  "function_call",     "temperature",       "top_p",      "n",        "stop",
    "modalities", "prediction",        "audio",             "presence_penalty",       "frequency_penalty",
    "logit_bias", "seed",              "tools",             "tool_choice", "logprobs", "top_logprobs",
    "parallel_tool_calls",             "reasoning_effort",  "thinking"};
constexpr std::array<std::string_view, 3> sampling_params = {"logprobs", "top_logprobs", "top_p"};
constexpr std::array<std::string_view, 4> tool_params = {"tools", "tool_choice", "function_call", "functions"};

template <std::size_t N>
bool listed(const std::array<std::string_view, N>& names, std::string_view key) {
  return std::find(names.begin(), names.end(), key) != names.end();
}

// Whether a reasoning model refuses `key` whatever reasoning_effort says.
bool refused_param(const reasoning_model& m, std::string_view key) {
  if (m.family == reasoning_family::o_series) {
    return listed(o_series_refused, key) || (m.no_tools && listed(tool_params, key)) ||
           (m.no_parallel_tool_calls && key == "parallel_tool_calls") ||
           (m.no_response_format && key == "response_format");
  }
  if (m.search_only) {
    return listed(gpt_5_search_refused, key);
  }
  return listed(gpt_5_refused, key) || (!m.temperature_when_no_reasoning && listed(sampling_params, key));
}

// gpt-5.1 and later: `key` is one of the parameters they take only without reasoning.
bool gated_sampling_param(const reasoning_model& m, std::string_view key) {
  return m.family == reasoning_family::gpt_5 && m.temperature_when_no_reasoning && listed(sampling_params, key);
}

// What check_params decided for the members it looked at: every refused parameter that
// is left is one to leave out; the sampling parameters are left out too when dropped.
struct param_verdict {
  bool drop_sampling = false;
  bool drop_effort = false;  // an "xhigh" the model does not take, dropped
};

// reasoning_effort "xhigh": the string, or the Responses form {"effort": "xhigh"} with
// nothing else (LiteLLM reads that form as the string; one with more members, such as a
// summary, it leaves as it is and does not check).
bool is_xhigh(const json* effort) {
  if (effort == nullptr) {
    return false;
  }
  if (effort->is_object()) {
    auto e = effort->find("effort");
    return effort->size() == 1 && e != effort->end() && *e == "xhigh";
  }
  return *effort == "xhigh";
}

// The refused parameters of a request, before anything else (LiteLLM checks the supported
// parameters before it maps them). `value_of(key)` is the value the call would send for
// `key` (the request's, else the deployment's), or nullopt. Names come in the lists'
// order, so both build paths say the same.
template <class ValueOf>
core::result<param_verdict> check_params(const reasoning_model& m, ValueOf&& value_of, const json* effort,
                                         bool drop_params, const config::deployment& d) {
  std::vector<std::string_view> refused;
  auto look = [&](std::string_view key) {
    if (!refused_param(m, key)) {
      return;
    }
    if (std::optional<json> v = value_of(key); v && !detail::is_noop_value(key, *v)) {
      refused.push_back(key);
    }
  };
  if (m.family == reasoning_family::o_series) {
    std::for_each(o_series_refused.begin(), o_series_refused.end(), look);
    std::for_each(tool_params.begin(), tool_params.end(), look);
    look("parallel_tool_calls");
    look("response_format");
  } else if (m.search_only) {
    std::for_each(gpt_5_search_refused.begin(), gpt_5_search_refused.end(), look);
  } else {
    std::for_each(gpt_5_refused.begin(), gpt_5_refused.end(), look);
    std::for_each(sampling_params.begin(), sampling_params.end(), look);
  }
  if (!refused.empty() && !drop_params) {
    std::string msg = std::string(d.provider->name) + " does not support parameters: [";
    for (std::size_t i = 0; i < refused.size(); ++i) {
      msg += i == 0 ? "'" : ", '";
      msg += refused[i];
      msg += '\'';
    }
    msg += "], for model=" + d.upstream_model +
           ". To drop these, set `drop_params: true` in the request or, for the proxy, "
           "`litellm_settings: drop_params: true`.";
    return core::make_error(core::errc::bad_request, std::move(msg), std::string(refused.front()));
  }
  param_verdict verdict;
  if (m.family == reasoning_family::gpt_5 && !m.search_only && !m.xhigh && is_xhigh(effort)) {
    if (!drop_params) {
      return core::make_error(core::errc::bad_request,
                              "reasoning_effort='xhigh' is only supported for gpt-5.1-codex-max, gpt-5.2, and "
                              "gpt-5.4+ models (supports_xhigh_reasoning_effort), not model=" +
                                  d.upstream_model +
                                  ". To drop it, set `drop_params: true` in the request or, for the proxy, "
                                  "`litellm_settings: drop_params: true`.",
                              "reasoning_effort");
    }
    // Only the member goes: the temperature and sampling rules still read the effort the
    // request asked for, as LiteLLM's do.
    verdict.drop_effort = true;
  }
  if (m.family == reasoning_family::gpt_5 && m.temperature_when_no_reasoning && !no_reasoning(effort)) {
    for (auto key : sampling_params) {
      if (std::optional<json> v = value_of(key); v && !v->is_null()) {
        if (!drop_params) {
          return core::make_error(
              core::errc::bad_request,
              "gpt-5.1 and later take logprobs, top_p and top_logprobs only with reasoning_effort \"none\" (or "
              "unset); this request sets reasoning_effort=" +
                  effort->dump(-1, ' ', false, json::error_handler_t::replace) + ", for model=" + d.upstream_model +
                  ". To drop them, set `drop_params: true` in the request or, for the proxy, "
                  "`litellm_settings: drop_params: true`.",
              std::string(key));
        }
        verdict.drop_sampling = true;
      }
    }
  }
  return verdict;
}

// Whether a member the checks let through is left out of the call.
bool leave_out(const reasoning_model& m, const param_verdict& v, std::string_view key) {
  return refused_param(m, key) || (v.drop_sampling && gated_sampling_param(m, key)) ||
         (v.drop_effort && key == "reasoning_effort");
}

// The DOM request `out` (defaults merged) as a reasoning model takes it.
core::result<void> shape_for_reasoning(const reasoning_model& m, json& out, bool drop_params,
                                       const config::deployment& d) {
  const auto effort_at = out.find("reasoning_effort");
  const json* effort = effort_at == out.end() ? nullptr : &*effort_at;
  auto verdict = check_params(
      m,
      [&out](std::string_view key) -> std::optional<json> {
        auto it = out.find(key);
        return it == out.end() ? std::nullopt : std::optional<json>(*it);
      },
      effort, drop_params, d);
  if (!verdict) {
    return verdict.error();
  }
  for (auto it = out.begin(); it != out.end();) {
    it = leave_out(m, *verdict, it.key()) ? out.erase(it) : std::next(it);
  }
  if (m.system_as_user) {
    // As LiteLLM's o-series config does for a model without system messages: each one
    // becomes a user message with its content (its other members, e.g. name, go).
    if (auto msgs = out.find("messages"); msgs != out.end() && msgs->is_array()) {
      for (auto& msg : *msgs) {
        if (msg.is_object() && msg.value("role", "") == "system") {
          json content = msg.contains("content") ? msg["content"] : json(nullptr);
          msg = json{{"role", "user"}, {"content", std::move(content)}};
        }
      }
    }
  }
  if (auto mt = out.find("max_tokens"); mt != out.end()) {
    json v = std::move(*mt);
    out.erase(mt);
    if (!out.contains("max_completion_tokens")) {
      out["max_completion_tokens"] = std::move(v);
    }
  }
  if (auto t = out.find("temperature"); t != out.end()) {
    auto effort = out.find("reasoning_effort");
    auto keep = temperature_for(m, *t, effort == out.end() ? nullptr : &*effort, drop_params, d);
    if (!keep) {
      return keep.error();
    }
    if (*keep == keep_temperature::drop) {
      out.erase("temperature");
    }
  }
  return {};
}

class openai_like final : public adapter {
 public:
  // URL and headers of the call (both build paths).
  static core::result<upstream_call> endpoint(call_type type, const config::deployment& d, const build_options& opts) {
    upstream_call call;
    const std::string_view base = api_base_view(d);
    if (base.empty()) {
      return detail::missing_api_base(d);
    }
    call.url = base;
    if (d.provider->wire == config::wire_format::azure) {
      call.url += "/openai/deployments/";
      call.url += azure_deployment_of(d.upstream_model);
      call.url += path_of(type);
      if (!d.api_version.empty()) {
        call.url += "?api-version=" + d.api_version;
      }
      if (!opts.bearer_token.empty()) {
        // Entra ID (tenant_id/client_id/client_secret, or azure_ad_token) instead of a key.
        call.headers.emplace_back("authorization", "Bearer " + std::string(opts.bearer_token));
      } else if (!d.api_key.empty()) {
        call.headers.emplace_back("api-key", d.api_key);
      }
    } else {
      call.url += path_of(type);
      if (!d.api_key.empty()) {
        call.headers.emplace_back("authorization", "Bearer " + d.api_key);
      }
      if (!d.organization.empty()) {
        call.headers.emplace_back("openai-organization", d.organization);
      }
    }
    call.headers.emplace_back("content-type", "application/json");
    for (const auto& [k, v] : d.extra_headers) {
      call.headers.emplace_back(k, v);
    }
    return call;
  }

  core::result<upstream_call> build(call_type type, const config::deployment& d, const json& body,
                                    const build_options& opts) const override {
    auto call = endpoint(type, d, opts);
    if (!call) {
      return call;
    }
    json storage;
    const json& in = detail::with_deployment_params(type, d, body, storage);
    json out = json::object();
    for (auto it = in.begin(); it != in.end(); ++it) {
      if (!is_gateway_field(it.key())) {
        out[it.key()] = it.value();
      }
    }
    out["model"] = d.provider->wire == config::wire_format::azure ? std::string(azure_deployment_of(d.upstream_model))
                                                                  : d.upstream_model;
    if (const auto rm = reasoning_model_of(type, d); rm.family != reasoning_family::none) {
      if (auto shaped = shape_for_reasoning(rm, out, opts.drop_params, d); !shaped) {
        return shaped.error();
      }
    }
    if (opts.stream && type != call_type::embedding) {
      out["stream"] = true;
      auto& so = out["stream_options"];
      if (!so.is_object()) {
        so = json::object();
      }
      so["include_usage"] = true;
    }
    call->body = out.dump(-1, ' ', false, json::error_handler_t::replace);
    return call;
  }

  // build() on bytes: every member copied as received, except gateway fields (dropped),
  // `model` (the deployment's), and when streaming `stream` (true) and `stream_options`
  // (include_usage set). Equivalent JSON to build(); tests/unit/providers check that.
  std::optional<core::result<upstream_call>> build_raw(call_type type, const config::deployment& d,
                                                       std::string_view body, const json_scan& scan,
                                                       const build_options& opts) const override {
    if (!scan.ok || scan.root != json_kind::object) {
      return std::nullopt;
    }
    auto call = endpoint(type, d, opts);
    if (!call) {
      return call;
    }
    const bool stream = opts.stream && type != call_type::embedding;
    const std::string_view model = d.provider->wire == config::wire_format::azure
                                       ? azure_deployment_of(d.upstream_model)
                                       : std::string_view(d.upstream_model);
    // A reasoning model's max_tokens goes out as max_completion_tokens, unless the request
    // (or the deployment) sets that too: then it wins and max_tokens is left out, as in
    // LiteLLM, which maps max_tokens first and then copies max_completion_tokens over it.
    const auto rm = reasoning_model_of(type, d);
    if (rm.system_as_user) {
      return std::nullopt;  // the messages are rewritten: build() on the parsed body
    }
    const bool reasoning = rm.family != reasoning_family::none;
    // The names never sent: the deployment's drop list and the request's own
    // additional_drop_params (parsed only when the request has one), whoever set the
    // member: the client or a deployment default (as with_deployment_params on the DOM).
    std::vector<std::string> asked;
    if (const auto* a = scan.find("additional_drop_params"); a != nullptr && a->kind == json_kind::array) {
      asked = detail::request_drop_names(json::parse(a->value, nullptr, false));
    }
    const bool drops = !d.drop_param_names.empty() || !asked.empty();
    auto dropped = [&d, &asked](std::string_view key) {
      return std::find(d.drop_param_names.begin(), d.drop_param_names.end(), key) != d.drop_param_names.end() ||
             std::find(asked.begin(), asked.end(), key) != asked.end();
    };
    const bool completion_tokens_set =
        reasoning && !(drops && dropped("max_completion_tokens")) &&
        (scan.find("max_completion_tokens") != nullptr || d.request_defaults.contains("max_completion_tokens"));
    // The temperature rule reads reasoning_effort: the request's, else the deployment's.
    json effort_storage;
    const json* effort = nullptr;
    if (reasoning && !(drops && dropped("reasoning_effort"))) {
      if (const auto* re = scan.find("reasoning_effort"); re != nullptr) {
        effort_storage = json::parse(re->value, nullptr, false);
        effort = &effort_storage;
      } else if (auto dre = d.request_defaults.find("reasoning_effort"); dre != d.request_defaults.end()) {
        effort = &*dre;
      }
    }
    // The parameters a reasoning model refuses: a 400 before anything is written, else
    // left out below. Only the members the lists name are parsed (none, most requests).
    param_verdict verdict;
    if (reasoning) {
      auto checked = check_params(
          rm,
          [&](std::string_view key) -> std::optional<json> {
            if (drops && dropped(key)) {
              return std::nullopt;
            }
            if (const auto* m = scan.find(key); m != nullptr) {
              return json::parse(m->value, nullptr, false);
            }
            if (auto it = d.request_defaults.find(key); it != d.request_defaults.end()) {
              return *it;
            }
            return std::nullopt;
          },
          effort, opts.drop_params, d);
      if (!checked) {
        return checked.error();
      }
      verdict = *checked;
    }
    // Small bodies are copied into one string; large ones become pieces: the client's
    // bytes are never copied, only the edits are written (CPU and RSS per MB of request).
    const bool pieces = body.size() >= scatter_min_bytes;
    std::string& out = call->body;
    out.reserve(pieces ? 256 : body.size() + d.upstream_model.size() + 64);
    struct piece {
      bool client;
      std::size_t offset;
      std::size_t size;
    };
    std::vector<piece> layout;
    auto add_piece = [&](bool client, std::size_t offset, std::size_t size) {
      if (!layout.empty() && layout.back().client == client && layout.back().offset + layout.back().size == offset) {
        layout.back().size += size;
      } else {
        layout.push_back({client, offset, size});
      }
    };
    auto put_client = [&](std::string_view bytes) {  // a span of `body`
      if (pieces) {
        add_piece(true, static_cast<std::size_t>(bytes.data() - body.data()), bytes.size());
      } else {
        out += bytes;
      }
    };
    auto edited = [&](std::size_t before) {  // out grew from `before`: an edit piece
      if (pieces && out.size() > before) {
        add_piece(false, before, out.size() - before);
      }
    };
    std::size_t mark = out.size();
    out += '{';
    bool first = true;
    bool wrote_model = false;
    bool wrote_stream = false;
    bool wrote_options = false;
    bool wrote_completion_tokens = false;
    auto sep = [&] {
      if (!first) {
        out += ',';
      }
      first = false;
    };
    auto put_model = [&] {
      sep();
      out += "\"model\":";
      append_json_string(out, model);
      wrote_model = true;
    };
    auto put_options = [&](const json_member* m) {
      sep();
      out += "\"stream_options\":";
      if (m != nullptr && m->kind == json_kind::object) {
        json so = json::parse(m->value, nullptr, false);
        so["include_usage"] = true;
        out += so.dump(-1, ' ', false, json::error_handler_t::replace);
      } else {
        out += "{\"include_usage\":true}";
      }
      wrote_options = true;
    };
    for (const auto& m : scan.members) {
      if (is_gateway_field(m.key) || (drops && dropped(m.key))) {
        continue;
      }
      if (m.key == "model") {
        if (!wrote_model) {
          put_model();
        }
        continue;
      }
      if (stream && m.key == "stream") {
        if (!wrote_stream) {
          sep();
          out += "\"stream\":true";
          wrote_stream = true;
        }
        continue;
      }
      if (stream && m.key == "stream_options") {
        if (!wrote_options) {
          put_options(scan.find("stream_options"));  // the last duplicate, as build()
        }
        continue;
      }
      if (reasoning && leave_out(rm, verdict, m.key)) {
        continue;
      }
      if (reasoning && m.key == "max_tokens") {
        if (!completion_tokens_set && !wrote_completion_tokens) {
          sep();
          out += "\"max_completion_tokens\":";
          out += m.value;
          wrote_completion_tokens = true;
        }
        continue;
      }
      if (reasoning && m.key == "temperature") {
        auto keep = temperature_for(rm, json::parse(m.value, nullptr, false), effort, opts.drop_params, d);
        if (!keep) {
          return keep.error();
        }
        if (*keep == keep_temperature::drop) {
          continue;
        }
      }
      sep();
      edited(mark);
      put_client(m.whole);
      mark = out.size();
    }
    if (!wrote_model) {
      put_model();
    }
    // The deployment's request defaults, for the members the client did not send (the
    // client's value wins: LiteLLM spreads the request over the deployment's params).
    if (type != call_type::embedding) {
      for (auto it = d.request_defaults.begin(); it != d.request_defaults.end(); ++it) {
        if (scan.find(it.key()) != nullptr || is_gateway_field(it.key()) || (drops && dropped(it.key())) ||
            (stream && (it.key() == "stream" || it.key() == "stream_options"))) {
          continue;
        }
        std::string_view key = it.key();
        if (reasoning && leave_out(rm, verdict, key)) {
          continue;
        }
        if (reasoning && key == "max_tokens") {
          if (completion_tokens_set || wrote_completion_tokens) {
            continue;
          }
          key = "max_completion_tokens";
          wrote_completion_tokens = true;
        }
        if (reasoning && key == "temperature") {
          auto keep = temperature_for(rm, it.value(), effort, opts.drop_params, d);
          if (!keep) {
            return keep.error();
          }
          if (*keep == keep_temperature::drop) {
            continue;
          }
        }
        sep();
        append_json_string(out, key);
        out += ':';
        out += it.value().dump(-1, ' ', false, json::error_handler_t::replace);
      }
    }
    if (stream && !wrote_stream) {
      sep();
      out += "\"stream\":true";
    }
    if (stream && !wrote_options) {
      put_options(nullptr);
    }
    out += '}';
    edited(mark);
    if (pieces) {
      if (out.capacity() <= 15) {
        out.reserve(32);  // heap storage: views into it survive moving the call
      }
      call->body_parts.reserve(layout.size());
      for (const auto& p : layout) {
        call->body_parts.push_back(p.client ? body.substr(p.offset, p.size)
                                            : std::string_view(out).substr(p.offset, p.size));
      }
    }
    return call;
  }

  core::result<translated_response> translate_response(call_type, const config::deployment& d, std::string_view body,
                                                       std::string_view) const override {
    // Validated and passed on as bytes; only `usage` is parsed.
    thread_local json_scan scan;  // reused: no allocation per response on the hot path
    scan_json(body, scan, max_json_depth);
    if (!scan.ok || scan.root != json_kind::object) {
      return core::make_error(core::errc::upstream_error,
                              std::string(label_of(d)) + " - the provider returned a response that is not valid JSON");
    }
    translated_response out;
    if (const auto* u = scan.find("usage"); u != nullptr && u->kind == json_kind::object) {
      out.tokens = usage_of_raw(u->value);
    }
    out.body = std::string(body);
    return out;
  }

  std::unique_ptr<stream_translator> make_stream(call_type, const config::deployment& d, std::string_view,
                                                 bool include_usage) const override {
    return std::make_unique<openai_stream>(label_of(d), include_usage);
  }

  core::error translate_error(const config::deployment& d, int status, std::string_view body) const override {
    return upstream_error(status, body, label_of(d));
  }
};

}  // namespace

const adapter& openai_adapter() {
  static const openai_like a;
  return a;
}

namespace {

// The adapter of each wire format, indexed by config::wire_format.
struct wire_adapter {
  config::wire_format wire;
  const adapter& (*get)();
};
constexpr std::array<wire_adapter, config::wire_format_count> adapters_by_wire{{
    {config::wire_format::openai, &openai_adapter},
    {config::wire_format::azure, &openai_adapter},
    {config::wire_format::anthropic, &anthropic_adapter},
    {config::wire_format::ollama_generate, &ollama_adapter},
    {config::wire_format::ollama_chat, &ollama_adapter},
    {config::wire_format::gemini, &gemini_adapter},
    {config::wire_format::vertex, &vertex_adapter},
    {config::wire_format::bedrock, &bedrock_adapter},
    {config::wire_format::cohere, &cohere_adapter},
}};

constexpr bool every_wire_format_has_its_adapter() {
  for (std::size_t i = 0; i < adapters_by_wire.size(); ++i) {
    // A missing entry is value-initialized (wire 0 at a later index): caught here too.
    if (static_cast<std::size_t>(adapters_by_wire[i].wire) != i) {
      return false;
    }
  }
  return true;
}
static_assert(every_wire_format_has_its_adapter(),
              "adapters_by_wire needs one entry per config::wire_format, in the enum's order");

}  // namespace

const adapter& adapter_for(const config::provider_info& p) {
  return adapters_by_wire[static_cast<std::size_t>(p.wire)].get();
}

bool supports(const config::provider_info& p, call_type type) {
  switch (type) {
    case call_type::chat: return p.serves.chat;
    case call_type::messages: return p.serves.chat;
    case call_type::completion: return p.serves.completion;
    case call_type::embedding: return p.serves.embedding;
    case call_type::responses: return p.responses_api || p.serves.chat;  // else through chat
  }
  return false;
}

std::size_t first_event_end(config::stream_framing framing, std::string_view bytes) {
  switch (framing) {
    case config::stream_framing::ndjson: {
      const auto lf = bytes.find('\n');
      return lf == std::string_view::npos ? 0 : lf + 1;
    }
    case config::stream_framing::sse:
      // The first blank line: "\n\n" or "\n\r\n" (a lone-'\r' stream is merely not split).
      for (auto lf = bytes.find('\n'); lf != std::string_view::npos; lf = bytes.find('\n', lf + 1)) {
        auto next = lf + 1;
        if (next < bytes.size() && bytes[next] == '\r') {
          ++next;
        }
        if (next < bytes.size() && bytes[next] == '\n') {
          return next + 1;
        }
      }
      return 0;
    case config::stream_framing::aws_eventstream:
      return aws::first_message_end(bytes);
  }
  return 0;
}

}  // namespace switchyard::providers
