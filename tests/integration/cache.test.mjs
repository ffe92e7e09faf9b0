// The response cache end to end (docs/cache.md): the real binary, the fake provider's
// request log as the count of provider calls, the official OpenAI SDK as the client.
//  - a second identical request does not reach the provider and returns the same answer
//    with x-litellm-cache-key; a streamed request after a non-streamed one is replayed as
//    SSE the SDK reads (and the other way round);
//  - no-cache, no-store, ttl, s-maxage and namespace; a different temperature misses;
//  - two gateways share hits through Redis; type local works with no Redis at all; an
//    unsupported type starts with a warning and caching off;
//  - embeddings cached per input item: only the items not cached reach the provider, the
//    answer in the request's order;
//  - 50 concurrent identical requests on a cold cache reach the provider once; a leader
//    that fails lets the followers answer on their own; without a memory tier, followers
//    get the answer their leader found in Redis or stored;
//  - a private Redis killed during a load: no failed request; restarted: hits through
//    Redis resume without restarting the gateways;
//  - /cache/delete while that Redis is down is a 500, not a "success" (the entry is back
//    with Redis).
//  - a replayed stream has the chunk members of the relayed one (logprobs, usage null, the first delta's refusal null);
//  - a Gemini answer's grounding lists and annotations come back with a non-streamed hit,
//    not with a replayed stream (its usage does);
//  - an embeddings answer names the provider's model, every item cached or not;
//  - /cache/flushall while Redis is down flushes nothing (503), the memory tier included;
//  - default_in_redis_ttl / default_in_memory_ttl per tier; socket_timeout bounds a lookup.
// Every test uses its own prompts (a random marker) and the run its own namespace, so the
// shared Redis of scripts/test.sh holds nothing another run could hit.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import OpenAI from 'openai';

import { startFakeProvider } from '../fake_provider/server.mjs';
import { call, delay, freePort, openaiErrorProblems, SLOW, sseData, startGateway, startPrivateRedis, stopAll } from '../lib/gateway.mjs';

const REDIS_URL = process.env.SWITCHYARD_TEST_REDIS_URL;
const skip = !REDIS_URL && 'SWITCHYARD_TEST_REDIS_URL not set (scripts/test.sh sets it)';
const NS = `t${process.pid}x${Date.now()}`;
const CHAT = '/v1/chat/completions';

let fake;
let redis;  // {host, port} of the shared test Redis

function model(name = 'gpt') {
  return { model_name: name, litellm_params: { model: 'openai/gpt-4o', api_base: `${fake.url}/v1`, api_key: 'sk-up' } };
}
function cacheConfig(cacheParams, extra = {}) {
  return { model_list: [model()], litellm_settings: { cache: true, cache_params: cacheParams }, ...extra };
}
function clientOf(gw) {
  return new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: gw.masterKey, maxRetries: 0, timeout: 30_000 * SLOW });
}
// Provider calls whose body mentions `marker`.
function calls(marker) {
  return fake.requests({ path: CHAT }).filter((r) => JSON.stringify(r.body).includes(marker)).length;
}
function ask(marker, extra = {}) {
  return { model: 'gpt', messages: [{ role: 'user', content: `question ${marker}` }], temperature: 0, ...extra };
}
async function chat(client, body) {
  const { data, response } = await client.chat.completions.create(body).withResponse();
  return { data, key: response.headers.get('x-litellm-cache-key'), cost: response.headers.get('x-litellm-response-cost') };
}
async function streamed(client, body) {
  const s = await client.chat.completions.create({ ...body, stream: true });
  let content = '';
  let usage = null;
  let id = null;
  for await (const chunk of s) {
    id ??= chunk.id;
    for (const c of chunk.choices) content += c.delta?.content ?? '';
    if (chunk.usage) usage = chunk.usage;
  }
  return { content, usage, id };
}
function redisCli(r, ...args) {
  return execFileSync('redis-cli', ['-h', r.host, '-p', String(r.port), ...args], { encoding: 'utf8' }).trim();
}
// Polls until Redis holds the entry of `key` (the gateway writes it fire-and-forget).
async function waitForRedisKey(r, key, timeoutMs = 10_000 * SLOW) {
  const deadline = Date.now() + timeoutMs;
  while (redisCli(r, 'EXISTS', `switchyard:cache:${key}`) !== '1') {
    if (Date.now() > deadline) throw new Error(`cache key ${key} not in redis ${r.port} within ${timeoutMs} ms`);
    await delay(20);
  }
}

describe('response cache', { skip, timeout: 600_000 }, () => {
  let gw;
  let client;
  before(async () => {
    fake = await startFakeProvider();
    fake.setDefaults({ echo: true });
    const u = new URL(REDIS_URL);
    redis = { host: u.hostname, port: Number(u.port) };
    gw = await startGateway({
      config: cacheConfig({ type: 'redis', host: redis.host, port: redis.port, namespace: NS }, {
        model_list: [model(), { model_name: 'gem',
          litellm_params: { model: 'gemini/gemini-2.5-flash', api_base: fake.url, api_key: 'AIza-up' } }],
      }),
      env: { SWITCHYARD_CACHE_REDIS_TIMEOUT_MS: 2000 },
    });
    client = clientOf(gw);
  });
  after(async () => {
    await stopAll();
    await fake?.close();
  });

  test('readiness names the cache type, as LiteLLM does', async () => {
    const ready = await call(gw, '/health/readiness', { method: 'GET' });
    assert.equal(ready.status, 200, ready.text);
    assert.equal(ready.json.cache, 'redis', ready.text);
  });

  test('a second identical request does not reach the provider', async () => {
    const m = randomUUID();
    const a = await chat(client, ask(m));
    const b = await chat(client, ask(m));
    assert.equal(calls(m), 1);
    assert.equal(b.data.id, a.data.id);
    assert.equal(b.data.choices[0].message.content, a.data.choices[0].message.content);
    assert.match(a.key, new RegExp(`^${NS}:[0-9a-f]{64}$`));
    assert.equal(b.key, a.key);
    assert.equal(b.cost, '0');
    assert.equal(b.data.usage.total_tokens, a.data.usage.total_tokens);
    // Member order and number spelling do not change the key.
    const c = await chat(client, { temperature: 0.0, messages: [{ content: `question ${m}`, role: 'user' }], model: 'gpt' });
    assert.equal(c.key, a.key);
    assert.equal(calls(m), 1);
  });

  test('a prompt in any language is one entry, whether its characters come as UTF-8 or as \\u escapes', async () => {
    const m = randomUUID();
    const prompt = `question ${m}: caf\u00e9 \u2014 \u201cquoted\u201d \u65e5\u672c\u8a9e \u{1F642} a/b`;
    // The SDK sends UTF-8 as it is.
    const a = await chat(client, ask(m, { messages: [{ role: 'user', content: prompt }] }));
    // A client that escapes every non-ASCII character (Python's json.dumps by default) and '/'.
    const escaped = JSON.stringify(ask(m, { messages: [{ role: 'user', content: prompt }] }))
      .replace(/[\u007f-\uffff]/g, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`)
      .replace(/\//g, '\\/');
    assert.ok(!/[^\x00-\x7f]/.test(escaped) && escaped.includes('\\ud83d\\ude42'), escaped);
    const b = await call(gw, '/v1/chat/completions', { body: escaped });
    assert.equal(b.status, 200, b.text);
    assert.equal(b.headers.get('x-litellm-cache-key'), a.key);
    assert.equal(b.json.choices[0].message.content, a.data.choices[0].message.content);
    assert.equal(calls(m), 1);
  });

  test('hits, misses and the tokens served are counted in /metrics', async () => {
    // The sum of one counter family's series in the Prometheus text.
    const counter = async (name) => {
      const r = await fetch(`${gw.url}/metrics`, { signal: AbortSignal.timeout(10_000 * SLOW) });
      assert.equal(r.status, 200);
      const text = await r.text();
      let sum = 0;
      for (const line of text.split('\n')) {
        if (line.startsWith(`${name}_total{`)) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
      }
      return sum;
    };
    const before = {
      hits: await counter('litellm_cache_hits_metric'),
      misses: await counter('litellm_cache_misses_metric'),
      tokens: await counter('litellm_cached_tokens_metric'),
    };
    const m = randomUUID();
    const a = await chat(client, ask(m));
    await chat(client, ask(m));
    await chat(client, ask(m));
    assert.equal(calls(m), 1);
    // A request is counted in its `finish` phase, after its answer went out: wait for the
    // third one to show (bounded), then check every figure exactly.
    const deadline = Date.now() + 10_000 * SLOW;
    while (await counter('litellm_cache_hits_metric') - before.hits < 2 && Date.now() < deadline) await delay(20);
    assert.equal(await counter('litellm_cache_misses_metric') - before.misses, 1);
    assert.equal(await counter('litellm_cache_hits_metric') - before.hits, 2);
    assert.equal(await counter('litellm_cached_tokens_metric') - before.tokens, 2 * a.data.usage.total_tokens);
  });

  test('a streamed request after a non-streamed one is replayed as SSE, with usage when asked', async () => {
    const m = randomUUID();
    const a = await chat(client, ask(m));
    const s = await streamed(client, { ...ask(m), stream_options: { include_usage: true } });
    assert.equal(calls(m), 1);
    assert.equal(s.content, a.data.choices[0].message.content);
    assert.equal(s.id, a.data.id);
    assert.equal(s.usage?.total_tokens, a.data.usage.total_tokens);
    const plain = await streamed(client, ask(m));
    assert.equal(plain.usage, null);
    assert.equal(plain.content, a.data.choices[0].message.content);
    assert.equal(calls(m), 1);
  });

  test('a replayed stream has the chunk shape of the relayed one: logprobs and usage null where OpenAI sends them', async () => {
    // The members each chunk carries, at the top and in each choice (values aside).
    const shape = (text) => sseData(text).filter((d) => d !== '[DONE]').map((d) => {
      const c = JSON.parse(d);
      return { top: Object.keys(c).sort(), choices: c.choices.map((ch) => Object.keys(ch).sort()) };
    });
    const members = (chunks) => ({
      top: [...new Set(chunks.flatMap((c) => c.top))].sort(),
      choice: [...new Set(chunks.flatMap((c) => c.choices.flat()))].sort(),
    });
    for (const includeUsage of [true, false]) {
      const m = randomUUID();
      const body = { ...ask(m), stream: true, ...(includeUsage ? { stream_options: { include_usage: true } } : {}) };
      const miss = await call(gw, CHAT, { body });
      assert.equal(miss.status, 200, miss.text);
      const hit = await call(gw, CHAT, { body });
      assert.equal(hit.status, 200, hit.text);
      assert.equal(calls(m), 1, 'the second stream is a hit');
      const relayed = shape(miss.text);
      const replayed = shape(hit.text);
      // Every choice of every chunk names its logprobs (null), the finish chunk's too.
      for (const c of replayed) for (const ch of c.choices) assert.ok(ch.includes('logprobs'), hit.text);
      // With include_usage, every chunk carries `usage` (null before the last one), as
      // OpenAI's do; without, none does.
      for (const c of replayed) assert.equal(c.top.includes('usage'), includeUsage, hit.text);
      assert.deepEqual(members(replayed), members(relayed), `relayed:\n${miss.text}\nreplayed:\n${hit.text}`);
      // The first delta has OpenAI's members: role, content and refusal (null).
      const firstDelta = (text) => JSON.parse(sseData(text)[0]).choices[0].delta;
      assert.deepEqual(Object.keys(firstDelta(hit.text)).sort(), Object.keys(firstDelta(miss.text)).sort(), hit.text);
      assert.equal(firstDelta(hit.text).refusal, null);
      // The official SDK still reads the replay.
      const s = await streamed(client, body);
      assert.equal(calls(m), 1);
      assert.equal(s.content, `question ${m}`);
      if (includeUsage) assert.ok(s.usage?.total_tokens > 0, JSON.stringify(s));
      else assert.equal(s.usage, null);
    }
  });

  test('Gemini grounding: a non-streamed hit keeps the vertex_ai_* lists and annotations, a replayed stream only the usage', async () => {
    const m = randomUUID();
    const body = { model: 'gem', messages: [{ role: 'user', content: `who won ${m}` }], temperature: 0,
                   tools: [{ googleSearch: {} }] };
    const gemCalls = () => fake.requests().filter((r) => r.provider === 'gemini' && JSON.stringify(r.body).includes(m)).length;
    const a = await chat(client, body);
    assert.equal(a.data.choices[0].message.annotations.length, 2);
    const b = await chat(client, body);
    assert.equal(gemCalls(), 1, 'the second request is a hit');
    assert.equal(b.data.id, a.data.id);
    for (const k of ['vertex_ai_grounding_metadata', 'vertex_ai_safety_results', 'vertex_ai_citation_metadata',
                     'vertex_ai_url_context_metadata']) {
      assert.deepEqual(b.data[k], a.data[k], k);
    }
    assert.deepEqual(b.data.choices[0].message.annotations, a.data.choices[0].message.annotations);
    assert.equal(b.data.usage.prompt_tokens_details.web_search_requests, 1);
    // Replayed as a stream: the replay writes OpenAI's members, so neither the lists nor
    // the annotations (docs/cache.md); the usage is the stored one, with its count.
    const s = await client.chat.completions.create({ ...body, stream: true, stream_options: { include_usage: true } });
    let text = '';
    let usage = null;
    for await (const chunk of s) {
      assert.equal(chunk.vertex_ai_grounding_metadata, undefined);
      for (const c of chunk.choices) {
        text += c.delta?.content ?? '';
        assert.equal(c.delta?.annotations, undefined);
      }
      usage = chunk.usage ?? usage;
    }
    assert.equal(gemCalls(), 1);
    assert.equal(text, a.data.choices[0].message.content);
    assert.equal(usage.prompt_tokens_details.web_search_requests, 1);
  });

  test('a streamed answer is stored once it ended, and serves a non-streamed request', async () => {
    const m = randomUUID();
    const s = await streamed(client, ask(m));
    const b = await chat(client, ask(m));
    assert.equal(calls(m), 1);
    assert.equal(b.data.choices[0].message.content, s.content);
    assert.equal(b.data.object, 'chat.completion');
    assert.ok(b.data.usage.total_tokens > 0, 'the stored answer carries the usage the provider reported');
  });

  test('a stream cut by the provider is not stored', async () => {
    const m = randomUUID();
    fake.script([{ match: { path: CHAT }, chunks: 6, cut_after_chunks: 2 }]);
    // No retry: the cut stream is the only provider call before the next request.
    await assert.rejects(streamed(client, ask(m, { num_retries: 0 })));
    assert.equal(calls(m), 1);
    await chat(client, ask(m));
    assert.equal(calls(m), 2);
  });

  test('no-cache skips the lookup but stores; no-store does not store', async () => {
    const m = randomUUID();
    const a = await chat(client, ask(m));
    const fresh = await chat(client, ask(m, { cache: { 'no-cache': true } }));
    assert.equal(calls(m), 2);
    assert.notEqual(fresh.data.id, a.data.id);
    const after = await chat(client, ask(m));
    assert.equal(after.data.id, fresh.data.id, 'the no-cache answer replaced the entry');
    assert.equal(calls(m), 2);

    const n = randomUUID();
    await chat(client, ask(n, { cache: { 'no-store': true } }));
    await chat(client, ask(n));
    assert.equal(calls(n), 2, 'nothing was stored by the no-store request');
    await chat(client, ask(n));
    assert.equal(calls(n), 2);
  });

  test('ttl: the entry expires after its own ttl', async () => {
    const m = randomUUID();
    await chat(client, ask(m, { cache: { ttl: 1 } }));
    await chat(client, ask(m));
    assert.equal(calls(m), 1, 'a hit within the ttl');
    const deadline = Date.now() + 15_000 * SLOW;
    while (calls(m) === 1) {
      assert.ok(Date.now() < deadline, 'the entry never expired');
      await delay(100);
      await chat(client, ask(m));
    }
    assert.equal(calls(m), 2);
  });

  test('s-maxage: only entries young enough are accepted', async () => {
    const m = randomUUID();
    await chat(client, ask(m));
    await chat(client, ask(m, { cache: { 's-maxage': 600 } }));
    assert.equal(calls(m), 1);
    const deadline = Date.now() + 15_000 * SLOW;
    while (calls(m) === 1) {
      assert.ok(Date.now() < deadline, 's-maxage never refused the entry');
      await delay(100);
      await chat(client, ask(m, { cache: { 's-maxage': 1 } }));
    }
    assert.equal(calls(m), 2);
  });

  test('ttl and s-maxage beyond any horizon mean "keep" and "any age", not "nothing"', async () => {
    // 1e308 seconds overflowed the milliseconds: the answer was not stored, or no entry
    // was young enough.
    const m = randomUUID();
    await chat(client, ask(m, { cache: { ttl: 1e308 } }));
    await chat(client, ask(m));
    assert.equal(calls(m), 1, 'stored with a ttl of 1e308 s');
    await chat(client, ask(m, { cache: { 's-maxage': 1e308 } }));
    assert.equal(calls(m), 1, 'accepted with an s-maxage of 1e308 s');
  });

  test('namespace: entries of another namespace are not seen', async () => {
    const m = randomUUID();
    const a = await chat(client, ask(m));
    const b = await chat(client, ask(m, { cache: { namespace: `${NS}-other` } }));
    assert.equal(calls(m), 2);
    assert.ok(b.key.startsWith(`${NS}-other:`), b.key);
    assert.equal(b.key.split(':')[1], a.key.split(':')[1], 'the same hash under another prefix');
    await chat(client, ask(m, { cache: { namespace: `${NS}-other` } }));
    assert.equal(calls(m), 2);
  });

  test('a different temperature (or n, or any answer-changing param) misses', async () => {
    const m = randomUUID();
    await chat(client, ask(m));
    await chat(client, ask(m, { temperature: 0.7 }));
    await chat(client, ask(m, { n: 2 }));
    await chat(client, ask(m, { max_tokens: 5 }));
    assert.equal(calls(m), 4);
    // Non-zero temperatures and n > 1 are cached like the rest (as LiteLLM does).
    await chat(client, ask(m, { temperature: 0.7 }));
    await chat(client, ask(m, { n: 2 }));
    assert.equal(calls(m), 4);
  });

  test('embeddings are cached per input item: only the items not cached reach the provider', async () => {
    const m = randomUUID();
    const [a, b, c] = ['a', 'b', 'c'].map((x) => `${x} ${m}`);
    const sent = () => fake.requests({ path: '/v1/embeddings' }).filter((r) => JSON.stringify(r.body).includes(m));
    const first = await client.embeddings.create({ model: 'gpt', input: [a, b] });
    assert.equal(sent().length, 1);
    assert.deepEqual(sent()[0].body.input, [a, b]);
    // b and a cached (the memory tier holds them once the answer is sent): c only is sent,
    // and the answer has the three in the request's order.
    const second = await client.embeddings.create({ model: 'gpt', input: [b, c, a] });
    assert.equal(sent().length, 2);
    assert.deepEqual(sent()[1].body.input, [c]);
    assert.deepEqual(second.data.map((d) => d.index), [0, 1, 2]);
    assert.deepEqual(second.data[0].embedding, first.data[1].embedding);
    assert.deepEqual(second.data[2].embedding, first.data[0].embedding);
    assert.notDeepEqual(second.data[1].embedding, first.data[0].embedding);
    // c was sent: the usage is its count plus the cached items' (b's and a's shares of the
    // first answer's count).
    const cTokens = sent()[1].reply.usage.prompt_tokens;
    assert.ok(cTokens > 0);
    assert.equal(second.usage.prompt_tokens, cTokens + first.usage.prompt_tokens, JSON.stringify(second.usage));
    // Every item cached: no provider call, no cost; the usage counts the items (c's whole
    // count, sent alone, and a's share of the first answer's).
    const { data: third, response } = await client.embeddings.create({ model: 'gpt', input: [c, a] }).withResponse();
    assert.equal(sent().length, 2);
    assert.deepEqual(third.data[0].embedding, second.data[1].embedding);
    assert.deepEqual(third.data[1].embedding, first.data[0].embedding);
    assert.ok(third.usage.prompt_tokens >= cTokens, JSON.stringify(third.usage));
    assert.ok(third.usage.prompt_tokens <= cTokens + first.usage.prompt_tokens, JSON.stringify(third.usage));
    assert.equal(response.headers.get('x-litellm-response-cost'), '0');
    // Another encoding is another entry: floats are asked for all three, in one call.
    const floats = await client.embeddings.create({ model: 'gpt', input: [a, b, c], encoding_format: 'float' });
    assert.equal(sent().length, 3);
    assert.deepEqual(sent()[2].body.input, [a, b, c]);
    const again = await client.embeddings.create({ model: 'gpt', input: [c, b], encoding_format: 'float' });
    assert.equal(sent().length, 3);
    assert.deepEqual(again.data[0].embedding, floats.data[2].embedding);
    assert.deepEqual(again.data[1].embedding, floats.data[1].embedding);
    // no-cache: every item is sent (and stored again).
    await client.embeddings.create({ model: 'gpt', input: [a, b], cache: { 'no-cache': true } });
    assert.equal(sent().length, 4);
    assert.deepEqual(sent()[3].body.input, [a, b]);
    // /cache/delete of a list's x-litellm-cache-key removes its items (the list's key holds
    // their keys): asked again, both are sent.
    const { response: listed } = await client.embeddings.create({ model: 'gpt', input: [a, b] }).withResponse();
    assert.equal(sent().length, 4, 'a full hit');
    const key = listed.headers.get('x-litellm-cache-key');
    await waitForRedisKey(redis, key);  // written after the items, on the same connection
    const del = await call(gw, '/cache/delete', { body: { keys: [key] } });
    assert.equal(del.status, 200, del.text);
    assert.ok(del.json.deleted >= 3, del.text);
    await client.embeddings.create({ model: 'gpt', input: [a, b] });
    assert.equal(sent().length, 5);
    assert.deepEqual(sent()[4].body.input, [a, b]);
  });

  test('an embeddings answer names the provider model whether every item, some or none was cached', async () => {
    const m = randomUUID();
    const [a, b, c] = ['a', 'b', 'c'].map((x) => `${x} ${m}`);
    const miss = await client.embeddings.create({ model: 'gpt', input: [a, b] });
    // The deployment's model as the provider names it, not the group the client asked for.
    assert.equal(miss.model, 'gpt-4o');
    const partial = await client.embeddings.create({ model: 'gpt', input: [b, c] });
    assert.equal(partial.model, miss.model);
    const full = await client.embeddings.create({ model: 'gpt', input: [c, a] });
    assert.equal(full.model, miss.model);
    // Every item cached: the usage counts them (as LiteLLM's does); the same request made
    // again from the cache reports its miss's count.
    assert.ok(full.usage.prompt_tokens > 0, JSON.stringify(full.usage));
    assert.equal(full.usage.total_tokens, full.usage.prompt_tokens);
    const { data: again, response } = await client.embeddings.create({ model: 'gpt', input: [a, b] }).withResponse();
    assert.equal(again.usage.prompt_tokens, miss.usage.prompt_tokens, JSON.stringify({ again: again.usage, miss: miss.usage }));
    assert.equal(response.headers.get('x-litellm-response-cost'), '0', 'a hit costs nothing');
  });

  test('a partial embeddings hit counts its cached items too; only the items sent are billed', async () => {
    const m = randomUUID();
    const [a, b, c] = ['a', 'b', 'c'].map((x) => `${x} ${m}`);
    const sent = () => fake.requests({ path: '/v1/embeddings' }).filter((r) => JSON.stringify(r.body).includes(m));
    const miss = await client.embeddings.create({ model: 'gpt', input: [a, b] });
    const { data: partial, response } = await client.embeddings.create({ model: 'gpt', input: [a, c, b] }).withResponse();
    assert.equal(sent().length, 2);
    assert.deepEqual(sent()[1].body.input, [c]);
    const provider = sent()[1].reply.usage.prompt_tokens;
    assert.ok(provider > 0);
    // a's and b's stored shares add up to the miss's count; c's count is the provider's.
    assert.equal(partial.usage.prompt_tokens, provider + miss.usage.prompt_tokens, JSON.stringify(partial.usage));
    assert.equal(partial.usage.total_tokens, partial.usage.prompt_tokens);
    // Billed: the provider's count only (gpt-4o's input price).
    const cost = Number(response.headers.get('x-litellm-response-cost'));
    assert.ok(Math.abs(cost - provider * 2.5e-6) < 1e-12, `cost ${cost} for ${provider} tokens sent`);
    // The same request wholly from the cache reports what the partial hit did (c stored
    // its share of the provider's count, not of the merged one).
    const again = await client.embeddings.create({ model: 'gpt', input: [a, c, b] });
    assert.equal(sent().length, 2, 'a full hit');
    assert.equal(again.usage.prompt_tokens, partial.usage.prompt_tokens, JSON.stringify(again.usage));
  });

  test('bad cache controls are a 400', async () => {
    const r = await call(gw, CHAT, { body: ask(randomUUID(), { cache: { ttl: 'soon' } }) });
    assert.equal(r.status, 400, r.text);
    assert.equal(r.json.error.param, 'cache');
    const r2 = await call(gw, CHAT, { body: ask(randomUUID(), { cache: 'yes' }) });
    assert.equal(r2.status, 400, r2.text);
  });

  test('/cache/ping, /cache/delete and /cache/flushall', async () => {
    const ping = await call(gw, '/cache/ping', { method: 'GET' });
    assert.equal(ping.status, 200, ping.text);
    assert.equal(ping.json.cache_type, 'redis');
    assert.ok(ping.json.counters.memory_hits > 0);
    const m = randomUUID();
    const a = await chat(client, ask(m));
    await waitForRedisKey(redis, a.key);
    const del = await call(gw, '/cache/delete', { body: { keys: [a.key] } });
    assert.equal(del.status, 200, del.text);
    assert.equal(redisCli(redis, 'EXISTS', `switchyard:cache:${a.key}`), '0');
    await chat(client, ask(m));
    assert.equal(calls(m), 2);
    const bad = await call(gw, '/cache/delete', { body: { keys: 'x' } });
    assert.equal(bad.status, 400, bad.text);
    const noKey = await call(gw, '/cache/flushall', { key: null });
    assert.equal(noKey.status, 401, noKey.text);
    const flush = await call(gw, '/cache/flushall', {});
    assert.equal(flush.status, 200, flush.text);
    await chat(client, ask(m));
    assert.equal(calls(m), 3);
  });

  test('50 concurrent identical requests on a cold cache reach the provider once', async () => {
    const m = randomUUID();
    fake.script([{ match: { path: CHAT }, delay_ms: 500, times: 1 }]);
    const rs = await Promise.all(Array.from({ length: 50 }, () => chat(client, ask(m))));
    assert.equal(calls(m), 1);
    for (const r of rs) assert.equal(r.data.id, rs[0].data.id);
    // Streams follow a leader too.
    const n = randomUUID();
    fake.script([{ match: { path: CHAT }, delay_ms: 500, times: 1 }]);
    const ss = await Promise.all(Array.from({ length: 20 }, () => streamed(client, ask(n))));
    assert.equal(calls(n), 1);
    for (const s of ss) assert.equal(s.content, `question ${n}`);
  });

  test('without a memory tier, followers get the answer their leader found in Redis or stored', async () => {
    // Redis only (memory tier 0 MB): the followers of a request still in flight have no
    // tier to look in when it lands; the leader hands its answer over.
    const noMemory = await startGateway({
      config: cacheConfig({ type: 'redis', host: redis.host, port: redis.port, namespace: NS }),
      env: { SWITCHYARD_CACHE_REDIS_TIMEOUT_MS: 2000, SWITCHYARD_CACHE_MEMORY_MB: 0 },
    });
    const c = clientOf(noMemory);
    const m = randomUUID();
    // The leader's provider call lasts until every request has arrived, loaded machine or not.
    fake.script([{ match: { path: CHAT }, delay_ms: 2000 * SLOW, times: 1 }]);
    const cold = await Promise.all(Array.from({ length: 20 }, () => chat(c, ask(m))));
    assert.equal(calls(m), 1, 'a cold cache: one provider call for the 20');
    for (const r of cold) assert.equal(r.data.id, cold[0].data.id);
    await waitForRedisKey(redis, cold[0].key);
    // Warm: every request looks Redis up or follows one that does; none reaches the provider.
    for (let round = 0; round < 3; ++round) {
      const warm = await Promise.all(Array.from({ length: 20 }, () => chat(c, ask(m))));
      for (const r of warm) assert.equal(r.data.id, cold[0].data.id);
    }
    assert.equal(calls(m), 1, 'hits from Redis only');
  });

  test('a leader that fails lets the followers call the provider themselves', async () => {
    const m = randomUUID();
    fake.script([{ match: { path: CHAT }, delay_ms: 500, status: 400, error_message: 'bad leader', times: 1 }]);
    const rs = await Promise.allSettled(Array.from({ length: 50 }, () => chat(client, ask(m))));
    const ok = rs.filter((r) => r.status === 'fulfilled');
    const failed = rs.filter((r) => r.status === 'rejected');
    assert.equal(failed.length, 1, 'only the leader got the error');
    assert.equal(failed[0].reason.status, 400);
    assert.equal(ok.length, 49);
    assert.ok(calls(m) >= 2 && calls(m) <= 50, `${calls(m)} provider calls`);
  });

  test('two gateways share hits through Redis', async () => {
    // The second one without a memory tier: every hit of it comes from Redis.
    const gw2 = await startGateway({
      config: cacheConfig({ type: 'redis', host: redis.host, port: redis.port, namespace: NS }),
      env: { SWITCHYARD_CACHE_REDIS_TIMEOUT_MS: 2000, SWITCHYARD_CACHE_MEMORY_MB: 0 },
    });
    const m = randomUUID();
    const a = await chat(client, ask(m));
    await waitForRedisKey(redis, a.key);
    const b = await chat(clientOf(gw2), ask(m));
    const c = await chat(clientOf(gw2), ask(m));
    assert.equal(calls(m), 1);
    assert.equal(b.data.id, a.data.id);
    assert.equal(c.data.id, a.data.id);
    assert.equal(b.key, a.key);
    const ping = await call(gw2, '/cache/ping', { method: 'GET' });
    assert.equal(ping.json.counters.memory_max_bytes, 0);
    assert.equal(ping.json.counters.memory_entries, 0);
    assert.equal(ping.json.counters.redis_hits, 2);
    await gw2.stop();
  });

  test('type local works with no Redis at all', async () => {
    const gw3 = await startGateway({ config: cacheConfig({ type: 'local' }) });
    const c = clientOf(gw3);
    const m = randomUUID();
    const a = await chat(c, ask(m));
    const b = await chat(c, ask(m));
    assert.equal(calls(m), 1);
    assert.equal(b.data.id, a.data.id);
    assert.match(a.key, /^[0-9a-f]{64}$/);
    const ping = await call(gw3, '/cache/ping', { method: 'GET' });
    assert.equal(ping.json.cache_type, 'local');
    // Readiness names the cache's type, as LiteLLM's does.
    const ready = await call(gw3, '/health/readiness', { method: 'GET' });
    assert.equal(ready.json.cache, 'local', ready.text);
    assert.doesNotMatch(gw3.stderr(), /redis/i);
    await gw3.stop();
  });

  test('an unsupported type: one warning at start, caching off', async () => {
    const gw4 = await startGateway({ config: cacheConfig({ type: 's3', s3_bucket_name: 'b' }) });
    assert.match(gw4.stderr(), /cache type "s3" is not supported .*caching is OFF/);
    const c = clientOf(gw4);
    const m = randomUUID();
    const a = await chat(c, ask(m));
    await chat(c, ask(m));
    assert.equal(calls(m), 2);
    assert.equal(a.key, null, 'no x-litellm-cache-key when caching is off');
    const ping = await call(gw4, '/cache/ping', { method: 'GET' });
    assert.equal(ping.status, 503, ping.text);
    const ready = await call(gw4, '/health/readiness', { method: 'GET' });
    assert.equal(ready.json.cache, null, ready.text);
    await gw4.stop();
  });
});

describe('response cache: cache_params TTL defaults per tier and socket_timeout', { skip, timeout: 600_000 }, () => {
  let server;  // a private Redis this block pauses
  before(async () => {
    fake = await startFakeProvider();
    fake.setDefaults({ echo: true });
    const u = new URL(REDIS_URL);
    redis = { host: u.hostname, port: Number(u.port) };
    server = await startPrivateRedis();
  });
  after(async () => {
    server?.proc.kill('SIGCONT');
    await server?.kill();
    await stopAll();
    await fake?.close();
  });

  test('default_in_redis_ttl is the TTL of what type redis writes, in place of ttl', async () => {
    const gw = await startGateway({
      config: cacheConfig({ type: 'redis', host: redis.host, port: redis.port, namespace: NS, ttl: 600, default_in_redis_ttl: 30 }),
    });
    assert.doesNotMatch(gw.stderr(), /default_in_redis_ttl/);
    const m = randomUUID();
    const a = await chat(clientOf(gw), ask(m));
    await waitForRedisKey(redis, a.key);
    const pttl = Number(redisCli(redis, 'PTTL', `switchyard:cache:${a.key}`));
    assert.ok(pttl > 0 && pttl <= 30_000, `PTTL ${pttl} ms`);
    // The request's own ttl still wins.
    const m2 = randomUUID();
    const b = await chat(clientOf(gw), ask(m2, { cache: { ttl: 120 } }));
    await waitForRedisKey(redis, b.key);
    assert.ok(Number(redisCli(redis, 'PTTL', `switchyard:cache:${b.key}`)) > 30_000);
    await gw.stop();
  });

  test('default_in_memory_ttl is the TTL of what type local stores, in place of ttl', async () => {
    const gw = await startGateway({ config: cacheConfig({ type: 'local', ttl: 600, default_in_memory_ttl: 1 }) });
    assert.doesNotMatch(gw.stderr(), /default_in_memory_ttl/);
    const client = clientOf(gw);
    const m = randomUUID();
    await chat(client, ask(m));
    const deadline = Date.now() + 15_000 * SLOW;
    while (calls(m) === 1) {
      assert.ok(Date.now() < deadline, 'the entry outlived default_in_memory_ttl');
      await delay(100);
      await chat(client, ask(m));
    }
    assert.equal(calls(m), 2);
    await gw.stop();
  });

  test('under type redis, default_in_memory_ttl bounds how long the memory tier keeps a copy', async () => {
    const gw = await startGateway({
      config: cacheConfig({ type: 'redis', host: redis.host, port: redis.port, namespace: NS, ttl: 600, default_in_memory_ttl: 1 }),
      env: { SWITCHYARD_CACHE_REDIS_TIMEOUT_MS: 2000 },
    });
    const client = clientOf(gw);
    const m = randomUUID();
    const a = await chat(client, ask(m));
    await waitForRedisKey(redis, a.key);
    await chat(client, ask(m));  // read back from Redis: copied into the memory tier
    assert.equal(calls(m), 1);
    // Gone from Redis (as a /cache/delete on another instance does): this instance's copy
    // stops answering once default_in_memory_ttl has passed.
    redisCli(redis, 'DEL', `switchyard:cache:${a.key}`);
    const deadline = Date.now() + 15_000 * SLOW;
    while (calls(m) === 1) {
      assert.ok(Date.now() < deadline, 'the memory copy outlived default_in_memory_ttl');
      await delay(100);
      await chat(client, ask(m));
    }
    await gw.stop();
  });

  test('socket_timeout is how long a lookup waits on Redis (no unknown-key warning)', async () => {
    const gw = await startGateway({
      config: cacheConfig({ type: 'redis', host: '127.0.0.1', port: server.port, namespace: NS, socket_timeout: 1.5 }),
    });
    assert.doesNotMatch(gw.stderr(), /socket_timeout/);
    await gw.proc.waitForStderr(/redis connected/, 15_000 * SLOW);
    const client = clientOf(gw);
    await chat(client, ask(randomUUID()));  // the connection is up and used
    server.proc.kill('SIGSTOP');  // connected, answering nothing
    try {
      const t0 = performance.now();
      const m = randomUUID();
      const r = await chat(client, ask(m));
      const ms = performance.now() - t0;
      assert.equal(r.data.choices[0].message.content, `question ${m}`);
      // The lookup waited its 1.5 s before the miss (the default is 5 ms).
      assert.ok(ms >= 1400, `answered after ${ms.toFixed(0)} ms`);
    } finally {
      server.proc.kill('SIGCONT');
    }
    await gw.stop();
  });
});

describe('response cache: the memory tier stays within its bound', { skip, timeout: 600_000 }, () => {
  after(async () => {
    await stopAll();
    await fake?.close();
  });
  test('distinct 100 KB answers: the tier holds at most its bound; RSS printed', async () => {
    fake = await startFakeProvider();
    const big = 'x'.repeat(100 * 1024);
    fake.setDefaults({ content: big, chunks: 1 });
    // Under ASan, freed blocks sit in its quarantine (256 MB by default) and would swamp the
    // RSS figure: keep it small for this gateway.
    const asan = [process.env.ASAN_OPTIONS, 'quarantine_size_mb=4', 'thread_local_quarantine_size_kb=256'].filter(Boolean).join(':');
    const gw = await startGateway({ config: cacheConfig({ type: 'local' }), env: { SWITCHYARD_CACHE_MEMORY_MB: 8, ASAN_OPTIONS: asan } });
    const rss = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${gw.proc.pid}/status`, 'utf8'))[1]);
    const c = clientOf(gw);
    const rssStart = rss();
    let rssAt100 = 0;
    for (let i = 0; i < 400; ++i) {
      const r = await chat(c, ask(`${randomUUID()} ${i}`));
      assert.equal(r.data.choices[0].message.content.length, big.length);
      if (i === 99) rssAt100 = rss();
    }
    const ping = await call(gw, '/cache/ping', { method: 'GET' });
    const k = ping.json.counters;
    console.log(`400 distinct 100 KB answers, bound 8 MB: tier ${(k.memory_bytes / 1048576).toFixed(2)} MB in ` +
                `${k.memory_entries} entries, ${k.memory_evictions} evictions; RSS ${rssStart} KB at start, ` +
                `${rssAt100} KB after 100, ${rss()} KB after 400`);
    assert.ok(k.memory_bytes <= 8 * 1048576, `memory tier ${k.memory_bytes} bytes`);
    assert.ok(k.memory_entries >= 60 && k.memory_entries <= 90, `${k.memory_entries} entries`);
    assert.equal(k.memory_evictions, 400 - k.memory_entries);
  });
});

describe('response cache: Redis killed during a load', { skip, timeout: 600_000 }, () => {
  let port;
  let server;
  let dir;  // where SAVE writes the snapshot a restart loads
  const start = async () => {
    server = await startPrivateRedis({ port, args: ['--dir', dir] });
  };
  const kill = () => server.kill();
  before(async () => {
    fake = await startFakeProvider();
    fake.setDefaults({ echo: true });
    port = await freePort();
    dir = mkdtempSync(path.join(tmpdir(), 'switchyard-cache-redis-'));
    await start();
  });
  after(async () => {
    if (server) await kill();
    await stopAll();
    await fake?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('no failed request while Redis is gone; hits through Redis resume after its restart', async () => {
    const cfg = cacheConfig({ type: 'redis', host: '127.0.0.1', port, namespace: NS });
    const a = await startGateway({ config: cfg });
    // b looks Redis up with a generous timeout: its hits must not depend on the machine's load.
    const b = await startGateway({ config: cfg, env: { SWITCHYARD_CACHE_REDIS_TIMEOUT_MS: 1000 } });
    await a.proc.waitForStderr(/redis connected/, 15_000 * SLOW);
    await b.proc.waitForStderr(/redis connected/, 15_000 * SLOW);
    const ca = clientOf(a);
    const prompts = Array.from({ length: 20 }, () => randomUUID());
    let failures = 0;
    let done = 0;
    let stop = false;
    let redisUp = true;
    const ms = { up: [], down: [] };  // latencies with Redis up / killed (printed, not asserted)
    const worker = async (i) => {
      while (!stop) {
        try {
          const t0 = performance.now();
          await chat(ca, ask(prompts[(i + done) % prompts.length]));
          (redisUp ? ms.up : ms.down).push(performance.now() - t0);
        } catch (e) {
          failures += 1;
          console.log(`failed: ${e.status} ${e.message}`);
        }
        done += 1;
      }
    };
    const workers = Array.from({ length: 16 }, (_, i) => worker(i));
    const waitDone = async (n) => {
      const deadline = Date.now() + 60_000 * SLOW;
      while (done < n) {
        assert.ok(Date.now() < deadline, `only ${done} requests done`);
        await delay(20);
      }
    };
    await waitDone(300);
    await kill();
    redisUp = false;
    const atKill = done;
    await waitDone(atKill + 600);
    stop = true;
    await Promise.all(workers);
    const p = (xs, q) => xs.sort((x, y) => x - y)[Math.min(xs.length - 1, Math.floor(q * xs.length))]?.toFixed(1);
    console.log(`redis killed after ${atKill} of ${done} requests; ${failures} failed; ` +
                `p50/p99 ms with redis ${p(ms.up, 0.5)}/${p(ms.up, 0.99)}, killed ${p(ms.down, 0.5)}/${p(ms.down, 0.99)}`);
    assert.equal(failures, 0);

    await start();
    // Both gateways reconnect by themselves; an entry written by one is then a hit on the other.
    const deadline = Date.now() + 30_000 * SLOW;
    for (let round = 0; ; ++round) {
      const m = randomUUID();
      const first = await chat(ca, ask(m));
      try {
        await waitForRedisKey({ host: '127.0.0.1', port }, first.key, 2000 * SLOW);
      } catch {
        assert.ok(Date.now() < deadline, 'the gateway never wrote to the restarted redis');
        continue;
      }
      const second = await chat(clientOf(b), ask(m));
      if (calls(m) === 1) {
        assert.equal(second.data.id, first.data.id);
        break;
      }
      assert.ok(Date.now() < deadline, 'no hit through the restarted redis');
    }
  });

  // A gateway on this Redis with one answer cached (`readBack`: also read back once, so
  // that the memory tier holds it too), then Redis saved and killed.
  const cachedThenKilled = async ({ readBack = false } = {}) => {
    const r = { host: '127.0.0.1', port };
    const gw = await startGateway({
      config: cacheConfig({ type: 'redis', host: r.host, port, namespace: NS }),
      env: { SWITCHYARD_CACHE_REDIS_TIMEOUT_MS: 2000 },
    });
    await gw.proc.waitForStderr(/redis connected/, 15_000 * SLOW);
    const client = clientOf(gw);
    const m = randomUUID();
    const a = await chat(client, ask(m));
    await waitForRedisKey(r, a.key);
    if (readBack) {
      await chat(client, ask(m));  // read back from Redis: now in the memory tier too
      assert.equal(calls(m), 1);
    }
    redisCli(r, 'SAVE');  // the entry survives the kill below, as on a Redis with persistence
    await kill();
    return { r, gw, client, m, a };
  };

  test('/cache/flushall while Redis is down flushes nothing and says so (503); back, it flushes both tiers', async () => {
    const { r, gw, client, m, a } = await cachedThenKilled({ readBack: true });
    const flush = await call(gw, '/cache/flushall', {});
    assert.equal(flush.status, 503, flush.text);
    assert.deepEqual(openaiErrorProblems(flush.json, 503), []);
    assert.match(flush.json.error.message, /^Service Unhealthy \(/, flush.text);
    assert.match(flush.json.error.message, /nothing was flushed/, flush.text);
    // Nothing flushed: the memory tier still answers.
    const again = await chat(client, ask(m));
    assert.equal(calls(m), 1, 'the memory tier was flushed although the caller was told it failed');
    assert.equal(again.data.id, a.data.id);
    await start();
    const deadline = Date.now() + 30_000 * SLOW;
    for (;;) {
      const ok = await call(gw, '/cache/flushall', {});
      if (ok.status === 200) {
        assert.equal(ok.json.status, 'success', ok.text);
        break;
      }
      assert.equal(ok.status, 503, ok.text);  // not reconnected yet
      assert.ok(Date.now() < deadline, 'the gateway never reconnected to the restarted redis');
      await delay(50);
    }
    assert.equal(redisCli(r, 'EXISTS', `switchyard:cache:${a.key}`), '0');
    await chat(client, ask(m));
    assert.equal(calls(m), 2, 'both tiers flushed');
  });

  test('/cache/delete while Redis is down is a 500, not a success: the entry is still there when Redis is back', async () => {
    const { r, gw, a } = await cachedThenKilled();
    const del = await call(gw, '/cache/delete', { body: { keys: [a.key] } });
    assert.equal(del.status, 500, del.text);
    assert.match(del.json.error.message, /^Cache Delete Failed\(/, del.text);
    await start();
    assert.equal(redisCli(r, 'EXISTS', `switchyard:cache:${a.key}`), '1');
    // The caller was told; now the delete goes through.
    const deadline = Date.now() + 30_000 * SLOW;
    for (;;) {
      const again = await call(gw, '/cache/delete', { body: { keys: [a.key] } });
      if (again.status === 200) {
        assert.equal(again.json.deleted, 1, again.text);
        break;
      }
      assert.equal(again.status, 500, again.text);  // not reconnected yet
      assert.ok(Date.now() < deadline, 'the gateway never reconnected to the restarted redis');
      await delay(50);
    }
    assert.equal(redisCli(r, 'EXISTS', `switchyard:cache:${a.key}`), '0');
  });
});
