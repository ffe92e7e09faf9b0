// Health and discovery endpoints: /health/liveliness (+ /health/liveness, /healthz),
// /health/readiness (+ /readyz), /v1/models (+ /models, /v1/models/{id}), and the
// Prometheus exposition /metrics (docs/observability.md).
// Owner: app/. Thread: the loop thread. Never blocks: probes are awaitables that
// the app bounds in time.
#pragma once
#include "switchyard/auth/key_auth.hpp"
#include "switchyard/core/asio.hpp"
#include "switchyard/http/message.hpp"
#include "switchyard/metrics/registry.hpp"
#include "switchyard/router/router.hpp"

#include <functional>
#include <string>
#include <vector>

namespace switchyard::admin {

enum class dependency_state { not_configured, connected, disconnected };

struct health_probes {
  // Each probe answers within its own short deadline.
  std::function<net::awaitable<dependency_state>()> db;
  std::function<net::awaitable<dependency_state>()> cache;
  // The response cache's type ("redis", "local"), readiness' `cache` as LiteLLM gives it;
  // empty when caching is off (null).
  std::string cache_type;
  bool allow_requests_on_db_unavailable = false;
  // The callbacks that run (readiness' success_callbacks), e.g. "prometheus".
  std::vector<std::string> success_callbacks;
  // /metrics: the registry (null: metrics are off and /metrics is 404), and whether a key
  // is needed (litellm_settings.require_auth_for_metrics_endpoint).
  metrics::registry* metrics = nullptr;
  bool metrics_require_auth = false;
  // Set in a worker group: renders the whole group's metrics instead of `metrics` alone.
  std::function<net::awaitable<std::string>(metrics::format)> render_metrics;
};

class health_endpoints {
 public:
  health_endpoints(health_probes probes, const auth::key_authenticator& auth, const router::router& rt);

  net::awaitable<void> liveliness(http::request& req, http::responder& resp);
  net::awaitable<void> readiness(http::request& req, http::responder& resp);
  net::awaitable<void> models(http::request& req, http::responder& resp);
  net::awaitable<void> model(http::request& req, http::responder& resp, std::string id);
  // GET /metrics: the text format, or OpenMetrics when Accept asks for it.
  net::awaitable<void> metrics(http::request& req, http::responder& resp);

 private:
  health_probes probes_;
  const auth::key_authenticator& auth_;
  const router::router& router_;
};

}  // namespace switchyard::admin
