// The retry/fallback loop alone, with a scripted attempt_runner (no adapters, no HTTP).
#include "fakes.hpp"

#include <gtest/gtest.h>

using namespace switchyard;
using namespace switchyard::pipeline;
using namespace switchyard::pipeline::testing;

namespace {

// Answers each attempt with the next scripted error (nullopt: success), per group.
class scripted_runner final : public attempt_runner {
 public:
  std::map<std::string, std::deque<std::optional<core::error>>> by_group;
  std::vector<std::string> tried;  // deployment ids in order
  fake_responder* client = nullptr;
  int leave_after = -1;  // the client leaves after this many attempts

  net::awaitable<std::optional<core::error>> attempt(request_ctx& ctx) override {
    tried.push_back(ctx.dep->id);
    if (leave_after >= 0 && static_cast<int>(tried.size()) >= leave_after && client != nullptr) {
      client->gone = true;
    }
    auto& q = by_group[ctx.dep->model_name];
    if (q.empty()) {
      co_return std::nullopt;
    }
    auto e = q.front();
    q.pop_front();
    if (!e) {
      ctx.usage.known = true;
      ctx.usage.prompt_tokens = 1;
    }
    co_return e;
  }
};

config::deployment dep(std::string group, std::string id) {
  config::deployment d;
  d.model_name = std::move(group);
  d.id = std::move(id);
  d.model = "openai/x";
  d.upstream_model = "x";
  d.litellm_params = nlohmann::json::object();
  d.model_info = nlohmann::json::object();
  return d;
}

struct loop_harness {
  explicit loop_harness(std::shared_ptr<config::config> c) : cfg(std::move(c)), rt(cfg) {}
  std::optional<core::error> run(scripted_runner& runner) {
    attempt_loop loop(rt, router::retry_settings::from(*cfg), router::fallback_settings::from(*cfg), runner);
    http::request req;
    req.body = "{}";
    req.received_at = std::chrono::steady_clock::now();
    runner.client = &client;
    ctx = std::make_unique<request_ctx>(req, client);
    ctx->requested_model = "a";
    ctx->route = "/chat/completions";
    std::optional<core::error> out;
    run_coro([&]() -> net::awaitable<void> { out = co_await loop.run(*ctx); });
    return out;
  }
  std::shared_ptr<config::config> cfg;
  router::router rt;
  fake_responder client;
  std::unique_ptr<request_ctx> ctx;
};

std::shared_ptr<config::config> two_groups() {
  auto cfg = std::make_shared<config::config>();
  cfg->router.raw["disable_cooldowns"] = true;
  cfg->model_list.push_back(dep("a", "a1"));
  cfg->model_list.push_back(dep("a", "a2"));
  cfg->model_list.push_back(dep("b", "b1"));
  return cfg;
}

core::error status_error(int status) { return core::upstream_status_error(status, "provider said no"); }

}  // namespace

TEST(attempt_loop, success_after_retries_records_each_attempt) {
  auto cfg = two_groups();
  cfg->router.num_retries = 3;
  loop_harness h(cfg);
  scripted_runner runner;
  runner.by_group["a"] = {status_error(503), status_error(503), std::nullopt};
  auto err = h.run(runner);
  EXPECT_FALSE(err);
  const auto& atts = h.ctx->out.attempts;
  ASSERT_EQ(atts.size(), 3u);
  EXPECT_EQ(atts[0].status, 503);
  EXPECT_EQ(atts[1].retry, 1);
  EXPECT_EQ(atts[2].status, 200);
  EXPECT_TRUE(atts[2].usage.known);
  EXPECT_EQ(h.ctx->attempted_retries, 2);
  EXPECT_EQ(h.ctx->max_retries, 3);
}

TEST(attempt_loop, a_provider_400_is_not_retried_nor_falls_back_by_default) {
  auto cfg = two_groups();
  cfg->router.num_retries = 3;
  loop_harness h(cfg);
  scripted_runner runner;
  runner.by_group["a"] = {status_error(400)};
  auto err = h.run(runner);
  ASSERT_TRUE(err);
  EXPECT_EQ(err->status, 400);
  EXPECT_EQ(runner.tried.size(), 1u);
}

TEST(attempt_loop, retries_exhausted_then_fallback_group) {
  auto cfg = two_groups();
  cfg->router.num_retries = 1;
  cfg->router.raw["fallbacks"] = nlohmann::json::array({{{"a", {"b"}}}});
  loop_harness h(cfg);
  scripted_runner runner;
  runner.by_group["a"] = {status_error(500), status_error(500)};
  auto err = h.run(runner);
  EXPECT_FALSE(err);
  ASSERT_EQ(runner.tried.size(), 3u);
  EXPECT_EQ(runner.tried[2], "b1");
  EXPECT_EQ(h.ctx->out.attempts[2].fallback, 1);
  EXPECT_EQ(h.ctx->attempted_fallbacks, 1);
}

TEST(attempt_loop, a_client_that_left_stops_the_retries) {
  auto cfg = two_groups();
  cfg->router.num_retries = 5;
  cfg->router.raw["fallbacks"] = nlohmann::json::array({{{"a", {"b"}}}});
  loop_harness h(cfg);
  scripted_runner runner;
  runner.leave_after = 2;
  runner.by_group["a"] = {status_error(500), status_error(500), status_error(500), status_error(500)};
  auto err = h.run(runner);
  ASSERT_TRUE(err);
  EXPECT_EQ(runner.tried.size(), 2u);  // no third attempt, no fallback
}
