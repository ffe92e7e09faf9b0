// Server-sent events framing: the byte stream of a streamed provider answer cut into
// events. Header of its own so that provider adapters read streams without the HTTP
// client (upstream/client.hpp); no Asio, no Beast. Thread: a parser belongs to one
// stream (not thread-safe); any thread.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace switchyard::upstream {

// Splits a server-sent-events byte stream into events. Feed bytes as they come;
// each complete event's `data:` payload (multi-line data joined with '\n') is
// appended to `out`. Comments and other fields are ignored. Handles \n, \r\n, \r.
class sse_parser {
 public:
  struct event {
    std::string event;  // "event:" field, empty if none
    std::string data;
  };
  void feed(std::string_view bytes, std::vector<event>& out);
  // Bytes received but not yet part of a complete event.
  std::size_t pending() const { return buf_.size(); }

 private:
  // Returns true when the line was blank (the event ended).
  bool on_line(std::string_view line, std::vector<event>& out);

  std::string buf_;  // bytes since the last event boundary
  std::string cur_event_;
  std::string cur_data_;
  bool have_data_ = false;
  std::size_t scan_ = 0;        // buf_ offset up to which line ends were searched
  std::size_t line_start_ = 0;  // buf_ offset of the current, unfinished line
  bool skip_lf_ = false;        // the last line ended with '\r': a '\n' next belongs to it
  bool first_line_ = true;      // a UTF-8 BOM may start the stream's first line
};

}  // namespace switchyard::upstream
