// The callbacks' queues and senders, their `finish` observer, metrics and reachability check.
#include "switchyard/pipeline/callbacks.hpp"

#include "switchyard/pipeline/request_ctx.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>

namespace switchyard::pipeline {

using json = nlohmann::json;
using event_ptr = std::shared_ptr<const callback_event>;

namespace {

class steady_clock_impl final : public sender_clock {
 public:
  explicit steady_clock_impl(net::any_io_executor ex) : timer_(std::move(ex)) {}
  time_point now() const override { return std::chrono::steady_clock::now(); }
  net::awaitable<void> wait_until(time_point t) override {
    timer_.expires_at(t);
    co_await timer_.async_wait(net::as_tuple(net::use_awaitable));  // cancelled by wake()
  }
  void wake() override { timer_.cancel(); }

 private:
  net::steady_timer timer_;
};

std::string body_excerpt(const std::string& b) {
  std::string s = b.substr(0, std::min<std::size_t>(b.size(), 200));
  std::replace(s.begin(), s.end(), '\n', ' ');
  return s;
}

}  // namespace

std::unique_ptr<sender_clock> steady_sender_clock(net::any_io_executor ex) {
  return std::make_unique<steady_clock_impl>(std::move(ex));
}

std::chrono::milliseconds backoff_delay(const sender_options& o, int n) {
  auto d = o.backoff_base;
  for (int i = 0; i < n && d < o.backoff_max; ++i) {
    d *= 2;
  }
  return std::min(d, o.backoff_max);
}

callback_sender::callback_sender(callback_target target, upstream_caller& up, sender_options opts,
                                 std::unique_ptr<sender_clock> clk)
    : target_(std::move(target)), up_(up), opts_(opts), clock_(std::move(clk)) {
  if (target_.single) {
    opts_.batch_size = 1;
  }
  opts_.batch_size = std::max<std::size_t>(1, opts_.batch_size);
}

callback_sender::~callback_sender() { *alive_ = false; }

bool callback_sender::push(event_ptr e) noexcept {
  try {
    if (stopping_ || queue_.size() >= opts_.queue_capacity) {
      ++stats_.dropped;
      return false;
    }
    if (queue_.empty() && text_events_ == 0) {
      oldest_ = clock_->now();
    }
    queue_.push_back(std::move(e));
    ++stats_.queued;
    if (queue_.size() == opts_.batch_size) {
      clock_->wake();  // a full batch goes now
    }
    return true;
  } catch (...) {
    ++stats_.dropped;
    return false;
  }
}

std::string* callback_sender::open_text(std::size_t& mark) noexcept {
  try {
    if (stopping_ || !target_.text || text_events_ >= opts_.queue_capacity) {
      ++stats_.dropped;
      return nullptr;
    }
    if (text_batches_.empty() || text_batches_.back().events >= opts_.batch_size) {
      text_batches_.emplace_back();
      // About 2 KB a payload; a batch of more grows once or twice.
      text_batches_.back().body.reserve(std::min<std::size_t>(opts_.batch_size, 64) * 2048);
    }
    auto& b = text_batches_.back();
    mark = b.body.size();
    if (const char sep = b.events == 0 ? target_.text->before_first : target_.text->between; sep != 0) {
      b.body += sep;
    }
    return &b.body;
  } catch (...) {
    ++stats_.dropped;
    return nullptr;
  }
}

bool callback_sender::close_text(std::size_t mark, bool written) noexcept {
  auto& b = text_batches_.back();
  try {
    if (written && target_.text->after_each != 0) {
      b.body += target_.text->after_each;
    }
  } catch (...) {
    written = false;
  }
  if (!written) {
    b.body.resize(mark);  // the batch as it was
    ++stats_.dropped;
    return false;
  }
  if (queue_.empty() && text_events_ == 0) {
    oldest_ = clock_->now();
  }
  ++b.events;
  ++text_events_;
  ++stats_.queued;
  if (b.events == opts_.batch_size) {
    clock_->wake();  // a full batch goes now
  }
  return true;
}

void callback_sender::stop() {
  stopping_ = true;
  clock_->wake();
}

net::awaitable<void> callback_sender::run() {
  auto alive = alive_;
  for (;;) {
    const std::size_t pending = queue_.size() + text_events_;
    if (!*alive || (stopping_ && pending == 0)) {
      co_return;
    }
    const bool full = queue_.size() >= opts_.batch_size ||
                      (!text_batches_.empty() && text_batches_.front().events >= opts_.batch_size);
    const auto now = clock_->now();
    if (!full && !stopping_ && (pending == 0 || now < oldest_ + opts_.flush_interval)) {
      // Nothing due: sleep until the oldest event's interval is over (or a push fills a batch).
      const auto until = pending == 0 ? now + opts_.flush_interval : oldest_ + opts_.flush_interval;
      co_await clock_->wait_until(until);
      continue;
    }
    if (!text_batches_.empty()) {
      // The oldest text batch, written at `finish`: only its closing byte is left to add.
      text_batch b = std::move(text_batches_.front());
      text_batches_.pop_front();
      text_events_ -= b.events;
      if (b.events == 0) {
        continue;
      }
      if (target_.text->after_all != 0) {
        b.body += target_.text->after_all;
      }
      co_await send_body(std::move(b.body), b.events);
      continue;
    }
    const std::size_t n = std::min(queue_.size(), opts_.batch_size);
    std::vector<event_ptr> batch(std::make_move_iterator(queue_.begin()),
                                 std::make_move_iterator(queue_.begin() + static_cast<std::ptrdiff_t>(n)));
    queue_.erase(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(n));
    // What stays queued is older than now: it is due at once (oldest_ unchanged) unless empty.
    co_await send_batch(std::move(batch));
  }
}

net::awaitable<bool> callback_sender::send_batch(std::vector<event_ptr> batch) {
  auto alive = alive_;
  const auto n = batch.size();
  std::string body;
  try {
    body = target_.encode(batch);
  } catch (const std::exception& e) {
    spdlog::error("callback {}: could not encode a batch of {} event(s): {}", target_.name, n, e.what());
    stats_.failed += n;
    co_return false;
  }
  batch.clear();
  co_return co_await send_body(std::move(body), n);
}

net::awaitable<bool> callback_sender::send_body(std::string body, std::size_t n) {
  auto alive = alive_;
  for (int attempt = 0;; ++attempt) {
    upstream::request req;
    req.method = "POST";
    req.url = target_.url;
    req.headers = target_.headers;
    req.headers.emplace_back("content-type", "application/json");
    req.body_parts = {std::string_view(body)};  // sent from `body` (kept for the retries), not copied
    req.timeout = opts_.timeout;
    req.connect_timeout = std::min(opts_.timeout, std::chrono::milliseconds{5000});
    auto r = co_await up_.send(std::move(req));
    if (!*alive) {
      co_return false;
    }
    if (r && r->status >= 200 && r->status < 300) {
      stats_.sent += n;
      ++stats_.batches;
      co_return true;
    }
    const bool retryable = !r || r->status == 408 || r->status == 429 || r->status >= 500;
    const std::string why = r ? "HTTP " + std::to_string(r->status) + ": " + body_excerpt(r->body) : r.error().message;
    if (!retryable || attempt >= opts_.max_retries || stopping_) {
      stats_.failed += n;
      spdlog::warn("callback {}: {} event(s) dropped after {} attempt(s) to {}: {}", target_.name, n, attempt + 1,
                   target_.url, why);
      co_return false;
    }
    ++stats_.retries;
    const auto wait = backoff_delay(opts_, attempt);
    spdlog::debug("callback {}: retrying in {} ms: {}", target_.name, wait.count(), why);
    // The whole back-off, whatever wakes the clock meanwhile: a full batch arriving wakes
    // it (for the idle wait in run()), and a retry it cut short would hit a receiver that
    // asked to be left alone (429, 503) at once, as often as batches fill. Only stop()
    // ends it early (the retry then goes once more, and a failure is final).
    const auto until = clock_->now() + wait;
    while (*alive && !stopping_ && clock_->now() < until) {
      co_await clock_->wait_until(until);
    }
    if (!*alive) {
      co_return false;
    }
  }
}

callback_observer::callback_observer(std::vector<callback_sender*> senders, spend::pricer& prices, event_options opts,
                                     metrics::registry*)
    : senders_(std::move(senders)), prices_(prices), opts_(std::move(opts)) {}

void callback_observer::on_finish(const request_ctx& ctx) noexcept {
  try {
    const bool ok = ctx.out.status > 0 && ctx.out.status < 400 && !ctx.out.error;
    const auto wants = [ok](const callback_sender* s) { return ok ? s->target().on_success : s->target().on_failure; };
    bool text = false, events = false;
    for (const auto* s : senders_) {
      if (wants(s)) {
        (s->target().text ? text : events) = true;
      }
    }
    if (text) {
      // generic_api: the payload goes straight into the batch, no event is built.
      const callback_fields f = fields_of(ctx, prices_, opts_);
      std::optional<callback_fields> plain;  // without the content, for message_logging: false
      for (auto* s : senders_) {
        if (wants(s) && s->target().text) {
          const callback_fields* use = &f;
          if (!s->target().log_content) {
            if (!plain) {
              plain = f;
              plain->input_raw = {};
              plain->request_body = {};
              plain->response.reset();
            }
            use = &*plain;
          }
          s->push_written([use](std::string& out) { append_generic_payload(out, *use); });
        }
      }
    }
    if (events) {
      std::shared_ptr<const callback_event> ev, plain;
      for (auto* s : senders_) {
        if (!wants(s) || s->target().text) {
          continue;
        }
        auto& one = s->target().log_content ? ev : plain;
        if (!one) {
          event_options o = opts_;
          o.log_content = o.log_content && s->target().log_content;
          one = std::make_shared<const callback_event>(event_of(ctx, prices_, o));
        }
        s->push(one);
      }
    }
  } catch (const std::exception& e) {
    spdlog::error("callbacks: request {} not logged: {}", ctx.req.call_id, e.what());
  }
}

void register_callback_metrics(metrics::registry& reg, std::vector<const callback_sender*> senders) {
  if (senders.empty()) {
    return;
  }
  auto& events = reg.counter("switchyard_callback_events",
                             "Callback events by outcome: queued, sent (accepted by the receiver), dropped (queue "
                             "full), failed (given up after the retries)",
                             {"callback", "outcome"});
  auto& batches = reg.counter("switchyard_callback_batches", "Callback batches accepted by the receiver", {"callback"});
  auto& retries = reg.counter("switchyard_callback_retries", "Callback POSTs retried", {"callback"});
  auto& depth = reg.gauge("switchyard_callback_queue_depth", "Callback events waiting to be sent", {"callback"});
  struct row {
    const callback_sender* s;
    metrics::series *queued, *sent, *dropped, *failed, *batches, *retries, *depth;
  };
  std::vector<row> rows;
  for (const auto* s : senders) {
    const std::string& n = s->target().name;
    rows.push_back({s, &events.with({n, "queued"}), &events.with({n, "sent"}), &events.with({n, "dropped"}),
                    &events.with({n, "failed"}), &batches.with({n}), &retries.with({n}), &depth.with({n})});
  }
  reg.on_scrape([rows] {
    for (const auto& r : rows) {
      const auto& st = r.s->stats();
      r.queued->set(static_cast<double>(st.queued));
      r.sent->set(static_cast<double>(st.sent));
      r.dropped->set(static_cast<double>(st.dropped));
      r.failed->set(static_cast<double>(st.failed));
      r.batches->set(static_cast<double>(st.batches));
      r.retries->set(static_cast<double>(st.retries));
      r.depth->set(static_cast<double>(r.s->queue_depth()));
    }
  });
}

net::awaitable<json> check_callback(const callback_target& t, upstream_caller& up) {
  upstream::request req;
  req.method = "POST";
  req.url = t.url;
  req.headers = t.headers;
  req.headers.emplace_back("content-type", "application/json");
  // An empty batch: reaches the receiver and passes its auth without logging anything.
  req.body = t.encode({});
  req.timeout = std::chrono::milliseconds{10'000};
  req.connect_timeout = std::chrono::milliseconds{5'000};
  auto r = co_await up.send(std::move(req));
  if (!r) {
    co_return json{{"status", "unhealthy"}, {"error", t.name + " not reachable at " + t.url + ": " + r.error().message}};
  }
  if (r->status >= 400) {
    co_return json{{"status", "unhealthy"},
                   {"error", t.name + " at " + t.url + " answered HTTP " + std::to_string(r->status) + ": " +
                                 body_excerpt(r->body)}};
  }
  co_return json{{"status", "healthy"},
                 {"message", t.name + " reachable at " + t.url + " (HTTP " + std::to_string(r->status) + ")"}};
}

}  // namespace switchyard::pipeline
