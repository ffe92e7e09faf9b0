// Who may call which management route (reference §1.4-1.5, LiteLLM's route checks), as a
// pure table: role x route -> scope. The endpoints apply the scope to the rows involved.
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
// Thread: any. Never blocks.
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

// `route` as dispatched, e.g. "/key/generate", "/team/info".
scope route_scope(auth::role r, std::string_view route);
bool is_read_route(std::string_view route);

// The refusal: 401 "Only proxy admin can ..." for role none, else 403 (type auth_error).
core::error route_denied(auth::role r, std::string_view route, std::string_view user_id);

}  // namespace switchyard::admin
