// Logging callbacks against strict fakes (fake_collectors.mjs), driven with the `openai` SDK:
// * otel: one trace per request, the request span with child spans (auth, parse, route and
//   one per provider attempt) and the GenAI attributes; a client `traceparent` becomes the
//   parent, and the provider receives a traceparent of the same trace whose parent is the
//   attempt span; OTEL_EXPORTER_OTLP_HEADERS are sent;
// * langfuse: one trace-create and one generation-create per request, Basic auth;
// * generic_api (callback_settings): JSON arrays with the configured headers;
// * turn_off_message_logging / redact_user_api_key_info: no content, no caller ids;
// * with every receiver down, requests are unaffected; the losses are counted in /metrics;
// * /health/services and /active/callbacks.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';

import { startFakeProvider } from '../fake_provider/server.mjs';
import { call, fetchWithTimeout, openaiModel, SLOW, startDeadReceiver, startGateway, stopAll } from '../lib/gateway.mjs';
import { startLangfuse, startOtlpCollector, startWebhook, traceOf } from './fake_collectors.mjs';

const USER = [{ role: 'user', content: 'Say hello' }];
let fake;
let otlp;
let langfuse;
let hook;

before(async () => {
  fake = await startFakeProvider();
  otlp = await startOtlpCollector({ headers: { 'x-otel-key': 's3cret', 'x-tenant': 'team one' } });
  langfuse = await startLangfuse({ publicKey: 'pk-lf-test', secretKey: 'sk-lf-test' });
  hook = await startWebhook({ headers: { authorization: 'Bearer gen-secret' } });
});
after(async () => {
  await stopAll();
  await Promise.all([fake?.close(), otlp?.close(), langfuse?.close(), hook?.close()]);
});

function client(gw) {
  return new OpenAI({ apiKey: gw.masterKey, baseURL: gw.base, maxRetries: 0 });
}

async function metrics(gw) {
  return (await fetchWithTimeout(`${gw.url}/metrics`)).text();
}

function metricValue(text, name, labels) {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) return Number(line.split(' ').pop());
  }
  return undefined;
}

describe('callbacks to live receivers', () => {
  let gw;
  before(async () => {
    gw = await startGateway({
      config: {
        model_list: [openaiModel('gpt-test', `${fake.url}/v1`, { upstreamModel: 'gpt-up' })],
        litellm_settings: { callbacks: ['otel', 'langfuse', 'my_api'] },
        callback_settings: {
          my_api: { callback_type: 'generic_api', endpoint: `${hook.url}/logs`, headers: { Authorization: 'Bearer gen-secret' } },
        },
      },
      env: {
        OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url,
        OTEL_EXPORTER_OTLP_HEADERS: 'x-otel-key=s3cret,x-tenant=team%20one',
        LANGFUSE_PUBLIC_KEY: 'pk-lf-test',
        LANGFUSE_SECRET_KEY: 'sk-lf-test',
        LANGFUSE_HOST: langfuse.url,
        SWITCHYARD_CALLBACK_FLUSH_MS: '100',
      },
    });
  });

  test('one trace per request: request span, stage and attempt children, GenAI attributes', async () => {
    fake.reset();
    const oa = client(gw);
    const ids = ['cb-plain-1', 'cb-plain-2', 'cb-stream-1'];
    const r1 = await oa.chat.completions.create({ model: 'gpt-test', messages: USER, temperature: 0.5, max_tokens: 40 },
                                               { headers: { 'x-litellm-call-id': ids[0] } });
    const r2 = await oa.chat.completions.create({ model: 'gpt-test', messages: USER }, { headers: { 'x-litellm-call-id': ids[1] } });
    const stream = await oa.chat.completions.create({ model: 'gpt-test', messages: USER, stream: true,
                                                      stream_options: { include_usage: true } },
                                                    { headers: { 'x-litellm-call-id': ids[2] } });
    let text = '';
    for await (const ch of stream) text += ch.choices?.[0]?.delta?.content ?? '';
    assert.ok(text.length > 0);
    await otlp.waitFor(() => ids.every((id) => traceOf(otlp.spans, id)), 'a trace for each request', 20_000 * SLOW);
    assert.deepEqual(otlp.errors, []);
    const traceIds = new Set();
    for (const [i, id] of ids.entries()) {
      const { root, children } = traceOf(otlp.spans, id);
      traceIds.add(root.traceId);
      assert.equal(root.kind, 2, 'the request span is a SERVER span');
      assert.equal(root.parentSpanId ?? '', '', 'no client traceparent: a root span');
      assert.equal(root.attrs['gen_ai.system'], 'openai');
      assert.equal(root.attrs['gen_ai.request.model'], 'gpt-test');
      assert.equal(root.attrs['gen_ai.response.model'], 'gpt-up');
      assert.equal(root.attrs['gen_ai.operation.name'], 'chat');
      assert.equal(root.attrs['http.response.status_code'], 200);
      assert.deepEqual(root.status, { code: 1 });
      assert.equal(root.resource['service.name'], 'litellm');
      const usage = i === 0 ? r1.usage : i === 1 ? r2.usage : undefined;
      if (usage) {
        assert.equal(root.attrs['gen_ai.usage.input_tokens'], usage.prompt_tokens);
        assert.equal(root.attrs['gen_ai.usage.output_tokens'], usage.completion_tokens);
      } else {
        assert.ok(root.attrs['gen_ai.usage.output_tokens'] > 0);
      }
      if (i === 0) {
        assert.equal(root.attrs['gen_ai.request.temperature'], 0.5);
        // The GenAI semantic conventions type max_tokens as an int, temperature as a double.
        assert.equal(root.attrs['gen_ai.request.max_tokens'], 40);
        assert.equal(root.attrTypes['gen_ai.request.max_tokens'], 'intValue');
        assert.equal(root.attrTypes['gen_ai.request.temperature'], 'doubleValue');
      }
      assert.match(root.attrs['gen_ai.prompt'], /Say hello/, 'content is logged by default');
      const names = children.map((c) => c.name);
      for (const stage of ['auth', 'parse', 'route']) assert.ok(names.includes(stage), `child span ${stage} in ${names}`);
      const attempts = children.filter((c) => c.kind === 3);
      assert.equal(attempts.length, 1, 'one provider attempt');
      assert.equal(attempts[0].attrs['gen_ai.request.model'], 'gpt-up');
      for (const c of children) {
        assert.equal(c.traceId, root.traceId);
        assert.ok(BigInt(c.startTimeUnixNano) >= BigInt(root.startTimeUnixNano), `${c.name} starts within the request`);
        assert.ok(BigInt(c.endTimeUnixNano) <= BigInt(root.endTimeUnixNano), `${c.name} ends within the request`);
      }
      // The provider saw the attempt span as its parent, in the same trace.
      const atProvider = fake.requests().filter((r) => r.headers.traceparent?.includes(attempts[0].spanId));
      assert.equal(atProvider.length, 1);
      assert.equal(atProvider[0].headers.traceparent, `00-${root.traceId}-${attempts[0].spanId}-01`);
    }
    assert.equal(traceIds.size, 3, 'a new trace per request');
    assert.equal(otlp.spans.filter((s) => ids.includes(s.attrs['litellm.call_id'])).length, 3, 'exactly one request span each');
  });

  test("a client's traceparent is the parent; the provider gets the same trace", async () => {
    fake.reset();
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const parent = '00f067aa0ba902b7';
    await client(gw).chat.completions.create({ model: 'gpt-test', messages: USER },
                                             { headers: { traceparent: `00-${traceId}-${parent}-01`, 'x-litellm-call-id': 'cb-parent' } });
    const t = await otlp.waitFor(() => traceOf(otlp.spans, 'cb-parent'), 'the trace', 20_000 * SLOW);
    assert.equal(t.root.traceId, traceId);
    assert.equal(t.root.parentSpanId, parent);
    const attempt = t.children.find((c) => c.kind === 3);
    const [rec] = fake.requests();
    assert.equal(rec.headers.traceparent, `00-${traceId}-${attempt.spanId}-01`);
    assert.notEqual(attempt.spanId, parent);
  });

  test('a malformed traceparent starts a new trace (no error)', async () => {
    const r = await call(gw, '/v1/chat/completions', {
      body: { model: 'gpt-test', messages: USER }, headers: { traceparent: '00-zz-00-01', 'x-litellm-call-id': 'cb-badtp' },
    });
    assert.equal(r.status, 200, r.text);
    const t = await otlp.waitFor(() => traceOf(otlp.spans, 'cb-badtp'), 'the trace', 20_000 * SLOW);
    assert.equal(t.root.parentSpanId ?? '', '');
  });

  test('a retried attempt is its own child span; a failed request is an error span', async () => {
    fake.reset();
    fake.script([{ status: 500 }]);
    const r = await call(gw, '/v1/chat/completions', {
      body: { model: 'gpt-test', messages: USER, num_retries: 1 }, headers: { 'x-litellm-call-id': 'cb-retry' },
    });
    assert.equal(r.status, 200, r.text);
    const t = await otlp.waitFor(() => traceOf(otlp.spans, 'cb-retry'), 'the trace', 20_000 * SLOW);
    const attempts = t.children.filter((c) => c.kind === 3);
    assert.equal(attempts.length, 2);
    assert.equal(attempts[0].status.code, 2);
    assert.equal(attempts[1].status.code, 1);
    const bad = await call(gw, '/v1/chat/completions', {
      body: { model: 'no-such-model', messages: USER }, headers: { 'x-litellm-call-id': 'cb-fail' },
    });
    assert.equal(bad.status, 400, bad.text);
    const f = await otlp.waitFor(() => traceOf(otlp.spans, 'cb-fail'), 'the failed trace', 20_000 * SLOW);
    assert.equal(f.root.status.code, 2);
    assert.equal(f.root.attrs['http.response.status_code'], 400);
    assert.equal(f.children.filter((c) => c.kind === 3).length, 0);
  });

  test('langfuse: a trace-create and a generation-create per request, Basic auth', async () => {
    const oa = client(gw);
    const res = await oa.chat.completions.create({ model: 'gpt-test', messages: USER }, { headers: { 'x-litellm-call-id': 'lf-1' } });
    const gen = await langfuse.waitFor(() => langfuse.events.find((e) => e.type === 'generation-create' && e.body.id === 'lf-1'),
                                       'the generation', 20_000 * SLOW);
    assert.deepEqual(langfuse.errors, []);
    const traces = langfuse.events.filter((e) => e.type === 'trace-create' && e.body.id === gen.body.traceId);
    assert.equal(traces.length, 1);
    assert.equal(langfuse.events.filter((e) => e.type === 'generation-create' && e.body.id === 'lf-1').length, 1);
    assert.equal(gen.body.model, 'gpt-up');
    assert.equal(gen.body.usage.input, res.usage.prompt_tokens);
    assert.equal(gen.body.usage.output, res.usage.completion_tokens);
    assert.equal(gen.body.level, 'DEFAULT');
    assert.deepEqual(gen.body.input, USER);
    assert.equal(gen.body.output.content, res.choices[0].message.content);
    assert.ok(Date.parse(gen.body.endTime) >= Date.parse(gen.body.startTime));
  });

  test('generic_api: JSON arrays with the configured headers', async () => {
    await client(gw).chat.completions.create({ model: 'gpt-test', messages: USER, temperature: 0.25, seed: 7, user: 'end-9' },
      { headers: { 'x-litellm-call-id': 'gen-1' } });
    const p = await hook.waitFor(() => hook.received.flat().find((x) => x.id === 'gen-1'), 'the payload', 20_000 * SLOW);
    assert.deepEqual(hook.errors, []);
    assert.ok(hook.received.every((b) => Array.isArray(b)), 'json_array batches');
    assert.ok(hook.requests.every((r) => r.path === '/logs'));
    assert.equal(p.status, 'success');
    assert.equal(p.model_group, 'gpt-test');
    assert.equal(p.custom_llm_provider, 'openai');
    assert.ok(p.total_tokens > 0);
    assert.deepEqual(p.messages, USER);
    // The model's parameters as the client sent them (only those), and the end user.
    assert.deepEqual(p.model_parameters, { seed: 7, temperature: 0.25 });
    assert.equal(p.end_user, 'end-9');
    assert.ok(p.metadata.user_api_key_hash.length === 64, 'the master key hash');
  });

  test('a streamed answer cut at the 64 KB content bound inside a character reaches every receiver', async () => {
    // 1 + 2 x 40,000 bytes: the kept text is cut at 65,536 bytes, after the first byte of
    // an "é". The receivers want UTF-8 (an OTLP collector refuses the batch otherwise,
    // and every other request's span in it with it).
    fake.reset();
    await fake.script([{ content: `a${'é'.repeat(40_000)}`, chunks: 40 }]);
    const stream = await client(gw).chat.completions.create({ model: 'gpt-test', messages: USER, stream: true },
                                                            { headers: { 'x-litellm-call-id': 'cut-utf8-1' } });
    let text = '';
    for await (const ch of stream) text += ch.choices?.[0]?.delta?.content ?? '';
    assert.equal(text.length, 40_001);
    const t = await otlp.waitFor(() => traceOf(otlp.spans, 'cut-utf8-1'), 'the trace', 20_000 * SLOW);
    assert.ok(t.root.attrs['gen_ai.completion'].startsWith(`a${'é'.repeat(32_767)}`));
    await langfuse.waitFor(() => langfuse.events.find((e) => e.type === 'generation-create' && e.body.id === 'cut-utf8-1'),
      'the generation', 20_000 * SLOW);
    const p = await hook.waitFor(() => hook.received.flat().find((x) => x.id === 'cut-utf8-1'), 'the payload', 20_000 * SLOW);
    assert.ok(p.response.startsWith(`a${'é'.repeat(32_767)}`));
    assert.deepEqual([...otlp.errors, ...langfuse.errors, ...hook.errors], []);
  });

  test('/active/callbacks and /health/services', async () => {
    const a = await call(gw, '/active/callbacks', { method: 'GET' });
    assert.equal(a.status, 200, a.text);
    assert.deepEqual(a.json['litellm.callbacks'], ['prometheus', 'otel', 'langfuse', 'my_api']);
    assert.deepEqual(a.json['litellm.success_callback'], ['prometheus', 'otel', 'langfuse', 'my_api']);
    for (const s of ['otel', 'langfuse', 'my_api']) {
      const r = await call(gw, `/health/services?service=${s}`, { method: 'GET' });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.status, 'success');
    }
    const none = await call(gw, '/health/services?service=datadog', { method: 'GET' });
    assert.equal(none.status, 400, none.text);
    assert.match(none.json.error.message, /not configured/);
    const missing = await call(gw, '/health/services', { method: 'GET' });
    assert.equal(missing.status, 400);
    const ready = await (await fetchWithTimeout(`${gw.url}/health/readiness`)).json();
    assert.deepEqual(ready.success_callbacks, ['prometheus', 'otel', 'langfuse', 'my_api']);
  });

  test('per-callback counters in /metrics', async () => {
    await client(gw).chat.completions.create({ model: 'gpt-test', messages: USER });
    let text;
    for (let i = 0; i < 200; i++) {
      text = await metrics(gw);
      const q = metricValue(text, 'switchyard_callback_events_total', { callback: 'otel', outcome: 'queued' });
      const s = metricValue(text, 'switchyard_callback_events_total', { callback: 'otel', outcome: 'sent' });
      if (q > 0 && q === s) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    for (const cb of ['otel', 'langfuse', 'my_api']) {
      const q = metricValue(text, 'switchyard_callback_events_total', { callback: cb, outcome: 'queued' });
      assert.ok(q > 0, `${cb} queued`);
      assert.equal(metricValue(text, 'switchyard_callback_events_total', { callback: cb, outcome: 'dropped' }), 0);
      assert.equal(metricValue(text, 'switchyard_callback_events_total', { callback: cb, outcome: 'failed' }), 0);
    }
  });
});

describe('message logging off and caller redacted', () => {
  let gw;
  let quiet;
  before(async () => {
    quiet = await startWebhook();
    gw = await startGateway({
      config: {
        model_list: [openaiModel('gpt-test', `${fake.url}/v1`)],
        litellm_settings: { success_callback: ['generic_api'], turn_off_message_logging: true, redact_user_api_key_info: true },
      },
      env: { GENERIC_LOGGER_ENDPOINT: `${quiet.url}/in`, GENERIC_LOGGER_HEADERS: 'x-a=1', SWITCHYARD_CALLBACK_FLUSH_MS: '100' },
    });
  });
  after(() => quiet?.close());

  test('no prompt, no answer, no key hash; failures are not sent to a success_callback', async () => {
    await client(gw).chat.completions.create({ model: 'gpt-test', messages: USER, user: 'end-user-7' },
                                             { headers: { 'x-litellm-call-id': 'quiet-1' } });
    const bad = await call(gw, '/v1/chat/completions', { body: { model: 'nope', messages: USER }, headers: { 'x-litellm-call-id': 'quiet-bad' } });
    assert.equal(bad.status, 400);
    await client(gw).chat.completions.create({ model: 'gpt-test', messages: USER }, { headers: { 'x-litellm-call-id': 'quiet-2' } });
    await quiet.waitFor(() => quiet.received.flat().find((x) => x.id === 'quiet-2'), 'the payload', 20_000 * SLOW);
    const all = quiet.received.flat();
    const p = all.find((x) => x.id === 'quiet-1');
    assert.equal(p.messages, null);
    assert.equal(p.response, null);
    assert.deepEqual(p.metadata, {});
    assert.equal(p.end_user, '');
    assert.doesNotMatch(JSON.stringify(quiet.received), /Say hello|end-user-7/);
    assert.equal(all.filter((x) => x.id === 'quiet-bad').length, 0, 'success_callback only');
    assert.equal(quiet.requests[0].headers['x-a'], '1');
    const a = await call(gw, '/active/callbacks', { method: 'GET' });
    assert.deepEqual(a.json['litellm.failure_callback'], ['prometheus']);
    assert.deepEqual(a.json['litellm.success_callback'], ['prometheus', 'generic_api']);
  });
});

describe('message_logging: false for one callback', () => {
  let gw;
  let hook2;
  before(async () => {
    hook2 = await startWebhook();
    gw = await startGateway({
      config: {
        model_list: [openaiModel('gpt-test', `${fake.url}/v1`)],
        litellm_settings: { callbacks: ['otel', 'my_hook'] },
        // As LiteLLM's docs write it for otel; the webhook keeps the content.
        callback_settings: {
          otel: { message_logging: 'False' },
          my_hook: { callback_type: 'generic_api', endpoint: `${hook2.url}/in` },
        },
      },
      env: { OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url, OTEL_EXPORTER_OTLP_HEADERS: 'x-otel-key=s3cret,x-tenant=team%20one',
             SWITCHYARD_CALLBACK_FLUSH_MS: '100' },
    });
  });
  after(() => hook2?.close());

  test('that callback gets no prompt and no answer; the others still do', async () => {
    await client(gw).chat.completions.create({ model: 'gpt-test', messages: [{ role: 'user', content: 'SECRET-PROMPT-41' }] },
                                             { headers: { 'x-litellm-call-id': 'ml-off-1' } });
    const t = await otlp.waitFor(() => traceOf(otlp.spans, 'ml-off-1'), 'the trace', 20_000 * SLOW);
    assert.equal(t.root.attrs['gen_ai.prompt'], undefined);
    assert.equal(t.root.attrs['gen_ai.completion'], undefined);
    assert.doesNotMatch(JSON.stringify(otlp.spans.filter((s) => s.attrs['litellm.call_id'] === 'ml-off-1')), /SECRET-PROMPT-41|Hello from fake/);
    const p = await hook2.waitFor(() => hook2.received.flat().find((x) => x.id === 'ml-off-1'), 'the payload', 20_000 * SLOW);
    assert.match(JSON.stringify(p.messages), /SECRET-PROMPT-41/);
  });
});

describe('receivers down', () => {
  let gw;
  let down;
  before(async () => {
    down = await startDeadReceiver();
    const dead = down.port;
    gw = await startGateway({
      config: {
        model_list: [openaiModel('gpt-test', `${fake.url}/v1`)],
        litellm_settings: { callbacks: ['otel', 'langfuse'] },
      },
      env: {
        OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${dead}`,
        LANGFUSE_PUBLIC_KEY: 'pk', LANGFUSE_SECRET_KEY: 'sk', LANGFUSE_HOST: `http://127.0.0.1:${dead}`,
        SWITCHYARD_CALLBACK_FLUSH_MS: '50', SWITCHYARD_CALLBACK_BACKOFF_MS: '20', SWITCHYARD_CALLBACK_RETRIES: '1',
      },
    });
  });

  test('every request succeeds; the lost events are counted', async () => {
    const oa = client(gw);
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2
      ? oa.chat.completions.create({ model: 'gpt-test', messages: USER })
      : oa.chat.completions.create({ model: 'gpt-test', messages: USER, stream: true }).then(async (s) => {
        let t = '';
        for await (const ch of s) t += ch.choices?.[0]?.delta?.content ?? '';
        return t;
      }))));
    for (const r of results) assert.ok(typeof r === 'string' ? r.length > 0 : r.choices[0].message.content.length > 0);
    let failed = 0;
    for (let i = 0; i < 400 && failed < 20; i++) {
      const text = await metrics(gw);
      failed = metricValue(text, 'switchyard_callback_events_total', { callback: 'otel', outcome: 'failed' }) ?? 0;
      if (failed < 20) await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(failed, 20, 'each event given up after its retries, none sent');
    const text = await metrics(gw);
    assert.ok(metricValue(text, 'switchyard_callback_retries_total', { callback: 'otel' }) > 0);
    const h = await call(gw, '/health/services?service=otel', { method: 'GET' });
    assert.equal(h.status, 503, h.text);
    assert.match(h.json.error.message, /not reachable/);
  });
  after(() => down?.close());
});

describe('shutdown', () => {
  test('SIGTERM sends what is queued before the gateway exits', async () => {
    const sink = await startWebhook();
    const lf = await startLangfuse({ publicKey: 'pk-lf-sd', secretKey: 'sk-lf-sd' });
    try {
      const gw = await startGateway({
        config: {
          model_list: [openaiModel('gpt-test', `${fake.url}/v1`)],
          litellm_settings: { callbacks: ['generic_api', 'langfuse'] },
        },
        env: {
          GENERIC_LOGGER_ENDPOINT: `${sink.url}/in`,
          LANGFUSE_PUBLIC_KEY: 'pk-lf-sd', LANGFUSE_SECRET_KEY: 'sk-lf-sd', LANGFUSE_HOST: lf.url,
          // Nothing is due before the signal: the events wait in the queues.
          SWITCHYARD_CALLBACK_FLUSH_MS: '600000',
        },
      });
      const ids = ['sd-1', 'sd-2', 'sd-3'];
      for (const id of ids) {
        await client(gw).chat.completions.create({ model: 'gpt-test', messages: USER }, { headers: { 'x-litellm-call-id': id } });
      }
      const text = await metrics(gw);
      for (const cb of ['generic_api', 'langfuse']) {
        assert.equal(metricValue(text, 'switchyard_callback_events_total', { callback: cb, outcome: 'queued' }), 3, cb);
        assert.equal(metricValue(text, 'switchyard_callback_events_total', { callback: cb, outcome: 'sent' }), 0, cb);
      }
      const r = await gw.stop();
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(sink.received.flat().map((x) => x.id).sort(), ids);
      assert.deepEqual(lf.events.filter((e) => e.type === 'generation-create').map((e) => e.body.id).sort(), ids);
      assert.deepEqual([...sink.errors, ...lf.errors], []);
    } finally {
      await Promise.all([sink.close(), lf.close()]);
    }
  });
});

describe('a callback that cannot run', () => {
  test('langfuse without keys: a warning, not listed, requests unaffected; an unserved callback named once', async () => {
    const gw = await startGateway({
      config: { model_list: [openaiModel('gpt-test', `${fake.url}/v1`)], litellm_settings: { callbacks: ['langfuse', 'datadog'] } },
    });
    await gw.proc.waitForStderr(/callback 'langfuse' is not run: langfuse: LANGFUSE_PUBLIC_KEY/, 5000 * SLOW);
    // datadog is not served at all: named once, in the start-up warning of unsupported
    // keys, not again by the callbacks' start (the senders are made before it listens).
    const datadog = gw.stderr().split('\n').filter((l) => l.includes('datadog'));
    assert.equal(datadog.length, 1, gw.stderr());
    assert.match(datadog[0], /recognised but not supported: .*litellm_settings\.callbacks \(ignored: .*not sent to datadog\)/);
    const a = await call(gw, '/active/callbacks', { method: 'GET' });
    assert.deepEqual(a.json['litellm.callbacks'], ['prometheus']);
    const r = await call(gw, '/v1/chat/completions', { body: { model: 'gpt-test', messages: USER } });
    assert.equal(r.status, 200);
  });
});
