#include "switchyard/pipeline/limits_stage.hpp"

#include "switchyard/auth/model_access.hpp"
#include "switchyard/core/ids.hpp"
#include "switchyard/core/json_get.hpp"
#include "switchyard/http/message.hpp"
#include "switchyard/pipeline/spend_observer.hpp"

#include <boost/container/small_vector.hpp>
#include <spdlog/spdlog.h>

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <ctime>

namespace switchyard::pipeline {

using limits::check;
using limits::kind;

// One reservation piece: what was reserved on one check, under which member id, where.
struct reserved_piece {
  std::size_t check = 0;
  std::string member;
  std::int64_t amount = 0;
  bool shared = false;
  std::uint64_t lease = 0;  // drawn from this lease of the engine's
};

// Reused: limits_stage keeps the slots of finished requests (take_slot), so a request of a
// key seen before writes its checks over the last one's, into strings and vectors that
// already have the room (see reuse()).
struct limits_slot {
  std::vector<check> checks;
  boost::container::small_vector<reserved_piece, 4> pieces;  // budgets and parallel slots and token windows
  std::string id;
  bool shared = false;
  // Streams: the completion-token price used for extensions (USD per token), and the
  // completion tokens the worst-case cost covered.
  double output_price = 0;
  std::int64_t completion_covered = 0;
  int extensions = 0;
  // Budgets charged with the request's cost that never refuse it (a team key's user).
  std::vector<check> charge_only;

  // Back to a fresh slot's state, but for `checks`, which build() overwrites element by
  // element and trims to what it wrote (their strings keep their capacity).
  void reuse() {
    pieces.clear();
    id.clear();
    shared = false;
    output_price = 0;
    completion_covered = 0;
    extensions = 0;
    charge_only.clear();
  }
};

namespace {

std::optional<std::int64_t> env_int(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') {
    return std::nullopt;
  }
  std::int64_t n = 0;
  auto [end, ec] = std::from_chars(v, v + std::strlen(v), n);
  if (ec != std::errc{} || n <= 0) {
    return std::nullopt;
  }
  return n;
}

std::optional<std::int64_t> int_setting(const nlohmann::json& raw, const char* name) {
  auto it = raw.find(name);
  if (it == raw.end() || !it->is_number() || it->get<double>() <= 0) {
    return std::nullopt;
  }
  return core::count_of_number(it->get<double>());
}

// A top-level integer member of the body (max_tokens ...), read from the scan.
std::optional<std::int64_t> body_int(const request_ctx& ctx, std::string_view name) {
  const auto* m = ctx.scan.ok ? ctx.scan.find(name) : nullptr;
  if (m == nullptr || m->kind != providers::json_kind::number) {
    return std::nullopt;
  }
  double v = 0;
  auto [end, ec] = std::from_chars(m->value.data(), m->value.data() + m->value.size(), v);
  if (ec != std::errc{} || !(v > 0)) {
    return std::nullopt;
  }
  // At most 10^18: `"max_tokens": 1e300` was an undefined conversion (on x86 the most
  // negative integer, a negative tpm reservation that freed the window for others).
  return core::count_of_number(v);
}

// A USD amount as Python prints a float (LiteLLM's messages): shortest round trip,
// positional from 1e-4 up to 1e16, else with an exponent of at least two digits.
std::string usd(double v) {
  char buf[64];
  const double a = std::fabs(v);
  const bool positional = a == 0 || (a >= 1e-4 && a < 1e16);
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v,
                                 positional ? std::chars_format::fixed : std::chars_format::scientific);
  (void)ec;
  std::string s(buf, end);
  if (positional && s.find('.') == std::string::npos) {
    s += ".0";
  }
  return s;
}

std::string num(std::int64_t v) { return std::to_string(v); }

// The family a limit kind belongs to in LiteLLM's words (headers, messages), as a view: its
// length known, the success headers are written with memcpy.
std::string_view family_name(kind k) {
  switch (k) {
    case kind::requests:
      return "requests";
    case kind::tokens:
      return "tokens";
    case kind::parallel:
      return "max_parallel_requests";
    case kind::budget:
      return "budget";
  }
  return "requests";
}

// The same as a C string (the literals above end with a null).
const char* family_of(kind k) { return family_name(k).data(); }

// `dst` = `v`; the check's counter key is forgotten when the name changes.
void set_name(check& c, std::string& dst, std::string_view v) {
  if (dst != v) {
    dst.assign(v);
    c.key = 0;
  }
}

// The check `cs[n]` of a slot being built, every field set: an element an earlier request
// left there is overwritten in place (no allocation when its strings have the room), and
// keeps its counter key when it names the same counter (usually: the same key's next
// request), so the engine does not hash its names again.
check& next_check(std::vector<check>& cs, std::size_t& n, kind k, std::string_view scope, std::string_view id,
                  std::string_view period = {}) {
  if (n == cs.size()) {
    cs.emplace_back();
  }
  check& c = cs[n++];
  if (c.k != k) {
    c.k = k;
    c.key = 0;
  }
  set_name(c, c.scope, scope);
  set_name(c, c.id, id);
  set_name(c, c.period, period);
  c.label.clear();
  c.limit = 0;
  c.amount = 0;
  c.seed = 0;
  c.key_ttl_ms = 0;
  return c;
}

// "YYYY-MM-DD HH:MM:SS UTC", LiteLLM's reset_at.
std::string utc_text(std::chrono::system_clock::time_point t) {
  std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

std::int64_t ceil_seconds(std::int64_t ms) { return std::max<std::int64_t>(1, (ms + 999) / 1000); }

// LiteLLM's budget messages per level (auth_checks.py).
std::string budget_message(const check& c, std::int64_t used) {
  const std::string cost = usd(limits::to_usd(used));
  const std::string max = usd(limits::to_usd(c.limit));
  if (c.scope == "end_user") {
    return "ExceededBudget: End User=" + c.id + " over budget. Spend=" + cost + ", Budget=" + max;
  }
  if (c.scope == "user") {
    return "ExceededBudget: User=" + c.id + " over budget. Spend=" + cost + ", Budget=" + max;
  }
  if (c.scope == "model_per_key") {
    return "Budget has been exceeded! " + c.label + " Current cost: " + cost + ", Max budget: " + max;
  }
  if (c.label.empty()) {
    return "Budget has been exceeded! Current cost: " + cost + ", Max budget: " + max;
  }
  return "Budget has been exceeded! " + c.label + " Current cost: " + cost + ", Max budget: " + max;
}

// The entity's words in a budget message, written into `out` (the check's own string).
void label_into(std::string& out, const auth::entity_limits& e, const request_ctx& ctx) {
  out.clear();
  switch (e.level) {
    case auth::limit_level::key: {
      const auto& k = ctx.who.vkey;
      out += "Key=";
      out += e.alias.empty() ? std::string_view("None") : std::string_view(e.alias);
      out += " (";
      if (k) {
        out += k->key_name;
      }
      out += ')';
      return;
    }
    case auth::limit_level::user:
      out += "User=";
      out += e.id;
      return;
    case auth::limit_level::team:
      out += "Team=";
      out += e.id;
      return;
    case auth::limit_level::organization:
      out += "Organization=";
      out += e.id;
      return;
    case auth::limit_level::end_user:
      out += "End User=";
      out += e.id;
      return;
    case auth::limit_level::proxy:
      return;
    case auth::limit_level::team_member: {
      // LiteLLM's words for a member over their budget in the team (auth_checks).
      const auto& k = ctx.who.vkey;
      if (k) {
        out += "User=";
        out += k->user_id;
        out += " in Team=";
        out += k->team_id;
      } else {
        out += "User=";
        out += e.id;
      }
      return;
    }
  }
}

}  // namespace

limits_settings limits_settings::from(const config::config& cfg) {
  limits_settings s;
  s.default_key_parallel = int_setting(cfg.general.raw, "max_parallel_requests");
  s.global_parallel = int_setting(cfg.general.raw, "global_max_parallel_requests");
  if (auto n = env_int("SWITCHYARD_LIMITS_DEFAULT_MAX_TOKENS")) {
    s.default_max_tokens = *n;
  }
  return s;
}

limits_stage::limits_stage(limits::redis_engine& engine, router::router& rt, spend::pricer& prices, limits_settings s,
                           sys_clock_fn now)
    : engine_(engine),
      rt_(rt),
      prices_(prices),
      s_(std::move(s)),
      now_(now ? std::move(now) : sys_clock_fn([] { return std::chrono::system_clock::now(); })),
      id_prefix_(core::uuid4().substr(0, 13)) {
  if (s_.global_parallel) {
    auth::entity_limits proxy;
    proxy.level = auth::limit_level::proxy;
    proxy.id = "global";
    proxy.max_parallel_requests = s_.global_parallel;
    s_.extra.push_back(std::move(proxy));
  }
}

limits_stage::~limits_stage() = default;

const limits_stage::group_price& limits_stage::price_of_group(const std::string& model) {
  if (auto it = group_prices_.find(model); it != group_prices_.end()) {
    return it->second;
  }
  if (group_prices_.size() > 1000) {
    group_prices_.clear();  // wildcard names are open-ended: bounded memo
  }
  group_price g;
  for (const auto& d : rt_.deployments_of(model)) {
    if (d->mock_response) {
      continue;  // answered offline: costs nothing
    }
    if (const auto* p = prices_.price_of(*d)) {
      g.input = std::max(g.input, p->input.value_or(0));
      g.output = std::max(g.output, p->output.value_or(0));
      g.max_output_tokens = std::max(g.max_output_tokens, p->max_output_tokens);
    }
  }
  return group_prices_.emplace(model, g).first->second;
}

verdict limits_stage::run(request_ctx& ctx) {
  if (s_.end_users != nullptr) {
    const std::string& id = ctx.end_user();
    if (!id.empty()) {
      auto eu = s_.end_users->cached(id);
      if (!eu) {
        return verdict::wait();  // run_async() looks the end user up (ctx.limits stays null)
      }
      return build(ctx, eu->get());
    }
  }
  return build(ctx, nullptr);
}

verdict limits_stage::build(request_ctx& ctx, const auth::end_user* eu) {
  if (eu != nullptr && eu->blocked) {
    // LiteLLM refuses blocked end users before the call.
    auto e = core::make_error(core::errc::bad_request, "End User=" + eu->limits.id +
                                                           " is blocked. Let your admin know, if you believe this "
                                                           "is a mistake.");
    e.retryable = false;
    return verdict::fail(std::move(e));
  }
  const auto* vkey = ctx.who.vkey.get();
  const bool key_limited = vkey != nullptr && (!vkey->limits.empty() || s_.default_key_parallel);
  if (!key_limited && !s_.has_global()) {
    return verdict::next();  // the common case: nothing to enforce, nothing allocated
  }
  // build() runs to its end without suspending: one list serves every request.
  auto& entities = entities_;
  entities.clear();
  std::optional<auth::entity_limits> key_default;
  if (vkey != nullptr) {
    bool key_seen = false;
    for (const auto& e : vkey->limits) {
      entities.push_back(&e);
      key_seen = key_seen || e.level == auth::limit_level::key;
    }
    if (s_.default_key_parallel && (!key_seen || !vkey->limits.front().max_parallel_requests)) {
      auto& kd = key_default.emplace();
      kd.level = auth::limit_level::key;
      kd.id = vkey->token;
      kd.alias = vkey->key_alias;
      kd.max_parallel_requests = s_.default_key_parallel;
      entities.push_back(&kd);
    }
  }
  for (const auto& e : s_.extra) {
    entities.push_back(&e);
  }
  if (eu != nullptr && eu->limits.has_any()) {
    entities.push_back(&eu->limits);
  }
  if (s_.entities_of) {
    s_.entities_of(ctx, entities);
  }
  if (entities.empty()) {
    return verdict::next();
  }

  // The model group as the router will see it (the key's aliases applied); only budgets
  // and per-model limits need it.
  bool needs_group = false;
  for (const auto* e : entities) {
    needs_group = needs_group || e->max_budget || !e->model_max_budget.empty() || !e->model_rpm_limit.empty() ||
                  !e->model_tpm_limit.empty();
  }
  std::string model;
  std::string group;
  if (needs_group) {
    model = vkey != nullptr ? auth::apply_model_aliases(*vkey, ctx.requested_model) : ctx.requested_model;
    group = rt_.resolve(model);
  }
  // The answer's bound, by the name each front door gives it: chat's (and OpenAI's newer
  // name), Anthropic's (max_tokens too), the Responses API's.
  auto max_tokens = body_int(ctx, "max_completion_tokens");
  if (!max_tokens) {
    max_tokens = body_int(ctx, "max_tokens");
  }
  if (!max_tokens && ctx.type == providers::call_type::responses) {
    max_tokens = body_int(ctx, "max_output_tokens");
  }
  const auto prompt = static_cast<std::int64_t>(ctx.estimated_tokens);
  // An embedding answers with vectors, no generated tokens: its worst case is its input.
  const bool generates = ctx.type != providers::call_type::embedding;
  const std::int64_t tpm_amount = prompt + (generates ? max_tokens.value_or(s_.tpm_default_output) : 0);
  // The worst-case cost, computed on first need (only budgets need prices).
  std::optional<std::int64_t> worst;
  double out_price = 0;
  std::int64_t out_tokens = 0;
  auto worst_cost = [&]() {
    if (!worst) {
      const auto& g = price_of_group(model);
      out_tokens = !generates ? 0
                   : max_tokens ? *max_tokens
                                : (g.max_output_tokens > 0 ? g.max_output_tokens : s_.default_max_tokens);
      out_price = g.output;
      worst = limits::to_nano(static_cast<double>(prompt) * g.input + static_cast<double>(out_tokens) * g.output);
    }
    return *worst;
  };
  const auto now = now_();

  auto slot = take_slot();
  auto& cs = slot->checks;
  std::size_t n = 0;  // checks written; cs is trimmed to them below
  for (const auto* e : entities) {
    const char* scope = limits::scope_of(e->level);
    auto base = [&](kind k) -> check& { return next_check(cs, n, k, scope, e->id); };
    if (e->max_budget) {
      // A user's budget binds the user's personal keys only; a team key is under its team's
      // budget (LiteLLM checks the user's only when the key has no team). Its cost still
      // counts in the user's spend, so the counter is charged after the request, without a
      // reservation that could refuse it or hold room the user's own keys need.
      const bool charge_only = e->level == auth::limit_level::user && vkey != nullptr && !vkey->team_id.empty();
      auto p = limits::period_of(*e, now);
      std::size_t charged = slot->charge_only.size();
      check& c = next_check(charge_only ? slot->charge_only : cs, charge_only ? charged : n, kind::budget, scope,
                            e->id, p.id);
      label_into(c.label, *e, ctx);
      c.limit = limits::to_nano(*e->max_budget);
      c.amount = charge_only ? 0 : worst_cost();
      c.seed = p.fresh ? 0 : limits::to_nano(e->spend);
      c.key_ttl_ms = p.ttl_ms;
    }
    if (e->rpm_limit) {
      auto& c = base(kind::requests);
      c.limit = *e->rpm_limit;
      c.amount = 1;
    }
    if (e->tpm_limit) {
      auto& c = base(kind::tokens);
      c.limit = *e->tpm_limit;
      c.amount = tpm_amount;
    }
    if (e->max_parallel_requests) {
      auto& c = base(kind::parallel);
      c.limit = *e->max_parallel_requests;
      c.amount = 1;
    }
    if (e->level == auth::limit_level::key && !group.empty() &&
        (!e->model_max_budget.empty() || !e->model_rpm_limit.empty() || !e->model_tpm_limit.empty())) {
      // Per key and model group (LiteLLM's model_per_key scope).
      const std::string model_id = e->id + ":" + group;
      auto model_check = [&](kind k, std::string_view period = {}) -> check& {
        return next_check(cs, n, k, "model_per_key", model_id, period);
      };
      if (auto it = e->model_max_budget.find(group); it != e->model_max_budget.end()) {
        auto p = limits::period_of(*e, now);
        auto& c = model_check(kind::budget, p.id);
        c.label.assign("LiteLLM Virtual Key: ");
        c.label += e->id;
        c.label += ", key_alias: ";
        c.label += e->alias;
        c.label += ", exceeded budget for model=";
        c.label += group;
        c.label += '.';
        c.limit = limits::to_nano(it->second);
        c.amount = worst_cost();
        auto sp = e->model_spend.find(group);
        c.seed = p.fresh || sp == e->model_spend.end() ? 0 : limits::to_nano(sp->second);
        c.key_ttl_ms = p.ttl_ms;
      }
      if (auto it = e->model_rpm_limit.find(group); it != e->model_rpm_limit.end()) {
        auto& c = model_check(kind::requests);
        c.limit = it->second;
        c.amount = 1;
      }
      if (auto it = e->model_tpm_limit.find(group); it != e->model_tpm_limit.end()) {
        auto& c = model_check(kind::tokens);
        c.limit = it->second;
        c.amount = tpm_amount;
      }
    }
  }
  cs.resize(n);  // what an earlier request left beyond them
  for (auto& c : cs) {
    if (c.key == 0) {
      c.key = limits::counter_key(c);  // a new counter in this place: hashed once
    }
  }
  if (cs.empty()) {
    if (!slot->charge_only.empty()) {
      ctx.limits = std::move(slot);  // nothing to reserve; finish charges the cost
    }
    return verdict::next();  // e.g. only a soft budget: nothing is refused
  }
  slot->output_price = out_price;
  slot->completion_covered = out_tokens;
  ctx.limits = std::move(slot);
  limits::decision d;
  if (engine_.try_local(ctx.limits->checks, d)) {
    return decide(ctx, d);  // drawn from leases, or counted locally: no reservation id needed
  }
  ctx.limits->id = next_reservation_id();
  return verdict::wait();
}

std::shared_ptr<limits_slot> limits_stage::take_slot() {
  // A slot only this pool holds belongs to no request any more (a request, a wait for
  // Redis and a stream's extension each hold a reference while they use it). A few are
  // tried from where the last search stopped (the oldest first); past them, a new one.
  constexpr std::size_t probes = 4;
  constexpr std::size_t max_pooled = 1024;
  const std::size_t pooled = slots_.size();
  for (std::size_t i = 0; i < probes && i < pooled; ++i) {
    auto& s = slots_[next_slot_];
    next_slot_ = next_slot_ + 1 == pooled ? 0 : next_slot_ + 1;
    if (s.use_count() == 1) {
      s->reuse();
      return s;
    }
  }
  auto s = std::make_shared<limits_slot>();
  if (pooled < max_pooled) {
    slots_.push_back(s);
  }
  return s;
}

net::awaitable<verdict> limits_stage::run_async(request_ctx& ctx) {
  if (!ctx.limits) {
    // run() waited for the end user: look it up, then build the checks.
    auto r = co_await s_.end_users->get(ctx.end_user());
    if (!r) {
      // Postgres unreachable and the end user never seen: the request goes on under the
      // key's limits only (as a cached key does during an outage).
      spdlog::warn("limits: end user not loaded ({}); its limits are not applied to this request",
                   r.error().message);
    }
    const auto v = build(ctx, r ? r->get() : nullptr);
    if (v.s != step::wait) {
      co_return v;
    }
  }
  auto slot = ctx.limits;  // holds the checks across the wait
  auto d = co_await engine_.reserve(slot->checks, slot->id);
  co_return decide(ctx, d);
}

verdict limits_stage::decide(request_ctx& ctx, const limits::decision& d) {
  auto& slot = *ctx.limits;
  const auto& cs = slot.checks;
  if (!d.ok && d.failed >= 0 && static_cast<std::size_t>(d.failed) < cs.size()) {
    const check c = cs[static_cast<std::size_t>(d.failed)];
    std::optional<std::int64_t> tokens_limit;
    for (const auto& t : cs) {
      if (t.k == kind::tokens) {
        tokens_limit = t.limit;
        break;
      }
    }
    ctx.limits.reset();  // nothing was reserved (cs is gone with it)
    if (c.k == kind::budget) {
      auto e = core::make_error(core::errc::rate_limited, budget_message(c, d.used));
      e.type = "budget_exceeded";
      e.retryable = false;
      return verdict::fail(std::move(e));
    }
    const std::int64_t reset_ms = d.reset_ms > 0 ? d.reset_ms : 1000;
    const auto reset_at = utc_text(now_() + std::chrono::milliseconds{reset_ms});
    auto e = core::make_error(core::errc::rate_limited,
                              "Rate limit exceeded for " + c.scope + ": " + c.id + ". Limit type: " + family_of(c.k) +
                                  ". Current limit: " + num(c.limit) + ", Remaining: 0. Limit resets at: " + reset_at);
    e.type = "throttling_error";
    e.retryable = false;
    e.retry_after = num(ceil_seconds(reset_ms));
    // The bare OpenAI-style headers from the limit that refused (a parallel limit is
    // reported in the requests family), the tokens ones from the request's tpm check.
    std::string& h = ctx.limit_headers;
    const char* fam = c.k == kind::tokens ? "tokens" : "requests";
    const std::string limit_s = num(c.limit);
    const std::string reset_s = num(ceil_seconds(reset_ms)) + "s";
    http::append_head_line(h, std::string("x-ratelimit-limit-") + fam, limit_s);
    http::append_head_line(h, std::string("x-ratelimit-remaining-") + fam, "0");
    http::append_head_line(h, std::string("x-ratelimit-reset-") + fam, reset_s);
    if (tokens_limit && c.k != kind::tokens) {
      http::append_head_line(h, "x-ratelimit-limit-tokens", num(*tokens_limit));
    }
    http::append_head_line(h, std::string("x-ratelimit-") + c.scope + "-limit-" + family_of(c.k), limit_s);
    http::append_head_line(h, std::string("x-ratelimit-") + c.scope + "-remaining-" + family_of(c.k), "0");
    http::append_head_line(h, "rate_limit_type", family_of(c.k));
    http::append_head_line(h, "reset_at", reset_at);
    return verdict::fail(std::move(e));
  }
  if (!d.ok) {
    ctx.limits.reset();
    return verdict::next();  // malformed answer: never refuse on it
  }
  slot.shared = d.shared;
  // Success: LiteLLM's per-scope headers with what is left.
  std::string& h = ctx.limit_headers;
  h.reserve(h.size() + 160 * cs.size());
  // Written in place (names from fixed parts, values numbers: nothing to sanitise), a
  // line at a time: put together on the stack, then one append.
  auto put = [&h](std::string_view scope, std::string_view part, std::string_view fam, std::int64_t v) {
    constexpr std::string_view lead = "x-ratelimit-";
    char line[192];
    if (lead.size() + scope.size() + part.size() + fam.size() + 2 + 20 + 2 > sizeof line) {
      // A scope this long is never made here; written piece by piece all the same.
      h.append(lead).append(scope).append(part).append(fam).append(": ").append(std::to_string(v)).append("\r\n");
      return;
    }
    char* p = line;
    auto copy = [&p](std::string_view t) {
      std::memcpy(p, t.data(), t.size());
      p += t.size();
    };
    copy(lead);
    copy(scope);
    copy(part);
    copy(fam);
    *p++ = ':';
    *p++ = ' ';
    p = std::to_chars(p, line + sizeof line, v).ptr;
    *p++ = '\r';
    *p++ = '\n';
    h.append(line, static_cast<std::size_t>(p - line));
  };
  for (std::size_t i = 0; i < cs.size(); ++i) {
    const auto& c = cs[i];
    if (c.k != kind::budget) {
      const std::string_view fam = family_name(c.k);
      put(c.scope, "-limit-", fam, c.limit);
      if (i < d.remaining.size()) {
        put(c.scope, "-remaining-", fam, std::max<std::int64_t>(0, d.remaining[i]));
      }
    }
    if (c.k != kind::requests) {
      const std::uint64_t lease = i < d.lease.size() ? d.lease[i] : 0;
      slot.pieces.push_back({i, lease != 0 ? std::string() : slot.id, c.amount, d.shared, lease});
    }
  }
  bool has_budget = false;
  for (const auto& c : cs) {
    has_budget = has_budget || c.k == kind::budget;
  }
  if (has_budget && ctx.stream && slot.output_price > 0) {
    // Completion tokens the reservation covers (one per streamed event, as billed_of
    // estimates a stream whose usage never came).
    ctx.stream_token_allowance = slot.completion_covered;
    ctx.stream_limit = this;
  }
  return verdict::next();
}

net::awaitable<std::optional<core::error>> limits_stage::extend(request_ctx& ctx, long long tokens) {
  if (!ctx.limits) {
    co_return std::nullopt;
  }
  auto slot = ctx.limits;  // kept alive across the waits
  const long long wanted = std::max<long long>(tokens - ctx.stream_token_allowance, 1);
  const double nano_per_token = slot->output_price * limits::nano_per_usd;
  long long more = wanted;
  std::optional<core::error> refusal;
  // Exactly the tokens this read needs; when they do not fit, what still fits (the
  // budget is spent up to the last whole token), then the stream ends.
  for (int attempt = 0; attempt < 4 && more > 0; ++attempt) {
    std::vector<check> budgets;
    std::vector<std::size_t> index;
    for (std::size_t i = 0; i < slot->checks.size(); ++i) {
      if (slot->checks[i].k == kind::budget) {
        auto c = slot->checks[i];
        c.amount = limits::to_nano(static_cast<double>(more) * slot->output_price);
        budgets.push_back(std::move(c));
        index.push_back(i);
      }
    }
    if (budgets.empty()) {
      co_return std::nullopt;
    }
    if (slot->id.empty()) {
      slot->id = next_reservation_id();
    }
    const std::string member = slot->id + "#" + std::to_string(++slot->extensions);
    limits::decision d;
    if (!engine_.try_local(budgets, d)) {
      d = co_await engine_.reserve(budgets, member);
    }
    if (d.ok) {
      for (std::size_t j = 0; j < budgets.size(); ++j) {
        slot->pieces.push_back({index[j], member, budgets[j].amount, d.shared, j < d.lease.size() ? d.lease[j] : 0});
      }
      ctx.stream_token_allowance += more;
      if (more == wanted) {
        co_return std::nullopt;
      }
      break;  // a part: the stream ends after it
    }
    const auto& c = d.failed >= 0 && static_cast<std::size_t>(d.failed) < budgets.size()
                        ? budgets[static_cast<std::size_t>(d.failed)]
                        : budgets.front();
    auto e = core::make_error(core::errc::rate_limited, budget_message(c, d.used));
    e.type = "budget_exceeded";
    e.retryable = false;
    refusal = std::move(e);
    const double room = static_cast<double>(c.limit - d.used);
    const long long fit = nano_per_token > 0 ? static_cast<long long>(std::floor(room / nano_per_token)) : 0;
    more = std::min(more - 1, fit);
  }
  if (!refusal) {
    auto e = core::make_error(core::errc::rate_limited, "Budget has been exceeded!");
    e.type = "budget_exceeded";
    refusal = std::move(e);
  }
  co_return refusal;
}

void limits_stage::on_finish(const request_ctx& ctx) noexcept {
  if (!ctx.limits) {
    return;
  }
  try {
    const auto& slot = *ctx.limits;
    std::int64_t cost = -1;
    std::int64_t tokens = 0;
    boost::container::small_vector<bool, 8> charged(slot.checks.size(), false);
    for (const auto& p : slot.pieces) {
      const auto& c = slot.checks[p.check];
      limits::settle_op op;
      if (p.lease != 0) {
        op.c.k = c.k;  // a lease knows its counter
        op.lease = p.lease;
      } else {
        op.c = c;
        op.member = p.member;
      }
      op.reserved = p.amount;
      if (c.k == kind::budget || c.k == kind::tokens) {
        if (cost < 0) {
          const auto b = billed_of(ctx, prices_);
          cost = limits::to_nano(b.spend);
          tokens = b.t.prompt + b.t.completion;
        }
        // The actual amount is charged once per check (a stream's extensions only release).
        if (!charged[p.check]) {
          op.actual = c.k == kind::budget ? cost : tokens;
          charged[p.check] = true;
        }
      } else {
        op.reserved = 1;  // a parallel slot
      }
      engine_.settle(std::move(op), p.shared);
    }
    for (const auto& c : slot.charge_only) {
      if (cost < 0) {
        cost = limits::to_nano(billed_of(ctx, prices_).spend);
      }
      if (cost > 0) {
        limits::settle_op op;
        op.c = c;
        op.actual = cost;  // nothing reserved: only the spend is added
        engine_.settle(std::move(op), true);
      }
    }
  } catch (const std::exception& e) {
    spdlog::error("limits: settle failed (call_id={}): {}", ctx.req.call_id, e.what());
  }
}

}  // namespace switchyard::pipeline
