#include "switchyard/cache/controls.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>

namespace switchyard::cache {

using json = nlohmann::json;

namespace {

core::error bad(const std::string& what) {
  return core::make_error(core::errc::bad_request, "Invalid cache control: " + what, "cache");
}

std::optional<double> header_s_maxage(std::string_view h) {
  // Comma-separated directives; names are case-insensitive.
  while (!h.empty()) {
    auto comma = h.find(',');
    auto d = h.substr(0, comma);
    h = comma == std::string_view::npos ? std::string_view{} : h.substr(comma + 1);
    while (!d.empty() && std::isspace(static_cast<unsigned char>(d.front()))) {
      d.remove_prefix(1);
    }
    while (!d.empty() && std::isspace(static_cast<unsigned char>(d.back()))) {
      d.remove_suffix(1);
    }
    constexpr std::string_view name = "s-maxage=";
    if (d.size() <= name.size()) {
      continue;
    }
    bool match = true;
    for (std::size_t i = 0; i < name.size(); ++i) {
      if (std::tolower(static_cast<unsigned char>(d[i])) != name[i]) {
        match = false;
        break;
      }
    }
    if (!match) {
      continue;
    }
    auto v = d.substr(name.size());
    long long n = 0;
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    if (ec == std::errc{} && p == v.data() + v.size() && n > 0) {
      return static_cast<double>(n);
    }
  }
  return std::nullopt;
}

}  // namespace

core::result<request_controls> parse_controls(const json* cache, std::string_view cache_control,
                                              const std::vector<std::string>& allowed) {
  request_controls c;
  c.header_ttl = header_s_maxage(cache_control);
  if (cache == nullptr || cache->is_null()) {
    return c;
  }
  if (!cache->is_object()) {
    return bad("`cache` must be an object");
  }
  for (const auto& [k, v] : cache->items()) {
    if (!allowed.empty() && std::find(allowed.begin(), allowed.end(), k) == allowed.end()) {
      auto e = core::make_error(core::errc::forbidden,
                                "Not allowed to set " + k + " as a cache control. Contact admin to change permissions.");
      return e;
    }
    if (k == "no-cache" || k == "no-store" || k == "use-cache") {
      if (!v.is_boolean()) {
        return bad("`" + k + "` must be a boolean");
      }
      bool b = v.get<bool>();
      (k == "no-cache" ? c.no_cache : k == "no-store" ? c.no_store : c.use_cache.emplace()) = b;
    } else if (k == "ttl" || k == "s-maxage" || k == "s-max-age") {
      if (!v.is_number() || v.get<double>() < 0) {
        return bad("`" + k + "` must be a number of seconds (>= 0)");
      }
      (k == "ttl" ? c.ttl : c.s_maxage) = v.get<double>();
    } else if (k == "namespace") {
      if (!v.is_string() && !v.is_null()) {
        return bad("`namespace` must be a string");
      }
      if (v.is_string() && v.get_ref<const std::string&>().size() > max_namespace_bytes) {
        return bad("`namespace` must be at most " + std::to_string(max_namespace_bytes) + " bytes");
      }
      if (v.is_string() && !v.get_ref<const std::string&>().empty()) {
        c.namespace_ = v.get<std::string>();
      }
    }
    // Other members are LiteLLM controls of other backends: ignored, as there.
  }
  return c;
}

}  // namespace switchyard::cache
