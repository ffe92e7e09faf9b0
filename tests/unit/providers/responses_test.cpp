// The Responses API translators (providers/responses.hpp): request -> chat, chat ->
// Response, chat chunks -> typed events, ids and usage.
#include "switchyard/providers/responses.hpp"

#include "switchyard/providers/adapter.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace switchyard::providers {
namespace {

using json = nlohmann::json;

// The events of a writer's output, in order: {type, data}.
std::vector<std::pair<std::string, json>> events_of(const std::string& out) {
  std::vector<std::pair<std::string, json>> evs;
  std::size_t pos = 0;
  while (pos < out.size()) {
    auto nl = out.find('\n', pos);
    std::string type = out.substr(pos + 7, nl - pos - 7);
    auto end = out.find("\n\n", nl);
    evs.emplace_back(type, json::parse(out.substr(nl + 7, end - nl - 7)));
    pos = end + 2;
  }
  return evs;
}

response_meta meta() {
  response_meta m;
  m.id = "resp_abc";
  m.created_at = 1700000000;
  m.model = "group-a";
  m.item_prefix = "p1";
  m.request = {{"instructions", "be brief"}, {"tools", json::array()}};
  return m;
}

TEST(ResponsesIds, EncodeDecodeRoundTripInLiteLLMsFormat) {
  auto id = encode_response_id("openai", "dep-7", "resp_67ccd2");
  EXPECT_EQ(id.rfind("resp_", 0), 0u);
  // base64 of LiteLLM's plain text.
  EXPECT_EQ(id, "resp_bGl0ZWxsbTpjdXN0b21fbGxtX3Byb3ZpZGVyOm9wZW5haTttb2RlbF9pZDpkZXAtNztyZXNwb25zZV9pZDpyZXNwXzY3Y2NkMg==");
  auto d = decode_response_id(id);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->provider, "openai");
  EXPECT_EQ(d->model_id, "dep-7");
  EXPECT_EQ(d->upstream_id, "resp_67ccd2");
  EXPECT_FALSE(decode_response_id("resp_0123456789abcdef"));  // the gateway's own ids
  EXPECT_FALSE(decode_response_id("chatcmpl-1"));
  EXPECT_FALSE(decode_response_id("resp_%%%"));
  EXPECT_FALSE(decode_response_id(""));
}

TEST(ResponsesIds, AnUpstreamIdThatIsNotAnIdIsRefused) {
  // Decoded ids become a path segment of a call made with the deployment's key.
  for (const char* bad : {"../../v1/models", "../files", "a/../../models", "x?purpose=batch", "resp_1#x", "a b",
                          "resp%2e%2e", "resp.1"}) {
    EXPECT_FALSE(decode_response_id(encode_response_id("openai", "dep-7", bad))) << bad;
  }
  EXPECT_FALSE(decode_response_id(encode_response_id("openai", "dep-7", std::string(300, 'a'))));
  EXPECT_TRUE(decode_response_id(encode_response_id("openai", "dep-7", "resp_68af-Zz_09")));
}

TEST(ResponsesUsage, MapsInputOutputAndDetails) {
  auto u = usage_of_response(json::parse(
      R"({"input_tokens":100,"input_tokens_details":{"cached_tokens":40},"output_tokens":20,
          "output_tokens_details":{"reasoning_tokens":8},"total_tokens":120})"));
  EXPECT_TRUE(u.known);
  EXPECT_EQ(u.prompt_tokens, 100);
  EXPECT_EQ(u.completion_tokens, 20);
  EXPECT_EQ(u.total_tokens, 120);
  EXPECT_EQ(u.cached_tokens, 40);
  EXPECT_EQ(u.reasoning_tokens, 8);
  EXPECT_FALSE(usage_of_response(json()).known);
  auto back = response_usage_json(u);
  EXPECT_EQ(back["input_tokens_details"]["cached_tokens"], 40);
  EXPECT_EQ(back["output_tokens_details"]["reasoning_tokens"], 8);
}

TEST(ResponsesToChat, StringInputAndInstructions) {
  auto chat = responses_to_chat(json::parse(R"({"model":"m","input":"hi","instructions":"be brief",
      "max_output_tokens":50,"temperature":0.5,"top_p":0.9,"user":"u1"})"),
                                json::array());
  ASSERT_TRUE(chat) << chat.error().message;
  EXPECT_EQ((*chat)["messages"], json::parse(R"([{"role":"system","content":"be brief"},{"role":"user","content":"hi"}])"));
  EXPECT_EQ((*chat)["max_tokens"], 50);
  EXPECT_EQ((*chat)["temperature"], 0.5);
  EXPECT_EQ((*chat)["top_p"], 0.9);
  EXPECT_EQ((*chat)["user"], "u1");
}

// The drop lists, as for chat: the deployment's and the request's own additional_drop_params
// name members never sent; `model` and `input` are never dropped.
TEST(ResponsesDrops, TheDeploymentsListsAndTheRequestsOwnAreNotSent) {
  config::deployment d;
  d.provider = config::find_provider("openai");
  d.drop_param_names = {"top_p", "model"};
  const std::string text =
      R"({"model":"m","input":"hi","temperature":0.2,"top_p":0.5,"max_output_tokens":50,)"
      R"("additional_drop_params":["temperature","input",7,"max_output_tokens","top_p"]})";
  const auto names = responses_dropped_names(d, scan_json(text));
  EXPECT_EQ(names, (std::vector<std::string>{"top_p", "temperature", "max_output_tokens"}));
  config::deployment plain;
  plain.provider = d.provider;
  EXPECT_TRUE(responses_dropped_names(plain, scan_json(R"({"model":"m","input":"x","temperature":1})")).empty());

  const json req = json::parse(text);
  json storage;
  const json& kept = without_members(req, names, storage);
  EXPECT_EQ(kept, json::parse(R"({"model":"m","input":"hi",)"
                              R"("additional_drop_params":["temperature","input",7,"max_output_tokens","top_p"]})"));
  json untouched;
  EXPECT_EQ(&without_members(kept, names, untouched), &kept) << "nothing to drop: the request itself";

  // Translated to chat, the request's list goes along: the chat adapter drops the chat
  // names it lists (the deployment's max_tokens default here) and never sends it.
  auto chat = responses_to_chat(json::parse(R"({"model":"m","input":"hi","additional_drop_params":["max_tokens"]})"),
                                json::array());
  ASSERT_TRUE(chat);
  EXPECT_EQ((*chat)["additional_drop_params"], json::array({"max_tokens"}));
  config::deployment vllm;
  vllm.provider = config::find_provider("hosted_vllm");
  vllm.model_name = "m";
  vllm.upstream_model = "qwen3";
  vllm.api_base = "http://127.0.0.1:9/v1";
  vllm.request_defaults = {{"max_tokens", 512}, {"temperature", 0.3}};
  auto call = openai_adapter().build(call_type::chat, vllm, *chat, {false, false});
  ASSERT_TRUE(call) << call.error().message;
  const auto sent = json::parse(call->body);
  EXPECT_FALSE(sent.contains("max_tokens")) << sent;
  EXPECT_FALSE(sent.contains("additional_drop_params")) << sent;
  EXPECT_EQ(sent["temperature"], 0.3) << sent;
}

TEST(ResponsesToChat, ItemsToolsAndFormats) {
  auto req = json::parse(R"({"model":"m","input":[
      {"role":"developer","content":"rules"},
      {"type":"message","role":"user","content":[{"type":"input_text","text":"look"},
                                                 {"type":"input_image","image_url":"https://x/i.png","detail":"low"}]},
      {"type":"message","role":"assistant","content":[{"type":"output_text","text":"calling"}]},
      {"type":"function_call","call_id":"c1","name":"f","arguments":"{\"a\":1}"},
      {"type":"function_call","call_id":"c2","name":"g","arguments":"{}"},
      {"type":"function_call_output","call_id":"c1","output":"one"},
      {"type":"function_call_output","call_id":"c2","output":"two"},
      {"type":"reasoning","id":"rs_1","summary":[]}],
    "tools":[{"type":"function","name":"f","description":"F","parameters":{"type":"object"},"strict":true}],
    "tool_choice":{"type":"function","name":"f"},
    "parallel_tool_calls":false,
    "text":{"format":{"type":"json_schema","name":"out","schema":{"type":"object"},"strict":true}},
    "reasoning":{"effort":"low"}})");
  auto chat = responses_to_chat(req, json::array());
  ASSERT_TRUE(chat) << chat.error().message;
  const auto& m = (*chat)["messages"];
  ASSERT_EQ(m.size(), 5u) << m.dump();
  EXPECT_EQ(m[0], json::parse(R"({"role":"system","content":"rules"})"));
  EXPECT_EQ(m[1]["content"][1], json::parse(R"({"type":"image_url","image_url":{"url":"https://x/i.png","detail":"low"}})"));
  EXPECT_EQ(m[2]["role"], "assistant");
  EXPECT_EQ(m[2]["content"], "calling");
  ASSERT_EQ(m[2]["tool_calls"].size(), 2u);  // both calls join the assistant turn
  EXPECT_EQ(m[2]["tool_calls"][0], json::parse(R"({"id":"c1","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}})"));
  EXPECT_EQ(m[3], json::parse(R"({"role":"tool","tool_call_id":"c1","content":"one"})"));
  EXPECT_EQ(m[4]["tool_call_id"], "c2");
  EXPECT_EQ((*chat)["tools"], json::parse(R"([{"type":"function","function":{"name":"f","description":"F","parameters":{"type":"object"},"strict":true}}])"));
  EXPECT_EQ((*chat)["tool_choice"], json::parse(R"({"type":"function","function":{"name":"f"}})"));
  EXPECT_EQ((*chat)["parallel_tool_calls"], false);
  EXPECT_EQ((*chat)["response_format"],
            json::parse(R"({"type":"json_schema","json_schema":{"name":"out","schema":{"type":"object"},"strict":true}})"));
  EXPECT_EQ((*chat)["reasoning_effort"], "low");
}

TEST(ResponsesToChat, HistoryComesBeforeTheNewInputAndAfterInstructions) {
  auto history = json::parse(R"([{"type":"message","role":"user","content":"q1"},
                                 {"type":"message","role":"assistant","content":[{"type":"output_text","text":"a1"}]}])");
  auto chat = responses_to_chat(json::parse(R"({"model":"m","instructions":"sys","input":"q2"})"), history);
  ASSERT_TRUE(chat);
  EXPECT_EQ((*chat)["messages"], json::parse(R"([{"role":"system","content":"sys"},{"role":"user","content":"q1"},
                                                 {"role":"assistant","content":"a1"},{"role":"user","content":"q2"}])"));
}

TEST(ResponsesToChat, WhatChatCannotSayIsA400NamingIt) {
  struct bad_case {
    const char* body;
    const char* param;
    const char* in_message;
  };
  for (const auto& c : std::vector<bad_case>{
           {R"({"model":"m"})", "input", "`input` is required"},
           {R"({"model":"m","input":3})", "input", "string or an array"},
           {R"({"model":"m","input":[1]})", "input", "must be an object"},
           {R"({"model":"m","input":[{"role":"bot","content":"x"}]})", "input", "role"},
           {R"({"model":"m","input":[{"role":"user"}]})", "input", "content"},
           {R"({"model":"m","input":[{"type":"item_reference","id":"x"}]})", "input", "item_reference"},
           {R"({"model":"m","input":[{"role":"user","content":[{"type":"input_file","file_id":"f"}]}]})", "input[0].content", "input_file"},
           {R"({"model":"m","input":[{"role":"user","content":[{"type":"input_image","file_id":"f"}]}]})", "input[0].content", "image_url"},
           {R"({"model":"m","input":[{"role":"assistant","content":[{"type":"input_image","image_url":"u"}]}]})", "input[0].content", "images"},
           {R"({"model":"m","input":[{"type":"function_call","name":"f"}]})", "input", "call_id"},
           {R"({"model":"m","input":[{"type":"function_call_output","call_id":"c"}]})", "input", "output"},
           {R"({"model":"m","input":"x","tools":[{"type":"web_search_preview"}]})", "tools", "web_search_preview"},
           {R"({"model":"m","input":"x","tools":[{"type":"function"}]})", "tools", "name"},
           {R"({"model":"m","input":"x","tools":{}})", "tools", "array"},
           {R"({"model":"m","input":"x","tool_choice":"sometimes"})", "tool_choice", "tool_choice"},
           {R"({"model":"m","input":"x","max_output_tokens":0})", "max_output_tokens", "positive"},
           {R"({"model":"m","input":"x","temperature":"hot"})", "temperature", "number"},
           {R"({"model":"m","input":"x","instructions":5})", "instructions", "string"},
           {R"({"model":"m","input":"x","text":{"format":{"type":"json_schema"}}})", "text.format", "schema"},
           {R"({"model":"m","input":"x","text":{"format":{"type":"yaml"}}})", "text.format", "text.format.type"},
           {R"({"model":"m","input":"x","background":true})", "background", "background"},
           {R"({"model":"m","input":[]})", "input", "at least one"},
       }) {
    auto r = responses_to_chat(json::parse(c.body), json::array());
    ASSERT_FALSE(r) << c.body;
    EXPECT_EQ(r.error().status, 400) << c.body;
    EXPECT_EQ(r.error().param, c.param) << c.body << " -> " << r.error().message;
    EXPECT_NE(r.error().message.find(c.in_message), std::string::npos) << c.body << " -> " << r.error().message;
  }
}

TEST(ChatToResponse, TextToolCallsUsageAndEchoes) {
  auto chat = json::parse(R"({"id":"chatcmpl-1","object":"chat.completion","choices":[{"index":0,
      "message":{"role":"assistant","content":"Sure.","tool_calls":[
        {"id":"call_1","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]},
      "finish_reason":"tool_calls"}],
      "usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15,"prompt_tokens_details":{"cached_tokens":4}}})");
  auto r = chat_to_response(chat, meta());
  ASSERT_TRUE(r);
  EXPECT_EQ((*r)["id"], "resp_abc");
  EXPECT_EQ((*r)["object"], "response");
  EXPECT_EQ((*r)["status"], "completed");
  EXPECT_EQ((*r)["model"], "group-a");
  EXPECT_EQ((*r)["instructions"], "be brief");
  EXPECT_EQ((*r)["store"], true);
  const auto& out = (*r)["output"];
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0]["type"], "message");
  EXPECT_EQ(out[0]["content"][0], json::parse(R"({"type":"output_text","text":"Sure.","annotations":[]})"));
  EXPECT_EQ(out[1]["type"], "function_call");
  EXPECT_EQ(out[1]["call_id"], "call_1");
  EXPECT_EQ(out[1]["name"], "f");
  EXPECT_EQ(out[1]["arguments"], "{\"a\":1}");
  EXPECT_EQ((*r)["usage"]["input_tokens"], 10);
  EXPECT_EQ((*r)["usage"]["output_tokens"], 5);
  EXPECT_EQ((*r)["usage"]["input_tokens_details"]["cached_tokens"], 4);
  // The output continues the conversation as input items.
  EXPECT_EQ(output_as_input(*r), json::parse(R"([{"type":"message","role":"assistant","content":[{"type":"output_text","text":"Sure."}]},
      {"type":"function_call","call_id":"call_1","name":"f","arguments":"{\"a\":1}"}])"));

  chat["choices"][0]["finish_reason"] = "length";
  auto cut = chat_to_response(chat, meta());
  EXPECT_EQ((*cut)["status"], "incomplete");
  EXPECT_EQ((*cut)["incomplete_details"]["reason"], "max_output_tokens");
  EXPECT_FALSE(chat_to_response(json::parse(R"({"choices":[]})"), meta()));
  EXPECT_FALSE(chat_to_response(json::parse("[1]"), meta()));
}

TEST(ResponsesEventWriter, TextThenToolCallsInTheAPIsOrder) {
  responses_event_writer w(meta());
  std::string out;
  w.start(out);
  for (const char* chunk : {
           R"({"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]})",
           R"({"choices":[{"index":0,"delta":{"content":"Hel"}}]})",
           R"({"choices":[{"index":0,"delta":{"content":"lo"}}]})",
           R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"f","arguments":""}}]}}]})",
           R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"a\":"}}]}}]})",
           R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"1}"}}]}}]})",
           R"({"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]})",
           R"({"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4}})",
       }) {
    ASSERT_TRUE(w.feed(chunk, out)) << chunk;
  }
  usage u;
  u.prompt_tokens = 3;
  u.completion_tokens = 4;
  u.total_tokens = 7;
  u.known = true;
  w.finish(u, out);
  auto evs = events_of(out);
  std::vector<std::string> types;
  for (std::size_t i = 0; i < evs.size(); ++i) {
    types.push_back(evs[i].first);
    EXPECT_EQ(evs[i].second["type"], evs[i].first);
    EXPECT_EQ(evs[i].second["sequence_number"], static_cast<long long>(i));
  }
  EXPECT_EQ(types, (std::vector<std::string>{
                       "response.created", "response.in_progress", "response.output_item.added",
                       "response.content_part.added", "response.output_text.delta", "response.output_text.delta",
                       "response.output_text.done", "response.content_part.done", "response.output_item.done",
                       "response.output_item.added", "response.function_call_arguments.delta",
                       "response.function_call_arguments.delta", "response.function_call_arguments.done",
                       "response.output_item.done", "response.completed"}));
  EXPECT_EQ(evs[0].second["response"]["status"], "in_progress");
  EXPECT_EQ(evs[6].second["text"], "Hello");
  EXPECT_EQ(evs[9].second["output_index"], 1);
  EXPECT_EQ(evs[9].second["item"]["call_id"], "call_1");
  EXPECT_EQ(evs[12].second["arguments"], "{\"a\":1}");
  const auto& done = evs.back().second["response"];
  EXPECT_EQ(done["status"], "completed");
  ASSERT_EQ(done["output"].size(), 2u);
  EXPECT_EQ(done["output"][0]["content"][0]["text"], "Hello");
  EXPECT_EQ(done["output"][1]["arguments"], "{\"a\":1}");
  EXPECT_EQ(done["usage"]["total_tokens"], 7);
  EXPECT_EQ(w.response(), done);
  EXPECT_EQ(w.text(), "Hello");
}

// Feeds chunks to a writer, finishes it, and returns its events.
std::vector<std::pair<std::string, json>> stream_of(responses_event_writer& w, const std::vector<std::string>& chunks) {
  std::string out;
  w.start(out);
  for (const auto& c : chunks) {
    EXPECT_TRUE(w.feed(c, out)) << c;
  }
  w.finish(usage{}, out);
  return events_of(out);
}

// What a client's stream accumulator does (the openai SDK's): an added item is appended
// to the output, deltas and dones address it by output_index and must name its id. The
// output it ends with.
json accumulate(const std::vector<std::pair<std::string, json>>& evs) {
  json output = json::array();
  for (const auto& [type, ev] : evs) {
    if (type == "response.output_item.added") {
      EXPECT_EQ(ev["output_index"], output.size()) << ev;
      output.push_back(ev["item"]);
      continue;
    }
    if (!ev.contains("output_index")) {
      continue;
    }
    const std::size_t i = ev["output_index"].get<std::size_t>();
    if (i >= output.size()) {
      ADD_FAILURE() << "no item at " << i << ": " << ev;
      continue;
    }
    auto& item = output[i];
    if (ev.contains("item_id")) {
      EXPECT_EQ(ev["item_id"], item["id"]) << ev;
    }
    if (type == "response.output_item.done") {
      EXPECT_EQ(ev["item"]["id"], item["id"]) << ev;
      item = ev["item"];
    } else if (type == "response.function_call_arguments.delta") {
      EXPECT_EQ(item["type"], "function_call") << ev;
      item["arguments"] = item["arguments"].get<std::string>() + ev["delta"].get<std::string>();
    } else if (type == "response.function_call_arguments.done") {
      EXPECT_EQ(item["arguments"], ev["arguments"]) << ev;
    } else if (type == "response.reasoning_summary_part.added") {
      EXPECT_EQ(ev["summary_index"], item["summary"].size());
      item["summary"].push_back(ev["part"]);
    } else if (type == "response.reasoning_summary_text.delta") {
      auto& part = item["summary"][ev["summary_index"].get<std::size_t>()];
      part["text"] = part["text"].get<std::string>() + ev["delta"].get<std::string>();
    } else if (type == "response.reasoning_summary_text.done") {
      EXPECT_EQ(item["summary"][ev["summary_index"].get<std::size_t>()]["text"], ev["text"]) << ev;
    }
  }
  return output;
}

TEST(ResponsesEventWriter, ReasoningIsStreamedAsASummaryAndEndsInTheSameItemAsWithoutStreaming) {
  responses_event_writer w(meta());
  auto evs = stream_of(w, {
                              R"({"choices":[{"index":0,"delta":{"role":"assistant","reasoning_content":"Let me"}}]})",
                              R"({"choices":[{"index":0,"delta":{"reasoning_content":" think."}}]})",
                              R"({"choices":[{"index":0,"delta":{"content":"Hi"}}]})",
                              R"({"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]})",
                          });
  std::vector<std::string> types;
  for (const auto& [type, ev] : evs) {
    types.push_back(type);
  }
  EXPECT_EQ(types, (std::vector<std::string>{
                       "response.created", "response.in_progress", "response.output_item.added",
                       "response.reasoning_summary_part.added", "response.reasoning_summary_text.delta",
                       "response.reasoning_summary_text.delta", "response.reasoning_summary_text.done",
                       "response.reasoning_summary_part.done", "response.output_item.done",
                       "response.output_item.added", "response.content_part.added", "response.output_text.delta",
                       "response.output_text.done", "response.content_part.done", "response.output_item.done",
                       "response.completed"}));
  EXPECT_EQ(evs[2].second["item"], json::parse(R"({"id":"rs_p1","type":"reasoning","summary":[]})"));
  EXPECT_EQ(evs[3].second["part"], json::parse(R"({"type":"summary_text","text":""})"));
  EXPECT_EQ(evs[4].second["delta"], "Let me");
  EXPECT_EQ(evs[6].second["text"], "Let me think.");
  EXPECT_EQ(evs[9].second["output_index"], 1);
  const auto& done = evs.back().second["response"];
  // The same output as the answer without streaming, ids included.
  auto plain = chat_to_response(
      json::parse(R"({"choices":[{"index":0,"message":{"role":"assistant","content":"Hi","reasoning_content":"Let me think."},
                      "finish_reason":"stop"}]})"),
      meta());
  ASSERT_TRUE(plain);
  EXPECT_EQ(done["output"], (*plain)["output"]);
  EXPECT_EQ(accumulate(evs), done["output"]);
  EXPECT_EQ(done["output"][0]["summary"][0]["text"], "Let me think.");
}

TEST(ResponsesEventWriter, InterleavedToolCallsEachKeepTheirOwnItem) {
  responses_event_writer w(meta());
  auto evs = stream_of(
      w, {
             R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"f","arguments":""}}]}}]})",
             R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"x\":"}}]}}]})",
             R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_b","type":"function","function":{"name":"g","arguments":"{}"}}]}}]})",
             R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"1}"}}]}}]})",
             R"({"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]})",
         });
  const auto& done = evs.back().second["response"];
  EXPECT_EQ(evs.back().first, "response.completed");
  auto plain = chat_to_response(json::parse(R"({"choices":[{"index":0,"message":{"role":"assistant","content":null,
      "tool_calls":[{"id":"call_a","type":"function","function":{"name":"f","arguments":"{\"x\":1}"}},
                    {"id":"call_b","type":"function","function":{"name":"g","arguments":"{}"}}]},
      "finish_reason":"tool_calls"}]})"),
                                meta());
  ASSERT_TRUE(plain);
  ASSERT_EQ(done["output"].size(), 2u) << done["output"];
  EXPECT_EQ(done["output"], (*plain)["output"]);
  EXPECT_EQ(accumulate(evs), done["output"]);
  int added = 0;
  for (const auto& [type, ev] : evs) {
    added += type == "response.output_item.added" ? 1 : 0;
  }
  EXPECT_EQ(added, 2);
}

TEST(ResponsesEventWriter, AnErrorChunkFailsTheResponse) {
  responses_event_writer w(meta());
  std::string out;
  w.start(out);
  ASSERT_TRUE(w.feed(R"({"choices":[{"index":0,"delta":{"content":"par"}}]})", out));
  auto r = w.feed(R"({"error":{"message":"overloaded"}})", out);
  ASSERT_FALSE(r);
  w.fail(r.error(), out);
  auto evs = events_of(out);
  EXPECT_EQ(evs[evs.size() - 2].first, "error");
  EXPECT_EQ(evs.back().first, "response.failed");
  EXPECT_EQ(evs.back().second["response"]["status"], "failed");
  EXPECT_EQ(evs.back().second["response"]["error"]["message"], "overloaded");
  EXPECT_EQ(evs.back().second["response"]["output"][0]["content"][0]["text"], "par");  // what was sent
  EXPECT_FALSE(w.feed("not json", out));
}

TEST(ResponsesEndpoint, OpenAIAndAzureURLs) {
  config::deployment d;
  d.provider = config::find_provider("openai");
  d.api_base = "http://up/v1/";
  d.api_key = "sk-1";
  auto c = responses_endpoint(d, "/resp_1");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->url, "http://up/v1/responses/resp_1");
  d.provider = config::find_provider("azure");
  d.api_base = "https://res.openai.azure.com";
  d.api_version = "2025-03-01-preview";
  EXPECT_EQ(responses_endpoint(d, "")->url, "https://res.openai.azure.com/openai/responses?api-version=2025-03-01-preview");
  EXPECT_EQ(responses_endpoint(d, "/r/cancel")->url,
            "https://res.openai.azure.com/openai/responses/r/cancel?api-version=2025-03-01-preview");
  d.api_version = "v1";
  EXPECT_EQ(responses_endpoint(d, "")->url, "https://res.openai.azure.com/openai/v1/responses");
  d.api_base.clear();
  EXPECT_FALSE(responses_endpoint(d, ""));  // Azure has no default api_base
}

}  // namespace
}  // namespace switchyard::providers
