#include "switchyard/store/redis/redis_client.hpp"

#include "store_test_support.hpp"

namespace {

using namespace store_test;
namespace core = switchyard::core;
namespace rd = switchyard::store::redis;
using kind = rd::reply::kind;
using args = std::vector<std::string>;

// Builds a command outside the coroutine: GCC 12 rejects braced lists of string literals
// inside co_await expressions ("array used as initializer").
template <class... T>
args cmd(T&&... a) {
  return args{std::string(std::forward<T>(a))...};
}

class redis_client_test : public redis_fixture {
 protected:
  rd::redis_options options() const { return options_from_url(url); }
};

net::awaitable<rd::reply> must(rd::redis_client& c, args a) {
  auto what = a.front();
  auto r = co_await c.command(std::move(a), 2000ms);
  if (!r) {
    throw std::runtime_error(what + " failed: " + r.error().message);
  }
  co_return std::move(*r);
}

TEST_F(redis_client_test, command_round_trips) {
  run([&]() -> net::awaitable<void> {
    rd::redis_client c{co_await net::this_coro::executor, options()};
    auto up = co_await c.connect();
    CO_ASSERT(up.has_value(), up.error().message);
    EXPECT_TRUE(c.connected());

    auto set = co_await must(c, cmd("SET", prefix + "k", "value"));
    EXPECT_EQ(set.type, kind::status);
    EXPECT_EQ(set.str, "OK");

    auto get = co_await must(c, cmd("GET", prefix + "k"));
    EXPECT_EQ(get.type, kind::string);
    EXPECT_EQ(get.str, "value");

    auto nil = co_await must(c, cmd("GET", prefix + "missing"));
    EXPECT_TRUE(nil.is_nil());

    auto i1 = co_await must(c, cmd("INCR", prefix + "n"));
    auto i2 = co_await must(c, cmd("INCRBY", prefix + "n", "41"));
    EXPECT_EQ(i1.type, kind::integer);
    EXPECT_EQ(i1.integer, 1);
    EXPECT_EQ(i2.integer, 42);

    auto err = co_await must(c, cmd("INCR", prefix + "k"));  // "value" is not a number
    EXPECT_TRUE(err.is_error());
    EXPECT_NE(err.str.find("not an integer"), std::string::npos) << err.str;

    auto unknown = co_await must(c, cmd("NOSUCHCOMMAND"));
    EXPECT_TRUE(unknown.is_error());

    std::string binary("a\0b\r\nc", 6);
    co_await must(c, cmd("SET", prefix + "bin", binary));
    auto bin = co_await must(c, cmd("GET", prefix + "bin"));
    EXPECT_EQ(bin.str, binary);

    co_await must(c, cmd("RPUSH", prefix + "list", "x", "y", "z"));
    auto arr = co_await must(c, cmd("LRANGE", prefix + "list", "0", "-1"));
    CO_ASSERT(arr.type == kind::array && arr.elements.size() == 3u, "LRANGE shape");
    EXPECT_EQ(arr.elements[2].str, "z");

    auto mixed = co_await must(c, cmd("MGET", prefix + "k", prefix + "missing"));
    CO_ASSERT(mixed.elements.size() == 2u, "MGET shape");
    EXPECT_EQ(mixed.elements[0].str, "value");
    EXPECT_TRUE(mixed.elements[1].is_nil());

    auto ping = co_await c.ping();
    EXPECT_TRUE(ping.has_value());

    co_await must(c, cmd("DEL", prefix + "k", prefix + "n", prefix + "bin", prefix + "list"));
  });
}

TEST_F(redis_client_test, misuse_is_internal) {
  run([&]() -> net::awaitable<void> {
    rd::redis_client c{co_await net::this_coro::executor, options()};
    co_await c.connect();
    auto empty = co_await c.command(args{});
    CO_ASSERT(!empty.has_value(), "empty command accepted");
    EXPECT_EQ(empty.error().code, core::errc::internal);
    auto sub = co_await c.command(cmd("subscribe", "x"));
    CO_ASSERT(!sub.has_value(), "SUBSCRIBE through command() accepted");
    EXPECT_EQ(sub.error().code, core::errc::internal);
    EXPECT_TRUE((co_await c.ping()).has_value()) << "the connection is untouched";
  });
}

TEST_F(redis_client_test, many_concurrent_commands_and_a_large_value) {
  run([&]() -> net::awaitable<void> {
    auto ex = co_await net::this_coro::executor;
    rd::redis_client c{ex, options()};
    CO_ASSERT((co_await c.connect()).has_value(), "connect");
    int ok = 0;
    int finished = 0;
    constexpr int n = 500;
    for (int i = 0; i < n; ++i) {
      net::co_spawn(
          ex,
          [&]() -> net::awaitable<void> {
            auto r = co_await c.command(cmd("INCR", prefix + "count"), 5000ms);
            ok += r.has_value() && r->type == kind::integer ? 1 : 0;
            ++finished;
          },
          net::detached);
    }
    while (finished < n) {
      co_await sleep_for(5ms);
    }
    EXPECT_EQ(ok, n);
    auto total = co_await must(c, cmd("GET", prefix + "count"));
    EXPECT_EQ(total.str, std::to_string(n));

    std::string big(3 * 1024 * 1024 + 17, 'x');  // many reads (hiredis reads 16 KiB at a time)
    for (std::size_t i = 0; i < big.size(); i += 4096) {
      big[i] = static_cast<char>('a' + (i / 4096) % 26);
    }
    co_await must(c, cmd("SET", prefix + "big", big));
    auto got = co_await must(c, cmd("GET", prefix + "big"));
    EXPECT_TRUE(got.str == big) << "size " << got.str.size();
    co_await must(c, cmd("DEL", prefix + "count", prefix + "big"));
  });
}

TEST_F(redis_client_test, timeout_then_late_reply_is_dropped) {
  run([&]() -> net::awaitable<void> {
    rd::redis_client c{co_await net::this_coro::executor, options()};
    CO_ASSERT((co_await c.connect()).has_value(), "connect");
    auto t0 = steady::now();
    // The server holds this reply for 2 s: the 100 ms timeout ends the wait long before,
    // however slow this machine is (the bound below only tells a timeout from the reply).
    auto r = co_await c.command(cmd("BLPOP", prefix + "never", "2"), 100ms);
    auto took = since(t0);
    CO_ASSERT(!r.has_value(), "BLPOP should have timed out");
    EXPECT_EQ(r.error().code, core::errc::unavailable);
    EXPECT_NE(r.error().message.find("no reply within 100 ms"), std::string::npos) << r.error().message;
    EXPECT_GE(took, 100ms);
    EXPECT_LT(took, 1900ms);
    co_await sleep_for(2200ms);  // the late (nil) reply arrives and is dropped
    EXPECT_TRUE(c.connected());
    auto ping = co_await c.ping();
    EXPECT_TRUE(ping.has_value()) << (ping ? "" : ping.error().message);
  });
}

// send(): the command is queued at once; the observer learns how it ended.
struct tally final : rd::send_observer {
  int ok = 0;
  int failed = 0;
  void sent(bool good) noexcept override { ++(good ? ok : failed); }
};

TEST_F(redis_client_test, send_queues_a_command_and_reports_how_it_ended) {
  run([&]() -> net::awaitable<void> {
    rd::redis_client c{co_await net::this_coro::executor, options()};
    CO_ASSERT((co_await c.connect()).has_value(), "connect");
    auto seen = std::make_shared<tally>();
    const std::string key = prefix + "sent";
    const std::string_view set[] = {"SET", key, "v1", "PX", "60000"};
    EXPECT_TRUE(c.send(set, seen));
    const std::string_view bad[] = {"INCR", key};  // "v1" is not a number: an error reply
    EXPECT_TRUE(c.send(bad, seen));
    const std::string key2 = key + ":2";
    const std::string_view quiet[] = {"SET", key2, "v2"};
    EXPECT_TRUE(c.send(quiet));  // no observer at all
    while (seen->ok + seen->failed < 2) {
      co_await sleep_for(2ms);
    }
    EXPECT_EQ(seen->ok, 1);
    EXPECT_EQ(seen->failed, 1);
    auto got = co_await must(c, cmd("MGET", key, key2));
    CO_ASSERT(got.elements.size() == 2u, "MGET shape");
    EXPECT_EQ(got.elements[0].str, "v1");
    EXPECT_EQ(got.elements[1].str, "v2");

    const std::string_view empty[] = {"SUBSCRIBE", "x"};
    EXPECT_FALSE(c.send(empty, seen)) << "misuse is refused at once";
    co_await must(c, cmd("DEL", key, key2));

    // Sends still queued when the connection goes (here: closed before the loop could
    // write them) are reported as failed, each once.
    auto lost = std::make_shared<tally>();
    for (int i = 0; i < 3; ++i) {
      EXPECT_TRUE(c.send(set, lost));
    }
    c.close();
    EXPECT_EQ(lost->failed, 3);
    EXPECT_EQ(lost->ok, 0);
    EXPECT_FALSE(c.send(set, seen)) << "a closed client refuses at once";
    EXPECT_EQ(seen->ok + seen->failed, 2) << "a refused command is not reported later";
  });
}

// command_text: an argument written in pieces arrives as one; a command whose argument
// count does not match what start() announced, or that would switch the connection's
// mode, is refused before anything is queued.
TEST_F(redis_client_test, a_command_written_in_pieces_round_trips) {
  run([&]() -> net::awaitable<void> {
    rd::redis_client c{co_await net::this_coro::executor, options()};
    CO_ASSERT((co_await c.connect()).has_value(), "connect");
    const std::string value("head 1 2\n{\"a\":\"x\r\ny\"}\0z", 22);
    rd::command_text t;
    t.start(5);
    t.arg("SET");
    t.arg({prefix, "pieces"});
    t.arg({std::string_view(value).substr(0, 9), std::string_view(value).substr(9)});
    t.arg("PX");
    t.arg("60000");
    EXPECT_TRUE(t.complete());
    EXPECT_EQ(t.name(), "SET");
    EXPECT_EQ(t.text().data()[t.text().size()], '\0') << "hiredis reads the text with strchr";
    auto seen = std::make_shared<tally>();
    EXPECT_TRUE(c.send(t, seen));
    t.start(2);  // send() copied the text: the buffer serves the next command at once
    t.arg("GET");
    t.arg({prefix, "", "pieces"});
    EXPECT_EQ(t.text(), "*2\r\n$3\r\nGET\r\n$" + std::to_string(prefix.size() + 6) + "\r\n" + prefix + "pieces\r\n");
    auto got = co_await c.command(t, 2000ms);
    CO_ASSERT(got.has_value(), "GET");
    EXPECT_EQ(got->str, value);
    EXPECT_EQ(seen->ok, 1);
    auto ttl = co_await must(c, cmd("PTTL", prefix + "pieces"));
    EXPECT_GT(ttl.integer, 0);

    t.start(3);  // one argument short
    t.arg("SET");
    t.arg({prefix, "short"});
    EXPECT_FALSE(t.complete());
    EXPECT_FALSE(c.send(t, seen));
    auto short_one = co_await c.command(t, 2000ms);
    CO_ASSERT(!short_one.has_value(), "an incomplete command was sent");
    EXPECT_EQ(short_one.error().code, core::errc::internal);
    t.start(1);  // one too many
    t.arg("PING");
    t.arg("extra");
    EXPECT_FALSE(c.send(t, seen));
    t.start(2);
    t.arg("subscribe");
    t.arg("x");
    auto sub = co_await c.command(t, 2000ms);
    CO_ASSERT(!sub.has_value(), "SUBSCRIBE through command() accepted");
    EXPECT_EQ(sub.error().code, core::errc::internal);
    EXPECT_EQ(seen->ok + seen->failed, 1) << "refused commands are not reported";
    auto gone = co_await must(c, cmd("EXISTS", prefix + "short"));
    EXPECT_EQ(gone.integer, 0);
    EXPECT_TRUE((co_await c.ping()).has_value()) << "the connection is untouched";
    co_await must(c, cmd("DEL", prefix + "pieces"));
  });
}

TEST_F(redis_client_test, values_larger_than_the_kept_write_buffer_go_whole) {
  // The output buffer is kept between writes up to 1 MiB: a 3 MiB value is written in
  // several partial writes, then the buffer is replaced by a small one.
  run([&]() -> net::awaitable<void> {
    rd::redis_client c{co_await net::this_coro::executor, options()};
    CO_ASSERT((co_await c.connect()).has_value(), "connect");
    std::string big(3 * 1024 * 1024 + 5, 'y');
    for (std::size_t i = 0; i < big.size(); i += 1000) {
      big[i] = static_cast<char>('A' + (i / 1000) % 26);
    }
    auto seen = std::make_shared<tally>();
    for (int i = 0; i < 3; ++i) {
      const std::string key = prefix + "big" + std::to_string(i);
      const std::string_view set[] = {"SET", key, big};
      EXPECT_TRUE(c.send(set, seen));
    }
    while (seen->ok + seen->failed < 3) {
      co_await sleep_for(2ms);
    }
    EXPECT_EQ(seen->ok, 3);
    for (int i = 0; i < 3; ++i) {
      const std::string key = prefix + "big" + std::to_string(i);
      const std::string_view get[] = {"GET", key};
      auto r = co_await c.command(std::span<const std::string_view>(get), 5000ms);
      CO_ASSERT(r.has_value(), "GET");
      EXPECT_TRUE(r->str == big) << "value " << i << " size " << r->str.size();
    }
    auto small = co_await must(c, cmd("SET", prefix + "small", "after"));
    EXPECT_EQ(small.str, "OK");
    co_await must(c, cmd("DEL", prefix + "big0", prefix + "big1", prefix + "big2", prefix + "small"));
  });
}

TEST_F(redis_client_test, a_short_timeout_behind_a_long_one_fires_first) {
  // The client arms one timer at the earliest deadline: a command with a short timeout,
  // sent after one with a long timeout, must move it earlier. BLPOP holds the connection
  // for 3 s, so the PING behind it gets no reply before its 100 ms are up.
  run([&]() -> net::awaitable<void> {
    auto ex = co_await net::this_coro::executor;
    rd::redis_client c{ex, options()};
    CO_ASSERT((co_await c.connect()).has_value(), "connect");
    std::optional<core::result<rd::reply>> long_one;
    net::co_spawn(
        ex,
        [&]() -> net::awaitable<void> { long_one = co_await c.command(cmd("BLPOP", prefix + "never", "3"), 10000ms); },
        net::detached);
    co_await sleep_for(1ms);  // the BLPOP is queued first
    auto ping = co_await c.command(cmd("PING"), 100ms);
    CO_ASSERT(!ping.has_value(), "the PING was answered before its deadline, behind a 3 s BLPOP");
    EXPECT_NE(ping.error().message.find("no reply within 100 ms"), std::string::npos) << ping.error().message;
    EXPECT_FALSE(long_one.has_value()) << "the long command is still waiting when the short one times out";
    while (!long_one) {
      co_await sleep_for(5ms);
    }
    EXPECT_TRUE(long_one->has_value()) << "the BLPOP got its (nil) reply within its own 10 s";
  });
}

TEST_F(redis_client_test, a_coroutine_resumed_by_a_reply_may_close_the_client) {
  // Replies read together resume their coroutines one after the other, after hiredis has
  // returned. The first one closes the client: the others still get their (already read)
  // replies or a clear error, and the client stays usable for nothing but errors.
  run([&]() -> net::awaitable<void> {
    auto ex = co_await net::this_coro::executor;
    auto c = std::make_unique<rd::redis_client>(ex, options());
    CO_ASSERT((co_await c->connect()).has_value(), "connect");
    constexpr int n = 20;
    int finished = 0;
    int answered = 0;
    int refused = 0;
    bool closed = false;
    for (int i = 0; i < n; ++i) {
      net::co_spawn(
          ex,
          [&]() -> net::awaitable<void> {
            auto r = co_await c->command(cmd("INCR", prefix + "closing"), 5000ms);
            if (r) {
              ++answered;
            } else {
              EXPECT_EQ(r.error().code, core::errc::unavailable) << r.error().message;
              ++refused;
            }
            if (!closed) {
              closed = true;
              c->close();
              auto after = co_await c->command(cmd("PING"), 1000ms);
              EXPECT_FALSE(after.has_value()) << "a closed client answers nothing";
            }
            ++finished;
          },
          net::detached);
    }
    while (finished < n) {
      co_await sleep_for(2ms);
    }
    EXPECT_GE(answered, 1);
    EXPECT_EQ(answered + refused, n);
    c.reset();  // destroyed after everything completed
    rd::redis_client other{ex, options()};
    CO_ASSERT((co_await other.connect()).has_value(), "connect");
    co_await must(other, cmd("DEL", prefix + "closing"));
  });
}

TEST_F(redis_client_test, close_completes_pending_commands_and_destroying_is_safe) {
  run([&]() -> net::awaitable<void> {
    auto ex = co_await net::this_coro::executor;
    std::optional<core::result<rd::reply>> pending;
    {
      auto c = std::make_unique<rd::redis_client>(ex, options());
      CO_ASSERT((co_await c->connect()).has_value(), "connect");
      net::co_spawn(
          ex,
          [&pending, &c, this]() -> net::awaitable<void> {
            auto& client = *c;  // the client outlives this call; the result arrives after close()
            pending = co_await client.command(cmd("BLPOP", prefix + "never", "1"), 2000ms);
          },
          net::detached);
      co_await sleep_for(50ms);
      c.reset();  // destroy with a command in flight
    }
    for (int i = 0; i < 100 && !pending; ++i) {
      co_await sleep_for(5ms);
    }
    CO_ASSERT(pending.has_value(), "the pending command never completed");
    CO_ASSERT(!pending->has_value(), "the pending command succeeded?");
    EXPECT_EQ(pending->error().code, core::errc::unavailable);
  });
}

TEST_F(redis_client_test, not_connected_fails_fast) {
  run([&]() -> net::awaitable<void> {
    auto ex = co_await net::this_coro::executor;
    {
      rd::redis_client never{ex, options()};  // connect() never called
      auto t0 = steady::now();
      auto r = co_await never.command(cmd("PING"));
      EXPECT_LT(since(t0), 50ms);
      CO_ASSERT(!r.has_value(), "command without connect() succeeded");
      EXPECT_EQ(r.error().code, core::errc::unavailable);
    }
    auto o = options();
    o.host = "127.0.0.1";
    o.port = 1;  // nothing listens
    rd::redis_client dead{ex, o};
    auto t0 = steady::now();
    auto up = co_await dead.connect();
    EXPECT_LT(since(t0), 500ms);
    CO_ASSERT(!up.has_value(), "connected to port 1?");
    EXPECT_EQ(up.error().code, core::errc::unavailable);
    t0 = steady::now();
    auto r = co_await dead.command(cmd("GET", "x"));
    EXPECT_LT(since(t0), 50ms);
    EXPECT_FALSE(r.has_value());
    EXPECT_FALSE(dead.connected());
  });
}

TEST_F(redis_client_test, connect_timeout_bounds_a_silent_server) {
  silent_server silent{io};
  run([&]() -> net::awaitable<void> {
    auto o = options();
    o.host = "127.0.0.1";
    o.port = silent.port();  // TCP connects, PING is never answered
    o.connect_timeout = 300ms;
    rd::redis_client c{co_await net::this_coro::executor, o};
    auto t0 = steady::now();
    auto r = co_await c.connect();
    auto took = since(t0);
    EXPECT_GE(took, 280ms);
    EXPECT_LT(took, 600ms);
    CO_ASSERT(!r.has_value(), "connected to a silent server?");
    EXPECT_EQ(r.error().code, core::errc::unavailable);
    EXPECT_NE(r.error().message.find("no connection within 300 ms"), std::string::npos) << r.error().message;
    EXPECT_FALSE(c.connected());
  });
}

TEST_F(redis_client_test, host_names_are_resolved) {
  run([&]() -> net::awaitable<void> {
    auto o = options();
    if (o.host != "127.0.0.1") {
      co_return;  // only meaningful for a loopback server
    }
    o.host = "localhost";
    rd::redis_client c{co_await net::this_coro::executor, o};
    auto r = co_await c.connect();
    EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().message);
  });
}

TEST_F(redis_client_test, auth_and_select) {
  run([&]() -> net::awaitable<void> {
    auto ex = co_await net::this_coro::executor;
    rd::redis_client admin{ex, options()};
    CO_ASSERT((co_await admin.connect()).has_value(), "connect");
    std::string user = "swytest_" + random_suffix();
    co_await must(admin, cmd("ACL", "SETUSER", user, "on", ">s3cret-pass", "~*", "&*", "+@all"));

    {
      auto o = options();
      o.username = user;
      o.password = "s3cret-pass";
      o.db = 7;
      rd::redis_client authed{ex, o};
      auto up = co_await authed.connect();
      CO_ASSERT(up.has_value(), up.error().message);
      auto who = co_await must(authed, cmd("ACL", "WHOAMI"));
      EXPECT_EQ(who.str, user);
      co_await must(authed, cmd("SET", prefix + "db7", "here"));
      auto in7 = co_await must(authed, cmd("GET", prefix + "db7"));
      EXPECT_EQ(in7.str, "here");
      auto in0 = co_await must(admin, cmd("GET", prefix + "db7"));
      EXPECT_TRUE(in0.is_nil()) << "SELECT 7 was not applied";
      co_await must(authed, cmd("DEL", prefix + "db7"));
    }
    {
      auto o = options();
      o.username = user;
      o.password = "wrong";
      rd::redis_client denied{ex, o};
      auto up = co_await denied.connect();
      CO_ASSERT(!up.has_value(), "wrong password accepted");
      EXPECT_EQ(up.error().code, core::errc::unavailable);
      EXPECT_NE(up.error().message.find("WRONGPASS"), std::string::npos) << up.error().message;
      EXPECT_EQ(up.error().message.find("wrong"), std::string::npos) << "never echo the password";
      EXPECT_FALSE(denied.connected());
    }
    co_await must(admin, cmd("ACL", "DELUSER", user));
  });
}

TEST_F(redis_client_test, pubsub_delivers_and_unsubscribes) {
  run([&]() -> net::awaitable<void> {
    auto ex = co_await net::this_coro::executor;
    rd::redis_client c{ex, options()};
    CO_ASSERT((co_await c.connect()).has_value(), "connect");
    std::vector<std::pair<std::string, std::string>> got;
    auto channel = prefix + "events";
    auto sub = co_await c.subscribe(channel, [&](std::string_view ch, std::string_view msg) {
      got.emplace_back(std::string(ch), std::string(msg));
    });
    CO_ASSERT(sub.has_value(), sub.error().message);
    EXPECT_TRUE(c.subscribed(channel));

    auto receivers = co_await must(c, cmd("PUBLISH", channel, "hello"));
    EXPECT_EQ(receivers.integer, 1);
    co_await must(c, cmd("PUBLISH", prefix + "other", "not for us"));
    co_await must(c, cmd("PUBLISH", channel, std::string("bin\0ary", 7)));
    for (int i = 0; i < 100 && got.size() < 2; ++i) {
      co_await sleep_for(5ms);
    }
    CO_ASSERT(got.size() == 2u, "expected two messages, got " + std::to_string(got.size()));
    EXPECT_EQ(got[0].first, channel);
    EXPECT_EQ(got[0].second, "hello");
    EXPECT_EQ(got[1].second, std::string("bin\0ary", 7));

    // A second channel on the same (already subscribed) connection.
    int second = 0;
    auto sub2 = co_await c.subscribe(prefix + "two", [&](std::string_view, std::string_view) { ++second; });
    CO_ASSERT(sub2.has_value(), sub2.error().message);
    co_await must(c, cmd("PUBLISH", prefix + "two", "x"));

    c.unsubscribe(channel);
    EXPECT_FALSE(c.subscribed(channel));
    co_await sleep_for(50ms);
    co_await must(c, cmd("PUBLISH", channel, "after"));
    co_await sleep_for(50ms);
    EXPECT_EQ(got.size(), 2u) << "no delivery after unsubscribe";
    EXPECT_EQ(second, 1);
    EXPECT_TRUE((co_await c.ping()).has_value()) << "command connection unaffected by pub/sub";
  });
}

// Redis killed (SIGKILL), hung (SIGSTOP), restarted: fail fast, bounded waits, reconnect by
// itself, re-subscribe. A private server: this test kills it.
TEST_F(redis_client_test, outage_fails_fast_and_recovers_with_subscriptions) {
  private_server server{private_server::kind::redis};
  run(
      [&]() -> net::awaitable<void> {
        auto ex = co_await net::this_coro::executor;
        auto o = options_from_url(server.url());
        o.reconnect_backoff_max = 500ms;
        rd::redis_client c{ex, o};
        CO_ASSERT((co_await c.connect()).has_value(), "connect");
        std::vector<std::string> got;
        auto sub = co_await c.subscribe("swy:cooldowns", [&](std::string_view, std::string_view m) {
          got.emplace_back(m);
        });
        CO_ASSERT(sub.has_value(), sub.error().message);

        // Hung server: every command is bounded by its timeout.
        server.signal_redis("STOP");
        auto t0 = steady::now();
        auto hung = co_await c.command(cmd("GET", "k"), 150ms);
        auto took = since(t0);
        EXPECT_FALSE(hung.has_value());
        EXPECT_LT(took, 300ms);
        server.signal_redis("CONT");
        co_await sleep_for(50ms);
        EXPECT_TRUE((co_await c.ping(1000ms)).has_value());

        // In flight when the server dies: completes well before its timeout.
        std::optional<core::result<rd::reply>> in_flight;
        net::co_spawn(
            ex,
            [&]() -> net::awaitable<void> { in_flight = co_await c.command(cmd("BLPOP", "nothing", "5"), 3000ms); },
            net::detached);
        co_await sleep_for(50ms);
        t0 = steady::now();
        server.signal_redis("KILL");
        for (int i = 0; i < 200 && !in_flight; ++i) {
          co_await sleep_for(5ms);
        }
        CO_ASSERT(in_flight.has_value(), "in-flight command did not complete");
        EXPECT_FALSE(in_flight->has_value());
        EXPECT_LT(since(t0), 1000ms);
        EXPECT_FALSE(c.connected());
        EXPECT_FALSE(c.subscribed("swy:cooldowns"));

        // While down: every command fails at once.
        for (int i = 0; i < 5; ++i) {
          t0 = steady::now();
          auto r = co_await c.command(cmd("GET", "k"), 250ms);
          EXPECT_LT(since(t0), 50ms);
          CO_ASSERT(!r.has_value(), "command succeeded with Redis dead");
          EXPECT_EQ(r.error().code, core::errc::unavailable);
          co_await sleep_for(100ms);  // reconnect attempts keep failing meanwhile
        }

        server.start();  // same port
        bool back = co_await eventually([&]() -> net::awaitable<bool> { co_return c.connected(); }, 10000ms);
        CO_ASSERT(back, "did not reconnect by itself");
        EXPECT_TRUE((co_await c.ping()).has_value());

        // Re-subscribed without being asked.
        bool resubscribed = co_await eventually(
            [&]() -> net::awaitable<bool> {
              auto r = co_await c.command(cmd("PUBLISH", "swy:cooldowns", "after-restart"));
              co_return r.has_value() && r->integer == 1;
            },
            10000ms);
        CO_ASSERT(resubscribed, "pub/sub connection did not re-subscribe");
        EXPECT_TRUE(c.subscribed("swy:cooldowns"));
        for (int i = 0; i < 100 && got.empty(); ++i) {
          co_await sleep_for(5ms);
        }
        CO_ASSERT(!got.empty(), "no message after restart");
        EXPECT_EQ(got.back(), "after-restart");
      },
      120s);
}

}  // namespace
