#include "switchyard/store/postgres/model_repo.hpp"

#include <pqxx/pqxx>

namespace switchyard::store::postgres {

namespace {

constexpr const char* columns =
    "model_id, model_name, litellm_params::text AS lp, model_info::text AS mi, "
    "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS ca, created_by, "
    "to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS ua, updated_by";

model_row row_of(const pqxx::row& r) {
  model_row m;
  m.model_id = r["model_id"].as<std::string>();
  m.model_name = r["model_name"].as<std::string>();
  m.litellm_params_json = r["lp"].as<std::string>();
  m.model_info_json = r["mi"].as<std::string>();
  m.created_at = r["ca"].as<std::string>();
  m.created_by = r["created_by"].as<std::string>();
  m.updated_at = r["ua"].as<std::string>();
  m.updated_by = r["updated_by"].as<std::string>();
  return m;
}

// The row for audit_log: everything but litellm_params (credentials, even sealed, stay
// out of the audit trail).
constexpr const char* audit_json =
    "jsonb_build_object('model_id', model_id, 'model_name', model_name, 'model_info', model_info)::text AS audit";

}  // namespace

std::vector<model_row> list_models_blocking(pqxx::connection& c) {
  pqxx::read_transaction tx{c};
  std::vector<model_row> out;
  for (const auto& r : tx.exec(std::string("SELECT ") + columns + " FROM proxy_models ORDER BY model_id")) {
    out.push_back(row_of(r));
  }
  return out;
}

std::optional<model_row> get_model_blocking(pqxx::connection& c, const std::string& model_id) {
  pqxx::read_transaction tx{c};
  auto res = tx.exec_params(std::string("SELECT ") + columns + " FROM proxy_models WHERE model_id = $1", model_id);
  if (res.empty()) {
    return std::nullopt;
  }
  return row_of(res[0]);
}

std::optional<model_row> insert_model_blocking(pqxx::connection& c, const model_row& m, const change_actor& who) {
  pqxx::work tx{c};
  auto res = tx.exec_params(std::string("INSERT INTO proxy_models (model_id, model_name, litellm_params, model_info, "
                                        "created_by, updated_by) VALUES ($1, $2, $3::jsonb, $4::jsonb, $5, $5) "
                                        "ON CONFLICT (model_id) DO NOTHING RETURNING ") +
                                columns + ", " + audit_json,
                            m.model_id, m.model_name, m.litellm_params_json, m.model_info_json, who.changed_by);
  if (res.empty()) {
    return std::nullopt;
  }
  tx.exec_params(
      "INSERT INTO audit_log (changed_by, changed_by_api_key, action, table_name, object_id, before, after) "
      "VALUES ($1, $2, 'created', 'proxy_models', $3, NULL, $4::jsonb)",
      who.changed_by, who.changed_by_api_key, m.model_id, res[0]["audit"].as<std::string>());
  tx.commit();
  return row_of(res[0]);
}

std::optional<model_row> update_model_blocking(pqxx::connection& c, const model_row& m, const change_actor& who) {
  pqxx::work tx{c};
  auto before = tx.exec_params(std::string("SELECT ") + audit_json + " FROM proxy_models WHERE model_id = $1 FOR UPDATE",
                               m.model_id);
  if (before.empty()) {
    return std::nullopt;
  }
  auto res = tx.exec_params(std::string("UPDATE proxy_models SET model_name = $2, litellm_params = $3::jsonb, "
                                        "model_info = $4::jsonb, updated_at = now(), updated_by = $5 "
                                        "WHERE model_id = $1 RETURNING ") +
                                columns + ", " + audit_json,
                            m.model_id, m.model_name, m.litellm_params_json, m.model_info_json, who.changed_by);
  tx.exec_params(
      "INSERT INTO audit_log (changed_by, changed_by_api_key, action, table_name, object_id, before, after) "
      "VALUES ($1, $2, 'updated', 'proxy_models', $3, $4::jsonb, $5::jsonb)",
      who.changed_by, who.changed_by_api_key, m.model_id, before[0]["audit"].as<std::string>(),
      res[0]["audit"].as<std::string>());
  tx.commit();
  return row_of(res[0]);
}

bool delete_model_blocking(pqxx::connection& c, const std::string& model_id, const change_actor& who) {
  pqxx::work tx{c};
  auto res = tx.exec_params(std::string("DELETE FROM proxy_models WHERE model_id = $1 RETURNING ") + audit_json,
                            model_id);
  if (res.empty()) {
    return false;
  }
  tx.exec_params(
      "INSERT INTO audit_log (changed_by, changed_by_api_key, action, table_name, object_id, before, after) "
      "VALUES ($1, $2, 'deleted', 'proxy_models', $3, $4::jsonb, NULL)",
      who.changed_by, who.changed_by_api_key, model_id, res[0]["audit"].as<std::string>());
  tx.commit();
  return true;
}

}  // namespace switchyard::store::postgres
