#include "redis_url.hpp"

#include "switchyard/core/hex.hpp"

#include <cctype>
#include <charconv>
#include <string_view>

namespace switchyard::config::detail {

namespace {

std::optional<int> parse_int(std::string_view s, int lo, int hi) {
  int v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc{} || ptr != s.data() + s.size() || v < lo || v > hi) {
    return std::nullopt;
  }
  return v;
}

std::optional<std::string> percent_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out.push_back(s[i]);
      continue;
    }
    if (i + 2 >= s.size()) {
      return std::nullopt;
    }
    const int hi = core::hex_value(s[i + 1]);
    const int lo = core::hex_value(s[i + 2]);
    if (hi < 0 || lo < 0) {
      return std::nullopt;
    }
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return out;
}

}  // namespace

std::optional<std::string> parse_redis_url(const std::string& url, redis_endpoint& out) {
  std::string_view rest = url;
  bool tls = false;
  if (rest.substr(0, 8) == "redis://") {
    rest.remove_prefix(8);
  } else if (rest.substr(0, 9) == "rediss://") {
    rest.remove_prefix(9);
    tls = true;
  } else {
    return std::string("a Redis URL must start with redis:// or rediss://");
  }
  // Drop a query string or fragment: options we do not use.
  rest = rest.substr(0, rest.find_first_of("?#"));
  const auto slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash + 1);

  std::string username;
  std::string password;
  const auto at = authority.rfind('@');
  if (at != std::string_view::npos) {
    std::string_view userinfo = authority.substr(0, at);
    authority.remove_prefix(at + 1);
    const auto colon = userinfo.find(':');
    auto user = percent_decode(userinfo.substr(0, colon));
    std::optional<std::string> pass = std::string();
    if (colon != std::string_view::npos) {
      pass = percent_decode(userinfo.substr(colon + 1));
    }
    if (!user || !pass) {
      return std::string("bad percent-encoding in the Redis URL's user or password");
    }
    username = *user;
    password = *pass;
  }

  std::string_view host;
  std::string_view port_text;
  if (!authority.empty() && authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) {
      return std::string("unterminated [IPv6] host in the Redis URL");
    }
    host = authority.substr(1, close - 1);
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') {
        return std::string("unexpected text after the [IPv6] host in the Redis URL");
      }
      port_text = after.substr(1);
    }
  } else {
    const auto colon = authority.rfind(':');
    host = authority.substr(0, colon);
    if (colon != std::string_view::npos) {
      port_text = authority.substr(colon + 1);
    }
  }
  if (host.empty()) {
    return std::string("the Redis URL has no host");
  }
  int port = 6379;
  if (!port_text.empty()) {
    auto p = parse_int(port_text, 1, 65535);
    if (!p) {
      return std::string("the Redis URL's port must be a number between 1 and 65535");
    }
    port = *p;
  }
  int db = 0;
  if (!path.empty()) {
    auto d = parse_int(path, 0, 1 << 20);
    if (!d) {
      return std::string("the Redis URL's path must be a database number (/0, /1, ...)");
    }
    db = *d;
  }
  out.host = std::string(host);
  out.port = port;
  out.username = username;
  out.password = password;
  out.db = db;
  out.tls = tls;
  return std::nullopt;
}

}  // namespace switchyard::config::detail
