// The spend API's query parameters (src/admin/spend_params.hpp): days, ranges, positive
// integers and booleans, each bad value a 400 naming its parameter; and the spend
// routes' access rules.
#include "spend_params.hpp"

#include "switchyard/admin/permissions.hpp"

#include <gtest/gtest.h>

namespace {

namespace admin = switchyard::admin;
using admin::scope;
using switchyard::auth::role;

TEST(spend_params, days_are_real_calendar_days) {
  EXPECT_EQ(admin::parse_day("2024-02-29"), "2024-02-29");
  for (const char* bad : {"2023-02-29", "2024-13-01", "2024-00-10", "2024-1-01", "24-01-01", "2024-01-01T00:00",
                          "-001-01-01", "2024/01/01", "", "yesterday", "2024-01-3x"}) {
    EXPECT_FALSE(admin::parse_day(bad)) << bad;
  }
  EXPECT_EQ(admin::next_day("2024-02-28"), "2024-02-29");
  EXPECT_EQ(admin::next_day("2023-12-31"), "2024-01-01");
  auto t = std::chrono::sys_days(std::chrono::year(2024) / 3 / 1) + std::chrono::hours(23);
  EXPECT_EQ(admin::day_of(t), "2024-03-01");
  EXPECT_EQ(admin::day_of(t, -1), "2024-02-29");
}

TEST(spend_params, a_range_is_both_dates_in_order) {
  auto r = admin::day_range_param("start_date=2024-05-01&end_date=2024-05-31", true);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->start, "2024-05-01");
  EXPECT_EQ(r->end, "2024-05-31");
  auto same = admin::day_range_param("start_date=2024-05-01&end_date=2024-05-01", true);
  EXPECT_TRUE(same);
  auto none = admin::day_range_param("", false);
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->given());
  struct bad_case {
    const char* query;
    bool required;
    const char* param;
  };
  for (const auto& [query, required, param] : {bad_case{"", true, "start_date"},
                                               bad_case{"start_date=2024-05-01", false, "end_date"},
                                               bad_case{"end_date=2024-05-01", false, "start_date"},
                                               bad_case{"start_date=2024-05-32&end_date=2024-06-01", false, "start_date"},
                                               bad_case{"start_date=2024-05-01&end_date=june", false, "end_date"},
                                               bad_case{"start_date=2024-05-02&end_date=2024-05-01", true, "end_date"},
                                               bad_case{"start_date=2000-01-01&end_date=2020-01-01", true, "end_date"}}) {
    auto e = admin::day_range_param(query, required);
    ASSERT_FALSE(e) << query;
    EXPECT_EQ(e.error().status, 400) << query;
    EXPECT_EQ(e.error().param, param) << query;
  }
}

TEST(spend_params, integers_are_positive_and_bounded) {
  EXPECT_EQ(*admin::positive_param("", "page", 1, 10), 1);
  EXPECT_EQ(*admin::positive_param("page=", "page", 1, 10), 1);
  EXPECT_EQ(*admin::positive_param("page=10", "page", 1, 10), 10);
  for (const char* q : {"page=0", "page=-1", "page=11", "page=1.5", "page=abc", "page=2x", "page=99999999999999"}) {
    auto e = admin::positive_param(q, "page", 1, 10);
    ASSERT_FALSE(e) << q;
    EXPECT_EQ(e.error().status, 400) << q;
    EXPECT_EQ(e.error().param, "page") << q;
  }
}

TEST(spend_params, booleans_and_keys) {
  EXPECT_TRUE(*admin::bool_param("", "summarize", true));
  EXPECT_FALSE(*admin::bool_param("summarize=false", "summarize", true));
  EXPECT_TRUE(*admin::bool_param("summarize=True", "summarize", false));
  auto e = admin::bool_param("summarize=maybe", "summarize", true);
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().status, 400);
  EXPECT_EQ(admin::key_param("api_key=sk-abc"), admin::token_of("sk-abc"));
  EXPECT_EQ(admin::key_param("api_key=0123abcd"), "0123abcd") << "a hash is used as it is";
  EXPECT_EQ(admin::key_param(""), "");
}

TEST(spend_params, spend_route_rules) {
  // Reports everyone with a user may read, narrowed to what is theirs.
  for (const char* r : {"/spend/logs", "/global/spend", "/global/spend/keys", "/global/spend/models",
                        "/user/daily/activity", "/team/daily/activity"}) {
    EXPECT_EQ(admin::route_scope(role::proxy_admin, r), scope::all) << r;
    EXPECT_EQ(admin::route_scope(role::proxy_admin_viewer, r), scope::all) << r;
    EXPECT_EQ(admin::route_scope(role::org_admin, r), scope::org) << r;
    EXPECT_EQ(admin::route_scope(role::internal_user, r), scope::own) << r;
    EXPECT_EQ(admin::route_scope(role::internal_user_viewer, r), scope::own) << r;
    EXPECT_EQ(admin::route_scope(role::none, r), scope::denied) << r;
  }
  // Reports across teams, customers and tags: the admins only.
  for (const char* r : {"/spend/tags", "/global/spend/teams", "/global/spend/report"}) {
    EXPECT_EQ(admin::route_scope(role::proxy_admin_viewer, r), scope::all) << r;
    EXPECT_EQ(admin::route_scope(role::org_admin, r), scope::denied) << r;
    EXPECT_EQ(admin::route_scope(role::internal_user, r), scope::denied) << r;
  }
  // Pricing a request reveals nothing: any valid key.
  EXPECT_EQ(admin::route_scope(role::none, "/spend/calculate"), scope::all);
  EXPECT_EQ(admin::route_scope(role::internal_user_viewer, "/spend/calculate"), scope::all);
}

}  // namespace
