// /spend/logs, /spend/tags, /spend/calculate, /global/spend, /global/spend/keys,
// /global/spend/teams, /global/spend/models, /global/spend/report: LiteLLM's paths,
// parameters and JSON shapes (docs/spend.md, "Spend API"). Reports over days read the
// daily_spend rollups; only raw /spend/logs rows come from spend_logs.
#include "entities.hpp"
#include "spend_params.hpp"

#include "switchyard/core/json_get.hpp"
#include "switchyard/spend/pricer.hpp"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <optional>
#include <map>

namespace switchyard::admin {

namespace {

// LiteLLM's "last 30 days" (its Last30d* and MonthlyGlobalSpend views): today and the 30
// days before it.
constexpr int last_days = 30;

json parse_array(const std::string& text) { return json::parse(text); }

// A user an org_admin names must be in their organisation (403). A user that does not
// exist has spent nothing: the caller gets an empty result, not a 404.
net::awaitable<core::result<bool>> user_visible(const route_context& c, const std::string& user_id) {
  if (c.sc != scope::org || user_id.empty()) {
    co_return true;
  }
  auto row = co_await org_member_row(c, false, user_id);
  if (!row) {
    if (row.error().status == 404) {
      co_return false;
    }
    co_return row.error();
  }
  co_return true;
}

// LiteLLM's summary of /spend/logs: one object per day with data, ascending, then a zero
// day for each day after the last one up to end_date.
json summary_days(const pg::spend_summary& s, const std::string& end_day) {
  std::map<std::string, json> days;
  auto day = [&days](const std::string& d) -> json& {
    auto [it, fresh] = days.try_emplace(d);
    if (fresh) {
      it->second = json{{"users", json::object()}, {"models", json::object()}, {"spend", 0.0}};
    }
    return it->second;
  };
  for (const auto& p : s.models) {
    auto& d = day(p.day);
    d["models"][p.name] = d["models"].value(p.name, 0.0) + p.spend;
    d["spend"] = d["spend"].get<double>() + p.spend;
  }
  for (const auto& p : s.keys) {
    if (!p.name.empty()) {  // the master key's requests count in "spend" but have no key hash
      auto& d = day(p.day);
      d[p.name] = d.value(p.name, 0.0) + p.spend;
    }
  }
  for (const auto& p : s.users) {
    auto& d = day(p.day);
    d["users"][p.name] = d["users"].value(p.name, 0.0) + p.spend;
  }
  json out = json::array();
  std::string last;
  for (auto& [d, v] : days) {
    v["startTime"] = d;
    out.push_back(std::move(v));
    last = d;
  }
  if (!last.empty()) {
    for (auto d = next_day(last); d <= end_day; d = next_day(d)) {
      out.push_back(json{{"startTime", d}, {"spend", 0.0}, {"users", json::object()}, {"models", json::object()}});
    }
  }
  return out;
}

// The number of characters of a message list's text: string contents and text parts.
std::size_t message_chars(const json& messages) {
  std::size_t n = 0;
  for (const auto& m : messages) {
    if (!m.is_object()) {
      continue;
    }
    auto content = m.find("content");
    if (content == m.end()) {
      continue;
    }
    if (content->is_string()) {
      n += content->get_ref<const std::string&>().size();
    } else if (content->is_array()) {
      for (const auto& part : *content) {
        if (part.is_object() && part.contains("text") && part["text"].is_string()) {
          n += part["text"].get_ref<const std::string&>().size();
        }
      }
    }
  }
  return n;
}

// The cost of `t` on `model`: the deployment of that model group (its own prices over the
// table's), else the price table's entry for the name. nullopt: the model is unknown.
std::optional<double> cost_for(const route_context& c, const std::string& model, const spend::tokens& t) {
  if (c.deps.pricer == nullptr) {
    return std::nullopt;
  }
  if (c.deps.cfg) {
    for (const auto& d : c.deps.cfg->model_list) {
      if (d.model_name == model) {
        return c.deps.pricer->cost(d, t);
      }
    }
  }
  if (const auto* p = c.deps.pricer->table().find(model)) {
    return spend::cost_of(*p, t);
  }
  return std::nullopt;
}

// {"cost": x} for `t` on `model`; 400 naming `param` when the model's price is unknown.
core::result<json> priced(const route_context& c, const std::string& model, const spend::tokens& t,
                          const char* param) {
  auto cost = cost_for(c, model, t);
  if (!cost) {
    return bad_request("model '" + model + "' is neither in model_list nor in the price table: its cost is unknown",
                       param);
  }
  return ok(json{{"cost", *cost}});
}

long long count_of(const json& j, const char* name) { return core::count_or(j, name); }

}  // namespace

handler_result spend_logs(const route_context& c) {
  const auto& q = c.req.query;
  auto p = paged_range_params(q, false, 1000, 1000);
  if (!p) {
    co_return p.error();
  }
  auto summarize = bool_param(q, "summarize", true);
  if (!summarize) {
    co_return summarize.error();
  }
  const auto& range = p->range;
  const auto& paged = p->page;
  pg::spend_log_query lq;
  lq.api_key = key_param(q);
  lq.user_id = text_param(q, "user_id");
  lq.request_id = text_param(q, "request_id");
  lq.start_day = range.start;
  lq.end_day = range.end;
  lq.page = paged.page;
  lq.page_size = paged.page_size;
  // Internal users see their own requests whatever they ask for (LiteLLM); an org_admin
  // those of their organisation.
  if (c.sc == scope::own) {
    lq.user_id = c.self_user;
  } else if (c.sc == scope::org) {
    lq.organization_id = c.self_org;
  }
  auto visible = co_await user_visible(c, lq.user_id);
  if (!visible) {
    co_return visible.error();
  }
  if (!*visible) {
    co_return ok(json::array());
  }
  if (range.given() && *summarize && !lq.request_id.empty()) {
    auto s = co_await c.db().run(pg::request_summary_blocking, lq.request_id, lq.user_id, lq.organization_id,
                                 lq.start_day, lq.end_day);
    if (!s) {
      co_return s.error();
    }
    co_return ok(summary_days(*s, lq.end_day));
  }
  if (range.given() && *summarize) {
    // The narrowest rollup that answers: the user's, the organisation's, the key's, else all.
    pg::spend_lens lens;
    std::string key_filter = lq.api_key;
    if (!lq.user_id.empty()) {
      lens = {"user", lq.user_id};
    } else if (!lq.organization_id.empty()) {
      lens = {"org", lq.organization_id};
    } else if (!lq.api_key.empty()) {
      lens = {"key", lq.api_key};
      key_filter.clear();
    }
    auto s = co_await c.db().run(pg::spend_summary_blocking, lens, key_filter, lq.start_day, lq.end_day);
    if (!s) {
      co_return s.error();
    }
    co_return ok(summary_days(*s, lq.end_day));
  }
  auto rows = co_await c.db().run(pg::spend_log_rows_blocking, lq);
  if (!rows) {
    co_return rows.error();
  }
  co_return ok_prebuilt(std::move(*rows));  // a page is up to 1,000 rows: sent as Postgres made them
}

handler_result spend_tags(const route_context& c) {
  auto range = day_range_param(c.req.query, false);
  if (!range) {
    co_return range.error();
  }
  auto rows = co_await c.db().run(pg::tag_spend_blocking, range->start, range->end);
  if (!rows) {
    co_return rows.error();
  }
  co_return ok(parse_array(*rows));
}

namespace {

// A time as /spend/logs/ui takes it: "YYYY-MM-DD HH:MM:SS" (UTC), a real date and time.
bool is_ui_time(std::string_view t) {
  if (t.size() != 19 || t[4] != '-' || t[7] != '-' || t[10] != ' ' || t[13] != ':' || t[16] != ':') {
    return false;
  }
  int v[6] = {};
  const int at[6] = {0, 5, 8, 11, 14, 17};
  const int len[6] = {4, 2, 2, 2, 2, 2};
  for (int i = 0; i < 6; ++i) {
    for (int j = 0; j < len[i]; ++j) {
      const char ch = t[static_cast<std::size_t>(at[i] + j)];
      if (ch < '0' || ch > '9') {
        return false;
      }
      v[i] = v[i] * 10 + (ch - '0');
    }
  }
  const std::chrono::year_month_day ymd{std::chrono::year{v[0]}, std::chrono::month{static_cast<unsigned>(v[1])},
                                        std::chrono::day{static_cast<unsigned>(v[2])}};
  return ymd.ok() && v[3] < 24 && v[4] < 60 && v[5] < 60;
}

// An optional number parameter; 400 naming it when it is not one.
core::result<std::optional<double>> number_param(std::string_view query, const char* name) {
  auto v = query_param(query, name);
  if (!v || v->empty()) {
    return std::optional<double>{};
  }
  double d = 0;
  const auto* end = v->data() + v->size();
  auto [ptr, ec] = std::from_chars(v->data(), end, d);
  if (ec != std::errc() || ptr != end || !std::isfinite(d)) {
    return bad_request(std::string(name) + ": expected a number, got '" + *v + "'", name);
  }
  return std::optional<double>(d);
}

}  // namespace

// GET /spend/logs/ui: LiteLLM's paginated spend logs for its UI. Both times required
// ("YYYY-MM-DD HH:MM:SS", UTC, both ends included); filters api_key, user_id, request_id,
// team_id, min_spend, max_spend; page (1) and page_size (50, at most 100). Internal users
// see their own requests, an org_admin their organisation's, as on /spend/logs.
handler_result spend_logs_ui(const route_context& c) {
  const auto& q = c.req.query;
  const std::string start = text_param(q, "start_date");
  const std::string end = text_param(q, "end_date");
  if (start.empty() || end.empty()) {
    co_return bad_request("Start date and end date are required", start.empty() ? "start_date" : "end_date");
  }
  for (const auto& [name, value] : {std::pair<const char*, const std::string*>{"start_date", &start}, {"end_date", &end}}) {
    if (!is_ui_time(*value)) {
      co_return bad_request(std::string(name) + ": expected a time as YYYY-MM-DD HH:MM:SS (UTC), got '" + *value + "'",
                            name);
    }
  }
  auto paged = paging_params(q, 50, 100);
  if (!paged) {
    co_return paged.error();
  }
  auto min_spend = number_param(q, "min_spend");
  if (!min_spend) {
    co_return min_spend.error();
  }
  auto max_spend = number_param(q, "max_spend");
  if (!max_spend) {
    co_return max_spend.error();
  }
  pg::spend_log_page_query lq;
  lq.base.api_key = key_param(q);
  lq.base.user_id = text_param(q, "user_id");
  lq.base.request_id = text_param(q, "request_id");
  lq.base.page = paged->page;
  lq.base.page_size = paged->page_size;
  lq.start_time = start;
  lq.end_time = end;
  lq.team_id = text_param(q, "team_id");
  lq.min_spend = *min_spend;
  lq.max_spend = *max_spend;
  if (c.sc == scope::own) {
    lq.base.user_id = c.self_user;
  } else if (c.sc == scope::org) {
    lq.base.organization_id = c.self_org;
  }
  const json empty_page{{"data", json::array()}, {"total", 0}, {"page", paged->page},
                        {"page_size", paged->page_size}, {"total_pages", 0}};
  auto visible = co_await user_visible(c, lq.base.user_id);
  if (!visible) {
    co_return visible.error();
  }
  if (!*visible) {
    co_return ok(empty_page);
  }
  auto r = co_await c.db().run(pg::spend_log_page_blocking, lq);
  if (!r) {
    co_return r.error();
  }
  const long long pages = (r->total + paged->page_size - 1) / paged->page_size;
  co_return ok(json{{"data", parse_array(r->rows_json)},
                    {"total", r->total},
                    {"page", paged->page},
                    {"page_size", paged->page_size},
                    {"total_pages", pages}});
}

// LiteLLM's /global/spend/tags (its UI's spend per tag): both dates required; `tags`, a
// comma-separated list, narrows it ("all-tags" among them: every tag).
handler_result global_spend_tags(const route_context& c) {
  auto range = day_range_param(c.req.query, false);
  if (!range) {
    co_return range.error();
  }
  if (!range->given()) {
    co_return bad_request("Please provide start_date and end_date", "start_date");
  }
  std::vector<std::string> tags;
  bool all = false;
  if (auto list = query_param(c.req.query, "tags"); list && !list->empty()) {
    std::string_view rest = *list;
    while (!rest.empty()) {
      const auto comma = rest.find(',');
      const auto tag = rest.substr(0, comma);
      all = all || tag == "all-tags";
      tags.emplace_back(tag);
      rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
    }
  }
  if (all) {
    tags.clear();
  }
  auto rows = co_await c.db().run(pg::tag_spend_per_tag_blocking, range->start, range->end, tags);
  if (!rows) {
    co_return rows.error();
  }
  co_return ok(json{{"spend_per_tag", parse_array(*rows)}});
}

handler_result global_spend(const route_context& c) {
  auto total = co_await c.db().run(pg::lens_spend_blocking, lens_of(c), day_of(c.now, -last_days), day_of(c.now));
  if (!total) {
    co_return total.error();
  }
  double max_budget = 0;
  if (c.deps.cfg) {
    const auto& raw = c.deps.cfg->litellm.raw;
    if (auto it = raw.find("max_budget"); it != raw.end() && it->is_number()) {
      max_budget = it->get<double>();
    }
  }
  co_return ok(json{{"spend", *total}, {"max_budget", max_budget}});
}

handler_result global_spend_keys(const route_context& c) {
  // No limit: every key (LiteLLM); a limit must be a positive integer.
  auto limit = positive_param(c.req.query, "limit", 0, 1'000'000);
  if (!limit) {
    co_return limit.error();
  }
  auto rows = co_await c.db().run(pg::top_keys_blocking, lens_of(c), day_of(c.now, -last_days), day_of(c.now), *limit);
  if (!rows) {
    co_return rows.error();
  }
  co_return ok(parse_array(*rows));
}

handler_result global_spend_models(const route_context& c) {
  auto limit = positive_param(c.req.query, "limit", 10, 1'000'000);
  if (!limit) {
    co_return limit.error();
  }
  auto rows =
      co_await c.db().run(pg::top_models_blocking, lens_of(c), day_of(c.now, -last_days), day_of(c.now), *limit);
  if (!rows) {
    co_return rows.error();
  }
  co_return ok(parse_array(*rows));
}

handler_result global_spend_teams(const route_context& c) {
  auto rows = co_await c.db().run(pg::team_daily_spend_blocking, day_of(c.now, -last_days), day_of(c.now));
  if (!rows) {
    co_return rows.error();
  }
  // LiteLLM's shape for its UI: per date {team_alias: spend}, the aliases, and the ten
  // teams that spent most. Teams without an alias count as "Unassigned".
  json daily = json::array();
  std::map<std::string, double> per_team;
  for (const auto& r : parse_array(*rows)) {
    std::string alias = r["team_alias"].is_string() ? r["team_alias"].get<std::string>() : "Unassigned";
    double spend = r["total_spend"].get<double>();
    std::string date = r["date"].get<std::string>();
    if (daily.empty() || daily.back()["date"] != date) {
      daily.push_back(json{{"date", date}});
    }
    daily.back()[alias] = daily.back().value(alias, 0.0) + spend;
    per_team[alias] += spend;
  }
  std::vector<std::pair<std::string, double>> ranked(per_team.begin(), per_team.end());
  std::stable_sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  json teams = json::array();
  json top = json::array();
  for (const auto& [alias, spend] : ranked) {
    teams.push_back(alias);
    if (top.size() < 10) {
      top.push_back(json{{"team_id", alias}, {"total_spend", spend}});
    }
  }
  co_return ok(json{{"daily_spend", std::move(daily)}, {"teams", std::move(teams)}, {"total_spend_per_team", std::move(top)}});
}

handler_result global_spend_report(const route_context& c) {
  const auto& q = c.req.query;
  auto range = day_range_param(q, true);
  if (!range) {
    co_return range.error();
  }
  std::string group_by = text_param(q, "group_by");
  if (group_by.empty()) {
    group_by = "team";
  }
  if (group_by != "team" && group_by != "customer" && group_by != "api_key") {
    co_return bad_request("group_by: expected team, customer or api_key, got '" + group_by + "'", "group_by");
  }
  // As LiteLLM: a key or an internal user narrows the report to their keys, in the
  // api_key shape.
  pg::spend_lens lens;
  if (auto key = key_param(q); !key.empty()) {
    lens = {"key", key};
    group_by = "api_key";
  } else if (auto user = text_param(q, "internal_user_id"); !user.empty()) {
    lens = {"user", user};
    group_by = "api_key";
  }
  if (group_by != "api_key") {
    // team / customer: per day, per group, the spend of each (model, key), as Postgres
    // shaped it (megabytes for a month of many keys: never parsed here).
    auto answer = co_await c.db().run(pg::spend_report_by_group_blocking, group_by, range->start, range->end);
    if (!answer) {
      co_return answer.error();
    }
    co_return ok_prebuilt(std::move(*answer));
  }
  auto rows = co_await c.db().run(pg::spend_report_by_key_blocking, lens, range->start, range->end);
  if (!rows) {
    co_return rows.error();
  }
  json out = json::array();
  for (const auto& r : parse_array(*rows)) {
    if (out.empty() || out.back()["api_key"] != r["api_key"]) {
      out.push_back(json{{"api_key", r["api_key"]},
                         {"total_cost", 0.0},
                         {"total_input_tokens", 0},
                         {"total_output_tokens", 0},
                         {"model_details", json::array()}});
    }
    auto& k = out.back();
    k["total_cost"] = k["total_cost"].get<double>() + r["spend"].get<double>();
    k["total_input_tokens"] = count_of(k, "total_input_tokens") + count_of(r, "prompt_tokens");
    k["total_output_tokens"] = count_of(k, "total_output_tokens") + count_of(r, "completion_tokens");
    k["model_details"].push_back(json{{"model", r["model"]},
                                      {"total_cost", r["spend"]},
                                      {"total_input_tokens", r["prompt_tokens"]},
                                      {"total_output_tokens", r["completion_tokens"]}});
  }
  std::stable_sort(out.begin(), out.end(), [](const json& a, const json& b) {
    return a["total_cost"].get<double>() > b["total_cost"].get<double>();
  });
  co_return ok(std::move(out));
}

handler_result spend_calculate(const route_context& c) {
  const json& b = c.body;
  auto model = b.find("model");
  auto response = b.find("completion_response");
  const bool has_model = model != b.end() && !model->is_null();
  const bool has_response = response != b.end() && !response->is_null();
  if (has_model) {
    if (!model->is_string() || model->get_ref<const std::string&>().empty()) {
      co_return bad_request("model: expected a model name", "model");
    }
    auto messages = b.find("messages");
    if (messages == b.end() || messages->is_null()) {
      co_return bad_request("Bad Request - messages must be provided if 'model' is provided", "messages");
    }
    if (!messages->is_array()) {
      co_return bad_request("messages: expected an array of messages", "messages");
    }
    // Before the call there is no usage: the prompt is estimated at 4 characters a token.
    spend::tokens t;
    t.prompt = static_cast<long long>((message_chars(*messages) + 3) / 4);
    co_return priced(c, model->get<std::string>(), t, "model");
  }
  if (has_response) {
    if (!response->is_object()) {
      co_return bad_request("completion_response: expected an object", "completion_response");
    }
    auto usage = response->find("usage");
    auto name = response->find("model");
    if (usage == response->end() || !usage->is_object()) {
      co_return bad_request("completion_response.usage: required (prompt_tokens, completion_tokens)",
                            "completion_response");
    }
    if (name == response->end() || !name->is_string()) {
      co_return bad_request("completion_response.model: required", "completion_response");
    }
    spend::tokens t;
    t.prompt = count_of(*usage, "prompt_tokens");
    t.completion = count_of(*usage, "completion_tokens");
    if (auto d = usage->find("prompt_tokens_details"); d != usage->end() && d->is_object()) {
      t.cached = count_of(*d, "cached_tokens");
    }
    if (auto d = usage->find("completion_tokens_details"); d != usage->end() && d->is_object()) {
      t.reasoning = count_of(*d, "reasoning_tokens");
    }
    if (t.prompt < 0 || t.completion < 0) {
      co_return bad_request("completion_response.usage: token counts must not be negative", "completion_response");
    }
    co_return priced(c, name->get<std::string>(), t, "completion_response");
  }
  co_return bad_request("Bad Request - Either 'model' or 'completion_response' must be provided", "model");
}

}  // namespace switchyard::admin
