#include "switchyard/core/ids.hpp"

#include <gtest/gtest.h>

#include <set>

using namespace switchyard::core;

TEST(ids, uuid4_has_version_and_variant) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    auto u = uuid4();
    ASSERT_EQ(u.size(), 36u);
    EXPECT_EQ(u[8], '-');
    EXPECT_EQ(u[14], '4');
    EXPECT_TRUE(u[19] == '8' || u[19] == '9' || u[19] == 'a' || u[19] == 'b') << u;
    seen.insert(u);
  }
  EXPECT_EQ(seen.size(), 1000u);
}

TEST(ids, sha256_matches_known_vector) {
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  // LiteLLM stores sha256 of the whole key string, prefix included.
  EXPECT_EQ(sha256_hex("sk-1234").size(), 64u);
}

TEST(ids, secure_equal) {
  EXPECT_TRUE(secure_equal("sk-abc", "sk-abc"));
  EXPECT_FALSE(secure_equal("sk-abc", "sk-abd"));
  EXPECT_FALSE(secure_equal("sk-abc", "sk-abcd"));
  EXPECT_TRUE(secure_equal("", ""));
}

TEST(ids, redact_key_shows_last_four) {
  EXPECT_EQ(redact_key("sk-1234567890abcd"), "sk-...abcd");
  EXPECT_EQ(redact_key("abc"), "sk-...");
  EXPECT_EQ(redact_key(""), "");
}

TEST(ids, random_hex_length) {
  EXPECT_EQ(random_hex(16).size(), 32u);
  EXPECT_NE(random_hex(16), random_hex(16));
}
