// Budgets and rate limits on the two other front doors, Anthropic's /v1/messages and
// OpenAI's /v1/responses, as on chat: a key's rpm_limit refuses the request past it with a
// 429 in the route's own error shape (retry-after set) before the provider, and a key
// whose budget cannot cover a request's worst case is refused with budget_exceeded; the
// accepted requests are the only ones the fake provider sees, and each has its spend row;
// a /v1/messages or /v1/responses stream that outruns its budget is cut with an error
// event, its spend within the budget (and a Responses request reserves for its
// max_output_tokens, not for the model's longest answer).
// Each run gets a fresh database on the server of SWITCHYARD_TEST_DATABASE_URL, and the
// gateway shares its counters through the Redis of SWITCHYARD_TEST_REDIS_URL. Its limit
// checks wait for Redis as long as a loaded machine needs: past the default few ms a check
// is decided on this instance's share of the limit, and every gateway of the test files
// running alongside counts as an instance of that Redis, so a key's rpm_limit of 2 would
// be a share of 0 and refuse requests Redis admits. The fallback itself is tested on a
// private Redis, which a pause there slows for no other test.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';

import { startFakeProvider } from '../fake_provider/server.mjs';
import {
  call, delay, hasRedisServer, openaiErrorProblems, psql, SLOW, startGateway, startPrivateRedis, stopAll, withDatabase,
} from '../lib/gateway.mjs';

const SERVER_URL = process.env.SWITCHYARD_TEST_DATABASE_URL;
const REDIS_URL = process.env.SWITCHYARD_TEST_REDIS_URL;
const skip = (!SERVER_URL || !REDIS_URL) && 'SWITCHYARD_TEST_DATABASE_URL / SWITCHYARD_TEST_REDIS_URL not set (scripts/test.sh sets them)';

const dbName = `swy_front_limits_${process.pid}_${Date.now()}`;
let dbUrl;
let fake;
let gw;

const messagesBody = { model: 'claude', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] };
const responsesBody = { model: 'gpt', max_output_tokens: 10, input: 'hi' };
const messages = (key) => call(gw, '/v1/messages', { body: messagesBody, key: null,
                                                      headers: { 'x-api-key': key, 'anthropic-version': '2023-06-01' } });
const responses = (key, g = gw) => call(g, '/v1/responses', { body: responsesBody, key });

function config() {
  const priced = { input_cost_per_token: 0.001, output_cost_per_token: 0.002 };
  return {
    model_list: [
      { model_name: 'claude', litellm_params: { model: 'anthropic/claude-sonnet-4-20250514', api_base: fake.url,
                                                api_key: 'sk-ant-upstream', ...priced } },
      { model_name: 'gpt', litellm_params: { model: 'openai/gpt-4o', api_base: `${fake.url}/v1`,
                                             api_key: 'sk-upstream', ...priced } },
    ],
    router_settings: { num_retries: 0 },
  };
}

async function newKey(body) {
  const r = await call(gw, '/key/generate', { body });
  assert.equal(r.status, 200, r.text);
  return r.json.key;
}

// Spend rows are written in batches: waits until `n` rows of the call type are there.
async function spendRows(callType, n) {
  const deadline = Date.now() + 20_000 * SLOW;
  for (;;) {
    const got = Number(psql(dbUrl, `SELECT count(*) FROM spend_logs WHERE call_type = '${callType}'`));
    if (got >= n) return got;
    if (Date.now() > deadline) throw new Error(`${n} ${callType} spend rows: ${got} after 20 s`);
    await delay(50);
  }
}

// The spend of the key named `alias` once its spend row is written (the key's running
// total is updated in the same transaction as the row's batch).
async function keySpend(alias) {
  const deadline = Date.now() + 20_000 * SLOW;
  const rows = `SELECT count(*) FROM spend_logs s JOIN verification_tokens v ON v.token = s.api_key WHERE v.key_alias = '${alias}'`;
  while (Number(psql(dbUrl, rows)) < 1) {
    if (Date.now() > deadline) throw new Error(`${alias}: no spend row after 20 s`);
    await delay(50);
  }
  return Number(psql(dbUrl, `SELECT spend FROM verification_tokens WHERE key_alias = '${alias}'`));
}

describe('limits on /v1/messages and /v1/responses', { skip }, () => {
  before(async () => {
    fake = await startFakeProvider();
    psql(SERVER_URL, `CREATE DATABASE ${dbName}`);
    dbUrl = withDatabase(SERVER_URL, dbName);
    gw = await startGateway({
      config: config(),
      env: { DATABASE_URL: dbUrl, REDIS_URL, SWITCHYARD_DATA_DIR: `/tmp/${dbName}`,
             SWITCHYARD_LIMITS_REDIS_TIMEOUT_MS: String(2000 * SLOW) },
    });
    await gw.proc.waitForStderr(/schema up to date/, 15_000 * SLOW);
  });
  after(async () => {
    await stopAll();
    await fake?.close();
    try {
      psql(SERVER_URL, `DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
    } catch {
      /* best effort */
    }
  });

  test('rpm_limit: the request past the limit is a 429 in the route\'s shape, never sent', async () => {
    const mKey = await newKey({ rpm_limit: 2 });
    const rKey = await newKey({ rpm_limit: 2 });
    fake.reset();
    for (let i = 0; i < 2; ++i) {
      const m = await messages(mKey);
      assert.equal(m.status, 200, m.text);
      assert.equal(m.json.type, 'message');
      assert.equal(m.headers.get('x-ratelimit-api_key-limit-requests'), '2');
      const r = await responses(rKey);
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.object, 'response');
    }
    const m = await messages(mKey);
    assert.equal(m.status, 429, m.text);
    assert.equal(m.json.type, 'error', 'Anthropic\'s error shape on /v1/messages');
    assert.equal(m.json.error.type, 'rate_limit_error', m.text);
    assert.match(m.json.error.message, /Rate limit exceeded for api_key/);
    assert.ok(Number(m.headers.get('retry-after')) > 0);
    const r = await responses(rKey);
    assert.equal(r.status, 429, r.text);
    assert.deepEqual(openaiErrorProblems(r.json, 429), [], r.text);
    assert.equal(r.json.error.type, 'throttling_error');
    assert.ok(Number(r.headers.get('retry-after')) > 0);
    assert.equal(fake.requests({ path: '/v1/messages' }).length, 2);
    assert.equal(fake.requests({ path: '/v1/responses' }).length, 2);
    await spendRows('anthropic_messages', 2);
    await spendRows('aresponses', 2);
  });

  test('a Redis that stops answering never loosens a limit: the local fallback counts what Redis admitted',
       { skip: !hasRedisServer && 'redis-server not installed' }, async () => {
    // The gateway's only instance on its private Redis, with the default check timeout: a
    // check Redis is slow to answer is decided on the whole limit, from what this instance
    // let through.
    const priv = await startPrivateRedis();
    const g = await startGateway({ config: config(), env: { DATABASE_URL: dbUrl, REDIS_URL: priv.url } });
    const key = await newKey({ rpm_limit: 2 });
    fake.reset();
    for (let i = 0; i < 2; ++i) {
      const r = await responses(key, g);
      assert.equal(r.status, 200, r.text);
    }
    // Every script on this Redis waits until UNPAUSE: the gateway's check times out after a
    // few ms and the local engine decides, from the two requests it already let through.
    const redis = (...args) => execFileSync('redis-cli', ['-u', priv.url, ...args], { encoding: 'utf8', timeout: 10_000 });
    assert.match(redis('CLIENT', 'PAUSE', '30000', 'WRITE'), /OK/);
    let third;
    try {
      third = await responses(key, g);
    } finally {
      redis('CLIENT', 'UNPAUSE');
    }
    assert.equal(third.status, 429, third.text);
    assert.equal(third.json.error.type, 'throttling_error');
    await g.proc.waitForStderr(/limits: Redis unavailable/, 10_000 * SLOW);
    assert.equal(fake.requests({ path: '/v1/responses' }).length, 2);
  });

  test('a /v1/messages stream past its budget (the provider ignores max_tokens) ends with an error event', async () => {
    // Budget 0.05: the prompt (0.001 a token) and about 24 events at 0.002 a token.
    const budget = 0.05;
    const content = Array.from({ length: 100 }, (_, i) => `w${i} `).join('');
    for (const [model, upstreamPath] of [['claude', '/v1/messages'], ['gpt', '/v1/chat/completions']]) {
      const alias = `stream-cut-${model}-${Date.now()}`;
      const key = await newKey({ max_budget: budget, key_alias: alias });
      fake.reset();
      fake.script([{ match: { path: upstreamPath }, stream: true, content, chunks: 100, chunk_delay_ms: 2 }]);
      const r = await fetch(`${gw.url}/v1/messages`, {
        method: 'POST',
        headers: { 'x-api-key': key, 'anthropic-version': '2023-06-01', 'content-type': 'application/json' },
        body: JSON.stringify({ ...messagesBody, model, stream: true, max_tokens: 5 }),
        signal: AbortSignal.timeout(30_000 * SLOW),
      });
      assert.equal(r.status, 200, model);
      const text = await r.text();
      const blocks = text.split('\n\n').filter((b) => b.trim() !== '');
      const last = blocks.at(-1);
      assert.match(last, /^event: error\ndata: /, `${model}: ${text.slice(-400)}`);
      const err = JSON.parse(last.slice(last.indexOf('data: ') + 6));
      assert.equal(err.type, 'error');
      assert.match(err.error.message, /Budget has been exceeded/, last);
      const deltas = blocks.filter((b) => b.startsWith('event: content_block_delta')).length;
      assert.ok(deltas > 0 && deltas < 30, `${model}: ${deltas} text deltas relayed for a budget of about 24`);
      assert.ok(!blocks.some((b) => b.startsWith('event: message_stop')), `${model}: a cut stream has no message_stop`);
      // The spend recorded stays within the budget.
      const spend = await keySpend(alias);
      assert.ok(spend > 0 && spend <= budget + 1e-9, `${model}: spend ${spend} for a budget of ${budget}`);
    }
  });

  test('a /v1/responses stream past its budget ends with its failure event, the spend within the budget', async () => {
    const budget = 0.05;
    const content = Array.from({ length: 100 }, (_, i) => `w${i} `).join('');
    const alias = `responses-cut-${Date.now()}`;
    const key = await newKey({ max_budget: budget, key_alias: alias });
    fake.reset();
    fake.script([{ match: { path: '/v1/responses' }, stream: true, content, chunks: 100, chunk_delay_ms: 2 }]);
    const r = await fetch(`${gw.url}/v1/responses`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ ...responsesBody, stream: true, max_output_tokens: 5 }),
      signal: AbortSignal.timeout(30_000 * SLOW),
    });
    const text = await r.text();
    assert.equal(r.status, 200, text);
    const blocks = text.split('\n\n').filter((b) => b.trim() !== '');
    assert.match(blocks.at(-1), /Budget has been exceeded/, text.slice(-400));
    const deltas = blocks.filter((b) => b.startsWith('event: response.output_text.delta')).length;
    assert.ok(deltas > 0 && deltas < 30, `${deltas} text deltas relayed for a budget of about 24 events`);
    assert.ok(!blocks.some((b) => b.startsWith('event: response.completed')), 'a cut stream does not complete');
    // error, then response.failed, numbered on from the last event that went out.
    assert.deepEqual(blocks.slice(-2).map((b) => b.split('\n')[0]), ['event: error', 'event: response.failed']);
    blocks.forEach((b, i) => assert.equal(JSON.parse(b.split('\n')[1].slice(6)).sequence_number, i, b.slice(0, 120)));
    const spend = await keySpend(alias);
    assert.ok(spend > 0 && spend <= budget + 1e-9, `spend ${spend} for a budget of ${budget}`);
  });

  test('max_budget: a request whose worst case does not fit is refused before the provider', async () => {
    // 10 completion tokens at 0.002 = 0.02 > 0.01.
    const key = await newKey({ max_budget: 0.01, key_alias: 'tiny' });
    fake.reset();
    const m = await messages(key);
    assert.equal(m.status, 429, m.text);
    assert.equal(m.json.type, 'error');
    assert.match(m.json.error.message, /Budget has been exceeded! Key=tiny/);
    const r = await responses(key);
    assert.equal(r.status, 429, r.text);
    assert.equal(r.json.error.type, 'budget_exceeded');
    assert.equal(fake.requests().length, 0);
  });
});
