#include "switchyard/core/jwt.hpp"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>

#include <algorithm>
#include <array>
#include <cmath>

namespace switchyard::core {

using json = nlohmann::json;

namespace {

error jwt_error(std::string message) { return make_error(errc::unauthorized, std::move(message)); }

struct pkey_free {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using owned_pkey = std::unique_ptr<EVP_PKEY, pkey_free>;

owned_pkey read_private_key(std::string_view pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  if (bio == nullptr) {
    return nullptr;
  }
  owned_pkey key(PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr));
  BIO_free(bio);
  return key;
}

constexpr std::array<signed char, 256> decode_table() {
  std::array<signed char, 256> t{};
  for (auto& v : t) {
    v = -1;
  }
  constexpr std::string_view alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  for (std::size_t i = 0; i < alphabet.size(); ++i) {
    t[static_cast<unsigned char>(alphabet[i])] = static_cast<signed char>(i);
  }
  return t;
}

std::string string_member(const json& o, const char* name) {
  auto it = o.find(name);
  return it != o.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::string time_text(long long unix_s) {
  std::time_t t = static_cast<std::time_t>(unix_s);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace

std::string base64url_encode(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(n));
  while (!out.empty() && out.back() == '=') {
    out.pop_back();
  }
  for (auto& c : out) {
    if (c == '+') {
      c = '-';
    } else if (c == '/') {
      c = '_';
    }
  }
  return out;
}

std::optional<std::string> base64url_decode(std::string_view text) {
  static constexpr auto table = decode_table();
  while (!text.empty() && text.back() == '=') {
    text.remove_suffix(1);
  }
  if (text.size() % 4 == 1) {
    return std::nullopt;  // no byte count leaves one character over
  }
  std::string out;
  out.reserve(text.size() * 3 / 4);
  unsigned acc = 0;
  int bits = 0;
  for (char ch : text) {
    const int v = table[static_cast<unsigned char>(ch)];
    if (v < 0) {
      return std::nullopt;
    }
    acc = (acc << 6) | static_cast<unsigned>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xFF);
    }
  }
  return out;
}

std::string percent_encode(std::string_view value) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(value.size());
  for (unsigned char c : value) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
        c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

result<verify_key> rsa_key_from_jwk(const json& jwk) {
  if (!jwk.is_object()) {
    return jwt_error("JWK is not an object");
  }
  if (auto kty = string_member(jwk, "kty"); kty != "RSA") {
    return jwt_error("JWK kty '" + kty + "' is not supported (RSA only)");
  }
  auto n = base64url_decode(string_member(jwk, "n"));
  auto e = base64url_decode(string_member(jwk, "e"));
  if (!n || !e || n->empty() || e->empty()) {
    return jwt_error("JWK has no valid base64url 'n' and 'e'");
  }
  BIGNUM* bn_n = BN_bin2bn(reinterpret_cast<const unsigned char*>(n->data()), static_cast<int>(n->size()), nullptr);
  BIGNUM* bn_e = BN_bin2bn(reinterpret_cast<const unsigned char*>(e->data()), static_cast<int>(e->size()), nullptr);
  if (bn_e != nullptr && (BN_is_odd(bn_e) == 0 || BN_num_bits(bn_e) < 2 || BN_num_bits(bn_e) > 32)) {
    BN_free(bn_n);
    BN_free(bn_e);
    return jwt_error("JWK exponent 'e' is not an odd number from 3 to 2^32");  // e=1 would make anyone a signer
  }
  OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
  OSSL_PARAM* params = nullptr;
  EVP_PKEY_CTX* ctx = nullptr;
  EVP_PKEY* key = nullptr;
  if (bn_n != nullptr && bn_e != nullptr && bld != nullptr &&
      OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) == 1 &&
      OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e) == 1) {
    params = OSSL_PARAM_BLD_to_param(bld);
    ctx = EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr);
    if (params != nullptr && ctx != nullptr && EVP_PKEY_fromdata_init(ctx) == 1) {
      EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params);
    }
  }
  EVP_PKEY_CTX_free(ctx);
  OSSL_PARAM_free(params);
  OSSL_PARAM_BLD_free(bld);
  BN_free(bn_n);
  BN_free(bn_e);
  if (key == nullptr) {
    return jwt_error("JWK 'n'/'e' do not make an RSA key");
  }
  verify_key out(key, pkey_free{});
  if (EVP_PKEY_get_bits(key) < 2048) {
    return jwt_error("JWK RSA key of " + std::to_string(EVP_PKEY_get_bits(key)) + " bits refused (2048 at least)");
  }
  return out;
}

result<jwks> parse_jwks(std::string_view text) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("keys") || !j["keys"].is_array()) {
    return jwt_error("JWKS is not a JSON object with a \"keys\" array");
  }
  jwks out;
  for (const auto& k : j["keys"]) {
    if (!k.is_object()) {
      ++out.skipped;
      continue;
    }
    auto use = string_member(k, "use");
    auto alg = string_member(k, "alg");
    if ((!use.empty() && use != "sig") || (!alg.empty() && alg != "RS256")) {
      ++out.skipped;
      continue;
    }
    auto key = rsa_key_from_jwk(k);
    if (!key) {
      ++out.skipped;
      continue;
    }
    out.by_kid.emplace(string_member(k, "kid"), std::move(*key));
  }
  return out;
}

bool is_rsa_private_key_pem(std::string_view pem) {
  auto key = read_private_key(pem);
  return key && EVP_PKEY_base_id(key.get()) == EVP_PKEY_RSA;
}

result<std::string> rs256_sign(std::string_view private_key_pem, std::string_view input) {
  auto key = read_private_key(private_key_pem);
  if (!key) {
    return make_error(errc::internal, "the RSA private key could not be read");
  }
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  std::string sig;
  bool ok = md != nullptr && EVP_DigestSignInit(md, nullptr, EVP_sha256(), nullptr, key.get()) == 1 &&
            EVP_DigestSignUpdate(md, input.data(), input.size()) == 1;
  std::size_t len = 0;
  if (ok) {
    ok = EVP_DigestSignFinal(md, nullptr, &len) == 1;
  }
  if (ok) {
    sig.resize(len);
    ok = EVP_DigestSignFinal(md, reinterpret_cast<unsigned char*>(sig.data()), &len) == 1;
    sig.resize(len);
  }
  EVP_MD_CTX_free(md);
  if (!ok) {
    return make_error(errc::internal, "RS256 signing failed");
  }
  return sig;
}

bool rs256_verify(const verify_key& key, std::string_view input, std::string_view signature) {
  if (!key) {
    return false;
  }
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  bool ok = md != nullptr && EVP_DigestVerifyInit(md, nullptr, EVP_sha256(), nullptr, key.get()) == 1 &&
            EVP_DigestVerify(md, reinterpret_cast<const unsigned char*>(signature.data()), signature.size(),
                             reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1;
  EVP_MD_CTX_free(md);
  return ok;
}

result<decoded_jwt> decode_jwt(std::string_view token) {
  const auto dot1 = token.find('.');
  const auto dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
    return jwt_error("Invalid JWT: expected three base64url parts separated by '.'");
  }
  auto head = base64url_decode(token.substr(0, dot1));
  auto body = base64url_decode(token.substr(dot1 + 1, dot2 - dot1 - 1));
  auto sig = base64url_decode(token.substr(dot2 + 1));
  if (!head || !body || !sig) {
    return jwt_error("Invalid JWT: a part is not base64url");
  }
  decoded_jwt out;
  out.header = json::parse(*head, nullptr, false);
  out.claims = json::parse(*body, nullptr, false);
  if (out.header.is_discarded() || !out.header.is_object()) {
    return jwt_error("Invalid JWT: the header is not a JSON object");
  }
  if (out.claims.is_discarded() || !out.claims.is_object()) {
    return jwt_error("Invalid JWT: the payload is not a JSON object");
  }
  const auto alg = string_member(out.header, "alg");
  if (alg != "RS256") {
    return jwt_error("Invalid JWT: alg '" + alg + "' refused (only RS256 is accepted)");
  }
  out.kid = string_member(out.header, "kid");
  out.signing_input = std::string(token.substr(0, dot2));
  out.signature = std::move(*sig);
  return out;
}

result<void> check_claims(const json& claims, const claim_checks& want, std::chrono::system_clock::time_point now) {
  const long long now_s = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  const long long leeway = want.leeway.count();
  auto number = [&](const char* name) -> std::optional<long long> {
    auto it = claims.find(name);
    if (it == claims.end() || !it->is_number()) {
      return std::nullopt;
    }
    // Clamped (a claim of 1e300 is an undefined conversion), far from overflowing with the leeway.
    const double d = it->get<double>();
    if (std::isnan(d)) {
      return std::nullopt;
    }
    return static_cast<long long>(std::clamp(d, -1e18, 1e18));
  };
  if (auto exp = number("exp")) {
    if (*exp + leeway <= now_s) {
      return jwt_error("JWT expired at " + time_text(*exp));
    }
  } else if (want.require_exp) {
    return jwt_error("JWT has no numeric 'exp' claim");
  }
  if (auto nbf = number("nbf"); nbf && *nbf > now_s + leeway) {
    return jwt_error("JWT not valid before " + time_text(*nbf));
  }
  if (auto iat = number("iat"); iat && *iat > now_s + leeway) {
    return jwt_error("JWT issued in the future (" + time_text(*iat) + ")");
  }
  if (!want.issuer.empty()) {
    if (auto iss = string_member(claims, "iss"); iss != want.issuer) {
      return jwt_error("JWT issuer '" + iss + "' is not the expected '" + want.issuer + "'");
    }
  }
  if (!want.audiences.empty()) {
    std::vector<std::string> aud;
    if (auto it = claims.find("aud"); it != claims.end()) {
      if (it->is_string()) {
        aud.push_back(it->get<std::string>());
      } else if (it->is_array()) {
        for (const auto& a : *it) {
          if (a.is_string()) {
            aud.push_back(a.get<std::string>());
          }
        }
      }
    }
    bool match = false;
    for (const auto& a : aud) {
      for (const auto& w : want.audiences) {
        match = match || a == w;
      }
    }
    if (!match) {
      std::string got;
      for (const auto& a : aud) {
        got += (got.empty() ? "" : ",") + a;
      }
      return jwt_error("JWT audience '" + got + "' does not include '" + want.audiences.front() + "'");
    }
  }
  if (want.nonce) {
    if (string_member(claims, "nonce") != *want.nonce) {
      return jwt_error("ID token nonce does not match this sign-in");
    }
  }
  return {};
}

result<decoded_jwt> verify_jwt(std::string_view token, const jwks& keys, const claim_checks& want,
                               std::chrono::system_clock::time_point now, bool* unknown_kid) {
  if (unknown_kid != nullptr) {
    *unknown_kid = false;
  }
  auto t = decode_jwt(token);
  if (!t) {
    return t.error();
  }
  const verify_key* key = nullptr;
  if (auto it = keys.by_kid.find(t->kid); it != keys.by_kid.end()) {
    key = &it->second;
  } else if (t->kid.empty() && keys.by_kid.size() == 1) {
    key = &keys.by_kid.begin()->second;
  }
  if (key == nullptr) {
    if (unknown_kid != nullptr) {
      *unknown_kid = true;
    }
    return jwt_error("JWT signing key '" + t->kid + "' is not in the issuer's JWKS");
  }
  if (!rs256_verify(*key, t->signing_input, t->signature)) {
    return jwt_error("JWT signature does not verify");
  }
  if (auto ok = check_claims(t->claims, want, now); !ok) {
    return ok.error();
  }
  return t;
}

}  // namespace switchyard::core
