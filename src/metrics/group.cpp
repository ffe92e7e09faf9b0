#include "switchyard/metrics/group.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include <limits>

namespace switchyard::metrics {

namespace {
// A merged registry holds every worker's label sets: no cap of its own (each worker's
// registry is capped already).
constexpr std::size_t uncapped = std::numeric_limits<std::size_t>::max() / 2;
// Series read or written per turn of the loop.
constexpr std::size_t chunk = 256;
}  // namespace

group_view::group_view(net::any_io_executor ex, registry& reg, std::shared_ptr<board> b, int index,
                       std::chrono::milliseconds interval)
    : timer_(ex), reg_(reg), board_(std::move(b)), index_(index), interval_(interval) {}

void group_view::start() {
  if (auto previous = board_->read(index_)) {
    // A worker that died left its counts: carried over, so the group's counters do not
    // drop (Prometheus would take a drop for a reset). Its gauges described that process.
    // Once, at start: the only unchunked merge.
    registry carried(uncapped);
    if (carried.absorb(*previous, /*counters_only=*/true)) {
      carried.finish_absorb();
      base_ = carried.snapshot();
    } else {
      spdlog::warn("metrics: the previous snapshot of worker {} is unreadable; its counts are not carried over", index_);
    }
  }
  seen_scrapes_ = board_->scrapes();
  stopped_ = false;
  net::co_spawn(timer_.get_executor(), run(), net::detached);
}

void group_view::stop() {
  stopped_ = true;
  timer_.cancel();
}

group_view::~group_view() { *alive_ = false; }

net::awaitable<void> group_view::run() {
  // The frame keeps its own reference to the flag: the view may be gone when the
  // cancelled wait completes.
  const auto alive = alive_;
  while (*alive && !stopped_) {
    co_await publish();
    if (!*alive || stopped_) {
      break;
    }
    timer_.expires_after(interval_);
    boost::system::error_code ec;
    co_await timer_.async_wait(net::redirect_error(net::use_awaitable, ec));
  }
}

net::awaitable<void> group_view::publish() {
  const std::uint64_t mine = ++begun_;
  // A scrape read the slot since the previous publication: the values kept "since the
  // previous scrape" start again.
  if (const auto s = board_->scrapes(); s != seen_scrapes_) {
    seen_scrapes_ = s;
    reg_.end_window();
  }
  std::string snap = co_await reg_.snapshot_async(chunk);
  if (mine < published_) {
    co_return;  // a later-begun publication is in the board already
  }
  // A predecessor's counts follow this worker's own: a reader adds a family met twice.
  snap += base_;
  if (!board_->publish(index_, snap)) {
    if (!warned_) {
      warned_ = true;
      spdlog::warn("metrics: worker {}'s snapshot ({} bytes) is larger than its board slot ({} bytes); the other "
                   "workers' /metrics show its last smaller one",
                   index_, snap.size(), board_->capacity());
    }
    co_return;
  }
  published_ = mine;
  last_ = std::move(snap);
}

net::awaitable<std::string> group_view::render(format f) {
  auto ex = co_await net::this_coro::executor;
  co_await publish();
  registry merged(uncapped);
  for (int i = 0; i < board_->size(); ++i) {
    std::optional<std::string> snap = i == index_ ? std::optional<std::string>(last_) : board_->read(i);
    if (!snap) {
      continue;
    }
    std::string_view rest = *snap;
    registry::absorb_state state;
    bool ok = true;
    while (ok && !rest.empty()) {
      ok = merged.absorb_some(rest, state, false, chunk);
      co_await net::post(ex, net::use_awaitable);
    }
    if (!ok) {
      spdlog::warn("metrics: worker {}'s snapshot is unreadable; this scrape shows part of it", i);
    }
  }
  merged.finish_absorb();
  board_->count_scrape();
  co_return co_await merged.render_async(f);
}

}  // namespace switchyard::metrics
