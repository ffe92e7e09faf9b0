#include "switchyard/cache/response_cache.hpp"

#include "switchyard/core/json_get.hpp"
#include "switchyard/core/seconds.hpp"

#include "switchyard/store/redis/redis_client.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <ctime>

namespace switchyard::cache {

namespace {

// The coarse wall clock (the kernel's last tick, 1-4 ms behind): entries' times are in
// milliseconds against TTLs of seconds, and it costs a few nanoseconds where the precise
// clock costs tens in a virtual machine (read on every store and every live hit).
std::int64_t system_ms() {
  timespec ts{};
  if (::clock_gettime(CLOCK_REALTIME_COARSE, &ts) != 0) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
  return static_cast<std::int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// The value's header, "<stored_ms> <expires_ms>\n" or with the usage
// "<stored_ms> <expires_ms> <known> <prompt> <completion> <total>\n", into `out`; returns
// its length. The value stored is the header followed by the answer.
constexpr std::size_t int_chars = 20;  // "-9223372036854775808"
constexpr std::size_t max_header = 5 * int_chars + 8;
std::size_t encode_header(const entry& e, std::array<char, max_header>& out) {
  std::size_t n = 0;
  const auto put = [&](std::int64_t v) {
    n = static_cast<std::size_t>(std::to_chars(out.data() + n, out.data() + n + int_chars, v).ptr - out.data());
  };
  const auto put_char = [&](char c) { out[n++] = c; };
  put(e.stored_ms);
  put_char(' ');
  put(e.expires_ms);
  if (e.has_usage) {
    put_char(' ');
    put_char(e.usage_known ? '1' : '0');
    put_char(' ');
    put(e.prompt_tokens);
    put_char(' ');
    put(e.completion_tokens);
    put_char(' ');
    put(e.total_tokens);
  }
  put_char('\n');
  return n;
}

std::optional<entry> decode(std::string s) {
  auto nl = s.find('\n');
  if (nl == std::string::npos) {
    return std::nullopt;
  }
  // The header: two or six space-separated integers.
  std::int64_t f[6] = {};
  std::size_t n = 0;
  const char* p = s.data();
  const char* end = s.data() + nl;
  while (p < end && n < 6) {
    auto [q, ec] = std::from_chars(p, end, f[n]);
    if (ec != std::errc{} || (q != end && *q != ' ')) {
      return std::nullopt;
    }
    ++n;
    p = q == end ? q : q + 1;
  }
  if (p != end || (n != 2 && n != 6)) {
    return std::nullopt;
  }
  entry e;
  e.stored_ms = f[0];
  e.expires_ms = f[1];
  if (n == 6) {
    e.has_usage = true;
    e.usage_known = f[2] != 0;
    // Counts as the provider readers take them (core/json_get.hpp): never negative, at
    // most 10^18, whoever wrote the entry.
    e.prompt_tokens = core::count_of_integer(f[3]);
    e.completion_tokens = core::count_of_integer(f[4]);
    e.total_tokens = core::count_of_integer(f[5]);
  }
  s.erase(0, nl + 1);
  e.value = std::move(s);
  return e;
}

}  // namespace

response_cache::response_cache(net::any_io_executor ex, store::redis::redis_client* redis, cache_options opts,
                               clock_fn now_ms)
    : ex_(std::move(ex)),
      redis_(redis),
      opts_(std::move(opts)),
      now_(now_ms ? std::move(now_ms) : clock_fn(&system_ms)),
      memory_(opts_.memory_bytes),
      writes_(std::make_shared<write_tally>()) {}

cache_counters response_cache::counters() const {
  cache_counters c = counters_;
  c.writes_dropped += writes_->failed;  // the writes Redis refused, reported after the fact
  return c;
}

std::optional<entry> response_cache::get_memory(const std::string& key) {
  if (const auto* e = memory_.get(key, now_)) {
    ++counters_.memory_hits;
    return *e;
  }
  if (redis_ == nullptr) {
    ++counters_.misses;
  }
  return std::nullopt;
}

net::awaitable<std::optional<entry>> response_cache::get_redis(const std::string& key) {
  if (redis_ == nullptr || !redis_->connected()) {
    ++counters_.misses;
    co_return std::nullopt;
  }
  // The command is copied into the connection's buffer before command() suspends, so one
  // buffer serves every lookup.
  get_cmd_.start(2);
  get_cmd_.arg("GET");
  get_cmd_.arg({opts_.redis_prefix, key});
  auto r = co_await redis_->command(get_cmd_, opts_.redis_timeout);
  if (!r || r->is_error()) {
    ++counters_.redis_lookup_failures;
    ++counters_.misses;
    co_return std::nullopt;
  }
  if (r->type != store::redis::reply::kind::string) {
    ++counters_.misses;
    co_return std::nullopt;
  }
  auto e = decode(std::move(r->str));
  if (!e || e->expires_ms <= now_()) {
    ++counters_.misses;
    co_return std::nullopt;
  }
  ++counters_.redis_hits;
  put_memory(key, *e);
  co_return e;
}

bool response_cache::put(const std::string& key, std::string value, double ttl_s, stored_usage usage,
                         entry* copy) {
  if (ttl_s <= 0) {
    return false;
  }
  if (value.size() > opts_.max_entry_bytes) {
    ++counters_.too_large;
    return false;
  }
  // A TTL beyond any horizon ("ttl": 1e308) is held to a hundred years (Redis refuses a
  // PX past the end of its clock).
  const auto ttl_ms = core::saturated_ms(ttl_s);
  if (ttl_ms <= 0) {
    return false;
  }
  entry e{std::move(value), now_(), 0};
  e.expires_ms = e.stored_ms + ttl_ms;
  if (usage.stored) {
    e.has_usage = true;
    e.usage_known = usage.known;
    e.prompt_tokens = usage.prompt_tokens;
    e.completion_tokens = usage.completion_tokens;
    e.total_tokens = usage.total_tokens;
  }
  ++counters_.writes;
  if (copy != nullptr) {
    *copy = e;
  }
  // With Redis, an answer enters the memory tier when it is read back from Redis (a
  // second request for it), not when it is stored: answers asked for once never evict
  // the ones asked for again (docs/cache.md, "Tiers"). A write Redis cannot take
  // goes to memory at once.
  if (redis_ == nullptr || !write_redis(key, e, ttl_ms)) {
    put_memory(key, std::move(e));
  }
  return true;
}

void response_cache::put_memory(const std::string& key, entry e) {
  if (opts_.memory_max_ttl_ms > 0) {
    e.expires_ms = std::min(e.expires_ms, now_() + opts_.memory_max_ttl_ms);
  }
  memory_.put(key, std::move(e));
}

bool response_cache::write_redis(const std::string& key, const entry& e, std::int64_t ttl_ms) {
  if (!redis_->connected() || writes_->pending >= opts_.max_pending_writes) {
    ++counters_.writes_dropped;
    return false;
  }
  std::array<char, max_header> header;
  const std::size_t header_size = encode_header(e, header);
  char ttl[24];
  const auto ttl_len = static_cast<std::size_t>(std::to_chars(ttl, ttl + sizeof ttl, ttl_ms).ptr - ttl);
  set_cmd_.start(5);
  set_cmd_.arg("SET");
  set_cmd_.arg({opts_.redis_prefix, key});
  set_cmd_.arg({std::string_view(header.data(), header_size), e.value});
  set_cmd_.arg("PX");
  set_cmd_.arg(std::string_view(ttl, ttl_len));
  ++writes_->pending;  // before the send: its report must find the write counted
  const bool queued = redis_->send(set_cmd_, writes_);
  set_cmd_.trim(256u << 10);  // a large answer once: not kept for every later write
  if (!queued) {
    --writes_->pending;
    ++counters_.writes_dropped;
    return false;
  }
  return true;
}

std::string group_entry(const std::vector<std::string>& keys) {
  std::string v(group_marker);
  for (const auto& k : keys) {
    v += k;
    v += '\n';
  }
  return v;
}

namespace {

// The keys a group entry lists (nothing for an answer).
void add_listed(std::string_view value, std::vector<std::string>& out) {
  if (!value.starts_with(group_marker)) {
    return;
  }
  value.remove_prefix(group_marker.size());
  while (!value.empty()) {
    const auto nl = value.find('\n');
    const auto k = value.substr(0, nl);
    if (!k.empty()) {
      out.emplace_back(k);
    }
    value.remove_prefix(nl == std::string_view::npos ? value.size() : nl + 1);
  }
}

}  // namespace

net::awaitable<core::result<std::size_t>> response_cache::remove(std::vector<std::string> keys) {
  // A group entry (an embeddings list's, under the whole request's key) takes the keys it
  // lists with it: looked up in both tiers first, without counting as hits or misses.
  const std::size_t asked = keys.size();
  for (std::size_t i = 0; i < asked; ++i) {
    if (const entry* e = memory_.get(keys[i], now_())) {
      add_listed(e->value, keys);
    }
  }
  // Redis' answers, checked once the memory tier is emptied of the keys known by then: a
  // deletion Redis did not confirm is an error, not "nothing found" (the entries would
  // come back with Redis).
  std::optional<core::error> failed;
  const auto refused = [&](const core::result<store::redis::reply>& r, const char* what) {
    if (!r) {
      failed = r.error();
    } else if (r->is_error()) {
      failed = core::make_error(core::errc::unavailable, std::string("redis ") + what + " failed: " + r->str);
    }
    return failed.has_value();
  };
  if (redis_ != nullptr && asked != 0) {
    std::vector<std::string> mget{"MGET"};
    for (std::size_t i = 0; i < asked; ++i) {
      mget.push_back(opts_.redis_prefix + keys[i]);
    }
    auto r = co_await redis_->command(std::move(mget), std::chrono::milliseconds{1000});
    if (!refused(r, "MGET") && r->type == store::redis::reply::kind::array) {
      for (const auto& el : r->elements) {
        if (el.type == store::redis::reply::kind::string) {
          if (auto e = decode(el.str)) {
            add_listed(e->value, keys);
          }
        }
      }
    }
  }
  std::size_t found = 0;
  for (const auto& k : keys) {
    if (memory_.erase(k)) {
      ++found;
    }
  }
  if (failed) {
    co_return std::move(*failed);
  }
  if (redis_ != nullptr && !keys.empty()) {
    std::vector<std::string> cmd{"DEL"};
    for (const auto& k : keys) {
      cmd.push_back(opts_.redis_prefix + k);
    }
    auto r = co_await redis_->command(std::move(cmd), std::chrono::milliseconds{1000});
    if (refused(r, "DEL")) {
      co_return std::move(*failed);
    }
    if (r->type == store::redis::reply::kind::integer) {
      found = std::max(found, static_cast<std::size_t>(r->integer));
    }
  }
  co_return found;
}

// Redis first, the memory tier only once Redis is done: a flush Redis could not finish
// leaves the memory tier as it was, so a failure means "not flushed" (Redis may have lost
// some keys, which a retry deletes anyway) rather than a half flush reported as an error
// whose memory half the caller cannot see. Emptying memory last also drops the copies
// Redis hits brought in while the scan ran.
net::awaitable<core::result<void>> response_cache::flush() {
  if (redis_ != nullptr) {
    std::size_t deleted = 0;
    // Why the flush stopped, with what it had done by then.
    const auto stopped = [&deleted](const std::string& why) {
      return core::make_error(core::errc::unavailable,
                              why + (deleted == 0 ? "; nothing was flushed"
                                                  : "; " + std::to_string(deleted) +
                                                        " Redis entries were deleted, the rest of Redis and the "
                                                        "memory tier were not flushed"));
    };
    std::string cursor = "0";
    do {
      std::vector<std::string> scan{"SCAN", cursor, "MATCH", opts_.redis_prefix + "*", "COUNT", "1000"};
      auto r = co_await redis_->command(std::move(scan), std::chrono::milliseconds{2000});
      if (!r) {
        co_return stopped("redis SCAN: " + r.error().message);
      }
      if (r->is_error() || r->elements.size() != 2) {
        co_return stopped("redis SCAN failed: " + r->str);
      }
      cursor = r->elements[0].str;
      if (!r->elements[1].elements.empty()) {
        std::vector<std::string> del{"UNLINK"};
        for (const auto& k : r->elements[1].elements) {
          del.push_back(k.str);
        }
        auto d = co_await redis_->command(std::move(del), std::chrono::milliseconds{2000});
        if (!d) {
          co_return stopped("redis UNLINK: " + d.error().message);
        }
        if (d->is_error()) {
          co_return stopped("redis UNLINK failed: " + d->str);
        }
        deleted += static_cast<std::size_t>(std::max<long long>(0, d->integer));
      }
    } while (cursor != "0");
  }
  memory_.clear();
  co_return core::result<void>{};
}

net::awaitable<core::result<void>> response_cache::ping() {
  if (redis_ == nullptr) {
    co_return core::result<void>{};
  }
  co_return co_await redis_->ping(std::chrono::milliseconds{1000});
}

// ---------------------------------------------------------------- inflight

struct inflight::flight {
  flight(const net::any_io_executor& ex, std::chrono::steady_clock::time_point at) : ex(ex), deadline(at) {}
  void cancel() {
    if (timer) {
      timer->cancel();  // wakes every follower
    }
  }
  net::any_io_executor ex;
  std::chrono::steady_clock::time_point deadline;
  // Made by the first follower (most flights have none), expires at the deadline,
  // cancelled when the flight lands.
  std::optional<net::steady_timer> timer;
  bool landed = false;
  std::size_t followers = 0;
  std::optional<entry> answer;  // handed over by the leader for its followers
};

inflight::~inflight() {
  for (auto& [k, f] : flights_) {
    f->cancel();
  }
}

std::shared_ptr<inflight::flight> inflight::find(const std::string& key) const {
  auto it = flights_.find(key);
  return it == flights_.end() ? nullptr : it->second;
}

std::shared_ptr<inflight::flight> inflight::lead(const std::string& key, std::chrono::milliseconds max_wait) {
  // Every cacheable miss leads a flight; its deadline (the followers' longest wait, tens of
  // seconds) needs no more than the coarse clock, which runs on the precise one's base.
  timespec ts{};
  const auto now = ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts) == 0
                       ? std::chrono::steady_clock::time_point(std::chrono::seconds(ts.tv_sec) +
                                                               std::chrono::nanoseconds(ts.tv_nsec))
                       : std::chrono::steady_clock::now();
  auto f = std::make_shared<flight>(ex_, now + max_wait);
  flights_[key] = f;
  return f;
}

void inflight::land(const std::string& key, const std::shared_ptr<flight>& f) {
  auto it = flights_.find(key);
  if (it != flights_.end() && it->second == f) {
    flights_.erase(it);
  }
  f->landed = true;
  f->cancel();
}

net::awaitable<void> inflight::follow(std::shared_ptr<flight> f) {
  if (f->landed) {
    co_return;
  }
  if (!f->timer) {
    f->timer.emplace(f->ex, f->deadline);
  }
  co_await f->timer->async_wait(net::as_tuple(net::use_awaitable));
}

void inflight::join(flight& f) { ++f.followers; }

bool inflight::has_followers(const flight& f) { return f.followers > 0; }

void inflight::hand_over(flight& f, entry e) { f.answer = std::move(e); }

const entry* inflight::result(const flight& f) { return f.answer ? &*f.answer : nullptr; }

std::size_t inflight::size() const { return flights_.size(); }

}  // namespace switchyard::cache
