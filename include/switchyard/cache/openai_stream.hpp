// Streams and the cache, in the OpenAI shape whatever provider produced the answer (the
// gateway's relay already speaks OpenAI SSE to the client):
//  - stream_assembler reads the SSE bytes sent to the client as they pass and builds the
//    one chat.completion / text_completion JSON they amount to;
//  - replay_frames turns a cached JSON answer back into SSE frames for a streaming request.
// Thread: any. Never blocks. Plain values.
#pragma once
#include <nlohmann/json.hpp>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace switchyard::cache {

class stream_assembler {
 public:
  // `chat`: chat.completion.chunk events (else text_completion events).
  // `max_bytes`: past this many bytes fed, the answer is too large to cache (gives up).
  stream_assembler(bool chat, std::size_t max_bytes) : chat_(chat), max_bytes_(max_bytes) {}

  // Any piece of the SSE body (frames may be cut anywhere).
  void feed(std::string_view bytes);

  bool done() const { return done_; }        // [DONE] seen
  bool failed() const { return failed_; }    // an error event, an unreadable event, or too large
  bool too_large() const { return too_large_; }

  // The whole answer as one OpenAI JSON (usage from the stream when it had one, else
  // `usage` when given); nullopt unless the stream ended with [DONE] and nothing failed.
  std::optional<std::string> result(const std::optional<nlohmann::json>& usage = std::nullopt) const;

 private:
  void event(std::string_view data);
  nlohmann::json& choice(int index);

  bool chat_;
  std::size_t max_bytes_;
  std::size_t fed_ = 0;
  std::string pending_;  // an incomplete line
  bool done_ = false, failed_ = false, too_large_ = false;
  nlohmann::json head_ = nlohmann::json::object();  // id, created, model, system_fingerprint
  std::vector<nlohmann::json> choices_;             // by index
  std::optional<nlohmann::json> usage_;
};

// SSE frames ("data: {...}\n\n" ... "data: [DONE]\n\n") replaying `answer` (a cached
// chat.completion or text_completion JSON): the content in one chunk per choice, then the
// finish reasons, then (when `include_usage`) a chunk with the usage and no choices.
std::string replay_frames(const nlohmann::json& answer, bool chat, bool include_usage);

}  // namespace switchyard::cache
