#include "switchyard/pipeline/outcome.hpp"
#include "switchyard/pipeline/request_ctx.hpp"

namespace switchyard::pipeline {

const call_type_names& names_of(providers::call_type t) {
  static constexpr call_type_names chat{"/chat/completions", "acompletion"};
  static constexpr call_type_names completion{"/completions", "atext_completion"};
  static constexpr call_type_names embedding{"/embeddings", "aembedding"};
  static constexpr call_type_names responses{"/responses", "aresponses"};
  static constexpr call_type_names messages{"/v1/messages", "anthropic_messages"};
  switch (t) {
    case providers::call_type::chat: return chat;
    case providers::call_type::completion: return completion;
    case providers::call_type::embedding: return embedding;
    case providers::call_type::responses: return responses;
    case providers::call_type::messages: return messages;
  }
  return chat;
}

int outcome::retries() const { return attempts.empty() ? 0 : attempts.back().retry; }

int outcome::fallbacks() const { return attempts.empty() ? 0 : attempts.back().fallback; }

}  // namespace switchyard::pipeline
