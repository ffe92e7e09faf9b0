// A scriptable HTTP/1.1 (optionally TLS) server on 127.0.0.1:<port 0> for the
// upstream client tests. It runs on the test's io_context (one thread): each test
// sets on_request (or on_connect for raw byte scripts) and reads the counters after.
#pragma once
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <openssl/ssl.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace sy_test {

namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using steady = std::chrono::steady_clock;
inline constexpr auto tuple_awaitable = net::as_tuple(net::use_awaitable);

struct http_request {
  std::string head;  // request line + headers, CRLFs included
  std::string body;

  // Value of the first header with this name (case-insensitive), or nullopt.
  std::optional<std::string> header(std::string_view name) const {
    std::size_t pos = head.find("\r\n");
    while (pos != std::string::npos && pos + 2 < head.size()) {
      std::size_t start = pos + 2;
      std::size_t end = head.find("\r\n", start);
      std::string_view line(head.data() + start, (end == std::string::npos ? head.size() : end) - start);
      auto colon = line.find(':');
      if (colon != std::string_view::npos && colon == name.size() &&
          std::equal(name.begin(), name.end(), line.begin(), [](char a, char b) {
            return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
          })) {
        auto value = line.substr(colon + 1);
        while (!value.empty() && value.front() == ' ') {
          value.remove_prefix(1);
        }
        return std::string(value);
      }
      pos = end;
    }
    return std::nullopt;
  }
  std::string request_line() const { return head.substr(0, head.find("\r\n")); }
};

class server_conn {
 public:
  virtual ~server_conn() = default;
  // false if the peer is gone.
  virtual net::awaitable<bool> write(std::string data) = 0;
  // nullopt on end of stream or error.
  virtual net::awaitable<std::optional<http_request>> read_request() = 0;
  // Reads (and discards) until the peer closes; true if it did within `limit`.
  virtual net::awaitable<bool> wait_closed(std::chrono::milliseconds limit) = 0;
  // Closes the TCP socket abruptly (no TLS close_notify).
  virtual void close() = 0;

  net::awaitable<void> pause(std::chrono::milliseconds d) {
    net::steady_timer t(co_await net::this_coro::executor, d);
    co_await t.async_wait(tuple_awaitable);
  }

  int index = 0;  // 1-based connection number on this server
};

template <class Stream>
class basic_server_conn final : public server_conn {
 public:
  template <class... Args>
  explicit basic_server_conn(std::shared_ptr<ssl::context> ctx, Args&&... args)
      : ctx_(std::move(ctx)), stream_(std::forward<Args>(args)...) {}

  Stream& stream() { return stream_; }

  tcp::socket& socket() {
    if constexpr (std::is_same_v<Stream, tcp::socket>) {
      return stream_;
    } else {
      return stream_.next_layer();
    }
  }

  net::awaitable<bool> write(std::string data) override {
    auto [ec, n] = co_await net::async_write(stream_, net::buffer(data), tuple_awaitable);
    (void)n;
    co_return !ec;
  }

  net::awaitable<std::optional<http_request>> read_request() override {
    auto [ec, n] = co_await net::async_read_until(stream_, net::dynamic_buffer(buf_), "\r\n\r\n", tuple_awaitable);
    if (ec) {
      co_return std::nullopt;
    }
    http_request r;
    r.head = buf_.substr(0, n);
    buf_.erase(0, n);
    std::size_t length = 0;
    if (auto cl = r.header("content-length")) {
      length = std::stoul(*cl);
    }
    while (buf_.size() < length) {
      char tmp[4096];
      auto [rec, got] = co_await stream_.async_read_some(net::buffer(tmp), tuple_awaitable);
      if (rec) {
        co_return std::nullopt;
      }
      buf_.append(tmp, got);
    }
    r.body = buf_.substr(0, length);
    buf_.erase(0, length);
    co_return r;
  }

  net::awaitable<bool> wait_closed(std::chrono::milliseconds limit) override {
    net::steady_timer t(co_await net::this_coro::executor, limit);
    bool expired = false;
    t.async_wait([this, &expired](boost::system::error_code ec) {
      if (!ec) {
        expired = true;
        boost::system::error_code ignored;
        socket().cancel(ignored);
      }
    });
    for (;;) {
      char tmp[1024];
      auto [ec, n] = co_await socket().async_read_some(net::buffer(tmp), tuple_awaitable);
      (void)n;
      if (ec) {
        t.cancel();
        co_return !expired;
      }
    }
  }

  void close() override {
    boost::system::error_code ec;
    socket().close(ec);
  }

 private:
  std::shared_ptr<ssl::context> ctx_;  // outlives the stream's SSL object
  Stream stream_;
  std::string buf_;
};

class test_server {
 public:
  using request_script = std::function<net::awaitable<bool>(server_conn&, http_request&, int request_on_conn)>;
  using connect_script = std::function<net::awaitable<void>(server_conn&)>;

  explicit test_server(net::io_context& io, std::shared_ptr<ssl::context> tls = nullptr)
      : io_(io), tls_(std::move(tls)), acceptor_(io, tcp::endpoint(net::ip::address_v4::loopback(), 0)) {
    net::co_spawn(io_, accept_loop(), net::detached);
  }
  ~test_server() {
    boost::system::error_code ec;
    acceptor_.close(ec);
  }

  unsigned short port() const { return acceptor_.local_endpoint().port(); }
  std::string url(std::string_view path = "/", std::string_view host = "127.0.0.1") const {
    return std::string(tls_ ? "https://" : "http://") + std::string(host) + ":" + std::to_string(port()) +
           std::string(path);
  }

  // Per request: write a reply through the connection; return false to close it.
  request_script on_request;
  // If set, replaces the request loop entirely (raw byte scripts).
  connect_script on_connect;

  int connections = 0;
  std::vector<http_request> requests;
  std::vector<std::string> sni;  // TLS only: server name each client sent ("" if none)

 private:
  net::awaitable<void> accept_loop() {
    for (;;) {
      auto [ec, sock] = co_await acceptor_.async_accept(tuple_awaitable);
      if (ec) {
        co_return;
      }
      ++connections;
      if (tls_) {
        auto c = std::make_shared<basic_server_conn<ssl::stream<tcp::socket>>>(tls_, std::move(sock), *tls_);
        c->index = connections;
        net::co_spawn(io_, serve_tls(c), net::detached);
      } else {
        auto c = std::make_shared<basic_server_conn<tcp::socket>>(nullptr, std::move(sock));
        c->index = connections;
        net::co_spawn(io_, serve(c), net::detached);
      }
    }
  }

  net::awaitable<void> serve_tls(std::shared_ptr<basic_server_conn<ssl::stream<tcp::socket>>> c) {
    auto [ec] = co_await c->stream().async_handshake(ssl::stream_base::server, tuple_awaitable);
    if (ec) {
      co_return;
    }
    const char* name = SSL_get_servername(c->stream().native_handle(), TLSEXT_NAMETYPE_host_name);
    sni.emplace_back(name != nullptr ? name : "");
    co_await serve(c);
  }

  net::awaitable<void> serve(std::shared_ptr<server_conn> c) {
    if (on_connect) {
      co_await on_connect(*c);
      co_return;
    }
    for (int n = 1;; ++n) {
      auto r = co_await c->read_request();
      if (!r) {
        co_return;
      }
      requests.push_back(*r);
      bool keep = false;
      if (on_request) {
        keep = co_await on_request(*c, *r, n);
      }
      if (!keep) {
        c->close();
        co_return;
      }
    }
  }

  net::io_context& io_;
  std::shared_ptr<ssl::context> tls_;
  tcp::acceptor acceptor_;
};

// Responses.
inline std::string reply(std::string_view status_line, std::string_view body, std::string_view extra_headers = "") {
  return std::string(status_line) + "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" +
         std::string(extra_headers) + "\r\n" + std::string(body);
}
inline std::string json_reply(std::string_view body, std::string_view extra_headers = "") {
  return reply("HTTP/1.1 200 OK", body, "Content-Type: application/json\r\n" + std::string(extra_headers));
}
inline std::string chunked_head(std::string_view extra_headers = "") {
  return "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n" +
         std::string(extra_headers) + "\r\n";
}
inline std::string chunk(std::string_view data) {
  char size[32];
  std::snprintf(size, sizeof(size), "%zx\r\n", data.size());
  return std::string(size) + std::string(data) + "\r\n";
}
inline const std::string last_chunk = "0\r\n\r\n";

// Runs `f` (a callable returning net::awaitable<void>) on `io` to completion,
// bounded by `limit`; rethrows what it threw.
template <class F>
bool run_coro(net::io_context& io, F f, std::chrono::seconds limit, std::exception_ptr& error) {
  bool done = false;
  net::co_spawn(io, std::move(f), [&](std::exception_ptr e) {
    done = true;
    error = e;
    io.stop();
  });
  io.restart();
  io.run_for(limit);
  return done;
}

}  // namespace sy_test
