// key_cache: virtual keys by hash, in memory, in front of the database lookup.
//
// Owner: app/ (one per process; destroyed before the io_context). Thread: the loop thread
// only (no locking). Blocking: never; the lookup is an awaitable (app/ wires it to
// db_executor::run(find_key_by_hash_blocking)).
//
// - Hit (younger than `ttl`): answered from memory, no lookup.
// - Positive entry older than `ttl`: answered from memory at once, and ONE background
//   refresh starts (stale-while-revalidate). So a database outage never delays or fails a
//   key that is cached: a failed refresh keeps the old entry.
// - Miss, or negative entry older than `negative_ttl`: one lookup per hash at a time
//   (single flight); concurrent requests for that hash wait on it. Its result is cached,
//   "no such key" for `negative_ttl` only. A failed lookup is not cached: waiters get the
//   error (errc::unavailable when the database is unreachable).
// - invalidate(hash): forgets the entry now (and entries of other hashes that resolve to the
//   key `hash`, i.e. regenerated keys' old values; a linear scan); a lookup in flight for that hash still answers
//   its waiters but does not store its (possibly outdated) result.
#pragma once
#include "switchyard/auth/virtual_key.hpp"
#include "switchyard/core/asio.hpp"
#include "switchyard/core/error.hpp"

#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace switchyard::auth {

struct key_cache_options {
  std::chrono::milliseconds ttl{60000};          // LiteLLM's user_api_key_cache_ttl
  std::chrono::milliseconds negative_ttl{5000};  // "no such key"
  std::size_t max_entries = 100000;              // beyond: the oldest half is dropped
};

class key_cache {
 public:
  // Resolves a hash: a key, nullopt for "no such key", or an error (not cached).
  using lookup_fn = std::function<net::awaitable<core::result<std::optional<virtual_key>>>(std::string hash)>;
  using key_ptr = std::shared_ptr<const virtual_key>;

  key_cache(net::any_io_executor loop, lookup_fn lookup, key_cache_options opts = {});
  ~key_cache();  // a lookup still in flight completes without touching *this
  key_cache(const key_cache&) = delete;
  key_cache& operator=(const key_cache&) = delete;

  // The key for `hash`; nullptr when there is no such key.
  net::awaitable<core::result<key_ptr>> get(std::string hash);
  // get()'s answer when memory has it (a hit, stale included: the refresh starts as in
  // get(); or a fresh "no such key": nullptr), without a coroutine; nullopt when get()
  // has to look the key up.
  std::optional<key_ptr> cached(const std::string& hash);

  void invalidate(const std::string& hash);
  // The key's running spend as the spend writer just wrote it (no database read): the
  // cached entry, if any, is replaced by a copy with the new figure.
  void set_spend(const std::string& hash, double spend);
  // Forgets every cached key of a team / user / organisation (kind "team", "user", "org"),
  // positive and negative lookups in flight included (a linear scan; management changes
  // are rare). Used when the owner's models, role or blocked state change.
  void invalidate_owner(std::string_view kind, std::string_view id);
  void clear();

  std::size_t lookups() const noexcept { return lookups_; }  // lookups started (DB queries)
  std::size_t size() const noexcept { return entries_.size(); }
  std::size_t hits() const noexcept { return hits_; }  // answered from memory (stale included)

 private:
  using steady = std::chrono::steady_clock;
  struct entry {
    key_ptr key;  // nullptr: negative
    steady::time_point fetched;
  };
  struct flight {
    explicit flight(net::any_io_executor ex) : done(ex, steady::time_point::max()) {}
    net::steady_timer done;  // cancelled when `out` is set
    bool invalidated = false;
    std::optional<core::result<key_ptr>> out;
  };

  std::shared_ptr<flight> start_fetch(const std::string& hash);
  net::awaitable<void> fetch(std::string hash, std::shared_ptr<flight> f);
  void store(const std::string& hash, key_ptr key);

  net::any_io_executor loop_;
  lookup_fn lookup_;
  key_cache_options opts_;
  std::unordered_map<std::string, entry> entries_;
  std::unordered_map<std::string, std::shared_ptr<flight>> flights_;
  std::size_t lookups_ = 0;
  std::size_t hits_ = 0;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  // false once destroyed
};

}  // namespace switchyard::auth
