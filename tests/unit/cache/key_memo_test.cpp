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
  m.put(m.hash("chat", "g", body), "chat", "g", body, hex_a);
  const std::string* found = m.find(m.hash("chat", "g", body), "chat", "g", body);
  ASSERT_NE(found, nullptr);
  EXPECT_EQ(*found, hex_a);
  EXPECT_EQ(m.hits(), 1u);

  std::string other = body;
  other[40] = 'X';  // one byte in the middle
  EXPECT_EQ(m.find(m.hash("chat", "g", other), "chat", "g", other), nullptr);
  EXPECT_EQ(m.find(m.hash("chat", "g2", body), "chat", "g2", body), nullptr);
  EXPECT_EQ(m.find(m.hash("completion", "g", body), "completion", "g", body), nullptr);
  // The same slot hash with other bytes (as when two bodies share a slot) is no match.
  EXPECT_EQ(m.find(m.hash("chat", "g", body), "chat", "g", other), nullptr);
  EXPECT_EQ(m.find(m.hash("chat", "g", body), "chat", "gg", body), nullptr);
  EXPECT_EQ(m.hits(), 1u);
}

TEST(key_memo, a_body_on_a_taken_slot_replaces_it) {
  key_memo m(1);  // one slot: every body shares it
  m.put(m.hash("chat", "g", "one"), "chat", "g", "one", hex_a);
  m.put(m.hash("chat", "g", "two"), "chat", "g", "two", hex_b);
  EXPECT_EQ(m.find(m.hash("chat", "g", "one"), "chat", "g", "one"), nullptr);
  ASSERT_NE(m.find(m.hash("chat", "g", "two"), "chat", "g", "two"), nullptr);
  EXPECT_EQ(*m.find(m.hash("chat", "g", "two"), "chat", "g", "two"), hex_b);
}

TEST(key_memo, bodies_above_the_bound_are_not_kept) {
  key_memo m(4, 16);
  const std::string big(17, 'x');
  m.put(m.hash("chat", "g", big), "chat", "g", big, hex_a);
  EXPECT_EQ(m.find(m.hash("chat", "g", big), "chat", "g", big), nullptr);
  const std::string small(16, 'x');
  m.put(m.hash("chat", "g", small), "chat", "g", small, hex_a);
  EXPECT_NE(m.find(m.hash("chat", "g", small), "chat", "g", small), nullptr);
}

TEST(key_memo, the_hash_reads_every_byte_and_the_length) {
  key_memo m;
  std::string a(1000, 'x');
  std::string b = a;
  b[517] = 'y';
  EXPECT_NE(m.hash("chat", "g", a), m.hash("chat", "g", b));
  EXPECT_NE(m.hash("chat", "g", a), m.hash("chat", "g", a + '\0'));
  EXPECT_NE(m.hash("chat", "g", "x"), m.hash("chat", "gx", ""));
}

}  // namespace
