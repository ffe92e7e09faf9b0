// Who may call which management route, as LiteLLM's route checks decide it
// (docs/virtual-keys.md, "Roles"). Each route of the route table (admin/routes.hpp) names
// an access_rule: the scope each role gets on it. The handlers apply the scope to the rows
// involved.
//
//   proxy_admin (and the master key)  everything
//   proxy_admin_viewer                every read route (info/list), no writes (403)
//   org_admin                         users and teams of their organisation (`org`), their
//                                     organisation's info; their own keys (`own`)
//   internal_user                     their own keys (/key/generate forces user_id to
//                                     themselves), their user, their teams (read)
//   internal_user_viewer              the reads of internal_user
//   none (a key without a user)       /key/info on itself; anything else is 401
// Every role may read /model/info. Denied: 403 auth_error, except role none: 401.
// Thread: any. Never blocks. Everything here is a value or a pure function.
#pragma once
#include "switchyard/auth/model_access.hpp"
#include "switchyard/core/error.hpp"

#include <string>
#include <string_view>

namespace switchyard::admin {

enum class scope {
  all,     // any row
  org,     // rows of the caller's organisation (org_admin)
  own,     // the caller's own rows (keys with their user_id, their user, teams they are in)
  denied,  // refused
};

// The scope each role gets on one route; proxy_admin (and the master key) always gets `all`.
struct access_rule {
  scope proxy_admin_viewer = scope::denied;
  scope org_admin = scope::denied;
  scope internal_user = scope::denied;
  scope internal_user_viewer = scope::denied;
  scope none = scope::denied;

  constexpr scope of(auth::role r) const {
    switch (r) {
      case auth::role::proxy_admin: return scope::all;
      case auth::role::proxy_admin_viewer: return proxy_admin_viewer;
      case auth::role::org_admin: return org_admin;
      case auth::role::internal_user: return internal_user;
      case auth::role::internal_user_viewer: return internal_user_viewer;
      case auth::role::none: return none;
    }
    return scope::denied;
  }
};

// The rules the route table uses, from the narrowest to the widest.
namespace rules {
// Writes only the proxy admin may make (/key/block, /organization/*, /budget/*).
inline constexpr access_rule admin_only{};
// Reads of the proxy admins (/budget/info, /budget/list).
inline constexpr access_rule admin_read{.proxy_admin_viewer = scope::all};
// Writes an org_admin may make inside their organisation (/user/new, /team/*, ...).
inline constexpr access_rule org_write{.org_admin = scope::org};
// Reads of the admins, an org_admin's of their organisation (/user/list, /organization/info).
inline constexpr access_rule org_read{.proxy_admin_viewer = scope::all, .org_admin = scope::org};
// Reads of everyone with a user: internal users see themselves and their teams.
inline constexpr access_rule member_read{.proxy_admin_viewer = scope::all,
                                         .org_admin = scope::org,
                                         .internal_user = scope::own,
                                         .internal_user_viewer = scope::own};
// /team/member_update: LiteLLM lets a team's admin members change the team's members; the
// handler checks that an internal user or org_admin is one (or, for an org_admin, that
// the team is in their organisation). Viewers make no writes.
inline constexpr access_rule team_admin_write{.org_admin = scope::org, .internal_user = scope::own};
// Key writes: internal users and org_admins on their own keys.
inline constexpr access_rule own_key_write{.org_admin = scope::own, .internal_user = scope::own};
// /key/list: viewers see every key, users their own.
inline constexpr access_rule own_key_read{.proxy_admin_viewer = scope::all,
                                          .org_admin = scope::own,
                                          .internal_user = scope::own,
                                          .internal_user_viewer = scope::own};
// /key/info: as /key/list, and a key without a user may read itself.
inline constexpr access_rule self_key_read{.proxy_admin_viewer = scope::all,
                                      .org_admin = scope::own,
                                      .internal_user = scope::own,
                                      .internal_user_viewer = scope::own,
                                      .none = scope::own};
// /model/info: every caller with a valid key.
inline constexpr access_rule anyone{.proxy_admin_viewer = scope::all,
                                    .org_admin = scope::all,
                                    .internal_user = scope::all,
                                    .internal_user_viewer = scope::all,
                                    .none = scope::all};
}  // namespace rules

// The rule of the management route `route` (its path in the route table, e.g.
// "/key/generate", "/team/info") applied to role `r`; denied for a path not in the table.
scope route_scope(auth::role r, std::string_view route);

// The refusal: 401 "Only proxy admin can ..." for role none, else 403 (type auth_error).
core::error route_denied(auth::role r, std::string_view route, std::string_view user_id);

}  // namespace switchyard::admin
