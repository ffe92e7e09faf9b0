// Private to config/: parses redis://[[user]:password@]host[:port][/db] (and rediss://).
#pragma once
#include "switchyard/config/config.hpp"

#include <optional>
#include <string>

namespace switchyard::config::detail {

// Fills host, port, username, password, db, tls of `out`. On failure returns the reason
// (never echoing the URL, which may hold a password).
std::optional<std::string> parse_redis_url(const std::string& url, redis_endpoint& out);

}  // namespace switchyard::config::detail
