// Shared helpers of store_test: real servers, coroutine runner, small assertions.
//
// Shared servers: SWITCHYARD_TEST_DATABASE_URL / SWITCHYARD_TEST_REDIS_URL, set by
// scripts/test.sh (which starts throw-away Postgres and Redis). Unset -> the test FAILS.
// Outage tests start their own private servers with scripts/services.sh (so they can stop,
// kill and restart them without disturbing anyone else).
#pragma once
#include "switchyard/core/asio.hpp"
#include "switchyard/store/redis/redis_client.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <gtest/gtest.h>
#include <pqxx/pqxx>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>

namespace store_test {

namespace net = switchyard::net;
using namespace std::chrono_literals;
using ms = std::chrono::milliseconds;
using steady = std::chrono::steady_clock;

#ifndef SWITCHYARD_SOURCE_DIR
#error "SWITCHYARD_SOURCE_DIR must be defined by CMake"
#endif
inline const std::string source_dir = SWITCHYARD_SOURCE_DIR;

// Inside coroutines (gtest's ASSERT_* cannot co_return).
#define CO_ASSERT(cond, msg)                                     \
  if (!(cond)) {                                                 \
    ADD_FAILURE() << "assertion failed: " #cond "\n  " << (msg); \
    co_return;                                                   \
  } else                                                         \
    (void)0

inline ms since(steady::time_point t) { return std::chrono::duration_cast<ms>(steady::now() - t); }

inline net::awaitable<void> sleep_for(ms d) {
  net::steady_timer t(co_await net::this_coro::executor, d);
  co_await t.async_wait(net::as_tuple(net::use_awaitable));
}

// Polls `cond` (a callable returning awaitable<bool>) every `step` until true or `limit`.
template <class Cond>
net::awaitable<bool> eventually(Cond cond, ms limit, ms step = 50ms) {
  auto start = steady::now();
  for (;;) {
    if (co_await cond()) {
      co_return true;
    }
    if (since(start) > limit) {
      co_return false;
    }
    co_await sleep_for(step);
  }
}

// Runs the coroutine `f` on `io` until it finishes (or `limit`); rethrows its exception.
template <class F>
void run_coro(net::io_context& io, F f, std::chrono::seconds limit = 60s) {
  bool done = false;
  std::exception_ptr error;
  net::co_spawn(io, std::move(f), [&](std::exception_ptr e) {
    done = true;
    error = e;
  });
  io.restart();
  auto deadline = steady::now() + limit;
  while (!done && steady::now() < deadline) {
    io.run_one_for(100ms);
  }
  io.poll();  // handlers posted by destructors at the end of the coroutine
  ASSERT_TRUE(done) << "test coroutine did not finish within " << limit.count() << " s";
  if (error) {
    std::rethrow_exception(error);
  }
}

inline std::string env_or_empty(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? std::string(v) : std::string();
}

inline std::string missing_env_message(const char* name) {
  return std::string(name) +
         " is not set. store_test needs real Postgres and Redis servers: run ./scripts/test.sh "
         "(it starts throw-away servers and sets SWITCHYARD_TEST_DATABASE_URL and "
         "SWITCHYARD_TEST_REDIS_URL), or start them with `scripts/services.sh start DIR "
         "--ephemeral` and `source DIR/env.sh`.";
}

inline std::string random_suffix() {
  static std::mt19937_64 rng{std::random_device{}()};
  std::ostringstream s;
  s << std::hex << rng();
  return s.str();
}

// A TCP listener on 127.0.0.1 that never accepts: connects succeed (the kernel completes
// the handshake), then nothing is ever said. For connect/handshake timeout tests.
class silent_server {
 public:
  explicit silent_server(net::io_context& io) : acceptor_(io, {net::ip::make_address("127.0.0.1"), 0}) {}
  unsigned short port() const { return acceptor_.local_endpoint().port(); }

 private:
  switchyard::tcp::acceptor acceptor_;
};

// ---------------------------------------------------------------- Redis

// redis://[[user]:password@]host[:port][/db] -> options (test-only parser).
inline switchyard::store::redis::redis_options options_from_url(const std::string& url) {
  switchyard::store::redis::redis_options o;
  std::string rest = url.substr(url.find("://") + 3);
  if (auto at = rest.rfind('@'); at != std::string::npos) {
    auto cred = rest.substr(0, at);
    rest = rest.substr(at + 1);
    if (auto colon = cred.find(':'); colon != std::string::npos) {
      o.username = cred.substr(0, colon);
      o.password = cred.substr(colon + 1);
    } else {
      o.password = cred;
    }
  }
  if (auto slash = rest.find('/'); slash != std::string::npos) {
    auto db = rest.substr(slash + 1);
    o.db = db.empty() ? 0 : std::stoi(db);
    rest.resize(slash);
  }
  if (auto colon = rest.rfind(':'); colon != std::string::npos) {
    o.port = static_cast<std::uint16_t>(std::stoi(rest.substr(colon + 1)));
    rest.resize(colon);
  }
  o.host = rest;
  return o;
}

// The shared Redis (SWITCHYARD_TEST_REDIS_URL) and a key prefix of this test's own.
class redis_fixture : public ::testing::Test {
 protected:
  void SetUp() override {
    url = env_or_empty("SWITCHYARD_TEST_REDIS_URL");
    if (url.empty()) {
      FAIL() << missing_env_message("SWITCHYARD_TEST_REDIS_URL");
    }
    prefix = "swy:test:" + random_suffix() + ":";
  }

  template <class F>
  void run(F f, std::chrono::seconds limit = std::chrono::seconds{60}) {
    run_coro(io, std::move(f), limit);
  }

  std::string url;
  std::string prefix;  // keys of this test only: the server is shared
  net::io_context io;
};

// ---------------------------------------------------------------- Postgres

// postgresql://u@h:p/db?x -> same URL with another database name.
inline std::string with_database(const std::string& url, const std::string& db) {
  auto scheme = url.find("://");
  if (scheme == std::string::npos) {
    return url + " dbname=" + db;  // key=value conninfo: the last dbname wins
  }
  auto query = url.find('?', scheme + 3);
  std::string base = url.substr(0, query);
  std::string rest = query == std::string::npos ? std::string() : url.substr(query);
  auto slash = base.find('/', scheme + 3);
  if (slash != std::string::npos) {
    base.resize(slash);
  }
  return base + "/" + db + rest;
}

// A database of its own for one test; dropped at the end.
class fresh_database {
 public:
  explicit fresh_database(std::string server_url)
      : server_url_(std::move(server_url)), name_("swy_store_" + random_suffix()) {
    pqxx::connection c{server_url_};
    pqxx::nontransaction tx{c};
    tx.exec("CREATE DATABASE " + name_);
    url_ = with_database(server_url_, name_);
  }
  ~fresh_database() {
    try {
      pqxx::connection c{server_url_};
      pqxx::nontransaction tx{c};
      tx.exec("DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)");
    } catch (const std::exception& e) {
      std::fprintf(stderr, "warning: could not drop %s: %s\n", name_.c_str(), e.what());
    }
  }
  fresh_database(const fresh_database&) = delete;
  fresh_database& operator=(const fresh_database&) = delete;

  const std::string& url() const { return url_; }

 private:
  std::string server_url_;
  std::string name_;
  std::string url_;
};

// ---------------------------------------------------------------- private servers

// Private Postgres or Redis started with scripts/services.sh in a temporary directory.
class private_server {
 public:
  enum class kind { postgres, redis };

  explicit private_server(kind k) : kind_(k) {
    std::string tmpl = (std::filesystem::temp_directory_path() / "swy-store-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) {
      throw std::runtime_error("mkdtemp failed");
    }
    dir_ = tmpl;
    start();
  }
  ~private_server() {
    services("stop");
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  private_server(const private_server&) = delete;
  private_server& operator=(const private_server&) = delete;

  // Starts (again, on the same port once known).
  void start() {
    std::string opts = kind_ == kind::postgres ? "--no-redis" : "--no-postgres";
    if (port_ != 0) {
      opts += (kind_ == kind::postgres ? " --pg-port " : " --redis-port ") + std::to_string(port_);
    }
    if (!services("start", opts + " --ephemeral")) {
      throw std::runtime_error("scripts/services.sh start failed; see " + log_path());
    }
    read_env();
  }
  void stop() {
    if (!services("stop")) {
      throw std::runtime_error("scripts/services.sh stop failed; see " + log_path());
    }
  }
  // Redis only: SIGKILL (no goodbye to clients; its sockets close at once, so start()
  // can bind the port again right away) / SIGSTOP / SIGCONT.
  void signal_redis(const char* sig) {
    std::ifstream in(dir_ + "/redis/redis.pid");
    long pid = 0;
    in >> pid;
    if (pid <= 0) {
      throw std::runtime_error("no redis pid in " + dir_);
    }
    std::string cmd = std::string("kill -") + sig + " " + std::to_string(pid);
    if (std::system(cmd.c_str()) != 0) {
      throw std::runtime_error(cmd + " failed");
    }
  }

  // Postgres only: the signal to the postmaster and every child of it (SIGSTOP pauses the
  // whole server, as a hung host would; SIGCONT resumes it).
  void signal_postgres(const char* sig) {
    std::ifstream in(dir_ + "/pg/postmaster.pid");
    long pid = 0;
    in >> pid;
    if (pid <= 0) {
      throw std::runtime_error("no postmaster pid in " + dir_);
    }
    std::string p = std::to_string(pid);
    std::string cmd = std::string("kill -") + sig + " " + p + " $(pgrep -P " + p + ")";
    if (std::system(cmd.c_str()) != 0) {
      throw std::runtime_error(cmd + " failed");
    }
  }

  const std::string& url() const { return url_; }  // DATABASE_URL or redis://127.0.0.1:P
  int port() const { return port_; }

 private:
  std::string log_path() const { return dir_ + "/services.log"; }

  bool services(const std::string& cmd, const std::string& opts = {}) {
    std::string line = "'" + source_dir + "/scripts/services.sh' " + cmd + " '" + dir_ + "' " + opts + " >>'" +
                       log_path() + "' 2>&1";
    return std::system(line.c_str()) == 0;
  }

  void read_env() {
    std::ifstream in(dir_ + "/env.sh");
    std::string l;
    std::string key = kind_ == kind::postgres ? "export SWITCHYARD_TEST_DATABASE_URL="
                                              : "export SWITCHYARD_TEST_REDIS_URL=";
    while (std::getline(in, l)) {
      if (l.starts_with(key)) {
        url_ = l.substr(key.size());
      }
    }
    if (url_.empty()) {
      throw std::runtime_error("no URL in " + dir_ + "/env.sh");
    }
    auto colon = url_.rfind(':');
    port_ = std::stoi(url_.substr(colon + 1));  // "...:PORT/db" or "...:PORT"
  }

  kind kind_;
  std::string dir_;
  std::string url_;
  int port_ = 0;
};

}  // namespace store_test
