#include "switchyard/store/postgres/tenant_repo.hpp"

#include "key_write.hpp"

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <stdexcept>
#include <string_view>

namespace switchyard::store::postgres {

namespace {

using json = nlohmann::json;

struct spec {
  const char* table;
  const char* id;
  bool has_updated_by;  // organizations and budgets record created_by/updated_by
  std::vector<std::string> columns;
};

const std::vector<spec>& specs() {
  static const std::vector<spec> all = {
      {"users", "user_id", false,
       {"user_alias", "user_email", "user_role", "teams", "organization_id", "max_budget", "spend", "models",
        "tpm_limit", "rpm_limit", "budget_duration", "budget_reset_at", "metadata", "sso_user_id", "spend_set_at"}},
      {"teams", "team_id", false,
       {"team_alias", "organization_id", "admins", "members", "members_with_roles", "max_budget", "soft_budget",
        "spend", "models", "model_aliases", "tpm_limit", "rpm_limit", "max_parallel_requests", "budget_duration",
        "budget_reset_at", "blocked", "team_member_permissions", "metadata", "spend_set_at"}},
      {"organizations", "organization_id", true,
       {"organization_alias", "budget_id", "models", "spend", "metadata", "created_by", "spend_set_at"}},
      {"end_users", "user_id", false,
       {"alias", "spend", "budget_id", "allowed_model_region", "default_model", "blocked", "spend_set_at"}},
      {"budgets", "budget_id", true,
       {"max_budget", "soft_budget", "max_parallel_requests", "tpm_limit", "rpm_limit", "model_max_budget",
        "budget_duration", "budget_reset_at", "created_by"}},
  };
  return all;
}

const spec& spec_of(const std::string& kind) {
  for (const auto& s : specs()) {
    if (kind == s.table) {
      return s;
    }
  }
  throw std::invalid_argument("tenant_repo: unknown kind " + kind);
}

json filtered(const spec& s, const std::string& patch_json) {
  json in = patch_json.empty() ? json::object() : json::parse(patch_json);
  if (!in.is_object()) {
    throw std::invalid_argument("patch must be a JSON object");
  }
  json out = json::object();
  for (const auto& col : s.columns) {
    if (auto it = in.find(col); it != in.end()) {
      out[col] = *it;
    }
  }
  // metadata_tags: new metadata.tags, the rest of the stored metadata kept (apply_patch).
  if (auto tags = in.find("metadata_tags");
      tags != in.end() && std::find(s.columns.begin(), s.columns.end(), "metadata") != s.columns.end()) {
    if (auto md = out.find("metadata"); md != out.end() && md->is_object()) {
      (*md)["tags"] = *tags;
    } else {
      out["metadata_tags"] = *tags;
    }
  }
  return out;
}

const char* opt_c_str(const std::optional<std::string>& s) { return s ? s->c_str() : nullptr; }

// Whether `j` has the string member `name` equal to `value` (non-empty).
bool text_is(const json& j, const char* name, const std::string& value) {
  auto it = j.find(name);
  return !value.empty() && it != j.end() && it->is_string() && it->get_ref<const std::string&>() == value;
}

void audit(pqxx::transaction_base& tx, const change_actor& who, const std::string& action, const std::string& table,
           const std::string& id, const std::optional<std::string>& before, const std::optional<std::string>& after) {
  tx.exec_params(
      "INSERT INTO audit_log (changed_by, changed_by_api_key, action, table_name, object_id, before, after) "
      "VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb)",
      who.changed_by, who.changed_by_api_key, action, table, id, opt_c_str(before), opt_c_str(after));
}

std::optional<std::string> select_row(pqxx::transaction_base& tx, const spec& s, const std::string& id,
                                      bool for_update) {
  auto res = tx.exec_params(std::string("SELECT to_jsonb(t)::text FROM ") + s.table + " t WHERE t." + s.id +
                                " = $1" + (for_update ? " FOR UPDATE" : ""),
                            id);
  if (res.empty()) {
    return std::nullopt;
  }
  return res[0][0].as<std::string>();
}

std::string apply_patch(pqxx::transaction_base& tx, const spec& s, const std::string& id, const json& patch,
                        const change_actor& who) {
  // A team's metadata names its members' default budget (team_member_budget_id), which
  // /team/update's own fields manage: a new metadata keeps that link unless it names one.
  const bool keep_member_budget = std::string_view(s.table) == "teams" && patch.contains("metadata");
  std::string cols;
  for (const auto& [col, value] : patch.items()) {
    (void)value;
    if (col != "metadata_tags" && !(keep_member_budget && col == "metadata")) {
      cols += (cols.empty() ? "" : ", ") + tx.quote_name(col);
    }
  }
  std::string sql = std::string("UPDATE ") + s.table + " t SET ";
  if (!cols.empty()) {
    sql += "(" + cols + ") = (SELECT " + cols + " FROM jsonb_populate_record(t, $2::jsonb)), ";
  }
  if (keep_member_budget) {
    sql +=
        "metadata = CASE WHEN t.metadata ? 'team_member_budget_id'"
        " THEN jsonb_build_object('team_member_budget_id', t.metadata -> 'team_member_budget_id') ELSE '{}'::jsonb END"
        " || ($2::jsonb -> 'metadata'), ";
  }
  if (patch.contains("metadata_tags")) {
    // In the statement that writes the row: a concurrent change of another member is kept.
    sql += "metadata = jsonb_set(COALESCE(t.metadata, '{}'::jsonb), '{tags}', $2::jsonb -> 'metadata_tags'), ";
  }
  sql += "updated_at = now()";
  sql += s.has_updated_by ? ", updated_by = $3" : "";
  sql += std::string(" WHERE t.") + s.id + " = $1 AND $2::jsonb IS NOT NULL RETURNING to_jsonb(t)::text";
  auto res = s.has_updated_by ? tx.exec_params(sql, id, patch.dump(), who.changed_by)
                              : tx.exec_params(sql, id, patch.dump());
  if (res.empty()) {
    throw std::logic_error("tenant_repo: patched row vanished: " + id);
  }
  return res[0][0].as<std::string>();
}

// Deletes (and archives, audits) the keys whose `column` is in the ids.
void delete_keys_where(pqxx::transaction_base& tx, const char* column, const std::string& ids_json,
                       const change_actor& who) {
  tx.exec_params(std::string("WITH d AS ("
                             "  DELETE FROM verification_tokens t"
                             "  WHERE t.") +
                     column +
                     " IN (SELECT jsonb_array_elements_text($1::jsonb)) RETURNING t.*),"
                     " archived AS ("
                     "  INSERT INTO deleted_verification_tokens"
                     "    (token, row_data, deleted_by, deleted_by_api_key, litellm_changed_by)"
                     "  SELECT d.token, to_jsonb(d), $2, $3, $2 FROM d),"
                     " audited AS ("
                     "  INSERT INTO audit_log (changed_by, changed_by_api_key, action, table_name, object_id, before)"
                     "  SELECT $2, $3, 'deleted', 'verification_tokens', d.token, to_jsonb(d) FROM d),"
                     " grace AS ("
                     "  DELETE FROM deprecated_verification_tokens WHERE active_token_id IN (SELECT token FROM d))"
                     " SELECT count(*) FROM d",
                 ids_json, who.changed_by, who.changed_by_api_key);
}

// What a refused value means to the caller: the field and what is wrong with its value, in
// LiteLLM's words where it has them. Postgres' own text (constraint, table and column
// names, the row) is for the operator's log. pqxx 6 does not expose the constraint's name
// (PG_DIAG_CONSTRAINT_NAME): it is found in the message, which names it in any of the
// server's languages (the quotes around it differ; no name below is part of another).
struct refusal {
  std::string_view constraint;  // as migrations/ name it
  std::string_view field;       // the request's field holding the value
  enum { missing, taken, invalid } what;
};
constexpr refusal refusals[] = {
    {"teams_organization_id_fkey", "organization_id", refusal::missing},
    {"users_organization_id_fkey", "organization_id", refusal::missing},
    {"organizations_budget_id_fkey", "budget_id", refusal::missing},
    {"end_users_budget_id_fkey", "budget_id", refusal::missing},
    {"team_memberships_budget_id_fkey", "budget_id", refusal::missing},
    {"team_memberships_user_id_fkey", "user_id", refusal::missing},
    {"team_memberships_team_id_fkey", "team_id", refusal::missing},
    {"organization_memberships_budget_id_fkey", "budget_id", refusal::missing},
    {"organization_memberships_user_id_fkey", "user_id", refusal::missing},
    {"organization_memberships_organization_id_fkey", "organization_id", refusal::missing},
    {"verification_tokens_budget_id_fkey", "budget_id", refusal::missing},
    {"users_sso_user_id_key", "sso_user_id", refusal::taken},
    {"users_role_check", "user_role", refusal::invalid},
    {"team_memberships_role_check", "role", refusal::invalid},
};

std::string problem_of(const pqxx::sql_error& e, const json& patch, std::string& field_out) {
  const std::string m = e.what();
  for (const auto& r : refusals) {
    if (m.find(r.constraint) == std::string::npos) {
      continue;
    }
    const std::string field(r.field);
    field_out = field;
    auto v = patch.find(field);
    const std::string value = v != patch.end() && v->is_string() ? v->get<std::string>() : std::string();
    const std::string quoted = value.empty() ? field : field + " '" + value + "'";
    switch (r.what) {
      case refusal::missing:
        if (field == "organization_id" && !value.empty()) {
          return "Organization not found for organization_id=" + value;  // LiteLLM's words
        }
        return quoted + " does not exist";
      case refusal::taken:
        return quoted + " is already used by another user";  // users_sso_user_id_key, the only one
      case refusal::invalid:
        return quoted + " is not an allowed value";
    }
  }
  // A constraint added without an entry above: still no database text in the answer.
  spdlog::warn("tenant_repo: refused without a known constraint: {}", m);
  return "A value of the request refers to something that does not exist or is already used";
}

// Runs a write whose refusal by the database (a foreign key, a check, a unique value) is
// the caller's mistake: the transaction is rolled back and `out` says which value and why
// (a 400). Any other failure propagates (a 500).
template <class Write>
void refused_as_problem(entity_write& out, const json& patch, Write&& write) {
  try {
    write();
  } catch (const pqxx::foreign_key_violation& e) {
    out.problem = problem_of(e, patch, out.problem_field);
  } catch (const pqxx::check_violation& e) {
    out.problem = problem_of(e, patch, out.problem_field);
  } catch (const pqxx::unique_violation& e) {
    out.problem = problem_of(e, patch, out.problem_field);
  }
}

// Inserts row `id` with the (filtered) patch, audited "created"; empty when `id` exists.
std::optional<std::string> insert_in(pqxx::transaction_base& tx, const spec& s, const std::string& id,
                                     const json& patch, const change_actor& who) {
  auto res = s.has_updated_by
                 ? tx.exec_params(std::string("INSERT INTO ") + s.table + " (" + s.id +
                                      ", created_by, updated_by) VALUES ($1, $2, $2) ON CONFLICT DO NOTHING "
                                      "RETURNING 1",
                                  id, who.changed_by)
                 : tx.exec_params(std::string("INSERT INTO ") + s.table + " (" + s.id +
                                      ") VALUES ($1) ON CONFLICT DO NOTHING RETURNING 1",
                                  id);
  if (res.empty()) {
    return std::nullopt;
  }
  auto row = apply_patch(tx, s, id, patch, who);
  audit(tx, who, "created", s.table, id, std::nullopt, row);
  return row;
}

// The two places besides team_memberships that list a team's members, kept in step by
// every membership change: the user's `teams` and the team's `members_with_roles`
// (record_member replaces the user's entry, forget_member drops it).
void record_member(pqxx::transaction_base& tx, const std::string& team_id, const std::string& user_id,
                   const json& entry) {
  tx.exec_params(
      "UPDATE users SET teams = CASE WHEN $2 = ANY(teams) THEN teams ELSE array_append(teams, $2) END, "
      "updated_at = now() WHERE user_id = $1",
      user_id, team_id);
  tx.exec_params(
      "UPDATE teams t SET members_with_roles = (SELECT COALESCE(jsonb_agg(m), '[]'::jsonb)"
      " FROM jsonb_array_elements(t.members_with_roles) m WHERE COALESCE(m->>'user_id', '') <> $2)"
      " || jsonb_build_array($3::jsonb), updated_at = now() WHERE t.team_id = $1",
      team_id, user_id, entry.dump());
}

void forget_member(pqxx::transaction_base& tx, const std::string& team_id, const std::string& user_id) {
  tx.exec_params("UPDATE users SET teams = array_remove(teams, $2), updated_at = now() WHERE user_id = $1", user_id,
                 team_id);
  tx.exec_params(
      "UPDATE teams t SET members_with_roles = (SELECT COALESCE(jsonb_agg(m), '[]'::jsonb)"
      " FROM jsonb_array_elements(t.members_with_roles) m WHERE COALESCE(m->>'user_id', '') <> $2),"
      " updated_at = now() WHERE t.team_id = $1",
      team_id, user_id);
}

json member_entry(const std::string& role, const std::string& user_id, const std::string& email) {
  return {{"role", role}, {"user_id", user_id}, {"user_email", email.empty() ? json(nullptr) : json(email)}};
}

// Makes `user_id` (an existing user) a member of team `team_id` with `role`, as
// /team/member_add does: a budgets row for `max_budget_in_team` when set, the membership
// (its role replaced when it exists), users.teams and members_with_roles. The user's row.
json add_member_in(pqxx::transaction_base& tx, const std::string& team_id, const std::string& user_id,
                   const std::string& email, const std::string& role, const std::optional<double>& max_budget_in_team,
                   const change_actor& who) {
  std::optional<std::string> budget_id;
  if (max_budget_in_team) {
    budget_id = tx.exec_params1(
                      "INSERT INTO budgets (budget_id, max_budget, created_by, updated_by) "
                      "VALUES (gen_random_uuid()::text, $1, $2, $2) RETURNING budget_id",
                      *max_budget_in_team, who.changed_by)[0]
                    .as<std::string>();
  }
  // A membership added here is the caller's: it clears the mark of one the groups claim
  // added (sync_sso_teams_blocking no longer removes it).
  tx.exec_params(
      "INSERT INTO team_memberships (user_id, team_id, role, budget_id) VALUES ($1, $2, $3, $4) "
      "ON CONFLICT (user_id, team_id) DO UPDATE SET role = EXCLUDED.role, "
      "budget_id = COALESCE(EXCLUDED.budget_id, team_memberships.budget_id), sso_managed = false",
      user_id, team_id, role, opt_c_str(budget_id));
  record_member(tx, team_id, user_id, member_entry(role, user_id, email));
  auto urow = tx.exec_params1("SELECT to_jsonb(users)::text FROM users WHERE user_id = $1", user_id)[0]
                  .as<std::string>();
  return json::parse(urow);
}

// The user_email of a new user's patch that another user has (case-insensitively), else "".
// Takes an advisory lock on the email first: a concurrent insert of it waits and sees it.
std::string email_taken(pqxx::transaction_base& tx, const std::string& kind, const json& patch) {
  auto email = patch.find("user_email");
  if (kind != "users" || email == patch.end() || !email->is_string() || email->get_ref<const std::string&>().empty()) {
    return {};
  }
  const auto& e = email->get_ref<const std::string&>();
  tx.exec_params("SELECT pg_advisory_xact_lock(hashtextextended('switchyard.user_email:' || lower($1), 0))", e);
  auto taken = tx.exec_params("SELECT user_email FROM users WHERE lower(user_email) = lower($1) LIMIT 1", e);
  return taken.empty() ? std::string() : taken[0][0].as<std::string>();
}

// Adds `members` ([{user_id?, user_email?, role}]) to team `team_id`, whose row the caller
// has locked, as add_team_members_blocking describes; the indexes of the members skipped
// as already in the team (with `skip_members`) go to `already_in`. The members' rows.
json add_members_in(pqxx::transaction_base& tx, const std::string& team_id, const json& members,
                    const std::optional<double>& max_budget_in_team, const change_actor& who, bool skip_members,
                    std::vector<std::size_t>& already_in) {
  json updated = json::array();
  for (std::size_t i = 0; i < members.size(); ++i) {
    const auto& m = members[i];
    std::string user_id = m.value("user_id", std::string());
    std::string email = m.value("user_email", std::string());
    std::string role = m.value("role", std::string("user"));
    if (user_id.empty() && !email.empty()) {
      auto r = tx.exec_params("SELECT user_id FROM users WHERE user_email = $1 ORDER BY created_at LIMIT 1", email);
      if (!r.empty()) {
        user_id = r[0][0].as<std::string>();
      }
    }
    // A membership the groups claim added is not "already in": adding it by hand takes it
    // over (add_member_in), as docs/sso.md says.
    if (skip_members && tx.exec_params1("SELECT COALESCE((SELECT NOT sso_managed FROM team_memberships"
                                        "   WHERE team_id = $1 AND user_id = $2),"
                                        " EXISTS (SELECT 1 FROM teams t, jsonb_array_elements(t.members_with_roles) e"
                                        "   WHERE t.team_id = $1 AND ((e->>'user_id') = $2"
                                        "     OR ($3 <> '' AND (e->>'user_email') = $3))))",
                                        team_id, user_id, email)[0]
                             .as<bool>()) {
      already_in.push_back(i);
      continue;
    }
    if (user_id.empty()) {
      user_id = tx.exec1("SELECT gen_random_uuid()::text")[0].as<std::string>();
    }
    auto created = tx.exec_params(
        "INSERT INTO users (user_id, user_email) VALUES ($1, NULLIF($2, '')) ON CONFLICT DO NOTHING "
        "RETURNING to_jsonb(users)::text",
        user_id, email);
    if (!created.empty()) {
      audit(tx, who, "created", "users", user_id, std::nullopt, created[0][0].as<std::string>());
    }
    updated.push_back(add_member_in(tx, team_id, user_id, email, role, max_budget_in_team, who));
  }
  return updated;
}

// LiteLLM's id for a team's default member budget: the team's alias in it when it has one
// (spaces as dashes), and 32 random hex digits.
std::string member_budget_id(pqxx::transaction_base& tx, const json& team_row) {
  auto hex = tx.exec1("SELECT replace(gen_random_uuid()::text, '-', '')")[0].as<std::string>();
  auto alias = team_row.value("team_alias", json()).is_string() ? team_row["team_alias"].get<std::string>() : "";
  if (alias.empty()) {
    return "team-budget-" + hex;
  }
  std::replace(alias.begin(), alias.end(), ' ', '-');
  return "team-" + alias + "-budget-" + hex;
}

// The team's default budget for its members (team_write), in the transaction that wrote
// the team's row `before` (locked: two changes of one team's default are made one after
// the other, so they never make two budgets rows).
void member_budget_in(pqxx::transaction_base& tx, const std::string& team_id, const std::string& before,
                      const json& budget_patch, bool create, const change_actor& who) {
  const auto& teams = spec_of("teams");
  const auto& budgets = spec_of("budgets");
  const json team = json::parse(before);
  auto named = team.value("metadata", json::object());
  std::string budget_id;
  if (auto it = named.find("team_member_budget_id"); it != named.end() && it->is_string()) {
    budget_id = it->get<std::string>();
  }
  std::optional<std::string> budget_before;
  if (!budget_id.empty()) {
    budget_before = select_row(tx, budgets, budget_id, true);
  }
  if (budget_before) {
    auto row = apply_patch(tx, budgets, budget_id, budget_patch, who);
    audit(tx, who, "updated", budgets.table, budget_id, budget_before, row);
    return;
  }
  if (!create) {
    return;
  }
  const auto new_budget_id = member_budget_id(tx, team);
  if (!insert_in(tx, budgets, new_budget_id, budget_patch, who)) {
    throw std::runtime_error("tenant_repo: team member budget id taken: " + new_budget_id);
  }
  auto row = tx.exec_params1(
                   "UPDATE teams SET metadata = jsonb_set(COALESCE(metadata, '{}'::jsonb), '{team_member_budget_id}',"
                   " to_jsonb($2::text)), updated_at = now() WHERE team_id = $1 RETURNING to_jsonb(teams)::text",
                   team_id, new_budget_id)[0]
                 .as<std::string>();
  audit(tx, who, "updated", teams.table, team_id, before, row);
}

}  // namespace

const std::vector<std::string>& entity_patch_columns(const std::string& kind) { return spec_of(kind).columns; }

entity_write insert_entity_blocking(pqxx::connection& c, const std::string& kind, const std::string& id,
                                    const std::string& patch_json, const change_actor& who) {
  const auto& s = spec_of(kind);
  auto patch = filtered(s, patch_json);
  entity_write out;
  refused_as_problem(out, patch, [&] {
    pqxx::work tx{c};
    out.email_taken = email_taken(tx, kind, patch);
    if (!out.email_taken.empty()) {
      return;
    }
    auto row = insert_in(tx, s, id, patch, who);
    if (!row) {
      return;
    }
    tx.commit();
    out.row_json = std::move(row);
  });
  return out;
}

new_user_write insert_user_blocking(pqxx::connection& c, const std::string& id, const std::string& patch_json,
                                    const std::vector<std::string>& teams, const std::optional<new_user_key>& key,
                                    const change_actor& who) {
  const auto& s = spec_of("users");
  auto patch = filtered(s, patch_json);
  new_user_write out;
  refused_as_problem(out.user, patch, [&] {
    pqxx::work tx{c};
    out.user.email_taken = email_taken(tx, "users", patch);
    if (!out.user.email_taken.empty()) {
      return;
    }
    if (!insert_in(tx, s, id, patch, who)) {
      return;
    }
    for (const auto& team_id : teams) {
      // The team's row is locked, as /team/member_add does.
      auto before = select_row(tx, spec_of("teams"), team_id, true);
      if (!before) {
        out.missing_team = team_id;
        return;
      }
      add_member_in(tx, team_id, id, "", "user", std::nullopt, who);
      audit(tx, who, "member_added", "teams", team_id, before, select_row(tx, spec_of("teams"), team_id, false));
    }
    if (key) {
      out.key = insert_key_in(tx, key->token, key->patch_json, who);
      if (!out.key.key) {
        return;  // rolled back: no user either
      }
    }
    out.user.row_json = select_row(tx, s, id, false);
    tx.commit();
  });
  return out;
}

entity_write update_entity_blocking(pqxx::connection& c, const std::string& kind, const std::string& id,
                                    const std::string& patch_json, const change_actor& who,
                                    const std::string& action) {
  const auto& s = spec_of(kind);
  auto patch = filtered(s, patch_json);
  entity_write out;
  refused_as_problem(out, patch, [&] {
    pqxx::work tx{c};
    auto before = select_row(tx, s, id, true);
    if (!before) {
      return;
    }
    auto row = apply_patch(tx, s, id, patch, who);
    audit(tx, who, action, s.table, id, before, row);
    tx.commit();
    out.row_json = std::move(row);
  });
  return out;
}

entity_write write_team_blocking(pqxx::connection& c, const team_write& in, const change_actor& who) {
  const auto& s = spec_of("teams");
  auto patch = filtered(s, in.patch_json);
  auto budget_patch = filtered(spec_of("budgets"), in.member_budget_json);
  json members = json::parse(in.members_json);
  entity_write out;
  refused_as_problem(out, patch, [&] {
    pqxx::work tx{c};
    std::optional<std::string> row;
    if (in.is_new) {
      row = insert_in(tx, s, in.team_id, patch, who);
    } else if (auto before = select_row(tx, s, in.team_id, true)) {
      row = apply_patch(tx, s, in.team_id, patch, who);
      audit(tx, who, "updated", s.table, in.team_id, before, row);
    }
    if (!row) {
      return;  // /team/new: the id is taken; /team/update: no such team
    }
    if (!budget_patch.empty()) {
      member_budget_in(tx, in.team_id, *row, budget_patch, in.create_member_budget, who);
    }
    if (!members.empty()) {
      auto before = select_row(tx, s, in.team_id, false);
      std::vector<std::size_t> skipped;
      const bool skip_members = false;  // members_with_roles replaces a member's role
      add_members_in(tx, in.team_id, members, std::nullopt, who, skip_members, skipped);
      audit(tx, who, "member_added", "teams", in.team_id, before, select_row(tx, s, in.team_id, false));
    }
    out.row_json = select_row(tx, s, in.team_id, false);
    tx.commit();
  });
  return out;
}

entity_write write_budgeted_blocking(pqxx::connection& c, const budgeted_write& in, const change_actor& who) {
  const auto& s = spec_of(in.kind);
  // An organisation always has a budgets row (LiteLLM makes one); an end user has one when
  // it has limits.
  const bool budget_always = in.kind == "organizations";
  const auto& budgets = spec_of("budgets");
  auto patch = filtered(s, in.patch_json);
  const auto limits = filtered(budgets, in.budget_json);
  entity_write out;
  refused_as_problem(out, patch, [&] {
    pqxx::work tx{c};
    // A new budgets row with the limits, audited "created"; its id.
    const auto new_budget = [&] {
      const auto id = tx.exec1("SELECT gen_random_uuid()::text")[0].as<std::string>();
      if (!insert_in(tx, budgets, id, limits, who)) {
        throw std::runtime_error("tenant_repo: new budget id taken: " + id);
      }
      return id;
    };
    if (in.is_new) {
      if (auto b = patch.find("budget_id"); (b == patch.end() || b->is_null()) && (budget_always || !limits.empty())) {
        patch["budget_id"] = new_budget();
      }
      if (!insert_in(tx, s, in.id, patch, who)) {
        return;  // the id is taken: rolled back, the budgets row too
      }
    } else {
      auto before = select_row(tx, s, in.id, true);
      if (!before) {
        return;
      }
      auto row = apply_patch(tx, s, in.id, patch, who);
      audit(tx, who, "updated", s.table, in.id, before, row);
      if (!limits.empty()) {
        const json updated = json::parse(row);
        const std::string budget_id =
            updated.value("budget_id", json()).is_string() ? updated["budget_id"].get<std::string>() : "";
        std::optional<std::string> budget_before;
        if (!budget_id.empty()) {
          budget_before = select_row(tx, budgets, budget_id, true);
        }
        if (budget_before) {
          auto b = apply_patch(tx, budgets, budget_id, limits, who);
          audit(tx, who, "updated", budgets.table, budget_id, budget_before, b);
        } else {
          auto linked = apply_patch(tx, s, in.id, json{{"budget_id", new_budget()}}, who);
          audit(tx, who, "updated", s.table, in.id, row, linked);
        }
      }
    }
    out.row_json = select_row(tx, s, in.id, false);
    tx.commit();
  });
  return out;
}

std::optional<std::string> get_entity_blocking(pqxx::connection& c, const std::string& kind, const std::string& id,
                                               bool expand) {
  const auto& s = spec_of(kind);
  std::string extra = "'{}'::jsonb";
  if (expand) {
    if (kind == "teams") {
      extra =
          "jsonb_build_object("
          " 'keys', COALESCE((SELECT jsonb_agg(to_jsonb(k) ORDER BY k.created_at) FROM verification_tokens k"
          "   WHERE k.team_id = t.team_id), '[]'::jsonb),"
          " 'team_memberships', COALESCE((SELECT jsonb_agg(to_jsonb(m) ORDER BY m.user_id) FROM team_memberships m"
          "   WHERE m.team_id = t.team_id), '[]'::jsonb),"
          " 'team_member_budget_table', (SELECT to_jsonb(b) FROM budgets b"
          "   WHERE b.budget_id = t.metadata ->> 'team_member_budget_id'))";
    } else if (kind == "users") {
      extra =
          "jsonb_build_object("
          " 'keys', COALESCE((SELECT jsonb_agg(to_jsonb(k) ORDER BY k.created_at) FROM verification_tokens k"
          "   WHERE k.user_id = t.user_id), '[]'::jsonb),"
          " 'teams', COALESCE((SELECT jsonb_agg(to_jsonb(tm) ORDER BY tm.team_id) FROM teams tm"
          "   JOIN team_memberships m ON m.team_id = tm.team_id WHERE m.user_id = t.user_id), '[]'::jsonb))";
    } else if (kind == "end_users") {
      extra = "jsonb_build_object('litellm_budget_table', (SELECT to_jsonb(b) FROM budgets b WHERE b.budget_id = t.budget_id))";
    } else if (kind == "organizations") {
      extra =
          "jsonb_build_object("
          " 'litellm_budget_table', (SELECT to_jsonb(b) FROM budgets b WHERE b.budget_id = t.budget_id),"
          " 'teams', COALESCE((SELECT jsonb_agg(to_jsonb(tm) ORDER BY tm.team_id) FROM teams tm"
          "   WHERE tm.organization_id = t.organization_id), '[]'::jsonb),"
          " 'members', COALESCE((SELECT jsonb_agg(to_jsonb(m) ORDER BY m.user_id) FROM organization_memberships m"
          "   WHERE m.organization_id = t.organization_id), '[]'::jsonb))";
    }
  }
  pqxx::read_transaction tx{c};
  auto res = tx.exec_params(std::string("SELECT (to_jsonb(t) || ") + extra + ")::text FROM " + s.table +
                                " t WHERE t." + s.id + " = $1",
                            id);
  if (res.empty()) {
    return std::nullopt;
  }
  return res[0][0].as<std::string>();
}

std::vector<std::string> delete_entities_blocking(pqxx::connection& c, const std::string& kind,
                                                  const std::vector<std::string>& ids, const change_actor& who) {
  const auto& s = spec_of(kind);
  auto ids_json = json(ids).dump();
  const std::string in_ids = " IN (SELECT jsonb_array_elements_text($1::jsonb))";
  pqxx::work tx{c};
  if (kind == "teams") {
    delete_keys_where(tx, "team_id", ids_json, who);
    tx.exec_params("UPDATE users u SET teams = (SELECT COALESCE(array_agg(x), '{}') FROM unnest(u.teams) x"
                   " WHERE x NOT" + in_ids + ") WHERE u.teams && ARRAY(SELECT jsonb_array_elements_text($1::jsonb))",
                   ids_json);
  } else if (kind == "users") {
    delete_keys_where(tx, "user_id", ids_json, who);
    tx.exec_params(
        "UPDATE teams t SET members_with_roles = (SELECT COALESCE(jsonb_agg(m), '[]'::jsonb)"
        " FROM jsonb_array_elements(t.members_with_roles) m WHERE COALESCE(m->>'user_id', '') NOT" + in_ids + ")"
        " WHERE EXISTS (SELECT 1 FROM jsonb_array_elements(t.members_with_roles) m WHERE m->>'user_id'" + in_ids + ")",
        ids_json);
  } else if (kind == "organizations") {
    tx.exec_params("UPDATE teams SET organization_id = NULL WHERE organization_id" + in_ids, ids_json);
    tx.exec_params("UPDATE users SET organization_id = NULL WHERE organization_id" + in_ids, ids_json);
  } else if (kind == "budgets") {
    tx.exec_params("UPDATE organizations SET budget_id = NULL WHERE budget_id" + in_ids, ids_json);
    tx.exec_params("UPDATE team_memberships SET budget_id = NULL WHERE budget_id" + in_ids, ids_json);
    tx.exec_params("UPDATE organization_memberships SET budget_id = NULL WHERE budget_id" + in_ids, ids_json);
    tx.exec_params("UPDATE end_users SET budget_id = NULL WHERE budget_id" + in_ids, ids_json);
    // Keys: their foreign key clears them (ON DELETE SET NULL, migration 0014, as
    // LiteLLM's), also a key written meanwhile by a transaction that saw the budget.
  }
  std::string sql = std::string("WITH d AS (DELETE FROM ") + s.table + " t WHERE t." + s.id + in_ids +
                    " RETURNING t.*),"
                    " audited AS ("
                    "  INSERT INTO audit_log (changed_by, changed_by_api_key, action, table_name, object_id, before)"
                    "  SELECT $2, $3, 'deleted', '" + s.table + "', d." + s.id + ", to_jsonb(d) FROM d)";
  if (kind == "teams") {
    sql +=
        ", archived AS ("
        "  INSERT INTO deleted_teams (team_id, row_data, deleted_by, deleted_by_api_key, litellm_changed_by)"
        "  SELECT d.team_id, to_jsonb(d), $2, $3, $2 FROM d)";
  }
  sql += std::string(" SELECT to_jsonb(d)::text FROM d ORDER BY d.") + s.id;
  auto res = tx.exec_params(sql, ids_json, who.changed_by, who.changed_by_api_key);
  std::vector<std::string> out;
  for (const auto& row : res) {
    out.push_back(row[0].as<std::string>());
  }
  tx.commit();
  return out;
}

entity_page list_entities_blocking(pqxx::connection& c, const entity_list_query& q) {
  const auto& s = spec_of(q.kind);
  int size = std::clamp(q.size, 1, 1000);
  int page = std::max(q.page, 1);
  pqxx::read_transaction tx{c};
  json filter = json::parse(q.filter_json.empty() ? std::string("{}") : q.filter_json);
  std::string where = " WHERE ($1::text IS NULL OR EXISTS (SELECT 1 FROM team_memberships m"
                      " WHERE m.team_id = to_jsonb(t)->>'team_id' AND m.user_id = $1)) AND $2::jsonb IS NOT NULL";
  for (const auto& [col, value] : filter.items()) {
    (void)value;
    if (col != s.id && std::find(s.columns.begin(), s.columns.end(), col) == s.columns.end()) {
      throw std::invalid_argument("tenant_repo: cannot filter on " + col);
    }
    where += " AND to_jsonb(t)->>" + tx.quote(col) + " = $2::jsonb->>" + tx.quote(col);
  }
  entity_page out;
  auto member = q.member_of;
  out.total_count =
      tx.exec_params1(std::string("SELECT count(*) FROM ") + s.table + " t" + where, opt_c_str(member), filter.dump())[0]
          .as<std::int64_t>();
  auto res = tx.exec_params(std::string("SELECT to_jsonb(t)::text FROM ") + s.table + " t" + where +
                                " ORDER BY t.created_at, t." + s.id + " LIMIT $3 OFFSET $4",
                            opt_c_str(member), filter.dump(), size, static_cast<std::int64_t>(page - 1) * size);
  for (const auto& row : res) {
    out.rows.push_back(row[0].as<std::string>());
  }
  return out;
}

member_write add_team_members_blocking(pqxx::connection& c, const std::string& team_id, const std::string& members_json,
                                       const std::optional<double>& max_budget_in_team, const change_actor& who,
                                       bool skip_members) {
  member_write out;
  json members = json::parse(members_json);
  pqxx::work tx{c};
  // The team's row is locked: two concurrent adds of one member see each other.
  auto before = select_row(tx, spec_of("teams"), team_id, true);
  if (!before) {
    return out;
  }
  json updated = add_members_in(tx, team_id, members, max_budget_in_team, who, skip_members, out.already_in);
  if (!members.empty() && out.already_in.size() == members.size()) {
    out.team_json = before;  // nothing to add: rolled back
    return out;
  }
  auto after = select_row(tx, spec_of("teams"), team_id, false);
  audit(tx, who, "member_added", "teams", team_id, before, after);
  tx.commit();
  out.team_json = after;
  out.updated_users_json = updated.dump();
  return out;
}

member_write remove_team_member_blocking(pqxx::connection& c, const std::string& team_id, const std::string& user_id_in,
                                         const std::string& user_email, const change_actor& who) {
  member_write out;
  pqxx::work tx{c};
  auto before = select_row(tx, spec_of("teams"), team_id, true);
  if (!before) {
    return out;
  }
  std::string user_id = user_id_in;
  if (user_id.empty()) {
    auto r = tx.exec_params(
        "SELECT m.user_id FROM team_memberships m JOIN users u ON u.user_id = m.user_id "
        "WHERE m.team_id = $1 AND u.user_email = $2 LIMIT 1",
        team_id, user_email);
    if (!r.empty()) {
      user_id = r[0][0].as<std::string>();
    }
  }
  auto del = tx.exec_params("DELETE FROM team_memberships WHERE team_id = $1 AND user_id = $2 RETURNING 1", team_id,
                            user_id);
  bool in_roles = !tx.exec_params("SELECT 1 FROM teams t, jsonb_array_elements(t.members_with_roles) m "
                                  "WHERE t.team_id = $1 AND m->>'user_id' = $2",
                                  team_id, user_id)
                       .empty();
  if (user_id.empty() || (del.empty() && !in_roles)) {
    out.team_json = before;
    out.problem = "User is not a member of team " + team_id;
    return out;
  }
  forget_member(tx, team_id, user_id);
  auto after = select_row(tx, spec_of("teams"), team_id, false);
  audit(tx, who, "member_removed", "teams", team_id, before, after);
  tx.commit();
  out.team_json = after;
  return out;
}

namespace {

// Whether a budgets row holds a limit worth naming it for (LiteLLM's test for a member's
// budget: an unset or empty value is no limit).
bool has_limit(const json& budget) {
  for (const char* f : {"max_budget", "soft_budget", "max_parallel_requests", "tpm_limit", "rpm_limit",
                        "budget_duration", "model_max_budget"}) {
    if (auto it = budget.find(f); it != budget.end() && !it->is_null() && !(it->is_object() && it->empty())) {
      return true;
    }
  }
  return false;
}

// Whether anything but the membership (team_id, user_id) names the budgets row: another
// membership, a key, an organisation (or its membership), an end user, or a team as its
// members' default. Such a row is never patched for one member.
bool budget_shared(pqxx::transaction_base& tx, const std::string& budget_id, const std::string& team_id,
                   const std::string& user_id) {
  return tx.exec_params1(
               "SELECT EXISTS (SELECT 1 FROM team_memberships WHERE budget_id = $1"
               "   AND NOT (team_id = $2 AND user_id = $3))"
               " OR EXISTS (SELECT 1 FROM verification_tokens WHERE budget_id = $1)"
               " OR EXISTS (SELECT 1 FROM organizations WHERE budget_id = $1)"
               " OR EXISTS (SELECT 1 FROM organization_memberships WHERE budget_id = $1)"
               " OR EXISTS (SELECT 1 FROM end_users WHERE budget_id = $1)"
               " OR EXISTS (SELECT 1 FROM teams WHERE metadata ->> 'team_member_budget_id' = $1)",
               budget_id, team_id, user_id)[0]
      .as<bool>();
}

// The member's own budget in the team after `patch` (update_team_member_blocking).
void member_own_budget_in(pqxx::transaction_base& tx, const std::string& team_id, const std::string& user_id,
                          const json& membership, const json& team, const json& patch, const change_actor& who) {
  const auto& budgets = spec_of("budgets");
  const std::string own = membership.value("budget_id", json()).is_string() ? membership["budget_id"].get<std::string>() : "";
  const auto md = team.value("metadata", json::object());
  const std::string def = md.is_object() && md.value("team_member_budget_id", json()).is_string()
                              ? md["team_member_budget_id"].get<std::string>()
                              : "";
  const auto name_budget = [&](const std::optional<std::string>& id) {
    tx.exec_params("UPDATE team_memberships SET budget_id = $3 WHERE team_id = $1 AND user_id = $2", team_id, user_id,
                   opt_c_str(id));
  };
  std::optional<std::string> own_before;
  if (!own.empty()) {
    own_before = select_row(tx, budgets, own, true);
  }
  if (own_before && own != def && !budget_shared(tx, own, team_id, user_id)) {
    json merged = json::parse(*own_before);
    merged.update(patch);
    if (!has_limit(merged)) {
      name_budget(std::nullopt);  // back to the team's default
      return;
    }
    auto row = apply_patch(tx, budgets, own, patch, who);
    audit(tx, who, "updated", budgets.table, own, own_before, row);
    return;
  }
  // A row of the member's own, made from the one they were held to (the shared row, else
  // the team's default) with the patch over it; its period goes on where that one's is.
  std::optional<std::string> from = own_before;
  if (!from && !def.empty()) {
    from = select_row(tx, budgets, def, false);
  }
  json seed = json::object();
  if (from) {
    const json b = json::parse(*from);
    for (const char* f : {"max_budget", "soft_budget", "max_parallel_requests", "tpm_limit", "rpm_limit",
                          "model_max_budget", "budget_duration", "budget_reset_at"}) {
      if (auto it = b.find(f); it != b.end() && !it->is_null()) {
        seed[f] = *it;
      }
    }
  }
  seed.update(patch);
  if (!has_limit(seed)) {
    if (!own.empty()) {
      name_budget(std::nullopt);
    }
    return;
  }
  const auto id = tx.exec1("SELECT gen_random_uuid()::text")[0].as<std::string>();
  if (!insert_in(tx, budgets, id, seed, who)) {
    throw std::runtime_error("tenant_repo: member budget id taken: " + id);
  }
  name_budget(id);
}

}  // namespace

member_update_result update_team_member_blocking(pqxx::connection& c, const member_update& in,
                                                 const change_actor& who) {
  const auto& teams = spec_of("teams");
  const auto patch = filtered(spec_of("budgets"), in.budget_patch_json);
  member_update_result out;
  pqxx::work tx{c};
  // The team's row is locked: member changes of one team are made one after the other.
  const auto team_before = select_row(tx, teams, in.team_id, true);
  if (!team_before) {
    return out;
  }
  out.team_found = true;
  const json team = json::parse(*team_before);
  // The member: by user_id, else by email (the team's entry with it, else the user row).
  std::string user_id = in.user_id;
  std::optional<json> entry;
  for (const auto& e : team.value("members_with_roles", json::array())) {
    const bool same = !user_id.empty() ? text_is(e, "user_id", user_id) : text_is(e, "user_email", in.user_email);
    if (same && e.contains("user_id") && e["user_id"].is_string()) {
      entry = e;
      user_id = e["user_id"].get<std::string>();
      break;
    }
  }
  if (user_id.empty()) {
    auto r = tx.exec_params(
        "SELECT m.user_id FROM team_memberships m JOIN users u ON u.user_id = m.user_id "
        "WHERE m.team_id = $1 AND u.user_email = $2 ORDER BY m.user_id LIMIT 1",
        in.team_id, in.user_email);
    if (!r.empty()) {
      user_id = r[0][0].as<std::string>();
    }
  }
  if (user_id.empty()) {
    return out;
  }
  const auto select_membership = [&](bool lock) {
    auto r = tx.exec_params(std::string("SELECT to_jsonb(m)::text FROM team_memberships m"
                                        " WHERE m.team_id = $1 AND m.user_id = $2") +
                                (lock ? " FOR UPDATE" : ""),
                            in.team_id, user_id);
    return r.empty() ? std::nullopt : std::optional<std::string>(r[0][0].as<std::string>());
  };
  auto membership_before = select_membership(true);
  if (!membership_before) {
    // Listed in members_with_roles without a membership row (LiteLLM upserts one); a
    // name without a user row is not a member that can hold a budget.
    const std::string role = entry && text_is(*entry, "role", "admin") ? "admin" : "user";
    auto made = tx.exec_params(
        "INSERT INTO team_memberships (user_id, team_id, role) SELECT $1, $2, $3"
        " WHERE $4 AND EXISTS (SELECT 1 FROM users WHERE user_id = $1) ON CONFLICT DO NOTHING RETURNING 1",
        user_id, in.team_id, role, entry.has_value());
    if (made.empty()) {
      out.user_id.clear();
      return out;
    }
  }
  const json membership = json::parse(membership_before ? *membership_before : *select_membership(false));
  if (!patch.empty()) {
    member_own_budget_in(tx, in.team_id, user_id, membership, team, patch, who);
  }
  if (in.role) {
    tx.exec_params("UPDATE team_memberships SET role = $3 WHERE team_id = $1 AND user_id = $2", in.team_id, user_id,
                   *in.role);
    if (entry) {
      // In place: the members keep their order, as LiteLLM rewrites the list.
      tx.exec_params(
          "UPDATE teams t SET members_with_roles = (SELECT COALESCE(jsonb_agg(CASE WHEN e ->> 'user_id' = $2"
          "   THEN e || jsonb_build_object('role', $3::text, 'user_email',"
          "     CASE WHEN $4 = '' THEN e -> 'user_email' ELSE to_jsonb($4::text) END)"
          "   ELSE e END ORDER BY i), '[]'::jsonb)"
          "   FROM jsonb_array_elements(t.members_with_roles) WITH ORDINALITY AS x(e, i)),"
          " updated_at = now() WHERE t.team_id = $1",
          in.team_id, user_id, *in.role, in.user_email);
    } else {
      record_member(tx, in.team_id, user_id, member_entry(*in.role, user_id, in.user_email));
    }
    auto team_after = select_row(tx, teams, in.team_id, false);
    if (team_after != team_before) {
      audit(tx, who, "updated", teams.table, in.team_id, team_before, team_after);
    }
  }
  // An admin's change to a membership a sign-in added (docs/sso.md) is a decision about it:
  // from now on it is a hand-made one, which later sign-ins never remove, as after
  // /team/member_add.
  tx.exec_params("UPDATE team_memberships SET sso_managed = false WHERE team_id = $1 AND user_id = $2 AND sso_managed",
                 in.team_id, user_id);
  auto after = select_membership(false);
  if (after != membership_before) {
    audit(tx, who, "updated", "team_memberships", in.team_id + ":" + user_id, membership_before, after);
  }
  tx.commit();
  out.user_id = user_id;
  out.membership_json = after.value_or("{}");
  return out;
}

std::vector<std::string> teams_of_user_blocking(pqxx::connection& c, const std::string& user_id) {
  pqxx::read_transaction tx{c};
  std::vector<std::string> out;
  for (const auto& row : tx.exec_params("SELECT team_id FROM team_memberships WHERE user_id = $1 ORDER BY team_id",
                                        user_id)) {
    out.push_back(row[0].as<std::string>());
  }
  return out;
}

sso_team_changes sync_sso_teams_blocking(pqxx::connection& c, const sso_team_sync& in, const change_actor& who) {
  sso_team_changes out;
  const auto& teams = spec_of("teams");
  pqxx::work tx{c};
  auto email_row = tx.exec_params("SELECT coalesce(user_email, '') FROM users WHERE user_id = $1", in.user_id);
  if (email_row.empty()) {
    return out;  // the user went away meanwhile (deleted): nothing to join
  }
  const std::string email = email_row[0][0].as<std::string>();
  // What to leave: memberships marked as the claim's that the claim no longer names.
  std::vector<std::string> leave;
  if (in.groups_known) {
    for (const auto& row : tx.exec_params(
             "SELECT team_id FROM team_memberships WHERE user_id = $1 AND sso_managed "
             "AND team_id NOT IN (SELECT jsonb_array_elements_text($2::jsonb)) ORDER BY team_id",
             in.user_id, json(in.named).dump())) {
      leave.push_back(row[0].as<std::string>());
    }
  }
  // Every team touched, locked in one order (two sign-ins sharing teams cannot deadlock).
  json touched = json::array();
  for (const auto& d : in.default_teams) {
    touched.push_back(d.team_id);
  }
  if (in.groups_known) {
    for (const auto& g : in.groups) {
      touched.push_back(g);
    }
  }
  for (const auto& t : leave) {
    touched.push_back(t);
  }
  tx.exec_params("SELECT 1 FROM teams WHERE team_id IN (SELECT jsonb_array_elements_text($1::jsonb)) "
                 "ORDER BY team_id FOR UPDATE",
                 touched.dump());

  for (const auto& d : in.default_teams) {
    auto before = select_row(tx, teams, d.team_id, false);
    if (!before) {
      out.missing.push_back(d.team_id);
      continue;
    }
    add_member_in(tx, d.team_id, in.user_id, email, d.role, d.max_budget_in_team, who);
    audit(tx, who, "member_added", "teams", d.team_id, before, select_row(tx, teams, d.team_id, false));
    out.joined.push_back(d.team_id);
  }
  if (!in.groups_known) {
    tx.commit();
    return out;
  }
  auto sorted = in.groups;
  std::sort(sorted.begin(), sorted.end());
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
  const json new_team = filtered(teams, in.new_team_patch_json);
  for (const auto& g : sorted) {
    auto before = select_row(tx, teams, g, false);
    if (!before) {
      // Created as /team/new would with the default patch; another sign-in may have
      // created it a moment ago (the insert then does nothing and the row is read).
      if (insert_in(tx, teams, g, new_team, who)) {
        out.created.push_back(g);
      }
      before = select_row(tx, teams, g, false);
      if (!before) {
        continue;
      }
    }
    // Only a user who is not a member yet joins, as "user": an existing membership (an
    // admin's role, one added by hand) is left exactly as it is.
    auto added = tx.exec_params(
        "INSERT INTO team_memberships (user_id, team_id, role, sso_managed) VALUES ($1, $2, 'user', true) "
        "ON CONFLICT (user_id, team_id) DO NOTHING RETURNING 1",
        in.user_id, g);
    if (added.empty()) {
      continue;
    }
    record_member(tx, g, in.user_id, member_entry("user", in.user_id, email));
    audit(tx, who, "member_added", "teams", g, before, select_row(tx, teams, g, false));
    out.joined.push_back(g);
  }
  for (const auto& t : leave) {
    auto before = select_row(tx, teams, t, false);
    auto gone = tx.exec_params(
        "DELETE FROM team_memberships WHERE user_id = $1 AND team_id = $2 AND sso_managed RETURNING 1", in.user_id, t);
    if (gone.empty() || !before) {
      continue;
    }
    forget_member(tx, t, in.user_id);
    audit(tx, who, "member_removed", "teams", t, before, select_row(tx, teams, t, false));
    out.left.push_back(t);
  }
  tx.commit();
  return out;
}

namespace {

bool global_admin_role(const std::string& role) { return role == "proxy_admin" || role == "proxy_admin_viewer"; }

std::string member_id(const std::string& org_id, const std::string& user_id) { return org_id + ":" + user_id; }

// The user with `user_id`, else the first with `user_email` (locked); empty when neither.
std::optional<json> find_user_in(pqxx::transaction_base& tx, const std::string& user_id, const std::string& email) {
  if (!user_id.empty()) {
    if (auto row = select_row(tx, spec_of("users"), user_id, true)) {
      return json::parse(*row);
    }
  }
  if (!email.empty()) {
    auto r = tx.exec_params("SELECT to_jsonb(u)::text FROM users u WHERE u.user_email = $1 ORDER BY u.created_at, "
                            "u.user_id LIMIT 1 FOR UPDATE",
                            email);
    if (!r.empty()) {
      return json::parse(r[0][0].as<std::string>());
    }
  }
  return std::nullopt;
}

std::string text_of(const json& j, const char* name) {
  auto it = j.find(name);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// Why `user` cannot be made org_admin of `org_id`, or "" (see org_member_spec).
std::string org_admin_conflict(const json& user, const std::string& org_id) {
  const auto home = text_of(user, "organization_id");
  if (global_admin_role(text_of(user, "user_role")) || home.empty() || home == org_id) {
    return "";
  }
  return "User " + text_of(user, "user_id") + " belongs to organization " + home +
         "; a user can be org_admin of one organization only. Remove them from it first.";
}

// The user's own row in step with their role in `org_id` (`role` empty: removed from it).
// Returns the row after the change; records the user in `changed` when it changed.
json mirror_org_role(pqxx::transaction_base& tx, const json& user, const std::string& org_id, const std::string& role,
                     const change_actor& who, std::vector<std::string>& changed) {
  const auto user_id = text_of(user, "user_id");
  const auto current = text_of(user, "user_role");
  const auto home = text_of(user, "organization_id");
  json patch = json::object();
  if (role.empty()) {
    if (home == org_id) {
      patch["organization_id"] = nullptr;
      if (current == "org_admin") {
        patch["user_role"] = "internal_user";
      }
    }
  } else {
    // A proxy admin's powers are global: their row stays out of the organisation, since an
    // org_admin manages the users of their organisation (and would manage them).
    if (home.empty() && !global_admin_role(current)) {
      patch["organization_id"] = org_id;
    }
    if (role == "org_admin" && !global_admin_role(current) && current != "org_admin") {
      patch["user_role"] = "org_admin";
    } else if (role != "org_admin" && current == "org_admin" && (home == org_id || home.empty())) {
      patch["user_role"] = role;
    }
  }
  if (patch.empty()) {
    return user;
  }
  auto row = apply_patch(tx, spec_of("users"), user_id, patch, who);
  audit(tx, who, "updated", "users", user_id, user.dump(), row);
  changed.push_back(user_id);
  return json::parse(row);
}

// A budgets row with `max_budget` of its own for the membership (audited "created").
std::string new_member_budget(pqxx::transaction_base& tx, double max_budget, const change_actor& who) {
  auto id = tx.exec1("SELECT gen_random_uuid()::text")[0].as<std::string>();
  if (!insert_in(tx, spec_of("budgets"), id, json{{"max_budget", max_budget}}, who)) {
    throw std::runtime_error("tenant_repo: organization member budget id taken: " + id);
  }
  return id;
}

std::optional<std::string> org_membership_row(pqxx::transaction_base& tx, const std::string& org_id,
                                              const std::string& user_id, bool for_update) {
  auto r = tx.exec_params(std::string("SELECT to_jsonb(m)::text FROM organization_memberships m "
                                      "WHERE m.organization_id = $1 AND m.user_id = $2") +
                              (for_update ? " FOR UPDATE" : ""),
                          org_id, user_id);
  if (r.empty()) {
    return std::nullopt;
  }
  return r[0][0].as<std::string>();
}

}  // namespace

org_member_write add_org_members_blocking(pqxx::connection& c, const std::string& organization_id,
                                          const std::vector<org_member_spec>& members,
                                          const std::optional<double>& max_budget, const change_actor& who) {
  org_member_write out;
  pqxx::work tx{c};
  // The organisation's row is locked: two concurrent adds of one member see each other.
  if (!select_row(tx, spec_of("organizations"), organization_id, true)) {
    return out;
  }
  out.org_found = true;
  json users = json::array();
  json memberships = json::array();
  for (const auto& m : members) {
    auto user = find_user_in(tx, m.user_id, m.user_email);
    if (!user) {
      const auto id = m.user_id.empty() ? tx.exec1("SELECT gen_random_uuid()::text")[0].as<std::string>() : m.user_id;
      auto row = tx.exec_params1("INSERT INTO users (user_id, user_email) VALUES ($1, NULLIF($2, '')) "
                                 "RETURNING to_jsonb(users)::text",
                                 id, m.user_email)[0]
                     .as<std::string>();
      audit(tx, who, "created", "users", id, std::nullopt, row);
      user = json::parse(row);
    }
    const auto user_id = text_of(*user, "user_id");
    if (org_membership_row(tx, organization_id, user_id, false)) {
      out.problem = "User " + user_id + " is already a member of organization " + organization_id;
      return out;  // rolled back
    }
    if (m.role == "org_admin") {
      if (auto conflict = org_admin_conflict(*user, organization_id); !conflict.empty()) {
        out.problem = conflict;
        return out;
      }
    }
    std::optional<std::string> budget_id;
    if (max_budget) {
      budget_id = new_member_budget(tx, *max_budget, who);
    }
    auto membership = tx.exec_params1("INSERT INTO organization_memberships (user_id, organization_id, user_role, "
                                      "budget_id) VALUES ($1, $2, $3, $4) RETURNING to_jsonb(organization_memberships)::text",
                                      user_id, organization_id, m.role, opt_c_str(budget_id))[0]
                          .as<std::string>();
    audit(tx, who, "created", "organization_memberships", member_id(organization_id, user_id), std::nullopt,
          membership);
    users.push_back(mirror_org_role(tx, *user, organization_id, m.role, who, out.users_changed));
    memberships.push_back(json::parse(membership));
  }
  tx.commit();
  out.updated_users_json = users.dump();
  out.memberships_json = memberships.dump();
  return out;
}

org_member_change_result change_org_member_blocking(pqxx::connection& c, const org_member_change& in,
                                                    const change_actor& who) {
  org_member_change_result out;
  pqxx::work tx{c};
  if (!select_row(tx, spec_of("organizations"), in.organization_id, true)) {
    return out;
  }
  out.org_found = true;
  auto user = find_user_in(tx, in.user_id, in.user_id.empty() ? in.user_email : std::string());
  if (!user && in.user_id.empty()) {
    out.email_unknown = true;
    return out;
  }
  out.user_id = user ? text_of(*user, "user_id") : in.user_id;
  auto before = org_membership_row(tx, in.organization_id, out.user_id, true);
  if (!before || !user) {
    out.not_member = true;
    return out;
  }
  if (global_admin_role(text_of(*user, "user_role")) && !in.by_proxy_admin) {
    out.global_admin = true;
    return out;
  }
  const auto id = member_id(in.organization_id, out.user_id);
  if (in.remove) {
    tx.exec_params("DELETE FROM organization_memberships WHERE organization_id = $1 AND user_id = $2",
                   in.organization_id, out.user_id);
    audit(tx, who, "deleted", "organization_memberships", id, before, std::nullopt);
    mirror_org_role(tx, *user, in.organization_id, "", who, out.users_changed);
    tx.commit();
    out.membership_json = *before;
    return out;
  }
  json membership = json::parse(*before);
  if (in.role) {
    if (*in.role == "org_admin") {
      if (out.problem = org_admin_conflict(*user, in.organization_id); !out.problem.empty()) {
        return out;
      }
    }
    tx.exec_params("UPDATE organization_memberships SET user_role = $3, updated_at = now() "
                   "WHERE organization_id = $1 AND user_id = $2",
                   in.organization_id, out.user_id, *in.role);
    mirror_org_role(tx, *user, in.organization_id, *in.role, who, out.users_changed);
  }
  if (in.max_budget) {
    const auto& budgets = spec_of("budgets");
    const auto own = text_of(membership, "budget_id");
    if (auto budget_before = own.empty() ? std::nullopt : select_row(tx, budgets, own, true)) {
      auto row = apply_patch(tx, budgets, own, json{{"max_budget", *in.max_budget}}, who);
      audit(tx, who, "updated", budgets.table, own, budget_before, row);
    } else {
      auto budget_id = new_member_budget(tx, *in.max_budget, who);
      tx.exec_params("UPDATE organization_memberships SET budget_id = $3, updated_at = now() "
                     "WHERE organization_id = $1 AND user_id = $2",
                     in.organization_id, out.user_id, budget_id);
    }
  }
  auto after = tx.exec_params1("SELECT (to_jsonb(m) || jsonb_build_object('litellm_budget_table', "
                               "(SELECT to_jsonb(b) FROM budgets b WHERE b.budget_id = m.budget_id)))::text "
                               "FROM organization_memberships m WHERE m.organization_id = $1 AND m.user_id = $2",
                               in.organization_id, out.user_id)[0]
                   .as<std::string>();
  audit(tx, who, "updated", "organization_memberships", id, before, after);
  tx.commit();
  out.membership_json = after;
  return out;
}

}  // namespace switchyard::store::postgres
