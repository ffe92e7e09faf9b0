// /v1/chat/completions through the real binary to the fake provider: JSON, SSE relay, first
// chunk before the upstream finishes, client disconnect cancels upstream, mock_response,
// unknown model, dead and stalled upstreams.
import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';

import { startFakeProvider } from '../fake_provider/server.mjs';
import {
  MASTER_KEY, SLOW, assembleChat, call, curl, curlHttp, startDeadReceiver, mockModel, openaiErrorProblems, openaiModel,
  sseData, startGateway, stopAll, streamTimed,
} from '../lib/gateway.mjs';

let fake;
let gw;
let deadPort;
let down;  // the dead provider: holds deadPort, closes every connection
const USER = [{ role: 'user', content: 'Say hello' }];

before(async () => {
  fake = await startFakeProvider();
  down = await startDeadReceiver();
  deadPort = down.port;
  gw = await startGateway({
    config: {
      model_list: [
        openaiModel('gpt-x', `${fake.url}/v1`),
        openaiModel('gpt-stalled', `${fake.url}/v1`, { upstreamModel: 'stalled', params: { timeout: 1 } }),
        openaiModel('gpt-dead', `http://127.0.0.1:${deadPort}/v1`, { params: { timeout: 5 } }),
        mockModel('demo', 'Hello from the offline demo model'),
        mockModel('my model', 'from the model with a space'),
      ],
      // One attempt per request: these tests look at how a single upstream failure reaches
      // the client (retries and fallbacks are tested in router.test.mjs).
      router_settings: { num_retries: 0 },
    },
  });
});
after(async () => {
  await stopAll();
  await Promise.all([fake?.close(), down?.close()]);
});
beforeEach(() => fake.reset());

const auth = { authorization: `Bearer ${MASTER_KEY}` };

describe('non-streaming', () => {
  test('answer and usage are what the upstream produced; request forwarded as sent', async () => {
    fake.script([{ content: 'The upstream says hi', usage: { prompt_tokens: 17, completion_tokens: 5 } }]);
    const r = await call(gw, '/v1/chat/completions', {
      body: { model: 'gpt-x', messages: USER, temperature: 0.25, max_tokens: 50, user: 'u-1' },
    });
    assert.equal(r.status, 200, r.text);
    const j = r.json;
    assert.equal(j.object, 'chat.completion');
    assert.equal(j.choices[0].message.role, 'assistant');
    assert.equal(j.choices[0].message.content, 'The upstream says hi');
    assert.equal(j.choices[0].finish_reason, 'stop');
    assert.deepEqual(
      { p: j.usage.prompt_tokens, c: j.usage.completion_tokens, t: j.usage.total_tokens }, { p: 17, c: 5, t: 22 });
    const [rec] = fake.requests();
    assert.equal(rec.path, '/v1/chat/completions');
    assert.equal(rec.body.model, 'gpt-x');
    assert.deepEqual(rec.body.messages, USER);
    assert.equal(rec.body.temperature, 0.25);
    assert.equal(rec.body.max_tokens, 50);
    assert.match(rec.headers['content-type'] ?? '', /application\/json/);
  });

  test('/chat/completions without /v1 works (curl)', async () => {
    const r = await curlHttp([`${gw.url}/chat/completions`, '-H', `Authorization: Bearer ${MASTER_KEY}`,
      '-H', 'content-type: application/json', '-d', JSON.stringify({ model: 'gpt-x', messages: USER })]);
    assert.equal(r.status, 200, r.body);
    assert.equal(JSON.parse(r.body).choices[0].message.content, 'Hello from fake provider');
  });

  test('tool calls survive the round trip', async () => {
    fake.script([{ content: '', tool_calls: [{ id: 'call_abc', name: 'get_weather', arguments: { city: 'Oslo' } }] }]);
    const r = await call(gw, '/v1/chat/completions', {
      body: {
        model: 'gpt-x', messages: USER,
        tools: [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object' } } }],
      },
    });
    assert.equal(r.status, 200, r.text);
    const m = r.json.choices[0].message;
    assert.equal(r.json.choices[0].finish_reason, 'tool_calls');
    assert.equal(m.tool_calls[0].id, 'call_abc');
    assert.equal(m.tool_calls[0].function.name, 'get_weather');
    assert.deepEqual(JSON.parse(m.tool_calls[0].function.arguments), { city: 'Oslo' });
    assert.equal(fake.requests()[0].body.tools[0].function.name, 'get_weather');
  });

  test('a 1.5 MB prompt (read straight into the body, forwarded as bytes) arrives intact', async () => {
    // Large bodies skip the HTTP parser's buffer and the JSON DOM: the upstream
    // must still get exactly the client's messages, with model replaced and gateway fields gone.
    const text = 'é€😀 \\"quoted\\" \n'.repeat(60_000) + 'end';
    const body = { model: 'gpt-x', messages: [{ role: 'user', content: text }], n: 1.50, num_retries: 0,
      metadata: { tag: 'x' }, vendor_field: { nested: [1, 2, 3] } };
    const raw = JSON.stringify(body);
    assert.ok(Buffer.byteLength(raw) > 1_000_000);
    const r = await call(gw, '/v1/chat/completions', { body });
    assert.equal(r.status, 200, r.text);
    const [rec] = fake.requests();
    assert.equal(rec.body.messages[0].content, text);
    assert.equal(rec.body.model, 'gpt-x');
    assert.deepEqual(rec.body.vendor_field, { nested: [1, 2, 3] });
    assert.equal(rec.body.num_retries, undefined, 'gateway fields are not forwarded');
    assert.equal(rec.body.metadata, undefined);
  });

  test('invalid UTF-8 or a bad escape deep inside a large body: 400 invalid JSON, nothing forwarded', async () => {
    const good = JSON.stringify({ model: 'gpt-x', messages: [{ role: 'user', content: 'x'.repeat(300_000) }] });
    for (const bad of [
      Buffer.concat([Buffer.from(good.slice(0, 200_000)), Buffer.from([0xc3, 0x28]), Buffer.from(good.slice(200_002))]),
      Buffer.from(good.slice(0, 250_000) + '\\q' + good.slice(250_002)),
    ]) {
      const res = await fetch(`${gw.url}/v1/chat/completions`, {
        method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: bad,
      });
      const j = await res.json();
      assert.equal(res.status, 400, JSON.stringify(j));
      assert.deepEqual(openaiErrorProblems(j, 400), []);
      assert.match(j.error.message, /Invalid JSON/);
    }
    assert.equal(fake.requests().length, 0);
  });

  test('unknown model: 400 invalid_request_error naming the model and /v1/models', async () => {
    const r = await call(gw, '/v1/chat/completions', { body: { model: 'no-such-model', messages: USER } });
    assert.equal(r.status, 400, r.text);
    assert.deepEqual(openaiErrorProblems(r.json, 400), []);
    assert.equal(r.json.error.type, 'invalid_request_error');
    assert.match(r.json.error.message, /no-such-model/);
    assert.match(r.json.error.message, /\/v1\/models/);
    assert.equal(fake.requests().length, 0);
  });

  test('upstream 4xx/5xx keeps its status and reaches the client OpenAI-shaped', async () => {
    fake.script([{ status: 429, error_message: 'upstream rate limited', headers: { 'retry-after': '3' } }]);
    const r = await call(gw, '/v1/chat/completions', { body: { model: 'gpt-x', messages: USER } });
    assert.equal(r.status, 429, r.text);
    assert.deepEqual(openaiErrorProblems(r.json, 429), []);
    assert.match(r.json.error.message, /upstream rate limited/);
  });
});

describe('streaming', () => {
  test('SSE headers, chunks relayed, ends with data: [DONE] (curl -N)', async () => {
    fake.script([{ chunks: ['One', ' two', ' three'] }]);
    const r = await curlHttp(['-N', `${gw.url}/v1/chat/completions`, '-H', `Authorization: Bearer ${MASTER_KEY}`,
      '-H', 'content-type: application/json', '-d', JSON.stringify({ model: 'gpt-x', messages: USER, stream: true })]);
    assert.equal(r.status, 200, r.body);
    assert.match(r.headers['content-type'] ?? '', /^text\/event-stream/);
    assert.equal(r.headers['x-accel-buffering'], 'no');
    assert.ok(r.body.endsWith('data: [DONE]\n\n'), JSON.stringify(r.body.slice(-80)));
    // Every frame is `data: <json>\n\n`.
    for (const block of r.body.split('\n\n').filter(Boolean)) assert.match(block, /^data: /);
    const data = sseData(r.body);
    const a = assembleChat(data);
    assert.equal(a.text, 'One two three');
    assert.equal(a.finish, 'stop');
    for (const d of data.slice(0, -1)) assert.equal(JSON.parse(d).object, 'chat.completion.chunk');
  });

  test('usage chunk when the client asks for it; counts are the upstream\'s', async () => {
    fake.script([{ chunks: ['a', 'b'], usage: { prompt_tokens: 9, completion_tokens: 2 } }]);
    const r = await streamTimed(`${gw.url}/v1/chat/completions`, {
      headers: auth, body: { model: 'gpt-x', messages: USER, stream: true, stream_options: { include_usage: true } },
    });
    assert.equal(r.status, 200);
    const a = assembleChat(sseData(r.text));
    assert.equal(a.text, 'ab');
    assert.ok(a.usage, 'no usage chunk');
    assert.equal(a.usage.prompt_tokens, 9);
    assert.equal(a.usage.completion_tokens, 2);
    assert.equal(a.usage.total_tokens, 11);
  });

  test('usage: null on every chunk only when the client asked for usage, as OpenAI sends it', async () => {
    fake.script([{ chunks: ['a', 'b'] }, { chunks: ['a', 'b'] }]);
    const plain = await streamTimed(`${gw.url}/v1/chat/completions`, {
      headers: auth, body: { model: 'gpt-x', messages: USER, stream: true },
    });
    assert.equal(plain.status, 200);
    const chunks = sseData(plain.text).filter((d) => d !== '[DONE]').map((d) => JSON.parse(d));
    assert.ok(chunks.length >= 3, plain.text);
    for (const c of chunks) assert.ok(!('usage' in c), `usage in ${JSON.stringify(c)}`);
    assert.equal(assembleChat(sseData(plain.text)).text, 'ab');
    const asked = await streamTimed(`${gw.url}/v1/chat/completions`, {
      headers: auth, body: { model: 'gpt-x', messages: USER, stream: true, stream_options: { include_usage: true } },
    });
    const withUsage = sseData(asked.text).filter((d) => d !== '[DONE]').map((d) => JSON.parse(d));
    for (const c of withUsage.slice(0, -1)) assert.equal(c.usage, null, JSON.stringify(c));
    assert.equal(withUsage.at(-1).usage.total_tokens > 0, true);
  });

  test('first chunk reaches the client before the upstream has finished', async () => {
    fake.script([{ chunks: 5, chunk_delay_ms: 400 }]);
    let firstContentAt = null;
    let firstContentWall = null;
    const r = await streamTimed(`${gw.url}/v1/chat/completions`, {
      headers: auth,
      body: { model: 'gpt-x', messages: USER, stream: true },
      onChunk: (ev, text) => {
        if (firstContentAt === null && assembleChat(sseData(text).filter((d) => d !== '[DONE]')).text.length > 0) {
          firstContentAt = ev.t;
          firstContentWall = ev.at;
        }
      },
    });
    assert.equal(r.status, 200);
    assert.equal(assembleChat(sseData(r.text)).text, 'Hello from fake provider');
    const [rec] = fake.requests();
    assert.ok(rec.finished_at, 'upstream did not finish');
    assert.ok(firstContentAt !== null, 'no content chunk seen');
    assert.ok(firstContentAt < 1000 * SLOW, `first content chunk after ${firstContentAt.toFixed(0)} ms`);
    assert.ok(r.endAt > 1500, `whole stream took only ${r.endAt.toFixed(0)} ms`);
    // The decisive check: the client had content while the upstream still had 1.6 s to go.
    assert.ok(firstContentWall < rec.finished_at - 1000,
      `first chunk at ${firstContentWall}, upstream finished at ${rec.finished_at}`);
  });

  test('client disconnect mid-stream cancels the upstream request', async () => {
    fake.script([{ chunks: 20, chunk_delay_ms: 200 }]);
    await streamTimed(`${gw.url}/v1/chat/completions`, {
      headers: auth,
      body: { model: 'gpt-x', messages: USER, stream: true },
      onChunk: (ev, text, ac) => {
        if (assembleChat(sseData(text).filter((d) => d !== '[DONE]')).text.length > 0) {
          ac.abort();
          return false;
        }
        return true;
      },
    }).catch(() => {});
    const disconnectedAt = Date.now();
    const recs = await fake.waitFor((rs) => rs[0]?.aborted, { timeoutMs: 3000 * SLOW });
    assert.equal(recs[0].aborted, true);
    assert.ok(recs[0].aborted_at - disconnectedAt < 1500 * SLOW,
      `upstream cancelled ${recs[0].aborted_at - disconnectedAt} ms after the client left`);
    assert.ok(recs[0].reply.chunks_sent < 20);
    // The gateway is still fine.
    const ok = await call(gw, '/v1/chat/completions', { body: { model: 'demo', messages: USER } });
    assert.equal(ok.status, 200);
  });

  test('a client that leaves during the retries\' back-off ends them: no further provider calls', async () => {
    fake.script([{ status: 500, times: -1 }]);
    const ac = new AbortController();
    const done = fetch(`${gw.url}/v1/chat/completions`, {
      method: 'POST', signal: ac.signal,
      headers: { ...auth, 'content-type': 'application/json', 'x-litellm-call-id': 'leaves-during-backoff' },
      body: JSON.stringify({ model: 'gpt-x', messages: USER, num_retries: 5 }),
    }).catch(() => {});
    await fake.waitFor((rs) => rs.length >= 1, { timeoutMs: 10_000 * SLOW });
    ac.abort();
    await done;
    // The request ends (its access line) without running the other retries.
    await gw.proc.waitForStderr(/access POST \/v1\/chat\/completions \d+ [^\n]*call_id=leaves-during-backoff/, 20_000 * SLOW);
    assert.ok(fake.requests().length <= 2, `${fake.requests().length} provider calls after the client left`);
  });

  // A provider call that is still waiting a while after it was sent is watched: a client
  // that leaves then cancels it (the fake sees its connection closed), for the
  // non-streamed answer and for a stream's head alike.
  for (const stream of [false, true]) {
    test(`a client that leaves while the provider thinks cancels the call (stream: ${stream})`, async () => {
      fake.script([{ stall: true }]);
      const ac = new AbortController();
      const callId = `leaves-while-waiting-${stream}`;
      const done = fetch(`${gw.url}/v1/chat/completions`, {
        method: 'POST', signal: ac.signal,
        headers: { ...auth, 'content-type': 'application/json', 'x-litellm-call-id': callId },
        body: JSON.stringify({ model: 'gpt-x', messages: USER, stream }),
      }).catch(() => {});
      await fake.waitFor((rs) => rs.length >= 1, { timeoutMs: 10_000 * SLOW });
      ac.abort();
      await done;
      // Without the watch the stalled call would wait for the deployment's timeout (6000 s).
      const recs = await fake.waitFor((rs) => rs[0]?.aborted, { timeoutMs: 20_000 * SLOW });
      assert.equal(recs.length, 1, 'no retry for a client that left');
      await gw.proc.waitForStderr(new RegExp(`access POST /v1/chat/completions \\d+ [^\\n]*call_id=${callId}`),
        20_000 * SLOW);
      const ok = await call(gw, '/v1/chat/completions', { body: { model: 'demo', messages: USER } });
      assert.equal(ok.status, 200);
    });
  }

  test('a client that half-closes after its streaming request gets no made-up 500', async () => {
    fake.script([{ chunks: 3, chunk_delay_ms: 50 }]);
    const body = JSON.stringify({ model: 'gpt-x', messages: USER, stream: true });
    const text = await new Promise((resolve, reject) => {
      const s = net.connect(gw.port, '127.0.0.1', () => {
        s.end(`POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${MASTER_KEY}\r\n` +
              `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
      });
      let out = '';
      s.setEncoding('utf8');
      s.on('data', (d) => { out += d; });
      s.on('close', () => resolve(out));
      s.on('error', reject);
      s.setTimeout(20_000 * SLOW, () => s.destroy(new Error('no close')));
    });
    // A half-close counts as the client leaving (as uvicorn's disconnect does): what it got
    // is a stream's beginning or nothing, never an error the gateway made up.
    assert.doesNotMatch(text, /produced no response|HTTP\/1\.1 500/);
  });

  test('a stream cut by the upstream ends with an error event or a closed body, never [DONE]', async () => {
    fake.script([{ chunks: 4, cut_after_chunks: 2 }]);
    const r = await curl(['-N', `${gw.url}/v1/chat/completions`, '-H', `Authorization: Bearer ${MASTER_KEY}`,
      '-H', 'content-type: application/json', '-d', JSON.stringify({ model: 'gpt-x', messages: USER, stream: true })]);
    const data = sseData(r.stdout);
    assert.ok(!data.includes('[DONE]') || data.some((d) => d.startsWith('{"error"')), r.stdout);
    const ok = await call(gw, '/v1/chat/completions', { body: { model: 'gpt-x', messages: USER } });
    assert.equal(ok.status, 200);
  });
});

describe('percent-encoded paths', () => {
  test('path parameters are decoded as Starlette decodes them for LiteLLM', async () => {
    const m = await call(gw, '/v1/models/my%20model', { method: 'GET' });
    assert.equal(m.status, 200, m.text);
    assert.equal(m.json.id, 'my model');
    const d = await call(gw, '/openai/deployments/my%20model/chat/completions', { body: { messages: USER } });
    assert.equal(d.status, 200, d.text);
    assert.equal(d.json.choices[0].message.content, 'from the model with a space');
    const c = await call(gw, '/v1/%63hat/completions', { body: { model: 'demo', messages: USER } });
    assert.equal(c.status, 200, c.text);
    // %00 is not decoded: no such route.
    assert.equal((await call(gw, '/v1/chat/completions%00', { body: { model: 'demo', messages: USER } })).status, 404);
  });
});

describe('mock_response', () => {
  test('non-streaming answers offline', async () => {
    const r = await call(gw, '/v1/chat/completions', { body: { model: 'demo', messages: USER } });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.choices[0].message.content, 'Hello from the offline demo model');
    assert.equal(r.json.object, 'chat.completion');
    assert.ok(r.json.usage);
    assert.equal(fake.requests().length, 0);
  });

  test('streaming answers offline and ends with [DONE]', async () => {
    const r = await streamTimed(`${gw.url}/v1/chat/completions`, {
      headers: auth, body: { model: 'demo', messages: USER, stream: true },
    });
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type') ?? '', /^text\/event-stream/);
    assert.equal(r.headers.get('x-accel-buffering'), 'no');
    const a = assembleChat(sseData(r.text));
    assert.equal(a.text, 'Hello from the offline demo model');
    assert.equal(a.done, true);
    assert.ok(r.text.endsWith('data: [DONE]\n\n'));
    assert.equal(fake.requests().length, 0);
  });
});

describe('broken upstreams', () => {
  test('dead upstream (closed port): OpenAI-shaped 5xx, quickly', async () => {
    const t0 = performance.now();
    const r = await call(gw, '/v1/chat/completions', { body: { model: 'gpt-dead', messages: USER } });
    const took = performance.now() - t0;
    assert.ok(r.status >= 500 && r.status < 600, `status ${r.status}: ${r.text}`);
    assert.deepEqual(openaiErrorProblems(r.json, r.status), []);
    assert.ok(took < 3000 * SLOW, `took ${took.toFixed(0)} ms`);
  });

  test('dead upstream while streaming: a real 5xx status (nothing was sent yet)', async () => {
    const r = await call(gw, '/v1/chat/completions', { body: { model: 'gpt-dead', messages: USER, stream: true } });
    assert.ok(r.status >= 500 && r.status < 600, `status ${r.status}: ${r.text}`);
    assert.deepEqual(openaiErrorProblems(r.json, r.status), []);
  });

  test('stalled upstream with litellm_params.timeout: 1 gives 408 within ~1.5 s', async () => {
    fake.script([{ stall: true, match: { model: 'stalled' } }]);
    const t0 = performance.now();
    const r = await call(gw, '/v1/chat/completions', { body: { model: 'gpt-stalled', messages: USER } });
    const took = performance.now() - t0;
    assert.equal(r.status, 408, r.text);
    assert.deepEqual(openaiErrorProblems(r.json, 408), []);
    assert.ok(took >= 900, `gave up after only ${took.toFixed(0)} ms`);
    assert.ok(took < 1500 * SLOW + 500, `took ${took.toFixed(0)} ms`);
    // The gateway dropped the upstream connection.
    const recs = await fake.waitFor((rs) => rs[0]?.aborted, { timeoutMs: 2000 * SLOW });
    assert.equal(recs[0].aborted, true);
  });

  test('stalled streaming upstream with timeout: 1 gives 408 too', async () => {
    fake.script([{ stall: true, match: { model: 'stalled' } }]);
    const t0 = performance.now();
    const r = await call(gw, '/v1/chat/completions', { body: { model: 'gpt-stalled', messages: USER, stream: true } });
    const took = performance.now() - t0;
    assert.equal(r.status, 408, r.text);
    assert.ok(took < 1500 * SLOW + 500, `took ${took.toFixed(0)} ms`);
  });

  test('upstream answering invalid JSON: OpenAI-shaped 5xx, no crash', async () => {
    fake.script([{ invalid_json: true }]);
    const r = await call(gw, '/v1/chat/completions', { body: { model: 'gpt-x', messages: USER } });
    assert.ok(r.status >= 500 && r.status < 600, `status ${r.status}: ${r.text}`);
    assert.deepEqual(openaiErrorProblems(r.json, r.status), []);
    const ok = await call(gw, '/v1/chat/completions', { body: { model: 'gpt-x', messages: USER } });
    assert.equal(ok.status, 200);
  });
});
