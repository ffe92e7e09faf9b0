// The OpenAI SDK through OpenAI-compatible providers that are only registry entries
// (openrouter/, deepseek/, mistral/): their default api_base replaced by the fake provider,
// keys from each provider's LiteLLM variable. Also: a deployment's request defaults
// (max_tokens: 512) reach the provider unless the request sets its own, on the byte path
// (OpenAI-compatible) and the translated path (Anthropic, Ollama); tag routing.
import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import OpenAI from 'openai';

import { startFakeProvider } from '../fake_provider/server.mjs';
import { MASTER_KEY, call, startGateway, stopAll } from '../lib/gateway.mjs';

const PROVIDERS = [
  { name: 'openrouter', model: 'openrouter/anthropic/claude-3.5-sonnet', upstream: 'anthropic/claude-3.5-sonnet',
    env: 'OPENROUTER_API_KEY', key: 'sk-or-test-1' },
  { name: 'deepseek', model: 'deepseek/deepseek-chat', upstream: 'deepseek-chat', env: 'DEEPSEEK_API_KEY',
    key: 'sk-ds-test-2' },
  { name: 'mistral', model: 'mistral/mistral-large-latest', upstream: 'mistral-large-latest', env: 'MISTRAL_API_KEY',
    key: 'mistral-test-3' },
];

const TOOLS = [{
  type: 'function',
  function: { name: 'get_weather', description: 'Weather in a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } },
}];
const messages = [{ role: 'user', content: 'Weather in Paris?' }];

let fake;
let gw;
let client;

before(async () => {
  fake = await startFakeProvider();
  const env = {};
  for (const p of PROVIDERS) env[p.env] = p.key;
  gw = await startGateway({
    config: {
      model_list: [
        ...PROVIDERS.map((p) => ({ model_name: `via-${p.name}`,
          litellm_params: { model: p.model, api_base: `${fake.url}/v1` } })),
        { model_name: 'capped', litellm_params: { model: 'deepseek/deepseek-chat', api_base: `${fake.url}/v1`,
          max_tokens: 512, temperature: 0.3, extra_body: { top_k: 7 } } },
        { model_name: 'capped-claude', litellm_params: { model: 'anthropic/claude-3-5-haiku-latest',
          api_base: fake.url, api_key: 'ak', max_tokens: 512 } },
        { model_name: 'capped-ollama', litellm_params: { model: 'ollama_chat/llama3', api_base: fake.url,
          max_tokens: 512, num_ctx: 8192, keep_alive: '10m' } },
        { model_name: 'tiered', litellm_params: { model: 'openai/free-model', api_base: `${fake.url}/v1`,
          api_key: 'k', tags: ['free'] } },
        { model_name: 'tiered', litellm_params: { model: 'openai/paid-model', api_base: `${fake.url}/v1`,
          api_key: 'k', tags: ['paid'] } },
        { model_name: 'tiered', litellm_params: { model: 'openai/default-model', api_base: `${fake.url}/v1`,
          api_key: 'k', tags: ['default'] } },
      ],
      router_settings: { num_retries: 0, disable_cooldowns: true, enable_tag_filtering: true },
    },
    env,
  });
  client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: MASTER_KEY, maxRetries: 0, timeout: 20_000 });
});
after(async () => {
  await stopAll();
  await fake?.close();
});
beforeEach(() => fake.reset());

for (const p of PROVIDERS) {
  describe(`${p.name}/ through the OpenAI SDK`, () => {
    test('non-streamed answer with a tool call and usage', async () => {
      fake.script([{ tool_calls: [{ id: 'call_1', name: 'get_weather', arguments: { city: 'Paris' } }],
        usage: { prompt_tokens: 21, completion_tokens: 9 } }]);
      const r = await client.chat.completions.create({ model: `via-${p.name}`, messages, tools: TOOLS });
      assert.equal(r.choices[0].finish_reason, 'tool_calls');
      const call0 = r.choices[0].message.tool_calls[0];
      assert.equal(call0.function.name, 'get_weather');
      assert.deepEqual(JSON.parse(call0.function.arguments), { city: 'Paris' });
      assert.deepEqual([r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens], [21, 9, 30]);
      const [rec] = fake.requests();
      assert.equal(rec.path, '/v1/chat/completions');
      assert.equal(rec.headers.authorization, `Bearer ${p.key}`, 'the key from the provider variable');
      assert.equal(rec.body.model, p.upstream);
      assert.equal(rec.body.tools[0].function.name, 'get_weather');
    });

    test('streamed answer with a tool call and usage', async () => {
      fake.script([{ tool_calls: [{ id: 'call_2', name: 'get_weather', arguments: { city: 'Lyon' } }],
        usage: { prompt_tokens: 11, completion_tokens: 5 } }]);
      const stream = await client.chat.completions.create({ model: `via-${p.name}`, messages, tools: TOOLS,
        stream: true, stream_options: { include_usage: true } });
      let name = '';
      let args = '';
      let usage = null;
      let finish = null;
      for await (const chunk of stream) {
        if (chunk.usage) usage = chunk.usage;
        for (const c of chunk.choices) {
          for (const tc of c.delta?.tool_calls ?? []) {
            name += tc.function?.name ?? '';
            args += tc.function?.arguments ?? '';
          }
          finish = c.finish_reason ?? finish;
        }
      }
      assert.equal(name, 'get_weather');
      assert.deepEqual(JSON.parse(args), { city: 'Lyon' });
      assert.equal(finish, 'tool_calls');
      assert.deepEqual([usage.prompt_tokens, usage.completion_tokens, usage.total_tokens], [11, 5, 16]);
      const [rec] = fake.requests();
      assert.equal(rec.body.stream, true);
      assert.equal(rec.headers.authorization, `Bearer ${p.key}`);
    });

    test('provider errors carry its LiteLLM exception label', async () => {
      fake.script([{ status: 503, error_message: 'overloaded' }]);
      const r = await call(gw, '/v1/chat/completions', { body: { model: `via-${p.name}`, messages } });
      assert.equal(r.status, 503, r.text);
      const label = p.name[0].toUpperCase() + p.name.slice(1) + 'Exception';
      assert.match(r.json.error.message, new RegExp(label));
    });
  });
}

describe('request defaults from litellm_params', () => {
  test('max_tokens: 512 reaches the provider when the request sets none (bytes path)', async () => {
    fake.script([{ content: 'ok' }]);
    await client.chat.completions.create({ model: 'capped', messages });
    const [rec] = fake.requests();
    assert.equal(rec.body.max_tokens, 512);
    assert.equal(rec.body.temperature, 0.3);
    assert.equal(rec.body.top_k, 7, 'extra_body members are sent as body members');
  });

  test("the request's own value wins", async () => {
    fake.script([{ content: 'ok' }]);
    await client.chat.completions.create({ model: 'capped', messages, max_tokens: 20, temperature: 1 });
    const [rec] = fake.requests();
    assert.equal(rec.body.max_tokens, 20);
    assert.equal(rec.body.temperature, 1);
  });

  test('streamed requests get the defaults too', async () => {
    fake.script([{ content: 'ok' }]);
    const stream = await client.chat.completions.create({ model: 'capped', messages, stream: true });
    for await (const chunk of stream) void chunk;
    const [rec] = fake.requests();
    assert.equal(rec.body.max_tokens, 512);
    assert.equal(rec.body.stream, true);
  });

  test('translated requests (Anthropic) get the defaults, the request wins', async () => {
    fake.script([{ content: 'ok' }, { content: 'ok' }]);
    await client.chat.completions.create({ model: 'capped-claude', messages });
    await client.chat.completions.create({ model: 'capped-claude', messages, max_tokens: 33 });
    const recs = fake.requests();
    assert.equal(recs[0].provider, 'anthropic');
    assert.equal(recs[0].body.max_tokens, 512);
    assert.equal(recs[1].body.max_tokens, 33);
  });

  test('Ollama gets num_ctx and keep_alive from the deployment', async () => {
    fake.script([{ content: 'ok' }]);
    await client.chat.completions.create({ model: 'capped-ollama', messages });
    const [rec] = fake.requests();
    assert.equal(rec.provider, 'ollama');
    assert.equal(rec.body.options.num_ctx, 8192);
    assert.equal(rec.body.options.num_predict, 512);
    assert.equal(rec.body.keep_alive, '10m');
  });
});

describe('tag routing (enable_tag_filtering)', () => {
  test('a tagged request goes to the matching deployment or a "default" one, never another tier', async () => {
    fake.script([{ content: 'ok', times: -1 }]);
    for (const [tags, model, other] of [[['paid'], 'paid-model', 'free-model'], [['free'], 'free-model', 'paid-model']]) {
      fake.clearRequests();
      for (let i = 0; i < 6; i += 1) {
        const r = await call(gw, '/v1/chat/completions', { body: { model: 'tiered', messages, tags } });
        assert.equal(r.status, 200, r.text);
      }
      const seen = new Set(fake.requests().map((x) => x.body.model));
      assert.ok(!seen.has(other), `tags ${tags} reached ${other}`);
      for (const m of seen) assert.ok(m === model || m === 'default-model', m);
      for (const rec of fake.requests()) assert.equal(rec.body.tags, undefined, 'tags are not sent upstream');
    }
    fake.clearRequests();
    for (let i = 0; i < 6; i += 1) {
      const viaMetadata = await call(gw, '/v1/chat/completions',
        { body: { model: 'tiered', messages, metadata: { tags: ['paid'] } } });
      assert.equal(viaMetadata.status, 200, viaMetadata.text);
    }
    assert.ok(!fake.requests().some((x) => x.body.model === 'free-model'), 'metadata.tags are used');
  });

  test('an untagged request goes to the "default" deployment', async () => {
    fake.script([{ content: 'ok', times: -1 }]);
    for (let i = 0; i < 4; i += 1) {
      const r = await call(gw, '/v1/chat/completions', { body: { model: 'tiered', messages } });
      assert.equal(r.status, 200, r.text);
    }
    assert.deepEqual(new Set(fake.requests().map((x) => x.body.model)), new Set(['default-model']));
  });

  test('an unknown tag falls back on the "default" deployment', async () => {
    fake.script([{ content: 'ok' }]);
    const r = await call(gw, '/v1/chat/completions', { body: { model: 'tiered', messages, tags: ['gold'] } });
    assert.equal(r.status, 200, r.text);
    assert.equal(fake.requests()[0].body.model, 'default-model');
  });
});
