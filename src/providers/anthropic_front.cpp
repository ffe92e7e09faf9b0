// Anthropic Messages as a front door: errors, the request to OpenAI chat, the answer and
// stream back, the pass-through to Anthropic deployments. See anthropic_front.hpp.
//
// Decisions:
// - Tool results come first in an Anthropic user turn; OpenAI wants each tool message
//   right after the assistant turn that called it, so tool_result blocks become tool
//   messages ahead of the rest of that user turn.
// - A tool_result's content: a string, or its text blocks joined with "\n"; an image
//   inside a tool result has no OpenAI place and is a 400.
// - Tool call arguments that are not a JSON object come back as an empty input ({}),
//   as Anthropic's SDKs would fail to read anything else.
// - An answer with neither text nor tool calls gets one empty text block, so
//   `content[0].text` always reads.
#include "switchyard/providers/anthropic_front.hpp"

#include "adapter_util.hpp"
#include "switchyard/core/ids.hpp"
#include "switchyard/providers/adapter.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <charconv>

namespace switchyard::providers::anthropic_front {

using json = nlohmann::json;
using detail::field;
using detail::string_field;

namespace {

constexpr std::string_view label = "AnthropicException";

struct error_kind {
  int status;
  std::string_view type;
};
constexpr error_kind error_kinds[] = {
    {400, "invalid_request_error"}, {401, "authentication_error"}, {402, "billing_error"},
    {403, "permission_error"},      {404, "not_found_error"},      {413, "request_too_large"},
    {429, "rate_limit_error"},      {500, "api_error"},            {504, "timeout_error"},
    {529, "overloaded_error"},
};

core::error bad(std::string message, std::string param) { return detail::bad_param(std::move(message), std::move(param)); }

std::string at(std::size_t i) { return "messages[" + std::to_string(i) + "]"; }

// The text of a string or of a list of blocks (text blocks joined with "\n").
core::result<std::string> text_of(const json& content, const std::string& where, bool allow_images) {
  if (content.is_null()) {
    return std::string();
  }
  if (content.is_string()) {
    return content.get<std::string>();
  }
  if (!content.is_array()) {
    return bad(where + " must be a string or a list of content blocks", where);
  }
  std::string out;
  for (std::size_t j = 0; j < content.size(); ++j) {
    const json& b = content[j];
    auto type = b.is_object() ? string_field(b, "type") : std::string_view{};
    if (type == "text") {
      if (!out.empty()) {
        out += "\n";
      }
      out += string_field(b, "text");
    } else if (type == "image" && allow_images) {
      continue;
    } else {
      return bad(where + "[" + std::to_string(j) + "]: a block of type '" + std::string(type) +
                     "' cannot be sent to this deployment here (only text)",
                 where);
    }
  }
  return out;
}

// An Anthropic image block -> an OpenAI image_url part.
core::result<json> image_part(const json& b, const std::string& where) {
  const json* src = field(b, "source");
  if (src == nullptr || !src->is_object()) {
    return bad(where + ".source is required", where + ".source");
  }
  auto st = string_field(*src, "type");
  std::string url;
  if (st == "base64") {
    url = "data:" + std::string(string_field(*src, "media_type")) + ";base64," + std::string(string_field(*src, "data"));
  } else if (st == "url") {
    url = std::string(string_field(*src, "url"));
  } else {
    return bad(where + ".source.type must be base64 or url for this deployment", where + ".source.type");
  }
  return detail::ok(json{{"type", "image_url"}, {"image_url", {{"url", std::move(url)}}}});
}

// An Anthropic document block -> an OpenAI file part (base64 PDF) or text.
core::result<json> document_part(const json& b, const std::string& where) {
  const json* src = field(b, "source");
  if (src != nullptr && src->is_object()) {
    auto st = string_field(*src, "type");
    if (st == "base64") {
      return detail::ok(json{{"type", "file"},
                             {"file",
                              {{"file_data", "data:" + std::string(string_field(*src, "media_type")) + ";base64," +
                                                 std::string(string_field(*src, "data"))}}}});
    }
    if (st == "text") {
      return detail::ok(json{{"type", "text"}, {"text", string_field(*src, "data")}});
    }
  }
  return bad(where + ": documents must have a base64 or text source for this deployment", where + ".source");
}

// One Anthropic turn -> OpenAI messages appended to `out`.
core::result<void> convert_turn(const json& m, std::size_t i, json& out) {
  const std::string where = at(i);
  if (!m.is_object()) {
    return bad(where + " must be an object", where);
  }
  auto role = string_field(m, "role");
  if (role != "user" && role != "assistant") {
    return bad(where + ".role must be \"user\" or \"assistant\"", where + ".role");
  }
  const json* content = field(m, "content");
  if (content == nullptr) {
    return bad(where + ".content is required", where + ".content");
  }
  if (content->is_string()) {
    out.push_back({{"role", role}, {"content", *content}});
    return {};
  }
  if (!content->is_array()) {
    return bad(where + ".content must be a string or a list of content blocks", where + ".content");
  }
  json parts = json::array();
  json tool_calls = json::array();
  std::string assistant_text;
  for (std::size_t j = 0; j < content->size(); ++j) {
    const json& b = (*content)[j];
    const std::string bw = where + ".content[" + std::to_string(j) + "]";
    if (!b.is_object()) {
      return bad(bw + " must be an object", bw);
    }
    auto type = string_field(b, "type");
    if (type == "text") {
      const json* t = field(b, "text");
      if (t == nullptr || !t->is_string()) {
        return bad(bw + ".text must be a string", bw + ".text");
      }
      if (role == "assistant") {
        assistant_text += t->get_ref<const std::string&>();
      } else {
        parts.push_back({{"type", "text"}, {"text", *t}});
      }
    } else if (type == "image" && role == "user") {
      auto p = image_part(b, bw);
      if (!p) {
        return p.error();
      }
      parts.push_back(std::move(*p));
    } else if (type == "document" && role == "user") {
      auto p = document_part(b, bw);
      if (!p) {
        return p.error();
      }
      parts.push_back(std::move(*p));
    } else if (type == "tool_result" && role == "user") {
      auto id = string_field(b, "tool_use_id");
      if (id.empty()) {
        return bad(bw + ".tool_use_id is required", bw + ".tool_use_id");
      }
      const json* c = field(b, "content");
      auto text = text_of(c != nullptr ? *c : json(), bw + ".content", false);
      if (!text) {
        return text.error();
      }
      const json* is_error = field(b, "is_error");
      if (is_error != nullptr && is_error->is_boolean() && is_error->get<bool>()) {
        *text = "Error: " + *text;
      }
      out.push_back({{"role", "tool"}, {"tool_call_id", id}, {"content", std::move(*text)}});
    } else if (type == "tool_use" && role == "assistant") {
      auto id = string_field(b, "id");
      auto name = string_field(b, "name");
      if (id.empty() || name.empty()) {
        return bad(bw + ": tool_use needs an id and a name", bw);
      }
      const json* input = field(b, "input");
      tool_calls.push_back({{"id", id},
                            {"type", "function"},
                            {"function", {{"name", name}, {"arguments", input != nullptr ? detail::dump(*input) : "{}"}}}});
    } else if (type == "thinking" || type == "redacted_thinking") {
      continue;  // earlier reasoning: no OpenAI request field carries it
    } else {
      return bad(bw + ": content blocks of type '" + std::string(type) + "' in a " + std::string(role) +
                     " turn can only be sent to an Anthropic deployment",
                 bw + ".type");
    }
  }
  if (role == "assistant") {
    if (assistant_text.empty() && tool_calls.empty()) {
      return {};  // only thinking: nothing to send
    }
    json msg = {{"role", "assistant"}};
    msg["content"] = assistant_text.empty() && !tool_calls.empty() ? json(nullptr) : json(assistant_text);
    if (!tool_calls.empty()) {
      msg["tool_calls"] = std::move(tool_calls);
    }
    out.push_back(std::move(msg));
    return {};
  }
  if (parts.empty()) {
    return {};  // only tool results
  }
  if (parts.size() == 1 && parts[0]["type"] == "text") {
    out.push_back({{"role", "user"}, {"content", parts[0]["text"]}});
  } else {
    out.push_back({{"role", "user"}, {"content", std::move(parts)}});
  }
  return {};
}

core::result<json> convert_tools(const json& tools) {
  if (!tools.is_array()) {
    return bad("tools must be a list", "tools");
  }
  json out = json::array();
  for (std::size_t i = 0; i < tools.size(); ++i) {
    const json& t = tools[i];
    const std::string where = "tools[" + std::to_string(i) + "]";
    if (!t.is_object()) {
      return bad(where + " must be an object", where);
    }
    auto type = string_field(t, "type");
    if (!type.empty() && type != "custom") {
      return bad(where + ": the server tool '" + std::string(type) + "' can only be sent to an Anthropic deployment",
                 where + ".type");
    }
    auto name = string_field(t, "name");
    if (name.empty()) {
      return bad(where + ".name is required", where + ".name");
    }
    json fn = {{"name", name}};
    if (auto desc = string_field(t, "description"); !desc.empty()) {
      fn["description"] = desc;
    }
    const json* schema = field(t, "input_schema");
    if (schema != nullptr && !schema->is_object()) {
      return bad(where + ".input_schema must be an object", where + ".input_schema");
    }
    fn["parameters"] = schema != nullptr ? *schema : json{{"type", "object"}, {"properties", json::object()}};
    out.push_back({{"type", "function"}, {"function", std::move(fn)}});
  }
  return detail::ok(std::move(out));
}

// tool_choice -> OpenAI's; sets parallel_tool_calls from disable_parallel_tool_use.
core::result<void> convert_tool_choice(const json& tc, json& out) {
  if (!tc.is_object()) {
    return bad("tool_choice must be an object with a type", "tool_choice");
  }
  auto type = string_field(tc, "type");
  if (type == "auto") {
    out["tool_choice"] = "auto";
  } else if (type == "any") {
    out["tool_choice"] = "required";
  } else if (type == "none") {
    out["tool_choice"] = "none";
  } else if (type == "tool") {
    auto name = string_field(tc, "name");
    if (name.empty()) {
      return bad("tool_choice.name is required with type \"tool\"", "tool_choice.name");
    }
    out["tool_choice"] = {{"type", "function"}, {"function", {{"name", name}}}};
  } else {
    return bad("tool_choice.type must be auto, any, tool or none", "tool_choice.type");
  }
  const json* dp = field(tc, "disable_parallel_tool_use");
  if (dp != nullptr && dp->is_boolean() && dp->get<bool>() && type != "none") {
    out["parallel_tool_calls"] = false;
  }
  return {};
}

// A member of a JSON object's bytes, as a long long (0 when absent or not an integer).
long long int_member(const json_scan& s, std::string_view key) {
  const auto* m = s.find(key);
  if (m == nullptr || m->kind != json_kind::number) {
    return 0;
  }
  long long v = 0;
  auto [p, ec] = std::from_chars(m->value.data(), m->value.data() + m->value.size(), v);
  if (ec != std::errc() || v < 0) {
    return 0;
  }
  (void)p;
  return std::min(v, 1'000'000'000'000'000LL);
}

// usage_of() with every count clamped (non-negative, at most 1e15): numbers from outside
// never overflow a cast or a sum.
usage usage_in(const json& obj) {
  const json* u = obj.is_object() ? field(obj, "usage") : nullptr;
  if (u == nullptr || !u->is_object()) {
    return {};
  }
  return usage_from([&](std::string_view object, std::string_view key) -> long long {
    const json* o = u;
    if (!object.empty()) {
      o = field(*u, object);
      if (o == nullptr || !o->is_object()) {
        return 0;
      }
    }
    return detail::token_count(*o, key);
  });
}

usage usage_value(long long input, long long cache_read, long long cache_creation, long long output) {
  usage u;
  u.prompt_tokens = input + cache_read + cache_creation;
  u.completion_tokens = output;
  u.total_tokens = u.prompt_tokens + output;
  u.cached_tokens = cache_read;
  u.cache_creation_tokens = cache_creation;
  u.known = true;
  return u;
}

}  // namespace

// ---- errors -----------------------------------------------------------------

std::string_view error_type_of(int status) {
  if (status == 408) {
    return "timeout_error";
  }
  for (const auto& k : error_kinds) {
    if (k.status == status) {
      return k.type;
    }
  }
  return status >= 500 ? "api_error" : "invalid_request_error";
}

int status_of_error_type(std::string_view type) {
  for (const auto& k : error_kinds) {
    if (k.type == type) {
      return k.status;
    }
  }
  return 500;
}

std::string error_body(const core::error& e) {
  std::string out = R"({"type":"error","error":{"type":")";
  out += error_type_of(e.status);
  out += R"(","message":)";
  append_json_string(out, e.message);
  out += "}}";
  return out;
}

std::string error_event(const core::error& e) { return "event: error\ndata: " + error_body(e) + "\n\n"; }

// ---- request ----------------------------------------------------------------

core::result<json> to_chat_request(const json& body) {
  if (!body.is_object()) {
    return bad("the request body must be a JSON object", "");
  }
  json out = json::object();
  json messages = json::array();
  if (const json* sys = field(body, "system")) {
    auto text = text_of(*sys, "system", false);
    if (!text) {
      return text.error();
    }
    if (!text->empty()) {
      messages.push_back({{"role", "system"}, {"content", std::move(*text)}});
    }
  }
  const json* msgs = field(body, "messages");
  if (msgs == nullptr || !msgs->is_array()) {
    return bad("messages is required and must be a list", "messages");
  }
  for (std::size_t i = 0; i < msgs->size(); ++i) {
    if (auto r = convert_turn((*msgs)[i], i, messages); !r) {
      return r.error();
    }
  }
  out["messages"] = std::move(messages);
  for (auto it = body.begin(); it != body.end(); ++it) {
    const std::string& k = it.key();
    const json& v = it.value();
    if (v.is_null() || k == "messages" || k == "system") {
      continue;
    }
    if (k == "model" || k == "temperature" || k == "top_p") {
      out[k] = v;
    } else if (k == "stream") {
      if (!v.is_boolean()) {
        return bad("stream must be a boolean", "stream");
      }
      out[k] = v;
    } else if (k == "max_tokens") {
      if (!v.is_number_integer() || v.get<long long>() < 1) {
        return bad("max_tokens must be a positive integer", "max_tokens");
      }
      out[k] = v;
    } else if (k == "stop_sequences") {
      if (!v.is_array()) {
        return bad("stop_sequences must be a list of strings", "stop_sequences");
      }
      json stop = json::array();
      for (const auto& s : v) {
        if (!s.is_string()) {
          return bad("stop_sequences must be a list of strings", "stop_sequences");
        }
        stop.push_back(s);
      }
      if (!stop.empty()) {
        out["stop"] = std::move(stop);
      }
    } else if (k == "tools") {
      auto t = convert_tools(v);
      if (!t) {
        return t.error();
      }
      if (!t->empty()) {
        out["tools"] = std::move(*t);
      }
    } else if (k == "tool_choice") {
      if (auto r = convert_tool_choice(v, out); !r) {
        return r.error();
      }
    } else if (k == "metadata") {
      if (v.is_object()) {
        if (auto u = string_field(v, "user_id"); !u.empty()) {
          out["user"] = u;
        }
      }
    } else if (is_gateway_field(k)) {
      out[k] = v;  // the pipeline's (mock_response, fallbacks, ...); adapters drop them
    }
    // thinking, top_k, service_tier, container, mcp_servers, ...: Anthropic's only.
  }
  if (out.contains("tool_choice") && !out.contains("tools")) {
    out.erase("parallel_tool_calls");
    if (out["tool_choice"] == "none" || out["tool_choice"] == "auto") {
      out.erase("tool_choice");  // changes nothing without tools; OpenAI rejects it alone
    }
  }
  return detail::ok(std::move(out));
}

// ---- answer -----------------------------------------------------------------

std::string_view stop_reason_of(std::string_view finish_reason) {
  if (finish_reason == "length") {
    return "max_tokens";
  }
  if (finish_reason == "tool_calls" || finish_reason == "function_call") {
    return "tool_use";
  }
  if (finish_reason == "content_filter") {
    return "refusal";
  }
  return "end_turn";
}

json usage_json(const usage& u) {
  const long long input = std::max(0LL, u.prompt_tokens - u.cached_tokens - u.cache_creation_tokens);
  return json{{"input_tokens", input},
              {"cache_creation_input_tokens", u.cache_creation_tokens},
              {"cache_read_input_tokens", u.cached_tokens},
              {"output_tokens", u.completion_tokens}};
}

core::result<std::string> to_messages_response(std::string_view chat_json, std::string_view model) {
  json j = detail::parse_bounded(chat_json);
  const json* choices = j.is_object() ? field(j, "choices") : nullptr;
  if (choices == nullptr || !choices->is_array() || choices->empty() || !(*choices)[0].is_object()) {
    return detail::malformed_upstream(label, "the provider's answer is not a chat completion");
  }
  const json& c0 = (*choices)[0];
  const json* msg = field(c0, "message");
  json content = json::array();
  bool tools = false;
  if (msg != nullptr && msg->is_object()) {
    if (auto r = string_field(*msg, "reasoning_content"); !r.empty()) {
      content.push_back({{"type", "thinking"}, {"thinking", r}, {"signature", ""}});
    }
    if (auto t = string_field(*msg, "content"); !t.empty()) {
      content.push_back({{"type", "text"}, {"text", t}});
    }
    if (const json* calls = field(*msg, "tool_calls"); calls != nullptr && calls->is_array()) {
      for (const auto& call : *calls) {
        const json* fn = call.is_object() ? field(call, "function") : nullptr;
        if (fn == nullptr || !fn->is_object()) {
          continue;
        }
        json input = detail::parse_bounded(string_field(*fn, "arguments"));
        if (input.is_discarded() || !input.is_object()) {
          input = json::object();
        }
        std::string id(string_field(call, "id"));
        if (id.empty()) {
          id = "toolu_" + core::random_hex(12);
        }
        content.push_back({{"type", "tool_use"}, {"id", id}, {"name", string_field(*fn, "name")}, {"input", input}});
        tools = true;
      }
    }
  }
  if (content.empty()) {
    content.push_back({{"type", "text"}, {"text", ""}});
  }
  auto finish = string_field(c0, "finish_reason");
  std::string_view stop = stop_reason_of(finish);
  if (tools && stop == "end_turn") {
    stop = "tool_use";
  }
  usage u = usage_in(j);
  // The provider's id and model, as LiteLLM's adapter answers (and as a pass-through
  // answer names the model that wrote it); `model` only when the provider names none.
  std::string id(string_field(j, "id"));
  if (id.empty()) {
    id = "msg_" + core::random_hex(12);
  }
  std::string_view answered_by = string_field(j, "model");
  // Member order as Anthropic writes it.
  nlohmann::ordered_json out;
  out["id"] = id;
  out["type"] = "message";
  out["role"] = "assistant";
  out["model"] = answered_by.empty() ? model : answered_by;
  out["content"] = std::move(content);
  out["stop_reason"] = stop;
  out["stop_sequence"] = nullptr;
  out["usage"] = usage_json(u);
  return out.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

// ---- stream: OpenAI chunks -> Anthropic events --------------------------------

event_writer::event_writer(std::string model) : model_(std::move(model)), id_("msg_" + core::random_hex(12)) {}

void event_writer::event(std::string_view type, const json& data, std::string& out) {
  out += "event: ";
  out += type;
  out += "\ndata: ";
  out += detail::dump(data);
  out += "\n\n";
  ++events_;
}

void event_writer::start(std::string& out) {
  if (started_) {
    return;
  }
  started_ = true;
  json msg = {{"id", id_},
              {"type", "message"},
              {"role", "assistant"},
              {"model", model_},
              {"content", json::array()},
              {"stop_reason", nullptr},
              {"stop_sequence", nullptr},
              {"usage", usage_json(usage_)}};
  event("message_start", {{"type", "message_start"}, {"message", std::move(msg)}}, out);
  event("ping", {{"type", "ping"}}, out);
}

void event_writer::open(block kind, json content_block, std::string& out) {
  close(out);
  open_ = kind;
  ++index_;
  event("content_block_start", {{"type", "content_block_start"}, {"index", index_}, {"content_block", std::move(content_block)}},
        out);
}

void event_writer::close(std::string& out) {
  if (open_ == block::none) {
    return;
  }
  if (open_ == block::thinking) {
    event("content_block_delta",
          {{"type", "content_block_delta"}, {"index", index_}, {"delta", {{"type", "signature_delta"}, {"signature", ""}}}},
          out);
  }
  event("content_block_stop", {{"type", "content_block_stop"}, {"index", index_}}, out);
  open_ = block::none;
}

void event_writer::feed(std::string_view payload, std::string& out) {
  if (finished_) {
    return;
  }
  json j = detail::parse_bounded(payload);
  if (!j.is_object()) {
    return;
  }
  if (const json* u = field(j, "usage"); u != nullptr && u->is_object()) {
    usage_ = usage_in(j);
  }
  if (!started_) {
    // message_start names the model the provider says answered, as the answer without
    // streaming does; the id stays the gateway's msg_ id (LiteLLM's stream makes one too).
    if (auto m = string_field(j, "model"); !m.empty()) {
      model_ = m;
    }
  }
  start(out);
  const json* choices = field(j, "choices");
  if (choices == nullptr || !choices->is_array() || choices->empty() || !(*choices)[0].is_object()) {
    return;
  }
  const json& c0 = (*choices)[0];
  if (const json* delta = field(c0, "delta"); delta != nullptr && delta->is_object()) {
    if (auto r = string_field(*delta, "reasoning_content"); !r.empty()) {
      if (open_ != block::thinking) {
        open(block::thinking, {{"type", "thinking"}, {"thinking", ""}}, out);
      }
      event("content_block_delta",
            {{"type", "content_block_delta"}, {"index", index_}, {"delta", {{"type", "thinking_delta"}, {"thinking", r}}}},
            out);
    }
    if (auto t = string_field(*delta, "content"); !t.empty()) {
      if (open_ != block::text) {
        open(block::text, {{"type", "text"}, {"text", ""}}, out);
      }
      event("content_block_delta",
            {{"type", "content_block_delta"}, {"index", index_}, {"delta", {{"type", "text_delta"}, {"text", t}}}}, out);
      if (keep_text_) {
        text_ += t;
      }
    }
    if (const json* calls = field(*delta, "tool_calls"); calls != nullptr && calls->is_array()) {
      for (const auto& call : *calls) {
        if (!call.is_object()) {
          continue;
        }
        const json* idx = field(call, "index");
        const long long oi = idx != nullptr && idx->is_number_integer() ? idx->get<long long>() : 0;
        const json* fn = field(call, "function");
        auto name = fn != nullptr && fn->is_object() ? string_field(*fn, "name") : std::string_view{};
        auto args = fn != nullptr && fn->is_object() ? string_field(*fn, "arguments") : std::string_view{};
        auto [it, fresh] = calls_.try_emplace(oi);
        if (fresh) {
          close(out);  // the text or thinking before the calls is complete
        }
        if (it->second.id.empty()) {
          it->second.id = string_field(call, "id");
        }
        if (it->second.name.empty()) {
          it->second.name = name;
        }
        it->second.args += args;
      }
    }
  }
  if (auto f = string_field(c0, "finish_reason"); !f.empty()) {
    finish_reason_ = std::string(f);
  }
}

void event_writer::finish(std::string& out) {
  if (finished_) {
    return;
  }
  start(out);
  close(out);
  finished_ = true;
  // Each tool call is one whole tool_use block, in the order of the chat indexes: its
  // arguments were kept until now because only the whole text tells whether it is a
  // JSON object (what is not becomes {}, as in the answer without streaming), and
  // because chat streams may interleave the pieces of several calls, while Anthropic's
  // blocks follow one another and never reopen.
  for (auto& [oi, c] : calls_) {
    json input = detail::parse_bounded(c.args);
    if (input.is_discarded() || !input.is_object()) {
      input = json::object();
    }
    if (c.id.empty()) {
      c.id = "toolu_" + core::random_hex(12);
    }
    open(block::tool, {{"type", "tool_use"}, {"id", c.id}, {"name", c.name}, {"input", json::object()}}, out);
    event("content_block_delta",
          {{"type", "content_block_delta"},
           {"index", index_},
           {"delta", {{"type", "input_json_delta"}, {"partial_json", detail::dump(input)}}}},
          out);
    close(out);
  }
  std::string_view stop = stop_reason_of(finish_reason_);
  if (!calls_.empty() && stop == "end_turn") {
    stop = "tool_use";
  }
  event("message_delta",
        {{"type", "message_delta"},
         {"delta", {{"stop_reason", stop}, {"stop_sequence", nullptr}}},
         {"usage", usage_json(usage_)}},
        out);
  event("message_stop", {{"type", "message_stop"}}, out);
}

// ---- pass-through -------------------------------------------------------------

core::result<upstream_call> passthrough_call(const config::deployment& d, std::string_view path,
                                             std::string_view body, const json_scan& scan, client_headers h) {
  upstream_call call;
  std::string base = detail::base_of(d);
  if (base.empty()) {
    return detail::missing_api_base(d);
  }
  // api_base may name the version path already (".../v1"), as in the chat adapter.
  if (base.size() >= 3 && std::string_view(base).substr(base.size() - 3) == "/v1" && path.substr(0, 3) == "/v1") {
    path.remove_prefix(3);
  }
  call.url = base + std::string(path);
  if (!d.api_key.empty()) {
    call.headers.emplace_back("x-api-key", d.api_key);
  }
  if (!detail::has_extra_header(d, "anthropic-version")) {
    call.headers.emplace_back("anthropic-version", h.version.empty() ? std::string_view("2023-06-01") : h.version);
  }
  std::string beta(h.beta);
  call.headers.emplace_back("content-type", "application/json");
  for (const auto& [k, v] : d.extra_headers) {
    if (!h.beta.empty() && detail::has_extra_header(d, "anthropic-beta") && k.size() == 14 &&
        std::equal(k.begin(), k.end(), "anthropic-beta", [](char a, char b) { return (a | 0x20) == b || a == b; })) {
      beta = v + "," + beta;  // both: the deployment's features and the client's
      continue;
    }
    call.headers.emplace_back(k, v);
  }
  if (!beta.empty()) {
    call.headers.emplace_back("anthropic-beta", std::move(beta));
  }

  // The body: the client's bytes, edited only where it must be. A UTF-8 byte order mark
  // before the object is accepted from the client (the JSON reader skips it) but not
  // forwarded, as on the chat door, whose rebuilt body has none: JSON sent over a network
  // must not start with one (RFC 8259), and a strict parser upstream refuses it.
  if (body.substr(0, 3) == "\xEF\xBB\xBF") {
    body.remove_prefix(3);  // the members' views point past it: offsets from body stay right
  }
  const json_member* model = scan.find("model");
  bool model_same = false;
  if (model != nullptr && model->kind == json_kind::string && model->value.size() >= 2) {
    std::string_view inner = model->value.substr(1, model->value.size() - 2);
    model_same = inner.find('\\') == std::string_view::npos ? inner == d.upstream_model
                                                            : json_unescape(inner) == d.upstream_model;
  }
  // The deployment's request defaults and drop lists (docs/providers.md), on /v1/messages
  // only: the members the drop lists name (never `model`) are left out, and the defaults
  // Anthropic's Messages API takes under the same name and shape are added where the
  // client did not set them. Looked at only when the deployment has some or the request
  // lists names itself: a plain deployment's requests go byte for byte, nothing parsed.
  std::vector<std::string> asked;
  std::vector<std::pair<std::string_view, const json*>> defaults;
  const bool messages = path == "/v1/messages";
  if (messages) {
    if (const auto* a = scan.find("additional_drop_params"); a != nullptr && a->kind == json_kind::array) {
      asked = detail::request_drop_names(json::parse(a->value, nullptr, false));
    }
  }
  auto dropped = [&](std::string_view key) {
    return messages && key != "model" &&
           (std::find(d.drop_param_names.begin(), d.drop_param_names.end(), key) != d.drop_param_names.end() ||
            std::find(asked.begin(), asked.end(), key) != asked.end());
  };
  if (messages && !d.request_defaults.empty()) {
    // As LiteLLM's /v1/messages, which passes a deployment's litellm_params only where
    // they are Messages parameters (max_tokens, temperature, top_p, top_k, thinking).
    // OpenAI-shaped defaults (stop, tools, tool_choice, response_format, ...) are not
    // Anthropic's: they are not sent here.
    for (std::string_view key : {"max_tokens", "temperature", "top_p", "top_k", "thinking"}) {
      if (auto it = d.request_defaults.find(key); it != d.request_defaults.end() && !it->is_null() &&
                                                 scan.find(key) == nullptr && !dropped(key)) {
        defaults.emplace_back(key, &*it);
      }
    }
  }
  const bool drops = !d.drop_param_names.empty() || !asked.empty();
  bool drop = !defaults.empty();
  for (const auto& m : scan.members) {
    if (m.key == "metadata") {
      if (m.kind != json_kind::object) {
        drop = true;
        continue;
      }
      thread_local json_scan inner;  // reused: no allocation per request
      scan_json(m.value, inner, max_json_depth);
      drop = drop || inner.members.size() != 1 || inner.members[0].key != "user_id";
    } else if (is_gateway_field(m.key) || (drops && dropped(m.key))) {
      drop = true;
    }
  }
  if (!drop) {
    if (model_same || model == nullptr) {
      call.body_parts.push_back(body);  // byte for byte
      return call;
    }
    // Splice: before the model value, the deployment's model, after it.
    // Reserved past the small-string buffer: the piece must survive moves of the call.
    call.body.reserve(std::max<std::size_t>(64, d.upstream_model.size() * 2 + 8));
    append_json_string(call.body, d.upstream_model);
    const auto at = static_cast<std::size_t>(model->value.data() - body.data());
    call.body_parts = {body.substr(0, at), call.body, body.substr(at + model->value.size())};
    return call;
  }
  // Members dropped: the object rebuilt from the members' own bytes.
  std::string& out = call.body;
  out.reserve(body.size() + d.upstream_model.size());
  out += '{';
  bool first = true;
  auto sep = [&] {
    if (!first) {
      out += ',';
    }
    first = false;
  };
  for (const auto& m : scan.members) {
    if (m.key == "metadata") {
      if (m.kind != json_kind::object) {
        continue;
      }
      json_scan inner = scan_json(m.value);
      const auto* uid = inner.find("user_id");
      if (uid != nullptr) {
        sep();
        out += R"("metadata":{"user_id":)";
        out += uid->value;
        out += '}';
      }
      continue;
    }
    if (is_gateway_field(m.key) || (drops && dropped(m.key))) {
      continue;
    }
    sep();
    if (&m == model && !model_same) {
      out += R"("model":)";
      append_json_string(out, d.upstream_model);
      continue;
    }
    out += m.whole;
  }
  for (const auto& [key, value] : defaults) {
    sep();
    append_json_string(out, key);
    out += ':';
    out += detail::dump(*value);
  }
  out += '}';
  return call;
}

std::optional<usage> message_usage(std::string_view message_json) {
  thread_local json_scan top;
  thread_local json_scan u;
  if (!scan_json(message_json, top, max_json_depth)) {
    return std::nullopt;
  }
  const auto* m = top.find("usage");
  if (m == nullptr || m->kind != json_kind::object || !scan_json(m->value, u, max_json_depth)) {
    return usage{};  // valid JSON without a usage: known=false
  }
  return usage_value(int_member(u, "input_tokens"), int_member(u, "cache_read_input_tokens"),
                     int_member(u, "cache_creation_input_tokens"), int_member(u, "output_tokens"));
}

core::result<void> stream_watch::feed(std::string_view bytes) {
  if (failure_) {
    return *failure_;
  }
  batch_.clear();
  parser_.feed(bytes, batch_);
  for (const auto& ev : batch_) {
    if (stopped_) {
      break;
    }
    if (auto r = on_event(ev); !r) {
      failure_ = r.error();
      return r;
    }
  }
  if (parser_.pending() > detail::max_pending_stream_bytes) {
    failure_ = detail::malformed_upstream(label, "the provider sent an oversized stream event");
    return *failure_;
  }
  if (!started_) {
    if (prefix_.size() + bytes.size() > max_prefix_bytes) {
      failure_ = detail::malformed_upstream(label, "the provider's answer is not an event stream (no message_start)");
      return *failure_;
    }
    prefix_ += bytes;
  }
  return {};
}

core::result<void> stream_watch::on_event(const upstream::sse_parser::event& ev) {
  ++events_;
  std::string_view type = ev.event;
  if (!started_ && type != "message_start" && type != "ping" && type != "error" && !type.empty()) {
    // Anthropic's stream begins with message_start; anything else first is not a stream
    // this gateway (or the client's SDK) can read.
    return detail::malformed_upstream(label, "the provider's stream did not begin with message_start (it began with `" +
                                                 std::string(type.substr(0, 64)) + "`)");
  }
  // Anthropic names every event; the `type` member decides when it does not.
  const bool needs_body = type.empty() || type == "message_start" || type == "message_delta" || type == "error" ||
                          (keep_text_ && type == "content_block_delta");
  if (!needs_body) {
    stopped_ = type == "message_stop";
    return {};
  }
  json j = detail::parse_bounded(ev.data);
  if (!j.is_object()) {
    if (ev.data.find_first_not_of(" \t\r\n") == std::string::npos) {
      return {};
    }
    return detail::malformed_upstream(label, "the provider sent a stream event that is not valid JSON");
  }
  if (type.empty()) {
    type = string_field(j, "type");
    if (!started_ && type != "message_start" && type != "ping" && type != "error") {
      return detail::malformed_upstream(label, "the provider's stream did not begin with message_start");
    }
  }
  auto take = [&](const json& u, bool only_present) {
    auto one = [&](const char* k, long long& dst) {
      if (!only_present || field(u, k) != nullptr) {
        dst = detail::token_count(u, k);
      }
    };
    one("input_tokens", input_);
    one("cache_read_input_tokens", cache_read_);
    one("cache_creation_input_tokens", cache_creation_);
    one("output_tokens", output_);
    usage_ = usage_value(input_, cache_read_, cache_creation_, output_);
  };
  if (type == "message_start") {
    started_ = true;
    prefix_ = std::string();
    const json* m = field(j, "message");
    const json* u = m != nullptr && m->is_object() ? field(*m, "usage") : nullptr;
    if (u != nullptr && u->is_object()) {
      take(*u, false);
    }
  } else if (type == "message_delta") {
    if (const json* u = field(j, "usage"); u != nullptr && u->is_object()) {
      take(*u, true);
    }
  } else if (type == "content_block_delta") {
    const json* d = field(j, "delta");
    if (d != nullptr && d->is_object()) {
      text_ += string_field(*d, "text");
    }
  } else if (type == "message_stop") {
    stopped_ = true;
  } else if (type == "error") {
    const json* e = field(j, "error");
    auto et = e != nullptr && e->is_object() ? string_field(*e, "type") : std::string_view{};
    return upstream_error(status_of_error_type(et), ev.data, label);
  }
  return {};
}

core::result<void> stream_watch::finish() {
  if (failure_) {
    return *failure_;
  }
  if (!started_) {
    failure_ = not_an_event_stream(prefix_);
    return *failure_;
  }
  if (!stopped_) {
    failure_ = core::make_error(core::errc::upstream_error,
                                std::string(label) + " - stream ended before message_stop (stream cut)");
    return *failure_;
  }
  return {};
}

core::error not_an_event_stream(std::string_view body) {
  const auto start = body.find_first_not_of(" \t\r\n");
  if (start == std::string_view::npos) {
    return detail::malformed_upstream(label, "the provider's stream ended before message_start (empty stream)");
  }
  json j = detail::parse_bounded(body);
  if (j.is_object()) {
    const auto type = string_field(j, "type");
    const json* e = field(j, "error");
    if (type == "error" && e != nullptr && e->is_object()) {
      return upstream_error(status_of_error_type(string_field(*e, "type")), body, label);
    }
    if (type == "message") {
      return detail::malformed_upstream(
          label, "the provider answered a streamed request with a whole message, not an event stream");
    }
  }
  return detail::malformed_upstream(label, "the provider's answer is not an event stream (no message_start)");
}

// ---- count_tokens ----------------------------------------------------------------

long long estimate_input_tokens(const json_scan& scan) {
  std::size_t bytes = 0;
  for (const auto& m : scan.members) {
    if (m.key == "system" || m.key == "messages" || m.key == "tools") {
      bytes += m.text_bytes;
    }
  }
  return static_cast<long long>((bytes + 3) / 4) + (bytes == 0 ? 1 : 0);
}

}  // namespace switchyard::providers::anthropic_front
