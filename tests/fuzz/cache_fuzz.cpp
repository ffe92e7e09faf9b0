// libFuzzer target: the response cache's readers of provider bytes and client bodies
// (cache/openai_stream.hpp, cache/key.hpp, cache/embedding_items.hpp). The input is read
// as an SSE stream passing to a client (assembled, cut in two where its first byte says),
// as a stored answer (replayed as a stream), as a request body (its cache key's text) and
// as an embeddings answer (merged with cached items, its count shared among its items and
// read back), and as a stored item's value. Checked: nothing crashes or throws;
// an assembled answer is a JSON object whose replay is well-formed SSE that assembles
// again; the key's text made from the members as received, when that path accepts them,
// is the text the parsed body gives; the items' token shares add up to the count they
// divide, and a hit or a merge reports what was stored (shares() below).
#include "switchyard/cache/embedding_items.hpp"
#include "switchyard/cache/key.hpp"
#include "switchyard/cache/openai_stream.hpp"
#include "switchyard/providers/json_scan.hpp"
#include "switchyard/providers/openai.hpp"

#include <algorithm>
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

// The answer's usage.prompt_tokens as embedding_values reads it (nullopt: no count).
std::optional<long long> count_of(std::string_view text) {
  const auto j = json::parse(text, nullptr, false);
  if (!j.is_object()) {
    return std::nullopt;
  }
  const auto u = j.find("usage");
  if (u == j.end() || !u->is_object()) {
    return std::nullopt;
  }
  const auto p = u->find("prompt_tokens");
  if (p == u->end() || !p->is_number_integer() || p->get<long long>() < 0) {
    return std::nullopt;
  }
  return p->get<long long>();
}

// The items' token shares: stored by embedding_values (the count divided by the weights)
// and read back by a full hit and a partial hit's merge. Checked: the shares are whole,
// never negative, 0 for an item of weight 0, and add up to the count they divide (the
// answer's, or the one given); a full hit of the stored values reports their sum; a
// merge adds the cached items' counts to the answer's; any text read as a stored value
// gives a count in [0, 10^18].
void shares(std::string_view text, std::uint8_t pattern, std::uint8_t mix) {
  constexpr long long max_count = 1'000'000'000'000'000'000LL;
  const auto answer_count = count_of(text);
  for (std::size_t n = 1; n <= 4; ++n) {
    std::vector<long long> weights;
    long long weight_sum = 0;
    for (std::size_t i = 0; i < n; ++i) {
      // Weights 0-3 from the bits of `mix`; a large one now and then.
      long long w = (mix >> (2 * (i % 4))) & 3;
      if (w == 3 && (pattern & 0x80) != 0) {
        w = 1'000'000'000'000LL;
      }
      weights.push_back(w);
      weight_sum += w;
    }
    for (int given = 0; given < 2; ++given) {
      std::optional<long long> count;
      if (given == 1) {
        count = static_cast<long long>(pattern) * (pattern & 1 ? 1 : 1'000'000'007LL);
      }
      const auto values = cache::embedding_values(text, n, weights, count);
      if (values.empty()) {
        continue;
      }
      require(values.size() == n);
      auto divided = count ? count : answer_count;
      if (divided) {
        divided = std::min(*divided, max_count);  // a count is at most 10^18
      }
      long long sum = 0;
      bool stored = false;
      for (std::size_t i = 0; i < n; ++i) {
        const auto v = json::parse(values[i], nullptr, false);
        require(v.is_object() && v.contains("embedding"));
        const auto t = v.find("prompt_tokens");
        if (t == v.end()) {
          continue;
        }
        stored = true;
        require(t->is_number_integer() && t->get<long long>() >= 0);
        require(weights[i] > 0 || t->get<long long>() == 0);
        sum += t->get<long long>();
      }
      require(stored == divided.has_value());
      if (divided) {
        require(sum == (weight_sum > 0 ? *divided : 0));
      }
      const auto hit = cache::embedding_hit_answer(values, "m");
      require(hit.has_value());
      require(hit->prompt_tokens == (stored ? sum : 0));
      require(json::parse(hit->body)["usage"]["prompt_tokens"] == hit->prompt_tokens);
      // The stored values as the cached items of a partial hit: the answer's count (when
      // it has one) grows by theirs.
      std::vector<std::optional<std::string>> cached(values.begin(), values.end());
      cached.emplace_back();  // one item sent: the answer must hold one embedding
      if (auto merged = cache::merge_embedding_answer(text, cached)) {
        const auto mc = count_of(*merged);
        require(mc.has_value() == answer_count.has_value());
        if (answer_count) {
          require(*mc == std::min(*answer_count, max_count - hit->prompt_tokens) + hit->prompt_tokens);
        }
      }
    }
  }
  // The text as a value stored by any gateway, old or new: read, or refused, never a
  // count outside [0, 10^18].
  if (const auto hit = cache::embedding_hit_answer({std::string(text), std::string(text)}, "m", {2, 2})) {
    require(hit->prompt_tokens >= 0 && hit->prompt_tokens <= max_count);
    require(json::parse(hit->body)["usage"]["prompt_tokens"] == hit->prompt_tokens);
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
    shares(text, size == 0 ? 0 : data[size - 1], size < 2 ? 0 : data[size - 2]);
  }
  return 0;
}
