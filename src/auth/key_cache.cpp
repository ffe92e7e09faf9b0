#include "switchyard/auth/key_cache.hpp"

#include "switchyard/core/coarse_clock.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <vector>

namespace switchyard::auth {

key_cache::key_cache(net::any_io_executor loop, lookup_fn lookup, key_cache_options opts)
    : loop_(std::move(loop)), lookup_(std::move(lookup)), opts_(opts) {}

key_cache::~key_cache() {
  *alive_ = false;
  for (auto& [hash, f] : flights_) {
    (void)hash;
    f->invalidated = true;
  }
}

std::optional<key_cache::key_ptr> key_cache::cached(const std::string& hash) {
  auto it = entries_.find(hash);
  if (it == entries_.end()) {
    return std::nullopt;
  }
  auto now = core::coarse_now();  // entry ages are coarse (store())
  const auto& e = it->second;
  if (e.key) {
    ++hits_;
    if (now - e.fetched >= opts_.ttl && !flights_.contains(hash)) {
      key_ptr k = e.key;
      start_fetch(hash);  // refresh in the background; answer from memory now
      return k;
    }
    return e.key;
  }
  if (now - e.fetched < opts_.negative_ttl) {
    ++hits_;
    return key_ptr{};
  }
  return std::nullopt;
}

net::awaitable<core::result<key_cache::key_ptr>> key_cache::get(std::string hash) {
  if (auto hit = cached(hash)) {
    co_return std::move(*hit);
  }
  std::shared_ptr<flight> f;
  if (auto it = flights_.find(hash); it != flights_.end()) {
    f = it->second;
  } else {
    f = start_fetch(hash);
  }
  if (!f->out) {
    co_await f->done.async_wait(net::as_tuple(net::use_awaitable));
  }
  if (!f->out) {
    co_return core::make_error(core::errc::unavailable, "key lookup was abandoned");
  }
  co_return *f->out;
}

std::shared_ptr<key_cache::flight> key_cache::start_fetch(const std::string& hash) {
  auto f = std::make_shared<flight>(loop_);
  flights_[hash] = f;
  ++lookups_;
  net::co_spawn(loop_, fetch(hash, f), [f](std::exception_ptr e) {
    if (e) {
      // fetch() catches what lookups throw; this is a bug path. Wake the waiters anyway.
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        spdlog::error("key cache: lookup task failed: {}", ex.what());
      }
      if (!f->out) {
        f->out = core::make_error(core::errc::internal, "key lookup failed");
      }
      f->done.cancel();
    }
  });
  return f;
}

net::awaitable<void> key_cache::fetch(std::string hash, std::shared_ptr<flight> f) {
  auto alive = alive_;
  core::result<std::optional<virtual_key>> r = core::make_error(core::errc::internal, "key lookup did not run");
  try {
    r = co_await lookup_(hash);
  } catch (const std::exception& e) {
    r = core::make_error(core::errc::internal, std::string("key lookup threw: ") + e.what());
  }
  if (!*alive) {
    f->out = core::make_error(core::errc::unavailable, "key cache closed");
    f->done.cancel();
    co_return;
  }
  if (auto it = flights_.find(hash); it != flights_.end() && it->second == f) {
    flights_.erase(it);
  }
  if (r) {
    key_ptr k = *r ? std::make_shared<const virtual_key>(std::move(**r)) : key_ptr{};
    if (!f->invalidated) {
      store(hash, k);
    }
    f->out = std::move(k);
  } else {
    if (r.error().code == core::errc::unavailable) {
      spdlog::warn("key cache: lookup failed, database unavailable: {}", r.error().message);
    }
    f->out = r.error();  // an older positive entry, if any, stays and keeps serving
  }
  f->done.cancel();
}

void key_cache::store(const std::string& hash, key_ptr key) {
  if (entries_.size() >= opts_.max_entries && !entries_.contains(hash)) {
    // Drop the older half (rare: only with more distinct keys than max_entries).
    std::vector<steady::time_point> times;
    times.reserve(entries_.size());
    for (const auto& [h, e] : entries_) {
      (void)h;
      times.push_back(e.fetched);
    }
    auto mid = times.begin() + static_cast<std::ptrdiff_t>(times.size() / 2);
    std::nth_element(times.begin(), mid, times.end());
    auto cut = *mid;
    std::erase_if(entries_, [cut](const auto& kv) { return kv.second.fetched <= cut; });
  }
  entries_[hash] = entry{std::move(key), core::coarse_now()};
}

void key_cache::set_spend(const std::string& hash, double spend) {
  auto it = entries_.find(hash);
  if (it == entries_.end() || !it->second.key || it->second.key->spend == spend) {
    return;
  }
  auto updated = std::make_shared<virtual_key>(*it->second.key);
  updated->spend = spend;
  it->second.key = std::move(updated);
}

void key_cache::invalidate(const std::string& hash) {
  entries_.erase(hash);
  // Also entries reached through another hash that resolve to this key (a regenerated
  // key's old value in its grace period).
  std::erase_if(entries_, [&hash](const auto& kv) { return kv.second.key && kv.second.key->token == hash; });
  if (auto it = flights_.find(hash); it != flights_.end()) {
    it->second->invalidated = true;
    flights_.erase(it);  // the next get() starts a fresh lookup
  }
}

void key_cache::invalidate_owner(std::string_view kind, std::string_view id) {
  auto owned = [&](const virtual_key& k) {
    if (kind == "team") {
      return k.team_id == id;
    }
    if (kind == "user") {
      return k.user_id == id;
    }
    if (kind == "org") {
      return k.organization_id == id;
    }
    return false;
  };
  std::erase_if(entries_, [&](const auto& kv) { return kv.second.key && owned(*kv.second.key); });
  // A lookup in flight may have read the owner before the change: do not store it.
  for (auto& [hash, f] : flights_) {
    (void)hash;
    f->invalidated = true;
  }
  flights_.clear();
}

void key_cache::clear() {
  entries_.clear();
  for (auto& [hash, f] : flights_) {
    (void)hash;
    f->invalidated = true;
  }
  flights_.clear();
}

}  // namespace switchyard::auth
