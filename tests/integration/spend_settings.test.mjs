// The spend log's general_settings end to end, each with its own gateway and database:
//   disable_spend_logs: true          -> no spend_logs rows, but the key's running spend and
//                                        the daily rollups still move;
//   store_prompts_in_spend_logs: true -> the row holds the request's messages and the answer
//                                        (a stream's assembled text), bounded in size.
// (Off by default, nothing is stored: spend.test.mjs checks that.)
import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';

import { startFakeProvider } from '../fake_provider/server.mjs';
import { call, delay, psql, SLOW, startGateway, stopAll, withDatabase } from '../lib/gateway.mjs';

const SERVER_URL = process.env.SWITCHYARD_TEST_DATABASE_URL;
const skip = !SERVER_URL && 'SWITCHYARD_TEST_DATABASE_URL not set (scripts/test.sh sets it)';

const USER = [{ role: 'user', content: 'Remember this prompt.' }];
const close = (a, b) => Math.abs(a - b) <= 1e-12 + 1e-9 * Math.abs(b);
const gpt4oCost = (p, c) => p * 2.5e-6 + c * 1e-5;

let fake;
const dbs = [];

// A gateway with `general` as its general_settings, on a fresh database; a virtual key.
async function setUp(name, general) {
  const dbName = `swy_${name}_${process.pid}_${Date.now()}`;
  psql(SERVER_URL, `CREATE DATABASE ${dbName}`);
  dbs.push(dbName);
  const dbUrl = withDatabase(SERVER_URL, dbName);
  const gw = await startGateway({
    config: {
      model_list: [
        { model_name: 'gpt4o', litellm_params: { model: 'openai/gpt-4o', api_base: `${fake.url}/v1`, api_key: 'sk-up' } },
      ],
      general_settings: general,
    },
    env: { DATABASE_URL: dbUrl, SWITCHYARD_DATA_DIR: `/tmp/${dbName}` },
  });
  await gw.proc.waitForStderr(/schema up to date/, 15_000 * SLOW);
  const k = await call(gw, '/key/generate', { body: { key_alias: name } });
  assert.equal(k.status, 200, k.text);
  const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: k.json.key, maxRetries: 0, timeout: 20_000 });
  return { gw, dbUrl, keyHash: k.json.token, client, dbName };
}

// Polls `sql` until `ok(output)` (the writer flushes every 100 ms).
async function until(dbUrl, sql, ok, what) {
  const deadline = Date.now() + 20_000 * SLOW;
  for (;;) {
    const out = psql(dbUrl, sql);
    if (ok(out)) return out;
    if (Date.now() > deadline) throw new Error(`${what}: still ${JSON.stringify(out)} after ${20_000 * SLOW} ms`);
    await delay(50);
  }
}

describe('spend settings', { skip }, () => {
  before(async () => {
    fake = await startFakeProvider();
  });
  after(async () => {
    await stopAll();
    await fake?.close();
    for (const db of dbs) {
      try {
        psql(SERVER_URL, `DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
      } catch {
        /* best effort */
      }
    }
  });
  beforeEach(() => fake.reset());

  test('disable_spend_logs: totals and rollups move, no spend_logs rows', async () => {
    const s = await setUp('nologs', { disable_spend_logs: true });
    fake.script([
      { usage: { prompt_tokens: 1000, completion_tokens: 100 } },
      { usage: { prompt_tokens: 2000, completion_tokens: 50, cached_tokens: 1000 } },
      { usage: { prompt_tokens: 300, completion_tokens: 30 } },
    ]);
    const { response } = await s.client.chat.completions.create({ model: 'gpt4o', messages: USER }).withResponse();
    assert.ok(close(Number(response.headers.get('x-litellm-response-cost')), gpt4oCost(1000, 100)));
    await s.client.chat.completions.create({ model: 'gpt4o', messages: USER });
    const stream = await s.client.chat.completions.create({ model: 'gpt4o', messages: USER, stream: true });
    for await (const _ of stream) { /* drain */ }
    const expected = gpt4oCost(1000, 100) + (1000 * 2.5e-6 + 1000 * 1.25e-6 + 50 * 1e-5) + gpt4oCost(300, 30);

    await until(s.dbUrl, `SELECT coalesce(sum(api_requests), 0) FROM daily_spend WHERE entity_type = 'key' AND entity_id = '${s.keyHash}'`,
                (n) => Number(n) === 3, 'the key rollup counts three requests');
    const keySpend = Number(await until(s.dbUrl, `SELECT spend FROM verification_tokens WHERE token = '${s.keyHash}'`,
                                        (v) => close(Number(v), expected), 'the key running spend'));
    assert.ok(close(keySpend, expected), `${keySpend} != ${expected}`);
    const [tokens, cached, spend] = psql(s.dbUrl,
      `SELECT sum(prompt_tokens), sum(cache_read_input_tokens), sum(spend) FROM daily_spend WHERE entity_type = 'all'`)
      .split('|').map(Number);
    assert.equal(tokens, 3300);
    assert.equal(cached, 1000);
    assert.ok(close(spend, expected), `rollup ${spend} != ${expected}`);
    // The totals were committed, in the same transactions that would have written rows.
    assert.equal(Number(psql(s.dbUrl, 'SELECT count(*) FROM spend_logs')), 0);
    const logs = await call(s.gw, `/spend/logs?api_key=${s.keyHash}&summarize=false`, { method: 'GET' });
    assert.equal(logs.status, 200, logs.text);
    assert.deepEqual(logs.json, []);
  });

  test('store_prompts_in_spend_logs: messages and answers, streams included, bounded', async () => {
    const s = await setUp('prompts', { store_prompts_in_spend_logs: true });
    const rowOf = async (id) => JSON.parse(await until(s.dbUrl,
      `SELECT row_to_json(r) FROM (SELECT messages, response, pg_column_size(messages) AS msize FROM spend_logs ` +
      `WHERE request_id = '${id}') r`, (o) => o !== '', `the row of ${id}`));

    fake.script([{ content: 'The stored answer.' }]);
    const { response } = await s.client.chat.completions.create({ model: 'gpt4o', messages: USER }).withResponse();
    const json = await rowOf(response.headers.get('x-litellm-call-id'));
    assert.deepEqual(json.messages, USER);
    assert.equal(json.response.choices[0].message.content, 'The stored answer.');
    assert.equal(json.response.object, 'chat.completion');

    fake.script([{ content: 'Streamed in several pieces', chunks: 4 }]);
    const id = `stored-stream-${s.dbName}`;
    const stream = await s.client.chat.completions.create({ model: 'gpt4o', messages: USER, stream: true },
                                                          { headers: { 'x-litellm-call-id': id } });
    let text = '';
    for await (const c of stream) text += c.choices[0]?.delta?.content ?? '';
    assert.equal(text, 'Streamed in several pieces');
    const streamed = await rowOf(id);
    assert.deepEqual(streamed.messages, USER);
    assert.equal(streamed.response.choices[0].message.content, text);

    // A prompt over the 64 KiB bound is cut, and says so.
    const big = [{ role: 'user', content: 'x'.repeat(200_000) }];
    const r = await s.client.chat.completions.create({ model: 'gpt4o', messages: big }).withResponse();
    const cut = await rowOf(r.response.headers.get('x-litellm-call-id'));
    assert.equal(cut.messages.truncated, true);
    assert.equal(cut.messages.bytes, JSON.stringify(big).length);
    assert.equal(cut.messages.text.length, 64 * 1024);
    assert.ok(cut.msize < 80 * 1024, `stored ${cut.msize} bytes`);
  });
});
