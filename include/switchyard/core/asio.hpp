// Asio aliases shared by every module. Narrow headers only (never boost/asio.hpp).
#pragma once
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <cstddef>

namespace switchyard {
namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace core {
// Completion condition for net::async_read/async_write: the whole buffer sequence, with
// no cap per system call. Asio's transfer_all() caps each read/write at 64 KB
// (default_max_transfer_size), so a 1 MB body took 16+ recvmsg and 16+ sendmsg calls
// (and the small reads kept the kernel from growing the receive buffer); here each
// call takes whatever the socket has or can hold.
struct transfer_whole {
  template <class Error>
  std::size_t operator()(const Error& ec, std::size_t) const noexcept {
    return ec ? 0 : std::size_t{1} << 30;
  }
};
}  // namespace core
}  // namespace switchyard
