#include "responses_call.hpp"

#include "respond.hpp"

#include "switchyard/core/ids.hpp"
#include "switchyard/core/json_get.hpp"
#include "switchyard/spend/record.hpp"
#include "switchyard/upstream/sse_parser.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <map>

namespace switchyard::pipeline {

using json = nlohmann::json;
using clock = std::chrono::steady_clock;
using providers::call_type;

namespace {

// The request members a Response object echoes (the rest of the request is not copied).
constexpr const char* echoed_members[] = {"instructions", "max_output_tokens", "metadata", "parallel_tool_calls",
                                          "previous_response_id", "reasoning", "store", "temperature", "text",
                                          "tool_choice", "tools", "top_p", "truncation", "user"};

providers::response_meta make_meta(request_ctx& ctx) {
  providers::response_meta m;
  m.id = "resp_" + core::random_hex(24);
  m.created_at = static_cast<long long>(std::time(nullptr));
  m.model = ctx.requested_model;
  m.item_prefix = core::random_hex(12);
  const json& req = ctx.full_body();
  for (const char* k : echoed_members) {
    if (auto it = req.find(k); it != req.end() && !it->is_null()) {
      m.request[k] = *it;
    }
  }
  return m;
}

// The text of a Response's output messages (for stored prompts).
std::string output_text_of(const json& response) {
  std::string s;
  auto out = response.find("output");
  if (out == response.end() || !out->is_array()) {
    return s;
  }
  for (const auto& it : *out) {
    if (!it.is_object() || core::string_or(it, "type") != "message" || !it.contains("content") || !it["content"].is_array()) {
      continue;
    }
    for (const auto& p : it["content"]) {
      if (core::string_or(p, "type") == "output_text" && p.contains("text") && p["text"].is_string()) {
        s += p["text"].get_ref<const std::string&>();
      }
    }
  }
  return s;
}

void keep_text(request_ctx& ctx, std::string_view text) {
  ctx.kept_bytes = text.size();
  ctx.kept_response.assign(text.substr(0, std::min(text.size(), spend::max_stored_bytes)));
}

// Every `"<from>"` in `s` becomes `"<to>"` (ids are plain ASCII: no escapes to mind).
void replace_quoted(std::string& s, const std::string& from, const std::string& to) {
  if (from.empty()) {
    return;
  }
  const std::string f = "\"" + from + "\"";
  const std::string t = "\"" + to + "\"";
  for (auto pos = s.find(f); pos != std::string::npos; pos = s.find(f, pos + t.size())) {
    s.replace(pos, f.size(), t);
  }
}

// The top-level sequence_number of a Responses event's JSON text, -1 when it has none.
// Found by its key: a quote inside a string value is escaped, so `"sequence_number"`
// followed by a colon occurs only as a member name (and no nested object has one).
long long sequence_number_of(std::string_view data) {
  static constexpr std::string_view key = "\"sequence_number\"";
  auto at = data.find(key);
  if (at == std::string_view::npos) {
    return -1;
  }
  at += key.size();
  while (at < data.size() && (data[at] == ' ' || data[at] == '\t' || data[at] == '\n' || data[at] == '\r')) {
    ++at;
  }
  if (at >= data.size() || data[at] != ':') {
    return -1;
  }
  ++at;
  while (at < data.size() && (data[at] == ' ' || data[at] == '\t' || data[at] == '\n' || data[at] == '\r')) {
    ++at;
  }
  long long n = 0;
  const auto begin = at;
  while (at < data.size() && data[at] >= '0' && data[at] <= '9' && at - begin < 15) {
    n = n * 10 + (data[at++] - '0');
  }
  return at == begin ? -1 : n;
}

bool drop_params_of(const config::config& cfg, const request_ctx& ctx, const config::deployment& d) {
  bool drop = cfg.litellm.drop_params;
  if (auto dp = ctx.body.find("drop_params"); dp != ctx.body.end() && dp->is_boolean()) {
    drop = dp->get<bool>();
  }
  if (d.litellm_params.is_object()) {
    if (auto dp = d.litellm_params.find("drop_params"); dp != d.litellm_params.end() && dp->is_boolean()) {
      drop = dp->get<bool>();
    }
  }
  return drop;
}

// A streamed answer turned into the client's Responses events, read by relay().
class event_relay {
 public:
  virtual ~event_relay() = default;
  // Upstream bytes (any split) -> events appended to `out`. An error ends the stream.
  virtual core::result<void> feed(std::string_view bytes, std::string& out) = 0;
  // The upstream body ended: the last events. An error when it ended too early.
  virtual core::result<void> finish(std::string& out) = 0;
  // The stream failed after its head: the events that say so.
  virtual void fail(const core::error& e, std::string& out) = 0;
  // Only the first n events of the last feed() were sent (a budget cut the rest).
  virtual void kept(std::size_t n) { (void)n; }
  virtual providers::usage tokens() const = 0;
};

// An OpenAI/Azure Responses stream, relayed event by event; only the response id changes.
class native_relay final : public event_relay {
 public:
  // `previous`: the provider's id of previous_response_id and the client's name for it
  // (the echo in the Response says what the client sent).
  native_relay(const config::deployment& d, bool keep_text, std::pair<std::string, std::string> previous)
      : d_(d), keep_text_(keep_text), previous_(std::move(previous)) {}

  core::result<void> feed(std::string_view bytes, std::string& out) override {
    events_.clear();
    seq_before_feed_ = last_seq_;
    parser_.feed(bytes, events_);
    if (parser_.pending() > (16u << 20)) {
      return core::make_error(core::errc::upstream_error, std::string(d_.provider->exception_label) +
                                                              " - a stream event larger than 16 MB");
    }
    fed_seqs_.clear();
    for (auto& ev : events_) {
      const bool lifecycle = ev.event.rfind("response.", 0) == 0 && ev.event.find('.', 9) == std::string::npos;
      if (upstream_id_.empty() && lifecycle) {
        auto j = json::parse(ev.data, nullptr, false);
        if (j.is_object() && j.contains("response") && j["response"].is_object()) {
          if (auto id = j["response"].find("id"); id != j["response"].end() && id->is_string()) {
            upstream_id_ = id->get<std::string>();
            encoded_ = providers::encode_response_id(d_.provider->name, d_.id, upstream_id_);
          }
        }
      }
      replace_quoted(ev.data, upstream_id_, encoded_);
      replace_quoted(ev.data, previous_.first, previous_.second);
      if (const long long seq = sequence_number_of(ev.data); seq >= 0) {
        fed_seqs_.push_back(seq);
      } else {
        fed_seqs_.push_back(fed_seqs_.empty() ? last_seq_ : fed_seqs_.back());
      }
      if (ev.event == "response.created" || ev.event == "response.in_progress") {
        // The Response as the provider last described it: what response.failed says
        // should the stream break.
        auto j = json::parse(ev.data, nullptr, false);
        if (j.is_object() && j.contains("response") && j["response"].is_object()) {
          snapshot_ = std::move(j["response"]);
        }
      } else if (ev.event == "response.output_item.done") {
        auto j = json::parse(ev.data, nullptr, false);
        if (j.is_object() && j.contains("item") && j.contains("output_index") && j["output_index"].is_number_unsigned() &&
            j["output_index"].get<std::size_t>() < 4096) {
          done_items_[j["output_index"].get<std::size_t>()] = std::move(j["item"]);
        }
      }
      if (ev.event == "response.completed" || ev.event == "response.incomplete" || ev.event == "response.failed") {
        terminal_ = true;
        final_relayed_ = true;
        auto j = json::parse(ev.data, nullptr, false);
        if (j.is_object() && j.contains("response") && j["response"].is_object()) {
          usage_ = providers::usage_of_response(j["response"].value("usage", json()));
          if (keep_text_) {
            text_ = output_text_of(j["response"]);
          }
          if (ev.event == "response.failed") {
            const auto& err = j["response"].value("error", json());
            error_ = core::make_error(core::errc::upstream_error,
                                      std::string(d_.provider->exception_label) + " - " +
                                          core::string_or(err, "message", "response failed"));
          }
        }
      } else if (ev.event == "error") {
        terminal_ = true;
        auto j = json::parse(ev.data, nullptr, false);
        error_ = core::make_error(core::errc::upstream_error,
                                  std::string(d_.provider->exception_label) + " - " +
                                      core::string_or(j, "message", ev.data));
        relayed_error_ = true;
      }
      if (!ev.event.empty()) {
        out += "event: ";
        out += ev.event;
        out += '\n';
      }
      out += "data: ";
      out += ev.data;
      out += "\n\n";
    }
    if (!fed_seqs_.empty()) {
      last_seq_ = fed_seqs_.back();
    }
    return {};
  }

  void kept(std::size_t n) override {
    // Only the first n events of the last feed reached the client: the failure events
    // continue from the last of them.
    if (n < fed_seqs_.size()) {
      last_seq_ = n == 0 ? seq_before_feed_ : fed_seqs_[n - 1];
    }
  }

  core::result<void> finish(std::string&) override {
    if (error_) {
      return *error_;
    }
    if (!terminal_) {
      return core::make_error(core::errc::upstream_unreachable,
                              std::string(d_.provider->exception_label) +
                                  " - the stream ended before response.completed");
    }
    return {};
  }

  // Ends the stream as the translated path (and OpenAI) does: an `error` event, then
  // response.failed with the Response so far; their sequence numbers continue the
  // provider's. Nothing when the provider's own end (response.failed, ...) went out, and
  // only response.failed after the provider's own error event.
  void fail(const core::error& e, std::string& out) override {
    if (final_relayed_) {
      return;
    }
    if (!relayed_error_) {
      json ev{{"type", "error"},
              {"code", "server_error"},
              {"message", e.message},
              {"param", nullptr},
              {"sequence_number", ++last_seq_}};
      out += "event: error\ndata: " + ev.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n";
    }
    json r = snapshot_.is_object() ? std::move(snapshot_) : json{{"id", encoded_}, {"object", "response"}};
    r["status"] = "failed";
    r["error"] = {{"code", "server_error"}, {"message", e.message}};
    json output = json::array();
    for (auto& [index, item] : done_items_) {
      output.push_back(std::move(item));
    }
    r["output"] = std::move(output);
    json ev{{"type", "response.failed"}, {"response", std::move(r)}, {"sequence_number", ++last_seq_}};
    out += "event: response.failed\ndata: " + ev.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n";
  }

  providers::usage tokens() const override { return usage_; }
  const std::string& text() const { return text_; }

 private:
  const config::deployment& d_;
  bool keep_text_;
  std::pair<std::string, std::string> previous_;
  upstream::sse_parser parser_;
  std::vector<upstream::sse_parser::event> events_;
  std::string upstream_id_;
  std::string encoded_;
  bool terminal_ = false;
  bool final_relayed_ = false;  // response.completed, .incomplete or .failed went out
  bool relayed_error_ = false;
  std::optional<core::error> error_;
  providers::usage usage_;
  std::string text_;
  long long last_seq_ = -1;                   // the last relayed event's sequence_number
  long long seq_before_feed_ = -1;
  std::vector<long long> fed_seqs_;           // those of the last feed's events, in order
  json snapshot_;                             // the last response.created / .in_progress Response
  std::map<std::size_t, json> done_items_;    // output_item.done items by output_index
};

// A chat stream from the deployment's adapter, turned into Responses events.
class translated_relay final : public event_relay {
 public:
  translated_relay(std::unique_ptr<providers::stream_translator> tr, providers::response_meta meta)
      : tr_(std::move(tr)), writer_(std::move(meta)) {}

  core::result<void> feed(std::string_view bytes, std::string& out) override {
    payloads_.clear();
    auto r = tr_->feed(bytes, payloads_);
    if (auto w = write(out); !w) {
      return w;
    }
    return r;
  }

  core::result<void> finish(std::string& out) override {
    payloads_.clear();
    auto r = tr_->finish(payloads_);
    if (auto w = write(out); !w) {
      return w;
    }
    if (!r) {
      return r;
    }
    start(out);
    writer_.finish(tr_->tokens(), out);
    completed_ = true;
    return {};
  }

  void fail(const core::error& e, std::string& out) override {
    start(out);
    writer_.fail(e, out);
  }

  providers::usage tokens() const override { return tr_->tokens(); }
  bool completed() const { return completed_; }
  const providers::responses_event_writer& writer() const { return writer_; }

 private:
  void start(std::string& out) {
    if (!started_) {
      started_ = true;
      writer_.start(out);
    }
  }
  core::result<void> write(std::string& out) {
    for (const auto& p : payloads_) {
      start(out);
      if (auto r = writer_.feed(p, out); !r) {
        return r;
      }
    }
    return {};
  }

  std::unique_ptr<providers::stream_translator> tr_;
  providers::responses_event_writer writer_;
  std::vector<std::string> payloads_;
  bool started_ = false;
  bool completed_ = false;
};

// Relays a streamed answer through `tr`. The head goes out with the first events, so
// that a failure before them is still a real status (and may be retried or fall back).
net::awaitable<std::optional<core::error>> relay(request_ctx& ctx, std::unique_ptr<upstream::body_stream> s,
                                                 std::chrono::milliseconds timeout, event_relay& tr) {
  const auto& d = *ctx.dep;
  auto* raw = s.get();
  stream_reader reader(ctx, *s);
  std::string out;
  bool head_sent = false;
  std::optional<core::error> failure;
  auto send_head = [&]() -> net::awaitable<bool> {
    head_sent = true;
    return begin_event_stream(ctx, *s);
  };
  // Budgets, as on chat: the reservation covers ctx.stream_token_allowance tokens, one per
  // event relayed. Events that would pass it ask the limits stage for more; when not all of
  // them fit, those still covered go out, and the stream ends with its failure event.
  bool budget_cut = false;
  const auto events_in = [](std::string_view text) {
    std::size_t n = 0;
    for (auto at = text.find("\n\n"); at != std::string_view::npos; at = text.find("\n\n", at + 2)) {
      ++n;
    }
    return n;
  };
  const auto keep_events = [](std::string& text, std::size_t n) {  // the first n events of text
    std::size_t end = 0;
    for (std::size_t i = 0; i < n; ++i) {
      const auto at = text.find("\n\n", end);
      if (at == std::string::npos) {
        return;
      }
      end = at + 2;
    }
    text.resize(end);
  };
  for (;;) {
    auto piece = co_await reader.next();
    if (reader.client_left()) {
      break;
    }
    if (!piece) {
      failure = transport_error(piece.error(), d, timeout);
      break;
    }
    if (piece->empty()) {
      if (auto fin = tr.finish(out); !fin) {
        failure = fin.error();
      }
      break;
    }
    if (auto fed = tr.feed(*piece, out); !fed) {
      failure = fed.error();
      raw->cancel();
      break;
    }
    if (s->complete()) {
      if (auto fin = tr.finish(out); !fin) {
        failure = fin.error();
      }
      break;
    }
    if (!out.empty()) {
      std::size_t events = events_in(out);
      std::optional<core::error> cut;
      if (ctx.stream_limit != nullptr) {  // no coroutine per read without a budget
        cut = co_await cover_stream_events(ctx, static_cast<long long>(ctx.events_sent + events));
      }
      if (auto& e = cut) {
        failure = std::move(*e);
        budget_cut = true;
        events = static_cast<std::size_t>(
            std::max<long long>(0, ctx.stream_token_allowance - static_cast<long long>(ctx.events_sent)));
        keep_events(out, events);
        tr.kept(events);
        raw->cancel();
        if (!out.empty() && (head_sent || co_await send_head()) && co_await ctx.resp.write(out)) {
          ctx.events_sent += events;
        }
        out.clear();
        break;
      }
      if ((!head_sent && !co_await send_head()) || !co_await ctx.resp.write(out)) {
        raw->cancel();
        break;
      }
      ctx.events_sent += events;
      out.clear();
    }
  }
  ctx.usage = tr.tokens();
  if (budget_cut) {
    ctx.usage.known = false;  // billed as estimated: the basis its reservation was made on
  }
  ctx.resp.stop_watching();
  if (reader.client_left() || ctx.resp.client_gone()) {
    spdlog::info("client disconnected during a responses stream; upstream request cancelled (call_id={})",
                 ctx.req.call_id);
    co_return std::nullopt;
  }
  if (failure && !head_sent) {
    co_return failure;  // nothing reached the client: retry, fall back, or a real status
  }
  if (!head_sent && !co_await send_head()) {
    co_return std::nullopt;
  }
  if (failure) {
    ctx.late_failure = failure;
    spdlog::warn("responses stream failed after its first event (call_id={}): {}", ctx.req.call_id,
                 failure->message);
    tr.fail(*failure, out);
  }
  co_await ctx.resp.write_last(out);
  co_return std::nullopt;
}

bool listed(const std::vector<std::string>& names, std::string_view key) {
  return std::find(names.begin(), names.end(), key) != names.end();
}

// The client's bytes for an OpenAI/Azure deployment: each member as received, except
// gateway fields and the members the drop lists name (`dropped`: left out), `model` (the
// deployment's) and previous_response_id (the provider's own id when the gateway's names
// one of its responses).
std::string native_body(const request_ctx& ctx, const config::deployment& d, const responses_slot& slot,
                        const std::vector<std::string>& dropped) {
  std::string out;
  out.reserve(ctx.req.body.size() + 64);
  out += '{';
  bool first = true;
  auto sep = [&] {
    if (!first) {
      out += ',';
    }
    first = false;
  };
  for (const auto& m : ctx.scan.members) {
    if (m.key == "model" || m.key == "previous_response_id" || providers::is_gateway_field(m.key) ||
        listed(dropped, m.key)) {
      continue;
    }
    sep();
    out += m.whole;
  }
  sep();
  out += "\"model\":";
  providers::append_json_string(out, d.upstream_model);
  if (!slot.previous.empty()) {
    sep();
    out += "\"previous_response_id\":";
    providers::append_json_string(out, slot.previous_decoded ? slot.previous_decoded->upstream_id : slot.previous);
  }
  out += '}';
  return out;
}

// The same when the conversation of previous_response_id is the gateway's: its items go
// in front of `input`, and previous_response_id is not sent.
std::string native_body_with_history(request_ctx& ctx, const config::deployment& d, const responses_slot& slot,
                                    const std::vector<std::string>& dropped) {
  json body = json::object();
  for (const auto& [k, v] : ctx.full_body().items()) {
    if (!providers::is_gateway_field(k) && k != "previous_response_id" && !listed(dropped, k)) {
      body[k] = v;
    }
  }
  json input = slot.history;
  if (auto items = providers::input_items_of(ctx.full_body())) {
    for (auto& it : *items) {
      input.push_back(std::move(it));
    }
  }
  body["input"] = std::move(input);
  body["model"] = d.upstream_model;
  return body.dump(-1, ' ', false, json::error_handler_t::replace);
}

core::error previous_not_found(const std::string& id) {
  return core::make_error(core::errc::bad_request, "Previous response with id '" + id + "' not found.",
                          "previous_response_id");
}

}  // namespace

std::string owner_of(const auth::principal& who) { return who.vkey ? who.vkey->token : std::string(); }

net::awaitable<std::optional<core::error>> responses_call::attempt(request_ctx& ctx) {
  if (!ctx.responses) {
    ctx.responses = std::make_shared<responses_slot>();
  }
  auto slot = ctx.responses;  // kept alive across the awaits below
  if (!slot->resolved) {
    slot->resolved = true;
    if (auto e = co_await resolve(ctx, *slot)) {
      co_return e;
    }
  }
  if (auto mr = ctx.body.find("mock_response"); mr != ctx.body.end() && mr->is_string()) {
    const std::string content = mr->get<std::string>();
    co_return co_await translated(ctx, *slot, &content);
  }
  if (ctx.dep->mock_response) {
    const std::string content = *ctx.dep->mock_response;
    co_return co_await translated(ctx, *slot, &content);
  }
  if (ctx.dep->provider->responses_api) {
    co_return co_await native(ctx, *slot);
  }
  co_return co_await translated(ctx, *slot, nullptr);
}

net::awaitable<std::optional<core::error>> responses_call::resolve(request_ctx& ctx, responses_slot& slot) {
  slot.owner = owner_of(ctx.who);
  const auto* prev = ctx.scan.find("previous_response_id");
  if (prev == nullptr || prev->kind == providers::json_kind::null) {
    co_return std::nullopt;
  }
  if (prev->kind != providers::json_kind::string || prev->value.size() <= 2) {
    co_return core::make_error(core::errc::bad_request, "`previous_response_id` must be a non-empty string",
                               "previous_response_id");
  }
  slot.previous = providers::json_unescape(prev->value.substr(1, prev->value.size() - 2));
  slot.previous_decoded = providers::decode_response_id(slot.previous);
  if (slot.previous_decoded) {
    co_return std::nullopt;  // an OpenAI/Azure deployment's: it holds the conversation
  }
  if (auto stored = co_await store_.get(slot.previous)) {
    auto j = json::parse(*stored, nullptr, false);
    const bool readable = j.is_object() && (ctx.who.is_master || core::string_or(j, "owner") == slot.owner);
    if (readable && j.contains("items") && j["items"].is_array()) {
      slot.previous_stored = true;
      slot.history = std::move(j["items"]);
    }
  }
  co_return std::nullopt;
}

void responses_call::keep(request_ctx& ctx, const responses_slot& slot, const json& response) {
  const json& req = ctx.full_body();
  if (auto st = req.find("store"); st != req.end() && st->is_boolean() && !st->get<bool>()) {
    return;  // store: false, as OpenAI: not kept, so not retrievable
  }
  json items = slot.history;
  if (auto in = providers::input_items_of(req)) {
    for (auto& it : *in) {
      items.push_back(std::move(it));
    }
  }
  for (auto& it : providers::output_as_input(response)) {
    items.push_back(std::move(it));
  }
  json entry{{"owner", slot.owner}, {"response", response}, {"items", std::move(items)}};
  const std::string id = core::string_or(response, "id");
  if (!store_.put(id, entry.dump(-1, ' ', false, json::error_handler_t::replace))) {
    spdlog::warn("responses: conversation of {} not kept: larger than {} bytes (call_id={})", id,
                 store_.options().max_entry_bytes, ctx.req.call_id);
  }
}

net::awaitable<std::optional<core::error>> responses_call::native(request_ctx& ctx, responses_slot& slot) {
  const auto& d = *ctx.dep;
  const auto& adapter = providers::adapter_for(*d.provider);
  std::string bearer;
  if (token_source* src = chat_.token_source_of(d)) {
    auto t = co_await src->get();
    if (!t) {
      co_return t.error();
    }
    bearer = std::move(*t);
  }
  auto call = providers::responses_endpoint(d, "", bearer);
  if (!call) {
    co_return call.error();
  }
  upstream::request ur;
  ur.url = std::move(call->url);
  ur.headers = std::move(call->headers);
  // The deployment's drop lists and the request's own additional_drop_params, as for chat.
  const auto dropped = providers::responses_dropped_names(d, ctx.scan);
  ur.body = slot.previous_stored ? native_body_with_history(ctx, d, slot, dropped)
                                 : native_body(ctx, d, slot, dropped);
  const auto timeout = ctx.stream ? chat_.stream_timeout_of(d) : chat_.timeout_of(d);
  ur.timeout = timeout;
  ur.connect_timeout = std::min(timeout, std::chrono::milliseconds{10'000});
  const bool keep_prompts = ctx.keep_response;

  if (!ctx.stream) {
    auto r = co_await send_upstream(ctx, upstream_, std::move(ur), timeout, &adapter);
    if (!r) {
      co_return r.error();
    }
    auto scan = providers::scan_json(r->body, providers::max_json_depth);
    if (!scan.ok || scan.root != providers::json_kind::object) {
      co_return core::make_error(core::errc::upstream_error,
                                 std::string(d.provider->exception_label) + " - the Responses answer is not a JSON object");
    }
    std::string body;
    const auto* id = scan.find("id");
    if (id != nullptr && id->kind == providers::json_kind::string && id->value.size() > 2) {
      // The id's bytes are replaced where they are; everything else is the provider's.
      const std::string upstream_id = providers::json_unescape(id->value.substr(1, id->value.size() - 2));
      const auto at = static_cast<std::size_t>(id->value.data() - r->body.data());
      body.reserve(r->body.size() + 128);
      body.append(r->body, 0, at);
      providers::append_json_string(body, providers::encode_response_id(d.provider->name, d.id, upstream_id));
      body.append(r->body, at + id->value.size());
    } else {
      body = std::move(r->body);
    }
    if (slot.previous_decoded) {
      replace_quoted(body, slot.previous_decoded->upstream_id, slot.previous);
    }
    if (const auto* u = scan.find("usage"); u != nullptr && u->kind == providers::json_kind::object) {
      ctx.usage = providers::usage_of_response(providers::json_member_value(*u));
    }
    if (keep_prompts) {
      ctx.kept_bytes = body.size();
      ctx.kept_response.assign(body, 0, std::min(body.size(), spend::max_stored_bytes));
    }
    http::response out;
    out.head_lines = litellm_headers(ctx);
    add_response_cost(ctx, out.head_lines);
    add_provider_headers(out.head_lines, r->headers);
    out.body = std::move(body);
    co_await ctx.resp.send(std::move(out));
    co_return std::nullopt;
  }

  auto opened = co_await open_upstream(ctx, upstream_, std::move(ur), timeout, &adapter);
  if (!opened) {
    co_return opened.error();
  }
  auto s = std::move(*opened);
  native_relay tr(d, keep_prompts,
                  slot.previous_decoded ? std::pair{slot.previous_decoded->upstream_id, slot.previous}
                                        : std::pair<std::string, std::string>{});
  auto err = co_await relay(ctx, std::move(s), timeout, tr);
  if (keep_prompts) {
    keep_text(ctx, tr.text());
  }
  co_return err;
}

net::awaitable<std::optional<core::error>> responses_call::translated(request_ctx& ctx, responses_slot& slot,
                                                                      const std::string* mock) {
  const auto& d = *ctx.dep;
  if (!slot.previous.empty() && !slot.previous_stored) {
    if (slot.previous_decoded) {
      co_return core::make_error(
          core::errc::bad_request,
          "previous_response_id '" + slot.previous + "' names a response of a " + slot.previous_decoded->provider +
              " deployment, which keeps that conversation itself; model group '" + ctx.requested_model +
              "' was served by " + std::string(d.provider->name) +
              " here. Continue it on a model group served by OpenAI or Azure, or send the conversation as `input`",
          "previous_response_id");
    }
    co_return previous_not_found(slot.previous);
  }
  // Members the drop lists name go before the translation (max_output_tokens, text, ...);
  // the chat adapter drops them again under their chat names (max_tokens, ...), with the
  // deployment's defaults of those names.
  json undropped;
  const json& request =
      providers::without_members(ctx.full_body(), providers::responses_dropped_names(d, ctx.scan), undropped);
  auto chat = providers::responses_to_chat(request, slot.history);
  if (!chat) {
    co_return chat.error();
  }
  auto meta = make_meta(ctx);
  const bool keep_prompts = ctx.keep_response;

  if (mock != nullptr) {
    const long long created = meta.created_at;
    const std::string chat_id = "chatcmpl-" + core::uuid4();
    if (!ctx.stream) {
      auto cj = json::parse(providers::mock_chat_completion(ctx.requested_model, *mock, *chat, chat_id, created));
      auto resp = providers::chat_to_response(cj, meta);
      if (!resp) {
        co_return resp.error();
      }
      ctx.usage = providers::usage_of(cj);
      keep(ctx, slot, *resp);
      http::response out;
      out.body = resp->dump(-1, ' ', false, json::error_handler_t::replace);
      if (keep_prompts) {
        keep_text(ctx, out.body);
      }
      out.head_lines = litellm_headers(ctx);
      co_await ctx.resp.send(std::move(out));
      co_return std::nullopt;
    }
    providers::responses_event_writer w(meta);
    std::string out;
    w.start(out);
    for (const auto& f : providers::mock_chat_stream(ctx.requested_model, *mock, *chat, chat_id, created, true)) {
      std::string_view p = f;
      if (p.rfind("data: ", 0) != 0) {
        continue;
      }
      p.remove_prefix(6);
      while (!p.empty() && (p.back() == '\n' || p.back() == '\r')) {
        p.remove_suffix(1);
      }
      if (p == "[DONE]") {
        continue;
      }
      if (auto j = json::parse(p, nullptr, false); j.is_object() && j.contains("usage") && j["usage"].is_object()) {
        ctx.usage = providers::usage_of(j);
      }
      if (auto r = w.feed(p, out); !r) {
        co_return r.error();
      }
    }
    w.finish(ctx.usage, out);
    keep(ctx, slot, w.response());
    if (keep_prompts) {
      keep_text(ctx, w.text());
    }
    auto h = litellm_headers(ctx);
    h += "cache-control: no-cache\r\nx-accel-buffering: no\r\n";
    if (co_await ctx.resp.begin_stream(200, "text/event-stream", {}, std::move(h))) {
      co_await ctx.resp.write_last(out);
    }
    co_return std::nullopt;
  }

  const auto& adapter = providers::adapter_for(*d.provider);
  std::string bearer;
  if (token_source* src = chat_.token_source_of(d)) {
    auto t = co_await src->get();
    if (!t) {
      co_return t.error();
    }
    bearer = std::move(*t);
  }
  const providers::build_options bo{ctx.stream, drop_params_of(*cfg_, ctx, d), bearer};
  auto call = adapter.build(call_type::chat, d, *chat, bo);
  if (!call) {
    co_return call.error();
  }
  const auto timeout = ctx.stream ? chat_.stream_timeout_of(d) : chat_.timeout_of(d);
  auto ur = upstream_request_of(std::move(*call), timeout);

  if (!ctx.stream) {
    auto r = co_await send_upstream(ctx, upstream_, std::move(ur), timeout, &adapter);
    if (!r) {
      co_return r.error();
    }
    auto tr = adapter.translate_response(call_type::chat, d, r->body, ctx.requested_model);
    if (!tr) {
      co_return tr.error();
    }
    auto cj = json::parse(tr->body, nullptr, false);
    auto resp = providers::chat_to_response(cj, meta);
    if (!resp) {
      co_return resp.error();
    }
    ctx.usage = tr->tokens;
    keep(ctx, slot, *resp);
    http::response out;
    out.body = resp->dump(-1, ' ', false, json::error_handler_t::replace);
    if (keep_prompts) {
      keep_text(ctx, out.body);
    }
    out.head_lines = litellm_headers(ctx);
    add_response_cost(ctx, out.head_lines);
    add_provider_headers(out.head_lines, r->headers);
    co_await ctx.resp.send(std::move(out));
    co_return std::nullopt;
  }

  auto opened = co_await open_upstream(ctx, upstream_, std::move(ur), timeout, &adapter);
  if (!opened) {
    co_return opened.error();
  }
  auto s = std::move(*opened);
  translated_relay tr(adapter.make_stream(call_type::chat, d, ctx.requested_model, true), std::move(meta));
  auto err = co_await relay(ctx, std::move(s), timeout, tr);
  if (!err && tr.completed()) {
    keep(ctx, slot, tr.writer().response());
  }
  if (keep_prompts) {
    keep_text(ctx, tr.writer().text());
  }
  co_return err;
}

}  // namespace switchyard::pipeline
