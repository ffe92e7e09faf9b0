// general_settings.public_routes, forward_client_headers_to_llm_api and CORS, end to end
// with the `openai` SDK, plain requests and curl against the fake provider (which records
// the headers it received).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import OpenAI from 'openai';

import { startFakeProvider } from '../fake_provider/server.mjs';
import { call, curlHttp, fetchWithTimeout, mockModel, openaiModel, runGateway, startGateway, stopAll, writeConfig } from '../lib/gateway.mjs';

let fake;
before(async () => { fake = await startFakeProvider(); });
after(async () => { await stopAll(); await fake?.close(); });

const chat = { model: 'a', messages: [{ role: 'user', content: 'hi' }] };

describe('public_routes', () => {
  test('listed information routes answer without a key; routes that spend or administer still need one, named in a warning', async () => {
    const gw = await startGateway({
      config: {
        model_list: [mockModel('a', 'from a')],
        general_settings: { public_routes: ['LiteLLMRoutes.public_routes', '/v1/models', '/spend/calculate', '/v1/chat/completions', '/key/*'] },
      },
    });
    const models = await call(gw, '/v1/models', { method: 'GET', key: null });
    assert.equal(models.status, 200, models.text);
    assert.deepEqual(models.json.data.map((m) => m.id), ['a']);
    const priced = await call(gw, '/spend/calculate', { key: null, body: { model: 'a', messages: [{ role: 'user', content: 'hi' }] } });
    assert.equal(priced.status, 200, priced.text);
    // With a key, the key is still checked (a wrong one is refused, not treated as anonymous).
    assert.equal((await call(gw, '/v1/models', { method: 'GET', key: 'sk-wrong' })).status, 401);
    // Not public whatever the list says: an LLM route, management routes, routes not listed.
    assert.equal((await call(gw, '/v1/chat/completions', { key: null, body: chat })).status, 401);
    assert.equal((await call(gw, '/key/list', { method: 'GET', key: null })).status, 401);
    assert.equal((await call(gw, '/model/info', { method: 'GET', key: null })).status, 401);
    const warnings = gw.stderr();
    assert.match(warnings, /general_settings\.public_routes\[3\]: "\/v1\/chat\/completions" stays behind a key/);
    assert.match(warnings, /general_settings\.public_routes\[4\]: "\/key\/\*" stays behind a key/);
    assert.doesNotMatch(warnings, /public_routes\[[012]\]/);
  });

  test('a route group LiteLLM spells with its prefix works; an unknown name starts with a warning and matches nothing', async () => {
    const file = writeConfig('model_list:\n  - model_name: a\n    litellm_params:\n      model: openai/a\n      mock_response: hi\ngeneral_settings:\n  master_key: sk-1234\n  allowed_routes: ["LiteLLMRoutes.llm_api_routes", chat]\n');
    const r = await runGateway(['--check-config', file]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout + r.stderr, /config\.yaml:8: general_settings\.allowed_routes\[1\]: "chat" is neither a path \(starting with \/\) nor a route group this gateway knows/);
    assert.doesNotMatch(r.stdout + r.stderr, /allowed_routes\[0\]/);
  });
});

describe('forward_client_headers_to_llm_api', () => {
  const headers = {
    'x-tenant-id': 'tenant-7',
    'anthropic-beta': 'prompt-caching-2024-07-31',
    'x-litellm-tags': 'a,b',
    'x-api-key': 'sk-client-side-secret',
    'x-goog-api-key': 'client-google-secret',
    'x-amz-date': '20260101T000000Z',
    'x-my-key': 'sk-test-master-key-8f3a',
  };
  const sent = async (gw) => {
    const before = fake.requests().length;
    const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: gw.masterKey, maxRetries: 0, timeout: 20_000, defaultHeaders: headers });
    const r = await client.chat.completions.create(chat);
    assert.equal(r.choices[0].message.role, 'assistant');
    const recs = fake.requests().slice(before);
    assert.equal(recs.length, 1);
    return recs[0].headers;
  };

  test('off by default: no client header reaches the provider', async () => {
    const gw = await startGateway({ config: { model_list: [openaiModel('a', fake.url)] } });
    const h = await sent(gw);
    assert.equal(h['x-tenant-id'], undefined);
    assert.equal(h['anthropic-beta'], undefined);
  });

  test('on: x-* and anthropic-beta go through; credentials, x-litellm-*, x-stainless-*, x-amz-* and the key header never do', async () => {
    const gw = await startGateway({
      config: {
        model_list: [openaiModel('a', fake.url)],
        general_settings: { forward_client_headers_to_llm_api: true, litellm_key_header_name: 'X-My-Key' },
      },
    });
    const h = await sent(gw);
    assert.equal(h['x-tenant-id'], 'tenant-7');
    assert.equal(h['anthropic-beta'], 'prompt-caching-2024-07-31');
    for (const name of ['x-litellm-tags', 'x-api-key', 'x-goog-api-key', 'x-amz-date', 'x-my-key']) {
      assert.equal(h[name], undefined, `${name} was forwarded`);
    }
    assert.ok(!Object.keys(h).some((k) => k.startsWith('x-stainless-')), 'SDK telemetry headers were forwarded');
    // The provider's own credential is the deployment's, not the client's.
    assert.notEqual(h.authorization, `Bearer ${gw.masterKey}`);
  });
});

describe('CORS', () => {
  const preflight = (gw, origin, requestHeaders = 'authorization, content-type') => fetchWithTimeout(`${gw.url}/v1/chat/completions`, {
    method: 'OPTIONS',
    headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': requestHeaders },
  });

  test('off by default: a preflight gets no CORS headers and answers carry none', async () => {
    const gw = await startGateway({ config: { model_list: [mockModel('a')] } });
    const p = await preflight(gw, 'https://app.example.com');
    assert.equal(p.headers.get('access-control-allow-origin'), null);
    const r = await call(gw, '/v1/chat/completions', { body: chat, headers: { origin: 'https://app.example.com' } });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('access-control-allow-origin'), null);
  });

  test('listed origins: preflight 204 without a key, answers expose the x-litellm headers, other origins get nothing', async () => {
    const gw = await startGateway({
      config: {
        model_list: [mockModel('a')],
        general_settings: { cors_allow_origins: ['https://app.example.com/'], cors_allow_credentials: true, max_request_size_mb: 0.01 },
      },
    });
    const p = await preflight(gw, 'https://app.example.com');
    assert.equal(p.status, 204);
    assert.equal(p.headers.get('access-control-allow-origin'), 'https://app.example.com');
    assert.equal(p.headers.get('access-control-allow-credentials'), 'true');
    assert.match(p.headers.get('access-control-allow-methods'), /POST/);
    assert.equal(p.headers.get('access-control-allow-headers'), 'authorization, content-type');
    assert.match(p.headers.get('vary'), /Origin/);

    const r = await call(gw, '/v1/chat/completions', { body: chat, headers: { origin: 'https://app.example.com' } });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('access-control-allow-origin'), 'https://app.example.com');
    assert.match(r.headers.get('access-control-expose-headers'), /x-litellm-response-cost/);
    // An error answer carries them too (the page can read the error).
    const e = await call(gw, '/v1/chat/completions', { body: chat, key: 'sk-wrong', headers: { origin: 'https://app.example.com' } });
    assert.equal(e.status, 401);
    assert.equal(e.headers.get('access-control-allow-origin'), 'https://app.example.com');
    assert.match(r.headers.get('access-control-expose-headers'), /x-litellm-response-duration-ms/);
    // So does an error written before any handler ran (413: the body is over the limit).
    const big = await call(gw, '/v1/chat/completions', {
      body: { ...chat, messages: [{ role: 'user', content: 'x'.repeat(20_000) }] }, headers: { origin: 'https://app.example.com' },
    });
    assert.equal(big.status, 413);
    assert.equal(big.headers.get('access-control-allow-origin'), 'https://app.example.com');
    const bigOther = await call(gw, '/v1/chat/completions', {
      body: { ...chat, messages: [{ role: 'user', content: 'x'.repeat(20_000) }] }, headers: { origin: 'https://evil.example.net' },
    });
    assert.equal(bigOther.status, 413);
    assert.equal(bigOther.headers.get('access-control-allow-origin'), null);

    const other = await preflight(gw, 'https://evil.example.net');
    assert.equal(other.status, 400);
    assert.equal(other.headers.get('access-control-allow-origin'), null);
    const o = await call(gw, '/v1/chat/completions', { body: chat, headers: { origin: 'https://evil.example.net' } });
    assert.equal(o.headers.get('access-control-allow-origin'), null);
    const odd = await preflight(gw, 'https://app.example.com', 'x-a;b="c"');
    assert.notEqual(odd.status, 204);
  });

  test('"*" without credentials answers any origin with *', async () => {
    const gw = await startGateway({ config: { model_list: [mockModel('a')], general_settings: { cors_allow_origins: ['*'] } } });
    const r = await curlHttp(['-X', 'OPTIONS', '-H', 'Origin: http://localhost:3000', '-H', 'Access-Control-Request-Method: POST', `${gw.url}/v1/models`]);
    assert.equal(r.status, 204, r.body);
    assert.equal(r.headers['access-control-allow-origin'], '*');
  });

  test('an origin that is not scheme://host is a config error with its file:line', async () => {
    const file = writeConfig('model_list:\n  - model_name: a\n    litellm_params:\n      model: openai/a\n      mock_response: hi\ngeneral_settings:\n  cors_allow_origins: [app.example.com]\n');
    const r = await runGateway(['--check-config', file]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /config\.yaml:7: general_settings\.cors_allow_origins\[0\]: "app\.example\.com" is not an origin/);
  });
});
