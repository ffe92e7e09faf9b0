// libFuzzer target: upstream::sse_parser. Traps unless feeding the input whole,
// byte by byte and in pseudo-random pieces gives the same events, and unless the
// bytes it keeps pending are only the unfinished tail of the input.
#include "switchyard/upstream/sse_parser.hpp"

#include <cstddef>
#include <cstdint>
#include <random>
#include <string_view>
#include <vector>

namespace {

using switchyard::upstream::sse_parser;

bool same(const std::vector<sse_parser::event>& a, const std::vector<sse_parser::event>& b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i].event != b[i].event || a[i].data != b[i].data) {
      return false;
    }
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);

  sse_parser whole_parser;
  std::vector<sse_parser::event> whole;
  whole_parser.feed(in, whole);
  if (whole_parser.pending() > size) {
    __builtin_trap();
  }

  sse_parser byte_parser;
  std::vector<sse_parser::event> bytes;
  for (std::size_t i = 0; i < size; ++i) {
    byte_parser.feed(in.substr(i, 1), bytes);
  }

  std::uint32_t h = 2166136261u;
  for (std::size_t i = 0; i < size; ++i) {
    h = (h ^ data[i]) * 16777619u;
  }
  std::minstd_rand gen(h);
  std::uniform_int_distribution<std::size_t> piece(1, 17);
  sse_parser split_parser;
  std::vector<sse_parser::event> split;
  for (std::size_t done = 0; done < size;) {
    auto n = std::min(piece(gen), size - done);
    split_parser.feed(in.substr(done, n), split);
    done += n;
  }

  if (!same(whole, bytes) || !same(whole, split) || whole_parser.pending() != byte_parser.pending() ||
      whole_parser.pending() != split_parser.pending()) {
    __builtin_trap();
  }
  return 0;
}
