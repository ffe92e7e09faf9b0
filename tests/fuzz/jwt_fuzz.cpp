// libFuzzer target: the JWT and JWKS readers (core/jwt.hpp) on untrusted bytes: a bearer
// token from any client, a JWKS document from a provider. Nothing may crash; every token
// is refused (none is signed by the fixed test key); base64url decodes what it encodes.
#include "switchyard/core/jwt.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace switchyard::core;
  const std::string_view in(reinterpret_cast<const char*>(data), size);

  auto decoded = decode_jwt(in);
  if (decoded && decoded->signing_input.size() >= in.size()) {
    std::abort();  // the signing input is a strict prefix of the token
  }
  auto keys = parse_jwks(in);
  static const jwks empty;
  claim_checks want;
  want.audiences = {"switchyard"};
  if (verify_jwt(in, keys ? *keys : empty, want, std::chrono::system_clock::now())) {
    std::abort();  // no key signed it: a token must never verify
  }
  if (auto back = base64url_decode(base64url_encode(in)); !back || *back != in) {
    std::abort();
  }
  (void)base64url_decode(in);
  return 0;
}
