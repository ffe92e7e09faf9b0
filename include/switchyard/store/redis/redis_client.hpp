// redis_client: hiredis (0.14.1) driven by the Asio loop; awaitable commands and pub/sub.
//
// Owner: app/ creates one per io_context and destroys it before the io_context (the
// destructor closes both connections). Thread: the loop thread only (construct, call and
// destroy it there; no locking). Blocking: never. Every command waits at most its timeout;
// while Redis is unreachable, commands fail at once with errc::unavailable.
//
// Two connections to the same server: one for commands, one dedicated to pub/sub
// (opened by the first subscribe()). Each reconnects by itself in the background (backoff
// `reconnect_backoff_min` doubling to `reconnect_backoff_max`) once connect() or
// subscribe() was called, and a reconnected subscriber re-subscribes every channel.
//
// Errors: transport problems (not connected, connection lost before the reply, timeout,
// too many pending commands, closed) are core errors with errc::unavailable. A Redis
// error reply ("-ERR ...", "-WRONGTYPE ...") is NOT an error here: it is a reply of
// kind::error, like any other reply. Misuse (empty command, SUBSCRIBE/MONITOR through
// command()) is errc::internal.
//
// GCC 12 (Debian 12) pitfalls when calling these coroutines:
// - a braced list with string literals inside a co_await does not compile ("array used
//   as initializer"): build the vector first, `std::vector<std::string> c{"GET", key};
//   co_await redis.command(std::move(c));`
// - a lambda temporary with non-trivial captures inside a co_await expression is
//   destroyed twice: pass subscribe() a named handler, or one capturing only references
//   and pointers.
//
// The process must not die of SIGPIPE when Redis goes away mid-write (hiredis uses
// write(2)): the first redis_client ignores SIGPIPE unless a handler is already installed.
#pragma once
#include "switchyard/core/asio.hpp"
#include "switchyard/core/error.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace switchyard::store::redis {

// An owned copy of a hiredis reply.
struct reply {
  enum class kind { nil, string, status, integer, array, error };
  kind type = kind::nil;
  std::string str;              // string, status and error text
  long long integer = 0;        // integer
  std::vector<reply> elements;  // array

  bool is_nil() const noexcept { return type == kind::nil; }
  bool is_error() const noexcept { return type == kind::error; }
};

struct redis_options {
  std::string host = "127.0.0.1";  // names are resolved asynchronously (never on the loop)
  std::uint16_t port = 6379;
  std::string username;  // Redis 6 ACL user (AUTH user pass); empty: AUTH pass
  std::string password;  // empty: no AUTH
  int db = 0;            // SELECT db when not 0
  std::chrono::milliseconds connect_timeout{1000};  // TCP connect + AUTH + SELECT + PING
  std::chrono::milliseconds reconnect_backoff_min{100};
  std::chrono::milliseconds reconnect_backoff_max{5000};
  std::size_t max_pending = 10000;  // commands awaiting a reply; beyond: errc::unavailable
  // rediss:// (or cache_params.ssl): TLS 1.2+ to the server through a loopback bridge
  // owned by the client (hiredis 0.14 has no TLS; see store/redis/tls_bridge.hpp).
  bool tls = false;
  bool tls_verify = true;          // certificate chain checked
  bool tls_check_hostname = true;  // and the certificate names `host`
  std::string tls_ca_file;         // empty: the system trust store
};

// A command written in RESP by its caller, argument by argument, into a buffer kept from
// one command to the next. An argument may be given in pieces (a prefix and a key, a
// header and a value): a cache write's value is copied once on its way to the connection
// (and once more by hiredis into its output buffer), where a list of arguments would be
// copied into one more buffer first.
class command_text {
 public:
  // Starts a command of `args` arguments; what the buffer held is dropped.
  void start(std::size_t args);
  void arg(std::string_view a) { arg({a}); }
  void arg(std::initializer_list<std::string_view> pieces);  // one argument, its pieces in order
  // The first argument (the command's name).
  std::string_view name() const noexcept { return text().substr(name_at_, name_size_); }
  // Every argument start() announced was written, and no more.
  bool complete() const noexcept { return declared_ > 0 && written_ == declared_; }
  // The RESP text, followed by a NUL (not part of it) as hiredis expects.
  std::string_view text() const noexcept { return {buf_.get(), size_}; }
  // Frees the buffer once it has grown past `bytes` (a large value once).
  void trim(std::size_t bytes);

 private:
  // Room for `n` more bytes (the buffer grows by doubling); where they go. A plain buffer
  // written with memcpy: std::string's appends are out-of-line calls into libstdc++.
  char* extend(std::size_t n);

  std::unique_ptr<char[]> buf_;
  std::size_t size_ = 0;
  std::size_t capacity_ = 0;
  std::size_t name_at_ = 0;
  std::size_t name_size_ = 0;
  std::size_t declared_ = 0;
  std::size_t written_ = 0;
};

// Told how a redis_client::send() ended. Called on the loop, possibly from inside the
// client while it reads replies or closes: it must not call the client.
struct send_observer {
  virtual ~send_observer() = default;
  virtual void sent(bool ok) noexcept = 0;
};

class redis_client {
 public:
  // Called on the loop for each message on a subscribed channel (never inside hiredis).
  using message_handler = std::function<void(std::string_view channel, std::string_view message)>;

  redis_client(net::any_io_executor loop, redis_options opts);
  ~redis_client();  // close()
  redis_client(const redis_client&) = delete;
  redis_client& operator=(const redis_client&) = delete;

  // Starts the command connection and waits for this attempt (bounded by connect_timeout).
  // Whatever it returns, the client keeps reconnecting in the background until close().
  net::awaitable<core::result<void>> connect();

  // One command, e.g. {"SET", key, value}. Binary-safe. Fails at once when not connected.
  // A reply arriving after the timeout is dropped.
  net::awaitable<core::result<reply>> command(std::vector<std::string> args,
                                              std::chrono::milliseconds timeout = std::chrono::milliseconds{250});

  // The same with arguments the caller keeps (they are copied into the connection's
  // buffer before this suspends): no vector and no string per argument.
  net::awaitable<core::result<reply>> command(std::span<const std::string_view> args,
                                              std::chrono::milliseconds timeout);

  // The same with a command the caller wrote. `cmd` is copied into the connection when
  // the returned awaitable is awaited: await it at once, and change `cmd` only after (it
  // may then serve the next command). An incomplete one is misuse (errc::internal).
  net::awaitable<core::result<reply>> command(const command_text& cmd, std::chrono::milliseconds timeout);

  // A command whose reply is not read (a cache write): queued at once, or refused at
  // once (false: not connected, too many pending, closed, misuse). `observer`, when given,
  // learns later whether Redis accepted it (false: a Redis error reply, or the connection
  // lost before the reply); the command keeps it alive until then. There is no timeout:
  // a stalled Redis holds the command until its reply or the connection's end (callers
  // bound how many they leave outstanding).
  bool send(std::span<const std::string_view> args, std::shared_ptr<send_observer> observer = nullptr);
  bool send(const command_text& cmd, std::shared_ptr<send_observer> observer = nullptr);  // incomplete: false

  // PING -> PONG.
  net::awaitable<core::result<void>> ping(std::chrono::milliseconds timeout = std::chrono::milliseconds{250});

  // The command connection is up (handshake done) right now.
  bool connected() const noexcept;

  // Registers `on_message` for `channel` (replacing an earlier handler) and waits until
  // Redis confirms the subscription, at most `timeout`. On failure the channel stays
  // registered: it is subscribed as soon as the pub/sub connection is (re)established.
  net::awaitable<core::result<void>> subscribe(std::string channel, message_handler on_message,
                                               std::chrono::milliseconds timeout = std::chrono::milliseconds{1000});
  // Forgets the channel (no more deliveries, also of messages already queued).
  void unsubscribe(const std::string& channel);
  // Redis confirmed the subscription on the current pub/sub connection.
  bool subscribed(const std::string& channel) const;

  // Frees both connections (pending commands complete with errc::unavailable), stops
  // reconnecting, wakes waiters. Idempotent; later calls fail with errc::unavailable.
  void close();

 private:
  struct impl;
  std::shared_ptr<impl> impl_;  // shared with in-flight coroutines and posted handlers
};

}  // namespace switchyard::store::redis
