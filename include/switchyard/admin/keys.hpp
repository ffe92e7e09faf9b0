// The pure helpers of the key management API (/key/* in the route table, admin/routes.hpp;
// handlers in src/admin/keys.cpp): durations, the key format, key names and hashes, and the
// field-by-field check of /key/generate, /key/update and /key/regenerate bodies.
// Who may touch which key (admin/permissions.hpp): proxy_admin (and the master key) manages
// every key; proxy_admin_viewer reads every key; internal_user and org_admin manage only their
// own keys (user_id = theirs; /key/generate forces it; /key/block|unblock are admin-only);
// internal_user_viewer reads only their own; a key without a user may only read itself.
// A non-admin making or moving a key into a team must be the team's `admin` member, or the
// team's team_member_permissions must list the route; else 401 team_member_permission_error
// (as LiteLLM's team key permissions; docs/virtual-keys.md, "Roles").
//
// Thread: any. Never blocks.
#pragma once
#include "switchyard/core/error.hpp"
#include "switchyard/core/reset_schedule.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace switchyard::admin {

using sys_time = std::chrono::system_clock::time_point;

// "30s", "30m", "30h", "30d", "1w" (7 days), "1mo" (calendar months) added to `now`;
// nullopt if malformed.
std::optional<sys_time> add_duration(std::string_view duration, sys_time now);

// A new key: "sk-" + 32 hex digits (128 bits from OpenSSL's CSPRNG).
std::string generate_key_string();
// "sk-...abcd" (LiteLLM's key_name).
std::string key_name_of(std::string_view key);
// A key as given to /key/info, /key/delete, ...: "sk-..." is hashed, anything else is
// taken to be a hash already (LiteLLM's rule).
std::string token_of(std::string_view key_or_hash);

// ISO-8601 UTC with milliseconds, e.g. "2026-11-23T11:00:00.000Z".
std::string iso_utc(sys_time t);

// The verification_tokens columns a /key/generate, /key/update or /key/regenerate body
// sets, checked field by field: a wrong type is 422 naming the field (param = field).
// `duration` becomes `expires` (null: never); unknown fields are ignored (LiteLLM accepts
// more than we store). The request's `key` / `new_key` are not part of the patch.
// budget_duration sets budget_reset_at to its next boundary in `tz` (core/reset_schedule.hpp).
core::result<nlohmann::json> key_patch_from(const nlohmann::json& body, sys_time now,
                                            const core::time_zone& tz = core::time_zone::utc());

}  // namespace switchyard::admin
