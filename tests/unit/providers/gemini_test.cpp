// The gemini and vertex_ai adapters: OpenAI chat -> generateContent (and Anthropic's body
// on Vertex for claude-*), answers and SSE streams back (split anywhere), usage, finish
// reasons, safety blocks, empty candidates, cut streams, errors, embeddings; grounding,
// URL context, safety and citation metadata handed on (answers and stream chunks).
#include "gemini_format.hpp"
#include "stream_harness.hpp"
#include "switchyard/providers/adapter.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <map>
#include <random>

using namespace switchyard;
using json = nlohmann::json;
using providers::call_type;

namespace {

config::deployment gemini_dep() {
  config::deployment d;
  d.model_name = "g";
  d.model = "gemini/gemini-2.5-flash";
  d.provider = config::find_provider("gemini");
  d.upstream_model = "gemini-2.5-flash";
  d.api_key = "AIza-test";
  return d;
}

config::deployment vertex_dep(std::string model = "gemini-2.5-pro") {
  config::deployment d;
  d.model_name = "v";
  d.model = "vertex_ai/" + model;
  d.provider = config::find_provider("vertex_ai");
  d.upstream_model = std::move(model);
  d.litellm_params = {{"vertex_project", "proj-1"}, {"vertex_location", "europe-west4"}};
  return d;
}

const providers::adapter& gem() { return providers::gemini_adapter(); }

std::string header(const providers::upstream_call& c, const std::string& name) {
  for (const auto& [k, v] : c.headers) {
    if (k == name) {
      return v;
    }
  }
  return {};
}

json build_ok(const json& body, providers::build_options opts = {}) {
  auto call = gem().build(call_type::chat, gemini_dep(), body, opts);
  EXPECT_TRUE(call) << (call ? "" : call.error().message);
  return call ? json::parse(call->body) : json();
}

json user(const std::string& text) { return {{"role", "user"}, {"content", text}}; }

// A streamGenerateContent?alt=sse answer as Google sends it (\r\n\r\n between events):
// text, a function call, then the finishing chunk with usage.
constexpr std::string_view tool_stream =
    "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"Let me \"}],\"role\": \"model\"},\"index\": 0}],"
    "\"usageMetadata\": {\"promptTokenCount\": 12,\"totalTokenCount\": 12},\"modelVersion\": \"gemini-2.5-flash\","
    "\"responseId\": \"resp-1\"}\r\n\r\n"
    "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"check \\u00e9\\u4f60\"}],\"role\": \"model\"},"
    "\"index\": 0}],\"responseId\": \"resp-1\"}\r\n\r\n"
    "data: {\"candidates\": [{\"content\": {\"parts\": [{\"functionCall\": {\"name\": \"get_weather\",\"args\": "
    "{\"city\": \"Paris\"}}}],\"role\": \"model\"},\"index\": 0}],\"responseId\": \"resp-1\"}\r\n\r\n"
    "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"\"}],\"role\": \"model\"},\"finishReason\": "
    "\"STOP\",\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 12,\"candidatesTokenCount\": 9,"
    "\"totalTokenCount\": 25,\"thoughtsTokenCount\": 4,\"cachedContentTokenCount\": 2},\"responseId\": \"resp-1\"}\r\n\r\n";

}  // namespace

TEST(gemini_request, url_key_header_and_stream_endpoint) {
  const json body = {{"model", "g"}, {"messages", json::array({user("hi")})}};
  auto call = gem().build(call_type::chat, gemini_dep(), body, {});
  ASSERT_TRUE(call);
  // The key in the query, as LiteLLM sends it.
  EXPECT_EQ(call->url,
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent?key=AIza-test");
  EXPECT_EQ(header(*call, "authorization"), "");
  EXPECT_EQ(providers::strip_query(providers::api_base_of(gemini_dep())), "https://generativelanguage.googleapis.com");
  auto stream = gem().build(call_type::chat, gemini_dep(), body, {true, false});
  ASSERT_TRUE(stream);
  EXPECT_EQ(stream->url, "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:"
                         "streamGenerateContent?key=AIza-test&alt=sse");
  auto d = gemini_dep();
  d.api_base = "http://127.0.0.1:1234/v1beta/";
  d.api_key = "a+b/c";
  EXPECT_EQ(gem().build(call_type::chat, d, body, {})->url,
            "http://127.0.0.1:1234/v1beta/models/gemini-2.5-flash:generateContent?key=a%2Bb%2Fc");
  d.api_key.clear();
  EXPECT_EQ(gem().build(call_type::chat, d, body, {true, false})->url,
            "http://127.0.0.1:1234/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse");
  // A proxy's URL naming the model (LiteLLM's custom proxy): {api_base}:{method}, key as a bearer.
  d.api_base = "https://gateway.ai.example/v1/acct/gw/google-ai-studio/v1beta/models/gemini-2.5-flash";
  d.api_key = "AIza-p";
  auto proxied = gem().build(call_type::chat, d, body, {true, false});
  EXPECT_EQ(proxied->url, d.api_base + ":streamGenerateContent?alt=sse");
  EXPECT_EQ(header(*proxied, "authorization"), "Bearer AIza-p");
}

TEST(gemini_request, system_multi_turn_tools_and_tool_results) {
  const json body = {
      {"model", "g"},
      {"messages",
       json::array({{{"role", "system"}, {"content", "Be brief."}},
                    {{"role", "developer"}, {"content", json::array({{{"type", "text"}, {"text", "No emoji."}}})}},
                    user("Weather in Paris?"),
                    {{"role", "assistant"},
                     {"content", nullptr},
                     {"tool_calls", json::array({{{"id", "call_1"},
                                                  {"type", "function"},
                                                  {"function", {{"name", "get_weather"},
                                                                {"arguments", R"({"city":"Paris"})"}}}}})}},
                    {{"role", "tool"}, {"tool_call_id", "call_1"}, {"content", "18C and sunny"}},
                    user("And tomorrow?"),
                    user("In Celsius.")})},
      {"tools", json::array({{{"type", "function"},
                              {"function",
                               {{"name", "get_weather"},
                                {"description", "Weather"},
                                {"parameters",
                                 {{"type", "object"},
                                  {"$schema", "http://json-schema.org/draft-07/schema#"},
                                  {"additionalProperties", false},
                                  {"properties", {{"city", {{"type", "string"}}}}},
                                  {"required", json::array({"city"})}}}}}}})},
      {"tool_choice", {{"type", "function"}, {"function", {{"name", "get_weather"}}}}},
  };
  json out = build_ok(body);
  EXPECT_EQ(out["systemInstruction"], json::parse(R"({"parts":[{"text":"Be brief."},{"text":"No emoji."}]})"));
  const json expected_contents = json::parse(R"([
    {"role":"user","parts":[{"text":"Weather in Paris?"}]},
    {"role":"model","parts":[{"functionCall":{"name":"get_weather","args":{"city":"Paris"}}}]},
    {"role":"user","parts":[{"functionResponse":{"name":"get_weather","response":{"content":"18C and sunny"}}},
                            {"text":"And tomorrow?"},{"text":"In Celsius."}]}
  ])");
  EXPECT_EQ(out["contents"], expected_contents);
  EXPECT_EQ(out["tools"], json::parse(R"([{"functionDeclarations":[{"name":"get_weather","description":"Weather",
    "parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}]}])"));
  EXPECT_EQ(out["toolConfig"],
            json::parse(R"({"functionCallingConfig":{"mode":"ANY","allowedFunctionNames":["get_weather"]}})"));
  EXPECT_FALSE(out.contains("model"));
}

TEST(gemini_request, a_thought_signature_in_the_call_id_goes_back_beside_the_function_call) {
  // Gemini 3 refuses a follow-up whose function call lost its signature: the answer's
  // signature is in the tool call id (call_<hex>__thought__<sig>) and is sent back from it.
  auto answer = gem().translate_response(call_type::chat, gemini_dep(), R"({
    "candidates":[{"content":{"role":"model","parts":[
        {"functionCall":{"name":"get_weather","args":{"city":"Paris"}},"thoughtSignature":"c2lnLTE="},
        {"functionCall":{"name":"get_time","args":{}}}]},
      "finishReason":"STOP"}]})",
                                         "m");
  ASSERT_TRUE(answer) << answer.error().message;
  json calls = json::parse(answer->body)["choices"][0]["message"]["tool_calls"];
  ASSERT_EQ(calls.size(), 2u);
  const std::string signed_id = calls[0]["id"];
  EXPECT_EQ(signed_id.rfind("call_", 0), 0u);
  ASSERT_GT(signed_id.size(), 19u);
  EXPECT_EQ(signed_id.substr(signed_id.size() - 19), "__thought__c2lnLTE=");
  EXPECT_EQ(calls[1]["id"].get<std::string>().find("__thought__"), std::string::npos);

  json out = build_ok({{"messages", json::array({user("Weather and time?"),
                                                 {{"role", "assistant"}, {"content", nullptr}, {"tool_calls", calls}},
                                                 {{"role", "tool"}, {"tool_call_id", calls[0]["id"]}, {"content", "18C"}},
                                                 {{"role", "tool"}, {"tool_call_id", calls[1]["id"]}, {"content", "9:00"}}})}});
  EXPECT_EQ(out["contents"][1], json::parse(R"({"role":"model","parts":[
    {"functionCall":{"name":"get_weather","args":{"city":"Paris"}},"thoughtSignature":"c2lnLTE="},
    {"functionCall":{"name":"get_time","args":{}}}]})"));
  EXPECT_EQ(out["contents"][2]["parts"][0]["functionResponse"]["name"], "get_weather");
  EXPECT_EQ(out["contents"][2]["parts"][1]["functionResponse"]["name"], "get_time");

  // Streamed: the same id.
  constexpr std::string_view stream =
      "data: {\"candidates\": [{\"content\": {\"parts\": [{\"functionCall\": {\"name\": \"get_weather\",\"args\": "
      "{}},\"thoughtSignature\": \"c2lnLTI=\"}],\"role\": \"model\"},\"finishReason\": \"STOP\"}]}\r\n\r\n";
  auto t = gem().make_stream(call_type::chat, gemini_dep(), "m", false);  // the harness masks call_ ids
  std::vector<std::string> payloads;
  ASSERT_TRUE(t->feed(stream, payloads));
  ASSERT_TRUE(t->finish(payloads));
  std::string streamed_id;
  for (const auto& p : payloads) {
    json delta = json::parse(p)["choices"][0]["delta"];
    if (delta.contains("tool_calls")) {
      streamed_id = delta["tool_calls"][0]["id"];
    }
  }
  ASSERT_GT(streamed_id.size(), 19u);
  EXPECT_EQ(streamed_id.substr(streamed_id.size() - 19), "__thought__c2lnLTI=");
}

TEST(gemini_request, schema_references_to_defs_are_inlined) {
  // What pydantic writes for nested models (the OpenAI SDK's parse helpers send it): Gemini's
  // schema subset has no $ref / $defs. Property names are never taken for keywords.
  const json schema = json::parse(R"({
    "$defs":{"City":{"type":"object","properties":{"name":{"type":"string"}},"required":["name"],
                     "additionalProperties":false}},
    "type":"object",
    "properties":{"home":{"$ref":"#/$defs/City","description":"Where they live"},
                  "visited":{"type":"array","items":{"$ref":"#/$defs/City"}},
                  "strict":{"type":"boolean"}},
    "required":["home","visited","strict"],"additionalProperties":false})");
  const json expected = json::parse(R"({
    "type":"object",
    "properties":{"home":{"type":"object","properties":{"name":{"type":"string"}},"required":["name"],
                          "description":"Where they live"},
                  "visited":{"type":"array","items":{"type":"object","properties":{"name":{"type":"string"}},
                                                     "required":["name"]}},
                  "strict":{"type":"boolean"}},
    "required":["home","visited","strict"]})");
  json out = build_ok({{"messages", json::array({user("x")})},
                       {"response_format", {{"type", "json_schema"}, {"json_schema", {{"name", "p"}, {"schema", schema}}}}},
                       {"tools", json::array({{{"type", "function"},
                                               {"function", {{"name", "f"}, {"parameters", schema}}}}})}});
  EXPECT_EQ(out["generationConfig"]["responseSchema"], expected);
  EXPECT_EQ(out["tools"][0]["functionDeclarations"][0]["parameters"], expected);

  // definitions (older generators) too; a reference that does not resolve is left for Gemini to name.
  json old = build_ok({{"messages", json::array({user("x")})},
                       {"response_format",
                        {{"type", "json_schema"},
                         {"json_schema",
                          {{"schema", json::parse(R"({"definitions":{"A":{"type":"string"}},"type":"object",
                            "properties":{"a":{"$ref":"#/definitions/A"},"b":{"$ref":"#/$defs/Missing"}}})")}}}}}});
  EXPECT_EQ(old["generationConfig"]["responseSchema"], json::parse(R"({"type":"object",
    "properties":{"a":{"type":"string"},"b":{"$ref":"#/$defs/Missing"}}})"));
}

TEST(gemini_request, tool_choice_modes_images_and_generation_config) {
  auto tc = [](const json& choice) {
    return build_ok({{"messages", json::array({user("x")})}, {"tool_choice", choice}})["toolConfig"]
        ["functionCallingConfig"]["mode"];
  };
  EXPECT_EQ(tc("auto"), "AUTO");
  EXPECT_EQ(tc("none"), "NONE");
  EXPECT_EQ(tc("required"), "ANY");

  json out = build_ok({{"messages", json::array({{{"role", "user"},
                                                   {"content", json::array({{{"type", "text"}, {"text", "What is it?"}},
                                                                            {{"type", "image_url"},
                                                                             {"image_url", {{"url", "data:image/png;base64,iVBORw0KGgo="}}}},
                                                                            {{"type", "image_url"},
                                                                             {"image_url", "https://x.test/cat.webp?s=1"}}})}}})},
                       {"temperature", 0.2},
                       {"top_p", 0.9},
                       {"max_tokens", 100},
                       {"max_completion_tokens", 50},
                       {"stop", "END"},
                       {"seed", 7},
                       {"n", 1},
                       {"response_format", {{"type", "json_object"}}},
                       {"reasoning_effort", "low"},
                       {"user", "u-1"},
                       {"stream_options", {{"include_usage", true}}}});
  EXPECT_EQ(out["contents"][0]["parts"][1], json::parse(R"({"inlineData":{"mimeType":"image/png","data":"iVBORw0KGgo="}})"));
  EXPECT_EQ(out["contents"][0]["parts"][2],
            json::parse(R"({"fileData":{"mimeType":"image/webp","fileUri":"https://x.test/cat.webp?s=1"}})"));
  EXPECT_EQ(out["generationConfig"], json::parse(R"({"temperature":0.2,"topP":0.9,"maxOutputTokens":50,
    "stopSequences":["END"],"seed":7,"candidateCount":1,"responseMimeType":"application/json",
    "thinkingConfig":{"thinkingBudget":1024}})"));
  EXPECT_FALSE(out.contains("user"));
  EXPECT_FALSE(out.contains("stream_options"));

  json schema = build_ok({{"messages", json::array({user("x")})},
                          {"response_format",
                           {{"type", "json_schema"},
                            {"json_schema",
                             {{"name", "s"},
                              {"schema", {{"type", "object"}, {"additionalProperties", false},
                                          {"properties", {{"a", {{"type", "integer"}}}}}}}}}}}});
  EXPECT_EQ(schema["generationConfig"]["responseSchema"],
            json::parse(R"({"type":"object","properties":{"a":{"type":"integer"}}})"));
}

TEST(gemini_request, unsupported_parameters_and_bad_messages_are_400s) {
  auto err = [](const json& body, providers::build_options o = {}) {
    auto call = gem().build(call_type::chat, gemini_dep(), body, o);
    EXPECT_FALSE(call);
    return call ? core::error{} : call.error();
  };
  auto e = err({{"messages", json::array({user("x")})}, {"logit_bias", {{"1", 2}}}});
  EXPECT_EQ(e.status, 400);
  EXPECT_NE(e.message.find("gemini does not support parameters: ['logit_bias']"), std::string::npos);
  EXPECT_TRUE(gem().build(call_type::chat, gemini_dep(),
                          {{"messages", json::array({user("x")})}, {"logit_bias", {{"1", 2}}}}, {false, true}));
  EXPECT_EQ(err({{"messages", "hi"}}).param, "messages");
  EXPECT_EQ(err({{"messages", json::array({{{"role", "tool"}, {"tool_call_id", "nope"}, {"content", "x"}}})}}).param,
            "messages[0].tool_call_id");
  EXPECT_EQ(err({{"messages", json::array({{{"role", "system"}, {"content", "only a system prompt"}}})}}).param,
            "messages");
  EXPECT_EQ(err({{"messages", json::array({user("x")})}, {"tool_choice", "sometimes"}}).param, "tool_choice");
  EXPECT_EQ(err({{"messages", json::array({user("x")})}, {"max_tokens", 0}}).param, "max_tokens");
  EXPECT_EQ(err({{"messages", json::array({{{"role", "user"},
                                            {"content", json::array({{{"type", "image_url"},
                                                                      {"image_url", "ftp://x"}}})}}})}})
                .status,
            400);
  auto completion = gem().build(call_type::completion, gemini_dep(), {{"prompt", "x"}}, {});
  ASSERT_FALSE(completion);
  EXPECT_EQ(completion.error().status, 400);
}

TEST(gemini_response, text_tool_calls_usage_and_finish_reasons) {
  auto r = gem().translate_response(call_type::chat, gemini_dep(), R"({
    "candidates":[{"content":{"role":"model","parts":[
        {"text":"thinking...","thought":true},{"text":"Calling."},
        {"functionCall":{"name":"get_weather","args":{"city":"Paris"}}}]},
      "finishReason":"STOP","index":0}],
    "usageMetadata":{"promptTokenCount":10,"candidatesTokenCount":5,"thoughtsTokenCount":3,
                     "cachedContentTokenCount":4,"totalTokenCount":18},
    "responseId":"abc"})",
                                            "my-model");
  ASSERT_TRUE(r) << r.error().message;
  json j = json::parse(r->body);
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["model"], "my-model");
  EXPECT_EQ(j["id"], "abc");
  const auto& c = j["choices"][0];
  EXPECT_EQ(c["finish_reason"], "tool_calls");
  EXPECT_EQ(c["message"]["content"], "Calling.");
  EXPECT_EQ(c["message"]["reasoning_content"], "thinking...");
  EXPECT_EQ(c["message"]["tool_calls"][0]["function"]["name"], "get_weather");
  EXPECT_EQ(json::parse(c["message"]["tool_calls"][0]["function"]["arguments"].get<std::string>()),
            json::parse(R"({"city":"Paris"})"));
  EXPECT_EQ(c["message"]["tool_calls"][0]["id"].get<std::string>().rfind("call_", 0), 0u);
  EXPECT_EQ(j["usage"]["prompt_tokens"], 10);
  EXPECT_EQ(j["usage"]["completion_tokens"], 8);
  EXPECT_EQ(j["usage"]["total_tokens"], 18);
  EXPECT_EQ(j["usage"]["prompt_tokens_details"]["cached_tokens"], 4);
  EXPECT_EQ(j["usage"]["completion_tokens_details"]["reasoning_tokens"], 3);
  EXPECT_TRUE(r->tokens.known);
  EXPECT_EQ(r->tokens.prompt_tokens, 10);
  EXPECT_EQ(r->tokens.completion_tokens, 8);
  EXPECT_EQ(r->tokens.cached_tokens, 4);
  EXPECT_EQ(r->tokens.reasoning_tokens, 3);

  auto finish = [](std::string_view reason) {
    auto t = gem().translate_response(
        call_type::chat, gemini_dep(),
        R"({"candidates":[{"content":{"role":"model","parts":[{"text":"x"}]},"finishReason":")" + std::string(reason) +
            R"("}]})",
        "m");
    return json::parse(t->body)["choices"][0]["finish_reason"].get<std::string>();
  };
  EXPECT_EQ(finish("STOP"), "stop");
  EXPECT_EQ(finish("MAX_TOKENS"), "length");
  EXPECT_EQ(finish("SAFETY"), "content_filter");
  EXPECT_EQ(finish("RECITATION"), "content_filter");
  EXPECT_EQ(finish("PROHIBITED_CONTENT"), "content_filter");
  EXPECT_EQ(finish("OTHER"), "stop");
}

TEST(gemini_response, safety_blocks_empty_candidates_and_malformed_answers) {
  // A blocked prompt: LiteLLM's answer, finish_reason content_filter and no content.
  auto blocked = gem().translate_response(
      call_type::chat, gemini_dep(),
      R"({"promptFeedback":{"blockReason":"SAFETY"},"usageMetadata":{"promptTokenCount":7,"totalTokenCount":7}})", "m");
  ASSERT_TRUE(blocked);
  json b = json::parse(blocked->body);
  EXPECT_EQ(b["choices"][0]["finish_reason"], "content_filter");
  EXPECT_TRUE(b["choices"][0]["message"]["content"].is_null());
  EXPECT_EQ(b["usage"]["prompt_tokens"], 7);

  auto bad = [](std::string_view body) {
    auto r = gem().translate_response(call_type::chat, gemini_dep(), body, "m");
    EXPECT_FALSE(r) << body;
    return r ? core::error{} : r.error();
  };
  auto empty = bad(R"({"candidates":[],"usageMetadata":{"promptTokenCount":3}})");
  EXPECT_EQ(empty.status, 500);
  EXPECT_NE(empty.message.find("GeminiException - the provider returned no candidates"), std::string::npos);
  EXPECT_NE(bad(R"({"usageMetadata":{}})").message.find("no candidates"), std::string::npos);
  EXPECT_NE(bad("{\"candidates\": [").message.find("not valid JSON"), std::string::npos);
  EXPECT_EQ(bad(R"({"error":{"code":429,"message":"Resource exhausted","status":"RESOURCE_EXHAUSTED"}})").status, 429);
  EXPECT_EQ(bad("[]").status, 500);
  // Odd shapes are read, never a crash.
  EXPECT_TRUE(gem().translate_response(call_type::chat, gemini_dep(), R"({"candidates":[{"content":5}]})", "m"));
  EXPECT_TRUE(gem().translate_response(call_type::chat, gemini_dep(), R"({"candidates":[{"content":{"parts":[1,{"functionCall":3}]}}]})", "m"));
}

TEST(gemini_errors, google_error_bodies_keep_status_and_message) {
  auto e = gem().translate_error(gemini_dep(), 400,
                                 R"({"error":{"code":400,"message":"API key not valid. Please pass a valid API key.",
                                     "status":"INVALID_ARGUMENT"}})");
  EXPECT_EQ(e.status, 400);
  EXPECT_NE(e.message.find("GeminiException"), std::string::npos);
  EXPECT_NE(e.message.find("API key not valid"), std::string::npos);
}

TEST(gemini_stream, text_tool_call_finish_and_usage_in_any_split) {
  for (const auto& sizes : test::all_splits(tool_stream.size())) {
    auto run = test::run_stream(gem(), call_type::chat, gemini_dep(), tool_stream, true, sizes);
    ASSERT_FALSE(run.error) << run.error->message;
    EXPECT_EQ(test::assembled_text(run.chunks), "Let me check \u00e9\u4f60");
    auto calls = test::assembled_tool_calls(run.chunks);
    ASSERT_EQ(calls.size(), 1u);
    EXPECT_EQ(calls[0].name, "get_weather");
    EXPECT_EQ(json::parse(calls[0].arguments), json::parse(R"({"city":"Paris"})"));
    EXPECT_EQ(test::finish_reason(run.chunks), "tool_calls");
    const auto& last = run.chunks.back();
    EXPECT_TRUE(last["choices"].empty());
    EXPECT_EQ(last["usage"]["prompt_tokens"], 12);
    EXPECT_EQ(last["usage"]["completion_tokens"], 13);
    EXPECT_EQ(last["usage"]["completion_tokens_details"]["reasoning_tokens"], 4);
    EXPECT_EQ(last["usage"]["prompt_tokens_details"]["cached_tokens"], 2);
    EXPECT_EQ(run.tokens.prompt_tokens, 12);
    EXPECT_EQ(run.tokens.completion_tokens, 13);
    EXPECT_EQ(run.chunks.front()["choices"][0]["delta"]["role"], "assistant");
  }
  // Without include_usage no usage chunk, but usage is still tracked.
  auto run = test::run_stream(gem(), call_type::chat, gemini_dep(), tool_stream, false, {tool_stream.size()});
  ASSERT_FALSE(run.error);
  EXPECT_FALSE(run.chunks.back()["choices"].empty());
  EXPECT_EQ(run.tokens.total_tokens, 25);
}

TEST(gemini_stream, cut_streams_blocks_errors_and_garbage_are_clear_errors) {
  // Cut before the finishing chunk, at every byte.
  const auto last = tool_stream.rfind("data: ");
  for (std::size_t cut = 0; cut < last; cut += 13) {
    auto run = test::run_stream(gem(), call_type::chat, gemini_dep(), tool_stream.substr(0, cut), true, {cut});
    ASSERT_TRUE(run.error) << cut;
    EXPECT_NE(run.error->message.find("stream cut"), std::string::npos);
  }
  // A blocked prompt ends the stream with content_filter.
  std::string blocked = "data: {\"promptFeedback\": {\"blockReason\": \"SAFETY\"},\"usageMetadata\": "
                        "{\"promptTokenCount\": 5,\"totalTokenCount\": 5}}\r\n\r\n";
  auto run = test::run_stream(gem(), call_type::chat, gemini_dep(), blocked, true, {blocked.size()});
  ASSERT_FALSE(run.error);
  EXPECT_EQ(test::finish_reason(run.chunks), "content_filter");
  // An error event mid-stream keeps its status.
  std::string err = std::string(tool_stream.substr(0, tool_stream.find("data: ", 10))) +
                    "data: {\"error\": {\"code\": 503, \"message\": \"The model is overloaded.\", \"status\": "
                    "\"UNAVAILABLE\"}}\r\n\r\n";
  run = test::run_stream(gem(), call_type::chat, gemini_dep(), err, true, {err.size()});
  ASSERT_TRUE(run.error);
  EXPECT_EQ(run.error->status, 503);
  EXPECT_NE(run.error->message.find("overloaded"), std::string::npos);
  // Not JSON, and candidates that are not a list.
  for (std::string bad : {"data: {\"candidates\": [\r\n\r\n", "data: {\"candidates\": 5}\r\n\r\n"}) {
    run = test::run_stream(gem(), call_type::chat, gemini_dep(), bad, true, {bad.size()});
    ASSERT_TRUE(run.error) << bad;
    EXPECT_EQ(run.error->status, 500);
  }
  // Empty candidates and then the end: no finishReason, so a cut stream.
  std::string empty = "data: {\"candidates\": []}\r\n\r\n";
  run = test::run_stream(gem(), call_type::chat, gemini_dep(), empty, true, {empty.size()});
  ASSERT_TRUE(run.error);
  EXPECT_TRUE(run.error_from_finish);
}

TEST(gemini_embeddings, one_input_embed_content_and_lists_batch) {
  auto one = gem().build(call_type::embedding, gemini_dep(), {{"input", "hello"}, {"dimensions", 4}}, {});
  ASSERT_TRUE(one);
  EXPECT_EQ(one->url, "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:embedContent?key=AIza-test");
  EXPECT_EQ(json::parse(one->body), json::parse(R"({"model":"models/gemini-2.5-flash",
    "content":{"parts":[{"text":"hello"}]},"outputDimensionality":4})"));
  auto many = gem().build(call_type::embedding, gemini_dep(), {{"input", {"a", "b"}}}, {});
  ASSERT_TRUE(many);
  EXPECT_EQ(many->url,
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:batchEmbedContents?key=AIza-test");
  EXPECT_EQ(json::parse(many->body)["requests"].size(), 2u);
  EXPECT_FALSE(gem().build(call_type::embedding, gemini_dep(), {{"input", {1, 2}}}, {}));

  auto r = gem().translate_response(call_type::embedding, gemini_dep(),
                                    R"({"embeddings":[{"values":[0.1,0.2]},{"values":[0.3,0.4]}]})", "e");
  ASSERT_TRUE(r);
  json j = json::parse(r->body);
  EXPECT_EQ(j["object"], "list");
  EXPECT_EQ(j["data"][1]["index"], 1);
  EXPECT_EQ(j["data"][1]["embedding"], json::parse("[0.3,0.4]"));
  EXPECT_TRUE(gem().translate_response(call_type::embedding, gemini_dep(), R"({"embedding":{"values":[1]}})", "e"));
  EXPECT_FALSE(gem().translate_response(call_type::embedding, gemini_dep(), R"({"embedding":{}})", "e"));
}

TEST(vertex_request, gemini_urls_bearer_and_project) {
  const json body = {{"messages", json::array({user("hi")})}};
  auto call = providers::vertex_adapter().build(call_type::chat, vertex_dep(), body, {false, false, "ya29.t"});
  ASSERT_TRUE(call) << call.error().message;
  EXPECT_EQ(call->url,
            "https://europe-west4-aiplatform.googleapis.com/v1/projects/proj-1/locations/europe-west4/publishers/"
            "google/models/gemini-2.5-pro:generateContent");
  EXPECT_EQ(header(*call, "authorization"), "Bearer ya29.t");
  EXPECT_EQ(json::parse(call->body)["contents"][0]["parts"][0]["text"], "hi");
  auto d = vertex_dep();
  d.api_base = "http://127.0.0.1:5/";
  d.litellm_params = {{"vertex_credentials", R"({"project_id":"from-sa"})"}, {"vertex_location", "global"}};
  auto s = providers::vertex_adapter().build(call_type::chat, d, body, {true, false, "t"});
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s->url, "http://127.0.0.1:5/v1/projects/from-sa/locations/global/publishers/google/models/"
                    "gemini-2.5-pro:streamGenerateContent?alt=sse");
  d.api_base.clear();
  EXPECT_EQ(providers::vertex_adapter().build(call_type::chat, d, body, {})->url.rfind("https://aiplatform.googleapis.com/", 0),
            0u);
  d.api_base = "https://proxy.example/v1/projects/p/locations/l/publishers/google/models/gemini-2.5-pro";
  EXPECT_EQ(providers::vertex_adapter().build(call_type::chat, d, body, {})->url, d.api_base + ":generateContent");
}

TEST(vertex_request, claude_models_get_anthropics_body_on_raw_predict) {
  const json body = {{"messages", json::array({{{"role", "system"}, {"content", "Be brief."}}, user("hi")})},
                     {"max_tokens", 64}};
  auto d = vertex_dep("claude-sonnet-4@20250514");
  auto call = providers::vertex_adapter().build(call_type::chat, d, body, {false, false, "ya29.t"});
  ASSERT_TRUE(call) << call.error().message;
  EXPECT_EQ(call->url, "https://europe-west4-aiplatform.googleapis.com/v1/projects/proj-1/locations/europe-west4/"
                       "publishers/anthropic/models/claude-sonnet-4@20250514:rawPredict");
  json sent = json::parse(call->body);
  EXPECT_EQ(sent["anthropic_version"], "vertex-2023-10-16");
  EXPECT_FALSE(sent.contains("model"));
  EXPECT_EQ(sent["system"], "Be brief.");
  EXPECT_EQ(sent["max_tokens"], 64);
  auto s = providers::vertex_adapter().build(call_type::chat, d, body, {true, false, "t"});
  ASSERT_TRUE(s);
  EXPECT_NE(s->url.find(":streamRawPredict"), std::string::npos);
  EXPECT_EQ(json::parse(s->body)["stream"], true);
  // The answer is Anthropic's.
  auto r = providers::vertex_adapter().translate_response(
      call_type::chat, d,
      R"({"id":"msg_1","type":"message","role":"assistant","content":[{"type":"text","text":"Hi!"}],
          "stop_reason":"end_turn","usage":{"input_tokens":9,"output_tokens":2}})",
      "m");
  ASSERT_TRUE(r);
  EXPECT_EQ(json::parse(r->body)["choices"][0]["message"]["content"], "Hi!");
  EXPECT_EQ(r->tokens.prompt_tokens, 9);
}

TEST(vertex_request, a_deployment_without_a_project_is_a_400) {
  auto d = vertex_dep();
  d.litellm_params = json::object();
  if (std::getenv("VERTEXAI_PROJECT") != nullptr || std::getenv("GOOGLE_CLOUD_PROJECT") != nullptr) {
    GTEST_SKIP() << "a project is set in the environment";
  }
  auto call = providers::vertex_adapter().build(call_type::chat, d, {{"messages", json::array({user("x")})}}, {});
  ASSERT_FALSE(call);
  EXPECT_EQ(call.error().status, 400);
  EXPECT_EQ(call.error().param, "vertex_project");
}

TEST(azure_entra, a_bearer_token_replaces_the_api_key) {
  config::deployment d;
  d.provider = config::find_provider("azure");
  d.model_name = "a";
  d.upstream_model = "gpt-4o";
  d.api_base = "https://r.openai.azure.com";
  d.api_version = "2024-06-01";
  d.api_key = "k";
  const json body = {{"messages", json::array({user("x")})}};
  auto with_key = providers::openai_adapter().build(call_type::chat, d, body, {});
  EXPECT_EQ(header(*with_key, "api-key"), "k");
  auto with_token = providers::openai_adapter().build(call_type::chat, d, body, {false, false, "entra-t"});
  EXPECT_EQ(header(*with_token, "authorization"), "Bearer entra-t");
  EXPECT_EQ(header(*with_token, "api-key"), "");
}

TEST(gemini_stream, every_candidate_streams_as_its_choice) {
  // n: 2. Candidate 0 finishes one event before candidate 1; the usage comes last.
  const std::string wire =
      "data: {\"candidates\": [{\"content\": {\"role\": \"model\", \"parts\": [{\"text\": \"A\"}]}, \"index\": 0},"
      " {\"content\": {\"role\": \"model\", \"parts\": [{\"text\": \"B\"}]}, \"index\": 1}]}\r\n\r\n"
      "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"a\"}]}, \"finishReason\": \"STOP\", \"index\": 0},"
      " {\"content\": {\"parts\": [{\"functionCall\": {\"name\": \"f\", \"args\": {}}}]}, \"index\": 1}]}\r\n\r\n"
      "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"b\"}]}, \"finishReason\": \"STOP\", \"index\": 1}],"
      " \"usageMetadata\": {\"promptTokenCount\": 3, \"candidatesTokenCount\": 4, \"totalTokenCount\": 7}}\r\n\r\n";
  for (const auto& sizes : test::all_splits(wire.size())) {
    auto run = test::run_stream(gem(), call_type::chat, gemini_dep(), wire, true, sizes);
    ASSERT_FALSE(run.error) << run.error->message;
    std::map<int, std::string> text;
    std::map<int, std::string> finish;
    std::map<int, int> roles;
    int calls_of_1 = 0;
    for (const auto& c : run.chunks) {
      for (const auto& ch : c["choices"]) {
        const int i = ch["index"].get<int>();
        const auto& delta = ch.value("delta", json::object());
        if (delta.contains("content") && delta["content"].is_string()) {
          text[i] += delta["content"].get<std::string>();
        }
        if (delta.contains("role")) {
          ++roles[i];
        }
        if (delta.contains("tool_calls")) {
          EXPECT_EQ(i, 1);
          EXPECT_EQ(delta["tool_calls"][0]["index"], 0) << "tool calls are numbered per choice";
          ++calls_of_1;
        }
        if (ch["finish_reason"].is_string()) {
          finish[i] = ch["finish_reason"].get<std::string>();
        }
      }
    }
    EXPECT_EQ(text, (std::map<int, std::string>{{0, "Aa"}, {1, "Bb"}}));
    EXPECT_EQ(finish, (std::map<int, std::string>{{0, "stop"}, {1, "tool_calls"}}));
    EXPECT_EQ(roles, (std::map<int, int>{{0, 1}, {1, 1}}));
    EXPECT_EQ(calls_of_1, 1);
    EXPECT_EQ(run.chunks.back()["usage"]["total_tokens"], 7);
  }
  // A stream that ends while a choice is unfinished is cut.
  const std::string cut = wire.substr(0, wire.rfind("data: "));
  auto run = test::run_stream(gem(), call_type::chat, gemini_dep(), cut, true, {cut.size()});
  ASSERT_TRUE(run.error);
  EXPECT_TRUE(run.error_from_finish);
}

// ---- plain events read from their scan vs the DOM ---------------------------------------

namespace {

namespace gf = providers::gemini_format;

using test::reading_outcome;

reading_outcome read_stream(std::string_view wire, bool include_usage, bool dom_only) {
  return test::read_stream_with(
      [&](bool dom, std::size_t* scanned) {
        return gf::chat_stream("my-model", include_usage, "GeminiException", {dom, scanned});
      },
      wire, dom_only);
}

// The two readings of `wire` agree: the same payloads byte for byte, the same error and the
// same usage. Returns how many events the scan read.
std::size_t expect_same_readings(std::string_view wire) {
  return test::expect_same_readings_with(read_stream, wire);
}

std::string sse(std::initializer_list<std::string_view> events) {
  std::string out;
  for (auto e : events) {
    out += "data: ";
    out += e;
    out += "\r\n\r\n";
  }
  return out;
}

// Random events in the shapes Gemini sends and in shapes around them: one candidate (or
// several, none, not a list), text parts with escapes, non-ASCII text and empty text,
// thoughts, function calls, inline data, finish reasons, indexes, usage counts (plain,
// huge, negative, fractions, null, strings, duplicated), responseIds, safety ratings,
// keys written with escapes, duplicate members, prompt blocks, errors, invalid UTF-8.
class event_maker {
 public:
  explicit event_maker(unsigned seed) : gen_(seed) {}

  // Half the streams are plain (the shapes Google sends), half mix in everything else.
  std::string stream() {
    plain_ = chance(50);
    std::string out;
    const int events = pick(1, 6);
    for (int i = 0; i < events; ++i) {
      out += "data: " + event(i == events - 1) + (chance(10) ? "\n\n" : "\r\n\r\n");
    }
    return out;
  }

 private:
  int pick(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(gen_); }
  bool chance(int percent) { return pick(1, 100) <= percent; }
  // Something a plain stream does not have.
  bool odd(int percent) { return !plain_ && chance(percent); }
  std::string sp() { return chance(30) ? " " : ""; }
  template <typename T>
  const T& one_of(std::initializer_list<T> xs) {
    return *(xs.begin() + pick(0, static_cast<int>(xs.size()) - 1));
  }

  std::string key(std::string_view k) {
    if (odd(3)) {  // the key's first letter as a \u escape
      char esc[8];
      std::snprintf(esc, sizeof esc, "\\u%04x", static_cast<unsigned char>(k[0]));
      return "\"" + std::string(esc) + std::string(k.substr(1)) + "\"";
    }
    return "\"" + std::string(k) + "\"";
  }
  std::string member(std::string_view k, const std::string& v) { return key(k) + ":" + sp() + v; }

  std::string object(std::vector<std::string> members) {
    if (members.size() > 1 && chance(20)) {
      std::shuffle(members.begin(), members.end(), gen_);
    }
    if (!members.empty() && odd(3)) {
      members.push_back(members[pick(0, static_cast<int>(members.size()) - 1)]);  // a duplicate
    }
    std::string out = "{";
    for (std::size_t i = 0; i < members.size(); ++i) {
      out += (i ? "," + sp() : "") + members[i];
    }
    return out + "}";
  }

  std::string text() {
    static const std::string_view pieces[] = {
        "Hello",    " world",         "",           "\\\"",         "\\\\",      "\\/",        "\\n",
        "\\t",      "\\b\\f\\r",      "\\u0000",    "\\u001f",      "\\u007f",   "\\u00e9",    "\\u4f60",
        "\\ud83d\\ude00", "\xc3\xa9", "\xe4\xbd\xa0", "\xf0\x9f\x98\x80", "<tag>&", "'",        "\\u2028",
        "123",      " ",              "\x7f"};
    std::string out;
    const int n = pick(0, 4);
    for (int i = 0; i < n; ++i) {
      out += pieces[pick(0, static_cast<int>(std::size(pieces)) - 1)];
    }
    if (odd(2)) {
      out += "\xff";  // invalid UTF-8: an unreadable event for both readings
    }
    return "\"" + out + "\"";
  }

  std::string number() {
    switch (plain_ ? 12 : pick(0, 12)) {
      case 0: return "-3";
      case 1: return "2.5";
      case 2: return "1e3";
      case 3: return "99999999999999999999";
      case 4: return "1000000000000001";
      case 5: return "null";
      case 6: return "\"7\"";
      case 7: return "0";
      default: return std::to_string(pick(1, 5000));
    }
  }

  std::string part() {
    std::vector<std::string> m;
    switch (plain_ ? one_of({6, 9}) : pick(0, 19)) {
      case 0: m.push_back(member("functionCall", R"({"name":"f","args":{"a":1}})")); break;
      case 1: m.push_back(member("text", text())); m.push_back(member("thought", one_of<std::string>({"true", "false"})));
        break;
      case 2: m.push_back(member("inlineData", R"({"mimeType":"image/png","data":"AAAA"})")); break;
      case 3: m.push_back(member("text", one_of<std::string>({"5", "null", "[]"}))); break;
      case 4: return one_of<std::string>({"\"x\"", "null", "[]"});
      case 5: m.push_back(member("executableCode", R"({"code":"1+1"})")); break;
      case 6: m.push_back(member("text", text())); m.push_back(member("thoughtSignature", "\"c2ln\"")); break;
      default: m.push_back(member("text", text())); break;
    }
    return object(std::move(m));
  }

  std::string candidate(bool last) {
    std::vector<std::string> m;
    if (!odd(10)) {
      std::vector<std::string> content;
      if (!odd(5)) {
        std::string parts = "[";
        const int n = chance(10) ? pick(0, 3) : 1;
        for (int i = 0; i < n; ++i) {
          parts += (i ? "," : "") + part();
        }
        content.push_back(member("parts", odd(2) ? "null" : parts + "]"));
      }
      if (!chance(20)) {
        content.push_back(member("role", "\"model\""));
      }
      m.push_back(member("content", odd(2) ? "null" : object(std::move(content))));
    }
    if ((last && !odd(10)) || odd(8)) {
      m.push_back(member("finishReason", plain_ ? one_of<std::string>({"\"STOP\"", "\"MAX_TOKENS\"", "\"SAFETY\""})
                                                : one_of<std::string>({"\"STOP\"", "\"STOP\"", "\"MAX_TOKENS\"",
                                                                       "\"SAFETY\"", "\"OTHER\"", "\"\\u0053TOP\"",
                                                                       "\"\"", "null", "1"})));
    }
    if (!chance(20)) {
      m.push_back(member("index", !odd(15) ? "0" : one_of<std::string>({"1", "63", "64", "0.0", "-1", "\"0\"",
                                                                           "null", "1e0"})));
    }
    if (chance(6)) {
      m.push_back(member("safetyRatings", one_of<std::string>({
          R"([{"category":"HARM_CATEGORY_HARASSMENT","probability":"NEGLIGIBLE"}])", "[]", "null", "5"})));
    }
    if (chance(4)) {
      m.push_back(member("groundingMetadata", one_of<std::string>({
          R"({"webSearchQueries":["q",""]})",
          R"({"webSearchQueries":["weather paris"],"groundingChunks":[{"web":{"uri":"https://a.example/1","title":"a.example"}},{"retrievedContext":{}}],"groundingSupports":[{"segment":{"startIndex":0,"endIndex":5,"text":"Hello"},"groundingChunkIndices":[0]},{"segment":{"endIndex":9},"groundingChunkIndices":[0]},{"segment":{"startIndex":1,"endIndex":2},"groundingChunkIndices":[1]}]})",
          R"({"groundingChunks":5,"groundingSupports":[{"segment":{"startIndex":"0","endIndex":1},"groundingChunkIndices":[9]}]})",
          R"([{"webSearchQueries":["a"]},{"webSearchQueries":"b"}])", "null", "\"x\""})));
    }
    if (chance(3)) {
      m.push_back(member("urlContextMetadata",
                         R"({"urlMetadata":[{"retrievedUrl":"https://a.example","urlRetrievalStatus":"URL_RETRIEVAL_STATUS_SUCCESS"}]})"));
    }
    if (chance(3)) {
      m.push_back(member("citationMetadata", one_of<std::string>({
          R"({"citations":[{"startIndex":0,"endIndex":4,"uri":"https://c.example"}]})", "[]"})));
    }
    if (chance(5)) {
      m.push_back(member("avgLogprobs", "-0.25"));
    }
    return object(std::move(m));
  }

  std::string usage() {
    std::vector<std::string> m;
    for (auto k : {"promptTokenCount", "candidatesTokenCount", "thoughtsTokenCount", "cachedContentTokenCount",
                   "totalTokenCount"}) {
      if (chance(60)) {
        m.push_back(member(k, number()));
      }
    }
    if (chance(50)) {
      m.push_back(member("promptTokensDetails", R"([{"modality":"TEXT","tokenCount":5}])"));
    }
    return odd(3) ? one_of<std::string>({"null", "5", "[]"}) : object(std::move(m));
  }

  std::string event(bool last) {
    if (odd(2)) {
      return one_of<std::string>({R"({"error":{"code":429,"message":"slow down","status":"RESOURCE_EXHAUSTED"}})",
                                  R"({"promptFeedback":{"blockReason":"SAFETY"}})", "[1]", "{\"candidates\": [",
                                  "  "});
    }
    std::vector<std::string> m;
    if (!odd(8)) {
      std::string cands = "[";
      const int n = odd(8) ? pick(0, 3) : 1;
      for (int i = 0; i < n; ++i) {
        cands += (i ? "," + sp() : "") + candidate(last);
      }
      m.push_back(member("candidates", odd(2) ? one_of<std::string>({"null", "{}", "5"}) : cands + "]"));
    }
    if (chance(60)) {
      m.push_back(member("usageMetadata", usage()));
    }
    if (chance(70)) {
      m.push_back(member("modelVersion", "\"gemini-2.5-flash\""));
    }
    if (chance(70)) {
      m.push_back(member("responseId", plain_ ? one_of<std::string>({"\"resp-1\"", "\"r\\u00e9sp\"", "\"\""})
                                              : one_of<std::string>({"\"resp-1\"", "\"null\"", "null", "7"})));
    }
    if (odd(3)) {
      m.push_back(member("promptFeedback", R"({"safetyRatings":[]})"));
    }
    if (odd(2)) {
      m.push_back(member("error", "null"));
    }
    if (chance(5)) {
      m.push_back(member("createTime", "\"2026-12-07T19:00:00Z\""));
    }
    return object(std::move(m));
  }

  std::mt19937 gen_;
  bool plain_ = false;
};

}  // namespace

// Whatever the scan reads, it translates exactly as the DOM does (chunks, errors, usage),
// over thousands of random streams; and it reads most of them.
TEST(gemini_stream, scanned_events_give_the_dom_paths_bytes_over_many_shapes) {
  std::size_t events = 0;
  std::size_t scanned = 0;
  for (unsigned seed = 0; seed < 3000; ++seed) {
    event_maker maker(seed);
    const std::string wire = maker.stream();
    SCOPED_TRACE(wire);
    scanned += expect_same_readings(wire);
    for (auto at = wire.find("data: "); at != std::string::npos; at = wire.find("data: ", at + 1)) {
      ++events;
    }
    if (HasFailure()) {
      break;
    }
  }
  std::printf("gemini stream: %zu of %zu random events read from their scan\n", scanned, events);
  EXPECT_GT(scanned * 10, events * 4) << "most plain events take the scan";
  EXPECT_LT(scanned, events) << "and some are left to the DOM";
}

// Named shapes: which reading takes them, and the same output either way.
TEST(gemini_stream, plain_events_are_scanned_and_the_rest_read_by_the_dom) {
  const std::string_view plain = R"({"candidates": [{"content": {"parts": [{"text": "Hi"}],"role": "model"},"index": 0}],"usageMetadata": {"promptTokenCount": 5,"totalTokenCount": 5,"promptTokensDetails": [{"modality": "TEXT","tokenCount": 5}]},"modelVersion": "gemini-2.5-flash","responseId": "resp-1"})";
  const std::string_view last = R"({"candidates": [{"content": {"parts": [{"text": "!"}],"role": "model"},"finishReason": "STOP","index": 0,"safetyRatings": [{"category": "HARM_CATEGORY_HATE_SPEECH","probability": "NEGLIGIBLE"}]}],"usageMetadata": {"promptTokenCount": 5,"candidatesTokenCount": 2,"totalTokenCount": 9,"thoughtsTokenCount": 2,"cachedContentTokenCount": 1},"modelVersion": "gemini-2.5-flash","responseId": "resp-1"})";
  // A whole plain answer: every event from its scan; the usage-only event after the finish
  // too. The last event's safetyRatings are handed to the client, by the DOM reading.
  EXPECT_EQ(expect_same_readings(sse({plain, plain, last})), 2u);
  EXPECT_EQ(expect_same_readings(sse({plain, last, R"({"usageMetadata": {"promptTokenCount": 6}})"})), 2u);
  // Escapes in the text, the finish reason and the id; \b and \f; non-ASCII written raw.
  EXPECT_EQ(expect_same_readings(sse({R"({"candidates": [{"content": {"parts": [{"text": "a\"b\\c\/d\b\f\n\u0001\u00e9\ud83d\ude00 é"}]},"finishReason": "\u0053TOP"}],"responseId": "r\u00e9"})"})),
            1u);
  // A key written with an escape: the top level's are decoded by the scan; below, the DOM reads the event.
  EXPECT_EQ(expect_same_readings(sse({R"({"\u0063andidates": [{"content": {"parts": [{"text": "x"}]},"finishReason": "STOP"}]})"})), 1u);
  EXPECT_EQ(expect_same_readings(sse({R"({"candidates": [{"content": {"parts": [{"\u0074ext": "x"}]},"finishReason": "STOP"}]})"})), 0u);
  // Left to the DOM: function calls, thoughts, inline data, several candidates, odd indexes,
  // duplicates, counts that are not plain whole numbers, null members it reads, blocks, errors.
  for (std::string_view event : {
           R"({"candidates": [{"content": {"parts": [{"functionCall": {"name": "f","args": {}}}]},"finishReason": "STOP"}]})",
           R"({"candidates": [{"content": {"parts": [{"text": "hm","thought": true}]},"finishReason": "STOP"}]})",
           R"({"candidates": [{"content": {"parts": [{"text": "a"},{"inlineData": {"mimeType": "image/png","data": "AA"}}]},"finishReason": "STOP"}]})",
           R"({"candidates": [{"content": {"parts": [{"text": "a"}]},"finishReason": "STOP","index": 0},{"content": {"parts": [{"text": "b"}]},"finishReason": "STOP","index": 1}]})",
           R"({"candidates": [{"content": {"parts": [{"text": "a"}]},"finishReason": "STOP","index": 64}]})",
           R"({"candidates": [{"content": {"parts": [{"text": "a"}]},"finishReason": "STOP","index": 0.0}]})",
           R"({"candidates": [{"content": {"parts": [{"text": "a","text": "b"}]},"finishReason": "STOP"}]})",
           R"({"candidates": [{"content": {"parts": [{"text": "a"}]},"finishReason": "STOP"}],"candidates": []})",
           R"({"candidates": [{"content": {"parts": [{"text": "a"}]},"finishReason": "STOP"}],"usageMetadata": {"promptTokenCount": 1e3}})",
           R"({"candidates": [{"content": {"parts": [{"text": "a"}]},"finishReason": "STOP"}],"usageMetadata": {"promptTokenCount": -1}})",
           R"({"candidates": [{"content": {"parts": [{"text": "a"}]},"finishReason": null}]})",
           R"({"candidates": [{"content": null,"finishReason": "STOP"}]})",
           R"({"candidates": [],"promptFeedback": {"blockReason": "SAFETY"}})",
           R"({"error": {"code": 503,"message": "overloaded","status": "UNAVAILABLE"}})",
           "{\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"\xff\"}]},\"finishReason\": \"STOP\"}]}",
       }) {
    EXPECT_EQ(expect_same_readings(sse({event})), 0u) << event;
  }
  // Huge counts are clamped as token_count clamps them.
  EXPECT_EQ(expect_same_readings(sse({R"({"candidates": [{"content": {"parts": [{"text": "a"}]},"finishReason": "STOP"}],"usageMetadata": {"promptTokenCount": 18446744073709551615,"candidatesTokenCount": 1000000000000001,"totalTokenCount": null}})"})),
            1u);
  // After a choice's finish nothing of it goes out, whichever reading.
  EXPECT_EQ(expect_same_readings(sse({last, plain})), 1u);
}

// ---- grounding, URL context, safety and citation metadata -------------------------------

namespace {

// A Google Search grounded answer as Gemini writes it: the supports' segments point into
// the text, the first with two sources (the first is the annotation's), one without a
// startIndex (Google leaves a 0 out; LiteLLM skips such a support).
constexpr std::string_view grounded_metadata = R"({
  "webSearchQueries": ["who won euro 2024", "", "euro 2024 final score"],
  "searchEntryPoint": {"renderedContent": "<div>chips</div>"},
  "groundingChunks": [
    {"web": {"uri": "https://vertexaisearch.cloud.google.com/grounding-api-redirect/1", "title": "uefa.com"}},
    {"web": {"uri": "https://vertexaisearch.cloud.google.com/grounding-api-redirect/2", "title": "bbc.com"}},
    {"web": {}}],
  "groundingSupports": [
    {"segment": {"startIndex": 0, "endIndex": 19, "text": "Spain won Euro 2024"}, "groundingChunkIndices": [0, 1],
     "confidenceScores": [0.9, 0.8]},
    {"segment": {"startIndex": 20, "endIndex": 52, "text": "beating England 2-1 in the final"},
     "groundingChunkIndices": [1]},
    {"segment": {"startIndex": 53, "endIndex": 54}, "groundingChunkIndices": [2]},
    {"segment": {"endIndex": 19}, "groundingChunkIndices": [0]}]})";
constexpr std::string_view safety_ratings =
    R"([{"category": "HARM_CATEGORY_HATE_SPEECH", "probability": "NEGLIGIBLE"}])";
constexpr std::string_view citation_metadata =
    R"({"citations": [{"startIndex": 0, "endIndex": 19, "uri": "https://cite.example/euro"}]})";
constexpr std::string_view url_context_metadata =
    R"({"urlMetadata": [{"retrievedUrl": "https://uefa.example/euro", "urlRetrievalStatus": "URL_RETRIEVAL_STATUS_SUCCESS"}]})";

std::string grounded_answer() {
  return R"({"candidates": [{"content": {"parts": [{"text": "Spain won Euro 2024, beating England 2-1 in the final."}],
    "role": "model"}, "finishReason": "STOP", "index": 0, "safetyRatings": )" + std::string(safety_ratings) +
         R"(, "citationMetadata": )" + std::string(citation_metadata) + R"(, "urlContextMetadata": )" +
         std::string(url_context_metadata) + R"(, "groundingMetadata": )" + std::string(grounded_metadata) +
         R"(}], "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 12, "totalTokenCount": 22},
    "responseId": "resp-g"})";
}

json url_citation(long long start, long long end, const std::string& url, const std::string& title) {
  return {{"type", "url_citation"},
          {"url_citation", {{"start_index", start}, {"end_index", end}, {"url", url}, {"title", title}}}};
}

// An SSE event is one line: the multi-line JSON above with its line breaks as spaces.
std::string one_line(std::string s) {
  std::replace(s.begin(), s.end(), '\n', ' ');
  return s;
}

const json expected_annotations = json::array(
    {url_citation(0, 19, "https://vertexaisearch.cloud.google.com/grounding-api-redirect/1", "uefa.com"),
     url_citation(20, 52, "https://vertexaisearch.cloud.google.com/grounding-api-redirect/2", "bbc.com"),
     url_citation(53, 54, "", "")});

}  // namespace

TEST(gemini_response, grounding_url_context_safety_and_citations_reach_the_client) {
  // vertex_ai/'s Gemini models read their answers with the same translation.
  for (const auto* a : {&gem(), &providers::vertex_adapter()}) {
    auto r = a->translate_response(call_type::chat, a == &gem() ? gemini_dep() : vertex_dep(), grounded_answer(),
                                   "my-model");
    ASSERT_TRUE(r) << r.error().message;
    json j = json::parse(r->body);
    EXPECT_EQ(j["vertex_ai_grounding_metadata"], json::array({json::parse(grounded_metadata)}));
    EXPECT_EQ(j["vertex_ai_url_context_metadata"], json::array({json::parse(url_context_metadata)}));
    EXPECT_EQ(j["vertex_ai_safety_results"], json::array({json::parse(safety_ratings)}));
    EXPECT_EQ(j["vertex_ai_citation_metadata"], json::array({json::parse(citation_metadata)}));
    const auto& msg = j["choices"][0]["message"];
    EXPECT_EQ(msg["content"], "Spain won Euro 2024, beating England 2-1 in the final.");
    EXPECT_EQ(msg["annotations"], expected_annotations);
    // Two non-empty queries; the usage's other details as before.
    EXPECT_EQ(j["usage"]["prompt_tokens_details"], json::parse(R"({"cached_tokens": 0, "web_search_requests": 2})"));
    EXPECT_EQ(j["usage"]["total_tokens"], 22);
  }
}

TEST(gemini_response, an_answer_without_metadata_has_empty_lists_and_no_annotations) {
  for (std::string_view body : {
           R"({"candidates": [{"content": {"parts": [{"text": "Hi"}]}, "finishReason": "STOP"}]})",
           R"({"promptFeedback": {"blockReason": "SAFETY", "safetyRatings": []}})",
           // Grounded without web sources or queries: the metadata, no annotations, no count.
           R"({"candidates": [{"content": {"parts": [{"text": "Hi"}]}, "finishReason": "STOP",
               "groundingMetadata": {"webSearchQueries": [], "groundingChunks": [{"retrievedContext": {"uri": "gs://b/f"}}],
               "groundingSupports": [{"segment": {"startIndex": 0, "endIndex": 2}, "groundingChunkIndices": [0]}]}}]})",
       }) {
    auto r = gem().translate_response(call_type::chat, gemini_dep(), body, "m");
    ASSERT_TRUE(r) << body;
    json j = json::parse(r->body);
    EXPECT_EQ(j.dump(), r->body) << "the bytes nlohmann writes, the empty lists appended or not";
    for (auto k : {"vertex_ai_url_context_metadata", "vertex_ai_safety_results", "vertex_ai_citation_metadata"}) {
      EXPECT_EQ(j[k], json::array()) << k << " " << body;
    }
    EXPECT_EQ(j["vertex_ai_grounding_metadata"].size(), body.find("groundingMetadata") == std::string_view::npos ? 0u : 1u);
    EXPECT_FALSE(j["choices"][0]["message"].contains("annotations")) << body;
    EXPECT_FALSE(j["usage"]["prompt_tokens_details"].contains("web_search_requests")) << body;
  }
}

TEST(gemini_response, malformed_metadata_is_handed_on_and_its_bad_supports_skipped) {
  // Every odd shape in one answer: the request succeeds, each member is handed on as it
  // came, and only the one well-formed support becomes an annotation.
  const std::string odd_grounding = R"([
    {"groundingChunks": 5, "groundingSupports": [{"segment": {"startIndex": 0, "endIndex": 1}, "groundingChunkIndices": [0]}]},
    {"webSearchQueries": ["q", 7, null, ""],
     "groundingChunks": [{"web": {"uri": 5, "title": ["t"]}}, {"web": "https://x"}, 3, {"web": {"uri": "https://ok"}}],
     "groundingSupports": [
       {"segment": {"startIndex": "0", "endIndex": 1}, "groundingChunkIndices": [0]},
       {"segment": {"startIndex": 0.5, "endIndex": 1}, "groundingChunkIndices": [0]},
       {"segment": {"startIndex": 0, "endIndex": 1}, "groundingChunkIndices": [9]},
       {"segment": {"startIndex": 0, "endIndex": 1}, "groundingChunkIndices": [-1]},
       {"segment": {"startIndex": 0, "endIndex": 1}, "groundingChunkIndices": [18446744073709551615]},
       {"segment": {"startIndex": 0, "endIndex": 1}, "groundingChunkIndices": ["0"]},
       {"segment": {"startIndex": 0, "endIndex": 1}, "groundingChunkIndices": []},
       {"segment": {"startIndex": 0, "endIndex": 1}, "groundingChunkIndices": 0},
       {"segment": {"startIndex": 0, "endIndex": 1}, "groundingChunkIndices": [1]},
       {"segment": {"startIndex": 0, "endIndex": 1}, "groundingChunkIndices": [2]},
       {"segment": 4, "groundingChunkIndices": [3]},
       7,
       {"segment": {"startIndex": 3, "endIndex": 8}, "groundingChunkIndices": [0, 3]},
       {"segment": {"startIndex": 4, "endIndex": 9}, "groundingChunkIndices": [3]}]},
    "just a string"])";
  const std::string body = R"({"candidates": [{"content": {"parts": [{"text": "answer"}]}, "finishReason": "STOP",
    "groundingMetadata": )" + odd_grounding + R"(, "safetyRatings": {"not": "a list"}, "citationMetadata": 5,
    "urlContextMetadata": "x"}, {"content": {"parts": [{"text": "second"}]}, "groundingMetadata": "flat",
    "safetyRatings": []}]})";
  auto r = gem().translate_response(call_type::chat, gemini_dep(), body, "m");
  ASSERT_TRUE(r) << r.error().message;
  json j = json::parse(r->body);
  json grounding = json::parse(odd_grounding);
  grounding.push_back("flat");  // the second candidate's, after the first's flattened list
  EXPECT_EQ(j["vertex_ai_grounding_metadata"], grounding);
  EXPECT_EQ(j["vertex_ai_safety_results"], json::parse(R"([{"not": "a list"}, []])"));
  EXPECT_EQ(j["vertex_ai_citation_metadata"], json::parse("[5]"));
  EXPECT_EQ(j["vertex_ai_url_context_metadata"], json::parse(R"(["x"])"));
  // A first index names a chunk whose web has neither uri nor title as strings: "" for both.
  EXPECT_EQ(j["choices"][0]["message"]["annotations"],
            json::array({url_citation(3, 8, "", ""), url_citation(4, 9, "https://ok", "")}));
  EXPECT_FALSE(j["choices"][1]["message"].contains("annotations"));
  EXPECT_EQ(j["usage"]["prompt_tokens_details"]["web_search_requests"], 1);
}

TEST(gemini_stream, events_with_metadata_carry_it_and_the_annotations_both_readings_alike) {
  const std::string first =
      R"({"candidates": [{"content": {"parts": [{"text": "Spain won"}], "role": "model"}, "index": 0}], "responseId": "resp-g"})";
  const std::string grounded_last =
      R"({"candidates": [{"content": {"parts": [{"text": " Euro 2024."}], "role": "model"}, "finishReason": "STOP", "index": 0,
          "safetyRatings": )" + std::string(safety_ratings) + R"(, "groundingMetadata": )" + std::string(grounded_metadata) +
      R"(}], "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 4, "totalTokenCount": 14}, "responseId": "resp-g"})";
  const std::string wire = sse({first, one_line(grounded_last)});
  // The plain event from its scan, the one with metadata through the DOM: the same bytes.
  EXPECT_EQ(expect_same_readings(wire), 1u);

  const auto out = test::run_stream(gem(), call_type::chat, gemini_dep(), wire, true, {wire.size()});
  ASSERT_FALSE(out.error) << out.error->message;
  const auto& chunks = out.chunks;
  ASSERT_EQ(chunks.size(), 5u);  // role, "Spain won", " Euro 2024.", the finish, the usage
  const auto has_lists = [](const json& c) { return c.contains("vertex_ai_grounding_metadata"); };
  EXPECT_FALSE(has_lists(chunks[0]));
  EXPECT_FALSE(has_lists(chunks[1]));
  EXPECT_FALSE(chunks[1]["choices"][0]["delta"].contains("annotations"));
  const json& g = chunks[2];
  EXPECT_EQ(g["choices"][0]["delta"]["content"], " Euro 2024.");
  EXPECT_EQ(g["choices"][0]["delta"]["annotations"], expected_annotations);
  EXPECT_EQ(g["vertex_ai_grounding_metadata"], json::array({json::parse(grounded_metadata)}));
  EXPECT_EQ(g["vertex_ai_safety_ratings"], json::array({json::parse(safety_ratings)}));  // LiteLLM's chunk name
  EXPECT_FALSE(g.contains("vertex_ai_safety_results"));
  EXPECT_EQ(g["vertex_ai_url_context_metadata"], json::array());
  EXPECT_EQ(g["vertex_ai_citation_metadata"], json::array());
  EXPECT_EQ(chunks[3]["choices"][0]["finish_reason"], "stop");
  EXPECT_FALSE(has_lists(chunks[3]));
  EXPECT_EQ(chunks[4]["usage"]["prompt_tokens_details"]["web_search_requests"], 2);
  EXPECT_FALSE(has_lists(chunks[4]));

  // Without the members: no lists, no annotations, no count anywhere.
  const std::string plain_wire =
      sse({first, R"({"candidates": [{"content": {"parts": [{"text": "!"}]}, "finishReason": "STOP"}]})"});
  const auto plain = read_stream(plain_wire, true, false);
  ASSERT_FALSE(plain.error);
  EXPECT_EQ(plain.payloads.size(), 5u);
  for (const auto& p : plain.payloads) {
    EXPECT_EQ(p.find("vertex_ai_"), std::string::npos) << p;
    EXPECT_EQ(p.find("annotations"), std::string::npos) << p;
    EXPECT_EQ(p.find("web_search_requests"), std::string::npos) << p;
  }
}

TEST(gemini_stream, metadata_without_text_gets_a_chunk_of_its_own_or_rides_on_the_finish) {
  const std::string first = R"({"candidates": [{"content": {"parts": [{"text": "Hi"}]}, "index": 0}]})";
  // Metadata alone, the choice still open: a chunk with empty content carries it.
  const std::string alone = R"({"candidates": [{"content": {"role": "model"}, "index": 0, "citationMetadata": )" +
                            std::string(citation_metadata) + R"(, "urlContextMetadata": )" +
                            std::string(url_context_metadata) + "}]}";
  // Metadata with only the finish: the finish chunk carries it.
  const std::string finish = R"({"candidates": [{"finishReason": "STOP", "index": 0, "groundingMetadata": )" +
                             std::string(grounded_metadata) + "}]}";
  const std::string wire = sse({first, one_line(alone), one_line(finish)});
  EXPECT_EQ(expect_same_readings(wire), 1u);
  const auto out = test::run_stream(gem(), call_type::chat, gemini_dep(), wire, false, {wire.size()});
  ASSERT_FALSE(out.error) << out.error->message;
  ASSERT_EQ(out.chunks.size(), 4u);  // role, "Hi", the metadata's chunk, the finish
  const json& own = out.chunks[2];
  EXPECT_EQ(own["choices"][0]["delta"], json::parse(R"({"content": ""})"));
  EXPECT_EQ(own["vertex_ai_citation_metadata"], json::array({json::parse(citation_metadata)}));
  EXPECT_EQ(own["vertex_ai_url_context_metadata"], json::array({json::parse(url_context_metadata)}));
  EXPECT_EQ(own["vertex_ai_grounding_metadata"], json::array());
  const json& fin = out.chunks[3];
  EXPECT_EQ(fin["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(fin["choices"][0]["delta"]["annotations"], expected_annotations);
  EXPECT_EQ(fin["vertex_ai_grounding_metadata"], json::array({json::parse(grounded_metadata)}));

  // The first event of a stream with metadata only: the role chunk carries it.
  const std::string lone_wire = sse({one_line(alone), one_line(finish)});
  const auto lone = test::run_stream(gem(), call_type::chat, gemini_dep(), lone_wire, false, {lone_wire.size()});
  ASSERT_FALSE(lone.error);
  ASSERT_EQ(lone.chunks.size(), 2u);
  EXPECT_EQ(lone.chunks[0]["choices"][0]["delta"]["role"], "assistant");
  EXPECT_TRUE(lone.chunks[0].contains("vertex_ai_citation_metadata"));

  // Malformed members in a stream: handed on, bad supports skipped, never an error.
  const std::string odd = R"({"candidates": [{"content": {"parts": [{"text": "x"}]}, "finishReason": "STOP",
      "groundingMetadata": {"groundingChunks": {"web": {}}, "groundingSupports": [{"segment": {"startIndex": "a"}}]},
      "safetyRatings": 5}]})";
  EXPECT_EQ(expect_same_readings(sse({one_line(odd)})), 0u);
  const std::string bad_wire = sse({one_line(odd)});
  const auto bad = test::run_stream(gem(), call_type::chat, gemini_dep(), bad_wire, true, {bad_wire.size()});
  ASSERT_FALSE(bad.error);
  ASSERT_EQ(bad.chunks.size(), 4u);  // role (the event's first chunk: the lists), "x", the finish, the usage
  const json& c = bad.chunks[0];
  EXPECT_EQ(c["vertex_ai_safety_ratings"], json::parse("[5]"));
  EXPECT_FALSE(c["choices"][0]["delta"].contains("annotations"));
  EXPECT_FALSE(bad.chunks.back()["usage"]["prompt_tokens_details"].contains("web_search_requests"));

  // With n > 1 each candidate's annotations ride on its own chunk, the lists on the event's first.
  const std::string two = R"({"candidates": [{"content": {"parts": [{"text": "a"}]}, "index": 0, "safetyRatings": []},
      {"content": {"parts": [{"text": "b"}]}, "index": 1, "groundingMetadata": )" + std::string(grounded_metadata) + "}]}";
  const std::string two_wire = sse({one_line(two)});
  const auto both = test::run_stream(gem(), call_type::chat, gemini_dep(), two_wire, false, {two_wire.size()});
  const auto& cs = both.chunks;
  ASSERT_EQ(cs.size(), 4u);  // role 0, "a", role 1, "b"
  EXPECT_EQ(cs[0]["vertex_ai_safety_ratings"], json::parse("[[]]"));
  EXPECT_EQ(cs[0]["vertex_ai_grounding_metadata"], json::array({json::parse(grounded_metadata)}));
  EXPECT_FALSE(cs[1].contains("vertex_ai_safety_ratings"));
  EXPECT_EQ(cs[2]["choices"][0]["index"], 1);
  EXPECT_EQ(cs[2]["choices"][0]["delta"]["annotations"], expected_annotations);
  EXPECT_FALSE(cs[0]["choices"][0]["delta"].contains("annotations"));
}
