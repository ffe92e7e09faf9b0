// model_repo: the deployments kept in Postgres (migrations/0009_proxy_models.sql), written
// by /model/new, /model/update, /model/delete and read by every instance's model sync.
// JSON travels as text; the caller seals credentials before writing.
//
// Owner: none (free functions). Thread: a db thread only, via db_executor::run.
// Blocking: every *_blocking function runs SQL. No pqxx types leak.
#pragma once
#include "switchyard/store/postgres/key_repo.hpp"
#include "switchyard/store/postgres/pqxx_fwd.hpp"

#include <optional>
#include <string>
#include <vector>

namespace switchyard::store::postgres {

struct model_row {
  std::string model_id;
  std::string model_name;
  std::string litellm_params_json;
  std::string model_info_json;
  std::string created_at, updated_at;  // ISO-8601 UTC
  std::string created_by, updated_by;
};

// Every stored model, by model_id.
std::vector<model_row> list_models_blocking(pqxx::connection& c);
std::optional<model_row> get_model_blocking(pqxx::connection& c, const std::string& model_id);
// Inserts (with an audit_log row "created"); empty optional when the id is taken.
std::optional<model_row> insert_model_blocking(pqxx::connection& c, const model_row& m, const change_actor& who);
// Replaces model_name, litellm_params and model_info (updated_at/by set, audit "updated");
// empty optional when there is no such model.
std::optional<model_row> update_model_blocking(pqxx::connection& c, const model_row& m, const change_actor& who);
// Deletes (audit "deleted" with the row before); false when there is no such model.
bool delete_model_blocking(pqxx::connection& c, const std::string& model_id, const change_actor& who);

}  // namespace switchyard::store::postgres
