#include "switchyard/spend/pg_sink.hpp"

#include "switchyard/store/postgres/spend_repo.hpp"


namespace switchyard::spend {

namespace {

sink_result write_blocking(pqxx::connection& c, const std::shared_ptr<const std::vector<spend_row>>& rows,
                           bool keep_rows) {
  // One buffer per db thread, reused: no allocation per batch once it has grown.
  thread_local std::string text;
  text.clear();
  for (const auto& r : *rows) {
    append_copy_line(text, r);
  }
  if (!text.empty()) {
    text.pop_back();  // the last newline: libpqxx adds it
  }
  // The rows' days (their partitions must exist), from the rows themselves.
  std::vector<std::int64_t> starts;
  starts.reserve(rows->size());
  for (const auto& r : *rows) {
    starts.push_back(r.start_us);
  }
  const auto days = store::postgres::spend_days_of(std::move(starts));
  auto r = store::postgres::write_spend_copy_blocking(c, text, days, keep_rows);
  if (text.capacity() > (std::size_t{64} << 20)) {
    text = std::string();  // a huge batch (a replay) does not pin its memory for ever
  }
  return sink_result{r.inserted, std::move(r.key_totals)};
}

}  // namespace

net::awaitable<core::result<sink_result>> pg_sink::write(std::shared_ptr<const std::vector<spend_row>> rows) {
  co_return co_await db_.run(&write_blocking, std::move(rows), keep_rows_);
}

}  // namespace switchyard::spend
