// The spend API's SQL (admin/spend.cpp): what requests cost, read back. Raw rows come from
// spend_logs (by key and day through its (api_key, start_time) index, by user, by request
// id); everything that adds up days reads the daily_spend rollups instead, so a month
// costs thousands of rows whatever the traffic. See docs/spend.md, "Query plans".
//
// Owner: none (free functions). Thread: a db thread only, via db_executor::run.
// Blocking: every *_blocking function runs SQL. Out: JSON text or plain structs; no pqxx
// types. Days are "YYYY-MM-DD" (UTC), already checked by the caller; a range includes both
// ends. Errors: SQL failures throw (db_executor::run turns them into result errors).
#pragma once
#include "switchyard/store/postgres/pqxx_fwd.hpp"

#include <string>
#include <optional>
#include <vector>

namespace switchyard::store::postgres {

// Whose rollups a report adds up: one entity of daily_spend ("all" with id "": every
// request; "user", "org", "key", "team", "end_user", "tag" with its id).
struct spend_lens {
  std::string entity_type = "all";
  std::string entity_id;
};

// /spend/logs filters; an empty string filters nothing.
struct spend_log_query {
  std::string api_key;  // the key's sha256 hex
  std::string user_id;
  std::string request_id;
  std::string organization_id;
  std::string start_day, end_day;  // both or neither
  int page = 1;
  int page_size = 1000;
};

// spend_logs rows with LiteLLM's field names (startTime, user, ...), newest first: a JSON array.
std::string spend_log_rows_blocking(pqxx::connection& c, const spend_log_query& q);

// /spend/logs/ui: spend_log_query's filters (`start_day`/`end_day` unused) with a range of
// times ("YYYY-MM-DD HH:MM:SS", UTC, both ends included), a team and bounds on the spend;
// a page of rows (newest first) and how many rows match in all.
struct spend_log_page_query {
  spend_log_query base;
  std::string start_time, end_time;
  std::string team_id;
  std::optional<double> min_spend, max_spend;
};
struct spend_log_page {
  std::string rows_json = "[]";
  long long total = 0;
};
spend_log_page spend_log_page_blocking(pqxx::connection& c, const spend_log_page_query& q);

// One day of a /spend/logs summary, from the rollups of `lens` (filtered to `api_key`
// when not empty): spend per model, per key, per user.
struct spend_day_part {
  std::string day;
  std::string name;  // the model, key hash or user
  double spend = 0;
};
struct spend_summary {
  std::vector<spend_day_part> models, keys, users;
};
spend_summary spend_summary_blocking(pqxx::connection& c, const spend_lens& lens, const std::string& api_key,
                                     const std::string& start_day, const std::string& end_day);
// The same from spend_logs rows of one request id (a summary of one request).
spend_summary request_summary_blocking(pqxx::connection& c, const std::string& request_id,
                                       const std::string& user_id, const std::string& organization_id,
                                       const std::string& start_day, const std::string& end_day);

// Total spend of `lens` over the days from `start_day` to `end_day`.
double lens_spend_blocking(pqxx::connection& c, const spend_lens& lens, const std::string& start_day,
                           const std::string& end_day);

// The `limit` keys (limit <= 0: all) that spent most in the range: JSON array of
// {api_key, total_spend, key_alias, key_name}.
std::string top_keys_blocking(pqxx::connection& c, const spend_lens& lens, const std::string& start_day,
                              const std::string& end_day, int limit);
// The same per model: {model, total_spend, total_tokens}.
std::string top_models_blocking(pqxx::connection& c, const spend_lens& lens, const std::string& start_day,
                                const std::string& end_day, int limit);

// Spend per day and team alias (null: requests of no team): JSON array of
// {date, team_alias, total_spend}, ordered by date.
std::string team_daily_spend_blocking(pqxx::connection& c, const std::string& start_day,
                                      const std::string& end_day);

// /global/spend/report grouped by "team" or "customer": the whole answer, as LiteLLM
// shapes it, built by Postgres: [{group_by_day, teams|customers: [{team_name|customer,
// total_spend, metadata: [{model, api_key, spend, total_tokens}]}]}], days ascending,
// groups by name (null last), metadata by key then model. Requests of no team are
// "Unassigned Team", of no end user a null customer.
std::string spend_report_by_group_blocking(pqxx::connection& c, const std::string& group_by,
                                           const std::string& start_day, const std::string& end_day);

// /global/spend/report rows for group_by "api_key": one JSON object per (key, model)
// ({api_key, model, spend, prompt_tokens, completion_tokens}) from the rollups of `lens`.
std::string spend_report_by_key_blocking(pqxx::connection& c, const spend_lens& lens, const std::string& start_day,
                                         const std::string& end_day);

// Spend per request tag: JSON array of {individual_request_tag, log_count, total_spend},
// most spent first; days "" for all time.
std::string tag_spend_blocking(pqxx::connection& c, const std::string& start_day, const std::string& end_day);
// /global/spend/tags: the spend and request count of each request tag over the days (only
// `tags` when not empty), dearest first: a JSON array of {name, spend, log_count}.
std::string tag_spend_per_tag_blocking(pqxx::connection& c, const std::string& start_day, const std::string& end_day,
                                       const std::vector<std::string>& tags);

// /user/daily/activity and /team/daily/activity: the rollup rows of one page of days.
struct activity_query {
  std::string entity_type;               // "all", "user", "team", "org"
  std::vector<std::string> entity_ids;   // empty: every entity of the type
  std::string teams_of_org;              // team: only the teams of this organisation
  std::string teams_of_member;           // team: only the teams this user is a member of
  std::string start_day, end_day;
  std::string model;    // "" any
  std::string api_key;  // "" any
  int page = 1;
  int page_size = 50;
  // false: one row per day and entity, summed over keys and models (the rows' api_key,
  // model, ... are empty): a month of many keys in a few rows.
  bool breakdown = true;
};
struct activity_page {
  // JSON array of {date, entity_id, api_key, model, model_group, custom_llm_provider,
  // prompt_tokens, completion_tokens, cache_read_input_tokens, cache_creation_input_tokens,
  // spend, api_requests, successful_requests, failed_requests, key_alias, key_team_id,
  // team_alias}, for the days of the page.
  std::string rows_json = "[]";
  // JSON object of the same sums over the whole range.
  std::string totals_json = "{}";
  long long days = 0;  // days with rows in the range
};
activity_page daily_activity_blocking(pqxx::connection& c, const activity_query& q);

}  // namespace switchyard::store::postgres
