// The Ollama adapter: `ollama_chat/<model>` -> POST /api/chat, `ollama/<model>` ->
// POST /api/generate (chat messages flattened into `prompt` + `system`),
// /v1/completions -> /api/generate, embeddings -> POST /api/embed. Answers, JSON or
// NDJSON streams, -> OpenAI JSON.
//
// Decisions:
// - `stream` is always sent explicitly (Ollama streams by default).
// - Sampling parameters go to `options` (temperature, top_p, seed, stop,
//   frequency_penalty, presence_penalty; max_tokens / max_completion_tokens ->
//   num_predict); response_format json_object -> format "json", json_schema ->
//   format <schema>; reasoning_effort -> think (false for "none").
// - Fields that are not OpenAI parameters: Ollama's own top-level ones (keep_alive,
//   think, raw, template, context, format, images, truncate, system, suffix) are
//   sent as they are, `options` is merged, anything else goes into `options`
//   (num_ctx, top_k, repeat_penalty, ...), as LiteLLM does.
// - `user` is dropped silently (it has no effect on an answer). tool_choice "auto"
//   is the default; "none" leaves the tools out; on /api/chat any other value
//   ("required", a named function) is not sent and the tools go alone, as LiteLLM does
//   (Ollama has no such field). n > 1, logprobs, logit_bias, tool_choice on
//   /api/generate, ... -> 400 naming the parameter unless drop_params.
// - Images must be base64 data URLs (Ollama takes no image URLs).
// - Flattening for /api/generate: system messages -> `system`; a lone user message
//   is the prompt as is; otherwise "### User:\n...\n\n### Assistant:\n...\n\n" ending
//   with "### Assistant:\n".
// - Tool calls get ids "call_<hex>" (Ollama has none); finish_reason is
//   "tool_calls" when the answer called tools, "length" for done_reason "length",
//   else "stop".
#include "adapter_util.hpp"
#include "ollama_stream.hpp"
#include "switchyard/core/ids.hpp"
#include "switchyard/core/json_get.hpp"
#include "switchyard/providers/adapter.hpp"
#include "switchyard/providers/json_scan.hpp"

#include <map>

namespace switchyard::providers {

namespace {

using detail::field;
using detail::string_field;
using json = nlohmann::json;

constexpr std::string_view label = "OllamaException";
constexpr std::string_view provider = "ollama";

bool is_unsupported_openai_param(std::string_view k) {
  static constexpr std::string_view names[] = {
      "n",          "logprobs",    "top_logprobs", "logit_bias",         "functions",         "function_call",
      "modalities", "audio",       "prediction",   "service_tier",       "store",             "web_search_options",
      "echo",       "best_of",     "prompt_cache_key", "safety_identifier", "verbosity"};
  for (auto n : names) {
    if (n == k) {
      return true;
    }
  }
  return false;
}

bool is_client_option(std::string_view k) {
  return k == "extra_headers" || k == "extra_body" || k == "timeout" || k == "stream_timeout" || k == "tags" ||
         k == "guardrails";
}

// Ollama request fields that live at the top level of /api/chat, /api/generate, /api/embed.
bool is_ollama_top_level(std::string_view k) {
  return k == "keep_alive" || k == "think" || k == "raw" || k == "template" || k == "context" || k == "format" ||
         k == "images" || k == "truncate" || k == "system" || k == "suffix";
}

// "" when the deployment has no api_base and its provider no default.
std::string url_of(const config::deployment& d, std::string_view path) {
  std::string base = detail::base_of(d);
  if (base.empty()) {
    return base;
  }
  for (std::string_view p : {"/api/chat", "/api/generate", "/api/embed", "/api"}) {
    if (base.size() >= p.size() && std::string_view(base).substr(base.size() - p.size()) == p) {
      base.resize(base.size() - p.size());
      break;
    }
  }
  return base + std::string(path);
}

std::string new_call_id() {
  return "call_" + core::random_hex(12);
}

// ---- request ----------------------------------------------------------------

struct converted_content {
  std::string text;
  json images = json::array();
};

core::result<converted_content> convert_content(const json& content, const std::string& where) {
  converted_content out;
  if (content.is_null()) {
    return out;
  }
  if (content.is_string()) {
    out.text = content.get<std::string>();
    return out;
  }
  if (!content.is_array()) {
    return detail::bad_param(where + ".content must be a string or a list of content parts", where + ".content");
  }
  for (std::size_t j = 0; j < content.size(); ++j) {
    const json& part = content[j];
    std::string pw = where + ".content[" + std::to_string(j) + "]";
    if (part.is_string()) {
      out.text += (out.text.empty() ? "" : "\n") + part.get<std::string>();
      continue;
    }
    auto type = string_field(part, "type");
    if (type == "text") {
      auto t = string_field(part, "text");
      if (!t.empty()) {
        if (!out.text.empty()) {
          out.text += "\n";
        }
        out.text += t;
      }
    } else if (type == "image_url") {
      auto du = detail::parse_data_url(detail::image_url_of(part));
      if (!du) {
        return detail::bad_param(pw + ": ollama takes images only as base64 data URLs", pw);
      }
      out.images.push_back(du->data);
    } else {
      return detail::bad_param(pw + ": content part type '" + std::string(type) + "' is not supported by ollama", pw);
    }
  }
  return out;
}

// OpenAI assistant tool_calls -> Ollama's (arguments as an object).
core::result<json> convert_tool_calls(const json& calls, const std::string& where,
                                      std::map<std::string, std::string>& names_by_id) {
  if (!calls.is_array()) {
    return detail::bad_param(where + ".tool_calls must be a list", where + ".tool_calls");
  }
  json out = json::array();
  for (std::size_t j = 0; j < calls.size(); ++j) {
    std::string cw = where + ".tool_calls[" + std::to_string(j) + "]";
    const json* fn = field(calls[j], "function");
    if (fn == nullptr || !fn->is_object()) {
      return detail::bad_param(cw + ".function is required", cw + ".function");
    }
    json args = json::object();
    const json* a = field(*fn, "arguments");
    if (a != nullptr && a->is_string() && !a->get_ref<const std::string&>().empty()) {
      args = detail::parse_bounded(a->get_ref<const std::string&>());
      if (args.is_discarded() || !args.is_object()) {
        return detail::bad_param(cw + ".function.arguments must be a JSON object", cw + ".function.arguments");
      }
    } else if (a != nullptr && a->is_object()) {
      args = *a;
    }
    std::string name(string_field(*fn, "name"));
    if (auto id = string_field(calls[j], "id"); !id.empty()) {
      names_by_id[std::string(id)] = name;
    }
    out.push_back({{"function", {{"name", name}, {"arguments", std::move(args)}}}});
  }
  return detail::ok(std::move(out));
}

core::result<json> chat_messages(const json& msgs) {
  if (!msgs.is_array()) {
    return detail::bad_param("messages must be a list", "messages");
  }
  json out = json::array();
  std::map<std::string, std::string> names_by_id;
  for (std::size_t i = 0; i < msgs.size(); ++i) {
    const json& m = msgs[i];
    std::string where = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) {
      return detail::bad_param(where + " must be an object", where);
    }
    std::string role(string_field(m, "role"));
    if (role == "developer") {
      role = "system";
    }
    if (role != "system" && role != "user" && role != "assistant" && role != "tool") {
      return detail::bad_param(where + ".role '" + role + "' is not supported by ollama", where + ".role");
    }
    const json* content = field(m, "content");
    auto c = convert_content(content != nullptr ? *content : json(), where);
    if (!c) {
      return c.error();
    }
    json msg = {{"role", role}, {"content", std::move(c->text)}};
    if (!c->images.empty()) {
      msg["images"] = std::move(c->images);
    }
    if (role == "assistant") {
      if (const json* calls = field(m, "tool_calls")) {
        auto tc = convert_tool_calls(*calls, where, names_by_id);
        if (!tc) {
          return tc.error();
        }
        if (!tc->empty()) {
          msg["tool_calls"] = std::move(*tc);
        }
      }
    } else if (role == "tool") {
      auto it = names_by_id.find(std::string(string_field(m, "tool_call_id")));
      if (it != names_by_id.end() && !it->second.empty()) {
        msg["tool_name"] = it->second;
      }
    }
    out.push_back(std::move(msg));
  }
  return detail::ok(std::move(out));
}

// Chat messages -> /api/generate's prompt, system and images.
core::result<void> flatten_messages(const json& msgs, json& out) {
  auto converted = chat_messages(msgs);
  if (!converted) {
    return converted.error();
  }
  std::string system;
  json turns = json::array();
  json images = json::array();
  for (auto& m : *converted) {
    if (m["role"] == "system") {
      if (!system.empty()) {
        system += "\n";
      }
      system += m["content"].get<std::string>();
      continue;
    }
    if (m.contains("images")) {
      for (auto& img : m["images"]) {
        images.push_back(std::move(img));
      }
    }
    turns.push_back(std::move(m));
  }
  std::string prompt;
  if (turns.size() == 1 && turns[0]["role"] == "user") {
    prompt = turns[0]["content"].get<std::string>();
  } else {
    for (const auto& t : turns) {
      const auto& role = t["role"].get_ref<const std::string&>();
      prompt += role == "user" ? "### User:\n" : role == "assistant" ? "### Assistant:\n" : "### Tool:\n";
      prompt += t["content"].get<std::string>();
      if (const json* calls = field(t, "tool_calls")) {
        prompt += detail::dump(*calls);
      }
      prompt += "\n\n";
    }
    if (!turns.empty()) {
      prompt += "### Assistant:\n";
    }
  }
  out["prompt"] = std::move(prompt);
  if (!system.empty()) {
    out["system"] = std::move(system);
  }
  if (!images.empty()) {
    out["images"] = std::move(images);
  }
  return {};
}

core::result<json> format_of(const json& rf) {
  auto type = string_field(rf, "type");
  if (type == "json_object") {
    return detail::ok(json("json"));
  }
  if (type == "json_schema") {
    const json* js = field(rf, "json_schema");
    const json* s = js != nullptr ? field(*js, "schema") : nullptr;
    if (s != nullptr && s->is_object()) {
      return detail::ok(*s);
    }
    return detail::ok(json("json"));
  }
  return detail::bad_param("response_format.type must be text, json_object or json_schema", "response_format");
}

core::result<upstream_call> build_embed_request(const config::deployment& d, const json& body,
                                                const build_options& opts) {
  json out = {{"model", d.upstream_model}};
  const json* input = field(body, "input");
  bool ok = input != nullptr && (input->is_string() || input->is_array());
  if (ok && input->is_array()) {
    for (const auto& s : *input) {
      ok = ok && s.is_string();
    }
  }
  if (!ok) {
    return detail::bad_param("input must be a string or a list of strings for ollama", "input");
  }
  out["input"] = *input;
  json options = json::object();
  for (auto it = body.begin(); it != body.end(); ++it) {
    const std::string& k = it.key();
    const json& v = it.value();
    if (is_gateway_field(k) || is_client_option(k) || v.is_null() || k == "model" || k == "input" || k == "user") {
      continue;
    }
    if (k == "dimensions") {
      out["dimensions"] = v;
    } else if (k == "encoding_format") {
      // "base64" is produced by the pipeline from Ollama's floats (encode_embeddings_base64).
      if (v != "float" && v != "base64" && !opts.drop_params) {
        return detail::unsupported_param(provider, "encoding_format", d);
      }
    } else if (k == "options" && v.is_object()) {
      options.update(v);
    } else if (is_ollama_top_level(k)) {
      out[k] = v;
    } else {
      options[k] = v;
    }
  }
  if (!options.empty()) {
    out["options"] = std::move(options);
  }
  upstream_call call;
  call.url = url_of(d, "/api/embed");
  if (call.url.empty()) {
    return detail::missing_api_base(d);
  }
  call.body = detail::dump(out);
  return call;
}

core::result<upstream_call> build_request(call_type type, const config::deployment& d, const json& body,
                                          const build_options& opts) {
  if (!body.is_object()) {
    return detail::bad_param("the request body must be a JSON object", "");
  }
  upstream_call call;
  if (!d.api_key.empty()) {
    call.headers.emplace_back("authorization", "Bearer " + d.api_key);  // Ollama behind an auth proxy / ollama.com
  }
  call.headers.emplace_back("content-type", "application/json");
  for (const auto& [k, v] : d.extra_headers) {
    call.headers.emplace_back(k, v);
  }
  if (type == call_type::embedding) {
    auto r = build_embed_request(d, body, opts);
    if (r) {
      r->headers = std::move(call.headers);
    }
    return r;
  }

  const bool chat_api = type == call_type::chat && d.provider->wire == config::wire_format::ollama_chat;
  json out = {{"model", d.upstream_model}};
  if (type == call_type::completion) {
    const json* p = field(body, "prompt");
    if (p != nullptr && p->is_string()) {
      out["prompt"] = *p;
    } else if (p != nullptr && p->is_array() && p->size() == 1 && (*p)[0].is_string()) {
      out["prompt"] = (*p)[0];
    } else {
      return detail::bad_param("prompt must be a string (or a list of one string) for ollama", "prompt");
    }
  } else {
    const json* msgs = field(body, "messages");
    if (msgs == nullptr) {
      return detail::bad_param("messages is required", "messages");
    }
    if (chat_api) {
      auto m = chat_messages(*msgs);
      if (!m) {
        return m.error();
      }
      out["messages"] = std::move(*m);
    } else if (auto r = flatten_messages(*msgs, out); !r) {
      return r.error();
    }
  }

  json options = json::object();
  std::optional<json> tools;
  bool tools_off = false;
  std::optional<long long> max_tokens;
  std::optional<long long> max_completion_tokens;
  for (auto it = body.begin(); it != body.end(); ++it) {
    const std::string& k = it.key();
    const json& v = it.value();
    if (is_gateway_field(k) || is_client_option(k) || v.is_null() || k == "model" || k == "messages" ||
        k == "prompt" || k == "stream" || k == "stream_options" || k == "user") {
      continue;
    }
    if (k == "max_tokens" || k == "max_completion_tokens") {
      if (!v.is_number_integer()) {
        return detail::bad_param(k + " must be an integer", k);
      }
      (k == "max_tokens" ? max_tokens : max_completion_tokens) = v.get<long long>();
    } else if (k == "temperature" || k == "top_p" || k == "seed" || k == "frequency_penalty" ||
               k == "presence_penalty" || k == "top_k") {
      options[k] = v;
    } else if (k == "stop") {
      auto stops = detail::stop_list(v);
      if (!stops.empty()) {
        options["stop"] = stops;
      }
    } else if (k == "response_format") {
      if (string_field(v, "type") == "text") {
        continue;
      }
      auto f = format_of(v);
      if (!f) {
        return f.error();
      }
      out["format"] = std::move(*f);
    } else if (k == "tools") {
      if (!v.is_array()) {
        return detail::bad_param("tools must be a list", "tools");
      }
      if (!v.empty()) {
        tools = v;
      }
    } else if (k == "tool_choice") {
      // Ollama has no tool_choice. "none" leaves the tools out; on /api/chat any other
      // value ("required", a named function) is accepted and not sent, the tools going
      // out alone, as LiteLLM's ollama_chat does (the model may then answer without a
      // call). /api/generate takes no tools at all, so there only "auto" passes.
      if (v == "none") {
        tools_off = true;
      } else if (v != "auto" && !chat_api && !opts.drop_params) {
        return detail::unsupported_param(provider, "tool_choice", d);
      }
    } else if (k == "parallel_tool_calls") {
      if (v == false && !opts.drop_params) {
        return detail::unsupported_param(provider, "parallel_tool_calls", d);
      }
    } else if (k == "reasoning_effort") {
      out["think"] = v != "none";
    } else if (k == "options") {
      if (!v.is_object()) {
        return detail::bad_param("options must be an object", "options");
      }
      options.update(v);
    } else if (is_unsupported_openai_param(k)) {
      if (detail::is_noop_value(k, v) || opts.drop_params) {
        continue;
      }
      return detail::unsupported_param(provider, k, d);
    } else if (is_ollama_top_level(k)) {
      out[k] = v;
    } else {
      options[k] = v;  // num_ctx, repeat_penalty, min_p, ...
    }
  }
  if (max_completion_tokens || max_tokens) {
    options["num_predict"] = max_completion_tokens.value_or(max_tokens.value_or(0));
  }
  if (tools && !tools_off) {
    if (!chat_api) {
      if (!opts.drop_params) {
        return detail::unsupported_param(provider, "tools", d, "on /api/generate (use ollama_chat/ for tool calling)");
      }
    } else {
      out["tools"] = std::move(*tools);
    }
  }
  if (!options.empty()) {
    out["options"] = std::move(options);
  }
  out["stream"] = opts.stream;

  call.url = url_of(d, chat_api ? "/api/chat" : "/api/generate");
  if (call.url.empty()) {
    return detail::missing_api_base(d);
  }
  call.body = detail::dump(out);
  return call;
}

// ---- response ---------------------------------------------------------------

// One /api/chat or /api/generate object's message parts.
struct answer_part {
  std::string text;
  std::string thinking;
  json tool_calls = json::array();  // OpenAI shape, without index
};

answer_part part_of(const json& j) {
  answer_part p;
  if (const json* m = field(j, "message")) {
    p.text = string_field(*m, "content");
    p.thinking = string_field(*m, "thinking");
    const json* calls = field(*m, "tool_calls");
    if (calls != nullptr && calls->is_array()) {
      for (const auto& c : *calls) {
        const json* fn = field(c, "function");
        if (fn == nullptr) {
          continue;
        }
        const json* a = field(*fn, "arguments");
        std::string args = a == nullptr ? "{}" : a->is_string() ? a->get<std::string>() : detail::dump(*a);
        std::string id(string_field(c, "id"));
        p.tool_calls.push_back({{"id", id.empty() ? new_call_id() : id},
                                {"type", "function"},
                                {"function", {{"name", string_field(*fn, "name")}, {"arguments", args}}}});
      }
    }
  } else {
    p.text = string_field(j, "response");
    p.thinking = string_field(j, "thinking");
  }
  return p;
}

std::string_view finish_reason_of(std::string_view done_reason, bool called_tools) {
  if (done_reason == "length") {
    return "length";
  }
  return called_tools ? "tool_calls" : "stop";
}

std::string finish_reason_of(const json& j, bool called_tools) {
  return std::string(finish_reason_of(string_field(j, "done_reason"), called_tools));
}

// Whether an answer carries token counts (Ollama leaves prompt_eval_count out when
// the whole prompt came from its cache, so either one is enough).
bool has_counts(const json& j) {
  return field(j, "prompt_eval_count") != nullptr || field(j, "eval_count") != nullptr;
}

core::error error_line(const json& j) {
  return upstream_error(500, detail::dump(j), label);
}

core::result<translated_response> translate_embed(const json& j, std::string_view model) {
  json data = json::array();
  const json* embs = field(j, "embeddings");
  if (embs != nullptr && embs->is_array()) {
    for (std::size_t i = 0; i < embs->size(); ++i) {
      data.push_back({{"object", "embedding"}, {"index", i}, {"embedding", (*embs)[i]}});
    }
  } else if (const json* one = field(j, "embedding"); one != nullptr && one->is_array()) {
    data.push_back({{"object", "embedding"}, {"index", 0}, {"embedding", *one}});  // legacy /api/embeddings
  } else {
    return detail::malformed_upstream(label, "the provider's embedding response has no embeddings");
  }
  long long prompt = detail::token_count(j, "prompt_eval_count");
  json out = {{"object", "list"},
              {"data", std::move(data)},
              {"model", model},
              {"usage", {{"prompt_tokens", prompt}, {"total_tokens", prompt}}}};
  translated_response r;
  r.body = detail::dump(out);
  if (field(j, "prompt_eval_count") != nullptr) {
    r.tokens = detail::usage_value(prompt, 0);
  }
  return r;
}

core::result<translated_response> translate(call_type type, std::string_view body, std::string_view model) {
  json j = detail::parse_bounded(body);
  if (j.is_discarded() || !j.is_object()) {
    return detail::malformed_upstream(label, "the provider returned a response that is not valid JSON");
  }
  if (field(j, "error") != nullptr) {
    return error_line(j);
  }
  if (type == call_type::embedding) {
    return translate_embed(j, model);
  }
  if (field(j, "message") == nullptr && field(j, "response") == nullptr) {
    return detail::malformed_upstream(label, "the provider's response has neither message nor response");
  }
  answer_part p = part_of(j);
  long long prompt = detail::token_count(j, "prompt_eval_count");
  long long completion = detail::token_count(j, "eval_count");
  bool completion_call = type == call_type::completion;
  std::string finish = finish_reason_of(j, !p.tool_calls.empty() && !completion_call);
  json out = {{"id", (completion_call ? "cmpl-" : "chatcmpl-") + core::uuid4()},
              {"object", completion_call ? "text_completion" : "chat.completion"},
              {"created", detail::unix_now()},
              {"model", model}};
  json choice = {{"index", 0}, {"finish_reason", finish}, {"logprobs", nullptr}};
  if (completion_call) {
    choice["text"] = p.text;
  } else {
    json msg = {{"role", "assistant"}};
    msg["content"] = (p.text.empty() && !p.tool_calls.empty()) ? json(nullptr) : json(p.text);
    if (!p.thinking.empty()) {
      msg["reasoning_content"] = p.thinking;
    }
    if (!p.tool_calls.empty()) {
      msg["tool_calls"] = std::move(p.tool_calls);
    }
    choice["message"] = std::move(msg);
  }
  out["choices"] = json::array({std::move(choice)});
  out["usage"] = detail::usage_json(prompt, completion);
  translated_response r;
  r.body = detail::dump(out);
  if (has_counts(j)) {
    r.tokens = detail::usage_value(prompt, completion);
  }
  return r;
}

// ---- stream -----------------------------------------------------------------

// Plain lines, without a DOM. Nearly every line of an answer is a piece of text (an
// /api/chat line's message {role, content}, an /api/generate line's response) and its
// done:false, or the last one: done:true, done_reason and the counts. Those are read from a
// scan of the line's bytes (scan_json validates it as the DOM's parser would, then a walk
// over the valid text reads the message) and written by the same chunk_writer calls with
// the same decoded text: the very bytes of the DOM reading. What the reading cannot vouch
// for leaves the whole line to the DOM before anything is changed: an error, thinking text,
// tool calls, a member it reads in another kind (a null, a string count, a fraction ...),
// a duplicate of such a member, a key written with an escape inside the message. Members
// the translation never reads (model, created_at, the durations, context, images ...) are
// skipped by both.
using detail::each_member;
using detail::kind_of;
using detail::plain_count;
using detail::text_of;

struct plain_line {
  bool has_message = false;
  std::string_view content;   // the message's content literal (with its quotes), if any
  std::string_view response;  // /api/generate's response literal, if any
  bool done = false;
  std::string_view done_reason;  // literal
  std::optional<long long> prompt_count;
  std::optional<long long> eval_count;

  void clear() { *this = plain_line{}; }
};

// {role, content}: content a string; thinking only when empty; nothing that makes a tool call.
bool plain_message(std::string_view object, plain_line& r) {
  bool has_content = false;
  bool has_thinking = false;
  return each_member(object, [&](std::string_view key, detail::valid_json_walk& w) {
    if (key != "content" && key != "thinking") {
      return key != "tool_calls";  // role, images, ...: not read
    }
    const std::string_view value = w.value();
    const json_kind kind = kind_of(value);
    if (key == "content") {
      if (has_content || kind != json_kind::string) {
        return false;
      }
      has_content = true;
      r.content = value;
      return true;
    }
    // thinking: reasoning goes out through the DOM's chunk
    if (has_thinking || value != R"("")") {
      return false;
    }
    has_thinking = true;
    return true;
  });
}

bool read_plain_line(const json_scan& scan, plain_line& r) {
  bool has_response = false;
  bool has_thinking = false;
  bool has_done = false;
  bool has_reason = false;
  for (const auto& m : scan.members) {
    if (m.key == "error") {
      return false;
    }
    if (m.key == "message") {
      if (r.has_message || m.kind != json_kind::object || !plain_message(m.value, r)) {
        return false;
      }
      r.has_message = true;
    } else if (m.key == "response") {
      if (has_response || m.kind != json_kind::string) {
        return false;
      }
      has_response = true;
      r.response = m.value;
    } else if (m.key == "thinking") {
      if (has_thinking || m.value != R"("")") {
        return false;
      }
      has_thinking = true;
    } else if (m.key == "done") {
      if (has_done || m.kind != json_kind::boolean) {
        return false;
      }
      has_done = true;
      r.done = m.value == "true";
    } else if (m.key == "done_reason") {
      if (has_reason || m.kind != json_kind::string) {
        return false;
      }
      has_reason = true;
      r.done_reason = m.value;
    } else if (m.key == "prompt_eval_count" || m.key == "eval_count") {
      auto& count = m.key == "eval_count" ? r.eval_count : r.prompt_count;
      if (count) {
        return false;
      }
      count = plain_count(m.value);
      if (!count) {
        return false;
      }
    }
    // model, created_at, the durations, context, ...: not read
  }
  return true;
}

// NDJSON: one JSON object per line; the last has "done": true with the counts.
class ollama_stream final : public stream_translator {
 public:
  ollama_stream(call_type type, std::string_view model, bool include_usage, stream_reading reading)
      : writer_((type == call_type::completion ? "cmpl-" : "chatcmpl-") + core::uuid4(), detail::unix_now(),
                std::string(model), type == call_type::completion),
        include_usage_(include_usage),
        reading_(reading) {}

  core::result<void> feed(std::string_view bytes, std::vector<std::string>& payloads) override {
    if (failure_) {
      return *failure_;
    }
    buf_.append(bytes);
    std::size_t start = 0;
    for (;;) {
      auto nl = buf_.find('\n', scan_);
      if (nl == std::string::npos) {
        break;
      }
      auto r = on_line(std::string_view(buf_).substr(start, nl - start), payloads);
      start = nl + 1;
      scan_ = start;
      if (!r) {
        failure_ = r.error();
        return r;
      }
    }
    buf_.erase(0, start);
    scan_ = buf_.size();
    if (buf_.size() > detail::max_pending_stream_bytes) {
      failure_ = detail::malformed_upstream(label, "the provider sent an oversized stream line");
      return *failure_;
    }
    return {};
  }

  core::result<void> finish(std::vector<std::string>& payloads) override {
    if (failure_) {
      return *failure_;
    }
    std::string rest = std::move(buf_);
    buf_.clear();
    scan_ = 0;
    // A last line without its newline counts if it is complete JSON; a partial one is a cut.
    if (!done_ && !json::accept(rest)) {
      rest.clear();
    }
    if (auto r = on_line(rest, payloads); !r) {
      failure_ = r.error();
      return r;
    }
    if (!done_) {
      failure_ = core::make_error(core::errc::upstream_error,
                                  std::string(label) + " - stream ended before the final done:true line (stream cut)");
      return *failure_;
    }
    return {};
  }

  const usage& tokens() const override { return usage_; }

 private:
  core::result<void> on_line(std::string_view line, std::vector<std::string>& out) {
    try {
      return translate_line(line, out);
    } catch (const json::exception&) {  // a shape this code did not expect: malformed, never a crash
      return detail::malformed_upstream(label, "the provider sent a stream line this gateway cannot read");
    }
  }

  core::result<void> translate_line(std::string_view line, std::vector<std::string>& out) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) {
      line.remove_suffix(1);
    }
    if (done_ || line.find_first_not_of(" \t\r") == std::string_view::npos) {
      return {};
    }
    if (!reading_.dom_only && plain_event(line, out)) {
      if (reading_.scanned != nullptr) {
        ++*reading_.scanned;
      }
      return {};
    }
    json j = detail::parse_bounded(line);
    if (j.is_discarded() || !j.is_object()) {
      return detail::malformed_upstream(label, "the provider sent a stream line that is not valid JSON");
    }
    if (field(j, "error") != nullptr) {
      return error_line(j);
    }
    if (!started_) {
      started_ = true;
      writer_.role(out);
    }
    answer_part p = part_of(j);
    if (!p.thinking.empty()) {
      writer_.reasoning(p.thinking, out);
    }
    if (!p.text.empty()) {
      writer_.content(p.text, out);
    }
    if (!writer_.completion()) {
      for (const auto& c : p.tool_calls) {
        writer_.tool_call(tool_count_++, c["id"].get<std::string>(), c["function"]["name"].get<std::string>(),
                          c["function"]["arguments"].get<std::string>(), out);
      }
    }
    const json* done = field(j, "done");
    if (done != nullptr && done->is_boolean() && done->get<bool>()) {
      done_ = true;
      writer_.finish(finish_reason_of(j, tool_count_ > 0), out);
      long long prompt = detail::token_count(j, "prompt_eval_count");
      long long completion = detail::token_count(j, "eval_count");
      if (has_counts(j)) {
        usage_ = detail::usage_value(prompt, completion);
      }
      if (include_usage_) {
        writer_.usage_chunk(detail::usage_json(prompt, completion), out);
      }
    }
    return {};
  }

  // A plain line (see read_plain_line) translated as translate_line's DOM reading
  // translates it. False, and nothing changed, for any other line.
  bool plain_event(std::string_view line, std::vector<std::string>& out) {
    if (!scan_json(line, line_scan_, max_json_depth) || line_scan_.root != json_kind::object) {
      return false;
    }
    plain_.clear();
    if (!read_plain_line(line_scan_, plain_)) {
      return false;
    }
    if (!started_) {
      started_ = true;
      writer_.role(out);
    }
    // The message's content when there is a message, else the response (part_of's rule).
    const std::string_view literal = plain_.has_message ? plain_.content : plain_.response;
    if (!literal.empty()) {
      if (auto text = text_of(literal, decoded_); !text.empty()) {
        writer_.content(text, out);
      }
    }
    if (plain_.done) {
      done_ = true;
      const std::string_view reason =
          plain_.done_reason.empty() ? std::string_view{} : text_of(plain_.done_reason, decoded_);
      writer_.finish(finish_reason_of(reason, tool_count_ > 0), out);
      const long long prompt = plain_.prompt_count.value_or(0);
      const long long completion = plain_.eval_count.value_or(0);
      if (plain_.prompt_count || plain_.eval_count) {
        usage_ = detail::usage_value(prompt, completion);
      }
      if (include_usage_) {
        writer_.usage_chunk(detail::usage_json(prompt, completion), out);
      }
    }
    return true;
  }

  detail::chunk_writer writer_;
  bool include_usage_;
  stream_reading reading_;
  json_scan line_scan_;  // plain lines' scans and readings, reused across lines
  plain_line plain_;
  std::string decoded_;
  std::string buf_;
  std::size_t scan_ = 0;  // buf_ offset up to which '\n' was searched
  usage usage_;
  std::optional<core::error> failure_;
  int tool_count_ = 0;
  bool started_ = false;
  bool done_ = false;
};

class ollama_api final : public adapter {
 public:
  core::result<upstream_call> build(call_type type, const config::deployment& d, const json& body,
                                    const build_options& opts) const override {
    try {
      json storage;
      return build_request(type, d, detail::with_deployment_params(type, d, body, storage), opts);
    } catch (const json::exception& e) {
      return detail::bad_param(std::string("could not translate the request for ollama: ") + e.what(), "");
    }
  }

  core::result<translated_response> translate_response(call_type type, const config::deployment&,
                                                       std::string_view body,
                                                       std::string_view model) const override {
    try {
      return translate(type, body, model);
    } catch (const json::exception& e) {
      return detail::malformed_upstream(label, std::string("unreadable response: ") + e.what());
    }
  }

  std::unique_ptr<stream_translator> make_stream(call_type type, const config::deployment&, std::string_view model,
                                                 bool include_usage) const override {
    return std::make_unique<ollama_stream>(type, model, include_usage, stream_reading{});
  }

  core::error translate_error(const config::deployment&, int status, std::string_view body) const override {
    return upstream_error(status, body, label);
  }

};

}  // namespace

const adapter& ollama_adapter() {
  static const ollama_api a;
  return a;
}

std::unique_ptr<stream_translator> make_ollama_stream(call_type type, std::string_view model, bool include_usage,
                                                      stream_reading reading) {
  return std::make_unique<ollama_stream>(type, model, include_usage, reading);
}

}  // namespace switchyard::providers
