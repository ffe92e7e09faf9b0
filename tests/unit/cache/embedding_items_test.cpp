// Embeddings cached per input item: the provider's answer for the items it was sent,
// merged with the cached items in the request's order; the values stored per item.
#include "switchyard/cache/embedding_items.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace {

using json = nlohmann::json;
using switchyard::cache::embedding_hit_answer;
using switchyard::cache::embedding_values;
using switchyard::cache::merge_embedding_answer;

std::string answer_of(const std::vector<json>& vectors, int prompt_tokens = 7) {
  json data = json::array();
  for (std::size_t i = 0; i < vectors.size(); ++i) {
    data.push_back({{"object", "embedding"}, {"index", i}, {"embedding", vectors[i]}});
  }
  return json{{"object", "list"}, {"data", data}, {"model", "text-embedding-3-small"},
              {"usage", {{"prompt_tokens", prompt_tokens}, {"total_tokens", prompt_tokens}}}}
      .dump();
}

TEST(embedding_items, the_provider_answer_fills_the_items_not_cached_in_order) {
  // Items 0 and 2 cached; items 1 and 3 sent (the provider numbers them 0 and 1).
  const std::vector<std::optional<std::string>> cached{"[0.5,1.5]", std::nullopt, "\"AAAAAA==\"", std::nullopt};
  auto merged = merge_embedding_answer(answer_of({json::array({1, 2}), json::array({3, 4})}), cached);
  ASSERT_TRUE(merged) << merged.error().message;
  const auto j = json::parse(*merged);
  ASSERT_EQ(j["data"].size(), 4u);
  for (std::size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(j["data"][i]["index"], i);
    EXPECT_EQ(j["data"][i]["object"], "embedding");
  }
  EXPECT_EQ(j["data"][0]["embedding"], json::parse("[0.5,1.5]"));
  EXPECT_EQ(j["data"][1]["embedding"], json::array({1, 2}));
  EXPECT_EQ(j["data"][2]["embedding"], "AAAAAA==");  // a base64 answer stays a string
  EXPECT_EQ(j["data"][3]["embedding"], json::array({3, 4}));
  EXPECT_EQ(j["usage"]["prompt_tokens"], 7);  // the provider's: the items it was sent
  EXPECT_EQ(j["model"], "text-embedding-3-small");
}

TEST(embedding_items, the_provider_items_are_placed_by_their_index) {
  json answer = json::parse(answer_of({json::array({1}), json::array({2})}));
  std::swap(answer["data"][0], answer["data"][1]);  // listed out of order
  auto merged = merge_embedding_answer(answer.dump(), {std::nullopt, "[9]", std::nullopt});
  ASSERT_TRUE(merged);
  const auto j = json::parse(*merged);
  EXPECT_EQ(j["data"][0]["embedding"], json::array({1}));
  EXPECT_EQ(j["data"][1]["embedding"], json::array({9}));
  EXPECT_EQ(j["data"][2]["embedding"], json::array({2}));
}

TEST(embedding_items, an_answer_with_the_wrong_number_of_items_is_an_error) {
  const std::vector<std::optional<std::string>> cached{"[1]", std::nullopt, std::nullopt};
  EXPECT_FALSE(merge_embedding_answer(answer_of({json::array({2})}), cached));                       // one short
  EXPECT_FALSE(merge_embedding_answer(answer_of({json::array({2}), json::array({3}), json::array({4})}), cached));
  EXPECT_FALSE(merge_embedding_answer("not json", cached));
  EXPECT_FALSE(merge_embedding_answer(R"({"data":[{"index":0,"embedding":[1]},{"index":0,"embedding":[2]}]})", cached));
  // With nothing sent, an answer that is not an object is refused too (it threw; found by
  // tests/fuzz/cache_fuzz.cpp).
  const std::vector<std::optional<std::string>> all_cached{"[1]", "[2]"};
  EXPECT_FALSE(merge_embedding_answer("not json", all_cached));
  EXPECT_FALSE(merge_embedding_answer("[]", all_cached));
}

TEST(embedding_items, values_are_taken_per_index) {
  const auto values = embedding_values(answer_of({json::array({1.25, -2}), "QUJD"}), 2);
  ASSERT_EQ(values.size(), 2u);
  // Each item with the model the provider named.
  EXPECT_EQ(json::parse(values[0]), json::parse(R"({"embedding":[1.25,-2],"model":"text-embedding-3-small"})"));
  EXPECT_EQ(json::parse(values[1]), json::parse(R"({"embedding":"QUJD","model":"text-embedding-3-small"})"));
  EXPECT_TRUE(embedding_values(answer_of({json::array({1})}), 2).empty());

  // A full hit names the provider's model, as the miss that stored the items did, not the
  // model group the client asked for.
  const auto hit = embedding_hit_answer(values, "emb");
  ASSERT_TRUE(hit);
  const auto j = json::parse(hit->body);
  EXPECT_EQ(j["object"], "list");
  EXPECT_EQ(j["model"], "text-embedding-3-small");
  EXPECT_EQ(j["usage"]["prompt_tokens"], 0) << "stored without a share, no estimate given";
  ASSERT_EQ(j["data"].size(), 2u);
  EXPECT_EQ(j["data"][1]["index"], 1);
  EXPECT_EQ(j["data"][1]["embedding"], "QUJD");
  EXPECT_FALSE(embedding_hit_answer({"[1]", "{broken"}, "emb"));
  EXPECT_FALSE(embedding_hit_answer({"[1]", R"({"model":"m"})"}, "emb"));  // an object without an embedding
}

// A full hit reports its items' tokens (LiteLLM counts a full hit's inputs): each item
// keeps its share of the count of the miss that stored it, so the same request made again
// from the cache reports what its miss did; an item stored without one counts as
// estimated. The cost of a hit stays 0 (the cache stage).
TEST(embedding_items, a_full_hit_reports_the_tokens_of_its_items) {
  // 10 tokens for three items weighted 1, 2 and 2: shares 2, 4, 4 (they add up to 10).
  const auto values =
      embedding_values(answer_of({json::array({1}), json::array({2}), json::array({3})}, 10), 3, {1, 2, 2});
  ASSERT_EQ(values.size(), 3u);
  EXPECT_EQ(json::parse(values[0])["prompt_tokens"], 2);
  EXPECT_EQ(json::parse(values[1])["prompt_tokens"], 4);
  EXPECT_EQ(json::parse(values[2])["prompt_tokens"], 4);
  const auto hit = embedding_hit_answer(values, "emb");
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->prompt_tokens, 10);
  const auto j = json::parse(hit->body);
  EXPECT_EQ(j["usage"]["prompt_tokens"], 10);
  EXPECT_EQ(j["usage"]["total_tokens"], 10);
  // A subset of the items: the sum of theirs.
  const auto part = embedding_hit_answer({values[2], values[0]}, "emb");
  ASSERT_TRUE(part);
  EXPECT_EQ(part->prompt_tokens, 6);
  // Shares are whole and add up, whatever the fractions; an item not sent (weight 0) gets none.
  const auto odd =
      embedding_values(answer_of({json::array({1}), json::array({2}), json::array({3})}, 7), 3, {1, 0, 1});
  EXPECT_EQ(json::parse(odd[0])["prompt_tokens"].get<long long>() + json::parse(odd[2])["prompt_tokens"].get<long long>(), 7);
  EXPECT_EQ(json::parse(odd[1])["prompt_tokens"], 0);
  // Without weights (or a count) no share is stored: an item then counts as estimated.
  const auto bare = embedding_values(answer_of({json::array({1}), json::array({2})}), 2);
  EXPECT_FALSE(json::parse(bare[0]).contains("prompt_tokens"));
  const auto est = embedding_hit_answer({bare[0], values[1], "[5]"}, "emb", {3, 100, 8});
  ASSERT_TRUE(est);
  EXPECT_EQ(est->prompt_tokens, 3 + 4 + 8);
  EXPECT_EQ(json::parse(est->body)["usage"]["prompt_tokens"], 15);
}

TEST(embedding_items, a_partial_hit_counts_the_cached_items_beside_the_provider_count) {
  // Items 0 and 2 cached (4 tokens stored with item 0; item 2 stored without a share,
  // estimated at 3); items 1 and 3 sent, for which the provider counts 7.
  const std::vector<std::optional<std::string>> cached{R"({"embedding":[0.5],"prompt_tokens":4})", std::nullopt,
                                                       "[1.5]", std::nullopt};
  auto merged = merge_embedding_answer(answer_of({json::array({1}), json::array({2})}), cached, {9, 9, 3, 9});
  ASSERT_TRUE(merged) << merged.error().message;
  const auto j = json::parse(*merged);
  EXPECT_EQ(j["usage"]["prompt_tokens"], 7 + 4 + 3);
  EXPECT_EQ(j["usage"]["total_tokens"], 7 + 4 + 3);
  // The items sent share the provider's own count (7), not the merged answer's.
  const auto values = embedding_values(*merged, 4, {0, 2, 0, 5}, 7);
  ASSERT_EQ(values.size(), 4u);
  EXPECT_EQ(json::parse(values[1])["prompt_tokens"].get<long long>() +
                json::parse(values[3])["prompt_tokens"].get<long long>(),
            7);
  // An answer without a count gets none added.
  const std::string uncounted = R"({"object":"list","data":[{"index":0,"embedding":[1]}],"model":"m"})";
  auto bare = merge_embedding_answer(uncounted, {R"({"embedding":[0.5],"prompt_tokens":4})", std::nullopt});
  ASSERT_TRUE(bare);
  EXPECT_FALSE(json::parse(*bare).contains("usage"));
}

// Items stored by older gateways are the embedding alone: still read, the answer then
// naming the model it is given; both kinds merge alike.
TEST(embedding_items, bare_embeddings_stored_before_are_still_read) {
  const auto hit = embedding_hit_answer({"[1,2]", "\"QUJD\""}, "emb");
  ASSERT_TRUE(hit);
  const auto j = json::parse(hit->body);
  EXPECT_EQ(j["model"], "emb");
  EXPECT_EQ(j["data"][0]["embedding"], json::array({1, 2}));
  EXPECT_EQ(j["data"][1]["embedding"], "QUJD");
  const auto mixed = embedding_hit_answer({"[1,2]", R"({"embedding":[3],"model":"m2"})"}, "emb");
  ASSERT_TRUE(mixed);
  EXPECT_EQ(json::parse(mixed->body)["model"], "m2");
  EXPECT_EQ(json::parse(mixed->body)["data"][1]["embedding"], json::array({3}));

  auto merged = merge_embedding_answer(answer_of({json::array({5})}), {"[1]", R"({"embedding":[2],"model":"m"})", std::nullopt});
  ASSERT_TRUE(merged) << merged.error().message;
  const auto mj = json::parse(*merged);
  EXPECT_EQ(mj["data"][0]["embedding"], json::array({1}));
  EXPECT_EQ(mj["data"][1]["embedding"], json::array({2}));
  EXPECT_EQ(mj["data"][2]["embedding"], json::array({5}));
  EXPECT_EQ(mj["model"], "text-embedding-3-small");
}

}  // namespace
