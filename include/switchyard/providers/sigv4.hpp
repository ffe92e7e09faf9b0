// AWS Signature Version 4 (header signing), for the Bedrock adapter. Pure functions:
// the caller passes the time, so a signature is reproducible (the unit test checks it
// against AWS's published test suite). Thread: any.
#pragma once
#include "switchyard/providers/openai.hpp"  // header_list

#include <chrono>
#include <string>
#include <string_view>

namespace switchyard::providers::aws {

struct credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // empty: long-term keys
};

struct sign_input {
  std::string_view method;   // "POST"
  std::string_view path;     // each '/'-separated segment is URI-encoded once for the canonical URI
  std::string_view query;    // the query as sent, without '?' ("" for none)
  const header_list* headers = nullptr;  // every header to sign, host and x-amz-date included
  std::string_view payload;  // the request body
};

struct signature {
  std::string canonical_request;
  std::string string_to_sign;
  std::string signed_headers;  // "host;x-amz-date"
  std::string signature;       // lower-case hex
  std::string authorization;   // the Authorization header's value
};

// Signs `in`. `amz_date` is the x-amz-date value (YYYYMMDDTHHMMSSZ); its first 8
// characters are the credential scope's date.
signature sign(const sign_input& in, const credentials& creds, std::string_view region, std::string_view service,
               std::string_view amz_date);

// "20150830T123600Z" for a time (UTC).
std::string amz_date(std::chrono::system_clock::time_point t);
// RFC 3986 encoding as SigV4 defines it: unreserved characters (A-Z a-z 0-9 - . _ ~)
// kept, everything else %XX with upper-case hex; '/' kept when `keep_slash`.
std::string uri_encode(std::string_view s, bool keep_slash);
// Lower-case hex SHA-256.
std::string sha256_hex(std::string_view data);

}  // namespace switchyard::providers::aws
