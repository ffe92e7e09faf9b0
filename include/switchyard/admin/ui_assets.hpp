// The admin UI's static files (the repository's ui/ folder: index.html, app.js, app.css,
// ...), served by the gateway itself at /ui so that it needs neither Node nor another
// server at run time.
//
// load() reads the folder once at start. Every file but index.html gets a content-hashed
// name (the first 12 hex digits of the sha256 of its bytes: app.js -> app.1a2b3c4d5e6f.js)
// and is served at /ui/assets/<that name> with `Cache-Control: public, max-age=31536000,
// immutable`; index.html's quoted references to the files ("app.js") are rewritten to
// those URLs, and index.html itself is served at /ui/ with `Cache-Control: no-cache`, so
// a browser revalidates the page and fetches an asset again only when its bytes changed.
// Requests are answered from memory by exact name: no request path ever reaches the
// file system (no traversal).
//
// Owner: app/ (one per process, made before the server starts). Thread: any; immutable
// after load(). load() reads files (start-up only); respond() never blocks.
#pragma once
#include "switchyard/http/message.hpp"

#include <map>
#include <string>
#include <string_view>

namespace switchyard::admin {

class ui_assets {
 public:
  // Reads index.html and the other regular files at the top of `dir` (dot files and
  // folders are skipped). Never throws: when `dir` or its index.html cannot be read,
  // the result is not loaded() and problem() says why.
  static ui_assets load(const std::string& dir);

  bool loaded() const { return !index_.empty(); }
  const std::string& problem() const { return problem_; }
  const std::string& dir() const { return dir_; }
  // The served name of a source file ("app.js" -> "app.<hash>.js"); "" if unknown.
  std::string hashed_name(std::string_view source) const;
  // The number of assets besides index.html.
  std::size_t asset_count() const { return assets_.size(); }

  // "/ui" and everything under "/ui/".
  static bool handles(std::string_view path);
  // The answer to a GET or HEAD of `path` (handles(path) is true): the page, an asset,
  // a redirect from /ui to /ui/, or an OpenAI-shaped 404.
  http::response respond(std::string_view path) const;

  // "text/javascript; charset=utf-8" for "app.js", ...; application/octet-stream if unknown.
  static std::string content_type_of(std::string_view file_name);

 private:
  struct asset {
    std::string body;
    std::string content_type;
  };
  std::string dir_;
  std::string index_;                                // rewritten index.html
  std::map<std::string, asset, std::less<>> assets_;  // by hashed name
  std::map<std::string, std::string, std::less<>> names_;  // source name -> hashed name
  std::string problem_;
};

}  // namespace switchyard::admin
