// Absolute http(s) URL splitting for the upstream client. Private to src/upstream
// (tests include it directly). Pure: no I/O, no Asio.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace switchyard::upstream::detail {

struct url_parts {
  bool tls = false;
  std::string host;         // without brackets for IPv6 literals; lower-cased
  std::uint16_t port = 0;   // explicit or the scheme's default
  std::string target;       // path[?query], never empty ("/" at least); no fragment
  std::string host_header;  // value for Host: host[:port], brackets kept for IPv6
  std::string pool_key;     // scheme://host:port
};

// nullopt with `why` filled for anything that is not http(s)://host[:port][/path][?query].
std::optional<url_parts> parse_url(std::string_view url, std::string& why);

}  // namespace switchyard::upstream::detail
