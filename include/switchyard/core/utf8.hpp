#pragma once
// Writing text that must be valid UTF-8 (JSON, Postgres COPY) from bytes that may not be.
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace switchyard::core {

// Bytes copied as they are by append_utf8: printable ASCII but '"' and '\\' (one load per
// byte in its scan instead of four compares).
inline constexpr auto plain_ascii = [] {
  std::array<bool, 256> t{};
  for (unsigned c = 0x20; c < 0x80; ++c) {
    t[c] = c != '"' && c != '\\';
  }
  return t;
}();

// How many leading bytes of `s` write_utf8 copies as they are (8 at a time, as it does).
inline std::size_t plain_prefix(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const std::size_t n = s.size();
  std::size_t run = 0;
  constexpr std::uint64_t ones = 0x0101010101010101ULL, high = 0x8080808080808080ULL;
  while (run + 8 <= n) {
    std::uint64_t x;
    std::memcpy(&x, p + run, 8);
    const std::uint64_t quote = x ^ (ones * '"'), backslash = x ^ (ones * '\\');
    if (((((x - ones * 0x20) & ~x) | ((quote - ones) & ~quote) | ((backslash - ones) & ~backslash) | x) & high) !=
        0) {
      break;
    }
    run += 8;
  }
  while (run < n && plain_ascii[p[run]]) {
    ++run;
  }
  return run;
}

// Writes `s` at `o` with invalid UTF-8 (headers and bodies can carry any bytes) replaced by
// U+FFFD, so that what is written is always valid UTF-8: Postgres never refuses a spend batch
// for one row's bytes, and a JSON log line stays JSON. `escape(o, c)` writes the escaped
// form of an ASCII byte that needs escaping in the target format and returns the new end,
// or returns nullptr for a byte that does not. The caller provides room for the worst case
// (s.size() times the longest form a byte can take: 3 for U+FFFD, more if an escape is
// longer). Returns the end of what was written.
template <typename Escape>
char* write_utf8(char* o, std::string_view s, Escape escape) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const std::size_t n = s.size();
  for (std::size_t i = 0; i < n;) {
    // A run of plain ASCII (most of every row) is copied in one go.
    const std::size_t run = i + plain_prefix(s.substr(i));
    if (run != i) {
      std::memcpy(o, s.data() + i, run - i);
      o += run - i;
      i = run;
      continue;
    }
    const unsigned char c = p[i];
    if (c < 0x80) {
      if (char* e = escape(o, c); e != nullptr) {
        o = e;
      } else {
        *o++ = static_cast<char>(c);
      }
      ++i;
      continue;
    }
    // Length and validity of a multi-byte sequence (no overlongs, no surrogates, <= U+10FFFF).
    std::size_t len = 0;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      lo = c == 0xE0 ? 0xA0 : 0x80;
      hi = c == 0xED ? 0x9F : 0xBF;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      lo = c == 0xF0 ? 0x90 : 0x80;
      hi = c == 0xF4 ? 0x8F : 0xBF;
    }
    bool ok = len != 0 && i + len <= n && p[i + 1] >= lo && p[i + 1] <= hi;
    for (std::size_t k = 2; ok && k < len; ++k) {
      ok = p[i + k] >= 0x80 && p[i + k] <= 0xBF;
    }
    if (ok) {
      std::memcpy(o, s.data() + i, len);
      o += len;
      i += len;
    } else {
      std::memcpy(o, "\xEF\xBF\xBD", 3);  // U+FFFD
      o += 3;
      ++i;
    }
  }
  return o;
}

// write_utf8 appending to a string; `max_expansion`: the longest form one byte can take.
template <typename Escape>
void append_utf8(std::string& out, std::string_view s, std::size_t max_expansion, Escape escape) {
  // Text with nothing to escape (most of it) is appended as is, without growing the
  // string for the worst case first.
  const std::size_t plain = plain_prefix(s);
  out.append(s.data(), plain);
  s.remove_prefix(plain);
  if (s.empty()) {
    return;
  }
  const std::size_t at = out.size();
  out.resize(at + s.size() * max_expansion);
  char* end = write_utf8(out.data() + at, s, escape);
  out.resize(static_cast<std::size_t>(end - out.data()));
}

// Escapes a byte inside a JSON string: quotes, backslashes and control characters (at most 6
// bytes: \u00XX).
inline char* json_escape_byte(char* o, unsigned char c) {
  const auto put = [&](const char* two) {
    o[0] = two[0];
    o[1] = two[1];
    return o + 2;
  };
  switch (c) {
    case '"': return put("\\\"");
    case '\\': return put("\\\\");
    case '\n': return put("\\n");
    case '\r': return put("\\r");
    case '\t': return put("\\t");
    default:
      if (c < 0x20) {
        static constexpr char hex[] = "0123456789abcdef";
        std::memcpy(o, "\\u00", 4);
        o[4] = hex[c >> 4];
        o[5] = hex[c & 15];
        return o + 6;
      }
      return nullptr;
  }
}
inline constexpr std::size_t json_escape_max = 6;

// The inside of a JSON string for `s`: quotes, backslashes and control characters escaped,
// invalid UTF-8 replaced by U+FFFD.
inline void append_json_escaped(std::string& out, std::string_view s) {
  append_utf8(out, s, json_escape_max, json_escape_byte);
}

}  // namespace switchyard::core
