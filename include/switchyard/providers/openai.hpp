// Pieces shared by every adapter: the upstream call, usage, gateway-only fields,
// error extraction and the offline mock answers. Pure functions: no I/O, no clock,
// no globals. Thread: any. The adapters themselves are in adapter.hpp.
#pragma once
#include "switchyard/config/config.hpp"
#include "switchyard/core/error.hpp"

#include <nlohmann/json_fwd.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace switchyard::providers {

using header_list = std::vector<std::pair<std::string, std::string>>;

// What the gateway sends upstream for one attempt.
struct upstream_call {
  std::string url;
  header_list headers;
  std::string body;
  // When not empty, the body is these pieces (views into the client's request body and
  // into `body`, which then holds only the edited bits; see upstream::request). Moving
  // the call keeps them valid: `body` is heap-allocated whenever a piece points into it.
  std::vector<std::string_view> body_parts;
  // The body as one string (tests, logs): `body`, or the pieces joined.
  std::string joined_body() const;
};

struct usage {
  long long prompt_tokens = 0;
  long long completion_tokens = 0;
  long long total_tokens = 0;
  long long cached_tokens = 0;          // prompt tokens read from the provider's prompt cache
  long long cache_creation_tokens = 0;  // prompt tokens written to it (Anthropic)
  long long reasoning_tokens = 0;       // completion tokens spent reasoning
  bool known = false;
};

// Deepest JSON nesting accepted from clients and providers. Copying and dumping a
// json value recurse per level, so absurd nesting must never reach nlohmann.
inline constexpr std::size_t max_json_depth = 256;
// True if `text` nests arrays/objects deeper than `max` (strings are skipped). O(n).
bool json_nesting_exceeds(std::string_view text, std::size_t max = max_json_depth);

// Body fields the gateway consumes itself and never forwards upstream.
bool is_gateway_field(std::string_view name);

// The API base of a deployment, without trailing slashes: api_base, else its provider's
// default_api_base (empty when the provider has none: azure, hosted_vllm). Also the
// value of x-litellm-model-api-base (minus any query string).
std::string api_base_of(const config::deployment& d);
// The same as a view (into d.api_base, or the registry's literal): no allocation.
std::string_view api_base_view(const config::deployment& d);
// api_base with any query string removed (for x-litellm-model-api-base).
std::string strip_query(std::string_view url);
std::string_view strip_query_view(std::string_view url);

// Usage from a chat.completion (or final chunk) object; known=false if absent.
usage usage_of(const nlohmann::json& obj);
// A known usage from a lookup of its integer members: `num(object, name)` is the member
// `name` of the usage object (object empty) or of its sub-object `object`, 0 when absent.
// total_tokens defaults to prompt + completion. The details are OpenAI's
// (prompt_tokens_details.cached_tokens, completion_tokens_details.reasoning_tokens), else
// the names OpenAI-compatible providers use for them (cache_read_input_tokens as LiteLLM
// returns it, DeepSeek's prompt_cache_hit_tokens); cache_creation_input_tokens as LiteLLM
// returns it. Shared by usage_of() and the DOM-free readers of raw bytes.
template <class Num>
usage usage_from(Num&& num) {
  usage u;
  u.prompt_tokens = num("", "prompt_tokens");
  u.completion_tokens = num("", "completion_tokens");
  u.total_tokens = num("", "total_tokens");
  if (u.total_tokens == 0) {
    u.total_tokens = u.prompt_tokens + u.completion_tokens;
  }
  u.cached_tokens = num("prompt_tokens_details", "cached_tokens");
  if (u.cached_tokens == 0) {
    u.cached_tokens = num("", "cache_read_input_tokens");
  }
  if (u.cached_tokens == 0) {
    u.cached_tokens = num("", "prompt_cache_hit_tokens");
  }
  u.cache_creation_tokens = num("", "cache_creation_input_tokens");
  u.reasoning_tokens = num("completion_tokens_details", "reasoning_tokens");
  u.known = true;
  return u;
}

// An upstream error response -> the client's error: status kept, the provider's
// message extracted from {"error":{"message"}} / {"error":"..."} / {"message"} / text.
core::error upstream_error(int status, std::string_view body, std::string_view provider_label);

// An OpenAI embeddings list whose data[].embedding are float arrays -> the same list
// with each embedding as base64 of little-endian float32 (encoding_format "base64"),
// for providers that only return floats. Error if `body` is not such a list.
core::result<std::string> encode_embeddings_base64(std::string_view body);

// Offline answers for litellm_params.mock_response / body "mock_response".
std::string mock_chat_completion(std::string_view model, std::string_view content, const nlohmann::json& request,
                                 std::string_view id, long long created);
// A text_completion object for /v1/completions.
std::string mock_text_completion(std::string_view model, std::string_view content, const nlohmann::json& request,
                                 std::string_view id, long long created);
// SSE frames ("data: ...\n\n"), ending with "data: [DONE]\n\n".
std::vector<std::string> mock_chat_stream(std::string_view model, std::string_view content,
                                          const nlohmann::json& request, std::string_view id, long long created,
                                          bool include_usage);

}  // namespace switchyard::providers
