// The spend writer's SQL: one batch of spend_logs rows in one transaction, exactly once per
// row, by one of two paths (docs/spend.md, "Writing: the cost logger"):
//   - fresh: rows never sent to the database before. They cannot be there yet, so they go
//     straight into spend_logs (COPY text as spend::append_log_copy_line writes it) and the
//     totals and rollups are made from the sums the gateway sends with them
//     (spend::append_group_lines);
//   - checked: rows that may be there already (a batch whose commit's answer was lost, a
//     spill file, a replay). The batch is staged in a temporary table (COPY text as
//     spend::append_copy_line writes it, or a JSON array as spend::append_json does) and
//     only the rows not in spend_logs are inserted and summed.
//
// On the checked path, rows already in spend_logs (same row_id and start time: a replay after a crash
// mid-flush, or a spill file read twice) are skipped, and only the rows actually
// inserted move the running totals (keys, users, teams, organisations, end users) and the
// daily rollups (one per entity, and entity_type 'all' for every request), so a replay
// never counts twice. Entities are locked in one fixed order
// (keys, users, teams, organisations, end users; each sorted by id), so writers of several
// gateways cannot deadlock. Day partitions are created on first use. See docs/spend.md.
//
// Thread: a db_executor thread only (blocking).
#pragma once
#include "switchyard/store/postgres/pqxx_fwd.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace switchyard::store::postgres {

struct spend_batch_result {
  std::size_t inserted = 0;  // rows written now (the others were already there)
  // The running spend of every virtual key the inserted rows touched, after the batch.
  std::vector<std::pair<std::string, double>> key_totals;
};

// `rows_json`: a JSON array of row objects. Throws on SQL errors (db_executor maps them).
// `days`: the distinct UTC days of the rows' start times ("YYYYMMDD", spend_day_of), whose
// partitions must exist; without it they are read from the JSON (a second parse).
// keep_rows false (general_settings.disable_spend_logs): only the totals and rollups are
// written, no spend_logs rows; every row of the batch counts as inserted, so a batch
// written twice (a commit whose answer was lost, then retried) counts twice.
spend_batch_result write_spend_batch_blocking(pqxx::connection& c, const std::string& rows_json,
                                              const std::vector<std::string>& days, bool keep_rows = true);
spend_batch_result write_spend_batch_blocking(pqxx::connection& c, const std::string& rows_json,
                                              bool keep_rows = true);
// The same batch as lines of COPY text (spend::append_copy_line), what the gateway sends:
// Postgres reads COPY text several times faster than a JSON parameter.
spend_batch_result write_spend_copy_blocking(pqxx::connection& c, const std::string& copy_rows,
                                             const std::vector<std::string>& days, bool keep_rows = true);

// The fresh path: `log_rows` (spend::append_log_copy_line) go into spend_logs as they are,
// `group_rows` (spend::append_group_lines over the same rows) make the totals and
// rollups; `rows` is the number of rows. Only for rows never sent before: one already in
// spend_logs fails the whole batch (its primary key), which the caller then writes through
// the checked path. keep_rows false: `log_rows` is not sent.
spend_batch_result write_spend_fresh_blocking(pqxx::connection& c, const std::string& log_rows,
                                              const std::string& group_rows, std::size_t rows,
                                              const std::vector<std::string>& days, bool keep_rows = true);
// spend_logs' columns in the order of spend::append_log_copy_line's fields.
const std::vector<std::string>& spend_log_copy_columns();

// The UTC day ("YYYYMMDD") of a start time in Unix microseconds: the day partition's suffix.
std::string spend_day_of(std::int64_t start_us);
// The days whose partitions rows with these start times need, sorted, each once.
std::vector<std::string> spend_days_of(std::vector<std::int64_t> start_us);

// Drops the day partitions of spend_logs that end before `cutoff_day` ("YYYY-MM-DD").
// Returns how many were dropped.
std::size_t drop_spend_partitions_before_blocking(pqxx::connection& c, const std::string& cutoff_day);

}  // namespace switchyard::store::postgres
