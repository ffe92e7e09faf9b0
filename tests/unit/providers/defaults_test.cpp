// A deployment's request defaults and drop list, on both build paths: the OpenAI adapter's
// byte path (build_raw) and its DOM path (build) send the same JSON; translating adapters
// (Anthropic, Ollama) get them before translation. The request's own value always wins.
#include "switchyard/providers/adapter.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

using namespace switchyard;
using json = nlohmann::json;
using providers::call_type;

namespace {

config::deployment with_defaults(std::string_view provider = "openai") {
  config::deployment d;
  d.provider = config::find_provider(provider);
  d.model_name = "m";
  d.model = std::string(provider) + "/up";
  d.upstream_model = "up";
  d.api_base = "http://127.0.0.1:9/v1";
  d.api_key = "k";
  d.request_defaults = {{"max_tokens", 512}, {"temperature", 0.3}, {"stop", {"###"}}, {"num_ctx", 8192}};
  d.drop_param_names = {"logit_bias"};
  return d;
}

json raw_body(const config::deployment& d, const std::string& text, call_type type, bool stream) {
  auto scan = providers::scan_json(text);
  auto raw = providers::openai_adapter().build_raw(type, d, text, scan, {stream, false});
  EXPECT_TRUE(raw && *raw);
  return json::parse((*raw)->joined_body());
}

json dom_body(const config::deployment& d, const std::string& text, call_type type, bool stream) {
  auto dom = providers::openai_adapter().build(type, d, json::parse(text), {stream, false});
  EXPECT_TRUE(dom);
  return json::parse(dom->body);
}

}  // namespace

TEST(deployment_defaults, fill_unset_members_and_the_request_wins) {
  const auto d = with_defaults();
  const std::string none = R"({"model":"m","messages":[{"role":"user","content":"hi"}],"logit_bias":{"1":2}})";
  const std::string own = R"({"model":"m","messages":[],"max_tokens":20,"temperature":1})";
  for (bool stream : {false, true}) {
    SCOPED_TRACE(stream ? "stream" : "json");
    auto raw = raw_body(d, none, call_type::chat, stream);
    EXPECT_EQ(raw, dom_body(d, none, call_type::chat, stream));
    EXPECT_EQ(raw["max_tokens"], 512);
    EXPECT_EQ(raw["temperature"], 0.3);
    EXPECT_EQ(raw["stop"], json::array({"###"}));
    EXPECT_EQ(raw["num_ctx"], 8192);
    EXPECT_FALSE(raw.contains("logit_bias")) << "dropped";
    auto mine = raw_body(d, own, call_type::chat, stream);
    EXPECT_EQ(mine, dom_body(d, own, call_type::chat, stream));
    EXPECT_EQ(mine["max_tokens"], 20);
    EXPECT_EQ(mine["temperature"], 1);
    EXPECT_EQ(mine["stop"], json::array({"###"}));
  }
}

TEST(deployment_defaults, large_bodies_keep_their_pieces_and_get_the_defaults) {
  const auto d = with_defaults();
  const std::string big(50000, 'x');
  const std::string text = R"({"model":"m","messages":[{"role":"user","content":")" + big + R"("}]})";
  auto raw = raw_body(d, text, call_type::chat, true);
  EXPECT_EQ(raw, dom_body(d, text, call_type::chat, true));
  EXPECT_EQ(raw["max_tokens"], 512);
  EXPECT_EQ(raw["messages"][0]["content"], big);
}

TEST(deployment_defaults, not_for_embeddings_but_drops_apply) {
  const auto d = with_defaults();
  const std::string text = R"({"model":"m","input":"x","logit_bias":{}})";
  auto raw = raw_body(d, text, call_type::embedding, false);
  EXPECT_EQ(raw, dom_body(d, text, call_type::embedding, false));
  EXPECT_FALSE(raw.contains("max_tokens"));
  EXPECT_FALSE(raw.contains("logit_bias"));
}

TEST(deployment_defaults, translated_for_anthropic_and_ollama) {
  const json body = {{"model", "m"}, {"messages", json::array({{{"role", "user"}, {"content", "hi"}}})}};
  auto a = with_defaults("anthropic");
  a.request_defaults.erase("num_ctx");
  auto call = providers::anthropic_adapter().build(call_type::chat, a, body, {false, false});
  ASSERT_TRUE(call) << call.error().message;
  auto sent = json::parse(call->body);
  EXPECT_EQ(sent["max_tokens"], 512);
  EXPECT_EQ(sent["stop_sequences"], json::array({"###"}));
  json own = body;
  own["max_tokens"] = 33;
  call = providers::anthropic_adapter().build(call_type::chat, a, own, {false, false});
  ASSERT_TRUE(call);
  EXPECT_EQ(json::parse(call->body)["max_tokens"], 33);

  const auto o = with_defaults("ollama_chat");
  call = providers::ollama_adapter().build(call_type::chat, o, body, {false, false});
  ASSERT_TRUE(call) << call.error().message;
  sent = json::parse(call->body);
  EXPECT_EQ(sent["options"]["num_ctx"], 8192);
  EXPECT_EQ(sent["options"]["num_predict"], 512);
}

TEST(deployment_defaults, request_tags_are_not_sent_upstream) {
  const auto d = with_defaults();
  const std::string text = R"({"model":"m","messages":[],"tags":["paid"]})";
  EXPECT_FALSE(raw_body(d, text, call_type::chat, false).contains("tags"));
  EXPECT_FALSE(dom_body(d, text, call_type::chat, false).contains("tags"));
}
