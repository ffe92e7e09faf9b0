// Typed reads of members of JSON that came from outside the gateway (a client's body, a
// provider's answer or stream, a stored entry, another instance's message). nlohmann's
// `value(key, fallback)` throws when the member exists with another type (`"index": "0"`),
// which turned one odd field into a failed request, and `get<long long>()` of a number
// with a fraction out of range is undefined; these give the fallback, or nothing, instead.
// Thread: any. Never throws (but for the allocation of a string).
#pragma once
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

namespace switchyard::core {

// The member, or nullptr when `j` is not an object or has no such member.
inline const nlohmann::json* member(const nlohmann::json& j, std::string_view key) noexcept {
  if (!j.is_object()) {
    return nullptr;
  }
  auto it = j.find(key);
  return it == j.end() ? nullptr : &*it;
}

// The member when it is an integer (a whole number written without a fraction) that fits.
inline std::optional<long long> integer_member(const nlohmann::json& j, std::string_view key) noexcept {
  const auto* m = member(j, key);
  if (m == nullptr) {
    return std::nullopt;
  }
  if (m->is_number_unsigned()) {
    const auto u = m->get<std::uint64_t>();
    return u > static_cast<std::uint64_t>(std::numeric_limits<long long>::max()) ? std::nullopt
                                                                                 : std::optional<long long>(u);
  }
  if (m->is_number_integer()) {
    return m->get<long long>();
  }
  return std::nullopt;
}

// Token and request counts: never negative, at most 10^18 (a sum of a few of them still
// fits a long long).
inline constexpr long long max_count = 1'000'000'000'000'000LL;
inline long long count_of_integer(long long n) noexcept { return std::clamp(n, 0LL, max_count); }
// A count written with a fraction or an exponent (`12.0`, `1e3`): truncated; NaN and
// anything not above 0 is 0.
inline long long count_of_number(double d) noexcept {
  if (!(d > 0)) {
    return 0;
  }
  return d >= static_cast<double>(max_count) ? max_count : static_cast<long long>(d);
}

// The member read as a count (above); anything but a number (absent, a string, null) is
// `fallback`.
inline long long count_or(const nlohmann::json& j, std::string_view key, long long fallback = 0) noexcept {
  const auto* m = member(j, key);
  if (m == nullptr || !m->is_number()) {
    return fallback;
  }
  if (m->is_number_unsigned()) {
    const auto u = m->get<std::uint64_t>();
    return u > static_cast<std::uint64_t>(max_count) ? max_count : static_cast<long long>(u);
  }
  if (m->is_number_integer()) {
    return count_of_integer(m->get<long long>());
  }
  return count_of_number(m->get<double>());
}

// The member when it is a string, else `fallback`.
inline std::string string_or(const nlohmann::json& j, std::string_view key, std::string_view fallback = {}) {
  const auto* m = member(j, key);
  return m != nullptr && m->is_string() ? m->get<std::string>() : std::string(fallback);
}

// The member whatever its type, else `fallback` (a copy: for building answers).
inline nlohmann::json member_or(const nlohmann::json& j, std::string_view key, nlohmann::json fallback) {
  const auto* m = member(j, key);
  return m != nullptr ? *m : fallback;
}

}  // namespace switchyard::core
