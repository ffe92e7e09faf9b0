#include "switchyard/core/secret_box.hpp"

#include "switchyard/core/jwt.hpp"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <memory>
#include <stdexcept>

namespace switchyard::core {

namespace {

constexpr std::size_t nonce_size = 12;
constexpr std::size_t tag_size = 16;
constexpr std::string_view key_label = "switchyard model secrets v1\n";

struct ctx_free {
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};
using ctx_ptr = std::unique_ptr<EVP_CIPHER_CTX, ctx_free>;

const unsigned char* bytes(std::string_view s) { return reinterpret_cast<const unsigned char*>(s.data()); }

}  // namespace

secret_box::secret_box(std::string_view passphrase) {
  std::string material(key_label);
  material += passphrase;
  SHA256(bytes(material), material.size(), key_.data());
}

std::string secret_box::seal(std::string_view plaintext) const {
  std::string out(nonce_size + plaintext.size() + tag_size, '\0');
  auto* o = reinterpret_cast<unsigned char*>(out.data());
  if (RAND_bytes(o, static_cast<int>(nonce_size)) != 1) {
    throw std::runtime_error("secret_box: no random bytes for a nonce");
  }
  ctx_ptr ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  int fin = 0;
  if (!ctx || EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key_.data(), o) != 1 ||
      EVP_EncryptUpdate(ctx.get(), o + nonce_size, &len, bytes(plaintext), static_cast<int>(plaintext.size())) != 1 ||
      EVP_EncryptFinal_ex(ctx.get(), o + nonce_size + len, &fin) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, static_cast<int>(tag_size),
                          o + nonce_size + plaintext.size()) != 1) {
    throw std::runtime_error("secret_box: AES-256-GCM encryption failed");
  }
  return std::string(prefix) + base64url_encode(out);
}

std::optional<std::string> secret_box::open(std::string_view sealed) const {
  if (!is_sealed(sealed)) {
    return std::nullopt;
  }
  auto raw = base64url_decode(sealed.substr(prefix.size()));
  if (!raw || raw->size() < nonce_size + tag_size) {
    return std::nullopt;
  }
  const std::size_t n = raw->size() - nonce_size - tag_size;
  auto* r = reinterpret_cast<unsigned char*>(raw->data());
  std::string out(n, '\0');
  ctx_ptr ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  int fin = 0;
  if (!ctx || EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key_.data(), r) != 1 ||
      EVP_DecryptUpdate(ctx.get(), reinterpret_cast<unsigned char*>(out.data()), &len, r + nonce_size,
                        static_cast<int>(n)) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, static_cast<int>(tag_size), r + nonce_size + n) != 1 ||
      EVP_DecryptFinal_ex(ctx.get(), reinterpret_cast<unsigned char*>(out.data()) + len, &fin) != 1) {
    return std::nullopt;
  }
  return out;
}

}  // namespace switchyard::core
