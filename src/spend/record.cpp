#include "switchyard/spend/record.hpp"

#include "switchyard/core/civil_date.hpp"
#include "switchyard/core/utf8.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <functional>
#include <unordered_map>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>

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
  } else if (j.is_array()) {
    for (auto& v : j) {
      replace_nuls(v);
    }
  } else if (j.is_object()) {
    bool in_a_key = false;
    for (auto it = j.begin(); it != j.end(); ++it) {
      replace_nuls(it.value());
      in_a_key = in_a_key || it.key().find('\0') != std::string::npos;
    }
    if (in_a_key) {  // keys cannot be changed in place: the object is made again
      json fixed = json::object();
      for (auto& [k, v] : j.items()) {
        std::string key = k;
        replace_nuls(key);
        fixed[key] = std::move(v);
      }
      j = std::move(fixed);
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

// A byte of a field of COPY's text format: backslash, tab, newline and carriage return
// escaped. A NUL byte, which no Postgres text can hold, becomes U+FFFD as invalid UTF-8 does.
// At most 3 bytes for one.
char* copy_escape_byte(char* o, unsigned char c) {
  const auto put = [&](const char* two) {
    o[0] = two[0];
    o[1] = two[1];
    return o + 2;
  };
  switch (c) {
    case '\\': return put("\\\\");
    case '\n': return put("\\n");
    case '\r': return put("\\r");
    case '\t': return put("\\t");
    case 0: std::memcpy(o, "\xEF\xBF\xBD", 3); return o + 3;
    default: return nullptr;
  }
}
constexpr std::size_t copy_escape_max = 3;

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
    // Re-dumped to drop invalid UTF-8 the text may hold (accept() does not check it), and
    // NUL characters, which jsonb refuses (the row would be refused whole: its spend lost
    // to the rejected file), as U+FFFD.
    auto j = nlohmann::json::parse(text, nullptr, false);
    if (text.find("\\u0000") != std::string::npos) {
      replace_nuls(j);
    }
    out += j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  } else {
    out += fallback;
  }
}

void put_raw(std::string& out, const char* key, const std::string& text, const char* fallback) {
  put_key(out, key);
  put_raw_value(out, text, fallback);
}

// A Unix time in microseconds as timestamptz text, "YYYY-MM-DD HH:MM:SS.ffffff+00" (30
// bytes): the exact microsecond, as the staging path's to_timestamp gives it. A row's
// times, and a batch's rows, fall in the same few seconds: the text up to the second is
// made once per second (per writing thread) and copied.
char* put_utc(char* o, std::int64_t us) {
  constexpr std::int64_t us_per_s = 1'000'000;
  const std::int64_t sec = us / us_per_s - (us % us_per_s < 0 ? 1 : 0);  // floor
  const std::int64_t frac = us - sec * us_per_s;
  const auto digits = [](char* at, std::int64_t v, int n) {
    for (int i = n - 1; i >= 0; --i) {
      at[i] = static_cast<char>('0' + v % 10);
      v /= 10;
    }
  };
  constexpr std::size_t to_second = 20;  // "YYYY-MM-DD HH:MM:SS."
  thread_local std::int64_t made_for = std::numeric_limits<std::int64_t>::min();
  thread_local char made[to_second];
  if (sec != made_for) {
    const std::int64_t day = core::unix_day_of_us(us);
    const std::int64_t secs = sec - day * 86'400;
    const auto [y, m, d] = core::civil_from_days(day);
    digits(made, y, 4);
    made[4] = '-';
    digits(made + 5, m, 2);
    made[7] = '-';
    digits(made + 8, d, 2);
    made[10] = ' ';
    digits(made + 11, secs / 3600, 2);
    made[13] = ':';
    digits(made + 14, secs / 60 % 60, 2);
    made[16] = ':';
    digits(made + 17, secs % 60, 2);
    made[19] = '.';
    made_for = sec;
  }
  std::memcpy(o, made, to_second);
  o += to_second;
  digits(o, frac, 6);
  o += 6;
  std::memcpy(o, "+00", 3);
  return o + 3;
}

// One line of COPY text, written straight into `out`, which grows once by the line's worst
// case (every string byte at its longest escape, every number at its longest): no
// capacity check per field.
class copy_line {
 public:
  copy_line(std::string& out, std::size_t worst) : out_(out) {
    const std::size_t at = out_.size();
    out_.resize(at + worst);
    o_ = out_.data() + at;
  }
  ~copy_line() { out_.resize(static_cast<std::size_t>(o_ - out_.data())); }
  copy_line(const copy_line&) = delete;
  copy_line& operator=(const copy_line&) = delete;

  static constexpr std::size_t number_max = 32;  // a long long or a double, and the tab

  void str(std::string_view v) {
    last(v);
    sep();
  }
  void last(std::string_view v) { o_ = core::write_utf8(o_, v, copy_escape_byte); }  // no tab after it
  void num(long long v) {
    last_num(v);
    sep();
  }
  void last_num(long long v) { o_ = std::to_chars(o_, o_ + number_max, v).ptr; }
  void real(double v) {
    o_ = std::to_chars(o_, o_ + number_max, std::isfinite(v) ? v : 0.0).ptr;
    sep();
  }
  void flag(bool v) {
    *o_++ = v ? 't' : 'f';
    sep();
  }
  void raw(std::string_view v) {  // already COPY text
    std::memcpy(o_, v.data(), v.size());
    o_ += v.size();
  }
  void utc(std::int64_t us) {
    o_ = put_utc(o_, us);
    sep();
  }
  void null() {  // SQL NULL
    raw("\\N");
    sep();
  }
  void str_or_null(std::string_view v) {  // NULL when empty
    if (v.empty()) {
      null();
    } else {
      str(v);
    }
  }
  void sep() { *o_++ = '\t'; }
  void end() { *o_++ = '\n'; }

 private:
  std::string& out_;
  char* o_;
};

// A JSON column's text: `empty` when the row holds that default (most rows), else the value
// re-dumped (or `fallback` when it is not JSON).
std::string json_column(const std::string& text, const char* empty, const char* fallback) {
  if (text == empty) {
    return text;
  }
  std::string v;
  put_raw_value(v, text, fallback);
  return v;
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

namespace {

// One row as COPY text. `log`: in spend_logs' own columns (spend_log_copy_columns), empty
// optional strings as NULL, times as timestamptz; else in the staging table's columns
// (times as Unix microseconds, the insert turns them into spend_logs' values).
void write_copy_line(std::string& out, const spend_row& r, bool log) {
  // The JSON columns first: their text is only known once re-dumped.
  const std::string tags = json_column(r.tags_json, "[]", "[]");
  const std::string metadata = json_column(r.metadata_json, "{}", "{}");
  const std::string messages = r.messages_json.empty() ? std::string() : json_column(r.messages_json, "", "null");
  const std::string response = r.response_json.empty() ? std::string() : json_column(r.response_json, "", "null");
  const std::string_view strings[] = {r.row_id, r.request_id, r.call_type, r.api_key, r.key_alias, r.user_id,
                                      r.team_id, r.organization_id, r.end_user, r.model, r.model_group, r.model_id,
                                      r.provider, r.api_base, r.error_type, r.requester_ip, r.session_id,
                                      tags, metadata, messages, response};
  std::size_t worst = 64 + 128;  // separators, flags, \N, the newline; three times and the status
  for (auto v : strings) {
    worst += v.size() * copy_escape_max + 1;
  }
  worst += 14 * copy_line::number_max;
  copy_line line(out, worst);
  // A column spend_logs holds as NULL when empty.
  const auto optional = [&](std::string_view v) {
    if (log) {
      line.str_or_null(v);
    } else {
      line.str(v);
    }
  };
  line.str(r.row_id);
  line.str(r.request_id);
  line.str(r.call_type);
  line.str(r.api_key);
  optional(r.key_alias);
  optional(r.user_id);
  optional(r.team_id);
  optional(r.organization_id);
  optional(r.end_user);
  line.str(r.model);
  optional(r.model_group);
  optional(r.model_id);
  optional(r.provider);
  optional(r.api_base);
  line.num(r.prompt_tokens);
  line.num(r.completion_tokens);
  line.num(r.total_tokens);
  line.num(r.cached_tokens);
  line.num(r.cache_creation_tokens);
  line.num(r.reasoning_tokens);
  line.flag(r.usage_estimated);
  line.real(r.spend);
  if (log) {
    line.utc(r.start_us);
    line.utc(r.end_us);
    if (r.completion_start_us > 0) {
      line.utc(r.completion_start_us);
    } else {
      line.null();
    }
    // As the staging insert computes it: whole milliseconds, never negative, at most an
    // integer column's largest.
    const std::int64_t ms = (r.end_us - r.start_us) / 1000;
    line.num(std::clamp<std::int64_t>(ms, 0, std::numeric_limits<std::int32_t>::max()));
    line.raw(r.success ? "success" : "failure");
    line.sep();
  } else {
    line.num(r.start_us);
    line.num(r.end_us);
    line.num(r.completion_start_us);
    line.flag(r.success);
  }
  line.num(r.status_code);
  optional(r.error_type);
  line.flag(r.cache_hit);
  line.num(r.retries);
  line.num(r.fallbacks);
  optional(r.requester_ip);
  optional(r.session_id);
  line.str(tags);
  line.str(metadata);
  if (r.messages_json.empty()) {
    line.null();
  } else {
    line.str(messages);
  }
  if (r.response_json.empty()) {
    line.raw("\\N");
  } else {
    line.last(response);
  }
  line.end();
}

}  // namespace

void append_copy_line(std::string& out, const spend_row& r) { write_copy_line(out, r, false); }

void append_log_copy_line(std::string& out, const spend_row& r) { write_copy_line(out, r, true); }

bool log_copy_can_write(const spend_row& r) {
  // Years 1000 to 9999: four digits, no era.
  constexpr std::int64_t lo = -30'610'224'000'000'000;  // 1000-01-01
  constexpr std::int64_t hi = 253'402'300'800'000'000;  // 10000-01-01
  const auto ok = [&](std::int64_t us) { return us >= lo && us < hi; };
  return ok(r.start_us) && ok(r.end_us) && (r.completion_start_us <= 0 || ok(r.completion_start_us));
}

namespace {

// A batch's rows of one group: the first row names it (its fields), the day is its start's.
struct group_key {
  const spend_row* row;
  std::int64_t day;
};

// The fields a group is made of, as spend_groups' columns name them.
auto group_fields(const spend_row& r) {
  return std::array<std::string_view, 9>{r.api_key,  r.user_id,     r.team_id,  r.organization_id, r.end_user,
                                         r.model,    r.model_group, r.provider, r.tags_json};
}

struct group_hash {
  std::size_t operator()(const group_key& k) const noexcept {
    std::size_t h = std::hash<std::int64_t>{}(k.day);
    for (auto f : group_fields(*k.row)) {
      h = h * 0x9E3779B97F4A7C15ull ^ std::hash<std::string_view>{}(f);
    }
    return h;
  }
};

struct group_eq {
  bool operator()(const group_key& a, const group_key& b) const noexcept {
    return a.day == b.day && group_fields(*a.row) == group_fields(*b.row);
  }
};

struct group_sums {
  long long prompt = 0, completion = 0, cached = 0, creation = 0;
  double spend = 0;
  long long requests = 0, succeeded = 0, failed = 0;
};

}  // namespace

std::size_t append_group_lines(std::string& out, const std::vector<spend_row>& rows) {
  std::unordered_map<group_key, group_sums, group_hash, group_eq> groups;
  std::vector<group_key> order;  // first seen first: the same text for the same batch
  // Consecutive rows share a group more often than not (one busy key and model): the last
  // group is compared first, which costs a few string compares instead of a hash of them.
  group_sums* last = nullptr;
  group_key last_key{nullptr, 0};
  for (const auto& r : rows) {
    const group_key key{&r, core::unix_day_of_us(r.start_us)};
    if (last == nullptr || !group_eq{}(key, last_key)) {
      auto [it, fresh] = groups.try_emplace(key);
      if (fresh) {
        order.push_back(it->first);
      }
      last = &it->second;
      last_key = it->first;
    }
    auto& g = *last;
    g.prompt += r.prompt_tokens;
    g.completion += r.completion_tokens;
    g.cached += r.cached_tokens;
    g.creation += r.cache_creation_tokens;
    g.spend += r.spend;
    ++g.requests;
    ++(r.success ? g.succeeded : g.failed);
  }
  for (const auto& k : order) {
    const auto& g = groups.at(k);
    const spend_row& r = *k.row;
    const std::string tags = json_column(r.tags_json, "[]", "[]");
    std::size_t worst = 64 + 16;
    for (auto f : group_fields(r)) {
      worst += f.size() * copy_escape_max + 4;
    }
    worst += tags.size() * copy_escape_max + 9 * copy_line::number_max;
    copy_line line(out, worst);
    char day[32];
    put_utc(day, k.day * core::us_per_day);
    line.raw(std::string_view(day, 10));  // YYYY-MM-DD
    line.sep();
    line.str(r.api_key);
    line.str_or_null(r.user_id);
    line.str_or_null(r.team_id);
    line.str_or_null(r.organization_id);
    line.str_or_null(r.end_user);
    line.str(r.model);
    line.str_or_null(r.model_group);
    line.str_or_null(r.provider);
    line.str(tags);
    line.num(g.prompt);
    line.num(g.completion);
    line.num(g.cached);
    line.num(g.creation);
    line.real(g.spend);
    line.num(g.requests);
    line.num(g.succeeded);
    line.last_num(g.failed);
    line.end();
  }
  return order.size();
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
    r.maybe_written = true;  // read back from a file: it may have been written before
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
