// What GET /model/info (and /v1/model/info) shows of one deployment of the config.
// Thread: any. Never blocks.
#pragma once
#include "switchyard/config/config.hpp"

#include <nlohmann/json.hpp>

namespace switchyard::admin {

// The /model/info entry of one deployment: model_name, litellm_params without secrets
// (api_key and other credentials), model_info with `id` (and the deployment's mode, ...).
nlohmann::json model_info_entry(const config::deployment& d);
// litellm_params as the management API shows them: credentials (config::is_secret_param)
// left out, header values replaced by "<redacted>".
nlohmann::json redacted_params(const nlohmann::json& litellm_params);

}  // namespace switchyard::admin
