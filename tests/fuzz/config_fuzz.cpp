// libFuzzer target: the config loader (YAML text -> config::config). Any input either
// loads or is refused with config_error (file:line: key: message); anything else
// escaping the loader (a yaml-cpp exception, a std:: exception, a crash) is a finding.
// Inputs naming `include` are skipped: an include reads another file, which could be a
// device that never ends, not what this target tests.
#include "switchyard/config/config.hpp"

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

namespace {

const std::string& scratch_path() {
  static const std::string p = "/tmp/switchyard-config-fuzz-" + std::to_string(::getpid()) + ".yaml";
  return p;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > 65536) {
    return 0;
  }
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (text.find("include") != std::string_view::npos) {
    return 0;
  }
  std::FILE* f = std::fopen(scratch_path().c_str(), "wb");
  if (f == nullptr) {
    std::abort();
  }
  std::fwrite(data, 1, size, f);
  std::fclose(f);
  switchyard::config::load_options o;
  o.env = [](const std::string&) -> std::optional<std::string> { return std::nullopt; };
  o.export_environment = false;
  try {
    auto cfg = switchyard::config::load_config_blocking(scratch_path(), o);
    (void)cfg;
  } catch (const switchyard::config::config_error&) {
    // refused with file:line: the expected answer to a bad config
  }
  return 0;
}
