// The response cache's two tiers: a memory LRU bounded in bytes (memory_lru) in front of
// Redis (or alone for type local, or while Redis is away).
//
//  - get_memory(): the memory tier, a plain call (the hot path of a hit).
//  - get_redis(): one GET, given up after `redis_timeout` (a few ms) or at once while
//    Redis is unreachable: a miss, never an error. A hit is copied into the memory tier.
//  - put(): to Redis as a fire-and-forget SET with its TTL; into memory only when there
//    is no Redis or the write cannot go (a Redis hit brings it to memory later). A write
//    is dropped (and counted) while Redis is unreachable or `max_pending_writes` are in
//    flight, so a slow Redis never holds memory or requests. Entries larger than
//    `max_entry_bytes` are not cached at all.
// Redis keys are "<redis_prefix><key>" with the value "<stored_ms> <expires_ms>\n<json>",
// or "<stored_ms> <expires_ms> <known> <prompt> <completion> <total>\n<json>" with the usage.
// The Redis client reconnects by itself: once Redis is back, lookups and writes work
// again without a restart.
//
// Owner: app/ (one per gateway). Thread: the loop thread only. Never blocks.
#pragma once
#include "switchyard/cache/memory_lru.hpp"
#include "switchyard/core/asio.hpp"
#include "switchyard/core/error.hpp"
#include "switchyard/store/redis/redis_client.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <unordered_map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace switchyard::cache {

struct cache_options {
  std::size_t memory_bytes = 64u << 20;     // SWITCHYARD_CACHE_MEMORY_MB
  std::size_t max_entry_bytes = 1u << 20;   // SWITCHYARD_CACHE_MAX_ENTRY_KB
  std::chrono::milliseconds redis_timeout{5};  // cache_params.socket_timeout, SWITCHYARD_CACHE_REDIS_TIMEOUT_MS
  // How long an entry stays in the memory tier at most (cache_params.default_in_memory_ttl
  // under type redis); 0: as long as it lives.
  std::int64_t memory_max_ttl_ms = 0;
  std::size_t max_pending_writes = 1000;
  std::string redis_prefix = "switchyard:cache:";
};

struct cache_counters {
  std::uint64_t memory_hits = 0;
  std::uint64_t redis_hits = 0;
  std::uint64_t misses = 0;
  std::uint64_t redis_lookup_failures = 0;  // timeouts and errors (counted as misses too)
  std::uint64_t writes = 0;
  std::uint64_t writes_dropped = 0;  // Redis unreachable, too many in flight, or failed
  std::uint64_t too_large = 0;       // not cached: over max_entry_bytes
};

// An answer's token usage, stored beside it (entry::has_usage) when `stored`.
struct stored_usage {
  bool stored = false;
  bool known = false;
  std::int64_t prompt_tokens = 0;
  std::int64_t completion_tokens = 0;
  std::int64_t total_tokens = 0;
};

// A group entry: stored under one key, it lists other keys (an embeddings list's items,
// under the whole request's key), so that removing it removes them. Never an answer: no
// answer starts with the marker, and no lookup reads a group's key as an answer.
inline constexpr std::string_view group_marker = "\x1eswitchyard:group\n";
std::string group_entry(const std::vector<std::string>& keys);

class response_cache {
 public:
  using clock_fn = std::function<std::int64_t()>;  // ms since the epoch

  // `redis` null: memory only. `now_ms` empty: the system clock.
  response_cache(net::any_io_executor ex, store::redis::redis_client* redis, cache_options opts,
                 clock_fn now_ms = {});

  std::optional<entry> get_memory(const std::string& key);
  // `key` must outlive the wait (the request's own key does).
  net::awaitable<std::optional<entry>> get_redis(const std::string& key);
  // `ttl_s` <= 0: not stored. Returns false when not stored (too large, no TTL). With
  // `copy`, the entry stored is also copied there.
  bool put(const std::string& key, std::string value, double ttl_s, stored_usage usage = {},
           entry* copy = nullptr);

  // Removes `keys` from both tiers, and the keys a group entry among them lists; the
  // number found in either. An error when Redis did not confirm the deletion (down, slow,
  // refused): the memory tier is emptied of them all the same, but Redis may still hold
  // them, and would serve them again once it answers.
  net::awaitable<core::result<std::size_t>> remove(std::vector<std::string> keys);
  // Deletes every cache key in Redis (SCAN + UNLINK of the prefix; nothing else in that
  // Redis is touched), then empties the memory tier. An error when Redis could not be
  // flushed whole: the memory tier is then left as it was, and the error says how many
  // Redis entries were deleted before the failure.
  net::awaitable<core::result<void>> flush();
  // Writes and reads back a probe entry; error when Redis does not answer.
  net::awaitable<core::result<void>> ping();

  // An answer not offered to put() because it outgrew max_entry_bytes while captured.
  void note_too_large() { ++counters_.too_large; }

  bool has_redis() const { return redis_ != nullptr; }
  cache_counters counters() const;
  const memory_lru& memory() const { return memory_; }
  const cache_options& options() const { return opts_; }
  std::int64_t now_ms() const { return now_(); }
  std::size_t pending_writes() const { return writes_->pending; }

 private:
  // Into the memory tier, its expiry held to memory_max_ttl_ms from now.
  void put_memory(const std::string& key, entry e);
  // The SET of `e`, queued: false when it cannot go (counted as dropped).
  bool write_redis(const std::string& key, const entry& e, std::int64_t ttl_ms);

  net::any_io_executor ex_;
  store::redis::redis_client* redis_;
  cache_options opts_;
  clock_fn now_;
  memory_lru memory_;
  cache_counters counters_;  // writes_dropped: those that could not go (failed ones: writes_->failed)
  // The writes Redis has not answered yet; shared with them, so a cache destroyed first
  // leaves them a live place to report to.
  struct write_tally final : store::redis::send_observer {
    std::size_t pending = 0;
    std::uint64_t failed = 0;
    void sent(bool ok) noexcept override {
      --pending;
      if (!ok) {
        ++failed;
      }
    }
  };
  std::shared_ptr<write_tally> writes_;
  // The GET and the SET being queued, written straight in RESP (the key as its prefix
  // and the cache key, the value as its header and the answer); kept for the next ones.
  store::redis::command_text get_cmd_;
  store::redis::command_text set_cmd_;
};

// Identical requests in flight on this instance: the first (the leader) calls the
// provider; the others wait for it (bounded by the flight's deadline), then look the
// cache up again. A leader that fails stores nothing, so its followers call the provider
// themselves.
// Owner: the cache stage. Thread: the loop thread only. Never blocks.
class inflight {
 public:
  struct flight;
  explicit inflight(net::any_io_executor ex) : ex_(std::move(ex)) {}
  ~inflight();

  // The flight for `key`, else null.
  std::shared_ptr<flight> find(const std::string& key) const;
  // Starts a flight for `key` (the caller leads it); followers wait at most `max_wait`.
  std::shared_ptr<flight> lead(const std::string& key, std::chrono::milliseconds max_wait);
  // The leader is done (stored or failed): wakes the followers.
  void land(const std::string& key, const std::shared_ptr<flight>& f);
  // A request will wait on `f` (called when it decides to, before it waits: the leader
  // may land in between, and must know it has a follower by then).
  static void join(flight& f);
  // Waits until `f` lands or its deadline passes.
  static net::awaitable<void> follow(std::shared_ptr<flight> f);
  // Whether a request joined `f`; the leader then hands its answer over (hand_over)
  // before it lands, and the followers read it (result): they need no tier to find it
  // (the memory tier may be off, and a Redis write may not have landed yet).
  static bool has_followers(const flight& f);
  static void hand_over(flight& f, entry e);
  static const entry* result(const flight& f);

  std::size_t size() const;

 private:
  net::any_io_executor ex_;
  std::unordered_map<std::string, std::shared_ptr<flight>> flights_;
};

}  // namespace switchyard::cache
