// The memory tier: least recently used entries, bounded in bytes (key + value + a fixed
// per-entry overhead), each with its own expiry. Times are passed in (milliseconds since
// the epoch), so tests drive the clock.
// Owner: response_cache. Thread: the loop thread only (no locking). Never blocks.
#pragma once
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

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
  // Bytes counted per entry on top of its key and value (node, index slot, strings).
  static constexpr std::size_t overhead = 128;
  // The index's hash of a key. Tests pass one that collides on purpose.
  using hash_fn = std::uint64_t (*)(std::string_view);
  static std::uint64_t default_hash(std::string_view key) noexcept;

  explicit memory_lru(std::size_t max_bytes, hash_fn hash = default_hash) : max_bytes_(max_bytes), hash_(hash) {}
  ~memory_lru() { clear(); }
  memory_lru(const memory_lru&) = delete;
  memory_lru& operator=(const memory_lru&) = delete;

  // The live entry for `key` (made the most recent), else null. An expired entry is
  // dropped. The pointer is valid until the next call that changes the cache.
  const entry* get(const std::string& key, std::int64_t now_ms);
  // The same with the clock read only when the key is there (a miss reads no clock).
  template <class Now>
    requires std::invocable<const Now&>
  const entry* get(const std::string& key, const Now& now_ms) {
    node* n = find(key, hash_(key));
    return n == nullptr ? nullptr : live(n, now_ms());
  }
  // Inserts or replaces; evicts the least recent entries until the bound holds. An entry
  // larger than the whole bound is not kept (returns false).
  bool put(const std::string& key, entry e);
  bool erase(const std::string& key);
  void clear();

  std::size_t bytes() const { return bytes_; }
  std::size_t size() const { return size_; }
  std::size_t max_bytes() const { return max_bytes_; }
  std::size_t evictions() const { return evictions_; }

 private:
  // One allocation per entry besides its strings, linked from the most recent (head_) to
  // the least (tail_). Its hash is kept, so dropping the oldest entry (whose key is cold
  // in the CPU's caches) neither hashes nor compares its key.
  struct node {
    node* newer = nullptr;
    node* older = nullptr;
    std::uint64_t hash = 0;
    std::string key;
    entry e;
  };
  // The index: open addressing with linear probing over a power-of-two array at most
  // half full. A lookup reads one slot line (the hash beside the pointer) and touches a
  // node only when the hashes match; a miss, the common case under unique traffic,
  // touches no node at all (std::unordered_map walked two or three list nodes).
  struct slot {
    std::uint64_t hash = 0;
    node* n = nullptr;
  };
  static std::size_t cost(const node& n) { return n.key.size() + n.e.value.size() + overhead; }
  node* find(std::string_view key, std::uint64_t h) const;
  void index_insert(node* n);
  void index_erase(const node* n);  // by pointer: no key compare
  void grow();
  void link_front(node* n);
  void unlink(node* n);
  void drop(node* n);
  const entry* live(node* n, std::int64_t now_ms);  // null (and dropped) once expired

  std::size_t max_bytes_;
  hash_fn hash_;
  std::size_t bytes_ = 0;
  std::size_t size_ = 0;
  std::size_t evictions_ = 0;
  node* head_ = nullptr;  // most recent
  node* tail_ = nullptr;  // least recent
  std::vector<slot> slots_;  // empty until the first put; size a power of two
};

}  // namespace switchyard::cache
