// core::transfer_whole: async_read/async_write move a whole buffer in as few system calls
// as the stream allows (transfer_all caps each at 64 KB).
#include "switchyard/core/asio.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <gtest/gtest.h>

#include <string>
#include <utility>

namespace net = switchyard::net;
namespace core = switchyard::core;

namespace {

// A stream whose every read or write call takes as many bytes as it is offered.
struct greedy_stream {
  using executor_type = net::io_context::executor_type;
  executor_type ex;
  int writes = 0;
  int reads = 0;
  executor_type get_executor() { return ex; }

  // Completes at once, having moved every byte offered; counts the calls in `calls`.
  template <class Buffers, class Token>
  auto take_all(int& calls, const Buffers& b, Token&& token) {
    return net::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
        [this, &calls](auto handler, std::size_t n) {
          ++calls;
          net::post(ex, [h = std::move(handler), n]() mutable { h(boost::system::error_code{}, n); });
        },
        token, net::buffer_size(b));
  }
  template <class Buffers, class Token>
  auto async_write_some(const Buffers& b, Token&& token) {
    return take_all(writes, b, std::forward<Token>(token));
  }
  template <class Buffers, class Token>
  auto async_read_some(const Buffers& b, Token&& token) {
    return take_all(reads, b, std::forward<Token>(token));
  }
};

}  // namespace

TEST(transfer_whole, one_call_for_a_megabyte_where_transfer_all_makes_sixteen) {
  net::io_context io;
  std::string big(1 << 20, 'x');
  std::size_t written = 0;
  std::size_t read = 0;

  greedy_stream whole{io.get_executor()};
  net::async_write(whole, net::buffer(big), core::transfer_whole{},
                   [&](boost::system::error_code, std::size_t n) { written = n; });
  net::async_read(whole, net::buffer(big), core::transfer_whole{},
                  [&](boost::system::error_code, std::size_t n) { read = n; });
  io.run();
  EXPECT_EQ(written, big.size());
  EXPECT_EQ(read, big.size());
  EXPECT_EQ(whole.writes, 1);
  EXPECT_EQ(whole.reads, 1);

  io.restart();
  greedy_stream capped{io.get_executor()};
  net::async_write(capped, net::buffer(big), [&](boost::system::error_code, std::size_t n) { written = n; });
  io.run();
  EXPECT_EQ(written, big.size());
  EXPECT_EQ(capped.writes, 16) << "Asio's transfer_all: 64 KB per call";
}

TEST(transfer_whole, stops_at_the_first_error) {
  core::transfer_whole c;
  EXPECT_EQ(c(boost::system::error_code{}, 0), std::size_t{1} << 30);
  EXPECT_EQ(c(net::error::make_error_code(net::error::connection_reset), 10), 0U);
}
