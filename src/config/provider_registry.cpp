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

std::string supported_prefixes() {
  return join([](const provider_info& p) { return p.prefix; }) + " (a model without a prefix is " +
         std::string(provider_for_bare_names().name) + ")";
}

std::string supported_provider_names() {
  return join([](const provider_info& p) { return p.name; });
}

}  // namespace switchyard::config
