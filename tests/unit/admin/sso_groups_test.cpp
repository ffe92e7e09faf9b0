// The pure parts of team membership from a groups claim: reading the claim (a list, one
// string, a dotted path, everything malformed) and the settings that drive it
// (team_ids_jwt_field, default_team_params, default_internal_user_params.teams).
#include "switchyard/admin/sso.hpp"

#include <gtest/gtest.h>

namespace {

namespace admin = switchyard::admin;
using json = nlohmann::json;

std::vector<std::string> ids(const admin::sso_groups& g) {
  EXPECT_TRUE(g.ids.has_value()) << g.problem;
  return g.ids.value_or(std::vector<std::string>{});
}

TEST(sso_groups, a_list_or_one_string_in_claim_order_without_repeats) {
  EXPECT_EQ(ids(admin::read_sso_groups(json{{"groups", {"b", "a", "b", "c"}}}, "groups")),
            (std::vector<std::string>{"b", "a", "c"}));
  EXPECT_EQ(ids(admin::read_sso_groups(json{{"groups", "only"}}, "groups")), (std::vector<std::string>{"only"}));
  const auto empty = admin::read_sso_groups(json{{"groups", json::array()}}, "groups");
  ASSERT_TRUE(empty.ids.has_value());
  EXPECT_TRUE(empty.ids->empty());  // known to be none: SSO memberships are left
  EXPECT_TRUE(empty.problem.empty());
}

TEST(sso_groups, a_dotted_path_reaches_into_objects_and_a_dotted_name_is_found_whole) {
  json claims = {{"realm_access", {{"roles", {"r1", "r2"}}}}, {"https://example.com/groups", {"g1"}}};
  EXPECT_EQ(ids(admin::read_sso_groups(claims, "realm_access.roles")), (std::vector<std::string>{"r1", "r2"}));
  EXPECT_EQ(ids(admin::read_sso_groups(claims, "https://example.com/groups")), (std::vector<std::string>{"g1"}));
}

TEST(sso_groups, absent_is_unknown_without_a_problem) {
  for (const auto& claims : {json{{"sub", "x"}}, json{{"groups", nullptr}}, json::object()}) {
    const auto g = admin::read_sso_groups(claims, "groups");
    EXPECT_FALSE(g.ids.has_value());
    EXPECT_TRUE(g.problem.empty()) << g.problem;
  }
  EXPECT_FALSE(admin::read_sso_groups(json{{"groups", {"a"}}}, "").ids.has_value());  // not configured
}

TEST(sso_groups, entra_overage_is_unknown_with_a_problem) {
  json claims = {{"_claim_names", {{"groups", "src1"}}}, {"_claim_sources", {{"src1", {{"endpoint", "x"}}}}}};
  const auto g = admin::read_sso_groups(claims, "groups");
  EXPECT_FALSE(g.ids.has_value());
  EXPECT_NE(g.problem.find("groups overage"), std::string::npos) << g.problem;
}

TEST(sso_groups, malformed_claims_are_unknown_with_the_reason) {
  const std::pair<json, std::string> cases[] = {
      {json{{"groups", 42}}, "claim 'groups' is a number, not a list of team ids or one team id"},
      {json{{"groups", true}}, "claim 'groups' is a boolean, not a list of team ids or one team id"},
      {json{{"groups", {{"a", 1}}}}, "claim 'groups' is an object, not a list of team ids or one team id"},
      {json{{"groups", {"a", 7}}}, "claim 'groups' holds a number where a team id (a non-empty string of at most 256 bytes) belongs"},
      {json{{"groups", {"a", json::array()}}}, "claim 'groups' holds a list where a team id (a non-empty string of at most 256 bytes) belongs"},
      {json{{"groups", {"a", nullptr}}}, "claim 'groups' holds null where a team id (a non-empty string of at most 256 bytes) belongs"},
      {json{{"groups", ""}}, "claim 'groups' holds a string of 0 bytes where a team id (a non-empty string of at most 256 bytes) belongs"},
      {json{{"groups", {std::string(257, 'x')}}}, "claim 'groups' holds a string of 257 bytes where a team id (a non-empty string of at most 256 bytes) belongs"},
  };
  for (const auto& [claims, problem] : cases) {
    const auto g = admin::read_sso_groups(claims, "groups");
    EXPECT_FALSE(g.ids.has_value()) << claims.dump();
    EXPECT_EQ(g.problem, problem) << claims.dump();
  }
  EXPECT_TRUE(admin::read_sso_groups(json{{"groups", {std::string(256, 'x')}}}, "groups").ids.has_value());
}


auto settings(const json& general, const json& litellm) {
  return admin::sso_settings::from(general, litellm, "sk-master", [](const char*) { return std::string(); });
}

TEST(sso_team_settings, read_from_litellm_jwtauth_and_litellm_settings) {
  json general = {{"litellm_jwtauth", {{"team_ids_jwt_field", "realm_access.roles"}}}};
  json team_params = {{"max_budget", 10},       {"budget_duration", "30d"},
                      {"models", {"demo"}},      {"tpm_limit", 5},
                      {"rpm_limit", 2},          {"team_member_permissions", {"/key/generate"}},
                      {"team_alias", "x"}};
  json detailed = {{"team_id", "t2"}, {"user_role", "admin"}, {"max_budget_in_team", 3}};
  json litellm = json::object();
  litellm["default_team_params"] = team_params;
  litellm["default_internal_user_params"]["teams"] = json::array({"plain", detailed});
  auto s = settings(general, litellm);
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s->team_ids_claim, "realm_access.roles");
  EXPECT_EQ(s->default_team_params,
            (json{{"max_budget", 10}, {"budget_duration", "30d"}, {"models", {"demo"}}, {"tpm_limit", 5}, {"rpm_limit", 2},
                  {"team_member_permissions", {"/key/generate"}}}));  // team_alias: not a default team field
  ASSERT_EQ(s->default_teams.size(), 2u);
  EXPECT_EQ(s->default_teams[0].team_id, "plain");
  EXPECT_EQ(s->default_teams[0].role, "user");
  EXPECT_FALSE(s->default_teams[0].max_budget_in_team);
  EXPECT_EQ(s->default_teams[1].team_id, "t2");
  EXPECT_EQ(s->default_teams[1].role, "admin");
  EXPECT_EQ(s->default_teams[1].max_budget_in_team, 3.0);

  auto none = settings(json::object(), json::object());
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->team_ids_claim.empty());
  EXPECT_TRUE(none->default_teams.empty());
}

TEST(sso_team_settings, bad_values_are_startup_errors_naming_the_key) {
  const std::pair<std::pair<json, json>, std::string> cases[] = {
      {{json{{"litellm_jwtauth", {{"team_ids_jwt_field", 3}}}}, json::object()},
       "general_settings.litellm_jwtauth.team_ids_jwt_field: expected a string (a claim name)"},
      {{json::object(), json{{"default_team_params", "big"}}}, "litellm_settings.default_team_params: expected a mapping"},
      {{json::object(), json{{"default_team_params", {{"models", {"a", 1}}}}}},
       "litellm_settings.default_team_params.models: expected an array of strings"},
      {{json::object(), json{{"default_team_params", {{"budget_duration", "monthly"}}}}},
       "litellm_settings.default_team_params.budget_duration: expected a duration such as \"30s\", \"30m\", \"30h\", "
       "\"30d\", \"2w\" or \"1mo\""},
      {{json::object(), json{{"default_internal_user_params", {{"teams", "t1"}}}}},
       "litellm_settings.default_internal_user_params.teams: expected a list of team ids or {team_id, user_role, "
       "max_budget_in_team}"},
      {{json::object(), json{{"default_internal_user_params", {{"teams", {{{"user_role", "user"}}}}}}}},
       "litellm_settings.default_internal_user_params.teams[0].team_id: expected a team id (a non-empty string)"},
      {{json::object(), json{{"default_internal_user_params", {{"teams", {{{"team_id", "t"}, {"user_role", "owner"}}}}}}}},
       "litellm_settings.default_internal_user_params.teams[0].user_role: expected \"user\" or \"admin\""},
      {{json::object(), json{{"default_internal_user_params", {{"teams", {"ok", 5}}}}}},
       "litellm_settings.default_internal_user_params.teams[1]: expected a team id or {team_id, user_role, "
       "max_budget_in_team}, got a number"},
  };
  for (const auto& [in, message] : cases) {
    auto s = settings(in.first, in.second);
    ASSERT_FALSE(s) << message;
    EXPECT_EQ(s.error().message, message);
  }
}

}  // namespace
