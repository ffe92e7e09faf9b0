#include "switchyard/core/secret_box.hpp"

#include <gtest/gtest.h>

using switchyard::core::secret_box;

TEST(secret_box, seals_and_opens_with_the_same_passphrase) {
  const secret_box box("salt-one");
  const auto sealed = box.seal("sk-provider-secret");
  EXPECT_TRUE(secret_box::is_sealed(sealed));
  EXPECT_EQ(sealed.find("sk-provider-secret"), std::string::npos);
  EXPECT_EQ(box.open(sealed), "sk-provider-secret");
  EXPECT_EQ(secret_box("salt-one").open(sealed), "sk-provider-secret") << "the key depends only on the passphrase";
  EXPECT_EQ(box.open(box.seal("")), "");
}

TEST(secret_box, fresh_nonce_per_seal) {
  const secret_box box("k");
  EXPECT_NE(box.seal("same"), box.seal("same"));
}

TEST(secret_box, wrong_key_altered_or_foreign_text_does_not_open) {
  const secret_box box("right");
  auto sealed = box.seal("value");
  EXPECT_FALSE(secret_box("wrong").open(sealed));
  auto altered = sealed;
  altered[altered.size() - 3] = altered[altered.size() - 3] == 'A' ? 'B' : 'A';
  EXPECT_FALSE(box.open(altered));
  EXPECT_FALSE(box.open("plain text"));
  EXPECT_FALSE(box.open(std::string(secret_box::prefix) + "!!"));
  EXPECT_FALSE(box.open(std::string(secret_box::prefix) + "AAAA"));
}
