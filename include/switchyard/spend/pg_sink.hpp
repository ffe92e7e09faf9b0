// spend_sink over Postgres: each batch is one transaction on a db_executor thread
// (store/postgres/spend_repo.hpp). The gateway gives it an executor of its own (one
// connection), so spend writes never wait behind key lookups or the other way round.
// Thread: the loop thread; the SQL runs on the db thread.
#pragma once
#include "switchyard/spend/cost_logger.hpp"
#include "switchyard/store/postgres/db_executor.hpp"

namespace switchyard::spend {

class pg_sink final : public spend_sink {
 public:
  // keep_rows false: general_settings.disable_spend_logs (totals and rollups only).
  explicit pg_sink(store::postgres::db_executor& db, bool keep_rows = true) : db_(db), keep_rows_(keep_rows) {}
  net::awaitable<core::result<sink_result>> write(std::shared_ptr<const std::vector<spend_row>> rows) override;

 private:
  store::postgres::db_executor& db_;
  bool keep_rows_;
};

}  // namespace switchyard::spend
