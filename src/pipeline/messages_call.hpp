// POST /v1/messages/count_tokens as the last stage of its own short chain
// (auth -> parse -> route -> count): one deployment picked for the model group, then
// Anthropic's count for an Anthropic deployment, or the estimate for any other
// (provider_call::count_tokens). No retries; no spend row (nothing is generated).
// Private to pipeline/. Thread: the loop thread. Never blocks.
#pragma once
#include "provider_call.hpp"

#include "switchyard/pipeline/stage.hpp"
#include "switchyard/router/router.hpp"

namespace switchyard::pipeline {

class count_tokens_stage final : public stage {
 public:
  count_tokens_stage(router::router& rt, provider_call& call) : router_(rt), call_(call) {}
  const char* name() const override { return "count_tokens"; }
  verdict run(request_ctx&) override { return verdict::wait(); }
  net::awaitable<verdict> run_async(request_ctx& ctx) override;

 private:
  router::router& router_;
  provider_call& call_;
};

}  // namespace switchyard::pipeline
