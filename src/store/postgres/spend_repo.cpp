#include "switchyard/store/postgres/spend_repo.hpp"

#include <pqxx/pqxx>


namespace switchyard::store::postgres {

namespace {

// The batch's columns as jsonb_to_recordset reads them.
constexpr const char* batch_columns =
    "row_id uuid, request_id text, call_type text, api_key text, key_alias text, user_id text, team_id text, "
    "organization_id text, end_user text, model text, model_group text, model_id text, custom_llm_provider text, "
    "api_base text, prompt_tokens bigint, completion_tokens bigint, total_tokens bigint, cached_tokens bigint, "
    "cache_creation_tokens bigint, reasoning_tokens bigint, usage_estimated boolean, spend double precision, "
    "start_us bigint, end_us bigint, completion_start_us bigint, success boolean, status_code integer, "
    "error_type text, cache_hit boolean, retries integer, fallbacks integer, requester_ip_address text, "
    "session_id text, request_tags jsonb, metadata jsonb, messages jsonb, response jsonb";

// Rows inserted by this transaction (deleted at commit): the totals and rollups are made
// from them only.
constexpr const char* create_batch_table =
    "CREATE TEMP TABLE IF NOT EXISTS spend_batch (api_key text, user_id text, team_id text, "
    "organization_id text, end_user text, model text, model_group text, custom_llm_provider text, "
    "day date, spend double precision, prompt_tokens bigint, completion_tokens bigint, cached_tokens bigint, "
    "cache_creation_tokens bigint, success boolean, request_tags jsonb) ON COMMIT DELETE ROWS";

std::string insert_rows_sql() {
  return std::string(
             "WITH r AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(") +
         batch_columns +
         ")), ins AS ("
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
         "greatest(0, (end_us - start_us) / 1000)::integer, "
         "CASE WHEN coalesce(success, true) THEN 'success' ELSE 'failure' END, coalesce(status_code, 0), "
         "nullif(error_type, ''), coalesce(cache_hit, false), coalesce(retries, 0), coalesce(fallbacks, 0), "
         "nullif(requester_ip_address, ''), coalesce(request_tags, '[]'::jsonb), nullif(session_id, ''), "
         "coalesce(metadata, '{}'::jsonb), messages, response FROM r "
         "ON CONFLICT DO NOTHING "
         "RETURNING api_key, user_id, team_id, organization_id, end_user, model, model_group, custom_llm_provider, "
         "(start_time AT TIME ZONE 'UTC')::date, spend, prompt_tokens, completion_tokens, cached_tokens, "
         "cache_creation_tokens, status = 'success', request_tags) "
         "INSERT INTO spend_batch SELECT * FROM ins";
}

// general_settings.disable_spend_logs: the batch goes straight to spend_batch (the totals
// and rollups are made from it as usual); nothing is written to spend_logs. Without the
// rows there is nothing to recognise a batch written twice by.
std::string totals_only_sql() {
  return std::string(
             "INSERT INTO spend_batch SELECT coalesce(api_key, ''), nullif(user_id, ''), nullif(team_id, ''), "
             "nullif(organization_id, ''), nullif(end_user, ''), coalesce(model, ''), nullif(model_group, ''), "
             "nullif(custom_llm_provider, ''), (to_timestamp(start_us / 1000000.0) AT TIME ZONE 'UTC')::date, "
             "coalesce(spend, 0), coalesce(prompt_tokens, 0), coalesce(completion_tokens, 0), "
             "coalesce(cached_tokens, 0), coalesce(cache_creation_tokens, 0), coalesce(success, true), "
             "coalesce(request_tags, '[]'::jsonb) FROM jsonb_to_recordset($1::jsonb) AS x(") +
         batch_columns + ")";
}

// Lock then add, one entity table at a time (fixed order, ids sorted).
void add_totals(pqxx::work& tx, const char* table, const char* id_col, const char* batch_col) {
  const std::string t = table, id = id_col, b = batch_col;
  tx.exec("SELECT 1 FROM " + t + " WHERE " + id + " IN (SELECT " + b + " FROM spend_batch WHERE " + b +
           " <> '') ORDER BY " + id + " FOR UPDATE");
  tx.exec0("UPDATE " + t + " AS e SET spend = e.spend + s.total FROM (SELECT " + b +
           " AS id, sum(spend) AS total FROM spend_batch WHERE " + b + " <> '' GROUP BY " + b +
           ") s WHERE e." + id + " = s.id");
}

constexpr const char* rollup_sql =
    "INSERT INTO daily_spend AS d (entity_type, entity_id, day, api_key, model, model_group, custom_llm_provider, "
    "prompt_tokens, completion_tokens, cache_read_input_tokens, cache_creation_input_tokens, spend, api_requests, "
    "successful_requests, failed_requests) "
    "SELECT entity_type, entity_id, day, coalesce(api_key, ''), coalesce(model, ''), coalesce(model_group, ''), "
    "coalesce(custom_llm_provider, ''), sum(prompt_tokens), sum(completion_tokens), sum(cached_tokens), "
    "sum(cache_creation_tokens), sum(spend), count(*), count(*) FILTER (WHERE success), "
    "count(*) FILTER (WHERE NOT success) FROM ("
    "  SELECT 'all' AS entity_type, '' AS entity_id, * FROM spend_batch"
    "  UNION ALL SELECT 'key', api_key, * FROM spend_batch WHERE api_key <> ''"
    "  UNION ALL SELECT 'user', user_id, * FROM spend_batch WHERE user_id IS NOT NULL"
    "  UNION ALL SELECT 'team', team_id, * FROM spend_batch WHERE team_id IS NOT NULL"
    "  UNION ALL SELECT 'org', organization_id, * FROM spend_batch WHERE organization_id IS NOT NULL"
    "  UNION ALL SELECT 'end_user', end_user, * FROM spend_batch WHERE end_user IS NOT NULL"
    "  UNION ALL SELECT 'tag', t.tag, b.* FROM spend_batch b, jsonb_array_elements_text("
    "    CASE WHEN jsonb_typeof(b.request_tags) = 'array' THEN b.request_tags ELSE '[]'::jsonb END) AS t(tag)"
    ") e GROUP BY 1, 2, 3, 4, 5, 6, 7 ORDER BY 1, 3, 2, 4, 5, 6, 7 "
    "ON CONFLICT (entity_type, day, entity_id, api_key, model, model_group, custom_llm_provider) DO UPDATE SET "
    "prompt_tokens = d.prompt_tokens + excluded.prompt_tokens, "
    "completion_tokens = d.completion_tokens + excluded.completion_tokens, "
    "cache_read_input_tokens = d.cache_read_input_tokens + excluded.cache_read_input_tokens, "
    "cache_creation_input_tokens = d.cache_creation_input_tokens + excluded.cache_creation_input_tokens, "
    "spend = d.spend + excluded.spend, api_requests = d.api_requests + excluded.api_requests, "
    "successful_requests = d.successful_requests + excluded.successful_requests, "
    "failed_requests = d.failed_requests + excluded.failed_requests";

// Makes the day partitions the batch needs (one catalog query per batch when they exist).
void ensure_partitions(pqxx::connection& c, const std::string& rows_json) {
  std::vector<std::string> missing;
  {
    pqxx::read_transaction tx{c};
    auto res = tx.exec_params(
        "SELECT to_char(d, 'YYYY-MM-DD'), to_regclass('spend_logs_' || to_char(d, 'YYYYMMDD')) IS NOT NULL "
        "FROM (SELECT DISTINCT (to_timestamp((r->>'start_us')::bigint / 1000000.0) AT TIME ZONE 'UTC')::date AS d "
        "FROM jsonb_array_elements($1::jsonb) r) days",
        rows_json);
    for (const auto& row : res) {
      if (!row[1].as<bool>()) {
        missing.push_back(row[0].as<std::string>());
      }
    }
  }
  for (const auto& day : missing) {
    std::string name = "spend_logs_" + day.substr(0, 4) + day.substr(5, 2) + day.substr(8, 2);
    // Another gateway may create the same partition at the same moment: try twice.
    for (int attempt = 0;; ++attempt) {
      try {
        pqxx::work tx{c};
        auto exists = tx.exec_params("SELECT to_regclass($1) IS NOT NULL", name);
        if (!exists[0][0].as<bool>()) {
          tx.exec0("CREATE TABLE " + tx.quote_name(name) + " PARTITION OF spend_logs FOR VALUES FROM (" +
                   tx.quote(day + " 00:00:00+00") + ") TO (" + tx.quote(day + " 00:00:00+00") +
                   "::timestamptz + interval '1 day')");
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

}  // namespace

spend_batch_result write_spend_batch_blocking(pqxx::connection& c, const std::string& rows_json, bool keep_rows) {
  if (keep_rows) {
    ensure_partitions(c, rows_json);
  }
  spend_batch_result out;
  pqxx::work tx{c};
  tx.exec0(create_batch_table);
  tx.exec_params(keep_rows ? insert_rows_sql() : totals_only_sql(), rows_json);
  out.inserted = tx.exec1("SELECT count(*) FROM spend_batch")[0].as<std::size_t>();
  if (out.inserted > 0) {
    add_totals(tx, "verification_tokens", "token", "api_key");
    add_totals(tx, "users", "user_id", "user_id");
    add_totals(tx, "teams", "team_id", "team_id");
    add_totals(tx, "organizations", "organization_id", "organization_id");
    tx.exec0(
        "INSERT INTO end_users AS e (user_id, spend) SELECT end_user, sum(spend) FROM spend_batch "
        "WHERE end_user IS NOT NULL GROUP BY end_user ORDER BY end_user "
        "ON CONFLICT (user_id) DO UPDATE SET spend = e.spend + excluded.spend, updated_at = now()");
    tx.exec0(rollup_sql);
    auto totals = tx.exec(
        "SELECT token, spend FROM verification_tokens WHERE token IN (SELECT api_key FROM spend_batch "
        "WHERE api_key <> '') ORDER BY token");
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
  return n;
}

}  // namespace switchyard::store::postgres
