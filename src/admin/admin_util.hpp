// Helpers shared by the management endpoints (private to admin/): the caller's
// authentication, request field checks (wrong type -> 422 naming the field), query
// parameters, who made a change, the usual errors.
// Thread: the loop thread for authenticate_caller, any for the rest. Nothing blocks.
#pragma once
#include "switchyard/admin/keys.hpp"
#include "switchyard/auth/key_auth.hpp"
#include "switchyard/core/reset_schedule.hpp"
#include "switchyard/core/asio.hpp"
#include "switchyard/http/message.hpp"
#include "switchyard/store/postgres/key_repo.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace switchyard::admin {

using json = nlohmann::json;
namespace pg = store::postgres;

// json converts from almost anything, so a result<json> value is built explicitly.
core::result<json> ok(json j);
// A 200 whose body is JSON text already made (a report built as text): send_result sends
// the bytes as they are, moved, never copied (reports run to megabytes). Carried as the
// only member of an object under prebuilt_json_key, a name no handler's answer has (it
// starts with a NUL character).
inline constexpr std::string_view prebuilt_json_key{"\0switchyard-prebuilt-json", 26};
core::result<json> ok_prebuilt(std::string json_text);
// 422 invalid_request_error, param = field.
core::error field_error(const std::string& field, const std::string& what);
core::error not_found(const std::string& what, const std::string& param);
// 400 invalid_request_error.
core::error bad_request(std::string message, std::string param = {});
// 403 auth_error "Authentication Error - <message>".
core::error forbidden(std::string message);

// A db_executor error as a caller may see it, logged with `where` (a route) when changed:
// a job's failure (Postgres' text: constraint and index names, values, SQLSTATE) becomes
// LiteLLM's generic 500, an outage (libpq's text, which can name the database's host, port
// and user) a 503 with a fixed message. Any other error is returned as it is.
core::error for_client(core::error e, std::string_view where);

// The caller of `req`, authenticated with the key from any accepted header; when that
// fails, the error is sent on `resp` and the result is empty.
net::awaitable<std::optional<auth::principal>> authenticate_caller(const auth::key_authenticator& auth,
                                                                   const http::request& req, http::responder& resp);
// Sends `out` as a 200 JSON body, or the error OpenAI-shaped.
net::awaitable<void> send_result(http::responder& resp, core::result<json> out);

// int_or_null: an integer that fits a bigint column; int32_or_null: one that fits an integer
// column (a value past the column's range would reach Postgres and fail there, a 500).
enum class kind {
  str_or_null,
  str,
  num_or_null,
  num,
  int_or_null,
  int32_or_null,
  boolean,
  str_array,
  object,
  duration_or_null
};

struct field_spec {
  const char* name;
  kind k;
};

// The request fields each entity's row takes (src/admin/fields.cpp); budget: also the
// limits of an organisation.
enum class entity { key, user, team, organization, end_user, budget };
std::span<const field_spec> fields_of(entity e);

std::optional<core::error> check_kind(const std::string& name, kind k, const json& v, sys_time now);
// A budget or limit below 0 (max_budget, soft_budget, tpm_limit, rpm_limit,
// max_parallel_requests, max_budget_in_team): 422 naming the field with LiteLLM's words,
// "max_budget cannot be negative. Received: -5". patch_from applies it to those fields.
std::optional<core::error> check_not_negative(const std::string& name, const json& v);
// The fields of `body` named in `specs`, type-checked; null for a non-nullable kind means
// "not given". budget_duration also sets budget_reset_at: the next boundary of LiteLLM's
// standardized schedule in `tz` (core/reset_schedule.hpp), not now + duration.
core::result<json> patch_from(const json& body, std::span<const field_spec> specs, sys_time now,
                              const core::time_zone& tz = core::time_zone::utc());
// The same with the fields of `e`.
core::result<json> patch_from(const json& body, entity e, sys_time now,
                              const core::time_zone& tz = core::time_zone::utc());

// The request's `tags` (an array of strings) go into the patch's metadata.tags.
std::optional<core::error> merge_tags(const json& body, json& patch, sys_time now);

std::string url_decode(std::string_view s);
std::optional<std::string> query_param(std::string_view query, std::string_view name);
core::result<int> int_param(std::string_view query, const char* name, int def, int lo, int hi);

// Who: the litellm-changed-by header, else the caller's key alias / user id, else
// "proxy_admin" for the master key.
pg::change_actor actor_of(const http::request& req, const auth::principal& who);

// A key row as the API shows it: the stored row plus token_id.
json key_object(const pg::key_record& k);

// A string member of `j`, else "".
std::string text_of(const json& j, const char* name);
// A fresh id (uuid4) when `given` is empty, else `given`.
std::string id_or_new(const std::string& given);

core::result<std::string> string_field(const json& body, const char* name, bool required);
core::result<std::vector<std::string>> string_list(const json& body, const char* name);

}  // namespace switchyard::admin
