#include "switchyard/auth/route_access.hpp"

#include "switchyard/auth/key_auth.hpp"

#include <array>

namespace switchyard::auth {

namespace {

struct route_group {
  std::string_view name;
  std::span<const std::string_view> patterns;
};

// The routes of each group, as this gateway serves them ("*": a prefix). LiteLLM's
// groups of the same names list more routes (ones Switchyard does not serve).
constexpr std::array<std::string_view, 22> llm_api = {
    "/v1/chat/completions", "/chat/completions", "/v1/completions", "/completions",
    "/v1/embeddings",       "/embeddings",       "/v1/responses",   "/v1/responses/*",
    "/responses",           "/responses/*",      "/v1/messages",    "/v1/messages/*",
    "/anthropic/v1/messages", "/anthropic/v1/messages/*", "/v1/models", "/v1/models/*",
    "/models",              "/models/*",         "/openai/deployments/*", "/deployments/*",
    "/engines/*",           "/v1/engines/*"};
constexpr std::array<std::string_view, 13> info = {
    "/key/info", "/team/info",       "/team/list", "/organization/info", "/organization/list", "/user/info",
    "/model/info", "/v1/model/info", "/v2/model/info", "/model_group/info", "/v1/models", "/models",
    "/health"};
constexpr std::array<std::string_view, 10> management = {
    "/key/*", "/team/*", "/user/*", "/organization/*", "/customer/*", "/end_user/*", "/budget/*",
    "/model/*", "/cache/*", "/config/*"};
constexpr std::array<std::string_view, 3> spend_tracking = {"/spend/*", "/global/spend/*", "/global/activity*"};

constexpr std::array<route_group, 4> groups = {{
    {"llm_api_routes", llm_api},
    {"info_routes", info},
    {"management_routes", management},
    {"spend_tracking_routes", spend_tracking},
}};

bool path_matches(std::string_view pattern, std::string_view path) {
  if (!pattern.empty() && pattern.back() == '*') {
    return path.starts_with(pattern.substr(0, pattern.size() - 1));
  }
  return pattern == path;
}

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
  for (const auto& g : groups) {
    if (g.name == pattern) {
      for (auto p : g.patterns) {
        if (path_matches(p, path)) {
          return true;
        }
      }
      return false;
    }
  }
  return path_matches(pattern, path);
}

bool is_route_pattern(std::string_view pattern) {
  if (pattern.starts_with('/')) {
    return true;
  }
  for (const auto& g : groups) {
    if (g.name == pattern) {
      return true;
    }
  }
  return false;
}

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
