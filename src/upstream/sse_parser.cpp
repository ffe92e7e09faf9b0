// Server-sent events framing (WHATWG "event stream" interpretation), incremental.
// Each byte is scanned once; consumed events are erased once per feed(), so the
// cost is linear in the input however it is split.
#include "switchyard/upstream/sse_parser.hpp"

#include <cstring>

namespace switchyard::upstream {

namespace {
constexpr std::string_view utf8_bom = "\xEF\xBB\xBF";
}  // namespace

bool sse_parser::on_line(std::string_view line, std::vector<event>& out) {
  if (first_line_) {
    first_line_ = false;
    if (line.substr(0, utf8_bom.size()) == utf8_bom) {
      line.remove_prefix(utf8_bom.size());
    }
  }
  if (line.empty()) {
    if (have_data_) {
      out.push_back(event{std::move(cur_event_), std::move(cur_data_)});
    }
    cur_event_.clear();
    cur_data_.clear();
    have_data_ = false;
    return true;
  }
  if (line.front() == ':') {
    return false;  // comment (keep-alive pings)
  }
  auto colon = line.find(':');
  auto field = line.substr(0, colon);
  std::string_view value;
  if (colon != std::string_view::npos) {
    value = line.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') {
      value.remove_prefix(1);
    }
  }
  if (field == "data") {
    if (have_data_) {
      cur_data_.push_back('\n');
    }
    cur_data_.append(value);
    have_data_ = true;
  } else if (field == "event") {
    cur_event_.assign(value);
  }
  // id, retry and unknown fields are ignored.
  return false;
}

void sse_parser::feed(std::string_view bytes, std::vector<event>& out) {
  buf_.append(bytes);
  std::size_t boundary = 0;  // buf_ offset just past the last finished event
  std::size_t i = scan_;
  while (i < buf_.size()) {
    if (skip_lf_) {
      skip_lf_ = false;
      if (buf_[i] == '\n') {
        if (boundary == i) {
          boundary = i + 1;
        }
        ++i;
        line_start_ = i;
        continue;
      }
    }
    // The line's end: the first '\n', or an earlier '\r' (two memchr per line; a byte
    // loop, or find_first_of's memchr per byte, cost most of a stream's relay).
    const char* d = buf_.data();
    const std::size_t n = buf_.size();
    const char* nl = static_cast<const char*>(std::memchr(d + i, '\n', n - i));
    const char* lim = nl != nullptr ? nl : d + n;
    const char* cr = static_cast<const char*>(std::memchr(d + i, '\r', static_cast<std::size_t>(lim - (d + i))));
    const char* e = cr != nullptr ? cr : nl;
    if (e == nullptr) {
      break;
    }
    const auto eol = static_cast<std::size_t>(e - d);
    bool ended = on_line(std::string_view(buf_).substr(line_start_, eol - line_start_), out);
    skip_lf_ = buf_[eol] == '\r';
    i = eol + 1;
    line_start_ = i;
    if (ended) {
      boundary = i;
    }
  }
  scan_ = buf_.size();
  if (boundary > 0) {
    buf_.erase(0, boundary);
    scan_ -= boundary;
    line_start_ -= boundary;
  }
}

}  // namespace switchyard::upstream
