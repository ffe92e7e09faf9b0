// Shared body of the provider stream fuzz targets: feeds the input to a
// stream_translator whole and again in pseudo-random pieces, and traps unless both
// runs give the same payloads, error and usage, and every payload is valid JSON; and, for
// the translators that read plain events from a scan of their bytes, traps unless that
// reading gives the DOM reading's bytes (check_readings_agree).
// The input is the raw upstream body (corpus files are real-looking streams); the
// options (include_usage, call type, split sizes) are derived from its bytes.
#pragma once
#include "switchyard/providers/adapter.hpp"
#include "../stream_ids.hpp"

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace switchyard::fuzz {

struct outcome {
  std::vector<std::string> payloads;  // normalised JSON text
  std::optional<std::string> error;   // message of the first error
  int status = 0;
  providers::usage tokens;
};

// id/created and generated tool call ids differ between translators.
inline std::string normalised(const std::string& payload) {
  auto j = nlohmann::json::parse(payload, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    __builtin_trap();  // every payload must be a JSON object
  }
  j["id"] = "ID";
  j["created"] = 0;
  auto ch = j.find("choices");
  if (ch != j.end() && ch->is_array()) {
    for (auto& c : *ch) {
      if (!c.is_object() || !c.contains("delta") || !c["delta"].is_object() || !c["delta"].contains("tool_calls")) {
        continue;
      }
      for (auto& tc : c["delta"]["tool_calls"]) {
        if (tc.is_object() && tc.contains("id")) {
          tc["id"] = "X";
        }
      }
    }
  }
  return j.dump();
}

inline outcome run(const providers::adapter& a, providers::call_type type, const config::deployment& d,
                   std::string_view in, bool include_usage, const std::vector<std::size_t>& sizes) {
  outcome o;
  auto t = a.make_stream(type, d, "fuzz-model", include_usage);
  std::vector<std::string> payloads;
  std::size_t pos = 0;
  bool failed = false;
  for (auto n : sizes) {
    auto r = t->feed(in.substr(pos, n), payloads);
    pos += n;
    if (!r) {
      o.error = r.error().message;
      o.status = r.error().status;
      failed = true;
      break;
    }
  }
  if (!failed) {
    auto r = t->finish(payloads);
    if (!r) {
      o.error = r.error().message;
      o.status = r.error().status;
    }
  }
  for (const auto& p : payloads) {
    o.payloads.push_back(normalised(p));
  }
  o.tokens = t->tokens();
  return o;
}

inline void check_stream(const providers::adapter& a, const config::deployment& d, const std::uint8_t* data,
                         std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  std::uint32_t h = 2166136261u;  // FNV-1a of the input picks the options
  for (std::size_t i = 0; i < size; ++i) {
    h = (h ^ data[i]) * 16777619u;
  }
  bool include_usage = (h & 1u) != 0;
  auto type = (h & 2u) != 0 ? providers::call_type::completion : providers::call_type::chat;

  auto whole = run(a, type, d, in, include_usage, {size});
  std::minstd_rand gen(h);
  std::uniform_int_distribution<std::size_t> piece(1, (h & 4u) != 0 ? 3 : 40);
  std::vector<std::size_t> sizes;
  for (std::size_t done = 0; done < size;) {
    auto n = std::min(piece(gen), size - done);
    sizes.push_back(n);
    done += n;
  }
  auto split = run(a, type, d, in, include_usage, sizes);

  if (whole.payloads != split.payloads || whole.error != split.error || whole.status != split.status ||
      whole.tokens.prompt_tokens != split.tokens.prompt_tokens ||
      whole.tokens.completion_tokens != split.tokens.completion_tokens ||
      whole.tokens.total_tokens != split.tokens.total_tokens) {
    __builtin_trap();  // the split changed the result
  }
  if (whole.error && (whole.status < 400 || whole.status > 599)) {
    __builtin_trap();  // errors must carry an HTTP error status
  }
}

// A stream read twice: plain events from their scan (make(false)) and every event through
// the DOM (make(true)). Traps unless the payloads are the same bytes and the error and the
// usage the same.
template <typename Make>
void check_readings_agree(Make&& make, std::string_view in) {
  auto read = [&](bool dom_only) {
    return stream_test::read_stream_with([&](bool dom, std::size_t*) { return make(dom); }, in, dom_only);
  };
  if (!stream_test::same_reading(read(false), read(true))) {
    __builtin_trap();
  }
}

}  // namespace switchyard::fuzz
