#include "switchyard/limits/engine.hpp"

#include "switchyard/core/ids.hpp"
#include "switchyard/core/word_hash.hpp"
#include "switchyard/store/redis/redis_client.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>

namespace switchyard::limits {

// ---------------------------------------------------------------- the Lua scripts

// Every script starts here: Redis' time (TIME, one clock for every instance), and the
// calling instance heard of. KEYS[1] holds the instances by when they were last heard of
// (a heartbeat, a reserve or a settle); those unheard for `stale` ms move to KEYS[2], the
// gone ones (kept `keep` ms: as long as a reservation of theirs could live), and KEYS[3]
// counts such moves, so a counter swept since the last one holds nothing of a gone
// instance. An instance heard of again (it was cut off, not dead) is no longer gone.
namespace {

constexpr char heard_lua[] = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function heard(iid, stale, keep)
  if redis.call('ZADD', KEYS[1], now, iid) == 1 then
    redis.call('ZREM', KEYS[2], iid)
  end
  local lost = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - stale)
  if #lost > 0 then
    for _, m in ipairs(lost) do
      redis.call('ZADD', KEYS[2], now, m)
    end
    redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - stale)
    redis.call('INCR', KEYS[3])
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - keep)
end
)lua";

// A script: the part above, then its own.
template <std::size_t A, std::size_t B>
constexpr std::array<char, A + B - 1> with_heard(const char (&a)[A], const char (&b)[B]) {
  std::array<char, A + B - 1> out{};
  for (std::size_t i = 0; i + 1 < A; ++i) {
    out[i] = a[i];
  }
  for (std::size_t i = 0; i < B; ++i) {
    out[A - 1 + i] = b[i];
  }
  return out;
}

}  // namespace

// Reserve: ARGV = id ("<instance>/<request>"), window ms, reservation ttl ms, n, lease
// divisor, instance, stale ms, then per check: kind (b|r|t|p), limit, amount, seed, key ttl
// ms, lease wanted. KEYS: the three of the instances (above), then per check: budgets a
// hash {s: spend, r: reserved, g: the gone count it was swept at} and a zset of
// reservations ("id:amount", scored by their expiry); windows a counter whose TTL is the
// window (created at first use); parallel slots a zset of request ids scored by their
// expiry and the gone count it was swept at. Expired reservations are dropped first, then,
// when an instance has gone since the counter was last swept, every reservation of a gone
// instance (its name is the member's prefix): a dead gateway's budget and slots come back
// within seconds, not at their expiry. A token window fits while it is below its limit
// (the request's estimate may pass what is left); the others fit when their amount does.
// Either every check fits and is reserved, or none is: {0, index, used, reset ms}; else
// {1, 0, 0, 0, remaining1, reset1, leased1, ...}. A check that asks for a lease gets the
// room wanted, or what is left divided by the divisor when that is at least 1/8 of it, or
// none; a budget's lease holds the request's own amount too, under "id~".
constexpr auto reserve_text = with_heard(heard_lua, R"lua(
local id = ARGV[1]
local win = tonumber(ARGV[2])
local rttl = tonumber(ARGV[3])
local n = tonumber(ARGV[4])
local div = tonumber(ARGV[5])
heard(ARGV[6], tonumber(ARGV[7]), rttl)
local seq = redis.call('GET', KEYS[3]) or '0'
local gone = {}
local function lost(m)
  local inst = string.match(m, '^([^/]+)/')
  if not inst then
    return false
  end
  local g = gone[inst]
  if g == nil then
    g = redis.call('ZSCORE', KEYS[2], inst) ~= false
    gone[inst] = g
  end
  return g
end
local used = {}
local ttl = {}
local grant = {}
local k = 4
for i = 1, n do
  local a = 7 + (i - 1) * 6
  local kind = ARGV[a + 1]
  local limit = tonumber(ARGV[a + 2])
  local amount = tonumber(ARGV[a + 3])
  local u
  local r = -1
  if kind == 'b' then
    local h, z = KEYS[k], KEYS[k + 1]
    k = k + 2
    local freed = 0
    local dead = redis.call('ZRANGEBYSCORE', z, '-inf', now)
    if #dead > 0 then
      for _, m in ipairs(dead) do
        freed = freed + tonumber(string.match(m, '[^:]*$'))
      end
      redis.call('ZREMRANGEBYSCORE', z, '-inf', now)
    end
    local v = redis.call('HMGET', h, 's', 'r', 'g')
    if v[1] and seq ~= '0' and v[3] ~= seq then
      for _, m in ipairs(redis.call('ZRANGE', z, 0, -1)) do
        if lost(m) then
          freed = freed + tonumber(string.match(m, '[^:]*$'))
          redis.call('ZREM', z, m)
        end
      end
      redis.call('HSET', h, 'g', seq)
    end
    if v[1] then
      if freed > 0 then
        redis.call('HINCRBY', h, 'r', -freed)
      end
      u = tonumber(v[1]) + tonumber(v[2] or '0') - freed
    else
      u = tonumber(ARGV[a + 4])
      r = -2
    end
    if u >= limit or u + amount > limit then
      return {0, i, u, -1}
    end
  elseif kind == 'p' then
    local z, sw = KEYS[k], KEYS[k + 1]
    k = k + 2
    redis.call('ZREMRANGEBYSCORE', z, '-inf', now)
    if seq ~= '0' and redis.call('GET', sw) ~= seq then
      for _, m in ipairs(redis.call('ZRANGE', z, 0, -1)) do
        if lost(m) then
          redis.call('ZREM', z, m)
        end
      end
      redis.call('SET', sw, seq, 'PX', rttl)
    end
    u = redis.call('ZCARD', z)
    if u + amount > limit then
      return {0, i, u, -1}
    end
  else
    local c = KEYS[k]
    k = k + 1
    u = tonumber(redis.call('GET', c) or '0')
    r = redis.call('PTTL', c)
    if (kind == 't' and u >= limit) or (kind ~= 't' and u + amount > limit) then
      if r <= 0 then r = win end
      return {0, i, u, r}
    end
  end
  used[i] = u
  ttl[i] = r
  local g = 0
  local want = tonumber(ARGV[a + 6])
  if want > 0 and kind ~= 'p' then
    local cap = math.floor((limit - u - amount) / div)
    if cap >= want then
      g = want
    elseif cap * 8 >= want then
      g = cap
    end
  end
  grant[i] = g
end
local out = {1, 0, 0, 0}
k = 4
for i = 1, n do
  local a = 7 + (i - 1) * 6
  local kind = ARGV[a + 1]
  local limit = tonumber(ARGV[a + 2])
  local amount = tonumber(ARGV[a + 3])
  local g = grant[i]
  local reset = -1
  if kind == 'b' then
    local h, z = KEYS[k], KEYS[k + 1]
    k = k + 2
    local kttl = ARGV[a + 5]
    if ttl[i] == -2 then
      redis.call('HSET', h, 's', ARGV[a + 4], 'r', 0, 'g', seq)
    end
    if g > 0 then
      redis.call('HINCRBY', h, 'r', amount + g)
      redis.call('ZADD', z, now + rttl, id .. '~:' .. (amount + g))
    elseif amount > 0 then
      redis.call('HINCRBY', h, 'r', ARGV[a + 3])
      redis.call('ZADD', z, now + rttl, id .. ':' .. ARGV[a + 3])
    end
    redis.call('PEXPIRE', h, kttl)
    redis.call('PEXPIRE', z, kttl)
  elseif kind == 'p' then
    local z = KEYS[k]
    k = k + 2
    redis.call('ZADD', z, now + rttl, id)
    redis.call('PEXPIRE', z, rttl)
  else
    local c = KEYS[k]
    k = k + 1
    redis.call('INCRBY', c, amount + g)
    if ttl[i] < 0 then
      redis.call('PEXPIRE', c, win)
      reset = win
    else
      reset = ttl[i]
    end
  end
  out[#out + 1] = limit - used[i] - amount
  out[#out + 1] = reset
  out[#out + 1] = g
end
return out
)lua");
const char* const reserve_script = reserve_text.data();

// Settle: ARGV = n, reservation ttl ms, instance, stale ms, then per op: kind, member,
// reserved, actual, next (same KEYS layout). A budget's reservation is released only if it
// is still there (not expired, nor dropped with a gone instance's), and the actual cost is
// added to a counter that still exists (a missing one is seeded from Postgres, which has
// the cost). Token windows are corrected by actual - reserved (a window lease gives back
// what it did not use with a negative `actual`). A budget lease ('B') moves from holding
// `reserved` to holding `next` (nothing when 0) and adds `actual` to the spend.
constexpr auto settle_text = with_heard(heard_lua, R"lua(
local n = tonumber(ARGV[1])
local rttl = tonumber(ARGV[2])
heard(ARGV[3], tonumber(ARGV[4]), rttl)
local k = 4
for i = 1, n do
  local a = 4 + (i - 1) * 5
  local kind = ARGV[a + 1]
  local member = ARGV[a + 2]
  local reserved = tonumber(ARGV[a + 3])
  local actual = tonumber(ARGV[a + 4])
  if kind == 'b' or kind == 'B' then
    local h, z = KEYS[k], KEYS[k + 1]
    k = k + 2
    local live = redis.call('EXISTS', h) == 1
    if kind == 'B' then
      local nxt = tonumber(ARGV[a + 5])
      if reserved > 0 and redis.call('ZREM', z, member .. ':' .. ARGV[a + 3]) == 1 then
        if live and nxt ~= reserved then
          redis.call('HINCRBY', h, 'r', nxt - reserved)
        end
        if nxt > 0 then
          redis.call('ZADD', z, now + rttl, member .. ':' .. ARGV[a + 5])
        end
      end
    elseif reserved > 0 and redis.call('ZREM', z, member .. ':' .. ARGV[a + 3]) == 1 and live then
      redis.call('HINCRBY', h, 'r', -reserved)
    end
    if live and actual > 0 then
      redis.call('HINCRBY', h, 's', ARGV[a + 4])
    end
  elseif kind == 'p' then
    redis.call('ZREM', KEYS[k], member)
    k = k + 2
  else
    local c = KEYS[k]
    k = k + 1
    local delta = actual - reserved
    if delta ~= 0 and redis.call('EXISTS', c) == 1 then
      if redis.call('INCRBY', c, delta) < 0 then
        redis.call('SET', c, 0, 'KEEPTTL')
      end
    end
  end
end
return n
)lua");
const char* const settle_script = settle_text.data();

// Heartbeat: ARGV = instance, stale ms, keep ms, live ms. The instance is heard of (and
// the unheard ones are gone); returns the instances heard of within `live` ms, the live
// count the outage share divides by.
constexpr auto heartbeat_text = with_heard(heard_lua, R"lua(
heard(ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]))
return redis.call('ZCOUNT', KEYS[1], now - tonumber(ARGV[4]), '+inf')
)lua");
const char* const heartbeat_script = heartbeat_text.data();

namespace {

char kind_char(kind k) {
  switch (k) {
    case kind::budget:
      return 'b';
    case kind::requests:
      return 'r';
    case kind::tokens:
      return 't';
    case kind::parallel:
      return 'p';
  }
  return 'r';
}

// Redis keys of a check, hash-tagged per entity ({scope:id}) as LiteLLM's limiter does.
void push_keys(std::vector<std::string>& keys, const std::string& prefix, const check& c) {
  std::string base = prefix;
  base += '{';
  base += c.scope;
  base += ':';
  base += c.id;
  base += '}';
  switch (c.k) {
    case kind::budget:
      keys.push_back(base + ":budget:" + c.period);
      keys.push_back(base + ":reserved:" + c.period);
      break;
    case kind::requests:
      keys.push_back(base + ":requests");
      break;
    case kind::tokens:
      keys.push_back(base + ":tokens");
      break;
    case kind::parallel:
      keys.push_back(base + ":max_parallel_requests");
      keys.push_back(base + ":max_parallel_requests:swept");
      break;
  }
}

// The instances' keys every script starts with (KEYS[1..3]).
void push_instance_keys(std::vector<std::string>& keys, const std::string& prefix) {
  keys.push_back(prefix + "instances");
  keys.push_back(prefix + "gone");
  keys.push_back(prefix + "gone_seq");
}

// The same counter (what counter_of() names), compared field by field.
bool same_counter(const check& a, const check& b) {
  return a.k == b.k && a.id == b.id && a.scope == b.scope && a.period == b.period;
}

// A window's lease is given back only while its window has at least this long to run: the
// window's end here is computed from a local clock, Redis' may come a little earlier.
constexpr std::int64_t window_margin_ms = 100;

std::int64_t share_of(const check& c, std::int64_t share) {
  if (share <= 1) {
    return c.limit;
  }
  if (c.k == kind::budget) {
    // What is left above the seed, divided among the live instances.
    const std::int64_t left = std::max<std::int64_t>(0, c.limit - c.seed);
    return c.seed + left / share;
  }
  return std::max<std::int64_t>(1, (c.limit + share - 1) / share);
}

}  // namespace

// ---------------------------------------------------------------- memory_engine

memory_engine::memory_engine(clock_fn now_ms, std::chrono::milliseconds window)
    : now_(std::move(now_ms)), window_ms_(std::max<std::int64_t>(1, window.count())) {}

std::size_t memory_engine::counters() const { return windows_.size() + budgets_.size() + parallel_.size(); }

void memory_engine::sweep(std::int64_t now) {
  if (now - last_sweep_ms_ < window_ms_) {
    return;
  }
  last_sweep_ms_ = now;
  std::erase_if(windows_, [now](const auto& kv) { return kv.second.ends_ms <= now; });
  // An idle budget counter is read from Postgres again next time (as its Redis key expires).
  std::erase_if(budgets_, [now](const auto& kv) {
    return kv.second.expires_ms != 0 && kv.second.expires_ms <= now && kv.second.reserved == 0;
  });
}

decision memory_engine::reserve(const std::vector<check>& checks, std::int64_t share) {
  const std::int64_t now = now_();
  sweep(now);
  decision d;
  d.remaining.resize(checks.size());
  d.reset_in_ms.resize(checks.size(), -1);
  std::vector<std::string> names(checks.size());
  std::vector<std::int64_t> used(checks.size());
  for (std::size_t i = 0; i < checks.size(); ++i) {
    const auto& c = checks[i];
    names[i] = counter_of(c);
    const std::int64_t limit = share_of(c, share);
    std::int64_t u = 0;
    std::int64_t reset = -1;
    bool fits = true;
    switch (c.k) {
      case kind::budget: {
        auto it = budgets_.find(names[i]);
        u = it == budgets_.end() ? c.seed : it->second.spend + it->second.reserved;
        fits = u < limit && u + c.amount <= limit;
        break;
      }
      case kind::requests:
      case kind::tokens: {
        auto it = windows_.find(names[i]);
        if (it != windows_.end() && it->second.ends_ms > now) {
          u = it->second.value;
          reset = it->second.ends_ms - now;
        } else {
          reset = window_ms_;
        }
        // A token window refuses once it has reached its limit (the reservation of a
        // request is an estimate, settled to what the answer used), as LiteLLM's: a
        // request whose estimate alone is more than the limit would never pass.
        fits = c.k == kind::tokens ? u < limit : u + c.amount <= limit;
        break;
      }
      case kind::parallel: {
        auto it = parallel_.find(names[i]);
        u = it == parallel_.end() ? 0 : it->second;
        fits = u + c.amount <= limit;
        break;
      }
    }
    if (!fits) {
      d.ok = false;
      d.failed = static_cast<int>(i);
      d.used = u;
      d.reset_ms = reset;
      d.remaining.clear();
      d.reset_in_ms.clear();
      return d;
    }
    used[i] = u;
    d.remaining[i] = limit - u - c.amount;
    d.reset_in_ms[i] = reset;
  }
  apply(checks, names, now);
  return d;
}

void memory_engine::apply(const std::vector<check>& checks, const std::vector<std::string>& names, std::int64_t now) {
  for (std::size_t i = 0; i < checks.size(); ++i) {
    const auto& c = checks[i];
    switch (c.k) {
      case kind::budget: {
        auto [it, fresh] = budgets_.try_emplace(names[i]);
        if (fresh) {
          it->second.spend = c.seed;
        }
        it->second.reserved += c.amount;
        it->second.expires_ms = c.key_ttl_ms > 0 ? now + c.key_ttl_ms : 0;
        break;
      }
      case kind::requests:
      case kind::tokens: {
        auto& w = windows_[names[i]];
        if (w.ends_ms <= now) {
          w.value = 0;
          w.ends_ms = now + window_ms_;  // anchored at its first use
        }
        w.value += c.amount;
        break;
      }
      case kind::parallel:
        parallel_[names[i]] += c.amount;
        break;
    }
  }
}

void memory_engine::record(const std::vector<check>& checks) {
  const std::int64_t now = now_();
  sweep(now);
  std::vector<std::string> names(checks.size());
  for (std::size_t i = 0; i < checks.size(); ++i) {
    names[i] = counter_of(checks[i]);
  }
  apply(checks, names, now);
}

void memory_engine::settle(const settle_op& op) {
  const auto name = counter_of(op.c);
  switch (op.c.k) {
    case kind::budget: {
      auto it = budgets_.find(name);
      if (it != budgets_.end()) {
        it->second.reserved = std::max<std::int64_t>(0, it->second.reserved - op.reserved);
        it->second.spend += op.actual;
      }
      break;
    }
    case kind::tokens: {
      auto it = windows_.find(name);
      if (it != windows_.end() && it->second.ends_ms > now_()) {
        it->second.value = std::max<std::int64_t>(0, it->second.value + op.actual - op.reserved);
      }
      break;
    }
    case kind::parallel: {
      auto it = parallel_.find(name);
      if (it != parallel_.end()) {
        it->second -= op.reserved;
        if (it->second <= 0) {
          parallel_.erase(it);
        }
      }
      break;
    }
    case kind::requests:
      break;
  }
}

// ---------------------------------------------------------------- redis_engine

struct redis_engine::state {
  explicit state(net::any_io_executor ex) : wake(ex), tick(ex) {}
  bool alive = true;
  net::steady_timer wake;  // the flusher sleeps on it until a settle arrives
  net::steady_timer tick;  // heartbeat
  std::string reserve_sha, settle_sha;
  bool flushing = false;
  // Leases being asked for (counter_key -> the ask's number), and the requests waiting for
  // them instead of asking Redis themselves: one round trip fills a counter's lease for a
  // burst of requests that found it empty together. Asks are numbered in the order they
  // are sent, so whether an ask is older than a wait is exact (no clock ties).
  std::unordered_map<std::uint64_t, std::uint64_t> asking;
  std::uint64_t asks = 0;
  std::vector<std::shared_ptr<net::steady_timer>> waiters;
  void granted() {
    for (auto& t : waiters) {
      t->cancel();
    }
    waiters.clear();
  }
};

namespace {

// Marks counters as being leased for the life of one reserve (every exit of the coroutine),
// then wakes the requests that waited for them.
struct asking_guard {
  explicit asking_guard(std::shared_ptr<redis_engine::state> s) : st(std::move(s)) {}
  std::shared_ptr<redis_engine::state> st;
  std::vector<std::uint64_t> keys;
  asking_guard(const asking_guard&) = delete;
  asking_guard& operator=(const asking_guard&) = delete;
  ~asking_guard() {
    for (const auto k : keys) {
      st->asking.erase(k);
    }
    if (!keys.empty()) {
      st->granted();
    }
  }
};

}  // namespace

redis_engine::redis_engine(net::any_io_executor loop, store::redis::redis_client* redis, redis_engine_options opts,
                           memory_engine::clock_fn now_ms)
    : loop_(loop),
      redis_(redis),
      opts_(std::move(opts)),
      local_(std::move(now_ms), opts_.window),
      st_(std::make_shared<state>(loop)),
      instance_id_(opts_.instance_id.empty() ? core::uuid4() : opts_.instance_id),
      stale_ms_(instance_stale_ms(opts_).count()) {}

std::size_t redis_engine::waiting() const noexcept { return st_->waiters.size(); }

void redis_engine::wake_waiters() { st_->granted(); }

std::chrono::milliseconds instance_stale_ms(const redis_engine_options& o) {
  const auto wanted = o.instance_stale.count() > 0 ? o.instance_stale : 5 * o.heartbeat;
  return std::max(wanted, 3 * o.heartbeat + std::max(o.lease, std::chrono::milliseconds{0}));
}

redis_engine::~redis_engine() { stop(); }

void redis_engine::stop() {
  if (stopped_) {
    return;
  }
  stopped_ = true;
  st_->alive = false;
  st_->wake.cancel();
  st_->tick.cancel();
}

void redis_engine::start() {
  if (redis_ == nullptr || stopped_) {
    return;
  }
  auto st = st_;
  net::co_spawn(loop_, [this, st]() -> net::awaitable<void> {
    if (st->alive) {
      co_await flush_loop();
    }
  }, net::detached);
  net::co_spawn(loop_, [this, st]() -> net::awaitable<void> {
    if (st->alive) {
      co_await heartbeat_loop();
    }
  }, net::detached);
}

void redis_engine::mark_down(const std::string& why) {
  if (!degraded_) {
    degraded_ = true;
    spdlog::warn("limits: Redis unavailable ({}); enforcing locally on 1/{} of each limit until it is back",
                 why, live_);
  }
}

void redis_engine::mark_up() {
  if (degraded_) {
    degraded_ = false;
    spdlog::info("limits: Redis is back; limits are shared again");
  }
}

bool redis_engine::try_local(const std::vector<check>& checks, decision& out) {
  if (redis_ != nullptr && redis_->connected()) {
    return draw_leases(checks, out);
  }
  if (redis_ != nullptr) {
    mark_down("not connected");
    sync_local_all();  // what leases let through counts in the local view
  }
  out = local_.reserve(checks, redis_ != nullptr ? live_ : 1);
  out.shared = false;
  return true;
}

net::awaitable<bool> redis_engine::ensure_scripts() {
  auto st = st_;
  if (!st->reserve_sha.empty() && !st->settle_sha.empty()) {
    co_return true;
  }
  for (const char* script : {reserve_script, settle_script}) {
    std::vector<std::string> cmd{"SCRIPT", "LOAD", script};
    auto r = co_await redis_->command(std::move(cmd), std::chrono::milliseconds{1000});
    if (!st->alive || !r || r->type != store::redis::reply::kind::string) {
      co_return false;
    }
    (script == reserve_script ? st->reserve_sha : st->settle_sha) = r->str;
  }
  co_return true;
}

net::awaitable<decision> redis_engine::reserve(const std::vector<check>& checks, std::string id) {
  decision d;
  if (try_local(checks, d)) {
    co_return d;
  }
  auto st = st_;
  if (st->reserve_sha.empty()) {
    // Loaded once per connection (NOSCRIPT after a Redis restart loads it again).
    co_await ensure_scripts();
    if (!st->alive) {
      co_return decision{};  // shutting down: the request is let through
    }
  }
  // A request with a parallel slot always asks Redis (slots are not leased), and so will
  // its key's next requests: room leased for them would never be drawn.
  const bool leasable = opts_.lease.count() > 0 &&
                        std::none_of(checks.begin(), checks.end(), [](const check& c) { return c.k == kind::parallel; });
  // A lease of one of its counters is being asked for: wait for it rather than ask Redis
  // too. The wait is bounded by the Redis timeout, as a request's own ask would be. Past
  // it, the request is decided locally only when Redis is slow: it is known to be down, or
  // an ask this request found in flight has still not come back. A busy instance can also
  // wait through several asks that each came back in time (a burst that drains lease after
  // lease); such a request asks Redis itself, with its own timeout, since deciding it on
  // this instance's share of the limit would let a budget be passed while Redis answers.
  // Which ask is older is read from the asks' numbers, not from which timer fires first:
  // on a loaded machine the ask's own timeout and the waiters' can expire in one batch.
  // The wait is timed on the engine's clock (`now_ms`, injected by tests).
  const std::uint64_t asked_before = st->asks;
  const std::int64_t wait_until = local_.now() + opts_.timeout.count();
  while (leasable) {
    bool pending = false;
    bool stalled = false;
    for (const auto& c : checks) {
      if (auto it = st->asking.find(key_of(c)); it != st->asking.end()) {
        pending = true;
        stalled = stalled || it->second <= asked_before;
      }
    }
    if (!pending) {
      break;
    }
    const std::int64_t left = wait_until - local_.now();
    if (left <= 0) {
      if (!degraded_ && !stalled) {
        break;  // ask Redis below, without a lease of the counters still being asked for
      }
      sync_local_all();
      d = local_.reserve(checks, live_);
      d.shared = false;
      co_return d;
    }
    auto t = std::make_shared<net::steady_timer>(loop_);
    t->expires_after(std::chrono::milliseconds{left});
    st->waiters.push_back(t);
    boost::system::error_code ec;
    co_await t->async_wait(net::redirect_error(net::use_awaitable, ec));
    if (!st->alive) {
      co_return decision{};
    }
    std::erase(st->waiters, t);
    if (try_local(checks, d)) {
      co_return d;
    }
  }
  // Leases wanted, per check (0: none); one request at a time asks for a counter's.
  const std::int64_t now = local_.now();
  std::vector<std::int64_t> want(checks.size(), 0);
  asking_guard asking{st};
  for (std::size_t i = 0; i < checks.size() && leasable; ++i) {
    const std::uint64_t key = key_of(checks[i]);
    if (st->asking.count(key) != 0) {
      continue;
    }
    want[i] = want_of(checks[i], now);
    if (want[i] > 0) {
      st->asking.emplace(key, ++st->asks);
      asking.keys.push_back(key);
    }
  }
  // EVALSHA sha numkeys keys... id window ttl n div instance stale (kind limit amount seed
  // ttl want)... The reservations are named after this instance: when it is gone, the
  // scripts drop them (the reserve script's comment).
  auto build = [&](const std::string& sha) {
    std::vector<std::string> cmd;
    cmd.reserve(6 + checks.size() * 2 + 7 + checks.size() * 6);
    cmd.emplace_back("EVALSHA");
    cmd.push_back(sha);
    cmd.emplace_back();  // numkeys, below
    push_instance_keys(cmd, opts_.prefix);
    for (const auto& c : checks) {
      push_keys(cmd, opts_.prefix, c);
    }
    cmd[2] = std::to_string(cmd.size() - 3);
    cmd.push_back(instance_id_ + "/" + id);
    cmd.push_back(std::to_string(opts_.window.count()));
    cmd.push_back(std::to_string(opts_.reservation_ttl.count()));
    cmd.push_back(std::to_string(checks.size()));
    cmd.push_back(std::to_string(std::max<std::int64_t>(1, opts_.lease_divisor) * std::max<std::int64_t>(1, live_)));
    cmd.push_back(instance_id_);
    cmd.push_back(std::to_string(stale_ms_));
    for (std::size_t i = 0; i < checks.size(); ++i) {
      const auto& c = checks[i];
      cmd.emplace_back(1, kind_char(c.k));
      cmd.push_back(std::to_string(c.limit));
      cmd.push_back(std::to_string(c.amount));
      cmd.push_back(std::to_string(c.seed));
      cmd.push_back(std::to_string(c.key_ttl_ms));
      cmd.push_back(std::to_string(want[i]));
    }
    return cmd;
  };
  auto cmd = build(st->reserve_sha);
  ++reserve_scripts_;
  auto r = co_await redis_->command(std::move(cmd), opts_.timeout);
  if (!st->alive) {
    co_return decision{};
  }
  if (r && r->is_error() && r->str.starts_with("NOSCRIPT")) {
    st->reserve_sha.clear();
    st->settle_sha.clear();
    if (co_await ensure_scripts(); st->alive && !st->reserve_sha.empty()) {
      auto again = build(st->reserve_sha);
      r = co_await redis_->command(std::move(again), opts_.timeout);
    }
    if (!st->alive) {
      co_return decision{};
    }
  }
  if (!r || r->is_error() || r->type != store::redis::reply::kind::array || r->elements.size() < 4) {
    mark_down(!r ? r.error().message : r->is_error() ? r->str : "unexpected reply");
    sync_local_all();
    d = local_.reserve(checks, live_);
    d.shared = false;
    co_return d;
  }
  mark_up();
  const auto& e = r->elements;
  d.shared = true;
  if (e[0].integer == 0) {
    d.ok = false;
    d.failed = static_cast<int>(e[1].integer) - 1;
    d.used = e[2].integer;
    d.reset_ms = e[3].integer;
    co_return d;
  }
  // What Redis admitted is counted locally too, so that a check that falls back to the
  // local engine (Redis slow for one request, or gone) starts from what this instance has
  // already let through in the window, not from zero: a slow Redis never loosens a limit.
  local_.record(checks);
  d.remaining.resize(checks.size());
  d.reset_in_ms.resize(checks.size());
  d.lease.assign(checks.size(), 0);
  for (std::size_t i = 0; i < checks.size() && 6 + 3 * i < e.size(); ++i) {
    d.remaining[i] = e[4 + 3 * i].integer;
    d.reset_in_ms[i] = e[5 + 3 * i].integer;
    const std::int64_t granted = e[6 + 3 * i].integer;
    if (granted <= 0 || want[i] <= 0) {
      continue;
    }
    // A new lease, drawn after any still open on the counter (one that a request asked
    // for while its wait had already run out).
    const auto& c = checks[i];
    const std::uint64_t key = key_of(c);
    const std::uint64_t handle = ++next_lease_;
    lease& l = leases_[handle];
    l.c = c;
    l.key = key;
    l.available = granted;
    l.base = d.remaining[i] - granted;
    // Drawn until a lease's time after the ask was sent, not after the answer came: Redis
    // heard of this instance when it granted it (no earlier than the send), so it is drawn
    // no longer than Redis could think this instance alive (instance_stale > lease).
    l.draw_until = now + opts_.lease.count();
    if (c.k == kind::budget) {
      l.member = id + "~";
      l.drawn = c.amount;
      l.inflight = 1;
      l.sent = c.amount + granted;
    } else {
      l.inflight = c.k == kind::tokens ? 1 : 0;
      // The window's end as seen from here: never later than Redis' (the reply came after).
      l.window_end = now + std::max<std::int64_t>(0, d.reset_in_ms[i]);
      l.draw_until = std::min(l.draw_until, l.window_end);
    }
    current_[key].push_back(handle);
    d.lease[i] = handle;
  }
  if (!leases_.empty() && !st->flushing) {
    st->wake.cancel();  // the flusher gives leases back when they end
  }
  co_return d;
}

redis_engine::lease* redis_engine::current_of(const check& c, std::uint64_t key, std::int64_t now,
                                              std::uint64_t* handle) {
  for (;;) {
    auto cur = current_.find(key);
    if (cur == current_.end() || cur->second.empty()) {
      return nullptr;
    }
    const std::uint64_t h = cur->second.front();
    auto it = leases_.find(h);
    if (it == leases_.end()) {
      cur->second.erase(cur->second.begin());
      continue;
    }
    lease& l = it->second;
    if (!same_counter(l.c, c)) {
      return nullptr;  // another counter with the same hash: this one asks Redis
    }
    if (l.draw_until <= now || l.available < c.amount) {
      close_lease(h, l, now);  // its time is up, or too little is left: given back
      continue;
    }
    *handle = h;
    return &l;
  }
}

std::int64_t redis_engine::want_of(const check& c, std::int64_t now) const {
  if (opts_.lease.count() <= 0 || opts_.lease_requests <= 0 || c.k == kind::parallel) {
    return 0;
  }
  if (auto cur = current_.find(key_of(c)); cur != current_.end()) {
    for (const std::uint64_t h : cur->second) {
      auto it = leases_.find(h);
      if (it != leases_.end() && !it->second.closed && it->second.draw_until > now &&
          it->second.available >= c.amount && same_counter(it->second.c, c)) {
        return 0;  // a lease still has room: this request asked Redis for another check
      }
    }
  }
  return opts_.lease_requests * std::max<std::int64_t>(1, c.amount);
}

bool redis_engine::draw_leases(const std::vector<check>& checks, decision& out) {
  constexpr std::size_t max_checks = 8;
  if (current_.empty() || checks.empty() || checks.size() > max_checks) {
    return false;
  }
  const std::int64_t now = local_.now();
  lease* ls[max_checks];
  std::uint64_t handles[max_checks];
  for (std::size_t i = 0; i < checks.size(); ++i) {
    const auto& c = checks[i];
    if (c.k == kind::parallel) {
      return false;
    }
    lease* l = current_of(c, key_of(c), now, &handles[i]);
    if (l == nullptr) {
      return false;
    }
    ls[i] = l;
  }
  // Drawn all together or not at all (two checks may share a lease).
  std::size_t i = 0;
  for (; i < checks.size(); ++i) {
    if (ls[i]->available < checks[i].amount) {
      break;
    }
    ls[i]->available -= checks[i].amount;
  }
  if (i < checks.size()) {
    while (i-- > 0) {
      ls[i]->available += checks[i].amount;
    }
    return false;
  }
  out.ok = true;
  out.failed = -1;
  out.shared = true;
  out.remaining.resize(checks.size());
  out.reset_in_ms.resize(checks.size());
  out.lease.resize(checks.size());
  for (i = 0; i < checks.size(); ++i) {
    lease& l = *ls[i];
    const std::int64_t amount = checks[i].amount;
    if (checks[i].k == kind::budget) {
      l.drawn += amount;
    }
    if (checks[i].k != kind::requests) {
      ++l.inflight;
    }
    l.unrecorded += amount;
    out.remaining[i] = l.base + l.available;
    out.reset_in_ms[i] = l.window_end > 0 ? std::max<std::int64_t>(0, l.window_end - now) : -1;
    out.lease[i] = handles[i];
  }
  return true;
}

void redis_engine::sync_local(lease& l) {
  if (l.unrecorded != 0) {
    std::vector<check> one{l.c};
    one[0].amount = l.unrecorded;
    local_.record(one);
    l.unrecorded = 0;
  }
  if (l.local_reserved != 0 || l.local_actual != 0) {
    settle_op op;
    op.c = l.c;
    op.reserved = l.local_reserved;
    op.actual = l.local_actual;
    local_.settle(op);
    l.local_reserved = 0;
    l.local_actual = 0;
  }
}

void redis_engine::sync_local_all() {
  for (auto& [h, l] : leases_) {
    sync_local(l);
  }
}

void redis_engine::close_lease(std::uint64_t handle, lease& l, std::int64_t now) {
  if (!l.closed) {
    l.closed = true;
    if (l.c.k == kind::budget) {
      l.available = 0;  // Redis keeps holding what is drawn and not settled
    } else if (l.available > 0 && now + window_margin_ms < l.window_end) {
      l.window_delta -= l.available;  // given back while its window lasts
      l.available = 0;
    } else {
      l.available = 0;  // the window ends (or ended): nothing to give back
    }
    if (auto cur = current_.find(l.key); cur != current_.end()) {
      std::erase(cur->second, handle);
      if (cur->second.empty()) {
        current_.erase(cur);
      }
    }
  }
  mark_dirty(handle, l);
}

void redis_engine::mark_dirty(std::uint64_t handle, lease& l) {
  if (!l.dirty) {
    l.dirty = true;
    dirty_.push_back(handle);
  }
  // An open lease's settles wait for the flusher's next round (a batch of other settles,
  // or the lease's end): what they move from reserved to spent is reserved meanwhile, so
  // no limit is loosened, and a request does not wake the flusher. A closed lease gives
  // room back: at once.
  if (l.closed && !st_->flushing) {
    st_->wake.cancel();
  }
}

void redis_engine::settle_leased(const settle_op& op) {
  auto it = leases_.find(op.lease);
  if (it == leases_.end()) {
    return;
  }
  lease& l = it->second;
  if (op.c.k != kind::requests) {
    l.local_reserved += op.reserved;
    l.local_actual += op.actual;
    l.inflight = std::max<std::int64_t>(0, l.inflight - 1);
  }
  switch (op.c.k) {
    case kind::budget: {
      // The cost moves from the lease to the spend; the rest of the draw comes back to
      // the lease while it is drawn, else Redis stops holding it.
      l.drawn = std::max<std::int64_t>(0, l.drawn - op.reserved);
      if (!l.closed) {
        l.available = std::max<std::int64_t>(0, l.available + op.reserved - op.actual);
      }
      l.spend += op.actual;
      break;
    }
    case kind::tokens: {
      const std::int64_t over = op.actual - op.reserved;
      if (l.closed) {
        l.window_delta += over;
      } else {
        l.available -= over;
        if (l.available < 0) {
          l.window_delta -= l.available;  // more than the lease had: counted in Redis
          l.available = 0;
        }
      }
      break;
    }
    case kind::requests:
    case kind::parallel:
      return;
  }
  mark_dirty(op.lease, l);
}

void redis_engine::sweep_leases(std::int64_t now) {
  for (auto& [h, l] : leases_) {
    sync_local(l);
    if (!l.closed && l.draw_until <= now) {
      close_lease(h, l, now);
    }
  }
}

void redis_engine::queue_lease_ops() {
  for (const std::uint64_t h : dirty_) {
    auto it = leases_.find(h);
    if (it == leases_.end()) {
      continue;
    }
    lease& l = it->second;
    l.dirty = false;
    if (l.c.k == kind::budget) {
      const std::int64_t next = l.available + l.drawn;
      if (next != l.sent || l.spend != 0) {
        settle_op op;
        op.c = l.c;
        op.member = l.member;
        op.reserved = l.sent;
        op.actual = l.spend;
        op.next = next;
        op.lease = h;
        pending_.push_back(std::move(op));
        l.sent = next;
        l.spend = 0;
      }
    } else if (l.window_delta != 0) {
      settle_op op;
      op.c = l.c;
      op.actual = l.window_delta;
      pending_.push_back(std::move(op));
      l.window_delta = 0;
    }
    if (l.closed && l.inflight == 0) {
      sync_local(l);
      leases_.erase(it);  // everything it held was given back or spent
    }
  }
  dirty_.clear();
}

void redis_engine::settle(settle_op op, bool shared) {
  if (op.lease != 0) {
    settle_leased(op);  // sent with the lease's next settle, counted locally with its sync
    return;
  }
  // Shared or not, the local counters follow (the fallback's view of this instance).
  local_.settle(op);
  if (!shared || redis_ == nullptr) {
    return;
  }
  if (pending_.size() >= opts_.max_pending_settles) {
    return;  // Redis is long gone: the reservations expire on their own
  }
  pending_.push_back(std::move(op));
  if (!st_->flushing) {
    st_->wake.cancel();
  }
}

net::awaitable<void> redis_engine::flush_loop() {
  auto st = st_;
  for (;;) {
    sweep_leases(local_.now());
    queue_lease_ops();
    if (pending_.empty()) {
      // Asleep until a settle comes, or until the first lease ends (to give it back).
      std::int64_t sleep_ms = 24 * 3600 * 1000;
      const std::int64_t now = local_.now();
      for (const auto& [h, l] : leases_) {
        if (!l.closed) {
          sleep_ms = std::min(sleep_ms, std::max<std::int64_t>(1, l.draw_until - now));
        }
      }
      st->wake.expires_after(std::chrono::milliseconds{sleep_ms});
      boost::system::error_code ec;
      co_await st->wake.async_wait(net::redirect_error(net::use_awaitable, ec));
      if (!st->alive) {
        co_return;
      }
      continue;
    }
    // Everything settled within this interval goes in one EVALSHA.
    st->flushing = true;
    st->wake.expires_after(opts_.settle_interval);
    boost::system::error_code ec;
    co_await st->wake.async_wait(net::redirect_error(net::use_awaitable, ec));
    if (!st->alive) {
      co_return;
    }
    queue_lease_ops();  // what leases settled meanwhile goes in this batch too
    std::vector<settle_op> batch;
    const std::size_t n = std::min<std::size_t>(pending_.size(), 1000);
    batch.assign(std::make_move_iterator(pending_.begin()), std::make_move_iterator(pending_.begin() + n));
    pending_.erase(pending_.begin(), pending_.begin() + n);
    bool sent = false;
    if (redis_->connected() && co_await ensure_scripts() && st->alive) {
      std::vector<std::string> keys;
      std::vector<std::string> argv;
      push_instance_keys(keys, opts_.prefix);
      argv.push_back(std::to_string(batch.size()));
      argv.push_back(std::to_string(opts_.reservation_ttl.count()));
      argv.push_back(instance_id_);
      argv.push_back(std::to_string(stale_ms_));
      for (const auto& op : batch) {
        push_keys(keys, opts_.prefix, op.c);
        const bool lease_op = op.lease != 0 && op.c.k == kind::budget;
        argv.emplace_back(1, lease_op ? 'B' : kind_char(op.c.k));
        argv.push_back(op.member.empty() ? std::string() : instance_id_ + "/" + op.member);
        argv.push_back(std::to_string(op.reserved));
        argv.push_back(std::to_string(op.actual));
        argv.push_back(std::to_string(op.next));
      }
      std::vector<std::string> cmd;
      cmd.reserve(3 + keys.size() + argv.size());
      cmd.emplace_back("EVALSHA");
      cmd.push_back(st->settle_sha);
      cmd.push_back(std::to_string(keys.size()));
      for (auto& k : keys) {
        cmd.push_back(std::move(k));
      }
      for (auto& a : argv) {
        cmd.push_back(std::move(a));
      }
      auto r = co_await redis_->command(std::move(cmd), std::chrono::milliseconds{2000});
      if (!st->alive) {
        co_return;
      }
      if (r && r->is_error() && r->str.starts_with("NOSCRIPT")) {
        st->reserve_sha.clear();
        st->settle_sha.clear();
      }
      sent = r && !r->is_error();
    }
    st->flushing = false;
    if (!sent) {
      // Kept (bounded) and retried: a budget's actual cost must reach the shared counter.
      if (pending_.size() + batch.size() <= opts_.max_pending_settles) {
        pending_.insert(pending_.begin(), std::make_move_iterator(batch.begin()), std::make_move_iterator(batch.end()));
      }
      st->wake.expires_after(std::chrono::milliseconds{250});
      co_await st->wake.async_wait(net::redirect_error(net::use_awaitable, ec));
      if (!st->alive) {
        co_return;
      }
    }
  }
}

net::awaitable<void> redis_engine::drain(std::chrono::steady_clock::time_point deadline) {
  auto st = st_;
  // Leases end now: what they hold and no request drew goes back to the shared counters.
  const std::int64_t now = local_.now();
  for (auto& [h, l] : leases_) {
    close_lease(h, l, now);
  }
  net::steady_timer t(loop_);
  while (st->alive && redis_ != nullptr && (!pending_.empty() || !dirty_.empty() || st->flushing) &&
         std::chrono::steady_clock::now() < deadline && redis_->connected()) {
    t.expires_after(std::chrono::milliseconds{10});
    boost::system::error_code ec;
    co_await t.async_wait(net::redirect_error(net::use_awaitable, ec));
  }
}

net::awaitable<void> redis_engine::heartbeat_loop() {
  auto st = st_;
  for (;;) {
    if (redis_->connected()) {
      // Scored with Redis' clock, as the scripts that read it: gateways' clocks may differ.
      std::vector<std::string> cmd{"EVAL", heartbeat_script, "3"};
      push_instance_keys(cmd, opts_.prefix);
      cmd.push_back(instance_id_);
      cmd.push_back(std::to_string(stale_ms_));
      cmd.push_back(std::to_string(opts_.reservation_ttl.count()));
      cmd.push_back(std::to_string(3 * opts_.heartbeat.count()));
      auto c = co_await redis_->command(std::move(cmd), std::chrono::milliseconds{1000});
      if (!st->alive) {
        co_return;
      }
      if (c && c->type == store::redis::reply::kind::integer && c->integer > 0) {
        live_ = c->integer;
      }
      if (co_await ensure_scripts(); !st->alive) {
        co_return;
      }
    }
    st->tick.expires_after(opts_.heartbeat);
    boost::system::error_code ec;
    co_await st->tick.async_wait(net::redirect_error(net::use_awaitable, ec));
    if (!st->alive) {
      co_return;
    }
  }
}

}  // namespace switchyard::limits
