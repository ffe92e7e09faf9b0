// End to end with the official `openai` npm SDK pointed at the gateway: chat, streaming, models.list(), AuthenticationError, BadRequestError.
import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import OpenAI from 'openai';

import { startFakeProvider } from '../fake_provider/server.mjs';
import { MASTER_KEY, mockModel, openaiModel, startGateway, stopAll } from '../lib/gateway.mjs';

const DEMO_TEXT = 'Hello from Switchyard!';
let fake;
let gw;
let client;

before(async () => {
  fake = await startFakeProvider();
  gw = await startGateway({
    config: { model_list: [mockModel('demo', DEMO_TEXT), openaiModel('gpt-x', `${fake.url}/v1`)] },
  });
  client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: MASTER_KEY, maxRetries: 0, timeout: 20_000 });
});
after(async () => {
  await stopAll();
  await fake?.close();
});
beforeEach(() => fake.reset());

const messages = [{ role: 'user', content: 'Say hello' }];

async function collect(stream) {
  let text = '';
  let usage = null;
  let finish = null;
  let n = 0;
  for await (const chunk of stream) {
    n += 1;
    assert.equal(chunk.object, 'chat.completion.chunk');
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      text += c.delta?.content ?? '';
      finish = c.finish_reason ?? finish;
    }
  }
  return { text, usage, finish, n };
}

describe('mock model `demo` (offline)', () => {
  test('chat.completions.create', async () => {
    const r = await client.chat.completions.create({ model: 'demo', messages });
    assert.equal(r.object, 'chat.completion');
    assert.equal(r.choices[0].message.content, DEMO_TEXT);
    assert.equal(r.choices[0].finish_reason, 'stop');
    assert.ok(r.usage.total_tokens >= r.usage.prompt_tokens);
    assert.equal(fake.requests().length, 0);
  });

  test('streaming', async () => {
    const stream = await client.chat.completions.create({ model: 'demo', messages, stream: true });
    const { text, finish } = await collect(stream);
    assert.equal(text, DEMO_TEXT);
    assert.equal(finish, 'stop');
    assert.equal(fake.requests().length, 0);
  });
});

describe('through the fake provider', () => {
  test('chat.completions.create: text and usage equal what the upstream produced', async () => {
    fake.script([{ content: 'Upstream answer, exactly.', usage: { prompt_tokens: 12, completion_tokens: 4 } }]);
    const r = await client.chat.completions.create({ model: 'gpt-x', messages, temperature: 0 });
    const [rec] = fake.requests();
    assert.equal(r.choices[0].message.content, rec.reply.content);
    assert.equal(r.usage.prompt_tokens, rec.reply.usage.prompt_tokens);
    assert.equal(r.usage.completion_tokens, rec.reply.usage.completion_tokens);
    assert.equal(r.usage.total_tokens, rec.reply.usage.total_tokens);
    assert.equal(rec.headers.authorization, 'Bearer sk-upstream-123');
    assert.deepEqual(rec.body.messages, messages);
  });

  test('with the raw response: x-litellm-call-id is set', async () => {
    const { data, response } = await client.chat.completions.create({ model: 'gpt-x', messages }).withResponse();
    assert.equal(data.choices[0].message.content, 'Hello from fake provider');
    assert.ok(response.headers.get('x-litellm-call-id'));
  });

  test('streaming: assembled text equals; usage with include_usage', async () => {
    fake.script([{ chunks: ['Str', 'eam', 'ed ', 'text'], chunk_delay_ms: 20 }]);
    const stream = await client.chat.completions.create({
      model: 'gpt-x', messages, stream: true, stream_options: { include_usage: true },
    });
    const { text, usage, finish, n } = await collect(stream);
    const [rec] = fake.requests();
    assert.equal(text, 'Streamed text');
    assert.equal(text, rec.reply.content);
    assert.equal(finish, 'stop');
    assert.ok(n >= 4, `only ${n} chunks`);
    assert.ok(usage, 'no usage chunk');
    assert.equal(usage.prompt_tokens, rec.reply.usage.prompt_tokens);
    assert.equal(usage.completion_tokens, rec.reply.usage.completion_tokens);
  });

  test('streaming without include_usage still assembles the text', async () => {
    const stream = await client.chat.completions.create({ model: 'gpt-x', messages, stream: true });
    const { text } = await collect(stream);
    assert.equal(text, 'Hello from fake provider');
  });

  test('tool calls survive the round trip', async () => {
    fake.script([{ content: '', tool_calls: [{ id: 'call_t1', name: 'lookup', arguments: { q: 'switchyard' } }] }]);
    const r = await client.chat.completions.create({
      model: 'gpt-x', messages,
      tools: [{ type: 'function', function: { name: 'lookup', parameters: { type: 'object', properties: { q: { type: 'string' } } } } }],
    });
    const tc = r.choices[0].message.tool_calls?.[0];
    assert.ok(tc, JSON.stringify(r));
    assert.equal(tc.id, 'call_t1');
    assert.equal(tc.function.name, 'lookup');
    assert.deepEqual(JSON.parse(tc.function.arguments), { q: 'switchyard' });
    assert.equal(r.choices[0].finish_reason, 'tool_calls');
  });
});

describe('models and errors', () => {
  test('models.list() returns the configured model names', async () => {
    const ids = [];
    for await (const m of client.models.list()) ids.push(m.id);
    assert.deepEqual(ids.sort(), ['demo', 'gpt-x']);
  });

  test('wrong key: openai.AuthenticationError (401)', async () => {
    const bad = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'sk-not-the-key-0000', maxRetries: 0, timeout: 10_000 });
    await assert.rejects(bad.chat.completions.create({ model: 'demo', messages }), (e) => {
      assert.ok(e instanceof OpenAI.AuthenticationError, `got ${e?.constructor?.name}: ${e?.message}`);
      assert.equal(e.status, 401);
      return true;
    });
    await assert.rejects(bad.models.list(), OpenAI.AuthenticationError);
  });

  test('unknown model: openai.BadRequestError (400) naming the model and /v1/models', async () => {
    await assert.rejects(client.chat.completions.create({ model: 'not-a-model', messages }), (e) => {
      assert.ok(e instanceof OpenAI.BadRequestError, `got ${e?.constructor?.name}: ${e?.message}`);
      assert.equal(e.status, 400);
      assert.match(e.message, /not-a-model/);
      assert.match(e.message, /\/v1\/models/);
      assert.equal(e.code, '400');
      assert.equal(e.type, 'invalid_request_error');
      return true;
    });
  });

  test('unknown model while streaming: BadRequestError before any chunk', async () => {
    await assert.rejects(
      client.chat.completions.create({ model: 'not-a-model', messages, stream: true }),
      OpenAI.BadRequestError,
    );
  });

  test('upstream 429 reaches the SDK as RateLimitError', async () => {
    // Every attempt: the gateway retries a 429 (num_retries 2, backoff) before giving up.
    fake.script([{ status: 429, error_message: 'slow down please', times: -1 }]);
    await assert.rejects(client.chat.completions.create({ model: 'gpt-x', messages }), (e) => {
      assert.ok(e instanceof OpenAI.RateLimitError, `got ${e?.constructor?.name}: ${e?.message}`);
      assert.match(e.message, /slow down please/);
      return true;
    });
  });
});
