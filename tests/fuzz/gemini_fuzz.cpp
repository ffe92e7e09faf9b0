// libFuzzer target: Google's generateContent format. The input is a raw upstream body,
// read three ways:
//   - as a streamGenerateContent?alt=sse answer (stream_fuzz.hpp: whole and in pieces must
//     agree, every payload valid JSON), and again with every event read through the DOM:
//     the translator's reading of plain events from their scan must give the same bytes,
//     error and usage as the DOM's;
//   - as a generateContent answer (translate_response): a chat.completion with choices
//     and the four vertex_ai_* metadata lists, or an error, never a crash;
//   - when it is a JSON object, as a client's chat request (build()): a request body that
//     is valid JSON, or a 400.
#include "gemini_format.hpp"
#include "stream_fuzz.hpp"

#include <nlohmann/json.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace switchyard;
  static const config::deployment d = [] {
    config::deployment x;
    x.provider = config::find_provider("gemini");
    x.upstream_model = "gemini-fuzz";
    x.api_key = "k";
    return x;
  }();
  const auto& a = providers::gemini_adapter();
  fuzz::check_stream(a, d, data, size);

  std::string_view in(reinterpret_cast<const char*>(data), size);
  const bool include_usage = size % 2 == 0;
  fuzz::check_readings_agree(
      [&](bool dom_only) {
        return providers::gemini_format::chat_stream("fuzz-model", include_usage, "GeminiException",
                                                     {dom_only, nullptr});
      },
      in);
  auto r = a.translate_response(providers::call_type::chat, d, in, "fuzz-model");
  if (r) {
    auto j = nlohmann::json::parse(r->body, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j["choices"].is_array() || j["choices"].empty()) {
      __builtin_trap();
    }
    // LiteLLM's four metadata lists are on every answer, whatever the candidates carried.
    for (const char* k : {"vertex_ai_grounding_metadata", "vertex_ai_url_context_metadata", "vertex_ai_safety_results",
                          "vertex_ai_citation_metadata"}) {
      if (!j[k].is_array()) {
        __builtin_trap();
      }
    }
    if (r->tokens.prompt_tokens < 0 || r->tokens.completion_tokens < 0) {
      __builtin_trap();
    }
  } else if (r.error().status < 400) {
    __builtin_trap();
  }
  auto e = a.translate_response(providers::call_type::embedding, d, in, "fuzz-model");
  if (e && nlohmann::json::parse(e->body, nullptr, false).is_discarded()) {
    __builtin_trap();
  }

  if (!providers::json_nesting_exceeds(in)) {
    auto body = nlohmann::json::parse(in, nullptr, false);
    if (body.is_object()) {
      for (bool stream : {false, true}) {
        auto call = a.build(providers::call_type::chat, d, body, {stream, false});
        if (call && nlohmann::json::parse(call->body, nullptr, false).is_discarded()) {
          __builtin_trap();
        }
        if (!call && call.error().status != 400) {
          __builtin_trap();
        }
      }
    }
  }
  return 0;
}
