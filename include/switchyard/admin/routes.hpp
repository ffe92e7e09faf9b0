// The management API as one table: every /key/*, /user/*, /team/*, /organization/*,
// /budget/* and /model/info route with its methods, its access rule (admin/permissions.hpp),
// whether it needs Postgres, and its handler. The gateway's dispatch looks routes up here
// (405 for a known path with another method), the permission check reads the rule, and a
// unit test checks that README.md's "Endpoints" table lists exactly these routes.
//
// Owner: the table is a constant (src/admin/routes.cpp). Thread: any. Never blocks.
#pragma once
#include "switchyard/admin/permissions.hpp"
#include "switchyard/core/asio.hpp"
#include "switchyard/core/error.hpp"

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace switchyard::admin {

// HTTP methods as bits; a route answers GET also to HEAD.
using method_set = std::uint8_t;
inline constexpr method_set method_get = 1;
inline constexpr method_set method_post = 2;
inline constexpr method_set method_patch = 4;
inline constexpr method_set method_delete = 8;

// The bit of an HTTP method ("HEAD" is GET's); 0 for any other method.
method_set method_bit(std::string_view method);
// "GET", "POST", "PATCH", "DELETE" of a set, in that order, joined by ", ".
std::string method_names(method_set methods);

struct route_context;  // what a handler gets (src/admin/handlers.hpp)
using route_handler = net::awaitable<core::result<nlohmann::json>> (*)(const route_context&);

struct route {
  std::string_view path;   // e.g. "/team/new": the route's name in permission checks and messages
  std::string_view alias;  // another path for it ("/v1/model/info"), empty if none; may hold
                           // one {param} segment ("/key/{key}/regenerate")
  method_set methods;
  access_rule rule;
  bool needs_db;  // false: answers without Postgres, also before the migrations ran
  route_handler handler;
};

// Every management route, grouped by entity.
std::span<const route> management_routes();

// The paths the gateway answers itself before looking at the table (probes, /metrics,
// the model list): not management routes, but README.md lists them too.
std::span<const std::string_view> builtin_paths();

// The route whose path (or alias) is `path`, else null. `param` receives the {param}
// segment of a patterned alias (a view into `path`), else stays empty.
const route* find_route(std::string_view path, std::string_view* param = nullptr);

}  // namespace switchyard::admin
