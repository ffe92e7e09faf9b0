// Access rules end to end: general_settings.allowed_ips (LiteLLM's 403, probes open),
// a virtual key's allowed_routes, and general_settings.allowed_routes / admin_only_routes,
// through the official `openai` SDK and plain requests; a bad entry is a config error
// with its file:line. Needs Postgres for virtual keys (skipped without
// SWITCHYARD_TEST_DATABASE_URL; scripts/test.sh sets it).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import OpenAI from 'openai';

import {
  call, mockModel, openaiErrorProblems, psql, runGateway, startGateway, stopAll, withDatabase, writeConfig,
} from '../lib/gateway.mjs';

const SERVER_URL = process.env.SWITCHYARD_TEST_DATABASE_URL;
const skip = !SERVER_URL && 'SWITCHYARD_TEST_DATABASE_URL not set (scripts/test.sh sets it)';

const models = [mockModel('a', 'from a'), { model_name: 'emb', litellm_params: { model: 'openai/emb', mock_response: 'x' } }];

describe('allowed_ips', () => {
  after(() => stopAll());

  test('a client outside the list gets 403 as in LiteLLM; probes stay open; a listed network is served', async () => {
    const closed = await startGateway({ config: { model_list: models, general_settings: { allowed_ips: ['10.1.2.3', '192.168.0.0/16'] } } });
    const r = await call(closed, '/v1/chat/completions', { body: { model: 'a', messages: [{ role: 'user', content: 'hi' }] } });
    assert.equal(r.status, 403, r.text);
    assert.deepEqual(openaiErrorProblems(r.json, 403), []);
    assert.equal(r.json.error.message, 'Access forbidden: IP address not allowed.');
    assert.equal(r.json.error.type, 'auth_error');
    assert.equal((await call(closed, '/health/liveliness', { method: 'GET' })).status, 200);
    assert.equal((await call(closed, '/health/readiness', { method: 'GET' })).status, 200);
    assert.equal((await call(closed, '/v1/models', { method: 'GET' })).status, 403);

    const open = await startGateway({ config: { model_list: models, general_settings: { allowed_ips: ['10.0.0.0/8', '127.0.0.0/8'] } } });
    const ok = await call(open, '/v1/chat/completions', { body: { model: 'a', messages: [{ role: 'user', content: 'hi' }] } });
    assert.equal(ok.status, 200, ok.text);
  });

  test('an entry that is not an address or network stops the start with its file:line', async () => {
    const file = writeConfig(`model_list:\n  - model_name: a\n    litellm_params:\n      model: openai/a\n      mock_response: hi\ngeneral_settings:\n  allowed_ips:\n    - 127.0.0.1\n    - 10.0.0.0/33\n`);
    const r = await runGateway(['--check-config', file]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /config\.yaml:9: general_settings\.allowed_ips\[1\]: "10\.0\.0\.0\/33" is not an IP address or a CIDR network/);
  });
});

describe('route rules', { skip }, () => {
  const dbName = `swy_access_${process.pid}_${Date.now()}`;
  let dbUrl;
  let gw;
  const sdk = (key) => new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: key, maxRetries: 0, timeout: 20_000 });
  const generate = async (body) => {
    const r = await call(gw, '/key/generate', { body });
    assert.equal(r.status, 200, r.text);
    return r.json.key;
  };

  before(async () => {
    psql(SERVER_URL, `CREATE DATABASE ${dbName}`);
    dbUrl = withDatabase(SERVER_URL, dbName);
    gw = await startGateway({
      config: {
        model_list: models,
        general_settings: { allowed_routes: ['llm_api_routes', 'info_routes'], admin_only_routes: ['/v1/embeddings'] },
        litellm_settings: {
          default_key_generate_params: { max_budget: 1.5, models: ['a'] },
          upperbound_key_generate_params: { max_budget: 100, budget_duration: '10d', rpm_limit: 1000 },
        },
      },
      env: { DATABASE_URL: dbUrl },
    });
  });
  after(async () => {
    await stopAll();
    if (dbUrl) psql(SERVER_URL, `DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
  });

  test("a key's allowed_routes: LiteLLM's 403 on any other route", async () => {
    const key = await generate({ allowed_routes: ['/v1/chat/completions'] });
    const answer = await sdk(key).chat.completions.create({ model: 'a', messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(answer.choices[0].message.content, 'from a');
    const info = await call(gw, '/key/info', { method: 'GET', key });
    assert.equal(info.status, 403, info.text);
    assert.equal(info.json.error.message,
      "Virtual key is not allowed to call this route. Only allowed to call routes: ['/v1/chat/completions']. Tried to call route: /key/info");
    await assert.rejects(sdk(key).models.list(), (e) => e.status === 403);
  });

  test('general allowed_routes and admin_only_routes bind virtual keys, not the master key', async () => {
    const key = await generate({});
    assert.equal((await call(gw, '/key/info', { method: 'GET', key })).status, 200, 'info_routes allowed');
    const team = await call(gw, '/spend/logs', { method: 'GET', key });
    assert.equal(team.status, 403, team.text);
    assert.deepEqual(openaiErrorProblems(team.json, 403), []);
    assert.match(team.json.error.message, /general_settings\.allowed_routes/);
    await assert.rejects(sdk(key).embeddings.create({ model: 'emb', input: 'x' }), (e) => e.status === 403 && /admin_only_routes/.test(e.message));
    assert.equal((await call(gw, '/spend/logs', { method: 'GET' })).status, 200, 'the master key is an admin');
    const emb = await call(gw, '/v1/embeddings', { body: { model: 'emb', input: 'x' } });
    assert.notEqual(emb.status, 403, emb.text);
  });

  test('/key/generate: default_key_generate_params fill, upperbound_key_generate_params refuse (not clamp) and fill', async () => {
    const r = await call(gw, '/key/generate', { body: {} });
    assert.equal(r.status, 200, r.text);
    const info = (await call(gw, `/key/info?key=${r.json.key}`, { method: 'GET' })).json.info;
    assert.equal(info.max_budget, 1.5, 'the default');
    assert.deepEqual(info.models, ['a']);
    assert.equal(info.budget_duration, '10d', 'an upper bound also fills an absent field');
    for (const [body, field, user, max] of [
      [{ max_budget: 200 }, 'max_budget', '200', '100'],
      [{ rpm_limit: 5000 }, 'rpm_limit', '5000', '1000'],
      [{ budget_duration: '30d' }, 'budget_duration', '30d', '10d'],
    ]) {
      const bad = await call(gw, '/key/generate', { body });
      assert.equal(bad.status, 400, bad.text);
      assert.deepEqual(openaiErrorProblems(bad.json, 400), []);
      assert.equal(bad.json.error.message, `${field} is over max limit set in config - user_value=${user}; max_value=${max}`);
    }
    const within = await call(gw, '/key/generate', { body: { max_budget: 50, rpm_limit: 10, budget_duration: '1d' } });
    assert.equal(within.status, 200, within.text);
    // /key/update is held to the same bounds (what it leaves out is not filled).
    for (const [body, field] of [[{ max_budget: 200 }, 'max_budget'], [{ budget_duration: '30d' }, 'budget_duration']]) {
      const bad = await call(gw, '/key/update', { body: { key: within.json.key, ...body } });
      assert.equal(bad.status, 400, bad.text);
      assert.equal(bad.json.error.param, field);
    }
    const up = await call(gw, '/key/update', { body: { key: within.json.key, key_alias: 'bounded' } });
    assert.equal(up.status, 200, up.text);
    const after = (await call(gw, `/key/info?key=${within.json.key}`, { method: 'GET' })).json.info;
    assert.equal(after.max_budget, 50, 'an update does not fill from the bounds');
    assert.equal(after.rpm_limit, 10);
  });
});

describe('enforce_user_param', () => {
  after(() => stopAll());

  test('a request without `user` is refused as in LiteLLM; with it, served', async () => {
    const gw = await startGateway({ config: { model_list: models, general_settings: { enforce_user_param: true } } });
    const messages = [{ role: 'user', content: 'hi' }];
    const r = await call(gw, '/v1/chat/completions', { body: { model: 'a', messages } });
    assert.equal(r.status, 400, r.text);
    assert.deepEqual(openaiErrorProblems(r.json, 400), []);
    assert.equal(r.json.error.message, 'BadRequest please pass param=user in request body. This is a required param');
    const ok = await new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: gw.masterKey, maxRetries: 0 })
      .chat.completions.create({ model: 'a', messages, user: 'u-1' });
    assert.equal(ok.choices[0].message.content, 'from a');
  });
});
