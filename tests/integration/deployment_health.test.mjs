// GET /health (deployment checks with real provider calls), background checks feeding the
// router through the shared cooldowns (two instances, Redis), /health/backlog and
// /active/callbacks, against the real binary and the fake provider.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { startFakeProvider } from '../fake_provider/server.mjs';
import {
  SLOW, call, fetchWithTimeout, startDeadReceiver, metricValue, mockModel, spawnFakeProvider, startGateway, stopAll, until,
} from '../lib/gateway.mjs';

const USER = [{ role: 'user', content: 'Say hello' }];
let fake;

before(async () => {
  fake = await startFakeProvider();
});
after(async () => {
  await stopAll();
  await fake?.close();
});

function dep(group, apiBase, id, { info = {}, upstream = 'gpt-x' } = {}) {
  return {
    model_name: group,
    litellm_params: { model: `openai/${upstream}`, api_base: apiBase, api_key: 'sk-upstream-secret' },
    model_info: { id, ...info },
  };
}

describe('GET /health on demand', () => {
  let gw;
  let deadPort;
  let down;  // the dead deployment: holds deadPort, closes every connection
  after(() => down?.close());
  before(async () => {
    down = await startDeadReceiver();
    deadPort = down.port;
    gw = await startGateway({
      config: {
        model_list: [
          dep('good', `${fake.url}/v1`, 'h-good'),
          dep('dead', `http://127.0.0.1:${deadPort}/v1`, 'h-dead', { info: { health_check_timeout: 5 } }),
          dep('embed', `${fake.url}/v1`, 'h-embed', { info: { mode: 'embedding' }, upstream: 'text-embedding-3-small' }),
          mockModel('mocked'),
        ],
      },
    });
  });

  test('each deployment is called once; the stopped one is unhealthy; no secret in the answer', async () => {
    fake.reset();
    const r = await call(gw, '/health', { method: 'GET' });
    assert.equal(r.status, 200, r.text);
    const j = r.json;
    assert.equal(j.healthy_count, 3, r.text);
    assert.equal(j.unhealthy_count, 1, r.text);
    assert.deepEqual(j.healthy_endpoints.map((e) => e.model_name).sort(), ['embed', 'good', 'mocked']);
    const bad = j.unhealthy_endpoints[0];
    assert.equal(bad.model_id, 'h-dead');
    assert.equal(bad.model_name, 'dead');
    assert.match(bad.error, /APIConnectionError|connect/i);
    assert.doesNotMatch(r.text, /sk-upstream-secret|api_key/);
    // The minimal calls: a chat with max_tokens 1 and an embedding of LiteLLM's test input.
    const seen = fake.requests();
    const chat = seen.filter((q) => q.path === '/v1/chat/completions');
    const emb = seen.filter((q) => q.path === '/v1/embeddings');
    assert.equal(chat.length, 1);
    assert.equal(chat[0].body.max_tokens, 1);
    assert.equal(emb.length, 1);
    assert.deepEqual(emb[0].body.input, ['test from litellm']);
  });

  test('?model= checks one group; an unknown model is 404', async () => {
    fake.reset();
    const r = await call(gw, '/health?model=good', { method: 'GET' });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.healthy_count, 1);
    assert.equal(r.json.unhealthy_count, 0);
    assert.equal(fake.requests().length, 1);
    const nope = await call(gw, '/health?model=nope', { method: 'GET' });
    assert.equal(nope.status, 404, nope.text);
    assert.equal(nope.json.error.param, 'model');
  });

  test('a provider error makes the deployment unhealthy with its status', async () => {
    fake.reset();
    fake.script([{ status: 401, error_message: 'bad upstream key' }]);
    const r = await call(gw, '/health?model=good', { method: 'GET' });
    assert.equal(r.json.unhealthy_count, 1, r.text);
    assert.equal(r.json.unhealthy_endpoints[0].exception_status, 401);
    assert.match(r.json.unhealthy_endpoints[0].error, /bad upstream key/);
  });

  test('a key is needed', async () => {
    const r = await call(gw, '/health', { method: 'GET', key: null });
    assert.equal(r.status, 401, r.text);
    const post = await call(gw, '/health', { method: 'POST', body: {} });
    assert.equal(post.status, 405, post.text);
  });

  test('/health/backlog counts the LLM requests in flight', async () => {
    const idle = await call(gw, '/health/backlog', { method: 'GET' });
    assert.equal(idle.status, 200, idle.text);
    assert.deepEqual(idle.json, { in_flight_requests: 0 });
    fake.reset();
    // Held by the provider long enough to be seen in flight (the wait ends on the event).
    fake.script([{ delay_ms: 4000 }]);
    const pending = call(gw, '/v1/chat/completions', { body: { model: 'good', messages: USER }, timeoutMs: 60_000 });
    await until('one request in flight', async () =>
      (await call(gw, '/health/backlog', { method: 'GET' })).json.in_flight_requests === 1);
    assert.equal((await pending).status, 200);
    await until('none in flight', async () =>
      (await call(gw, '/health/backlog', { method: 'GET' })).json.in_flight_requests === 0);
  });

  test('/active/callbacks names prometheus', async () => {
    const r = await call(gw, '/active/callbacks', { method: 'GET' });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json['litellm.success_callback'], ['prometheus']);
    assert.equal(r.json.num_callbacks, 1);
  });
});

describe('background health checks hold a stopped deployment back on every instance',
  { skip: !process.env.SWITCHYARD_TEST_REDIS_URL && 'SWITCHYARD_TEST_REDIS_URL unset' }, () => {
    test('no user request reaches it on either instance until a check passes again', async () => {
      const url = new URL(process.env.SWITCHYARD_TEST_REDIS_URL);
      const run = `${process.pid}-${Date.now()}`;
      let flaky = await spawnFakeProvider();
      const port = flaky.port;
      const good = `hb-good-${run}`;
      const bad = `hb-bad-${run}`;
      const models = [
        dep('pool', `${fake.url}/v1`, good),
        dep('pool', `http://127.0.0.1:${port}/v1`, bad, { info: { health_check_timeout: 2 } }),
      ];
      const redis = { redis_host: url.hostname, redis_port: Number(url.port || 6379) };
      // A checks every second; B never checks by itself: it learns through Redis.
      const a = await startGateway({
        config: { model_list: models, router_settings: redis,
                  general_settings: { background_health_checks: true, health_check_interval: 1 } },
      });
      const b = await startGateway({ config: { model_list: models, router_settings: redis } });
      await Promise.all([a, b].map((g) => g.proc.waitForStderr(/redis connected/, 10_000 * SLOW)));

      const health = async () => (await call(a, '/health', { method: 'GET' })).json;
      await until('both healthy at first', async () => (await health()).healthy_count === 2);

      await flaky.close();
      const h = await until('the stopped deployment reported unhealthy', async () => {
        const j = await health();
        return j.unhealthy_count === 1 ? j : undefined;
      });
      assert.equal(h.unhealthy_endpoints[0].model_id, bad);
      // B heard of it through Redis: the deployment reads as cooled (2) in its metrics.
      await until('B holds it back', async () =>
        (await metricValue(b, 'litellm_deployment_state', { model_id: bad })) === 2);
      await until('A holds it back', async () =>
        (await metricValue(a, 'litellm_deployment_state', { model_id: bad })) === 2);

      for (const gw of [a, b]) {
        for (let i = 0; i < 30; ++i) {
          const r = await call(gw, '/v1/chat/completions', { body: { model: 'pool', messages: USER } });
          assert.equal(r.status, 200, r.text);
          assert.equal(r.headers.get('x-litellm-model-id'), good);
          assert.equal(r.headers.get('x-litellm-attempted-retries'), '0');
        }
        // Not one attempt went to it.
        assert.equal(await metricValue(gw, 'litellm_deployment_total_requests_total', { model_id: bad }), undefined);
      }

      // Back on the same port: a passing check lets the hold run out, and traffic returns.
      flaky = await spawnFakeProvider({ port });
      await until('healthy again', async () => (await health()).healthy_count === 2);
      const reached = async () => {
        const r = await fetchWithTimeout(`${flaky.url}/__control/requests`);
        return (await r.json()).filter((q) => q.path === '/v1/chat/completions' && q.body?.max_tokens !== 1).length;
      };
      for (const gw of [a, b]) {
        const before = await reached();
        await until('user requests reach it again', async () => {
          const r = await call(gw, '/v1/chat/completions', { body: { model: 'pool', messages: USER } });
          assert.equal(r.status, 200, r.text);
          return (await reached()) > before;
        });
      }
      await flaky.close();
    });
  });
