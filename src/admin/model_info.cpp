#include "switchyard/admin/model_info.hpp"

#include "handlers.hpp"

#include "switchyard/spend/pricer.hpp"

#include <algorithm>
#include <iterator>
#include <map>
#include <optional>


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

// The price map the gateway bills with (null when it runs without one).
const spend::price_table* prices_of(const route_context& c) {
  return c.deps.pricer != nullptr ? &c.deps.pricer->table() : nullptr;
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

namespace {

bool is_local(const config::deployment& d) {
  return d.provider != nullptr && d.provider->local;
}

// What the price map knows of a deployment's model, in its own names (LiteLLM's
// get_model_info): the bounds, the prices (the deployment's own prices over the map's),
// the mode, the provider and the supports_* flags. Empty for a model the map does not
// know and the deployment does not price.
json priced_fields(const config::deployment& d, const spend::price_table& prices) {
  json out = json::object();
  const auto p = prices.for_deployment(d, is_local(d));
  if (!p) {
    return out;
  }
  const auto bound = [&out](const char* name, long long v) {
    if (v > 0) {
      out[name] = v;
    }
  };
  const auto cost = [&out](const char* name, const std::optional<double>& v) {
    if (v) {
      out[name] = *v;
    }
  };
  bound("max_tokens", p->max_tokens);
  bound("max_input_tokens", p->max_input_tokens);
  bound("max_output_tokens", p->max_output_tokens);
  cost("input_cost_per_token", p->input);
  cost("output_cost_per_token", p->output);
  cost("cache_read_input_token_cost", p->cache_read);
  cost("cache_creation_input_token_cost", p->cache_creation);
  cost("output_cost_per_reasoning_token", p->output_reasoning);
  cost("input_cost_per_token_above_200k_tokens", p->input_above_200k);
  cost("output_cost_per_token_above_200k_tokens", p->output_above_200k);
  cost("input_cost_per_second", p->input_per_second);
  cost("output_cost_per_second", p->output_per_second);
  if (!p->provider.empty()) {
    out["litellm_provider"] = p->provider;
  }
  if (!p->mode.empty()) {
    out["mode"] = p->mode;
  }
  for (const auto& [flag, on] : p->flags) {
    out[flag] = on;
  }
  return out;
}

// The deployment's model_info over what the price map says of its model.
json merged_info(const config::deployment& d, const spend::price_table* prices) {
  json info = prices != nullptr ? priced_fields(d, *prices) : json::object();
  if (d.model_info.is_object()) {
    for (const auto& [k, v] : d.model_info.items()) {
      info[k] = v;
    }
  }
  return info;
}

}  // namespace

json model_info_entry(const config::deployment& d, const spend::price_table* prices) {
  json params = redacted_params(d.litellm_params);
  json info = merged_info(d, prices);
  info["id"] = d.id;
  if (!info.contains("mode")) {
    info["mode"] = nullptr;
  }
  if (!info.contains("db_model")) {
    info["db_model"] = false;
  }
  return {{"model_name", d.model_name}, {"litellm_params", std::move(params)}, {"model_info", std::move(info)}};
}

json model_group_entry(const std::string& group, const std::vector<const config::deployment*>& deps,
                       const spend::price_table* prices) {
  json providers = json::array();
  std::optional<long long> max_in, max_out;
  std::optional<double> in_cost, out_cost;
  std::optional<double> tpm, rpm;
  std::string mode;
  // LiteLLM's ModelGroupInfo names these flags and defaults each to false.
  static constexpr const char* flag_names[] = {"supports_parallel_function_calling", "supports_vision",
                                               "supports_web_search",  "supports_url_context",
                                               "supports_reasoning",   "supports_function_calling"};
  bool flags[std::size(flag_names)] = {};
  const auto larger = [](auto& into, auto v) {
    if (!into || v > *into) {
      into = v;
    }
  };
  for (const auto* d : deps) {
    const std::string provider(d->provider->name);
    if (std::find(providers.begin(), providers.end(), provider) == providers.end()) {
      providers.push_back(provider);
    }
    const json info = merged_info(*d, prices);
    // The group's bounds and prices are those of its largest and dearest deployment.
    const auto number = [&info](const char* name) -> const json* {
      auto it = info.find(name);
      return it != info.end() && it->is_number() ? &*it : nullptr;
    };
    if (const json* v = number("max_input_tokens")) {
      larger(max_in, v->get<long long>());
    }
    if (const json* v = number("max_output_tokens")) {
      larger(max_out, v->get<long long>());
    }
    if (const json* v = number("input_cost_per_token")) {
      larger(in_cost, v->get<double>());
    }
    if (const json* v = number("output_cost_per_token")) {
      larger(out_cost, v->get<double>());
    }
    if (auto it = info.find("mode"); mode.empty() && it != info.end() && it->is_string()) {
      mode = it->get<std::string>();
    }
    // A group can take the sum of its deployments' rate limits.
    if (d->tpm) {
      tpm = tpm.value_or(0) + *d->tpm;
    }
    if (d->rpm) {
      rpm = rpm.value_or(0) + *d->rpm;
    }
    // A capability of one deployment is the group's: the router may send there.
    for (std::size_t i = 0; i < std::size(flag_names); ++i) {
      if (auto it = info.find(flag_names[i]); it != info.end() && it->is_boolean() && it->get<bool>()) {
        flags[i] = true;
      }
    }
  }
  const auto or_null = [](const auto& v) { return v ? json(*v) : json(nullptr); };
  json out = {{"model_group", group},
              {"providers", std::move(providers)},
              {"max_input_tokens", or_null(max_in)},
              {"max_output_tokens", or_null(max_out)},
              {"input_cost_per_token", or_null(in_cost)},
              {"output_cost_per_token", or_null(out_cost)},
              {"mode", mode.empty() ? std::string("chat") : mode},
              {"tpm", tpm ? json(static_cast<long long>(*tpm)) : json(nullptr)},
              {"rpm", rpm ? json(static_cast<long long>(*rpm)) : json(nullptr)}};
  for (std::size_t i = 0; i < std::size(flag_names); ++i) {
    out[flag_names[i]] = flags[i];
  }
  return out;
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
    data.push_back(model_info_entry(d, prices_of(c)));
  }
  const bool store_on = c.deps.models_changed && c.deps.model_secrets != nullptr;
  co_return ok(json{{"data", std::move(data)}, {"store_model_in_db", store_on}});
}

// GET /model_group/info[?model_group=]: one entry per model group the caller may use, in
// the config's order; a group named that the caller may not use (or that does not exist)
// gives an empty list, as LiteLLM's.
handler_result model_group_info(const route_context& c) {
  auto only = query_param(c.req.query, "model_group");
  std::vector<std::string> order;
  std::map<std::string, std::vector<const config::deployment*>, std::less<>> groups;
  for (const auto& d : c.deps.cfg->model_list) {
    if (only && !only->empty() && d.model_name != *only) {
      continue;
    }
    if (!auth::model_allowed(c.who, d.model_name, c.deps.auth.groups())) {
      continue;
    }
    auto& deps = groups[d.model_name];
    if (deps.empty()) {
      order.push_back(d.model_name);
    }
    deps.push_back(&d);
  }
  json data = json::array();
  for (const auto& name : order) {
    data.push_back(model_group_entry(name, groups[name], prices_of(c)));
  }
  co_return ok(json{{"data", std::move(data)}});
}

}  // namespace switchyard::admin
