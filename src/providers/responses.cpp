// The Responses API's translators (providers/responses.hpp).
#include "switchyard/providers/responses.hpp"

#include "adapter_util.hpp"
#include "switchyard/core/json_get.hpp"

#include <algorithm>
#include <array>
#include <cstdint>

namespace switchyard::providers {

using json = nlohmann::json;

namespace {

constexpr std::string_view b64_chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string base64_encode(std::string_view in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const std::uint32_t v = (static_cast<std::uint8_t>(in[i]) << 16) | (static_cast<std::uint8_t>(in[i + 1]) << 8) |
                            static_cast<std::uint8_t>(in[i + 2]);
    out += b64_chars[(v >> 18) & 63];
    out += b64_chars[(v >> 12) & 63];
    out += b64_chars[(v >> 6) & 63];
    out += b64_chars[v & 63];
  }
  if (i + 1 == in.size()) {
    const std::uint32_t v = static_cast<std::uint8_t>(in[i]) << 16;
    out += b64_chars[(v >> 18) & 63];
    out += b64_chars[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    const std::uint32_t v = (static_cast<std::uint8_t>(in[i]) << 16) | (static_cast<std::uint8_t>(in[i + 1]) << 8);
    out += b64_chars[(v >> 18) & 63];
    out += b64_chars[(v >> 12) & 63];
    out += b64_chars[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

// Standard or URL-safe alphabet, padding optional; nullopt on any other byte.
std::optional<std::string> base64_decode(std::string_view in) {
  static constexpr auto table = [] {
    std::array<std::int8_t, 256> t{};
    for (auto& x : t) {
      x = -1;
    }
    for (std::size_t i = 0; i < b64_chars.size(); ++i) {
      t[static_cast<std::uint8_t>(b64_chars[i])] = static_cast<std::int8_t>(i);
    }
    t[static_cast<std::uint8_t>('-')] = 62;
    t[static_cast<std::uint8_t>('_')] = 63;
    return t;
  }();
  while (!in.empty() && in.back() == '=') {
    in.remove_suffix(1);
  }
  std::string out;
  out.reserve(in.size() * 3 / 4);
  std::uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    const auto v = table[static_cast<std::uint8_t>(c)];
    if (v < 0) {
      return std::nullopt;
    }
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  return out;
}

using detail::ok;

core::error bad(std::string message, std::string param) {
  return core::make_error(core::errc::bad_request, std::move(message), std::move(param));
}

const json* member(const json& o, const char* key) {
  if (!o.is_object()) {
    return nullptr;
  }
  auto it = o.find(key);
  return it == o.end() || it->is_null() ? nullptr : &*it;
}

long long int_of(const json& o, const char* key) { return core::count_or(o, key); }

// Content parts of an input message -> chat content (a string when it is all text).
core::result<json> chat_content(const json& content, const std::string& role, std::size_t item) {
  if (content.is_string()) {
    return ok(content);
  }
  const std::string param = "input[" + std::to_string(item) + "].content";
  if (!content.is_array()) {
    return bad("`" + param + "` must be a string or an array of content parts", param);
  }
  json parts = json::array();
  bool all_text = true;
  std::string text;
  for (const auto& p : content) {
    const std::string type = core::string_or(p, "type");
    if (type == "input_text" || type == "output_text" || type == "text" || type == "refusal") {
      const auto* t = member(p, type == "refusal" ? "refusal" : "text");
      if (t == nullptr || !t->is_string()) {
        return bad("`" + param + "`: a " + type + " part needs a string `text`", param);
      }
      parts.push_back({{"type", "text"}, {"text", *t}});
      text += t->get_ref<const std::string&>();
    } else if (type == "input_image") {
      const auto* url = member(p, "image_url");
      if (url == nullptr || !url->is_string()) {
        return bad("`" + param + "`: input_image needs `image_url` (a URL or data URL); file_id images are served only by "
                   "OpenAI and Azure deployments",
                   param);
      }
      json image{{"url", *url}};
      if (const auto* d = member(p, "detail"); d != nullptr && d->is_string()) {
        image["detail"] = *d;
      }
      parts.push_back({{"type", "image_url"}, {"image_url", std::move(image)}});
      all_text = false;
    } else {
      return bad("`" + param + "`: content part type '" + type +
                     "' is served only by OpenAI and Azure deployments (supported here: input_text, input_image, "
                     "output_text)",
                 param);
    }
  }
  if (role == "assistant" || role == "system" || all_text) {
    if (!all_text) {
      return bad("`" + param + "`: images are accepted only in user messages", param);
    }
    return ok(json(text));
  }
  return ok(std::move(parts));
}

// Appends a tool call to the last assistant message, or starts one.
void add_tool_call(json& messages, json call) {
  if (messages.empty() || messages.back().value("role", "") != "assistant" ||
      (messages.back().contains("tool_calls") && !messages.back()["tool_calls"].is_array())) {
    messages.push_back({{"role", "assistant"}, {"content", nullptr}});
  }
  auto& last = messages.back();
  if (!last.contains("tool_calls")) {
    last["tool_calls"] = json::array();
  }
  last["tool_calls"].push_back(std::move(call));
}

core::result<void> append_items(json& messages, const json& items, bool from_history) {
  for (std::size_t i = 0; i < items.size(); ++i) {
    const auto& it = items[i];
    const std::string where = from_history ? "previous_response_id" : "input[" + std::to_string(i) + "]";
    const std::string param = from_history ? "previous_response_id" : "input";
    if (!it.is_object()) {
      return bad("`" + where + "` must be an object", param);
    }
    const std::string type = core::string_or(it, "type");
    if (type.empty() || type == "message") {
      std::string role = core::string_or(it, "role");
      if (role != "user" && role != "assistant" && role != "system" && role != "developer") {
        return bad("`" + where + ".role` must be one of user, assistant, system, developer", param);
      }
      if (role == "developer") {
        role = "system";  // chat's older name, which every adapter knows
      }
      const auto* content = member(it, "content");
      if (content == nullptr) {
        return bad("`" + where + ".content` is required", param);
      }
      auto c = chat_content(*content, role, i);
      if (!c) {
        return c.error();
      }
      messages.push_back({{"role", role}, {"content", std::move(*c)}});
    } else if (type == "function_call") {
      const auto* name = member(it, "name");
      const auto* call_id = member(it, "call_id");
      const auto* args = member(it, "arguments");
      if (name == nullptr || !name->is_string() || call_id == nullptr || !call_id->is_string() ||
          (args != nullptr && !args->is_string())) {
        return bad("`" + where + "`: a function_call item needs string `call_id`, `name` and `arguments`", param);
      }
      add_tool_call(messages, {{"id", *call_id},
                               {"type", "function"},
                               {"function", {{"name", *name}, {"arguments", args != nullptr ? *args : json("")}}}});
    } else if (type == "function_call_output") {
      const auto* call_id = member(it, "call_id");
      const auto* output = member(it, "output");
      if (call_id == nullptr || !call_id->is_string() || output == nullptr) {
        return bad("`" + where + "`: a function_call_output item needs string `call_id` and `output`", param);
      }
      json content;
      if (output->is_string()) {
        content = *output;
      } else {
        auto c = chat_content(*output, "tool", i);
        if (!c) {
          return c.error();
        }
        content = c->is_string() ? std::move(*c) : json(output->dump());
      }
      messages.push_back({{"role", "tool"}, {"tool_call_id", *call_id}, {"content", std::move(content)}});
    } else if (type == "reasoning") {
      continue;  // the provider's own reasoning: not replayed to another model
    } else {
      return bad("`" + where + "`: input item type '" + type +
                     "' is served only by OpenAI and Azure deployments (supported here: message, function_call, "
                     "function_call_output, reasoning)",
                 param);
    }
  }
  return {};
}

core::result<json> chat_tools(const json& tools) {
  if (!tools.is_array()) {
    return bad("`tools` must be an array", "tools");
  }
  json out = json::array();
  for (const auto& t : tools) {
    const std::string type = core::string_or(t, "type");
    if (type != "function") {
      return bad("`tools`: tool type '" + type +
                     "' is served only by OpenAI and Azure deployments (supported here: function)",
                 "tools");
    }
    const auto* name = member(t, "name");
    if (name == nullptr || !name->is_string()) {
      return bad("`tools`: a function tool needs a string `name`", "tools");
    }
    json fn{{"name", *name}};
    for (const char* k : {"description", "parameters", "strict"}) {
      if (const auto* v = member(t, k)) {
        fn[k] = *v;
      }
    }
    out.push_back({{"type", "function"}, {"function", std::move(fn)}});
  }
  return ok(std::move(out));
}

core::result<json> chat_tool_choice(const json& tc) {
  if (tc.is_string()) {
    const auto& s = tc.get_ref<const std::string&>();
    if (s == "auto" || s == "none" || s == "required") {
      return ok(tc);
    }
    return bad("`tool_choice` must be auto, none, required or a function", "tool_choice");
  }
  if (tc.is_object() && core::string_or(tc, "type") == "function" && member(tc, "name") != nullptr &&
      tc["name"].is_string()) {
    return ok(json{{"type", "function"}, {"function", {{"name", tc["name"]}}}});
  }
  return bad("`tool_choice` must be auto, none, required or {\"type\":\"function\",\"name\":...}", "tool_choice");
}

core::result<std::optional<json>> chat_response_format(const json& text) {
  if (!text.is_object()) {
    return bad("`text` must be an object", "text");
  }
  const auto* format = member(text, "format");
  if (format == nullptr) {
    return std::optional<json>{};
  }
  const std::string type = core::string_or(*format, "type");
  if (type == "text") {
    return std::optional<json>{};
  }
  if (type == "json_object") {
    return std::optional<json>{json{{"type", "json_object"}}};
  }
  if (type == "json_schema") {
    const auto* schema = member(*format, "schema");
    if (schema == nullptr || !schema->is_object()) {
      return bad("`text.format`: json_schema needs an object `schema`", "text.format");
    }
    json js{{"name", format->value("name", "response")}, {"schema", *schema}};
    for (const char* k : {"strict", "description"}) {
      if (const auto* v = member(*format, k)) {
        js[k] = *v;
      }
    }
    return std::optional<json>{json{{"type", "json_schema"}, {"json_schema", std::move(js)}}};
  }
  return bad("`text.format.type` must be text, json_object or json_schema", "text.format");
}

// The request members a Response object echoes, with the API's defaults.
void echo_request(json& r, const json& req) {
  auto copy = [&](const char* k, json dflt) {
    const auto* v = member(req, k);
    r[k] = v != nullptr ? *v : std::move(dflt);
  };
  copy("instructions", nullptr);
  copy("max_output_tokens", nullptr);
  copy("metadata", json::object());
  copy("parallel_tool_calls", true);
  copy("previous_response_id", nullptr);
  copy("reasoning", json{{"effort", nullptr}, {"summary", nullptr}});
  copy("store", true);
  copy("temperature", 1.0);
  copy("text", json{{"format", {{"type", "text"}}}});
  copy("tool_choice", "auto");
  copy("tools", json::array());
  copy("top_p", 1.0);
  copy("truncation", "disabled");
  copy("user", nullptr);
}

std::string function_item_id(const response_meta& meta, int n) {
  return "fc_" + meta.item_prefix + "_" + std::to_string(n);
}

// The text of a chat message's content (a string, or text parts).
std::string text_of_content(const json& c) {
  if (c.is_string()) {
    return c.get<std::string>();
  }
  std::string s;
  if (c.is_array()) {
    for (const auto& p : c) {
      if (core::string_or(p, "type") == "text" && p.contains("text") && p["text"].is_string()) {
        s += p["text"].get_ref<const std::string&>();
      }
    }
  }
  return s;
}

}  // namespace

// ---------------------------------------------------------------- endpoint

core::result<upstream_call> responses_endpoint(const config::deployment& d, std::string_view suffix,
                                               std::string_view bearer) {
  upstream_call call;
  const std::string_view base = api_base_view(d);
  if (base.empty()) {
    return detail::missing_api_base(d);
  }
  call.url = base;
  if (d.provider->wire == config::wire_format::azure) {
    // Azure serves the Responses API at the resource level (the deployment is the body's
    // `model`): /openai/responses with a dated api-version, or the v1 API at
    // /openai/v1/responses (api-version "v1", "latest" or "preview", or none).
    const std::string& v = d.api_version;
    if (v.empty() || v == "v1" || v == "latest" || v == "preview") {
      call.url += "/openai/v1/responses";
      call.url += suffix;
      if (v == "preview") {
        call.url += "?api-version=preview";
      }
    } else {
      call.url += "/openai/responses";
      call.url += suffix;
      call.url += "?api-version=" + v;
    }
    if (!bearer.empty()) {
      call.headers.emplace_back("authorization", "Bearer " + std::string(bearer));
    } else if (!d.api_key.empty()) {
      call.headers.emplace_back("api-key", d.api_key);
    }
  } else {
    call.url += "/responses";
    call.url += suffix;
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

// ---------------------------------------------------------------- ids

std::string encode_response_id(std::string_view provider, std::string_view model_id, std::string_view upstream_id) {
  std::string plain = "litellm:custom_llm_provider:";
  plain += provider;
  plain += ";model_id:";
  plain += model_id;
  plain += ";response_id:";
  plain += upstream_id;
  return "resp_" + base64_encode(plain);
}

std::optional<decoded_response_id> decode_response_id(std::string_view id) {
  if (id.substr(0, 5) != "resp_") {
    return std::nullopt;
  }
  auto plain = base64_decode(id.substr(5));
  constexpr std::string_view head = "litellm:custom_llm_provider:";
  if (!plain || plain->compare(0, head.size(), head) != 0) {
    return std::nullopt;
  }
  std::string_view rest(*plain);
  rest.remove_prefix(head.size());
  const auto m = rest.find(";model_id:");
  if (m == std::string_view::npos) {
    return std::nullopt;
  }
  const auto r = rest.find(";response_id:", m);
  if (r == std::string_view::npos) {
    return std::nullopt;
  }
  decoded_response_id d;
  d.provider = rest.substr(0, m);
  d.model_id = rest.substr(m + 10, r - m - 10);
  d.upstream_id = rest.substr(r + 13);
  // The id comes from the client and becomes a path segment of a call made with the
  // deployment's key: only the characters providers use in ids (`resp_68af...`), so
  // it can never name another path (`../files`) or add a query.
  if (d.upstream_id.empty() || d.upstream_id.size() > 256) {
    return std::nullopt;
  }
  for (char c : d.upstream_id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    if (!ok) {
      return std::nullopt;
    }
  }
  return d;
}

// ---------------------------------------------------------------- usage

usage usage_of_response(const json& u) {
  usage out;
  if (!u.is_object()) {
    return out;
  }
  out.prompt_tokens = int_of(u, "input_tokens");
  out.completion_tokens = int_of(u, "output_tokens");
  out.total_tokens = int_of(u, "total_tokens");
  if (out.total_tokens == 0) {
    out.total_tokens = out.prompt_tokens + out.completion_tokens;
  }
  if (const auto* d = member(u, "input_tokens_details")) {
    out.cached_tokens = int_of(*d, "cached_tokens");
  }
  if (const auto* d = member(u, "output_tokens_details")) {
    out.reasoning_tokens = int_of(*d, "reasoning_tokens");
  }
  out.known = true;
  return out;
}

json response_usage_json(const usage& u) {
  return json{{"input_tokens", u.prompt_tokens},
              {"input_tokens_details", {{"cached_tokens", u.cached_tokens}}},
              {"output_tokens", u.completion_tokens},
              {"output_tokens_details", {{"reasoning_tokens", u.reasoning_tokens}}},
              {"total_tokens", u.total_tokens != 0 ? u.total_tokens : u.prompt_tokens + u.completion_tokens}};
}

// ---------------------------------------------------------------- request

core::result<json> input_items_of(const json& request) {
  const auto* input = member(request, "input");
  if (input == nullptr) {
    return bad("`input` is required and must be a string or an array of input items", "input");
  }
  if (input->is_string()) {
    return ok(json::array({json{{"type", "message"}, {"role", "user"}, {"content", *input}}}));
  }
  if (!input->is_array()) {
    return bad("`input` must be a string or an array of input items", "input");
  }
  for (std::size_t i = 0; i < input->size(); ++i) {
    if (!(*input)[i].is_object()) {
      return bad("`input[" + std::to_string(i) + "]` must be an object", "input");
    }
  }
  return ok(*input);
}

core::result<json> responses_to_chat(const json& req, const json& history) {
  if (!req.is_object()) {
    return bad("Request body must be a JSON object", "");
  }
  if (const auto* bg = member(req, "background"); bg != nullptr && bg->is_boolean() && bg->get<bool>()) {
    return bad("`background` responses are served only by OpenAI and Azure deployments", "background");
  }
  json chat = json::object();
  chat["model"] = req.value("model", "");
  json messages = json::array();
  if (const auto* ins = member(req, "instructions")) {
    if (!ins->is_string()) {
      return bad("`instructions` must be a string", "instructions");
    }
    messages.push_back({{"role", "system"}, {"content", *ins}});
  }
  if (history.is_array()) {
    if (auto r = append_items(messages, history, true); !r) {
      return r.error();
    }
  }
  auto items = input_items_of(req);
  if (!items) {
    return items.error();
  }
  if (auto r = append_items(messages, *items, false); !r) {
    return r.error();
  }
  if (messages.empty()) {
    return bad("`input` must hold at least one item", "input");
  }
  chat["messages"] = std::move(messages);
  if (const auto* t = member(req, "tools")) {
    auto tools = chat_tools(*t);
    if (!tools) {
      return tools.error();
    }
    if (!tools->empty()) {
      chat["tools"] = std::move(*tools);
    }
  }
  if (const auto* tc = member(req, "tool_choice")) {
    auto c = chat_tool_choice(*tc);
    if (!c) {
      return c.error();
    }
    chat["tool_choice"] = std::move(*c);
  }
  if (const auto* m = member(req, "max_output_tokens")) {
    if (!m->is_number_integer() || m->get<long long>() < 1) {
      return bad("`max_output_tokens` must be a positive integer", "max_output_tokens");
    }
    chat["max_tokens"] = *m;
  }
  for (const char* k : {"temperature", "top_p"}) {
    if (const auto* v = member(req, k)) {
      if (!v->is_number()) {
        return bad(std::string("`") + k + "` must be a number", k);
      }
      chat[k] = *v;
    }
  }
  if (const auto* v = member(req, "parallel_tool_calls"); v != nullptr && chat.contains("tools")) {
    chat["parallel_tool_calls"] = *v;
  }
  if (const auto* v = member(req, "user"); v != nullptr && v->is_string()) {
    chat["user"] = *v;
  }
  if (const auto* r = member(req, "reasoning")) {
    if (const auto* e = member(*r, "effort"); e != nullptr && e->is_string()) {
      chat["reasoning_effort"] = *e;
    }
  }
  if (const auto* t = member(req, "text")) {
    auto rf = chat_response_format(*t);
    if (!rf) {
      return rf.error();
    }
    if (*rf) {
      chat["response_format"] = std::move(**rf);
    }
  }
  if (const auto* drops = member(req, "additional_drop_params")) {
    chat["additional_drop_params"] = *drops;
  }
  return ok(std::move(chat));
}

std::vector<std::string> responses_dropped_names(const config::deployment& d, const json_scan& scan) {
  std::vector<std::string> out;
  auto add = [&out](const std::string& name) {
    if (name != "model" && name != "input" && std::find(out.begin(), out.end(), name) == out.end()) {
      out.push_back(name);
    }
  };
  for (const auto& name : d.drop_param_names) {
    add(name);
  }
  if (const auto* a = scan.find("additional_drop_params"); a != nullptr && a->kind == json_kind::array) {
    for (const auto& name : detail::request_drop_names(json::parse(a->value, nullptr, false))) {
      add(name);
    }
  }
  return out;
}

const json& without_members(const json& request, const std::vector<std::string>& names, json& storage) {
  if (!request.is_object() ||
      std::none_of(names.begin(), names.end(), [&](const std::string& n) { return request.contains(n); })) {
    return request;
  }
  storage = request;
  for (const auto& n : names) {
    storage.erase(n);
  }
  return storage;
}

// ---------------------------------------------------------------- response

json response_skeleton(const response_meta& meta, std::string_view status) {
  json r = json::object();
  r["id"] = meta.id;
  r["object"] = "response";
  r["created_at"] = meta.created_at;
  r["status"] = status;
  r["error"] = nullptr;
  r["incomplete_details"] = nullptr;
  r["model"] = meta.model;
  r["output"] = json::array();
  echo_request(r, meta.request);
  r["usage"] = nullptr;
  return r;
}

core::result<json> chat_to_response(const json& chat, const response_meta& meta) {
  const auto* choices = member(chat, "choices");
  if (choices == nullptr || !choices->is_array() || choices->empty() || !(*choices)[0].is_object()) {
    return core::make_error(core::errc::internal, "the provider's answer has no choices");
  }
  const auto& c0 = (*choices)[0];
  const json empty = json::object();
  const auto* msg = member(c0, "message");
  const json& m = msg != nullptr && msg->is_object() ? *msg : empty;
  json output = json::array();
  if (const auto* rc = member(m, "reasoning_content"); rc != nullptr && rc->is_string() && !rc->get_ref<const std::string&>().empty()) {
    output.push_back({{"type", "reasoning"},
                      {"id", "rs_" + meta.item_prefix},
                      {"summary", json::array({json{{"type", "summary_text"}, {"text", *rc}}})}});
  }
  const std::string text = member(m, "content") != nullptr ? text_of_content(m["content"]) : std::string();
  if (!text.empty()) {
    output.push_back({{"type", "message"},
                      {"id", "msg_" + meta.item_prefix},
                      {"status", "completed"},
                      {"role", "assistant"},
                      {"content", json::array({json{{"type", "output_text"}, {"text", text}, {"annotations", json::array()}}})}});
  }
  int n = 0;
  if (const auto* calls = member(m, "tool_calls"); calls != nullptr && calls->is_array()) {
    for (const auto& tc : *calls) {
      const auto* fn = member(tc, "function");
      if (fn == nullptr) {
        continue;
      }
      output.push_back({{"type", "function_call"},
                        {"id", function_item_id(meta, n++)},
                        {"call_id", core::string_or(tc, "id")},
                        {"name", core::string_or(*fn, "name")},
                        {"arguments", core::string_or(*fn, "arguments")},
                        {"status", "completed"}});
    }
  }
  const std::string finish = core::string_or(c0, "finish_reason");
  json r = response_skeleton(meta, finish == "length" ? "incomplete" : "completed");
  if (finish == "length") {
    r["incomplete_details"] = {{"reason", "max_output_tokens"}};
  } else if (finish == "content_filter") {
    r["status"] = "incomplete";
    r["incomplete_details"] = {{"reason", "content_filter"}};
  }
  r["output"] = std::move(output);
  const auto u = usage_of(chat);
  r["usage"] = response_usage_json(u);
  return ok(std::move(r));
}

json output_as_input(const json& response) {
  json items = json::array();
  const auto* out = member(response, "output");
  if (out == nullptr || !out->is_array()) {
    return items;
  }
  for (const auto& it : *out) {
    const std::string type = core::string_or(it, "type");
    if (type == "message") {
      json content = json::array();
      if (const auto* c = member(it, "content"); c != nullptr && c->is_array()) {
        for (const auto& p : *c) {
          if (core::string_or(p, "type") == "output_text") {
            content.push_back({{"type", "output_text"}, {"text", core::string_or(p, "text")}});
          }
        }
      }
      items.push_back({{"type", "message"}, {"role", "assistant"}, {"content", std::move(content)}});
    } else if (type == "function_call") {
      items.push_back({{"type", "function_call"},
                       {"call_id", core::string_or(it, "call_id")},
                       {"name", core::string_or(it, "name")},
                       {"arguments", core::string_or(it, "arguments")}});
    }
  }
  return items;
}

// ---------------------------------------------------------------- stream

responses_event_writer::responses_event_writer(response_meta meta) : meta_(std::move(meta)) {}

void responses_event_writer::emit(std::string_view type, json ev, std::string& out) {
  ev["type"] = type;
  ev["sequence_number"] = seq_++;
  out += "event: ";
  out += type;
  out += "\ndata: ";
  out += ev.dump(-1, ' ', false, json::error_handler_t::replace);
  out += "\n\n";
}

json responses_event_writer::base_response(std::string_view status) const { return response_skeleton(meta_, status); }

void responses_event_writer::start(std::string& out) {
  emit("response.created", {{"response", base_response("in_progress")}}, out);
  emit("response.in_progress", {{"response", base_response("in_progress")}}, out);
}

// Announces an item at the next output_index (clients append it to their snapshot, so
// indexes follow the order of announcement, whichever items are still open).
std::size_t responses_event_writer::add_item(std::string& out, json item) {
  const std::size_t index = output_.size();
  output_.push_back(item);
  emit("response.output_item.added", {{"output_index", index}, {"item", std::move(item)}}, out);
  return index;
}

// Reasoning text (chat's reasoning_content) is streamed as OpenAI streams a reasoning
// summary: one reasoning item with one summary_text part, the same item the answer
// without streaming has.
void responses_event_writer::open_reasoning(std::string& out) {
  rs_open_ = true;
  rs_id_ = "rs_" + meta_.item_prefix;
  rs_text_.clear();
  if (reasonings_++ > 0) {
    rs_id_ += "_" + std::to_string(output_.size());
  }
  rs_index_ = add_item(out, {{"id", rs_id_}, {"type", "reasoning"}, {"summary", json::array()}});
  emit("response.reasoning_summary_part.added",
       {{"item_id", rs_id_},
        {"output_index", rs_index_},
        {"summary_index", 0},
        {"part", {{"type", "summary_text"}, {"text", ""}}}},
       out);
}

void responses_event_writer::close_reasoning(std::string& out) {
  if (!rs_open_) {
    return;
  }
  rs_open_ = false;
  json part{{"type", "summary_text"}, {"text", rs_text_}};
  emit("response.reasoning_summary_text.done",
       {{"item_id", rs_id_}, {"output_index", rs_index_}, {"summary_index", 0}, {"text", rs_text_}}, out);
  emit("response.reasoning_summary_part.done",
       {{"item_id", rs_id_}, {"output_index", rs_index_}, {"summary_index", 0}, {"part", part}}, out);
  json item{{"id", rs_id_}, {"type", "reasoning"}, {"summary", json::array({part})}};
  emit("response.output_item.done", {{"output_index", rs_index_}, {"item", item}}, out);
  output_[rs_index_] = std::move(item);
}

void responses_event_writer::open_message(std::string& out) {
  close_reasoning(out);
  msg_open_ = true;
  msg_id_ = "msg_" + meta_.item_prefix;
  if (messages_++ > 0) {
    msg_id_ += "_" + std::to_string(output_.size());
  }
  msg_text_.clear();
  msg_index_ = add_item(
      out,
      {{"id", msg_id_}, {"type", "message"}, {"status", "in_progress"}, {"role", "assistant"}, {"content", json::array()}});
  emit("response.content_part.added",
       {{"item_id", msg_id_},
        {"output_index", msg_index_},
        {"content_index", 0},
        {"part", {{"type", "output_text"}, {"text", ""}, {"annotations", json::array()}}}},
       out);
}

void responses_event_writer::close_message(std::string& out) {
  if (!msg_open_) {
    return;
  }
  msg_open_ = false;
  json part{{"type", "output_text"}, {"text", msg_text_}, {"annotations", json::array()}};
  emit("response.output_text.done",
       {{"item_id", msg_id_}, {"output_index", msg_index_}, {"content_index", 0}, {"text", msg_text_}}, out);
  emit("response.content_part.done",
       {{"item_id", msg_id_}, {"output_index", msg_index_}, {"content_index", 0}, {"part", part}}, out);
  json item{{"id", msg_id_},
            {"type", "message"},
            {"status", "completed"},
            {"role", "assistant"},
            {"content", json::array({part})}};
  emit("response.output_item.done", {{"output_index", msg_index_}, {"item", item}}, out);
  output_[msg_index_] = std::move(item);
}

void responses_event_writer::close_call(open_call& c, std::string& out) {
  emit("response.function_call_arguments.done", {{"item_id", c.id}, {"output_index", c.index}, {"arguments", c.args}},
       out);
  json item{{"id", c.id},
            {"type", "function_call"},
            {"status", "completed"},
            {"call_id", c.call_id},
            {"name", c.name},
            {"arguments", c.args}};
  emit("response.output_item.done", {{"output_index", c.index}, {"item", item}}, out);
  output_[c.index] = std::move(item);
}

// Ends every open item, in output_index order.
void responses_event_writer::close_all(std::string& out) {
  std::vector<std::pair<std::size_t, int>> open;  // (output_index, 0 reasoning / 1 message / 2 call)
  if (rs_open_) {
    open.emplace_back(rs_index_, 0);
  }
  if (msg_open_) {
    open.emplace_back(msg_index_, 1);
  }
  std::map<std::size_t, open_call*> by_index;
  for (auto& [chat_index, c] : calls_) {
    by_index[c.index] = &c;
    open.emplace_back(c.index, 2);
  }
  std::sort(open.begin(), open.end());
  for (const auto& [index, kind] : open) {
    if (kind == 0) {
      close_reasoning(out);
    } else if (kind == 1) {
      close_message(out);
    } else {
      close_call(*by_index[index], out);
    }
  }
  calls_.clear();
}

core::result<void> responses_event_writer::feed(std::string_view chunk, std::string& out) {
  auto j = json::parse(chunk, nullptr, false);
  if (!j.is_object()) {
    return core::make_error(core::errc::internal, "the provider's stream sent an event that is not JSON");
  }
  if (const auto* e = member(j, "error")) {
    auto err = core::make_error(core::errc::upstream_error,
                                e->is_object() ? e->value("message", e->dump()) : e->dump());
    return err;
  }
  const auto* choices = member(j, "choices");
  if (choices == nullptr || !choices->is_array() || choices->empty()) {
    return {};  // e.g. the usage chunk
  }
  const auto& c0 = (*choices)[0];
  if (const auto* fr = member(c0, "finish_reason"); fr != nullptr && fr->is_string()) {
    finish_reason_ = fr->get<std::string>();
  }
  const auto* delta = member(c0, "delta");
  if (delta == nullptr || !delta->is_object()) {
    return {};
  }
  if (const auto* rc = member(*delta, "reasoning_content"); rc != nullptr && rc->is_string() &&
                                                            !rc->get_ref<const std::string&>().empty()) {
    if (!rs_open_) {
      open_reasoning(out);
    }
    const auto& s = rc->get_ref<const std::string&>();
    rs_text_ += s;
    emit("response.reasoning_summary_text.delta",
         {{"item_id", rs_id_}, {"output_index", rs_index_}, {"summary_index", 0}, {"delta", s}}, out);
  }
  if (const auto* content = member(*delta, "content"); content != nullptr && content->is_string() &&
                                                       !content->get_ref<const std::string&>().empty()) {
    if (!msg_open_) {
      open_message(out);
    }
    const auto& s = content->get_ref<const std::string&>();
    msg_text_ += s;
    text_ += s;
    emit("response.output_text.delta",
         {{"item_id", msg_id_}, {"output_index", msg_index_}, {"content_index", 0}, {"delta", s}}, out);
  }
  if (const auto* calls = member(*delta, "tool_calls"); calls != nullptr && calls->is_array()) {
    for (const auto& tc : *calls) {
      if (!tc.is_object()) {
        continue;
      }
      const long long index = member(tc, "index") != nullptr && tc["index"].is_number_integer()
                                  ? tc["index"].get<long long>()
                                  : last_chat_index_ + (member(tc, "id") != nullptr || last_chat_index_ < 0 ? 1 : 0);
      last_chat_index_ = index;
      const json empty = json::object();
      const auto* fnp = member(tc, "function");
      const json& fn = fnp != nullptr && fnp->is_object() ? *fnp : empty;
      auto it = calls_.find(index);
      if (it == calls_.end()) {
        close_reasoning(out);
        close_message(out);
        open_call c;
        // Numbered by order of appearance, as the answer without streaming numbers them.
        c.id = function_item_id(meta_, static_cast<int>(calls_.size()));
        c.call_id = core::string_or(tc, "id");
        c.name = core::string_or(fn, "name");
        c.index = add_item(out,
                           {{"id", c.id},
                            {"type", "function_call"},
                            {"status", "in_progress"},
                            {"call_id", c.call_id},
                            {"name", c.name},
                            {"arguments", ""}});
        it = calls_.emplace(index, std::move(c)).first;
      } else {
        // Late names and ids are kept for the done events (the added one has gone out).
        if (it->second.name.empty()) {
          it->second.name = core::string_or(fn, "name");
        }
        if (it->second.call_id.empty()) {
          it->second.call_id = core::string_or(tc, "id");
        }
      }
      auto& c = it->second;
      if (const auto* a = member(fn, "arguments"); a != nullptr && a->is_string() &&
                                                   !a->get_ref<const std::string&>().empty()) {
        c.args += a->get_ref<const std::string&>();
        emit("response.function_call_arguments.delta", {{"item_id", c.id}, {"output_index", c.index}, {"delta", *a}},
             out);
      }
    }
  }
  return {};
}

void responses_event_writer::finish(const usage& u, std::string& out) {
  close_all(out);
  const bool incomplete = finish_reason_ == "length" || finish_reason_ == "content_filter";
  final_ = base_response(incomplete ? "incomplete" : "completed");
  if (incomplete) {
    final_["incomplete_details"] = {{"reason", finish_reason_ == "length" ? "max_output_tokens" : "content_filter"}};
  }
  final_["output"] = output_;
  final_["usage"] = response_usage_json(u);
  emit(incomplete ? "response.incomplete" : "response.completed", {{"response", final_}}, out);
}

json error_event_fields(const core::error& e) {
  return {{"code", e.status == 429 ? "rate_limit_exceeded" : "server_error"}, {"message", e.message}, {"param", nullptr}};
}

void responses_event_writer::fail(const core::error& e, std::string& out) {
  close_all(out);
  final_ = base_response("failed");
  final_["output"] = output_;
  json ev = error_event_fields(e);
  final_["error"] = {{"code", ev["code"]}, {"message", e.message}};
  emit("error", std::move(ev), out);
  emit("response.failed", {{"response", final_}}, out);
}

}  // namespace switchyard::providers
