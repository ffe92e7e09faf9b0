// Models in the database (general_settings.store_model_in_db; docs/configuration.md,
// "Models in the database"): how a stored row's litellm_params are sealed and opened
// (credentials encrypted with core::secret_box, os.environ/ references kept as written),
// and a row as the config loader takes it. The routes (/model/new, /model/update,
// /model/delete) are in the route table; the sync that applies the rows is app/'s.
// Thread: any. Never blocks.
#pragma once
#include "switchyard/config/config.hpp"
#include "switchyard/core/error.hpp"
#include "switchyard/core/secret_box.hpp"
#include "switchyard/store/postgres/model_repo.hpp"

#include <nlohmann/json.hpp>

namespace switchyard::admin {

// The passphrase of the stored credentials: LITELLM_SALT_KEY when set (as LiteLLM), else
// the master key.
std::string model_secret_passphrase(const std::string& master_key);

// Seals the credentials of `litellm_params`: string values of config::is_secret_param keys
// and the values of header maps. os.environ/ references and values already sealed stay.
nlohmann::json seal_params(const nlohmann::json& litellm_params, const core::secret_box& box);
// The reverse. Error (500, naming the key, never its value): a sealed value that does not
// open (another LITELLM_SALT_KEY / master key, or an altered row).
core::result<nlohmann::json> open_params(const nlohmann::json& litellm_params, const core::secret_box& box);

// A stored row as the loader takes it (credentials opened); error as open_params, or
// JSON that is not an object.
core::result<config::db_model> db_model_of(const store::postgres::model_row& row, const core::secret_box& box);

}  // namespace switchyard::admin
