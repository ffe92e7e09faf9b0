#!/usr/bin/env bash
# The admin UI's pages over 10,000 keys and 1,000,000 spend rows: a scratch Postgres
# seeded with generate_series (the last 30 days of made-up traffic, its daily rollups,
# totals and the keys' running spend, as the spend writer keeps them), the gateway on it, then every
# page loaded in headless Chromium (bench/ui_pages.mjs): the time until the page has
# rendered its data and the number of API calls it made.
#
#   ./bench/ui_pages.sh [DIR] [RUNS]     DIR: scratch folder (default: a new temporary one,
#                                        removed after); RUNS per page (default 7)
#
# Env: SWITCHYARD_BIN (default build/release/src/switchyard), UI_BENCH_ROWS (1000000),
#      UI_BENCH_KEYS (10000). Needs chromium and tests/node_modules (puppeteer-core).
# The data: KEYS keys of 2,000 users, 200 teams (every tenth key has none), 5 models; 1 in
# 50 requests failed. Not part of the test suite.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd -P)

log() { printf '[bench/ui_pages] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

BIN=${SWITCHYARD_BIN:-$ROOT/build/release/src/switchyard}
ROWS=${UI_BENCH_ROWS:-1000000}
KEYS=${UI_BENCH_KEYS:-10000}
RUNS=${2:-7}
MASTER=sk-bench-ui-master
[[ -x "$BIN" ]] || die "$BIN not found: ./scripts/run.sh --build-only, or set SWITCHYARD_BIN"
[[ -x /usr/bin/chromium ]] || die "chromium not found: apt-get install chromium"
[[ -d tests/node_modules/puppeteer-core ]] || die "puppeteer-core missing: (cd tests && npm ci)"

if [[ -n "${1:-}" ]]; then
  mkdir -p "$1"
  DIR=$(cd "$1" && pwd -P)
  keep=1
else
  DIR=$(mktemp -d "${TMPDIR:-/tmp}/switchyard-ui-bench.XXXXXX")
  keep=0
fi
GW_PID=''
cleanup() {
  [[ -n "$GW_PID" ]] && { kill "$GW_PID" 2>/dev/null || true; wait "$GW_PID" 2>/dev/null || true; }
  scripts/services.sh stop "$DIR" >/dev/null 2>&1 || true
  (( keep )) || rm -rf "$DIR"
}
trap cleanup EXIT

scripts/services.sh start "$DIR" --no-redis --ephemeral >/dev/null 2>&1 || die "could not start Postgres in $DIR"
# shellcheck source=/dev/null
source "$DIR/env.sh"
URL=$DATABASE_URL
sql() { psql -X -A -t -v ON_ERROR_STOP=1 "$URL" -c "$1"; }

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$DIR/config.yaml" <<EOF
model_list:
  - model_name: gpt-4o
    litellm_params: {model: openai/gpt-4o, mock_response: "hi"}
  - model_name: claude-sonnet-4
    litellm_params: {model: anthropic/claude-sonnet-4, mock_response: "hi"}
general_settings:
  master_key: $MASTER
  database_url: $URL
EOF
start_gateway() {
  SWITCHYARD_DATA_DIR="$DIR/data" "$BIN" --config "$DIR/config.yaml" --host 127.0.0.1 --port "$port" \
    >>"$DIR/gateway.log" 2>&1 &
  GW_PID=$!
  for _ in $(seq 1 600); do
    if curl -fsS "http://127.0.0.1:$port/health/readiness" 2>/dev/null | grep -q '"db":"connected"'; then
      return 0
    fi
    kill -0 "$GW_PID" 2>/dev/null || { tail -20 "$DIR/gateway.log" >&2; die "the gateway exited"; }
    sleep 0.1
  done
  die "the gateway was not ready within 60 s"
}
stop_gateway() { kill "$GW_PID" 2>/dev/null || true; wait "$GW_PID" 2>/dev/null || true; GW_PID=''; }

# The schema (the gateway's migrations), then the data with the gateway stopped.
start_gateway
stop_gateway
log "seeding $KEYS keys and $ROWS spend rows over the last 30 days"
t0=$SECONDS
sql "DO \$\$ DECLARE d date; BEGIN
       FOR d IN SELECT generate_series(current_date - 29, current_date + 1, interval '1 day')::date LOOP
         IF to_regclass('spend_logs_' || to_char(d, 'YYYYMMDD')) IS NULL THEN
           EXECUTE format('CREATE TABLE %I PARTITION OF spend_logs FOR VALUES FROM (%L) TO (%L)',
                          'spend_logs_' || to_char(d, 'YYYYMMDD'), d::timestamptz AT TIME ZONE 'UTC',
                          (d + 1)::timestamptz AT TIME ZONE 'UTC');
         END IF;
       END LOOP; END \$\$" >/dev/null
sql "INSERT INTO teams (team_id, team_alias) SELECT 'team-' || t, 'Team ' || t FROM generate_series(0, 199) t
     ON CONFLICT DO NOTHING" >/dev/null
sql "INSERT INTO users (user_id, user_role) SELECT 'user-' || u, 'internal_user' FROM generate_series(0, 1999) u
     ON CONFLICT DO NOTHING" >/dev/null
sql "INSERT INTO verification_tokens (token, key_name, key_alias, user_id, team_id, max_budget)
     SELECT encode(sha256(convert_to('sk-bench-' || k, 'UTF8')), 'hex'), 'sk-...' || lpad(k::text, 4, '0'), 'key-' || k,
            'user-' || (k % 2000), CASE WHEN k % 10 = 0 THEN NULL ELSE 'team-' || (k % 200) END, 100
     FROM generate_series(0, $KEYS - 1) k ON CONFLICT DO NOTHING" >/dev/null
sql "SET work_mem = '256MB';
     INSERT INTO spend_logs (row_id, request_id, call_type, api_key, key_alias, user_id, team_id, model, model_group,
                             model_id, custom_llm_provider, api_base, prompt_tokens, completion_tokens, total_tokens,
                             spend, start_time, end_time, request_duration_ms, status, status_code)
     SELECT gen_random_uuid(), 'req-' || i, 'acompletion', k.hash, 'key-' || k.k, 'user-' || (k.k % 2000),
            CASE WHEN k.k % 10 = 0 THEN NULL ELSE 'team-' || (k.k % 200) END,
            m.model, m.model, m.model || '-1', m.provider, 'https://api.example.com',
            100 + i % 900, 20 + i % 200, 120 + i % 900 + i % 200,
            ((100 + i % 900) * 2.5e-6 + (20 + i % 200) * 1e-5),
            t.ts, t.ts + interval '800 ms', 800,
            CASE WHEN i % 50 = 0 THEN 'failure' ELSE 'success' END, CASE WHEN i % 50 = 0 THEN 500 ELSE 200 END
     FROM generate_series(0, $ROWS - 1) i
     CROSS JOIN LATERAL (SELECT (current_date - 29)::timestamptz AT TIME ZONE 'UTC'
                                + (i::double precision / $ROWS) * (now() - ((current_date - 29)::timestamptz AT TIME ZONE 'UTC')) AS ts) t
     JOIN (SELECT k, encode(sha256(convert_to('sk-bench-' || k, 'UTF8')), 'hex') AS hash
           FROM generate_series(0, $KEYS - 1) k) k ON k.k = (i::bigint * 7919) % $KEYS
     JOIN (VALUES (0, 'gpt-4o', 'openai'), (1, 'gpt-4o-mini', 'openai'), (2, 'claude-sonnet-4', 'anthropic'),
                  (3, 'gemini-2.0-flash', 'gemini'), (4, 'mistral-large', 'mistral')) m(n, model, provider)
       ON m.n = i % 5" >/dev/null
sql "SET work_mem = '256MB';
     INSERT INTO daily_spend (entity_type, entity_id, day, api_key, model, model_group, custom_llm_provider,
                              prompt_tokens, completion_tokens, spend, api_requests, successful_requests, failed_requests)
     SELECT entity_type, entity_id, day, api_key, model, coalesce(model_group, ''), coalesce(custom_llm_provider, ''),
            sum(prompt_tokens), sum(completion_tokens), sum(spend),
            count(*), count(*) FILTER (WHERE status = 'success'), count(*) FILTER (WHERE status <> 'success')
     FROM (SELECT (start_time AT TIME ZONE 'UTC')::date AS day, * FROM spend_logs) s
     CROSS JOIN LATERAL (VALUES ('all', ''), ('key', s.api_key), ('user', s.user_id), ('team', s.team_id),
                                ('no_team', CASE WHEN s.team_id IS NULL THEN '' END)) e(entity_type, entity_id)
     WHERE e.entity_id IS NOT NULL
     GROUP BY 1, 2, 3, 4, 5, 6, 7" >/dev/null
sql "INSERT INTO daily_spend_totals (entity_type, entity_id, day, model, prompt_tokens, completion_tokens, spend,
                                     api_requests, successful_requests, failed_requests)
     SELECT entity_type, entity_id, day, model, sum(prompt_tokens), sum(completion_tokens), sum(spend),
            sum(api_requests), sum(successful_requests), sum(failed_requests)
     FROM daily_spend WHERE entity_type IN ('all', 'team', 'org') GROUP BY 1, 2, 3, 4" >/dev/null
sql "UPDATE verification_tokens v SET spend = s.total FROM (SELECT entity_id, sum(spend) AS total FROM daily_spend
     WHERE entity_type = 'key' GROUP BY 1) s WHERE v.token = s.entity_id" >/dev/null
sql "VACUUM ANALYZE" >/dev/null
log "seeded in $((SECONDS - t0)) s: $(sql 'SELECT count(*) FROM verification_tokens') keys, $(sql 'SELECT count(*) FROM spend_logs') spend rows, $(sql 'SELECT count(*) FROM daily_spend') rollup rows"

start_gateway
printf '%s, %s, commit %s, load %s\n\n' "$(date -u '+%Y-%m-%d %H:%M UTC')" "$BIN" \
  "$(git rev-parse --short HEAD 2>/dev/null || echo '?')" "$(cut -d' ' -f1-3 /proc/loadavg)"
node bench/ui_pages.mjs "http://127.0.0.1:$port" "$MASTER" "$RUNS"
