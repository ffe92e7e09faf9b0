// Helpers shared by the translating adapters (private to providers/).
// Pure functions and small value types; thread: any.
#pragma once
#include "switchyard/config/config.hpp"
#include "switchyard/core/error.hpp"
#include "switchyard/core/json_get.hpp"
#include "switchyard/providers/adapter.hpp"
#include "switchyard/providers/json_scan.hpp"

#include <nlohmann/json.hpp>

#include <charconv>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace switchyard::providers::detail {

using json = nlohmann::json;

// Upper bound for one pending SSE event / NDJSON line of a stream (bytes). An
// upstream that sends more without a boundary is treated as malformed.
inline constexpr std::size_t max_pending_stream_bytes = 16u << 20;

// Seconds since the epoch, for the `created` field of OpenAI objects.
long long unix_now();

// A JSON value as a result (json converts implicitly to anything, so
// result<json>'s converting constructor cannot be used).
inline core::result<json> ok(json j) {
  return core::result<json>(boost::system::in_place_value, std::move(j));
}

// Parses JSON from outside (upstream bodies, tool arguments); discarded (is_discarded()) if invalid or nested deeper
// than max_json_depth. Never throws.
json parse_bounded(std::string_view text);

// Compact JSON text; invalid UTF-8 is replaced instead of throwing.
std::string dump(const json& j);

// obj[key] if obj is an object holding key (and the value is not null), else nullptr.
const json* field(const json& obj, std::string_view key);
// obj[key] as a string if it is one, else an empty view.
std::string_view string_field(const json& obj, std::string_view key);

// A token count from obj[key]: non-negative, clamped to 1e15 (never UB on
// absurd values), 0 when absent or not a number.
long long token_count(const json& obj, std::string_view key);

// d.api_base (else the provider's default) without trailing slashes; empty when the
// provider has no default and the deployment no api_base (see missing_api_base).
std::string base_of(const config::deployment& d);
// 400 for a deployment whose provider needs an api_base it does not have.
core::error missing_api_base(const config::deployment& d);

// The names a request's own `additional_drop_params` lists: the strings of a list (LiteLLM
// takes it as a completion() argument, like the deployment's); anything else names none.
std::vector<std::string> request_drop_names(const json& listed);

// The request as the deployment sends it: its request_defaults added where the body does
// not set them (not for embeddings), then the deployment's drop_param_names and the
// request's own `additional_drop_params` removed, so a dropped name never goes out, the
// deployment's default of that name included. Returns `body` itself when nothing changes,
// else a copy kept in `storage`. Every adapter applies it before its translation (the
// OpenAI adapter's build_raw edits bytes with the same rule instead), as LiteLLM merges a
// deployment's litellm_params into the call's arguments for every provider.
const json& with_deployment_params(call_type type, const config::deployment& d, const json& body, json& storage);

// True if the deployment's extra_headers set `name` (case-insensitive).
bool has_extra_header(const config::deployment& d, std::string_view name);

// "data:<media type>;base64,<data>" split into its parts.
struct data_url {
  std::string media_type;
  std::string data;
};
std::optional<data_url> parse_data_url(std::string_view url);

// The URL of an OpenAI image_url content part ({"image_url": "..."} or {"image_url": {"url": "..."}}).
std::string image_url_of(const json& part);

// The text of an OpenAI message content: a string, or the text parts of a list
// joined with `sep`. Other parts are skipped.
std::string content_text(const json& content, std::string_view sep = "");

// `stop` as a list of strings (a string, or a list of strings; other items skipped).
std::vector<std::string> stop_list(const json& stop);

// 400 for a parameter the provider cannot take (LiteLLM's wording: it says how to drop it).
// `note` (optional) says when the parameter is unsupported, e.g. "together with tools".
core::error unsupported_param(std::string_view provider, std::string_view param, const config::deployment& d,
                              std::string_view note = {});
// 400 invalid_request_error naming `param`.
core::error bad_param(std::string message, std::string param);
// 500 for an upstream answer we cannot read (`label` e.g. "AnthropicException").
core::error malformed_upstream(std::string_view label, std::string_view what);

// OpenAI parameters that change nothing at their value (n: 1, logprobs: false,
// ...) and so are accepted by every adapter.
bool is_noop_value(std::string_view name, const json& value);

// A walk over JSON text that is already known to be valid (scan_json passed it): spans of
// values, without checking them again.
struct valid_json_walk {
  std::string_view s;
  std::size_t i = 0;

  void ws() {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) {
      ++i;
    }
  }
  bool eat(char c) {
    ws();
    if (i < s.size() && s[i] == c) {
      ++i;
      return true;
    }
    return false;
  }
  // Past the string whose opening quote is at `at`.
  std::size_t string_end(std::size_t at) const {
    std::size_t from = at + 1;
    for (;;) {
      const auto* q = static_cast<const char*>(std::memchr(s.data() + from, '"', s.size() - from));
      if (q == nullptr) {
        return s.size();  // not reached on valid text
      }
      const auto k = static_cast<std::size_t>(q - s.data());
      std::size_t b = k;
      while (b > at + 1 && s[b - 1] == '\\') {
        --b;
      }
      if (((k - b) & 1) == 0) {
        return k + 1;  // not escaped
      }
      from = k + 1;
    }
  }
  // The next value (after white space), and past it.
  std::string_view value() {
    ws();
    const std::size_t at = i;
    if (at >= s.size()) {
      return {};
    }
    const char c = s[at];
    if (c == '"') {
      i = string_end(at);
    } else if (c == '{' || c == '[') {
      int depth = 0;
      while (i < s.size()) {
        const char d = s[i];
        if (d == '"') {
          i = string_end(i);
          continue;
        }
        ++i;
        if (d == '{' || d == '[') {
          ++depth;
        } else if ((d == '}' || d == ']') && --depth == 0) {
          break;
        }
      }
    } else {
      while (i < s.size() && s[i] != ',' && s[i] != ']' && s[i] != '}' && s[i] != ' ' && s[i] != '\t' &&
             s[i] != '\n' && s[i] != '\r') {
        ++i;
      }
    }
    return s.substr(at, i - at);
  }
};

// Readers of plain stream events (Gemini's, Ollama's) over text scan_json validated.

// The kind of a value of valid JSON, from its first byte.
inline json_kind kind_of(std::string_view v) {
  switch (v.empty() ? 'n' : v.front()) {
    case '"': return json_kind::string;
    case '{': return json_kind::object;
    case '[': return json_kind::array;
    case 'n': return json_kind::null;
    case 't':
    case 'f': return json_kind::boolean;
    default: return json_kind::number;
  }
}

// The kind of the walk's next value (after white space).
inline json_kind next_kind(valid_json_walk& w) {
  w.ws();
  return kind_of(w.s.substr(w.i, 1));
}

// f(key, w) for each member of a valid JSON object, the key as written between its quotes,
// the walk at the member's value: f reads it from `w` (w.value(), or each_member /
// each_item to go down into it), or leaves it, and it is skipped. A reader that goes down
// walks each byte once. False (and the walk stopped) when a key has an escape or f
// returns false.
template <typename F>
bool each_member(valid_json_walk& w, F&& f) {
  if (!w.eat('{')) {
    return false;
  }
  if (w.eat('}')) {
    return true;
  }
  for (;;) {
    const std::string_view key = w.value();
    if (key.size() < 2 || key.front() != '"' || key.find('\\') != std::string_view::npos || !w.eat(':')) {
      return false;
    }
    w.ws();
    const std::size_t at = w.i;
    if (!f(key.substr(1, key.size() - 2), w)) {
      return false;
    }
    if (w.i == at) {
      w.value();  // not read: skipped
    }
    if (w.eat(',')) {
      continue;
    }
    return w.eat('}');
  }
}

template <typename F>
bool each_member(std::string_view object, F&& f) {
  valid_json_walk w{object};
  return each_member(w, f);
}

// f(w) for each item of a valid JSON array, the walk at the item (as each_member's f).
template <typename F>
bool each_item(valid_json_walk& w, F&& f) {
  if (!w.eat('[')) {
    return false;
  }
  if (w.eat(']')) {
    return true;
  }
  for (;;) {
    w.ws();
    const std::size_t at = w.i;
    if (!f(w)) {
      return false;
    }
    if (w.i == at) {
      w.value();
    }
    if (w.eat(',')) {
      continue;
    }
    return w.eat(']');
  }
}

// A whole number written without sign, fraction or exponent (what nlohmann reads as an
// unsigned integer), within 64 bits.
inline std::optional<std::uint64_t> plain_unsigned(std::string_view v) {
  if (v.empty() || v.find_first_not_of("0123456789") != std::string_view::npos) {
    return std::nullopt;
  }
  std::uint64_t u = 0;
  if (auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), u); ec != std::errc() || p != v.data() + v.size()) {
    return std::nullopt;
  }
  return u;
}

// A count as token_count reads it, when it is a plain whole number (clamped as token_count
// clamps it); nullopt for anything token_count reads otherwise (a fraction, a sign, a
// string, null ...): the DOM reads those.
inline std::optional<long long> plain_count(std::string_view value) {
  auto u = kind_of(value) == json_kind::number ? plain_unsigned(value) : std::nullopt;
  if (!u) {
    return std::nullopt;
  }
  return *u > static_cast<std::uint64_t>(core::max_count) ? core::max_count : static_cast<long long>(*u);
}

// A string literal's text: its inside as written when it has no escape, else decoded.
inline std::string_view text_of(std::string_view literal, std::string& storage) {
  const std::string_view inside = literal.substr(1, literal.size() - 2);
  if (inside.find('\\') == std::string_view::npos) {
    return inside;
  }
  storage = json_unescape(inside);
  return storage;
}

// Builds chat.completion.chunk (or text_completion, for call_type::completion)
// payloads for one streamed answer.
class chunk_writer {
 public:
  chunk_writer(std::string id, long long created, std::string model, bool completion)
      : id_(std::move(id)), created_(created), model_(std::move(model)), completion_(completion) {}

  void set_id(std::string id) {
    id_ = std::move(id);
    tail_.clear();
  }
  bool completion() const { return completion_; }
  // The choice the next chunks belong to (0 unless the answer has several: n > 1).
  void set_index(int index) { index_ = index; }

  // delta.role "assistant" (chat only; the first chunk).
  void role(std::vector<std::string>& out);
  // Text: delta.content (chat) or choices[0].text (completion).
  void content(std::string_view text, std::vector<std::string>& out);
  // delta.reasoning_content (chat only).
  void reasoning(std::string_view text, std::vector<std::string>& out);
  // delta.thinking_blocks [block]: one whole thinking block with its signature (LiteLLM's
  // field; a client returns it with the assistant message). Chat only.
  void thinking_block(json block, std::vector<std::string>& out);
  // delta.tool_calls[{index, ...}]: the start of a call (id, name, arguments "") or
  // a piece of its arguments (id and name empty). Chat only.
  void tool_call(int index, std::string_view call_id, std::string_view name, std::string_view arguments,
                 std::vector<std::string>& out);
  // The choice's last chunk: finish_reason.
  void finish(std::string_view reason, std::vector<std::string>& out);
  // The usage chunk: choices [] and usage.
  void usage_chunk(const json& usage, std::vector<std::string>& out);

 private:
  json base() const;
  void push_choice(json choice, std::vector<std::string>& out);
  // `,"created":...,"object":...}`: the end of every chunk, made once per id.
  const std::string& tail();
  // `"index":N,"logprobs":null`, a choice's members after its finish_reason.
  void append_index(std::string& s) const;

  std::string id_;
  long long created_;
  std::string model_;
  bool completion_;
  int index_ = 0;
  std::string tail_;
};

// {prompt_tokens, completion_tokens, total_tokens} and the matching usage value.
json usage_json(long long prompt, long long completion);
usage usage_value(long long prompt, long long completion);

// The Anthropic Messages body (with "model") for an OpenAI chat/completion request: the
// Anthropic adapter's translation, for providers that host Anthropic's models behind
// their own URLs and auth (Vertex AI's rawPredict). Answers are read by anthropic_adapter().
core::result<json> anthropic_messages_body(call_type type, const config::deployment& d, const json& body,
                                           const build_options& opts);

}  // namespace switchyard::providers::detail
