// Logging callbacks (litellm_settings.callbacks / success_callback / failure_callback):
// `otel` (OTLP/HTTP JSON traces), `langfuse` (its public ingestion API) and `generic_api`
// (JSON batches to any URL). See docs/observability.md, "Callbacks".
//
// The `finish` observer only copies the request into a `callback_event` and pushes it on
// each configured callback's bounded queue (full: the event is dropped and counted). A
// sender coroutine per callback, on the loop, takes batches (at most `batch_size` events,
// or what has waited `flush_interval`), encodes them and POSTs them with the gateway's
// asynchronous upstream client, retrying with exponential backoff; a batch that still fails
// is dropped and counted. Nothing here slows or fails a request.
//
// Owner: app/. Thread: the loop thread. Never blocks.
#pragma once
#include "switchyard/core/asio.hpp"
#include "switchyard/metrics/registry.hpp"
#include "switchyard/pipeline/stage.hpp"
#include "switchyard/pipeline/upstream_caller.hpp"
#include "switchyard/spend/pricer.hpp"

#include <nlohmann/json.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace switchyard::pipeline {

struct request_ctx;

// What a callback is told about one finished request: a copy (no reference to the request).
// Times are Unix nanoseconds (system clock).
struct callback_event {
  std::string call_id;  // x-litellm-call-id
  std::string call_type;  // LiteLLM's: "acompletion", "aembedding", ...
  std::string route;      // "/chat/completions"
  std::string requested_model;
  std::string model;        // the provider's model name of the answering deployment
  std::string model_group;  // its model_name
  std::string model_id;
  std::string provider;  // "openai", "anthropic", ...
  std::string api_base;
  bool stream = false;
  int status = 0;
  bool success = false;
  bool cache_hit = false;
  std::string error_class;  // LiteLLM's exception name ("RateLimitError"), empty on success
  std::string error_message;
  // The caller (all empty with redact_user_api_key_info).
  std::string key_hash, key_alias, team_id, team_alias, user_id;
  std::string end_user;  // the request's `user` / x-litellm-end-user-id (redacted too)
  long long prompt_tokens = 0, completion_tokens = 0;
  double cost = 0;
  std::int64_t start_ns = 0, end_ns = 0, first_token_ns = 0;  // first_token_ns 0: none
  // Tracing (otel): the request span, its parent from the client, its child spans.
  std::string trace_id, parent_span_id, span_id;
  struct stage_span {
    std::string name;
    std::int64_t start_ns = 0, end_ns = 0;
  };
  std::vector<stage_span> stages;
  struct attempt_span {
    std::string span_id, model, model_id, model_group, provider, api_base, error;
    std::int64_t start_ns = 0, end_ns = 0;
    int status = 0, retry = 0, fallback = 0;
    bool mock = false;
    long long prompt_tokens = 0, completion_tokens = 0;
  };
  std::vector<attempt_span> attempts;
  // Message content (all unset with turn_off_message_logging).
  // The request's messages / prompt / input member as received (valid JSON, checked by
  // the request's scan), when it fits max_content_bytes: spliced into payloads unparsed.
  std::string input_raw;
  // Only when input_raw could not be taken: the request body as sent (its first
  // max_content_bytes), parsed at encoding time.
  std::optional<std::string> request_body;
  // The answer kept for the request (its first max_content_bytes).
  std::optional<std::string> response;
  // `response` is the whole answer as the gateway sent it, JSON (an adapter's translation):
  // spliced into payloads without checking it again.
  bool response_is_json = false;
  // The request's sampling parameters (temperature, max_tokens, ...) present in its body:
  // name and JSON text as received (checked by the request's scan), in name order.
  std::vector<std::pair<std::string_view, std::string>> model_parameters;
};

// The sampling parameters as a JSON object (temperature, max_tokens, ...).
nlohmann::json model_parameters_json(const callback_event& e);


struct event_options {
  bool log_content = true;          // false: litellm_settings.turn_off_message_logging
  bool redact_caller = false;       // litellm_settings.redact_user_api_key_info
  std::string master_key_hash;      // key_hash of master-key requests
  std::size_t max_content_bytes = 64 * 1024;
};

// The event of a finished request (called from `finish`; copies, no I/O).
callback_event event_of(const request_ctx& ctx, spend::pricer& prices, const event_options& o);

// The part of an event a generic_api payload holds, viewed where it lies: in a finished
// request (valid during `finish` only) or in a callback_event. Taken from a request it
// copies nothing but the end user, so a generic_api callback writes its payload at
// `finish` without building an event (docs/observability.md, "Callbacks").
struct callback_fields {
  std::string_view call_id, call_type, requested_model, model, model_group, model_id, provider, api_base;
  bool stream = false, success = false, cache_hit = false, response_is_json = false;
  int status = 0;
  std::string_view error_class, error_message;
  std::string_view key_hash, key_alias, team_id, team_alias, user_id;
  std::string end_user;  // unescaped from the body when it came from there
  long long prompt_tokens = 0, completion_tokens = 0;
  double cost = 0;
  std::int64_t start_ns = 0, end_ns = 0, first_token_ns = 0;
  std::string_view trace_id;
  // As callback_event::model_parameters; at most one of each reported name.
  std::array<std::pair<std::string_view, std::string_view>, 12> params{};
  std::size_t param_count = 0;
  std::string_view input_raw;
  std::optional<std::string_view> request_body, response;
};
callback_fields fields_of(const request_ctx& ctx, spend::pricer& prices, const event_options& o);
callback_fields fields_of(const callback_event& e);
// One generic_api object (LiteLLM's StandardLoggingPayload fields we fill) appended to `out`.
void append_generic_payload(std::string& out, const callback_fields& f);

// The wire formats, pure: one HTTP body per batch.
// OTLP/HTTP JSON ExportTraceServiceRequest: per event a SERVER span (the request) with
// child spans per stage and per provider attempt (CLIENT), GenAI semantic conventions.
nlohmann::json otlp_traces_json(const std::vector<std::shared_ptr<const callback_event>>& batch,
                                const std::string& service_name);
// Langfuse ingestion: {"batch": [trace-create, generation-create per event]}.
// `now_iso` is the envelope timestamp (ISO 8601, UTC).
nlohmann::json langfuse_batch_json(const std::vector<std::shared_ptr<const callback_event>>& batch,
                                   const std::string& now_iso);
// generic_api: a JSON array of LiteLLM StandardLoggingPayload-shaped objects.
nlohmann::json generic_payload_json(const std::vector<std::shared_ptr<const callback_event>>& batch);
// The same as text, one object per event, with the request's input and the answer spliced
// in as received (no parse of either per event): what is POSTed.
std::vector<std::string> generic_payload_texts(const std::vector<std::shared_ptr<const callback_event>>& batch);
// "2026-01-02T03:04:05.678Z" of Unix nanoseconds.
std::string iso_time(std::int64_t unix_ns);

// One configured destination: its name (as listed in the config), what to POST where.
struct callback_target {
  std::string name;  // "otel", "langfuse", "generic_api", or a callback_settings name
  std::string kind;  // "otel", "langfuse", "generic_api"
  std::string url;   // where batches go
  upstream::header_list headers;  // auth and configured headers (Content-Type added)
  bool single = false;            // generic_api log_format single: one event per POST
  bool on_success = true;         // success_callback / callbacks
  bool on_failure = true;         // failure_callback / callbacks
  // callback_settings.<name>.message_logging: false: this destination gets no message
  // content (the prompt and the answer), whatever the other callbacks get.
  bool log_content = true;
  // generic_api: payloads are written at `finish` straight into the batch being filled
  // (callback_sender::push_written), with these bytes around them (0: none).
  struct text_framing {
    char before_first = 0, between = 0, after_each = 0, after_all = 0;
  };
  std::optional<text_framing> text;
  std::function<std::string(const std::vector<std::shared_ptr<const callback_event>>&)> encode;
};

// Builds the target of a callback name from the config's callback_settings (generic_api
// entries) and the environment; an error message when it cannot run (missing endpoint...).
// `env` reads a variable (empty: unset).
struct target_or_error {
  std::optional<callback_target> target;
  std::string error;
};
target_or_error make_callback_target(const std::string& name, const nlohmann::json& callback_settings,
                                     const std::function<std::string(const char*)>& env);

// Sending policy of one callback.
struct sender_options {
  std::size_t queue_capacity = 10'000;  // events waiting; past it new events are dropped
  std::size_t batch_size = 512;         // events per POST
  std::chrono::milliseconds flush_interval{1000};  // a partial batch waits at most this
  int max_retries = 3;                             // after the first try
  std::chrono::milliseconds backoff_base{500};     // 1st retry after base, then x2 ...
  std::chrono::milliseconds backoff_max{30'000};
  std::chrono::milliseconds timeout{10'000};  // per POST
};

// The delay before retry `n` (0-based): base * 2^n, at most `max`.
std::chrono::milliseconds backoff_delay(const sender_options& o, int n);

// How the sender waits: the real steady clock and timers in the gateway, a fake in tests.
class sender_clock {
 public:
  using time_point = std::chrono::steady_clock::time_point;
  virtual ~sender_clock() = default;
  virtual time_point now() const = 0;
  // Waits until `t` or until wake() is called, whichever is first.
  virtual net::awaitable<void> wait_until(time_point t) = 0;
  virtual void wake() = 0;
};
std::unique_ptr<sender_clock> steady_sender_clock(net::any_io_executor ex);

struct sender_stats {
  std::uint64_t queued = 0;   // events accepted
  std::uint64_t sent = 0;     // events in batches the receiver accepted
  std::uint64_t dropped = 0;  // events refused because the queue was full
  std::uint64_t failed = 0;   // events in batches given up after the retries
  std::uint64_t batches = 0;  // batches accepted
  std::uint64_t retries = 0;  // POSTs retried
};

// One callback's queue and sender.
class callback_sender {
 public:
  callback_sender(callback_target target, upstream_caller& up, sender_options opts, std::unique_ptr<sender_clock> clk);
  ~callback_sender();
  callback_sender(const callback_sender&) = delete;
  callback_sender& operator=(const callback_sender&) = delete;

  // Queues the event (never blocks, never throws); false: the queue was full (counted).
  bool push(std::shared_ptr<const callback_event> e) noexcept;
  // Text targets (target().text): `write(std::string&)` appends one payload to the batch
  // being filled. Never blocks or throws; false: the queue was full or writing failed
  // (counted as dropped, the batch left as it was).
  template <class Write>
  bool push_written(Write&& write) noexcept {
    std::size_t mark = 0;
    std::string* out = open_text(mark);
    if (out == nullptr) {
      return false;
    }
    try {
      write(*out);
    } catch (...) {
      return close_text(mark, false);
    }
    return close_text(mark, true);
  }
  // The sender loop: run it with co_spawn on the loop; returns after stop() once the queue
  // is empty or the last batch failed.
  net::awaitable<void> run();
  void stop();

  const callback_target& target() const { return target_; }
  const sender_stats& stats() const { return stats_; }
  std::size_t queue_depth() const { return queue_.size() + text_events_; }

 private:
  net::awaitable<bool> send_batch(std::vector<std::shared_ptr<const callback_event>> batch);
  net::awaitable<bool> send_body(std::string body, std::size_t events);
  std::string* open_text(std::size_t& mark) noexcept;
  bool close_text(std::size_t mark, bool written) noexcept;
  // Text batches waiting, oldest first; the last one is being filled.
  struct text_batch {
    std::string body;
    std::size_t events = 0;
  };

  callback_target target_;
  upstream_caller& up_;
  sender_options opts_;
  std::unique_ptr<sender_clock> clock_;
  std::deque<std::shared_ptr<const callback_event>> queue_;
  std::deque<text_batch> text_batches_;
  std::size_t text_events_ = 0;  // events in text_batches_
  sender_clock::time_point oldest_{};  // when the oldest queued event arrived
  sender_stats stats_;
  bool stopping_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

// The `finish` observer: one event per request, pushed to each sender that wants it
// (success or failure). Registers switchyard_callback_* counters per callback.
class callback_observer final : public observer {
 public:
  callback_observer(std::vector<callback_sender*> senders, spend::pricer& prices, event_options opts,
                    metrics::registry* reg);
  void on_finish(const request_ctx& ctx) noexcept override;

 private:
  std::vector<callback_sender*> senders_;
  spend::pricer& prices_;
  event_options opts_;
};

// Registers the per-callback metrics (read at scrape from the senders' stats).
void register_callback_metrics(metrics::registry& reg, std::vector<const callback_sender*> senders);

// /health/services?service=<name>: one request to the callback's health URL; healthy when
// it answered at all below 500 (reachable, as LiteLLM's check only asks for an answer).
// Returns {"status": "healthy"|"unhealthy", "message"/"error": ...}.
net::awaitable<nlohmann::json> check_callback(const callback_target& t, upstream_caller& up);

}  // namespace switchyard::pipeline
