#include "switchyard/providers/json_scan.hpp"

#include "switchyard/core/utf8.hpp"

#include "switchyard/core/hex.hpp"
#include "switchyard/core/log.hpp"

#include <nlohmann/json.hpp>

#include <charconv>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#if defined(__x86_64__) && defined(__SSE2__)
#include <immintrin.h>
#endif

namespace switchyard::providers {

namespace {

using byte = unsigned char;

int hex_value(byte c) { return core::hex_value(static_cast<char>(c)); }

bool is_ws(byte c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }


bool is_cont(byte c) { return (c & 0xC0) == 0x80; }

// Whether the four bytes at `q` are the hex digits of a \u escape outside the surrogates
// (U+D800-U+DFFF), which stands alone.
[[maybe_unused]] bool plain_u_escape(const byte* q) {
  int v = 0;
  for (int k = 0; k < 4; ++k) {
    const int d = hex_value(q[k]);
    if (d < 0) {
      return false;
    }
    v = v * 16 + d;
  }
  return v < 0xD800 || v > 0xDFFF;
}

// The byte after a backslash in a two-byte escape.
bool is_short_escape(byte c) {
  switch (c) {
    case '"':
    case '\\':
    case '/':
    case 'b':
    case 'f':
    case 'n':
    case 'r':
    case 't': return true;
    default: return false;
  }
}

#if defined(__x86_64__) && defined(__SSE2__)
// Long strings (prompts) are skipped 32 bytes at a time where the CPU has AVX2 (checked
// once at startup; the build targets baseline x86-64): a 1 MB prompt is ~65k SSE2 steps
// otherwise, a fifth of the gateway's CPU for a 1 MB request. Non-ASCII text
// stays in the vector loop too (validated there): prompts in most languages have a
// multi-byte character every few bytes, and leaving the loop for each one made a
// multilingual prompt 5x slower to scan than simdjson's DOM parser (bench/json.sh).

// Where a string's scan can resume at `p` without splitting a UTF-8 sequence: p itself,
// or the lead byte of a sequence that starts before p and is not complete before it
// (looked for in the 3 bytes before p, never before `lo`, the string's first byte).
const byte* sequence_start(const byte* lo, const byte* p) {
  for (int k = 1; k <= 3 && p - k >= lo; ++k) {
    const byte b = p[-k];
    if (b < 0x80) {
      return p;  // ASCII: no sequence spans p
    }
    if (b >= 0xC0) {  // a lead byte: its sequence is 2, 3 or 4 bytes long
      const int len = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : 2;
      return k < len ? p - k : p;
    }
  }
  return p;
}

// UTF-8 validation of 32 bytes at a time, after Keiser and Lemire, "Validating UTF-8 in
// less than one instruction per byte" (2021): three 16-entry table lookups (the high and
// low nibble of the previous byte, the high nibble of this one) flag every invalid
// 2-byte pair; a third or fourth byte of a 3- or 4-byte sequence must be (and only it may
// be) a continuation after a continuation. Returns a non-zero vector where `in`, read
// after `prev` (the 32 bytes before it), is not valid UTF-8 so far; a sequence cut at
// the end of `in` is not an error yet (the next block, or the caller, sees it).
__attribute__((target("avx2"))) __m256i utf8_errors_avx2(__m256i in, __m256i prev) {
  constexpr char too_short = 1 << 0;  // a lead byte followed by a lead or ASCII
  constexpr char too_long = 1 << 1;   // ASCII followed by a continuation
  constexpr char overlong_3 = 1 << 2;
  constexpr char too_large = 1 << 3;  // above U+10FFFF
  constexpr char surrogate = 1 << 4;
  constexpr char overlong_2 = 1 << 5;
  constexpr char too_large_1000 = 1 << 6;
  constexpr char overlong_4 = 1 << 6;
  constexpr char two_conts = static_cast<char>(1 << 7);
  constexpr char carry = too_short | too_long | two_conts;
  // Indexed by the previous byte's high nibble.
  const __m256i byte_1_high = _mm256_setr_epi8(
      too_long, too_long, too_long, too_long, too_long, too_long, too_long, too_long,  // 0___: ASCII
      two_conts, two_conts, two_conts, two_conts,                                      // 10__: continuation
      too_short | overlong_2,                                                          // 1100
      too_short,                                                                       // 1101
      too_short | overlong_3 | surrogate,                                              // 1110
      too_short | too_large | too_large_1000 | overlong_4,                             // 1111
      too_long, too_long, too_long, too_long, too_long, too_long, too_long, too_long, two_conts, two_conts,
      two_conts, two_conts, too_short | overlong_2, too_short, too_short | overlong_3 | surrogate,
      too_short | too_large | too_large_1000 | overlong_4);
  // Indexed by the previous byte's low nibble.
  constexpr char large = carry | too_large | too_large_1000;
  const __m256i byte_1_low = _mm256_setr_epi8(
      carry | overlong_3 | overlong_2 | overlong_4,  // ____0000
      carry | overlong_2,                            // ____0001
      carry, carry,                                  // ____001_
      carry | too_large,                             // ____0100
      large, large, large,                           // ____0101, ____011_
      large, large, large, large, large,             // ____1000 .. ____1100
      large | surrogate,                             // ____1101
      large, large,                                  // ____111_
      carry | overlong_3 | overlong_2 | overlong_4, carry | overlong_2, carry, carry, carry | too_large, large,
      large, large, large, large, large, large, large, large | surrogate, large, large);
  // Indexed by this byte's high nibble.
  constexpr char c1000 = too_long | overlong_2 | two_conts | overlong_3 | too_large_1000 | overlong_4;
  constexpr char c1001 = too_long | overlong_2 | two_conts | overlong_3 | too_large;
  constexpr char c101 = too_long | overlong_2 | two_conts | surrogate | too_large;
  const __m256i byte_2_high = _mm256_setr_epi8(
      too_short, too_short, too_short, too_short, too_short, too_short, too_short, too_short,  // 0___
      c1000, c1001, c101, c101,                                                                // 10__
      too_short, too_short, too_short, too_short,                                              // 11__
      too_short, too_short, too_short, too_short, too_short, too_short, too_short, too_short, c1000, c1001, c101,
      c101, too_short, too_short, too_short, too_short);
  const __m256i nibble = _mm256_set1_epi8(0x0F);
  // prevN: the bytes N positions back, across the block boundary from `prev`: one
  // shuffle of the two blocks side by side (vperm2i128 + vpalignr; _mm256_alignr_epi8
  // itself stops compiling under UBSan, whose instrumentation makes its immediate a
  // variable, and the sanitizer build must compile the code the release build runs).
  using v32 = char __attribute__((vector_size(32)));
#define SY_FROM(b)                                                                                                     \
  b + 0, b + 1, b + 2, b + 3, b + 4, b + 5, b + 6, b + 7, b + 8, b + 9, b + 10, b + 11, b + 12, b + 13, b + 14, b + 15, \
      b + 16, b + 17, b + 18, b + 19, b + 20, b + 21, b + 22, b + 23, b + 24, b + 25, b + 26, b + 27, b + 28, b + 29,  \
      b + 30, b + 31
  const auto pv = reinterpret_cast<v32>(prev);
  const auto iv = reinterpret_cast<v32>(in);
  const auto prev1 = reinterpret_cast<__m256i>(__builtin_shufflevector(pv, iv, SY_FROM(31)));
  const auto prev2 = reinterpret_cast<__m256i>(__builtin_shufflevector(pv, iv, SY_FROM(30)));
  const auto prev3 = reinterpret_cast<__m256i>(__builtin_shufflevector(pv, iv, SY_FROM(29)));
#undef SY_FROM
  const __m256i b1h = _mm256_shuffle_epi8(byte_1_high, _mm256_and_si256(_mm256_srli_epi16(prev1, 4), nibble));
  const __m256i b1l = _mm256_shuffle_epi8(byte_1_low, _mm256_and_si256(prev1, nibble));
  const __m256i b2h = _mm256_shuffle_epi8(byte_2_high, _mm256_and_si256(_mm256_srli_epi16(in, 4), nibble));
  const __m256i special = _mm256_and_si256(_mm256_and_si256(b1h, b1l), b2h);
  // Third and fourth bytes: 0x80 where prev2 >= 0xE0 or prev3 >= 0xF0.
  const __m256i third = _mm256_subs_epu8(prev2, _mm256_set1_epi8(static_cast<char>(0xE0 - 0x80)));
  const __m256i fourth = _mm256_subs_epu8(prev3, _mm256_set1_epi8(static_cast<char>(0xF0 - 0x80)));
  const __m256i must_be_cont =
      _mm256_and_si256(_mm256_or_si256(third, fourth), _mm256_set1_epi8(static_cast<char>(0x80)));
  return _mm256_xor_si256(must_be_cont, special);
}

// String contents from `p` (inside a string that starts at `lo`), 32 bytes at a time:
// skips plain ASCII and valid UTF-8 alike. Stops at the first '"', '\\' or control
// character, or where fewer than 32 bytes remain, or at the start of a block that is not
// valid UTF-8; always at the start of a UTF-8 sequence, so that the scalar code goes on
// from there (and finds, with its own message, any error this saw).
// `escaped` is set when it stepped over an escape (a key must then be decoded).
__attribute__((target("avx2"))) const byte* skip_text_avx2(const byte* lo, const byte* p, const byte* end,
                                                           bool& escaped) {
  const __m256i quote = _mm256_set1_epi8('"');
  const __m256i bslash = _mm256_set1_epi8('\\');
  const __m256i max_control = _mm256_set1_epi8(0x1F);
  __m256i prev = _mm256_setzero_si256();
  while (end - p >= 32) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    const __m256i control = _mm256_cmpeq_epi8(_mm256_min_epu8(v, max_control), v);  // v <= 0x1F, unsigned
    const __m256i hit = _mm256_or_si256(_mm256_or_si256(_mm256_cmpeq_epi8(v, quote), _mm256_cmpeq_epi8(v, bslash)),
                                        control);
    auto hits = static_cast<unsigned>(_mm256_movemask_epi8(hit));
    const auto high = static_cast<unsigned>(_mm256_movemask_epi8(v));
    const auto pending = static_cast<unsigned>(_mm256_movemask_epi8(prev)) >> 29;  // last 3 bytes of prev
    // Two-byte escapes (\n, \", \\ ...) are stepped over here, both bytes inside this
    // block: prose and code have one every few dozen bytes. So are \u escapes of a
    // character outside the surrogates, all six bytes inside this block: a client that
    // escapes every non-ASCII character (Python's json.dumps by default) sends one every
    // few bytes of a text in most languages, and leaving each to the scalar code cost
    // about a hundred instructions apiece. Surrogates (a pair makes one character) are
    // left to the scalar code, which checks the pairing.
    while (hits != 0) {
      const unsigned at = static_cast<unsigned>(__builtin_ctz(hits));
      if (p[at] != '\\' || at == 31) {
        break;
      }
      unsigned last = at + 1;  // the escape's last byte
      if (!is_short_escape(p[at + 1])) {
        if (p[at + 1] != 'u' || at > 26 || !plain_u_escape(p + at + 2)) {
          break;
        }
        last = at + 5;
      }
      hits &= last == 31 ? 0u : ~((2u << last) - 1);  // clear the escape's bytes
      escaped = true;
    }
    if (hits != 0) {
      // Stop at the hit: a quote, a control character, a \u escape or a backslash at
      // the block's end, for the scalar code. Validate up to and including it (ASCII: it
      // ends any sequence before it); the bytes after it read as ASCII zeros.
      const unsigned at = static_cast<unsigned>(__builtin_ctz(hits));
      const unsigned before = (1u << at) - 1;  // the bytes before the hit
      if (((high & before) | pending) != 0) {
        alignas(32) static constexpr unsigned char ramp[64] = {
            0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
            0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
        const __m256i keep = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ramp + 31 - at));
        const __m256i err = utf8_errors_avx2(_mm256_and_si256(v, keep), prev);
        if (!_mm256_testz_si256(err, err)) {
          return sequence_start(lo, p);
        }
      }
      // An escape cut by the block's end (a backslash in its last byte, or a \u in its last
      // five): the next block starts at its backslash, where it lies whole. Nothing before
      // it is pending (it is ASCII and all before it was validated above). A backslash the
      // new block cannot step over either (at 0) goes to the scalar code.
      if (p[at] == '\\' && at != 0 && end - (p + at) >= 32 && (at == 31 || (at > 26 && p[at + 1] == 'u'))) {
        p += at;
        prev = _mm256_setzero_si256();
        continue;
      }
      return p + at;
    }
    if ((high | pending) != 0) {
      const __m256i err = utf8_errors_avx2(v, prev);
      if (!_mm256_testz_si256(err, err)) {
        return sequence_start(lo, p);
      }
    }
    prev = v;
    p += 32;
  }
  return sequence_start(lo, p);
}

const bool have_avx2 = [] {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") != 0;
}();
#endif

class scanner {
 public:
  scanner(std::string_view text, std::size_t max_depth)
      : begin_(reinterpret_cast<const byte*>(text.data())),
        p_(begin_),
        end_(begin_ + text.size()),
        max_depth_(max_depth) {}

  // One value, surrounded by optional whitespace, then the end. `out` (may be null)
  // receives the root object's members.
  bool document(json_scan* out) {
    if (end_ - p_ >= 3 && p_[0] == 0xEF && p_[1] == 0xBB && p_[2] == 0xBF) {
      p_ += 3;  // a UTF-8 byte order mark, which nlohmann skips too
    }
    ws();
    if (p_ == end_) {
      return fail("empty input");
    }
    if (out != nullptr) {
      out->root = kind_at(*p_);
    }
    bool ok = (out != nullptr && *p_ == '{') ? object(out) : value();
    if (!ok) {
      return false;
    }
    ws();
    if (p_ != end_) {
      return fail("unexpected content after the JSON value");
    }
    return true;
  }

  const char* error() const { return err_ != nullptr ? err_ : ""; }
  std::size_t error_offset() const { return static_cast<std::size_t>((err_at_ != nullptr ? err_at_ : p_) - begin_); }
  bool too_deep() const { return too_deep_; }

 private:
  static json_kind kind_at(byte c) {
    switch (c) {
      case '{': return json_kind::object;
      case '[': return json_kind::array;
      case '"': return json_kind::string;
      case 't':
      case 'f': return json_kind::boolean;
      case 'n': return json_kind::null;
      default: return json_kind::number;
    }
  }

  bool fail(const char* what) {
    if (err_ == nullptr) {
      err_ = what;
      err_at_ = p_;
    }
    return false;
  }

  void ws() {
    while (p_ < end_ && is_ws(*p_)) {
      ++p_;
    }
  }

  // p_ at the opening quote; on success p_ is past the closing quote.
  bool string(bool* had_escape) {
    ++p_;
    const byte* start = p_;
    for (;;) {
#if defined(__SSE2__)
      // Most strings of a JSON text are short (keys, ids, enum values): one 16-byte probe
      // finds their end before the AVX2 loop's set-up is paid. The probe flags what the
      // SSE2 loop below flags, and steps over ASCII only, so AVX2 starts on a sequence
      // boundary.
      if (end_ - p_ >= 16) {
        const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p_));
        const __m128i hit = _mm_or_si128(
            _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')), _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))),
            _mm_cmplt_epi8(v, _mm_set1_epi8(0x20)));
        const int mask = _mm_movemask_epi8(hit);
        if (mask != 0) {
          p_ += __builtin_ctz(static_cast<unsigned>(mask));
          if (*p_ == '"') {
            text_bytes_ += static_cast<std::size_t>(p_ - start);
            ++p_;
            return true;
          }
        } else {
          p_ += 16;
        }
      }
#endif
#if defined(__x86_64__) && defined(__SSE2__)
      if (have_avx2 && end_ - p_ >= 64) {
        bool escaped = false;
        p_ = skip_text_avx2(start, p_, end_, escaped);
        if (escaped && had_escape != nullptr) {
          *had_escape = true;
        }
      }
#endif
#if defined(__SSE2__)
      const __m128i quote = _mm_set1_epi8('"');
      const __m128i bslash = _mm_set1_epi8('\\');
      const __m128i space = _mm_set1_epi8(0x20);
      while (end_ - p_ >= 16) {
        const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p_));
        // Signed compare: bytes >= 0x80 are negative, so "< 0x20" flags them too
        // (they take the UTF-8 check below).
        const __m128i hit = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bslash)),
                                         _mm_cmplt_epi8(v, space));
        const int mask = _mm_movemask_epi8(hit);
        if (mask != 0) {
          p_ += __builtin_ctz(static_cast<unsigned>(mask));
          break;
        }
        p_ += 16;
      }
#else
      while (end_ - p_ >= 8) {
        std::uint64_t w;
        std::memcpy(&w, p_, 8);
        constexpr std::uint64_t ones = 0x0101010101010101ULL;
        constexpr std::uint64_t highs = 0x8080808080808080ULL;
        const std::uint64_t q = w ^ (ones * '"');
        const std::uint64_t b = w ^ (ones * '\\');
        const std::uint64_t special = ((q - ones) & ~q) | ((b - ones) & ~b) | (w - ones * 0x20) | w;
        if ((special & highs) != 0) {
          break;
        }
        p_ += 8;
      }
#endif
      if (p_ >= end_) {
        return fail("unterminated string");
      }
      const byte c = *p_;
      if (c == '"') {
        text_bytes_ += static_cast<std::size_t>(p_ - start);
        ++p_;
        return true;
      }
      if (c == '\\') {
        if (had_escape != nullptr) {
          *had_escape = true;
        }
        if (!escape()) {
          return false;
        }
        continue;
      }
      if (c < 0x20) {
        return fail("control character in a string (must be escaped)");
      }
      if (c < 0x80) {
        ++p_;
        continue;
      }
      if (!utf8()) {
        return false;
      }
    }
  }

  // p_ at a backslash.
  bool escape() {
    if (end_ - p_ < 2) {
      return fail("unterminated string");
    }
    if (is_short_escape(p_[1])) {
      p_ += 2;
      return true;
    }
    if (p_[1] != 'u') {
      ++p_;
      return fail("invalid escape in a string");
    }
    int cp = hex4(p_ + 2);
    if (cp < 0) {
      return fail("invalid \\u escape (four hex digits expected)");
    }
    p_ += 6;
    if (cp >= 0xDC00 && cp <= 0xDFFF) {
      return fail("lone low surrogate in a \\u escape");
    }
    if (cp >= 0xD800 && cp <= 0xDBFF) {
      if (end_ - p_ < 6 || p_[0] != '\\' || p_[1] != 'u') {
        return fail("high surrogate \\u escape not followed by a low surrogate");
      }
      int lo = hex4(p_ + 2);
      if (lo < 0xDC00 || lo > 0xDFFF) {
        return fail("high surrogate \\u escape not followed by a low surrogate");
      }
      p_ += 6;
    }
    return true;
  }

  int hex4(const byte* at) const {
    if (end_ - at < 4) {
      return -1;
    }
    int v = 0;
    for (int i = 0; i < 4; ++i) {
      int h = hex_value(at[i]);
      if (h < 0) {
        return -1;
      }
      v = v * 16 + h;
    }
    return v;
  }

  // p_ at a byte >= 0x80: one well-formed UTF-8 sequence (RFC 3629 table).
  bool utf8() {
    const byte c = *p_;
    const std::ptrdiff_t left = end_ - p_;
    auto need = [&](std::ptrdiff_t n) { return left >= n; };
    if (c >= 0xC2 && c <= 0xDF) {
      if (need(2) && is_cont(p_[1])) {
        p_ += 2;
        return true;
      }
    } else if (c >= 0xE0 && c <= 0xEF) {
      const byte lo = c == 0xE0 ? 0xA0 : 0x80;
      const byte hi = c == 0xED ? 0x9F : 0xBF;
      if (need(3) && p_[1] >= lo && p_[1] <= hi && is_cont(p_[2])) {
        p_ += 3;
        return true;
      }
    } else if (c >= 0xF0 && c <= 0xF4) {
      const byte lo = c == 0xF0 ? 0x90 : 0x80;
      const byte hi = c == 0xF4 ? 0x8F : 0xBF;
      if (need(4) && p_[1] >= lo && p_[1] <= hi && is_cont(p_[2]) && is_cont(p_[3])) {
        p_ += 4;
        return true;
      }
    }
    return fail("invalid UTF-8 in a string");
  }

  bool digits() {
    if (p_ >= end_ || *p_ < '0' || *p_ > '9') {
      return fail("invalid number");
    }
    while (p_ < end_ && *p_ >= '0' && *p_ <= '9') {
      ++p_;
    }
    return true;
  }

  bool number() {
    const byte* start = p_;
    bool exponent = false;
    if (!number_grammar(exponent)) {
      return false;
    }
    // Like nlohmann: a number that overflows a double (1e400) is an error. Only numbers
    // with an exponent or 309+ characters can, so the rest skip strtod.
    const auto n = static_cast<std::size_t>(p_ - start);
    if (n >= 309 || exponent) {
      std::string copy(reinterpret_cast<const char*>(start), n);
      if (!std::isfinite(std::strtod(copy.c_str(), nullptr))) {
        p_ = start;
        return fail("number out of range");
      }
    }
    return true;
  }

  bool number_grammar(bool& exponent) {
    if (*p_ == '-') {
      ++p_;
    }
    if (p_ >= end_) {
      return fail("invalid number");
    }
    if (*p_ == '0') {
      ++p_;
    } else if (!digits()) {
      return false;
    }
    if (p_ < end_ && *p_ == '.') {
      ++p_;
      if (!digits()) {
        return false;
      }
    }
    if (p_ < end_ && (*p_ == 'e' || *p_ == 'E')) {
      exponent = true;
      ++p_;
      if (p_ < end_ && (*p_ == '+' || *p_ == '-')) {
        ++p_;
      }
      if (!digits()) {
        return false;
      }
    }
    return true;
  }

  bool literal(const char* lit, std::size_t n) {
    if (static_cast<std::size_t>(end_ - p_) < n || std::memcmp(p_, lit, n) != 0) {
      return fail("invalid literal");
    }
    p_ += n;
    return true;
  }

  bool enter() {
    if (++depth_ > max_depth_) {
      too_deep_ = true;
      return fail("JSON nested too deeply");
    }
    return true;
  }

  bool value() {
    if (p_ >= end_) {
      return fail("unexpected end of input");
    }
    switch (*p_) {
      case '{': return object();
      case '[': return array();
      case '"': return string(nullptr);
      case 't': return literal("true", 4);
      case 'f': return literal("false", 5);
      case 'n': return literal("null", 4);
      default:
        if (*p_ == '-' || (*p_ >= '0' && *p_ <= '9')) {
          return number();
        }
        return fail("unexpected character");
    }
  }

  bool array() {
    if (!enter()) {
      return false;
    }
    ++p_;
    ws();
    if (p_ < end_ && *p_ == ']') {
      ++p_;
      --depth_;
      return true;
    }
    for (;;) {
      ws();
      if (!value()) {
        return false;
      }
      ws();
      if (p_ >= end_) {
        return fail("unterminated array");
      }
      if (*p_ == ',') {
        ++p_;
        continue;
      }
      if (*p_ == ']') {
        ++p_;
        --depth_;
        return true;
      }
      return fail("expected ',' or ']' in an array");
    }
  }

  bool key(bool* had_escape) {
    if (p_ >= end_ || *p_ != '"') {
      return fail("expected a string key in an object");
    }
    const std::size_t saved = text_bytes_;  // keys are not text
    bool ok = string(had_escape);
    text_bytes_ = saved;
    if (!ok) {
      return false;
    }
    key_end_ = p_ - 1;  // the closing quote
    ws();
    if (p_ >= end_ || *p_ != ':') {
      return fail("expected ':' after a key");
    }
    ++p_;
    ws();
    return true;
  }

  // An object; with `out` (the root), each member is recorded as spans.
  bool object(json_scan* out = nullptr) {
    if (!enter()) {
      return false;
    }
    ++p_;
    ws();
    if (p_ < end_ && *p_ == '}') {
      ++p_;
      --depth_;
      return true;
    }
    std::vector<std::size_t> escaped;  // recorded members whose key had escapes
    for (;;) {
      ws();
      if (out == nullptr) {
        if (!key(nullptr) || !value()) {
          return false;
        }
      } else if (!member(*out, escaped)) {
        return false;
      }
      ws();
      if (p_ >= end_) {
        return fail("unterminated object");
      }
      if (*p_ == ',') {
        ++p_;
        continue;
      }
      if (*p_ == '}') {
        ++p_;
        --depth_;
        break;
      }
      return fail("expected ',' or '}' in an object");
    }
    if (out != nullptr && !escaped.empty()) {
      out->unescaped_keys.reserve(escaped.size());
      for (std::size_t i : escaped) {
        out->unescaped_keys.push_back(unescape(out->members[i].key));
      }
      for (std::size_t k = 0; k < escaped.size(); ++k) {
        out->members[escaped[k]].key = out->unescaped_keys[k];
      }
    }
    return true;
  }

  // One "key": value of the root object, recorded in `out`.
  bool member(json_scan& out, std::vector<std::size_t>& escaped) {
    json_member m;
    const byte* key_begin = p_;
    bool had_escape = false;
    if (!key(&had_escape)) {
      return false;
    }
    // The key's characters between the quotes (decoded later if escaped).
    const byte* key_end = key_end_;
    m.key = std::string_view(reinterpret_cast<const char*>(key_begin + 1),
                             static_cast<std::size_t>(key_end - key_begin - 1));
    const byte* value_begin = p_;
    if (p_ >= end_) {
      return fail("unexpected end of input");
    }
    m.kind = kind_at(*p_);
    text_bytes_ = 0;
    if (!value()) {
      return false;
    }
    m.text_bytes = text_bytes_;
    m.value = std::string_view(reinterpret_cast<const char*>(value_begin), static_cast<std::size_t>(p_ - value_begin));
    m.whole = std::string_view(reinterpret_cast<const char*>(key_begin), static_cast<std::size_t>(p_ - key_begin));
    if (had_escape) {
      escaped.push_back(out.members.size());
    }
    out.members.push_back(m);
    return true;
  }

 public:
  static void put_utf8(std::string& out, unsigned cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  // The raw characters of an already validated string -> their decoded value.
  static std::string unescape(std::string_view raw) {
    const std::size_t first = raw.find('\\');
    if (first == std::string_view::npos) {
      return std::string(raw);  // the usual case: nothing escaped
    }
    std::string out;
    out.reserve(raw.size());
    out.append(raw.substr(0, first));
    auto hex = [&](std::size_t at) {
      unsigned v = 0;
      for (std::size_t i = 0; i < 4; ++i) {
        v = v * 16 + static_cast<unsigned>(hex_value(static_cast<byte>(raw[at + i])));
      }
      return v;
    };
    for (std::size_t i = first; i < raw.size(); ++i) {
      if (raw[i] != '\\') {
        out += raw[i];
        continue;
      }
      const char e = raw[++i];
      switch (e) {
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          unsigned cp = hex(i + 1);
          i += 4;
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            unsigned lo = hex(i + 3);
            i += 6;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          put_utf8(out, cp);
          break;
        }
        default: out += e; break;  // " \ /
      }
    }
    return out;
  }

 private:
  const byte* begin_;
  const byte* p_;
  const byte* end_;
  std::size_t max_depth_;
  std::size_t depth_ = 0;
  std::size_t text_bytes_ = 0;
  const char* err_ = nullptr;
  const byte* err_at_ = nullptr;
  bool too_deep_ = false;
  const byte* key_end_ = nullptr;  // the closing quote of the last key read
};

}  // namespace

const json_member* json_scan::find(std::string_view key) const {
  for (auto it = members.rbegin(); it != members.rend(); ++it) {
    if (it->key == key) {
      return &*it;
    }
  }
  return nullptr;
}

json_scan scan_json(std::string_view text, std::size_t max_depth) {
  json_scan out;
  out.members.reserve(16);  // one allocation for a typical request
  scan_json(text, out, max_depth);
  return out;
}

bool scan_json(std::string_view text, json_scan& out, std::size_t max_depth) {
  out.ok = false;
  out.error_offset = 0;
  out.error = "";
  out.too_deep = false;
  out.root = json_kind::null;
  out.members.clear();
  out.unescaped_keys.clear();
  scanner s(text, max_depth);
  out.ok = s.document(&out);
  if (!out.ok) {
    out.error = s.error();
    out.error_offset = s.error_offset();
    out.too_deep = s.too_deep();
    out.members.clear();
    out.unescaped_keys.clear();
  }
  return out.ok;
}

bool json_valid(std::string_view text, std::size_t max_depth) {
  scanner s(text, max_depth);
  return s.document(nullptr);
}

std::string json_unescape(std::string_view inside_quotes) { return scanner::unescape(inside_quotes); }

void append_as_dumped(std::string& out, std::string_view lit) {
  const auto hex = [&](std::size_t at) {
    std::uint32_t v = 0;
    for (std::size_t k = at; k < at + 4; ++k) {
      v = v * 16 + static_cast<std::uint32_t>(hex_value(static_cast<byte>(lit[k])));
    }
    return v;
  };
  // Decoded characters gather here and are appended a run at a time (a text escaped
  // character by character is a run of escapes).
  char buf[256];
  std::size_t n = 0;
  std::size_t from = 0;  // lit[from, i) not written yet
  std::size_t i = lit.find('\\');
  while (i != std::string_view::npos && i + 1 < lit.size()) {
    const char e = lit[i + 1];
    if (e != 'u' && e != '/') {
      i = lit.find('\\', i + 2);  // \" \\ \b \f \n \r \t: dump() writes them as they are
      continue;
    }
    if (i > from) {
      out.append(buf, n);
      n = 0;
      out.append(lit.substr(from, i - from));
    }
    std::uint32_t cp = '/';
    std::size_t used = 2;
    if (e == 'u' && i + 6 <= lit.size()) {
      cp = hex(i + 2);
      used = 6;
      // Validated: a high surrogate is followed by its low one.
      if (cp >= 0xD800 && cp <= 0xDBFF && i + 12 <= lit.size()) {
        cp = 0x10000 + ((cp - 0xD800) << 10) + (hex(i + 8) - 0xDC00);
        used = 12;
      }
    }
    if (n > sizeof buf - 6) {
      out.append(buf, n);
      n = 0;
    }
    n += core::json_dump_codepoint(buf + n, cp);
    from = i + used;
    i = from + 1 < lit.size() && lit[from] == '\\' ? from : lit.find('\\', from);
  }
  out.append(buf, n);
  out.append(lit.substr(from));
}

nlohmann::json json_member_value(const json_member& m) {
  using nlohmann::json;
  const std::string_view v = m.value;
  switch (m.kind) {
    case json_kind::null: return nullptr;
    case json_kind::boolean: return v.front() == 't';
    case json_kind::string: {
      auto inside = v.substr(1, v.size() - 2);
      if (inside.find('\\') == std::string_view::npos) {
        return std::string(inside);
      }
      return scanner::unescape(inside);
    }
    case json_kind::number: {
      const char* b = v.data();
      const char* e = v.data() + v.size();
      if (v.find_first_of(".eE") == std::string_view::npos) {
        if (v.front() == '-') {
          std::int64_t i = 0;
          if (auto [p, ec] = std::from_chars(b, e, i); ec == std::errc() && p == e) {
            return i;
          }
        } else {
          std::uint64_t u = 0;
          if (auto [p, ec] = std::from_chars(b, e, u); ec == std::errc() && p == e) {
            return u;
          }
        }
      }
      return std::strtod(std::string(v).c_str(), nullptr);  // as nlohmann: strtod, C locale
    }
    default: return json::parse(v, nullptr, false);
  }
}

void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  core::json_escape_to(out, s);
  out += '"';
}

}  // namespace switchyard::providers
