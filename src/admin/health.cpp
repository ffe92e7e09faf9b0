#include "switchyard/admin/health.hpp"

#include "admin_util.hpp"

#include <nlohmann/json.hpp>

namespace switchyard::admin {

using json = nlohmann::json;

namespace {
constexpr long long model_created = 1677610602;  // LiteLLM's fixed value

json model_object(const std::string& id) {
  return {{"id", id}, {"object", "model"}, {"created", model_created}, {"owned_by", "openai"}};
}

const char* db_text(dependency_state s) {
  switch (s) {
    case dependency_state::connected: return "connected";
    case dependency_state::disconnected: return "disconnected";
    default: return "Not connected";
  }
}
}  // namespace

health_endpoints::health_endpoints(health_probes probes, const auth::key_authenticator& auth,
                                   const router::router& rt)
    : probes_(std::move(probes)), auth_(auth), router_(rt) {}

net::awaitable<void> health_endpoints::liveliness(http::request&, http::responder& resp) {
  http::response r;
  r.body = "\"I'm alive!\"";
  co_await resp.send(std::move(r));
}

net::awaitable<void> health_endpoints::readiness(http::request&, http::responder& resp) {
  // if, not ?: around co_await (GCC 12 mishandles temporaries there; see metrics below).
  auto db = dependency_state::not_configured;
  if (probes_.db) {
    db = co_await probes_.db();
  }
  auto cache = dependency_state::not_configured;
  if (probes_.cache) {
    cache = co_await probes_.cache();
  }
  bool ready = db != dependency_state::disconnected || probes_.allow_requests_on_db_unavailable;
  // LiteLLM answers "healthy" (probes written for it compare the string).
  json body = {{"status", ready ? "healthy" : "unhealthy"},
               {"db", db_text(db)},
               {"cache", probes_.cache_type.empty() ? json(nullptr) : json(probes_.cache_type)},
               {"redis", db_text(cache)},
               {"litellm_version", SWITCHYARD_VERSION},
               {"switchyard_version", SWITCHYARD_VERSION},
               {"success_callbacks", probes_.success_callbacks}};
  http::response r;
  r.status = ready ? 200 : 503;
  r.body = body.dump();
  co_await resp.send(std::move(r));
}

net::awaitable<void> health_endpoints::models(http::request& req, http::responder& resp) {
  auto who = co_await authenticate_caller(auth_, req, resp);
  if (!who) {
    co_return;
  }
  resp.annotate({}, who->key_redacted);
  json data = json::array();
  for (const auto& name : auth::allowed_models(*who, router_.public_models(), auth_.groups())) {
    data.push_back(model_object(name));
  }
  http::response r;
  r.body = json{{"data", std::move(data)}, {"object", "list"}}.dump();
  co_await resp.send(std::move(r));
}

net::awaitable<void> health_endpoints::model(http::request& req, http::responder& resp, std::string id) {
  auto who = co_await authenticate_caller(auth_, req, resp);
  if (!who) {
    co_return;
  }
  resp.annotate(id, who->key_redacted);
  for (const auto& name : auth::allowed_models(*who, router_.public_models(), auth_.groups())) {
    if (name == id) {
      http::response r;
      r.body = model_object(name).dump();
      co_await resp.send(std::move(r));
      co_return;
    }
  }
  auto e = core::make_error(core::errc::not_found, "The model '" + id + "' does not exist", "model");
  e.type = "invalid_request_error";
  co_await resp.send(http::error_response(e));
}

net::awaitable<void> health_endpoints::metrics(http::request& req, http::responder& resp) {
  if (probes_.metrics_require_auth) {
    auto who = co_await authenticate_caller(auth_, req, resp);
    if (!who) {
      co_return;
    }
    resp.annotate({}, who->key_redacted);
  }
  const auto f = metrics::format_for_accept(req.header("accept"));
  http::response r;
  r.content_type = metrics::content_type(f);
  // Two statements, not one conditional expression: GCC 12 mishandles the temporaries of
  // a co_await inside ?: (the body was freed before it was sent).
  if (probes_.render_metrics) {
    r.body = co_await probes_.render_metrics(f);
  } else {
    r.body = co_await probes_.metrics->render_async(f);
  }
  co_await resp.send(std::move(r));
}

}  // namespace switchyard::admin
