// Error values returned by every stage and store. Only http/ turns them into JSON.
#pragma once
#include <boost/system/result.hpp>
#include <string>
#include <string_view>

namespace switchyard::core {

enum class errc {
  bad_request = 1,        // 400 invalid_request_error
  invalid_json,           // 400 invalid_request_error
  model_not_found,        // 400 invalid_request_error (LiteLLM's unknown-model status)
  unauthorized,           // 401 auth_error
  forbidden,              // 403
  not_found,              // 404
  request_timeout,        // 408
  payload_too_large,      // 413
  rate_limited,           // 429
  internal,               // 500
  upstream_error,         // status passed through from the provider
  upstream_unreachable,   // 502/500 connection failure
  upstream_timeout,       // 408 Timeout
  unavailable,            // 503 (db down, draining)
};

struct error {
  errc code = errc::internal;
  int status = 500;              // HTTP status the client sees
  std::string type;              // OpenAI error "type"
  std::string message;
  std::string param;             // empty -> null
  bool retryable = false;
  std::string retry_after;       // Retry-After to pass on, empty if none
};

// Constructors for the common cases (status and type filled in consistently).
error make_error(errc code, std::string message, std::string param = {});
error upstream_status_error(int status, std::string message);

template <class T>
using result = boost::system::result<T, error>;

// Needed by boost::system::result<T, error>::value() (found by ADL).
[[noreturn]] void throw_exception_from_error(error const& e, boost::source_location const& loc);

}  // namespace switchyard::core
