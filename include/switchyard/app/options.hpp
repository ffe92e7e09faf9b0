// Command line of the switchyard binary (parsed before anything else starts).
// No I/O but the resolution of a --host name (through the resolver given). Thread: any.
#pragma once
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace switchyard::metrics {
class board;
}

namespace switchyard::app {

struct options {
  std::string config_path;
  std::string host = "0.0.0.0";  // an IP address: a --host name is resolved by parse_options
  unsigned short port = 4000;
  bool check_only = false;   // --check-config FILE
  bool show_version = false;
  bool show_help = false;
  bool debug = false;        // --debug / --detailed_debug
  double grace_period_s = 30;  // --grace-period S (0 to max_grace_period_s): how long SIGTERM waits for in-flight requests
  // --num_workers N (LiteLLM's flag): N worker processes, each one event loop, sharing
  // the port (SO_REUSEPORT), supervised by the parent (app/supervisor.hpp).
  int num_workers = 1;
  // --ssl_certfile_path / --ssl_keyfile_path (LiteLLM's flags; also SSL_CERTFILE_PATH /
  // SSL_KEYFILE_PATH and general_settings): the port serves HTTPS. The command line wins.
  std::string ssl_certfile_path;
  std::string ssl_keyfile_path;
  // Set by the supervisor for a worker (not a command-line option): an already listening
  // socket to serve instead of binding the port.
  int listen_fd = -1;
  // Set by the supervisor for a worker: the group's shared metrics and this worker's slot
  // in it (metrics/group.hpp), so any worker's /metrics shows the whole group.
  std::shared_ptr<metrics::board> metrics_board;
  int worker_index = -1;
};

struct parse_result {
  options opts;
  std::string error;  // non-empty: print it with the usage and exit 2
};

// The longest --grace-period accepted (a day): a longer one is a typo, not a drain.
inline constexpr double max_grace_period_s = 86400;

// A --host name resolved to the address to bind ("127.0.0.1", "::1"), or why not.
struct host_resolution {
  std::string address;  // empty: `error` says why
  std::string error;
};
using host_resolver = std::function<host_resolution(const std::string& host)>;
// getaddrinfo: the name's first IPv4 address, else its first IPv6 one (blocking).
host_resolution resolve_host_blocking(const std::string& host);

// --host may be an IP address or a host name: a name is resolved with `resolve` and
// opts.host is then its address (an unresolvable name is an error).
parse_result parse_options(const std::vector<std::string>& args, const host_resolver& resolve = resolve_host_blocking);
std::string usage_text();

// The log level: `debug` with --debug, else LiteLLM's LITELLM_LOG (DEBUG, INFO, WARNING,
// ERROR, CRITICAL; any case), else `info`. A value that is not a level leaves `info` and
// says so in `warning` (logged once at start). The access lines are not affected: they
// are written at any level, as uvicorn's are under LiteLLM.
struct log_level_choice {
  std::string level;    // spdlog's name: "debug", "info", "warning", "error", "critical"
  std::string warning;  // non-empty: LITELLM_LOG was not a level
};
log_level_choice choose_log_level(bool debug, const char* litellm_log);

}  // namespace switchyard::app
