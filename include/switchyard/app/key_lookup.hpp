// Wiring of virtual keys: the key cache's lookup runs find_key_by_hash_blocking on the
// db_executor, and key_record rows become auth::virtual_key values.
// Owner: app/. Thread: the loop thread (the lookup's SQL runs on a db thread). Never blocks.
#pragma once
#include "switchyard/auth/key_cache.hpp"
#include "switchyard/store/postgres/db_executor.hpp"
#include "switchyard/store/postgres/key_repo.hpp"

namespace switchyard::app {

auth::virtual_key to_virtual_key(const store::postgres::key_record& r);

// `db` must outlive every lookup started through the returned function. Each lookup ends
// within `timeout` (errc::unavailable after it: the request gets its 503 on time).
auth::key_cache::lookup_fn make_key_lookup(store::postgres::db_executor& db, std::chrono::milliseconds timeout);

// The same for JWT callers' owners: the "hash" is auth::jwt_owner_key(user, team, role)
// and the answer a virtual_key without a key row (find_owners_blocking) carrying that
// user, team and role, with their model lists and limits.
auth::key_cache::lookup_fn make_owner_lookup(store::postgres::db_executor& db, std::chrono::milliseconds timeout);

}  // namespace switchyard::app
