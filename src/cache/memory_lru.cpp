#include "switchyard/cache/memory_lru.hpp"

#include <functional>

namespace switchyard::cache {

std::uint64_t memory_lru::default_hash(std::string_view key) noexcept { return std::hash<std::string_view>{}(key); }

memory_lru::node* memory_lru::find(std::string_view key, std::uint64_t h) const {
  if (slots_.empty()) {
    return nullptr;
  }
  const std::size_t mask = slots_.size() - 1;
  for (std::size_t i = h & mask;; i = (i + 1) & mask) {
    const slot& s = slots_[i];
    if (s.n == nullptr) {
      return nullptr;
    }
    if (s.hash == h && s.n->key == key) {
      return s.n;
    }
  }
}

void memory_lru::grow() {
  std::vector<slot> old = std::move(slots_);
  slots_.assign(old.empty() ? 16 : old.size() * 2, slot{});
  const std::size_t mask = slots_.size() - 1;
  for (const slot& s : old) {
    if (s.n != nullptr) {
      std::size_t i = s.hash & mask;
      while (slots_[i].n != nullptr) {
        i = (i + 1) & mask;
      }
      slots_[i] = s;
    }
  }
}

void memory_lru::index_insert(node* n) {
  if ((size_ + 1) * 2 > slots_.size()) {
    grow();
  }
  const std::size_t mask = slots_.size() - 1;
  std::size_t i = n->hash & mask;
  while (slots_[i].n != nullptr) {
    i = (i + 1) & mask;
  }
  slots_[i] = slot{n->hash, n};
  ++size_;
}

void memory_lru::index_erase(const node* n) {
  const std::size_t mask = slots_.size() - 1;
  std::size_t hole = n->hash & mask;
  while (slots_[hole].n != n) {
    hole = (hole + 1) & mask;
  }
  // Backward shift: each later slot of the same run moves into the hole unless its home
  // lies cyclically in (hole, j], where a lookup for it would stop before the hole.
  for (std::size_t j = (hole + 1) & mask; slots_[j].n != nullptr; j = (j + 1) & mask) {
    const std::size_t home = slots_[j].hash & mask;
    const bool stays = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
    if (!stays) {
      slots_[hole] = slots_[j];
      hole = j;
    }
  }
  slots_[hole] = slot{};
  --size_;
}

void memory_lru::link_front(node* n) {
  n->newer = nullptr;
  n->older = head_;
  if (head_ != nullptr) {
    head_->newer = n;
  } else {
    tail_ = n;
  }
  head_ = n;
}

void memory_lru::unlink(node* n) {
  (n->newer != nullptr ? n->newer->older : head_) = n->older;
  (n->older != nullptr ? n->older->newer : tail_) = n->newer;
}

const entry* memory_lru::get(const std::string& key, std::int64_t now_ms) {
  node* n = find(key, hash_(key));
  return n == nullptr ? nullptr : live(n, now_ms);
}

const entry* memory_lru::live(node* n, std::int64_t now_ms) {
  if (n->e.expires_ms <= now_ms) {
    drop(n);
    return nullptr;
  }
  if (n != head_) {
    unlink(n);
    link_front(n);
  }
  return &n->e;
}

bool memory_lru::put(const std::string& key, entry e) {
  const std::uint64_t h = hash_(key);
  if (node* old = find(key, h)) {
    drop(old);
  }
  const std::size_t c = key.size() + e.value.size() + overhead;
  if (c > max_bytes_) {
    return false;
  }
  while (tail_ != nullptr && bytes_ + c > max_bytes_) {
    drop(tail_);
    ++evictions_;
  }
  auto* n = new node{nullptr, nullptr, h, key, std::move(e)};
  index_insert(n);
  link_front(n);
  bytes_ += c;
  return true;
}

bool memory_lru::erase(const std::string& key) {
  node* n = find(key, hash_(key));
  if (n == nullptr) {
    return false;
  }
  drop(n);
  return true;
}

void memory_lru::clear() {
  for (node* n = head_; n != nullptr;) {
    node* older = n->older;
    delete n;
    n = older;
  }
  head_ = tail_ = nullptr;
  std::vector<slot>().swap(slots_);  // a flush gives the index's memory back too
  size_ = 0;
  bytes_ = 0;
}

void memory_lru::drop(node* n) {
  bytes_ -= cost(*n);
  index_erase(n);
  unlink(n);
  delete n;
}

}  // namespace switchyard::cache
