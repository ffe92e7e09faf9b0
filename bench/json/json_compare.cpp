// The performance goals ask to "consider simdjson for the reading of request bodies, beside
// nlohmann/json for building documents: measure both". This program does that: for the
// documents the gateway reads on its hot path (request bodies of 1 KB, 100 KB and 1 MB,
// an upstream chat.completion answer, one chat.completion.chunk stream event) it times
//
//   scan_json        what the gateway does: full validation + the top-level members
//   simdjson dom     simdjson's DOM parser (full validation, builds its tape) + model/stream
//   simdjson od      simdjson On-Demand: model/stream read, the rest only skipped
//                    (On-Demand does NOT validate what it skips: not a like-for-like check)
//   nlohmann accept  nlohmann's validation only (SAX, no DOM)
//   nlohmann parse   nlohmann's DOM (what the gateway did before scan_json)
//
// and prints ns per document and MB/s, the median of 5 repetitions of ~0.2 s each.
// simdjson reads from a padded copy made beforehand (its best case; the gateway would
// have to give each body SIMDJSON_PADDING spare bytes, or copy it).
//
// Run it with ./bench/json.sh (installs libsimdjson-dev, builds in Release, runs).
#include "switchyard/providers/json_scan.hpp"

#include <nlohmann/json.hpp>
#include <simdjson.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;
namespace sp = switchyard::providers;

// The body bench/post.lua sends, to the byte: a user message padded to `size`.
enum class text_kind { plain, english, multilingual, escaped };

std::string request_body(std::size_t size, text_kind kind = text_kind::plain) {
  const std::string prefix =
      R"({"model":"bench-json","stream":false,"max_tokens":16,"user":"bench","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":")";
  const std::string suffix = R"("}]})";
  // english: prose and code as prompts have them, ASCII with an escaped newline, tab or
  // quote every few dozen bytes; multilingual: about a third of the bytes non-ASCII
  // (accents, punctuation, Japanese); escaped: the same text with every non-ASCII
  // character as a \u escape, as Python's json.dumps writes it by default. Each escape
  // and multi-byte character leaves a vector loop somewhere.
  const std::string sentence =
      kind == text_kind::plain
          ? "The quick brown fox jumps over the lazy dog while the gateway relays every byte. "
      : kind == text_kind::english
          ? R"(The \"quick\" brown fox jumps over the lazy dog.\n\tif (x > 0) { return y; }\n)"
      : kind == text_kind::multilingual
          ? R"(Le café — “naïve” 日本語のテキスト.\n\tThe \"quick\" brown fox jumps over the lazy dog.\n)"
          : R"(Le caf\u00e9 \u2014 \u201cna\u00efve\u201d \u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8.\n\tThe \"quick\" brown fox jumps over the lazy dog.\n)";
  std::string fill;
  while (prefix.size() + fill.size() + suffix.size() < size) {
    fill += sentence;
  }
  if (kind == text_kind::plain) {  // exact size; the others keep whole sentences
    fill.resize(size > prefix.size() + suffix.size() ? size - prefix.size() - suffix.size() : 0);
  }
  return prefix + fill + suffix;
}

const char* const completion =
    R"({"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"bench-model","choices":[{"index":0,"message":{"role":"assistant","content":"Hello there, how may I help you today?"},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":12,"total_tokens":21}})";
const char* const chunk =
    R"({"id":"chatcmpl-bench0000000000000000000002","object":"chat.completion.chunk","created":1700000000,"model":"bench-model","system_fingerprint":"fp_bench","choices":[{"index":0,"delta":{"content":" streamed"},"logprobs":null,"finish_reason":null}]})";

std::size_t sink = 0;  // keeps the work observable (printed at the end)

// ns per call of f, median of 5 repetitions of about `budget` each.
double ns_per_call(const std::function<bool()>& f, std::chrono::milliseconds budget = std::chrono::milliseconds(200)) {
  std::size_t n = 1;
  for (;;) {  // calibrate
    auto t0 = clock_type::now();
    for (std::size_t i = 0; i < n; ++i) {
      if (!f()) {
        std::fprintf(stderr, "a parser refused a valid document\n");
        std::exit(1);
      }
    }
    if (clock_type::now() - t0 >= budget / 4) {
      break;
    }
    n *= 2;
  }
  n *= 4;
  std::vector<double> reps;
  for (int r = 0; r < 5; ++r) {
    auto t0 = clock_type::now();
    for (std::size_t i = 0; i < n; ++i) {
      f();
    }
    reps.push_back(std::chrono::duration<double, std::nano>(clock_type::now() - t0).count() / static_cast<double>(n));
  }
  std::sort(reps.begin(), reps.end());
  return reps[2];
}

}  // namespace

int main() {
  struct doc {
    const char* name;
    std::string text;
  };
  std::vector<doc> docs{{"request 1 KB", request_body(1024)},
                        {"request 100 KB", request_body(100 * 1024)},
                        {"request 1 MB", request_body(1024 * 1024)},
                        {"request 100 KB, English prose and code (escapes)", request_body(100 * 1024, text_kind::english)},
                        {"request 100 KB, multilingual (a third non-ASCII)", request_body(100 * 1024, text_kind::multilingual)},
                        {"request 100 KB, the same with \\u escapes (Python's json.dumps)", request_body(100 * 1024, text_kind::escaped)},
                        {"chat.completion answer", completion},
                        {"chat.completion.chunk event", chunk}};

  simdjson::dom::parser dom;
  simdjson::ondemand::parser od;
  sp::json_scan scan;

#define SY_STR2(x) #x
#define SY_STR(x) SY_STR2(x)
  // The DOM parser and On-Demand's structural indexing (stage 1) dispatch at run time to
  // the best kernel of the CPU; On-Demand's iteration is inline code compiled for this
  // binary's target (baseline x86-64, as the gateway: simdjson's "fallback" kernel).
  std::printf("simdjson %s; run-time kernel: %s (%s); On-Demand iteration compiled as: %s\n\n",
              SY_STR(SIMDJSON_VERSION), simdjson::get_active_implementation()->name().c_str(),
              simdjson::get_active_implementation()->description().c_str(),
              simdjson::builtin_implementation()->name().c_str());
  std::printf("| document | bytes | scan_json (ours) | simdjson dom | simdjson on-demand (no full validation) | nlohmann accept | nlohmann parse |\n");
  std::printf("|---|---|---|---|---|---|---|\n");
  for (const auto& d : docs) {
    const std::string_view text = d.text;
    const simdjson::padded_string padded(text);
    auto ours = [&] {
      bool ok = sp::scan_json(text, scan);
      sink += scan.members.size();
      return ok && scan.find("model") != nullptr;
    };
    auto sj_dom = [&] {
      simdjson::dom::element e;
      if (dom.parse(padded).get(e) != simdjson::SUCCESS) {
        return false;
      }
      std::string_view model;
      if (e["model"].get_string().get(model) != simdjson::SUCCESS) {
        return false;
      }
      bool stream = false;
      if (auto err = e["stream"].get_bool().get(stream); err != simdjson::SUCCESS && err != simdjson::NO_SUCH_FIELD) {
        return false;
      }
      sink += model.size() + (stream ? 1 : 0);
      return true;
    };
    auto sj_od = [&] {
      simdjson::ondemand::document e;
      if (od.iterate(padded).get(e) != simdjson::SUCCESS) {
        return false;
      }
      simdjson::ondemand::object o;
      if (e.get_object().get(o) != simdjson::SUCCESS) {
        return false;
      }
      std::size_t seen = 0;
      for (auto field : o) {  // every member, in order, values skipped unless read
        std::string_view key;
        if (field.unescaped_key().get(key) != simdjson::SUCCESS) {
          return false;
        }
        if (key == "model") {
          std::string_view model;
          if (field.value().get_string().get(model) != simdjson::SUCCESS) {
            return false;
          }
          sink += model.size();
        }
        ++seen;
      }
      sink += seen;
      return seen > 0;
    };
    auto nl_accept = [&] { return nlohmann::json::accept(text); };
    auto nl_parse = [&] {
      auto j = nlohmann::json::parse(text, nullptr, false);
      sink += j.size();
      return !j.is_discarded();
    };
    const double t_ours = ns_per_call(ours);
    const double t_dom = ns_per_call(sj_dom);
    const double t_od = ns_per_call(sj_od);
    const double t_acc = ns_per_call(nl_accept);
    const double t_nl = ns_per_call(nl_parse);
    auto cell = [&](double ns) {
      static char buf[96];
      const double mbs = static_cast<double>(text.size()) / ns * 1e3;  // bytes/ns -> MB/s
      if (ns >= 10'000) {
        std::snprintf(buf, sizeof buf, "%.1f µs (%.0f MB/s)", ns / 1000, mbs);
      } else {
        std::snprintf(buf, sizeof buf, "%.0f ns (%.0f MB/s)", ns, mbs);
      }
      return std::string(buf);
    };
    std::printf("| %s | %zu | %s | %s | %s | %s | %s |\n", d.name, text.size(), cell(t_ours).c_str(),
                cell(t_dom).c_str(), cell(t_od).c_str(), cell(t_acc).c_str(), cell(t_nl).c_str());
  }
  std::fprintf(stderr, "(checksum %zu)\n", sink);
  return 0;
}
