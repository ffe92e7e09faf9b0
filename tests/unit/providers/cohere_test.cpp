// Cohere v2 chat: request translation, answers and the typed SSE stream.
#include "cohere_stream.hpp"
#include "stream_harness.hpp"
#include "switchyard/providers/adapter.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <random>

using namespace switchyard;
using json = nlohmann::json;
using providers::call_type;

namespace {

config::deployment cohere_dep() {
  config::deployment d;
  d.model_name = "command";
  d.model = "cohere/command-r-plus";
  d.provider = config::find_provider("cohere");
  d.upstream_model = "command-r-plus";
  d.api_key = "co-key";
  return d;
}

const providers::adapter& co() { return providers::cohere_adapter(); }

std::string header(const providers::upstream_call& c, const std::string& name) {
  for (const auto& [k, v] : c.headers) {
    if (k == name) {
      return v;
    }
  }
  return {};
}

TEST(Cohere, RegistryEntries) {
  for (const char* name : {"cohere", "cohere_chat"}) {
    const auto* p = config::find_provider(name);
    ASSERT_NE(p, nullptr) << name;
    EXPECT_EQ(&providers::adapter_for(*p), &co());
    EXPECT_EQ(p->default_api_base, "https://api.cohere.com");
    EXPECT_EQ(p->api_key_env, "COHERE_API_KEY");
    EXPECT_EQ(p->exception_label, "CohereException");
    EXPECT_TRUE(p->serves.chat);
    EXPECT_FALSE(p->serves.embedding);
  }
}

TEST(Cohere, RequestTranslation) {
  json body = {{"model", "command"},
               {"messages",
                {{{"role", "system"}, {"content", "Be terse."}},
                 {{"role", "user"}, {"content", {{{"type", "text"}, {"text", "Weather in Paris?"}}}}},
                 {{"role", "assistant"},
                  {"content", nullptr},
                  {"tool_calls",
                   {{{"id", "call_1"},
                     {"type", "function"},
                     {"function", {{"name", "get_weather"}, {"arguments", "{\"city\":\"Paris\"}"}}}}}}},
                 {{"role", "tool"}, {"tool_call_id", "call_1"}, {"content", "sunny"}}}},
               {"tools", {{{"type", "function"}, {"function", {{"name", "get_weather"}}}}}},
               {"tool_choice", "required"},
               {"max_completion_tokens", 50},
               {"top_p", 0.5},
               {"stop", {"END"}},
               {"temperature", 0.1},
               {"k", 3}};
  auto call = co().build(call_type::chat, cohere_dep(), body, providers::build_options{true, false});
  ASSERT_TRUE(call) << call.error().message;
  EXPECT_EQ(call->url, "https://api.cohere.com/v2/chat");
  EXPECT_EQ(header(*call, "authorization"), "Bearer co-key");
  auto j = json::parse(call->body);
  EXPECT_EQ(j["model"], "command-r-plus");
  EXPECT_EQ(j["stream"], true);
  EXPECT_EQ(j["messages"][0], json::parse(R"({"role":"system","content":"Be terse."})"));
  EXPECT_EQ(j["messages"][1]["content"][0]["text"], "Weather in Paris?");
  EXPECT_EQ(j["messages"][2]["tool_calls"][0]["function"]["arguments"], "{\"city\":\"Paris\"}");
  EXPECT_FALSE(j["messages"][2].contains("content"));
  EXPECT_EQ(j["messages"][3], json::parse(R"({"role":"tool","tool_call_id":"call_1","content":"sunny"})"));
  EXPECT_EQ(j["tools"][0]["function"]["name"], "get_weather");
  EXPECT_EQ(j["tool_choice"], "REQUIRED");
  EXPECT_EQ(j["max_tokens"], 50);
  EXPECT_EQ(j["p"], 0.5);
  EXPECT_EQ(j["stop_sequences"], json::parse(R"(["END"])"));
  EXPECT_EQ(j["k"], 3);

  auto bad = co().build(call_type::chat, cohere_dep(),
                        {{"messages", {{{"role", "user"}, {"content", "x"}}}}, {"logit_bias", {{"1", 1}}}}, {});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().status, 400);
  EXPECT_EQ(bad.error().param, "logit_bias");
  auto emb = co().build(call_type::embedding, cohere_dep(), {{"input", "x"}}, {});
  ASSERT_FALSE(emb);
  EXPECT_EQ(emb.error().status, 400);
}

TEST(Cohere, ResponseFormatInV2Shape) {
  // v2 knows the types text and json_object (with an optional json_schema), not OpenAI's
  // json_schema type.
  auto rf = [](const json& format) {
    auto call = co().build(call_type::chat, cohere_dep(),
                           {{"messages", {{{"role", "user"}, {"content", "x"}}}}, {"response_format", format}}, {});
    EXPECT_TRUE(call) << call.error().message;
    return call ? json::parse(call->body)["response_format"] : json();
  };
  const json schema = json::parse(R"({"type":"object","properties":{"a":{"type":"string"}},"required":["a"]})");
  EXPECT_EQ(rf({{"type", "json_schema"}, {"json_schema", {{"name", "out"}, {"strict", true}, {"schema", schema}}}}),
            (json{{"type", "json_object"}, {"json_schema", schema}}));
  EXPECT_EQ(rf({{"type", "json_object"}}), json::parse(R"({"type":"json_object"})"));
  EXPECT_EQ(rf({{"type", "text"}}), json::parse(R"({"type":"text"})"));
  auto bad = co().build(call_type::chat, cohere_dep(),
                        {{"messages", {{{"role", "user"}, {"content", "x"}}}}, {"response_format", {{"type", "xml"}}}}, {});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().param, "response_format");
}

TEST(Cohere, ResponseTranslation) {
  constexpr std::string_view body = R"({"id":"abc","finish_reason":"TOOL_CALL",
    "message":{"role":"assistant","tool_plan":"I will look it up.",
      "tool_calls":[{"id":"get_weather_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},
    "usage":{"billed_units":{"input_tokens":10,"output_tokens":5},"tokens":{"input_tokens":70,"output_tokens":6}}})";
  auto r = co().translate_response(call_type::chat, cohere_dep(), body, "command");
  ASSERT_TRUE(r) << r.error().message;
  auto j = json::parse(r->body);
  EXPECT_EQ(j["choices"][0]["finish_reason"], "tool_calls");
  EXPECT_TRUE(j["choices"][0]["message"]["content"].is_null());
  EXPECT_EQ(j["choices"][0]["message"]["tool_calls"][0]["id"], "get_weather_1");
  EXPECT_EQ(j["usage"]["prompt_tokens"], 70) << "tokens, not billed_units";
  EXPECT_EQ(r->tokens.completion_tokens, 6);

  auto text = co().translate_response(
      call_type::chat, cohere_dep(),
      R"({"finish_reason":"MAX_TOKENS","message":{"content":[{"type":"text","text":"Hi"}]},"usage":{"billed_units":{"input_tokens":3,"output_tokens":1}}})",
      "command");
  ASSERT_TRUE(text);
  auto t = json::parse(text->body);
  EXPECT_EQ(t["choices"][0]["message"]["content"], "Hi");
  EXPECT_EQ(t["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(t["usage"]["prompt_tokens"], 3);
  for (std::string_view bad : {"nope", "{}", R"({"message":"x"})"}) {
    auto e = co().translate_response(call_type::chat, cohere_dep(), bad, "m");
    ASSERT_FALSE(e) << bad;
    EXPECT_NE(e.error().message.find("CohereException"), std::string::npos);
  }
}

constexpr std::string_view tool_stream = R"SSE(event: message-start
data: {"id":"m1","type":"message-start","delta":{"message":{"role":"assistant","content":[],"tool_plan":"","tool_calls":[],"citations":[]}}}

event: content-start
data: {"type":"content-start","index":0,"delta":{"message":{"content":{"type":"text","text":""}}}}

event: content-delta
data: {"type":"content-delta","index":0,"delta":{"message":{"content":{"text":"Let me"}}}}

event: content-delta
data: {"type":"content-delta","index":0,"delta":{"message":{"content":{"text":" check."}}}}

event: content-end
data: {"type":"content-end","index":0}

event: tool-plan-delta
data: {"type":"tool-plan-delta","delta":{"message":{"tool_plan":"I will"}}}

event: tool-call-start
data: {"type":"tool-call-start","index":0,"delta":{"message":{"tool_calls":{"id":"get_weather_x","type":"function","function":{"name":"get_weather","arguments":""}}}}}

event: tool-call-delta
data: {"type":"tool-call-delta","index":0,"delta":{"message":{"tool_calls":{"function":{"arguments":"{\"city\":"}}}}}

event: tool-call-delta
data: {"type":"tool-call-delta","index":0,"delta":{"message":{"tool_calls":{"function":{"arguments":"\"Paris\"}"}}}}}

event: tool-call-end
data: {"type":"tool-call-end","index":0}

event: message-end
data: {"type":"message-end","delta":{"finish_reason":"TOOL_CALL","usage":{"billed_units":{"input_tokens":8,"output_tokens":4},"tokens":{"input_tokens":20,"output_tokens":9}}}}

)SSE";

TEST(Cohere, StreamTranslationInAnySplit) {
  auto whole = test::run_stream(co(), call_type::chat, cohere_dep(), tool_stream, true,
                                test::split_sizes(tool_stream.size(), 0, 0));
  ASSERT_FALSE(whole.error) << whole.error->message;
  std::string text;
  std::string args;
  std::string finish;
  for (const auto& c : whole.chunks) {
    if (c["choices"].empty()) {
      continue;
    }
    const auto& delta = c["choices"][0]["delta"];
    text += delta.value("content", "");
    if (delta.contains("tool_calls")) {
      if (delta["tool_calls"][0].contains("id")) {
        EXPECT_EQ(delta["tool_calls"][0]["id"], "get_weather_x");
      }
      args += delta["tool_calls"][0]["function"].value("arguments", "");
    }
    if (c["choices"][0]["finish_reason"].is_string()) {
      finish = c["choices"][0]["finish_reason"];
    }
  }
  EXPECT_EQ(text, "Let me check.");
  EXPECT_EQ(json::parse(args), json::parse(R"({"city":"Paris"})"));
  EXPECT_EQ(finish, "tool_calls");
  EXPECT_EQ(whole.chunks.back()["usage"]["prompt_tokens"], 20);
  EXPECT_EQ(whole.tokens.completion_tokens, 9);
  for (std::size_t piece : {1u, 7u, 64u}) {
    auto split = test::run_stream(co(), call_type::chat, cohere_dep(), tool_stream, true,
                                  test::split_sizes(tool_stream.size(), piece, 3));
    ASSERT_FALSE(split.error);
    EXPECT_EQ(split.chunks, whole.chunks) << piece;
  }
}

TEST(Cohere, StreamFailures) {
  auto cut = std::string(tool_stream.substr(0, tool_stream.find("event: message-end")));
  auto r = test::run_stream(co(), call_type::chat, cohere_dep(), cut, true, test::split_sizes(cut.size(), 0, 0));
  ASSERT_TRUE(r.error);
  EXPECT_NE(r.error->message.find("before message-end"), std::string::npos);
  const std::string err =
      "event: message-end\ndata: {\"type\":\"message-end\",\"delta\":{\"finish_reason\":\"ERROR\",\"error\":\"boom\"}}\n\n";
  auto e = test::run_stream(co(), call_type::chat, cohere_dep(), err, true, test::split_sizes(err.size(), 0, 0));
  ASSERT_TRUE(e.error);
  EXPECT_NE(e.error->message.find("boom"), std::string::npos);
  const std::string bad = "event: content-delta\ndata: {\"type\":\n\n";
  auto b = test::run_stream(co(), call_type::chat, cohere_dep(), bad, true, test::split_sizes(bad.size(), 0, 0));
  ASSERT_TRUE(b.error);
  EXPECT_GE(b.error->status, 500);
}

// ---- plain events read from their scan vs the DOM ----------------------------------------

test::reading_outcome read_events(std::string_view wire, bool include_usage, bool dom_only) {
  return test::read_stream_with(
      [&](bool dom, std::size_t* scanned) {
        return providers::make_cohere_stream("my-model", include_usage, {dom, scanned});
      },
      wire, dom_only);
}

// The two readings of `wire` agree (payloads byte for byte, error, usage), with and without
// the usage chunk. Returns how many events the scan read.
std::size_t expect_same_readings(std::string_view wire) {
  return test::expect_same_readings_with(read_events, wire);
}

// Random v2 chat streams: text with escapes and non-ASCII, ids, finish reasons (ERROR
// included) and usage counts (plain, huge, negative, fractions, null, strings), tool calls,
// tool plans, citations, types from the data or only from the `event:` line, members in
// other kinds, unknown members, duplicates, escaped keys, invalid JSON and UTF-8. Half the
// streams are plain (what Cohere sends), half mix in the rest.
class event_maker : public test::random_json {
 public:
  explicit event_maker(unsigned seed) : random_json(seed) {}

  std::string stream() {
    plain_ = chance(50);
    events_ = 0;
    std::vector<std::string> start{member("id", odd(5) ? one_of({"\"\"", "null", "5", "\"a\\u0062c\""}) : "\"m-1\""),
                                   member("delta", R"({"message":{"role":"assistant","content":[]}})")};
    std::string out = ev("message-start", std::move(start));
    out += ev("content-start", {member("index", "0"),
                                member("delta", R"({"message":{"content":{"type":"text","text":""}}})")});
    const int deltas = pick(0, 6);
    for (int i = 0; i < deltas; ++i) {
      out += ev("content-delta", {member("index", "0"), member("delta", delta())});
      if (odd(3)) {
        out += odd_event();
      }
    }
    out += ev("content-end", {member("index", "0")});
    if (!odd(5)) {
      out += ev("message-end", {member("delta", end_delta())});
    }
    if (odd(5)) {
      out += ev("content-delta", {member("index", "0"), member("delta", delta())});
    }
    return out;
  }

  int events() const { return events_; }

 private:

  std::string object(std::vector<std::string> members) { return braces(std::move(members), true); }

  // An SSE event: the type in the data (as Cohere writes it) and on the `event:` line.
  std::string ev(const std::string& type, std::vector<std::string> members) {
    ++events_;
    if (!odd(10)) {
      members.insert(members.begin(), member("type", odd(5) ? one_of({"\"\"", "null", "\"content-\\u0064elta\"",
                                                                      "\"citation-start\""})
                                                            : "\"" + type + "\""));
    }
    std::string data = object(std::move(members));
    if (odd(3)) {
      data = one_of({data.substr(0, data.size() / 2), "[1]", "null", data + "x"});
    }
    return (odd(5) ? std::string() : "event: " + type + "\n") + "data: " + data + "\n\n";
  }

  std::string text() {
    static const std::string_view pieces[] = {"The",       " sky",    "",         "\\\"",           "\\\\",
                                              "\\/",       "\\n",     "\\t",      "\\b\\f\\r",      "\\u0000",
                                              "\\u001f",   "\\u00e9", "\\u4f60",  "\\ud83d\\ude00", "\xc3\xa9",
                                              "\xe4\xbd\xa0", "<b>&", " ",        "\x7f"};
    std::string out;
    const int n = pick(plain_ ? 1 : 0, 3);
    for (int i = 0; i < n; ++i) {
      out += pieces[pick(0, static_cast<int>(std::size(pieces)) - 1)];
    }
    if (odd(2)) {
      out += "\xff";
    }
    return "\"" + out + "\"";
  }

  std::string delta() {
    if (odd(10)) {
      return one_of({R"({"message":{"content":{"text":5}}})", R"({"message":{"content":null}})",
                     R"({"message":{"tool_plan":"x"}})", R"({"message":null})", "{}", "null"});
    }
    std::vector<std::string> content{member("text", text())};
    if (odd(5)) {
      content.push_back(member("type", "\"text\""));
    }
    return object({member("message", object({member("content", object(std::move(content)))}))});
  }

  std::string count() {
    return plain_ ? std::to_string(pick(0, 5000))
                  : one_of({"12", "0", "-3", "2.5", "1e3", "99999999999999999999", "1000000000000001", "null",
                            "\"7\""});
  }

  std::string counts() {
    std::vector<std::string> m;
    if (!odd(10)) {
      m.push_back(member("input_tokens", count()));
    }
    if (!odd(10)) {
      m.push_back(member("output_tokens", count()));
    }
    if (odd(5)) {
      m.push_back(member("search_units", "1"));
    }
    return object(std::move(m));
  }

  std::string end_delta() {
    std::vector<std::string> m;
    if (!odd(10)) {
      m.push_back(member("finish_reason", plain_ ? one_of({"\"COMPLETE\"", "\"MAX_TOKENS\"", "\"STOP_SEQUENCE\""})
                                                 : one_of({"\"COMPLETE\"", "\"TOOL_CALL\"", "\"ERROR\"",
                                                           "\"ERR\\u004fR\"", "\"ERROR_TOXIC\"", "\"\"", "null"})));
    }
    if (odd(5)) {
      m.push_back(member("error", "\"boom\""));
    }
    if (!odd(10)) {
      std::vector<std::string> u;
      if (chance(80)) {
        u.push_back(member("billed_units", odd(5) ? "null" : counts()));
      }
      if (chance(80)) {
        u.push_back(member("tokens", odd(5) ? one_of({"null", "[]"}) : counts()));
      }
      m.push_back(member("usage", odd(5) ? "null" : object(std::move(u))));
    }
    return object(std::move(m));
  }

  std::string odd_event() {
    switch (pick(0, 2)) {
      case 0: return ev("tool-plan-delta", {member("delta", R"({"message":{"tool_plan":"I will"}})")});
      case 1: return ev("citation-start", {member("index", "0")});
      default: return ev("message-start", {member("id", "\"m-2\"")});
    }
  }

  int events_ = 0;
};

// Whatever the scan reads, it translates exactly as the DOM does (chunks, errors, usage),
// over thousands of random streams; and it reads most of their events.
TEST(Cohere, ScannedEventsGiveTheDomPathsBytesOverManyShapes) {
  std::size_t events = 0;
  std::size_t scanned = 0;
  for (unsigned seed = 0; seed < 3000; ++seed) {
    event_maker maker(seed);
    const std::string wire = maker.stream();
    SCOPED_TRACE(seed);
    scanned += expect_same_readings(wire);
    events += static_cast<std::size_t>(maker.events());
    if (HasFailure()) {
      break;
    }
  }
  std::printf("cohere stream: %zu of %zu random events read from their scan\n", scanned, events);
  EXPECT_GT(scanned * 10, events * 4) << "most plain events take the scan";
  EXPECT_LT(scanned, events) << "and some are left to the DOM";
}

// Named shapes: a plain answer is read from its scan, event by event; what the scan cannot
// vouch for goes to the DOM; the same output either way.
TEST(Cohere, PlainEventsAreScannedAndTheRestReadByTheDom) {
  auto sse = [](std::string_view type, std::string_view data) {
    return "event: " + std::string(type) + "\ndata: " + std::string(data) + "\n\n";
  };
  const std::string start = sse("message-start", R"({"id":"m1","type":"message-start","delta":{"message":{}}})");
  const std::string text =
      sse("content-delta", R"({"type":"content-delta","index":0,"delta":{"message":{"content":{"text":"Hi"}}}})");
  const std::string end = sse(
      "message-end",
      R"({"type":"message-end","delta":{"finish_reason":"COMPLETE","usage":{"billed_units":{"input_tokens":3,"output_tokens":2},"tokens":{"input_tokens":9,"output_tokens":2}}}})");
  EXPECT_EQ(expect_same_readings(tool_stream), 6u) << "the tool plan and calls go to the DOM";
  EXPECT_EQ(expect_same_readings(start + text + end), 3u);
  // Escapes, non-ASCII, huge counts, the type only on the event line, billed units alone.
  EXPECT_EQ(expect_same_readings(
                sse("message-start", R"({"id":"m\u0031","delta":{}})") +
                sse("content-delta",
                    R"({"type":"content-delta","delta":{"message":{"content":{"text":"a\"b\\c\/\b\f\n\u0001\u00e9\ud83d\ude00 é"}}}})") +
                sse("x", R"({"type":"message-\u0065nd","delta":{"finish_reason":"MAX_TOKENS","usage":{"billed_units":{"input_tokens":18446744073709551615,"output_tokens":1000000000000001}}}})")),
            3u);
  // One event the scan leaves to the DOM, between plain ones.
  for (const std::string& odd : {
           sse("content-delta", R"({"type":"content-delta","delta":{"message":{"content":{"text":""}}}})"),
           sse("content-delta", R"({"type":"content-delta","delta":{"message":{"content":{"text":"a","text":"b"}}}})"),
           sse("content-delta", R"({"type":"content-delta","delta":{"message":{"content":{"\u0074ext":"a"}}}})"),
           sse("content-delta", R"({"type":"content-delta","delta":{"message":{"content":{"text":"a","type":"text"}}}})"),
           sse("content-delta", R"({"type":"content-delta","delta":{"message":{"content":{"text":"a"}}},"logprobs":[]})"),
           sse("content-delta", R"({"type":"content-delta","type":"content-delta","delta":{"message":{"content":{"text":"a"}}}})"),
           sse("content-delta", R"({"type":null,"delta":{"message":{"content":{"text":"a"}}}})"),
           sse("content-delta", R"({"type":"content-delta","delta":{"message":{"content":{"text":5}}}})"),
           sse("content-delta", R"({"type":"content-delta"})"),
           sse("tool-plan-delta", R"({"type":"tool-plan-delta","delta":{"message":{"tool_plan":"I will"}}})"),
           sse("citation-start", R"({"type":"citation-start","index":0})"),
           sse("content-end", R"({"type":"content-end","index":0,"delta":{}})"),
           sse("message-start", R"({"id":5,"type":"message-start"})"),
       }) {
    EXPECT_EQ(expect_same_readings(start + odd + end), 2u) << odd;
  }
  // message-end read by the DOM: an ERROR finish (written plainly or with an escape), an
  // error message, a count that is no plain whole number, a usage member it does not know.
  for (std::string_view delta : {
           R"({"finish_reason":"ERROR","error":"boom"})",
           R"({"finish_reason":"ERR\u004fR"})",
           R"({"finish_reason":"COMPLETE","error":"x"})",
           R"({"finish_reason":"COMPLETE","usage":{"tokens":{"input_tokens":2.0}}})",
           R"({"finish_reason":"COMPLETE","usage":{"tokens":{"input_tokens":-1}}})",
           R"({"finish_reason":"COMPLETE","usage":{"tokens":null,"billed_units":{"input_tokens":1}}})",
           R"({"finish_reason":"COMPLETE","usage":{"billed_units":{"input_tokens":1,"search_units":1}}})",
           R"({"finish_reason":"COMPLETE","usage":{"cached_tokens":3}})",
           R"({"finish_reason":null})",
       }) {
    EXPECT_EQ(expect_same_readings(start + text + sse("message-end", R"({"type":"message-end","delta":)" +
                                                                           std::string(delta) + "}")),
              2u)
        << delta;
  }
  // Not JSON, invalid UTF-8: the DOM's error.
  for (const std::string& bad : {sse("content-delta", R"({"type":"content-delta","delta":)"),
                                 sse("content-delta", "{\"type\":\"content-delta\",\"delta\":{\"message\":{\"content\":{\"text\":\"\xff\"}}}}")}) {
    EXPECT_EQ(expect_same_readings(start + bad + end), 1u) << bad;
    EXPECT_TRUE(read_events(start + bad + end, true, false).error) << bad;
  }
}

}  // namespace
