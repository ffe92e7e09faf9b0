#include "switchyard/spend/prices.hpp"
#include "switchyard/spend/pricer.hpp"

#include <gtest/gtest.h>

#include <cstdlib>

using namespace switchyard;
using spend::cost_of;
using spend::price;
using spend::price_table;
using spend::tokens;
using spend::bound_tokens;
using spend::max_billed_tokens;
using spend::pricer;

namespace {

const char* table_json = R"({
  "sample_spec": {"input_cost_per_token": 1},
  "gpt-4o": {"input_cost_per_token": 2.5e-06, "output_cost_per_token": 1e-05,
             "cache_read_input_token_cost": 1.25e-06, "litellm_provider": "openai", "mode": "chat",
             "max_input_tokens": 128000, "max_output_tokens": 16384},
  "claude-sonnet-4-5": {"input_cost_per_token": 3e-06, "output_cost_per_token": 1.5e-05,
             "cache_read_input_token_cost": 3e-07, "cache_creation_input_token_cost": 3.75e-06,
             "input_cost_per_token_above_200k_tokens": 6e-06, "output_cost_per_token_above_200k_tokens": 2.25e-05,
             "litellm_provider": "anthropic", "mode": "chat"},
  "text-embedding-3-small": {"input_cost_per_token": 2e-08, "output_cost_per_token": 0, "mode": "embedding"},
  "azure/gpt-4o": {"input_cost_per_token": 5e-06, "output_cost_per_token": 1.5e-05},
  "not-an-entry": 3
})";

config::deployment dep(std::string model, std::string upstream) {
  config::deployment d;
  d.model = std::move(model);
  d.upstream_model = std::move(upstream);
  d.litellm_params = nlohmann::json::object();
  d.model_info = nlohmann::json::object();
  return d;
}

price_table table() {
  auto t = price_table::parse(table_json, "test");
  EXPECT_TRUE(t);
  return *t;
}

}  // namespace

TEST(prices, parse_skips_sample_spec_and_non_objects) {
  auto t = table();
  EXPECT_EQ(t.size(), 4u);
  EXPECT_EQ(t.find("sample_spec"), nullptr);
  ASSERT_NE(t.find("gpt-4o"), nullptr);
  EXPECT_EQ(t.find("gpt-4o")->max_output_tokens, 16384);
  EXPECT_EQ(t.find("gpt-4o")->mode, "chat");
}

TEST(prices, bad_json_is_an_error_naming_the_origin) {
  auto t = price_table::parse("{", "my.json");
  ASSERT_FALSE(t);
  EXPECT_NE(t.error().message.find("my.json"), std::string::npos);
  EXPECT_FALSE(price_table::parse("[1]", "x"));
  EXPECT_FALSE(price_table::load_blocking("/nonexistent/prices.json"));
}

TEST(prices, openai_cost_is_the_formula) {
  auto p = *table().find("gpt-4o");
  tokens t{1000, 200, 0, 0, 0};
  EXPECT_DOUBLE_EQ(cost_of(p, t), 1000 * 2.5e-06 + 200 * 1e-05);
  // Cached prompt tokens at the cache-read price.
  tokens c{1000, 200, 400, 0, 0};
  EXPECT_DOUBLE_EQ(cost_of(p, c), 600 * 2.5e-06 + 400 * 1.25e-06 + 200 * 1e-05);
}

TEST(prices, anthropic_cache_read_and_creation_and_tier) {
  auto p = *table().find("claude-sonnet-4-5");
  tokens t{3000, 100, 2000, 500, 0};
  EXPECT_DOUBLE_EQ(cost_of(p, t), 500 * 3e-06 + 2000 * 3e-07 + 500 * 3.75e-06 + 100 * 1.5e-05);
  tokens big{250'000, 1000, 0, 0, 0};
  EXPECT_DOUBLE_EQ(cost_of(p, big), 250'000 * 6e-06 + 1000 * 2.25e-05);
}

TEST(prices, missing_cache_price_falls_back_to_input) {
  price p;
  p.input = 1e-6;
  p.output = 2e-6;
  EXPECT_DOUBLE_EQ(cost_of(p, tokens{100, 10, 50, 0, 0}), 100 * 1e-6 + 10 * 2e-6);
}

TEST(prices, reasoning_tokens_have_their_own_rate_only_when_priced) {
  price p;
  p.input = 1e-6;
  p.output = 4e-6;
  EXPECT_DOUBLE_EQ(cost_of(p, tokens{10, 100, 0, 0, 60}), 10 * 1e-6 + 100 * 4e-6);
  p.output_reasoning = 1e-5;
  EXPECT_DOUBLE_EQ(cost_of(p, tokens{10, 100, 0, 0, 60}), 10 * 1e-6 + 40 * 4e-6 + 60 * 1e-5);
}

TEST(prices, per_second_prices) {
  price p;
  p.input_per_second = 0.001;
  EXPECT_DOUBLE_EQ(cost_of(p, tokens{}, 2.5), 0.0025);
}

TEST(prices, deployment_lookup_order) {
  auto t = table();
  // <provider>/<model> first, then the bare model.
  auto azure = t.for_deployment(dep("azure/gpt-4o", "gpt-4o"), false);
  ASSERT_TRUE(azure);
  EXPECT_DOUBLE_EQ(*azure->input, 5e-06);
  auto openai = t.for_deployment(dep("openai/gpt-4o", "gpt-4o"), false);
  ASSERT_TRUE(openai);
  EXPECT_DOUBLE_EQ(*openai->input, 2.5e-06);
  // model_info.base_model wins over the model name.
  auto d = dep("azure/my-deployment", "my-deployment");
  d.model_info["base_model"] = "azure/gpt-4o";
  EXPECT_DOUBLE_EQ(*t.for_deployment(d, false)->input, 5e-06);
  d.model_info["base_model"] = "openai/gpt-4o";  // provider prefix not in the table
  EXPECT_DOUBLE_EQ(*t.for_deployment(d, false)->input, 2.5e-06);
  // Unpriced.
  EXPECT_FALSE(t.for_deployment(dep("openai/mystery", "mystery"), false));
  // Vertex AI's names of Anthropic's models: '@' before the date.
  auto vertex = t.for_deployment(dep("vertex_ai/claude-sonnet-4@5", "claude-sonnet-4@5"), false);
  ASSERT_TRUE(vertex);
  EXPECT_DOUBLE_EQ(*vertex->input, 3e-06);
  EXPECT_FALSE(t.for_deployment(dep("vertex_ai/claude-x@1", "claude-x@1"), false));
}

TEST(prices, deployment_prices_override_the_table) {
  auto t = table();
  auto d = dep("openai/gpt-4o", "gpt-4o");
  d.litellm_params["input_cost_per_token"] = 1e-6;
  d.litellm_params["output_cost_per_token"] = "0.000002";  // quoted, as configs often have it
  auto p = t.for_deployment(d, false);
  ASSERT_TRUE(p);
  EXPECT_DOUBLE_EQ(*p->input, 1e-6);
  EXPECT_DOUBLE_EQ(*p->output, 2e-6);
  EXPECT_DOUBLE_EQ(*p->cache_read, 1.25e-06);  // the rest from the table
  auto priced_local = dep("openai/custom", "custom");
  priced_local.model_info["input_cost_per_second"] = 0.01;
  EXPECT_TRUE(t.for_deployment(priced_local, true));
}

TEST(prices, a_call_is_priced_for_at_most_the_bound_of_each_count) {
  auto d = dep("openai/gpt-4o", "gpt-4o");
  d.provider = config::find_provider("openai");
  d.litellm_params["input_cost_per_token"] = 1e-6;
  d.litellm_params["output_cost_per_token"] = 2e-6;
  pricer p{std::make_shared<price_table>(table())};
  tokens huge;
  huge.prompt = 1'000'000'000'000'000LL;  // 10^15 reported
  huge.completion = 3;
  EXPECT_NEAR(p.cost(d, huge), static_cast<double>(max_billed_tokens) * 1e-6 + 3 * 2e-6, 1e-9);
  // The bound itself is believed; the plain formula (/spend/calculate) is not bounded.
  tokens at{max_billed_tokens, 0};
  EXPECT_FALSE(bound_tokens(at));
  EXPECT_NEAR(cost_of(*p.price_of(d), huge), 1e9, 1e-3);
  tokens odd{-4, 10, -1, 0, max_billed_tokens + 1};
  EXPECT_TRUE(bound_tokens(odd));
  EXPECT_EQ(odd.prompt, 0);
  EXPECT_EQ(odd.cached, 0);
  EXPECT_EQ(odd.completion, 10);
  EXPECT_EQ(odd.reasoning, max_billed_tokens);
}

TEST(prices, local_models_are_free_unless_priced) {
  auto t = table();
  EXPECT_FALSE(t.for_deployment(dep("openai/gpt-4o", "gpt-4o"), true));
  EXPECT_FALSE(t.for_deployment(dep("ollama/llama3", "llama3"), true));
}

TEST(prices, merge_replaces_entries) {
  auto t = table();
  auto mine = price_table::parse(R"({"gpt-4o": {"input_cost_per_token": 9e-06, "output_cost_per_token": 0}})", "mine");
  ASSERT_TRUE(mine);
  t.merge(*mine);
  EXPECT_DOUBLE_EQ(*t.find("gpt-4o")->input, 9e-06);
  EXPECT_NE(t.find("claude-sonnet-4-5"), nullptr);
}

TEST(prices, the_shipped_table_covers_the_main_providers) {
  auto t = price_table::load_blocking(spend::shipped_prices_path());
  ASSERT_TRUE(t) << t.error().message;
  EXPECT_GT(t->size(), 200u);
  for (const char* m : {"gpt-4o", "gpt-4o-mini", "claude-sonnet-4-5", "gemini-2.5-flash", "deepseek-chat",
                        "text-embedding-3-small", "azure/gpt-4o", "azure/text-embedding-3-small",
                        "mistral/mistral-large-latest", "mistral/mistral-embed", "gemini/gemini-embedding-001"}) {
    const auto* p = t->find(m);
    ASSERT_NE(p, nullptr) << m;
    EXPECT_TRUE(p->priced()) << m;
  }
}
