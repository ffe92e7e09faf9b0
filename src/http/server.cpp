#include "switchyard/http/server.hpp"

#include "switchyard/http/simple_head.hpp"

#include "switchyard/core/file.hpp"
#include "switchyard/core/ids.hpp"
#include "switchyard/core/log.hpp"
#include "switchyard/core/watchdog.hpp"

#include <array>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <optional>
#include <span>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <spdlog/spdlog.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/socket.h>

#include <cerrno>
#include <system_error>
#include <unordered_map>

namespace switchyard::http {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using net::as_tuple;
using net::use_awaitable;
constexpr auto tuple_awaitable = as_tuple(use_awaitable);

namespace {

// A connection is plain HTTP (beast::tcp_stream) or HTTPS (an SSL stream over the
// socket); the session code is a template over the two, so the plain path pays nothing
// for TLS. The map of live connections and drain() see them through conn_base.
using tls_stream = net::ssl::stream<tcp::socket>;

inline tcp::socket& lowest(beast::tcp_stream& s) { return s.socket(); }
inline tcp::socket& lowest(tls_stream& s) { return s.next_layer(); }

// Timeouts: the server's watchdog (one coarse timer for every connection) cancels the
// socket's operations when `deadline()` passes and sets timed_out; beast::tcp_stream's
// own expiry, a timer wait per operation (~7% of the CPU per request), is never set.
// A responder's delayed disconnect watch (responder::watch_disconnect_after).
struct deferred_watch {
  virtual void start_deferred_watch() = 0;

 protected:
  ~deferred_watch() = default;
};

struct conn_base : core::watched {
  // Set while a handler waits with a delayed disconnect watch: the connection's deadline,
  // unused while no socket operation is pending, then marks when to start the watch
  // (expired() starts it instead of timing the connection out).
  deferred_watch* deferred = nullptr;
  bool timed_out = false;
  bool busy = false;
  std::uint64_t id = 0;
  std::string head;  // response head being written (reused across keep-alive requests)
  virtual tcp::socket& socket() = 0;
  // Half-close then close (the connection is forgotten).
  void close_now() {
    boost::system::error_code ignored;
    socket().shutdown(tcp::socket::shutdown_send, ignored);
    socket().close(ignored);
  }
  void cancel() {
    boost::system::error_code ignored;
    socket().cancel(ignored);
  }
};

template <class Stream>
struct connection final : conn_base {
  explicit connection(tcp::socket s) : stream(std::move(s)) {}
  connection(tcp::socket s, std::shared_ptr<net::ssl::context> ctx) : tls_ctx(std::move(ctx)), stream(std::move(s), *tls_ctx) {}
  // The TLS context this connection was made with (a certificate reload makes a new
  // one; the old stays alive for the connections that use it).
  std::shared_ptr<net::ssl::context> tls_ctx;
  Stream stream;
  tcp::socket& socket() override { return lowest(stream); }
  void expired() override {
    if (deferred != nullptr) {
      std::exchange(deferred, nullptr)->start_deferred_watch();
      return;
    }
    timed_out = true;
    boost::system::error_code ignored;
    socket().cancel(ignored);
  }
};

using plain_connection = connection<beast::tcp_stream>;
using tls_connection = connection<tls_stream>;

// The request parser: Beast's HTTP/1.1 grammar and limits with our own callbacks, which
// fill the handler's `request` as the bytes arrive (lower-cased header names, the body
// appended to req.body): no basic_fields (one allocation per field) and no second copy
// of every header into the request: both cost CPU on every request.
class request_parser final : public bhttp::basic_parser<true> {
 public:
  explicit request_parser(request& r) : req_(r) {}
  bool expect_continue = false;
  int version = 11;  // 10 for HTTP/1.0
  int hosts = 0;     // Host fields seen
  std::size_t host_at = 0;  // the last one's index in req.headers

 private:
  void on_request_impl(bhttp::verb, beast::string_view method, beast::string_view target, int v,
                       beast::error_code&) override {
    version = v;
    req_.method.assign(method.data(), method.size());
    req_.target.assign(target.data(), target.size());
  }
  void on_response_impl(int, beast::string_view, int, beast::error_code&) override {}
  void on_field_impl(bhttp::field f, beast::string_view name, beast::string_view value,
                     beast::error_code&) override {
    auto& h = req_.headers.emplace_back(std::string(name.data(), name.size()), std::string(value.data(), value.size()));
    for (auto& c : h.first) {
      if (c >= 'A' && c <= 'Z') {
        c = static_cast<char>(c - 'A' + 'a');
      }
    }
    if (f == bhttp::field::expect && beast::iequals(value, "100-continue")) {
      expect_continue = true;
    } else if (f == bhttp::field::host) {
      ++hosts;
      host_at = req_.headers.size() - 1;
    }
  }
  void on_header_impl(beast::error_code&) override {}
  void on_body_init_impl(const boost::optional<std::uint64_t>& length, beast::error_code&) override {
    if (length) {
      // Bounded: a declared length is a promise, not bytes (larger bodies are read
      // without the parser anyway).
      req_.body.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(*length, 64 * 1024)));
    }
  }
  std::size_t on_body_impl(beast::string_view body, beast::error_code&) override {
    req_.body.append(body.data(), body.size());
    return body.size();
  }
  void on_chunk_header_impl(std::uint64_t, beast::string_view, beast::error_code&) override {}
  std::size_t on_chunk_body_impl(std::uint64_t, beast::string_view body, beast::error_code&) override {
    req_.body.append(body.data(), body.size());
    return body.size();
  }
  void on_finish_impl(beast::error_code&) override {}

  request& req_;
};

// The common request, parsed without Beast: a complete HTTP/1.1 head already in the
// buffer (it nearly always arrives in the first read), token method, plain target,
// well-formed fields, at most a Content-Length. Anything else (HTTP/1.0, chunked,
// Expect, Upgrade, obs-fold, bare LF, odd bytes, a head not yet complete or over the
// limit) returns false and goes to Beast's parser, which reads and judges it as before.
// Saves Beast's composed read and field parsing (~6% of the CPU per request).
struct simple_head {
  std::size_t bytes = 0;             // head length including the blank line
  std::uint64_t content_length = 0;  // 0 when absent
  bool keep_alive = true;
  int hosts = 0;  // Host fields seen
  std::size_t host_at = 0;  // the last one's index in req.headers
};

// `req.headers` may still hold the previous request's fields (recycle() keeps their
// strings): they are overwritten in place, and the list is cut to the fields read.
bool parse_plain_head(std::string_view in, std::size_t max_header, request& req, simple_head& out,
                      std::size_t& fields) {
  const std::string_view window = in.substr(0, std::min(in.size(), max_header));
  const auto end = window.find("\r\n\r\n");
  if (end == std::string_view::npos) {
    return false;
  }
  out.bytes = end + 4;
  const char* p = in.data();
  const char* const stop = in.data() + end + 2;  // just past the last field line's CRLF
  // Request line: METHOD SP target SP HTTP/1.1 CRLF
  const char* m = p;
  while (p < stop && simple::is_tchar(static_cast<unsigned char>(*p))) {
    ++p;
  }
  if (p == m || p >= stop || *p != ' ') {
    return false;
  }
  out.hosts = 0;
  simple::overwrite(req.method, std::string_view(m, static_cast<std::size_t>(p - m)));
  const char* t = ++p;
  while (p < stop && static_cast<unsigned char>(*p) > 0x20 && static_cast<unsigned char>(*p) < 0x7F) {
    ++p;
  }
  if (p == t || p >= stop || *p != ' ') {
    return false;
  }
  simple::overwrite(req.target, std::string_view(t, static_cast<std::size_t>(p - t)));
  ++p;
  if (stop - p < 10 || std::string_view(p, 10) != "HTTP/1.1\r\n") {
    return false;
  }
  p += 10;
  simple::framing fr;
  const bool plain = simple::scan_fields(p, stop, [&](std::string_view name, std::string_view value) {
    if (simple::iequals(name, "expect") || !fr.take(name, value)) {
      return false;
    }
    if (simple::iequals(name, "host")) {
      ++out.hosts;
      out.host_at = fields;
    }
    simple::assign_lowered(req.headers, fields++, name, value);
    return true;
  });
  out.content_length = fr.length;
  out.keep_alive = fr.keep_alive;
  return plain;
}

bool parse_simple_head(std::string_view in, std::size_t max_header, request& req, simple_head& out) {
  std::size_t fields = 0;
  if (!parse_plain_head(in, max_header, req, out, fields)) {
    req.headers.clear();  // Beast's parser (read_with_parser) starts from an empty request
    return false;
  }
  req.headers.erase(req.headers.begin() + static_cast<std::ptrdiff_t>(fields), req.headers.end());
  return true;
}

// Shared between a responder and its disconnect watcher (which may outlive it).
struct watch_state {
  bool stopped = false;
  bool gone = false;
};

}  // namespace

struct server::impl : std::enable_shared_from_this<impl> {
  impl(net::any_io_executor ex, server_options o, handler h)
      : ex_(std::move(ex)), opts_(std::move(o)), handler_(std::move(h)), acceptor_(ex_), dog_(core::watchdog::make(ex_)) {}

  net::any_io_executor ex_;
  server_options opts_;
  handler handler_;
  tcp::acceptor acceptor_;
  std::shared_ptr<core::watchdog> dog_;
  bool draining_ = false;
  std::function<void()> on_drained_;
  std::uint64_t next_id_ = 1;
  std::unordered_map<std::uint64_t, std::shared_ptr<conn_base>> conns_;
  // Set when the port speaks HTTPS; replaced by reload_tls() (connections keep theirs).
  std::shared_ptr<net::ssl::context> tls_ctx_;

  net::awaitable<void> accept_loop();
  template <class Conn>
  net::awaitable<void> session(std::shared_ptr<Conn> c);
  net::awaitable<void> tls_session(std::shared_ptr<tls_connection> c);
  template <class Conn>
  net::awaitable<bool> read_body(Conn& c, beast::flat_buffer& buf, std::string& body, std::size_t len,
                                 const std::string& call_id, std::string_view origin);
  template <class Conn>
  net::awaitable<bool> read_with_parser(Conn& c, beast::flat_buffer& buf, request& req, std::string& call_id,
                                        bool& keep_alive);
  void forget(std::uint64_t id);
  void maybe_drained();
};

namespace {

using namespace std::string_view_literals;  // head += "..."sv: the length known, no strlen

void append_uint(std::string& out, std::uint64_t v) {
  char buf[20];
  const auto* end = std::to_chars(buf, buf + sizeof buf, v).ptr;
  out.append(buf, static_cast<std::size_t>(end - buf));
}

template <class Conn>
class session_responder final : public responder, private deferred_watch {
 public:
  // `call_id` (x-litellm-call-id on every response of the exchange) is the session's, and
  // outlives the responder.
  session_responder(std::shared_ptr<Conn> c, const server_options& opts, bool keep_alive, bool draining,
                    std::string_view call_id)
      : conn_(std::move(c)), opts_(opts), keep_alive_(keep_alive), draining_(draining), call_id_(call_id) {}

  ~session_responder() override { stop_watching(); }

  net::awaitable<bool> send(response r) override {
    drop_deferred();
    if (started_ || gone_) {
      co_return false;
    }
    started_ = true;
    status_ = r.status;
    // The head is serialized here into one buffer and written with the body in one
    // writev: Beast's serializer walks a buffer per field (~20 iovecs) and cost ~10% of
    // the gateway's CPU per request. Same bytes as Beast would send.
    std::string& head = conn_->head;  // one response at a time per connection
    head.clear();
    head += "HTTP/1.1 "sv;
    append_uint(head, static_cast<unsigned>(r.status));
    head += ' ';
    auto reason = bhttp::obsolete_reason(static_cast<bhttp::status>(r.status));
    head.append(reason.data(), reason.size());
    head += "\r\nServer: switchyard\r\n"sv;
    if (!r.content_type.empty()) {
      append_field(head, "Content-Type", r.content_type);
    }
    append_common(head);
    for (const auto& [k, v] : r.headers) {
      append_field(head, k, v);
    }
    head += r.head_lines;
    append_connection(head);
    head += "Content-Length: "sv;
    append_uint(head, r.body.size());
    head += "\r\n\r\n"sv;
    // A HEAD is answered as its GET, with the GET's Content-Length, but without the body
    // (RFC 9110, 9.3.2): a client reads no body after a HEAD, so bytes sent would be read
    // as the start of the next response on this connection.
    const std::array<net::const_buffer, 2> bufs{net::buffer(head),
                                                head_only_ ? net::const_buffer{} : net::buffer(r.body)};
    conn_->arm_after(opts_.write_timeout);
    auto [ec, n] = co_await net::async_write(conn_->stream, bufs, core::transfer_whole{}, tuple_awaitable);
    conn_->disarm();
    if (ec) {
      gone_ = true;
      co_return false;
    }
    done_ = true;
    co_return true;
  }

  net::awaitable<bool> begin_stream(int status, std::string content_type, header_list headers,
                                    std::string head_lines = {}) override {
    if (started_ || gone_) {
      co_return false;
    }
    started_ = true;
    streaming_ = true;
    status_ = status;
    // Held back and sent with the first chunk: one write (and one packet) instead of two.
    std::string& head = conn_->head;
    head.clear();
    head += "HTTP/1.1 "sv;
    append_uint(head, static_cast<unsigned>(status));
    head += ' ';
    auto reason = bhttp::obsolete_reason(static_cast<bhttp::status>(status));
    head.append(reason.data(), reason.size());
    head += "\r\nServer: switchyard\r\n"sv;
    append_field(head, "Content-Type", content_type);
    append_common(head);
    for (const auto& [k, v] : headers) {
      append_field(head, k, v);
    }
    head += head_lines;
    append_connection(head);
    head += "Transfer-Encoding: chunked\r\n\r\n"sv;
    head_pending_ = true;
    co_return true;
  }

  net::awaitable<bool> write(std::string_view data) override {
    if (!streaming_ || gone_) {
      co_return false;
    }
    if (data.empty()) {
      co_return true;  // an empty chunk would end the body
    }
    co_return co_await write_chunks(data, false);
  }

  net::awaitable<bool> end_stream() override {
    if (!streaming_ || gone_) {
      co_return false;
    }
    co_return co_await write_chunks({}, true);
  }

  net::awaitable<bool> write_last(std::string_view data) override {
    if (!streaming_ || gone_) {
      co_return false;
    }
    co_return co_await write_chunks(data, true);
  }

  bool client_gone() const override { return gone_ || (watch_ && watch_->gone); }

  void answer_head_only() { head_only_ = true; }

  void watch_disconnect(std::function<void()> on_gone) override {
    stop_watching();
    auto st = std::make_shared<watch_state>();
    watch_ = st;
    auto c = conn_;
    net::co_spawn(
        c->stream.get_executor(),
        [c, st, cb = std::move(on_gone)]() -> net::awaitable<void> {
          auto& sock = c->socket();
          auto [ec] = co_await sock.async_wait(tcp::socket::wait_read, tuple_awaitable);
          if (st->stopped) {
            co_return;
          }
          bool gone = false;
          if (ec) {
            gone = ec != net::error::operation_aborted;
          } else {
            char b = 0;
            auto n = ::recv(sock.native_handle(), &b, 1, MSG_PEEK | MSG_DONTWAIT);
            gone = n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
          }
          if (gone) {
            st->gone = true;
            cb();
          }
        },
        net::detached);
  }

  void watch_disconnect_after(std::chrono::milliseconds delay, std::function<void()> on_gone) override {
    stop_watching();
    deferred_gone_ = std::move(on_gone);
    conn_->deferred = this;
    conn_->arm_after(delay);
  }

  void start_deferred_watch() override {
    auto cb = std::move(deferred_gone_);
    deferred_gone_ = nullptr;
    watch_disconnect(std::move(cb));
  }

  // A delayed watch not started yet is called off (before any write arms the connection).
  void drop_deferred() {
    if (conn_->deferred == this) {
      conn_->deferred = nullptr;
      conn_->disarm();
      deferred_gone_ = nullptr;
    }
  }

  void stop_watching() override {
    drop_deferred();
    if (watch_ && watch_->gone) {
      gone_ = true;  // seen while watching: still gone afterwards (no answer is written to it)
    }
    if (watch_ && !watch_->stopped) {
      watch_->stopped = true;
      boost::system::error_code ignored;
      conn_->socket().cancel(ignored);
    }
    watch_.reset();
  }

  void add_common_header(std::string name, std::string value) override {
    common_.emplace_back(std::move(name), std::move(value));
  }

  void append_common(std::string& head) const {
    if (!call_id_.empty()) {
      append_field(head, "x-litellm-call-id", call_id_);
    }
    for (const auto& [k, v] : common_) {
      append_field(head, k, v);
    }
  }

  bool started() const override { return started_; }
  bool ended() const override { return done_; }
  void take_access_log() override { access_taken_ = true; }
  bool access_taken() const { return access_taken_; }

  void annotate(std::string model, std::string key_redacted) override {
    model_ = std::move(model);
    key_ = std::move(key_redacted);
  }

  int status() const { return status_; }
  bool done() const { return done_; }

  bool gone() const { return client_gone(); }

  // Whatever is pending of the head, then `data` as one chunk (if any), then the last
  // chunk when `last`: one async_write.
  net::awaitable<bool> write_chunks(std::string_view data, bool last) {
    drop_deferred();
    std::array<net::const_buffer, 5> bufs;
    std::size_t nb = 0;
    if (head_pending_) {
      bufs[nb++] = net::buffer(conn_->head);
    }
    const bool ends = last;
    if (head_only_) {  // a HEAD: the head alone, as in send()
      data = {};
      last = false;
      if (nb == 0) {
        done_ = done_ || ends;
        co_return true;
      }
    }
    char size_line[24];
    if (!data.empty()) {
      int n = std::snprintf(size_line, sizeof size_line, "%zx\r\n", data.size());
      bufs[nb++] = net::buffer(size_line, static_cast<std::size_t>(n));
      bufs[nb++] = net::buffer(data.data(), data.size());
      bufs[nb++] = net::buffer("\r\n", 2);
    }
    if (last) {
      bufs[nb++] = net::buffer("0\r\n\r\n", 5);
    }
    head_pending_ = false;
    conn_->arm_after(opts_.write_timeout);
    auto [ec, n] = co_await net::async_write(conn_->stream, std::span<const net::const_buffer>(bufs.data(), nb),
                                             core::transfer_whole{}, tuple_awaitable);
    conn_->disarm();
    if (ec) {
      gone_ = true;
      co_return false;
    }
    if (ends) {
      done_ = true;
    }
    co_return true;
  }

  // Connection management of a response head: "keep-alive: timeout=N" (N a little under
  // our idle timeout, so that clients stop reusing a connection before we close it), or
  // "Connection: close".
  void append_connection(std::string& head) const {
    if (keep_alive_ && !draining_) {
      auto secs = std::chrono::duration_cast<std::chrono::seconds>(opts_.idle_timeout).count();
      head += "keep-alive: timeout="sv;
      append_uint(head, static_cast<std::uint64_t>(secs > 1 ? secs - 1 : 1));
      head += "\r\n"sv;
    } else {
      head += "Connection: close\r\n"sv;
    }
  }

  // "Name: value\r\n"; CR and LF in a value (none expected: values come from parsed
  // messages and our own strings) are replaced so they cannot split the head.
  static void append_field(std::string& out, std::string_view name, std::string_view value) {
    out.append(name.data(), name.size());
    out += ": "sv;
    const std::size_t at = out.size();
    out.append(value.data(), value.size());
    for (std::size_t i = at; i < out.size(); ++i) {
      if (out[i] == '\r' || out[i] == '\n') {
        out[i] = ' ';
      }
    }
    out += "\r\n"sv;
  }
  const std::string& model() const { return model_; }
  const std::string& key() const { return key_; }

 private:
  std::shared_ptr<Conn> conn_;
  const server_options& opts_;
  bool keep_alive_;
  bool draining_;
  bool head_only_ = false;
  bool started_ = false;
  bool streaming_ = false;
  bool done_ = false;
  bool gone_ = false;
  bool head_pending_ = false;  // streaming head built, not yet written
  bool access_taken_ = false;
  int status_ = 0;
  std::string_view call_id_;
  header_list common_;
  std::shared_ptr<watch_state> watch_;
  std::function<void()> deferred_gone_;  // watch_disconnect_after's, until it starts
  std::string model_;
  std::string key_;
};

// x-litellm-call-id from the client when usable, else a new uuid4; written over `id` (the
// session keeps it from request to request).
void call_id_into(const request& req, std::string& id) {
  const auto given = req.header("x-litellm-call-id");
  if (given.empty() || given.size() > 128) {
    core::uuid4_into(id);
  } else {
    id.assign(given);
  }
}

// A lingering close, as nginx does: an early error (413, 408, 400...) is usually sent
// while the client is still sending its request. Closing a socket with unread bytes
// makes the kernel send a reset, and a reset that reaches the client before it has read
// the answer discards it there: the client sees "connection reset" instead of the 413.
// So: half-close (the client sees the end of the answer), then read and drop whatever
// still comes until the client closes, for at most opts.linger_timeout.
template <class Conn>
net::awaitable<void> linger_close(Conn& c, std::chrono::milliseconds limit) {
  boost::system::error_code ec;
  c.socket().shutdown(tcp::socket::shutdown_send, ec);
  if (ec) {
    co_return;
  }
  c.busy = false;  // nothing left to answer: a drain closes it at once
  c.timed_out = false;
  c.arm_after(limit);
  std::array<char, 16384> sink;  // NOLINT(cppcoreguidelines-pro-member-init): scratch
  while (!c.timed_out) {
    auto [rec, n] = co_await c.socket().async_read_some(net::buffer(sink), tuple_awaitable);
    if (rec) {
      break;  // end of stream (the client closed), reset, or the deadline cancelled the read
    }
  }
  c.disarm();
}

// An early error (before the handler): logged as an access record, written as a complete
// response on a connection that is closed afterwards, gently (linger_close).
template <class Conn>
net::awaitable<void> reject(Conn& c, const server_options& opts, const core::error& e,
                            const std::string& call_id, std::string_view origin = {}) {
  core::access_record rec;
  rec.method = "-";
  rec.path = "-";
  rec.status = e.status;
  rec.call_id = call_id;
  core::log_access(rec);

  bhttp::response<bhttp::string_body> res{static_cast<bhttp::status>(e.status), 11};
  res.set(bhttp::field::server, "switchyard");
  res.set(bhttp::field::content_type, "application/json");
  res.set("x-litellm-call-id", call_id);
  if (opts.early_error_headers && !origin.empty()) {
    // A browser reads an early error (413, 408) only with the CORS headers of the answer.
    for (const auto& [name, value] : opts.early_error_headers(origin)) {
      res.set(name, value);
    }
  }
  res.keep_alive(false);
  res.body() = error_body(e);
  res.prepare_payload();
  c.arm_after(std::min(opts.write_timeout, std::chrono::milliseconds{5000}));
  auto [ec, n] = co_await bhttp::async_write(c.stream, res, tuple_awaitable);
  c.disarm();
  if (!ec) {
    co_await linger_close(c, opts.linger_timeout);
  }
}

// 413, with the declared length when there is one (else the body grew past the limit).
core::error too_large(std::size_t limit, std::optional<std::uint64_t> declared = std::nullopt) {
  return core::make_error(core::errc::payload_too_large,
                          "Request body too large" + (declared ? ": " + std::to_string(*declared) + " bytes" : "") +
                              ", the limit is " + std::to_string(limit) + " bytes (max_request_size_mb)");
}

// RFC 3986, 2.3 and 2.2: the characters a registered name may hold besides %-escapes.
constexpr bool is_unreserved(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
         c == '_' || c == '~';
}
constexpr bool is_sub_delim(char c) {
  return c == '!' || c == '$' || c == '&' || c == '\'' || c == '(' || c == ')' || c == '*' || c == '+' || c == ',' ||
         c == ';' || c == '=';
}

// RFC 9110, 7.2 and RFC 3986, 3.2.2-3.2.3: Host = uri-host [ ":" port ], where uri-host is
// an IP literal in brackets, an IPv4 address or a registered name (unreserved characters,
// %-escapes and sub-delims), and port is digits. RFC 9112, 3.2: a Host field value that is
// not that MUST be answered 400. Two refinements: a comma, though a sub-delim, is refused
// (no DNS name has one; a field of "a, b" or "a,b" names two hosts, as a proxy joining
// repeated fields writes them), and a port must be at most 65535. The empty value is valid
// (RFC 9110 asks clients to send it when the target has no authority).
// Returns why `v` is not a valid Host value, or nullptr when it is.
const char* host_value_problem(std::string_view v) {
  std::string_view host = v;
  std::string_view port;
  bool has_port = false;
  if (!v.empty() && v.front() == '[') {
    const auto close = v.find(']');
    if (close == std::string_view::npos) {
      return "an IP literal without its closing ']'";
    }
    host = v.substr(1, close - 1);
    const auto rest = v.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') {
        return "characters after the IP literal";
      }
      has_port = true;
      port = rest.substr(1);
    }
    if (!host.empty() && (host.front() == 'v' || host.front() == 'V')) {
      // IPvFuture: "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" )
      const auto dot = host.find('.');
      if (dot == std::string_view::npos || dot < 2 || dot + 1 == host.size()) {
        return "an invalid IP literal";
      }
      for (std::size_t i = 1; i < dot; ++i) {
        if (std::isxdigit(static_cast<unsigned char>(host[i])) == 0) {
          return "an invalid IP literal";
        }
      }
      for (const char c : host.substr(dot + 1)) {
        if (!is_unreserved(c) && !is_sub_delim(c) && c != ':') {
          return "an invalid IP literal";
        }
      }
    } else {
      boost::system::error_code ec;
      // A zone identifier is written %25<zone> in a URI (RFC 6874); the parser wants %<zone>.
      std::string text(host);
      if (const auto pct = text.find("%25"); pct != std::string::npos) {
        text.erase(pct + 1, 2);
      }
      (void)net::ip::make_address_v6(text, ec);
      if (ec || host.empty()) {
        return "an invalid IPv6 literal";
      }
    }
  } else {
    if (const auto colon = v.rfind(':'); colon != std::string_view::npos) {
      host = v.substr(0, colon);
      has_port = true;
      port = v.substr(colon + 1);
    }
    for (std::size_t i = 0; i < host.size(); ++i) {
      const char c = host[i];
      if (c == '%') {
        if (i + 2 >= host.size() || std::isxdigit(static_cast<unsigned char>(host[i + 1])) == 0 ||
            std::isxdigit(static_cast<unsigned char>(host[i + 2])) == 0) {
          return "an invalid %-escape";
        }
        i += 2;
        continue;
      }
      if (c == ',') {
        return "more than one host";
      }
      if (!is_unreserved(c) && !is_sub_delim(c)) {
        return "a character a host name cannot have";
      }
    }
  }
  if (has_port) {
    if (port.size() > 5) {
      return "an invalid port";
    }
    unsigned n = 0;
    for (const char c : port) {
      if (c < '0' || c > '9') {
        return "an invalid port";
      }
      n = n * 10 + static_cast<unsigned>(c - '0');
    }
    if (n > 65535) {
      return "an invalid port";
    }
  }
  return nullptr;
}

// The authority of an absolute-form target ("http://host:port/path"), or nullopt when the
// target is not one (origin form, "*", another scheme: the handler answers those).
std::optional<std::string_view> absolute_form_authority(std::string_view t) {
  if (t.empty() || t.front() == '/') {
    return std::nullopt;
  }
  const auto sep = t.find("://");
  if (sep == std::string_view::npos ||
      !(simple::iequals(t.substr(0, sep), "http") || simple::iequals(t.substr(0, sep), "https"))) {
    return std::nullopt;
  }
  const auto begin = sep + 3;
  const auto end = t.find_first_of("/?#", begin);
  return t.substr(begin, (end == std::string_view::npos ? t.size() : end) - begin);
}

// RFC 9112, 3.2: a request with more than one Host field, or an HTTP/1.1 one with none,
// or one whose Host value is not a valid host[:port], MUST be answered 400 (the server
// cannot tell which authority it is meant for). HTTP/1.0 predates Host: its requests
// (health probes, curl -0) need none. An absolute-form target's authority replaces the
// Host field (from_absolute_form), so it is held to the same rule, and it must not carry
// userinfo (RFC 9110, 4.2.4: "user@host" in an http(s) URI is forbidden; a client that
// sends credentials there leaks them to every log on the way).
// `host_at`: the Host field's index in req.headers (when there is one), found by the
// parser, so the field is not looked up again.
std::optional<core::error> host_error(int hosts, std::size_t host_at, int version, const request& req) {
  if (hosts > 1) {
    return core::make_error(core::errc::bad_request, "Malformed HTTP request: more than one Host header");
  }
  if (hosts == 0 && version >= 11) {
    return core::make_error(core::errc::bad_request, "Malformed HTTP request: an HTTP/1.1 request needs a Host header");
  }
  if (hosts == 1) {
    if (const char* why = host_value_problem(req.headers[host_at].second)) {
      return core::make_error(core::errc::bad_request,
                              std::string("Malformed HTTP request: invalid Host header value (") + why + ")");
    }
  }
  if (const auto authority = absolute_form_authority(req.target)) {
    if (authority->find('@') != std::string_view::npos) {
      return core::make_error(core::errc::bad_request,
                              "Malformed HTTP request: the request target carries userinfo (user@host), which "
                              "HTTP forbids; send credentials in the Authorization header");
    }
    const char* why = host_value_problem(*authority);
    if (why == nullptr && (authority->empty() || authority->front() == ':')) {
      why = "an empty host";  // RFC 9110, 4.2.1: an http(s) URI with an empty host is invalid
    }
    if (why != nullptr) {
      return core::make_error(core::errc::bad_request,
                              std::string("Malformed HTTP request: invalid Host in the request target (") + why + ")");
    }
  }
  return std::nullopt;
}

// What to answer when reading a request's header or body failed: nothing when the
// client went away (it would not read it).
std::optional<core::error> read_failure(const beast::error_code& ec, bool timed_out, std::size_t max_body,
                                        std::string_view part) {
  if (timed_out) {
    return core::make_error(core::errc::request_timeout, "Request " + std::string(part) + " not received in time");
  }
  if (ec == bhttp::error::body_limit) {
    return too_large(max_body);
  }
  if (ec == bhttp::error::header_limit) {
    auto e = core::make_error(core::errc::bad_request, "Request header fields too large");
    e.status = 431;
    return e;
  }
  if (ec == bhttp::error::end_of_stream || ec == bhttp::error::partial_message || ec == net::error::eof ||
      ec == net::error::connection_reset || ec == net::error::operation_aborted) {
    return std::nullopt;
  }
  return core::make_error(core::errc::bad_request,
                          std::string(part == "body" ? "Malformed HTTP request body: " : "Malformed HTTP request: ") +
                              ec.message());
}

}  // namespace

net::awaitable<void> server::impl::accept_loop() {
  auto self = shared_from_this();
  for (;;) {
    auto [ec, sock] = co_await acceptor_.async_accept(tuple_awaitable);
    if (ec) {
      if (ec == net::error::operation_aborted || !acceptor_.is_open()) {
        co_return;
      }
      // EMFILE and friends: log, back off briefly, keep serving.
      spdlog::warn("accept failed: {}", ec.message());
      net::steady_timer t(ex_, std::chrono::milliseconds(50));
      co_await t.async_wait(tuple_awaitable);
      continue;
    }
    if (draining_) {
      boost::system::error_code ignored;
      sock.close(ignored);
      continue;
    }
    sock.set_option(tcp::no_delay(true), ec);
    auto on_end = [self, id = next_id_](std::exception_ptr e) {
      if (e) {
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& ex) {
          spdlog::error("connection {} ended by an exception: {}", id, ex.what());
        }
      }
      self->forget(id);
    };
    if (tls_ctx_) {
      auto c = std::make_shared<tls_connection>(std::move(sock), tls_ctx_);
      c->register_with(dog_);
      c->id = next_id_++;
      conns_.emplace(c->id, c);
      net::co_spawn(ex_, [self, c]() { return self->tls_session(c); }, std::move(on_end));
    } else {
      auto c = std::make_shared<plain_connection>(std::move(sock));
      c->register_with(dog_);
      c->id = next_id_++;
      conns_.emplace(c->id, c);
      net::co_spawn(ex_, [self, c]() { return self->session(c); }, std::move(on_end));
    }
  }
}

namespace {

// The answer to plain HTTP on the HTTPS port, written in clear text (as nginx's "The
// plain HTTP request was sent to HTTPS port"): a client that mistyped the scheme reads
// why instead of a reset or a hang.
std::string plain_http_refusal(const std::string& call_id) {
  auto e = core::make_error(core::errc::bad_request,
                            "This port speaks HTTPS: the request was sent as plain HTTP. Use https://");
  std::string body = error_body(e);
  std::string out = "HTTP/1.1 400 Bad Request\r\nServer: switchyard\r\nContent-Type: application/json\r\n";
  out += "x-litellm-call-id: " + call_id + "\r\nConnection: close\r\nContent-Length: ";
  out += std::to_string(body.size()) + "\r\n\r\n" + body;
  return out;
}

}  // namespace

// An HTTPS connection: the first byte tells a TLS client (a handshake record, 0x16) from
// plain HTTP (a method's first letter), which is answered 400 in clear text and closed;
// then the handshake, bounded by the header timeout; then the same session as plain HTTP.
net::awaitable<void> server::impl::tls_session(std::shared_ptr<tls_connection> c) {
  auto& sock = c->socket();
  c->timed_out = false;
  c->arm_after(opts_.header_timeout);
  unsigned char first = 0;
  for (;;) {
    auto [wec] = co_await sock.async_wait(tcp::socket::wait_read, tuple_awaitable);
    if (wec) {
      c->disarm();
      co_return;  // timed out, drained or reset before a byte came
    }
    const auto n = ::recv(sock.native_handle(), &first, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 1) {
      break;
    }
    if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
      c->disarm();
      co_return;
    }
  }
  if (first != 0x16) {
    c->disarm();
    const std::string call_id = core::uuid4();
    core::access_record rec;
    rec.method = "-";
    rec.path = "-";
    rec.status = 400;
    rec.call_id = call_id;
    core::log_access(rec);
    const std::string answer = plain_http_refusal(call_id);
    c->arm_after(std::min(opts_.write_timeout, std::chrono::milliseconds{5000}));
    auto [ec, n] = co_await net::async_write(sock, net::buffer(answer), tuple_awaitable);
    c->disarm();
    if (!ec) {
      co_await linger_close(*c, opts_.linger_timeout);
    }
    co_return;
  }
  auto [hec] = co_await c->stream.async_handshake(net::ssl::stream_base::server, tuple_awaitable);
  c->disarm();
  if (hec) {
    spdlog::debug("TLS handshake failed: {}", c->timed_out ? std::string("timed out") : hec.message());
    co_return;
  }
  co_await session(c);
}

namespace {

// Mozilla's "intermediate" profile: TLS 1.2 and 1.3; for 1.2 only ECDHE key exchange
// with AEAD ciphers (OpenSSL's TLS 1.3 suites are all AEAD and stay at their defaults).
constexpr const char* tls12_ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

std::string openssl_reason(const boost::system::error_code& ec) {
  std::string m = ec.message();
  return m.empty() ? "unknown error" : m;
}

}  // namespace

std::shared_ptr<net::ssl::context> make_tls_context(const std::string& cert_file, const std::string& key_file) {
  auto ctx = std::make_shared<net::ssl::context>(net::ssl::context::tls_server);
  ctx->set_options(net::ssl::context::default_workarounds | net::ssl::context::no_sslv2 |
                   net::ssl::context::no_sslv3 | net::ssl::context::no_tlsv1 | net::ssl::context::no_tlsv1_1 |
                   net::ssl::context::no_compression | net::ssl::context::single_dh_use);
  SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION);
  if (SSL_CTX_set_cipher_list(ctx->native_handle(), tls12_ciphers) != 1) {
    throw std::runtime_error("TLS: the cipher list is not supported by this OpenSSL");
  }
  // The server's order wins (clients that list CBC or 3DES first still get an AEAD).
  SSL_CTX_set_options(ctx->native_handle(), SSL_OP_CIPHER_SERVER_PREFERENCE);
  // Read here first, so that a missing file or a directory gets a plain reason instead
  // of OpenSSL's ("no start line" for a directory).
  auto cert = core::read_file(cert_file, 16u << 20);
  if (!cert) {
    throw std::runtime_error("TLS: cannot load the certificate (ssl_certfile_path) '" + cert_file +
                             "': " + cert.reason);
  }
  auto key = core::read_file(key_file, 16u << 20);
  if (!key) {
    throw std::runtime_error("TLS: cannot load the private key (ssl_keyfile_path) '" + key_file + "': " + key.reason);
  }
  boost::system::error_code ec;
  ctx->use_certificate_chain(net::buffer(*cert.text), ec);
  if (ec) {
    throw std::runtime_error("TLS: cannot load the certificate (ssl_certfile_path) '" + cert_file +
                             "': " + openssl_reason(ec));
  }
  ctx->use_private_key(net::buffer(*key.text), net::ssl::context::pem, ec);
  OPENSSL_cleanse(key.text->data(), key.text->size());  // the key's copy is not kept
  if (ec) {
    // OpenSSL checks the pair while loading the key: name that case plainly.
    if (ERR_GET_REASON(static_cast<unsigned long>(ec.value())) == X509_R_KEY_VALUES_MISMATCH) {
      throw std::runtime_error("TLS: the private key '" + key_file + "' does not match the certificate '" +
                               cert_file + "'");
    }
    throw std::runtime_error("TLS: cannot load the private key (ssl_keyfile_path) '" + key_file +
                             "': " + openssl_reason(ec));
  }
  if (SSL_CTX_check_private_key(ctx->native_handle()) != 1) {
    throw std::runtime_error("TLS: the private key '" + key_file + "' does not match the certificate '" +
                             cert_file + "'");
  }
  return ctx;
}

void server::impl::forget(std::uint64_t id) {
  auto it = conns_.find(id);
  if (it != conns_.end()) {
    it->second->close_now();
    conns_.erase(it);
  }
  maybe_drained();
}

void server::impl::maybe_drained() {
  if (draining_ && conns_.empty() && on_drained_) {
    auto cb = std::move(on_drained_);
    on_drained_ = nullptr;
    cb();
  }
}

namespace {
constexpr std::uint64_t direct_body_min = 16 * 1024;
}  // namespace

// A `len`-byte body: what `buf` holds of it, then the rest read straight into place within
// body_timeout. False when the client stalled (408 sent) or went away.
template <class Conn>
net::awaitable<bool> server::impl::read_body(Conn& c, beast::flat_buffer& buf, std::string& body,
                                             std::size_t len, const std::string& call_id, std::string_view origin) {
  body.resize(len);
  const std::size_t have = std::min(buf.size(), len);
  net::buffer_copy(net::buffer(body.data(), have), buf.data());
  buf.consume(have);
  c.timed_out = false;
  c.arm_after(opts_.body_timeout);
  auto [ec, n] = co_await net::async_read(c.stream, net::buffer(body.data() + have, len - have),
                                             core::transfer_whole{}, tuple_awaitable);
  c.disarm();
  if (ec) {
    if (c.timed_out) {
      auto e = core::make_error(core::errc::request_timeout, "Request body not received in time");
      co_await reject(c, opts_, e, call_id, origin);
    }
    co_return false;  // the client closed or reset before sending the whole body
  }
  co_return true;
}

// 2-3. A request head Beast's parser reads (anything simple_head does not take: HTTP/1.0,
// chunked, Expect, odd bytes, a partial head), then its body, bounded in time and size.
// False: the connection is to be closed (an early error was answered, or the client left).
template <class Conn>
net::awaitable<bool> server::impl::read_with_parser(Conn& c, beast::flat_buffer& buf, request& req,
                                                    std::string& call_id, bool& keep_alive) {
  // The watchdog only cancels the read (timed_out set), so that the 408 can still be
  // written.
  auto arm = [&c](std::chrono::milliseconds d) {
    c.timed_out = false;
    c.arm_after(d);
  };
  req = request{};
  req.headers.reserve(16);
  // 2. The rest of the header, bounded in time and size.
  request_parser parser(req);
  std::optional<std::string> direct_body;  // a large body read without the parser
  parser.header_limit(static_cast<std::uint32_t>(opts_.max_header_bytes));
  parser.body_limit(opts_.max_body_bytes);
  arm(opts_.header_timeout);
  {
    auto [ec, n] = co_await bhttp::async_read_header(c.stream, buf, parser, tuple_awaitable);
    c.disarm();
    if (ec) {
      const std::string id = core::uuid4();  // the head was not read: no client call id
      if (auto e = read_failure(ec, c.timed_out, opts_.max_body_bytes, "header")) {
        co_await reject(c, opts_, *e, id);
      }
      co_return false;
    }
  }
  call_id_into(req, call_id);
  if (auto e = host_error(parser.hosts, parser.host_at, parser.version, req)) {
    co_await reject(c, opts_, *e, call_id, req.header("origin"));
    co_return false;
  }

  // A Transfer-Encoding whose last coding is not chunked leaves the body's end unknown
  // (RFC 9112, 6.3): 400 and close. Read as "no body", its bytes would be taken for the
  // next request, which a proxy in front frames differently (request smuggling).
  if (!req.header("transfer-encoding").empty() && !parser.chunked()) {
    auto e = core::make_error(core::errc::bad_request,
                              "Unsupported Transfer-Encoding: only chunked (as the last coding) is accepted");
    co_await reject(c, opts_, e, call_id, req.header("origin"));
    co_return false;
  }

  // 3. Body: refuse early what is declared too large, then read it bounded in time.
  if (auto len = parser.content_length(); len && *len > opts_.max_body_bytes) {
    auto e = too_large(opts_.max_body_bytes, *len);
    co_await reject(c, opts_, e, call_id, req.header("origin"));
    co_return false;
  }
  if (!parser.is_done()) {
    if (parser.expect_continue) {
      bhttp::response<bhttp::empty_body> cont{bhttp::status::continue_, 11};
      c.arm_after(opts_.write_timeout);
      auto [ec, n] = co_await bhttp::async_write(c.stream, cont, tuple_awaitable);
      c.disarm();
      if (ec) {
        co_return false;
      }
    }
    arm(opts_.body_timeout);
    // Large bodies with a Content-Length are read straight into their final string:
    // Beast's body reader would pass every byte through the flat buffer (an extra
    // copy) in reads of at most 64 KB each (measured with 1 MB bodies in bench/).
    const auto declared = parser.content_length();
    const bool chunked = parser.chunked();
    if (declared && !chunked && *declared >= direct_body_min) {
      const auto len = static_cast<std::size_t>(*declared);
      direct_body.emplace();
      if (!co_await read_body(c, buf, *direct_body, len, call_id, req.header("origin"))) {
        co_return false;
      }
    } else {
      auto [ec, n] = co_await bhttp::async_read(c.stream, buf, parser, tuple_awaitable);
      c.disarm();
      if (ec) {
        if (auto e = read_failure(ec, c.timed_out, opts_.max_body_bytes, "body")) {
          co_await reject(c, opts_, *e, call_id, req.header("origin"));
        }
        co_return false;
      }
    }
  }
  if (direct_body) {
    req.body = std::move(*direct_body);
  }
  keep_alive = parser.keep_alive();
  co_return true;
}

namespace {

// A connection's request object is reused for its next request: every field is reset
// (a new request{}), but the buffers that would be allocated again at once keep their
// capacity (the body, the header list, the target and path, the call id): a keep-alive
// client's requests then cost no allocation for them. A body buffer above this size is
// let go, so an idle connection never holds on to a large request it once sent.
constexpr std::size_t max_kept_body = 64 * 1024;

// RFC 9112, 2.2: a server SHOULD ignore at least one empty line received before a request
// line (some clients send a CRLF after a POST body). A few are ignored, no more: a stream
// of empty lines is not a request, and goes to the parser, which answers 400.
constexpr int max_empty_lines = 4;

// Drops the empty lines (CRLF, or a bare LF) at the start of `buf`, counting them in
// `skipped`. True when more bytes are needed to see where the request line starts (all
// that came were empty lines, or a lone CR).
bool skip_empty_lines(beast::flat_buffer& buf, int& skipped) {
  while (skipped < max_empty_lines) {
    const auto* p = static_cast<const char*>(buf.data().data());
    const std::size_t n = buf.size();
    if (n == 0 || (n == 1 && p[0] == '\r')) {
      return true;
    }
    if (p[0] == '\n') {
      buf.consume(1);
    } else if (p[0] == '\r' && p[1] == '\n') {
      buf.consume(2);
    } else {
      return false;
    }
    ++skipped;
  }
  return false;
}

// RFC 9112, 3.2.2: a server MUST accept a target in absolute form ("http://host:port/path?q",
// as sent to a proxy); it names the path and query to serve (the root when it has no path),
// and its authority replaces the Host field (the server MUST ignore the one received). Other
// targets that do not start with '/' are left as received (the handler answers 404).
void from_absolute_form(request& req) {
  const std::string_view t = req.target;
  const auto sep = t.find("://");
  if (sep == std::string_view::npos ||
      !(simple::iequals(t.substr(0, sep), "http") || simple::iequals(t.substr(0, sep), "https"))) {
    return;
  }
  const auto auth_begin = sep + 3;
  auto auth_end = t.find_first_of("/?", auth_begin);
  if (auth_end == std::string_view::npos) {
    auth_end = t.size();
  }
  const std::string_view authority = t.substr(auth_begin, auth_end - auth_begin);
  std::string origin_form = auth_end == t.size() || t[auth_end] == '?' ? "/" : "";
  origin_form.append(t.substr(auth_end));
  bool replaced = false;
  for (auto& [name, value] : req.headers) {
    if (name == "host") {
      value.assign(authority);
      replaced = true;
      break;
    }
  }
  if (!replaced) {
    req.headers.emplace_back("host", std::string(authority));
  }
  req.target = std::move(origin_form);
}

void recycle(request& req) {
  std::string body = std::move(req.body);
  if (body.capacity() > max_kept_body) {
    std::string().swap(body);
  }
  // The method, target, path and field strings are kept, not cleared: the next request's
  // are written over them (the Beast parser's path starts from a new request{}).
  header_list headers = std::move(req.headers);
  std::string method = std::move(req.method);
  std::string target = std::move(req.target);
  std::string path = std::move(req.path);
  std::string call_id = std::move(req.call_id);
  req = request{};
  body.clear();
  call_id.clear();
  req.body = std::move(body);
  req.headers = std::move(headers);
  req.headers.reserve(16);
  req.method = std::move(method);
  req.target = std::move(target);
  req.path = std::move(path);
  req.call_id = std::move(call_id);
}

}  // namespace

template <class Conn>
net::awaitable<void> server::impl::session(std::shared_ptr<Conn> c) {
  beast::flat_buffer buf;
  request req;  // reused from request to request (recycle())
  std::string call_id;  // likewise: each request's is written over the last one's
  bool first = true;
  std::string remote;
  {
    boost::system::error_code ec;
    auto ep = c->socket().remote_endpoint(ec);
    if (!ec) {
      remote = ep.address().to_string();
    }
  }
  for (;;) {
    c->busy = false;
    if (draining_) {
      co_return;
    }
    // 1. Wait for the first byte of the next request (idle keep-alive wait), past the
    // empty lines a client may send before it.
    int empty_lines = 0;
    while (skip_empty_lines(buf, empty_lines)) {
      c->arm_after(first ? opts_.header_timeout : opts_.idle_timeout);
      auto [ec, n] = co_await c->stream.async_read_some(buf.prepare(4096), tuple_awaitable);
      c->disarm();
      if (ec) {
        co_return;  // idle timeout, EOF, reset, or drain: close quietly
      }
      buf.commit(n);
    }
    first = false;
    c->busy = true;

    recycle(req);
    bool keep_alive = true;
    simple_head head;
    if (parse_simple_head(std::string_view(static_cast<const char*>(buf.data().data()), buf.size()),
                          opts_.max_header_bytes, req, head)) {
      buf.consume(head.bytes);
      call_id_into(req, call_id);
      keep_alive = head.keep_alive;
      if (auto e = host_error(head.hosts, head.host_at, 11, req)) {
        co_await reject(*c, opts_, *e, call_id, req.header("origin"));
        co_return;
      }
      if (head.content_length > opts_.max_body_bytes) {
        auto e = too_large(opts_.max_body_bytes, head.content_length);
        co_await reject(*c, opts_, e, call_id, req.header("origin"));
        co_return;
      }
      // 3. The body: what came with the head, then the rest read straight into place.
      const auto len = static_cast<std::size_t>(head.content_length);
      if (buf.size() >= len) {  // the usual case: it came with the head
        req.body.assign(static_cast<const char*>(buf.data().data()), len);
        buf.consume(len);
      } else if (!co_await read_body(*c, buf, req.body, len, call_id, req.header("origin"))) {
        co_return;
      }
    } else if (!co_await read_with_parser(*c, buf, req, call_id, keep_alive)) {
      co_return;
    }

    // 4. Hand over to the handler.
    if (!req.target.empty() && req.target[0] != '/') {
      from_absolute_form(req);
    }
    if (auto q = req.target.find('?'); q != std::string::npos) {
      req.path.assign(req.target, 0, q);
      req.query.assign(req.target, q + 1);
    } else {
      simple::overwrite(req.path, req.target);
    }
    req.remote_address = remote;
    req.call_id = call_id;
    req.received_at = std::chrono::steady_clock::now();

    session_responder<Conn> resp(c, opts_, keep_alive, draining_, call_id);
    if (req.method == "HEAD") {
      resp.answer_head_only();
    }
    // A handler that throws (a bug: a JSON value of an unexpected type, say) still gets its
    // client an answer, a 500, instead of a connection closed without one; the connection
    // goes on serving (the request was read whole), unless the answer had already begun.
    bool threw = false;
    try {
      co_await handler_(req, resp);
    } catch (const std::exception& ex) {
      threw = true;
      spdlog::error("{} {} (call_id={}) ended by an exception: {}", req.method, req.path, call_id, ex.what());
    }
    resp.stop_watching();
    if (!resp.started() && !resp.gone()) {
      auto e = core::make_error(core::errc::internal,
                                threw ? "Internal error while handling the request" : "The handler produced no response");
      co_await resp.send(error_response(e));
    }
    if (!resp.access_taken()) {
      core::access_record rec;
      rec.method = req.method;
      rec.path = req.path;
      rec.status = resp.status();
      rec.model = resp.model();
      rec.key_redacted = resp.key();
      rec.call_id = call_id;
      rec.duration_ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - req.received_at).count();
      core::log_access(rec);
    }
    if (!resp.done() || resp.gone() || !keep_alive || draining_) {
      co_return;
    }
  }
}

server::server(net::any_io_executor ex, server_options opts, handler h)
    : impl_(std::make_shared<impl>(std::move(ex), std::move(opts), std::move(h))) {}

server::~server() {
  boost::system::error_code ignored;
  impl_->acceptor_.close(ignored);
}

void server::listen() {
  if (!impl_->opts_.tls_cert_file.empty() || !impl_->opts_.tls_key_file.empty()) {
    impl_->tls_ctx_ = make_tls_context(impl_->opts_.tls_cert_file, impl_->opts_.tls_key_file);
  }
  boost::system::error_code ec;
  if (impl_->opts_.listen_fd >= 0) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getsockname(impl_->opts_.listen_fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
      throw std::system_error(errno, std::system_category(), "the listening socket handed over is not usable");
    }
    impl_->acceptor_.assign(ss.ss_family == AF_INET6 ? tcp::v6() : tcp::v4(), impl_->opts_.listen_fd, ec);
    if (ec) {
      throw std::system_error(ec, "the listening socket handed over is not usable");
    }
    return;
  }
  auto addr = net::ip::make_address(impl_->opts_.host, ec);
  if (ec) {
    throw std::system_error(ec, "invalid --host '" + impl_->opts_.host + "'");
  }
  tcp::endpoint ep{addr, impl_->opts_.port};
  auto& a = impl_->acceptor_;
  a.open(ep.protocol(), ec);
  if (!ec) {
    a.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec && impl_->opts_.reuse_port) {
      const int on = 1;
      if (::setsockopt(a.native_handle(), SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) != 0) {
        ec.assign(errno, boost::system::system_category());
      }
    }
    a.bind(ep, ec);
  }
  if (!ec) {
    a.listen(net::socket_base::max_listen_connections, ec);
  }
  if (ec) {
    throw std::system_error(ec, "cannot listen on " + impl_->opts_.host + ":" + std::to_string(impl_->opts_.port));
  }
}

tcp::endpoint server::local_endpoint() const {
  boost::system::error_code ec;
  return impl_->acceptor_.local_endpoint(ec);
}

void server::start() {
  auto self = impl_;
  net::co_spawn(impl_->ex_, [self]() { return self->accept_loop(); }, [](std::exception_ptr e) {
    if (e) {
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        spdlog::error("accept loop ended: {}", ex.what());
      }
    }
  });
}

void server::drain(std::function<void()> done) {
  impl_->draining_ = true;
  impl_->on_drained_ = std::move(done);
  boost::system::error_code ignored;
  impl_->acceptor_.close(ignored);
  // Idle connections (waiting for a next request) close now; busy ones finish first.
  for (auto& [id, c] : impl_->conns_) {
    if (!c->busy) {
      c->cancel();
    }
  }
  impl_->maybe_drained();
}

void server::force_close() {
  boost::system::error_code ignored;
  for (auto& [id, c] : impl_->conns_) {
    c->socket().close(ignored);
  }
}

void server::use_tls(std::shared_ptr<net::ssl::context> ctx) { impl_->tls_ctx_ = std::move(ctx); }

bool server::tls() const { return impl_->tls_ctx_ != nullptr; }

std::string check_tls_files(const std::string& cert_file, const std::string& key_file) {
  if (cert_file.empty() != key_file.empty()) {
    return "TLS needs both ssl_certfile_path and ssl_keyfile_path (only " +
           std::string(cert_file.empty() ? "ssl_keyfile_path" : "ssl_certfile_path") + " is set)";
  }
  if (cert_file.empty()) {
    return {};
  }
  try {
    (void)make_tls_context(cert_file, key_file);
  } catch (const std::exception& e) {
    return e.what();
  }
  return {};
}

std::size_t server::active_connections() const { return impl_->conns_.size(); }

bool server::draining() const { return impl_->draining_; }

}  // namespace switchyard::http
