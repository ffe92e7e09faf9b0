// A stream translator's reading of one stream, and what differs between two translators
// of it (ids made up per stream): shared by the unit tests' stream harness and the fuzz
// targets (which are built without gtest).
#pragma once
#include "switchyard/providers/adapter.hpp"

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace switchyard::stream_test {

// A payload with the chunk id made up per stream, `created` and the tool call ids made up
// (call_<hex>, Bedrock's tooluse_<hex>) replaced by "X", bytes otherwise kept.
inline std::string without_random_ids(std::string s) {
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
  replace_run(R"("id":"cmpl-)", [&](char c) { return hex(c) || c == '-'; });
  replace_run(R"("id":"call_)", hex);
  replace_run(R"("id":"tooluse_)", hex);  // Bedrock's, made up for a toolUse without its id
  return s;
}

// What a translator made of a stream: its payloads (without_random_ids), its error, its
// usage, and how many events it read from their scan.
struct reading_outcome {
  std::vector<std::string> payloads;
  std::optional<core::error> error;
  providers::usage tokens;
  std::size_t scanned = 0;
};

// `wire` through the translator make(dom_only, &scanned) gives, fed whole and finished.
template <typename Make>
reading_outcome read_stream_with(Make&& make, std::string_view wire, bool dom_only) {
  reading_outcome o;
  auto t = make(dom_only, &o.scanned);
  auto r = t->feed(wire, o.payloads);
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

// The same payloads byte for byte, the same error (status and text) and the same usage.
inline bool same_reading(const reading_outcome& a, const reading_outcome& b) {
  const auto& x = a.tokens;
  const auto& y = b.tokens;
  return a.payloads == b.payloads && a.error.has_value() == b.error.has_value() &&
         (!a.error || (a.error->status == b.error->status && a.error->message == b.error->message)) &&
         x.known == y.known && x.prompt_tokens == y.prompt_tokens && x.completion_tokens == y.completion_tokens &&
         x.total_tokens == y.total_tokens && x.cached_tokens == y.cached_tokens &&
         x.reasoning_tokens == y.reasoning_tokens;
}

}  // namespace switchyard::stream_test
