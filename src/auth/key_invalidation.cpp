#include "switchyard/auth/key_invalidation.hpp"

#include "switchyard/store/redis/redis_client.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <spdlog/spdlog.h>

#include <vector>

namespace switchyard::auth {

namespace {

net::awaitable<void> publish_hash(store::redis::redis_client* redis, std::string hash) {
  std::vector<std::string> cmd{"PUBLISH", key_invalidation::channel, std::move(hash)};
  auto r = co_await redis->command(std::move(cmd));
  if (!r || r->is_error()) {
    spdlog::warn("key invalidation: PUBLISH failed ({}); other instances apply the change after the key cache TTL",
                 r ? r->str : r.error().message);
  }
}

}  // namespace

key_invalidation::key_invalidation(net::any_io_executor loop, key_cache& cache, store::redis::redis_client* redis)
    : loop_(std::move(loop)), cache_(cache), redis_(redis) {}

key_invalidation::~key_invalidation() {
  if (redis_ != nullptr) {
    redis_->unsubscribe(channel);
  }
}

net::awaitable<void> key_invalidation::start() {
  if (redis_ == nullptr) {
    co_return;
  }
  store::redis::redis_client::message_handler on_message = [this](std::string_view, std::string_view msg) {
    apply(cache_, msg);
    if (listener_) {
      listener_(msg);
    }
  };
  std::string ch = channel;
  auto r = co_await redis_->subscribe(std::move(ch), std::move(on_message));
  if (!r) {
    spdlog::warn("key invalidation: subscribe to {} pending ({}); retried when Redis is back", channel,
                 r.error().message);
  }
}

void key_invalidation::publish(const std::string& hash) {
  cache_.invalidate(hash);
  if (redis_ != nullptr) {
    net::co_spawn(loop_, publish_hash(redis_, hash), net::detached);
  }
}

void key_invalidation::publish_owner(const std::string& kind, const std::string& id) {
  auto msg = kind + ":" + id;
  apply(cache_, msg);
  if (listener_) {
    listener_(msg);
  }
  if (redis_ != nullptr) {
    net::co_spawn(loop_, publish_hash(redis_, msg), net::detached);
  }
}

void key_invalidation::apply(key_cache& cache, std::string_view message) {
  if (auto colon = message.find(':'); colon != std::string_view::npos) {
    if (message.substr(0, colon) == "end_user") {
      return;  // for the end-user cache (the listener); no key belongs to an end user
    }
    if (message.substr(0, colon) == "budget") {
      cache.clear();  // a budget row: any key, or its user, team or organisation, may name it
      return;
    }
    cache.invalidate_owner(message.substr(0, colon), message.substr(colon + 1));
  } else {
    cache.invalidate(std::string(message));
  }
}

}  // namespace switchyard::auth
