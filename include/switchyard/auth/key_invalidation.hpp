// key_invalidation: makes key changes (update, block, delete, regenerate) take effect on
// every instance at once. publish(hash) forgets the key in this instance's key_cache and,
// when Redis is configured, PUBLISHes the hash on `channel`; every instance subscribes and
// invalidates what it hears (its own messages too: harmless). Without Redis only the local
// cache is invalidated (other instances catch up after the cache TTL).
//
// Owner: app/ (after the key_cache and redis_client, destroyed before them). Thread: the
// loop thread. Never blocks: PUBLISH is fire-and-forget (a short command timeout; failures
// logged at warn, the TTL remains the fallback).
#pragma once
#include "switchyard/auth/key_cache.hpp"
#include "switchyard/core/asio.hpp"

#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace switchyard::store::redis {
class redis_client;
}

namespace switchyard::auth {

class key_invalidation {
 public:
  static constexpr const char* channel = "switchyard:key-invalidate";

  // `redis` may be null (no Redis configured).
  key_invalidation(net::any_io_executor loop, key_cache& cache, store::redis::redis_client* redis);
  ~key_invalidation();
  key_invalidation(const key_invalidation&) = delete;
  key_invalidation& operator=(const key_invalidation&) = delete;

  // Subscribes to `channel` (the redis_client re-subscribes after reconnects). No-op
  // without Redis. Never throws on Redis errors.
  net::awaitable<void> start();

  // Invalidates `hash` here now, and everywhere through Redis.
  void publish(const std::string& hash);
  // Invalidates every key of a team / user / organisation (kind "team", "user", "org")
  // here now, and everywhere: the message is "<kind>:<id>" (a hash never has a colon).
  void publish_owner(const std::string& kind, const std::string& id);

  // What a message on `channel` does to a cache (a hash, or "<kind>:<id>").
  static void apply(key_cache& cache, std::string_view message);

  // Another cache that wants every message too (the end-user cache: "end_user:<id>"),
  // heard and published alike; set before start().
  void set_listener(std::function<void(std::string_view)> listener) { listener_ = std::move(listener); }

 private:
  std::function<void(std::string_view)> listener_;
  net::any_io_executor loop_;
  key_cache& cache_;
  store::redis::redis_client* redis_;
};

}  // namespace switchyard::auth
