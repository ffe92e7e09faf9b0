#include "switchyard/router/router.hpp"

#include "switchyard/router/policy.hpp"
#include "switchyard/router/redis_cooldown_sync.hpp"
#include "switchyard/store/redis/redis_client.hpp"

#include <gtest/gtest.h>

#include <limits>

#include <climits>
#include <map>

using namespace switchyard;

namespace {
config::deployment dep(std::string group, std::string id, std::optional<double> weight = {}) {
  config::deployment d;
  d.model_name = std::move(group);
  d.id = std::move(id);
  d.model = "openai/x";
  d.upstream_model = "x";
  d.weight = weight;
  return d;
}
}  // namespace

TEST(router, unknown_model_is_400_naming_it) {
  auto cfg = std::make_shared<config::config>();
  cfg->model_list.push_back(dep("a", "a1"));
  router::router r(cfg);
  auto res = r.pick("nope", "/chat/completions");
  ASSERT_FALSE(res);
  EXPECT_EQ(res.error().status, 400);
  EXPECT_EQ(res.error().type, "invalid_request_error");
  EXPECT_NE(res.error().message.find("model=nope"), std::string::npos);
  EXPECT_NE(res.error().message.find("/v1/models"), std::string::npos);
}

TEST(router, weighted_shuffle_follows_weights) {
  auto cfg = std::make_shared<config::config>();
  cfg->model_list.push_back(dep("g", "light", 1));
  cfg->model_list.push_back(dep("g", "heavy", 3));
  router::router r(cfg);
  std::map<std::string, int> n;
  for (int i = 0; i < 8000; ++i) {
    auto d = r.pick("g", "/chat/completions");
    ASSERT_TRUE(d);
    n[(*d)->id]++;
  }
  double heavy = n["heavy"] / 8000.0;
  EXPECT_NEAR(heavy, 0.75, 0.03);
}

TEST(router, uniform_without_weights) {
  auto cfg = std::make_shared<config::config>();
  cfg->model_list.push_back(dep("g", "a"));
  cfg->model_list.push_back(dep("g", "b"));
  router::router r(cfg);
  std::map<std::string, int> n;
  for (int i = 0; i < 4000; ++i) {
    n[(*r.pick("g", "/x"))->id]++;
  }
  EXPECT_NEAR(n["a"] / 4000.0, 0.5, 0.05);
}

TEST(router, aliases_resolve_and_hidden_ones_are_not_listed) {
  auto cfg = std::make_shared<config::config>();
  cfg->model_list.push_back(dep("gpt-4o", "a"));
  cfg->router.model_group_alias = {{"gpt-4", "gpt-4o"}, {"secret", {{"model", "gpt-4o"}, {"hidden", true}}}};
  router::router r(cfg);
  EXPECT_EQ((*r.pick("gpt-4", "/x"))->id, "a");
  EXPECT_EQ((*r.pick("secret", "/x"))->id, "a");
  auto names = r.public_models();
  EXPECT_NE(std::find(names.begin(), names.end(), "gpt-4"), names.end());
  EXPECT_EQ(std::find(names.begin(), names.end(), "secret"), names.end());
}

// ---------------------------------------------------------------- strategies

namespace {
std::shared_ptr<config::config> two(std::optional<double> w1, std::optional<double> w2) {
  auto cfg = std::make_shared<config::config>();
  cfg->model_list.push_back(dep("g", "a", w1));
  cfg->model_list.push_back(dep("g", "b", w2));
  return cfg;
}
}  // namespace

TEST(router, weights_1_to_3_over_4000_picks_within_3_points) {
  router::router r(two(1, 3));
  int b = 0;
  for (int i = 0; i < 4000; ++i) {
    b += (*r.pick("g", "/x"))->id == "b" ? 1 : 0;
  }
  EXPECT_NEAR(b / 4000.0, 0.75, 0.03);
}

TEST(router, least_busy_picks_fewest_in_flight) {
  auto cfg = two({}, {});
  cfg->router.routing_strategy = "least-busy";
  router::router r(cfg);
  auto busy = r.track(cfg->model_list[0]);
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ((*r.pick("g", "/x"))->id, "b");
  }
  auto busy2 = r.track(cfg->model_list[1]);
  auto busy3 = r.track(cfg->model_list[1]);
  EXPECT_EQ((*r.pick("g", "/x"))->id, "a");
  EXPECT_EQ(r.in_flight_count("b"), 2);
}

TEST(router, latency_based_prefers_the_fast_one_and_buffer_widens) {
  auto cfg = two({}, {});
  cfg->router.routing_strategy = "latency-based-routing";
  router::router r(cfg);
  r.on_success(cfg->model_list[0], std::chrono::milliseconds(300), {});
  r.on_success(cfg->model_list[1], std::chrono::milliseconds(100), {});
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ((*r.pick("g", "/x"))->id, "b");
  }
  // Streams rank by time to first token.
  r.on_success(cfg->model_list[0], std::chrono::milliseconds(300), std::chrono::milliseconds(10));
  r.on_success(cfg->model_list[1], std::chrono::milliseconds(100), std::chrono::milliseconds(90));
  EXPECT_EQ((*r.pick("g", "/x", {0, true, {}}))->id, "a");

  auto cfg2 = two({}, {});
  cfg2->router.routing_strategy = "latency-based-routing";
  cfg2->router.raw = {{"routing_strategy_args", {{"lowest_latency_buffer", 5.0}}}};
  router::router r2(cfg2);
  r2.on_success(cfg2->model_list[0], std::chrono::milliseconds(300), {});
  r2.on_success(cfg2->model_list[1], std::chrono::milliseconds(100), {});
  std::map<std::string, int> n;
  for (int i = 0; i < 400; ++i) {
    n[(*r2.pick("g", "/x"))->id]++;
  }
  EXPECT_GT(n["a"], 50);
  EXPECT_GT(n["b"], 50);
}

TEST(router, max_parallel_requests_skips_a_full_deployment) {
  auto cfg = two({}, {});
  cfg->model_list[0].max_parallel_requests = 1;
  cfg->model_list[1].max_parallel_requests = 1;
  router::router r(cfg);
  auto busy = r.track(cfg->model_list[0]);
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ((*r.pick("g", "/x"))->id, "b");
  }
  auto busy2 = r.track(cfg->model_list[1]);
  auto res = r.pick("g", "/x");
  ASSERT_FALSE(res);
  EXPECT_EQ(res.error().status, 429);
}

TEST(router, wildcard_groups_pass_the_requested_model_through) {
  auto cfg = std::make_shared<config::config>();
  auto w = dep("openai/*", "w");
  w.model = "openai/*";
  w.upstream_model = "*";
  auto any = dep("*", "any");
  any.model = "openai/*";
  any.upstream_model = "*";
  cfg->model_list.push_back(w);
  cfg->model_list.push_back(any);
  router::router r(cfg);
  auto d = r.pick("openai/gpt-4o", "/x");
  ASSERT_TRUE(d);
  EXPECT_EQ((*d)->id, "w");
  EXPECT_EQ((*d)->upstream_model, "gpt-4o");
  EXPECT_EQ((*d)->model, "openai/gpt-4o");
  auto e = r.pick("llama3", "/x");
  ASSERT_TRUE(e);
  EXPECT_EQ((*e)->id, "any");
  EXPECT_EQ((*e)->upstream_model, "llama3");
  EXPECT_EQ(r.resolve("whatever"), "*");
}

TEST(router, pre_call_checks_filter_context_window_and_keep_lowest_order) {
  auto cfg = std::make_shared<config::config>();
  auto small = dep("g", "small");
  small.model_info = {{"max_input_tokens", 10}};
  small.order = 1;
  auto big = dep("g", "big");
  big.model_info = {{"max_input_tokens", 100000}};
  big.order = 2;
  auto big2 = dep("g", "big2");
  big2.order = 3;
  cfg->model_list = {small, big, big2};
  cfg->router.raw = {{"enable_pre_call_checks", true}};
  router::router r(cfg);
  EXPECT_EQ((*r.pick("g", "/x", {5, false, {}}))->id, "small");
  EXPECT_EQ((*r.pick("g", "/x", {500, false, {}}))->id, "big");

  auto only_small = std::make_shared<config::config>();
  only_small->model_list = {small};
  only_small->router.raw = {{"enable_pre_call_checks", true}};
  router::router r2(only_small);
  auto res = r2.pick("g", "/x", {500, false, {}});
  ASSERT_FALSE(res);
  EXPECT_EQ(router::classify(res.error()), router::error_class::context_window);
  nlohmann::json body = {{"messages", {{{"role", "user"}, {"content", std::string(400, 'x')}}}}};
  EXPECT_EQ(router::router::estimate_tokens(body), 101u);
}

// ---------------------------------------------------------------- cooldowns

namespace {
router::failure_info failure(int status, std::optional<double> retry_after = {}) {
  router::failure_info f;
  f.status = status;
  f.message = "boom";
  f.retry_after_s = retry_after;
  return f;
}
}  // namespace

TEST(cooldowns, gate) {
  router::cooldowns c;
  auto d = dep("g", "a");
  EXPECT_TRUE(c.gate(d, failure(429)));
  EXPECT_TRUE(c.gate(d, failure(500)));
  EXPECT_TRUE(c.gate(d, failure(401)));
  EXPECT_TRUE(c.gate(d, failure(0)));
  EXPECT_FALSE(c.gate(d, failure(400)));
  EXPECT_FALSE(c.gate(d, failure(403)));
  EXPECT_FALSE(c.gate(d, failure(422)));
  auto conn = failure(0);
  conn.message = "litellm.APIConnectionError: refused";
  EXPECT_FALSE(c.gate(d, conn));
  d.cooldown_time = 0;
  EXPECT_FALSE(c.gate(d, failure(429)));
  router::cooldown_settings off;
  off.disabled = true;
  EXPECT_FALSE(router::cooldowns(off).gate(dep("g", "a"), failure(429)));
}

TEST(cooldowns, default_mode_decisions) {
  const auto t0 = router::steady::now();
  auto d = dep("g", "a");
  {
    router::cooldowns c;
    EXPECT_TRUE(c.on_failure(d, 2, failure(429), t0));  // 429, multi-deployment group
    EXPECT_TRUE(c.is_cooled("a", t0 + std::chrono::seconds(4)));
    EXPECT_FALSE(c.is_cooled("a", t0 + std::chrono::seconds(6)));  // router default 5 s
  }
  {
    router::cooldowns c;
    EXPECT_FALSE(c.on_failure(d, 1, failure(429), t0));  // single deployment: never for 429
    EXPECT_TRUE(c.on_failure(d, 1, failure(401), t0));   // _should_retry rejects 401: always
  }
  {
    router::cooldowns c;
    EXPECT_TRUE(c.on_failure(d, 1, failure(404), t0));
  }
  {
    router::cooldowns c;  // > 50 % failures with >= 5 requests in a multi-deployment group
    for (int i = 0; i < 2; ++i) {
      c.on_success(d, t0);
    }
    EXPECT_FALSE(c.on_failure(d, 2, failure(500), t0));
    EXPECT_FALSE(c.on_failure(d, 2, failure(500), t0));
    EXPECT_TRUE(c.on_failure(d, 2, failure(500), t0));  // 3 of 5
  }
  {
    router::cooldowns c;  // the same in a single-deployment group: no
    for (int i = 0; i < 10; ++i) {
      EXPECT_FALSE(c.on_failure(d, 1, failure(500), t0));
    }
  }
  {
    router::cooldowns c;  // window of 60 s: old failures are forgotten
    c.on_success(d, t0);
    c.on_success(d, t0);
    c.on_failure(d, 2, failure(500), t0);
    c.on_failure(d, 2, failure(500), t0);
    EXPECT_FALSE(c.on_failure(d, 2, failure(500), t0 + std::chrono::seconds(61)));
  }
}

TEST(cooldowns, duration_precedence) {
  const auto t0 = router::steady::now();
  router::cooldown_settings s;
  s.cooldown_time_s = 30;
  router::cooldowns c(s);
  auto d = dep("g", "a");
  EXPECT_EQ(c.duration_s(d, failure(429)), 30);
  EXPECT_EQ(c.duration_s(d, failure(429, 7)), 7);
  d.cooldown_time = 2;
  EXPECT_EQ(c.duration_s(d, failure(429, 7)), 2);
  auto dur = c.on_failure(d, 2, failure(429, 7), t0);
  ASSERT_TRUE(dur);
  EXPECT_EQ(dur->count(), 2000);
}

TEST(cooldowns, recooling_extends_and_remote_entries_never_shorten) {
  const auto t0 = router::steady::now();
  router::cooldowns c;
  int published = 0;
  c.set_listener([&](const std::string&, const router::cooldown_entry&) { ++published; });
  auto d = dep("g", "a");
  c.on_failure(d, 2, failure(429), t0);
  c.on_failure(d, 2, failure(429), t0 + std::chrono::seconds(3));
  EXPECT_EQ(published, 2);
  EXPECT_TRUE(c.is_cooled("a", t0 + std::chrono::seconds(7)));  // 3 + 5
  EXPECT_FALSE(c.cool("a", router::cooldown_entry{t0 + std::chrono::seconds(1), 429, "x", 1}));
  EXPECT_TRUE(c.is_cooled("a", t0 + std::chrono::seconds(7)));
  EXPECT_TRUE(c.cool("a", router::cooldown_entry{t0 + std::chrono::seconds(20), 429, "x", 20}));
  EXPECT_TRUE(c.is_cooled("a", t0 + std::chrono::seconds(19)));
  EXPECT_EQ(c.cooled_ids(t0), std::vector<std::string>{"a"});
}

TEST(cooldowns, legacy_mode_counts_against_allowed_fails_and_policy) {
  const auto t0 = router::steady::now();
  router::cooldown_settings s;
  s.allowed_fails = 1;
  router::cooldowns c(s);
  auto d = dep("g", "a");
  EXPECT_FALSE(c.on_failure(d, 1, failure(429), t0));
  EXPECT_TRUE(c.on_failure(d, 1, failure(429), t0));  // 2 > 1, even single-deployment
  router::cooldown_settings p;
  p.allowed_fails_policy = {{"RateLimitErrorAllowedFails", 0}};
  router::cooldowns cp(p);
  auto f = failure(429);
  f.error_class = "RateLimitError";
  EXPECT_TRUE(cp.on_failure(d, 1, f, t0));
}

TEST(router, all_cooled_is_429_with_retry_after_and_the_list) {
  auto cfg = two({}, {});
  router::router r(cfg);
  auto e = core::upstream_status_error(429, "slow down");
  e.retry_after = "10";
  ASSERT_TRUE(r.on_failure(cfg->model_list[0], "g", e));
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ((*r.pick("g", "/x"))->id, "b");
  }
  EXPECT_EQ(r.healthy_count("g"), 1u);
  ASSERT_TRUE(r.on_failure(cfg->model_list[1], "g", e));
  auto res = r.pick("g", "/x");
  ASSERT_FALSE(res);
  EXPECT_EQ(res.error().status, 429);
  EXPECT_EQ(res.error().retry_after, "10");
  EXPECT_NE(res.error().message.find("No deployments available for selected model, Try again in 10 seconds. "
                                     "Passed model=g. pre-call-checks=False, cooldown_list=['a', 'b']"),
            std::string::npos)
      << res.error().message;
}

// ---------------------------------------------------------------- retries and fallbacks

TEST(policy, retry_counts_precedence) {
  router::retry_settings s;
  EXPECT_EQ(router::max_retries(s, nlohmann::json::object()), 2);
  s.litellm_num_retries = 4;
  EXPECT_EQ(router::max_retries(s, nlohmann::json::object()), 4);
  s.router_num_retries = 1;
  EXPECT_EQ(router::max_retries(s, nlohmann::json::object()), 1);
  s.retry_policy = {{"RateLimitErrorRetries", 5}};
  EXPECT_EQ(router::retries_for(s, nlohmann::json::object(), router::error_class::rate_limit), 5);
  EXPECT_EQ(router::retries_for(s, nlohmann::json::object(), router::error_class::timeout), 1);
  EXPECT_EQ(router::retries_for(s, {{"num_retries", 0}}, router::error_class::rate_limit), 0);
  // A client's number beyond int is clamped, not converted as undefined behaviour.
  EXPECT_EQ(router::max_retries(s, {{"num_retries", 1e300}}), config::max_num_retries);
  EXPECT_EQ(router::max_retries(s, {{"num_retries", -1e300}}), 0);
  EXPECT_EQ(router::max_retries(s, {{"num_retries", 2.9}}), 2);
}

TEST(policy, no_source_asks_for_more_than_the_retry_cap) {
  // Each retry is another provider call: 10000 asked are 10 made, from a request or the
  // config (which the loader also reports at start).
  static_assert(config::max_num_retries == 10);
  router::retry_settings s;
  EXPECT_EQ(router::max_retries(s, {{"num_retries", 10000}}), 10);
  EXPECT_EQ(router::max_retries(s, {{"num_retries", "10000"}}), 10);
  EXPECT_EQ(router::retries_for(s, {{"num_retries", 10000}}, router::error_class::rate_limit), 10);
  EXPECT_EQ(router::max_retries(s, {{"num_retries", 10}}), 10);
  s.litellm_num_retries = 1000;
  EXPECT_EQ(router::max_retries(s, nlohmann::json::object()), 10);
  s.router_num_retries = 500;
  EXPECT_EQ(router::max_retries(s, nlohmann::json::object()), 10);
  s.retry_policy = {{"RateLimitErrorRetries", 1000}};
  EXPECT_EQ(router::retries_for(s, nlohmann::json::object(), router::error_class::rate_limit), 10);
  s.model_group_retry_policy = {{"g", {{"TimeoutErrorRetries", 999}}}};
  EXPECT_EQ(router::retries_for(s, nlohmann::json::object(), router::error_class::timeout, "g"), 10);
}

TEST(policy, classification_and_should_retry) {
  router::group_health two_healthy{2, 2, 1};
  router::group_health none{2, 0, 0};
  auto e500 = core::upstream_status_error(500, "x");
  auto e400 = core::upstream_status_error(400, "bad");
  auto e401 = core::upstream_status_error(401, "key");
  auto e404 = core::upstream_status_error(404, "no");
  auto e429 = core::upstream_status_error(429, "rl");
  auto cw = core::upstream_status_error(400, "This model's maximum context length is 8192 tokens");
  EXPECT_EQ(router::classify(cw), router::error_class::context_window);
  EXPECT_EQ(router::classify(e429), router::error_class::rate_limit);
  // OpenAI's content-policy refusals: by the code the adapter keeps, or by its wording.
  EXPECT_EQ(router::classify(core::upstream_status_error(
                400, "OpenAIException error: Your request was rejected (code: content_policy_violation)")),
            router::error_class::content_policy);
  EXPECT_EQ(router::classify(core::upstream_status_error(
                400, "Your request was rejected as a result of the safety system. Your prompt may contain text")),
            router::error_class::content_policy);
  EXPECT_TRUE(router::should_retry(e500, router::classify(e500), two_healthy, false, false));
  EXPECT_FALSE(router::should_retry(e400, router::classify(e400), two_healthy, false, false));
  EXPECT_FALSE(router::should_retry(cw, router::classify(cw), two_healthy, false, false));
  EXPECT_FALSE(router::should_retry(e404, router::classify(e404), two_healthy, false, false));
  EXPECT_TRUE(router::should_retry(e401, router::classify(e401), two_healthy, false, false));
  EXPECT_FALSE(router::should_retry(e401, router::classify(e401), router::group_health{1, 1, 0}, false, false));
  EXPECT_FALSE(router::should_retry(e429, router::classify(e429), none, true, false));
  EXPECT_FALSE(router::should_retry(e500, router::classify(e500), none, false, false));
  EXPECT_TRUE(router::should_retry(e500, router::classify(e500), none, false, true));
  EXPECT_TRUE(router::should_retry(e429, router::classify(e429), router::group_health{1, 1, 0}, false, false));
}

TEST(policy, backoff_math) {
  using std::chrono::milliseconds;
  router::group_health other{2, 2, 1};
  router::group_health alone{1, 1, 0};
  EXPECT_EQ(router::backoff(0, other, 30.0, 0, 0.5), milliseconds(0));
  EXPECT_EQ(router::backoff(0, alone, 3.0, 0, 0.5), milliseconds(3000));
  EXPECT_EQ(router::backoff(0, alone, 90.0, 0, 0), milliseconds(500));  // > 60 s ignored
  EXPECT_EQ(router::backoff(0, alone, {}, 0, 0), milliseconds(500));
  EXPECT_EQ(router::backoff(1, alone, {}, 0, 0), milliseconds(1000));
  EXPECT_EQ(router::backoff(2, alone, {}, 0, 1.0), milliseconds(1500));  // 2 s * 0.75 jitter
  EXPECT_EQ(router::backoff(10, alone, {}, 0, 0), milliseconds(8000));   // capped
  EXPECT_EQ(router::backoff(0, alone, {}, 2.0, 0), milliseconds(2000));  // at least retry_after
  EXPECT_EQ(router::backoff(0, other, {}, 1.0, 0), milliseconds(1000));
  EXPECT_EQ(router::retry_after_seconds("7"), 7.0);
  EXPECT_FALSE(router::retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT"));
}

TEST(policy, fallback_lists_in_order) {
  router::fallback_settings s;
  s.fallbacks = nlohmann::json::parse(R"([{"a": ["b", "c"]}, {"*": ["z"]}])");
  s.context_window_fallbacks = nlohmann::json::parse(R"([{"a": ["big"]}])");
  s.default_fallbacks = nlohmann::json::parse(R"(["d"])");
  using v = std::vector<std::string>;
  EXPECT_EQ(router::fallbacks_for(s, "a", router::error_class::internal_server), (v{"b", "c"}));
  EXPECT_EQ(router::fallbacks_for(s, "a", router::error_class::context_window), (v{"big"}));
  EXPECT_EQ(router::fallbacks_for(s, "q", router::error_class::context_window), (v{"z"}));
  EXPECT_EQ(router::fallbacks_for(s, "openai/a", router::error_class::rate_limit), (v{"b", "c"}));
  EXPECT_EQ(router::fallbacks_for(s, "q", router::error_class::internal_server), (v{"z"}));
  s.fallbacks = nlohmann::json::array();
  EXPECT_EQ(router::fallbacks_for(s, "q", router::error_class::internal_server), (v{"d"}));
  bool present = false;
  EXPECT_EQ(router::request_fallbacks({{"fallbacks", {"x", "y"}}}, "a", present), (v{"x", "y"}));
  EXPECT_TRUE(present);
  EXPECT_TRUE(router::request_fallbacks(nlohmann::json::object(), "a", present).empty());
  EXPECT_FALSE(present);
  EXPECT_EQ(router::py_list({"a", "b"}), "['a', 'b']");
}

TEST(router, a_retry_avoids_the_deployment_that_failed_while_another_is_open) {
  auto cfg = two({}, {});
  router::router r(cfg);
  router::pick_options o;
  o.avoid = {"a"};
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ((*r.pick("g", "/x", o))->id, "b");
  }
  o.avoid = {"a", "b"};  // both failed already: either may be tried again
  std::map<std::string, int> n;
  for (int i = 0; i < 200; ++i) {
    n[(*r.pick("g", "/x", o))->id]++;
  }
  EXPECT_GT(n["a"], 0);
  EXPECT_GT(n["b"], 0);
}

// ---------------------------------------------------------------- shared cooldowns (no I/O: apply only)

// A router of two deployments ("a", "b" in group "g") and its sync, with a Redis client
// that never connects: apply() is all these tests drive.
struct cooldown_sync_parts {
  net::io_context ioc;
  store::redis::redis_client redis{ioc.get_executor(), {}};
  std::shared_ptr<config::config> cfg = two({}, {});
  router::router r{cfg};
  router::redis_cooldown_sync sync{ioc.get_executor(), redis, r};
  const long long wall = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
};

TEST(redis_cooldown_sync, applies_messages_from_other_instances_and_extends_only) {
  cooldown_sync_parts p;
  auto& [ioc, redis, cfg, r, sync, wall] = p;
  nlohmann::json m = {{"id", "a"}, {"deadline_ms", wall + 10'000}, {"status_code", 429}, {"origin", "other"}};
  EXPECT_TRUE(sync.apply(m.dump()));
  EXPECT_EQ(r.healthy_count("g"), 1u);
  auto until = r.cooldown_state().deadline("a", router::steady::now());
  ASSERT_TRUE(until);
  // An earlier deadline never shortens it.
  m["deadline_ms"] = wall + 2'000;
  EXPECT_TRUE(sync.apply(m.dump()));
  EXPECT_EQ(r.cooldown_state().deadline("a", router::steady::now()), until);
  // Stale, malformed: ignored.
  m["id"] = "b";
  m["deadline_ms"] = wall - 1'000;
  EXPECT_FALSE(sync.apply(m.dump()));
  EXPECT_FALSE(sync.apply("not json"));
  EXPECT_FALSE(sync.apply(R"({"id": 5})"));
  EXPECT_EQ(r.healthy_count("g"), 1u);
  // A local decision is handed to the publisher (the SET/PUBLISH fail fast: not connected).
  auto e = core::upstream_status_error(429, "x");
  EXPECT_TRUE(r.on_failure(cfg->model_list[1], "g", e));
  ioc.run_for(std::chrono::milliseconds(50));
  EXPECT_EQ(r.healthy_count("g"), 0u);
  EXPECT_EQ(router::redis_cooldown_sync::key_of("a"), "deployment:a:cooldown");
}

TEST(redis_cooldown_sync, members_of_the_wrong_type_never_throw_and_a_far_deadline_is_clamped) {
  cooldown_sync_parts p;
  auto& [ioc, redis, cfg, r, sync, wall] = p;
  // A deadline that is not a whole number of milliseconds is not a cooldown.
  EXPECT_FALSE(sync.apply(R"({"id":"a","deadline_ms":1e300})"));
  EXPECT_FALSE(sync.apply(R"({"id":"a","deadline_ms":"soon"})"));
  EXPECT_EQ(r.healthy_count("g"), 2u);
  // The other members of the wrong type are read as absent: the cooldown still applies.
  nlohmann::json odd = {{"id", "a"}, {"deadline_ms", wall + 10'000}, {"origin", 5}, {"status_code", "429"},
                        {"exception_received", {1, 2}}, {"cooldown_time", "long"}};
  EXPECT_TRUE(sync.apply(odd.dump()));
  EXPECT_EQ(r.healthy_count("g"), 1u);
  // The largest deadline there is: clamped, not overflowed into the past.
  nlohmann::json far = {{"id", "b"}, {"deadline_ms", std::numeric_limits<long long>::max()}};
  EXPECT_TRUE(sync.apply(far.dump()));
  EXPECT_EQ(r.healthy_count("g"), 0u);
  auto until = r.cooldown_state().deadline("b", router::steady::now());
  ASSERT_TRUE(until);
  EXPECT_GT(*until, router::steady::now() + std::chrono::hours(24 * 365));
}

// A provider reporting an absurd token count (10^15) is counted for what one call can be
// billed for (max_routed_tokens): once the other deployment has served more than that in
// the same minute, the first is picked again instead of being held above it all minute.
// Reports near the largest count (10^18) do not overflow the minute's counter.
TEST(router, usage_based_counts_an_absurd_report_as_one_call_can_be_billed) {
  auto cfg = two({}, {});
  cfg->router.routing_strategy = "usage-based-routing-v2";
  router::router r(cfg);
  r.set_minute_clock([] { return 29'000'000LL; });  // one minute throughout
  const auto& a = cfg->model_list[0];
  const auto& b = cfg->model_list[1];
  r.on_success(a, {}, {}, 1'000'000'000'000'000LL);
  EXPECT_EQ(r.usage_of("a").tpm, router::router::max_routed_tokens);
  constexpr long long per_answer = 1'000'000;  // a large but real answer
  int served_by_b = 0;
  for (; served_by_b <= router::router::max_routed_tokens / per_answer + 1; ++served_by_b) {
    auto picked = r.pick("g", "/x");
    ASSERT_TRUE(picked);
    if ((*picked)->id == "a") {
      break;
    }
    r.on_success(b, {}, {}, per_answer);
  }
  EXPECT_GE(served_by_b, router::router::max_routed_tokens / per_answer);
  EXPECT_LE(served_by_b, router::router::max_routed_tokens / per_answer + 1) << "a was never picked again";
  for (int i = 0; i < 20; ++i) {
    r.on_success(a, {}, {}, 1'000'000'000'000'000'000LL);
  }
  EXPECT_EQ(r.usage_of("a").tpm, 21 * router::router::max_routed_tokens);
}

TEST(router, usage_based_shared_totals_from_redis_are_bounded) {
  auto cfg = two({}, {});
  cfg->router.routing_strategy = "usage-based-routing-v2";
  router::router r(cfg);
  r.set_minute_clock([] { return 29'000'000LL; });
  const auto sent = r.local_usage_of("a");
  // Whatever another writer left in Redis: adding this instance's counts must not overflow
  // (the sanitizer build aborts on a signed overflow), and a negative total counts as 0.
  r.set_shared_usage("a", r.minute_now(), std::numeric_limits<long long>::max(),
                     std::numeric_limits<long long>::max(), sent);
  r.set_shared_usage("b", r.minute_now(), -5, std::numeric_limits<long long>::min(), sent);
  r.on_success(cfg->model_list[0], {}, {}, router::router::max_routed_tokens);
  { auto t = r.track(cfg->model_list[0]); }
  EXPECT_GT(r.usage_of("a").tpm, 0);
  EXPECT_EQ(r.usage_of("b").tpm, 0);
  EXPECT_EQ(r.usage_of("b").rpm, 0);
  EXPECT_EQ((*r.pick("g", "/x"))->id, "b");
}

TEST(router, usage_based_v2_lowest_tpm_under_limits) {
  auto cfg = two({}, {});
  cfg->router.routing_strategy = "usage-based-routing-v2";
  cfg->model_list[0].rpm = 2;
  router::router r(cfg);
  // The minute is held still: a run across a minute's edge must not reset the counts.
  r.set_minute_clock([] { return 29'000'000LL; });
  EXPECT_EQ(r.routing_strategy(), router::strategy::usage_based);
  r.on_success(cfg->model_list[1], {}, {}, 500);  // b used 500 tokens this minute
  EXPECT_EQ((*r.pick("g", "/x"))->id, "a");
  { auto t = r.track(cfg->model_list[0]); }
  { auto t = r.track(cfg->model_list[0]); }
  EXPECT_EQ(r.usage_of("a").rpm, 2);
  EXPECT_EQ((*r.pick("g", "/x"))->id, "b");  // a is at its rpm
  cfg->model_list[1].tpm = 600;
  EXPECT_EQ((*r.pick("g", "/x", {50, false, {}, false}))->id, "b");
  auto res = r.pick("g", "/x", {200, false, {}, false});  // 500 + 200 > 600, a full
  ASSERT_FALSE(res);
  EXPECT_EQ(res.error().status, 429);
  // Shared totals (every instance, as last read) plus local increments made after the read
  // was sent; totals of another minute are ignored.
  const auto sent = r.local_usage_of("b");
  r.set_shared_usage("b", r.minute_now(), 0, 900, sent);
  EXPECT_EQ(r.usage_of("b").tpm, 900);
  r.on_success(cfg->model_list[1], {}, {}, 7);
  EXPECT_EQ(r.usage_of("b").tpm, 907);
  r.set_shared_usage("b", r.minute_now() - 1, 0, 10'000, sent);
  EXPECT_EQ(r.usage_of("b").tpm, 507);
}
