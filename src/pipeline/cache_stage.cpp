#include "switchyard/pipeline/cache_stage.hpp"
#include "switchyard/core/json_get.hpp"
#include "switchyard/core/seconds.hpp"

#include "respond.hpp"

#include "switchyard/cache/controls.hpp"
#include "switchyard/cache/embedding_items.hpp"
#include "switchyard/cache/key.hpp"
#include "switchyard/cache/openai_stream.hpp"
#include "switchyard/pipeline/request_ctx.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <limits>

namespace switchyard::pipeline {

using json = nlohmann::json;
using providers::call_type;

// The cache stage's state for one request (request_ctx::cache).
struct cache_slot {
  enum class then { answer, follow, redis, items };
  then next = then::answer;
  cache::request_controls ctl;
  std::optional<cache::entry> found;
  std::shared_ptr<cache::inflight::flight> leading;    // this request leads its key's flight
  std::shared_ptr<cache::inflight::flight> following;  // waits for this flight
  // The body's slot in the key memo, and whether its key came from there (key_memo.hpp).
  std::uint64_t memo_hash = 0;
  bool memo_found = false;
  bool capture = false;  // the answer is copied as it is sent, to be stored
  std::string body;      // non-stream: the JSON sent
  bool too_big = false;
  std::optional<cache::stream_assembler> sse;  // stream: the events sent
  // Embeddings whose `input` is a list: looked up and stored item by item.
  struct items_state {
    std::vector<std::string> keys;                   // per input item
    std::vector<std::optional<std::string>> cached;  // the item's cached embedding (JSON text)
    // Per input item, its tokens as the gateway estimates them (a string's bytes / 4 + 1,
    // a token list's length): the weights that share a miss's count among its items, and
    // the count of an item stored without its share.
    std::vector<long long> estimates;
  };
  std::optional<items_state> items;
};

namespace {

const char* call_name(call_type t) {
  switch (t) {
    case call_type::chat:
      return "chat";
    case call_type::completion:
      return "completion";
    case call_type::embedding:
      return "embedding";
    case call_type::responses:
      return "responses";
    case call_type::messages:
      return "messages";
  }
  return "chat";
}

const std::vector<std::string>& allowed_controls(const request_ctx& ctx) {
  static const std::vector<std::string> all;
  return ctx.who.vkey ? ctx.who.vkey->allowed_cache_controls : all;
}

// The items of an embeddings request cached one by one: its `input` is a list of two or
// more inputs (strings, or token lists; a list of numbers is one tokenized input), at
// most this many.
constexpr std::size_t max_cached_items = 2048;
const json* listed_inputs(const json& body) {
  auto it = body.find("input");
  if (it == body.end() || !it->is_array() || it->size() < 2 || it->size() > max_cached_items) {
    return nullptr;
  }
  for (const auto& item : *it) {
    if (!item.is_string() && !item.is_array()) {
      return nullptr;
    }
  }
  return &*it;
}

providers::usage usage_of(const json& answer) {
  providers::usage u;
  auto it = answer.find("usage");
  if (it == answer.end() || !it->is_object()) {
    return u;
  }
  auto num = [&](const char* k) { return core::count_or(*it, k); };
  u.prompt_tokens = num("prompt_tokens");
  u.completion_tokens = num("completion_tokens");
  u.total_tokens = num("total_tokens");
  u.known = true;
  return u;
}

}  // namespace

cache_stage::cache_stage(net::any_io_executor ex, config::cache_settings settings, cache::response_cache& rc,
                         const router::router& rt, std::chrono::milliseconds coalesce_wait)
    : settings_(std::move(settings)), rc_(rc), rt_(rt), coalesce_wait_(coalesce_wait), flights_(std::move(ex)) {}

bool cache_stage::fresh(const request_ctx& ctx, const cache::entry& e) const {
  const auto& ctl = ctx.cache->ctl;
  if (!ctl.s_maxage) {
    return true;
  }
  return rc_.now_ms() - e.stored_ms <= core::saturated_ms(*ctl.s_maxage);  // 1e308: any age
}

std::vector<cache::member_spans> member_spans_of(const providers::json_scan& scan, std::string_view body) {
  std::vector<cache::member_spans> out;
  if (!scan.ok || scan.root != providers::json_kind::object || scan.members.empty() ||
      body.size() > std::numeric_limits<std::uint32_t>::max()) {
    return out;
  }
  const char* const begin = body.data();
  const auto inside = [&](std::string_view v) {
    return v.data() >= begin && v.data() + v.size() <= begin + body.size();
  };
  const auto at = [&](std::string_view v) { return static_cast<std::uint32_t>(v.data() - begin); };
  out.reserve(scan.members.size());
  for (const auto& m : scan.members) {
    if (!inside(m.key) || !inside(m.whole) || !inside(m.value)) {
      out.clear();
      return out;
    }
    cache::member_spans s;
    s.key_at = at(m.key);
    s.key_size = static_cast<std::uint32_t>(m.key.size());
    s.whole_at = at(m.whole);
    s.whole_size = static_cast<std::uint32_t>(m.whole.size());
    s.value_at = at(m.value);
    s.value_size = static_cast<std::uint32_t>(m.value.size());
    s.kind = static_cast<std::uint8_t>(m.kind);
    s.text_bytes = m.text_bytes;
    out.push_back(s);
  }
  return out;
}

void restore_scan(providers::json_scan& out, const std::vector<cache::member_spans>& members, std::string_view body) {
  out.ok = true;
  out.error_offset = 0;
  out.error = "";
  out.too_deep = false;
  out.root = providers::json_kind::object;
  out.unescaped_keys.clear();
  out.members.resize(members.size());
  const char* const b = body.data();
  for (std::size_t i = 0; i < members.size(); ++i) {
    const auto& s = members[i];
    auto& m = out.members[i];
    m.key = std::string_view(b + s.key_at, s.key_size);
    m.whole = std::string_view(b + s.whole_at, s.whole_size);
    m.value = std::string_view(b + s.value_at, s.value_size);
    m.kind = static_cast<providers::json_kind>(s.kind);
    m.text_bytes = s.text_bytes;
  }
}

void cache_stage::remember_key(const request_ctx& ctx) {
  const auto& slot = *ctx.cache;
  if (slot.memo_found || ctx.req.body.size() > memo_.max_body()) {
    return;
  }
  // The hex is the key after the namespace's "<ns>:" (a namespace may hold ':' itself).
  const std::string_view key = ctx.cache_key;
  constexpr std::size_t hex_size = 64;
  if (key.size() < hex_size) {
    return;
  }
  memo_.put(slot.memo_hash, call_name(ctx.type), ctx.cache_group, ctx.req.body, key.substr(key.size() - hex_size),
            member_spans_of(ctx.scan, ctx.req.body));
}

verdict cache_stage::run(request_ctx& ctx) {
  // The Responses API is not cached: its answers carry ids that GET, DELETE and
  // previous_response_id refer to, which a replayed answer would share.
  // Anthropic's /v1/messages answers are not cached (their shape is not OpenAI's).
  const bool supported = ctx.type == call_type::chat         ? settings_.chat
                         : ctx.type == call_type::completion ? settings_.completion
                         : ctx.type == call_type::embedding  ? settings_.embedding
                                                             : false;
  if (!supported) {
    return verdict::next();
  }
  // The key is hashed from the body's members as received when they are already in
  // canonical form (the common case: SDKs write compact JSON), so no DOM is built; only
  // the `cache` and `metadata` members are parsed. Otherwise the whole body is parsed.
  // Reused from request to request (the loop's thread only; nothing keeps it past this call).
  thread_local std::vector<std::pair<std::string_view, std::string_view>> members;
  members.clear();
  members.reserve(ctx.scan.members.size());
  const providers::json_member* cache_m = nullptr;
  const providers::json_member* metadata_m = nullptr;
  for (const auto& m : ctx.scan.members) {
    members.emplace_back(m.key, m.value);
    if (m.key == "cache") {
      cache_m = &m;  // the last duplicate wins, as in a parsed object
    } else if (m.key == "metadata") {
      metadata_m = &m;
    }
  }
  json cache_v;
  json metadata_v;
  if (cache_m != nullptr) {
    cache_v = providers::json_member_value(*cache_m);
  }
  if (metadata_m != nullptr) {
    metadata_v = providers::json_member_value(*metadata_m);
  }
  auto ctl = cache::parse_controls(cache_m != nullptr ? &cache_v : nullptr, ctx.req.header("cache-control"),
                                   allowed_controls(ctx));
  if (!ctl) {
    return verdict::fail(ctl.error());
  }
  if (!settings_.default_on && !ctl->use_cache.value_or(false)) {
    return verdict::next();  // mode default_off: only requests that opt in
  }
  // Namespace: the request's, else metadata.redis_namespace, else the config's.
  std::string ns = settings_.namespace_;
  if (ctl->namespace_) {
    ns = *ctl->namespace_;
  } else if (metadata_v.is_object()) {
    if (auto rn = metadata_v.find("redis_namespace");
        rn != metadata_v.end() && rn->is_string() && !rn->get_ref<const std::string&>().empty()) {
      if (rn->get_ref<const std::string&>().size() > cache::max_namespace_bytes) {
        return verdict::fail(core::make_error(core::errc::bad_request,
                                              "Invalid cache control: `metadata.redis_namespace` must be at most " +
                                                  std::to_string(cache::max_namespace_bytes) + " bytes",
                                              "metadata"));
      }
      ns = rn->get<std::string>();
    }
  }
  // The group stands for the body's `model` in the key; a wildcard's models each have one
  // of their own (else one model's answer would be served for another).
  std::string group = rt_.served_group(ctx.requested_model);
  if (group.empty()) {
    group = ctx.requested_model;
  }
  // A body seen before (byte for byte, same call and model group) has its key
  // remembered: neither the canonical text nor its SHA-256 is made again.
  auto slot = std::make_shared<cache_slot>();
  const char* call = call_name(ctx.type);
  const bool memo_sized = ctx.req.body.size() <= memo_.max_body();
  if (memo_sized) {
    slot->memo_hash = ctx.body_hashed ? ctx.body_hash : memo_.hash(ctx.req.body);
  }
  if (const std::string* hex =
          memo_sized ? memo_.find(slot->memo_hash, call, group, ctx.req.body, ctx.body_memo_version) : nullptr) {
    slot->memo_found = true;
    ctx.cache_key = cache::key_from_hex(ns, *hex);
  } else {
    // The canonical text is about the body's size and needed only for the hash: one
    // buffer (the loop's thread) serves every miss.
    thread_local std::string canonical;
    if (!cache::canonical_request_raw(canonical, call, group, members)) {
      canonical = cache::canonical_request(call, group, ctx.full_body());
    }
    ctx.cache_key = cache::key_of(ns, canonical);
    if (canonical.capacity() > (256u << 10)) {
      std::string().swap(canonical);  // a large body once: not kept for every later one
    }
  }
  ctx.cache_group = std::move(group);
  slot->ctl = std::move(*ctl);
  ctx.cache = slot;
  if (ctx.type == call_type::embedding) {
    if (const auto* m = ctx.scan.find("input"); m != nullptr && m->kind == providers::json_kind::array) {
      // Each item's key is the key of the same request with that item as its only input
      // (under a call name of its own: a single-input request stores a whole answer).
      json body = ctx.full_body();
      if (const json* listed = listed_inputs(body)) {
        const json inputs = *listed;
        cache_slot::items_state st;
        st.keys.reserve(inputs.size());
        st.estimates.reserve(inputs.size());
        for (const auto& item : inputs) {
          st.estimates.push_back(item.is_string()  ? static_cast<long long>(item.get_ref<const std::string&>().size() / 4 + 1)
                                 : item.is_array() ? static_cast<long long>(item.size())
                                                   : 1);
          body["input"] = item;
          st.keys.push_back(cache::key_of(ns, cache::canonical_request("embedding-item", ctx.cache_group, body)));
        }
        st.cached.resize(inputs.size());
        slot->items = std::move(st);
        slot->next = cache_slot::then::items;
        return verdict::wait();
      }
    }
  }
  std::shared_ptr<cache::inflight::flight> in_flight;
  if (!slot->ctl.no_cache) {
    if (auto e = rc_.get_memory(ctx.cache_key); e && fresh(ctx, *e)) {
      slot->found = std::move(e);
      slot->next = cache_slot::then::answer;
      return verdict::wait();
    }
    if (auto f = flights_.find(ctx.cache_key)) {
      cache::inflight::join(*f);
      slot->following = std::move(f);
      slot->next = cache_slot::then::follow;
      return verdict::wait();
    }
  } else {
    in_flight = flights_.find(ctx.cache_key);
  }
  if (!slot->ctl.no_store && !in_flight) {
    slot->leading = flights_.lead(ctx.cache_key, coalesce_wait_);
  }
  if (!slot->ctl.no_cache && rc_.has_redis()) {
    slot->next = cache_slot::then::redis;
    return verdict::wait();
  }
  arm_capture(ctx);
  return verdict::next();
}

net::awaitable<verdict> cache_stage::run_async(request_ctx& ctx) {
  auto& slot = *ctx.cache;
  if (slot.next == cache_slot::then::items) {
    co_return co_await run_items(ctx);
  }
  if (slot.next == cache_slot::then::follow) {
    const auto flight = slot.following;
    co_await cache::inflight::follow(std::move(slot.following));
    // The leader handed over the answer it found or stored before it landed (else it
    // failed, or a deadline passed: the follower calls the provider itself).
    if (const auto* e = cache::inflight::result(*flight); e != nullptr && fresh(ctx, *e)) {
      slot.found = *e;
    } else if (auto m = rc_.get_memory(ctx.cache_key); m && fresh(ctx, *m)) {
      slot.found = std::move(m);
    }
  } else if (slot.next == cache_slot::then::redis) {
    if (auto e = co_await rc_.get_redis(ctx.cache_key); e && fresh(ctx, *e)) {
      slot.found = std::move(e);  // kept: on_finish hands it to the followers of this request
    }
  }
  if (slot.found) {
    remember_key(ctx);
    // A request leading a flight keeps the entry for the followers it hands it to; any
    // other sends the value itself instead of a copy.
    if (co_await answer(ctx, *slot.found, slot.leading != nullptr)) {
      co_return verdict::done();
    }
    slot.found.reset();
  }
  arm_capture(ctx);
  co_return verdict::next();
}

// An embeddings request cached item by item: every item cached, the answer is made here;
// some, the provider gets the others only and its answer is merged with the cached items
// (ctx.shape_answer); none, the request goes as it came. The items answered by the
// provider are stored one by one in on_finish.
net::awaitable<verdict> cache_stage::run_items(request_ctx& ctx) {
  auto& slot = *ctx.cache;
  auto& st = *slot.items;
  const std::size_t n = st.keys.size();
  std::size_t hits = 0;
  if (!slot.ctl.no_cache) {
    for (std::size_t i = 0; i < n; ++i) {
      if (auto e = rc_.get_memory(st.keys[i]); e && fresh(ctx, *e)) {
        st.cached[i] = std::move(e->value);
        ++hits;
      }
    }
    if (rc_.has_redis()) {
      // One GET after the other; the first that fails (Redis down, or slower than its
      // timeout) ends the lookups, the rest being misses: a request waits on Redis for
      // one timeout at most, however many items it has.
      const auto failures = rc_.counters().redis_lookup_failures;
      for (std::size_t i = 0; i < n && hits < n; ++i) {
        if (st.cached[i]) {
          continue;
        }
        if (auto e = co_await rc_.get_redis(st.keys[i]); e && fresh(ctx, *e)) {
          st.cached[i] = std::move(e->value);
          ++hits;
        } else if (rc_.counters().redis_lookup_failures != failures) {
          break;
        }
      }
    }
  }
  if (hits == n) {
    std::vector<std::string> values;
    values.reserve(n);
    for (auto& c : st.cached) {
      values.push_back(std::move(*c));
    }
    if (auto hit = cache::embedding_hit_answer(values, ctx.requested_model, st.estimates)) {
      ctx.out.cache_hit = true;
      // The items' tokens, as LiteLLM reports a full hit's; a hit costs nothing.
      providers::usage u;
      u.prompt_tokens = hit->prompt_tokens;
      u.total_tokens = hit->prompt_tokens;
      u.known = true;
      ctx.out.usage = u;
      http::response r;
      r.body = std::move(hit->body);
      r.head_lines = litellm_headers(ctx);
      r.head_lines += "x-litellm-response-cost: 0\r\n";
      co_await ctx.resp.send(std::move(r));
      co_return verdict::done();
    }
    for (auto& c : st.cached) {  // an entry that is not JSON: every item is a miss
      c.reset();
    }
    hits = 0;
  }
  if (hits > 0) {
    json body = ctx.full_body();
    json sent = json::array();
    const json& inputs = body["input"];
    for (std::size_t i = 0; i < n; ++i) {
      if (!st.cached[i]) {
        sent.push_back(inputs[i]);
      }
    }
    body["input"] = std::move(sent);
    ctx.req.body = body.dump(-1, ' ', false, json::error_handler_t::replace);
    ctx.scan = providers::scan_json(ctx.req.body, providers::max_json_depth);
    ctx.full.reset();
    ctx.shape_answer = [cached = st.cached, estimates = st.estimates](std::string_view answer) {
      return cache::merge_embedding_answer(answer, cached, estimates);
    };
  }
  arm_capture(ctx);
  co_return verdict::next();
}

void cache_stage::arm_capture(request_ctx& ctx) const {
  auto* slot = ctx.cache.get();
  if (slot->ctl.no_store) {
    return;
  }
  slot->capture = true;
  const std::size_t max = rc_.options().max_entry_bytes;
  if (ctx.stream) {
    slot->sse.emplace(ctx.type == call_type::chat, max);
  }
  ctx.resp.tap = [slot, max](std::string_view data) {
    if (slot->sse) {
      slot->sse->feed(data);
    } else if (!slot->too_big) {
      if (slot->body.size() + data.size() > max) {
        slot->too_big = true;
        slot->body.clear();
        slot->body.shrink_to_fit();
      } else {
        slot->body.append(data);
      }
    }
  };
}

// Sends the cached answer; false when the entry is unreadable (then it is a miss).
net::awaitable<bool> cache_stage::answer(request_ctx& ctx, cache::entry& e, bool keep_value) {
  // A non-stream hit whose usage was stored beside it is sent as stored, without a parse;
  // a stream hit is rebuilt into chunks from the parsed answer.
  json j;
  if (ctx.stream || !e.has_usage) {
    j = json::parse(e.value, nullptr, false);
    if (!j.is_object()) {
      co_return false;
    }
  }
  ctx.out.cache_hit = true;
  if (e.has_usage) {
    providers::usage u;
    u.prompt_tokens = e.prompt_tokens;
    u.completion_tokens = e.completion_tokens;
    u.total_tokens = e.total_tokens;
    u.known = e.usage_known;
    ctx.out.usage = u;
  } else {
    ctx.out.usage = usage_of(j);
  }
  auto h = litellm_headers(ctx);
  h += "x-litellm-response-cost: 0\r\n";
  if (!ctx.stream) {
    http::response r;
    if (keep_value) {
      r.body = e.value;
    } else {
      r.body = std::move(e.value);
    }
    r.head_lines = std::move(h);
    co_await ctx.resp.send(std::move(r));
    co_return true;
  }
  auto frames = cache::replay_frames(j, ctx.type == call_type::chat, ctx.client_wants_usage);
  h += "cache-control: no-cache\r\nx-accel-buffering: no\r\n";
  if (co_await ctx.resp.begin_stream(200, "text/event-stream", {}, std::move(h))) {
    co_await ctx.resp.write_last(frames);
  }
  co_return true;
}

void cache_stage::on_finish(const request_ctx& ctx) noexcept {
  auto slot = ctx.cache;
  if (!slot) {
    return;
  }
  try {
    const auto& o = ctx.out;
    // Found in Redis while leading: the requests that joined meanwhile get the answer (at
    // the end, right before landing, so that none joins after the hand-over).
    if (slot->leading && slot->found && o.cache_hit && cache::inflight::has_followers(*slot->leading)) {
      cache::inflight::hand_over(*slot->leading, *slot->found);
    }
    const double ttl = slot->ctl.ttl ? *slot->ctl.ttl : slot->ctl.header_ttl ? *slot->ctl.header_ttl : settings_.ttl_s;
    if (slot->items) {
      // The client's answer holds every item (the cached ones merged in): the items the
      // provider answered are stored, each under its own key.
      if (slot->capture && !o.cache_hit && o.status == 200 && !o.error && !o.client_gone && !slot->too_big) {
        const auto& st = *slot->items;
        // Each item sent gets its share of the provider's count (the cached ones none): the
        // count of the provider's own answer (the client's also counts the cached items).
        std::vector<long long> weights;
        if (o.usage.known) {
          weights.assign(st.keys.size(), 0);
          for (std::size_t i = 0; i < weights.size() && i < st.estimates.size(); ++i) {
            weights[i] = st.cached[i] ? 0 : std::max(st.estimates[i], 1LL);
          }
        }
        const auto values = cache::embedding_values(slot->body, st.keys.size(), weights,
                                                    o.usage.known ? std::optional<long long>(o.usage.prompt_tokens)
                                                                  : std::nullopt);
        for (std::size_t i = 0; i < values.size(); ++i) {
          if (!st.cached[i]) {
            rc_.put(st.keys[i], values[i], ttl);
          }
        }
        // Under the whole request's key (its x-litellm-cache-key, never looked up for a
        // list): its items' keys, so that /cache/delete of that key removes them.
        if (!values.empty()) {
          rc_.put(ctx.cache_key, cache::group_entry(st.keys), ttl);
        }
      }
      return;
    }
    if (slot->capture && !o.cache_hit && o.status == 200 && !o.error && !o.client_gone && !ctx.late_failure) {
      std::optional<std::string> value;
      if (slot->sse) {
        std::optional<json> usage;
        if (o.usage.known) {
          usage = json{{"prompt_tokens", o.usage.prompt_tokens},
                       {"completion_tokens", o.usage.completion_tokens},
                       {"total_tokens", o.usage.prompt_tokens + o.usage.completion_tokens}};
        }
        value = slot->sse->result(usage);
      } else if (!slot->too_big && !slot->body.empty()) {
        value = std::move(slot->body);
      }
      if (value) {
        // The usage the answer carries (the stream's was just written into it), so a hit
        // needs no parse to report it.
        cache::stored_usage su;
        su.stored = o.usage.known;  // else a hit reads it from the answer, as before
        su.known = o.usage.known;
        su.prompt_tokens = o.usage.prompt_tokens;
        su.completion_tokens = o.usage.completion_tokens;
        su.total_tokens = slot->sse ? o.usage.prompt_tokens + o.usage.completion_tokens : o.usage.total_tokens;
        if (slot->leading && cache::inflight::has_followers(*slot->leading)) {
          cache::entry stored;
          if (rc_.put(ctx.cache_key, std::move(*value), ttl, su, &stored)) {
            cache::inflight::hand_over(*slot->leading, std::move(stored));
          }
        } else {
          rc_.put(ctx.cache_key, std::move(*value), ttl, su);
        }
      } else if (slot->too_big || (slot->sse && slot->sse->too_large())) {
        rc_.note_too_large();
      }
    }
  } catch (const std::exception& e) {
    spdlog::warn("cache: answer of {} not stored: {}", ctx.req.call_id, e.what());
  }
  if (slot->leading) {
    flights_.land(ctx.cache_key, slot->leading);
  }
}

}  // namespace switchyard::pipeline
