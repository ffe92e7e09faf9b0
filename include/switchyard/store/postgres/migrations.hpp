// Schema migrations: versioned SQL files applied in order, each once.
//
// Owner: app/ (startup, or `switchyard migrate`). Thread: a db thread, via db_executor::run:
//   auto applied = co_await db.run(migrate_blocking, dir);   // result<vector<string>>
// Blocking: yes (SQL, file reads, and waiting for the advisory lock held by another instance).
#pragma once
#include "switchyard/store/postgres/pqxx_fwd.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace switchyard::store::postgres {

// Session advisory lock held while migrating, so instances starting together serialize.
inline constexpr std::int64_t migration_lock_key = 0x7377795f6d696772;  // "swy_migr"

// Table recording what ran: (version text primary key, applied_at timestamptz). The
// version is the file name without ".sql", e.g. "0001_init". Created by the runner.
inline constexpr const char* migrations_table = "switchyard_schema_migrations";

// Applies `<dir>/NNNN_name.sql` files (4+ digits, '_', [A-Za-z0-9_]+) in numeric order,
// each not yet recorded, each in its own transaction together with its record, under
// pg_advisory_lock(migration_lock_key). Returns the versions applied by this call, in
// order (empty when up to date). Files must not contain BEGIN/COMMIT.
// Throws (caught by db_executor::run): std::runtime_error for a missing directory, a
// misnamed *.sql file or two files with one number; pqxx errors for SQL failures (the
// failing file is rolled back and not recorded; earlier files stay applied).
std::vector<std::string> migrate_blocking(pqxx::connection& c, const std::string& migrations_dir);

}  // namespace switchyard::store::postgres
