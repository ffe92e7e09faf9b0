// The pure helpers of the key management API: duration parsing, key format, key_name,
// token_of, and the field-by-field request validation of /key/generate and /key/update.
#include "switchyard/admin/keys.hpp"
#include "switchyard/core/ids.hpp"

#include "admin_util.hpp"

#include <gtest/gtest.h>

#include <regex>
#include <set>

namespace {

namespace admin = switchyard::admin;
namespace core = switchyard::core;
using json = nlohmann::json;
using namespace std::chrono;

// 2026-01-31T10:20:30Z
const admin::sys_time t0 = sys_days{year{2026} / January / 31} + hours(10) + minutes(20) + seconds(30);

TEST(key_duration, units) {
  EXPECT_EQ(admin::add_duration("30s", t0), t0 + seconds(30));
  EXPECT_EQ(admin::add_duration("30m", t0), t0 + minutes(30));
  EXPECT_EQ(admin::add_duration("30h", t0), t0 + hours(30));
  EXPECT_EQ(admin::add_duration("30d", t0), t0 + days(30));
  EXPECT_EQ(admin::add_duration("0s", t0), t0);
  EXPECT_EQ(admin::add_duration("2w", t0), t0 + days(14));
}

// docs/budgets.md lists <n>w and LiteLLM's duration_in_seconds takes it, but every field
// checked through add_duration refused it with a 422.
TEST(key_duration, weeks_are_accepted_everywhere) {
  auto p = admin::key_patch_from(json{{"duration", "1w"}, {"budget_duration", "1w"}}, t0);
  ASSERT_TRUE(p.has_value()) << p.error().message;
  EXPECT_EQ((*p)["expires"], "2026-02-07T10:20:30.000Z");
  EXPECT_EQ((*p)["budget_reset_at"], "2026-02-02T00:00:00.000Z") << "1w: the next Monday, midnight (docs/budgets.md)";
  for (auto e : {admin::entity::user, admin::entity::team, admin::entity::budget}) {
    auto t = admin::patch_from(json{{"budget_duration", "2w"}}, e, t0);
    ASSERT_TRUE(t.has_value()) << t.error().message;
    EXPECT_EQ((*t)["budget_reset_at"], "2026-02-14T00:00:00.000Z") << "other Nw: midnight + 7N days";
  }
  EXPECT_TRUE(admin::add_duration("5228w", t0).has_value());
  EXPECT_FALSE(admin::add_duration("5229w", t0).has_value()) << "past 100 years";
}

TEST(key_duration, months_are_calendar_months_clamped_to_the_month_end) {
  EXPECT_EQ(admin::iso_utc(*admin::add_duration("1mo", t0)), "2026-02-28T10:20:30.000Z");
  EXPECT_EQ(admin::iso_utc(*admin::add_duration("2mo", t0)), "2026-03-31T10:20:30.000Z");
  EXPECT_EQ(admin::iso_utc(*admin::add_duration("12mo", t0)), "2027-01-31T10:20:30.000Z");
}

// Found by management_body_fuzz: "99999d" overflowed the clock (nanoseconds end in 2262).
// Durations are capped at 100 years; "never" is null.
TEST(key_duration, longer_than_a_century_is_rejected) {
  EXPECT_TRUE(admin::add_duration("36600d", t0).has_value());
  EXPECT_TRUE(admin::add_duration("1200mo", t0).has_value());
  for (const char* bad : {"99999d", "999999d", "999999h", "1201mo", "999999mo"}) {
    EXPECT_FALSE(admin::add_duration(bad, t0).has_value()) << bad;
  }
  auto patch = admin::key_patch_from(json{{"duration", "99999d"}}, t0);
  ASSERT_FALSE(patch);
  EXPECT_EQ(patch.error().status, 422);
  EXPECT_EQ(patch.error().param, "duration");
}

TEST(key_duration, malformed_is_rejected) {
  for (const char* bad : {"", "s", "30", "30x", "30 s", "-1d", "1.5h", "30S", "30dd", "1m0", "9999999d"}) {
    EXPECT_FALSE(admin::add_duration(bad, t0).has_value()) << bad;
  }
}

TEST(key_format, generated_keys_are_sk_plus_128_bits_hex_and_unique) {
  std::set<std::string> seen;
  const std::regex shape("^sk-[0-9a-f]{32}$");
  for (int i = 0; i < 200; ++i) {
    auto k = admin::generate_key_string();
    EXPECT_TRUE(std::regex_match(k, shape)) << k;
    EXPECT_TRUE(seen.insert(k).second) << "duplicate " << k;
  }
}

TEST(key_format, key_name_and_token) {
  EXPECT_EQ(admin::key_name_of("sk-0123456789abcdef"), "sk-...cdef");
  EXPECT_EQ(admin::token_of("sk-abc"), core::sha256_hex("sk-abc")) << "the hash of the whole string, sk- included";
  std::string hash(64, 'a');
  EXPECT_EQ(admin::token_of(hash), hash) << "a value without sk- is taken to be a hash";
  EXPECT_EQ(admin::iso_utc(t0 + milliseconds(7)), "2026-01-31T10:20:30.007Z");
}

// Cutting four bytes split "é" (2 bytes) and the invalid UTF-8 made the insert fail in
// Postgres (a 500): the name keeps the last four characters, as LiteLLM's key[-4:].
TEST(key_format, key_name_keeps_whole_characters) {
  EXPECT_EQ(admin::key_name_of("sk-\xC3\xA9" "123"), "sk-...\xC3\xA9" "123");
  EXPECT_EQ(admin::key_name_of("sk-ab\xE2\x82\xAC" "xy"), "sk-...b\xE2\x82\xAC" "xy");
  EXPECT_EQ(admin::key_name_of("sk-\xF0\x9F\x94\x91\xF0\x9F\x94\x91\xF0\x9F\x94\x91\xF0\x9F\x94\x91"),
            "sk-...\xF0\x9F\x94\x91\xF0\x9F\x94\x91\xF0\x9F\x94\x91\xF0\x9F\x94\x91");
  EXPECT_EQ(admin::key_name_of("ab"), "sk-...ab");
  EXPECT_EQ(admin::key_name_of(""), "sk-...");
}

TEST(key_request, patch_keeps_known_fields_and_converts_duration) {
  json body = {{"key_alias", "ci"},       {"models", {"a"}},         {"max_budget", 2.5},
               {"tpm_limit", 100},        {"metadata", {{"x", 1}}},  {"duration", "30s"},
               {"budget_duration", "1d"}, {"tags", {"t1"}},          {"unknown_field", 1},
               {"key", "sk-not-in-patch"}, {"user_id", nullptr}};
  auto p = admin::key_patch_from(body, t0);
  ASSERT_TRUE(p.has_value()) << p.error().message;
  EXPECT_EQ((*p)["key_alias"], "ci");
  EXPECT_EQ((*p)["models"], json({"a"}));
  EXPECT_EQ((*p)["expires"], "2026-01-31T10:21:00.000Z");
  EXPECT_EQ((*p)["budget_reset_at"], "2026-02-01T00:00:00.000Z") << "1d: the next midnight (LiteLLM's schedule)";
  EXPECT_EQ((*p)["metadata"], json({{"x", 1}, {"tags", {"t1"}}}));
  EXPECT_TRUE((*p)["user_id"].is_null()) << "nullable columns take null";
  EXPECT_FALSE(p->contains("unknown_field"));
  EXPECT_FALSE(p->contains("key"));
  EXPECT_FALSE(p->contains("duration"));

  auto never = admin::key_patch_from(json{{"duration", nullptr}}, t0);
  ASSERT_TRUE(never.has_value());
  EXPECT_TRUE((*never)["expires"].is_null()) << "duration null: never expires";
  auto nulls = admin::key_patch_from(json{{"models", nullptr}, {"metadata", nullptr}}, t0);
  ASSERT_TRUE(nulls.has_value());
  EXPECT_TRUE(nulls->empty()) << "null for a non-nullable field means: not given";
}

// Tags without metadata built {"tags": [...]} as the whole new metadata, dropping the
// stored members; they are handed to the repository as metadata_tags, which it merges
// into the stored metadata. With metadata, that metadata (which replaces the stored one)
// takes them.
TEST(key_request, tags_alone_are_merged_into_the_stored_metadata) {
  auto alone = admin::key_patch_from(json{{"tags", {"y"}}}, t0);
  ASSERT_TRUE(alone.has_value()) << alone.error().message;
  EXPECT_FALSE(alone->contains("metadata")) << alone->dump();
  EXPECT_EQ((*alone)["metadata_tags"], json({"y"}));
  auto both = admin::key_patch_from(json{{"tags", {"y"}}, {"metadata", {{"b", 2}}}}, t0);
  ASSERT_TRUE(both.has_value());
  EXPECT_EQ((*both)["metadata"], json({{"b", 2}, {"tags", {"y"}}}));
  EXPECT_FALSE(both->contains("metadata_tags"));
  auto bad = admin::key_patch_from(json{{"tags", {1}}}, t0);
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().param, "tags");
}

TEST(key_request, wrong_types_are_422_naming_the_field) {
  const std::vector<std::pair<json, std::string>> cases = {
      {{{"models", "a"}}, "models"},
      {{{"models", {"a", 1}}}, "models"},
      {{{"max_budget", "10"}}, "max_budget"},
      {{{"tpm_limit", 1.5}}, "tpm_limit"},
      {{{"rpm_limit", true}}, "rpm_limit"},
      {{{"metadata", json::array()}}, "metadata"},
      {{{"aliases", "x"}}, "aliases"},
      {{{"blocked", "yes"}}, "blocked"},
      {{{"key_alias", 5}}, "key_alias"},
      {{{"duration", "soon"}}, "duration"},
      {{{"duration", 30}}, "duration"},
      {{{"budget_duration", "1y"}}, "budget_duration"},
      {{{"tags", "t"}}, "tags"},
  };
  for (const auto& [body, field] : cases) {
    auto p = admin::key_patch_from(body, t0);
    ASSERT_FALSE(p.has_value()) << body.dump();
    EXPECT_EQ(p.error().status, 422) << body.dump();
    EXPECT_EQ(p.error().param, field) << body.dump();
    EXPECT_NE(p.error().message.find(field), std::string::npos) << p.error().message;
  }
  auto not_object = admin::key_patch_from(json::array(), t0);
  ASSERT_FALSE(not_object.has_value());
  EXPECT_EQ(not_object.error().status, 400);
}

// Integers past their column's range reached Postgres and came back as a 500 quoting the
// database ("out of range for type bigint"): tpm_limit and rpm_limit are bigint columns,
// max_parallel_requests an integer one, on every entity that has them.
TEST(key_request, integers_past_their_column_range_are_422_naming_the_field) {
  const json bigint_max = INT64_MAX;
  const json bigint_past = json::parse("9223372036854775808");  // kept by nlohmann as unsigned
  const json int_max = INT32_MAX;
  const json int_past = std::int64_t{3000000000};
  for (auto e : {admin::entity::key, admin::entity::user, admin::entity::team, admin::entity::budget}) {
    for (const auto& f : admin::fields_of(e)) {
      const std::string name = f.name;
      const bool bigint = name == "tpm_limit" || name == "rpm_limit";
      if (!bigint && name != "max_parallel_requests") {
        continue;
      }
      const json fits = bigint ? bigint_max : int_max;
      const json past = bigint ? bigint_past : int_past;
      auto ok = admin::patch_from(json{{name, fits}}, e, t0);
      ASSERT_TRUE(ok.has_value()) << name << ": " << ok.error().message;
      EXPECT_EQ((*ok)[name], fits);
      auto bad = admin::patch_from(json{{name, past}}, e, t0);
      ASSERT_FALSE(bad.has_value()) << name << " " << past.dump();
      EXPECT_EQ(bad.error().status, 422);
      EXPECT_EQ(bad.error().param, name);
      EXPECT_NE(bad.error().message.find(name), std::string::npos) << bad.error().message;
    }
  }
  auto below = admin::key_patch_from(json{{"max_parallel_requests", std::int64_t{-3000000000}}}, t0);
  ASSERT_FALSE(below.has_value());
  EXPECT_EQ(below.error().param, "max_parallel_requests");
  auto huge = admin::key_patch_from(json::parse(R"({"tpm_limit": 18446744073709551615})"), t0);
  ASSERT_FALSE(huge.has_value());
  EXPECT_EQ(huge.error().param, "tpm_limit");
}

// Negative budgets and limits were stored (LiteLLM refuses them: "max_budget cannot be
// negative. Received: -5"); 422 naming the field on every entity that has them.
TEST(key_request, negative_budgets_and_limits_are_422_naming_the_field) {
  const std::set<std::string> checked = {"max_budget", "soft_budget", "tpm_limit", "rpm_limit",
                                         "max_parallel_requests"};
  std::size_t seen = 0;
  for (auto e : {admin::entity::key, admin::entity::user, admin::entity::team, admin::entity::budget}) {
    for (const auto& f : admin::fields_of(e)) {
      const std::string name = f.name;
      if (checked.count(name) == 0) {
        continue;
      }
      ++seen;
      auto bad = admin::patch_from(json{{name, -5}}, e, t0);
      ASSERT_FALSE(bad.has_value()) << name;
      EXPECT_EQ(bad.error().status, 422);
      EXPECT_EQ(bad.error().param, name);
      EXPECT_EQ(bad.error().message, name + " cannot be negative. Received: -5");
      EXPECT_TRUE(admin::patch_from(json{{name, 0}}, e, t0).has_value()) << name << ": 0 is allowed";
      EXPECT_TRUE(admin::patch_from(json{{name, nullptr}}, e, t0).has_value()) << name << ": null is allowed";
    }
  }
  EXPECT_EQ(seen, 5u + 3u + 5u + 5u) << "key, user (max_budget, tpm, rpm), team, budget";
  auto fraction = admin::key_patch_from(json{{"max_budget", -0.5}}, t0);
  ASSERT_FALSE(fraction.has_value());
  EXPECT_EQ(fraction.error().message, "max_budget cannot be negative. Received: -0.5");
  EXPECT_TRUE(admin::check_not_negative("max_budget_in_team", json(-1)).has_value());
  EXPECT_FALSE(admin::check_not_negative("max_budget_in_team", json(0.0)).has_value());
}

}  // namespace
