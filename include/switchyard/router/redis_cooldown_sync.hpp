// Shares cooldowns between gateway instances through Redis (so that every instance stops
// sending to a failing deployment, as LiteLLM's Redis-backed router does): a local cooldown
// decision is written as `deployment:{id}:cooldown` = {exception_received, status_code,
// timestamp, cooldown_time, deadline_ms, origin} with PX = the time left, and PUBLISHed on
// `switchyard:cooldown`; every instance subscribes and applies what it hears to its
// in-memory copy at once (deadlines only ever move later). At startup each configured
// deployment's key is read once, so an instance started during a cooldown honours it.
//
// Redis is never waited on in a request path: publish() spawns a detached coroutine (SET
// then PUBLISH, each bounded by a short command timeout; failures only logged at debug);
// while Redis is down the in-memory copy serves and the redis_client fails fast.
// Deadlines travel as wall-clock epoch milliseconds (instances share no steady clock).
//
// usage-based-routing-v2: every local rpm/tpm increment is added to
// `deployment:{id}:rpm:{minute}` / `deployment:{id}:tpm:{minute}` (INCRBY + EXPIRE 120 s,
// fire-and-forget; minute = epoch seconds / 60), and the totals of every deployment are read
// back every 100 ms (MGET) into the router, so instances agree within about 100 ms.
//
// Owner: app/ (one per router; the router and the redis_client must outlive it and every
// coroutine it spawned, i.e. destroy it on the loop thread before them). Thread: the loop
// thread. Never blocks.
#pragma once
#include "switchyard/core/asio.hpp"
#include "switchyard/router/cooldowns.hpp"

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

namespace switchyard::store::redis {
class redis_client;
}

namespace switchyard::router {

class router;

class redis_cooldown_sync {
 public:
  static constexpr const char* channel = "switchyard:cooldown";

  // Installs itself as the router's cooldown listener.
  redis_cooldown_sync(net::any_io_executor loop, store::redis::redis_client& redis, router& rt);
  ~redis_cooldown_sync();
  redis_cooldown_sync(const redis_cooldown_sync&) = delete;
  redis_cooldown_sync& operator=(const redis_cooldown_sync&) = delete;

  // Subscribes (the client re-subscribes by itself after reconnects), loads the cooldowns
  // already in Redis, then (usage-based-routing-v2 only) polls the usage counters every
  // 100 ms until the loop stops. Never throws on Redis errors.
  net::awaitable<void> start();

  // Fire-and-forget SET + PUBLISH of a local decision.
  void publish(const std::string& id, const cooldown_entry& e);

  // Applies one pub/sub message or stored record (JSON); false if malformed or stale.
  bool apply(std::string_view message);

  // Key of a deployment's record.
  static std::string key_of(const std::string& id) { return "deployment:" + id + ":cooldown"; }

 private:
  net::any_io_executor loop_;
  store::redis::redis_client& redis_;
  router& router_;
  std::string origin_;  // this instance, to skip its own messages
};

}  // namespace switchyard::router
