#include "switchyard/cache/key.hpp"

#include "switchyard/core/ids.hpp"

#include <cmath>
#include <cstdint>
#include <limits>

namespace switchyard::cache {

using json = nlohmann::json;

bool excluded_from_key(std::string_view m) {
  // Attribution, transport, routing and the gateway's own controls: the same answer
  // whatever their value. `stream` / `stream_options` change only the framing (a hit is
  // replayed in either shape). `user` stays in the key, as in LiteLLM.
  static constexpr std::string_view excluded[] = {
      "metadata",         "litellm_metadata",      "stream",          "stream_options",
      "cache",            "caching",               "num_retries",     "fallbacks",
      "context_window_fallbacks", "content_policy_fallbacks", "disable_fallbacks",
      "timeout",          "request_timeout",       "stream_timeout",  "api_key",
      "api_base",         "base_url",              "api_version",     "extra_headers",
      "mock_testing_fallbacks", "mock_testing_rate_limit_error", "tags",
      "litellm_session_id", "litellm_trace_id",    "proxy_server_request", "model",
  };
  for (auto e : excluded) {
    if (m == e) {
      return true;
    }
  }
  return false;
}

json canonical_value(const json& v) {
  switch (v.type()) {
    case json::value_t::object: {
      json out = json::object();
      for (const auto& [k, x] : v.items()) {
        out[k] = canonical_value(x);
      }
      return out;
    }
    case json::value_t::array: {
      json out = json::array();
      for (const auto& x : v) {
        out.push_back(canonical_value(x));
      }
      return out;
    }
    case json::value_t::number_unsigned: {
      auto u = v.get<std::uint64_t>();
      if (u <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
        return json(static_cast<std::int64_t>(u));
      }
      return json(static_cast<double>(u));
    }
    case json::value_t::number_float: {
      double d = v.get<double>();
      // Integral values (1.0, 1e2, -0.0) are written as integers: one spelling per number.
      if (std::isfinite(d) && std::trunc(d) == d && std::fabs(d) < 9.007199254740992e15) {
        return json(static_cast<std::int64_t>(d));
      }
      return v;
    }
    default:
      return v;
  }
}

std::string canonical_request(std::string_view call, std::string_view model_group, const json& body) {
  json params = json::object();
  if (body.is_object()) {
    for (const auto& [k, v] : body.items()) {
      if (!excluded_from_key(k)) {
        params[k] = canonical_value(v);
      }
    }
  }
  json c = json::object();
  c["call"] = std::string(call);
  c["model"] = std::string(model_group);
  c["params"] = std::move(params);
  return c.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string key_of(std::string_view ns, std::string_view canonical) {
  auto hex = core::sha256_hex(canonical);
  if (ns.empty()) {
    return hex;
  }
  std::string k;
  k.reserve(ns.size() + 1 + hex.size());
  k.append(ns).append(":").append(hex);
  return k;
}

}  // namespace switchyard::cache
