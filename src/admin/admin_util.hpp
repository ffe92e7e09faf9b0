// Helpers shared by the management endpoints (private to admin/): request field checks
// (wrong type -> 422 naming the field), query parameters, who made a change.
// Thread: any. Never blocks.
#pragma once
#include "switchyard/admin/keys.hpp"
#include "switchyard/auth/key_auth.hpp"
#include "switchyard/http/message.hpp"
#include "switchyard/store/postgres/key_repo.hpp"

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace switchyard::admin {

using json = nlohmann::json;
namespace pg = store::postgres;

// json converts from almost anything, so a result<json> value is built explicitly.
core::result<json> ok(json j);
// 422 invalid_request_error, param = field.
core::error field_error(const std::string& field, const std::string& what);
core::error not_found(const std::string& what, const std::string& param);

enum class kind { str_or_null, str, num_or_null, num, int_or_null, boolean, str_array, object, duration_or_null };

struct field_spec {
  const char* name;
  kind k;
};

std::optional<core::error> check_kind(const std::string& name, kind k, const json& v, sys_time now);
// The fields of `body` named in `specs`, type-checked; null for a non-nullable kind means
// "not given". budget_duration also sets budget_reset_at.
core::result<json> patch_from(const json& body, const field_spec* specs, std::size_t n, sys_time now);

std::string url_decode(std::string_view s);
std::optional<std::string> query_param(std::string_view query, std::string_view name);
core::result<int> int_param(std::string_view query, const char* name, int def, int lo, int hi);

// Who: the litellm-changed-by header, else the caller's key alias / user id, else
// "proxy_admin" for the master key.
pg::change_actor actor_of(const http::request& req, const auth::principal& who);

// A key row as the API shows it: the stored row plus token_id.
json key_object(const pg::key_record& k);

core::result<std::string> string_field(const json& body, const char* name, bool required);
core::result<std::vector<std::string>> string_list(const json& body, const char* name);

}  // namespace switchyard::admin
