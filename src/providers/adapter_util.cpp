#include "adapter_util.hpp"

#include "switchyard/core/json_get.hpp"
#include "switchyard/core/utf8.hpp"

#include <algorithm>
#include <charconv>
#include <cctype>
#include <chrono>
#include <cmath>

namespace switchyard::providers::detail {

long long unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

json parse_bounded(std::string_view text) {
  if (json_nesting_exceeds(text, max_json_depth)) {
    return json(json::value_t::discarded);
  }
  return json::parse(text, nullptr, false);
}

std::string dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

const json* field(const json& obj, std::string_view key) {
  if (!obj.is_object()) {
    return nullptr;
  }
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) {
    return nullptr;
  }
  return &*it;
}

std::string_view string_field(const json& obj, std::string_view key) {
  const json* v = field(obj, key);
  if (v == nullptr || !v->is_string()) {
    return {};
  }
  return v->get_ref<const std::string&>();
}

long long token_count(const json& obj, std::string_view key) { return core::count_or(obj, key); }

std::string base_of(const config::deployment& d) { return std::string(api_base_view(d)); }

core::error missing_api_base(const config::deployment& d) {
  return core::make_error(core::errc::bad_request,
                          std::string(d.provider->name) + " deployment '" + d.model_name + "' has no api_base");
}

namespace {
bool iequal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (std::size_t i = 0; i < a.size(); ++i) {
    auto x = static_cast<unsigned char>(a[i]);
    auto y = static_cast<unsigned char>(b[i]);
    if (std::tolower(x) != std::tolower(y)) {
      return false;
    }
  }
  return true;
}
}  // namespace

std::vector<std::string> request_drop_names(const json& listed) {
  std::vector<std::string> out;
  if (listed.is_array()) {
    for (const auto& name : listed) {
      if (name.is_string()) {
        out.push_back(name.get<std::string>());
      }
    }
  }
  return out;
}

const json& with_deployment_params(call_type type, const config::deployment& d, const json& body, json& storage) {
  if (!body.is_object()) {
    return body;
  }
  const bool defaults = type != call_type::embedding && !d.request_defaults.empty();
  std::vector<std::string> asked;
  if (auto it = body.find("additional_drop_params"); it != body.end()) {
    asked = request_drop_names(*it);
  }
  if (!defaults && d.drop_param_names.empty() && asked.empty()) {
    return body;
  }
  storage = body;
  if (defaults) {
    for (auto it = d.request_defaults.begin(); it != d.request_defaults.end(); ++it) {
      if (!storage.contains(it.key())) {
        storage[it.key()] = it.value();
      }
    }
  }
  // After the defaults: a name dropped by the deployment or by the request goes, whoever
  // set it (LiteLLM drops it from the arguments the deployment's params were merged into).
  for (const auto& name : d.drop_param_names) {
    storage.erase(name);
  }
  for (const auto& name : asked) {
    storage.erase(name);
  }
  return storage;
}

bool has_extra_header(const config::deployment& d, std::string_view name) {
  for (const auto& [k, v] : d.extra_headers) {
    if (iequal(k, name)) {
      return true;
    }
  }
  return false;
}

std::optional<data_url> parse_data_url(std::string_view url) {
  constexpr std::string_view scheme = "data:";
  if (url.size() < scheme.size() || !iequal(url.substr(0, scheme.size()), scheme)) {
    return std::nullopt;
  }
  url.remove_prefix(scheme.size());
  auto comma = url.find(',');
  if (comma == std::string_view::npos) {
    return std::nullopt;
  }
  auto meta = url.substr(0, comma);
  constexpr std::string_view b64 = ";base64";
  if (meta.size() < b64.size() || !iequal(meta.substr(meta.size() - b64.size()), b64)) {
    return std::nullopt;
  }
  meta.remove_suffix(b64.size());
  // Parameters such as ";charset=..." before ";base64" are not part of the media type.
  auto semi = meta.find(';');
  if (semi != std::string_view::npos) {
    meta = meta.substr(0, semi);
  }
  data_url out;
  out.media_type = std::string(meta);
  out.data = std::string(url.substr(comma + 1));
  return out;
}

std::string image_url_of(const json& part) {
  const json* iu = field(part, "image_url");
  if (iu == nullptr) {
    return {};
  }
  if (iu->is_string()) {
    return iu->get<std::string>();
  }
  return std::string(string_field(*iu, "url"));
}

std::string content_text(const json& content, std::string_view sep) {
  if (content.is_string()) {
    return content.get<std::string>();
  }
  std::string out;
  if (!content.is_array()) {
    return out;
  }
  bool first = true;
  for (const auto& part : content) {
    if (part.is_string()) {
      if (!first) {
        out += sep;
      }
      out += part.get_ref<const std::string&>();
      first = false;
      continue;
    }
    if (string_field(part, "type") != "text") {
      continue;
    }
    if (!first) {
      out += sep;
    }
    out += string_field(part, "text");
    first = false;
  }
  return out;
}

std::vector<std::string> stop_list(const json& stop) {
  std::vector<std::string> out;
  if (stop.is_string()) {
    out.push_back(stop.get<std::string>());
  } else if (stop.is_array()) {
    for (const auto& s : stop) {
      if (s.is_string()) {
        out.push_back(s.get<std::string>());
      }
    }
  }
  return out;
}

core::error unsupported_param(std::string_view provider, std::string_view param, const config::deployment& d,
                              std::string_view note) {
  std::string msg = std::string(provider) + " does not support parameters: ['" + std::string(param) + "']";
  if (!note.empty()) {
    msg += ' ';
    msg += note;
  }
  msg += ", for model=";
  msg += d.upstream_model;
  msg += ". To drop these, set `drop_params: true` in the request or, for the proxy, "
         "`litellm_settings: drop_params: true`.";
  return core::make_error(core::errc::bad_request, std::move(msg), std::string(param));
}

core::error bad_param(std::string message, std::string param) {
  return core::make_error(core::errc::bad_request, std::move(message), std::move(param));
}

core::error malformed_upstream(std::string_view label, std::string_view what) {
  return core::make_error(core::errc::upstream_error, std::string(label) + " - " + std::string(what));
}

bool is_noop_value(std::string_view name, const json& value) {
  if (value.is_null()) {
    return true;
  }
  if (name == "n" || name == "best_of") {
    return value.is_number() && value == 1;
  }
  if (name == "logprobs" || name == "echo" || name == "store") {
    return value.is_boolean() ? !value.get<bool>() : (value.is_number_integer() && value == 0);
  }
  if (name == "presence_penalty" || name == "frequency_penalty") {
    return value.is_number() && value == 0;
  }
  if (name == "logit_bias") {
    return value.is_object() && value.empty();
  }
  return false;
}

json chunk_writer::base() const {
  return json{{"id", id_},
              {"object", completion_ ? "text_completion" : "chat.completion.chunk"},
              {"created", created_},
              {"model", model_}};
}

void chunk_writer::push_choice(json choice, std::vector<std::string>& out) {
  json j = base();
  choice["index"] = index_;
  if (!choice.contains("finish_reason")) {
    choice["finish_reason"] = nullptr;
  }
  choice["logprobs"] = nullptr;
  j["choices"] = json::array({std::move(choice)});
  out.push_back(dump(j));
}

const std::string& chunk_writer::tail() {
  if (tail_.empty()) {
    // What follows "choices" in every chunk, in nlohmann's order (its objects are sorted).
    tail_ = R"(,"created":)";
    tail_ += std::to_string(created_);
    tail_ += R"(,"id":")";
    core::append_json_escaped(tail_, id_);
    tail_ += R"(","model":")";
    core::append_json_escaped(tail_, model_);
    tail_ += completion_ ? R"(","object":"text_completion"})" : R"(","object":"chat.completion.chunk"})";
  }
  return tail_;
}

void chunk_writer::append_index(std::string& s) const {
  s += R"("index":)";
  char num[24];
  s.append(num, static_cast<std::size_t>(std::to_chars(num, num + sizeof num, index_).ptr - num));
  s += R"(,"logprobs":null)";
}

// The chunks every translated stream sends (its role, its text, its finish) are written
// directly: the bytes push_choice's DOM would dump (nlohmann's objects are sorted by key;
// \b and \f come out as \u0008 and \u000c), without building and dumping a DOM per
// chunk, which was most of a translated stream's cost.
void chunk_writer::role(std::vector<std::string>& out) {
  if (completion_) {
    return;
  }
  std::string s = R"({"choices":[{"delta":{"content":"","role":"assistant"},"finish_reason":null,)";
  append_index(s);
  s += "}]";
  s += tail();
  out.push_back(std::move(s));
}

void chunk_writer::content(std::string_view text, std::vector<std::string>& out) {
  const std::string& rest = tail();
  std::string s;
  s.reserve(text.size() + rest.size() + 96);
  if (completion_) {
    s += R"({"choices":[{"finish_reason":null,)";
    append_index(s);
    s += R"(,"text":")";
    core::append_json_escaped(s, text);
    s += R"("}])";
  } else {
    s += R"({"choices":[{"delta":{"content":")";
    core::append_json_escaped(s, text);
    s += R"("},"finish_reason":null,)";
    append_index(s);
    s += "}]";
  }
  s += rest;
  out.push_back(std::move(s));
}

void chunk_writer::reasoning(std::string_view text, std::vector<std::string>& out) {
  if (completion_) {
    return;
  }
  push_choice(json{{"delta", {{"reasoning_content", text}}}}, out);
}

void chunk_writer::thinking_block(json block, std::vector<std::string>& out) {
  if (completion_) {
    return;
  }
  push_choice(json{{"delta", {{"thinking_blocks", json::array({std::move(block)})}}}}, out);
}

void chunk_writer::tool_call(int index, std::string_view call_id, std::string_view name, std::string_view arguments,
                             std::vector<std::string>& out) {
  if (completion_) {
    return;
  }
  json call = {{"index", index}};
  if (!call_id.empty()) {
    call["id"] = call_id;
    call["type"] = "function";
    call["function"] = {{"name", name}, {"arguments", arguments}};
  } else {
    call["function"] = {{"arguments", arguments}};
  }
  push_choice(json{{"delta", {{"tool_calls", json::array({std::move(call)})}}}}, out);
}

void chunk_writer::finish(std::string_view reason, std::vector<std::string>& out) {
  std::string s = completion_ ? R"({"choices":[{"finish_reason":")" : R"({"choices":[{"delta":{},"finish_reason":")";
  core::append_json_escaped(s, reason);
  s += "\",";
  append_index(s);
  s += completion_ ? R"(,"text":""}])" : "}]";
  s += tail();
  out.push_back(std::move(s));
}

void chunk_writer::usage_chunk(const json& usage, std::vector<std::string>& out) {
  json j = base();
  j["choices"] = json::array();
  j["usage"] = usage;
  out.push_back(dump(j));
}

json usage_json(long long prompt, long long completion) {
  return json{{"prompt_tokens", prompt}, {"completion_tokens", completion}, {"total_tokens", prompt + completion}};
}

usage usage_value(long long prompt, long long completion) {
  usage u;
  u.prompt_tokens = prompt;
  u.completion_tokens = completion;
  u.total_tokens = prompt + completion;
  u.known = true;
  return u;
}

}  // namespace switchyard::providers::detail
