#include "switchyard/store/postgres/spend_query_repo.hpp"

#include "switchyard/core/utf8.hpp"

#include <pqxx/pqxx>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace switchyard::store::postgres {

namespace {

// Values are quoted into the SQL text (tx.quote) rather than bound: each query's filters
// differ by which parameters were given, and literal days let the planner prune the day
// partitions of spend_logs at plan time.
std::string day_range(pqxx::transaction_base& tx, const char* column, const std::string& start_day,
                      const std::string& end_day) {
  return std::string(column) + " BETWEEN " + tx.quote(start_day) + "::date AND " + tx.quote(end_day) + "::date";
}

// Reports whose answer has a row per (day, key, model) sort and aggregate tens of
// thousands of rows for a month: in memory rather than in temporary files.
void roomy(pqxx::transaction_base& tx) { tx.exec0("SET LOCAL work_mem = '64MB'"); }

std::string lens_filter(pqxx::transaction_base& tx, const spend_lens& lens, const std::string& start_day,
                        const std::string& end_day) {
  return "entity_type = " + tx.quote(lens.entity_type) + " AND entity_id = " + tx.quote(lens.entity_id) + " AND " +
         day_range(tx, "day", start_day, end_day);
}

// The rollup a report without a key breakdown reads: daily_spend_totals holds the same sums
// as daily_spend for the whole proxy, the teams and the organisations, without the key
// dimension (a few rows a day instead of one per key and model).
const char* rollup_for(const std::string& entity_type, bool by_key) {
  const bool totals = !by_key && (entity_type == "all" || entity_type == "team" || entity_type == "org");
  return totals ? "daily_spend_totals" : "daily_spend";
}

// A query whose rows are one text column each (JSON objects), as one JSON array.
std::string json_array_of(pqxx::transaction_base& tx, const std::string& sql) {
  std::string out = "[";
  for (const auto& row : tx.exec(sql)) {
    if (out.size() > 1) {
      out += ',';
    }
    out += row[0].c_str();
  }
  out += ']';
  return out;
}

std::string iso(const char* column) {
  return std::string("to_char(") + column + " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')";
}

// A spend_logs row with LiteLLM's SpendLogs field names (cache_hit is a string there).
std::string log_row_object() {
  return "json_build_object('request_id', request_id, 'call_type', call_type, 'api_key', api_key, "
         "'spend', spend, 'total_tokens', total_tokens, 'prompt_tokens', prompt_tokens, "
         "'completion_tokens', completion_tokens, 'startTime', " +
         iso("start_time") + ", 'endTime', " + iso("end_time") +
         ", 'completionStartTime', " + iso("completion_start_time") +
         ", 'request_duration_ms', request_duration_ms, 'model', model, 'model_id', coalesce(model_id, ''), "
         "'model_group', coalesce(model_group, ''), 'custom_llm_provider', coalesce(custom_llm_provider, ''), "
         "'api_base', coalesce(api_base, ''), 'user', coalesce(user_id, ''), 'end_user', coalesce(end_user, ''), "
         "'team_id', team_id, 'organization_id', organization_id, 'key_alias', key_alias, 'metadata', metadata, "
         "'cache_hit', CASE WHEN cache_hit THEN 'True' ELSE 'False' END, 'cache_key', '', "
         "'request_tags', request_tags, 'status', status, 'status_code', status_code, 'error_type', error_type, "
         "'session_id', session_id, 'requester_ip_address', requester_ip_address, "
         "'messages', coalesce(messages, '{}'::jsonb), 'response', coalesce(response, '{}'::jsonb), "
         "'cached_tokens', cached_tokens, 'reasoning_tokens', reasoning_tokens, "
         "'usage_estimated', usage_estimated)::text";
}

std::vector<spend_day_part> parts_of(pqxx::transaction_base& tx, const std::string& sql) {
  std::vector<spend_day_part> out;
  for (const auto& row : tx.exec(sql)) {
    out.push_back({row[0].as<std::string>(), row[1].is_null() ? std::string() : row[1].as<std::string>(),
                   row[2].as<double>()});
  }
  return out;
}

// Rollup sums of daily_spend, as JSON members (prefix: a table alias and dot, or "").
std::string sums(const std::string& p) {
  return "'prompt_tokens', coalesce(sum(" + p + "prompt_tokens), 0), 'completion_tokens', coalesce(sum(" + p +
         "completion_tokens), 0), 'cache_read_input_tokens', coalesce(sum(" + p +
         "cache_read_input_tokens), 0), 'cache_creation_input_tokens', coalesce(sum(" + p +
         "cache_creation_input_tokens), 0), 'spend', coalesce(sum(" + p + "spend), 0), 'api_requests', coalesce(sum(" +
         p + "api_requests), 0), 'successful_requests', coalesce(sum(" + p +
         "successful_requests), 0), 'failed_requests', coalesce(sum(" + p + "failed_requests), 0)";
}

std::string activity_filter(pqxx::transaction_base& tx, const activity_query& q) {
  std::string w = "entity_type = " + tx.quote(q.entity_type) + " AND " + day_range(tx, "day", q.start_day, q.end_day);
  if (q.entity_type == "all") {
    w += " AND entity_id = ''";
  }
  if (!q.entity_ids.empty()) {
    std::string list;
    for (const auto& id : q.entity_ids) {
      list += (list.empty() ? "" : ", ") + tx.quote(id);
    }
    w += " AND entity_id IN (" + list + ")";
  }
  if (!q.teams_of_org.empty()) {
    w += " AND entity_id IN (SELECT team_id FROM teams WHERE organization_id = " + tx.quote(q.teams_of_org) + ")";
  }
  if (!q.teams_of_member.empty()) {
    w += " AND entity_id IN (SELECT team_id FROM team_memberships WHERE user_id = " + tx.quote(q.teams_of_member) +
         ")";
  }
  if (!q.model.empty()) {
    w += " AND model = " + tx.quote(q.model);
  }
  if (!q.api_key.empty()) {
    w += " AND api_key = " + tx.quote(q.api_key);
  }
  return w;
}

}  // namespace

std::string spend_log_rows_blocking(pqxx::connection& c, const spend_log_query& q) {
  pqxx::read_transaction tx{c};
  std::string where;
  auto add = [&where](const std::string& clause) { where += (where.empty() ? " WHERE " : " AND ") + clause; };
  if (!q.api_key.empty()) {
    add("api_key = " + tx.quote(q.api_key));
  }
  if (!q.user_id.empty()) {
    add("user_id = " + tx.quote(q.user_id));
  }
  if (!q.request_id.empty()) {
    add("request_id = " + tx.quote(q.request_id));
  }
  if (!q.organization_id.empty()) {
    add("organization_id = " + tx.quote(q.organization_id));
  }
  if (!q.start_day.empty()) {
    // A half-open range of whole UTC days: the end day is included.
    add("start_time >= " + tx.quote(q.start_day + " 00:00:00+00") + "::timestamptz");
    add("start_time < " + tx.quote(q.end_day + " 00:00:00+00") + "::timestamptz + interval '1 day'");
  }
  const long long offset = static_cast<long long>(q.page - 1) * q.page_size;
  return json_array_of(tx, "SELECT " + log_row_object() + " FROM spend_logs" + where +
                               " ORDER BY start_time DESC, row_id LIMIT " + std::to_string(q.page_size) +
                               " OFFSET " + std::to_string(offset));
}

spend_summary spend_summary_blocking(pqxx::connection& c, const spend_lens& lens, const std::string& api_key,
                                     const std::string& start_day, const std::string& end_day) {
  pqxx::read_transaction tx{c};
  roomy(tx);
  std::string lens_rows = lens_filter(tx, lens, start_day, end_day);
  if (!api_key.empty()) {
    lens_rows += " AND api_key = " + tx.quote(api_key);
  }
  const std::string day = "to_char(day, 'YYYY-MM-DD')";
  spend_summary out;
  out.models = parts_of(tx, "SELECT " + day + ", model, sum(spend) FROM daily_spend WHERE " + lens_rows +
                                " GROUP BY 1, 2 ORDER BY 1, 2");
  out.keys = parts_of(tx, "SELECT " + day + ", api_key, sum(spend) FROM daily_spend WHERE " + lens_rows +
                              " GROUP BY 1, 2 ORDER BY 1, 2");
  if (lens.entity_type == "user") {
    out.users = parts_of(tx, "SELECT " + day + ", entity_id, sum(spend) FROM daily_spend WHERE " + lens_rows +
                                 " GROUP BY 1, 2 ORDER BY 1, 2");
  } else {
    // The users behind the keys of the lens on each day (requests without a user are in
    // no user rollup, so they only count in "spend" and the models).
    out.users = parts_of(tx, "SELECT " + day + ", entity_id, sum(spend) FROM daily_spend WHERE entity_type = 'user' AND " +
                                 day_range(tx, "day", start_day, end_day) +
                                 " AND (day, api_key) IN (SELECT day, api_key FROM daily_spend WHERE " + lens_rows +
                                 ") GROUP BY 1, 2 ORDER BY 1, 2");
  }
  return out;
}

spend_summary request_summary_blocking(pqxx::connection& c, const std::string& request_id,
                                       const std::string& user_id, const std::string& organization_id,
                                       const std::string& start_day, const std::string& end_day) {
  pqxx::read_transaction tx{c};
  std::string where = " WHERE request_id = " + tx.quote(request_id) + " AND start_time >= " +
                      tx.quote(start_day + " 00:00:00+00") + "::timestamptz AND start_time < " +
                      tx.quote(end_day + " 00:00:00+00") + "::timestamptz + interval '1 day'";
  if (!user_id.empty()) {
    where += " AND user_id = " + tx.quote(user_id);
  }
  if (!organization_id.empty()) {
    where += " AND organization_id = " + tx.quote(organization_id);
  }
  const std::string day = "to_char(start_time AT TIME ZONE 'UTC', 'YYYY-MM-DD')";
  spend_summary out;
  out.models = parts_of(tx, "SELECT " + day + ", model, sum(spend) FROM spend_logs" + where + " GROUP BY 1, 2");
  out.keys = parts_of(tx, "SELECT " + day + ", api_key, sum(spend) FROM spend_logs" + where + " GROUP BY 1, 2");
  out.users = parts_of(tx, "SELECT " + day + ", user_id, sum(spend) FROM spend_logs" + where +
                               " AND user_id IS NOT NULL GROUP BY 1, 2");
  return out;
}

double lens_spend_blocking(pqxx::connection& c, const spend_lens& lens, const std::string& start_day,
                           const std::string& end_day) {
  pqxx::read_transaction tx{c};
  return tx.exec1(std::string("SELECT coalesce(sum(spend), 0) FROM ") + rollup_for(lens.entity_type, false) +
                  " WHERE " + lens_filter(tx, lens, start_day, end_day))[0]
      .as<double>();
}

std::string top_keys_blocking(pqxx::connection& c, const spend_lens& lens, const std::string& start_day,
                              const std::string& end_day, int limit) {
  pqxx::read_transaction tx{c};
  return json_array_of(
      tx, "SELECT json_build_object('api_key', s.api_key, 'total_spend', s.total_spend, 'key_alias', v.key_alias, "
          "'key_name', v.key_name)::text FROM (SELECT api_key, sum(spend) AS total_spend FROM daily_spend WHERE " +
              lens_filter(tx, lens, start_day, end_day) + " GROUP BY api_key ORDER BY total_spend DESC, api_key" +
              (limit > 0 ? " LIMIT " + std::to_string(limit) : std::string()) +
              ") s LEFT JOIN verification_tokens v ON v.token = s.api_key ORDER BY s.total_spend DESC, s.api_key");
}

std::string top_models_blocking(pqxx::connection& c, const spend_lens& lens, const std::string& start_day,
                                const std::string& end_day, int limit) {
  pqxx::read_transaction tx{c};
  return json_array_of(
      tx, "SELECT json_build_object('model', model, 'total_spend', total_spend, 'total_tokens', total_tokens)::text "
          "FROM (SELECT model, sum(spend) AS total_spend, sum(prompt_tokens + completion_tokens) AS total_tokens "
          "FROM " +
              std::string(rollup_for(lens.entity_type, false)) + " WHERE " +
              lens_filter(tx, lens, start_day, end_day) +
              " AND model <> '' GROUP BY model ORDER BY total_spend DESC, model" +
              (limit > 0 ? " LIMIT " + std::to_string(limit) : std::string()) + ") m");
}

std::string team_daily_spend_blocking(pqxx::connection& c, const std::string& start_day,
                                      const std::string& end_day) {
  pqxx::read_transaction tx{c};
  const std::string days = day_range(tx, "day", start_day, end_day);
  // Requests of no team: every request ('all') less those of some team, day by day.
  return json_array_of(
      tx, "WITH t AS (SELECT day, entity_id AS team_id, sum(spend) AS spend, sum(api_requests) AS n "
          "FROM daily_spend_totals WHERE entity_type = 'team' AND " +
              days +
              " GROUP BY 1, 2), "
              "a AS (SELECT day, sum(spend) AS spend, sum(api_requests) AS n FROM daily_spend_totals "
              "WHERE entity_type = 'all' AND entity_id = '' AND " +
              days +
              " GROUP BY 1), "
              "rest AS (SELECT a.day, a.spend - coalesce(sum(t.spend), 0) AS spend, a.n - coalesce(sum(t.n), 0) AS n "
              "FROM a LEFT JOIN t USING (day) GROUP BY a.day, a.spend, a.n) "
              "SELECT json_build_object('date', to_char(day, 'YYYY-MM-DD'), 'team_alias', team_alias, "
              "'total_spend', spend)::text FROM ("
              "SELECT t.day, tm.team_alias, sum(t.spend) AS spend FROM t LEFT JOIN teams tm USING (team_id) "
              "GROUP BY 1, 2 UNION ALL SELECT day, NULL, spend FROM rest WHERE n > 0) x "
              "ORDER BY day, team_alias NULLS LAST");
}

std::string spend_report_by_key_blocking(pqxx::connection& c, const spend_lens& lens, const std::string& start_day,
                                         const std::string& end_day) {
  pqxx::read_transaction tx{c};
  return json_array_of(
      tx, "SELECT json_build_object('api_key', api_key, 'model', model, 'spend', sum(spend), "
          "'prompt_tokens', sum(prompt_tokens), 'completion_tokens', sum(completion_tokens))::text "
          "FROM daily_spend WHERE " +
              lens_filter(tx, lens, start_day, end_day) + " GROUP BY api_key, model ORDER BY api_key, model");
}

namespace {

// One rollup row of the team / customer report, as Postgres wrote its fields, with the
// name of its group.
struct report_row {
  int day_key = 0;  // YYYYMMDD
  bool no_group = false;  // a null customer: listed last in its day
  std::string_view day, group, api_key, model, spend, tokens;
};

double number_of(std::string_view v) {
  double d = 0;
  std::from_chars(v.data(), v.data() + v.size(), d);
  return d;
}

void put_json_string(std::string& o, std::string_view v) {
  o += '"';
  core::append_json_escaped(o, v);
  o += '"';
}

void put_number(std::string& o, double v) {
  char buf[32];
  o.append(buf, static_cast<std::size_t>(std::to_chars(buf, buf + sizeof buf, v).ptr - buf));
}

int day_key_of(std::string_view day) {  // "YYYY-MM-DD"
  int k = 0;
  for (char ch : day) {
    if (ch >= '0' && ch <= '9') {
      k = k * 10 + (ch - '0');
    }
  }
  return k;
}

}  // namespace

std::string spend_report_by_group_blocking(pqxx::connection& c, const std::string& group_by,
                                           const std::string& start_day, const std::string& end_day) {
  pqxx::read_transaction tx{c};
  // The month's rollup rows of the entity and those of the requests of none ("Unassigned
  // Team" / a null customer: 'no_team' / 'no_end_user'), as they lie: Postgres neither
  // sorts, nor aggregates, nor builds JSON (its sort and its json functions were most of
  // the cost; reading tens of thousands of rows in index order is dearer than reading
  // them in page order). Here they are named, ordered (day, group, key, model; names in
  // byte order), rows of the same (group, key, model) added up (a key's model has a row
  // per model group and provider; teams may share a name) and nested (day > group > key
  // and model). See docs/spend.md, "Query plans".
  const bool team = group_by == "team";
  const auto teams = team ? tx.exec("SELECT team_id, team_alias FROM teams WHERE team_alias IS NOT NULL")
                          : pqxx::result();
  std::unordered_map<std::string_view, std::string_view> alias;
  for (const auto& row : teams) {
    alias.emplace(std::string_view(row[0].c_str(), row[0].size()), std::string_view(row[1].c_str(), row[1].size()));
  }
  tx.exec0("SET LOCAL DateStyle = ISO");  // a date's text is YYYY-MM-DD
  const auto rows = tx.exec(
      "SELECT day, entity_type = " + std::string(team ? "'team'" : "'end_user'") +
      ", entity_id, api_key, model, spend, prompt_tokens + completion_tokens FROM daily_spend WHERE entity_type IN " +
      (team ? "('team', 'no_team')" : "('end_user', 'no_end_user')") + " AND " + day_range(tx, "day", start_day, end_day));
  constexpr std::string_view unassigned = "Unassigned Team";
  std::vector<report_row> all;
  all.reserve(rows.size());
  for (const auto& r : rows) {
    const auto sv = [&](int i) { return std::string_view(r[i].c_str(), r[i].size()); };
    report_row e;
    e.day = sv(0);
    e.day_key = day_key_of(e.day);
    const bool named = r[1].c_str()[0] == 't';
    if (team) {
      // A team without a name is listed as "Unassigned Team", as LiteLLM does.
      const auto found = named ? alias.find(sv(2)) : alias.end();
      e.group = found != alias.end() ? found->second : unassigned;
    } else if (named) {
      e.group = sv(2);
    } else {
      e.no_group = true;
    }
    e.api_key = sv(3);
    e.model = sv(4);
    e.spend = sv(5);
    e.tokens = sv(6);
    all.push_back(e);
  }
  std::vector<std::uint32_t> order(all.size());
  for (std::uint32_t i = 0; i < order.size(); ++i) {
    order[i] = i;
  }
  std::sort(order.begin(), order.end(), [&](std::uint32_t x, std::uint32_t y) {
    const report_row& a = all[x];
    const report_row& b = all[y];
    if (a.day_key != b.day_key) {
      return a.day_key < b.day_key;
    }
    if (a.no_group != b.no_group) {
      return b.no_group;
    }
    if (const int g = a.group.compare(b.group); g != 0) {
      return g < 0;
    }
    if (const int k = a.api_key.compare(b.api_key); k != 0) {
      return k < 0;
    }
    return a.model < b.model;
  });
  const auto same_group = [](const report_row& a, const report_row& b) {
    return a.day_key == b.day_key && a.no_group == b.no_group && a.group == b.group;
  };

  std::string out = "[";
  out.reserve(all.size() * 160);
  for (std::size_t i = 0; i < order.size();) {
    const report_row& first = all[order[i]];
    if (i == 0 || first.day_key != all[order[i - 1]].day_key) {
      out += i == 0 ? "{\"group_by_day\":\"" : "]},{\"group_by_day\":\"";
      out += first.day;
      out += team ? "T00:00:00+00:00\",\"teams\":[" : "T00:00:00+00:00\",\"customers\":[";
    } else {
      out += ',';
    }
    out += team ? "{\"team_name\":" : "{\"customer\":";
    if (first.no_group) {
      out += "null";
    } else {
      put_json_string(out, first.group);
    }
    // total_spend comes before the entries but is known after them: it is inserted here
    // once they are written (a group's entries are a few kilobytes at most).
    out += ",\"total_spend\":";
    const std::size_t total_at = out.size();
    out += ",\"metadata\":[";
    double total = 0;
    std::size_t j = i;
    for (bool first_entry = true; j < order.size() && same_group(all[order[j]], first); first_entry = false) {
      const report_row& e = all[order[j]];
      std::size_t k = j + 1;
      while (k < order.size() && same_group(all[order[k]], first) && all[order[k]].api_key == e.api_key &&
             all[order[k]].model == e.model) {
        ++k;
      }
      out += first_entry ? "{\"model\":" : ",{\"model\":";
      put_json_string(out, e.model);
      out += ",\"api_key\":";
      put_json_string(out, e.api_key);
      out += ",\"spend\":";
      if (k == j + 1) {
        out += e.spend;
        out += ",\"total_tokens\":";
        out += e.tokens;
        total += number_of(e.spend);
      } else {
        double spend = 0, tokens = 0;
        for (std::size_t x = j; x < k; ++x) {
          spend += number_of(all[order[x]].spend);
          tokens += number_of(all[order[x]].tokens);
        }
        put_number(out, spend);
        out += ",\"total_tokens\":";
        out += std::to_string(static_cast<long long>(std::llround(tokens)));
        total += spend;
      }
      out += '}';
      j = k;
    }
    out += "]}";
    char buf[32];
    out.insert(total_at, buf, static_cast<std::size_t>(std::to_chars(buf, buf + sizeof buf, total).ptr - buf));
    i = j;
  }
  if (!order.empty()) {
    out += "]}";
  }
  out += ']';
  return out;
}

std::string tag_spend_blocking(pqxx::connection& c, const std::string& start_day, const std::string& end_day) {
  pqxx::read_transaction tx{c};
  std::string where = "entity_type = 'tag'";
  if (!start_day.empty()) {
    where += " AND " + day_range(tx, "day", start_day, end_day);
  }
  return json_array_of(tx, "SELECT json_build_object('individual_request_tag', entity_id, 'log_count', "
                           "sum(api_requests), 'total_spend', sum(spend))::text FROM daily_spend WHERE " +
                               where + " GROUP BY entity_id ORDER BY sum(spend) DESC, entity_id");
}

activity_page daily_activity_blocking(pqxx::connection& c, const activity_query& q) {
  pqxx::read_transaction tx{c};
  roomy(tx);
  const std::string filter = activity_filter(tx, q);
  const std::string table = rollup_for(q.entity_type, q.breakdown || !q.api_key.empty());
  activity_page out;
  auto totals = tx.exec1("SELECT json_build_object(" + sums("") + ")::text, count(DISTINCT day) FROM " + table +
                         " WHERE " + filter);
  out.totals_json = totals[0].as<std::string>();
  out.days = totals[1].as<long long>();
  const long long offset = static_cast<long long>(q.page - 1) * q.page_size;
  const std::string days = "WITH f AS (SELECT * FROM " + table + " WHERE " + filter +
                           "), days AS (SELECT DISTINCT day FROM f ORDER BY day LIMIT " + std::to_string(q.page_size) +
                           " OFFSET " + std::to_string(offset) + ") ";
  if (!q.breakdown) {
    out.rows_json = json_array_of(
        tx, days + "SELECT json_build_object('date', to_char(f.day, 'YYYY-MM-DD'), 'entity_id', f.entity_id, " +
                sums("f.") + ", 'team_alias', max(tm.team_alias))::text FROM f JOIN days USING (day) "
                "LEFT JOIN teams tm ON f.entity_type = 'team' AND tm.team_id = f.entity_id "
                "GROUP BY f.day, f.entity_id ORDER BY f.day, f.entity_id");
    return out;
  }
  out.rows_json = json_array_of(
      tx, "WITH f AS (SELECT * FROM daily_spend WHERE " + filter +
              "), days AS (SELECT DISTINCT day FROM f ORDER BY day LIMIT " + std::to_string(q.page_size) + " OFFSET " +
              std::to_string(offset) +
              ") SELECT json_build_object('date', to_char(f.day, 'YYYY-MM-DD'), 'entity_id', f.entity_id, "
              "'api_key', f.api_key, 'model', f.model, 'model_group', f.model_group, "
              "'custom_llm_provider', f.custom_llm_provider, 'prompt_tokens', f.prompt_tokens, "
              "'completion_tokens', f.completion_tokens, 'cache_read_input_tokens', f.cache_read_input_tokens, "
              "'cache_creation_input_tokens', f.cache_creation_input_tokens, 'spend', f.spend, "
              "'api_requests', f.api_requests, 'successful_requests', f.successful_requests, "
              "'failed_requests', f.failed_requests, 'key_alias', v.key_alias, 'key_team_id', v.team_id, "
              "'team_alias', tm.team_alias)::text FROM f JOIN days USING (day) "
              "LEFT JOIN verification_tokens v ON v.token = f.api_key "
              "LEFT JOIN teams tm ON f.entity_type = 'team' AND tm.team_id = f.entity_id "
              "ORDER BY f.day, f.entity_id, f.api_key, f.model, f.model_group, f.custom_llm_provider");
  return out;
}

}  // namespace switchyard::store::postgres
