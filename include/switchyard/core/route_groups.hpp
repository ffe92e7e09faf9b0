// LiteLLM's route groups as this gateway serves them, shared by the config loader (which
// checks route lists) and the access rules (which match them). See docs/configuration.md,
// "Access rules". Thread: any; constant tables, pure functions.
#pragma once
#include <span>
#include <string_view>

namespace switchyard::core {

// The patterns of a group ("/v1/models/*": a prefix), or an empty span when `name` is
// not a group. LiteLLM's "LiteLLMRoutes.<group>" spelling names the same group.
std::span<const std::string_view> route_group(std::string_view name);
bool is_route_group(std::string_view name);
// `pattern` ("/a/b" exact, "/a/*" a prefix) covers `path`.
bool route_path_matches(std::string_view pattern, std::string_view path);
// True when a public_routes entry may be served without a key: the public_routes group,
// or one of the routes that only inform (model lists, /model/info, /spend/calculate,
// the probes, /metrics, "/"). Routes that spend or administer always need a key.
bool public_route_allowed(std::string_view pattern);

}  // namespace switchyard::core
