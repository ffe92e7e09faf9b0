#include "ollama_stream.hpp"
#include "stream_harness.hpp"
#include "switchyard/providers/adapter.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <optional>
#include <random>

using namespace switchyard;
using json = nlohmann::json;
using providers::call_type;

namespace {

config::deployment chat_dep() {
  config::deployment d;
  d.model_name = "local";
  d.model = "ollama_chat/llama3.2";
  d.provider = config::find_provider("ollama_chat");
  d.upstream_model = "llama3.2";
  return d;
}

config::deployment generate_dep() {
  auto d = chat_dep();
  d.model = "ollama/llama3.2";
  d.provider = config::find_provider("ollama");
  return d;
}

const providers::adapter& oll() {
  return providers::ollama_adapter();
}

json user(const std::string& text) {
  return {{"role", "user"}, {"content", text}};
}

json sent_body(call_type type, const config::deployment& d, const json& body, providers::build_options opts = {}) {
  auto call = oll().build(type, d, body, opts);
  EXPECT_TRUE(call) << (call ? "" : call.error().message);
  return call ? json::parse(call->body) : json();
}

// Captured from `ollama serve` (created_at and durations shortened).
constexpr std::string_view chat_stream =
    R"({"model":"llama3.2","created_at":"2024-11-04T10:00:00.1Z","message":{"role":"assistant","content":"The"},"done":false}
{"model":"llama3.2","created_at":"2024-11-04T10:00:00.2Z","message":{"role":"assistant","content":" sky"},"done":false}
{"model":"llama3.2","created_at":"2024-11-04T10:00:00.3Z","message":{"role":"assistant","content":" is blue \u00e9"},"done":false}
{"model":"llama3.2","created_at":"2024-11-04T10:00:00.4Z","message":{"role":"assistant","content":""},"done_reason":"stop","done":true,"total_duration":4883583458,"load_duration":1334875,"prompt_eval_count":26,"prompt_eval_duration":342546000,"eval_count":282,"eval_duration":4535599000}
)";

constexpr std::string_view generate_stream =
    R"({"model":"llama3.2","created_at":"2024-11-04T10:00:00.1Z","response":"Once","done":false}
{"model":"llama3.2","created_at":"2024-11-04T10:00:00.2Z","response":" upon","done":false}
{"model":"llama3.2","created_at":"2024-11-04T10:00:00.3Z","response":" a time","done":false}
{"model":"llama3.2","created_at":"2024-11-04T10:00:00.4Z","response":"","done":true,"done_reason":"length","context":[1,2,3],"total_duration":10706818083,"prompt_eval_count":12,"eval_count":3}
)";

constexpr std::string_view tool_stream =
    R"({"model":"llama3.2","created_at":"2024-11-04T10:00:00.1Z","message":{"role":"assistant","content":"","tool_calls":[{"function":{"name":"get_current_weather","arguments":{"format":"celsius","location":"Paris, FR"}}}]},"done":false}
{"model":"llama3.2","created_at":"2024-11-04T10:00:00.2Z","message":{"role":"assistant","content":""},"done_reason":"stop","done":true,"prompt_eval_count":122,"eval_count":33}
)";

test::stream_run run(std::string_view input, const config::deployment& d, bool include_usage = false,
                     call_type type = call_type::chat, std::size_t piece = 0) {
  return test::run_stream(oll(), type, d, input, include_usage, test::split_sizes(input.size(), piece, 0));
}

}  // namespace

// ---- request -------------------------------------------------------------------

TEST(ollama_request, chat_url_stream_flag_and_options) {
  json body = {{"model", "local"},
               {"messages", json::array({{{"role", "system"}, {"content", "Be brief."}}, user("hi")})},
               {"temperature", 0.2},
               {"top_p", 0.8},
               {"seed", 7},
               {"stop", "END"},
               {"max_tokens", 64},
               {"frequency_penalty", 0.5},
               {"presence_penalty", 0.25},
               {"user", "u1"},
               {"metadata", {{"a", 1}}}};
  auto call = oll().build(call_type::chat, chat_dep(), body, {});
  ASSERT_TRUE(call);
  EXPECT_EQ(call->url, "http://localhost:11434/api/chat");
  auto sent = json::parse(call->body);
  EXPECT_EQ(sent["model"], "llama3.2");
  ASSERT_TRUE(sent.contains("stream")) << "Ollama streams by default: the flag is always explicit";
  EXPECT_EQ(sent["stream"], false);
  EXPECT_EQ(sent["messages"], json::array({{{"role", "system"}, {"content", "Be brief."}}, user("hi")}));
  EXPECT_EQ(sent["options"], (json{{"temperature", 0.2},
                                   {"top_p", 0.8},
                                   {"seed", 7},
                                   {"stop", {"END"}},
                                   {"num_predict", 64},
                                   {"frequency_penalty", 0.5},
                                   {"presence_penalty", 0.25}}));
  for (const char* k : {"temperature", "max_tokens", "stop", "user", "metadata"}) {
    EXPECT_FALSE(sent.contains(k)) << k;
  }
  auto streaming = sent_body(call_type::chat, chat_dep(), {{"messages", json::array({user("hi")})}}, {true, false});
  EXPECT_EQ(streaming["stream"], true);
  EXPECT_FALSE(streaming.contains("options"));

  auto mct = sent_body(call_type::chat, chat_dep(),
                       {{"messages", json::array({user("hi")})}, {"max_completion_tokens", 9}, {"stop", {"a", "b"}}});
  EXPECT_EQ(mct["options"]["num_predict"], 9);
  EXPECT_EQ(mct["options"]["stop"], json::array({"a", "b"}));
}

TEST(ollama_request, api_base_and_native_fields) {
  auto d = chat_dep();
  d.api_base = "http://gpu-box:11434/";
  json body = {{"messages", json::array({user("hi")})},
               {"keep_alive", "10m"},
               {"num_ctx", 8192},
               {"top_k", 20},
               {"options", {{"repeat_penalty", 1.1}}}};
  auto call = oll().build(call_type::chat, d, body, {});
  ASSERT_TRUE(call);
  EXPECT_EQ(call->url, "http://gpu-box:11434/api/chat");
  auto sent = json::parse(call->body);
  EXPECT_EQ(sent["keep_alive"], "10m");
  EXPECT_EQ(sent["options"], (json{{"num_ctx", 8192}, {"top_k", 20}, {"repeat_penalty", 1.1}}));
  d.api_base = "http://gpu-box:11434/api/chat";
  EXPECT_EQ(oll().build(call_type::chat, d, body, {})->url, "http://gpu-box:11434/api/chat");
}

TEST(ollama_request, response_format_to_format) {
  auto j = sent_body(call_type::chat, chat_dep(),
                     {{"messages", json::array({user("x")})}, {"response_format", {{"type", "json_object"}}}});
  EXPECT_EQ(j["format"], "json");
  json schema = {{"type", "object"}, {"properties", {{"age", {{"type", "integer"}}}}}, {"required", {"age"}}};
  auto s = sent_body(call_type::chat, chat_dep(),
                     {{"messages", json::array({user("x")})},
                      {"response_format", {{"type", "json_schema"}, {"json_schema", {{"name", "p"}, {"schema", schema}}}}}});
  EXPECT_EQ(s["format"], schema);
  auto t = sent_body(call_type::chat, chat_dep(),
                     {{"messages", json::array({user("x")})}, {"response_format", {{"type", "text"}}}});
  EXPECT_FALSE(t.contains("format"));
}

TEST(ollama_request, tools_images_and_tool_messages) {
  json tools = json::array({{{"type", "function"},
                             {"function",
                              {{"name", "get_current_weather"},
                               {"description", "weather"},
                               {"parameters", {{"type", "object"}, {"properties", {{"location", {{"type", "string"}}}}}}}}}}});
  json msgs = json::array(
      {{{"role", "user"},
        {"content", json::array({{{"type", "text"}, {"text", "what is this?"}},
                                 {{"type", "image_url"}, {"image_url", {{"url", "data:image/png;base64,iVBORw0KGgo="}}}}})}},
       {{"role", "assistant"},
        {"content", nullptr},
        {"tool_calls",
         json::array({{{"id", "call_1"},
                       {"type", "function"},
                       {"function", {{"name", "get_current_weather"}, {"arguments", "{\"location\":\"Paris\"}"}}}}})}},
       {{"role", "tool"}, {"tool_call_id", "call_1"}, {"content", "18C"}}});
  auto sent = sent_body(call_type::chat, chat_dep(), {{"messages", msgs}, {"tools", tools}, {"tool_choice", "auto"}});
  EXPECT_EQ(sent["tools"], tools) << "OpenAI's tool format is Ollama's";
  EXPECT_FALSE(sent.contains("tool_choice"));
  EXPECT_EQ(sent["messages"][0],
            (json{{"role", "user"}, {"content", "what is this?"}, {"images", {"iVBORw0KGgo="}}}));
  EXPECT_EQ(sent["messages"][1],
            (json{{"role", "assistant"},
                  {"content", ""},
                  {"tool_calls", {{{"function", {{"name", "get_current_weather"}, {"arguments", {{"location", "Paris"}}}}}}}}}));
  EXPECT_EQ(sent["messages"][2],
            (json{{"role", "tool"}, {"content", "18C"}, {"tool_name", "get_current_weather"}}));

  auto none = sent_body(call_type::chat, chat_dep(),
                        {{"messages", json::array({user("x")})}, {"tools", tools}, {"tool_choice", "none"}});
  EXPECT_FALSE(none.contains("tools"));

  auto url_image = oll().build(
      call_type::chat, chat_dep(),
      json{{"messages",
            json::array({{{"role", "user"},
                          {"content", json::array({{{"type", "image_url"}, {"image_url", "https://x/cat.png"}}})}}})}},
      {});
  ASSERT_FALSE(url_image);
  EXPECT_EQ(url_image.error().status, 400);
  EXPECT_EQ(url_image.error().param, "messages[0].content[0]");
}

TEST(ollama_request, generate_flattens_messages) {
  auto single = sent_body(call_type::chat, generate_dep(),
                          {{"messages", json::array({{{"role", "system"}, {"content", "Be brief."}}, user("Why?")})}});
  EXPECT_EQ(single["prompt"], "Why?");
  EXPECT_EQ(single["system"], "Be brief.");
  EXPECT_FALSE(single.contains("messages"));
  EXPECT_EQ(single["stream"], false);

  auto call = oll().build(call_type::chat, generate_dep(),
                          json{{"messages", json::array({user("Hi"), {{"role", "assistant"}, {"content", "Hello!"}},
                                                         user("Why is the sky blue?")})}},
                          {true, false});
  ASSERT_TRUE(call);
  EXPECT_EQ(call->url, "http://localhost:11434/api/generate");
  auto multi = json::parse(call->body);
  EXPECT_EQ(multi["prompt"],
            "### User:\nHi\n\n### Assistant:\nHello!\n\n### User:\nWhy is the sky blue?\n\n### Assistant:\n");
  EXPECT_EQ(multi["stream"], true);

  json tools = json::array({{{"type", "function"}, {"function", {{"name", "f"}}}}});
  auto with_tools = oll().build(call_type::chat, generate_dep(),
                                json{{"messages", json::array({user("x")})}, {"tools", tools}}, {});
  ASSERT_FALSE(with_tools) << "/api/generate has no tools";
  EXPECT_EQ(with_tools.error().status, 400);
  EXPECT_EQ(with_tools.error().param, "tools");
  EXPECT_TRUE(oll().build(call_type::chat, generate_dep(), json{{"messages", json::array({user("x")})}, {"tools", tools}},
                          {false, true}));
}

TEST(ollama_request, completion_goes_to_generate) {
  for (auto d : {chat_dep(), generate_dep()}) {
    auto call = oll().build(call_type::completion, d, json{{"prompt", "def f():"}, {"max_tokens", 16}, {"suffix", "  return 1"}},
                            {});
    ASSERT_TRUE(call);
    EXPECT_EQ(call->url, "http://localhost:11434/api/generate");
    auto sent = json::parse(call->body);
    EXPECT_EQ(sent["prompt"], "def f():");
    EXPECT_EQ(sent["suffix"], "  return 1");
    EXPECT_EQ(sent["options"]["num_predict"], 16);
    EXPECT_EQ(sent["stream"], false);
  }
}

TEST(ollama_request, unsupported_params_400_or_dropped) {
  for (auto [k, v] : std::vector<std::pair<std::string, json>>{{"n", 3},
                                                               {"logprobs", true},
                                                               {"logit_bias", {{"1", 2}}},
                                                               {"top_logprobs", 2}}) {
    json body = {{"messages", json::array({user("x")})}, {k, v}};
    auto r = oll().build(call_type::chat, chat_dep(), body, {});
    ASSERT_FALSE(r) << k;
    EXPECT_EQ(r.error().status, 400);
    EXPECT_EQ(r.error().param, k);
    auto dropped = oll().build(call_type::chat, chat_dep(), body, {false, true});
    ASSERT_TRUE(dropped) << k;
    auto sent = json::parse(dropped->body);
    EXPECT_FALSE(sent.contains(k)) << k;
    EXPECT_FALSE(sent.contains("options") && sent["options"].contains(k)) << k;
  }
}

TEST(ollama_request, tool_choice_required_or_named_sends_the_tools_alone_on_api_chat) {
  const json tools = json::array(
      {{{"type", "function"}, {"function", {{"name", "f"}, {"parameters", {{"type", "object"}}}}}}});
  for (const json& choice : {json("required"), json{{"type", "function"}, {"function", {{"name", "f"}}}}}) {
    auto sent = sent_body(call_type::chat, chat_dep(), {{"messages", json::array({user("x")})}, {"tools", tools},
                                                       {"tool_choice", choice}});
    EXPECT_EQ(sent["tools"], tools) << choice;
    EXPECT_FALSE(sent.contains("tool_choice")) << choice;
    EXPECT_FALSE(sent.contains("options") && sent["options"].contains("tool_choice")) << choice;
  }
  // /api/generate takes no tools: tool_choice there is still refused (or dropped).
  json gen = {{"messages", json::array({user("x")})}, {"tool_choice", "required"}};
  auto r = oll().build(call_type::chat, generate_dep(), gen, {});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().status, 400);
  EXPECT_EQ(r.error().param, "tool_choice");
  EXPECT_TRUE(oll().build(call_type::chat, generate_dep(), gen, {false, true}));
}

TEST(ollama_request, embeddings) {
  auto call = oll().build(call_type::embedding, chat_dep(), json{{"model", "local"}, {"input", "hello"}}, {});
  ASSERT_TRUE(call);
  EXPECT_EQ(call->url, "http://localhost:11434/api/embed");
  EXPECT_EQ(json::parse(call->body), (json{{"model", "llama3.2"}, {"input", "hello"}}));
  auto list = oll().build(call_type::embedding, generate_dep(), json{{"input", {"a", "b"}}, {"user", "u"}}, {});
  ASSERT_TRUE(list);
  EXPECT_EQ(json::parse(list->body), (json{{"model", "llama3.2"}, {"input", {"a", "b"}}}));
  auto tokens = oll().build(call_type::embedding, chat_dep(), json{{"input", {1, 2, 3}}}, {});
  ASSERT_FALSE(tokens);
  EXPECT_EQ(tokens.error().param, "input");
  // base64 is accepted and never sent to Ollama: the pipeline encodes Ollama's floats.
  auto b64 = oll().build(call_type::embedding, chat_dep(), json{{"input", "x"}, {"encoding_format", "base64"}}, {});
  ASSERT_TRUE(b64);
  EXPECT_FALSE(json::parse(b64->body).contains("encoding_format"));
  auto other = oll().build(call_type::embedding, chat_dep(), json{{"input", "x"}, {"encoding_format", "int8"}}, {});
  ASSERT_FALSE(other);
  EXPECT_TRUE(providers::supports(*config::find_provider("ollama"), call_type::embedding));
  EXPECT_TRUE(providers::supports(*config::find_provider("ollama_chat"), call_type::embedding));
}

// ---- response ------------------------------------------------------------------

TEST(ollama_response, chat_answer_and_usage) {
  json body = {{"model", "llama3.2"},
               {"created_at", "2023-12-12T14:13:43.416799Z"},
               {"message", {{"role", "assistant"}, {"content", "Hello! How are you today?"}}},
               {"done_reason", "stop"},
               {"done", true},
               {"prompt_eval_count", 26},
               {"eval_count", 298}};
  auto r = oll().translate_response(call_type::chat, chat_dep(), body.dump(), "local");
  ASSERT_TRUE(r) << r.error().message;
  auto out = json::parse(r->body);
  EXPECT_EQ(out["object"], "chat.completion");
  EXPECT_EQ(out["model"], "local");
  EXPECT_EQ(out["id"].get<std::string>().rfind("chatcmpl-", 0), 0u);
  EXPECT_EQ(out["choices"][0]["message"], (json{{"role", "assistant"}, {"content", "Hello! How are you today?"}}));
  EXPECT_EQ(out["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(out["usage"], (json{{"prompt_tokens", 26}, {"completion_tokens", 298}, {"total_tokens", 324}}));
  EXPECT_EQ(r->tokens.total_tokens, 324);
  EXPECT_TRUE(r->tokens.known);
}

TEST(ollama_response, tool_calls_and_length) {
  json body = {{"message",
                {{"role", "assistant"},
                 {"content", ""},
                 {"tool_calls",
                  {{{"function", {{"name", "get_current_weather"}, {"arguments", {{"format", "celsius"}, {"location", "Paris, FR"}}}}}}}}}},
               {"done_reason", "stop"},
               {"done", true},
               {"prompt_eval_count", 122},
               {"eval_count", 33}};
  auto out = json::parse(oll().translate_response(call_type::chat, chat_dep(), body.dump(), "local")->body);
  const auto& msg = out["choices"][0]["message"];
  EXPECT_TRUE(msg["content"].is_null());
  ASSERT_EQ(msg["tool_calls"].size(), 1u);
  EXPECT_EQ(msg["tool_calls"][0]["type"], "function");
  EXPECT_EQ(msg["tool_calls"][0]["id"].get<std::string>().rfind("call_", 0), 0u);
  EXPECT_EQ(msg["tool_calls"][0]["function"]["name"], "get_current_weather");
  EXPECT_EQ(json::parse(msg["tool_calls"][0]["function"]["arguments"].get<std::string>()),
            (json{{"format", "celsius"}, {"location", "Paris, FR"}}));
  EXPECT_EQ(out["choices"][0]["finish_reason"], "tool_calls");

  json cut = {{"response", "abc"}, {"done", true}, {"done_reason", "length"}, {"eval_count", 3}};
  auto c = json::parse(oll().translate_response(call_type::chat, generate_dep(), cut.dump(), "local")->body);
  EXPECT_EQ(c["choices"][0]["message"]["content"], "abc") << "/api/generate answer as a chat completion";
  EXPECT_EQ(c["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(c["usage"]["prompt_tokens"], 0) << "prompt_eval_count absent (cached prompt)";
}

TEST(ollama_response, completion_and_embeddings) {
  json gen = {{"response", "42"}, {"done", true}, {"done_reason", "stop"}, {"prompt_eval_count", 5}, {"eval_count", 1}};
  auto r = oll().translate_response(call_type::completion, generate_dep(), gen.dump(), "local");
  ASSERT_TRUE(r);
  auto out = json::parse(r->body);
  EXPECT_EQ(out["object"], "text_completion");
  EXPECT_EQ(out["choices"][0]["text"], "42");
  EXPECT_TRUE(out["choices"][0]["logprobs"].is_null());
  EXPECT_EQ(out["usage"]["total_tokens"], 6);

  json emb = {{"model", "all-minilm"},
              {"embeddings", {{0.010071029, -0.0017594862, 0.05007221}, {-0.0098027075, 0.06042469, 0.025257962}}},
              {"total_duration", 14143917},
              {"prompt_eval_count", 8}};
  auto e = oll().translate_response(call_type::embedding, chat_dep(), emb.dump(), "local-embed");
  ASSERT_TRUE(e);
  auto eo = json::parse(e->body);
  EXPECT_EQ(eo["object"], "list");
  EXPECT_EQ(eo["model"], "local-embed");
  ASSERT_EQ(eo["data"].size(), 2u);
  EXPECT_EQ(eo["data"][1]["object"], "embedding");
  EXPECT_EQ(eo["data"][1]["index"], 1);
  EXPECT_EQ(eo["data"][1]["embedding"], emb["embeddings"][1]);
  EXPECT_EQ(eo["usage"], (json{{"prompt_tokens", 8}, {"total_tokens", 8}}));
  EXPECT_EQ(e->tokens.prompt_tokens, 8);

  auto bad = oll().translate_response(call_type::embedding, chat_dep(), "{\"model\":\"x\"}", "m");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().status, 500);
}

TEST(ollama_response, errors) {
  for (std::string_view body : {"", "nope", "[]", "{\"done\":true}"}) {
    auto r = oll().translate_response(call_type::chat, chat_dep(), body, "m");
    ASSERT_FALSE(r) << body;
    EXPECT_EQ(r.error().status, 500);
    EXPECT_NE(r.error().message.find("OllamaException"), std::string::npos);
  }
  auto in_band = oll().translate_response(call_type::chat, chat_dep(), R"({"error":"model is loading"})", "m");
  ASSERT_FALSE(in_band);
  EXPECT_NE(in_band.error().message.find("model is loading"), std::string::npos);

  auto e = oll().translate_error(chat_dep(), 404, R"({"error":"model \"llama9\" not found, try pulling it first"})");
  EXPECT_EQ(e.status, 404);
  EXPECT_NE(e.message.find("try pulling it first"), std::string::npos);
}

// ---- stream --------------------------------------------------------------------

TEST(ollama_stream, chat_ndjson_translated) {
  auto r = run(chat_stream, chat_dep(), true);
  ASSERT_FALSE(r.error) << r.error->message;
  EXPECT_EQ(r.chunks[0]["choices"][0]["delta"]["role"], "assistant");
  EXPECT_EQ(r.chunks[0]["object"], "chat.completion.chunk");
  EXPECT_EQ(test::assembled_text(r.chunks), "The sky is blue \xc3\xa9");
  EXPECT_EQ(test::finish_reason(r.chunks), "stop");
  EXPECT_TRUE(r.chunks.back()["choices"].empty());
  EXPECT_EQ(r.chunks.back()["usage"], (json{{"prompt_tokens", 26}, {"completion_tokens", 282}, {"total_tokens", 308}}));
  EXPECT_EQ(r.tokens.total_tokens, 308);

  auto quiet = run(chat_stream, chat_dep(), false);
  ASSERT_FALSE(quiet.error);
  EXPECT_FALSE(quiet.chunks.back().contains("usage"));
  EXPECT_EQ(quiet.tokens.total_tokens, 308) << "usage tracked without the usage chunk";
}

TEST(ollama_stream, every_split_gives_the_same_chunks) {
  for (auto [input, d, type] : {std::tuple{chat_stream, chat_dep(), call_type::chat},
                                std::tuple{generate_stream, generate_dep(), call_type::chat},
                                std::tuple{generate_stream, generate_dep(), call_type::completion},
                                std::tuple{tool_stream, chat_dep(), call_type::chat}}) {
    auto reference = test::run_stream(oll(), type, d, input, true, {input.size()});
    ASSERT_FALSE(reference.error);
    for (const auto& sizes : test::all_splits(input.size())) {
      auto r = test::run_stream(oll(), type, d, input, true, sizes);
      ASSERT_FALSE(r.error) << r.error->message;
      EXPECT_EQ(r.chunks, reference.chunks);
      EXPECT_EQ(r.tokens.total_tokens, reference.tokens.total_tokens);
    }
    std::string crlf;
    for (char c : input) {
      crlf += c == '\n' ? std::string("\r\n") : std::string(1, c);
    }
    auto r = test::run_stream(oll(), type, d, crlf, true, test::split_sizes(crlf.size(), 1, 0));
    ASSERT_FALSE(r.error);
    EXPECT_EQ(r.chunks, reference.chunks);
  }
}

TEST(ollama_stream, generate_and_completion) {
  auto chat = run(generate_stream, generate_dep(), true);
  ASSERT_FALSE(chat.error);
  EXPECT_EQ(test::assembled_text(chat.chunks), "Once upon a time");
  EXPECT_EQ(test::finish_reason(chat.chunks), "length");
  EXPECT_EQ(chat.tokens.prompt_tokens, 12);
  EXPECT_EQ(chat.tokens.completion_tokens, 3);

  auto text = run(generate_stream, generate_dep(), true, call_type::completion, 4);
  ASSERT_FALSE(text.error);
  for (const auto& c : text.chunks) {
    EXPECT_EQ(c["object"], "text_completion");
    EXPECT_EQ(c["id"], "ID");
  }
  EXPECT_EQ(test::assembled_text(text.chunks), "Once upon a time");
  EXPECT_EQ(test::finish_reason(text.chunks), "length");
}

TEST(ollama_stream, tool_calls) {
  auto r = run(tool_stream, chat_dep(), false, call_type::chat, 3);
  ASSERT_FALSE(r.error);
  auto calls = test::assembled_tool_calls(r.chunks);
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].id, "call_X");
  EXPECT_EQ(calls[0].name, "get_current_weather");
  EXPECT_EQ(json::parse(calls[0].arguments), (json{{"format", "celsius"}, {"location", "Paris, FR"}}));
  EXPECT_EQ(test::finish_reason(r.chunks), "tool_calls");
}

TEST(ollama_stream, last_line_without_newline_is_accepted) {
  std::string in(chat_stream);
  in.pop_back();
  auto r = run(in, chat_dep(), true, call_type::chat, 2);
  ASSERT_FALSE(r.error) << r.error->message;
  EXPECT_EQ(r.tokens.total_tokens, 308);
}

TEST(ollama_stream, cut_stream_is_an_error) {
  std::string in(chat_stream);
  auto last = in.find("{\"model\":\"llama3.2\",\"created_at\":\"2024-11-04T10:00:00.4Z\"");
  for (std::size_t cut : {std::size_t{0}, std::size_t{10}, last, last + 40}) {
    auto r = run(std::string_view(in).substr(0, cut), chat_dep());
    ASSERT_TRUE(r.error) << cut;
    EXPECT_GE(r.error->status, 500);
    if (cut == 0 || cut == last) {
      EXPECT_TRUE(r.error_from_finish);
      EXPECT_NE(r.error->message.find("done"), std::string::npos) << r.error->message;
    }
  }
}

TEST(ollama_stream, malformed_and_error_lines) {
  std::string first(chat_stream.substr(0, chat_stream.find('\n') + 1));
  auto bad = run(first + "{\"message\": {\"content\": \"x\"\n" + std::string(chat_stream), chat_dep());
  ASSERT_TRUE(bad.error);
  EXPECT_FALSE(bad.error_from_finish);
  EXPECT_NE(bad.error->message.find("not valid JSON"), std::string::npos);

  auto arr = run(first + "[1,2,3]\n", chat_dep());
  ASSERT_TRUE(arr.error);

  auto err = run(first + "{\"error\":\"an error was encountered while running the model: unexpected EOF\"}\n",
                 chat_dep(), false, call_type::chat, 1);
  ASSERT_TRUE(err.error);
  EXPECT_FALSE(err.error_from_finish);
  EXPECT_NE(err.error->message.find("unexpected EOF"), std::string::npos);
  EXPECT_EQ(test::assembled_text(err.chunks), "The");
}

TEST(ollama_stream, blank_lines_and_lines_after_done_are_ignored) {
  std::string in = "\n\r\n" + std::string(chat_stream) + "\n{\"garbage after done\n";
  auto r = run(in, chat_dep(), true, call_type::chat, 1);
  ASSERT_FALSE(r.error) << r.error->message;
  EXPECT_EQ(test::assembled_text(r.chunks), "The sky is blue \xc3\xa9");
}

TEST(ollama_stream, absurdly_nested_json_is_rejected_not_recursed) {
  std::string deep = "{\"message\":{\"role\":\"assistant\",\"content\":\"x\",\"tool_calls\":" +
                     std::string(200000, '[') + std::string(200000, ']') + "},\"done\":false}\n";
  auto r = run(deep + std::string(chat_stream), chat_dep());
  ASSERT_TRUE(r.error);
  EXPECT_EQ(r.error->status, 500);
  // Within the limit, nesting is fine (strings with brackets do not count).
  std::string ok = "{\"message\":{\"role\":\"assistant\",\"content\":\"[[[[{{{{\\\"\"},\"done\":false}\n";
  auto fine = run(ok + std::string(chat_stream), chat_dep());
  ASSERT_FALSE(fine.error) << fine.error->message;
  EXPECT_EQ(test::assembled_text(fine.chunks).substr(0, 9), "[[[[{{{{\"");
}

TEST(ollama_response, usage_unknown_without_counts) {
  json body = {{"message", {{"role", "assistant"}, {"content", "hi"}}}, {"done", true}};
  auto r = oll().translate_response(call_type::chat, chat_dep(), body.dump(), "m");
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->tokens.known);
  auto s = run("{\"message\":{\"content\":\"hi\"},\"done\":true}\n", chat_dep());
  ASSERT_FALSE(s.error);
  EXPECT_FALSE(s.tokens.known);
}

// ---- plain lines read from their scan vs the DOM ----------------------------------------

namespace {

using test::reading_outcome;

reading_outcome read_lines(std::string_view wire, call_type type, bool include_usage, bool dom_only) {
  return test::read_stream_with(
      [&](bool dom, std::size_t* scanned) {
        return providers::make_ollama_stream(type, "my-model", include_usage, {dom, scanned});
      },
      wire, dom_only);
}

// The two readings of `wire` agree (payloads byte for byte, error, usage), for chat and
// completion streams. Returns how many lines the scan read (chat, with usage).
std::size_t expect_same_readings(std::string_view wire) {
  std::size_t scanned = 0;
  for (auto type : {call_type::completion, call_type::chat}) {
    scanned = test::expect_same_readings_with(
        [type](std::string_view w, bool include_usage, bool dom_only) { return read_lines(w, type, include_usage, dom_only); },
        wire);
  }
  return scanned;
}

// Random /api/chat and /api/generate lines: text with escapes and non-ASCII, thinking, tool
// calls, done lines with reasons and counts (plain, huge, negative, fractions, null,
// strings), members in other kinds, duplicates, escaped keys, errors, garbage. Half the
// streams are plain (what Ollama sends), half mix in the rest.
class line_maker : public test::random_json {
 public:
  explicit line_maker(unsigned seed) : random_json(seed) {}

  std::string stream() {
    plain_ = chance(50);
    generate_ = chance(30);
    std::string out;
    const int lines = pick(1, 6);
    for (int i = 0; i < lines; ++i) {
      out += line(i == lines - 1) + (odd(5) ? "\r\n" : "\n");
    }
    if (odd(5)) {
      out.pop_back();  // the last line without its newline
    }
    return out;
  }

 private:

  std::string object(std::vector<std::string> members) { return braces(std::move(members), false); }

  std::string text() {
    static const std::string_view pieces[] = {"The",       " sky",    "",         "\\\"",           "\\\\",
                                              "\\/",       "\\n",     "\\t",      "\\b\\f\\r",      "\\u0000",
                                              "\\u001f",   "\\u00e9", "\\u4f60",  "\\ud83d\\ude00", "\xc3\xa9",
                                              "\xe4\xbd\xa0", "<b>&", " ",        "\x7f"};
    std::string out;
    const int n = pick(0, 3);
    for (int i = 0; i < n; ++i) {
      out += pieces[pick(0, static_cast<int>(std::size(pieces)) - 1)];
    }
    if (odd(2)) {
      out += "\xff";
    }
    return "\"" + out + "\"";
  }

  std::string count() {
    return plain_ ? std::to_string(pick(0, 5000))
                  : one_of({"12", "0", "-3", "2.5", "1e3", "99999999999999999999", "1000000000000001", "null",
                            "\"7\""});
  }

  std::string line(bool last) {
    if (odd(3)) {
      return one_of({R"({"error":"model 'x' not found"})", "[1]", "{\"message\": {", "not json", "{}"});
    }
    std::vector<std::string> m;
    m.push_back(member("model", "\"llama3.2\""));
    m.push_back(member("created_at", "\"2024-11-04T10:00:00.1Z\""));
    if (!generate_ || odd(5)) {
      std::vector<std::string> msg;
      msg.push_back(member("role", "\"assistant\""));
      if (!odd(5)) {
        msg.push_back(member("content", odd(5) ? one_of({"null", "5"}) : text()));
      }
      if (odd(10)) {
        msg.push_back(member("thinking", one_of({"\"\"", "\"hmm\"", "null"})));
      }
      if (odd(8)) {
        msg.push_back(member("tool_calls", R"([{"function":{"name":"f","arguments":{"a":1}}}])"));
      }
      if (odd(3)) {
        msg.push_back(member("images", "null"));
      }
      m.push_back(member("message", odd(3) ? one_of({"null", "\"x\""}) : object(std::move(msg))));
    }
    if (generate_ || odd(5)) {
      m.push_back(member("response", odd(5) ? "null" : text()));
      if (odd(10)) {
        m.push_back(member("thinking", one_of({"\"\"", "\"hmm\""})));
      }
    }
    const bool done = (last && !odd(10)) || odd(5);
    m.push_back(member("done", odd(3) ? one_of({"null", "1", "\"true\""}) : done ? "true" : "false"));
    if (done || odd(5)) {
      if (!odd(10)) {
        m.push_back(member("done_reason", plain_ ? one_of({"\"stop\"", "\"length\""})
                                                 : one_of({"\"stop\"", "\"length\"", "\"\\u006cength\"", "\"\"",
                                                           "null", "1"})));
      }
      m.push_back(member("total_duration", "4883583458"));
      if (!odd(20)) {
        m.push_back(member("prompt_eval_count", count()));
      }
      if (!odd(20)) {
        m.push_back(member("eval_count", count()));
      }
      if (generate_) {
        m.push_back(member("context", "[1,2,3]"));
      }
    }
    if (odd(3)) {
      m.push_back(member("error", "null"));
    }
    return object(std::move(m));
  }

  bool generate_ = false;
};

}  // namespace

// Whatever the scan reads, it translates exactly as the DOM does (chunks, errors, usage),
// over thousands of random streams; and it reads most of their lines.
TEST(ollama_stream, scanned_lines_give_the_dom_paths_bytes_over_many_shapes) {
  std::size_t lines = 0;
  std::size_t scanned = 0;
  for (unsigned seed = 0; seed < 3000; ++seed) {
    const std::string wire = line_maker(seed).stream();
    SCOPED_TRACE(wire);
    scanned += expect_same_readings(wire);
    lines += static_cast<std::size_t>(std::count(wire.begin(), wire.end(), '\n')) + (wire.back() != '\n');
    if (HasFailure()) {
      break;
    }
  }
  std::printf("ollama stream: %zu of %zu random lines read from their scan\n", scanned, lines);
  EXPECT_GT(scanned * 10, lines * 4) << "most plain lines take the scan";
  EXPECT_LT(scanned, lines) << "and some are left to the DOM";
}

// Named shapes: the captured streams are read from their scan, line by line; what the scan
// cannot vouch for goes to the DOM; the same output either way.
TEST(ollama_stream, plain_lines_are_scanned_and_the_rest_read_by_the_dom) {
  EXPECT_EQ(expect_same_readings(chat_stream), 4u);
  EXPECT_EQ(expect_same_readings(generate_stream), 4u);
  EXPECT_EQ(expect_same_readings(tool_stream), 1u) << "the tool call's line goes to the DOM";
  EXPECT_EQ(expect_same_readings(R"({"message":{"role":"assistant","content":"a\"b\\c\/\b\f\n\u0001\u00e9\ud83d\ude00 é"},"done":true,"done_reason":"\u006cength","prompt_eval_count":18446744073709551615,"eval_count":1000000000000001})"
                                 "\n"),
            1u);
  for (std::string_view line : {
           R"({"message":{"role":"assistant","content":"","thinking":"hmm"},"done":false})",
           R"({"thinking":"hmm","response":"","done":false})",
           R"({"message":{"role":"assistant","content":"a","content":"b"},"done":false})",
           R"({"message":{"role":"assistant","\u0063ontent":"a"},"done":false})",
           R"({"message":null,"response":"a","done":false})",
           R"({"message":{"content":5},"done":false})",
           R"({"message":{"content":"a"},"done":null})",
           R"({"message":{"content":"a"},"done":true,"done_reason":null,"eval_count":3})",
           R"({"message":{"content":"a"},"done":true,"eval_count":2.0})",
           R"({"message":{"content":"a"},"done":true,"eval_count":-1})",
           R"({"message":{"content":"a"},"done":true,"eval_count":null})",
           R"({"error":"model 'x' not found"})",
           "{\"message\":{\"content\":\"\xff\"},\"done\":true}",
       }) {
    EXPECT_EQ(expect_same_readings(std::string(line) + "\n"), 0u) << line;
  }
}
