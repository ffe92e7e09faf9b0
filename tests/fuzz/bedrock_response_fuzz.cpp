// libFuzzer target: Bedrock answers -> OpenAI JSON (Converse responses, Titan and Cohere
// InvokeModel embeddings, HTTP error bodies). Traps unless every translation either
// fails with an HTTP error status or returns a JSON object.
#include "switchyard/providers/bedrock.hpp"

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace {

switchyard::config::deployment dep(const char* id) {
  switchyard::config::deployment x;
  x.provider = switchyard::config::find_provider("bedrock");
  x.upstream_model = id;
  return x;
}

void check(const switchyard::providers::adapter& a, switchyard::providers::call_type t,
           const switchyard::config::deployment& d, std::string_view in) {
  auto r = a.translate_response(t, d, in, "fuzz-model");
  if (!r) {
    if (r.error().status < 400 || r.error().status > 599) {
      __builtin_trap();
    }
    return;
  }
  auto j = nlohmann::json::parse(r->body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const auto chat = dep("anthropic.claude-3-5-sonnet-20240620-v1:0");
  static const auto titan = dep("amazon.titan-embed-text-v2:0");
  static const auto cohere = dep("cohere.embed-english-v3");
  const auto& a = switchyard::providers::bedrock_adapter();
  std::string_view in(reinterpret_cast<const char*>(data), size);
  check(a, switchyard::providers::call_type::chat, chat, in);
  check(a, switchyard::providers::call_type::embedding, titan, in);
  check(a, switchyard::providers::call_type::embedding, cohere, in);
  auto e = a.translate_error(chat, 400 + static_cast<int>(size % 200), in);
  if (e.status < 400 || e.status > 599 || e.message.empty()) {
    __builtin_trap();
  }
  return 0;
}
