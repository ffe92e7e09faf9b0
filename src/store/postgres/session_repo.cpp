#include "switchyard/store/postgres/session_repo.hpp"

#include <pqxx/pqxx>

namespace switchyard::store::postgres {

namespace {

std::string text_or_empty(const pqxx::field& f) { return f.is_null() ? std::string() : f.as<std::string>(); }

ui_user user_of(const pqxx::row& r) {
  ui_user u;
  u.user_id = r["user_id"].as<std::string>();
  u.user_role = r["user_role"].as<std::string>();
  u.organization_id = text_or_empty(r["organization_id"]);
  u.email = text_or_empty(r["user_email"]);
  return u;
}

constexpr const char* user_columns = "user_id, user_role, organization_id, user_email";

}  // namespace

void insert_login_blocking(pqxx::connection& c, const std::string& state, const pending_login& l,
                           std::chrono::seconds max_age) {
  pqxx::work tx{c};
  tx.exec_params("DELETE FROM sso_logins WHERE created_at < now() - make_interval(secs => $1)",
                 static_cast<double>(max_age.count()));
  tx.exec_params("INSERT INTO sso_logins (state, code_verifier, nonce, provider) VALUES ($1, $2, $3, $4)", state,
                 l.code_verifier, l.nonce, l.provider);
  tx.commit();
}

std::optional<pending_login> take_login_blocking(pqxx::connection& c, const std::string& state,
                                                 std::chrono::seconds max_age) {
  pqxx::work tx{c};
  auto res = tx.exec_params(
      "DELETE FROM sso_logins WHERE state = $1 RETURNING code_verifier, nonce, provider, "
      "created_at >= now() - make_interval(secs => $2) AS fresh",
      state, static_cast<double>(max_age.count()));
  tx.commit();
  if (res.empty() || !res[0]["fresh"].as<bool>()) {
    return std::nullopt;
  }
  return pending_login{res[0]["code_verifier"].as<std::string>(), res[0]["nonce"].as<std::string>(),
                       res[0]["provider"].as<std::string>()};
}

ui_user upsert_sso_user_blocking(pqxx::connection& c, const sso_identity& who) {
  pqxx::work tx{c};
  const std::string cols = user_columns;
  auto found = tx.exec_params("SELECT " + cols + " FROM users WHERE sso_user_id = $1", who.sso_user_id);
  if (found.empty()) {
    found = tx.exec_params("SELECT " + cols + " FROM users WHERE user_id = $1", who.user_id);
  }
  if (found.empty() && !who.email.empty()) {
    found = tx.exec_params("SELECT " + cols + " FROM users WHERE lower(user_email) = lower($1) ORDER BY created_at LIMIT 1",
                           who.email);
  }
  ui_user u;
  if (found.empty()) {
    const std::string role = who.make_admin ? "proxy_admin" : !who.role_claim.empty() ? who.role_claim : who.new_user_role;
    // default_internal_user_params: the columns LiteLLM applies to users it creates.
    auto row = tx.exec_params1(
        "WITH d AS (SELECT $6::jsonb AS j) "
        "INSERT INTO users (user_id, user_email, sso_user_id, user_alias, user_role, max_budget, budget_duration, "
        "models, tpm_limit, rpm_limit, metadata) "
        "SELECT $1, nullif($2, ''), $3, nullif($4, ''), $5, (j->>'max_budget')::double precision, "
        "j->>'budget_duration', coalesce(ARRAY(SELECT jsonb_array_elements_text(coalesce(j->'models', '[]'))), '{}'), "
        "(j->>'tpm_limit')::bigint, (j->>'rpm_limit')::bigint, jsonb_build_object('created_by', 'sso') FROM d "
        "RETURNING " + cols + ", to_jsonb(users)::text AS after",
        who.user_id, who.email, who.sso_user_id, who.display_name, role, who.new_user_defaults_json);
    tx.exec_params(
        "INSERT INTO audit_log (changed_by, changed_by_api_key, action, table_name, object_id, before, after) "
        "VALUES ('sso', '', 'created', 'users', $1, NULL, $2::jsonb)",
        who.user_id, row["after"].as<std::string>());
    u = user_of(row);
    u.created = true;
  } else {
    u = user_of(found[0]);
    std::string role = who.make_admin ? "proxy_admin" : who.role_claim;
    // The row as it is now, locked: the role it had is compared with the one written.
    auto before = tx.exec_params("SELECT user_role, to_jsonb(users)::text AS before FROM users WHERE user_id = $1 "
                                 "FOR UPDATE",
                                 u.user_id);
    auto updated = tx.exec_params(
        "UPDATE users SET sso_user_id = coalesce(sso_user_id, $2), "
        "user_email = coalesce(user_email, nullif($3, '')), "
        "user_role = CASE WHEN $4 = '' THEN user_role ELSE $4 END, updated_at = now() "
        "WHERE user_id = $1 RETURNING " + cols + ", to_jsonb(users)::text AS after",
        u.user_id, who.sso_user_id, who.email, role);
    if (!updated.empty()) {
      u = user_of(updated[0]);
      if (!before.empty() && before[0]["user_role"].as<std::string>() != u.user_role) {
        u.role_changed = true;
        tx.exec_params(
            "INSERT INTO audit_log (changed_by, changed_by_api_key, action, table_name, object_id, before, after) "
            "VALUES ('sso', '', 'updated', 'users', $1, $2::jsonb, $3::jsonb)",
            u.user_id, before[0]["before"].as<std::string>(), updated[0]["after"].as<std::string>());
      }
    }
  }
  tx.commit();
  return u;
}

ui_user ensure_admin_user_blocking(pqxx::connection& c, const std::string& user_id) {
  pqxx::work tx{c};
  tx.exec_params(
      "INSERT INTO users (user_id, user_role, metadata) VALUES ($1, 'proxy_admin', '{\"created_by\":\"ui_login\"}') "
      "ON CONFLICT (user_id) DO NOTHING",
      user_id);
  auto row = tx.exec_params1(std::string("SELECT ") + user_columns + " FROM users WHERE user_id = $1", user_id);
  tx.commit();
  return user_of(row);
}

void create_session_blocking(pqxx::connection& c, const std::string& session_hash, const std::string& user_id,
                             const std::string& csrf_token, const std::string& provider, std::chrono::seconds ttl) {
  pqxx::work tx{c};
  tx.exec_params(
      "INSERT INTO ui_sessions (session_hash, user_id, csrf_token, provider, expires_at) "
      "VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))",
      session_hash, user_id, csrf_token, provider, static_cast<double>(ttl.count()));
  // Old sessions go away with time: ended or expired for a day.
  tx.exec("DELETE FROM ui_sessions WHERE coalesce(ended_at, expires_at) < now() - interval '1 day'");
  tx.commit();
}

std::optional<session_row> session_blocking(pqxx::connection& c, const std::string& session_hash) {
  pqxx::read_transaction tx{c};
  auto res = tx.exec_params(
      "SELECT u.user_id, u.user_role, u.organization_id, u.user_email, s.csrf_token, s.provider, "
      "to_char(s.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS expires_at "
      "FROM ui_sessions s JOIN users u USING (user_id) "
      "WHERE s.session_hash = $1 AND s.ended_at IS NULL AND s.expires_at > now()",
      session_hash);
  if (res.empty()) {
    return std::nullopt;
  }
  session_row s;
  s.user = user_of(res[0]);
  s.csrf_token = res[0]["csrf_token"].as<std::string>();
  s.provider = res[0]["provider"].as<std::string>();
  s.expires_at = res[0]["expires_at"].as<std::string>();
  return s;
}

bool end_session_blocking(pqxx::connection& c, const std::string& session_hash) {
  pqxx::work tx{c};
  auto res = tx.exec_params(
      "UPDATE ui_sessions SET ended_at = now() WHERE session_hash = $1 AND ended_at IS NULL RETURNING 1",
      session_hash);
  tx.commit();
  return !res.empty();
}

}  // namespace switchyard::store::postgres
