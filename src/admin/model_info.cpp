#include "switchyard/admin/model_info.hpp"

#include "handlers.hpp"

#include <set>

namespace switchyard::admin {

namespace {

// Secrets never leave /model/info.
bool secret_param(const std::string& k) {
  static const std::set<std::string> names = {"api_key",        "aws_secret_access_key", "aws_access_key_id",
                                              "aws_session_token", "vertex_credentials", "azure_ad_token",
                                              "client_secret",  "password"};
  return names.contains(k) || k.ends_with("_api_key") || k.ends_with("_secret") || k.ends_with("_token");
}

// Headers sent upstream (`headers`, `extra_headers`) often carry credentials: their
// names are shown, their values never.
bool header_param(const std::string& k) { return k == "headers" || k == "extra_headers"; }

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

json model_info_entry(const config::deployment& d) {
  json params = json::object();
  if (d.litellm_params.is_object()) {
    for (const auto& [k, v] : d.litellm_params.items()) {
      if (header_param(k)) {
        params[k] = redacted_headers(v);
      } else if (!secret_param(k)) {
        params[k] = v;
      }
    }
  }
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

// GET /model/info[?litellm_model_id=]: the deployments of the models the caller may use.
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
  co_return ok(json{{"data", std::move(data)}});
}

}  // namespace switchyard::admin
