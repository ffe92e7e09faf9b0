// libFuzzer target: the Anthropic Messages front door's translators
// (providers/anthropic_front.hpp). The input is used four ways, and the target traps when
// a property fails (a crash, a sanitizer report or an exception counts as well):
//   1. as an Anthropic request: to_chat_request() either refuses it or gives an object
//      with a `messages` list;
//   2. as a client body passed through: passthrough_call() gives valid JSON whose members
//      are the client's (model replaced), byte for byte when nothing is edited (but a
//      leading UTF-8 byte order mark, which is not forwarded);
//   3. as an OpenAI answer: to_messages_response() gives a valid message or an error;
//      its lines as chunk payloads: event_writer writes only well-formed events (valid JSON
//      data, message_start first, message_stop last);
//   4. as an Anthropic event stream: stream_watch gives the same usage, end and error fed
//      whole or in pieces.
#include "switchyard/providers/anthropic_front.hpp"
#include "switchyard/providers/openai.hpp"

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace front = switchyard::providers::anthropic_front;
using nlohmann::json;

namespace {

void check(bool ok) {
  if (!ok) {
    __builtin_trap();
  }
}

const switchyard::config::deployment& deployment() {
  static const switchyard::config::deployment d = [] {
    switchyard::config::deployment x;
    x.provider = switchyard::config::find_provider("anthropic");
    x.upstream_model = "claude-fuzz";
    x.api_base = "http://127.0.0.1:9";
    return x;
  }();
  return d;
}

// The same deployment with request defaults and a drop list: the body is rebuilt.
const switchyard::config::deployment& deployment_with_defaults() {
  static const switchyard::config::deployment d = [] {
    auto x = deployment();
    x.request_defaults = {{"max_tokens", 64}, {"temperature", 0.5}, {"stop", json::array({"#"})}};
    x.drop_param_names = {"top_k"};
    return x;
  }();
  return d;
}

void as_request(std::string_view in) {
  json j = json::parse(in, nullptr, false);
  if (j.is_discarded() || switchyard::providers::json_nesting_exceeds(in)) {
    return;
  }
  auto r = front::to_chat_request(j);
  if (r) {
    check(r->is_object() && r->contains("messages") && (*r)["messages"].is_array());
    (void)r->dump(-1, ' ', false, json::error_handler_t::replace);
  } else {
    check(r.error().status == 400);
  }
}

void as_passthrough(std::string_view in) {
  auto scan = switchyard::providers::scan_json(in);
  if (!scan.ok || scan.root != switchyard::providers::json_kind::object) {
    return;
  }
  auto call = front::passthrough_call(deployment(), "/v1/messages", in, scan, {"2023-06-01", "beta-x"});
  check(static_cast<bool>(call));
  std::string body = call->joined_body();
  json out = json::parse(body, nullptr, false);
  check(!out.is_discarded() && out.is_object());
  json src = json::parse(in, nullptr, false);
  if (src.contains("model")) {
    check(out.contains("model") && out["model"] == "claude-fuzz");
  }
  // The client's bytes go as they are unless the gateway takes a member out (the same list
  // the adapters use, so a new gateway field needs no edit here).
  bool gateway_member = false;
  if (src.is_object()) {
    for (const auto& [k, v] : src.items()) {
      gateway_member = gateway_member || switchyard::providers::is_gateway_field(k);
    }
  }
  if (src.contains("model") && src["model"] == "claude-fuzz" && !gateway_member) {
    check(body == (in.substr(0, 3) == "\xEF\xBB\xBF" ? in.substr(3) : in));
  }
  // Defaults and drops: still one valid object, the dropped member gone, the Messages
  // default present unless the request drops it, the OpenAI-shaped one never added.
  auto with = front::passthrough_call(deployment_with_defaults(), "/v1/messages", in, scan, {});
  check(static_cast<bool>(with));
  json edited = json::parse(with->joined_body(), nullptr, false);
  check(!edited.is_discarded() && edited.is_object());
  check(!edited.contains("top_k") && !edited.contains("additional_drop_params"));
  if (!src.contains("additional_drop_params")) {
    check(edited.contains("max_tokens"));
  }
  if (!src.contains("stop")) {
    check(!edited.contains("stop"));
  }
}

void check_events(const std::string& sse) {
  std::size_t pos = 0;
  bool first = true;
  std::string last;
  while (pos < sse.size()) {
    auto end = sse.find("\n\n", pos);
    check(end != std::string::npos);
    std::string_view ev(sse.data() + pos, end - pos);
    check(ev.substr(0, 7) == "event: ");
    auto nl = ev.find('\n');
    check(nl != std::string_view::npos && ev.substr(nl + 1, 6) == "data: ");
    std::string type(ev.substr(7, nl - 7));
    json data = json::parse(ev.substr(nl + 7), nullptr, false);
    check(!data.is_discarded() && data.is_object() && data["type"] == type);
    if (first) {
      check(type == "message_start");
      first = false;
    }
    last = type;
    pos = end + 2;
  }
  check(last == "message_stop");
}

void as_answer(std::string_view in) {
  auto msg = front::to_messages_response(in, "m");
  if (msg) {
    json j = json::parse(*msg, nullptr, false);
    check(!j.is_discarded() && j["type"] == "message" && j["content"].is_array() && !j["content"].empty());
  }
  front::event_writer w("m");
  std::string out;
  std::size_t pos = 0;
  while (pos <= in.size()) {
    auto nl = in.find('\n', pos);
    if (nl == std::string_view::npos) {
      nl = in.size();
    }
    w.feed(in.substr(pos, nl - pos), out);
    pos = nl + 1;
  }
  w.finish(out);
  check_events(out);
}

void as_stream(std::string_view in) {
  front::stream_watch whole;
  auto a = whole.feed(in);
  auto fa = a ? whole.finish() : a;
  front::stream_watch split;
  switchyard::core::result<void> b;
  std::size_t pos = 0;
  std::size_t step = in.empty() ? 1 : (static_cast<unsigned char>(in[0]) % 7) + 1;
  while (pos < in.size()) {
    b = split.feed(in.substr(pos, step));
    if (!b) {
      break;
    }
    pos += step;
  }
  auto fb = b ? split.finish() : b;
  check(static_cast<bool>(fa) == static_cast<bool>(fb));
  if (fa) {
    check(whole.tokens().prompt_tokens == split.tokens().prompt_tokens);
    check(whole.tokens().completion_tokens == split.tokens().completion_tokens);
    check(whole.tokens().cached_tokens == split.tokens().cached_tokens);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  as_request(in);
  as_passthrough(in);
  as_answer(in);
  as_stream(in);
  return 0;
}
