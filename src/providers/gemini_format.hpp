// Google's generateContent format (Gemini models on Google AI Studio and on Vertex AI),
// translated to and from OpenAI chat. Shared by the gemini and vertex adapters, which add
// their URLs and auth. Pure functions; thread: any; a stream translator belongs to one
// request (loop thread). Private to providers/.
#pragma once
#include "stream_reading.hpp"
#include "switchyard/config/config.hpp"
#include "switchyard/core/error.hpp"
#include "switchyard/providers/adapter.hpp"

#include <nlohmann/json.hpp>

#include <memory>
#include <string_view>

namespace switchyard::providers::gemini_format {

// The generateContent body for an OpenAI chat request: contents (user / model turns, tool
// results as functionResponse parts), systemInstruction, tools (functionDeclarations),
// toolConfig, generationConfig. 400 for what Gemini cannot take (unless drop_params).
// `provider` names the provider in messages ("gemini", "vertex_ai").
core::result<nlohmann::json> chat_body(const config::deployment& d, const nlohmann::json& body,
                                       const build_options& opts, std::string_view provider);

// A GenerateContentResponse -> chat.completion. A prompt blocked by the provider's safety
// filters (promptFeedback.blockReason) is a choice with finish_reason "content_filter" and
// no content, as LiteLLM answers it; no candidates and no block reason is a 500 naming it.
// The candidates' grounding, URL context, safety and citation metadata are the answer's
// vertex_ai_* lists (empty when absent) and the message's url_citation annotations.
core::result<translated_response> chat_response(std::string_view body, std::string_view model,
                                                std::string_view label);

// The translator of a streamGenerateContent?alt=sse answer (each event one
// GenerateContentResponse). The stream must end after a finishReason (or a prompt block):
// a body that ends before one is a cut stream. Plain events (one candidate of text parts,
// its finishReason, usageMetadata, responseId, ...) are read from a scan of their bytes
// unless `reading` says otherwise (stream_reading.hpp).
std::unique_ptr<stream_translator> chat_stream(std::string_view model, bool include_usage, std::string_view label,
                                               stream_reading reading = {});

// A Google error body ({"error": {"code", "message", "status"}}) -> the client's error.
core::error error_of(int status, std::string_view body, std::string_view label);

}  // namespace switchyard::providers::gemini_format
