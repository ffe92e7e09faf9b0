// The metrics registry: the exposition formats, histogram buckets, the cardinality cap and
// its overflow series, and the chunked render matching the whole one.
#include "switchyard/metrics/loop_lag.hpp"
#include "switchyard/metrics/registry.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <gtest/gtest.h>

#include <optional>
#include <string>

namespace {

namespace metrics = switchyard::metrics;
using switchyard::net::io_context;

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

TEST(registry, counter_text_format_has_total_suffix_and_escaped_labels) {
  metrics::registry r;
  auto& c = r.counter("litellm_spend_metric", "Total spend", {"team", "alias"});
  c.with({"t1", "a \"quoted\" \\ name\nx"}).inc(1.5);
  c.with({"t1", "a \"quoted\" \\ name\nx"}).inc(2);
  c.with({"t2", ""}).inc();
  auto out = r.render(metrics::format::text);
  EXPECT_TRUE(contains(out, "# HELP litellm_spend_metric_total Total spend\n")) << out;
  EXPECT_TRUE(contains(out, "# TYPE litellm_spend_metric_total counter\n")) << out;
  EXPECT_TRUE(contains(out, "litellm_spend_metric_total{team=\"t1\",alias=\"a \\\"quoted\\\" \\\\ name\\nx\"} 3.5\n"))
      << out;
  EXPECT_TRUE(contains(out, "litellm_spend_metric_total{team=\"t2\",alias=\"\"} 1\n")) << out;
  EXPECT_FALSE(contains(out, "# EOF"));
}

TEST(registry, openmetrics_names_counter_families_without_total_and_ends_with_eof) {
  metrics::registry r;
  r.counter("requests", "n").with({}).inc();
  auto out = r.render(metrics::format::openmetrics);
  EXPECT_TRUE(contains(out, "# TYPE requests counter\n")) << out;
  EXPECT_TRUE(contains(out, "requests_total 1\n")) << out;
  EXPECT_TRUE(out.ends_with("# EOF\n")) << out;
}

TEST(registry, histogram_buckets_are_cumulative_with_sum_and_count) {
  metrics::registry r;
  auto& h = r.histogram("lat_seconds", "latency", {"m"}, {0.5, 1, 10});
  auto& s = h.with({"x"});
  s.observe(0.25);
  s.observe(0.5);  // on the bound: counted in le="0.5"
  s.observe(5);
  s.observe(100);
  auto out = r.render(metrics::format::text);
  EXPECT_TRUE(contains(out, "lat_seconds_bucket{m=\"x\",le=\"0.5\"} 2\n")) << out;
  EXPECT_TRUE(contains(out, "lat_seconds_bucket{m=\"x\",le=\"1\"} 2\n")) << out;
  EXPECT_TRUE(contains(out, "lat_seconds_bucket{m=\"x\",le=\"10\"} 3\n")) << out;
  EXPECT_TRUE(contains(out, "lat_seconds_bucket{m=\"x\",le=\"+Inf\"} 4\n")) << out;
  EXPECT_TRUE(contains(out, "lat_seconds_sum{m=\"x\"} 105.75\n")) << out;
  EXPECT_TRUE(contains(out, "lat_seconds_count{m=\"x\"} 4\n")) << out;
  EXPECT_EQ(s.count(), 4u);
}

TEST(registry, same_labels_give_the_same_series) {
  metrics::registry r;
  auto& c = r.counter("c", "c", {"a", "b"});
  // "a|b" vs "a" "|b": the separator keeps label boundaries apart.
  auto* one = &c.with({"x", "yz"});
  EXPECT_EQ(one, &c.with({"x", "yz"}));
  EXPECT_NE(one, &c.with({"xy", "z"}));
  EXPECT_EQ(c.find(std::array<std::string_view, 2>{"x", "yz"}), one);
  EXPECT_EQ(c.find(std::array<std::string_view, 2>{"q", "q"}), nullptr);
}

TEST(registry, label_sets_past_the_cap_fold_into_the_overflow_series_and_are_counted) {
  metrics::registry r(3);
  auto& c = r.counter("per_key", "per key", {"key"});
  c.with({"k1"}).inc();
  c.with({"k2"}).inc();
  c.with({"k3"}).inc();
  c.with({"k4"}).inc();
  c.with({"k5"}).inc(2);
  c.with({"k1"}).inc();  // an existing one still has its own series
  EXPECT_EQ(c.size(), 4u);  // three label sets and the overflow series
  auto out = r.render(metrics::format::text);
  EXPECT_TRUE(contains(out, "per_key_total{key=\"k1\"} 2\n")) << out;
  EXPECT_TRUE(contains(out, "per_key_total{key=\"__overflow__\"} 3\n")) << out;
  EXPECT_FALSE(contains(out, "k4")) << out;
  EXPECT_TRUE(contains(out, "switchyard_metrics_overflow_total{metric=\"per_key\"} 2\n")) << out;
  for (int i = 0; i < 100; ++i) {
    c.with({std::to_string(i)}).inc();
  }
  EXPECT_EQ(c.size(), 4u);
  // Only the overflow series says it is one (holders of series pointers must not keep it).
  EXPECT_TRUE(c.with({"k6"}).folded());
  EXPECT_FALSE(c.with({"k1"}).folded());
}

TEST(registry, scrape_hooks_set_gauges_before_rendering) {
  metrics::registry r;
  auto& g = r.gauge("queue_rows", "rows").with({});
  int depth = 7;
  r.on_scrape([&] { g.set(depth); });
  EXPECT_TRUE(contains(r.render(metrics::format::text), "queue_rows 7\n"));
  depth = 9;
  EXPECT_TRUE(contains(r.render(metrics::format::text), "queue_rows 9\n"));
}

TEST(registry, bad_names_and_duplicates_are_refused) {
  metrics::registry r;
  EXPECT_THROW(r.counter("9lives", "x"), std::invalid_argument);
  EXPECT_THROW(r.counter("has-dash", "x"), std::invalid_argument);
  EXPECT_THROW(r.counter("ok", "x", {"le"}), std::invalid_argument);
  EXPECT_THROW(r.histogram("h", "x", {}, {2, 1}), std::invalid_argument);
  r.counter("twice", "x");
  EXPECT_THROW(r.counter("twice", "x"), std::invalid_argument);
}

TEST(registry, chunked_render_equals_the_whole_render_and_yields_between_chunks) {
  metrics::registry r;
  auto& c = r.counter("many", "m", {"i"});
  auto& h = r.histogram("hist", "h", {"i"}, {1, 2});
  for (int i = 0; i < 50; ++i) {
    c.with({std::to_string(i)}).inc(i);
    h.with({std::to_string(i)}).observe(i % 3);
  }
  const auto whole = r.render(metrics::format::openmetrics);
  io_context ioc;
  std::optional<std::string> chunked;
  int other_work = 0;
  switchyard::net::co_spawn(ioc, r.render_async(metrics::format::openmetrics, 7),
                            [&](std::exception_ptr e, std::string s) {
                              ASSERT_FALSE(e);
                              chunked = std::move(s);
                            });
  // Work queued after the render started runs before it ends: the render yields.
  switchyard::net::post(ioc, [&] { other_work = chunked ? 2 : 1; });
  ioc.run();
  ASSERT_TRUE(chunked);
  EXPECT_EQ(*chunked, whole);
  EXPECT_EQ(other_work, 1);
}

TEST(loop_lag, samples_go_to_the_histogram_and_the_max_gauge_resets_at_scrape) {
  io_context ioc;
  metrics::registry r;
  metrics::loop_lag_probe probe(ioc.get_executor(), r);
  probe.record(std::chrono::milliseconds(3));
  probe.record(std::chrono::milliseconds(40));
  auto out = r.render(metrics::format::text);
  EXPECT_TRUE(contains(out, "switchyard_event_loop_lag_seconds_count 2\n")) << out;
  EXPECT_TRUE(contains(out, "switchyard_event_loop_lag_seconds_bucket{le=\"0.005\"} 1\n")) << out;
  EXPECT_TRUE(contains(out, "switchyard_event_loop_lag_max_seconds 0.04\n")) << out;
  out = r.render(metrics::format::text);
  EXPECT_TRUE(contains(out, "switchyard_event_loop_lag_max_seconds 0\n")) << out;
}

}  // namespace
