// The memory tier: least recently used entries, bounded in bytes (key + value + a fixed
// per-entry overhead), each with its own expiry. Times are passed in (milliseconds since
// the epoch), so tests drive the clock.
// Owner: response_cache. Thread: the loop thread only (no locking). Never blocks.
#pragma once
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <list>
#include <string>
#include <string_view>
#include <unordered_map>

namespace switchyard::cache {

struct entry {
  std::string value;         // the cached response (OpenAI JSON)
  std::int64_t stored_ms = 0;   // when it was written (s-maxage compares against it)
  std::int64_t expires_ms = 0;  // not served at or after this
  // The answer's token usage, kept beside it so that a hit needs no parse of `value`
  // (has_usage false: an entry written without it; the hit reads it from `value`).
  bool has_usage = false;
  bool usage_known = false;
  std::int64_t prompt_tokens = 0;
  std::int64_t completion_tokens = 0;
  std::int64_t total_tokens = 0;
};

class memory_lru {
 public:
  // Bytes counted per entry on top of its key and value (list node, map slot, strings).
  static constexpr std::size_t overhead = 128;

  explicit memory_lru(std::size_t max_bytes) : max_bytes_(max_bytes) {}

  // The live entry for `key` (made the most recent), else null. An expired entry is
  // dropped. The pointer is valid until the next call that changes the cache.
  const entry* get(const std::string& key, std::int64_t now_ms);
  // The same with the clock read only when the key is there (a miss reads no clock).
  template <class Now>
    requires std::invocable<const Now&>
  const entry* get(const std::string& key, const Now& now_ms) {
    auto it = map_.find(key);
    return it == map_.end() ? nullptr : live(it->second, now_ms());
  }
  // Inserts or replaces; evicts the least recent entries until the bound holds. An entry
  // larger than the whole bound is not kept (returns false).
  bool put(const std::string& key, entry e);
  bool erase(const std::string& key);
  void clear();

  std::size_t bytes() const { return bytes_; }
  std::size_t size() const { return map_.size(); }
  std::size_t max_bytes() const { return max_bytes_; }
  std::size_t evictions() const { return evictions_; }

 private:
  struct node {
    std::string key;
    entry e;
  };
  using list_t = std::list<node>;
  static std::size_t cost(const node& n) { return n.key.size() + n.e.value.size() + overhead; }
  void drop(list_t::iterator it);
  const entry* live(list_t::iterator it, std::int64_t now_ms);  // null (and dropped) once expired

  std::size_t max_bytes_;
  std::size_t bytes_ = 0;
  std::size_t evictions_ = 0;
  list_t lru_;  // front: most recent
  std::unordered_map<std::string_view, list_t::iterator> map_;  // views into the nodes' keys
};

}  // namespace switchyard::cache
