// libFuzzer target: the response cache's readers of provider bytes and client bodies
// (cache/openai_stream.hpp, cache/key.hpp, cache/embedding_items.hpp). The input is read
// as an SSE stream passing to a client (assembled, cut in two where its first byte says),
// as a stored answer (replayed as a stream), as a request body (its cache key's text) and
// as an embeddings answer (merged with cached items). Checked: nothing crashes or throws;
// an assembled answer is a JSON object whose replay is well-formed SSE that assembles
// again; the key's text made from the members as received, when that path accepts them,
// is the text the parsed body gives.
#include "switchyard/cache/embedding_items.hpp"
#include "switchyard/cache/key.hpp"
#include "switchyard/cache/openai_stream.hpp"
#include "switchyard/providers/json_scan.hpp"
#include "switchyard/providers/openai.hpp"

#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

using json = nlohmann::json;
namespace cache = switchyard::cache;
namespace p = switchyard::providers;

void require(bool ok) {
  if (!ok) {
    std::abort();
  }
}

// Every frame is "data: <JSON object>\n\n", the last one "data: [DONE]\n\n".
void check_frames(std::string_view out) {
  bool done = false;
  while (!out.empty()) {
    require(!done);
    require(out.substr(0, 6) == "data: ");
    const auto end = out.find("\n\n");
    require(end != std::string_view::npos);
    const auto data = out.substr(6, end - 6);
    if (data == "[DONE]") {
      done = true;
    } else {
      require(json::parse(data, nullptr, false).is_object());
    }
    out.remove_prefix(end + 2);
  }
  require(done);
}

void assemble(std::string_view text, std::size_t cut, bool chat) {
  cache::stream_assembler a(chat, 1 << 20);
  a.feed(text.substr(0, cut));
  a.feed(text.substr(cut));
  const auto r = a.result();
  if (!r) {
    return;
  }
  const auto answer = json::parse(*r, nullptr, false);
  require(answer.is_object());
  for (bool usage : {false, true}) {
    const auto frames = cache::replay_frames(answer, chat, usage);
    check_frames(frames);
    cache::stream_assembler again(chat, 1 << 26);
    again.feed(frames);
    require(again.result().has_value());
  }
}

void key_texts(std::string_view text) {
  auto scan = p::scan_json(text);
  if (!scan.ok || scan.root != p::json_kind::object) {
    return;
  }
  std::vector<std::pair<std::string_view, std::string_view>> members;
  for (const auto& m : scan.members) {
    members.emplace_back(m.key, m.value);
  }
  std::string raw;
  if (cache::canonical_request_raw(raw, "chat", "group", members)) {
    const auto body = json::parse(text, nullptr, false);
    require(body.is_object());
    require(raw == cache::canonical_request("chat", "group", body));
  }
}

void embeddings(std::string_view text, std::uint8_t pattern) {
  // Items 0-3; bit i of the pattern: item i was cached.
  std::vector<std::optional<std::string>> cached;
  for (int i = 0; i < 4; ++i) {
    if ((pattern >> i) & 1) {
      cached.emplace_back("[0.5,1]");
    } else {
      cached.emplace_back();
    }
  }
  for (std::size_t n = 0; n <= 4; ++n) {
    const auto values = cache::embedding_values(text, n);
    require(values.empty() || values.size() == n);
    for (const auto& v : values) {
      require(!json::parse(v, nullptr, false).is_discarded());
    }
  }
  if (auto merged = cache::merge_embedding_answer(text, cached)) {
    const auto j = json::parse(*merged, nullptr, false);
    require(j.is_object() && j["data"].is_array() && j["data"].size() == cached.size());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const std::size_t cut = size == 0 ? 0 : data[0] % (size + 1);
  assemble(text, cut, true);
  assemble(text, cut, false);
  if (!p::json_nesting_exceeds(text)) {
    const auto j = json::parse(text, nullptr, false);
    if (!j.is_discarded()) {
      for (bool chat : {true, false}) {
        check_frames(cache::replay_frames(j, chat, size % 2 == 0));
      }
    }
    key_texts(text);
    embeddings(text, size == 0 ? 0 : data[size - 1]);
  }
  return 0;
}
