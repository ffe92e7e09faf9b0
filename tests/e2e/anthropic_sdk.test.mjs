// Anthropic's Messages API front door (/v1/messages, /v1/messages/count_tokens) end to end
// with the official `@anthropic-ai/sdk` and a virtual key: tool use streamed and not from an
// Anthropic deployment (the client's bytes pass through) and from an OpenAI-compatible one
// (translated both ways); countTokens (Anthropic's exact count, else the estimate); a Claude
// Code-style request (long system prompt, tools, cache_control, anthropic-beta, thinking)
// reaching the fake provider byte for byte and its answer reaching the client byte for byte;
// spend rows and /metrics as for chat; malformed requests answered 400 in Anthropic's shape,
// and a streamed answer that is no event stream an APIError with its status, not a stream.
import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import Anthropic from '@anthropic-ai/sdk';

import { startFakeProvider } from '../fake_provider/server.mjs';
import { call, delay, fetchWithTimeout, psql, SLOW, startGateway, stopAll, withDatabase } from '../lib/gateway.mjs';

const SERVER_URL = process.env.SWITCHYARD_TEST_DATABASE_URL;
const skip = !SERVER_URL && 'SWITCHYARD_TEST_DATABASE_URL not set (scripts/test.sh sets it): virtual keys need it';

const CLAUDE = 'claude-sonnet-4-5-20250929';  // the group is named as its upstream model: bytes unchanged
const dbName = `swy_messages_${process.pid}_${Date.now()}`;
let dbUrl;
let fake;
let gw;
let key;
let client;

const WEATHER_TOOL = {
  name: 'get_weather',
  description: 'The weather in a city',
  input_schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
};

async function rowOf(requestId, timeoutMs = 20_000 * SLOW) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const out = psql(dbUrl, `SELECT row_to_json(s) FROM spend_logs s WHERE request_id = '${requestId}'`);
    if (out) return JSON.parse(out);
    if (Date.now() > deadline) throw new Error(`no spend row for ${requestId} within ${timeoutMs} ms`);
    await delay(50);
  }
}

function metricSum(text, name, where = {}) {
  let s = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const ok = Object.entries(where).every(([k, v]) => line.includes(`${k}="${v}"`));
    if (ok) s += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return s;
}

// Every string value (not key) inside `v`, in characters: what the gateway's estimate reads.
function textChars(v) {
  if (typeof v === 'string') return v.length;
  if (Array.isArray(v)) return v.reduce((a, x) => a + textChars(x), 0);
  if (v && typeof v === 'object') return Object.values(v).reduce((a, x) => a + textChars(x), 0);
  return 0;
}

function assertAnthropicError(res, status, type) {
  assert.equal(res.status, status, res.text);
  assert.equal(res.json?.type, 'error', res.text);
  assert.equal(res.json.error.type, type, res.text);
  assert.equal(typeof res.json.error.message, 'string');
  assert.ok(res.json.error.message.length > 0);
}

async function post(path, body, headers = {}) {
  const r = await fetchWithTimeout(`${gw.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-api-key': key, ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    timeoutMs: 20_000,
  });
  const text = await r.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: r.status, headers: r.headers, text, json };
}

describe('/v1/messages with the Anthropic SDK', { skip }, () => {
  before(async () => {
    fake = await startFakeProvider();
    psql(SERVER_URL, `CREATE DATABASE ${dbName}`);
    dbUrl = withDatabase(SERVER_URL, dbName);
    gw = await startGateway({
      config: {
        router_settings: { num_retries: 0, disable_cooldowns: true },
        model_list: [
          { model_name: CLAUDE,
            litellm_params: { model: `anthropic/${CLAUDE}`, api_base: fake.url, api_key: 'sk-ant-upstream' } },
          { model_name: 'claude-alias',
            litellm_params: { model: `anthropic/${CLAUDE}`, api_base: fake.url, api_key: 'sk-ant-upstream' } },
          { model_name: 'claude-defaults',
            litellm_params: { model: `anthropic/${CLAUDE}`, api_base: fake.url, api_key: 'sk-ant-upstream',
                              max_tokens: 300, temperature: 0.2, stop: ['###'], additional_drop_params: ['top_k'] } },
          { model_name: 'gpt',
            litellm_params: { model: 'openai/gpt-4o', api_base: `${fake.url}/v1`, api_key: 'sk-openai-upstream' } },
        ],
      },
      env: { DATABASE_URL: dbUrl, SWITCHYARD_DATA_DIR: `/tmp/${dbName}` },
    });
    await gw.proc.waitForStderr(/schema up to date/, 15_000 * SLOW);
    const k = await call(gw, '/key/generate', { body: { key_alias: 'claude-code' } });
    assert.equal(k.status, 200, k.text);
    key = k.json.key;
    client = new Anthropic({ baseURL: gw.url, apiKey: key, maxRetries: 0, timeout: 20_000 });
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

  describe('an Anthropic deployment', () => {
    test('non-streamed tool use: the body passes through with the model spliced in', async () => {
      fake.script([{ tool_calls: [{ id: 'toolu_w1', name: 'get_weather', arguments: { city: 'Paris' } }],
                     finish_reason: 'tool_calls', content: '' }]);
      const req = {
        model: 'claude-alias', max_tokens: 256, tools: [WEATHER_TOOL],
        messages: [{ role: 'user', content: 'Weather in Paris?' }],
      };
      const { data: msg, response } = await client.messages.create(req).withResponse();
      assert.equal(msg.type, 'message');
      assert.equal(msg.stop_reason, 'tool_use');
      const use = msg.content.find((b) => b.type === 'tool_use');
      assert.deepEqual([use.id, use.name, use.input], ['toolu_w1', 'get_weather', { city: 'Paris' }]);
      assert.equal(response.headers.get('x-litellm-model-group'), 'claude-alias');
      assert.ok(response.headers.get('x-litellm-model-id'));
      assert.equal(response.headers.get('x-litellm-attempted-retries'), '0');

      const [seen] = fake.requests({ path: '/v1/messages' });
      assert.equal(seen.headers['x-api-key'], 'sk-ant-upstream', 'the deployment key, never the virtual key');
      assert.match(seen.headers['anthropic-version'], /^\d{4}-\d{2}-\d{2}$/, 'the SDK\'s version, forwarded');
      assert.deepEqual(seen.body, { ...req, model: CLAUDE });
      // Only the model's value changed: the rest of the client's bytes are untouched.
      assert.equal(seen.body_text, JSON.stringify({ ...req, model: CLAUDE }));
    });

    test('the deployment\'s Messages defaults and drop lists apply to the passed-through body', async () => {
      fake.script([{ content: 'one' }, { content: 'two' }]);
      const messages = [{ role: 'user', content: 'hi' }];
      // max_tokens and temperature are the deployment's (stop is OpenAI's name, not sent);
      // top_k is dropped by the deployment.
      let r = await post('/v1/messages', { model: 'claude-defaults', messages, top_k: 5 });
      assert.equal(r.status, 200, r.text);
      // The client's own value wins; its additional_drop_params drops a default and is not sent.
      r = await post('/v1/messages', { model: 'claude-defaults', messages, max_tokens: 20,
                                       additional_drop_params: ['temperature'] });
      assert.equal(r.status, 200, r.text);
      const [first, second] = fake.requests({ path: '/v1/messages' });
      assert.deepEqual(first.body, { model: CLAUDE, messages, max_tokens: 300, temperature: 0.2 });
      assert.deepEqual(second.body, { model: CLAUDE, messages, max_tokens: 20 });
    });

    test('streamed tool use: Anthropic events relayed as sent', async () => {
      fake.script([{ tool_calls: [{ id: 'toolu_s1', name: 'get_weather', arguments: { city: 'Oslo' } }],
                     finish_reason: 'tool_calls', content: 'Checking.' }]);
      const stream = client.messages.stream({
        model: CLAUDE, max_tokens: 256, tools: [WEATHER_TOOL],
        messages: [{ role: 'user', content: 'Weather in Oslo?' }],
      });
      let text = '';
      stream.on('text', (t) => { text += t; });
      const msg = await stream.finalMessage();
      assert.equal(text, 'Checking.');
      assert.equal(msg.stop_reason, 'tool_use');
      const use = msg.content.find((b) => b.type === 'tool_use');
      assert.deepEqual([use.id, use.name, use.input], ['toolu_s1', 'get_weather', { city: 'Oslo' }]);
      const [seen] = fake.requests({ path: '/v1/messages' });
      assert.equal(seen.body.stream, true);
      assert.equal(msg.usage.output_tokens, seen.reply.usage.completion_tokens);
    });

    test('countTokens: Anthropic\'s own count, forwarded', async () => {
      const req = { model: CLAUDE, system: 'Be brief.', tools: [WEATHER_TOOL],
                    messages: [{ role: 'user', content: 'How many tokens is this?' }] };
      const r = await client.messages.countTokens(req);
      const [seen] = fake.requests({ path: '/v1/messages/count_tokens' });
      assert.ok(seen, 'the count went to the deployment');
      assert.equal(seen.headers['x-api-key'], 'sk-ant-upstream');
      const expected = Math.ceil(JSON.stringify([req.system, req.messages, req.tools]).length / 4);
      assert.equal(r.input_tokens, expected);
      fake.script([{ match: { path: '/v1/messages/count_tokens' }, input_tokens: 4242 }]);
      assert.equal((await client.messages.countTokens(req)).input_tokens, 4242);
    });
  });

  describe('an OpenAI-compatible deployment', () => {
    test('non-streamed tool use, and the follow-up turn with its tool result', async () => {
      fake.script([{ tool_calls: [{ id: 'call_1', name: 'get_weather', arguments: { city: 'Rome' } }],
                     finish_reason: 'tool_calls', content: '' }]);
      const first = await client.messages.create({
        model: 'gpt', max_tokens: 300, system: 'You are terse.', temperature: 0.2, stop_sequences: ['END'],
        tools: [WEATHER_TOOL], tool_choice: { type: 'any', disable_parallel_tool_use: true },
        messages: [{ role: 'user', content: 'Weather in Rome?' }],
      });
      assert.equal(first.type, 'message');
      assert.equal(first.role, 'assistant');
      assert.equal(first.model, 'gpt-4o', 'the model the provider says answered, not the group');
      assert.match(first.id, /^chatcmpl-/, 'the provider\'s id, as LiteLLM answers');
      assert.equal(first.stop_reason, 'tool_use');
      const use = first.content.find((b) => b.type === 'tool_use');
      assert.deepEqual([use.id, use.name, use.input], ['call_1', 'get_weather', { city: 'Rome' }]);
      const [q1] = fake.requests({ path: '/v1/chat/completions' });
      assert.equal(q1.headers.authorization, 'Bearer sk-openai-upstream');
      assert.equal(q1.body.model, 'gpt-4o');
      assert.deepEqual(q1.body.messages, [{ role: 'system', content: 'You are terse.' },
                                          { role: 'user', content: 'Weather in Rome?' }]);
      assert.deepEqual(q1.body.tools, [{ type: 'function', function: {
        name: 'get_weather', description: WEATHER_TOOL.description, parameters: WEATHER_TOOL.input_schema } }]);
      assert.equal(q1.body.tool_choice, 'required');
      assert.equal(q1.body.parallel_tool_calls, false);
      assert.equal(q1.body.max_tokens, 300);
      assert.deepEqual(q1.body.stop, ['END']);
      assert.equal(first.usage.input_tokens, q1.reply.usage.prompt_tokens);
      assert.equal(first.usage.output_tokens, q1.reply.usage.completion_tokens);

      fake.clearRequests();
      const second = await client.messages.create({
        model: 'gpt', max_tokens: 300, tools: [WEATHER_TOOL],
        messages: [
          { role: 'user', content: 'Weather in Rome?' },
          { role: 'assistant', content: first.content },
          { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'call_1', content: '21 C, sunny' },
                                    { type: 'text', text: 'Thanks' }] },
        ],
      });
      assert.equal(second.stop_reason, 'end_turn');
      assert.equal(second.content[0].type, 'text');
      const [q2] = fake.requests({ path: '/v1/chat/completions' });
      assert.deepEqual(q2.body.messages.slice(1), [
        { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function',
          function: { name: 'get_weather', arguments: '{"city":"Rome"}' } }] },
        { role: 'tool', tool_call_id: 'call_1', content: '21 C, sunny' },
        { role: 'user', content: 'Thanks' },
      ]);
    });

    test('streamed text and tool use: OpenAI chunks become Anthropic events', async () => {
      fake.script([{ tool_calls: [{ id: 'call_9', name: 'get_weather', arguments: { city: 'Lima' } }],
                     finish_reason: 'tool_calls', content: 'Let me look that up.' }]);
      const events = [];
      const stream = client.messages.stream({
        model: 'gpt', max_tokens: 300, tools: [WEATHER_TOOL],
        messages: [{ role: 'user', content: [{ type: 'text', text: 'Weather in Lima?' }] }],
      });
      stream.on('streamEvent', (e) => events.push(e.type));
      let text = '';
      stream.on('text', (t) => { text += t; });
      const msg = await stream.finalMessage();
      assert.equal(msg.model, 'gpt-4o', 'message_start names the provider\'s model, as the JSON answer');
      assert.equal(text, 'Let me look that up.');
      assert.equal(msg.stop_reason, 'tool_use');
      const use = msg.content.find((b) => b.type === 'tool_use');
      assert.deepEqual([use.id, use.name, use.input], ['call_9', 'get_weather', { city: 'Lima' }]);
      assert.equal(events[0], 'message_start');
      assert.ok(events.includes('content_block_start') && events.includes('content_block_stop'));
      assert.deepEqual(events.slice(-2), ['message_delta', 'message_stop']);
      const [q] = fake.requests({ path: '/v1/chat/completions' });
      assert.equal(q.body.stream, true);
      assert.equal(msg.usage.output_tokens, q.reply.usage.completion_tokens);
      assert.equal(msg.usage.input_tokens, q.reply.usage.prompt_tokens);
    });

    test('streamed tool calls the SDK can finish: non-JSON arguments become {}, interleaved calls whole blocks', async () => {
      const chunk = (delta, finish = null) => `data: ${JSON.stringify({ id: 'chatcmpl-x', object: 'chat.completion.chunk',
        created: 1, model: 'gpt-4o', choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
      const tc = (index, fields) => chunk({ tool_calls: [{ index, ...fields }] });
      const script = (chunks) => fake.script([{ match: { path: '/v1/chat/completions' }, content_type: 'text/event-stream',
                                                raw_chunks: [...chunks, chunk({}, 'tool_calls'), 'data: [DONE]\n\n'] }]);
      const run = async () => {
        const deltas = [];
        const stream = client.messages.stream({ model: 'gpt', max_tokens: 300, tools: [WEATHER_TOOL],
                                                messages: [{ role: 'user', content: 'Weather?' }] });
        stream.on('streamEvent', (e) => { if (e.type === 'content_block_delta') deltas.push(e.delta); });
        return { msg: await stream.finalMessage(), deltas };
      };
      // Arguments that are not JSON: the answer without streaming has {} for them; so has the stream.
      script([tc(0, { id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: 'not' } }),
              tc(0, { function: { arguments: ' js' } }), tc(0, { function: { arguments: 'on' } })]);
      const bad = await run();
      assert.deepEqual(bad.msg.content, [{ type: 'tool_use', id: 'call_1', name: 'get_weather', input: {} }]);
      assert.deepEqual(bad.deltas, [{ type: 'input_json_delta', partial_json: '{}' }]);
      // Two calls whose pieces interleave: each a whole block, in index order.
      script([tc(0, { id: 'call_a', type: 'function', function: { name: 'get_weather', arguments: '' } }),
              tc(0, { function: { arguments: '{"city":' } }),
              tc(1, { id: 'call_b', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Oslo"}' } }),
              tc(0, { function: { arguments: '"Rome"}' } })]);
      const two = await run();
      assert.deepEqual(two.msg.content.map((b) => [b.id, b.input]), [['call_a', { city: 'Rome' }], ['call_b', { city: 'Oslo' }]]);
      assert.equal(two.msg.stop_reason, 'tool_use');
    });

    test('countTokens: the estimate (string characters / 4)', async () => {
      const req = { model: 'gpt', system: 'Be brief.', tools: [WEATHER_TOOL],
                    messages: [{ role: 'user', content: 'How many tokens is this?' }] };
      const r = await client.messages.countTokens(req);
      assert.equal(r.input_tokens, Math.ceil(textChars([req.system, req.messages, req.tools]) / 4));
      assert.equal(fake.requests().length, 0, 'no provider call for an estimate');
    });
  });

  describe('a Claude Code-style session', () => {
    const system = [
      { type: 'text', text: "You are Claude Code, Anthropic's official CLI for Claude." },
      { type: 'text', text: `${'Follow the repository conventions. Never guess file paths. '.repeat(400)}`,
        cache_control: { type: 'ephemeral' } },
    ];
    const tools = ['Bash', 'Read', 'Edit', 'Grep', 'Glob'].map((name, i) => ({
      name,
      description: `${name}: ${'a tool of the coding agent. '.repeat(30)}`,
      input_schema: { type: 'object', properties: { arg: { type: 'string', description: 'ü — "quoted" \\ path' } },
                      required: ['arg'], additionalProperties: false, $schema: 'http://json-schema.org/draft-07/schema#' },
      ...(i === 4 ? { cache_control: { type: 'ephemeral' } } : {}),
    }));
    const body = (stream) => ({
      model: CLAUDE,
      max_tokens: 32000,
      system,
      tools,
      thinking: { type: 'enabled', budget_tokens: 4000 },
      metadata: { user_id: 'user_abc_account_def_session_0123' },
      stream,
      messages: [
        { role: 'user', content: [{ type: 'text', text: '<system-reminder>context</system-reminder>' },
                                  { type: 'text', text: 'List the files', cache_control: { type: 'ephemeral' } }] },
        { role: 'assistant', content: [
          { type: 'thinking', thinking: 'I should run ls.', signature: 'EqQBCkYIBxgCKkD' },
          { type: 'tool_use', id: 'toolu_01A', name: 'Bash', input: { arg: 'ls' } }] },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_01A', content: 'a.txt\nb.txt',
                                    cache_control: { type: 'ephemeral' } }] },
      ],
    });
    // Recorded as Claude Code sends it: pretty-printed here, so any re-serialization shows.
    const raw = (stream) => JSON.stringify(body(stream), null, 1);
    const headers = {
      'anthropic-version': '2023-06-01',
      'anthropic-beta': 'claude-code-20250219,interleaved-thinking-2025-05-14,fine-grained-tool-streaming-2025-05-14',
      'x-app': 'cli',
      'user-agent': 'claude-cli/2.0.0 (external, cli)',
    };
    const answer = {
      id: 'msg_01XFDUDYJgAACzvnptvVoYEL', type: 'message', role: 'assistant', model: CLAUDE,
      content: [
        { type: 'thinking', thinking: 'Two files.', signature: 'ErUBCkYICBgCIkB' },
        { type: 'text', text: 'There are two files: a.txt and b.txt.' },
      ],
      stop_reason: 'end_turn', stop_sequence: null,
      usage: { input_tokens: 12, cache_creation_input_tokens: 100, cache_read_input_tokens: 5400, output_tokens: 40,
               service_tier: 'standard' },
    };
    const ev = (type, data) => `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
    const streamed = [
      ev('message_start', { message: { ...answer, content: [], stop_reason: null,
                                       usage: { ...answer.usage, output_tokens: 1 } } }),
      ev('content_block_start', { index: 0, content_block: { type: 'thinking', thinking: '', signature: '' } }),
      ev('ping', {}),
      ev('content_block_delta', { index: 0, delta: { type: 'thinking_delta', thinking: 'Two files.' } }),
      ev('content_block_delta', { index: 0, delta: { type: 'signature_delta', signature: 'ErUBCkYICBgCIkB' } }),
      ev('content_block_stop', { index: 0 }),
      ev('content_block_start', { index: 1, content_block: { type: 'text', text: '' } }),
      ev('content_block_delta', { index: 1, delta: { type: 'text_delta', text: 'There are two files: ' } }),
      ev('content_block_delta', { index: 1, delta: { type: 'text_delta', text: 'a.txt and b.txt.' } }),
      ev('content_block_stop', { index: 1 }),
      ev('message_delta', { delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: 40 } }),
      ev('message_stop', {}),
    ];

    test('non-streamed: request bytes, beta headers and the answer unchanged; spend and metrics recorded', async () => {
      fake.script([{ match: { path: '/v1/messages' }, body: answer }]);
      const before = await (await fetchWithTimeout(`${gw.url}/metrics`)).text();
      const r = await post('/v1/messages', raw(false), headers);
      assert.equal(r.status, 200, r.text);
      assert.equal(r.text, JSON.stringify(answer), 'the answer as the provider sent it');
      const [seen] = fake.requests({ path: '/v1/messages' });
      assert.equal(seen.body_text, raw(false), 'the request body byte for byte');
      assert.equal(seen.headers['anthropic-beta'], headers['anthropic-beta']);
      assert.equal(seen.headers['anthropic-version'], '2023-06-01');
      assert.equal(seen.headers['x-api-key'], 'sk-ant-upstream');

      const cost = Number(r.headers.get('x-litellm-response-cost'));
      assert.ok(cost > 0, 'priced from the shipped table');
      const row = await rowOf(r.headers.get('x-litellm-call-id'));
      assert.equal(row.call_type, 'anthropic_messages');
      assert.equal(row.model, CLAUDE);
      assert.equal(row.model_group, CLAUDE);
      assert.equal(row.custom_llm_provider, 'anthropic');
      assert.equal(Number(row.prompt_tokens), 12 + 100 + 5400);
      assert.equal(Number(row.completion_tokens), 40);
      assert.equal(Number(row.cached_tokens), 5400);
      assert.equal(Number(row.cache_creation_tokens), 100);
      assert.ok(Math.abs(row.spend - cost) <= 1e-12 + 1e-9 * cost, `${row.spend} vs ${cost}`);

      // The row exists, so `finish` ran, and with it the metrics observer (same call).
      const afterText = await (await fetchWithTimeout(`${gw.url}/metrics`)).text();
      const name = 'litellm_proxy_total_requests_metric_total';
      assert.equal(metricSum(afterText, name, { requested_model: CLAUDE, status_code: '200' }) -
                   metricSum(before, name, { requested_model: CLAUDE, status_code: '200' }), 1);
      const tokens = 'litellm_input_tokens_metric_total';
      assert.equal(metricSum(afterText, tokens, { requested_model: CLAUDE }) -
                   metricSum(before, tokens, { requested_model: CLAUDE }), 12 + 100 + 5400);
    });

    test('streamed: the events reach the client exactly as the provider sent them', async () => {
      fake.script([{ match: { path: '/v1/messages' }, raw_chunks: streamed, content_type: 'text/event-stream' }]);
      const r = await post('/v1/messages', raw(true), headers);
      assert.equal(r.status, 200);
      assert.match(r.headers.get('content-type'), /^text\/event-stream/);
      assert.equal(r.text, streamed.join(''));
      const [seen] = fake.requests({ path: '/v1/messages' });
      assert.equal(seen.body_text, raw(true));
      assert.equal(seen.headers['anthropic-beta'], headers['anthropic-beta']);
      const row = await rowOf(r.headers.get('x-litellm-call-id'));
      assert.equal(row.call_type, 'anthropic_messages');
      assert.equal(Number(row.prompt_tokens), 12 + 100 + 5400);
      assert.equal(Number(row.completion_tokens), 40);
      assert.equal(Number(row.cached_tokens), 5400);
      assert.ok(row.spend > 0);
    });
  });

  describe('errors in Anthropic\'s shape', () => {
    test('malformed JSON, a missing or wrong messages member, a missing model: 400', async () => {
      assertAnthropicError(await post('/v1/messages', '{"model": "gpt", "messages": ['), 400, 'invalid_request_error');
      assertAnthropicError(await post('/v1/messages', '[1,2]'), 400, 'invalid_request_error');
      assertAnthropicError(await post('/v1/messages', { model: 'gpt', max_tokens: 5 }), 400, 'invalid_request_error');
      assertAnthropicError(await post('/v1/messages', { model: 'gpt', messages: 'hi' }), 400, 'invalid_request_error');
      assertAnthropicError(await post('/v1/messages', { messages: [] }), 400, 'invalid_request_error');
      assertAnthropicError(await post('/v1/messages/count_tokens', '{"model":'), 400, 'invalid_request_error');
      assert.equal(fake.requests().length, 0);
    });

    test('requests a translation cannot carry: 400 naming the member', async () => {
      const bad = [
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: 't', content: [{ type: 'image', source: {} }] }] },
      ];
      let r = await post('/v1/messages', { model: 'gpt', max_tokens: 5, messages: bad });
      assertAnthropicError(r, 400, 'invalid_request_error');
      assert.match(r.json.error.message, /messages\[0\]\.content\[0\]\.content/);
      r = await post('/v1/messages', { model: 'gpt', max_tokens: 5, messages: [{ role: 'system', content: 'x' }] });
      assertAnthropicError(r, 400, 'invalid_request_error');
      r = await post('/v1/messages', { model: 'gpt', max_tokens: 5, messages: [{ role: 'user', content: 'x' }],
                                       tools: [{ type: 'web_search_20250305', name: 'web_search' }] });
      assertAnthropicError(r, 400, 'invalid_request_error');
      assert.match(r.json.error.message, /Anthropic deployment/);
      assert.equal(fake.requests().length, 0);
    });

    test('a bad key (401), an unknown model, a provider error (429) through the SDK', async () => {
      assertAnthropicError(await post('/v1/messages', { model: 'gpt', messages: [] }, { 'x-api-key': 'sk-nope' }),
        401, 'authentication_error');
      const unknown = await post('/v1/messages', { model: 'nope', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] });
      assert.equal(unknown.json?.type, 'error', unknown.text);
      assert.ok(unknown.status >= 400 && unknown.status < 500);
      fake.script([{ match: { path: '/v1/messages' }, status: 429, error_message: 'slow down' }]);
      await assert.rejects(
        client.messages.create({ model: CLAUDE, max_tokens: 5, messages: [{ role: 'user', content: 'x' }] }),
        (e) => e instanceof Anthropic.RateLimitError && e.error?.error?.type === 'rate_limit_error' &&
               /slow down/.test(e.error.error.message));
    });

    test('a streamed answer that is no event stream: the SDK gets an APIError with its status', async () => {
      const ask = () => client.messages.create({ model: CLAUDE, max_tokens: 5, stream: true,
                                                 messages: [{ role: 'user', content: 'x' }] });
      fake.script([{ match: { path: '/v1/messages' }, stream: true, invalid_json: true }]);
      await assert.rejects(ask(), (e) => e instanceof Anthropic.InternalServerError && e.status === 500 &&
                                         e.error?.error?.type === 'api_error');
      fake.script([{ match: { path: '/v1/messages' },
                     body: { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } } }]);
      await assert.rejects(ask(), (e) => e instanceof Anthropic.APIError && e.status === 529 &&
                                         e.error?.error?.type === 'overloaded_error');
    });

    test('a stream that fails after its first events ends with an error event', async () => {
      fake.script([{ match: { path: '/v1/chat/completions' }, content: 'one two three four', error_after_chunks: 2 }]);
      const r = await post('/v1/messages', { model: 'gpt', max_tokens: 50, stream: true,
                                             messages: [{ role: 'user', content: 'count' }] });
      assert.equal(r.status, 200);
      assert.match(r.text, /^event: message_start\n/);
      assert.match(r.text, /event: error\ndata: \{"type":"error","error":\{"type":"[a-z_]+","message":/);
      assert.doesNotMatch(r.text, /message_stop/);
    });
  });
});
