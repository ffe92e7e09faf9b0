// The key insert of key_repo inside a caller's transaction, for writes that make a key
// together with other rows (tenant_repo's /user/new): all of them or none.
#pragma once
#include "switchyard/store/postgres/key_repo.hpp"

#include <string>

namespace pqxx {
class transaction_base;
}

namespace switchyard::store::postgres {

// insert_key_blocking's work in `tx`, which the caller commits; nothing is written when
// the result has no key (token_taken, alias_taken).
key_write_result insert_key_in(pqxx::transaction_base& tx, const std::string& token, const std::string& patch_json,
                               const change_actor& who);

}  // namespace switchyard::store::postgres
