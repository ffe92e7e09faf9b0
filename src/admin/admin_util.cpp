#include "admin_util.hpp"

#include "switchyard/core/ids.hpp"
#include "switchyard/store/postgres/db_executor.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>

namespace switchyard::admin {

// json converts from almost anything, so a result<json> value is built explicitly.
core::result<json> ok(json j) { return core::result<json>(boost::system::in_place_value, std::move(j)); }

core::result<json> ok_prebuilt(std::string json_text) {
  json o = json::object();
  o[std::string(prebuilt_json_key)] = std::move(json_text);
  return ok(std::move(o));
}

core::error field_error(const std::string& field, const std::string& what) {
  auto e = core::make_error(core::errc::bad_request, field + ": " + what, field);
  e.status = 422;
  return e;
}

core::error not_found(const std::string& what, const std::string& param) {
  return core::make_error(core::errc::not_found, what, param);
}

core::error for_client(core::error e, std::string_view where) {
  if (pg::is_job_failure(e)) {
    spdlog::error("management {}: {}", where, e.message);
    return core::make_error(core::errc::internal, "Internal Server Error, the database could not complete the "
                                                  "request. The gateway's log has the details.");
  }
  if (pg::is_unavailable_failure(e)) {
    // Still a 503: the caller may try again.
    spdlog::warn("management {}: {}", where, e.message);
    return core::make_error(core::errc::unavailable, "Service Unavailable: the database did not answer. Try again "
                                                     "later; the gateway's log has the details.");
  }
  return e;
}

core::error bad_request(std::string message, std::string param) {
  return core::make_error(core::errc::bad_request, std::move(message), std::move(param));
}

core::error forbidden(std::string message) {
  auto e = core::make_error(core::errc::forbidden, "Authentication Error - " + std::move(message));
  e.type = "auth_error";
  return e;
}

net::awaitable<std::optional<auth::principal>> authenticate_caller(const auth::key_authenticator& auth,
                                                                   const http::request& req, http::responder& resp) {
  auto key = auth.master().key_from([&req](std::string_view n) { return req.header(n); });
  if (key.empty() && auth.is_public(req.path)) {
    co_return auth::principal{};  // general_settings.public_routes: an anonymous caller
  }
  core::result<auth::principal> who = core::make_error(core::errc::unauthorized, "");
  if (key.empty() && auth.session_auth() && auth.master().enabled() &&
      req.header("cookie").find("switchyard_session=") != std::string_view::npos) {
    // The admin UI's sign-in session (admin/sso.hpp): the user's own role rules, and a
    // CSRF token on anything that changes state.
    const bool safe = req.method == "GET" || req.method == "HEAD";
    std::string cookie(req.header("cookie"));
    std::string csrf(req.header("x-csrf-token"));
    who = co_await auth.session_auth()(std::move(cookie), std::move(csrf), safe);
  } else {
    who = co_await auth.authenticate(std::move(key));
  }
  if (!who) {
    co_await resp.send(http::error_response(who.error()));
    co_return std::nullopt;
  }
  if (auto allowed = auth.check_route(*who, req.path); !allowed) {
    co_await resp.send(http::error_response(allowed.error()));
    co_return std::nullopt;
  }
  co_return std::move(*who);
}

net::awaitable<void> send_result(http::responder& resp, core::result<json> out) {
  if (!out) {
    co_await resp.send(http::error_response(out.error()));
    co_return;
  }
  http::response r;
  if (auto prebuilt = out->is_object() && out->size() == 1 ? out->find(prebuilt_json_key) : out->end();
      prebuilt != out->end() && prebuilt->is_string()) {
    r.body = std::move(prebuilt->get_ref<std::string&>());
  } else {
    r.body = out->dump(-1, ' ', false, json::error_handler_t::replace);
  }
  co_await resp.send(std::move(r));
}

std::string text_of(const json& j, const char* name) {
  auto it = j.find(name);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::string id_or_new(const std::string& given) { return given.empty() ? core::uuid4() : given; }

std::optional<core::error> check_kind(const std::string& name, kind k, const json& v, sys_time now) {
  switch (k) {
    case kind::str_or_null:
      return v.is_null() || v.is_string() ? std::nullopt : std::optional(field_error(name, "expected a string or null"));
    case kind::str:
      return v.is_string() ? std::nullopt : std::optional(field_error(name, "expected a string"));
    case kind::num_or_null:
      return v.is_null() || v.is_number() ? std::nullopt : std::optional(field_error(name, "expected a number or null"));
    case kind::num:
      return v.is_number() ? std::nullopt : std::optional(field_error(name, "expected a number"));
    case kind::int_or_null:
    case kind::int32_or_null: {
      if (v.is_null()) {
        return std::nullopt;
      }
      // The range of the column the value is stored in (bigint or integer). nlohmann keeps
      // 2^63 .. 2^64-1 as unsigned, so those are compared as such.
      const bool narrow = k == kind::int32_or_null;
      const std::int64_t lo = narrow ? INT32_MIN : INT64_MIN;
      const std::int64_t hi = narrow ? INT32_MAX : INT64_MAX;
      const bool fits = v.is_number_unsigned()  ? v.get<std::uint64_t>() <= static_cast<std::uint64_t>(hi)
                        : v.is_number_integer() ? v.get<std::int64_t>() >= lo && v.get<std::int64_t>() <= hi
                                                : false;
      if (!v.is_number_integer()) {
        return field_error(name, "expected an integer or null");
      }
      return fits ? std::nullopt
                  : std::optional(field_error(name, "expected an integer from " + std::to_string(lo) + " to " +
                                                        std::to_string(hi) + ", or null"));
    }
    case kind::boolean:
      return v.is_boolean() ? std::nullopt : std::optional(field_error(name, "expected a boolean"));
    case kind::str_array:
      if (!v.is_array() || !std::all_of(v.begin(), v.end(), [](const json& x) { return x.is_string(); })) {
        return field_error(name, "expected an array of strings");
      }
      return std::nullopt;
    case kind::object:
      return v.is_object() ? std::nullopt : std::optional(field_error(name, "expected an object"));
    case kind::duration_or_null:
      if (v.is_null()) {
        return std::nullopt;
      }
      if (!v.is_string() || !add_duration(v.get<std::string>(), now)) {
        return field_error(name, "expected a duration such as \"30s\", \"30m\", \"30h\", \"30d\", \"2w\" or \"1mo\"");
      }
      return std::nullopt;
  }
  return std::nullopt;
}

std::optional<core::error> check_not_negative(const std::string& name, const json& v) {
  if (!v.is_number() || v.is_number_unsigned() || v.get<double>() >= 0) {
    return std::nullopt;
  }
  // LiteLLM refuses these with a 400; 422 here, as every other field check of this API.
  auto e = core::make_error(core::errc::bad_request, name + " cannot be negative. Received: " + v.dump(), name);
  e.status = 422;
  return e;
}

std::optional<core::error> merge_tags(const json& body, json& patch, sys_time now) {
  if (auto it = body.find("tags"); it != body.end() && !it->is_null()) {
    if (auto e = check_kind("tags", kind::str_array, *it, now)) {
      return e;
    }
    json md = patch.contains("metadata") ? patch["metadata"] : json::object();
    md["tags"] = *it;
    patch["metadata"] = std::move(md);
  }
  return std::nullopt;
}

std::string url_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%' && i + 2 < s.size()) {
      int v = 0;
      auto [p, ec] = std::from_chars(s.data() + i + 1, s.data() + i + 3, v, 16);
      if (ec == std::errc() && p == s.data() + i + 3) {
        out += static_cast<char>(v);
        i += 2;
      } else {
        out += s[i];
      }
    } else {
      out += s[i];
    }
  }
  return out;
}

std::optional<std::string> query_param(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    auto amp = query.find('&');
    auto part = query.substr(0, amp);
    auto eq = part.find('=');
    if (url_decode(part.substr(0, eq)) == name) {
      return eq == std::string_view::npos ? std::string() : url_decode(part.substr(eq + 1));
    }
    if (amp == std::string_view::npos) {
      break;
    }
    query.remove_prefix(amp + 1);
  }
  return std::nullopt;
}

core::result<int> int_param(std::string_view query, const char* name, int def, int lo, int hi) {
  auto v = query_param(query, name);
  if (!v || v->empty()) {
    return def;
  }
  int out = 0;
  auto [p, ec] = std::from_chars(v->data(), v->data() + v->size(), out);
  if (ec != std::errc() || p != v->data() + v->size() || out < lo || out > hi) {
    return field_error(name, "expected an integer from " + std::to_string(lo) + " to " + std::to_string(hi));
  }
  return out;
}

pg::change_actor actor_of(const http::request& req, const auth::principal& who) {
  pg::change_actor a;
  a.changed_by = std::string(req.header("litellm-changed-by"));
  if (a.changed_by.empty() && who.vkey) {
    a.changed_by = !who.vkey->key_alias.empty() ? who.vkey->key_alias : who.vkey->user_id;
  }
  if (a.changed_by.empty()) {
    a.changed_by = who.is_master ? "proxy_admin" : who.key_redacted;
  }
  a.changed_by_api_key = who.key.empty() ? std::string() : core::sha256_hex(who.key);
  return a;
}

// A key row as the API shows it: the stored row plus token_id.
json key_object(const pg::key_record& k) {
  json out = json::parse(k.row_json);
  out["token_id"] = k.token;
  return out;
}

core::result<std::string> string_field(const json& body, const char* name, bool required) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) {
    if (required) {
      return field_error(name, "required");
    }
    return std::string();
  }
  if (!it->is_string()) {
    return field_error(name, "expected a string");
  }
  return it->get<std::string>();
}

core::result<std::vector<std::string>> string_list(const json& body, const char* name) {
  std::vector<std::string> out;
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) {
    return out;
  }
  if (!it->is_array()) {
    return field_error(name, "expected an array of strings");
  }
  for (const auto& v : *it) {
    if (!v.is_string()) {
      return field_error(name, "expected an array of strings");
    }
    out.push_back(v.get<std::string>());
  }
  return out;
}

namespace {

// The budgets and limits, which cannot be below 0.
bool non_negative(std::string_view field) {
  return field == "max_budget" || field == "soft_budget" || field == "tpm_limit" || field == "rpm_limit" ||
         field == "max_parallel_requests";
}

}  // namespace

core::result<json> patch_from(const json& body, entity e, sys_time now, const core::time_zone& tz) {
  return patch_from(body, fields_of(e), now, tz);
}

core::result<json> patch_from(const json& body, std::span<const field_spec> specs, sys_time now,
                              const core::time_zone& tz) {
  json patch = json::object();
  for (const auto& f : specs) {
    auto it = body.find(f.name);
    if (it == body.end()) {
      continue;
    }
    if (it->is_null() && (f.k == kind::str_array || f.k == kind::object || f.k == kind::boolean || f.k == kind::num ||
                          f.k == kind::str)) {
      continue;  // not nullable: null means "not given"
    }
    if (auto e = check_kind(f.name, f.k, *it, now)) {
      return *e;
    }
    if (non_negative(f.name)) {
      if (auto e = check_not_negative(f.name, *it)) {
        return *e;
      }
    }
    patch[f.name] = *it;
  }
  if (patch.contains("spend")) {
    // Names the budget counters from now on: the limiter starts new ones from this spend
    // (docs/limits.md, "Budget periods").
    patch["spend_set_at"] = iso_utc(now);
  }
  if (auto it = patch.find("budget_duration"); it != patch.end()) {
    if (it->is_null()) {
      patch["budget_reset_at"] = nullptr;
    } else {
      auto d = core::parse_budget_duration(it->get<std::string>());
      if (!d) {
        return field_error("budget_duration", "expected a duration such as \"30s\", \"30m\", \"30h\", \"30d\", \"2w\" or \"1mo\"");
      }
      patch["budget_reset_at"] = iso_utc(core::next_budget_reset(*d, now, tz));
    }
  }
  return ok(std::move(patch));
}

}  // namespace switchyard::admin
