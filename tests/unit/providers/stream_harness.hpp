// Feeds a captured upstream stream to a stream_translator in different splits and
// collects what comes out, with id/created normalised so runs can be compared.
#pragma once
#include "switchyard/providers/adapter.hpp"
#include "../../stream_ids.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <initializer_list>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace switchyard::test {

struct stream_run {
  std::vector<nlohmann::json> chunks;  // payloads parsed, "id"/"created" replaced
  std::optional<core::error> error;    // the first error from feed() or finish()
  bool error_from_finish = false;
  providers::usage tokens;
};

// Piece sizes for one way of splitting: 0 = the whole input at once.
inline std::vector<std::size_t> split_sizes(std::size_t total, std::size_t piece, unsigned seed) {
  std::vector<std::size_t> sizes;
  if (piece == 0) {
    sizes.push_back(total);
    return sizes;
  }
  std::mt19937 gen(seed);
  std::uniform_int_distribution<std::size_t> dist(1, piece);
  std::size_t done = 0;
  while (done < total) {
    std::size_t n = seed == 0 ? piece : dist(gen);
    n = std::min(n, total - done);
    sizes.push_back(n);
    done += n;
  }
  return sizes;
}

inline stream_run run_stream(const providers::adapter& a, providers::call_type type, const config::deployment& d,
                             std::string_view input, bool include_usage, const std::vector<std::size_t>& sizes) {
  stream_run run;
  auto t = a.make_stream(type, d, "my-model", include_usage);
  std::vector<std::string> payloads;
  std::size_t pos = 0;
  for (auto n : sizes) {
    auto r = t->feed(input.substr(pos, n), payloads);
    pos += n;
    if (!r) {
      run.error = r.error();
      break;
    }
  }
  if (!run.error) {
    auto r = t->finish(payloads);
    if (!r) {
      run.error = r.error();
      run.error_from_finish = true;
    }
  }
  for (const auto& p : payloads) {
    auto j = nlohmann::json::parse(p);
    j["id"] = "ID";
    j["created"] = 0;
    // Generated tool call ids (Ollama has none) differ from run to run.
    if (j.contains("choices") && j["choices"].is_array()) {
      for (auto& ch : j["choices"]) {
        if (ch.contains("delta") && ch["delta"].contains("tool_calls")) {
          for (auto& tc : ch["delta"]["tool_calls"]) {
            if (tc.contains("id") && tc["id"].get<std::string>().rfind("call_", 0) == 0) {
              tc["id"] = "call_X";
            }
          }
        }
      }
    }
    run.chunks.push_back(std::move(j));
  }
  run.tokens = t->tokens();
  return run;
}

// Whole, 1 byte at a time, 7 bytes at a time, and random pieces (several seeds).
inline std::vector<std::vector<std::size_t>> all_splits(std::size_t total) {
  std::vector<std::vector<std::size_t>> out;
  out.push_back(split_sizes(total, 0, 0));
  out.push_back(split_sizes(total, 1, 0));
  out.push_back(split_sizes(total, 7, 0));
  for (unsigned seed = 1; seed <= 8; ++seed) {
    out.push_back(split_sizes(total, 64, seed));
  }
  return out;
}

// The text a client assembles from chat chunks (delta.content) or completion chunks (text).
inline std::string assembled_text(const std::vector<nlohmann::json>& chunks) {
  std::string s;
  for (const auto& c : chunks) {
    for (const auto& ch : c["choices"]) {
      if (ch.contains("delta") && ch["delta"].contains("content") && ch["delta"]["content"].is_string()) {
        s += ch["delta"]["content"].get<std::string>();
      }
      if (ch.contains("text") && ch["text"].is_string()) {
        s += ch["text"].get<std::string>();
      }
    }
  }
  return s;
}

// finish_reason of the chunk that carries one (empty if none).
inline std::string finish_reason(const std::vector<nlohmann::json>& chunks) {
  for (const auto& c : chunks) {
    for (const auto& ch : c["choices"]) {
      if (ch.contains("finish_reason") && ch["finish_reason"].is_string()) {
        return ch["finish_reason"].get<std::string>();
      }
    }
  }
  return {};
}

struct assembled_call {
  std::string id, name, arguments;
};
// Tool calls as the openai SDK assembles them from delta.tool_calls.
inline std::vector<assembled_call> assembled_tool_calls(const std::vector<nlohmann::json>& chunks) {
  std::vector<assembled_call> calls;
  for (const auto& c : chunks) {
    for (const auto& ch : c["choices"]) {
      if (!ch.contains("delta") || !ch["delta"].contains("tool_calls")) {
        continue;
      }
      for (const auto& tc : ch["delta"]["tool_calls"]) {
        auto i = tc["index"].get<std::size_t>();
        if (calls.size() <= i) {
          calls.resize(i + 1);
        }
        if (tc.contains("id")) {
          calls[i].id = tc["id"].get<std::string>();
        }
        if (tc.contains("function")) {
          const auto& f = tc["function"];
          if (f.contains("name")) {
            calls[i].name += f["name"].get<std::string>();
          }
          if (f.contains("arguments")) {
            calls[i].arguments += f["arguments"].get<std::string>();
          }
        }
      }
    }
  }
  return calls;
}

// ---- a stream read twice: plain events from their scan, and every event through the DOM ----

using stream_test::read_stream_with;
using stream_test::reading_outcome;
using stream_test::without_random_ids;

// The two readings agree: the same payloads byte for byte, the same error and usage.
inline void expect_same_outcome(const reading_outcome& fast, const reading_outcome& dom, std::string_view wire) {
  EXPECT_EQ(dom.scanned, 0u);
  EXPECT_EQ(fast.payloads, dom.payloads) << wire;
  EXPECT_EQ(fast.error.has_value(), dom.error.has_value()) << wire;
  if (fast.error && dom.error) {
    EXPECT_EQ(fast.error->status, dom.error->status) << wire;
    EXPECT_EQ(fast.error->message, dom.error->message) << wire;
  }
  EXPECT_EQ(fast.tokens.known, dom.tokens.known) << wire;
  EXPECT_EQ(fast.tokens.prompt_tokens, dom.tokens.prompt_tokens) << wire;
  EXPECT_EQ(fast.tokens.completion_tokens, dom.tokens.completion_tokens) << wire;
  EXPECT_EQ(fast.tokens.total_tokens, dom.tokens.total_tokens) << wire;
  EXPECT_EQ(fast.tokens.cached_tokens, dom.tokens.cached_tokens) << wire;
  EXPECT_EQ(fast.tokens.reasoning_tokens, dom.tokens.reasoning_tokens) << wire;
}

// `read(wire, include_usage, dom_only)` for both values of include_usage, the scan's
// reading and the DOM's alone: they agree. Returns how many events the scan read (with
// usage).
template <typename Read>
std::size_t expect_same_readings_with(Read&& read, std::string_view wire) {
  std::size_t scanned = 0;
  for (bool include_usage : {false, true}) {
    const auto fast = read(wire, include_usage, false);
    expect_same_outcome(fast, read(wire, include_usage, true), wire);
    scanned = fast.scanned;
  }
  return scanned;
}

// The dice and the JSON pieces the random stream makers share. A stream is plain (what the
// provider sends) or odd (shapes around it): odd(p) is true p% of the time, in odd streams
// only.
class random_json {
 public:
  explicit random_json(unsigned seed) : gen_(seed) {}

 protected:
  int pick(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(gen_); }
  bool chance(int percent) { return pick(1, 100) <= percent; }
  bool odd(int percent) { return !plain_ && chance(percent); }
  std::string one_of(std::initializer_list<std::string> xs) {
    return *(xs.begin() + pick(0, static_cast<int>(xs.size()) - 1));
  }
  // A key; in odd streams sometimes with its first letter written as an escape.
  std::string key(std::string_view k) {
    if (odd(3)) {
      char esc[8];
      std::snprintf(esc, sizeof esc, "\\u%04x", static_cast<unsigned char>(k[0]));
      return "\"" + std::string(esc) + std::string(k.substr(1)) + "\"";
    }
    return "\"" + std::string(k) + "\"";
  }
  std::string member(std::string_view k, const std::string& v) { return key(k) + ":" + (chance(20) ? " " : "") + v; }
  // The members in braces; in odd streams perhaps one of them twice. With `loose`, also
  // perhaps an unknown member, and sometimes a space inside the braces.
  std::string braces(std::vector<std::string> members, bool loose) {
    if (!members.empty() && odd(3)) {
      members.push_back(members[pick(0, static_cast<int>(members.size()) - 1)]);
    }
    if (loose && odd(3)) {
      members.insert(members.begin() + pick(0, static_cast<int>(members.size())), member("extra", "1"));
    }
    std::string out = loose && chance(10) ? "{ " : "{";
    for (std::size_t i = 0; i < members.size(); ++i) {
      out += (i ? "," : "") + members[i];
    }
    return out + (loose && chance(10) ? " }" : "}");
  }

  std::mt19937 gen_;
  bool plain_ = false;
};

}  // namespace switchyard::test
