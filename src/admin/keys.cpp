#include "switchyard/admin/keys.hpp"

#include "admin_util.hpp"
#include "entities.hpp"
#include "handlers.hpp"

#include "switchyard/core/ids.hpp"
#include "switchyard/store/postgres/db_executor.hpp"
#include "switchyard/store/postgres/key_repo.hpp"
#include "switchyard/store/postgres/tenant_repo.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <ctime>
#include <set>
#include <span>
#include <string_view>

namespace switchyard::admin {

namespace {

// The key the body asks for in `field` (it must start with "sk-"), else a new one.
core::result<std::string> new_key_of(const json& body, const char* field) {
  auto given = string_field(body, field, false);
  if (!given) {
    return given.error();
  }
  if (given->empty()) {
    return generate_key_string();
  }
  if (!given->starts_with("sk-")) {
    return core::make_error(core::errc::bad_request,
                            "Invalid key format. LiteLLM Virtual Key must start with 'sk-'. Received: " +
                                core::redact_key(*given),
                            field);
  }
  return std::move(*given);
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
  // At most core::max_duration_*: a longer one would overflow the clock (and "never" is null).
  const long unit_seconds = unit == "s"   ? 1
                            : unit == "m" ? 60
                            : unit == "h" ? 3600
                            : unit == "d" ? 86400
                            : unit == "w" ? 7 * 86400
                                          : 0;
  if ((unit == "mo" && n > core::max_duration_months) || n * unit_seconds > core::max_duration_seconds) {
    return std::nullopt;
  }
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
  if (unit == "w") {
    return now + weeks(n);  // LiteLLM's duration_in_seconds: 7 days
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
  // The last four characters, not bytes (LiteLLM's key[-4:] counts code points): a cut
  // inside a multibyte character left invalid UTF-8, which Postgres refuses. A character
  // starts at any byte that is not a continuation byte (10xxxxxx).
  std::size_t from = key.size();
  for (int chars = 0; chars < 4 && from > 0; ++chars) {
    do {
      --from;
    } while (from > 0 && (static_cast<unsigned char>(key[from]) & 0xC0) == 0x80);
  }
  return "sk-..." + std::string(key.substr(from));
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

core::result<json> key_patch_from(const json& body, sys_time now, const core::time_zone& tz) {
  if (!body.is_object()) {
    return core::make_error(core::errc::bad_request, "Request body must be a JSON object");
  }
  auto base = patch_from(body, entity::key, now, tz);  // typed fields, budget_reset_at
  if (!base) {
    return base.error();
  }
  json patch = std::move(*base);
  if (auto it = body.find("duration"); it != body.end() && it->is_string() && *it == "-1") {
    patch["expires"] = nullptr;  // LiteLLM's "never expires" (as null does)
  } else if (it != body.end()) {
    if (auto e = check_kind("duration", kind::duration_or_null, *it, now)) {
      return *e;
    }
    patch["expires"] = it->is_null() ? json(nullptr) : json(iso_utc(*add_duration(it->get<std::string>(), now)));
  }
  if (patch.contains("metadata")) {
    // A metadata patch replaces the stored metadata; the tags go into the new one.
    if (auto e = merge_tags(body, patch, now)) {
      return *e;
    }
  } else if (auto it = body.find("tags"); it != body.end() && !it->is_null()) {
    // Tags alone replace metadata.tags and keep the rest of the stored metadata, as
    // LiteLLM starts from the existing metadata. The key repository merges them in the
    // statement that writes the row (metadata_tags), so no read is needed first and a
    // concurrent change of another member is not lost.
    if (auto e = check_kind("tags", kind::str_array, *it, now)) {
      return *e;
    }
    patch["metadata_tags"] = *it;
  }
  // LiteLLM takes the per-model rate limits as fields of their own and keeps them in the
  // key's metadata, where the limits stage reads them: into the metadata sent, else merged
  // into the stored one (metadata_merge, written in the statement, as tags alone are).
  for (const char* name : {"model_rpm_limit", "model_tpm_limit"}) {
    auto it = body.find(name);
    if (it == body.end() || it->is_null()) {
      continue;
    }
    bool valid = it->is_object();
    if (valid) {
      for (const auto& v : *it) {
        valid = valid && v.is_number_integer() &&
                (v.is_number_unsigned() ? v.get<std::uint64_t>() <= INT64_MAX : v.get<std::int64_t>() >= 0);
      }
    }
    if (!valid) {
      return field_error(name, "expected an object of model name to a non-negative integer");
    }
    if (auto md = patch.find("metadata"); md != patch.end() && md->is_object()) {
      (*md)[name] = *it;
    } else {
      patch["metadata_merge"][name] = *it;
    }
  }
  return ok(std::move(patch));
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

// A non-admin making or moving a key into `team_id` must be the team's `admin` member, or
// the team's team_member_permissions must list this route; else 401
// team_member_permission_error.
net::awaitable<core::result<void>> check_team_key(const route_context& c, std::string team_id) {
  std::string kind = "teams";
  bool expand = true;
  auto r = co_await c.db().run(pg::get_entity_blocking, kind, team_id, expand);
  if (!r) {
    co_return r.error();
  }
  if (!*r) {
    if (c.r.path == "/key/generate") {
      // LiteLLM's answer to a caller who is not an admin making a key for a team it cannot
      // find (an admin may name any team_id, as there).
      co_return bad_request("Unable to find team object in database. Team ID: " + team_id, "team_id");
    }
    co_return not_found("Team not found: " + team_id, "team_id");
  }
  json team = json::parse(**r);
  json perms = team.value("team_member_permissions", json::array());
  bool member = false;
  bool admin = false;
  for (const auto& m : team.value("team_memberships", json::array())) {
    if (m.value("user_id", "") == c.self_user) {
      member = true;
      admin = m.value("role", "") == "admin";
    }
  }
  const std::string route(c.r.path);
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

core::error admin_only(const route_context& c, std::string_view field) {
  auto e = core::make_error(core::errc::forbidden,
                            "Only a proxy admin can set '" + std::string(field) + "' on an existing key. Your role=" +
                                std::string(auth::role_name(auth::role_of(c.who))),
                            std::string(field));
  e.type = "auth_error";
  return e;
}

// What a caller limited to their own keys may not change on a key that exists: what an
// admin set to bound it (budget, spend, limits, expiry, the block) and where its spend is
// charged (organisation, budget, leaving its team). On a new key they may set their own
// limits, but not its spend or the organisation it is charged to. Their own budget still
// bounds every key they make.
constexpr std::string_view admin_only_on_existing[] = {
    "blocked",   "spend",     "max_budget",            "soft_budget",      "budget_duration", "budget_id",
    "tpm_limit", "rpm_limit", "max_parallel_requests", "model_max_budget", "organization_id", "expires"};
constexpr std::string_view admin_only_on_new[] = {"spend", "organization_id"};

// A key patch of a caller limited to their own keys: a user_id must be theirs, a team_id
// needs the team's permission (check_team_key), and the fields above stay the admin's.
net::awaitable<core::result<void>> check_own_patch(const route_context& c, const json& patch, bool existing) {
  if (!c.own_only()) {
    co_return core::result<void>{};
  }
  if (auto u = patch.find("user_id"); u != patch.end() && !(u->is_string() && *u == c.self_user)) {
    co_return not_your_key(c.who);
  }
  if (auto m = patch.find("metadata_merge"); existing && m != patch.end() && m->is_object() && !m->empty()) {
    co_return admin_only(c, m->begin().key());  // the per-model limits an admin set
  }
  const auto fields = existing ? std::span<const std::string_view>(admin_only_on_existing)
                               : std::span<const std::string_view>(admin_only_on_new);
  for (auto f : fields) {
    if (patch.contains(f)) {
      co_return admin_only(c, f == "expires" ? std::string_view("duration") : f);
    }
  }
  if (auto t = patch.find("team_id"); t != patch.end()) {
    if (!t->is_string()) {
      if (existing) {
        co_return admin_only(c, "team_id");  // out of its team: from under the team's budget and models
      }
      co_return core::result<void>{};
    }
    std::string team_id = t->get<std::string>();
    co_return co_await check_team_key(c, std::move(team_id));
  }
  co_return core::result<void>{};
}

// The 404 of a key patch's budget_id that names no budgets row, as /user/new answers.
core::error budget_not_found(const json& patch) {
  return not_found("Budget not found: " + text_of(patch, "budget_id"), "budget_id");
}

// A key patch's budget_id must name a budgets row: 404 naming it otherwise, before
// anything is written. The key's foreign key (as LiteLLM's) also refuses a budget deleted
// between this check and the write: the write then answers the same 404 (budget_missing).
net::awaitable<core::result<void>> check_key_budget(const route_context& c, const json& patch) {
  auto b = patch.find("budget_id");
  if (b == patch.end() || !b->is_string()) {
    co_return core::result<void>{};
  }
  std::string budget_id = b->get<std::string>();
  auto row = co_await get_row(c, "budgets", budget_id, false);
  if (!row) {
    co_return row.error();
  }
  if (!*row) {
    co_return budget_not_found(patch);
  }
  co_return core::result<void>{};
}

// A metadata patch of a caller limited to their own keys replaces the key's metadata,
// but not the per-model limits an admin keeps there (model_rpm_limit, model_tpm_limit):
// they are carried over, and the caller may not set them.
core::result<void> keep_admin_metadata(const route_context& c, const pg::key_record& k, json& patch) {
  auto m = patch.find("metadata");
  if (!c.own_only() || m == patch.end() || !m->is_object()) {
    return {};
  }
  static constexpr std::string_view kept[] = {"model_rpm_limit", "model_tpm_limit"};
  for (auto f : kept) {
    if (m->contains(f)) {
      return admin_only(c, "metadata." + std::string(f));
    }
  }
  const json row = json::parse(k.row_json, nullptr, false);
  if (auto old = row.is_object() ? row.find("metadata") : row.end(); row.is_object() && old != row.end() &&
                                                                     old->is_object()) {
    for (auto f : kept) {
      if (auto v = old->find(f); v != old->end()) {
        (*m)[std::string(f)] = *v;
      }
    }
  }
  return {};
}

// The key `token`, which a caller limited to their own keys must own: 404 / 403.
net::awaitable<core::result<pg::key_record>> owned_key(const route_context& c, std::string token) {
  auto r = co_await c.db().run(pg::find_key_by_hash_blocking, token);
  if (!r) {
    co_return r.error();
  }
  if (!*r) {
    co_return not_found("Key not found", "key");
  }
  if (c.own_only() && !owns(c.who, **r)) {
    co_return not_your_key(c.who);
  }
  co_return std::move(**r);
}

// LiteLLM's refusal of a key_alias that another key has.
core::error alias_taken(const json& patch) {
  return core::make_error(core::errc::bad_request,
                          "Key with alias '" + text_of(patch, "key_alias") +
                              "' already exists. Unique key aliases across all keys are required.",
                          "key_alias");
}

// The answer of a key write: the row (404 when it is gone), with `key` as its hashed
// token. Answers never repeat a key's secret value, only the one that creates it does
// (docs/virtual-keys.md); every endpoint that takes a key also takes its token.
core::result<json> written_key(const route_context& c, const core::result<std::optional<pg::key_record>>& r,
                               const std::string& token) {
  if (!r) {
    return r.error();
  }
  if (!*r) {
    return not_found("Key not found", "key");
  }
  c.invalidation().publish(token);
  auto out = key_object(**r);
  out["key"] = token;
  return ok(std::move(out));
}

handler_result set_blocked(const route_context& c, bool blocked) {
  auto key = string_field(c.body, "key", true);
  if (!key) {
    co_return key.error();
  }
  auto token = token_of(*key);
  auto r = co_await c.db().run(pg::set_key_blocked_blocking, token, blocked, c.actor);
  co_return written_key(c, r, token);
}

// The tokens of /key/delete for a caller limited to their own keys: each key must be theirs;
// aliases name only their keys with those aliases.
net::awaitable<core::result<std::vector<std::string>>> own_tokens_to_delete(const route_context& c,
                                                                           std::vector<std::string> tokens,
                                                                           std::vector<std::string> aliases) {
  for (const auto& t : tokens) {
    if (auto mine = co_await owned_key(c, t); !mine) {
      co_return mine.error();
    }
  }
  for (const auto& a : aliases) {
    pg::key_list_query q;
    q.size = 100;
    q.user_id = c.self_user;
    q.key_alias = a;
    auto page = co_await c.db().run(pg::list_keys_blocking, q);
    if (!page) {
      co_return page.error();
    }
    for (const auto& k : page->keys) {
      tokens.push_back(k.token);
    }
  }
  if (tokens.empty()) {
    co_return not_found("Key not found", "key_aliases");
  }
  co_return tokens;
}

}  // namespace

handler_result key_info(const route_context& c) {
  auto key = query_param(c.req.query, "key");
  std::string token;
  if (key && !key->empty()) {
    token = token_of(*key);
  } else if (c.who.vkey) {
    token = c.who.vkey->token;  // no key: the caller's own key (LiteLLM)
  } else {
    co_return field_error("key", "required (GET /key/info?key=sk-...)");
  }
  auto r = co_await owned_key(c, token);
  if (!r) {
    co_return r.error();
  }
  co_return ok(json{{"key", token}, {"info", key_object(*r)}});
}

handler_result key_list(const route_context& c) {
  auto page = int_param(c.req.query, "page", 1, 1, 1000000);
  auto size = int_param(c.req.query, "size", 10, 1, 100);
  if (!page) {
    co_return page.error();
  }
  if (!size) {
    co_return size.error();
  }
  pg::key_list_query q;
  q.page = *page;
  q.size = *size;
  q.user_id = query_param(c.req.query, "user_id");
  if (c.own_only()) {
    if (q.user_id && *q.user_id != c.self_user) {
      co_return not_your_key(c.who);
    }
    q.user_id = c.self_user;  // only their own keys
  }
  q.team_id = query_param(c.req.query, "team_id");
  q.organization_id = query_param(c.req.query, "organization_id");
  q.key_alias = query_param(c.req.query, "key_alias");
  bool full = query_param(c.req.query, "return_full_object").value_or("") == "true";
  auto r = co_await c.db().run(pg::list_keys_blocking, q);
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

// litellm_settings.default_key_generate_params and upperbound_key_generate_params, as
// LiteLLM applies them to /key/generate: defaults fill fields that are absent or null
// (an explicit `budget_duration: null` keeps the budget from ever resetting); an upper
// bound also fills an absent field, and a larger value is a 400, never clamped.
namespace {

// `fill`: a new key (/key/generate) gets the defaults and, for what it leaves out, the
// upper bounds. An update (fill false) is only checked against the bounds, as LiteLLM's
// _enforce_upperbound_key_params(fill_defaults=False): what it leaves out stays as it is.
core::result<json> with_key_generate_params(const json& body, const json& litellm_raw, sys_time now, bool fill) {
  json out = body;
  if (auto d = litellm_raw.find("default_key_generate_params"); fill && d != litellm_raw.end() && d->is_object()) {
    for (const auto& [k, v] : d->items()) {
      auto it = out.find(k);
      if (it == out.end() || (it->is_null() && k != "budget_duration")) {
        out[k] = v;
      }
    }
  }
  auto u = litellm_raw.find("upperbound_key_generate_params");
  if (u == litellm_raw.end() || !u->is_object()) {
    return ok(std::move(out));
  }
  for (const auto& item : u->items()) {
    // Named, not structured bindings: the lambda below captures them (clang 14 refuses
    // to capture a structured binding).
    const std::string& k = item.key();
    const json& bound = item.value();
    if (bound.is_null()) {
      continue;
    }
    auto it = out.find(k);
    if (it == out.end() || it->is_null()) {
      if (fill) {
        out[k] = bound;
      }
      continue;
    }
    const auto over = [&] {
      auto e = core::make_error(core::errc::bad_request, k + " is over max limit set in config - user_value=" +
                                                             (it->is_string() ? it->get<std::string>() : it->dump()) +
                                                             "; max_value=" +
                                                             (bound.is_string() ? bound.get<std::string>() : bound.dump()));
      e.param = k;
      return e;
    };
    if (k == "max_budget" || k == "max_parallel_requests" || k == "tpm_limit" || k == "rpm_limit") {
      if (it->is_number() && bound.is_number() && it->get<double>() > bound.get<double>()) {
        return over();
      }
    } else if (k == "budget_duration" || k == "duration") {
      if (!it->is_string() || !bound.is_string()) {
        continue;  // the field's own check reports a wrong type
      }
      const auto limit = add_duration(bound.get<std::string>(), now);
      if (!limit) {
        continue;
      }
      const auto asked = it->get<std::string>() == "-1" ? std::nullopt : add_duration(it->get<std::string>(), now);
      if (it->get<std::string>() == "-1" || (asked && *asked > *limit)) {
        return over();
      }
    }
  }
  return ok(std::move(out));
}

// LiteLLM's key_type of /key/generate: a preset of the key's allowed_routes (which the
// auth stage enforces), replacing any allowed_routes of the request; "default" keeps them.
std::optional<core::error> apply_key_type(json& body) {
  auto it = body.find("key_type");
  if (it == body.end() || it->is_null()) {
    return std::nullopt;
  }
  static constexpr std::pair<std::string_view, std::string_view> presets[] = {
      {"llm_api", "llm_api_routes"}, {"management", "management_routes"}, {"read_only", "info_routes"}};
  if (it->is_string()) {
    const auto& type = it->get_ref<const std::string&>();
    if (type == "default") {
      return std::nullopt;
    }
    for (auto [name, group] : presets) {
      if (type == name) {
        body["allowed_routes"] = json::array({std::string(group)});
        return std::nullopt;
      }
    }
  }
  return field_error("key_type", "must be one of llm_api, management, read_only, default");
}

}  // namespace

handler_result key_generate(const route_context& c) {
  static const json no_settings = json::object();
  auto body = with_key_generate_params(c.body, c.deps.cfg ? c.deps.cfg->litellm.raw : no_settings, c.now, true);
  if (!body) {
    co_return body.error();
  }
  if (auto e = apply_key_type(*body)) {
    co_return *e;
  }
  auto patch = key_patch_from(*body, c.now, c.budget_tz());
  if (!patch) {
    co_return patch.error();
  }
  if (auto allowed = co_await check_own_patch(c, *patch, false); !allowed) {
    co_return allowed.error();
  }
  if (auto known = co_await check_key_budget(c, *patch); !known) {
    co_return known.error();
  }
  if (c.own_only()) {
    (*patch)["user_id"] = c.self_user;  // internal users make keys for themselves only
  }
  auto key_field = new_key_of(*body, "key");
  if (!key_field) {
    co_return key_field.error();
  }
  const std::string& key = *key_field;
  (*patch)["key_name"] = key_name_of(key);
  auto token = core::sha256_hex(key);
  auto patch_text = patch->dump();
  auto r = co_await c.db().run(pg::insert_key_blocking, token, patch_text, c.actor);
  if (!r) {
    co_return r.error();
  }
  if (r->alias_taken) {
    co_return alias_taken(*patch);
  }
  if (r->budget_missing) {
    co_return budget_not_found(*patch);
  }
  if (!r->key) {
    co_return core::make_error(core::errc::bad_request, "A key with this value already exists", "key");
  }
  c.invalidation().publish(token);  // drops a cached "no such key"
  auto out = key_object(*r->key);
  out["key"] = key;
  if (auto d = body->find("duration"); d != body->end()) {
    out["duration"] = *d;
  }
  co_return ok(std::move(out));
}

namespace {

// /key/update's work on one request body: the route's own, or one item of /key/bulk_update.
// The write (the row, its audit row) is one transaction; the key reloads on every instance.
net::awaitable<core::result<json>> update_key_with(const route_context& c, const json& body) {
  auto key = string_field(body, "key", true);
  if (!key) {
    co_return key.error();
  }
  auto token = token_of(*key);
  std::optional<pg::key_record> mine;
  if (c.own_only()) {
    auto owned = co_await owned_key(c, token);
    if (!owned) {
      co_return owned.error();
    }
    mine = std::move(*owned);
  }
  static const json no_settings = json::object();
  if (auto bounded = with_key_generate_params(body, c.deps.cfg ? c.deps.cfg->litellm.raw : no_settings, c.now, false);
      !bounded) {
    co_return bounded.error();
  }
  auto patch = key_patch_from(body, c.now, c.budget_tz());
  if (!patch) {
    co_return patch.error();
  }
  if (auto allowed = co_await check_own_patch(c, *patch, true); !allowed) {
    co_return allowed.error();
  }
  if (auto known = co_await check_key_budget(c, *patch); !known) {
    co_return known.error();
  }
  if (mine) {
    if (auto kept = keep_admin_metadata(c, *mine, *patch); !kept) {
      co_return kept.error();
    }
  }
  if (auto fresh = co_await fresh_budget_period(c, "verification_tokens", token, *patch); !fresh) {
    co_return fresh.error();
  }
  auto patch_text = patch->dump();
  std::string action = "updated";
  auto r = co_await c.db().run(pg::update_key_blocking, token, patch_text, c.actor, action);
  if (!r) {
    co_return r.error();
  }
  if (r->alias_taken) {
    co_return alias_taken(*patch);
  }
  if (r->budget_missing) {
    co_return budget_not_found(*patch);
  }
  co_return written_key(c, std::move(r->key), token);
}

}  // namespace

handler_result key_update(const route_context& c) { co_return co_await update_key_with(c, c.body); }

// LiteLLM's limit on one /key/bulk_update request.
constexpr std::size_t max_bulk_update_keys = 500;

// /key/bulk_update: each item is a /key/update body, applied as /key/update applies it (one
// transaction with its audit row, the key reloaded on every instance). As LiteLLM, the items
// are independent: a refused item is listed in failed_updates with the reason and the others
// are written. Only a database that does not answer ends the whole request (503): the items
// after it would fail the same way, and those before it stay written.
handler_result key_bulk_update(const route_context& c) {
  auto items = c.body.find("keys");
  if (items == c.body.end() || !items->is_array()) {
    co_return field_error("keys", "required: an array of /key/update bodies ({\"key\": ..., ...})");
  }
  for (std::size_t i = 0; i < items->size(); ++i) {
    const json& item = (*items)[i];
    if (!item.is_object() || !item.contains("key") || !(item["key"].is_string())) {
      co_return field_error("keys[" + std::to_string(i) + "].key", "required: a string (the key or its hashed token)");
    }
  }
  // LiteLLM's order: the body's shape (its 422), then its handler: who, then how many.
  if (c.sc != scope::all) {
    auto e = core::make_error(core::errc::forbidden, "Only proxy admins can perform bulk key updates");
    e.type = "auth_error";
    co_return e;
  }
  if (items->empty()) {
    co_return bad_request("No keys provided for update", "keys");
  }
  if (items->size() > max_bulk_update_keys) {
    co_return bad_request("Maximum " + std::to_string(max_bulk_update_keys) + " keys can be updated at once. Found " +
                              std::to_string(items->size()) + " keys.",
                          "keys");
  }
  json succeeded = json::array();
  json failed = json::array();
  for (const json& item : *items) {
    const std::string token = token_of(item["key"].get_ref<const std::string&>());
    auto updated = co_await update_key_with(c, item);
    if (updated) {
      json info = std::move(*updated);
      info.erase("key");
      info.erase("token");
      succeeded.push_back(json{{"key", token}, {"key_info", std::move(info)}});
      continue;
    }
    auto e = for_client(updated.error(), c.r.path);
    if (e.code == core::errc::unavailable) {
      co_return e;
    }
    const bool missing = e.code == core::errc::not_found && e.param == "key";
    json key_info = nullptr;
    if (!missing) {
      // The key as it is (LiteLLM lists the stored row of a refused item).
      auto row = co_await c.db().run(pg::find_key_by_hash_blocking, token);
      if (!row) {
        co_return for_client(row.error(), c.r.path);
      }
      if (*row) {
        key_info = key_object(**row);
        key_info.erase("token");
      }
    }
    failed.push_back(json{{"key", token},
                          {"key_info", std::move(key_info)},
                          {"failed_reason", missing ? "Key not found: " + token : e.message}});
  }
  co_return ok(json{{"total_requested", items->size()},
                    {"successful_updates", std::move(succeeded)},
                    {"failed_updates", std::move(failed)}});
}

// POST /v2/key/info {"keys": [...]}: the rows of several keys, as /key/info shows one. Keys
// that do not exist are left out (LiteLLM's find_all); a caller limited to their own keys
// gets 403, as from /key/info, when one of the keys found is not theirs.
handler_result key_info_v2(const route_context& c) {
  auto given = c.body.find("keys");
  if (given == c.body.end() || given->is_null() || (given->is_array() && given->empty())) {
    // LiteLLM's 422 and words for a request without keys.
    auto e = core::make_error(core::errc::bad_request, "Malformed request. No keys passed in.", "keys");
    e.status = 422;
    co_return e;
  }
  auto keys = string_list(c.body, "keys");
  if (!keys) {
    co_return keys.error();
  }
  std::vector<std::string> tokens;
  for (const auto& k : *keys) {
    auto t = token_of(k);
    if (std::find(tokens.begin(), tokens.end(), t) == tokens.end()) {
      tokens.push_back(std::move(t));
    }
  }
  auto rows = co_await c.db().run(pg::find_keys_by_hashes_blocking, tokens);
  if (!rows) {
    co_return rows.error();
  }
  json info = json::array();
  for (const auto& k : *rows) {
    if (c.own_only() && !owns(c.who, k)) {
      co_return not_your_key(c.who);
    }
    info.push_back(key_object(k));
  }
  co_return ok(json{{"key", tokens}, {"info", std::move(info)}});
}

// POST /key/health: LiteLLM's check of the calling key's own logging callbacks, its
// metadata.logging ([{callback_name, callback_type, callback_vars}]). A key without them is
// healthy, LiteLLM's {"key": "healthy", "logging_callbacks": null}. This gateway runs only the
// config's callbacks, never a key's: a key that names some is answered unhealthy, saying so,
// where LiteLLM would send a test log through them.
handler_result key_health(const route_context& c) {
  const json healthy{{"key", "healthy"}, {"logging_callbacks", nullptr}};
  if (!c.who.vkey || c.who.vkey->token.empty() || c.deps.db == nullptr) {
    co_return ok(healthy);  // the master key (or a caller without a key row) has no metadata
  }
  std::string token = c.who.vkey->token;
  auto r = co_await c.db().run(pg::find_key_by_hash_blocking, token);
  if (!r) {
    co_return r.error();
  }
  const json row = *r ? json::parse((*r)->row_json, nullptr, false) : json();
  const json* logging = nullptr;
  if (row.is_object()) {
    if (auto md = row.find("metadata"); md != row.end() && md->is_object()) {
      if (auto l = md->find("logging"); l != md->end() && !l->is_null()) {
        logging = &*l;
      }
    }
  }
  if (logging == nullptr) {
    co_return ok(healthy);
  }
  const auto failed = [](const std::string& why) {
    // LiteLLM's 500 for a logging list it cannot read.
    return core::make_error(core::errc::internal, "Key health check failed: " + why);
  };
  if (!logging->is_array()) {
    co_return failed("metadata.logging must be a list of {callback_name, callback_type, callback_vars}");
  }
  json names = json::array();
  for (const auto& entry : *logging) {
    auto name = entry.is_object() ? entry.find("callback_name") : entry.end();
    if (!entry.is_object() || name == entry.end() || !name->is_string()) {
      co_return failed("callback_name is required in key_logging");
    }
    names.push_back(*name);
  }
  co_return ok(json{{"key", "unhealthy"},
                    {"logging_callbacks",
                     {{"callbacks", names},
                      {"status", "unhealthy"},
                      {"details", "Logging test failed: this gateway does not run a key's own logging callbacks "
                                  "(metadata.logging); requests made with this key are logged by the callbacks of "
                                  "the config only. Callbacks named: " +
                                      names.dump()}}}});
}

handler_result key_block(const route_context& c) { return set_blocked(c, true); }

handler_result key_unblock(const route_context& c) { return set_blocked(c, false); }

handler_result key_delete(const route_context& c) {
  auto keys = string_list(c.body, "keys");
  if (!keys) {
    co_return keys.error();
  }
  auto aliases = string_list(c.body, "key_aliases");
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
  if (c.own_only()) {
    auto own = co_await own_tokens_to_delete(c, tokens, *aliases);
    if (!own) {
      co_return own.error();
    }
    tokens = std::move(*own);
    aliases->clear();
  }
  auto r = co_await c.db().run(pg::delete_keys_blocking, tokens, *aliases, c.actor);
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
      out.push_back(tokens[i]);
    }
  }
  for (const auto& t : deleted) {
    out.push_back(t);  // deleted through key_aliases
  }
  for (const auto& t : *r) {
    c.invalidation().publish(t);
  }
  co_return ok(json{{"deleted_keys", std::move(out)}});
}

handler_result key_regenerate(const route_context& c) {
  std::string old_key = c.param;  // /key/{key}/regenerate
  if (old_key.empty()) {
    auto k = string_field(c.body, "key", true);
    if (!k) {
      co_return k.error();
    }
    old_key = *k;
  }
  auto new_key_field = new_key_of(c.body, "new_key");
  if (!new_key_field) {
    co_return new_key_field.error();
  }
  const std::string& new_key = *new_key_field;
  std::optional<sys_time> grace_until;
  if (auto g = c.body.find("grace_period"); g != c.body.end() && !g->is_null()) {
    if (auto e = check_kind("grace_period", kind::duration_or_null, *g, c.now)) {
      co_return *e;
    }
    grace_until = add_duration(g->get<std::string>(), c.now);
  }
  auto patch = key_patch_from(c.body, c.now, c.budget_tz());
  if (!patch) {
    co_return patch.error();
  }
  auto old_token = token_of(old_key);
  std::optional<pg::key_record> mine;
  if (c.own_only()) {
    auto owned = co_await owned_key(c, old_token);
    if (!owned) {
      co_return owned.error();
    }
    mine = std::move(*owned);
  }
  if (auto allowed = co_await check_own_patch(c, *patch, true); !allowed) {
    co_return allowed.error();
  }
  if (auto known = co_await check_key_budget(c, *patch); !known) {
    co_return known.error();
  }
  if (mine) {
    if (auto kept = keep_admin_metadata(c, *mine, *patch); !kept) {
      co_return kept.error();
    }
  }
  auto new_token = core::sha256_hex(new_key);
  if (new_token == old_token) {
    co_return field_error("new_key", "must differ from the current key");
  }
  auto new_name = key_name_of(new_key);
  auto patch_text = patch->dump();
  auto r = co_await c.db().run(pg::regenerate_key_blocking, old_token, new_token, new_name, grace_until, patch_text,
                               c.actor);
  if (!r) {
    co_return r.error();
  }
  if (r->alias_taken) {
    co_return alias_taken(*patch);
  }
  if (r->budget_missing) {
    co_return budget_not_found(*patch);
  }
  if (r->token_taken) {
    // As /key/generate answers a custom key that exists.
    co_return core::make_error(core::errc::bad_request, "A key with this value already exists", "new_key");
  }
  if (!r->key) {
    co_return not_found("Key not found", "key");
  }
  c.invalidation().publish(old_token);
  c.invalidation().publish(new_token);
  auto out = key_object(*r->key);
  out["key"] = new_key;
  if (grace_until) {
    out["grace_period_ends_at"] = iso_utc(*grace_until);
  }
  co_return ok(std::move(out));
}

}  // namespace switchyard::admin
