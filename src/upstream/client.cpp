// Upstream HTTP/1.1 client: DNS, connect, TLS, keep-alive pool, whole-body and
// streaming reads. Everything runs on the one io_context thread that owns the client.
//
// Timeouts: connect and the TLS handshake use beast::tcp_stream's expiry; a request's
// write and reads use the client's watchdog (core/watchdog.hpp: one coarse timer for
// every connection instead of a timer wait per operation), which cancels the socket's
// operations once the deadline passes; either way a stalled peer ends in a timeout.
// DNS cannot be cancelled (getaddrinfo runs on Asio's resolver thread), so the
// resolve is abandoned on a timer and its late completion only touches shared state.
//
// Pool: per scheme://host:port, newest idle connection reused first (LIFO), oldest
// evicted past max_idle_per_host, all dropped after idle_timeout (one sweep timer).
// While idle, each socket has an async_wait(wait_read): a close (or any unexpected
// byte) from the server makes it readable and it is dropped at once.
#include "switchyard/upstream/client.hpp"

#include "switchyard/core/coarse_clock.hpp"

#include "url.hpp"

#include "switchyard/core/watchdog.hpp"
#include "switchyard/http/simple_head.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <map>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <optional>
#include <stdexcept>
#include <unordered_map>

#ifndef SWITCHYARD_VERSION
#define SWITCHYARD_VERSION "0.0.0"
#endif

namespace switchyard::upstream {

namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = net::ssl;
using sys_error = boost::system::error_code;
using steady = std::chrono::steady_clock;

namespace detail {

namespace {

constexpr auto use_tuple = net::as_tuple(net::use_awaitable);
constexpr std::uint32_t header_limit = 64 * 1024;
constexpr std::size_t read_buffer_size = 16 * 1024;

// The response parser: Beast's HTTP/1.1 grammar (status line, fields, chunked coding,
// limits) with our own callbacks. Fields go straight into a lower-cased header_list
// and body bytes straight into `sink` (the caller's string): no basic_fields (one
// allocation per field), no copy of the head into an exchange, no 16 KB bounce buffer
// per exchange: each of those was a cost paid on every request.
class response_parser final : public http::basic_parser<false> {
 public:
  int status = 0;
  header_list headers;
  std::string* sink = nullptr;  // where body bytes go (set before every read)
  std::size_t limit = static_cast<std::size_t>(-1);  // bytes `sink` may hold
  bool over_limit = false;

 private:
  void on_request_impl(http::verb, beast::string_view, beast::string_view, int, sys_error&) override {}
  void on_response_impl(int code, beast::string_view, int, sys_error&) override {
    status = code;
    headers.clear();
    headers.reserve(16);  // one allocation, not one per doubling
  }
  void on_field_impl(http::field, beast::string_view name, beast::string_view value, sys_error&) override {
    auto& h = headers.emplace_back(std::string(name.data(), name.size()), std::string(value.data(), value.size()));
    for (auto& c : h.first) {
      if (c >= 'A' && c <= 'Z') {
        c = static_cast<char>(c - 'A' + 'a');
      }
    }
  }
  void on_header_impl(sys_error&) override {}
  void on_body_init_impl(const boost::optional<std::uint64_t>&, sys_error&) override {}
  std::size_t on_body_impl(beast::string_view body, sys_error& ec) override { return take(body, ec); }
  void on_chunk_header_impl(std::uint64_t, beast::string_view, sys_error&) override {}
  std::size_t on_chunk_body_impl(std::uint64_t, beast::string_view body, sys_error& ec) override {
    return take(body, ec);
  }
  void on_finish_impl(sys_error&) override {}

  std::size_t take(beast::string_view body, sys_error& ec) {
    if (sink == nullptr) {
      ec = http::error::need_buffer;  // nowhere to put it (not expected: every read sets sink)
      return 0;
    }
    if (body.size() > limit - std::min(limit, sink->size())) {
      over_limit = true;
      ec = http::error::body_limit;
      return 0;
    }
    sink->append(body.data(), body.size());
    return body.size();
  }
};
using parser_type = response_parser;

// ASCII case-insensitive (`lower` lower-case); header names and config words.
bool iequals(std::string_view a, std::string_view lower) { return switchyard::http::simple::iequals(a, lower); }

bool is_token(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return switchyard::http::simple::is_tchar(static_cast<unsigned char>(c));
  });
}

bool is_field_value(std::string_view s) {
  return std::none_of(s.begin(), s.end(), [](char c) { return c == '\r' || c == '\n' || c == '\0'; });
}

long long ms(std::chrono::milliseconds d) { return static_cast<long long>(d.count()); }

// A peer that went away (as opposed to one that spoke nonsense).
bool is_closed_by_peer(const sys_error& ec) {
  return ec == http::error::end_of_stream || ec == http::error::partial_message || ec == net::error::eof ||
         ec == net::error::connection_reset || ec == net::error::broken_pipe ||
         ec == net::error::connection_aborted || ec == ssl::error::stream_truncated;
}

bool is_http_parse_error(const sys_error& ec) {
  return ec.category() == http::make_error_code(http::error::bad_version).category();
}

core::error unreachable(std::string message, bool retryable = true) {
  auto e = core::make_error(core::errc::upstream_unreachable, std::move(message));
  e.retryable = retryable;
  return e;
}

core::error timed_out(std::string message) { return core::make_error(core::errc::upstream_timeout, std::move(message)); }

// A call its caller gave up on (request::cancel): not the provider's fault, never retried.
core::error cancelled_error(const std::string& where) { return unreachable(where + ": request cancelled", false); }

bool cancelled(const request& req) { return req.cancel != nullptr && req.cancel->requested(); }

void unbind_cancel(request& req) {
  if (req.cancel != nullptr) {
    req.cancel->unbind();
  }
}

}  // namespace

// One TCP (optionally TLS) connection to an upstream plus its read buffer.
struct connection final : core::watched {
  connection(const net::any_io_executor& ex, std::shared_ptr<ssl::context> ctx, std::string key_, std::uint64_t id_)
      : key(std::move(key_)), id(id_), tls_ctx(std::move(ctx)) {
    if (tls_ctx) {
      tls.emplace(ex, *tls_ctx);
    } else {
      plain.emplace(ex);
    }
  }
  ~connection() { close(); }
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  beast::tcp_stream& lowest() { return tls ? tls->next_layer() : *plain; }

  // The watchdog's deadline passed: pending operations complete with operation_aborted
  // (callers see steady::now() >= their deadline: a timeout).
  void expired() override {
    sys_error ec;
    lowest().socket().cancel(ec);
  }

  void close() {
    auto& s = lowest().socket();
    if (s.is_open()) {
      sys_error ec;
      s.shutdown(tcp::socket::shutdown_both, ec);
      lowest().close();
    }
  }

  // f(stream) for whichever stream this connection uses; both must return the same type.
  template <class F>
  auto visit(F&& f) {
    if (tls) {
      return f(*tls);
    }
    return f(*plain);
  }

  std::string key;
  std::uint64_t id;
  bool reused = false;
  std::shared_ptr<ssl::context> tls_ctx;  // declared before tls: outlives the SSL object
  std::optional<beast::tcp_stream> plain;
  std::optional<ssl::stream<beast::tcp_stream>> tls;
  beast::flat_buffer buffer;
};

// While a call waits on `c` (its write, its response head), cancel() stops it: the
// pending operation completes at once with operation_aborted. Unbound again right after
// each wait, before the connection can be pooled or destroyed.
namespace {
void bind_cancel(request& req, connection& c) {
  if (req.cancel != nullptr) {
    req.cancel->bind(&c, [](void* p) { static_cast<connection*>(p)->expired(); });
  }
}
}  // namespace

class exchange;

class client_core : public std::enable_shared_from_this<client_core> {
 public:
  client_core(net::any_io_executor ex, client_options opts);
  client_core(const client_core&) = delete;
  client_core& operator=(const client_core&) = delete;

  net::awaitable<core::result<response>> send(request req);
  net::awaitable<core::result<std::unique_ptr<body_stream>>> open(request req);
  std::size_t idle_connections() const { return idle_count_; }

  // A connection whose response was read to the end and may be reused.
  void release(std::unique_ptr<connection> c);
  void shutdown();
  void abort_all() {
    shutdown();
    dog_->expire_all();
  }

 private:
  struct idle_entry {
    std::unique_ptr<connection> conn;
    steady::time_point since;
    bool watched = false;  // an async_wait(wait_read) is pending on it
  };

  // `fast` (send() only): when the whole response came in the first read as a plain
  // head with a Content-Length, it is parsed into *fast without Beast, the connection
  // goes back to the pool, and the result is a null exchange.
  net::awaitable<core::result<std::unique_ptr<exchange>>> start(request& req, const url_parts& u,
                                                                 steady::time_point deadline,
                                                                 response* fast = nullptr);
  net::awaitable<core::result<std::unique_ptr<connection>>> connect(const url_parts& u,
                                                                     steady::time_point deadline,
                                                                     std::chrono::milliseconds budget);
  std::unique_ptr<connection> take_idle(const std::string& key);
  void watch_idle(connection& c);
  void drop_idle(const std::string& key, std::uint64_t id);
  void arm_sweep();
  void sweep();
  void arm_watch();
  // parse_url, memoised: deployments use a handful of URLs, parsed once each instead of
  // once per request.
  std::shared_ptr<const url_parts> url_of(const std::string& url, std::string& why);

  net::any_io_executor ex_;
  client_options opts_;
  std::shared_ptr<ssl::context> tls_ctx_;  // made lazily, on the first https connection
  // Origins (scheme://host:port) with their own ssl_verify: their context.
  std::unordered_map<std::string, std::shared_ptr<ssl::context>> origin_ctx_;
  std::unordered_map<std::string, std::deque<idle_entry>> idle_;
  std::size_t idle_count_ = 0;
  net::steady_timer sweep_timer_;
  bool sweep_armed_ = false;
  // Idle connections are watched for a server-side close only once they have been idle
  // for watch_delay: a connection reused at once (the common case under load) never
  // pays the async_wait's epoll_ctl and its cancellation on every request.
  static constexpr std::chrono::milliseconds watch_delay{200};
  net::steady_timer watch_timer_;
  bool watch_armed_ = false;
  std::unordered_map<std::string, std::shared_ptr<const url_parts>> url_cache_;
  const std::pair<const std::string, std::shared_ptr<const url_parts>>* last_url_ = nullptr;  // into url_cache_
  std::shared_ptr<core::watchdog> dog_;
  bool closed_ = false;
  std::uint64_t next_id_ = 1;
};

// A response whose head has arrived; the body is read piece by piece.
class exchange final : public body_stream {
 public:
  exchange(std::weak_ptr<client_core> owner, std::unique_ptr<connection> conn, std::unique_ptr<parser_type> parser,
           std::string where, std::chrono::milliseconds timeout)
      : owner_(std::move(owner)),
        conn_(std::move(conn)),
        parser_(std::move(parser)),
        where_(std::move(where)),
        timeout_(timeout) {
    if (parser_->is_done()) {
      finish();  // no body (204, 304, HEAD, Content-Length: 0)
    }
  }

  ~exchange() override {
    // Not read to the end (or cancelled): the connection is closed, never pooled.
    conn_.reset();
  }

  int status() const override { return parser_->status; }
  const header_list& headers() const override { return parser_->headers; }
  header_list take_headers() { return std::move(parser_->headers); }

  net::awaitable<core::result<std::string>> read_some() override {
    std::string piece;
    auto r = co_await read_into(piece, core::coarse_deadline(timeout_), timeout_);
    if (!r) {
      co_return r.error();
    }
    co_return piece;
  }

  bool complete() const override { return done_ || (!failed_ && !cancelled_ && parser_ && parser_->is_done()); }

  std::string take_buffered() override {
    std::string out;
    if (done_ || failed_ || cancelled_ || !conn_ || reading_) {
      return out;
    }
    parser_->sink = &out;
    parser_->limit = static_cast<std::size_t>(-1);
    while (conn_->buffer.size() != 0 && !parser_->is_done()) {
      sys_error ec;
      const std::size_t used = parser_->put(conn_->buffer.data(), ec);
      if (ec) {
        break;  // need_more, or an error the next read_some() reports (it parses these bytes again)
      }
      conn_->buffer.consume(used);
      if (used == 0) {
        break;
      }
    }
    parser_->sink = nullptr;
    if (parser_->is_done()) {
      finish();
    }
    return out;
  }

  void cancel() override {
    cancelled_ = true;
    if (!conn_) {
      return;
    }
    conn_->close();  // a read in flight completes now with operation_aborted
    if (!reading_) {
      conn_.reset();
    }
  }

  std::optional<std::uint64_t> content_length() const {
    auto cl = parser_->content_length();
    return cl ? std::optional<std::uint64_t>(*cl) : std::nullopt;
  }

  // Appends body bytes to `out` until at least one arrived or the body is complete,
  // bounded by `deadline`; `limit`: the size `out` may reach (over it: body_too_large()).
  // Returns false (as a value) when the body is complete and nothing was appended.
  net::awaitable<core::result<bool>> read_into(std::string& out, steady::time_point deadline,
                                               std::chrono::milliseconds budget,
                                               std::size_t limit = static_cast<std::size_t>(-1)) {
    if (cancelled_) {
      co_return unreachable(where_ + ": request cancelled", false);
    }
    if (failed_) {
      co_return *failed_;
    }
    if (done_) {
      co_return false;
    }
    const std::size_t before = out.size();
    for (;;) {
      if (parser_->is_done()) {
        finish();
        co_return out.size() > before;
      }
      parser_->sink = &out;
      parser_->limit = limit;
      conn_->arm(deadline);
      reading_ = true;
      auto [ec, n] = co_await conn_->visit(
          [&](auto& s) { return http::async_read_some(s, conn_->buffer, *parser_, use_tuple); });
      reading_ = false;
      parser_->sink = nullptr;
      (void)n;
      const std::size_t got = out.size() - before;
      if (cancelled_) {
        conn_.reset();
        co_return unreachable(where_ + ": request cancelled", false);
      }
      if (ec == ssl::error::stream_truncated && parser_->is_header_done() && parser_->need_eof()) {
        // Body delimited by the connection's end; many TLS servers skip close_notify.
        parser_->put_eof(ec);
      }
      if (ec) {
        core::error err;
        if (parser_->over_limit) {
          err = core::make_error(core::errc::upstream_error, "response body too large");
          body_too_large_ = true;
        } else if (ec == beast::error::timeout || steady::now() >= deadline) {
          err = timed_out(where_ + ": no response data within " + std::to_string(ms(budget)) + " ms");
        } else if (is_closed_by_peer(ec) || ec == net::error::operation_aborted) {
          err = unreachable(where_ + ": connection broken mid-body (" + ec.message() + ")");
        } else if (is_http_parse_error(ec)) {
          err = unreachable(where_ + ": malformed response body (" + ec.message() + ")");
        } else {
          err = unreachable(where_ + ": reading the response body failed (" + ec.message() + ")");
        }
        conn_.reset();
        failed_ = err;
        if (got > 0 && !body_too_large_) {
          co_return true;  // hand over what did arrive; the error comes next
        }
        co_return err;
      }
      conn_->disarm();
      if (got > 0) {
        if (parser_->is_done()) {
          finish();
        }
        co_return true;
      }
      // Progress without body bytes (a chunk header): read again within the same deadline.
    }
  }

  bool body_too_large() const { return body_too_large_; }

 private:
  void finish() {
    done_ = true;
    if (!conn_) {
      return;
    }
    auto owner = owner_.lock();
    if (owner && parser_->keep_alive()) {
      owner->release(std::move(conn_));
    } else {
      conn_.reset();
    }
  }

  std::weak_ptr<client_core> owner_;
  std::unique_ptr<connection> conn_;
  std::unique_ptr<parser_type> parser_;
  std::string where_;
  std::chrono::milliseconds timeout_;
  bool done_ = false;
  bool cancelled_ = false;
  bool reading_ = false;
  bool body_too_large_ = false;
  std::optional<core::error> failed_;
};

namespace {

bool insecure_from_env() {
  const char* v = std::getenv("SWITCHYARD_INSECURE_TLS");
  return v != nullptr && (std::string_view(v) == "1" || iequals(v, "true") || iequals(v, "yes"));
}

// `scope`: what the policy applies to, for the warning ("every upstream", an origin).
std::shared_ptr<ssl::context> make_tls_context(const client_options& opts, const std::string& scope = "every upstream") {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3);
  SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION);
  static constexpr unsigned char alpn[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  SSL_CTX_set_alpn_protos(ctx->native_handle(), alpn, sizeof(alpn));
  bool verify = opts.verify_tls && !insecure_from_env();
  if (!verify) {
    spdlog::warn("upstream: TLS certificate verification is OFF for {} ({})", scope,
                 opts.verify_tls ? "SWITCHYARD_INSECURE_TLS" : "ssl_verify: false");
    ctx->set_verify_mode(ssl::verify_none);
    return ctx;
  }
  ctx->set_verify_mode(ssl::verify_peer);
  sys_error ec;
  if (!opts.ca_bundle.empty()) {
    // As httpx's verify=<path>: this bundle instead of the system store.
    ctx->load_verify_file(opts.ca_bundle, ec);
    if (ec) {
      throw std::runtime_error("upstream: cannot load the CA bundle (ssl_verify) '" + opts.ca_bundle +
                               "': " + ec.message());
    }
    return ctx;
  }
  ctx->set_default_verify_paths(ec);
  if (ec) {
    spdlog::warn("upstream: cannot load the system CA store: {}", ec.message());
  }
  if (!opts.ca_file.empty()) {
    ctx->load_verify_file(opts.ca_file, ec);
    if (ec) {
      throw std::runtime_error("upstream: cannot load CA file '" + opts.ca_file + "': " + ec.message());
    }
  }
  return ctx;
}

// The request head ("METHOD target HTTP/1.1", the caller's headers minus the ones the
// client sets itself, Host, User-Agent, Content-Length, blank line), written straight into
// one string (no Beast message, no per-field allocations). `head_request`: the
// method is HEAD (the response has no body). Error: `why` set.
struct built_request {
  std::string head;
  bool head_request = false;
};

built_request build_request(const request& req, const url_parts& u, std::string& why) {
  built_request out;
  auto verb = http::string_to_verb(req.method);
  if (verb == http::verb::unknown && !is_token(req.method)) {
    why = "invalid HTTP method '" + req.method + "'";
    return out;
  }
  out.head_request = verb == http::verb::head;
  std::string& h = out.head;
  h.reserve(256 + u.target.size());
  h += req.method;
  h += ' ';
  h += u.target;
  h += " HTTP/1.1\r\n";
  bool has_user_agent = false;
  for (const auto& [name, value] : req.headers) {
    if (!is_token(name) || !is_field_value(value)) {
      why = "invalid request header '" + name + "' (bad name, or CR/LF/NUL in the value)";
      return out;
    }
    // Set by the client itself (or hop-by-hop, meaningless to forward).
    if (iequals(name, "host") || iequals(name, "content-length") || iequals(name, "connection") ||
        iequals(name, "transfer-encoding") || iequals(name, "keep-alive")) {
      continue;
    }
    if (iequals(name, "user-agent")) {
      has_user_agent = true;
    }
    h += name;
    h += ": ";
    h += value;
    h += "\r\n";
  }
  h += "Host: ";
  h += u.host_header;
  h += "\r\n";
  if (!has_user_agent) {
    h += "User-Agent: switchyard/" SWITCHYARD_VERSION "\r\n";
  }
  const bool body_method = verb == http::verb::post || verb == http::verb::put || verb == http::verb::patch;
  std::size_t length = req.body.size();
  if (!req.body_parts.empty()) {
    length = 0;
    for (auto part : req.body_parts) {
      length += part.size();
    }
  }
  if (!req.body_parts.empty() || !req.body.empty() || body_method) {
    h += "Content-Length: ";
    h += std::to_string(length);
    h += "\r\n";
  }
  h += "\r\n";
  return out;
}

// A whole plain response in `in`: "HTTP/1.1 NNN reason", plain fields with one
// Content-Length and no Transfer-Encoding, Connection absent/keep-alive/close, status
// 200-599 other than 204/304, and the whole body present. Anything else: false, and
// Beast's parser reads the response as before (http/simple_head.hpp).
struct simple_response {
  std::size_t head_bytes = 0;
  std::uint64_t length = 0;
  int status = 0;
  bool keep_alive = true;
};

bool parse_simple_response(std::string_view in, header_list& headers, simple_response& out) {
  namespace simple = switchyard::http::simple;
  const std::string_view window = in.substr(0, std::min<std::size_t>(in.size(), header_limit));
  const auto end = window.find("\r\n\r\n");
  if (end == std::string_view::npos || end < 12 || in.substr(0, 9) != "HTTP/1.1 ") {
    return false;
  }
  const char* p = in.data() + 9;
  const char* const stop = in.data() + end + 2;
  if (p[0] < '1' || p[0] > '5' || p[1] < '0' || p[1] > '9' || p[2] < '0' || p[2] > '9') {
    return false;
  }
  out.status = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
  if (out.status < 200 || out.status == 204 || out.status == 304) {
    return false;
  }
  p += 3;
  if (*p == ' ') {
    while (p < stop && *p != '\r') {  // reason phrase
      const auto ch = static_cast<unsigned char>(*p);
      if ((ch < 0x20 && ch != '\t') || ch == 0x7F) {
        return false;
      }
      ++p;
    }
  }
  if (p >= stop || p[0] != '\r' || p[1] != '\n') {
    return false;
  }
  p += 2;
  headers.clear();
  headers.reserve(16);
  simple::framing fr;
  const bool plain = simple::scan_fields(p, stop, [&](std::string_view name, std::string_view value) {
    if (!fr.take(name, value)) {
      return false;
    }
    simple::append_lowered(headers, name, value);
    return true;
  });
  out.head_bytes = end + 4;
  out.length = fr.length;
  out.keep_alive = fr.keep_alive;
  return plain && fr.have_length && in.size() - out.head_bytes >= out.length;
}

// Why a TLS handshake failed, with OpenSSL's verification verdict when there is one.
std::string tls_failure(ssl::stream<beast::tcp_stream>& s, const sys_error& ec) {
  std::string msg = ec.message();
  long v = SSL_get_verify_result(s.native_handle());
  if (v != X509_V_OK) {
    msg += " (";
    msg += X509_verify_cert_error_string(v);
    msg += "; the upstream's certificate is not trusted: set ssl_verify to its CA bundle, or false, on the "
           "deployment or in litellm_settings)";
  }
  return msg;
}

struct resolve_state {
  explicit resolve_state(const net::any_io_executor& ex) : resolver(ex), timer(ex) {}
  tcp::resolver resolver;
  net::steady_timer timer;
  bool done = false;
  sys_error ec;
  tcp::resolver::results_type results;
};

}  // namespace

client_core::client_core(net::any_io_executor ex, client_options opts)
    : ex_(std::move(ex)), opts_(std::move(opts)), sweep_timer_(ex_), watch_timer_(ex_), dog_(core::watchdog::make(ex_)) {
  // Eager when cheap or when it can fail: without verification no CA store is loaded
  // (and the warning belongs to startup); a bad CA file is a startup error, not a
  // request error. Otherwise made on the first https connection (see connect()).
  if (!opts_.ca_file.empty() || !opts_.ca_bundle.empty() || !opts_.verify_tls || insecure_from_env()) {
    tls_ctx_ = make_tls_context(opts_);
  }
  // Per-origin policies: one context per distinct policy, made now (a bad bundle is a
  // startup error, and the warning for verification turned off belongs to startup).
  std::map<std::pair<bool, std::string>, std::shared_ptr<ssl::context>> by_policy;
  std::map<std::string, std::pair<bool, std::string>> origin_policy;
  for (const auto& [url, trust] : opts_.trust_by_url) {
    std::string why;
    auto u = parse_url(url, why);
    if (!u || !u->tls) {
      continue;  // plain http: nothing to verify
    }
    const std::pair<bool, std::string> policy{trust.verify, trust.ca_bundle};
    if (auto seen = origin_policy.find(u->pool_key); seen != origin_policy.end()) {
      if (seen->second != policy) {
        spdlog::warn("upstream {}: deployments disagree on ssl_verify; the first one's applies to the origin",
                     u->pool_key);
      }
      continue;  // connections are pooled per origin: one policy per origin
    }
    origin_policy.emplace(u->pool_key, policy);
    auto& ctx = by_policy[policy];
    if (!ctx) {
      client_options o = opts_;
      o.verify_tls = trust.verify;
      o.ca_bundle = trust.ca_bundle;
      ctx = make_tls_context(o, u->pool_key);
    }
    origin_ctx_.emplace(u->pool_key, ctx);
  }
}

void client_core::shutdown() {
  closed_ = true;
  idle_.clear();
  idle_count_ = 0;
  sweep_timer_.cancel();
  watch_timer_.cancel();
  dog_->stop();
}

net::awaitable<core::result<std::unique_ptr<connection>>> client_core::connect(const url_parts& u,
                                                                               steady::time_point deadline,
                                                                               std::chrono::milliseconds budget) {
  auto self = shared_from_this();
  const std::string& where = u.pool_key;

  // DNS, abandoned (not cancelled: getaddrinfo cannot be) when the deadline passes.
  auto st = std::make_shared<resolve_state>(ex_);
  st->timer.expires_at(deadline);
  st->resolver.async_resolve(u.host, std::to_string(u.port),
                             [st](const sys_error& ec, tcp::resolver::results_type results) {
                               st->done = true;
                               st->ec = ec;
                               st->results = std::move(results);
                               st->timer.cancel();
                             });
  co_await st->timer.async_wait(use_tuple);
  if (!st->done) {
    st->resolver.cancel();
    co_return timed_out(where + ": resolving '" + u.host + "' took longer than " + std::to_string(ms(budget)) +
                        " ms");
  }
  if (st->ec) {
    co_return unreachable(where + ": cannot resolve host '" + u.host + "' (" + st->ec.message() + ")");
  }

  std::shared_ptr<ssl::context> ctx;
  if (u.tls && !origin_ctx_.empty()) {
    if (auto it = origin_ctx_.find(u.pool_key); it != origin_ctx_.end()) {
      ctx = it->second;
    }
  }
  if (u.tls && !ctx && !tls_ctx_) {
    // Made on the first https upstream: loading the system CA store costs ~20 ms of CPU
    // and a few MB, which plain-http deployments (Ollama, vLLM, tests) never need.
    try {
      tls_ctx_ = make_tls_context(opts_);
    } catch (const std::exception& e) {
      co_return unreachable(where + ": TLS setup failed (" + e.what() + ")", false);
    }
  }
  if (u.tls && !ctx) {
    ctx = tls_ctx_;
  }
  auto conn = std::make_unique<connection>(ex_, u.tls ? ctx : nullptr, u.pool_key, next_id_++);
  conn->register_with(dog_);
  // Beast reads at most the buffer's free capacity per read, and a fresh flat_buffer has
  // 512 bytes: a 5 KB streamed answer took ten reads and ten writes to the client.
  conn->buffer.reserve(read_buffer_size);
  conn->lowest().expires_at(deadline);
  auto [cec, ep] = co_await conn->lowest().async_connect(st->results, use_tuple);
  (void)ep;
  if (cec) {
    if (cec == beast::error::timeout || steady::now() >= deadline) {
      co_return timed_out(where + ": connect timed out after " + std::to_string(ms(budget)) + " ms");
    }
    co_return unreachable(where + ": cannot connect (" + cec.message() + ")");
  }
  {
    sys_error ec;
    conn->lowest().socket().set_option(tcp::no_delay(true), ec);
  }

  if (u.tls) {
    auto& s = *conn->tls;
    sys_error ip_ec;
    net::ip::make_address(u.host, ip_ec);
    if (ip_ec) {  // SNI carries DNS names only
      if (SSL_set_tlsext_host_name(s.native_handle(), u.host.c_str()) != 1) {
        co_return unreachable(where + ": cannot set TLS SNI for '" + u.host + "'", false);
      }
    }
    if (SSL_CTX_get_verify_mode(ctx->native_handle()) != SSL_VERIFY_NONE) {
      s.set_verify_callback(
          [check = ssl::host_name_verification(u.host)](bool preverified, ssl::verify_context& vctx) {
            bool ok = check(preverified, vctx);
            if (!ok && preverified) {
              // host_name_verification leaves no reason; name it for the error message.
              X509_STORE_CTX_set_error(vctx.native_handle(), X509_V_ERR_HOSTNAME_MISMATCH);
            }
            return ok;
          });
    }
    conn->lowest().expires_at(deadline);
    auto [hec] = co_await s.async_handshake(ssl::stream_base::client, use_tuple);
    if (hec) {
      if (hec == beast::error::timeout || steady::now() >= deadline) {
        co_return timed_out(where + ": TLS handshake timed out after " + std::to_string(ms(budget)) + " ms");
      }
      co_return unreachable(where + ": TLS handshake failed: " + tls_failure(s, hec));
    }
  }
  conn->lowest().expires_never();
  co_return conn;
}

net::awaitable<core::result<std::unique_ptr<exchange>>> client_core::start(request& req, const url_parts& u,
                                                                            steady::time_point deadline,
                                                                            response* fast) {
  auto self = shared_from_this();
  const std::string& where = u.pool_key;
  std::string why;
  auto built = build_request(req, u, why);
  if (!why.empty()) {
    co_return core::make_error(core::errc::internal, "upstream request to " + where + ": " + why);
  }
  const bool head_request = built.head_request;
  // Head and body in one writev; a large body as the caller's pieces (never copied).
  std::vector<net::const_buffer> wire;
  wire.reserve(1 + std::max<std::size_t>(1, req.body_parts.size()));
  wire.push_back(net::buffer(built.head));
  if (req.body_parts.empty()) {
    wire.push_back(net::buffer(req.body));
  } else {
    for (auto part : req.body_parts) {
      wire.push_back(net::buffer(part.data(), part.size()));
    }
  }

  for (int attempt = 0;; ++attempt) {
    std::unique_ptr<connection> conn;
    if (attempt == 0) {
      conn = take_idle(u.pool_key);
    }
    if (!conn) {
      auto connect_deadline = std::min(deadline, steady::now() + req.connect_timeout);
      auto budget = std::min(req.connect_timeout, req.timeout);
      auto c = co_await connect(u, connect_deadline, budget);
      if (!c) {
        co_return c.error();
      }
      conn = std::move(*c);
    }
    const bool reused = conn->reused;
    if (cancelled(req)) {
      co_return cancelled_error(where);
    }

    conn->arm(deadline);  // the write and the response head
    bind_cancel(req, *conn);
    auto [wec, wn] = co_await conn->visit([&](auto& s) { return net::async_write(s, wire, core::transfer_whole{}, use_tuple); });
    (void)wn;
    unbind_cancel(req);
    if (cancelled(req)) {
      co_return cancelled_error(where);
    }
    if (wec) {
      bool timeout = wec == beast::error::timeout || steady::now() >= deadline;
      conn.reset();
      if (reused && !timeout) {
        spdlog::debug("upstream {}: pooled connection was closed by the server (write: {}); retrying once",
                      where, wec.message());
        continue;
      }
      if (timeout) {
        co_return timed_out(where + ": sending the request timed out after " + std::to_string(ms(req.timeout)) +
                            " ms");
      }
      co_return unreachable(where + ": sending the request failed (" + wec.message() + ")");
    }

    std::unique_ptr<parser_type> parser;
    sys_error rec;
    bool got_interim = false;
    // The common answer, whole in the first read: parsed without Beast (http/simple_head.hpp),
    // which costs less than Beast's parser and its buffers.
    if (fast != nullptr && !head_request && conn->buffer.size() == 0) {
      bind_cancel(req, *conn);
      auto [ec, n] = co_await conn->visit(
          [&](auto& s) { return s.async_read_some(conn->buffer.prepare(read_buffer_size), use_tuple); });
      unbind_cancel(req);
      if (cancelled(req)) {
        co_return cancelled_error(where);
      }
      rec = ec;
      if (!ec) {
        conn->buffer.commit(n);
        simple_response sr;
        const std::string_view in(static_cast<const char*>(conn->buffer.data().data()), conn->buffer.size());
        if (parse_simple_response(in, fast->headers, sr) && sr.length <= opts_.max_response_bytes) {
          fast->status = sr.status;
          fast->body.assign(in.substr(sr.head_bytes, static_cast<std::size_t>(sr.length)));
          conn->buffer.consume(sr.head_bytes + static_cast<std::size_t>(sr.length));
          conn->disarm();
          if (sr.keep_alive) {
            release(std::move(conn));
          }
          co_return std::unique_ptr<exchange>{};
        }
        fast->headers.clear();
      }
    }
    // Response head; interim 1xx responses (other than 101) are skipped.
    while (!rec) {
      parser = std::make_unique<parser_type>();
      parser->header_limit(header_limit);
      parser->body_limit(boost::none);  // send() enforces max_response_bytes itself
      if (head_request) {
        parser->skip(true);
      }
      bind_cancel(req, *conn);
      auto [ec, n] = co_await conn->visit(
          [&](auto& s) { return http::async_read_header(s, conn->buffer, *parser, use_tuple); });
      (void)n;
      unbind_cancel(req);
      if (cancelled(req)) {
        co_return cancelled_error(where);
      }
      rec = ec;
      if (rec) {
        break;
      }
      int status = parser->status;
      if (status >= 100 && status < 200 && status != 101) {
        got_interim = true;
        continue;
      }
      break;
    }
    if (rec) {
      bool timeout = rec == beast::error::timeout || steady::now() >= deadline;
      bool nothing_arrived = parser ? (!parser->got_some() && !got_interim) : conn->buffer.size() == 0;
      conn.reset();
      if (timeout) {
        co_return timed_out(where + ": no response within " + std::to_string(ms(req.timeout)) + " ms");
      }
      if (reused && nothing_arrived && is_closed_by_peer(rec)) {
        spdlog::debug("upstream {}: pooled connection was closed by the server ({}); retrying once", where,
                      rec.message());
        continue;
      }
      if (is_closed_by_peer(rec)) {
        co_return unreachable(where + ": connection closed before the response head (" + rec.message() + ")");
      }
      if (is_http_parse_error(rec)) {
        co_return unreachable(where + ": malformed response (" + rec.message() + ")");
      }
      co_return unreachable(where + ": reading the response failed (" + rec.message() + ")");
    }
    conn->disarm();
    co_return std::make_unique<exchange>(weak_from_this(), std::move(conn), std::move(parser), where, req.timeout);
  }
}

net::awaitable<core::result<response>> client_core::send(request req) {
  auto self = shared_from_this();
  auto deadline = core::coarse_deadline(req.timeout);
  std::string why;
  auto u = url_of(req.url, why);
  if (!u) {
    co_return unreachable("invalid upstream URL '" + req.url + "': " + why, false);
  }
  if (closed_) {
    co_return unreachable("the gateway is stopping", false);
  }
  response fast;
  auto started = co_await start(req, *u, deadline, &fast);
  if (!started) {
    co_return started.error();
  }
  if (!*started) {
    co_return fast;  // answered in the first read
  }
  auto& x = **started;
  auto too_large = [&] {
    auto e = core::make_error(core::errc::upstream_error, u->pool_key + ": response body exceeds max_response_bytes (" +
                                                              std::to_string(opts_.max_response_bytes) + ")");
    e.status = 502;
    e.retryable = false;
    return e;
  };
  response r;
  r.status = x.status();
  r.headers = x.take_headers();
  if (auto cl = x.content_length()) {
    if (*cl > opts_.max_response_bytes) {
      x.cancel();
      co_return too_large();
    }
    r.body.reserve(static_cast<std::size_t>(*cl));
  }
  for (;;) {
    if (req.cancel != nullptr) {
      req.cancel->bind(&x, [](void* p) { static_cast<exchange*>(p)->cancel(); });
    }
    auto more = co_await x.read_into(r.body, deadline, req.timeout, opts_.max_response_bytes);
    unbind_cancel(req);
    if (!more) {
      if (x.body_too_large()) {
        co_return too_large();
      }
      co_return more.error();
    }
    if (!*more) {
      break;
    }
  }
  co_return r;
}

net::awaitable<core::result<std::unique_ptr<body_stream>>> client_core::open(request req) {
  auto self = shared_from_this();
  auto deadline = core::coarse_deadline(req.timeout);
  std::string why;
  auto u = url_of(req.url, why);
  if (!u) {
    co_return unreachable("invalid upstream URL '" + req.url + "': " + why, false);
  }
  if (closed_) {
    co_return unreachable("the gateway is stopping", false);
  }
  auto started = co_await start(req, *u, deadline);
  if (!started) {
    co_return started.error();
  }
  std::unique_ptr<body_stream> out = std::move(*started);
  co_return out;
}

std::unique_ptr<connection> client_core::take_idle(const std::string& key) {
  auto it = idle_.find(key);
  if (it == idle_.end()) {
    return nullptr;
  }
  auto& q = it->second;
  auto now = core::coarse_now();  // idle times are coarse (release(), sweep())
  std::unique_ptr<connection> found;
  while (!q.empty() && !found) {
    auto e = std::move(q.back());
    q.pop_back();
    --idle_count_;
    sys_error ec;
    if (e.watched) {
      e.conn->lowest().socket().cancel(ec);  // ends the idle watch (its handler sees operation_aborted)
    }
    if (now - e.since < opts_.idle_timeout && e.conn->lowest().socket().is_open()) {
      found = std::move(e.conn);
    }
  }
  if (q.empty()) {
    idle_.erase(it);
  }
  if (found) {
    found->reused = true;
  }
  return found;
}

void client_core::release(std::unique_ptr<connection> c) {
  if (closed_ || opts_.max_idle_per_host == 0 || c->buffer.size() != 0 || !c->lowest().socket().is_open()) {
    return;  // leftover bytes after a complete response mean the stream is out of step
  }
  c->disarm();
  auto& q = idle_[c->key];
  while (q.size() >= opts_.max_idle_per_host) {
    q.pop_front();
    --idle_count_;
  }
  q.push_back(idle_entry{std::move(c), core::coarse_now(), false});
  ++idle_count_;
  arm_sweep();
  arm_watch();
}

std::shared_ptr<const url_parts> client_core::url_of(const std::string& url, std::string& why) {
  if (last_url_ && url == last_url_->first) {
    return last_url_->second;  // the same deployment again: no hashing
  }
  if (auto it = url_cache_.find(url); it != url_cache_.end()) {
    last_url_ = &*it;
    return it->second;
  }
  auto parsed = parse_url(url, why);
  if (!parsed) {
    return nullptr;
  }
  if (url_cache_.size() >= 1024) {
    url_cache_.clear();  // bounded: per-request URLs (unusual) must not grow it forever
    last_url_ = nullptr;
  }
  auto p = std::make_shared<const url_parts>(std::move(*parsed));
  last_url_ = &*url_cache_.emplace(url, p).first;
  return p;
}

void client_core::arm_watch() {
  if (watch_armed_ || closed_ || idle_count_ == 0) {
    return;
  }
  watch_armed_ = true;
  watch_timer_.expires_after(watch_delay);
  watch_timer_.async_wait([weak = weak_from_this()](const sys_error& ec) {
    auto self = weak.lock();
    if (!self) {
      return;
    }
    self->watch_armed_ = false;
    if (ec || self->closed_) {
      return;
    }
    const auto cutoff = core::coarse_now() - watch_delay;
    bool pending = false;
    for (auto& [key, q] : self->idle_) {
      for (auto& e : q) {
        if (e.watched) {
          continue;
        }
        if (e.since <= cutoff) {
          self->watch_idle(*e.conn);
          e.watched = true;
        } else {
          pending = true;
        }
      }
    }
    if (pending) {
      self->arm_watch();
    }
  });
}

void client_core::watch_idle(connection& c) {
  c.lowest().socket().async_wait(tcp::socket::wait_read,
                                 [weak = weak_from_this(), key = c.key, id = c.id](const sys_error& ec) {
                                   if (ec) {
                                     return;  // taken from the pool, or closed
                                   }
                                   if (auto self = weak.lock()) {
                                     self->drop_idle(key, id);
                                   }
                                 });
}

void client_core::drop_idle(const std::string& key, std::uint64_t id) {
  auto it = idle_.find(key);
  if (it == idle_.end()) {
    return;
  }
  auto& q = it->second;
  auto pos = std::find_if(q.begin(), q.end(), [id](const idle_entry& e) { return e.conn->id == id; });
  if (pos == q.end()) {
    return;
  }
  spdlog::debug("upstream {}: idle connection closed by the server", key);
  q.erase(pos);
  --idle_count_;
  if (q.empty()) {
    idle_.erase(it);
  }
}

void client_core::arm_sweep() {
  if (sweep_armed_ || closed_ || idle_count_ == 0) {
    return;
  }
  auto oldest = steady::time_point::max();
  for (const auto& [key, q] : idle_) {
    if (!q.empty()) {
      oldest = std::min(oldest, q.front().since);
    }
  }
  sweep_armed_ = true;
  sweep_timer_.expires_at(oldest + opts_.idle_timeout);
  sweep_timer_.async_wait([weak = weak_from_this()](const sys_error& ec) {
    auto self = weak.lock();
    if (!self) {
      return;
    }
    self->sweep_armed_ = false;
    if (ec) {
      return;
    }
    self->sweep();
    self->arm_sweep();
  });
}

void client_core::sweep() {
  auto cutoff = core::coarse_now() - opts_.idle_timeout;
  for (auto it = idle_.begin(); it != idle_.end();) {
    auto& q = it->second;
    while (!q.empty() && q.front().since <= cutoff) {
      q.pop_front();
      --idle_count_;
    }
    if (q.empty()) {
      it = idle_.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace detail

struct client::impl : detail::client_core {
  using client_core::client_core;
};

client::client(net::any_io_executor ex, client_options opts)
    : impl_(std::make_shared<impl>(std::move(ex), std::move(opts))) {}

client::~client() {
  if (impl_) {
    impl_->shutdown();
  }
}

net::awaitable<core::result<response>> client::send(request req) { return impl_->send(std::move(req)); }

net::awaitable<core::result<std::unique_ptr<body_stream>>> client::open(request req) {
  return impl_->open(std::move(req));
}

std::size_t client::idle_connections() const { return impl_->idle_connections(); }

void client::abort_all() { impl_->abort_all(); }

}  // namespace switchyard::upstream
