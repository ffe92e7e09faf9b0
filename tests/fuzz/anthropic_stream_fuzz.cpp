// libFuzzer target: Anthropic Messages event streams -> OpenAI chunks
// (see stream_fuzz.hpp for the checked properties).
#include "stream_fuzz.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const switchyard::config::deployment d = [] {
    switchyard::config::deployment x;
    x.provider = switchyard::config::find_provider("anthropic");
    x.upstream_model = "claude-fuzz";
    return x;
  }();
  switchyard::fuzz::check_stream(switchyard::providers::anthropic_adapter(), d, data, size);
  return 0;
}
