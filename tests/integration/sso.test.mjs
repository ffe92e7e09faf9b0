// Sign-in for the admin UI, followed with plain fetch (redirects by hand) through the fake
// OIDC provider: the authorization request (PKCE S256, state, nonce), the callback, the
// session cookie and its flags, the first sign-in creating the user, tampered ID tokens
// (bad signature, wrong audience, expired, replayed nonce, a replayed callback) refused
// with the reason, ui_access_mode admin_only, the session on the management API with the
// user's own role rules (an internal user sees only their keys), CSRF on state-changing
// requests, sign-out ending the session server-side, and the password sign-in.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { startFakeOidc } from '../fake_oidc/server.mjs';
import { call, mockModel, psql, startGateway, stopAll, withDatabase } from '../lib/gateway.mjs';

const SERVER_URL = process.env.SWITCHYARD_TEST_DATABASE_URL;
const skip = !SERVER_URL && 'SWITCHYARD_TEST_DATABASE_URL not set (scripts/test.sh sets it)';
const dbName = `swy_sso_${process.pid}_${Date.now()}`;
let dbUrl;
let idp;
let gw;       // every user may use the UI
let strict;   // ui_access_mode: admin_only
let tlsGw;    // PROXY_BASE_URL https://...

const ALICE = { sub: 'sub-alice', email: 'alice@example.com', preferred_username: 'alice', name: 'Alice' };
const BOSS = { sub: 'sub-boss', email: 'boss@example.com', preferred_username: 'boss', name: 'Boss' };

function cookiesOf(res) {
  const out = {};
  for (const c of res.headers.getSetCookie()) {
    const [pair, ...attrs] = c.split(';').map((s) => s.trim());
    const [name, value] = pair.split('=');
    out[name] = { value, attrs, raw: c };
  }
  return out;
}

// Starts a sign-in on `g` and follows it to the callback; returns the callback's answer
// (not followed further) and the authorization request's parameters.
async function signInResponse(g, user, { beforeCallback } = {}) {
  idp.setUser(user);
  const start = await fetch(`${g.url}/sso/key/generate`, { redirect: 'manual' });
  assert.equal(start.status, 302, await start.text());
  const authorize = new URL(start.headers.get('location'));
  const params = Object.fromEntries(authorize.searchParams);
  const back = await fetch(authorize, { redirect: 'manual' });
  assert.equal(back.status, 302, await back.text());
  const callbackUrl = back.headers.get('location');
  beforeCallback?.();
  const res = await fetch(callbackUrl, { redirect: 'manual' });
  return { res, params, callbackUrl };
}

async function signIn(g, user) {
  const { res, params, callbackUrl } = await signInResponse(g, user);
  assert.equal(res.status, 302, await res.text());
  const c = cookiesOf(res);
  return {
    cookie: `switchyard_session=${c.switchyard_session.value}`,
    csrf: c.switchyard_csrf.value,
    cookies: c,
    location: res.headers.get('location'),
    params,
    callbackUrl,
  };
}

async function api(g, path, { method = 'GET', session, csrf, body, headers = {} } = {}) {
  const h = { ...headers };
  if (session) h.cookie = session.cookie;
  if (csrf) h['x-csrf-token'] = csrf;
  if (body !== undefined) h['content-type'] = 'application/json';
  const r = await fetch(`${g.url}${path}`, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  let json;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: r.status, text, json, headers: r.headers };
}

describe('admin UI sign-in', { skip }, () => {
  before(async () => {
    idp = await startFakeOidc();
    psql(SERVER_URL, `CREATE DATABASE ${dbName}`);
    dbUrl = withDatabase(SERVER_URL, dbName);
    const oidcEnv = {
      DATABASE_URL: dbUrl,
      GENERIC_CLIENT_ID: idp.clientId,
      GENERIC_CLIENT_SECRET: idp.clientSecret,
      GENERIC_AUTHORIZATION_ENDPOINT: `${idp.url}/authorize`,
      GENERIC_TOKEN_ENDPOINT: `${idp.url}/token`,
      GENERIC_USERINFO_ENDPOINT: `${idp.url}/userinfo`,
      UI_USERNAME: 'ops',
      UI_PASSWORD: 'ui-password-for-tests-3141',
    };
    const config = (extra = {}) => ({
      model_list: [mockModel('demo')],
      litellm_settings: { default_internal_user_params: { user_role: 'internal_user', max_budget: 5 } },
      general_settings: { proxy_admin_email: 'boss@example.com', ...extra },
    });
    gw = await startGateway({ config: config(), env: oidcEnv });
    strict = await startGateway({ config: config({ ui_access_mode: 'admin_only' }), env: oidcEnv });
    tlsGw = await startGateway({ config: config(), env: { ...oidcEnv, PROXY_BASE_URL: 'https://gateway.example.com' } });
    idp.allowRedirectUri(`${gw.url}/sso/callback`);
    idp.allowRedirectUri(`${strict.url}/sso/callback`);
  });
  after(async () => {
    await stopAll();
    await idp?.close();
    if (dbUrl) psql(SERVER_URL, `DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
  });

  test('the authorization request carries PKCE S256, state, nonce and the callback URL', async () => {
    const s = await signIn(gw, ALICE);
    assert.equal(s.params.response_type, 'code');
    assert.equal(s.params.code_challenge_method, 'S256');
    assert.match(s.params.code_challenge, /^[A-Za-z0-9_-]{43}$/);
    assert.ok(s.params.state.length >= 40 && s.params.nonce.length >= 40);
    assert.equal(s.params.redirect_uri, `${gw.url}/sso/callback`);
    assert.equal(s.params.scope, 'openid email profile');
    assert.equal(s.location, `${gw.url}/ui/`);
    // The provider checked the verifier and the client secret: no refusal on its side.
    assert.deepEqual(idp.state.errors, []);
    const req = idp.state.tokenRequests.at(-1);
    assert.equal(req.grant_type, 'authorization_code');
    assert.match(req.code_verifier, /^[A-Za-z0-9_-]{43,}$/);
  });

  test('the first sign-in creates the user with default_internal_user_params; the admin list makes admins', async () => {
    const s = await signIn(gw, ALICE);
    const me = await api(gw, '/sso/session', { session: s });
    assert.equal(me.status, 200, me.text);
    assert.equal(me.json.user_id, 'alice');
    assert.equal(me.json.user_role, 'internal_user');
    assert.equal(me.json.user_email, 'alice@example.com');
    assert.equal(me.json.csrf_token, s.csrf);
    const row = psql(dbUrl, "SELECT user_role || '|' || max_budget || '|' || sso_user_id FROM users WHERE user_id = 'alice'");
    assert.equal(row, 'internal_user|5|generic:sub-alice');
    const b = await signIn(gw, BOSS);
    const boss = await api(gw, '/sso/session', { session: b });
    assert.equal(boss.json.user_role, 'proxy_admin');
  });

  test('session cookie flags: HttpOnly, SameSite=Lax, Path=/, Secure over https', async () => {
    const s = await signIn(gw, ALICE);
    const sess = s.cookies.switchyard_session;
    assert.ok(sess.attrs.includes('HttpOnly'), sess.raw);
    assert.ok(sess.attrs.includes('SameSite=Lax'), sess.raw);
    assert.ok(sess.attrs.includes('Path=/'), sess.raw);
    assert.ok(!sess.attrs.includes('Secure'), `plain http: no Secure (${sess.raw})`);
    assert.ok(!s.cookies.switchyard_csrf.attrs.includes('HttpOnly'), 'the CSRF cookie is readable by the UI');
    const r = await fetch(`${tlsGw.url}/login`, {
      method: 'POST', redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'username=ops&password=ui-password-for-tests-3141',
    });
    assert.equal(r.status, 303);
    assert.equal(r.headers.get('location'), 'https://gateway.example.com/ui/');
    const c = cookiesOf(r);
    assert.ok(c.switchyard_session.attrs.includes('Secure'), c.switchyard_session.raw);
    assert.ok(c.switchyard_session.attrs.includes('HttpOnly'));
    assert.ok(c.switchyard_csrf.attrs.includes('Secure'));
  });

  test('tampered ID tokens are refused with the reason, and no session is made', async () => {
    const cases = [
      ['signature', /invalid ID token: JWT signature does not verify/],
      ['audience', /invalid ID token: JWT audience 'another-client' does not include 'switchyard-client'/],
      ['expired', /invalid ID token: JWT expired at/],
    ];
    for (const [tamper, re] of cases) {
      const { res } = await signInResponse(gw, ALICE, { beforeCallback: () => { idp.state.tamperNext = tamper; } });
      const text = await res.text();
      assert.equal(res.status, 401, `${tamper}: ${text}`);
      assert.match(JSON.parse(text).error.message, re);
      assert.equal(res.headers.getSetCookie().length, 0);
    }
    // A replayed nonce: an ID token carrying an earlier sign-in's nonce.
    const earlier = await signIn(gw, ALICE);
    const { res } = await signInResponse(gw, ALICE, {
      beforeCallback: () => { idp.state.tamperNext = (claims) => ({ ...claims, nonce: earlier.params.nonce }); },
    });
    const body = await res.json();
    assert.equal(res.status, 401);
    assert.match(body.error.message, /invalid ID token: ID token nonce does not match this sign-in/);
    // A replayed callback (same code and state): the state works once.
    const again = await fetch(earlier.callbackUrl, { redirect: 'manual' });
    assert.equal(again.status, 401);
    assert.match((await again.json()).error.message, /unknown, used or expired state/);
    // A state that was never issued.
    const forged = await fetch(`${gw.url}/sso/callback?code=x&state=never-issued`, { redirect: 'manual' });
    assert.equal(forged.status, 401);
  });

  test('admin_only: a non-admin is refused at sign-in and with an existing session; an admin gets in', async () => {
    const { res } = await signInResponse(strict, ALICE);
    assert.equal(res.status, 403);
    assert.match((await res.json()).error.message, /ui_access_mode is admin_only and alice has role internal_user/);
    const aliceSession = await signIn(gw, ALICE);  // made where every user may sign in
    const list = await api(strict, '/key/list', { session: aliceSession });
    assert.equal(list.status, 403, list.text);
    assert.match(list.json.error.message, /admin_only/);
    const boss = await signIn(strict, BOSS);
    const ok = await api(strict, '/key/list', { session: boss });
    assert.equal(ok.status, 200, ok.text);
  });

  test('an internal user sees only their own keys through the session; the session never authenticates LLM routes', async () => {
    const mine = await call(gw, '/key/generate', { body: { user_id: 'alice', key_alias: 'alice-key' } });
    const theirs = await call(gw, '/key/generate', { body: { user_id: 'bob', key_alias: 'bob-key' } });
    assert.equal(mine.status, 200, mine.text);
    assert.equal(theirs.status, 200, theirs.text);
    const s = await signIn(gw, ALICE);
    const list = await api(gw, '/key/list?return_full_object=true&size=100', { session: s });
    assert.equal(list.status, 200, list.text);
    assert.ok(list.json.keys.length >= 1);
    assert.ok(list.json.keys.every((k) => k.user_id === 'alice'), list.text);
    assert.ok(list.json.keys.some((k) => k.key_alias === 'alice-key'));
    const other = await api(gw, '/key/list?user_id=bob', { session: s });
    assert.equal(other.status, 403);
    const info = await api(gw, `/key/info?key=${theirs.json.key}`, { session: s });
    assert.equal(info.status, 403, info.text);
    const users = await api(gw, '/user/list', { session: s });
    assert.equal(users.status, 403, users.text);
    const llm = await api(gw, '/v1/chat/completions', {
      method: 'POST', session: s, csrf: s.csrf, body: { model: 'demo', messages: [{ role: 'user', content: 'hi' }] },
    });
    assert.equal(llm.status, 401, llm.text);
  });

  test('a state-changing request with the session needs its CSRF token', async () => {
    const s = await signIn(gw, ALICE);
    const crossSite = await api(gw, '/key/generate', {
      method: 'POST', session: s, body: { key_alias: 'from-evil' }, headers: { origin: 'https://evil.example' },
    });
    assert.equal(crossSite.status, 403, crossSite.text);
    assert.match(crossSite.json.error.message, /CSRF token missing or wrong/);
    const wrong = await api(gw, '/key/generate', { method: 'POST', session: s, csrf: 'not-the-token', body: { key_alias: 'x' } });
    assert.equal(wrong.status, 403);
    assert.equal(psql(dbUrl, "SELECT count(*) FROM verification_tokens WHERE key_alias IN ('from-evil', 'x')"), '0');
    const made = await api(gw, '/key/generate', { method: 'POST', session: s, csrf: s.csrf, body: { key_alias: 'alice-2' } });
    assert.equal(made.status, 200, made.text);
    assert.equal(psql(dbUrl, "SELECT user_id FROM verification_tokens WHERE key_alias = 'alice-2'"), 'alice');
  });

  test('sign-out ends the session server-side', async () => {
    const s = await signIn(gw, ALICE);
    const noCsrf = await api(gw, '/sso/logout', { method: 'POST', session: s });
    assert.equal(noCsrf.status, 403);
    assert.equal((await api(gw, '/key/list', { session: s })).status, 200);
    const out = await api(gw, '/sso/logout', { method: 'POST', session: s, csrf: s.csrf });
    assert.equal(out.status, 200, out.text);
    const cleared = out.headers.getSetCookie().find((c) => c.startsWith('switchyard_session='));
    assert.match(cleared, /Max-Age=0/);
    // The old cookie, replayed: refused here and on the other instance sharing the database.
    for (const g of [gw, tlsGw]) {
      const after = await api(g, '/key/list', { session: s });
      assert.equal(after.status, 401, after.text);
      assert.match(after.json.error.message, /session has ended or expired/);
    }
    const hash = psql(dbUrl, "SELECT count(*) FROM ui_sessions WHERE ended_at IS NOT NULL");
    assert.ok(Number(hash) >= 1);
  });

  test('password sign-in: UI_USERNAME / UI_PASSWORD make an admin session; a wrong password is 401', async () => {
    const bad = await api(gw, '/login', { method: 'POST', body: { username: 'ops', password: 'nope' } });
    assert.equal(bad.status, 401);
    assert.match(bad.json.error.message, /Invalid credentials/);
    const good = await api(gw, '/login', { method: 'POST', body: { username: 'ops', password: 'ui-password-for-tests-3141' } });
    assert.equal(good.status, 200, good.text);
    const c = cookiesOf({ headers: good.headers });
    const s = { cookie: `switchyard_session=${c.switchyard_session.value}`, csrf: good.json.csrf_token };
    const me = await api(gw, '/sso/session', { session: s });
    assert.equal(me.json.user_role, 'proxy_admin');
    const users = await api(gw, '/user/list', { session: s });
    assert.equal(users.status, 200, users.text);
  });

  test('SIGTERM stops a gateway that signed users in cleanly', async () => {
    const r = await gw.stop();
    assert.equal(r.code, 0, r.stderr.slice(-2000));
    assert.doesNotMatch(r.stderr, /AddressSanitizer|runtime error/);
    assert.match(r.stderr, /sso: first sign-in of alice \(generic\), created with role internal_user/);
  });
});
