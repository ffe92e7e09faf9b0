// /user/daily/activity and /team/daily/activity: LiteLLM's daily activity reports
// ({results: [{date, metrics, breakdown}], metadata}), read from the daily_spend rollups
// one page of days at a time (docs/spend.md, "Spend API").
#include "entities.hpp"
#include "spend_params.hpp"

#include <map>
#include <sstream>

namespace switchyard::admin {

namespace {

constexpr const char* counters[] = {"prompt_tokens",  "completion_tokens",   "cache_read_input_tokens",
                                    "cache_creation_input_tokens", "api_requests", "successful_requests",
                                    "failed_requests"};

json zero_metrics() {
  json m = {{"spend", 0.0}, {"total_tokens", 0}};
  for (const char* k : counters) {
    m[k] = 0;
  }
  return m;
}

// Adds a rollup row's sums (spend and the counters) to LiteLLM's SpendMetrics `m`.
void add_metrics(json& m, const json& row) {
  m["spend"] = m["spend"].get<double>() + row.value("spend", 0.0);
  for (const char* k : counters) {
    m[k] = m[k].get<long long>() + row.value(k, 0LL);
  }
  m["total_tokens"] = m["prompt_tokens"].get<long long>() + m["completion_tokens"].get<long long>();
}

// breakdown[kind][name] as {metrics, metadata}, made on first use.
json& entry(json& breakdown, const char* kind, const std::string& name, json metadata) {
  auto& group = breakdown[kind];
  if (!group.contains(name)) {
    group[name] = json{{"metrics", zero_metrics()}, {"metadata", std::move(metadata)}};
  }
  return group[name];
}

std::string text_or_empty(const json& row, const char* name) {
  auto it = row.find(name);
  return it != row.end() && it->is_string() ? it->get<std::string>() : std::string();
}

json null_or(const json& row, const char* name) {
  auto it = row.find(name);
  return it != row.end() ? *it : json(nullptr);
}

// The page of rows as LiteLLM's results and metadata.
json activity_response(const pg::activity_page& p, int page, int page_size, bool with_entities,
                       bool breakdown = true) {
  std::map<std::string, json> days;
  for (const auto& row : json::parse(p.rows_json)) {
    const std::string date = row["date"].get<std::string>();
    auto [it, fresh] = days.try_emplace(date);
    json& d = it->second;
    if (fresh) {
      d = json{{"date", date},
               {"metrics", zero_metrics()},
               {"breakdown",
                {{"models", json::object()},
                 {"model_groups", json::object()},
                 {"mcp_servers", json::object()},
                 {"providers", json::object()},
                 {"api_keys", json::object()},
                 {"entities", json::object()}}}};
    }
    add_metrics(d["metrics"], row);
    auto& b = d["breakdown"];
    if (!breakdown) {
      if (with_entities) {
        add_metrics(entry(b, "entities", text_or_empty(row, "entity_id"),
                          json{{"team_alias", null_or(row, "team_alias")}})["metrics"],
                    row);
      }
      continue;
    }
    add_metrics(entry(b, "models", text_or_empty(row, "model"), json::object())["metrics"], row);
    add_metrics(entry(b, "model_groups", text_or_empty(row, "model_group"), json::object())["metrics"], row);
    add_metrics(entry(b, "providers", text_or_empty(row, "custom_llm_provider"), json::object())["metrics"], row);
    add_metrics(entry(b, "api_keys", text_or_empty(row, "api_key"),
                      json{{"key_alias", null_or(row, "key_alias")}, {"team_id", null_or(row, "key_team_id")}})["metrics"],
                row);
    if (with_entities) {
      add_metrics(entry(b, "entities", text_or_empty(row, "entity_id"),
                        json{{"team_alias", null_or(row, "team_alias")}})["metrics"],
                  row);
    }
  }
  json results = json::array();
  for (auto& [date, d] : days) {
    results.push_back(std::move(d));
  }
  json totals = json::parse(p.totals_json);
  const long long total_pages = p.days == 0 ? 1 : (p.days + page_size - 1) / page_size;
  json metadata = {{"total_spend", totals.value("spend", 0.0)},
                   {"total_prompt_tokens", totals.value("prompt_tokens", 0LL)},
                   {"total_completion_tokens", totals.value("completion_tokens", 0LL)},
                   {"total_tokens", totals.value("prompt_tokens", 0LL) + totals.value("completion_tokens", 0LL)},
                   {"total_api_requests", totals.value("api_requests", 0LL)},
                   {"total_successful_requests", totals.value("successful_requests", 0LL)},
                   {"total_failed_requests", totals.value("failed_requests", 0LL)},
                   {"total_cache_read_input_tokens", totals.value("cache_read_input_tokens", 0LL)},
                   {"total_cache_creation_input_tokens", totals.value("cache_creation_input_tokens", 0LL)},
                   {"page", page},
                   {"total_pages", total_pages},
                   {"has_more", page < total_pages}};
  return json{{"results", std::move(results)}, {"metadata", std::move(metadata)}};
}

// The parameters both reports share: the days (required), model, api_key, paging.
core::result<pg::activity_query> common_query(const route_context& c) {
  const auto& q = c.req.query;
  auto p = paged_range_params(q, true, 50, 1000);
  if (!p) {
    return p.error();
  }
  pg::activity_query a;
  a.start_day = p->range.start;
  a.end_day = p->range.end;
  a.model = text_param(q, "model");
  a.api_key = key_param(q);
  a.page = p->page.page;
  a.page_size = p->page.page_size;
  // breakdown=false: the days' metrics (and the teams') without the per-key and per-model
  // breakdown, which grows with the number of keys (a gateway extension; LiteLLM has none).
  auto breakdown = bool_param(q, "breakdown", true);
  if (!breakdown) {
    return breakdown.error();
  }
  a.breakdown = *breakdown;
  return a;
}

std::vector<std::string> split_ids(const std::string& csv) {
  std::vector<std::string> out;
  std::stringstream in(csv);
  for (std::string id; std::getline(in, id, ',');) {
    if (!id.empty()) {
      out.push_back(id);
    }
  }
  return out;
}

}  // namespace

handler_result user_daily_activity(const route_context& c) {
  auto a = common_query(c);
  if (!a) {
    co_return a.error();
  }
  // Admins: every request, or one user's; an org_admin: their organisation's; internal
  // users: their own (asking for another user is 403).
  const std::string user_id = text_param(c.req.query, "user_id");
  if (c.sc == scope::all) {
    a->entity_type = user_id.empty() ? "all" : "user";
    a->entity_ids = user_id.empty() ? std::vector<std::string>{} : std::vector<std::string>{user_id};
  } else if (c.sc == scope::org && user_id.empty()) {
    a->entity_type = "org";
    a->entity_ids = {c.self_org};
  } else if (c.sc == scope::org) {
    // A user outside their organisation is 403; one that does not exist spent nothing.
    if (auto row = co_await org_member_row(c, false, user_id); !row) {
      if (row.error().status != 404) {
        co_return row.error();
      }
      co_return ok(activity_response(pg::activity_page{}, a->page, a->page_size, false));
    }
    a->entity_type = "user";
    a->entity_ids = {user_id};
  } else {
    if (!user_id.empty() && user_id != c.self_user) {
      co_return forbidden("you may only view your own activity (user_id=" + c.self_user + ")");
    }
    a->entity_type = "user";
    a->entity_ids = {c.self_user};
  }
  auto page = co_await c.db().run(pg::daily_activity_blocking, *a);
  if (!page) {
    co_return page.error();
  }
  co_return ok(activity_response(*page, a->page, a->page_size, false, a->breakdown));
}

handler_result team_daily_activity(const route_context& c) {
  auto a = common_query(c);
  if (!a) {
    co_return a.error();
  }
  // team_ids (comma-separated) narrows the teams; an org_admin sees their organisation's
  // teams, internal users the teams they are members of.
  a->entity_type = "team";
  a->entity_ids = split_ids(text_param(c.req.query, "team_ids"));
  if (c.sc == scope::org) {
    a->teams_of_org = c.self_org;
  } else if (c.sc == scope::own) {
    a->teams_of_member = c.self_user;
  }
  auto page = co_await c.db().run(pg::daily_activity_blocking, *a);
  if (!page) {
    co_return page.error();
  }
  co_return ok(activity_response(*page, a->page, a->page_size, true, a->breakdown));
}

}  // namespace switchyard::admin
