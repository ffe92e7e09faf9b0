// Config reload in the router: which deployments count as unchanged, and which per-deployment
// state (cooldowns, latency samples, in-flight counts, usage) survives the swap.
#include "switchyard/router/router.hpp"

#include <gtest/gtest.h>

#include <algorithm>

using namespace switchyard;

namespace {

config::deployment dep(std::string group, std::string id, std::string api_base = "http://a") {
  config::deployment d;
  d.model_name = std::move(group);
  d.id = std::move(id);
  d.model = "openai/x";
  d.upstream_model = "x";
  d.api_base = api_base;
  d.litellm_params = {{"model", "openai/x"}, {"api_base", api_base}};
  return d;
}

std::shared_ptr<config::config> with(std::vector<config::deployment> deps) {
  auto c = std::make_shared<config::config>();
  c->model_list = std::move(deps);
  return c;
}

core::error rate_limited() {
  auto e = core::make_error(core::errc::upstream_error, "slow down");
  e.status = 429;
  return e;
}

bool has(const std::vector<std::string>& v, const std::string& s) { return std::find(v.begin(), v.end(), s) != v.end(); }

}  // namespace

TEST(router_reload, diff_sorts_deployments_by_identity_and_content) {
  auto before = with({dep("g", "same"), dep("g", "edited"), dep("h", "gone")});
  auto after = with({dep("g", "same"), dep("g", "edited", "http://b"), dep("k", "new")});
  auto d = router::diff_deployments(*before, *after);
  EXPECT_EQ(d.unchanged, std::vector<std::string>{"same"});
  EXPECT_EQ(d.changed, std::vector<std::string>{"edited"});
  EXPECT_EQ(d.added, std::vector<std::string>{"new"});
  EXPECT_EQ(d.removed, std::vector<std::string>{"gone"});
}

TEST(router_reload, moving_a_deployment_to_another_group_is_a_change) {
  auto before = with({dep("g", "x")});
  auto after = with({dep("h", "x")});
  auto d = router::diff_deployments(*before, *after);
  EXPECT_TRUE(d.unchanged.empty());
  EXPECT_EQ(d.changed, std::vector<std::string>{"x"});
}

TEST(router_reload, model_info_edits_are_changes_and_order_is_not) {
  auto a = dep("g", "x");
  auto b = dep("g", "y");
  auto before = with({a, b});
  auto after = with({b, a});
  EXPECT_EQ(router::diff_deployments(*before, *after).unchanged.size(), 2u);
  auto a2 = a;
  a2.model_info = {{"mode", "embedding"}};
  auto d = router::diff_deployments(*before, *with({a2, b}));
  EXPECT_EQ(d.changed, std::vector<std::string>{"x"});
}

TEST(router_reload, cooldown_of_an_unchanged_deployment_survives) {
  auto before = with({dep("g", "keep"), dep("g", "edit"), dep("g", "drop")});
  router::router r(before);
  for (const auto& d : before->model_list) {
    ASSERT_TRUE(r.on_failure(d, "g", rate_limited()));  // a 429 in a group of 3 cools at once
  }
  const auto now = std::chrono::steady_clock::now();
  ASSERT_TRUE(r.cooldown_state().is_cooled("keep", now));

  auto after = with({dep("g", "keep"), dep("g", "edit", "http://elsewhere"), dep("g", "fresh")});
  auto diff = r.reload(after);
  EXPECT_TRUE(has(diff.unchanged, "keep"));
  EXPECT_TRUE(r.cooldown_state().is_cooled("keep", now));
  EXPECT_FALSE(r.cooldown_state().is_cooled("edit", now));
  EXPECT_FALSE(r.cooldown_state().is_cooled("drop", now));
  // The router now picks among the new deployments only, never the cooled one.
  for (int i = 0; i < 50; ++i) {
    auto p = r.pick("g", "/chat/completions");
    ASSERT_TRUE(p);
    EXPECT_TRUE((*p)->id == "edit" || (*p)->id == "fresh") << (*p)->id;
  }
}

TEST(router_reload, new_groups_resolve_and_removed_ones_do_not) {
  router::router r(with({dep("old", "o")}));
  ASSERT_TRUE(r.pick("old", "/x"));
  r.reload(with({dep("new", "n")}));
  EXPECT_TRUE(r.pick("new", "/x"));
  auto gone = r.pick("old", "/x");
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().status, 400);
  EXPECT_EQ(r.public_models(), std::vector<std::string>{"new"});
}

TEST(router_reload, a_deployment_handed_out_outlives_the_swap) {
  auto before = with({dep("g", "a")});
  router::router r(before);
  auto held = r.pick("g", "/x");
  ASSERT_TRUE(held);
  std::weak_ptr<config::config> watch = before;
  before.reset();
  r.reload(with({dep("g", "b")}));
  EXPECT_FALSE(watch.expired());  // the request still holds the old config
  EXPECT_EQ((*held)->id, "a");
  held = r.pick("g", "/x");
  EXPECT_TRUE(watch.expired());
}

TEST(router_reload, in_flight_counts_survive_even_for_removed_deployments) {
  auto a = dep("g", "a");
  a.max_parallel_requests = 1;
  router::router r(with({a}));
  {
    auto busy = r.track(a);
    EXPECT_EQ(r.in_flight_count("a"), 1);
    r.reload(with({a}));
    EXPECT_EQ(r.in_flight_count("a"), 1);
    auto full = r.pick("g", "/x");
    EXPECT_FALSE(full);  // still at max_parallel_requests after the reload
    r.reload(with({dep("g", "b")}));
    EXPECT_EQ(r.in_flight_count("a"), 1);
  }
  EXPECT_EQ(r.in_flight_count("a"), 0);  // the attempt ended after the swap
}

TEST(router_reload, new_router_settings_apply) {
  auto before = with({dep("g", "a")});
  router::router r(before);
  EXPECT_EQ(r.routing_strategy(), router::strategy::simple_shuffle);
  auto after = with({dep("g", "a")});
  after->router.routing_strategy = "least-busy";
  after->router.cooldown_time = 42;
  r.reload(after);
  EXPECT_EQ(r.routing_strategy(), router::strategy::least_busy);
  EXPECT_DOUBLE_EQ(r.cooldown_state().settings().cooldown_time_s, 42.0);
}
