// The HTTP server on a real loopback socket, driven by raw TCP clients.
#include "switchyard/http/server.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/asio/write.hpp>
#include <gtest/gtest.h>

#include <chrono>
#include <stdexcept>
#include <tuple>

using namespace switchyard;
using namespace std::chrono_literals;

namespace {

constexpr auto tuple_awaitable = net::as_tuple(net::use_awaitable);

// Runs `coro` on `ioc` until it finishes (or a 10 s safety deadline passes).
template <class T>
T run_coro(net::io_context& ioc, net::awaitable<T> coro) {
  auto fut = net::co_spawn(ioc, std::move(coro), net::use_future);
  ioc.restart();
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (fut.wait_for(0s) != std::future_status::ready) {
    ioc.run_for(10ms);
    if (std::chrono::steady_clock::now() > deadline) {
      ADD_FAILURE() << "test coroutine did not finish in 10 s";
      break;
    }
  }
  return fut.get();
}

struct fixture : ::testing::Test {
  net::io_context ioc;
  std::unique_ptr<http::server> srv;
  int handled = 0;

  void start(http::server_options o = {}) {
    o.host = "127.0.0.1";
    o.port = 0;
    srv = std::make_unique<http::server>(ioc.get_executor(), o, [this](http::request& req, http::responder& resp) {
      return handle(req, resp);
    });
    srv->listen();
    srv->start();
  }

  net::awaitable<void> handle(http::request& req, http::responder& resp) {
    ++handled;
    if (req.path == "/stream") {
      co_await resp.begin_stream(200, "text/event-stream", {});
      for (int i = 0; i < 3; ++i) {
        net::steady_timer t(co_await net::this_coro::executor, 50ms);
        co_await t.async_wait(tuple_awaitable);
        co_await resp.write("data: " + std::to_string(i) + "\n\n");
      }
      co_await resp.end_stream();
      co_return;
    }
    if (req.path == "/throw") {
      throw std::runtime_error("a handler's bug");
    }
    if (req.path == "/throw-mid-stream") {
      co_await resp.begin_stream(200, "text/event-stream", {});
      co_await resp.write("data: 1\n\n");
      throw std::runtime_error("a handler's bug, mid-stream");
    }
    if (req.path == "/heads" || req.path == "/heads-stream") {
      // A value with CR and LF in it, and thirty more fields.
      http::header_list fields{{"X-Evil", "a\r\nInjected: 1\n"}};
      for (int i = 0; i < 30; ++i) {
        fields.emplace_back("x-h" + std::to_string(i), "v" + std::to_string(i));
      }
      if (req.path == "/heads-stream") {
        co_await resp.begin_stream(200, "", std::move(fields), "x-line: 2\r\n");
        co_await resp.write("data: x\n\n");
        co_await resp.end_stream();
        co_return;
      }
      http::response r;
      r.status = 201;
      r.content_type = "text/plain";
      r.headers = std::move(fields);
      r.head_lines = "x-line: 1\r\n";
      r.body = "created";
      co_await resp.send(std::move(r));
      co_return;
    }
    http::response r;
    r.body = R"({"host":")" + std::string(req.header("host")) + R"(","path":")" + req.path + R"(","len":)" + std::to_string(req.body.size()) + R"(,"call":")" +
             req.call_id + R"(","method":")" + req.method + R"(","xv":")" + std::string(req.header("x-v")) +
             R"(","body":")" + req.body.substr(0, 32) + R"(","q":")" + req.query +
             R"(","nh":)" + std::to_string(req.headers.size()) + "}";
    co_await resp.send(std::move(r));
  }

  unsigned short port() const { return srv->local_endpoint().port(); }

  net::awaitable<tcp::socket> connect_and_send(std::string raw) {
    tcp::socket s(ioc);
    co_await s.async_connect({net::ip::make_address("127.0.0.1"), port()}, net::use_awaitable);
    co_await net::async_write(s, net::buffer(raw), net::use_awaitable);
    co_return s;
  }

  // Reads until the peer closes (or resets) or `until` appears.
  static net::awaitable<std::string> read_from(tcp::socket& s, std::string until = "") {
    std::string out;
    for (;;) {
      char buf[4096];
      auto [ec, n] = co_await s.async_read_some(net::buffer(buf), tuple_awaitable);
      out.append(buf, n);
      if (ec || (!until.empty() && out.find(until) != std::string::npos)) {
        break;
      }
    }
    co_return out;
  }

  // Sends raw bytes and reads until the peer closes or `until` appears.
  net::awaitable<std::string> exchange(std::string raw, std::string until = "", bool keep_open = false) {
    tcp::socket s = co_await connect_and_send(std::move(raw));
    std::string out = co_await read_from(s, until);
    if (!keep_open) {
      boost::system::error_code ignored;
      s.close(ignored);
    }
    co_return out;
  }

  // Waits (at most `limit`) for the server to have no connection left; returns how long.
  net::awaitable<std::chrono::milliseconds> until_no_connections(std::chrono::milliseconds limit) {
    const auto t0 = std::chrono::steady_clock::now();
    while (srv->active_connections() != 0 && std::chrono::steady_clock::now() - t0 < limit) {
      net::steady_timer t(ioc, 10ms);
      co_await t.async_wait(tuple_awaitable);
    }
    co_return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
  }
};

}  // namespace

TEST_F(fixture, keep_alive_serves_two_requests_on_one_connection) {
  start();
  auto out = run_coro(ioc, exchange("GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n",
                                    R"("path":"/b")"));
  EXPECT_NE(out.find(R"("path":"/a")"), std::string::npos);
  EXPECT_NE(out.find(R"("path":"/b")"), std::string::npos);
  EXPECT_EQ(handled, 2);
}

TEST_F(fixture, a_handler_that_throws_answers_500_and_the_connection_goes_on) {
  start();
  auto out = run_coro(ioc, exchange("GET /throw HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n",
                                    R"("path":"/b")"));
  EXPECT_EQ(out.rfind("HTTP/1.1 500 Internal Server Error\r\n", 0), 0u) << out;
  EXPECT_NE(out.find("Internal error while handling the request"), std::string::npos) << out;
  EXPECT_NE(out.find(R"("path":"/b")"), std::string::npos) << "the next request on the connection is served";
  EXPECT_EQ(handled, 2);
  // Once the answer has begun, the connection is closed: the stream is never ended
  // (no last chunk), so the client sees a cut answer, not a complete one.
  auto cut = run_coro(ioc, exchange("GET /throw-mid-stream HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_NE(cut.find("data: 1"), std::string::npos) << cut;
  EXPECT_EQ(cut.find("0\r\n\r\n"), std::string::npos) << cut;
}

// The common request is parsed without Beast (a complete head in the first read); these
// pin down that both that path and the fallback (everything unusual) see the same request.
TEST_F(fixture, pipelined_requests_with_bodies_are_split_exactly) {
  start();
  auto out = run_coro(ioc, exchange("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nX-V:  padded \t\r\n\r\nhello"
                                    "POST /b HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\nabc"
                                    "GET /c HTTP/1.1\r\nHost: x\r\n\r\n",
                                    R"("path":"/c")"));
  EXPECT_NE(out.find(R"("path":"/a","len":5)"), std::string::npos) << out;
  EXPECT_NE(out.find(R"("xv":"padded","body":"hello")"), std::string::npos) << out;
  EXPECT_NE(out.find(R"("path":"/b","len":3)"), std::string::npos) << out;
  EXPECT_NE(out.find(R"("body":"abc")"), std::string::npos) << out;
  EXPECT_NE(out.find(R"("path":"/c","len":0)"), std::string::npos) << out;
  EXPECT_EQ(handled, 3);
}

// A connection's request object is reused: nothing of one request (query, headers, call
// id, a longer body) shows in the next one on the same connection, whichever parser read it.
TEST_F(fixture, nothing_of_a_request_carries_over_to_the_next_on_its_connection) {
  start();
  const std::string first =
      "POST /a?x=1&y=2 HTTP/1.1\r\nHost: x\r\nX-V: first\r\nX-Litellm-Call-Id: call-first\r\n"
      "Content-Length: 10\r\n\r\n0123456789";
  const std::string second = "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nab";
  // The third takes the full parser (a folded-looking oddity: chunked body).
  const std::string third =
      "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nxyz\r\n0\r\n\r\n";
  const std::string fourth = "GET /d HTTP/1.1\r\nHost: x\r\n\r\n";
  auto out = run_coro(ioc, exchange(first + second + third + fourth, R"("path":"/d")"));
  EXPECT_NE(out.find(R"("path":"/a","len":10,"call":"call-first")"), std::string::npos) << out;
  EXPECT_NE(out.find(R"("xv":"first","body":"0123456789","q":"x=1&y=2","nh":4})"), std::string::npos) << out;
  const auto b = out.find(R"("path":"/b")");
  ASSERT_NE(b, std::string::npos) << out;
  const std::string b_answer = out.substr(b, out.find('}', b) - b);
  EXPECT_NE(b_answer.find(R"("len":2,)"), std::string::npos) << b_answer;
  EXPECT_EQ(b_answer.find("call-first"), std::string::npos) << b_answer;
  EXPECT_NE(b_answer.find(R"("xv":"","body":"ab","q":"","nh":2)"), std::string::npos) << b_answer;
  EXPECT_NE(out.find(R"("path":"/c","len":3)"), std::string::npos) << out;
  EXPECT_NE(out.find(R"("path":"/d","len":0)"), std::string::npos) << out;
  EXPECT_NE(out.find(R"("xv":"","body":"","q":"","nh":1})"), std::string::npos) << out;
  EXPECT_EQ(handled, 4);
}

// The header strings of a connection's request are overwritten in place by the next
// request's fields: each request sees its own values, names and count, whatever the
// previous one held at the same positions.
TEST_F(fixture, header_fields_reused_in_place_hold_each_requests_own_values) {
  start();
  const std::string raw =
      "GET /a HTTP/1.1\r\nHost: x\r\nX-V: a-rather-long-value-for-this-field\r\nX-Other: 1\r\n\r\n"
      "GET /b HTTP/1.1\r\nX-V: b\r\nHost: some-longer-host-name.example\r\n\r\n"
      "GET /c HTTP/1.1\r\nHost: x\r\n\r\n"
      "GET /d HTTP/1.1\r\nHOST: x\r\nx-v: D\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
  auto out = run_coro(ioc, exchange(raw, R"("path":"/d")"));
  EXPECT_NE(out.find(R"("xv":"a-rather-long-value-for-this-field","body":"","q":"","nh":3})"), std::string::npos) << out;
  EXPECT_NE(out.find(R"("xv":"b","body":"","q":"","nh":2})"), std::string::npos) << out;
  EXPECT_NE(out.find(R"("xv":"","body":"","q":"","nh":1})"), std::string::npos) << out;
  EXPECT_NE(out.find(R"("xv":"D","body":"","q":"","nh":5})"), std::string::npos) << out;
  EXPECT_EQ(handled, 4);
}

// A large body's buffer is let go after its request (not kept by an idle connection); the
// next request on the connection is read whole all the same.
TEST_F(fixture, a_large_body_then_a_small_one_on_one_connection) {
  start();
  const std::string big(100 * 1024, 'b');
  const std::string raw = "POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(big.size()) +
                          "\r\n\r\n" + big + "POST /small HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok";
  auto out = run_coro(ioc, exchange(raw, R"("path":"/small")"));
  EXPECT_NE(out.find(R"("path":"/big","len":102400)"), std::string::npos) << out.substr(0, 400);
  EXPECT_NE(out.find(R"("path":"/small","len":2)"), std::string::npos) << out.substr(0, 400);
  EXPECT_NE(out.find(R"("body":"ok","q":"","nh":2})"), std::string::npos) << out.substr(0, 400);
  EXPECT_EQ(handled, 2);
}

TEST_F(fixture, body_sent_after_the_head_is_read_whole) {
  start();
  auto out = run_coro(ioc, [this]() -> net::awaitable<std::string> {
    tcp::socket s(ioc);
    co_await s.async_connect({net::ip::make_address("127.0.0.1"), port()}, net::use_awaitable);
    std::string head = "POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nConnection: close\r\n\r\n01234";
    co_await net::async_write(s, net::buffer(head), net::use_awaitable);
    net::steady_timer t(ioc, 100ms);
    co_await t.async_wait(net::use_awaitable);
    co_await net::async_write(s, net::buffer(std::string("56789")), net::use_awaitable);
    co_return co_await read_from(s);
  }());
  EXPECT_NE(out.find(R"("len":10)"), std::string::npos) << out;
  EXPECT_NE(out.find(R"("body":"0123456789")"), std::string::npos) << out;
  EXPECT_NE(out.find("Connection: close"), std::string::npos) << out;
}

TEST_F(fixture, body_that_stops_coming_gets_408) {
  http::server_options o;
  o.body_timeout = 300ms;
  start(o);
  auto out = run_coro(ioc, exchange("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n01234"));
  EXPECT_EQ(out.rfind("HTTP/1.1 408", 0), 0u) << out;
  EXPECT_EQ(handled, 0);
}

TEST_F(fixture, unusual_heads_take_the_full_parser_with_the_same_result) {
  start();
  // HTTP/1.0 (closes after the answer) and a folded header: served.
  auto a = run_coro(ioc, exchange("GET /old HTTP/1.0\r\nX-V: v1\r\n\r\n"));
  EXPECT_NE(a.find(R"("path":"/old")"), std::string::npos) << a;
  EXPECT_NE(a.find(R"("xv":"v1")"), std::string::npos) << a;
  auto b = run_coro(ioc, exchange("POST /fold HTTP/1.1\r\nHost: x\r\nX-V: one\r\n two\r\nContent-Length: 2\r\n"
                                  "Connection: close\r\n\r\nok"));
  EXPECT_NE(b.find(R"("path":"/fold")"), std::string::npos) << b;
  EXPECT_NE(b.find(R"("body":"ok")"), std::string::npos) << b;
  // Conflicting Content-Length values and a bad one: 400 from the full parser.
  auto c = run_coro(ioc, exchange("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc"));
  EXPECT_EQ(c.rfind("HTTP/1.1 400", 0), 0u) << c;
  auto d = run_coro(ioc, exchange("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 2x\r\n\r\nab"));
  EXPECT_EQ(d.rfind("HTTP/1.1 400", 0), 0u) << d;
  // A chunked body.
  auto e = run_coro(ioc, exchange("POST /ch HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                                  "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"));
  EXPECT_NE(e.find(R"("body":"abcde")"), std::string::npos) << e;
  EXPECT_EQ(handled, 3);
}

// RFC 9112 3.2.2: a server must accept a target in absolute form; it is served as the
// path (and query) it names, and its authority is the request's Host.
TEST_F(fixture, absolute_form_target_is_served_as_its_path) {
  start();
  auto out = run_coro(ioc, exchange("POST http://127.0.0.1:4000/v1/chat/completions?a=1 HTTP/1.1\r\nHost: other\r\n"
                                    "Content-Length: 2\r\n\r\nab"
                                    "GET HTTPS://Example.com HTTP/1.1\r\nHost: example.com\r\n\r\n"
                                    "GET http://h.example?q HTTP/1.1\r\nHost: h.example\r\n\r\n"
                                    // The full parser's path (a chunked body) too.
                                    "POST http://c.example/ch HTTP/1.1\r\nHost: c.example\r\nTransfer-Encoding: chunked\r\n"
                                    "Connection: close\r\n\r\n2\r\nok\r\n0\r\n\r\n"));
  EXPECT_NE(out.find(R"("host":"127.0.0.1:4000","path":"/v1/chat/completions","len":2)"), std::string::npos) << out;
  EXPECT_NE(out.find(R"("q":"a=1")"), std::string::npos) << out;
  EXPECT_NE(out.find(R"("host":"Example.com","path":"/","len":0)"), std::string::npos) << out;
  EXPECT_NE(out.find(R"("host":"h.example","path":"/","len":0)"), std::string::npos) << out;
  EXPECT_NE(out.find(R"("q":"q","nh":1})"), std::string::npos) << out;
  EXPECT_NE(out.find(R"("path":"/ch","len":2)"), std::string::npos) << out;
  EXPECT_EQ(handled, 4);
}

// RFC 9112 3.2: an HTTP/1.1 request without Host, and any request with more than one,
// gets 400, whichever parser read it. HTTP/1.0 needs no Host.
TEST_F(fixture, a_request_without_exactly_one_host_gets_400) {
  start();
  for (const char* raw : {"GET /a HTTP/1.1\r\nConnection: close\r\n\r\n",
                          "GET /a HTTP/1.1\r\nHost: x\r\nhost: y\r\nConnection: close\r\n\r\n",
                          "GET /a HTTP/1.1\r\nHost: x\r\nX-V: 1\r\nHOST: x\r\nConnection: close\r\n\r\n",
                          "POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n",
                          "POST /a HTTP/1.1\r\nHost: x\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                          "0\r\n\r\n",
                          "GET /a HTTP/1.0\r\nHost: x\r\nHost: y\r\n\r\n"}) {
    auto out = run_coro(ioc, exchange(raw));
    EXPECT_EQ(out.rfind("HTTP/1.1 400", 0), 0u) << raw << "\n" << out;
    EXPECT_NE(out.find("Host"), std::string::npos) << out;
  }
  EXPECT_EQ(handled, 0);
  auto old = run_coro(ioc, exchange("GET /old HTTP/1.0\r\n\r\n"));
  EXPECT_NE(old.find(R"("path":"/old")"), std::string::npos) << old;
  EXPECT_EQ(handled, 1);
}

// RFC 9112 2.2: empty lines before a request line are ignored (a few: more is not a
// request), including the CRLF some clients send after a body.
TEST_F(fixture, empty_lines_before_a_request_line_are_ignored) {
  start();
  auto out = run_coro(ioc, exchange("\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n"
                                    "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nab\r\n"
                                    "\n\r\nGET /old HTTP/1.0\r\n\r\n"));
  EXPECT_NE(out.find(R"("path":"/a")"), std::string::npos) << out;
  EXPECT_NE(out.find(R"("path":"/b","len":2)"), std::string::npos) << out;
  EXPECT_NE(out.find(R"("path":"/old")"), std::string::npos) << out;
  EXPECT_EQ(handled, 3);
  // An empty line alone in its packet: the request that follows is still read.
  auto split = run_coro(ioc, [&]() -> net::awaitable<std::string> {
    tcp::socket s = co_await connect_and_send("\r\n");
    co_await net::async_write(s, net::buffer(std::string("GET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")),
                              net::use_awaitable);
    co_return co_await read_from(s);
  }());
  EXPECT_NE(split.find(R"("path":"/c")"), std::string::npos) << split;
  auto many = run_coro(ioc, exchange(std::string(40, '\n') + "GET /d HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_EQ(many.rfind("HTTP/1.1 400", 0), 0u) << many;
  EXPECT_EQ(handled, 4);
}

// The response head, byte for byte: its fields in order, a CR or LF inside a value
// replaced (it cannot split the head), the framing line last.
TEST_F(fixture, response_heads_are_written_field_by_field_in_order) {
  start();
  std::string fields = "X-Evil: a  Injected: 1 \r\n";
  for (int i = 0; i < 30; ++i) {
    fields += "x-h" + std::to_string(i) + ": v" + std::to_string(i) + "\r\n";
  }
  auto out = run_coro(ioc, exchange("GET /heads HTTP/1.1\r\nHost: x\r\nx-litellm-call-id: abc\r\nConnection: close\r\n\r\n"));
  EXPECT_EQ(out, "HTTP/1.1 201 Created\r\nServer: switchyard\r\nContent-Type: text/plain\r\nx-litellm-call-id: abc\r\n" +
                     fields + "x-line: 1\r\nConnection: close\r\nContent-Length: 7\r\n\r\ncreated");
  auto streamed =
      run_coro(ioc, exchange("GET /heads-stream HTTP/1.1\r\nHost: x\r\nx-litellm-call-id: abc\r\nConnection: close\r\n\r\n"));
  EXPECT_EQ(streamed.substr(0, streamed.find("\r\n\r\n") + 4),
            "HTTP/1.1 200 OK\r\nServer: switchyard\r\nContent-Type: \r\nx-litellm-call-id: abc\r\n" + fields +
                "x-line: 2\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n");
  // A kept-alive connection is told how long it may stay idle (a second under the timeout).
  auto kept = run_coro(ioc, exchange("GET /heads HTTP/1.1\r\nHost: x\r\nx-litellm-call-id: abc\r\n\r\n", "created"));
  const auto idle = std::chrono::duration_cast<std::chrono::seconds>(http::server_options{}.idle_timeout).count();
  EXPECT_NE(kept.find("x-line: 1\r\nkeep-alive: timeout=" + std::to_string(idle > 1 ? idle - 1 : 1) +
                      "\r\nContent-Length: 7\r\n\r\ncreated"),
            std::string::npos)
      << kept;
}

TEST_F(fixture, call_id_is_echoed_or_generated) {
  start();
  auto out = run_coro(ioc, exchange("GET /a HTTP/1.1\r\nHost: x\r\nx-litellm-call-id: abc-123\r\nConnection: close\r\n\r\n"));
  EXPECT_NE(out.find("x-litellm-call-id: abc-123"), std::string::npos) << out;
  auto out2 = run_coro(ioc, exchange("GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
  EXPECT_NE(out2.find("x-litellm-call-id: "), std::string::npos);
}

TEST_F(fixture, malformed_request_gets_openai_shaped_400) {
  start();
  auto out = run_coro(ioc, exchange("THIS IS NOT HTTP\r\n\r\n"));
  EXPECT_EQ(out.rfind("HTTP/1.1 400", 0), 0u) << out;
  EXPECT_NE(out.find(R"("code":"400")"), std::string::npos) << out;
  EXPECT_NE(out.find(R"("type":"invalid_request_error")"), std::string::npos);
  EXPECT_EQ(handled, 0);
}

// A Transfer-Encoding that does not end in chunked leaves the body's end unknown: 400 and
// the connection closed. Its bytes are never served as a next request (smuggling).
TEST_F(fixture, a_transfer_encoding_not_ending_in_chunked_gets_400_and_a_close) {
  start();
  for (const char* te : {"gzip", "chunked, identity", "identity"}) {
    auto out = run_coro(ioc, exchange(std::string("POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: ") + te +
                                      "\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"));
    EXPECT_EQ(out.rfind("HTTP/1.1 400", 0), 0u) << te << ": " << out;
    EXPECT_NE(out.find("Transfer-Encoding"), std::string::npos) << out;
    EXPECT_EQ(out.find("/smuggled"), std::string::npos) << te << ": " << out;
  }
  EXPECT_EQ(handled, 0);
}

TEST_F(fixture, oversized_declared_body_gets_413_without_reading_it) {
  http::server_options o;
  o.max_body_bytes = 1000;
  start(o);
  auto out = run_coro(ioc, exchange("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n"));
  EXPECT_EQ(out.rfind("HTTP/1.1 413", 0), 0u) << out;
  EXPECT_NE(out.find(R"("code":"413")"), std::string::npos);
}

TEST_F(fixture, oversized_chunked_body_gets_413) {
  http::server_options o;
  o.max_body_bytes = 10;
  start(o);
  auto out = run_coro(
      ioc, exchange("POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n14\r\n01234567890123456789\r\n0\r\n\r\n"));
  EXPECT_EQ(out.rfind("HTTP/1.1 413", 0), 0u) << out;
}

// The 413 goes out while the client is still sending. The server then half-closes and
// reads on: the client sees the whole answer and the end of stream, and can go on
// writing without being reset (a plain close with unread bytes sends a reset, which
// makes the client's writes fail and can discard the answer before it is read).
TEST_F(fixture, early_error_closes_gently_while_the_client_still_sends) {
  http::server_options o;
  o.max_body_bytes = 1000;
  o.linger_timeout = 60s;  // far beyond the wait below: only the client's close can end it
  start(o);
  auto [out, writes_ok, gone] = run_coro(ioc, [&]() -> net::awaitable<std::tuple<std::string, bool, bool>> {
    tcp::socket s = co_await connect_and_send("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 900000\r\n\r\n" +
                                              std::string(2000, 'x'));
    std::string out = co_await read_from(s);  // to the server's end of stream
    bool ok = true;
    const std::string more(64 * 1024, 'y');
    for (int i = 0; i < 4 && ok; ++i) {
      net::steady_timer t(ioc, 30ms);  // time for a reset to come back, were there one
      co_await t.async_wait(tuple_awaitable);
      auto [ec, n] = co_await net::async_write(s, net::buffer(more), tuple_awaitable);
      ok = !ec;
    }
    s.close();
    // The client's close ends the linger, long before linger_timeout.
    co_await until_no_connections(8s);  // a safety limit (run_coro's is 10 s), not an expectation
    co_return std::tuple{out, ok, srv->active_connections() == 0};
  }());
  EXPECT_EQ(out.rfind("HTTP/1.1 413", 0), 0u) << out;
  EXPECT_NE(out.find(R"("code":"413")"), std::string::npos) << out;
  EXPECT_TRUE(writes_ok) << "the client's writes after the 413 were refused (reset)";
  EXPECT_TRUE(gone) << "the connection lingered after the client closed";
}

// A client that never closes is dropped when linger_timeout passes.
TEST_F(fixture, lingering_is_bounded_in_time) {
  http::server_options o;
  o.max_body_bytes = 1000;
  o.linger_timeout = 200ms;
  start(o);
  auto [out, closed_in] = run_coro(ioc, [&]() -> net::awaitable<std::tuple<std::string, std::chrono::milliseconds>> {
    tcp::socket s = co_await connect_and_send("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n");
    std::string out = co_await read_from(s);
    auto waited = co_await until_no_connections(8s);  // s stays open meanwhile; a safety limit
    co_return std::tuple{out, waited};
  }());
  EXPECT_EQ(out.rfind("HTTP/1.1 413", 0), 0u) << out;
  EXPECT_EQ(srv->active_connections(), 0u) << "still open after " << closed_in.count() << " ms";
}

// A connection lingering after an early error has nothing left to answer: a drain
// closes it at once instead of waiting for linger_timeout.
TEST_F(fixture, drain_does_not_wait_for_a_lingering_connection) {
  http::server_options o;
  o.max_body_bytes = 1000;
  o.linger_timeout = 60s;  // far beyond the wait below: only the drain can close it in time
  start(o);
  bool drained = false;
  auto [out, waited] = run_coro(ioc, [&]() -> net::awaitable<std::tuple<std::string, std::chrono::milliseconds>> {
    tcp::socket s = co_await connect_and_send("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n");
    std::string out = co_await read_from(s);  // the 413, then the server's end of stream
    srv->drain([&] { drained = true; });
    auto w = co_await until_no_connections(8s);  // s stays open meanwhile; a safety limit
    co_return std::tuple{out, w};
  }());
  EXPECT_EQ(out.rfind("HTTP/1.1 413", 0), 0u) << out;
  EXPECT_TRUE(drained);
  EXPECT_EQ(srv->active_connections(), 0u) << "still open after " << waited.count() << " ms";
}

TEST_F(fixture, body_within_limit_is_read) {
  http::server_options o;
  o.max_body_bytes = 1000;
  start(o);
  auto out = run_coro(ioc, exchange("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"));
  EXPECT_NE(out.find(R"("len":5)"), std::string::npos) << out;
}

TEST_F(fixture, expect_100_continue_is_answered) {
  start();
  auto out = run_coro(ioc, exchange("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n"
                                    "Connection: close\r\n\r\nabc"));
  EXPECT_EQ(out.rfind("HTTP/1.1 100 Continue", 0), 0u) << out;
  EXPECT_NE(out.find(R"("len":3)"), std::string::npos) << out;
}

TEST_F(fixture, slow_header_gets_408_and_others_are_still_served) {
  http::server_options o;
  o.header_timeout = 300ms;
  start(o);
  auto out = run_coro(ioc, [&]() -> net::awaitable<std::string> {
    tcp::socket slow(ioc);
    co_await slow.async_connect({net::ip::make_address("127.0.0.1"), port()}, net::use_awaitable);
    co_await net::async_write(slow, net::buffer(std::string("GET /a HTTP/1.1\r\nHo")), net::use_awaitable);
    // Meanwhile a well-behaved client is served.
    auto other = co_await exchange("GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    EXPECT_NE(other.find(R"("path":"/ok")"), std::string::npos);
    co_return co_await read_from(slow);
  }());
  EXPECT_EQ(out.rfind("HTTP/1.1 408", 0), 0u) << out;
  EXPECT_NE(out.find(R"("code":"408")"), std::string::npos);
}

TEST_F(fixture, huge_header_gets_431) {
  http::server_options o;
  o.max_header_bytes = 1024;
  start(o);
  auto out = run_coro(ioc, exchange("GET /a HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(4000, 'a') + "\r\n\r\n"));
  EXPECT_EQ(out.rfind("HTTP/1.1 431", 0), 0u) << out;
}

TEST_F(fixture, streaming_is_chunked_and_incremental) {
  start();
  auto out = run_coro(ioc, exchange("GET /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
  EXPECT_NE(out.find("Transfer-Encoding: chunked"), std::string::npos) << out;
  EXPECT_NE(out.find("data: 0"), std::string::npos);
  EXPECT_NE(out.find("data: 2"), std::string::npos);
  EXPECT_NE(out.find("\r\n0\r\n\r\n"), std::string::npos) << "last chunk";
}

// A HEAD gets its GET's head (Content-Length included) and no body: the next response on
// the connection starts right after the head.
TEST_F(fixture, head_is_answered_without_a_body) {
  start();
  auto out = run_coro(ioc, exchange("HEAD /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n",
                                    R"("path":"/b")"));
  const auto first_end = out.find("\r\n\r\n");
  ASSERT_NE(first_end, std::string::npos) << out;
  const std::string first = out.substr(0, first_end);
  EXPECT_EQ(first.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << out;
  EXPECT_EQ(out.find(R"("path":"/a")"), std::string::npos) << "a body after a HEAD: " << out;
  const auto cl = first.find("Content-Length: ");
  ASSERT_NE(cl, std::string::npos) << out;
  EXPECT_GT(std::stoi(first.substr(cl + 16)), 40) << "the GET's length: " << out;
  EXPECT_EQ(out.compare(first_end + 4, 9, "HTTP/1.1 "), 0) << "the GET's answer right after the head: " << out;
  EXPECT_NE(out.find(R"("path":"/b")"), std::string::npos) << out;
  EXPECT_EQ(handled, 2);
}

TEST_F(fixture, head_of_a_stream_is_the_head_alone) {
  start();
  auto out = run_coro(ioc, exchange("HEAD /stream HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n",
                                    R"("path":"/b")"));
  EXPECT_NE(out.find("Transfer-Encoding: chunked"), std::string::npos) << out;
  EXPECT_EQ(out.find("data: "), std::string::npos) << out;
  const auto first_end = out.find("\r\n\r\n");
  ASSERT_NE(first_end, std::string::npos) << out;
  EXPECT_EQ(out.compare(first_end + 4, 9, "HTTP/1.1 "), 0) << out;
}

TEST_F(fixture, drain_lets_inflight_stream_finish_then_reports_done) {
  start();
  bool drained = false;
  auto out = run_coro(ioc, [&]() -> net::awaitable<std::string> {
    tcp::socket s(ioc);
    co_await s.async_connect({net::ip::make_address("127.0.0.1"), port()}, net::use_awaitable);
    co_await net::async_write(s, net::buffer(std::string("GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")),
                              net::use_awaitable);
    std::string got;
    char buf[4096];
    auto [ec0, n0] = co_await s.async_read_some(net::buffer(buf), tuple_awaitable);
    got.append(buf, n0);
    srv->drain([&] { drained = true; });
    got += co_await read_from(s);
    co_return got;
  }());
  EXPECT_NE(out.find("data: 2"), std::string::npos) << out;
  EXPECT_TRUE(drained);
  EXPECT_EQ(srv->active_connections(), 0u);
}
