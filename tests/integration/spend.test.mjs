// The cost logger end to end: requests through the real binary to the fake provider with a
// virtual key; each request's spend_logs row (read straight from Postgres) carries the
// price formula applied to its usage; the OpenAI SDK sees x-litellm-response-cost; a client
// that leaves a stream after three chunks is billed for what it received; failures get a
// row too; the key's running spend is the sum of its rows; cached, cache-written and
// reasoning tokens are kept apart (JSON and streams) and each priced at its own rate.
// Fresh database per run.
import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';

import { startFakeProvider } from '../fake_provider/server.mjs';
import { call, delay, psql, SLOW, startGateway, stopAll, withDatabase } from '../lib/gateway.mjs';

const SERVER_URL = process.env.SWITCHYARD_TEST_DATABASE_URL;
const skip = !SERVER_URL && 'SWITCHYARD_TEST_DATABASE_URL not set (scripts/test.sh sets it)';

const dbName = `swy_spend_${process.pid}_${Date.now()}`;
let dbUrl;
let gw;
let fake;
let key;
let keyHash;
let client;

const USER = [{ role: 'user', content: 'What does it cost?' }];

// The spend_logs row of a request (polls: the writer flushes every 100 ms).
async function rowOf(requestId, timeoutMs = 20_000 * SLOW) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const out = psql(dbUrl, `SELECT row_to_json(s) FROM spend_logs s WHERE request_id = '${requestId}'`);
    if (out) return JSON.parse(out);
    if (Date.now() > deadline) throw new Error(`no spend row for ${requestId} within ${timeoutMs} ms`);
    await delay(50);
  }
}

const close = (a, b) => Math.abs(a - b) <= 1e-12 + 1e-9 * Math.abs(b);

describe('spend', { skip }, () => {
  before(async () => {
    fake = await startFakeProvider();
    psql(SERVER_URL, `CREATE DATABASE ${dbName}`);
    dbUrl = withDatabase(SERVER_URL, dbName);
    gw = await startGateway({
      config: {
        model_list: [
          { model_name: 'gpt4o', litellm_params: { model: 'openai/gpt-4o', api_base: `${fake.url}/v1`, api_key: 'sk-up' } },
          {
            model_name: 'custom-priced',
            litellm_params: { model: 'openai/my-model', api_base: `${fake.url}/v1`, api_key: 'sk-up',
                              input_cost_per_token: 0.000001, output_cost_per_token: '0.000002' },
          },
          { model_name: 'local', litellm_params: { model: 'ollama_chat/llama3', api_base: fake.url } },
          { model_name: 'embed', litellm_params: { model: 'openai/text-embedding-3-small', api_base: `${fake.url}/v1`, api_key: 'sk-up' } },
          { model_name: 'claude', litellm_params: { model: 'anthropic/claude-sonnet-4-20250514', api_base: fake.url, api_key: 'sk-ant' } },
        ],
      },
      env: { DATABASE_URL: dbUrl, SWITCHYARD_DATA_DIR: `/tmp/${dbName}` },
    });
    await gw.proc.waitForStderr(/schema up to date/, 15_000 * SLOW);
    const k = await call(gw, '/key/generate', { body: { key_alias: 'spender' } });
    assert.equal(k.status, 200, k.text);
    key = k.json.key;
    keyHash = k.json.token;
    client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: key, maxRetries: 0, timeout: 20_000 });
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
  beforeEach(() => fake.reset());

  test('a priced OpenAI model: the row and x-litellm-response-cost are the price formula', async () => {
    fake.script([{ usage: { prompt_tokens: 1000, completion_tokens: 200 } }]);
    const { data, response } = await client.chat.completions.create({ model: 'gpt4o', messages: USER }).withResponse();
    assert.equal(data.usage.prompt_tokens, 1000);
    const expected = 1000 * 2.5e-6 + 200 * 1e-5;
    const header = Number(response.headers.get('x-litellm-response-cost'));
    assert.ok(close(header, expected), `header ${header} != ${expected}`);
    assert.equal(response.headers.get('x-litellm-key-spend') !== null, true);
    const row = await rowOf(response.headers.get('x-litellm-call-id'));
    assert.ok(close(row.spend, expected), `row ${row.spend} != ${expected}`);
    assert.equal(row.api_key, keyHash);
    assert.equal(row.key_alias, 'spender');
    assert.equal(row.status, 'success');
    assert.equal(row.model, 'gpt4o');
    assert.equal(row.model_group, 'gpt4o');
    assert.equal(row.prompt_tokens, 1000);
    assert.equal(row.completion_tokens, 200);
    assert.equal(row.usage_estimated, false);
    assert.equal(row.call_type, 'acompletion');
  });

  test('a count no call can reach is billed as 100,000,000 tokens, logged and counted', async () => {
    fake.script([{ usage: { prompt_tokens: 1e15, completion_tokens: 200 } }]);
    const { data, response } = await client.chat.completions.create({ model: 'gpt4o', messages: USER }).withResponse();
    assert.equal(data.usage.prompt_tokens, 1e15, "the client gets the provider's numbers");
    const expected = 1e8 * 2.5e-6 + 200 * 1e-5;
    const header = Number(response.headers.get('x-litellm-response-cost'));
    assert.ok(close(header, expected), `header ${header} != ${expected}`);
    const row = await rowOf(response.headers.get('x-litellm-call-id'));
    assert.equal(row.prompt_tokens, 1e8);
    assert.ok(close(row.spend, expected), `row ${row.spend} != ${expected}`);
    await gw.proc.waitForStderr(/reported usage beyond 100000000 tokens/, 5_000 * SLOW);
    const m = await call(gw, '/metrics', { method: 'GET' });
    assert.match(m.text, /^switchyard_usage_bounded_total(\{\})? 1$/m);
  });

  // claude-sonnet-4-20250514 in config/model_prices.json.
  const SONNET = { input: 3e-6, output: 1.5e-5, cacheRead: 3e-7, cacheCreation: 3.75e-6 };
  // The price formula on a row's recorded usage (docs/spend.md).
  const sonnetCost = (r) =>
    (r.prompt_tokens - r.cached_tokens - r.cache_creation_tokens) * SONNET.input + r.cached_tokens * SONNET.cacheRead
    + r.cache_creation_tokens * SONNET.cacheCreation + r.completion_tokens * SONNET.output;

  test('an Anthropic model with cache-read tokens costs the formula on its recorded usage', async () => {
    // Anthropic's input_tokens excludes the cache: 100 new + 1000 read + 200 written.
    fake.script([{ usage: { prompt_tokens: 100, completion_tokens: 20, cache_read_input_tokens: 1000,
                            cache_creation_input_tokens: 200 } }]);
    const { data, response } = await client.chat.completions.create({ model: 'claude', messages: USER }).withResponse();
    assert.equal(data.usage.prompt_tokens, 1300, JSON.stringify(data.usage));
    assert.equal(data.usage.prompt_tokens_details.cached_tokens, 1000, JSON.stringify(data.usage));
    const expected = 100 * SONNET.input + 1000 * SONNET.cacheRead + 200 * SONNET.cacheCreation + 20 * SONNET.output;
    const header = Number(response.headers.get('x-litellm-response-cost'));
    assert.ok(close(header, expected), `header ${header} != ${expected}`);
    const row = await rowOf(response.headers.get('x-litellm-call-id'));
    assert.equal(row.prompt_tokens, 1300);
    assert.equal(row.cached_tokens, 1000, JSON.stringify(row));
    assert.equal(row.cache_creation_tokens, 200, JSON.stringify(row));
    assert.equal(row.completion_tokens, 20);
    assert.equal(row.custom_llm_provider, 'anthropic');
    assert.ok(close(row.spend, sonnetCost(row)), `row ${row.spend} != formula ${sonnetCost(row)}`);
    assert.ok(close(row.spend, expected), `row ${row.spend} != ${expected}`);
    assert.ok(row.spend < 1300 * SONNET.input + 20 * SONNET.output, 'cheaper than without the cache');
  });

  test('a streamed Anthropic answer keeps its cache tokens apart', async () => {
    fake.script([{ usage: { prompt_tokens: 50, completion_tokens: 8, cache_read_input_tokens: 4000,
                            cache_creation_input_tokens: 0 } }]);
    const id = `claude-stream-${dbName}`;
    const stream = await client.chat.completions.create(
      { model: 'claude', messages: USER, stream: true, stream_options: { include_usage: true } },
      { headers: { 'x-litellm-call-id': id } });
    let usage;
    for await (const c of stream) if (c.usage) usage = c.usage;
    assert.equal(usage?.prompt_tokens_details?.cached_tokens, 4000, JSON.stringify(usage));
    const row = await rowOf(id);
    assert.equal(row.prompt_tokens, 4050);
    assert.equal(row.cached_tokens, 4000, JSON.stringify(row));
    assert.equal(row.completion_tokens, 8);
    assert.equal(row.usage_estimated, false);
    assert.ok(close(row.spend, sonnetCost(row)), `row ${row.spend} != formula ${sonnetCost(row)}`);
  });

  // gpt-4o: cached prompt tokens at cache_read_input_token_cost; reasoning tokens are
  // completion tokens (no separate reasoning price for it).
  const gpt4oCost = (r) =>
    (r.prompt_tokens - r.cached_tokens) * 2.5e-6 + r.cached_tokens * 1.25e-6 + r.completion_tokens * 1e-5;

  test('OpenAI cached and reasoning tokens: JSON', async () => {
    fake.script([{ usage: { prompt_tokens: 2000, completion_tokens: 300, cached_tokens: 1536, reasoning_tokens: 256 } }]);
    const { data, response } = await client.chat.completions.create({ model: 'gpt4o', messages: USER }).withResponse();
    assert.equal(data.usage.prompt_tokens_details.cached_tokens, 1536, JSON.stringify(data.usage));
    assert.equal(data.usage.completion_tokens_details.reasoning_tokens, 256, JSON.stringify(data.usage));
    const expected = 464 * 2.5e-6 + 1536 * 1.25e-6 + 300 * 1e-5;
    assert.ok(close(Number(response.headers.get('x-litellm-response-cost')), expected));
    const row = await rowOf(response.headers.get('x-litellm-call-id'));
    assert.equal(row.cached_tokens, 1536);
    assert.equal(row.reasoning_tokens, 256);
    assert.equal(row.cache_creation_tokens, 0);
    assert.ok(close(row.spend, gpt4oCost(row)), `row ${row.spend} != formula ${gpt4oCost(row)}`);
    assert.ok(close(row.spend, expected), `row ${row.spend} != ${expected}`);
  });

  test('OpenAI cached and reasoning tokens: the final stream chunk', async () => {
    fake.script([{ usage: { prompt_tokens: 1200, completion_tokens: 90, cached_tokens: 1024, reasoning_tokens: 64 } }]);
    const id = `gpt-stream-${dbName}`;
    // The client did not ask for usage: the gateway asks upstream and keeps it from the client.
    const stream = await client.chat.completions.create({ model: 'gpt4o', messages: USER, stream: true },
                                                        { headers: { 'x-litellm-call-id': id } });
    for await (const c of stream) assert.equal(c.usage ?? null, null, JSON.stringify(c));
    const row = await rowOf(id);
    assert.equal(row.prompt_tokens, 1200);
    assert.equal(row.cached_tokens, 1024);
    assert.equal(row.reasoning_tokens, 64);
    assert.ok(close(row.spend, gpt4oCost(row)), `row ${row.spend} != formula ${gpt4oCost(row)}`);
    const rollup = Number(psql(dbUrl, `SELECT sum(cache_read_input_tokens) FROM daily_spend WHERE entity_type = 'all'`));
    assert.ok(rollup >= 1024, `the rollup counts cached tokens: ${rollup}`);
  });

  test('prompts and answers are not stored by default', async () => {
    const { response } = await client.chat.completions.create({ model: 'gpt4o', messages: USER }).withResponse();
    const row = await rowOf(response.headers.get('x-litellm-call-id'));
    assert.equal(row.messages, null);
    assert.equal(row.response, null);
  });

  test('a deployment with its own prices', async () => {
    fake.script([{ usage: { prompt_tokens: 300, completion_tokens: 50 } }]);
    const { response } = await client.chat.completions.create({ model: 'custom-priced', messages: USER }).withResponse();
    const expected = 300 * 1e-6 + 50 * 2e-6;
    assert.ok(close(Number(response.headers.get('x-litellm-response-cost')), expected));
    const row = await rowOf(response.headers.get('x-litellm-call-id'));
    assert.ok(close(row.spend, expected), `${row.spend} != ${expected}`);
  });

  test('a local Ollama model is free', async () => {
    fake.script([{ usage: { prompt_tokens: 40, completion_tokens: 10 } }]);
    const { response } = await client.chat.completions.create({ model: 'local', messages: USER }).withResponse();
    assert.equal(Number(response.headers.get('x-litellm-response-cost')), 0);
    const row = await rowOf(response.headers.get('x-litellm-call-id'));
    assert.equal(row.spend, 0);
    assert.equal(row.prompt_tokens, 40);
  });

  test('an embedding call is priced per input token', async () => {
    const { data, response } = await client.embeddings.create({ model: 'embed', input: ['a b c', 'd e'] }).withResponse();
    const prompt = data.usage.prompt_tokens;
    assert.ok(prompt > 0);
    const row = await rowOf(response.headers.get('x-litellm-call-id'));
    assert.equal(row.call_type, 'aembedding');
    assert.ok(close(row.spend, prompt * 2e-8), `${row.spend} != ${prompt * 2e-8}`);
  });

  test('a client that leaves after three chunks is billed for what it received', async () => {
    fake.script([{ chunks: 40, chunk_delay_ms: 30, content: Array.from({ length: 40 }, (_, i) => `w${i}`).join(' ') }]);
    const ac = new AbortController();
    const r = await fetch(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', 'x-litellm-call-id': `cut-${dbName}` },
      body: JSON.stringify({ model: 'gpt4o', stream: true, messages: USER }),
      signal: ac.signal,
    });
    assert.equal(r.status, 200);
    const reader = r.body.getReader();
    const decoder = new TextDecoder();
    let text = '';
    while ((text.match(/^data: /gm) ?? []).length < 3) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value);
    }
    ac.abort();
    const row = await rowOf(`cut-${dbName}`);
    assert.equal(row.usage_estimated, true);
    assert.ok(row.completion_tokens >= 3, JSON.stringify(row));
    assert.ok(row.completion_tokens < 40, JSON.stringify(row));
    assert.ok(row.spend > 0, JSON.stringify(row));
  });

  test('a client that leaves while the provider thinks: the call is cancelled, its prompt billed as an estimate', async () => {
    fake.script([{ stall: true }]);
    const ac = new AbortController();
    const callId = `left-waiting-${dbName}`;
    const done = fetch(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', 'x-litellm-call-id': callId },
      body: JSON.stringify({ model: 'gpt4o', messages: USER, num_retries: 0 }),
      signal: ac.signal,
    }).catch(() => {});
    await fake.waitFor((rs) => rs.length >= 1, { timeoutMs: 10_000 * SLOW });
    ac.abort();
    await done;
    await fake.waitFor((rs) => rs[0]?.aborted, { timeoutMs: 20_000 * SLOW });
    const row = await rowOf(callId);
    assert.equal(row.status, 'failure', JSON.stringify(row));
    assert.equal(row.status_code, 499, JSON.stringify(row));
    assert.equal(row.usage_estimated, true);
    assert.ok(row.prompt_tokens > 0, JSON.stringify(row));
    assert.equal(row.completion_tokens, 0);
    assert.ok(row.spend > 0, JSON.stringify(row));
    fake.reset();
  });

  test('a failed request has a failure row', async () => {
    fake.script([{ status: 500, error_message: 'upstream broke', times: -1 }]);
    const r = await call(gw, '/v1/chat/completions', {
      key, body: { model: 'gpt4o', messages: USER, num_retries: 0 }, headers: { 'x-litellm-call-id': `fail-${dbName}` },
    });
    assert.equal(r.status, 500, r.text);
    const row = await rowOf(`fail-${dbName}`);
    assert.equal(row.status, 'failure');
    assert.equal(row.status_code, 500);
    assert.equal(row.spend, 0);
    fake.reset();
  });

  test("the key's running spend equals the sum of its rows", async () => {
    const ids = [];
    for (let i = 0; i < 5; ++i) {
      fake.script([{ usage: { prompt_tokens: 10 + i, completion_tokens: 5 } }]);
      const { response } = await client.chat.completions.create({ model: 'gpt4o', messages: USER }).withResponse();
      ids.push(response.headers.get('x-litellm-call-id'));
    }
    for (const id of ids) await rowOf(id);
    const deadline = Date.now() + 20_000 * SLOW;
    for (;;) {
      const [total, sum] = psql(dbUrl,
        `SELECT (SELECT spend FROM verification_tokens WHERE token = '${keyHash}'), ` +
        `(SELECT sum(spend) FROM spend_logs WHERE api_key = '${keyHash}')`).split('|').map(Number);
      if (close(total, sum)) break;
      if (Date.now() > deadline) assert.fail(`key spend ${total} != sum of rows ${sum}`);
      await delay(50);
    }
    const daily = Number(psql(dbUrl, `SELECT sum(spend) FROM daily_spend WHERE entity_type = 'key' AND entity_id = '${keyHash}'`));
    const sum = Number(psql(dbUrl, `SELECT sum(spend) FROM spend_logs WHERE api_key = '${keyHash}'`));
    assert.ok(close(daily, sum), `rollup ${daily} != rows ${sum}`);
  });
});
