// The budget reset boundaries (LiteLLM's standardized schedule) at fixed times: every unit,
// month ends, leap years, time zones with and without daylight saving.
#include "switchyard/core/reset_schedule.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>

namespace core = switchyard::core;
using namespace std::chrono;

namespace {

system_clock::time_point at(int y, int mo, int d, int h, int mi, int s, int ms = 0) {
  return sys_days(year(y) / mo / d) + hours(h) + minutes(mi) + seconds(s) + milliseconds(ms);
}

std::string iso(system_clock::time_point t) {
  auto dp = floor<days>(t);
  year_month_day ymd(dp);
  hh_mm_ss hms(floor<seconds>(t - dp));
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02ld:%02ld:%02ldZ", int(ymd.year()), unsigned(ymd.month()),
                unsigned(ymd.day()), long(hms.hours().count()), long(hms.minutes().count()),
                long(hms.seconds().count()));
  return buf;
}

std::string next(std::string_view d, system_clock::time_point now, const core::time_zone& tz = core::time_zone::utc()) {
  auto dur = core::parse_budget_duration(d);
  if (!dur) {
    return "invalid";
  }
  return iso(core::next_budget_reset(*dur, now, tz));
}

core::time_zone zone(const std::string& name) {
  std::string why;
  auto z = core::time_zone::load(name, &why);
  EXPECT_TRUE(z.has_value()) << name << ": " << why;
  return z.value_or(core::time_zone::utc());
}

}  // namespace

TEST(BudgetDuration, Parses) {
  EXPECT_FALSE(core::parse_budget_duration(""));
  EXPECT_FALSE(core::parse_budget_duration("d"));
  EXPECT_FALSE(core::parse_budget_duration("30"));
  EXPECT_FALSE(core::parse_budget_duration("30x"));
  EXPECT_FALSE(core::parse_budget_duration("1month"));
  EXPECT_FALSE(core::parse_budget_duration("1234567s"));
  EXPECT_FALSE(core::parse_budget_duration("-1d"));
  // At most 100 years: a longer period would overflow the clock.
  EXPECT_FALSE(core::parse_budget_duration("999999w"));
  EXPECT_FALSE(core::parse_budget_duration("99999d"));
  EXPECT_FALSE(core::parse_budget_duration("1201mo"));
  EXPECT_TRUE(core::parse_budget_duration("5200w"));
  EXPECT_TRUE(core::parse_budget_duration("1200mo"));
  auto mo = core::parse_budget_duration("3mo");
  ASSERT_TRUE(mo);
  EXPECT_EQ(mo->value, 3);
  EXPECT_EQ(mo->unit, core::duration_unit::month);
  EXPECT_EQ(core::parse_budget_duration("2w")->unit, core::duration_unit::week);
}

TEST(BudgetReset, Seconds) {
  EXPECT_EQ(next("2s", at(2026, 1, 31, 10, 20, 33, 400)), "2026-01-31T10:20:34Z");
  EXPECT_EQ(next("2s", at(2026, 1, 31, 10, 20, 34)), "2026-01-31T10:20:36Z");  // on a boundary: the next one
  EXPECT_EQ(next("30s", at(2026, 1, 31, 10, 20, 33)), "2026-01-31T10:21:00Z");
  EXPECT_EQ(next("45s", at(2026, 1, 31, 10, 20, 50)), "2026-01-31T10:21:30Z");
  EXPECT_EQ(next("30s", at(2026, 12, 31, 23, 59, 45)), "2027-01-01T00:00:00Z");
}

TEST(BudgetReset, Minutes) {
  EXPECT_EQ(next("15m", at(2026, 1, 31, 10, 20, 33)), "2026-01-31T10:30:00Z");
  EXPECT_EQ(next("30m", at(2026, 1, 31, 23, 45, 0)), "2026-02-01T00:00:00Z");
  EXPECT_EQ(next("1m", at(2026, 1, 31, 10, 20, 0)), "2026-01-31T10:21:00Z");
}

TEST(BudgetReset, Hours) {
  EXPECT_EQ(next("6h", at(2026, 1, 31, 10, 20, 0)), "2026-01-31T12:00:00Z");
  EXPECT_EQ(next("12h", at(2026, 1, 31, 13, 0, 0)), "2026-02-01T00:00:00Z");
  EXPECT_EQ(next("1h", at(2026, 2, 28, 23, 0, 1)), "2026-03-01T00:00:00Z");
  // LiteLLM's rule past a day: the hour mod 24 of the next day.
  EXPECT_EQ(next("30h", at(2026, 1, 31, 10, 0, 0)), "2026-02-01T06:00:00Z");
}

TEST(BudgetReset, Days) {
  EXPECT_EQ(next("1d", at(2026, 1, 31, 10, 0, 0)), "2026-02-01T00:00:00Z");
  EXPECT_EQ(next("1d", at(2026, 12, 31, 0, 0, 0)), "2027-01-01T00:00:00Z");
  // 7d and 1w: the next Monday (2026-12-02 is a Wednesday; 2026-12-07 a Monday).
  EXPECT_EQ(next("7d", at(2026, 12, 2, 15, 0, 0)), "2026-12-07T00:00:00Z");
  EXPECT_EQ(next("7d", at(2026, 12, 7, 9, 0, 0)), "2026-12-14T00:00:00Z");
  EXPECT_EQ(next("1w", at(2026, 12, 6, 23, 59, 59)), "2026-12-07T00:00:00Z");
  // 30d: the 1st of the next month, whatever the month's length.
  EXPECT_EQ(next("30d", at(2026, 1, 31, 10, 0, 0)), "2026-02-01T00:00:00Z");
  EXPECT_EQ(next("30d", at(2026, 2, 1, 0, 0, 0)), "2026-03-01T00:00:00Z");
  EXPECT_EQ(next("30d", at(2026, 12, 15, 0, 0, 0)), "2027-01-01T00:00:00Z");
  // Any other count: today's midnight + N days.
  EXPECT_EQ(next("10d", at(2026, 1, 25, 10, 0, 0)), "2026-02-04T00:00:00Z");
  EXPECT_EQ(next("2d", at(2028, 2, 28, 12, 0, 0)), "2028-03-01T00:00:00Z");  // leap year: via the 29th
}

TEST(BudgetReset, Months) {
  EXPECT_EQ(next("1mo", at(2026, 1, 31, 10, 0, 0)), "2026-02-01T00:00:00Z");
  EXPECT_EQ(next("1mo", at(2026, 12, 31, 23, 59, 59)), "2027-01-01T00:00:00Z");
  EXPECT_EQ(next("1mo", at(2028, 2, 29, 8, 0, 0)), "2028-03-01T00:00:00Z");
  EXPECT_EQ(next("2mo", at(2026, 11, 30, 0, 0, 0)), "2027-01-01T00:00:00Z");
  EXPECT_EQ(next("12mo", at(2026, 4, 30, 0, 0, 0)), "2027-04-01T00:00:00Z");
}

TEST(BudgetReset, ZeroIsNow) {
  auto now = at(2026, 1, 31, 10, 20, 33, 250);
  EXPECT_EQ(core::next_budget_reset(*core::parse_budget_duration("0s"), now, core::time_zone::utc()), now);
}

TEST(BudgetReset, FixedOffsetZone) {
  auto kolkata = zone("Asia/Kolkata");  // +05:30, no daylight saving
  // 20:00Z is 01:30 on Feb 1st in Kolkata: the next local midnight is Feb 2nd 00:00 IST.
  EXPECT_EQ(next("1d", at(2026, 1, 31, 20, 0, 0), kolkata), "2026-02-01T18:30:00Z");
  EXPECT_EQ(next("1mo", at(2026, 1, 31, 19, 0, 0), kolkata), "2026-02-28T18:30:00Z");
  EXPECT_EQ(next("30d", at(2026, 1, 31, 18, 0, 0), kolkata), "2026-01-31T18:30:00Z");
  EXPECT_EQ(next("1h", at(2026, 1, 31, 18, 10, 0), kolkata), "2026-01-31T18:30:00Z");
  // Minutes and seconds follow the local clock too (a :30 offset shifts hours, not these).
  EXPECT_EQ(next("15m", at(2026, 1, 31, 18, 10, 0), kolkata), "2026-01-31T18:15:00Z");
}

TEST(BudgetReset, DaylightSavingZone) {
  auto ny = zone("America/New_York");
  // Saturday 2026-03-07 22:00 EST: midnight is still EST (UTC-5).
  EXPECT_EQ(next("1d", at(2026, 3, 8, 3, 0, 0), ny), "2026-03-08T05:00:00Z");
  // Sunday 08:00 EDT: the next midnight is EDT (UTC-4).
  EXPECT_EQ(next("1d", at(2026, 3, 8, 12, 0, 0), ny), "2026-03-09T04:00:00Z");
  // 01:30 EST, 1h: 02:00 does not exist that night; the reset lands at 03:00 EDT.
  EXPECT_EQ(next("1h", at(2026, 3, 8, 6, 30, 0), ny), "2026-03-08T07:00:00Z");
  // The 1st of the month in winter and summer.
  EXPECT_EQ(next("1mo", at(2026, 6, 15, 0, 0, 0), ny), "2026-07-01T04:00:00Z");
  EXPECT_EQ(next("1mo", at(2026, 11, 15, 0, 0, 0), ny), "2026-12-01T05:00:00Z");
}

TEST(TimeZone, RejectsUnknownAndUnsafeNames) {
  std::string why;
  EXPECT_FALSE(core::time_zone::load("Mars/Olympus_Mons", &why));
  EXPECT_NE(why.find("unknown time zone"), std::string::npos) << why;
  EXPECT_FALSE(core::time_zone::load("../../etc/passwd", &why));
  EXPECT_FALSE(core::time_zone::load("/etc/localtime", &why));
  // A region (a directory of zones) is not a zone: refused, not thrown on.
  const auto dir = std::filesystem::temp_directory_path() / ("sy-tz-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir / "Asia");
  ::setenv("TZDIR", dir.c_str(), 1);
  why.clear();
  EXPECT_FALSE(core::time_zone::load("Asia", &why));
  EXPECT_NE(why.find("unknown time zone"), std::string::npos) << why;
  ::unsetenv("TZDIR");
  std::filesystem::remove_all(dir);
  auto u = core::time_zone::load("UTC");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->offset_at(floor<seconds>(at(2026, 6, 1, 0, 0, 0))), seconds(0));
}
