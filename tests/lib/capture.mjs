// What the gateway printed and answered during the tests, and the secrets the tests gave
// it, kept for tests/secrets_scan.mjs (run by scripts/test.sh after ctest): no key,
// password or bearer token may appear in a log line or in a response, except the one
// response that hands out a newly created key.
//
// Active only when SWITCHYARD_TEST_CAPTURE_DIR is set (scripts/test.sh sets it); every
// function is a no-op otherwise. Each test process writes its own files (pid in the
// name): secrets-<pid>.jsonl, responses-<pid>.jsonl, gateway-<pid>-<n>.log.

import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import process from 'node:process';

const DIR = process.env.SWITCHYARD_TEST_CAPTURE_DIR || '';
export const capturing = DIR !== '';

const file = (name) => path.join(DIR, name);
let outputs = 0;
let responses = 0;

// Names whose values are secrets, in an environment or a config.
const SECRET_NAME = /(api_key|master_key|password|secret|token|credentials)/i;

export function recordSecret(value, what) {
  if (!capturing || typeof value !== 'string') return;
  const v = value.trim();
  // Placeholders and indirections are not secrets; very short values cannot be told
  // apart from ordinary text.
  if (v.length < 5 || v.startsWith('os.environ/') || v === 'None' || v === 'null') return;
  // A plain word ("secret", "password") is a test placeholder that also occurs in ordinary
  // messages ("Invalid client secret"): only letters must be long to be told apart.
  if (/^[A-Za-z]+$/.test(v) && v.length < 10) return;
  appendFileSync(file(`secrets-${process.pid}.jsonl`), `${JSON.stringify({ value: v, what })}\n`);
}

// The secrets in an environment handed to the gateway.
export function recordEnvSecrets(env, what) {
  if (!capturing || !env) return;
  for (const [k, v] of Object.entries(env)) {
    if (typeof v !== 'string' || v === '') continue;
    if (SECRET_NAME.test(k)) recordSecret(v, `${what}: env ${k}`);
    // Passwords inside connection URLs.
    if (/^(postgres(ql)?|rediss?):\/\//.test(v)) {
      try {
        const u = new URL(v);
        if (u.password) recordSecret(decodeURIComponent(u.password), `${what}: env ${k} password`);
      } catch {
        // not a URL after all
      }
    }
  }
}

// The secrets written in a config file (`api_key: ...`, `master_key: ...`, ...).
export function recordConfigSecrets(configFile) {
  if (!capturing || !configFile) return;
  let text;
  try {
    text = readFileSync(configFile, 'utf8');
  } catch {
    return;
  }
  const re = /^\s*-?\s*["']?([A-Za-z_]+)["']?\s*:\s*["']?([^"'\s#,}]+)["']?/gm;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    // Prices (`input_cost_per_token`) and limits are numbers, not secrets.
    if (SECRET_NAME.test(m[1]) && !/cost|limit|max_|per_token/.test(m[1]) && !/^(true|false|[-+.\deE]+)$/.test(m[2])) {
      recordSecret(m[2], `config ${path.basename(configFile)}: ${m[1]}`);
    }
  }
}

// Everything a gateway process printed, when it has exited.
export function recordGatewayOutput(pid, stdout, stderr) {
  if (!capturing) return;
  outputs += 1;
  writeFileSync(file(`gateway-${process.pid}-${outputs}.log`), `${stdout}${stderr}`);
}

// Endpoints whose answer hands out a new secret once, by design (LiteLLM shows a new
// key once, in the answer that creates it).
const CREATES_KEY = /^\/(key\/generate|key\/regenerate|key\/[^/]+\/regenerate|key\/service-account\/generate|user\/new|team\/new)$/;

export function recordResponse(method, url, status, contentType, text) {
  if (!capturing) return;
  let u;
  try {
    u = new URL(url);
  } catch {
    return;
  }
  responses += 1;
  const id = `${process.pid}-${responses}`;
  appendFileSync(file(`responses-${process.pid}.jsonl`),
    `${JSON.stringify({ id, method, path: u.pathname + u.search, status, contentType, text })}\n`);
  if (CREATES_KEY.test(u.pathname) && status < 300) {
    try {
      const body = JSON.parse(text);
      if (typeof body?.key === 'string') {
        appendFileSync(file(`secrets-${process.pid}.jsonl`),
          `${JSON.stringify({ value: body.key, what: `key created by ${u.pathname}`, origin: id })}\n`);
      }
    } catch {
      // not JSON
    }
  }
}

// The ports of the gateways this process started: only their answers are kept.
export const gatewayPorts = new Set();

// Keeps every answer of a gateway fetched through the global fetch (the tests' own
// requests and the `openai` / `@anthropic-ai/sdk` clients), except event streams.
export function installFetchCapture() {
  if (!capturing || globalThis.fetch.__switchyardCapture) return;
  const inner = globalThis.fetch;
  const wrapped = async (input, init) => {
    const r = await inner(input, init);
    try {
      const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
      const u = new URL(url);
      const ct = r.headers.get('content-type') ?? '';
      if (gatewayPorts.has(Number(u.port)) && !ct.includes('event-stream') && r.body) {
        const method = init?.method ?? (typeof input === 'object' && input.method) ?? 'GET';
        r.clone().text().then((t) => recordResponse(method, url, r.status, ct, t), () => {});
      }
    } catch {
      // capture never changes what the test sees
    }
    return r;
  };
  wrapped.__switchyardCapture = true;
  globalThis.fetch = wrapped;
}
