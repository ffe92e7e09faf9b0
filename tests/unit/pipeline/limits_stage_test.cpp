// The limits stage in the real pipeline, on the in-memory engine (no Redis), with entities
// given through limits_settings::extra (the shape end users and the proxy's budget use):
// refusals never reach the upstream and carry LiteLLM's errors and headers; the budget is
// settled to the actual cost in finish; a stream past its budget ends with an error event
// and [DONE]; parallel slots come back when requests end.
#include "fakes.hpp"

#include "switchyard/limits/engine.hpp"
#include "switchyard/pipeline/limits_stage.hpp"

#include <gtest/gtest.h>

using namespace switchyard;
using namespace switchyard::pipeline;
using namespace switchyard::pipeline::testing;

namespace {

std::string body(bool stream, int max_tokens) {
  return std::string(R"({"model":"b",)") + (stream ? R"("stream":true,)" : "") + R"("max_tokens":)" +
         std::to_string(max_tokens) + R"(,"messages":[{"role":"user","content":"hello"}]})";
}

class limits_stage_test : public ::testing::Test {
 protected:
  void build(auth::entity_limits e) {
    limits_settings s;
    s.extra.push_back(std::move(e));
    build(std::move(s));
  }

  void build(limits_settings s) {
    cfg->general.master_key = "sk-master";
    cfg->router.raw["disable_cooldowns"] = true;
    config::deployment d;
    d.model_name = "b";
    d.id = "b1";
    d.model = "openai/x";
    d.upstream_model = "x";
    d.api_base = "http://b1.test/v1";
    d.api_key = "sk-upstream";
    // Prompts free, 1 micro-USD per completion token.
    d.litellm_params = {{"input_cost_per_token", 0.0}, {"output_cost_per_token", 1e-6}};
    d.model_info = nlohmann::json::object();
    cfg->model_list.push_back(d);
    rt = std::make_unique<router::router>(cfg);
    engine = std::make_unique<limits::redis_engine>(io.get_executor(), nullptr, limits::redis_engine_options{},
                                                    [this] { return now_ms; });
    stage = std::make_unique<limits_stage>(*engine, *rt, prices, s);
    pipe = std::make_unique<llm_pipeline>(cfg, keys, *rt, up,
                                          extensions{stage.get(), nullptr, {stage.get(), &obs, &slots}});
  }

  fake_responder call(const std::string& b, providers::call_type type = providers::call_type::chat,
                      const char* path = "/v1/chat/completions") {
    http::request req;
    req.method = "POST";
    req.path = req.target = path;
    req.headers.emplace_back("authorization", "Bearer sk-master");
    req.body = b;
    req.call_id = "call-1";
    req.received_at = std::chrono::steady_clock::now();
    fake_responder resp;
    std::exception_ptr failed;
    net::co_spawn(io, pipe->handle(req, resp, type), [&](std::exception_ptr e) { failed = e; });
    io.restart();
    io.run();
    if (failed) {
      std::rethrow_exception(failed);
    }
    return resp;
  }

  static std::string header(const fake_responder& r, const std::string& name) {
    for (const auto& [k, v] : r.headers) {
      if (k == name) {
        return v;
      }
    }
    auto at = r.head_lines.find(name + ": ");
    if (at == std::string::npos) {
      return {};
    }
    at += name.size() + 2;
    return r.head_lines.substr(at, r.head_lines.find("\r\n", at) - at);
  }

  std::int64_t now_ms = 1'000'000;
  net::io_context io;
  std::shared_ptr<config::config> cfg = std::make_shared<config::config>();
  auth::authenticator master{"sk-master"};
  auth::key_authenticator keys{master, nullptr, false};
  std::unique_ptr<router::router> rt;
  spend::pricer prices{std::make_shared<spend::price_table>()};
  fake_upstream up;
  recording_observer obs;
  // The reservation each finished request had (its address only: nothing is kept alive).
  struct slot_observer final : observer {
    std::vector<const void*> seen;
    void on_finish(const request_ctx& ctx) noexcept override { seen.push_back(ctx.limits.get()); }
  } slots;
  std::unique_ptr<limits::redis_engine> engine;
  std::unique_ptr<limits_stage> stage;
  std::unique_ptr<llm_pipeline> pipe;
};

auth::entity_limits proxy() {
  auth::entity_limits e;
  e.level = auth::limit_level::proxy;
  e.id = "litellm-proxy-budget";
  return e;
}

TEST_F(limits_stage_test, rpm_refusal_is_a_429_with_headers_and_never_reaches_the_upstream) {
  auto e = proxy();
  e.rpm_limit = 2;
  build(e);
  up.script["http://b1.test"] = {reply(200, chat_answer("a")), reply(200, chat_answer("b"))};
  auto first = call(body(false, 10));
  EXPECT_EQ(first.status, 200);
  EXPECT_EQ(header(first, "x-ratelimit-proxy-limit-requests"), "2");
  EXPECT_EQ(header(first, "x-ratelimit-proxy-remaining-requests"), "1");
  EXPECT_EQ(call(body(false, 10)).status, 200);
  now_ms += 1000;
  auto third = call(body(false, 10));
  EXPECT_EQ(third.status, 429);
  EXPECT_EQ(up.calls["http://b1.test"], 2);
  auto j = nlohmann::json::parse(third.body);
  EXPECT_EQ(j["error"]["type"], "throttling_error");
  EXPECT_EQ(j["error"]["code"], "429");
  EXPECT_EQ(header(third, "retry-after"), "59");  // the window began 1 s ago
  EXPECT_EQ(header(third, "x-ratelimit-limit-requests"), "2");
  EXPECT_EQ(header(third, "x-ratelimit-remaining-requests"), "0");
  EXPECT_EQ(header(third, "x-ratelimit-reset-requests"), "59s");
  EXPECT_EQ(header(third, "rate_limit_type"), "requests");
  EXPECT_STREQ(obs.finished.back().out.answered_by, "limits");
  now_ms += 59'000;  // the window is over
  up.script["http://b1.test"] = {reply(200, chat_answer("c"))};
  EXPECT_EQ(call(body(false, 10)).status, 200);
}

TEST_F(limits_stage_test, budget_reserves_the_worst_case_and_settles_the_actual_cost) {
  auto e = proxy();
  e.max_budget = 10e-6;  // 10 completion tokens
  build(e);
  // max_tokens 8: 8 reserved; the answer used 2, so 6 come back.
  up.script["http://b1.test"] = {reply(200, chat_answer("a")), reply(200, chat_answer("b")),
                                 reply(200, chat_answer("c")), reply(200, chat_answer("d"))};
  EXPECT_EQ(call(body(false, 8)).status, 200);  // spent 2
  EXPECT_EQ(call(body(false, 8)).status, 200);  // 2 + 8 fits; spent 4
  auto refused = call(body(false, 8));          // 4 + 8 > 10
  EXPECT_EQ(refused.status, 429);
  auto j = nlohmann::json::parse(refused.body);
  EXPECT_EQ(j["error"]["type"], "budget_exceeded");
  EXPECT_EQ(j["error"]["message"], "Budget has been exceeded! Current cost: 4e-06, Max budget: 1e-05");
  EXPECT_EQ(call(body(false, 6)).status, 200);  // 4 + 6 fits exactly; spent 6
  EXPECT_EQ(up.calls["http://b1.test"], 3);
}

// An embedding generates no tokens: a model with an output price does not make its worst
// case (once 4096 output tokens of it) exceed a budget its input fits in.
TEST_F(limits_stage_test, an_embedding_reserves_its_input_only) {
  auto e = proxy();
  e.max_budget = 10e-6;  // 10 output tokens; inputs are free here
  build(e);
  up.script["http://b1.test"] = {reply(200, R"({"object":"list","data":[{"object":"embedding","index":0,)"
                                                R"("embedding":[0.1,0.2]}],"model":"x",)"
                                                R"("usage":{"prompt_tokens":3,"total_tokens":3}})")};
  auto resp = call(R"({"model":"b","input":"hello"})", providers::call_type::embedding, "/v1/embeddings");
  EXPECT_EQ(resp.status, 200) << resp.body;
  EXPECT_EQ(up.calls["http://b1.test"], 1);
}

TEST_F(limits_stage_test, a_stream_past_its_budget_ends_with_an_error_event_and_done) {
  auto e = proxy();
  e.max_budget = 5e-6;  // 5 events' worth
  build(e);
  scripted s;
  for (int i = 0; i < 12; ++i) {
    s.pieces.push_back(chunk("w" + std::to_string(i) + " "));  // the provider ignores max_tokens
  }
  s.pieces.push_back("data: [DONE]\n\n");
  up.script["http://b1.test"] = {s};
  auto r = call(body(true, 2));
  ASSERT_TRUE(r.streamed);
  EXPECT_EQ(r.status, 200);
  const std::string tail = "data: [DONE]\n\n";
  ASSERT_GE(r.body.size(), tail.size());
  EXPECT_EQ(r.body.substr(r.body.size() - tail.size()), tail);
  EXPECT_NE(r.body.find("\"budget_exceeded\""), std::string::npos) << r.body;
  std::size_t events = 0;
  for (auto at = r.body.find("chat.completion.chunk"); at != std::string::npos;
       at = r.body.find("chat.completion.chunk", at + 1)) {
    ++events;
  }
  EXPECT_EQ(events, 5u) << r.body;  // exactly what the budget pays for
  // The budget is spent: the next request is refused before the upstream.
  EXPECT_EQ(call(body(false, 1)).status, 429);
}

// A bound far beyond any count (1e300) is read as 10^18 tokens: its worst case is refused.
// It was converted as undefined behaviour, on x86 to the most negative integer: a negative
// reservation that passed and freed the tpm window for the requests after it.
// An absurd bound is read as 10^18 tokens, never converted (undefined) into a negative
// reservation that would free the window for others. A token window admits a request
// while it is below its limit, whatever its estimate (as LiteLLM's), so the request goes
// through, leaving nothing for others until it has settled to what it used.
TEST_F(limits_stage_test, an_absurd_max_tokens_is_a_huge_reservation_not_a_negative_one) {
  auto e = proxy();
  e.tpm_limit = 100;
  build(e);
  up.script["http://b1.test"] = {reply(200, chat_answer("a")), reply(200, chat_answer("b")),
                                 reply(200, chat_answer("c")), reply(200, chat_answer("d"))};
  for (const char* bound : {"1e300", "9.3e18", "1e18"}) {
    auto r = call(std::string(R"({"model":"b","max_tokens":)") + bound +
                  R"(,"messages":[{"role":"user","content":"hello"}]})");
    EXPECT_EQ(r.status, 200) << bound;
    EXPECT_EQ(header(r, "x-ratelimit-proxy-remaining-tokens"), "0") << bound;
  }
  EXPECT_EQ(up.calls["http://b1.test"], 3);
  EXPECT_EQ(call(body(false, 10)).status, 200);  // the window holds what they used (7 each)
}

TEST_F(limits_stage_test, parallel_slots_come_back_when_requests_end) {
  auto e = proxy();
  e.max_parallel_requests = 1;
  build(e);
  up.script["http://b1.test"] = {reply(200, chat_answer("a")), reply(200, chat_answer("b"))};
  EXPECT_EQ(call(body(false, 1)).status, 200);
  EXPECT_EQ(call(body(false, 1)).status, 200);  // the first one's slot was released in finish
}

// The stage keeps the reservations of finished requests and writes the next request's
// checks over them (no allocation for a key seen before). A reused one carries nothing of
// the request before it: here the entities change from request to request (more checks,
// fewer, other scopes, longer and shorter ids), and each answer's headers and each
// refusal are those of its own entities.
TEST_F(limits_stage_test, a_finished_requests_reservation_is_reused_and_rewritten) {
  auth::entity_limits team;
  team.level = auth::limit_level::team;
  team.id = "team-with-an-id-longer-than-a-short-string-buffer-0123456789";
  team.rpm_limit = 10;
  team.tpm_limit = 100000;
  team.max_parallel_requests = 5;
  auth::entity_limits user;
  user.level = auth::limit_level::user;
  user.id = "u1";
  user.rpm_limit = 1;
  user.max_budget = 1e-3;
  int turn = 0;
  limits_settings s;
  s.entities_of = [&](const request_ctx&, std::vector<const auth::entity_limits*>& out) {
    out.push_back(turn == 1 ? &user : &team);
  };
  build(std::move(s));
  for (int i = 0; i < 4; ++i) {
    up.script["http://b1.test"].push_back(reply(200, chat_answer("a")));
  }

  auto first = call(body(false, 10));
  EXPECT_EQ(first.status, 200);
  EXPECT_EQ(header(first, "x-ratelimit-team-remaining-requests"), "9");
  EXPECT_EQ(header(first, "x-ratelimit-team-limit-max_parallel_requests"), "5");

  turn = 1;  // fewer checks, another scope, a short id, a budget
  auto second = call(body(false, 10));
  EXPECT_EQ(second.status, 200);
  EXPECT_EQ(header(second, "x-ratelimit-user-limit-requests"), "1");
  EXPECT_EQ(header(second, "x-ratelimit-user-remaining-requests"), "0");
  EXPECT_EQ(second.head_lines.find("x-ratelimit-team-"), std::string::npos) << second.head_lines;
  EXPECT_EQ(second.head_lines.find("tokens"), std::string::npos) << second.head_lines;
  auto refused = call(body(false, 10));  // the user's rpm window is full: its own message
  EXPECT_EQ(refused.status, 429);
  EXPECT_NE(refused.body.find("Rate limit exceeded for user: u1. Limit type: requests."), std::string::npos)
      << refused.body;

  turn = 2;  // back to the team's three checks
  auto third = call(body(false, 10));
  EXPECT_EQ(third.status, 200);
  EXPECT_EQ(header(third, "x-ratelimit-team-remaining-requests"), "8");
  EXPECT_EQ(header(third, "x-ratelimit-team-limit-tokens"), "100000");
  EXPECT_EQ(third.head_lines.find("x-ratelimit-user-"), std::string::npos) << third.head_lines;
  EXPECT_EQ(up.calls["http://b1.test"], 3);

  // One reservation served every request, one after the other.
  ASSERT_EQ(slots.seen.size(), 4u);
  EXPECT_NE(slots.seen[0], nullptr);
  EXPECT_EQ(slots.seen[1], slots.seen[0]);
  EXPECT_EQ(slots.seen[2], nullptr);  // refused: nothing reserved, nothing kept
  EXPECT_EQ(slots.seen[3], slots.seen[0]);
}

}  // namespace
