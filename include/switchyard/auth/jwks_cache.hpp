// jwks_cache: an identity provider's signing keys (its JWKS document), fetched with the
// upstream client and kept in memory, so a token is verified on the loop without any
// network call. Refreshed in the background every `ttl` (LiteLLM's public_key_ttl), and
// soon after a token names a kid the cache does not know (a rotation), at most once per
// `min_refetch`. A key the provider removed stops verifying after the next refresh.
// A failed fetch keeps the keys it had and is retried after `retry`.
//
// Owner: app/ (one per JWKS URL). Thread: the loop thread only. Never blocks.
#pragma once
#include "switchyard/core/asio.hpp"
#include "switchyard/core/jwt.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace switchyard::upstream {
class client;
}

namespace switchyard::auth {

struct jwks_options {
  std::string url;
  std::chrono::seconds ttl{600};
  std::chrono::seconds min_refetch{5};
  std::chrono::seconds retry{5};
};

class jwks_cache {
 public:
  jwks_cache(net::any_io_executor ex, upstream::client& client, jwks_options o);
  ~jwks_cache();
  jwks_cache(const jwks_cache&) = delete;
  jwks_cache& operator=(const jwks_cache&) = delete;

  // Starts the refresh loop (the first fetch at once).
  void start();
  // Ends the loop (at shutdown; the destructor does it too).
  void stop();
  // The keys as last fetched (empty before the first fetch succeeded).
  std::shared_ptr<const core::jwks> keys() const;
  // A token named an unknown kid: refresh soon (rate-limited).
  void refresh_soon();
  // Fetches now and waits for the answer (a sign-in whose ID token names an unknown kid).
  net::awaitable<core::result<void>> refresh_now();
  // Replaces the keys without a fetch (tests; the loop's next fetch replaces them again).
  void set_keys(core::jwks keys);
  // Successful fetches so far (tests, logs).
  std::uint64_t fetches() const;
  const std::string& url() const;

 private:
  struct state;
  std::shared_ptr<state> s_;
};

}  // namespace switchyard::auth
