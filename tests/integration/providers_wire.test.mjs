// Provider wire formats through the real binary (parameters, errors, response headers,
// /v1/models): the upstream requests the fake provider records
// match each provider's documented format and never carry the client's key; embeddings for
// OpenAI, Azure and Ollama; /v1/completions on a chat-only provider; parameters a provider
// cannot take; upstream errors keep their status; LiteLLM's response headers; model aliases.
import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import OpenAI from 'openai';

import { startFakeProvider } from '../fake_provider/server.mjs';
import {
  MASTER_KEY, assembleChat, call, openaiErrorProblems, sseData, startGateway, stopAll, streamTimed,
} from '../lib/gateway.mjs';

let fake;
let gw;        // drop_params off in the config
let gwDrop;    // litellm_settings.drop_params: true
let client;

const KEYS = {
  openai: 'sk-upstream-openai-5b1c',
  azure: 'azure-upstream-key-77d0',
  anthropic: 'sk-ant-upstream-a9e4',
};

// Upstream errors are scripted on purpose here: no retries, no cooldowns, so each test sees
// exactly one upstream answer and a failing test never takes a group out for the next one.
const ISOLATE = { num_retries: 0, disable_cooldowns: true };

function modelList(fakeUrl) {
  return [
    { model_name: 'oai',
      litellm_params: { model: 'openai/gpt-x', api_base: `${fakeUrl}/v1`, api_key: KEYS.openai },
      model_info: { id: 'oai-deployment-1' } },
    { model_name: 'az',
      litellm_params: { model: 'azure/az-chat-dep', api_base: fakeUrl, api_key: KEYS.azure, api_version: '2024-06-01' },
      model_info: { id: 'az-deployment-1' } },
    { model_name: 'claude',
      litellm_params: { model: 'anthropic/claude-3-5-sonnet-20241022', api_base: fakeUrl, api_key: KEYS.anthropic },
      model_info: { id: 'claude-deployment-1' } },
    { model_name: 'ollama-chat', litellm_params: { model: 'ollama_chat/llama3.1', api_base: fakeUrl } },
    { model_name: 'ollama-gen', litellm_params: { model: 'ollama/llama3.1', api_base: fakeUrl } },
    { model_name: 'oai-embed',
      litellm_params: { model: 'openai/text-embedding-3-small', api_base: `${fakeUrl}/v1`, api_key: KEYS.openai } },
    { model_name: 'az-embed',
      litellm_params: { model: 'azure/az-embed-dep', api_base: fakeUrl, api_key: KEYS.azure, api_version: '2024-06-01' } },
    { model_name: 'ollama-embed', litellm_params: { model: 'ollama/nomic-embed-text', api_base: fakeUrl } },
    // OpenAI's reasoning models (LiteLLM's o-series and gpt-5 handling).
    { model_name: 'o3-mini',
      litellm_params: { model: 'openai/o3-mini', api_base: `${fakeUrl}/v1`, api_key: KEYS.openai } },
    { model_name: 'gpt-5-mini',
      litellm_params: { model: 'openai/gpt-5-mini', api_base: `${fakeUrl}/v1`, api_key: KEYS.openai } },
    { model_name: 'gpt-5.1',
      litellm_params: { model: 'openai/gpt-5.1', api_base: `${fakeUrl}/v1`, api_key: KEYS.openai } },
    { model_name: 'gpt-5-search',
      litellm_params: { model: 'openai/gpt-5-search-api', api_base: `${fakeUrl}/v1`, api_key: KEYS.openai } },
    { model_name: 'gpt-4o-plain',
      litellm_params: { model: 'openai/gpt-4o', api_base: `${fakeUrl}/v1`, api_key: KEYS.openai } },
    { model_name: 'az-o-series',
      litellm_params: { model: 'azure/o_series/team-reasoner', api_base: fakeUrl, api_key: KEYS.azure,
                        api_version: '2025-01-01-preview', max_tokens: 300 } },
    { model_name: 'o1-mini-bare',
      litellm_params: { model: 'openai/o1-mini', api_base: `${fakeUrl}/v1`, api_key: KEYS.openai },
      model_info: { supports_system_messages: false, supports_function_calling: false } },
    // Request defaults (LiteLLM spreads the request over the deployment's params).
    { model_name: 'oai-defaults',
      litellm_params: { model: 'openai/gpt-x', api_base: `${fakeUrl}/v1`, api_key: KEYS.openai,
                        temperature: 0.3, top_p: 0.9, max_tokens: 77, seed: 5 } },
    { model_name: 'claude-defaults',
      litellm_params: { model: 'anthropic/claude-3-5-sonnet-20241022', api_base: fakeUrl, api_key: KEYS.anthropic,
                        temperature: 0.3, top_p: 0.9, max_tokens: 77 } },
    { model_name: 'cohere-defaults',
      litellm_params: { model: 'cohere/command-r-plus', api_base: fakeUrl, api_key: 'co-upstream',
                        temperature: 0.3, top_p: 0.9, max_tokens: 77, stop: ['###'],
                        additional_drop_params: ['logit_bias'] } },
    { model_name: 'az-gpt5-based',
      litellm_params: { model: 'azure/prod-chat', api_base: fakeUrl, api_key: KEYS.azure, api_version: '2025-01-01-preview' },
      model_info: { base_model: 'azure/gpt-5' } },
  ];
}

before(async () => {
  fake = await startFakeProvider();
  gw = await startGateway({
    config: {
      model_list: modelList(fake.url),
      router_settings: {
        ...ISOLATE,
        model_group_alias: { 'oai-alias': 'oai', 'secret-alias': { model: 'claude', hidden: true } },
      },
    },
  });
  gwDrop = await startGateway({
    config: { model_list: modelList(fake.url), litellm_settings: { drop_params: true }, router_settings: ISOLATE },
  });
  client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: MASTER_KEY, maxRetries: 0, timeout: 15_000 });
});
after(async () => {
  await stopAll();
  await fake?.close();
});
beforeEach(() => fake.reset());

const USER = [{ role: 'user', content: 'Say hello' }];
// The client authenticates with its key in every header a client might use for it.
const CLIENT_HEADERS = { 'x-api-key': MASTER_KEY, 'api-key': MASTER_KEY };

function only(path) {
  const recs = fake.requests();
  assert.equal(recs.length, 1, `expected one upstream request, got ${JSON.stringify(recs.map((r) => r.url))}`);
  if (path) assert.equal(recs[0].path, path, `upstream url ${recs[0].url}`);
  return recs[0];
}

// No header of the upstream request carries the client's key.
function assertNoClientKey(rec) {
  for (const [k, v] of Object.entries(rec.headers)) {
    assert.ok(!String(v).includes(MASTER_KEY), `upstream header ${k} carries the client's key: ${v}`);
  }
  assert.ok(!JSON.stringify(rec.body ?? rec.raw_body ?? '').includes(MASTER_KEY), 'upstream body carries the client key');
}

async function chat(model, body = {}, opts = {}) {
  const g = opts.gw ?? gw;
  return call(g, opts.path ?? '/v1/chat/completions', {
    body: { model, messages: USER, ...body }, headers: { ...CLIENT_HEADERS, ...(opts.headers ?? {}) },
  });
}

async function stream(model, body = {}, opts = {}) {
  return streamTimed(`${gw.url}${opts.path ?? '/v1/chat/completions'}`, {
    headers: { authorization: `Bearer ${MASTER_KEY}`, ...CLIENT_HEADERS },
    body: { model, messages: USER, stream: true, ...body },
    timeoutMs: 10_000,
  });
}

// ------------------------------------------------------------------ wire formats

describe('wire format: Anthropic Messages', () => {
  test('x-api-key = deployment key, anthropic-version, top-level system, max_tokens default, stop_sequences', async () => {
    const r = await chat('claude', {
      messages: [
        { role: 'system', content: 'You are a terse assistant.' },
        { role: 'user', content: 'Say hello' },
      ],
      stop: ['END', 'STOP'],
      temperature: 0.3,
    });
    assert.equal(r.status, 200, r.text);
    const rec = only('/v1/messages');
    assert.equal(rec.headers['x-api-key'], KEYS.anthropic);
    assert.ok(rec.headers['anthropic-version'], 'no anthropic-version header');
    assert.match(rec.headers['anthropic-version'], /^\d{4}-\d{2}-\d{2}$/);
    assert.equal(rec.headers.authorization, undefined, `authorization sent to Anthropic: ${rec.headers.authorization}`);
    const b = rec.body;
    assert.equal(b.model, 'claude-3-5-sonnet-20241022');
    const systemText = typeof b.system === 'string' ? b.system : (b.system ?? []).map((s) => s.text).join('');
    assert.equal(systemText, 'You are a terse assistant.');
    assert.ok(b.messages.every((m) => m.role !== 'system'), `system message left in messages: ${JSON.stringify(b.messages)}`);
    assert.equal(b.messages.length, 1);
    assert.equal(b.messages[0].role, 'user');
    assert.ok(Number.isInteger(b.max_tokens) && b.max_tokens > 0, `max_tokens: ${b.max_tokens}`);
    assert.deepEqual(b.stop_sequences, ['END', 'STOP']);
    assert.equal(b.stop, undefined);
    assert.equal(b.temperature, 0.3);
    assertNoClientKey(rec);
  });

  test('max_tokens from the client is kept; a string stop becomes a one-element stop_sequences', async () => {
    const r = await chat('claude', { max_tokens: 77, stop: 'END' });
    assert.equal(r.status, 200, r.text);
    const { body } = only('/v1/messages');
    assert.equal(body.max_tokens, 77);
    assert.deepEqual(body.stop_sequences, ['END']);
  });

  test('streaming: stream: true upstream, client key absent', async () => {
    const r = await stream('claude');
    assert.equal(r.status, 200, r.text);
    const rec = only('/v1/messages');
    assert.equal(rec.body.stream, true);
    assert.equal(rec.headers['x-api-key'], KEYS.anthropic);
    assertNoClientKey(rec);
    assert.equal(assembleChat(sseData(r.text)).text, rec.reply.content);
  });

  test('usage maps cache read / creation tokens', async () => {
    fake.script([{ usage: { prompt_tokens: 10, completion_tokens: 3, cache_read_input_tokens: 100, cache_creation_input_tokens: 50 } }]);
    const r = await chat('claude');
    assert.equal(r.status, 200, r.text);
    const u = r.json.usage;
    const cachedRead = u.prompt_tokens_details?.cached_tokens ?? u.cache_read_input_tokens;
    assert.equal(cachedRead, 100, `usage: ${JSON.stringify(u)}`);
    assert.equal(u.cache_creation_input_tokens, 50, `usage: ${JSON.stringify(u)}`);
    assert.equal(u.completion_tokens, 3);
    assert.equal(u.total_tokens, u.prompt_tokens + u.completion_tokens);
  });
});

describe('Anthropic mapping details', () => {
  const PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==';

  test('the client authenticating with x-api-key only: upstream x-api-key is the deployment key', async () => {
    const r = await call(gw, '/v1/chat/completions', {
      key: null, headers: { 'x-api-key': MASTER_KEY }, body: { model: 'claude', messages: USER },
    });
    assert.equal(r.status, 200, r.text);
    const rec = only('/v1/messages');
    assert.equal(rec.headers['x-api-key'], KEYS.anthropic);
    assertNoClientKey(rec);
  });

  test('image_url data URL -> image block with a base64 source', async () => {
    const r = await chat('claude', {
      messages: [{ role: 'user', content: [
        { type: 'text', text: 'What is this?' },
        { type: 'image_url', image_url: { url: `data:image/png;base64,${PNG}` } },
      ] }],
    });
    assert.equal(r.status, 200, r.text);
    const { body } = only('/v1/messages');
    const blocks = body.messages[0].content;
    assert.ok(Array.isArray(blocks), JSON.stringify(body.messages));
    assert.deepEqual(blocks.find((b) => b.type === 'text')?.text, 'What is this?');
    const img = blocks.find((b) => b.type === 'image');
    assert.ok(img, `no image block: ${JSON.stringify(blocks)}`);
    assert.deepEqual(img.source, { type: 'base64', media_type: 'image/png', data: PNG });
  });

  test('several system messages are joined into the top-level system; none left in messages', async () => {
    const r = await chat('claude', {
      messages: [
        { role: 'system', content: 'Rule one.' },
        { role: 'system', content: [{ type: 'text', text: 'Rule two.' }] },
        { role: 'user', content: 'Hi' },
      ],
    });
    assert.equal(r.status, 200, r.text);
    const { body } = only('/v1/messages');
    const systemText = typeof body.system === 'string' ? body.system : (body.system ?? []).map((x) => x.text).join('\n');
    assert.match(systemText, /Rule one\./);
    assert.match(systemText, /Rule two\./);
    assert.ok(body.messages.every((m) => m.role !== 'system'));
  });

  test('max_completion_tokens -> max_tokens; user -> metadata.user_id', async () => {
    const r = await chat('claude', { max_completion_tokens: 33, user: 'user-42' });
    assert.equal(r.status, 200, r.text);
    const { body } = only('/v1/messages');
    assert.equal(body.max_tokens, 33);
    assert.equal(body.max_completion_tokens, undefined);
    assert.deepEqual(body.metadata, { user_id: 'user-42' });
    assert.equal(body.user, undefined);
  });

  test('tool_choice required -> {type: any}; a named function -> {type: tool, name}', async () => {
    const tools = [{ type: 'function', function: { name: 'f', parameters: { type: 'object', properties: {} } } }];
    assert.equal((await chat('claude', { tools, tool_choice: 'required' })).status, 200);
    assert.equal((await chat('claude', { tools, tool_choice: { type: 'function', function: { name: 'f' } } })).status, 200);
    const recs = fake.requests();
    assert.deepEqual(recs[0].body.tool_choice, { type: 'any' });
    assert.deepEqual(recs[1].body.tool_choice, { type: 'tool', name: 'f' });
  });

  test('stop_reason max_tokens -> finish_reason length (JSON and stream)', async () => {
    fake.script([{ finish_reason: 'length' }, { finish_reason: 'length' }]);
    const r = await chat('claude');
    assert.equal(r.json.choices[0].finish_reason, 'length');
    const s = await stream('claude');
    assert.equal(assembleChat(sseData(s.text)).finish, 'length');
  });

  test('streamed usage with cache tokens', async () => {
    fake.script([{ usage: { prompt_tokens: 10, completion_tokens: 3, cache_read_input_tokens: 100, cache_creation_input_tokens: 50 } }]);
    const s = await stream('claude', { stream_options: { include_usage: true } });
    const u = assembleChat(sseData(s.text)).usage;
    assert.ok(u, s.text);
    const cachedRead = u.prompt_tokens_details?.cached_tokens ?? u.cache_read_input_tokens;
    assert.equal(cachedRead, 100, `usage: ${JSON.stringify(u)}`);
    assert.equal(u.cache_creation_input_tokens, 50, `usage: ${JSON.stringify(u)}`);
    assert.equal(u.completion_tokens, 3);
    // Non-streamed and streamed agree.
    fake.script([{ usage: { prompt_tokens: 10, completion_tokens: 3, cache_read_input_tokens: 100, cache_creation_input_tokens: 50 } }]);
    const r = await chat('claude');
    assert.equal(r.json.usage.prompt_tokens, u.prompt_tokens, `json ${JSON.stringify(r.json.usage)} vs stream ${JSON.stringify(u)}`);
    assert.equal(r.json.usage.total_tokens, u.total_tokens);
  });

  for (const model of ['claude', 'ollama-chat', 'az']) {
    test(`${model}: no usage chunk when the client did not ask for it`, async () => {
      const s = await stream(model);
      assert.equal(s.status, 200, s.text);
      const chunks = sseData(s.text).filter((d) => d !== '[DONE]').map((d) => JSON.parse(d));
      assert.ok(!chunks.some((c) => c.usage && (c.choices ?? []).length === 0), `usage-only chunk: ${s.text}`);
    });
  }

  test('an Anthropic `error` event as the very first event -> a real HTTP error status with its message', async () => {
    fake.script([{ stream: true,
                   raw_chunks: ['event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded now"}}\n\n'] }]);
    const s = await stream('claude');
    assert.ok(s.status >= 500, `status ${s.status}: ${s.text}`);
    const j = JSON.parse(s.text);
    assert.deepEqual(openaiErrorProblems(j, s.status), []);
    assert.match(j.error.message, /Overloaded now/);
  });

  test('an OpenAI error frame as the very first event -> a real HTTP error status with its message', async () => {
    fake.script([{ error_after_chunks: 0, error_message: 'first frame failure' }]);
    const s = await stream('oai');
    assert.ok(s.status >= 500, `status ${s.status}: ${s.text}`);
    const j = JSON.parse(s.text);
    assert.deepEqual(openaiErrorProblems(j, s.status), []);
    assert.match(j.error.message, /first frame failure/);
  });
});

describe('Ollama mapping details', () => {
  test('ollama_chat/: image_url data URL -> message.images', async () => {
    const PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==';
    const r = await chat('ollama-chat', {
      messages: [{ role: 'user', content: [
        { type: 'text', text: 'Describe' },
        { type: 'image_url', image_url: { url: `data:image/png;base64,${PNG}` } },
      ] }],
    });
    assert.equal(r.status, 200, r.text);
    const { body } = only('/api/chat');
    assert.equal(body.messages[0].content, 'Describe');
    assert.deepEqual(body.messages[0].images, [PNG]);
  });

  test('ollama_chat/: tool_choice required or a named function -> tools sent alone (Ollama has no tool_choice)', async () => {
    const tools = [{ type: 'function', function: { name: 'f', parameters: { type: 'object', properties: {} } } }];
    for (const tool_choice of ['required', { type: 'function', function: { name: 'f' } }]) {
      fake.reset();
      const r = await chat('ollama-chat', { tools, tool_choice });
      assert.equal(r.status, 200, r.text);
      const { body } = only('/api/chat');
      assert.deepEqual(body.tools, tools);
      assert.equal(body.tool_choice, undefined, 'tool_choice sent to Ollama');
      assert.equal(body.options?.tool_choice, undefined, 'tool_choice sent in options');
    }
    // "none" still leaves the tools out; /api/generate (no tools at all) still refuses it.
    fake.reset();
    assert.equal((await chat('ollama-chat', { tools, tool_choice: 'none' })).status, 200);
    assert.equal(only('/api/chat').body.tools, undefined);
    fake.reset();
    const gen = await chat('ollama-gen', { tool_choice: 'required' });
    assert.equal(gen.status, 400, gen.text);
    assert.match(gen.json.error.message, /tool_choice/);
    assert.equal(fake.requests().length, 0);
  });

  test('max_completion_tokens -> options.num_predict', async () => {
    const r = await chat('ollama-chat', { max_completion_tokens: 12 });
    assert.equal(r.status, 200, r.text);
    assert.equal(only('/api/chat').body.options?.num_predict, 12);
  });

  test('/v1/completions on ollama/: prompt to /api/generate, text back', async () => {
    fake.script([{ content: 'generated text' }]);
    const r = await call(gw, '/v1/completions', { body: { model: 'ollama-gen', prompt: 'Complete me', max_tokens: 5 } });
    assert.equal(r.status, 200, r.text);
    const rec = only('/api/generate');
    assert.equal(rec.body.prompt, 'Complete me');
    assert.equal(rec.body.options?.num_predict, 5);
    assert.equal(r.json.object, 'text_completion');
    assert.equal(r.json.choices[0].text, 'generated text');
  });

  test('/v1/completions on an OpenAI upstream passes through to /v1/completions', async () => {
    fake.script([{ content: 'legacy completion' }]);
    const r = await call(gw, '/v1/completions', { body: { model: 'oai', prompt: 'Complete me' } });
    assert.equal(r.status, 200, r.text);
    assert.equal(only('/v1/completions').body.prompt, 'Complete me');
    assert.equal(r.json.choices[0].text, 'legacy completion');
  });
});

describe('wire format: Azure', () => {
  test('api-key header, ?api-version=, deployment in the path', async () => {
    const r = await chat('az');
    assert.equal(r.status, 200, r.text);
    const rec = only('/openai/deployments/az-chat-dep/chat/completions');
    assert.equal(rec.query['api-version'], '2024-06-01');
    assert.equal(rec.headers['api-key'], KEYS.azure);
    assert.ok(!String(rec.headers.authorization ?? '').includes(MASTER_KEY));
    assertNoClientKey(rec);
  });

  test('streaming goes to the same URL with the same key', async () => {
    const r = await stream('az', { stream_options: { include_usage: true } });
    assert.equal(r.status, 200, r.text);
    const rec = only('/openai/deployments/az-chat-dep/chat/completions');
    assert.equal(rec.query['api-version'], '2024-06-01');
    assert.equal(rec.headers['api-key'], KEYS.azure);
    assert.equal(rec.body.stream, true);
    assertNoClientKey(rec);
  });
});

describe('wire format: Ollama', () => {
  test('ollama_chat/: /api/chat, options.num_predict from max_tokens, stream: false explicit', async () => {
    const r = await chat('ollama-chat', { max_tokens: 42, temperature: 0.2, top_p: 0.9, seed: 7, stop: ['x'] });
    assert.equal(r.status, 200, r.text);
    const rec = only('/api/chat');
    assert.equal(rec.body.model, 'llama3.1');
    assert.equal(rec.body.stream, false, `stream upstream: ${JSON.stringify(rec.body.stream)}`);
    assert.equal(rec.body.options?.num_predict, 42, `options: ${JSON.stringify(rec.body.options)}`);
    assert.equal(rec.body.options?.temperature, 0.2);
    assert.equal(rec.body.options?.top_p, 0.9);
    assert.equal(rec.body.options?.seed, 7);
    assert.deepEqual(rec.body.options?.stop, ['x']);
    assert.equal(rec.body.max_tokens, undefined);
    assertNoClientKey(rec);
  });

  test('ollama/: /api/generate, options.num_predict, stream: true explicit when streaming', async () => {
    const r = await stream('ollama-gen', { max_tokens: 9 });
    assert.equal(r.status, 200, r.text);
    const rec = only('/api/generate');
    assert.equal(rec.body.stream, true);
    assert.equal(rec.body.options?.num_predict, 9, `options: ${JSON.stringify(rec.body.options)}`);
    assert.equal(typeof rec.body.prompt, 'string');
    assert.match(rec.body.prompt, /Say hello/);
    assertNoClientKey(rec);
  });

  test('response_format json_object -> format: "json"', async () => {
    const r = await chat('ollama-chat', { response_format: { type: 'json_object' } });
    assert.equal(r.status, 200, r.text);
    assert.equal(only('/api/chat').body.format, 'json');
  });
});

describe('wire format: OpenAI', () => {
  test('streaming adds stream_options.include_usage upstream; Authorization is the deployment key', async () => {
    const r = await stream('oai');
    assert.equal(r.status, 200, r.text);
    const rec = only('/v1/chat/completions');
    assert.equal(rec.body.stream, true);
    assert.equal(rec.body.stream_options?.include_usage, true, `stream_options: ${JSON.stringify(rec.body.stream_options)}`);
    assert.equal(rec.headers.authorization, `Bearer ${KEYS.openai}`);
    assertNoClientKey(rec);
    // The client did not ask for usage: it gets no usage chunk.
    const payloads = sseData(r.text).filter((d) => d !== '[DONE]').map((d) => JSON.parse(d));
    assert.ok(!payloads.some((p) => p.usage && p.choices?.length === 0),
      `usage-only chunk sent to a client that did not ask: ${r.text}`);
    assert.equal(assembleChat(sseData(r.text)).text, rec.reply.content);
  });

  test('non-streaming: no stream_options added; Authorization is the deployment key', async () => {
    const r = await chat('oai');
    assert.equal(r.status, 200, r.text);
    const rec = only('/v1/chat/completions');
    assert.equal(rec.body.stream_options, undefined);
    assert.equal(rec.headers.authorization, `Bearer ${KEYS.openai}`);
    assertNoClientKey(rec);
  });
});

describe('additional_drop_params in the request', () => {
  test('the names it lists are not sent, deployment defaults included; the member itself is not sent', async () => {
    for (const streamed of [false, true]) {
      fake.reset();
      const body = { additional_drop_params: ['temperature', 'top_p', 'max_tokens'] };
      const r = streamed ? await stream('oai-defaults', body) : await chat('oai-defaults', body);
      assert.equal(r.status, 200, r.text);
      const rec = only('/v1/chat/completions');
      for (const name of ['temperature', 'top_p', 'max_tokens', 'additional_drop_params']) {
        assert.ok(!(name in rec.body), `${name} sent (${streamed ? 'stream' : 'json'}): ${JSON.stringify(rec.body)}`);
      }
      assert.equal(rec.body.seed, 5, 'a default not listed is sent');
    }
    // The client's own value of a listed name goes too.
    fake.reset();
    const own = await chat('oai-defaults', { temperature: 0.8, additional_drop_params: ['temperature'] });
    assert.equal(own.status, 200, own.text);
    const rec = only('/v1/chat/completions');
    assert.ok(!('temperature' in rec.body), JSON.stringify(rec.body));
    assert.equal(rec.body.top_p, 0.9);
  });

  test('a translated provider (Anthropic) gets no listed default either', async () => {
    const r = await chat('claude-defaults', { additional_drop_params: ['temperature', 'top_p'] });
    assert.equal(r.status, 200, r.text);
    const rec = only('/v1/messages');
    assert.ok(!('temperature' in rec.body) && !('top_p' in rec.body), JSON.stringify(rec.body));
    assert.ok(!('additional_drop_params' in rec.body), JSON.stringify(rec.body));
    assert.equal(rec.body.max_tokens, 77);
  });
});

describe('request defaults on the other translated providers (Cohere here; Gemini in e2e/google)', () => {
  test('the defaults are translated like the client\'s members; the request wins; dropped names are not sent', async () => {
    // logit_bias is a 400 on Cohere unless dropped: the deployment's list drops it.
    let r = await chat('cohere-defaults', { logit_bias: { 1: 2 } });
    assert.equal(r.status, 200, r.text);
    let rec = only('/v2/chat');
    assert.equal(rec.body.max_tokens, 77);
    assert.equal(rec.body.temperature, 0.3);
    assert.equal(rec.body.p, 0.9, 'top_p is Cohere\'s p');
    assert.deepEqual(rec.body.stop_sequences, ['###']);
    assert.ok(!('logit_bias' in rec.body), JSON.stringify(rec.body));
    fake.reset();
    r = await chat('cohere-defaults', { max_tokens: 10, additional_drop_params: ['temperature', 'stop'] });
    assert.equal(r.status, 200, r.text);
    rec = only('/v2/chat');
    assert.equal(rec.body.max_tokens, 10);
    for (const name of ['temperature', 'stop_sequences', 'additional_drop_params']) {
      assert.ok(!(name in rec.body), `${name} sent: ${JSON.stringify(rec.body)}`);
    }
  });
});

describe('OpenAI and Azure reasoning models (o-series, gpt-5)', () => {
  test('max_tokens goes upstream as max_completion_tokens (JSON and stream); other models keep max_tokens', async () => {
    for (const model of ['o3-mini', 'gpt-5-mini', 'gpt-5.1']) {
      fake.reset();
      const r = await chat(model, { max_tokens: 77 });
      assert.equal(r.status, 200, r.text);
      const { body } = only('/v1/chat/completions');
      assert.equal(body.max_completion_tokens, 77, `${model}: ${JSON.stringify(body)}`);
      assert.equal(body.max_tokens, undefined, `${model}: max_tokens sent`);
    }
    fake.reset();
    const s = await stream('o3-mini', { max_tokens: 33 });
    assert.equal(s.status, 200, s.text);
    assert.equal(only('/v1/chat/completions').body.max_completion_tokens, 33);
    fake.reset();
    const both = await chat('o3-mini', { max_tokens: 10, max_completion_tokens: 20 });
    assert.equal(both.status, 200, both.text);
    const sent = only('/v1/chat/completions').body;
    assert.equal(sent.max_completion_tokens, 20, 'max_completion_tokens wins');
    assert.equal(sent.max_tokens, undefined);
    fake.reset();
    const plain = await chat('gpt-4o-plain', { max_tokens: 5 });
    assert.equal(plain.status, 200, plain.text);
    assert.equal(only('/v1/chat/completions').body.max_tokens, 5);
  });

  test('temperature: 1 is sent; another value is a 400 naming it, or dropped with drop_params', async () => {
    const one = await chat('o3-mini', { temperature: 1 });
    assert.equal(one.status, 200, one.text);
    assert.equal(only('/v1/chat/completions').body.temperature, 1);
    fake.reset();
    for (const model of ['o3-mini', 'gpt-5-mini']) {
      const r = await chat(model, { temperature: 0.2 });
      assert.equal(r.status, 400, r.text);
      assert.deepEqual(openaiErrorProblems(r.json, 400), []);
      assert.match(r.json.error.message, /temperature/);
      assert.match(r.json.error.message, /drop_params/);
      assert.equal(r.json.error.param, 'temperature');
      assert.equal(fake.requests().length, 0, 'nothing sent upstream');
      const dropped = await chat(model, { temperature: 0.2 }, { gw: gwDrop });
      assert.equal(dropped.status, 200, dropped.text);
      assert.equal(only('/v1/chat/completions').body.temperature, undefined, `${model}: temperature sent`);
      fake.reset();
    }
  });

  test('gpt-5.1 takes any temperature unless reasoning_effort is set', async () => {
    const r = await chat('gpt-5.1', { temperature: 0.3 });
    assert.equal(r.status, 200, r.text);
    assert.equal(only('/v1/chat/completions').body.temperature, 0.3);
    fake.reset();
    const none = await chat('gpt-5.1', { temperature: 0.3, reasoning_effort: 'none' });
    assert.equal(none.status, 200, none.text);
    fake.reset();
    const high = await chat('gpt-5.1', { temperature: 0.3, reasoning_effort: 'high' });
    assert.equal(high.status, 400, high.text);
    assert.equal(fake.requests().length, 0);
  });

  test('parameters the family refuses: a 400 naming them, or left out with drop_params', async () => {
    const cases = [
      ['o3-mini', { top_p: 0.5, presence_penalty: 0.2 }, "['top_p', 'presence_penalty']"],
      ['gpt-5-mini', { stop: ['x'], logit_bias: { 1: 1 } }, "['stop', 'logit_bias']"],
    ];
    for (const [model, extra, names] of cases) {
      fake.reset();
      const r = await chat(model, extra);
      assert.equal(r.status, 400, r.text);
      assert.deepEqual(openaiErrorProblems(r.json, 400), []);
      assert.ok(r.json.error.message.includes(`does not support parameters: ${names}`), r.json.error.message);
      assert.equal(r.json.error.param, Object.keys(extra)[0]);
      assert.equal(fake.requests().length, 0, 'nothing sent upstream');
      const dropped = await chat(model, extra, { gw: gwDrop });
      assert.equal(dropped.status, 200, dropped.text);
      const sent = only('/v1/chat/completions').body;
      for (const k of Object.keys(extra)) assert.equal(sent[k], undefined, `${model}: ${k} sent`);
    }
    fake.reset();
    const s = await stream('o3-mini', { frequency_penalty: 1 });
    assert.equal(s.status, 400, s.text);
    fake.reset();
    const effort = await chat('gpt-5.1', { top_p: 0.5, reasoning_effort: 'medium' });
    assert.equal(effort.status, 400, effort.text);
    assert.equal(effort.json.error.param, 'top_p');
    fake.reset();
    const free = await chat('gpt-5.1', { top_p: 0.5 });
    assert.equal(free.status, 200, free.text);
    assert.equal(only('/v1/chat/completions').body.top_p, 0.5);
  });

  test("the price map's flags: xhigh reasoning only where supported; o3-mini refuses parallel_tool_calls", async () => {
    // The shipped map: gpt-5.1 has supports_xhigh_reasoning_effort false, o3-mini
    // supports_parallel_function_calling false (the deployments' model_info says nothing).
    const xhigh = await chat('gpt-5.1', { reasoning_effort: 'xhigh' });
    assert.equal(xhigh.status, 400, xhigh.text);
    assert.equal(xhigh.json.error.param, 'reasoning_effort');
    assert.match(xhigh.json.error.message, /xhigh/);
    const parallel = await chat('o3-mini', { parallel_tool_calls: true });
    assert.equal(parallel.status, 400, parallel.text);
    assert.equal(parallel.json.error.param, 'parallel_tool_calls');
    assert.equal(fake.requests().length, 0);
    const dropped = await chat('gpt-5.1', { reasoning_effort: 'xhigh' }, { gw: gwDrop });
    assert.equal(dropped.status, 200, dropped.text);
    assert.ok(!('reasoning_effort' in only('/v1/chat/completions').body));
    fake.reset();
    const high = await chat('gpt-5.1', { reasoning_effort: 'high' });
    assert.equal(high.status, 200, high.text);
    assert.equal(only('/v1/chat/completions').body.reasoning_effort, 'high');
  });

  test('gpt-5 search models: web_search_options is sent; the chat parameters outside their list are refused', async () => {
    const r = await chat('gpt-5-search', { web_search_options: { search_context_size: 'low' }, max_tokens: 40 });
    assert.equal(r.status, 200, r.text);
    const rec = only('/v1/chat/completions');
    assert.deepEqual(rec.body.web_search_options, { search_context_size: 'low' });
    assert.equal(rec.body.max_completion_tokens, 40);
    fake.reset();
    const refused = await chat('gpt-5-search', { temperature: 1, seed: 2 });
    assert.equal(refused.status, 400, refused.text);
    assert.match(refused.json.error.message, /does not support parameters: \['temperature', 'seed'\]/);
    assert.equal(fake.requests().length, 0);
    const dropped = await chat('gpt-5-search', { temperature: 1, seed: 2 }, { gw: gwDrop });
    assert.equal(dropped.status, 200, dropped.text);
    const sent = only('/v1/chat/completions');
    assert.ok(!('temperature' in sent.body) && !('seed' in sent.body), JSON.stringify(sent.body));
  });

  test('o-series: model_info without system messages or tools: system becomes user; tools are refused', async () => {
    fake.reset();
    const messages = [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'hi' }];
    const r = await chat('o1-mini-bare', { messages });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(only('/v1/chat/completions').body.messages,
      [{ role: 'user', content: 'be brief' }, { role: 'user', content: 'hi' }]);
    fake.reset();
    const tools = [{ type: 'function', function: { name: 'f', parameters: { type: 'object' } } }];
    const t = await chat('o1-mini-bare', { tools, tool_choice: 'auto' });
    assert.equal(t.status, 400, t.text);
    assert.ok(t.json.error.message.includes("does not support parameters: ['tools', 'tool_choice']"), t.json.error.message);
    assert.equal(fake.requests().length, 0);
    // Without those model_info flags, o3-mini takes system messages and tools as sent.
    const plain = await chat('o3-mini', { messages, tools });
    assert.equal(plain.status, 200, plain.text);
    const sent = only('/v1/chat/completions').body;
    assert.equal(sent.messages[0].role, 'system');
    assert.equal(sent.tools.length, 1);
  });

  test('Azure: o_series/ routes the deployment as o-series (prefix not in the URL); model_info.base_model names gpt-5', async () => {
    const r = await chat('az-o-series', {});
    assert.equal(r.status, 200, r.text);
    const rec = only('/openai/deployments/team-reasoner/chat/completions');
    assert.equal(rec.body.max_completion_tokens, 300, 'the deployment default is renamed too');
    assert.equal(rec.body.max_tokens, undefined);
    fake.reset();
    const t = await chat('az-o-series', { temperature: 0.5 });
    assert.equal(t.status, 400, t.text);
    fake.reset();
    const g = await stream('az-gpt5-based', { max_tokens: 12 });
    assert.equal(g.status, 200, g.text);
    const grec = only('/openai/deployments/prod-chat/chat/completions');
    assert.equal(grec.body.max_completion_tokens, 12);
    assert.equal(grec.body.max_tokens, undefined);
  });
});

describe('client routes', () => {
  test('/openai/deployments/{m}/chat/completions and /engines/{m}/chat/completions reach the group', async () => {
    const r1 = await call(gw, '/openai/deployments/claude/chat/completions?api-version=2024-06-01', {
      body: { messages: USER }, headers: CLIENT_HEADERS,
    });
    assert.equal(r1.status, 200, r1.text);
    const r2 = await call(gw, '/engines/ollama-chat/chat/completions', { body: { messages: USER } });
    assert.equal(r2.status, 200, r2.text);
    const recs = fake.requests();
    assert.deepEqual(recs.map((r) => r.path), ['/v1/messages', '/api/chat']);
  });
});

// ------------------------------------------------------------------ embeddings

describe('embeddings', () => {
  const cases = [
    ['oai-embed', '/v1/embeddings'],
    ['az-embed', '/openai/deployments/az-embed-dep/embeddings'],
    ['ollama-embed', '/api/embed'],
  ];

  function assertShape(j, n) {
    assert.equal(j.object, 'list', JSON.stringify(j));
    assert.ok(Array.isArray(j.data) && j.data.length === n, JSON.stringify(j));
    j.data.forEach((d, i) => {
      assert.equal(d.object, 'embedding');
      assert.equal(d.index, i);
      assert.ok(Array.isArray(d.embedding) || d.embedding instanceof Float32Array, `embedding ${typeof d.embedding}`);
    });
    assert.equal(typeof j.model, 'string');
    assert.ok(j.usage && Number.isInteger(j.usage.prompt_tokens) && Number.isInteger(j.usage.total_tokens),
      `usage ${JSON.stringify(j.usage)}`);
  }

  const close = (a, b) => a.length === b.length && a.every((x, i) => Math.abs(x - b[i]) < 1e-5);

  for (const [model, path] of cases) {
    test(`${model}: single string input (raw HTTP, float)`, async () => {
      const r = await call(gw, '/v1/embeddings', { body: { model, input: 'hello world' }, headers: CLIENT_HEADERS });
      assert.equal(r.status, 200, r.text);
      assertShape(r.json, 1);
      const rec = only(path);
      if (model === 'az-embed') {
        assert.equal(rec.query['api-version'], '2024-06-01');
        assert.equal(rec.headers['api-key'], KEYS.azure);
      }
      assertNoClientKey(rec);
      assert.ok(close(r.json.data[0].embedding, rec.reply.embeddings[0]),
        `embedding ${JSON.stringify(r.json.data[0].embedding)} != upstream ${JSON.stringify(rec.reply.embeddings[0])}`);
      assert.equal(r.json.usage.prompt_tokens, rec.reply.usage.prompt_tokens);
    });

    test(`${model}: list input through the SDK (default base64 encoding)`, async () => {
      const inputs = ['first text', 'second text here', 'third'];
      const r = await client.embeddings.create({ model, input: inputs });
      assertShape(r, 3);
      const rec = only(path);
      assert.deepEqual(rec.body.input, inputs);
      r.data.forEach((d, i) => {
        assert.equal(d.embedding.length, rec.reply.embeddings[i].length, `index ${i}: ${d.embedding.length} dims`);
        assert.ok(close(Array.from(d.embedding), rec.reply.embeddings[i]),
          `index ${i}: ${JSON.stringify(Array.from(d.embedding))} != ${JSON.stringify(rec.reply.embeddings[i])}`);
      });
    });

    test(`${model}: single string through the SDK with encoding_format float`, async () => {
      const r = await client.embeddings.create({ model, input: 'just one', encoding_format: 'float' });
      assertShape(r, 1);
      const rec = only(path);
      assert.ok(close(r.data[0].embedding, rec.reply.embeddings[0]));
    });
  }

  test('ollama-embed: encoding_format base64 (raw HTTP) -> base64 of float32, not sent to Ollama', async () => {
    const r = await call(gw, '/v1/embeddings', { body: { model: 'ollama-embed', input: ['x', 'y'], encoding_format: 'base64' } });
    assert.equal(r.status, 200, r.text);
    const rec = only('/api/embed');
    assert.equal(rec.body.encoding_format, undefined, 'encoding_format sent to Ollama');
    r.json.data.forEach((d, i) => {
      assert.equal(typeof d.embedding, 'string', `index ${i}: expected a base64 string, got ${JSON.stringify(d.embedding)}`);
      const buf = Buffer.from(d.embedding, 'base64');
      const floats = Array.from(new Float32Array(buf.buffer, buf.byteOffset, buf.length / 4));
      assert.ok(close(floats, rec.reply.embeddings[i]), `index ${i}: ${floats} != ${rec.reply.embeddings[i]}`);
    });
  });

  test('ollama-embed with litellm_settings.drop_params: SDK default (base64) still gets full-width vectors', async () => {
    const sdk = new OpenAI({ baseURL: `${gwDrop.url}/v1`, apiKey: MASTER_KEY, maxRetries: 0, timeout: 15_000 });
    const r = await sdk.embeddings.create({ model: 'ollama-embed', input: 'hello world' });
    const rec = only('/api/embed');
    assert.equal(r.data[0].embedding.length, rec.reply.embeddings[0].length,
      `SDK decoded ${r.data[0].embedding.length} dims; the upstream produced ${rec.reply.embeddings[0].length}`);
  });

  test('/embeddings without /v1 works', async () => {
    const r = await call(gw, '/embeddings', { body: { model: 'ollama-embed', input: ['a', 'b'] } });
    assert.equal(r.status, 200, r.text);
    assertShape(r.json, 2);
  });

  test('embeddings on Anthropic: OpenAI-shaped 400, no upstream request', async () => {
    const r = await call(gw, '/v1/embeddings', { body: { model: 'claude', input: 'x' } });
    assert.equal(r.status, 400, r.text);
    assert.deepEqual(openaiErrorProblems(r.json, 400), []);
    assert.equal(fake.requests().length, 0);
  });
});

// ------------------------------------------------------------------ /v1/completions on chat-only

describe('/v1/completions on a chat-only provider (anthropic)', () => {
  test('prompt wrapped as one user message; answer unwrapped into choices[0].text', async () => {
    fake.script([{ content: 'Completion via messages', usage: { prompt_tokens: 5, completion_tokens: 3 } }]);
    const r = await call(gw, '/v1/completions', { body: { model: 'claude', prompt: 'Once upon a time', max_tokens: 20 } });
    assert.equal(r.status, 200, r.text);
    const rec = only('/v1/messages');
    assert.equal(rec.body.messages.length, 1, JSON.stringify(rec.body.messages));
    const m = rec.body.messages[0];
    assert.equal(m.role, 'user');
    const text = typeof m.content === 'string' ? m.content : m.content.map((c) => c.text).join('');
    assert.equal(text, 'Once upon a time');
    assert.equal(rec.body.max_tokens, 20);
    assert.equal(rec.body.prompt, undefined);
    assert.equal(r.json.object, 'text_completion');
    assert.equal(r.json.choices[0].text, 'Completion via messages');
    assert.equal(r.json.choices[0].finish_reason, 'stop');
    assert.deepEqual([r.json.usage.prompt_tokens, r.json.usage.completion_tokens], [5, 3]);
  });

  test('streamed: text_completion chunks carry the text', async () => {
    fake.script([{ chunks: ['Comp', 'leted'] }]);
    const r = await streamTimed(`${gw.url}/v1/completions`, {
      headers: { authorization: `Bearer ${MASTER_KEY}` },
      body: { model: 'claude', prompt: 'Go', stream: true }, timeoutMs: 10_000,
    });
    assert.equal(r.status, 200, r.text);
    const payloads = sseData(r.text);
    assert.equal(payloads.at(-1), '[DONE]', r.text);
    const chunks = payloads.filter((p) => p !== '[DONE]').map((p) => JSON.parse(p));
    assert.ok(chunks.every((c) => c.object === 'text_completion'), r.text);
    assert.equal(chunks.map((c) => c.choices?.[0]?.text ?? '').join(''), 'Completed');
  });

  test('/completions without /v1 and through the SDK', async () => {
    const r = await client.completions.create({ model: 'claude', prompt: 'Hi' });
    assert.equal(r.choices[0].text, 'Hello from fake provider');
    const r2 = await call(gw, '/completions', { body: { model: 'claude', prompt: 'Hi' } });
    assert.equal(r2.status, 200, r2.text);
  });
});

// ------------------------------------------------------------------ parameters

describe('parameters', () => {
  for (const [param, value] of [['logit_bias', { 50256: -100 }], ['n', 2]]) {
    test(`Anthropic + ${param}: 400 naming it, nothing sent upstream`, async () => {
      const r = await chat('claude', { [param]: value });
      assert.equal(r.status, 400, r.text);
      assert.deepEqual(openaiErrorProblems(r.json, 400), []);
      assert.match(r.json.error.message, new RegExp(param));
      assert.match(r.json.error.message, /drop_params/, 'the message should point at drop_params');
      assert.equal(fake.requests().length, 0);
    });

    test(`Anthropic + ${param} with drop_params: true in the request: 200, dropped`, async () => {
      const r = await chat('claude', { [param]: value, drop_params: true });
      assert.equal(r.status, 200, r.text);
      const rec = only('/v1/messages');
      assert.equal(rec.body[param], undefined, `${param} sent upstream`);
      assert.equal(rec.body.drop_params, undefined, 'drop_params sent upstream');
    });

    test(`Anthropic + ${param} with litellm_settings.drop_params: true: 200, dropped`, async () => {
      const r = await chat('claude', { [param]: value }, { gw: gwDrop });
      assert.equal(r.status, 200, r.text);
      const rec = only('/v1/messages');
      assert.equal(rec.body[param], undefined, `${param} sent upstream`);
    });
  }

  test('unknown extra fields pass through to an OpenAI upstream', async () => {
    const r = await chat('oai', { my_custom_field: { a: [1, 2] }, top_k: 5, repetition_penalty: 1.1 });
    assert.equal(r.status, 200, r.text);
    const rec = only('/v1/chat/completions');
    assert.deepEqual(rec.body.my_custom_field, { a: [1, 2] });
    assert.equal(rec.body.top_k, 5);
    assert.equal(rec.body.repetition_penalty, 1.1);
  });

  test('known OpenAI parameters reach an OpenAI upstream unchanged', async () => {
    const params = { temperature: 0.5, top_p: 0.8, n: 2, logit_bias: { 50256: -100 }, presence_penalty: 0.1,
                     frequency_penalty: 0.2, seed: 3, user: 'u-9', response_format: { type: 'json_object' } };
    const r = await chat('oai', params);
    assert.equal(r.status, 200, r.text);
    const rec = only('/v1/chat/completions');
    for (const [k, v] of Object.entries(params)) assert.deepEqual(rec.body[k], v, k);
  });
});

// ------------------------------------------------------------------ errors

describe('upstream errors keep their status and the provider message', () => {
  const STATUSES = [400, 401, 403, 404, 408, 422, 429, 500, 503];
  for (const [model, provider] of [['oai', 'openai'], ['claude', 'anthropic']]) {
    for (const status of STATUSES) {
      test(`${provider} ${status}`, async () => {
        const message = `provider says ${status} for ${provider}`;
        fake.script([{ status, error_message: message, headers: status === 429 ? { 'retry-after': '7' } : undefined, times: -1 }]);
        const r = await chat(model);
        assert.equal(r.status, status, r.text);
        assert.deepEqual(openaiErrorProblems(r.json, status), []);
        assert.ok(r.json.error.message.includes(message), `message: ${r.json.error.message}`);
        if (status === 429) assert.equal(r.headers.get('retry-after'), '7');
        const n = fake.requests().length;
        assert.ok(n >= 1, 'no upstream request');
      });
    }
    test(`${provider} 429 on a streamed request: 429 status (nothing sent yet), Retry-After passed on`, async () => {
      fake.script([{ status: 429, error_message: 'slow down please', headers: { 'retry-after': '7' }, times: -1 }]);
      const r = await stream(model);
      assert.equal(r.status, 429, r.text);
      assert.equal(r.headers.get('retry-after'), '7');
      const j = JSON.parse(r.text);
      assert.deepEqual(openaiErrorProblems(j, 429), []);
      assert.match(j.error.message, /slow down please/);
    });
  }

  test('azure 404 and ollama 404 too', async () => {
    fake.script([{ status: 404, error_message: 'deployment gone', times: -1 }]);
    for (const model of ['az', 'ollama-chat']) {
      const r = await chat(model);
      assert.equal(r.status, 404, `${model}: ${r.text}`);
      assert.deepEqual(openaiErrorProblems(r.json, 404), [], model);
      assert.match(r.json.error.message, /deployment gone/, model);
    }
  });

  test('SDK maps them to its error classes', async () => {
    fake.script([{ status: 429, error_message: 'anthropic rate limited', headers: { 'retry-after': '7' } }]);
    await assert.rejects(client.chat.completions.create({ model: 'claude', messages: USER }), (e) => {
      assert.ok(e instanceof OpenAI.RateLimitError, `got ${e?.constructor?.name}: ${e?.message}`);
      assert.match(e.message, /anthropic rate limited/);
      return true;
    });
  });

  for (const [model, provider] of [['oai', 'openai'], ['claude', 'anthropic'], ['ollama-chat', 'ollama']]) {
    test(`${provider}: error after streaming began ends the stream with data: {"error":...}`, async () => {
      fake.script([{ chunks: ['one ', 'two ', 'three'], error_after_chunks: 2, error_message: 'upstream broke mid-stream' }]);
      const r = await stream(model);
      assert.equal(r.status, 200, r.text);
      const payloads = sseData(r.text);
      assert.ok(payloads.length >= 2, r.text);
      assert.ok(!payloads.includes('[DONE]'), `[DONE] after an error: ${r.text}`);
      const last = JSON.parse(payloads.at(-1));
      assert.ok(last.error, `last event is not an error: ${payloads.at(-1)}`);
      assert.equal(typeof last.error.message, 'string');
      assert.match(last.error.message, /upstream broke mid-stream/);
      assert.equal(assembleChat(payloads.slice(0, -1)).text, 'one two ');
    });
  }
});

// ------------------------------------------------------------------ response headers

describe('response headers', () => {
  function assertLitellmHeaders(h, { id, group, apiBase }) {
    assert.ok(h.get('x-litellm-call-id'), 'x-litellm-call-id');
    assert.equal(h.get('x-litellm-model-id'), id);
    assert.equal(h.get('x-litellm-model-group'), group);
    const base = h.get('x-litellm-model-api-base');
    assert.ok(base, 'x-litellm-model-api-base');
    assert.ok(!base.includes('?'), `api base with a query string: ${base}`);
    assert.ok(base.startsWith(apiBase), `api base ${base}, expected ${apiBase}...`);
    const total = Number(h.get('x-litellm-response-duration-ms'));
    const overhead = Number(h.get('x-litellm-overhead-duration-ms'));
    assert.ok(Number.isFinite(total) && total >= 0, `response duration ${h.get('x-litellm-response-duration-ms')}`);
    assert.ok(Number.isFinite(overhead) && overhead >= 0, `overhead ${h.get('x-litellm-overhead-duration-ms')}`);
    assert.ok(overhead <= total, `overhead ${overhead} > total ${total}`);
  }

  test('OpenAI, non-streamed: x-litellm-* and llm_provider-x-request-id', async () => {
    fake.script([{ headers: { 'x-request-id': 'abc', 'openai-processing-ms': '12' }, delay_ms: 150 }]);
    const r = await chat('oai');
    assert.equal(r.status, 200, r.text);
    assertLitellmHeaders(r.headers, { id: 'oai-deployment-1', group: 'oai', apiBase: `${fake.url}/v1` });
    assert.equal(r.headers.get('llm_provider-x-request-id'), 'abc');
    assert.equal(r.headers.get('llm_provider-openai-processing-ms'), '12');
    // 150 ms upstream latency is not gateway overhead.
    assert.ok(Number(r.headers.get('x-litellm-response-duration-ms')) >= 140);
    assert.ok(Number(r.headers.get('x-litellm-overhead-duration-ms')) < 140,
      `overhead ${r.headers.get('x-litellm-overhead-duration-ms')} ms includes the upstream's 150 ms`);
  });

  test('Azure: api base without the query string', async () => {
    fake.script([{ headers: { 'x-request-id': 'az-abc' } }]);
    const r = await chat('az');
    assert.equal(r.status, 200, r.text);
    assertLitellmHeaders(r.headers, { id: 'az-deployment-1', group: 'az', apiBase: fake.url });
    assert.ok(!r.headers.get('x-litellm-model-api-base').includes('api-version'));
    assert.equal(r.headers.get('llm_provider-x-request-id'), 'az-abc');
  });

  test('Anthropic, streamed: headers on the stream too', async () => {
    fake.script([{ headers: { 'x-request-id': 'ant-abc', 'anthropic-ratelimit-requests-remaining': '99' } }]);
    const r = await stream('claude');
    assert.equal(r.status, 200, r.text);
    assertLitellmHeaders(r.headers, { id: 'claude-deployment-1', group: 'claude', apiBase: fake.url });
    assert.equal(r.headers.get('llm_provider-x-request-id'), 'ant-abc');
    assert.equal(r.headers.get('llm_provider-anthropic-ratelimit-requests-remaining'), '99');
  });

  test('an upstream error answer carries the litellm headers too', async () => {
    fake.script([{ status: 500, error_message: 'boom' }]);
    const r = await chat('oai');
    assert.equal(r.status, 500);
    assert.ok(r.headers.get('x-litellm-call-id'));
    assert.equal(r.headers.get('x-litellm-model-group'), 'oai');
  });
});

// ------------------------------------------------------------------ /v1/models and aliases

describe('/v1/models', () => {
  test('lists the groups and the non-hidden model_group_alias names, OpenAI list format', async () => {
    const r = await call(gw, '/v1/models', { method: 'GET' });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.object, 'list');
    for (const m of r.json.data) {
      assert.equal(m.object, 'model');
      assert.equal(typeof m.id, 'string');
      assert.equal(typeof m.created, 'number');
      assert.equal(typeof m.owned_by, 'string');
    }
    const ids = r.json.data.map((m) => m.id);
    assert.ok(ids.includes('oai-alias'), `alias missing: ${ids}`);
    assert.ok(!ids.includes('secret-alias'), `hidden alias listed: ${ids}`);
    for (const g of ['oai', 'az', 'claude', 'ollama-chat', 'ollama-gen', 'oai-embed', 'az-embed', 'ollama-embed']) {
      assert.ok(ids.includes(g), `${g} missing: ${ids}`);
    }
    assert.equal(new Set(ids).size, ids.length, `duplicates: ${ids}`);
    const r2 = await call(gw, '/models', { method: 'GET' });
    assert.equal(r2.status, 200);
    assert.deepEqual(r2.json.data.map((m) => m.id).sort(), [...ids].sort());
  });

  test('aliases route to their group, hidden ones too', async () => {
    const r1 = await chat('oai-alias');
    assert.equal(r1.status, 200, r1.text);
    const r2 = await chat('secret-alias');
    assert.equal(r2.status, 200, r2.text);
    assert.deepEqual(fake.requests().map((r) => r.path), ['/v1/chat/completions', '/v1/messages']);
  });

  test('/v1/models/{id}: 200 for a known id, 404 OpenAI-shaped for an unknown one', async () => {
    const r = await call(gw, '/v1/models/claude', { method: 'GET' });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.id, 'claude');
    assert.equal(r.json.object, 'model');
    const a = await call(gw, '/v1/models/oai-alias', { method: 'GET' });
    assert.equal(a.status, 200, a.text);
    const n = await call(gw, '/v1/models/no-such-model', { method: 'GET' });
    assert.equal(n.status, 404, n.text);
    assert.deepEqual(openaiErrorProblems(n.json, 404), []);
    assert.match(n.json.error.message, /no-such-model/);
    const sdk = await client.models.retrieve('az');
    assert.equal(sdk.id, 'az');
    await assert.rejects(client.models.retrieve('nope-nope'), OpenAI.NotFoundError);
  });
});

