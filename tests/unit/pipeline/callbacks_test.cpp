// The callbacks' sender (batching by size and interval, retries with backoff, drops when
// full) and the alerter's dedup, with an injected clock and a recording upstream; the
// wire formats and targets built from the config and the environment.
#include "switchyard/pipeline/alerting.hpp"
#include "switchyard/pipeline/callbacks.hpp"
#include "switchyard/pipeline/llm_pipeline.hpp"

#include "fakes.hpp"

#include <gtest/gtest.h>

#include <map>
#include <regex>

namespace switchyard::pipeline {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;
using testing::run_coro;
using ms = std::chrono::milliseconds;

// Time moves only when the sender waits: each wait jumps to its deadline at once, unless
// something that runs during the wait (during_wait) wakes the clock: then the wait ends
// there, with no time passed, as a real timer cancelled by wake() does.
class fake_sender_clock final : public sender_clock {
 public:
  time_point t{std::chrono::hours(1)};
  std::vector<ms> waits;         // how long each wait asked for
  std::function<void()> during_wait;  // runs within each wait, before its deadline
  std::function<void()> on_wait;  // runs after each wait (the test pushes or stops here)
  int wakes = 0;
  time_point now() const override { return t; }
  net::awaitable<void> wait_until(time_point u) override {
    waits.push_back(std::chrono::duration_cast<ms>(u - t));
    woken_ = false;
    if (during_wait) {
      during_wait();
    }
    if (!woken_ && u > t) {
      t = u;
    }
    if (on_wait) {
      on_wait();
    }
    co_return;
  }
  void wake() override {
    ++wakes;
    woken_ = true;
  }

 private:
  bool woken_ = false;
};

struct sent_request {
  std::string url;
  upstream::header_list headers;
  std::string body;
  sender_clock::time_point at;
};

// Records every POST (with the fake clock's time) and answers from a script: a status, or
// 0 for a refused connection; the last answer repeats.
class recording_upstream final : public upstream_caller {
 public:
  explicit recording_upstream(const fake_sender_clock& c) : clock_(c) {}
  std::deque<int> script{200};
  std::vector<sent_request> seen;
  net::awaitable<core::result<upstream::response>> send(upstream::request req) override {
    std::string body = req.body;  // the real client sends body_parts when there are any
    for (auto part : req.body_parts) {
      body += part;
    }
    seen.push_back({req.url, req.headers, std::move(body), clock_.now()});
    const int s = script.front();
    if (script.size() > 1) {
      script.pop_front();
    }
    if (s == 0) {
      co_return core::make_error(core::errc::upstream_unreachable, "Connection refused");
    }
    upstream::response r;
    r.status = s;
    co_return r;
  }
  net::awaitable<core::result<std::unique_ptr<upstream::body_stream>>> open(upstream::request) override {
    throw std::logic_error("not used");
  }

 private:
  const fake_sender_clock& clock_;
};

std::shared_ptr<const callback_event> event(const std::string& id) {
  auto e = std::make_shared<callback_event>();
  e->call_id = id;
  return e;
}

// A target whose body lists the batch's call ids: "a,b,c".
callback_target ids_target() {
  callback_target t;
  t.name = "test";
  t.kind = "generic_api";
  t.url = "http://collector.test/in";
  t.headers = {{"authorization", "Bearer x"}};
  t.encode = [](const std::vector<std::shared_ptr<const callback_event>>& b) {
    std::string s;
    for (const auto& e : b) {
      s += (s.empty() ? "" : ",") + e->call_id;
    }
    return s;
  };
  return t;
}

struct sender_fixture {
  fake_sender_clock* clock;
  std::unique_ptr<recording_upstream> up;
  std::unique_ptr<callback_sender> sender;
  explicit sender_fixture(sender_options o) {
    auto c = std::make_unique<fake_sender_clock>();
    clock = c.get();
    up = std::make_unique<recording_upstream>(*c);
    sender = std::make_unique<callback_sender>(ids_target(), *up, o, std::move(c));
  }
  void run() {
    run_coro([this] { return sender->run(); });
  }
};

TEST(CallbackSender, BackoffDoublesUpToItsCap) {
  sender_options o;
  o.backoff_base = 500ms;
  o.backoff_max = 3000ms;
  EXPECT_EQ(backoff_delay(o, 0), 500ms);
  EXPECT_EQ(backoff_delay(o, 1), 1000ms);
  EXPECT_EQ(backoff_delay(o, 2), 2000ms);
  EXPECT_EQ(backoff_delay(o, 3), 3000ms);
  EXPECT_EQ(backoff_delay(o, 40), 3000ms);
}

TEST(CallbackSender, FullBatchesGoAtOnceThePartOneAfterTheInterval) {
  sender_options o;
  o.batch_size = 3;
  o.flush_interval = 1000ms;
  sender_fixture f(o);
  const auto t0 = f.clock->t;
  for (const char* id : {"a", "b", "c", "d", "e", "f", "g"}) {
    EXPECT_TRUE(f.sender->push(event(id)));
  }
  EXPECT_EQ(f.clock->wakes, 1) << "the third event filled a batch";
  int waits = 0;
  f.clock->on_wait = [&] {
    if (++waits == 2) {
      f.sender->stop();  // the queue is empty by then
    }
  };
  f.run();
  ASSERT_EQ(f.up->seen.size(), 3u);
  EXPECT_EQ(f.up->seen[0].body, "a,b,c");
  EXPECT_EQ(f.up->seen[1].body, "d,e,f");
  EXPECT_EQ(f.up->seen[2].body, "g");
  EXPECT_EQ(f.up->seen[0].at, t0) << "full batches do not wait";
  EXPECT_EQ(f.up->seen[1].at, t0);
  EXPECT_EQ(f.up->seen[2].at, t0 + 1000ms) << "the last one waited for its interval";
  ASSERT_GE(f.clock->waits.size(), 1u);
  EXPECT_EQ(f.clock->waits[0], 1000ms);
  EXPECT_EQ(f.up->seen[0].url, "http://collector.test/in");
  bool json_type = false, auth = false;
  for (const auto& [k, v] : f.up->seen[0].headers) {
    json_type = json_type || (k == "content-type" && v == "application/json");
    auth = auth || (k == "authorization" && v == "Bearer x");
  }
  EXPECT_TRUE(json_type);
  EXPECT_TRUE(auth);
  EXPECT_EQ(f.sender->stats().sent, 7u);
  EXPECT_EQ(f.sender->stats().batches, 3u);
  EXPECT_EQ(f.sender->stats().failed, 0u);
}

TEST(CallbackSender, AnEventArrivingLaterWaitsItsOwnInterval) {
  sender_options o;
  o.batch_size = 10;
  o.flush_interval = 500ms;
  sender_fixture f(o);
  const auto t0 = f.clock->t;
  int waits = 0;
  f.clock->on_wait = [&] {
    ++waits;
    if (waits == 1) {
      f.sender->push(event("late"));  // arrives at t0 + 500 ms (the first, idle wait)
    } else if (waits == 3) {
      f.sender->stop();
    }
  };
  f.run();
  ASSERT_EQ(f.up->seen.size(), 1u);
  EXPECT_EQ(f.up->seen[0].body, "late");
  EXPECT_EQ(f.up->seen[0].at, t0 + 1000ms);
}

TEST(CallbackSender, RetriesWithBackoffThenSucceeds) {
  sender_options o;
  o.batch_size = 2;
  o.max_retries = 3;
  o.backoff_base = 100ms;
  sender_fixture f(o);
  f.up->script = {503, 0, 429, 200};
  f.sender->push(event("a"));
  f.sender->push(event("b"));
  f.clock->on_wait = [&] {
    if (f.sender->stats().sent + f.sender->stats().failed == 2) {
      f.sender->stop();  // delivered: the next (idle) wait ends the run
    }
  };
  f.run();
  ASSERT_EQ(f.up->seen.size(), 4u);
  for (const auto& r : f.up->seen) {
    EXPECT_EQ(r.body, "a,b") << "the same batch each time";
  }
  ASSERT_GE(f.clock->waits.size(), 3u);
  EXPECT_EQ(std::vector<ms>(f.clock->waits.begin(), f.clock->waits.begin() + 3), (std::vector<ms>{100ms, 200ms, 400ms}));
  EXPECT_EQ(f.sender->stats().retries, 3u);
  EXPECT_EQ(f.sender->stats().sent, 2u);
  EXPECT_EQ(f.sender->stats().failed, 0u);
}

// A batch filling while the sender backs off wakes the clock (for the idle wait); the
// retry still waits its whole back-off, and the new batch goes after it.
TEST(CallbackSender, AFullBatchDoesNotCutTheBackoffShort) {
  sender_options o;
  o.batch_size = 2;
  o.max_retries = 3;
  o.backoff_base = 500ms;
  sender_fixture f(o);
  f.up->script = {503, 200};
  f.sender->push(event("a"));
  f.sender->push(event("b"));
  bool pushed = false;
  f.clock->during_wait = [&] {
    if (!pushed && f.up->seen.size() == 1) {  // backing off after the 503
      pushed = true;
      f.sender->push(event("c"));
      f.sender->push(event("d"));  // a full batch: wakes the clock
    }
  };
  f.clock->on_wait = [&] {
    if (f.sender->stats().sent == 4) {
      f.sender->stop();
    }
  };
  f.run();
  ASSERT_TRUE(pushed);
  EXPECT_GE(f.clock->wakes, 1);
  ASSERT_EQ(f.up->seen.size(), 3u);
  EXPECT_EQ(f.up->seen[1].body, "a,b");
  EXPECT_EQ(f.up->seen[1].at - f.up->seen[0].at, 500ms) << "the retry came before its back-off ended";
  EXPECT_EQ(f.up->seen[2].body, "c,d");
  EXPECT_EQ(f.sender->stats().sent, 4u);
}

TEST(CallbackSender, GivesUpAfterItsRetriesAndCountsTheLoss) {
  sender_options o;
  o.batch_size = 5;
  o.max_retries = 2;
  o.backoff_base = 100ms;
  sender_fixture f(o);
  f.up->script = {0};  // the collector is down
  for (const char* id : {"a", "b", "c", "d", "e"}) {
    f.sender->push(event(id));
  }
  int waits = 0;
  f.clock->on_wait = [&] {
    if (++waits == 3) {
      f.sender->stop();  // after the two backoffs and one idle wait
    }
  };
  f.run();
  EXPECT_EQ(f.up->seen.size(), 3u);
  EXPECT_EQ(f.sender->stats().failed, 5u);
  EXPECT_EQ(f.sender->stats().sent, 0u);
  EXPECT_EQ(f.clock->waits[0], 100ms);
  EXPECT_EQ(f.clock->waits[1], 200ms);
}

TEST(CallbackSender, ARefusalIsNotRetried) {
  sender_options o;
  o.batch_size = 1;
  sender_fixture f(o);
  f.up->script = {401};
  f.sender->push(event("a"));
  f.sender->stop();
  f.run();
  EXPECT_EQ(f.up->seen.size(), 1u);
  EXPECT_EQ(f.sender->stats().failed, 1u);
  EXPECT_EQ(f.sender->stats().retries, 0u);
}

TEST(CallbackSender, AFullQueueDropsAndCounts) {
  sender_options o;
  o.queue_capacity = 2;
  o.batch_size = 10;
  sender_fixture f(o);
  EXPECT_TRUE(f.sender->push(event("a")));
  EXPECT_TRUE(f.sender->push(event("b")));
  EXPECT_FALSE(f.sender->push(event("c")));
  EXPECT_EQ(f.sender->stats().dropped, 1u);
  EXPECT_EQ(f.sender->queue_depth(), 2u);
  f.sender->stop();
  EXPECT_FALSE(f.sender->push(event("d"))) << "stopping: nothing new is taken";
  f.run();
  ASSERT_EQ(f.up->seen.size(), 1u);
  EXPECT_EQ(f.up->seen[0].body, "a,b");
  EXPECT_EQ(f.sender->stats().dropped, 2u);
}

// generic_api targets take payloads written at `finish` straight into the batch being
// filled: framed as the log format says, batched, bounded and flushed like events.
TEST(CallbackSender, TextPayloadsAreWrittenIntoFramedBatches) {
  sender_options o;
  o.batch_size = 3;
  o.queue_capacity = 5;
  o.flush_interval = 1000ms;
  auto c = std::make_unique<fake_sender_clock>();
  auto* clock = c.get();
  recording_upstream up(*c);
  auto t = ids_target();
  t.text = callback_target::text_framing{'[', ',', 0, ']'};
  callback_sender sender(t, up, o, std::move(c));
  const auto write = [](std::string text) { return [text](std::string& out) { out += text; }; };
  for (const char* id : {"{\"a\":1}", "{\"b\":2}", "{\"c\":3}", "{\"d\":4}"}) {
    EXPECT_TRUE(sender.push_written(write(id)));
  }
  EXPECT_EQ(clock->wakes, 1) << "the third payload filled a batch";
  // A writer that fails leaves the batch as it was, and the payload counts as dropped.
  EXPECT_FALSE(sender.push_written([](std::string& out) {
    out += "{\"half";
    throw std::runtime_error("out of memory");
  }));
  EXPECT_TRUE(sender.push_written(write("{\"e\":5}")));
  EXPECT_FALSE(sender.push_written(write("{\"f\":6}"))) << "the queue holds 5";
  EXPECT_EQ(sender.queue_depth(), 5u);
  EXPECT_EQ(sender.stats().dropped, 2u);
  int waits = 0;
  clock->on_wait = [&] {
    if (++waits == 2) {
      sender.stop();
    }
  };
  run_coro([&] { return sender.run(); });
  ASSERT_EQ(up.seen.size(), 2u);
  EXPECT_EQ(up.seen[0].body, R"([{"a":1},{"b":2},{"c":3}])");
  EXPECT_EQ(up.seen[1].body, R"([{"d":4},{"e":5}])");
  EXPECT_TRUE(json::accept(up.seen[1].body));
  EXPECT_EQ(sender.stats().sent, 5u);
  EXPECT_EQ(sender.stats().queued, 5u);

  // ndjson: a line per payload, nothing around the batch.
  auto c2 = std::make_unique<fake_sender_clock>();
  recording_upstream up2(*c2);
  t.text = callback_target::text_framing{0, 0, '\n', 0};
  callback_sender lines(t, up2, o, std::move(c2));
  EXPECT_TRUE(lines.push_written(write("{}")));
  EXPECT_TRUE(lines.push_written(write("[]")));
  lines.stop();
  run_coro([&] { return lines.run(); });
  ASSERT_EQ(up2.seen.size(), 1u);
  EXPECT_EQ(up2.seen[0].body, "{}\n[]\n");
}

TEST(TraceContext, TakesAValidTraceparentAndRefusesMalformedOnes) {
  auto t = trace_context_of("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  EXPECT_EQ(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(t.parent_span_id, "00f067aa0ba902b7");
  EXPECT_TRUE(t.sampled);
  EXPECT_EQ(t.span_id.size(), 16u);
  EXPECT_NE(t.span_id, t.parent_span_id);
  EXPECT_FALSE(trace_context_of("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").sampled);
  for (const char* bad : {"", "garbage", "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                          "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                          "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                          "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                          "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra"}) {
    auto n = trace_context_of(bad);
    EXPECT_TRUE(n.parent_span_id.empty()) << bad;
    EXPECT_TRUE(std::regex_match(n.trace_id, std::regex("[0-9a-f]{32}"))) << bad;
    EXPECT_NE(n.trace_id, "00000000000000000000000000000000");
  }
}

callback_event sample_event() {
  callback_event e;
  e.call_id = "call-1";
  e.call_type = "acompletion";
  e.requested_model = "gpt-group";
  e.model = "gpt-up";
  e.model_group = "gpt-group";
  e.model_id = "dep-1";
  e.provider = "openai";
  e.status = 200;
  e.success = true;
  e.key_hash = std::string(64, 'a');
  e.prompt_tokens = 7;
  e.completion_tokens = 3;
  e.start_ns = 1'700'000'000'000'000'000;
  e.end_ns = e.start_ns + 5'000'000;
  e.trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
  e.parent_span_id = "00f067aa0ba902b7";
  e.span_id = "1111111111111111";
  e.stages.push_back({"auth", e.start_ns + 1000, e.start_ns + 2000});
  callback_event::attempt_span a;
  a.span_id = "2222222222222222";
  a.model = "gpt-up";
  a.provider = "openai";
  a.status = 200;
  a.start_ns = e.start_ns + 3000;
  a.end_ns = e.end_ns - 1000;
  e.attempts.push_back(a);
  e.request_body = R"({"model":"gpt-group","messages":[{"role":"user","content":"hi"}]})";
  e.response = R"({"choices":[{"message":{"role":"assistant","content":"hello"}}]})";
  return e;
}

TEST(CallbackFormats, OtlpJsonHasHexIdsStringNanosAndTypedAttributes) {
  auto ev = std::make_shared<const callback_event>(sample_event());
  auto j = otlp_traces_json({ev}, "svc");
  const auto& spans = j["resourceSpans"][0]["scopeSpans"][0]["spans"];
  ASSERT_EQ(spans.size(), 3u);
  const auto& root = spans[0];
  EXPECT_EQ(root["traceId"], ev->trace_id);
  EXPECT_EQ(root["parentSpanId"], "00f067aa0ba902b7");
  EXPECT_EQ(root["startTimeUnixNano"], "1700000000000000000");
  EXPECT_TRUE(root["endTimeUnixNano"].is_string());
  EXPECT_EQ(root["kind"], 2);
  std::map<std::string, json> attrs;
  for (const auto& a : root["attributes"]) {
    ASSERT_EQ(a["value"].size(), 1u);
    attrs[a["key"]] = a["value"];
  }
  EXPECT_EQ(attrs["gen_ai.system"]["stringValue"], "openai");
  EXPECT_EQ(attrs["gen_ai.usage.input_tokens"]["intValue"], "7");
  EXPECT_EQ(attrs["gen_ai.usage.output_tokens"]["intValue"], "3");
  EXPECT_EQ(attrs["gen_ai.response.model"]["stringValue"], "gpt-up");
  EXPECT_EQ(attrs["metadata.user_api_key_hash"]["stringValue"], std::string(64, 'a'));
  EXPECT_EQ(spans[1]["name"], "auth");
  EXPECT_EQ(spans[1]["parentSpanId"], "1111111111111111");
  EXPECT_EQ(spans[1]["spanId"].get<std::string>().size(), 16u);
  EXPECT_EQ(spans[2]["spanId"], "2222222222222222");
  EXPECT_EQ(spans[2]["kind"], 3);
  EXPECT_EQ(j["resourceSpans"][0]["resource"]["attributes"][0]["value"]["stringValue"], "svc");
}

TEST(CallbackFormats, LangfuseTraceAndGenerationPerEvent) {
  auto ev = std::make_shared<const callback_event>(sample_event());
  auto j = langfuse_batch_json({ev}, "2026-01-01T00:00:00.000Z");
  ASSERT_EQ(j["batch"].size(), 2u);
  EXPECT_EQ(j["batch"][0]["type"], "trace-create");
  EXPECT_EQ(j["batch"][1]["type"], "generation-create");
  EXPECT_NE(j["batch"][0]["id"], j["batch"][1]["id"]);
  const auto& g = j["batch"][1]["body"];
  EXPECT_EQ(g["traceId"], j["batch"][0]["body"]["id"]);
  EXPECT_EQ(g["usage"]["input"], 7);
  EXPECT_EQ(g["usage"]["unit"], "TOKENS");
  EXPECT_EQ(g["startTime"], "2023-11-14T22:13:20.000Z");
  EXPECT_EQ(g["input"][0]["content"], "hi");
  EXPECT_EQ(g["output"]["content"], "hello");
}

TEST(CallbackFormats, WithoutContentNothingOfThePromptLeaks) {
  auto e = sample_event();
  e.request_body.reset();
  e.response.reset();
  auto ev = std::make_shared<const callback_event>(e);
  for (const std::string& s : {otlp_traces_json({ev}, "s").dump(), langfuse_batch_json({ev}, "x").dump(),
                               generic_payload_json({ev}).dump()}) {
    EXPECT_EQ(s.find("hi\""), std::string::npos) << s;
    EXPECT_EQ(s.find("hello"), std::string::npos) << s;
  }
}

std::function<std::string(const char*)> env_of(std::map<std::string, std::string> m) {
  return [m = std::move(m)](const char* k) {
    auto it = m.find(k);
    return it == m.end() ? std::string() : it->second;
  };
}

// What the generic_api payload was when it was a DOM dumped by nlohmann: the text writer
// must give the same bytes (member order, escapes, number spellings).
json generic_as_dom(const callback_event& e) {
  json meta = json::object();
  const std::pair<const char*, const std::string*> caller[] = {
      {"user_api_key_hash", &e.key_hash},       {"user_api_key_alias", &e.key_alias},
      {"user_api_key_team_id", &e.team_id},     {"user_api_key_team_alias", &e.team_alias},
      {"user_api_key_user_id", &e.user_id},     {"user_api_key_end_user_id", &e.end_user}};
  for (const auto& [k, v] : caller) {
    if (!v->empty()) {
      meta[k] = *v;
    }
  }
  json p = {{"id", e.call_id},
            {"trace_id", e.trace_id.empty() ? e.call_id : e.trace_id},
            {"call_type", e.call_type},
            {"stream", e.stream},
            {"status", e.success ? "success" : "failure"},
            {"response_cost", e.cost},
            {"prompt_tokens", e.prompt_tokens},
            {"completion_tokens", e.completion_tokens},
            {"total_tokens", e.prompt_tokens + e.completion_tokens},
            {"startTime", "@startTime@"},  // spelled by exact_seconds, below
            {"endTime", "@endTime@"},
            {"completionStartTime", "@completionStartTime@"},
            {"model", e.model.empty() ? e.requested_model : e.model},
            {"requested_model", e.requested_model},
            {"model_id", e.model_id},
            {"model_group", e.model_group},
            {"custom_llm_provider", e.provider},
            {"api_base", e.api_base},
            {"cache_hit", e.cache_hit},
            {"metadata", meta},
            {"end_user", e.end_user},
            {"model_parameters", model_parameters_json(e)},
            {"status_code", e.status}};
  if (!e.success) {
    p["error_str"] = e.error_message;
    p["error_information"] = {{"error_class", e.error_class}, {"error_code", std::to_string(e.status)}};
  }
  return p;
}

// Unix nanoseconds as the payload spells its times: the exact decimal seconds, without
// trailing zeros but one ("1700000000.0012", "1700000000.0").
std::string exact_seconds(std::int64_t ns) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%lld.%09lld", static_cast<long long>(ns / 1'000'000'000),
                static_cast<long long>(ns % 1'000'000'000));
  std::string s = buf;
  while (s.back() == '0' && s[s.size() - 2] != '.') {
    s.pop_back();
  }
  return s;
}

std::string generic_as_dom_text(const callback_event& e) {
  std::string s = generic_as_dom(e).dump(-1, ' ', false, json::error_handler_t::replace);
  const std::pair<const char*, std::int64_t> times[] = {
      {"\"@startTime@\"", e.start_ns},
      {"\"@endTime@\"", e.end_ns},
      {"\"@completionStartTime@\"", e.first_token_ns != 0 ? e.first_token_ns : e.end_ns}};
  for (const auto& [mark, ns] : times) {
    const auto at = s.find(mark);
    if (at != std::string::npos) {
      s.replace(at, std::strlen(mark), exact_seconds(ns));
    }
  }
  s.pop_back();
  s += ",\"messages\":";
  if (!e.input_raw.empty()) {
    s += e.input_raw;
  } else if (e.request_body) {
    s += json::parse(*e.request_body)["messages"].dump();
  } else {
    s += "null";
  }
  s += ",\"response\":";
  if (!e.response) {
    s += "null";
  } else if (json::accept(*e.response)) {
    s += *e.response;
  } else {
    s += json(*e.response).dump(-1, ' ', false, json::error_handler_t::replace);
  }
  return s + "}";
}

TEST(CallbackFormats, GenericPayloadTextIsTheObjectsDump) {
  auto ok = sample_event();
  ok.input_raw = R"([{"role":"user","content":"hi"}])";
  ok.request_body.reset();
  ok.model_parameters = {{"max_tokens", "16"}, {"n", "1"}, {"seed", "-5"}, {"temperature", "0.70"}};
  ok.cost = 0.000123;
  ok.first_token_ns = ok.start_ns + 1'234'567;
  ok.team_id = "team \"blue\"\\x";
  ok.end_user = "ctl\x01\x1f\t\n\r\b\f\x7f";

  auto failed = sample_event();  // the prompt taken from the body; a stream's text as the answer
  failed.success = false;
  failed.status = 429;
  failed.error_class = "RateLimitError";
  failed.error_message = "caf\xc3\xa9 \xe2\x82\xac and a cut \xe2\x82 byte";  // UTF-8, then invalid UTF-8
  failed.response = "42 is not JSON here, \"quoted\"";
  failed.stream = true;
  failed.cache_hit = true;
  failed.cost = 1e-7;
  failed.model.clear();
  failed.trace_id.clear();
  failed.model_parameters = {{"frequency_penalty", "1e-2"}, {"stop", R"([ "a", "\u00e9" ])"}, {"top_p", "1"}};

  auto bare = callback_event{};  // nothing filled: no content, no parameters
  bare.response = "{\"cut\": ";  // a body cut at the bound: not JSON, sent as a string

  for (const auto& e : {ok, failed, bare}) {
    auto ev = std::make_shared<const callback_event>(e);
    const auto texts = generic_payload_texts({ev});
    ASSERT_EQ(texts.size(), 1u);
    EXPECT_EQ(texts[0], generic_as_dom_text(e));
    EXPECT_TRUE(json::accept(texts[0])) << texts[0];
  }
  // The array and ndjson encoders join the same texts.
  auto t = make_callback_target("generic_api", json::object(), env_of({{"GENERIC_LOGGER_ENDPOINT", "http://h/x"}}));
  ASSERT_TRUE(t.target);
  auto a = std::make_shared<const callback_event>(ok);
  auto b = std::make_shared<const callback_event>(failed);
  EXPECT_EQ(t.target->encode({a, b}), "[" + generic_as_dom_text(ok) + "," + generic_as_dom_text(failed) + "]");
  EXPECT_EQ(t.target->encode({}), "[]");
  // What is written at `finish` (from the request's fields) is the same text.
  ASSERT_TRUE(t.target->text);
  EXPECT_EQ(t.target->text->before_first, '[');
  std::string direct;
  append_generic_payload(direct, fields_of(ok));
  EXPECT_EQ(direct, generic_as_dom_text(ok));
  // Fields of a request that has none of them are empty views without data (a refused
  // request: no deployment, no caller, no content).
  std::string none;
  append_generic_payload(none, callback_fields{});
  EXPECT_EQ(none, generic_as_dom_text(callback_event{}));
}


// Strings are scanned eight bytes at a time: every byte that needs an escape (or is not
// ASCII), at every position of a word and across word ends, is written as nlohmann would.
TEST(CallbackFormats, GenericPayloadEscapesAtEveryPosition) {
  const std::string specials[] = {"\"", "\\", std::string(1, '\x01'), "\x1f", "\n", "\x7f", " ", "~",
                                  "\xc3\xa9", "\xe2\x82\xac", "\xff"};
  // Strings of every length up to three 16-byte blocks and a tail, with the special byte
  // at every position: in a whole block, in the overlapping last block, in the bytes before.
  for (const auto& sp : specials) {
    for (std::size_t len = 0; len <= 50; ++len) {
      for (std::size_t at = 0; at <= len; ++at) {
        auto e = sample_event();
        e.team_id = std::string(at, 'a') + sp + std::string(len - at, 'b');
        e.key_alias = sp + std::string(at, 'k');
        e.user_id = std::string(len, 'u');  // nothing to escape
        e.team_alias = std::string(at, 'x') + sp + std::string(len - at, 'y') + sp;  // two of them
        std::string direct;
        append_generic_payload(direct, fields_of(e));
        ASSERT_EQ(direct, generic_as_dom_text(e))
            << "special " << json(sp).dump(-1, ' ', false, json::error_handler_t::replace) << " at " << at << " of " << len;
      }
    }
  }
}

TEST(CallbackFormats, GenericPayloadCountsAreSpelledAsNlohmannDoes) {
  for (const long long n : {0LL, 1LL, 9LL, 10LL, 42LL, 99LL, 100LL, 101LL, 500LL, 999LL, 1000LL, 65'536LL,
                            1'234'567'890'123LL, -1LL, -999LL}) {
    auto e = sample_event();
    e.prompt_tokens = n;
    e.completion_tokens = n == 0 ? 999 : 1;
    e.status = static_cast<int>(n % 600);
    std::string direct;
    append_generic_payload(direct, fields_of(e));
    ASSERT_EQ(direct, generic_as_dom_text(e)) << n;
  }
}

TEST(CallbackFormats, GenericPayloadTimesAreExactSeconds) {
  auto e = sample_event();  // 1700000000 s and 5 ms
  e.first_token_ns = 1'700'000'000'123'456'789;
  std::string direct;
  append_generic_payload(direct, fields_of(e));
  EXPECT_NE(direct.find("\"startTime\":1700000000.0,"), std::string::npos) << direct;
  EXPECT_NE(direct.find("\"endTime\":1700000000.005,"), std::string::npos) << direct;
  EXPECT_NE(direct.find("\"completionStartTime\":1700000000.123456789,"), std::string::npos) << direct;
  const auto j = json::parse(direct);
  EXPECT_DOUBLE_EQ(j["completionStartTime"].get<double>(), 1700000000.123456789);
  e.start_ns = 999'999'999;  // under a second: "0.999999999"
  e.end_ns = 1;
  e.first_token_ns = 0;
  std::string small;
  append_generic_payload(small, fields_of(e));
  EXPECT_NE(small.find("\"startTime\":0.999999999,"), std::string::npos) << small;
  EXPECT_NE(small.find("\"endTime\":0.000000001,"), std::string::npos) << small;
}

TEST(CallbackTargets, OtelEndpointAndHeadersFromTheEnvironment) {
  auto t = make_callback_target(
      "otel", json::object(),
      env_of({{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"},
              {"OTEL_EXPORTER_OTLP_HEADERS", "api-key=abc%20def, x-team = blue ,broken"}}));
  ASSERT_TRUE(t.target) << t.error;
  EXPECT_EQ(t.target->url, "http://collector:4318/v1/traces");
  EXPECT_EQ(t.target->headers, (upstream::header_list{{"api-key", "abc def"}, {"x-team", "blue"}}));
  auto grpc = make_callback_target("otel", json::object(),
                                   env_of({{"OTEL_EXPORTER_OTLP_ENDPOINT", "grpc://collector:4317"}}));
  EXPECT_FALSE(grpc.target);
  EXPECT_NE(grpc.error.find("http(s)"), std::string::npos);
}

TEST(CallbackTargets, LangfuseNeedsItsKeysAndSendsBasicAuth) {
  auto missing = make_callback_target("langfuse", json::object(), env_of({{"LANGFUSE_PUBLIC_KEY", "pk"}}));
  EXPECT_FALSE(missing.target);
  auto t = make_callback_target("langfuse", json::object(),
                                env_of({{"LANGFUSE_PUBLIC_KEY", "pk"}, {"LANGFUSE_SECRET_KEY", "sk"},
                                        {"LANGFUSE_HOST", "http://lf:3000/"}}));
  ASSERT_TRUE(t.target) << t.error;
  EXPECT_EQ(t.target->url, "http://lf:3000/api/public/ingestion");
  EXPECT_EQ(t.target->headers, (upstream::header_list{{"authorization", "Basic cGs6c2s="}}));
}

TEST(CallbackTargets, GenericApiFromCallbackSettings) {
  json settings = {{"audit", {{"callback_type", "generic_api"},
                              {"endpoint", "https://logs.example/in"},
                              {"headers", {{"Authorization", "Bearer t"}}},
                              {"event_types", {"llm_api_failure"}}}}};
  auto t = make_callback_target("audit", settings, env_of({}));
  ASSERT_TRUE(t.target) << t.error;
  EXPECT_EQ(t.target->url, "https://logs.example/in");
  EXPECT_EQ(t.target->headers, (upstream::header_list{{"Authorization", "Bearer t"}}));
  EXPECT_FALSE(t.target->on_success);
  EXPECT_TRUE(t.target->on_failure);
  settings["audit"]["log_format"] = "xml";
  EXPECT_FALSE(make_callback_target("audit", settings, env_of({})).target);
  EXPECT_FALSE(make_callback_target("generic_api", json::object(), env_of({})).target) << "no endpoint";
  auto env = make_callback_target("generic_api", json::object(),
                                  env_of({{"GENERIC_LOGGER_ENDPOINT", "http://h/x"}, {"GENERIC_LOGGER_HEADERS", "a=1"}}));
  ASSERT_TRUE(env.target);
  EXPECT_EQ(env.target->headers, (upstream::header_list{{"a", "1"}}));
  EXPECT_FALSE(make_callback_target("datadog", json::object(), env_of({})).target);
}

struct alert_fixture {
  fake_sender_clock* clock;
  std::unique_ptr<recording_upstream> up;
  std::unique_ptr<alerter> a;
  explicit alert_fixture(alerting_settings s) {
    auto c = std::make_unique<fake_sender_clock>();
    clock = c.get();
    up = std::make_unique<recording_upstream>(*c);
    sender_options o;
    o.backoff_base = 100ms;
    a = std::make_unique<alerter>(std::move(s), *up, std::move(c), o);
  }
  // Runs the sender until `posts` POSTs have been delivered or given up.
  void deliver(std::uint64_t posts) {
    clock->on_wait = [this, posts] {
      if (a->stats().sent + a->stats().failed >= posts) {
        a->stop();
      }
    };
    run_coro([this] { return a->run(); });
  }
};

alerting_settings both_channels() {
  alerting_settings s;
  s.slack_url = "http://slack.test/hook";
  s.webhook_url = "http://webhook.test/in";
  s.outage_ttl = 60s;
  s.budget_ttl = 3600s;
  return s;
}

TEST(Alerter, OneAlertPerIncidentAndWindow) {
  alert_fixture f(both_channels());
  auto cooled = [] { return alert{"cooldown_deployment", "dep-1", "cooled", json::object()}; };
  EXPECT_TRUE(f.a->raise(cooled()));
  f.clock->t += 59s;
  EXPECT_FALSE(f.a->raise(cooled())) << "same incident within the window";
  EXPECT_TRUE(f.a->raise(alert{"cooldown_deployment", "dep-2", "other", json::object()}));
  f.clock->t += 1s;
  EXPECT_TRUE(f.a->raise(cooled())) << "a new window";
  EXPECT_EQ(f.a->stats().raised, 3u);
  EXPECT_EQ(f.a->stats().suppressed, 1u);
  f.deliver(6);
  ASSERT_EQ(f.up->seen.size(), 6u) << "each alert to Slack and to the webhook";
  EXPECT_EQ(f.up->seen[0].url, "http://slack.test/hook");
  EXPECT_EQ(json::parse(f.up->seen[0].body)["text"], "cooled");
  EXPECT_EQ(f.up->seen[1].url, "http://webhook.test/in");
  EXPECT_EQ(json::parse(f.up->seen[1].body)["alert_type"], "cooldown_deployment");
  EXPECT_EQ(f.a->stats().sent, 6u);
}

TEST(Alerter, SoftBudgetOncePerBudgetWindowWithLiteLLMsWebhookFields) {
  auto s = both_channels();
  s.slack_url.clear();
  alert_fixture f(s);
  f.a->soft_budget_crossed("key", std::string(64, 'b'), "my-key", 1.5, 1.0, 10.0);
  f.clock->t += 3599s;
  f.a->soft_budget_crossed("key", std::string(64, 'b'), "my-key", 2.5, 1.0, 10.0);
  f.deliver(1);
  ASSERT_EQ(f.up->seen.size(), 1u);
  auto j = json::parse(f.up->seen[0].body);
  EXPECT_EQ(j["event"], "soft_budget_crossed");
  EXPECT_EQ(j["event_group"], "key");
  EXPECT_EQ(j["token"], std::string(64, 'b'));
  EXPECT_EQ(j["key_alias"], "my-key");
  EXPECT_EQ(j["spend"], 1.5);
  EXPECT_EQ(j["soft_budget"], 1.0);
  EXPECT_EQ(j["max_budget"], 10.0);
}

TEST(Alerter, AlertTypesFilterAndDeliveryRetries) {
  auto s = both_channels();
  s.slack_url.clear();
  s.types = {"db_exceptions"};
  alert_fixture f(s);
  f.a->soft_budget_crossed("team", "t1", "", 2, 1, std::nullopt);
  EXPECT_EQ(f.a->stats().raised, 0u) << "budget_alerts not in alert_types";
  f.a->database_error("postgres unreachable: connection refused");
  f.up->script = {0, 503, 200};
  f.deliver(1);
  EXPECT_EQ(f.up->seen.size(), 3u);
  EXPECT_EQ(f.a->stats().sent, 1u);
  EXPECT_EQ(f.clock->waits[0], 100ms);
  EXPECT_EQ(f.clock->waits[1], 200ms);
}

// An alert raised while another's delivery backs off wakes the clock; the retry still
// waits its whole back-off.
TEST(Alerter, ANewAlertDoesNotCutTheBackoffShort) {
  auto s = both_channels();
  s.slack_url.clear();
  alert_fixture f(s);  // back-off 100 ms
  f.up->script = {503, 200};
  f.a->database_error("first");
  bool raised = false;
  f.clock->during_wait = [&] {
    if (!raised && f.up->seen.size() == 1) {
      raised = true;
      EXPECT_TRUE(f.a->raise(alert{"cooldown_deployment", "dep-1", "cooled", json::object()}));  // wakes the clock
    }
  };
  f.deliver(1);
  ASSERT_TRUE(raised);
  ASSERT_GE(f.up->seen.size(), 2u);
  EXPECT_GE(f.up->seen[1].at - f.up->seen[0].at, 100ms) << "the retry came before its back-off ended";
}

TEST(Alerter, SettingsFromTheConfig) {
  config::config cfg;
  cfg.general.raw = {{"alerting", {"slack", "webhook", "email"}},
                     {"alerting_threshold", 12},
                     {"alert_types", {"llm_too_slow"}},
                     {"alerting_args", {{"budget_alert_ttl", 10}, {"outage_alert_ttl", 5}, {"minor_outage_alert_threshold", 2}}}};
  std::vector<std::string> warnings;
  auto s = alerting_settings::from(cfg, env_of({{"SLACK_WEBHOOK_URL", "https://hooks.slack.test/x"}}), warnings);
  EXPECT_EQ(s.slack_url, "https://hooks.slack.test/x");
  EXPECT_TRUE(s.webhook_url.empty());
  EXPECT_EQ(warnings.size(), 2u) << "webhook without WEBHOOK_URL, email unsupported";
  EXPECT_EQ(s.threshold_s, 12);
  EXPECT_TRUE(s.wants("llm_too_slow"));
  EXPECT_FALSE(s.wants("budget_alerts"));
  EXPECT_EQ(s.budget_ttl, 10s);
  EXPECT_EQ(s.outage_ttl, 5s);
  EXPECT_EQ(s.minor_outage_threshold, 2);
}

}  // namespace
}  // namespace switchyard::pipeline
