// Prometheus metrics without a client library: counters, gauges and histograms with labels,
// kept on the loop thread and rendered in the Prometheus text format (0.0.4) or OpenMetrics.
//
// Recording costs no lock and, once a label set has been seen, no allocation: a family
// finds a series by its label values through one hash lookup of a key built in a buffer
// the family reuses; callers that record the same label sets on every request keep the
// returned `series*` (stable for the registry's life) and skip even that.
//
// Cardinality is bounded: a family holds at most `max_series` label sets. Past the cap a
// new label set is not created; its samples go to the family's overflow series, whose every
// label is "__overflow__", and `switchyard_metrics_overflow_total{metric}` counts each
// sample folded there. So the output never grows past (families x cap) series.
//
// Scraping never stalls the loop for long: render_async() formats a bounded number of
// series, then yields to the loop (net::post) before the next chunk; series are stored in
// deques, so a series created meanwhile does not move the others.
// Gauges that mirror other state (queue depth, connections, ...) are set by the hooks
// added with on_scrape(), which run at the start of each render.
//
// A worker group (--num_workers) shares its metrics through snapshots: snapshot() writes a
// registry's families and series in a compact text form, and absorb() adds such snapshots
// into another registry (counters and histograms summed, gauges by their family's
// merge_rule), which then renders the whole group (metrics/board.hpp, docs/observability.md).
//
// Owner: app/ (one per process). Thread: the loop thread only. Never blocks.
#pragma once
#include "switchyard/core/asio.hpp"

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace switchyard::metrics {

enum class metric_type { counter, gauge, histogram };
enum class format { text, openmetrics };
// How a gauge's values from several workers combine: added (connections, queue depths),
// the largest or smallest (a state, a remaining budget), or their mean (a ratio).
// Counters and histograms are always added.
enum class merge_rule { sum, max, min, mean };

class family;

// One label set's value: a counter or gauge value, or a histogram's buckets.
class series {
 public:
  void inc(double v = 1) noexcept { value_ += v; }
  void set(double v) noexcept { value_ = v; }
  void observe(double v) noexcept;  // histograms only
  double value() const noexcept { return value_; }
  std::uint64_t count() const noexcept { return count_; }
  double sum() const noexcept { return value_; }
  // Histograms: observations <= bounds[i] (not cumulative), the last one is +Inf.
  const std::vector<std::uint64_t>& buckets() const noexcept { return buckets_; }
  const std::vector<std::string>& labels() const noexcept { return labels_; }
  // The family's overflow series (label sets past the cap land here). Callers that keep
  // series pointers must not keep this one: each sample folded must go through with(),
  // which counts it.
  bool folded() const noexcept { return folded_; }

 private:
  friend class family;
  friend class registry;  // absorb()
  bool folded_ = false;
  const std::vector<double>* bounds_ = nullptr;
  std::vector<std::string> labels_;
  double value_ = 0;  // counter/gauge value, histogram sum
  std::uint64_t count_ = 0;
  std::vector<std::uint64_t> buckets_;
};

class registry;

class family {
 public:
  family(registry& owner, std::string name, std::string help, metric_type type, std::vector<std::string> label_names,
         std::vector<double> bounds, std::size_t max_series);
  family(const family&) = delete;
  family& operator=(const family&) = delete;

  // The series of these label values (as many as label_names, in that order): created on
  // first use, the overflow series past the cap. Never null.
  series& with(std::span<const std::string_view> values);
  series& with(std::initializer_list<std::string_view> values) {
    return with(std::span<const std::string_view>(values.begin(), values.size()));
  }
  // The series of these values if it exists (no creation, no overflow count).
  series* find(std::span<const std::string_view> values);
  // Forgets every series (label sets that no longer exist, e.g. after a config change).
  void clear();
  // Gauges: how a worker group combines this family's values (sum by default).
  family& merge_by(merge_rule r) {
    merge_ = r;
    return *this;
  }
  merge_rule merge() const { return merge_; }

  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  metric_type type() const { return type_; }
  const std::vector<std::string>& label_names() const { return label_names_; }
  const std::vector<double>& bounds() const { return bounds_; }
  std::size_t size() const { return series_.size(); }
  std::size_t max_series() const { return max_series_; }
  const series& at(std::size_t i) const { return series_[i]; }
  bool has_overflow() const { return overflow_ != nullptr; }

  // Appends series [from, to) (and the header lines when from == 0) to `out`.
  void render(format f, std::size_t from, std::size_t to, std::string& out) const;

 private:
  friend class registry;  // absorb(), finish_absorb()
  struct key_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  void make_key(std::span<const std::string_view> values);
  series& create(std::span<const std::string_view> values);
  void render_series(format f, const series& s, std::string& out) const;

  registry& owner_;
  std::string name_;
  std::string help_;
  metric_type type_;
  merge_rule merge_ = merge_rule::sum;
  std::vector<std::string> label_names_;
  std::vector<double> bounds_;
  std::size_t max_series_;
  std::deque<series> series_;
  std::unordered_map<std::string, series*, key_hash, std::equal_to<>> index_;
  series* overflow_ = nullptr;
  std::string key_;  // reused for every lookup
  series* overflow_counter_ = nullptr;
};

class registry {
 public:
  // `max_series`: the default cap of each family's label sets.
  explicit registry(std::size_t max_series = 1000);
  registry(const registry&) = delete;
  registry& operator=(const registry&) = delete;

  // Names follow Prometheus' rules; counters are named without `_total` (it is added when
  // rendered, as the official clients do). Histograms take their bucket upper bounds
  // (ascending, +Inf implied). `max_series` 0: the registry's default.
  family& counter(std::string name, std::string help, std::vector<std::string> labels = {},
                  std::size_t max_series = 0);
  family& gauge(std::string name, std::string help, std::vector<std::string> labels = {},
                std::size_t max_series = 0);
  family& histogram(std::string name, std::string help, std::vector<std::string> labels, std::vector<double> bounds,
                    std::size_t max_series = 0);

  void on_scrape(std::function<void()> hook) { hooks_.push_back(std::move(hook)); }
  // Hooks for values kept "since the previous scrape" (the loop's largest lag): run after
  // each render, or, in a worker group, when the group was scraped (end_window()).
  void on_window_end(std::function<void()> hook) { window_hooks_.push_back(std::move(hook)); }
  void end_window();

  // Every family and series (the hooks run first), in a form absorb() reads. Families
  // follow one another in registration order.
  std::string snapshot();
  // The same, yielding to the loop every `chunk` series (as render_async does).
  net::awaitable<std::string> snapshot_async(std::size_t chunk = 256);
  // Adds a snapshot's series into this registry: families it lacks are created (same
  // type, labels and buckets, no series cap); a family whose type, labels or buckets
  // differ from this registry's is skipped. `counters_only`: gauges are skipped (the
  // counts a worker that died leaves to its replacement). Stops at the first malformed
  // line; returns false then. Call finish_absorb() after the last one.
  bool absorb(std::string_view snap, bool counters_only = false);
  // absorb() in steps: reads at most `max_series` series lines from the front of `rest`
  // (which it advances); `state` carries the family being read from one step to the next.
  struct absorb_state {
    family* fam = nullptr;
    bool in_family = false;
    bool skip = true;
  };
  bool absorb_some(std::string_view& rest, absorb_state& state, bool counters_only, std::size_t max_series);
  // Completes mean gauges (their sums become means) after a series of absorb().
  void finish_absorb();

  // The whole exposition at once (tests, small registries).
  std::string render(format f);
  // The same, yielding to the loop every `chunk` series.
  net::awaitable<std::string> render_async(format f, std::size_t chunk = 256);

  std::size_t series_count() const;
  const std::vector<std::unique_ptr<family>>& families() const { return families_; }
  family* find(std::string_view name) const;

 private:
  friend class family;
  family& add(std::string name, std::string help, metric_type t, std::vector<std::string> labels,
              std::vector<double> bounds, std::size_t max_series);
  void run_hooks();

  std::size_t default_max_series_;
  std::vector<std::unique_ptr<family>> families_;
  std::vector<std::function<void()>> hooks_;
  std::vector<std::function<void()>> window_hooks_;
  family* overflow_ = nullptr;  // switchyard_metrics_overflow{metric}
};

// "text/plain; version=0.0.4; charset=utf-8" or OpenMetrics' content type.
const char* content_type(format f);
// OpenMetrics when the Accept header asks for application/openmetrics-text.
format format_for_accept(std::string_view accept);

}  // namespace switchyard::metrics
