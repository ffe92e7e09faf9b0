// JSON Web Tokens (RFC 7519) signed with RS256, and the keys that sign and verify them:
// base64url, a JWKS (RFC 7517) read into verification keys by `kid`, RS256 signing with a
// PEM private key (Google service-account assertions) and verification (ID tokens, JWT
// auth of API callers), and the registered claims checked against an injected time.
// Only RS256 is accepted: `alg: none` and the HMAC algorithms (which a forger could use
// with the public key as the secret) are refused before any key is looked at.
// Thread: any; pure functions over values (keys are immutable once built). Never blocks.
#pragma once
#include "switchyard/core/error.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

struct evp_pkey_st;  // OpenSSL's EVP_PKEY

namespace switchyard::core {

// base64url without padding (RFC 7515 section 2).
std::string base64url_encode(std::string_view bytes);
// The bytes of a base64url text; padding ('=') accepted at the end only; nullopt for any
// other character outside the alphabet or an impossible length.
std::optional<std::string> base64url_decode(std::string_view text);

// Percent-encoding of everything but RFC 3986's unreserved characters (OAuth form bodies
// and query strings).
std::string percent_encode(std::string_view value);

// An RSA public key (shared, immutable).
using verify_key = std::shared_ptr<evp_pkey_st>;

// An RSA JWK ({"kty":"RSA","n","e"}) as a key; 401 auth_error naming what is wrong
// (another kty, a missing or bad n/e, a modulus under 2048 bits).
result<verify_key> rsa_key_from_jwk(const nlohmann::json& jwk);

// A JWKS document: its RSA signing keys by kid (keys without "kid" under ""), keys with
// `use` other than "sig" or another `alg` than RS256 left out. 401 when it is not a
// {"keys":[...]} object; single bad keys are skipped and counted.
struct jwks {
  std::map<std::string, verify_key, std::less<>> by_kid;
  std::size_t skipped = 0;
};
result<jwks> parse_jwks(std::string_view text);

// RS256 signature of `input` with a PEM private key; 500 when the key is unreadable.
result<std::string> rs256_sign(std::string_view private_key_pem, std::string_view input);
// True when `signature` is `key`'s RS256 signature of `input`.
bool rs256_verify(const verify_key& key, std::string_view input, std::string_view signature);
// True when `pem` holds an RSA private key.
bool is_rsa_private_key_pem(std::string_view pem);

// A compact JWS taken apart (nothing verified yet but its shape and algorithm).
struct decoded_jwt {
  nlohmann::json header;
  nlohmann::json claims;
  std::string signing_input;  // header.payload, as sent
  std::string signature;      // raw bytes
  std::string kid;            // header "kid", "" if none
};
// 401 auth_error: not three base64url parts, a header or payload that is not a JSON
// object, alg other than RS256 (none and HS* named in the message).
result<decoded_jwt> decode_jwt(std::string_view token);

// What the registered claims must say.
struct claim_checks {
  std::string issuer;                   // "" : not checked
  std::vector<std::string> audiences;   // empty: not checked; else `aud` must contain one
  std::optional<std::string> nonce;     // set: `nonce` must equal it
  bool require_exp = true;
  std::chrono::seconds leeway{60};      // clock skew allowed on exp / nbf / iat
};
// 401 auth_error naming the failed claim: expired (exp + leeway <= now), not yet valid
// (nbf / iat in the future), issuer, audience, nonce.
result<void> check_claims(const nlohmann::json& claims, const claim_checks& want,
                          std::chrono::system_clock::time_point now);

// decode_jwt + the key by kid from `keys` (a token without kid: the only key, when there
// is exactly one) + signature + check_claims. `unknown_kid` is set when the kid was not in
// `keys` (the caller may refresh its JWKS and try again).
result<decoded_jwt> verify_jwt(std::string_view token, const jwks& keys, const claim_checks& want,
                               std::chrono::system_clock::time_point now, bool* unknown_kid = nullptr);

}  // namespace switchyard::core
