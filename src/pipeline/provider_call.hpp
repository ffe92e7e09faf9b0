// One provider call (an attempt_runner): builds the upstream request with the
// deployment's adapter, sends it through the upstream_caller, and answers the client with
// the translated response, relaying a stream event by event; or answers a mock_response
// without any call. Private to pipeline/.
#pragma once
#include "switchyard/config/config.hpp"
#include "switchyard/pipeline/attempt_loop.hpp"
#include "switchyard/pipeline/upstream_caller.hpp"

#include <chrono>
#include <memory>
#include <optional>
#include <string>

namespace switchyard::pipeline {

class provider_call final : public attempt_runner {
 public:
  provider_call(std::shared_ptr<const config::config> cfg, upstream_caller& upstream)
      : cfg_(std::move(cfg)), upstream_(upstream) {}

  net::awaitable<std::optional<core::error>> attempt(request_ctx& ctx) override;
  // The runner of /v1/responses requests (responses_call), which shares the timeouts.
  void set_responses_runner(attempt_runner* r) { responses_ = r; }
  std::chrono::milliseconds timeout_of(const config::deployment& d) const;
  std::chrono::milliseconds stream_timeout_of(const config::deployment& d) const;

 private:
  net::awaitable<std::optional<core::error>> call(request_ctx& ctx);
  net::awaitable<std::optional<core::error>> relay_stream(request_ctx& ctx, std::unique_ptr<upstream::body_stream> s,
                                                          std::chrono::milliseconds stream_timeout);
  net::awaitable<void> answer_mock(request_ctx& ctx, const std::string& content);

  std::shared_ptr<const config::config> cfg_;
  upstream_caller& upstream_;
  attempt_runner* responses_ = nullptr;
};

}  // namespace switchyard::pipeline
