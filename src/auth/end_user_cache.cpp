#include "switchyard/auth/end_user_cache.hpp"

#include "switchyard/core/coarse_clock.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <spdlog/spdlog.h>

namespace switchyard::auth {

end_user_cache::end_user_cache(net::any_io_executor loop, lookup_fn lookup, end_user_cache_options opts)
    : loop_(std::move(loop)), lookup_(std::move(lookup)), opts_(opts) {}

end_user_cache::~end_user_cache() {
  *alive_ = false;
  for (auto& [id, f] : flights_) {
    (void)id;
    f->invalidated = true;
  }
}

end_user_cache::ptr end_user_cache::with_defaults(std::string id, std::optional<end_user> row) const {
  end_user u = row ? std::move(*row) : end_user{};
  u.known = row.has_value();
  u.limits.level = limit_level::end_user;
  u.limits.id = std::move(id);
  if (!u.limits.max_budget) {
    u.limits.max_budget = opts_.default_max_budget;
  }
  return std::make_shared<const end_user>(std::move(u));
}

std::optional<end_user_cache::ptr> end_user_cache::cached(const std::string& id) {
  auto it = entries_.find(id);
  if (it == entries_.end()) {
    return std::nullopt;
  }
  const auto age = core::coarse_now() - it->second.fetched;
  if (age < (it->second.value->known ? opts_.ttl : opts_.negative_ttl)) {
    return it->second.value;
  }
  if (it->second.value->known) {
    ptr v = it->second.value;
    if (!flights_.contains(id)) {
      start_fetch(id);  // refresh in the background; answer from memory now
    }
    return v;
  }
  return std::nullopt;  // an old "no row": look again
}

net::awaitable<core::result<end_user_cache::ptr>> end_user_cache::get(std::string id) {
  if (auto hit = cached(id)) {
    co_return std::move(*hit);
  }
  std::shared_ptr<flight> f;
  if (auto it = flights_.find(id); it != flights_.end()) {
    f = it->second;
  } else {
    f = start_fetch(id);
  }
  if (!f->out) {
    co_await f->done.async_wait(net::as_tuple(net::use_awaitable));
  }
  if (!f->out) {
    co_return core::make_error(core::errc::unavailable, "end user lookup was abandoned");
  }
  co_return *f->out;
}

std::shared_ptr<end_user_cache::flight> end_user_cache::start_fetch(const std::string& id) {
  auto f = std::make_shared<flight>(loop_);
  flights_[id] = f;
  ++lookups_;
  net::co_spawn(loop_, fetch(id, f), [f](std::exception_ptr e) {
    if (e) {
      if (!f->out) {
        f->out = core::make_error(core::errc::internal, "end user lookup failed");
      }
      f->done.cancel();
    }
  });
  return f;
}

net::awaitable<void> end_user_cache::fetch(std::string id, std::shared_ptr<flight> f) {
  auto alive = alive_;
  core::result<std::optional<end_user>> r = core::make_error(core::errc::internal, "end user lookup did not run");
  try {
    r = co_await lookup_(id);
  } catch (const std::exception& e) {
    r = core::make_error(core::errc::internal, std::string("end user lookup threw: ") + e.what());
  }
  if (!*alive) {
    f->out = core::make_error(core::errc::unavailable, "end user cache closed");
    f->done.cancel();
    co_return;
  }
  if (auto it = flights_.find(id); it != flights_.end() && it->second == f) {
    flights_.erase(it);
  }
  if (r) {
    auto v = with_defaults(id, std::move(*r));
    if (!f->invalidated) {
      if (entries_.size() >= opts_.max_entries && !entries_.contains(id)) {
        entries_.clear();
      }
      entries_[id] = entry{v, core::coarse_now()};
    }
    f->out = std::move(v);
  } else {
    if (auto it = entries_.find(id); it != entries_.end()) {
      f->out = it->second.value;  // a failed refresh keeps serving the old entry
    } else {
      f->out = r.error();
    }
  }
  f->done.cancel();
}

void end_user_cache::invalidate(std::string_view id) {
  std::string key(id);
  entries_.erase(key);
  if (auto it = flights_.find(key); it != flights_.end()) {
    it->second->invalidated = true;
    flights_.erase(it);
  }
}

void end_user_cache::clear() {
  entries_.clear();
  for (auto& [id, f] : flights_) {
    (void)id;
    f->invalidated = true;
  }
  flights_.clear();
}

std::optional<entity_limits> proxy_limits(std::optional<double> max_budget, const std::string& budget_duration) {
  if (!max_budget) {
    return std::nullopt;
  }
  entity_limits l;
  l.level = limit_level::proxy;
  l.id = "litellm-proxy-budget";
  l.max_budget = max_budget;
  l.budget_duration = budget_duration;
  return l;
}

}  // namespace switchyard::auth
