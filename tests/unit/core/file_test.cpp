// core::read_file: the bytes of a regular file, or a reason naming the path.
#include "switchyard/core/file.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace {

namespace fs = std::filesystem;
using switchyard::core::read_file;

struct temp_dir {
  fs::path path;
  temp_dir() {
    char tmpl[] = "/tmp/switchyard-file-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~temp_dir() { fs::remove_all(path); }
};

void write(const fs::path& p, const std::string& bytes) {
  std::ofstream(p, std::ios::binary) << bytes;
}

TEST(read_file, reads_a_file_whole_with_any_bytes) {
  temp_dir d;
  std::string bytes = "model_list: []\n";
  bytes.push_back('\0');
  bytes += std::string(100'000, 'x');
  write(d.path / "a.yaml", bytes);
  const auto r = read_file((d.path / "a.yaml").string());
  ASSERT_TRUE(r) << r.error;
  EXPECT_EQ(*r.text, bytes);
  write(d.path / "empty", "");
  const auto e = read_file((d.path / "empty").string());
  ASSERT_TRUE(e) << e.error;
  EXPECT_TRUE(e.text->empty());
}

TEST(read_file, a_directory_is_refused_not_read_as_empty) {
  temp_dir d;
  const auto r = read_file(d.path.string());
  EXPECT_FALSE(r);
  EXPECT_EQ(r.reason, "is a directory, not a file");
  EXPECT_EQ(r.error, d.path.string() + ": is a directory, not a file");
}

TEST(read_file, a_missing_file_says_so) {
  temp_dir d;
  const auto r = read_file((d.path / "nope").string());
  EXPECT_FALSE(r);
  EXPECT_EQ(r.reason, "No such file or directory");
}

TEST(read_file, a_fifo_is_refused_without_waiting_for_a_writer) {
  temp_dir d;
  const auto p = d.path / "pipe";
  ASSERT_EQ(::mkfifo(p.c_str(), 0600), 0);
  const auto r = read_file(p.string());  // would block forever in a plain open()
  EXPECT_FALSE(r);
  EXPECT_EQ(r.reason, "not a regular file");
}

TEST(read_file, a_file_over_the_bound_is_refused) {
  temp_dir d;
  write(d.path / "big", std::string(2000, 'y'));
  EXPECT_FALSE(read_file((d.path / "big").string(), 1999));
  EXPECT_TRUE(read_file((d.path / "big").string(), 2000));
}

TEST(read_file, a_symbolic_link_to_a_file_is_followed) {
  temp_dir d;
  write(d.path / "real", "abc");
  fs::create_symlink(d.path / "real", d.path / "link");
  const auto r = read_file((d.path / "link").string());
  ASSERT_TRUE(r) << r.error;
  EXPECT_EQ(*r.text, "abc");
}

}  // namespace
