#pragma once
// Writing text that must be valid UTF-8 (JSON, Postgres COPY) from bytes that may not be.
#include <cstddef>
#include <string>
#include <string_view>

namespace switchyard::core {

// Appends `s` with invalid UTF-8 (headers and bodies can carry any bytes) replaced by U+FFFD,
// so that what is written is always valid UTF-8: Postgres never refuses a spend batch for one
// row's bytes, and a JSON log line stays JSON; `escape(out, c)` writes an ASCII byte
// that needs escaping in the target format and returns false for one that does not.
template <typename Escape>
void append_utf8(std::string& out, std::string_view s, Escape escape) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const std::size_t n = s.size();
  for (std::size_t i = 0; i < n;) {
    // A run of plain ASCII (most of every row) is copied in one go.
    std::size_t run = i;
    while (run < n && p[run] >= 0x20 && p[run] < 0x80 && p[run] != '"' && p[run] != '\\') {
      ++run;
    }
    if (run != i) {
      out.append(s.data() + i, run - i);
      i = run;
      continue;
    }
    const unsigned char c = p[i];
    if (c < 0x80) {
      if (!escape(out, c)) {
        out += static_cast<char>(c);
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
      out.append(s.data() + i, len);
      i += len;
    } else {
      out += "\xEF\xBF\xBD";  // U+FFFD
      ++i;
    }
  }
}

// The inside of a JSON string for `s`: quotes, backslashes and control characters escaped,
// invalid UTF-8 replaced by U+FFFD.
inline void append_json_escaped(std::string& out, std::string_view s) {
  append_utf8(out, s, [](std::string& o, unsigned char c) {
    switch (c) {
      case '"': o += "\\\""; return true;
      case '\\': o += "\\\\"; return true;
      case '\n': o += "\\n"; return true;
      case '\r': o += "\\r"; return true;
      case '\t': o += "\\t"; return true;
      default:
        if (c < 0x20) {
          static constexpr char hex[] = "0123456789abcdef";
          o += "\\u00";
          o += hex[c >> 4];
          o += hex[c & 15];
          return true;
        }
        return false;
    }
  });
}

}  // namespace switchyard::core
