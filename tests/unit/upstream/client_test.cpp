#include "switchyard/upstream/client.hpp"
#include "switchyard/upstream/sse_parser.hpp"

#include "test_server.hpp"

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <gtest/gtest.h>

namespace {

using namespace std::chrono_literals;
using namespace sy_test;
namespace core = switchyard::core;
namespace upstream = switchyard::upstream;

using ms = std::chrono::milliseconds;

ms since(steady::time_point t) { return std::chrono::duration_cast<ms>(steady::now() - t); }

net::awaitable<void> sleep_for(ms d) {
  net::steady_timer t(co_await net::this_coro::executor, d);
  co_await t.async_wait(tuple_awaitable);
}

// Polls `cond` every 5 ms until true or `limit` passes.
template <class Cond>
net::awaitable<bool> eventually(Cond cond, ms limit = 2000ms) {
  auto start = steady::now();
  while (!cond()) {
    if (since(start) > limit) {
      co_return false;
    }
    co_await sleep_for(5ms);
  }
  co_return true;
}

class upstream_client : public ::testing::Test {
 protected:
  template <class F>
  void run(F f, std::chrono::seconds limit = 20s) {
    std::exception_ptr error;
    bool done = run_coro(io, std::move(f), limit, error);
    ASSERT_TRUE(done) << "test coroutine did not finish within " << limit.count() << " s";
    if (error) {
      std::rethrow_exception(error);
    }
  }

  upstream::request post(const test_server& srv, std::string path = "/v1/chat/completions") {
    upstream::request r;
    r.url = srv.url(path);
    r.headers = {{"Content-Type", "application/json"}};
    r.body = R"({"model":"m"})";
    r.timeout = 5000ms;
    r.connect_timeout = 2000ms;
    return r;
  }

  net::io_context io;
};

std::string header_value(const upstream::header_list& h, std::string_view name) {
  for (const auto& [k, v] : h) {
    if (k == name) {
      return v;
    }
  }
  return "<missing>";
}

// ---------------------------------------------------------------- send()

TEST_F(upstream_client, send_returns_status_headers_body_and_sets_request_headers) {
  test_server srv(io);
  srv.on_request = [](server_conn& c, http_request&, int) -> net::awaitable<bool> {
    co_await c.write(reply("HTTP/1.1 201 Created", R"({"ok":true})", "X-Request-ID: abc\r\nContent-Type: application/json\r\n"));
    co_return true;
  };
  upstream::client cl(io.get_executor());
  std::optional<core::result<upstream::response>> res;
  auto req = post(srv);
  req.headers.push_back({"Authorization", "Bearer sk-test"});
  req.headers.push_back({"Host", "evil.example"});       // replaced by the client
  req.headers.push_back({"Content-Length", "999"});      // replaced by the client
  run([&]() -> net::awaitable<void> { res = co_await cl.send(req); });

  ASSERT_TRUE(res && *res) << (*res).error().message;
  const auto& r = **res;
  EXPECT_EQ(r.status, 201);
  EXPECT_EQ(r.body, R"({"ok":true})");
  EXPECT_EQ(header_value(r.headers, "x-request-id"), "abc");
  EXPECT_EQ(header_value(r.headers, "content-type"), "application/json");

  ASSERT_EQ(srv.requests.size(), 1u);
  const auto& seen = srv.requests[0];
  EXPECT_EQ(seen.request_line(), "POST /v1/chat/completions HTTP/1.1");
  EXPECT_EQ(seen.header("host"), "127.0.0.1:" + std::to_string(srv.port()));
  EXPECT_EQ(seen.header("content-length"), "13");
  EXPECT_EQ(seen.header("user-agent"), std::string("switchyard/") + SWITCHYARD_VERSION);
  EXPECT_EQ(seen.header("authorization"), "Bearer sk-test");
  EXPECT_EQ(seen.header("content-type"), "application/json");
  EXPECT_FALSE(seen.header("connection"));
  EXPECT_FALSE(seen.header("transfer-encoding"));
  EXPECT_EQ(seen.body, R"({"model":"m"})");
  EXPECT_EQ(cl.idle_connections(), 1u);
}

// send() parses a whole plain answer from the first read without Beast; every other
// shape takes Beast's parser. Both must give the same response and pooling.
TEST_F(upstream_client, answers_split_or_unusual_take_the_full_parser_with_the_same_result) {
  test_server srv(io);
  srv.on_request = [](server_conn& c, http_request& r, int) -> net::awaitable<bool> {
    const auto line = r.request_line();
    if (line.find("/split") != std::string::npos) {  // head and half the body, then the rest
      co_await c.write("HTTP/1.1 200 OK\r\nContent-Length: 10\r\nX-A:  1 \r\n\r\n01234");
      co_await c.pause(100ms);
      co_await c.write("56789");
      co_return true;
    }
    if (line.find("/old") != std::string::npos) {  // HTTP/1.0: not pooled
      co_await c.write("HTTP/1.0 200 OK\r\nContent-Length: 2\r\nX-A: 2\r\n\r\nok");
      co_return false;
    }
    if (line.find("/folded") != std::string::npos) {
      co_await c.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: 3\r\n  more\r\n\r\nok");
      co_return true;
    }
    co_await c.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: 4\r\nConnection: close\r\n\r\nok");
    co_return false;
  };
  upstream::client cl(io.get_executor());
  std::vector<core::result<upstream::response>> got;
  std::vector<std::size_t> idle;
  run([&]() -> net::awaitable<void> {
    for (const char* path : {"/split", "/old", "/folded", "/close"}) {
      got.push_back(co_await cl.send(post(srv, path)));
      idle.push_back(cl.idle_connections());
    }
  });
  ASSERT_EQ(got.size(), 4u);
  for (auto& r : got) {
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->status, 200);
  }
  EXPECT_EQ(got[0]->body, "0123456789");
  EXPECT_EQ(header_value(got[0]->headers, "x-a"), "1");
  EXPECT_EQ(got[1]->body, "ok");
  EXPECT_EQ(header_value(got[1]->headers, "x-a"), "2");
  EXPECT_EQ(got[2]->body, "ok");
  EXPECT_EQ(got[3]->body, "ok");
  EXPECT_EQ(header_value(got[3]->headers, "x-a"), "4");
  // Each request reuses the pooled connection if there is one.
  EXPECT_EQ(idle[0], 1u);  // read whole: pooled
  EXPECT_EQ(idle[1], 0u);  // HTTP/1.0 answer: that connection is not returned
  EXPECT_EQ(idle[2], 1u);  // a fresh one, pooled
  EXPECT_EQ(idle[3], 0u);  // Connection: close: not returned
}

TEST_F(upstream_client, caller_user_agent_and_get_without_body) {
  test_server srv(io);
  srv.on_request = [](server_conn& c, http_request&, int) -> net::awaitable<bool> {
    co_await c.write(json_reply("{}"));
    co_return true;
  };
  upstream::client cl(io.get_executor());
  std::optional<core::result<upstream::response>> res;
  upstream::request req;
  req.method = "GET";
  req.url = srv.url("/v1/models?x=1");
  req.headers = {{"User-Agent", "custom/1"}};
  run([&]() -> net::awaitable<void> { res = co_await cl.send(req); });
  ASSERT_TRUE(*res) << (*res).error().message;
  ASSERT_EQ(srv.requests.size(), 1u);
  EXPECT_EQ(srv.requests[0].request_line(), "GET /v1/models?x=1 HTTP/1.1");
  EXPECT_EQ(srv.requests[0].header("user-agent"), "custom/1");
  EXPECT_FALSE(srv.requests[0].header("content-length"));
}

TEST_F(upstream_client, send_dechunks_a_chunked_body) {
  test_server srv(io);
  srv.on_request = [](server_conn& c, http_request&, int) -> net::awaitable<bool> {
    co_await c.write(chunked_head() + chunk("hello "));
    co_await c.pause(20ms);
    co_await c.write("5;ext=1\r\nworld\r\n");  // chunk extension is ignored
    co_await c.write(chunk("!") + "0\r\nX-Trailer: t\r\n\r\n");
    co_return true;
  };
  upstream::client cl(io.get_executor());
  std::optional<core::result<upstream::response>> res;
  run([&]() -> net::awaitable<void> { res = co_await cl.send(post(srv)); });
  ASSERT_TRUE(*res) << (*res).error().message;
  EXPECT_EQ((*res)->body, "hello world!");
  EXPECT_EQ(cl.idle_connections(), 1u);
}

TEST_F(upstream_client, interim_100_continue_is_skipped_and_204_has_no_body) {
  test_server srv(io);
  srv.on_request = [](server_conn& c, http_request&, int n) -> net::awaitable<bool> {
    if (n == 1) {
      co_await c.write("HTTP/1.1 100 Continue\r\n\r\n" + reply("HTTP/1.1 200 OK", "ok"));
    } else {
      co_await c.write("HTTP/1.1 204 No Content\r\n\r\n");
    }
    co_return true;
  };
  upstream::client cl(io.get_executor());
  std::optional<core::result<upstream::response>> a;
  std::optional<core::result<upstream::response>> b;
  run([&]() -> net::awaitable<void> {
    a = co_await cl.send(post(srv));
    b = co_await cl.send(post(srv));
  });
  ASSERT_TRUE(*a) << (*a).error().message;
  EXPECT_EQ((*a)->status, 200);
  EXPECT_EQ((*a)->body, "ok");
  ASSERT_TRUE(*b) << (*b).error().message;
  EXPECT_EQ((*b)->status, 204);
  EXPECT_EQ((*b)->body, "");
  EXPECT_EQ(srv.connections, 1);
}

TEST_F(upstream_client, http_error_status_is_a_value) {
  test_server srv(io);
  srv.on_request = [](server_conn& c, http_request&, int) -> net::awaitable<bool> {
    co_await c.write(reply("HTTP/1.1 429 Too Many Requests", R"({"error":{}})", "Retry-After: 3\r\n"));
    co_return true;
  };
  upstream::client cl(io.get_executor());
  std::optional<core::result<upstream::response>> res;
  run([&]() -> net::awaitable<void> { res = co_await cl.send(post(srv)); });
  ASSERT_TRUE(*res);
  EXPECT_EQ((*res)->status, 429);
  EXPECT_EQ(header_value((*res)->headers, "retry-after"), "3");
}

// ---------------------------------------------------------------- keep-alive pool

TEST_F(upstream_client, keep_alive_reuses_one_connection) {
  test_server srv(io);
  srv.on_request = [](server_conn& c, http_request&, int n) -> net::awaitable<bool> {
    co_await c.write(json_reply("{\"n\":" + std::to_string(n) + "}"));
    co_return true;
  };
  upstream::client cl(io.get_executor());
  std::size_t idle_after_first = 0;
  std::optional<core::result<upstream::response>> second;
  run([&]() -> net::awaitable<void> {
    auto first = co_await cl.send(post(srv));
    idle_after_first = cl.idle_connections();
    second = co_await cl.send(post(srv));
  });
  EXPECT_EQ(idle_after_first, 1u);
  ASSERT_TRUE(*second) << (*second).error().message;
  EXPECT_EQ((*second)->body, "{\"n\":2}");  // second request on the same connection
  EXPECT_EQ(cl.idle_connections(), 1u);
  EXPECT_EQ(srv.connections, 1);
  EXPECT_EQ(srv.requests.size(), 2u);
}

TEST_F(upstream_client, stale_pooled_connection_is_retried_once_on_a_fresh_one) {
  test_server srv(io);
  // Connection 1 answers its first request, then dies when the second arrives.
  srv.on_request = [](server_conn& c, http_request&, int n) -> net::awaitable<bool> {
    if (c.index == 1 && n == 2) {
      co_return false;  // closes without a response byte
    }
    co_await c.write(json_reply("{\"conn\":" + std::to_string(c.index) + "}"));
    co_return true;
  };
  upstream::client cl(io.get_executor());
  std::optional<core::result<upstream::response>> first;
  std::optional<core::result<upstream::response>> second;
  run([&]() -> net::awaitable<void> {
    first = co_await cl.send(post(srv));
    second = co_await cl.send(post(srv));
  });
  ASSERT_TRUE(*first);
  ASSERT_TRUE(*second) << (*second).error().message;
  EXPECT_EQ((*second)->body, "{\"conn\":2}");
  EXPECT_EQ(srv.connections, 2);
  EXPECT_EQ(srv.requests.size(), 3u);
}

TEST_F(upstream_client, fresh_connection_closed_without_response_is_not_retried) {
  test_server srv(io);
  srv.on_request = [](server_conn&, http_request&, int) -> net::awaitable<bool> { co_return false; };
  upstream::client cl(io.get_executor());
  std::optional<core::result<upstream::response>> res;
  run([&]() -> net::awaitable<void> { res = co_await cl.send(post(srv)); });
  ASSERT_FALSE(*res);
  EXPECT_EQ((*res).error().code, core::errc::upstream_unreachable);
  EXPECT_NE((*res).error().message.find("closed before the response"), std::string::npos) << (*res).error().message;
  EXPECT_EQ(srv.connections, 1);
}

TEST_F(upstream_client, idle_connection_closed_by_server_leaves_the_pool) {
  test_server srv(io);
  srv.on_request = [](server_conn& c, http_request&, int) -> net::awaitable<bool> {
    co_await c.write(json_reply("{}"));
    co_await c.pause(50ms);
    co_return false;  // server-side idle close
  };
  upstream::client cl(io.get_executor());
  std::size_t idle_before = 0;
  bool dropped = false;
  std::optional<core::result<upstream::response>> again;
  run([&]() -> net::awaitable<void> {
    auto r = co_await cl.send(post(srv));
    idle_before = cl.idle_connections();
    dropped = co_await eventually([&] { return cl.idle_connections() == 0; });
    again = co_await cl.send(post(srv));
  });
  EXPECT_EQ(idle_before, 1u);
  EXPECT_TRUE(dropped);
  ASSERT_TRUE(*again) << (*again).error().message;
  EXPECT_EQ(srv.connections, 2);
  EXPECT_EQ(srv.requests.size(), 2u);  // no failed attempt on the dead connection
}

TEST_F(upstream_client, connection_close_response_is_not_pooled) {
  test_server srv(io);
  srv.on_request = [](server_conn& c, http_request&, int) -> net::awaitable<bool> {
    co_await c.write(json_reply("{}", "Connection: close\r\n"));
    co_return false;
  };
  upstream::client cl(io.get_executor());
  std::optional<core::result<upstream::response>> res;
  run([&]() -> net::awaitable<void> { res = co_await cl.send(post(srv)); });
  ASSERT_TRUE(*res);
  EXPECT_EQ(cl.idle_connections(), 0u);
}

TEST_F(upstream_client, idle_connections_expire_after_idle_timeout) {
  test_server srv(io);
  srv.on_request = [](server_conn& c, http_request&, int) -> net::awaitable<bool> {
    co_await c.write(json_reply("{}"));
    co_return true;
  };
  upstream::client_options opts;
  opts.idle_timeout = 1s;
  upstream::client cl(io.get_executor(), opts);
  std::size_t idle_before = 0;
  bool expired = false;
  run([&]() -> net::awaitable<void> {
    auto r = co_await cl.send(post(srv));
    idle_before = cl.idle_connections();
    expired = co_await eventually([&] { return cl.idle_connections() == 0; }, 3000ms);
  });
  EXPECT_EQ(idle_before, 1u);
  EXPECT_TRUE(expired);
}

TEST_F(upstream_client, idle_pool_is_capped_per_host) {
  test_server srv(io);
  srv.on_request = [](server_conn& c, http_request&, int) -> net::awaitable<bool> {
    co_await c.write(json_reply("{}"));
    co_return true;
  };
  upstream::client_options opts;
  opts.max_idle_per_host = 1;
  upstream::client cl(io.get_executor(), opts);
  run([&]() -> net::awaitable<void> {
    auto a = co_await cl.open(post(srv));  // both in flight: two connections
    auto b = co_await cl.open(post(srv));
    if (a && b) {
      while (!(co_await (*a)->read_some()).value().empty()) {
      }
      while (!(co_await (*b)->read_some()).value().empty()) {
      }
    }
  });
  EXPECT_EQ(srv.connections, 2);
  EXPECT_EQ(cl.idle_connections(), 1u);
}

// ---------------------------------------------------------------- open() streaming

TEST_F(upstream_client, stream_first_piece_arrives_before_the_server_finishes) {
  test_server srv(io);
  const std::string e1 = "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n";  // ~50 bytes
  const std::string e2 = "data: {\"choices\":[{\"delta\":{\"content\":\"!\"}}]}\n\n";
  const std::string e3 = "data: [DONE]\n\n";
  steady::time_point last_sent;
  srv.on_request = [&](server_conn& c, http_request&, int) -> net::awaitable<bool> {
    co_await c.write(chunked_head() + chunk(e1));
    co_await c.pause(500ms);
    co_await c.write(chunk(e2));
    co_await c.pause(500ms);
    last_sent = steady::now();
    co_await c.write(chunk(e3) + last_chunk);
    co_return true;
  };
  upstream::client cl(io.get_executor());
  steady::time_point opened;
  steady::time_point first_at;
  std::string first;
  std::string all;
  int status = 0;
  std::string content_type;
  std::optional<core::error> err;
  run([&]() -> net::awaitable<void> {
    auto start = steady::now();
    auto s = co_await cl.open(post(srv));
    if (!s) {
      err = s.error();
      co_return;
    }
    opened = steady::now();
    status = (*s)->status();
    content_type = header_value((*s)->headers(), "content-type");
    auto p = co_await (*s)->read_some();
    first_at = steady::now();
    if (!p) {
      err = p.error();
      co_return;
    }
    first = *p;
    all = first;
    for (;;) {
      auto q = co_await (*s)->read_some();
      if (!q) {
        err = q.error();
        co_return;
      }
      if (q->empty()) {
        break;
      }
      all += *q;
    }
    (void)start;
  });
  ASSERT_FALSE(err) << err->message;
  EXPECT_EQ(status, 200);
  EXPECT_EQ(content_type, "text/event-stream");
  EXPECT_EQ(first, e1);
  EXPECT_EQ(all, e1 + e2 + e3);
  EXPECT_LT(first_at - opened, 250ms);
  EXPECT_GT(last_sent - first_at, 700ms);  // the first piece came ~1 s before the last was sent

  upstream::sse_parser parser;
  std::vector<upstream::sse_parser::event> events;
  parser.feed(all, events);
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[2].data, "[DONE]");
  EXPECT_EQ(cl.idle_connections(), 1u);  // read to the end: back in the pool
}

TEST_F(upstream_client, stream_content_length_and_read_until_close_bodies_arrive_promptly) {
  test_server srv(io);
  srv.on_request = [&](server_conn& c, http_request& r, int) -> net::awaitable<bool> {
    bool until_close = r.request_line().find("/close") != std::string::npos;
    if (until_close) {
      co_await c.write("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\npart1;");
    } else {
      co_await c.write("HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\npart1;");
    }
    co_await c.pause(300ms);
    co_await c.write("part2;");
    co_return !until_close;
  };
  upstream::client cl(io.get_executor());
  struct outcome {
    ms first_after{};
    std::string body;
    std::optional<core::error> err;
  };
  outcome by_length;
  outcome by_close;
  std::size_t idle_after_length = 0;
  auto consume = [&](std::string path, outcome& out) -> net::awaitable<void> {
    auto s = co_await cl.open(post(srv, path));
    if (!s) {
      out.err = s.error();
      co_return;
    }
    auto t = steady::now();
    for (bool first = true;; first = false) {
      auto p = co_await (*s)->read_some();
      if (first) {
        out.first_after = since(t);
      }
      if (!p) {
        out.err = p.error();
        co_return;
      }
      if (p->empty()) {
        break;
      }
      out.body += *p;
    }
  };
  run([&]() -> net::awaitable<void> {
    co_await consume("/length", by_length);
    idle_after_length = cl.idle_connections();
    co_await consume("/close", by_close);
  });
  ASSERT_FALSE(by_length.err) << by_length.err->message;
  ASSERT_FALSE(by_close.err) << by_close.err->message;
  EXPECT_EQ(by_length.body, "part1;part2;");
  EXPECT_EQ(by_close.body, "part1;part2;");
  EXPECT_LT(by_length.first_after, 200ms);
  EXPECT_LT(by_close.first_after, 200ms);
  EXPECT_EQ(idle_after_length, 1u);
  EXPECT_EQ(cl.idle_connections(), 0u);  // the read-until-close connection is gone (the other was reused)
}

net::awaitable<void> pause_for(std::chrono::milliseconds d) {
  net::steady_timer t(co_await net::this_coro::executor, d);
  co_await t.async_wait(net::use_awaitable);
}

// take_buffered(): what arrived with the head is handed over without I/O (a relay that
// gets the whole body this way needs no disconnect watch); the rest is read as usual.
TEST_F(upstream_client, take_buffered_hands_over_what_came_with_the_head) {
  test_server srv(io);
  srv.on_request = [](server_conn& c, http_request& r, int) -> net::awaitable<bool> {
    if (r.request_line().find("/whole") != std::string::npos) {
      co_await c.write(chunked_head() + chunk("data: a\n\n") + chunk("data: b\n\n") + last_chunk);
      co_return true;
    }
    co_await c.write(chunked_head() + chunk("data: a\n\n"));
    co_await c.pause(200ms);
    co_await c.write(chunk("data: b\n\n") + last_chunk);
    co_return true;
  };
  upstream::client cl(io.get_executor());
  std::string whole_first, split_first, split_rest;
  bool whole_complete = false;
  bool split_complete = true;
  run([&]() -> net::awaitable<void> {
    auto w = co_await cl.open(post(srv, "/whole"));
    EXPECT_TRUE(w);
    if (w) {
      co_await pause_for(50ms);  // let the whole answer arrive
      whole_first = (*w)->take_buffered();
      whole_complete = (*w)->complete();
      EXPECT_EQ((co_await (*w)->read_some()).value(), "");  // complete: no I/O, no bytes
    }
    auto s = co_await cl.open(post(srv, "/split"));
    EXPECT_TRUE(s);
    if (s) {
      co_await pause_for(50ms);
      split_first = (*s)->take_buffered();
      split_complete = (*s)->complete();
      for (;;) {
        auto p = co_await (*s)->read_some();
        if (!p || p->empty()) {
          break;
        }
        split_rest += *p;
      }
    }
  });
  EXPECT_EQ(whole_first, "data: a\n\ndata: b\n\n");
  EXPECT_TRUE(whole_complete);
  EXPECT_EQ(split_first, "data: a\n\n");
  EXPECT_FALSE(split_complete);
  EXPECT_EQ(split_rest, "data: b\n\n");
  EXPECT_EQ(cl.idle_connections(), 1u);  // both read to the end; one connection, reused
}

TEST_F(upstream_client, finished_stream_connection_is_reused_by_send) {
  test_server srv(io);
  srv.on_request = [](server_conn& c, http_request&, int) -> net::awaitable<bool> {
    co_await c.write(chunked_head() + chunk("data: x\n\n") + last_chunk);
    co_return true;
  };
  upstream::client cl(io.get_executor());
  std::optional<core::result<upstream::response>> res;
  run([&]() -> net::awaitable<void> {
    auto s = co_await cl.open(post(srv));
    while (s && !(co_await (*s)->read_some()).value().empty()) {
    }
    res = co_await cl.send(post(srv));
  });
  ASSERT_TRUE(*res);
  EXPECT_EQ((*res)->body, "data: x\n\n");
  EXPECT_EQ(srv.connections, 1);
}

// ---------------------------------------------------------------- failures

TEST_F(upstream_client, connect_refused_is_unreachable) {
  unsigned short port = 0;
  {
    tcp::acceptor a(io, tcp::endpoint(net::ip::address_v4::loopback(), 0));
    port = a.local_endpoint().port();
  }  // closed: nothing listens there now
  upstream::client cl(io.get_executor());
  std::optional<core::result<upstream::response>> res;
  upstream::request req;
  req.url = "http://127.0.0.1:" + std::to_string(port) + "/v1/x";
  run([&]() -> net::awaitable<void> { res = co_await cl.send(req); });
  ASSERT_FALSE(*res);
  EXPECT_EQ((*res).error().code, core::errc::upstream_unreachable);
  EXPECT_NE((*res).error().message.find("cannot connect"), std::string::npos) << (*res).error().message;
}

TEST_F(upstream_client, dns_failure_is_reported_within_the_connect_timeout) {
  upstream::client cl(io.get_executor());
  std::optional<core::result<std::unique_ptr<upstream::body_stream>>> res;
  upstream::request req;
  req.url = "http://no-such-host.invalid/v1/x";
  req.connect_timeout = 3000ms;
  auto start = steady::now();
  run([&]() -> net::awaitable<void> { res = co_await cl.open(req); });
  ASSERT_FALSE(*res);
  // Without a reachable resolver the lookup may time out instead; both are bounded.
  auto code = (*res).error().code;
  EXPECT_TRUE(code == core::errc::upstream_unreachable || code == core::errc::upstream_timeout);
  EXPECT_LT(since(start), 3500ms);
}

TEST_F(upstream_client, invalid_url_and_header_injection_are_rejected) {
  upstream::client cl(io.get_executor());
  std::optional<core::result<upstream::response>> bad_url;
  std::optional<core::result<upstream::response>> bad_header;
  test_server srv(io);
  run([&]() -> net::awaitable<void> {
    upstream::request a;
    a.url = "ftp://example.com/";
    bad_url = co_await cl.send(a);
    auto b = post(srv);
    b.headers.push_back({"Authorization", "Bearer sk\r\nX-Evil: 1"});
    bad_header = co_await cl.send(b);
  });
  ASSERT_FALSE(*bad_url);
  EXPECT_NE((*bad_url).error().message.find("invalid upstream URL"), std::string::npos);
  ASSERT_FALSE(*bad_header);
  EXPECT_EQ(srv.connections, 0);
}

TEST_F(upstream_client, stall_before_head_times_out_within_the_timeout) {
  test_server srv(io);
  srv.on_request = [](server_conn& c, http_request&, int) -> net::awaitable<bool> {
    co_await c.pause(30s);  // never answers (the test ends first)
    co_return false;
  };
  upstream::client cl(io.get_executor());
  std::optional<core::result<upstream::response>> sent;
  std::optional<core::result<std::unique_ptr<upstream::body_stream>>> opened;
  ms send_took{};
  ms open_took{};
  run([&]() -> net::awaitable<void> {
    auto req = post(srv);
    req.timeout = 300ms;
    auto t = steady::now();
    sent = co_await cl.send(req);
    send_took = since(t);
    t = steady::now();
    opened = co_await cl.open(req);
    open_took = since(t);
  });
  ASSERT_FALSE(*sent);
  EXPECT_EQ((*sent).error().code, core::errc::upstream_timeout);
  EXPECT_GE(send_took, 290ms);
  EXPECT_LT(send_took, 1000ms);
  ASSERT_FALSE(*opened);
  EXPECT_EQ((*opened).error().code, core::errc::upstream_timeout);
  EXPECT_GE(open_took, 290ms);
  EXPECT_LT(open_took, 1000ms);
  EXPECT_EQ(cl.idle_connections(), 0u);
}

TEST_F(upstream_client, stall_mid_body_times_out_each_read) {
  test_server srv(io);
  srv.on_request = [](server_conn& c, http_request&, int) -> net::awaitable<bool> {
    co_await c.write(chunked_head() + chunk("data: 1\n\n"));
    co_await c.pause(30s);
    co_return false;
  };
  upstream::client cl(io.get_executor());
  std::optional<core::result<std::string>> first;
  std::optional<core::result<std::string>> second;
  ms second_took{};
  run([&]() -> net::awaitable<void> {
    auto req = post(srv);
    req.timeout = 300ms;
    auto s = co_await cl.open(req);
    if (!s) {
      co_return;
    }
    first = co_await (*s)->read_some();
    auto t = steady::now();
    second = co_await (*s)->read_some();
    second_took = since(t);
  });
  ASSERT_TRUE(first && *first);
  EXPECT_EQ(**first, "data: 1\n\n");
  ASSERT_TRUE(second);
  ASSERT_FALSE(*second);
  EXPECT_EQ((*second).error().code, core::errc::upstream_timeout);
  EXPECT_GE(second_took, 290ms);
  EXPECT_LT(second_took, 1000ms);
  EXPECT_EQ(cl.idle_connections(), 0u);
}

TEST_F(upstream_client, send_is_bounded_as_a_whole_even_if_bytes_trickle_in) {
  test_server srv(io);
  srv.on_request = [](server_conn& c, http_request&, int) -> net::awaitable<bool> {
    co_await c.write("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n");
    for (int i = 0; i < 100; ++i) {
      co_await c.pause(50ms);
      if (!co_await c.write("x")) {
        break;
      }
    }
    co_return false;
  };
  upstream::client cl(io.get_executor());
  std::optional<core::result<upstream::response>> res;
  ms took{};
  run([&]() -> net::awaitable<void> {
    auto req = post(srv);
    req.timeout = 500ms;
    auto t = steady::now();
    res = co_await cl.send(req);
    took = since(t);
  });
  ASSERT_FALSE(*res);
  EXPECT_EQ((*res).error().code, core::errc::upstream_timeout);
  EXPECT_LT(took, 1200ms);
}

TEST_F(upstream_client, connection_cut_mid_body_is_an_error) {
  test_server srv(io);
  srv.on_request = [](server_conn& c, http_request& r, int) -> net::awaitable<bool> {
    if (r.request_line().find("/chunked") != std::string::npos) {
      co_await c.write(chunked_head() + chunk("data: 1\n\n") + "20\r\npartial");
    } else {
      co_await c.write("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789");
    }
    co_await c.pause(20ms);
    co_return false;  // closes mid-body
  };
  upstream::client cl(io.get_executor());
  std::optional<core::result<upstream::response>> sent;
  std::string streamed;
  std::optional<core::error> stream_err;
  run([&]() -> net::awaitable<void> {
    sent = co_await cl.send(post(srv, "/length"));
    auto s = co_await cl.open(post(srv, "/chunked"));
    if (!s) {
      stream_err = s.error();
      co_return;
    }
    for (;;) {
      auto p = co_await (*s)->read_some();
      if (!p) {
        stream_err = p.error();
        break;
      }
      if (p->empty()) {
        break;
      }
      streamed += *p;
    }
  });
  ASSERT_FALSE(*sent);
  EXPECT_EQ((*sent).error().code, core::errc::upstream_unreachable);
  EXPECT_NE((*sent).error().message.find("mid-body"), std::string::npos) << (*sent).error().message;
  ASSERT_TRUE(stream_err) << "stream ended cleanly after: " << streamed;
  EXPECT_EQ(stream_err->code, core::errc::upstream_unreachable);
  EXPECT_NE(stream_err->message.find("mid-body"), std::string::npos) << stream_err->message;
  EXPECT_EQ(streamed.substr(0, 9), "data: 1\n\n");
  EXPECT_EQ(cl.idle_connections(), 0u);
}

TEST_F(upstream_client, response_larger_than_max_response_bytes_is_an_error) {
  test_server srv(io);
  srv.on_request = [](server_conn& c, http_request& r, int) -> net::awaitable<bool> {
    if (r.request_line().find("/chunked") != std::string::npos) {
      co_await c.write(chunked_head() + chunk(std::string(600, 'a')) + chunk(std::string(600, 'b')) + last_chunk);
    } else {
      co_await c.write(reply("HTTP/1.1 200 OK", std::string(5000, 'x')));
    }
    co_return true;
  };
  upstream::client_options opts;
  opts.max_response_bytes = 1000;
  upstream::client cl(io.get_executor(), opts);
  std::optional<core::result<upstream::response>> by_length;
  std::optional<core::result<upstream::response>> by_chunks;
  run([&]() -> net::awaitable<void> {
    by_length = co_await cl.send(post(srv, "/length"));
    by_chunks = co_await cl.send(post(srv, "/chunked"));
  });
  for (auto* r : {&by_length, &by_chunks}) {
    ASSERT_FALSE(**r);
    EXPECT_NE((**r).error().message.find("max_response_bytes"), std::string::npos) << (**r).error().message;
    EXPECT_FALSE((**r).error().retryable);
  }
  EXPECT_EQ(cl.idle_connections(), 0u);
}

TEST_F(upstream_client, garbage_responses_are_errors) {
  test_server srv(io);
  srv.on_request = [](server_conn& c, http_request& r, int) -> net::awaitable<bool> {
    if (r.request_line().find("/head") != std::string::npos) {
      co_await c.write("SSH-2.0-OpenSSH_9.2\r\nnot http at all\r\n\r\n");
    } else {
      co_await c.write(chunked_head() + "zz-not-hex\r\n");
    }
    co_await c.pause(20ms);
    co_return false;
  };
  upstream::client cl(io.get_executor());
  std::optional<core::result<upstream::response>> bad_head;
  std::optional<core::result<upstream::response>> bad_chunk;
  run([&]() -> net::awaitable<void> {
    bad_head = co_await cl.send(post(srv, "/head"));
    bad_chunk = co_await cl.send(post(srv, "/chunk"));
  });
  ASSERT_FALSE(*bad_head);
  EXPECT_EQ((*bad_head).error().code, core::errc::upstream_unreachable);
  EXPECT_NE((*bad_head).error().message.find("malformed"), std::string::npos) << (*bad_head).error().message;
  ASSERT_FALSE(*bad_chunk);
  EXPECT_EQ((*bad_chunk).error().code, core::errc::upstream_unreachable);
}

TEST_F(upstream_client, oversized_response_head_is_an_error) {
  test_server srv(io);
  srv.on_request = [](server_conn& c, http_request&, int) -> net::awaitable<bool> {
    co_await c.write("HTTP/1.1 200 OK\r\nX-Big: " + std::string(100 * 1024, 'h') + "\r\nContent-Length: 0\r\n\r\n");
    co_return false;
  };
  upstream::client cl(io.get_executor());
  std::optional<core::result<upstream::response>> res;
  run([&]() -> net::awaitable<void> { res = co_await cl.send(post(srv)); });
  ASSERT_FALSE(*res);
  EXPECT_EQ((*res).error().code, core::errc::upstream_unreachable);
}

// ---------------------------------------------------------------- cancel / abandon

// request::cancel: a caller gives up on a call while it waits (its client left). The call
// ends at once, not retryable, and its connection is closed, never pooled; a cancel after
// the call returned touches nothing (the binding is gone: ASan would see a stale one).
TEST_F(upstream_client, call_cancel_ends_a_call_waiting_for_its_head_or_its_body) {
  test_server srv(io);
  srv.on_request = [](server_conn& c, http_request& r, int) -> net::awaitable<bool> {
    if (r.head.rfind("POST /body ", 0) == 0) {
      co_await c.write("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"partial\":");
    }
    co_await c.pause(30s);  // the rest never comes (the test ends first)
    co_return false;
  };
  upstream::client cl(io.get_executor());
  std::vector<core::result<upstream::response>> sent;
  std::optional<core::result<std::unique_ptr<upstream::body_stream>>> opened;
  run([&]() -> net::awaitable<void> {
    auto ex = co_await net::this_coro::executor;
    for (const char* path : {"/head", "/body"}) {
      const std::size_t seen = srv.requests.size();
      upstream::call_cancel cancel;
      auto req = post(srv, path);
      req.timeout = 20000ms;
      req.cancel = &cancel;
      net::co_spawn(ex, [&]() -> net::awaitable<void> {
        co_await eventually([&] { return srv.requests.size() > seen; }, 10000ms);
        co_await sleep_for(20ms);  // the request is out: the client waits on the server now
        cancel.cancel();
      }, net::detached);
      sent.push_back(co_await cl.send(req));
    }
    {
      const std::size_t seen = srv.requests.size();
      upstream::call_cancel cancel;
      auto req = post(srv, "/head");
      req.timeout = 20000ms;
      req.cancel = &cancel;
      net::co_spawn(ex, [&]() -> net::awaitable<void> {
        co_await eventually([&] { return srv.requests.size() > seen; }, 10000ms);
        co_await sleep_for(20ms);
        cancel.cancel();
      }, net::detached);
      opened = co_await cl.open(req);
    }
    {
      upstream::call_cancel cancel;  // asked before the call: no connection is made
      cancel.cancel();
      auto req = post(srv, "/head");
      req.cancel = &cancel;
      const std::size_t seen = srv.requests.size();
      sent.push_back(co_await cl.send(req));
      EXPECT_EQ(srv.requests.size(), seen);
    }
  }, 60s);
  ASSERT_EQ(sent.size(), 3u);
  for (const auto& r : sent) {
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, core::errc::upstream_unreachable);
    EXPECT_FALSE(r.error().retryable);
    EXPECT_NE(r.error().message.find("cancelled"), std::string::npos) << r.error().message;
  }
  ASSERT_TRUE(opened);
  ASSERT_FALSE(*opened);
  EXPECT_NE((*opened).error().message.find("cancelled"), std::string::npos);
  EXPECT_EQ(cl.idle_connections(), 0u);
}

TEST_F(upstream_client, call_cancel_after_the_answer_changes_nothing) {
  test_server srv(io);
  srv.on_request = [](server_conn& c, http_request&, int) -> net::awaitable<bool> {
    co_await c.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}");
    co_return true;
  };
  upstream::client cl(io.get_executor());
  upstream::call_cancel cancel;
  std::optional<core::result<upstream::response>> sent;
  run([&]() -> net::awaitable<void> {
    auto req = post(srv);
    req.cancel = &cancel;
    sent = co_await cl.send(req);
    cancel.cancel();  // the client left just after: the answer and the pooled connection stay
  });
  ASSERT_TRUE(sent && *sent);
  EXPECT_EQ((**sent).status, 200);
  EXPECT_EQ(cl.idle_connections(), 1u);
}

TEST_F(upstream_client, cancel_closes_the_upstream_connection) {
  test_server srv(io);
  bool server_saw_close = false;
  steady::time_point closed_at;
  srv.on_request = [&](server_conn& c, http_request&, int) -> net::awaitable<bool> {
    co_await c.write(chunked_head() + chunk("data: 1\n\n"));
    server_saw_close = co_await c.wait_closed(3000ms);
    closed_at = steady::now();
    co_return false;
  };
  upstream::client cl(io.get_executor());
  steady::time_point cancelled_at;
  std::optional<core::result<std::string>> after_cancel;
  run([&]() -> net::awaitable<void> {
    auto s = co_await cl.open(post(srv));
    if (!s) {
      co_return;
    }
    auto first = co_await (*s)->read_some();
    (*s)->cancel();
    cancelled_at = steady::now();
    after_cancel = co_await (*s)->read_some();
    co_await eventually([&] { return server_saw_close; });
  });
  EXPECT_TRUE(server_saw_close);
  EXPECT_LT(closed_at - cancelled_at, 500ms);
  ASSERT_TRUE(after_cancel);
  EXPECT_FALSE(*after_cancel);
  EXPECT_EQ(cl.idle_connections(), 0u);
}

TEST_F(upstream_client, cancel_ends_a_pending_read_at_once) {
  test_server srv(io);
  srv.on_request = [](server_conn& c, http_request&, int) -> net::awaitable<bool> {
    co_await c.write(chunked_head());
    co_await c.pause(30s);
    co_return false;
  };
  upstream::client cl(io.get_executor());
  std::optional<core::result<std::string>> pending;
  ms read_took{};
  run([&]() -> net::awaitable<void> {
    auto s = co_await cl.open(post(srv));
    if (!s) {
      co_return;
    }
    upstream::body_stream& stream = **s;
    auto t = steady::now();
    net::co_spawn(
        io,
        [&]() -> net::awaitable<void> {
          pending = co_await stream.read_some();
          read_took = since(t);
        },
        net::detached);
    co_await sleep_for(100ms);
    stream.cancel();
    co_await eventually([&] { return pending.has_value(); });
  });
  ASSERT_TRUE(pending);
  ASSERT_FALSE(*pending);
  EXPECT_LT(read_took, 1000ms);  // the 5 s read timeout did not have to pass
}

TEST_F(upstream_client, destroying_an_unfinished_stream_closes_not_pools) {
  test_server srv(io);
  bool server_saw_close = false;
  srv.on_request = [&](server_conn& c, http_request&, int) -> net::awaitable<bool> {
    co_await c.write(chunked_head() + chunk("data: 1\n\n"));
    server_saw_close = co_await c.wait_closed(3000ms);
    co_return false;
  };
  upstream::client cl(io.get_executor());
  run([&]() -> net::awaitable<void> {
    {
      auto s = co_await cl.open(post(srv));
      if (s) {
        auto first = co_await (*s)->read_some();
      }
    }
    co_await eventually([&] { return server_saw_close; });
  });
  EXPECT_TRUE(server_saw_close);
  EXPECT_EQ(cl.idle_connections(), 0u);
}

}  // namespace
