// The Cohere adapter (`cohere/<model>`, `cohere_chat/<model>`): OpenAI chat requests ->
// Cohere's v2 chat API (POST {api_base}/v2/chat, Bearer key), answers and its typed SSE
// stream -> OpenAI JSON.
//
// Decisions:
// - Messages keep OpenAI's shape (v2 takes system/user/assistant/tool roles, tool_calls and
//   tool_call_id as OpenAI does); content parts other than text are a 400 (v2 chat takes
//   images only on vision models, through a different part shape).
// - top_p -> p, stop -> stop_sequences, tool_choice "required" -> "REQUIRED", "none" ->
//   "NONE" ("auto" is Cohere's default and is not sent; a named function is a 400: v2
//   cannot force one tool). max_tokens / max_completion_tokens, temperature, seed,
//   frequency_penalty, presence_penalty pass through; response_format json_schema ->
//   {type: json_object, json_schema: <schema>} (v2's shape; text and json_object as
//   they are); n > 1, logprobs,
//   logit_bias and the other OpenAI-only parameters are a 400 naming the parameter, or
//   dropped with drop_params. Other fields (k, safety_mode, documents, ...) pass through.
// - finish_reason: COMPLETE / STOP_SEQUENCE -> stop, MAX_TOKENS -> length, TOOL_CALL ->
//   tool_calls, ERROR_TOXIC -> content_filter, other values -> stop.
// - Usage: usage.tokens (what the model read and wrote) when present, else
//   usage.billed_units.
// - The stream is complete at message-end; events after it and unknown event types are
//   ignored; a stream that ends before message-end is an error.
#include "adapter_util.hpp"
#include "cohere_stream.hpp"
#include "switchyard/core/ids.hpp"
#include "switchyard/providers/adapter.hpp"
#include "switchyard/providers/json_scan.hpp"
#include "switchyard/upstream/sse_parser.hpp"

#include <map>

namespace switchyard::providers {

namespace {

using detail::field;
using detail::string_field;
using json = nlohmann::json;

constexpr std::string_view label = "CohereException";
constexpr std::string_view provider = "cohere";

bool is_unsupported_openai_param(std::string_view k) {
  static constexpr std::string_view names[] = {
      "n",         "logprobs",     "top_logprobs",     "logit_bias",   "functions", "function_call",
      "modalities", "audio",       "prediction",       "service_tier", "store",     "web_search_options",
      "suffix",    "echo",         "best_of",          "prompt_cache_key", "safety_identifier", "verbosity",
      "parallel_tool_calls", "reasoning_effort", "user"};
  for (auto n : names) {
    if (n == k) {
      return true;
    }
  }
  return false;
}

bool is_client_option(std::string_view k) {
  return k == "extra_headers" || k == "extra_body" || k == "timeout" || k == "stream_timeout" || k == "tags" ||
         k == "guardrails" || k == "metadata";
}

core::result<json> convert_content(const json& c, const std::string& where) {
  if (c.is_null() || c.is_string()) {
    return detail::ok(c.is_null() ? json("") : c);
  }
  if (!c.is_array()) {
    return detail::bad_param(where + ".content must be a string or a list of content parts", where + ".content");
  }
  json parts = json::array();
  for (std::size_t j = 0; j < c.size(); ++j) {
    const json& p = c[j];
    std::string pw = where + ".content[" + std::to_string(j) + "]";
    if (!p.is_object() || string_field(p, "type") != "text") {
      return detail::bad_param(pw + ": cohere takes text content parts only", pw);
    }
    parts.push_back({{"type", "text"}, {"text", string_field(p, "text")}});
  }
  return detail::ok(std::move(parts));
}

core::result<json> convert_messages(const json& msgs) {
  if (!msgs.is_array()) {
    return detail::bad_param("messages must be a list", "messages");
  }
  json out = json::array();
  for (std::size_t i = 0; i < msgs.size(); ++i) {
    const json& m = msgs[i];
    std::string where = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) {
      return detail::bad_param(where + " must be an object", where);
    }
    auto role = string_field(m, "role");
    const json* content = field(m, "content");
    auto c = convert_content(content != nullptr ? *content : json(), where);
    if (!c) {
      return c.error();
    }
    if (role == "system" || role == "developer" || role == "user") {
      out.push_back({{"role", role == "developer" ? "system" : role}, {"content", std::move(*c)}});
    } else if (role == "assistant") {
      json msg = {{"role", "assistant"}};
      const json* calls = field(m, "tool_calls");
      if (calls != nullptr) {
        if (!calls->is_array()) {
          return detail::bad_param(where + ".tool_calls must be a list", where + ".tool_calls");
        }
        json tc = json::array();
        for (const auto& call : *calls) {
          const json* fn = call.is_object() ? field(call, "function") : nullptr;
          if (fn == nullptr || !fn->is_object()) {
            return detail::bad_param(where + ".tool_calls[].function is required", where + ".tool_calls");
          }
          const json* args = field(*fn, "arguments");
          tc.push_back({{"id", string_field(call, "id")},
                        {"type", "function"},
                        {"function",
                         {{"name", string_field(*fn, "name")},
                          {"arguments", args != nullptr && args->is_string() ? *args
                                                                             : json(args != nullptr ? detail::dump(*args)
                                                                                                    : "{}")}}}});
        }
        msg["tool_calls"] = std::move(tc);
        if (const auto& s = *c; !(s.is_string() && s.get_ref<const std::string&>().empty())) {
          msg["tool_plan"] = detail::content_text(s);
        }
      } else {
        msg["content"] = std::move(*c);
      }
      out.push_back(std::move(msg));
    } else if (role == "tool") {
      auto id = string_field(m, "tool_call_id");
      if (id.empty()) {
        return detail::bad_param(where + ".tool_call_id is required for tool messages", where + ".tool_call_id");
      }
      out.push_back({{"role", "tool"}, {"tool_call_id", id}, {"content", std::move(*c)}});
    } else {
      return detail::bad_param(where + ".role '" + std::string(role) + "' is not a chat role for cohere",
                               where + ".role");
    }
  }
  return detail::ok(std::move(out));
}

core::result<upstream_call> build_chat(call_type type, const config::deployment& d, const json& request,
                                       const build_options& opts) {
  if (type != call_type::chat && type != call_type::messages && type != call_type::responses) {
    return core::make_error(core::errc::bad_request, "cohere serves chat only", "model");
  }
  if (!request.is_object()) {
    return detail::bad_param("the request body must be a JSON object", "");
  }
  // The deployment's request defaults and drop lists first, so that a default is
  // translated like the client's own member (top_p -> p, stop -> stop_sequences).
  json storage;
  const json& body = detail::with_deployment_params(type, d, request, storage);
  const json* msgs = field(body, "messages");
  if (msgs == nullptr) {
    return detail::bad_param("messages is required", "messages");
  }
  json out = {{"model", d.upstream_model}};
  auto m = convert_messages(*msgs);
  if (!m) {
    return m.error();
  }
  out["messages"] = std::move(*m);
  for (auto it = body.begin(); it != body.end(); ++it) {
    const std::string& k = it.key();
    const json& v = it.value();
    if (is_gateway_field(k) || is_client_option(k) || v.is_null() || k == "model" || k == "messages" ||
        k == "stream" || k == "stream_options") {
      continue;
    }
    if (k == "max_tokens" || k == "max_completion_tokens") {
      if (!v.is_number_integer() || v.get<long long>() < 1) {
        return detail::bad_param(k + " must be a positive integer", k);
      }
      out["max_tokens"] = v;
    } else if (k == "top_p") {
      out["p"] = v;
    } else if (k == "stop") {
      json seqs = json::array();
      for (auto& s : detail::stop_list(v)) {
        seqs.push_back(std::move(s));
      }
      if (!seqs.empty()) {
        out["stop_sequences"] = std::move(seqs);
      }
    } else if (k == "tool_choice") {
      const std::string s = v.is_string() ? v.get<std::string>() : std::string();
      if (s == "required") {
        out["tool_choice"] = "REQUIRED";
      } else if (s == "none") {
        out["tool_choice"] = "NONE";
      } else if (s != "auto") {
        if (!opts.drop_params) {
          return detail::unsupported_param(provider, "tool_choice", d, "other than auto, required or none");
        }
      }
    } else if (k == "response_format") {
      // v2 takes {type: text} or {type: json_object, json_schema?}: OpenAI's json_schema
      // type becomes json_object with the schema.
      const auto type = string_field(v, "type");
      if (type == "json_schema") {
        json rf = {{"type", "json_object"}};
        const json* js = field(v, "json_schema");
        if (const json* schema = js != nullptr ? field(*js, "schema") : nullptr; schema != nullptr) {
          rf["json_schema"] = *schema;
        }
        out["response_format"] = std::move(rf);
      } else if (type == "json_object" || type == "text") {
        out["response_format"] = {{"type", type}};
      } else {
        return detail::bad_param("response_format.type must be text, json_object or json_schema", "response_format");
      }
    } else if (is_unsupported_openai_param(k)) {
      if (detail::is_noop_value(k, v) || opts.drop_params) {
        continue;
      }
      return detail::unsupported_param(provider, k, d);
    } else {
      out[k] = v;  // tools (OpenAI's shape), temperature, seed, penalties, k, ...
    }
  }
  if (opts.stream) {
    out["stream"] = true;
  }
  upstream_call call;
  std::string base = detail::base_of(d);
  if (base.empty()) {
    return detail::missing_api_base(d);
  }
  auto ends_with = [&](std::string_view s) {
    return base.size() >= s.size() && std::string_view(base).substr(base.size() - s.size()) == s;
  };
  call.url = ends_with("/v2/chat") ? base : (ends_with("/v2") ? base + "/chat" : base + "/v2/chat");
  if (!d.api_key.empty()) {
    call.headers.emplace_back("authorization", "Bearer " + d.api_key);
  }
  call.headers.emplace_back("content-type", "application/json");
  call.headers.emplace_back("accept", opts.stream ? "text/event-stream" : "application/json");
  for (const auto& [k, v] : d.extra_headers) {
    call.headers.emplace_back(k, v);
  }
  call.body = detail::dump(out);
  return call;
}

std::string finish_reason_of(std::string_view r) {
  if (r == "MAX_TOKENS") {
    return "length";
  }
  if (r == "TOOL_CALL") {
    return "tool_calls";
  }
  if (r == "ERROR_TOXIC") {
    return "content_filter";
  }
  return "stop";
}

// Cohere usage: tokens (what the model processed) else billed_units.
usage usage_of_cohere(const json& u) {
  const json* t = field(u, "tokens");
  if (t == nullptr || !t->is_object()) {
    t = field(u, "billed_units");
  }
  if (t == nullptr || !t->is_object()) {
    return {};
  }
  return detail::usage_value(detail::token_count(*t, "input_tokens"), detail::token_count(*t, "output_tokens"));
}

json usage_json_of(const usage& u) {
  return detail::usage_json(u.prompt_tokens, u.completion_tokens);
}

core::result<translated_response> translate_chat(std::string_view body, std::string_view model) {
  json j = detail::parse_bounded(body);
  if (j.is_discarded() || !j.is_object()) {
    return detail::malformed_upstream(label, "the provider returned a response that is not valid JSON");
  }
  const json* msg = field(j, "message");
  if (msg == nullptr || !msg->is_object()) {
    return detail::malformed_upstream(label, "the provider's response has no message");
  }
  std::string text;
  if (const json* content = field(*msg, "content"); content != nullptr && content->is_array()) {
    for (const auto& part : *content) {
      if (part.is_object() && string_field(part, "type") == "text") {
        text += string_field(part, "text");
      }
    }
  }
  json tool_calls = json::array();
  if (const json* calls = field(*msg, "tool_calls"); calls != nullptr && calls->is_array()) {
    for (const auto& c : *calls) {
      const json* fn = c.is_object() ? field(c, "function") : nullptr;
      if (fn == nullptr || !fn->is_object()) {
        return detail::malformed_upstream(label, "a tool call without a function");
      }
      const json* args = field(*fn, "arguments");
      tool_calls.push_back({{"id", string_field(c, "id")},
                            {"type", "function"},
                            {"function",
                             {{"name", string_field(*fn, "name")},
                              {"arguments", args != nullptr && args->is_string() ? *args : json("{}")}}}});
    }
  }
  usage tokens;
  if (const json* u = field(j, "usage"); u != nullptr && u->is_object()) {
    tokens = usage_of_cohere(*u);
  }
  std::string id(string_field(j, "id"));
  json out = {{"id", id.empty() ? "chatcmpl-" + core::uuid4() : id},
              {"object", "chat.completion"},
              {"created", detail::unix_now()},
              {"model", model}};
  json m = {{"role", "assistant"}};
  m["content"] = (text.empty() && !tool_calls.empty()) ? json(nullptr) : json(text);
  if (!tool_calls.empty()) {
    m["tool_calls"] = std::move(tool_calls);
  }
  out["choices"] = json::array({{{"index", 0},
                                 {"message", std::move(m)},
                                 {"logprobs", nullptr},
                                 {"finish_reason", finish_reason_of(string_field(j, "finish_reason"))}}});
  out["usage"] = usage_json_of(tokens);
  translated_response r;
  r.body = detail::dump(out);
  r.tokens = tokens;
  return r;
}

// Plain events, without a DOM. Nearly every event of an answer is message-start (its id),
// content-start, a content-delta with one piece of text, content-end, or message-end with
// its finish_reason and usage counts. Those are read from a scan of the event's data
// (scan_json validates it as the DOM's parser would, then a walk over the valid text reads
// what the translation uses) and written by the same chunk_writer calls with the same
// decoded text: the very bytes of the DOM reading. What the reading cannot vouch for leaves
// the event to the DOM before anything is changed: a member it does not know at any level
// it reads, a duplicate one, a value of another kind than it reads (a null, a fraction, a
// string count ...), a key with an escape below the top level, an empty text, an ERROR
// finish or an error message, tool calls, tool plans, citations and any other event type.
using detail::each_member;
using detail::kind_of;
using detail::plain_count;
using detail::text_of;
using walk = detail::valid_json_walk;

enum class plain_kind : std::uint8_t { message_start, content_start, content_delta, content_end, message_end };

std::optional<plain_kind> plain_kind_of(std::string_view type) {
  if (type == "content-delta") {
    return plain_kind::content_delta;
  }
  if (type == "message-start") {
    return plain_kind::message_start;
  }
  if (type == "content-start") {
    return plain_kind::content_start;
  }
  if (type == "content-end") {
    return plain_kind::content_end;
  }
  if (type == "message-end") {
    return plain_kind::message_end;
  }
  return std::nullopt;
}

struct plain_event {
  std::string_view id;      // message-start: the id literal, if any
  std::string_view text;    // content-delta: the text literal
  std::string_view reason;  // message-end: the finish_reason literal, if any
  bool has_usage = false;
  bool has_tokens = false;  // usage.tokens
  bool has_billed = false;  // usage.billed_units
  long long tokens[2] = {};  // input_tokens, output_tokens
  long long billed[2] = {};
};

// Reads the members of the object at `w` with f(key, w); false (and the DOM reads the event)
// on a duplicate key or when f refuses one. At most 8 distinct keys.
template <typename F>
bool each_unique_member(walk& w, F&& f) {
  std::string_view seen[8];
  std::size_t n = 0;
  return each_member(w, [&](std::string_view key, walk& v) {
    for (std::size_t i = 0; i < n; ++i) {
      if (seen[i] == key) {
        return false;
      }
    }
    if (n == std::size(seen)) {
      return false;
    }
    seen[n++] = key;
    return f(key, v);
  });
}

// {input_tokens, output_tokens} as plain whole numbers.
bool plain_counts(walk& w, long long (&counts)[2]) {
  return each_unique_member(w, [&](std::string_view key, walk& v) {
    const int i = key == "input_tokens" ? 0 : key == "output_tokens" ? 1 : -1;
    const auto count = i >= 0 ? plain_count(v.value()) : std::nullopt;
    if (!count) {
      return false;
    }
    counts[i] = *count;
    return true;
  });
}

// message-end's delta: {finish_reason, usage: {billed_units, tokens}}.
bool plain_end(walk& w, plain_event& e) {
  return each_unique_member(w, [&](std::string_view key, walk& v) {
    if (key == "finish_reason") {
      // ERROR (the DOM answers it with an error), perhaps written with an escape: the DOM's.
      const std::string_view value = v.value();
      if (kind_of(value) != json_kind::string || value == R"("ERROR")" ||
          value.find('\\') != std::string_view::npos) {
        return false;
      }
      e.reason = value;
      return true;
    }
    if (key != "usage" || detail::next_kind(v) != json_kind::object) {
      return false;
    }
    e.has_usage = true;
    return each_unique_member(v, [&](std::string_view k, walk& u) {
      if (detail::next_kind(u) != json_kind::object) {
        return false;
      }
      if (k == "tokens") {
        e.has_tokens = true;
        return plain_counts(u, e.tokens);
      }
      if (k == "billed_units") {
        e.has_billed = true;
        return plain_counts(u, e.billed);
      }
      return false;
    });
  });
}

// content-delta's delta: {message: {content: {text}}}, the text a non-empty string.
bool plain_delta(walk& w, plain_event& e) {
  auto only = [](std::string_view name, auto&& inner) {
    return [name, &inner](std::string_view key, walk& v) {
      return key == name && detail::next_kind(v) == json_kind::object && inner(v);
    };
  };
  auto text = [&](walk& v) {
    return each_unique_member(v, [&](std::string_view key, walk& t) {
      const std::string_view value = t.value();
      if (key != "text" || kind_of(value) != json_kind::string || value == R"("")") {
        return false;
      }
      e.text = value;
      return true;
    });
  };
  auto content = [&](walk& v) { return each_unique_member(v, only("content", text)); };
  return each_unique_member(w, only("message", content)) && !e.text.empty();
}

class cohere_stream final : public stream_translator {
 public:
  cohere_stream(std::string_view model, bool include_usage, stream_reading reading)
      : writer_("chatcmpl-" + core::uuid4(), detail::unix_now(), std::string(model), false),
        include_usage_(include_usage),
        reading_(reading) {}

  core::result<void> feed(std::string_view bytes, std::vector<std::string>& payloads) override {
    if (failure_) {
      return *failure_;
    }
    events_.clear();
    parser_.feed(bytes, events_);
    for (auto& ev : events_) {
      if (ended_) {
        break;
      }
      core::result<void> r;
      try {
        r = on_event(ev, payloads);
      } catch (const json::exception&) {
        r = detail::malformed_upstream(label, "the provider sent a stream event this gateway cannot read");
      }
      if (!r) {
        failure_ = r.error();
        return r;
      }
    }
    if (parser_.pending() > detail::max_pending_stream_bytes) {
      failure_ = detail::malformed_upstream(label, "the provider sent an oversized stream event");
      return *failure_;
    }
    return {};
  }

  core::result<void> finish(std::vector<std::string>& payloads) override {
    if (failure_) {
      return *failure_;
    }
    if (!ended_) {
      failure_ = detail::malformed_upstream(label, "the stream ended before message-end (stream cut)");
      return *failure_;
    }
    if (include_usage_) {
      writer_.usage_chunk(usage_json_of(usage_), payloads);
    }
    return {};
  }

  const usage& tokens() const override { return usage_; }

 private:
  void ensure_started(std::vector<std::string>& out) {
    if (!started_) {
      started_ = true;
      writer_.role(out);
    }
  }

  static long long index_of(const json& j) {
    const json* i = field(j, "index");
    return (i != nullptr && i->is_number_integer()) ? i->get<long long>() : 0;
  }

  static const json* delta_message(const json& j) {
    const json* d = field(j, "delta");
    return d != nullptr && d->is_object() ? field(*d, "message") : nullptr;
  }

  core::result<void> on_event(const upstream::sse_parser::event& ev, std::vector<std::string>& out) {
    if (ev.data.find_first_not_of(" \t\r\n") == std::string::npos) {
      return {};
    }
    if (!reading_.dom_only && plain(ev, out)) {
      if (reading_.scanned != nullptr) {
        ++*reading_.scanned;
      }
      return {};
    }
    json j = detail::parse_bounded(ev.data);
    if (j.is_discarded() || !j.is_object()) {
      return detail::malformed_upstream(label, "the provider sent a stream event that is not valid JSON");
    }
    std::string_view type = string_field(j, "type");
    if (type.empty()) {
      type = ev.event;
    }
    if (type == "message-start") {
      if (auto id = string_field(j, "id"); !id.empty()) {
        writer_.set_id(std::string(id));
      }
      ensure_started(out);
    } else if (type == "content-delta") {
      ensure_started(out);
      const json* m = delta_message(j);
      const json* c = m != nullptr ? field(*m, "content") : nullptr;
      if (c != nullptr && c->is_object()) {
        if (auto t = string_field(*c, "text"); !t.empty()) {
          writer_.content(t, out);
        }
      }
    } else if (type == "tool-call-start") {
      ensure_started(out);
      const json* m = delta_message(j);
      const json* tc = m != nullptr ? field(*m, "tool_calls") : nullptr;
      if (tc == nullptr || !tc->is_object()) {
        return detail::malformed_upstream(label, "tool-call-start without delta.message.tool_calls");
      }
      const json* fn = field(*tc, "function");
      const int index = tool_count_++;
      tools_[index_of(j)] = index;
      std::string id(string_field(*tc, "id"));
      if (id.empty()) {
        id = "call_" + core::random_hex(12);
      }
      writer_.tool_call(index, id, fn != nullptr ? string_field(*fn, "name") : std::string_view{},
                        fn != nullptr ? string_field(*fn, "arguments") : std::string_view{}, out);
    } else if (type == "tool-call-delta") {
      ensure_started(out);
      auto it = tools_.find(index_of(j));
      if (it == tools_.end()) {
        return detail::malformed_upstream(label, "tool-call-delta for a tool call that was not started");
      }
      const json* m = delta_message(j);
      const json* tc = m != nullptr ? field(*m, "tool_calls") : nullptr;
      const json* fn = tc != nullptr && tc->is_object() ? field(*tc, "function") : nullptr;
      if (fn != nullptr) {
        if (auto args = string_field(*fn, "arguments"); !args.empty()) {
          writer_.tool_call(it->second, "", "", args, out);
        }
      }
    } else if (type == "message-end") {
      ensure_started(out);
      const json* d = field(j, "delta");
      std::string_view reason;
      std::string_view error;
      if (d != nullptr && d->is_object()) {
        reason = string_field(*d, "finish_reason");
        error = string_field(*d, "error");
        if (const json* u = field(*d, "usage"); u != nullptr && u->is_object()) {
          usage_ = usage_of_cohere(*u);
        }
      }
      if (reason == "ERROR") {
        std::string what = error.empty() ? "the model stopped with finish_reason ERROR" : std::string(error);
        return upstream_error(500, json{{"message", what}}.dump(), label);
      }
      writer_.finish(finish_reason_of(reason), out);
      ended_ = true;
    }
    // content-start, content-end, tool-plan-delta, tool-call-end, citation events and
    // newer types carry nothing OpenAI's chunks have.
    return {};
  }

  // A plain event (see plain_event) translated as on_event's DOM reading translates it.
  // False, and nothing changed, for any other.
  bool plain(const upstream::sse_parser::event& ev, std::vector<std::string>& out) {
    if (!scan_json(ev.data, scan_, max_json_depth) || scan_.root != json_kind::object) {
      return false;
    }
    // The type: the data's own (a string), else the SSE event's name (on_event's rule).
    std::string_view type = ev.event;
    if (const json_member* t = scan_.find("type"); t != nullptr) {
      if (t->kind != json_kind::string) {
        return false;
      }
      if (t->value != R"("")") {
        type = text_of(t->value, decoded_type_);
      }
    }
    const auto kind = plain_kind_of(type);
    if (!kind) {
      return false;
    }
    plain_ = plain_event{};
    const auto& members = scan_.members;
    for (std::size_t i = 0; i < members.size(); ++i) {
      const json_member& m = members[i];
      for (std::size_t k = 0; k < i; ++k) {
        if (members[k].key == m.key) {
          return false;  // a duplicate
        }
      }
      if (m.key == "type" || (m.key == "index" && *kind != plain_kind::message_start)) {
        continue;  // index: not read (one choice)
      }
      if (m.key == "id" && *kind == plain_kind::message_start) {
        if (m.kind != json_kind::string) {
          return false;
        }
        plain_.id = m.value;
        continue;
      }
      if (m.key != "delta" || *kind == plain_kind::content_end || m.kind != json_kind::object) {
        return false;
      }
      walk w{m.value};
      if (*kind == plain_kind::content_delta ? !plain_delta(w, plain_)
                                             : *kind == plain_kind::message_end && !plain_end(w, plain_)) {
        return false;
      }
      // message-start's and content-start's delta: not read
    }
    if (*kind == plain_kind::content_delta && plain_.text.empty()) {
      return false;  // no delta: the DOM reads it (and writes nothing but the role)
    }
    switch (*kind) {
      case plain_kind::message_start:
        if (!plain_.id.empty() && plain_.id != R"("")") {
          writer_.set_id(std::string(text_of(plain_.id, decoded_)));
        }
        ensure_started(out);
        break;
      case plain_kind::content_delta:
        ensure_started(out);
        writer_.content(text_of(plain_.text, decoded_), out);
        break;
      case plain_kind::content_start:
      case plain_kind::content_end: break;
      case plain_kind::message_end: {
        ensure_started(out);
        if (plain_.has_usage) {
          const long long* c = plain_.has_tokens ? plain_.tokens : plain_.has_billed ? plain_.billed : nullptr;
          usage_ = c != nullptr ? detail::usage_value(c[0], c[1]) : usage{};
        }
        const std::string_view reason = plain_.reason.empty() ? std::string_view{} : text_of(plain_.reason, decoded_);
        writer_.finish(finish_reason_of(reason), out);
        ended_ = true;
        break;
      }
    }
    return true;
  }

  detail::chunk_writer writer_;
  bool include_usage_;
  stream_reading reading_;
  json_scan scan_;  // plain events' scans and readings, reused across events
  plain_event plain_;
  std::string decoded_;
  std::string decoded_type_;
  upstream::sse_parser parser_;
  std::vector<upstream::sse_parser::event> events_;
  std::map<long long, int> tools_;
  usage usage_;
  std::optional<core::error> failure_;
  int tool_count_ = 0;
  bool started_ = false;
  bool ended_ = false;
};

class cohere_chat final : public adapter {
 public:
  core::result<upstream_call> build(call_type type, const config::deployment& d, const json& body,
                                    const build_options& opts) const override {
    try {
      return build_chat(type, d, body, opts);
    } catch (const json::exception& e) {
      return detail::bad_param(std::string("could not translate the request for cohere: ") + e.what(), "");
    }
  }

  core::result<translated_response> translate_response(call_type, const config::deployment&, std::string_view body,
                                                       std::string_view model) const override {
    try {
      return translate_chat(body, model);
    } catch (const json::exception& e) {
      return detail::malformed_upstream(label, std::string("unreadable response: ") + e.what());
    }
  }

  std::unique_ptr<stream_translator> make_stream(call_type, const config::deployment&, std::string_view model,
                                                 bool include_usage) const override {
    return std::make_unique<cohere_stream>(model, include_usage, stream_reading{});
  }

  // Cohere's errors are {"message": ...} with the HTTP status (400, 401, 402, 404, 422,
  // 429, 499, 500, 503): kept as they are.
  core::error translate_error(const config::deployment&, int status, std::string_view body) const override {
    return upstream_error(status, body, label);
  }
};

}  // namespace

const adapter& cohere_adapter() {
  static const cohere_chat a;
  return a;
}

std::unique_ptr<stream_translator> make_cohere_stream(std::string_view model, bool include_usage,
                                                      stream_reading reading) {
  return std::make_unique<cohere_stream>(model, include_usage, reading);
}

}  // namespace switchyard::providers
