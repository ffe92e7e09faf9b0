// Private to config/: a YAML document as a plain tree that remembers, for every node,
// the file and the 1-based line it came from. yaml-cpp is used only in yaml_tree.cpp;
// everything else in config/ works on this tree, so values merged from several files
// (`include`) still report their own file:line.
// Owner: the loader, for the duration of one load. Thread: any. parse_yaml_file_blocking reads a file.
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace switchyard::config::detail {

struct map_entry;

struct node {
  enum class kind { null, scalar, sequence, mapping };

  kind type = kind::null;
  // Scalar text as written (after YAML unescaping). For plain scalars the type (bool,
  // int, float, null) is resolved later as YAML 1.1 / PyYAML would (see values.hpp).
  std::string text;
  bool quoted = false;     // quoted, block or !!str scalar: always a string
  std::string env_var;     // set when the text was substituted from os.environ/<env_var>
  std::vector<node> items;         // kind::sequence
  std::vector<map_entry> entries;  // kind::mapping, in file order, keys unique
  std::shared_ptr<const std::string> file;
  int line = 0;  // 1-based; 0 = unknown

  bool is_null() const { return type == kind::null; }
  bool is_scalar() const { return type == kind::scalar; }
  bool is_sequence() const { return type == kind::sequence; }
  bool is_mapping() const { return type == kind::mapping; }
  // The entry's value, or nullptr. Only for mappings.
  const node* find(std::string_view key) const;
  node* find(std::string_view key);
};

struct map_entry {
  std::string key;
  int key_line = 0;  // 1-based line of the key itself
  node value;
};

// What a node is, for messages: "a string \"abc\"", "a list", "a mapping", "null", ...
std::string describe(const node& n);

// Reads and parses one YAML file. `display_path` is used in messages and stored in
// every node. Throws config_error: missing/unreadable file (line 0, key "config"),
// YAML syntax error (its line, key "yaml"), several documents, non-scalar keys.
// Duplicate keys keep the last value (as PyYAML does) and append a warning; merge keys
// (`<<: *anchor`) are applied. An empty file gives a null node.
// `bytes`, when given, gets the file's bytes as parsed (the config's version is their hash).
node parse_yaml_file_blocking(const std::string& display_path, std::vector<std::string>& warnings,
                              std::string* bytes = nullptr);

}  // namespace switchyard::config::detail
