// The admin UI's static files: content-hashed names from the files' bytes, index.html's
// references rewritten to them, cache headers (no-cache for the page, immutable for the
// assets), content types, 404 for anything else (traversal attempts included), and a
// missing folder reported instead of crashing.
#include "switchyard/admin/ui_assets.hpp"
#include "switchyard/core/ids.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace {

namespace admin = switchyard::admin;
namespace core = switchyard::core;
namespace fs = std::filesystem;

std::string header(const switchyard::http::response& r, std::string_view name) {
  for (const auto& [k, v] : r.headers) {
    if (k == name) {
      return v;
    }
  }
  return {};
}

class ui_assets_test : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "ui-assets-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    write("index.html",
          "<!doctype html><link rel=\"stylesheet\" href=\"app.css\"><script src=\"app.js\" defer></script>"
          "<script src=\"my-app.js\"></script><p>app.js stays text</p>");
    write("app.js", "console.log('hello');\n");
    write("my-app.js", "console.log('other');\n");
    write("app.css", "body{margin:0}\n");
    write("logo.svg", "<svg xmlns=\"http://www.w3.org/2000/svg\"/>");
    write(".hidden", "secret");
    fs::create_directory(dir_ / "nested");
    write("nested/inner.js", "x");
  }
  void TearDown() override { fs::remove_all(dir_); }
  void write(const std::string& name, const std::string& body) {
    std::ofstream(dir_ / name, std::ios::binary) << body;
  }
  fs::path dir_;
};

TEST_F(ui_assets_test, names_carry_the_hash_of_the_bytes) {
  auto ui = admin::ui_assets::load(dir_.string());
  ASSERT_TRUE(ui.loaded()) << ui.problem();
  EXPECT_EQ(ui.asset_count(), 4u);  // app.js, my-app.js, app.css, logo.svg: no dot file, no folder
  const auto js_hash = core::sha256_hex("console.log('hello');\n").substr(0, 12);
  EXPECT_EQ(ui.hashed_name("app.js"), "app." + js_hash + ".js");
  EXPECT_EQ(ui.hashed_name("app.css"), "app." + core::sha256_hex("body{margin:0}\n").substr(0, 12) + ".css");
  EXPECT_EQ(ui.hashed_name(".hidden"), "");
  EXPECT_EQ(ui.hashed_name("inner.js"), "");
  // Other bytes, another name.
  write("app.js", "console.log('changed');\n");
  auto again = admin::ui_assets::load(dir_.string());
  EXPECT_NE(again.hashed_name("app.js"), ui.hashed_name("app.js"));
  EXPECT_EQ(again.hashed_name("app.css"), ui.hashed_name("app.css"));
}

TEST_F(ui_assets_test, the_page_points_at_the_hashed_names_and_is_revalidated) {
  auto ui = admin::ui_assets::load(dir_.string());
  auto r = ui.respond("/ui/");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, "text/html; charset=utf-8");
  EXPECT_EQ(header(r, "cache-control"), "no-cache");
  EXPECT_NE(header(r, "content-security-policy").find("script-src 'self'"), std::string::npos);
  EXPECT_NE(r.body.find("href=\"/ui/assets/" + ui.hashed_name("app.css") + "\""), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("src=\"/ui/assets/" + ui.hashed_name("app.js") + "\""), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("src=\"/ui/assets/" + ui.hashed_name("my-app.js") + "\""), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("<p>app.js stays text</p>"), std::string::npos);
  EXPECT_EQ(ui.respond("/ui/index.html").body, r.body);
  auto redirect = ui.respond("/ui");
  EXPECT_EQ(redirect.status, 301);
  EXPECT_EQ(header(redirect, "location"), "/ui/");
}

TEST_F(ui_assets_test, assets_are_immutable_with_their_content_type) {
  auto ui = admin::ui_assets::load(dir_.string());
  auto js = ui.respond("/ui/assets/" + ui.hashed_name("app.js"));
  EXPECT_EQ(js.status, 200);
  EXPECT_EQ(js.body, "console.log('hello');\n");
  EXPECT_EQ(js.content_type, "text/javascript; charset=utf-8");
  EXPECT_EQ(header(js, "cache-control"), "public, max-age=31536000, immutable");
  EXPECT_EQ(header(js, "x-content-type-options"), "nosniff");
  EXPECT_EQ(ui.respond("/ui/assets/" + ui.hashed_name("app.css")).content_type, "text/css; charset=utf-8");
  EXPECT_EQ(ui.respond("/ui/assets/" + ui.hashed_name("logo.svg")).content_type, "image/svg+xml");
  EXPECT_EQ(admin::ui_assets::content_type_of("x.png"), "image/png");
  EXPECT_EQ(admin::ui_assets::content_type_of("x.bin"), "application/octet-stream");
}

TEST_F(ui_assets_test, anything_else_is_a_404_and_never_reaches_the_file_system) {
  auto ui = admin::ui_assets::load(dir_.string());
  // The unhashed name, a stale hash, files that exist but are not served, traversal.
  for (std::string path : {"/ui/assets/app.js", "/ui/assets/app.000000000000.js", "/ui/app.js",
                           "/ui/assets/.hidden", "/ui/.hidden", "/ui/assets/nested/inner.js",
                           "/ui/assets/../app.js", "/ui/assets/../../../../etc/passwd", "/ui/../ui/index.html",
                           "/ui/assets/%2e%2e/index.html", "/ui/assets/", "/ui/assets", "/ui/nope"}) {
    auto r = ui.respond(path);
    EXPECT_EQ(r.status, 404) << path;
    EXPECT_NE(r.body.find("\"error\""), std::string::npos) << path;
    EXPECT_EQ(r.body.find("secret"), std::string::npos) << path;
  }
}

TEST(ui_assets, a_missing_folder_or_page_is_reported_not_fatal) {
  auto ui = admin::ui_assets::load("/nonexistent/switchyard-ui");
  EXPECT_FALSE(ui.loaded());
  EXPECT_NE(ui.problem().find("/nonexistent/switchyard-ui"), std::string::npos);
  auto r = ui.respond("/ui/");
  EXPECT_EQ(r.status, 404);
  EXPECT_NE(r.body.find("not installed"), std::string::npos) << r.body;

  std::string tmpl = (fs::temp_directory_path() / "ui-empty-XXXXXX").string();
  ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
  auto empty = admin::ui_assets::load(tmpl);
  EXPECT_FALSE(empty.loaded());
  EXPECT_NE(empty.problem().find("index.html"), std::string::npos);
  fs::remove_all(tmpl);
}

TEST(ui_assets, the_repository_ui_folder_loads) {
  auto ui = admin::ui_assets::load(std::string(SWITCHYARD_SOURCE_DIR) + "/ui");
  ASSERT_TRUE(ui.loaded()) << ui.problem();
  EXPECT_FALSE(ui.hashed_name("app.js").empty());
  EXPECT_FALSE(ui.hashed_name("app.css").empty());
  auto page = ui.respond("/ui/").body;
  EXPECT_NE(page.find("/ui/assets/" + ui.hashed_name("app.js")), std::string::npos);
  EXPECT_NE(page.find("/ui/assets/" + ui.hashed_name("app.css")), std::string::npos);
}

}  // namespace
