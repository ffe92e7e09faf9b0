// secret_box: AES-256-GCM encryption of short secrets kept in Postgres (the provider keys
// of models added with /model/new). A text seals to "sy-enc:v1:<base64url(nonce|ct|tag)>"
// with a fresh random 12-byte nonce; opening checks the tag, so a wrong key or an altered
// value is an error, never garbage. The key is derived from a passphrase
// (LITELLM_SALT_KEY, else the master key) with SHA-256 over a fixed label.
// Thread: any (no shared state). Never blocks (CPU only).
#pragma once
#include <array>
#include <optional>
#include <string>
#include <string_view>

namespace switchyard::core {

class secret_box {
 public:
  static constexpr std::string_view prefix = "sy-enc:v1:";

  explicit secret_box(std::string_view passphrase);

  std::string seal(std::string_view plaintext) const;
  // nullopt: not sealed by us, or sealed with another key, or altered.
  std::optional<std::string> open(std::string_view sealed) const;
  static bool is_sealed(std::string_view text) { return text.starts_with(prefix); }

 private:
  std::array<unsigned char, 32> key_{};
};

}  // namespace switchyard::core
