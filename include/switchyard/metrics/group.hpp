// One worker's side of a --num_workers group's metrics (docs/observability.md, "Several
// workers"): it publishes its registry to its board slot every second, and answers a
// scrape with the whole group's metrics, whichever worker the scrape reached.
//
// - Counters and histograms are the sums over the workers; gauges combine by their
//   family's merge_rule (connections add up, a deployment's state is the worst one, ...).
// - Counters never go back: the worker answering a scrape publishes what it shows before
//   it answers, so a later scrape through another worker reads at least that; a worker
//   started in place of one that died carries the counters and histograms its
//   predecessor last published. What a dead worker counted after its last publication
//   (at most one interval) is lost, as the requests it held are.
// - Other workers' values are at most one interval old.
//
// Owner: app/ (one per worker). Thread: the loop thread only.
#pragma once
#include "switchyard/core/asio.hpp"
#include "switchyard/metrics/board.hpp"
#include "switchyard/metrics/registry.hpp"

#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

namespace switchyard::metrics {

class group_view {
 public:
  group_view(net::any_io_executor ex, registry& reg, std::shared_ptr<board> b, int index,
             std::chrono::milliseconds interval = std::chrono::seconds(1));
  ~group_view();
  group_view(const group_view&) = delete;
  group_view& operator=(const group_view&) = delete;

  // Takes over what this slot's previous worker published, then publishes every interval
  // until stop().
  void start();
  void stop();
  // Publishes this worker's registry now (in chunks: the loop runs between them).
  net::awaitable<void> publish();
  // The group's exposition: this worker's values now, the others' last published ones.
  net::awaitable<std::string> render(format f);

  // The carried-over counters of a predecessor (empty when none).
  const std::string& inherited() const { return base_; }

 private:
  net::awaitable<void> run();

  net::steady_timer timer_;
  registry& reg_;
  std::shared_ptr<board> board_;
  int index_;
  std::chrono::milliseconds interval_;
  std::string base_;
  std::string last_;  // what the board holds for this worker
  // Publications overlap (the interval's and a scrape's, each yielding): one begun
  // before the last one put in the board is dropped, so the board never goes back.
  std::uint64_t begun_ = 0;
  std::uint64_t published_ = 0;
  std::uint64_t seen_scrapes_ = 0;
  bool stopped_ = true;
  bool warned_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace switchyard::metrics
