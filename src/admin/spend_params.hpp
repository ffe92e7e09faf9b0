// The query parameters of the spend API (spend.cpp, activity.cpp), private to admin/:
// days, positive integers, booleans, keys; every bad value is a 400 invalid_request_error
// naming the parameter. Also whose rollups a caller may read (their scope as a lens).
// Thread: any. Never blocks. Pure functions of their arguments.
#pragma once
#include "handlers.hpp"

#include "switchyard/store/postgres/spend_query_repo.hpp"

#include <optional>
#include <string>
#include <string_view>

namespace switchyard::admin {

// "YYYY-MM-DD", a real calendar day, else nullopt.
std::optional<std::string> parse_day(std::string_view s);
// The UTC day of `t` plus `offset_days`, as "YYYY-MM-DD".
std::string day_of(sys_time t, int offset_days = 0);
// The day after `day` ("YYYY-MM-DD" in, "YYYY-MM-DD" out).
std::string next_day(const std::string& day);

struct day_range {
  std::string start, end;  // both empty: no range given
  bool given() const { return !start.empty(); }
};
// The longest range a report may span (ten years).
inline constexpr int max_range_days = 3660;

// start_date / end_date of `query`: both or neither (400 when only one is given, or
// `required` and none is), each YYYY-MM-DD, end not before start, at most max_range_days
// apart.
core::result<day_range> day_range_param(std::string_view query, bool required);

// An integer from 1 to `max` (default `def` when absent or empty); 400 otherwise.
core::result<int> positive_param(std::string_view query, const char* name, int def, int max);
struct paging {
  int page = 1;
  int page_size = 0;
};
// `page` (1 up to a million, default 1) and `page_size` (1..max_size, default def_size).
core::result<paging> paging_params(std::string_view query, int def_size, int max_size);
// The days and the paging of a report, as one: day_range_param then paging_params.
struct paged_range {
  day_range range;
  paging page;
};
core::result<paged_range> paged_range_params(std::string_view query, bool required, int def_size, int max_size);
// true / false (also 1 / 0), default `def`; 400 otherwise.
core::result<bool> bool_param(std::string_view query, const char* name, bool def);
// A parameter's value, "" when absent.
std::string text_param(std::string_view query, const char* name);
// The key hash of an api_key parameter: a plain "sk-" key is hashed (sha256), as stored.
std::string key_param(std::string_view query, const char* name = "api_key");

// The rollups the caller's scope covers: everything (all), their organisation (org),
// their own user (own).
store::postgres::spend_lens lens_of(const route_context& c);

}  // namespace switchyard::admin
