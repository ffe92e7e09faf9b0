#include "switchyard/store/postgres/spend_query_repo.hpp"

#include "switchyard/core/utf8.hpp"
#include "switchyard/core/word_hash.hpp"

#include <pqxx/pqxx>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string_view>
#include <tuple>
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

namespace {

// The WHERE clause of spend_log_query's filters (empty, or " WHERE ...").
std::string log_filter(pqxx::transaction_base& tx, const spend_log_query& q) {
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
  return where;
}

std::string page_of(const spend_log_query& q) {
  const long long offset = static_cast<long long>(q.page - 1) * q.page_size;
  return " ORDER BY start_time DESC, row_id LIMIT " + std::to_string(q.page_size) + " OFFSET " + std::to_string(offset);
}

}  // namespace

std::string spend_log_rows_blocking(pqxx::connection& c, const spend_log_query& q) {
  pqxx::read_transaction tx{c};
  return json_array_of(tx, "SELECT " + log_row_object() + " FROM spend_logs" + log_filter(tx, q) + page_of(q));
}

spend_log_page spend_log_page_blocking(pqxx::connection& c, const spend_log_page_query& q) {
  pqxx::read_transaction tx{c};
  std::string where = log_filter(tx, q.base);
  auto add = [&where](const std::string& clause) { where += (where.empty() ? " WHERE " : " AND ") + clause; };
  add("start_time >= " + tx.quote(q.start_time + "+00") + "::timestamptz");
  add("start_time <= " + tx.quote(q.end_time + "+00") + "::timestamptz");
  if (!q.team_id.empty()) {
    add("team_id = " + tx.quote(q.team_id));
  }
  if (q.min_spend) {
    add("spend >= " + tx.quote(*q.min_spend));
  }
  if (q.max_spend) {
    add("spend <= " + tx.quote(*q.max_spend));
  }
  spend_log_page out;
  out.total = tx.exec1("SELECT count(*) FROM spend_logs" + where)[0].as<long long>();
  out.rows_json = json_array_of(tx, "SELECT " + log_row_object() + " FROM spend_logs" + where + page_of(q.base));
  return out;
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
  // The whole proxy's keys from their narrow daily table; an entity's from its rollups.
  const std::string rows = lens.entity_type == "all"
                               ? "daily_key_spend WHERE " + day_range(tx, "day", start_day, end_day)
                               : "daily_spend WHERE " + lens_filter(tx, lens, start_day, end_day);
  return json_array_of(
      tx, "SELECT json_build_object('api_key', s.api_key, 'total_spend', s.total_spend, 'key_alias', v.key_alias, "
          "'key_name', v.key_name)::text FROM (SELECT api_key, sum(spend) AS total_spend FROM " +
              rows + " GROUP BY api_key ORDER BY total_spend DESC, api_key" +
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
  bool no_group = false;  // a null customer: listed last in its day
  std::string_view day, group, api_key, model, spend, tokens;
  // The rank of day, group, api_key and model among the distinct values of the rows (byte
  // order: for days, YYYY-MM-DD, the calendar's).
  std::uint32_t day_rank = 0, group_rank = 0, key_rank = 0, model_rank = 0;
};

// Ranks (0, 1, ...) of the distinct strings of `field` over `rows`, in byte order, written
// to `rank`; the number of distinct strings. Rows mostly repeat the value of a row just
// before (a key's rows lie together), so the last value is checked before the table.
template <class Field, class Rank>
std::size_t rank_strings(std::vector<report_row>& rows, Field field, Rank rank) {
  std::unordered_map<std::string_view, std::uint32_t, core::word_hasher> ids;
  std::vector<std::string_view> names;
  std::string_view last;
  std::uint32_t last_id = 0;
  bool have_last = false;
  for (auto& r : rows) {
    const std::string_view v = r.*field;
    if (!have_last || v != last) {
      auto [it, added] = ids.try_emplace(v, static_cast<std::uint32_t>(names.size()));
      if (added) {
        names.push_back(v);
      }
      last = v, last_id = it->second, have_last = true;
    }
    r.*rank = last_id;
  }
  // Ids in first-seen order -> ranks in byte order.
  std::vector<std::uint32_t> by_name(names.size());
  for (std::uint32_t i = 0; i < by_name.size(); ++i) {
    by_name[i] = i;
  }
  std::sort(by_name.begin(), by_name.end(), [&](std::uint32_t a, std::uint32_t b) { return names[a] < names[b]; });
  std::vector<std::uint32_t> rank_of(names.size());
  for (std::uint32_t i = 0; i < by_name.size(); ++i) {
    rank_of[by_name[i]] = i;
  }
  for (auto& r : rows) {
    r.*rank = rank_of[r.*rank];
  }
  return names.size();
}

double number_of(std::string_view v) {
  double d = 0;
  std::from_chars(v.data(), v.data() + v.size(), d);
  return d;
}

// The report's text, written at a position in a buffer grown ahead (room() before each
// entry, for its worst case), not appended piece by piece: tens of thousands of entries
// of nine pieces each, and std::string's append checks and grows for every piece.
class report_text {
 public:
  explicit report_text(std::size_t guess) { buf_.resize(std::max<std::size_t>(guess, 64)); }
  void room(std::size_t n) {
    if (buf_.size() - at_ < n) {
      buf_.resize(std::max(buf_.size() * 2, at_ + n));  // zero-filled: once per doubling
    }
  }
  std::size_t size() const { return at_; }
  template <std::size_t N>
  void lit(const char (&s)[N]) {  // a literal, without its terminating zero
    std::memcpy(buf_.data() + at_, s, N - 1);
    at_ += N - 1;
  }
  void put(std::string_view v) {
    if (!v.empty()) {
      std::memcpy(buf_.data() + at_, v.data(), v.size());
      at_ += v.size();
    }
  }
  // A JSON string; room: 6 bytes a byte and the quotes (core::json_escape_max).
  void string(std::string_view v) {
    buf_[at_++] = '"';
    const std::size_t plain = core::plain_prefix(v);
    put(v.substr(0, plain));
    if (plain != v.size()) {
      at_ = static_cast<std::size_t>(
          core::write_utf8(buf_.data() + at_, v.substr(plain), core::json_escape_byte) - buf_.data());
    }
    buf_[at_++] = '"';
  }
  // Shortest spelling of a double; room: 32.
  void number(double v) { at_ = static_cast<std::size_t>(std::to_chars(buf_.data() + at_, buf_.data() + at_ + 32, v).ptr - buf_.data()); }
  // `v` put at `pos`, what follows moved along (room: v.size()).
  void insert(std::size_t pos, std::string_view v) {
    std::memmove(buf_.data() + pos + v.size(), buf_.data() + pos, at_ - pos);
    std::memcpy(buf_.data() + pos, v.data(), v.size());
    at_ += v.size();
  }
  std::string take() && {
    buf_.resize(at_);
    return std::move(buf_);
  }

 private:
  std::string buf_;
  std::size_t at_ = 0;
};

// Room for a JSON string of `v` written by report_text::string.
std::size_t string_room(std::string_view v) { return v.size() * core::json_escape_max + 2; }

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
      // The group's id, null for the requests of none (one column less to read than a flag).
      "SELECT day, CASE WHEN entity_type = " + std::string(team ? "'team'" : "'end_user'") +
      " THEN entity_id END, api_key, model, spend, prompt_tokens + completion_tokens FROM daily_spend WHERE "
      "entity_type IN " +
      (team ? "('team', 'no_team')" : "('end_user', 'no_end_user')") + " AND " + day_range(tx, "day", start_day, end_day));
  constexpr std::string_view unassigned = "Unassigned Team";
  std::vector<report_row> all;
  all.reserve(rows.size());
  for (const auto& r : rows) {
    // The fields read in column order through one iterator: libpqxx's r[i] makes a field
    // holding a copy of the result (reference counts) each time, which was a third of
    // the report's CPU over tens of thousands of rows.
    auto f = r.begin();
    const auto next = [&f] {
      const std::string_view v(f->c_str(), f->size());
      ++f;
      return v;
    };
    report_row e;
    e.day = next();
    const bool named = !f->is_null();
    const std::string_view id = next();
    if (team) {
      // A team without a name is listed as "Unassigned Team", as LiteLLM does.
      const auto found = named ? alias.find(id) : alias.end();
      e.group = found != alias.end() ? found->second : unassigned;
    } else if (named) {
      e.group = id;
    } else {
      e.no_group = true;
    }
    e.api_key = next();
    e.model = next();
    e.spend = next();
    e.tokens = next();
    all.push_back(e);
  }
  // The order (day, group, key, model) as one integer per row: the distinct names of each
  // field ranked once (a few thousand string comparisons), then tens of thousands of rows
  // sorted on integers. Sorting the rows on their strings compared long shared prefixes
  // (keys, customer ids) at every step and was most of the report's time.
  const std::size_t days = rank_strings(all, &report_row::day, &report_row::day_rank);
  const std::size_t groups = rank_strings(all, &report_row::group, &report_row::group_rank);
  const std::size_t keys = rank_strings(all, &report_row::api_key, &report_row::key_rank);
  const std::size_t models = rank_strings(all, &report_row::model, &report_row::model_rank);
  constexpr unsigned day_bits = 11;   // 2,048 days (five years and more)
  constexpr unsigned rank_bits = 17;  // 131,072 distinct values a field: 11 + 1 + 3 x 17 bits
  constexpr std::uint64_t rank_limit = std::uint64_t{1} << rank_bits;
  const bool packed = days < (std::uint64_t{1} << day_bits) && groups < rank_limit && keys < rank_limit &&
                      models < rank_limit;
  std::vector<std::pair<std::uint64_t, std::uint32_t>> order(all.size());
  for (std::uint32_t i = 0; i < order.size(); ++i) {
    const report_row& r = all[i];
    std::uint64_t k = 0;
    if (packed) {
      k = r.day_rank;
      k = (k << 1) | (r.no_group ? 1 : 0);
      k = (k << rank_bits) | r.group_rank;
      k = (k << rank_bits) | r.key_rank;
      k = (k << rank_bits) | r.model_rank;
    }
    order[i] = {k, i};
  }
  if (packed) {
    std::sort(order.begin(), order.end());
  } else {  // beyond the packed key's room: the same order, compared field by field
    std::sort(order.begin(), order.end(), [&](const auto& x, const auto& y) {
      const report_row& a = all[x.second];
      const report_row& b = all[y.second];
      return std::tie(a.day_rank, a.no_group, a.group_rank, a.key_rank, a.model_rank, x.second) <
             std::tie(b.day_rank, b.no_group, b.group_rank, b.key_rank, b.model_rank, y.second);
    });
  }
  const auto same_group = [](const report_row& a, const report_row& b) {
    return a.day_rank == b.day_rank && a.no_group == b.no_group && a.group_rank == b.group_rank;
  };

  report_text out(all.size() * 200);
  out.room(1);
  out.lit("[");
  for (std::size_t i = 0; i < order.size();) {
    const report_row& first = all[order[i].second];
    // The day's and the group's opening, the group's name, its total (32).
    out.room(128 + first.day.size() + string_room(first.group));
    if (i == 0 || first.day_rank != all[order[i - 1].second].day_rank) {
      if (i == 0) {
        out.lit("{\"group_by_day\":\"");
      } else {
        out.lit("]},{\"group_by_day\":\"");
      }
      out.put(first.day);
      if (team) {
        out.lit("T00:00:00+00:00\",\"teams\":[");
      } else {
        out.lit("T00:00:00+00:00\",\"customers\":[");
      }
    } else {
      out.lit(",");
    }
    if (team) {
      out.lit("{\"team_name\":");
    } else {
      out.lit("{\"customer\":");
    }
    if (first.no_group) {
      out.lit("null");
    } else {
      out.string(first.group);
    }
    // total_spend comes before the entries but is known after them: it is inserted here
    // once they are written (a group's entries are a few kilobytes at most).
    out.lit(",\"total_spend\":");
    const std::size_t total_at = out.size();
    out.lit(",\"metadata\":[");
    double total = 0;
    std::size_t j = i;
    for (bool first_entry = true; j < order.size() && same_group(all[order[j].second], first); first_entry = false) {
      const report_row& e = all[order[j].second];
      std::size_t k = j + 1;
      while (k < order.size() && same_group(all[order[k].second], first) &&
             all[order[k].second].key_rank == e.key_rank && all[order[k].second].model_rank == e.model_rank) {
        ++k;
      }
      out.room(128 + string_room(e.model) + string_room(e.api_key) + e.spend.size() + e.tokens.size());
      if (first_entry) {
        out.lit("{\"model\":");
      } else {
        out.lit(",{\"model\":");
      }
      out.string(e.model);
      out.lit(",\"api_key\":");
      out.string(e.api_key);
      out.lit(",\"spend\":");
      if (k == j + 1) {
        out.put(e.spend);
        out.lit(",\"total_tokens\":");
        out.put(e.tokens);
        total += number_of(e.spend);
      } else {
        double spend = 0, tokens = 0;
        for (std::size_t x = j; x < k; ++x) {
          spend += number_of(all[order[x].second].spend);
          tokens += number_of(all[order[x].second].tokens);
        }
        out.number(spend);
        out.lit(",\"total_tokens\":");
        char buf[24];
        out.put(std::string_view(buf, static_cast<std::size_t>(
                                          std::to_chars(buf, buf + sizeof buf, std::llround(tokens)).ptr - buf)));
        total += spend;
      }
      out.lit("}");
      j = k;
    }
    out.room(40);
    out.lit("]}");
    char buf[32];
    out.insert(total_at, std::string_view(buf, static_cast<std::size_t>(std::to_chars(buf, buf + sizeof buf, total).ptr - buf)));
    i = j;
  }
  out.room(4);
  if (!order.empty()) {
    out.lit("]}");
  }
  out.lit("]");
  return std::move(out).take();
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

std::string tag_spend_per_tag_blocking(pqxx::connection& c, const std::string& start_day, const std::string& end_day,
                                       const std::vector<std::string>& tags) {
  pqxx::read_transaction tx{c};
  std::string where = "entity_type = 'tag' AND " + day_range(tx, "day", start_day, end_day);
  if (!tags.empty()) {
    std::string list;
    for (const auto& t : tags) {
      list += (list.empty() ? "" : ",") + tx.quote(t);
    }
    where += " AND entity_id IN (" + list + ")";
  }
  // LiteLLM rounds each tag's spend to 4 decimals for its UI.
  return json_array_of(tx, "SELECT json_build_object('name', entity_id, 'spend', round(sum(spend)::numeric, 4), "
                           "'log_count', sum(api_requests))::text FROM daily_spend WHERE " +
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
