// Shared memory where the workers of a --num_workers group publish their metrics, so that
// a scrape answered by any worker shows the whole group (docs/observability.md, "Several
// workers").
//
// The supervisor maps the board before it forks the workers; each worker owns one slot
// (its index) and publishes registry snapshots there (registry::snapshot()); the worker
// that answers a scrape reads every slot. A slot has two buffers: a publication writes
// the one not in use, then makes it current by bumping the slot's generation, so a reader
// never sees half a snapshot (it copies, then checks that the generation did not move),
// and a worker that dies in the middle of a publication leaves the previous snapshot
// whole for its replacement. A slot's buffers are reserved, not committed: memory is used
// only as far as snapshots reach.
//
// Owner: the supervisor (mapped for the group's life). Thread: any; lock-free.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace switchyard::metrics {

class board {
 public:
  // `workers` slots, each able to hold a snapshot of `snapshot_bytes`. nullptr (and a
  // message in `error`) when the memory cannot be mapped.
  static std::shared_ptr<board> create(int workers, std::size_t snapshot_bytes, std::string* error = nullptr);
  ~board();
  board(const board&) = delete;
  board& operator=(const board&) = delete;

  int size() const { return workers_; }
  std::size_t capacity() const { return half_; }

  // Makes `snapshot` slot `i`'s current one. False (nothing changed) when it is larger
  // than capacity() or `i` is out of range.
  bool publish(int i, std::string_view snapshot);
  // A copy of slot `i`'s current snapshot; nullopt when none was ever published, or when
  // publications kept overtaking the copy (a few tries).
  std::optional<std::string> read(int i) const;

  // Bumped by the worker that answers a scrape: each worker ends its "since the previous
  // scrape" windows when it sees a new value (registry::end_window()).
  std::uint64_t scrapes() const;
  void count_scrape();

 private:
  board(void* base, std::size_t bytes, int workers, std::size_t half);
  struct slot_header;
  slot_header* header(int i) const;
  char* buffer(int i, int which) const;

  void* base_;
  std::size_t bytes_;
  int workers_;
  std::size_t half_;
};

}  // namespace switchyard::metrics
