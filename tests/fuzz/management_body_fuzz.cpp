// libFuzzer target: the management API's request checks on untrusted bytes. The input is
// a JSON body (as POST /key/generate, /team/new, /user/update, ... receive it) or, for the
// spend API, a query string. Nothing may crash (deep nesting, huge numbers, odd durations),
// and:
//  - a body is either refused with a 4xx naming a field, or becomes a patch that holds only
//    fields of the entity's table (plus the columns derived from them) with the kinds the
//    table says;
//  - the query readers return values inside the bounds they were given.
#include "admin_util.hpp"
#include "spend_params.hpp"

#include "switchyard/admin/keys.hpp"

#include <nlohmann/json.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

using namespace switchyard;
using nlohmann::json;

// metadata_tags: a key's tags without metadata, which the key repository merges into the
// stored metadata (store/postgres/key_repo.hpp).
bool derived(const std::string& name) {
  return name == "budget_reset_at" || name == "expires" || name == "metadata" || name == "metadata_tags" ||
         name == "spend_set_at";
}

void check_patch(const core::result<json>& p, std::span<const admin::field_spec> specs) {
  if (!p) {
    const int status = p.error().status;
    if (status < 400 || status >= 500) {
      std::abort();  // a bad body is the client's error
    }
    return;
  }
  if (!p->is_object()) {
    std::abort();
  }
  for (const auto& [name, value] : p->items()) {
    bool known = derived(name);
    for (const auto& f : specs) {
      known = known || name == f.name;
    }
    if (!known) {
      std::abort();  // only the table's columns reach the SQL
    }
  }
  (void)p->dump();  // what the repository sends to Postgres
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const auto now = std::chrono::sys_days{std::chrono::year{2026} / 12 / 5} + std::chrono::hours{9};

  // The query-string readers of the spend and list endpoints.
  if (auto r = admin::int_param(in, "page", 1, 1, 1000); r && (*r < 1 || *r > 1000)) {
    std::abort();
  }
  if (auto r = admin::paging_params(in, 50, 100); r && (r->page < 1 || r->page_size < 1 || r->page_size > 100)) {
    std::abort();
  }
  if (auto r = admin::day_range_param(in, false); r && r->given() && r->start > r->end) {
    std::abort();
  }
  (void)admin::bool_param(in, "expand", false);
  (void)admin::key_param(in);
  (void)admin::parse_day(in);

  json body = json::parse(in, nullptr, false);
  if (body.is_discarded() || !body.is_object()) {
    return 0;  // 400 before any handler (management.cpp, body_object)
  }
  for (auto e : {admin::entity::key, admin::entity::user, admin::entity::team, admin::entity::organization,
                 admin::entity::end_user, admin::entity::budget}) {
    check_patch(admin::patch_from(body, e, now), admin::fields_of(e));
  }
  check_patch(admin::key_patch_from(body, now), admin::fields_of(admin::entity::key));
  for (const char* name : {"key", "team_id", "user_id", "budget_id", "organization_id"}) {
    (void)admin::string_field(body, name, true);
  }
  for (const char* name : {"keys", "team_ids", "user_ids", "members"}) {
    (void)admin::string_list(body, name);
  }
  json patch = json::object();
  (void)admin::merge_tags(body, patch, now);
  return 0;
}
