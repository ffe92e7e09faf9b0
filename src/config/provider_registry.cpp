// The provider table. Adding an OpenAI-compatible provider is one entry here (plus its
// tests and docs); a new wire format also needs its adapter in providers/ (the adapter
// table there is checked against wire_format_count at compile time).
#include "switchyard/config/provider_registry.hpp"

#include <array>

namespace switchyard::config {

namespace {

constexpr capabilities all_endpoints{.chat = true, .completion = true, .embedding = true};

// Labels and key variables are LiteLLM's: its exception mapping names OpenAI-compatible
// providers "<Name>Exception" (first letter upper-cased), and its provider modules read
// the key from these variables. Default bases: the provider's public endpoint, or empty
// where LiteLLM has none (a self-hosted server, an Azure resource).
constexpr std::array providers{
    provider_info{
        .name = "openai",
        .prefix = "openai/",
        .bare_names = true,
        .exception_label = "OpenAIException",
        .default_api_base = "https://api.openai.com/v1",
        .api_key_env = "OPENAI_API_KEY",
        .wire = wire_format::openai,
        .framing = stream_framing::sse,
        .serves = all_endpoints,
        .responses_api = true,
        .api_base_env = "OPENAI_BASE_URL,OPENAI_API_BASE",
    },
    provider_info{
        .name = "hosted_vllm",
        .prefix = "hosted_vllm/",
        .bare_names = false,
        .exception_label = "Hosted_vllmException",
        .default_api_base = "",
        .api_key_env = "HOSTED_VLLM_API_KEY",
        .wire = wire_format::openai,
        .framing = stream_framing::sse,
        .serves = all_endpoints,
        .api_base_env = "HOSTED_VLLM_API_BASE",
    },
    provider_info{
        .name = "azure",
        .prefix = "azure/",
        .bare_names = false,
        .exception_label = "AzureException",
        .default_api_base = "",
        .api_key_env = "AZURE_API_KEY",
        .wire = wire_format::azure,
        .framing = stream_framing::sse,
        .serves = all_endpoints,
        .responses_api = true,
        .api_key_env_alt = "AZURE_OPENAI_API_KEY",
        .api_base_env = "AZURE_API_BASE",
    },
    provider_info{
        .name = "anthropic",
        .prefix = "anthropic/",
        .bare_names = false,
        .exception_label = "AnthropicException",
        .default_api_base = "https://api.anthropic.com",
        .api_key_env = "ANTHROPIC_API_KEY",
        .wire = wire_format::anthropic,
        .framing = stream_framing::sse,
        .serves = {.chat = true, .completion = true, .embedding = false},  // no embeddings API
        .api_base_env = "ANTHROPIC_API_BASE,ANTHROPIC_BASE_URL",
    },
    provider_info{
        .name = "ollama",
        .prefix = "ollama/",
        .bare_names = false,
        .exception_label = "OllamaException",
        .default_api_base = "http://localhost:11434",
        .api_key_env = "OLLAMA_API_KEY",
        .wire = wire_format::ollama_generate,
        .framing = stream_framing::ndjson,
        .serves = all_endpoints,
        .local = true,
        .api_base_env = "OLLAMA_API_BASE",
    },
    provider_info{
        .name = "ollama_chat",
        .prefix = "ollama_chat/",
        .bare_names = false,
        .exception_label = "OllamaException",
        .default_api_base = "http://localhost:11434",
        .api_key_env = "OLLAMA_API_KEY",
        .wire = wire_format::ollama_chat,
        .framing = stream_framing::ndjson,
        .serves = all_endpoints,
        .local = true,
        .api_base_env = "OLLAMA_API_BASE",
    },
    provider_info{
        .name = "groq",
        .prefix = "groq/",
        .bare_names = false,
        .exception_label = "GroqException",
        .default_api_base = "https://api.groq.com/openai/v1",
        .api_key_env = "GROQ_API_KEY",
        .wire = wire_format::openai,
        .framing = stream_framing::sse,
        .serves = {.chat = true, .completion = false, .embedding = false},  // no completions or embeddings API
        .api_base_env = "GROQ_API_BASE",
    },
    // OpenAI-compatible providers: one entry each (LiteLLM's default base and key variables).
    provider_info{
        .name = "openrouter",
        .prefix = "openrouter/",
        .bare_names = false,
        .exception_label = "OpenrouterException",
        .default_api_base = "https://openrouter.ai/api/v1",
        .api_key_env = "OPENROUTER_API_KEY",
        .wire = wire_format::openai,
        .framing = stream_framing::sse,
        .serves = {.chat = true, .completion = true, .embedding = false},
        .api_key_env_alt = "OR_API_KEY",
        .api_base_env = "OPENROUTER_API_BASE",
    },
    provider_info{
        .name = "mistral",
        .prefix = "mistral/",
        .bare_names = false,
        .exception_label = "MistralException",
        .default_api_base = "https://api.mistral.ai/v1",
        .api_key_env = "MISTRAL_API_KEY",
        .wire = wire_format::openai,
        .framing = stream_framing::sse,
        .serves = {.chat = true, .completion = false, .embedding = true},
        .api_base_env = "MISTRAL_API_BASE",
    },
    provider_info{
        .name = "deepseek",
        .prefix = "deepseek/",
        .bare_names = false,
        .exception_label = "DeepseekException",
        .default_api_base = "https://api.deepseek.com/beta",
        .api_key_env = "DEEPSEEK_API_KEY",
        .wire = wire_format::openai,
        .framing = stream_framing::sse,
        .serves = {.chat = true, .completion = true, .embedding = false},
        .api_base_env = "DEEPSEEK_API_BASE",
    },
    provider_info{
        .name = "xai",
        .prefix = "xai/",
        .bare_names = false,
        .exception_label = "XaiException",
        .default_api_base = "https://api.x.ai/v1",
        .api_key_env = "XAI_API_KEY",
        .wire = wire_format::openai,
        .framing = stream_framing::sse,
        .serves = {.chat = true, .completion = false, .embedding = false},
        .api_base_env = "XAI_API_BASE",
    },
    provider_info{
        .name = "together_ai",
        .prefix = "together_ai/",
        .bare_names = false,
        .exception_label = "Together_aiException",
        .default_api_base = "https://api.together.xyz/v1",
        .api_key_env = "TOGETHERAI_API_KEY",
        .wire = wire_format::openai,
        .framing = stream_framing::sse,
        .serves = all_endpoints,
        .api_key_env_alt = "TOGETHER_AI_API_KEY,TOGETHER_API_KEY",
        .api_base_env = "TOGETHERAI_API_BASE",
    },
    provider_info{
        .name = "fireworks_ai",
        .prefix = "fireworks_ai/",
        .bare_names = false,
        .exception_label = "Fireworks_aiException",
        .default_api_base = "https://api.fireworks.ai/inference/v1",
        .api_key_env = "FIREWORKS_API_KEY",
        .wire = wire_format::openai,
        .framing = stream_framing::sse,
        .serves = all_endpoints,
        .api_key_env_alt = "FIREWORKS_AI_API_KEY,FIREWORKSAI_API_KEY",
        .api_base_env = "FIREWORKS_API_BASE,FIREWORKS_AI_API_BASE",
    },
    provider_info{
        .name = "perplexity",
        .prefix = "perplexity/",
        .bare_names = false,
        .exception_label = "PerplexityException",
        .default_api_base = "https://api.perplexity.ai",
        .api_key_env = "PERPLEXITYAI_API_KEY",
        .wire = wire_format::openai,
        .framing = stream_framing::sse,
        .serves = {.chat = true, .completion = false, .embedding = false},
        .api_key_env_alt = "PERPLEXITY_API_KEY",
        .api_base_env = "PERPLEXITY_API_BASE",
    },
    provider_info{
        .name = "cerebras",
        .prefix = "cerebras/",
        .bare_names = false,
        .exception_label = "CerebrasException",
        .default_api_base = "https://api.cerebras.ai/v1",
        .api_key_env = "CEREBRAS_API_KEY",
        .wire = wire_format::openai,
        .framing = stream_framing::sse,
        .serves = {.chat = true, .completion = true, .embedding = false},
        .api_base_env = "CEREBRAS_API_BASE",
    },
    provider_info{
        .name = "deepinfra",
        .prefix = "deepinfra/",
        .bare_names = false,
        .exception_label = "DeepinfraException",
        .default_api_base = "https://api.deepinfra.com/v1/openai",
        .api_key_env = "DEEPINFRA_API_KEY",
        .wire = wire_format::openai,
        .framing = stream_framing::sse,
        .serves = all_endpoints,
        .api_base_env = "DEEPINFRA_API_BASE",
    },
    provider_info{
        .name = "huggingface",
        .prefix = "huggingface/",
        .bare_names = false,
        .exception_label = "HuggingfaceException",
        .default_api_base = "https://router.huggingface.co/v1",
        .api_key_env = "HF_TOKEN",
        .wire = wire_format::openai,
        .framing = stream_framing::sse,
        .serves = {.chat = true, .completion = false, .embedding = false},
        .api_key_env_alt = "HUGGINGFACE_API_KEY",
        .api_base_env = "HF_API_BASE,HUGGINGFACE_API_BASE",
    },
    provider_info{
        .name = "lm_studio",
        .prefix = "lm_studio/",
        .bare_names = false,
        .exception_label = "Lm_studioException",
        .default_api_base = "",
        .api_key_env = "LM_STUDIO_API_KEY",
        .wire = wire_format::openai,
        .framing = stream_framing::sse,
        .serves = all_endpoints,
        .local = true,
        .api_base_env = "LM_STUDIO_API_BASE",
    },
    provider_info{
        .name = "llamafile",
        .prefix = "llamafile/",
        .bare_names = false,
        .exception_label = "LlamafileException",
        .default_api_base = "http://127.0.0.1:8080/v1",
        .api_key_env = "LLAMAFILE_API_KEY",
        .wire = wire_format::openai,
        .framing = stream_framing::sse,
        .serves = all_endpoints,
        .local = true,
        .api_base_env = "LLAMAFILE_API_BASE",
    },
    provider_info{
        .name = "vllm",
        .prefix = "vllm/",
        .bare_names = false,
        .exception_label = "VllmException",
        .default_api_base = "",
        .api_key_env = "VLLM_API_KEY",
        .wire = wire_format::openai,
        .framing = stream_framing::sse,
        .serves = all_endpoints,
        .api_base_env = "VLLM_API_BASE",
    },
    provider_info{
        .name = "nvidia_nim",
        .prefix = "nvidia_nim/",
        .bare_names = false,
        .exception_label = "Nvidia_nimException",
        .default_api_base = "https://integrate.api.nvidia.com/v1",
        .api_key_env = "NVIDIA_NIM_API_KEY",
        .wire = wire_format::openai,
        .framing = stream_framing::sse,
        .serves = {.chat = true, .completion = false, .embedding = true},
        .api_base_env = "NVIDIA_NIM_API_BASE",
    },
    provider_info{
        .name = "sambanova",
        .prefix = "sambanova/",
        .bare_names = false,
        .exception_label = "SambanovaException",
        .default_api_base = "https://api.sambanova.ai/v1",
        .api_key_env = "SAMBANOVA_API_KEY",
        .wire = wire_format::openai,
        .framing = stream_framing::sse,
        .serves = {.chat = true, .completion = false, .embedding = true},
        .api_base_env = "SAMBANOVA_API_BASE",
    },
    provider_info{
        .name = "siliconflow",
        .prefix = "siliconflow/",
        .bare_names = false,
        .exception_label = "SiliconflowException",
        .default_api_base = "https://api.siliconflow.cn/v1",
        .api_key_env = "SILICONFLOW_API_KEY",
        .wire = wire_format::openai,
        .framing = stream_framing::sse,
        .serves = {.chat = true, .completion = false, .embedding = true},
        .api_base_env = "SILICONFLOW_API_BASE",
    },
    provider_info{
        .name = "dashscope",
        .prefix = "dashscope/",
        .bare_names = false,
        .exception_label = "DashscopeException",
        .default_api_base = "https://dashscope-intl.aliyuncs.com/compatible-mode/v1",
        .api_key_env = "DASHSCOPE_API_KEY",
        .wire = wire_format::openai,
        .framing = stream_framing::sse,
        .serves = {.chat = true, .completion = false, .embedding = false},
        .api_base_env = "DASHSCOPE_API_BASE",
    },
    provider_info{
        .name = "moonshot",
        .prefix = "moonshot/",
        .bare_names = false,
        .exception_label = "MoonshotException",
        .default_api_base = "https://api.moonshot.ai/v1",
        .api_key_env = "MOONSHOT_API_KEY",
        .wire = wire_format::openai,
        .framing = stream_framing::sse,
        .serves = {.chat = true, .completion = false, .embedding = false},
        .api_base_env = "MOONSHOT_API_BASE",
    },
    provider_info{
        .name = "github",
        .prefix = "github/",
        .bare_names = false,
        .exception_label = "GithubException",
        .default_api_base = "https://models.inference.ai.azure.com",
        .api_key_env = "GITHUB_API_KEY",
        .wire = wire_format::openai,
        .framing = stream_framing::sse,
        .serves = {.chat = true, .completion = false, .embedding = false},
    },
    provider_info{
        .name = "litellm_proxy",
        .prefix = "litellm_proxy/",
        .bare_names = false,
        .exception_label = "Litellm_proxyException",
        .default_api_base = "",
        .api_key_env = "LITELLM_PROXY_API_KEY",
        .wire = wire_format::openai,
        .framing = stream_framing::sse,
        .serves = all_endpoints,
        .api_base_env = "LITELLM_PROXY_API_BASE",
    },
    provider_info{
        .name = "openai_like",
        .prefix = "openai_like/",
        .bare_names = false,
        .exception_label = "Openai_likeException",
        .default_api_base = "",
        .api_key_env = "",
        .wire = wire_format::openai,
        .framing = stream_framing::sse,
        .serves = all_endpoints,
    },
    provider_info{
        .name = "gemini",
        .prefix = "gemini/",
        .bare_names = false,
        .exception_label = "GeminiException",
        .default_api_base = "https://generativelanguage.googleapis.com",
        .api_key_env = "GEMINI_API_KEY",
        .wire = wire_format::gemini,
        .framing = stream_framing::sse,
        .serves = {.chat = true, .completion = false, .embedding = true},
    },
    provider_info{
        .name = "vertex_ai",
        .prefix = "vertex_ai/",
        .bare_names = false,
        .exception_label = "VertexAIException",
        // Computed per deployment from vertex_location (https://{location}-aiplatform.googleapis.com);
        // api_base replaces it. The credentials are a service account (an OAuth2 token), not a key.
        .default_api_base = "",
        .api_key_env = "",
        .wire = wire_format::vertex,
        .framing = stream_framing::sse,
        .serves = {.chat = true, .completion = false, .embedding = false},
    },
    provider_info{
        .name = "bedrock",
        .prefix = "bedrock/",
        .bare_names = false,
        .exception_label = "BedrockException",
        // Built from the region (https://bedrock-runtime.{region}.amazonaws.com) unless
        // aws_bedrock_runtime_endpoint or api_base is set; keys come from the AWS_* variables.
        .default_api_base = "",
        .api_key_env = "",
        .wire = wire_format::bedrock,
        .framing = stream_framing::aws_eventstream,
        .serves = {.chat = true, .completion = false, .embedding = true},
    },
    provider_info{
        .name = "cohere",
        .prefix = "cohere/",
        .bare_names = false,
        .exception_label = "CohereException",
        .default_api_base = "https://api.cohere.com",
        .api_key_env = "COHERE_API_KEY",
        .wire = wire_format::cohere,
        .framing = stream_framing::sse,
        .serves = {.chat = true, .completion = false, .embedding = false},  // v2 chat only
    },
    provider_info{
        .name = "cohere_chat",  // LiteLLM's other prefix for the same chat API
        .prefix = "cohere_chat/",
        .bare_names = false,
        .exception_label = "CohereException",
        .default_api_base = "https://api.cohere.com",
        .api_key_env = "COHERE_API_KEY",
        .wire = wire_format::cohere,
        .framing = stream_framing::sse,
        .serves = {.chat = true, .completion = false, .embedding = false},
    },
};

// ---- the table's rules, checked at compile time ---------------------------------------

constexpr bool prefixes_are_names() {
  for (const auto& p : providers) {
    if (p.prefix.size() != p.name.size() + 1 || p.prefix.substr(0, p.name.size()) != p.name ||
        p.prefix.back() != '/' || p.name.find('/') != std::string_view::npos) {
      return false;
    }
  }
  return true;
}

constexpr bool names_are_unique() {
  for (std::size_t i = 0; i < providers.size(); ++i) {
    for (std::size_t j = i + 1; j < providers.size(); ++j) {
      if (providers[i].name == providers[j].name) {
        return false;
      }
    }
  }
  return true;
}

constexpr std::size_t bare_name_providers() {
  std::size_t n = 0;
  for (const auto& p : providers) {
    n += p.bare_names ? 1 : 0;
  }
  return n;
}

constexpr bool every_entry_is_complete() {
  for (const auto& p : providers) {
    if (p.name.empty() || p.exception_label.empty() || static_cast<std::size_t>(p.wire) >= wire_format_count ||
        !(p.serves.chat || p.serves.completion || p.serves.embedding)) {
      return false;
    }
  }
  return true;
}

static_assert(prefixes_are_names(), "a prefix is the provider's name and a '/'; names have no '/'");
static_assert(names_are_unique(), "two providers have the same name");
static_assert(bare_name_providers() == 1, "exactly one provider takes models without a prefix");
static_assert(every_entry_is_complete(), "a provider needs a name, a label, a wire format and an endpoint");

constexpr std::size_t bare_index() {
  for (std::size_t i = 0; i < providers.size(); ++i) {
    if (providers[i].bare_names) {
      return i;
    }
  }
  return 0;
}

std::string join(std::string_view (*field)(const provider_info&)) {
  std::string out;
  for (const auto& p : providers) {
    if (!out.empty()) {
      out += ", ";
    }
    out += field(p);
  }
  return out;
}

}  // namespace

std::span<const provider_info> provider_registry() { return providers; }

const provider_info* find_provider(std::string_view name) {
  for (const auto& p : providers) {
    if (p.name == name) {
      return &p;
    }
  }
  return nullptr;
}

const provider_info* find_provider_for_model(std::string_view model) {
  const auto slash = model.find('/');
  if (slash == std::string_view::npos) {
    return nullptr;
  }
  const auto prefix = model.substr(0, slash + 1);
  for (const auto& p : providers) {
    if (p.prefix == prefix) {
      return &p;
    }
  }
  return nullptr;
}

const provider_info& provider_for_bare_names() { return providers[bare_index()]; }

const provider_info* provider_for_litellm_provider(std::string_view name) {
  if (const auto* p = find_provider(name)) {
    return p;
  }
  // The table groups some providers' models by kind: "<provider>-<kind>" (vertex_ai-
  // language-models, vertex_ai-embedding-models) and "text-completion-<provider>".
  constexpr std::string_view text_completion = "text-completion-";
  if (name.substr(0, text_completion.size()) == text_completion) {
    return find_provider(name.substr(text_completion.size()));
  }
  if (const auto dash = name.find('-'); dash != std::string_view::npos) {
    return find_provider(name.substr(0, dash));
  }
  return nullptr;
}

std::string supported_prefixes() {
  return join([](const provider_info& p) { return p.prefix; }) + " (a model without a prefix is " +
         std::string(provider_for_bare_names().name) + ")";
}

std::string supported_provider_names() {
  return join([](const provider_info& p) { return p.name; });
}

}  // namespace switchyard::config
