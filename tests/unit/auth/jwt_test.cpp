// JWT parsing and verification (core/jwt.hpp) and JWT auth of API callers
// (auth/jwt_auth.hpp), with keys made here and an injected clock.
#include "switchyard/auth/jwt_auth.hpp"
#include "switchyard/core/jwt.hpp"
#include "switchyard/upstream/client.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

using namespace switchyard;
using json = nlohmann::json;
using core::base64url_decode;
using core::base64url_encode;

namespace {

// A fresh RSA key: its PEM private key and its public JWK.
struct test_key {
  std::string pem;
  json jwk;
};

std::string bn_bytes(const BIGNUM* bn) {
  std::string out(static_cast<std::size_t>(BN_num_bytes(bn)), '\0');
  BN_bn2bin(bn, reinterpret_cast<unsigned char*>(out.data()));
  return out;
}

test_key make_key(const std::string& kid, unsigned bits = 2048) {
  EVP_PKEY* k = EVP_RSA_gen(bits);
  EXPECT_NE(k, nullptr);
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, k, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  test_key out;
  out.pem.assign(data, static_cast<std::size_t>(n));
  BIO_free(bio);
  BIGNUM* bn_n = nullptr;
  BIGNUM* bn_e = nullptr;
  EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_N, &bn_n);
  EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_E, &bn_e);
  out.jwk = {{"kty", "RSA"}, {"kid", kid}, {"use", "sig"}, {"alg", "RS256"},
             {"n", base64url_encode(bn_bytes(bn_n))}, {"e", base64url_encode(bn_bytes(bn_e))}};
  BN_free(bn_n);
  BN_free(bn_e);
  EVP_PKEY_free(k);
  return out;
}

const test_key& key_a() {
  static const test_key k = make_key("a");
  return k;
}
const test_key& key_b() {
  static const test_key k = make_key("b");
  return k;
}

std::string sign(const test_key& k, json header, const json& claims) {
  std::string input = base64url_encode(header.dump()) + "." + base64url_encode(claims.dump());
  auto sig = core::rs256_sign(k.pem, input);
  EXPECT_TRUE(sig.has_value());
  return input + "." + base64url_encode(*sig);
}

constexpr long long t0 = 1'800'000'000;  // the injected "now"
std::chrono::system_clock::time_point at(long long unix_s) {
  return std::chrono::system_clock::time_point(std::chrono::seconds(unix_s));
}

json claims_now() {
  return {{"iss", "https://idp.test"}, {"aud", "switchyard"}, {"sub", "u1"}, {"iat", t0}, {"exp", t0 + 600}};
}

core::jwks keys_of(std::initializer_list<const test_key*> ks) {
  json doc = {{"keys", json::array()}};
  for (const auto* k : ks) {
    doc["keys"].push_back(k->jwk);
  }
  auto r = core::parse_jwks(doc.dump());
  EXPECT_TRUE(r.has_value());
  return *r;
}

core::claim_checks checks() {
  core::claim_checks c;
  c.issuer = "https://idp.test";
  c.audiences = {"switchyard"};
  return c;
}

}  // namespace

TEST(base64url, round_trip_and_alphabet) {
  EXPECT_EQ(base64url_encode(std::string("\xfb\xff\xfe", 3)), "-__-");
  EXPECT_EQ(*base64url_decode("-__-"), std::string("\xfb\xff\xfe", 3));
  for (std::string s : {"", "a", "ab", "abc", "abcd", "hello world!"}) {
    EXPECT_EQ(*base64url_decode(base64url_encode(s)), s);
  }
  EXPECT_EQ(*base64url_decode("YQ=="), "a");  // padding tolerated at the end
  EXPECT_FALSE(base64url_decode("a+b/"));     // standard base64's characters refused
  EXPECT_FALSE(base64url_decode("Y Q"));
  EXPECT_FALSE(base64url_decode("YQ=a"));
  EXPECT_FALSE(base64url_decode("abcde"));  // a length no byte count gives
}

TEST(jwt, a_good_token_verifies_and_its_claims_come_back) {
  auto token = sign(key_a(), {{"alg", "RS256"}, {"kid", "a"}}, claims_now());
  auto r = core::verify_jwt(token, keys_of({&key_a(), &key_b()}), checks(), at(t0));
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->claims["sub"], "u1");
  EXPECT_EQ(r->kid, "a");
}

TEST(jwt, kid_lookup_picks_the_named_key_and_reports_an_unknown_one) {
  auto token = sign(key_b(), {{"alg", "RS256"}, {"kid", "b"}}, claims_now());
  bool unknown = true;
  EXPECT_TRUE(core::verify_jwt(token, keys_of({&key_a(), &key_b()}), checks(), at(t0), &unknown));
  EXPECT_FALSE(unknown);
  auto r = core::verify_jwt(token, keys_of({&key_a()}), checks(), at(t0), &unknown);
  ASSERT_FALSE(r);
  EXPECT_TRUE(unknown);
  EXPECT_NE(r.error().message.find("'b' is not in the issuer's JWKS"), std::string::npos) << r.error().message;
  // Signed by b but claiming kid a: the signature check fails.
  auto lying = sign(key_b(), {{"alg", "RS256"}, {"kid", "a"}}, claims_now());
  r = core::verify_jwt(lying, keys_of({&key_a(), &key_b()}), checks(), at(t0), &unknown);
  ASSERT_FALSE(r);
  EXPECT_FALSE(unknown);
  EXPECT_EQ(r.error().message, "JWT signature does not verify");
  EXPECT_EQ(r.error().status, 401);
}

TEST(jwt, a_tampered_payload_or_signature_is_refused) {
  auto token = sign(key_a(), {{"alg", "RS256"}, {"kid", "a"}}, claims_now());
  auto dot1 = token.find('.');
  auto dot2 = token.find('.', dot1 + 1);
  auto other = claims_now();
  other["sub"] = "admin";
  auto swapped = token.substr(0, dot1 + 1) + base64url_encode(other.dump()) + token.substr(dot2);
  auto r = core::verify_jwt(swapped, keys_of({&key_a()}), checks(), at(t0));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "JWT signature does not verify");
  auto flipped = token;
  flipped[flipped.size() - 5] = flipped[flipped.size() - 5] == 'A' ? 'B' : 'A';
  EXPECT_FALSE(core::verify_jwt(flipped, keys_of({&key_a()}), checks(), at(t0)));
}

TEST(jwt, alg_none_and_hmac_are_refused_before_any_key) {
  auto c = claims_now();
  auto none = base64url_encode(json{{"alg", "none"}}.dump()) + "." + base64url_encode(c.dump()) + ".";
  auto r = core::decode_jwt(none);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("alg 'none' refused"), std::string::npos) << r.error().message;
  auto hs = base64url_encode(json{{"alg", "HS256"}, {"kid", "a"}}.dump()) + "." + base64url_encode(c.dump()) + ".c2ln";
  r = core::decode_jwt(hs);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("alg 'HS256' refused (only RS256"), std::string::npos);
  EXPECT_FALSE(core::verify_jwt(hs, keys_of({&key_a()}), checks(), at(t0)));
}

TEST(jwt, malformed_tokens_get_clear_messages) {
  EXPECT_EQ(core::decode_jwt("abc").error().message, "Invalid JWT: expected three base64url parts separated by '.'");
  EXPECT_EQ(core::decode_jwt("a.b.c.d").error().message,
            "Invalid JWT: expected three base64url parts separated by '.'");
  EXPECT_EQ(core::decode_jwt("a*.b.c").error().message, "Invalid JWT: a part is not base64url");
  EXPECT_EQ(core::decode_jwt(base64url_encode("[1]") + ".e30.c2ln").error().message,
            "Invalid JWT: the header is not a JSON object");
  EXPECT_EQ(core::decode_jwt(base64url_encode(R"({"alg":"RS256"})") + "." + base64url_encode("nope") + ".c2ln")
                .error()
                .message,
            "Invalid JWT: the payload is not a JSON object");
}

TEST(jwt, claims_are_checked_against_the_injected_clock) {
  auto token = sign(key_a(), {{"alg", "RS256"}, {"kid", "a"}}, claims_now());
  auto keys = keys_of({&key_a()});
  EXPECT_TRUE(core::verify_jwt(token, keys, checks(), at(t0 + 600 + 59)));  // inside the leeway
  auto r = core::verify_jwt(token, keys, checks(), at(t0 + 600 + 60));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "JWT expired at 2027-01-15T08:10:00Z");
  r = core::verify_jwt(token, keys, checks(), at(t0 - 3600));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("issued in the future"), std::string::npos);

  auto want = checks();
  want.audiences = {"someone-else"};
  r = core::verify_jwt(token, keys, want, at(t0));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "JWT audience 'switchyard' does not include 'someone-else'");
  want = checks();
  want.issuer = "https://other.test";
  r = core::verify_jwt(token, keys, want, at(t0));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "JWT issuer 'https://idp.test' is not the expected 'https://other.test'");
  want = checks();
  want.nonce = "n-1";
  r = core::verify_jwt(token, keys, want, at(t0));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "ID token nonce does not match this sign-in");

  auto no_exp = claims_now();
  no_exp.erase("exp");
  r = core::verify_jwt(sign(key_a(), {{"alg", "RS256"}, {"kid", "a"}}, no_exp), keys, checks(), at(t0));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "JWT has no numeric 'exp' claim");
  // Times far beyond any date are clamped, not converted as undefined behaviour.
  auto far = claims_now();
  far["exp"] = 1e300;
  far["iat"] = -1e300;
  EXPECT_TRUE(core::verify_jwt(sign(key_a(), {{"alg", "RS256"}, {"kid", "a"}}, far), keys, checks(), at(t0)));
  far["exp"] = -1e300;
  EXPECT_FALSE(core::verify_jwt(sign(key_a(), {{"alg", "RS256"}, {"kid", "a"}}, far), keys, checks(), at(t0)));
  auto aud_list = claims_now();
  aud_list["aud"] = json::array({"x", "switchyard"});
  EXPECT_TRUE(core::verify_jwt(sign(key_a(), {{"alg", "RS256"}, {"kid", "a"}}, aud_list), keys, checks(), at(t0)));
}

TEST(jwks, bad_documents_and_keys) {
  EXPECT_FALSE(core::parse_jwks("not json"));
  EXPECT_FALSE(core::parse_jwks(R"({"nokeys":[]})"));
  json doc = {{"keys",
               {key_a().jwk,
                {{"kty", "EC"}, {"kid", "ec"}},
                {{"kty", "RSA"}, {"kid", "bad"}, {"n", "!!"}, {"e", "AQAB"}},
                key_b().jwk,
                make_key("small", 1024).jwk}}};
  doc["keys"][3] = key_b().jwk;
  doc["keys"][3]["use"] = "enc";
  auto r = core::parse_jwks(doc.dump());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->by_kid.size(), 1u);
  EXPECT_TRUE(r->by_kid.count("a"));
  EXPECT_EQ(r->skipped, 4u);
  auto e_one = key_a().jwk;
  e_one["e"] = base64url_encode(std::string("\x01", 1));
  auto weak = core::rsa_key_from_jwk(e_one);
  ASSERT_FALSE(weak);
  EXPECT_NE(weak.error().message.find("exponent"), std::string::npos);
  auto small = core::rsa_key_from_jwk(make_key("s", 1024).jwk);
  ASSERT_FALSE(small);
  EXPECT_NE(small.error().message.find("1024 bits refused"), std::string::npos);
}

TEST(jwt_auth, settings_from_general_settings_and_env) {
  auto env = [](const char* n) -> std::string {
    return std::string(n) == "JWT_PUBLIC_KEY_URL" ? "https://idp.test/jwks, https://idp2.test/jwks" : "";
  };
  auto off = auth::jwt_auth_settings::from(json{{"master_key", "sk-1"}}, env);
  ASSERT_TRUE(off);
  EXPECT_FALSE(off->enabled);
  auto on = auth::jwt_auth_settings::from(
      json{{"enable_jwt_auth", true},
           {"litellm_jwtauth",
            {{"user_id_jwt_field", "sub"}, {"team_id_jwt_field", "tid"}, {"admin_jwt_scope", "gw_admin"},
             {"public_key_ttl", 30}}}},
      env);
  ASSERT_TRUE(on) << on.error().message;
  EXPECT_TRUE(on->enabled);
  EXPECT_EQ(on->jwks_urls, (std::vector<std::string>{"https://idp.test/jwks", "https://idp2.test/jwks"}));
  EXPECT_EQ(on->team_id_jwt_field, "tid");
  EXPECT_EQ(on->admin_jwt_scope, "gw_admin");
  EXPECT_EQ(on->public_key_ttl, std::chrono::seconds(30));
  auto no_url = auth::jwt_auth_settings::from(json{{"enable_jwt_auth", true}}, [](const char*) { return std::string(); });
  ASSERT_FALSE(no_url);
  EXPECT_NE(no_url.error().message.find("JWT_PUBLIC_KEY_URL"), std::string::npos);
  auto bad = auth::jwt_auth_settings::from(json{{"enable_jwt_auth", true}, {"litellm_jwtauth", {{"user_id_jwt_field", 3}}}},
                                           env);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message, "general_settings.litellm_jwtauth.user_id_jwt_field: expected a string");
}

TEST(jwt_auth, a_token_makes_a_principal_with_user_team_and_role) {
  net::io_context ioc;
  upstream::client client(ioc.get_executor());
  auth::jwks_cache cache(ioc.get_executor(), client, {.url = "http://127.0.0.1:1/jwks"});
  cache.set_keys(keys_of({&key_a()}));
  auth::jwt_auth_settings s;
  s.enabled = true;
  s.audience = "switchyard";
  s.issuer = "https://idp.test";
  s.user_id_jwt_field = "sub";
  s.team_id_jwt_field = "org.team";
  long long now = t0;
  auth::jwt_authenticator a(s, {&cache}, [&now] { return at(now); });

  auto c = claims_now();
  c["org"] = {{"team", "t-9"}};
  auto r = a.authenticate(sign(key_a(), {{"alg", "RS256"}, {"kid", "a"}}, c));
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_TRUE(r->vkey);
  EXPECT_EQ(r->vkey->user_id, "u1");
  EXPECT_EQ(r->vkey->team_id, "t-9");
  EXPECT_EQ(r->vkey->user_role, "internal_user");
  EXPECT_TRUE(r->vkey->token.empty());
  EXPECT_FALSE(r->is_master);

  c["scope"] = "openid litellm_proxy_admin";
  r = a.authenticate(sign(key_a(), {{"alg", "RS256"}, {"kid", "a"}}, c));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->vkey->user_role, "proxy_admin");

  now = t0 + 3600;
  r = a.authenticate(sign(key_a(), {{"alg", "RS256"}, {"kid", "a"}}, c));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "Authentication Error, JWT expired at 2027-01-15T08:10:00Z");
  now = t0;

  auto no_sub = claims_now();
  no_sub.erase("sub");
  r = a.authenticate(sign(key_a(), {{"alg", "RS256"}, {"kid", "a"}}, no_sub));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "Authentication Error, the JWT has no 'sub' claim (user_id_jwt_field)");

  // A rotated-out key: refused (and a refresh is asked for).
  r = a.authenticate(sign(key_b(), {{"alg", "RS256"}, {"kid", "b"}}, claims_now()));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("'b' is not in the issuer's JWKS"), std::string::npos);
}

TEST(jwt_auth, a_remembered_token_stops_working_once_its_key_leaves_the_jwks) {
  net::io_context ioc;
  upstream::client client(ioc.get_executor());
  auth::jwks_cache cache(ioc.get_executor(), client, {.url = "http://127.0.0.1:1/jwks"});
  cache.set_keys(keys_of({&key_a(), &key_b()}));
  auth::jwt_auth_settings s;
  s.enabled = true;
  s.user_id_jwt_field = "sub";
  long long now = t0;
  auth::jwt_authenticator a(s, {&cache}, [&now] { return at(now); });
  const auto token = sign(key_a(), {{"alg", "RS256"}, {"kid", "a"}}, claims_now());
  ASSERT_TRUE(a.authenticate(token));
  EXPECT_EQ(a.remembered(), 1u);
  ASSERT_TRUE(a.authenticate(token));  // from the memo
  EXPECT_EQ(a.remembered(), 1u);
  now = t0 + 600 + 60;  // past exp + leeway: verified again, and refused
  EXPECT_FALSE(a.authenticate(token));
  now = t0;
  ASSERT_TRUE(a.authenticate(token));
  cache.set_keys(keys_of({&key_b()}));  // a refresh without key a
  auto r = a.authenticate(token);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("'a' is not in the issuer's JWKS"), std::string::npos) << r.error().message;
}

TEST(jwt_auth, looks_like_jwt) {
  EXPECT_TRUE(auth::looks_like_jwt("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"));
  EXPECT_FALSE(auth::looks_like_jwt("sk-1234567890abcdefghijkl"));
  EXPECT_FALSE(auth::looks_like_jwt("eyJhbGciOiJSUzI1NiJ9eyJzdWIiOiJ4In0c2ln"));
}

TEST(jwt_auth, owner_key_round_trip) {
  auth::virtual_key k;
  k.user_id = "u:1";
  k.team_id = "";
  k.user_role = "proxy_admin";
  auto key = auth::jwt_owner_key(k);
  EXPECT_TRUE(key.starts_with("jwt:"));
  auto o = auth::parse_jwt_owner_key(key);
  EXPECT_EQ(o.user_id, "u:1");
  EXPECT_EQ(o.team_id, "");
  EXPECT_EQ(o.role, "proxy_admin");
}
