// http/simple_head.hpp: the plain-head field scanner. Regression inputs found by
// http_head_fuzz live here.
#include "switchyard/http/simple_head.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace {

namespace simple = switchyard::http::simple;

// Runs scan_fields over a heap copy of exactly `text` (so ASan sees a read past its end).
bool scan(const std::string& text, std::vector<std::pair<std::string, std::string>>& out) {
  auto buf = std::make_unique<char[]>(text.size());
  std::copy(text.begin(), text.end(), buf.get());
  return simple::scan_fields(buf.get(), buf.get() + text.size(), [&](std::string_view n, std::string_view v) {
    simple::append_lowered(out, n, v);
    return true;
  });
}

// Header names are lower-cased 8 bytes a step: every byte value, at every position of
// names of every length up to 24, as the bytewise rule gives it; sizes grow and shrink.
TEST(simple_head, overwrite_lowered_matches_the_bytewise_rule) {
  std::string out = "previous";
  for (std::size_t len = 0; len <= 24; ++len) {
    for (int b = 0; b < 256; ++b) {
      std::string in(len, 'Q');
      for (std::size_t i = 0; i < len; ++i) {
        in[i] = static_cast<char>((b + static_cast<int>(i) * 37) & 0xFF);
      }
      std::string want = in;
      for (auto& ch : want) {
        if (ch >= 'A' && ch <= 'Z') {
          ch = static_cast<char>(ch - 'A' + 'a');
        }
      }
      simple::overwrite_lowered(out, in);
      ASSERT_EQ(out, want) << "len " << len << " byte " << b;
    }
  }
  std::string v = "abc";
  simple::overwrite(v, "xyz");
  EXPECT_EQ(v, "xyz");
  simple::overwrite(v, "longer value");
  EXPECT_EQ(v, "longer value");
  simple::overwrite(v, "");
  EXPECT_EQ(v, "");
}

TEST(simple_head, plain_fields) {
  std::vector<std::pair<std::string, std::string>> f;
  ASSERT_TRUE(scan("Host: a\r\nX-Tab:\tv w \t\r\n", f));
  ASSERT_EQ(f.size(), 2u);
  EXPECT_EQ(f[0], (std::pair<std::string, std::string>{"host", "a"}));
  EXPECT_EQ(f[1], (std::pair<std::string, std::string>{"x-tab", "v w"}));
}

// Found by http_head_fuzz: a field whose CR is the last byte in range was read one
// byte past the end while looking for its LF.
TEST(simple_head, cr_as_the_last_byte_is_not_a_line_end) {
  std::vector<std::pair<std::string, std::string>> f;
  EXPECT_FALSE(scan("Host: a\r", f));
  EXPECT_FALSE(scan("Host: a\r\nX: b\r", f));
}

TEST(simple_head, refuses_what_it_leaves_to_beast) {
  std::vector<std::pair<std::string, std::string>> f;
  EXPECT_FALSE(scan("Host a\r\n", f));        // no colon
  EXPECT_FALSE(scan("Host: a\nX: b\r\n", f));  // bare LF
  EXPECT_FALSE(scan("Host: a\x01\r\n", f));   // control character
}

}  // namespace
