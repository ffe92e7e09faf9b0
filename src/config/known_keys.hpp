// Private to config/: every key LiteLLM documents for config.yaml, per section, in ONE place
// (known_keys.cpp). A key listed here is never "unknown"; its value is type-checked when
// the list gives a type. A key Switchyard does not act on carries a note (key_spec::
// unsupported) and is reported, once, as "recognised, not supported". A key not listed
// gets one warning. Sources: LiteLLM docs proxy/config_settings.md ("All settings"),
// proxy/configs.md, proxy/caching.md, and docs/shared/reference/litellm-compat.md section 2.
#pragma once
#include "values.hpp"

#include <span>
#include <string_view>

namespace switchyard::config::detail {

struct key_spec {
  std::string_view name;
  value_type type;
  // Empty: the gateway acts on the key. Otherwise the key is recognised but not
  // supported, and this says what happens instead ("ignored: ..."); a config that uses
  // it gets the key named in the one startup warning and in --check-config.
  std::string_view unsupported = {};
};

enum class section {
  top_level,
  model_entry,       // one model_list[] entry
  litellm_params,    // model_list[].litellm_params
  model_info,        // model_list[].model_info (open: free-form, LiteLLM documents extra props)
  router_settings,
  litellm_settings,
  cache_params,      // litellm_settings.cache_params
  default_team_params,  // litellm_settings.default_team_params
  general_settings,
};

struct section_spec {
  std::span<const key_spec> keys;
  bool open;  // true: unlisted keys are accepted without a warning
};

const section_spec& spec_of(section s);
// The spec of `key` in section `s`, or nullptr when the key is not documented.
const key_spec* find_key(section s, std::string_view key);

// Top-level sections LiteLLM knows that Switchyard accepts and ignores entirely
// (no os.environ/ resolution: an unset variable there must not stop us). Returns what
// happens instead (reported like an unsupported key), or empty when not such a section.
std::string_view ignored_top_level_note(std::string_view key);
inline bool is_ignored_top_level(std::string_view key) { return !ignored_top_level_note(key).empty(); }

// Routing strategies LiteLLM documents (an unlisted one gets a warning).
bool is_known_routing_strategy(std::string_view name);
// Whether the router implements it (the others run as simple-shuffle).
bool is_served_routing_strategy(std::string_view name);

}  // namespace switchyard::config::detail
