// The gateway's own view of an HTTP exchange: plain structs, no Beast.
// Owner: http::server creates one request + responder per request and passes them
// to the handler. Thread: the io_context thread only. Nothing here blocks.
#pragma once
#include "switchyard/core/asio.hpp"
#include "switchyard/core/error.hpp"

#include <chrono>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace switchyard::http {

using header_list = std::vector<std::pair<std::string, std::string>>;

struct request {
  std::string method;   // "GET", "POST", ...
  std::string target;   // as received, e.g. "/v1/models?x=1"
  std::string path;     // target without the query
  std::string query;    // after '?', empty if none
  header_list headers;  // names lower-cased, in arrival order
  std::string body;
  std::string remote_address;
  std::string call_id;  // x-litellm-call-id from the client, else a new uuid4
  std::chrono::steady_clock::time_point received_at;  // when the header was complete

  // First header with this (lower-case) name, or empty.
  std::string_view header(std::string_view lower_name) const;
  bool has_header(std::string_view lower_name) const;
};

// Appends "name: value\r\n" to a head_lines block (CR and LF in the value become spaces).
void append_head_line(std::string& lines, std::string_view name, std::string_view value);

struct response {
  int status = 200;
  std::string content_type = "application/json";
  header_list headers;  // extra headers (x-litellm-*, ...)
  // More headers, preformatted as "Name: value\r\n" lines (no CR/LF inside a value):
  // the hot path builds its x-litellm-* block in one string instead of ~20 allocations.
  std::string head_lines;
  std::string body;
};

// How a handler answers. Either send() once, or begin_stream() + write()* + end_stream().
// Every call returns false once the client is gone (the caller should stop working).
class responder {
 public:
  virtual ~responder() = default;
  virtual net::awaitable<bool> send(response r) = 0;
  // The head of a chunked response (Transfer-Encoding: chunked). It may be held back
  // and sent with the first write() (one packet for the head and the first chunk).
  virtual net::awaitable<bool> begin_stream(int status, std::string content_type, header_list headers,
                                            std::string head_lines = {}) = 0;
  // Sends one chunk now (never buffered beyond the socket).
  virtual net::awaitable<bool> write(std::string_view data) = 0;
  virtual net::awaitable<bool> end_stream() = 0;
  // write(data) then end_stream(), in one write where the transport allows.
  virtual net::awaitable<bool> write_last(std::string_view data) {
    if (!co_await write(data)) {
      co_return false;
    }
    co_return co_await end_stream();
  }
  // True once the client closed its side or a write failed.
  virtual bool client_gone() const = 0;
  // Watches the client's socket while the handler waits on something else (an
  // upstream stream): on EOF or reset, `on_gone` runs once on the loop. Used to
  // cancel the upstream request when the client disconnects.
  virtual void watch_disconnect(std::function<void()> on_gone) = 0;
  // watch_disconnect, started only once `delay` has passed without stop_watching(): a
  // wait that is usually short (a provider's non-streamed answer) then costs a stored
  // deadline, not a socket watch per request. Responders without a cheaper way watch now.
  virtual void watch_disconnect_after(std::chrono::milliseconds delay, std::function<void()> on_gone) {
    (void)delay;
    watch_disconnect(std::move(on_gone));
  }
  virtual void stop_watching() = 0;
  // Fields for the access line (model, key shown as sk-...abcd).
  virtual void annotate(std::string model, std::string key_redacted) = 0;
  // Headers added to every response of this exchange (x-litellm-call-id, ...).
  virtual void add_common_header(std::string name, std::string value) = 0;
  virtual bool started() const = 0;  // head already sent
  // The answer went out whole: send() succeeded, or a stream's last chunk did.
  virtual bool ended() const = 0;
  // The handler writes this exchange's access line itself (e.g. the LLM pipeline's
  // finish phase, which knows the outcome): the server then writes none.
  virtual void take_access_log() {}
};

// OpenAI-shaped error body: {"error":{"message","type","param","code":"<status>"}}.
std::string error_body(const core::error& e);
response error_response(const core::error& e);

}  // namespace switchyard::http
