#include "switchyard/admin/permissions.hpp"

#include <array>

namespace switchyard::admin {

namespace {

template <std::size_t N>
bool in(std::string_view route, const std::array<std::string_view, N>& list) {
  for (auto r : list) {
    if (r == route) {
      return true;
    }
  }
  return false;
}

constexpr std::array<std::string_view, 11> read_routes = {
    "/key/info",          "/key/list",         "/user/info",  "/user/list",   "/team/info",  "/team/list",
    "/organization/info", "/organization/list", "/budget/info", "/budget/list", "/model/info"};

constexpr std::array<std::string_view, 6> own_key_routes = {"/key/generate", "/key/info",   "/key/update",
                                                            "/key/delete",   "/key/list",   "/key/regenerate"};

constexpr std::array<std::string_view, 10> org_admin_routes = {
    "/user/new",        "/user/info",        "/user/update",        "/user/list",         "/team/new",
    "/team/info",       "/team/update",      "/team/delete",        "/team/list",         "/team/member_add"};

}  // namespace

bool is_read_route(std::string_view route) { return in(route, read_routes); }

scope route_scope(auth::role r, std::string_view route) {
  if (route == "/model/info") {
    return scope::all;
  }
  switch (r) {
    case auth::role::proxy_admin:
      return scope::all;
    case auth::role::proxy_admin_viewer:
      return is_read_route(route) ? scope::all : scope::denied;
    case auth::role::org_admin:
      if (in(route, org_admin_routes) || route == "/team/member_delete" || route == "/user/delete" ||
          route == "/team/block" || route == "/team/unblock" ||
          route == "/organization/info" || route == "/organization/list") {
        return scope::org;
      }
      return in(route, own_key_routes) ? scope::own : scope::denied;
    case auth::role::internal_user:
      if (in(route, own_key_routes) || route == "/user/info" || route == "/team/info" || route == "/team/list") {
        return scope::own;
      }
      return scope::denied;
    case auth::role::internal_user_viewer:
      if (route == "/key/info" || route == "/key/list" || route == "/user/info" || route == "/team/info" ||
          route == "/team/list") {
        return scope::own;
      }
      return scope::denied;
    case auth::role::none:
      return route == "/key/info" ? scope::own : scope::denied;
  }
  return scope::denied;
}

core::error route_denied(auth::role r, std::string_view route, std::string_view user_id) {
  if (r == auth::role::none) {
    return core::make_error(core::errc::unauthorized,
                            "Authentication Error, Only proxy admin can be used to generate, delete, update info for "
                            "new keys/users/teams. Route=" +
                                std::string(route) + ". Your role=unknown. Your user_id=" +
                                (user_id.empty() ? std::string("None") : std::string(user_id)));
  }
  auto e = core::make_error(core::errc::forbidden, "Authentication Error - user not allowed to access this route, role= " +
                                                       std::string(auth::role_name(r)) + ". Trying to access: " +
                                                       std::string(route));
  e.type = "auth_error";
  return e;
}

}  // namespace switchyard::admin
