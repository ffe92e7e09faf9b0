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
  explicit pg_sink(store::postgres::db_executor& db) : db_(db) {}
  net::awaitable<core::result<sink_result>> write(std::shared_ptr<const std::vector<spend_row>> rows) override;

 private:
  store::postgres::db_executor& db_;
};

}  // namespace switchyard::spend
