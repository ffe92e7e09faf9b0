#include "switchyard/http/cors.hpp"

#include "switchyard/core/error.hpp"

#include <algorithm>
#include <cctype>

namespace switchyard::http {

namespace {

// What a page may read from an answer besides the CORS-safelisted headers: the
// x-litellm-* and rate-limit headers SDKs in a browser look at.
constexpr std::string_view expose =
    "x-litellm-call-id, x-litellm-response-cost, x-litellm-model-id, x-litellm-model-api-base, "
    "x-litellm-model-group, x-litellm-version, x-litellm-key-spend, x-litellm-cache-key, "
    "x-litellm-attempted-retries, x-litellm-attempted-fallbacks, x-litellm-max-retries, "
    "x-litellm-response-duration-ms, x-litellm-overhead-duration-ms, x-ratelimit-limit-requests, "
    "x-ratelimit-remaining-requests, x-ratelimit-limit-tokens, x-ratelimit-remaining-tokens, retry-after";
constexpr std::string_view methods = "GET, POST, PUT, PATCH, DELETE, OPTIONS";
// Request headers a preflight may ask for: letters, digits, '-', ',', spaces; longer or
// other lists are refused rather than echoed.
constexpr std::size_t max_requested_headers = 1024;

bool iequal(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

bool header_list_ok(std::string_view v) {
  if (v.size() > max_requested_headers) {
    return false;
  }
  return std::all_of(v.begin(), v.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '_' || c == ',' || c == ' ';
  });
}

}  // namespace

cors_policy::cors_policy(std::vector<std::string> origins, bool allow_credentials)
    : origins_(std::move(origins)), credentials_(allow_credentials) {
  any_ = std::find(origins_.begin(), origins_.end(), "*") != origins_.end();
}

bool cors_policy::allows(std::string_view origin) const {
  if (origin.empty() || origins_.empty()) {
    return false;
  }
  if (any_) {
    return true;
  }
  return std::any_of(origins_.begin(), origins_.end(), [origin](const std::string& o) { return iequal(o, origin); });
}

bool cors_policy::is_preflight(const request& req) {
  return req.method == "OPTIONS" && req.has_header("origin") && req.has_header("access-control-request-method");
}

std::string cors_policy::allow_origin_value(std::string_view origin) const {
  // "*" cannot be combined with credentials (browsers refuse it): the origin is echoed.
  return any_ && !credentials_ ? std::string("*") : std::string(origin);
}

response cors_policy::preflight(const request& req) const {
  const auto origin = req.header("origin");
  const auto asked = req.header("access-control-request-headers");
  response r;
  if (!allows(origin) || !header_list_ok(asked)) {
    auto e = core::make_error(core::errc::bad_request, "Disallowed CORS request: origin or headers not allowed");
    r = error_response(e);
    r.headers.emplace_back("Vary", "Origin");
    return r;
  }
  r.status = 204;
  r.content_type.clear();
  r.headers.emplace_back("Access-Control-Allow-Origin", allow_origin_value(origin));
  r.headers.emplace_back("Access-Control-Allow-Methods", std::string(methods));
  if (!asked.empty()) {
    r.headers.emplace_back("Access-Control-Allow-Headers", std::string(asked));
  }
  if (credentials_) {
    r.headers.emplace_back("Access-Control-Allow-Credentials", "true");
  }
  r.headers.emplace_back("Access-Control-Max-Age", "600");
  r.headers.emplace_back("Vary", "Origin");
  return r;
}

void cors_policy::add_headers(std::string_view origin, responder& resp) const {
  for (auto& [name, value] : headers_for(origin)) {
    resp.add_common_header(std::move(name), std::move(value));
  }
}

header_list cors_policy::headers_for(std::string_view origin) const {
  header_list out;
  if (!allows(origin)) {
    return out;
  }
  out.emplace_back("Access-Control-Allow-Origin", allow_origin_value(origin));
  out.emplace_back("Access-Control-Expose-Headers", std::string(expose));
  if (credentials_) {
    out.emplace_back("Access-Control-Allow-Credentials", "true");
  }
  out.emplace_back("Vary", "Origin");
  return out;
}

}  // namespace switchyard::http
