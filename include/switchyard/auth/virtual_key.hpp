// virtual_key: what the auth stage knows about a virtual key (a verification_tokens row,
// reduced to the fields auth decisions use). Plain value; immutable once cached (shared as
// shared_ptr<const virtual_key>). Thread: any. Never blocks.
#pragma once
#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace switchyard::auth {

struct virtual_key {
  std::string token;      // sha256 hex of the whole key string
  std::string key_name;   // "sk-...abcd"
  std::string key_alias;  // "" if unset
  std::string user_id;
  std::string team_id;
  std::string organization_id;
  std::vector<std::string> models;  // empty (or "all-proxy-models"): every model
  bool blocked = false;
  std::optional<std::chrono::system_clock::time_point> expires;  // empty: never
  // Set when the presented value is a regenerated key's old value: it works until then.
  std::optional<std::chrono::system_clock::time_point> grace_until;
};

}  // namespace switchyard::auth
