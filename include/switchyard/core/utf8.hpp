#pragma once
// Writing text that must be valid UTF-8 (JSON, Postgres COPY) from bytes that may not be.
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

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

// Whether a word has a byte that is not plain_ascii: below 0x20, '"', '\\' or with its
// high bit set (the classic "has a byte less than / equal to" word tests; exact for the
// word as a whole, not for where in it).
[[gnu::always_inline]] inline bool special_in_word(std::uint64_t x) {
  constexpr std::uint64_t ones = 0x0101010101010101ULL, high = 0x8080808080808080ULL;
  const std::uint64_t quote = x ^ (ones * '"'), backslash = x ^ (ones * '\\');
  return ((((x - ones * 0x20) & ~x) | ((quote - ones) & ~quote) | ((backslash - ones) & ~backslash) | x) & high) != 0;
}

#if defined(__SSE2__)
// One bit per byte of a 16-byte block that is not plain_ascii: below 0x20 or from 0x80
// (both below 0x20 as signed bytes), '"' and '\\'.
[[gnu::always_inline]] inline unsigned special_bytes(__m128i x) {
  const __m128i low_or_high = _mm_cmplt_epi8(x, _mm_set1_epi8(0x20));
  const __m128i quote = _mm_cmpeq_epi8(x, _mm_set1_epi8('"'));
  const __m128i backslash = _mm_cmpeq_epi8(x, _mm_set1_epi8('\\'));
  return static_cast<unsigned>(_mm_movemask_epi8(_mm_or_si128(low_or_high, _mm_or_si128(quote, backslash))));
}
#endif

// Whether a string of 4 to 15 bytes is all plain_ascii: two overlapping words.
[[gnu::always_inline]] inline bool short_is_plain(const char* p, std::size_t n) {
  if (n >= 8) {
    std::uint64_t head = 0, tail = 0;
    std::memcpy(&head, p, 8);
    std::memcpy(&tail, p + n - 8, 8);
    return !special_in_word(head) && !special_in_word(tail);
  }
  std::uint32_t a = 0, b = 0;
  std::memcpy(&a, p, 4);
  std::memcpy(&b, p + n - 4, 4);
  return !special_in_word(a | (static_cast<std::uint64_t>(b) << 32));
}

// How many leading bytes of `s` write_utf8 copies as they are: sixteen at a time where SSE2
// is (every x86-64), the last block overlapping the one before; a string shorter than a
// block as two overlapping words.
inline std::size_t plain_prefix(std::string_view s) {
  const char* p = s.data();
  const std::size_t n = s.size();
  std::size_t run = 0;
#if defined(__SSE2__)
  if (n >= 16) {
    for (; run + 16 <= n; run += 16) {
      if (const unsigned m = special_bytes(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + run))); m != 0) {
        return run + static_cast<std::size_t>(__builtin_ctz(m));
      }
    }
    if (run == n) {
      return n;
    }
    const std::size_t last = n - 16;
    const unsigned m = special_bytes(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + last))) >> (run - last);
    return m == 0 ? n : run + static_cast<std::size_t>(__builtin_ctz(m));
  }
#else
  for (; run + 8 <= n; run += 8) {
    std::uint64_t x;
    std::memcpy(&x, p + run, 8);
    if (special_in_word(x)) {
      break;
    }
  }
#endif
  if (n - run >= 4 && n - run < 16 && short_is_plain(p + run, n - run)) {
    return n;
  }
  while (run < n && plain_ascii[static_cast<unsigned char>(p[run])]) {
    ++run;
  }
  return run;
}

// The length of the multi-byte UTF-8 sequence at `p` (whose first byte is 0x80 or above), of
// the `avail` bytes there; 0 when it is not valid (no overlongs, no surrogates, <= U+10FFFF,
// not cut short).
inline std::size_t utf8_sequence_length(const unsigned char* p, std::size_t avail) {
  const unsigned char c = p[0];
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
  bool ok = len != 0 && len <= avail && p[1] >= lo && p[1] <= hi;
  for (std::size_t k = 2; ok && k < len; ++k) {
    ok = p[k] >= 0x80 && p[k] <= 0xBF;
  }
  return ok ? len : 0;
}

// Whether `s` is valid UTF-8 (what Postgres' text accepts, NUL aside).
inline bool is_valid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  for (std::size_t i = 0; i < s.size();) {
    if (p[i] < 0x80) {
      ++i;
    } else if (const std::size_t len = utf8_sequence_length(p + i, s.size() - i); len != 0) {
      i += len;
    } else {
      return false;
    }
  }
  return true;
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
    if (const std::size_t len = utf8_sequence_length(p + i, n - i); len != 0) {
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

// A character (a code point, not a surrogate) as nlohmann's dump() writes it inside a
// string, non-ASCII as is: `\b`, `\f`, `\n`, `\r`, `\t`, `\"` and `\\` by name, other
// control characters as `\u00xx` (lowercase), anything else as its UTF-8 bytes. Writes at
// most 6 bytes at `o`; returns how many.
inline std::size_t json_dump_codepoint(char* o, std::uint32_t cp) {
  const auto two = [o](char c) {
    o[0] = '\\';
    o[1] = c;
    return std::size_t{2};
  };
  switch (cp) {
    case 0x08: return two('b');
    case 0x09: return two('t');
    case 0x0A: return two('n');
    case 0x0C: return two('f');
    case 0x0D: return two('r');
    case 0x22: return two('"');
    case 0x5C: return two('\\');
    default: break;
  }
  if (cp < 0x20) {
    static constexpr char hex[] = "0123456789abcdef";
    std::memcpy(o, "\\u00", 4);
    o[4] = hex[cp >> 4];
    o[5] = hex[cp & 15];
    return 6;
  }
  if (cp < 0x80) {
    o[0] = static_cast<char>(cp);
    return 1;
  }
  if (cp < 0x800) {
    o[0] = static_cast<char>(0xC0 | (cp >> 6));
    o[1] = static_cast<char>(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    o[0] = static_cast<char>(0xE0 | (cp >> 12));
    o[1] = static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    o[2] = static_cast<char>(0x80 | (cp & 0x3F));
    return 3;
  }
  o[0] = static_cast<char>(0xF0 | (cp >> 18));
  o[1] = static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
  o[2] = static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
  o[3] = static_cast<char>(0x80 | (cp & 0x3F));
  return 4;
}

// The inside of a JSON string for `s`: quotes, backslashes and control characters escaped,
// invalid UTF-8 replaced by U+FFFD.
inline void append_json_escaped(std::string& out, std::string_view s) {
  append_utf8(out, s, json_escape_max, json_escape_byte);
}

}  // namespace switchyard::core
