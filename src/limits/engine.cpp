#include "switchyard/limits/engine.hpp"

#include "switchyard/core/ids.hpp"
#include "switchyard/store/redis/redis_client.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>

namespace switchyard::limits {

// ---------------------------------------------------------------- the Lua scripts

// Reserve: ARGV = id, window ms, reservation ttl ms, n, then per check: kind (b|r|t|p),
// limit, amount, seed, key ttl ms. KEYS per check: budgets a hash {s: spend, r: reserved}
// and a zset of reservations ("id:amount", scored by their expiry); windows a counter
// whose TTL is the window (created at first use); parallel slots a zset of request ids
// scored by their expiry. Expired reservations are dropped first. Either every check
// fits and is reserved, or nothing is written: {0, index, used, reset ms}; else
// {1, 0, 0, 0, remaining1, reset1, ...}. Time is Redis' own (TIME), one clock for all.
const char* const reserve_script = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local id = ARGV[1]
local win = tonumber(ARGV[2])
local rttl = tonumber(ARGV[3])
local n = tonumber(ARGV[4])
local used = {}
local ttl = {}
local k = 1
for i = 1, n do
  local a = 4 + (i - 1) * 5
  local kind = ARGV[a + 1]
  local limit = tonumber(ARGV[a + 2])
  local amount = tonumber(ARGV[a + 3])
  local u
  local r = -1
  if kind == 'b' then
    local h, z = KEYS[k], KEYS[k + 1]
    k = k + 2
    local dead = redis.call('ZRANGEBYSCORE', z, '-inf', now)
    if #dead > 0 then
      local freed = 0
      for _, m in ipairs(dead) do
        freed = freed + tonumber(string.match(m, '[^:]*$'))
      end
      redis.call('ZREMRANGEBYSCORE', z, '-inf', now)
      if redis.call('EXISTS', h) == 1 then
        redis.call('HINCRBY', h, 'r', -freed)
      end
    end
    local v = redis.call('HMGET', h, 's', 'r')
    if v[1] then
      u = tonumber(v[1]) + tonumber(v[2] or '0')
    else
      u = tonumber(ARGV[a + 4])
      r = -2
    end
    if u >= limit or u + amount > limit then
      return {0, i, u, -1}
    end
  elseif kind == 'p' then
    local z = KEYS[k]
    k = k + 1
    redis.call('ZREMRANGEBYSCORE', z, '-inf', now)
    u = redis.call('ZCARD', z)
    if u + amount > limit then
      return {0, i, u, -1}
    end
  else
    local c = KEYS[k]
    k = k + 1
    u = tonumber(redis.call('GET', c) or '0')
    r = redis.call('PTTL', c)
    if u + amount > limit then
      if r <= 0 then r = win end
      return {0, i, u, r}
    end
  end
  used[i] = u
  ttl[i] = r
end
local out = {1, 0, 0, 0}
k = 1
for i = 1, n do
  local a = 4 + (i - 1) * 5
  local kind = ARGV[a + 1]
  local limit = tonumber(ARGV[a + 2])
  local amount = tonumber(ARGV[a + 3])
  local reset = -1
  if kind == 'b' then
    local h, z = KEYS[k], KEYS[k + 1]
    k = k + 2
    local kttl = ARGV[a + 5]
    if ttl[i] == -2 then
      redis.call('HSET', h, 's', ARGV[a + 4], 'r', 0)
    end
    if amount > 0 then
      redis.call('HINCRBY', h, 'r', ARGV[a + 3])
      redis.call('ZADD', z, now + rttl, id .. ':' .. ARGV[a + 3])
    end
    redis.call('PEXPIRE', h, kttl)
    redis.call('PEXPIRE', z, kttl)
  elseif kind == 'p' then
    local z = KEYS[k]
    k = k + 1
    redis.call('ZADD', z, now + rttl, id)
    redis.call('PEXPIRE', z, rttl)
  else
    local c = KEYS[k]
    k = k + 1
    redis.call('INCRBY', c, ARGV[a + 3])
    if ttl[i] < 0 then
      redis.call('PEXPIRE', c, win)
      reset = win
    else
      reset = ttl[i]
    end
  end
  out[#out + 1] = limit - used[i] - amount
  out[#out + 1] = reset
end
return out
)lua";

// Settle: ARGV = n, then per op: kind, member, reserved, actual (same KEYS layout). A
// budget's reservation is released only if it is still there (not expired), and the
// actual cost is added to a counter that still exists (a missing one is seeded from
// Postgres, which has the cost). Token windows are corrected to the actual tokens.
const char* const settle_script = R"lua(
local n = tonumber(ARGV[1])
local k = 1
for i = 1, n do
  local a = 1 + (i - 1) * 4
  local kind = ARGV[a + 1]
  local member = ARGV[a + 2]
  local reserved = tonumber(ARGV[a + 3])
  local actual = tonumber(ARGV[a + 4])
  if kind == 'b' then
    local h, z = KEYS[k], KEYS[k + 1]
    k = k + 2
    local live = redis.call('EXISTS', h) == 1
    if reserved > 0 and redis.call('ZREM', z, member .. ':' .. ARGV[a + 3]) == 1 and live then
      redis.call('HINCRBY', h, 'r', -reserved)
    end
    if live and actual > 0 then
      redis.call('HINCRBY', h, 's', ARGV[a + 4])
    end
  elseif kind == 'p' then
    redis.call('ZREM', KEYS[k], member)
    k = k + 1
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
)lua";

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
      break;
  }
}

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
        fits = u + c.amount <= limit;
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
};

redis_engine::redis_engine(net::any_io_executor loop, store::redis::redis_client* redis, redis_engine_options opts,
                           memory_engine::clock_fn now_ms)
    : loop_(loop),
      redis_(redis),
      opts_(std::move(opts)),
      local_(std::move(now_ms), opts_.window),
      st_(std::make_shared<state>(loop)),
      instance_id_(core::uuid4()) {}

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
    return false;
  }
  if (redis_ != nullptr) {
    mark_down("not connected");
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
  // EVALSHA sha numkeys keys... id window ttl n (kind limit amount seed ttl)...
  auto build = [&](const std::string& sha) {
    std::vector<std::string> cmd;
    cmd.reserve(3 + checks.size() * 2 + 4 + checks.size() * 5);
    cmd.emplace_back("EVALSHA");
    cmd.push_back(sha);
    cmd.emplace_back();  // numkeys, below
    for (const auto& c : checks) {
      push_keys(cmd, opts_.prefix, c);
    }
    cmd[2] = std::to_string(cmd.size() - 3);
    cmd.push_back(id);
    cmd.push_back(std::to_string(opts_.window.count()));
    cmd.push_back(std::to_string(opts_.reservation_ttl.count()));
    cmd.push_back(std::to_string(checks.size()));
    for (const auto& c : checks) {
      cmd.emplace_back(1, kind_char(c.k));
      cmd.push_back(std::to_string(c.limit));
      cmd.push_back(std::to_string(c.amount));
      cmd.push_back(std::to_string(c.seed));
      cmd.push_back(std::to_string(c.key_ttl_ms));
    }
    return cmd;
  };
  auto cmd = build(st->reserve_sha);
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
  for (std::size_t i = 0; i < checks.size() && 5 + 2 * i < e.size(); ++i) {
    d.remaining[i] = e[4 + 2 * i].integer;
    d.reset_in_ms[i] = e[5 + 2 * i].integer;
  }
  co_return d;
}

void redis_engine::settle(settle_op op, bool shared) {
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
    if (pending_.empty()) {
      st->wake.expires_after(std::chrono::hours{24});
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
    std::vector<settle_op> batch;
    const std::size_t n = std::min<std::size_t>(pending_.size(), 1000);
    batch.assign(std::make_move_iterator(pending_.begin()), std::make_move_iterator(pending_.begin() + n));
    pending_.erase(pending_.begin(), pending_.begin() + n);
    bool sent = false;
    if (redis_->connected() && co_await ensure_scripts() && st->alive) {
      std::vector<std::string> keys;
      std::vector<std::string> argv;
      argv.push_back(std::to_string(batch.size()));
      for (const auto& op : batch) {
        push_keys(keys, opts_.prefix, op.c);
        argv.emplace_back(1, kind_char(op.c.k));
        argv.push_back(op.member);
        argv.push_back(std::to_string(op.reserved));
        argv.push_back(std::to_string(op.actual));
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
  net::steady_timer t(loop_);
  while (st->alive && redis_ != nullptr && (!pending_.empty() || st->flushing) &&
         std::chrono::steady_clock::now() < deadline && redis_->connected()) {
    t.expires_after(std::chrono::milliseconds{10});
    boost::system::error_code ec;
    co_await t.async_wait(net::redirect_error(net::use_awaitable, ec));
  }
}

net::awaitable<void> redis_engine::heartbeat_loop() {
  auto st = st_;
  const std::string key = opts_.prefix + "instances";
  for (;;) {
    if (redis_->connected()) {
      const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count();
      std::vector<std::string> add{"ZADD", key, std::to_string(now), instance_id_};
      auto a = co_await redis_->command(std::move(add), std::chrono::milliseconds{1000});
      if (!st->alive) {
        co_return;
      }
      std::vector<std::string> trim{"ZREMRANGEBYSCORE", key, "-inf",
                                    std::to_string(now - 3 * opts_.heartbeat.count())};
      auto t = co_await redis_->command(std::move(trim), std::chrono::milliseconds{1000});
      if (!st->alive) {
        co_return;
      }
      std::vector<std::string> count{"ZCARD", key};
      auto c = co_await redis_->command(std::move(count), std::chrono::milliseconds{1000});
      if (!st->alive) {
        co_return;
      }
      if (a && t && c && c->type == store::redis::reply::kind::integer && c->integer > 0) {
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
