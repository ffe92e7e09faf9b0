// Private to config/: typed reads of tree nodes, with errors that carry file:line:key.
//
// Scalar typing follows PyYAML's safe_load (YAML 1.1), which is what LiteLLM uses:
//   plain true/false/yes/no/on/off (any of lower/Title/UPPER case) -> bool,
//   plain decimal or 0x integers (underscores allowed) -> int,
//   plain decimals with a '.' (optional exponent), .inf, .nan -> float,
//   everything else, and every quoted/block/!!str scalar -> string.
// (Not reproduced: YAML 1.1 octal/binary/sexagesimal ints and timestamps; they stay strings.)
//
// Leniency of the typed readers (LiteLLM reads env-substituted values, which are strings):
//   number/integer fields accept a string that is entirely a decimal number ("30", " 2.5 ");
//   integer fields also accept integral floats (30.0); boolean fields accept the strings
//   true/false/yes/no/on/off/1/0 (any case). Null means "not set" for every optional field.
#pragma once
#include "yaml_tree.hpp"

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <string_view>

namespace switchyard::config::detail {

enum class value_type {
  any,
  string,    // any scalar, read as its text
  boolean,
  integer,
  number,
  list,
  mapping,
  string_or_list,
  list_or_mapping,
};
const char* value_type_name(value_type t);

// Strict UTF-8 (no overlongs, surrogates or code points above U+10FFFF).
bool is_valid_utf8(std::string_view s);

// An IPv4 or IPv6 address, optionally with a "/prefix" no longer than the address.
bool valid_ip_or_cidr(std::string_view s);

// Throws config_error at the node's file:line with `path` as the key.
[[noreturn]] void fail(const node& n, const std::string& path, const std::string& message);

// The JSON value of a scalar (typed as described above); null for null nodes.
nlohmann::json scalar_json(const node& n);
// The whole subtree as JSON (mappings -> objects, sequences -> arrays).
nlohmann::json to_json(const node& n);

// Checks `n` against `t` (null always passes: unset). Throws config_error.
void check_type(const node& n, value_type t, const std::string& path);

// Typed reads: nullopt when the node is absent (nullptr) or null; config_error on a wrong type.
std::optional<std::string> read_string(const node* n, const std::string& path);
std::optional<bool> read_bool(const node* n, const std::string& path);
std::optional<double> read_number(const node* n, const std::string& path);
std::optional<long long> read_integer(const node* n, const std::string& path);
// As read_integer, within [lo, hi].
std::optional<int> read_int(const node* n, const std::string& path, long long lo, long long hi);
// As read_number, and not negative.
std::optional<double> read_non_negative(const node* n, const std::string& path);

}  // namespace switchyard::config::detail
