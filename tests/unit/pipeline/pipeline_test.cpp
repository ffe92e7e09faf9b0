// The LLM pipeline in-process: real stages, router, adapters and attempt loop; a fake
// upstream and a fake client. Every case checks the outcome record and that `finish`
// ran exactly once.
#include "fakes.hpp"
#include "switchyard/pipeline/spend_observer.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

using namespace switchyard;
using namespace switchyard::pipeline;
using namespace switchyard::pipeline::testing;

namespace {

const std::string answer_json = chat_answer("hi");

const std::string chat_body = R"({"model":"a","messages":[{"role":"user","content":"hello"}]})";
const std::string stream_body = R"({"model":"a","stream":true,"messages":[{"role":"user","content":"hello"}]})";

config::deployment dep(std::string group, std::string id, std::string api_base) {
  config::deployment d;
  d.model_name = std::move(group);
  d.id = std::move(id);
  d.model = "openai/x";
  d.upstream_model = "x";
  d.api_base = std::move(api_base);
  d.api_key = "sk-upstream";
  d.litellm_params = nlohmann::json::object();
  d.model_info = nlohmann::json::object();
  return d;
}

class pipeline_test : public ::testing::Test {
 protected:
  pipeline_test() {
    cfg->general.master_key = "sk-master";
    cfg->router.raw["disable_cooldowns"] = true;
    cfg->model_list.push_back(dep("a", "a1", "http://a1.test/v1"));
    cfg->model_list.push_back(dep("a", "a2", "http://a2.test/v1"));
    cfg->model_list.push_back(dep("b", "b1", "http://b1.test/v1"));
  }

  void build() {
    rt = std::make_unique<router::router>(cfg);
    pipe = std::make_unique<llm_pipeline>(cfg, keys, *rt, up, extensions{nullptr, nullptr, {&obs, &rows}});
  }

  fake_responder call(const std::string& body, const std::string& key = "sk-master", int writes_before_gone = -1,
                      const http::header_list& extra_headers = {}) {
    if (!pipe) {
      build();
    }
    http::request req;
    req.method = "POST";
    req.path = req.target = "/v1/chat/completions";
    req.headers.emplace_back("authorization", "Bearer " + key);
    req.headers.insert(req.headers.end(), extra_headers.begin(), extra_headers.end());
    req.body = body;
    req.call_id = "call-1";
    req.received_at = std::chrono::steady_clock::now();
    fake_responder resp;
    resp.writes_before_gone = writes_before_gone;
    run_coro([&] { return pipe->handle(req, resp, providers::call_type::chat); });
    return resp;
  }

  // The one outcome `finish` handed over (fails the test unless exactly one).
  const outcome& only_outcome() {
    EXPECT_EQ(obs.finished.size(), 1u) << "finish must run exactly once per request";
    if (obs.finished.empty()) {
      static const outcome none;
      return none;
    }
    return obs.finished.front().out;
  }

  std::shared_ptr<config::config> cfg = std::make_shared<config::config>();
  auth::authenticator master{"sk-master"};
  auth::key_authenticator keys{master, nullptr, false};
  std::unique_ptr<router::router> rt;
  fake_upstream up;
  recording_observer obs;
  // The spend row each request gets, built as the spend observer builds it.
  struct row_observer final : observer {
    spend::pricer prices{std::make_shared<spend::price_table>()};
    bool store_prompts = false;
    std::vector<spend::spend_row> rows;
    void on_finish(const request_ctx& ctx) noexcept override { rows.push_back(spend_row_of(ctx, prices, store_prompts)); }
  } rows;
  std::unique_ptr<llm_pipeline> pipe;
};

TEST_F(pipeline_test, success_records_status_attempt_and_usage) {
  up.script["http://a1.test"] = {reply(200, answer_json)};
  up.script["http://a2.test"] = {reply(200, answer_json)};
  auto r = call(chat_body);
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(r.access_taken);
  const auto& o = only_outcome();
  EXPECT_EQ(o.status, 200);
  EXPECT_FALSE(o.error);
  EXPECT_FALSE(o.client_gone);
  EXPECT_FALSE(o.streamed);
  EXPECT_EQ(o.bytes_in, chat_body.size());
  EXPECT_EQ(o.bytes_out, r.body.size());
  EXPECT_STREQ(o.answered_by, "");
  ASSERT_EQ(o.attempts.size(), 1u);
  const auto& a = o.attempts[0];
  EXPECT_EQ(a.group, "a");
  EXPECT_EQ(a.dep->model_name, "a");
  EXPECT_EQ(a.status, 200);
  EXPECT_FALSE(a.error);
  EXPECT_EQ(a.retry, 0);
  EXPECT_EQ(a.fallback, 0);
  EXPECT_LE(a.start, a.end);
  EXPECT_TRUE(o.usage.known);
  EXPECT_EQ(o.usage.prompt_tokens, 5);
  EXPECT_EQ(o.usage.completion_tokens, 2);
  EXPECT_LE(o.received, o.first_byte);
  EXPECT_LE(o.first_byte, o.done);
}

// The end user, as LiteLLM finds it: the x-litellm-end-user-id header, else the body's
// `user` string (JSON escapes undone); the spend row, the limits, metrics and callbacks
// all read the one the request context finds.
TEST_F(pipeline_test, the_end_user_is_the_header_else_the_body_user) {
  up.script["http://a1.test"] = {reply(200, answer_json), reply(200, answer_json), reply(200, answer_json),
                                 reply(200, answer_json)};
  cfg->model_list.pop_back();
  cfg->model_list.pop_back();
  cfg->model_list.pop_back();
  cfg->model_list.push_back(dep("a", "a1", "http://a1.test/v1"));
  const std::string with_user = R"({"model":"a","user":"caf\u00e9 \"x\"","messages":[{"role":"user","content":"hi"}]})";
  EXPECT_EQ(call(with_user).status, 200);
  EXPECT_EQ(call(with_user, "sk-master", -1, {{"x-litellm-end-user-id", "from-header"}}).status, 200);
  EXPECT_EQ(call(chat_body).status, 200);
  EXPECT_EQ(call(R"({"model":"a","user":7,"messages":[{"role":"user","content":"hi"}]})").status, 200);
  ASSERT_EQ(rows.rows.size(), 4u);
  EXPECT_EQ(rows.rows[0].end_user, "caf\xc3\xa9 \"x\"");
  EXPECT_EQ(rows.rows[1].end_user, "from-header");
  EXPECT_EQ(rows.rows[2].end_user, "");
  EXPECT_EQ(rows.rows[3].end_user, "");  // not a string: no end user
}

TEST_F(pipeline_test, stream_records_usage_and_first_token) {
  scripted s;
  s.pieces = {chunk("a"), chunk("b"), chunk("c", "\"stop\"") + usage_chunk + "data: [DONE]\n\n"};
  up.script["http://a1.test"] = {s};
  up.script["http://a2.test"] = {s};
  auto r = call(stream_body);
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(r.streamed);
  EXPECT_TRUE(r.ended());
  EXPECT_NE(r.body.find("data: [DONE]"), std::string::npos);
  const auto& o = only_outcome();
  EXPECT_EQ(o.status, 200);
  EXPECT_TRUE(o.streamed);
  EXPECT_FALSE(o.error);
  EXPECT_FALSE(o.client_gone);
  EXPECT_EQ(o.bytes_out, r.body.size());
  ASSERT_EQ(o.attempts.size(), 1u);
  EXPECT_NE(o.attempts[0].first_token, time_point{});
  EXPECT_LE(o.attempts[0].first_token, o.attempts[0].end);
  EXPECT_TRUE(o.usage.known);
  EXPECT_EQ(o.usage.completion_tokens, 3);
}

TEST_F(pipeline_test, auth_failure_is_answered_by_auth_and_finished_once) {
  auto r = call(chat_body, "sk-wrong");
  EXPECT_EQ(r.status, 401);
  const auto& o = only_outcome();
  EXPECT_EQ(o.status, 401);
  ASSERT_TRUE(o.error);
  EXPECT_EQ(o.error->status, 401);
  EXPECT_STREQ(o.answered_by, "auth");
  EXPECT_TRUE(o.attempts.empty());
  EXPECT_EQ(up.calls.size(), 0u);
  EXPECT_EQ(obs.finished.front().out.bytes_out, r.body.size());
}

TEST_F(pipeline_test, malformed_body_is_400_from_parse) {
  auto r = call(R"({"model":"a","messages":[)");
  EXPECT_EQ(r.status, 400);
  const auto& o = only_outcome();
  EXPECT_EQ(o.status, 400);
  ASSERT_TRUE(o.error);
  EXPECT_EQ(o.error->type, "invalid_request_error");
  EXPECT_STREQ(o.answered_by, "parse");
  EXPECT_TRUE(o.attempts.empty());
}

TEST_F(pipeline_test, a_non_boolean_include_usage_is_400_from_parse_not_a_500) {
  auto r = call(R"({"model":"a","messages":[],"stream":true,"stream_options":{"include_usage":1}})");
  EXPECT_EQ(r.status, 400);
  const auto& o = only_outcome();
  ASSERT_TRUE(o.error);
  EXPECT_EQ(o.error->param, "stream_options.include_usage");
  EXPECT_EQ(o.error->message,
            "Invalid type for 'stream_options.include_usage': expected a boolean, but got a number instead.");
  EXPECT_STREQ(o.answered_by, "parse");
  EXPECT_TRUE(o.attempts.empty());
}

TEST_F(pipeline_test, stream_options_that_is_not_an_object_is_400_from_parse) {
  const std::pair<const char*, const char*> bad[] = {{R"("x")", "a string"}, {"[]", "an array"}, {"true", "a boolean"}};
  for (const auto& [value, what] : bad) {
    auto r = call(std::string(R"({"model":"a","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":)") +
                  value + "}");
    EXPECT_EQ(r.status, 400) << value;
    EXPECT_NE(r.body.find(std::string("Invalid type for 'stream_options': expected an object, but got ") + what),
              std::string::npos)
        << r.body;
  }
  EXPECT_EQ(up.calls.size(), 0u);
}

TEST_F(pipeline_test, a_non_boolean_stream_is_400_from_parse_and_null_is_no_stream) {
  const std::pair<const char*, const char*> bad[] = {{R"("yes")", "a string"}, {"1", "a number"},
                                                     {"[]", "an array"}, {"{}", "an object"}};
  for (const auto& [value, what] : bad) {
    auto r = call(std::string(R"({"model":"a","messages":[{"role":"user","content":"hi"}],"stream":)") + value + "}");
    EXPECT_EQ(r.status, 400) << value;
    EXPECT_FALSE(r.streamed) << value;
    EXPECT_NE(r.body.find(std::string("Invalid type for 'stream': expected a boolean, but got ") + what +
                          " instead."),
              std::string::npos)
        << r.body;
    EXPECT_NE(r.body.find(R"("param":"stream")"), std::string::npos) << r.body;
  }
  EXPECT_EQ(up.calls.size(), 0u);  // refused before any provider call
  up.script["http://a1.test"] = {reply(200, answer_json)};
  up.script["http://a2.test"] = {reply(200, answer_json)};
  auto none = call(R"({"model":"a","messages":[{"role":"user","content":"hi"}],"stream":null})");
  EXPECT_EQ(none.status, 200);
  EXPECT_FALSE(none.streamed);
}

TEST_F(pipeline_test, unknown_model_is_400_from_route) {
  auto r = call(R"({"model":"nope","messages":[]})");
  EXPECT_EQ(r.status, 400);
  const auto& o = only_outcome();
  EXPECT_STREQ(o.answered_by, "route");
  EXPECT_TRUE(o.attempts.empty());
}

TEST_F(pipeline_test, provider_errors_retry_then_fall_back) {
  cfg->router.num_retries = 2;
  cfg->router.raw["fallbacks"] = nlohmann::json::array({{{"a", {"b"}}}});
  auto fail500 = reply(500, R"({"error":{"message":"boom","type":"server_error"}})");
  up.script["http://a1.test"] = {fail500};
  up.script["http://a2.test"] = {fail500};
  up.script["http://b1.test"] = {reply(200, answer_json)};
  auto r = call(chat_body);
  EXPECT_EQ(r.status, 200);
  const auto& o = only_outcome();
  EXPECT_EQ(o.status, 200);
  EXPECT_FALSE(o.error);
  ASSERT_EQ(o.attempts.size(), 4u);  // a: the first try and 2 retries; then b
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(o.attempts[i].group, "a");
    EXPECT_EQ(o.attempts[i].retry, i);
    EXPECT_EQ(o.attempts[i].fallback, 0);
    EXPECT_EQ(o.attempts[i].status, 500);
    ASSERT_TRUE(o.attempts[i].error);
  }
  // A retry goes to the other deployment while one is available.
  EXPECT_NE(o.attempts[0].dep->id, o.attempts[1].dep->id);
  EXPECT_EQ(o.attempts[3].group, "b");
  EXPECT_EQ(o.attempts[3].dep->id, "b1");
  EXPECT_EQ(o.attempts[3].fallback, 1);
  EXPECT_EQ(o.attempts[3].status, 200);
  EXPECT_EQ(o.fallbacks(), 1);
  EXPECT_TRUE(o.usage.known);
  EXPECT_EQ(up.calls["http://b1.test"], 1);
  EXPECT_NE(r.head_lines.find("x-litellm-attempted-fallbacks: 1"), std::string::npos);
}

TEST_F(pipeline_test, every_group_failing_answers_the_last_error) {
  cfg->router.num_retries = 0;
  cfg->router.raw["fallbacks"] = nlohmann::json::array({{{"a", {"b"}}}});
  scripted refused;
  refused.transport_error = true;
  up.script["http://a1.test"] = {refused};
  up.script["http://a2.test"] = {refused};
  up.script["http://b1.test"] = {refused};
  auto r = call(chat_body);
  EXPECT_EQ(r.status, 500);
  const auto& o = only_outcome();
  EXPECT_EQ(o.status, 500);
  ASSERT_TRUE(o.error);
  EXPECT_NE(o.error->message.find("APIConnectionError"), std::string::npos);
  EXPECT_NE(o.error->message.find("Available Model Group Fallbacks"), std::string::npos);
  ASSERT_EQ(o.attempts.size(), 2u);
  EXPECT_EQ(o.attempts[1].group, "b");
  EXPECT_FALSE(o.usage.known);
}

TEST_F(pipeline_test, client_gone_after_the_first_chunk) {
  scripted s;
  s.pieces = {chunk("a"), chunk("b"), chunk("c"), chunk("d", "\"stop\"") + usage_chunk + "data: [DONE]\n\n"};
  up.script["http://a1.test"] = {s};
  up.script["http://a2.test"] = {s};
  auto r = call(stream_body, "sk-master", 1);
  EXPECT_EQ(r.chunks.size(), 1u);
  EXPECT_FALSE(r.ended());
  const auto& o = only_outcome();
  EXPECT_EQ(o.status, 200);
  EXPECT_TRUE(o.streamed);
  EXPECT_TRUE(o.client_gone);
  ASSERT_EQ(o.attempts.size(), 1u);
  EXPECT_EQ(o.attempts[0].status, 200);
  // The provider's usage never arrived: nothing known yet (the cost logger estimates).
  EXPECT_FALSE(o.usage.known);
  EXPECT_GE(o.bytes_out, r.chunks[0].size());
}

TEST_F(pipeline_test, stream_cut_after_its_head_records_the_failure) {
  scripted s;
  s.pieces = {chunk("a"), chunk("b")};
  s.cut = true;
  up.script["http://a1.test"] = {s};
  up.script["http://a2.test"] = {s};
  auto r = call(stream_body);
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.body.find("\"error\""), std::string::npos);
  const auto& o = only_outcome();
  EXPECT_EQ(o.status, 200);
  ASSERT_TRUE(o.error);  // the late failure, taken from the attempt
  EXPECT_NE(o.error->message.find("APIConnectionError"), std::string::npos);
  ASSERT_EQ(o.attempts.size(), 1u);
  EXPECT_TRUE(o.attempts[0].error);
  EXPECT_FALSE(o.client_gone);
}

TEST_F(pipeline_test, an_exception_is_a_500_and_still_finishes_once) {
  scripted bug;
  bug.throws = true;
  up.script["http://a1.test"] = {bug};
  up.script["http://a2.test"] = {bug};
  auto r = call(chat_body);
  EXPECT_EQ(r.status, 500);
  const auto& o = only_outcome();
  EXPECT_EQ(o.status, 500);
  ASSERT_TRUE(o.error);
  EXPECT_EQ(o.error->status, 500);
}

TEST_F(pipeline_test, mock_response_is_an_attempt_without_a_call) {
  auto r = call(R"({"model":"a","mock_response":"hello","messages":[{"role":"user","content":"x"}]})");
  EXPECT_EQ(r.status, 200);
  const auto& o = only_outcome();
  ASSERT_EQ(o.attempts.size(), 1u);
  EXPECT_TRUE(o.attempts[0].mock);
  EXPECT_EQ(up.calls.size(), 0u);
}

TEST_F(pipeline_test, many_requests_each_finish_once) {
  up.script["http://a1.test"] = {reply(200, answer_json)};
  up.script["http://a2.test"] = {reply(200, answer_json)};
  for (int i = 0; i < 20; ++i) {
    call(i % 3 == 0 ? std::string("{") : chat_body, i % 5 == 0 ? "sk-bad" : "sk-master");
  }
  EXPECT_EQ(obs.finished.size(), 20u);
}

// A stage added before route answers by itself: the provider is never called and the
// outcome names it.
class refusing_stage final : public stage {
 public:
  const char* name() const override { return "limits"; }
  verdict run(request_ctx&) override {
    return verdict::fail(core::make_error(core::errc::rate_limited, "slow down"));
  }
};

TEST_F(pipeline_test, an_extension_stage_can_answer_before_route) {
  refusing_stage limits;
  rt = std::make_unique<router::router>(cfg);
  pipe = std::make_unique<llm_pipeline>(cfg, keys, *rt, up, extensions{&limits, nullptr, {&obs}});
  auto r = call(chat_body);
  EXPECT_EQ(r.status, 429);
  const auto& o = only_outcome();
  EXPECT_STREQ(o.answered_by, "limits");
  EXPECT_TRUE(o.attempts.empty());
  EXPECT_EQ(up.calls.size(), 0u);
}

// A stage that waits (run() says so, run_async() decides) and lets the request go on.
class waiting_stage final : public stage {
 public:
  int waited = 0;
  const char* name() const override { return "cache"; }
  verdict run(request_ctx&) override { return verdict::wait(); }
  net::awaitable<verdict> run_async(request_ctx&) override {
    ++waited;
    co_return verdict::next();
  }
};

TEST_F(pipeline_test, a_waiting_stage_runs_async_then_the_chain_goes_on) {
  waiting_stage cache;
  up.script["http://a1.test"] = {reply(200, answer_json)};
  up.script["http://a2.test"] = {reply(200, answer_json)};
  rt = std::make_unique<router::router>(cfg);
  pipe = std::make_unique<llm_pipeline>(cfg, keys, *rt, up, extensions{nullptr, &cache, {&obs}});
  auto r = call(chat_body);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(cache.waited, 1);
  EXPECT_EQ(only_outcome().attempts.size(), 1u);
}

// A stage that begins a stream, sends a chunk, then throws (a bug in some relay, say).
class throwing_stream_stage final : public stage {
 public:
  const char* name() const override { return "cache"; }
  verdict run(request_ctx&) override { return verdict::wait(); }
  net::awaitable<verdict> run_async(request_ctx& ctx) override {
    co_await ctx.resp.begin_stream(200, "text/event-stream", {});
    co_await ctx.resp.write("data: {\"partial\":true}\n\n");
    throw std::runtime_error("a relay bug");
  }
};

// An exception after the stream began: the client gets an error event in its route's SDK
// shape and a proper end of the body (not a cut), and the outcome records the failure once.
TEST_F(pipeline_test, an_exception_mid_stream_ends_it_with_an_error_event_in_the_routes_shape) {
  throwing_stream_stage cache;
  rt = std::make_unique<router::router>(cfg);
  pipe = std::make_unique<llm_pipeline>(cfg, keys, *rt, up, extensions{nullptr, &cache, {&obs}});
  struct route {
    providers::call_type type;
    const char* path;
    const char* event_line;  // the event's own line before its data, if the shape has one
    const char* error_type;  // where the message is: error.message, or message
  };
  const route routes[] = {
      {providers::call_type::chat, "/v1/chat/completions", "", "openai"},
      {providers::call_type::messages, "/v1/messages", "event: error\n", "anthropic"},
      {providers::call_type::responses, "/v1/responses", "event: error\n", "responses"},
  };
  for (const auto& rt_case : routes) {
    SCOPED_TRACE(rt_case.path);
    obs.finished.clear();
    http::request req;
    req.method = "POST";
    req.path = req.target = rt_case.path;
    req.headers.emplace_back("authorization", "Bearer sk-master");
    req.body = R"({"model":"a","stream":true,"max_tokens":5,"input":"hi","messages":[{"role":"user","content":"hi"}]})";
    req.call_id = "call-1";
    req.received_at = std::chrono::steady_clock::now();
    fake_responder r;
    run_coro([&] { return pipe->handle(req, r, rt_case.type); });
    EXPECT_EQ(r.status, 200);
    EXPECT_TRUE(r.ended()) << "the body ends with its last chunk";
    ASSERT_EQ(r.chunks.size(), 2u) << r.body;
    const std::string& last = r.chunks[1];
    const std::string event_line = rt_case.event_line;
    ASSERT_EQ(last.rfind(event_line + "data: ", 0), 0u) << last;
    ASSERT_GE(last.size(), 2u);
    EXPECT_EQ(last.substr(last.size() - 2), "\n\n");
    const auto data = nlohmann::json::parse(last.substr(event_line.size() + 6));
    const std::string kind = rt_case.error_type;
    const std::string message = kind == "responses" ? data.value("message", "") : data["error"].value("message", "");
    EXPECT_EQ(message, "Internal error while handling the request") << last;
    if (kind == "anthropic") {
      EXPECT_EQ(data.value("type", ""), "error");
      EXPECT_EQ(data["error"].value("type", ""), "api_error");
    } else if (kind == "responses") {
      EXPECT_EQ(data.value("type", ""), "error");
      EXPECT_EQ(data.value("code", ""), "server_error");
    }
    const auto& o = only_outcome();
    ASSERT_TRUE(o.error);
    EXPECT_EQ(o.error->status, 500);
    EXPECT_TRUE(o.streamed);
  }
  EXPECT_EQ(up.calls.size(), 0u);
}

}  // namespace

// ---- spend rows ------------------------------------------------------------------

TEST_F(pipeline_test, spend_row_keeps_cached_and_reasoning_tokens_apart) {
  const std::string details =
      R"({"id":"c","object":"chat.completion","created":1,"model":"x","choices":[{"index":0,)"
      R"("message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],)"
      R"("usage":{"prompt_tokens":900,"completion_tokens":60,"total_tokens":960,)"
      R"("prompt_tokens_details":{"cached_tokens":512},"completion_tokens_details":{"reasoning_tokens":40}}})";
  up.script["http://a1.test"] = {reply(200, details)};
  up.script["http://a2.test"] = {reply(200, details)};
  EXPECT_EQ(call(chat_body).status, 200);
  ASSERT_EQ(rows.rows.size(), 1u);
  const auto& r = rows.rows[0];
  EXPECT_EQ(r.prompt_tokens, 900);
  EXPECT_EQ(r.cached_tokens, 512);
  EXPECT_EQ(r.reasoning_tokens, 40);
  EXPECT_EQ(r.completion_tokens, 60);
  EXPECT_FALSE(r.usage_estimated);
}

TEST_F(pipeline_test, streamed_usage_details_reach_the_spend_row) {
  scripted s;
  s.pieces = {chunk("a"), chunk("b", "\"stop\"") +
                              R"(data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"x","choices":[],)"
                              R"("usage":{"prompt_tokens":700,"completion_tokens":30,"total_tokens":730,)"
                              R"("prompt_tokens_details":{"cached_tokens":640},"completion_tokens_details":{"reasoning_tokens":12}}})"
                              "\n\ndata: [DONE]\n\n"};
  up.script["http://a1.test"] = {s};
  up.script["http://a2.test"] = {s};
  EXPECT_EQ(call(stream_body).status, 200);
  ASSERT_EQ(rows.rows.size(), 1u);
  EXPECT_EQ(rows.rows[0].cached_tokens, 640);
  EXPECT_EQ(rows.rows[0].reasoning_tokens, 12);
  EXPECT_EQ(rows.rows[0].prompt_tokens, 700);
}

TEST_F(pipeline_test, usage_beyond_the_bound_is_billed_at_the_bound_logged_and_counted) {
  for (auto& d : cfg->model_list) {
    d.litellm_params["input_cost_per_token"] = 1e-6;
    d.litellm_params["output_cost_per_token"] = 2e-6;
  }
  // A provider that reports 10^15 prompt tokens (and reasoning beyond its completion).
  const std::string absurd =
      R"({"id":"c","object":"chat.completion","created":1,"model":"x","choices":[{"index":0,)"
      R"("message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],)"
      R"("usage":{"prompt_tokens":1000000000000000,"completion_tokens":7,"total_tokens":1000000000000007,)"
      R"("completion_tokens_details":{"reasoning_tokens":500000000000000000}}})";
  up.script["http://a1.test"] = {reply(200, absurd)};
  up.script["http://a2.test"] = {reply(200, absurd)};
  const auto before = spend::usage_bounded_total();
  auto r = call(chat_body);
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.body.find("1000000000000000"), std::string::npos) << "the client gets the provider's numbers";
  ASSERT_EQ(rows.rows.size(), 1u);
  EXPECT_EQ(rows.rows[0].prompt_tokens, spend::max_billed_tokens);
  EXPECT_EQ(rows.rows[0].completion_tokens, 7);
  EXPECT_EQ(rows.rows[0].reasoning_tokens, spend::max_billed_tokens);
  EXPECT_NEAR(rows.rows[0].spend, 100.0 + 7 * 2e-6, 1e-9);
  EXPECT_EQ(spend::usage_bounded_total(), before + 1) << "once per request";
  // A believable count is billed as reported and not counted.
  up.script["http://a1.test"] = {reply(200, answer_json)};
  up.script["http://a2.test"] = {reply(200, answer_json)};
  EXPECT_EQ(call(chat_body).status, 200);
  ASSERT_EQ(rows.rows.size(), 2u);
  EXPECT_EQ(rows.rows[1].prompt_tokens, 5);
  EXPECT_EQ(spend::usage_bounded_total(), before + 1);
}

TEST_F(pipeline_test, prompts_and_answers_are_not_stored_by_default) {
  up.script["http://a1.test"] = {reply(200, answer_json)};
  up.script["http://a2.test"] = {reply(200, answer_json)};
  EXPECT_EQ(call(chat_body).status, 200);
  ASSERT_EQ(rows.rows.size(), 1u);
  EXPECT_EQ(rows.rows[0].messages_json, "");
  EXPECT_EQ(rows.rows[0].response_json, "");
}

TEST_F(pipeline_test, store_prompts_keeps_the_messages_and_the_answer) {
  cfg->general.store_prompts_in_spend_logs = true;
  rows.store_prompts = true;
  up.script["http://a1.test"] = {reply(200, answer_json)};
  up.script["http://a2.test"] = {reply(200, answer_json)};
  EXPECT_EQ(call(chat_body).status, 200);
  ASSERT_EQ(rows.rows.size(), 1u);
  EXPECT_EQ(nlohmann::json::parse(rows.rows[0].messages_json),
            nlohmann::json::parse(R"([{"role":"user","content":"hello"}])"));
  auto resp = nlohmann::json::parse(rows.rows[0].response_json);
  EXPECT_EQ(resp["choices"][0]["message"]["content"], "hi");
  EXPECT_EQ(resp["usage"]["total_tokens"], 7);
}

TEST_F(pipeline_test, store_prompts_keeps_a_streams_assembled_text) {
  cfg->general.store_prompts_in_spend_logs = true;
  rows.store_prompts = true;
  scripted s;
  s.pieces = {chunk("Hel"), chunk("lo, "), chunk("world", "\"stop\"") + usage_chunk + "data: [DONE]\n\n"};
  up.script["http://a1.test"] = {s};
  up.script["http://a2.test"] = {s};
  EXPECT_EQ(call(stream_body).status, 200);
  ASSERT_EQ(rows.rows.size(), 1u);
  auto resp = nlohmann::json::parse(rows.rows[0].response_json);
  EXPECT_EQ(resp["object"], "chat.completion");
  EXPECT_EQ(resp["choices"][0]["message"]["content"], "Hello, world");
  EXPECT_FALSE(resp.contains("truncated"));
  EXPECT_FALSE(rows.rows[0].messages_json.empty());
}

TEST_F(pipeline_test, stored_prompts_are_bounded) {
  cfg->general.store_prompts_in_spend_logs = true;
  rows.store_prompts = true;
  const std::string big(3 * spend::max_stored_bytes, 'x');
  scripted s;
  s.pieces = {chunk(big.substr(0, spend::max_stored_bytes)), chunk(big.substr(spend::max_stored_bytes), "\"stop\"") +
                                                                 usage_chunk + "data: [DONE]\n\n"};
  up.script["http://a1.test"] = {s};
  up.script["http://a2.test"] = {s};
  const std::string body = R"({"model":"a","stream":true,"messages":[{"role":"user","content":")" + big + R"("}]})";
  EXPECT_EQ(call(body).status, 200);
  ASSERT_EQ(rows.rows.size(), 1u);
  const auto& r = rows.rows[0];
  EXPECT_LE(r.messages_json.size(), spend::max_stored_bytes + 200);
  auto m = nlohmann::json::parse(r.messages_json);
  EXPECT_EQ(m["truncated"], true);
  EXPECT_EQ(m["bytes"], big.size() + 30);  // [{"role":"user","content":"..."}]
  EXPECT_LE(r.response_json.size(), spend::max_stored_bytes + 200);
  auto resp = nlohmann::json::parse(r.response_json);
  EXPECT_EQ(resp["truncated"], true);
  EXPECT_EQ(resp["choices"][0]["message"]["content"].get<std::string>().size(), spend::max_stored_bytes);
}

// Asked before the parse stage scanned the body (an observer of a request refused earlier),
// the end user is the header's or none, and a later scan still counts.
TEST(request_ctx_end_user, a_lookup_before_the_scan_does_not_hide_the_body_user) {
  http::request req;
  req.body = R"({"model":"a","user":"late"})";
  fake_responder resp;
  request_ctx ctx(req, resp);
  EXPECT_EQ(ctx.end_user(), "");
  ctx.scan = providers::scan_json(req.body, providers::max_json_depth);
  ASSERT_TRUE(ctx.scan.ok);
  EXPECT_EQ(ctx.end_user(), "late");
  req.headers.emplace_back("x-litellm-end-user-id", "changed");
  EXPECT_EQ(ctx.end_user(), "late");  // final once found
}
