#include "switchyard/admin/management.hpp"

#include "handlers.hpp"

namespace switchyard::admin {

namespace {

// The request's JSON object ({} for an empty body): 400 when it is malformed or not an object.
core::result<json> body_object(const http::request& req) {
  if (req.body.empty()) {
    return ok(json::object());
  }
  json body;
  try {
    body = json::parse(req.body);
  } catch (const json::parse_error& e) {
    std::string_view what = e.what();  // "[json.exception.parse_error.101] parse error at ..."
    if (auto end = what.find("] "); end != std::string_view::npos) {
      what.remove_prefix(end + 2);
    }
    return core::make_error(core::errc::invalid_json, "Invalid JSON in request body: " + std::string(what));
  }
  if (!body.is_object()) {
    return core::make_error(core::errc::invalid_json, "Request body must be a JSON object");
  }
  return ok(std::move(body));
}

std::string user_of(const auth::principal& who) { return who.vkey ? who.vkey->user_id : std::string(); }

std::string org_of(const auth::principal& who) {
  return who.vkey ? who.vkey->user_organization_id : std::string();
}

// The checks every route shares once the caller is known, in this order: the route's
// access rule for their role (401/403), Postgres when the route needs it (500), an
// org_admin's organisation (403), the JSON body of anything but a GET (400). The body.
core::result<json> admit(const management_deps& deps, const route& r, const auth::principal& who, scope sc,
                         const http::request& req) {
  if (sc == scope::denied) {
    return route_denied(auth::role_of(who), r.path, user_of(who));
  }
  if (r.needs_db && deps.db == nullptr) {
    return core::make_error(core::errc::internal, "No connected db.");
  }
  if (sc == scope::org && org_of(who).empty()) {
    return forbidden("org_admin without an organization_id may not manage users or teams");
  }
  if (method_bit(req.method) == method_get) {
    return ok(json::object());
  }
  return body_object(req);
}

}  // namespace

management_api::management_api(management_deps deps) : deps_(std::move(deps)) {}

net::awaitable<void> management_api::handle(http::request& req, http::responder& resp, const route& r,
                                            std::string param) {
  // The config this call started with stays alive until it ends, even if a reload swaps
  // deps_.cfg meanwhile (a handler may hold references into it across a wait).
  const auto pinned_cfg = deps_.cfg;
  auto who = co_await authenticate_caller(deps_.auth, req, resp);
  if (!who) {
    co_return;
  }
  resp.annotate({}, who->key_redacted);
  const scope sc = r.rule.of(auth::role_of(*who));
  auto body = admit(deps_, r, *who, sc, req);
  if (!body) {
    co_await send_result(resp, std::move(body));
    co_return;
  }
  const route_context c{deps_,
                        req,
                        *who,
                        r,
                        sc,
                        std::move(*body),
                        std::move(param),
                        std::chrono::system_clock::now(),
                        actor_of(req, *who),
                        user_of(*who),
                        org_of(*who)};
  auto out = co_await r.handler(c);
  if (out && method_bit(req.method) != method_get && deps_.budgets_changed) {
    deps_.budgets_changed();  // a write may have set a budget_reset_at: the reset job looks again
  }
  co_await send_result(resp, std::move(out));
}

}  // namespace switchyard::admin
