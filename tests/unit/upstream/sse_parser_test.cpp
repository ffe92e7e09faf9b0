#include "switchyard/upstream/sse_parser.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

namespace {

using switchyard::upstream::sse_parser;
using events = std::vector<sse_parser::event>;

events parse_whole(std::string_view in) {
  sse_parser p;
  events out;
  p.feed(in, out);
  return out;
}

events parse_bytewise(std::string_view in) {
  sse_parser p;
  events out;
  for (char c : in) {
    p.feed(std::string_view(&c, 1), out);
  }
  return out;
}

void expect_events(const events& got, const events& want) {
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].event, want[i].event) << "event " << i;
    EXPECT_EQ(got[i].data, want[i].data) << "event " << i;
  }
}

TEST(sse_parser, openai_stream) {
  std::string in =
      "data: {\"id\":1}\n\n"
      "data: {\"id\":2}\n\n"
      "data: [DONE]\n\n";
  events want{{"", "{\"id\":1}"}, {"", "{\"id\":2}"}, {"", "[DONE]"}};
  expect_events(parse_whole(in), want);
  expect_events(parse_bytewise(in), want);
}

TEST(sse_parser, event_names_and_multiline_data) {
  std::string in =
      "event: message_start\n"
      "data: line one\n"
      "data: line two\n"
      "data:no-space\n"
      "\n"
      "event: ping\n"
      "data: {}\n"
      "\n";
  events want{{"message_start", "line one\nline two\nno-space"}, {"ping", "{}"}};
  expect_events(parse_whole(in), want);
  expect_events(parse_bytewise(in), want);
}

TEST(sse_parser, crlf_and_cr_line_endings) {
  std::string crlf = "event: a\r\ndata: x\r\ndata: y\r\n\r\ndata: z\r\n\r\n";
  std::string cr = "event: a\rdata: x\rdata: y\r\rdata: z\r\r";
  std::string mixed = "event: a\r\ndata: x\rdata: y\n\r\ndata: z\r\n\n";
  events want{{"a", "x\ny"}, {"", "z"}};
  for (const auto& in : {crlf, cr, mixed}) {
    expect_events(parse_whole(in), want);
    expect_events(parse_bytewise(in), want);
  }
}

TEST(sse_parser, crlf_split_across_feeds_is_one_line_end) {
  sse_parser p;
  events out;
  p.feed("data: a\r", out);
  p.feed("\n", out);  // must not count as a second (blank) line
  EXPECT_TRUE(out.empty());
  p.feed("\r", out);
  p.feed("\n", out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].data, "a");
}

TEST(sse_parser, comments_unknown_fields_and_empty_events_are_ignored) {
  std::string in =
      ": keep-alive\n"
      "\n"
      ":another comment\n"
      "id: 7\n"
      "retry: 1000\n"
      "foo: bar\n"
      "data: payload\n"
      "\n"
      "event: only-a-name\n"
      "\n"
      "data: after\n"
      "\n";
  // The event with a name but no data is not dispatched, and its name does not leak.
  events want{{"", "payload"}, {"", "after"}};
  expect_events(parse_whole(in), want);
  expect_events(parse_bytewise(in), want);
}

TEST(sse_parser, empty_data_line_is_an_event_with_empty_data) {
  expect_events(parse_whole("data\n\ndata:\n\n"), events{{"", ""}, {"", ""}});
  expect_events(parse_whole("data\ndata\n\n"), events{{"", "\n"}});
}

TEST(sse_parser, value_keeps_further_spaces_and_colons) {
  expect_events(parse_whole("data:  two spaces: yes\n\n"), events{{"", " two spaces: yes"}});
}

TEST(sse_parser, leading_bom_is_skipped) {
  expect_events(parse_bytewise("\xEF\xBB\xBF" "data: x\n\n"), events{{"", "x"}});
}

TEST(sse_parser, incomplete_event_is_pending_until_blank_line) {
  sse_parser p;
  events out;
  p.feed("data: partial", out);
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(p.pending(), 13u);
  p.feed("\n", out);
  EXPECT_TRUE(out.empty());
  p.feed("\n", out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].data, "partial");
  EXPECT_EQ(p.pending(), 0u);
}

TEST(sse_parser, arbitrary_splits_agree) {
  std::string in =
      "event: e1\r\ndata: {\"a\":1}\r\n\r\n: c\n\ndata: x\rdata: y\r\r"
      "data: last\n\n";
  auto want = parse_whole(in);
  ASSERT_EQ(want.size(), 3u);
  for (std::size_t step = 1; step <= in.size(); ++step) {
    sse_parser p;
    events out;
    for (std::size_t i = 0; i < in.size(); i += step) {
      p.feed(std::string_view(in).substr(i, step), out);
    }
    expect_events(out, want);
  }
}

TEST(sse_parser, large_inputs_are_linear) {
  // 4 MB data line fed 1 byte at a time, then 100k small events fed 7 bytes at a
  // time. A quadratic parser takes minutes here; a linear one well under a second.
  auto start = std::chrono::steady_clock::now();
  sse_parser p;
  events out;
  p.feed("data: ", out);
  std::string big(4u << 20, 'x');
  for (char c : big) {
    p.feed(std::string_view(&c, 1), out);
  }
  p.feed("\n\n", out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].data.size(), big.size());

  std::string many;
  for (int i = 0; i < 100'000; ++i) {
    many += "data: {\"i\":" + std::to_string(i) + "}\n\n";
  }
  out.clear();
  for (std::size_t i = 0; i < many.size(); i += 7) {
    p.feed(std::string_view(many).substr(i, 7), out);
  }
  ASSERT_EQ(out.size(), 100'000u);
  EXPECT_EQ(out.back().data, "{\"i\":99999}");
  EXPECT_EQ(p.pending(), 0u);
  auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_LT(elapsed, std::chrono::seconds(10));
}

}  // namespace
