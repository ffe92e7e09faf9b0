#include "switchyard/app/key_lookup.hpp"

#include "switchyard/auth/jwt_auth.hpp"

#include <nlohmann/json.hpp>

#include <cstdio>

namespace switchyard::app {

namespace {

using json = nlohmann::json;

std::string text_or(const json& j, const char* name) {
  auto it = j.find(name);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

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

// A timestamptz as to_jsonb writes it: "2026-12-05T00:14:46.123456+00:00" (or "Z").
std::optional<std::chrono::system_clock::time_point> parse_timestamp(const json& j, const char* name) {
  auto it = j.find(name);
  if (it == j.end() || !it->is_string()) {
    return std::nullopt;
  }
  const std::string& s = it->get_ref<const std::string&>();
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0;
  int used = 0;
  if (std::sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &used) != 6) {
    return std::nullopt;
  }
  using namespace std::chrono;
  const sys_days date{year{y} / month{static_cast<unsigned>(mo)} / std::chrono::day{static_cast<unsigned>(d)}};
  system_clock::time_point t = date + hours{h} + minutes{mi} + seconds{sec};
  std::size_t i = static_cast<std::size_t>(used);
  if (i < s.size() && s[i] == '.') {
    long long frac = 0;
    int digits = 0;
    for (++i; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i) {
      if (digits < 6) {
        frac = frac * 10 + (s[i] - '0');
        ++digits;
      }
    }
    for (; digits < 6; ++digits) {
      frac *= 10;
    }
    t += microseconds{frac};
  }
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
    int oh = 0, om = 0;
    std::sscanf(s.c_str() + i + 1, "%2d:%2d", &oh, &om);
    auto off = hours{oh} + minutes{om};
    t = s[i] == '+' ? t - off : t + off;
  }
  return t;
}

std::optional<double> number_or_null(const json& j, const char* name) {
  auto it = j.find(name);
  if (it == j.end() || !it->is_number()) {
    return std::nullopt;
  }
  return it->get<double>();
}

std::optional<std::int64_t> count_or_null(const json& j, const char* name) {
  auto v = number_or_null(j, name);
  if (!v) {
    return std::nullopt;
  }
  return static_cast<std::int64_t>(*v);
}

// model -> number, also LiteLLM's {"model": {"budget_limit": x, "time_period": "1d"}}.
template <class T>
std::map<std::string, T> number_map(const json& j, const char* name, const char* inner = nullptr) {
  std::map<std::string, T> out;
  auto it = j.find(name);
  if (it == j.end() || !it->is_object()) {
    return out;
  }
  for (const auto& [k, v] : it->items()) {
    if (v.is_number()) {
      out[k] = static_cast<T>(v.template get<double>());
    } else if (inner != nullptr && v.is_object()) {
      if (auto b = v.find(inner); b != v.end() && b->is_number()) {
        out[k] = static_cast<T>(b->template get<double>());
      }
    }
  }
  return out;
}

// The limits of one entity from its row; `budget` (a budgets row, or null) fills what the
// row leaves unset (LiteLLM's shared budgets through budget_id).
auth::entity_limits limits_of(auth::limit_level level, std::string id, std::string alias, const json& row,
                              const json& budget) {
  auth::entity_limits e;
  e.level = level;
  e.id = std::move(id);
  e.alias = std::move(alias);
  const json empty = json::object();
  const json& b = budget.is_object() ? budget : empty;
  auto pick = [&](const char* name) { return row.is_object() && number_or_null(row, name) ? number_or_null(row, name) : number_or_null(b, name); };
  auto pick_count = [&](const char* name) {
    return row.is_object() && count_or_null(row, name) ? count_or_null(row, name) : count_or_null(b, name);
  };
  e.max_budget = pick("max_budget");
  e.soft_budget = pick("soft_budget");
  e.rpm_limit = pick_count("rpm_limit");
  e.tpm_limit = pick_count("tpm_limit");
  e.max_parallel_requests = pick_count("max_parallel_requests");
  if (row.is_object()) {
    e.spend = number_or_null(row, "spend").value_or(0);
    e.spend_set_at = parse_timestamp(row, "spend_set_at");
  }
  const json& sched = row.is_object() && row.contains("budget_duration") && row["budget_duration"].is_string() ? row : b;
  e.budget_duration = text_or(sched, "budget_duration");
  e.budget_reset_at = parse_timestamp(sched, "budget_reset_at");
  e.model_max_budget = number_map<double>(row.is_object() ? row : b, "model_max_budget", "budget_limit");
  if (e.model_max_budget.empty()) {
    e.model_max_budget = number_map<double>(b, "model_max_budget", "budget_limit");
  }
  if (row.is_object()) {
    e.model_spend = number_map<double>(row, "model_spend");
    if (auto m = row.find("metadata"); m != row.end() && m->is_object()) {
      e.model_rpm_limit = number_map<std::int64_t>(*m, "model_rpm_limit");
      e.model_tpm_limit = number_map<std::int64_t>(*m, "model_tpm_limit");
    }
  }
  return e;
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

net::awaitable<lookup_result> lookup_owners(store::postgres::db_executor* db, std::chrono::milliseconds timeout,
                                            std::string owner_key) {
  auto parts = auth::parse_jwt_owner_key(owner_key);
  auto r = co_await db->run_within(timeout, store::postgres::find_owners_blocking, parts.user_id, parts.team_id);
  if (!r) {
    co_return r.error();
  }
  auto k = to_virtual_key(*r);
  k.key_name = "jwt";
  k.user_role = parts.role;  // the token's role (its scope), not the stored user's
  co_return std::optional<auth::virtual_key>{std::move(k)};
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
    k.allowed_routes = string_list(row, "allowed_routes");
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
  auto org = parse_object(r.org_json);
  k.org = owner_of(org);
  // Budgets and rate limits of every level, for the limits stage (docs/limits.md).
  auto add = [&k](auth::entity_limits e) {
    if (!e.id.empty() && e.has_any()) {
      k.limits.push_back(std::move(e));
    }
  };
  add(limits_of(auth::limit_level::key, k.token, k.key_alias, row, parse_object(r.key_budget_json)));
  if (user.is_object()) {
    add(limits_of(auth::limit_level::user, k.user_id, text_or(user, "user_alias"), user, json()));
  }
  if (team.is_object()) {
    add(limits_of(auth::limit_level::team, k.team_id, k.team_alias, team, json()));
  }
  if (org.is_object()) {
    // An organisation's limits live in its budgets row; its spend in its own row.
    auto ob = parse_object(r.org_budget_json);
    auto e = limits_of(auth::limit_level::organization, text_or(org, "organization_id"),
                       text_or(org, "organization_alias"), ob, json());
    e.spend = number_or_null(org, "spend").value_or(0);
    // The spend is the organisation's, and so is the time an admin last set it.
    e.spend_set_at = parse_timestamp(org, "spend_set_at");
    add(std::move(e));
  }
  if (auto m = parse_object(r.membership_json); m.is_object() && !k.user_id.empty() && !k.team_id.empty()) {
    // The key's user as a member of the key's team (max_budget_in_team, else the team's
    // team_member_budget; the query picks the budgets row): LiteLLM checks the budget of a
    // membership against the membership's own spend, on the budgets row's schedule, and
    // the row's rpm_limit / tpm_limit as the member's rate limits in the team
    // (team_member_rpm_limit / team_member_tpm_limit, scope team_member); nothing else.
    auto e = limits_of(auth::limit_level::team_member, k.team_id + ":" + k.user_id, "", m,
                       parse_object(r.membership_budget_json));
    e.max_parallel_requests.reset();
    e.model_max_budget.clear();
    e.model_rpm_limit.clear();
    e.model_tpm_limit.clear();
    add(std::move(e));
  }
  return k;
}

auth::key_cache::lookup_fn make_key_lookup(store::postgres::db_executor& db, std::chrono::milliseconds timeout) {
  auto* p = &db;
  return [p, timeout](std::string hash) { return lookup_key(p, timeout, std::move(hash)); };
}

auth::key_cache::lookup_fn make_owner_lookup(store::postgres::db_executor& db, std::chrono::milliseconds timeout) {
  auto* p = &db;
  return [p, timeout](std::string key) { return lookup_owners(p, timeout, std::move(key)); };
}

}  // namespace switchyard::app
