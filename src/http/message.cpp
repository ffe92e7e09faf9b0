#include "switchyard/http/message.hpp"

#include <cstring>

#include <nlohmann/json.hpp>

namespace switchyard::http {

std::string_view request::header(std::string_view lower_name) const {
  for (const auto& [k, v] : headers) {
    if (k == lower_name) {
      return v;
    }
  }
  return {};
}

bool request::has_header(std::string_view lower_name) const {
  for (const auto& [k, v] : headers) {
    if (k == lower_name) {
      return true;
    }
  }
  return false;
}

std::string error_body(const core::error& e) {
  // ordered_json: the field order OpenAI uses (message, type, param, code).
  nlohmann::ordered_json err;
  err["message"] = e.message;
  err["type"] = e.type.empty() ? std::string("None") : e.type;
  err["param"] = e.param.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(e.param);
  err["code"] = std::to_string(e.status);
  nlohmann::ordered_json j;
  j["error"] = std::move(err);
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

response error_response(const core::error& e) {
  response r;
  r.status = e.status;
  r.body = error_body(e);
  if (!e.retry_after.empty()) {
    r.headers.emplace_back("retry-after", e.retry_after);
  }
  return r;
}

void append_head_line(std::string& lines, std::string_view name, std::string_view value) {
  lines.append(name.data(), name.size());
  lines += ": ";
  const std::size_t at = lines.size();
  lines.append(value.data(), value.size());
  if (std::memchr(value.data(), '\r', value.size()) != nullptr ||
      std::memchr(value.data(), '\n', value.size()) != nullptr) {
    for (std::size_t i = at; i < lines.size(); ++i) {
      if (lines[i] == '\r' || lines[i] == '\n') {
        lines[i] = ' ';
      }
    }
  }
  lines += "\r\n";
}

}  // namespace switchyard::http
