#include "stream_harness.hpp"
#include "switchyard/providers/adapter.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

using namespace switchyard;
using json = nlohmann::json;
using providers::call_type;

namespace {

config::deployment anthropic_dep() {
  config::deployment d;
  d.model_name = "claude";
  d.model = "anthropic/claude-sonnet-4-20250514";
  d.provider = config::find_provider("anthropic");
  d.upstream_model = "claude-sonnet-4-20250514";
  d.api_key = "sk-ant-upstream";
  return d;
}

const providers::adapter& ant() {
  return providers::anthropic_adapter();
}

std::string header(const providers::upstream_call& c, const std::string& name) {
  for (const auto& [k, v] : c.headers) {
    if (k == name) {
      return v;
    }
  }
  return {};
}

json build_ok(const json& body, providers::build_options opts = {}) {
  auto call = ant().build(call_type::chat, anthropic_dep(), body, opts);
  EXPECT_TRUE(call) << (call ? "" : call.error().message);
  return call ? json::parse(call->body) : json();
}

json user(const std::string& text) {
  return {{"role", "user"}, {"content", text}};
}

// Captured from the Messages API (ids shortened): a plain text answer.
constexpr std::string_view text_stream = R"SSE(event: message_start
data: {"type":"message_start","message":{"id":"msg_01XFDUDYJgAACzvnptvVoYEL","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-20250514","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":25,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

event: ping
data: {"type": "ping"}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":", world! \u00e9\u4f60\u597d"}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":15}}

event: message_stop
data: {"type":"message_stop"}

)SSE";

// A text block, then a tool_use block whose input arrives as partial JSON.
constexpr std::string_view tool_stream = R"SSE(event: message_start
data: {"type":"message_start","message":{"id":"msg_014p7gG3wDgGV9EUtLvnow3U","type":"message","role":"assistant","model":"claude-sonnet-4-20250514","stop_sequence":null,"usage":{"input_tokens":472,"output_tokens":2,"cache_creation_input_tokens":100,"cache_read_input_tokens":200},"content":[],"stop_reason":null}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

event: ping
data: {"type": "ping"}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Okay, let me check the weather."}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: content_block_start
data: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_01T1x1fJ34qAmk2tNTrN7Up6","name":"get_weather","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"location\":"}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":" \"San Francisco, CA\"}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":1}

event: content_block_start
data: {"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_02","name":"get_time","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"tz\": \"PST\"}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":2}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":89}}

event: message_stop
data: {"type":"message_stop"}

)SSE";

// Extended thinking: thinking_delta and signature_delta before the text.
constexpr std::string_view thinking_stream = R"SSE(event: message_start
data: {"type":"message_start","message":{"id":"msg_01think","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-20250514","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":12,"output_tokens":1}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Let me think: 2+2."}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds"}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: content_block_start
data: {"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"4"}}

event: content_block_stop
data: {"type":"content_block_stop","index":1}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"max_tokens","stop_sequence":null},"usage":{"output_tokens":30}}

event: message_stop
data: {"type":"message_stop"}

)SSE";

std::string crlf(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '\n') {
      out += "\r\n";
    } else {
      out += c;
    }
  }
  return out;
}

test::stream_run run(std::string_view input, bool include_usage = false, call_type type = call_type::chat,
                     std::size_t piece = 0, unsigned seed = 0) {
  return test::run_stream(ant(), type, anthropic_dep(), input, include_usage,
                          test::split_sizes(input.size(), piece, seed));
}

}  // namespace

// ---- request -------------------------------------------------------------------

TEST(anthropic_request, url_headers_model_and_default_max_tokens) {
  json body = {{"model", "claude"}, {"messages", json::array({user("hi")})}};
  auto call = ant().build(call_type::chat, anthropic_dep(), body, {});
  ASSERT_TRUE(call);
  EXPECT_EQ(call->url, "https://api.anthropic.com/v1/messages");
  EXPECT_EQ(header(*call, "x-api-key"), "sk-ant-upstream");
  EXPECT_EQ(header(*call, "anthropic-version"), "2023-06-01");
  EXPECT_EQ(header(*call, "content-type"), "application/json");
  EXPECT_EQ(header(*call, "authorization"), "") << "Anthropic takes x-api-key, not a bearer token";
  auto sent = json::parse(call->body);
  EXPECT_EQ(sent["model"], "claude-sonnet-4-20250514");
  EXPECT_EQ(sent["max_tokens"], 4096) << "documented default";
  EXPECT_EQ(sent["messages"], json::array({user("hi")}));
  EXPECT_FALSE(sent.contains("stream"));
  EXPECT_FALSE(sent.contains("system"));
}

TEST(anthropic_request, api_base_variants) {
  auto d = anthropic_dep();
  json body = {{"messages", json::array({user("hi")})}};
  d.api_base = "http://127.0.0.1:8080/";
  EXPECT_EQ(ant().build(call_type::chat, d, body, {})->url, "http://127.0.0.1:8080/v1/messages");
  d.api_base = "http://127.0.0.1:8080/v1";
  EXPECT_EQ(ant().build(call_type::chat, d, body, {})->url, "http://127.0.0.1:8080/v1/messages");
  d.api_base = "http://proxy/anthropic/v1/messages";
  EXPECT_EQ(ant().build(call_type::chat, d, body, {})->url, "http://proxy/anthropic/v1/messages");
}

TEST(anthropic_request, extra_headers_can_override_version) {
  auto d = anthropic_dep();
  d.extra_headers["anthropic-version"] = "2099-01-01";
  d.extra_headers["anthropic-beta"] = "prompt-caching-2024-07-31";
  auto call = ant().build(call_type::chat, d, json{{"messages", json::array({user("hi")})}}, {});
  ASSERT_TRUE(call);
  int versions = 0;
  for (const auto& [k, v] : call->headers) {
    versions += k == "anthropic-version" ? 1 : 0;
  }
  EXPECT_EQ(versions, 1);
  EXPECT_EQ(header(*call, "anthropic-version"), "2099-01-01");
  EXPECT_EQ(header(*call, "anthropic-beta"), "prompt-caching-2024-07-31");
}

TEST(anthropic_request, system_messages_lifted_to_top_level) {
  auto one = build_ok({{"messages", json::array({{{"role", "system"}, {"content", "Be brief."}}, user("hi")})}});
  EXPECT_EQ(one["system"], "Be brief.");
  EXPECT_EQ(one["messages"].size(), 1u);
  EXPECT_EQ(one["messages"][0]["role"], "user");

  auto many = build_ok({{"messages", json::array({{{"role", "system"}, {"content", "A."}},
                                                  user("hi"),
                                                  {{"role", "developer"},
                                                   {"content", json::array({{{"type", "text"}, {"text", "B."}}})}}})}});
  EXPECT_EQ(many["system"], "A.\nB.") << "several system/developer messages are joined";
  EXPECT_EQ(many["messages"], json::array({user("hi")}));

  auto cached = build_ok(
      {{"messages", json::array({{{"role", "system"},
                                  {"content", json::array({{{"type", "text"},
                                                            {"text", "long context"},
                                                            {"cache_control", {{"type", "ephemeral"}}}}})}},
                                 user("hi")})}});
  ASSERT_TRUE(cached["system"].is_array()) << "cache_control needs system blocks";
  EXPECT_EQ(cached["system"][0]["cache_control"]["type"], "ephemeral");
}

TEST(anthropic_request, max_tokens_sources) {
  auto a = build_ok({{"messages", json::array({user("hi")})}, {"max_tokens", 100}});
  EXPECT_EQ(a["max_tokens"], 100);
  auto b = build_ok({{"messages", json::array({user("hi")})}, {"max_completion_tokens", 200}});
  EXPECT_EQ(b["max_tokens"], 200);
  EXPECT_FALSE(b.contains("max_completion_tokens"));
  auto bad = ant().build(call_type::chat, anthropic_dep(),
                         json{{"messages", json::array({user("hi")})}, {"max_tokens", "lots"}}, {});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().status, 400);
  EXPECT_EQ(bad.error().param, "max_tokens");
}

TEST(anthropic_request, sampling_stop_user_and_gateway_fields) {
  json body = {{"messages", json::array({user("hi")})},
               {"temperature", 0.3},
               {"top_p", 0.9},
               {"top_k", 40},
               {"stop", "END"},
               {"user", "user-42"},
               {"metadata", {{"tags", {"x"}}}},
               {"mock_testing_fallbacks", false},
               {"num_retries", 3},
               {"stream", true},
               {"stream_options", {{"include_usage", true}}},
               {"thinking", {{"type", "enabled"}, {"budget_tokens", 2048}}}};
  auto sent = build_ok(body, {true, false});
  EXPECT_EQ(sent["temperature"], 0.3);
  EXPECT_EQ(sent["top_p"], 0.9);
  EXPECT_EQ(sent["top_k"], 40);
  EXPECT_EQ(sent["stop_sequences"], json::array({"END"}));
  EXPECT_EQ(sent["metadata"], (json{{"user_id", "user-42"}})) << "user -> metadata.user_id, gateway metadata dropped";
  EXPECT_EQ(sent["stream"], true);
  EXPECT_EQ(sent["thinking"]["budget_tokens"], 2048) << "Anthropic's own fields pass through";
  for (const char* k : {"stop", "user", "mock_testing_fallbacks", "num_retries", "stream_options"}) {
    EXPECT_FALSE(sent.contains(k)) << k;
  }

  auto list = build_ok({{"messages", json::array({user("hi")})}, {"stop", {"a", "\n", "b"}}});
  EXPECT_EQ(list["stop_sequences"], json::array({"a", "b"})) << "whitespace-only sequences dropped";
  auto none = build_ok({{"messages", json::array({user("hi")})}, {"stop", {"\n"}}});
  EXPECT_FALSE(none.contains("stop_sequences"));
}

TEST(anthropic_request, tools_and_tool_choice) {
  json tools = json::array({{{"type", "function"},
                             {"function",
                              {{"name", "get_weather"},
                               {"description", "Weather for a city"},
                               {"parameters",
                                {{"type", "object"},
                                 {"properties", {{"city", {{"type", "string"}}}}},
                                 {"required", {"city"}}}}}}},
                            {{"type", "function"}, {"function", {{"name", "now"}}}}});
  auto sent = build_ok({{"messages", json::array({user("hi")})}, {"tools", tools}, {"tool_choice", "auto"}});
  ASSERT_EQ(sent["tools"].size(), 2u);
  EXPECT_EQ(sent["tools"][0]["name"], "get_weather");
  EXPECT_EQ(sent["tools"][0]["description"], "Weather for a city");
  EXPECT_EQ(sent["tools"][0]["input_schema"]["required"], json::array({"city"}));
  EXPECT_EQ(sent["tools"][1]["input_schema"], (json{{"type", "object"}, {"properties", json::object()}}));
  EXPECT_FALSE(sent["tools"][1].contains("description"));
  EXPECT_EQ(sent["tool_choice"], (json{{"type", "auto"}}));

  auto req = build_ok({{"messages", json::array({user("hi")})}, {"tools", tools}, {"tool_choice", "required"}});
  EXPECT_EQ(req["tool_choice"], (json{{"type", "any"}}));
  auto none = build_ok({{"messages", json::array({user("hi")})}, {"tools", tools}, {"tool_choice", "none"}});
  EXPECT_EQ(none["tool_choice"], (json{{"type", "none"}}));
  auto named = build_ok({{"messages", json::array({user("hi")})},
                         {"tools", tools},
                         {"tool_choice", {{"type", "function"}, {"function", {{"name", "now"}}}}}});
  EXPECT_EQ(named["tool_choice"], (json{{"type", "tool"}, {"name", "now"}}));
  auto serial = build_ok({{"messages", json::array({user("hi")})}, {"tools", tools}, {"parallel_tool_calls", false}});
  EXPECT_EQ(serial["tool_choice"], (json{{"type", "auto"}, {"disable_parallel_tool_use", true}}));

  auto bad = ant().build(call_type::chat, anthropic_dep(),
                         json{{"messages", json::array({user("hi")})}, {"tools", tools}, {"tool_choice", "sometimes"}},
                         {});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().param, "tool_choice");
}

TEST(anthropic_request, tool_calls_and_tool_messages) {
  json msgs = json::array(
      {user("weather and time?"),
       {{"role", "assistant"},
        {"content", "Checking."},
        {"tool_calls",
         json::array({{{"id", "toolu_1"},
                       {"type", "function"},
                       {"function", {{"name", "get_weather"}, {"arguments", "{\"city\":\"Paris\"}"}}}},
                      {{"id", "toolu_2"}, {"type", "function"}, {"function", {{"name", "now"}, {"arguments", ""}}}}})}},
       {{"role", "tool"}, {"tool_call_id", "toolu_1"}, {"content", "18C"}},
       {{"role", "tool"}, {"tool_call_id", "toolu_2"}, {"content", json::array({{{"type", "text"}, {"text", "noon"}}})}},
       user("thanks")});
  auto sent = build_ok({{"messages", msgs}});
  ASSERT_EQ(sent["messages"].size(), 3u);
  const auto& asst = sent["messages"][1];
  EXPECT_EQ(asst["role"], "assistant");
  ASSERT_EQ(asst["content"].size(), 3u);
  EXPECT_EQ(asst["content"][0], (json{{"type", "text"}, {"text", "Checking."}}));
  EXPECT_EQ(asst["content"][1],
            (json{{"type", "tool_use"}, {"id", "toolu_1"}, {"name", "get_weather"}, {"input", {{"city", "Paris"}}}}));
  EXPECT_EQ(asst["content"][2]["input"], json::object()) << "empty arguments -> {}";
  const auto& results = sent["messages"][2];
  EXPECT_EQ(results["role"], "user") << "tool results and the next user turn merged into one user message";
  ASSERT_EQ(results["content"].size(), 3u);
  EXPECT_EQ(results["content"][0], (json{{"type", "tool_result"}, {"tool_use_id", "toolu_1"}, {"content", "18C"}}));
  EXPECT_EQ(results["content"][1]["tool_use_id"], "toolu_2");
  EXPECT_EQ(results["content"][1]["content"], json::array({{{"type", "text"}, {"text", "noon"}}}));
  EXPECT_EQ(results["content"][2], (json{{"type", "text"}, {"text", "thanks"}}));

  auto only_calls = build_ok(
      {{"messages", json::array({user("x"),
                                 {{"role", "assistant"},
                                  {"content", nullptr},
                                  {"tool_calls", json::array({{{"id", "t"},
                                                               {"type", "function"},
                                                               {"function", {{"name", "f"}, {"arguments", "{}"}}}}})}},
                                 {{"role", "tool"}, {"tool_call_id", "t"}, {"content", "ok"}}})}});
  EXPECT_EQ(only_calls["messages"][1]["content"].size(), 1u) << "null content adds no empty text block";

  auto bad_args = ant().build(
      call_type::chat, anthropic_dep(),
      json{{"messages", json::array({{{"role", "assistant"},
                                      {"tool_calls", json::array({{{"id", "t"},
                                                                   {"type", "function"},
                                                                   {"function", {{"name", "f"}, {"arguments", "{nope"}}}}})}}})}},
      {});
  ASSERT_FALSE(bad_args);
  EXPECT_EQ(bad_args.error().param, "messages[0].tool_calls[0].function.arguments");

  auto no_id = ant().build(call_type::chat, anthropic_dep(),
                           json{{"messages", json::array({{{"role", "tool"}, {"content", "x"}}})}}, {});
  ASSERT_FALSE(no_id);
  EXPECT_EQ(no_id.error().status, 400);
}

TEST(anthropic_request, consecutive_same_role_messages_merged) {
  auto sent = build_ok({{"messages", json::array({user("one"), user("two"),
                                                  {{"role", "assistant"}, {"content", "a"}},
                                                  {{"role", "assistant"}, {"content", "b"}}, user("three")})}});
  ASSERT_EQ(sent["messages"].size(), 3u);
  EXPECT_EQ(sent["messages"][0]["content"],
            json::array({{{"type", "text"}, {"text", "one"}}, {{"type", "text"}, {"text", "two"}}}));
  EXPECT_EQ(sent["messages"][1]["content"].size(), 2u);
  EXPECT_EQ(sent["messages"][2]["content"], "three");
}

TEST(anthropic_request, images) {
  json parts = json::array({{{"type", "text"}, {"text", "what is this?"}},
                            {{"type", "image_url"}, {"image_url", {{"url", "data:image/png;base64,iVBORw0KGgo="}}}},
                            {{"type", "image_url"}, {"image_url", "https://example.com/cat.jpg"}}});
  auto sent = build_ok({{"messages", json::array({{{"role", "user"}, {"content", parts}}})}});
  const auto& c = sent["messages"][0]["content"];
  ASSERT_EQ(c.size(), 3u);
  EXPECT_EQ(c[0], (json{{"type", "text"}, {"text", "what is this?"}}));
  EXPECT_EQ(c[1], (json{{"type", "image"},
                        {"source", {{"type", "base64"}, {"media_type", "image/png"}, {"data", "iVBORw0KGgo="}}}}));
  EXPECT_EQ(c[2], (json{{"type", "image"}, {"source", {{"type", "url"}, {"url", "https://example.com/cat.jpg"}}}}));

  auto bad = ant().build(
      call_type::chat, anthropic_dep(),
      json{{"messages",
            json::array({{{"role", "user"},
                          {"content", json::array({{{"type", "image_url"}, {"image_url", {{"url", "ftp://x/y.png"}}}}})}}})}},
      {});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().status, 400);
  EXPECT_EQ(bad.error().param, "messages[0].content[0]");
}

TEST(anthropic_request, unsupported_params_400_or_dropped) {
  for (const char* p : {"presence_penalty", "frequency_penalty", "seed", "logit_bias", "n", "logprobs",
                        "top_logprobs"}) {
    json v = std::string(p) == "logit_bias" ? json{{"50256", -100}} : std::string(p) == "logprobs" ? json(true) : json(2);
    json body = {{"messages", json::array({user("hi")})}, {p, v}};
    auto r = ant().build(call_type::chat, anthropic_dep(), body, {false, false});
    ASSERT_FALSE(r) << p;
    EXPECT_EQ(r.error().status, 400) << p;
    EXPECT_EQ(r.error().type, "invalid_request_error") << p;
    EXPECT_EQ(r.error().param, p);
    EXPECT_NE(r.error().message.find(p), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find("drop_params"), std::string::npos) << r.error().message;

    auto dropped = ant().build(call_type::chat, anthropic_dep(), body, {false, true});
    ASSERT_TRUE(dropped) << p;
    EXPECT_FALSE(json::parse(dropped->body).contains(p)) << p;
  }
  auto noop = ant().build(call_type::chat, anthropic_dep(),
                          json{{"messages", json::array({user("hi")})}, {"n", 1}, {"logprobs", false}}, {});
  ASSERT_TRUE(noop) << "values that change nothing are accepted";
  EXPECT_FALSE(json::parse(noop->body).contains("n"));
}

TEST(anthropic_request, response_format_becomes_a_forced_tool) {
  json schema = {{"type", "object"}, {"properties", {{"age", {{"type", "integer"}}}}}};
  auto sent = build_ok({{"messages", json::array({user("age?")})},
                        {"response_format", {{"type", "json_schema"}, {"json_schema", {{"name", "a"}, {"schema", schema}}}}}});
  ASSERT_EQ(sent["tools"].size(), 1u);
  EXPECT_EQ(sent["tools"][0]["name"], "json_tool_call");
  EXPECT_EQ(sent["tools"][0]["input_schema"], schema);
  EXPECT_EQ(sent["tool_choice"], (json{{"type", "tool"}, {"name", "json_tool_call"}}));
  EXPECT_FALSE(sent.contains("response_format"));

  auto text = build_ok({{"messages", json::array({user("x")})}, {"response_format", {{"type", "text"}}}});
  EXPECT_FALSE(text.contains("tools"));

  json with_tools = {{"messages", json::array({user("x")})},
                     {"tools", json::array({{{"type", "function"}, {"function", {{"name", "f"}}}}})},
                     {"response_format", {{"type", "json_object"}}}};
  auto r = ant().build(call_type::chat, anthropic_dep(), with_tools, {});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().status, 400);
  EXPECT_EQ(r.error().param, "response_format");
  auto dropped = ant().build(call_type::chat, anthropic_dep(), with_tools, {false, true});
  ASSERT_TRUE(dropped);
  EXPECT_EQ(json::parse(dropped->body)["tools"][0]["name"], "f");
}

TEST(anthropic_request, reasoning_effort_maps_to_thinking) {
  auto sent = build_ok({{"messages", json::array({user("x")})}, {"reasoning_effort", "high"}});
  EXPECT_EQ(sent["thinking"], (json{{"type", "enabled"}, {"budget_tokens", 4096}}));
  EXPECT_EQ(sent["max_tokens"], 8192) << "default max_tokens must exceed the thinking budget";
}

TEST(anthropic_request, completion_prompt_wrapped_and_embeddings_unsupported) {
  auto call = ant().build(call_type::completion, anthropic_dep(), json{{"prompt", "Say hi"}, {"max_tokens", 5}}, {});
  ASSERT_TRUE(call);
  auto sent = json::parse(call->body);
  EXPECT_EQ(sent["messages"], json::array({user("Say hi")}));
  EXPECT_EQ(sent["max_tokens"], 5);
  auto list = ant().build(call_type::completion, anthropic_dep(), json{{"prompt", {"Say hi"}}}, {});
  ASSERT_TRUE(list);
  auto many = ant().build(call_type::completion, anthropic_dep(), json{{"prompt", {"a", "b"}}}, {});
  ASSERT_FALSE(many);
  EXPECT_EQ(many.error().param, "prompt");

  const auto& anthropic = *config::find_provider("anthropic");
  EXPECT_FALSE(providers::supports(anthropic, call_type::embedding));
  EXPECT_TRUE(providers::supports(anthropic, call_type::chat));
  EXPECT_TRUE(providers::supports(anthropic, call_type::completion));
  auto emb = ant().build(call_type::embedding, anthropic_dep(), json{{"input", "x"}}, {});
  ASSERT_FALSE(emb);
  EXPECT_EQ(emb.error().status, 400);
}

TEST(anthropic_request, bad_shapes_are_400_not_exceptions) {
  for (json body : {json::array(), json{{"messages", "hi"}}, json{{"messages", json::array({42})}},
                    json{{"messages", json::array({{{"role", "wizard"}, {"content", "x"}}})}},
                    json{{"messages", json::array({user("x")})}, {"tools", "all"}},
                    json{{"messages", json::array({{{"role", "user"}, {"content", 5}}})}}}) {
    auto r = ant().build(call_type::chat, anthropic_dep(), body, {});
    ASSERT_FALSE(r) << body.dump();
    EXPECT_EQ(r.error().status, 400) << body.dump();
  }
}

// ---- response ------------------------------------------------------------------

TEST(anthropic_response, text_tool_calls_and_usage) {
  json msg = {{"id", "msg_01"},
              {"type", "message"},
              {"role", "assistant"},
              {"model", "claude-sonnet-4-20250514"},
              {"content", json::array({{{"type", "text"}, {"text", "Let me check. "}},
                                       {{"type", "text"}, {"text", "One moment."}},
                                       {{"type", "tool_use"},
                                        {"id", "toolu_9"},
                                        {"name", "get_weather"},
                                        {"input", {{"city", "Paris"}}}}})},
              {"stop_reason", "tool_use"},
              {"stop_sequence", nullptr},
              {"usage",
               {{"input_tokens", 10},
                {"cache_creation_input_tokens", 20},
                {"cache_read_input_tokens", 30},
                {"output_tokens", 7}}}};
  auto r = ant().translate_response(call_type::chat, anthropic_dep(), msg.dump(), "claude");
  ASSERT_TRUE(r) << r.error().message;
  auto out = json::parse(r->body);
  EXPECT_EQ(out["object"], "chat.completion");
  EXPECT_EQ(out["id"], "msg_01");
  EXPECT_EQ(out["model"], "claude") << "the model the client asked for";
  EXPECT_TRUE(out["created"].is_number_integer());
  const auto& choice = out["choices"][0];
  EXPECT_EQ(choice["finish_reason"], "tool_calls");
  EXPECT_EQ(choice["message"]["role"], "assistant");
  EXPECT_EQ(choice["message"]["content"], "Let me check. One moment.");
  ASSERT_EQ(choice["message"]["tool_calls"].size(), 1u);
  const auto& tc = choice["message"]["tool_calls"][0];
  EXPECT_EQ(tc["id"], "toolu_9");
  EXPECT_EQ(tc["type"], "function");
  EXPECT_EQ(tc["function"]["name"], "get_weather");
  ASSERT_TRUE(tc["function"]["arguments"].is_string());
  EXPECT_EQ(json::parse(tc["function"]["arguments"].get<std::string>()), (json{{"city", "Paris"}}));
  EXPECT_EQ(out["usage"]["prompt_tokens"], 60) << "input + cache read + cache creation";
  EXPECT_EQ(out["usage"]["completion_tokens"], 7);
  EXPECT_EQ(out["usage"]["total_tokens"], 67);
  EXPECT_EQ(out["usage"]["prompt_tokens_details"]["cached_tokens"], 30);
  EXPECT_EQ(out["usage"]["cache_creation_input_tokens"], 20);
  EXPECT_EQ(out["usage"]["cache_read_input_tokens"], 30);
  EXPECT_TRUE(r->tokens.known);
  EXPECT_EQ(r->tokens.prompt_tokens, 60);
  EXPECT_EQ(r->tokens.completion_tokens, 7);
  EXPECT_EQ(r->tokens.total_tokens, 67);
  EXPECT_EQ(r->tokens.cached_tokens, 30) << "kept apart for the cache-read price";
  EXPECT_EQ(r->tokens.cache_creation_tokens, 20) << "kept apart for the cache-creation price";
  EXPECT_EQ(r->tokens.reasoning_tokens, 0);
}

TEST(anthropic_response, content_null_when_only_tool_calls_and_finish_reasons) {
  json msg = {{"id", "m"},
              {"content", json::array({{{"type", "tool_use"}, {"id", "t"}, {"name", "f"}, {"input", json::object()}}})},
              {"stop_reason", "tool_use"},
              {"usage", {{"input_tokens", 1}, {"output_tokens", 1}}}};
  auto out = json::parse(ant().translate_response(call_type::chat, anthropic_dep(), msg.dump(), "m")->body);
  EXPECT_TRUE(out["choices"][0]["message"]["content"].is_null());
  EXPECT_EQ(out["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"], "{}");

  for (auto [stop, finish] : std::vector<std::pair<const char*, const char*>>{
           {"end_turn", "stop"}, {"stop_sequence", "stop"}, {"max_tokens", "length"}, {"tool_use", "tool_calls"}}) {
    json m = {{"id", "m"}, {"content", json::array({{{"type", "text"}, {"text", "x"}}})}, {"stop_reason", stop}};
    auto o = json::parse(ant().translate_response(call_type::chat, anthropic_dep(), m.dump(), "m")->body);
    EXPECT_EQ(o["choices"][0]["finish_reason"], finish) << stop;
  }
}

TEST(anthropic_response, json_tool_answer_becomes_content) {
  json msg = {{"id", "m"},
              {"content",
               json::array({{{"type", "tool_use"}, {"id", "t"}, {"name", "json_tool_call"}, {"input", {{"age", 22}}}}})},
              {"stop_reason", "tool_use"}};
  auto out = json::parse(ant().translate_response(call_type::chat, anthropic_dep(), msg.dump(), "m")->body);
  EXPECT_EQ(json::parse(out["choices"][0]["message"]["content"].get<std::string>()), (json{{"age", 22}}));
  EXPECT_FALSE(out["choices"][0]["message"].contains("tool_calls"));
  EXPECT_EQ(out["choices"][0]["finish_reason"], "stop");
}

TEST(anthropic_response, thinking_becomes_reasoning_content) {
  json msg = {{"id", "m"},
              {"content", json::array({{{"type", "thinking"}, {"thinking", "hmm"}, {"signature", "s"}},
                                       {{"type", "text"}, {"text", "4"}}})},
              {"stop_reason", "end_turn"}};
  auto out = json::parse(ant().translate_response(call_type::chat, anthropic_dep(), msg.dump(), "m")->body);
  EXPECT_EQ(out["choices"][0]["message"]["reasoning_content"], "hmm");
  EXPECT_EQ(out["choices"][0]["message"]["content"], "4");
}

TEST(anthropic_response, signed_thinking_blocks_are_kept_and_go_back_first) {
  // With extended thinking and tools, Anthropic refuses the next turn unless the assistant
  // message opens with the signed thinking it came with: the answer hands the blocks out
  // (thinking_blocks, LiteLLM's field) and a returned message sends them first.
  json msg = {{"id", "m"},
              {"content", json::array({{{"type", "thinking"}, {"thinking", "hmm"}, {"signature", "sig-1"}},
                                       {{"type", "redacted_thinking"}, {"data", "opaque"}},
                                       {{"type", "tool_use"}, {"id", "toolu_1"}, {"name", "f"}, {"input", json::object()}}})},
              {"stop_reason", "tool_use"}};
  auto r = ant().translate_response(call_type::chat, anthropic_dep(), msg.dump(), "m");
  ASSERT_TRUE(r);
  json answer = json::parse(r->body)["choices"][0]["message"];
  const json blocks = json::parse(R"([{"type":"thinking","thinking":"hmm","signature":"sig-1"},
                                      {"type":"redacted_thinking","data":"opaque"}])");
  EXPECT_EQ(answer["thinking_blocks"], blocks);

  json out = build_ok({{"messages", json::array({user("go"), answer,
                                                 {{"role", "tool"}, {"tool_call_id", "toolu_1"}, {"content", "ok"}}})},
                       {"reasoning_effort", "low"}});
  EXPECT_EQ(out["messages"][1]["content"], json::parse(R"([{"type":"thinking","thinking":"hmm","signature":"sig-1"},
    {"type":"redacted_thinking","data":"opaque"},{"type":"tool_use","id":"toolu_1","name":"f","input":{}}])"));

  // Streamed: each block whole, once it ends.
  auto s = run(thinking_stream);
  ASSERT_FALSE(s.error);
  json streamed = json::array();
  for (const auto& c : s.chunks) {
    if (c["choices"].empty()) {
      continue;
    }
    for (const auto& b : c["choices"][0]["delta"].value("thinking_blocks", json::array())) {
      streamed.push_back(b);
    }
  }
  EXPECT_EQ(streamed, json::parse(R"([{"type":"thinking","thinking":"Let me think: 2+2.",
                                       "signature":"EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds"}])"));
}

TEST(anthropic_response, completion_unwrapped_to_text_completion) {
  json msg = {{"id", "m"},
              {"content", json::array({{{"type", "text"}, {"text", "hi there"}}})},
              {"stop_reason", "max_tokens"},
              {"usage", {{"input_tokens", 3}, {"output_tokens", 2}}}};
  auto r = ant().translate_response(call_type::completion, anthropic_dep(), msg.dump(), "claude");
  ASSERT_TRUE(r);
  auto out = json::parse(r->body);
  EXPECT_EQ(out["object"], "text_completion");
  EXPECT_EQ(out["choices"][0]["text"], "hi there");
  EXPECT_EQ(out["choices"][0]["index"], 0);
  EXPECT_EQ(out["choices"][0]["finish_reason"], "length");
  EXPECT_TRUE(out["choices"][0]["logprobs"].is_null());
  EXPECT_FALSE(out["choices"][0].contains("message"));
  EXPECT_EQ(out["usage"]["total_tokens"], 5);
}

TEST(anthropic_response, malformed_bodies_are_errors) {
  for (std::string_view body : {"", "not json", "[1,2]", "{\"id\":\"m\"}", "{\"content\": 5}"}) {
    auto r = ant().translate_response(call_type::chat, anthropic_dep(), body, "m");
    ASSERT_FALSE(r) << body;
    EXPECT_EQ(r.error().status, 500) << body;
    EXPECT_NE(r.error().message.find("AnthropicException"), std::string::npos);
  }
  auto in_band = ant().translate_response(
      call_type::chat, anthropic_dep(),
      R"({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})", "m");
  ASSERT_FALSE(in_band);
  EXPECT_EQ(in_band.error().status, 529);
  EXPECT_NE(in_band.error().message.find("Overloaded"), std::string::npos);
}

TEST(anthropic_response, translate_error_keeps_status_and_message) {
  auto e = ant().translate_error(
      anthropic_dep(), 400,
      R"({"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: must be positive"}})");
  EXPECT_EQ(e.status, 400);
  EXPECT_EQ(e.type, "invalid_request_error");
  EXPECT_NE(e.message.find("max_tokens: must be positive"), std::string::npos);
  EXPECT_NE(e.message.find("AnthropicException"), std::string::npos);
  auto rl = ant().translate_error(anthropic_dep(), 429,
                                  R"({"type":"error","error":{"type":"rate_limit_error","message":"slow down"}})");
  EXPECT_EQ(rl.status, 429);
  EXPECT_TRUE(rl.retryable);
  auto raw = ant().translate_error(anthropic_dep(), 502, "<html>bad gateway</html>");
  EXPECT_EQ(raw.status, 502);
  EXPECT_NE(raw.message.find("bad gateway"), std::string::npos);
}

// ---- stream --------------------------------------------------------------------

TEST(anthropic_stream, text_stream_translated) {
  auto r = run(text_stream, true);
  ASSERT_FALSE(r.error) << r.error->message;
  ASSERT_GE(r.chunks.size(), 4u);
  EXPECT_EQ(r.chunks[0]["object"], "chat.completion.chunk");
  EXPECT_EQ(r.chunks[0]["model"], "my-model");
  EXPECT_EQ(r.chunks[0]["choices"][0]["delta"]["role"], "assistant");
  EXPECT_EQ(test::assembled_text(r.chunks), "Hello, world! \xc3\xa9\xe4\xbd\xa0\xe5\xa5\xbd");
  EXPECT_EQ(test::finish_reason(r.chunks), "stop");
  const auto& last = r.chunks.back();
  EXPECT_TRUE(last["choices"].empty()) << "usage chunk has no choices";
  EXPECT_EQ(last["usage"]["prompt_tokens"], 25);
  EXPECT_EQ(last["usage"]["completion_tokens"], 15);
  EXPECT_EQ(last["usage"]["total_tokens"], 40);
  EXPECT_TRUE(r.tokens.known);
  EXPECT_EQ(r.tokens.total_tokens, 40);
}

TEST(anthropic_stream, id_comes_from_message_start) {
  auto t = ant().make_stream(call_type::chat, anthropic_dep(), "m", false);
  std::vector<std::string> out;
  ASSERT_TRUE(t->feed(text_stream, out));
  ASSERT_TRUE(t->finish(out));
  for (const auto& p : out) {
    EXPECT_EQ(json::parse(p)["id"], "msg_01XFDUDYJgAACzvnptvVoYEL");
  }
}

TEST(anthropic_stream, usage_chunk_only_when_asked_but_tracked_anyway) {
  auto r = run(text_stream, false);
  ASSERT_FALSE(r.error);
  for (const auto& c : r.chunks) {
    EXPECT_FALSE(c.contains("usage")) << c.dump();
    EXPECT_FALSE(c["choices"].empty());
  }
  EXPECT_EQ(r.tokens.prompt_tokens, 25);
  EXPECT_EQ(r.tokens.completion_tokens, 15);
}

TEST(anthropic_stream, cache_tokens_from_message_start_kept_apart) {
  for (std::size_t piece : {0u, 1u, 13u}) {
    auto r = run(tool_stream, true, call_type::chat, piece);
    ASSERT_FALSE(r.error) << piece;
    EXPECT_EQ(r.tokens.prompt_tokens, 772) << "input 472 + cache read 200 + cache creation 100";
    EXPECT_EQ(r.tokens.cached_tokens, 200);
    EXPECT_EQ(r.tokens.cache_creation_tokens, 100);
    EXPECT_EQ(r.tokens.completion_tokens, 89) << "message_delta's output_tokens";
    ASSERT_FALSE(r.chunks.empty());
    const auto& u = r.chunks.back()["usage"];
    EXPECT_EQ(u["prompt_tokens"], 772) << r.chunks.back().dump();
    EXPECT_EQ(u["prompt_tokens_details"]["cached_tokens"], 200);
    EXPECT_EQ(u["cache_creation_input_tokens"], 100);
  }
}

TEST(anthropic_stream, cache_counts_in_message_delta_replace_the_start_ones) {
  // Newer API versions repeat the cumulative input counts in message_delta.
  const std::string wire =
      "event: message_start\n"
      "data: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"usage\":{\"input_tokens\":5,"
      "\"cache_read_input_tokens\":0,\"output_tokens\":1}}}\n\n"
      "event: message_delta\n"
      "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"input_tokens\":5,"
      "\"cache_read_input_tokens\":40,\"cache_creation_input_tokens\":7,\"output_tokens\":3}}\n\n"
      "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
  auto r = run(wire);
  ASSERT_FALSE(r.error);
  EXPECT_EQ(r.tokens.prompt_tokens, 52);
  EXPECT_EQ(r.tokens.cached_tokens, 40);
  EXPECT_EQ(r.tokens.cache_creation_tokens, 7);
  EXPECT_EQ(r.tokens.completion_tokens, 3);
}

TEST(anthropic_stream, every_split_gives_the_same_chunks) {
  for (auto input : {text_stream, tool_stream, thinking_stream}) {
    std::string in(input);
    auto reference = test::run_stream(ant(), call_type::chat, anthropic_dep(), in, true, {in.size()});
    ASSERT_FALSE(reference.error);
    for (const auto& sizes : test::all_splits(in.size())) {
      auto r = test::run_stream(ant(), call_type::chat, anthropic_dep(), in, true, sizes);
      ASSERT_FALSE(r.error) << r.error->message;
      EXPECT_EQ(r.chunks, reference.chunks);
      EXPECT_EQ(r.tokens.total_tokens, reference.tokens.total_tokens);
    }
    auto with_crlf = crlf(input);
    auto r = test::run_stream(ant(), call_type::chat, anthropic_dep(), with_crlf, true,
                              test::split_sizes(with_crlf.size(), 1, 0));
    ASSERT_FALSE(r.error);
    EXPECT_EQ(r.chunks, reference.chunks) << "CRLF line ends";
  }
}

TEST(anthropic_stream, tool_use_deltas) {
  auto r = run(tool_stream, true, call_type::chat, 5);
  ASSERT_FALSE(r.error) << r.error->message;
  EXPECT_EQ(test::assembled_text(r.chunks), "Okay, let me check the weather.");
  auto calls = test::assembled_tool_calls(r.chunks);
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[0].id, "toolu_01T1x1fJ34qAmk2tNTrN7Up6");
  EXPECT_EQ(calls[0].name, "get_weather");
  EXPECT_EQ(json::parse(calls[0].arguments), (json{{"location", "San Francisco, CA"}}));
  EXPECT_EQ(calls[1].id, "toolu_02");
  EXPECT_EQ(json::parse(calls[1].arguments), (json{{"tz", "PST"}}));
  EXPECT_EQ(test::finish_reason(r.chunks), "tool_calls");
  // The first tool chunk announces the call with empty arguments, as OpenAI does.
  bool announced = false;
  for (const auto& c : r.chunks) {
    for (const auto& ch : c["choices"]) {
      if (ch["delta"].contains("tool_calls") && ch["delta"]["tool_calls"][0].contains("id")) {
        const auto& tc = ch["delta"]["tool_calls"][0];
        EXPECT_EQ(tc["type"], "function");
        EXPECT_EQ(tc["function"]["arguments"], "");
        announced = true;
      }
    }
  }
  EXPECT_TRUE(announced);
  EXPECT_EQ(r.chunks.back()["usage"]["prompt_tokens"], 772) << "input + cache creation + cache read";
  EXPECT_EQ(r.chunks.back()["usage"]["completion_tokens"], 89);
  EXPECT_EQ(r.chunks.back()["usage"]["prompt_tokens_details"]["cached_tokens"], 200);
  EXPECT_EQ(r.tokens.prompt_tokens, 772);
}

TEST(anthropic_stream, thinking_is_reasoning_content) {
  auto r = run(thinking_stream);
  ASSERT_FALSE(r.error);
  std::string reasoning;
  for (const auto& c : r.chunks) {
    const auto& d = c["choices"][0]["delta"];
    if (d.contains("reasoning_content")) {
      reasoning += d["reasoning_content"].get<std::string>();
    }
  }
  EXPECT_EQ(reasoning, "Let me think: 2+2.");
  EXPECT_EQ(test::assembled_text(r.chunks), "4");
  EXPECT_EQ(test::finish_reason(r.chunks), "length");
}

TEST(anthropic_stream, completion_call_streams_text_completion_chunks) {
  auto r = run(text_stream, true, call_type::completion, 3);
  ASSERT_FALSE(r.error);
  for (const auto& c : r.chunks) {
    EXPECT_EQ(c["object"], "text_completion");
  }
  EXPECT_EQ(test::assembled_text(r.chunks), "Hello, world! \xc3\xa9\xe4\xbd\xa0\xe5\xa5\xbd");
  EXPECT_EQ(test::finish_reason(r.chunks), "stop");
  EXPECT_EQ(r.chunks.back()["usage"]["total_tokens"], 40);
}

TEST(anthropic_stream, cut_streams_are_errors) {
  std::string in(text_stream);
  auto stop = in.find("event: message_stop");
  for (std::size_t cut : {std::size_t{0}, in.find("event: content_block_delta"), in.find("\"Hello\"") , stop,
                          stop + 10}) {
    auto r = run(std::string_view(in).substr(0, cut));
    ASSERT_TRUE(r.error) << "cut at " << cut;
    EXPECT_TRUE(r.error_from_finish);
    EXPECT_NE(r.error->message.find("message_stop"), std::string::npos) << r.error->message;
    EXPECT_GE(r.error->status, 500);
  }
}

TEST(anthropic_stream, error_event_ends_the_stream_with_its_status) {
  struct tc {
    const char* type;
    int status;
  };
  for (auto [type, status] : {tc{"overloaded_error", 529}, tc{"rate_limit_error", 429}, tc{"api_error", 500},
                              tc{"invalid_request_error", 400}, tc{"authentication_error", 401},
                              tc{"permission_error", 403}, tc{"not_found_error", 404},
                              tc{"request_too_large", 413}, tc{"something_new", 500}}) {
    std::string in(text_stream.substr(0, text_stream.find("event: content_block_stop")));
    in += "event: error\ndata: {\"type\": \"error\", \"error\": {\"type\": \"" + std::string(type) +
          "\", \"message\": \"Provider said no\"}}\n\n";
    auto r = run(in, false, call_type::chat, 9);
    ASSERT_TRUE(r.error) << type;
    EXPECT_FALSE(r.error_from_finish);
    EXPECT_EQ(r.error->status, status) << type;
    EXPECT_NE(r.error->message.find("Provider said no"), std::string::npos);
    EXPECT_EQ(test::assembled_text(r.chunks), "Hello, world! \xc3\xa9\xe4\xbd\xa0\xe5\xa5\xbd")
        << "what came before the error was delivered";
  }
}

TEST(anthropic_stream, unknown_events_and_deltas_are_ignored) {
  std::string in(text_stream);
  auto pos = in.find("event: content_block_stop");
  in.insert(pos,
            "event: brand_new_event\ndata: {\"type\":\"brand_new_event\",\"stuff\":[1,2,3]}\n\n"
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,"
            "\"delta\":{\"type\":\"citations_delta\",\"citation\":{\"cited_text\":\"x\"}}}\n\n"
            ": a comment line\n\n"
            "data: {\"type\":\"another_new_one\"}\n\n");
  auto plain = run(text_stream, true);
  auto extra = run(in, true, call_type::chat, 1);
  ASSERT_FALSE(extra.error) << extra.error->message;
  EXPECT_EQ(extra.chunks, plain.chunks);
}

TEST(anthropic_stream, malformed_events_are_errors) {
  std::string head(text_stream.substr(0, text_stream.find("event: content_block_delta")));
  for (std::string bad : {
           "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_de\n\n",
           "event: content_block_delta\ndata: [1,2]\n\n",
           "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":7,"
           "\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{}\"}}\n\n",
           "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1}\n\n"}) {
    auto r = run(head + bad + std::string(text_stream.substr(text_stream.find("event: content_block_stop"))));
    ASSERT_TRUE(r.error) << bad;
    EXPECT_FALSE(r.error_from_finish) << bad;
    EXPECT_EQ(r.error->status, 500);
    EXPECT_NE(r.error->message.find("AnthropicException"), std::string::npos);
  }
}

TEST(anthropic_stream, feed_after_an_error_keeps_failing) {
  auto t = ant().make_stream(call_type::chat, anthropic_dep(), "m", false);
  std::vector<std::string> out;
  EXPECT_FALSE(t->feed("data: {oops\n\n", out));
  EXPECT_FALSE(t->feed(text_stream, out));
  EXPECT_FALSE(t->finish(out));
}

TEST(anthropic_stream, events_after_message_stop_are_ignored) {
  std::string in(text_stream);
  in += "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"late\"}}\n\n";
  auto r = run(in, true);
  EXPECT_FALSE(r.error);
}

TEST(anthropic_stream, absurdly_nested_json_is_rejected_not_recursed) {
  std::string deep = std::string(200000, '[') + std::string(200000, ']');
  std::string in(text_stream.substr(0, text_stream.find("event: content_block_stop")));
  in += "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":" + deep + "}\n\n";
  auto r = run(in);
  ASSERT_TRUE(r.error);
  EXPECT_EQ(r.error->status, 500);
  auto resp = ant().translate_response(call_type::chat, anthropic_dep(), "{\"content\":" + deep + "}", "m");
  ASSERT_FALSE(resp);
  EXPECT_EQ(resp.error().status, 500);
}

TEST(anthropic_request, message_level_cache_control_marks_the_last_block) {
  json cc = {{"type", "ephemeral"}};
  auto sent = build_ok({{"messages", json::array({{{"role", "system"}, {"content", "big doc"}, {"cache_control", cc}},
                                                  {{"role", "user"}, {"content", "q"}, {"cache_control", cc}}})}});
  ASSERT_TRUE(sent["system"].is_array());
  EXPECT_EQ(sent["system"][0], (json{{"type", "text"}, {"text", "big doc"}, {"cache_control", cc}}));
  EXPECT_EQ(sent["messages"][0]["content"], json::array({{{"type", "text"}, {"text", "q"}, {"cache_control", cc}}}));
}

TEST(anthropic_request, top_level_system_field) {
  auto native = build_ok({{"messages", json::array({user("q")})}, {"system", "native system"}});
  EXPECT_EQ(native["system"], "native system") << "Anthropic's own field passes through";
  auto both = build_ok({{"messages", json::array({{{"role", "system"}, {"content", "lifted"}}, user("q")})},
                        {"system", "native system"}});
  EXPECT_EQ(both["system"], "lifted") << "system messages win";
}

TEST(anthropic_response, usage_unknown_without_usage) {
  json msg = {{"id", "m"}, {"content", json::array({{{"type", "text"}, {"text", "x"}}})}, {"stop_reason", "end_turn"}};
  auto r = ant().translate_response(call_type::chat, anthropic_dep(), msg.dump(), "m");
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->tokens.known);
}

namespace {

// `stream` with every event's "type" written with an escape ("\u0074ype" is "type"'s key,
// "content_block_\u0064elta" its value): the same stream, which the translator then reads
// through the DOM, not from its scan of plain events.
std::string escaped_types(std::string_view stream) {
  std::string out(stream);
  for (std::string_view from : {R"("type":"content_block_delta")", R"("type":"content_block_stop")",
                                R"("type":"message_stop")", R"("type":"ping")", R"("type":"text_delta")"}) {
    const std::string_view value = from.substr(8);  // after `"type":"`
    const char* hex = value[0] == 'c' ? "63" : value[0] == 'm' ? "6d" : value[0] == 'p' ? "70" : "74";
    const std::string to = R"("\u0074ype":"\u00)" + std::string(hex) + std::string(value.substr(1));
    for (auto at = out.find(from); at != std::string::npos; at = out.find(from, at + to.size())) {
      out.replace(at, from.size(), to);
    }
  }
  return out;
}

std::vector<std::string> payloads_of(std::string_view stream, bool include_usage, call_type type = call_type::chat) {
  auto t = ant().make_stream(type, anthropic_dep(), "my-model", include_usage);
  std::vector<std::string> out;
  EXPECT_TRUE(t->feed(stream, out));
  EXPECT_TRUE(t->finish(out));
  return out;
}

// `"created":<n>` -> `"created":0`: two streams made in different seconds compare equal.
std::string without_created(std::string s) {
  const auto at = s.find(R"("created":)");
  if (at != std::string::npos) {
    const auto end = s.find(',', at);
    s.replace(at + 10, end - at - 10, "0");
  }
  return s;
}

}  // namespace

// Text deltas, pings, block stops and the message's stop are read from a scan of their
// bytes, and the role, text and finish chunks written without a DOM: the chunks must be
// the very bytes the DOM path gives, escapes and non-ASCII text included, for chat and
// completion streams, whole or cut anywhere.
TEST(anthropic_stream, plain_events_give_the_same_chunks_as_the_dom_path) {
  const std::string texts[] = {"Hello", "", "quote \\\" backslash \\\\ slash \\/ tab \\t newline \\n",
                               "\\u00e9\\u4f60\\ud83d\\ude00 and raw \xc3\xa9\xe4\xbd\xa0", "\\u0001\\u001f\\u007f",
                               std::string(300, 'x')};
  for (const auto& text : texts) {
    const std::string stream = std::string(R"(event: message_start
data: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude","content":[],"stop_reason":null,"usage":{"input_tokens":5,"output_tokens":1}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

event: ping
data: {"type": "ping"}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":")") + text + R"("}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"!"}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":7}}

event: message_stop
data: {"type":"message_stop"}

)";
    const std::string dom = escaped_types(stream);
    ASSERT_NE(dom, stream);
    for (const auto type : {call_type::chat, call_type::completion}) {
      for (const bool usage : {false, true}) {
        const auto plain = payloads_of(stream, usage, type);
        const auto via_dom = payloads_of(dom, usage, type);
        ASSERT_EQ(plain.size(), via_dom.size()) << text;
        ASSERT_GE(plain.size(), type == call_type::chat ? 3u : 2u) << text;  // role (chat), "!", finish
        for (std::size_t i = 0; i < plain.size(); ++i) {
          EXPECT_EQ(without_created(plain[i]), without_created(via_dom[i])) << text << " chunk " << i;
        }
      }
    }
    // Cut into pieces of every size up to 40 bytes: the same chunks.
    for (std::size_t piece : {1u, 7u, 40u}) {
      auto r = run(stream, true, call_type::chat, piece);
      ASSERT_FALSE(r.error) << text;
      EXPECT_EQ(test::finish_reason(r.chunks), "stop");
    }
  }
}

// The plain reading of a content_block_stop takes only an integer index; any other
// (a string, a fraction) is read by the DOM as before (index 0): a thinking block at
// index 0 is still sent whole at its stop.
TEST(anthropic_stream, block_stop_with_an_odd_index_is_read_as_before) {
  for (std::string_view index : {R"("0")", "0.0", "0"}) {
    const std::string stream = std::string(R"(event: message_start
data: {"type":"message_start","message":{"id":"msg_1","usage":{"input_tokens":5,"output_tokens":1}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hmm"}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"sig"}}

event: content_block_stop
data: {"type":"content_block_stop","index":)") + std::string(index) + R"(}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":7}}

event: message_stop
data: {"type":"message_stop"}

)";
    auto r = run(stream, false);
    ASSERT_FALSE(r.error) << index;
    bool block_sent = false;
    for (const auto& c : r.chunks) {
      if (!c["choices"].empty() && c["choices"][0]["delta"].contains("thinking_blocks")) {
        block_sent = true;
        EXPECT_EQ(c["choices"][0]["delta"]["thinking_blocks"][0]["signature"], "sig");
      }
    }
    EXPECT_TRUE(block_sent) << index;
  }
}

// ---- the request written without a DOM ---------------------------------------------

namespace {

// build_raw's bytes for `text` (nullopt: it left the request to build()), after checking
// that they are exactly build()'s: URL, headers and body, byte for byte.
std::optional<std::string> raw_same_as_dom(const std::string& text, bool stream,
                                           const config::deployment& d = anthropic_dep()) {
  auto scan = providers::scan_json(text);
  EXPECT_TRUE(scan.ok) << text;
  auto raw = ant().build_raw(call_type::chat, d, text, scan, {stream, false});
  if (!raw) {
    return std::nullopt;
  }
  auto dom = ant().build(call_type::chat, d, json::parse(text), {stream, false});
  EXPECT_TRUE(raw->has_value()) << text;
  EXPECT_TRUE(dom.has_value()) << text << "\n" << (dom ? "" : dom.error().message);
  if (!raw->has_value() || !dom) {
    return std::nullopt;
  }
  EXPECT_EQ((*raw)->url, dom->url);
  EXPECT_EQ((*raw)->headers, dom->headers);
  EXPECT_TRUE((*raw)->body_parts.empty());
  EXPECT_EQ((*raw)->body, dom->body) << "request: " << text;
  return (*raw)->body;
}

}  // namespace

// The common request (text messages, the usual parameters) is written from the client's
// bytes: the same bytes as the DOM path, escapes, merged turns and joined system texts
// included.
TEST(anthropic_build_raw, plain_requests_are_written_without_a_dom) {
  const std::string plain[] = {
      // The bench's shape: a system and a user message, max_tokens, user, a stream.
      R"({"model":"claude","stream":true,"max_tokens":64,"user":"u-1","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hello \u00e9 \"x\" \\ \n"}]})",
      R"({"messages":[{"role":"user","content":"a"},{"role":"user","content":"b"},{"role":"assistant","content":"c"},{"role":"user","content":""},{"role":"assistant","content":"d"},{"role":"system","content":"s1"},{"role":"developer","content":"s2\tx"}]})",
      R"({"model":"claude","messages":[],"max_completion_tokens":5,"max_tokens":7,"temperature":0.70,"top_p":1,"top_k":40,"stop":["END"," ","\n",3,"b\\"],"metadata":{"a":1},"tags":["t"],"stream_options":{"include_usage":true},"tools":null})",
      R"( { "messages" : [ { "content" : "spaced" , "role" : "user" } ] , "stop" : "  x " , "user" : "" } )",
      // Content lists of text parts, as the OpenAI SDKs send them.
      R"({"messages":[{"role":"system","content":[{"type":"text","text":"s1"},"s2"]},{"role":"user","content":[{"type":"text","text":"one"}]},{"role":"user","content":[{"text":"two","type":"text"},"three",{"type":"text","text":""}]},{"role":"assistant","content":[]},{"role":"user","content":"four"}]})",
  };
  for (const auto& text : plain) {
    for (bool stream : {false, true}) {
      EXPECT_TRUE(raw_same_as_dom(text, stream).has_value()) << "left to the DOM path: " << text;
    }
  }
}

// Whatever the fast path takes, it writes exactly what the DOM path writes; what it
// leaves (tools, content lists, images, unknown parameters, duplicates, values the DOM
// path refuses...) goes to the DOM path. Thousands of generated requests.
TEST(anthropic_build_raw, same_bytes_as_the_dom_path_over_many_shapes) {
  // String literals' insides, as a client writes them.
  const std::vector<std::string> texts = {
      "", "hello", "a \\\"quoted\\\" word", "line\\nbreak\\r\\ttab", "\\u00e9\\u4f60\\ud83d\\ude00",
      "raw \xc3\xa9\xe4\xbd\xa0", "\\b\\f\\u0001\\u001f\\u007f\x7f", "\\/slash/ and \\\\ back", "   ", "\\u0000nul",
      std::string(300, 'x')};
  const std::vector<std::string> roles = {"system", "developer", "user", "assistant", "user", "assistant"};
  const std::vector<std::string> contents_unusual = {
      R"([{"type":"text","text":"part"}])", "null", R"([{"type":"image_url","image_url":{"url":"https://x/y.png"}}])",
      "5"};
  const std::vector<std::pair<std::string, std::vector<std::string>>> params = {
      {"max_tokens", {"10", "1", "0", "-3", "10.0", "1e2", "99999999999999999999", "\"5\""}},
      {"max_completion_tokens", {"20", "4096", "0", "2.5"}},
      {"temperature", {"0.7", "0.70", "1", "1.0", "1e0", "-0", "\"0.5\"", "[1]", "{\"b\":1,\"a\":2}"}},
      {"top_p", {"0.9", "1"}},
      {"top_k", {"40", "4.0"}},
      {"stop", {"\"END\"", "\"  \"", "\"\\n\"", "[\"a\",\"\\t\",\"b\\u00e9\",7,[\"z\"]]", "[]", "5", "{\"x\":1}"}},
      {"user", {"\"u1\"", "\"\"", "5", "\"\\u00e9\\\"\"", "null"}},
      {"metadata", {"{\"k\":\"v\"}"}},
      {"stream", {"true", "false"}},
      {"stream_options", {"{\"include_usage\":true}"}},
      {"tags", {"[\"a\"]"}},
      {"model", {"\"claude\"", "5"}},
      {"tools", {"null", "[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}]"}},
      {"n", {"1", "2"}},
      {"thinking", {"{\"type\":\"enabled\",\"budget_tokens\":1024}"}},
      {"reasoning_effort", {"\"low\""}},
      {"response_format", {"{\"type\":\"text\"}"}},
      {"system", {"\"top-level\""}},
      {"additional_drop_params", {"[\"temperature\"]"}},
      {"vendor_field", {"1"}},
  };
  std::mt19937 rng(20261207);
  auto pick = [&rng](std::size_t n) { return static_cast<std::size_t>(rng() % n); };
  int fast = 0;
  int total = 0;
  for (int i = 0; i < 3000; ++i) {
    const char* sp = pick(4) == 0 ? " \n " : "";  // white space between tokens, sometimes
    std::string msgs = "[";
    const std::size_t count = pick(6);
    for (std::size_t m = 0; m < count; ++m) {
      if (m != 0) {
        msgs += std::string(",") + sp;
      }
      std::string content = "\"" + texts[pick(texts.size())] + "\"";
      if (pick(5) == 0) {
        // A content list: text parts (strings or {"type": "text", ...}), sometimes with
        // another kind of part or a part with more in it.
        content = "[";
        const std::size_t parts = pick(4);
        for (std::size_t j = 0; j < parts; ++j) {
          if (j != 0) {
            content += std::string(",") + sp;
          }
          const std::string t = "\"" + texts[pick(texts.size())] + "\"";
          switch (pick(12)) {
            case 0:
              content += t;
              break;
            case 1:
              content += std::string("{") + sp + "\"text\":" + t + "," + sp + "\"type\"" + sp + ":" + sp + "\"text\"}";
              break;
            case 2:
              content += "{\"type\":\"text\",\"text\":" + t + ",\"cache_control\":{\"type\":\"ephemeral\"}}";
              break;
            case 3:
              content += R"({"type":"image_url","image_url":{"url":"https://x/y.png"}})";
              break;
            case 4:
              content += pick(2) == 0 ? R"({"type":"text"})" : R"({"type":"text","text":5})";
              break;
            default:
              content += "{\"type\":\"text\",\"text\":" + t + "}";
          }
        }
        content += "]";
      } else if (pick(30) == 0) {
        content = contents_unusual[pick(contents_unusual.size())];
      }
      std::string role = "\"" + roles[pick(roles.size())] + "\"";
      if (pick(60) == 0) {
        role = pick(2) == 0 ? "\"tool\"" : "\"us\\u0065r\"";
      }
      const std::size_t shape = pick(40);
      if (shape == 0) {
        msgs += "{\"role\":" + role + ",\"content\":" + content + ",\"name\":\"n\"}";
      } else if (shape == 1) {
        msgs += "{\"role\":" + role + "}";
      } else if (shape == 2) {
        msgs += "{\"role\":" + role + ",\"content\":" + content + ",\"content\":\"again\"}";
      } else if (shape < 20) {
        msgs += std::string("{") + sp + "\"content\"" + sp + ":" + sp + content + sp + "," + sp + "\"role\":" + role + "}";
      } else {
        msgs += "{\"role\":" + role + ",\"content\":" + content + "}";
      }
    }
    msgs += "]";
    std::string body = std::string("{") + sp + "\"messages\":" + sp + msgs;
    for (const auto& [name, values] : params) {
      const bool unusual = name == "tools" || name == "n" || name == "thinking" || name == "reasoning_effort" ||
                           name == "response_format" || name == "system" || name == "additional_drop_params" ||
                           name == "vendor_field";
      if (pick(unusual ? 25 : 3) == 0) {
        body += std::string(",") + sp + "\"" + name + "\":" + sp + values[pick(values.size())];
      }
    }
    if (pick(50) == 0) {
      body += ",\"max_tokens\":3,\"max_tokens\":4";  // a duplicate
    }
    body += "}";
    for (bool stream : {false, true}) {
      ++total;
      auto scan = providers::scan_json(body);
      ASSERT_TRUE(scan.ok) << body;
      auto raw = ant().build_raw(call_type::chat, anthropic_dep(), body, scan, {stream, false});
      if (!raw) {
        continue;  // the DOM path's
      }
      ++fast;
      raw_same_as_dom(body, stream);
      if (::testing::Test::HasFailure()) {
        FAIL() << "first difference at request " << i;
      }
    }
  }
  // Most generated requests are plain: the comparison covered the fast path, not only the
  // fallback.
  EXPECT_GT(fast, total / 4) << fast << " of " << total;
}

// A deployment that merges or drops parameters, a completion or a request the scan
// refused: the DOM path.
TEST(anthropic_build_raw, deployment_params_and_other_calls_use_the_dom_path) {
  const std::string text = R"({"model":"claude","messages":[{"role":"user","content":"hi"}]})";
  auto scan = providers::scan_json(text);
  auto d = anthropic_dep();
  d.request_defaults = {{"temperature", 0.1}};
  EXPECT_FALSE(ant().build_raw(call_type::chat, d, text, scan, {}).has_value());
  d = anthropic_dep();
  d.drop_param_names = {"temperature"};
  EXPECT_FALSE(ant().build_raw(call_type::chat, d, text, scan, {}).has_value());
  EXPECT_FALSE(ant().build_raw(call_type::completion, anthropic_dep(), R"({"prompt":"x"})",
                               providers::scan_json(R"({"prompt":"x"})"), {})
                   .has_value());
  const std::string bad = R"({"messages":[)";
  EXPECT_FALSE(ant().build_raw(call_type::chat, anthropic_dep(), bad, providers::scan_json(bad), {}).has_value());
  EXPECT_TRUE(ant().build_raw(call_type::chat, anthropic_dep(), text, scan, {}).has_value());
}
