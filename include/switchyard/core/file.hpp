// Reading a whole file, for the files a user names (the config and what it includes,
// credentials, price tables, spill files, time zones, UI assets).
//
// std::ifstream is the wrong tool for them: a directory opens as a stream, then reads as
// nothing (`out << in.rdbuf()` swallows the error) or throws std::ios_base::failure from
// the first read (istreambuf_iterator), and an unreadable file reads as empty. Here a
// directory, a device or a FIFO is refused and a read error is reported, each with the
// path and the reason. Blocking: call it at start-up or on a worker thread.
#pragma once
#include <cstddef>
#include <limits>
#include <optional>
#include <string>

namespace switchyard::core {

struct file_read {
  std::optional<std::string> text;  // the file's bytes; empty optional: not read
  std::string reason;               // why not ("is a directory, not a file"), when text is empty
  std::string error;                // the same as "<path>: <reason>"
  explicit operator bool() const { return text.has_value(); }
};

// The bytes of the regular file at `path` (symbolic links followed). Refused: a path that
// is not a regular file, a read error, a file larger than `max_bytes`. Never throws but
// std::bad_alloc.
file_read read_file(const std::string& path, std::size_t max_bytes = std::numeric_limits<std::size_t>::max());

}  // namespace switchyard::core
