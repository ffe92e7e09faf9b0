// Asio aliases shared by every module. Narrow headers only (never boost/asio.hpp).
#pragma once
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace switchyard {
namespace net = boost::asio;
using tcp = net::ip::tcp;
}  // namespace switchyard
