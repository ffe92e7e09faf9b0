// The counters one request is checked against (budgets, request and token windows,
// parallel slots), in the exact integer units both engines count in, and the pure
// helpers that turn an entity's settings into them: budget periods, durations, the
// scope names of LiteLLM's headers and messages. See docs/limits.md.
// Thread: any. Never blocks.
#pragma once
#include "switchyard/auth/limits.hpp"

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace switchyard::limits {

// Budgets are counted in nano-USD (integers: no float drift across thousands of
// increments, exact in Redis' INCRBY and in Lua's doubles up to 2^53 = 9 million USD).
inline constexpr double nano_per_usd = 1e9;
std::int64_t to_nano(double usd);
double to_usd(std::int64_t nano);

enum class kind : std::uint8_t {
  budget,    // spend + reserved must stay within the limit; settled to the actual cost
  requests,  // requests in the current window (rpm)
  tokens,    // tokens in the current window (tpm); settled to the actual tokens
  parallel,  // requests in flight; released at finish
};

// One counter of one request.
struct check {
  kind k = kind::requests;
  std::string scope;   // LiteLLM's scope name: api_key, user, team, team_member, organization, end_user, proxy,
                       // model_per_key
  std::string id;      // the entity's id within its scope (key hash, team_id, "hash:model", ...)
  std::string label;   // for messages: "Key=alias (sk-...abcd)", "Team=t1", ...
  std::int64_t limit = 0;   // nano-USD for budgets, else a count
  std::int64_t amount = 0;  // what this request reserves
  // Budgets only: the period this counter belongs to ("all": no budget_duration), the
  // spend a missing counter starts from (nano-USD) and how long its key lives.
  std::string period;
  std::int64_t seed = 0;
  std::int64_t key_ttl_ms = 0;
  // counter_key(*this), when its maker keeps it (the limits stage, for a check it rewrites
  // with the same counter request after request); 0: computed where it is needed. Whoever
  // changes k, scope, id or period sets it back to 0.
  std::uint64_t key = 0;
};

// The counter a check names: "<scope>:<id>:<r|t|p>", budgets "<scope>:<id>:b:<period>".
std::string counter_of(const check& c);
// A hash of what counter_of() names, without building the name (the engine's lease
// tables; a hit is compared field by field, a hash is not a name).
std::uint64_t counter_key(const check& c);
inline std::uint64_t key_of(const check& c) { return c.key != 0 ? c.key : counter_key(c); }

// A LiteLLM duration string ("30s", "30m", "24h", "7d", "2w" (as days), "1mo"; a bare
// number is seconds).
// nullopt: empty or not a duration.
struct duration_spec {
  std::int64_t count = 0;
  char unit = 's';  // s, m, h, d, or 'M' for months
};
std::optional<duration_spec> parse_duration(std::string_view s);
// t + n units (months: calendar months, the day clamped to the month's last).
std::chrono::system_clock::time_point add_duration(std::chrono::system_clock::time_point t, const duration_spec& d,
                                                   std::int64_t times = 1);

// The budget period of an entity at `now`. With budget_duration and budget_reset_at, the
// period is the one ending at the first reset boundary after `now` (budget_reset_at,
// advanced by whole durations while it is not in the future): a reset is visible on every
// instance the moment budget_reset_at passes, before the reset job has run or any key
// cache has been refreshed. `fresh` says that the period started after the entity was
// read, so its cached spend belongs to the previous period (the counter starts at 0).
struct budget_period {
  std::string id;           // "all", or the period's end in epoch seconds
  bool fresh = false;
  std::int64_t ttl_ms = 0;  // how long the period's counter is kept
};
budget_period period_of(const auth::entity_limits& e, std::chrono::system_clock::time_point now);

// LiteLLM's scope name of a level (api_key, user, team, organization, end_user, proxy,
// team_member).
const char* scope_of(auth::limit_level l);

}  // namespace switchyard::limits
