#include "switchyard/auth/authenticator.hpp"

#include "switchyard/core/ids.hpp"

#include <array>

namespace switchyard::auth {

namespace {
std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return s;
}

bool starts_with_ci(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) {
    return false;
  }
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    char a = s[i];
    char b = prefix[i];
    if (a >= 'A' && a <= 'Z') {
      a = static_cast<char>(a - 'A' + 'a');
    }
    if (a != b) {
      return false;
    }
  }
  return true;
}
}  // namespace

std::string extract_key(const header_getter& header, std::string_view custom_header) {
  if (auto v = trim(header("authorization")); !v.empty()) {
    if (starts_with_ci(v, "bearer ")) {
      v.remove_prefix(7);
    } else if (starts_with_ci(v, "basic ")) {
      v.remove_prefix(6);
    }
    return std::string(trim(v));
  }
  static constexpr std::array<std::string_view, 5> others = {"x-litellm-api-key", "api-key", "x-api-key",
                                                             "x-goog-api-key", "ocp-apim-subscription-key"};
  for (auto name : others) {
    if (auto v = trim(header(name)); !v.empty()) {
      return std::string(v);
    }
  }
  if (!custom_header.empty()) {
    if (auto v = trim(header(custom_header)); !v.empty()) {
      if (starts_with_ci(v, "bearer ")) {
        v.remove_prefix(7);
      }
      return std::string(trim(v));
    }
  }
  return {};
}

std::string cookie_value(std::string_view header, std::string_view name) {
  std::size_t i = 0;
  while (i < header.size()) {
    while (i < header.size() && (header[i] == ' ' || header[i] == ';')) {
      ++i;
    }
    auto end = header.find(';', i);
    if (end == std::string_view::npos) {
      end = header.size();
    }
    auto part = header.substr(i, end - i);
    if (auto eq = part.find('='); eq != std::string_view::npos && part.substr(0, eq) == name) {
      return std::string(part.substr(eq + 1));
    }
    i = end + 1;
  }
  return {};
}

authenticator::authenticator(std::string master_key, std::string custom_header)
    : master_key_(std::move(master_key)), custom_header_(std::move(custom_header)) {
  for (auto& c : custom_header_) {
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    }
  }
}

core::result<principal> authenticator::authenticate(const header_getter& header) const {
  return authenticate_key(extract_key(header, custom_header_));
}

core::result<principal> authenticator::authenticate_key(std::string key) const {
  principal p;
  p.key = std::move(key);
  p.key_redacted = core::redact_key(p.key);
  if (!enabled()) {
    p.is_master = true;  // no master key configured: every caller is admin (LiteLLM without auth)
    return p;
  }
  if (p.key.empty()) {
    return core::make_error(core::errc::unauthorized,
                            "Authentication Error, No api key passed in. Pass it in the Authorization header as "
                            "'Bearer sk-...'");
  }
  if (core::secure_equal(p.key, master_key_)) {
    p.is_master = true;
    return p;
  }
  return invalid_key_error(p.key);
}

bool authenticator::is_master_key(std::string_view key) const {
  return enabled() && core::secure_equal(key, master_key_);
}

core::error invalid_key_error(std::string_view key) {
  return core::make_error(core::errc::unauthorized,
                          "Authentication Error, Invalid proxy server token passed. Received API Key = " +
                              core::redact_key(key) + ", Key Hash (Token) =" + core::sha256_hex(key) +
                              ". Unable to find token in cache or LiteLLM_VerificationTokenTable");
}

}  // namespace switchyard::auth
