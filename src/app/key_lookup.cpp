#include "switchyard/app/key_lookup.hpp"

#include <nlohmann/json.hpp>

namespace switchyard::app {

namespace {

using json = nlohmann::json;

json parse_object(const std::optional<std::string>& text) {
  if (!text) {
    return json();
  }
  auto j = json::parse(*text, nullptr, false);
  return j.is_object() ? j : json();
}

std::vector<std::string> string_list(const json& j, const char* name) {
  std::vector<std::string> out;
  if (auto it = j.find(name); it != j.end() && it->is_array()) {
    for (const auto& v : *it) {
      if (v.is_string()) {
        out.push_back(v.get<std::string>());
      }
    }
  }
  return out;
}

std::map<std::string, std::string> string_map(const json& j, const char* name) {
  std::map<std::string, std::string> out;
  if (auto it = j.find(name); it != j.end() && it->is_object()) {
    for (const auto& [k, v] : it->items()) {
      if (v.is_string()) {
        out[k] = v.get<std::string>();
      }
    }
  }
  return out;
}

auth::owner_access owner_of(const json& j) {
  auth::owner_access o;
  if (j.is_object()) {
    o.exists = true;
    o.models = string_list(j, "models");
  }
  return o;
}

using lookup_result = core::result<std::optional<auth::virtual_key>>;

net::awaitable<lookup_result> lookup_key(store::postgres::db_executor* db, std::chrono::milliseconds timeout,
                                         std::string hash) {
  auto r = co_await db->run_within(timeout, store::postgres::find_key_by_hash_blocking, hash);
  if (!r) {
    co_return r.error();
  }
  if (!*r) {
    co_return std::optional<auth::virtual_key>{};
  }
  co_return std::optional<auth::virtual_key>{to_virtual_key(**r)};
}

}  // namespace

auth::virtual_key to_virtual_key(const store::postgres::key_record& r) {
  auth::virtual_key k;
  k.token = r.token;
  k.key_name = r.key_name;
  k.key_alias = r.key_alias;
  k.user_id = r.user_id;
  k.team_id = r.team_id;
  k.organization_id = r.organization_id;
  k.models = r.models;
  k.blocked = r.blocked;
  k.spend = r.spend;
  k.max_budget = r.max_budget;
  k.expires = r.expires;
  k.grace_until = r.deprecated_revoke_at;
  auto row = json::parse(r.row_json, nullptr, false);
  if (row.is_object()) {
    k.aliases = string_map(row, "aliases");
    k.allowed_cache_controls = string_list(row, "allowed_cache_controls");
  }
  auto team = parse_object(r.team_json);
  k.team = owner_of(team);
  if (team.is_object()) {
    k.team_model_aliases = string_map(team, "model_aliases");
    k.team_blocked = team.value("blocked", false);
    if (auto it = team.find("team_alias"); it != team.end() && it->is_string()) {
      k.team_alias = it->get<std::string>();
    }
    if (k.organization_id.empty()) {
      if (auto it = team.find("organization_id"); it != team.end() && it->is_string()) {
        k.organization_id = it->get<std::string>();
      }
    }
  }
  auto user = parse_object(r.user_json);
  k.user = owner_of(user);
  if (user.is_object()) {
    if (auto it = user.find("user_role"); it != user.end() && it->is_string()) {
      k.user_role = it->get<std::string>();
    }
    if (auto it = user.find("organization_id"); it != user.end() && it->is_string()) {
      k.user_organization_id = it->get<std::string>();
    }
  }
  k.org = owner_of(parse_object(r.org_json));
  return k;
}

auth::key_cache::lookup_fn make_key_lookup(store::postgres::db_executor& db, std::chrono::milliseconds timeout) {
  auto* p = &db;
  return [p, timeout](std::string hash) { return lookup_key(p, timeout, std::move(hash)); };
}

}  // namespace switchyard::app
