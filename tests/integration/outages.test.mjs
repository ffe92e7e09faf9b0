// A hung Postgres or Redis (every process paused with SIGSTOP: connections stay open, nothing
// answers) under a load of cached virtual keys. A private Postgres and Redis
// (scripts/services.sh) so the pause touches no other test; SIGCONT always runs (finally
// and after hooks), so the servers are never left paused.
//  1. Postgres paused for SWITCHYARD_TEST_PAUSE_S (default 60): cached keys keep working (0
//     failures); a key not cached gets its 503 within its bound; /key/info, /key/generate
//     and /team/list get theirs; readiness turns 503 with db "disconnected"; the gateway's
//     threads and RSS stay bounded. After SIGCONT: ready again, new keys and management
//     calls work, without a restart.
//  2. Redis paused as long: 0 failures, and the p99 latency barely moves (measured against
//     a run without the pause in the same test).
//  3. Postgres stopped (a private one of its own): management calls answer 503 with a fixed
//     message; libpq's text, which names the database's host, port and user, is only logged.
// Bounds are generous upper limits (seconds), scaled by SLOW for sanitizer builds; the real
// figures are printed.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { startFakeProvider } from '../fake_provider/server.mjs';
import { call, delay, SLOW, SOURCE_DIR, startGateway, stopAll, writeConfig } from '../lib/gateway.mjs';

const haveServer = Boolean(process.env.SWITCHYARD_TEST_DATABASE_URL);
const skip = !haveServer && 'SWITCHYARD_TEST_DATABASE_URL not set (scripts/test.sh sets it; this test starts its own servers)';
const PAUSE_MS = Number(process.env.SWITCHYARD_TEST_PAUSE_S ?? 60) * 1000;
const SERVICES = path.join(SOURCE_DIR, 'scripts', 'services.sh');

const svcDir = mkdtempSync(path.join(os.tmpdir(), 'switchyard-outages-'));
const dataDir = mkdtempSync(path.join(os.tmpdir(), 'switchyard-outages-data-'));
let dbUrl;
let redisUrl;
let fake;
let gw;
let paused = [];  // pids currently stopped by this test

function services(...args) {
  return execFileSync(SERVICES, [...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}
function envOf(name) {
  return execFileSync('bash', ['-c', `source ${svcDir}/env.sh && echo $${name}`], { encoding: 'utf8' }).trim();
}

// The postmaster and every child of it (backends, checkpointer, walwriter, ...).
function postgresPids() {
  const master = readFileSync(path.join(svcDir, 'pg', 'postmaster.pid'), 'utf8').split('\n')[0].trim();
  let children = [];
  try {
    children = execFileSync('pgrep', ['-P', master], { encoding: 'utf8' }).split('\n').filter(Boolean);
  } catch {
    /* no children */
  }
  return [master, ...children].map(Number);
}
function redisPids() {
  return [Number(readFileSync(path.join(svcDir, 'redis', 'redis.pid'), 'utf8').trim())];
}

function pause(pids) {
  paused = pids;
  for (const p of pids) process.kill(p, 'SIGSTOP');
}
function resume() {
  for (const p of paused) {
    try {
      process.kill(p, 'SIGCONT');
    } catch {
      /* gone */
    }
  }
  paused = [];
}

function procStatus(pid) {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  return { threads: Number(/^Threads:\s+(\d+)/m.exec(s)[1]), rssKb: Number(/^VmRSS:\s+(\d+)/m.exec(s)[1]) };
}

// Cached-key chat completions, `inFlight` at a time, until stop() is called. Records each
// request's latency and every failure (a status other than 200, or no answer).
function startLoad(keys, { inFlight = 6 } = {}) {
  const state = { running: true, failures: [], latencies: [], mark: 0 };
  let i = 0;
  async function worker() {
    while (state.running) {
      const key = keys[i++ % keys.length];
      const t0 = performance.now();
      try {
        const r = await fetch(`${gw.url}/v1/chat/completions`, {
          method: 'POST',
          headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
          body: JSON.stringify({ model: 'gpt4o', messages: [{ role: 'user', content: 'hi' }] }),
          signal: AbortSignal.timeout(10_000 * SLOW),
        });
        const text = await r.text();
        if (r.status !== 200) state.failures.push(`${r.status} ${text.slice(0, 200)}`);
      } catch (e) {
        state.failures.push(String(e));
      }
      state.latencies.push(performance.now() - t0);
    }
  }
  const workers = Array.from({ length: inFlight }, worker);
  state.stop = async () => {
    state.running = false;
    await Promise.all(workers);
  };
  return state;
}

function percentile(xs, p) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

// Polls `probe` (an async () => value|undefined) until it yields a value; returns
// {value, ms}, or throws after `timeoutMs`.
async function within(timeoutMs, what, probe, everyMs = 100) {
  const t0 = Date.now();
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined) return { value: v, ms: Date.now() - t0 };
    if (Date.now() - t0 > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await delay(everyMs);
  }
}

// One call, timed; the fetch itself gives up long after any bound asserted here.
async function timed(pathname, opts) {
  const t0 = Date.now();
  const r = await call(gw, pathname, { timeoutMs: 30_000 * SLOW, ...opts });
  return { ...r, ms: Date.now() - t0 };
}

async function readiness() {
  const r = await fetch(`${gw.url}/health/readiness`, { signal: AbortSignal.timeout(10_000 * SLOW) });
  return { status: r.status, body: await r.json().catch(() => ({})) };
}

async function newKey(alias) {
  const r = await call(gw, '/key/generate', { body: { key_alias: alias } });
  assert.equal(r.status, 200, r.text);
  return r.json.key;
}

async function chat(key) {
  const t0 = Date.now();
  const r = await fetch(`${gw.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'gpt4o', messages: [{ role: 'user', content: 'hi' }] }),
    signal: AbortSignal.timeout(30_000 * SLOW),
  });
  const text = await r.text();
  return { status: r.status, text, ms: Date.now() - t0 };
}

describe('outages: a hung Postgres or Redis', { skip, timeout: 900_000 }, () => {
  before(async () => {
    fake = await startFakeProvider();
    services('start', svcDir, '--ephemeral');
    dbUrl = envOf('DATABASE_URL');
    redisUrl = new URL(envOf('SWITCHYARD_TEST_REDIS_URL'));
    const configFile = writeConfig({
      model_list: [{ model_name: 'gpt4o', litellm_params: { model: 'openai/gpt-4o', api_base: `${fake.url}/v1`, api_key: 'sk-up' } }],
      // Usage-based routing: every request also counts its usage in Redis.
      router_settings: { routing_strategy: 'usage-based-routing-v2', redis_host: redisUrl.hostname, redis_port: Number(redisUrl.port) },
      general_settings: { database_connection_pool_limit: 4 },
    });
    // A small ASan quarantine (freed memory ASan holds back, 256 MB by default): with the
    // default, how far it has filled depends on how fast this machine served the load, and the
    // RSS plateau checked below would measure the machine instead of the gateway.
    const asan = [process.env.ASAN_OPTIONS, 'quarantine_size_mb=16'].filter(Boolean).join(':');
    gw = await startGateway({ configFile, env: { DATABASE_URL: dbUrl, SWITCHYARD_DATA_DIR: dataDir, ASAN_OPTIONS: asan } });
    await gw.proc.waitForStderr(/redis connected/, 15_000 * SLOW);
  });
  after(async () => {
    resume();
    await stopAll();
    await fake?.close();
    try {
      services('stop', svcDir);
    } catch {
      /* already stopped */
    }
    rmSync(svcDir, { recursive: true, force: true });
    rmSync(dataDir, { recursive: true, force: true });
  });

  test('Postgres paused: cached keys work, everything else answers 503 on time, then recovers', async () => {
    const cached = [];
    for (let i = 0; i < 4; i++) cached.push(await newKey(`cached-${i}`));
    for (const k of cached) assert.equal((await chat(k)).status, 200);  // now in the key cache
    const uncached = [];
    for (let i = 0; i < 3; i++) uncached.push(await newKey(`uncached-${i}`));  // never used before the pause
    const pid = gw.proc.pid;

    const load = startLoad(cached);
    await within(10_000 * SLOW, 'load running', async () => (load.latencies.length >= 50 ? true : undefined), 50);
    const before = procStatus(pid);
    const samples = [before];
    const figures = {};
    try {
      const pausedAt = Date.now();
      pause(postgresPids());

      // Readiness notices within 5 s (scaled for sanitizer builds).
      const ready503 = await within(5_000 * SLOW, 'readiness 503', async () => {
        const r = await readiness();
        return r.status === 503 && r.body.db === 'disconnected' ? r : undefined;
      });
      figures.readiness_503_ms = Date.now() - pausedAt;

      // A key that is not cached: 503 within its bound (2 s lookup deadline; <= 3 s asked).
      const fresh = await chat(uncached[0]);
      assert.equal(fresh.status, 503, fresh.text);
      assert.ok(fresh.ms <= 3_000 * SLOW, `new key answered after ${fresh.ms} ms`);
      figures.new_key_503_ms = [fresh.ms];

      // Management calls: 503 within their 5 s deadline.
      const info = await timed(`/key/info?key=${encodeURIComponent(uncached[1])}`, { method: 'GET' });
      const gen = await timed('/key/generate', { body: { key_alias: 'during-pause' } });
      const teams = await timed('/team/list', { method: 'GET' });
      for (const [name, r] of [['/key/info', info], ['/key/generate', gen], ['/team/list', teams]]) {
        assert.equal(r.status, 503, `${name}: ${r.status} ${r.text}`);
        assert.ok(r.ms <= 7_000 * SLOW, `${name} answered after ${r.ms} ms`);
      }
      figures.management_503_ms = { key_info: info.ms, key_generate: gen.ms, team_list: teams.ms };

      // For the rest of the pause: new keys keep failing on time, readiness stays 503,
      // threads and memory stay flat.
      while (Date.now() - pausedAt < PAUSE_MS) {
        const r = await chat(uncached[2]);
        assert.equal(r.status, 503, r.text);
        assert.ok(r.ms <= 3_000 * SLOW, `new key answered after ${r.ms} ms`);
        figures.new_key_503_ms.push(r.ms);
        const rd = await readiness();
        assert.equal(rd.status, 503);
        samples.push(procStatus(pid));
        await delay(Math.min(2000, Math.max(0, PAUSE_MS - (Date.now() - pausedAt))));
      }
      void ready503;
    } finally {
      resume();
    }
    const resumedAt = Date.now();
    const ready = await within(5_000 * SLOW, 'readiness 200 after SIGCONT', async () => {
      const r = await readiness();
      return r.status === 200 && r.body.db === 'connected' ? r : undefined;
    });
    figures.readiness_200_ms = ready.ms;
    const auth = await within(10_000 * SLOW, 'a new key authenticates after SIGCONT', async () => {
      const r = await chat(uncached[0]);
      return r.status === 200 ? r : undefined;
    });
    figures.new_key_200_after_resume_ms = Date.now() - resumedAt;
    void auth;
    const gen = await call(gw, '/key/generate', { body: { key_alias: 'after-pause' } });
    assert.equal(gen.status, 200, gen.text);
    const teams = await call(gw, '/team/list', { method: 'GET' });
    assert.equal(teams.status, 200, teams.text);
    samples.push(procStatus(pid));
    await load.stop();

    const maxThreads = Math.max(...samples.map((s) => s.threads));
    const maxRss = Math.max(...samples.map((s) => s.rssKb));
    figures.requests = load.latencies.length;
    figures.failures = load.failures.length;
    figures.threads = { before: before.threads, max: maxThreads };
    figures.rss_mb = { before: Math.round(before.rssKb / 1024), max: Math.round(maxRss / 1024) };
    figures.rss_mb_samples = samples.map((x) => Math.round(x.rssKb / 1024));
    figures.new_key_503_ms_max = Math.max(...figures.new_key_503_ms);
    delete figures.new_key_503_ms;
    // RSS over the second half of the pause (samples taken while paused: all but the
    // first, before it, and the last, after SIGCONT).
    const during = samples.slice(1, -1);
    const settled = during[Math.floor(during.length / 2)]?.rssKb ?? 0;
    const laterMax = Math.max(...during.slice(Math.floor(during.length / 2)).map((x) => x.rssKb));
    figures.rss_growth_second_half_mb = Math.round((laterMax - settled) / 1024);
    console.log(`postgres pause (${PAUSE_MS / 1000} s): ${JSON.stringify(figures)}`);
    assert.deepEqual(load.failures.slice(0, 5), [], `${load.failures.length} requests with cached keys failed`);
    assert.ok(during.length >= 1, 'no RSS sample during the pause');
    assert.ok(maxThreads <= before.threads + 2, `threads grew: ${before.threads} -> ${maxThreads}`);
    // The first seconds of any load grow the RSS of a sanitizer build (ASan's quarantine,
    // 16 MB here, and its allocator caches), pause or not: what must hold is a plateau later in
    // the pause. Allowed on top: the spend queue (rows wait in memory, 64 MB at most, then spill).
    assert.ok(laterMax - settled <= 96 * 1024, `RSS kept growing during the pause: ${settled} kB -> ${laterMax} kB`);
    assert.doesNotMatch(gw.stderr(), /AddressSanitizer|runtime error/);
  });

  test('Redis paused: no failures, p99 latency barely moves', async () => {
    const keys = [];
    for (let i = 0; i < 4; i++) keys.push(await newKey(`redis-${i}`));
    for (const k of keys) assert.equal((await chat(k)).status, 200);
    const phase = Math.min(PAUSE_MS, 20_000);

    // Baseline: the same load, Redis answering.
    const base = startLoad(keys);
    await delay(phase);  // a measurement window, not a wait for an event
    await base.stop();

    const load = startLoad(keys);
    const figures = {};
    try {
      pause(redisPids());
      const t0 = Date.now();
      // A management change publishes a key invalidation through Redis: it must not hang.
      const upd = await timed('/key/update', { body: { key: keys[0], metadata: { during: 'redis pause' } } });
      assert.equal(upd.status, 200, upd.text);
      assert.ok(upd.ms <= 5_000 * SLOW, `/key/update took ${upd.ms} ms`);
      figures.key_update_ms = upd.ms;
      await delay(Math.max(0, PAUSE_MS - (Date.now() - t0)));  // the pause itself
    } finally {
      resume();
    }
    await load.stop();
    const p99Base = percentile(base.latencies, 99);
    const p99Pause = percentile(load.latencies, 99);
    Object.assign(figures, {
      requests: { base: base.latencies.length, paused: load.latencies.length },
      failures: base.failures.length + load.failures.length,
      p50_ms: { base: +percentile(base.latencies, 50).toFixed(1), paused: +percentile(load.latencies, 50).toFixed(1) },
      p99_ms: { base: +p99Base.toFixed(1), paused: +p99Pause.toFixed(1) },
      p99_added_ms: +(p99Pause - p99Base).toFixed(1),
    });
    console.log(`redis pause (${PAUSE_MS / 1000} s): ${JSON.stringify(figures)}`);
    assert.deepEqual([...base.failures, ...load.failures].slice(0, 5), []);
    assert.ok(p99Pause - p99Base < 250, `p99 grew by ${(p99Pause - p99Base).toFixed(1)} ms`);
    // Redis answers again: the gateway still works with it.
    const r = await chat(keys[1]);
    assert.equal(r.status, 200, r.text);
  });
});

describe('outages: a stopped Postgres', { skip }, () => {
  const stoppedDir = mkdtempSync(path.join(os.tmpdir(), 'switchyard-outages-stopped-'));
  let running = false;
  let gwStopped;
  before(async () => {
    services('start', stoppedDir, '--no-redis', '--ephemeral');
    running = true;
    const url = execFileSync('bash', ['-c', `source ${stoppedDir}/env.sh && echo $DATABASE_URL`], { encoding: 'utf8' }).trim();
    gwStopped = await startGateway({ config: { model_list: [] }, env: { DATABASE_URL: url } });
    await gwStopped.proc.waitForStderr(/schema up to date/, 15_000 * SLOW);
  });
  after(async () => {
    await stopAll();
    if (running) services('stop', stoppedDir);
    rmSync(stoppedDir, { recursive: true, force: true });
  });

  test('management 503s do not quote libpq (host, port, user); the log does', async () => {
    const made = await call(gwStopped, '/key/generate', { body: {} });
    assert.equal(made.status, 200, made.text);
    // An admin UI session (UI_USERNAME / UI_PASSWORD default: admin / the master key): the
    // session is looked up in Postgres on each call.
    const login = await fetch(`${gwStopped.url}/login`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'admin', password: gwStopped.masterKey }),
    });
    assert.equal(login.status, 200, await login.text());
    const session = /switchyard_session=([^;]+)/.exec(login.headers.getSetCookie().join('\n'))[1];
    const url = new URL(execFileSync('bash', ['-c', `source ${stoppedDir}/env.sh && echo $DATABASE_URL`], { encoding: 'utf8' }).trim());
    services('stop', stoppedDir);
    running = false;
    for (const [name, path_, opts] of [
      ['/key/info', `/key/info?key=${encodeURIComponent(made.json.key)}`, { method: 'GET' }],
      ['/key/generate', '/key/generate', { body: {} }],
      ['/team/list', '/team/list', { method: 'GET' }],
      ['/user/new', '/user/new', { body: { user_id: 'nobody' } }],
    ]) {
      const r = await call(gwStopped, path_, { timeoutMs: 30_000 * SLOW, ...opts });
      assert.equal(r.status, 503, `${name}: ${r.status} ${r.text}`);
      checkAnswer(name, r);
    }
    // Through the session: its lookup is the call that meets the outage.
    for (const path_ of ['/key/list', '/sso/session']) {
      const res = await fetch(`${gwStopped.url}${path_}`, { headers: { cookie: `switchyard_session=${session}` } });
      const text = await res.text();
      assert.equal(res.status, 503, `${path_} with a session: ${res.status} ${text}`);
      checkAnswer(`${path_} with a session`, { text, json: JSON.parse(text) });
    }
    function checkAnswer(name, r) {
      assert.equal(r.json?.error?.type, 'service_unavailable', r.text);
      assert.equal(r.json.error.code, '503', r.text);
      assert.equal(r.json.error.message,
        'Service Unavailable: the database did not answer. Try again later; the gateway\'s log has the details.');
      assert.ok(!r.text.includes(url.hostname) && !r.text.includes(url.port) && !r.text.includes(url.username),
        `${name} names the database: ${r.text}`);
      assert.doesNotMatch(r.text, /connection|refused|server|socket|libpq|port/i, r.text);
    }
    // libpq's own words (the host and port it tried) are in the log, for the operator.
    await gwStopped.proc.waitForStderr(new RegExp(`management /\\S+: database .*${url.port}`), 10_000 * SLOW);
  });
});
