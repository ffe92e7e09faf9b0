// What the pipeline needs from an HTTP client to call a provider: one exchange read
// whole, or one opened for streaming. upstream::client in the gateway; a fake in the
// pipeline's unit tests (no sockets).
// Thread: the loop thread. Never blocks.
#pragma once
#include "switchyard/upstream/client.hpp"

#include <memory>

namespace switchyard::pipeline {

class upstream_caller {
 public:
  virtual ~upstream_caller() = default;
  virtual net::awaitable<core::result<upstream::response>> send(upstream::request req) = 0;
  virtual net::awaitable<core::result<std::unique_ptr<upstream::body_stream>>> open(upstream::request req) = 0;
};

// upstream_caller over upstream::client. Forwards without a coroutine frame of its own.
class client_caller final : public upstream_caller {
 public:
  explicit client_caller(upstream::client& c) : client_(c) {}
  net::awaitable<core::result<upstream::response>> send(upstream::request req) override {
    return client_.send(std::move(req));
  }
  net::awaitable<core::result<std::unique_ptr<upstream::body_stream>>> open(upstream::request req) override {
    return client_.open(std::move(req));
  }

 private:
  upstream::client& client_;
};

}  // namespace switchyard::pipeline
