// Helpers every stage uses to answer (private to pipeline/).
#pragma once
#include "switchyard/pipeline/request_ctx.hpp"
#include "switchyard/upstream/client.hpp"

#include <chrono>

#include <string>

namespace switchyard::pipeline {

// The x-litellm-* response headers, as preformatted head lines (http::response::head_lines).
std::string litellm_headers(const request_ctx& ctx);
// Sends `e` as an OpenAI-shaped error with the x-litellm-* headers, and records it.
net::awaitable<void> send_error(request_ctx& ctx, core::error e);

// A failed exchange with the provider (timeout, connection) as LiteLLM words it.
core::error transport_error(const core::error& e, const config::deployment& d, std::chrono::milliseconds timeout);
// Upstream headers passed on to the client under the llm_provider- prefix.
void add_provider_headers(std::string& lines, const upstream::header_list& in);
// The provider's retry-after header, empty if none.
std::string retry_after_of(const upstream::header_list& h);
// x-litellm-response-cost for ctx.usage on ctx.dep (nothing when unpriced or unknown).
void add_response_cost(const request_ctx& ctx, std::string& lines);

}  // namespace switchyard::pipeline
