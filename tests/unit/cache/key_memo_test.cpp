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

// Both implementations of the slot hash (CRC32C where the CPU has it, and the portable
// one) read every byte, every length and the seed.
TEST(key_memo, both_slot_hashes_read_every_byte_the_length_and_the_seed) {
  using switchyard::cache::detail::memo_hash_crc32c;
  using switchyard::cache::detail::memo_hash_portable;
  for (auto* h : {&memo_hash_portable, &memo_hash_crc32c}) {
    for (std::size_t len : {0u, 1u, 7u, 8u, 23u, 24u, 25u, 31u, 32u, 33u, 100u, 1000u}) {
      const std::string a(len, 'x');
      EXPECT_NE(h(42, a), h(42, a + '\0')) << len;
      EXPECT_NE(h(42, a), h(43, a)) << len;
      for (std::size_t i = 0; i < len; ++i) {
        std::string b = a;
        b[i] = 'y';
        ASSERT_NE(h(42, a), h(42, b)) << len << " at " << i;
      }
    }
  }
}

// A slot verified by find_members() is not compared again by find() while it was not
// written since; once written (another body on the slot), find() compares again.
TEST(key_memo, a_verified_slot_is_trusted_only_until_it_is_written) {
  key_memo m(1);  // one slot: every body shares it
  const std::string body = "the body";
  m.put(m.hash(body), "chat", "g", body, hex_a, {});
  std::uint64_t verified = 0;
  EXPECT_EQ(m.find_members(m.hash(body), body, &verified), nullptr);  // no members kept
  ASSERT_NE(verified, 0u);
  ASSERT_NE(m.find(m.hash(body), "chat", "g", body, verified), nullptr);
  EXPECT_EQ(m.find(m.hash(body), "chat", "g2", body, verified), nullptr);  // still checks call, group
  m.put(m.hash("other"), "chat", "g", "other", hex_b, {});
  EXPECT_EQ(m.find(m.hash(body), "chat", "g", body, verified), nullptr);
  // Written again with the same bytes: a new version, compared and found.
  m.put(m.hash(body), "chat", "g", body, hex_a, {});
  EXPECT_NE(m.find(m.hash(body), "chat", "g", body, verified), nullptr);
  std::uint64_t other = 0;
  EXPECT_EQ(m.find_members(m.hash("nope"), "nope", &other), nullptr);
  EXPECT_EQ(other, 0u);
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
