#include "switchyard/core/reset_schedule.hpp"
#include "switchyard/core/file.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>

namespace switchyard::core {

namespace {

using namespace std::chrono;

std::int64_t be(const unsigned char* p, int n) {
  std::uint64_t v = 0;
  for (int i = 0; i < n; ++i) {
    v = (v << 8) | p[i];
  }
  // Sign-extend n-byte two's complement.
  if (n < 8 && (v & (std::uint64_t{1} << (n * 8 - 1))) != 0) {
    v |= ~std::uint64_t{0} << (n * 8);
  }
  return static_cast<std::int64_t>(v);
}

struct tzif_counts {
  std::int64_t isut, isstd, leap, time, type, chars;
};

bool read_counts(const std::string& b, std::size_t at, tzif_counts& c) {
  if (b.size() < at + 44 || b.compare(at, 4, "TZif") != 0) {
    return false;
  }
  const auto* p = reinterpret_cast<const unsigned char*>(b.data() + at + 20);
  c = {be(p, 4), be(p + 4, 4), be(p + 8, 4), be(p + 12, 4), be(p + 16, 4), be(p + 20, 4)};
  return c.isut >= 0 && c.isstd >= 0 && c.leap >= 0 && c.time >= 0 && c.type > 0 && c.chars >= 0;
}

std::size_t block_size(const tzif_counts& c, int time_bytes) {
  return static_cast<std::size_t>(c.time * time_bytes + c.time + c.type * 6 + c.chars +
                                  c.leap * (time_bytes + 4) + c.isstd + c.isut);
}

}  // namespace

std::optional<budget_duration> parse_budget_duration(std::string_view d) {
  std::size_t digits = 0;
  while (digits < d.size() && std::isdigit(static_cast<unsigned char>(d[digits])) != 0) {
    ++digits;
  }
  if (digits == 0 || digits > 6) {
    return std::nullopt;
  }
  budget_duration out;
  std::from_chars(d.data(), d.data() + digits, out.value);
  auto unit = d.substr(digits);
  if (unit == "s") {
    out.unit = duration_unit::second;
  } else if (unit == "m") {
    out.unit = duration_unit::minute;
  } else if (unit == "h") {
    out.unit = duration_unit::hour;
  } else if (unit == "d") {
    out.unit = duration_unit::day;
  } else if (unit == "w") {
    out.unit = duration_unit::week;
  } else if (unit == "mo") {
    out.unit = duration_unit::month;
  } else {
    return std::nullopt;
  }
  static constexpr std::int64_t unit_seconds[] = {1, 60, 3600, 86400, 7 * 86400, 0};
  if (out.unit == duration_unit::month ? out.value > max_duration_months
                                       : out.value * unit_seconds[static_cast<int>(out.unit)] > max_duration_seconds) {
    return std::nullopt;
  }
  return out;
}

time_zone time_zone::utc() { return time_zone{}; }

std::optional<time_zone> time_zone::load(const std::string& name, std::string* why) {
  auto fail = [why](std::string m) -> std::optional<time_zone> {
    if (why != nullptr) {
      *why = std::move(m);
    }
    return std::nullopt;
  };
  if (name.empty() || name == "UTC" || name == "Etc/UTC" || name == "GMT") {
    time_zone z;
    z.name_ = name.empty() ? "UTC" : name;
    return z;
  }
  // A zone name is a relative path of letters, digits, '_', '-', '+' and '/' without "..".
  if (name.front() == '/' || name.find("..") != std::string::npos ||
      !std::all_of(name.begin(), name.end(), [](char ch) {
        return std::isalnum(static_cast<unsigned char>(ch)) != 0 || ch == '_' || ch == '-' || ch == '+' || ch == '/';
      })) {
    return fail("not a time zone name");
  }
  const char* dir = std::getenv("TZDIR");
  std::string path = std::string(dir != nullptr && *dir != '\0' ? dir : "/usr/share/zoneinfo") + "/" + name;
  // A region's directory ("Asia", "America") is not a zone: only a regular file is.
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    return fail("unknown time zone (no file " + path + ")");
  }
  auto read = core::read_file(path, 1u << 20);
  if (!read) {
    return fail("unknown time zone (cannot read " + read.error + ")");
  }
  const std::string b = std::move(*read.text);
  tzif_counts c{};
  if (!read_counts(b, 0, c)) {
    return fail("not a TZif file: " + path);
  }
  int time_bytes = 4;
  std::size_t at = 44;
  if (b[4] >= '2') {  // version 2+: skip the 32-bit block, read the 64-bit one
    std::size_t second = 44 + block_size(c, 4);
    if (!read_counts(b, second, c)) {
      return fail("corrupt TZif file: " + path);
    }
    time_bytes = 8;
    at = second + 44;
  }
  if (b.size() < at + block_size(c, time_bytes)) {
    return fail("truncated TZif file: " + path);
  }
  const auto* p = reinterpret_cast<const unsigned char*>(b.data() + at);
  const auto* idx = p + c.time * time_bytes;
  const auto* types = idx + c.time;
  auto type_offset = [&](std::int64_t i) { return static_cast<std::int32_t>(be(types + i * 6, 4)); };
  time_zone z;
  z.name_ = name;
  // Before the first transition: the first standard-time type (RFC 8536), else type 0.
  z.initial_ = type_offset(0);
  for (std::int64_t i = 0; i < c.type; ++i) {
    if (types[i * 6 + 4] == 0) {
      z.initial_ = type_offset(i);
      break;
    }
  }
  for (std::int64_t i = 0; i < c.time; ++i) {
    std::int64_t ti = idx[i];
    if (ti >= c.type) {
      return fail("corrupt TZif file: " + path);
    }
    z.transitions_.push_back(be(p + i * time_bytes, time_bytes));
    z.offsets_.push_back(type_offset(ti));
  }
  return z;
}

std::chrono::seconds time_zone::offset_at(sys_seconds t) const {
  auto s = t.time_since_epoch().count();
  auto it = std::upper_bound(transitions_.begin(), transitions_.end(), s);
  if (it == transitions_.begin()) {
    return seconds(initial_);
  }
  return seconds(offsets_[static_cast<std::size_t>(it - transitions_.begin() - 1)]);
}

local_seconds time_zone::to_local(sys_seconds t) const {
  return local_seconds(t.time_since_epoch() + offset_at(t));
}

sys_seconds time_zone::to_sys(local_seconds t) const {
  sys_seconds as_utc(t.time_since_epoch());
  auto before = offset_at(as_utc - days(1));
  auto after = offset_at(as_utc + days(1));
  sys_seconds a = as_utc - before;
  sys_seconds b = as_utc - after;
  bool a_ok = offset_at(a) == before;
  bool b_ok = offset_at(b) == after;
  if (a_ok && b_ok) {
    return std::min(a, b);
  }
  if (b_ok) {
    return b;
  }
  return a;  // valid, or in a gap: the offset before the gap puts it just after
}

system_clock::time_point next_budget_reset(const budget_duration& d, system_clock::time_point now,
                                           const time_zone& tz) {
  if (d.value <= 0) {
    return now;
  }
  const auto n = d.value;
  const local_seconds local = tz.to_local(floor<seconds>(now));
  const local_days today = floor<days>(local);
  const auto tod = local - today;
  const auto h = duration_cast<hours>(tod).count();
  const auto m = duration_cast<minutes>(tod).count() % 60;
  const auto s = tod.count() % 60;
  local_seconds next;
  switch (d.unit) {
    case duration_unit::second:
      next = today + hours(h) + minutes(m) + seconds(s - s % n + n);
      break;
    case duration_unit::minute:
      next = today + hours(h) + minutes(m - m % n + n);
      break;
    case duration_unit::hour: {
      auto nh = h - h % n + n;
      next = nh >= 24 ? local_seconds(today + days(1) + hours(nh % 24)) : local_seconds(today + hours(nh));
      break;
    }
    case duration_unit::day:
    case duration_unit::week: {
      auto nd = d.unit == duration_unit::week ? n * 7 : n;
      if (nd == 1) {
        next = today + days(1);
      } else if (nd == 7) {
        // Monday = 0, as Python's weekday().
        auto from_monday = (weekday(today).c_encoding() + 6) % 7;
        auto until = (7 - from_monday) % 7;
        next = today + days(until == 0 ? 7 : until);
      } else if (nd == 30) {
        year_month_day ymd(today);
        next = local_days(((ymd.year() / ymd.month()) + months(1)) / 1);
      } else {
        next = today + days(nd);
      }
      break;
    }
    case duration_unit::month: {
      year_month_day ymd(today);
      next = local_days(((ymd.year() / ymd.month()) + months(n)) / 1);
      break;
    }
  }
  return tz.to_sys(next);
}

}  // namespace switchyard::core
