#include "switchyard/router/redis_cooldown_sync.hpp"

#include "switchyard/router/router.hpp"
#include "switchyard/core/json_get.hpp"
#include "switchyard/core/seconds.hpp"
#include "switchyard/store/redis/redis_client.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <random>

namespace switchyard::router {

namespace {

constexpr std::chrono::milliseconds command_timeout{100};

long long wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string random_origin() {
  std::random_device rd;
  std::uniform_int_distribution<unsigned long long> u;
  return std::to_string(u(rd));
}

// A free coroutine with every argument by value (no lambda captures: GCC 12).
net::awaitable<void> set_and_publish(store::redis::redis_client* redis, std::string key, std::string value,
                                     long long px) {
  std::vector<std::string> set{"SET", key, value, "PX", std::to_string(px)};
  auto r = co_await redis->command(std::move(set), command_timeout);
  if (!r || r->is_error()) {
    spdlog::debug("cooldown SET {} failed: {}", key, r ? r->str : r.error().message);
  }
  std::vector<std::string> pub{"PUBLISH", redis_cooldown_sync::channel, value};
  auto p = co_await redis->command(std::move(pub), command_timeout);
  if (!p || p->is_error()) {
    spdlog::debug("cooldown PUBLISH failed: {}", p ? p->str : p.error().message);
  }
}

net::awaitable<void> increment(store::redis::redis_client* redis, std::string key, long long by) {
  std::vector<std::string> incr{"INCRBY", key, std::to_string(by)};
  auto r = co_await redis->command(std::move(incr), command_timeout);
  if (!r || r->is_error()) {
    spdlog::debug("usage INCRBY {} failed: {}", key, r ? r->str : r.error().message);
    co_return;
  }
  std::vector<std::string> expire{"EXPIRE", key, "120"};
  co_await redis->command(std::move(expire), command_timeout);
}

std::string usage_key(const std::string& id, const char* what, long long minute) {
  return "deployment:" + id + ":" + what + ":" + std::to_string(minute);
}

long long as_count(const store::redis::reply& r) {
  if (r.type == store::redis::reply::kind::integer) {
    return r.integer;
  }
  if (r.type == store::redis::reply::kind::string) {
    try {
      return std::stoll(r.str);
    } catch (...) {
      return 0;
    }
  }
  return 0;
}

}  // namespace

redis_cooldown_sync::redis_cooldown_sync(net::any_io_executor loop, store::redis::redis_client& redis, router& rt)
    : loop_(std::move(loop)), redis_(redis), router_(rt), origin_(random_origin()) {
  router_.cooldown_state().set_listener(
      [this](const std::string& id, const cooldown_entry& e) { publish(id, e); });
  if (router_.routing_strategy() == strategy::usage_based) {
    router_.set_usage_listener([this](const std::string& id, long long minute, long long rpm, long long tpm) {
      if (rpm > 0) {
        net::co_spawn(loop_, increment(&redis_, usage_key(id, "rpm", minute), rpm), net::detached);
      }
      if (tpm > 0) {
        net::co_spawn(loop_, increment(&redis_, usage_key(id, "tpm", minute), tpm), net::detached);
      }
    });
  }
}

redis_cooldown_sync::~redis_cooldown_sync() {
  router_.cooldown_state().set_listener(nullptr);
  router_.set_usage_listener(nullptr);
}

void redis_cooldown_sync::publish(const std::string& id, const cooldown_entry& e) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(e.until - steady::now()).count();
  if (left <= 0) {
    return;
  }
  const long long now = wall_ms();
  nlohmann::json rec = {{"id", id},
                        {"exception_received", e.message},
                        {"status_code", e.status},
                        {"timestamp", static_cast<double>(now) / 1000.0},
                        {"cooldown_time", e.cooldown_time_s},
                        {"deadline_ms", now + left},
                        {"origin", origin_}};
  net::co_spawn(loop_, set_and_publish(&redis_, key_of(id), rec.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), left),
                net::detached);
}

bool redis_cooldown_sync::apply(std::string_view message) {
  // Anyone who can PUBLISH on the channel can send anything: every member is read by
  // its type, and a deadline is clamped as a local cooldown is (core/seconds.hpp).
  auto j = nlohmann::json::parse(message, nullptr, false);
  const auto deadline = core::integer_member(j, "deadline_ms");
  if (core::string_or(j, "id").empty() || !deadline) {
    return false;
  }
  if (core::string_or(j, "origin") == origin_) {
    return false;
  }
  const long long now = wall_ms();
  if (*deadline <= now) {
    return false;
  }
  const long long left = std::min<long long>(*deadline - now, core::saturated_ms(core::max_seconds));
  cooldown_entry e;
  e.until = steady::now() + std::chrono::milliseconds(left);
  e.status = static_cast<int>(std::clamp<long long>(core::integer_member(j, "status_code").value_or(0), 0, 999));
  e.message = core::string_or(j, "exception_received");
  const auto* ct = core::member(j, "cooldown_time");
  e.cooldown_time_s = ct != nullptr && ct->is_number() ? ct->get<double>() : 0.0;
  const auto id = j["id"].get<std::string>();
  if (router_.cooldown_state().cool(id, e)) {
    spdlog::info("deployment {} cooled down for {} ms by another instance", id, left);
  }
  return true;
}

net::awaitable<void> redis_cooldown_sync::start() {
  store::redis::redis_client::message_handler on_message = [this](std::string_view, std::string_view msg) {
    apply(msg);
  };
  std::string ch = channel;
  auto sub = co_await redis_.subscribe(std::move(ch), std::move(on_message));
  if (!sub) {
    spdlog::warn("cooldowns: subscribing to {} failed ({}); retried when Redis is back", channel,
                 sub.error().message);
  }
  std::size_t loaded = 0;
  for (const auto& id : router_.deployment_ids()) {
    std::vector<std::string> get{"GET", key_of(id)};
    auto r = co_await redis_.command(std::move(get), command_timeout);
    if (r && r->type == store::redis::reply::kind::string && apply(r->str)) {
      ++loaded;
    }
  }
  if (sub) {
    // From here on this instance hears every other's cooldowns (operators and tests wait
    // for this line rather than for a guessed delay).
    spdlog::info("cooldowns: subscribed to {}; {} shared cooldown(s) loaded from Redis", channel, loaded);
  }
  // The strategy and the deployments are read on every tick: a config reload may change
  // both (router::reload).
  net::steady_timer tick(loop_);
  for (;;) {
    tick.expires_after(std::chrono::milliseconds(100));
    auto [ec] = co_await tick.async_wait(net::as_tuple(net::use_awaitable));
    if (ec) {
      co_return;
    }
    if (router_.routing_strategy() != strategy::usage_based || !redis_.connected()) {
      continue;
    }
    const auto ids = router_.deployment_ids();
    const long long minute = router_.minute_now();
    std::vector<std::string> mget{"MGET"};
    std::vector<router::usage_counts> sent;
    for (const auto& id : ids) {
      mget.push_back(usage_key(id, "rpm", minute));
      mget.push_back(usage_key(id, "tpm", minute));
      sent.push_back(router_.local_usage_of(id));
    }
    auto r = co_await redis_.command(std::move(mget), command_timeout);
    if (!r || r->type != store::redis::reply::kind::array || r->elements.size() != ids.size() * 2) {
      continue;
    }
    for (std::size_t i = 0; i < ids.size(); ++i) {
      router_.set_shared_usage(ids[i], minute, as_count(r->elements[2 * i]), as_count(r->elements[2 * i + 1]),
                               sent[i]);
    }
  }
}

}  // namespace switchyard::router
