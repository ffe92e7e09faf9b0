// What GET /model/info (and /v1/model/info) shows of one deployment of the config.
// Thread: any. Never blocks.
#pragma once
#include "switchyard/config/config.hpp"
#include "switchyard/spend/prices.hpp"

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace switchyard::admin {

// The /model/info entry of one deployment: model_name, litellm_params without secrets
// (api_key and other credentials), model_info with `id`: what the price map says of the
// deployment's model (bounds, prices, mode, provider, supports_* flags; LiteLLM's
// get_model_info), the deployment's own model_info over it. `prices` null: the config's
// model_info alone.
nlohmann::json model_info_entry(const config::deployment& d, const spend::price_table* prices);

// GET /model_group/info's entry for one model group (its deployments, in config order):
// LiteLLM's ModelGroupInfo. See docs/virtual-keys.md.
nlohmann::json model_group_entry(const std::string& group, const std::vector<const config::deployment*>& deps,
                                 const spend::price_table* prices);
// litellm_params as the management API shows them: credentials (config::is_secret_param)
// left out, header values replaced by "<redacted>".
nlohmann::json redacted_params(const nlohmann::json& litellm_params);

}  // namespace switchyard::admin
