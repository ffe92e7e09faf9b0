// Malformed upstream output through the real binary: invalid JSON,
// cut SSE / NDJSON streams, unknown and broken Anthropic events, stalled streams. Each gives
// the client a clear OpenAI-shaped error (a real status before the first byte, a final
// `data: {"error":...}` event after it), never a hang or a crash: every test is bounded in
// time and checks that the gateway still answers /health/liveliness afterwards. Also
// Anthropic's front door (/v1/messages) to an Anthropic deployment: a streamed answer that
// is not an event stream (Anthropic-shaped errors there), and a request body with a BOM.
import { after, afterEach, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { startFakeProvider } from '../fake_provider/server.mjs';
import {
  MASTER_KEY, SLOW, assembleChat, call, fetchWithTimeout, openaiErrorProblems, sseData, startGateway, stopAll,
  streamTimed,
} from '../lib/gateway.mjs';

let fake;
let gw;

before(async () => {
  fake = await startFakeProvider();
  gw = await startGateway({
    config: {
      // One upstream answer per test (no retries), and no cooldowns after the scripted failures.
      router_settings: { num_retries: 0, disable_cooldowns: true,
                         fallbacks: [{ 'claude-fb': ['claude'] }, { 'oai-fb': ['oai'] }] },
      model_list: [
        { model_name: 'oai', litellm_params: { model: 'openai/gpt-x', api_base: `${fake.url}/v1`, api_key: 'sk-up-1' } },
        // Falls back to `oai` (the chat door's JSON-where-events-were-asked-for test).
        { model_name: 'oai-fb',
          litellm_params: { model: 'openai/gpt-broken', api_base: `${fake.url}/v1`, api_key: 'sk-up-1' } },
        { model_name: 'claude',
          litellm_params: { model: 'anthropic/claude-3-5-sonnet-20241022', api_base: fake.url, api_key: 'sk-ant-1' } },
        // Falls back to `claude` (the Anthropic front door's retry-and-fallback test).
        { model_name: 'claude-fb',
          litellm_params: { model: 'anthropic/claude-broken', api_base: fake.url, api_key: 'sk-ant-1' } },
        { model_name: 'ollama-chat', litellm_params: { model: 'ollama_chat/llama3.1', api_base: fake.url } },
        { model_name: 'ollama-gen', litellm_params: { model: 'ollama/llama3.1', api_base: fake.url } },
        { model_name: 'az',
          litellm_params: { model: 'azure/dep', api_base: fake.url, api_key: 'az-1', api_version: '2024-06-01' } },
        // Short stream_timeout for the stall tests.
        { model_name: 'oai-stall',
          litellm_params: { model: 'openai/stall-me', api_base: `${fake.url}/v1`, api_key: 'sk-up-1', stream_timeout: 1 } },
        { model_name: 'claude-stall',
          litellm_params: { model: 'anthropic/stall-me', api_base: fake.url, api_key: 'sk-ant-1', stream_timeout: 1 } },
        { model_name: 'ollama-stall',
          litellm_params: { model: 'ollama_chat/stall-me', api_base: fake.url, stream_timeout: 1 } },
      ],
    },
  });
});
after(async () => {
  await stopAll();
  await fake?.close();
});
beforeEach(() => fake.reset());

// After every test: the gateway process is alive and answers liveliness.
afterEach(async () => {
  assert.equal(gw.proc.exitInfo, null, `gateway exited: ${JSON.stringify(gw.proc.exitInfo)}\n${gw.stderr().slice(-3000)}`);
  const r = await fetchWithTimeout(`${gw.url}/health/liveliness`, { timeoutMs: 3000 });
  await r.arrayBuffer();
  assert.equal(r.status, 200);
});

const USER = [{ role: 'user', content: 'Say hello' }];
const auth = { authorization: `Bearer ${MASTER_KEY}` };
const BOUND_MS = 5000 * SLOW;

async function chat(model, body = {}) {
  const t0 = performance.now();
  const r = await call(gw, '/v1/chat/completions', { body: { model, messages: USER, ...body }, timeoutMs: BOUND_MS + 2000 });
  r.took = performance.now() - t0;
  return r;
}

async function stream(model, body = {}) {
  const r = await streamTimed(`${gw.url}/v1/chat/completions`, {
    headers: auth, body: { model, messages: USER, stream: true, ...body }, timeoutMs: BOUND_MS + 2000,
  });
  r.payloads = sseData(r.text);
  return r;
}

// A real HTTP error status with an OpenAI-shaped body (nothing had reached the client).
function assertHttpError(r, { statuses = [500, 502, 503], match } = {}) {
  assert.ok(statuses.includes(r.status), `status ${r.status}, expected one of ${statuses}: ${r.text}`);
  let j = r.json;
  if (j === undefined) {
    try {
      j = JSON.parse(r.text);
    } catch {
      assert.fail(`error body is not JSON: ${r.text}`);
    }
  }
  assert.deepEqual(openaiErrorProblems(j, r.status), []);
  if (match) assert.match(j.error.message, match);
  return j;
}

// A 200 stream that ends with a final `data: {"error":...}` event and no [DONE].
function assertErrorEvent(r, { textBefore } = {}) {
  assert.equal(r.status, 200, r.text);
  assert.ok(!r.payloads.includes('[DONE]'), `[DONE] on a failed stream: ${r.text}`);
  const lastRaw = r.payloads.at(-1);
  assert.ok(lastRaw, `empty stream: ${JSON.stringify(r.text)}`);
  let last;
  try {
    last = JSON.parse(lastRaw);
  } catch {
    assert.fail(`last event is not JSON: ${lastRaw}`);
  }
  assert.ok(last.error && typeof last.error === 'object', `last event is not an error: ${lastRaw}`);
  assert.equal(typeof last.error.message, 'string');
  assert.ok(last.error.message.length > 0);
  if (textBefore !== undefined) assert.equal(assembleChat(r.payloads.slice(0, -1)).text, textBefore);
  return last.error;
}

// ------------------------------------------------------------------ invalid JSON bodies

describe('invalid JSON body (non-streamed)', () => {
  for (const model of ['oai', 'claude', 'ollama-chat', 'az']) {
    test(`${model}: clear OpenAI-shaped 5xx`, async () => {
      fake.script([{ invalid_json: true }]);
      const r = await chat(model);
      assertHttpError(r);
      assert.ok(r.took < BOUND_MS, `took ${r.took} ms`);
      assert.equal(fake.requests().length, 1);
    });
  }

  test('oai: a 200 whose body is valid JSON of the wrong shape -> OpenAI-shaped 5xx', async () => {
    fake.script([{ body: { hello: 'not a completion' } }]);
    const r = await chat('claude');
    assertHttpError(r);
  });

  test('an HTML error page with status 502 keeps 502, OpenAI-shaped', async () => {
    fake.script([{ status: 502, raw_body: '<html><body>Bad Gateway</body></html>', content_type: 'text/html', times: 2 }]);
    for (const model of ['oai', 'claude']) {
      const r = await chat(model);
      assertHttpError(r, { statuses: [502] });
    }
  });
});

// ------------------------------------------------------------------ streams

describe('invalid JSON in the first stream frame', () => {
  for (const model of ['oai', 'claude', 'ollama-chat']) {
    test(`${model}: HTTP error status (nothing was sent yet)`, async () => {
      fake.script([{ invalid_json: true }]);
      const r = await stream(model);
      assertHttpError(r);
    });
  }
});

describe('SSE / NDJSON stream cut by the upstream', () => {
  for (const model of ['oai', 'claude', 'ollama-chat']) {
    test(`${model}: cut before the first chunk -> HTTP error status`, async () => {
      fake.script([{ chunks: 4, cut_after_chunks: 0 }]);
      const r = await stream(model);
      assertHttpError(r);
      assert.equal(fake.requests()[0].cut, true);
    });

    test(`${model}: cut after the first chunk -> final error event, no [DONE]`, async () => {
      fake.script([{ chunks: ['a', 'b', 'c', 'd'], cut_after_chunks: 2 }]);
      const r = await stream(model);
      assertErrorEvent(r, { textBefore: 'ab' });
    });
  }

  test('openai: invalid JSON in a frame after the first chunk -> error event, the broken frame not relayed', async () => {
    const c = (delta) => `data: ${JSON.stringify({ id: 'x', object: 'chat.completion.chunk', created: 1, model: 'gpt-x',
                                                   choices: [{ index: 0, delta, finish_reason: null }] })}\n\n`;
    fake.script([{ stream: true, raw_chunks: [c({ role: 'assistant', content: '' }), c({ content: 'ok' }),
                                              'data: {"id": "broken", "choices": [\n\n', c({ content: ' never' }),
                                              'data: [DONE]\n\n'] }]);
    const r = await stream('oai');
    assert.ok(!r.text.includes('"broken"'), `the invalid frame was relayed to the client: ${r.text}`);
    assertErrorEvent(r, { textBefore: 'ok' });
  });

  test('openai: stream ends cleanly but without [DONE] and finish_reason -> error event', async () => {
    const c = (delta) => `data: ${JSON.stringify({ id: 'x', object: 'chat.completion.chunk', created: 1, model: 'gpt-x',
                                                   choices: [{ index: 0, delta, finish_reason: null }] })}\n\n`;
    fake.script([{ stream: true, raw_chunks: [c({ role: 'assistant', content: '' }), c({ content: 'half' })] }]);
    const r = await stream('oai');
    // LiteLLM relays what it got; a clean end without [DONE] may be accepted. Either a complete
    // stream with the text, or an error event; never a hang.
    assert.equal(r.status, 200, r.text);
    assert.equal(assembleChat(r.payloads.filter((p) => !p.startsWith('{"error"'))).text, 'half');
  });
});

// A provider that ignores stream: true (or fails with status 200) answers with one JSON
// body. The chat door reads it once the body ends without a single event: an error object
// is that provider error (its status, OpenAI's shape, a fallback's chance); a whole
// completion is replayed as the chunks of its stream; anything else is a clear 500.
describe('OpenAI-compatible: JSON where events were asked for', () => {
  test('an error object with status 200 -> that error (the status its type or code names), a fallback\'s chance', async () => {
    fake.script([{ stream: true, raw_body: JSON.stringify({ error: { message: 'Rate limit reached for gpt-x',
                                                                     type: 'rate_limit_error', code: null } }),
                   content_type: 'application/json' }]);
    assertHttpError(await stream('oai'), { statuses: [429], match: /Rate limit reached for gpt-x/ });
    fake.script([{ body: { error: { message: 'upstream overloaded', code: 503 } } }]);
    assertHttpError(await stream('oai'), { statuses: [503], match: /upstream overloaded/ });
    // Nothing reached the client: the fallback gets its chance.
    fake.reset();
    fake.script([{ match: { model: 'gpt-broken' }, body: { error: { message: 'model is loading', type: 'server_error' } } }]);
    const r = await stream('oai-fb');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.headers.get('x-litellm-attempted-fallbacks'), '1');
    assert.equal(r.payloads.at(-1), '[DONE]');
    assert.deepEqual(fake.requests().map((q) => q.body.model), ['gpt-broken', 'gpt-x']);
  });

  test('a whole completion -> replayed as chunks (text, finish_reason, usage when asked), then [DONE]', async () => {
    fake.script([{ stream: false, content: 'Hello from a JSON answer', usage: { prompt_tokens: 9, completion_tokens: 5 } }]);
    const r = await stream('oai', { stream_options: { include_usage: true } });
    assert.equal(r.status, 200, r.text);
    assert.match(r.headers.get('content-type'), /^text\/event-stream/);
    assert.equal(r.payloads.at(-1), '[DONE]');
    const chunks = r.payloads.slice(0, -1).map((p) => JSON.parse(p));
    for (const c of chunks) assert.equal(c.object, 'chat.completion.chunk', JSON.stringify(c));
    assert.equal(assembleChat(r.payloads).text, 'Hello from a JSON answer');
    assert.ok(chunks.some((c) => c.choices?.[0]?.finish_reason === 'stop'), r.text);
    const usage = chunks.at(-1);
    assert.deepEqual(usage.choices, []);
    assert.equal(usage.usage.prompt_tokens, 9);
    assert.equal(usage.usage.completion_tokens, 5);
  });

  test('JSON that is neither -> a clear 500 naming it', async () => {
    fake.script([{ stream: true, raw_body: '[1, 2, 3]', content_type: 'application/json' }]);
    assertHttpError(await stream('oai'), { statuses: [500], match: /not an event stream/ });
  });
});

// Anthropic event stream helpers.
const ev = (type, data = {}) => `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
const START = ev('message_start', {
  message: { id: 'msg_1', type: 'message', role: 'assistant', model: 'claude-3-5-sonnet-20241022', content: [],
             stop_reason: null, stop_sequence: null, usage: { input_tokens: 7, output_tokens: 1 } },
});
const BLOCK = ev('content_block_start', { index: 0, content_block: { type: 'text', text: '' } });
const delta = (text) => ev('content_block_delta', { index: 0, delta: { type: 'text_delta', text } });
const END = [
  ev('content_block_stop', { index: 0 }),
  ev('message_delta', { delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: 3 } }),
  ev('message_stop'),
];

describe('Anthropic event stream', () => {
  test('an unknown event type is ignored; the stream completes with [DONE]', async () => {
    fake.script([{
      stream: true,
      raw_chunks: [START, BLOCK, delta('Hello'),
                   ev('future_event_type', { foo: { bar: 1 } }),
                   ev('ping'),
                   delta(' world'),
                   ev('content_block_delta', { index: 0, delta: { type: 'future_delta', something: 1 } }),
                   ...END],
    }]);
    const r = await stream('claude', { stream_options: { include_usage: true } });
    assert.equal(r.status, 200, r.text);
    assert.ok(!r.payloads.some((p) => p.startsWith('{"error"')), `error event: ${r.text}`);
    const a = assembleChat(r.payloads);
    assert.equal(a.text, 'Hello world');
    assert.equal(a.done, true, r.text);
    assert.equal(a.finish, 'stop');
    assert.equal(a.usage?.prompt_tokens, 7);
    assert.equal(a.usage?.completion_tokens, 3);
  });

  test('invalid JSON in an event after the first chunk -> error event', async () => {
    fake.script([{
      stream: true,
      raw_chunks: [START, BLOCK, delta('Hello'),
                   'event: content_block_delta\ndata: {"type": "content_block_delta", "index": 0, "delta": {\n\n',
                   delta(' never'), ...END],
    }]);
    const r = await stream('claude');
    assertErrorEvent(r, { textBefore: 'Hello' });
  });

  test('an `error` event from Anthropic mid-stream -> error event with its message', async () => {
    fake.script([{
      stream: true,
      raw_chunks: [START, BLOCK, delta('Hi'),
                   ev('error', { error: { type: 'overloaded_error', message: 'Overloaded right now' } })],
    }]);
    const r = await stream('claude');
    const e = assertErrorEvent(r, { textBefore: 'Hi' });
    assert.match(e.message, /Overloaded right now/);
  });

  test('stream that ends without message_stop -> error event', async () => {
    fake.script([{ stream: true, raw_chunks: [START, BLOCK, delta('Hello'), delta(' there')] }]);
    const r = await stream('claude');
    assertErrorEvent(r, { textBefore: 'Hello there' });
  });

  test('non-SSE garbage in a 200 stream -> clear error, no hang', async () => {
    fake.script([{ stream: true, raw_chunks: ['this is not an event stream at all\n\n'] }]);
    const r = await stream('claude');
    if (r.status === 200) assertErrorEvent(r);
    else assertHttpError(r);
  });
});

describe('Ollama NDJSON stream', () => {
  const line = (o) => `${JSON.stringify({ model: 'llama3.1', created_at: '2024-01-01T00:00:00Z', ...o })}\n`;

  test('ends without done:true -> error event', async () => {
    fake.script([{
      stream: true,
      raw_chunks: [line({ message: { role: 'assistant', content: 'Hel' }, done: false }),
                   line({ message: { role: 'assistant', content: 'lo' }, done: false })],
    }]);
    const r = await stream('ollama-chat');
    assertErrorEvent(r, { textBefore: 'Hello' });
  });

  test('/api/generate ends without done:true -> error event', async () => {
    fake.script([{ stream: true, raw_chunks: [line({ response: 'Hel', done: false })] }]);
    const r = await stream('ollama-gen');
    assertErrorEvent(r, { textBefore: 'Hel' });
  });

  test('a line split across writes is reassembled; done:true completes', async () => {
    const l1 = line({ message: { role: 'assistant', content: 'split ' }, done: false });
    const l2 = line({ message: { role: 'assistant', content: 'line' }, done: false });
    const l3 = line({ message: { role: 'assistant', content: '' }, done: true, done_reason: 'stop',
                      prompt_eval_count: 4, eval_count: 2 });
    fake.script([{ stream: true, raw_chunks: [l1.slice(0, 10), l1.slice(10) + l2.slice(0, 5), l2.slice(5), l3] }]);
    const r = await stream('ollama-chat', { stream_options: { include_usage: true } });
    assert.equal(r.status, 200, r.text);
    const a = assembleChat(r.payloads);
    assert.equal(a.text, 'split line');
    assert.equal(a.done, true);
    assert.deepEqual([a.usage?.prompt_tokens, a.usage?.completion_tokens], [4, 2]);
  });

  test('invalid JSON line after the first chunk -> error event', async () => {
    fake.script([{
      stream: true,
      raw_chunks: [line({ message: { role: 'assistant', content: 'ok' }, done: false }), '{"model": "broken", "message": {\n'],
    }]);
    const r = await stream('ollama-chat');
    assertErrorEvent(r, { textBefore: 'ok' });
  });

  test('a {"error": ...} line mid-stream -> error event with its message', async () => {
    fake.script([{
      stream: true,
      raw_chunks: [line({ message: { role: 'assistant', content: 'ok' }, done: false }),
                   `${JSON.stringify({ error: 'model ran out of memory' })}\n`],
    }]);
    const r = await stream('ollama-chat');
    const e = assertErrorEvent(r, { textBefore: 'ok' });
    assert.match(e.message, /model ran out of memory/);
  });
});

describe('odd but valid stream framing is handled', () => {
  const oc = (delta, finish = null) => JSON.stringify({ id: 'x', object: 'chat.completion.chunk', created: 1, model: 'gpt-x',
                                                         choices: [{ index: 0, delta, finish_reason: finish }] });

  test('openai: SSE frames split across writes at arbitrary points', async () => {
    const whole = `data: ${oc({ role: 'assistant', content: '' })}\n\ndata: ${oc({ content: 'Hello' })}\n\n` +
                  `data: ${oc({ content: ' split' })}\n\ndata: ${oc({}, 'stop')}\n\ndata: [DONE]\n\n`;
    const parts = [];
    for (let i = 0; i < whole.length; i += 7) parts.push(whole.slice(i, i + 7));
    fake.script([{ stream: true, raw_chunks: parts }]);
    const r = await stream('oai');
    assert.equal(r.status, 200, r.text);
    const a = assembleChat(r.payloads);
    assert.equal(a.text, 'Hello split');
    assert.equal(a.done, true);
    assert.equal(r.payloads.filter((p) => p === '[DONE]').length, 1, `[DONE] count: ${r.text}`);
  });

  test('openai-compatible servers: CRLF, "data:" without a space, comments and event: lines', async () => {
    fake.script([{ stream: true, raw_chunks: [
      ': keep-alive\r\n\r\n',
      `data:${oc({ role: 'assistant', content: '' })}\r\n\r\n`,
      `event: message\r\ndata: ${oc({ content: 'crlf ' })}\r\n\r\n`,
      `data:${oc({ content: 'ok' })}\n\n`,
      `data: ${oc({}, 'stop')}\r\n\r\n`,
      'data: [DONE]\r\n\r\n',
    ] }]);
    const r = await stream('oai');
    assert.equal(r.status, 200, r.text);
    const a = assembleChat(r.payloads);
    assert.equal(a.text, 'crlf ok');
    assert.equal(a.done, true);
    assert.ok(!r.payloads.some((p) => p.startsWith('{"error"')), r.text);
  });

  test('anthropic: events split across writes at arbitrary points', async () => {
    const whole = [START, BLOCK, delta('Hello'), ev('ping'), delta(' split'), ...END].join('');
    const parts = [];
    for (let i = 0; i < whole.length; i += 5) parts.push(whole.slice(i, i + 5));
    fake.script([{ stream: true, raw_chunks: parts }]);
    const r = await stream('claude');
    assert.equal(r.status, 200, r.text);
    const a = assembleChat(r.payloads);
    assert.equal(a.text, 'Hello split');
    assert.equal(a.done, true);
  });

  test('openai: a usage-only chunk from the upstream is not duplicated to a client that asked for usage', async () => {
    fake.script([{ chunks: ['a', 'b'] }]);
    const r = await stream('oai', { stream_options: { include_usage: true } });
    const usageChunks = r.payloads.filter((p) => p !== '[DONE]').map((p) => JSON.parse(p)).filter((c) => c.usage);
    assert.equal(usageChunks.length, 1, `usage chunks: ${JSON.stringify(usageChunks)}`);
  });
});

describe('stalled upstream stream with stream_timeout: 1', () => {
  for (const model of ['oai-stall', 'claude-stall', 'ollama-stall']) {
    test(`${model}: stall before the first byte -> 408 within ~1 s`, async () => {
      fake.script([{ stall: true }]);
      const t0 = performance.now();
      const r = await stream(model);
      const took = performance.now() - t0;
      assertHttpError(r, { statuses: [408] });
      assert.ok(took >= 900, `gave up after only ${took.toFixed(0)} ms`);
      assert.ok(took < 2500 * SLOW, `took ${took.toFixed(0)} ms`);
      await fake.waitFor((rs) => rs[0]?.aborted, { timeoutMs: 2000 * SLOW });
    });

    test(`${model}: stall after the first chunks -> error event within ~1 s of silence`, async () => {
      fake.script([{ chunks: ['x', 'y', 'z', 'w'], stall_after_chunks: 2 }]);
      const t0 = performance.now();
      const r = await stream(model);
      const took = performance.now() - t0;
      const e = assertErrorEvent(r, { textBefore: 'xy' });
      assert.match(e.message, /time/i, `error: ${e.message}`);
      assert.ok(took >= 900, `gave up after only ${took.toFixed(0)} ms`);
      assert.ok(took < 2500 * SLOW, `took ${took.toFixed(0)} ms`);
      await fake.waitFor((rs) => rs[0]?.aborted, { timeoutMs: 2000 * SLOW });
    });
  }
});

// ------------------------------------------------- Anthropic's front door (/v1/messages)

// /v1/messages to an Anthropic deployment relays the provider's events as sent; an answer
// that is not such a stream must not be relayed inside a 200: until message_start nothing
// has gone out, so the client gets a real status in Anthropic's error shape (and a
// fallback its chance), as the chat door does for a broken first chunk.
async function messages(model, { stream: streamed = true, raw } = {}) {
  const body = raw ?? JSON.stringify({ model, max_tokens: 20, stream: streamed, messages: USER });
  return call(gw, '/v1/messages', {
    key: null, headers: { 'content-type': 'application/json', 'x-api-key': MASTER_KEY }, body, timeoutMs: BOUND_MS + 2000,
  });
}

function assertAnthropicError(r, status, type, match) {
  assert.equal(r.status, status, r.text);
  assert.match(r.headers.get('content-type'), /^application\/json/, r.text);
  assert.equal(r.json?.type, 'error', r.text);
  assert.equal(r.json.error.type, type, r.text);
  assert.equal(typeof r.json.error.message, 'string');
  if (match) assert.match(r.json.error.message, match);
}

describe('Anthropic front door: a streamed answer that is not an event stream', () => {
  test('a broken first event -> 500 in Anthropic\'s shape, nothing relayed', async () => {
    fake.script([{ stream: true, invalid_json: true }]);
    assertAnthropicError(await messages('claude'), 500, 'api_error', /message_start/);
    fake.script([{ stream: true, raw_chunks: ['event: message_start\ndata: {"type": "message_start", "mess\n\n', START] }]);
    assertAnthropicError(await messages('claude'), 500, 'api_error', /not valid JSON/);
  });

  test('an unexpected first event, or bytes that are no events -> 500, nothing relayed', async () => {
    fake.script([{ stream: true, raw_chunks: [ev('surprise', { x: 1 }), START, BLOCK, delta('Hi'), ...END] }]);
    assertAnthropicError(await messages('claude'), 500, 'api_error', /surprise/);
    fake.script([{ stream: true, raw_chunks: ['this is not an event stream at all\n\n'] }]);
    assertAnthropicError(await messages('claude'), 500, 'api_error', /not an event stream/);
  });

  test('a broken first event gives the fallback its chance', async () => {
    fake.script([{ match: { model: 'claude-broken' }, stream: true, invalid_json: true }]);
    const r = await messages('claude-fb');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.headers.get('x-litellm-attempted-fallbacks'), '1');
    assert.match(r.text, /^event: message_start\n/);
    assert.match(r.text, /event: message_stop\n/);
    assert.deepEqual(fake.requests().map((q) => q.body.model), ['claude-broken', 'claude-3-5-sonnet-20241022']);
  });

  test('pings before message_start are relayed with it, byte for byte', async () => {
    const chunks = [ev('ping'), ': keep-alive\n\n', START, BLOCK, delta('Hello'), ...END];
    fake.script([{ stream: true, raw_chunks: chunks }]);
    const r = await messages('claude');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.text, chunks.join(''));
  });

  test('JSON instead of events: Anthropic\'s error JSON is that error (status from its type)', async () => {
    fake.script([{ body: { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded right now' } } }]);
    assertAnthropicError(await messages('claude'), 529, 'overloaded_error', /Overloaded right now/);
    fake.script([{ body: { type: 'error', error: { type: 'invalid_request_error', message: 'bad thing' } } }]);
    assertAnthropicError(await messages('claude'), 400, 'invalid_request_error', /bad thing/);
  });

  test('JSON instead of events: a whole message -> a clear 500, not relayed as if it were events', async () => {
    fake.script([{ stream: false }]);
    assertAnthropicError(await messages('claude'), 500, 'api_error', /whole message/);
    fake.script([{ stream: true, raw_body: '[1, 2, 3]', content_type: 'application/json' }]);
    assertAnthropicError(await messages('claude'), 500, 'api_error', /not an event stream/);
  });
});

describe('Anthropic front door: a request body that starts with a UTF-8 BOM', () => {
  // The chat door accepts it and sends a body without it; so does /v1/messages.
  const BOM = '\uFEFF';
  for (const streamed of [false, true]) {
    test(`accepted, and forwarded without the BOM (stream: ${streamed})`, async () => {
      const sent = JSON.stringify({ model: 'claude', max_tokens: 20, stream: streamed, messages: USER });
      const r = await messages('claude', { raw: BOM + sent });
      assert.equal(r.status, 200, r.text);
      const [seen] = fake.requests();
      assert.equal(seen.body_text, sent.replace('"claude"', '"claude-3-5-sonnet-20241022"'));
    });
  }

  test('the chat door: accepted too', async () => {
    const r = await call(gw, '/v1/chat/completions', {
      body: BOM + JSON.stringify({ model: 'oai', messages: USER }), timeoutMs: BOUND_MS,
    });
    assert.equal(r.status, 200, r.text);
    assert.equal(fake.requests()[0].body.model, 'gpt-x');
  });
});

describe('after all that', () => {
  test('the gateway still serves every provider normally', async () => {
    for (const model of ['oai', 'claude', 'ollama-chat', 'ollama-gen', 'az']) {
      const r = await chat(model);
      assert.equal(r.status, 200, `${model}: ${r.text}`);
      assert.equal(r.json.choices[0].message.content, 'Hello from fake provider');
      const s = await stream(model);
      assert.equal(s.status, 200);
      assert.equal(assembleChat(s.payloads).text, 'Hello from fake provider');
    }
  });
});
