// Route access: a key's allowed_routes and the config's allowed_routes /
// admin_only_routes (auth/route_access.hpp).
#include "switchyard/auth/route_access.hpp"

#include <gtest/gtest.h>

#include <memory>

namespace {

using namespace switchyard::auth;

principal key_with(std::vector<std::string> routes, std::string role = "internal_user") {
  auto k = std::make_shared<virtual_key>();
  k->token = "t";
  k->allowed_routes = std::move(routes);
  k->user_id = "u";
  k->user_role = std::move(role);
  k->user.exists = true;
  principal p;
  p.vkey = k;
  return p;
}

TEST(route_access, patterns_paths_prefixes_and_groups) {
  EXPECT_TRUE(route_matches("/v1/chat/completions", "/v1/chat/completions"));
  EXPECT_FALSE(route_matches("/v1/chat/completions", "/v1/chat/completions/x"));
  EXPECT_TRUE(route_matches("/key/*", "/key/info"));
  EXPECT_FALSE(route_matches("/key/*", "/team/info"));
  EXPECT_TRUE(route_matches("llm_api_routes", "/v1/chat/completions"));
  EXPECT_TRUE(route_matches("llm_api_routes", "/v1/messages"));
  EXPECT_TRUE(route_matches("llm_api_routes", "/v1/responses/resp_1"));
  EXPECT_FALSE(route_matches("llm_api_routes", "/key/info"));
  EXPECT_TRUE(route_matches("info_routes", "/key/info"));
  // The informational key routes too (a read_only key may read several keys and check its own).
  EXPECT_TRUE(route_matches("info_routes", "/v2/key/info"));
  EXPECT_TRUE(route_matches("info_routes", "/key/health"));
  EXPECT_FALSE(route_matches("info_routes", "/key/bulk_update"));
  EXPECT_TRUE(route_matches("management_routes", "/team/new"));
  EXPECT_TRUE(route_matches("spend_tracking_routes", "/global/spend/report"));
  EXPECT_FALSE(route_matches("no_such_group", "/v1/chat/completions"));
  EXPECT_TRUE(is_route_pattern("/x"));
  EXPECT_TRUE(is_route_pattern("info_routes"));
  EXPECT_FALSE(is_route_pattern("chat"));
}

TEST(route_access, key_allowed_routes_as_litellm) {
  const route_rules none;
  auto p = key_with({"llm_api_routes"});
  EXPECT_TRUE(check_route(p, "/v1/chat/completions", none));
  auto r = check_route(p, "/key/info", none);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().status, 403);
  EXPECT_EQ(r.error().type, "auth_error");
  EXPECT_EQ(r.error().message,
            "Virtual key is not allowed to call this route. Only allowed to call routes: ['llm_api_routes']. "
            "Tried to call route: /key/info");
  EXPECT_TRUE(check_route(key_with({}), "/key/info", none)) << "no list: every route";
  principal master;
  master.is_master = true;
  EXPECT_TRUE(check_route(master, "/anything", route_rules{{"/v1/models"}, {"/anything"}}));
}

TEST(route_access, config_lists_bind_everyone_but_admins) {
  const route_rules rules{{"llm_api_routes", "/key/info"}, {"/v1/embeddings"}};
  auto user = key_with({});
  EXPECT_TRUE(check_route(user, "/v1/chat/completions", rules));
  EXPECT_TRUE(check_route(user, "/key/info", rules));
  auto team = check_route(user, "/team/list", rules);
  ASSERT_FALSE(team);
  EXPECT_EQ(team.error().status, 403);
  auto emb = check_route(user, "/v1/embeddings", rules);
  ASSERT_FALSE(emb);
  EXPECT_NE(emb.error().message.find("admin_only_routes"), std::string::npos);
  auto admin = key_with({}, "proxy_admin");
  EXPECT_TRUE(check_route(admin, "/team/list", rules));
  EXPECT_TRUE(check_route(admin, "/v1/embeddings", rules));
  // A key's own list still binds an admin's key.
  EXPECT_FALSE(check_route(key_with({"/v1/models"}, "proxy_admin"), "/team/list", rules));
}

}  // namespace
