// router: tag routing (enable_tag_filtering), alias lists, model_group_retry_policy.
#include "switchyard/router/router.hpp"

#include "switchyard/router/policy.hpp"

#include <gtest/gtest.h>

#include <set>

using namespace switchyard;

namespace {

config::deployment tagged(std::string id, std::vector<std::string> tags) {
  config::deployment d;
  d.model_name = "g";
  d.id = std::move(id);
  d.model = "openai/x";
  d.upstream_model = "x";
  d.tags = std::move(tags);
  return d;
}

std::shared_ptr<config::config> tiers(bool match_any = true) {
  auto cfg = std::make_shared<config::config>();
  cfg->model_list.push_back(tagged("free", {"free"}));
  cfg->model_list.push_back(tagged("paid", {"paid", "eu"}));
  cfg->model_list.push_back(tagged("fallback", {"default"}));
  cfg->model_list.push_back(tagged("untagged", {}));
  cfg->router.enable_tag_filtering = true;
  cfg->router.tag_filtering_match_any = match_any;
  return cfg;
}

// Every id pick() returns for `tags` over many tries (simple-shuffle is random).
std::set<std::string> picks(router::router& r, std::vector<std::string> tags) {
  std::set<std::string> ids;
  for (int i = 0; i < 200; ++i) {
    auto d = r.pick("g", "/chat/completions", {}, &tags);
    EXPECT_TRUE(d) << d.error().message;
    if (d) {
      ids.insert((*d)->id);
    }
  }
  return ids;
}

}  // namespace

TEST(tag_routing, request_tags_select_matching_and_default_deployments) {
  router::router r(tiers());
  EXPECT_EQ(picks(r, {"paid"}), (std::set<std::string>{"paid", "fallback"}));
  EXPECT_EQ(picks(r, {"free", "eu"}), (std::set<std::string>{"free", "paid", "fallback"}));
  EXPECT_EQ(picks(r, {"gold"}), (std::set<std::string>{"fallback"}));
  EXPECT_EQ(picks(r, {}), (std::set<std::string>{"fallback"}));  // untagged requests: "default"
}

TEST(tag_routing, match_all_needs_every_request_tag) {
  router::router r(tiers(false));
  EXPECT_EQ(picks(r, {"paid", "eu"}), (std::set<std::string>{"paid", "fallback"}));
  EXPECT_EQ(picks(r, {"free", "eu"}), (std::set<std::string>{"fallback"}));
}

TEST(tag_routing, no_default_and_no_match_is_a_400_naming_the_tags) {
  auto cfg = std::make_shared<config::config>();
  cfg->model_list.push_back(tagged("free", {"free"}));
  cfg->model_list.push_back(tagged("untagged", {}));
  cfg->router.enable_tag_filtering = true;
  router::router r(cfg);
  const std::vector<std::string> gold{"gold"};
  auto d = r.pick("g", "/chat/completions", {}, &gold);
  ASSERT_FALSE(d);
  EXPECT_EQ(d.error().status, 400);
  EXPECT_NE(d.error().message.find("tags=['gold']"), std::string::npos) << d.error().message;
  // Without request tags and no "default" deployment: every deployment.
  EXPECT_EQ(picks(r, {}), (std::set<std::string>{"free", "untagged"}));
}

TEST(tag_routing, off_by_default) {
  auto cfg = tiers();
  cfg->router.enable_tag_filtering = false;
  router::router r(cfg);
  EXPECT_EQ(picks(r, {"paid"}).size(), 4u);
}

TEST(tag_routing, request_tags_from_body_or_metadata) {
  EXPECT_EQ(router::request_tags({{"tags", {"a", "b"}}}), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(router::request_tags({{"tags", "a"}}), (std::vector<std::string>{"a"}));
  EXPECT_EQ(router::request_tags({{"metadata", {{"tags", {"m"}}}}}), (std::vector<std::string>{"m"}));
  EXPECT_EQ(router::request_tags({{"tags", {"t"}}, {"metadata", {{"tags", {"m"}}}}}),
            (std::vector<std::string>{"t"}));
  EXPECT_TRUE(router::request_tags({{"tags", 5}}).empty());
  EXPECT_TRUE(router::request_tags(nlohmann::json::array()).empty());
}

TEST(aliases, a_list_resolves_to_its_first_existing_group) {
  auto cfg = std::make_shared<config::config>();
  cfg->model_list.push_back(tagged("g1", {}));
  cfg->router.model_group_alias = {{"best", {"missing", "g"}}, {"none", {"missing"}}};
  router::router r(cfg);
  EXPECT_EQ(r.resolve("best"), "g");
  EXPECT_EQ(r.resolve("none"), "");
}

TEST(policy, model_group_retry_policy_overrides_retry_policy_for_its_group) {
  router::retry_settings s;
  s.router_num_retries = 1;
  s.retry_policy = {{"RateLimitErrorRetries", 2}};
  s.model_group_retry_policy = {{"claude", {{"RateLimitErrorRetries", 6}}}};
  const auto body = nlohmann::json::object();
  EXPECT_EQ(router::retries_for(s, body, router::error_class::rate_limit, "claude"), 6);
  EXPECT_EQ(router::retries_for(s, body, router::error_class::rate_limit, "gpt"), 2);
  EXPECT_EQ(router::retries_for(s, body, router::error_class::timeout, "claude"), 1);  // not in its policy
  EXPECT_EQ(router::retries_for(s, {{"num_retries", 0}}, router::error_class::rate_limit, "claude"), 0);
  config::config c;
  c.router.model_group_retry_policy = {{"claude", {{"TimeoutErrorRetries", 3}}}};
  EXPECT_EQ(router::retry_settings::from(c).policy_for("claude")["TimeoutErrorRetries"], 3);
}
