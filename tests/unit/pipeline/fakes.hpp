// In-process fakes for the pipeline's unit tests: a responder that records what the
// pipeline sent (and can lose its client after N writes), an upstream that answers by
// api_base from a script (JSON, SSE pieces, statuses, transport errors, exceptions), and
// an observer that keeps every outcome. No sockets.
#pragma once
#include "switchyard/pipeline/llm_pipeline.hpp"
#include "switchyard/pipeline/upstream_caller.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <deque>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace switchyard::pipeline::testing {

class fake_responder final : public http::responder {
 public:
  int status = 0;
  std::string body;            // send()'s body, or every streamed chunk concatenated
  std::vector<std::string> chunks;
  bool streamed = false, stream_ended = false, gone = false, access_taken = false;
  int writes_before_gone = -1;  // >= 0: the client leaves when this many writes succeeded
  http::header_list headers;    // send()'s headers (e.g. retry-after of an error)

  net::awaitable<bool> send(http::response r) override {
    if (status != 0 || gone) {
      co_return false;
    }
    status = r.status;
    body = std::move(r.body);
    head_lines = std::move(r.head_lines);
    headers = std::move(r.headers);
    co_return true;
  }
  net::awaitable<bool> begin_stream(int s, std::string, http::header_list, std::string lines) override {
    if (status != 0 || gone) {
      co_return false;
    }
    status = s;
    streamed = true;
    head_lines = std::move(lines);
    co_return true;
  }
  net::awaitable<bool> write(std::string_view data) override { co_return put(data); }
  net::awaitable<bool> end_stream() override {
    if (gone) {
      co_return false;
    }
    stream_ended = true;
    co_return true;
  }
  net::awaitable<bool> write_last(std::string_view data) override {
    if (!put(data)) {
      co_return false;
    }
    stream_ended = true;
    co_return true;
  }
  bool client_gone() const override { return gone; }
  void watch_disconnect(std::function<void()>) override {}
  void stop_watching() override {}
  void annotate(std::string, std::string) override {}
  void add_common_header(std::string, std::string) override {}
  bool started() const override { return status != 0; }
  bool ended() const override { return streamed ? stream_ended : status != 0; }
  void take_access_log() override { access_taken = true; }

  std::string head_lines;

 private:
  bool put(std::string_view data) {
    if (gone || !streamed) {
      return false;
    }
    if (writes_before_gone >= 0 && static_cast<int>(chunks.size()) >= writes_before_gone) {
      gone = true;
      return false;
    }
    chunks.emplace_back(data);
    body += data;
    return true;
  }
};

// One scripted upstream answer.
struct scripted {
  int status = 200;
  std::string body;                 // whole body (send), or
  std::vector<std::string> pieces;  // streamed body pieces (open)
  bool transport_error = false;     // connection refused
  bool throws = false;              // a bug: the call throws
  bool cut = false;                 // the stream breaks after its pieces
};

// An OpenAI chat answer whose message says `content` (usage 5 + 2), and the frames of an
// OpenAI stream: a content chunk and the final usage chunk (usage 5 + 3).
inline std::string chat_answer(const std::string& content) {
  return R"({"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"x","choices":[{"index":0,)"
         R"("message":{"role":"assistant","content":")" +
         content + R"("},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}})";
}

inline std::string chunk(const std::string& content, const char* finish = "null") {
  return R"(data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"x","choices":[{"index":0,)"
         R"("delta":{"content":")" +
         content + R"("},"finish_reason":)" + finish + "}]}\n\n";
}

inline const std::string usage_chunk =
    R"(data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"x","choices":[],)"
    R"("usage":{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8}})"
    "\n\n";

inline scripted reply(int status, std::string body) {
  scripted s;
  s.status = status;
  s.body = std::move(body);
  return s;
}

class fake_body_stream final : public upstream::body_stream {
 public:
  explicit fake_body_stream(scripted s) : s_(std::move(s)) {}
  int status() const override { return s_.status; }
  const upstream::header_list& headers() const override { return headers_; }
  net::awaitable<core::result<std::string>> read_some() override {
    if (cancelled_) {
      co_return core::make_error(core::errc::upstream_unreachable, "cancelled");
    }
    if (next_ < s_.pieces.size()) {
      co_return s_.pieces[next_++];
    }
    if (s_.cut) {
      co_return core::make_error(core::errc::upstream_unreachable, "connection reset by peer");
    }
    co_return std::string{};
  }
  void cancel() override { cancelled_ = true; }

 private:
  scripted s_;
  upstream::header_list headers_;
  std::size_t next_ = 0;
  bool cancelled_ = false;
};

// Answers by URL prefix (a deployment's api_base): each prefix has a queue of answers;
// the last one repeats. Counts calls per prefix.
class fake_upstream final : public upstream_caller {
 public:
  std::map<std::string, std::deque<scripted>> script;
  std::map<std::string, int> calls;

  net::awaitable<core::result<upstream::response>> send(upstream::request req) override {
    auto s = next(req.url);
    if (s.throws) {
      throw std::runtime_error("fake upstream bug");
    }
    if (s.transport_error) {
      co_return core::make_error(core::errc::upstream_unreachable, "Connection refused");
    }
    upstream::response r;
    r.status = s.status;
    r.body = s.body;
    co_return r;
  }
  net::awaitable<core::result<std::unique_ptr<upstream::body_stream>>> open(upstream::request req) override {
    auto s = next(req.url);
    if (s.throws) {
      throw std::runtime_error("fake upstream bug");
    }
    if (s.transport_error) {
      co_return core::make_error(core::errc::upstream_unreachable, "Connection refused");
    }
    if (s.pieces.empty() && !s.body.empty()) {
      s.pieces.push_back(s.body);  // an error body read whole
    }
    std::unique_ptr<upstream::body_stream> b = std::make_unique<fake_body_stream>(std::move(s));
    co_return b;
  }

 private:
  scripted next(const std::string& url) {
    for (auto& [prefix, q] : script) {
      if (url.rfind(prefix, 0) == 0) {
        ++calls[prefix];
        if (q.empty()) {
          throw std::logic_error("no scripted answer for " + url);
        }
        auto s = q.front();
        if (q.size() > 1) {
          q.pop_front();
        }
        return s;
      }
    }
    throw std::logic_error("unexpected upstream call to " + url);
  }
};

class recording_observer final : public observer {
 public:
  struct seen {
    outcome out;
    std::string model;
    bool client_gone = false;
    std::size_t members = 0;  // top-level members of the body's scan
    std::string cache_group;  // the model group the cache keyed the request by
  };
  std::vector<seen> finished;
  void on_finish(const request_ctx& ctx) noexcept override {
    finished.push_back({ctx.out, ctx.requested_model, ctx.out.client_gone, ctx.scan.members.size(), ctx.cache_group});
  }
};

// Runs an awaitable to completion on a fresh io_context; rethrows what escapes it.
template <class Make>
void run_coro(Make make) {
  net::io_context io;
  std::exception_ptr failed;
  net::co_spawn(io, make(), [&](std::exception_ptr e) { failed = e; });
  io.run();
  if (failed) {
    std::rethrow_exception(failed);
  }
}

}  // namespace switchyard::pipeline::testing
