// Self-tests of the fake provider (tests/fake_provider/server.mjs): its wire formats and its
// control API. No gateway involved; if these fail, every other integration test is suspect.
import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';

import { DEFAULT_CONTENT, startFakeProvider } from '../fake_provider/server.mjs';
import { assembleChat, fetchWithTimeout, spawnFakeProvider, sseData, stopAll } from '../lib/gateway.mjs';

let fake;
before(async () => {
  fake = await startFakeProvider();
});
after(async () => {
  await fake?.close();
  await stopAll();
});
beforeEach(() => fake.reset());

async function post(path, body, { headers = {}, timeoutMs = 5000 } = {}) {
  const r = await fetchWithTimeout(`${fake.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    timeoutMs,
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

function anthropicEvents(text) {
  return text.split('\n\n').filter(Boolean).map((block) => {
    const ev = block.match(/^event: (.*)$/m)?.[1];
    const data = JSON.parse(block.match(/^data: (.*)$/m)[1]);
    return { ev, data };
  });
}

describe('OpenAI format', () => {
  test('chat completion JSON has the OpenAI shape and deterministic usage', async () => {
    const r = await post('/v1/chat/completions', { model: 'gpt-x', messages: [{ role: 'user', content: 'hi there' }] });
    assert.equal(r.status, 200);
    const j = r.json;
    assert.match(j.id, /^chatcmpl-/);
    assert.equal(j.object, 'chat.completion');
    assert.equal(typeof j.created, 'number');
    assert.equal(j.model, 'gpt-x');
    assert.deepEqual(j.choices, [{
      index: 0, message: { role: 'assistant', content: DEFAULT_CONTENT, refusal: null }, logprobs: null,
      finish_reason: 'stop',
    }]);
    assert.equal(j.usage.total_tokens, j.usage.prompt_tokens + j.usage.completion_tokens);
    const [rec] = fake.requests();
    assert.deepEqual(rec.reply.usage, j.usage);
    assert.equal(rec.reply.content, DEFAULT_CONTENT);
    assert.equal(rec.body.model, 'gpt-x');
    assert.equal(rec.aborted, false);
  });

  test('/chat/completions without /v1 works too', async () => {
    const r = await post('/chat/completions', { model: 'm', messages: [] });
    assert.equal(r.status, 200);
    assert.equal(r.json.object, 'chat.completion');
  });

  test('streaming: role chunk, content deltas, finish chunk, usage chunk, [DONE]', async () => {
    fake.script([{ chunks: ['A', 'b', 'c'] }]);
    const r = await post('/v1/chat/completions', {
      model: 'gpt-x', stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'x' }],
    });
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type'), /^text\/event-stream/);
    const data = sseData(r.text);
    assert.equal(data.at(-1), '[DONE]');
    const chunks = data.slice(0, -1).map((d) => JSON.parse(d));
    assert.equal(chunks[0].choices[0].delta.role, 'assistant');
    for (const c of chunks) assert.equal(c.object, 'chat.completion.chunk');
    const usageChunk = chunks.at(-1);
    assert.deepEqual(usageChunk.choices, []);
    assert.equal(usageChunk.usage.completion_tokens, 3);
    assert.equal(chunks.at(-2).choices[0].finish_reason, 'stop');
    const a = assembleChat(data);
    assert.equal(a.text, 'Abc');
    assert.equal(a.done, true);
  });

  test('streaming without include_usage has no usage chunk', async () => {
    const r = await post('/v1/chat/completions', { model: 'gpt-x', stream: true, messages: [] });
    const data = sseData(r.text);
    for (const d of data.slice(0, -1)) assert.equal('usage' in JSON.parse(d), false);
    assert.equal(assembleChat(data).text, DEFAULT_CONTENT);
  });

  test('tool calls, JSON and streamed', async () => {
    const tools = [{ id: 'call_1', name: 'get_weather', arguments: { city: 'Paris' } }];
    fake.script([{ tool_calls: tools, content: '' }, { tool_calls: tools, content: '' }]);
    const j = (await post('/v1/chat/completions', { model: 'm', messages: [] })).json;
    assert.equal(j.choices[0].finish_reason, 'tool_calls');
    assert.equal(j.choices[0].message.content, null);
    assert.deepEqual(j.choices[0].message.tool_calls, [
      { id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
    ]);
    const s = await post('/v1/chat/completions', { model: 'm', stream: true, messages: [] });
    const a = assembleChat(sseData(s.text));
    assert.deepEqual(a.toolCalls, [{ id: 'call_1', name: 'get_weather', arguments: '{"city":"Paris"}' }]);
    assert.equal(a.finish, 'tool_calls');
  });

  test('text completions and embeddings (float and base64), models list', async () => {
    const c = (await post('/v1/completions', { model: 'm', prompt: 'say hi' })).json;
    assert.equal(c.object, 'text_completion');
    assert.equal(c.choices[0].text, DEFAULT_CONTENT);
    const e = (await post('/v1/embeddings', { model: 'e', input: ['a', 'b'] })).json;
    assert.equal(e.object, 'list');
    assert.equal(e.data.length, 2);
    assert.equal(e.data[1].index, 1);
    assert.equal(e.data[0].embedding.length, 8);
    const b = (await post('/v1/embeddings', { model: 'e', input: 'a', encoding_format: 'base64' })).json;
    const floats = new Float32Array(Uint8Array.from(Buffer.from(b.data[0].embedding, 'base64')).buffer);
    assert.equal(floats.length, 8);
    assert.ok(Math.abs(floats[0] - e.data[0].embedding[0]) < 1e-6);
    const m = await (await fetchWithTimeout(`${fake.url}/v1/models`)).json();
    assert.equal(m.object, 'list');
    assert.ok(m.data.every((x) => x.object === 'model'));
  });

  test('error statuses are OpenAI-shaped and carry scripted headers', async () => {
    fake.script([{ status: 429, headers: { 'retry-after': '7' }, error_message: 'slow down' }]);
    const r = await post('/v1/chat/completions', { model: 'm', messages: [] });
    assert.equal(r.status, 429);
    assert.equal(r.headers.get('retry-after'), '7');
    assert.equal(r.json.error.message, 'slow down');
    assert.equal(r.json.error.type, 'requests');
  });

  test('invalid JSON body from the client gets a 400, recorded with raw_body', async () => {
    const r = await post('/v1/chat/completions', '{nope');
    assert.equal(r.status, 400);
    assert.equal(fake.requests()[0].raw_body, '{nope');
  });
});

describe('Azure format', () => {
  test('deployment URL with api-version answers like OpenAI; without it 404', async () => {
    const ok = await post('/openai/deployments/my-dep/chat/completions?api-version=2024-06-01',
      { messages: [{ role: 'user', content: 'x' }] }, { headers: { 'api-key': 'az-key' } });
    assert.equal(ok.status, 200);
    assert.equal(ok.json.model, 'my-dep');
    const rec = fake.requests()[0];
    assert.equal(rec.provider, 'azure');
    assert.equal(rec.query['api-version'], '2024-06-01');
    assert.equal(rec.headers['api-key'], 'az-key');
    const emb = await post('/openai/deployments/emb/embeddings?api-version=1', { input: 'x' });
    assert.equal(emb.json.data.length, 1);
    const bad = await post('/openai/deployments/my-dep/chat/completions', { messages: [] });
    assert.equal(bad.status, 404);
  });
});

describe('Anthropic format', () => {
  test('Messages API JSON with usage incl. cache tokens', async () => {
    fake.script([{ usage: { prompt_tokens: 11, completion_tokens: 3, cache_read_input_tokens: 5, cache_creation_input_tokens: 2 } }]);
    const r = await post('/v1/messages', { model: 'claude-x', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(r.status, 200);
    assert.match(r.json.id, /^msg_/);
    assert.equal(r.json.type, 'message');
    assert.equal(r.json.role, 'assistant');
    assert.deepEqual(r.json.content, [{ type: 'text', text: DEFAULT_CONTENT }]);
    assert.equal(r.json.stop_reason, 'end_turn');
    assert.deepEqual(r.json.usage, {
      input_tokens: 11, output_tokens: 3, cache_read_input_tokens: 5, cache_creation_input_tokens: 2,
    });
  });

  test('event stream: the documented event sequence, text and tool_use', async () => {
    fake.script([{ content: 'Hi', chunks: ['H', 'i'], tool_calls: [{ id: 'toolu_1', name: 'f', arguments: { a: 1 } }] }]);
    const r = await post('/v1/messages', { model: 'c', max_tokens: 5, stream: true, messages: [] });
    const evs = anthropicEvents(r.text);
    assert.deepEqual(evs.map((e) => e.ev), [
      'message_start', 'content_block_start', 'ping', 'content_block_delta', 'content_block_delta',
      'content_block_stop', 'content_block_start', 'content_block_delta', 'content_block_delta',
      'content_block_delta', 'content_block_delta', 'content_block_stop', 'message_delta', 'message_stop',
    ]);
    for (const e of evs) assert.equal(e.data.type, e.ev);
    const text = evs.filter((e) => e.data.delta?.type === 'text_delta').map((e) => e.data.delta.text).join('');
    assert.equal(text, 'Hi');
    const json = evs.filter((e) => e.data.delta?.type === 'input_json_delta').map((e) => e.data.delta.partial_json).join('');
    assert.deepEqual(JSON.parse(json), { a: 1 });
    assert.equal(evs[6].data.content_block.type, 'tool_use');
    assert.equal(evs.at(-2).data.delta.stop_reason, 'tool_use');
    assert.equal(typeof evs.at(-2).data.usage.output_tokens, 'number');
  });

  test('errors are {type:error, error:{type, message}}; mid-stream error event', async () => {
    fake.script([{ status: 529 }, { error_after_chunks: 1 }]);
    const r = await post('/v1/messages', { model: 'c', messages: [] });
    assert.equal(r.status, 529);
    assert.deepEqual(Object.keys(r.json), ['type', 'error']);
    assert.equal(r.json.error.type, 'overloaded_error');
    const s = await post('/v1/messages', { model: 'c', stream: true, messages: [] });
    const evs = anthropicEvents(s.text);
    assert.equal(evs.at(-1).ev, 'error');
    assert.equal(evs.at(-1).data.error.type, 'overloaded_error');
  });
});

describe('Ollama format', () => {
  test('/api/chat streams NDJSON by default, done line carries the counts', async () => {
    const r = await post('/api/chat', { model: 'llama', messages: [{ role: 'user', content: 'hi' }] });
    assert.match(r.headers.get('content-type'), /ndjson/);
    const lines = r.text.trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(lines.at(-1).done, true);
    assert.equal(typeof lines.at(-1).prompt_eval_count, 'number');
    assert.equal(lines.at(-1).eval_count, lines.length - 1);
    assert.equal(lines.slice(0, -1).map((l) => l.message.content).join(''), DEFAULT_CONTENT);
  });

  test('/api/chat and /api/generate JSON with stream:false; /api/embed', async () => {
    const c = (await post('/api/chat', { model: 'l', stream: false, messages: [] })).json;
    assert.equal(c.done, true);
    assert.equal(c.message.content, DEFAULT_CONTENT);
    const g = (await post('/api/generate', { model: 'l', stream: false, prompt: 'x' })).json;
    assert.equal(g.response, DEFAULT_CONTENT);
    assert.equal(g.done_reason, 'stop');
    const e = (await post('/api/embed', { model: 'e', input: ['a', 'b', 'c'] })).json;
    assert.equal(e.embeddings.length, 3);
    const err = await post('/api/chat', { model: 'l' }, {});
    assert.equal(err.status, 200);
    fake.script([{ status: 404, error_message: 'model "l" not found' }]);
    const nf = await post('/api/chat', { model: 'l', messages: [] });
    assert.equal(nf.status, 404);
    assert.deepEqual(nf.json, { error: 'model "l" not found' });
  });
});

describe('control API and scripted failures', () => {
  test('script is consumed in order; match by path/model; times; defaults', async () => {
    fake.script([
      { match: { path: '/v1/messages' }, content: 'for anthropic' },
      { match: { model: 'b' }, content: 'for b', times: 2 },
      { content: 'first' },
    ]);
    const first = await post('/v1/chat/completions', { model: 'a', messages: [] });
    assert.equal(first.json.choices[0].message.content, 'first');
    for (let i = 0; i < 2; ++i) {
      const b = await post('/v1/chat/completions', { model: 'b', messages: [] });
      assert.equal(b.json.choices[0].message.content, 'for b');
    }
    const dflt = await post('/v1/chat/completions', { model: 'b', messages: [] });
    assert.equal(dflt.json.choices[0].message.content, DEFAULT_CONTENT);
    const an = await post('/v1/messages', { model: 'b', messages: [] });
    assert.equal(an.json.content[0].text, 'for anthropic');
    fake.setDefaults({ echo: true });
    const echo = await post('/v1/chat/completions', { model: 'b', messages: [{ role: 'user', content: 'ping pong' }] });
    assert.equal(echo.json.choices[0].message.content, 'ping pong');
  });

  test('HTTP control API: script, requests (with wait), delete, reset', async () => {
    const ctl = (method, p, body) => fetchWithTimeout(`${fake.url}/__control/${p}`, {
      method, body: body === undefined ? undefined : JSON.stringify(body),
    }).then((r) => r.json());
    assert.deepEqual(await ctl('POST', 'script', [{ content: 'scripted' }]), { queued: 1 });
    const r = await post('/v1/chat/completions', { model: 'x', messages: [] });
    assert.equal(r.json.choices[0].message.content, 'scripted');
    const recs = await ctl('GET', 'requests?min=1&timeout_ms=1000');
    assert.equal(recs.length, 1);
    assert.equal(recs[0].behaviour.content, 'scripted');
    await ctl('DELETE', 'requests');
    assert.deepEqual(await ctl('GET', 'requests'), []);
    await ctl('POST', 'script', [{ content: 'left over' }]);
    await ctl('POST', 'reset');
    assert.deepEqual(await ctl('GET', 'script'), []);
  });

  test('delay_ms delays the head; raw_body and body are sent verbatim', async () => {
    fake.script([{ delay_ms: 300 }, { raw_body: 'not json at all', status: 502 }, { body: { hello: 1 }, status: 201 }]);
    const t0 = performance.now();
    await post('/v1/chat/completions', { model: 'x', messages: [] });
    assert.ok(performance.now() - t0 >= 280);
    const raw = await post('/v1/chat/completions', { model: 'x', messages: [] });
    assert.equal(raw.status, 502);
    assert.equal(raw.text, 'not json at all');
    const b = await post('/v1/chat/completions', { model: 'x', messages: [] });
    assert.equal(b.status, 201);
    assert.deepEqual(b.json, { hello: 1 });
  });

  test('invalid_json: broken JSON body / broken first SSE frame', async () => {
    fake.script([{ invalid_json: true }, { invalid_json: true }]);
    const r = await post('/v1/chat/completions', { model: 'x', messages: [] });
    assert.equal(r.status, 200);
    assert.throws(() => JSON.parse(r.text));
    const s = await post('/v1/chat/completions', { model: 'x', stream: true, messages: [] });
    assert.throws(() => JSON.parse(sseData(s.text)[0]));
  });

  test('chunk_delay_ms paces the stream; finished_at is recorded', async () => {
    fake.script([{ chunks: 3, chunk_delay_ms: 150 }]);
    const t0 = Date.now();
    const r = await post('/v1/chat/completions', { model: 'x', stream: true, messages: [] });
    assert.ok(Date.now() - t0 >= 280, 'two pauses of 150 ms');
    assert.equal(assembleChat(sseData(r.text)).text, DEFAULT_CONTENT);
    const [rec] = fake.requests();
    assert.ok(rec.finished_at >= rec.received_at + 280);
    assert.equal(rec.reply.chunks_sent, 3);
  });

  test('cut_after_chunks destroys the socket mid-stream, without [DONE]', async () => {
    fake.script([{ chunks: 4, cut_after_chunks: 2 }]);
    let text = '';
    await assert.rejects(async () => {
      const r = await fetchWithTimeout(`${fake.url}/v1/chat/completions`, {
        method: 'POST', body: JSON.stringify({ model: 'x', stream: true, messages: [] }),
      });
      for await (const p of r.body) text += Buffer.from(p).toString();
    });
    const data = sseData(text);
    assert.ok(!data.includes('[DONE]'));
    assert.equal(assembleChat(data).text.length > 0, true);
    const [rec] = fake.requests();
    assert.equal(rec.cut, true);
    assert.equal(rec.aborted, false);
  });

  test('stall never answers; a client that gives up is recorded as aborted', async () => {
    fake.script([{ stall: true }]);
    await assert.rejects(post('/v1/chat/completions', { model: 'x', messages: [] }, { timeoutMs: 300 }));
    const recs = await fake.waitFor((rs) => rs[0]?.aborted, { timeoutMs: 2000 });
    assert.equal(recs[0].aborted, true);
    assert.equal(recs[0].reply.status, null);
  });

  test('a client that disconnects mid-stream is recorded as aborted', async () => {
    fake.script([{ chunks: 10, chunk_delay_ms: 100 }]);
    const ac = new AbortController();
    const r = await fetch(`${fake.url}/v1/chat/completions`, {
      method: 'POST', body: JSON.stringify({ model: 'x', stream: true, messages: [] }), signal: ac.signal,
    });
    const reader = r.body.getReader();
    await reader.read();
    ac.abort();
    const recs = await fake.waitFor((rs) => rs[0]?.aborted, { timeoutMs: 2000 });
    assert.ok(recs[0].reply.chunks_sent < 10);
  });

  test('stall_after_chunks and error_after_chunks (OpenAI)', async () => {
    fake.script([{ chunks: 4, error_after_chunks: 2 }, { chunks: 4, stall_after_chunks: 1 }]);
    const e = await post('/v1/chat/completions', { model: 'x', stream: true, messages: [] });
    const data = sseData(e.text);
    assert.ok(JSON.parse(data.at(-1)).error);
    let got = '';
    await assert.rejects(async () => {
      const r = await fetchWithTimeout(`${fake.url}/v1/chat/completions`, {
        method: 'POST', body: JSON.stringify({ model: 'x', stream: true, messages: [] }), timeoutMs: 500,
      });
      for await (const p of r.body) got += Buffer.from(p).toString();
    });
    assert.equal(assembleChat(sseData(got)).text.length > 0, true);
  });

  test('raw_chunks are written verbatim', async () => {
    fake.script([{ raw_chunks: ['event: mystery\ndata: {"type":"mystery"}\n\n', 'data: [DONE]\n\n'] }]);
    const r = await post('/v1/chat/completions', { model: 'x', stream: true, messages: [] });
    assert.equal(r.text, 'event: mystery\ndata: {"type":"mystery"}\n\ndata: [DONE]\n\n');
  });

  test('headers and body are recorded exactly', async () => {
    await post('/v1/chat/completions', { model: 'x', messages: [], extra_field: 1 },
      { headers: { authorization: 'Bearer sk-upstream-123', 'x-custom': 'y' } });
    const [rec] = fake.requests();
    assert.equal(rec.headers.authorization, 'Bearer sk-upstream-123');
    assert.equal(rec.headers['x-custom'], 'y');
    assert.equal(rec.body.extra_field, 1);
    assert.equal(rec.method, 'POST');
    assert.equal(rec.path, '/v1/chat/completions');
  });

  test('unknown path: 404 OpenAI-shaped', async () => {
    const r = await post('/v2/nothing', {});
    assert.equal(r.status, 404);
    assert.equal(typeof r.json.error.message, 'string');
  });
});

describe('CLI', () => {
  test('prints {"port":N} and serves on it', async () => {
    const fp = await spawnFakeProvider();
    try {
      assert.ok(fp.port > 0);
      const r = await fetchWithTimeout(`${fp.url}/__control/health`);
      assert.deepEqual(await r.json(), { ok: true });
      const s = net.connect(fp.port, '127.0.0.1');
      await new Promise((res, rej) => s.once('connect', res).once('error', rej));
      s.destroy();
    } finally {
      await fp.close();
    }
  });
});
