// UTC calendar dates of Unix times, without the C library's time zone machinery: the
// spend writer spells a row's day and times itself, thousands of rows a batch.
// Thread: any (pure functions).
#pragma once
#include <cstdint>

namespace switchyard::core {

inline constexpr std::int64_t us_per_day = 86'400'000'000;

// The Unix day (days since 1970-01-01) of a time in microseconds, rounded down: a time
// before 1970 falls on the day before, as in Postgres.
constexpr std::int64_t unix_day_of_us(std::int64_t us) { return us / us_per_day - (us % us_per_day < 0 ? 1 : 0); }

struct civil_date {
  std::int64_t year;
  int month;  // 1..12
  int day;    // 1..31
};

// The proleptic Gregorian date of a Unix day (Howard Hinnant's civil_from_days).
constexpr civil_date civil_from_days(std::int64_t days) {
  const std::int64_t z = days + 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const std::int64_t doe = z - era * 146097;
  const std::int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const std::int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const std::int64_t mp = (5 * doy + 2) / 153;
  const std::int64_t d = doy - (153 * mp + 2) / 5 + 1;
  const std::int64_t m = mp < 10 ? mp + 3 : mp - 9;
  return civil_date{yoe + era * 400 + (m <= 2 ? 1 : 0), static_cast<int>(m), static_cast<int>(d)};
}

}  // namespace switchyard::core
