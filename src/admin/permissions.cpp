#include "switchyard/admin/permissions.hpp"

#include "switchyard/admin/routes.hpp"

namespace switchyard::admin {

scope route_scope(auth::role r, std::string_view route) {
  const auto* found = find_route(route);
  return found != nullptr ? found->rule.of(r) : scope::denied;
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
