#include "switchyard/cache/controls.hpp"

#include <gtest/gtest.h>

namespace switchyard::cache {
namespace {

using json = nlohmann::json;

core::result<request_controls> parse(const char* cache, std::string_view header = {},
                                     std::vector<std::string> allowed = {}) {
  json c = cache != nullptr ? json::parse(cache) : json();
  return parse_controls(cache != nullptr ? &c : nullptr, header, allowed);
}

TEST(CacheControls, BodyControls) {
  auto c = parse(R"({"no-cache":true,"no-store":false,"ttl":30,"s-maxage":5,"namespace":"ns","use-cache":true})");
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->no_cache);
  EXPECT_FALSE(c->no_store);
  EXPECT_EQ(c->ttl, 30);
  EXPECT_EQ(c->s_maxage, 5);
  EXPECT_EQ(c->namespace_, "ns");
  EXPECT_EQ(c->use_cache, true);
  auto alt = parse(R"({"s-max-age":7})");
  ASSERT_TRUE(alt);
  EXPECT_EQ(alt->s_maxage, 7);
  auto none = parse(nullptr);
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->no_cache);
  EXPECT_FALSE(none->ttl);
}

TEST(CacheControls, WrongTypesAre400) {
  for (const char* bad : {R"("x")", R"({"no-cache":"yes"})", R"({"ttl":"5"})", R"({"ttl":-1})", R"({"namespace":3})"}) {
    auto c = parse(bad);
    ASSERT_FALSE(c) << bad;
    EXPECT_EQ(c.error().status, 400) << bad;
    EXPECT_EQ(c.error().param, "cache");
  }
}

TEST(CacheControls, ANamespaceLongerThanTheBoundIs400) {
  json at_bound = {{"namespace", std::string(max_namespace_bytes, 'n')}};
  auto ok = parse_controls(&at_bound, {}, {});
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->namespace_->size(), max_namespace_bytes);
  json over = {{"namespace", std::string(max_namespace_bytes + 1, 'n')}};
  auto c = parse_controls(&over, {}, {});
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().status, 400);
  EXPECT_EQ(c.error().param, "cache");
  EXPECT_EQ(c.error().message, "Invalid cache control: `namespace` must be at most 512 bytes");
}

TEST(CacheControls, AllowedCacheControlsRestrictTheBody) {
  auto ok = parse(R"({"ttl":5})", {}, {"ttl", "no-cache"});
  EXPECT_TRUE(ok);
  auto refused = parse(R"({"ttl":5,"no-store":true})", {}, {"ttl", "no-cache"});
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().status, 403);
  EXPECT_EQ(refused.error().message,
            "Not allowed to set no-store as a cache control. Contact admin to change permissions.");
  // An empty list allows everything.
  EXPECT_TRUE(parse(R"({"no-store":true})", {}, {}));
}

TEST(CacheControls, CacheControlHeaderGivesOnlyAWriteTtl) {
  auto c = parse(nullptr, "no-cache, S-MAXAGE=120");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->header_ttl, 120);
  EXPECT_FALSE(c->no_cache);  // LiteLLM ignores no-cache / no-store in the header
  EXPECT_FALSE(parse(nullptr, "s-maxage=abc")->header_ttl);
  EXPECT_FALSE(parse(nullptr, "max-age=5")->header_ttl);
}

}  // namespace
}  // namespace switchyard::cache
