// reset_schedule: LiteLLM's budget durations ("30s", "30m", "30h", "1d", "7d", "30d",
// "1mo", "2w") and the standardized boundary at which a budget with that duration resets
// next (LiteLLM's get_next_standardized_reset_time), in a time zone
// (`litellm_settings.timezone`, UTC by default). docs/budgets.md has the table.
//
//   Ns  the next multiple of N seconds within the minute (carrying into the next minute)
//   Nm  the next multiple of N minutes within the hour
//   Nh  the next multiple of N hours within the day; past 24: that hour mod 24, next day
//   1d  the next midnight; 7d (= 1w) the next Monday, midnight; 30d the 1st of next month;
//       other Nd: today's midnight + N days
//   Nmo the 1st of the month N months ahead, midnight (LiteLLM accepts only 1mo)
//   0 of any unit: now
//
// time_zone reads a TZif file of the system's zoneinfo (tzdata; $TZDIR overrides the
// directory); "UTC" needs no file. Past the file's last transition (2037 in Debian's
// "fat" files) the last offset holds.
//
// Thread: any (values and pure functions). time_zone::load reads a file: call it at
// startup (the config loader does), not on the loop per request.
#pragma once
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace switchyard::core {

enum class duration_unit : std::uint8_t { second, minute, hour, day, week, month };

struct budget_duration {
  std::int64_t value = 0;
  duration_unit unit = duration_unit::day;
};

// The longest duration accepted anywhere (budget periods, key lifetimes, rotation): 100
// years. Times are nanoseconds since 1970 in a signed 64-bit count, which ends in 2262;
// a longer duration would overflow. "Never" is said with null (or "-1"), not 999999d.
inline constexpr std::int64_t max_duration_seconds = 100LL * 366 * 86400;
inline constexpr std::int64_t max_duration_months = 1200;

// "<digits><s|m|h|d|w|mo>", at most 6 digits and at most max_duration_*; nullopt otherwise.
std::optional<budget_duration> parse_budget_duration(std::string_view text);

class time_zone {
 public:
  static time_zone utc();
  // The zone `name` ("Asia/Kolkata", "US/Eastern", "UTC"); nullopt with `why` set when it
  // is not a readable TZif file.
  static std::optional<time_zone> load(const std::string& name, std::string* why = nullptr);

  const std::string& name() const noexcept { return name_; }
  // The UTC offset in force at `t`.
  std::chrono::seconds offset_at(std::chrono::sys_seconds t) const;
  // The instant of local wall time `t`. A time in a gap (spring forward) is taken with the
  // offset before the gap (so it lands after it); an ambiguous one (fall back): the first.
  std::chrono::sys_seconds to_sys(std::chrono::local_seconds t) const;
  std::chrono::local_seconds to_local(std::chrono::sys_seconds t) const;

 private:
  std::string name_ = "UTC";
  std::vector<std::int64_t> transitions_;  // UTC seconds, ascending
  std::vector<std::int32_t> offsets_;      // the offset from transitions_[i] on
  std::int32_t initial_ = 0;               // before the first transition
};

// The next reset boundary after `now` for `d` in `tz` (always > now unless the value is 0).
std::chrono::system_clock::time_point next_budget_reset(const budget_duration& d,
                                                         std::chrono::system_clock::time_point now,
                                                         const time_zone& tz);

}  // namespace switchyard::core
