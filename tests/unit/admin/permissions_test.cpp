// Who may call which management route (admin/permissions.hpp), and what /model/info shows
// of a deployment (admin/model_info.hpp).
#include "switchyard/admin/permissions.hpp"
#include "switchyard/admin/model_info.hpp"
#include "switchyard/config/provider_registry.hpp"
#include "switchyard/spend/prices.hpp"

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
  auto e = admin::model_info_entry(d, nullptr);
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
  auto e = admin::model_info_entry(d, nullptr);
  EXPECT_EQ(e["litellm_params"]["headers"]["X-Api-Token"], "<redacted>");
  EXPECT_EQ(e["litellm_params"]["headers"]["X-Team"], "<redacted>");
  EXPECT_EQ(e["litellm_params"]["extra_headers"]["Authorization"], "<redacted>");
  const auto text = e.dump();
  EXPECT_EQ(text.find("tok-123456"), std::string::npos);
  EXPECT_EQ(text.find("sk-hdr-secret"), std::string::npos);
}

// The price map LiteLLM's get_model_info reads, for the entries below.
switchyard::spend::price_table test_prices() {
  auto t = switchyard::spend::price_table::parse(R"({
    "gpt-4o": {"max_tokens": 16384, "max_input_tokens": 128000, "max_output_tokens": 16384,
               "input_cost_per_token": 2.5e-06, "output_cost_per_token": 1e-05,
               "cache_read_input_token_cost": 1.25e-06, "litellm_provider": "openai", "mode": "chat",
               "supports_vision": true, "supports_function_calling": true,
               "supports_parallel_function_calling": true},
    "claude-x": {"max_input_tokens": 200000, "max_output_tokens": 64000, "input_cost_per_token": 3e-06,
                 "output_cost_per_token": 1.5e-05, "litellm_provider": "anthropic", "mode": "chat",
                 "supports_reasoning": true, "supports_vision": false}
  })", "test");
  EXPECT_TRUE(t.has_value());
  return t ? std::move(*t) : switchyard::spend::price_table{};
}

switchyard::config::deployment deployment_of(const char* group, const char* provider, const char* model) {
  switchyard::config::deployment d;
  d.model_name = group;
  d.id = std::string(group) + "-" + model;
  d.provider = switchyard::config::find_provider(provider);
  d.model = std::string(provider) + "/" + model;
  d.upstream_model = model;
  d.litellm_params = {{"model", d.model}};
  d.model_info = nlohmann::json::object();
  return d;
}

TEST(model_info, the_price_maps_fields_under_the_deployments_own) {
  const auto prices = test_prices();
  auto d = deployment_of("gpt", "openai", "gpt-4o");
  d.litellm_params["input_cost_per_token"] = 1e-06;  // the deployment's own price wins
  d.model_info = {{"max_input_tokens", 1000}, {"mode", "completion"}};
  const auto info = admin::model_info_entry(d, &prices)["model_info"];
  EXPECT_EQ(info["id"], "gpt-gpt-4o");
  EXPECT_EQ(info["max_input_tokens"], 1000) << info.dump();
  EXPECT_EQ(info["mode"], "completion");
  EXPECT_EQ(info["max_output_tokens"], 16384);
  EXPECT_EQ(info["max_tokens"], 16384);
  EXPECT_DOUBLE_EQ(info["input_cost_per_token"].get<double>(), 1e-06);
  EXPECT_DOUBLE_EQ(info["output_cost_per_token"].get<double>(), 1e-05);
  EXPECT_DOUBLE_EQ(info["cache_read_input_token_cost"].get<double>(), 1.25e-06);
  EXPECT_EQ(info["litellm_provider"], "openai");
  EXPECT_EQ(info["supports_vision"], true);
  EXPECT_EQ(info["supports_function_calling"], true);
  EXPECT_EQ(info["db_model"], false);

  // A model the map does not know: the config's model_info alone.
  const auto unknown = admin::model_info_entry(deployment_of("x", "openai", "no-such-model"), &prices)["model_info"];
  EXPECT_TRUE(unknown["mode"].is_null()) << unknown.dump();
  EXPECT_FALSE(unknown.contains("max_input_tokens"));
  EXPECT_FALSE(unknown.contains("litellm_provider"));
}

TEST(model_info, a_groups_entry_takes_the_largest_bounds_and_prices_and_any_deployments_capability) {
  const auto prices = test_prices();
  auto a = deployment_of("chat", "openai", "gpt-4o");
  a.tpm = 1000;
  a.rpm = 10;
  auto b = deployment_of("chat", "anthropic", "claude-x");
  b.rpm = 5;
  auto c = deployment_of("chat", "openai", "no-such-model");
  c.model_info = {{"max_output_tokens", 100000}};
  const auto e = admin::model_group_entry("chat", {&a, &b, &c}, &prices);
  EXPECT_EQ(e["model_group"], "chat");
  EXPECT_EQ(e["providers"], nlohmann::json({"openai", "anthropic"})) << e.dump();
  EXPECT_EQ(e["max_input_tokens"], 200000);
  EXPECT_EQ(e["max_output_tokens"], 100000);
  EXPECT_DOUBLE_EQ(e["input_cost_per_token"].get<double>(), 3e-06);
  EXPECT_DOUBLE_EQ(e["output_cost_per_token"].get<double>(), 1.5e-05);
  EXPECT_EQ(e["mode"], "chat");
  EXPECT_EQ(e["tpm"], 1000);
  EXPECT_EQ(e["rpm"], 15);
  EXPECT_EQ(e["supports_vision"], true);
  EXPECT_EQ(e["supports_function_calling"], true);
  EXPECT_EQ(e["supports_parallel_function_calling"], true);
  EXPECT_EQ(e["supports_reasoning"], true);
  EXPECT_EQ(e["supports_web_search"], false);
  EXPECT_EQ(e["supports_url_context"], false);

  // Nothing known: nulls, LiteLLM's defaults.
  const auto bare = admin::model_group_entry("bare", {&c}, nullptr);
  EXPECT_TRUE(bare["max_input_tokens"].is_null());
  EXPECT_EQ(bare["max_output_tokens"], 100000);
  EXPECT_TRUE(bare["input_cost_per_token"].is_null());
  EXPECT_TRUE(bare["tpm"].is_null());
  EXPECT_EQ(bare["mode"], "chat");
  EXPECT_EQ(bare["supports_vision"], false);
}

}  // namespace
