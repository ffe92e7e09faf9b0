#!/usr/bin/env bash
# The spend reports over 10 million spend_logs rows (docs/spend.md, "Query plans"): a
# scratch Postgres, a month of made-up traffic, then the report endpoints timed with curl
# and the statements the gateway sent run again under EXPLAIN (ANALYZE, BUFFERS).
#
#   ./bench/spend_reports.sh load DIR BIN [ROWS]   # Postgres in DIR; BIN applies the migrations;
#                                                  # ROWS (default 10,000,000) over October 2026
#                                                  # and the rollups made from them (~10 min)
#   ./bench/spend_reports.sh measure DIR BIN [N]   # BIN on that database (its migrations applied
#                                                  # first); each endpoint N times (default 5)
#                                                  # with curl; then EXPLAIN ANALYZE of every
#                                                  # statement it sent (DIR/plans/*.txt)
#   ./bench/spend_reports.sh stop DIR              # stops Postgres (DIR is kept: rm -rf it)
#
# The data (docs/spend.md): 1,000 keys of 300 users, 50 teams (every tenth key has none),
# 5 organisations, one model per key (5 models); an end user on every third request (one
# per key, 1,000 in all); one of 3 tags on every request of a fifth of the keys; 1 in 50
# requests failed. The rollups are built from the rows as the spend writer builds them.
# Not part of the test suite.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd -P)

log() { printf '[bench/spend_reports] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

MASTER=sk-bench-reports-master
(( $# >= 2 )) || { sed -n '2,20s/^# \{0,1\}//p' "$0" >&2; exit 2; }
cmd=$1 DIR=$2
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd -P)

pg_start() {
  scripts/services.sh start "$DIR" --no-redis --ephemeral >/dev/null 2>&1 || die "could not start Postgres in $DIR"
  # shellcheck source=/dev/null
  source "$DIR/env.sh"
  URL=$DATABASE_URL
}
sql() { psql -X -A -t -v ON_ERROR_STOP=1 "$URL" -c "$1"; }

# Starts BIN on the scratch database (it applies its migrations) and waits until it is
# ready; GW_PID and GW_URL are set.
gw_start() {
  local bin=$1 port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  cat >"$DIR/config.yaml" <<EOF
model_list:
  - model_name: demo
    litellm_params: {model: openai/demo, mock_response: "hi"}
general_settings:
  master_key: $MASTER
  database_url: $URL
EOF
  SWITCHYARD_DATA_DIR="$DIR/data" "$bin" --config "$DIR/config.yaml" --host 127.0.0.1 --port "$port" \
    >"$DIR/gateway.log" 2>&1 &
  GW_PID=$!
  GW_URL="http://127.0.0.1:$port"
  for _ in $(seq 1 600); do
    if curl -fsS "$GW_URL/health/readiness" 2>/dev/null | grep -q '"db":"connected"'; then
      return 0
    fi
    kill -0 "$GW_PID" 2>/dev/null || { tail -20 "$DIR/gateway.log" >&2; die "the gateway exited"; }
    sleep 0.1
  done
  die "the gateway was not ready within 60 s"
}
gw_stop() { kill "$GW_PID" 2>/dev/null || true; wait "$GW_PID" 2>/dev/null || true; }

load() {
  local bin=$1 rows=${2:-10000000}
  pg_start
  gw_start "$bin"
  gw_stop
  log "postgres at $URL; $rows rows over October 2026"
  local t0=$SECONDS
  for d in $(seq -w 1 31); do
    sql "CREATE TABLE IF NOT EXISTS spend_logs_202610$d PARTITION OF spend_logs
         FOR VALUES FROM ('2026-10-$d 00:00:00+00') TO (('2026-10-$d 00:00:00+00'::timestamptz + interval '1 day'))" >/dev/null
  done
  sql "INSERT INTO teams (team_id, team_alias) SELECT 'team-' || t, 'Team ' || t FROM generate_series(0, 49) t
       ON CONFLICT DO NOTHING" >/dev/null
  sql "INSERT INTO verification_tokens (token, key_name, key_alias, user_id, team_id)
       SELECT encode(sha256(convert_to('sk-bench-' || k, 'UTF8')), 'hex'), 'sk-...' || k, 'key-' || k,
              'user-' || (k % 300), CASE WHEN k % 10 = 0 THEN NULL ELSE 'team-' || (k % 50) END
       FROM generate_series(0, 999) k ON CONFLICT DO NOTHING" >/dev/null
  sql "SET work_mem = '256MB';
       INSERT INTO spend_logs (row_id, request_id, call_type, api_key, key_alias, user_id, team_id, organization_id,
                               end_user, model, model_group, model_id, custom_llm_provider, api_base, prompt_tokens,
                               completion_tokens, total_tokens, cached_tokens, spend, start_time, end_time,
                               request_duration_ms, status, status_code, request_tags)
       SELECT gen_random_uuid(), 'req-' || i, 'acompletion', k.hash, 'key-' || k.k, 'user-' || (k.k % 300),
              CASE WHEN k.k % 10 = 0 THEN NULL ELSE 'team-' || (k.k % 50) END, 'org-' || (k.k % 5),
              CASE WHEN i % 3 = 0 THEN 'customer-' || ((k.k * 2 + (i / 3) % 2) % 2000) END,
              m.model, m.model, m.model || '-1', m.provider, 'https://api.example.com',
              100 + i % 900, 20 + i % 200, 120 + i % 900 + i % 200, (i % 7) * 10,
              ((100 + i % 900) * 2.5e-6 + (20 + i % 200) * 1e-5),
              t.ts, t.ts + interval '800 ms', 800,
              CASE WHEN i % 50 = 0 THEN 'failure' ELSE 'success' END, CASE WHEN i % 50 = 0 THEN 500 ELSE 200 END,
              CASE WHEN i % 5 = 0 THEN jsonb_build_array('tag-' || ((i / 5) % 3)) ELSE '[]'::jsonb END
       FROM generate_series(0, $rows - 1) i
       CROSS JOIN LATERAL (SELECT '2026-10-01 00:00:00+00'::timestamptz
                                  + (i::double precision / $rows) * interval '31 days' AS ts) t
       JOIN (SELECT k, encode(sha256(convert_to('sk-bench-' || k, 'UTF8')), 'hex') AS hash
             FROM generate_series(0, 999) k) k ON k.k = i % 1000
       JOIN (VALUES (0, 'gpt-4o', 'openai'), (1, 'gpt-4o-mini', 'openai'), (2, 'claude-sonnet-4', 'anthropic'),
                    (3, 'gemini-2.0-flash', 'gemini'), (4, 'mistral-large', 'mistral')) m(n, model, provider)
         ON m.n = (i % 1000) % 5" >/dev/null
  log "rows written in $((SECONDS - t0)) s; rollups"
  t0=$SECONDS
  sql "SET work_mem = '256MB';
       INSERT INTO daily_spend (entity_type, entity_id, day, api_key, model, model_group, custom_llm_provider,
                                prompt_tokens, completion_tokens, cache_read_input_tokens, cache_creation_input_tokens,
                                spend, api_requests, successful_requests, failed_requests)
       SELECT entity_type, entity_id, day, api_key, model, coalesce(model_group, ''), coalesce(custom_llm_provider, ''),
              sum(prompt_tokens), sum(completion_tokens), sum(cached_tokens), sum(cache_creation_tokens), sum(spend),
              count(*), count(*) FILTER (WHERE status = 'success'), count(*) FILTER (WHERE status <> 'success')
       FROM (SELECT (start_time AT TIME ZONE 'UTC')::date AS day, * FROM spend_logs) s
       CROSS JOIN LATERAL (VALUES ('all', ''), ('key', s.api_key), ('user', s.user_id), ('team', s.team_id),
                                  ('org', s.organization_id), ('end_user', s.end_user),
                                  ('tag', s.request_tags->>0),
                                  ('no_team', CASE WHEN s.team_id IS NULL THEN '' END),
                                  ('no_end_user', CASE WHEN s.end_user IS NULL THEN '' END)) e(entity_type, entity_id)
       WHERE e.entity_id IS NOT NULL
       GROUP BY 1, 2, 3, 4, 5, 6, 7" >/dev/null
  sql "UPDATE verification_tokens v SET spend = s.total FROM (SELECT entity_id, sum(spend) AS total FROM daily_spend
       WHERE entity_type = 'key' GROUP BY 1) s WHERE v.token = s.entity_id" >/dev/null
  log "rollups in $((SECONDS - t0)) s; VACUUM ANALYZE"
  sql "VACUUM ANALYZE" >/dev/null
  sql "SELECT entity_type, count(*) FROM daily_spend GROUP BY 1 ORDER BY 1" >&2
  sql "SELECT count(*) AS spend_logs_rows FROM spend_logs" >&2
}

# curl timings of one endpoint: "min-max ms, bytes".
timed() {
  local path=$1 n=$2 out times=() size=0
  for _ in $(seq 1 "$n"); do
    out=$(curl -sS -o /dev/null -w '%{http_code} %{time_total} %{size_download}' \
          -H "authorization: Bearer $MASTER" "$GW_URL$path")
    read -r code t size <<<"$out"
    [[ "$code" == 200 ]] || die "$path answered $code"
    times+=("$(awk -v t="$t" 'BEGIN{printf "%.1f", t*1000}')")
  done
  printf '| `%s` | %s B | %s ms |\n' "$path" "$size" "$(printf '%s\n' "${times[@]}" | sort -n | paste -sd' ')"
}

measure() {
  local bin=$1 n=${2:-5} key
  pg_start
  key=$(sql "SELECT encode(sha256(convert_to('sk-bench-42', 'UTF8')), 'hex')")
  gw_start "$bin"
  local range='start_date=2026-10-01&end_date=2026-10-31'
  local paths=(
    "/spend/logs?api_key=$key&$range&summarize=false"
    "/spend/logs?api_key=$key&$range&summarize=false&page_size=100"
    "/spend/logs?api_key=$key&$range"
    "/global/spend/report?$range"
    "/global/spend/report?$range&group_by=customer"
    "/global/spend/report?$range&group_by=api_key"
    "/global/spend/report?$range&api_key=$key"
    "/user/daily/activity?$range&user_id=user-42"
    "/spend/tags?$range"
  )
  # Warm-up (plans, the page cache), then the statement log for the measured calls.
  for p in "${paths[@]}"; do
    curl -sS -o /dev/null -H "authorization: Bearer $MASTER" "$GW_URL$p"
  done
  printf '%s, %s, commit %s, %s\n\n' "$(date -u '+%Y-%m-%d %H:%M UTC')" "$bin" \
    "$(git rev-parse --short HEAD 2>/dev/null || echo '?')" "load $(cut -d' ' -f1-3 /proc/loadavg)"
  printf '| endpoint (October 2026) | answer | times (%s calls, sorted) |\n|---|---|---|\n' "$n"
  for p in "${paths[@]}"; do
    timed "$p" "$n"
  done
  # Every statement of one more call of each endpoint, under EXPLAIN ANALYZE.
  mkdir -p "$DIR/plans"
  rm -f "$DIR"/plans/*.txt
  sql "ALTER SYSTEM SET log_min_duration_statement = 0" >/dev/null
  sql "SELECT pg_reload_conf()" >/dev/null
  local mark i=0
  for p in "${paths[@]}"; do
    i=$((i + 1))
    mark=$(wc -c <"$DIR/postgres.log")
    curl -sS -o /dev/null -H "authorization: Bearer $MASTER" "$GW_URL$p"
    sleep 0.5  # the server writes its log asynchronously; only for the plan files, not a timing
    tail -c +"$((mark + 1))" "$DIR/postgres.log" | python3 -c '
import re, sys
text = sys.stdin.read()
for m in re.finditer(r"duration: [0-9.]+ ms  statement: (.*?)(?=\n\S+ \S+ \S+ \[|\Z)", text, re.S):
    s = m.group(1).strip()
    if s.upper().startswith(("SELECT", "WITH")) and "pg_" not in s[:40] and s != "SELECT 1":
        print(s.replace("\n", " ") + ";")
' >"$DIR/plans/$i.sql"
    {
      printf -- '-- %s\n' "$p"
      while IFS= read -r stmt; do
        printf '\n-- %s\n' "${stmt:0:160}"
        psql -X -A -t -v ON_ERROR_STOP=1 "$URL" -c "SET work_mem = '64MB'" \
          -c "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) ${stmt%;}"
      done <"$DIR/plans/$i.sql"
    } >"$DIR/plans/$i.txt" 2>&1 || true
  done
  sql "ALTER SYSTEM RESET log_min_duration_statement" >/dev/null
  sql "SELECT pg_reload_conf()" >/dev/null
  gw_stop
  log "plans in $DIR/plans/*.txt"
}

case "$cmd" in
  load) (( $# >= 3 )) || die "load DIR BIN [ROWS]"; load "$3" "${4:-}" ;;
  measure) (( $# >= 3 )) || die "measure DIR BIN [N]"; measure "$3" "${4:-5}" ;;
  stop) scripts/services.sh stop "$DIR" ;;
  *) die "unknown command: $cmd" ;;
esac
