// The cost logger's writer: spend rows queue in memory on the loop and are written to
// Postgres in batches (every flush_interval, or at once when batch_rows are waiting; up to
// max_batch_rows when more wait), one transaction per batch, off the loop. Nothing is lost and nothing is counted twice:
//   - a failed batch goes back to the front of the queue and is retried with backoff;
//   - past the queue's bound (rows or bytes), the oldest rows go to the spill files
//     (spill_file.hpp) on the logger's own thread, and are replayed, oldest first, once
//     Postgres answers again (also at the next start);
//   - every row carries an idempotency key, so a batch or a spill file written twice
//     (a crash between the commit and forgetting the rows) adds nothing the second time;
//   - stop() writes what it can before its deadline and spills the rest;
//   - a batch Postgres refuses as such (an SQL error, not an outage) is written row by row,
//     and a row it still refuses is kept aside in <spill_dir>/rejected with an error log,
//     so one bad row never blocks the queue.
// What a kill -9 can lose: the rows still in memory (at most one flush_interval of
// traffic while Postgres answers; the whole in-memory queue during an outage). See
// docs/spend.md.
// Owner: app/. Thread: the loop thread (add, start, stop); the sink runs its I/O elsewhere.
// Never blocks the loop.
#pragma once
#include "switchyard/core/asio.hpp"
#include "switchyard/core/error.hpp"
#include "switchyard/spend/record.hpp"
#include "switchyard/spend/spill_file.hpp"

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace switchyard::spend {

struct sink_result {
  std::size_t inserted = 0;
  std::vector<std::pair<std::string, double>> key_totals;  // key hash -> running spend
};

// Where batches go (Postgres in the gateway, a fake in tests). Resumes on the caller's
// executor.
class spend_sink {
 public:
  virtual ~spend_sink() = default;
  // `rows` stay the caller's (shared, read-only): on failure it queues them again.
  virtual net::awaitable<core::result<sink_result>> write(std::shared_ptr<const std::vector<spend_row>> rows) = 0;
};

struct logger_options {
  std::chrono::milliseconds flush_interval{100};
  std::size_t batch_rows = 1000;
  // A batch takes up to this many rows when more are waiting (a backlog after a burst or an
  // outage): one transaction's fixed cost (round trips, the rollup rows it updates, which
  // depend on how many keys and models are in it, not on how many rows) is then shared by
  // more rows, so the writer catches up instead of falling further behind. (While the
  // database does not answer, batches stay at batch_rows.)
  std::size_t max_batch_rows = 5000;
  std::size_t max_queue_rows = 100'000;
  std::size_t max_queue_bytes = 64u << 20;
  std::string spill_dir;  // empty: rows past the bound are dropped (counted, logged)
  std::chrono::milliseconds retry_min{200};
  std::chrono::milliseconds retry_max{5'000};
};

class cost_logger {
 public:
  cost_logger(net::any_io_executor ex, spend_sink& sink, logger_options opts);
  ~cost_logger();
  cost_logger(const cost_logger&) = delete;
  cost_logger& operator=(const cost_logger&) = delete;

  // Queues one row. Never blocks, never fails the caller.
  void add(spend_row row);
  // Queues one row that `fill(spend_row&)` writes in its place in the queue (no move of the
  // row). If fill throws, nothing is queued and the exception goes to the caller.
  template <typename Fill>
  void add_in_place(Fill&& fill) {
    if (stopped_) {
      spend_row r;
      fill(r);
      add(std::move(r));
      return;
    }
    queue_.emplace_back();
    try {
      fill(queue_.back());
    } catch (...) {
      queue_.pop_back();
      throw;
    }
    queued_back();
  }
  // Starts the flush loop (and replays spill files left by an earlier run).
  void start();
  // Writes what it can until `deadline`, spills the rest, then returns. Rows added later
  // are spilled at once.
  net::awaitable<void> stop(std::chrono::steady_clock::time_point deadline);

  // The key cache learns each key's running spend from the batches (key hash, spend).
  std::function<void(const std::string&, double)> on_key_total;

  struct counters {
    std::size_t queued = 0;          // rows in memory now
    std::size_t written = 0;         // rows inserted
    // Rows a checked write found in the table already: written by an earlier attempt whose
    // answer was lost (Postgres went away during the commit), or by an earlier replay of
    // the same spill file. `written` cannot count the first kind (the commit's answer
    // never came), so with Postgres outages written <= rows in the table <= written + this.
    std::size_t already_written = 0;
    std::size_t flush_failures = 0;  // batches that failed
    std::size_t spilled = 0;         // rows sent to spill files
    std::size_t replayed = 0;        // rows read back from spill files and written (also in `written`)
    std::size_t dropped = 0;         // rows lost (no spill_dir, or the disk refused them)
    std::size_t corrupt = 0;         // spill records skipped as corrupt
    std::size_t unreadable_spills = 0;  // spill files a replay could not read (kept)
    std::size_t rejected = 0;        // rows Postgres refused (kept aside, not retried)
    std::size_t backlogs_released = 0;  // times a drained backlog's storage was given back
    bool database_ok = true;
  };
  const counters& stats() const { return stats_; }
  // Bytes in the spill files as last measured (after each spill and replay; at start).
  std::uint64_t spill_bytes() const { return spill_bytes_->load(std::memory_order_relaxed); }
  // Rows the queue's storage can hold without growing (the queue and the spare batch).
  std::size_t capacity_rows() const { return queue_.capacity() + spare_.capacity(); }

 private:
  net::awaitable<void> flush_loop();
  net::awaitable<bool> write_batch();  // false: the sink failed
  net::awaitable<void> replay_spills();
  // A batch Postgres refused as such (an SQL error, not an outage): rows written one by
  // one, the refused ones kept aside. False: the database went away meanwhile.
  net::awaitable<bool> isolate(const std::vector<spend_row>& rows);
  void reject(const std::vector<spend_row>& rows, const std::string& why);
  void queued_back();  // the row at the back was just queued: counts, bounds, wakes
  void enforce_bound();
  void spill(std::vector<spend_row> rows);
  std::vector<spend_row> take(std::size_t n);
  // Rows of a batch that was not written go back to the front of the queue, in their order.
  void put_back(std::vector<spend_row>::const_iterator first, std::vector<spend_row>::const_iterator last);
  void wake();
  void measure_spill_later();
  // Counts a written batch of `rows` rows, tells the key cache its totals.
  void written(const sink_result& r, std::size_t rows);
  // Once the queue is empty, frees storage a backlog grew beyond a few batches.
  void release_backlog_storage();
  // Asks glibc, on the file thread, to return the heap's free pages to the system.
  void trim_later();

  net::any_io_executor ex_;
  spend_sink& sink_;
  logger_options opts_;
  // A vector, not a deque: a flush swaps it out whole (a row is ~750 bytes, so a deque
  // would allocate a node per row). Rows [head_, size) wait; those before head_ were taken
  // by a partial take (moved from) and are dropped from the front in bulk.
  std::vector<spend_row> queue_;
  std::size_t head_ = 0;
  // A written batch's storage, kept for the next one (no large free and allocation per batch).
  std::vector<spend_row> spare_;
  std::size_t waiting() const { return queue_.size() - head_; }
  std::size_t queue_bytes_ = 0;
  net::steady_timer timer_;
  net::steady_timer done_;  // stop() waits on it; the flush loop cancels it when it ends
  net::thread_pool file_thread_{1};
  std::shared_ptr<spill_file> spill_;
  std::shared_ptr<spill_file> rejected_;  // <spill_dir>/rejected: rows Postgres refused, never replayed
  bool stopping_ = false;
  bool stopped_ = false;
  bool running_ = false;
  bool replay_wanted_ = false;
  bool spilled_since_replay_ = false;
  std::chrono::steady_clock::time_point deadline_{};
  counters stats_;
  std::shared_ptr<std::atomic<std::size_t>> spill_failures_ = std::make_shared<std::atomic<std::size_t>>(0);
  std::shared_ptr<std::atomic<std::uint64_t>> spill_bytes_ = std::make_shared<std::atomic<std::uint64_t>>(0);
};

}  // namespace switchyard::spend
