#include "switchyard/app/options.hpp"

#include <charconv>
#include <cmath>
#include <cstring>
#include <string_view>
#include <utility>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

namespace switchyard::app {

host_resolution resolve_host_blocking(const std::string& host) {
  // As uvicorn binds LiteLLM's --host: a name's IPv4 address (socket.bind on an AF_INET
  // socket); an IPv6 one only when the name has no IPv4 address.
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const int rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &res);
  if (rc != 0) {
    return {{}, rc == EAI_SYSTEM ? std::string(std::strerror(errno)) : std::string(::gai_strerror(rc))};
  }
  std::string v4, v6;
  for (const addrinfo* a = res; a != nullptr; a = a->ai_next) {
    char text[INET6_ADDRSTRLEN] = {};
    if (a->ai_family == AF_INET && v4.empty()) {
      ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(a->ai_addr)->sin_addr, text, sizeof text);
      v4 = text;
    } else if (a->ai_family == AF_INET6 && v6.empty()) {
      ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(a->ai_addr)->sin6_addr, text, sizeof text);
      v6 = text;
    }
  }
  ::freeaddrinfo(res);
  if (v4.empty() && v6.empty()) {
    return {{}, "no IPv4 or IPv6 address"};
  }
  return {v4.empty() ? v6 : v4, {}};
}

namespace {

bool is_ip_literal(const std::string& host) {
  unsigned char buf[sizeof(in6_addr)];
  return ::inet_pton(AF_INET, host.c_str(), buf) == 1 || ::inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

}  // namespace

std::string usage_text() {
  return "usage: switchyard --config FILE [--host HOST] [--port PORT] [--grace-period SECONDS] [--num_workers N]\n"
         "                  [--debug] [--ssl_certfile_path CERT.pem --ssl_keyfile_path KEY.pem]\n"
         "       switchyard --check-config FILE\n"
         "       switchyard --version | --help\n"
         "\n"
         "Reads a LiteLLM config.yaml and serves the OpenAI-compatible API.\n"
         "Environment: LITELLM_MASTER_KEY (or SWITCHYARD_MASTER_KEY), DATABASE_URL,\n"
         "REDIS_HOST, REDIS_PORT, REDIS_PASSWORD, REDIS_URL, SSL_CERTFILE_PATH, SSL_KEYFILE_PATH,\n"
         "LITELLM_LOG (DEBUG, INFO, WARNING, ERROR, CRITICAL; --debug wins).\n"
         "With a certificate and key the port serves HTTPS only; SIGHUP reloads them.\n";
}

log_level_choice choose_log_level(bool debug, const char* litellm_log) {
  if (debug) {
    return {"debug", {}};
  }
  if (litellm_log == nullptr || *litellm_log == '\0') {
    return {"info", {}};
  }
  std::string upper;
  for (const char* p = litellm_log; *p != '\0'; ++p) {
    upper += (*p >= 'a' && *p <= 'z') ? static_cast<char>(*p - 'a' + 'A') : *p;
  }
  // Python's logging names, as LiteLLM passes the variable to setLevel.
  static constexpr std::pair<std::string_view, std::string_view> levels[] = {
      {"DEBUG", "debug"}, {"INFO", "info"}, {"WARNING", "warning"}, {"WARN", "warning"},
      {"ERROR", "error"}, {"CRITICAL", "critical"}, {"FATAL", "critical"}};
  for (const auto& [name, level] : levels) {
    if (upper == name) {
      return {std::string(level), {}};
    }
  }
  const std::string_view given(litellm_log);
  const std::string shown = given.size() > 64 ? std::string(given.substr(0, 64)) + "..." : std::string(given);
  return {"info", "LITELLM_LOG=" + shown + " is not a log level (DEBUG, INFO, WARNING, ERROR, CRITICAL): logging at INFO"};
}

parse_result parse_options(const std::vector<std::string>& args, const host_resolver& resolve) {
  parse_result r;
  auto& o = r.opts;
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string a = args[i];
    std::string value;
    bool has_inline = false;
    if (auto eq = a.find('='); a.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = a.substr(eq + 1);
      a = a.substr(0, eq);
      has_inline = true;
    }
    auto take = [&](std::string& out) -> bool {
      if (has_inline) {
        out = value;
        return true;
      }
      if (i + 1 >= args.size()) {
        r.error = "option " + a + " needs a value";
        return false;
      }
      out = args[++i];
      return true;
    };
    if (a == "--help" || a == "-h") {
      o.show_help = true;
    } else if (a == "--version" || a == "-v") {
      o.show_version = true;
    } else if (a == "--config" || a == "-c") {
      if (!take(o.config_path)) {
        return r;
      }
    } else if (a == "--check-config") {
      if (!take(o.config_path)) {
        return r;
      }
      o.check_only = true;
    } else if (a == "--host") {
      if (!take(o.host)) {
        return r;
      }
      if (o.host.empty()) {
        r.error = "--host needs an address or a host name";
        return r;
      }
    } else if (a == "--port" || a == "-p") {
      std::string v;
      if (!take(v)) {
        return r;
      }
      unsigned p = 0;
      auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), p);
      if (ec != std::errc() || ptr != v.data() + v.size() || p > 65535) {
        r.error = "invalid --port '" + v + "'";
        return r;
      }
      o.port = static_cast<unsigned short>(p);
    } else if (a == "--grace-period") {
      std::string v;
      if (!take(v)) {
        return r;
      }
      // The whole value, a finite number of seconds in range: std::stod took "5abc" as 5
      // and let -5, nan and inf through.
      double g = 0;
      auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), g);
      if (ec != std::errc() || ptr != v.data() + v.size() || !std::isfinite(g) || g < 0 || g > max_grace_period_s) {
        r.error = "invalid --grace-period '" + v + "' (seconds, 0 to " +
                  std::to_string(static_cast<int>(max_grace_period_s)) + ")";
        return r;
      }
      o.grace_period_s = g;
    } else if (a == "--num_workers" || a == "--num-workers") {
      std::string v;
      if (!take(v)) {
        return r;
      }
      int n = 0;
      auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
      if (ec != std::errc() || ptr != v.data() + v.size() || n < 1 || n > 256) {
        r.error = "invalid --num_workers '" + v + "' (1 to 256)";
        return r;
      }
      o.num_workers = n;
    } else if (a == "--ssl_certfile_path" || a == "--ssl-certfile-path") {
      if (!take(o.ssl_certfile_path)) {
        return r;
      }
      if (o.ssl_certfile_path.empty()) {
        r.error = "--ssl_certfile_path needs a file";
        return r;
      }
    } else if (a == "--ssl_keyfile_path" || a == "--ssl-keyfile-path") {
      if (!take(o.ssl_keyfile_path)) {
        return r;
      }
      if (o.ssl_keyfile_path.empty()) {
        r.error = "--ssl_keyfile_path needs a file";
        return r;
      }
    } else if (a == "--debug" || a == "--detailed_debug") {
      o.debug = true;
    } else {
      r.error = "unknown option '" + args[i] + "'";
      return r;
    }
  }
  if (!o.show_help && !o.show_version && o.config_path.empty()) {
    r.error = "--config FILE is required";
    return r;
  }
  // A host name (LiteLLM hands --host to uvicorn, which takes names) is resolved once,
  // here, so that everything that binds gets an address, and a name that does not
  // resolve is a command-line error like any other.
  if (!o.show_help && !o.show_version && !o.check_only && !is_ip_literal(o.host)) {
    auto got = resolve ? resolve(o.host) : host_resolution{{}, "no resolver"};
    if (got.address.empty()) {
      r.error = "invalid --host '" + o.host + "': not an IP address, and the name does not resolve (" + got.error + ")";
      return r;
    }
    o.host = got.address;
  }
  return r;
}

}  // namespace switchyard::app
