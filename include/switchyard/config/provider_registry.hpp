// The provider registry: one descriptor per provider the gateway speaks to, the single
// place that says what a `<provider>/` prefix means (see docs/architecture.md, "Providers").
// Everything else reads it: the config loader (prefixes, custom_llm_provider, the key
// environment variable), providers/ (the adapter for the wire format, the exception
// label, the default api_base), the pipeline (stream framing, capabilities, the
// x-litellm-model-api-base header).
// Thread: any; the registry is a constant table, its descriptors live for the whole
// program, so a `const provider_info*` may be kept anywhere (config::deployment does).
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace switchyard::config {

// How requests and answers look on the wire; providers/ keeps one adapter per value
// (a table indexed by it). Providers that share a wire format share its adapter.
enum class wire_format : std::uint8_t {
  openai,           // OpenAI's /chat/completions, /completions, /embeddings; Bearer key
  azure,            // OpenAI's bodies under /openai/deployments/<deployment>/...?api-version=; api-key header
  anthropic,        // Anthropic Messages (/v1/messages), translated both ways
  ollama_generate,  // Ollama /api/generate (chat flattened to a prompt), /api/embed
  ollama_chat,      // Ollama /api/chat, /api/embed
  gemini,           // Google AI Studio generateContent / streamGenerateContent, embedContent; x-goog-api-key
  vertex,           // Vertex AI: the Gemini format (and Anthropic's for claude-*) on per-project URLs; OAuth2 bearer
  bedrock,          // AWS Bedrock Converse / ConverseStream and InvokeModel (embeddings), SigV4-signed
  cohere,           // Cohere v2 chat (/v2/chat), translated both ways
};
// Keep equal to the last enumerator + 1 (providers/ checks its adapter table against it).
inline constexpr std::size_t wire_format_count = static_cast<std::size_t>(wire_format::cohere) + 1;

// How a streamed answer is cut into events.
enum class stream_framing : std::uint8_t {
  sse,     // server-sent events: events end with a blank line
  ndjson,  // one JSON object per line
  aws_eventstream,  // application/vnd.amazon.eventstream: length-prefixed binary messages with CRCs
};

// The endpoints the gateway serves for a provider.
struct capabilities {
  bool chat = false;        // /v1/chat/completions
  bool completion = false;  // /v1/completions
  bool embedding = false;   // /v1/embeddings
};

struct provider_info {
  std::string_view name;    // LiteLLM's provider name, also accepted as litellm_params.custom_llm_provider
  std::string_view prefix;  // `<name>/`, the prefix of litellm_params.model
  bool bare_names;          // a model without any prefix belongs to this provider (exactly one does)
  std::string_view exception_label;   // as LiteLLM names it in error messages, e.g. "AnthropicException"
  std::string_view default_api_base;  // used when litellm_params.api_base is absent; empty: api_base is required
  std::string_view api_key_env;       // where LiteLLM reads the key when litellm_params.api_key is absent
  wire_format wire;
  stream_framing framing;
  capabilities serves;
  // Runs on the user's own machine (Ollama): its models are not looked up in the price
  // table and cost 0 unless the deployment prices them.
  bool local = false;
  // Serves OpenAI's Responses API itself (/v1/responses and its GET/DELETE/cancel): the
  // gateway forwards Responses requests as they are; other providers get them translated
  // to chat (docs/responses.md).
  bool responses_api = false;
  // More variables LiteLLM reads the key from, comma-separated, tried after api_key_env
  // (e.g. TOGETHER_AI_API_KEY after TOGETHERAI_API_KEY). Empty: none.
  std::string_view api_key_env_alt = {};
  // Variables LiteLLM reads the api_base from when litellm_params.api_base is absent,
  // comma-separated, in order (e.g. OPENAI_BASE_URL,OPENAI_API_BASE); before the default.
  std::string_view api_base_env = {};
};

// Every provider, in the order the docs list them.
std::span<const provider_info> provider_registry();
// By name ("openai", "ollama_chat"); nullptr if unknown.
const provider_info* find_provider(std::string_view name);
// By the prefix of a model, e.g. "openai/gpt-4o" -> openai: the text up to and including
// its first '/' must be a registered prefix. nullptr if it has no '/' or the prefix is unknown.
const provider_info* find_provider_for_model(std::string_view model);
// The provider of models written without a prefix ("gpt-4o" is openai, as in LiteLLM).
const provider_info& provider_for_bare_names();

// The provider a price-table entry's `litellm_provider` names ("anthropic",
// "vertex_ai-language-models" -> vertex_ai, "text-completion-openai" -> openai), if it is
// registered; nullptr otherwise. Used to place a model written without a prefix, as
// LiteLLM does ("claude-3-5-haiku-latest" is anthropic).
const provider_info* provider_for_litellm_provider(std::string_view litellm_provider);

// "openai/, hosted_vllm/, ... (a model without a prefix is openai)", for error messages.
std::string supported_prefixes();
// "openai, hosted_vllm, ...", for custom_llm_provider errors.
std::string supported_provider_names();

}  // namespace switchyard::config
