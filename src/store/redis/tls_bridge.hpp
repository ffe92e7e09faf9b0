// TLS to Redis for hiredis 0.14, which speaks only plain TCP (Debian 12 ships no
// hiredis_ssl and no I/O hooks for a TLS stream): hiredis connects to a loopback port
// this bridge owns, and each accepted connection is carried to the Redis server over TLS
// (Asio SSL, certificate and host name verified). hiredis, its reply parser and the
// client's reconnect logic stay exactly as for plain Redis.
//
// Only the connections announced with expect() (by hiredis' own local port) are bridged;
// anything else connecting to the loopback port is closed at once, so another local
// process cannot borrow the TLS session.
// Owner: one redis connection (store/redis). Thread: the loop. Never blocks.
#pragma once
#include "switchyard/core/asio.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace switchyard::store::redis::detail {

struct tls_bridge_options {
  std::string server_name;  // the Redis host as configured: SNI and the name verified
  std::uint16_t port = 6379;
  bool verify = true;
  bool check_hostname = true;
  std::string ca_file;  // empty: the system trust store
  std::chrono::milliseconds handshake_timeout{1000};
};

class tls_bridge : public std::enable_shared_from_this<tls_bridge> {
 public:
  // Listens on 127.0.0.1 (a free port). Throws std::runtime_error (bad CA file, no port).
  static std::shared_ptr<tls_bridge> make(net::any_io_executor ex, tls_bridge_options o);
  virtual ~tls_bridge() = default;
  virtual std::uint16_t local_port() const = 0;
  // The next connection from 127.0.0.1:`from` goes to `ip`:port. `on_fail` runs (on the
  // loop, before the local side is closed) with the reason when it cannot be carried.
  virtual void expect(std::uint16_t from, std::string ip, std::function<void(const std::string&)> on_fail) = 0;
  // Stops accepting and closes every bridged connection.
  virtual void close() = 0;
};

}  // namespace switchyard::store::redis::detail
