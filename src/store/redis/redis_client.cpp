// hiredis 0.14.1 on the Asio loop.
//
// Lifetimes (the part that matters):
// - `watch` glues one redisAsyncContext to a stream_descriptor. hiredis owns the fd and
//   the context; the five ev hooks get the watch as privdata. The `cleanup` hook (called by
//   hiredis just before it frees the context, whatever the reason) nulls `watch::ac`,
//   cancels the waits and release()s the fd. Wait handlers hold the watch by shared_ptr and
//   touch the context only while `ac` is set, so an aborted handler never sees a freed one.
// - `connection` owns at most one live context at a time and frees it before it dies
//   (close()), so the raw back pointers hiredis hands us (watch::conn, subscriber*) are
//   valid whenever a hiredis callback runs.
// - A command is a heap op (privdata). hiredis calls its reply callback exactly once (with
//   NULL when the context is freed first); the op holds itself (`hiredis_ref`) until then.
//   Its timeout timer holds it too. Whichever of reply/timeout comes first completes the
//   awaiting coroutine (posted, never inline inside hiredis); the other is ignored.
// - We never call redisAsyncFree from inside onConnect/cleanup (hiredis would use freed
//   memory afterwards); from a reply callback it is allowed (hiredis defers the free).
#include "switchyard/store/redis/redis_client.hpp"

#include "tls_bridge.hpp"

#include <boost/asio/append.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <arpa/inet.h>
// sds.h (hiredis' string buffer) declares its functions without extern "C"; included here
// first, inside one, so that hiredis.h's own include of it adds nothing.
extern "C" {
#include <hiredis/sds.h>
}
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <strings.h>

namespace switchyard::store::redis {

namespace {

using clock = std::chrono::steady_clock;
using ms = std::chrono::milliseconds;
using error_code = boost::system::error_code;

core::error unavailable(const std::string& msg) {
  return core::make_error(core::errc::unavailable, "redis: " + msg);
}

core::error misuse(const std::string& msg) { return core::make_error(core::errc::internal, "redis: " + msg); }

// hiredis writes with write(2): a peer that went away would raise SIGPIPE and kill us.
void ignore_sigpipe_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction current {};
    if (::sigaction(SIGPIPE, nullptr, &current) != 0) {
      return;
    }
    if ((current.sa_flags & SA_SIGINFO) == 0 && current.sa_handler == SIG_DFL) {
      struct sigaction ignore {};
      ignore.sa_handler = SIG_IGN;
      ::sigemptyset(&ignore.sa_mask);
      ::sigaction(SIGPIPE, &ignore, nullptr);
    }
  });
}

reply copy_reply(const redisReply& r) {
  reply out;
  auto text = [&r] { return r.str != nullptr ? std::string(r.str, r.len) : std::string(); };
  switch (r.type) {
    case REDIS_REPLY_STRING:
      out.type = reply::kind::string;
      out.str = text();
      break;
    case REDIS_REPLY_STATUS:
      out.type = reply::kind::status;
      out.str = text();
      break;
    case REDIS_REPLY_ERROR:
      out.type = reply::kind::error;
      out.str = text();
      break;
    case REDIS_REPLY_INTEGER:
      out.type = reply::kind::integer;
      out.integer = r.integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.type = reply::kind::array;
      out.elements.reserve(r.elements);
      for (std::size_t i = 0; i < r.elements; ++i) {
        out.elements.push_back(r.element[i] != nullptr ? copy_reply(*r.element[i]) : reply{});
      }
      break;
    default:
      out.type = reply::kind::nil;
      break;
  }
  return out;
}

// A command written by its caller (command_text): queued as it is.
int send_argv(redisAsyncContext* ac, const command_text& cmd, redisCallbackFn* fn, void* privdata) {
  return redisAsyncFormattedCommand(ac, fn, privdata, cmd.text().data(), cmd.text().size());
}

// A list of arguments, written into RESP once (command_text, a buffer kept for the next
// command), then queued as is. hiredis' own formatting (redisAsyncCommandArgv) grows an
// sds string piece by piece with a printf-like call per argument.
template <class Args = std::vector<std::string>>  // a braced list: strings
int send_argv(redisAsyncContext* ac, const Args& args, redisCallbackFn* fn, void* privdata) {
  thread_local command_text cmd;
  cmd.start(args.size());
  for (const auto& a : args) {
    cmd.arg(std::string_view(a));
  }
  const int rc = send_argv(ac, cmd, fn, privdata);
  cmd.trim(1u << 20);  // a large value once: not kept for every later command
  return rc;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && ::strncasecmp(a.data(), b.data(), a.size()) == 0;
}

// Commands that would switch hiredis' context into pub/sub or monitor mode. Checked for
// every command: the lengths are compared first, so a GET or a SET compares no text.
bool mode_switching(std::string_view cmd) {
  static constexpr std::string_view names[] = {"SUBSCRIBE", "PSUBSCRIBE", "UNSUBSCRIBE",
                                               "PUNSUBSCRIBE", "MONITOR", "RESET"};
  for (const auto c : names) {
    if (iequals(cmd, c)) {
      return true;
    }
  }
  return false;
}

// Wakes coroutines waiting for "something changed" (connection state, confirmations).
// Loop only. A waiter checks its condition, then waits; nothing runs in between, so a
// notify() is never lost.
class change_signal {
 public:
  net::awaitable<void> wait_until(clock::time_point deadline) {
    net::steady_timer t(co_await net::this_coro::executor, deadline);
    waiters_.push_back(&t);
    struct unlink {
      std::vector<net::steady_timer*>& v;
      net::steady_timer* t;
      ~unlink() { std::erase(v, t); }
    } guard{waiters_, &t};
    co_await t.async_wait(net::as_tuple(net::use_awaitable));
  }

  void notify() noexcept {
    for (auto* t : waiters_) {
      try {
        t->cancel();
      } catch (...) {
      }
    }
  }

 private:
  std::vector<net::steady_timer*> waiters_;
};

class connection;

// ---------------------------------------------------------------- watch (ev hooks)

struct op_base;

struct watch : std::enable_shared_from_this<watch> {
  watch(const net::any_io_executor& ex, connection* c) : sd(ex), conn(c) {}

  // While hiredis reads replies (redisAsyncHandleRead), the commands they answer are
  // collected here, then resumed in order once hiredis has returned: the coroutine
  // awaiting a reply continues in this handler instead of in one posted for each reply
  // (which cost about a microsecond of the executor's type-erased work per command).
  // Never resumed inside hiredis, so a resumed coroutine may send commands or close the
  // client.
  bool collecting = false;
  std::vector<std::shared_ptr<op_base>> answered_ops;
  void resume_answered() noexcept;

  redisAsyncContext* ac = nullptr;  // null once hiredis freed (or is freeing) the context
  net::posix::stream_descriptor sd;
  connection* conn;  // valid while `ac` is set
  bool want_read = false;
  bool want_write = false;
  bool read_armed = false;
  bool write_armed = false;

  void arm(bool read) noexcept;
  void ready(bool read, const error_code& ec) noexcept;
  bool write_keeping_buffer() noexcept;
  void cleanup() noexcept;
};

void hook_add_read(void* p) noexcept {
  auto* w = static_cast<watch*>(p);
  w->want_read = true;
  w->arm(true);
}
void hook_del_read(void* p) noexcept { static_cast<watch*>(p)->want_read = false; }
void hook_add_write(void* p) noexcept {
  auto* w = static_cast<watch*>(p);
  w->want_write = true;
  w->arm(false);
}
void hook_del_write(void* p) noexcept { static_cast<watch*>(p)->want_write = false; }
void hook_cleanup(void* p) noexcept { static_cast<watch*>(p)->cleanup(); }

// ---------------------------------------------------------------- connection

// One logical connection (command or pub/sub) with its reconnect loop. Loop only.
class connection : public std::enable_shared_from_this<connection> {
 public:
  enum class state { idle, connecting, ready, closed };

  connection(net::any_io_executor ex, const redis_options& opts, std::string name, change_signal& changed)
      : ex_(ex), opts_(opts), name_(std::move(name)), changed_(changed), connect_timer_(ex), backoff_timer_(ex),
        resolver_(ex) {}
  ~connection() { close(); }
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  bool ready() const noexcept { return state_ == state::ready; }
  bool closed() const noexcept { return state_ == state::closed; }
  redisAsyncContext* context() const noexcept { return ready() && link_ ? link_->ac : nullptr; }
  std::uint64_t attempt() const noexcept { return attempt_; }
  std::uint64_t attempt_done() const noexcept { return attempt_done_; }
  const std::string& last_error() const noexcept { return last_error_; }
  const net::any_io_executor& executor() const noexcept { return ex_; }
  const redis_options& options() const noexcept { return opts_; }
  std::string endpoint() const {
    return (opts_.tls ? "rediss://" : "") + opts_.host + ":" + std::to_string(opts_.port);
  }

  // Commands whose reply callback hiredis still owes (includes timed-out ones).
  const std::shared_ptr<std::size_t>& outstanding() const noexcept { return outstanding_; }

  // Hooks, both run inside hiredis callbacks: on_ready may queue commands on `ac`;
  // on_down must not call hiredis at all.
  std::function<void(redisAsyncContext* ac)> on_ready;
  std::function<void()> on_down;

  // Turns automatic reconnection on and starts an attempt now unless one runs or the
  // connection is up (skips a pending backoff).
  void start() {
    if (state_ == state::closed) {
      return;
    }
    auto_reconnect_ = true;
    if (state_ == state::idle) {
      backoff_timer_.cancel();
      start_attempt();
    }
  }

  void close() noexcept {
    if (state_ == state::closed) {
      return;
    }
    auto prev = state_;
    state_ = state::closed;
    auto_reconnect_ = false;
    try {
      connect_timer_.cancel();
      backoff_timer_.cancel();
      resolver_.cancel();
    } catch (...) {
    }
    if (link_ && link_->ac != nullptr) {
      redisAsyncFree(link_->ac);  // pending commands get NULL replies; cleanup() runs
    }
    if (bridge_) {
      bridge_->close();
    }
    if (prev == state::ready && on_down) {
      on_down();
    }
    changed_.notify();
  }

  // From a failed socket wait (outside hiredis): give the context up.
  void drop_link(watch* w, const std::string& why) noexcept {
    if (w->ac == nullptr) {
      return;
    }
    if (reason_.empty()) {
      reason_ = why;
    }
    redisAsyncFree(w->ac);
  }

  // hiredis' cleanup hook: the context `w` watched is being freed.
  void link_gone(watch* w, const std::string& why) noexcept {
    if (w != link_.get() || state_ == state::closed) {
      return;
    }
    went_down(reason_.empty() ? (why.empty() ? std::string("connection closed") : why) : reason_);
  }

  void handshake_reply(watch* w, const redisReply& r) noexcept {
    if (w != link_.get() || state_ != state::connecting || w->ac == nullptr) {
      return;
    }
    if (r.type == REDIS_REPLY_ERROR) {
      reason_ = "handshake failed: " + (r.str != nullptr ? std::string(r.str, r.len) : std::string("error"));
      redisAsyncFree(w->ac);  // inside a reply callback: hiredis frees it after we return
      return;
    }
    if (--handshake_left_ > 0) {
      return;
    }
    try {
      connect_timer_.cancel();
    } catch (...) {
    }
    state_ = state::ready;
    backoff_ = ms{0};
    attempt_done_ = attempt_;
    last_error_.clear();
    if (down_logged_) {
      spdlog::info("{}: reconnected to {}", name_, endpoint());
    } else {
      spdlog::debug("{}: connected to {}", name_, endpoint());
    }
    down_logged_ = false;
    changed_.notify();
    if (on_ready) {
      on_ready(w->ac);
    }
  }

 private:
  void start_attempt() {
    state_ = state::connecting;
    ++attempt_;
    reason_.clear();
    handshake_left_ = 0;
    connect_timer_.expires_after(opts_.connect_timeout);
    connect_timer_.async_wait([weak = weak_from_this(), id = attempt_](const error_code& ec) {
      auto self = weak.lock();
      if (self && !ec) {
        self->connect_timed_out(id);
      }
    });
    error_code ec;
    auto addr = net::ip::make_address(opts_.host, ec);
    if (!ec) {
      begin_connect(addr.to_string());
      return;
    }
    resolver_.async_resolve(
        opts_.host, std::to_string(opts_.port),
        [weak = weak_from_this(), id = attempt_](const error_code& ec, tcp::resolver::results_type results) {
          auto self = weak.lock();
          if (!self || self->attempt_ != id || self->state_ != state::connecting) {
            return;
          }
          if (ec || results.empty()) {
            self->fail_attempt("cannot resolve " + self->opts_.host + ": " +
                               (ec ? ec.message() : std::string("no address")));
            return;
          }
          auto pick = results.begin()->endpoint();
          for (const auto& e : results) {  // prefer IPv4: Redis often binds 127.0.0.1 only
            if (e.endpoint().address().is_v4()) {
              pick = e.endpoint();
              break;
            }
          }
          self->begin_connect(pick.address().to_string());
        });
  }

  void begin_connect(const std::string& ip) {
    if (opts_.tls && !bridge_) {
      try {
        detail::tls_bridge_options bo;
        bo.server_name = opts_.host;
        bo.port = opts_.port;
        bo.verify = opts_.tls_verify;
        bo.check_hostname = opts_.tls_check_hostname;
        bo.ca_file = opts_.tls_ca_file;
        bo.handshake_timeout = opts_.connect_timeout;
        bridge_ = detail::tls_bridge::make(ex_, std::move(bo));
      } catch (const std::exception& e) {
        fail_attempt(e.what());
        return;
      }
    }
    // With TLS, hiredis talks to the loopback bridge, which carries the bytes over TLS.
    redisAsyncContext* ac = bridge_ ? redisAsyncConnect("127.0.0.1", bridge_->local_port())
                                    : redisAsyncConnect(ip.c_str(), opts_.port);
    if (ac == nullptr) {
      fail_attempt("cannot allocate a connection");
      return;
    }
    if (ac->err != 0) {
      std::string why = ac->errstr != nullptr ? ac->errstr : "connect failed";
      redisAsyncFree(ac);  // no hooks installed yet
      fail_attempt(why);
      return;
    }
    // TCP keepalive: a silent network partition is noticed even on the pub/sub
    // connection, where no command (and so no timeout) ever runs.
    (void)redisEnableKeepAlive(&ac->c);
    if (bridge_) {
      // The bridge carries only the connection coming from hiredis' own port.
      sockaddr_in local{};
      socklen_t len = sizeof local;
      if (::getsockname(ac->c.fd, reinterpret_cast<sockaddr*>(&local), &len) != 0) {
        redisAsyncFree(ac);
        fail_attempt("cannot read the bridge socket's port");
        return;
      }
      bridge_->expect(ntohs(local.sin_port), ip, [weak = weak_from_this(), id = attempt_](const std::string& why) {
        auto self = weak.lock();
        if (self && self->attempt_ == id && self->reason_.empty()) {
          self->reason_ = "rediss: " + why;
        }
      });
    }
    auto w = std::make_shared<watch>(ex_, this);
    error_code ec;
    w->sd.assign(ac->c.fd, ec);
    if (ec) {
      redisAsyncFree(ac);
      fail_attempt("cannot watch the socket: " + ec.message());
      return;
    }
    w->ac = ac;
    ac->data = w.get();
    ac->ev.data = w.get();
    ac->ev.addRead = hook_add_read;
    ac->ev.delRead = hook_del_read;
    ac->ev.addWrite = hook_add_write;
    ac->ev.delWrite = hook_del_write;
    ac->ev.cleanup = hook_cleanup;
    link_ = w;

    // The handshake is queued now and sent once the TCP connect completes.
    std::vector<std::vector<std::string>> steps;
    if (!opts_.password.empty()) {
      if (opts_.username.empty()) {
        steps.push_back({"AUTH", opts_.password});
      } else {
        steps.push_back({"AUTH", opts_.username, opts_.password});
      }
    }
    if (opts_.db != 0) {
      steps.push_back({"SELECT", std::to_string(opts_.db)});
    }
    steps.push_back({"PING"});
    handshake_left_ = static_cast<int>(steps.size());
    for (const auto& s : steps) {
      if (send_argv(ac, s, &connection::on_handshake_reply, w.get()) != REDIS_OK) {
        drop_link(w.get(), "cannot queue the handshake");
        return;
      }
    }
  }

  static void on_handshake_reply(redisAsyncContext*, void* r, void* privdata) noexcept {
    auto* w = static_cast<watch*>(privdata);
    if (r == nullptr || w->ac == nullptr || w->conn == nullptr) {
      return;  // the context is going away; cleanup() reports it
    }
    w->conn->handshake_reply(w, *static_cast<redisReply*>(r));
  }

  void connect_timed_out(std::uint64_t id) {
    if (id != attempt_ || state_ != state::connecting) {
      return;
    }
    reason_ = "no connection within " + std::to_string(opts_.connect_timeout.count()) + " ms";
    resolver_.cancel();
    if (link_ && link_->ac != nullptr) {
      redisAsyncFree(link_->ac);  // -> cleanup -> link_gone -> went_down
    } else {
      fail_attempt(reason_);
    }
  }

  // No context exists (resolve or connect(2) setup failed).
  void fail_attempt(const std::string& why) {
    if (state_ == state::connecting) {
      went_down(why);
    }
  }

  // Also runs inside hiredis (cleanup): state, logs and timers only.
  void went_down(const std::string& why) noexcept {
    auto prev = state_;
    state_ = state::idle;
    last_error_ = why;
    if (prev == state::connecting) {
      attempt_done_ = attempt_;
      try {
        connect_timer_.cancel();
      } catch (...) {
      }
      if (!down_logged_) {
        spdlog::warn("{}: cannot connect to {}: {} (retrying in the background)", name_, endpoint(), why);
      }
    } else if (prev == state::ready) {
      spdlog::warn("{}: connection to {} lost: {} (reconnecting)", name_, endpoint(), why);
      if (on_down) {
        on_down();
      }
    }
    down_logged_ = true;
    changed_.notify();
    schedule_reconnect();
  }

  void schedule_reconnect() noexcept {
    if (!auto_reconnect_ || state_ != state::idle) {
      return;
    }
    backoff_ = backoff_.count() == 0 ? opts_.reconnect_backoff_min
                                     : std::min(backoff_ * 2, opts_.reconnect_backoff_max);
    try {
      backoff_timer_.expires_after(backoff_);
      backoff_timer_.async_wait([weak = weak_from_this()](const error_code& ec) {
        auto self = weak.lock();
        if (self && !ec && self->state_ == state::idle) {
          self->start_attempt();
        }
      });
    } catch (const std::exception& e) {
      spdlog::error("{}: cannot schedule a reconnect: {}", name_, e.what());
    }
  }

  net::any_io_executor ex_;
  redis_options opts_;
  std::string name_;
  change_signal& changed_;
  net::steady_timer connect_timer_;
  net::steady_timer backoff_timer_;
  tcp::resolver resolver_;
  std::shared_ptr<watch> link_;  // the current (or last) context's glue
  std::shared_ptr<detail::tls_bridge> bridge_;  // rediss: made on the first attempt
  std::shared_ptr<std::size_t> outstanding_ = std::make_shared<std::size_t>(0);
  state state_ = state::idle;
  bool auto_reconnect_ = false;
  bool down_logged_ = false;  // warned about an outage: log the recovery
  ms backoff_{0};
  std::uint64_t attempt_ = 0;
  std::uint64_t attempt_done_ = 0;
  int handshake_left_ = 0;
  std::string reason_;      // why the current attempt/link failed, if we know better than hiredis
  std::string last_error_;  // why the last attempt/link failed
};

void watch::arm(bool read) noexcept {
  bool& armed = read ? read_armed : write_armed;
  if (armed || ac == nullptr) {
    return;
  }
  armed = true;
  sd.async_wait(read ? net::posix::stream_descriptor::wait_read : net::posix::stream_descriptor::wait_write,
                [self = shared_from_this(), read](const error_code& ec) { self->ready(read, ec); });
}

void watch::ready(bool read, const error_code& ec) noexcept {
  (read ? read_armed : write_armed) = false;
  if (ac == nullptr || ec == net::error::operation_aborted) {
    return;
  }
  if (ec) {
    conn->drop_link(this, "socket wait failed: " + ec.message());
    return;
  }
  if (!(read ? want_read : want_write)) {
    return;
  }
  if (read) {
    collecting = true;
    redisAsyncHandleRead(ac);  // may free the context: then cleanup() nulled `ac`
    collecting = false;
    if (ac != nullptr && want_read) {
      arm(true);  // before the resumed coroutines run: they may close the client
    }
    resume_answered();
    return;
  }
  if (!write_keeping_buffer()) {
    redisAsyncHandleWrite(ac);
  }
  if (ac != nullptr && want_write) {
    arm(false);
  }
}

// hiredis frees its output buffer after every complete write and grows a new one from
// empty for the next batch of commands (a calloc, reallocs as it doubles, then a free of a
// block of tens of KB, which makes glibc consolidate its bins). While the connection is
// up, the buffer is written here instead and emptied in place, keeping its capacity (up
// to max_kept). Anything else (connecting, a write error) goes through hiredis, which
// reports it. Returns false when hiredis should do the write.
bool watch::write_keeping_buffer() noexcept {
  constexpr std::size_t max_kept = 1u << 20;
  redisContext* c = &ac->c;
  if ((c->flags & REDIS_CONNECTED) == 0 || c->err != 0 || c->obuf == nullptr) {
    return false;
  }
  const std::size_t len = sdslen(c->obuf);
  if (len > 0) {
    const ssize_t n = ::write(c->fd, c->obuf, len);
    if (n < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        return false;  // hiredis writes again, gets the error and drops the link
      }
    } else if (static_cast<std::size_t>(n) == len) {
      if (sdsalloc(c->obuf) > max_kept) {
        sds fresh = sdsempty();
        if (fresh == nullptr) {
          return false;
        }
        sdsfree(c->obuf);
        c->obuf = fresh;
      } else {
        sdsclear(c->obuf);
      }
    } else if (n > 0) {
      sdsrange(c->obuf, n, -1);
    }
  }
  // What redisAsyncHandleWrite does after a write: stop waiting for writability once the
  // buffer is empty; wait for the replies.
  if (sdslen(c->obuf) == 0) {
    hook_del_write(this);
  }
  hook_add_read(this);
  return true;
}

void watch::cleanup() noexcept {
  if (ac == nullptr) {
    return;
  }
  std::string why = ac->err != 0 && ac->errstr != nullptr ? std::string(ac->errstr) : std::string();
  ac = nullptr;
  want_read = false;
  want_write = false;
  error_code ignored;
  sd.cancel(ignored);
  (void)sd.release();  // hiredis closes the fd right after this hook
  if (conn != nullptr) {
    conn->link_gone(this, why);
  }
}

// ---------------------------------------------------------------- commands

class deadlines;
void answered(deadlines& d) noexcept;

struct op_base {
  explicit op_base(std::shared_ptr<std::size_t> counter) : outstanding(std::move(counter)) {}
  virtual ~op_base() = default;
  op_base(const op_base&) = delete;
  op_base& operator=(const op_base&) = delete;

  // First call wins: completes the awaiting coroutine (posted).
  void finish(core::result<reply> r) noexcept {
    if (done) {
      return;
    }
    done = true;
    deliver(std::move(r));
  }
  virtual void deliver(core::result<reply> r) noexcept = 0;
  // A reply read while the watch collects: kept, and the command marked done, to be
  // resumed by resume() after hiredis returns. False: this op completes at once (take).
  virtual bool keep_for_resume(const redisReply&) noexcept { return false; }
  virtual void resume() noexcept {}
  // A reply arrived in time: copied for deliver() (a `send` op reads its kind only).
  virtual void take(const redisReply& r) noexcept {
    try {
      finish(copy_reply(r));
    } catch (const std::exception& e) {
      finish(misuse(std::string("cannot copy the reply: ") + e.what()));
    }
  }

  std::shared_ptr<std::size_t> outstanding;
  std::shared_ptr<op_base> hiredis_ref;  // set while hiredis holds us as privdata
  deadlines* timeouts = nullptr;         // the client's, while this waits in it (it outlives hiredis' callbacks)
  bool done = false;
};

template <class Handler>
struct command_op final : op_base {
  command_op(const net::any_io_executor& ex, std::shared_ptr<std::size_t> counter, Handler h)
      : op_base(std::move(counter)), ex(ex), handler(std::move(h)) {}

  void deliver(core::result<reply> r) noexcept override {
    auto hex = net::get_associated_executor(handler, ex);
    net::post(hex, net::append(std::move(handler), std::move(r)));
  }
  bool keep_for_resume(const redisReply& r) noexcept override {
    try {
      kept.emplace(copy_reply(r));
    } catch (const std::exception& e) {
      kept.emplace(misuse(std::string("cannot copy the reply: ") + e.what()));
    }
    done = true;
    return true;
  }
  // On the loop, outside hiredis (watch::resume_answered): the awaiting coroutine
  // continues here, as a dispatch from its own executor would run it.
  void resume() noexcept override {
    if (kept) {
      try {
        std::move(handler)(std::move(*kept));
      } catch (...) {
      }
    }
  }

  net::any_io_executor ex;
  Handler handler;
  std::optional<core::result<reply>> kept;
};

// redis_client::send: no reply copied, no handler posted, no timer armed (see the header).
struct send_op final : op_base {
  send_op(std::shared_ptr<std::size_t> counter, std::shared_ptr<send_observer> o)
      : op_base(std::move(counter)), observer(std::move(o)) {}

  void deliver(core::result<reply> r) noexcept override { report(r && !r->is_error()); }
  void take(const redisReply& r) noexcept override {
    done = true;
    report(r.type != REDIS_REPLY_ERROR);
  }
  void report(bool ok) noexcept {
    if (observer) {
      observer->sent(ok);
    }
  }

  std::shared_ptr<send_observer> observer;
};

void on_command_reply(redisAsyncContext* ac, void* r, void* privdata) noexcept {
  auto* op = static_cast<op_base*>(privdata);
  std::shared_ptr<op_base> keep = std::move(op->hiredis_ref);
  --*op->outstanding;
  if (op->done) {
    return;  // timed out earlier: the late reply is dropped here
  }
  if (r == nullptr) {
    op->finish(unavailable("connection lost before the reply"));
    if (op->timeouts != nullptr) {
      answered(*op->timeouts);
    }
    return;
  }
  auto* w = static_cast<watch*>(ac->ev.data);
  if (w != nullptr && w->collecting && op->keep_for_resume(*static_cast<redisReply*>(r))) {
    w->answered_ops.push_back(std::move(keep));
  } else {
    op->take(*static_cast<redisReply*>(r));
  }
  if (op->timeouts != nullptr) {
    answered(*op->timeouts);
  }
}

void watch::resume_answered() noexcept {
  // By index: nothing is added while they run (replies are collected only inside
  // redisAsyncHandleRead, never called from a coroutine).
  for (std::size_t i = 0; i < answered_ops.size(); ++i) {
    answered_ops[i]->resume();
  }
  answered_ops.clear();
}

// Why a command named `name` cannot be sent now, else nothing (then it may be queued).
std::optional<core::error> refusal_of(connection& conn, bool client_closed, bool empty, std::string_view name) {
  if (client_closed || conn.closed()) {
    return unavailable("client closed");
  }
  if (empty) {
    return misuse("empty command");
  }
  if (mode_switching(name)) {
    return misuse(std::string(name) + " is not allowed through command(); use subscribe()");
  }
  if (conn.context() == nullptr) {
    auto why = conn.last_error();
    return unavailable("not connected to " + conn.endpoint() + (why.empty() ? std::string() : ": " + why));
  }
  if (*conn.outstanding() >= conn.options().max_pending) {
    return unavailable("too many pending commands (" + std::to_string(*conn.outstanding()) + ")");
  }
  return std::nullopt;
}

template <class Args>
std::optional<core::error> refusal(connection& conn, bool client_closed, const Args& args) {
  return refusal_of(conn, client_closed, args.empty(), args.empty() ? std::string_view() : std::string_view(args.front()));
}

std::optional<core::error> refusal(connection& conn, bool client_closed, const command_text& cmd) {
  if (!cmd.complete()) {
    return misuse("incomplete command (" + std::string(cmd.name()) + ")");
  }
  return refusal_of(conn, client_closed, false, cmd.name());
}

template <class Args>
bool start_send(connection& conn, bool client_closed, const Args& args, std::shared_ptr<send_observer> observer) {
  if (refusal(conn, client_closed, args)) {
    return false;
  }
  auto op = std::make_shared<send_op>(conn.outstanding(), std::move(observer));
  op->hiredis_ref = op;
  if (send_argv(conn.context(), args, on_command_reply, op.get()) != REDIS_OK) {
    op->hiredis_ref.reset();
    op->done = true;  // refused: the caller learns it from the return value, not `done`
    return false;
  }
  ++*conn.outstanding();
  return true;
}

// The commands' timeouts: a heap of deadlines and one timer armed at the earliest, instead
// of a timer per command (constructed, armed, then cancelled with a completion posted for
// the cancel: two scheduler operations per command). Replies usually come in deadline
// order, so the heap's top is the command just answered; answered commands are dropped
// from the top as new ones arrive and when the timer fires. Loop only.
class deadlines : public std::enable_shared_from_this<deadlines> {
 public:
  explicit deadlines(const net::any_io_executor& ex) : timer_(ex) {}

  void add(std::shared_ptr<op_base> op, ms timeout) {
    drop_answered();
    const auto at = clock::now() + timeout;
    heap_.push_back({at, timeout, std::move(op)});
    std::push_heap(heap_.begin(), heap_.end(), later);
    if (!armed_ || at < armed_at_) {
      arm(at);
    }
  }

  // A command was answered: with none left waiting, the timer is disarmed, so an idle
  // client holds no pending wait on the loop.
  void answered() {
    drop_answered();
    if (heap_.empty() && armed_) {
      disarm();
    }
  }

  // The client closes: every command was completed by hiredis already.
  void stop() {
    heap_.clear();
    disarm();
  }

 private:
  void disarm() {
    armed_ = false;
    ++generation_;
    try {
      timer_.cancel();
    } catch (...) {
    }
  }

  struct item {
    clock::time_point at;
    ms timeout;
    std::shared_ptr<op_base> op;
  };
  static bool later(const item& a, const item& b) { return a.at > b.at; }

  void drop_answered() {
    while (!heap_.empty() && heap_.front().op->done) {
      std::pop_heap(heap_.begin(), heap_.end(), later);
      heap_.pop_back();
    }
  }

  void arm(clock::time_point at) {
    armed_ = true;
    armed_at_ = at;
    timer_.expires_at(at);  // a wait already armed completes as aborted (generation below)
    timer_.async_wait([weak = weak_from_this(), gen = ++generation_](const error_code&) {
      if (auto self = weak.lock(); self && gen == self->generation_) {
        self->fire();
      }
    });
  }

  void fire() {
    armed_ = false;
    const auto now = clock::now();
    while (!heap_.empty() && (heap_.front().op->done || heap_.front().at <= now)) {
      std::pop_heap(heap_.begin(), heap_.end(), later);
      item it = std::move(heap_.back());
      heap_.pop_back();
      if (!it.op->done) {
        it.op->finish(unavailable("no reply within " + std::to_string(it.timeout.count()) + " ms"));
      }
    }
    if (!heap_.empty()) {
      arm(heap_.front().at);
    }
  }

  net::steady_timer timer_;
  std::vector<item> heap_;
  bool armed_ = false;
  clock::time_point armed_at_{};
  std::uint64_t generation_ = 0;
};

void answered(deadlines& d) noexcept {
  try {
    d.answered();
  } catch (...) {
  }
}

template <class Args, class Handler>
void start_command(connection& conn, deadlines& timeouts, bool client_closed, const Args& args, ms timeout,
                   Handler handler) {
  auto fail = [&](core::error e) {
    auto ex = net::get_associated_executor(handler, conn.executor());
    net::post(ex, net::append(std::move(handler), core::result<reply>(std::move(e))));
  };
  if (auto why = refusal(conn, client_closed, args)) {
    fail(std::move(*why));
    return;
  }
  redisAsyncContext* ac = conn.context();
  auto op = std::make_shared<command_op<Handler>>(conn.executor(), conn.outstanding(), std::move(handler));
  op->hiredis_ref = op;
  if (send_argv(ac, args, on_command_reply, op.get()) != REDIS_OK) {
    op->hiredis_ref.reset();
    op->finish(unavailable("connection is closing"));
    return;
  }
  ++*conn.outstanding();
  op->timeouts = &timeouts;
  timeouts.add(std::move(op), std::max(timeout, ms{1}));
}

// ---------------------------------------------------------------- pub/sub

// The dedicated pub/sub connection and its channels. Loop only.
class subscriber : public std::enable_shared_from_this<subscriber> {
 public:
  struct channel_entry {
    redis_client::message_handler handler;
    bool requested = false;  // SUBSCRIBE sent on the current connection
    bool confirmed = false;  // Redis confirmed it on the current connection
  };

  subscriber(const net::any_io_executor& ex, const redis_options& opts, change_signal& changed)
      : ex_(ex), changed_(changed), conn_(std::make_shared<connection>(ex, opts, "redis pubsub", changed)) {
    conn_->on_ready = [this](redisAsyncContext* ac) {
      for (auto& [name, e] : channels_) {
        send_subscribe(ac, name, e);
      }
    };
    conn_->on_down = [this] {
      for (auto& [name, e] : channels_) {
        e.requested = false;
        e.confirmed = false;
      }
    };
  }
  ~subscriber() { close(); }
  subscriber(const subscriber&) = delete;
  subscriber& operator=(const subscriber&) = delete;

  connection& conn() noexcept { return *conn_; }

  void close() noexcept {
    closed_ = true;
    conn_->close();
  }

  // Registers (or replaces) the handler and sends SUBSCRIBE if the connection is up.
  void add(const std::string& channel, redis_client::message_handler h) {
    auto& e = channels_[channel];
    e.handler = std::move(h);
    conn_->start();
    resend_missing();
  }

  void resend_missing() {
    if (redisAsyncContext* ac = conn_->context()) {
      for (auto& [name, e] : channels_) {
        if (!e.requested) {
          send_subscribe(ac, name, e);
        }
      }
    }
  }

  void remove(const std::string& channel) {
    auto it = channels_.find(channel);
    if (it == channels_.end()) {
      return;
    }
    bool requested = it->second.requested;
    channels_.erase(it);
    if (redisAsyncContext* ac = conn_->context(); ac != nullptr && requested) {
      // No callback: hiredis routes the "unsubscribe" reply to the channel's callback.
      send_argv(ac, {"UNSUBSCRIBE", channel}, nullptr, nullptr);
    }
  }

  // nullopt: not registered.
  std::optional<bool> confirmed(const std::string& channel) const {
    auto it = channels_.find(channel);
    if (it == channels_.end()) {
      return std::nullopt;
    }
    return it->second.confirmed;
  }

 private:
  void send_subscribe(redisAsyncContext* ac, const std::string& name, channel_entry& e) noexcept {
    if (send_argv(ac, {"SUBSCRIBE", name}, &subscriber::on_message, this) == REDIS_OK) {
      e.requested = true;
    }
  }

  // Every reply and message of every channel. NULL when the context is freed.
  static void on_message(redisAsyncContext*, void* r, void* privdata) noexcept {
    if (r == nullptr) {
      return;
    }
    auto* self = static_cast<subscriber*>(privdata);
    const auto& rep = *static_cast<redisReply*>(r);
    if (rep.type != REDIS_REPLY_ARRAY || rep.elements < 3) {
      return;
    }
    auto text = [&rep](std::size_t i) -> std::string {
      const redisReply* e = rep.element[i];
      return e != nullptr && e->type == REDIS_REPLY_STRING && e->str != nullptr ? std::string(e->str, e->len)
                                                                                : std::string();
    };
    try {
      auto kind = text(0);
      if (iequals(kind, "subscribe")) {
        auto it = self->channels_.find(text(1));
        if (it != self->channels_.end()) {
          it->second.confirmed = true;
        }
        self->changed_.notify();
      } else if (iequals(kind, "message")) {
        self->deliver(text(1), text(2));
      }
    } catch (const std::exception& e) {
      spdlog::warn("redis pubsub: dropped a message: {}", e.what());
    }
  }

  // Handlers run from the loop's queue, never inside hiredis.
  void deliver(std::string channel, std::string message) {
    net::post(ex_, [weak = weak_from_this(), channel = std::move(channel), message = std::move(message)] {
      auto self = weak.lock();
      if (!self || self->closed_) {
        return;
      }
      auto it = self->channels_.find(channel);
      if (it == self->channels_.end() || !it->second.handler) {
        return;
      }
      auto handler = it->second.handler;  // the handler may unsubscribe itself
      try {
        handler(channel, message);
      } catch (const std::exception& e) {
        spdlog::warn("redis pubsub: handler for channel {} threw: {}", channel, e.what());
      } catch (...) {
        spdlog::warn("redis pubsub: handler for channel {} threw", channel);
      }
    });
  }

  net::any_io_executor ex_;
  change_signal& changed_;
  std::map<std::string, channel_entry> channels_;
  bool closed_ = false;
  std::shared_ptr<connection> conn_;  // last: destroyed (closed) first
};

// Waits for the attempt in progress (starting one if idle), at most about connect_timeout.
net::awaitable<core::result<void>> wait_connected(connection& c, change_signal& changed) {
  if (c.closed()) {
    co_return unavailable("client closed");
  }
  c.start();
  auto target = c.attempt();
  auto deadline = clock::now() + c.options().connect_timeout + ms{200};
  for (;;) {
    if (c.ready()) {
      co_return core::result<void>{};
    }
    if (c.closed()) {
      co_return unavailable("client closed");
    }
    if (c.attempt_done() >= target) {
      co_return unavailable("cannot connect to " + c.endpoint() + ": " + c.last_error());
    }
    if (clock::now() >= deadline) {
      co_return unavailable("cannot connect to " + c.endpoint() + ": timed out");
    }
    co_await changed.wait_until(deadline);
  }
}

}  // namespace

// ---------------------------------------------------------------- redis_client

struct redis_client::impl {
  impl(const net::any_io_executor& ex, const redis_options& o)
      : opts(o),
        cmd(std::make_shared<connection>(ex, o, "redis", changed)),
        timeouts(std::make_shared<deadlines>(ex)),
        subs(std::make_shared<subscriber>(ex, o, changed)) {}
  ~impl() { close(); }
  impl(const impl&) = delete;
  impl& operator=(const impl&) = delete;

  void close() noexcept {
    closed = true;
    cmd->close();
    timeouts->stop();
    subs->close();
  }

  redis_options opts;
  change_signal changed;  // before the connections: they refer to it
  bool closed = false;
  std::shared_ptr<connection> cmd;
  std::shared_ptr<deadlines> timeouts;
  std::shared_ptr<subscriber> subs;
};

redis_client::redis_client(net::any_io_executor loop, redis_options opts)
    : impl_(std::make_shared<impl>(loop, opts)) {
  ignore_sigpipe_once();
}

redis_client::~redis_client() { close(); }

void redis_client::close() { impl_->close(); }

bool redis_client::connected() const noexcept { return impl_->cmd->ready(); }

net::awaitable<core::result<void>> redis_client::connect() {
  auto im = impl_;  // keeps the connections alive while we wait
  if (im->closed) {
    co_return unavailable("client closed");
  }
  co_return co_await wait_connected(*im->cmd, im->changed);
}

net::awaitable<core::result<reply>> redis_client::command(std::vector<std::string> args,
                                                          std::chrono::milliseconds timeout) {
  auto im = impl_;
  // Named, not written inside the co_await: GCC 12 destroys a capturing lambda temporary
  // of a co_await expression twice.
  auto initiation = [im](auto handler, std::vector<std::string> a, ms t) {
    start_command(*im->cmd, *im->timeouts, im->closed, a, t, std::move(handler));
  };
  co_return co_await net::async_initiate<decltype(net::use_awaitable), void(core::result<reply>)>(
      std::move(initiation), net::use_awaitable, std::move(args), timeout);
}

// The same with views the caller keeps: start_command formats them before this suspends.
net::awaitable<core::result<reply>> redis_client::command(std::span<const std::string_view> args,
                                                          std::chrono::milliseconds timeout) {
  auto im = impl_;
  auto initiation = [im](auto handler, std::span<const std::string_view> a, ms t) {
    start_command(*im->cmd, *im->timeouts, im->closed, a, t, std::move(handler));
  };
  co_return co_await net::async_initiate<decltype(net::use_awaitable), void(core::result<reply>)>(
      std::move(initiation), net::use_awaitable, args, timeout);
}

bool redis_client::send(std::span<const std::string_view> args, std::shared_ptr<send_observer> observer) {
  return start_send(*impl_->cmd, impl_->closed, args, std::move(observer));
}

bool redis_client::send(const command_text& cmd, std::shared_ptr<send_observer> observer) {
  return start_send(*impl_->cmd, impl_->closed, cmd, std::move(observer));
}

// Not a coroutine itself: the awaitable async_initiate makes is returned as it is, so a
// lookup resumes one coroutine frame fewer (the caller awaits it at once; `cmd` is
// formatted into the connection when it does).
net::awaitable<core::result<reply>> redis_client::command(const command_text& cmd, std::chrono::milliseconds timeout) {
  auto initiation = [im = impl_](auto handler, const command_text* c, ms t) {
    start_command(*im->cmd, *im->timeouts, im->closed, *c, t, std::move(handler));
  };
  return net::async_initiate<decltype(net::use_awaitable), void(core::result<reply>)>(std::move(initiation),
                                                                                    net::use_awaitable, &cmd, timeout);
}

net::awaitable<core::result<void>> redis_client::ping(std::chrono::milliseconds timeout) {
  // (A named vector: GCC 12 miscompiles braced string literals in co_await arguments.)
  std::vector<std::string> args{std::string("PING")};
  auto r = co_await command(std::move(args), timeout);
  if (!r) {
    co_return r.error();
  }
  if (r->type != reply::kind::status || r->str != "PONG") {
    co_return unavailable("unexpected PING reply: " + r->str);
  }
  co_return core::result<void>{};
}

net::awaitable<core::result<void>> redis_client::subscribe(std::string channel, message_handler on_message,
                                                           std::chrono::milliseconds timeout) {
  auto im = impl_;
  if (im->closed) {
    co_return unavailable("client closed");
  }
  im->subs->add(channel, std::move(on_message));
  auto deadline = clock::now() + timeout;
  for (;;) {
    auto confirmed = im->subs->confirmed(channel);
    if (!confirmed) {
      co_return unavailable("unsubscribed from " + channel + " while subscribing");
    }
    if (*confirmed) {
      co_return core::result<void>{};
    }
    if (im->closed) {
      co_return unavailable("client closed");
    }
    im->subs->resend_missing();
    if (clock::now() >= deadline) {
      auto why = im->subs->conn().last_error();
      co_return unavailable("subscription to " + channel + " not confirmed within " + std::to_string(timeout.count()) +
                            " ms" + (why.empty() ? std::string() : " (" + why + ")") +
                            "; it is retried in the background");
    }
    co_await im->changed.wait_until(deadline);
  }
}

void redis_client::unsubscribe(const std::string& channel) { impl_->subs->remove(channel); }

bool redis_client::subscribed(const std::string& channel) const {
  auto c = impl_->subs->confirmed(channel);
  return c && *c;
}

// ---------------------------------------------------------------- command_text

// One byte more than asked stays free for the terminating NUL: hiredis reads a queued
// command's name and arguments with strchr (redisAsyncFormattedCommand), which stops at
// the first NUL past the text at the latest.
char* command_text::extend(std::size_t n) {
  if (capacity_ - size_ < n + 1) {
    const std::size_t want = std::max({capacity_ * 2, size_ + n + 1, std::size_t{256}});
    auto bigger = std::make_unique_for_overwrite<char[]>(want);
    if (size_ > 0) {
      std::memcpy(bigger.get(), buf_.get(), size_);
    }
    buf_ = std::move(bigger);
    capacity_ = want;
  }
  char* at = buf_.get() + size_;
  size_ += n;
  return at;
}

void command_text::start(std::size_t args) {
  size_ = 0;
  declared_ = args;
  written_ = 0;
  name_at_ = 0;
  name_size_ = 0;
  char digits[24];
  const auto nd = static_cast<std::size_t>(std::to_chars(digits, digits + sizeof digits, args).ptr - digits);
  char* p = extend(nd + 3);
  *p++ = '*';
  std::memcpy(p, digits, nd);
  std::memcpy(p + nd, "\r\n", 2);
  buf_[size_] = '\0';
}

void command_text::arg(std::initializer_list<std::string_view> pieces) {
  std::size_t size = 0;
  for (const auto piece : pieces) {
    size += piece.size();
  }
  char digits[24];
  const auto nd = static_cast<std::size_t>(std::to_chars(digits, digits + sizeof digits, size).ptr - digits);
  char* p = extend(1 + nd + 2 + size + 2);  // "$<size>\r\n<bytes>\r\n"
  *p++ = '$';
  std::memcpy(p, digits, nd);
  p += nd;
  std::memcpy(p, "\r\n", 2);
  p += 2;
  if (written_ == 0) {
    name_at_ = static_cast<std::size_t>(p - buf_.get());
    name_size_ = size;
  }
  for (const auto piece : pieces) {
    if (!piece.empty()) {
      std::memcpy(p, piece.data(), piece.size());
      p += piece.size();
    }
  }
  std::memcpy(p, "\r\n", 2);
  buf_[size_] = '\0';
  ++written_;
}

void command_text::trim(std::size_t bytes) {
  if (capacity_ > bytes) {
    buf_.reset();
    capacity_ = size_ = 0;
    declared_ = written_ = name_at_ = name_size_ = 0;
  }
}

}  // namespace switchyard::store::redis
