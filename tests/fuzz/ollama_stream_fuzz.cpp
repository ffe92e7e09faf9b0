// libFuzzer target: Ollama NDJSON streams (/api/chat and /api/generate) -> OpenAI
// chunks (see stream_fuzz.hpp for the checked properties), and the stream's reading of
// plain lines from their scan against its DOM reading: the same bytes, error and usage.
#include "ollama_stream.hpp"
#include "stream_fuzz.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace switchyard;
  static const config::deployment d = [] {
    config::deployment x;
    x.provider = config::find_provider("ollama_chat");
    x.upstream_model = "llama-fuzz";
    return x;
  }();
  fuzz::check_stream(providers::ollama_adapter(), d, data, size);

  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const auto type = size % 3 == 0 ? providers::call_type::completion : providers::call_type::chat;
  const bool include_usage = size % 2 == 0;
  fuzz::check_readings_agree(
      [&](bool dom_only) {
        return providers::make_ollama_stream(type, "fuzz-model", include_usage, {dom_only, nullptr});
      },
      in);
  return 0;
}
