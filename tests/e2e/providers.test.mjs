// End to end with the official `openai` npm SDK pointed at the gateway, one upstream per
// provider wire format: for openai/, azure/, anthropic/, ollama_chat/
// and ollama/ a non-streamed and a streamed chat give the same assembled text and usage as the
// fake provider produced; tool calls survive the round trip (both directions) for OpenAI and
// Anthropic, streamed and not.
import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import OpenAI from 'openai';

import { startFakeProvider } from '../fake_provider/server.mjs';
import { MASTER_KEY, startGateway, stopAll } from '../lib/gateway.mjs';

let fake;
let gw;
let client;

// Model group -> what the fake should see.
const PROVIDERS = {
  'p-openai': { provider: 'openai', path: '/v1/chat/completions' },
  'p-azure': { provider: 'azure', path: '/openai/deployments/az-chat-dep/chat/completions' },
  'p-anthropic': { provider: 'anthropic', path: '/v1/messages' },
  'p-ollama-chat': { provider: 'ollama', path: '/api/chat' },
  'p-ollama': { provider: 'ollama', path: '/api/generate' },
};

before(async () => {
  fake = await startFakeProvider();
  gw = await startGateway({
    config: {
      // One upstream answer per test (no retries), and no cooldowns after the scripted failures.
      router_settings: { num_retries: 0, disable_cooldowns: true },
      model_list: [
        { model_name: 'p-openai',
          litellm_params: { model: 'openai/gpt-x', api_base: `${fake.url}/v1`, api_key: 'sk-upstream-openai' } },
        { model_name: 'p-azure',
          litellm_params: { model: 'azure/az-chat-dep', api_base: fake.url, api_key: 'azure-upstream-key',
                            api_version: '2024-06-01' } },
        { model_name: 'p-anthropic',
          litellm_params: { model: 'anthropic/claude-3-5-sonnet-20241022', api_base: fake.url,
                            api_key: 'sk-ant-upstream' } },
        { model_name: 'p-ollama-chat', litellm_params: { model: 'ollama_chat/llama3.1', api_base: fake.url } },
        { model_name: 'p-ollama', litellm_params: { model: 'ollama/llama3.1', api_base: fake.url } },
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
  { role: 'user', content: 'Say hello to the switchyard' },
];

// Collects a streamed chat: text, usage, finish_reason and tool calls assembled from deltas.
async function collect(stream) {
  let text = '';
  let usage = null;
  let finish = null;
  let n = 0;
  const toolCalls = [];
  for await (const chunk of stream) {
    n += 1;
    assert.equal(chunk.object, 'chat.completion.chunk');
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      text += c.delta?.content ?? '';
      finish = c.finish_reason ?? finish;
      for (const tc of c.delta?.tool_calls ?? []) {
        const t = (toolCalls[tc.index] ??= { id: '', name: '', arguments: '' });
        if (tc.id) t.id = tc.id;
        if (tc.function?.name) t.name += tc.function.name;
        if (tc.function?.arguments) t.arguments += tc.function.arguments;
      }
    }
  }
  return { text, usage, finish, n, toolCalls };
}

function onlyRecord(path) {
  const recs = fake.requests();
  assert.equal(recs.length, 1, `expected one upstream request, got ${JSON.stringify(recs.map((r) => r.url))}`);
  assert.equal(recs[0].path, path, `upstream path ${recs[0].url}`);
  return recs[0];
}

function sameUsage(got, rec, what) {
  assert.ok(got, `${what}: no usage`);
  const want = rec.reply.usage;
  assert.deepEqual(
    { prompt_tokens: got.prompt_tokens, completion_tokens: got.completion_tokens, total_tokens: got.total_tokens },
    want, `${what}: usage differs from what the fake produced`);
}

for (const [model, { path }] of Object.entries(PROVIDERS)) {
  describe(`${model} (${path})`, () => {
    test('non-streamed chat: text and usage equal what the upstream produced', async () => {
      fake.script([{ content: `Answer from ${model}, exactly.`, usage: { prompt_tokens: 21, completion_tokens: 6 } }]);
      const r = await client.chat.completions.create({ model, messages, max_tokens: 64 });
      const rec = onlyRecord(path);
      assert.equal(rec.reply.stream, false, 'the gateway asked the upstream to stream a non-streamed call');
      assert.equal(r.object, 'chat.completion');
      assert.equal(r.choices[0].message.role, 'assistant');
      assert.equal(r.choices[0].message.content, rec.reply.content);
      assert.equal(r.choices[0].finish_reason, 'stop');
      sameUsage(r.usage, rec, 'non-streamed');
    });

    test('streamed chat with include_usage: assembled text and usage chunk equal the upstream', async () => {
      fake.script([{ chunks: ['Stre', 'amed ', 'from ', model], usage: { prompt_tokens: 13, completion_tokens: 4 } }]);
      const stream = await client.chat.completions.create({
        model, messages, max_tokens: 64, stream: true, stream_options: { include_usage: true },
      });
      const got = await collect(stream);
      const rec = onlyRecord(path);
      assert.equal(rec.reply.stream, true, 'the upstream was not asked to stream');
      assert.equal(got.text, rec.reply.content);
      assert.equal(got.text, `Streamed from ${model}`);
      assert.equal(got.finish, 'stop');
      assert.ok(got.n >= 4, `only ${got.n} chunks`);
      sameUsage(got.usage, rec, 'usage chunk');
    });

    test('streamed chat without include_usage still assembles the text', async () => {
      const stream = await client.chat.completions.create({ model, messages, stream: true });
      const got = await collect(stream);
      const rec = onlyRecord(path);
      assert.equal(got.text, rec.reply.content);
      assert.equal(got.finish, 'stop');
    });
  });
}

// ------------------------------------------------------------------ tool calls

const TOOLS = [{
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Current weather for a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  },
}];
const ASK = [{ role: 'user', content: 'Weather in Oslo?' }];

// The follow-up conversation: the assistant's tool call and the tool's answer.
function followUp(tc) {
  return [
    ...ASK,
    { role: 'assistant', content: null,
      tool_calls: [{ id: tc.id, type: 'function', function: { name: tc.name, arguments: tc.arguments } }] },
    { role: 'tool', tool_call_id: tc.id, content: '{"temp_c": 4, "sky": "rain"}' },
  ];
}

// The Anthropic request the follow-up must become: tool_use in an assistant turn, tool_result
// in a user turn.
function assertAnthropicFollowUp(rec, toolId) {
  const body = rec.body;
  assert.ok(Array.isArray(body.messages), JSON.stringify(body));
  const blocks = (m) => (typeof m.content === 'string' ? [{ type: 'text', text: m.content }] : m.content);
  assert.equal(body.messages.length, 3, `messages upstream: ${JSON.stringify(body.messages)}`);
  const [u, a, t] = body.messages;
  assert.equal(u.role, 'user');
  assert.equal(a.role, 'assistant');
  const use = blocks(a).find((b) => b.type === 'tool_use');
  assert.ok(use, `no tool_use block in the assistant turn: ${JSON.stringify(a)}`);
  assert.equal(use.id, toolId);
  assert.equal(use.name, 'get_weather');
  assert.deepEqual(use.input, { city: 'Oslo' }, 'tool_use.input must be the parsed arguments object');
  assert.equal(t.role, 'user');
  const result = blocks(t).find((b) => b.type === 'tool_result');
  assert.ok(result, `no tool_result block in the user turn: ${JSON.stringify(t)}`);
  assert.equal(result.tool_use_id, toolId);
  const resultText = typeof result.content === 'string'
    ? result.content : (result.content ?? []).map((c) => c.text ?? '').join('');
  assert.equal(resultText, '{"temp_c": 4, "sky": "rain"}');
  // tools offered in Anthropic's shape
  assert.ok(Array.isArray(body.tools), `tools upstream: ${JSON.stringify(body.tools)}`);
  assert.equal(body.tools[0].name, 'get_weather');
  assert.deepEqual(body.tools[0].input_schema, TOOLS[0].function.parameters);
}

function assertOpenAIFollowUp(rec, toolId) {
  const msgs = rec.body.messages;
  assert.equal(msgs.length, 3, JSON.stringify(msgs));
  assert.equal(msgs[1].role, 'assistant');
  assert.equal(msgs[1].tool_calls[0].id, toolId);
  assert.equal(msgs[1].tool_calls[0].function.name, 'get_weather');
  assert.deepEqual(JSON.parse(msgs[1].tool_calls[0].function.arguments), { city: 'Oslo' });
  assert.equal(msgs[2].role, 'tool');
  assert.equal(msgs[2].tool_call_id, toolId);
  assert.deepEqual(rec.body.tools, TOOLS);
}

for (const [model, { path, provider }] of [['p-openai', PROVIDERS['p-openai']], ['p-anthropic', PROVIDERS['p-anthropic']]]) {
  describe(`tool calls round trip: ${model}`, () => {
    const scripted = provider === 'anthropic' ? 'toolu_01Weather' : 'call_weather_1';

    for (const streamed of [false, true]) {
      test(`${streamed ? 'streamed' : 'non-streamed'}: SDK sees tool_calls; the follow-up reaches the upstream in its format`, async () => {
        fake.script([
          { content: '', tool_calls: [{ id: scripted, name: 'get_weather', arguments: { city: 'Oslo' } }] },
          { content: 'It is 4 degrees and raining in Oslo.' },
        ]);
        let tc;
        let finish;
        if (streamed) {
          const got = await collect(await client.chat.completions.create({
            model, messages: ASK, tools: TOOLS, tool_choice: 'auto', stream: true,
            stream_options: { include_usage: true },
          }));
          assert.equal(got.toolCalls.length, 1, JSON.stringify(got));
          tc = got.toolCalls[0];
          finish = got.finish;
        } else {
          const r = await client.chat.completions.create({ model, messages: ASK, tools: TOOLS, tool_choice: 'auto' });
          const m = r.choices[0].message;
          assert.ok(m.tool_calls?.length === 1, JSON.stringify(r));
          assert.equal(m.tool_calls[0].type, 'function');
          tc = { id: m.tool_calls[0].id, name: m.tool_calls[0].function.name, arguments: m.tool_calls[0].function.arguments };
          finish = r.choices[0].finish_reason;
        }
        const [first] = fake.requests();
        assert.equal(first.path, path);
        assert.equal(finish, 'tool_calls');
        assert.equal(tc.name, 'get_weather');
        assert.equal(typeof tc.arguments, 'string');
        assert.deepEqual(JSON.parse(tc.arguments), { city: 'Oslo' });
        assert.ok(tc.id, 'tool call without id');
        if (provider === 'anthropic') {
          assert.equal(tc.id, first.reply.anthropic_tool_ids[0]);
          assert.deepEqual(first.body.tool_choice, { type: 'auto' }, `tool_choice upstream: ${JSON.stringify(first.body.tool_choice)}`);
        } else {
          assert.equal(tc.id, scripted);
        }

        // Follow-up with the assistant's tool call and the tool's answer.
        const r2 = await client.chat.completions.create({ model, messages: followUp(tc), tools: TOOLS });
        assert.equal(r2.choices[0].message.content, 'It is 4 degrees and raining in Oslo.');
        const recs = fake.requests();
        assert.equal(recs.length, 2);
        if (provider === 'anthropic') assertAnthropicFollowUp(recs[1], tc.id);
        else assertOpenAIFollowUp(recs[1], tc.id);
      });
    }
  });
}

describe('text plus several tool calls in one answer', () => {
  for (const model of ['p-openai', 'p-anthropic', 'p-ollama-chat']) {
    for (const streamed of [false, true]) {
      test(`${model} ${streamed ? 'streamed' : 'non-streamed'}: tool_calls indexed 0..n-1 with their arguments, text kept`, async () => {
        fake.script([{
          content: 'Checking both.',
          tool_calls: [
            { id: 'toolu_a1', name: 'get_weather', arguments: { city: 'Oslo' } },
            { id: 'toolu_b2', name: 'get_weather', arguments: { city: 'Bergen' } },
          ],
        }]);
        let text;
        let calls;
        let finish;
        if (streamed) {
          const got = await collect(await client.chat.completions.create({ model, messages: ASK, tools: TOOLS, stream: true }));
          text = got.text;
          calls = got.toolCalls;
          finish = got.finish;
        } else {
          const r = await client.chat.completions.create({ model, messages: ASK, tools: TOOLS });
          text = r.choices[0].message.content;
          calls = (r.choices[0].message.tool_calls ?? []).map((t) => ({ id: t.id, name: t.function.name, arguments: t.function.arguments }));
          finish = r.choices[0].finish_reason;
        }
        assert.equal(text, 'Checking both.');
        assert.equal(calls.length, 2, `tool calls (holes mean wrong indexes): ${JSON.stringify(calls)}`);
        assert.ok(calls.every(Boolean), `tool call indexes not 0..n-1: ${JSON.stringify(calls)}`);
        assert.deepEqual(calls.map((c) => c.name), ['get_weather', 'get_weather']);
        assert.deepEqual(calls.map((c) => JSON.parse(c.arguments)), [{ city: 'Oslo' }, { city: 'Bergen' }]);
        assert.ok(calls.every((c) => c.id), 'tool call without id');
        assert.notEqual(calls[0].id, calls[1].id);
        assert.equal(finish, 'tool_calls');
      });
    }
  }
});

describe('anthropic/ with extended thinking and tools', () => {
  for (const streamed of [false, true]) {
    test(`${streamed ? 'streamed' : 'non-streamed'}: the signed thinking comes back with the tool call, so the next turn is accepted`, async () => {
      // Anthropic refuses a tool-calling assistant turn without the thinking block it was
      // signed with when thinking is on: the answer hands it out in thinking_blocks.
      fake.script([{ content: '', thinking: 'Oslo needs a lookup.', tool_calls: [{ id: 'toolu_t1', name: 'get_weather', arguments: { city: 'Oslo' } }] },
                   { content: 'Rain, 4C.' }]);
      const ask = { model: 'p-anthropic', messages: ASK, tools: TOOLS, reasoning_effort: 'low' };
      let assistant;
      if (streamed) {
        const thinking = [];
        const calls = [];
        for await (const chunk of await client.chat.completions.create({ ...ask, stream: true })) {
          const d = chunk.choices[0]?.delta ?? {};
          thinking.push(...(d.thinking_blocks ?? []));
          for (const tc of d.tool_calls ?? []) {
            const t = (calls[tc.index] ??= { id: '', type: 'function', function: { name: '', arguments: '' } });
            if (tc.id) t.id = tc.id;
            if (tc.function?.name) t.function.name += tc.function.name;
            if (tc.function?.arguments) t.function.arguments += tc.function.arguments;
          }
        }
        assistant = { role: 'assistant', content: null, tool_calls: calls, thinking_blocks: thinking };
      } else {
        const r = await client.chat.completions.create(ask);
        assistant = r.choices[0].message;
        assert.equal(assistant.reasoning_content, 'Oslo needs a lookup.');
      }
      assert.equal(assistant.thinking_blocks.length, 1);
      assert.equal(assistant.thinking_blocks[0].thinking, 'Oslo needs a lookup.');
      assert.ok(assistant.thinking_blocks[0].signature, 'the signature is handed out');
      const r2 = await client.chat.completions.create({
        ...ask,
        messages: [...ASK, assistant, { role: 'tool', tool_call_id: assistant.tool_calls[0].id, content: '4C, rain' }],
      });
      assert.equal(r2.choices[0].message.content, 'Rain, 4C.');
      const sent = fake.requests()[1].body.messages[1].content;
      assert.deepEqual(sent.map((b) => b.type), ['thinking', 'tool_use']);
      assert.equal(sent[0].signature, assistant.thinking_blocks[0].signature);
    });
  }
});

describe('errors through the SDK', () => {
  for (const model of ['p-openai', 'p-anthropic', 'p-ollama-chat']) {
    test(`${model}: an upstream error after streaming began surfaces as openai.APIError with the provider message`, async () => {
      fake.script([{ chunks: ['one ', 'two ', 'three'], error_after_chunks: 2, error_message: 'upstream broke mid-stream' }]);
      const stream = await client.chat.completions.create({ model, messages, stream: true });
      let text = '';
      await assert.rejects((async () => {
        for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
      })(), (e) => {
        assert.ok(e instanceof OpenAI.APIError, `got ${e?.constructor?.name}: ${e?.message}`);
        assert.match(e.message, /upstream broke mid-stream/);
        return true;
      });
      assert.equal(text, 'one two ');
    });
  }

  for (const model of ['p-openai', 'p-azure', 'p-anthropic', 'p-ollama-chat']) {
    test(`${model}: invalid JSON from the upstream (streamed) is an openai.APIError, never a SyntaxError`, async () => {
      fake.script([{ invalid_json: true }]);
      await assert.rejects((async () => {
        const stream = await client.chat.completions.create({ model, messages, stream: true });
        for await (const chunk of stream) void chunk;
      })(), (e) => {
        assert.ok(e instanceof OpenAI.APIError, `got ${e?.constructor?.name}: ${e?.message}`);
        return true;
      });
    });

    test(`${model}: invalid JSON from the upstream (non-streamed) is an openai.APIError (5xx)`, async () => {
      fake.script([{ invalid_json: true }]);
      await assert.rejects(client.chat.completions.create({ model, messages }), (e) => {
        assert.ok(e instanceof OpenAI.InternalServerError || (e instanceof OpenAI.APIError && e.status >= 500),
          `got ${e?.constructor?.name} ${e?.status}: ${e?.message}`);
        return true;
      });
    });
  }
});
