// Health and discovery endpoints: /health/liveliness (+ /health/liveness, /healthz),
// /health/readiness (+ /readyz), /v1/models (+ /models, /v1/models/{id}).
// Owner: app/. Thread: the loop thread. Never blocks: probes are awaitables that
// the app bounds in time.
#pragma once
#include "switchyard/auth/key_auth.hpp"
#include "switchyard/core/asio.hpp"
#include "switchyard/http/message.hpp"
#include "switchyard/router/router.hpp"

#include <functional>
#include <string>

namespace switchyard::admin {

enum class dependency_state { not_configured, connected, disconnected };

struct health_probes {
  // Each probe answers within its own short deadline.
  std::function<net::awaitable<dependency_state>()> db;
  std::function<net::awaitable<dependency_state>()> cache;
  bool allow_requests_on_db_unavailable = false;
};

class health_endpoints {
 public:
  health_endpoints(health_probes probes, const auth::key_authenticator& auth, const router::router& rt);

  net::awaitable<void> liveliness(http::request& req, http::responder& resp);
  net::awaitable<void> readiness(http::request& req, http::responder& resp);
  net::awaitable<void> models(http::request& req, http::responder& resp);
  net::awaitable<void> model(http::request& req, http::responder& resp, std::string id);

 private:
  health_probes probes_;
  const auth::key_authenticator& auth_;
  const router::router& router_;
};

}  // namespace switchyard::admin
