// What differs between two translators of one stream, replaced in a payload: shared by the
// unit tests' stream harness and the fuzz targets (which are built without gtest).
#pragma once
#include <string>
#include <string_view>

namespace switchyard::stream_test {

// A payload with the chunk id made up per stream, `created` and the tool call ids
// (call_<hex>) replaced by "X", bytes otherwise kept.
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
  return s;
}

}  // namespace switchyard::stream_test
