#include "switchyard/auth/authenticator.hpp"

#include <gtest/gtest.h>

#include <map>

using namespace switchyard;

namespace {
auth::header_getter headers(std::map<std::string, std::string> h) {
  auto shared = std::make_shared<std::map<std::string, std::string>>(std::move(h));
  return [shared](std::string_view n) -> std::string_view {
    auto it = shared->find(std::string(n));
    return it == shared->end() ? std::string_view{} : std::string_view(it->second);
  };
}
}  // namespace

TEST(extract_key, every_header_litellm_accepts) {
  EXPECT_EQ(auth::extract_key(headers({{"authorization", "Bearer sk-a"}})), "sk-a");
  EXPECT_EQ(auth::extract_key(headers({{"authorization", "bearer  sk-a "}})), "sk-a");
  EXPECT_EQ(auth::extract_key(headers({{"authorization", "Basic sk-a"}})), "sk-a");
  EXPECT_EQ(auth::extract_key(headers({{"authorization", "sk-raw"}})), "sk-raw");
  EXPECT_EQ(auth::extract_key(headers({{"x-litellm-api-key", "sk-b"}})), "sk-b");
  EXPECT_EQ(auth::extract_key(headers({{"api-key", "sk-c"}})), "sk-c");
  EXPECT_EQ(auth::extract_key(headers({{"x-api-key", "sk-d"}})), "sk-d");
  EXPECT_EQ(auth::extract_key(headers({{"x-goog-api-key", "sk-e"}})), "sk-e");
  EXPECT_EQ(auth::extract_key(headers({{"ocp-apim-subscription-key", "sk-f"}})), "sk-f");
  EXPECT_EQ(auth::extract_key(headers({{"x-custom", "Bearer sk-g"}}), "x-custom"), "sk-g");
  EXPECT_EQ(auth::extract_key(headers({})), "");
}

TEST(extract_key, authorization_wins) {
  EXPECT_EQ(auth::extract_key(headers({{"authorization", "Bearer sk-1"}, {"x-api-key", "sk-2"}})), "sk-1");
}

TEST(authenticator, master_key) {
  auth::authenticator a("sk-master-1234");
  auto ok = a.authenticate(headers({{"authorization", "Bearer sk-master-1234"}}));
  ASSERT_TRUE(ok);
  EXPECT_TRUE(ok->is_master);
  EXPECT_EQ(ok->key_redacted, "sk-...1234");

  auto bad = a.authenticate(headers({{"authorization", "Bearer sk-wrong-9999"}}));
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().status, 401);
  EXPECT_EQ(bad.error().type, "auth_error");
  EXPECT_NE(bad.error().message.find("sk-...9999"), std::string::npos);
  EXPECT_EQ(bad.error().message.find("sk-wrong-9999"), std::string::npos) << "full key leaked";

  auto missing = a.authenticate(headers({}));
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().status, 401);
}

TEST(authenticator, no_master_key_means_open) {
  auth::authenticator a("");
  EXPECT_FALSE(a.enabled());
  EXPECT_TRUE(a.authenticate(headers({})));
}
