// Auth headers, the OpenAI error shape, x-litellm-call-id and header isolation towards the
// upstream.
import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { startFakeProvider } from '../fake_provider/server.mjs';
import {
  MASTER_KEY, call, curlHttp, mockModel, openaiErrorProblems, openaiModel, startGateway, stopAll,
} from '../lib/gateway.mjs';

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const CHAT = { model: 'demo', messages: [{ role: 'user', content: 'hi' }] };

let fake;
let gw;
before(async () => {
  fake = await startFakeProvider();
  gw = await startGateway({
    config: { model_list: [mockModel('demo', 'mock says hi'), openaiModel('gpt-x', `${fake.url}/v1`)] },
  });
});
after(async () => {
  await stopAll();
  await fake?.close();
});
beforeEach(() => fake.reset());

describe('key headers', () => {
  const cases = [
    ['Authorization: Bearer', { authorization: `Bearer ${MASTER_KEY}` }],
    ['x-api-key', { 'x-api-key': MASTER_KEY }],
    ['x-litellm-api-key', { 'x-litellm-api-key': MASTER_KEY }],
  ];
  for (const [name, headers] of cases) {
    test(`${name} is accepted (curl)`, async () => {
      const args = [`${gw.url}/v1/chat/completions`, '-H', 'content-type: application/json', '-d', JSON.stringify(CHAT)];
      for (const [k, v] of Object.entries(headers)) args.push('-H', `${k}: ${v}`);
      const r = await curlHttp(args);
      assert.equal(r.status, 200, r.body);
      assert.equal(JSON.parse(r.body).choices[0].message.content, 'mock says hi');
    });
  }

  test('missing key: 401 with an OpenAI-shaped body, code "401"', async () => {
    const r = await call(gw, '/v1/chat/completions', { body: CHAT, key: null });
    assert.equal(r.status, 401, r.text);
    assert.deepEqual(openaiErrorProblems(r.json, 401), []);
    assert.deepEqual(Object.keys(r.json.error).sort(), ['code', 'message', 'param', 'type']);
    assert.match(r.headers.get('content-type') ?? '', /application\/json/);
  });

  test('wrong key: 401, and the key is not echoed whole', async () => {
    const wrong = 'sk-wrong-key-abcdef123456';
    const r = await call(gw, '/v1/chat/completions', { body: CHAT, key: wrong });
    assert.equal(r.status, 401, r.text);
    assert.deepEqual(openaiErrorProblems(r.json, 401), []);
    assert.ok(!r.text.includes(wrong), r.text);
  });

  test('a key that differs only in its last character is refused', async () => {
    const almost = MASTER_KEY.slice(0, -1) + (MASTER_KEY.endsWith('a') ? 'b' : 'a');
    const r = await call(gw, '/v1/chat/completions', { body: CHAT, key: almost });
    assert.equal(r.status, 401);
  });

  test('"Bearer" with no key is 401', async () => {
    const r = await call(gw, '/v1/chat/completions', { body: CHAT, key: null, headers: { authorization: 'Bearer ' } });
    assert.equal(r.status, 401);
  });
});

describe('x-litellm-call-id', () => {
  test('echoed when the client sends one', async () => {
    const id = 'my-call-id-12345';
    const r = await call(gw, '/v1/chat/completions', { body: CHAT, headers: { 'x-litellm-call-id': id } });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('x-litellm-call-id'), id);
  });

  test('generated (uuid) when not sent, different per request', async () => {
    const a = await call(gw, '/v1/chat/completions', { body: CHAT });
    const b = await call(gw, '/v1/chat/completions', { body: CHAT });
    assert.match(a.headers.get('x-litellm-call-id') ?? '', UUID_RE);
    assert.match(b.headers.get('x-litellm-call-id') ?? '', UUID_RE);
    assert.notEqual(a.headers.get('x-litellm-call-id'), b.headers.get('x-litellm-call-id'));
  });

  test('present on errors too: 401, 400 unknown model, 400 bad JSON, 404 path', async () => {
    const sent = 'err-call-id-1';
    const errs = [
      await call(gw, '/v1/chat/completions', { body: CHAT, key: null, headers: { 'x-litellm-call-id': sent } }),
      await call(gw, '/v1/chat/completions', { body: { ...CHAT, model: 'nope' }, headers: { 'x-litellm-call-id': sent } }),
      await call(gw, '/v1/chat/completions', { body: '{"model":', headers: { 'x-litellm-call-id': sent } }),
      await call(gw, '/v1/no-such-endpoint', { method: 'GET', headers: { 'x-litellm-call-id': sent } }),
    ];
    assert.deepEqual(errs.map((r) => r.status), [401, 400, 400, 404]);
    for (const r of errs) assert.equal(r.headers.get('x-litellm-call-id'), sent);
    const gen = await call(gw, '/v1/chat/completions', { body: CHAT, key: null });
    assert.match(gen.headers.get('x-litellm-call-id') ?? '', UUID_RE);
  });

  test('present on health and models responses', async () => {
    const h = await call(gw, '/health/liveliness', { method: 'GET', key: null });
    assert.match(h.headers.get('x-litellm-call-id') ?? '', UUID_RE);
    const m = await call(gw, '/v1/models', { method: 'GET' });
    assert.match(m.headers.get('x-litellm-call-id') ?? '', UUID_RE);
  });
});

describe('headers towards the upstream', () => {
  for (const [name, headers] of [
    ['Authorization', {}],
    ['x-api-key', { 'x-api-key': MASTER_KEY }],
    ['x-litellm-api-key', { 'x-litellm-api-key': MASTER_KEY }],
  ]) {
    test(`the client's key (${name}) never reaches the upstream; the deployment's does`, async () => {
      const r = await call(gw, '/v1/chat/completions', {
        body: { ...CHAT, model: 'gpt-x' },
        key: name === 'Authorization' ? MASTER_KEY : null,
        headers: { ...headers, 'x-custom-client-header': 'secret-ish', cookie: 'session=abc' },
      });
      assert.equal(r.status, 200, r.text);
      const recs = fake.requests();
      assert.equal(recs.length, 1);
      const h = recs[0].headers;
      assert.equal(h.authorization, 'Bearer sk-upstream-123');
      assert.equal(h['x-api-key'], undefined);
      assert.equal(h['x-litellm-api-key'], undefined);
      assert.equal(h['x-custom-client-header'], undefined);
      assert.equal(h.cookie, undefined);
      assert.ok(!JSON.stringify(recs[0]).includes(MASTER_KEY), 'master key leaked upstream');
      assert.equal(recs[0].body.model, 'gpt-x');
    });
  }
});
