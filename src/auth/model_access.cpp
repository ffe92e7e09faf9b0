#include "switchyard/auth/model_access.hpp"

#include <algorithm>
#include <array>

namespace switchyard::auth {

namespace {

// Python's repr of a list of strings: ['a', 'b'] (as LiteLLM's messages print it).
std::string py_list(const std::vector<std::string>& v) {
  std::string out = "[";
  for (std::size_t i = 0; i < v.size(); ++i) {
    out += (i == 0 ? "'" : ", '") + v[i] + "'";
  }
  return out + "]";
}

}  // namespace

// LiteLLM turns an entry holding a '*' into a regular expression, each '*' replaced by
// ".*", and matches it against the whole model name; nothing else is escaped, so a '.'
// stands for any one character. The same, without a regex (nothing compiled, nothing
// allocated, on every request): backtracking to the last '*' when the rest fails.
bool wildcard_matches(std::string_view pattern, std::string_view name) {
  constexpr auto none = std::string_view::npos;
  std::size_t p = 0;
  std::size_t n = 0;
  std::size_t star = none;  // the last '*' seen in the pattern
  std::size_t resume = 0;   // where in the name that '*' stops swallowing, so far
  while (n < name.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      resume = n;
    } else if (p < pattern.size() && (pattern[p] == '.' || pattern[p] == name[n])) {
      ++p;
      ++n;
    } else if (star != none) {
      p = star + 1;  // the '*' takes one more character
      n = ++resume;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') {
    ++p;
  }
  return p == pattern.size();
}

namespace {

bool entry_allows(const std::string& e, std::string_view model, const access_groups& groups) {
  if (e == model || e == "all-proxy-models" || e == "*") {
    return true;
  }
  if (e.find('*') != std::string::npos && wildcard_matches(e, model)) {
    return true;  // "openai/*" matches "openai/gpt-4o", "gpt-4*" matches "gpt-4o-mini"
  }
  if (auto g = groups.find(e); g != groups.end()) {
    return std::find(g->second.begin(), g->second.end(), model) != g->second.end();
  }
  return false;
}

}  // namespace

std::string apply_model_aliases(const virtual_key& k, std::string_view model) {
  std::string m(model);
  if (auto it = k.aliases.find(m); it != k.aliases.end() && !it->second.empty()) {
    m = it->second;
  }
  if (auto it = k.team_model_aliases.find(m); it != k.team_model_aliases.end() && !it->second.empty()) {
    m = it->second;
  }
  return m;
}

bool list_allows(const std::vector<std::string>& list, std::string_view model, const access_groups& groups) {
  return list.empty() ||
         std::any_of(list.begin(), list.end(), [&](const std::string& e) { return entry_allows(e, model, groups); });
}

access_denial check_access(const virtual_key& k, std::string_view model, const access_groups& groups) {
  bool key_all_team = std::find(k.models.begin(), k.models.end(), "all-team-models") != k.models.end();
  if (!key_all_team && !list_allows(k.models, model, groups)) {
    return access_denial::key;
  }
  if (k.team.exists && !list_allows(k.team.models, model, groups)) {
    return access_denial::team;
  }
  if (k.user.exists && !list_allows(k.user.models, model, groups)) {
    return access_denial::user;
  }
  if (k.org.exists && !list_allows(k.org.models, model, groups)) {
    return access_denial::org;
  }
  return access_denial::none;
}

core::error access_error(const virtual_key& k, access_denial d, std::string_view model) {
  const char* who = "key";
  const std::vector<std::string>* models = &k.models;
  switch (d) {
    case access_denial::team:
      who = "team";
      models = &k.team.models;
      break;
    case access_denial::user:
      who = "user";
      models = &k.user.models;
      break;
    case access_denial::org:
      who = "org";
      models = &k.org.models;
      break;
    default:
      break;
  }
  auto e = core::make_error(core::errc::forbidden,
                            std::string(who) + " not allowed to access model. This " + who +
                                " can only access models=" + py_list(*models) + ". Tried to access " +
                                std::string(model),
                            "model");
  e.type = std::string(who) + "_model_access_denied";
  return e;
}

role parse_role(std::string_view s) {
  if (s == "proxy_admin") {
    return role::proxy_admin;
  }
  if (s == "proxy_admin_viewer") {
    return role::proxy_admin_viewer;
  }
  if (s == "org_admin") {
    return role::org_admin;
  }
  if (s == "internal_user") {
    return role::internal_user;
  }
  if (s == "internal_user_viewer") {
    return role::internal_user_viewer;
  }
  return role::none;
}

const char* role_name(role r) {
  switch (r) {
    case role::proxy_admin: return "proxy_admin";
    case role::proxy_admin_viewer: return "proxy_admin_viewer";
    case role::org_admin: return "org_admin";
    case role::internal_user: return "internal_user";
    case role::internal_user_viewer: return "internal_user_viewer";
    case role::none: return "";
  }
  return "";
}

bool valid_user_role(std::string_view s) {
  static constexpr std::array<std::string_view, 7> names = {"proxy_admin",   "proxy_admin_viewer",   "org_admin",
                                                            "internal_user", "internal_user_viewer", "team",
                                                            "customer"};
  return std::find(names.begin(), names.end(), s) != names.end();
}

}  // namespace switchyard::auth
