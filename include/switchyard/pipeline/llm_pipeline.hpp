// The OpenAI-compatible endpoints (/v1/chat/completions, /v1/completions,
// /v1/embeddings, POST /v1/responses) as a chain of stages over one request_ctx:
//
//   auth -> parse -> [limits] -> route -> [cache] -> provider      then always: finish
//
// Each stage continues or answers (stage.hpp); the chain is declared once, in the
// constructor. `finish` runs exactly once per request whatever happened (an answer from
// any stage, an error, a client that left, an exception) and hands the outcome record to
// the observers, the access log first. See docs/life-of-a-request.md.
// Owner: app/. Thread: the loop thread. Never blocks (upstream I/O is async).
#pragma once
#include "switchyard/auth/key_auth.hpp"
#include "switchyard/cache/key_memo.hpp"
#include "switchyard/config/config.hpp"
#include "switchyard/core/asio.hpp"
#include "switchyard/http/message.hpp"
#include "switchyard/pipeline/attempt_loop.hpp"
#include "switchyard/pipeline/request_ctx.hpp"
#include "switchyard/pipeline/responses_store.hpp"
#include "switchyard/pipeline/stage.hpp"
#include "switchyard/pipeline/upstream_caller.hpp"
#include "switchyard/router/router.hpp"
#include "switchyard/spend/pricer.hpp"

#include <memory>
#include <string>
#include <vector>

namespace switchyard::pipeline {

// Stages and observers that other modules add to the chain (null: none).
struct extensions {
  stage* limits = nullptr;  // before route: budgets and rate limits may refuse
  stage* cache = nullptr;   // before provider: may answer from the cache
  std::vector<observer*> observers;  // after the access log, in this order
  spend::pricer* prices = nullptr;   // x-litellm-response-cost (none: no header)
  // Where /v1/responses conversations of translated providers are kept (null: a store of
  // the pipeline's own, memory only).
  responses_store* responses = nullptr;
  // A trace callback is configured: requests get a W3C trace context (the client's
  // `traceparent` as parent), stage timings and per-attempt span ids, and providers get a
  // `traceparent` header (outcome.hpp).
  bool tracing = false;
  // A callback logs message content: the answer is kept for it (as store_prompts does).
  bool keep_response = false;
  // The cache stage's memo of bodies seen before (cache_stage::body_memo): the parse stage
  // reuses a remembered body's scan. Null: every body is scanned.
  const cache::key_memo* body_memo = nullptr;
};

// The client's W3C `traceparent` ("00-<32 hex>-<16 hex>-<2 hex>"), or a fresh trace when
// it is absent or malformed (all-zero ids are invalid); a new span id for the request.
trace_context trace_context_of(std::string_view traceparent);
// 16 lower-case hex digits, never all zero (a fast PRNG: unique, not secret).
std::string new_span_id();

class llm_pipeline {
 public:
  llm_pipeline(std::shared_ptr<const config::config> cfg, const auth::key_authenticator& auth, router::router& rt,
               upstream_caller& upstream, extensions ext = {});
  ~llm_pipeline();
  llm_pipeline(const llm_pipeline&) = delete;
  llm_pipeline& operator=(const llm_pipeline&) = delete;

  net::awaitable<void> handle(http::request& req, http::responder& resp, providers::call_type type,
                              std::string path_model = {});
  // POST /v1/messages/count_tokens: auth -> parse -> route -> count (one deployment, no
  // retries); errors in Anthropic's shape; only the access log observes it (no spend).
  net::awaitable<void> count_tokens(http::request& req, http::responder& resp);

 private:
  struct parts;
  net::awaitable<void> run_chain(request_ctx& ctx, const std::vector<stage*>& chain);
  void finish(request_ctx& ctx) noexcept;
  void finish_count(request_ctx& ctx) noexcept;

  std::unique_ptr<parts> parts_;
  std::vector<stage*> chain_;
  std::vector<stage*> count_chain_;
  std::vector<observer*> observers_;
  spend::pricer* prices_ = nullptr;
  bool tracing_ = false;
  bool keep_response_ = false;
  bool forward_client_headers_ = false;
  std::string key_header_;  // litellm_key_header_name, lower-case
};

}  // namespace switchyard::pipeline
