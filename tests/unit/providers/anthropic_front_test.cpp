// The /v1/messages front door's pure pieces: error shapes, the request to OpenAI chat, the
// answer and the chunk stream back, the byte pass-through and the relayed stream's reader.
#include "switchyard/providers/anthropic_front.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <string>
#include <utility>
#include <vector>

namespace front = switchyard::providers::anthropic_front;
using json = nlohmann::json;
using switchyard::core::errc;
using switchyard::core::make_error;

namespace {

switchyard::config::deployment anthropic_dep(std::string model = "claude-up") {
  switchyard::config::deployment d;
  d.provider = switchyard::config::find_provider("anthropic");
  d.upstream_model = std::move(model);
  d.api_base = "http://up.example";
  d.api_key = "sk-ant-up";
  return d;
}

std::string header(const switchyard::providers::upstream_call& c, std::string_view name) {
  for (const auto& [k, v] : c.headers) {
    if (k == name) {
      return v;
    }
  }
  return "<none>";
}

}  // namespace

TEST(AnthropicFront, ErrorTypesPerStatus) {
  EXPECT_EQ(front::error_type_of(400), "invalid_request_error");
  EXPECT_EQ(front::error_type_of(401), "authentication_error");
  EXPECT_EQ(front::error_type_of(403), "permission_error");
  EXPECT_EQ(front::error_type_of(404), "not_found_error");
  EXPECT_EQ(front::error_type_of(408), "timeout_error");
  EXPECT_EQ(front::error_type_of(413), "request_too_large");
  EXPECT_EQ(front::error_type_of(422), "invalid_request_error");
  EXPECT_EQ(front::error_type_of(429), "rate_limit_error");
  EXPECT_EQ(front::error_type_of(502), "api_error");
  EXPECT_EQ(front::error_type_of(529), "overloaded_error");
  EXPECT_EQ(front::status_of_error_type("overloaded_error"), 529);
  EXPECT_EQ(front::status_of_error_type("something_new"), 500);
  auto body = json::parse(front::error_body(make_error(errc::bad_request, "bad \"x\"")));
  EXPECT_EQ(body, json::parse(R"({"type":"error","error":{"type":"invalid_request_error","message":"bad \"x\""}})"));
  EXPECT_EQ(front::error_event(make_error(errc::rate_limited, "m")).rfind("event: error\ndata: {", 0), 0u);
}

TEST(AnthropicFront, RequestToChat) {
  auto in = json::parse(R"({
    "model": "m", "max_tokens": 10, "temperature": 0.5, "top_p": 0.9, "top_k": 5, "stream": true,
    "system": [{"type": "text", "text": "A"}, {"type": "text", "text": "B", "cache_control": {"type": "ephemeral"}}],
    "stop_sequences": ["S"], "metadata": {"user_id": "u1"}, "thinking": {"type": "enabled", "budget_tokens": 2000},
    "tools": [{"name": "f", "description": "d", "input_schema": {"type": "object"}}],
    "tool_choice": {"type": "tool", "name": "f"}, "fallbacks": ["other"],
    "messages": [
      {"role": "user", "content": [{"type": "text", "text": "look"},
                                   {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "QUJD"}}]},
      {"role": "assistant", "content": [{"type": "thinking", "thinking": "t", "signature": "s"},
                                        {"type": "text", "text": "ok "},
                                        {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": 1}}]},
      {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "is_error": true,
                                    "content": [{"type": "text", "text": "boom"}]}]}
    ]})");
  auto out = front::to_chat_request(in);
  ASSERT_TRUE(out) << out.error().message;
  EXPECT_EQ(*out, json::parse(R"({
    "model": "m", "max_tokens": 10, "temperature": 0.5, "top_p": 0.9, "stream": true, "stop": ["S"], "user": "u1",
    "tools": [{"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object"}}}],
    "tool_choice": {"type": "function", "function": {"name": "f"}}, "fallbacks": ["other"],
    "messages": [
      {"role": "system", "content": "A\nB"},
      {"role": "user", "content": [{"type": "text", "text": "look"},
                                   {"type": "image_url", "image_url": {"url": "data:image/png;base64,QUJD"}}]},
      {"role": "assistant", "content": "ok ", "tool_calls": [{"id": "toolu_1", "type": "function",
                                                             "function": {"name": "f", "arguments": "{\"a\":1}"}}]},
      {"role": "tool", "tool_call_id": "toolu_1", "content": "Error: boom"}
    ]})"));
}

TEST(AnthropicFront, RequestRefusals) {
  auto refused = [](const char* text) {
    auto r = front::to_chat_request(json::parse(text));
    EXPECT_FALSE(r) << text;
    return r ? std::string() : r.error().param;
  };
  EXPECT_EQ(refused(R"({"model":"m"})"), "messages");
  EXPECT_EQ(refused(R"({"messages":[{"role":"system","content":"x"}]})"), "messages[0].role");
  EXPECT_EQ(refused(R"({"messages":[{"role":"user"}]})"), "messages[0].content");
  EXPECT_EQ(refused(R"({"messages":[{"role":"user","content":[{"type":"server_tool_use"}]}]})"),
            "messages[0].content[0].type");
  EXPECT_EQ(refused(R"({"messages":[],"tools":[{"type":"bash_20250124","name":"bash"}]})"), "tools[0].type");
  EXPECT_EQ(refused(R"({"messages":[],"tool_choice":{"type":"sometimes"}})"), "tool_choice.type");
  EXPECT_EQ(refused(R"({"messages":[],"max_tokens":0})"), "max_tokens");
  EXPECT_EQ(refused(R"({"messages":[],"stop_sequences":[1]})"), "stop_sequences");
}

TEST(AnthropicFront, AnswerToMessage) {
  auto msg = front::to_messages_response(R"({"id":"chatcmpl-1","choices":[{"index":0,"message":{"role":"assistant",
      "content":"Hi","reasoning_content":"why","tool_calls":[{"id":"call_1","type":"function",
      "function":{"name":"f","arguments":"{\"x\":2}"}}]},"finish_reason":"tool_calls"}],
      "usage":{"prompt_tokens":100,"completion_tokens":7,"total_tokens":107,"prompt_tokens_details":{"cached_tokens":60}}})",
                                         "grp");
  ASSERT_TRUE(msg);
  auto j = json::parse(*msg);
  EXPECT_EQ(j["type"], "message");
  EXPECT_EQ(j["model"], "grp");  // the provider named none
  EXPECT_EQ(j["id"], "chatcmpl-1");  // the provider's, as LiteLLM answers
  EXPECT_EQ(j["stop_reason"], "tool_use");
  EXPECT_EQ(j["content"], json::parse(R"([{"type":"thinking","thinking":"why","signature":""},{"type":"text","text":"Hi"},
      {"type":"tool_use","id":"call_1","name":"f","input":{"x":2}}])"));
  EXPECT_EQ(j["usage"], json::parse(R"({"input_tokens":40,"cache_creation_input_tokens":0,
      "cache_read_input_tokens":60,"output_tokens":7})"));
  auto length = json::parse(*front::to_messages_response(
      R"({"choices":[{"message":{"content":""},"finish_reason":"length"}]})", "m"));
  EXPECT_EQ(length["stop_reason"], "max_tokens");
  EXPECT_EQ(length["content"], json::parse(R"([{"type":"text","text":""}])"));
  EXPECT_FALSE(front::to_messages_response("{\"choices\":[]}", "m"));
  EXPECT_FALSE(front::to_messages_response("not json", "m"));
}

TEST(AnthropicFront, ChunksToEvents) {
  front::event_writer w("grp");
  std::string out;
  w.feed(R"({"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]})", out);
  w.feed(R"({"choices":[{"index":0,"delta":{"content":"He"}}]})", out);
  w.feed(R"({"choices":[{"index":0,"delta":{"content":"y"}}]})", out);
  w.feed(R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","function":{"name":"f","arguments":""}}]}}]})", out);
  w.feed(R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"a\":1}"}}]}}]})", out);
  w.feed(R"({"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]})", out);
  w.feed(R"({"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":4,"total_tokens":13}})", out);
  w.finish(out);
  std::vector<std::string> types;
  std::vector<json> data;
  for (std::size_t pos = 0; pos < out.size();) {
    auto end = out.find("\n\n", pos);
    ASSERT_NE(end, std::string::npos);
    auto ev = out.substr(pos, end - pos);
    auto nl = ev.find('\n');
    types.push_back(ev.substr(7, nl - 7));
    data.push_back(json::parse(ev.substr(nl + 7)));
    EXPECT_EQ(data.back()["type"], types.back());
    pos = end + 2;
  }
  EXPECT_EQ(types, (std::vector<std::string>{"message_start", "ping", "content_block_start", "content_block_delta",
                                             "content_block_delta", "content_block_stop", "content_block_start",
                                             "content_block_delta", "content_block_stop", "message_delta",
                                             "message_stop"}));
  EXPECT_EQ(data[0]["message"]["model"], "grp");
  EXPECT_EQ(data[6]["content_block"], json::parse(R"({"type":"tool_use","id":"call_1","name":"f","input":{}})"));
  EXPECT_EQ(data[7]["delta"], json::parse(R"({"type":"input_json_delta","partial_json":"{\"a\":1}"})"));
  EXPECT_EQ(data[7]["index"], 1);
  EXPECT_EQ(data[9]["delta"]["stop_reason"], "tool_use");
  EXPECT_EQ(data[9]["usage"]["input_tokens"], 9);
  EXPECT_EQ(data[9]["usage"]["output_tokens"], 4);
}

namespace {

// The events of a writer's output: {type, data}.
std::vector<std::pair<std::string, json>> anthropic_events(const std::string& out) {
  std::vector<std::pair<std::string, json>> evs;
  for (std::size_t pos = 0; pos < out.size();) {
    auto end = out.find("\n\n", pos);
    if (end == std::string::npos) {
      ADD_FAILURE() << "an unterminated event";
      break;
    }
    auto ev = out.substr(pos, end - pos);
    auto nl = ev.find('\n');
    evs.emplace_back(ev.substr(7, nl - 7), json::parse(ev.substr(nl + 7)));
    pos = end + 2;
  }
  return evs;
}

// What the Anthropic SDK's message accumulator does with the events: a block starts at
// the next index, deltas go to a block that has not stopped, and a tool_use block's
// joined partial_json must parse (finalMessage() throws otherwise). The content it ends with.
json accumulate_message(const std::vector<std::pair<std::string, json>>& evs) {
  json content = json::array();
  std::vector<bool> stopped;
  std::vector<std::string> partial;
  for (const auto& [type, ev] : evs) {
    if (type == "content_block_start") {
      EXPECT_EQ(ev["index"], content.size()) << ev;
      content.push_back(ev["content_block"]);
      stopped.push_back(false);
      partial.emplace_back();
      continue;
    }
    if (type != "content_block_delta" && type != "content_block_stop") {
      continue;
    }
    const std::size_t i = ev["index"].get<std::size_t>();
    if (i >= content.size() || stopped[i]) {
      ADD_FAILURE() << "an event for a block that is not open: " << ev;
      continue;
    }
    if (type == "content_block_stop") {
      stopped[i] = true;
      continue;
    }
    const auto& d = ev["delta"];
    if (d["type"] == "input_json_delta") {
      partial[i] += d["partial_json"].get<std::string>();
      auto input = json::parse(partial[i], nullptr, false);
      if (!input.is_discarded()) {
        content[i]["input"] = input;
      }
    } else if (d["type"] == "text_delta") {
      content[i]["text"] = content[i]["text"].get<std::string>() + d["text"].get<std::string>();
    }
  }
  for (std::size_t i = 0; i < content.size(); ++i) {
    EXPECT_TRUE(stopped[i]) << i;
    if (content[i]["type"] == "tool_use" && !partial[i].empty()) {
      auto input = json::parse(partial[i], nullptr, false);
      EXPECT_TRUE(input.is_object()) << "block " << i << " joins to " << partial[i];
    }
  }
  return content;
}

}  // namespace

TEST(AnthropicFront, StreamedToolArgumentsThatAreNotAnObjectBecomeAnEmptyInput) {
  front::event_writer w("grp");
  std::string out;
  w.feed(R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","function":{"name":"f","arguments":"not"}}]}}]})", out);
  w.feed(R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":" js"}}]}}]})", out);
  w.feed(R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"on"}}]}}]})", out);
  w.feed(R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_2","function":{"name":"g","arguments":"[1,2]"}}]}}]})", out);
  w.feed(R"({"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]})", out);
  w.finish(out);
  auto evs = anthropic_events(out);
  // As the answer without streaming: arguments that are not a JSON object are {}.
  EXPECT_EQ(accumulate_message(evs), json::parse(R"([{"type":"tool_use","id":"call_1","name":"f","input":{}},
      {"type":"tool_use","id":"call_2","name":"g","input":{}}])"));
  auto plain = front::to_messages_response(R"({"choices":[{"index":0,"message":{"role":"assistant","tool_calls":[
      {"id":"call_1","type":"function","function":{"name":"f","arguments":"not json"}},
      {"id":"call_2","type":"function","function":{"name":"g","arguments":"[1,2]"}}]},"finish_reason":"tool_calls"}]})",
                                           "grp");
  ASSERT_TRUE(plain);
  EXPECT_EQ(json::parse(*plain)["content"], accumulate_message(evs));
  for (const auto& [type, ev] : evs) {
    if (type == "content_block_delta") {
      EXPECT_EQ(ev["delta"], json::parse(R"({"type":"input_json_delta","partial_json":"{}"})"));
    }
  }
  EXPECT_EQ(evs[evs.size() - 2].second["delta"]["stop_reason"], "tool_use");
}

TEST(AnthropicFront, InterleavedToolCallsBecomeWholeBlocksThatNeverReopen) {
  front::event_writer w("grp");
  std::string out;
  w.feed(R"({"choices":[{"index":0,"delta":{"content":"Two calls."}}]})", out);
  w.feed(R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_a","function":{"name":"f","arguments":""}}]}}]})", out);
  w.feed(R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"x\":"}}]}}]})", out);
  w.feed(R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_b","function":{"name":"g","arguments":"{}"}}]}}]})", out);
  w.feed(R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"1}"}}]}}]})", out);
  w.feed(R"({"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]})", out);
  w.finish(out);
  auto evs = anthropic_events(out);
  EXPECT_EQ(accumulate_message(evs), json::parse(R"([{"type":"text","text":"Two calls."},
      {"type":"tool_use","id":"call_a","name":"f","input":{"x":1}},
      {"type":"tool_use","id":"call_b","name":"g","input":{}}])"));
  std::vector<std::string> types;
  for (const auto& [type, ev] : evs) {
    types.push_back(type);
  }
  EXPECT_EQ(types, (std::vector<std::string>{"message_start", "ping", "content_block_start", "content_block_delta",
                                             "content_block_stop", "content_block_start", "content_block_delta",
                                             "content_block_stop", "content_block_start", "content_block_delta",
                                             "content_block_stop", "message_delta", "message_stop"}));
}

TEST(AnthropicFront, TheAnswerNamesTheProvidersModelAndId) {
  auto msg = front::to_messages_response(R"({"id":"chatcmpl-9","model":"gpt-4o-2024-08-06","choices":[{"index":0,
      "message":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}]})",
                                         "grp");
  ASSERT_TRUE(msg);
  auto j = json::parse(*msg);
  EXPECT_EQ(j["model"], "gpt-4o-2024-08-06");
  EXPECT_EQ(j["id"], "chatcmpl-9");
  auto no_id = json::parse(*front::to_messages_response(R"({"choices":[{"message":{"content":"x"}}]})", "grp"));
  EXPECT_EQ(no_id["id"].get<std::string>().rfind("msg_", 0), 0u);

  // Streamed: message_start names the model of the first chunk.
  front::event_writer w("grp");
  std::string out;
  w.feed(R"({"id":"chatcmpl-9","model":"gpt-4o-2024-08-06","choices":[{"index":0,"delta":{"content":"Hi"}}]})", out);
  w.feed(R"({"id":"chatcmpl-9","model":"gpt-4o-2024-08-06","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]})", out);
  w.finish(out);
  auto evs = anthropic_events(out);
  ASSERT_EQ(evs[0].first, "message_start");
  EXPECT_EQ(evs[0].second["message"]["model"], "gpt-4o-2024-08-06");
  EXPECT_EQ(evs[0].second["message"]["id"].get<std::string>().rfind("msg_", 0), 0u);
  // A stream with no chunk at all keeps the model it was made for.
  front::event_writer empty("grp");
  std::string out2;
  empty.finish(out2);
  EXPECT_EQ(anthropic_events(out2)[0].second["message"]["model"], "grp");
}

TEST(AnthropicFront, PassthroughKeepsBytes) {
  const std::string body = R"({ "model" : "claude-up",  "messages": [ {"role":"user","content":"hi"} ], "metadata":{"user_id":"u"}})";
  auto scan = switchyard::providers::scan_json(body);
  auto dep = anthropic_dep();
  auto call = front::passthrough_call(dep, "/v1/messages", body, scan, {"2024-01-01", "b1,b2"});
  ASSERT_TRUE(call);
  EXPECT_EQ(call->url, "http://up.example/v1/messages");
  EXPECT_EQ(call->joined_body(), body);
  EXPECT_EQ(header(*call, "x-api-key"), "sk-ant-up");
  EXPECT_EQ(header(*call, "anthropic-version"), "2024-01-01");
  EXPECT_EQ(header(*call, "anthropic-beta"), "b1,b2");
}

TEST(AnthropicFront, PassthroughSplicesTheModel) {
  const std::string body = "{\"model\":\"my-group\",\n \"messages\":[],\"max_tokens\":5}";
  auto scan = switchyard::providers::scan_json(body);
  auto dep = anthropic_dep("claude-sonnet-4-5");
  dep.api_base = "http://up.example/v1";
  dep.extra_headers = {{"anthropic-beta", "dep-beta"}};
  auto call = front::passthrough_call(dep, "/v1/messages/count_tokens", body, scan, {"", "client-beta"});
  ASSERT_TRUE(call);
  EXPECT_EQ(call->url, "http://up.example/v1/messages/count_tokens");
  // Moved, as the pipeline does: the pieces still point at live bytes.
  auto moved = std::move(*call);
  EXPECT_EQ(moved.joined_body(), "{\"model\":\"claude-sonnet-4-5\",\n \"messages\":[],\"max_tokens\":5}");
  EXPECT_EQ(header(moved, "anthropic-version"), "2023-06-01");
  EXPECT_EQ(header(moved, "anthropic-beta"), "dep-beta,client-beta");
}

TEST(AnthropicFront, PassthroughDropsGatewayMembers) {
  const std::string body =
      R"({"model":"claude-up","fallbacks":["x"],"messages":[],"metadata":{"user_id":"u","tags":["t"]},"num_retries":2})";
  auto scan = switchyard::providers::scan_json(body);
  auto call = front::passthrough_call(anthropic_dep(), "/v1/messages", body, scan, {});
  ASSERT_TRUE(call);
  EXPECT_EQ(call->joined_body(), R"({"model":"claude-up","messages":[],"metadata":{"user_id":"u"}})");
}

// The deployment's defaults that are Messages parameters are added where the client did
// not set them (the client's own value wins), the drop lists leave members out, and a
// deployment with neither, or with only OpenAI-shaped defaults, still forwards the
// client's bytes as they are.
TEST(AnthropicFront, PassthroughAppliesTheDeploymentsDefaultsAndDropLists) {
  auto dep = anthropic_dep();
  dep.request_defaults = {{"max_tokens", 512}, {"temperature", 0.3}, {"thinking", {{"type", "disabled"}}},
                          {"stop", {"###"}}, {"tools", json::array()}};
  dep.drop_param_names = {"top_k", "model"};
  const std::string body = R"({"model":"claude-up","messages":[],"temperature":1,"top_k":5})";
  auto scan = switchyard::providers::scan_json(body);
  auto call = front::passthrough_call(dep, "/v1/messages", body, scan, {});
  ASSERT_TRUE(call);
  auto sent = json::parse(call->joined_body());
  EXPECT_EQ(sent, json::parse(R"({"model":"claude-up","messages":[],"temperature":1,"max_tokens":512,
                                  "thinking":{"type":"disabled"}})"))
      << sent;

  // The request's own additional_drop_params drops the defaults too, and is not sent.
  const std::string asks = R"({"model":"g","messages":[],"additional_drop_params":["max_tokens","thinking"]})";
  scan = switchyard::providers::scan_json(asks);
  call = front::passthrough_call(dep, "/v1/messages", asks, scan, {});
  ASSERT_TRUE(call);
  EXPECT_EQ(json::parse(call->joined_body()),
            json::parse(R"({"model":"claude-up","messages":[],"temperature":0.3})"));

  // count_tokens takes none of these: forwarded as before.
  scan = switchyard::providers::scan_json(body);
  call = front::passthrough_call(dep, "/v1/messages/count_tokens", body, scan, {});
  ASSERT_TRUE(call);
  EXPECT_EQ(call->joined_body(), body);

  // Only OpenAI-shaped defaults and no drop list: the plain path, byte for byte.
  auto openai_shaped = anthropic_dep();
  openai_shaped.request_defaults = {{"stop", {"###"}}, {"response_format", {{"type", "json_object"}}}};
  const std::string spaced = R"({ "model" : "claude-up",  "messages": [] })";
  scan = switchyard::providers::scan_json(spaced);
  call = front::passthrough_call(openai_shaped, "/v1/messages", spaced, scan, {});
  ASSERT_TRUE(call);
  ASSERT_EQ(call->body_parts.size(), 1u);
  EXPECT_EQ(call->body_parts[0].data(), spaced.data()) << "the client's own bytes, not a copy";
}

TEST(AnthropicFront, PassthroughLeavesOutAByteOrderMark) {
  // Accepted from the client (the chat door accepts it too), not forwarded.
  for (const std::string& json : {std::string(R"({"model":"claude-up","messages":[]})"),
                                 std::string(R"({"model":"claude","messages":[]})"),
                                 std::string(R"({"model":"claude-up","messages":[],"num_retries":2})")}) {
    const std::string body = "\xEF\xBB\xBF" + json;
    auto scan = switchyard::providers::scan_json(body);
    ASSERT_TRUE(scan.ok);
    auto call = front::passthrough_call(anthropic_dep(), "/v1/messages", body, scan, {});
    ASSERT_TRUE(call);
    EXPECT_EQ(call->joined_body(), R"({"model":"claude-up","messages":[]})") << json;
  }
}

TEST(AnthropicFront, MessageUsage) {
  auto u = front::message_usage(R"({"type":"message","usage":{"input_tokens":10,"cache_read_input_tokens":300,
      "cache_creation_input_tokens":20,"output_tokens":7}})");
  ASSERT_TRUE(u);
  EXPECT_TRUE(u->known);
  EXPECT_EQ(u->prompt_tokens, 330);
  EXPECT_EQ(u->completion_tokens, 7);
  EXPECT_EQ(u->cached_tokens, 300);
  EXPECT_EQ(u->cache_creation_tokens, 20);
  EXPECT_FALSE(front::message_usage(R"({"type":"message"})")->known);
  EXPECT_FALSE(front::message_usage(R"({"type":"message",)"));
}

TEST(AnthropicFront, StreamWatch) {
  const std::string stream =
      "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":5,"
      "\"cache_read_input_tokens\":50,\"output_tokens\":1}}}\n\n"
      "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n"
      "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":9}}\n\n"
      "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
  for (std::size_t step : {stream.size(), std::size_t{1}, std::size_t{7}}) {
    front::stream_watch w(true);
    for (std::size_t i = 0; i < stream.size(); i += step) {
      ASSERT_TRUE(w.feed(std::string_view(stream).substr(i, step)));
    }
    ASSERT_TRUE(w.finish());
    EXPECT_EQ(w.tokens().prompt_tokens, 55);
    EXPECT_EQ(w.tokens().completion_tokens, 9);
    EXPECT_EQ(w.tokens().cached_tokens, 50);
    EXPECT_EQ(w.text(), "Hi");
    EXPECT_EQ(w.events(), 4u);
  }
  front::stream_watch cut;
  ASSERT_TRUE(cut.feed(stream.substr(0, stream.find("event: message_stop"))));
  EXPECT_FALSE(cut.finish());
  front::stream_watch err;
  auto r = err.feed("event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().status, 529);
  EXPECT_NE(r.error().message.find("Overloaded"), std::string::npos);
}

// Until message_start the stream is not known to be Anthropic's (a relay holds its bytes).
TEST(AnthropicFront, StreamWatchBeforeMessageStart) {
  const std::string start =
      "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":5}}}\n\n";
  front::stream_watch pings;  // pings and comments may come first
  ASSERT_TRUE(pings.feed(": hi\n\nevent: ping\ndata: {\"type\": \"ping\"}\n\n"));
  EXPECT_FALSE(pings.started());
  ASSERT_TRUE(pings.feed(start));
  EXPECT_TRUE(pings.started());

  for (const std::string& first : {
           std::string("event: content_block_delta\ndata: {\"type\": \"content_block_delta\", \"delta\": {\n\n"),
           std::string("event: surprise\ndata: {}\n\n"),
           std::string("data: {\"type\":\"content_block_stop\",\"index\":0}\n\n"),
           std::string("event: message_start\ndata: {\"type\": \"message_st\n\n")}) {
    front::stream_watch w;
    auto r = w.feed(first + start);
    ASSERT_FALSE(r) << first;
    EXPECT_EQ(r.error().status, 500);
    EXPECT_FALSE(w.started());
  }

  // No events at all: what the bytes were decides the error, at the end.
  auto ended = [](std::string_view body) {
    front::stream_watch w;
    EXPECT_TRUE(w.feed(body));
    EXPECT_FALSE(w.started());
    auto r = w.finish();
    EXPECT_FALSE(r);
    return r ? make_error(errc::bad_request, "(no error)") : r.error();
  };
  auto e = ended(R"({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})");
  EXPECT_EQ(e.status, 529);
  EXPECT_NE(e.message.find("Overloaded"), std::string::npos);
  e = ended("{\n  \"type\": \"error\",\n  \"error\": {\"type\": \"rate_limit_error\", \"message\": \"slow\"}\n}\n");
  EXPECT_EQ(e.status, 429);
  e = ended(R"({"id":"msg_1","type":"message","role":"assistant","content":[],"usage":{}})");
  EXPECT_EQ(e.status, 500);
  EXPECT_NE(e.message.find("whole message"), std::string::npos);
  e = ended("this is not an event stream\n\n");
  EXPECT_EQ(e.status, 500);
  EXPECT_NE(e.message.find("not an event stream"), std::string::npos);
  e = ended("");
  EXPECT_EQ(e.status, 500);

  // Bytes with no message_start are held to a bound.
  front::stream_watch big;
  const std::string junk(64 * 1024, 'x');
  switchyard::core::result<void> r;
  for (std::size_t sent = 0; r && sent <= front::stream_watch::max_prefix_bytes; sent += junk.size()) {
    r = big.feed(junk + "\n\n");
  }
  EXPECT_FALSE(r);
}

TEST(AnthropicFront, Estimate) {
  const std::string body = R"({"model":"m","system":"abcd","messages":[{"role":"user","content":"efgh"}],"max_tokens":1000})";
  auto scan = switchyard::providers::scan_json(body);
  // "abcd" + "user" + "efgh" = 12 characters of text: 3 tokens (model and numbers do not count).
  EXPECT_EQ(front::estimate_input_tokens(scan), 3);
}
