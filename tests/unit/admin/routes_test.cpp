// The management route table (admin/routes.hpp): lookups, methods, and README.md's
// "Endpoints" table, which must list exactly the table's routes with their methods.
#include "switchyard/admin/routes.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>

namespace {

namespace admin = switchyard::admin;

// The rows of the table under "## Endpoints" in README.md: path -> the methods of its
// row(s), as "GET, POST". A path cell holds `backticked` paths; "[?..." or "?..." after a
// path is its query, not part of it.
std::map<std::string, admin::method_set> readme_endpoints() {
  std::ifstream in(std::string(SWITCHYARD_SOURCE_DIR) + "/README.md");
  EXPECT_TRUE(in.good()) << "README.md not found under " << SWITCHYARD_SOURCE_DIR;
  std::map<std::string, admin::method_set> out;
  std::string line;
  bool in_section = false;
  const std::regex code("`([^`]+)`");
  while (std::getline(in, line)) {
    if (line.starts_with("## ")) {
      in_section = line == "## Endpoints";
      continue;
    }
    if (!in_section || !line.starts_with("| ") || line.starts_with("|---") || line.starts_with("| Method")) {
      continue;
    }
    // | METHODS | PATHS | auth | notes |
    auto second = line.find(" | ");
    auto third = line.find(" | ", second + 3);
    if (second == std::string::npos || third == std::string::npos) {
      ADD_FAILURE() << "not a table row: " << line;
      continue;
    }
    admin::method_set methods = 0;
    std::stringstream names(line.substr(2, second - 2));
    for (std::string m; std::getline(names, m, ',');) {
      m.erase(0, m.find_first_not_of(' '));
      auto bit = admin::method_bit(m);
      EXPECT_NE(bit, 0) << "unknown method '" << m << "' in: " << line;
      methods |= bit;
    }
    auto paths = line.substr(second + 3, third - second - 3);
    for (std::sregex_iterator it(paths.begin(), paths.end(), code), end; it != end; ++it) {
      std::string p = (*it)[1];
      p = p.substr(0, p.find_first_of("[?"));
      out[p] |= methods;
    }
  }
  return out;
}

// "/team/new" -> "/team/"; "/v1/model/info" -> "/v1/model/": where management paths live.
std::set<std::string> management_folders() {
  std::set<std::string> out;
  for (const auto& r : admin::management_routes()) {
    out.insert(std::string(r.path.substr(0, r.path.rfind('/') + 1)));
    if (!r.alias.empty()) {
      out.insert(std::string(r.alias.substr(0, r.alias.rfind('/') + 1)));
    }
  }
  out.erase("/");  // a top-level route (/health) makes no folder of everything
  return out;
}

TEST(routes, readme_lists_every_route_with_its_methods) {
  auto readme = readme_endpoints();
  ASSERT_FALSE(readme.empty());
  for (const auto& r : admin::management_routes()) {
    for (auto path : {r.path, r.alias}) {
      if (path.empty()) {
        continue;
      }
      auto it = readme.find(std::string(path));
      if (it == readme.end()) {
        ADD_FAILURE() << "README.md, Endpoints: " << path << " (" << admin::method_names(r.methods)
                      << ") is missing";
        continue;
      }
      EXPECT_EQ(admin::method_names(it->second), admin::method_names(r.methods))
          << "README.md, Endpoints: the methods of " << path;
    }
  }
}

TEST(routes, readme_lists_no_management_route_the_table_lacks) {
  auto folders = management_folders();
  std::set<std::string> known;
  for (const auto& r : admin::management_routes()) {
    known.insert(std::string(r.path));
    known.insert(std::string(r.alias));
  }
  for (auto p : admin::builtin_paths()) {
    known.insert(std::string(p));  // answered before the table (probes, /metrics)
  }
  for (const auto& [path, methods] : readme_endpoints()) {
    bool management = false;
    for (const auto& f : folders) {
      management = management || path.starts_with(f);
    }
    if (management) {
      EXPECT_TRUE(known.contains(path)) << "README.md, Endpoints: " << path << " (" << admin::method_names(methods)
                                        << ") is not in the route table (src/admin/routes.cpp)";
    }
  }
}

TEST(routes, every_route_once_with_methods_and_a_handler) {
  std::set<std::string_view> seen;
  for (const auto& r : admin::management_routes()) {
    EXPECT_TRUE(seen.insert(r.path).second) << r.path;
    if (!r.alias.empty()) {
      EXPECT_TRUE(seen.insert(r.alias).second) << r.alias;
    }
    EXPECT_NE(r.methods, 0) << r.path;
    EXPECT_NE(r.handler, nullptr) << r.path;
    EXPECT_EQ(admin::find_route(r.path), &r) << r.path;
  }
}

TEST(routes, lookup_by_path_alias_and_pattern) {
  std::string_view param;
  const auto* regen = admin::find_route("/key/sk-abc/regenerate", &param);
  ASSERT_NE(regen, nullptr);
  EXPECT_EQ(regen->path, "/key/regenerate");
  EXPECT_EQ(param, "sk-abc");
  param = {};
  EXPECT_EQ(admin::find_route("/key/regenerate", &param), regen);
  EXPECT_TRUE(param.empty());
  EXPECT_EQ(admin::find_route("/key//regenerate"), nullptr);
  EXPECT_EQ(admin::find_route("/key/regenerate/x"), nullptr);

  const auto* info = admin::find_route("/v1/model/info");
  ASSERT_NE(info, nullptr);
  EXPECT_EQ(info->path, "/model/info");
  EXPECT_FALSE(info->needs_db);
  EXPECT_TRUE(admin::find_route("/team/new")->needs_db);

  for (const char* unknown : {"/key/nope", "/team", "/team/", "/v1/chat/completions", "/user/info/x", ""}) {
    EXPECT_EQ(admin::find_route(unknown), nullptr) << unknown;
  }
}

TEST(routes, methods) {
  EXPECT_EQ(admin::method_bit("GET"), admin::method_get);
  EXPECT_EQ(admin::method_bit("HEAD"), admin::method_get);
  EXPECT_EQ(admin::method_bit("PATCH"), admin::method_patch);
  EXPECT_EQ(admin::method_bit("PUT"), 0);
  EXPECT_EQ(admin::method_bit("get"), 0);
  EXPECT_EQ(admin::method_names(admin::find_route("/organization/update")->methods), "POST, PATCH");
  EXPECT_EQ(admin::method_names(admin::find_route("/organization/delete")->methods), "POST, DELETE");
  EXPECT_EQ(admin::method_names(admin::find_route("/budget/info")->methods), "GET, POST");
  EXPECT_EQ(admin::method_names(admin::find_route("/key/list")->methods), "GET");
}

}  // namespace
