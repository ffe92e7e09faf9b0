// Typed reads of members of JSON that came from outside the gateway (a client's body, a
// provider's answer or stream, a stored entry). nlohmann's `value(key, fallback)` throws
// when the member exists with another type (`"index": "0"`), which turned one odd field
// into a failed request; these give the fallback, or nothing, instead.
// Thread: any. Never throws.
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

namespace switchyard::core {

// The member, or nullptr when `j` is not an object or has no such member.
inline const nlohmann::json* member(const nlohmann::json& j, const char* key) noexcept {
  if (!j.is_object()) {
    return nullptr;
  }
  auto it = j.find(key);
  return it == j.end() ? nullptr : &*it;
}

// The member when it is an integer (a whole number written without a fraction).
inline std::optional<long long> integer_member(const nlohmann::json& j, const char* key) noexcept {
  const auto* m = member(j, key);
  if (m == nullptr) {
    return std::nullopt;
  }
  if (m->is_number_unsigned()) {
    auto u = m->get<std::uint64_t>();
    return u > static_cast<std::uint64_t>(std::numeric_limits<long long>::max()) ? std::nullopt
                                                                                 : std::optional<long long>(u);
  }
  if (m->is_number_integer()) {
    return m->get<long long>();
  }
  return std::nullopt;
}

// A count read leniently: an integer as it is, a finite number with a fraction truncated
// (some servers write `12.0`), anything else (a string, out of range) `fallback`.
inline long long count_or(const nlohmann::json& j, const char* key, long long fallback = 0) noexcept {
  if (auto i = integer_member(j, key)) {
    return *i;
  }
  const auto* m = member(j, key);
  if (m != nullptr && m->is_number_float()) {
    const double d = m->get<double>();
    // 2^63 is exactly representable; anything at or beyond it (or NaN) is out of range.
    if (d > -9.2233720368547758e18 && d < 9.2233720368547758e18) {
      return static_cast<long long>(d);
    }
  }
  return fallback;
}

// The member when it is a string, else `fallback`.
inline std::string string_or(const nlohmann::json& j, const char* key, std::string_view fallback = {}) {
  const auto* m = member(j, key);
  return m != nullptr && m->is_string() ? m->get<std::string>() : std::string(fallback);
}

// The member whatever its type, else `fallback` (a copy: for building answers).
inline nlohmann::json member_or(const nlohmann::json& j, const char* key, nlohmann::json fallback) {
  const auto* m = member(j, key);
  return m != nullptr ? *m : fallback;
}

}  // namespace switchyard::core
