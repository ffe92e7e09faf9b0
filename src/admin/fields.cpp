// The request fields of the management API, per entity, with their types: what a
// /<entity>/new or /update body may set (LiteLLM's names). A wrong type is 422 naming the
// field (admin_util.hpp, check_kind). Integer kinds follow the column types of
// migrations/0002_keys.sql: tpm_limit and rpm_limit are bigint, max_parallel_requests integer.
#include "admin_util.hpp"

#include <array>
#include <vector>

namespace switchyard::admin {

namespace {

struct entity_field {
  entity owner;
  field_spec spec;
};

// One table for every entity (a field another entity also has is listed again).
constexpr entity_field all_fields[] = {
    {entity::key, {"key_alias", kind::str_or_null}},
    {entity::key, {"key_type", kind::str}},
    {entity::key, {"metadata", kind::object}},
    {entity::key, {"models", kind::str_array}},
    {entity::key, {"aliases", kind::object}},
    {entity::key, {"config", kind::object}},
    {entity::key, {"permissions", kind::object}},
    {entity::key, {"model_max_budget", kind::object}},
    {entity::key, {"max_budget", kind::num_or_null}},
    {entity::key, {"soft_budget", kind::num_or_null}},
    {entity::key, {"spend", kind::num}},
    {entity::key, {"tpm_limit", kind::int_or_null}},
    {entity::key, {"rpm_limit", kind::int_or_null}},
    {entity::key, {"max_parallel_requests", kind::int32_or_null}},
    {entity::key, {"user_id", kind::str_or_null}},
    {entity::key, {"team_id", kind::str_or_null}},
    {entity::key, {"organization_id", kind::str_or_null}},
    {entity::key, {"budget_id", kind::str_or_null}},
    {entity::key, {"blocked", kind::boolean}},
    {entity::key, {"budget_duration", kind::duration_or_null}},
    {entity::key, {"allowed_cache_controls", kind::str_array}},
    {entity::key, {"allowed_routes", kind::str_array}},
    {entity::key, {"auto_rotate", kind::boolean}},
    {entity::key, {"rotation_interval", kind::duration_or_null}},

    {entity::user, {"user_email", kind::str_or_null}},
    {entity::user, {"user_alias", kind::str_or_null}},
    {entity::user, {"user_role", kind::str}},
    {entity::user, {"organization_id", kind::str_or_null}},
    {entity::user, {"max_budget", kind::num_or_null}},
    {entity::user, {"budget_duration", kind::duration_or_null}},
    {entity::user, {"models", kind::str_array}},
    {entity::user, {"tpm_limit", kind::int_or_null}},
    {entity::user, {"rpm_limit", kind::int_or_null}},
    {entity::user, {"metadata", kind::object}},
    {entity::user, {"spend", kind::num}},
    {entity::user, {"sso_user_id", kind::str_or_null}},

    {entity::team, {"team_alias", kind::str_or_null}},
    {entity::team, {"organization_id", kind::str_or_null}},
    {entity::team, {"models", kind::str_array}},
    {entity::team, {"max_budget", kind::num_or_null}},
    {entity::team, {"soft_budget", kind::num_or_null}},
    {entity::team, {"budget_duration", kind::duration_or_null}},
    {entity::team, {"tpm_limit", kind::int_or_null}},
    {entity::team, {"rpm_limit", kind::int_or_null}},
    {entity::team, {"max_parallel_requests", kind::int32_or_null}},
    {entity::team, {"metadata", kind::object}},
    {entity::team, {"model_aliases", kind::object}},
    {entity::team, {"blocked", kind::boolean}},
    {entity::team, {"team_member_permissions", kind::str_array}},
    {entity::team, {"spend", kind::num}},

    {entity::organization, {"organization_alias", kind::str}},
    {entity::organization, {"models", kind::str_array}},
    {entity::organization, {"metadata", kind::object}},
    {entity::organization, {"budget_id", kind::str_or_null}},
    {entity::organization, {"spend", kind::num}},

    {entity::end_user, {"alias", kind::str_or_null}},
    {entity::end_user, {"blocked", kind::boolean}},
    {entity::end_user, {"budget_id", kind::str_or_null}},
    {entity::end_user, {"allowed_model_region", kind::str_or_null}},
    {entity::end_user, {"default_model", kind::str_or_null}},
    {entity::end_user, {"spend", kind::num}},

    {entity::budget, {"max_budget", kind::num_or_null}},
    {entity::budget, {"soft_budget", kind::num_or_null}},
    {entity::budget, {"max_parallel_requests", kind::int32_or_null}},
    {entity::budget, {"tpm_limit", kind::int_or_null}},
    {entity::budget, {"rpm_limit", kind::int_or_null}},
    {entity::budget, {"budget_duration", kind::duration_or_null}},
    {entity::budget, {"model_max_budget", kind::object}},
};

constexpr std::size_t entity_count = static_cast<std::size_t>(entity::budget) + 1;

}  // namespace

std::span<const field_spec> fields_of(entity e) {
  // Grouped once, in table order (the order in which a body's fields are checked).
  static const auto groups = [] {
    std::array<std::vector<field_spec>, entity_count> g;
    for (const auto& f : all_fields) {
      g[static_cast<std::size_t>(f.owner)].push_back(f.spec);
    }
    return g;
  }();
  return groups[static_cast<std::size_t>(e)];
}

}  // namespace switchyard::admin
