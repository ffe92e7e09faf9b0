#include "switchyard/spend/spill_file.hpp"

#include "switchyard/core/file.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <system_error>

#include <unistd.h>

namespace switchyard::spend {

namespace fs = std::filesystem;

namespace {

constexpr char magic[4] = {'S', 'Y', 'S', '1'};
constexpr std::size_t header_bytes = 12;
constexpr std::uint32_t max_record = 64u << 20;

std::array<std::uint32_t, 256> make_crc_table() {
  std::array<std::uint32_t, 256> t{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k) {
      c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    }
    t[i] = c;
  }
  return t;
}

void put_u32(std::string& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) {
    out += static_cast<char>((v >> (8 * i)) & 0xFF);
  }
}

std::uint32_t get_u32(const char* p) {
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i) {
    v = (v << 8) | static_cast<unsigned char>(p[i]);
  }
  return v;
}

bool is_spill_name(const std::string& name) {
  return name.rfind("spill-", 0) == 0 && name.size() > 10 && name.ends_with(".log");
}

}  // namespace

std::uint32_t crc32(const void* data, std::size_t n) {
  static const auto table = make_crc_table();
  std::uint32_t c = 0xFFFFFFFFu;
  const auto* p = static_cast<const unsigned char*>(data);
  for (std::size_t i = 0; i < n; ++i) {
    c = table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
  }
  return c ^ 0xFFFFFFFFu;
}

spill_file::~spill_file() {
  if (cur_ != nullptr) {
    std::fclose(cur_);
  }
}

void spill_file::append_blocking(const std::vector<spend_row>& rows) {
  if (cur_ == nullptr) {
    std::error_code ec;
    fs::create_directories(dir_, ec);
    // After the newest file there, so replay order follows write order across restarts.
    std::uint64_t seq = 0;
    for (const auto& f : closed_files_blocking()) {
      auto name = fs::path(f).filename().string();
      seq = std::max<std::uint64_t>(seq, std::strtoull(name.c_str() + 6, nullptr, 10));
    }
    char name[64];
    std::snprintf(name, sizeof name, "spill-%012llu.log", static_cast<unsigned long long>(seq + 1));
    cur_path_ = (fs::path(dir_) / name).string();
    cur_ = std::fopen(cur_path_.c_str(), "ab");
    if (cur_ == nullptr) {
      throw std::runtime_error("cannot open the spend spill file " + cur_path_ + ": " + std::strerror(errno));
    }
  }
  std::string buf;
  for (const auto& r : rows) {
    std::string payload;
    append_json(payload, r);
    buf.append(magic, 4);
    put_u32(buf, static_cast<std::uint32_t>(payload.size()));
    put_u32(buf, crc32(payload.data(), payload.size()));
    buf += payload;
  }
  if (std::fwrite(buf.data(), 1, buf.size(), cur_) != buf.size() || std::fflush(cur_) != 0 ||
      ::fsync(::fileno(cur_)) != 0) {
    throw std::runtime_error("cannot write the spend spill file " + cur_path_ + ": " + std::strerror(errno));
  }
  cur_bytes_ += buf.size();
  if (cur_bytes_ >= max_file_bytes_) {
    rotate_blocking();
  }
}

void spill_file::rotate_blocking() {
  if (cur_ != nullptr) {
    std::fclose(cur_);
    cur_ = nullptr;
  }
  cur_path_.clear();
  cur_bytes_ = 0;
}

std::vector<std::string> spill_file::closed_files_blocking() const {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir_, ec)) {
    auto name = e.path().filename().string();
    if (is_spill_name(name) && e.path().string() != cur_path_) {
      out.push_back(e.path().string());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::uint64_t spill_file::size_blocking() const {
  std::uint64_t n = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir_, ec)) {
    if (is_spill_name(e.path().filename().string())) {
      // file_size() of what is not a regular file (a directory by that name) is an error
      // and returns uintmax_t(-1): not a size to add.
      std::error_code size_ec;
      const auto size = e.file_size(size_ec);
      if (!size_ec) {
        n += size;
      }
    }
  }
  return n;
}

spill_file::read_result spill_file::read_blocking(const std::string& path) {
  read_result out;
  auto read = core::read_file(path);
  if (!read) {
    out.error = read.error;
    return out;
  }
  const std::string data = std::move(*read.text);
  std::string corrupt_bytes;
  std::size_t at = 0;
  auto valid_at = [&](std::size_t p, std::uint32_t& len) {
    if (p + header_bytes > data.size() || std::memcmp(data.data() + p, magic, 4) != 0) {
      return false;
    }
    len = get_u32(data.data() + p + 4);
    if (len > max_record || p + header_bytes + len > data.size()) {
      return false;
    }
    return crc32(data.data() + p + header_bytes, len) == get_u32(data.data() + p + 8);
  };
  while (at < data.size()) {
    std::uint32_t len = 0;
    if (valid_at(at, len)) {
      auto row = row_from_json(std::string_view(data).substr(at + header_bytes, len));
      if (row) {
        out.rows.push_back(std::move(*row));
      } else {
        ++out.corrupt;
        corrupt_bytes.append(data, at, header_bytes + len);
      }
      at += header_bytes + len;
      continue;
    }
    // Not a valid record here: skip to the next position where one is.
    ++out.corrupt;
    std::size_t next = at + 1;
    while (next < data.size() && !valid_at(next, len)) {
      next = data.find(magic, next + 1, 4) == std::string::npos ? data.size() : data.find(magic, next + 1, 4);
    }
    corrupt_bytes.append(data, at, next - at);
    at = next;
  }
  if (!corrupt_bytes.empty()) {
    std::ofstream aside(path + ".corrupt", std::ios::binary | std::ios::app);
    aside.write(corrupt_bytes.data(), static_cast<std::streamsize>(corrupt_bytes.size()));
    spdlog::error("spend spill file {}: {} corrupt record(s) skipped, their bytes kept in {}.corrupt", path,
                  out.corrupt, path);
  }
  return out;
}

}  // namespace switchyard::spend
