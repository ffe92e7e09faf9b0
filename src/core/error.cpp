#include "switchyard/core/error.hpp"

#include <stdexcept>

namespace switchyard::core {

namespace {
struct shape {
  int status;
  const char* type;
  bool retryable;
};

shape shape_of(errc c) {
  switch (c) {
    case errc::bad_request: return {400, "invalid_request_error", false};
    case errc::invalid_json: return {400, "invalid_request_error", false};
    case errc::model_not_found: return {400, "invalid_request_error", false};
    case errc::unauthorized: return {401, "auth_error", false};
    case errc::forbidden: return {403, "permission_error", false};
    case errc::not_found: return {404, "not_found_error", false};
    case errc::request_timeout: return {408, "timeout", false};
    case errc::payload_too_large: return {413, "invalid_request_error", false};
    case errc::rate_limited: return {429, "rate_limit_error", true};
    case errc::internal: return {500, "internal_server_error", false};
    case errc::upstream_error: return {500, "api_error", true};
    case errc::upstream_unreachable: return {500, "api_connection_error", true};
    case errc::upstream_timeout: return {408, "timeout", true};
    case errc::unavailable: return {503, "service_unavailable", true};
  }
  return {500, "internal_server_error", false};
}

const char* type_for_status(int status) {
  switch (status) {
    case 400: return "invalid_request_error";
    case 401: return "auth_error";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 408: return "timeout";
    case 422: return "invalid_request_error";
    case 429: return "rate_limit_error";
    default: return status >= 500 ? "api_error" : "invalid_request_error";
  }
}
}  // namespace

error make_error(errc code, std::string message, std::string param) {
  auto s = shape_of(code);
  return error{code, s.status, s.type, std::move(message), std::move(param), s.retryable, {}};
}

error upstream_status_error(int status, std::string message) {
  bool retryable = status == 408 || status == 409 || status == 429 || status >= 500;
  return error{errc::upstream_error, status, type_for_status(status), std::move(message), {}, retryable, {}};
}

void throw_exception_from_error(error const& e, boost::source_location const&) {
  throw std::runtime_error(e.message);
}

}  // namespace switchyard::core
