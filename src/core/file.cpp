#include "switchyard/core/file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <system_error>

namespace switchyard::core {

namespace {

file_read failed(const std::string& path, std::string reason) {
  file_read r;
  r.reason = std::move(reason);
  r.error = path + ": " + r.reason;
  return r;
}

std::string errno_text(int err) { return std::generic_category().message(err); }

}  // namespace

file_read read_file(const std::string& path, std::size_t max_bytes) {
  // O_NONBLOCK: opening a FIFO for reading would wait for a writer; it is refused below
  // as not a regular file instead.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) {
    return failed(path, errno_text(errno));
  }
  struct closer {
    int fd;
    ~closer() { ::close(fd); }
  } close_at_exit{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    return failed(path, errno_text(errno));
  }
  if (S_ISDIR(st.st_mode)) {
    return failed(path, "is a directory, not a file");
  }
  if (!S_ISREG(st.st_mode)) {
    return failed(path, "not a regular file");
  }
  if (static_cast<std::uint64_t>(st.st_size) > max_bytes) {
    return failed(path, "larger than " + std::to_string(max_bytes) + " bytes");
  }
  std::string text;
  // The size stat gave, plus one byte to see the end in the same read; a file that grows
  // meanwhile is read to its end all the same.
  text.resize(static_cast<std::size_t>(st.st_size) + 1);
  std::size_t have = 0;
  for (;;) {
    if (have == text.size()) {
      if (text.size() > max_bytes) {
        return failed(path, "larger than " + std::to_string(max_bytes) + " bytes");
      }
      text.resize(text.size() * 2);
    }
    const ssize_t n = ::read(fd, text.data() + have, text.size() - have);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return failed(path, errno_text(errno));
    }
    if (n == 0) {
      break;
    }
    have += static_cast<std::size_t>(n);
  }
  if (have > max_bytes) {
    return failed(path, "larger than " + std::to_string(max_bytes) + " bytes");
  }
  text.resize(have);
  file_read r;
  r.text = std::move(text);
  return r;
}

}  // namespace switchyard::core
