#include "switchyard/admin/management.hpp"

#include "handlers.hpp"

#include "switchyard/core/utf8.hpp"


namespace switchyard::admin {

namespace {

// Whether a string of `j` (a value or an object's key) holds a NUL character, which
// Postgres' text and jsonb refuse (the write would fail with a database error, a 500).
// `path` is where `j` is; on true it is where the NUL is ("metadata.x", "tags[0]").
bool has_nul(const json& j, std::string& path) {
  const auto holds = [](const std::string& s) { return s.find('\0') != std::string::npos; };
  if (j.is_string()) {
    return holds(j.get_ref<const std::string&>());
  }
  const std::size_t at = path.size();
  if (j.is_object()) {
    for (const auto& [k, v] : j.items()) {
      (path += at == 0 ? "" : ".") += k;
      if (holds(k) || has_nul(v, path)) {
        return true;
      }
      path.resize(at);
    }
  } else if (j.is_array()) {
    for (std::size_t i = 0; i < j.size(); ++i) {
      path += "[" + std::to_string(i) + "]";
      if (has_nul(j[i], path)) {
        return true;
      }
      path.resize(at);
    }
  }
  return false;
}

// The request's JSON object ({} for an empty body): 400 when it is malformed (a number
// that overflows a double included) or not an object, or when a string in it holds a NUL
// character.
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
  } catch (const json::out_of_range& e) {
    // A number too large for a double (1e400): nlohmann refuses it while parsing, as the
    // LLM routes' scanner does, so it is the caller's malformed body, not a server error.
    std::string_view what = e.what();  // "[json.exception.out_of_range.406] number overflow parsing '1e400'"
    if (auto end = what.find("] "); end != std::string_view::npos) {
      what.remove_prefix(end + 2);
    }
    return core::make_error(core::errc::invalid_json,
                            "Invalid JSON in request body: number out of range (" + std::string(what) + ")");
  }
  if (!body.is_object()) {
    return core::make_error(core::errc::invalid_json, "Request body must be a JSON object");
  }
  std::string where;
  if (has_nul(body, where)) {
    return core::make_error(core::errc::bad_request,
                            "`" + where + "` contains a NUL character (\\u0000), which the database cannot store",
                            where.substr(0, where.find_first_of(".[")));
  }
  return ok(std::move(body));
}

// A query parameter whose decoded name or value is not valid UTF-8 (`?user_id=%ff`): 400
// naming it. Postgres' text refuses such bytes, so the lookup failed with a database
// error, a 500. Body strings never get here: the JSON parser refuses invalid UTF-8.
std::optional<core::error> invalid_utf8_param(std::string_view query) {
  while (!query.empty()) {
    const auto amp = query.find('&');
    const auto part = query.substr(0, amp);
    const auto eq = part.find('=');
    const std::string name = url_decode(part.substr(0, eq));
    const bool name_ok = core::is_valid_utf8(name);
    if (!name_ok || (eq != std::string_view::npos && !core::is_valid_utf8(url_decode(part.substr(eq + 1))))) {
      return core::make_error(core::errc::bad_request,
                              name_ok ? "Query parameter `" + name + "` is not valid UTF-8"
                                      : std::string("A query parameter's name is not valid UTF-8"),
                              name_ok ? name : std::string());
    }
    if (amp == std::string_view::npos) {
      break;
    }
    query.remove_prefix(amp + 1);
  }
  return std::nullopt;
}

std::string user_of(const auth::principal& who) { return who.vkey ? who.vkey->user_id : std::string(); }

std::string org_of(const auth::principal& who) {
  return who.vkey ? who.vkey->user_organization_id : std::string();
}

// The checks every route shares once the caller is known, in this order: the route's
// access rule for their role (401/403), Postgres when the route needs it (500), an
// org_admin's organisation (403), the user of a caller limited to their own rows (401), a query parameter with a NUL character or invalid UTF-8
// (400), the JSON body of anything but a GET (400). The body.
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
  // A caller limited to their own rows who has no user (a JWT without a user id claim) has
  // none: LiteLLM refuses a caller without a user as it refuses a key without a role, not
  // with the rows (or spend) of a user "".
  if (sc == scope::own && user_of(who).empty() && auth::role_of(who) != auth::role::none) {
    return route_denied(auth::role::none, r.path, "");
  }
  // A NUL character in a query parameter cannot reach Postgres either (a 500 before).
  for (std::size_t at = req.query.find('%'); at != std::string::npos; at = req.query.find('%', at + 1)) {
    if (req.query.compare(at, 3, "%00") == 0) {
      return core::make_error(core::errc::bad_request,
                              "A query parameter contains a NUL character (%00), which the database cannot store");
    }
  }
  if (auto bad = invalid_utf8_param(req.query)) {
    return *bad;
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
  if (!out) {
    // Postgres' and libpq's own words are for the operator's log (for_client).
    auto e = for_client(out.error(), r.path);
    out = std::move(e);
  }
  if (out && method_bit(req.method) != method_get && deps_.budgets_changed) {
    deps_.budgets_changed();  // a write may have set a budget_reset_at: the reset job looks again
  }
  co_await send_result(resp, std::move(out));
}

}  // namespace switchyard::admin
