// Who may call which management route (admin/permissions.hpp), and what /model/info shows
// of a deployment (admin/model_info.hpp).
#include "switchyard/admin/permissions.hpp"
#include "switchyard/admin/model_info.hpp"

#include <gtest/gtest.h>

namespace {

namespace admin = switchyard::admin;
namespace auth = switchyard::auth;
using admin::scope;
using auth::role;

TEST(permissions, proxy_admin_everything_viewer_reads_only) {
  for (const char* r : {"/key/generate", "/team/new", "/organization/delete", "/budget/new", "/user/list"}) {
    EXPECT_EQ(admin::route_scope(role::proxy_admin, r), scope::all) << r;
  }
  EXPECT_EQ(admin::route_scope(role::proxy_admin_viewer, "/user/list"), scope::all);
  EXPECT_EQ(admin::route_scope(role::proxy_admin_viewer, "/key/info"), scope::all);
  EXPECT_EQ(admin::route_scope(role::proxy_admin_viewer, "/budget/info"), scope::all);
  for (const char* r : {"/key/generate", "/key/delete", "/team/new", "/user/update", "/budget/new"}) {
    EXPECT_EQ(admin::route_scope(role::proxy_admin_viewer, r), scope::denied) << r;
  }
}

TEST(permissions, internal_users_own_keys_only) {
  for (const char* r : {"/key/generate", "/key/info", "/key/update", "/key/delete", "/key/list", "/key/regenerate"}) {
    EXPECT_EQ(admin::route_scope(role::internal_user, r), scope::own) << r;
  }
  EXPECT_EQ(admin::route_scope(role::internal_user, "/key/block"), scope::denied);
  EXPECT_EQ(admin::route_scope(role::internal_user, "/team/new"), scope::denied);
  EXPECT_EQ(admin::route_scope(role::internal_user, "/user/list"), scope::denied);
  EXPECT_EQ(admin::route_scope(role::internal_user, "/user/info"), scope::own);
  EXPECT_EQ(admin::route_scope(role::internal_user_viewer, "/key/info"), scope::own);
  EXPECT_EQ(admin::route_scope(role::internal_user_viewer, "/key/list"), scope::own);
  for (const char* r : {"/key/generate", "/key/update", "/key/delete", "/team/member_add"}) {
    EXPECT_EQ(admin::route_scope(role::internal_user_viewer, r), scope::denied) << r;
  }
}

TEST(permissions, org_admin_manages_their_organisation) {
  EXPECT_EQ(admin::route_scope(role::org_admin, "/team/new"), scope::org);
  EXPECT_EQ(admin::route_scope(role::org_admin, "/user/new"), scope::org);
  EXPECT_EQ(admin::route_scope(role::org_admin, "/organization/info"), scope::org);
  EXPECT_EQ(admin::route_scope(role::org_admin, "/team/block"), scope::org);
  EXPECT_EQ(admin::route_scope(role::internal_user, "/team/block"), scope::denied);
  EXPECT_EQ(admin::route_scope(role::org_admin, "/organization/new"), scope::denied);
  EXPECT_EQ(admin::route_scope(role::org_admin, "/budget/new"), scope::denied);
  EXPECT_EQ(admin::route_scope(role::org_admin, "/key/generate"), scope::own);
}

// LiteLLM lets a team's admin members change its members: the route lets internal users
// and org_admins in, and the handler checks that they are one (or that the team is in
// the org_admin's organisation). Viewers make no writes.
TEST(permissions, team_member_update_for_team_admins) {
  EXPECT_EQ(admin::route_scope(role::proxy_admin, "/team/member_update"), scope::all);
  EXPECT_EQ(admin::route_scope(role::org_admin, "/team/member_update"), scope::org);
  EXPECT_EQ(admin::route_scope(role::internal_user, "/team/member_update"), scope::own);
  for (auto r : {role::proxy_admin_viewer, role::internal_user_viewer, role::none}) {
    EXPECT_EQ(admin::route_scope(r, "/team/member_update"), scope::denied);
  }
}

TEST(permissions, keys_without_a_user_read_themselves_and_everyone_reads_model_info) {
  EXPECT_EQ(admin::route_scope(role::none, "/key/info"), scope::own);
  EXPECT_EQ(admin::route_scope(role::none, "/key/generate"), scope::denied);
  for (auto r : {role::none, role::internal_user_viewer, role::org_admin}) {
    EXPECT_EQ(admin::route_scope(r, "/model/info"), scope::all);
  }
}

TEST(permissions, refusals_are_401_without_a_role_else_403_auth_error) {
  auto none = admin::route_denied(role::none, "/team/new", "");
  EXPECT_EQ(none.status, 401);
  EXPECT_EQ(none.type, "auth_error");
  EXPECT_NE(none.message.find("Only proxy admin"), std::string::npos);
  auto viewer = admin::route_denied(role::proxy_admin_viewer, "/team/new", "u");
  EXPECT_EQ(viewer.status, 403);
  EXPECT_EQ(viewer.type, "auth_error");
  EXPECT_NE(viewer.message.find("role= proxy_admin_viewer"), std::string::npos);
}

TEST(model_info, secrets_removed_id_kept) {
  switchyard::config::deployment d;
  d.model_name = "gpt";
  d.id = "dep-1";
  d.litellm_params = {{"model", "openai/gpt-4o"},  {"api_key", "sk-secret"}, {"api_base", "http://x"},
                      {"aws_secret_access_key", "s"}, {"vertex_credentials", "c"}, {"rpm", 5}};
  d.model_info = {{"mode", "chat"}, {"access_groups", {"beta"}}};
  auto e = admin::model_info_entry(d);
  EXPECT_EQ(e["model_name"], "gpt");
  EXPECT_EQ(e["model_info"]["id"], "dep-1");
  EXPECT_EQ(e["model_info"]["mode"], "chat");
  EXPECT_EQ(e["litellm_params"]["model"], "openai/gpt-4o");
  EXPECT_EQ(e["litellm_params"]["rpm"], 5);
  EXPECT_FALSE(e["litellm_params"].contains("api_key"));
  EXPECT_FALSE(e["litellm_params"].contains("aws_secret_access_key"));
  EXPECT_FALSE(e["litellm_params"].contains("vertex_credentials"));
  EXPECT_EQ(e.dump().find("sk-secret"), std::string::npos);
}

TEST(model_info, header_values_redacted_names_kept) {
  switchyard::config::deployment d;
  d.model_name = "gpt";
  d.id = "dep-2";
  d.litellm_params = {{"model", "openai/gpt-4o"},
                      {"headers", {{"X-Api-Token", "tok-123456"}, {"X-Team", "blue"}}},
                      {"extra_headers", {{"Authorization", "Bearer sk-hdr-secret"}}}};
  auto e = admin::model_info_entry(d);
  EXPECT_EQ(e["litellm_params"]["headers"]["X-Api-Token"], "<redacted>");
  EXPECT_EQ(e["litellm_params"]["headers"]["X-Team"], "<redacted>");
  EXPECT_EQ(e["litellm_params"]["extra_headers"]["Authorization"], "<redacted>");
  const auto text = e.dump();
  EXPECT_EQ(text.find("tok-123456"), std::string::npos);
  EXPECT_EQ(text.find("sk-hdr-secret"), std::string::npos);
}

}  // namespace
