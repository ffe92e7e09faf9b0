#include "switchyard/spend/pg_sink.hpp"

#include "switchyard/store/postgres/spend_repo.hpp"

namespace switchyard::spend {

namespace {

sink_result write_blocking(pqxx::connection& c, const std::shared_ptr<const std::vector<spend_row>>& rows,
                           bool keep_rows) {
  std::string js;
  js.reserve(rows->size() * 700 + 2);
  js += '[';
  for (std::size_t i = 0; i < rows->size(); ++i) {
    if (i != 0) {
      js += ',';
    }
    append_json(js, (*rows)[i]);
  }
  js += ']';
  auto r = store::postgres::write_spend_batch_blocking(c, js, keep_rows);
  return sink_result{r.inserted, std::move(r.key_totals)};
}

}  // namespace

net::awaitable<core::result<sink_result>> pg_sink::write(std::shared_ptr<const std::vector<spend_row>> rows) {
  co_return co_await db_.run(&write_blocking, std::move(rows), keep_rows_);
}

}  // namespace switchyard::spend
