// The pure model-access rules (auth/model_access.hpp): key, team, user and organisation
// allow-lists, sentinels, access groups, wildcards, aliases, roles; and owner invalidation
// of the key cache (key_invalidation::apply).
#include "switchyard/auth/key_auth.hpp"
#include "switchyard/auth/key_invalidation.hpp"
#include "switchyard/auth/model_access.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>

namespace {

namespace auth = switchyard::auth;
namespace core = switchyard::core;
namespace net = switchyard::net;
using auth::access_denial;

const auth::access_groups groups = {{"beta", {"c", "d"}}};

auth::virtual_key key_with(std::vector<std::string> models) {
  auth::virtual_key k;
  k.models = std::move(models);
  return k;
}

TEST(model_access, lists_empty_sentinels_groups_and_wildcards) {
  EXPECT_TRUE(auth::list_allows({}, "x", groups));
  EXPECT_TRUE(auth::list_allows({"all-proxy-models"}, "x", groups));
  EXPECT_TRUE(auth::list_allows({"*"}, "x", groups));
  EXPECT_TRUE(auth::list_allows({"a", "b"}, "b", groups));
  EXPECT_FALSE(auth::list_allows({"a", "b"}, "c", groups));
  EXPECT_TRUE(auth::list_allows({"beta"}, "c", groups));
  EXPECT_FALSE(auth::list_allows({"beta"}, "a", groups));
  EXPECT_FALSE(auth::list_allows({"beta"}, "beta-x", groups));
  EXPECT_TRUE(auth::list_allows({"openai/*"}, "openai/gpt-4o", groups));
  EXPECT_FALSE(auth::list_allows({"openai/*"}, "anthropic/claude", groups));
  EXPECT_FALSE(auth::list_allows({"all-team-models"}, "a", groups)) << "not special outside a key";
}

// LiteLLM's wildcard entries: the entry as a regular expression with each '*' made ".*",
// anchored at both ends ('.' is then any one character), for the key's list and the
// team's alike.
TEST(model_access, wildcard_entries_match_the_whole_name_as_litellm_does) {
  EXPECT_TRUE(auth::list_allows({"gpt-*"}, "gpt-4o", groups));
  EXPECT_TRUE(auth::list_allows({"gpt-*"}, "gpt-", groups)) << "'*' may match nothing";
  EXPECT_FALSE(auth::list_allows({"gpt-*"}, "chatgpt-4o", groups)) << "anchored at the start";
  EXPECT_TRUE(auth::list_allows({"*-mini"}, "gpt-4o-mini", groups));
  EXPECT_FALSE(auth::list_allows({"*-mini"}, "gpt-4o-mini-2024", groups)) << "anchored at the end";
  EXPECT_TRUE(auth::list_allows({"claude-*-sonnet*"}, "claude-3-5-sonnet-20240620", groups));
  EXPECT_FALSE(auth::list_allows({"claude-*-sonnet*"}, "claude-3-opus", groups));
  EXPECT_TRUE(auth::list_allows({"bedrock/us.*"}, "bedrock/us.amazon.nova-micro-v1:0", groups));
  EXPECT_TRUE(auth::list_allows({"openai/*"}, "openai/org/deep/model", groups)) << "'*' crosses '/'";
  EXPECT_FALSE(auth::list_allows({"bedrock/*"}, "bedrockzzzz/us.amazon.nova", groups));
  EXPECT_TRUE(auth::list_allows({"gpt-4.*"}, "gpt-4o", groups)) << "'.' is any one character, as in LiteLLM";
  EXPECT_FALSE(auth::list_allows({"gpt-4.*"}, "gpt-4", groups));
  EXPECT_TRUE(auth::list_allows({"a*b*c"}, "aXbYbZc", groups)) << "backtracks past an earlier match";
  EXPECT_FALSE(auth::list_allows({"a*b*c"}, "aXbYc-", groups));
  EXPECT_FALSE(auth::list_allows({"gpt-4o"}, "gpt-4oo", groups)) << "no '*': exact names only";
  EXPECT_FALSE(auth::list_allows({"gpt-4."}, "gpt-4o", groups)) << "no '*': '.' is not special";
  auto k = key_with({"gpt-*", "openai/*"});
  EXPECT_EQ(auth::check_access(k, "gpt-4o-mini", groups), access_denial::none);
  EXPECT_EQ(auth::check_access(k, "openai/o3", groups), access_denial::none);
  EXPECT_EQ(auth::check_access(k, "claude-3", groups), access_denial::key);
  k.team = {true, {"*-mini"}};
  EXPECT_EQ(auth::check_access(k, "gpt-4o-mini", groups), access_denial::none);
  EXPECT_EQ(auth::check_access(k, "gpt-4o", groups), access_denial::team);
}

TEST(model_access, intersection_of_key_team_user_and_org_in_that_order) {
  auto k = key_with({"a", "b", "c"});
  EXPECT_EQ(auth::check_access(k, "a", groups), access_denial::none);
  EXPECT_EQ(auth::check_access(k, "z", groups), access_denial::key);
  k.team = {true, {"a", "b"}};
  EXPECT_EQ(auth::check_access(k, "c", groups), access_denial::team);
  k.user = {true, {"a"}};
  EXPECT_EQ(auth::check_access(k, "b", groups), access_denial::user);
  k.org = {true, {"b"}};
  EXPECT_EQ(auth::check_access(k, "a", groups), access_denial::org);
  k.org = {true, {}};
  EXPECT_EQ(auth::check_access(k, "a", groups), access_denial::none);
  // A team that was not found restricts nothing.
  auto missing = key_with({});
  missing.team = {false, {"a"}};
  EXPECT_EQ(auth::check_access(missing, "z", groups), access_denial::none);
}

TEST(model_access, all_team_models_defers_to_the_team) {
  auto k = key_with({"all-team-models"});
  EXPECT_EQ(auth::check_access(k, "x", groups), access_denial::none) << "no team: unrestricted";
  k.team = {true, {"beta"}};
  EXPECT_EQ(auth::check_access(k, "c", groups), access_denial::none);
  EXPECT_EQ(auth::check_access(k, "a", groups), access_denial::team);
}

TEST(model_access, aliases_key_first_then_team) {
  auto k = key_with({});
  k.aliases = {{"fast", "mid"}};
  k.team_model_aliases = {{"mid", "b"}, {"cheap", "a"}};
  EXPECT_EQ(auth::apply_model_aliases(k, "fast"), "b");
  EXPECT_EQ(auth::apply_model_aliases(k, "cheap"), "a");
  EXPECT_EQ(auth::apply_model_aliases(k, "other"), "other");
}

TEST(model_access, errors_name_the_refusing_list_in_litellm_words) {
  auto k = key_with({"a"});
  auto e = auth::access_error(k, access_denial::key, "b");
  EXPECT_EQ(e.status, 403);
  EXPECT_EQ(e.type, "key_model_access_denied");
  EXPECT_EQ(e.param, "model");
  EXPECT_EQ(e.message, "key not allowed to access model. This key can only access models=['a']. Tried to access b");
  k.team = {true, {"a", "c"}};
  auto t = auth::access_error(k, access_denial::team, "b");
  EXPECT_EQ(t.type, "team_model_access_denied");
  EXPECT_EQ(t.message,
            "team not allowed to access model. This team can only access models=['a', 'c']. Tried to access b");
  EXPECT_EQ(auth::access_error(k, access_denial::user, "b").type, "user_model_access_denied");
  EXPECT_EQ(auth::access_error(k, access_denial::org, "b").type, "org_model_access_denied");
}

TEST(model_access, principals_master_unchecked_and_filtered_lists) {
  auth::principal master;
  master.is_master = true;
  EXPECT_TRUE(auth::check_model_access(master, "anything", groups).has_value());
  auth::principal p;
  auto k = std::make_shared<auth::virtual_key>(key_with({"beta"}));
  k->team = {true, {"c"}};
  p.vkey = k;
  EXPECT_EQ(auth::allowed_models(p, {"a", "b", "c", "d"}, groups), std::vector<std::string>{"c"});
  auto denied = auth::check_model_access(p, "d", groups);
  ASSERT_FALSE(denied.has_value());
  EXPECT_EQ(denied.error().type, "team_model_access_denied");
}

TEST(model_access, roles) {
  EXPECT_EQ(auth::parse_role("proxy_admin"), auth::role::proxy_admin);
  EXPECT_EQ(auth::parse_role("internal_user_viewer"), auth::role::internal_user_viewer);
  EXPECT_EQ(auth::parse_role("customer"), auth::role::none);
  EXPECT_EQ(auth::parse_role(""), auth::role::none);
  EXPECT_TRUE(auth::valid_user_role("team"));
  EXPECT_FALSE(auth::valid_user_role("emperor"));
  auth::principal master;
  master.is_master = true;
  EXPECT_EQ(auth::role_of(master), auth::role::proxy_admin);
  auth::principal p;
  EXPECT_EQ(auth::role_of(p), auth::role::none);
  auto k = std::make_shared<auth::virtual_key>();
  k->user_role = "org_admin";
  p.vkey = k;
  EXPECT_EQ(auth::role_of(p), auth::role::org_admin);
}

TEST(model_access, blocked_team_refuses_its_keys) {
  auto k = key_with({});
  k.team_id = "t1";
  k.team_blocked = true;
  auto r = auth::check_key_usable(k, "sk-x", std::chrono::system_clock::now());
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().status, 401);
  EXPECT_NE(r.error().message.find("Team=t1 is blocked"), std::string::npos);
}

// Owner messages ("team:<id>", ...) drop every cached key of that owner, and only those.
TEST(key_invalidation, owner_messages_drop_the_owners_keys) {
  net::io_context io;
  auto lookup = [](std::string hash) -> net::awaitable<core::result<std::optional<auth::virtual_key>>> {
    auth::virtual_key k;
    k.token = hash;
    k.team_id = hash.starts_with("t1") ? "t1" : "t2";
    k.user_id = hash.ends_with("u1") ? "u1" : "u2";
    k.organization_id = "o1";
    co_return std::optional<auth::virtual_key>{k};
  };
  auth::key_cache cache(io.get_executor(), lookup);
  auto fill = [&]() {
    for (std::string h : {"t1-u1", "t1-u2", "t2-u1", "t2-u2"}) {
      net::co_spawn(io, [&cache, h]() -> net::awaitable<void> { (void)co_await cache.get(h); }, net::detached);
    }
    io.restart();
    io.run();
  };
  fill();
  ASSERT_EQ(cache.size(), 4u);
  auth::key_invalidation::apply(cache, "team:t1");
  EXPECT_EQ(cache.size(), 2u);
  auth::key_invalidation::apply(cache, "user:u1");
  EXPECT_EQ(cache.size(), 1u);
  fill();
  auth::key_invalidation::apply(cache, "org:o2");
  EXPECT_EQ(cache.size(), 4u);
  auth::key_invalidation::apply(cache, "org:o1");
  EXPECT_EQ(cache.size(), 0u);
  fill();
  auth::key_invalidation::apply(cache, "t2-u2");  // a plain hash
  EXPECT_EQ(cache.size(), 3u);
}

}  // namespace
