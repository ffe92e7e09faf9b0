#include "switchyard/cache/openai_stream.hpp"

#include <gtest/gtest.h>

namespace switchyard::cache {
namespace {

using json = nlohmann::json;

const char* chat_stream =
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":7,\"model\":\"m\",\"choices\":[{\"index\":0,"
    "\"delta\":{\"role\":\"assistant\",\"content\":\"Hel\"},\"finish_reason\":null}]}\n\n"
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":7,\"model\":\"m\",\"choices\":[{\"index\":0,"
    "\"delta\":{\"content\":\"lo\"},\"finish_reason\":null}]}\n\n"
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":7,\"model\":\"m\",\"choices\":[{\"index\":0,"
    "\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"t1\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"a\\\"\"}}]},"
    "\"finish_reason\":null}]}\n\n"
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":7,\"model\":\"m\",\"choices\":[{\"index\":0,"
    "\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\":1}\"}}]},\"finish_reason\":\"tool_calls\"}]}\n\n"
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":7,\"model\":\"m\",\"choices\":[],"
    "\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2,\"total_tokens\":5}}\n\n"
    "data: [DONE]\n\n";

TEST(StreamAssembler, AssemblesChatChunksCutAnywhere) {
  const std::string s = chat_stream;
  for (std::size_t cut : {1u, 7u, 64u, 1000u}) {
    stream_assembler a(true, 1 << 20);
    for (std::size_t i = 0; i < s.size(); i += cut) {
      a.feed(std::string_view(s).substr(i, cut));
    }
    auto r = a.result();
    ASSERT_TRUE(r) << cut;
    auto j = json::parse(*r);
    EXPECT_EQ(j["object"], "chat.completion");
    EXPECT_EQ(j["id"], "c1");
    EXPECT_EQ(j["choices"][0]["message"]["content"], "Hello");
    EXPECT_EQ(j["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"], "{\"a\":1}");
    EXPECT_EQ(j["choices"][0]["message"]["tool_calls"][0]["id"], "t1");
    EXPECT_EQ(j["choices"][0]["finish_reason"], "tool_calls");
    EXPECT_EQ(j["usage"]["total_tokens"], 5);
  }
}

TEST(StreamAssembler, NothingWithoutDoneOrAfterAnError) {
  std::string s = chat_stream;
  stream_assembler cut(true, 1 << 20);
  cut.feed(s.substr(0, s.find("data: [DONE]")));
  EXPECT_FALSE(cut.result());
  stream_assembler err(true, 1 << 20);
  err.feed("data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n");
  err.feed("data: {\"error\":{\"message\":\"boom\"}}\n\ndata: [DONE]\n\n");
  EXPECT_TRUE(err.failed());
  EXPECT_FALSE(err.result());
  stream_assembler big(true, 100);
  big.feed(s);
  EXPECT_TRUE(big.too_large());
  EXPECT_FALSE(big.result());
}

TEST(StreamAssembler, UsageFromOutsideWhenTheStreamHadNone) {
  stream_assembler a(false, 1 << 20);
  a.feed("data: {\"id\":\"x\",\"object\":\"text_completion\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"text\":\"ab\"}]}\n\n");
  a.feed("data: {\"id\":\"x\",\"choices\":[{\"index\":0,\"text\":\"c\",\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n");
  auto r = a.result(json{{"prompt_tokens", 1}, {"completion_tokens", 2}, {"total_tokens", 3}});
  ASSERT_TRUE(r);
  auto j = json::parse(*r);
  EXPECT_EQ(j["object"], "text_completion");
  EXPECT_EQ(j["choices"][0]["text"], "abc");
  EXPECT_EQ(j["usage"]["total_tokens"], 3);
}

TEST(ReplayFrames, RoundTripsThroughTheAssembler) {
  stream_assembler a(true, 1 << 20);
  a.feed(chat_stream);
  auto answer = json::parse(*a.result());
  for (bool usage : {false, true}) {
    auto frames = replay_frames(answer, true, usage);
    EXPECT_EQ(frames.find("\"usage\"") != std::string::npos, usage);
    EXPECT_TRUE(frames.ends_with("data: [DONE]\n\n"));
    stream_assembler again(true, 1 << 20);
    again.feed(frames);
    auto j = json::parse(*again.result());
    EXPECT_EQ(j["choices"], answer["choices"]);
    EXPECT_EQ(j["id"], "c1");
    if (usage) {
      EXPECT_EQ(j["usage"], answer["usage"]);
    }
  }
}

// The chunks have OpenAI's members: every choice names `logprobs` (the finish chunk's
// too), and with include_usage every chunk carries `usage`, null but in the last one;
// without it no chunk has `usage`.
TEST(ReplayFrames, ChunksHaveTheMembersOpenAIChunksHave) {
  stream_assembler a(true, 1 << 20);
  a.feed(chat_stream);
  const auto answer = json::parse(*a.result());
  for (bool chat : {true, false}) {
    for (bool usage : {false, true}) {
      std::vector<json> chunks;
      const auto frames = replay_frames(answer, chat, usage);
      for (std::size_t at = 0; (at = frames.find("data: ", at)) != std::string::npos;) {
        const auto end = frames.find("\n\n", at);
        const auto payload = frames.substr(at + 6, end - at - 6);
        if (payload != "[DONE]") {
          chunks.push_back(json::parse(payload));
        }
        at = end;
      }
      ASSERT_EQ(chunks.size(), usage ? 3u : 2u);
      for (std::size_t i = 0; i < chunks.size(); ++i) {
        const auto& c = chunks[i];
        EXPECT_EQ(c.contains("usage"), usage) << c.dump();
        const bool last = usage && i + 1 == chunks.size();
        if (usage && !last) {
          EXPECT_TRUE(c["usage"].is_null()) << c.dump();
        }
        for (const auto& ch : c["choices"]) {
          EXPECT_TRUE(ch.contains("logprobs")) << c.dump();
          EXPECT_TRUE(ch.contains("finish_reason")) << c.dump();
        }
      }
      if (usage) {
        EXPECT_EQ(chunks.back()["usage"], answer["usage"]);
        EXPECT_TRUE(chunks.back()["choices"].empty());
      }
      if (chat) {
        // OpenAI's first delta: role, content and refusal (null).
        for (const auto& ch : chunks.front()["choices"]) {
          EXPECT_TRUE(ch["delta"].contains("refusal")) << ch.dump();
          EXPECT_TRUE(ch["delta"]["refusal"].is_null()) << ch.dump();
          EXPECT_EQ(ch["delta"]["role"], "assistant");
        }
      }
    }
  }
  // A refusal the answer holds is replayed as such.
  auto refused = json::parse(R"({"choices":[{"index":0,"message":{"role":"assistant","content":null,)"
                             R"("refusal":"I can't help with that."},"finish_reason":"stop"}]})");
  const auto frames = replay_frames(refused, true, false);
  const auto first = json::parse(frames.substr(6, frames.find("\n\n") - 6));
  EXPECT_EQ(first["choices"][0]["delta"]["refusal"], "I can't help with that.");
}

TEST(StreamAssembler, AnIndexThatIsNotAWholeNumberIsNotStoredAndNeverThrows) {
  for (const char* index : {R"("0")", "1.5", "null", "-1", "[0]"}) {
    for (bool in_tool_call : {false, true}) {
      const std::string choice_index = in_tool_call ? "0" : index;
      const std::string delta = in_tool_call
                                    ? std::string(R"({"tool_calls":[{"index":)") + index + R"(,"function":{"name":"f"}}]})"
                                    : std::string(R"({"content":"hi"})");
      const std::string stream = R"(data: {"id":"c","choices":[{"index":)" + choice_index + R"(,"delta":)" + delta +
                                 "}]}\n\ndata: [DONE]\n\n";
      stream_assembler a(true, 1 << 20);
      EXPECT_NO_THROW(a.feed(stream)) << stream;
      EXPECT_TRUE(a.failed()) << stream;
      EXPECT_FALSE(a.result()) << stream;
    }
  }
  // Without an index a choice is the first and a tool call piece continues the last call.
  stream_assembler a(true, 1 << 20);
  a.feed("data: {\"id\":\"c\",\"choices\":[{\"delta\":{\"tool_calls\":[{\"id\":\"t\",\"function\":{\"name\":\"f\","
         "\"arguments\":\"{\"}}]}}]}\n\n"
         "data: {\"id\":\"c\",\"choices\":[{\"delta\":{\"tool_calls\":[{\"function\":{\"arguments\":\"}\"}}]},"
         "\"finish_reason\":\"tool_calls\"}]}\n\ndata: [DONE]\n\n");
  auto j = json::parse(*a.result());
  EXPECT_EQ(j["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"], "{}");
  // Whole calls without an index, each with its id: one call each, not merged.
  stream_assembler whole(true, 1 << 20);
  whole.feed("data: {\"id\":\"c\",\"choices\":[{\"delta\":{\"tool_calls\":["
             "{\"id\":\"t1\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}},"
             "{\"id\":\"t2\",\"function\":{\"name\":\"g\",\"arguments\":\"[]\"}}]},"
             "\"finish_reason\":\"tool_calls\"}]}\n\ndata: [DONE]\n\n");
  const auto calls = json::parse(*whole.result())["choices"][0]["message"]["tool_calls"];
  ASSERT_EQ(calls.size(), 2u) << calls.dump();
  EXPECT_EQ(calls[0]["function"]["name"], "f");
  EXPECT_EQ(calls[1]["id"], "t2");
  EXPECT_EQ(calls[1]["function"]["arguments"], "[]");
}

TEST(ReplayFrames, AStoredAnswerOfAnyShapeReplaysWithoutThrowing) {
  // A stored answer is whatever an OpenAI-compatible server sent: members of other types
  // are read as absent, choices by their position.
  const char* odd[] = {
      R"([1,2])",
      R"({"id":5,"choices":"none"})",
      R"({"choices":[7,{"index":"1","message":"hi","finish_reason":null}]})",
      R"({"choices":[{"index":1.5,"message":{"role":3,"tool_calls":["x",{"id":"t"}],"function_call":1}}]})",
  };
  for (const char* text : odd) {
    const auto answer = json::parse(text);
    for (bool chat : {true, false}) {
      std::string frames;
      EXPECT_NO_THROW(frames = replay_frames(answer, chat, true)) << text;
      EXPECT_TRUE(frames.ends_with("data: [DONE]\n\n")) << text;
    }
  }
  auto frames = replay_frames(json::parse(R"({"choices":[{"index":"9","message":{"content":"a"}},{"message":{}}]})"),
                              true, false);
  const auto first = json::parse(frames.substr(6, frames.find("\n\n") - 6));
  EXPECT_EQ(first["choices"][0]["index"], 0) << frames;
  EXPECT_EQ(first["choices"][0]["delta"]["content"], "a") << frames;
  EXPECT_EQ(first["choices"][1]["index"], 1) << frames;
}

// The first choice's logprobs as assembled from `stream`; a replay of that answer
// assembles to the same.
json logprobs_replayed_the_same(const std::string& stream, bool chat) {
  stream_assembler a(chat, 1 << 20);
  a.feed(stream);
  auto answer = json::parse(a.result().value_or("{}"));
  const json lp = answer["choices"][0]["logprobs"];
  stream_assembler again(chat, 1 << 20);
  again.feed(replay_frames(answer, chat, false));
  auto replayed = json::parse(again.result().value_or("{}"));
  EXPECT_EQ(replayed["choices"][0]["logprobs"], lp);
  return lp;
}

TEST(StreamAssembler, LogprobsAreGatheredAndAHitReplaysThem) {
  // Chat: each chunk's logprobs.content holds its tokens.
  const std::string chat =
      "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hi\"},"
      "\"logprobs\":{\"content\":[{\"token\":\"Hi\",\"logprob\":-0.1,\"bytes\":[72,105],\"top_logprobs\":[]}],"
      "\"refusal\":null}}]}\n\n"
      "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"!\"},"
      "\"logprobs\":{\"content\":[{\"token\":\"!\",\"logprob\":-0.5,\"bytes\":[33],\"top_logprobs\":[]}],"
      "\"refusal\":null},\"finish_reason\":\"stop\"}]}\n\n"
      "data: [DONE]\n\n";
  const auto lp = logprobs_replayed_the_same(chat, true);
  ASSERT_EQ(lp["content"].size(), 2u) << lp.dump();
  EXPECT_EQ(lp["content"][1]["token"], "!");
  EXPECT_TRUE(lp["refusal"].is_null());

  // Completions: the four lists grow side by side.
  const std::string text =
      "data: {\"id\":\"t\",\"choices\":[{\"index\":0,\"text\":\"a\",\"logprobs\":{\"tokens\":[\"a\"],"
      "\"token_logprobs\":[-1.0],\"top_logprobs\":[{\"a\":-1.0}],\"text_offset\":[0]}}]}\n\n"
      "data: {\"id\":\"t\",\"choices\":[{\"index\":0,\"text\":\"b\",\"logprobs\":{\"tokens\":[\"b\"],"
      "\"token_logprobs\":[-2.0],\"top_logprobs\":[{\"b\":-2.0}],\"text_offset\":[1]},\"finish_reason\":\"length\"}]}\n\n"
      "data: [DONE]\n\n";
  const auto tlp = logprobs_replayed_the_same(text, false);
  EXPECT_EQ(tlp["tokens"], json::array({"a", "b"}));
  EXPECT_EQ(tlp["text_offset"], json::array({0, 1}));

  // Without logprobs the answer says null, as OpenAI's does.
  stream_assembler plain(true, 1 << 20);
  plain.feed(chat_stream);
  EXPECT_TRUE(json::parse(*plain.result())["choices"][0]["logprobs"].is_null());
}

}  // namespace
}  // namespace switchyard::cache
