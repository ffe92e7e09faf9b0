// A load test of 10,000 chat completions with virtual keys runs ZERO
// Postgres queries on the hot path after warm-up. Counted by the server itself with
// pg_stat_statements (scripts/services.sh preloads it and creates it in template1, so the
// fresh database of this test has it too), for this test's database only (dbid), so the
// other tests that share the server (ctest -j2) neither disturb nor are disturbed.
//
// 1. A fresh database; the gateway on it (a mock_response model: no upstream).
// 2. 5 virtual keys from /key/generate; one request each (the warm-up: one lookup per key).
// 3. pg_stat_statements_reset() for this database; 10,000 chat completions with those keys,
//    20 in flight; every one must be 200.
// 4. pg_stat_statements for this database: the only statement allowed is the background
//    health ping (`SELECT 1`, stored as `SELECT $1`, once a second from maintain_stores in
//    src/app/gateway.cpp), at most elapsed seconds + slack times. A key's cache entry is
//    refreshed in the background once it is 60 s old; should the load run that long (it
//    takes a few seconds), those refreshes are allowed too, bounded by time (keys x
//    minutes), not by requests; so are the budget jobs' timed passes (docs/budgets.md).
// 5. Control, proving the counting works: 20 distinct unknown keys (401 each) must show up
//    as exactly 20 key lookups (one query each on verification_tokens).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';

import { call, mockModel, startGateway, stopAll } from '../lib/gateway.mjs';

const SERVER_URL = process.env.SWITCHYARD_TEST_DATABASE_URL;
const skip = !SERVER_URL && 'SWITCHYARD_TEST_DATABASE_URL not set (scripts/test.sh sets it)';

const KEYS = 5;
const REQUESTS = Number(process.env.SWITCHYARD_HOT_PATH_REQUESTS ?? 10_000);
const IN_FLIGHT = 20;
const KEY_TTL_S = 60;  // auth::key_cache_options::ttl (LiteLLM's user_api_key_cache_ttl)
const PING_SLACK = 3;

function withDatabase(url, db) {
  const u = new URL(url);
  u.pathname = `/${db}`;
  return u.toString();
}
function psql(url, sql) {
  return execFileSync('psql', ['-X', '-A', '-t', '-q', '-v', 'ON_ERROR_STOP=1', url, '-c', sql], { encoding: 'utf8' }).trim();
}
// Rows of a query as objects (psql's JSON output of each row).
function rows(url, sql) {
  const out = psql(url, `SELECT coalesce(json_agg(r), '[]') FROM (${sql}) r`);
  return JSON.parse(out);
}

const isPing = (q) => /^SELECT \$1$/i.test(q.trim());
const isKeyLookup = (q) => /verification_tokens/.test(q) && /^WITH k AS/i.test(q.trim());
// The statements libpqxx 6.4 wraps a read_transaction in: BEGIN, SET TRANSACTION READ ONLY,
// then ROLLBACK (or COMMIT).
const isTxControl = (q) => /^(BEGIN|COMMIT|ROLLBACK|START TRANSACTION|SET TRANSACTION)\b/i.test(q.trim());
// The cost logger's batches (its own connection, in the background): every statement of a
// batch writes spend_logs or reads or makes its temporary tables (spend_stage, spend_groups),
// is the day-partition check, or is one of the transaction's SET LOCALs. Their number grows
// with time (one batch per flush interval at most), not with the request count. One COPY of
// rows per batch (into spend_logs, or into spend_stage for a checked batch).
const isSpendWriter = (q) => /spend_stage|spend_groups|spend_logs|daily_spend|to_regclass/.test(q) ||
  /^SET LOCAL (jit|client_min_messages)\b/i.test(q.trim());
const isSpendBatch = (q) => /^COPY (spend_stage|spend_logs) .*FROM STDIN$/i.test(q.trim().replace(/\s+/g, " "));
// The budget jobs (docs/budgets.md), on timers in the background: a reset pass (the advisory
// lock, Postgres's clock, the due rows, the old budget_resets rows, the next due time) at
// least every SWITCHYARD_BUDGET_RESET_POLL_S (60 s) and after management writes, and the
// budget gauges' read every SWITCHYARD_BUDGET_METRICS_S (30 s). Bounded by time, not requests.
const isBudgetJob = (q) => /budget_reset|pg_try_advisory_xact_lock|extract\(\$1 FROM now\(\)\)|soft_budget/.test(q);
const isResetPass = (q) => /pg_try_advisory_xact_lock/.test(q);
const isBudgetRead = (q) => /soft_budget/.test(q);

describe('hot path: no Postgres queries under load after warm-up', { skip }, () => {
  const dbName = `swy_hot_${process.pid}_${Date.now()}`;
  let dbUrl;
  let dbid;
  let gw;

  // pg_stat_statements of this test's database (queried from the server's own database,
  // where the extension exists too: the view is cluster-wide).
  const statements = () => rows(SERVER_URL, `SELECT calls::int, query FROM pg_stat_statements
      WHERE dbid = ${dbid} AND calls > 0 ORDER BY calls DESC, query`);
  const deallocs = () => Number(psql(SERVER_URL, 'SELECT dealloc FROM pg_stat_statements_info'));
  const reset = () => psql(SERVER_URL, `SELECT pg_stat_statements_reset(0, ${dbid}, 0)`);
  const show = (label, list) => {
    console.log(`# ${label}: ${list.length} statement(s)`);
    for (const s of list) console.log(`#   ${String(s.calls).padStart(6)}  ${s.query.replace(/\s+/g, ' ').slice(0, 160)}`);
  };

  before(async () => {
    psql(SERVER_URL, `CREATE DATABASE ${dbName}`);
    dbUrl = withDatabase(SERVER_URL, dbName);
    dbid = Number(psql(SERVER_URL, `SELECT oid FROM pg_database WHERE datname = '${dbName}'`));
    // Fails loudly (not a skip) when the server was started without the extension.
    const loaded = psql(SERVER_URL, "SELECT count(*) FROM pg_extension WHERE extname = 'pg_stat_statements'");
    assert.equal(loaded, '1', 'pg_stat_statements is not installed in the test server (scripts/services.sh creates it)');
    gw = await startGateway({ config: { model_list: [mockModel('a', 'from a')] }, env: { DATABASE_URL: dbUrl } });
  });
  after(async () => {
    await stopAll();
    if (dbUrl) psql(SERVER_URL, `DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
  });

  const body = JSON.stringify({ model: 'a', messages: [{ role: 'user', content: 'hi' }] });
  const chat = async (key) => {
    const r = await fetch(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body,
      signal: AbortSignal.timeout(30_000),
    });
    const text = await r.text();
    return { status: r.status, text };
  };

  test(`${REQUESTS} requests with ${KEYS} virtual keys: only the background ping reaches Postgres`, async () => {
    const keys = [];
    for (let i = 0; i < KEYS; i += 1) {
      const r = await call(gw, '/key/generate', { body: { key_alias: `hot-${i}` } });
      assert.equal(r.status, 200, r.text);
      keys.push(r.json.key);
    }
    // Warm-up: the first use of each key is its one lookup.
    const warmStart = Date.now();
    for (const k of keys) {
      const r = await chat(k);
      assert.equal(r.status, 200, r.text);
    }
    const deallocBefore = deallocs();
    reset();
    const t0 = Date.now();

    let next = 0;
    const failures = [];
    const worker = async () => {
      while (next < REQUESTS) {
        const i = next;
        next += 1;
        const r = await chat(keys[i % KEYS]);
        if (r.status !== 200 && failures.length < 10) failures.push(`#${i}: ${r.status} ${r.text.slice(0, 200)}`);
        if (r.status !== 200) failures.count = (failures.count ?? 0) + 1;
      }
    };
    await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
    const loadMs = Date.now() - t0;
    assert.deepEqual(failures, [], `${failures.count ?? 0} of ${REQUESTS} requests failed`);

    const seen = statements();
    const elapsedS = (Date.now() - t0) / 1000;
    const sinceWarmS = (Date.now() - warmStart) / 1000;
    console.log(`# ${REQUESTS} requests in ${loadMs} ms (${Math.round(REQUESTS / (loadMs / 1000))}/s), ` +
                `${IN_FLIGHT} in flight, ${KEYS} keys; ${elapsedS.toFixed(1)} s since the reset`);
    show('statements in this database since the reset', seen);
    assert.equal(deallocs(), deallocBefore,
      'pg_stat_statements evicted entries during the run (pg_stat_statements.max too small): counts are unreliable');

    // Time-bounded background work, accounted for explicitly.
    const pings = seen.filter((s) => isPing(s.query)).reduce((n, s) => n + s.calls, 0);
    const maxPings = Math.ceil(elapsedS) + PING_SLACK;
    const maxRefreshes = KEYS * Math.floor(sinceWarmS / KEY_TTL_S);
    const lookups = seen.filter((s) => isKeyLookup(s.query)).reduce((n, s) => n + s.calls, 0);
    const tx = seen.filter((s) => isTxControl(s.query));
    const batches = seen.filter((s) => isSpendBatch(s.query)).reduce((n, s) => n + s.calls, 0);
    const other = seen.filter((s) => !isPing(s.query) && !isKeyLookup(s.query) && !isTxControl(s.query) &&
                                     !isSpendWriter(s.query) && !isBudgetJob(s.query));
    const resetPasses = seen.filter((s) => isResetPass(s.query)).reduce((n, s) => n + s.calls, 0);
    const budgetReads = seen.filter((s) => isBudgetRead(s.query)).reduce((n, s) => n + s.calls, 0);
    assert.ok(resetPasses <= Math.ceil(elapsedS / 60) + 2, `${resetPasses} budget reset passes in ${elapsedS.toFixed(1)} s`);
    assert.ok(budgetReads <= Math.ceil(elapsedS / 30) + 2, `${budgetReads} budget reads in ${elapsedS.toFixed(1)} s`);
    // One spend batch per 100 ms flush interval, or per 1,000 rows when they come faster.
    assert.ok(batches <= elapsedS * 10 + REQUESTS / 1000 + 3, `${batches} spend batches in ${elapsedS.toFixed(1)} s`);
    console.log(`# background ping: ${pings} (allowed <= ${maxPings}); key refreshes: ${lookups} ` +
                `(allowed <= ${maxRefreshes}, the keys are ${sinceWarmS.toFixed(1)} s old); other: ${other.length}`);

    assert.deepEqual(other, [], 'statements other than the ping ran during the load');
    assert.ok(pings <= maxPings, `${pings} pings in ${elapsedS.toFixed(1)} s: more than one a second`);
    assert.ok(lookups <= maxRefreshes,
      `${lookups} key lookups during the load (allowed ${maxRefreshes}: background refreshes of ${KEYS} keys ` +
      `${sinceWarmS.toFixed(1)} s old): the key cache did not serve the hot path`);
    // BEGIN / SET TRANSACTION / ROLLBACK / COMMIT only wrap those refreshes (one each per lookup
    // at most) and the spend batches (two transactions each: the partition check and the write).
    // pg_stat_statements counts a statement when it ends, so a batch caught mid-way by the
    // snapshot has its BEGINs counted and its COPY not yet: one batch of slack (2).
    for (const s of tx) {
      assert.ok(s.calls <= lookups + 2 * batches + 2 * resetPasses + budgetReads + 2,
        `${s.calls} x ${s.query} for ${lookups} lookup(s), ${batches} batch(es)`);
    }
    assert.ok(pings + lookups * 4 < REQUESTS / 100, 'the query count must not grow with the request count');
  });

  test('control: unknown keys do reach Postgres, and pg_stat_statements counts them', async () => {
    reset();
    const N = 20;
    for (let i = 0; i < N; i += 1) {
      const r = await chat(`sk-unknown-hot-path-${i}`);
      assert.equal(r.status, 401, r.text);
    }
    // Negative-cached: asking again costs nothing.
    for (let i = 0; i < N; i += 1) assert.equal((await chat(`sk-unknown-hot-path-${i}`)).status, 401);
    const seen = statements();
    show('statements after 40 requests with 20 unknown keys', seen);
    const lookups = seen.filter((s) => isKeyLookup(s.query)).reduce((n, s) => n + s.calls, 0);
    assert.equal(lookups, N, 'one key lookup per distinct unknown key');
  });
});
