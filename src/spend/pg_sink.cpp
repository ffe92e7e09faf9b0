#include "switchyard/spend/pg_sink.hpp"

#include "switchyard/store/postgres/spend_repo.hpp"

#include <algorithm>


namespace switchyard::spend {

namespace {

// Fresh when no row of the batch was ever sent before (docs/spend.md, "Writing: the cost
// logger"): none can be in spend_logs yet, so nothing needs checking.
bool fresh(const std::vector<spend_row>& rows) {
  return std::none_of(rows.begin(), rows.end(),
                      [](const spend_row& r) { return r.maybe_written || !log_copy_can_write(r); });
}

sink_result write_blocking(pqxx::connection& c, const std::shared_ptr<const std::vector<spend_row>>& rows,
                           bool keep_rows) {
  // Buffers per db thread, reused: no allocation per batch once they have grown.
  thread_local std::string text;
  thread_local std::string groups;
  text.clear();
  groups.clear();
  // Without rows (disable_spend_logs) there is nothing to check a row against: the sums
  // alone, either way.
  const bool checked = keep_rows && !fresh(*rows);
  if (keep_rows) {
    for (const auto& r : *rows) {
      if (checked) {
        append_copy_line(text, r);
      } else {
        append_log_copy_line(text, r);
      }
    }
  }
  if (!checked) {
    append_group_lines(groups, *rows);
  }
  // The rows' days (their partitions must exist), from the rows themselves.
  std::vector<std::int64_t> starts;
  starts.reserve(rows->size());
  for (const auto& r : *rows) {
    starts.push_back(r.start_us);
  }
  const auto days = store::postgres::spend_days_of(std::move(starts));
  auto r = checked ? store::postgres::write_spend_copy_blocking(c, text, days, keep_rows)
                   : store::postgres::write_spend_fresh_blocking(c, text, groups, rows->size(), days, keep_rows);
  for (auto* s : {&text, &groups}) {
    if (s->capacity() > (std::size_t{64} << 20)) {
      *s = std::string();  // a huge batch (a replay) does not pin its memory for ever
    }
  }
  return sink_result{r.inserted, std::move(r.key_totals)};
}

}  // namespace

net::awaitable<core::result<sink_result>> pg_sink::write(std::shared_ptr<const std::vector<spend_row>> rows) {
  co_return co_await db_.run(&write_blocking, std::move(rows), keep_rows_);
}

}  // namespace switchyard::spend
