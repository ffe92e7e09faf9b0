// libFuzzer target: Google's generateContent format. The input is a raw upstream body,
// read three ways:
//   - as a streamGenerateContent?alt=sse answer (stream_fuzz.hpp: whole and in pieces must
//     agree, every payload valid JSON), and again with every event read through the DOM:
//     the translator's reading of plain events from their scan must give the same bytes,
//     error and usage as the DOM's;
//   - as a generateContent answer (translate_response): a chat.completion with choices,
//     or an error, never a crash;
//   - when it is a JSON object, as a client's chat request (build()): a request body that
//     is valid JSON, or a 400.
#include "gemini_format.hpp"
#include "stream_fuzz.hpp"

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

namespace {

using namespace switchyard;

// A payload with what differs between two translators of one stream replaced: the chunk id
// made up when the answer has no responseId, `created`, and the tool call ids (call_<hex>).
std::string without_random_ids(std::string s) {
  auto replace_run = [&s](std::string_view after, auto is_run_char) {
    for (auto at = s.find(after); at != std::string::npos; at = s.find(after, at + after.size())) {
      auto end = at + after.size();
      while (end < s.size() && is_run_char(s[end])) {
        ++end;
      }
      s.replace(at + after.size(), end - at - after.size(), "X");
    }
  };
  auto hex = [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); };
  replace_run(R"("created":)", [](char c) { return c >= '0' && c <= '9'; });
  replace_run(R"("id":"chatcmpl-)", [&](char c) { return hex(c) || c == '-'; });
  replace_run(R"("id":"call_)", hex);
  return s;
}

struct reading {
  std::vector<std::string> payloads;
  std::optional<core::error> error;
  providers::usage tokens;
};

reading read_stream(std::string_view in, bool include_usage, bool dom_only) {
  reading o;
  auto t = providers::gemini_format::chat_stream("fuzz-model", include_usage, "GeminiException", {dom_only, nullptr});
  auto r = t->feed(in, o.payloads);
  if (r) {
    r = t->finish(o.payloads);
  }
  if (!r) {
    o.error = r.error();
  }
  for (auto& p : o.payloads) {
    p = without_random_ids(std::move(p));
  }
  o.tokens = t->tokens();
  return o;
}

// Plain events read from their scan and every event read through the DOM: the same bytes.
void check_readings_agree(std::string_view in, bool include_usage) {
  const auto fast = read_stream(in, include_usage, false);
  const auto dom = read_stream(in, include_usage, true);
  const auto& a = fast.tokens;
  const auto& b = dom.tokens;
  if (fast.payloads != dom.payloads || fast.error.has_value() != dom.error.has_value() ||
      (fast.error && (fast.error->status != dom.error->status || fast.error->message != dom.error->message)) ||
      a.known != b.known || a.prompt_tokens != b.prompt_tokens || a.completion_tokens != b.completion_tokens ||
      a.total_tokens != b.total_tokens || a.cached_tokens != b.cached_tokens ||
      a.reasoning_tokens != b.reasoning_tokens) {
    __builtin_trap();
  }
}

}  // namespace

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
  check_readings_agree(in, size % 2 == 0);
  auto r = a.translate_response(providers::call_type::chat, d, in, "fuzz-model");
  if (r) {
    auto j = nlohmann::json::parse(r->body, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j["choices"].is_array() || j["choices"].empty()) {
      __builtin_trap();
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
