// Which routes a caller may call (docs/virtual-keys.md, "Route access"): a virtual key's
// `allowed_routes`, and the config's `general_settings.allowed_routes` (what callers
// other than admins may call) and `admin_only_routes` (what only admins may call).
// A pattern is a path ("/v1/chat/completions"), a prefix ending in "*" ("/key/*"), or one
// of LiteLLM's route groups: llm_api_routes, info_routes, management_routes,
// spend_tracking_routes.
// Thread: any; pure functions over immutable values. Never blocks.
#pragma once
#include "switchyard/auth/authenticator.hpp"
#include "switchyard/core/error.hpp"

#include <string>
#include <string_view>
#include <vector>

namespace switchyard::auth {

struct route_rules {
  std::vector<std::string> allowed_routes;     // empty: every route
  std::vector<std::string> admin_only_routes;  // empty: none
  bool empty() const { return allowed_routes.empty() && admin_only_routes.empty(); }
};

// True when `pattern` (a path, a "prefix*" or a group name) covers `path`.
bool route_matches(std::string_view pattern, std::string_view path);
// True when a known group name or a path-like pattern ("/..."): config values that are
// neither are refused at load.
bool is_route_pattern(std::string_view pattern);

// 403 auth_error when `who` may not call `path`, in this order: the key's allowed_routes
// (LiteLLM's message), admin_only_routes, then allowed_routes for non-admins. The master
// key (and a proxy_admin user's key for the config's lists) passes.
core::result<void> check_route(const principal& who, std::string_view path, const route_rules& rules);

}  // namespace switchyard::auth
