#include "switchyard/cache/key.hpp"

#include <gtest/gtest.h>

#include <random>

namespace switchyard::cache {
namespace {

using json = nlohmann::json;

// canonical_request_raw() as an optional, through one buffer kept from call to call as
// the cache stage keeps it: a call after a failed one finds the failed one's junk there.
std::optional<std::string> canonical_request_raw(
    std::string_view call, std::string_view group,
    const std::vector<std::pair<std::string_view, std::string_view>>& members) {
  static std::string buffer;
  if (!cache::canonical_request_raw(buffer, call, group, members)) {
    return std::nullopt;
  }
  return buffer;
}

std::string key(const char* body, const char* group = "gpt", const char* ns = "") {
  return key_of(ns, canonical_request("chat", group, json::parse(body)));
}

TEST(CacheKey, MemberOrderAndNumberSpellingDoNotMatter) {
  auto a = key(R"({"model":"x","messages":[{"role":"user","content":"hi"}],"temperature":1,"max_tokens":10})");
  auto b = key(R"({"max_tokens":1e1,"temperature":1.0,"messages":[{"content":"hi","role":"user"}],"model":"x"})");
  EXPECT_EQ(a, b);
  EXPECT_EQ(a.size(), 64u);  // sha256 hex without a namespace
}

TEST(CacheKey, StreamMetadataAndTransportFieldsAreLeftOut) {
  auto a = key(R"({"messages":[],"temperature":0})");
  auto b = key(R"({"messages":[],"temperature":0,"stream":true,"stream_options":{"include_usage":true},
                   "metadata":{"tags":["a"]},"cache":{"ttl":5},"num_retries":3,"timeout":9,"fallbacks":["y"]})");
  EXPECT_EQ(a, b);
}

TEST(CacheKey, AnswerChangingParamsChangeTheKey) {
  auto base = key(R"({"messages":[{"role":"user","content":"hi"}],"temperature":0})");
  EXPECT_NE(base, key(R"({"messages":[{"role":"user","content":"hi"}],"temperature":0.7})"));
  EXPECT_NE(base, key(R"({"messages":[{"role":"user","content":"hi!"}],"temperature":0})"));
  EXPECT_NE(base, key(R"({"messages":[{"role":"user","content":"hi"}],"temperature":0,"n":2})"));
  EXPECT_NE(base, key(R"({"messages":[{"role":"user","content":"hi"}],"temperature":0,"seed":1})"));
  EXPECT_NE(base, key(R"({"messages":[{"role":"user","content":"hi"}],"temperature":0,"tools":[]})"));
  EXPECT_NE(base, key(R"({"messages":[{"role":"user","content":"hi"}],"temperature":0,"user":"u1"})"));
  // The model group, not the name sent, and the call type.
  EXPECT_NE(base, key(R"({"messages":[{"role":"user","content":"hi"}],"temperature":0})", "other"));
  EXPECT_NE(key_of("", canonical_request("completion", "gpt", json::parse(R"({"prompt":"a"})"))),
            key_of("", canonical_request("embedding", "gpt", json::parse(R"({"prompt":"a"})"))));
}

TEST(CacheKey, NamespacePrefixesTheKey) {
  auto bare = key(R"({"messages":[]})");
  auto spaced = key(R"({"messages":[]})", "gpt", "team-a");
  EXPECT_EQ(spaced, "team-a:" + bare);
}

TEST(CacheKey, CanonicalNumbers) {
  EXPECT_EQ(canonical_value(json::parse("1.0")).dump(), "1");
  EXPECT_EQ(canonical_value(json::parse("-0.0")).dump(), "0");
  EXPECT_EQ(canonical_value(json::parse("100e-2")).dump(), "1");
  EXPECT_EQ(canonical_value(json::parse("0.25")).dump(), "0.25");
  EXPECT_EQ(canonical_value(json::parse("18446744073709551615")).dump(), canonical_value(json::parse("1.8446744073709552e19")).dump());
  EXPECT_EQ(canonical_value(json::parse(R"({"b":[2.0,{"d":1,"c":0.5}],"a":null})")).dump(),
            R"({"a":null,"b":[2,{"c":0.5,"d":1}]})");
}

using members = std::vector<std::pair<std::string_view, std::string_view>>;

// The body as the DOM path sees it: the members in order, parsed (the last duplicate wins).
json dom_of(const members& ms) {
  json o = json::object();
  for (const auto& [k, v] : ms) {
    o[std::string(k)] = json::parse(v);
  }
  return o;
}

TEST(CacheKey, RawMembersGiveTheDomPathsTextWhenCanonical) {
  const members cases[] = {
      {{"model", R"("x")"}, {"messages", R"([{"content":"hi \"there\"\n","role":"user"}])"}, {"temperature", "0.7"}},
      {{"temperature", "0"}, {"max_tokens", "100"}, {"messages", "[]"}, {"stream", "true"}, {"seed", "-12"}},
      {{"messages", R"([{"content":[{"text":"a","type":"text"}],"role":"user"}])"}, {"top_p", "0.125"},
       {"tools", R"([{"function":{"name":"f","parameters":{"properties":{},"type":"object"}},"type":"function"}])"},
       {"stop", "null"}, {"logprobs", "false"}, {"metadata", R"({"z":1.0, "a" : 2})"}},
      {{"input", R"(["a","b"])"}, {"user", R"("u")"}, {"encoding_format", R"("float")"}, {"x", "{}"}},
      // Whitespace and unsorted members (as most SDKs send them) are canonicalised.
      {{"messages", R"( [ {"role" : "user", "content":"hi"} , {"role":"assistant","content":null,
                        "tool_calls":[{"type":"function","id":"c1","function":{"name":"f","arguments":"{}"}}]} ] )"},
       {"response_format", R"({"type":"json_schema","json_schema":{"strict":true,"name":"s","schema":{"type":"object"}}})"},
       {"temperature", " 0.5 "}},
  };
  for (const auto& ms : cases) {
    auto raw = canonical_request_raw("chat", "gpt", ms);
    ASSERT_TRUE(raw.has_value()) << ms.front().first << ms.front().second;
    EXPECT_EQ(*raw, canonical_request("chat", "gpt", dom_of(ms)));
  }
  // Model group names are written as dump() writes them, whatever their characters.
  for (const std::string group : {"gpt-4o", "a \"quoted\" \\ name", "tab\there", "caf\xc3\xa9 \xe2\x82\xac", "bad \xff utf-8", ""}) {
    auto raw = canonical_request_raw("embedding-item", group, cases[1]);
    ASSERT_TRUE(raw.has_value()) << group;
    EXPECT_EQ(*raw, canonical_request("embedding-item", group, dom_of(cases[1]))) << group;
  }
}

TEST(CacheKey, LongStringsAreReadInBlocksWithTheSameResult) {
  // Strings are stepped over 16 bytes at a time: escapes, the closing quote and the bytes
  // that send a body to the DOM path at every offset of a block.
  const std::string text = "The quick brown fox jumps over the lazy dog, again and again.";
  for (std::size_t at = 0; at <= 40; ++at) {
    for (const char* insert : {"", "\\n", "\\\"", "\\t\\\\", "\\u00e9", "\\/", "caf\xc3\xa9", "\\ud83d\\ude00"}) {
      const std::string content = text.substr(0, at) + insert + text.substr(at);
      const std::string value = R"([{"content":")" + content + R"(","role":"user"}])";
      const members ms{{"messages", value}};
      auto raw = canonical_request_raw("chat", "gpt", ms);
      ASSERT_TRUE(raw.has_value()) << content;
      EXPECT_EQ(*raw, canonical_request("chat", "gpt", dom_of(ms))) << content;
    }
    for (const char* refused : {"\\ud800", "caf\xc3", "\xff"}) {
      const std::string content = text.substr(0, at) + refused + text.substr(at);
      const std::string value = R"([")" + content + R"("])";
      const members ms{{"messages", value}};
      EXPECT_FALSE(canonical_request_raw("chat", "gpt", ms).has_value()) << content;
    }
  }
}

// Objects are sorted with one stack of members shared by every depth (and kept from call
// to call): nested unsorted objects, and a call that gave up halfway through a nested
// object, leave nothing behind for the next call.
TEST(CacheKey, NestedUnsortedObjectsAndAbandonedCallsLeaveNoTrace) {
  const members nested{
      {"tools", R"([{"type":"function","function":{"parameters":{"type":"object","properties":{"z":{"type":"string"},"a":{"type":"number","enum":[1,2]}}},"name":"f"}}])"},
      {"messages", R"([{"role":"user","content":"hi"}])"}};
  const auto expected = canonical_request("chat", "gpt", dom_of(nested));
  auto first = canonical_request_raw("chat", "gpt", nested);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(*first, expected);
  const members abandoned[] = {
      {{"x", R"({"b":{"d":1,"c":{"f":1,"e":2,"f":3}},"a":0})"}},  // repeated key three deep
      {{"x", R"({"b":{"d":1,"c":{"f":1.0}},"a":0})"}},            // a value refused three deep
      {{"x", R"({"b":{"d":1,"c":{"f":1)"}},                        // cut short
  };
  for (const auto& ms : abandoned) {
    EXPECT_FALSE(canonical_request_raw("chat", "gpt", ms).has_value()) << ms.front().second;
    auto again = canonical_request_raw("chat", "gpt", nested);
    ASSERT_TRUE(again.has_value());
    EXPECT_EQ(*again, expected) << "after " << ms.front().second;
  }
}

TEST(CacheKey, RawMembersNotInCanonicalFormFallBackToTheDom) {
  const members cases[] = {
      {{"x", R"({"a":1,"a":2})"}},                             // repeated key
      {{"temperature", "1.0"}},                                // integral fraction
      {{"temperature", "0.70"}},                               // not the shortest spelling
      {{"temperature", "7e-1"}},                               // exponent
      {{"temperature", "-0"}},                                 // negative zero
      {{"x", "12345678901234567890"}},                         // beyond int64
      {{"messages", "[\"caf\xc3\"]"}},                         // UTF-8 cut short
      {{"messages", "[\"\xff\"]"}},                             // not UTF-8
      {{"messages", "[\"\xc0\xaf\"]"}},                         // overlong
      {{"messages", "[\"\xed\xa0\x80\"]"}},                     // an encoded surrogate
      {{"messages", R"(["\ud800"])"}},                         // a lone high surrogate
      {{"messages", R"(["\ud800\u0041"])"}},                   // a high surrogate, no low one
      {{"messages", R"(["\udc00"])"}},                         // a lone low surrogate
      {{"messages", R"(["\u12g4"])"}},                         // not hex
      {{"messages", R"(["\u12"])"}},                           // cut short
      {{"x", R"({"k\u0065y":1})"}},                            // an escaped object key
      {{"messages", "[]"}, {"messages", "[1]"}},               // repeated top-level key
  };
  for (const auto& ms : cases) {
    EXPECT_FALSE(canonical_request_raw("chat", "gpt", ms).has_value()) << ms.front().second;
  }
  // Excluded members are not looked at, whatever their spelling.
  members excluded_only{{"messages", "[]"}, {"metadata", R"({ "b" : 1.0 })"}, {"stream", "true"}};
  ASSERT_TRUE(canonical_request_raw("chat", "gpt", excluded_only).has_value());
  EXPECT_EQ(*canonical_request_raw("chat", "gpt", excluded_only),
            canonical_request("chat", "gpt", dom_of(excluded_only)));
}

// Text in any language, and \u escapes (clients that write every non-ASCII character as
// one), keep the path without a DOM and give the DOM path's text: UTF-8 copied, escapes
// written as dump() writes the decoded character.
TEST(CacheKey, UnicodeAndEscapesGiveTheDomPathsText) {
  const char* contents[] = {
      "caf\xc3\xa9 \xe2\x80\x94 \xe2\x80\x9cquoted\xe2\x80\x9d \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xf0\x9f\x99\x82",
      R"(caf\u00e9 \u2014 \u201cquoted\u201d \u65e5\u672c\u8a9e \ud83d\ude42)",
      R"(\u00E9\u00e9\u0041\u007f\u0080\u07ff\u0800\uffff\ud800\udc00\udbff\udfff)",
      R"(\u0000\u0001\u0008\u0009\u000a\u000c\u000d\u001f\u0020\u0022\u005c\u002f)",
      R"(a\/b\\/c \\u00e9 is not an escape)",
      "\x7f raw DEL",
  };
  for (const char* c : contents) {
    const std::string value = std::string(R"([{"role":"user","content":")") + c + R"("}])";
    const members ms{{"messages", value}, {"user", R"("\u00fcser")"}};
    auto raw = canonical_request_raw("chat", "gpt", ms);
    ASSERT_TRUE(raw.has_value()) << c;
    EXPECT_EQ(*raw, canonical_request("chat", "gpt", dom_of(ms))) << c;
  }
  // Escaped and unescaped spellings of one text are one key.
  const members a{{"messages", R"(["caf\u00e9 \/"])"}};
  const members b{{"messages", "[\"caf\xc3\xa9 /\"]"}};
  EXPECT_EQ(canonical_request_raw("chat", "gpt", a), canonical_request_raw("chat", "gpt", b));
}

// Random strings of ASCII, UTF-8 and escapes of every kind, in every position: whenever the
// path without a DOM accepts a body, its text is the DOM path's; it accepts every valid one.
TEST(CacheKey, RandomUnicodeStringsAgreeWithTheDom) {
  std::mt19937 rng(20261207);
  const char* pieces[] = {"a", "Z", " ", "~", "\x7f", "\\n", "\\\"", "\\\\", "\\b", "\\f", "\\r", "\\t", "\\/",
                          "\\u0000", "\\u001F", "\\u0022", "\\u005C", "\\u002f", "\\u007F", "\\u00e9", "\\u20AC",
                          "\\uD83D\\uDE00", "\\udbff\\udfff", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\xf4\x8f\xbf\xbf",
                          "0123456789abcdef", "The quick brown fox jumps"};
  int accepted = 0;
  for (int n = 0; n < 4000; ++n) {
    std::string content;
    const int count = static_cast<int>(rng() % 40);
    for (int k = 0; k < count; ++k) {
      content += pieces[rng() % std::size(pieces)];
    }
    const std::string value = R"([{"role":"user","content":")" + content + R"("}])";
    const members ms{{"messages", value}};
    auto raw = canonical_request_raw("chat", "gpt", ms);
    ASSERT_TRUE(raw.has_value()) << content;
    EXPECT_EQ(*raw, canonical_request("chat", "gpt", dom_of(ms))) << content;
    ++accepted;
  }
  EXPECT_EQ(accepted, 4000);
}

}  // namespace
}  // namespace switchyard::cache
