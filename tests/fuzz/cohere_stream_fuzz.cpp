// libFuzzer target: Cohere v2 chat streams (typed SSE events) -> OpenAI chunks (see
// stream_fuzz.hpp for the checked properties), and the stream's reading of plain events
// from their scan against its DOM reading: the same bytes, error and usage.
#include "cohere_stream.hpp"
#include "stream_fuzz.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace switchyard;
  static const config::deployment d = [] {
    config::deployment x;
    x.provider = config::find_provider("cohere");
    x.upstream_model = "command-r-plus";
    return x;
  }();
  fuzz::check_stream(providers::cohere_adapter(), d, data, size);

  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const bool include_usage = size % 2 == 0;
  fuzz::check_readings_agree(
      [&](bool dom_only) { return providers::make_cohere_stream("fuzz-model", include_usage, {dom_only, nullptr}); },
      in);
  return 0;
}
