#include "switchyard/core/ids.hpp"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <random>
#include <stdexcept>

namespace switchyard::core {

namespace {
constexpr char hex_digits[] = "0123456789abcdef";

void fill_random(unsigned char* p, std::size_t n) {
  if (RAND_bytes(p, static_cast<int>(n)) != 1) {
    // Fall back to a per-thread Mersenne twister seeded by random_device; ids only.
    thread_local std::mt19937_64 gen{std::random_device{}()};
    for (std::size_t i = 0; i < n; ++i) {
      p[i] = static_cast<unsigned char>(gen());
    }
  }
}

std::string to_hex(const unsigned char* p, std::size_t n) {
  std::string out(n * 2, '0');
  for (std::size_t i = 0; i < n; ++i) {
    out[2 * i] = hex_digits[p[i] >> 4];
    out[2 * i + 1] = hex_digits[p[i] & 0xf];
  }
  return out;
}
}  // namespace

// Request ids need uniqueness, not secrecy: a per-thread xoshiro256** generator seeded
// once from OpenSSL's CSPRNG. RAND_bytes per id cost a getpid() syscall (OpenSSL's fork
// check) and a lock on every request. Secrets (keys) still use random_hex().
namespace {
struct xoshiro256 {
  std::uint64_t s[4];
  xoshiro256() {
    fill_random(reinterpret_cast<unsigned char*>(s), sizeof s);
    if ((s[0] | s[1] | s[2] | s[3]) == 0) {
      s[0] = 0x9E3779B97F4A7C15ULL;  // the all-zero state is the one state to avoid
    }
  }
  static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  std::uint64_t next() {
    const std::uint64_t result = rotl(s[1] * 5, 7) * 9;
    const std::uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
  }
};
}  // namespace

std::string uuid4() {
  std::string out;
  uuid4_into(out);
  return out;
}

void uuid4_into(std::string& out) {
  thread_local xoshiro256 gen;
  std::array<unsigned char, 16> b{};
  const std::uint64_t hi = gen.next();
  const std::uint64_t lo = gen.next();
  std::memcpy(b.data(), &hi, 8);
  std::memcpy(b.data() + 8, &lo, 8);
  b[6] = static_cast<unsigned char>((b[6] & 0x0f) | 0x40);
  b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80);
  out.assign(36, '-');
  std::size_t o = 0;
  for (std::size_t i = 0; i < b.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) {
      ++o;  // the dash
    }
    out[o++] = hex_digits[b[i] >> 4];
    out[o++] = hex_digits[b[i] & 0xf];
  }
}

std::string random_hex(std::size_t bytes) {
  std::string raw(bytes, '\0');
  fill_random(reinterpret_cast<unsigned char*>(raw.data()), bytes);
  return to_hex(reinterpret_cast<const unsigned char*>(raw.data()), bytes);
}

std::string sha256_hex(std::string_view data) {
  // OpenSSL's own SHA-256 functions, not the EVP interface: the same code (with the CPU's
  // SHA extensions when it has them) without EVP's per-call dispatch through the provider
  // (a 1 KB cache key: 0.68 µs against 0.77 µs with a reused EVP context, 0.85 µs with a
  // new one each time). Deprecated since OpenSSL 3.0 in favour of EVP, not removed.
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256_CTX ctx;
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  const bool ok =
      SHA256_Init(&ctx) == 1 && SHA256_Update(&ctx, data.data(), data.size()) == 1 && SHA256_Final(md, &ctx) == 1;
#pragma GCC diagnostic pop
  if (!ok) {
    throw std::runtime_error("sha256 failed");
  }
  return to_hex(md, sizeof md);
}

bool secure_equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string redact_key(std::string_view key) {
  if (key.empty()) {
    return {};
  }
  if (key.size() <= 4) {
    return "sk-...";
  }
  return "sk-..." + std::string(key.substr(key.size() - 4));
}

}  // namespace switchyard::core
