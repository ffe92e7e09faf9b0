// libFuzzer target: every provider's request builder on client bodies. The input is a
// request body as a client sends it; for each registered provider that serves the call
// type, build() (from the parsed body) and build_raw() (from the bytes, where the
// adapter forwards them) must either give an upstream call or a clear error, for
// streamed and non-streamed requests, with and without drop_params. A crash, a
// sanitizer report or an exception escaping a builder is a finding, and so is an
// Anthropic request written from the bytes that differs from the DOM path's in one byte.
#include "switchyard/config/provider_registry.hpp"
#include "switchyard/providers/adapter.hpp"
#include "switchyard/providers/json_scan.hpp"

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace switchyard;

const std::vector<config::deployment>& deployments() {
  static const std::vector<config::deployment> all = [] {
    std::vector<config::deployment> out;
    for (const auto& p : config::provider_registry()) {
      config::deployment d;
      d.model_name = "m";
      d.id = std::string(p.name);
      d.provider = &p;
      d.model = std::string(p.prefix) + "some-model";
      d.upstream_model = "some-model";
      d.api_base = "http://127.0.0.1:9";
      d.api_key = "sk-fuzz";
      d.api_version = "2024-06-01";
      d.litellm_params = nlohmann::json::object();
      d.model_info = nlohmann::json::object();
      out.push_back(std::move(d));
    }
    return out;
  }();
  return all;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > 65536) {
    return 0;
  }
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (providers::json_nesting_exceeds(text)) {
    return 0;  // the parse stage refuses these before any builder
  }
  auto body = nlohmann::json::parse(text, nullptr, false);
  if (body.is_discarded() || !body.is_object()) {
    return 0;  // likewise
  }
  const auto scan = providers::scan_json(text, providers::max_json_depth);
  for (const auto& d : deployments()) {
    const auto& a = providers::adapter_for(*d.provider);
    for (auto type : {providers::call_type::chat, providers::call_type::completion, providers::call_type::embedding}) {
      if (!providers::supports(*d.provider, type)) {
        continue;
      }
      for (bool stream : {false, true}) {
        for (bool drop : {false, true}) {
          providers::build_options o;
          o.stream = stream && type != providers::call_type::embedding;
          o.drop_params = drop;
          auto built = a.build(type, d, body, o);
          (void)built;
          if (scan.ok) {
            auto raw = a.build_raw(type, d, text, scan, o);
            // Anthropic writes plain requests from the bytes: exactly the DOM path's bytes,
            // and only for requests the DOM path takes.
            if (raw && &a == &providers::anthropic_adapter()) {
              if (!built || !*raw || (*raw)->body != built->body || (*raw)->url != built->url ||
                  (*raw)->headers != built->headers) {
                __builtin_trap();
              }
            }
          }
        }
      }
    }
  }
  return 0;
}
