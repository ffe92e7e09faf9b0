#include "spend_params.hpp"

#include <charconv>
#include <chrono>
#include <cstdio>

namespace switchyard::admin {

namespace {

std::string format_day(std::chrono::year_month_day d) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02u", static_cast<int>(d.year()), static_cast<unsigned>(d.month()),
                static_cast<unsigned>(d.day()));
  return buf;
}

std::optional<std::chrono::year_month_day> ymd_of(std::string_view s) {
  if (s.size() != 10 || s[4] != '-' || s[7] != '-') {
    return std::nullopt;
  }
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9')) {
      return std::nullopt;
    }
  }
  int y = 0;
  unsigned m = 0;
  unsigned d = 0;
  auto digits = [](std::string_view part, auto& out) {
    auto [p, ec] = std::from_chars(part.data(), part.data() + part.size(), out);
    return ec == std::errc() && p == part.data() + part.size();
  };
  if (!digits(s.substr(0, 4), y) || !digits(s.substr(5, 2), m) || !digits(s.substr(8, 2), d)) {
    return std::nullopt;
  }
  std::chrono::year_month_day ymd{std::chrono::year(y), std::chrono::month(m), std::chrono::day(d)};
  if (!ymd.ok()) {
    return std::nullopt;
  }
  return ymd;
}

}  // namespace

std::optional<std::string> parse_day(std::string_view s) {
  auto ymd = ymd_of(s);
  return ymd ? std::optional(format_day(*ymd)) : std::nullopt;
}

std::string day_of(sys_time t, int offset_days) {
  auto days = std::chrono::floor<std::chrono::days>(t) + std::chrono::days(offset_days);
  return format_day(std::chrono::year_month_day(days));
}

std::string next_day(const std::string& day) {
  auto ymd = ymd_of(day);
  return ymd ? format_day(std::chrono::year_month_day(std::chrono::sys_days(*ymd) + std::chrono::days(1))) : day;
}

core::result<day_range> day_range_param(std::string_view query, bool required) {
  auto start = query_param(query, "start_date");
  auto end = query_param(query, "end_date");
  const bool has_start = start && !start->empty();
  const bool has_end = end && !end->empty();
  if (!has_start && !has_end) {
    if (required) {
      return bad_request("Please provide start_date and end_date (YYYY-MM-DD)", "start_date");
    }
    return day_range{};
  }
  if (!has_start || !has_end) {
    return bad_request("start_date and end_date must be given together (YYYY-MM-DD)",
                       has_start ? "end_date" : "start_date");
  }
  day_range out;
  auto s = parse_day(*start);
  if (!s) {
    return bad_request("start_date: expected a date as YYYY-MM-DD, got '" + *start + "'", "start_date");
  }
  auto e = parse_day(*end);
  if (!e) {
    return bad_request("end_date: expected a date as YYYY-MM-DD, got '" + *end + "'", "end_date");
  }
  if (*e < *s) {
    return bad_request("end_date (" + *e + ") is before start_date (" + *s + ")", "end_date");
  }
  // Summaries list every day of the range: a range of centuries would be millions of them.
  if (std::chrono::sys_days(*ymd_of(*e)) - std::chrono::sys_days(*ymd_of(*s)) > std::chrono::days(max_range_days)) {
    return bad_request("start_date to end_date spans more than " + std::to_string(max_range_days) + " days",
                       "end_date");
  }
  out.start = *s;
  out.end = *e;
  return out;
}

core::result<int> positive_param(std::string_view query, const char* name, int def, int max) {
  auto v = query_param(query, name);
  if (!v || v->empty()) {
    return def;
  }
  int out = 0;
  auto [p, ec] = std::from_chars(v->data(), v->data() + v->size(), out);
  if (ec != std::errc() || p != v->data() + v->size() || out < 1 || out > max) {
    return bad_request(std::string(name) + ": expected an integer from 1 to " + std::to_string(max) + ", got '" +
                           *v + "'",
                       name);
  }
  return out;
}

core::result<paged_range> paged_range_params(std::string_view query, bool required, int def_size, int max_size) {
  auto range = day_range_param(query, required);
  if (!range) {
    return range.error();
  }
  auto page = paging_params(query, def_size, max_size);
  if (!page) {
    return page.error();
  }
  return paged_range{std::move(*range), *page};
}

core::result<paging> paging_params(std::string_view query, int def_size, int max_size) {
  auto page = positive_param(query, "page", 1, 1'000'000);
  if (!page) {
    return page.error();
  }
  auto size = positive_param(query, "page_size", def_size, max_size);
  if (!size) {
    return size.error();
  }
  return paging{*page, *size};
}

core::result<bool> bool_param(std::string_view query, const char* name, bool def) {
  auto v = query_param(query, name);
  if (!v || v->empty()) {
    return def;
  }
  if (*v == "true" || *v == "True" || *v == "1") {
    return true;
  }
  if (*v == "false" || *v == "False" || *v == "0") {
    return false;
  }
  return bad_request(std::string(name) + ": expected true or false, got '" + *v + "'", name);
}

std::string text_param(std::string_view query, const char* name) { return query_param(query, name).value_or(""); }

std::string key_param(std::string_view query, const char* name) {
  auto v = text_param(query, name);
  return v.empty() ? v : token_of(v);
}

store::postgres::spend_lens lens_of(const route_context& c) {
  switch (c.sc) {
    case scope::all:
      return {"all", ""};
    case scope::org:
      return {"org", c.self_org};
    case scope::own:
    case scope::denied:
      break;
  }
  return {"user", c.self_user};
}

}  // namespace switchyard::admin
