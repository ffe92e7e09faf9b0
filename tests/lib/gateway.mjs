// Shared helpers for the Node integration and end-to-end tests: write a config, start the real
// switchyard binary on a free loopback port, wait until it is live, stop it, and small HTTP
// helpers (fetch with a deadline, curl, raw sockets, SSE parsing).
//
// Every process started here is remembered; call `stopAll()` in an after() hook (each test
// file does). Anything still running when the test process exits is SIGKILLed.
//
// Env: SWITCHYARD_BIN (the binary; else build*/src/switchyard of the checkout is searched),
//      SWITCHYARD_SOURCE_DIR (the checkout; default: two levels above this file),
//      SWITCHYARD_TEST_DATABASE_URL / SWITCHYARD_TEST_REDIS_URL (loopback services from
//      scripts/test.sh; tests that need them skip when unset).

import { spawn, execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';
import {
  gatewayPorts, installFetchCapture, recordConfigSecrets, recordEnvSecrets, recordGatewayOutput, recordResponse,
  recordSecret,
} from './capture.mjs';

// Secrets scan (tests/secrets_scan.mjs): keep what the gateways answer, when asked to.
installFetchCapture();

export const SOURCE_DIR = process.env.SWITCHYARD_SOURCE_DIR
  ?? path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const MASTER_KEY = 'sk-test-master-key-8f3a';
export const FAKE_PROVIDER = path.join(SOURCE_DIR, 'tests', 'fake_provider', 'server.mjs');

// Scale for deadlines that depend on the gateway's speed (a sanitizer build is slower).
export const SLOW = Number(process.env.SWITCHYARD_TEST_SLOWDOWN ?? 1);

// Variables of the caller's environment that would point the gateway at other services.
const SCRUBBED_ENV = [
  'DATABASE_URL', 'REDIS_HOST', 'REDIS_PORT', 'REDIS_PASSWORD', 'REDIS_URL',
  'LITELLM_MASTER_KEY', 'SWITCHYARD_MASTER_KEY', 'SWITCHYARD_CONFIG', 'PORT',
];

const live = new Set();      // running child processes
const tempDirs = new Set();  // folders to delete in stopAll()

process.on('exit', () => {
  for (const child of live) {
    try {
      child.kill('SIGKILL');
    } catch {
      /* already gone */
    }
  }
  for (const d of tempDirs) {
    try {
      rmSync(d, { recursive: true, force: true });
    } catch {
      /* best effort */
    }
  }
});

// ------------------------------------------------------------------ binary and files

let cachedBin;
export function gatewayBinary() {
  if (cachedBin) return cachedBin;
  const fromEnv = process.env.SWITCHYARD_BIN;
  if (fromEnv) {
    if (!existsSync(fromEnv)) throw new Error(`SWITCHYARD_BIN=${fromEnv} does not exist (build the gateway first)`);
    cachedBin = fromEnv;
    return cachedBin;
  }
  // Newest build*/src/switchyard or build/*/src/switchyard of the checkout.
  const candidates = [];
  for (const d of readdirSync(SOURCE_DIR)) {
    if (!d.startsWith('build')) continue;
    const direct = path.join(SOURCE_DIR, d, 'src', 'switchyard');
    if (existsSync(direct)) candidates.push(direct);
    try {
      for (const sub of readdirSync(path.join(SOURCE_DIR, d))) {
        const p = path.join(SOURCE_DIR, d, sub, 'src', 'switchyard');
        if (existsSync(p)) candidates.push(p);
      }
    } catch {
      /* not a folder */
    }
  }
  if (candidates.length === 0) {
    throw new Error('no gateway binary: set SWITCHYARD_BIN or build one (cmake --build build/...)');
  }
  candidates.sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
  cachedBin = candidates[0];
  return cachedBin;
}

export function makeTempDir(prefix = 'switchyard-test-') {
  const d = mkdtempSync(path.join(os.tmpdir(), prefix));
  tempDirs.add(d);
  return d;
}

// A small YAML emitter for plain data (objects, arrays, strings, numbers, booleans, null).
// Strings are double-quoted (JSON escapes are valid YAML), keys plain when safe.
export function toYaml(value, indent = 0) {
  const pad = ' '.repeat(indent);
  const scalar = (v) => {
    if (v === null || v === undefined) return 'null';
    if (typeof v === 'string') return JSON.stringify(v);
    if (typeof v === 'number' || typeof v === 'boolean') return String(v);
    throw new Error(`toYaml: unsupported ${typeof v}`);
  };
  const key = (k) => (/^[A-Za-z_][A-Za-z0-9_.\-/]*$/.test(k) ? k : JSON.stringify(k));
  const isEmpty = (v) => (Array.isArray(v) ? v.length === 0 : v && typeof v === 'object' && Object.keys(v).length === 0);
  if (Array.isArray(value)) {
    if (value.length === 0) return `${pad}[]\n`;
    return value.map((item) => {
      if (item && typeof item === 'object' && !isEmpty(item)) {
        const inner = toYaml(item, indent + 2);
        return `${pad}- ${inner.slice(indent + 2)}`;
      }
      return `${pad}- ${isEmpty(item) ? (Array.isArray(item) ? '[]' : '{}') : scalar(item)}\n`;
    }).join('');
  }
  if (value && typeof value === 'object') {
    const entries = Object.entries(value).filter(([, v]) => v !== undefined);
    if (entries.length === 0) return `${pad}{}\n`;
    return entries.map(([k, v]) => {
      if (v && typeof v === 'object' && !isEmpty(v)) return `${pad}${key(k)}:\n${toYaml(v, indent + 2)}`;
      if (isEmpty(v)) return `${pad}${key(k)}: ${Array.isArray(v) ? '[]' : '{}'}\n`;
      return `${pad}${key(k)}: ${scalar(v)}\n`;
    }).join('');
  }
  return `${pad}${scalar(value)}\n`;
}

// Writes `config` (an object, emitted as YAML, or a YAML string written verbatim) to a new
// temp folder; returns the file's path.
export function writeConfig(config, name = 'config.yaml') {
  const dir = makeTempDir();
  const file = path.join(dir, name);
  writeFileSync(file, typeof config === 'string' ? config : toYaml(config));
  return file;
}

// A model_list entry for an OpenAI-compatible upstream (the fake provider by default).
export function openaiModel(modelName, apiBase, extra = {}) {
  return {
    model_name: modelName,
    litellm_params: { model: `openai/${extra.upstreamModel ?? 'gpt-x'}`, api_base: apiBase, api_key: 'sk-upstream-123',
                      ...(extra.params ?? {}) },
  };
}

export function mockModel(modelName, text = 'Hello from the mock!') {
  return { model_name: modelName, litellm_params: { model: `openai/${modelName}`, mock_response: text } };
}

// ------------------------------------------------------------------ databases

// `url` (a Postgres URL) with its database replaced by `db`.
export function withDatabase(url, db) {
  const u = new URL(url);
  u.pathname = `/${db}`;
  return u.toString();
}

// Runs one SQL statement with psql; returns its unaligned, tuples-only output.
export function psql(url, sql) {
  return execFileSync('psql', ['-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1', url, '-c', sql], { encoding: 'utf8' }).trim();
}

// ------------------------------------------------------------------ ports

// A loopback port that was free a moment ago (listen on 0, close). For "nothing listens"
// checks and dead upstreams.
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// A receiver that is down, on a port of its own: every connection is closed as soon as it
// is accepted, before any byte of an answer. A port from freePort() left closed instead
// can be taken meanwhile by another test file's server running in parallel, whose answer
// (an HTTP 404, say) is then what the gateway gets. Resolves to { port, close }.
export function startDeadReceiver() {
  return new Promise((resolve, reject) => {
    const sockets = new Set();
    const s = net.createServer((sock) => {
      sockets.add(sock);
      sock.once('close', () => sockets.delete(sock));
      sock.destroy();
    });
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => resolve({
      port: s.address().port,
      close: () => new Promise((done) => {
        for (const sock of sockets) sock.destroy();
        s.close(() => done());
      }),
    }));
  });
}

// Resolves true when something accepts a TCP connection on host:port within timeoutMs.
export function canConnect(port, host = '127.0.0.1', timeoutMs = 1000) {
  return new Promise((resolve) => {
    const sock = net.connect({ port, host });
    const t = setTimeout(() => {
      sock.destroy();
      resolve(false);
    }, timeoutMs);
    sock.once('connect', () => {
      clearTimeout(t);
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => {
      clearTimeout(t);
      resolve(false);
    });
  });
}

// Resolves true when a Redis on loopback:port answers PING with PONG within timeoutMs (one
// still loading its snapshot answers LOADING).
export function redisAnswers(port, timeoutMs = 1000) {
  return new Promise((resolve) => {
    const sock = net.connect({ port, host: '127.0.0.1' });
    let got = '';
    const done = (v) => {
      clearTimeout(t);
      sock.destroy();
      resolve(v);
    };
    const t = setTimeout(() => done(false), timeoutMs);
    sock.once('connect', () => sock.write('PING\r\n'));
    sock.on('data', (d) => {
      got += d;
      if (got.includes('\r\n')) done(got.startsWith('+PONG'));
    });
    sock.once('error', () => done(false));
  });
}

export const hasRedisServer = Boolean(process.env.PATH?.split(':').some((d) => d && existsSync(path.join(d, 'redis-server'))));

// ------------------------------------------------------------------ processes

function gatewayEnv(env, masterKey) {
  const out = { ...process.env };
  for (const k of SCRUBBED_ENV) delete out[k];
  // Provider keys (OPENAI_API_KEY, ...): a deployment without api_key would take them.
  for (const k of Object.keys(out)) if (/_API_KEY$/.test(k)) delete out[k];
  if (masterKey) out.LITELLM_MASTER_KEY = masterKey;
  for (const [k, v] of Object.entries(env ?? {})) {
    if (v === undefined || v === null) delete out[k];
    else out[k] = String(v);
  }
  return out;
}

// Spawns the binary with `args`; returns a handle whose `exited` promise resolves with
// {code, signal} and whose stdout()/stderr() give what it printed so far.
export function spawnGateway(args, { env, masterKey = MASTER_KEY, bin } = {}) {
  const exe = bin ?? gatewayBinary();
  const childEnv = gatewayEnv(env, masterKey);
  recordSecret(masterKey, 'master key');
  recordEnvSecrets(env, 'gateway');
  const cfgAt = args.indexOf('--config');
  if (cfgAt >= 0) recordConfigSecrets(args[cfgAt + 1]);
  const child = spawn(exe, args, {
    env: childEnv,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  let out = '';
  let err = '';
  const watchers = new Set();
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stdout.on('data', (d) => {
    out += d;
  });
  child.stderr.on('data', (d) => {
    err += d;
    for (const w of watchers) w();
  });
  let exitInfo = null;
  const exited = new Promise((resolve) => {
    child.once('error', (e) => {
      exitInfo = { code: null, signal: null, error: e };
      live.delete(child);
      for (const w of watchers) w();
      resolve(exitInfo);
    });
    // 'close': the process exited and its stdio streams are drained.
    child.once('close', (code, signal) => {
      recordGatewayOutput(child.pid, out, err);
      exitInfo = { code, signal };
      live.delete(child);
      for (const w of watchers) w();
      resolve(exitInfo);
    });
  });
  const handle = {
    child,
    pid: child.pid,
    exited,
    get exitInfo() {
      return exitInfo;
    },
    stdout: () => out,
    stderr: () => err,
    // Resolves with the match once `re` matches stderr; rejects after timeoutMs or on exit.
    waitForStderr(re, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        let t;
        const check = () => {
          const m = err.match(re);
          if (m) {
            done();
            resolve(m);
          } else if (exitInfo) {
            done();
            reject(new Error(`gateway exited (${JSON.stringify(exitInfo)}) before stderr matched ${re}:\n${err}`));
          }
        };
        const done = () => {
          clearTimeout(t);
          watchers.delete(check);
        };
        t = setTimeout(() => {
          done();
          reject(new Error(`stderr did not match ${re} within ${timeoutMs} ms:\n${err}`));
        }, timeoutMs);
        watchers.add(check);
        check();
      });
    },
    // Waits for exit (bounded); SIGKILLs on timeout and rejects.
    async wait(timeoutMs = 15_000) {
      let t;
      const timeout = new Promise((_, reject) => {
        t = setTimeout(() => reject(new Error(`gateway pid ${child.pid} did not exit within ${timeoutMs} ms`)), timeoutMs);
      });
      try {
        return await Promise.race([exited, timeout]);
      } catch (e) {
        child.kill('SIGKILL');
        await exited;
        throw new Error(`${e.message}; stderr:\n${err}`);
      } finally {
        clearTimeout(t);
      }
    },
    signal(sig = 'SIGTERM') {
      if (!exitInfo) child.kill(sig);
    },
  };
  return handle;
}

// Runs the binary to completion (for --version, --check-config, bad configs): resolves
// {code, signal, stdout, stderr}; SIGKILL after timeoutMs (then rejects).
export async function runGateway(args, opts = {}) {
  const g = spawnGateway(args, opts);
  const r = await g.wait(opts.timeoutMs ?? 15_000);
  return { ...r, stdout: g.stdout(), stderr: g.stderr() };
}

const LISTEN_RE = /switchyard listening on (https?):\/\/(\[[^\]]+\]|[^:\s"]+):(\d+)/;

// GET over HTTPS trusting `ca` (PEM): resolves {status, body}. Node's fetch cannot be
// given a CA per call; the gateway's HTTPS tests use this.
export function httpsGet(url, { ca, timeoutMs = 5000, headers = {} } = {}) {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { ca, headers, timeout: timeoutMs, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url} timed out`)));
    req.on('error', reject);
  });
}

// Starts the gateway with `config` (object or YAML text; or `configFile`), on 127.0.0.1 and a
// free port, and waits until GET /health/liveliness answers 200 and, when `env` sets
// DATABASE_URL (unless waitForDb is false), until /health/readiness says the database is
// connected (the schema is migrated in the background after the server listens).
// Returns {url, port, host, configFile, proc, stderr(), stop(), kill()}.
export async function startGateway({
  config,
  configFile,
  env,
  masterKey = MASTER_KEY,
  args = [],
  host = '127.0.0.1',
  startTimeoutMs = 30_000 * SLOW,
  waitForDb = Boolean(env?.DATABASE_URL),
  ca,  // PEM of the CA that signed the gateway's certificate (an HTTPS gateway)
} = {}) {
  const file = configFile ?? writeConfig(config ?? { model_list: [mockModel('demo')] });
  const proc = spawnGateway(['--config', file, '--port', '0', '--host', host, ...args], { env, masterKey });
  const deadline = Date.now() + startTimeoutMs;
  let m;
  try {
    m = await proc.waitForStderr(LISTEN_RE, startTimeoutMs);
  } catch (e) {
    proc.signal('SIGKILL');
    await proc.exited;
    throw e;
  }
  const scheme = m[1];
  const bound = m[2].replace(/^\[|\]$/g, '');
  const port = Number(m[3]);
  const urlHost = bound.includes(':') ? `[${bound}]` : bound === '0.0.0.0' ? '127.0.0.1' : bound;
  const url = `${scheme}://${urlHost}:${port}`;
  gatewayPorts.add(port);
  // Poll liveliness: bounded, short intervals, never a blind sleep.
  let lastErr;
  for (;;) {
    if (proc.exitInfo) throw new Error(`gateway exited during start: ${JSON.stringify(proc.exitInfo)}\n${proc.stderr()}`);
    try {
      let status;
      if (scheme === 'https') {
        status = (await httpsGet(`${url}/health/liveliness`, { ca, timeoutMs: 2000 })).status;
      } else {
        const r = await fetchWithTimeout(`${url}/health/liveliness`, { timeoutMs: 2000 });
        await r.arrayBuffer();
        status = r.status;
      }
      if (status === 200) break;
      lastErr = new Error(`liveliness answered ${status}`);
    } catch (e) {
      lastErr = e;
    }
    if (Date.now() > deadline) {
      proc.signal('SIGKILL');
      await proc.exited;
      throw new Error(`gateway not live within ${startTimeoutMs} ms (${lastErr?.message}):\n${proc.stderr()}`);
    }
    await delay(50);
  }
  while (waitForDb) {
    if (proc.exitInfo) throw new Error(`gateway exited during start: ${JSON.stringify(proc.exitInfo)}\n${proc.stderr()}`);
    try {
      const r = await fetchWithTimeout(`${url}/health/readiness`, { timeoutMs: 2000 });
      const body = await r.json().catch(() => ({}));
      if (body.db === 'connected') break;
      lastErr = new Error(`readiness: db ${body.db}`);
    } catch (e) {
      lastErr = e;
    }
    if (Date.now() > deadline) {
      proc.signal('SIGKILL');
      await proc.exited;
      throw new Error(`gateway database not ready within ${startTimeoutMs} ms (${lastErr?.message}):\n${proc.stderr()}`);
    }
    await delay(50);
  }
  return {
    url,
    base: `${url}/v1`,
    port,
    host: bound,
    configFile: file,
    proc,
    masterKey,
    stderr: () => proc.stderr(),
    // SIGTERM, then wait for exit; returns {code, signal, stderr}.
    async stop({ signal = 'SIGTERM', timeoutMs = 20_000 * SLOW } = {}) {
      proc.signal(signal);
      const r = await proc.wait(timeoutMs);
      return { ...r, stderr: proc.stderr() };
    },
    kill() {
      proc.signal('SIGKILL');
      return proc.exited;
    },
  };
}

// Kills every process this module started (SIGTERM, then SIGKILL after a short grace)
// and removes the temp folders. For after() hooks.
export async function stopAll({ graceMs = 5000 } = {}) {
  const waits = [];
  for (const child of [...live]) {
    waits.push(new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
      child.once('close', () => {
        clearTimeout(t);
        resolve();
      });
      child.kill('SIGTERM');
    }));
  }
  await Promise.all(waits);
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
  tempDirs.clear();
}

// ------------------------------------------------------------------ HTTP helpers

export const delay = (ms) => new Promise((r) => setTimeout(r, ms));

// Polls `fn` until it returns something truthy (and returns that); fails after `timeoutMs`.
export async function until(what, fn, timeoutMs = 20_000 * SLOW) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await delay(50);
  }
}

// The value of the first series of `name` on the gateway's /metrics whose labels include
// `labels`; undefined if none.
export async function metricValue(gw, name, labels) {
  const text = await (await fetchWithTimeout(`${gw.url}/metrics`)).text();
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) return Number(line.split(' ').pop());
  }
  return undefined;
}

// fetch with a hard deadline (AbortSignal.timeout) unless a signal is given.
export function fetchWithTimeout(url, { timeoutMs = 10_000, signal, ...init } = {}) {
  return fetch(url, { ...init, signal: signal ?? AbortSignal.timeout(timeoutMs) });
}

// JSON request to the gateway; resolves {status, headers, text, json}.
export async function call(gw, pathname, { method = 'POST', body, key = gw.masterKey, headers = {}, timeoutMs = 15_000 } = {}) {
  const h = { ...headers };
  if (key) h.authorization = `Bearer ${key}`;
  let payload;
  if (body !== undefined) {
    payload = typeof body === 'string' ? body : JSON.stringify(body);
    h['content-type'] ??= 'application/json';
  }
  const r = await fetchWithTimeout(`${gw.url}${pathname}`, { method, headers: h, body: payload, timeoutMs });
  const text = await r.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: r.status, headers: r.headers, text, json };
}

// Runs curl with `args` (silent, bounded); resolves {code, stdout, stderr}.
export function curl(args, { timeoutMs = 15_000 } = {}) {
  return new Promise((resolve, reject) => {
    execFile('curl', ['-sS', '--max-time', String(Math.ceil(timeoutMs / 1000)), ...args],
      { timeout: timeoutMs + 2000, maxBuffer: 64 << 20, encoding: 'utf8' },
      (err, stdout, stderr) => {
        if (err && err.killed) return reject(new Error(`curl timed out: ${args.join(' ')}`));
        resolve({ code: err ? err.code : 0, stdout, stderr });
      });
  });
}

// curl -i: resolves {code, status, headers (lower-case map; last response), body}.
export async function curlHttp(args, opts) {
  const r = await curl(['-i', ...args], opts);
  const text = r.stdout;
  // Skip "HTTP/1.1 100 Continue" blocks.
  let rest = text;
  let head = '';
  for (;;) {
    const idx = rest.indexOf('\r\n\r\n');
    if (idx < 0) {
      head = rest;
      rest = '';
      break;
    }
    head = rest.slice(0, idx);
    rest = rest.slice(idx + 4);
    if (!/^HTTP\/\S+ 1\d\d/.test(head)) break;
  }
  const lines = head.split('\r\n');
  const status = Number((lines[0].match(/^HTTP\/\S+ (\d{3})/) ?? [])[1] ?? 0);
  const headers = {};
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':');
    if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  const target = args.find((a) => /^https?:\/\//.test(a));
  if (target && gatewayPorts.has(Number(new URL(target).port)) && !(headers['content-type'] ?? '').includes('event-stream')) {
    const xi = args.indexOf('-X');
    recordResponse(xi >= 0 ? args[xi + 1] : 'GET', target, status, headers['content-type'] ?? '', rest);
  }
  return { code: r.code, status, headers, body: rest, stderr: r.stderr };
}

// Parses an SSE body into the list of `data:` payloads (strings), in order.
export function sseData(text) {
  const out = [];
  for (const block of text.split(/\r?\n\r?\n/)) {
    const data = block.split(/\r?\n/).filter((l) => l.startsWith('data:')).map((l) => l.slice(5).replace(/^ /, ''));
    if (data.length) out.push(data.join('\n'));
  }
  return out;
}

// Assembles the assistant text and usage from chat.completion.chunk payloads.
export function assembleChat(payloads) {
  let text = '';
  let usage = null;
  let finish = null;
  let done = false;
  const toolCalls = [];
  for (const p of payloads) {
    if (p === '[DONE]') {
      done = true;
      continue;
    }
    const c = JSON.parse(p);
    if (c.usage) usage = c.usage;
    for (const ch of c.choices ?? []) {
      if (ch.delta?.content) text += ch.delta.content;
      if (ch.finish_reason) finish = ch.finish_reason;
      for (const tc of ch.delta?.tool_calls ?? []) {
        const t = (toolCalls[tc.index] ??= { id: '', name: '', arguments: '' });
        if (tc.id) t.id = tc.id;
        if (tc.function?.name) t.name += tc.function.name;
        if (tc.function?.arguments) t.arguments += tc.function.arguments;
      }
    }
  }
  return { text, usage, finish, done, toolCalls };
}

// Streams a request and records when each body chunk arrived (ms since the request was
// sent). Resolves {status, headers, text, events: [{t, text}], firstAt, endAt}.
export async function streamTimed(url, { method = 'POST', headers = {}, body, timeoutMs = 20_000, onChunk } = {}) {
  const t0 = performance.now();
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(new Error(`stream not finished within ${timeoutMs} ms`)), timeoutMs);
  try {
    const r = await fetch(url, {
      method, headers: { 'content-type': 'application/json', ...headers },
      body: typeof body === 'string' ? body : JSON.stringify(body), signal: ac.signal,
    });
    const events = [];
    let text = '';
    const dec = new TextDecoder();
    for await (const part of r.body) {
      const s = dec.decode(part, { stream: true });
      const ev = { t: performance.now() - t0, at: Date.now(), text: s };
      events.push(ev);
      text += s;
      if (onChunk && (await onChunk(ev, text, ac)) === false) break;
    }
    return { status: r.status, headers: r.headers, text, events, endAt: performance.now() - t0, endWall: Date.now() };
  } finally {
    clearTimeout(timer);
  }
}

// Asserts-free check that an error body is OpenAI-shaped; returns a list of problems.
export function openaiErrorProblems(json, status) {
  const p = [];
  if (!json || typeof json !== 'object' || !json.error || typeof json.error !== 'object') {
    return [`not {"error":{...}}: ${JSON.stringify(json)}`];
  }
  const e = json.error;
  if (typeof e.message !== 'string' || e.message.length === 0) p.push('error.message not a non-empty string');
  if (typeof e.type !== 'string') p.push('error.type not a string');
  if (!('param' in e)) p.push('error.param missing');
  if (e.param !== null && typeof e.param !== 'string') p.push('error.param neither string nor null');
  if (typeof e.code !== 'string') p.push(`error.code not a string: ${JSON.stringify(e.code)}`);
  if (status !== undefined && e.code !== String(status)) p.push(`error.code ${JSON.stringify(e.code)} != "${status}"`);
  return p;
}

// A private redis-server on loopback, for a test that stops, pauses or kills it: the shared
// one (SWITCHYARD_TEST_REDIS_URL) serves the test files running at the same time, and a
// pause there would slow their limit checks too. Resolves {port, url, proc, kill()} once it
// answers PING. `port`: a stopped one's port, to bring it back where it was; `args`: more
// server options (e.g. ['--dir', d] to load the snapshot a SAVE wrote). stopAll() stops it.
export async function startPrivateRedis({ port: wanted, args = [], timeoutMs = 10_000 * SLOW } = {}) {
  const port = wanted ?? await freePort();
  const proc = spawn('redis-server', ['--bind', '127.0.0.1', '--port', String(port), '--save', '', '--appendonly', 'no',
                                      ...args], { stdio: 'ignore' });
  live.add(proc);
  proc.once('close', () => live.delete(proc));
  const kill = () => new Promise((resolve) => {
    if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
    proc.once('close', resolve);
    proc.kill('SIGKILL');
  });
  const deadline = Date.now() + timeoutMs;
  while (!(await redisAnswers(port, 200))) {
    if (Date.now() > deadline || proc.exitCode !== null) {
      await kill();
      throw new Error(`private redis-server on port ${port} did not start`);
    }
    await delay(20);
  }
  return { port, url: `redis://127.0.0.1:${port}`, proc, kill };
}

// Spawns the fake provider CLI as a separate process (for tests that need it out of process,
// e.g. to kill it); resolves {url, port, proc, close()}.
// `port`: a given port (e.g. to bring a stopped provider back where it was), else a free one.
export async function spawnFakeProvider({ timeoutMs = 10_000, port: wanted = 0 } = {}) {
  const child = spawn(process.execPath, [FAKE_PROVIDER, '--port', String(wanted)], { stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  child.once('close', () => live.delete(child));
  let out = '';
  child.stdout.setEncoding('utf8');
  const port = await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('fake provider did not print its port')), timeoutMs);
    child.stdout.on('data', (d) => {
      out += d;
      const nl = out.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(t);
        resolve(JSON.parse(out.slice(0, nl)).port);
      }
    });
    child.once('close', (code) => {
      clearTimeout(t);
      reject(new Error(`fake provider exited with ${code}`));
    });
  });
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    proc: child,
    close: () => new Promise((resolve) => {
      if (child.exitCode !== null) return resolve();
      child.once('close', resolve);
      child.kill('SIGTERM');
    }),
  };
}
