// libFuzzer target: providers::scan_json against nlohmann::json. Traps unless the
// scanner accepts exactly the documents nlohmann parses (within the nesting limit), and
// unless, for an object, its member list matches nlohmann's view of the same object:
// the same keys (decoded) with values that parse to the same JSON, and json_member_value
// builds each of them exactly as nlohmann does (types included).
#include "switchyard/providers/json_scan.hpp"

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace {

using switchyard::providers::json_kind;
using switchyard::providers::scan_json;
using json = nlohmann::json;

constexpr std::size_t depth = 64;

bool nesting_within(std::string_view text) {  // nlohmann has no limit: apply ours
  std::size_t d = 0;
  bool in_str = false;
  bool esc = false;
  for (char c : text) {
    if (in_str) {
      if (esc) {
        esc = false;
      } else if (c == '\\') {
        esc = true;
      } else if (c == '"') {
        in_str = false;
      }
    } else if (c == '"') {
      in_str = true;
    } else if (c == '[' || c == '{') {
      if (++d > depth) {
        return false;
      }
    } else if ((c == ']' || c == '}') && d > 0) {
      --d;
    }
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto scan = scan_json(text, depth);
  if (scan.ok != switchyard::providers::json_valid(text, depth)) {
    __builtin_trap();
  }
  if (text.find('\0') != std::string_view::npos) {
    // nlohmann stops at a NUL byte as if the input ended there ("0\0junk" parses as 0);
    // the scanner rejects raw NULs outside strings, as RFC 8259 does. Not comparable.
    return 0;
  }
  json parsed = json::parse(text, nullptr, false);
  const bool theirs = !parsed.is_discarded() && nesting_within(text);
  if (!nesting_within(text)) {
    if (scan.ok) {
      __builtin_trap();  // deeper than the limit must fail
    }
    return 0;
  }
  if (scan.ok != theirs) {
    __builtin_trap();
  }
  if (!scan.ok || !parsed.is_object()) {
    return 0;
  }
  if (scan.root != json_kind::object) {
    __builtin_trap();
  }
  // Last duplicate wins on both sides.
  for (const auto& [k, v] : parsed.items()) {
    const auto* m = scan.find(k);
    if (m == nullptr || json::parse(m->value) != v) {
      __builtin_trap();
    }
    // The DOM-free value builder agrees with nlohmann, types included.
    const json built = switchyard::providers::json_member_value(*m);
    if (built != v || built.type() != v.type()) {
      __builtin_trap();
    }
  }
  for (const auto& m : scan.members) {
    if (!parsed.contains(std::string(m.key))) {
      __builtin_trap();
    }
  }
  return 0;
}
