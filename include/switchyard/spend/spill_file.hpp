// The spend writer's overflow on disk: rows that could not be written to Postgres (an
// outage longer than the memory queue holds, or a stop with the database away) are
// appended to files in a data directory, one record per row:
//   "SYS1" | u32 payload length | u32 CRC-32 of the payload | payload (the row as JSON)
// (integers little-endian). Files are named spill-<seq>.log; a file is complete once a
// later file exists or it was closed. Reading checks every record: a corrupt one is
// skipped (the reader finds the next valid record), counted, and its bytes are kept aside
// in <file>.corrupt for a person to look at; it never stops the replay.
// Thread: blocking file I/O; the cost logger runs it on its own thread, never the loop.
#pragma once
#include "switchyard/spend/record.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace switchyard::spend {

std::uint32_t crc32(const void* data, std::size_t n);

class spill_file {
 public:
  // A file is closed once it holds max_file_bytes, and the next append starts another: a
  // replay reads one file at a time into memory, so a long outage's spill is replayed in
  // pieces of this size, not all at once.
  static constexpr std::uint64_t default_max_file_bytes = 32u << 20;
  explicit spill_file(std::string dir, std::uint64_t max_file_bytes = default_max_file_bytes)
      : dir_(std::move(dir)), max_file_bytes_(max_file_bytes) {}
  ~spill_file();
  spill_file(const spill_file&) = delete;
  spill_file& operator=(const spill_file&) = delete;

  // Appends the rows to the current file (made on first use, closed once it holds
  // max_file_bytes) and syncs it. Throws
  // std::runtime_error naming the file when it cannot be written.
  void append_blocking(const std::vector<spend_row>& rows);
  // Closes the current file: the next append starts a new one.
  void rotate_blocking();
  // The closed files, oldest first.
  std::vector<std::string> closed_files_blocking() const;

  struct read_result {
    std::vector<spend_row> rows;
    std::size_t corrupt = 0;  // records skipped
    // Not empty: the file could not be read (not a regular file, a read error, access
    // refused); nothing of it was used, and it must stay for a later replay.
    std::string error;
  };
  // Reads every valid record of `path` (see above for corrupt ones).
  static read_result read_blocking(const std::string& path);
  // Bytes in every spill file (for metrics and tests).
  std::uint64_t size_blocking() const;
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  std::uint64_t max_file_bytes_;
  std::uint64_t cur_bytes_ = 0;
  std::FILE* cur_ = nullptr;
  std::string cur_path_;
};

}  // namespace switchyard::spend
