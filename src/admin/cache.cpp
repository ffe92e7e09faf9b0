// /cache/ping, /cache/delete, /cache/flushall: the response cache (docs/cache.md).
#include "handlers.hpp"

#include "switchyard/cache/response_cache.hpp"

namespace switchyard::admin {

namespace {

core::error cache_off() {
  return core::make_error(core::errc::unavailable,
                          "Cache not initialized. Set litellm_settings.cache: true (type redis or local) to use it.");
}

json counters_of(const cache::response_cache& rc) {
  const auto& k = rc.counters();
  return json{{"memory_hits", k.memory_hits},
              {"redis_hits", k.redis_hits},
              {"misses", k.misses},
              {"redis_lookup_failures", k.redis_lookup_failures},
              {"writes", k.writes},
              {"writes_dropped", k.writes_dropped},
              {"too_large", k.too_large},
              {"memory_entries", rc.memory().size()},
              {"memory_bytes", rc.memory().bytes()},
              {"memory_max_bytes", rc.memory().max_bytes()},
              {"memory_evictions", rc.memory().evictions()}};
}

}  // namespace

// GET /cache/ping: the cache's type, whether its Redis answers (503 when it does not), and
// the counters.
handler_result cache_ping(const route_context& c) {
  auto* rc = c.deps.cache;
  if (rc == nullptr) {
    co_return cache_off();
  }
  const auto& s = c.deps.cfg->cache;
  json out{{"status", "healthy"}, {"cache_type", rc->has_redis() ? "redis" : "local"}, {"ping_response", true},
           {"litellm_cache_params", {{"namespace", s.namespace_}, {"ttl", s.ttl_s},
                                     {"mode", s.default_on ? "default_on" : "default_off"}}},
           {"counters", counters_of(*rc)}};
  if (rc->has_redis()) {
    auto r = co_await rc->ping();
    if (!r) {
      co_return core::make_error(core::errc::unavailable,
                                 "Service Unhealthy: redis cache did not answer a ping (" + r.error().message + ")");
    }
    out["redis_host"] = s.redis.host;
    out["redis_port"] = s.redis.port;
  }
  co_return ok(std::move(out));
}

// POST /cache/delete {"keys": [...]}: the keys as sent in x-litellm-cache-key.
handler_result cache_delete(const route_context& c) {
  auto* rc = c.deps.cache;
  if (rc == nullptr) {
    co_return cache_off();
  }
  auto it = c.body.find("keys");
  if (it == c.body.end() || !it->is_array()) {
    co_return bad_request("`keys` is required: a list of cache keys (as in x-litellm-cache-key)", "keys");
  }
  std::vector<std::string> keys;
  for (const auto& k : *it) {
    if (!k.is_string()) {
      co_return bad_request("`keys` must be a list of strings", "keys");
    }
    keys.push_back(k.get<std::string>());
  }
  auto n = co_await rc->remove(std::move(keys));
  if (!n) {
    // As LiteLLM answers a failed delete: the entries may still be in Redis, and a
    // "success" would have the caller trust they are gone.
    co_return core::make_error(core::errc::internal, "Cache Delete Failed(" + n.error().message + ")");
  }
  co_return ok(json{{"status", "success"}, {"deleted", *n}});
}

// POST /cache/flushall: every cached response, in memory and in Redis (only the cache's
// keys: the rest of that Redis is left alone). When Redis cannot be flushed the memory tier
// is left too, and the 503 says what was flushed (LiteLLM answers a failed flush 503
// "Service Unhealthy (<why>)").
handler_result cache_flushall(const route_context& c) {
  auto* rc = c.deps.cache;
  if (rc == nullptr) {
    co_return cache_off();
  }
  auto r = co_await rc->flush();
  if (!r) {
    co_return core::make_error(core::errc::unavailable, "Service Unhealthy (" + r.error().message + ")");
  }
  co_return ok(json{{"status", "success"}});
}

}  // namespace switchyard::admin
