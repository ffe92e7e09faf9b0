// Health probes and /v1/models against the real binary.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import {
  MASTER_KEY, curlHttp, fetchWithTimeout, freePort, mockModel, startGateway, stopAll,
} from '../lib/gateway.mjs';

after(() => stopAll());

describe('probes without a database', () => {
  let gw;
  before(async () => {
    gw = await startGateway({
      config: { model_list: [mockModel('demo'), mockModel('other'), mockModel('demo')] },
    });
  });

  for (const p of ['/health/liveliness', '/health/liveness', '/healthz']) {
    test(`GET ${p} is 200 without a key (curl)`, async () => {
      const r = await curlHttp([`${gw.url}${p}`]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.status, 200, r.body);
    });
  }

  test('GET /health/liveliness says it is alive', async () => {
    const r = await fetchWithTimeout(`${gw.url}/health/liveliness`);
    assert.equal(r.status, 200);
    assert.match(await r.text(), /alive/i);
  });

  for (const p of ['/health/readiness', '/readyz']) {
    test(`GET ${p} is 200 JSON with db and cache fields when nothing is configured`, async () => {
      const r = await fetchWithTimeout(`${gw.url}${p}`);
      assert.equal(r.status, 200);
      const j = await r.json();
      assert.ok('db' in j, JSON.stringify(j));
      assert.ok('cache' in j, JSON.stringify(j));
      // LiteLLM's word: probes written for it compare the string.
      assert.equal(j.status, 'healthy');
      assert.equal(j.db, 'Not connected');
      assert.equal(j.cache, null);
      assert.ok(Array.isArray(j.success_callbacks), JSON.stringify(j));
    });
  }

  for (const p of ['/v1/models', '/models']) {
    test(`GET ${p} lists each configured model name once, OpenAI list format`, async () => {
      const r = await curlHttp([`${gw.url}${p}`, '-H', `Authorization: Bearer ${MASTER_KEY}`]);
      assert.equal(r.status, 200, r.body);
      const j = JSON.parse(r.body);
      assert.equal(j.object, 'list');
      assert.deepEqual(j.data.map((m) => m.id).sort(), ['demo', 'other']);
      for (const m of j.data) {
        assert.equal(m.object, 'model');
        assert.equal(typeof m.created, 'number');
        assert.equal(typeof m.owned_by, 'string');
      }
    });
  }

  test('GET /v1/models needs a key', async () => {
    const r = await fetchWithTimeout(`${gw.url}/v1/models`);
    assert.equal(r.status, 401);
  });
});

describe('readiness with Postgres', () => {
  test('503 and db not connected when DATABASE_URL points at a closed port', async () => {
    const port = await freePort();
    const gw = await startGateway({
      config: { model_list: [mockModel('demo')] },
      env: { DATABASE_URL: `postgresql://nobody:secret@127.0.0.1:${port}/switchyard` },
      waitForDb: false,
    });
    // Liveliness stays 200: the process is fine, it is just not ready.
    const live = await fetchWithTimeout(`${gw.url}/health/liveliness`);
    assert.equal(live.status, 200);
    const r = await fetchWithTimeout(`${gw.url}/health/readiness`, { timeoutMs: 15_000 });
    const j = await r.json();
    assert.equal(r.status, 503, JSON.stringify(j));
    assert.equal(j.status, 'unhealthy');
    assert.ok('db' in j && 'cache' in j, JSON.stringify(j));
    assert.notEqual(j.db, 'connected');
    const rz = await fetchWithTimeout(`${gw.url}/readyz`, { timeoutMs: 15_000 });
    assert.equal(rz.status, 503);
    // The secret of the URL never shows up in the answer.
    assert.doesNotMatch(JSON.stringify(j), /secret/);
    const { code } = await gw.stop();
    assert.equal(code, 0);
  });

  test('200 with db and redis connected to the test Postgres and Redis',
    { skip: !(process.env.SWITCHYARD_TEST_DATABASE_URL && process.env.SWITCHYARD_TEST_REDIS_URL)
      && 'SWITCHYARD_TEST_DATABASE_URL / SWITCHYARD_TEST_REDIS_URL not set (scripts/test.sh sets them)' },
    async () => {
      const gw = await startGateway({
        config: { model_list: [mockModel('demo')] },
        env: {
          DATABASE_URL: process.env.SWITCHYARD_TEST_DATABASE_URL,
          REDIS_URL: process.env.SWITCHYARD_TEST_REDIS_URL,
        },
      });
      // Connections may still be coming up: poll (bounded) until ready.
      const deadline = Date.now() + 15_000;
      let r;
      let j;
      for (;;) {
        r = await fetchWithTimeout(`${gw.url}/health/readiness`, { timeoutMs: 10_000 });
        j = await r.json();
        if ((r.status === 200 && j.db === 'connected') || Date.now() > deadline) break;
        await new Promise((res) => setTimeout(res, 100));
      }
      assert.equal(r.status, 200, JSON.stringify(j));
      assert.equal(j.status, 'healthy', JSON.stringify(j));
      assert.equal(j.db, 'connected', JSON.stringify(j));
      assert.equal(j.redis, 'connected', JSON.stringify(j));
      // `cache` is the response cache's type (LiteLLM's litellm.cache.type): none here,
      // Redis serves the router and the limits only (cache.test.mjs checks "redis", "local").
      assert.equal(j.cache, null, JSON.stringify(j));
      const { code } = await gw.stop();
      assert.equal(code, 0);
    });
});
