// Sign-in for the admin UI, followed with plain fetch (redirects by hand) through the fake
// OIDC provider: the authorization request (PKCE S256, state, nonce), the callback, the
// session cookie and its flags, the first sign-in creating the user, tampered ID tokens
// (bad signature, wrong audience, expired, replayed nonce, a replayed callback) refused
// with the reason, ui_access_mode admin_only, the session on the management API with the
// user's own role rules (an internal user sees only their keys), CSRF on state-changing
// requests, sign-out ending the session server-side, and the password sign-in; team
// membership from a groups claim (joined, created with default_team_params, left again,
// hand-added memberships kept, malformed claims ignored).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { startFakeOidc } from '../fake_oidc/server.mjs';
import { SLOW, call, mockModel, psql, startGateway, stopAll, withDatabase } from '../lib/gateway.mjs';

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
async function signInResponse(g, user, { beforeCallback, userinfo, headers } = {}) {
  idp.setUser(user, { userinfo });
  const start = await fetch(`${g.url}/sso/key/generate`, { redirect: 'manual' });
  assert.equal(start.status, 302, await start.text());
  const authorize = new URL(start.headers.get('location'));
  const params = Object.fromEntries(authorize.searchParams);
  const back = await fetch(authorize, { redirect: 'manual' });
  assert.equal(back.status, 302, await back.text());
  const callbackUrl = back.headers.get('location');
  beforeCallback?.();
  const res = await fetch(callbackUrl, { redirect: 'manual', headers });
  return { res, params, callbackUrl };
}

async function signIn(g, user, opts) {
  const { res, params, callbackUrl } = await signInResponse(g, user, opts);
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
      GENERIC_USER_ROLE_ATTRIBUTE: 'litellm_role',
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

  test('a browser whose ID token is refused is shown a fixed message; which check failed is in the log only', async () => {
    const html = { accept: 'text/html,application/xhtml+xml' };
    for (const tamper of ['signature', 'audience', 'expired']) {
      const { res } = await signInResponse(gw, ALICE, { headers: html, beforeCallback: () => { idp.state.tamperNext = tamper; } });
      assert.equal(res.status, 303, tamper);
      assert.equal(res.headers.get('location'), '/ui/?error=signin');
      const c = cookiesOf(res);
      assert.equal(c.switchyard_session, undefined, 'no session');
      const reason = Buffer.from(c.switchyard_signin_error.value, 'base64url').toString();
      assert.doesNotMatch(reason, /JWT|signature|audience|expired|switchyard-client|another-client/, `${tamper}: ${reason}`);
      // The sign-in page's /sso/session call shows it, once.
      const shown = await api(gw, '/sso/session', { headers: { cookie: `switchyard_signin_error=${c.switchyard_signin_error.value}` } });
      assert.equal(shown.status, 401);
      assert.equal(shown.json.error.message, "Sign-in refused: the identity provider's answer did not pass the gateway's "
        + "checks. Sign in again; if this keeps happening, ask an administrator to look at the gateway's log.");
    }
    // The operator's log names the check (logged asynchronously: waited for).
    await gw.proc.waitForStderr(/sso: Sign-in refused: invalid ID token: JWT audience 'another-client'/, 20_000 * SLOW);
  });

  test('a browser whose code exchange or sign-in the provider refuses is shown a fixed message; API clients get the detail', async () => {
    // The provider's error_description (from its token endpoint, or in a callback URL that
    // anyone can craft) is its own text: it goes to the log and to API clients, never onto
    // the sign-in page.
    const html = { accept: 'text/html,application/xhtml+xml' };
    const planted = 'Your account is locked: call +1-555-0100 now';
    const refusal = { status: 400, error: 'invalid_grant', error_description: planted };
    const shownFor = async (res) => {
      assert.equal(res.status, 303);
      assert.equal(res.headers.get('location'), '/ui/?error=signin');
      const c = cookiesOf(res);
      assert.equal(c.switchyard_session, undefined, 'no session');
      const reason = Buffer.from(c.switchyard_signin_error.value, 'base64url').toString();
      assert.doesNotMatch(reason, /locked|555|invalid_grant|access_denied/, reason);
      const shown = await api(gw, '/sso/session', { headers: { cookie: `switchyard_signin_error=${c.switchyard_signin_error.value}` } });
      assert.equal(shown.status, 401);
      return shown.json.error.message;
    };
    let { res } = await signInResponse(gw, ALICE, { headers: html, beforeCallback: () => { idp.state.tokenErrorNext = refusal; } });
    assert.equal(await shownFor(res), 'Sign-in failed: the identity provider did not complete the sign-in. Sign in again; if '
      + "this keeps happening, ask an administrator to look at the gateway's log.");
    await gw.proc.waitForStderr(/sso: Sign-in refused: the token endpoint answered HTTP 400: invalid_grant Your account is locked/,
      20_000 * SLOW);
    // An API client keeps the documented 401 with the provider's words.
    ({ res } = await signInResponse(gw, ALICE, { beforeCallback: () => { idp.state.tokenErrorNext = refusal; } }));
    assert.equal(res.status, 401);
    assert.equal((await res.json()).error.message,
      `Sign-in refused: the token endpoint answered HTTP 400: invalid_grant ${planted}`);
    // A callback URL carrying the provider's (or anyone's) error.
    const crafted = `${gw.url}/sso/callback?error=access_denied&error_description=${encodeURIComponent(planted)}`;
    assert.equal(await shownFor(await fetch(crafted, { redirect: 'manual', headers: html })),
      "Sign-in refused by the identity provider. Sign in again; if this keeps happening, ask an administrator to look at "
      + "the gateway's log.");
    const apiClient = await fetch(crafted, { redirect: 'manual' });
    assert.equal(apiClient.status, 401);
    assert.equal((await apiClient.json()).error.message, `Sign-in refused by the identity provider: access_denied: ${planted}`);
    // A line break in the provider's words cannot start a log line of its own: the text
    // log writes control characters as escapes.
    const forged = 'denied\n2026-01-01T00:00:00.000Z info forged-by-the-caller\r\u0007';
    const broken = await fetch(`${gw.url}/sso/callback?error=access_denied&error_description=${encodeURIComponent(forged)}`,
      { redirect: 'manual' });
    assert.equal(broken.status, 401);
    await gw.proc.waitForStderr(/access_denied: denied\\n2026-01-01T00:00:00\.000Z info forged-by-the-caller\\r\\x07/,
      20_000 * SLOW);
    assert.doesNotMatch(gw.stderr(), /^2026-01-01T00:00:00\.000Z info forged/m);
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
    // Not strings: a 400 (the connection was closed without an answer before).
    const typed = await api(gw, '/login', { method: 'POST', body: { username: 5, password: ['x'] } });
    assert.equal(typed.status, 400, typed.text);
    assert.match(typed.json.error.message, /username and password are required/);
    const good = await api(gw, '/login', { method: 'POST', body: { username: 'ops', password: 'ui-password-for-tests-3141' } });
    assert.equal(good.status, 200, good.text);
    const c = cookiesOf({ headers: good.headers });
    const s = { cookie: `switchyard_session=${c.switchyard_session.value}`, csrf: good.json.csrf_token };
    const me = await api(gw, '/sso/session', { session: s });
    assert.equal(me.json.user_role, 'proxy_admin');
    const users = await api(gw, '/user/list', { session: s });
    assert.equal(users.status, 200, users.text);
  });

  test("a sign-in's role change reaches the user's cached keys at once, as /user/update's does", async () => {
    const DAVE = { sub: 'sub-dave', email: 'dave@example.com', preferred_username: 'dave', litellm_role: 'internal_user' };
    await signIn(gw, DAVE);
    const k = await call(gw, '/key/generate', { body: { user_id: 'dave', key_alias: 'dave-key' } });
    assert.equal(k.status, 200, k.text);
    // The key's role decides what it may do on the management API; a request caches it.
    const users = () => call(gw, '/user/list', { method: 'GET', key: k.json.key });
    assert.equal((await users()).status, 403);
    // The identity provider now says dave is an admin: the very next request of the key
    // has the new role, and so on when it says he no longer is.
    await signIn(gw, { ...DAVE, litellm_role: 'proxy_admin' });
    const promoted = await users();
    assert.equal(promoted.status, 200, promoted.text);
    await signIn(gw, DAVE);
    assert.equal((await users()).status, 403);
    assert.equal(psql(dbUrl, "SELECT string_agg(action || ':' || changed_by || ':' || (after->>'user_role'), ',' ORDER BY id) "
      + "FROM audit_log WHERE table_name = 'users' AND object_id = 'dave'"),
    'created:sso:internal_user,updated:sso:proxy_admin,updated:sso:internal_user');
  });

  test('SIGTERM stops a gateway that signed users in cleanly', async () => {
    const r = await gw.stop();
    assert.equal(r.code, 0, r.stderr.slice(-2000));
    assert.doesNotMatch(r.stderr, /AddressSanitizer|runtime error/);
    assert.match(r.stderr, /sso: first sign-in of alice \(generic\), created with role internal_user/);
  });
});

// Teams from a groups claim (general_settings.litellm_jwtauth.team_ids_jwt_field): each
// sign-in joins the teams the claim names (an unknown one is created with
// litellm_settings.default_team_params), a new user also joins
// default_internal_user_params.teams, and memberships an earlier sign-in added leave with
// the group; memberships added by hand stay.
describe('team membership from a groups claim', { skip }, () => {
  const teamsDb = `swy_sso_teams_${process.pid}_${Date.now()}`;
  let teamsUrl;
  let tg;      // team_ids_jwt_field: groups
  let nested;  // team_ids_jwt_field: realm_access.roles
  const CAROL = { sub: 'sub-carol', email: 'carol@example.com', preferred_username: 'carol', name: 'Carol' };

  const master = (g, path, body) => call(g, path, { body });
  const get = async (g, path) => {
    const r = await fetch(`${g.url}${path}`, { headers: { authorization: `Bearer ${g.masterKey}` } });
    return { status: r.status, json: await r.json() };
  };
  const membership = (team, user) => psql(teamsUrl,
    `SELECT role || CASE WHEN sso_managed THEN '|sso' ELSE '|hand' END FROM team_memberships WHERE team_id = '${team}' AND user_id = '${user}'`);
  const teamsOf = (user) => psql(teamsUrl,
    `SELECT string_agg(team_id, ',' ORDER BY team_id) FROM team_memberships WHERE user_id = '${user}'`);
  const warnings = (g, re) => g.stderr().split('\n').filter((l) => re.test(l)).length;
  // The gateway logs through an asynchronous logger: a line may follow the answer it
  // belongs to, so it is waited for (an event on the process's stderr), then counted.
  const loggedOnce = async (g, re, what) => {
    await g.proc.waitForStderr(re, 20_000 * SLOW);
    assert.equal(warnings(g, re), 1, what);
  };

  before(async () => {
    idp = await startFakeOidc();
    psql(SERVER_URL, `CREATE DATABASE ${teamsDb}`);
    teamsUrl = withDatabase(SERVER_URL, teamsDb);
    const env = {
      DATABASE_URL: teamsUrl,
      GENERIC_CLIENT_ID: idp.clientId,
      GENERIC_CLIENT_SECRET: idp.clientSecret,
      GENERIC_AUTHORIZATION_ENDPOINT: `${idp.url}/authorize`,
      GENERIC_TOKEN_ENDPOINT: `${idp.url}/token`,
      GENERIC_USERINFO_ENDPOINT: `${idp.url}/userinfo`,
    };
    const config = (claim) => ({
      model_list: [mockModel('demo'), mockModel('other')],
      litellm_settings: {
        default_internal_user_params: {
          user_role: 'internal_user',
          // pilots: made by the last test, so earlier first sign-ins find it missing.
          teams: [{ team_id: 'welcome', user_role: 'admin' }, 'no-such-team', { team_id: 'pilots', user_role: 'user', max_budget_in_team: 0 }],
        },
        default_team_params: {
          max_budget: 12.5, budget_duration: '30d', models: ['demo'], tpm_limit: 100000, rpm_limit: 10,
          team_member_permissions: ['/key/generate'],
        },
      },
      general_settings: { litellm_jwtauth: { team_ids_jwt_field: claim } },
    });
    tg = await startGateway({ config: config('groups'), env });
    nested = await startGateway({ config: config('realm_access.roles'), env });
    idp.allowRedirectUri(`${tg.url}/sso/callback`);
    idp.allowRedirectUri(`${nested.url}/sso/callback`);
    for (const team of [{ team_id: 'welcome' }, { team_id: 'eng', models: ['demo', 'other'], max_budget: 99 }]) {
      const r = await master(tg, '/team/new', team);
      assert.equal(r.status, 200, r.text);
    }
  });
  after(async () => {
    await stopAll();
    await idp?.close();
    if (teamsUrl) psql(SERVER_URL, `DROP DATABASE IF EXISTS ${teamsDb} WITH (FORCE)`);
  });

  test('first sign-in: an existing team is joined, an unknown one created with default_team_params, default teams joined', async () => {
    const s = await signIn(tg, { ...CAROL, groups: ['eng', 'data-science', 'eng'] });
    assert.equal(membership('eng', 'carol'), 'user|sso');
    assert.equal(membership('data-science', 'carol'), 'user|sso');
    // default_internal_user_params.teams: joined as configured, not tied to the claim.
    assert.equal(membership('welcome', 'carol'), 'admin|hand');
    await loggedOnce(tg, /default_internal_user_params\.teams names teams that do not exist: no-such-team/);
    // The existing team is untouched; the new one has the defaults, as /team/new would set them.
    const eng = await get(tg, '/team/info?team_id=eng');
    assert.equal(eng.json.team_info.max_budget, 99);
    assert.deepEqual(eng.json.team_info.models, ['demo', 'other']);
    const ds = await get(tg, '/team/info?team_id=data-science');
    assert.equal(ds.status, 200, JSON.stringify(ds.json));
    const t = ds.json.team_info;
    assert.equal(t.max_budget, 12.5);
    assert.equal(t.budget_duration, '30d');
    assert.ok(Date.parse(t.budget_reset_at) > Date.now(), t.budget_reset_at);
    assert.deepEqual(t.models, ['demo']);
    assert.equal(t.tpm_limit, 100000);
    assert.equal(t.rpm_limit, 10);
    assert.deepEqual(t.team_member_permissions, ['/key/generate']);
    assert.equal(t.metadata.created_by, 'sso');
    assert.deepEqual(t.members_with_roles, [{ role: 'user', user_id: 'carol', user_email: 'carol@example.com' }]);
    assert.equal(psql(teamsUrl, "SELECT changed_by FROM audit_log WHERE table_name = 'teams' AND object_id = 'data-science' AND action = 'created'"), 'sso');
    // The user's own session sees the teams (/user/info, /team/list, /team/info).
    const me = await api(tg, '/user/info', { session: s });
    assert.equal(me.status, 200, me.text);
    assert.deepEqual([...me.json.user_info.teams].sort(), ['data-science', 'eng', 'welcome']);
    assert.deepEqual([...me.json.user_info.teams].sort(), [...psql(teamsUrl, "SELECT array_to_string(teams, ',') FROM users WHERE user_id = 'carol'").split(',')].sort());
    const list = await api(tg, '/team/list', { session: s });
    assert.equal(list.status, 200, list.text);
    assert.deepEqual(list.json.map((x) => x.team_id).sort(), ['data-science', 'eng', 'welcome']);
    const info = await api(tg, '/team/info?team_id=data-science', { session: s });
    assert.equal(info.status, 200, info.text);
    assert.ok(info.json.team_memberships.some((m) => m.user_id === 'carol' && m.sso_managed === true), info.text);
  });

  test("the session acts in the joined team: a key for it (team_member_permissions) gets the team's models", async () => {
    const s = await signIn(tg, { ...CAROL, groups: ['eng', 'data-science'] });
    const made = await api(tg, '/key/generate', { method: 'POST', session: s, csrf: s.csrf, body: { team_id: 'data-science', key_alias: 'carol-ds' } });
    assert.equal(made.status, 200, made.text);
    const chat = (model) => fetch(`${tg.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${made.json.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }] }),
    });
    const ok = await chat('demo');
    assert.equal(ok.status, 200, await ok.text());
    const refused = await chat('other');  // default_team_params.models: demo only
    const why = await refused.text();
    assert.equal(refused.status, 403, why);
    assert.match(why, /team_model_access_denied/);
  });

  test('a later sign-in leaves the teams its claim dropped that SSO joined; hand-added memberships and admin roles stay', async () => {
    // By hand: carol joins ops, and is made admin of eng (which SSO had joined: the hand
    // change makes that membership the admin's to manage).
    assert.equal((await master(tg, '/team/new', { team_id: 'ops' })).status, 200);
    assert.equal((await master(tg, '/team/member_add', { team_id: 'ops', member: { user_id: 'carol', role: 'user' } })).status, 200);
    assert.equal((await master(tg, '/team/member_add', { team_id: 'eng', member: { user_id: 'carol', role: 'admin' } })).status, 200);
    assert.equal(membership('eng', 'carol'), 'admin|hand');
    // The claim now names ops only (already a member by hand: left as it is).
    const s = await signIn(tg, { ...CAROL, groups: ['ops'] });
    assert.equal(membership('data-science', 'carol'), '', 'the SSO-added membership is gone');
    assert.equal(membership('eng', 'carol'), 'admin|hand', 'hand-managed: kept, still admin');
    assert.equal(membership('ops', 'carol'), 'user|hand');
    assert.equal(membership('welcome', 'carol'), 'admin|hand');
    // Gone everywhere /team/member_delete removes it from.
    const ds = await get(tg, '/team/info?team_id=data-science');
    assert.deepEqual(ds.json.team_info.members_with_roles, []);
    assert.deepEqual(ds.json.team_memberships, []);
    assert.equal(psql(teamsUrl, "SELECT 'data-science' = ANY(teams) FROM users WHERE user_id = 'carol'"), 'f');
    assert.equal(psql(teamsUrl, "SELECT count(*) FROM audit_log WHERE object_id = 'data-science' AND action = 'member_removed' AND changed_by = 'sso'"), '1');
    // The session sees the change at once: the team is no longer its to read or use.
    const info = await api(tg, '/team/info?team_id=data-science', { session: s });
    assert.equal(info.status, 403, info.text);
    const key = await api(tg, '/key/generate', { method: 'POST', session: s, csrf: s.csrf, body: { team_id: 'data-science' } });
    assert.equal(key.status, 401, key.text);
    assert.match(key.json.error.message, /you are not a member/);
    const me = await api(tg, '/user/info', { session: s });
    assert.deepEqual([...me.json.user_info.teams].sort(), ['eng', 'ops', 'welcome']);
    // An empty claim leaves every SSO-joined team, nothing else.
    await signIn(tg, { ...CAROL, groups: ['data-science'] });
    assert.equal(membership('data-science', 'carol'), 'user|sso');
    await signIn(tg, { ...CAROL, groups: [] });
    assert.equal(teamsOf('carol'), 'eng,ops,welcome');
    // A claim naming an admin's team never downgrades them.
    await signIn(tg, { ...CAROL, groups: ['eng'] });
    assert.equal(membership('eng', 'carol'), 'admin|hand');
    // default_internal_user_params.teams is for new users only: leaving welcome by hand sticks.
    assert.equal((await master(tg, '/team/member_delete', { team_id: 'welcome', user_id: 'carol' })).status, 200);
    await signIn(tg, { ...CAROL, groups: ['eng'] });
    assert.equal(membership('welcome', 'carol'), '');
  });

  test('/team/member_update on a membership a sign-in added makes it a hand-made one, which later sign-ins keep', async () => {
    await signIn(tg, { ...CAROL, groups: ['eng', 'data-science'] });
    assert.equal(membership('data-science', 'carol'), 'user|sso');
    // A budget of the member's own, no role change: still the admin's decision to keep.
    const r = await master(tg, '/team/member_update', { team_id: 'data-science', user_id: 'carol', max_budget_in_team: 5 });
    assert.equal(r.status, 200, r.text);
    assert.equal(membership('data-science', 'carol'), 'user|hand');
    await signIn(tg, { ...CAROL, groups: ['eng'] });
    assert.equal(membership('data-science', 'carol'), 'user|hand', 'kept: the claim no longer names the team');
    // Left by hand: the next test starts from the memberships it found.
    assert.equal((await master(tg, '/team/member_delete', { team_id: 'data-science', user_id: 'carol' })).status, 200);
  });

  test('a malformed or absent claim signs in, logs one warning, and changes no membership', async () => {
    const before = teamsOf('carol');
    const cases = [
      [42, /claim 'groups' is a number, not a list of team ids/],
      [['eng', 7], /claim 'groups' holds a number where a team id/],
      [{ eng: true }, /claim 'groups' is an object/],
      [['eng', ''], /claim 'groups' holds a string of 0 bytes/],
    ];
    for (const [groups, re] of cases) {
      const s = await signIn(tg, { ...CAROL, groups });
      assert.equal((await api(tg, '/sso/session', { session: s })).status, 200);
      await loggedOnce(tg, re, `${JSON.stringify(groups)}: one warning`);
      assert.equal(teamsOf('carol'), before);
    }
    // No claim at all (as Entra ID sends past its group limit, with its overage marker):
    // nothing is left either.
    const overage = { ...CAROL, _claim_names: { groups: 'src1' }, _claim_sources: { src1: { endpoint: 'https://graph.example/x' } } };
    await signIn(tg, overage);
    await loggedOnce(tg, /groups overage marker/);
    await signIn(tg, CAROL);
    assert.equal(teamsOf('carol'), before);
  });

  test('the claim may come from the userinfo answer, as one string', async () => {
    const dave = { sub: 'sub-dave', email: 'dave@example.com', preferred_username: 'dave' };
    await signIn(tg, dave, { userinfo: { groups: 'eng' } });
    assert.equal(membership('eng', 'dave'), 'user|sso');
    // The ID token's claim wins over the userinfo answer's.
    await signIn(tg, { ...dave, groups: ['ops'] }, { userinfo: { groups: 'eng' } });
    assert.equal(teamsOf('dave'), 'ops,welcome');
  });

  test('a dotted claim path reaches into an object (realm_access.roles)', async () => {
    await signIn(nested, { sub: 'sub-erin', email: 'erin@example.com', preferred_username: 'erin', realm_access: { roles: ['platform', 'eng'] } });
    assert.equal(membership('platform', 'erin'), 'user|sso');
    assert.equal(membership('eng', 'erin'), 'user|sso');
    assert.equal((await get(nested, '/team/info?team_id=platform')).json.team_info.max_budget, 12.5);
  });

  test('two users signing in at once with the same new group: one team, both members', async () => {
    // The authorization steps one after the other (the fake's next user is global), the
    // callbacks at the same time.
    const prepare = async (user) => {
      idp.setUser(user);
      const start = await fetch(`${tg.url}/sso/key/generate`, { redirect: 'manual' });
      const back = await fetch(start.headers.get('location'), { redirect: 'manual' });
      return back.headers.get('location');
    };
    const groups = ['shared-1', 'shared-2', 'eng'];
    const urls = [
      await prepare({ sub: 'sub-f', preferred_username: 'frank', groups }),
      await prepare({ sub: 'sub-g', preferred_username: 'grace', groups: [...groups].reverse() }),
    ];
    const answers = await Promise.all(urls.map((u) => fetch(u, { redirect: 'manual' })));
    for (const a of answers) assert.equal(a.status, 302, await a.text());
    for (const team of ['shared-1', 'shared-2']) {
      assert.equal(psql(teamsUrl, `SELECT count(*) FROM audit_log WHERE object_id = '${team}' AND action = 'created'`), '1');
      assert.equal(membership(team, 'frank'), 'user|sso');
      assert.equal(membership(team, 'grace'), 'user|sso');
    }
    // Each sign-in logs what it changed, or that it could not (a deadlock, a conflict).
    await tg.proc.waitForStderr(/sign-in of frank: teams created/, 20_000 * SLOW);
    await tg.proc.waitForStderr(/sign-in of grace: teams created/, 20_000 * SLOW);
    assert.equal(warnings(tg, /team memberships not updated/), 0);
  });

  test('at most 200 groups are joined per sign-in; the rest are named in a warning, not left', async () => {
    const many = Array.from({ length: 205 }, (_, i) => `bulk-${String(i).padStart(3, '0')}`);
    await signIn(tg, { sub: 'sub-hal', preferred_username: 'hal', groups: many });
    assert.equal(psql(teamsUrl, "SELECT count(*) FROM team_memberships WHERE user_id = 'hal' AND sso_managed"), '200');
    assert.equal(membership('bulk-204', 'hal'), '');
    await loggedOnce(tg, /claim 'groups' names 205 groups; the first 200 are joined/);
    // A shorter claim later: the SSO memberships it no longer names are left.
    await signIn(tg, { sub: 'sub-hal', preferred_username: 'hal', groups: many.slice(0, 3) });
    assert.equal(teamsOf('hal'), 'bulk-000,bulk-001,bulk-002,welcome');
  });

  test("a sign-in's membership changes reach the team's cached keys at once, as /team/member_add's do", async () => {
    // A key made for ivy in pilots before ivy ever signed in, and cached by a request.
    assert.equal((await master(tg, '/team/new', { team_id: 'pilots' })).status, 200);
    const k = await master(tg, '/key/generate', { user_id: 'ivy', team_id: 'pilots' });
    assert.equal(k.status, 200, k.text);
    const chat = () => call(tg, '/v1/chat/completions', { key: k.json.key, body: { model: 'demo', messages: [{ role: 'user', content: 'hi' }] } });
    const first = await chat();
    assert.equal(first.status, 200, first.text);
    // The first sign-in joins pilots (default_internal_user_params.teams) with a budget in
    // the team of 0: the very next request of the cached key is bound by it.
    await signIn(tg, { sub: 'sub-ivy', preferred_username: 'ivy', groups: [] });
    assert.equal(membership('pilots', 'ivy'), 'user|hand');
    const next = await chat();
    assert.equal(next.status, 429, next.text);
    assert.equal(next.json.error.type, 'budget_exceeded', next.text);
    assert.match(next.json.error.message, /User=ivy in Team=pilots /);
  });
});
