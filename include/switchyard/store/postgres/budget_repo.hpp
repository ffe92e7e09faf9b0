// budget_repo: budget resets and end-user limits in Postgres (docs/budgets.md).
//
// reset_due_budgets_blocking is one pass of the reset job: in one transaction, under a
// transaction-scoped advisory lock (an instance that does not get it skips the pass), every
// key, user, team and budgets row whose budget_reset_at has passed gets spend 0 (budgets
// rows: the end users, organisations and team/organisation memberships that use them) and
// budget_reset_at = the next boundary of its budget_duration in `tz`
// (core::next_budget_reset, from Postgres's now()). One budget_resets row per entity and
// period records which instance did it (its primary key refuses a second reset of the
// same period). A row whose duration no longer parses gets budget_reset_at = NULL.
//
// Owner: none (free functions). Thread: a db thread only, via db_executor::run. Blocking.
// Out: plain structs; no pqxx types.
#pragma once
#include "switchyard/core/reset_schedule.hpp"
#include "switchyard/store/postgres/pqxx_fwd.hpp"

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace switchyard::store::postgres {

// The pg_try_advisory_xact_lock key of the reset job.
inline constexpr std::int64_t budget_reset_lock_id = 0x5377'6264'7273'7431;  // "Swbdrst1"

struct budget_reset_result {
  bool locked = false;  // false: another instance was resetting; nothing done
  // What was reset, for the key invalidation (every instance's cached keys).
  std::vector<std::string> keys;  // key hashes
  std::vector<std::string> users;
  std::vector<std::string> teams;          // teams, and teams whose memberships were reset
  std::vector<std::string> organizations;  // organisations, and those whose memberships were reset
  std::vector<std::string> end_users;
  std::size_t entities = 0;  // budget_resets rows written
};
budget_reset_result reset_due_budgets_blocking(pqxx::connection& c, const std::string& instance,
                                               const core::time_zone& tz);

// The earliest budget_reset_at of any key, user, team or budgets row (nullopt: none).
std::optional<std::chrono::system_clock::time_point> next_budget_reset_due_blocking(pqxx::connection& c);

// The proxy's own budget (litellm_settings.max_budget): LiteLLM keeps it as the user
// "litellm-proxy-budget"; this makes sure that row exists with this budget and duration
// (budget_reset_at set from `next_reset` when the duration is new or changed; spend kept).
inline constexpr const char* proxy_budget_user = "litellm-proxy-budget";
void ensure_proxy_budget_blocking(pqxx::connection& c, double max_budget, const std::string& budget_duration,
                                  const std::optional<std::chrono::system_clock::time_point>& next_reset);

// The budget_duration of row `id` of `table` ("verification_tokens", "users" or "teams";
// anything else throws): "" when null, nullopt when there is no such row.
std::optional<std::string> budget_duration_of_blocking(pqxx::connection& c, const std::string& table,
                                                       const std::string& id);

// The budget figures of keys and teams that have a max_budget or soft_budget (at most
// `limit` of each, the highest spend first): for the budget gauges and soft-budget warnings.
struct budget_status {
  std::string level;  // "key" or "team"
  std::string id;     // key hash or team_id
  std::string alias;  // key_alias / team_alias, "" if none
  double spend = 0;
  std::optional<double> max_budget;
  std::optional<double> soft_budget;
  std::string period;  // budget_reset_at as text ("" if none): one warning per period
};
std::vector<budget_status> budget_status_blocking(pqxx::connection& c, int limit);

// One end user's row as the limits lookup needs it: spend, blocked, the budgets row.
struct end_user_row {
  std::string user_id;
  std::string alias;
  double spend = 0;
  bool blocked = false;
  std::string budget_id;
  std::optional<double> max_budget;
  std::optional<double> soft_budget;
  std::optional<std::int64_t> rpm_limit;
  std::optional<std::int64_t> tpm_limit;
  std::optional<std::int64_t> max_parallel_requests;
  std::string budget_duration;
  std::optional<std::chrono::system_clock::time_point> budget_reset_at;
  std::optional<std::chrono::system_clock::time_point> spend_set_at;  // an admin's /customer/update spend
};
// nullopt: no such end user.
std::optional<end_user_row> find_end_user_blocking(pqxx::connection& c, const std::string& user_id);

}  // namespace switchyard::store::postgres
