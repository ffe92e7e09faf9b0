#include "switchyard/admin/model_info.hpp"

#include "handlers.hpp"


namespace switchyard::admin {

namespace {

json redacted_headers(const json& v) {
  if (!v.is_object()) {
    return "<redacted>";
  }
  json out = json::object();
  for (const auto& [name, value] : v.items()) {
    (void)value;
    out[name] = "<redacted>";
  }
  return out;
}

}  // namespace

// Secrets never leave the management API: credentials are left out, header values
// (often credentials) replaced.
json redacted_params(const json& litellm_params) {
  json params = json::object();
  if (litellm_params.is_object()) {
    for (const auto& [k, v] : litellm_params.items()) {
      if (config::is_header_param(k)) {
        params[k] = redacted_headers(v);
      } else if (!config::is_secret_param(k)) {
        params[k] = v;
      }
    }
  }
  return params;
}

json model_info_entry(const config::deployment& d) {
  json params = redacted_params(d.litellm_params);
  json info = d.model_info.is_object() ? d.model_info : json::object();
  info["id"] = d.id;
  if (!info.contains("mode")) {
    info["mode"] = nullptr;
  }
  if (!info.contains("db_model")) {
    info["db_model"] = false;
  }
  return {{"model_name", d.model_name}, {"litellm_params", std::move(params)}, {"model_info", std::move(info)}};
}

// GET /model/info[?litellm_model_id=]: the deployments of the models the caller may use,
// and whether /model/new, /model/update and /model/delete work here (`store_model_in_db`,
// general_settings' name for it): the admin UI offers to edit models only then.
handler_result model_info(const route_context& c) {
  auto only = query_param(c.req.query, "litellm_model_id");
  json data = json::array();
  for (const auto& d : c.deps.cfg->model_list) {
    if (only && !only->empty() && d.id != *only) {
      continue;
    }
    if (!auth::model_allowed(c.who, d.model_name, c.deps.auth.groups())) {
      continue;
    }
    data.push_back(model_info_entry(d));
  }
  const bool store_on = c.deps.models_changed && c.deps.model_secrets != nullptr;
  co_return ok(json{{"data", std::move(data)}, {"store_model_in_db", store_on}});
}

}  // namespace switchyard::admin
