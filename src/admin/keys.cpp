#include "switchyard/admin/keys.hpp"

#include "admin_util.hpp"

#include "switchyard/core/ids.hpp"
#include "switchyard/store/postgres/db_executor.hpp"
#include "switchyard/store/postgres/key_repo.hpp"
#include "switchyard/store/postgres/tenant_repo.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <ctime>
#include <set>

namespace switchyard::admin {

using json = nlohmann::json;
namespace pg = store::postgres;

namespace {

constexpr field_spec fields[] = {
    {"key_alias", kind::str_or_null},    {"key_type", kind::str},
    {"metadata", kind::object},          {"models", kind::str_array},
    {"aliases", kind::object},           {"config", kind::object},
    {"permissions", kind::object},       {"model_max_budget", kind::object},
    {"max_budget", kind::num_or_null},   {"soft_budget", kind::num_or_null},
    {"spend", kind::num},                {"tpm_limit", kind::int_or_null},
    {"rpm_limit", kind::int_or_null},    {"max_parallel_requests", kind::int_or_null},
    {"user_id", kind::str_or_null},      {"team_id", kind::str_or_null},
    {"organization_id", kind::str_or_null}, {"budget_id", kind::str_or_null},
    {"blocked", kind::boolean},          {"budget_duration", kind::duration_or_null},
    {"allowed_cache_controls", kind::str_array}, {"allowed_routes", kind::str_array},
    {"auto_rotate", kind::boolean},      {"rotation_interval", kind::duration_or_null},
};

core::error bad_key_format(const std::string& field, const std::string& key) {
  return core::make_error(core::errc::bad_request,
                          "Invalid key format. LiteLLM Virtual Key must start with 'sk-'. Received: " +
                              core::redact_key(key),
                          field);
}

}  // namespace

std::optional<sys_time> add_duration(std::string_view d, sys_time now) {
  std::size_t digits = 0;
  while (digits < d.size() && std::isdigit(static_cast<unsigned char>(d[digits])) != 0) {
    ++digits;
  }
  if (digits == 0 || digits > 6) {
    return std::nullopt;
  }
  long n = 0;
  std::from_chars(d.data(), d.data() + digits, n);
  auto unit = d.substr(digits);
  using namespace std::chrono;
  if (unit == "s") {
    return now + seconds(n);
  }
  if (unit == "m") {
    return now + minutes(n);
  }
  if (unit == "h") {
    return now + hours(n);
  }
  if (unit == "d") {
    return now + days(n);
  }
  if (unit == "mo") {
    auto day = floor<days>(now);
    auto tod = now - day;
    year_month_day ymd{day};
    ymd += months(n);
    if (!ymd.ok()) {
      ymd = ymd.year() / ymd.month() / last;  // Jan 31 + 1mo -> Feb 28/29
    }
    return sys_time(sys_days(ymd)) + duration_cast<sys_time::duration>(tod);
  }
  return std::nullopt;
}

std::string generate_key_string() { return "sk-" + core::random_hex(16); }

std::string key_name_of(std::string_view key) {
  return "sk-..." + std::string(key.size() >= 4 ? key.substr(key.size() - 4) : key);
}

std::string token_of(std::string_view key_or_hash) {
  return key_or_hash.starts_with("sk-") ? core::sha256_hex(key_or_hash) : std::string(key_or_hash);
}

std::string iso_utc(sys_time t) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof buf - n, ".%03dZ", static_cast<int>(ms % 1000));
  return buf;
}

core::result<json> key_patch_from(const json& body, sys_time now) {
  if (!body.is_object()) {
    return core::make_error(core::errc::bad_request, "Request body must be a JSON object");
  }
  auto base = patch_from(body, fields, std::size(fields), now);  // typed fields, budget_reset_at
  if (!base) {
    return base.error();
  }
  json patch = std::move(*base);
  if (auto it = body.find("duration"); it != body.end()) {
    if (auto e = check_kind("duration", kind::duration_or_null, *it, now)) {
      return *e;
    }
    patch["expires"] = it->is_null() ? json(nullptr) : json(iso_utc(*add_duration(it->get<std::string>(), now)));
  }
  if (auto it = body.find("tags"); it != body.end() && !it->is_null()) {
    if (auto e = check_kind("tags", kind::str_array, *it, now)) {
      return *e;
    }
    json md = patch.contains("metadata") ? patch["metadata"] : json::object();
    md["tags"] = *it;
    patch["metadata"] = std::move(md);
  }
  return ok(std::move(patch));
}

key_endpoints::key_endpoints(const auth::key_authenticator& auth, store::postgres::db_executor* db,
                             auth::key_invalidation* invalidation)
    : auth_(auth), db_(db), invalidation_(invalidation) {}

net::awaitable<void> key_endpoints::handle(http::request& req, http::responder& resp, std::string op,
                                           std::string path_key) {
  auto key = auth_.master().key_from([&](std::string_view n) { return req.header(n); });
  auto who = co_await auth_.authenticate(std::move(key));
  if (!who) {
    co_await resp.send(http::error_response(who.error()));
    co_return;
  }
  resp.annotate({}, who->key_redacted);
  auto role = auth::role_of(*who);
  auto route = "/key/" + op;
  auto sc = route_scope(role, route);
  if (op == "info" && role == auth::role::none && query_param(req.query, "key").value_or("").size() > 0) {
    sc = scope::own;  // checked against the calling key below
  }
  if (sc == scope::org) {
    sc = scope::own;  // org_admin: their own keys
  }
  if (sc == scope::denied) {
    // Named first: no temporaries inside co_await (GCC 12).
    std::string user_id = who->vkey ? who->vkey->user_id : std::string();
    auto denied = http::error_response(route_denied(role, route, user_id));
    co_await resp.send(std::move(denied));
    co_return;
  }
  if (db_ == nullptr) {
    co_await resp.send(http::error_response(core::make_error(core::errc::internal, "No connected db.")));
    co_return;
  }
  auto out = co_await run_op(req, *who, std::move(op), std::move(path_key), sc);
  if (!out) {
    co_await resp.send(http::error_response(out.error()));
    co_return;
  }
  http::response r;
  r.body = out->dump(-1, ' ', false, json::error_handler_t::replace);
  co_await resp.send(std::move(r));
}

namespace {

// The key belongs to the caller: the same user, or the calling key itself.
bool owns(const auth::principal& who, const pg::key_record& k) {
  if (!who.vkey) {
    return false;
  }
  return k.token == who.vkey->token || (!who.vkey->user_id.empty() && k.user_id == who.vkey->user_id);
}

core::error not_your_key(const auth::principal& who) {
  auto e = core::make_error(core::errc::forbidden,
                            "Authentication Error - you may only access keys that belong to you. Your role=" +
                                std::string(auth::role_name(auth::role_of(who))) +
                                ", your user_id=" + (who.vkey ? who.vkey->user_id : std::string()),
                            "key");
  e.type = "auth_error";
  return e;
}

}  // namespace

net::awaitable<core::result<void>> key_endpoints::check_team_key(std::string team_id, std::string user_id,
                                                                 std::string route) {
  std::string kind = "teams";
  bool expand = true;
  auto r = co_await db_->run(pg::get_entity_blocking, kind, team_id, expand);
  if (!r) {
    co_return r.error();
  }
  if (!*r) {
    co_return not_found("Team not found: " + team_id, "team_id");
  }
  json team = json::parse(**r);
  json perms = team.value("team_member_permissions", json::array());
  bool member = false;
  bool admin = false;
  for (const auto& m : team.value("team_memberships", json::array())) {
    if (m.value("user_id", "") == user_id) {
      member = true;
      admin = m.value("role", "") == "admin";
    }
  }
  bool listed = std::find(perms.begin(), perms.end(), json(route)) != perms.end();
  if (member && (admin || listed)) {
    co_return core::result<void>{};
  }
  auto e = core::make_error(core::errc::unauthorized,
                            "Team member does not have permissions for endpoint: " + route +
                                ". You only have access to " + perms.dump() + " (team " + team_id +
                                (member ? ")" : "; you are not a member)"),
                            "team_id");
  e.type = "team_member_permission_error";
  co_return e;
}

net::awaitable<core::result<pg::key_record>> key_endpoints::owned_key(std::string token, const auth::principal& who,
                                                                     scope sc) {
  auto r = co_await db_->run(pg::find_key_by_hash_blocking, token);
  if (!r) {
    co_return r.error();
  }
  if (!*r) {
    co_return not_found("Key not found", "key");
  }
  if (sc != scope::all && !owns(who, **r)) {
    co_return not_your_key(who);
  }
  co_return std::move(**r);
}

net::awaitable<core::result<json>> key_endpoints::run_op(const http::request& req, const auth::principal& who,
                                                         std::string op, std::string path_key, scope sc) {
  const bool own_only = sc != scope::all;
  const std::string self_user = who.vkey ? who.vkey->user_id : std::string();
  const auto now = std::chrono::system_clock::now();
  const auto actor = actor_of(req, who);

  if (op == "info") {
    auto key = query_param(req.query, "key");
    std::string token;
    if (key && !key->empty()) {
      token = token_of(*key);
    } else if (who.vkey) {
      token = who.vkey->token;  // no key: the caller's own key (LiteLLM)
      key = token;
    } else {
      co_return field_error("key", "required (GET /key/info?key=sk-...)");
    }
    auto r = co_await owned_key(token, who, sc);
    if (!r) {
      co_return r.error();
    }
    co_return ok(json{{"key", *key}, {"info", key_object(*r)}});
  }
  if (op == "list") {
    auto page = int_param(req.query, "page", 1, 1, 1000000);
    auto size = int_param(req.query, "size", 10, 1, 100);
    if (!page) {
      co_return page.error();
    }
    if (!size) {
      co_return size.error();
    }
    pg::key_list_query q;
    q.page = *page;
    q.size = *size;
    q.user_id = query_param(req.query, "user_id");
    if (own_only) {
      if (q.user_id && *q.user_id != self_user) {
        co_return not_your_key(who);
      }
      q.user_id = self_user;  // only their own keys
    }
    q.team_id = query_param(req.query, "team_id");
    q.organization_id = query_param(req.query, "organization_id");
    q.key_alias = query_param(req.query, "key_alias");
    bool full = query_param(req.query, "return_full_object").value_or("") == "true";
    auto r = co_await db_->run(pg::list_keys_blocking, q);
    if (!r) {
      co_return r.error();
    }
    json keys = json::array();
    for (const auto& k : r->keys) {
      keys.push_back(full ? key_object(k) : json(k.token));
    }
    auto total_pages = (r->total_count + q.size - 1) / q.size;
    co_return ok(json{{"keys", std::move(keys)},
                      {"total_count", r->total_count},
                      {"current_page", q.page},
                      {"total_pages", total_pages}});
  }

  json body = json::parse(req.body.empty() ? std::string("{}") : req.body, nullptr, false);
  if (body.is_discarded() || !body.is_object()) {
    co_return core::make_error(core::errc::invalid_json, "Request body must be a JSON object");
  }

  if (op == "generate") {
    auto patch = key_patch_from(body, now);
    if (!patch) {
      co_return patch.error();
    }
    if (own_only) {
      if (auto u = patch->find("user_id"); u != patch->end() && !(u->is_string() && *u == self_user)) {
        co_return not_your_key(who);
      }
      (*patch)["user_id"] = self_user;  // internal users make keys for themselves only
    }
    if (auto t = patch->find("team_id"); own_only && t != patch->end() && t->is_string()) {
      std::string team_id = t->get<std::string>();
      std::string route = "/key/" + op;
      if (auto allowed = co_await check_team_key(team_id, self_user, route); !allowed) {
        co_return allowed.error();
      }
    }
    auto custom = string_field(body, "key", false);
    if (!custom) {
      co_return custom.error();
    }
    std::string key = custom->empty() ? generate_key_string() : *custom;
    if (!key.starts_with("sk-")) {
      co_return bad_key_format("key", key);
    }
    (*patch)["key_name"] = key_name_of(key);
    auto token = core::sha256_hex(key);
    auto patch_text = patch->dump();
    auto r = co_await db_->run(pg::insert_key_blocking, token, patch_text, actor);
    if (!r) {
      co_return r.error();
    }
    if (!*r) {
      co_return core::make_error(core::errc::bad_request, "A key with this value already exists", "key");
    }
    invalidation_->publish(token);  // drops a cached "no such key"
    auto out = key_object(**r);
    out["key"] = key;
    if (auto d = body.find("duration"); d != body.end()) {
      out["duration"] = *d;
    }
    co_return ok(std::move(out));
  }

  if (op == "update" || op == "block" || op == "unblock") {
    auto key = string_field(body, "key", true);
    if (!key) {
      co_return key.error();
    }
    auto token = token_of(*key);
    if (own_only) {
      if (op != "update") {
        auto route = "/key/" + op;
        auto denied = route_denied(auth::role_of(who), route, self_user);
        co_return denied;
      }
      if (auto mine = co_await owned_key(token, who, sc); !mine) {
        co_return mine.error();
      }
    }
    core::result<std::optional<pg::key_record>> r = std::optional<pg::key_record>{};
    if (op == "update") {
      auto patch = key_patch_from(body, now);
      if (!patch) {
        co_return patch.error();
      }
      if (own_only) {
        if (auto u = patch->find("user_id"); u != patch->end() && !(u->is_string() && *u == self_user)) {
          co_return not_your_key(who);
        }
      }
      if (auto t = patch->find("team_id"); own_only && t != patch->end() && t->is_string()) {
        std::string team_id = t->get<std::string>();
        std::string route = "/key/" + op;
        if (auto allowed = co_await check_team_key(team_id, self_user, route); !allowed) {
          co_return allowed.error();
        }
      }
      auto patch_text = patch->dump();
      std::string action = "updated";
      r = co_await db_->run(pg::update_key_blocking, token, patch_text, actor, action);
    } else {
      bool blocked = op == "block";
      r = co_await db_->run(pg::set_key_blocked_blocking, token, blocked, actor);
    }
    if (!r) {
      co_return r.error();
    }
    if (!*r) {
      co_return not_found("Key not found", "key");
    }
    invalidation_->publish(token);
    auto out = key_object(**r);
    out["key"] = *key;
    co_return ok(std::move(out));
  }

  if (op == "delete") {
    auto keys = string_list(body, "keys");
    if (!keys) {
      co_return keys.error();
    }
    auto aliases = string_list(body, "key_aliases");
    if (!aliases) {
      co_return aliases.error();
    }
    if (keys->empty() && aliases->empty()) {
      co_return field_error("keys", "required: a non-empty `keys` or `key_aliases` list");
    }
    std::vector<std::string> tokens;
    for (const auto& k : *keys) {
      tokens.push_back(token_of(k));
    }
    if (own_only) {
      for (const auto& t : tokens) {
        if (auto mine = co_await owned_key(t, who, sc); !mine) {
          co_return mine.error();
        }
      }
      // Aliases: only the caller's keys with those aliases.
      for (const auto& a : *aliases) {
        pg::key_list_query q;
        q.size = 100;
        q.user_id = self_user;
        q.key_alias = a;
        auto page = co_await db_->run(pg::list_keys_blocking, q);
        if (!page) {
          co_return page.error();
        }
        for (const auto& k : page->keys) {
          tokens.push_back(k.token);
        }
      }
      aliases->clear();
      if (tokens.empty()) {
        co_return not_found("Key not found", "key_aliases");
      }
    }
    auto r = co_await db_->run(pg::delete_keys_blocking, tokens, *aliases, actor);
    if (!r) {
      co_return r.error();
    }
    if (r->empty()) {
      co_return not_found("Key not found", keys->empty() ? "key_aliases" : "keys");
    }
    std::set<std::string> deleted(r->begin(), r->end());
    json out = json::array();
    for (std::size_t i = 0; i < keys->size(); ++i) {
      if (deleted.erase(tokens[i]) > 0) {
        out.push_back((*keys)[i]);
      }
    }
    for (const auto& t : deleted) {
      out.push_back(t);  // deleted through key_aliases
    }
    for (const auto& t : *r) {
      invalidation_->publish(t);
    }
    co_return ok(json{{"deleted_keys", std::move(out)}});
  }

  if (op == "regenerate") {
    std::string old_key = path_key;
    if (old_key.empty()) {
      auto k = string_field(body, "key", true);
      if (!k) {
        co_return k.error();
      }
      old_key = *k;
    }
    auto new_key_field = string_field(body, "new_key", false);
    if (!new_key_field) {
      co_return new_key_field.error();
    }
    std::string new_key = new_key_field->empty() ? generate_key_string() : *new_key_field;
    if (!new_key.starts_with("sk-")) {
      co_return bad_key_format("new_key", new_key);
    }
    std::optional<sys_time> grace_until;
    if (auto g = body.find("grace_period"); g != body.end() && !g->is_null()) {
      if (auto e = check_kind("grace_period", kind::duration_or_null, *g, now)) {
        co_return *e;
      }
      grace_until = add_duration(g->get<std::string>(), now);
    }
    auto patch = key_patch_from(body, now);
    if (!patch) {
      co_return patch.error();
    }
    auto old_token = token_of(old_key);
    if (own_only) {
      if (auto mine = co_await owned_key(old_token, who, sc); !mine) {
        co_return mine.error();
      }
      if (auto u = patch->find("user_id"); u != patch->end() && !(u->is_string() && *u == self_user)) {
        co_return not_your_key(who);
      }
    }
    if (auto t = patch->find("team_id"); own_only && t != patch->end() && t->is_string()) {
      std::string team_id = t->get<std::string>();
      std::string route = "/key/" + op;
      if (auto allowed = co_await check_team_key(team_id, self_user, route); !allowed) {
        co_return allowed.error();
      }
    }
    auto new_token = core::sha256_hex(new_key);
    if (new_token == old_token) {
      co_return field_error("new_key", "must differ from the current key");
    }
    auto new_name = key_name_of(new_key);
    auto patch_text = patch->dump();
    auto r = co_await db_->run(pg::regenerate_key_blocking, old_token, new_token, new_name, grace_until, patch_text,
                               actor);
    if (!r) {
      co_return r.error();
    }
    if (!*r) {
      co_return not_found("Key not found", "key");
    }
    invalidation_->publish(old_token);
    invalidation_->publish(new_token);
    auto out = key_object(**r);
    out["key"] = new_key;
    if (grace_until) {
      out["grace_period_ends_at"] = iso_utc(*grace_until);
    }
    co_return ok(std::move(out));
  }
  co_return not_found("Not Found: /key/" + op, "");
}

}  // namespace switchyard::admin
