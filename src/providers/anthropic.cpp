// The Anthropic Messages adapter (`anthropic/<model>`): OpenAI chat/completions
// requests -> POST /v1/messages, Messages answers and event streams -> OpenAI JSON.
//
// Decisions (see also docs in the lead's architecture notes):
// - max_tokens defaults to 4096 when the client sends neither max_tokens nor
//   max_completion_tokens (LiteLLM's historical default); with extended thinking
//   whose budget is >= 4096 the default is budget + 4096 (Anthropic requires
//   max_tokens > budget_tokens).
// - OpenAI parameters Anthropic cannot take (n > 1, logprobs, top_logprobs,
//   presence/frequency_penalty, logit_bias, seed, functions, ...) -> 400 naming the
//   parameter, or dropped with drop_params. Values that change nothing (n: 1,
//   logprobs: false, penalties 0) are accepted. Fields that are not OpenAI
//   parameters pass through (top_k, thinking, ...), as LiteLLM does.
// - response_format json_object / json_schema -> a forced tool "json_tool_call"
//   whose input is returned as the message content (LiteLLM's approach); with
//   client tools present it is an unsupported parameter.
// - reasoning_effort -> thinking {budget_tokens: low/minimal 1024, medium 2048, high 4096}.
// - Whitespace-only stop sequences are dropped (Anthropic rejects them).
// - Stream `error` events: status from error.type (invalid_request_error 400,
//   authentication_error 401, billing_error 402, permission_error 403,
//   not_found_error 404, request_too_large 413, rate_limit_error 429, api_error 500,
//   timeout_error 504, overloaded_error 529 = what Anthropic sends as the HTTP status
//   for the same error, so streamed and non-streamed answers agree; retryable), else 500.
// - Thinking blocks keep their signatures: the answer's message.thinking_blocks
//   ([{type: thinking, thinking, signature}, {type: redacted_thinking, data}], LiteLLM's
//   field; streamed, each whole block in delta.thinking_blocks when it ends), and an
//   assistant message's thinking_blocks go back first in its content (Anthropic refuses a
//   tool-calling turn without them when extended thinking is on).
// - Unknown event types and unknown delta types are ignored (Anthropic adds new
//   ones); events after message_stop are ignored.
#include "adapter_util.hpp"
#include "switchyard/core/ids.hpp"
#include "switchyard/core/utf8.hpp"
#include "switchyard/providers/adapter.hpp"
#include "switchyard/providers/json_scan.hpp"
#include "switchyard/providers/openai.hpp"
#include "switchyard/upstream/sse_parser.hpp"

#include <boost/container/small_vector.hpp>

#include <charconv>
#include <cstring>
#include <map>

namespace switchyard::providers {

namespace {

using detail::field;
using detail::string_field;
using detail::valid_json_walk;
using json = nlohmann::json;

constexpr std::string_view label = "AnthropicException";
constexpr std::string_view provider = "anthropic";
constexpr std::string_view json_tool_name = "json_tool_call";
constexpr long long default_max_tokens = 4096;

// OpenAI request fields Anthropic has no equivalent for.
bool is_unsupported_openai_param(std::string_view k) {
  static constexpr std::string_view names[] = {
      "n",        "logprobs", "top_logprobs", "presence_penalty", "frequency_penalty", "logit_bias",
      "seed",     "functions", "function_call", "modalities",     "audio",             "prediction",
      "service_tier", "store", "web_search_options", "suffix",    "echo",              "best_of",
      "prompt_cache_key", "safety_identifier", "verbosity",       "encoding_format",   "dimensions"};
  for (auto n : names) {
    if (n == k) {
      return true;
    }
  }
  return false;
}

// LiteLLM client-side options that are never request fields for a provider.
bool is_client_option(std::string_view k) {
  return k == "extra_headers" || k == "extra_body" || k == "timeout" || k == "stream_timeout" || k == "tags" ||
         k == "guardrails";
}

// "" when the deployment has no api_base and its provider no default.
std::string messages_url(const config::deployment& d) {
  std::string base = detail::base_of(d);
  if (base.empty()) {
    return base;
  }
  auto ends_with = [&](std::string_view s) {
    return base.size() >= s.size() && std::string_view(base).substr(base.size() - s.size()) == s;
  };
  if (ends_with("/v1/messages")) {
    return base;
  }
  if (ends_with("/v1")) {
    return base + "/messages";
  }
  return base + "/v1/messages";
}

// ---- request: messages ------------------------------------------------------

std::string at(std::size_t i) {
  return "messages[" + std::to_string(i) + "]";
}

core::result<json> image_block(const json& part, const std::string& where) {
  std::string url = detail::image_url_of(part);
  json block = {{"type", "image"}};
  if (auto du = detail::parse_data_url(url)) {
    block["source"] = {{"type", "base64"}, {"media_type", du->media_type}, {"data", du->data}};
  } else if (url.rfind("http://", 0) == 0 || url.rfind("https://", 0) == 0) {
    block["source"] = {{"type", "url"}, {"url", url}};
  } else {
    return detail::bad_param(where + ": image_url must be a base64 data URL or an http(s) URL", where);
  }
  if (const json* cc = field(part, "cache_control")) {
    block["cache_control"] = *cc;
  }
  return detail::ok(std::move(block));
}

core::result<json> file_block(const json& part, const std::string& where) {
  const json* f = field(part, "file");
  auto data = f != nullptr ? detail::parse_data_url(string_field(*f, "file_data")) : std::nullopt;
  if (!data) {
    return detail::bad_param(where + ": anthropic needs file parts as base64 data (file.file_data)", where);
  }
  json block = {{"type", "document"},
                {"source", {{"type", "base64"}, {"media_type", data->media_type}, {"data", data->data}}}};
  if (const json* cc = field(part, "cache_control")) {
    block["cache_control"] = *cc;
  }
  return detail::ok(std::move(block));
}

// OpenAI message content -> Anthropic content blocks (empty text is skipped).
core::result<json> content_blocks(const json& content, const std::string& where) {
  json blocks = json::array();
  if (content.is_null()) {
    return detail::ok(std::move(blocks));
  }
  if (content.is_string()) {
    if (!content.get_ref<const std::string&>().empty()) {
      blocks.push_back({{"type", "text"}, {"text", content}});
    }
    return detail::ok(std::move(blocks));
  }
  if (!content.is_array()) {
    return detail::bad_param(where + ".content must be a string or a list of content parts", where + ".content");
  }
  for (std::size_t j = 0; j < content.size(); ++j) {
    const json& part = content[j];
    std::string pw = where + ".content[" + std::to_string(j) + "]";
    if (part.is_string()) {
      if (!part.get_ref<const std::string&>().empty()) {
        blocks.push_back({{"type", "text"}, {"text", part}});
      }
      continue;
    }
    if (!part.is_object()) {
      return detail::bad_param(pw + " must be an object", pw);
    }
    auto type = string_field(part, "type");
    if (type == "text") {
      auto text = string_field(part, "text");
      if (text.empty()) {
        continue;
      }
      json block = {{"type", "text"}, {"text", text}};
      if (const json* cc = field(part, "cache_control")) {
        block["cache_control"] = *cc;
      }
      blocks.push_back(std::move(block));
    } else if (type == "image_url") {
      auto b = image_block(part, pw);
      if (!b) {
        return b.error();
      }
      blocks.push_back(std::move(*b));
    } else if (type == "file") {
      auto b = file_block(part, pw);
      if (!b) {
        return b.error();
      }
      blocks.push_back(std::move(*b));
    } else if (type == "input_audio") {
      return detail::bad_param(pw + ": anthropic does not accept audio input", pw);
    } else if (!type.empty()) {
      blocks.push_back(part);  // a native Anthropic block (document, ...): as sent
    } else {
      return detail::bad_param(pw + " has no type", pw);
    }
  }
  return detail::ok(std::move(blocks));
}

// Appends blocks to the conversation, merging consecutive same-role messages.
void append(json& messages, std::string_view role, json blocks) {
  if (blocks.empty()) {
    return;
  }
  if (!messages.empty() && messages.back()["role"] == role) {
    auto& c = messages.back()["content"];
    for (auto& b : blocks) {
      c.push_back(std::move(b));
    }
    return;
  }
  messages.push_back({{"role", role}, {"content", std::move(blocks)}});
}

core::result<json> tool_use_blocks(const json& calls, const std::string& where) {
  json blocks = json::array();
  if (!calls.is_array()) {
    return detail::bad_param(where + ".tool_calls must be a list", where + ".tool_calls");
  }
  for (std::size_t j = 0; j < calls.size(); ++j) {
    const json& c = calls[j];
    std::string cw = where + ".tool_calls[" + std::to_string(j) + "]";
    const json* fn = field(c, "function");
    if (fn == nullptr || !fn->is_object()) {
      return detail::bad_param(cw + ".function is required", cw + ".function");
    }
    json input = json::object();
    const json* args = field(*fn, "arguments");
    if (args != nullptr && args->is_string()) {
      const auto& s = args->get_ref<const std::string&>();
      if (!s.empty()) {
        input = detail::parse_bounded(s);
        if (input.is_discarded() || !input.is_object()) {
          return detail::bad_param(cw + ".function.arguments must be a JSON object", cw + ".function.arguments");
        }
      }
    } else if (args != nullptr && args->is_object()) {
      input = *args;
    }
    blocks.push_back({{"type", "tool_use"},
                      {"id", string_field(c, "id")},
                      {"name", string_field(*fn, "name")},
                      {"input", std::move(input)}});
  }
  return detail::ok(std::move(blocks));
}

// An assistant message's thinking_blocks (LiteLLM's field) -> Anthropic thinking and
// redacted_thinking blocks, with only the members Anthropic takes.
json thinking_blocks_of(const json& tb) {
  json out = json::array();
  for (const auto& b : tb) {
    auto type = string_field(b, "type");
    if (type == "thinking") {
      out.push_back({{"type", "thinking"}, {"thinking", string_field(b, "thinking")},
                     {"signature", string_field(b, "signature")}});
    } else if (type == "redacted_thinking") {
      out.push_back({{"type", "redacted_thinking"}, {"data", string_field(b, "data")}});
    }
  }
  return out;
}

// A single plain text block is sent as a string (as the client wrote it).
void simplify(json& messages) {
  for (auto& m : messages) {
    auto& c = m["content"];
    if (c.size() == 1 && c[0].size() == 2 && c[0]["type"] == "text" && c[0].contains("text")) {
      json text = c[0]["text"];
      c = std::move(text);
    }
  }
}

// A message-level cache_control (LiteLLM's shorthand) marks the message's last block.
void apply_cache_control(const json& m, json& blocks) {
  const json* cc = field(m, "cache_control");
  if (cc != nullptr && cc->is_object() && !blocks.empty()) {
    blocks.back()["cache_control"] = *cc;
  }
}

// OpenAI messages -> out["system"] and out["messages"].
core::result<void> convert_messages(const json& msgs, json& out) {
  if (!msgs.is_array()) {
    return detail::bad_param("messages must be a list", "messages");
  }
  json system_blocks = json::array();
  json messages = json::array();
  for (std::size_t i = 0; i < msgs.size(); ++i) {
    const json& m = msgs[i];
    std::string where = at(i);
    if (!m.is_object()) {
      return detail::bad_param(where + " must be an object", where);
    }
    auto role = string_field(m, "role");
    const json* content = field(m, "content");
    const json null_content;
    const json& c = content != nullptr ? *content : null_content;
    if (role == "system" || role == "developer") {
      auto blocks = content_blocks(c, where);
      if (!blocks) {
        return blocks.error();
      }
      apply_cache_control(m, *blocks);
      for (auto& b : *blocks) {
        if (b["type"] == "text") {
          system_blocks.push_back(std::move(b));
        }
      }
    } else if (role == "user") {
      auto blocks = content_blocks(c, where);
      if (!blocks) {
        return blocks.error();
      }
      apply_cache_control(m, *blocks);
      append(messages, "user", std::move(*blocks));
    } else if (role == "assistant") {
      auto blocks = content_blocks(c, where);
      if (!blocks) {
        return blocks.error();
      }
      if (const json* tb = field(m, "thinking_blocks"); tb != nullptr && tb->is_array() && !tb->empty()) {
        // The signed thinking an answer came with (its thinking_blocks) goes back first:
        // with extended thinking on, Anthropic refuses a tool-calling turn without it.
        json lead = thinking_blocks_of(*tb);
        for (auto& b : *blocks) {
          lead.push_back(std::move(b));
        }
        *blocks = std::move(lead);
      }
      if (const json* calls = field(m, "tool_calls")) {
        auto uses = tool_use_blocks(*calls, where);
        if (!uses) {
          return uses.error();
        }
        for (auto& u : *uses) {
          blocks->push_back(std::move(u));
        }
      }
      apply_cache_control(m, *blocks);
      append(messages, "assistant", std::move(*blocks));
    } else if (role == "tool") {
      auto id = string_field(m, "tool_call_id");
      if (id.empty()) {
        return detail::bad_param(where + ".tool_call_id is required for tool messages", where + ".tool_call_id");
      }
      json result = {{"type", "tool_result"}, {"tool_use_id", id}};
      if (c.is_array()) {
        auto blocks = content_blocks(c, where);
        if (!blocks) {
          return blocks.error();
        }
        result["content"] = std::move(*blocks);
      } else {
        result["content"] = detail::content_text(c);
      }
      json blocks = json::array({std::move(result)});
      apply_cache_control(m, blocks);
      append(messages, "user", std::move(blocks));
    } else if (role == "function") {
      return detail::bad_param(where + ": the deprecated 'function' role is not supported for anthropic; use tool",
                               where + ".role");
    } else {
      return detail::bad_param(where + ".role '" + std::string(role) + "' is not a chat role", where + ".role");
    }
  }
  simplify(messages);
  out["messages"] = std::move(messages);
  if (!system_blocks.empty()) {
    bool plain = true;
    for (const auto& b : system_blocks) {
      plain = plain && b.size() == 2;
    }
    if (plain) {
      std::string joined;
      for (const auto& b : system_blocks) {
        if (!joined.empty()) {
          joined += "\n";
        }
        joined += b["text"].get<std::string>();
      }
      out["system"] = std::move(joined);
    } else {
      out["system"] = std::move(system_blocks);  // cache_control kept per block
    }
  }
  return {};
}

// ---- request: tools ---------------------------------------------------------

core::result<json> convert_tools(const json& tools) {
  if (!tools.is_array()) {
    return detail::bad_param("tools must be a list", "tools");
  }
  json out = json::array();
  for (std::size_t i = 0; i < tools.size(); ++i) {
    const json& t = tools[i];
    std::string where = "tools[" + std::to_string(i) + "]";
    if (!t.is_object()) {
      return detail::bad_param(where + " must be an object", where);
    }
    if (string_field(t, "type") != "function" || field(t, "function") == nullptr) {
      out.push_back(t);  // an Anthropic server tool (web_search_..., bash_..., ...): as sent
      continue;
    }
    const json& fn = t["function"];
    auto name = string_field(fn, "name");
    if (name.empty()) {
      return detail::bad_param(where + ".function.name is required", where + ".function.name");
    }
    json tool = {{"name", name}};
    if (auto desc = string_field(fn, "description"); !desc.empty()) {
      tool["description"] = desc;
    }
    const json* params = field(fn, "parameters");
    tool["input_schema"] =
        (params != nullptr && params->is_object()) ? *params : json{{"type", "object"}, {"properties", json::object()}};
    if (const json* cc = field(t, "cache_control")) {
      tool["cache_control"] = *cc;
    }
    out.push_back(std::move(tool));
  }
  return detail::ok(std::move(out));
}

core::result<json> convert_tool_choice(const json& tc) {
  if (tc.is_string()) {
    const auto& s = tc.get_ref<const std::string&>();
    if (s == "auto") {
      return detail::ok(json{{"type", "auto"}});
    }
    if (s == "required" || s == "any") {
      return detail::ok(json{{"type", "any"}});
    }
    if (s == "none") {
      return detail::ok(json{{"type", "none"}});
    }
  } else if (tc.is_object()) {
    auto type = string_field(tc, "type");
    if (type == "function") {
      const json* fn = field(tc, "function");
      auto name = fn != nullptr ? string_field(*fn, "name") : std::string_view{};
      if (!name.empty()) {
        return detail::ok(json{{"type", "tool"}, {"name", name}});
      }
    } else if (type == "auto" || type == "any" || type == "none" || type == "tool") {
      return detail::ok(tc);  // already Anthropic's shape
    }
  }
  return detail::bad_param("tool_choice must be \"auto\", \"required\", \"none\" or {\"type\": \"function\", "
                           "\"function\": {\"name\": ...}}",
                           "tool_choice");
}

// The forced tool that carries response_format's JSON answer.
core::result<json> json_tool(const json& rf) {
  auto type = string_field(rf, "type");
  json schema = {{"type", "object"}};
  if (type == "json_schema") {
    const json* js = field(rf, "json_schema");
    const json* s = js != nullptr ? field(*js, "schema") : nullptr;
    if (s != nullptr && s->is_object()) {
      schema = *s;
    }
  } else if (type != "json_object") {
    return detail::bad_param("response_format.type must be text, json_object or json_schema",
                             "response_format");
  }
  return detail::ok(json{{"name", json_tool_name},
              {"description", "Respond with a JSON object in this format."},
              {"input_schema", std::move(schema)}});
}

core::result<long long> thinking_budget(const json& effort) {
  auto e = effort.is_string() ? effort.get<std::string>() : std::string();
  if (e == "minimal" || e == "low") {
    return 1024;
  }
  if (e == "medium") {
    return 2048;
  }
  if (e == "high") {
    return 4096;
  }
  if (e == "none") {
    return 0;
  }
  return detail::bad_param("reasoning_effort must be none, minimal, low, medium or high", "reasoning_effort");
}

// ---- request ----------------------------------------------------------------

// What the parameter loop gathered that is settled only once every parameter was seen.
struct pending_params {
  std::optional<long long> max_tokens;
  std::optional<long long> max_completion_tokens;
  std::optional<json> tool_choice;
  std::optional<json> response_format;
  std::optional<bool> parallel_tool_calls;
  long long budget = 0;
  bool has_tools = false;
};

// response_format as a forced tool, thinking, tool_choice and max_tokens, once the
// parameters are read.
core::result<void> settle_params(json& out, pending_params& p, const config::deployment& d,
                                 const build_options& opts) {
  auto& [max_tokens, max_completion_tokens, tool_choice, response_format, parallel_tool_calls, budget, has_tools] = p;
  if (response_format) {
    if (has_tools) {
      if (!opts.drop_params) {
        return detail::unsupported_param(provider, "response_format", d, "together with tools");
      }
    } else {
      auto t = json_tool(*response_format);
      if (!t) {
        return t.error();
      }
      out["tools"] = json::array({std::move(*t)});
      tool_choice = json{{"type", "tool"}, {"name", json_tool_name}};
      has_tools = true;
    }
  }
  if (budget > 0 && !out.contains("thinking")) {
    out["thinking"] = {{"type", "enabled"}, {"budget_tokens", budget}};
  }
  if (const json* th = field(out, "thinking")) {
    budget = detail::token_count(*th, "budget_tokens");
  }
  if (has_tools) {
    if (parallel_tool_calls && !*parallel_tool_calls) {
      if (!tool_choice) {
        tool_choice = json{{"type", "auto"}};
      }
      if ((*tool_choice)["type"] != "none") {
        (*tool_choice)["disable_parallel_tool_use"] = true;
      }
    }
    if (tool_choice) {
      out["tool_choice"] = std::move(*tool_choice);
    }
  } else if (tool_choice && (*tool_choice)["type"] == "none") {
    // "none" without tools changes nothing; other choices without tools are Anthropic's to reject.
  } else if (tool_choice) {
    out["tool_choice"] = std::move(*tool_choice);
  }

  long long mt = max_completion_tokens.value_or(max_tokens.value_or(0));
  if (mt == 0) {
    mt = budget >= default_max_tokens ? budget + default_max_tokens : default_max_tokens;
  }
  out["max_tokens"] = mt;
  if (opts.stream) {
    out["stream"] = true;
  }

  return {};
}

// The HTTP request for a Messages body already written.
core::result<upstream_call> messages_call(const config::deployment& d, std::string body) {
  upstream_call call;
  call.url = messages_url(d);
  if (call.url.empty()) {
    return detail::missing_api_base(d);
  }
  if (!d.api_key.empty()) {
    call.headers.emplace_back("x-api-key", d.api_key);
  }
  if (!detail::has_extra_header(d, "anthropic-version")) {
    call.headers.emplace_back("anthropic-version", "2023-06-01");
  }
  call.headers.emplace_back("content-type", "application/json");
  for (const auto& [k, v] : d.extra_headers) {
    call.headers.emplace_back(k, v);
  }
  call.body = std::move(body);
  return call;
}

// The HTTP request for a finished Messages body.
core::result<upstream_call> messages_call(const config::deployment& d, const json& out) {
  return messages_call(d, detail::dump(out));
}

core::result<json> build_messages_body(call_type type, const config::deployment& d, const json& body,
                                       const build_options& opts) {
  if (type == call_type::embedding) {
    return core::make_error(core::errc::bad_request, "anthropic does not support embeddings", "model");
  }
  if (!body.is_object()) {
    return detail::bad_param("the request body must be a JSON object", "");
  }
  json out = json::object();
  out["model"] = d.upstream_model;

  if (type == call_type::completion) {
    const json* p = field(body, "prompt");
    std::string prompt;
    if (p != nullptr && p->is_string()) {
      prompt = p->get<std::string>();
    } else if (p != nullptr && p->is_array() && p->size() == 1 && (*p)[0].is_string()) {
      prompt = (*p)[0].get<std::string>();
    } else {
      return detail::bad_param("prompt must be a string (or a list of one string) for anthropic", "prompt");
    }
    out["messages"] = json::array({{{"role", "user"}, {"content", prompt}}});
  } else {
    const json* msgs = field(body, "messages");
    if (msgs == nullptr) {
      return detail::bad_param("messages is required", "messages");
    }
    if (auto r = convert_messages(*msgs, out); !r) {
      return r.error();
    }
  }

  pending_params pending;
  auto& [max_tokens, max_completion_tokens, tool_choice, response_format, parallel_tool_calls, budget, has_tools] =
      pending;

  for (auto it = body.begin(); it != body.end(); ++it) {
    const std::string& k = it.key();
    const json& v = it.value();
    if (is_gateway_field(k) || is_client_option(k) || v.is_null() || k == "model" || k == "messages" ||
        k == "prompt" || k == "stream" || k == "stream_options") {
      continue;
    }
    if (k == "max_tokens" || k == "max_completion_tokens") {
      if (!v.is_number_integer() || v.get<long long>() < 1) {
        return detail::bad_param(k + " must be a positive integer", k);
      }
      (k == "max_tokens" ? max_tokens : max_completion_tokens) = v.get<long long>();
    } else if (k == "temperature" || k == "top_p" || k == "top_k") {
      out[k] = v;
    } else if (k == "stop") {
      json seqs = json::array();
      for (auto& s : detail::stop_list(v)) {
        if (s.find_first_not_of(" \t\r\n") != std::string::npos) {
          seqs.push_back(std::move(s));
        }
      }
      if (!seqs.empty()) {
        out["stop_sequences"] = std::move(seqs);
      }
    } else if (k == "tools") {
      auto t = convert_tools(v);
      if (!t) {
        return t.error();
      }
      if (!t->empty()) {
        has_tools = true;
        out["tools"] = std::move(*t);
      }
    } else if (k == "tool_choice") {
      auto tc = convert_tool_choice(v);
      if (!tc) {
        return tc.error();
      }
      tool_choice = std::move(*tc);
    } else if (k == "parallel_tool_calls") {
      if (v.is_boolean()) {
        parallel_tool_calls = v.get<bool>();
      }
    } else if (k == "user") {
      if (v.is_string() && !v.get_ref<const std::string&>().empty()) {
        out["metadata"] = {{"user_id", v}};
      }
    } else if (k == "response_format") {
      if (string_field(v, "type") != "text") {
        response_format = v;
      }
    } else if (k == "reasoning_effort") {
      auto b = thinking_budget(v);
      if (!b) {
        return b.error();
      }
      budget = *b;
    } else if (is_unsupported_openai_param(k)) {
      if (detail::is_noop_value(k, v) || opts.drop_params) {
        continue;
      }
      return detail::unsupported_param(provider, k, d);
    } else if (k == "system" && out.contains("system")) {
      continue;  // system messages win over a top-level system field
    } else {
      out[k] = v;  // not an OpenAI parameter: Anthropic's own (top_k, thinking, ...), as LiteLLM does
    }
  }

  if (auto settled = settle_params(out, pending, d, opts); !settled) {
    return settled.error();
  }
  return detail::ok(std::move(out));
}

core::result<upstream_call> build_messages_request(call_type type, const config::deployment& d, const json& body,
                                                   const build_options& opts) {
  auto out = build_messages_body(type, d, body, opts);
  if (!out) {
    return out.error();
  }
  return messages_call(d, *out);
}


// ---- request, without a DOM ---------------------------------------------------
//
// The common chat request (text messages, the usual parameters) written straight
// from the client's bytes: the same bytes build_messages_body() and dump() produce for it
// (nlohmann's objects are sorted by key, its numbers and strings written its way), with no
// DOM of the request and none of the answer. Anything else (tools, images, other content
// parts, cache_control, a parameter with no plain meaning here, a duplicate member, a deployment
// that merges or drops parameters, anything the DOM path would refuse) is left to that
// path: nullopt. tests/unit/providers/anthropic_test.cpp compares the two over many shapes.

// A JSON string literal's inside (the text between its quotes), as it is written.
std::string_view inside(std::string_view literal) { return literal.substr(1, literal.size() - 2); }

// A string literal of the client's (valid JSON) written as dump() writes its value:
// unchanged when it has no escape, else with `\/` and `\u` escapes decoded.
void put_string_inside(std::string& out, std::string_view lit_inside) {
  if (lit_inside.find('\\') == std::string_view::npos) {
    out += lit_inside;  // no quote, backslash or control character: dump() writes it as is
    return;
  }
  append_as_dumped(out, lit_inside);
}

// Some text (not the client's JSON) as dump() writes a string.
void put_text(std::string& out, const std::string& text) {
  out += json(text).dump(-1, ' ', false, json::error_handler_t::replace);
}

// A whole number at least 1 that nlohmann reads as an integer (no fraction, no exponent,
// no sign), within long long.
std::optional<long long> plain_count(const json_member& m) {
  if (m.kind != json_kind::number || m.value.empty() || m.value.find_first_not_of("0123456789") != std::string_view::npos) {
    return std::nullopt;
  }
  long long v = 0;
  auto [end, ec] = std::from_chars(m.value.data(), m.value.data() + m.value.size(), v);
  if (ec != std::errc{} || end != m.value.data() + m.value.size() || v < 1) {
    return std::nullopt;
  }
  return v;
}

// A content list of text parts only ("text" or {"type": "text", "text": "..."}, nothing
// else in a part): each text's literal inside to `add`, in order. false: another part.
template <typename Add>
bool text_parts(std::string_view list, Add&& add) {
  valid_json_walk w{list};
  return detail::each_item(w, [&](valid_json_walk& item) {
    if (item.i < item.s.size() && item.s[item.i] == '"') {
      add(inside(item.value()));
      return true;
    }
    std::string_view type;
    std::string_view text;
    bool has_type = false;
    bool has_text = false;
    const bool plain = detail::next_kind(item) == json_kind::object &&
                       detail::each_member(item, [&](std::string_view key, valid_json_walk& v) {
                         if (key == "type" && !has_type) {
                           has_type = true;
                           type = v.value();
                           return true;
                         }
                         if (key == "text" && !has_text) {
                           has_text = true;
                           text = v.value();
                           return true;
                         }
                         return false;  // cache_control, image_url, a duplicate, an escaped key ...
                       });
    if (!plain || !has_type || !has_text || type != "\"text\"" || text.empty() || text.front() != '"') {
      return false;
    }
    add(inside(text));
    return true;
  });
}

// One text turn: its role (user or assistant) and its content literal's inside.
struct text_turn {
  bool assistant = false;
  std::string_view text;
};

std::optional<core::result<upstream_call>> build_plain_messages(call_type type, const config::deployment& d,
                                                                std::string_view body, const json_scan& scan,
                                                                const build_options& opts) {
  if (type != call_type::chat || !scan.ok || scan.root != json_kind::object || !d.request_defaults.empty() ||
      !d.drop_param_names.empty()) {
    return std::nullopt;
  }
  const json_member* messages = nullptr;
  const json_member* max_tokens = nullptr;
  const json_member* max_completion_tokens = nullptr;
  const json_member* user = nullptr;
  const json_member* stop = nullptr;
  const json_member* sampling[3] = {nullptr, nullptr, nullptr};  // temperature, top_k, top_p (dump's order)
  const auto& ms = scan.members;
  for (std::size_t a = 0; a < ms.size(); ++a) {
    const auto& m = ms[a];
    for (std::size_t b = 0; b < a; ++b) {
      if (ms[b].key == m.key) {
        return std::nullopt;  // a duplicate: the DOM keeps the last, with all that follows from it
      }
    }
    const std::string_view k = m.key;
    if (k == "additional_drop_params") {
      return std::nullopt;  // names to drop: with_deployment_params() on the DOM
    }
    if (m.kind == json_kind::null || is_gateway_field(k) || is_client_option(k) || k == "model" || k == "stream" ||
        k == "stream_options") {
      continue;  // as build_messages_body(): never sent, or sent the deployment's way
    }
    if (k == "messages") {
      messages = &m;
    } else if (k == "max_tokens") {
      max_tokens = &m;
    } else if (k == "max_completion_tokens") {
      max_completion_tokens = &m;
    } else if (k == "user") {
      user = &m;
    } else if (k == "stop") {
      stop = &m;
    } else if (k == "temperature") {
      sampling[0] = &m;
    } else if (k == "top_k") {
      sampling[1] = &m;
    } else if (k == "top_p") {
      sampling[2] = &m;
    } else {
      return std::nullopt;  // tools, response_format, thinking, unsupported parameters, ...
    }
  }
  if (messages == nullptr || messages->kind != json_kind::array) {
    return std::nullopt;  // the DOM path says what is wrong
  }
  std::optional<long long> mt;
  if (max_completion_tokens != nullptr) {
    mt = plain_count(*max_completion_tokens);
    if (!mt) {
      return std::nullopt;
    }
  }
  if (max_tokens != nullptr) {
    auto v = plain_count(*max_tokens);
    if (!v) {
      return std::nullopt;
    }
    if (!mt) {
      mt = v;  // max_completion_tokens wins when both are set
    }
  }

  // The messages: every one {"role": ..., "content": "..."} of a chat role, nothing else.
  boost::container::small_vector<text_turn, 8> turns;
  boost::container::small_vector<std::string_view, 2> system;
  valid_json_walk w{messages->value};
  if (!w.eat('[')) {
    return std::nullopt;
  }
  if (!w.eat(']')) {
    for (;;) {
      std::string_view role;
      std::string_view content;
      bool has_role = false;
      bool has_content = false;
      if (!w.eat('{')) {
        return std::nullopt;  // not an object: the DOM path refuses it
      }
      if (!w.eat('}')) {
        for (;;) {
          const auto key = w.value();
          if (!w.eat(':')) {
            return std::nullopt;
          }
          const auto v = w.value();
          const auto kin = inside(key);
          if (kin == "role" && !has_role) {
            has_role = true;
            role = v;
          } else if (kin == "content" && !has_content) {
            has_content = true;
            content = v;
          } else {
            return std::nullopt;  // name, cache_control, tool_calls, a duplicate, an escaped key ...
          }
          if (w.eat(',')) {
            continue;
          }
          if (w.eat('}')) {
            break;
          }
          return std::nullopt;
        }
      }
      if (!has_role || !has_content || content.empty() || role.empty() || role.front() != '"' ||
          (content.front() != '"' && content.front() != '[')) {
        return std::nullopt;  // null content, a role that is not a string ...
      }
      const auto r = inside(role);
      const bool to_system = r == "system" || r == "developer";
      if (!to_system && r != "user" && r != "assistant") {
        return std::nullopt;  // tool, function, an unknown role, an escaped one
      }
      // One text block: a system text, or a turn (consecutive ones of a role are merged
      // into one message, as the blocks of one message's content list are); empty text
      // makes no block.
      auto add_text = [&](std::string_view text) {
        if (text.empty()) {
          return;
        }
        if (to_system) {
          system.push_back(text);
        } else {
          turns.push_back({r == "assistant", text});
        }
      };
      if (content.front() == '"') {
        add_text(inside(content));
      } else if (!text_parts(content, add_text)) {
        return std::nullopt;  // an image, a file, cache_control, a part of another kind
      }
      if (w.eat(',')) {
        continue;
      }
      if (w.eat(']')) {
        break;
      }
      return std::nullopt;
    }
  }

  // stop: the sequences with something besides white space.
  boost::container::small_vector<std::string_view, 4> stops;  // literals' insides
  auto keep_stop = [&stops](std::string_view lit) {
    const auto text = inside(lit);
    const bool blank = text.find('\\') == std::string_view::npos
                           ? text.find_first_not_of(" \t\r\n") == std::string_view::npos
                           : json_unescape(text).find_first_not_of(" \t\r\n") == std::string::npos;
    if (!blank) {
      stops.push_back(text);
    }
  };
  if (stop != nullptr) {
    if (stop->kind == json_kind::string) {
      keep_stop(stop->value);
    } else if (stop->kind == json_kind::array) {
      valid_json_walk sw{stop->value};
      sw.eat('[');
      if (!sw.eat(']')) {
        for (;;) {
          const auto v = sw.value();
          if (!v.empty() && v.front() == '"') {
            keep_stop(v);  // others are ignored, as stop_list() does
          }
          if (sw.eat(',')) {
            continue;
          }
          break;
        }
      }
    }
  }

  // Written in dump()'s order: max_tokens, messages, metadata, model, stop_sequences,
  // stream, system, temperature, top_k, top_p.
  std::string out;
  out.reserve(body.size() + d.upstream_model.size() + 64);
  out += "{\"max_tokens\":";
  {
    char num[24];
    const long long v = mt.value_or(default_max_tokens);
    out.append(num, static_cast<std::size_t>(std::to_chars(num, num + sizeof num, v).ptr - num));
  }
  out += ",\"messages\":[";
  for (std::size_t t = 0; t < turns.size();) {
    std::size_t end = t + 1;
    while (end < turns.size() && turns[end].assistant == turns[t].assistant) {
      ++end;  // consecutive turns of one role are one message of several blocks
    }
    if (t != 0) {
      out += ',';
    }
    out += "{\"content\":";
    if (end - t == 1) {
      out += '"';
      put_string_inside(out, turns[t].text);
      out += '"';
    } else {
      out += '[';
      for (std::size_t j = t; j < end; ++j) {
        out += j == t ? "{\"text\":\"" : ",{\"text\":\"";
        put_string_inside(out, turns[j].text);
        out += "\",\"type\":\"text\"}";
      }
      out += ']';
    }
    out += turns[t].assistant ? ",\"role\":\"assistant\"}" : ",\"role\":\"user\"}";
    t = end;
  }
  out += ']';
  if (user != nullptr && user->kind == json_kind::string && user->value.size() > 2) {
    out += ",\"metadata\":{\"user_id\":\"";
    put_string_inside(out, inside(user->value));
    out += "\"}";
  }
  out += ",\"model\":";
  put_text(out, d.upstream_model);
  if (!stops.empty()) {
    out += ",\"stop_sequences\":[";
    for (std::size_t j = 0; j < stops.size(); ++j) {
      out += j == 0 ? "\"" : ",\"";
      put_string_inside(out, stops[j]);
      out += '"';
    }
    out += ']';
  }
  if (opts.stream) {
    out += ",\"stream\":true";
  }
  if (!system.empty()) {
    out += ",\"system\":\"";
    for (std::size_t j = 0; j < system.size(); ++j) {
      if (j != 0) {
        out += "\\n";  // the system texts joined by newlines
      }
      put_string_inside(out, system[j]);
    }
    out += '"';
  }
  static constexpr std::string_view sampling_names[3] = {"temperature", "top_k", "top_p"};
  for (std::size_t j = 0; j < 3; ++j) {
    if (sampling[j] != nullptr) {
      out += ",\"";
      out += sampling_names[j];
      out += "\":";
      out += json_member_value(*sampling[j]).dump(-1, ' ', false, json::error_handler_t::replace);
    }
  }
  out += '}';
  return messages_call(d, std::move(out));
}

// ---- response ---------------------------------------------------------------

std::string finish_reason_of(std::string_view stop_reason) {
  if (stop_reason == "max_tokens" || stop_reason == "model_context_window_exceeded") {
    return "length";
  }
  if (stop_reason == "tool_use") {
    return "tool_calls";
  }
  if (stop_reason == "refusal") {
    return "content_filter";
  }
  return "stop";  // end_turn, stop_sequence, pause_turn, absent
}

int status_of_error_type(std::string_view type) {
  if (type == "invalid_request_error") {
    return 400;
  }
  if (type == "authentication_error") {
    return 401;
  }
  if (type == "billing_error") {
    return 402;
  }
  if (type == "permission_error") {
    return 403;
  }
  if (type == "not_found_error") {
    return 404;
  }
  if (type == "request_too_large") {
    return 413;
  }
  if (type == "rate_limit_error") {
    return 429;
  }
  if (type == "timeout_error") {
    return 504;
  }
  if (type == "overloaded_error") {
    return 529;
  }
  return 500;  // api_error and anything new
}

// An Anthropic {"type":"error","error":{...}} object -> the client's error.
core::error error_of(const json& j) {
  const json* e = field(j, "error");
  auto type = e != nullptr ? string_field(*e, "type") : std::string_view{};
  return upstream_error(status_of_error_type(type), detail::dump(j), label);
}

// Anthropic usage -> OpenAI usage JSON. Anthropic's input_tokens excludes the prompt
// tokens read from or written to its cache; prompt_tokens counts them all, as LiteLLM's
// (input + cache_read + cache_creation), with the cache-read ones also in
// prompt_tokens_details.cached_tokens (cost: each kind at its own price, docs/spend.md).
struct token_tally {
  long long input = 0;
  long long cache_read = 0;
  long long cache_creation = 0;
  long long output = 0;

  void update(const json& u, bool only_present) {
    auto take = [&](const char* k, long long& dst) {
      if (!only_present || field(u, k) != nullptr) {
        dst = detail::token_count(u, k);
      }
    };
    take("input_tokens", input);
    take("cache_read_input_tokens", cache_read);
    take("cache_creation_input_tokens", cache_creation);
    take("output_tokens", output);
  }
  long long prompt() const { return input + cache_read + cache_creation; }
  json to_json() const {
    json u = detail::usage_json(prompt(), output);
    u["prompt_tokens_details"] = {{"cached_tokens", cache_read}};
    u["cache_creation_input_tokens"] = cache_creation;
    u["cache_read_input_tokens"] = cache_read;
    return u;
  }
  usage value() const {
    usage u = detail::usage_value(prompt(), output);
    u.cached_tokens = cache_read;
    u.cache_creation_tokens = cache_creation;
    return u;
  }
};

core::result<translated_response> translate_messages_response(call_type type, std::string_view body,
                                                              std::string_view model) {
  json j = detail::parse_bounded(body);
  if (j.is_discarded() || !j.is_object()) {
    return detail::malformed_upstream(label, "the provider returned a response that is not valid JSON");
  }
  if (string_field(j, "type") == "error") {
    return error_of(j);
  }
  const json* content = field(j, "content");
  if (content == nullptr || !content->is_array()) {
    return detail::malformed_upstream(label, "the provider's response has no content list");
  }
  std::string text;
  std::string reasoning;
  json tool_calls = json::array();
  json thinking_blocks = json::array();
  bool json_answer = false;
  for (const auto& block : *content) {
    auto bt = string_field(block, "type");
    if (bt == "text") {
      text += string_field(block, "text");
    } else if (bt == "thinking") {
      reasoning += string_field(block, "thinking");
      thinking_blocks.push_back({{"type", "thinking"}, {"thinking", string_field(block, "thinking")},
                                 {"signature", string_field(block, "signature")}});
    } else if (bt == "redacted_thinking") {
      thinking_blocks.push_back({{"type", "redacted_thinking"}, {"data", string_field(block, "data")}});
    } else if (bt == "tool_use") {
      const json* input = field(block, "input");
      std::string args = input != nullptr ? detail::dump(*input) : "{}";
      if (string_field(block, "name") == json_tool_name) {
        text += args;  // response_format's answer
        json_answer = true;
        continue;
      }
      tool_calls.push_back({{"id", string_field(block, "id")},
                            {"type", "function"},
                            {"function", {{"name", string_field(block, "name")}, {"arguments", args}}}});
    }
  }
  std::string finish = finish_reason_of(string_field(j, "stop_reason"));
  if (json_answer && tool_calls.empty() && finish == "tool_calls") {
    finish = "stop";
  }
  token_tally tally;
  const json* u = field(j, "usage");
  if (u != nullptr) {
    tally.update(*u, false);
  }
  std::string id(string_field(j, "id"));
  if (id.empty()) {
    id = "chatcmpl-" + core::uuid4();
  }
  json out = {{"id", id}, {"created", detail::unix_now()}, {"model", model}};
  json choice = {{"index", 0}, {"finish_reason", finish}, {"logprobs", nullptr}};
  if (type == call_type::completion) {
    out["object"] = "text_completion";
    choice["text"] = text;
  } else {
    out["object"] = "chat.completion";
    json msg = {{"role", "assistant"}};
    msg["content"] = (text.empty() && !tool_calls.empty()) ? json(nullptr) : json(text);
    if (!reasoning.empty()) {
      msg["reasoning_content"] = reasoning;
    }
    if (!thinking_blocks.empty()) {
      msg["thinking_blocks"] = std::move(thinking_blocks);  // signed: the client sends them back
    }
    if (!tool_calls.empty()) {
      msg["tool_calls"] = std::move(tool_calls);
    }
    choice["message"] = std::move(msg);
  }
  out["choices"] = json::array({std::move(choice)});
  out["usage"] = tally.to_json();
  translated_response r;
  r.body = detail::dump(out);
  if (u != nullptr) {
    r.tokens = tally.value();  // else known = false
  }
  return r;
}

// ---- stream -----------------------------------------------------------------

class anthropic_stream final : public stream_translator {
 public:
  anthropic_stream(call_type type, std::string_view model, bool include_usage)
      : writer_("chatcmpl-" + core::uuid4(), detail::unix_now(), std::string(model), type == call_type::completion),
        include_usage_(include_usage) {}

  core::result<void> feed(std::string_view bytes, std::vector<std::string>& payloads) override {
    if (failure_) {
      return *failure_;
    }
    events_.clear();
    parser_.feed(bytes, events_);
    for (auto& ev : events_) {
      if (stopped_) {
        break;  // nothing counts after message_stop
      }
      core::result<void> r;
      try {
        r = on_event(ev, payloads);
      } catch (const json::exception&) {  // a shape this code did not expect: malformed, never a crash
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

  core::result<void> finish(std::vector<std::string>&) override {
    if (failure_) {
      return *failure_;
    }
    if (!stopped_) {
      failure_ = core::make_error(core::errc::upstream_error,
                                  std::string(label) + " - stream ended before message_stop (stream cut)");
      return *failure_;
    }
    return {};
  }

  const usage& tokens() const override { return usage_; }

 private:
  enum class block_kind { text, tool, json_tool, thinking, other };
  struct block {
    block_kind kind = block_kind::other;
    int tool_index = 0;
    std::string thinking;   // a thinking block's text and signature, sent whole at its end
    std::string signature;
  };

  core::result<void> on_event(const upstream::sse_parser::event& ev, std::vector<std::string>& out) {
    if (ev.data.find_first_not_of(" \t\r\n") == std::string::npos) {
      return {};
    }
    if (plain_event(ev.data, out)) {
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
    if (type == "error") {
      return error_of(j);
    }
    if (type == "message_start") {
      return on_message_start(j, out);
    }
    if (type == "content_block_start") {
      return on_block_start(j, out);
    }
    if (type == "content_block_delta") {
      return on_block_delta(j, out);
    }
    if (type == "message_delta") {
      return on_message_delta(j, out);
    }
    if (type == "message_stop") {
      on_message_stop(out);
      return {};
    }
    if (type == "content_block_stop") {
      on_block_stop(index_of(j), out);
      return {};
    }
    // ping and event types added after this was written.
    return {};
  }

  // Most events of an answer are text deltas, and the rest are mostly pings, block stops
  // and the message's stop. Those, in their plain shape (a "type" written without escapes;
  // a text delta's delta a text_delta with a string text), are read from a scan of their
  // bytes, without the DOM every other event is read through: parsing and dumping a DOM
  // per event was most of the translation's cost. False, and nothing done, for anything
  // else.
  bool plain_event(std::string_view data, std::vector<std::string>& out) {
    if (!scan_json(data, scan_, max_json_depth) || scan_.root != json_kind::object) {
      return false;
    }
    const json_member* type = scan_.find("type");
    if (type == nullptr) {
      return false;
    }
    if (type->value == R"("content_block_delta")") {
      return text_delta(out);
    }
    if (type->value == R"("ping")") {
      return true;
    }
    if (type->value == R"("message_stop")") {
      on_message_stop(out);
      return true;
    }
    if (type->value == R"("content_block_stop")") {
      const json_member* index = scan_.find("index");
      if (index != nullptr && index->kind != json_kind::number) {
        return false;  // index_of's reading of such a value: left to the DOM
      }
      long long i = 0;
      if (index != nullptr) {
        const auto* end = index->value.data() + index->value.size();
        if (auto [p, ec] = std::from_chars(index->value.data(), end, i); ec != std::errc() || p != end) {
          return false;  // a fraction, an exponent, out of range
        }
      }
      on_block_stop(i, out);
      return true;
    }
    return false;
  }

  bool text_delta(std::vector<std::string>& out) {
    const json_member* delta = scan_.find("delta");
    if (delta == nullptr || delta->kind != json_kind::object || !scan_json(delta->value, delta_scan_, max_json_depth)) {
      return false;
    }
    const json_member* delta_type = delta_scan_.find("type");
    const json_member* text = delta_scan_.find("text");
    if (delta_type == nullptr || delta_type->value != R"("text_delta")" || text == nullptr ||
        text->kind != json_kind::string) {
      return false;
    }
    ensure_started(out);
    const std::string_view inside = text->value.substr(1, text->value.size() - 2);
    if (inside.empty()) {
      return true;
    }
    if (inside.find('\\') == std::string_view::npos) {
      writer_.content(inside, out);
    } else {
      writer_.content(json_unescape(inside), out);
    }
    return true;
  }

  void on_message_stop(std::vector<std::string>& out) {
    ensure_started(out);
    if (!finish_sent_) {
      writer_.finish(finish_reason(), out);
      finish_sent_ = true;
    }
    if (include_usage_) {
      writer_.usage_chunk(tally_.to_json(), out);
    }
    stopped_ = true;
  }

  // A finished thinking block goes out whole in delta.thinking_blocks (its signature
  // arrives last), for the client to send back with the assistant message.
  void on_block_stop(long long index, std::vector<std::string>& out) {
    auto it = blocks_.find(index);
    if (it != blocks_.end() && it->second.kind == block_kind::thinking) {
      writer_.thinking_block({{"type", "thinking"}, {"thinking", std::move(it->second.thinking)},
                              {"signature", std::move(it->second.signature)}},
                             out);
      blocks_.erase(it);
    }
  }

  void ensure_started(std::vector<std::string>& out) {
    if (!started_) {
      started_ = true;
      writer_.role(out);
    }
  }

  void track(const json& u, bool only_present) {
    tally_.update(u, only_present);
    usage_ = tally_.value();
  }

  core::result<void> on_message_start(const json& j, std::vector<std::string>& out) {
    if (started_) {
      return {};
    }
    if (const json* m = field(j, "message")) {
      if (auto id = string_field(*m, "id"); !id.empty()) {
        writer_.set_id(std::string(id));
      }
      if (const json* u = field(*m, "usage")) {
        track(*u, false);
      }
    }
    ensure_started(out);
    return {};
  }

  static long long index_of(const json& j) {
    const json* i = field(j, "index");
    return (i != nullptr && i->is_number_integer()) ? i->get<long long>() : 0;
  }

  core::result<void> on_block_start(const json& j, std::vector<std::string>& out) {
    ensure_started(out);
    const json* cb = field(j, "content_block");
    if (cb == nullptr || !cb->is_object()) {
      return detail::malformed_upstream(label, "content_block_start without a content_block");
    }
    auto bt = string_field(*cb, "type");
    block b;
    if (bt == "text") {
      b.kind = block_kind::text;
      if (auto t = string_field(*cb, "text"); !t.empty()) {
        writer_.content(t, out);
      }
    } else if (bt == "thinking") {
      b.kind = block_kind::thinking;
    } else if (bt == "redacted_thinking") {
      writer_.thinking_block({{"type", "redacted_thinking"}, {"data", string_field(*cb, "data")}}, out);
    } else if (bt == "tool_use") {
      auto name = string_field(*cb, "name");
      if (name == json_tool_name) {
        b.kind = block_kind::json_tool;
        json_answer_ = true;
      } else {
        b.kind = block_kind::tool;
        b.tool_index = tool_count_++;
        std::string id(string_field(*cb, "id"));
        if (id.empty()) {
          id = "toolu_" + core::random_hex(12);
        }
        writer_.tool_call(b.tool_index, id, name, "", out);
      }
    }
    blocks_[index_of(j)] = std::move(b);
    return {};
  }

  core::result<void> on_block_delta(const json& j, std::vector<std::string>& out) {
    ensure_started(out);
    const json* delta = field(j, "delta");
    if (delta == nullptr || !delta->is_object()) {
      return detail::malformed_upstream(label, "content_block_delta without a delta");
    }
    auto dt = string_field(*delta, "type");
    if (dt == "text_delta") {
      if (auto t = string_field(*delta, "text"); !t.empty()) {
        writer_.content(t, out);
      }
    } else if (dt == "thinking_delta") {
      if (auto t = string_field(*delta, "thinking"); !t.empty()) {
        writer_.reasoning(t, out);
        if (auto it = blocks_.find(index_of(j)); it != blocks_.end() && it->second.kind == block_kind::thinking) {
          it->second.thinking += t;
        }
      }
    } else if (dt == "signature_delta") {
      if (auto it = blocks_.find(index_of(j)); it != blocks_.end() && it->second.kind == block_kind::thinking) {
        it->second.signature += string_field(*delta, "signature");
      }
    } else if (dt == "input_json_delta") {
      auto it = blocks_.find(index_of(j));
      if (it == blocks_.end() || (it->second.kind != block_kind::tool && it->second.kind != block_kind::json_tool)) {
        return detail::malformed_upstream(label, "input_json_delta for a content block that is not a started tool_use");
      }
      auto part = string_field(*delta, "partial_json");
      if (part.empty()) {
        return {};
      }
      if (it->second.kind == block_kind::json_tool) {
        writer_.content(part, out);
      } else {
        writer_.tool_call(it->second.tool_index, "", "", part, out);
      }
    }
    // citations_delta and newer delta types carry nothing OpenAI has.
    return {};
  }

  core::result<void> on_message_delta(const json& j, std::vector<std::string>& out) {
    ensure_started(out);
    if (const json* u = field(j, "usage")) {
      track(*u, true);
    }
    const json* delta = field(j, "delta");
    if (delta != nullptr) {
      if (auto sr = string_field(*delta, "stop_reason"); !sr.empty()) {
        stop_reason_ = std::string(sr);
        if (!finish_sent_) {
          writer_.finish(finish_reason(), out);
          finish_sent_ = true;
        }
      }
    }
    return {};
  }

  std::string finish_reason() const {
    std::string f = finish_reason_of(stop_reason_);
    if (f == "tool_calls" && json_answer_ && tool_count_ == 0) {
      return "stop";
    }
    return f;
  }

  detail::chunk_writer writer_;
  bool include_usage_;
  json_scan scan_;        // text_delta's scans, reused across events
  json_scan delta_scan_;
  upstream::sse_parser parser_;
  std::vector<upstream::sse_parser::event> events_;
  std::map<long long, block> blocks_;
  token_tally tally_;
  usage usage_;
  std::string stop_reason_;
  std::optional<core::error> failure_;
  int tool_count_ = 0;
  bool started_ = false;
  bool finish_sent_ = false;
  bool stopped_ = false;
  bool json_answer_ = false;
};

class anthropic_messages final : public adapter {
 public:
  core::result<upstream_call> build(call_type type, const config::deployment& d, const json& body,
                                    const build_options& opts) const override {
    try {
      json storage;
      return build_messages_request(type, d, detail::with_deployment_params(type, d, body, storage), opts);
    } catch (const json::exception& e) {
      return detail::bad_param(std::string("could not translate the request for anthropic: ") + e.what(), "");
    }
  }

  std::optional<core::result<upstream_call>> build_raw(call_type type, const config::deployment& d,
                                                       std::string_view body, const json_scan& scan,
                                                       const build_options& opts) const override {
    return build_plain_messages(type, d, body, scan, opts);
  }

  core::result<translated_response> translate_response(call_type type, const config::deployment&,
                                                       std::string_view body,
                                                       std::string_view model) const override {
    try {
      return translate_messages_response(type, body, model);
    } catch (const json::exception& e) {
      return detail::malformed_upstream(label, std::string("unreadable response: ") + e.what());
    }
  }

  std::unique_ptr<stream_translator> make_stream(call_type type, const config::deployment&, std::string_view model,
                                                 bool include_usage) const override {
    return std::make_unique<anthropic_stream>(type, model, include_usage);
  }

  core::error translate_error(const config::deployment&, int status, std::string_view body) const override {
    return upstream_error(status, body, label);
  }

};

}  // namespace

core::result<json> detail::anthropic_messages_body(call_type type, const config::deployment& d, const json& body,
                                                   const build_options& opts) {
  try {
    return build_messages_body(type, d, body, opts);
  } catch (const json::exception& e) {
    return detail::bad_param(std::string("could not translate the request for anthropic: ") + e.what(), "");
  }
}

const adapter& anthropic_adapter() {
  static const anthropic_messages a;
  return a;
}

}  // namespace switchyard::providers
