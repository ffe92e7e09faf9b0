// A validating JSON scanner that builds no DOM: the hot path's way to read a request
// or response body without paying for nlohmann's tree (a DOM per request was most of the
// gateway's CPU for large bodies; figures in docs/json-readers.md).
//
// scan_json() checks that `text` is exactly one JSON value, with the rules nlohmann's
// parser applies (RFC 8259 grammar, string escapes incl. surrogate pairs, no raw control
// characters, valid UTF-8, nesting limit), and, when that value is an object, lists its
// top-level members as spans into `text`. Strings are skipped 32 bytes at a time where
// the CPU has AVX2 (UTF-8 validated and two-byte escapes stepped over in the same loop),
// else 16 (SSE2) or 8 (SWAR): a 1 MB prompt costs 20-110 µs and no allocation (see
// docs/json-readers.md; ./bench/json.sh measures it against simdjson and nlohmann).
// tests/fuzz/json_scan_fuzz.cpp checks that it accepts exactly what nlohmann accepts.
//
// Thread: any; pure functions. The spans point into `text`: keep it alive.
#pragma once
#include <nlohmann/json_fwd.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace switchyard::providers {

enum class json_kind : std::uint8_t { null, boolean, number, string, array, object };

struct json_member {
  std::string_view key;    // the decoded key (a view into `text` unless it had escapes)
  std::string_view whole;  // from the key's opening quote to the end of the value
  std::string_view value;  // the value's bytes, exactly as received
  json_kind kind = json_kind::null;
  // Bytes of string values (not keys) anywhere inside the value: a cheap size of the
  // text it carries, for token estimates.
  std::size_t text_bytes = 0;
};

struct json_scan {
  json_scan() = default;
  json_scan(json_scan&&) = default;
  json_scan& operator=(json_scan&&) = default;
  json_scan(const json_scan&) = delete;  // keys may point into unescaped_keys
  json_scan& operator=(const json_scan&) = delete;

  bool ok = false;
  std::size_t error_offset = 0;  // where it went wrong (when !ok)
  const char* error = "";        // what went wrong (static text)
  bool too_deep = false;         // failed because of the nesting limit
  json_kind root = json_kind::null;
  std::vector<json_member> members;   // top-level members in order (root is an object)
  std::vector<std::string> unescaped_keys;  // storage for keys that had escapes

  // The last member with this key (JSON objects: the last duplicate wins, as nlohmann).
  const json_member* find(std::string_view key) const;
};

// Validates `text`; lists the root object's members. max_depth: arrays/objects nested
// deeper fail (too_deep). Allocates only the member list.
json_scan scan_json(std::string_view text, std::size_t max_depth = 256);
// The same into `out`, reusing its storage (a stream translator scans every event with
// one json_scan: no allocation per event). Returns out.ok.
bool scan_json(std::string_view text, json_scan& out, std::size_t max_depth = 256);

// Validation only (no member list): true if `text` is one valid JSON value.
bool json_valid(std::string_view text, std::size_t max_depth = 256);

// The value of a member of a successful scan, as nlohmann would parse it (numbers: unsigned
// when non-negative integers, signed when negative, else double). Scalars are built
// directly from the validated bytes; arrays and objects go through nlohmann's parser.
nlohmann::json json_member_value(const json_member& m);

// The decoded contents of a validated JSON string literal (the bytes between the quotes).
std::string json_unescape(std::string_view inside_quotes);

// The inside of a validated JSON string literal (the bytes between the quotes) as
// nlohmann's dump() writes the string it decodes to: the same bytes but for `\/` and `\u`
// escapes, which are written decoded (json_dump_codepoint). One pass, the text between
// escapes copied in runs: a prompt in any language, as UTF-8 or with every non-ASCII
// character escaped, costs about its length.
void append_as_dumped(std::string& out, std::string_view inside_quotes);

// A JSON string literal (with quotes) for `s`: escapes ", \ and control characters.
void append_json_string(std::string& out, std::string_view s);

}  // namespace switchyard::providers
