// model_access: which models a virtual key may use (checked, as LiteLLM does, after the
// key is authenticated and before a deployment is picked), and the management roles. Pure functions over a cached virtual_key: no I/O, no state.
//
// A model is allowed when every list that applies allows it: the key's `models`, its
// team's, its user's and its organisation's (each only when the key has one). A list
// allows a model when it is empty, contains "all-proxy-models" or "*", names the model,
// names an access group (config `model_info.access_groups`) holding the model, or holds a
// wildcard entry matching it (wildcard_matches: "openai/*", "gpt-4*", "*-mini"). The key's "all-team-models" means "whatever the team
// allows" (no restriction at key level). The requested name first goes through the key's
// `aliases`, then the team's `model_aliases`.
// Thread: any. Never blocks.
#pragma once
#include "switchyard/auth/virtual_key.hpp"
#include "switchyard/core/error.hpp"

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace switchyard::auth {

// Access group name -> the model names (model_name) in it.
using access_groups = std::map<std::string, std::vector<std::string>, std::less<>>;

// The model name after the key's aliases, then the team's model_aliases.
std::string apply_model_aliases(const virtual_key& k, std::string_view model);

// Whether an allow-list entry holding a '*' matches the whole of `name`, as LiteLLM reads
// it (the entry as a regular expression with each '*' made ".*"): '*' is any run of
// characters, '/' included, '.' any one character, every other character itself.
bool wildcard_matches(std::string_view pattern, std::string_view name);

// Whether one allow-list admits `model` (rules above; "all-team-models" is not special here).
bool list_allows(const std::vector<std::string>& list, std::string_view model, const access_groups& groups);

// Which list refused a model (the first in key, team, user, organisation order).
enum class access_denial { none, key, team, user, org };
access_denial check_access(const virtual_key& k, std::string_view model, const access_groups& groups);

// 403 <who>_model_access_denied (param "model") in LiteLLM's words:
// "team not allowed to access model. This team can only access models=['a']. Tried to access b".
core::error access_error(const virtual_key& k, access_denial d, std::string_view model);

// LiteLLM's proxy roles (LitellmUserRoles); `none` for keys without a user, and for the
// `team` and `customer` roles (no management rights).
enum class role { none, proxy_admin, proxy_admin_viewer, org_admin, internal_user, internal_user_viewer };
role parse_role(std::string_view s);
const char* role_name(role r);  // "" for none
bool valid_user_role(std::string_view s);  // one of the seven LiteLLM role names

}  // namespace switchyard::auth
