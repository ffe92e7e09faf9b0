#include "upstream/url.hpp"

#include <gtest/gtest.h>

namespace {

using switchyard::upstream::detail::parse_url;

TEST(upstream_url, defaults_and_explicit_ports) {
  std::string why;
  auto a = parse_url("https://API.openai.com/v1/chat/completions", why);
  ASSERT_TRUE(a) << why;
  EXPECT_TRUE(a->tls);
  EXPECT_EQ(a->host, "api.openai.com");
  EXPECT_EQ(a->port, 443);
  EXPECT_EQ(a->target, "/v1/chat/completions");
  EXPECT_EQ(a->host_header, "api.openai.com");
  EXPECT_EQ(a->pool_key, "https://api.openai.com:443");

  auto b = parse_url("http://127.0.0.1:8080/v1/models?limit=5#frag", why);
  ASSERT_TRUE(b) << why;
  EXPECT_FALSE(b->tls);
  EXPECT_EQ(b->port, 8080);
  EXPECT_EQ(b->target, "/v1/models?limit=5");
  EXPECT_EQ(b->host_header, "127.0.0.1:8080");
  EXPECT_EQ(b->pool_key, "http://127.0.0.1:8080");

  auto c = parse_url("http://localhost", why);
  ASSERT_TRUE(c) << why;
  EXPECT_EQ(c->target, "/");
  EXPECT_EQ(c->port, 80);

  auto d = parse_url("http://h?x=1", why);
  ASSERT_TRUE(d) << why;
  EXPECT_EQ(d->target, "/?x=1");
}

TEST(upstream_url, ipv6_literals) {
  std::string why;
  auto a = parse_url("http://[::1]:11434/api/chat", why);
  ASSERT_TRUE(a) << why;
  EXPECT_EQ(a->host, "::1");
  EXPECT_EQ(a->port, 11434);
  EXPECT_EQ(a->host_header, "[::1]:11434");
  EXPECT_EQ(a->pool_key, "http://[::1]:11434");
  auto b = parse_url("https://[2001:db8::1]/", why);
  ASSERT_TRUE(b) << why;
  EXPECT_EQ(b->host_header, "[2001:db8::1]");
}

TEST(upstream_url, rejects_bad_urls) {
  for (const char* bad : {"", "api.openai.com/v1", "ftp://x/", "http://", "http:///path", "http://h:/",
                          "http://h:0/", "http://h:65536/", "http://h:12a/", "http://user:pw@h/",
                          "http://[::1/", "http://[::1]x/", "http://h o/", "http://h/a b",
                          "http://h/\r\nX-Injected: 1", "http://h\r\n/"}) {
    std::string why;
    EXPECT_FALSE(parse_url(bad, why)) << bad;
    EXPECT_FALSE(why.empty()) << bad;
  }
}

}  // namespace
