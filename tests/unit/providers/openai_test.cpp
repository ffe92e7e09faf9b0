#include "switchyard/providers/adapter.hpp"
#include "switchyard/providers/capabilities.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <map>
#include <optional>

using namespace switchyard;
using json = nlohmann::json;

namespace {
config::deployment openai_dep() {
  config::deployment d;
  d.model_name = "gpt";
  d.model = "openai/gpt-4o";
  d.upstream_model = "gpt-4o";
  d.api_base = "http://127.0.0.1:9/v1/";
  d.api_key = "sk-upstream";
  return d;
}
std::string header(const providers::upstream_call& c, const std::string& name) {
  for (const auto& [k, v] : c.headers) {
    if (k == name) {
      return v;
    }
  }
  return {};
}
}  // namespace

TEST(openai_adapter, builds_upstream_request) {
  json body = {{"model", "gpt"},
               {"messages", json::array({{{"role", "user"}, {"content", "hi"}}})},
               {"temperature", 0.2},
               {"metadata", {{"tags", {"a"}}}},
               {"mock_testing_fallbacks", false},
               {"some_vendor_field", 1}};
  auto call = providers::openai_adapter().build(providers::call_type::chat, openai_dep(), body, {false, false});
  ASSERT_TRUE(call);
  EXPECT_EQ(call->url, "http://127.0.0.1:9/v1/chat/completions");
  EXPECT_EQ(header(*call, "authorization"), "Bearer sk-upstream");
  auto sent = json::parse(call->body);
  EXPECT_EQ(sent["model"], "gpt-4o");
  EXPECT_EQ(sent["temperature"], 0.2);
  EXPECT_EQ(sent["some_vendor_field"], 1) << "unknown fields pass through";
  EXPECT_FALSE(sent.contains("metadata"));
  EXPECT_FALSE(sent.contains("mock_testing_fallbacks"));
  EXPECT_FALSE(sent.contains("stream_options"));
}

TEST(openai_adapter, streaming_asks_for_usage) {
  json body = {{"model", "gpt"}, {"messages", json::array()}, {"stream", true}};
  auto call = providers::openai_adapter().build(providers::call_type::chat, openai_dep(), body, {true, false});
  ASSERT_TRUE(call);
  auto sent = json::parse(call->body);
  EXPECT_EQ(sent["stream"], true);
  EXPECT_EQ(sent["stream_options"]["include_usage"], true);
}

TEST(openai_adapter, azure_url_and_key_header) {
  auto d = openai_dep();
  d.provider = config::find_provider("azure");
  d.upstream_model = "my-deployment";
  d.api_base = "https://example.openai.azure.com";
  d.api_version = "2024-06-01";
  auto call = providers::openai_adapter().build(providers::call_type::chat, d, json{{"model", "gpt"}, {"messages", json::array()}}, {});
  ASSERT_TRUE(call);
  EXPECT_EQ(call->url,
            "https://example.openai.azure.com/openai/deployments/my-deployment/chat/completions?api-version=2024-06-01");
  EXPECT_EQ(header(*call, "api-key"), "sk-upstream");
  EXPECT_EQ(header(*call, "authorization"), "");
}

TEST(openai_adapter, upstream_error_message_extracted) {
  auto e = providers::upstream_error(429, R"({"error":{"message":"Rate limit reached","type":"requests"}})",
                                     "OpenAIException");
  EXPECT_EQ(e.status, 429);
  EXPECT_NE(e.message.find("Rate limit reached"), std::string::npos);
  auto e2 = providers::upstream_error(502, "<html>bad gateway</html>", "OpenAIException");
  EXPECT_EQ(e2.status, 502);
  EXPECT_NE(e2.message.find("bad gateway"), std::string::npos);
  auto e3 = providers::upstream_error(500, "", "OpenAIException");
  EXPECT_NE(e3.message.find("empty body"), std::string::npos);
}

// OpenAI's content-policy refusal says so only in error.code: the message keeps it, so
// the router's content_policy_fallbacks can choose by it.
TEST(openai_adapter, upstream_error_keeps_the_providers_code) {
  auto e = providers::upstream_error(
      400,
      R"({"error":{"message":"Your request was rejected","type":"invalid_request_error","code":"content_policy_violation"}})",
      "OpenAIException");
  EXPECT_NE(e.message.find("Your request was rejected (code: content_policy_violation)"), std::string::npos) << e.message;
  auto same = providers::upstream_error(400, R"({"error":{"message":"context_length_exceeded: too long","code":"context_length_exceeded"}})",
                                        "OpenAIException");
  EXPECT_EQ(same.message.find("(code:"), std::string::npos) << same.message;  // already in the message
  auto none = providers::upstream_error(400, R"({"error":{"message":"bad","code":null}})", "OpenAIException");
  EXPECT_EQ(none.message.find("(code:"), std::string::npos) << none.message;
}

TEST(openai_adapter, usage_parsed) {
  auto u = providers::usage_of(json::parse(R"({"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}})"));
  EXPECT_TRUE(u.known);
  EXPECT_EQ(u.total_tokens, 7);
  EXPECT_FALSE(providers::usage_of(json::parse(R"({"usage":null})")).known);
}

TEST(openai_adapter, usage_details_parsed) {
  auto u = providers::usage_of(json::parse(
      R"({"usage":{"prompt_tokens":300,"completion_tokens":40,"total_tokens":340,)"
      R"("prompt_tokens_details":{"cached_tokens":256,"audio_tokens":0},)"
      R"("completion_tokens_details":{"reasoning_tokens":32,"audio_tokens":0}}})"));
  EXPECT_EQ(u.cached_tokens, 256);
  EXPECT_EQ(u.reasoning_tokens, 32);
  EXPECT_EQ(u.cache_creation_tokens, 0);
  // LiteLLM's own usage (an upstream LiteLLM) and DeepSeek's names.
  auto l = providers::usage_of(json::parse(
      R"({"usage":{"prompt_tokens":10,"completion_tokens":1,"cache_read_input_tokens":4,"cache_creation_input_tokens":3}})"));
  EXPECT_EQ(l.cached_tokens, 4);
  EXPECT_EQ(l.cache_creation_tokens, 3);
  auto d = providers::usage_of(json::parse(R"({"usage":{"prompt_tokens":10,"prompt_cache_hit_tokens":6}})"));
  EXPECT_EQ(d.cached_tokens, 6);
  // Details that are not objects or numbers count nothing.
  auto bad = providers::usage_of(json::parse(
      R"({"usage":{"prompt_tokens":1,"prompt_tokens_details":null,"completion_tokens_details":{"reasoning_tokens":"9"}}})"));
  EXPECT_TRUE(bad.known);
  EXPECT_EQ(bad.cached_tokens, 0);
  EXPECT_EQ(bad.reasoning_tokens, 0);
}

TEST(openai_adapter, response_usage_details_read_without_changing_the_body) {
  auto d = openai_dep();
  d.provider = config::find_provider("openai");
  const std::string body =
      R"({"id":"c1","object":"chat.completion","model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],)"
      R"("usage":{"prompt_tokens":2048,"completion_tokens":100,"total_tokens":2148,)"
      R"("prompt_tokens_details":{"cached_tokens":1024},"completion_tokens_details":{"reasoning_tokens":64}}})";
  auto r = providers::openai_adapter().translate_response(providers::call_type::chat, d, body, "gpt");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->tokens.prompt_tokens, 2048);
  EXPECT_EQ(r->tokens.cached_tokens, 1024);
  EXPECT_EQ(r->tokens.reasoning_tokens, 64);
  auto out = json::parse(r->body);
  EXPECT_EQ(out["usage"]["prompt_tokens_details"]["cached_tokens"], 1024) << "the client sees the details";
  EXPECT_EQ(out["usage"]["completion_tokens_details"]["reasoning_tokens"], 64);
}

// A provider's counts are never negative nor beyond 10^18, whichever way they are read (the
// DOM and the raw bytes of an answer): a negative count made a negative cost, which took
// spend off a key's budget, and 1e300 was an undefined conversion.
TEST(openai_adapter, odd_token_counts_are_clamped_both_ways) {
  auto d = openai_dep();
  d.provider = config::find_provider("openai");
  const std::string usage =
      R"({"prompt_tokens":-1000,"completion_tokens":1e300,"total_tokens":12.7,)"
      R"("prompt_tokens_details":{"cached_tokens":99999999999999999999},"completion_tokens_details":{"reasoning_tokens":-1.5}})";
  auto dom = providers::usage_of(json::parse(R"({"usage":)" + usage + "}"));
  const std::string body =
      R"({"id":"c1","object":"chat.completion","model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":)" +
      usage + "}";
  auto r = providers::openai_adapter().translate_response(providers::call_type::chat, d, body, "gpt");
  ASSERT_TRUE(r) << r.error().message;
  for (const auto& u : {dom, r->tokens}) {
    EXPECT_EQ(u.prompt_tokens, 0);
    EXPECT_EQ(u.completion_tokens, 1'000'000'000'000'000LL);
    EXPECT_EQ(u.total_tokens, 12);
    EXPECT_EQ(u.cached_tokens, 1'000'000'000'000'000LL);
    EXPECT_EQ(u.reasoning_tokens, 0);
  }
}

TEST(openai_adapter, mock_stream_frames_reassemble) {
  json req = {{"messages", json::array({{{"role", "user"}, {"content", "hello there"}}})}};
  auto frames = providers::mock_chat_stream("demo", "one two  three", req, "id1", 1, true);
  ASSERT_GE(frames.size(), 5u);
  EXPECT_EQ(frames.back(), "data: [DONE]\n\n");
  std::string text;
  bool saw_usage = false;
  for (const auto& f : frames) {
    ASSERT_EQ(f.rfind("data: ", 0), 0u);
    ASSERT_EQ(f.substr(f.size() - 2), "\n\n");
    auto payload = f.substr(6, f.size() - 8);
    if (payload == "[DONE]") {
      continue;
    }
    auto j = json::parse(payload);
    if (j["choices"].empty()) {
      saw_usage = j["usage"]["total_tokens"].get<int>() > 0;
      continue;
    }
    auto& delta = j["choices"][0]["delta"];
    if (delta.contains("content")) {
      text += delta["content"].get<std::string>();
    }
  }
  EXPECT_EQ(text, "one two  three");
  EXPECT_TRUE(saw_usage);
  auto full = json::parse(providers::mock_chat_completion("demo", "hi", req, "id2", 1));
  EXPECT_EQ(full["choices"][0]["message"]["content"], "hi");
  EXPECT_EQ(full["object"], "chat.completion");
}

TEST(openai_adapter, embeddings_and_completions_urls) {
  auto d = openai_dep();
  auto e = providers::openai_adapter().build(providers::call_type::embedding, d, json{{"model", "gpt"}, {"input", "x"}},
                                             {true, false});
  ASSERT_TRUE(e);
  EXPECT_EQ(e->url, "http://127.0.0.1:9/v1/embeddings");
  EXPECT_FALSE(json::parse(e->body).contains("stream_options"));
  auto c = providers::openai_adapter().build(providers::call_type::completion, d, json{{"model", "gpt"}, {"prompt", "x"}},
                                             {});
  ASSERT_TRUE(c);
  EXPECT_EQ(c->url, "http://127.0.0.1:9/v1/completions");
}

namespace {
std::vector<std::string> run_stream(const std::string& wire, bool include_usage, std::size_t split,
                                    switchyard::core::result<void>* end = nullptr, providers::usage* u = nullptr) {
  config::deployment d = openai_dep();
  auto t = providers::openai_adapter().make_stream(providers::call_type::chat, d, "gpt", include_usage);
  std::vector<std::string> out;
  for (std::size_t i = 0; i < wire.size(); i += split) {
    auto r = t->feed(std::string_view(wire).substr(i, split), out);
    if (!r) {
      if (end) {
        *end = r;
      }
      return out;
    }
  }
  auto r = t->finish(out);
  if (end) {
    *end = r;
  }
  if (u) {
    *u = t->tokens();
  }
  return out;
}
const std::string openai_wire =
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}],\"usage\":null}\n\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}],\"usage\":null}\n\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n"
    "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2,\"total_tokens\":7}}\n\n"
    "data: [DONE]\n\n";
}  // namespace

TEST(openai_stream, passes_chunks_and_tracks_usage_in_any_split) {
  for (std::size_t split : {1u, 7u, 1000u}) {
    switchyard::core::result<void> end;
    providers::usage u;
    auto with = run_stream(openai_wire, true, split, &end, &u);
    ASSERT_TRUE(end);
    EXPECT_EQ(with.size(), 4u) << split;
    EXPECT_EQ(u.total_tokens, 7);
    auto without = run_stream(openai_wire, false, split, &end, &u);
    EXPECT_EQ(without.size(), 3u) << "usage-only chunk dropped when the client did not ask";
    EXPECT_EQ(u.total_tokens, 7) << "usage still known";
  }
}

TEST(openai_stream, usage_null_goes_only_to_a_client_that_asked_for_usage) {
  for (std::size_t split : {1u, 7u, 1000u}) {
    switchyard::core::result<void> end;
    auto without = run_stream(openai_wire, false, split, &end);
    ASSERT_TRUE(end);
    ASSERT_EQ(without.size(), 3u);
    for (const auto& c : without) {
      EXPECT_EQ(c.find("usage"), std::string::npos) << c;
      EXPECT_FALSE(json::parse(c).contains("usage")) << c;
    }
    EXPECT_EQ(json::parse(without[1])["choices"][0]["delta"]["content"], "Hel");
    auto with = run_stream(openai_wire, true, split, &end);
    ASSERT_EQ(with.size(), 4u);
    EXPECT_TRUE(json::parse(with[0])["usage"].is_null()) << "OpenAI's usage null, as sent";
    EXPECT_TRUE(json::parse(with[0]).contains("usage"));
  }
  // Wherever the member sits, with any spacing; a usage object stays.
  const std::string wire =
      "data: {\"usage\":null,\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n"
      "data: { \"id\":\"x\" , \"usage\" : null , \"choices\":[{\"index\":0,\"delta\":{}}]}\n\n"
      "data: {\"usage\":null}\n\n"
      "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":{\"total_tokens\":3}}\n\n"
      "data: [DONE]\n\n";
  switchyard::core::result<void> end;
  auto out = run_stream(wire, false, 1000, &end);
  ASSERT_TRUE(end);
  ASSERT_EQ(out.size(), 4u);
  EXPECT_EQ(out[0], R"({"choices":[{"index":0,"delta":{"content":"a"}}]})");
  EXPECT_EQ(json::parse(out[1]), json::parse(R"({"id":"x","choices":[{"index":0,"delta":{}}]})")) << out[1];
  EXPECT_EQ(out[2], "{}");
  EXPECT_EQ(json::parse(out[3])["usage"]["total_tokens"], 3);
}

TEST(openai_stream, usage_details_of_the_final_chunk) {
  const std::string wire =
      "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}],\"usage\":null}\n\n"
      "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n"
      "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1500,\"completion_tokens\":90,\"total_tokens\":1590,"
      "\"prompt_tokens_details\":{\"cached_tokens\":1280},\"completion_tokens_details\":{\"reasoning_tokens\":70}}}\n\n"
      "data: [DONE]\n\n";
  for (std::size_t split : {1u, 5u, 1000u}) {
    switchyard::core::result<void> end;
    providers::usage u;
    auto out = run_stream(wire, true, split, &end, &u);
    ASSERT_TRUE(end) << split;
    EXPECT_EQ(u.prompt_tokens, 1500);
    EXPECT_EQ(u.cached_tokens, 1280) << split;
    EXPECT_EQ(u.reasoning_tokens, 70) << split;
    ASSERT_EQ(out.size(), 3u);
    EXPECT_EQ(json::parse(out.back())["usage"]["prompt_tokens_details"]["cached_tokens"], 1280)
        << "the usage chunk reaches the client as sent";
  }
}

TEST(openai_stream, cut_stream_is_an_error) {
  switchyard::core::result<void> end;
  auto cut = openai_wire.substr(0, openai_wire.find("finish_reason") - 40);
  run_stream(cut, false, 1000, &end);
  ASSERT_FALSE(end);
  EXPECT_NE(end.error().message.find("cut"), std::string::npos);
}

TEST(openai_stream, error_event_is_an_error) {
  switchyard::core::result<void> end;
  run_stream("data: {\"error\":{\"message\":\"overloaded\",\"code\":503}}\n\n", false, 1000, &end);
  ASSERT_FALSE(end);
  EXPECT_EQ(end.error().status, 503);
  EXPECT_NE(end.error().message.find("overloaded"), std::string::npos);
}

TEST(json_nesting, deep_bodies_are_caught_before_parsing) {
  EXPECT_FALSE(providers::json_nesting_exceeds(R"({"a":[{"b":[1,2]}]})", 4));
  EXPECT_TRUE(providers::json_nesting_exceeds(R"({"a":[{"b":[1,2]}]})", 3));
  EXPECT_FALSE(providers::json_nesting_exceeds(R"({"a":"[[[[[[[[[[\"[[["})", 2)) << "brackets in strings";
  EXPECT_TRUE(providers::json_nesting_exceeds(std::string(100000, '[')));
  EXPECT_FALSE(providers::json_nesting_exceeds(std::string(200, '[')));
}

TEST(openai_stream, invalid_json_event_is_an_error) {
  switchyard::core::result<void> end;
  auto out = run_stream("data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: {\"id\": \"broken\", \"choices\": [\n\n",
                        false, 1000, &end);
  ASSERT_FALSE(end);
  EXPECT_EQ(out.size(), 1u) << "the valid event before it is kept, the broken one is not relayed";
  EXPECT_NE(end.error().message.find("not valid JSON"), std::string::npos);
}

TEST(embeddings_base64, floats_become_little_endian_float32) {
  auto r = providers::encode_embeddings_base64(
      R"({"object":"list","data":[{"object":"embedding","index":0,"embedding":[1.0,-2.0]}],"model":"m"})");
  ASSERT_TRUE(r);
  auto j = json::parse(*r);
  // 1.0f = 00 00 80 3f, -2.0f = 00 00 00 c0 -> base64 "AACAPwAAAMA="
  EXPECT_EQ(j["data"][0]["embedding"], "AACAPwAAAMA=");
  EXPECT_FALSE(providers::encode_embeddings_base64("[]"));
}

// ---- OpenAI's reasoning models (o-series, gpt-5): both build paths

namespace {
config::deployment reasoning_dep(std::string provider, std::string upstream) {
  auto d = openai_dep();
  d.provider = config::find_provider(provider);
  d.model = provider + "/" + upstream;
  d.upstream_model = std::move(upstream);
  if (provider == "azure") {
    d.api_base = "https://example.openai.azure.com";
    d.api_version = "2025-01-01-preview";
  }
  return d;
}

// The body sent on the byte path and on the DOM path (they must agree), or the error.
struct sent {
  json body;
  std::optional<switchyard::core::error> err;
  explicit operator bool() const { return !err; }
  // Mutable: a member the body lacks reads as null (a const json asserts instead).
  json& operator*() { return body; }
  json* operator->() { return &body; }
  const switchyard::core::error& error() const { return *err; }
};
sent sent_both(const config::deployment& d, const json& body, bool drop = false) {
  const std::string text = body.dump();
  auto scan = providers::scan_json(text);
  auto raw = providers::openai_adapter().build_raw(providers::call_type::chat, d, text, scan, {false, drop});
  auto dom = providers::openai_adapter().build(providers::call_type::chat, d, body, {false, drop});
  EXPECT_TRUE(raw.has_value());
  EXPECT_EQ(bool(*raw), bool(dom)) << text;
  if (!dom) {
    EXPECT_EQ((*raw).error().message, dom.error().message);
    return {json(), dom.error()};
  }
  EXPECT_EQ(json::parse((*raw)->joined_body()), json::parse(dom->body)) << text;
  return {json::parse(dom->body), std::nullopt};
}
}  // namespace

TEST(openai_reasoning_models, max_tokens_becomes_max_completion_tokens) {
  const json body = {{"model", "m"}, {"messages", json::array()}, {"max_tokens", 64}};
  for (auto [provider, model] : std::vector<std::pair<std::string, std::string>>{
           {"openai", "o1"}, {"openai", "o1-mini"}, {"openai", "o3-2025-04-16"}, {"openai", "o4-mini"},
           {"openai", "gpt-5"}, {"openai", "gpt-5-nano"}, {"openai", "gpt-5.1"}, {"azure", "my-o3-mini"},
           {"azure", "o_series/team-reasoner"}, {"azure", "gpt-5-prod"}, {"azure", "gpt5_series/prod"}}) {
    auto sent = sent_both(reasoning_dep(provider, model), body);
    ASSERT_TRUE(sent) << model;
    EXPECT_EQ((*sent)["max_completion_tokens"], 64) << provider << "/" << model;
    EXPECT_FALSE(sent->contains("max_tokens")) << provider << "/" << model;
  }
  for (auto [provider, model] : std::vector<std::pair<std::string, std::string>>{
           {"openai", "gpt-4o"}, {"openai", "gpt-5-chat-latest"}, {"openai", "omni-moderation"},
           {"openai", "o10x"}, {"azure", "gpt-4o-dep"}, {"hosted_vllm", "o3-mini"}, {"groq", "gpt-5"}}) {
    auto sent = sent_both(reasoning_dep(provider, model), body);
    ASSERT_TRUE(sent) << model;
    EXPECT_EQ((*sent)["max_tokens"], 64) << provider << "/" << model << ": not a reasoning model here";
    EXPECT_FALSE(sent->contains("max_completion_tokens")) << provider << "/" << model;
  }
  // Both set: max_completion_tokens wins, max_tokens is left out.
  auto both = sent_both(reasoning_dep("openai", "o3"), {{"messages", json::array()}, {"max_tokens", 5},
                                                         {"max_completion_tokens", 9}});
  ASSERT_TRUE(both);
  EXPECT_EQ((*both)["max_completion_tokens"], 9);
  EXPECT_FALSE(both->contains("max_tokens"));
}

TEST(openai_reasoning_models, deployment_defaults_are_renamed_too) {
  auto d = reasoning_dep("openai", "o4-mini");
  d.request_defaults = {{"max_tokens", 256}, {"temperature", 1}};
  auto sent = sent_both(d, {{"messages", json::array()}});
  ASSERT_TRUE(sent);
  EXPECT_EQ((*sent)["max_completion_tokens"], 256);
  EXPECT_FALSE(sent->contains("max_tokens"));
  EXPECT_EQ((*sent)["temperature"], 1);
  // The request's max_tokens wins over the default, and is renamed.
  auto own = sent_both(d, {{"messages", json::array()}, {"max_tokens", 8}});
  ASSERT_TRUE(own);
  EXPECT_EQ((*own)["max_completion_tokens"], 8);
  EXPECT_FALSE(own->contains("max_tokens"));
  // A default max_completion_tokens is LiteLLM's last word over the request's max_tokens.
  d.request_defaults = {{"max_completion_tokens", 100}};
  auto mct = sent_both(d, {{"messages", json::array()}, {"max_tokens", 8}});
  ASSERT_TRUE(mct);
  EXPECT_EQ((*mct)["max_completion_tokens"], 100);
  EXPECT_FALSE(mct->contains("max_tokens"));
  // A default temperature other than 1 is refused like the request's.
  d.request_defaults = {{"temperature", 0.2}};
  auto t = sent_both(d, {{"messages", json::array()}});
  ASSERT_FALSE(t);
  EXPECT_EQ(t.error().param, "temperature");
}

TEST(openai_reasoning_models, temperature_other_than_1_is_a_400_or_dropped) {
  const json body = {{"messages", json::array()}, {"temperature", 0.5}};
  for (auto [provider, model] : std::vector<std::pair<std::string, std::string>>{
           {"openai", "o3-mini"}, {"openai", "gpt-5-mini"}, {"azure", "o_series/x"}, {"openai", "gpt-5-codex"}}) {
    auto d = reasoning_dep(provider, model);
    auto e = sent_both(d, body);
    ASSERT_FALSE(e) << model;
    EXPECT_EQ(e.error().status, 400);
    EXPECT_EQ(e.error().param, "temperature");
    EXPECT_NE(e.error().message.find("temperature=0.5"), std::string::npos) << e.error().message;
    EXPECT_NE(e.error().message.find("drop_params"), std::string::npos) << e.error().message;
    auto dropped = sent_both(d, body, true);
    ASSERT_TRUE(dropped) << model;
    EXPECT_FALSE(dropped->contains("temperature")) << model;
  }
  auto one = sent_both(reasoning_dep("openai", "o1"), {{"messages", json::array()}, {"temperature", 1.0}});
  ASSERT_TRUE(one);
  EXPECT_EQ((*one)["temperature"], 1.0);
  auto null = sent_both(reasoning_dep("openai", "o1"), {{"messages", json::array()}, {"temperature", nullptr}});
  ASSERT_TRUE(null);
  EXPECT_FALSE(null->contains("temperature")) << "a null temperature is left out";
}

TEST(openai_reasoning_models, gpt_5_point_releases_take_any_temperature_without_reasoning) {
  auto d = reasoning_dep("openai", "gpt-5.1");
  auto free = sent_both(d, {{"messages", json::array()}, {"temperature", 0.2}});
  ASSERT_TRUE(free);
  EXPECT_EQ((*free)["temperature"], 0.2);
  auto none = sent_both(d, {{"messages", json::array()}, {"temperature", 0.2}, {"reasoning_effort", "none"}});
  ASSERT_TRUE(none);
  EXPECT_EQ((*none)["temperature"], 0.2);
  auto high = sent_both(d, {{"messages", json::array()}, {"temperature", 0.2}, {"reasoning_effort", "high"}});
  ASSERT_FALSE(high);
  EXPECT_EQ(high.error().param, "temperature");
  auto dict = sent_both(d, {{"messages", json::array()}, {"temperature", 0.2}, {"reasoning_effort", {{"effort", "low"}}}});
  ASSERT_FALSE(dict) << "the Responses form of reasoning_effort counts too";
  // model_info overrides the name's rule either way.
  auto plain = reasoning_dep("openai", "gpt-5");
  plain.model_info = {{"supports_none_reasoning_effort", true}};
  EXPECT_TRUE(sent_both(plain, {{"messages", json::array()}, {"temperature", 0.2}}));
  d.model_info = {{"supports_none_reasoning_effort", false}};
  EXPECT_FALSE(sent_both(d, {{"messages", json::array()}, {"temperature", 0.2}}));
}

TEST(openai_reasoning_models, azure_routes_and_base_model) {
  auto routed = reasoning_dep("azure", "o_series/team-reasoner");
  auto call = providers::openai_adapter().build(providers::call_type::chat, routed,
                                                {{"messages", json::array()}, {"max_tokens", 3}}, {});
  ASSERT_TRUE(call);
  EXPECT_EQ(call->url,
            "https://example.openai.azure.com/openai/deployments/team-reasoner/chat/completions?api-version=2025-01-01-preview");
  EXPECT_EQ(json::parse(call->body)["model"], "team-reasoner");
  auto named = reasoning_dep("azure", "prod-chat");
  named.model_info = {{"base_model", "azure/gpt-5-mini"}};
  auto sent = sent_both(named, {{"messages", json::array()}, {"max_tokens", 3}});
  ASSERT_TRUE(sent);
  EXPECT_EQ((*sent)["max_completion_tokens"], 3) << "model_info.base_model names the family";
  // Embeddings and legacy completions are left alone.
  auto e = providers::openai_adapter().build(providers::call_type::completion, reasoning_dep("openai", "o3"),
                                             {{"prompt", "x"}, {"max_tokens", 3}, {"temperature", 0.1}}, {});
  ASSERT_TRUE(e);
  EXPECT_EQ(json::parse(e->body)["max_tokens"], 3);
}

TEST(openai_reasoning_models, refused_parameters_are_a_400_naming_them_or_dropped) {
  // o-series: LiteLLM's list; one 400 names every refused parameter the request sets.
  const json o_body = {{"messages", json::array()}, {"top_p", 0.9}, {"presence_penalty", 0.5},
                       {"logprobs", true}, {"top_logprobs", 2}, {"frequency_penalty", 0.1}, {"stop", "x"}};
  for (auto [provider, model] : std::vector<std::pair<std::string, std::string>>{
           {"openai", "o3-mini"}, {"openai", "o1"}, {"azure", "o_series/x"}}) {
    auto d = reasoning_dep(provider, model);
    auto e = sent_both(d, o_body);
    ASSERT_FALSE(e) << model;
    EXPECT_EQ(e.error().status, 400);
    EXPECT_EQ(e.error().param, "logprobs");
    EXPECT_NE(e.error().message.find(provider + " does not support parameters: ['logprobs', 'top_p', "
                                                "'presence_penalty', 'frequency_penalty', 'top_logprobs']"),
              std::string::npos)
        << e.error().message;
    EXPECT_NE(e.error().message.find("drop_params"), std::string::npos);
    auto dropped = sent_both(d, o_body, true);
    ASSERT_TRUE(dropped) << model;
    for (auto k : {"top_p", "presence_penalty", "logprobs", "top_logprobs", "frequency_penalty"}) {
      EXPECT_FALSE(dropped->contains(k)) << model << ": " << k;
    }
    EXPECT_EQ((*dropped)["stop"], "x") << "o-series models take stop";
  }
  // gpt-5: its own list; logprobs, top_p and top_logprobs too before gpt-5.1.
  const json g_body = {{"messages", json::array()}, {"stop", json::array({"a"})}, {"logit_bias", {{"1", 2}}},
                       {"top_p", 0.5}};
  auto g = sent_both(reasoning_dep("openai", "gpt-5-mini"), g_body);
  ASSERT_FALSE(g);
  EXPECT_EQ(g.error().param, "stop");
  EXPECT_NE(g.error().message.find("openai does not support parameters: ['stop', 'logit_bias', 'top_p']"),
            std::string::npos)
      << g.error().message;
  auto gd = sent_both(reasoning_dep("openai", "gpt-5-mini"), g_body, true);
  ASSERT_TRUE(gd);
  EXPECT_FALSE(gd->contains("stop") || gd->contains("logit_bias") || gd->contains("top_p")) << gd->dump();
  // Values that change nothing are left out, not refused; other models keep everything.
  auto noop = sent_both(reasoning_dep("openai", "o3"), {{"messages", json::array()}, {"presence_penalty", 0},
                                                        {"logprobs", false}, {"top_p", nullptr}});
  ASSERT_TRUE(noop);
  EXPECT_FALSE(noop->contains("presence_penalty") || noop->contains("logprobs") || noop->contains("top_p"));
  auto plain = sent_both(reasoning_dep("openai", "gpt-4o"), o_body);
  ASSERT_TRUE(plain);
  EXPECT_EQ((*plain)["top_p"], 0.9);
  // A deployment default is checked as the request's would be; the request's value wins.
  auto d = reasoning_dep("openai", "o4-mini");
  d.request_defaults = {{"top_p", 0.3}};
  auto def = sent_both(d, {{"messages", json::array()}});
  ASSERT_FALSE(def);
  EXPECT_EQ(def.error().param, "top_p");
  EXPECT_TRUE(sent_both(d, {{"messages", json::array()}, {"top_p", nullptr}}));
}

// gpt-5 search models take LiteLLM's short list: web_search_options among them (the
// gpt-5 list refuses it), the other chat parameters it knows refused.
TEST(openai_reasoning_models, gpt_5_search_models_take_their_short_list) {
  for (auto [provider, model] : std::vector<std::pair<std::string, std::string>>{
           {"openai", "gpt-5-search-api"}, {"openai", "gpt-5-search-api-2025-10-14"}, {"azure", "gpt-5-search-prod"}}) {
    SCOPED_TRACE(model);
    const auto d = reasoning_dep(provider, model);
    const json ok = {{"messages", json::array()},
                     {"web_search_options", {{"search_context_size", "low"}}},
                     {"max_tokens", 50},
                     {"response_format", {{"type", "text"}}},
                     {"verbosity", "low"},
                     {"store", true},
                     {"user", "u"},
                     {"n", 1},
                     {"top_p", nullptr}};
    auto sent = sent_both(d, ok);
    ASSERT_TRUE(sent) << sent.error().message;
    EXPECT_EQ((*sent)["web_search_options"]["search_context_size"], "low");
    EXPECT_EQ((*sent)["max_completion_tokens"], 50);
    EXPECT_FALSE(sent->contains("max_tokens"));
    EXPECT_EQ((*sent)["verbosity"], "low");
    EXPECT_FALSE(sent->contains("n") || sent->contains("top_p")) << "values that change nothing are left out";
    // The rest of the chat parameters: one 400 naming them, or left out with drop_params.
    const json refused = {{"messages", json::array()}, {"temperature", 1},   {"seed", 3},
                          {"tools", json::array({{{"type", "function"}}})}, {"reasoning_effort", "low"},
                          {"stop", "x"}, {"logprobs", true}};
    auto e = sent_both(d, refused);
    ASSERT_FALSE(e);
    EXPECT_EQ(e.error().status, 400);
    EXPECT_EQ(e.error().param, "temperature");
    EXPECT_NE(e.error().message.find(provider + " does not support parameters: ['temperature', 'stop', 'seed', "
                                                "'tools', 'logprobs', 'reasoning_effort']"),
              std::string::npos)
        << e.error().message;
    auto dropped = sent_both(d, refused, true);
    ASSERT_TRUE(dropped) << dropped.error().message;
    for (auto k : {"temperature", "seed", "tools", "reasoning_effort", "stop", "logprobs"}) {
      EXPECT_FALSE(dropped->contains(k)) << k;
    }
  }
  // Other gpt-5 models keep refusing web_search_options.
  auto g = sent_both(reasoning_dep("openai", "gpt-5"), {{"messages", json::array()}, {"web_search_options", json::object()}});
  ASSERT_FALSE(g);
  EXPECT_EQ(g.error().param, "web_search_options");
}

namespace {
// A price map for the adapters while it lives: model -> flags.
struct price_map_flags {
  explicit price_map_flags(std::map<std::string, config::capability_flags, std::less<>> m) : map(std::move(m)) {
    providers::set_capability_lookup([this](const config::deployment& d) -> const config::capability_flags* {
      auto it = map.find(d.upstream_model);
      return it == map.end() ? nullptr : &it->second;
    });
  }
  ~price_map_flags() { providers::set_capability_lookup({}); }
  std::map<std::string, config::capability_flags, std::less<>> map;
};
}  // namespace

// The price map's flags apply where model_info says nothing (as LiteLLM merges model_info
// over its map): an o-series model's missing features, gpt-5's reasoning levels.
TEST(openai_reasoning_models, the_price_maps_flags_apply_unless_model_info_says_otherwise) {
  const price_map_flags flags({{"o3-mini", {{"supports_parallel_function_calling", false},
                                            {"supports_function_calling", true}}},
                               {"gpt-5.2-chat-latest", {{"supports_none_reasoning_effort", false}}}});
  const json body = {{"messages", json::array()}, {"parallel_tool_calls", true}};
  auto e = sent_both(reasoning_dep("openai", "o3-mini"), body);
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().param, "parallel_tool_calls");
  auto dropped = sent_both(reasoning_dep("openai", "o3-mini"), body, true);
  ASSERT_TRUE(dropped);
  EXPECT_FALSE(dropped->contains("parallel_tool_calls"));
  auto own = reasoning_dep("openai", "o3-mini");
  own.model_info = {{"supports_parallel_function_calling", true}};
  EXPECT_TRUE(sent_both(own, body)) << "model_info wins";
  // gpt-5.2-chat-latest: the map says no "none" effort, so any temperature but 1 is refused
  // (by its name alone it would be taken).
  auto t = sent_both(reasoning_dep("openai", "gpt-5.2-chat-latest"), {{"messages", json::array()}, {"temperature", 0.2}});
  ASSERT_FALSE(t);
  EXPECT_EQ(t.error().param, "temperature");
  // A model the map does not know: the name decides, as before.
  EXPECT_TRUE(sent_both(reasoning_dep("openai", "gpt-5.2"), {{"messages", json::array()}, {"temperature", 0.2}}));
}

// reasoning_effort "xhigh": only for the models whose supports_xhigh_reasoning_effort is
// true (LiteLLM's check; an unknown model does not take it); else a 400 naming it, or the
// member dropped with drop_params.
TEST(openai_reasoning_models, xhigh_reasoning_effort_only_where_the_flag_says) {
  const price_map_flags flags({{"gpt-5.2", {{"supports_xhigh_reasoning_effort", true}}},
                               {"gpt-5.1", {{"supports_xhigh_reasoning_effort", false}}}});
  const json body = {{"messages", json::array()}, {"reasoning_effort", "xhigh"}};
  auto ok = sent_both(reasoning_dep("openai", "gpt-5.2"), body);
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ((*ok)["reasoning_effort"], "xhigh");
  for (const char* model : {"gpt-5.1", "gpt-5-mini"}) {
    SCOPED_TRACE(model);
    auto e = sent_both(reasoning_dep("openai", model), body);
    ASSERT_FALSE(e);
    EXPECT_EQ(e.error().status, 400);
    EXPECT_EQ(e.error().param, "reasoning_effort");
    EXPECT_NE(e.error().message.find("reasoning_effort='xhigh' is only supported"), std::string::npos);
    auto dropped = sent_both(reasoning_dep("openai", model), body, true);
    ASSERT_TRUE(dropped) << dropped.error().message;
    EXPECT_FALSE(dropped->contains("reasoning_effort"));
  }
  // The Responses form with only an effort is read as the string; model_info can allow it;
  // a deployment default is checked as the request's would be.
  EXPECT_FALSE(sent_both(reasoning_dep("openai", "gpt-5.1"),
                         {{"messages", json::array()}, {"reasoning_effort", {{"effort", "xhigh"}}}}));
  auto own = reasoning_dep("openai", "gpt-5.1");
  own.model_info = {{"supports_xhigh_reasoning_effort", true}};
  EXPECT_TRUE(sent_both(own, body));
  auto def = reasoning_dep("openai", "gpt-5.1");
  def.request_defaults = {{"reasoning_effort", "xhigh"}};
  EXPECT_FALSE(sent_both(def, {{"messages", json::array()}}));
  EXPECT_TRUE(sent_both(def, {{"messages", json::array()}}, true));
  // Other efforts are not checked; o-series models are not either.
  EXPECT_TRUE(sent_both(reasoning_dep("openai", "gpt-5.1"), {{"messages", json::array()}, {"reasoning_effort", "high"}}));
  EXPECT_TRUE(sent_both(reasoning_dep("openai", "o3"), body));
}

// What LiteLLM reads from its price map for an o-series model (tools, parallel tool calls,
// response_format, system messages), the deployment's model_info says here.
TEST(openai_reasoning_models, model_info_says_what_an_o_series_model_lacks) {
  const json tools = json::array({{{"type", "function"}, {"function", {{"name", "f"}}}}});
  const json body = {{"messages", json::array({{{"role", "system"}, {"content", "be brief"}, {"name", "ops"}},
                                               {{"role", "user"}, {"content", "hi"}}})},
                     {"tools", tools},
                     {"parallel_tool_calls", false},
                     {"response_format", {{"type", "json_object"}}}};
  // By default (no flags) everything goes as sent, system messages too.
  auto plain = sent_both(reasoning_dep("openai", "o3-mini"), body);
  ASSERT_TRUE(plain);
  EXPECT_EQ((*plain)["tools"], tools);
  EXPECT_EQ((*plain)["messages"][0]["role"], "system");
  auto d = reasoning_dep("openai", "o1-mini");
  d.model_info = {{"supports_function_calling", false}, {"supports_parallel_function_calling", false},
                  {"supports_response_schema", false}};
  auto e = sent_both(d, body);
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().param, "tools");
  EXPECT_NE(e.error().message.find("['tools', 'parallel_tool_calls', 'response_format']"), std::string::npos)
      << e.error().message;
  auto dropped = sent_both(d, body, true);
  ASSERT_TRUE(dropped);
  EXPECT_FALSE(dropped->contains("tools") || dropped->contains("parallel_tool_calls") ||
               dropped->contains("response_format"));
  // No system messages: each becomes a user message with its content (the DOM path).
  d.model_info = {{"supports_system_messages", false}};
  const std::string text = body.dump();
  auto scan = providers::scan_json(text);
  EXPECT_FALSE(providers::openai_adapter().build_raw(providers::call_type::chat, d, text, scan, {}).has_value());
  auto call = providers::openai_adapter().build(providers::call_type::chat, d, body, {});
  ASSERT_TRUE(call);
  const auto sent = json::parse(call->body);
  EXPECT_EQ(sent["messages"][0], json({{"role", "user"}, {"content", "be brief"}}));
  EXPECT_EQ(sent["messages"][1], json({{"role", "user"}, {"content", "hi"}}));
  // gpt-5 models are left as they are by these flags (LiteLLM's gpt-5 config reads none).
  auto g = reasoning_dep("openai", "gpt-5");
  g.model_info = {{"supports_system_messages", false}, {"supports_function_calling", false}};
  auto gs = sent_both(g, body);
  ASSERT_TRUE(gs);
  EXPECT_EQ((*gs)["messages"][0]["role"], "system");
}

TEST(openai_reasoning_models, gpt_5_point_releases_take_sampling_parameters_without_reasoning) {
  auto d = reasoning_dep("openai", "gpt-5.1");
  const json body = {{"messages", json::array()}, {"top_p", 0.5}, {"logprobs", true}, {"top_logprobs", 3}};
  auto free = sent_both(d, body);
  ASSERT_TRUE(free);
  EXPECT_EQ((*free)["top_p"], 0.5);
  EXPECT_EQ((*free)["top_logprobs"], 3);
  json with_effort = body;
  with_effort["reasoning_effort"] = "low";
  auto e = sent_both(d, with_effort);
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().status, 400);
  EXPECT_EQ(e.error().param, "logprobs");
  EXPECT_NE(e.error().message.find("reasoning_effort=\"low\""), std::string::npos) << e.error().message;
  auto dropped = sent_both(d, with_effort, true);
  ASSERT_TRUE(dropped);
  EXPECT_FALSE(dropped->contains("top_p") || dropped->contains("logprobs") || dropped->contains("top_logprobs"));
  EXPECT_EQ((*dropped)["reasoning_effort"], "low");
  // Still refused on gpt-5.1: the rest of the gpt-5 list.
  auto pp = sent_both(d, {{"messages", json::array()}, {"frequency_penalty", 1}});
  ASSERT_FALSE(pp);
  EXPECT_EQ(pp.error().param, "frequency_penalty");
}

// ---- A stream request answered with JSON

TEST(openai_stream, json_error_body_is_that_error) {
  switchyard::core::result<void> end;
  auto out = run_stream(R"({"error":{"message":"Rate limit reached","type":"rate_limit_error","code":null}})", true, 7,
                        &end);
  ASSERT_FALSE(end);
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(end.error().status, 429);
  EXPECT_NE(end.error().message.find("Rate limit reached"), std::string::npos);
  run_stream("{\n  \"error\": {\"message\": \"down\", \"code\": \"503\"}\n}\n", true, 1000, &end);
  ASSERT_FALSE(end);
  EXPECT_EQ(end.error().status, 503);
  run_stream(R"({"error":"plain text"})", true, 1000, &end);
  ASSERT_FALSE(end);
  EXPECT_EQ(end.error().status, 500);
  EXPECT_NE(end.error().message.find("plain text"), std::string::npos);
}

TEST(openai_stream, whole_completion_is_replayed_as_chunks) {
  const std::string whole = R"({"id":"chatcmpl-1","object":"chat.completion","created":5,"model":"gpt-x",
    "choices":[{"index":0,"message":{"role":"assistant","content":"Hi there","tool_calls":[
      {"id":"call_1","type":"function","function":{"name":"f","arguments":"{}"}}]},"finish_reason":"tool_calls"},
     {"index":1,"message":{"role":"assistant","content":"Second"},"finish_reason":"stop"}],
    "usage":{"prompt_tokens":4,"completion_tokens":3,"total_tokens":7}})";
  for (std::size_t split : {1u, 9u, 5000u}) {
    switchyard::core::result<void> end;
    providers::usage u;
    auto out = run_stream(whole, true, split, &end, &u);
    ASSERT_TRUE(end) << end.error().message;
    ASSERT_EQ(out.size(), 5u) << split;
    auto first = json::parse(out[0]);
    EXPECT_EQ(first["object"], "chat.completion.chunk");
    EXPECT_EQ(first["id"], "chatcmpl-1");
    EXPECT_EQ(first["choices"][0]["delta"]["content"], "Hi there");
    EXPECT_EQ(first["choices"][0]["delta"]["tool_calls"][0]["index"], 0);
    EXPECT_TRUE(first["choices"][0]["finish_reason"].is_null());
    EXPECT_EQ(json::parse(out[1])["choices"][0]["finish_reason"], "tool_calls");
    EXPECT_EQ(json::parse(out[2])["choices"][0]["index"], 1);
    EXPECT_EQ(json::parse(out[3])["choices"][0]["finish_reason"], "stop");
    EXPECT_EQ(json::parse(out[4])["usage"]["total_tokens"], 7);
    EXPECT_EQ(u.total_tokens, 7);
  }
  switchyard::core::result<void> end;
  auto without = run_stream(whole, false, 5000, &end);
  ASSERT_TRUE(end);
  EXPECT_EQ(without.size(), 4u) << "no usage chunk for a client that did not ask";
}

TEST(openai_stream, other_json_or_nothing_is_a_clear_error) {
  switchyard::core::result<void> end;
  run_stream("[1, 2, 3]", true, 1000, &end);
  ASSERT_FALSE(end);
  EXPECT_NE(end.error().message.find("not an event stream"), std::string::npos);
  run_stream(R"({"choices":[{"index":0}]})", true, 1000, &end);
  ASSERT_FALSE(end);
  EXPECT_NE(end.error().message.find("not an event stream"), std::string::npos);
  run_stream("", true, 1000, &end);
  ASSERT_FALSE(end);
  EXPECT_NE(end.error().message.find("before [DONE]"), std::string::npos);
}
