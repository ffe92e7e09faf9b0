// virtual_key: what the auth stage knows about a virtual key (a verification_tokens row,
// reduced to the fields auth decisions use, plus its team, user and organisation, loaded
// with the key by one query). Plain value; immutable once cached (shared as
// shared_ptr<const virtual_key>). Thread: any. Never blocks.
#pragma once
#include "switchyard/auth/limits.hpp"

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace switchyard::auth {

// The model allow-list of a team, user or organisation the key belongs to.
struct owner_access {
  bool exists = false;              // the row was found (a key may name a missing team)
  std::vector<std::string> models;  // empty: every model
};

struct virtual_key {
  std::string token;      // sha256 hex of the whole key string
  std::string key_name;   // "sk-...abcd"
  std::string key_alias;  // "" if unset
  std::string user_id;
  std::string team_id;
  std::string organization_id;      // the key's, else its team's
  std::vector<std::string> models;  // empty (or "all-proxy-models"): every model
  std::map<std::string, std::string> aliases;  // the key's model aliases (alias -> model)
  bool blocked = false;
  // Body cache controls this key may set (no-cache, no-store, ttl, ...); empty: all.
  std::vector<std::string> allowed_cache_controls;
  // Routes this key may call (auth/route_access.hpp patterns); empty: all.
  std::vector<std::string> allowed_routes;
  double spend = 0;  // running spend as last read or written (USD)
  std::optional<double> max_budget;
  std::optional<std::chrono::system_clock::time_point> expires;  // empty: never
  // Set when the presented value is a regenerated key's old value: it works until then.
  std::optional<std::chrono::system_clock::time_point> grace_until;

  // The owners (from the same query as the key).
  owner_access team;
  std::string team_alias;  // the team's team_alias ("" if none), for metrics labels
  std::map<std::string, std::string> team_model_aliases;
  bool team_blocked = false;
  owner_access user;
  std::string user_role;  // the user's user_role; "" when the key has no (existing) user
  std::string user_organization_id;  // the user's organization_id (an org_admin's organisation)
  owner_access org;
  // Budgets and rate limits of the key, its user, team and organisation (in that order),
  // only those that have some (budget_id rows applied); empty: nothing to enforce.
  std::vector<entity_limits> limits;
};

}  // namespace switchyard::auth
