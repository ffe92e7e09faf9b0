#include "switchyard/cache/key.hpp"

#include "switchyard/core/ids.hpp"
#include "switchyard/core/utf8.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace switchyard::cache {

using json = nlohmann::json;

bool excluded_from_key(std::string_view m) {
  // Attribution, transport, routing and the gateway's own controls: the same answer
  // whatever their value. `stream` / `stream_options` change only the framing (a hit is
  // replayed in either shape). `user` stays in the key, as in LiteLLM.
  static constexpr std::string_view excluded[] = {
      "metadata",         "litellm_metadata",      "stream",          "stream_options",
      "cache",            "caching",               "num_retries",     "fallbacks",
      "context_window_fallbacks", "content_policy_fallbacks", "disable_fallbacks",
      "timeout",          "request_timeout",       "stream_timeout",  "api_key",
      "api_base",         "base_url",              "api_version",     "extra_headers",
      "mock_testing_fallbacks", "mock_testing_rate_limit_error", "tags",
      "litellm_session_id", "litellm_trace_id",    "proxy_server_request", "model",
  };
  // Every member of every cacheable request is checked: only the names of its length are
  // compared (one to three of them), not all of them.
  constexpr std::size_t longest = 32;
  struct by_length {
    std::uint32_t bits[longest + 1] = {};  // bit i: excluded[i] has this length
    constexpr by_length() {
      for (std::size_t i = 0; i < std::size(excluded); ++i) {
        bits[excluded[i].size()] |= 1u << i;
      }
    }
  };
  static_assert(std::size(excluded) <= 32);
  static constexpr by_length table;
  if (m.size() > longest) {
    return false;
  }
  for (std::uint32_t b = table.bits[m.size()]; b != 0; b &= b - 1) {
    if (m == excluded[__builtin_ctz(b)]) {
      return true;
    }
  }
  return false;
}

json canonical_value(const json& v) {
  switch (v.type()) {
    case json::value_t::object: {
      json out = json::object();
      for (const auto& [k, x] : v.items()) {
        out[k] = canonical_value(x);
      }
      return out;
    }
    case json::value_t::array: {
      json out = json::array();
      for (const auto& x : v) {
        out.push_back(canonical_value(x));
      }
      return out;
    }
    case json::value_t::number_unsigned: {
      auto u = v.get<std::uint64_t>();
      if (u <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
        return json(static_cast<std::int64_t>(u));
      }
      return json(static_cast<double>(u));
    }
    case json::value_t::number_float: {
      double d = v.get<double>();
      // Integral values (1.0, 1e2, -0.0) are written as integers: one spelling per number.
      if (std::isfinite(d) && std::trunc(d) == d && std::fabs(d) < 9.007199254740992e15) {
        return json(static_cast<std::int64_t>(d));
      }
      return v;
    }
    default:
      return v;
  }
}

std::string canonical_request(std::string_view call, std::string_view model_group, const json& body) {
  json params = json::object();
  if (body.is_object()) {
    for (const auto& [k, v] : body.items()) {
      if (!excluded_from_key(k)) {
        params[k] = canonical_value(v);
      }
    }
  }
  json c = json::object();
  c["call"] = std::string(call);
  c["model"] = std::string(model_group);
  c["params"] = std::move(params);
  return c.dump(-1, ' ', false, json::error_handler_t::replace);
}

namespace {

// Writes raw JSON text in the form nlohmann's dump() gives the parsed and canonicalised
// value: whitespace dropped, object members sorted by key; strings, numbers and literals
// are copied only when dump() would write the same bytes. Anything else (a value it
// cannot vouch for) makes it fail, and the caller uses the DOM path.
struct canonical_writer {
  std::string_view t;
  std::string& out;
  std::size_t i = 0;

  bool at_end() const { return i >= t.size(); }

  void skip_ws() {
    while (i < t.size() && (t[i] == ' ' || t[i] == '\n' || t[i] == '\r' || t[i] == '\t')) {
      ++i;
    }
  }

  // The four hex digits of a \u escape at t[at] (the backslash), or -1.
  long hex4(std::size_t at) const {
    if (at + 6 > t.size() || t[at + 1] != 'u') {
      return -1;
    }
    long v = 0;
    for (std::size_t k = at + 2; k < at + 6; ++k) {
      const char c = t[k];
      const int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
      if (d < 0) {
        return -1;
      }
      v = v * 16 + d;
    }
    return v;
  }

  // The escapes from t[i] (`\/` or `\u`, which dump() writes decoded) and every one
  // right after it: what precedes them since `from` is written, then each decoded
  // character as dump() writes it; i and `from` move past them. A client that escapes
  // every non-ASCII character sends text in most languages as runs of them. False for a
  // lone surrogate or bad hex (the parser refuses them). Kept out of string()'s loop,
  // which ASCII text runs through.
  [[gnu::noinline]] bool write_decoded(std::size_t& from) {
    out.append(t.substr(from, i - from));
    char buf[192];
    std::size_t n = 0;
    do {
      long cp = '/';
      std::size_t used = 2;
      if (t[i + 1] == 'u') {
        cp = hex4(i);
        used = 6;
        if (cp >= 0xDC00 && cp <= 0xDFFF) {
          return false;
        }
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          const long low = i + 6 < t.size() && t[i + 6] == '\\' ? hex4(i + 6) : -1;
          if (low < 0xDC00 || low > 0xDFFF) {
            return false;
          }
          cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          used = 12;
        }
        if (cp < 0) {
          return false;
        }
      }
      if (n > sizeof buf - 6) {
        out.append(buf, n);
        n = 0;
      }
      n += core::json_dump_codepoint(buf + n, static_cast<std::uint32_t>(cp));
      i += used;
    } while (i + 1 < t.size() && t[i] == '\\' && (t[i + 1] == 'u' || t[i + 1] == '/'));
    out.append(buf, n);
    from = i;
    return true;
  }

  // A string at t[i] (the opening quote), copied to `out`; `raw` gets its contents as
  // received. Valid UTF-8 is copied as it is (dump() writes it so); `\/` and `\u`
  // escapes, which dump() writes decoded, are written decoded: requests in any language,
  // and from clients that escape every non-ASCII character, keep this path (the DOM path
  // costs some 25 times as much). Invalid UTF-8 or a lone surrogate (which the parser
  // refuses) is left to the DOM path.
  bool string(std::string_view* raw) {
    if (at_end() || t[i] != '"') {
      return false;
    }
    const std::size_t start = ++i;
    std::size_t from = start - 1;  // t[from, i) is not written yet (the opening quote included)
#if defined(__SSE2__)
    const __m128i quote = _mm_set1_epi8('"');
    const __m128i backslash = _mm_set1_epi8('\\');
    const __m128i space = _mm_set1_epi8(0x20);
#endif
    while (i < t.size()) {
#if defined(__SSE2__)
      // Plain text 16 bytes at a time (a message's content is most of a request): stop at
      // the first quote, backslash, control byte or non-ASCII byte, looked at below.
      while (i + 16 <= t.size()) {
        const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(t.data() + i));
        // Signed: bytes >= 0x80 are negative, so "less than 0x20" catches them too.
        const __m128i stop = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)),
                                          _mm_cmplt_epi8(v, space));
        const int mask = _mm_movemask_epi8(stop);
        if (mask != 0) {
          i += static_cast<std::size_t>(__builtin_ctz(static_cast<unsigned>(mask)));
          break;
        }
        i += 16;
      }
      if (i >= t.size()) {
        break;
      }
#endif
      const auto c = static_cast<unsigned char>(t[i]);
      if (c == '"') {
        if (raw != nullptr) {
          *raw = t.substr(start, i - start);
        }
        ++i;
        out.append(t.substr(from, i - from));
        return true;
      }
      if (c < 0x20) {
        return false;  // control bytes are invalid in JSON text
      }
      if (c >= 0x80) {
        const std::size_t len =
            core::utf8_sequence_length(reinterpret_cast<const unsigned char*>(t.data()) + i, t.size() - i);
        if (len == 0) {
          return false;
        }
        i += len;
        continue;
      }
      if (c == '\\') {
        if (i + 1 >= t.size()) {
          return false;
        }
        switch (t[i + 1]) {
          case '"': case '\\': case 'b': case 'f': case 'n': case 'r': case 't':
            i += 2;  // written by dump() as received
            continue;
          case '/':
          case 'u':
            if (!write_decoded(from)) {
              return false;
            }
            continue;
          default:
            return false;
        }
      }
      ++i;
    }
    return false;
  }

  bool number() {
    const std::size_t start = i;
    if (t[i] == '-') {
      ++i;
    }
    const std::size_t int_start = i;
    while (i < t.size() && t[i] >= '0' && t[i] <= '9') {
      ++i;
    }
    const std::size_t int_len = i - int_start;
    if (int_len == 0 || (int_len > 1 && t[int_start] == '0')) {
      return false;
    }
    if (i < t.size() && (t[i] == 'e' || t[i] == 'E')) {
      return false;
    }
    if (i >= t.size() || t[i] != '.') {
      // An integer: "-0" becomes 0; more than 18 digits may leave int64.
      if (int_len > 18 || (t[start] == '-' && t[int_start] == '0')) {
        return false;
      }
      out.append(t.substr(start, i - start));
      return true;
    }
    ++i;
    const std::size_t frac_start = i;
    while (i < t.size() && t[i] >= '0' && t[i] <= '9') {
      ++i;
    }
    if (i == frac_start || (i < t.size() && (t[i] == 'e' || t[i] == 'E'))) {
      return false;
    }
    const std::string_view text = t.substr(start, i - start);
    if (text.size() > 17) {
      return false;
    }
    double d = 0;
    auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), d);
    if (ec != std::errc{} || p != text.data() + text.size() || !std::isfinite(d) || std::trunc(d) == d) {
      return false;  // integral values are written as integers
    }
    // Accepted only when it is the shortest spelling (the one dump() writes).
    char buf[32];
    auto [q, ec2] = std::to_chars(buf, buf + sizeof buf, d);
    if (ec2 != std::errc{} || std::string_view(buf, static_cast<std::size_t>(q - buf)) != text) {
      return false;
    }
    out.append(text);
    return true;
  }

  bool literal(std::string_view word) {
    if (t.substr(i, word.size()) != word) {
      return false;
    }
    i += word.size();
    out.append(word);
    return true;
  }

  struct member_span {
    std::string_view key;
    std::size_t from;  // its `"key":value` in `out`
    std::size_t to;
  };

  // Members of the objects being written, innermost last: an object's members are
  // [its base, end), and a nested object's are pushed and popped before its parent's next
  // member, so one vector serves every depth. Kept from request to request with `scratch`
  // (the loop's thread), so sorting an object allocates nothing.
  static std::vector<member_span>& members_stack() {
    thread_local std::vector<member_span> v;
    return v;
  }
  static std::string& scratch() {
    thread_local std::string s;
    return s;
  }

  bool object(int depth) {
    ++i;  // '{'
    const std::size_t open = out.size();
    out += '{';
    skip_ws();
    if (!at_end() && t[i] == '}') {
      ++i;
      out += '}';
      return true;
    }
    auto& ms = members_stack();
    const std::size_t base = ms.size();
    // Leaves the stack as it found it whichever way this returns.
    struct pop_members {
      std::vector<member_span>& ms;
      std::size_t base;
      ~pop_members() { ms.resize(base); }
    } pop{ms, base};
    bool sorted = true;
    while (true) {
      skip_ws();
      const std::size_t from = out.size();
      std::string_view k;
      if (!string(&k) || k.find('\\') != std::string_view::npos) {
        return false;  // escaped keys: left to the DOM path
      }
      if (ms.size() > base && !(ms.back().key < k)) {
        sorted = false;
      }
      skip_ws();
      if (at_end() || t[i] != ':') {
        return false;
      }
      ++i;
      out += ':';
      if (!value(depth + 1)) {
        return false;
      }
      ms.push_back({k, from, out.size()});
      skip_ws();
      if (at_end()) {
        return false;
      }
      if (t[i] == '}') {
        ++i;
        break;
      }
      if (t[i] != ',') {
        return false;
      }
      ++i;
      out += ',';
    }
    if (!sorted) {
      const auto first = ms.begin() + static_cast<std::ptrdiff_t>(base);
      std::sort(first, ms.end(), [](const member_span& a, const member_span& b) { return a.key < b.key; });
      for (auto it = first + 1; it < ms.end(); ++it) {
        if ((it - 1)->key == it->key) {
          return false;  // a repeated key: the parsed object keeps the last one
        }
      }
      auto& sorted_text = scratch();
      sorted_text.clear();
      sorted_text += '{';
      for (auto it = first; it < ms.end(); ++it) {
        if (it != first) {
          sorted_text += ',';
        }
        sorted_text.append(out, it->from, it->to - it->from);
      }
      out.resize(open);
      out += sorted_text;
      if (sorted_text.capacity() > (256u << 10)) {
        std::string().swap(sorted_text);  // a large body once: not kept for every later one
      }
    }
    out += '}';
    return true;
  }

  bool array(int depth) {
    ++i;  // '['
    out += '[';
    skip_ws();
    if (!at_end() && t[i] == ']') {
      ++i;
      out += ']';
      return true;
    }
    while (true) {
      if (!value(depth + 1)) {
        return false;
      }
      skip_ws();
      if (at_end()) {
        return false;
      }
      if (t[i] == ']') {
        ++i;
        out += ']';
        return true;
      }
      if (t[i] != ',') {
        return false;
      }
      ++i;
      out += ',';
    }
  }

  bool value(int depth) {
    skip_ws();
    if (at_end() || depth > 512) {
      return false;
    }
    switch (t[i]) {
      case '"':
        return string(nullptr);
      case '{':
        return object(depth);
      case '[':
        return array(depth);
      case 't':
        return literal("true");
      case 'f':
        return literal("false");
      case 'n':
        return literal("null");
      default:
        return number();
    }
  }
};

// Appends the canonical text of `raw` to `out`; false when it cannot (then `out` is junk).
bool append_canonical(std::string& out, std::string_view raw) {
  canonical_writer w{raw, out};
  if (!w.value(0)) {
    return false;
  }
  w.skip_ws();
  return w.at_end();
}

bool plain_key(std::string_view k) {
  for (char ch : k) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c >= 0x80 || c == '"' || c == '\\') {
      return false;
    }
  }
  return true;
}

}  // namespace

namespace {

// A string as dump() writes it: printable ASCII without quotes or backslashes is copied
// between quotes (model group names, call names); anything else goes through dump().
void append_json_string(std::string& out, std::string_view s) {
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c > 0x7e || c == '"' || c == '\\') {
      out += json(std::string(s)).dump(-1, ' ', false, json::error_handler_t::replace);
      return;
    }
  }
  out += '"';
  out.append(s);
  out += '"';
}

}  // namespace

bool canonical_request_raw(std::string& out, std::string_view call, std::string_view model_group,
                           const std::vector<std::pair<std::string_view, std::string_view>>& members) {
  // Reused from call to call (one per thread): no allocation once it has grown.
  thread_local std::vector<const std::pair<std::string_view, std::string_view>*> kept;
  kept.clear();
  std::size_t bytes = 64 + call.size() + model_group.size();
  for (const auto& m : members) {
    if (excluded_from_key(m.first)) {
      continue;
    }
    if (!plain_key(m.first)) {
      return false;
    }
    kept.push_back(&m);
    bytes += m.first.size() + m.second.size() + 4;
  }
  std::sort(kept.begin(), kept.end(), [](const auto* a, const auto* b) { return a->first < b->first; });
  for (std::size_t i = 1; i < kept.size(); ++i) {
    if (kept[i - 1]->first == kept[i]->first) {
      return false;  // a repeated key: the parsed object keeps the last one
    }
  }
  out.clear();
  out.reserve(bytes);
  out += "{\"call\":";
  append_json_string(out, call);
  out += ",\"model\":";
  append_json_string(out, model_group);
  out += ",\"params\":{";
  bool first = true;
  for (const auto* m : kept) {
    if (!first) {
      out += ',';
    }
    first = false;
    out += '"';
    out.append(m->first);
    out += "\":";
    if (!append_canonical(out, m->second)) {
      return false;
    }
  }
  out += "}}";
  return true;
}

std::string key_of(std::string_view ns, std::string_view canonical) {
  return key_from_hex(ns, core::sha256_hex(canonical));
}

std::string key_from_hex(std::string_view ns, std::string hex) {
  if (ns.empty()) {
    return hex;
  }
  std::string k;
  k.reserve(ns.size() + 1 + hex.size());
  k.append(ns).append(":").append(hex);
  return k;
}

}  // namespace switchyard::cache
