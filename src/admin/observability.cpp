// GET /health (the deployment checks), /health/backlog and /active/callbacks: LiteLLM's
// answers, from what app/ hands over in management_deps (docs/observability.md).
#include "handlers.hpp"

namespace switchyard::admin {

handler_result deployment_health(const route_context& c) {
  if (!c.deps.deployment_health) {
    co_return core::make_error(core::errc::internal, "Deployment health checks are not available");
  }
  auto model = query_param(c.req.query, "model").value_or(std::string());
  co_return co_await c.deps.deployment_health(std::move(model));
}

handler_result config_reload(const route_context& c) {
  if (!c.deps.reload_config) {
    co_return core::make_error(core::errc::internal, "Config reload is not available");
  }
  co_return co_await c.deps.reload_config("POST /config/reload");
}

handler_result config_version(const route_context& c) {
  if (!c.deps.config_version) {
    co_return core::make_error(core::errc::internal, "The config version is not available");
  }
  co_return ok(c.deps.config_version());
}

handler_result health_backlog(const route_context& c) {
  co_return ok(json{{"in_flight_requests", c.deps.in_flight ? c.deps.in_flight() : 0}});
}

handler_result active_callbacks(const route_context& c) {
  const json active = c.deps.callbacks;
  const json success = c.deps.success_callbacks;
  const json failure = c.deps.failure_callbacks;
  co_return ok(json{{"alerting", c.deps.alerting},
                    {"litellm.callbacks", active},
                    {"litellm.input_callback", json::array()},
                    {"litellm.success_callback", success},
                    {"litellm.failure_callback", failure},
                    {"litellm._async_success_callback", success},
                    {"litellm._async_failure_callback", failure},
                    {"all_litellm_callbacks", active},
                    {"num_callbacks", active.size()}});
}

// LiteLLM's /health/services: checks one configured callback (or alerting channel).
handler_result service_health(const route_context& c) {
  auto service = query_param(c.req.query, "service");
  if (!service || service->empty()) {
    co_return core::make_error(core::errc::bad_request, "Service must be specified: /health/services?service=<name>",
                               "service");
  }
  if (!c.deps.service_health) {
    co_return core::make_error(core::errc::bad_request, "Service not configured: " + *service, "service");
  }
  co_return co_await c.deps.service_health(std::move(*service));
}

}  // namespace switchyard::admin
