#include "switchyard/metrics/board.hpp"

#include <sys/mman.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <new>

namespace switchyard::metrics {

// The first page holds the group's scrape counter; then, per slot, one page of header
// followed by the slot's two buffers.
struct board::slot_header {
  // Even/odd: which buffer is current; 0: nothing published yet (buffer 1 gets the first).
  std::atomic<std::uint64_t> generation{0};
  std::atomic<std::uint64_t> length[2]{};
};

namespace {

constexpr std::size_t page = 4096;

std::size_t round_up(std::size_t n) { return (n + page - 1) / page * page; }

struct board_header {
  std::atomic<std::uint64_t> scrapes{0};
};

static_assert(std::atomic<std::uint64_t>::is_always_lock_free, "the board's atomics are shared between processes");

}  // namespace

std::shared_ptr<board> board::create(int workers, std::size_t snapshot_bytes, std::string* error) {
  if (workers < 1 || snapshot_bytes == 0) {
    if (error != nullptr) {
      *error = "a metrics board needs at least one worker and a snapshot size";
    }
    return nullptr;
  }
  const std::size_t half = round_up(snapshot_bytes);
  const std::size_t bytes = page + static_cast<std::size_t>(workers) * (page + 2 * half);
  // MAP_SHARED: the workers forked after this see the same pages. MAP_NORESERVE: only the
  // pages written are backed.
  void* base = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (base == MAP_FAILED) {
    if (error != nullptr) {
      *error = std::string("cannot map the metrics board: ") + std::strerror(errno);
    }
    return nullptr;
  }
  new (base) board_header();
  auto* b = new board(base, bytes, workers, half);
  for (int i = 0; i < workers; ++i) {
    new (b->header(i)) slot_header();
  }
  return std::shared_ptr<board>(b);
}

board::board(void* base, std::size_t bytes, int workers, std::size_t half)
    : base_(base), bytes_(bytes), workers_(workers), half_(half) {}

board::~board() { ::munmap(base_, bytes_); }

board::slot_header* board::header(int i) const {
  auto* p = static_cast<char*>(base_) + page + static_cast<std::size_t>(i) * (page + 2 * half_);
  return reinterpret_cast<slot_header*>(p);
}

char* board::buffer(int i, int which) const {
  return reinterpret_cast<char*>(header(i)) + page + static_cast<std::size_t>(which) * half_;
}

bool board::publish(int i, std::string_view snapshot) {
  if (i < 0 || i >= workers_ || snapshot.size() > half_) {
    return false;
  }
  auto* h = header(i);
  // One writer per slot (its worker), so the generation read here is the current one.
  const std::uint64_t next = h->generation.load(std::memory_order_relaxed) + 1;
  const int which = static_cast<int>(next % 2);
  std::memcpy(buffer(i, which), snapshot.data(), snapshot.size());
  h->length[which].store(snapshot.size(), std::memory_order_relaxed);
  h->generation.store(next, std::memory_order_release);
  return true;
}

std::optional<std::string> board::read(int i) const {
  if (i < 0 || i >= workers_) {
    return std::nullopt;
  }
  auto* h = header(i);
  std::string out;
  for (int attempt = 0; attempt < 8; ++attempt) {
    const std::uint64_t g = h->generation.load(std::memory_order_acquire);
    if (g == 0) {
      return std::nullopt;
    }
    const int which = static_cast<int>(g % 2);
    const std::size_t n = h->length[which].load(std::memory_order_relaxed);
    if (n > half_) {
      return std::nullopt;
    }
    out.assign(buffer(i, which), n);
    std::atomic_thread_fence(std::memory_order_acquire);
    // The buffer copied is rewritten only by the publication after next: while the
    // generation has not moved, at most the other buffer was being written.
    if (h->generation.load(std::memory_order_relaxed) == g) {
      return out;
    }
  }
  return std::nullopt;
}

std::uint64_t board::scrapes() const {
  return static_cast<board_header*>(base_)->scrapes.load(std::memory_order_acquire);
}

void board::count_scrape() { static_cast<board_header*>(base_)->scrapes.fetch_add(1, std::memory_order_acq_rel); }

}  // namespace switchyard::metrics
