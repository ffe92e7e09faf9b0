#include "values.hpp"

#include "switchyard/config/config.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cmath>
#include <limits>
#include <string_view>

namespace switchyard::config::detail {

namespace {

bool one_of(std::string_view s, std::initializer_list<std::string_view> options) {
  for (auto o : options) {
    if (s == o) {
      return true;
    }
  }
  return false;
}

std::optional<bool> yaml11_bool(std::string_view s) {
  if (one_of(s, {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON"})) {
    return true;
  }
  if (one_of(s, {"false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF"})) {
    return false;
  }
  return std::nullopt;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front())) != 0) {
    s.remove_prefix(1);
  }
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())) != 0) {
    s.remove_suffix(1);
  }
  return s;
}

std::string without_underscores(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (c != '_') {
      out.push_back(c);
    }
  }
  return out;
}

bool all_of(std::string_view s, bool (*pred)(char)) {
  if (s.empty()) {
    return false;
  }
  for (char c : s) {
    if (!pred(c)) {
      return false;
    }
  }
  return true;
}

bool is_digit_or_us(char c) { return (c >= '0' && c <= '9') || c == '_'; }
bool is_hex_or_us(char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0 || c == '_'; }

// PyYAML int: [-+]?(0|[1-9][0-9_]*) or 0x[0-9a-fA-F_]+ (the subset we reproduce).
std::optional<nlohmann::json> yaml11_int(std::string_view s) {
  std::string_view body = s;
  bool negative = false;
  if (!body.empty() && (body.front() == '-' || body.front() == '+')) {
    negative = body.front() == '-';
    body.remove_prefix(1);
  }
  int base = 10;
  if (body.size() > 2 && body[0] == '0' && (body[1] == 'x' || body[1] == 'X')) {
    body.remove_prefix(2);
    if (!all_of(body, is_hex_or_us)) {
      return std::nullopt;
    }
    base = 16;
  } else {
    if (!all_of(body, is_digit_or_us) || body.front() == '_' || (body.size() > 1 && body.front() == '0')) {
      return std::nullopt;
    }
  }
  const std::string digits = without_underscores(body);
  if (digits.empty()) {
    return std::nullopt;
  }
  unsigned long long v = 0;
  auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v, base);
  if (ec == std::errc::result_out_of_range ||
      v > static_cast<unsigned long long>(std::numeric_limits<long long>::max())) {
    // Too big for an int64: keep it as a float, like a JSON parser would.
    double d = 0;
    std::from_chars(digits.data(), digits.data() + digits.size(), d);
    return nlohmann::json(negative ? -d : d);
  }
  if (ec != std::errc{} || ptr != digits.data() + digits.size()) {
    return std::nullopt;
  }
  const auto signed_v = static_cast<long long>(v);
  return nlohmann::json(negative ? -signed_v : signed_v);
}

// PyYAML float: needs a '.', optional exponent; or .inf / .nan.
std::optional<double> yaml11_float(std::string_view s) {
  std::string_view body = s;
  bool negative = false;
  if (!body.empty() && (body.front() == '-' || body.front() == '+')) {
    negative = body.front() == '-';
    body.remove_prefix(1);
  }
  if (one_of(body, {".inf", ".Inf", ".INF"})) {
    return negative ? -std::numeric_limits<double>::infinity() : std::numeric_limits<double>::infinity();
  }
  if (s == ".nan" || s == ".NaN" || s == ".NAN") {
    return std::numeric_limits<double>::quiet_NaN();
  }
  const auto dot = body.find('.');
  if (dot == std::string_view::npos) {
    return std::nullopt;
  }
  const auto exp = body.find_first_of("eE");
  if (exp != std::string_view::npos && exp < dot) {
    return std::nullopt;
  }
  std::string_view mantissa = body.substr(0, exp);
  std::string_view int_part = mantissa.substr(0, dot);
  std::string_view frac_part = mantissa.substr(dot + 1);
  const bool int_ok = int_part.empty() || (all_of(int_part, is_digit_or_us) && int_part.front() != '_');
  const bool frac_ok = frac_part.empty() || all_of(frac_part, is_digit_or_us);
  if (!int_ok || !frac_ok || (int_part.empty() && frac_part.empty())) {
    return std::nullopt;
  }
  if (exp != std::string_view::npos) {
    std::string_view e = body.substr(exp + 1);
    if (e.size() < 2 || (e.front() != '-' && e.front() != '+')) {
      return std::nullopt;
    }
    e.remove_prefix(1);
    for (char c : e) {
      if (c < '0' || c > '9') {
        return std::nullopt;
      }
    }
  }
  const std::string clean = without_underscores(body);
  double d = 0;
  auto [ptr, ec] = std::from_chars(clean.data(), clean.data() + clean.size(), d);
  if (ec != std::errc{} || ptr != clean.data() + clean.size()) {
    return std::nullopt;
  }
  return negative ? -d : d;
}

// A string that is entirely a finite decimal number (after trimming blanks).
std::optional<double> lenient_number(std::string_view s) {
  s = trim(s);
  if (!s.empty() && s.front() == '+') {
    s.remove_prefix(1);
  }
  if (s.empty()) {
    return std::nullopt;
  }
  double d = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), d, std::chars_format::general);
  if (ec != std::errc{} || ptr != s.data() + s.size() || !std::isfinite(d)) {
    return std::nullopt;
  }
  return d;
}

std::string got(const node& n) {
  if (n.is_scalar() && n.env_var.empty()) {
    const auto j = scalar_json(n);
    if (j.is_boolean()) {
      return "the boolean " + n.text;
    }
    if (j.is_number()) {
      return "the number " + n.text;
    }
    // YAML's infinities and not-a-number read as strings here: say what they are.
    static constexpr std::string_view non_finite[] = {".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf",
                                                      "-.Inf", "-.INF", ".nan", ".NaN", ".NAN"};
    if (!n.quoted && std::find(std::begin(non_finite), std::end(non_finite), n.text) != std::end(non_finite)) {
      return "the non-finite number " + n.text + " (only finite numbers are accepted)";
    }
    return "the string " + describe(n);
  }
  return describe(n);
}

}  // namespace

bool valid_ip_or_cidr(std::string_view s) {
  const auto slash = s.find('/');
  const std::string addr(s.substr(0, slash));
  unsigned char buf[16];
  int bits = 0;
  if (inet_pton(AF_INET, addr.c_str(), buf) == 1) {
    bits = 32;
  } else if (inet_pton(AF_INET6, addr.c_str(), buf) == 1) {
    bits = 128;
  } else {
    return false;
  }
  if (slash == std::string_view::npos) {
    return true;
  }
  const auto prefix = s.substr(slash + 1);
  int n = -1;
  auto [end, ec] = std::from_chars(prefix.data(), prefix.data() + prefix.size(), n);
  return ec == std::errc() && end == prefix.data() + prefix.size() && !prefix.empty() && n >= 0 && n <= bits;
}

bool is_valid_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t len = 0;
    unsigned cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    }
    if ((c & 0xe0) == 0xc0) {
      len = 2;
      cp = c & 0x1fu;
    } else if ((c & 0xf0) == 0xe0) {
      len = 3;
      cp = c & 0x0fu;
    } else if ((c & 0xf8) == 0xf0) {
      len = 4;
      cp = c & 0x07u;
    } else {
      return false;
    }
    if (i + len > s.size()) {
      return false;
    }
    for (std::size_t k = 1; k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xc0) != 0x80) {
        return false;
      }
      cp = (cp << 6) | (cc & 0x3fu);
    }
    constexpr unsigned min_for_len[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_for_len[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
      return false;
    }
    i += len;
  }
  return true;
}

const char* value_type_name(value_type t) {
  switch (t) {
    case value_type::any:
      return "any value";
    case value_type::string:
      return "a string";
    case value_type::boolean:
      return "a boolean (true/false)";
    case value_type::integer:
      return "an integer";
    case value_type::number:
      return "a number";
    case value_type::list:
      return "a list";
    case value_type::mapping:
      return "a mapping";
    case value_type::string_or_list:
      return "a string or a list";
    case value_type::list_or_mapping:
      return "a list or a mapping";
  }
  return "a value";
}

void fail(const node& n, const std::string& path, const std::string& message) {
  throw config_error(n.file ? *n.file : std::string(), n.line, path, message);
}

nlohmann::json scalar_json(const node& n) {
  if (n.is_null()) {
    return nullptr;
  }
  if (n.quoted || !n.env_var.empty()) {
    return n.text;
  }
  if (auto b = yaml11_bool(n.text)) {
    return *b;
  }
  if (auto i = yaml11_int(n.text)) {
    return *i;
  }
  if (auto f = yaml11_float(n.text)) {
    if (std::isfinite(*f)) {
      return *f;
    }
    return n.text;  // JSON has no inf/nan: keep the text
  }
  return n.text;
}

nlohmann::json to_json(const node& n) {
  switch (n.type) {
    case node::kind::null:
      return nullptr;
    case node::kind::scalar:
      return scalar_json(n);
    case node::kind::sequence: {
      auto arr = nlohmann::json::array();
      for (const auto& item : n.items) {
        arr.push_back(to_json(item));
      }
      return arr;
    }
    case node::kind::mapping: {
      auto obj = nlohmann::json::object();
      for (const auto& e : n.entries) {
        obj[e.key] = to_json(e.value);
      }
      return obj;
    }
  }
  return nullptr;
}

void check_type(const node& n, value_type t, const std::string& path) {
  if (n.is_null()) {
    return;
  }
  switch (t) {
    case value_type::any:
      return;
    case value_type::string:
      if (!n.is_scalar()) {
        fail(n, path, std::string("expected ") + value_type_name(t) + ", got " + got(n));
      }
      return;
    case value_type::boolean:
      (void)read_bool(&n, path);
      return;
    case value_type::integer:
      (void)read_integer(&n, path);
      return;
    case value_type::number:
      (void)read_number(&n, path);
      return;
    case value_type::list:
      if (!n.is_sequence()) {
        fail(n, path, std::string("expected ") + value_type_name(t) + ", got " + got(n));
      }
      return;
    case value_type::mapping:
      if (!n.is_mapping()) {
        fail(n, path, std::string("expected ") + value_type_name(t) + ", got " + got(n));
      }
      return;
    case value_type::string_or_list:
      if (n.is_mapping()) {
        fail(n, path, std::string("expected ") + value_type_name(t) + ", got " + got(n));
      }
      return;
    case value_type::list_or_mapping:
      if (n.is_scalar()) {
        fail(n, path, std::string("expected ") + value_type_name(t) + ", got " + got(n));
      }
      return;
  }
}

std::optional<std::string> read_string(const node* n, const std::string& path) {
  if (n == nullptr || n->is_null()) {
    return std::nullopt;
  }
  if (!n->is_scalar()) {
    fail(*n, path, "expected a string, got " + got(*n));
  }
  return n->text;
}

std::optional<bool> read_bool(const node* n, const std::string& path) {
  if (n == nullptr || n->is_null()) {
    return std::nullopt;
  }
  if (n->is_scalar()) {
    const auto j = scalar_json(*n);
    if (j.is_boolean()) {
      return j.get<bool>();
    }
    if (j.is_string()) {
      const std::string s = lower(trim(n->text));
      if (s == "true" || s == "yes" || s == "on" || s == "1") {
        return true;
      }
      if (s == "false" || s == "no" || s == "off" || s == "0") {
        return false;
      }
    }
  }
  fail(*n, path, "expected a boolean (true/false), got " + got(*n));
}

std::optional<double> read_number(const node* n, const std::string& path) {
  if (n == nullptr || n->is_null()) {
    return std::nullopt;
  }
  if (n->is_scalar()) {
    const auto j = scalar_json(*n);
    if (j.is_number()) {
      return j.get<double>();
    }
    if (j.is_string()) {
      if (auto d = lenient_number(n->text)) {
        return d;
      }
    }
  }
  fail(*n, path, "expected a number, got " + got(*n));
}

std::optional<long long> read_integer(const node* n, const std::string& path) {
  if (n == nullptr || n->is_null()) {
    return std::nullopt;
  }
  if (n->is_scalar()) {
    const auto j = scalar_json(*n);
    if (j.is_number_integer()) {
      return j.get<long long>();
    }
    std::optional<double> d;
    if (j.is_number_float()) {
      d = j.get<double>();
    } else if (j.is_string()) {
      d = lenient_number(n->text);
    }
    if (d) {
      constexpr double limit = 9.0e15;  // exactly representable integers only
      if (std::floor(*d) == *d && std::fabs(*d) < limit) {
        return static_cast<long long>(*d);
      }
      fail(*n, path, "expected an integer, got " + got(*n));
    }
  }
  fail(*n, path, "expected an integer, got " + got(*n));
}

std::optional<int> read_int(const node* n, const std::string& path, long long lo, long long hi) {
  auto v = read_integer(n, path);
  if (!v) {
    return std::nullopt;
  }
  if (*v < lo || *v > hi) {
    fail(*n, path, "must be between " + std::to_string(lo) + " and " + std::to_string(hi) + ", got " + got(*n));
  }
  return static_cast<int>(*v);
}

std::optional<double> read_non_negative(const node* n, const std::string& path) {
  auto v = read_number(n, path);
  if (v && *v < 0) {
    fail(*n, path, "must not be negative, got " + got(*n));
  }
  return v;
}

}  // namespace switchyard::config::detail
