// A worker group's metrics: registry snapshots read back exactly, their merge rules, the
// shared board (between processes, and a publication cut short), and the group view's
// promises: every worker's counts in any worker's scrape, counters that never go back
// (a scrape, a worker replaced), and windows that end when the group was scraped.
#include "switchyard/metrics/board.hpp"
#include "switchyard/metrics/group.hpp"
#include "switchyard/metrics/loop_lag.hpp"
#include "switchyard/metrics/registry.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <optional>
#include <string>

namespace {

namespace metrics = switchyard::metrics;
using switchyard::net::io_context;

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// Runs the loop until `g` published (the interval's publication, done by hand here).
void publish(io_context& ioc, metrics::group_view& g) {
  bool done = false;
  switchyard::net::co_spawn(ioc, g.publish(), [&](std::exception_ptr e) {
    ASSERT_FALSE(e);
    done = true;
  });
  ioc.restart();
  while (!done && ioc.run_one() > 0) {
  }
}

std::string render_group(io_context& ioc, metrics::group_view& g, metrics::format f = metrics::format::text) {
  std::optional<std::string> out;
  switchyard::net::co_spawn(ioc, g.render(f), [&](std::exception_ptr e, std::string s) {
    ASSERT_FALSE(e);
    out = std::move(s);
  });
  ioc.restart();
  while (!out && ioc.run_one() > 0) {
  }
  return out.value_or("");
}

TEST(snapshot, reads_back_into_the_same_exposition) {
  metrics::registry a;
  a.counter("calls", "Calls, with \"quotes\"\tand a tab", {"model", "team"})
      .with({"gpt\t4\\o", "t\n1"})
      .inc(0.1 + 0.2);  // a double whose shortest form has 17 digits
  a.gauge("depth", "Depth").with({}).set(-3.5);
  auto& h = a.histogram("lat_seconds", "Latency", {"m"}, {0.005, 0.1, 1});
  h.with({"x"}).observe(0.004);
  h.with({"x"}).observe(7);
  metrics::registry b;
  ASSERT_TRUE(b.absorb(a.snapshot()));
  b.finish_absorb();
  EXPECT_EQ(b.render(metrics::format::text), a.render(metrics::format::text));
  EXPECT_EQ(b.render(metrics::format::openmetrics), a.render(metrics::format::openmetrics));
}

TEST(snapshot, counters_and_histograms_add_up_and_gauges_follow_their_rule) {
  auto worker = [](double calls, double conns, double state, double budget, double ratio, double lat) {
    auto r = std::make_unique<metrics::registry>();
    r->counter("calls", "c", {"m"}).with({"a"}).inc(calls);
    r->gauge("conns", "sum by default").with({}).set(conns);
    r->gauge("state", "worst", {"d"}).merge_by(metrics::merge_rule::max).with({"d"}).set(state);
    r->gauge("budget", "lowest").merge_by(metrics::merge_rule::min).with({}).set(budget);
    r->gauge("ratio", "mean").merge_by(metrics::merge_rule::mean).with({}).set(ratio);
    r->histogram("lat", "h", {}, {1}).with({}).observe(lat);
    return r;
  };
  auto w1 = worker(3, 10, 0, 5, 0.5, 0.5);
  auto w2 = worker(4, 7, 2, -1, 1.0, 3);
  metrics::registry merged(1u << 20);
  ASSERT_TRUE(merged.absorb(w1->snapshot()));
  ASSERT_TRUE(merged.absorb(w2->snapshot()));
  merged.finish_absorb();
  const auto out = merged.render(metrics::format::text);
  EXPECT_TRUE(contains(out, "calls_total{m=\"a\"} 7\n")) << out;
  EXPECT_TRUE(contains(out, "conns 17\n")) << out;
  EXPECT_TRUE(contains(out, "state{d=\"d\"} 2\n")) << out;
  EXPECT_TRUE(contains(out, "budget -1\n")) << out;
  EXPECT_TRUE(contains(out, "ratio 0.75\n")) << out;
  EXPECT_TRUE(contains(out, "lat_bucket{le=\"1\"} 1\n")) << out;
  EXPECT_TRUE(contains(out, "lat_bucket{le=\"+Inf\"} 2\n")) << out;
  EXPECT_TRUE(contains(out, "lat_sum 3.5\n")) << out;
  EXPECT_TRUE(contains(out, "lat_count 2\n")) << out;

  // counters_only: a predecessor's gauges describe a process that is gone.
  metrics::registry carried(1u << 20);
  ASSERT_TRUE(carried.absorb(w2->snapshot(), true));
  carried.finish_absorb();
  const auto only = carried.render(metrics::format::text);
  EXPECT_TRUE(contains(only, "calls_total{m=\"a\"} 4\n")) << only;
  EXPECT_TRUE(contains(only, "lat_count 1\n")) << only;
  EXPECT_FALSE(contains(only, "conns ")) << only;
}

TEST(snapshot, a_family_that_differs_is_skipped_and_garbage_is_refused) {
  metrics::registry a;
  a.counter("calls", "c", {"m"}).with({"x"}).inc(2);
  a.counter("other", "o").with({}).inc(1);
  metrics::registry b;
  b.counter("calls", "c", {"model"});  // other label names: not the same metric
  ASSERT_TRUE(b.absorb(a.snapshot()));
  const auto out = b.render(metrics::format::text);
  EXPECT_FALSE(contains(out, "calls_total{")) << out;
  EXPECT_TRUE(contains(out, "other_total 1\n")) << out;

  const auto snap = a.snapshot();
  for (const std::string& bad : {snap.substr(0, snap.size() - 1), std::string("S\t1\t0\t\tx\n"),
                                std::string("F\tc\ts\tcalls\tm\t\tc\nS\tone\t0\t\tx\n"),
                                std::string("F\tc\ts\tbad name\t\t\th\n"), std::string("Q\n")}) {
    metrics::registry c;
    EXPECT_FALSE(c.absorb(bad)) << bad;
  }
}

TEST(board, a_snapshot_published_in_one_process_is_read_in_another) {
  auto b = metrics::board::create(2, 1000);
  ASSERT_TRUE(b);
  EXPECT_FALSE(b->read(0));
  EXPECT_FALSE(b->publish(0, std::string(b->capacity() + 1, 'x')));
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    const bool ok = b->publish(1, "from the child") && b->publish(1, "from the child, again");
    b->count_scrape();
    std::_Exit(ok ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_EQ(b->read(1).value_or(""), "from the child, again");
  EXPECT_FALSE(b->read(0));
  EXPECT_EQ(b->scrapes(), 1u);
}

TEST(board, a_board_of_no_worker_or_no_room_is_refused_with_the_reason) {
  std::string error;
  EXPECT_FALSE(metrics::board::create(0, 1000, &error));
  EXPECT_FALSE(error.empty());
  error.clear();
  EXPECT_FALSE(metrics::board::create(2, 0, &error));
  EXPECT_FALSE(error.empty());
  auto b = metrics::board::create(1, 10);
  ASSERT_TRUE(b);
  EXPECT_FALSE(b->publish(1, "x"));  // no such slot
  EXPECT_FALSE(b->publish(-1, "x"));
  EXPECT_FALSE(b->read(5));
}

TEST(board, a_process_killed_while_publishing_leaves_the_previous_snapshot_whole) {
  auto b = metrics::board::create(1, 1 << 20);
  ASSERT_TRUE(b);
  ASSERT_TRUE(b->publish(0, std::string(1000, 'a')));
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    const std::string big(1 << 20, 'b');
    (void)::write(ready[1], "x", 1);
    for (;;) {  // publishes until killed: the kill lands at any point of a publication
      b->publish(0, big);
      b->publish(0, std::string(999, 'c'));
    }
  }
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  ::close(ready[0]);
  ::close(ready[1]);
  const auto left = b->read(0);
  ASSERT_TRUE(left);
  // Whole: one of the snapshots published, never a mix of two.
  const bool whole = *left == std::string(1000, 'a') || *left == std::string(1 << 20, 'b') ||
                     *left == std::string(999, 'c');
  EXPECT_TRUE(whole) << left->size();
}

struct worker {
  worker(io_context& ioc, std::shared_ptr<metrics::board> b, int index)
      : calls(reg.counter("calls", "c", {"m"})),
        conns(reg.gauge("conns", "c").with({})),
        group(ioc.get_executor(), reg, std::move(b), index, std::chrono::hours(1)) {}
  metrics::registry reg;
  metrics::family& calls;
  metrics::series& conns;
  metrics::group_view group;
};

TEST(group_view, any_worker_answers_for_all_and_counters_never_go_back) {
  io_context ioc;
  auto b = metrics::board::create(2, 1 << 20);
  ASSERT_TRUE(b);
  worker w0(ioc, b, 0);
  worker w1(ioc, b, 1);
  w0.group.start();
  w1.group.start();
  w0.calls.with({"a"}).inc(3);
  w0.conns.set(2);
  w1.calls.with({"a"}).inc(4);
  w1.calls.with({"b"}).inc(1);
  w1.conns.set(5);
  publish(ioc, w1.group);  // the interval's publication
  auto out = render_group(ioc, w0.group);
  EXPECT_TRUE(contains(out, "calls_total{m=\"a\"} 7\n")) << out;
  EXPECT_TRUE(contains(out, "calls_total{m=\"b\"} 1\n")) << out;
  EXPECT_TRUE(contains(out, "conns 7\n")) << out;

  // w0 counted more and showed it; a scrape through w1 before w0's next interval still
  // shows it (w0 published what it showed).
  w0.calls.with({"a"}).inc(10);
  out = render_group(ioc, w0.group);
  EXPECT_TRUE(contains(out, "calls_total{m=\"a\"} 17\n")) << out;
  out = render_group(ioc, w1.group);
  EXPECT_TRUE(contains(out, "calls_total{m=\"a\"} 17\n")) << out;
  EXPECT_TRUE(contains(out, "# TYPE calls_total counter\n")) << out;
  const auto om = render_group(ioc, w1.group, metrics::format::openmetrics);
  EXPECT_TRUE(om.ends_with("# EOF\n")) << om;
}

TEST(group_view, a_replaced_worker_carries_its_predecessors_counters_not_its_gauges) {
  io_context ioc;
  auto b = metrics::board::create(2, 1 << 20);
  ASSERT_TRUE(b);
  worker w0(ioc, b, 0);
  w0.group.start();
  {
    worker w1(ioc, b, 1);
    w1.group.start();
    w1.calls.with({"a"}).inc(4);
    w1.conns.set(9);
    publish(ioc, w1.group);
    w1.calls.with({"a"}).inc(100);  // counted after its last publication: lost with it
  }  // destroyed with its interval's wait pending
  worker again(ioc, b, 1);
  again.group.start();
  EXPECT_FALSE(again.group.inherited().empty());
  again.calls.with({"a"}).inc(1);
  again.conns.set(1);
  publish(ioc, again.group);
  auto out = render_group(ioc, w0.group);
  EXPECT_TRUE(contains(out, "calls_total{m=\"a\"} 5\n")) << out;
  EXPECT_TRUE(contains(out, "conns 1\n")) << out;

  // And once more: the carried counts chain through replacements.
  worker third(ioc, b, 1);
  third.group.start();
  out = render_group(ioc, w0.group);
  EXPECT_TRUE(contains(out, "calls_total{m=\"a\"} 5\n")) << out;
}

TEST(group_view, a_window_ends_when_the_group_was_scraped_not_at_each_publication) {
  io_context ioc;
  auto b = metrics::board::create(2, 1 << 20);
  ASSERT_TRUE(b);
  metrics::registry r0;
  metrics::registry r1;
  metrics::loop_lag_probe lag0(ioc.get_executor(), r0);
  metrics::loop_lag_probe lag1(ioc.get_executor(), r1);
  metrics::group_view g0(ioc.get_executor(), r0, b, 0, std::chrono::hours(1));
  metrics::group_view g1(ioc.get_executor(), r1, b, 1, std::chrono::hours(1));
  g0.start();
  g1.start();
  lag1.record(std::chrono::milliseconds(40));
  publish(ioc, g1);
  publish(ioc, g1);  // publications alone keep the window
  auto out = render_group(ioc, g0);
  EXPECT_TRUE(contains(out, "switchyard_event_loop_lag_max_seconds 0.04\n")) << out;
  publish(ioc, g1);  // w1 sees the scrape: its window starts again
  out = render_group(ioc, g0);
  EXPECT_TRUE(contains(out, "switchyard_event_loop_lag_max_seconds 0\n")) << out;
  EXPECT_TRUE(contains(out, "switchyard_event_loop_lag_seconds_count 1\n")) << out;
}

}  // namespace
