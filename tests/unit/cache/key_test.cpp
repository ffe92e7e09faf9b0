#include "switchyard/cache/key.hpp"

#include <gtest/gtest.h>

namespace switchyard::cache {
namespace {

using json = nlohmann::json;

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

}  // namespace
}  // namespace switchyard::cache
