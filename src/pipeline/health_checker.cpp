#include "switchyard/pipeline/health_checker.hpp"
#include "switchyard/core/seconds.hpp"

#include "switchyard/providers/adapter.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>

namespace switchyard::pipeline {

using json = nlohmann::json;

namespace {

std::string mode_of(const config::deployment& d) {
  if (d.model_info.is_object()) {
    if (auto it = d.model_info.find("mode"); it != d.model_info.end() && it->is_string()) {
      return it->get<std::string>();
    }
  }
  return "chat";
}

std::optional<double> info_number(const config::deployment& d, const char* key) {
  if (d.model_info.is_object()) {
    if (auto it = d.model_info.find(key); it != d.model_info.end() && it->is_number()) {
      return it->get<double>();
    }
  }
  return std::nullopt;
}

std::string info_string(const config::deployment& d, const char* key) {
  if (d.model_info.is_object()) {
    if (auto it = d.model_info.find(key); it != d.model_info.end() && it->is_string()) {
      return it->get<std::string>();
    }
  }
  return {};
}

bool matches(const config::deployment& d, const std::string& model) {
  return model.empty() || d.model_name == model || d.model == model;
}

// The calls run concurrently; the caller waits for the last one.
struct gather {
  explicit gather(net::any_io_executor ex, std::size_t n)
      : results(n), pending(n), done(ex, std::chrono::steady_clock::time_point::max()) {}
  std::vector<std::optional<std::pair<bool, json>>> results;
  std::size_t pending;
  net::steady_timer done;
};

}  // namespace

health_options health_options::from(const config::config& cfg) {
  health_options o;
  const auto& g = cfg.general.raw;
  if (auto it = g.find("background_health_checks"); it != g.end() && it->is_boolean()) {
    o.background = it->get<bool>();
  }
  if (auto it = g.find("health_check_interval"); it != g.end() && it->is_number() && it->get<double>() > 0) {
    o.interval = core::saturated_millis(it->get<double>());
  }
  if (const char* v = std::getenv("HEALTH_CHECK_TIMEOUT_SECONDS"); v != nullptr && *v != '\0') {
    char* end = nullptr;
    double s = std::strtod(v, &end);
    if (end != v && s > 0) {
      o.default_timeout = core::saturated_millis(s);
    } else {
      spdlog::warn("ignoring HEALTH_CHECK_TIMEOUT_SECONDS='{}': not a positive number of seconds", v);
    }
  }
  return o;
}

health_checker::health_checker(net::any_io_executor ex, std::shared_ptr<const config::config> cfg,
                               upstream_caller& upstream, router::router& rt, health_options opts, publisher publish)
    : ex_(ex),
      cfg_(std::move(cfg)),
      upstream_(upstream),
      tokens_(*cfg_, upstream),
      router_(rt),
      opts_(opts),
      publish_(std::move(publish)),
      tick_(ex) {}

health_checker::~health_checker() { *alive_ = false; }

std::chrono::milliseconds health_checker::timeout_of(const config::deployment& d) const {
  if (auto s = info_number(d, "health_check_timeout"); s && *s > 0) {
    return core::saturated_millis(*s);
  }
  return opts_.default_timeout;
}

net::awaitable<health_checker::result> health_checker::check_one(config::deployment d) {
  result out;
  const std::string mode = mode_of(d);
  out.entry = {{"model", d.model},
               {"model_name", d.model_name},
               {"model_id", d.id},
               {"custom_llm_provider", d.provider->name},
               {"mode", mode}};
  if (!d.api_base.empty()) {
    out.entry["api_base"] = d.api_base;
  }
  if (auto hm = info_string(d, "health_check_model"); !hm.empty()) {
    // A full LiteLLM model name ("openai/gpt-4o-mini"): the provider prefix is dropped.
    const std::string prefix = std::string(d.provider->name) + "/";
    d.upstream_model = hm.rfind(prefix, 0) == 0 ? hm.substr(prefix.size()) : hm;
    out.entry["health_check_model"] = hm;
  }
  if (d.mock_response) {
    out.healthy = true;  // answered without a provider, as every request to it is
    co_return out;
  }
  providers::call_type type = providers::call_type::chat;
  json body;
  if (mode == "embedding") {
    type = providers::call_type::embedding;
    body = {{"model", d.model_name}, {"input", json::array({"test from litellm"})}};
  } else if (mode == "completion") {
    type = providers::call_type::completion;
    body = {{"model", d.model_name}, {"prompt", "ping"}, {"max_tokens", 1}};
  } else {
    body = {{"model", d.model_name},
            {"messages", json::array({{{"role", "user"}, {"content", "ping"}}})},
            {"max_tokens", 1}};
  }
  const auto timeout = timeout_of(d);
  const auto& adapter = providers::adapter_for(*d.provider);
  std::string bearer;
  std::optional<core::error> err;
  if (token_source* src = tokens_.source_for(d)) {
    auto t = co_await src->get();
    if (t) {
      bearer = std::move(*t);
    } else {
      err = t.error();
    }
  }
  auto call = adapter.build(type, d, body, providers::build_options{false, true, bearer});
  int status = 0;
  if (!err && !call) {
    err = call.error();
  } else if (!err) {
    upstream::request ur;
    ur.url = std::move(call->url);
    ur.headers = std::move(call->headers);
    ur.body = call->joined_body();
    ur.timeout = timeout;
    ur.connect_timeout = std::min(timeout, std::chrono::milliseconds{10'000});
    auto r = co_await upstream_.send(std::move(ur));
    if (!r) {
      err = r.error();
    } else if (r->status >= 400) {
      status = r->status;
      err = adapter.translate_error(d, r->status, r->body);
    }
  }
  if (err) {
    out.entry["error"] = err->message;
    out.entry["exception_status"] = status != 0 ? status : err->status;
  } else {
    out.healthy = true;
  }
  co_return out;
}

namespace {

// One deployment's check, spawned; stores its result and wakes the waiter after the last.
net::awaitable<void> run_one(health_checker* self, std::shared_ptr<bool> alive, std::shared_ptr<gather> g,
                             std::size_t i, config::deployment d,
                             net::awaitable<std::pair<bool, json>> (*check)(health_checker*, config::deployment)) {
  auto r = co_await check(self, std::move(d));
  if (!*alive) {
    co_return;
  }
  g->results[i] = std::move(r);
  if (--g->pending == 0) {
    g->done.cancel();
  }
}

}  // namespace

net::awaitable<json> health_checker::check_now(std::string model) {
  std::vector<config::deployment> deps;
  for (const auto& d : cfg_->model_list) {
    if (!matches(d, model)) {
      continue;
    }
    if (d.model_name.find('*') != std::string::npos && info_string(d, "health_check_model").empty()) {
      continue;  // a wildcard route has no model to call without health_check_model
    }
    const auto mode = mode_of(d);
    if (mode != "chat" && mode != "completion" && mode != "embedding") {
      continue;  // image, audio, ...: not served by this gateway, not checked
    }
    deps.push_back(d);
  }
  auto g = std::make_shared<gather>(ex_, deps.size());
  auto check = +[](health_checker* self, config::deployment d) -> net::awaitable<std::pair<bool, json>> {
    auto r = co_await self->check_one(std::move(d));
    co_return std::pair<bool, json>{r.healthy, std::move(r.entry)};
  };
  for (std::size_t i = 0; i < deps.size(); ++i) {
    net::co_spawn(ex_, run_one(this, alive_, g, i, deps[i], check), net::detached);
  }
  if (g->pending > 0) {
    co_await g->done.async_wait(net::as_tuple(net::use_awaitable));
  }
  std::vector<std::pair<std::string, result>> results;
  for (std::size_t i = 0; i < deps.size(); ++i) {
    if (g->results[i]) {
      result r;
      r.healthy = g->results[i]->first;
      r.entry = std::move(g->results[i]->second);
      results.emplace_back(deps[i].id, std::move(r));
    }
  }
  if (model.empty() && opts_.background) {
    apply_to_router(results);
    last_ = results;
  }
  co_return summarize(results, {});
}

json health_checker::summarize(const std::vector<std::pair<std::string, result>>& results, const std::string& model) {
  json healthy = json::array();
  json unhealthy = json::array();
  for (const auto& [id, r] : results) {
    if (!model.empty() && r.entry.value("model_name", "") != model && r.entry.value("model", "") != model) {
      continue;
    }
    (r.healthy ? healthy : unhealthy).push_back(r.entry);
  }
  const auto hc = healthy.size();
  const auto uc = unhealthy.size();
  return {{"healthy_endpoints", std::move(healthy)},
          {"unhealthy_endpoints", std::move(unhealthy)},
          {"healthy_count", hc},
          {"unhealthy_count", uc}};
}

void health_checker::apply_to_router(const std::vector<std::pair<std::string, result>>& results) {
  const auto now = std::chrono::steady_clock::now();
  for (const auto& [id, r] : results) {
    if (r.healthy) {
      continue;
    }
    const config::deployment* d = nullptr;
    for (const auto& x : cfg_->model_list) {
      if (x.id == id) {
        d = &x;
      }
    }
    const auto hold = opts_.interval + (d != nullptr ? timeout_of(*d) : opts_.default_timeout);
    router::cooldown_entry e;
    e.until = now + hold;
    e.status = r.entry.value("exception_status", 0);
    e.message = "health check failed: " + r.entry.value("error", std::string());
    e.cooldown_time_s = std::chrono::duration<double>(hold).count();
    router_.cooldown_state().cool(id, e);
    if (publish_) {
      publish_(id, e);
    }
  }
}

net::awaitable<core::result<json>> health_checker::report(std::string model) {
  const bool known = std::any_of(cfg_->model_list.begin(), cfg_->model_list.end(),
                                 [&](const config::deployment& d) { return matches(d, model); });
  if (!known) {
    auto e = core::make_error(core::errc::not_found, "Model not found: " + model, "model");
    co_return e;
  }
  if (opts_.background && last_) {
    co_return core::result<json>{boost::system::in_place_value, summarize(*last_, model)};
  }
  auto out = co_await check_now(model);
  co_return core::result<json>{boost::system::in_place_value, std::move(out)};
}

net::awaitable<void> health_checker::run_background() {
  auto alive = alive_;
  while (!stopped_) {
    auto out = co_await check_now({});
    if (!*alive || stopped_) {
      co_return;
    }
    if (out["unhealthy_count"].get<std::size_t>() > 0) {
      std::vector<std::string> names;
      for (const auto& e : out["unhealthy_endpoints"]) {
        names.push_back(e.value("model_id", std::string()));
        if (on_unhealthy_) {
          on_unhealthy_(e);
        }
      }
      spdlog::warn("health checks: {} unhealthy deployment(s) held back from routing: {}", names.size(),
                   fmt::join(names, ", "));
    }
    tick_.expires_after(opts_.interval);
    co_await tick_.async_wait(net::as_tuple(net::use_awaitable));
    if (!*alive) {
      co_return;
    }
  }
}

void health_checker::stop() {
  stopped_ = true;
  tick_.cancel();
}

}  // namespace switchyard::pipeline
