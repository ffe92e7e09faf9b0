// end_user_cache: the budget and limits of end users (the request body's `user`, LiteLLM's
// customers) for the hot path, in memory in front of the database lookup, as key_cache
// does for keys (docs/budgets.md, "End users").
//
// - Hit (younger than `ttl`): answered from memory. Older: answered from memory at once
//   and ONE background refresh starts (stale-while-revalidate); a failed refresh keeps the
//   old entry.
// - Miss: one lookup per id at a time (single flight); concurrent requests wait on it.
// - An end user without a row (LiteLLM creates the row when the first spend is recorded:
//   the spend writer does) gets `default_max_budget` (litellm_settings.max_end_user_budget)
//   and is not blocked; that answer is kept for `negative_ttl`. A row without a budget of
//   its own also gets the default max_budget.
// - invalidate(id): forgets the entry now (budget resets, /customer/* changes; every
//   instance hears it through key_invalidation's channel as "end_user:<id>").
//
// Owner: app/ (one per process). Thread: the loop thread only (no locking). Blocking:
// never; the lookup is an awaitable that app/ runs on db_executor.
#pragma once
#include "switchyard/auth/limits.hpp"
#include "switchyard/core/asio.hpp"
#include "switchyard/core/error.hpp"

#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace switchyard::auth {

// What the gateway knows of one end user.
struct end_user {
  entity_limits limits;  // level end_user, id = the end user's id
  bool blocked = false;  // LiteLLM refuses blocked end users (end_user_blocked_error)
  bool known = false;    // a row exists
};

struct end_user_cache_options {
  std::chrono::milliseconds ttl{60000};
  std::chrono::milliseconds negative_ttl{5000};
  std::size_t max_entries = 100000;  // beyond: everything is dropped (rare; ids are cheap to reload)
  std::optional<double> default_max_budget;  // litellm_settings.max_end_user_budget
};

class end_user_cache {
 public:
  using ptr = std::shared_ptr<const end_user>;
  // The row of an end user (limits from its budgets row; max_budget unset if it has none),
  // nullopt when there is none, or an error (not cached).
  using lookup_fn = std::function<net::awaitable<core::result<std::optional<end_user>>>(std::string id)>;

  end_user_cache(net::any_io_executor loop, lookup_fn lookup, end_user_cache_options opts = {});
  ~end_user_cache();
  end_user_cache(const end_user_cache&) = delete;
  end_user_cache& operator=(const end_user_cache&) = delete;

  // The end user `id` (never null on success). Database unavailable and nothing cached:
  // the error (errc::unavailable).
  net::awaitable<core::result<ptr>> get(std::string id);
  // get()'s answer when memory has it, without a coroutine (a stale hit starts the refresh).
  std::optional<ptr> cached(const std::string& id);

  void invalidate(std::string_view id);
  void clear();

  std::size_t lookups() const noexcept { return lookups_; }
  std::size_t size() const noexcept { return entries_.size(); }

 private:
  using steady = std::chrono::steady_clock;
  struct entry {
    ptr value;
    steady::time_point fetched;
  };
  struct flight {
    explicit flight(net::any_io_executor ex) : done(ex, steady::time_point::max()) {}
    net::steady_timer done;
    bool invalidated = false;
    std::optional<core::result<ptr>> out;
  };

  ptr with_defaults(std::string id, std::optional<end_user> row) const;
  std::shared_ptr<flight> start_fetch(const std::string& id);
  net::awaitable<void> fetch(std::string id, std::shared_ptr<flight> f);

  net::any_io_executor loop_;
  lookup_fn lookup_;
  end_user_cache_options opts_;
  std::unordered_map<std::string, entry> entries_;
  std::unordered_map<std::string, std::shared_ptr<flight>> flights_;
  std::size_t lookups_ = 0;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

// The whole proxy as an entity (litellm_settings.max_budget + budget_duration): level
// proxy, id "litellm-proxy-budget" (LiteLLM's user of that name); nullopt without a
// max_budget. `spend` is 0: the running figure is that user's row in Postgres.
std::optional<entity_limits> proxy_limits(std::optional<double> max_budget, const std::string& budget_duration);

}  // namespace switchyard::auth
