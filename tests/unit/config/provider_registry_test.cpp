// config/provider_registry: one descriptor per provider, and the lookups the loader uses.
#include "switchyard/config/provider_registry.hpp"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace cfg = switchyard::config;

namespace {

struct expected_provider {
  std::string_view name;
  std::string_view label;
  std::string_view api_base;
  std::string_view key_env;
  cfg::wire_format wire;
  cfg::stream_framing framing;
  bool chat, completion, embedding;
};

// What LiteLLM says for each provider: its exception label and key variable; the
// public endpoint (empty: the deployment must give api_base).
constexpr expected_provider expected[] = {
    {"openai", "OpenAIException", "https://api.openai.com/v1", "OPENAI_API_KEY", cfg::wire_format::openai,
     cfg::stream_framing::sse, true, true, true},
    {"hosted_vllm", "Hosted_vllmException", "", "HOSTED_VLLM_API_KEY", cfg::wire_format::openai,
     cfg::stream_framing::sse, true, true, true},
    {"azure", "AzureException", "", "AZURE_API_KEY", cfg::wire_format::azure, cfg::stream_framing::sse, true, true,
     true},
    {"anthropic", "AnthropicException", "https://api.anthropic.com", "ANTHROPIC_API_KEY", cfg::wire_format::anthropic,
     cfg::stream_framing::sse, true, true, false},
    {"ollama", "OllamaException", "http://localhost:11434", "OLLAMA_API_KEY", cfg::wire_format::ollama_generate,
     cfg::stream_framing::ndjson, true, true, true},
    {"ollama_chat", "OllamaException", "http://localhost:11434", "OLLAMA_API_KEY", cfg::wire_format::ollama_chat,
     cfg::stream_framing::ndjson, true, true, true},
    {"groq", "GroqException", "https://api.groq.com/openai/v1", "GROQ_API_KEY", cfg::wire_format::openai,
     cfg::stream_framing::sse, true, false, false},
    {"openrouter", "OpenrouterException", "https://openrouter.ai/api/v1", "OPENROUTER_API_KEY", cfg::wire_format::openai, cfg::stream_framing::sse, true, true, false},
    {"mistral", "MistralException", "https://api.mistral.ai/v1", "MISTRAL_API_KEY", cfg::wire_format::openai, cfg::stream_framing::sse, true, false, true},
    {"deepseek", "DeepseekException", "https://api.deepseek.com/beta", "DEEPSEEK_API_KEY", cfg::wire_format::openai, cfg::stream_framing::sse, true, true, false},
    {"xai", "XaiException", "https://api.x.ai/v1", "XAI_API_KEY", cfg::wire_format::openai, cfg::stream_framing::sse, true, false, false},
    {"together_ai", "Together_aiException", "https://api.together.xyz/v1", "TOGETHERAI_API_KEY", cfg::wire_format::openai, cfg::stream_framing::sse, true, true, true},
    {"fireworks_ai", "Fireworks_aiException", "https://api.fireworks.ai/inference/v1", "FIREWORKS_API_KEY", cfg::wire_format::openai, cfg::stream_framing::sse, true, true, true},
    {"perplexity", "PerplexityException", "https://api.perplexity.ai", "PERPLEXITYAI_API_KEY", cfg::wire_format::openai, cfg::stream_framing::sse, true, false, false},
    {"cerebras", "CerebrasException", "https://api.cerebras.ai/v1", "CEREBRAS_API_KEY", cfg::wire_format::openai, cfg::stream_framing::sse, true, true, false},
    {"deepinfra", "DeepinfraException", "https://api.deepinfra.com/v1/openai", "DEEPINFRA_API_KEY", cfg::wire_format::openai, cfg::stream_framing::sse, true, true, true},
    {"huggingface", "HuggingfaceException", "https://router.huggingface.co/v1", "HF_TOKEN", cfg::wire_format::openai, cfg::stream_framing::sse, true, false, false},
    {"lm_studio", "Lm_studioException", "", "LM_STUDIO_API_KEY", cfg::wire_format::openai, cfg::stream_framing::sse, true, true, true},
    {"llamafile", "LlamafileException", "http://127.0.0.1:8080/v1", "LLAMAFILE_API_KEY", cfg::wire_format::openai, cfg::stream_framing::sse, true, true, true},
    {"vllm", "VllmException", "", "VLLM_API_KEY", cfg::wire_format::openai, cfg::stream_framing::sse, true, true, true},
    {"nvidia_nim", "Nvidia_nimException", "https://integrate.api.nvidia.com/v1", "NVIDIA_NIM_API_KEY", cfg::wire_format::openai, cfg::stream_framing::sse, true, false, true},
    {"sambanova", "SambanovaException", "https://api.sambanova.ai/v1", "SAMBANOVA_API_KEY", cfg::wire_format::openai, cfg::stream_framing::sse, true, false, true},
    {"siliconflow", "SiliconflowException", "https://api.siliconflow.cn/v1", "SILICONFLOW_API_KEY", cfg::wire_format::openai, cfg::stream_framing::sse, true, false, true},
    {"dashscope", "DashscopeException", "https://dashscope-intl.aliyuncs.com/compatible-mode/v1", "DASHSCOPE_API_KEY", cfg::wire_format::openai, cfg::stream_framing::sse, true, false, false},
    {"moonshot", "MoonshotException", "https://api.moonshot.ai/v1", "MOONSHOT_API_KEY", cfg::wire_format::openai, cfg::stream_framing::sse, true, false, false},
    {"github", "GithubException", "https://models.inference.ai.azure.com", "GITHUB_API_KEY", cfg::wire_format::openai, cfg::stream_framing::sse, true, false, false},
    {"litellm_proxy", "Litellm_proxyException", "", "LITELLM_PROXY_API_KEY", cfg::wire_format::openai, cfg::stream_framing::sse, true, true, true},
    {"openai_like", "Openai_likeException", "", "", cfg::wire_format::openai, cfg::stream_framing::sse, true, true, true},
    {"gemini", "GeminiException", "https://generativelanguage.googleapis.com", "GEMINI_API_KEY",
     cfg::wire_format::gemini, cfg::stream_framing::sse, true, false, true},
    // Endpoint from vertex_location and a service account instead of a key.
    {"vertex_ai", "VertexAIException", "", "", cfg::wire_format::vertex, cfg::stream_framing::sse, true, false, false},
    // Endpoint from the region and keys from the AWS_* variables: no single default or key variable.
    {"bedrock", "BedrockException", "", "", cfg::wire_format::bedrock, cfg::stream_framing::aws_eventstream, true,
     false, true},
    {"cohere", "CohereException", "https://api.cohere.com", "COHERE_API_KEY", cfg::wire_format::cohere,
     cfg::stream_framing::sse, true, false, false},
    {"cohere_chat", "CohereException", "https://api.cohere.com", "COHERE_API_KEY", cfg::wire_format::cohere,
     cfg::stream_framing::sse, true, false, false},
};

}  // namespace

TEST(provider_registry, each_provider_has_its_descriptor) {
  for (const auto& e : expected) {
    SCOPED_TRACE(std::string(e.name));
    const cfg::provider_info* p = cfg::find_provider(e.name);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(p->name, e.name);
    EXPECT_EQ(p->prefix, std::string(e.name) + "/");
    EXPECT_EQ(p->exception_label, e.label);
    EXPECT_EQ(p->default_api_base, e.api_base);
    EXPECT_EQ(p->api_key_env, e.key_env);
    EXPECT_EQ(p->wire, e.wire);
    EXPECT_EQ(p->framing, e.framing);
    EXPECT_EQ(p->serves.chat, e.chat);
    EXPECT_EQ(p->serves.completion, e.completion);
    EXPECT_EQ(p->serves.embedding, e.embedding);
  }
}

TEST(provider_registry, lists_every_provider_once_in_order) {
  std::set<std::string_view> names;
  for (const auto& p : cfg::provider_registry()) {
    EXPECT_TRUE(names.insert(p.name).second) << p.name;
    EXPECT_EQ(cfg::find_provider(p.name), &p);
  }
  ASSERT_GE(cfg::provider_registry().size(), std::size(expected));
  for (std::size_t i = 0; i < std::size(expected); ++i) {
    EXPECT_EQ(cfg::provider_registry()[i].name, expected[i].name) << "the documented order";
  }
}

TEST(provider_registry, prefixes_map_models_to_providers) {
  EXPECT_EQ(cfg::find_provider_for_model("openai/gpt-4o"), cfg::find_provider("openai"));
  EXPECT_EQ(cfg::find_provider_for_model("openai/meta-llama/Llama-3"), cfg::find_provider("openai"));
  EXPECT_EQ(cfg::find_provider_for_model("ollama/llama3"), cfg::find_provider("ollama"));
  EXPECT_EQ(cfg::find_provider_for_model("ollama_chat/llama3"), cfg::find_provider("ollama_chat"));
  EXPECT_EQ(cfg::find_provider_for_model("hosted_vllm/Qwen/Qwen2"), cfg::find_provider("hosted_vllm"));
  EXPECT_EQ(cfg::find_provider_for_model("groq/llama-3.1-8b-instant"), cfg::find_provider("groq"));
  EXPECT_EQ(cfg::find_provider_for_model("bedrock/anthropic.claude-3-haiku-20240307-v1:0"), cfg::find_provider("bedrock"));
  EXPECT_EQ(cfg::find_provider_for_model("sagemaker/claude"), nullptr);
  EXPECT_EQ(cfg::find_provider_for_model("gpt-4o"), nullptr) << "no prefix: not a prefix lookup";
  EXPECT_EQ(cfg::find_provider_for_model("openai"), nullptr);
  EXPECT_EQ(cfg::find_provider("openai/"), nullptr);
  EXPECT_EQ(cfg::find_provider(""), nullptr);
  for (const auto& p : cfg::provider_registry()) {
    EXPECT_EQ(cfg::find_provider_for_model(std::string(p.prefix) + "m"), &p);
  }
}

TEST(provider_registry, bare_names_are_openai) {
  EXPECT_EQ(&cfg::provider_for_bare_names(), cfg::find_provider("openai"));
  int bare = 0;
  for (const auto& p : cfg::provider_registry()) {
    bare += p.bare_names ? 1 : 0;
  }
  EXPECT_EQ(bare, 1);
}

TEST(provider_registry, framing_follows_the_wire_format) {
  for (const auto& p : cfg::provider_registry()) {
    const bool ollama = p.wire == cfg::wire_format::ollama_generate || p.wire == cfg::wire_format::ollama_chat;
    const auto want = ollama                                  ? cfg::stream_framing::ndjson
                      : p.wire == cfg::wire_format::bedrock ? cfg::stream_framing::aws_eventstream
                                                            : cfg::stream_framing::sse;
    EXPECT_EQ(p.framing, want) << p.name;
  }
}

TEST(provider_registry, messages_name_every_provider) {
  const std::string prefixes = cfg::supported_prefixes();
  const std::string names = cfg::supported_provider_names();
  EXPECT_EQ(prefixes.rfind("openai/, hosted_vllm/, azure/, anthropic/, ollama/, ollama_chat/", 0), 0u) << prefixes;
  EXPECT_NE(prefixes.find("(a model without a prefix is openai)"), std::string::npos) << prefixes;
  EXPECT_EQ(names.rfind("openai, hosted_vllm, azure, anthropic, ollama, ollama_chat", 0), 0u) << names;
  for (const auto& p : cfg::provider_registry()) {
    EXPECT_NE(prefixes.find(p.prefix), std::string::npos) << p.prefix;
    EXPECT_NE(names.find(p.name), std::string::npos) << p.name;
  }
}

TEST(provider_registry, price_table_provider_names_map_to_providers) {
  EXPECT_EQ(cfg::provider_for_litellm_provider("anthropic"), cfg::find_provider("anthropic"));
  EXPECT_EQ(cfg::provider_for_litellm_provider("openai"), cfg::find_provider("openai"));
  EXPECT_EQ(cfg::provider_for_litellm_provider("text-completion-openai"), cfg::find_provider("openai"));
  EXPECT_EQ(cfg::provider_for_litellm_provider("mistral"), cfg::find_provider("mistral"));
  EXPECT_EQ(cfg::provider_for_litellm_provider("deepseek"), cfg::find_provider("deepseek"));
  // "<provider>-<kind>": the provider when registered.
  EXPECT_EQ(cfg::provider_for_litellm_provider("vertex_ai-language-models"), cfg::find_provider("vertex_ai"));
  EXPECT_EQ(cfg::provider_for_litellm_provider("volcengine"), nullptr);
  EXPECT_EQ(cfg::provider_for_litellm_provider(""), nullptr);
}

TEST(provider_registry, openai_compatible_entries_read_litellm_variables) {
  EXPECT_EQ(cfg::find_provider("together_ai")->api_key_env_alt, "TOGETHER_AI_API_KEY,TOGETHER_API_KEY");
  EXPECT_EQ(cfg::find_provider("openai")->api_base_env, "OPENAI_BASE_URL,OPENAI_API_BASE");
  EXPECT_EQ(cfg::find_provider("azure")->api_base_env, "AZURE_API_BASE");
  EXPECT_EQ(cfg::find_provider("lm_studio")->api_base_env, "LM_STUDIO_API_BASE");
  EXPECT_TRUE(cfg::find_provider("lm_studio")->local);
  EXPECT_TRUE(cfg::find_provider("llamafile")->local);
}
