#include "switchyard/store/postgres/budget_repo.hpp"

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include <cmath>
#include <cstdio>
#include <set>
#include <stdexcept>

namespace switchyard::store::postgres {

namespace {

using json = nlohmann::json;
using namespace std::chrono;

std::string iso(system_clock::time_point t) {
  auto dp = floor<days>(t);
  year_month_day ymd(dp);
  hh_mm_ss hms(floor<seconds>(t - dp));
  char buf[40];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02ld:%02ld:%02ldZ", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                static_cast<long>(hms.hours().count()), static_cast<long>(hms.minutes().count()),
                static_cast<long>(hms.seconds().count()));
  return buf;
}

system_clock::time_point from_epoch(double s) {
  return system_clock::time_point(duration_cast<system_clock::duration>(duration<double>(s)));
}

struct entity_table {
  const char* type;   // budget_resets.entity_type
  const char* table;
  const char* id;
};

// In the spend writer's lock order (keys, users, teams), then budgets.
constexpr entity_table tables[] = {
    {"key", "verification_tokens", "token"},
    {"user", "users", "user_id"},
    {"team", "teams", "team_id"},
    {"budget", "budgets", "budget_id"},
};

// The due rows of `t`, locked in id order, with their next boundary: [{id, old_at, next_at}].
json due_rows(pqxx::work& tx, const entity_table& t, system_clock::time_point now, const core::time_zone& tz) {
  auto res = tx.exec_params(std::string("SELECT ") + t.id + ", budget_duration, budget_reset_at::text FROM " +
                                t.table +
                                " WHERE budget_reset_at <= to_timestamp($1) AND budget_duration IS NOT NULL"
                                " ORDER BY " + t.id + " FOR UPDATE",
                            duration<double>(now.time_since_epoch()).count());
  json out = json::array();
  for (const auto& row : res) {
    json r = {{"id", row[0].as<std::string>()}, {"old_at", row[2].as<std::string>()}};
    auto d = core::parse_budget_duration(row[1].as<std::string>());
    r["next_at"] = d ? json(iso(core::next_budget_reset(*d, now, tz))) : json(nullptr);
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace

budget_reset_result reset_due_budgets_blocking(pqxx::connection& c, const std::string& instance,
                                               const core::time_zone& tz) {
  budget_reset_result out;
  pqxx::work tx{c};
  out.locked = tx.exec_params1("SELECT pg_try_advisory_xact_lock($1)", budget_reset_lock_id)[0].as<bool>();
  if (!out.locked) {
    return out;
  }
  // Postgres's clock decides what is due and where the next period starts, so instances
  // with skewed clocks agree.
  const auto now = from_epoch(tx.exec1("SELECT extract(epoch FROM now())::float8")[0].as<double>());
  std::set<std::string> users, teams, orgs, end_users;
  for (const auto& t : tables) {
    json due = due_rows(tx, t, now, tz);
    if (due.empty()) {
      continue;
    }
    const std::string v = "v AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS v(id text, old_at timestamptz, "
                          "next_at timestamptz))";
    const std::string own = std::string("u AS (UPDATE ") + t.table + " t SET " +
                            (std::string_view(t.type) == "budget" ? "" : "spend = 0, ") +
                            "budget_reset_at = v.next_at, updated_at = now() FROM v WHERE t." + t.id +
                            " = v.id AND t.budget_reset_at = v.old_at RETURNING t." + t.id + " AS id, v.old_at, v.next_at)";
    if (std::string_view(t.type) != "budget") {
      auto res = tx.exec_params("WITH " + v + ", " + own +
                                    " INSERT INTO budget_resets (entity_type, entity_id, period_end, next_reset, instance)"
                                    " SELECT $2, id, old_at, next_at, $3 FROM u RETURNING entity_id",
                                due.dump(), t.type, instance);
      for (const auto& row : res) {
        auto id = row[0].as<std::string>();
        if (std::string_view(t.type) == "key") {
          out.keys.push_back(id);
        } else if (std::string_view(t.type) == "user") {
          users.insert(id);
        } else {
          teams.insert(id);
        }
      }
      out.entities += res.size();
      continue;
    }
    // Budgets rows: the row moves to its next period; whatever uses it starts again at 0.
    auto res = tx.exec_params(
        "WITH " + v + ", " + own +
            ", eu AS (UPDATE end_users e SET spend = 0, updated_at = now() FROM u WHERE e.budget_id = u.id"
            "   RETURNING 'end_user'::text AS kind, e.user_id AS id, e.user_id AS owner, u.old_at)"
            ", org AS (UPDATE organizations o SET spend = 0, updated_at = now() FROM u WHERE o.budget_id = u.id"
            "   RETURNING 'organization'::text, o.organization_id, o.organization_id, u.old_at)"
            ", tm AS (UPDATE team_memberships m SET spend = 0 FROM u WHERE m.budget_id = u.id"
            "   RETURNING 'team_membership'::text, m.team_id || ':' || m.user_id, m.team_id, u.old_at)"
            // A team's default for its members (metadata.team_member_budget_id): the members
            // without a budget of their own use it, so their spend in the team starts again.
            ", tmd AS (UPDATE team_memberships m SET spend = 0 FROM u, teams t"
            "   WHERE m.budget_id IS NULL AND t.team_id = m.team_id AND t.metadata ->> 'team_member_budget_id' = u.id"
            "   RETURNING 'team_membership'::text, m.team_id || ':' || m.user_id, m.team_id, u.old_at)"
            ", om AS (UPDATE organization_memberships m SET spend = 0, updated_at = now() FROM u"
            "   WHERE m.budget_id = u.id"
            "   RETURNING 'organization_membership'::text, m.organization_id || ':' || m.user_id, m.organization_id,"
            "   u.old_at)"
            ", linked AS (SELECT * FROM eu UNION ALL SELECT * FROM org UNION ALL SELECT * FROM tm"
            "   UNION ALL SELECT * FROM tmd UNION ALL SELECT * FROM om)"
            ", logged AS (INSERT INTO budget_resets (entity_type, entity_id, period_end, next_reset, instance)"
            "   SELECT 'budget', id, old_at, next_at, $2 FROM u"
            "   UNION ALL SELECT kind, id, old_at, NULL, $2 FROM linked RETURNING 1)"
            " SELECT kind, owner, (SELECT count(*) FROM logged) FROM linked",
        due.dump(), instance);
    std::size_t logged = due.size();
    for (const auto& row : res) {
      auto kind = row[0].as<std::string>();
      auto owner = row[1].as<std::string>();
      logged = static_cast<std::size_t>(row[2].as<std::int64_t>());
      if (kind == "end_user") {
        end_users.insert(owner);
      } else if (kind == "team_membership") {
        teams.insert(owner);
      } else {
        orgs.insert(owner);
      }
    }
    out.entities += logged;
  }
  tx.exec0("DELETE FROM budget_resets WHERE reset_at < now() - interval '30 days'");
  tx.commit();
  out.users.assign(users.begin(), users.end());
  out.teams.assign(teams.begin(), teams.end());
  out.organizations.assign(orgs.begin(), orgs.end());
  out.end_users.assign(end_users.begin(), end_users.end());
  return out;
}

std::optional<system_clock::time_point> next_budget_reset_due_blocking(pqxx::connection& c) {
  pqxx::read_transaction tx{c};
  auto r = tx.exec1(
      "SELECT extract(epoch FROM least("
      " (SELECT min(budget_reset_at) FROM verification_tokens WHERE budget_duration IS NOT NULL),"
      " (SELECT min(budget_reset_at) FROM users WHERE budget_duration IS NOT NULL),"
      " (SELECT min(budget_reset_at) FROM teams WHERE budget_duration IS NOT NULL),"
      " (SELECT min(budget_reset_at) FROM budgets WHERE budget_duration IS NOT NULL)))::float8");
  if (r[0].is_null()) {
    return std::nullopt;
  }
  return from_epoch(r[0].as<double>());
}

void ensure_proxy_budget_blocking(pqxx::connection& c, double max_budget, const std::string& budget_duration,
                                  const std::optional<system_clock::time_point>& next_reset) {
  pqxx::work tx{c};
  const char* duration = budget_duration.empty() ? nullptr : budget_duration.c_str();
  std::optional<std::string> reset = next_reset ? std::optional(iso(*next_reset)) : std::nullopt;
  tx.exec_params(
      "INSERT INTO users AS u (user_id, user_alias, max_budget, budget_duration, budget_reset_at)"
      " VALUES ($1, $1, $2, $3, $4::timestamptz)"
      " ON CONFLICT (user_id) DO UPDATE SET max_budget = excluded.max_budget,"
      "   budget_duration = excluded.budget_duration,"
      "   budget_reset_at = CASE WHEN u.budget_duration IS NOT DISTINCT FROM excluded.budget_duration"
      "                     THEN u.budget_reset_at ELSE excluded.budget_reset_at END,"
      "   updated_at = now()"
      " WHERE u.max_budget IS DISTINCT FROM excluded.max_budget"
      "    OR u.budget_duration IS DISTINCT FROM excluded.budget_duration",
      proxy_budget_user, max_budget, duration, reset ? reset->c_str() : nullptr);
  tx.commit();
}

std::optional<std::string> budget_duration_of_blocking(pqxx::connection& c, const std::string& table,
                                                       const std::string& id) {
  const char* id_col = table == "verification_tokens" ? "token"
                       : table == "users"             ? "user_id"
                       : table == "teams"             ? "team_id"
                                                      : nullptr;
  if (id_col == nullptr) {
    throw std::invalid_argument("budget_duration_of_blocking: unknown table " + table);
  }
  pqxx::read_transaction tx{c};
  auto res = tx.exec_params("SELECT coalesce(budget_duration, '') FROM " + table + " WHERE " + id_col + " = $1", id);
  if (res.empty()) {
    return std::nullopt;
  }
  return res[0][0].as<std::string>();
}

std::vector<budget_status> budget_status_blocking(pqxx::connection& c, int limit) {
  pqxx::read_transaction tx{c};
  auto res = tx.exec_params(
      "(SELECT 'key', token, coalesce(key_alias, ''), spend, max_budget, soft_budget, coalesce(budget_reset_at::text, '')"
      "  FROM verification_tokens WHERE max_budget IS NOT NULL OR soft_budget IS NOT NULL ORDER BY spend DESC LIMIT $1)"
      " UNION ALL "
      "(SELECT 'team', team_id, coalesce(team_alias, ''), spend, max_budget, soft_budget, coalesce(budget_reset_at::text, '')"
      "  FROM teams WHERE max_budget IS NOT NULL OR soft_budget IS NOT NULL ORDER BY spend DESC LIMIT $1)",
      limit);
  std::vector<budget_status> out;
  out.reserve(res.size());
  for (const auto& r : res) {
    budget_status s;
    s.level = r[0].as<std::string>();
    s.id = r[1].as<std::string>();
    s.alias = r[2].as<std::string>();
    s.spend = r[3].as<double>();
    if (!r[4].is_null()) {
      s.max_budget = r[4].as<double>();
    }
    if (!r[5].is_null()) {
      s.soft_budget = r[5].as<double>();
    }
    s.period = r[6].as<std::string>();
    out.push_back(std::move(s));
  }
  return out;
}

std::optional<end_user_row> find_end_user_blocking(pqxx::connection& c, const std::string& user_id) {
  pqxx::read_transaction tx{c};
  auto res = tx.exec_params(
      "SELECT e.user_id, coalesce(e.alias, ''), e.spend, e.blocked, coalesce(e.budget_id, ''), b.max_budget,"
      " b.soft_budget, b.rpm_limit, b.tpm_limit, b.max_parallel_requests, coalesce(b.budget_duration, ''),"
      " extract(epoch FROM b.budget_reset_at)::float8, extract(epoch FROM e.spend_set_at)::float8"
      " FROM end_users e LEFT JOIN budgets b ON b.budget_id = e.budget_id WHERE e.user_id = $1",
      user_id);
  if (res.empty()) {
    return std::nullopt;
  }
  const auto& r = res[0];
  end_user_row out;
  out.user_id = r[0].as<std::string>();
  out.alias = r[1].as<std::string>();
  out.spend = r[2].as<double>();
  out.blocked = r[3].as<bool>();
  out.budget_id = r[4].as<std::string>();
  if (!r[5].is_null()) {
    out.max_budget = r[5].as<double>();
  }
  if (!r[6].is_null()) {
    out.soft_budget = r[6].as<double>();
  }
  if (!r[7].is_null()) {
    out.rpm_limit = r[7].as<std::int64_t>();
  }
  if (!r[8].is_null()) {
    out.tpm_limit = r[8].as<std::int64_t>();
  }
  if (!r[9].is_null()) {
    out.max_parallel_requests = r[9].as<std::int64_t>();
  }
  out.budget_duration = r[10].as<std::string>();
  if (!r[11].is_null()) {
    out.budget_reset_at = from_epoch(r[11].as<double>());
  }
  if (!r[12].is_null()) {
    out.spend_set_at = from_epoch(r[12].as<double>());
  }
  return out;
}

}  // namespace switchyard::store::postgres
