// key_repo: virtual keys in Postgres (verification_tokens, deprecated_verification_tokens,
// deleted_verification_tokens, audit_log; migrations/0002_keys.sql).
//
// Owner: none (free functions). Thread: a db thread only, via db_executor::run:
//   auto k = co_await db.run(pg::find_key_by_hash_blocking, token_hash);
// Blocking: every *_blocking function runs SQL. Out: plain structs (no pqxx types).
// Errors: SQL failures throw (db_executor::run turns them into result errors). "Not found"
// is an empty optional, never an exception.
//
// Patches are JSON objects (text) of column -> value in the column's JSON form (timestamps
// as ISO-8601 strings, text[] as arrays, jsonb as any JSON); only the columns of
// `key_patch_columns` are applied, others are ignored. Keys omitted are left unchanged.
#pragma once
#include "switchyard/store/postgres/pqxx_fwd.hpp"

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace switchyard::store::postgres {

using sys_time = std::chrono::system_clock::time_point;

// One verification_tokens row. Typed fields are what the auth stage needs; `row_json` is
// the whole row as a JSON object (to_jsonb; timestamps as ISO-8601 text) for responses.
struct key_record {
  std::string token;  // sha256 hex of the whole key string
  std::string key_name;   // "sk-...abcd" ("" if unset)
  std::string key_alias;  // "" if unset
  double spend = 0;
  std::optional<double> max_budget;
  std::optional<sys_time> expires;  // empty: never expires
  std::vector<std::string> models;  // empty: every model
  std::string user_id;
  std::string team_id;
  std::string organization_id;
  bool blocked = false;
  std::optional<std::int64_t> tpm_limit;
  std::optional<std::int64_t> rpm_limit;
  std::optional<std::int64_t> max_parallel_requests;
  int rotation_count = 0;
  // Set when found through deprecated_verification_tokens (a regenerated key's old value
  // inside its grace period): the old hash that was looked up and when it stops working.
  std::optional<std::string> via_deprecated_token;
  std::optional<sys_time> deprecated_revoke_at;
  std::string row_json;
  // Only from find_key_by_hash_blocking: the key's team, user and organisation rows (the
  // key's organization_id, else its team's) as JSON objects; empty when there is none.
  std::optional<std::string> team_json;
  std::optional<std::string> user_json;
  std::optional<std::string> org_json;
  // Only from find_key_by_hash_blocking: the budgets rows of the key's budget_id and of its
  // organisation's budget_id (shared budgets: their limits apply where set).
  std::optional<std::string> key_budget_json;
  std::optional<std::string> org_budget_json;
  // Only from find_key_by_hash_blocking (and find_owners_blocking): the key's user's
  // team_memberships row in the key's team and that row's budgets row (max_budget_in_team),
  // or when it has none the team's default for its members (metadata.team_member_budget_id).
  std::optional<std::string> membership_json;
  std::optional<std::string> membership_budget_json;
};

// Who made a change, for audit_log and the archives.
struct change_actor {
  std::string changed_by;          // litellm-changed-by header, else the caller's alias/user
  std::string changed_by_api_key;  // hash of the key that made the call ("" for none)
};

struct audit_entry {
  change_actor actor;
  std::string action;      // created | updated | deleted | blocked | unblocked | regenerated
  std::string table_name;  // e.g. "verification_tokens"
  std::string object_id;
  std::optional<std::string> before_json;  // JSON text or SQL NULL
  std::optional<std::string> after_json;
};

// The columns a patch may set (insert and update).
extern const std::vector<std::string> key_patch_columns;

// Active key by hash; otherwise the key a deprecated hash points to while revoke_at is in
// the future (via_deprecated_token/deprecated_revoke_at set). Empty when neither. One
// query, which also loads the key's team, user and organisation (team_json, ...).
std::optional<key_record> find_key_by_hash_blocking(pqxx::connection& c, const std::string& token);
// The keys of `tokens` (active hashes, or a regenerated key's old hash inside its grace
// period, as find_key_by_hash_blocking resolves it), in the order given, each once; hashes
// that resolve to no key are left out. One query; team/user/org fields stay empty.
std::vector<key_record> find_keys_by_hashes_blocking(pqxx::connection& c, const std::vector<std::string>& tokens);
// The owners of a caller without a key row (JWT auth): the user `user_id` and team
// `team_id` rows (either may be "" or missing) and the team's organisation with its
// budget, as find_key_by_hash_blocking gives them; token and row_json are empty.
key_record find_owners_blocking(pqxx::connection& c, const std::string& user_id, const std::string& team_id);

// A patch holds columns (key_patch_columns), and may hold `metadata_tags`: an array that
// replaces `tags` in the stored metadata, keeping its other members (with `metadata` in the
// same patch, the tags go into that new metadata instead).
//
// Key aliases are unique among keys (LiteLLM's rule): a write whose patch sets a key_alias
// that another key has writes nothing and says so (an update keeping the key's current
// alias is not checked). There is no unique index, since databases may already hold
// duplicates; a transaction-scoped advisory lock on the alias serialises the writes of one
// alias, so the check and the write are atomic.

// What a key write did: the row written, or why nothing was.
struct key_write_result {
  std::optional<key_record> key;  // empty when nothing was written
  bool token_taken = false;       // insert, regenerate: the (new) token is another key's
  bool alias_taken = false;       // the patch's key_alias is another key's
  // The patch's budget_id names no budget (the key's foreign key refuses it: a budget
  // deleted after the caller checked it). Nothing was written.
  bool budget_missing = false;
};

// Inserts a key with `token` and the patch's columns, plus an audit row ("created"), in one
// transaction. Nothing is written if the token exists (token_taken) or the alias is taken.
key_write_result insert_key_blocking(pqxx::connection& c, const std::string& token, const std::string& patch_json,
                                     const change_actor& who);

// Applies the patch to an existing key (and updated_at/updated_by) with an audit row
// (`action`, before/after) in one transaction. `key` is empty if no such key (or alias_taken).
key_write_result update_key_blocking(pqxx::connection& c, const std::string& token, const std::string& patch_json,
                                     const change_actor& who, const std::string& action);

// blocked = true/false with an audit row ("blocked"/"unblocked"). Empty if no such key.
std::optional<key_record> set_key_blocked_blocking(pqxx::connection& c, const std::string& token, bool blocked,
                                                   const change_actor& who);

// Deletes the keys whose token is in `tokens` or whose key_alias is in `aliases`; each row
// is copied to deleted_verification_tokens and audited ("deleted"), and deprecated hashes
// pointing at it are dropped, all in one transaction. Returns the deleted tokens.
std::vector<std::string> delete_keys_blocking(pqxx::connection& c, const std::vector<std::string>& tokens,
                                              const std::vector<std::string>& aliases, const change_actor& who);

// Moves the key from `old_token` to `new_token` (key_name too), rotation_count + 1,
// last_rotation_at = now, plus the patch; with `grace_until`, the old hash keeps resolving
// to the new row until then (older deprecated hashes are re-pointed). Audited
// ("regenerated"). `key` is empty if `old_token` does not exist, or if `new_token` is already
// a key's (token_taken) or the patch's alias another key's (alias_taken): nothing changed.
key_write_result regenerate_key_blocking(pqxx::connection& c, const std::string& old_token,
                                                  const std::string& new_token, const std::string& new_key_name,
                                                  const std::optional<sys_time>& grace_until,
                                                  const std::string& patch_json, const change_actor& who);

struct key_list_query {
  int page = 1;   // 1-based
  int size = 10;  // 1..100
  std::optional<std::string> user_id;
  std::optional<std::string> team_id;
  std::optional<std::string> organization_id;
  std::optional<std::string> key_alias;
};
struct key_page {
  std::vector<key_record> keys;  // ordered by created_at, token
  std::int64_t total_count = 0;
};
key_page list_keys_blocking(pqxx::connection& c, const key_list_query& q);

// One audit row in its own transaction.
void insert_audit_blocking(pqxx::connection& c, const audit_entry& e);

// Audit rows for one object, oldest first (tests and /audit later): (action, changed_by).
std::vector<std::pair<std::string, std::string>> audit_for_blocking(pqxx::connection& c,
                                                                    const std::string& table_name,
                                                                    const std::string& object_id);

}  // namespace switchyard::store::postgres
