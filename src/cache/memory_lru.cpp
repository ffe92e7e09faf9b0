#include "switchyard/cache/memory_lru.hpp"

namespace switchyard::cache {

const entry* memory_lru::get(const std::string& key, std::int64_t now_ms) {
  auto it = map_.find(key);
  return it == map_.end() ? nullptr : live(it->second, now_ms);
}

const entry* memory_lru::live(list_t::iterator node_it, std::int64_t now_ms) {
  if (node_it->e.expires_ms <= now_ms) {
    drop(node_it);
    return nullptr;
  }
  lru_.splice(lru_.begin(), lru_, node_it);
  return &node_it->e;
}

bool memory_lru::put(const std::string& key, entry e) {
  erase(key);
  node n{key, std::move(e)};
  const auto c = cost(n);
  if (c > max_bytes_) {
    return false;
  }
  while (!lru_.empty() && bytes_ + c > max_bytes_) {
    drop(std::prev(lru_.end()));
    ++evictions_;
  }
  lru_.push_front(std::move(n));
  map_.emplace(std::string_view(lru_.front().key), lru_.begin());
  bytes_ += c;
  return true;
}

bool memory_lru::erase(const std::string& key) {
  auto it = map_.find(key);
  if (it == map_.end()) {
    return false;
  }
  drop(it->second);
  return true;
}

void memory_lru::clear() {
  map_.clear();
  lru_.clear();
  bytes_ = 0;
}

void memory_lru::drop(list_t::iterator it) {
  bytes_ -= cost(*it);
  map_.erase(std::string_view(it->key));
  lru_.erase(it);
}

}  // namespace switchyard::cache
