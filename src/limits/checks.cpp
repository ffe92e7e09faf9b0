#include "switchyard/limits/checks.hpp"

#include "switchyard/core/reset_schedule.hpp"
#include "switchyard/core/word_hash.hpp"

#include <charconv>
#include <cmath>

namespace switchyard::limits {

using sys_clock = std::chrono::system_clock;

std::int64_t to_nano(double usd) {
  if (!(usd > 0)) {
    return 0;
  }
  const double n = std::ceil(usd * nano_per_usd - 1e-6);  // a cost is never rounded down to free
  return n >= 9e18 ? INT64_MAX : static_cast<std::int64_t>(n);
}

double to_usd(std::int64_t nano) { return static_cast<double>(nano) / nano_per_usd; }

std::string counter_of(const check& c) {
  std::string s;
  s.reserve(c.scope.size() + c.id.size() + c.period.size() + 8);
  s += c.scope;
  s += ':';
  s += c.id;
  switch (c.k) {
    case kind::budget:
      s += ":b:";
      s += c.period;
      break;
    case kind::requests:
      s += ":r";
      break;
    case kind::tokens:
      s += ":t";
      break;
    case kind::parallel:
      s += ":p";
      break;
  }
  return s;
}

std::uint64_t counter_key(const check& c) {
  std::uint64_t h = core::word_hash(c.id);
  h = (h ^ core::word_hash(c.scope)) * 0x9e3779b97f4a7c15ULL;
  h = (h ^ core::word_hash(c.period)) * 0xff51afd7ed558ccdULL;
  return h ^ static_cast<std::uint64_t>(c.k) ^ (h >> 31);
}

std::optional<duration_spec> parse_duration(std::string_view s) {
  while (!s.empty() && s.back() == ' ') {
    s.remove_suffix(1);
  }
  while (!s.empty() && s.front() == ' ') {
    s.remove_prefix(1);
  }
  if (s.empty()) {
    return std::nullopt;
  }
  duration_spec d;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), d.count);
  if (ec != std::errc{} || d.count <= 0) {
    return std::nullopt;
  }
  std::string_view unit(end, static_cast<std::size_t>(s.data() + s.size() - end));
  if (unit.empty() || unit == "s") {
    d.unit = 's';
  } else if (unit == "m") {
    d.unit = 'm';
  } else if (unit == "h") {
    d.unit = 'h';
  } else if (unit == "d") {
    d.unit = 'd';
  } else if (unit == "w") {
    // Weeks are accepted wherever a budget_duration is (and reset by the reset job): a
    // week is 7 days here too, else a weekly budget's counter would never change period.
    if (d.count > INT64_MAX / 7) {
      return std::nullopt;
    }
    d.unit = 'd';
    d.count *= 7;
  } else if (unit == "mo") {
    d.unit = 'M';
  } else {
    return std::nullopt;
  }
  // Rows may hold any text (a database shared with LiteLLM): a period past
  // core::max_duration_* would overflow the clock, so it counts as no schedule.
  const std::int64_t unit_seconds = d.unit == 's' ? 1 : d.unit == 'm' ? 60 : d.unit == 'h' ? 3600 : 86400;
  if (d.unit == 'M' ? d.count > core::max_duration_months : d.count > core::max_duration_seconds / unit_seconds) {
    return std::nullopt;
  }
  return d;
}

sys_clock::time_point add_duration(sys_clock::time_point t, const duration_spec& d, std::int64_t times) {
  using namespace std::chrono;
  const std::int64_t n = d.count * times;
  switch (d.unit) {
    case 's':
      return t + seconds{n};
    case 'm':
      return t + minutes{n};
    case 'h':
      return t + hours{n};
    case 'd':
      return t + days{n};
    case 'M': {
      auto day = floor<days>(t);
      year_month_day ymd{day};
      auto ym = year_month{ymd.year(), ymd.month()} + months{n};
      auto last = year_month_day_last{ym.year(), month_day_last{ym.month()}}.day();
      year_month_day out{ym.year(), ym.month(), std::min(ymd.day(), last)};
      return sys_days{out} + (t - day);
    }
    default:
      return t;
  }
}

budget_period period_of(const auth::entity_limits& e, sys_clock::time_point now) {
  using namespace std::chrono;
  budget_period p;
  // An admin set the spend: the counters seeded before are left behind, and new ones start
  // from the spend set (every instance, once its cached row has the change).
  const std::string set_at =
      e.spend_set_at ? "@" + std::to_string(duration_cast<milliseconds>(e.spend_set_at->time_since_epoch()).count())
                     : std::string();
  auto d = parse_duration(e.budget_duration);
  if (!d || !e.budget_reset_at) {
    // No schedule: one counter for ever, re-read from Postgres when it was idle an hour.
    p.id = "all" + set_at;
    p.ttl_ms = 3600 * 1000;
    return p;
  }
  auto end = *e.budget_reset_at;
  if (end <= now) {
    // Past the reset the cached row knows of: jump whole periods (a month period by
    // calendar months), with a first estimate so a long-unused entity is O(1).
    const auto one = add_duration(end, *d) - end;
    std::int64_t skip = one.count() > 0 ? (now - end) / one : 0;
    if (skip > 1) {
      end = add_duration(end, *d, skip - 1);
    }
    while (end <= now) {
      end = add_duration(end, *d);
    }
    p.fresh = true;
  }
  p.id = std::to_string(duration_cast<seconds>(end.time_since_epoch()).count()) + set_at;
  // Kept a day past its end (late settles of the period land in it, unseen).
  p.ttl_ms = duration_cast<milliseconds>(end - now).count() + 86400 * 1000;
  return p;
}

const char* scope_of(auth::limit_level l) {
  switch (l) {
    case auth::limit_level::key:
      return "api_key";
    case auth::limit_level::user:
      return "user";
    case auth::limit_level::team:
      return "team";
    case auth::limit_level::organization:
      return "organization";
    case auth::limit_level::end_user:
      return "end_user";
    case auth::limit_level::proxy:
      return "proxy";
    case auth::limit_level::team_member:
      return "team_member";
  }
  return "proxy";
}

}  // namespace switchyard::limits
