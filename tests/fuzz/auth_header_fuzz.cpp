// libFuzzer target: the auth stage's header readers on untrusted bytes. The input is a
// block of "name: value" lines (the first line names general_settings'
// litellm_key_header_name); extract_key picks the key as LiteLLM does, authenticate_key
// checks it against a fixed master key, cookie_value reads the UI's session cookie.
// Nothing may crash, and:
//  - the key extracted is a trimmed part of one of the header values;
//  - only the master key itself authenticates as master;
//  - the 401 for a wrong key carries only its redaction (last four characters) and hash.
#include "switchyard/auth/authenticator.hpp"
#include "switchyard/core/ids.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) {
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    }
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace switchyard;
  const std::string_view in(reinterpret_cast<const char*>(data), size);

  std::string custom;
  std::vector<std::pair<std::string, std::string>> headers;
  std::size_t at = 0;
  bool first = true;
  while (at <= in.size()) {
    auto end = in.find('\n', at);
    if (end == std::string_view::npos) {
      end = in.size();
    }
    const auto line = in.substr(at, end - at);
    if (first) {
      custom = std::string(line);
      first = false;
    } else if (auto colon = line.find(':'); colon != std::string_view::npos) {
      headers.emplace_back(lower(line.substr(0, colon)), std::string(line.substr(colon + 1)));
    }
    at = end + 1;
  }
  const auth::header_getter get = [&](std::string_view name) -> std::string_view {
    for (const auto& [n, v] : headers) {
      if (n == name) {
        return v;
      }
    }
    return {};
  };

  const auto key = auth::extract_key(get, lower(custom));
  if (!key.empty()) {
    if (key.front() == ' ' || key.front() == '\t' || key.back() == ' ' || key.back() == '\t') {
      std::abort();  // trimmed
    }
    bool found = false;
    for (const auto& [n, v] : headers) {
      found = found || v.find(key) != std::string::npos;
    }
    if (!found) {
      std::abort();  // the key is part of a header value, never made up
    }
  }

  static const std::string master = "sk-fuzz-master-0123456789abcdef";
  const auth::authenticator a(master, custom);
  auto p = a.authenticate_key(key);
  if (p && (key != master || !p->is_master)) {
    std::abort();  // only the master key passes this authenticator
  }
  if (!key.empty()) {
    // The 401 is LiteLLM's text around the key's redaction (its last four characters at
    // most) and its hash: nothing else of the key.
    const auto redacted = core::redact_key(key);
    const std::string expected = "Authentication Error, Invalid proxy server token passed. Received API Key = " +
                                 redacted + ", Key Hash (Token) =" + core::sha256_hex(key) +
                                 ". Unable to find token in cache or LiteLLM_VerificationTokenTable";
    if (redacted.size() > 10 || auth::invalid_key_error(key).message != expected ||
        (!p && key != master && p.error().message != expected)) {
      std::abort();
    }
  }

  for (const auto& [n, v] : headers) {
    if (n == "cookie") {
      const auto session = auth::cookie_value(v, "switchyard_session");
      if (session.size() > v.size() || (!session.empty() && v.find(session) == std::string::npos)) {
        std::abort();
      }
      (void)auth::cookie_value(v, custom);
    }
  }
  return 0;
}
