// The cost logger loses nothing and counts nothing twice when Postgres or a gateway dies:
// two gateways share a private Postgres (scripts/services.sh, stopped and started by the
// test); 5,000 requests (JSON and streamed, virtual keys) go through them while
//  1. Postgres is stopped in the middle of the load and started again after an outage
//     (SWITCHYARD_TEST_OUTAGE_S, default 30 s): every answered request has exactly one row,
//     and each key's running spend equals the sum of its rows (one gateway's queue is small,
//     so its rows also go through the spill files);
//  2. one gateway gets SIGTERM in the middle of a load while Postgres is down: it spills
//     what it could not write, a new gateway on the same data directory replays it once;
//  3. one gateway is killed (SIGKILL) in the middle of a load with Postgres up: no row is
//     written twice, and every request answered more than 5 s before the kill has its row
//     (what a kill -9 can lose is the last flush interval or so: docs/spend.md).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { startFakeProvider } from '../fake_provider/server.mjs';
import { call, delay, SLOW, SOURCE_DIR, startGateway, stopAll, writeConfig } from '../lib/gateway.mjs';

const haveServer = Boolean(process.env.SWITCHYARD_TEST_DATABASE_URL);
const skip = !haveServer && 'SWITCHYARD_TEST_DATABASE_URL not set (scripts/test.sh sets it; this test starts its own Postgres)';
const OUTAGE_MS = Number(process.env.SWITCHYARD_TEST_OUTAGE_S ?? 30) * 1000;
const SERVICES = path.join(SOURCE_DIR, 'scripts', 'services.sh');

const svcDir = mkdtempSync(path.join(os.tmpdir(), 'switchyard-spend-outage-'));
let dbUrl;
let fake;
let configFile;
const dataDirs = [];

function services(...args) {
  return execFileSync(SERVICES, [...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}
function startPostgres() {
  services('start', svcDir, '--no-redis', '--ephemeral');
  const env = execFileSync('bash', ['-c', `source ${svcDir}/env.sh && echo $DATABASE_URL`], { encoding: 'utf8' }).trim();
  return env;
}
const stopPostgres = () => services('stop', svcDir);
function psql(sql) {
  return execFileSync('psql', ['-X', '-A', '-t', '-F', '|', '-v', 'ON_ERROR_STOP=1', dbUrl, '-c', sql],
    { encoding: 'utf8' }).trim();
}

async function gateway(name, extraEnv = {}) {
  const dir = mkdtempSync(path.join(os.tmpdir(), `switchyard-data-${name}-`));
  dataDirs.push(dir);
  return startGateway({
    configFile,
    env: { DATABASE_URL: dbUrl, SWITCHYARD_DATA_DIR: dir, ...extraEnv },
    args: ['--grace-period', '5'],
  });
}

async function newKey(gw, alias) {
  const r = await call(gw, '/key/generate', { body: { key_alias: alias } });
  assert.equal(r.status, 200, r.text);
  return r.json;
}

// n requests over the gateways (round robin), `inFlight` at a time, half of them streamed.
// Resolves the call ids of the requests that were answered (status 200, whole body read),
// each with the time its answer completed. `onProgress(done)` runs after each answer.
async function load(gws, keys, n, { inFlight = 16, onProgress = () => {}, prefix }) {
  const answered = [];
  let next = 0;
  let done = 0;
  async function worker() {
    for (;;) {
      const i = next++;
      if (i >= n) return;
      const gw = gws[i % gws.length]();
      const key = keys[i % keys.length];
      const id = `${prefix}-${i}`;
      const stream = i % 2 === 1;
      try {
        const r = await fetch(`${gw.url}/v1/chat/completions`, {
          method: 'POST',
          headers: { authorization: `Bearer ${key.key}`, 'content-type': 'application/json', 'x-litellm-call-id': id },
          body: JSON.stringify({ model: 'gpt4o', stream, messages: [{ role: 'user', content: `request ${i}` }] }),
          signal: AbortSignal.timeout(30_000 * SLOW),
        });
        const body = await r.text();
        if (r.status === 200 && (!stream || body.includes('[DONE]'))) answered.push({ id, at: Date.now(), key: key.token });
      } catch {
        /* a gateway that was stopped: not an answered request */
      }
      onProgress(++done);
    }
  }
  await Promise.all(Array.from({ length: inFlight }, worker));
  return answered;
}

async function waitForRows(ids, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  let have = 0;
  for (;;) {
    have = Number(psql(`SELECT count(*) FROM spend_logs WHERE request_id = ANY(ARRAY[${ids.map((x) => `'${x}'`).join(',')}])`));
    if (have >= ids.length) return have;
    if (Date.now() > deadline) return have;
    await delay(200);
  }
}

function assertExactlyOnce(prefix, answered) {
  const dup = psql(`SELECT count(*) FROM (SELECT request_id FROM spend_logs WHERE request_id LIKE '${prefix}-%' ` +
                   'GROUP BY request_id HAVING count(*) > 1) d');
  assert.equal(Number(dup), 0, 'a request has more than one row');
  const rows = Number(psql(`SELECT count(*) FROM spend_logs WHERE request_id LIKE '${prefix}-%'`));
  assert.equal(rows, answered.length, `rows ${rows} vs answered ${answered.length}`);
}

function assertTotalsMatchRows() {
  const bad = psql('SELECT t.token, t.spend, coalesce(s.sum, 0) FROM verification_tokens t LEFT JOIN ' +
                   '(SELECT api_key, sum(spend) AS sum FROM spend_logs GROUP BY api_key) s ON s.api_key = t.token ' +
                   'WHERE abs(t.spend - coalesce(s.sum, 0)) > 1e-9');
  assert.equal(bad, '', `keys whose running spend differs from the sum of their rows:\n${bad}`);
  // Both daily rollups count every row once, replayed ones included.
  const rolled = psql("SELECT (SELECT count(*) FROM spend_logs), " +
                      "(SELECT sum(api_requests) FROM daily_spend WHERE entity_type = 'all'), " +
                      "(SELECT sum(api_requests) FROM daily_spend_totals WHERE entity_type = 'all')");
  const [rows, daily, totals] = rolled.split('|').map(Number);
  assert.ok(rows === daily && rows === totals, `rows / daily_spend / daily_spend_totals requests: ${rolled}`);
}

describe('spend under outages', { skip, timeout: 600_000 }, () => {
  before(async () => {
    fake = await startFakeProvider();
    fake.setDefaults({ usage: { prompt_tokens: 12, completion_tokens: 4 } });
    dbUrl = startPostgres();
    configFile = writeConfig({
      model_list: [{ model_name: 'gpt4o', litellm_params: { model: 'openai/gpt-4o', api_base: `${fake.url}/v1`, api_key: 'sk-up' } }],
    });
  });
  after(async () => {
    await stopAll();
    await fake?.close();
    try {
      stopPostgres();
    } catch {
      /* already stopped */
    }
    rmSync(svcDir, { recursive: true, force: true });
    for (const d of dataDirs) rmSync(d, { recursive: true, force: true });
  });

  test('Postgres stopped mid-load and back after the outage: every request has exactly one row', async (t) => {
    t.after(() => startPostgres());
    const a = await gateway('a');
    const b = await gateway('b', { SWITCHYARD_SPEND_QUEUE_ROWS: '300' });  // its overflow spills
    const keys = [await newKey(a, 'k1'), await newKey(a, 'k2')];
    let stopped = false;
    let stopAt;
    const answered = await load([() => a, () => b], keys, 5000, {
      prefix: 'outage',
      onProgress: (n) => {
        if (!stopped && n >= 1500) {
          stopped = true;
          stopAt = Date.now();
          stopPostgres();
        }
      },
    });
    assert.ok(stopped);
    assert.ok(answered.length >= 4990, `only ${answered.length} of 5000 answered`);
    const wait = OUTAGE_MS - (Date.now() - stopAt);
    if (wait > 0) await delay(wait);
    const spendMetrics = async (g) => (await (await fetch(`${g.url}/metrics`)).text())
      .split('\n').filter((l) => l.startsWith('switchyard_spend_')).join(' ');
    const bDuring = await spendMetrics(b);
    startPostgres();
    const have = await waitForRows(answered.map((x) => x.id), 120_000 * SLOW);
    assert.equal(have, answered.length, 'rows missing after the database came back');
    assertExactlyOnce('outage', answered);
    assertTotalsMatchRows();
    // b's queue bound (300 rows) was passed during the outage: its rows went through the
    // spill files (its metrics say so at once; the log line comes through the gateway's
    // asynchronous logger, so it is waited for).
    const spilled = Number(/switchyard_spend_rows_spilled_total (\d+)/.exec(bDuring)?.[1] ?? 0);
    assert.ok(spilled > 0, `gateway b never went through its spill files: ${bDuring}`);
    await b.proc.waitForStderr(/replaying \d+ row\(s\)/, 30_000 * SLOW);
    // Each row b wrote counts once in its written counter, the replayed ones included;
    // except a batch whose commit went through as Postgres stopped, its answer lost: the
    // retry finds those rows there and counts them as already written instead.
    const bRows = Number(psql("SELECT count(*) FROM spend_logs WHERE request_id LIKE 'outage-%' " +
                              "AND split_part(request_id, '-', 2)::int % 2 = 1"));
    const counter = (m, name) => Number(new RegExp(`switchyard_spend_rows_${name}_total (\\d+)`).exec(m)?.[1] ?? -1);
    const accounted = (m) => counter(m, 'written') === bRows ||
      (counter(m, 'written') < bRows && counter(m, 'written') + counter(m, 'already_written') >= bRows);
    let bAfter = await spendMetrics(b);
    for (const deadline = Date.now() + 10_000 * SLOW; !accounted(bAfter) && Date.now() < deadline;) {
      await delay(100);  // the last replayed batch is counted after its commit
      bAfter = await spendMetrics(b);
    }
    assert.ok(accounted(bAfter), `${bRows} rows of b in the table; its counters: ${bAfter}`);
    await a.stop();
    await b.stop();
  });

  test('SIGTERM while Postgres is down: the rows are spilled and replayed once by the next start', async (t) => {
    t.after(() => startPostgres());  // whatever happened, the next test has its database
    startPostgres();
    const dir = mkdtempSync(path.join(os.tmpdir(), 'switchyard-data-term-'));
    dataDirs.push(dir);
    const env = { DATABASE_URL: dbUrl, SWITCHYARD_DATA_DIR: dir };
    let a = await startGateway({ configFile, env, args: ['--grace-period', '3'] });
    const keys = [await newKey(a, 'k3')];
    let current = a;
    let termed = false;
    let stoppedAt = 0;
    const answered = await load([() => current], keys, 600, {
      prefix: 'term',
      inFlight: 8,
      onProgress: (n) => {
        if (!stoppedAt && n >= 300) {
          stoppedAt = n;
          stopPostgres();
        } else if (stoppedAt && !termed && n >= stoppedAt + 20) {
          // Requests answered while Postgres is down: their rows cannot have been written
          // (the requests in flight during the stop could still reach it before it went).
          termed = true;
          a.proc.signal('SIGTERM');
        }
      },
    });
    const r = await a.proc.wait(30_000 * SLOW);
    assert.equal(r.code, 0, a.stderr());
    assert.match(a.stderr(), /not written before the stop; spilled/);
    startPostgres();
    current = await startGateway({ configFile, env });
    const have = await waitForRows(answered.map((x) => x.id), 60_000 * SLOW);
    assert.equal(have, answered.length, 'rows missing after the restart');
    assertExactlyOnce('term', answered);
    assertTotalsMatchRows();
    await current.stop();
  });

  test('kill -9 with Postgres up: nothing twice, only the last moments lost', async () => {
    startPostgres();
    const a = await gateway('c');
    const b = await gateway('d');
    const keys = [await newKey(a, 'k4')];
    let killed = false;
    let killAt = 0;
    const answered = await load([() => a, () => b], keys, 2000, {
      prefix: 'kill',
      onProgress: (n) => {
        if (!killed && n >= 1000) {
          killed = true;
          killAt = Date.now();
          b.proc.signal('SIGKILL');
        }
      },
    });
    await a.stop();
    const rows = new Set(psql("SELECT request_id FROM spend_logs WHERE request_id LIKE 'kill-%'").split('\n'));
    const dup = psql("SELECT count(*) FROM (SELECT request_id FROM spend_logs WHERE request_id LIKE 'kill-%' " +
                     'GROUP BY request_id HAVING count(*) > 1) d');
    assert.equal(Number(dup), 0, 'a row was written twice');
    const lostEarly = answered.filter((x) => x.at < killAt - 5000 && !rows.has(x.id));
    assert.deepEqual(lostEarly.map((x) => x.id), [], 'requests answered well before the kill lost their rows');
    const lost = answered.filter((x) => !rows.has(x.id)).length;
    console.log(`# kill -9: ${answered.length} answered, ${lost} rows lost (answered within the last moments before the kill)`);
    assertTotalsMatchRows();
  });
});
