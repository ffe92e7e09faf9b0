// The common HTTP/1.1 head, scanned without Beast (issue 6): the server's requests and
// the upstream client's responses nearly always arrive as one complete, plain head, and
// Beast's composed read plus field parser cost ~6% of the CPU per proxied request on
// each side. These helpers accept only plain fields (token name, ':', OWS, a value
// without control characters, CRLF); the callers send anything else to Beast's parser,
// which judges it exactly as before. Header-only, no Beast. Thread: any.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace switchyard::http::simple {

constexpr bool is_tchar(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '!' || c == '#' ||
         c == '$' || c == '%' || c == '&' || c == '\'' || c == '*' || c == '+' || c == '-' || c == '.' || c == '^' ||
         c == '_' || c == '`' || c == '|' || c == '~';
}

// a == lower, ASCII case-insensitively (`lower` is lower-case).
inline bool iequals(std::string_view a, std::string_view lower) {
  if (a.size() != lower.size()) {
    return false;
  }
  for (std::size_t i = 0; i < a.size(); ++i) {
    char ch = a[i];
    if (ch >= 'A' && ch <= 'Z') {
      ch = static_cast<char>(ch - 'A' + 'a');
    }
    if (ch != lower[i]) {
      return false;
    }
  }
  return true;
}

// A Content-Length value: 1-18 digits.
inline bool parse_length(std::string_view v, std::uint64_t& out) {
  if (v.empty() || v.size() > 18) {
    return false;
  }
  std::uint64_t n = 0;
  for (char ch : v) {
    if (ch < '0' || ch > '9') {
      return false;
    }
    n = n * 10 + static_cast<std::uint64_t>(ch - '0');
  }
  out = n;
  return true;
}

// The field lines from `p` up to `stop` (just past the last field's CRLF). Calls
// on_field(name, value) for each (value without surrounding OWS); stops with false on
// anything not plain (obs-fold, bare LF, control characters, an empty or bad name) or
// when on_field returns false.
template <class F>
bool scan_fields(const char* p, const char* stop, F&& on_field) {
  while (p < stop) {
    const char* n = p;
    while (p < stop && is_tchar(static_cast<unsigned char>(*p))) {
      ++p;
    }
    if (p == n || p >= stop || *p != ':') {
      return false;
    }
    const std::string_view name(n, static_cast<std::size_t>(p - n));
    ++p;
    while (p < stop && (*p == ' ' || *p == '\t')) {
      ++p;
    }
    const char* v = p;
    while (p < stop && *p != '\r') {
      const auto ch = static_cast<unsigned char>(*p);
      if ((ch < 0x20 && ch != '\t') || ch == 0x7F) {
        return false;
      }
      ++p;
    }
    if (p >= stop || p[1] != '\n') {
      return false;
    }
    const char* ve = p;
    while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) {
      --ve;
    }
    p += 2;
    if (!on_field(name, std::string_view(v, static_cast<std::size_t>(ve - v)))) {
      return false;
    }
  }
  return true;
}

}  // namespace switchyard::http::simple
