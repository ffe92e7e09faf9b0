#include "switchyard/auth/jwks_cache.hpp"

#include "switchyard/upstream/client.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <spdlog/spdlog.h>

namespace switchyard::auth {

struct jwks_cache::state {
  net::any_io_executor ex;
  upstream::client& client;
  jwks_options o;
  net::steady_timer timer;
  std::shared_ptr<const core::jwks> keys = std::make_shared<core::jwks>();
  std::uint64_t fetches = 0;
  bool stopped = false;
  bool running = false;
  std::chrono::steady_clock::time_point last_attempt{};

  state(net::any_io_executor e, upstream::client& c, jwks_options opts)
      : ex(e), client(c), o(std::move(opts)), timer(e) {}

  net::awaitable<core::result<void>> fetch() {
    last_attempt = std::chrono::steady_clock::now();
    upstream::request req;
    req.method = "GET";
    req.url = o.url;
    req.headers.emplace_back("accept", "application/json");
    req.timeout = std::chrono::seconds(10);
    auto r = co_await client.send(std::move(req));
    if (!r) {
      co_return r.error();
    }
    if (r->status != 200) {
      co_return core::make_error(core::errc::unavailable,
                                 "JWKS " + o.url + " answered HTTP " + std::to_string(r->status));
    }
    auto parsed = core::parse_jwks(r->body);
    if (!parsed) {
      co_return parsed.error();
    }
    keys = std::make_shared<core::jwks>(std::move(*parsed));
    ++fetches;
    co_return core::result<void>{};
  }

  static net::awaitable<void> loop(std::shared_ptr<state> s) {
    while (!s->stopped) {
      auto r = co_await s->fetch();
      if (s->stopped) {
        break;
      }
      if (!r) {
        spdlog::warn("JWKS {}: {} (keeping {} cached keys; retrying)", s->o.url, r.error().message,
                     s->keys->by_kid.size());
      }
      s->timer.expires_after(r ? std::chrono::duration_cast<std::chrono::steady_clock::duration>(s->o.ttl)
                               : std::chrono::duration_cast<std::chrono::steady_clock::duration>(s->o.retry));
      co_await s->timer.async_wait(net::as_tuple(net::use_awaitable));  // cancelled: refresh now
    }
    s->running = false;
  }
};

jwks_cache::jwks_cache(net::any_io_executor ex, upstream::client& client, jwks_options o)
    : s_(std::make_shared<state>(ex, client, std::move(o))) {}

jwks_cache::~jwks_cache() { stop(); }

void jwks_cache::start() {
  if (s_->running || s_->stopped) {
    return;
  }
  s_->running = true;
  auto s = s_;
  net::co_spawn(s->ex, [s]() { return state::loop(s); }, net::detached);
}

void jwks_cache::stop() {
  s_->stopped = true;
  s_->timer.cancel();
}

std::shared_ptr<const core::jwks> jwks_cache::keys() const { return s_->keys; }

void jwks_cache::refresh_soon() {
  if (std::chrono::steady_clock::now() - s_->last_attempt < s_->o.min_refetch) {
    return;
  }
  s_->timer.cancel();  // the loop fetches at once
}

net::awaitable<core::result<void>> jwks_cache::refresh_now() {
  auto s = s_;
  co_return co_await s->fetch();
}

void jwks_cache::set_keys(core::jwks keys) { s_->keys = std::make_shared<core::jwks>(std::move(keys)); }

std::uint64_t jwks_cache::fetches() const { return s_->fetches; }
const std::string& jwks_cache::url() const { return s_->o.url; }

}  // namespace switchyard::auth
