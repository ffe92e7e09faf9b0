// providers::scan_json (the DOM-free reader of request bodies) and the OpenAI adapter's
// byte-level request builder, checked against nlohmann and build().
#include "switchyard/providers/adapter.hpp"
#include "switchyard/providers/json_scan.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

using namespace switchyard;
using providers::json_kind;
using providers::scan_json;
using json = nlohmann::json;

TEST(json_scan, lists_top_level_members_as_spans) {
  std::string text = R"( {"model" : "gpt-4o", "messages":[{"role":"user","content":"hello"}],"n":-1.5e3,
                          "stream":true,"x":null,"o":{"a":[1,{"b":"c"}]}} )";
  auto s = scan_json(text);
  ASSERT_TRUE(s.ok) << s.error;
  EXPECT_EQ(s.root, json_kind::object);
  ASSERT_EQ(s.members.size(), 6u);
  EXPECT_EQ(s.members[0].key, "model");
  EXPECT_EQ(s.members[0].value, "\"gpt-4o\"");
  EXPECT_EQ(s.members[0].whole, "\"model\" : \"gpt-4o\"");
  EXPECT_EQ(s.members[0].kind, json_kind::string);
  EXPECT_EQ(s.members[1].kind, json_kind::array);
  EXPECT_EQ(s.members[1].text_bytes, std::string("user").size() + std::string("hello").size())
      << "string values count, keys do not";
  EXPECT_EQ(s.members[2].value, "-1.5e3");
  EXPECT_EQ(s.members[2].kind, json_kind::number);
  EXPECT_EQ(s.members[3].kind, json_kind::boolean);
  EXPECT_EQ(s.members[4].kind, json_kind::null);
  EXPECT_EQ(s.members[5].value, R"({"a":[1,{"b":"c"}]})");
  EXPECT_EQ(s.find("stream")->value, "true");
  EXPECT_EQ(s.find("absent"), nullptr);
}

TEST(json_scan, escaped_keys_are_decoded_and_last_duplicate_wins) {
  auto s = scan_json(R"({"mo\u0064el":"a","k\"q":1,"model":"b"})");
  ASSERT_TRUE(s.ok) << s.error;
  EXPECT_EQ(s.members[0].key, "model");
  EXPECT_EQ(s.members[1].key, "k\"q");
  EXPECT_EQ(s.find("model")->value, "\"b\"");
  auto moved = std::move(s);  // keys that point into unescaped_keys survive a move
  EXPECT_EQ(moved.members[0].key, "model");
}

TEST(json_scan, agrees_with_nlohmann_on_tricky_documents) {
  const char* cases[] = {
      "{}", "[]", "0", "-0", "1.5", "1e5", "1E+5", "-1e-5", "\"\"", "true", "false", "null", " \t\r\n{} ",
      "\xEF\xBB\xBF{}",  // BOM
      "01", "1.", ".5", "-", "+1", "1e", "1e+", "0x10", "[1,]", "{\"a\":1,}", "{\"a\"}", "{a:1}", "[1 2]",
      "{\"a\":1}{}", "tru", "nul", "falsey", "\"\\x\"", "\"\\u12\"", "\"\\u00e9\"", "\"\\ud83d\\ude00\"",
      "\"\\ud83d\"", "\"\\ude00\"", "\"\\ud83d\\u0041\"", "\"a\tb\"", "\"a\\tb\"", "\"caf\xC3\xA9\"",
      "\"\xC3\"", "\"\xC0\x80\"", "\"\xED\xA0\x80\"", "\"\xF4\x90\x80\x80\"", "\"\xF0\x9F\x98\x80\"",
      "\"\xE2\x82\"", "\"\x80\"", "[1e400]", "[-1e400]", "[1E400]", "[2.5E+400]", "[1e-400]", "[1e308]", "", " ", "[", "]", "{",
      "\"unterminated", "[\"a\",\"b\"", "{\"a\":[{\"b\":[{\"c\":\"d\\\\\"}]}]}",
  };
  for (const char* c : cases) {
    std::string text(c);
    const bool theirs = json::accept(text) && !json::parse(text, nullptr, false).is_discarded();
    EXPECT_EQ(scan_json(text).ok, theirs) << "input: " << text;
    EXPECT_EQ(providers::json_valid(text), theirs) << "input: " << text;
  }
}

TEST(json_scan, long_strings_take_the_fast_path_and_still_validate) {
  std::string big(1 << 20, 'a');
  big[777777] = '\x01';  // a raw control character deep inside
  EXPECT_FALSE(scan_json("{\"s\":\"" + big + "\"}").ok);
  big[777777] = '"';  // an early quote: the string ends, junk follows
  EXPECT_FALSE(scan_json("{\"s\":\"" + big + "\"}").ok);
  big[777777] = 'a';
  big[5] = '\xC3';  // invalid UTF-8 (lead byte followed by ASCII)
  EXPECT_FALSE(scan_json("{\"s\":\"" + big + "\"}").ok);
  big[5] = 'a';
  auto s = scan_json("{\"s\":\"" + big + "\"}");
  ASSERT_TRUE(s.ok) << s.error;
  EXPECT_EQ(s.members[0].text_bytes, big.size());
  for (std::size_t n = 0; n < 40; ++n) {  // every tail length around the 16-byte blocks
    std::string t = "\"" + std::string(n, 'x') + "\\n\xC3\xA9" + std::string(n, 'y') + "\"";
    EXPECT_TRUE(scan_json(t).ok) << n;
    EXPECT_FALSE(scan_json(t.substr(0, t.size() - 1)).ok) << n;
  }
}

// A string's first 16 bytes are probed at once (SSE2), strings of 64+ bytes then take a
// 32-byte (AVX2) step where the CPU has it, then the 16-byte one: a special byte at every
// offset around those blocks must be seen, as nlohmann does, and a valid string's text
// length and key counted as a scalar count would. Each document also has a string after
// the tested one (`pad`), so that short strings are followed by enough bytes for the
// probe, as they are inside a real document, and a member after one may be found.
TEST(json_scan, special_bytes_at_every_offset_of_strings_agree_with_nlohmann) {
  const std::string specials[] = {"\"", "\\n", "\\u00e9", "\x01", "\x7F", "\xC3\xA9", "\xC3", "\xE2\x82\xAC",
                                  "\xF0\x9F\x98\x80", "\xFF", "\\x"};
  const std::string pad = ",\"pad\":\"" + std::string(70, 'p') + "\"}";
  for (std::size_t len : {1u, 2u, 15u, 16u, 17u, 18u, 31u, 32u, 33u, 47u, 48u, 49u, 63u, 64u, 65u, 95u, 96u, 97u, 130u}) {
    for (std::size_t at = 0; at < len; ++at) {
      for (const auto& sp : specials) {
        std::string inner(len, 'a');
        inner.replace(at, 1, sp);
        for (const bool tight : {false, true}) {  // with and without bytes after it
          const std::string doc = "{\"s\":\"" + inner + "\"" + (tight ? std::string("}") : pad);
          const auto ours = scan_json(doc);
          const json theirs = json::parse(doc, nullptr, false);
          ASSERT_EQ(ours.ok, !theirs.is_discarded())
              << "len " << len << " at " << at << (tight ? " tight" : " padded") << " special "
              << json(sp).dump(-1, ' ', true, json::error_handler_t::replace);
          if (ours.ok) {
            ASSERT_EQ(ours.members.size(), tight ? 1u : 2u);
            EXPECT_EQ(ours.members[0].text_bytes, inner.size()) << len << " " << at;
            EXPECT_EQ(json_member_value(ours.members[0]), theirs["s"]) << len << " " << at;
            // The same text as a key (its end is where the key's string ended).
            const std::string as_key = "{\"" + inner + "\":1" + (tight ? std::string("}") : pad);
            const auto k = scan_json(as_key);
            ASSERT_TRUE(k.ok) << len << " " << at;
            std::string expected;  // nlohmann's object is sorted: the key that is not "pad"
            const json parsed = json::parse(as_key);
            for (auto it = parsed.begin(); it != parsed.end(); ++it) {
              if (it.key() != "pad") {
                expected = it.key();
              }
            }
            EXPECT_EQ(k.members[0].key, expected) << len << " " << at;
          }
        }
      }
    }
  }
}

// Long strings are validated 32 bytes at a time (AVX2, where the CPU has it): UTF-8 of
// every length, two-byte and \u escapes stepped over inside a block, and everything that must
// fail (truncated, overlong, surrogate, above U+10FFFF, stray continuation, bad escape,
// raw control character), at random places, so that sequences and escapes straddle the
// 32-byte blocks. Every document must be judged as nlohmann judges it; the valid ones
// must also report the same text_bytes as a scalar count.
TEST(json_scan, random_long_strings_agree_with_nlohmann) {
  const std::vector<std::string> good = {
      "a", "Z", " ", "~", "\\n", "\\\"", "\\\\", "\\/", "\\t", "\\u00e9", "\\ud83d\\ude00",
      "\\u0000", "\\u001f", "\\u20AC", "\\uD7FF", "\\uE000", "\\uFFFF", "\\u65e5\\u672c", "\\uDBFF\\uDFFF",
      "\xC2\x80", "\xDF\xBF", "\xC3\xA9", "\xE0\xA0\x80", "\xE2\x82\xAC", "\xED\x9F\xBF", "\xEE\x80\x80",
      "\xEF\xBF\xBF", "\xF0\x90\x80\x80", "\xF0\x9F\x98\x80", "\xF3\xBF\xBF\xBF", "\xF4\x8F\xBF\xBF",
      "\xE6\x97\xA5\xE6\x9C\xAC"};
  const std::vector<std::string> bad = {
      "\xC3",             "\x80",         "\xBF",          "\xC0\x80",         "\xC1\xBF",     "\xE0\x80\x80",
      "\xE0\x9F\xBF",     "\xED\xA0\x80", "\xED\xBF\xBF",  "\xF0\x80\x80\x80", "\xF0\x8F\xBF\xBF",
      "\xF4\x90\x80\x80", "\xF5\x80\x80\x80", "\xF8\x88\x80\x80\x80", "\xFF",   "\xFE",         "\xE2\x82",
      "\xF0\x9F\x98",     "\xC3\xA9\xA9", "\x01",          "\x1F",             "\\x",          "\\u12",
      "\\udc00",          "\\ud83d",      "\"",            "\\",
      "\\u12G4",          "\\uDFFF",      "\\uD800\\u0041", "\\uD800\\n",     "\\u-123",      "\\U00e9"};
  std::uint64_t seed = 0x9E3779B97F4A7C15ULL;
  auto next = [&seed] {  // xorshift64*: the same documents on every run
    seed ^= seed >> 12;
    seed ^= seed << 25;
    seed ^= seed >> 27;
    return seed * 0x2545F4914F6CDD1DULL;
  };
  int valid = 0;
  int invalid = 0;
  for (int doc_no = 0; doc_no < 4000; ++doc_no) {
    const std::size_t len = 64 + next() % 400;
    const bool spoil = doc_no % 2 == 1;
    const std::size_t spoil_at = spoil ? next() % len : len;
    std::string inner;
    while (inner.size() < len) {
      if (spoil && inner.size() >= spoil_at) {
        inner += bad[next() % bad.size()];
        break;
      }
      const auto r = next() % 100;
      const std::string& piece = r < 60 ? good[next() % 4] : good[next() % good.size()];
      inner += piece;
    }
    if (spoil) {
      while (inner.size() < len + 8) {  // more good text after the fault
        inner += good[next() % good.size()];
      }
    }
    const std::size_t text_bytes = inner.size();
    const std::string doc = "{\"s\":\"" + inner + "\",\"n\":1}";
    const auto ours = scan_json(doc);
    const bool theirs = !json::parse(doc, nullptr, false).is_discarded();
    ASSERT_EQ(ours.ok, theirs) << "document " << doc_no << " ("
                               << json(doc).dump(-1, ' ', true, json::error_handler_t::replace) << "): " << ours.error;
    if (ours.ok) {
      ++valid;
      ASSERT_EQ(ours.members.size(), 2u);
      EXPECT_EQ(ours.members[0].text_bytes, text_bytes) << doc_no;
      // The same text as a key: decoded as nlohmann decodes it (escapes stepped over in
      // the vector loop must still mark the key for decoding).
      const std::string as_key = "{\"" + inner + "\":1}";
      const auto k = scan_json(as_key);
      ASSERT_TRUE(k.ok) << doc_no;
      ASSERT_EQ(k.members.size(), 1u);
      EXPECT_EQ(k.members[0].key, json::parse(as_key).begin().key()) << doc_no;
    } else {
      ++invalid;
    }
  }
  // Both kinds were exercised (a spoiled document can still be valid: "\"" ends the
  // string early and is then junk, so invalid; but a stray "\\" may escape a good byte).
  EXPECT_GT(valid, 1500);
  EXPECT_GT(invalid, 1500);
}

TEST(json_scan, nesting_limit_is_reported) {
  std::string deep(300, '[');
  deep += std::string(300, ']');
  auto s = scan_json(deep, 256);
  EXPECT_FALSE(s.ok);
  EXPECT_TRUE(s.too_deep);
  EXPECT_TRUE(scan_json(deep, 300).ok);
  EXPECT_FALSE(scan_json(std::string(100000, '['), 256).ok) << "no recursion beyond the limit";
}

TEST(json_scan, error_offset_points_at_the_problem) {
  auto s = scan_json(R"({"model":"a", "x": tru})");
  EXPECT_FALSE(s.ok);
  EXPECT_EQ(s.error_offset, 19u);
  EXPECT_STREQ(s.error, "invalid literal");
}

TEST(json_scan, append_json_string_round_trips) {
  std::string out;
  std::string in = "a\"b\\c\n\x01\xC3\xA9/";
  providers::append_json_string(out, in);
  EXPECT_EQ(json::parse(out).get<std::string>(), in);
}

namespace {

config::deployment dep(std::string_view provider = "openai") {
  config::deployment d;
  d.provider = config::find_provider(provider);
  d.model_name = "gpt";
  d.model = "openai/gpt-4o";
  d.upstream_model = "gpt-4o\"x";  // needs escaping
  d.api_base = "http://127.0.0.1:9/v1";
  d.api_key = "sk-upstream";
  d.api_version = "2024-06-01";
  return d;
}

void expect_same_as_build(const std::string& text, providers::call_type type, bool stream,
                          std::string_view kind = "openai") {
  const auto& a = providers::openai_adapter();
  auto scan = scan_json(text);
  ASSERT_TRUE(scan.ok) << text;
  auto raw = a.build_raw(type, dep(kind), text, scan, {stream, false});
  ASSERT_TRUE(raw.has_value());
  ASSERT_TRUE(raw->has_value());
  auto dom = a.build(type, dep(kind), json::parse(text), {stream, false});
  ASSERT_TRUE(dom.has_value());
  EXPECT_EQ((*raw)->url, dom->url);
  EXPECT_EQ((*raw)->headers, dom->headers);
  EXPECT_EQ(json::parse((*raw)->joined_body()), json::parse(dom->body)) << (*raw)->joined_body() << "\nvs\n"
                                                                         << dom->body;
}

}  // namespace

TEST(openai_build_raw, same_json_as_the_dom_builder) {
  using providers::call_type;
  const std::string chat =
      R"({"model":"gpt","messages":[{"role":"user","content":"hi \u00e9"}],"temperature":0.2,
          "metadata":{"tags":["a"]},"mock_testing_fallbacks":false,"num_retries":3,"vendor":{"x":[1,2]}})";
  expect_same_as_build(chat, call_type::chat, false);
  expect_same_as_build(chat, call_type::chat, true);
  expect_same_as_build(R"({"model":"gpt","messages":[],"stream":true,"stream_options":{"include_usage":false,"x":1}})",
                       call_type::chat, true);
  expect_same_as_build(R"({"model":"gpt","messages":[],"stream":true,"stream_options":null})", call_type::chat, true);
  expect_same_as_build(R"({"messages":[],"stream":false})", call_type::chat, false);  // no model: added
  expect_same_as_build(R"({"model":"a","model":"b","messages":[]})", call_type::chat, true);
  expect_same_as_build(R"({"model":"gpt","input":["a","b"],"encoding_format":"float"})", call_type::embedding, true);
  expect_same_as_build(R"({"model":"gpt","prompt":"x","stream":true})", call_type::completion, true);
  expect_same_as_build(chat, call_type::chat, true, "azure");
}

TEST(openai_build_raw, large_bodies_are_pieces_of_the_clients_bytes) {
  using providers::call_type;
  const std::string big(100000, 'x');
  const std::string text = R"({"num_retries":1,"messages":[{"role":"user","content":")" + big +
                           R"("}],"model":"gpt","stream":true,"stream_options":{"x":1},"metadata":{}})";
  expect_same_as_build(text, call_type::chat, true);
  expect_same_as_build(text, call_type::chat, false);
  auto scan = scan_json(text);
  auto raw = providers::openai_adapter().build_raw(call_type::chat, dep(), text, scan, {true, false});
  ASSERT_TRUE(raw && *raw);
  auto call = std::move(**raw);  // moved, as the pipeline does: the pieces stay valid
  ASSERT_FALSE(call.body_parts.empty());
  bool points_into_client = false;
  for (auto p : call.body_parts) {
    points_into_client |= p.data() >= text.data() && p.data() < text.data() + text.size() && p.size() > big.size();
  }
  EXPECT_TRUE(points_into_client) << "the 100 KB message is not copied";
  EXPECT_LT(call.body.size(), 200u) << "only the edits are stored";
  auto sent = json::parse(call.joined_body());
  EXPECT_EQ(sent["messages"][0]["content"], big);
  EXPECT_EQ(sent["model"], "gpt-4o\"x");
  EXPECT_EQ(sent["stream_options"]["include_usage"], true);
  EXPECT_FALSE(sent.contains("num_retries"));
}

TEST(openai_build_raw, keeps_the_clients_bytes_for_what_it_does_not_touch) {
  const std::string text = R"({"model":"gpt","messages":[{"role":"user","content":"1.50  spaces"}],"n":1.50})";
  auto scan = scan_json(text);
  auto raw = providers::openai_adapter().build_raw(providers::call_type::chat, dep(), text, scan, {false, false});
  ASSERT_TRUE(raw && *raw);
  EXPECT_NE((*raw)->body.find(R"("messages":[{"role":"user","content":"1.50  spaces"}])"), std::string::npos);
  EXPECT_NE((*raw)->body.find(R"("n":1.50)"), std::string::npos) << "numbers are not reformatted";
  EXPECT_NE((*raw)->body.find(R"("model":"gpt-4o\"x")"), std::string::npos);
}

// Translating adapters decline, but Anthropic's for plain text chat requests, which it
// writes from the bytes (anthropic_build_raw in anthropic_test.cpp): with tools it declines.
TEST(openai_build_raw, translating_adapters_decline) {
  const std::string text = R"({"model":"gpt","messages":[]})";
  auto scan = scan_json(text);
  const std::string with_tools =
      R"({"model":"gpt","messages":[],"tools":[{"type":"function","function":{"name":"f"}}]})";
  EXPECT_FALSE(providers::anthropic_adapter()
                   .build_raw(providers::call_type::chat, dep("anthropic"), with_tools, scan_json(with_tools),
                              {false, false})
                   .has_value());
  EXPECT_FALSE(providers::ollama_adapter()
                   .build_raw(providers::call_type::chat, dep("ollama"), text, scan, {false, false})
                   .has_value());
}

namespace switchyard::providers {
namespace {

// append_as_dumped writes what nlohmann's dump() writes for the string a literal decodes
// to, for every kind of escape and character, in random mixes.
TEST(json_scan, append_as_dumped_is_what_dump_writes) {
  const std::vector<std::string> pieces = {
      "a", "Z", " ", "~", "\x7f", "\\n", "\\\"", "\\\\", "\\/", "\\b", "\\f", "\\r", "\\t", "\\u0000", "\\u001F",
      "\\u0022", "\\u005C", "\\u002f", "\\u007F", "\\u00e9", "\\u20AC", "\\uD83D\\uDE00", "\\udbff\\udfff",
      "\\u0008", "\\u000c", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "The quick brown fox", "\\u65e5\\u672c"};
  std::uint64_t seed = 0x2545F4914F6CDD1DULL;
  for (int n = 0; n < 3000; ++n) {
    std::string lit;
    seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
    const int count = static_cast<int>((seed >> 33) % 30);
    for (int k = 0; k < count; ++k) {
      seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
      lit += pieces[(seed >> 33) % pieces.size()];
    }
    std::string ours;
    append_as_dumped(ours, lit);
    const std::string theirs = json::parse("\"" + lit + "\"").dump();
    ASSERT_EQ("\"" + ours + "\"", theirs) << lit;
  }
}

}  // namespace
}  // namespace switchyard::providers
