// HTTP/1.1 listener: one coroutine per connection on the io_context thread,
// keep-alive, limits (header bytes, body bytes, header/idle/body timeouts),
// graceful drain. Malformed requests get 400, oversized bodies 413, oversized
// headers 431, slow headers 408, all OpenAI-shaped; the connection then closes.
// Owner: app/. Thread: the io_context's single thread. Never blocks.
#pragma once
#include "switchyard/core/asio.hpp"
#include "switchyard/http/message.hpp"

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>

namespace boost::asio::ssl {
class context;  // the TLS context stays out of this header (Asio's SSL headers are heavy)
}

namespace switchyard::http {

struct server_options {
  std::string host = "0.0.0.0";
  unsigned short port = 4000;
  std::size_t max_header_bytes = 64 * 1024;
  std::size_t max_body_bytes = 64u << 20;
  std::chrono::milliseconds header_timeout{10'000};  // first byte -> complete header
  std::chrono::milliseconds idle_timeout{30'000};    // keep-alive wait for the next request
  std::chrono::milliseconds body_timeout{120'000};   // complete body after the header
  std::chrono::milliseconds write_timeout{120'000};  // any single write to the client
  // After an early error (413, 408, 400, 431) the connection is half-closed and what the
  // client still sends is read and dropped until it closes, for at most this long, so a
  // reset cannot destroy the answer in flight (a lingering close, as nginx does).
  std::chrono::milliseconds linger_timeout{5'000};
  // SO_REUSEPORT: several worker processes listen on the same port and the kernel
  // spreads new connections across them.
  bool reuse_port = false;
  // An already listening socket (handed over by the supervisor) to serve instead of
  // binding host:port; the server takes ownership.
  int listen_fd = -1;
  // HTTPS: with both set the port speaks TLS 1.2+ only (plain HTTP gets a 400 in clear
  // text and is closed). PEM files: the certificate chain and its private key.
  std::string tls_cert_file;
  std::string tls_key_file;
  // The headers an early error (413, 408, 400 written before any handler ran) carries for
  // a request with this Origin: the gateway's CORS headers. Unset: none.
  std::function<header_list(std::string_view origin)> early_error_headers;
};

// Startup check of the TLS files (both set or neither, readable, the key matches the
// certificate): empty when fine, else the reason. Reads files (blocking).
std::string check_tls_files(const std::string& cert_file, const std::string& key_file);

// The certificate chain and its private key read into a server TLS context (TLS 1.2+, the
// key checked against the certificate). Reads files: a reload makes it on a worker thread
// and hands it to server::use_tls() on the loop. Throws std::runtime_error with the reason.
std::shared_ptr<net::ssl::context> make_tls_context(const std::string& cert_file, const std::string& key_file);

using handler = std::function<net::awaitable<void>(request&, responder&)>;

class server {
 public:
  server(net::any_io_executor ex, server_options opts, handler h);
  ~server();
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  // Binds and listens (loading the TLS files when set); throws std::system_error or
  // std::runtime_error with a clear message on failure.
  void listen();
  tcp::endpoint local_endpoint() const;
  // New handshakes use `ctx` (from make_tls_context); connections already established
  // keep theirs. Loop thread.
  void use_tls(std::shared_ptr<net::ssl::context> ctx);
  bool tls() const;
  // Starts accepting (co_spawns the accept loop).
  void start();
  // Stops accepting, closes idle connections, lets in-flight requests finish.
  // `done` runs once no connection is left (or after force_close()).
  void drain(std::function<void()> done);
  // Cancels every remaining connection now.
  void force_close();
  std::size_t active_connections() const;
  bool draining() const;

 private:
  struct impl;
  std::shared_ptr<impl> impl_;
};

}  // namespace switchyard::http
