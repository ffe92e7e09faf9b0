// groq/: an OpenAI-compatible provider that is only an entry of the provider registry
// (src/config/provider_registry.cpp). Its api_base is replaced by the fake provider's; the
// key comes from GROQ_API_KEY (no api_key in the config), as in LiteLLM.
import { after, before, beforeEach, test } from 'node:test';
import assert from 'node:assert/strict';

import { startFakeProvider } from '../fake_provider/server.mjs';
import { MASTER_KEY, assembleChat, call, sseData, startGateway, stopAll, streamTimed } from '../lib/gateway.mjs';

const GROQ_KEY = 'gsk-test-groq-key-31c7';
const USER = [{ role: 'user', content: 'Say hello' }];

let fake;
let gw;

before(async () => {
  fake = await startFakeProvider();
  gw = await startGateway({
    config: {
      model_list: [
        { model_name: 'llama-fast',
          litellm_params: { model: 'groq/llama-3.1-8b-instant', api_base: `${fake.url}/v1` },
          model_info: { id: 'groq-deployment-1' } },
      ],
      router_settings: { num_retries: 0, disable_cooldowns: true },
    },
    env: { GROQ_API_KEY: GROQ_KEY },
  });
});
after(async () => {
  await stopAll();
  await fake?.close();
});
beforeEach(() => fake.reset());

test('a chat request reaches the provider in OpenAI format with the GROQ_API_KEY key', async () => {
  fake.script([{ content: 'Hi from groq', usage: { prompt_tokens: 4, completion_tokens: 3 } }]);
  const r = await call(gw, '/v1/chat/completions', { body: { model: 'llama-fast', messages: USER, temperature: 0.1 } });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.choices[0].message.content, 'Hi from groq');
  assert.equal(r.json.usage.total_tokens, 7);
  const recs = fake.requests();
  assert.equal(recs.length, 1, `expected one upstream request, got ${JSON.stringify(recs.map((x) => x.url))}`);
  const [rec] = recs;
  assert.equal(rec.path, '/v1/chat/completions');
  assert.equal(rec.provider, 'openai');
  assert.equal(rec.headers.authorization, `Bearer ${GROQ_KEY}`);
  assert.ok(!JSON.stringify(rec.headers).includes(MASTER_KEY), 'the client key reached the provider');
  assert.equal(rec.body.model, 'llama-3.1-8b-instant');
  assert.deepEqual(rec.body.messages, USER);
  assert.equal(rec.body.temperature, 0.1);
  assert.equal(r.headers.get('x-litellm-model-id'), 'groq-deployment-1');
  assert.equal(r.headers.get('x-litellm-model-api-base'), `${fake.url}/v1`);
});

test('a streamed chat is relayed as SSE', async () => {
  fake.script([{ chunks: ['Hel', 'lo'] }]);
  const r = await streamTimed(`${gw.url}/v1/chat/completions`, {
    headers: { authorization: `Bearer ${MASTER_KEY}` },
    body: { model: 'llama-fast', messages: USER, stream: true },
    timeoutMs: 10_000,
  });
  assert.equal(r.status, 200, r.text);
  const payloads = sseData(r.text);
  assert.equal(payloads.at(-1), '[DONE]');
  assert.equal(assembleChat(payloads.slice(0, -1)).text, 'Hello');
  assert.equal(fake.requests()[0].body.stream, true);
});

test('upstream errors name GroqException, as LiteLLM does', async () => {
  fake.script([{ status: 429, error_message: 'Rate limit reached for model llama-3.1-8b-instant' }]);
  const r = await call(gw, '/v1/chat/completions', { body: { model: 'llama-fast', messages: USER } });
  assert.equal(r.status, 429, r.text);
  assert.match(r.json.error.message, /GroqException/);
  assert.match(r.json.error.message, /Rate limit reached/);
});

test('groq serves chat only: embeddings are a 400 before any upstream call', async () => {
  const r = await call(gw, '/v1/embeddings', { body: { model: 'llama-fast', input: 'x' } });
  assert.equal(r.status, 400, r.text);
  assert.match(r.json.error.message, /groq does not support \/embeddings/);
  assert.equal(fake.requests().length, 0);
});
