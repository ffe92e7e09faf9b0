// The pipeline's responder: forwards every call to the server's responder and records
// what was handed to it in the request's outcome (status, body bytes, when the head went
// out, whether the client left), so nothing about the answer is inferred later. A tap
// may observe the body as it is sent (e.g. a cache assembling a streamed answer).
// Forwarding is a plain call, not a coroutine: no frame per write.
// Owner: request_ctx. Thread: the loop thread. Never blocks.
#pragma once
#include "switchyard/http/message.hpp"
#include "switchyard/pipeline/outcome.hpp"

#include <functional>
#include <string_view>

namespace switchyard::pipeline {

class recording_responder final : public http::responder {
 public:
  recording_responder(http::responder& inner, outcome& out) : inner_(inner), out_(out) {}

  // Called with each piece of the response body as it is handed to the transport.
  std::function<void(std::string_view)> tap;

  net::awaitable<bool> send(http::response r) override {
    if (!inner_.started() && !inner_.client_gone()) {
      head(r.status);
      body(r.body);
    }
    return inner_.send(std::move(r));
  }
  net::awaitable<bool> begin_stream(int status, std::string content_type, http::header_list headers,
                                    std::string head_lines = {}) override {
    if (!inner_.started() && !inner_.client_gone()) {
      head(status);
      out_.streamed = true;
    }
    return inner_.begin_stream(status, std::move(content_type), std::move(headers), std::move(head_lines));
  }
  net::awaitable<bool> write(std::string_view data) override {
    body(data);
    return inner_.write(data);
  }
  net::awaitable<bool> end_stream() override { return inner_.end_stream(); }
  net::awaitable<bool> write_last(std::string_view data) override {
    body(data);
    return inner_.write_last(data);
  }
  bool client_gone() const override { return inner_.client_gone(); }
  void watch_disconnect(std::function<void()> on_gone) override { inner_.watch_disconnect(std::move(on_gone)); }
  void watch_disconnect_after(std::chrono::milliseconds delay, std::function<void()> on_gone) override {
    inner_.watch_disconnect_after(delay, std::move(on_gone));
  }
  void stop_watching() override { inner_.stop_watching(); }
  void annotate(std::string model, std::string key_redacted) override {
    inner_.annotate(std::move(model), std::move(key_redacted));
  }
  void add_common_header(std::string name, std::string value) override {
    inner_.add_common_header(std::move(name), std::move(value));
  }
  bool started() const override { return inner_.started(); }
  bool ended() const override { return inner_.ended(); }
  void take_access_log() override { inner_.take_access_log(); }

 private:
  void head(int status) {
    out_.status = status;
    out_.first_byte = std::chrono::steady_clock::now();
  }
  void body(std::string_view data) {
    if (!inner_.client_gone()) {
      out_.bytes_out += data.size();
      if (tap) {
        tap(data);
      }
    }
  }

  http::responder& inner_;
  outcome& out_;
};

}  // namespace switchyard::pipeline
