// Cohere v2 chat: request translation, answers and the typed SSE stream.
#include "stream_harness.hpp"
#include "switchyard/providers/adapter.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

using namespace switchyard;
using json = nlohmann::json;
using providers::call_type;

namespace {

config::deployment cohere_dep() {
  config::deployment d;
  d.model_name = "command";
  d.model = "cohere/command-r-plus";
  d.provider = config::find_provider("cohere");
  d.upstream_model = "command-r-plus";
  d.api_key = "co-key";
  return d;
}

const providers::adapter& co() { return providers::cohere_adapter(); }

std::string header(const providers::upstream_call& c, const std::string& name) {
  for (const auto& [k, v] : c.headers) {
    if (k == name) {
      return v;
    }
  }
  return {};
}

TEST(Cohere, RegistryEntries) {
  for (const char* name : {"cohere", "cohere_chat"}) {
    const auto* p = config::find_provider(name);
    ASSERT_NE(p, nullptr) << name;
    EXPECT_EQ(&providers::adapter_for(*p), &co());
    EXPECT_EQ(p->default_api_base, "https://api.cohere.com");
    EXPECT_EQ(p->api_key_env, "COHERE_API_KEY");
    EXPECT_EQ(p->exception_label, "CohereException");
    EXPECT_TRUE(p->serves.chat);
    EXPECT_FALSE(p->serves.embedding);
  }
}

TEST(Cohere, RequestTranslation) {
  json body = {{"model", "command"},
               {"messages",
                {{{"role", "system"}, {"content", "Be terse."}},
                 {{"role", "user"}, {"content", {{{"type", "text"}, {"text", "Weather in Paris?"}}}}},
                 {{"role", "assistant"},
                  {"content", nullptr},
                  {"tool_calls",
                   {{{"id", "call_1"},
                     {"type", "function"},
                     {"function", {{"name", "get_weather"}, {"arguments", "{\"city\":\"Paris\"}"}}}}}}},
                 {{"role", "tool"}, {"tool_call_id", "call_1"}, {"content", "sunny"}}}},
               {"tools", {{{"type", "function"}, {"function", {{"name", "get_weather"}}}}}},
               {"tool_choice", "required"},
               {"max_completion_tokens", 50},
               {"top_p", 0.5},
               {"stop", {"END"}},
               {"temperature", 0.1},
               {"k", 3}};
  auto call = co().build(call_type::chat, cohere_dep(), body, providers::build_options{true, false});
  ASSERT_TRUE(call) << call.error().message;
  EXPECT_EQ(call->url, "https://api.cohere.com/v2/chat");
  EXPECT_EQ(header(*call, "authorization"), "Bearer co-key");
  auto j = json::parse(call->body);
  EXPECT_EQ(j["model"], "command-r-plus");
  EXPECT_EQ(j["stream"], true);
  EXPECT_EQ(j["messages"][0], json::parse(R"({"role":"system","content":"Be terse."})"));
  EXPECT_EQ(j["messages"][1]["content"][0]["text"], "Weather in Paris?");
  EXPECT_EQ(j["messages"][2]["tool_calls"][0]["function"]["arguments"], "{\"city\":\"Paris\"}");
  EXPECT_FALSE(j["messages"][2].contains("content"));
  EXPECT_EQ(j["messages"][3], json::parse(R"({"role":"tool","tool_call_id":"call_1","content":"sunny"})"));
  EXPECT_EQ(j["tools"][0]["function"]["name"], "get_weather");
  EXPECT_EQ(j["tool_choice"], "REQUIRED");
  EXPECT_EQ(j["max_tokens"], 50);
  EXPECT_EQ(j["p"], 0.5);
  EXPECT_EQ(j["stop_sequences"], json::parse(R"(["END"])"));
  EXPECT_EQ(j["k"], 3);

  auto bad = co().build(call_type::chat, cohere_dep(),
                        {{"messages", {{{"role", "user"}, {"content", "x"}}}}, {"logit_bias", {{"1", 1}}}}, {});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().status, 400);
  EXPECT_EQ(bad.error().param, "logit_bias");
  auto emb = co().build(call_type::embedding, cohere_dep(), {{"input", "x"}}, {});
  ASSERT_FALSE(emb);
  EXPECT_EQ(emb.error().status, 400);
}

TEST(Cohere, ResponseFormatInV2Shape) {
  // v2 knows the types text and json_object (with an optional json_schema), not OpenAI's
  // json_schema type.
  auto rf = [](const json& format) {
    auto call = co().build(call_type::chat, cohere_dep(),
                           {{"messages", {{{"role", "user"}, {"content", "x"}}}}, {"response_format", format}}, {});
    EXPECT_TRUE(call) << call.error().message;
    return call ? json::parse(call->body)["response_format"] : json();
  };
  const json schema = json::parse(R"({"type":"object","properties":{"a":{"type":"string"}},"required":["a"]})");
  EXPECT_EQ(rf({{"type", "json_schema"}, {"json_schema", {{"name", "out"}, {"strict", true}, {"schema", schema}}}}),
            (json{{"type", "json_object"}, {"json_schema", schema}}));
  EXPECT_EQ(rf({{"type", "json_object"}}), json::parse(R"({"type":"json_object"})"));
  EXPECT_EQ(rf({{"type", "text"}}), json::parse(R"({"type":"text"})"));
  auto bad = co().build(call_type::chat, cohere_dep(),
                        {{"messages", {{{"role", "user"}, {"content", "x"}}}}, {"response_format", {{"type", "xml"}}}}, {});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().param, "response_format");
}

TEST(Cohere, ResponseTranslation) {
  constexpr std::string_view body = R"({"id":"abc","finish_reason":"TOOL_CALL",
    "message":{"role":"assistant","tool_plan":"I will look it up.",
      "tool_calls":[{"id":"get_weather_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},
    "usage":{"billed_units":{"input_tokens":10,"output_tokens":5},"tokens":{"input_tokens":70,"output_tokens":6}}})";
  auto r = co().translate_response(call_type::chat, cohere_dep(), body, "command");
  ASSERT_TRUE(r) << r.error().message;
  auto j = json::parse(r->body);
  EXPECT_EQ(j["choices"][0]["finish_reason"], "tool_calls");
  EXPECT_TRUE(j["choices"][0]["message"]["content"].is_null());
  EXPECT_EQ(j["choices"][0]["message"]["tool_calls"][0]["id"], "get_weather_1");
  EXPECT_EQ(j["usage"]["prompt_tokens"], 70) << "tokens, not billed_units";
  EXPECT_EQ(r->tokens.completion_tokens, 6);

  auto text = co().translate_response(
      call_type::chat, cohere_dep(),
      R"({"finish_reason":"MAX_TOKENS","message":{"content":[{"type":"text","text":"Hi"}]},"usage":{"billed_units":{"input_tokens":3,"output_tokens":1}}})",
      "command");
  ASSERT_TRUE(text);
  auto t = json::parse(text->body);
  EXPECT_EQ(t["choices"][0]["message"]["content"], "Hi");
  EXPECT_EQ(t["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(t["usage"]["prompt_tokens"], 3);
  for (std::string_view bad : {"nope", "{}", R"({"message":"x"})"}) {
    auto e = co().translate_response(call_type::chat, cohere_dep(), bad, "m");
    ASSERT_FALSE(e) << bad;
    EXPECT_NE(e.error().message.find("CohereException"), std::string::npos);
  }
}

constexpr std::string_view tool_stream = R"SSE(event: message-start
data: {"id":"m1","type":"message-start","delta":{"message":{"role":"assistant","content":[],"tool_plan":"","tool_calls":[],"citations":[]}}}

event: content-start
data: {"type":"content-start","index":0,"delta":{"message":{"content":{"type":"text","text":""}}}}

event: content-delta
data: {"type":"content-delta","index":0,"delta":{"message":{"content":{"text":"Let me"}}}}

event: content-delta
data: {"type":"content-delta","index":0,"delta":{"message":{"content":{"text":" check."}}}}

event: content-end
data: {"type":"content-end","index":0}

event: tool-plan-delta
data: {"type":"tool-plan-delta","delta":{"message":{"tool_plan":"I will"}}}

event: tool-call-start
data: {"type":"tool-call-start","index":0,"delta":{"message":{"tool_calls":{"id":"get_weather_x","type":"function","function":{"name":"get_weather","arguments":""}}}}}

event: tool-call-delta
data: {"type":"tool-call-delta","index":0,"delta":{"message":{"tool_calls":{"function":{"arguments":"{\"city\":"}}}}}

event: tool-call-delta
data: {"type":"tool-call-delta","index":0,"delta":{"message":{"tool_calls":{"function":{"arguments":"\"Paris\"}"}}}}}

event: tool-call-end
data: {"type":"tool-call-end","index":0}

event: message-end
data: {"type":"message-end","delta":{"finish_reason":"TOOL_CALL","usage":{"billed_units":{"input_tokens":8,"output_tokens":4},"tokens":{"input_tokens":20,"output_tokens":9}}}}

)SSE";

TEST(Cohere, StreamTranslationInAnySplit) {
  auto whole = test::run_stream(co(), call_type::chat, cohere_dep(), tool_stream, true,
                                test::split_sizes(tool_stream.size(), 0, 0));
  ASSERT_FALSE(whole.error) << whole.error->message;
  std::string text;
  std::string args;
  std::string finish;
  for (const auto& c : whole.chunks) {
    if (c["choices"].empty()) {
      continue;
    }
    const auto& delta = c["choices"][0]["delta"];
    text += delta.value("content", "");
    if (delta.contains("tool_calls")) {
      if (delta["tool_calls"][0].contains("id")) {
        EXPECT_EQ(delta["tool_calls"][0]["id"], "get_weather_x");
      }
      args += delta["tool_calls"][0]["function"].value("arguments", "");
    }
    if (c["choices"][0]["finish_reason"].is_string()) {
      finish = c["choices"][0]["finish_reason"];
    }
  }
  EXPECT_EQ(text, "Let me check.");
  EXPECT_EQ(json::parse(args), json::parse(R"({"city":"Paris"})"));
  EXPECT_EQ(finish, "tool_calls");
  EXPECT_EQ(whole.chunks.back()["usage"]["prompt_tokens"], 20);
  EXPECT_EQ(whole.tokens.completion_tokens, 9);
  for (std::size_t piece : {1u, 7u, 64u}) {
    auto split = test::run_stream(co(), call_type::chat, cohere_dep(), tool_stream, true,
                                  test::split_sizes(tool_stream.size(), piece, 3));
    ASSERT_FALSE(split.error);
    EXPECT_EQ(split.chunks, whole.chunks) << piece;
  }
}

TEST(Cohere, StreamFailures) {
  auto cut = std::string(tool_stream.substr(0, tool_stream.find("event: message-end")));
  auto r = test::run_stream(co(), call_type::chat, cohere_dep(), cut, true, test::split_sizes(cut.size(), 0, 0));
  ASSERT_TRUE(r.error);
  EXPECT_NE(r.error->message.find("before message-end"), std::string::npos);
  const std::string err =
      "event: message-end\ndata: {\"type\":\"message-end\",\"delta\":{\"finish_reason\":\"ERROR\",\"error\":\"boom\"}}\n\n";
  auto e = test::run_stream(co(), call_type::chat, cohere_dep(), err, true, test::split_sizes(err.size(), 0, 0));
  ASSERT_TRUE(e.error);
  EXPECT_NE(e.error->message.find("boom"), std::string::npos);
  const std::string bad = "event: content-delta\ndata: {\"type\":\n\n";
  auto b = test::run_stream(co(), call_type::chat, cohere_dep(), bad, true, test::split_sizes(bad.size(), 0, 0));
  ASSERT_TRUE(b.error);
  EXPECT_GE(b.error->status, 500);
}

}  // namespace
