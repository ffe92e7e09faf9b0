// Cross-origin requests from browsers (docs/configuration.md, "CORS"). Off unless
// general_settings.cors_allow_origins lists origins: a gateway holding provider keys
// should not answer scripts of any web page by default.
// Thread: any; immutable after construction. No I/O.
#pragma once
#include "switchyard/http/message.hpp"

#include <string>
#include <string_view>
#include <vector>

namespace switchyard::http {

class cors_policy {
 public:
  cors_policy() = default;
  // `origins`: "scheme://host[:port]" each (no trailing slash), or "*" for any origin.
  cors_policy(std::vector<std::string> origins, bool allow_credentials);

  bool enabled() const { return !origins_.empty(); }
  bool allows(std::string_view origin) const;
  // A preflight: OPTIONS with Origin and Access-Control-Request-Method.
  static bool is_preflight(const request& req);
  // The answer to a preflight: 204 with the Access-Control-* headers when the origin is
  // allowed, else 400 (the browser then refuses the real request).
  response preflight(const request& req) const;
  // The headers an answer to an allowed cross-origin request carries (none otherwise).
  void add_headers(std::string_view origin, responder& resp) const;
  // The same headers as a list (empty when the origin is not allowed).
  header_list headers_for(std::string_view origin) const;

 private:
  std::string allow_origin_value(std::string_view origin) const;

  std::vector<std::string> origins_;
  bool any_ = false;
  bool credentials_ = false;
};

}  // namespace switchyard::http
