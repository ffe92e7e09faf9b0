// The only translation unit that includes yaml-cpp.
//
// We drive YAML::Parser with our own EventHandler instead of YAML::Load/LoadAll:
//  - Debian 12's yaml-cpp 0.7 loops forever in LoadAll on a stray ',' at document level
//    (jbeder/yaml-cpp#1040, fixed upstream in 2024 by #1319), allocating a null document
//    per turn; Load returns a null node for the same input, so a broken file would look
//    empty. We call HandleNextDocument at most twice and treat "no progress" as a syntax
//    error at that position.
//  - Building our tree from events lets us bound alias expansion and nesting ourselves.
#include "yaml_tree.hpp"

#include "values.hpp"

#include "switchyard/config/config.hpp"
#include "switchyard/core/file.hpp"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/exceptions.h>
#include <yaml-cpp/mark.h>
#include <yaml-cpp/parser.h>

#include <cerrno>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <system_error>

namespace switchyard::config::detail {

const node* node::find(std::string_view key) const {
  for (const auto& e : entries) {
    if (e.key == key) {
      return &e.value;
    }
  }
  return nullptr;
}

node* node::find(std::string_view key) {
  for (auto& e : entries) {
    if (e.key == key) {
      return &e.value;
    }
  }
  return nullptr;
}

std::string describe(const node& n) {
  switch (n.type) {
    case node::kind::null:
      return "null";
    case node::kind::sequence:
      return "a list";
    case node::kind::mapping:
      return "a mapping";
    case node::kind::scalar:
      break;
  }
  if (!n.env_var.empty()) {
    // Values from the environment are often secrets: name the variable, never the value.
    return "the value of os.environ/" + n.env_var;
  }
  return "\"" + (n.text.size() > 40 ? n.text.substr(0, 40) + "..." : n.text) + "\"";
}

namespace {

constexpr const char* str_tag = "tag:yaml.org,2002:str";
constexpr std::size_t max_depth = 64;
// Aliases are expanded into copies: bound the total so `&a [*b, *b, ...]` chains
// ("billion laughs") fail fast instead of exhausting memory. Real configs hold a few thousand.
constexpr std::size_t max_nodes = 200'000;

int line_of(const YAML::Mark& m) { return m.is_null() || m.line < 0 ? 0 : m.line + 1; }

std::size_t size_of(const node& n) {
  std::size_t total = 1;
  for (const auto& i : n.items) {
    total += size_of(i);
  }
  for (const auto& e : n.entries) {
    total += size_of(e.value);
  }
  return total;
}

// Builds one document's tree from parser events.
class tree_builder : public YAML::EventHandler {
 public:
  tree_builder(std::shared_ptr<const std::string> file, std::vector<std::string>& warnings)
      : file_(std::move(file)), warnings_(warnings) {}

  const YAML::Mark& document_start() const { return doc_start_; }
  node take_root() { return root_ ? std::move(*root_) : node{}; }

  void OnDocumentStart(const YAML::Mark& mark) override { doc_start_ = mark; }
  void OnDocumentEnd() override {}

  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    node n = make(node::kind::null, mark);
    remember(anchor, n);
    add(std::move(n));
  }

  void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    auto it = anchors_.find(anchor);
    if (it == anchors_.end()) {
      throw config_error(*file_, line_of(mark), "yaml", "an alias refers to an anchor that encloses it (recursive)");
    }
    const std::size_t n = size_of(it->second);
    aliased_nodes_ += n;
    count(mark, n);
    add(it->second);
  }

  void OnScalar(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                const std::string& value) override {
    node n = make(node::kind::scalar, mark);
    n.text = value;
    n.quoted = tag == "!" || tag == str_tag;
    if (!is_valid_utf8(n.text)) {
      throw config_error(*file_, n.line, "yaml", "a value is not valid UTF-8");
    }
    remember(anchor, n);
    add(std::move(n));
  }

  void OnSequenceStart(const YAML::Mark& mark, const std::string& /*tag*/, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value /*style*/) override {
    open(node::kind::sequence, mark, anchor);
  }
  void OnSequenceEnd() override { close(); }

  void OnMapStart(const YAML::Mark& mark, const std::string& /*tag*/, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value /*style*/) override {
    open(node::kind::mapping, mark, anchor);
  }

  void OnMapEnd() override {
    frame& f = stack_.back();
    // `<<` merges: explicit keys win, then earlier merged mappings over later ones.
    for (auto& m : f.merged) {
      if (f.n.find(m.key) == nullptr) {
        f.n.entries.push_back(std::move(m));
      }
    }
    close();
  }

 private:
  struct frame {
    node n;
    YAML::anchor_t anchor = YAML::NullAnchor;
    std::optional<node> key;        // mappings: a key waiting for its value
    std::vector<map_entry> merged;  // mappings: entries from `<<` merge keys
  };

  node make(node::kind k, const YAML::Mark& mark) {
    count(mark, 1);
    node n;
    n.type = k;
    n.file = file_;
    n.line = line_of(mark);
    return n;
  }

  void count(const YAML::Mark& mark, std::size_t n) {
    nodes_ += n;
    if (nodes_ > max_nodes) {
      // Say the limit as it is; aliases are named only when they took part (a long
      // model_list reaches it without any).
      const std::string limit = std::to_string(max_nodes) +
                                " YAML nodes (keys, values and list items), the limit for one file";
      if (aliased_nodes_ > 0) {
        throw config_error(*file_, line_of(mark), "yaml",
                           "the document expands to more than " + limit + " (" + std::to_string(aliased_nodes_) +
                               " of them copied by aliases so far): aliases nested too deeply?");
      }
      throw config_error(*file_, line_of(mark), "yaml",
                         "the file has more than " + limit +
                             "; split it into several files with `include` (each has the same limit)");
    }
  }

  void remember(YAML::anchor_t anchor, const node& n) {
    if (anchor != YAML::NullAnchor) {
      anchors_[anchor] = n;
    }
  }

  void open(node::kind k, const YAML::Mark& mark, YAML::anchor_t anchor) {
    if (stack_.size() >= max_depth) {
      throw config_error(*file_, line_of(mark), "yaml", "nesting deeper than " + std::to_string(max_depth) + " levels");
    }
    stack_.push_back(frame{make(k, mark), anchor, std::nullopt, {}});
  }

  void close() {
    frame f = std::move(stack_.back());
    stack_.pop_back();
    remember(f.anchor, f.n);
    add(std::move(f.n));
  }

  // Attaches a finished node to its parent (or makes it the root).
  void add(node n) {
    if (stack_.empty()) {
      root_ = std::move(n);
      return;
    }
    frame& f = stack_.back();
    if (f.n.is_sequence()) {
      f.n.items.push_back(std::move(n));
      return;
    }
    if (!f.key) {
      if (!n.is_scalar()) {
        throw config_error(*file_, n.line, "yaml", "mapping keys must be plain strings");
      }
      f.key = std::move(n);
      return;
    }
    node key = std::move(*f.key);
    f.key.reset();
    if (n.is_null()) {
      n.line = key.line;  // yaml-cpp marks an empty value at the next token
    }
    if (key.text == "<<" && !key.quoted) {
      merge(f, std::move(n), key.line);
      return;
    }
    map_entry e{key.text, key.line, std::move(n)};
    for (auto& existing : f.n.entries) {
      if (existing.key == e.key) {
        warnings_.push_back(config_error(*file_, e.key_line, e.key,
                                         "duplicate key (also on line " + std::to_string(existing.key_line) +
                                             "); the later value is used")
                                .what());
        existing = std::move(e);
        return;
      }
    }
    f.n.entries.push_back(std::move(e));
  }

  void merge(frame& f, node value, int key_line) {
    std::vector<node> sources;
    if (value.is_mapping()) {
      sources.push_back(std::move(value));
    } else if (value.is_sequence()) {
      sources = std::move(value.items);
    }
    if (sources.empty() && !value.is_null()) {
      throw config_error(*file_, key_line, "<<", "a merge key needs a mapping or a list of mappings, got " +
                                                     describe(value));
    }
    for (auto& src : sources) {
      if (!src.is_mapping()) {
        throw config_error(*file_, key_line, "<<", "a merge key needs a mapping or a list of mappings, got " +
                                                       describe(src));
      }
      for (auto& e : src.entries) {
        bool present = false;
        for (const auto& m : f.merged) {
          present = present || m.key == e.key;
        }
        if (!present) {
          f.merged.push_back(std::move(e));
        }
      }
    }
  }

  std::shared_ptr<const std::string> file_;
  std::vector<std::string>& warnings_;
  YAML::Mark doc_start_ = YAML::Mark::null_mark();
  std::vector<frame> stack_;
  std::optional<node> root_;
  std::map<YAML::anchor_t, node> anchors_;
  std::size_t nodes_ = 0;
  std::size_t aliased_nodes_ = 0;  // of nodes_, those copied by aliases
};

}  // namespace

node parse_yaml_file_blocking(const std::string& display_path, std::vector<std::string>& warnings,
                              std::string* bytes) {
  // A directory given as the config (a mistyped path) must not read as an empty config:
  // that would start a gateway with no keys and auth off.
  // Bounded: a config is kilobytes; a path to a huge file is a mistake, not a config.
  constexpr std::size_t max_config_bytes = 64u << 20;
  auto read = core::read_file(display_path, max_config_bytes);
  if (!read) {
    throw config_error(display_path, 0, "config", "cannot read file: " + read.reason);
  }
  const std::string text = std::move(*read.text);
  if (bytes != nullptr) {
    *bytes = text;
  }
  auto file = std::make_shared<const std::string>(display_path);

  try {
    std::istringstream stream(text);
    YAML::Parser parser(stream);
    tree_builder first(file, warnings);
    if (!parser.HandleNextDocument(first)) {
      node empty;
      empty.file = file;
      empty.line = 1;
      return empty;
    }
    node root = first.take_root();

    std::vector<std::string> ignored;
    tree_builder second(file, ignored);
    if (parser.HandleNextDocument(second)) {
      const YAML::Mark& at = second.document_start();
      if (at.pos == first.document_start().pos) {
        // The parser made no progress: a token it cannot place (yaml-cpp#1040).
        const auto pos = static_cast<std::size_t>(at.pos);
        const std::string what = pos < text.size() ? std::string("'") + text[pos] + "'" : "input";
        throw config_error(display_path, line_of(at), "yaml",
                           "syntax error: unexpected " + what + " (column " + std::to_string(at.column + 1) + ")");
      }
      throw config_error(display_path, line_of(at), "yaml", "a second YAML document starts here; expected one");
    }
    return root;
  } catch (const YAML::Exception& e) {
    if (e.mark.is_null()) {
      throw config_error(display_path, 0, "yaml", "syntax error: " + e.msg);
    }
    throw config_error(display_path, e.mark.line + 1, "yaml",
                       "syntax error: " + e.msg + " (column " + std::to_string(e.mark.column + 1) + ")");
  }
}

}  // namespace switchyard::config::detail
