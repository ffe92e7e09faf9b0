// The cache stage in the real pipeline (memory tier only, no Redis): hits never reach the
// fake upstream, streams are assembled and replayed, failures and cut streams are never
// stored, and the outcome says cache_hit.
#include "fakes.hpp"

#include "switchyard/cache/controls.hpp"
#include "switchyard/cache/response_cache.hpp"
#include "switchyard/pipeline/cache_stage.hpp"

#include <gtest/gtest.h>

using namespace switchyard;
using namespace switchyard::pipeline;
using namespace switchyard::pipeline::testing;

namespace {

const std::string answer_json = chat_answer("hello");

std::string body(bool stream, const std::string& extra = {}) {
  return std::string(R"({"model":"b",)") + (stream ? R"("stream":true,"stream_options":{"include_usage":true},)" : "") +
         extra + R"("messages":[{"role":"user","content":"hello"}]})";
}

class cache_stage_test : public ::testing::Test {
 protected:
  cache_stage_test() {
    cfg->general.master_key = "sk-master";
    cfg->router.raw["disable_cooldowns"] = true;
    config::deployment d;
    d.model_name = "b";
    d.id = "b1";
    d.model = "openai/x";
    d.upstream_model = "x";
    d.api_base = "http://b1.test/v1";
    d.api_key = "sk-upstream";
    d.litellm_params = nlohmann::json::object();
    d.model_info = nlohmann::json::object();
    cfg->model_list.push_back(d);
    settings.enabled = true;
    rt = std::make_unique<router::router>(cfg);
    rc = std::make_unique<cache::response_cache>(io.get_executor(), nullptr, cache::cache_options{});
    cstage = std::make_unique<cache_stage>(io.get_executor(), settings, *rc, *rt, std::chrono::milliseconds{1000});
    extensions ext{nullptr, cstage.get(), {cstage.get(), &obs}};
    ext.body_memo = &cstage->body_memo();  // as the gateway wires it
    pipe = std::make_unique<llm_pipeline>(cfg, keys, *rt, up, ext);
  }

  fake_responder call(const std::string& b, int writes_before_gone = -1) {
    http::request req;
    req.method = "POST";
    req.path = req.target = "/v1/chat/completions";
    req.headers.emplace_back("authorization", "Bearer sk-master");
    req.body = b;
    req.call_id = "call-1";
    req.received_at = std::chrono::steady_clock::now();
    fake_responder resp;
    resp.writes_before_gone = writes_before_gone;
    std::exception_ptr failed;
    net::co_spawn(io, pipe->handle(req, resp, providers::call_type::chat), [&](std::exception_ptr e) { failed = e; });
    io.restart();
    io.run();
    if (failed) {
      std::rethrow_exception(failed);
    }
    return resp;
  }

  static std::string header(const fake_responder& r, const std::string& name) {
    auto at = r.head_lines.find(name + ": ");
    if (at == std::string::npos) {
      return {};
    }
    at += name.size() + 2;
    return r.head_lines.substr(at, r.head_lines.find("\r\n", at) - at);
  }

  net::io_context io;
  std::shared_ptr<config::config> cfg = std::make_shared<config::config>();
  config::cache_settings settings;
  auth::authenticator master{"sk-master"};
  auth::key_authenticator keys{master, nullptr, false};
  std::unique_ptr<router::router> rt;
  fake_upstream up;
  recording_observer obs;
  std::unique_ptr<cache::response_cache> rc;
  std::unique_ptr<cache_stage> cstage;
  std::unique_ptr<llm_pipeline> pipe;
};

TEST_F(cache_stage_test, second_identical_request_is_a_hit) {
  up.script["http://b1.test"] = {reply(200, answer_json)};
  auto first = call(body(false));
  auto second = call(body(false));
  EXPECT_EQ(up.calls["http://b1.test"], 1);
  EXPECT_EQ(second.status, 200);
  EXPECT_EQ(second.body, first.body);
  EXPECT_EQ(header(first, "x-litellm-cache-key").size(), 64u);
  EXPECT_EQ(header(second, "x-litellm-cache-key"), header(first, "x-litellm-cache-key"));
  EXPECT_EQ(header(second, "x-litellm-response-cost"), "0");
  ASSERT_EQ(obs.finished.size(), 2u);
  EXPECT_FALSE(obs.finished[0].out.cache_hit);
  EXPECT_TRUE(obs.finished[1].out.cache_hit);
  EXPECT_STREQ(obs.finished[1].out.answered_by, "cache");
  EXPECT_TRUE(obs.finished[1].out.attempts.empty());
  EXPECT_EQ(obs.finished[1].out.usage.total_tokens, 7);
  EXPECT_EQ(cstage->flights().size(), 0u);  // every flight landed
}

// After a hit, the body's key is remembered: a third identical request takes it from the
// memo (the same key as computed), and a body one byte apart, or the same bytes in
// another member order, gets its key computed as before.
TEST_F(cache_stage_test, a_body_seen_before_reuses_its_key_and_only_the_same_bytes_do) {
  up.script["http://b1.test"] = {reply(200, answer_json), reply(200, answer_json)};
  const std::string b = body(false, R"("temperature":0,)");
  auto first = call(b);
  auto second = call(b);
  EXPECT_EQ(cstage->keys_remembered(), 0u);  // remembered only once a key found an answer
  auto third = call(b);
  EXPECT_EQ(cstage->keys_remembered(), 1u);
  EXPECT_EQ(up.calls["http://b1.test"], 1);
  EXPECT_EQ(header(third, "x-litellm-cache-key"), header(first, "x-litellm-cache-key"));
  EXPECT_EQ(third.body, first.body);

  // The same request in another member order: not the same bytes, so computed; the
  // canonical form gives it the same key.
  auto reordered = call(R"({"messages":[{"content":"hello","role":"user"}],"temperature":0,"model":"b"})");
  EXPECT_EQ(cstage->keys_remembered(), 1u);
  EXPECT_EQ(header(reordered, "x-litellm-cache-key"), header(first, "x-litellm-cache-key"));

  // One byte apart in the middle: another key, a provider call.
  std::string other = b;
  other.replace(other.find("hello"), 5, "hellO");
  auto changed = call(other);
  EXPECT_EQ(cstage->keys_remembered(), 1u);
  EXPECT_NE(header(changed, "x-litellm-cache-key"), header(first, "x-litellm-cache-key"));
  EXPECT_EQ(up.calls["http://b1.test"], 2);
}

// The remembered body's scan is reused by the parse stage: the third identical request
// is not scanned again, and what the stages read from the restored scan (model, stream,
// the members the key is made of) gives the same answer.
TEST_F(cache_stage_test, a_body_seen_before_reuses_its_scan) {
  up.script["http://b1.test"] = {reply(200, answer_json)};
  const std::string b = body(false, R"("temperature":0,"user":"u1",)");
  auto first = call(b);
  auto second = call(b);
  EXPECT_EQ(cstage->body_memo().member_hits(), 0u);
  auto third = call(b);
  EXPECT_EQ(cstage->body_memo().member_hits(), 1u);
  EXPECT_EQ(up.calls["http://b1.test"], 1);
  EXPECT_EQ(third.body, first.body);
  EXPECT_EQ(header(third, "x-litellm-cache-key"), header(first, "x-litellm-cache-key"));
  ASSERT_EQ(obs.finished.size(), 3u);
  EXPECT_TRUE(obs.finished[2].out.cache_hit);
  EXPECT_EQ(obs.finished[2].model, "b");
  EXPECT_EQ(obs.finished[2].members, 4u);
  EXPECT_EQ(obs.finished[0].members, 4u);

  // The same bytes as a stream request are other bytes: scanned, and replayed as a stream.
  auto streamed = call(body(true, R"("temperature":0,"user":"u1",)"));
  EXPECT_EQ(cstage->body_memo().member_hits(), 1u);
  EXPECT_NE(streamed.body.find("data: [DONE]"), std::string::npos);
}

// With a body remembered, bodies that are not its bytes are scanned as ever: a malformed
// one of the same length (a byte changed) and a cut one get the parse stage's 400, and
// the provider is not called for them.
TEST_F(cache_stage_test, a_malformed_body_beside_a_remembered_one_is_still_refused) {
  up.script["http://b1.test"] = {reply(200, answer_json)};
  const std::string b = body(false, R"("temperature":0,)");
  call(b);
  call(b);
  call(b);
  ASSERT_EQ(cstage->body_memo().member_hits(), 1u);
  std::string broken = b;
  broken[broken.find(':')] = ',';  // same length, not JSON
  auto r1 = call(broken);
  EXPECT_EQ(r1.status, 400) << r1.body;
  auto r2 = call(b.substr(0, b.size() - 1));
  EXPECT_EQ(r2.status, 400) << r2.body;
  EXPECT_EQ(cstage->body_memo().member_hits(), 1u);
  EXPECT_EQ(up.calls["http://b1.test"], 1);
  ASSERT_EQ(obs.finished.size(), 5u);
  EXPECT_STREQ(obs.finished[3].out.answered_by, "parse");
  EXPECT_STREQ(obs.finished[4].out.answered_by, "parse");
}

// A scan rebuilt from remembered offsets, over another copy of the same bytes, is the
// scan of that copy; a body whose key had escapes is not remembered that way.
TEST(member_spans, a_restored_scan_is_the_scan_of_the_copy) {
  for (const std::string& b : {std::string(R"({"model":"b","messages":[{"role":"user","content":"h\u00e9"}],"n":2})"),
                              std::string(R"( { "model" : "b" , "stream" : true , "x" : [1, {"y": null}] } )"),
                              std::string(R"({"model":"b","model":"c","t":1.5e3,"s":"\"q\""})")}) {
    auto scan = providers::scan_json(b);
    ASSERT_TRUE(scan.ok) << b;
    auto spans = member_spans_of(scan, b);
    ASSERT_EQ(spans.size(), scan.members.size()) << b;
    const std::string copy = b;
    providers::json_scan restored;
    restore_scan(restored, spans, copy);
    auto fresh = providers::scan_json(copy);
    ASSERT_TRUE(restored.ok);
    EXPECT_EQ(restored.root, fresh.root);
    ASSERT_EQ(restored.members.size(), fresh.members.size());
    for (std::size_t i = 0; i < fresh.members.size(); ++i) {
      const auto& r = restored.members[i];
      const auto& f = fresh.members[i];
      EXPECT_EQ(r.key.data(), f.key.data()) << b << " member " << i;
      EXPECT_EQ(r.key.size(), f.key.size());
      EXPECT_EQ(r.whole.data(), f.whole.data());
      EXPECT_EQ(r.whole.size(), f.whole.size());
      EXPECT_EQ(r.value.data(), f.value.data());
      EXPECT_EQ(r.value.size(), f.value.size());
      EXPECT_EQ(r.kind, f.kind);
      EXPECT_EQ(r.text_bytes, f.text_bytes);
    }
  }
  const std::string escaped = R"({"mod\u0065l":"b","n":1})";
  auto scan = providers::scan_json(escaped);
  ASSERT_TRUE(scan.ok);
  EXPECT_TRUE(member_spans_of(scan, escaped).empty());
  EXPECT_TRUE(member_spans_of(providers::scan_json("[1,2]"), "[1,2]").empty());
}

TEST_F(cache_stage_test, a_stream_is_assembled_then_serves_json_and_a_replayed_stream) {
  scripted s;
  s.pieces = {chunk("hel"), chunk("lo", "\"stop\"") + usage_chunk + "data: [DONE]\n\n"};
  up.script["http://b1.test"] = {s};
  auto first = call(body(true));
  ASSERT_TRUE(first.streamed);
  auto json_hit = call(body(false));
  EXPECT_EQ(up.calls["http://b1.test"], 1);
  auto j = nlohmann::json::parse(json_hit.body);
  EXPECT_EQ(j["choices"][0]["message"]["content"], "hello");
  EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(j["usage"]["total_tokens"], 8);
  auto replay = call(body(true));
  EXPECT_EQ(up.calls["http://b1.test"], 1);
  EXPECT_TRUE(replay.streamed);
  EXPECT_TRUE(replay.ended());
  EXPECT_NE(replay.body.find(R"("content":"hello")"), std::string::npos);
  EXPECT_NE(replay.body.find(R"("total_tokens":8)"), std::string::npos);
  EXPECT_TRUE(replay.body.ends_with("data: [DONE]\n\n"));
}

TEST_F(cache_stage_test, errors_cut_streams_and_departed_clients_are_not_stored) {
  scripted cut;
  cut.pieces = {chunk("hel")};
  cut.cut = true;
  scripted whole;
  whole.pieces = {chunk("hel"), chunk("lo", "\"stop\""), "data: [DONE]\n\n"};
  up.script["http://b1.test"] = {reply(400, R"({"error":{"message":"bad"}})"), cut, whole, whole};
  EXPECT_EQ(call(body(false, R"("num_retries":0,)")).status, 400);
  call(body(true, R"("num_retries":0,)"));  // cut after its first event
  call(body(true), /*writes_before_gone=*/1);  // the client leaves
  EXPECT_EQ(up.calls["http://b1.test"], 3);
  call(body(true));
  EXPECT_EQ(up.calls["http://b1.test"], 4);
  call(body(false));
  EXPECT_EQ(up.calls["http://b1.test"], 4);  // the one whole stream was stored
}

TEST_F(cache_stage_test, no_store_and_no_cache) {
  up.script["http://b1.test"] = {reply(200, answer_json)};
  call(body(false, R"("cache":{"no-store":true},)"));
  call(body(false));
  EXPECT_EQ(up.calls["http://b1.test"], 2);  // nothing stored by the first
  call(body(false, R"("cache":{"no-cache":true},)"));
  EXPECT_EQ(up.calls["http://b1.test"], 3);  // no lookup
  call(body(false));
  EXPECT_EQ(up.calls["http://b1.test"], 3);
  auto bad = call(body(false, R"("cache":{"ttl":"x"},)"));
  EXPECT_EQ(bad.status, 400);
}

TEST_F(cache_stage_test, the_namespace_comes_from_the_request_then_metadata_and_is_bounded) {
  up.script["http://b1.test"] = {reply(200, answer_json)};
  auto plain = call(body(false));
  const std::string hex = header(plain, "x-litellm-cache-key");
  ASSERT_EQ(hex.size(), 64u);
  auto meta = call(body(false, R"("metadata":{"redis_namespace":"team-a"},)"));
  EXPECT_EQ(header(meta, "x-litellm-cache-key"), "team-a:" + hex);
  auto both = call(body(false, R"("cache":{"namespace":"app"},"metadata":{"redis_namespace":"team-a"},)"));
  EXPECT_EQ(header(both, "x-litellm-cache-key"), "app:" + hex);
  EXPECT_EQ(up.calls["http://b1.test"], 3);  // three namespaces, three entries

  // A namespace is echoed in a response header: one beyond the bound is refused before
  // the provider is called, whichever member names it.
  const std::string long_ns(cache::max_namespace_bytes + 1, 'n');
  auto from_cache = call(body(false, R"("cache":{"namespace":")" + long_ns + R"("},)"));
  EXPECT_EQ(from_cache.status, 400);
  EXPECT_NE(from_cache.body.find("\"param\":\"cache\""), std::string::npos) << from_cache.body;
  auto from_meta = call(body(false, R"("metadata":{"redis_namespace":")" + long_ns + R"("},)"));
  EXPECT_EQ(from_meta.status, 400);
  EXPECT_NE(from_meta.body.find("`metadata.redis_namespace` must be at most 512 bytes"), std::string::npos)
      << from_meta.body;
  EXPECT_NE(from_meta.body.find("\"param\":\"metadata\""), std::string::npos) << from_meta.body;
  EXPECT_EQ(up.calls["http://b1.test"], 3);
}

// A wildcard deployment (model_name "w/*") serves every model its pattern matches, each
// sent upstream under its own name: the models are different, and so are their answers.
// The key names the model requested, not the pattern, or one model's answer would be
// served for another (the body's `model` is not in the key: the group stands for it).
TEST_F(cache_stage_test, each_model_a_wildcard_matches_has_entries_of_its_own) {
  config::deployment w;
  w.model_name = "w/*";
  w.id = "w1";
  w.model = "openai/*";
  w.upstream_model = "*";
  w.api_base = "http://w1.test/v1";
  w.api_key = "sk-upstream";
  w.litellm_params = nlohmann::json::object();
  w.model_info = nlohmann::json::object();
  cfg->model_list.push_back(w);
  rt->reload(cfg);
  up.script["http://w1.test"] = {reply(200, chat_answer("from alpha")), reply(200, chat_answer("from beta"))};
  const auto ask = [](const char* model) {
    return std::string(R"({"model":")") + model + R"(","messages":[{"role":"user","content":"hello"}]})";
  };
  auto alpha = call(ask("w/alpha"));
  auto beta = call(ask("w/beta"));
  EXPECT_EQ(up.calls["http://w1.test"], 2);  // beta is not alpha's answer
  EXPECT_NE(beta.body.find("from beta"), std::string::npos) << beta.body;
  EXPECT_NE(header(beta, "x-litellm-cache-key"), header(alpha, "x-litellm-cache-key"));
  auto again = call(ask("w/alpha"));  // each still hits its own entry
  EXPECT_EQ(up.calls["http://w1.test"], 2);
  EXPECT_EQ(again.body, alpha.body);
  ASSERT_EQ(obs.finished.size(), 3u);
  EXPECT_TRUE(obs.finished[2].out.cache_hit);
  EXPECT_EQ(obs.finished[2].cache_group, "w/alpha");  // spend and metrics name the model
}

}  // namespace
