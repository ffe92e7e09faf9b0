#include "switchyard/admin/ui_assets.hpp"
#include "switchyard/core/file.hpp"

#include "switchyard/core/ids.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <vector>

namespace switchyard::admin {

namespace {

constexpr std::string_view asset_prefix = "/ui/assets/";
constexpr const char* immutable = "public, max-age=31536000, immutable";

bool read_file(const std::filesystem::path& p, std::string& out) {
  auto read = core::read_file(p.string());
  if (!read) {
    return false;
  }
  out = std::move(*read.text);
  return true;
}

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  for (auto at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) {
    s.replace(at, from.size(), to);
  }
}

http::response not_found(std::string message) {
  return http::error_response(core::make_error(core::errc::not_found, std::move(message)));
}

}  // namespace

std::string ui_assets::content_type_of(std::string_view name) {
  static constexpr std::pair<std::string_view, std::string_view> types[] = {
      {".html", "text/html; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"},
      {".mjs", "text/javascript; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},
      {".json", "application/json"},
      {".svg", "image/svg+xml"},
      {".png", "image/png"},
      {".ico", "image/x-icon"},
      {".woff2", "font/woff2"},
      {".txt", "text/plain; charset=utf-8"},
  };
  for (const auto& [ext, type] : types) {
    if (name.ends_with(ext)) {
      return std::string(type);
    }
  }
  return "application/octet-stream";
}

ui_assets ui_assets::load(const std::string& dir) {
  namespace fs = std::filesystem;
  ui_assets out;
  out.dir_ = dir;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    out.problem_ = "the admin UI folder " + dir + " does not exist (set SWITCHYARD_UI_DIR)";
    return out;
  }
  std::string index;
  if (!read_file(fs::path(dir) / "index.html", index) || index.empty()) {
    out.problem_ = "the admin UI folder " + dir + " has no readable index.html";
    return out;
  }
  std::vector<fs::path> files;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const auto name = it->path().filename().string();
    if (name.empty() || name.front() == '.' || name == "index.html" || !it->is_regular_file(ec)) {
      continue;
    }
    files.push_back(it->path());
  }
  if (ec) {
    out.problem_ = "the admin UI folder " + dir + " could not be listed: " + ec.message();
    return out;
  }
  for (const auto& p : files) {
    asset a;
    if (!read_file(p, a.body)) {
      out.problem_ = "the admin UI file " + p.string() + " could not be read";
      return out;
    }
    const auto name = p.filename().string();
    const auto dot = name.rfind('.');
    const auto hash = core::sha256_hex(a.body).substr(0, 12);
    std::string hashed = dot == std::string::npos || dot == 0 ? name + "." + hash
                                                               : name.substr(0, dot) + "." + hash + name.substr(dot);
    a.content_type = content_type_of(name);
    out.names_.emplace(name, hashed);
    out.assets_.emplace(std::move(hashed), std::move(a));
  }
  // Longest names first: "app.js" must not rewrite part of a quoted "my-app.js".
  std::vector<std::pair<std::string, std::string>> by_length(out.names_.begin(), out.names_.end());
  std::stable_sort(by_length.begin(), by_length.end(),
                   [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  for (const auto& [name, hashed] : by_length) {
    replace_all(index, "\"" + name + "\"", "\"" + std::string(asset_prefix) + hashed + "\"");
  }
  out.index_ = std::move(index);
  return out;
}

std::string ui_assets::hashed_name(std::string_view source) const {
  auto it = names_.find(source);
  return it == names_.end() ? std::string() : it->second;
}

bool ui_assets::handles(std::string_view path) { return path == "/ui" || path.starts_with("/ui/"); }

http::response ui_assets::respond(std::string_view path) const {
  if (!loaded()) {
    return not_found("Not Found: the admin UI is not installed (" + problem_ + ")");
  }
  if (path == "/ui") {
    http::response r;
    r.status = 301;
    r.content_type = "text/plain";
    r.headers.emplace_back("location", "/ui/");
    return r;
  }
  if (path == "/ui/" || path == "/ui/index.html") {
    http::response r;
    r.content_type = "text/html; charset=utf-8";
    r.body = index_;
    // Revalidated on every visit: the asset names inside change with their bytes.
    r.headers.emplace_back("cache-control", "no-cache");
    // The page runs only its own script and talks only to this gateway.
    r.headers.emplace_back("content-security-policy",
                           "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                           "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'");
    r.headers.emplace_back("x-content-type-options", "nosniff");
    r.headers.emplace_back("referrer-policy", "same-origin");
    return r;
  }
  if (path.starts_with(asset_prefix)) {
    auto it = assets_.find(path.substr(asset_prefix.size()));
    if (it != assets_.end()) {
      http::response r;
      r.content_type = it->second.content_type;
      r.body = it->second.body;
      r.headers.emplace_back("cache-control", immutable);
      r.headers.emplace_back("x-content-type-options", "nosniff");
      return r;
    }
  }
  return not_found("Not Found: " + std::string(path));
}

}  // namespace switchyard::admin
