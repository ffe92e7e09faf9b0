#include "switchyard/pipeline/responses_store.hpp"

#include "switchyard/store/redis/redis_client.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <spdlog/spdlog.h>

#include <cstdlib>

namespace switchyard::pipeline {

namespace {

std::int64_t system_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A positive integer from the environment, else nullopt.
std::optional<long long> env_positive(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') {
    return std::nullopt;
  }
  char* end = nullptr;
  const long long n = std::strtoll(v, &end, 10);
  if (end == v || *end != '\0' || n <= 0) {
    spdlog::warn("{}={} is not a positive integer; using the default", name, v);
    return std::nullopt;
  }
  return n;
}

}  // namespace

responses_store_options responses_store_options::from_env() {
  responses_store_options o;
  if (auto mb = env_positive("SWITCHYARD_RESPONSES_STORE_MB")) {
    o.memory_bytes = static_cast<std::size_t>(*mb) << 20;
    o.max_entry_bytes = std::min(o.max_entry_bytes, o.memory_bytes / 4);
  }
  if (auto s = env_positive("SWITCHYARD_RESPONSES_STORE_TTL_S")) {
    o.ttl = std::chrono::seconds(*s);
  }
  return o;
}

responses_store::responses_store(net::any_io_executor ex, store::redis::redis_client* redis,
                                 responses_store_options opts, clock_fn now_ms)
    : ex_(std::move(ex)),
      redis_(redis),
      opts_(std::move(opts)),
      now_(now_ms ? std::move(now_ms) : clock_fn(&system_ms)),
      memory_(opts_.memory_bytes) {}

net::awaitable<std::optional<std::string>> responses_store::get(std::string id) {
  // With Redis up, Redis decides (a DELETE on another instance must hold here too); the
  // memory copy answers only while Redis is unreachable or slow.
  auto from_memory = [&]() -> std::optional<std::string> {
    if (const auto* e = memory_.get(id, now_())) {
      ++counters_.memory_hits;
      return e->value;
    }
    ++counters_.misses;
    return std::nullopt;
  };
  if (redis_ == nullptr || !redis_->connected()) {
    co_return from_memory();
  }
  std::vector<std::string> cmd{"GET", opts_.redis_prefix + id};
  std::vector<std::string> ttl_cmd{"PTTL", opts_.redis_prefix + id};
  auto r = co_await redis_->command(std::move(cmd), opts_.redis_timeout);
  if (!r || r->type == store::redis::reply::kind::error) {
    co_return from_memory();
  }
  if (r->type != store::redis::reply::kind::string) {
    if (writing_.contains(id)) {
      co_return from_memory();  // put here, its SET not answered yet
    }
    memory_.erase(id);  // deleted or expired in Redis
    ++counters_.misses;
    co_return std::nullopt;
  }
  ++counters_.redis_hits;
  // Kept in memory for what remains of its TTL (the whole TTL if Redis does not say).
  std::int64_t left_ms = std::chrono::duration_cast<std::chrono::milliseconds>(opts_.ttl).count();
  if (auto t = co_await redis_->command(std::move(ttl_cmd), opts_.redis_timeout);
      t && t->type == store::redis::reply::kind::integer && t->integer > 0) {
    left_ms = t->integer;
  }
  cache::entry e;
  e.value = r->str;
  e.stored_ms = now_();
  e.expires_ms = e.stored_ms + left_ms;
  memory_.put(id, std::move(e));
  co_return std::move(r->str);
}

bool responses_store::put(const std::string& id, std::string value) {
  if (value.size() + id.size() > opts_.max_entry_bytes) {
    ++counters_.too_large;
    return false;
  }
  const auto ttl_ms = std::chrono::duration_cast<std::chrono::milliseconds>(opts_.ttl).count();
  if (redis_ != nullptr) {
    if (!redis_->connected() || pending_writes_ >= opts_.max_pending_writes) {
      ++counters_.redis_writes_dropped;
    } else {
      ++pending_writes_;
      writing_.insert(id);
      net::co_spawn(ex_, write_redis(id, value, ttl_ms), net::detached);
    }
  }
  cache::entry e;
  e.value = std::move(value);
  e.stored_ms = now_();
  e.expires_ms = e.stored_ms + ttl_ms;
  memory_.put(id, std::move(e));
  ++counters_.stored;
  return true;
}

net::awaitable<void> responses_store::write_redis(std::string id, std::string value, std::int64_t ttl_ms) {
  std::vector<std::string> cmd{"SET", opts_.redis_prefix + id, std::move(value), "PX", std::to_string(ttl_ms)};
  auto r = co_await redis_->command(std::move(cmd), std::chrono::milliseconds{1000});
  --pending_writes_;
  writing_.erase(id);
  if (!r || r->type == store::redis::reply::kind::error) {
    ++counters_.redis_writes_dropped;
  }
}

net::awaitable<bool> responses_store::erase(std::string id) {
  bool found = memory_.erase(id);
  if (redis_ != nullptr && redis_->connected()) {
    std::vector<std::string> cmd{"DEL", opts_.redis_prefix + id};
    auto r = co_await redis_->command(std::move(cmd), std::chrono::milliseconds{1000});
    if (r && r->type == store::redis::reply::kind::integer && r->integer > 0) {
      found = true;
    }
  }
  co_return found;
}

}  // namespace switchyard::pipeline
