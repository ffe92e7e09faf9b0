// One adapter per wire format (config::wire_format): OpenAI (also Azure and any
// OpenAI-compatible provider), Anthropic Messages, Ollama, Bedrock (Converse, SigV4),
// Cohere v2 chat. A deployment's adapter comes
// from its provider's descriptor (config/provider_registry.hpp). Pure translation, no
// I/O: the pipeline does the HTTP through upstream::client and hands bytes to the adapter.
// Thread: any; adapters are stateless singletons; a stream_translator belongs to
// one request (loop thread).
#pragma once
#include "switchyard/config/config.hpp"
#include "switchyard/core/error.hpp"
#include "switchyard/providers/json_scan.hpp"
#include "switchyard/providers/openai.hpp"

#include <nlohmann/json_fwd.hpp>

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace switchyard::providers {

// responses: OpenAI's /v1/responses, which adapters see as chat (pipeline/responses_call.cpp
// translates it, or forwards it to providers that serve it: provider_info::responses_api).
// messages: Anthropic's /v1/messages front door; adapters are called with chat for it
// (anthropic_front.hpp translates), and Anthropic deployments get the client's bytes.
enum class call_type { chat, completion, embedding, responses, messages };

struct build_options {
  build_options() = default;
  // (Positional, so that {stream, drop_params} keeps meaning what it did.)
  build_options(bool stream_, bool drop_params_, std::string_view bearer = {})
      : stream(stream_), drop_params(drop_params_), bearer_token(bearer) {}

  bool stream = false;
  bool drop_params = false;  // drop parameters the provider cannot take instead of a 400
  // An OAuth2 access token the pipeline fetched for the deployment (Vertex AI's service
  // account, Azure Entra ID; pipeline/token_broker.hpp), sent as `Authorization: Bearer`.
  // Empty: the deployment authenticates with its api_key (or not at all).
  std::string_view bearer_token;
};

// An upstream answer translated to OpenAI's JSON.
struct translated_response {
  std::string body;  // OpenAI JSON (chat.completion / text_completion / list of embeddings)
  usage tokens;
};

// Turns an upstream response body, read piece by piece, into OpenAI
// chat.completion.chunk (or text_completion chunk) JSON payloads: each string in
// `payloads` is one SSE `data:` payload, without "data: " and without [DONE].
class stream_translator {
 public:
  virtual ~stream_translator() = default;
  // Bytes exactly as they arrived (any split). An error means the upstream sent an
  // error event or malformed data; the pipeline ends the client stream with it.
  virtual core::result<void> feed(std::string_view bytes, std::vector<std::string>& payloads) = 0;
  // The upstream body ended. An error if it ended before the provider's terminal
  // event (a cut stream). May append final payloads (e.g. the usage chunk).
  virtual core::result<void> finish(std::vector<std::string>& payloads) = 0;
  // Usage seen so far (complete after finish()).
  virtual const usage& tokens() const = 0;
};

class adapter {
 public:
  virtual ~adapter() = default;
  // The upstream request for one attempt. `body` is the client's parsed OpenAI
  // request. 400 naming the parameter the provider cannot take (unless drop_params).
  virtual core::result<upstream_call> build(call_type type, const config::deployment& d, const nlohmann::json& body,
                                            const build_options& opts) const = 0;
  // The same upstream request built from the client's bytes, without a DOM: for
  // adapters that forward OpenAI JSON (surgical edits: model, stream_options, gateway
  // fields removed). `scan` is scan_json(body). nullopt: this adapter translates the
  // request and needs build() with the parsed body.
  virtual std::optional<core::result<upstream_call>> build_raw(call_type type, const config::deployment& d,
                                                               std::string_view body, const json_scan& scan,
                                                               const build_options& opts) const {
    (void)type, (void)d, (void)body, (void)scan, (void)opts;
    return std::nullopt;
  }
  // A 2xx upstream body -> OpenAI JSON. Error (500, clear message) if malformed.
  // `model` is the model name the client asked for (used in the response).
  virtual core::result<translated_response> translate_response(call_type type, const config::deployment& d,
                                                               std::string_view body,
                                                               std::string_view model) const = 0;
  // A translator for a streamed answer. `include_usage`: the client asked for the
  // usage chunk (stream_options.include_usage); usage is tracked either way.
  virtual std::unique_ptr<stream_translator> make_stream(call_type type, const config::deployment& d,
                                                         std::string_view model, bool include_usage) const = 0;
  // A non-2xx upstream answer -> the client's error (status kept, provider message).
  virtual core::error translate_error(const config::deployment& d, int status, std::string_view body) const = 0;
};

// The adapter of a provider's wire format (a table lookup: no allocation, no switch).
const adapter& adapter_for(const config::provider_info& p);
// Whether the gateway serves this call type for the provider (its descriptor's
// capabilities; e.g. Anthropic has no embeddings).
bool supports(const config::provider_info& p, call_type type);
// Offset just past the first complete event of a streamed answer in `bytes` (SSE: the
// first blank line; NDJSON: the first line), or 0 if there is none yet. Lets the relay
// send the first event before translating the rest of a read.
std::size_t first_event_end(config::stream_framing framing, std::string_view bytes);

// Individual adapters (for tests).
const adapter& openai_adapter();
const adapter& anthropic_adapter();
const adapter& ollama_adapter();
const adapter& gemini_adapter();
const adapter& vertex_adapter();
const adapter& cohere_adapter();

}  // namespace switchyard::providers
