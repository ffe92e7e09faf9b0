#include "switchyard/core/error.hpp"

#include <gtest/gtest.h>

using namespace switchyard::core;

TEST(error, statuses_and_types) {
  EXPECT_EQ(make_error(errc::unauthorized, "x").status, 401);
  EXPECT_EQ(make_error(errc::unauthorized, "x").type, "auth_error");
  EXPECT_EQ(make_error(errc::model_not_found, "x").status, 400);
  EXPECT_EQ(make_error(errc::payload_too_large, "x").status, 413);
  EXPECT_EQ(make_error(errc::request_timeout, "x").status, 408);
  EXPECT_EQ(make_error(errc::unavailable, "x").status, 503);
  EXPECT_EQ(make_error(errc::bad_request, "x", "model").param, "model");
}

TEST(error, upstream_status_kept_and_classified) {
  auto e = upstream_status_error(429, "slow down");
  EXPECT_EQ(e.status, 429);
  EXPECT_EQ(e.type, "rate_limit_error");
  EXPECT_TRUE(e.retryable);
  EXPECT_FALSE(upstream_status_error(400, "bad").retryable);
  EXPECT_TRUE(upstream_status_error(503, "down").retryable);
  EXPECT_EQ(upstream_status_error(422, "x").type, "invalid_request_error");
}

TEST(error, result_carries_value_or_error) {
  result<int> ok = 3;
  ASSERT_TRUE(ok);
  EXPECT_EQ(*ok, 3);
  result<int> bad = make_error(errc::internal, "boom");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message, "boom");
  EXPECT_THROW((void)bad.value(), std::exception);
}
