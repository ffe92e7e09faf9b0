// Async HTTP/1.1 + HTTPS client for provider calls, with a keep-alive pool per
// scheme://host:port. Beast stays in src/upstream; this header has none of it.
// Owner: app/ creates one per io_context. Thread: the io_context's single thread
// (not thread-safe). Never blocks: DNS, connect, TLS, write and read are async.
#pragma once
#include "switchyard/core/asio.hpp"
#include "switchyard/core/error.hpp"

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace switchyard::upstream {

using header_list = std::vector<std::pair<std::string, std::string>>;

// Lets a caller give up on one call in progress (its client left). Owned by the caller,
// which keeps it alive until the call returns; the client binds it to whatever the call
// is waiting on (a connection, a body) and unbinds it before returning. cancel() then
// ends the call at once with a non-retryable upstream_unreachable ("cancelled").
class call_cancel {
 public:
  call_cancel() = default;
  call_cancel(const call_cancel&) = delete;
  call_cancel& operator=(const call_cancel&) = delete;

  void cancel() {
    requested_ = true;
    if (stop_ != nullptr) {
      stop_(target_);
    }
  }
  bool requested() const { return requested_; }

  // The client's side: what cancel() stops while the call waits on it.
  void bind(void* target, void (*stop)(void*)) {
    target_ = target;
    stop_ = stop;
  }
  void unbind() { bind(nullptr, nullptr); }

 private:
  bool requested_ = false;
  void* target_ = nullptr;
  void (*stop_)(void*) = nullptr;
};

struct request {
  std::string method = "POST";
  std::string url;  // absolute: http(s)://host[:port]/path[?query]
  header_list headers;  // Host, Content-Length, Connection are set by the client
  std::string body;
  // When not empty, the body is these pieces in order (scatter-gather: e.g. the client's
  // own bytes around a few edits, never copied), and `body` only keeps storage they may
  // point into. Every piece must stay valid until the call completes.
  std::vector<std::string_view> body_parts;
  std::chrono::milliseconds connect_timeout{10'000};
  // Non-streaming: the whole exchange must finish within this.
  // Streaming: the response head and then each body read must arrive within this.
  std::chrono::milliseconds timeout{600'000};
  // Optional: lets the caller abandon the call while it waits (see call_cancel).
  call_cancel* cancel = nullptr;
};

struct response {
  int status = 0;
  header_list headers;  // as received, names lower-cased
  std::string body;     // de-chunked
};

// The body of a response read as it arrives (for SSE/NDJSON streams).
class body_stream {
 public:
  virtual ~body_stream() = default;
  virtual int status() const = 0;
  virtual const header_list& headers() const = 0;
  // Next piece of the de-chunked body; empty string = the body is complete.
  // Errors: upstream_timeout if nothing arrives within request.timeout,
  // upstream_unreachable if the connection breaks mid-body.
  virtual net::awaitable<core::result<std::string>> read_some() = 0;
  // True once the whole body has been received (the next read_some() returns the
  // empty string without I/O): lets a relay send its last bytes in one write.
  virtual bool complete() const { return false; }
  // Body bytes that already arrived (read with the head), without I/O; empty if none.
  // A relay that gets the whole body this way needs no disconnect watch (no epoll_ctl
  // for short answers).
  virtual std::string take_buffered() { return {}; }
  // Abandon the body (client went away): closes the connection, it is not pooled.
  // Safe while a read_some() is pending: that read then completes at once with
  // upstream_unreachable. Destroying an unfinished body_stream also closes it (but
  // never destroy it while a read_some() is pending).
  virtual void cancel() = 0;
};

// How an https upstream's certificate is checked (config's ssl_verify).
struct tls_trust {
  bool verify = true;
  std::string ca_bundle;  // not empty: trusted instead of the system store
};

struct client_options {
  std::size_t max_idle_per_host = 64;
  std::chrono::seconds idle_timeout{60};
  std::size_t max_response_bytes = 64u << 20;  // non-streaming bodies
  bool verify_tls = true;  // system CA store; SWITCHYARD_INSECURE_TLS=1 turns it off
  std::string ca_file;     // extra PEM CA bundle trusted besides the system store (optional)
  std::string ca_bundle;   // PEM CA bundle trusted instead of the system store (optional)
  // Per upstream origin (the scheme://host:port of each URL given), overriding the above:
  // a deployment's own ssl_verify. Connections are pooled per origin, so a pooled
  // connection always carries its origin's policy.
  std::vector<std::pair<std::string, tls_trust>> trust_by_url;
};

class client {
 public:
  client(net::any_io_executor ex, client_options opts = {});
  ~client();
  client(const client&) = delete;
  client& operator=(const client&) = delete;

  // Sends the request and reads the whole response. Any HTTP status is a value;
  // errors are transport failures: upstream_unreachable (DNS, connect, TLS, reset),
  // upstream_timeout (connect_timeout / timeout exceeded).
  net::awaitable<core::result<response>> send(request req);

  // Sends the request and returns once the response head has arrived; the body is
  // then read with body_stream::read_some. The connection returns to the pool when
  // the body was read to the end.
  net::awaitable<core::result<std::unique_ptr<body_stream>>> open(request req);

  // Gives up on every call: the ones in progress fail at once, later ones without
  // connecting (upstream_unreachable, not retryable). For a stop whose grace period is
  // over: the requests still waiting on a provider end, with their outcome recorded.
  void abort_all();

  // Idle pooled connections (for tests and metrics).
  std::size_t idle_connections() const;

 private:
  struct impl;
  std::shared_ptr<impl> impl_;
};

}  // namespace switchyard::upstream
