#include "switchyard/spend/record.hpp"

#include "switchyard/core/utf8.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>

namespace switchyard::spend {

using json = nlohmann::json;

std::size_t spend_row::approx_bytes() const {
  return sizeof(spend_row) + row_id.size() + request_id.size() + call_type.size() + api_key.size() +
         key_alias.size() + user_id.size() + team_id.size() + organization_id.size() + end_user.size() +
         model.size() + model_group.size() + model_id.size() + provider.size() + api_base.size() + error_type.size() +
         requester_ip.size() + session_id.size() + tags_json.size() + metadata_json.size() + messages_json.size() +
         response_json.size();
}


namespace {

// jsonb refuses the NUL character: NULs in stored strings become U+FFFD.
void replace_nuls(std::string& s) {
  for (std::size_t at = s.find('\0'); at != std::string::npos; at = s.find('\0', at)) {
    s.replace(at, 1, "\xEF\xBF\xBD");
  }
}

void replace_nuls(json& j) {
  if (j.is_string()) {
    replace_nuls(j.get_ref<std::string&>());
  } else if (j.is_array() || j.is_object()) {
    for (auto& v : j) {
      replace_nuls(v);
    }
  }
}

// The first `cap` bytes of `s`, not cutting a UTF-8 sequence.
std::string_view head_of(std::string_view s, std::size_t cap) {
  if (s.size() <= cap) {
    return s;
  }
  std::size_t n = cap;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) {
    --n;
  }
  return s.substr(0, n);
}

std::string dump_stored(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

}  // namespace

std::string stored_json(std::string_view json_text, std::size_t whole_bytes) {
  const std::size_t whole = std::max(whole_bytes, json_text.size());
  if (whole <= max_stored_bytes) {
    if (json_text.find("\\u0000") == std::string_view::npos) {
      return std::string(json_text);  // validated where it is written (append_json)
    }
    json j = json::parse(json_text, nullptr, false);
    if (!j.is_discarded()) {
      replace_nuls(j);
      return dump_stored(j);
    }
  }
  std::string head(head_of(json_text, max_stored_bytes));
  replace_nuls(head);
  return dump_stored(json{{"truncated", whole > max_stored_bytes}, {"bytes", whole}, {"text", std::move(head)}});
}

std::string stored_stream_response(bool chat, std::string_view text, bool truncated) {
  std::string t(head_of(text, max_stored_bytes));
  truncated = truncated || t.size() < text.size();
  replace_nuls(t);
  json choice = {{"index", 0}};
  if (chat) {
    choice["message"] = {{"role", "assistant"}, {"content", std::move(t)}};
  } else {
    choice["text"] = std::move(t);
  }
  json out = {{"object", chat ? "chat.completion" : "text_completion"}, {"choices", json::array({std::move(choice)})}};
  if (truncated) {
    out["truncated"] = true;
  }
  return dump_stored(out);
}

namespace {

// A JSON string.
void put_string(std::string& out, std::string_view s) {
  out += '"';
  core::append_json_escaped(out, s);
  out += '"';
}

// A field of COPY's text format: backslash, tab, newline and carriage return escaped. A NUL
// byte, which no Postgres text can hold, becomes U+FFFD as invalid UTF-8 does.
void put_copy(std::string& out, std::string_view s) {
  core::append_utf8(out, s, [](std::string& o, unsigned char c) {
    switch (c) {
      case '\\': o += "\\\\"; return true;
      case '\n': o += "\\n"; return true;
      case '\r': o += "\\r"; return true;
      case '\t': o += "\\t"; return true;
      case 0: o += "\xEF\xBF\xBD"; return true;
      default: return false;
    }
  });
}

void put_key(std::string& out, const char* key, bool first = false) {
  if (!first) {
    out += ',';
  }
  out += '"';
  out += key;
  out += "\":";
}

void put(std::string& out, const char* key, std::string_view v) {
  put_key(out, key);
  put_string(out, v);
}

void put(std::string& out, const char* key, long long v) {
  put_key(out, key);
  char buf[32];
  out.append(buf, static_cast<std::size_t>(std::to_chars(buf, buf + sizeof buf, v).ptr - buf));
}

void put(std::string& out, const char* key, double v) {
  put_key(out, key);
  if (!std::isfinite(v)) {
    out += '0';
    return;
  }
  char buf[32];
  out.append(buf, static_cast<std::size_t>(std::to_chars(buf, buf + sizeof buf, v).ptr - buf));
}

void put(std::string& out, const char* key, bool v) {
  put_key(out, key);
  out += v ? "true" : "false";
}

// A JSON value kept as text: used as is when it is valid JSON, else `fallback`.
void put_raw_value(std::string& out, const std::string& text, const char* fallback) {
  if (!text.empty() && nlohmann::json::accept(text)) {
    // Re-dumped to drop invalid UTF-8 the text may hold (accept() does not check it).
    auto j = nlohmann::json::parse(text, nullptr, false);
    out += j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  } else {
    out += fallback;
  }
}

void put_raw(std::string& out, const char* key, const std::string& text, const char* fallback) {
  put_key(out, key);
  put_raw_value(out, text, fallback);
}

// COPY text fields.
void copy_sep(std::string& out) { out += '\t'; }

void copy_int(std::string& out, long long v) {
  char buf[32];
  out.append(buf, static_cast<std::size_t>(std::to_chars(buf, buf + sizeof buf, v).ptr - buf));
  copy_sep(out);
}

void copy_str(std::string& out, std::string_view v) {
  put_copy(out, v);
  copy_sep(out);
}

void copy_json(std::string& out, const std::string& text, const char* empty, const char* fallback) {
  if (text == empty) {
    out += empty;
  } else {
    std::string v;
    put_raw_value(v, text, fallback);
    put_copy(out, v);
  }
}

}  // namespace

void append_json(std::string& out, const spend_row& r) {
  out += '{';
  put_key(out, "row_id", true);
  put_string(out, r.row_id);
  put(out, "request_id", r.request_id);
  put(out, "call_type", r.call_type);
  put(out, "api_key", r.api_key);
  put(out, "key_alias", r.key_alias);
  put(out, "user_id", r.user_id);
  put(out, "team_id", r.team_id);
  put(out, "organization_id", r.organization_id);
  put(out, "end_user", r.end_user);
  put(out, "model", r.model);
  put(out, "model_group", r.model_group);
  put(out, "model_id", r.model_id);
  put(out, "custom_llm_provider", r.provider);
  put(out, "api_base", r.api_base);
  put(out, "prompt_tokens", r.prompt_tokens);
  put(out, "completion_tokens", r.completion_tokens);
  put(out, "total_tokens", r.total_tokens);
  put(out, "cached_tokens", r.cached_tokens);
  put(out, "cache_creation_tokens", r.cache_creation_tokens);
  put(out, "reasoning_tokens", r.reasoning_tokens);
  put(out, "usage_estimated", r.usage_estimated);
  put(out, "spend", r.spend);
  put(out, "start_us", static_cast<long long>(r.start_us));
  put(out, "end_us", static_cast<long long>(r.end_us));
  put(out, "completion_start_us", static_cast<long long>(r.completion_start_us));
  put(out, "success", r.success);
  put(out, "status_code", static_cast<long long>(r.status_code));
  put(out, "error_type", r.error_type);
  put(out, "cache_hit", r.cache_hit);
  put(out, "retries", static_cast<long long>(r.retries));
  put(out, "fallbacks", static_cast<long long>(r.fallbacks));
  put(out, "requester_ip_address", r.requester_ip);
  put(out, "session_id", r.session_id);
  if (r.tags_json == "[]") {
    put_key(out, "request_tags");
    out += "[]";
  } else {
    put_raw(out, "request_tags", r.tags_json, "[]");
  }
  if (r.metadata_json == "{}") {
    put_key(out, "metadata");
    out += "{}";
  } else {
    put_raw(out, "metadata", r.metadata_json, "{}");
  }
  if (!r.messages_json.empty()) {
    put_raw(out, "messages", r.messages_json, "null");
  }
  if (!r.response_json.empty()) {
    put_raw(out, "response", r.response_json, "null");
  }
  out += '}';
}

void append_copy_line(std::string& out, const spend_row& r) {
  copy_str(out, r.row_id);
  copy_str(out, r.request_id);
  copy_str(out, r.call_type);
  copy_str(out, r.api_key);
  copy_str(out, r.key_alias);
  copy_str(out, r.user_id);
  copy_str(out, r.team_id);
  copy_str(out, r.organization_id);
  copy_str(out, r.end_user);
  copy_str(out, r.model);
  copy_str(out, r.model_group);
  copy_str(out, r.model_id);
  copy_str(out, r.provider);
  copy_str(out, r.api_base);
  copy_int(out, r.prompt_tokens);
  copy_int(out, r.completion_tokens);
  copy_int(out, r.total_tokens);
  copy_int(out, r.cached_tokens);
  copy_int(out, r.cache_creation_tokens);
  copy_int(out, r.reasoning_tokens);
  out += r.usage_estimated ? "t\t" : "f\t";
  {
    char buf[32];
    const double v = std::isfinite(r.spend) ? r.spend : 0.0;
    out.append(buf, static_cast<std::size_t>(std::to_chars(buf, buf + sizeof buf, v).ptr - buf));
    copy_sep(out);
  }
  copy_int(out, r.start_us);
  copy_int(out, r.end_us);
  copy_int(out, r.completion_start_us);
  out += r.success ? "t\t" : "f\t";
  copy_int(out, r.status_code);
  copy_str(out, r.error_type);
  out += r.cache_hit ? "t\t" : "f\t";
  copy_int(out, r.retries);
  copy_int(out, r.fallbacks);
  copy_str(out, r.requester_ip);
  copy_str(out, r.session_id);
  copy_json(out, r.tags_json, "[]", "[]");
  copy_sep(out);
  copy_json(out, r.metadata_json, "{}", "{}");
  copy_sep(out);
  if (r.messages_json.empty()) {
    out += "\\N";
  } else {
    copy_json(out, r.messages_json, "", "null");
  }
  copy_sep(out);
  if (r.response_json.empty()) {
    out += "\\N";
  } else {
    copy_json(out, r.response_json, "", "null");
  }
  out += '\n';
}

core::result<spend_row> row_from_json(std::string_view text) {
  auto j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return core::make_error(core::errc::bad_request, "spend row: not a JSON object");
  }
  try {
    spend_row r;
    auto str = [&](const char* k) { return j.value(k, std::string()); };
    r.row_id = str("row_id");
    if (r.row_id.empty()) {
      return core::make_error(core::errc::bad_request, "spend row: no row_id");
    }
    r.request_id = str("request_id");
    r.call_type = str("call_type");
    r.api_key = str("api_key");
    r.key_alias = str("key_alias");
    r.user_id = str("user_id");
    r.team_id = str("team_id");
    r.organization_id = str("organization_id");
    r.end_user = str("end_user");
    r.model = str("model");
    r.model_group = str("model_group");
    r.model_id = str("model_id");
    r.provider = str("custom_llm_provider");
    r.api_base = str("api_base");
    r.prompt_tokens = j.value("prompt_tokens", 0LL);
    r.completion_tokens = j.value("completion_tokens", 0LL);
    r.total_tokens = j.value("total_tokens", 0LL);
    r.cached_tokens = j.value("cached_tokens", 0LL);
    r.cache_creation_tokens = j.value("cache_creation_tokens", 0LL);
    r.reasoning_tokens = j.value("reasoning_tokens", 0LL);
    r.usage_estimated = j.value("usage_estimated", false);
    r.spend = j.value("spend", 0.0);
    r.start_us = j.value("start_us", std::int64_t{0});
    r.end_us = j.value("end_us", std::int64_t{0});
    r.completion_start_us = j.value("completion_start_us", std::int64_t{0});
    r.success = j.value("success", true);
    r.status_code = j.value("status_code", 0);
    r.error_type = str("error_type");
    r.cache_hit = j.value("cache_hit", false);
    r.retries = j.value("retries", 0);
    r.fallbacks = j.value("fallbacks", 0);
    r.requester_ip = str("requester_ip_address");
    r.session_id = str("session_id");
    r.tags_json = j.contains("request_tags") ? j["request_tags"].dump() : "[]";
    r.metadata_json = j.contains("metadata") ? j["metadata"].dump() : "{}";
    if (j.contains("messages") && !j["messages"].is_null()) {
      r.messages_json = j["messages"].dump();
    }
    if (j.contains("response") && !j["response"].is_null()) {
      r.response_json = j["response"].dump();
    }
    return r;
  } catch (const json::exception& e) {
    return core::make_error(core::errc::bad_request, std::string("spend row: ") + e.what());
  }
}

}  // namespace switchyard::spend
