// The common HTTP/1.1 head, scanned without Beast (for CPU): the server's requests and
// the upstream client's responses nearly always arrive as one complete, plain head, and
// Beast's composed read plus field parser cost ~6% of the CPU per proxied request on
// each side. These helpers accept only plain fields (token name, ':', OWS, a value
// without control characters, CRLF); the callers send anything else to Beast's parser,
// which judges it exactly as before. Header-only, no Beast. Thread: any.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace switchyard::http::simple {

// RFC 9110 token characters, as a table (a chain of comparisons cost ~20 instructions
// per byte of every header name).
struct tchar_table {
  bool v[256] = {};
  constexpr tchar_table() {
    for (int c = 0; c < 256; ++c) {
      v[c] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '!' || c == '#' ||
             c == '$' || c == '%' || c == '&' || c == '\'' || c == '*' || c == '+' || c == '-' || c == '.' ||
             c == '^' || c == '_' || c == '`' || c == '|' || c == '~';
    }
  }
};
inline constexpr tchar_table tchars{};

constexpr bool is_tchar(unsigned char c) { return tchars.v[c]; }

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

// The first byte in [p, stop) that is a control character other than HT, or DEL (a
// value ends at its CR): 16 bytes per step with SSE2.
inline const char* value_end(const char* p, const char* stop) {
#if defined(__SSE2__)
  const __m128i space = _mm_set1_epi8(0x20);
  const __m128i tab = _mm_set1_epi8('\t');
  const __m128i del = _mm_set1_epi8(0x7F);
  while (stop - p >= 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m128i printable = _mm_cmpeq_epi8(_mm_max_epu8(v, space), v);  // v >= 0x20, unsigned
    const __m128i bad = _mm_or_si128(_mm_andnot_si128(_mm_or_si128(printable, _mm_cmpeq_epi8(v, tab)),
                                                      _mm_set1_epi8(static_cast<char>(0xFF))),
                                      _mm_cmpeq_epi8(v, del));
    const int mask = _mm_movemask_epi8(bad);
    if (mask != 0) {
      return p + __builtin_ctz(static_cast<unsigned>(mask));
    }
    p += 16;
  }
#endif
  for (; p < stop; ++p) {
    const auto ch = static_cast<unsigned char>(*p);
    if ((ch < 0x20 && ch != '\t') || ch == 0x7F) {
      return p;
    }
  }
  return p;
}

// The framing fields of a plain head, shared by the request and the response parsers:
// take() returns false for what the fast path leaves to Beast (Transfer-Encoding,
// Upgrade, a bad or conflicting Content-Length, a Connection other than close/keep-alive).
struct framing {
  bool have_length = false;
  std::uint64_t length = 0;
  bool keep_alive = true;

  bool take(std::string_view name, std::string_view value) {
    if (iequals(name, "content-length")) {
      std::uint64_t len = 0;
      if (!parse_length(value, len) || (have_length && len != length)) {
        return false;
      }
      have_length = true;
      length = len;
    } else if (iequals(name, "connection")) {
      if (iequals(value, "close")) {
        keep_alive = false;
      } else if (!iequals(value, "keep-alive")) {
        return false;
      }
    } else if (iequals(name, "transfer-encoding") || iequals(name, "upgrade")) {
      return false;
    }
    return true;
  }
};

// Appends {name lower-cased, value} to a list of string pairs.
template <class List>
void append_lowered(List& headers, std::string_view name, std::string_view value) {
  auto& h = headers.emplace_back(std::string(name), std::string(value));
  for (auto& ch : h.first) {
    if (ch >= 'A' && ch <= 'Z') {
      ch = static_cast<char>(ch - 'A' + 'a');
    }
  }
}

// s = v. A connection's requests repeat their heads, so the size is usually the same and
// the bytes are copied over (std::string::assign goes through its general replace).
inline void overwrite(std::string& s, std::string_view v) {
  if (s.size() != v.size()) {
    s.assign(v);
  } else if (!v.empty()) {
    std::memcpy(s.data(), v.data(), v.size());
  }
}

// s = v with A-Z lower-cased, 8 bytes a step (a bytewise loop was ~5 instructions a byte
// of every header name).
inline void overwrite_lowered(std::string& s, std::string_view v) {
  if (s.size() != v.size()) {
    s.resize(v.size());
  }
  char* o = s.data();
  const char* p = v.data();
  std::size_t n = v.size();
  constexpr std::uint64_t ones = 0x0101010101010101ULL;
  constexpr std::uint64_t highs = 0x8080808080808080ULL;
  for (; n >= 8; n -= 8, p += 8, o += 8) {
    std::uint64_t w;
    std::memcpy(&w, p, 8);
    const std::uint64_t low7 = w & ~highs;
    // High bit of each byte: its low 7 bits are >= 'A', and > 'Z' (no carry crosses bytes:
    // each sum stays below 0x100).
    const std::uint64_t ge_a = low7 + (0x80 - 'A') * ones;
    const std::uint64_t gt_z = low7 + (0x7F - 'Z') * ones;
    const std::uint64_t upper = (ge_a ^ gt_z) & ~w & highs;  // ASCII and in A-Z
    w |= upper >> 2;                                          // 0x80 >> 2 = 0x20
    std::memcpy(o, &w, 8);
  }
  for (; n > 0; --n, ++p, ++o) {
    const char ch = *p;
    *o = (ch >= 'A' && ch <= 'Z') ? static_cast<char>(ch - 'A' + 'a') : ch;
  }
}

// Sets entry `i` of a list of string pairs to {name lower-cased, value}, reusing the
// strings already there: a keep-alive connection's next request usually carries the same
// fields, so its head is read without allocating. Appends when the list is shorter.
template <class List>
void assign_lowered(List& headers, std::size_t i, std::string_view name, std::string_view value) {
  if (i >= headers.size()) {
    append_lowered(headers, name, value);
    return;
  }
  auto& h = headers[i];
  overwrite_lowered(h.first, name);
  overwrite(h.second, value);
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
    p = value_end(p, stop);
    if (p < stop && *p != '\r') {
      return false;  // a control character inside the value
    }
    // The LF must be inside [p, stop): a CR as the last byte is not a line end (the
    // server's callers always have more bytes after `stop`, but the scan must not rely
    // on it; found by http_head_fuzz).
    if (stop - p < 2 || p[1] != '\n') {
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
