#include "switchyard/app/key_lookup.hpp"

namespace switchyard::app {

namespace {

using lookup_result = core::result<std::optional<auth::virtual_key>>;

net::awaitable<lookup_result> lookup_key(store::postgres::db_executor* db, std::string hash) {
  auto r = co_await db->run(store::postgres::find_key_by_hash_blocking, hash);
  if (!r) {
    co_return r.error();
  }
  if (!*r) {
    co_return std::optional<auth::virtual_key>{};
  }
  co_return std::optional<auth::virtual_key>{to_virtual_key(**r)};
}

}  // namespace

auth::virtual_key to_virtual_key(const store::postgres::key_record& r) {
  auth::virtual_key k;
  k.token = r.token;
  k.key_name = r.key_name;
  k.key_alias = r.key_alias;
  k.user_id = r.user_id;
  k.team_id = r.team_id;
  k.organization_id = r.organization_id;
  k.models = r.models;
  k.blocked = r.blocked;
  k.expires = r.expires;
  k.grace_until = r.deprecated_revoke_at;
  return k;
}

auth::key_cache::lookup_fn make_key_lookup(store::postgres::db_executor& db) {
  auto* p = &db;
  return [p](std::string hash) { return lookup_key(p, std::move(hash)); };
}

}  // namespace switchyard::app
