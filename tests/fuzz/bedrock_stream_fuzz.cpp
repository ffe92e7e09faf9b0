// libFuzzer target: Bedrock ConverseStream bodies -> OpenAI chunks (the event-stream
// decoder with its CRC checks, and the Converse stream translator). The properties are
// stream_fuzz.hpp's: same result whole and split, JSON payloads, error statuses.
// Two runs per input: the bytes as they are (the framing: lengths, CRCs, headers), and
// the input read as lines "<event type> <JSON payload>" encoded into frames with valid
// CRCs (so the mutations reach the translator behind the checksums). A line whose type
// starts with '!' becomes an exception message of that type. Both runs also read the stream
// twice, plain events from their scan and every event through the DOM, and trap unless the
// two give the same bytes, error and usage (check_readings_agree).
#include "bedrock_stream.hpp"
#include "stream_fuzz.hpp"
#include "switchyard/providers/aws_eventstream.hpp"
#include "switchyard/providers/bedrock.hpp"

namespace {

std::string framed(std::string_view in) {
  std::string out;
  while (!in.empty()) {
    auto nl = in.find('\n');
    auto line = in.substr(0, nl);
    in = nl == std::string_view::npos ? std::string_view{} : in.substr(nl + 1);
    auto sp = line.find(' ');
    auto type = std::string(line.substr(0, sp));
    auto payload = sp == std::string_view::npos ? std::string_view{} : line.substr(sp + 1);
    if (type.size() > 255) {
      type.resize(255);
    }
    if (!type.empty() && type[0] == '!') {
      out += switchyard::providers::aws::encode_message(
          {{":exception-type", type.substr(1)}, {":message-type", "exception"}}, payload);
    } else {
      out += switchyard::providers::aws::encode_message({{":event-type", type}, {":message-type", "event"}}, payload);
    }
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const switchyard::config::deployment d = [] {
    switchyard::config::deployment x;
    x.provider = switchyard::config::find_provider("bedrock");
    x.upstream_model = "anthropic.claude-3-5-sonnet-20240620-v1:0";
    return x;
  }();
  const auto& a = switchyard::providers::bedrock_adapter();
  switchyard::fuzz::check_stream(a, d, data, size);
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const std::string frames = framed(in);
  switchyard::fuzz::check_stream(a, d, reinterpret_cast<const std::uint8_t*>(frames.data()), frames.size());
  const bool include_usage = size % 2 == 0;
  for (std::string_view wire : {in, std::string_view(frames)}) {
    switchyard::fuzz::check_readings_agree(
        [&](bool dom_only) {
          return switchyard::providers::make_bedrock_stream("fuzz-model", include_usage, {dom_only, nullptr});
        },
        wire);
  }
  return 0;
}
