#include "switchyard/spend/cost_logger.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include <malloc.h>

#include <algorithm>
#include <filesystem>

namespace switchyard::spend {

using clock = std::chrono::steady_clock;

namespace {

// File-thread jobs: coroutines with value parameters only (no lambda captures inside a
// co_await expression: see docs/architecture.md, "A GCC 12 rule").
net::awaitable<std::vector<std::string>> rotate_and_list(std::shared_ptr<spill_file> s) {
  s->rotate_blocking();
  co_return s->closed_files_blocking();
}

net::awaitable<spill_file::read_result> read_spill(std::string path) { co_return spill_file::read_blocking(path); }

net::awaitable<void> remove_spill(std::string path) {
  std::error_code ec;
  std::filesystem::remove(path, ec);
  if (ec) {
    spdlog::error("spend spill file {} was replayed but cannot be removed: {}", path, ec.message());
  }
  co_return;
}

net::awaitable<void> barrier() { co_return; }

// The bytes in the spill files, for metrics (on the file thread; a directory scan).
void measure_spill(const spill_file& s, std::atomic<std::uint64_t>& bytes) noexcept {
  try {
    bytes.store(s.size_blocking(), std::memory_order_relaxed);
  } catch (...) {
    // A directory that cannot be read keeps the last figure.
  }
}

}  // namespace

cost_logger::cost_logger(net::any_io_executor ex, spend_sink& sink, logger_options opts)
    : ex_(std::move(ex)), sink_(sink), opts_(std::move(opts)), timer_(ex_), done_(ex_) {
  if (!opts_.spill_dir.empty()) {
    spill_ = std::make_shared<spill_file>(opts_.spill_dir);
    rejected_ = std::make_shared<spill_file>(opts_.spill_dir + "/rejected");
  }
  opts_.batch_rows = std::max<std::size_t>(1, opts_.batch_rows);
  opts_.max_batch_rows = std::max(opts_.batch_rows, opts_.max_batch_rows);
  queue_.reserve(opts_.batch_rows);
}

cost_logger::~cost_logger() { file_thread_.join(); }

void cost_logger::add(spend_row row) {
  if (stopped_) {
    std::vector<spend_row> one;
    one.push_back(std::move(row));
    spill(std::move(one));
    return;
  }
  queue_.push_back(std::move(row));
  queued_back();
}

void cost_logger::queued_back() {
  queue_bytes_ += queue_.back().approx_bytes();
  stats_.queued = waiting();
  if (waiting() > opts_.max_queue_rows || queue_bytes_ > opts_.max_queue_bytes) {
    enforce_bound();
  } else if (waiting() == opts_.batch_rows) {
    wake();
  }
}

void cost_logger::start() {
  if (running_) {
    return;
  }
  running_ = true;
  replay_wanted_ = spill_ != nullptr;  // files an earlier run left behind
  measure_spill_later();
  net::co_spawn(ex_, flush_loop(), [](std::exception_ptr e) {
    if (e) {
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        spdlog::error("spend writer stopped: {}", ex.what());
      }
    }
  });
}

net::awaitable<void> cost_logger::stop(clock::time_point deadline) {
  stopping_ = true;
  deadline_ = deadline;
  if (running_) {
    wake();
    done_.expires_at(clock::time_point::max());
    while (!stopped_) {
      co_await done_.async_wait(net::as_tuple(net::use_awaitable));
    }
  } else if (waiting() != 0) {
    spill(take(waiting()));
  }
  stopped_ = true;
  // Every spill job posted so far has run once this no-op job has (one file thread).
  co_await net::co_spawn(file_thread_, barrier(), net::use_awaitable);
  stats_.dropped += spill_failures_->exchange(0);
}

void cost_logger::wake() { timer_.cancel(); }

void cost_logger::written(const sink_result& r, std::size_t rows) {
  stats_.written += r.inserted;
  stats_.already_written += rows > r.inserted ? rows - r.inserted : 0;
  if (on_key_total) {
    for (const auto& [key, total] : r.key_totals) {
      on_key_total(key, total);
    }
  }
}

std::vector<spend_row> cost_logger::take(std::size_t n) {
  std::vector<spend_row> out;
  n = std::min(n, waiting());
  if (head_ == 0 && n == queue_.size()) {
    // The usual case (a flush takes everything waiting): the queue's storage becomes the
    // batch, no row is moved.
    out.swap(queue_);
    queue_.swap(spare_);  // empty; its capacity is the last written batch's, if any
    queue_.reserve(opts_.batch_rows);
    queue_bytes_ = 0;
  } else {
    out.reserve(n);
    for (std::size_t i = head_; i < head_ + n; ++i) {
      queue_bytes_ -= std::min(queue_bytes_, queue_[i].approx_bytes());
      out.push_back(std::move(queue_[i]));
    }
    head_ += n;
    if (head_ == queue_.size()) {
      queue_.clear();
      head_ = 0;
    } else if (head_ >= queue_.size() / 2) {
      // Taken rows are dropped from the front once they are half the vector: each row is
      // moved at most once more, however the queue is taken.
      queue_.erase(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(head_));
      head_ = 0;
    }
  }
  stats_.queued = waiting();
  return out;
}

// A backlog (an outage, a burst) grows the queue's vector to hold it, up to max_queue_rows
// rows of about 750 bytes each (75 MB for 100,000), and the written batches hand that
// storage on as the spare: kept, it would hold the process' memory at its peak for good.
// Once the queue is empty, storage beyond a few batches is freed, and glibc is asked to
// return its free pages to the system (malloc_trim walks the heap: on the file thread, not
// the loop). Steady traffic never grows past the limit, so it frees and trims nothing.
void cost_logger::release_backlog_storage() {
  const std::size_t keep = 2 * std::max(opts_.batch_rows, opts_.max_batch_rows);
  if (waiting() != 0 || (queue_.capacity() <= keep && spare_.capacity() <= keep)) {
    return;
  }
  if (queue_.capacity() > keep) {
    std::vector<spend_row>().swap(queue_);
    head_ = 0;
    queue_.reserve(opts_.batch_rows);
  }
  if (spare_.capacity() > keep) {
    std::vector<spend_row>().swap(spare_);
  }
  ++stats_.backlogs_released;
  trim_later();
}

void cost_logger::trim_later() {
  net::post(file_thread_, [] { ::malloc_trim(0); });
}

void cost_logger::put_back(std::vector<spend_row>::const_iterator first, std::vector<spend_row>::const_iterator last) {
  const auto count = static_cast<std::size_t>(last - first);
  for (auto it = first; it != last; ++it) {
    queue_bytes_ += it->approx_bytes();
  }
  if (count <= head_) {
    // Into the slots the rows were taken from.
    std::copy(first, last, queue_.begin() + static_cast<std::ptrdiff_t>(head_ - count));
    head_ -= count;
  } else {
    queue_.erase(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(head_));
    head_ = 0;
    queue_.insert(queue_.begin(), first, last);
  }
  // Their write may have committed before it failed (its answer lost): the next one checks.
  for (std::size_t i = head_; i < head_ + count; ++i) {
    queue_[i].maybe_written = true;
  }
  stats_.queued = waiting();
}

void cost_logger::enforce_bound() {
  // Down to 90% of the bound in one go: one spill write per burst, not one per row.
  if (waiting() > opts_.max_queue_rows) {
    spill(take(waiting() - opts_.max_queue_rows * 9 / 10));
  }
  while (queue_bytes_ > opts_.max_queue_bytes / 10 * 9 && waiting() != 0) {
    spill(take(opts_.batch_rows));
  }
}

void cost_logger::spill(std::vector<spend_row> rows) {
  if (rows.empty()) {
    return;
  }
  if (!spill_) {
    stats_.dropped += rows.size();
    spdlog::error("spend: {} row(s) dropped: the queue is full and no spill directory is configured", rows.size());
    return;
  }
  stats_.spilled += rows.size();
  spilled_since_replay_ = true;
  replay_wanted_ = true;
  net::post(file_thread_, [s = spill_, failures = spill_failures_, bytes = spill_bytes_, r = std::move(rows)]() {
    try {
      s->append_blocking(r);
    } catch (const std::exception& e) {
      failures->fetch_add(r.size());
      spdlog::error("spend: {} row(s) lost: {}", r.size(), e.what());
    }
    measure_spill(*s, *bytes);
  });
}

void cost_logger::measure_spill_later() {
  if (spill_) {
    net::post(file_thread_, [s = spill_, bytes = spill_bytes_]() { measure_spill(*s, *bytes); });
  }
}

net::awaitable<bool> cost_logger::write_batch() {
  // Bigger batches only while the database answers: during an outage each probe is a
  // normal batch (a failed one is copied back to the queue, so less to copy).
  auto batch = std::make_shared<std::vector<spend_row>>(
      take(stats_.database_ok ? opts_.max_batch_rows : opts_.batch_rows));
  auto r = co_await sink_.write(batch);
  const auto marked = [](const spend_row& row) { return row.maybe_written; };
  if (!r && r.error().code != core::errc::unavailable && std::none_of(batch->begin(), batch->end(), marked)) {
    // A fresh batch Postgres refused as such: one of its rows is there already after all, or
    // its day's partition was dropped by another gateway. The checked path skips rows
    // already written and makes partitions it does not find: once more that way, whole,
    // before writing the rows one by one (or setting a lone row aside).
    for (auto& row : *batch) {
      row.maybe_written = true;
    }
    r = co_await sink_.write(batch);
  }
  const auto recycle = [&] {
    if (batch.use_count() == 1 && batch->capacity() > spare_.capacity()) {
      batch->clear();
      spare_ = std::move(*batch);
    }
  };
  if (!r && r.error().code != core::errc::unavailable && batch->size() > 1) {
    // Postgres refused the batch itself (not an outage): find the rows it refuses.
    co_return co_await isolate(*batch);
  }
  if (!r && r.error().code != core::errc::unavailable) {
    reject(*batch, r.error().message);
    co_return true;
  }
  if (!r) {
    ++stats_.flush_failures;
    if (stats_.database_ok) {
      spdlog::warn("spend: writing {} row(s) failed ({}); they stay queued and are retried", batch->size(),
                   r.error().message);
    }
    stats_.database_ok = false;
    // Back to the front, in their order.
    put_back(batch->begin(), batch->end());
    enforce_bound();
    co_return false;
  }
  if (!stats_.database_ok) {
    spdlog::info("spend: writing to the database again ({} row(s) queued)", waiting());
  }
  stats_.database_ok = true;
  written(*r, batch->size());
  recycle();
  co_return true;
}

net::awaitable<bool> cost_logger::isolate(const std::vector<spend_row>& rows) {
  for (std::size_t i = 0; i < rows.size(); ++i) {
    // Checked one by one: a row the batch failed on may be one already written.
    auto single = std::make_shared<std::vector<spend_row>>(1, rows[i]);
    single->front().maybe_written = true;
    std::shared_ptr<const std::vector<spend_row>> one = std::move(single);
    auto r = co_await sink_.write(one);
    if (r) {
      written(*r, 1);
      continue;
    }
    if (r.error().code == core::errc::unavailable) {
      // The database went away meanwhile: the rest waits in the queue, in order.
      put_back(rows.begin() + static_cast<std::ptrdiff_t>(i), rows.end());
      ++stats_.flush_failures;
      stats_.database_ok = false;
      co_return false;
    }
    reject(*one, r.error().message);
  }
  co_return true;
}

void cost_logger::reject(const std::vector<spend_row>& rows, const std::string& why) {
  stats_.rejected += rows.size();
  spdlog::error("spend: the database refused {} row(s) ({}); kept aside in {}", rows.size(), why,
                rejected_ ? rejected_->dir() : std::string("nowhere (no spill directory)"));
  if (rejected_) {
    net::post(file_thread_, [s = rejected_, failures = spill_failures_, r = rows]() {
      try {
        s->append_blocking(r);
      } catch (const std::exception& e) {
        failures->fetch_add(r.size());
        spdlog::error("spend: {} refused row(s) lost: {}", r.size(), e.what());
      }
    });
  }
}

net::awaitable<void> cost_logger::replay_spills() {
  replay_wanted_ = false;
  spilled_since_replay_ = false;
  auto files = co_await net::co_spawn(file_thread_, rotate_and_list(spill_), net::use_awaitable);
  for (const auto& f : files) {
    auto read = co_await net::co_spawn(file_thread_, read_spill(f), net::use_awaitable);
    if (!read.error.empty()) {
      // Unreadable now (access refused, a directory by that name, a disk error): it is
      // kept, not removed as if replayed, and tried again at the next replay.
      ++stats_.unreadable_spills;
      spdlog::error("spend: spill file not replayed, kept for a later try: {}", read.error);
      continue;
    }
    stats_.corrupt += read.corrupt;
    if (!read.rows.empty()) {
      spdlog::info("spend: replaying {} row(s) from {}", read.rows.size(), f);
    }
    for (std::size_t at = 0; at < read.rows.size(); at += opts_.max_batch_rows) {
      auto end = std::min(read.rows.size(), at + opts_.max_batch_rows);
      auto chunk = std::make_shared<const std::vector<spend_row>>(read.rows.begin() + static_cast<std::ptrdiff_t>(at),
                                                                  read.rows.begin() + static_cast<std::ptrdiff_t>(end));
      auto r = co_await sink_.write(chunk);
      if (!r) {
        // The file stays; the rows already written are skipped next time (idempotent).
        ++stats_.flush_failures;
        stats_.database_ok = false;
        replay_wanted_ = true;
        co_return;
      }
      stats_.replayed += r->inserted;
      written(*r, chunk->size());
    }
    co_await net::co_spawn(file_thread_, remove_spill(f), net::use_awaitable);
    measure_spill_later();
  }
  if (!files.empty()) {
    trim_later();  // the files' text and rows were read into memory, one file at a time
  }
}

net::awaitable<void> cost_logger::flush_loop() {
  auto backoff = opts_.retry_min;
  for (;;) {
    stats_.dropped += spill_failures_->exchange(0);
    if (waiting() == 0) {
      if (stopping_) {
        break;
      }
      if (replay_wanted_ && stats_.database_ok) {
        co_await replay_spills();
        continue;
      }
    }
    if (!stopping_ && waiting() < opts_.batch_rows) {
      // Wait for the interval (or for a full batch: add() wakes us).
      timer_.expires_after(opts_.flush_interval);
      co_await timer_.async_wait(net::as_tuple(net::use_awaitable));
      if (waiting() == 0) {
        continue;
      }
    }
    if (co_await write_batch()) {
      backoff = opts_.retry_min;
      release_backlog_storage();
      continue;
    }
    if (stopping_ && clock::now() >= deadline_) {
      break;
    }
    // Probe again after the backoff (or the stop deadline, if sooner).
    auto until = clock::now() + backoff;
    if (stopping_) {
      until = std::min(until, deadline_);
    }
    timer_.expires_at(until);
    co_await timer_.async_wait(net::as_tuple(net::use_awaitable));
    backoff = std::min(opts_.retry_max, backoff * 2);
  }
  if (waiting() != 0) {
    spdlog::warn("spend: {} row(s) not written before the stop; spilled to {}", waiting(),
                 spill_ ? spill_->dir() : std::string("nowhere (no spill directory)"));
    spill(take(waiting()));
  }
  stopped_ = true;
  done_.cancel();
}

}  // namespace switchyard::spend
