// core::json_escape_to writes the inside of a JSON string for the JSON log lines and for
// provider bodies: always valid UTF-8, whatever bytes a client or a provider sent.
#include "switchyard/core/log.hpp"
#include "switchyard/core/utf8.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <cstdio>

namespace {

std::string escaped(std::string_view s) {
  std::string out;
  switchyard::core::json_escape_to(out, s);
  return out;
}

TEST(json_escape, escapes_what_json_needs) {
  EXPECT_EQ(escaped("plain text"), "plain text");
  EXPECT_EQ(escaped("a\"b\\c"), "a\\\"b\\\\c");
  EXPECT_EQ(escaped("l1\nl2\r\t"), "l1\\nl2\\r\\t");
  EXPECT_EQ(escaped(std::string_view("\x01\x1f\0", 3)), "\\u0001\\u001f\\u0000");
}

TEST(json_escape, keeps_valid_utf8) {
  const std::string s = "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80";  // é € 😀
  EXPECT_EQ(escaped(s), s);
}

TEST(json_escape, replaces_invalid_utf8_with_u_fffd) {
  const std::string fffd = "\xEF\xBF\xBD";
  EXPECT_EQ(escaped("a\xFF" "b"), "a" + fffd + "b");           // never a UTF-8 byte
  EXPECT_EQ(escaped("\xC3"), fffd);                            // cut sequence at the end
  EXPECT_EQ(escaped("\xC0\xAF"), fffd + fffd);                 // overlong
  EXPECT_EQ(escaped("\xED\xA0\x80"), fffd + fffd + fffd);      // a surrogate
  EXPECT_EQ(escaped("\xF4\x90\x80\x80"), fffd + fffd + fffd + fffd);  // above U+10FFFF
}

TEST(json_escape, any_bytes_make_a_json_string_that_parses) {
  std::string all;
  for (int c = 0; c < 256; ++c) all += static_cast<char>(c);
  const std::string doc = "\"" + escaped(all) + "\"";
  const auto j = nlohmann::json::parse(doc, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << doc;
  EXPECT_EQ(j.get<std::string>().substr(0, 32), std::string(all.data(), 32));
}

}  // namespace

namespace {

// Plain runs are found 8 bytes at a time: a byte that needs escaping (or is not ASCII) must
// be seen wherever it sits in a word, and in the tail shorter than a word.
TEST(json_escape, a_special_byte_is_found_at_every_position_of_a_word) {
  const std::string fffd = "\xEF\xBF\xBD";
  const std::pair<std::string, std::string> specials[] = {
      {"\"", "\\\""},   {"\\", "\\\\"},      {"\n", "\\n"},    {std::string(1, '\x1f'), "\\u001f"},
      {"\x7f", "\x7f"}, {"\xC3\xA9", "\xC3\xA9"}, {"\xFF", fffd}, {std::string(1, '\0'), "\\u0000"},
      {" ", " "},       {"~", "~"}};
  for (std::size_t len = 0; len <= 33; ++len) {
    for (std::size_t at = 0; at <= len; ++at) {
      for (const auto& [in, out] : specials) {
        const std::string before(at, 'a'), after(len - at, 'z');
        EXPECT_EQ(escaped(before + in + after), before + out + after) << "len " << len << " at " << at;
      }
    }
  }
}

}  // namespace

// Access logs never hold a usable key: a key in a path keeps only its last four characters.
TEST(redacted_path, keys_in_paths_are_cut) {
  std::string scratch;
  using switchyard::core::redacted_path;
  EXPECT_EQ(redacted_path("/v1/chat/completions", scratch), "/v1/chat/completions");
  EXPECT_EQ(redacted_path("/key/sk-0123456789abcdef/regenerate", scratch), "/key/sk-...cdef/regenerate");
  EXPECT_EQ(redacted_path("/a/sk-aaaaaaaa1111/b/sk-bbbbbbbb2222", scratch), "/a/sk-...1111/b/sk-...2222");
  EXPECT_EQ(redacted_path("/key/task-sk-1234567890", scratch), "/key/task-sk-1234567890");  // inside a word
  EXPECT_EQ(redacted_path("/key/sk-1", scratch), "/key/sk-1");                              // too short to be a key
  EXPECT_EQ(redacted_path("sk-abcdefgh", scratch), "sk-...efgh");
}

// plain_prefix scans 16-byte blocks (the last one overlapping), strings shorter than a
// block as two overlapping words: at every length and every position of the first byte
// that needs escaping, it must agree with a byte-by-byte scan.
TEST(json_escape, plain_prefix_agrees_with_a_byte_scan_at_every_position) {
  const auto by_bytes = [](std::string_view s) {
    std::size_t i = 0;
    while (i < s.size() && switchyard::core::plain_ascii[static_cast<unsigned char>(s[i])]) ++i;
    return i;
  };
  EXPECT_EQ(switchyard::core::plain_prefix(std::string_view()), 0u);
  for (const char special : {'"', '\\', '\x00', '\x1f', '\x80', '\xff'}) {
    for (std::size_t len = 1; len <= 70; ++len) {
      for (std::size_t at = 0; at <= len; ++at) {  // at == len: nothing to escape
        std::string s(len, 'x');
        if (at < len) s[at] = special;
        if (at + 3 < len) s[at + 3] = special;  // a second one after it changes nothing
        ASSERT_EQ(switchyard::core::plain_prefix(s), by_bytes(s)) << "length " << len << ", special at " << at;
        const std::string dumped = nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        ASSERT_EQ(escaped(s), dumped.substr(1, dumped.size() - 2)) << "length " << len << ", special at " << at;
      }
    }
  }
}

// The access line's duration_ms: the same text as "%.3f" for any duration, written
// through integer microseconds.
TEST(access_line, millis_are_written_as_printf_writes_them) {
  const auto millis = [](double ms) {
    std::string out;
    switchyard::core::append_millis(out, ms);
    return out;
  };
  const auto printf3 = [](double ms) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.3f", ms);
    return std::string(buf);
  };
  EXPECT_EQ(millis(0), "0.000");
  EXPECT_EQ(millis(2.058), "2.058");
  EXPECT_EQ(millis(0.0004), "0.000");
  EXPECT_EQ(millis(0.0006), "0.001");
  EXPECT_EQ(millis(999.9996), "1000.000");
  EXPECT_EQ(millis(123456.789), "123456.789");
  // Values away from a tie (ties are rounded either way by the two): every microsecond
  // count up to 2 s, plus a quarter microsecond either side, and larger ones.
  for (std::uint64_t us = 0; us < 2'000'000; us += 13) {
    for (double off : {-0.25, 0.0, 0.25}) {
      const double ms = (static_cast<double>(us) + off) / 1000.0;
      if (ms < 0) {
        continue;
      }
      ASSERT_EQ(millis(ms), printf3(ms)) << ms;
    }
  }
  for (double ms : {86'400'000.123, 1e9 + 0.5004, 3.6e6}) {
    EXPECT_EQ(millis(ms), printf3(ms)) << ms;
  }
  // Not a duration: still what printf writes.
  EXPECT_EQ(millis(-1.5), printf3(-1.5));
  EXPECT_EQ(millis(1e13), printf3(1e13));
}
