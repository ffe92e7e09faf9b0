// The OpenAI-compatible endpoints (/v1/chat/completions, /v1/completions,
// /v1/embeddings): auth -> parse -> router -> provider adapter -> (cost logger,
// issue 5). Each stage is a coroutine over one request_ctx; a stage that answered
// the client stops the run.
// Owner: app/. Thread: the loop thread. Never blocks (upstream I/O is async).
#pragma once
#include "switchyard/auth/key_auth.hpp"
#include "switchyard/config/config.hpp"
#include "switchyard/core/asio.hpp"
#include "switchyard/http/message.hpp"
#include "switchyard/providers/adapter.hpp"
#include "switchyard/providers/json_scan.hpp"
#include "switchyard/router/policy.hpp"
#include "switchyard/router/router.hpp"
#include "switchyard/upstream/client.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace switchyard::pipeline {

enum class step { next, answered };

struct request_ctx {
  request_ctx(http::request& r, http::responder& w) : req(r), resp(w) {}
  http::request& req;
  http::responder& resp;
  providers::call_type type = providers::call_type::chat;
  std::string route;       // "/chat/completions", for messages
  std::string path_model;  // model named in the path (/openai/deployments/{m}/...), if any
  // The body, read once without a DOM (issue 6): validated, top-level members as spans
  // into req.body. `model` and `stream` are read from the scan (requested_model,
  // stream); `body` holds only the other members the gateway reads (num_retries,
  // fallbacks, stream_options, mock_*, drop_params, ...: is_gateway_read_member() in
  // llm_pipeline.cpp), null when there are none. Everything else stays bytes unless an
  // adapter that translates the request needs the whole document (full_body()).
  providers::json_scan scan;
  nlohmann::json body;
  std::optional<nlohmann::json> full;  // the whole parsed body, built on first use
  std::string requested_model;
  bool stream = false;
  bool client_wants_usage = false;
  auth::principal who;
  const config::deployment* dep = nullptr;  // the deployment of the current/last attempt
  std::shared_ptr<const config::deployment> dep_ref;  // keeps `dep` alive (wildcard copies)
  // Router bookkeeping (x-litellm-* headers): retries in the group that answered or failed
  // last, the request's retry budget (-1: not routed yet), fallback groups tried.
  int attempted_retries = 0;
  int max_retries = -1;
  int attempted_fallbacks = 0;
  std::size_t estimated_tokens = 0;
  std::chrono::steady_clock::time_point attempt_started{};
  std::chrono::steady_clock::duration ttft{};  // streams: time to the first byte sent
  std::optional<core::error> late_failure;     // a stream that failed after its first byte
  std::chrono::steady_clock::duration upstream_time{};  // time spent waiting on the provider
  providers::usage usage;
};

class llm_pipeline {
 public:
  llm_pipeline(std::shared_ptr<const config::config> cfg, const auth::key_authenticator& auth, router::router& rt,
               upstream::client& client);

  net::awaitable<void> handle(http::request& req, http::responder& resp, providers::call_type type,
                              std::string path_model = {});

 private:
  // Validates the body and reads its small members; the error to answer, if any.
  std::optional<core::error> parse_stage(request_ctx& ctx);
  // The whole body as a DOM (path model applied), parsed on first use.
  static const nlohmann::json& full_body(request_ctx& ctx);
  // Aliases, model access and that the model names a group; the error to answer, if any.
  std::optional<core::error> route_stage(request_ctx& ctx);
  net::awaitable<step> provider_stage(request_ctx& ctx);
  net::awaitable<void> answer_mock(request_ctx& ctx, const std::string& content);
  // Retries within one model group (every attempt re-picks a deployment). nullopt: the
  // client was answered; else the last error, nothing sent yet.
  net::awaitable<std::optional<core::error>> try_group(request_ctx& ctx, std::string group, bool primary);
  // Tries `groups` in order (each with its own retries; config fallbacks chain recursively
  // up to max_fallbacks deep). nullopt: answered; else the last error.
  net::awaitable<std::optional<core::error>> run_fallbacks(request_ctx& ctx, std::vector<std::string> groups,
                                                           core::error last, int depth,
                                                           std::vector<std::string>& tried, bool chain);
  // One attempt on ctx.dep. nullopt: the client was answered (success, or a stream that
  // failed after its first byte, or the client left); else the error, nothing sent.
  net::awaitable<std::optional<core::error>> answer_upstream(request_ctx& ctx);
  net::awaitable<std::optional<core::error>> relay_stream(request_ctx& ctx, std::unique_ptr<upstream::body_stream> s,
                                                          std::chrono::milliseconds stream_timeout);
  net::awaitable<void> fail(request_ctx& ctx, core::error e);
  // The x-litellm-* response headers, as preformatted head lines (http::response::head_lines).
  std::string litellm_headers(const request_ctx& ctx) const;
  std::chrono::milliseconds timeout_of(const config::deployment& d) const;
  std::chrono::milliseconds stream_timeout_of(const config::deployment& d) const;

  std::shared_ptr<const config::config> cfg_;
  const auth::key_authenticator& auth_;
  router::router& router_;
  upstream::client& client_;
  router::retry_settings retry_;
  router::fallback_settings fallbacks_;
  std::mt19937_64 rng_{std::random_device{}()};  // backoff jitter
};

}  // namespace switchyard::pipeline
