// Per-request cache controls, as LiteLLM reads them:
//  - the body's `cache` object: `no-cache` (skip the lookup, still store), `no-store`
//    (do not store), `ttl` (write TTL, seconds), `s-maxage` / `s-max-age` (only accept an
//    entry at most this old, seconds), `namespace`, `use-cache` (opt in under
//    mode: default_off);
//  - the Cache-Control request header: only `s-maxage=N` is read, as a write TTL;
//  - a virtual key's `allowed_cache_controls`: empty allows every control; otherwise a
//    body control not listed is refused with 403.
// A control of the wrong type is a 400 naming `cache`.
// Thread: any. Never blocks. Pure functions.
#pragma once
#include "switchyard/core/error.hpp"

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace switchyard::cache {

// A namespace is echoed in the `x-litellm-cache-key` response header: longer ones would
// make a header that HTTP clients refuse (Node's limit for a whole head is 16 KB), so a
// request's or the config's namespace longer than this is refused.
inline constexpr std::size_t max_namespace_bytes = 512;

struct request_controls {
  bool no_cache = false;
  bool no_store = false;
  std::optional<double> ttl;       // seconds
  std::optional<double> s_maxage;  // seconds
  std::optional<std::string> namespace_;
  std::optional<bool> use_cache;
  std::optional<double> header_ttl;  // Cache-Control: s-maxage=N
};

// `cache`: the body's `cache` member (null/absent: none). `cache_control`: the header's
// value (empty: none). `allowed`: the key's allowed_cache_controls.
core::result<request_controls> parse_controls(const nlohmann::json* cache, std::string_view cache_control,
                                              const std::vector<std::string>& allowed);

}  // namespace switchyard::cache
