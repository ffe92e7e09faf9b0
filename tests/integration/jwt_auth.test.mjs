// JWT auth of API callers (general_settings.enable_jwt_auth): a token from the fake OIDC
// provider authenticates /v1/chat/completions with the official openai SDK, its user and
// team land in the spend row; tampered tokens get 401s that say why; a key added by
// rotation starts working and a key removed from the JWKS stops working after the
// background refresh; the admin scope makes a proxy admin on the management API.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import OpenAI from 'openai';

import { startFakeOidc } from '../fake_oidc/server.mjs';
import {
  call, delay, mockModel, openaiErrorProblems, psql, runGateway, startGateway, stopAll, withDatabase, writeConfig,
} from '../lib/gateway.mjs';

const SERVER_URL = process.env.SWITCHYARD_TEST_DATABASE_URL;
const skip = !SERVER_URL && 'SWITCHYARD_TEST_DATABASE_URL not set (scripts/test.sh sets it)';
const dbName = `swy_jwt_${process.pid}_${Date.now()}`;
let dbUrl;
let idp;
let gw;

const chat = (token) => new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: token, maxRetries: 0, timeout: 20_000 })
  .chat.completions.create({ model: 'demo', messages: [{ role: 'user', content: 'hi' }] });

// Polls `fn` until it returns a truthy value (deadline in ms); returns that value.
async function until(fn, what, ms = 30_000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await delay(100);
  }
}

async function status(token) {
  const r = await call(gw, '/v1/chat/completions', { key: token, body: { model: 'demo', messages: [{ role: 'user', content: 'x' }] } });
  return r;
}

describe('JWT auth settings', () => {
  test('enable_jwt_auth without JWT_PUBLIC_KEY_URL is a config error (exit 2), --check-config too', async () => {
    const file = writeConfig({ model_list: [mockModel('demo')], general_settings: { enable_jwt_auth: true } });
    for (const args of [['--config', file, '--port', '0'], ['--check-config', file]]) {
      const r = await runGateway(args, { env: { JWT_PUBLIC_KEY_URL: '' } });
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /config error: .*JWT_PUBLIC_KEY_URL \(the identity provider's JWKS URL\) is not set/);
    }
  });

  test('a client id without its secret is a config error', async () => {
    const file = writeConfig({ model_list: [mockModel('demo')] });
    const r = await runGateway(['--check-config', file], {
      env: { GENERIC_CLIENT_ID: 'x', GENERIC_AUTHORIZATION_ENDPOINT: 'http://127.0.0.1:1/a', GENERIC_TOKEN_ENDPOINT: 'http://127.0.0.1:1/t' },
    });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /the generic sign-in has a client id but no client secret/);
  });
});

describe('JWT auth for the API', { skip }, () => {
  before(async () => {
    idp = await startFakeOidc();
    psql(SERVER_URL, `CREATE DATABASE ${dbName}`);
    dbUrl = withDatabase(SERVER_URL, dbName);
    gw = await startGateway({
      config: {
        model_list: [mockModel('demo', 'hello from the mock')],
        general_settings: {
          enable_jwt_auth: true,
          litellm_jwtauth: { user_id_jwt_field: 'sub', team_id_jwt_field: 'team', public_key_ttl: 1 },
        },
      },
      env: { DATABASE_URL: dbUrl, JWT_PUBLIC_KEY_URL: `${idp.url}/jwks`, JWT_AUDIENCE: idp.clientId, JWT_ISSUER: idp.issuer },
    });
    await until(() => idp.state.jwksFetches > 0, 'the first JWKS fetch');
  });
  after(async () => {
    await stopAll();
    await idp?.close();
    if (dbUrl) psql(SERVER_URL, `DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
  });

  test('a token from the provider authenticates chat completions; spend goes to its user and team', async () => {
    const token = idp.mint({ sub: 'svc-reporting', team: 'team-analytics' });
    const r = await chat(token);
    assert.equal(r.choices[0].message.content, 'hello from the mock');
    const row = await until(() => psql(dbUrl, `SELECT user_id || '|' || team_id FROM spend_logs WHERE user_id = 'svc-reporting'`),
      'the spend row');
    assert.equal(row, 'svc-reporting|team-analytics');
  });

  test('tampered tokens are refused with the reason', async () => {
    const good = idp.mint({ sub: 'svc-x' });
    const [h, p, s] = good.split('.');
    const forged = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(p, 'base64url')), sub: 'admin' })).toString('base64url');
    const cases = [
      [`${h}.${forged}.${s}`, /JWT signature does not verify/],
      [idp.mint({ sub: 'svc-x', aud: 'someone-else' }), /JWT audience 'someone-else' does not include/],
      [idp.mint({ sub: 'svc-x', iat: 1000, exp: 2000 }), /JWT expired at 1970-01-01T00:33:20Z/],
      [idp.mint({ sub: 'svc-x', iss: 'https://evil.example' }), /JWT issuer 'https:\/\/evil.example' is not the expected/],
      [`${Buffer.from('{"alg":"none"}').toString('base64url')}.${p}.`, /alg 'none' refused/],
    ];
    for (const [token, re] of cases) {
      const r = await status(token);
      assert.equal(r.status, 401, r.text);
      assert.deepEqual(openaiErrorProblems(r.json, 401), []);
      assert.match(r.json.error.message, re);
    }
    const noSub = await status(idp.mint({ team: 't' }));
    assert.equal(noSub.status, 401);
    assert.match(noSub.json.error.message, /the JWT has no 'sub' claim/);
  });

  test('a rotated-in key works once fetched; a key removed from the JWKS stops working after the refresh', async () => {
    const oldKid = idp.keys[0];
    const newKid = idp.rotate();
    const fresh = idp.mint({ sub: 'svc-rot', team: 'team-analytics' }, { kid: newKid });
    await until(async () => (await status(fresh)).status === 200, 'the rotated key to be accepted');
    const old = idp.mint({ sub: 'svc-rot' }, { kid: oldKid });
    assert.equal((await status(old)).status, 200, 'the old key still works while published');
    const fetchesBefore = idp.state.jwksFetches;
    idp.removeKey(oldKid);
    const revoked = idp.mintWithRemoved(oldKid, { sub: 'svc-rot' });
    const refused = await until(async () => {
      const r = await status(revoked);
      return r.status === 401 ? r : null;
    }, 'the removed key to be refused');
    assert.ok(idp.state.jwksFetches > fetchesBefore, 'refused after a refresh');
    assert.match(refused.json.error.message, new RegExp(`'${oldKid}' is not in the issuer's JWKS`));
    assert.equal((await status(fresh)).status, 200, 'the new key keeps working');
  });

  test("the token's team brings its model list and rate limit", async () => {
    const mk = await call(gw, '/team/new', { body: { team_id: 'team-capped', rpm_limit: 2 } });
    assert.equal(mk.status, 200, mk.text);
    const narrow = await call(gw, '/team/new', { body: { team_id: 'team-narrow', models: ['other-model'] } });
    assert.equal(narrow.status, 200, narrow.text);
    const capped = idp.mint({ sub: 'svc-capped', team: 'team-capped' });
    const codes = [];
    for (let i = 0; i < 3; i += 1) codes.push((await status(capped)).status);
    assert.deepEqual(codes, [200, 200, 429]);
    const denied = await status(idp.mint({ sub: 'svc-narrow', team: 'team-narrow' }));
    assert.equal(denied.status, 403, denied.text);
    assert.match(denied.json.error.message, /team/i);
  });

  test('the admin scope makes a proxy admin; other tokens get the internal user rules', async () => {
    const admin = idp.mint({ sub: 'ops-admin', scope: 'openid litellm_proxy_admin' });
    const r = await call(gw, '/user/new', { key: admin, body: { user_id: 'made-by-jwt' } });
    assert.equal(r.status, 200, r.text);
    const user = idp.mint({ sub: 'svc-plain' });
    const denied = await call(gw, '/user/new', { key: user, body: { user_id: 'nope' } });
    assert.equal(denied.status, 403, denied.text);
  });

  test('a non-admin token without a user (no user_id_jwt_field) reads no one\'s spend: 401, as LiteLLM refuses a caller without a user', async () => {
    const teamOnly = await startGateway({
      config: {
        model_list: [mockModel('demo', 'hello from the mock')],
        general_settings: { enable_jwt_auth: true, litellm_jwtauth: { team_id_jwt_field: 'team', public_key_ttl: 1 } },
      },
      env: { DATABASE_URL: dbUrl, JWT_PUBLIC_KEY_URL: `${idp.url}/jwks`, JWT_AUDIENCE: idp.clientId, JWT_ISSUER: idp.issuer },
    });
    try {
      const token = idp.mint({ sub: 'svc-team-only', team: 'team-analytics' });
      await until(async () => (await call(teamOnly, '/v1/chat/completions',
        { key: token, body: { model: 'demo', messages: [{ role: 'user', content: 'x' }] } })).status === 200, 'the token to be accepted');
      for (const path of ['/global/spend', '/global/spend/keys', '/global/spend/models', '/spend/logs', '/key/list']) {
        const r = await call(teamOnly, path, { method: 'GET', key: token });
        assert.equal(r.status, 401, `${path}: ${r.text}`);
        assert.deepEqual(openaiErrorProblems(r.json, 401), []);
        assert.equal(r.json.error.message, 'Authentication Error, Only proxy admin can be used to generate, delete, update info '
          + `for new keys/users/teams. Route=${path}. Your role=unknown. Your user_id=None`);
      }
      const admin = idp.mint({ sub: 'ops-admin', scope: 'openid litellm_proxy_admin' });
      const all = await call(teamOnly, '/global/spend', { method: 'GET', key: admin });
      assert.equal(all.status, 200, all.text);
    } finally {
      await teamOnly.stop();
    }
  });

  test('SIGTERM stops the gateway cleanly with the JWKS refresh running', async () => {
    const r = await gw.stop();
    assert.equal(r.code, 0, r.stderr.slice(-2000));
    assert.doesNotMatch(r.stderr, /AddressSanitizer|runtime error/);
  });
});
