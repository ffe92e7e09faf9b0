// OpenAI's Responses API (POST /v1/responses, GET/DELETE /v1/responses/{id},
// POST .../cancel) end to end with the official `openai` npm SDK: against an OpenAI and an
// Azure deployment (the request forwarded as is to the fake provider's /v1/responses, its
// answer and typed events relayed with the gateway's response id) and against an
// Anthropic and an Ollama deployment (translated to chat and back; the conversation kept by
// the gateway for previous_response_id). Function tools and a follow-up with
// previous_response_id, streamed and not; retrieve and delete; malformed bodies (400 in
// OpenAI's shape); then, with Postgres, the spend rows and /metrics counters of these
// requests against the fake provider's own counts.
import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { execFileSync } from 'node:child_process';

import OpenAI from 'openai';

import { startFakeProvider } from '../fake_provider/server.mjs';
import {
  call, delay, fetchWithTimeout, MASTER_KEY, openaiErrorProblems, psql, SLOW, startGateway, stopAll, withDatabase,
} from '../lib/gateway.mjs';

const WEATHER_TOOL = {
  type: 'function',
  name: 'get_weather',
  description: 'The weather in a city',
  parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
};

function modelList(fakeUrl) {
  return [
    { model_name: 'r-openai',
      litellm_params: { model: 'openai/gpt-4o', api_base: `${fakeUrl}/v1`, api_key: 'sk-upstream-openai' } },
    { model_name: 'r-azure',
      litellm_params: { model: 'azure/az-resp-dep', api_base: fakeUrl, api_key: 'azure-upstream-key',
                        api_version: '2025-03-01-preview' } },
    { model_name: 'r-anthropic',
      litellm_params: { model: 'anthropic/claude-sonnet-4-20250514', api_base: fakeUrl, api_key: 'sk-ant-upstream' } },
    { model_name: 'r-ollama', litellm_params: { model: 'ollama_chat/llama3.1', api_base: fakeUrl } },
    { model_name: 'r-vllm', litellm_params: { model: 'hosted_vllm/qwen3', api_base: `${fakeUrl}/v1` } },
    { model_name: 'r-openai-drops',
      litellm_params: { model: 'openai/gpt-4o', api_base: `${fakeUrl}/v1`, api_key: 'sk-upstream-openai',
                        additional_drop_params: ['top_p'] } },
    { model_name: 'r-vllm-drops',
      litellm_params: { model: 'hosted_vllm/qwen3', api_base: `${fakeUrl}/v1`, max_tokens: 99, temperature: 0.3,
                        additional_drop_params: ['top_p'] } },
    { model_name: 'r-mock', litellm_params: { model: 'openai/gpt-4o', mock_response: 'Mocked responses answer' } },
  ];
}

// Every event of a streamed response, with the text and the final response assembled.
async function collectEvents(stream) {
  const types = [];
  let text = '';
  let completed = null;
  const args = {};
  let lastSeq = -1;
  for await (const ev of stream) {
    types.push(ev.type);
    assert.ok(ev.sequence_number > lastSeq, `sequence numbers increase: ${ev.sequence_number} after ${lastSeq}`);
    lastSeq = ev.sequence_number;
    if (ev.type === 'response.output_text.delta') text += ev.delta;
    if (ev.type === 'response.function_call_arguments.delta') args[ev.item_id] = (args[ev.item_id] ?? '') + ev.delta;
    if (ev.type === 'response.completed') completed = ev.response;
  }
  return { types, text, completed, args };
}

describe('responses', () => {
  let fake;
  let gw;
  let client;

  before(async () => {
    fake = await startFakeProvider();
    gw = await startGateway({
      config: { router_settings: { num_retries: 0, disable_cooldowns: true }, model_list: modelList(fake.url) },
    });
    client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: MASTER_KEY, maxRetries: 0, timeout: 15_000 });
  });
  after(async () => {
    await stopAll();
    await fake?.close();
  });
  beforeEach(() => fake.reset());

  for (const [model, path, provider] of [
    ['r-openai', '/v1/responses', 'openai'],
    ['r-azure', '/openai/responses', 'azure'],
  ]) {
    test(`${model}: a function call and its follow-up reach ${provider}'s Responses API as sent`, async () => {
      fake.script([{ content: '', tool_calls: [{ id: 'call_w1', name: 'get_weather', arguments: { city: 'Oslo' } }] },
                   { content: 'It is sunny in Oslo.' }]);
      const req = { model, input: 'Weather in Oslo?', tools: [WEATHER_TOOL], tool_choice: 'auto', temperature: 0.2,
                    max_output_tokens: 200 };
      const { data: first, response } = await client.responses.create(req).withResponse();
      assert.equal(first.object, 'response');
      assert.equal(first.status, 'completed');
      const fc = first.output.find((o) => o.type === 'function_call');
      assert.ok(fc, JSON.stringify(first.output));
      assert.equal(fc.call_id, 'call_w1');
      assert.equal(fc.name, 'get_weather');
      assert.deepEqual(JSON.parse(fc.arguments), { city: 'Oslo' });
      assert.equal(response.headers.get('x-litellm-model-group'), model);
      assert.ok(response.headers.get('x-litellm-model-id'));
      assert.ok(response.headers.get('x-litellm-call-id'));
      // The upstream saw the client's request with only `model` replaced.
      const [up] = fake.requests({ path });
      assert.equal(up.provider, provider);
      assert.deepEqual(up.body, { ...req, model: provider === 'azure' ? 'az-resp-dep' : 'gpt-4o' });
      if (provider === 'azure') {
        assert.equal(up.query['api-version'], '2025-03-01-preview');
        assert.equal(up.headers['api-key'], 'azure-upstream-key');
      } else {
        assert.equal(up.headers.authorization, 'Bearer sk-upstream-openai');
      }
      // The id names the deployment; the provider's own id is inside it.
      const upstreamId = up.reply.response_id;
      assert.notEqual(first.id, upstreamId);
      assert.match(first.id, /^resp_/);
      assert.ok(Buffer.from(first.id.slice(5), 'base64').toString().endsWith(`;response_id:${upstreamId}`));
      assert.equal(first.usage.input_tokens, up.reply.usage.prompt_tokens);
      assert.equal(first.usage.output_tokens, up.reply.usage.completion_tokens);

      const second = await client.responses.create({
        model, previous_response_id: first.id, tools: [WEATHER_TOOL],
        input: [{ type: 'function_call_output', call_id: 'call_w1', output: '{"sky":"clear"}' }],
      });
      assert.equal(second.output_text, 'It is sunny in Oslo.');
      const up2 = fake.requests({ path })[1];
      assert.equal(up2.body.previous_response_id, upstreamId, 'the provider gets its own id back');
      assert.equal(second.previous_response_id, first.id, 'the echo carries the gateway id');

      // GET and DELETE go to the deployment that made it.
      const got = await client.responses.retrieve(second.id);
      assert.equal(got.id, second.id);
      assert.equal(got.output_text, 'It is sunny in Oslo.');
      await client.responses.delete(second.id);
      await assert.rejects(client.responses.retrieve(second.id), (e) => e.status === 404);
      const del = fake.requests().filter((r) => r.method === 'DELETE');
      assert.equal(del.length, 1);
      assert.ok(del[0].path.endsWith(`/responses/${up2.reply.response_id}`), del[0].path);
      // cancel is the provider's answer (a 400 for a response that is not in the background).
      await assert.rejects(client.responses.cancel(first.id), (e) => e.status === 400);
    });

    test(`${model}: streamed, the typed events are relayed with the gateway's id`, async () => {
      fake.script([{ content: 'Streaming from the responses API', chunks: 4 }]);
      const stream = await client.responses.create({ model, input: 'Say something', stream: true });
      const { types, text, completed } = await collectEvents(stream);
      assert.equal(text, 'Streaming from the responses API');
      assert.equal(types[0], 'response.created');
      assert.equal(types.at(-1), 'response.completed');
      assert.equal(types.filter((t) => t === 'response.output_text.delta').length, 4);
      const [up] = fake.requests({ path });
      assert.equal(up.body.stream, true);
      assert.ok(Buffer.from(completed.id.slice(5), 'base64').toString().endsWith(`;response_id:${up.reply.response_id}`));
      assert.equal(completed.usage.output_tokens, up.reply.usage.completion_tokens);
      // The follow-up, streamed too, finds the provider's conversation.
      fake.script([{ content: 'Again' }]);
      const s2 = await client.responses.create({ model, input: 'Once more', stream: true,
                                                previous_response_id: completed.id });
      const r2 = await collectEvents(s2);
      assert.equal(r2.text, 'Again');
      assert.equal(fake.requests({ path })[1].body.previous_response_id, up.reply.response_id);
    });
  }

  for (const [model, path] of [['r-anthropic', '/v1/messages'], ['r-ollama', '/api/chat']]) {
    test(`${model}: translated to chat, a function call and a follow-up with previous_response_id`, async () => {
      fake.script([{ content: '', tool_calls: [{ id: 'toolu_1', name: 'get_weather', arguments: { city: 'Oslo' } }] },
                   { content: 'It is sunny in Oslo.' }]);
      const first = await client.responses.create({
        model, instructions: 'You are terse.', input: 'Weather in Oslo?', tools: [WEATHER_TOOL],
        max_output_tokens: 300, temperature: 0.3,
      });
      assert.equal(first.status, 'completed');
      assert.equal(first.instructions, 'You are terse.');
      assert.equal(first.model, model);
      const fc = first.output.find((o) => o.type === 'function_call');
      assert.ok(fc, JSON.stringify(first.output));
      assert.equal(fc.name, 'get_weather');
      assert.deepEqual(JSON.parse(fc.arguments), { city: 'Oslo' });
      assert.ok(fc.call_id);
      const [up] = fake.requests({ path });
      if (model === 'r-anthropic') {
        assert.equal(up.body.system, 'You are terse.');
        assert.equal(up.body.max_tokens, 300);
        assert.equal(up.body.tools[0].name, 'get_weather');
        assert.deepEqual(up.body.tools[0].input_schema, WEATHER_TOOL.parameters);
      }
      assert.equal(first.usage.input_tokens, up.reply.usage.prompt_tokens);
      assert.equal(first.usage.output_tokens, up.reply.usage.completion_tokens);
      assert.equal(first.usage.total_tokens, up.reply.usage.prompt_tokens + up.reply.usage.completion_tokens);

      const second = await client.responses.create({
        model, previous_response_id: first.id,
        input: [{ type: 'function_call_output', call_id: fc.call_id, output: '{"sky":"clear"}' }],
      });
      assert.equal(second.output_text, 'It is sunny in Oslo.');
      assert.equal(second.previous_response_id, first.id);
      // The provider got the whole conversation: the question, the call and its result
      // (instructions are not carried over, as in OpenAI's API).
      const up2 = fake.requests({ path })[1];
      const msgs = up2.body.messages;
      const flat = JSON.stringify(msgs);
      assert.ok(flat.includes('Weather in Oslo?'), flat);
      assert.ok(flat.includes('get_weather'), flat);
      assert.ok(flat.includes('{\\"sky\\":\\"clear\\"}') || flat.includes('"sky"'), flat);
      if (model === 'r-anthropic') {
        assert.equal(up2.body.system, undefined);
        assert.deepEqual(msgs.map((m) => m.role), ['user', 'assistant', 'user']);
        assert.equal(msgs[1].content.find((b) => b.type === 'tool_use').id, fc.call_id);
        assert.equal(msgs[2].content.find((b) => b.type === 'tool_result').tool_use_id, fc.call_id);
      }

      // Kept by the gateway: retrieve, then delete.
      const got = await client.responses.retrieve(second.id);
      assert.deepEqual(got.output, second.output);
      const del = await client.responses.delete(second.id);
      assert.deepEqual(del, { id: second.id, object: 'response', deleted: true });
      await assert.rejects(client.responses.retrieve(second.id), (e) => e.status === 404);
      await assert.rejects(client.responses.create({ model, input: 'x', previous_response_id: second.id }),
                           (e) => e.status === 400 && e.param === 'previous_response_id');
      await assert.rejects(client.responses.cancel(first.id), (e) => e.status === 400);
    });

    test(`${model}: streamed, chat chunks become the Responses typed events`, async () => {
      fake.script([{ content: 'Hello there from chat', chunks: 3 },
                   { content: '', tool_calls: [{ id: 'toolu_9', name: 'get_weather', arguments: { city: 'Rome' } }] }]);
      const stream = await client.responses.create({ model, input: 'Hi', stream: true });
      const { types, text, completed } = await collectEvents(stream);
      assert.equal(text, 'Hello there from chat');
      assert.deepEqual(types.slice(0, 4), ['response.created', 'response.in_progress', 'response.output_item.added',
                                           'response.content_part.added']);
      assert.deepEqual(types.slice(-4), ['response.output_text.done', 'response.content_part.done',
                                         'response.output_item.done', 'response.completed']);
      assert.equal(completed.status, 'completed');
      assert.equal(completed.output[0].content[0].text, 'Hello there from chat');
      const [up] = fake.requests({ path });
      assert.equal(completed.usage.input_tokens, up.reply.usage.prompt_tokens);
      assert.equal(completed.usage.output_tokens, up.reply.usage.completion_tokens);

      // A streamed tool call, continuing the first answer.
      const s2 = await client.responses.create({ model, input: 'And Rome?', tools: [WEATHER_TOOL], stream: true,
                                                previous_response_id: completed.id });
      const r2 = await collectEvents(s2);
      assert.ok(r2.types.includes('response.function_call_arguments.delta'), r2.types.join());
      assert.ok(r2.types.includes('response.function_call_arguments.done'), r2.types.join());
      const call = r2.completed.output.find((o) => o.type === 'function_call');
      // Anthropic keeps the provider's call id; Ollama has none, so the adapter makes one.
      if (model === 'r-anthropic') assert.equal(call.call_id, 'toolu_9');
      else assert.match(call.call_id, /^call_/);
      assert.deepEqual(JSON.parse(call.arguments), { city: 'Rome' });
      assert.deepEqual(JSON.parse(Object.values(r2.args)[0]), { city: 'Rome' });
      const flat = JSON.stringify(fake.requests({ path })[1].body.messages);
      assert.ok(flat.includes('Hello there from chat') && flat.includes('And Rome?'), flat);
    });
  }

  // Chat chunks exactly as an OpenAI-compatible server may send them.
  const chatChunks = (deltas, finish) => [
    ...deltas.map((delta) => `data: ${JSON.stringify({ id: 'chatcmpl-x', object: 'chat.completion.chunk', created: 1,
                                                      model: 'qwen3', choices: [{ index: 0, delta, finish_reason: null }] })}\n\n`),
    `data: ${JSON.stringify({ id: 'chatcmpl-x', object: 'chat.completion.chunk', created: 1, model: 'qwen3',
                              choices: [{ index: 0, delta: {}, finish_reason: finish }],
                              usage: { prompt_tokens: 5, completion_tokens: 6, total_tokens: 11 } })}\n\n`,
    'data: [DONE]\n\n',
  ];

  test('translated, tool calls whose chunks interleave by index reach the SDK as their own function_calls', async () => {
    const tc = (index, fields) => ({ tool_calls: [{ index, ...fields }] });
    fake.script([{ match: { path: '/v1/chat/completions' }, raw_chunks: chatChunks([
      tc(0, { id: 'call_a', type: 'function', function: { name: 'f', arguments: '' } }),
      tc(0, { function: { arguments: '{"x":' } }),
      tc(1, { id: 'call_b', type: 'function', function: { name: 'g', arguments: '{}' } }),
      tc(0, { function: { arguments: '1}' } }),
    ], 'tool_calls'), content_type: 'text/event-stream' }]);
    const final = await client.responses.stream({ model: 'r-vllm', input: 'two calls', tools: [WEATHER_TOOL] })
      .finalResponse();
    const calls = final.output.filter((o) => o.type === 'function_call');
    assert.deepEqual(calls.map((c) => [c.call_id, c.name, c.arguments]),
                     [['call_a', 'f', '{"x":1}'], ['call_b', 'g', '{}']], JSON.stringify(final.output));
    assert.equal(final.output.length, 2, JSON.stringify(final.output));
  });

  test('retries and fallbacks apply as for chat', async () => {
    // A retry on the same group (num_retries in the body), then the answer.
    fake.script([{ status: 500, error_message: 'transient' }, { content: 'after a retry' }]);
    const { data: r1, response: h1 } = await client.responses.create({ model: 'r-openai', input: 'x', num_retries: 1 })
      .withResponse();
    assert.equal(r1.output_text, 'after a retry');
    assert.equal(h1.headers.get('x-litellm-attempted-retries'), '1');
    assert.equal(fake.requests({ path: '/v1/responses' }).length, 2);
    assert.deepEqual(fake.requests({ path: '/v1/responses' })[1].body, { model: 'gpt-4o', input: 'x' });
    // A failing OpenAI group falls back to an Anthropic one: translated there.
    fake.reset();
    fake.script([{ status: 500, error_message: 'down', match: { path: '/v1/responses' } },
                 { content: 'from the fallback', match: { path: '/v1/messages' } }]);
    const { data: r2, response: h2 } = await client.responses.create({ model: 'r-openai', input: 'y',
                                                                       fallbacks: ['r-anthropic'] }).withResponse();
    assert.equal(r2.output_text, 'from the fallback');
    assert.equal(h2.headers.get('x-litellm-model-group'), 'r-anthropic');
    assert.equal(h2.headers.get('x-litellm-attempted-fallbacks'), '1');
    assert.equal(fake.requests({ path: '/v1/messages' }).length, 1);
    // The fallback's answer is the gateway's to keep: it can be read back.
    assert.equal((await client.responses.retrieve(r2.id)).output_text, 'from the fallback');
  });

  test('the drop lists apply: forwarded to OpenAI and translated to chat, additional_drop_params never sent', async () => {
    fake.script([{ content: 'one' }, { content: 'two' }]);
    const req = { input: 'hi', temperature: 0.2, top_p: 0.5, max_output_tokens: 100 };
    // Forwarded: the deployment drops top_p, the request temperature.
    await client.responses.create({ ...req, model: 'r-openai-drops', additional_drop_params: ['temperature'] });
    const [native] = fake.requests({ path: '/v1/responses' });
    assert.deepEqual(native.body, { model: 'gpt-4o', input: 'hi', max_output_tokens: 100 });
    // Translated: the request's list drops a Responses member (max_output_tokens) and a
    // chat one (the deployment's max_tokens default it would become); the deployment drops top_p.
    await client.responses.create({ model: 'r-vllm-drops', input: 'hi', top_p: 0.5, max_output_tokens: 100,
                                    additional_drop_params: ['max_output_tokens', 'max_tokens'] });
    const [chat] = fake.requests({ path: '/v1/chat/completions' });
    assert.equal(chat.body.temperature, 0.3, JSON.stringify(chat.body));
    for (const name of ['top_p', 'max_tokens', 'max_output_tokens', 'additional_drop_params']) {
      assert.ok(!(name in chat.body), `${name} not sent: ${JSON.stringify(chat.body)}`);
    }
  });

  test('a mock deployment answers Responses offline, streamed and not', async () => {
    const r = await client.responses.create({ model: 'r-mock', input: 'anything' });
    assert.equal(r.output_text, 'Mocked responses answer');
    const { text, completed } = await collectEvents(await client.responses.create({ model: 'r-mock', input: 'x', stream: true }));
    assert.equal(text, 'Mocked responses answer');
    assert.equal(completed.status, 'completed');
    assert.equal(fake.requests().length, 0);
  });

  test('text.format json_schema becomes response_format for a chat provider', async () => {
    fake.script([{ content: '{"ok":true}' }]);
    await client.responses.create({
      model: 'r-ollama', input: 'json please',
      text: { format: { type: 'json_schema', name: 'answer', schema: { type: 'object', properties: { ok: { type: 'boolean' } } }, strict: true } },
    });
    const [up] = fake.requests({ path: '/api/chat' });
    assert.deepEqual(up.body.format, { type: 'object', properties: { ok: { type: 'boolean' } } });
  });

  test('a provider error mid-stream ends the stream with response.failed', async () => {
    // The pause between pieces makes the failure come after the first events in practice;
    // should one read still bring it all (a loaded machine), the failure comes before any
    // event and is a plain error status, which is checked instead.
    fake.script([{ content: 'one two three four', chunks: 4, error_after_chunks: 2, chunk_delay_ms: 50 }]);
    const events = [];
    try {
      const stream = await client.responses.create({ model: 'r-anthropic', input: 'Hi', stream: true });
      for await (const ev of stream) events.push(ev);
    } catch (e) {
      assert.equal(events.length, 0, `an error after ${events.length} events: ${e}`);
      assert.ok(e.status >= 500, String(e));
      assert.match(e.message, /mid-stream/);
      return;
    }
    const types = events.map((e) => e.type);
    assert.ok(types.includes('response.output_text.delta'), types.join());
    assert.ok(!types.includes('response.completed'), types.join());
    assert.equal(types.at(-1), 'response.failed', types.join());
    const failed = events.at(-1).response;
    assert.equal(failed.status, 'failed');
    assert.match(failed.error.message, /mid-stream/);
    assert.ok(types.includes('error'), types.join());
  });

  test('an OpenAI stream cut mid-way ends as a translated one: error, then response.failed, numbered on', async () => {
    fake.script([{ content: 'one two three four five six', chunks: 6, cut_after_chunks: 3, match: { path: '/v1/responses' } }]);
    const r = await fetchWithTimeout(`${gw.url}/v1/responses`, {
      method: 'POST',
      headers: { authorization: `Bearer ${MASTER_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'r-openai', input: 'Hi', stream: true }),
    });
    assert.equal(r.status, 200);
    const text = await r.text();
    const events = text.split('\n\n').filter((b) => b.trim() !== '').map((b) => {
      const [head, data] = b.split('\n');
      return { event: head.slice('event: '.length), data: JSON.parse(data.slice('data: '.length)) };
    });
    const types = events.map((e) => e.event);
    assert.ok(types.includes('response.output_text.delta'), types.join());
    assert.deepEqual(types.slice(-2), ['error', 'response.failed'], types.join());
    // Every event numbered, one after the other, the gateway's two continuing the provider's.
    events.forEach((e, i) => assert.equal(e.data.sequence_number, i, `${e.event} at ${i}`));
    const failed = events.at(-1).data.response;
    assert.equal(failed.status, 'failed');
    assert.match(failed.error.message, /OpenAIException - .*connection broken/);
    assert.equal(failed.id, events[0].data.response.id, 'the gateway\'s id, as in response.created');
    assert.match(failed.id, /^resp_/);

    // The SDK's stream reads it to the end and reports the failure.
    fake.script([{ content: 'one two three four five six', chunks: 6, cut_after_chunks: 3, match: { path: '/v1/responses' } }]);
    const seen = [];
    const stream = await client.responses.create({ model: 'r-openai', input: 'Hi', stream: true });
    for await (const ev of stream) seen.push(ev.type);
    assert.deepEqual(seen.slice(-2), ['error', 'response.failed'], seen.join());
  });

  test('malformed bodies get a clear 400 in OpenAI\'s shape', async () => {
    const post = async (body, raw) => {
      const r = await fetchWithTimeout(`${gw.url}/v1/responses`, {
        method: 'POST', headers: { authorization: `Bearer ${MASTER_KEY}`, 'content-type': 'application/json' },
        body: raw ?? JSON.stringify(body),
      });
      const json = await r.json();
      assert.deepEqual(openaiErrorProblems(json, r.status), [], JSON.stringify(json));
      return { status: r.status, error: json.error };
    };
    const cases = [
      [null, '{"model": "r-openai", "input": ', 'invalid_request_error', /JSON/],
      [null, '[1,2]', 'invalid_request_error', /object/],
      [{ input: 'hi' }, null, 'invalid_request_error', /model/],
      [{ model: 'r-anthropic' }, null, 'invalid_request_error', /input/],
      [{ model: 'r-openai', input: 42 }, null, 'invalid_request_error', /input/],
      [{ model: 'r-anthropic', input: [{ type: 'item_reference', id: 'x' }] }, null, 'invalid_request_error', /item_reference/],
      [{ model: 'r-anthropic', input: 'hi', tools: [{ type: 'web_search_preview' }] }, null, 'invalid_request_error', /web_search_preview/],
      [{ model: 'r-ollama', input: [{ role: 'user', content: [{ type: 'input_file', file_id: 'f' }] }] }, null, 'invalid_request_error', /input_file/],
      [{ model: 'r-anthropic', input: [{ role: 'robot', content: 'x' }] }, null, 'invalid_request_error', /role/],
      [{ model: 'r-anthropic', input: 'hi', previous_response_id: 'resp_unknown' }, null, 'invalid_request_error', /not found/],
      [{ model: 'r-anthropic', input: 'hi', previous_response_id: 7 }, null, 'invalid_request_error', /previous_response_id/],
      [{ model: 'r-anthropic', input: 'hi', max_output_tokens: -3 }, null, 'invalid_request_error', /max_output_tokens/],
      [{ model: 'r-anthropic', input: 'hi', text: { format: { type: 'xml' } } }, null, 'invalid_request_error', /text.format/],
      [{ model: 'r-anthropic', input: 'hi', tool_choice: { type: 'magic' } }, null, 'invalid_request_error', /tool_choice/],
      [{ model: 'r-anthropic', input: 'hi', background: true }, null, 'invalid_request_error', /background/],
      [{ model: 'no-such-model', input: 'hi' }, null, 'invalid_request_error', /no-such-model/],
    ];
    for (const [body, raw, type, msg] of cases) {
      const r = await post(body, raw);
      assert.equal(r.status, 400, `${raw ?? JSON.stringify(body)} -> ${r.status} ${JSON.stringify(r.error)}`);
      assert.equal(r.error.type, type);
      assert.match(r.error.message, msg, JSON.stringify(r.error));
    }
    assert.equal(fake.requests().length, 0, 'nothing reached the provider');
    // A response id made by an OpenAI deployment cannot continue on a chat-only provider.
    fake.script([{ content: 'hi' }]);
    const first = await client.responses.create({ model: 'r-openai', input: 'hi' });
    const r = await post({ model: 'r-anthropic', input: 'more', previous_response_id: first.id });
    assert.equal(r.status, 400);
    assert.equal(r.error.param, 'previous_response_id');
    // Unknown ids on GET / DELETE: 404; a wrong method: 405; no key: 401.
    await assert.rejects(client.responses.retrieve('resp_nope'), (e) => e.status === 404);
    await assert.rejects(client.responses.delete('resp_nope'), (e) => e.status === 404);
    const put = await fetchWithTimeout(`${gw.url}/v1/responses/resp_x`, { method: 'PUT', headers: { authorization: `Bearer ${MASTER_KEY}` } });
    assert.equal(put.status, 405);
    await put.arrayBuffer();
    const anon = await fetchWithTimeout(`${gw.url}/v1/responses/${first.id}`);
    assert.equal(anon.status, 401);
    await anon.arrayBuffer();
    // An id whose provider part is not an id (a path, a query) names the deployment but is
    // refused before any call is made with its key.
    const plain = Buffer.from(first.id.slice(5), 'base64').toString();
    const prefix = plain.slice(0, plain.indexOf(';response_id:') + ';response_id:'.length);
    const before = fake.requests().length;
    for (const evil of ['../../v1/models', '../files?purpose=batch', 'a/../../models']) {
      const crafted = `resp_${Buffer.from(prefix + evil).toString('base64url')}`;
      for (const method of ['GET', 'DELETE']) {
        const res = await fetchWithTimeout(`${gw.url}/v1/responses/${crafted}`, { method, headers: { authorization: `Bearer ${MASTER_KEY}` } });
        assert.equal(res.status, 404, `${method} ${evil}`);
        await res.arrayBuffer();
      }
      const cancel = await fetchWithTimeout(`${gw.url}/v1/responses/${crafted}/cancel`, { method: 'POST', headers: { authorization: `Bearer ${MASTER_KEY}` } });
      assert.equal(cancel.status, 404, `cancel ${evil}`);
      await cancel.arrayBuffer();
    }
    assert.equal(fake.requests().length, before, 'a call reached the provider');
    // Streaming a stored response is not served: a 400 naming `stream`, not JSON-labelled events.
    const streamed = await fetchWithTimeout(`${gw.url}/v1/responses/${first.id}?stream=true`, { headers: { authorization: `Bearer ${MASTER_KEY}` } });
    assert.equal(streamed.status, 400);
    assert.equal((await streamed.json()).error.param, 'stream');
    assert.equal(fake.requests().length, before);
  });
});

// ---------------------------------------------------------------- spend and metrics

const SERVER_URL = process.env.SWITCHYARD_TEST_DATABASE_URL;
const skip = !SERVER_URL && 'SWITCHYARD_TEST_DATABASE_URL not set (scripts/test.sh sets it)';

describe('responses: spend rows and metrics as for chat', { skip }, () => {
  const dbName = `swy_responses_${process.pid}_${Date.now()}`;
  let dbUrl;
  let fake;
  let gw;
  let key;
  let keyHash;
  let client;
  let other;

  async function rowOf(requestId, timeoutMs = 20_000 * SLOW) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const out = psql(dbUrl, `SELECT row_to_json(s) FROM spend_logs s WHERE request_id = '${requestId}'`);
      if (out) return JSON.parse(out);
      if (Date.now() > deadline) throw new Error(`no spend row for ${requestId} within ${timeoutMs} ms`);
      await delay(50);
    }
  }

  before(async () => {
    fake = await startFakeProvider();
    psql(SERVER_URL, `CREATE DATABASE ${dbName}`);
    dbUrl = withDatabase(SERVER_URL, dbName);
    gw = await startGateway({
      config: { router_settings: { num_retries: 0, disable_cooldowns: true }, model_list: modelList(fake.url) },
      env: { DATABASE_URL: dbUrl, SWITCHYARD_DATA_DIR: `/tmp/${dbName}` },
    });
    await gw.proc.waitForStderr(/schema up to date/, 15_000 * SLOW);
    const k = await call(gw, '/key/generate', { body: { key_alias: 'responder', models: ['r-openai', 'r-anthropic'] } });
    assert.equal(k.status, 200, k.text);
    key = k.json.key;
    keyHash = k.json.token;
    client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: key, maxRetries: 0, timeout: 20_000 });
    const k2 = await call(gw, '/key/generate', { body: { key_alias: 'other' } });
    other = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: k2.json.key, maxRetries: 0, timeout: 20_000 });
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

  test('each request is one spend row with the Responses usage, cached and reasoning tokens apart', async () => {
    const expected = {};  // requested model -> tokens
    const cases = [
      ['r-openai', false, { prompt_tokens: 1200, completion_tokens: 300, cached_tokens: 1000, reasoning_tokens: 120 }],
      ['r-openai', true, { prompt_tokens: 50, completion_tokens: 7, cached_tokens: 10, reasoning_tokens: 3 }],
      ['r-anthropic', false, { prompt_tokens: 100, completion_tokens: 20, cache_read_input_tokens: 400 }],
      ['r-anthropic', true, { prompt_tokens: 30, completion_tokens: 5 }],
    ];
    for (const [model, stream, usage] of cases) {
      fake.script([{ content: 'priced answer', usage }]);
      let callId;
      let total;
      if (stream) {
        const { data, response } = await client.responses.create({ model, input: 'cost?', stream: true }).withResponse();
        callId = response.headers.get('x-litellm-call-id');
        const { completed } = await collectEvents(data);
        total = completed.usage.total_tokens;
        assert.equal(completed.usage.input_tokens_details.cached_tokens,
                     usage.cached_tokens ?? usage.cache_read_input_tokens ?? 0);
      } else {
        const { data, response } = await client.responses.create({ model, input: 'cost?' }).withResponse();
        callId = response.headers.get('x-litellm-call-id');
        total = data.usage.total_tokens;
        const cost = Number(response.headers.get('x-litellm-response-cost'));
        assert.ok(cost > 0, `x-litellm-response-cost: ${cost}`);
        assert.equal(data.usage.output_tokens_details.reasoning_tokens, usage.reasoning_tokens ?? 0);
      }
      const row = await rowOf(callId);
      assert.equal(row.call_type, 'aresponses');
      assert.equal(row.api_key, keyHash);
      assert.equal(row.model_group, model);
      assert.equal(row.status, 'success');
      assert.equal(row.completion_tokens, usage.completion_tokens);
      assert.equal(row.cached_tokens, usage.cached_tokens ?? usage.cache_read_input_tokens ?? 0, JSON.stringify(row));
      if (usage.reasoning_tokens != null) assert.equal(row.reasoning_tokens, usage.reasoning_tokens);
      // Anthropic's input_tokens exclude the cache; the gateway's prompt tokens include it.
      assert.equal(row.prompt_tokens, usage.prompt_tokens + (usage.cache_read_input_tokens ?? 0));
      assert.equal(row.total_tokens, total);
      assert.ok(row.spend > 0, JSON.stringify(row));
      expected[model] = (expected[model] ?? 0) + total;
    }
    // A failure is a row too, and is counted.
    fake.script([{ status: 500, error_message: 'upstream broke' }]);
    const { response: failed } = await client.responses.create({ model: 'r-anthropic', input: 'fail' }).withResponse()
      .catch((e) => ({ response: { headers: e.headers } }));
    const failRow = await rowOf(failed.headers.get('x-litellm-call-id'));
    assert.equal(failRow.status, 'failure');
    assert.equal(failRow.call_type, 'aresponses');

    // /metrics: the token counter of each model group equals the usage the clients got.
    const text = await (await fetchWithTimeout(`${gw.url}/metrics`)).text();
    for (const [model, tokens] of Object.entries(expected)) {
      let sum = 0;
      for (const line of text.split('\n')) {
        if (line.startsWith('litellm_total_tokens_metric_total{') && line.includes(`requested_model="${model}"`)) {
          sum += Number(line.split(' ').at(-1));
        }
      }
      assert.equal(sum, tokens, `litellm_total_tokens_metric_total for ${model}`);
    }
  });

  test('model access and ownership: a key reads back only its own stored responses', async () => {
    await assert.rejects(client.responses.create({ model: 'r-ollama', input: 'x' }), (e) => e.status === 401 || e.status === 403);
    fake.script([{ content: 'mine' }]);
    const mine = await client.responses.create({ model: 'r-anthropic', input: 'keep this' });
    assert.equal((await client.responses.retrieve(mine.id)).output_text, 'mine');
    await assert.rejects(other.responses.retrieve(mine.id), (e) => e.status === 404);
    await assert.rejects(other.responses.create({ model: 'r-anthropic', input: 'x', previous_response_id: mine.id }),
                         (e) => e.status === 400);
  });
});

// ---------------------------------------------------------------- two gateways, one Redis

const REDIS_URL = process.env.SWITCHYARD_TEST_REDIS_URL;
const noRedis = !REDIS_URL && 'SWITCHYARD_TEST_REDIS_URL not set (scripts/test.sh sets it)';

describe('responses: two gateways share the conversations through Redis', { skip: noRedis }, () => {
  let fake;
  let a;
  let b;
  let redis;

  const redisCli = (...args) =>
    execFileSync('redis-cli', ['-h', redis.host, '-p', String(redis.port), ...args], { encoding: 'utf8' }).trim();

  before(async () => {
    const u = new URL(REDIS_URL);
    redis = { host: u.hostname, port: Number(u.port || 6379) };
    fake = await startFakeProvider();
    const config = {
      router_settings: { num_retries: 0, disable_cooldowns: true, redis_host: redis.host, redis_port: redis.port },
      model_list: modelList(fake.url),
    };
    a = await startGateway({ config });
    b = await startGateway({ config });
  });
  after(async () => {
    await stopAll();
    await fake?.close();
  });

  test('a response made on one gateway is read and continued on the other', async () => {
    fake.script([{ content: 'First answer from A' }, { content: 'Second answer from B' }]);
    const ca = new OpenAI({ baseURL: `${a.url}/v1`, apiKey: MASTER_KEY, maxRetries: 0, timeout: 15_000 });
    const cb = new OpenAI({ baseURL: `${b.url}/v1`, apiKey: MASTER_KEY, maxRetries: 0, timeout: 15_000 });
    const first = await ca.responses.create({ model: 'r-anthropic', input: 'Remember the word kestrel' });
    // The write to Redis is in the background: wait for the key, then ask B.
    const deadline = Date.now() + 10_000 * SLOW;
    while (redisCli('EXISTS', `switchyard:responses:${first.id}`) !== '1') {
      if (Date.now() > deadline) throw new Error(`${first.id} not in Redis`);
      await delay(20);
    }
    const ttl = Number(redisCli('PTTL', `switchyard:responses:${first.id}`));
    assert.ok(ttl > 0 && ttl <= 24 * 3600 * 1000, `PTTL ${ttl}`);
    assert.equal((await cb.responses.retrieve(first.id)).output_text, 'First answer from A');
    const second = await cb.responses.create({ model: 'r-anthropic', input: 'Which word?', previous_response_id: first.id });
    assert.equal(second.output_text, 'Second answer from B');
    const msgs = fake.requests({ path: '/v1/messages' })[1].body.messages;
    assert.deepEqual(msgs.map((m) => m.role), ['user', 'assistant', 'user']);
    assert.ok(JSON.stringify(msgs).includes('kestrel'));
    // Deleted on B: gone for A too.
    await cb.responses.delete(first.id);
    await assert.rejects(ca.responses.retrieve(first.id), (e) => e.status === 404);
  });
});
