// The response cache's key: SHA-256 over a canonical form of what changes the answer.
//
// The canonical form is one JSON text: {"call":<call type>,"model":<model group>,
// "params":{...}} where params are the request's top-level members minus those that
// cannot change the answer (metadata, stream, stream_options, the cache controls, the
// gateway's routing and transport fields: excluded_from_key()). Objects have their keys
// sorted (at every depth); numbers are normalised (1, 1.0 and 1e0 are one number; -0 is
// 0), so two requests that differ only in member order or number spelling share a key,
// and a streamed and a non-streamed request share one. The key is
// "<namespace>:<sha256 hex>", or the bare hex without a namespace, as LiteLLM shows it in
// x-litellm-cache-key.
// Thread: any. Never blocks. Pure functions.
#pragma once
#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace switchyard::cache {

// True for a top-level request member that never takes part in the key.
bool excluded_from_key(std::string_view member);

// The canonical text of a request body (a JSON object) for `model_group` and `call`
// ("chat", "completion", "embedding").
std::string canonical_request(std::string_view call, std::string_view model_group, const nlohmann::json& body);

// The same text as canonical_request(), built from the body's top-level members as
// received (key, raw value bytes) without a DOM: whitespace is dropped and object members
// sorted while the bytes are copied, provided every scalar is already spelled as the
// canonical dump writes it (integers without exponent or negative zero, fractions in
// their shortest spelling, strings of valid UTF-8 whose `\/` and `\u` escapes are
// written decoded, as dump() writes them) and no object repeats a key. Otherwise false: the caller falls back to canonical_request() over the
// parsed body. Both give one text for one request. The text replaces what `out` held
// (junk after a false), so one buffer can serve request after request.
bool canonical_request_raw(std::string& out, std::string_view call, std::string_view model_group,
                           const std::vector<std::pair<std::string_view, std::string_view>>& members);

// A value with its numbers normalised and object keys sorted (nlohmann's objects are
// ordered maps, so dump() of the result is canonical).
nlohmann::json canonical_value(const nlohmann::json& v);

// "<ns>:<sha256(canonical)>", or the bare hex when `ns` is empty.
std::string key_of(std::string_view ns, std::string_view canonical);

// "<ns>:<hex>", or `hex` when `ns` is empty (key_of() with the hash already made).
std::string key_from_hex(std::string_view ns, std::string hex);

}  // namespace switchyard::cache
