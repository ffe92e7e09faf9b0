// The per-provider lookups of providers/: the adapter of each wire format, the api_base
// (and so x-litellm-model-api-base) of a deployment without one, capabilities, labels,
// and the stream framing the relay splits the first event by.
#include "switchyard/providers/adapter.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <string>

using namespace switchyard;
using json = nlohmann::json;
using providers::call_type;

namespace {

const config::provider_info& info(std::string_view name) {
  const auto* p = config::find_provider(name);
  EXPECT_NE(p, nullptr) << name;
  return p != nullptr ? *p : config::provider_for_bare_names();
}

config::deployment dep_of(std::string_view provider, std::string api_base = {}) {
  config::deployment d;
  d.provider = &info(provider);
  d.model_name = "m";
  d.model = std::string(provider) + "/model-x";
  d.upstream_model = "model-x";
  d.api_base = std::move(api_base);
  d.api_version = "2024-06-01";
  return d;
}

// The value the pipeline sends as x-litellm-model-api-base (when not empty).
std::string_view reported_api_base(const config::deployment& d) {
  return providers::strip_query_view(providers::api_base_view(d));
}

const json chat_body = {{"model", "m"}, {"messages", json::array({{{"role", "user"}, {"content", "hi"}}})}};

}  // namespace

TEST(provider_adapters, each_wire_format_has_its_adapter) {
  EXPECT_EQ(&providers::adapter_for(info("openai")), &providers::openai_adapter());
  EXPECT_EQ(&providers::adapter_for(info("hosted_vllm")), &providers::openai_adapter());
  EXPECT_EQ(&providers::adapter_for(info("azure")), &providers::openai_adapter());
  EXPECT_EQ(&providers::adapter_for(info("anthropic")), &providers::anthropic_adapter());
  EXPECT_EQ(&providers::adapter_for(info("ollama")), &providers::ollama_adapter());
  EXPECT_EQ(&providers::adapter_for(info("ollama_chat")), &providers::ollama_adapter());
  EXPECT_EQ(&providers::adapter_for(info("groq")), &providers::openai_adapter());
  EXPECT_EQ(&providers::adapter_for(info("gemini")), &providers::gemini_adapter());
  EXPECT_EQ(&providers::adapter_for(info("vertex_ai")), &providers::vertex_adapter());
}

// The bug this fixes: every deployment without api_base reported https://api.openai.com/v1.
TEST(provider_api_base, without_api_base_each_provider_reports_its_own_default) {
  EXPECT_EQ(reported_api_base(dep_of("openai")), "https://api.openai.com/v1");
  EXPECT_EQ(reported_api_base(dep_of("anthropic")), "https://api.anthropic.com");
  EXPECT_EQ(reported_api_base(dep_of("ollama")), "http://localhost:11434");
  EXPECT_EQ(reported_api_base(dep_of("ollama_chat")), "http://localhost:11434");
  EXPECT_EQ(reported_api_base(dep_of("groq")), "https://api.groq.com/openai/v1");
  EXPECT_EQ(reported_api_base(dep_of("azure")), "") << "no default: the header is left out";
  EXPECT_EQ(reported_api_base(dep_of("hosted_vllm")), "") << "no default: the header is left out";
  for (const auto& p : config::provider_registry()) {
    config::deployment d;
    d.provider = &p;
    EXPECT_EQ(providers::api_base_view(d), p.default_api_base) << p.name;
    EXPECT_EQ(providers::api_base_of(d), p.default_api_base) << p.name;
  }
}

TEST(provider_api_base, a_configured_api_base_wins_without_slashes_or_query) {
  for (const auto& p : config::provider_registry()) {
    auto d = dep_of(p.name, "http://10.0.0.7:8000/v1//");
    EXPECT_EQ(providers::api_base_view(d), "http://10.0.0.7:8000/v1") << p.name;
    d.api_base = "https://r.openai.azure.com/?api-version=2024-06-01";
    EXPECT_EQ(reported_api_base(d), "https://r.openai.azure.com/") << p.name;
  }
}

TEST(provider_api_base, requests_go_to_the_default_endpoint) {
  auto url = [](std::string_view provider, call_type type = call_type::chat) {
    auto d = dep_of(provider);
    auto call = providers::adapter_for(*d.provider).build(type, d, chat_body, {});
    EXPECT_TRUE(call) << provider << ": " << (call ? "" : call.error().message);
    return call ? call->url : std::string();
  };
  EXPECT_EQ(url("openai"), "https://api.openai.com/v1/chat/completions");
  EXPECT_EQ(url("anthropic"), "https://api.anthropic.com/v1/messages");
  EXPECT_EQ(url("ollama"), "http://localhost:11434/api/generate");
  EXPECT_EQ(url("ollama_chat"), "http://localhost:11434/api/chat");
  EXPECT_EQ(url("groq"), "https://api.groq.com/openai/v1/chat/completions");
}

TEST(provider_api_base, a_provider_without_a_default_needs_api_base) {
  for (std::string_view name : {"azure", "hosted_vllm"}) {
    auto d = dep_of(name);
    const auto& a = providers::adapter_for(*d.provider);
    auto call = a.build(call_type::chat, d, chat_body, {});
    ASSERT_FALSE(call) << name;
    EXPECT_EQ(call.error().status, 400);
    EXPECT_EQ(call.error().message, std::string(name) + " deployment 'm' has no api_base");
    const std::string text = chat_body.dump();
    auto raw = a.build_raw(call_type::chat, d, text, providers::scan_json(text), {});
    ASSERT_TRUE(raw.has_value());
    EXPECT_FALSE(*raw) << "the DOM-free builder checks it too";
  }
  auto az = dep_of("azure", "https://r.openai.azure.com");
  auto call = providers::adapter_for(*az.provider).build(call_type::chat, az, chat_body, {});
  ASSERT_TRUE(call);
  EXPECT_EQ(call->url, "https://r.openai.azure.com/openai/deployments/model-x/chat/completions?api-version=2024-06-01");
}

TEST(provider_capabilities, supports_reads_the_descriptor) {
  for (const auto& p : config::provider_registry()) {
    EXPECT_EQ(providers::supports(p, call_type::chat), p.serves.chat) << p.name;
    EXPECT_EQ(providers::supports(p, call_type::completion), p.serves.completion) << p.name;
    EXPECT_EQ(providers::supports(p, call_type::embedding), p.serves.embedding) << p.name;
  }
  EXPECT_FALSE(providers::supports(info("anthropic"), call_type::embedding));
  EXPECT_TRUE(providers::supports(info("openai"), call_type::embedding));
  EXPECT_TRUE(providers::supports(info("groq"), call_type::chat));
  EXPECT_FALSE(providers::supports(info("groq"), call_type::completion));
  EXPECT_FALSE(providers::supports(info("groq"), call_type::embedding));
}

// Error messages carry the descriptor's label, whichever adapter translates them.
TEST(provider_labels, upstream_errors_name_the_provider_as_litellm_does) {
  for (const auto& p : config::provider_registry()) {
    auto d = dep_of(p.name, "http://127.0.0.1:9");
    auto e = providers::adapter_for(p).translate_error(d, 429, R"({"error":{"message":"slow down"}})");
    EXPECT_EQ(e.status, 429) << p.name;
    EXPECT_NE(e.message.find(std::string(p.exception_label)), std::string::npos) << p.name << ": " << e.message;
  }
}

TEST(stream_framing, first_event_end_by_the_descriptors_framing) {
  using config::stream_framing;
  const std::string sse = "data: {\"a\":1}\n\ndata: {\"b\":2}\n\n";
  EXPECT_EQ(providers::first_event_end(stream_framing::sse, sse), sse.find("\n\n") + 2);
  const std::string crlf = "event: message_start\r\ndata: {}\r\n\r\nevent: ping\r\n";
  EXPECT_EQ(providers::first_event_end(stream_framing::sse, crlf), crlf.find("\r\n\r\n") + 4);
  EXPECT_EQ(providers::first_event_end(stream_framing::sse, ": keep-alive\n\ndata: x\n\n"), 14u);
  EXPECT_EQ(providers::first_event_end(stream_framing::sse, "data: {\"a\":1}\n"), 0u) << "no blank line yet";
  EXPECT_EQ(providers::first_event_end(stream_framing::sse, ""), 0u);
  // An SSE line that looks like JSON is still SSE, and an NDJSON line with ':' is NDJSON:
  // the framing is the provider's, not guessed from the bytes.
  EXPECT_EQ(providers::first_event_end(stream_framing::sse, "{\"x\":1}\ndata: y\n\n"), 17u);
  const std::string ndjson = "{\"message\":{\"content\":\"a\"},\"done\":false}\n{\"done\":true}\n";
  EXPECT_EQ(providers::first_event_end(stream_framing::ndjson, ndjson), ndjson.find('\n') + 1);
  EXPECT_EQ(providers::first_event_end(stream_framing::ndjson, "{\"done\":false}"), 0u);
  EXPECT_EQ(providers::first_event_end(stream_framing::ndjson, "\n{}"), 1u);
}
