// libFuzzer target: the Responses API translators (providers/responses.hpp) on arbitrary
// bytes. The input is read three ways: as a Responses request (-> chat, also continuing
// a conversation made of its own input items), as a chat.completion (-> a Response
// object), and, line by line, as chat.completion.chunk payloads (-> typed events, then
// completed or failed). Checked: nothing crashes or throws; every translation that
// succeeds is a JSON object that dumps; every event frame is "event: <type>\ndata: <json
// object>\n\n" with increasing sequence numbers; an id the gateway encodes decodes back.
#include "switchyard/providers/responses.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

using json = nlohmann::json;
namespace p = switchyard::providers;

void require(bool ok) {
  if (!ok) {
    std::abort();
  }
}

// Each frame of `out` is one well-formed event; sequence numbers increase.
void check_frames(std::string_view out, long long& last_seq) {
  while (!out.empty()) {
    require(out.substr(0, 7) == "event: ");
    const auto nl = out.find('\n');
    require(nl != std::string_view::npos);
    const auto type = out.substr(7, nl - 7);
    out.remove_prefix(nl + 1);
    require(out.substr(0, 6) == "data: ");
    const auto end = out.find("\n\n");
    require(end != std::string_view::npos);
    auto j = json::parse(out.substr(6, end - 6), nullptr, false);
    require(j.is_object() && j.value("type", "") == type);
    const long long seq = j.value("sequence_number", -1LL);
    require(seq > last_seq);
    last_seq = seq;
    out.remove_prefix(end + 2);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const bool shallow = !p::json_nesting_exceeds(text);
  auto j = shallow ? json::parse(text, nullptr, false) : json(json::value_t::discarded);
  if (!j.is_discarded()) {
    auto chat = p::responses_to_chat(j, json::array());
    if (chat) {
      require(chat->is_object() && (*chat)["messages"].is_array());
      (void)chat->dump(-1, ' ', false, json::error_handler_t::replace);
    }
    if (auto items = p::input_items_of(j)) {
      (void)p::responses_to_chat(j, *items);  // the same items as a previous conversation
    }
    p::response_meta meta;
    meta.id = "resp_fuzz";
    meta.model = "m";
    meta.item_prefix = "x";
    meta.request = j.is_object() ? j : json::object();
    if (auto r = p::chat_to_response(j, meta)) {
      require(r->is_object() && (*r)["output"].is_array());
      auto back = p::output_as_input(*r);
      require(back.is_array());
      (void)p::responses_to_chat(json{{"input", back}}, json::array());
      (void)r->dump(-1, ' ', false, json::error_handler_t::replace);
    }
    (void)p::usage_of_response(j);
  }

  // Line by line as chunk payloads.
  p::response_meta meta;
  meta.id = "resp_stream";
  meta.model = "m";
  meta.item_prefix = "s";
  p::responses_event_writer w(meta);
  std::string out;
  long long seq = -1;
  w.start(out);
  bool failed = false;
  std::string_view rest = text;
  while (!rest.empty() && !failed) {
    const auto nl = rest.find('\n');
    const auto line = rest.substr(0, nl);
    rest = nl == std::string_view::npos ? std::string_view{} : rest.substr(nl + 1);
    if (p::json_nesting_exceeds(line)) {
      continue;
    }
    if (auto r = w.feed(line, out); !r) {
      w.fail(r.error(), out);
      failed = true;
    }
  }
  if (!failed) {
    w.finish(p::usage{}, out);
  }
  check_frames(out, seq);
  require(w.response().is_object());

  // Ids: decoding arbitrary text never crashes; an encoded id decodes back when its
  // provider part looks like an id (letters, digits, _ and -), and never otherwise (it
  // becomes a path segment of a call made with the deployment's key).
  (void)p::decode_response_id(text);
  const std::string part(text.substr(0, std::min<std::size_t>(text.size(), 64)));
  if (!part.empty()) {
    const bool id_like = std::all_of(part.begin(), part.end(), [](char c) {
      return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    });
    auto d = p::decode_response_id(p::encode_response_id("openai", "dep-1", part));
    if (id_like) {
      require(d && d->upstream_id == part && d->model_id == "dep-1" && d->provider == "openai");
    } else {
      require(!d);
    }
  }
  return 0;
}
