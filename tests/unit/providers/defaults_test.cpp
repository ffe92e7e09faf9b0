// A deployment's request defaults and drop list, on both build paths: the OpenAI adapter's
// byte path (build_raw) and its DOM path (build) send the same JSON; translating adapters
// (Anthropic, Ollama, Gemini, Vertex AI, Bedrock, Cohere) get them before translation. The
// request's own value always wins.
#include "switchyard/providers/adapter.hpp"
#include "switchyard/providers/bedrock.hpp"

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

// A request's own additional_drop_params (LiteLLM reads it as a completion() argument)
// removes the names it lists whoever set them: the client or a deployment default; the
// member itself is never sent.
TEST(deployment_defaults, a_requests_additional_drop_params_drops_defaults_too) {
  const auto d = with_defaults();
  const std::string text =
      R"({"model":"m","messages":[],"top_p":0.5,"additional_drop_params":["temperature","top_p","max_tokens"]})";
  const std::string big(50000, 'x');
  const std::string large = R"({"model":"m","messages":[{"role":"user","content":")" + big +
                            R"("}],"additional_drop_params":["temperature","max_tokens"]})";
  for (bool stream : {false, true}) {
    SCOPED_TRACE(stream ? "stream" : "json");
    for (const auto* body : {&text, &large}) {
      auto raw = raw_body(d, *body, call_type::chat, stream);
      EXPECT_EQ(raw, dom_body(d, *body, call_type::chat, stream));
      EXPECT_FALSE(raw.contains("temperature")) << raw;
      EXPECT_FALSE(raw.contains("max_tokens")) << raw;
      EXPECT_FALSE(raw.contains("top_p")) << raw;
      EXPECT_FALSE(raw.contains("additional_drop_params")) << raw;
      EXPECT_EQ(raw["stop"], json::array({"###"})) << "the defaults not listed stay";
    }
  }
  // Translated: Anthropic's stop_sequences, Ollama's options.
  const json body = {{"model", "m"},
                     {"messages", json::array({{{"role", "user"}, {"content", "hi"}}})},
                     {"additional_drop_params", {"stop", "num_ctx", "temperature"}}};
  auto a = with_defaults("anthropic");
  a.request_defaults.erase("num_ctx");
  auto call = providers::anthropic_adapter().build(call_type::chat, a, body, {false, false});
  ASSERT_TRUE(call) << call.error().message;
  auto sent = json::parse(call->body);
  EXPECT_FALSE(sent.contains("stop_sequences")) << sent;
  EXPECT_FALSE(sent.contains("temperature")) << sent;
  EXPECT_FALSE(sent.contains("additional_drop_params")) << sent;
  EXPECT_EQ(sent["max_tokens"], 512);
  call = providers::ollama_adapter().build(call_type::chat, with_defaults("ollama_chat"), body, {false, false});
  ASSERT_TRUE(call) << call.error().message;
  sent = json::parse(call->body);
  EXPECT_FALSE(sent["options"].contains("num_ctx")) << sent;
  EXPECT_FALSE(sent["options"].contains("temperature")) << sent;
  EXPECT_EQ(sent["options"]["num_predict"], 512);
}

// A deployment's drop list removes its own defaults on the byte path too (the loader also
// leaves them out of request_defaults; a deployment built otherwise must not send them).
TEST(deployment_defaults, the_deployment_drop_list_removes_its_defaults_on_both_paths) {
  auto d = with_defaults();
  d.drop_param_names = {"temperature", "max_tokens"};
  const std::string text = R"({"model":"m","messages":[]})";
  auto raw = raw_body(d, text, call_type::chat, false);
  EXPECT_EQ(raw, dom_body(d, text, call_type::chat, false));
  EXPECT_FALSE(raw.contains("temperature")) << raw;
  EXPECT_FALSE(raw.contains("max_tokens")) << raw;
}

// A reasoning model: a dropped max_tokens default is not renamed into
// max_completion_tokens, and a dropped reasoning_effort no longer decides the temperature.
TEST(deployment_defaults, a_reasoning_models_dropped_defaults_are_not_sent) {
  auto d = with_defaults();
  d.model = "openai/gpt-5.1";
  d.upstream_model = "gpt-5.1";
  d.request_defaults = {{"max_tokens", 300}, {"reasoning_effort", "high"}};
  const std::string text =
      R"({"model":"m","messages":[],"temperature":0.2,"additional_drop_params":["max_tokens","reasoning_effort"]})";
  auto raw = raw_body(d, text, call_type::chat, false);
  EXPECT_EQ(raw, dom_body(d, text, call_type::chat, false));
  EXPECT_FALSE(raw.contains("max_completion_tokens")) << raw;
  EXPECT_FALSE(raw.contains("max_tokens")) << raw;
  EXPECT_FALSE(raw.contains("reasoning_effort")) << raw;
  EXPECT_EQ(raw["temperature"], 0.2) << "gpt-5.1 takes any temperature without reasoning_effort";
}

namespace {

// A translating deployment with defaults every one of them takes (no Ollama option) and a
// drop list naming a parameter none of them takes (a 400 if it were sent to the translation).
config::deployment translated(std::string_view provider, std::string upstream) {
  auto d = with_defaults(provider);
  d.request_defaults.erase("num_ctx");
  d.model = std::string(provider) + "/" + upstream;
  d.upstream_model = std::move(upstream);
  d.api_base = "http://127.0.0.1:9";
  if (provider == "vertex_ai") {
    d.litellm_params = {{"vertex_project", "proj-1"}, {"vertex_location", "us-central1"}};
  } else if (provider == "bedrock") {
    d.litellm_params = {{"aws_access_key_id", "AKIDEXAMPLE"},
                        {"aws_secret_access_key", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"},
                        {"aws_region_name", "us-west-2"}};
  }
  return d;
}

json sent(const providers::adapter& a, const config::deployment& d, const json& body,
          call_type type = call_type::chat) {
  auto call = a.build(type, d, body, {false, false});
  EXPECT_TRUE(call) << (call ? "" : call.error().message);
  return call ? json::parse(call->body) : json();
}

json chat(json extra = json::object()) {
  json body = {{"model", "m"}, {"messages", json::array({{{"role", "user"}, {"content", "hi"}}})}};
  body.update(extra);
  return body;
}

json at(const json& j, const json::json_pointer& p) { return j.contains(p) ? j.at(p) : json(); }

// Where each translation puts max_tokens, temperature and stop.
struct wire_names {
  json::json_pointer max_tokens, temperature, stop;
};

void expect_defaults_translated(const providers::adapter& a, const config::deployment& d, const wire_names& where) {
  SCOPED_TRACE(d.model);
  // The defaults go through the translation like the client's own members.
  auto out = sent(a, d, chat());
  EXPECT_EQ(at(out, where.max_tokens), 512) << out;
  EXPECT_EQ(at(out, where.temperature), 0.3) << out;
  EXPECT_EQ(at(out, where.stop), json::array({"###"})) << out;
  // The request's own value wins.
  out = sent(a, d, chat({{"max_tokens", 33}, {"temperature", 0.9}}));
  EXPECT_EQ(at(out, where.max_tokens), 33) << out;
  EXPECT_EQ(at(out, where.temperature), 0.9) << out;
  // The deployment's drop list: logit_bias (which these providers refuse) is not sent and
  // is no 400. The request's additional_drop_params drops the deployment's defaults too,
  // and is itself never sent.
  out = sent(a, d,
             chat({{"logit_bias", {{"1", 2}}}, {"additional_drop_params", json::array({"temperature", "stop"})}}));
  EXPECT_EQ(out.dump().find("logit_bias"), std::string::npos) << out;
  EXPECT_EQ(out.dump().find("additional_drop_params"), std::string::npos) << out;
  EXPECT_FALSE(out.contains(where.temperature)) << out;
  EXPECT_FALSE(out.contains(where.stop)) << out;
  EXPECT_EQ(at(out, where.max_tokens), 512) << out;
}

}  // namespace

TEST(deployment_defaults, translated_for_gemini_vertex_bedrock_and_cohere) {
  const wire_names gemini{json::json_pointer("/generationConfig/maxOutputTokens"),
                          json::json_pointer("/generationConfig/temperature"),
                          json::json_pointer("/generationConfig/stopSequences")};
  expect_defaults_translated(providers::gemini_adapter(), translated("gemini", "gemini-2.5-flash"), gemini);
  expect_defaults_translated(providers::vertex_adapter(), translated("vertex_ai", "gemini-2.5-pro"), gemini);
  expect_defaults_translated(providers::vertex_adapter(), translated("vertex_ai", "claude-sonnet-4@20250514"),
                             {json::json_pointer("/max_tokens"), json::json_pointer("/temperature"),
                              json::json_pointer("/stop_sequences")});
  const wire_names converse{json::json_pointer("/inferenceConfig/maxTokens"),
                            json::json_pointer("/inferenceConfig/temperature"),
                            json::json_pointer("/inferenceConfig/stopSequences")};
  expect_defaults_translated(providers::bedrock_adapter(),
                             translated("bedrock", "anthropic.claude-3-5-sonnet-20240620-v1:0"), converse);
  expect_defaults_translated(providers::bedrock_adapter(),
                             translated("bedrock", "converse/meta.llama3-1-70b-instruct-v1:0"), converse);
  expect_defaults_translated(providers::bedrock_adapter(),
                             translated("bedrock", "invoke/anthropic.claude-3-5-sonnet-20240620-v1:0"), converse);
  expect_defaults_translated(providers::cohere_adapter(), translated("cohere", "command-r-plus"),
                             {json::json_pointer("/max_tokens"), json::json_pointer("/temperature"),
                              json::json_pointer("/stop_sequences")});
}

// Embeddings get no defaults, but the drop lists apply (as on the OpenAI adapter).
TEST(deployment_defaults, translated_embeddings_get_the_drop_lists_only) {
  auto g = translated("gemini", "gemini-embedding-001");
  g.drop_param_names = {"dimensions"};
  auto out = sent(providers::gemini_adapter(), g, {{"model", "m"}, {"input", "x"}, {"dimensions", 8}},
                  call_type::embedding);
  EXPECT_FALSE(out.contains("outputDimensionality")) << out;
  EXPECT_FALSE(out.contains("generationConfig")) << out;
  auto b = translated("bedrock", "amazon.titan-embed-text-v2:0");
  out = sent(providers::bedrock_adapter(), b,
             {{"model", "m"},
              {"input", "x"},
              {"dimensions", 256},
              {"additional_drop_params", json::array({"dimensions"})}},
             call_type::embedding);
  EXPECT_EQ(out, json({{"inputText", "x"}})) << out;
}
