#include "switchyard/store/postgres/key_repo.hpp"

#include "key_write.hpp"

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include <algorithm>
#include <stdexcept>
#include <string_view>

namespace switchyard::store::postgres {

const std::vector<std::string> key_patch_columns = {
    "key_name",        "key_alias",       "key_type",        "spend",
    "max_budget",      "soft_budget",     "expires",         "models",
    "aliases",         "config",          "permissions",     "metadata",
    "user_id",         "team_id",         "organization_id", "budget_id",
    "blocked",         "tpm_limit",       "rpm_limit",       "max_parallel_requests",
    "model_max_budget", "allowed_cache_controls", "allowed_routes", "budget_duration",
    "budget_reset_at", "auto_rotate",     "rotation_interval", "key_rotation_at",
    "created_by",      "spend_set_at",
};

namespace {

using json = nlohmann::json;

// Every read of a key row selects these two columns (row as JSON, expires in epoch ms).
constexpr const char* row_columns = "to_jsonb(t)::text, (extract(epoch FROM t.expires) * 1000)::bigint";

std::int64_t to_epoch_ms(sys_time t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}
sys_time from_epoch_ms(std::int64_t ms) { return sys_time{std::chrono::milliseconds{ms}}; }

std::string text_or_empty(const json& j, const char* name) {
  auto it = j.find(name);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}
std::optional<std::int64_t> int_or_null(const json& j, const char* name) {
  auto it = j.find(name);
  if (it == j.end() || !it->is_number()) {
    return std::nullopt;
  }
  return it->is_number_integer() ? it->get<std::int64_t>() : static_cast<std::int64_t>(it->get<double>());
}

// (row json, expires ms) -> key_record.
key_record key_from(const pqxx::row& r) {
  key_record k;
  k.row_json = r[0].as<std::string>();
  auto j = json::parse(k.row_json);
  k.token = text_or_empty(j, "token");
  k.key_name = text_or_empty(j, "key_name");
  k.key_alias = text_or_empty(j, "key_alias");
  k.user_id = text_or_empty(j, "user_id");
  k.team_id = text_or_empty(j, "team_id");
  k.organization_id = text_or_empty(j, "organization_id");
  if (auto it = j.find("spend"); it != j.end() && it->is_number()) {
    k.spend = it->get<double>();
  }
  if (auto it = j.find("max_budget"); it != j.end() && it->is_number()) {
    k.max_budget = it->get<double>();
  }
  if (!r[1].is_null()) {
    k.expires = from_epoch_ms(r[1].as<std::int64_t>());
  }
  if (auto it = j.find("models"); it != j.end() && it->is_array()) {
    for (const auto& m : *it) {
      if (m.is_string()) {
        k.models.push_back(m.get<std::string>());
      }
    }
  }
  if (auto it = j.find("blocked"); it != j.end() && it->is_boolean()) {
    k.blocked = it->get<bool>();
  }
  k.tpm_limit = int_or_null(j, "tpm_limit");
  k.rpm_limit = int_or_null(j, "rpm_limit");
  k.max_parallel_requests = int_or_null(j, "max_parallel_requests");
  k.rotation_count = static_cast<int>(int_or_null(j, "rotation_count").value_or(0));
  return k;
}

std::string json_array_text(const std::vector<std::string>& v) { return json(v).dump(); }

// The patch restricted to key_patch_columns. Throws std::invalid_argument for non-objects.
json filtered_patch(const std::string& patch_json) {
  json in = patch_json.empty() ? json::object() : json::parse(patch_json);
  if (!in.is_object()) {
    throw std::invalid_argument("key patch must be a JSON object");
  }
  json out = json::object();
  for (const auto& col : key_patch_columns) {
    if (auto it = in.find(col); it != in.end()) {
      out[col] = *it;
    }
  }
  if (auto tags = in.find("metadata_tags"); tags != in.end()) {
    if (auto md = out.find("metadata"); md != out.end() && md->is_object()) {
      (*md)["tags"] = *tags;  // a new metadata replaces the stored one: the tags go into it
    } else {
      out["metadata_tags"] = *tags;  // apply_patch merges them into the stored metadata
    }
  }
  // Members to merge into the metadata (the per-model limits given as fields of their own).
  if (auto merge = in.find("metadata_merge"); merge != in.end() && merge->is_object()) {
    if (auto md = out.find("metadata"); md != out.end() && md->is_object()) {
      md->update(*merge);
    } else {
      out["metadata_merge"] = *merge;  // apply_patch merges them into the stored metadata
    }
  }
  return out;
}

std::optional<key_record> select_key(pqxx::transaction_base& tx, const std::string& token, bool for_update) {
  auto res = tx.exec_params(std::string("SELECT ") + row_columns + " FROM verification_tokens t WHERE t.token = $1" +
                                (for_update ? " FOR UPDATE" : ""),
                            token);
  if (res.empty()) {
    return std::nullopt;
  }
  return key_from(res[0]);
}

// Applies the filtered patch to the row `token` (which must exist); returns the new row.
key_record apply_patch(pqxx::transaction_base& tx, const std::string& token, const json& patch,
                       const change_actor& who) {
  std::string cols;
  for (const auto& [col, value] : patch.items()) {
    (void)value;
    if (col != "metadata_tags" && col != "metadata_merge") {
      cols += (cols.empty() ? "" : ", ") + tx.quote_name(col);
    }
  }
  // $2 is always used (Postgres must infer its type), so an empty patch sets nothing from it.
  std::string sql = "UPDATE verification_tokens t SET ";
  if (!cols.empty()) {
    sql += "(" + cols + ") = (SELECT " + cols + " FROM jsonb_populate_record(t, $2::jsonb)), ";
  }
  if (patch.contains("metadata_tags") || patch.contains("metadata_merge")) {
    // metadata.tags replaced and the members of metadata_merge set, the other members of
    // the stored metadata kept (one assignment: a column is set once per statement).
    std::string md = "COALESCE(t.metadata, '{}'::jsonb)";
    if (patch.contains("metadata_merge")) {
      md = "(" + md + " || ($2::jsonb -> 'metadata_merge'))";
    }
    if (patch.contains("metadata_tags")) {
      md = "jsonb_set(" + md + ", '{tags}', $2::jsonb -> 'metadata_tags')";
    }
    sql += "metadata = " + md + ", ";
  }
  sql += "updated_at = now(), updated_by = $3 WHERE t.token = $1 AND $2::jsonb IS NOT NULL RETURNING " +
         std::string(row_columns);
  auto res = tx.exec_params(sql, token, patch.dump(), who.changed_by);
  if (res.empty()) {
    throw std::logic_error("key_repo: patched key vanished: " + token);
  }
  return key_from(res[0]);
}

// apply_patch; empty when the patch's budget_id names no budget: the key's foreign key
// (migration 0014) refuses it, e.g. a budget deleted after the caller checked that it
// exists. The transaction is aborted then: the caller returns without committing.
std::optional<key_record> apply_patch_or_no_budget(pqxx::transaction_base& tx, const std::string& token,
                                                   const json& patch, const change_actor& who) {
  try {
    return apply_patch(tx, token, patch, who);
  } catch (const pqxx::foreign_key_violation& e) {
    if (std::string_view(e.what()).find("verification_tokens_budget_id_fkey") == std::string_view::npos) {
      throw;
    }
    return std::nullopt;
  }
}

key_write_result no_budget() {
  key_write_result r;
  r.budget_missing = true;
  return r;
}

const char* opt_c_str(const std::optional<std::string>& s) { return s ? s->c_str() : nullptr; }

// Whether the patch sets a key_alias that a key other than `self` has. First takes a
// transaction-scoped advisory lock on the alias: a second write of the same alias waits
// until this transaction ends, then sees its row (each statement of a READ COMMITTED
// transaction reads what was committed before it). Lock order: a key's row, then the alias.
bool alias_taken(pqxx::transaction_base& tx, const json& patch, const std::string& self) {
  auto a = patch.find("key_alias");
  if (a == patch.end() || !a->is_string()) {
    return false;
  }
  const auto& alias = a->get_ref<const std::string&>();
  tx.exec_params("SELECT pg_advisory_xact_lock(hashtextextended('switchyard.key_alias:' || $1, 0))", alias);
  return tx
      .exec_params1("SELECT EXISTS (SELECT 1 FROM verification_tokens WHERE key_alias = $1 AND token <> $2)", alias,
                    self)[0]
      .as<bool>();
}

// Whether `token` may not become a key's: it is a key's, or the old value of a regenerated
// key still in its grace period (it authenticates as that key until revoke_at; a new key
// with the same value would take it over). First takes a transaction-scoped advisory lock
// on each value this write claims (in a fixed order: no deadlock between two writes), so
// that a concurrent insert or regenerate claiming one of them waits until this
// transaction ends and then sees what it wrote.
bool token_taken(pqxx::transaction_base& tx, const std::string& token, std::vector<std::string> claimed) {
  std::sort(claimed.begin(), claimed.end());
  for (const auto& t : claimed) {
    tx.exec_params("SELECT pg_advisory_xact_lock(hashtextextended('switchyard.key_token:' || $1, 0))", t);
  }
  return tx
      .exec_params1("SELECT EXISTS (SELECT 1 FROM verification_tokens WHERE token = $1)"
                    " OR EXISTS (SELECT 1 FROM deprecated_verification_tokens WHERE token = $1 AND revoke_at > now())",
                    token)[0]
      .as<bool>();
}

void audit(pqxx::transaction_base& tx, const audit_entry& e) {
  tx.exec_params(
      "INSERT INTO audit_log (changed_by, changed_by_api_key, action, table_name, object_id, before, after) "
      "VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb)",
      e.actor.changed_by, e.actor.changed_by_api_key, e.action, e.table_name, e.object_id, opt_c_str(e.before_json),
      opt_c_str(e.after_json));
}

}  // namespace

std::optional<key_record> find_key_by_hash_blocking(pqxx::connection& c, const std::string& token) {
  pqxx::read_transaction tx{c};
  // The key (or the key a deprecated hash points to in its grace period) with its owners,
  // in one round trip: the auth hot path caches all of it.
  auto res = tx.exec_params(
      "WITH k AS ("
      "  SELECT t, NULL::timestamptz AS revoke_at, 0 AS pref FROM verification_tokens t WHERE t.token = $1"
      "  UNION ALL"
      "  SELECT t, d.revoke_at, 1 FROM deprecated_verification_tokens d"
      "  JOIN verification_tokens t ON t.token = d.active_token_id WHERE d.token = $1 AND d.revoke_at > now())"
      " SELECT to_jsonb(k.t)::text, (extract(epoch FROM (k.t).expires) * 1000)::bigint,"
      "  (extract(epoch FROM k.revoke_at) * 1000)::bigint,"
      "  to_jsonb(tm)::text, to_jsonb(u)::text, to_jsonb(o)::text, to_jsonb(kb)::text, to_jsonb(ob)::text,"
      "  to_jsonb(m)::text, to_jsonb(mb)::text"
      " FROM k LEFT JOIN teams tm ON tm.team_id = (k.t).team_id"
      " LEFT JOIN users u ON u.user_id = (k.t).user_id"
      " LEFT JOIN organizations o ON o.organization_id = COALESCE((k.t).organization_id, tm.organization_id)"
      " LEFT JOIN budgets kb ON kb.budget_id = (k.t).budget_id"
      " LEFT JOIN budgets ob ON ob.budget_id = o.budget_id"
      " LEFT JOIN team_memberships m ON m.user_id = (k.t).user_id AND m.team_id = (k.t).team_id"
      // The membership's own budget (max_budget_in_team), else the team's default for its
      // members (team_member_budget: a budgets row the team's metadata names), as LiteLLM.
      " LEFT JOIN budgets mb ON m.user_id IS NOT NULL"
      "  AND mb.budget_id = COALESCE(m.budget_id, tm.metadata ->> 'team_member_budget_id')"
      " ORDER BY k.pref LIMIT 1",
      token);
  if (res.empty()) {
    return std::nullopt;
  }
  const auto& row = res[0];
  auto k = key_from(row);
  if (!row[2].is_null()) {
    k.via_deprecated_token = token;
    k.deprecated_revoke_at = from_epoch_ms(row[2].as<std::int64_t>());
  }
  if (!row[3].is_null()) {
    k.team_json = row[3].as<std::string>();
  }
  if (!row[4].is_null()) {
    k.user_json = row[4].as<std::string>();
  }
  if (!row[5].is_null()) {
    k.org_json = row[5].as<std::string>();
  }
  if (!row[6].is_null()) {
    k.key_budget_json = row[6].as<std::string>();
  }
  if (!row[7].is_null()) {
    k.org_budget_json = row[7].as<std::string>();
  }
  if (!row[8].is_null()) {
    k.membership_json = row[8].as<std::string>();
  }
  if (!row[9].is_null()) {
    k.membership_budget_json = row[9].as<std::string>();
  }
  return k;
}

key_record find_owners_blocking(pqxx::connection& c, const std::string& user_id, const std::string& team_id) {
  pqxx::read_transaction tx{c};
  auto res = tx.exec_params(
      "SELECT to_jsonb(tm)::text, to_jsonb(u)::text, to_jsonb(o)::text, to_jsonb(ob)::text,"
      " to_jsonb(m)::text, to_jsonb(mb)::text"
      " FROM (SELECT 1) one"
      " LEFT JOIN teams tm ON tm.team_id = $2"
      " LEFT JOIN users u ON u.user_id = $1"
      " LEFT JOIN organizations o ON o.organization_id = tm.organization_id"
      " LEFT JOIN budgets ob ON ob.budget_id = o.budget_id"
      " LEFT JOIN team_memberships m ON m.user_id = $1 AND m.team_id = $2"
      " LEFT JOIN budgets mb ON m.user_id IS NOT NULL"
      "  AND mb.budget_id = COALESCE(m.budget_id, tm.metadata ->> 'team_member_budget_id')",
      user_id, team_id);
  key_record k;
  k.user_id = user_id;
  k.team_id = team_id;
  k.row_json = "{}";
  const auto& row = res[0];
  auto opt = [&row](int i) { return row[i].is_null() ? std::optional<std::string>() : row[i].as<std::string>(); };
  k.team_json = opt(0);
  k.user_json = opt(1);
  k.org_json = opt(2);
  k.org_budget_json = opt(3);
  k.membership_json = opt(4);
  k.membership_budget_json = opt(5);
  return k;
}

key_write_result insert_key_in(pqxx::transaction_base& tx, const std::string& token, const std::string& patch_json,
                               const change_actor& who) {
  auto patch = filtered_patch(patch_json);
  if (alias_taken(tx, patch, token)) {
    return {std::nullopt, false, true};
  }
  if (token_taken(tx, token, {token})) {
    return {std::nullopt, true, false};
  }
  auto res = tx.exec_params(
      "INSERT INTO verification_tokens (token, created_by, updated_by) VALUES ($1, $2, $2) "
      "ON CONFLICT (token) DO NOTHING RETURNING token",
      token, who.changed_by);
  if (res.empty()) {
    return {std::nullopt, true, false};
  }
  auto k = apply_patch_or_no_budget(tx, token, patch, who);
  if (!k) {
    return no_budget();
  }
  audit(tx, {who, "created", "verification_tokens", token, std::nullopt, k->row_json});
  return {std::move(k)};
}

key_write_result insert_key_blocking(pqxx::connection& c, const std::string& token, const std::string& patch_json,
                                     const change_actor& who) {
  pqxx::work tx{c};
  auto r = insert_key_in(tx, token, patch_json, who);
  if (r.key) {
    tx.commit();
  }
  return r;
}

key_write_result update_key_blocking(pqxx::connection& c, const std::string& token, const std::string& patch_json,
                                     const change_actor& who, const std::string& action) {
  auto patch = filtered_patch(patch_json);
  pqxx::work tx{c};
  auto before = select_key(tx, token, true);
  if (!before) {
    return {};
  }
  // Keeping the key's own alias is no conflict, even where an older duplicate exists.
  const bool same_alias = patch.contains("key_alias") && patch["key_alias"].is_string() &&
                          patch["key_alias"] == before->key_alias && !before->key_alias.empty();
  if (!same_alias && alias_taken(tx, patch, token)) {
    return {std::nullopt, false, true};
  }
  auto k = apply_patch_or_no_budget(tx, token, patch, who);
  if (!k) {
    return no_budget();
  }
  audit(tx, {who, action, "verification_tokens", token, before->row_json, k->row_json});
  tx.commit();
  return {std::move(k)};
}

std::optional<key_record> set_key_blocked_blocking(pqxx::connection& c, const std::string& token, bool blocked,
                                                   const change_actor& who) {
  json patch = {{"blocked", blocked}};
  return update_key_blocking(c, token, patch.dump(), who, blocked ? "blocked" : "unblocked").key;
}

std::vector<std::string> delete_keys_blocking(pqxx::connection& c, const std::vector<std::string>& tokens,
                                              const std::vector<std::string>& aliases, const change_actor& who) {
  pqxx::work tx{c};
  auto res = tx.exec_params(
      "WITH d AS ("
      "  DELETE FROM verification_tokens t"
      "  WHERE t.token IN (SELECT jsonb_array_elements_text($1::jsonb))"
      "     OR t.key_alias IN (SELECT jsonb_array_elements_text($2::jsonb))"
      "  RETURNING t.*),"
      " archived AS ("
      "  INSERT INTO deleted_verification_tokens"
      "    (token, row_data, deleted_by, deleted_by_api_key, litellm_changed_by)"
      "  SELECT d.token, to_jsonb(d), $3, $4, $3 FROM d),"
      " audited AS ("
      "  INSERT INTO audit_log (changed_by, changed_by_api_key, action, table_name, object_id, before)"
      "  SELECT $3, $4, 'deleted', 'verification_tokens', d.token, to_jsonb(d) FROM d),"
      " grace AS ("
      "  DELETE FROM deprecated_verification_tokens WHERE active_token_id IN (SELECT token FROM d))"
      " SELECT token FROM d ORDER BY token",
      json_array_text(tokens), json_array_text(aliases), who.changed_by, who.changed_by_api_key);
  std::vector<std::string> out;
  out.reserve(res.size());
  for (const auto& row : res) {
    out.push_back(row[0].as<std::string>());
  }
  tx.commit();
  return out;
}

key_write_result regenerate_key_blocking(pqxx::connection& c, const std::string& old_token,
                                                  const std::string& new_token, const std::string& new_key_name,
                                                  const std::optional<sys_time>& grace_until,
                                                  const std::string& patch_json, const change_actor& who) {
  auto patch = filtered_patch(patch_json);
  patch.erase("key_name");
  pqxx::work tx{c};
  auto before = select_key(tx, old_token, true);
  if (!before) {
    return {};
  }
  const bool same_alias = patch.contains("key_alias") && patch["key_alias"].is_string() &&
                          patch["key_alias"] == before->key_alias && !before->key_alias.empty();
  if (!same_alias && alias_taken(tx, patch, old_token)) {
    return {std::nullopt, false, true};
  }
  // The old value is claimed too: it may become a deprecated value in its grace period.
  if (token_taken(tx, new_token, {old_token, new_token})) {
    return {std::nullopt, true, false};
  }
  try {
    tx.exec_params(
        "UPDATE verification_tokens SET token = $2, key_name = $3, rotation_count = rotation_count + 1, "
        "last_rotation_at = now() WHERE token = $1",
        old_token, new_token, new_key_name);
  } catch (const pqxx::unique_violation&) {
    // The new value is another key's (the primary key refuses it, also when that key was
    // made a moment ago): the caller's mistake, not a database failure. The transaction
    // is rolled back as it goes out of scope.
    return {std::nullopt, true, false};
  }
  auto patched = apply_patch_or_no_budget(tx, new_token, patch, who);
  if (!patched) {
    return no_budget();
  }
  auto& k = *patched;
  tx.exec_params("UPDATE deprecated_verification_tokens SET active_token_id = $2 WHERE active_token_id = $1",
                 old_token, new_token);
  if (grace_until) {
    tx.exec_params(
        "INSERT INTO deprecated_verification_tokens (token, active_token_id, revoke_at) "
        "VALUES ($1, $2, to_timestamp($3::bigint / 1000.0)) "
        "ON CONFLICT (token) DO UPDATE SET active_token_id = EXCLUDED.active_token_id, revoke_at = EXCLUDED.revoke_at",
        old_token, new_token, to_epoch_ms(*grace_until));
  }
  audit(tx, {who, "regenerated", "verification_tokens", new_token, before->row_json, k.row_json});
  tx.commit();
  return {std::move(k)};
}

std::vector<key_record> find_keys_by_hashes_blocking(pqxx::connection& c, const std::vector<std::string>& tokens) {
  pqxx::read_transaction tx{c};
  auto res = tx.exec_params(
      std::string("SELECT ") + row_columns +
          " FROM (SELECT DISTINCT ON (k.token) k.token, w.n"
          "       FROM jsonb_array_elements_text($1::jsonb) WITH ORDINALITY AS w(tok, n)"
          "       JOIN verification_tokens k ON k.token = COALESCE("
          "         (SELECT d.active_token_id FROM deprecated_verification_tokens d"
          "          WHERE d.token = w.tok AND d.revoke_at > now()), w.tok)"
          "       ORDER BY k.token, w.n) f"
          " JOIN verification_tokens t ON t.token = f.token ORDER BY f.n",
      json_array_text(tokens));
  std::vector<key_record> out;
  out.reserve(res.size());
  for (const auto& row : res) {
    out.push_back(key_from(row));
  }
  return out;
}

key_page list_keys_blocking(pqxx::connection& c, const key_list_query& q) {
  int size = std::clamp(q.size, 1, 100);
  int page = std::max(q.page, 1);
  pqxx::read_transaction tx{c};
  std::string where =
      " WHERE ($1::text IS NULL OR t.user_id = $1) AND ($2::text IS NULL OR t.team_id = $2)"
      " AND ($3::text IS NULL OR t.organization_id = $3) AND ($4::text IS NULL OR t.key_alias = $4)";
  key_page out;
  out.total_count = tx.exec_params1("SELECT count(*) FROM verification_tokens t" + where, opt_c_str(q.user_id),
                                    opt_c_str(q.team_id), opt_c_str(q.organization_id), opt_c_str(q.key_alias))[0]
                        .as<std::int64_t>();
  auto res = tx.exec_params(std::string("SELECT ") + row_columns + " FROM verification_tokens t" + where +
                                " ORDER BY t.created_at, t.token LIMIT $5 OFFSET $6",
                            opt_c_str(q.user_id), opt_c_str(q.team_id), opt_c_str(q.organization_id),
                            opt_c_str(q.key_alias), size, static_cast<std::int64_t>(page - 1) * size);
  for (const auto& row : res) {
    out.keys.push_back(key_from(row));
  }
  return out;
}

void insert_audit_blocking(pqxx::connection& c, const audit_entry& e) {
  pqxx::work tx{c};
  audit(tx, e);
  tx.commit();
}

std::vector<std::pair<std::string, std::string>> audit_for_blocking(pqxx::connection& c,
                                                                    const std::string& table_name,
                                                                    const std::string& object_id) {
  pqxx::read_transaction tx{c};
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& row : tx.exec_params(
           "SELECT action, changed_by FROM audit_log WHERE table_name = $1 AND object_id = $2 ORDER BY id",
           table_name, object_id)) {
    out.emplace_back(row[0].as<std::string>(), row[1].as<std::string>());
  }
  return out;
}

}  // namespace switchyard::store::postgres
