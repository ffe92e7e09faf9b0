#include "tls_bridge.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <spdlog/spdlog.h>

#include <array>
#include <list>
#include <map>
#include <stdexcept>

namespace switchyard::store::redis::detail {

namespace {

namespace ssl = net::ssl;
using error_code = boost::system::error_code;
constexpr auto use_tuple = net::as_tuple(net::use_awaitable);

// One bridged connection: hiredis' side (plain, loopback) and Redis' side (TLS).
struct pipe_pair {
  pipe_pair(tcp::socket l, const net::any_io_executor& ex, ssl::context& ctx)
      : local(std::move(l)), remote(tcp::socket(ex), ctx), timer(ex) {}
  tcp::socket local;
  ssl::stream<tcp::socket> remote;
  net::steady_timer timer;  // connect + handshake deadline
  bool closed = false;
  void close() {
    if (closed) {
      return;
    }
    closed = true;
    error_code ignored;
    timer.cancel();
    local.close(ignored);
    remote.next_layer().close(ignored);
  }
};

// What OpenSSL said about the certificate, when the handshake failed on it.
std::string handshake_failure(ssl::stream<tcp::socket>& s, const error_code& ec) {
  std::string msg = ec.message();
  const long v = SSL_get_verify_result(s.native_handle());
  if (v != X509_V_OK) {
    msg += " (";
    msg += X509_verify_cert_error_string(v);
    msg += ": set cache_params.ssl_ca_certs to the CA that signed the Redis server's certificate)";
  }
  return msg;
}

class bridge_impl final : public tls_bridge {
 public:
  bridge_impl(net::any_io_executor ex, tls_bridge_options o)
      : ex_(std::move(ex)), opts_(std::move(o)), ctx_(ssl::context::tls_client), acceptor_(ex_) {
    ctx_.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3);
    SSL_CTX_set_min_proto_version(ctx_.native_handle(), TLS1_2_VERSION);
    if (opts_.verify) {
      ctx_.set_verify_mode(ssl::verify_peer);
      error_code ec;
      if (!opts_.ca_file.empty()) {
        ctx_.load_verify_file(opts_.ca_file, ec);
        if (ec) {
          throw std::runtime_error("Redis TLS: cannot load the CA file '" + opts_.ca_file + "': " + ec.message());
        }
      } else {
        ctx_.set_default_verify_paths(ec);
      }
    } else {
      ctx_.set_verify_mode(ssl::verify_none);
    }
    tcp::endpoint ep{net::ip::make_address_v4("127.0.0.1"), 0};
    error_code ec;
    acceptor_.open(ep.protocol(), ec);
    if (!ec) {
      acceptor_.bind(ep, ec);
    }
    if (!ec) {
      acceptor_.listen(net::socket_base::max_listen_connections, ec);
    }
    if (ec) {
      throw std::runtime_error("Redis TLS: cannot open the loopback bridge: " + ec.message());
    }
    port_ = acceptor_.local_endpoint().port();
  }

  void start() {
    net::co_spawn(ex_, [self = std::static_pointer_cast<bridge_impl>(shared_from_this())]() {
      return self->accept_loop();
    }, net::detached);
  }

  std::uint16_t local_port() const override { return port_; }

  void expect(std::uint16_t from, std::string ip, std::function<void(const std::string&)> on_fail) override {
    expected_[from] = expected_peer{std::move(ip), std::move(on_fail)};
  }

  void close() override {
    closed_ = true;
    error_code ignored;
    acceptor_.close(ignored);
    for (auto& w : pipes_) {
      if (auto p = w.lock()) {
        p->close();
      }
    }
    pipes_.clear();
    expected_.clear();
  }

 private:
  struct expected_peer {
    std::string ip;
    std::function<void(const std::string&)> on_fail;
  };

  net::awaitable<void> accept_loop() {
    auto self = shared_from_this();
    while (!closed_) {
      auto [ec, sock] = co_await acceptor_.async_accept(use_tuple);
      if (ec) {
        if (closed_ || ec == net::error::operation_aborted) {
          co_return;
        }
        continue;
      }
      error_code pec;
      const auto peer = sock.remote_endpoint(pec);
      auto it = pec ? expected_.end() : expected_.find(peer.port());
      if (it == expected_.end() || !peer.address().is_loopback()) {
        error_code ignored;
        sock.close(ignored);  // not a connection hiredis announced
        continue;
      }
      expected_peer who = std::move(it->second);
      expected_.erase(it);
      auto p = std::make_shared<pipe_pair>(std::move(sock), ex_, ctx_);
      pipes_.remove_if([](const std::weak_ptr<pipe_pair>& w) { return w.expired(); });
      pipes_.push_back(p);
      net::co_spawn(ex_, [self, p, who = std::move(who)]() mutable {
        return static_cast<bridge_impl*>(self.get())->carry(p, std::move(who));
      }, net::detached);
    }
  }

  net::awaitable<void> carry(std::shared_ptr<pipe_pair> p, expected_peer who) {
    auto self = shared_from_this();
    // One deadline for connect + handshake: the timer closes the sockets.
    p->timer.expires_after(opts_.handshake_timeout);
    auto late_flag = std::make_shared<bool>(false);
    p->timer.async_wait([p, late_flag](const error_code& ec) {
      if (!ec) {
        *late_flag = true;
        error_code ignored;
        p->remote.next_layer().close(ignored);
      }
    });
    auto fail = [&](const std::string& why) {
      p->timer.cancel();
      if (who.on_fail) {
        who.on_fail(why);
      }
      p->close();
    };
    error_code ec;
    const auto addr = net::ip::make_address(who.ip, ec);
    if (ec) {
      fail("bad address " + who.ip);
      co_return;
    }
    auto [cec] = co_await p->remote.next_layer().async_connect(tcp::endpoint{addr, opts_.port}, use_tuple);
    if (cec || *late_flag) {
      fail(*late_flag ? "TLS connect timed out" : "cannot connect: " + cec.message());
      co_return;
    }
    {
      error_code ignored;
      p->remote.next_layer().set_option(tcp::no_delay(true), ignored);
      p->remote.next_layer().set_option(net::socket_base::keep_alive(true), ignored);
    }
    error_code ip_ec;
    net::ip::make_address(opts_.server_name, ip_ec);
    if (ip_ec) {  // SNI carries DNS names only
      SSL_set_tlsext_host_name(p->remote.native_handle(), opts_.server_name.c_str());
    }
    if (opts_.verify && opts_.check_hostname) {
      p->remote.set_verify_callback(
          [check = ssl::host_name_verification(opts_.server_name)](bool preverified, ssl::verify_context& vctx) {
            const bool ok = check(preverified, vctx);
            if (!ok && preverified) {
              X509_STORE_CTX_set_error(vctx.native_handle(), X509_V_ERR_HOSTNAME_MISMATCH);
            }
            return ok;
          });
    }
    auto [hec] = co_await p->remote.async_handshake(ssl::stream_base::client, use_tuple);
    if (hec || *late_flag) {
      fail(*late_flag ? std::string("TLS handshake timed out") : "TLS handshake failed: " + handshake_failure(p->remote, hec));
      co_return;
    }
    p->timer.cancel();
    // Both directions until either side ends; then both close (hiredis sees EOF and
    // reconnects through the bridge again).
    net::co_spawn(ex_, [p]() -> net::awaitable<void> {
      std::array<char, 16384> buf;  // NOLINT(cppcoreguidelines-pro-member-init): scratch
      for (;;) {
        auto [rec, n] = co_await p->local.async_read_some(net::buffer(buf), use_tuple);
        if (rec) {
          break;
        }
        auto [wec, m] = co_await net::async_write(p->remote, net::buffer(buf.data(), n), use_tuple);
        if (wec) {
          break;
        }
      }
      p->close();
    }, net::detached);
    std::array<char, 16384> buf;  // NOLINT(cppcoreguidelines-pro-member-init): scratch
    for (;;) {
      auto [rec, n] = co_await p->remote.async_read_some(net::buffer(buf), use_tuple);
      if (rec) {
        break;
      }
      auto [wec, m] = co_await net::async_write(p->local, net::buffer(buf.data(), n), use_tuple);
      if (wec) {
        break;
      }
    }
    p->close();
  }

  net::any_io_executor ex_;
  tls_bridge_options opts_;
  ssl::context ctx_;
  tcp::acceptor acceptor_;
  std::uint16_t port_ = 0;
  bool closed_ = false;
  std::map<std::uint16_t, expected_peer> expected_;
  std::list<std::weak_ptr<pipe_pair>> pipes_;
};

}  // namespace

std::shared_ptr<tls_bridge> tls_bridge::make(net::any_io_executor ex, tls_bridge_options o) {
  auto b = std::make_shared<bridge_impl>(std::move(ex), std::move(o));
  b->start();
  return b;
}

}  // namespace switchyard::store::redis::detail
