#include "switchyard/auth/route_access.hpp"

#include "switchyard/auth/key_auth.hpp"
#include "switchyard/core/route_groups.hpp"


namespace switchyard::auth {

namespace {

bool any_matches(const std::vector<std::string>& patterns, std::string_view path) {
  for (const auto& p : patterns) {
    if (route_matches(p, path)) {
      return true;
    }
  }
  return false;
}

std::string list_text(const std::vector<std::string>& v) {
  std::string out = "[";
  for (const auto& s : v) {
    out += out.size() > 1 ? ", '" : "'";
    out += s;
    out += '\'';
  }
  return out + "]";
}

core::error refused(std::string message) {
  auto e = core::make_error(core::errc::forbidden, std::move(message));
  e.type = "auth_error";
  return e;
}

}  // namespace

bool route_matches(std::string_view pattern, std::string_view path) {
  if (!pattern.starts_with('/')) {
    for (auto p : core::route_group(pattern)) {
      if (core::route_path_matches(p, path)) {
        return true;
      }
    }
    return false;
  }
  return core::route_path_matches(pattern, path);
}

bool is_route_pattern(std::string_view pattern) { return pattern.starts_with('/') || core::is_route_group(pattern); }

core::result<void> check_route(const principal& who, std::string_view path, const route_rules& rules) {
  if (who.is_master) {
    return {};
  }
  if (who.vkey && !who.vkey->allowed_routes.empty() && !any_matches(who.vkey->allowed_routes, path)) {
    return refused("Virtual key is not allowed to call this route. Only allowed to call routes: " +
                   list_text(who.vkey->allowed_routes) + ". Tried to call route: " + std::string(path));
  }
  if (rules.empty() || role_of(who) == role::proxy_admin) {
    return {};
  }
  if (any_matches(rules.admin_only_routes, path)) {
    return refused("Only proxy admins may call this route (general_settings.admin_only_routes). Tried to call route: " +
                   std::string(path));
  }
  if (!rules.allowed_routes.empty() && !any_matches(rules.allowed_routes, path)) {
    return refused("Route not allowed (general_settings.allowed_routes): " + std::string(path) +
                   ". Allowed routes: " + list_text(rules.allowed_routes));
  }
  return {};
}

}  // namespace switchyard::auth
