// End to end through cohere/ (Cohere's v2 chat) with the official `openai` npm SDK: the fake
// provider speaks v2 chat JSON and its typed SSE stream; the key comes from COHERE_API_KEY.
import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import OpenAI from 'openai';

import { startFakeProvider } from '../fake_provider/server.mjs';
import { MASTER_KEY, startGateway, stopAll } from '../lib/gateway.mjs';

let fake;
let client;

before(async () => {
  fake = await startFakeProvider();
  const gw = await startGateway({
    env: { COHERE_API_KEY: 'co-env-key' },
    config: {
      router_settings: { num_retries: 0, disable_cooldowns: true },
      model_list: [
        { model_name: 'co', litellm_params: { model: 'cohere/command-r-plus', api_base: fake.url } },
        { model_name: 'co-chat', litellm_params: { model: 'cohere_chat/command-r', api_base: fake.url, api_key: 'co-own' } },
      ],
    },
  });
  client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: MASTER_KEY, maxRetries: 0, timeout: 15_000 });
});
after(async () => {
  await stopAll();
  await fake?.close();
});
beforeEach(() => fake.reset());

const messages = [
  { role: 'system', content: 'You are terse.' },
  { role: 'user', content: 'What is the weather in Paris?' },
];
const tools = [{
  type: 'function',
  function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } },
}];

function onlyRecord() {
  const recs = fake.requests();
  assert.equal(recs.length, 1, `expected one upstream request, got ${recs.length}`);
  assert.equal(recs[0].path, '/v2/chat');
  return recs[0];
}

function sameUsage(got, rec) {
  assert.deepEqual(
    { prompt_tokens: got.prompt_tokens, completion_tokens: got.completion_tokens, total_tokens: got.total_tokens },
    rec.reply.usage);
}

describe('cohere v2 chat', () => {
  test('non-streamed: tool calls and usage; key from COHERE_API_KEY', async () => {
    fake.script([{ content: '', tool_calls: [{ name: 'get_weather', arguments: { city: 'Paris' } }],
                   usage: { prompt_tokens: 40, completion_tokens: 7 } }]);
    const r = await client.chat.completions.create({ model: 'co', messages, tools, max_tokens: 100, top_p: 0.5 });
    const rec = onlyRecord();
    assert.equal(rec.headers.authorization, 'Bearer co-env-key');
    assert.equal(rec.body.model, 'command-r-plus');
    assert.equal(rec.body.p, 0.5);
    assert.equal(rec.body.max_tokens, 100);
    assert.deepEqual(rec.body.messages[0], { role: 'system', content: 'You are terse.' });
    assert.equal(r.choices[0].finish_reason, 'tool_calls');
    const calls = r.choices[0].message.tool_calls;
    assert.equal(calls.length, 1);
    assert.equal(calls[0].function.name, 'get_weather');
    assert.deepEqual(JSON.parse(calls[0].function.arguments), { city: 'Paris' });
    sameUsage(r.usage, rec);
  });

  test('streamed with include_usage: text, tool call and usage from the typed events', async () => {
    fake.script([{ chunks: ['Let ', 'me ', 'check.'], tool_calls: [{ name: 'get_weather', arguments: { city: 'Paris' } }],
                   usage: { prompt_tokens: 12, completion_tokens: 8 } }]);
    const stream = await client.chat.completions.create({
      model: 'co-chat', messages, tools, stream: true, stream_options: { include_usage: true },
    });
    let text = '';
    let usage = null;
    let finish = null;
    const calls = [];
    for await (const chunk of stream) {
      if (chunk.usage) usage = chunk.usage;
      for (const c of chunk.choices) {
        text += c.delta?.content ?? '';
        finish = c.finish_reason ?? finish;
        for (const tc of c.delta?.tool_calls ?? []) {
          const t = (calls[tc.index] ??= { id: '', name: '', arguments: '' });
          if (tc.id) t.id = tc.id;
          if (tc.function?.name) t.name += tc.function.name;
          if (tc.function?.arguments) t.arguments += tc.function.arguments;
        }
      }
    }
    const rec = onlyRecord();
    assert.equal(rec.headers.authorization, 'Bearer co-own');
    assert.equal(rec.body.stream, true);
    assert.equal(text, 'Let me check.');
    assert.equal(finish, 'tool_calls');
    assert.equal(calls.length, 1);
    assert.equal(calls[0].id, rec.reply.tool_calls[0].id);
    assert.deepEqual(JSON.parse(calls[0].arguments), { city: 'Paris' });
    sameUsage(usage, rec);
  });

  test('the tool result goes back in v2 shape', async () => {
    await client.chat.completions.create({
      model: 'co', tools,
      messages: [...messages,
        { role: 'assistant', content: null, tool_calls: [
          { id: 'call_9', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] },
        { role: 'tool', tool_call_id: 'call_9', content: 'sunny' }],
    });
    const rec = onlyRecord();
    assert.deepEqual(rec.body.messages.slice(2), [
      { role: 'assistant', tool_calls: [{ id: 'call_9', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] },
      { role: 'tool', tool_call_id: 'call_9', content: 'sunny' },
    ]);
  });

  test('response_format json_schema is sent in v2\'s shape (json_object with json_schema)', async () => {
    fake.script([{ content: '{"city":"Paris"}' }]);
    const schema = { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] };
    const r = await client.chat.completions.create({
      model: 'co', messages,
      response_format: { type: 'json_schema', json_schema: { name: 'place', strict: true, schema } },
    });
    assert.equal(r.choices[0].message.content, '{"city":"Paris"}');
    assert.deepEqual(onlyRecord().body.response_format, { type: 'json_object', json_schema: schema });
  });

  test('errors: a 429 is a RateLimitError; a mid-stream ERROR and invalid JSON are APIErrors', async () => {
    fake.script([{ status: 429, error_message: 'trial key rate limit' }]);
    await assert.rejects(client.chat.completions.create({ model: 'co', messages }), (e) => {
      assert.ok(e instanceof OpenAI.RateLimitError, `got ${e?.constructor?.name} ${e?.status}`);
      assert.match(e.message, /CohereException/);
      return true;
    });
    fake.script([{ chunks: ['a ', 'b ', 'c'], error_after_chunks: 2, error_message: 'generation failed' }]);
    const stream = await client.chat.completions.create({ model: 'co', messages, stream: true });
    await assert.rejects((async () => {
      for await (const chunk of stream) void chunk;
    })(), (e) => {
      assert.ok(e instanceof OpenAI.APIError, `got ${e?.constructor?.name}`);
      assert.match(e.message, /generation failed/);
      return true;
    });
    fake.script([{ invalid_json: true }]);
    await assert.rejects(client.chat.completions.create({ model: 'co', messages }), (e) => {
      assert.ok(e instanceof OpenAI.APIError && e.status >= 500, `got ${e?.constructor?.name} ${e?.status}`);
      return true;
    });
  });
});
