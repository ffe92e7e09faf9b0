// The small public pieces of config/: config_error, the process env,
// model_names(). The loader is in loader.cpp.
#include "switchyard/config/config.hpp"
#include "switchyard/core/file.hpp"

#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

namespace switchyard::config {

namespace {
std::string format_error(const std::string& file, int line, const std::string& key, const std::string& message) {
  std::string out = file;
  if (line > 0) {
    out += ':' + std::to_string(line);
  }
  out += ": ";
  if (!key.empty()) {
    out += key + ": ";
  }
  return out + message;
}
}  // namespace

config_error::config_error(std::string file, int line, std::string key, std::string message)
    : std::runtime_error(format_error(file, line, key, message)),
      file_(std::move(file)),
      line_(line),
      key_(std::move(key)),
      detail_(std::move(message)) {}

env_lookup process_env() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (v == nullptr) {
      return std::nullopt;
    }
    return std::string(v);
  };
}

void read_credentials_file(deployment& d, const char* google_application_credentials) {
  d.credentials.reset();
  if (d.provider == nullptr || d.provider->wire != wire_format::vertex) {
    return;
  }
  std::string path;
  if (auto it = d.litellm_params.find("vertex_credentials"); it != d.litellm_params.end() && !it->is_null()) {
    if (!it->is_string()) {
      return;  // a key written inline (a mapping)
    }
    const auto& s = it->get_ref<const std::string&>();
    const auto first = s.find_first_not_of(" \t\r\n");
    if (first == std::string::npos || s[first] == '{') {
      return;  // a key written inline (JSON text), or nothing
    }
    path = s;
  } else if (google_application_credentials != nullptr && *google_application_credentials != '\0') {
    path = google_application_credentials;
  } else {
    return;
  }
  deployment::credentials_file f;
  f.path = path;
  auto read = core::read_file(path);
  if (!read) {
    f.error = "cannot read the file '" + path + "': " + read.reason;
  } else {
    f.text = std::move(*read.text);  // an empty file: its text is empty (not a key)
  }
  d.credentials = std::move(f);
}

bool is_secret_param(std::string_view k) {
  // Prices are not credentials, whatever their name ends with ("input_cost_per_token").
  if (k.find("_cost_per_") != std::string_view::npos) {
    return false;
  }
  static const std::set<std::string_view> names = {"api_key",           "aws_secret_access_key", "aws_access_key_id",
                                                   "aws_session_token", "vertex_credentials",    "azure_ad_token",
                                                   "client_secret",     "password"};
  return names.contains(k) || k.ends_with("_api_key") || k.ends_with("_secret") || k.ends_with("_token");
}

bool is_header_param(std::string_view k) { return k == "headers" || k == "extra_headers"; }

std::vector<std::string> config::model_names() const {
  std::vector<std::string> out;
  std::set<std::string> seen;
  for (const auto& d : model_list) {
    if (seen.insert(d.model_name).second) {
      out.push_back(d.model_name);
    }
  }
  return out;
}

}  // namespace switchyard::config
