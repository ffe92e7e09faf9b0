#include "switchyard/store/postgres/spend_repo.hpp"

#include "switchyard/core/civil_date.hpp"

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <pqxx/tablewriter>

#include <algorithm>
#include <cstdio>
#include <iterator>
#include <mutex>
#include <set>
#include <string_view>

namespace switchyard::store::postgres {

namespace {

// The batch's columns, in the staging table (and COPY line) order.
constexpr const char* batch_columns =
    "row_id uuid, request_id text, call_type text, api_key text, key_alias text, user_id text, team_id text, "
    "organization_id text, end_user text, model text, model_group text, model_id text, custom_llm_provider text, "
    "api_base text, prompt_tokens bigint, completion_tokens bigint, total_tokens bigint, cached_tokens bigint, "
    "cache_creation_tokens bigint, reasoning_tokens bigint, usage_estimated boolean, spend double precision, "
    "start_us bigint, end_us bigint, completion_start_us bigint, success boolean, status_code integer, "
    "error_type text, cache_hit boolean, retries integer, fallbacks integer, requester_ip_address text, "
    "session_id text, request_tags jsonb, metadata jsonb, messages jsonb, response jsonb";

// A batch's sums per (day, key, user, team, organisation, end user, model, model group,
// provider, tags): what the totals and rollups are made from. The gateway sends them with
// a batch it has never sent before (spend::append_group_lines); a batch that may be in
// spend_logs already gets them from the rows its insert actually added.
constexpr const char* create_groups_table =
    "CREATE TEMP TABLE IF NOT EXISTS spend_groups (day date, api_key text, user_id text, team_id text, "
    "organization_id text, end_user text, model text, model_group text, custom_llm_provider text, "
    "request_tags jsonb, prompt_tokens bigint, completion_tokens bigint, cached_tokens bigint, "
    "cache_creation_tokens bigint, spend double precision, api_requests bigint, successful_requests bigint, "
    "failed_requests bigint) ON COMMIT DELETE ROWS";

// The session's work tables (emptied at commit): spend_stage holds a checked batch as sent
// (COPY), spend_groups the sums. No JIT: these tables have no statistics, so a big batch
// can look costly enough to the planner to compile the rollup (tens of ms) for a statement
// that then runs in a few.
const std::string& begin_batch_sql() {
  static const std::string sql = std::string("SET LOCAL jit = off; SET LOCAL client_min_messages = warning; ") +
                                 "CREATE TEMP TABLE IF NOT EXISTS spend_stage (" + batch_columns +
                                 ") ON COMMIT DELETE ROWS; " + create_groups_table;
  return sql;
}

// A fresh batch needs no staging table: its rows go straight into spend_logs.
const std::string& begin_fresh_sql() {
  static const std::string sql =
      std::string("SET LOCAL jit = off; SET LOCAL client_min_messages = warning; ") + create_groups_table;
  return sql;
}

// What a group's sums are, from rows of spend_logs' shape (`src`: their source).
std::string group_rows_sql(const std::string& src) {
  return "INSERT INTO spend_groups SELECT day, api_key, user_id, team_id, organization_id, end_user, model, "
         "model_group, custom_llm_provider, request_tags, sum(prompt_tokens), sum(completion_tokens), "
         "sum(cached_tokens), sum(cache_creation_tokens), sum(spend), count(*), count(*) FILTER (WHERE success), "
         "count(*) FILTER (WHERE NOT success) FROM " + src + " GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10";
}

const std::string& insert_rows_sql() {
  static const std::string sql =
         std::string("WITH ins AS (") +
         "INSERT INTO spend_logs (row_id, request_id, call_type, api_key, key_alias, user_id, team_id, "
         "organization_id, end_user, model, model_group, model_id, custom_llm_provider, api_base, prompt_tokens, "
         "completion_tokens, total_tokens, cached_tokens, cache_creation_tokens, reasoning_tokens, usage_estimated, "
         "spend, start_time, end_time, completion_start_time, request_duration_ms, status, status_code, error_type, "
         "cache_hit, retries, fallbacks, requester_ip_address, request_tags, session_id, metadata, messages, "
         "response) "
         "SELECT row_id, coalesce(request_id, ''), coalesce(call_type, ''), coalesce(api_key, ''), "
         "nullif(key_alias, ''), nullif(user_id, ''), nullif(team_id, ''), nullif(organization_id, ''), "
         "nullif(end_user, ''), coalesce(model, ''), nullif(model_group, ''), nullif(model_id, ''), "
         "nullif(custom_llm_provider, ''), nullif(api_base, ''), coalesce(prompt_tokens, 0), "
         "coalesce(completion_tokens, 0), coalesce(total_tokens, 0), coalesce(cached_tokens, 0), "
         "coalesce(cache_creation_tokens, 0), coalesce(reasoning_tokens, 0), coalesce(usage_estimated, false), "
         "coalesce(spend, 0), to_timestamp(start_us / 1000000.0), to_timestamp(end_us / 1000000.0), "
         "CASE WHEN coalesce(completion_start_us, 0) > 0 THEN to_timestamp(completion_start_us / 1000000.0) END, "
         "least(greatest(0, (end_us - start_us) / 1000), 2147483647)::integer, "
         "CASE WHEN coalesce(success, true) THEN 'success' ELSE 'failure' END, coalesce(status_code, 0), "
         "nullif(error_type, ''), coalesce(cache_hit, false), coalesce(retries, 0), coalesce(fallbacks, 0), "
         "nullif(requester_ip_address, ''), coalesce(request_tags, '[]'::jsonb), nullif(session_id, ''), "
         "coalesce(metadata, '{}'::jsonb), messages, response FROM spend_stage "
         "ON CONFLICT DO NOTHING "
         "RETURNING api_key, user_id, team_id, organization_id, end_user, model, model_group, custom_llm_provider, "
         "(start_time AT TIME ZONE 'UTC')::date AS day, spend, prompt_tokens, completion_tokens, cached_tokens, "
         "cache_creation_tokens, status = 'success' AS success, request_tags) " +
         group_rows_sql("ins");
  return sql;
}

// general_settings.disable_spend_logs: the staged rows are summed as they are, and no
// spend_logs row is written. Without the rows there is nothing to recognise a batch written
// twice by.
const std::string& totals_only_sql() {
  static const std::string sql = group_rows_sql(
      "(SELECT coalesce(api_key, '') AS api_key, nullif(user_id, '') AS user_id, nullif(team_id, '') AS team_id, "
      "nullif(organization_id, '') AS organization_id, nullif(end_user, '') AS end_user, "
      "coalesce(model, '') AS model, nullif(model_group, '') AS model_group, "
      "nullif(custom_llm_provider, '') AS custom_llm_provider, "
      "(to_timestamp(start_us / 1000000.0) AT TIME ZONE 'UTC')::date AS day, coalesce(spend, 0) AS spend, "
      "coalesce(prompt_tokens, 0) AS prompt_tokens, coalesce(completion_tokens, 0) AS completion_tokens, "
      "coalesce(cached_tokens, 0) AS cached_tokens, coalesce(cache_creation_tokens, 0) AS cache_creation_tokens, "
      "coalesce(success, true) AS success, coalesce(request_tags, '[]'::jsonb) AS request_tags FROM spend_stage) s");
  return sql;
}

// Lock then add, one entity table at a time (fixed order, ids sorted).
std::string add_totals_sql(const char* table, const char* id_col, const char* batch_col) {
  const std::string t = table, id = id_col, b = batch_col;
  return "SELECT 1 FROM " + t + " WHERE " + id + " IN (SELECT " + b + " FROM spend_groups WHERE " + b +
         " <> '') ORDER BY " + id + " FOR UPDATE; UPDATE " + t + " AS e SET spend = e.spend + s.total FROM (SELECT " +
         b + " AS id, sum(spend) AS total FROM spend_groups WHERE " + b + " <> '' GROUP BY " + b + ") s WHERE e." + id +
         " = s.id;";
}

// The rollups of the batch, in one statement: first the batch's distinct (day, who, model)
// combinations (a few hundred rows for a thousand requests), then each entity's share of
// them (the fan-out to the entity types runs over the groups, not over every row), added
// to daily_spend and, for the whole proxy, the teams and the organisations, to
// daily_spend_totals (the same sums without the key: docs/spend.md, "The spend log"), and
// each key's spend of the day to daily_key_spend.
// The fan-out is read twice, so Postgres makes it once. Rows are locked in primary-key
// order, daily_spend first, the same order in every writer.
// What an upsert adds to a rollup row: the same sums in both tables.
constexpr std::string_view add_sums =
    "prompt_tokens = d.prompt_tokens + excluded.prompt_tokens, "
    "completion_tokens = d.completion_tokens + excluded.completion_tokens, "
    "cache_read_input_tokens = d.cache_read_input_tokens + excluded.cache_read_input_tokens, "
    "cache_creation_input_tokens = d.cache_creation_input_tokens + excluded.cache_creation_input_tokens, "
    "spend = d.spend + excluded.spend, api_requests = d.api_requests + excluded.api_requests, "
    "successful_requests = d.successful_requests + excluded.successful_requests, "
    "failed_requests = d.failed_requests + excluded.failed_requests";

const std::string& rollup_sql() {
  static const std::string sql = std::string(
    "WITH g AS (SELECT day, api_key, user_id, team_id, organization_id, end_user, model, model_group,"
    "  custom_llm_provider, sum(prompt_tokens) AS prompt_tokens, sum(completion_tokens) AS completion_tokens,"
    "  sum(cached_tokens) AS cached_tokens, sum(cache_creation_tokens) AS cache_creation_tokens,"
    "  sum(spend) AS spend, sum(api_requests) AS api_requests, sum(successful_requests) AS successful_requests,"
    "  sum(failed_requests) AS failed_requests"
    "  FROM spend_groups GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9), "
    "e AS ("
    "  SELECT 'all' AS entity_type, '' AS entity_id, * FROM g"
    "  UNION ALL SELECT 'key', api_key, * FROM g WHERE api_key <> ''"
    "  UNION ALL SELECT 'user', user_id, * FROM g WHERE user_id IS NOT NULL"
    "  UNION ALL SELECT 'team', team_id, * FROM g WHERE team_id IS NOT NULL"
    "  UNION ALL SELECT 'org', organization_id, * FROM g WHERE organization_id IS NOT NULL"
    "  UNION ALL SELECT 'end_user', end_user, * FROM g WHERE end_user IS NOT NULL"
    // The requests of no team and of no end user have rollups of their own (the reports'
    // "Unassigned Team" and null customer).
    "  UNION ALL SELECT 'no_team', '', * FROM g WHERE team_id IS NULL"
    "  UNION ALL SELECT 'no_end_user', '', * FROM g WHERE end_user IS NULL"
    "  UNION ALL SELECT 'tag', t.tag, b.day, b.api_key, b.user_id, b.team_id, b.organization_id, b.end_user, b.model,"
    "    b.model_group, b.custom_llm_provider, b.prompt_tokens, b.completion_tokens, b.cached_tokens,"
    "    b.cache_creation_tokens, b.spend, b.api_requests, b.successful_requests,"
    "    b.failed_requests FROM spend_groups b, jsonb_array_elements_text("
    "    CASE WHEN jsonb_typeof(b.request_tags) = 'array' THEN b.request_tags ELSE '[]'::jsonb END) AS t(tag)"
    "    WHERE b.request_tags <> '[]'::jsonb), "
    "rolled AS ("
    "INSERT INTO daily_spend AS d (entity_type, entity_id, day, api_key, model, model_group, custom_llm_provider, "
    "prompt_tokens, completion_tokens, cache_read_input_tokens, cache_creation_input_tokens, spend, api_requests, "
    "successful_requests, failed_requests) "
    "SELECT entity_type, entity_id, day, coalesce(api_key, ''), coalesce(model, ''), coalesce(model_group, ''), "
    "coalesce(custom_llm_provider, ''), sum(prompt_tokens), sum(completion_tokens), sum(cached_tokens), "
    "sum(cache_creation_tokens), sum(spend), sum(api_requests), sum(successful_requests), "
    "sum(failed_requests) FROM e GROUP BY 1, 2, 3, 4, 5, 6, 7 ORDER BY 1, 3, 2, 4, 5, 6, 7 "
    "ON CONFLICT (entity_type, day, entity_id, api_key, model, model_group, custom_llm_provider) DO UPDATE SET ") +
    std::string(add_sums) +
    "), "
    // Each key's spend per day, for the proxy's "top keys" (docs/spend.md, "Rollups").
    "keyed AS (INSERT INTO daily_key_spend AS d (day, api_key, spend) "
    "SELECT day, coalesce(api_key, ''), sum(spend) FROM g GROUP BY 1, 2 ORDER BY 1, 2 "
    "ON CONFLICT (day, api_key) DO UPDATE SET spend = d.spend + excluded.spend) "
    "INSERT INTO daily_spend_totals AS d (entity_type, entity_id, day, model, prompt_tokens, completion_tokens, "
    "cache_read_input_tokens, cache_creation_input_tokens, spend, api_requests, successful_requests, "
    "failed_requests) "
    "SELECT entity_type, entity_id, day, coalesce(model, ''), sum(prompt_tokens), sum(completion_tokens), "
    "sum(cached_tokens), sum(cache_creation_tokens), sum(spend), sum(api_requests), sum(successful_requests), "
    "sum(failed_requests) FROM e WHERE entity_type IN ('all', 'team', 'org') GROUP BY 1, 2, 3, 4 "
    "ORDER BY 1, 3, 2, 4 "
    "ON CONFLICT (entity_type, day, entity_id, model) DO UPDATE SET " +
    std::string(add_sums);
  return sql;
}

// Makes the day partitions the batch needs ("YYYYMMDD" days): one catalog query per batch
// when they exist.
void ensure_partitions(pqxx::connection& c, const std::vector<std::string>& days) {
  std::vector<std::string> missing;
  {
    pqxx::read_transaction tx{c};
    std::string list;
    for (const auto& d : days) {
      if (!list.empty()) {
        list += ',';
      }
      list += tx.quote("spend_logs_" + d);
    }
    auto res = tx.exec("SELECT n FROM unnest(ARRAY[" + list + "]::text[]) n WHERE to_regclass(n) IS NULL");
    for (const auto& row : res) {
      missing.push_back(row[0].as<std::string>().substr(11));
    }
  }
  for (const auto& d : missing) {
    const std::string name = "spend_logs_" + d;
    const std::string day = d.substr(0, 4) + "-" + d.substr(4, 2) + "-" + d.substr(6, 2) + " 00:00:00+00";
    // Another gateway may create the same partition at the same moment: try twice.
    for (int attempt = 0;; ++attempt) {
      try {
        pqxx::work tx{c};
        auto exists = tx.exec_params("SELECT to_regclass($1) IS NOT NULL", name);
        if (!exists[0][0].as<bool>()) {
          tx.exec0("CREATE TABLE " + tx.quote_name(name) + " PARTITION OF spend_logs FOR VALUES FROM (" +
                   tx.quote(day) + ") TO (" + tx.quote(day) + "::timestamptz + interval '1 day')");
        }
        tx.commit();
        break;
      } catch (const pqxx::sql_error&) {
        if (attempt >= 1) {
          throw;
        }
      }
    }
  }
}

// Everything after the insert, in one round trip (no parameters: a multi-statement text).
const std::string& totals_and_rollups_sql() {
  static const std::string sql =
      add_totals_sql("verification_tokens", "token", "api_key") + add_totals_sql("users", "user_id", "user_id") +
      add_totals_sql("teams", "team_id", "team_id") +
      add_totals_sql("organizations", "organization_id", "organization_id") +
      "INSERT INTO end_users AS e (user_id, spend) SELECT end_user, sum(spend) FROM spend_groups "
      "WHERE end_user IS NOT NULL GROUP BY end_user ORDER BY end_user "
      "ON CONFLICT (user_id) DO UPDATE SET spend = e.spend + excluded.spend, updated_at = now();"
      // A request of a key with both a user and a team is also the user's spend as a member
      // of the team (LiteLLM's team membership spend, what max_budget_in_team is checked
      // against). Locked in primary-key order, after the entities above.
      "SELECT 1 FROM team_memberships WHERE (user_id, team_id) IN (SELECT user_id, team_id FROM spend_groups "
      "WHERE user_id <> '' AND team_id <> '') ORDER BY user_id, team_id FOR UPDATE;"
      "UPDATE team_memberships AS m SET spend = m.spend + s.total FROM (SELECT user_id, team_id, sum(spend) AS total "
      "FROM spend_groups WHERE user_id <> '' AND team_id <> '' GROUP BY user_id, team_id) s "
      "WHERE m.user_id = s.user_id AND m.team_id = s.team_id;"
      // The proxy's own budget (litellm_settings.max_budget): LiteLLM's user
      // "litellm-proxy-budget" counts every request; the row exists only with that setting.
      // Locked last, after every other entity, so the lock order stays fixed.
      "UPDATE users SET spend = users.spend + s.total FROM (SELECT sum(spend) AS total FROM spend_groups) s "
      "WHERE users.user_id = 'litellm-proxy-budget' AND s.total IS NOT NULL;" +
      rollup_sql() +
      ";SELECT token, spend FROM verification_tokens WHERE token IN (SELECT api_key FROM spend_groups "
      "WHERE api_key <> '') ORDER BY token";
  return sql;
}

}  // namespace

std::string spend_day_of(std::int64_t start_us) {
  const auto [y, m, d] = core::civil_from_days(core::unix_day_of_us(start_us));
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04lld%02d%02d", static_cast<long long>(y), m, d);
  return buf;
}

std::vector<std::string> spend_days_of(std::vector<std::int64_t> start_us) {
  std::vector<std::string> days;
  std::sort(start_us.begin(), start_us.end());
  std::int64_t last = 0;
  for (std::size_t i = 0; i < start_us.size(); ++i) {
    // A start 1 ms before midnight can become the next day's in Postgres (the seconds pass
    // through a double there): that day's partition is made too.
    for (const std::int64_t t : {start_us[i], start_us[i] + 1000}) {
      const std::int64_t day = core::unix_day_of_us(t);
      if (days.empty() || day != last) {
        last = day;
        days.push_back(spend_day_of(t));
      }
    }
  }
  std::sort(days.begin(), days.end());
  days.erase(std::unique(days.begin(), days.end()), days.end());
  return days;
}

spend_batch_result write_spend_batch_blocking(pqxx::connection& c, const std::string& rows_json, bool keep_rows) {
  std::vector<std::int64_t> starts;
  for (const auto& r : nlohmann::json::parse(rows_json)) {
    starts.push_back(r.value("start_us", std::int64_t{0}));
  }
  return write_spend_batch_blocking(c, rows_json, spend_days_of(std::move(starts)), keep_rows);
}

namespace {

// From the staged batch on: the rows not yet in spend_logs into it (or, with keep_rows
// false, every staged row) summed into spend_groups, then the totals and rollups.
spend_batch_result write_staged(pqxx::work& tx, bool keep_rows) {
  spend_batch_result out;
  const auto groups = tx.exec(keep_rows ? insert_rows_sql() : totals_only_sql()).affected_rows();
  if (groups > 0) {
    out.inserted = static_cast<std::size_t>(tx.exec1("SELECT sum(api_requests) FROM spend_groups")[0].as<long long>());
    // The result of the last statement: the keys' running totals after the batch.
    auto totals = tx.exec(totals_and_rollups_sql());
    for (const auto& row : totals) {
      out.key_totals.emplace_back(row[0].as<std::string>(), row[1].as<double>());
    }
  }
  tx.commit();
  return out;
}

// Sends `text` (COPY lines, the last newline optional) into `table`, in pieces of about
// 64 KB cut at line ends (libpqxx adds each piece's last newline): few calls, and libpq's
// buffer stays small instead of holding the whole batch. libpqxx 6 (Debian 12) sends raw
// COPY text only through tablewriter, deprecated there for stream_to, which takes typed
// tuples and would escape every field again.
template <typename Columns>
void copy_into(pqxx::work& tx, const std::string& table, const Columns& columns, const std::string& text) {
  if (text.empty()) {
    return;
  }
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  pqxx::tablewriter w{tx, table, std::begin(columns), std::end(columns)};
  constexpr std::size_t piece = 64 * 1024;
  std::size_t end = text.size();
  if (text.back() == '\n') {
    --end;
  }
  for (std::size_t at = 0; at < end;) {
    std::size_t cut = at + piece >= end ? end : text.find('\n', at + piece);
    if (cut == std::string::npos || cut > end) {
      cut = end;
    }
    w.write_raw_line(text.substr(at, cut - at));
    at = cut + 1;
  }
  w.complete();
#pragma GCC diagnostic pop
}

// The days whose partitions this process has seen exist, so that a fresh batch (today's
// rows, as a rule) costs no catalog query. Dropping partitions forgets them all; a batch
// that finds one missing anyway (dropped by another gateway) fails, and its rows are then
// written one by one through the checked path, which looks and makes it again.
struct known_partitions {
  std::mutex m;
  std::set<std::string> days;
};
known_partitions& partitions_seen() {
  static known_partitions k;
  return k;
}

// A day of one database (a process may write to more than one: a reload, the tests).
std::string partition_of(pqxx::connection& c, const std::string& day) {
  const char* host = c.hostname();
  const char* port = c.port();
  return std::string(host ? host : "") + ":" + (port ? port : "") + "/" + c.dbname() + "/" + day;
}

void remember_partitions(pqxx::connection& c, const std::vector<std::string>& days) {
  auto& k = partitions_seen();
  std::lock_guard lock(k.m);
  for (const auto& d : days) {
    k.days.insert(partition_of(c, d));
  }
}

void ensure_partitions_cached(pqxx::connection& c, const std::vector<std::string>& days) {
  auto& k = partitions_seen();
  {
    std::lock_guard lock(k.m);
    if (std::all_of(days.begin(), days.end(),
                    [&](const std::string& d) { return k.days.count(partition_of(c, d)) != 0; })) {
      return;
    }
  }
  ensure_partitions(c, days);
  remember_partitions(c, days);
}

const std::vector<std::string> no_columns;

}  // namespace

const std::vector<std::string>& spend_log_copy_columns() {
  static const std::vector<std::string> cols{
      "row_id", "request_id", "call_type", "api_key", "key_alias", "user_id", "team_id", "organization_id",
      "end_user", "model", "model_group", "model_id", "custom_llm_provider", "api_base", "prompt_tokens",
      "completion_tokens", "total_tokens", "cached_tokens", "cache_creation_tokens", "reasoning_tokens",
      "usage_estimated", "spend", "start_time", "end_time", "completion_start_time", "request_duration_ms", "status",
      "status_code", "error_type", "cache_hit", "retries", "fallbacks", "requester_ip_address", "session_id",
      "request_tags", "metadata", "messages", "response"};
  return cols;
}

spend_batch_result write_spend_batch_blocking(pqxx::connection& c, const std::string& rows_json,
                                              const std::vector<std::string>& days, bool keep_rows) {
  if (keep_rows && !days.empty()) {
    ensure_partitions(c, days);
  }
  pqxx::work tx{c};
  tx.exec0(begin_batch_sql());
  tx.exec_params0(std::string("INSERT INTO spend_stage SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(") +
                      batch_columns + ")",
                  rows_json);
  return write_staged(tx, keep_rows);
}

spend_batch_result write_spend_copy_blocking(pqxx::connection& c, const std::string& copy_rows,
                                             const std::vector<std::string>& days, bool keep_rows) {
  if (keep_rows && !days.empty()) {
    ensure_partitions(c, days);
    remember_partitions(c, days);
  }
  pqxx::work tx{c};
  tx.exec0(begin_batch_sql());
  copy_into(tx, "spend_stage", no_columns, copy_rows);
  return write_staged(tx, keep_rows);
}

spend_batch_result write_spend_fresh_blocking(pqxx::connection& c, const std::string& log_rows,
                                              const std::string& group_rows, std::size_t rows,
                                              const std::vector<std::string>& days, bool keep_rows) {
  if (keep_rows && !days.empty()) {
    ensure_partitions_cached(c, days);
  }
  spend_batch_result out;
  pqxx::work tx{c};
  tx.exec0(begin_fresh_sql());
  if (keep_rows) {
    copy_into(tx, "spend_logs", spend_log_copy_columns(), log_rows);
  }
  copy_into(tx, "spend_groups", no_columns, group_rows);
  out.inserted = rows;
  if (!group_rows.empty()) {
    auto totals = tx.exec(totals_and_rollups_sql());
    for (const auto& row : totals) {
      out.key_totals.emplace_back(row[0].as<std::string>(), row[1].as<double>());
    }
  }
  tx.commit();
  return out;
}

std::size_t drop_spend_partitions_before_blocking(pqxx::connection& c, const std::string& cutoff_day) {
  pqxx::work tx{c};
  auto res = tx.exec_params(
      "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
      "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'spend_logs' AND c.relname < $1 "
      "ORDER BY c.relname",
      "spend_logs_" + cutoff_day.substr(0, 4) + cutoff_day.substr(5, 2) + cutoff_day.substr(8, 2));
  std::size_t n = 0;
  for (const auto& row : res) {
    tx.exec0("DROP TABLE " + tx.quote_name(row[0].as<std::string>()));
    ++n;
  }
  tx.commit();
  if (n > 0) {
    std::lock_guard lock(partitions_seen().m);
    partitions_seen().days.clear();
  }
  return n;
}

}  // namespace switchyard::store::postgres
