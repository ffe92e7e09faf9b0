// Helpers every stage uses to answer (private to pipeline/).
#pragma once
#include "switchyard/pipeline/request_ctx.hpp"

#include <string>

namespace switchyard::pipeline {

// The x-litellm-* response headers, as preformatted head lines (http::response::head_lines).
std::string litellm_headers(const request_ctx& ctx);
// Sends `e` as an OpenAI-shaped error with the x-litellm-* headers, and records it.
net::awaitable<void> send_error(request_ctx& ctx, core::error e);

}  // namespace switchyard::pipeline
