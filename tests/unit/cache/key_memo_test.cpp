// The memo of keys for bodies seen before: found only for the very same bytes, call and
// model group; bounded by its slots and body size.
#include "switchyard/cache/key_memo.hpp"

#include <gtest/gtest.h>

using switchyard::cache::key_memo;

namespace {

const std::string hex_a(64, 'a');
const std::string hex_b(64, 'b');

TEST(key_memo, finds_only_the_same_bytes_call_and_group) {
  key_memo m;
  const std::string body = R"({"model":"m","messages":[{"role":"user","content":"hi"}]})";
  m.put(m.hash(body), "chat", "g", body, hex_a, {});
  const std::string* found = m.find(m.hash(body), "chat", "g", body);
  ASSERT_NE(found, nullptr);
  EXPECT_EQ(*found, hex_a);
  EXPECT_EQ(m.hits(), 1u);

  std::string other = body;
  other[40] = 'X';  // one byte in the middle
  EXPECT_EQ(m.find(m.hash(other), "chat", "g", other), nullptr);
  EXPECT_EQ(m.find(m.hash(body), "chat", "g2", body), nullptr);
  EXPECT_EQ(m.find(m.hash(body), "completion", "g", body), nullptr);
  // The same slot hash with other bytes (as when two bodies share a slot) is no match.
  EXPECT_EQ(m.find(m.hash(body), "chat", "g", other), nullptr);
  EXPECT_EQ(m.find(m.hash(body), "chat", "gg", body), nullptr);
  EXPECT_EQ(m.hits(), 1u);
}

TEST(key_memo, a_body_on_a_taken_slot_replaces_it) {
  key_memo m(1);  // one slot: every body shares it
  m.put(m.hash("one"), "chat", "g", "one", hex_a, {});
  m.put(m.hash("two"), "chat", "g", "two", hex_b, {});
  EXPECT_EQ(m.find(m.hash("one"), "chat", "g", "one"), nullptr);
  ASSERT_NE(m.find(m.hash("two"), "chat", "g", "two"), nullptr);
  EXPECT_EQ(*m.find(m.hash("two"), "chat", "g", "two"), hex_b);
}

TEST(key_memo, bodies_above_the_bound_are_not_kept) {
  key_memo m(4, 16);
  const std::string big(17, 'x');
  m.put(m.hash(big), "chat", "g", big, hex_a, {});
  EXPECT_EQ(m.find(m.hash(big), "chat", "g", big), nullptr);
  const std::string small(16, 'x');
  m.put(m.hash(small), "chat", "g", small, hex_a, {});
  EXPECT_NE(m.find(m.hash(small), "chat", "g", small), nullptr);
}

TEST(key_memo, the_hash_reads_every_byte_and_the_length) {
  key_memo m;
  std::string a(1000, 'x');
  std::string b = a;
  b[517] = 'y';
  EXPECT_NE(m.hash(a), m.hash(b));
  EXPECT_NE(m.hash(a), m.hash(a + '\0'));
  EXPECT_NE(m.hash(""), m.hash(std::string(1, '\0')));
}

TEST(key_memo, members_are_found_for_the_same_bytes_whatever_the_call_and_group) {
  key_memo m;
  const std::string body = R"({"model":"m","n":1})";
  switchyard::cache::member_spans s;
  s.key_at = 2;
  s.key_size = 5;
  s.value_at = 9;
  s.value_size = 3;
  m.put(m.hash(body), "chat", "g", body, hex_a, {s});
  const auto* found = m.find_members(m.hash(body), body);
  ASSERT_NE(found, nullptr);
  ASSERT_EQ(found->size(), 1u);
  EXPECT_EQ((*found)[0].value_at, 9u);
  EXPECT_EQ(m.member_hits(), 1u);
  // The scan depends on the bytes alone; the key also on the call and the group.
  EXPECT_EQ(m.find(m.hash(body), "chat", "g2", body), nullptr);
  std::string other = body;
  other[10] = 'X';
  EXPECT_EQ(m.find_members(m.hash(other), other), nullptr);
  EXPECT_EQ(m.find_members(m.hash(body), other), nullptr);
  // Remembered without members (a body whose scan could not be kept): none given.
  m.put(m.hash(body), "chat", "g", body, hex_a, {});
  EXPECT_EQ(m.find_members(m.hash(body), body), nullptr);
  EXPECT_NE(m.find(m.hash(body), "chat", "g", body), nullptr);
}

}  // namespace
