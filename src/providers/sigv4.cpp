// AWS Signature Version 4 through OpenSSL (SHA-256 and HMAC-SHA256). The canonical
// request follows AWS's definition: method, canonical URI (each path segment
// URI-encoded), canonical query (decoded, re-encoded, sorted by name then value),
// canonical headers (lower-case names sorted, values trimmed with inner runs of spaces
// collapsed, repeated names joined with ','), signed header names, payload hash.
#include "switchyard/providers/sigv4.hpp"

#include "switchyard/core/hex.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <array>
#include <ctime>
#include <map>
#include <utility>
#include <vector>

namespace switchyard::providers::aws {

namespace {

constexpr char hex_digits[] = "0123456789abcdef";
constexpr char hex_upper[] = "0123456789ABCDEF";

std::string to_hex(const unsigned char* p, std::size_t n) {
  std::string out(n * 2, '0');
  for (std::size_t i = 0; i < n; ++i) {
    out[2 * i] = hex_digits[p[i] >> 4];
    out[2 * i + 1] = hex_digits[p[i] & 0xf];
  }
  return out;
}

using digest = std::array<unsigned char, 32>;

digest hmac(std::string_view key, std::string_view data) {
  digest out{};
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
       data.size(), out.data(), &len);
  return out;
}

std::string_view view(const digest& d) { return {reinterpret_cast<const char*>(d.data()), d.size()}; }


// %XX sequences decoded (a malformed one is kept as it is).
std::string percent_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && core::hex_value(s[i + 1]) >= 0 && core::hex_value(s[i + 2]) >= 0) {
      out += static_cast<char>(core::hex_value(s[i + 1]) * 16 + core::hex_value(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::string canonical_query(std::string_view query) {
  std::vector<std::pair<std::string, std::string>> params;
  while (!query.empty()) {
    auto amp = query.find('&');
    auto item = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    if (item.empty()) {
      continue;
    }
    auto eq = item.find('=');
    auto k = item.substr(0, eq);
    auto v = eq == std::string_view::npos ? std::string_view{} : item.substr(eq + 1);
    params.emplace_back(uri_encode(percent_decode(k), false), uri_encode(percent_decode(v), false));
  }
  std::sort(params.begin(), params.end());
  std::string out;
  for (const auto& [k, v] : params) {
    if (!out.empty()) {
      out += '&';
    }
    out += k;
    out += '=';
    out += v;
  }
  return out;
}

std::string canonical_value(std::string_view v) {
  std::string out;
  bool space = false;
  for (char c : v) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      space = true;
      continue;
    }
    if (space && !out.empty()) {
      out += ' ';
    }
    space = false;
    out += c;
  }
  return out;
}

}  // namespace

std::string sha256_hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  return to_hex(md, len);
}

std::string uri_encode(std::string_view s, bool keep_slash) {
  std::string out;
  out.reserve(s.size());
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
        c == '_' || c == '~' || (keep_slash && c == '/')) {
      out += ch;
    } else {
      out += '%';
      out += hex_upper[c >> 4];
      out += hex_upper[c & 0xf];
    }
  }
  return out;
}

std::string amz_date(std::chrono::system_clock::time_point t) {
  const std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

signature sign(const sign_input& in, const credentials& creds, std::string_view region, std::string_view service,
               std::string_view amz_date) {
  // Canonical headers: name -> values in the order given.
  std::map<std::string, std::string> headers;
  if (in.headers != nullptr) {
    for (const auto& [name, value] : *in.headers) {
      std::string lname(name);
      std::transform(lname.begin(), lname.end(), lname.begin(),
                     [](unsigned char c) { return static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c); });
      auto& v = headers[lname];
      if (!v.empty()) {
        v += ',';
      }
      v += canonical_value(value);
    }
  }
  signature out;
  std::string canonical_headers;
  for (const auto& [name, value] : headers) {
    canonical_headers += name;
    canonical_headers += ':';
    canonical_headers += value;
    canonical_headers += '\n';
    if (!out.signed_headers.empty()) {
      out.signed_headers += ';';
    }
    out.signed_headers += name;
  }
  std::string path = uri_encode(in.path.empty() ? std::string_view("/") : in.path, true);

  out.canonical_request.reserve(256 + canonical_headers.size());
  out.canonical_request += in.method;
  out.canonical_request += '\n';
  out.canonical_request += path;
  out.canonical_request += '\n';
  out.canonical_request += canonical_query(in.query);
  out.canonical_request += '\n';
  out.canonical_request += canonical_headers;
  out.canonical_request += '\n';
  out.canonical_request += out.signed_headers;
  out.canonical_request += '\n';
  out.canonical_request += sha256_hex(in.payload);

  const std::string_view date = amz_date.substr(0, 8);
  std::string scope;
  scope += date;
  scope += '/';
  scope += region;
  scope += '/';
  scope += service;
  scope += "/aws4_request";

  out.string_to_sign = "AWS4-HMAC-SHA256\n";
  out.string_to_sign += amz_date;
  out.string_to_sign += '\n';
  out.string_to_sign += scope;
  out.string_to_sign += '\n';
  out.string_to_sign += sha256_hex(out.canonical_request);

  const std::string secret = "AWS4" + creds.secret_access_key;
  const digest k_date = hmac(secret, date);
  const digest k_region = hmac(view(k_date), region);
  const digest k_service = hmac(view(k_region), service);
  const digest k_signing = hmac(view(k_service), "aws4_request");
  const digest sig = hmac(view(k_signing), out.string_to_sign);
  out.signature = to_hex(sig.data(), sig.size());

  out.authorization = "AWS4-HMAC-SHA256 Credential=" + creds.access_key_id + "/" + scope +
                      ", SignedHeaders=" + out.signed_headers + ", Signature=" + out.signature;
  return out;
}

}  // namespace switchyard::providers::aws
