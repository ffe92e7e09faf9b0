#include "switchyard/router/router.hpp"

#include "switchyard/router/policy.hpp"
#include "switchyard/core/ids.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace switchyard::router {

using clock = std::chrono::steady_clock;

namespace {

double weight_of(const config::deployment* d) {
  if (d->weight) {
    return *d->weight;
  }
  if (d->rpm) {
    return *d->rpm;
  }
  if (d->tpm) {
    return *d->tpm;
  }
  return 1.0;
}

std::size_t text_size(const nlohmann::json& v) {
  if (v.is_string()) {
    return v.get_ref<const std::string&>().size();
  }
  std::size_t n = 0;
  if (v.is_array()) {
    for (const auto& x : v) {
      n += text_size(x);
    }
  } else if (v.is_object()) {
    for (auto it = v.begin(); it != v.end(); ++it) {
      if (it.key() == "content" || it.key() == "text") {
        n += text_size(it.value());
      } else if (it.value().is_structured()) {
        n += text_size(it.value());
      }
    }
  }
  return n;
}

std::optional<double> max_input_tokens(const config::deployment& d) {
  if (!d.model_info.is_object()) {
    return std::nullopt;
  }
  auto it = d.model_info.find("max_input_tokens");
  if (it == d.model_info.end()) {
    return std::nullopt;
  }
  if (it->is_number()) {
    return it->get<double>();
  }
  if (it->is_string()) {
    try {
      return std::stod(it->get<std::string>());
    } catch (...) {
      return std::nullopt;
    }
  }
  return std::nullopt;
}

std::string replace_star(const std::string& s, const std::string& part) {
  auto star = s.find('*');
  if (star == std::string::npos) {
    return s;
  }
  return s.substr(0, star) + part + s.substr(star + 1);
}

}  // namespace

in_flight::in_flight(router* r, std::string id) : r_(r), id_(std::move(id)) { ++r_->stats_[id_].in_flight; }

in_flight::in_flight(in_flight&& o) noexcept : r_(o.r_), id_(std::move(o.id_)) { o.r_ = nullptr; }

in_flight& in_flight::operator=(in_flight&& o) noexcept {
  if (this != &o) {
    if (r_ != nullptr) {
      --r_->stats_[id_].in_flight;
    }
    r_ = o.r_;
    id_ = std::move(o.id_);
    o.r_ = nullptr;
  }
  return *this;
}

in_flight::~in_flight() {
  if (r_ != nullptr) {
    --r_->stats_[id_].in_flight;
  }
}

router::router(std::shared_ptr<const config::config> cfg)
    : cfg_(std::move(cfg)), cooldowns_(cooldown_settings::from(*cfg_)), rng_(std::random_device{}()) {
  build_tables();
}

std::string deployment_fingerprint(const config::deployment& d) {
  std::string all = d.model_name;
  all += '\n';
  all += d.litellm_params.dump();
  all += '\n';
  all += d.model_info.dump();
  return core::sha256_hex(all);
}

deployment_diff diff_deployments(const config::config& before, const config::config& after) {
  std::unordered_map<std::string, std::string> old_prints;
  for (const auto& d : before.model_list) {
    old_prints.emplace(d.id, deployment_fingerprint(d));
  }
  deployment_diff out;
  for (const auto& d : after.model_list) {
    auto it = old_prints.find(d.id);
    if (it == old_prints.end()) {
      out.added.push_back(d.id);
      continue;
    }
    (it->second == deployment_fingerprint(d) ? out.unchanged : out.changed).push_back(d.id);
    old_prints.erase(it);
  }
  for (const auto& d : before.model_list) {
    if (old_prints.count(d.id) != 0) {
      out.removed.push_back(d.id);
    }
  }
  return out;
}

deployment_diff router::reload(std::shared_ptr<const config::config> next) {
  auto diff = diff_deployments(*cfg_, *next);
  cfg_ = std::move(next);
  groups_.clear();
  wildcard_groups_.clear();
  aliases_.clear();
  hidden_aliases_.clear();
  strategy_ = strategy::simple_shuffle;
  pre_call_checks_ = false;
  latency_ttl_ = std::chrono::duration<double>(3600.0);
  latency_buffer_ = 0.0;
  build_tables();
  cooldowns_.set_settings(cooldown_settings::from(*cfg_));
  for (const auto* ids : {&diff.changed, &diff.removed}) {
    for (const auto& id : *ids) {
      cooldowns_.forget(id);
      usage_local_.erase(id);
      usage_shared_.erase(id);
      if (auto it = stats_.find(id); it != stats_.end()) {
        if (it->second.in_flight == 0) {
          stats_.erase(it);
        } else {
          it->second.latency.clear();
          it->second.ttft.clear();
        }
      }
    }
  }
  return diff;
}

void router::build_tables() {
  for (const auto& d : cfg_->model_list) {
    auto& g = groups_[d.model_name];
    if (g.empty() && !d.model_name.empty() && d.model_name.back() == '*') {
      wildcard_groups_.push_back(d.model_name);
    }
    g.push_back(&d);
  }
  std::stable_sort(wildcard_groups_.begin(), wildcard_groups_.end(),
                   [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  const auto& aliases = cfg_->router.model_group_alias;
  if (aliases.is_object()) {
    for (auto it = aliases.begin(); it != aliases.end(); ++it) {
      if (it->is_string()) {
        aliases_[it.key()] = it->get<std::string>();
      } else if (it->is_array()) {
        // A list: the first group in it that the config has.
        for (const auto& g : *it) {
          if (g.is_string() && groups_.count(g.get<std::string>()) != 0) {
            aliases_[it.key()] = g.get<std::string>();
            break;
          }
        }
      } else if (it->is_object() && it->contains("model") && (*it)["model"].is_string()) {
        aliases_[it.key()] = (*it)["model"].get<std::string>();
        if (it->value("hidden", false)) {
          hidden_aliases_.push_back(it.key());
        }
      }
    }
  }
  const std::string& s = cfg_->router.routing_strategy;
  if (s == "least-busy") {
    strategy_ = strategy::least_busy;
  } else if (s == "latency-based-routing") {
    strategy_ = strategy::latency_based;
  } else if (s == "usage-based-routing-v2" || s == "usage-based-routing") {
    strategy_ = strategy::usage_based;
  }
  // Any other value runs as simple-shuffle; the config loader has said so (an unknown
  // strategy as a warning, LiteLLM's cost-based and provider-budget ones as unsupported).
  const auto& raw = cfg_->router.raw;
  if (raw.is_object()) {
    if (auto it = raw.find("enable_pre_call_checks"); it != raw.end() && it->is_boolean()) {
      pre_call_checks_ = it->get<bool>();
    }
    if (auto it = raw.find("routing_strategy_args"); it != raw.end() && it->is_object()) {
      if (auto t = it->find("ttl"); t != it->end() && t->is_number() && t->get<double>() > 0) {
        latency_ttl_ = std::chrono::duration<double>(t->get<double>());
      }
      if (auto b = it->find("lowest_latency_buffer"); b != it->end() && b->is_number()) {
        latency_buffer_ = std::max(0.0, b->get<double>());
      }
    }
  }
}

router::match router::find(std::string_view requested) const {
  std::string name(requested);
  if (groups_.count(name) != 0) {
    return {name, {}, false};
  }
  if (auto a = aliases_.find(name); a != aliases_.end() && groups_.count(a->second) != 0) {
    return {a->second, {}, false};
  }
  for (const auto& pattern : wildcard_groups_) {
    std::string_view prefix(pattern.data(), pattern.size() - 1);
    if (name.size() > prefix.size() && std::string_view(name).substr(0, prefix.size()) == prefix) {
      return {pattern, name.substr(prefix.size()), true};
    }
  }
  return {};
}

std::string router::resolve(std::string_view requested) const { return find(requested).group; }

std::string router::served_group(std::string_view requested) const {
  auto m = find(requested);
  return m.wildcard ? std::string(requested) : std::move(m.group);
}

std::vector<std::string> request_tags(const nlohmann::json& body) {
  std::vector<std::string> out;
  auto take = [&out](const nlohmann::json& v) {
    if (v.is_string()) {
      out.push_back(v.get<std::string>());
    } else if (v.is_array()) {
      for (const auto& t : v) {
        if (t.is_string()) {
          out.push_back(t.get<std::string>());
        }
      }
    }
  };
  if (!body.is_object()) {
    return out;
  }
  if (auto it = body.find("tags"); it != body.end() && !it->is_null()) {
    take(*it);
    return out;
  }
  if (auto md = body.find("metadata"); md != body.end() && md->is_object()) {
    if (auto it = md->find("tags"); it != md->end()) {
      take(*it);
    }
  }
  return out;
}

// LiteLLM's tag filter: with request tags, the deployments whose tags match (any of
// them, or all when match_any is false) and those tagged "default"; without, the
// "default"-tagged ones if any, else all. Untagged deployments never match a tag.
std::vector<const config::deployment*> router::filter_by_tags(const std::vector<const config::deployment*>& deps,
                                                              const std::vector<std::string>& tags, bool match_any) {
  auto has = [](const config::deployment* d, std::string_view t) {
    return std::find(d->tags.begin(), d->tags.end(), t) != d->tags.end();
  };
  std::vector<const config::deployment*> out;
  if (tags.empty()) {
    for (auto* d : deps) {
      if (has(d, "default")) {
        out.push_back(d);
      }
    }
    return out.empty() ? deps : out;
  }
  for (auto* d : deps) {
    if (d->tags.empty()) {
      continue;
    }
    bool match = !match_any;
    for (const auto& t : tags) {
      if (match_any && has(d, t)) {
        match = true;
        break;
      }
      if (!match_any && !has(d, t)) {
        match = false;
        break;
      }
    }
    if (match || has(d, "default")) {
      out.push_back(d);
    }
  }
  return out;
}

std::size_t router::group_size(std::string_view requested) const {
  auto m = find(requested);
  if (m.group.empty()) {
    return 0;
  }
  return groups_.at(m.group).size();
}

std::vector<std::shared_ptr<const config::deployment>> router::deployments_of(std::string_view requested) const {
  std::vector<std::shared_ptr<const config::deployment>> out;
  auto m = find(requested);
  if (m.group.empty()) {
    return out;
  }
  for (const auto* d : groups_.at(m.group)) {
    out.push_back(materialize(d, m, requested));
  }
  return out;
}

std::size_t router::healthy_count(std::string_view requested) const {
  auto m = find(requested);
  if (m.group.empty()) {
    return 0;
  }
  const auto now = clock::now();
  const auto& deps = groups_.at(m.group);
  return static_cast<std::size_t>(
      std::count_if(deps.begin(), deps.end(), [&](auto* d) { return !cooldowns_.is_cooled(d->id, now); }));
}

std::shared_ptr<const config::deployment> router::materialize(const config::deployment* d, const match& m,
                                                              std::string_view requested) const {
  if (!m.wildcard) {
    return std::shared_ptr<const config::deployment>(cfg_, d);  // aliases the config snapshot
  }
  auto copy = std::make_shared<config::deployment>(*d);
  copy->model_name = std::string(requested);
  copy->model = replace_star(d->model, m.wildcard_part);
  copy->upstream_model = replace_star(d->upstream_model, m.wildcard_part);
  if (copy->upstream_model.empty()) {
    copy->upstream_model = m.wildcard_part;
  }
  return copy;
}

core::result<std::shared_ptr<const config::deployment>> router::pick(std::string_view requested,
                                                                     std::string_view route,
                                                                     const pick_options& opts,
                                                                     const std::vector<std::string>* tags) {
  auto m = find(requested);
  if (m.group.empty() && opts.allow_deployment_id) {
    for (const auto& d : cfg_->model_list) {
      if (d.id == requested) {
        return std::shared_ptr<const config::deployment>(cfg_, &d);
      }
    }
  }
  if (m.group.empty()) {
    return core::make_error(core::errc::model_not_found,
                            std::string(route) + ": Invalid model name passed in model=" + std::string(requested) +
                                ". Call `/v1/models` to view available models for your key.",
                            "model");
  }
  const auto now = clock::now();
  const std::vector<const config::deployment*>* group_deps = &groups_.at(m.group);
  std::vector<const config::deployment*> tagged;
  if (cfg_->router.enable_tag_filtering) {
    static const std::vector<std::string> no_tags;
    const auto& request = tags != nullptr ? *tags : no_tags;
    tagged = filter_by_tags(*group_deps, request, cfg_->router.tag_filtering_match_any);
    if (tagged.empty()) {
      std::string list;
      for (const auto& t : request) {
        list += (list.empty() ? "'" : ", '") + t + "'";
      }
      return core::make_error(core::errc::bad_request,
                              "No deployments match the request's tags (router_settings.enable_tag_filtering). "
                              "Passed model=" +
                                  std::string(requested) + " and tags=[" + list + "]",
                              "tags");
    }
    group_deps = &tagged;
  }
  const auto& deps = *group_deps;
  std::vector<const config::deployment*> healthy;
  std::optional<clock::time_point> first_back;
  std::vector<std::string> cooled;
  for (auto* d : deps) {
    if (auto until = cooldowns_.deadline(d->id, now)) {
      cooled.push_back(d->id);
      if (!first_back || *until < *first_back) {
        first_back = *until;
      }
      continue;
    }
    healthy.push_back(d);
  }
  if (healthy.empty()) {
    const double secs = std::chrono::duration<double>(*first_back - now).count();
    const long long n = std::max(1LL, static_cast<long long>(std::ceil(secs)));
    auto e = core::make_error(core::errc::rate_limited,
                              "No deployments available for selected model, Try again in " + std::to_string(n) +
                                  " seconds. Passed model=" + std::string(requested) +
                                  ". pre-call-checks=" + (pre_call_checks_ ? "True" : "False") +
                                  ", cooldown_list=" + py_list(cooled));
    e.retry_after = std::to_string(n);
    return e;
  }
  std::vector<const config::deployment*> open;
  for (auto* d : healthy) {
    if (d->max_parallel_requests && *d->max_parallel_requests > 0 &&
        in_flight_count(d->id) >= *d->max_parallel_requests) {
      continue;
    }
    open.push_back(d);
  }
  if (open.empty()) {
    auto e = core::make_error(core::errc::rate_limited,
                              "No deployments available for selected model: every deployment is at its "
                              "max_parallel_requests. Passed model=" +
                                  std::string(requested));
    e.retry_after = "1";
    return e;
  }
  if (!opts.avoid.empty() && open.size() > 1) {
    std::vector<const config::deployment*> fresh;
    for (auto* d : open) {
      if (std::find(opts.avoid.begin(), opts.avoid.end(), d->id) == opts.avoid.end()) {
        fresh.push_back(d);
      }
    }
    if (!fresh.empty()) {
      open = std::move(fresh);
    }
  }
  if (strategy_ == strategy::usage_based) {
    std::vector<const config::deployment*> under;
    for (auto* d : open) {
      const auto u = usage_of(d->id);
      const bool rpm_ok = !d->rpm || static_cast<double>(u.rpm + 1) <= *d->rpm;
      const bool tpm_ok = !d->tpm || static_cast<double>(u.tpm + static_cast<long long>(opts.estimated_tokens)) <= *d->tpm;
      if (rpm_ok && tpm_ok) {
        under.push_back(d);
      }
    }
    if (under.empty()) {
      auto e = core::make_error(core::errc::rate_limited,
                                "No deployments available for selected model, every deployment is at its rpm/tpm "
                                "limit for this minute. Passed model=" +
                                    std::string(requested));
      const auto secs = 60 - std::chrono::duration_cast<std::chrono::seconds>(
                                 std::chrono::system_clock::now().time_since_epoch())
                                     .count() %
                                 60;
      e.retry_after = std::to_string(secs);
      return e;
    }
    open = std::move(under);
  }
  if (pre_call_checks_) {
    std::vector<const config::deployment*> fits;
    for (auto* d : open) {
      auto limit = max_input_tokens(*d);
      if (!limit || opts.estimated_tokens == 0 || static_cast<double>(opts.estimated_tokens) <= *limit) {
        fits.push_back(d);
      }
    }
    if (fits.empty()) {
      return core::make_error(core::errc::bad_request,
                              "litellm.ContextWindowExceededError: litellm._pre_call_checks: Context Window exceeded "
                              "for given call. No models have context window large enough for this call. "
                              "Passed model=" +
                                  std::string(requested) + ", estimated input tokens=" +
                                  std::to_string(opts.estimated_tokens));
    }
    int lowest = std::numeric_limits<int>::max();
    for (auto* d : fits) {
      if (d->order) {
        lowest = std::min(lowest, *d->order);
      }
    }
    if (lowest != std::numeric_limits<int>::max()) {
      std::erase_if(fits, [&](auto* d) { return !d->order || *d->order != lowest; });
    }
    open = std::move(fits);
  }
  return materialize(choose(open, opts), m, requested);
}

const config::deployment* router::choose(const std::vector<const config::deployment*>& c, const pick_options& opts) {
  if (c.size() == 1) {
    return c.front();
  }
  auto random_of = [&](const std::vector<const config::deployment*>& v) {
    std::uniform_int_distribution<std::size_t> one(0, v.size() - 1);
    return v[one(rng_)];
  };
  if (strategy_ == strategy::least_busy) {
    int best = std::numeric_limits<int>::max();
    std::vector<const config::deployment*> tied;
    for (auto* d : c) {
      const int n = in_flight_count(d->id);
      if (n < best) {
        best = n;
        tied.clear();
      }
      if (n == best) {
        tied.push_back(d);
      }
    }
    return random_of(tied);
  }
  if (strategy_ == strategy::usage_based) {
    long long best = std::numeric_limits<long long>::max();
    std::vector<const config::deployment*> tied;
    for (auto* d : c) {
      const long long t = usage_of(d->id).tpm;
      if (t < best) {
        best = t;
        tied.clear();
      }
      if (t == best) {
        tied.push_back(d);
      }
    }
    return random_of(tied);
  }
  if (strategy_ == strategy::latency_based) {
    const auto now = clock::now();
    std::vector<double> avg;
    avg.reserve(c.size());
    for (auto* d : c) {
      auto& st = stats_[d->id];
      trim(st.latency, now);
      trim(st.ttft, now);
      avg.push_back(opts.stream && !st.ttft.empty() ? average(st.ttft) : average(st.latency));
    }
    const double lowest = *std::min_element(avg.begin(), avg.end());
    std::vector<const config::deployment*> near;
    for (std::size_t i = 0; i < c.size(); ++i) {
      if (avg[i] <= lowest * (1.0 + latency_buffer_)) {
        near.push_back(c[i]);
      }
    }
    return random_of(near);
  }
  const bool all_weighted = std::all_of(c.begin(), c.end(), [](auto* d) { return weight_of(d) > 0; });
  if (!all_weighted) {
    return random_of(c);
  }
  std::vector<double> weights;
  weights.reserve(c.size());
  for (auto* d : c) {
    weights.push_back(weight_of(d));
  }
  std::discrete_distribution<std::size_t> dist(weights.begin(), weights.end());
  return c[dist(rng_)];
}

int router::in_flight_count(const std::string& id) const {
  auto it = stats_.find(id);
  return it == stats_.end() ? 0 : it->second.in_flight;
}

void router::trim(std::deque<std::pair<clock::time_point, double>>& q, clock::time_point now) const {
  const auto ttl = std::chrono::duration_cast<clock::duration>(latency_ttl_);
  while (!q.empty() && (now - q.front().first > ttl || q.size() > 1000)) {
    q.pop_front();
  }
}

double router::average(const std::deque<std::pair<clock::time_point, double>>& q) const {
  if (q.empty()) {
    return 0.0;
  }
  double sum = 0;
  for (const auto& [t, v] : q) {
    sum += v;
  }
  return sum / static_cast<double>(q.size());
}

in_flight router::track(const config::deployment& d) {
  if (strategy_ == strategy::usage_based) {
    add_usage(d.id, 1, 0);
  }
  return in_flight(this, d.id);
}

long long router::current_minute() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
             .count() /
         60;
}

router::usage_counts router::local_usage_of(const std::string& id) const {
  const long long minute = minute_now();
  if (auto it = usage_local_.find(id); it != usage_local_.end() && it->second.minute == minute) {
    return it->second;
  }
  return usage_counts{minute, 0, 0};
}

router::usage_counts router::usage_of(const std::string& id) const {
  const long long minute = minute_now();
  usage_counts out = local_usage_of(id);
  if (auto it = usage_shared_.find(id); it != usage_shared_.end() && it->second.totals.minute == minute) {
    const auto& sent = it->second.local_at_send;
    const long long rpm_since = sent.minute == minute ? out.rpm - sent.rpm : out.rpm;
    const long long tpm_since = sent.minute == minute ? out.tpm - sent.tpm : out.tpm;
    out.rpm = std::max(out.rpm, it->second.totals.rpm + std::max(0LL, rpm_since));
    out.tpm = std::max(out.tpm, it->second.totals.tpm + std::max(0LL, tpm_since));
  }
  return out;
}

void router::add_usage(const std::string& id, long long rpm, long long tpm) {
  const long long minute = minute_now();
  auto& u = usage_local_[id];
  if (u.minute != minute) {
    u = usage_counts{minute, 0, 0};
  }
  u.rpm += rpm;
  u.tpm += tpm;
  if (usage_listener_) {
    usage_listener_(id, minute, rpm, tpm);
  }
}

void router::set_shared_usage(const std::string& id, long long minute, long long rpm, long long tpm,
                              usage_counts local_at_send) {
  // Totals read from Redis are other instances' sums (or anything a writer left there):
  // held to what a minute of counted answers could reach, so adding this instance's
  // counts to them never overflows.
  constexpr long long most = 1LL << 52;
  usage_shared_[id] =
      shared_usage{usage_counts{minute, std::clamp(rpm, 0LL, most), std::clamp(tpm, 0LL, most)}, local_at_send};
}

void router::on_success(const config::deployment& d, clock::duration latency, clock::duration ttft,
                        long long tokens) {
  const auto now = clock::now();
  cooldowns_.on_success(d, now);
  if (strategy_ == strategy::usage_based && tokens > 0) {
    add_usage(d.id, 0, std::min(tokens, max_routed_tokens));
  }
  if (strategy_ == strategy::latency_based) {
    auto& st = stats_[d.id];
    st.latency.emplace_back(now, std::chrono::duration<double>(latency).count());
    trim(st.latency, now);
    if (ttft > clock::duration::zero()) {
      st.ttft.emplace_back(now, std::chrono::duration<double>(ttft).count());
      trim(st.ttft, now);
    }
  }
}

std::optional<std::chrono::milliseconds> router::on_failure(const config::deployment& d, std::string_view group,
                                                            const core::error& e) {
  failure_info f;
  f.status = e.code == core::errc::upstream_unreachable ? 0 : e.status;
  f.message = e.message;
  f.retry_after_s = retry_after_seconds(e.retry_after);
  f.error_class = class_name(classify(e));
  return cooldowns_.on_failure(d, group_size(group), f, clock::now());
}

std::vector<std::string> router::deployment_ids() const {
  std::vector<std::string> out;
  for (const auto& d : cfg_->model_list) {
    out.push_back(d.id);
  }
  return out;
}

std::size_t router::estimate_tokens(const nlohmann::json& body) {
  if (!body.is_object()) {
    return 0;
  }
  std::size_t chars = 0;
  for (const char* k : {"messages", "prompt", "input"}) {
    if (auto it = body.find(k); it != body.end()) {
      chars += text_size(*it);
    }
  }
  return chars == 0 ? 0 : chars / 4 + 1;
}

std::vector<std::string> router::public_models() const {
  std::vector<std::string> out = cfg_->model_names();
  for (const auto& [alias, group] : aliases_) {
    if (std::find(hidden_aliases_.begin(), hidden_aliases_.end(), alias) == hidden_aliases_.end() &&
        std::find(out.begin(), out.end(), alias) == out.end()) {
      out.push_back(alias);
    }
  }
  return out;
}

}  // namespace switchyard::router
