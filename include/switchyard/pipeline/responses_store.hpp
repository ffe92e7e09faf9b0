// Where the gateway keeps the Responses API conversations it answered itself (for
// providers without server-side state: Anthropic, Ollama, chat-only OpenAI-compatible
// servers), so that `previous_response_id`, GET and DELETE work for them.
//
//  - memory: an LRU bounded in bytes (cache::memory_lru), each entry expiring after
//    `ttl`; always on, on the loop thread.
//  - Redis (when the gateway has one): every entry is also written, fire-and-forget,
//    as "<redis_prefix><id>" with the same TTL (PX), so that a follow-up reaching
//    another instance finds it. While Redis is connected a lookup asks it (bounded by
//    `redis_timeout`), so that a DELETE on one instance holds on all; the memory copy
//    answers when Redis is unreachable or does not answer in time. A write is dropped
//    while Redis is unreachable or `max_pending_writes` are in flight.
// An entry is the JSON text {"owner":..., "response":{...}, "items":[...]}: the Response
// object as the client got it, and the conversation up to it as Responses input items.
//
// Owner: app/ (one per gateway), or llm_pipeline (memory only) when none is given.
// Thread: the loop thread only. Never blocks.
#pragma once
#include "switchyard/cache/memory_lru.hpp"
#include "switchyard/core/asio.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <unordered_set>

namespace switchyard::store::redis {
class redis_client;
}

namespace switchyard::pipeline {

struct responses_store_options {
  std::size_t memory_bytes = 64u << 20;         // SWITCHYARD_RESPONSES_STORE_MB
  std::chrono::seconds ttl{24 * 3600};           // SWITCHYARD_RESPONSES_STORE_TTL_S
  std::size_t max_entry_bytes = 8u << 20;       // larger conversations are not kept
  std::chrono::milliseconds redis_timeout{200};
  std::size_t max_pending_writes = 1000;
  std::string redis_prefix = "switchyard:responses:";
  // Reads the options above from the environment (defaults when unset or invalid).
  static responses_store_options from_env();
};

struct responses_store_counters {
  std::uint64_t stored = 0;
  std::uint64_t too_large = 0;
  std::uint64_t memory_hits = 0;
  std::uint64_t redis_hits = 0;
  std::uint64_t misses = 0;
  std::uint64_t redis_writes_dropped = 0;
};

class responses_store {
 public:
  using clock_fn = std::function<std::int64_t()>;  // milliseconds since the epoch
  // `ex` runs the Redis writes; `redis` may be null (memory only). `now_ms` for tests.
  responses_store(net::any_io_executor ex, store::redis::redis_client* redis, responses_store_options opts = {},
                  clock_fn now_ms = {});

  // The entry for `id`: Redis when connected (copied into memory), else memory.
  // nullopt: unknown, deleted or expired.
  net::awaitable<std::optional<std::string>> get(std::string id);
  // Keeps `value` for `id` (memory now; Redis in the background). False when too large.
  bool put(const std::string& id, std::string value);
  // Forgets `id` in both tiers. True if it was known to either.
  net::awaitable<bool> erase(std::string id);

  const responses_store_counters& counters() const { return counters_; }
  const responses_store_options& options() const { return opts_; }
  std::size_t memory_bytes() const { return memory_.bytes(); }

 private:
  net::awaitable<void> write_redis(std::string id, std::string value, std::int64_t ttl_ms);

  net::any_io_executor ex_;
  store::redis::redis_client* redis_;
  responses_store_options opts_;
  clock_fn now_;
  cache::memory_lru memory_;
  std::size_t pending_writes_ = 0;
  std::unordered_set<std::string> writing_;  // ids whose SET is in flight
  responses_store_counters counters_;
};

}  // namespace switchyard::pipeline
