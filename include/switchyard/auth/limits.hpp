// limits: the budget and rate-limit settings of one entity a request is charged to (a key,
// its user, team, organisation, the key's user as a member of its team, the end user
// named in the body, or the whole proxy), as
// loaded from Postgres or the config. Plain value; immutable once cached. The enforcement
// engine charges a request to a list of these (docs/limits.md).
// Thread: any. Never blocks.
#pragma once
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>

namespace switchyard::auth {

// The level an entity sits at; also the scope name in LiteLLM's rate-limit headers and
// error messages ("api_key", "user", "team", "organization", "end_user", "proxy",
// "team_member": a user's membership of the key's team, id "<team_id>:<user_id>").
enum class limit_level : std::uint8_t { key, user, team, organization, end_user, proxy, team_member };

struct entity_limits {
  limit_level level = limit_level::key;
  std::string id;  // the key hash, user_id, team_id, ...; empty: the entity does not exist
  std::string alias;  // key_alias / team_alias ("" if none), for error messages

  // Budget (USD). spend is the running total as last read from Postgres (the period's
  // spend: the reset job sets it to 0 when budget_reset_at passes).
  std::optional<double> max_budget;
  std::optional<double> soft_budget;
  double spend = 0;
  std::string budget_duration;  // LiteLLM's duration string ("30s", "1d", "1mo"); "" none
  std::optional<std::chrono::system_clock::time_point> budget_reset_at;
  // When an admin last set `spend` (null: never). Part of the budget counter's name, so a
  // counter seeded before the change is left behind (limits::period_of).
  std::optional<std::chrono::system_clock::time_point> spend_set_at;

  // Rate limits (absent: none).
  std::optional<std::int64_t> rpm_limit;
  std::optional<std::int64_t> tpm_limit;
  std::optional<std::int64_t> max_parallel_requests;

  // Per model group (keys only; LiteLLM's model_max_budget / model_rpm_limit / model_tpm_limit).
  std::map<std::string, double> model_max_budget;
  std::map<std::string, std::int64_t> model_rpm_limit;
  std::map<std::string, std::int64_t> model_tpm_limit;

  // Spend per model group so far (keys: model_spend), the start of a model_max_budget counter.
  std::map<std::string, double> model_spend;

  bool has_any() const noexcept {
    return max_budget || soft_budget || rpm_limit || tpm_limit || max_parallel_requests || !model_max_budget.empty() ||
           !model_rpm_limit.empty() || !model_tpm_limit.empty();
  }
};

}  // namespace switchyard::auth
