// One provider call (an attempt_runner): builds the upstream request with the
// deployment's adapter, sends it through the upstream_caller, and answers the client with
// the translated response, relaying a stream event by event; or answers a mock_response
// without any call. Private to pipeline/.
#pragma once
#include "switchyard/config/config.hpp"
#include "switchyard/pipeline/attempt_loop.hpp"
#include "switchyard/pipeline/token_broker.hpp"
#include "switchyard/pipeline/upstream_caller.hpp"

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace switchyard::pipeline {

// store_prompts_in_spend_logs: the text of OpenAI chunk payloads into ctx.kept_response
// (shared by the chat and the Anthropic messages calls; the other shared helpers are in
// respond.hpp).
void keep_stream_text(request_ctx& ctx, const std::vector<std::string>& payloads);

class provider_call final : public attempt_runner {
 public:
  provider_call(std::shared_ptr<const config::config> cfg, upstream_caller& upstream)
      : cfg_(std::move(cfg)), upstream_(upstream) {}

  net::awaitable<std::optional<core::error>> attempt(request_ctx& ctx) override;
  // The runner of /v1/responses requests (responses_call), which shares the timeouts.
  void set_responses_runner(attempt_runner* r) { responses_ = r; }
  // Where deployments that authenticate with an OAuth2 token get it (null: none do).
  void set_tokens(token_broker* t) { tokens_ = t; }
  // The token source of a deployment that needs one, else nullptr (every runner asks
  // before build(): a plain field check and a hash lookup for the others).
  token_source* token_source_of(const config::deployment& d) const {
    return tokens_ != nullptr ? tokens_->source_for(d) : nullptr;
  }
  std::chrono::milliseconds timeout_of(const config::deployment& d) const;
  std::chrono::milliseconds stream_timeout_of(const config::deployment& d) const;
  // POST /v1/messages/count_tokens on ctx.dep (messages_call.cpp): Anthropic's count for
  // an Anthropic deployment, else the estimate. nullopt: answered.
  net::awaitable<std::optional<core::error>> count_tokens(request_ctx& ctx);

 private:
  // Anthropic's /v1/messages (messages_call.cpp): the client's bytes to an Anthropic
  // deployment, relayed back as received; any other provider through its chat adapter
  // with the request and the answer translated (providers/anthropic_front.hpp).
  net::awaitable<std::optional<core::error>> messages_attempt(request_ctx& ctx);
  net::awaitable<std::optional<core::error>> messages_passthrough(request_ctx& ctx);
  net::awaitable<std::optional<core::error>> messages_translated(request_ctx& ctx);
  net::awaitable<void> messages_mock(request_ctx& ctx, const std::string& content);
  bool drop_params_of(const request_ctx& ctx) const;

  net::awaitable<std::optional<core::error>> call(request_ctx& ctx);
  net::awaitable<std::optional<core::error>> relay_stream(request_ctx& ctx, std::unique_ptr<upstream::body_stream> s,
                                                          std::chrono::milliseconds stream_timeout);
  net::awaitable<void> answer_mock(request_ctx& ctx, const std::string& content);

  std::shared_ptr<const config::config> cfg_;
  upstream_caller& upstream_;
  attempt_runner* responses_ = nullptr;
  token_broker* tokens_ = nullptr;
};

}  // namespace switchyard::pipeline
