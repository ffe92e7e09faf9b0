#include "url.hpp"

#include <algorithm>
#include <cctype>

namespace switchyard::upstream::detail {

namespace {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

bool is_host_char(char c) {
  auto u = static_cast<unsigned char>(c);
  return std::isalnum(u) != 0 || c == '-' || c == '.' || c == '_';
}

bool is_ipv6_char(char c) {
  return std::isxdigit(static_cast<unsigned char>(c)) != 0 || c == ':' || c == '.';
}

// Printable ASCII without space: anything else in a request target would corrupt
// (or smuggle into) the request line.
bool is_target_char(char c) {
  auto u = static_cast<unsigned char>(c);
  return u > 0x20 && u < 0x7f;
}

}  // namespace

std::optional<url_parts> parse_url(std::string_view url, std::string& why) {
  url_parts out;
  auto scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) {
    why = "not an absolute URL (expected http:// or https://)";
    return std::nullopt;
  }
  auto scheme = url.substr(0, scheme_end);
  if (iequals(scheme, "https")) {
    out.tls = true;
  } else if (!iequals(scheme, "http")) {
    why = "unsupported scheme '" + std::string(scheme) + "' (expected http or https)";
    return std::nullopt;
  }
  auto rest = url.substr(scheme_end + 3);
  auto auth_end = rest.find_first_of("/?#");
  auto authority = rest.substr(0, auth_end);
  auto tail = auth_end == std::string_view::npos ? std::string_view{} : rest.substr(auth_end);
  if (authority.find('@') != std::string_view::npos) {
    why = "credentials in the URL are not supported";
    return std::nullopt;
  }

  std::string_view host;
  std::string_view port_text;
  bool ipv6 = false;
  if (!authority.empty() && authority.front() == '[') {
    auto close = authority.find(']');
    if (close == std::string_view::npos) {
      why = "unterminated IPv6 literal";
      return std::nullopt;
    }
    host = authority.substr(1, close - 1);
    ipv6 = true;
    auto after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') {
        why = "unexpected characters after the IPv6 literal";
        return std::nullopt;
      }
      port_text = after.substr(1);
      if (port_text.empty()) {
        why = "empty port";
        return std::nullopt;
      }
    }
    if (host.empty() || !std::all_of(host.begin(), host.end(), is_ipv6_char)) {
      why = "invalid IPv6 literal";
      return std::nullopt;
    }
  } else {
    auto colon = authority.rfind(':');
    host = authority.substr(0, colon);
    if (colon != std::string_view::npos) {
      port_text = authority.substr(colon + 1);
      if (port_text.empty()) {
        why = "empty port";
        return std::nullopt;
      }
    }
    if (host.empty()) {
      why = "missing host";
      return std::nullopt;
    }
    if (!std::all_of(host.begin(), host.end(), is_host_char)) {
      why = "invalid character in host '" + std::string(host) + "'";
      return std::nullopt;
    }
  }

  unsigned port = out.tls ? 443 : 80;
  if (!port_text.empty()) {
    if (port_text.size() > 5 ||
        !std::all_of(port_text.begin(), port_text.end(),
                     [](char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; })) {
      why = "invalid port '" + std::string(port_text) + "'";
      return std::nullopt;
    }
    port = 0;
    for (char c : port_text) {
      port = port * 10 + static_cast<unsigned>(c - '0');
    }
    if (port == 0 || port > 65535) {
      why = "port out of range: " + std::string(port_text);
      return std::nullopt;
    }
  }
  out.port = static_cast<std::uint16_t>(port);
  out.host = lower(host);

  auto fragment = tail.find('#');
  if (fragment != std::string_view::npos) {
    tail = tail.substr(0, fragment);
  }
  if (!std::all_of(tail.begin(), tail.end(), is_target_char)) {
    why = "invalid character in URL path or query";
    return std::nullopt;
  }
  if (tail.empty() || tail.front() != '/') {
    out.target = "/" + std::string(tail);  // "" -> "/", "?q" -> "/?q"
  } else {
    out.target = std::string(tail);
  }

  std::string host_part = ipv6 ? "[" + out.host + "]" : out.host;
  bool default_port = out.port == (out.tls ? 443 : 80);
  out.host_header = default_port ? host_part : host_part + ":" + std::to_string(out.port);
  out.pool_key = std::string(out.tls ? "https://" : "http://") + host_part + ":" + std::to_string(out.port);
  return out;
}

}  // namespace switchyard::upstream::detail
