#include "switchyard/core/json_get.hpp"

#include <gtest/gtest.h>

namespace switchyard::core {
namespace {

using json = nlohmann::json;

TEST(json_get, a_member_of_another_type_is_the_fallback_never_an_exception) {
  const auto j = json::parse(R"({"s":"x","n":5,"f":1.5,"a":[1],"o":{},"z":null})");
  EXPECT_EQ(string_or(j, "s"), "x");
  for (const char* k : {"n", "f", "a", "o", "z", "missing"}) {
    EXPECT_EQ(string_or(j, k, "fb"), "fb") << k;
  }
  EXPECT_EQ(integer_member(j, "n"), 5);
  for (const char* k : {"s", "f", "a", "o", "z", "missing"}) {
    EXPECT_FALSE(integer_member(j, k)) << k;
  }
  EXPECT_EQ(member_or(j, "a", 0), json::array({1}));
  EXPECT_EQ(member_or(j, "missing", "d"), "d");
  // Not an object at all.
  for (const char* text : {"[1,2]", "\"s\"", "3", "null"}) {
    const auto v = json::parse(text);
    EXPECT_EQ(member(v, "s"), nullptr) << text;
    EXPECT_EQ(string_or(v, "s", "fb"), "fb") << text;
    EXPECT_EQ(count_or(v, "n", 7), 7) << text;
  }
  // An unsigned integer beyond long long is not an integer member.
  EXPECT_FALSE(integer_member(json::parse(R"({"u":18446744073709551615})"), "u"));
}

TEST(json_get, counts_are_never_negative_and_never_beyond_ten_to_the_eighteenth) {
  const auto j = json::parse(
      R"({"i":12,"neg":-3,"frac":12.9,"negf":-0.5,"huge":1e300,"big":18446744073709551615,"s":"9","z":null})");
  EXPECT_EQ(count_or(j, "i"), 12);
  EXPECT_EQ(count_or(j, "neg"), 0);
  EXPECT_EQ(count_or(j, "frac"), 12);
  EXPECT_EQ(count_or(j, "negf"), 0);
  EXPECT_EQ(count_or(j, "huge"), max_count);
  EXPECT_EQ(count_or(j, "big"), max_count);
  EXPECT_EQ(count_or(j, "s", -1), -1);  // not a number: the fallback
  EXPECT_EQ(count_or(j, "z", -1), -1);
  EXPECT_EQ(count_of_number(std::nan("")), 0);
  EXPECT_EQ(count_of_number(-std::numeric_limits<double>::infinity()), 0);
  EXPECT_EQ(count_of_number(std::numeric_limits<double>::infinity()), max_count);
  EXPECT_EQ(count_of_integer(std::numeric_limits<long long>::min()), 0);
}

}  // namespace
}  // namespace switchyard::core
