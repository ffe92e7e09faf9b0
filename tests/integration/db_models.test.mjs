// Models in the database (general_settings.store_model_in_db): /model/new, /model/update and
// /model/delete on one instance, and the other instance on the same Postgres and Redis
// serves the change. Pickup is waited for by polling with a bound (never a fixed sleep); the
// measured pickup time is printed, not asserted beyond the generous bound. Also: admin only,
// the provider key never in an answer (nor stored in clear), a model that does not load
// refused with a 400 and its reason, a restart loads the stored models, a config reload
// keeps them, and the endpoints without store_model_in_db answer LiteLLM's message (400).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import OpenAI from 'openai';

import { startFakeProvider } from '../fake_provider/server.mjs';
import { recordSecret } from '../lib/capture.mjs';
import {
  call, delay, mockModel, openaiErrorProblems, psql, SLOW, startGateway, stopAll, toYaml, withDatabase,
} from '../lib/gateway.mjs';

const SERVER_URL = process.env.SWITCHYARD_TEST_DATABASE_URL;
const REDIS_URL = process.env.SWITCHYARD_TEST_REDIS_URL;
const skip = (!SERVER_URL || !REDIS_URL) && 'SWITCHYARD_TEST_DATABASE_URL / SWITCHYARD_TEST_REDIS_URL not set (scripts/test.sh sets them)';

const dbName = `swy_dbmodels_${process.pid}_${Date.now()}`;
const UPSTREAM_SECRET = 'sk-db-model-upstream-7c41e9';
const UPSTREAM_SECRET_2 = 'sk-db-model-rotated-0b8d22';
const HEADER_SECRET = 'hdr-db-model-secret-5a90f1';
const PICKUP_BOUND_MS = 20_000 * SLOW;  // generous: the figure printed is what counts
const NO_POLL = '600000';  // the poll fallback out of the way: pickup must come from Redis

let dbUrl;
let fake1;
let fake2;
let a;
let b;

function sdk(gw, key = gw.masterKey) {
  return new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: key, maxRetries: 0, timeout: 20_000 });
}

const ask = (model) => ({ model, messages: [{ role: 'user', content: 'hi' }] });

// The status of one chat call through the SDK (200, or the error's status).
async function chatStatus(gw, model) {
  try {
    await sdk(gw).chat.completions.create(ask(model));
    return 200;
  } catch (e) {
    return e.status ?? 0;
  }
}

// Polls `fn` until it returns a truthy value; returns {value, ms}. Bounded, short steps.
async function until(fn, what, timeoutMs = PICKUP_BOUND_MS) {
  const t0 = Date.now();
  for (;;) {
    const v = await fn();
    if (v) return { value: v, ms: Date.now() - t0 };
    if (Date.now() - t0 > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await delay(10);
  }
}

function assertNoSecret(text, where) {
  for (const s of [UPSTREAM_SECRET, UPSTREAM_SECRET_2, HEADER_SECRET]) {
    assert.ok(!text.includes(s), `${where} contains a provider secret: ${text.slice(0, 300)}`);
  }
}

function configOf(extraGeneral = {}) {
  const u = new URL(REDIS_URL);
  return {
    model_list: [mockModel('from-file', 'from the config file')],
    router_settings: { redis_host: u.hostname, redis_port: Number(u.port) },
    general_settings: { store_model_in_db: true, ...extraGeneral },
  };
}

async function startPeer(env = {}) {
  const gw = await startGateway({
    config: configOf(),
    env: { DATABASE_URL: dbUrl, SWITCHYARD_DB_MODELS_POLL_MS: NO_POLL, ...env },
  });
  await gw.proc.waitForStderr(/models in the database: on/, 15_000 * SLOW);
  await gw.proc.waitForStderr(/redis connected/, 15_000 * SLOW);
  return gw;
}

describe('models in the database', { skip }, () => {
  before(async () => {
    recordSecret(UPSTREAM_SECRET, 'db model api_key');
    recordSecret(UPSTREAM_SECRET_2, 'db model rotated api_key');
    recordSecret(HEADER_SECRET, 'db model header');
    psql(SERVER_URL, `CREATE DATABASE ${dbName}`);
    dbUrl = withDatabase(SERVER_URL, dbName);
    fake1 = await startFakeProvider();
    fake2 = await startFakeProvider();
    a = await startPeer();
    b = await startPeer();
  });
  after(async () => {
    await stopAll();
    await fake1?.close();
    await fake2?.close();
    if (dbUrl) psql(SERVER_URL, `DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
  });

  test('added on A answers on B; updated on A, B calls the new api_base; deleted on A, B answers 400', async () => {
    assert.equal(await chatStatus(b, 'db-model'), 400, 'unknown before it is added');
    const added = await call(a, '/model/new', {
      body: {
        model_name: 'db-model',
        litellm_params: { model: 'openai/gpt-db', api_base: `${fake1.url}/v1`, api_key: UPSTREAM_SECRET,
                          extra_headers: { 'x-upstream-auth': HEADER_SECRET } },
        model_info: { description: 'added at runtime' },
      },
    });
    const t0 = Date.now();
    assert.equal(added.status, 200, added.text);
    assertNoSecret(added.text, '/model/new answer');
    const id = added.json.model_id;
    assert.match(id, /^[0-9a-f-]{36}$/);
    assert.equal(added.json.model_name, 'db-model');
    assert.equal(added.json.litellm_params.model, 'openai/gpt-db');
    assert.equal(added.json.litellm_params.api_key, undefined);
    assert.deepEqual(added.json.litellm_params.extra_headers, { 'x-upstream-auth': '<redacted>' });
    assert.equal(added.json.model_info.id, id);
    assert.equal(added.json.model_info.db_model, true);
    assert.equal(added.json.model_info.description, 'added at runtime');
    for (const k of ['created_at', 'updated_at', 'created_by', 'updated_by']) assert.ok(k in added.json, k);

    // Stored sealed, never in clear.
    const stored = psql(dbUrl, `SELECT litellm_params::text FROM proxy_models WHERE model_id = '${id}'`);
    assertNoSecret(stored, 'the stored row');
    assert.match(stored, /"api_key": "sy-enc:v1:/);

    // A serves it as soon as it answered; B within the bound (through Redis: B's poll is off).
    assert.equal(await chatStatus(a, 'db-model'), 200);
    const pickup = await until(async () => (await chatStatus(b, 'db-model')) === 200, 'B serves the new model');
    console.log(`pickup of /model/new on the other instance: ${Date.now() - t0} ms after the answer (polled every 10 ms)`);
    const seen = fake1.requests({ path: '/v1/chat/completions' }).at(-1);
    assert.equal(seen.headers.authorization, `Bearer ${UPSTREAM_SECRET}`, 'the sealed key opens to the original');
    assert.equal(seen.headers['x-upstream-auth'], HEADER_SECRET);
    assert.ok(pickup.ms < PICKUP_BOUND_MS);

    // /model/info on B: the db model with its id and db_model true, no secret.
    const info = await call(b, `/model/info?litellm_model_id=${id}`, { method: 'GET' });
    assert.equal(info.status, 200, info.text);
    assertNoSecret(info.text, '/model/info');
    assert.equal(info.json.data.length, 1);
    assert.equal(info.json.data[0].model_info.id, id);
    assert.equal(info.json.data[0].model_info.db_model, true);
    // The answer says the model endpoints work here (the admin UI's cue to offer editing).
    assert.equal(info.json.store_model_in_db, true);
    const fileModel = (await call(b, '/model/info', { method: 'GET' })).json.data.find((d) => d.model_name === 'from-file');
    assert.equal(fileModel.model_info.db_model, false);

    // Update on A: a new api_base and key; B calls fake2 with the new key.
    const t1 = Date.now();
    const upd = await call(a, '/model/update', {
      body: { model_info: { id }, litellm_params: { api_base: `${fake2.url}/v1`, api_key: UPSTREAM_SECRET_2 } },
    });
    assert.equal(upd.status, 200, upd.text);
    assertNoSecret(upd.text, '/model/update answer');
    assert.equal(upd.json.litellm_params.api_base, `${fake2.url}/v1`);
    assert.equal(upd.json.litellm_params.model, 'openai/gpt-db', 'the params not given are kept');
    const before2 = fake2.requests({ path: '/v1/chat/completions' }).length;
    await until(async () => {
      if ((await chatStatus(b, 'db-model')) !== 200) return false;
      return fake2.requests({ path: '/v1/chat/completions' }).length > before2;
    }, 'B calls the updated api_base');
    console.log(`pickup of /model/update on the other instance: ${Date.now() - t1} ms after the request`);
    assert.equal(fake2.requests({ path: '/v1/chat/completions' }).at(-1).headers.authorization, `Bearer ${UPSTREAM_SECRET_2}`);
    // Applied as a reload: the edited deployment is the one changed, the others unchanged.
    await b.proc.waitForStderr(/config reloaded \(database\)[^\n]*0 deployment\(s\) added, 0 removed, 1 changed, [1-9]\d* unchanged/);

    // Delete on A while B streams from the model: the stream finishes whole on the
    // generation it started on; new requests on B get 400 as for any unknown model.
    fake2.setDefaults({ chunks: 40, chunk_delay_ms: 25, content: Array.from({ length: 40 }, (_, i) => `p${i}`).join(' ') });
    const stream = await sdk(b).chat.completions.create({ ...ask('db-model'), stream: true });
    const it = stream[Symbol.asyncIterator]();
    let text = (await it.next()).value?.choices?.[0]?.delta?.content ?? '';
    const t2 = Date.now();
    const del = await call(a, '/model/delete', { body: { id } });
    assert.equal(del.status, 200, del.text);
    assert.deepEqual(del.json, { message: `Model: ${id} deleted successfully` });
    assert.equal(await chatStatus(a, 'db-model'), 400);
    await until(async () => (await chatStatus(b, 'db-model')) === 400, 'B forgets the deleted model');
    console.log(`pickup of /model/delete on the other instance: ${Date.now() - t2} ms after the request`);
    for (let n = await it.next(); !n.done; n = await it.next()) text += n.value.choices?.[0]?.delta?.content ?? '';
    assert.ok(text.includes('p0') && text.includes('p39'), `the stream in flight was cut: ${text}`);
    fake2.reset();
    assert.equal(await chatStatus(b, 'from-file'), 200, 'the config file\'s model is untouched');
    const again = await call(a, '/model/delete', { body: { id } });
    assert.equal(again.status, 400, again.text);
    assert.deepEqual(openaiErrorProblems(again.json, 400), []);
    assert.equal(again.json.error.message, `Model with id=${id} not found in db`);
  });

  test('only proxy admins; bad bodies and models that do not load are 4xx with the reason', async () => {
    const key = await call(a, '/key/generate', { body: { key_alias: 'not-admin' } });
    assert.equal(key.status, 200, key.text);
    const body = { model_name: 'x', litellm_params: { model: 'openai/x', api_key: UPSTREAM_SECRET } };
    for (const path of ['/model/new', '/model/update', '/model/delete']) {
      // As LiteLLM's route check: a key that is not a proxy admin's is a 401 on admin routes.
      const r = await call(a, path, { body, key: key.json.key });
      assert.equal(r.status, 401, `${path}: ${r.text}`);
      assert.match(r.json.error.message, /Only proxy admin/);
      assertNoSecret(r.text, path);
    }
    const noAuth = await call(a, '/model/new', { body, key: null });
    assert.equal(noAuth.status, 401, noAuth.text);

    const badProvider = await call(a, '/model/new', {
      body: { model_name: 'bad', litellm_params: { model: 'nosuchprovider/m', api_key: UPSTREAM_SECRET } },
    });
    assert.equal(badProvider.status, 400, badProvider.text);
    assert.deepEqual(openaiErrorProblems(badProvider.json, 400), []);
    assert.match(badProvider.json.error.message, /^Invalid model: litellm_params\.model: /);
    assert.doesNotMatch(badProvider.json.error.message, /config\.yaml|database/);
    assertNoSecret(badProvider.text, 'the 400');
    const badParam = await call(a, '/model/new', {
      body: { model_name: 'bad', litellm_params: { model: 'openai/m', rpm: 'many' } },
    });
    assert.equal(badParam.status, 400, badParam.text);
    assert.match(badParam.json.error.message, /^Invalid model: litellm_params\.rpm: /);
    const missingEnv = await call(a, '/model/new', {
      body: { model_name: 'bad', litellm_params: { model: 'openai/m', api_key: 'os.environ/SWY_TEST_NOT_SET_ANYWHERE' } },
    });
    assert.equal(missingEnv.status, 400, missingEnv.text);
    assert.match(missingEnv.json.error.message, /SWY_TEST_NOT_SET_ANYWHERE is not set/);
    assert.equal(psql(dbUrl, `SELECT count(*) FROM proxy_models WHERE model_name = 'bad'`), '0', 'nothing stored');

    const replayed = await call(a, '/model/new', {
      body: { model_name: 'bad', litellm_params: { model: 'openai/m', api_key: 'sy-enc:v1:AAAA' } },
    });
    assert.equal(replayed.status, 400, replayed.text);
    assert.match(replayed.json.error.message, /^litellm_params\.api_key: an encrypted value/);

    const noParams = await call(a, '/model/new', { body: { model_name: 'x' } });
    assert.equal(noParams.status, 422, noParams.text);
    assert.deepEqual(openaiErrorProblems(noParams.json, 422), []);
    const noId = await call(a, '/model/update', { body: { litellm_params: { rpm: 1 } } });
    assert.equal(noId.status, 422, noId.text);
    const unknown = await call(a, '/model/update', { body: { model_info: { id: 'no-such-id' }, litellm_params: { rpm: 1 } } });
    assert.equal(unknown.status, 400, unknown.text);
    assert.equal(unknown.json.error.message, 'Model with id=no-such-id not found in db');
    const fileId = (await call(a, '/model/info', { method: 'GET' })).json.data.find((d) => d.model_name === 'from-file').model_info.id;
    const fileEdit = await call(a, '/model/update', { body: { model_info: { id: fileId }, litellm_params: { rpm: 1 } } });
    assert.equal(fileEdit.status, 400, fileEdit.text);
    assert.match(fileEdit.json.error.message, /Model in config/);
    const clash = await call(a, '/model/new', {
      body: { model_name: 'x', litellm_params: { model: 'openai/x' }, model_info: { id: fileId } },
    });
    assert.equal(clash.status, 400, clash.text);
    // An update that would not load is refused and the stored model keeps serving.
    const ok = await call(a, '/model/new', {
      body: { model_name: 'keeps', litellm_params: { model: 'openai/keeps', mock_response: 'still here' }, model_info: { id: 'keeps-1' } },
    });
    assert.equal(ok.status, 200, ok.text);
    const dup = await call(a, '/model/new', {
      body: { model_name: 'keeps', litellm_params: { model: 'openai/keeps' }, model_info: { id: 'keeps-1' } },
    });
    assert.equal(dup.status, 400, dup.text);
    assert.match(dup.json.error.message, /already exists/);
    const badUpdate = await call(a, '/model/update', { body: { model_info: { id: 'keeps-1' }, litellm_params: { model: 'nosuchprovider/x' } } });
    assert.equal(badUpdate.status, 400, badUpdate.text);
    assert.equal(await chatStatus(a, 'keeps'), 200);
  });

  test('a restart loads the stored models; a config reload keeps them; a bad stored row is skipped, not fatal', async () => {
    const r = await call(a, '/model/new', {
      body: { model_name: 'survives', litellm_params: { model: 'openai/s', mock_response: 'from the database' }, model_info: { id: 'survives-1' } },
    });
    assert.equal(r.status, 200, r.text);
    // A row written behind the API's back that no longer loads (unknown provider): skipped.
    psql(dbUrl, `INSERT INTO proxy_models (model_id, model_name, litellm_params) VALUES ('broken-1', 'broken', '{"model": "nosuchprovider/x"}')`);
    await b.stop();
    b = await startPeer();
    const loaded = await until(async () => (await chatStatus(b, 'survives')) === 200, 'restarted B serves the stored model');
    console.log(`stored models served ${loaded.ms} ms after the restarted instance was ready`);
    await b.proc.waitForStderr(/db_model\[broken-1\][^\n]*skipped/);  // the log is written asynchronously
    assert.equal(await chatStatus(b, 'broken'), 400);
    assert.equal(await chatStatus(b, 'from-file'), 200);

    // Config reload (a model added to the file): the stored models stay.
    writeFileSync(b.configFile, toYaml({ ...configOf(), model_list: [mockModel('from-file', 'x'), mockModel('also-file', 'y')] }));
    const rl = await call(b, '/config/reload');
    assert.equal(rl.status, 200, rl.text);
    assert.equal(rl.json.status, 'reloaded');
    assert.equal(await chatStatus(b, 'also-file'), 200);
    assert.equal(await chatStatus(b, 'survives'), 200);
    psql(dbUrl, `DELETE FROM proxy_models WHERE model_id = 'broken-1'`);
  });

  test('a config file that no longer loads holds a change back until it loads again', async () => {
    // The file as loaded now: restoring it exactly makes the reload "unchanged", which
    // must release the held change too.
    const good = readFileSync(b.configFile, 'utf8');
    writeFileSync(b.configFile, 'model_list:\n  - model_name: broken\n');
    const r = await call(a, '/model/new', {
      body: { model_name: 'held', litellm_params: { model: 'openai/h', mock_response: 'held back' } },
    });
    assert.equal(r.status, 200, r.text);
    await b.proc.waitForStderr(/config reload \(database\) refused, still serving/);
    assert.equal(await chatStatus(b, 'held'), 400);
    assert.equal(await chatStatus(b, 'survives'), 200, 'the models merged before keep serving');
    writeFileSync(b.configFile, good);
    const rl = await call(b, '/config/reload');
    assert.equal(rl.status, 200, rl.text);
    assert.equal(rl.json.status, 'unchanged');
    await until(async () => (await chatStatus(b, 'held')) === 200, 'B applies the held change once the file loads');
    // Refused once, not at every poll.
    assert.equal(b.stderr().match(/config reload \(database\) refused/g).length, 1);
  });

  test('an instance that missed the message converges by its poll', async () => {
    // C polls every 200 ms and has no Redis: it hears nothing, the poll finds the change.
    const c = await startGateway({
      config: { model_list: [mockModel('from-file')], general_settings: { store_model_in_db: true } },
      env: { DATABASE_URL: dbUrl, SWITCHYARD_DB_MODELS_POLL_MS: '200', REDIS_URL: '', REDIS_HOST: '' },
    });
    await c.proc.waitForStderr(/models in the database: on/, 15_000 * SLOW);
    const r = await call(a, '/model/new', {
      body: { model_name: 'polled', litellm_params: { model: 'openai/p', mock_response: 'found by the poll' } },
    });
    assert.equal(r.status, 200, r.text);
    const t = Date.now();
    await until(async () => (await chatStatus(c, 'polled')) === 200, 'C finds the model by polling');
    console.log(`pickup by the poll (200 ms interval): ${Date.now() - t} ms`);
    await c.stop();
  });

  test('without store_model_in_db the endpoints answer LiteLLM\'s message with a 400', async () => {
    const off = await startGateway({
      config: { model_list: [mockModel('from-file')] },
      env: { DATABASE_URL: dbUrl },
    });
    for (const [path, body] of [
      ['/model/new', { model_name: 'x', litellm_params: { model: 'openai/x', api_key: UPSTREAM_SECRET } }],
      ['/model/update', { model_info: { id: 'x' }, litellm_params: { rpm: 1 } }],
      ['/model/delete', { id: 'x' }],
    ]) {
      const r = await call(off, path, { body });
      assert.equal(r.status, 400, `${path}: ${r.text}`);
      assert.deepEqual(openaiErrorProblems(r.json, 400), []);
      assert.equal(r.json.error.message, "Set `'STORE_MODEL_IN_DB='True'` in your env to enable this feature.");
      assertNoSecret(r.text, path);
    }
    // The stored models are not served either, and /model/info says the store is off.
    assert.equal(await chatStatus(off, 'survives'), 400);
    const info = await call(off, '/model/info', { method: 'GET' });
    assert.equal(info.status, 200, info.text);
    assert.equal(info.json.store_model_in_db, false);
    assert.deepEqual(info.json.data.map((d) => [d.model_name, d.model_info.db_model]), [['from-file', false]]);
    await off.stop();
  });
});
