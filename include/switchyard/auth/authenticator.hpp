// The auth stage's key handling: which header carries the key, and whether it is
// the master key. Virtual keys (Postgres-backed) are resolved by key_authenticator
// (auth/key_auth.hpp) on top of this.
// Thread: any (immutable after construction). Never blocks.
#pragma once
#include "switchyard/auth/virtual_key.hpp"
#include "switchyard/core/error.hpp"

#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace switchyard::auth {

// Looks up a request header by lower-case name; empty if absent.
using header_getter = std::function<std::string_view(std::string_view)>;

// The key a client sent, from the headers LiteLLM accepts, in its order:
// Authorization (Bearer / bearer / Basic stripped), x-litellm-api-key, api-key,
// x-api-key, x-goog-api-key, ocp-apim-subscription-key, and the custom header
// named by general_settings.litellm_key_header_name. Empty if none.
std::string extract_key(const header_getter& header, std::string_view custom_header = {});

// The value of the cookie `name` in a Cookie header, "" if absent (the UI's session and
// CSRF cookies, admin/sso.hpp). The first match wins; values are taken as sent.
std::string cookie_value(std::string_view header, std::string_view name);

// 401 auth_error for a key that is neither the master key nor a known virtual key
// (LiteLLM's text, with the redacted key and its hash).
core::error invalid_key_error(std::string_view key);

struct principal {
  std::string key;           // as sent (never logged)
  std::string key_redacted;  // sk-...abcd
  bool is_master = false;
  // The virtual key's record (null for the master key, and when auth is off or the
  // database was unreachable with allow_requests_on_db_unavailable).
  std::shared_ptr<const virtual_key> vkey;
};

class authenticator {
 public:
  // An empty master key means auth is off (LiteLLM's behaviour without a master key).
  explicit authenticator(std::string master_key, std::string custom_header = {});

  // Master key only: any other key is 401 auth_error.
  core::result<principal> authenticate(const header_getter& header) const;
  // The same for a key already extracted (extract_key with this instance's custom header).
  core::result<principal> authenticate_key(std::string key) const;
  std::string key_from(const header_getter& header) const { return extract_key(header, custom_header_); }
  bool enabled() const { return !master_key_.empty(); }
  // True when auth is on and `key` is the master key (constant-time compare).
  bool is_master_key(std::string_view key) const;

 private:
  std::string master_key_;
  std::string custom_header_;
};

}  // namespace switchyard::auth
