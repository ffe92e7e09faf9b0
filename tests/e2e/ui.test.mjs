// The admin UI in a real browser: headless Chromium (Debian's `chromium`) driven by
// puppeteer-core. An admin signs in through the fake OIDC provider, creates a team and a
// key with a budget in it (the secret shown once), the key makes a chat completion
// through the fake provider (official openai client), and the spend shows on the
// overview and in the spend logs. A non-admin is refused under ui_access_mode
// admin_only; an internal user's keys page shows only their own keys. Every page also
// loads without an error for the admin. With store_model_in_db the models page adds,
// edits and deletes a model that then serves (and stops serving) chat completions;
// without it the page is read-only.
//
// Chromium and puppeteer-core are required: without them this test fails (never skips).
// SWITCHYARD_UI_SCREENSHOTS=<folder> saves a PNG of each page there (docs/ui/).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import OpenAI from 'openai';
import puppeteer from 'puppeteer-core';

import { startFakeOidc } from '../fake_oidc/server.mjs';
import { startFakeProvider } from '../fake_provider/server.mjs';
import { recordSecret } from '../lib/capture.mjs';
import {
  call, delay, makeTempDir, openaiErrorProblems, psql, SLOW, startGateway, stopAll, withDatabase,
} from '../lib/gateway.mjs';

const CHROMIUM = process.env.SWITCHYARD_CHROMIUM ?? '/usr/bin/chromium';
const SERVER_URL = process.env.SWITCHYARD_TEST_DATABASE_URL;
const SHOTS = process.env.SWITCHYARD_UI_SCREENSHOTS;
const WAIT = 30_000 * SLOW;
const dbName = `swy_ui_${process.pid}_${Date.now()}`;

const BOSS = { sub: 'sub-boss', email: 'boss@example.com', preferred_username: 'boss', name: 'Boss' };
const ALICE = { sub: 'sub-alice', email: 'alice@example.com', preferred_username: 'alice', name: 'Alice' };

let dbUrl;
let idp;
let fake;
let gw;
let strict;
let browser;
let env;
let config;

async function shot(page, name) {
  if (!SHOTS) return;
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: false });
}

// Navigates to a route of the UI and waits until its page has rendered (data-ready). A
// counter in the hash makes every visit a hash change, hence a fresh render.
let visits = 0;
async function open(page, g, route) {
  const target = `${route}${route.includes('?') ? '&' : '?'}v=${++visits}`;
  await page.evaluate(() => { document.querySelector('main')?.removeAttribute('data-ready'); }).catch(() => {});
  if (!page.url().startsWith(`${g.url}/ui/`)) {
    await page.goto(`${g.url}/ui/#/${target}`);
  } else {
    await page.evaluate((r) => { location.hash = `#/${r}`; }, target);
  }
  await page.waitForSelector(`main[data-route="${route.split('?')[0]}"][data-ready]`, { timeout: WAIT });
  const state = await page.$eval('main', (m) => m.dataset.ready);
  const text = await page.$eval('main', (m) => m.innerText);
  assert.equal(state, 'true', `${route}: the page failed: ${text}`);
  return text;
}

// Signs `user` in through the fake OIDC provider in a fresh browser context.
async function signIn(g, user) {
  const ctx = await browser.createBrowserContext();
  const page = await ctx.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.errors = errors;
  await page.setViewport({ width: 1280, height: 860 });
  idp.setUser(user);
  await page.goto(`${g.url}/ui/`);
  await page.waitForSelector('[data-testid="sso-signin"]', { timeout: WAIT });
  await Promise.all([page.waitForNavigation({ timeout: WAIT }), page.click('[data-testid="sso-signin"]')]);
  return { ctx, page };
}

function waitFor(page, fn, ...args) {
  return page.waitForFunction(fn, { timeout: WAIT }, ...args);
}

async function fill(page, scope, values) {
  for (const [name, value] of Object.entries(values)) {
    const sel = `${scope} [name="${name}"]`;
    const tag = await page.$eval(sel, (el) => el.tagName);
    if (tag === 'SELECT') await page.select(sel, value);
    else await page.type(sel, String(value));
  }
}

// The text of the models table's row whose first cell is `name` (null without one).
function modelRow(page, name) {
  return page.$$eval('[data-testid="models-table"] tbody tr', (trs, n) =>
    trs.find((r) => r.cells[0].innerText.trim() === n)?.innerText ?? null, name);
}
function rowButtons(page, name) {
  return page.$$eval('[data-testid="models-table"] tbody tr', (trs, n) =>
    [...(trs.find((r) => r.cells[0].innerText.trim() === n)?.querySelectorAll('button') ?? [])].map((b) => b.textContent), name);
}
function clickRowButton(page, name, label) {
  return page.$$eval('[data-testid="models-table"] tbody tr', (trs, n, l) => {
    const tr = trs.find((r) => r.cells[0].innerText.trim() === n);
    if (!tr) throw new Error(`no row ${n}`);
    [...tr.querySelectorAll('button')].find((b) => b.textContent === l).click();
  }, name, label);
}
// Replaces an input's value by typing (the page sees the keystrokes).
async function setField(page, sel, value) {
  await page.$eval(sel, (el) => { el.value = ''; });
  await page.type(sel, String(value));
}

describe('admin UI in Chromium', () => {
  before(async () => {
    // Loud failures, not skips: the acceptance needs a real browser and real services.
    assert.ok(SERVER_URL, 'SWITCHYARD_TEST_DATABASE_URL is not set: run through scripts/test.sh');
    assert.ok(existsSync(CHROMIUM), `${CHROMIUM} not found: install Debian's chromium (scripts/deps.sh --test)`);
    idp = await startFakeOidc();
    fake = await startFakeProvider();
    psql(SERVER_URL, `CREATE DATABASE ${dbName}`);
    dbUrl = withDatabase(SERVER_URL, dbName);
    env = {
      DATABASE_URL: dbUrl,
      SWITCHYARD_DATA_DIR: `/tmp/${dbName}`,
      GENERIC_CLIENT_ID: idp.clientId,
      GENERIC_CLIENT_SECRET: idp.clientSecret,
      GENERIC_AUTHORIZATION_ENDPOINT: `${idp.url}/authorize`,
      GENERIC_TOKEN_ENDPOINT: `${idp.url}/token`,
      GENERIC_USERINFO_ENDPOINT: `${idp.url}/userinfo`,
    };
    config = (extra = {}) => ({
      model_list: [{
        model_name: 'gpt-ui',
        litellm_params: { model: 'openai/gpt-ui', api_base: `${fake.url}/v1`, api_key: 'sk-upstream-ui',
                          input_cost_per_token: 0.0001, output_cost_per_token: 0.0002 },
      }],
      litellm_settings: { default_internal_user_params: { user_role: 'internal_user' } },
      general_settings: { proxy_admin_email: 'boss@example.com', ...extra },
    });
    gw = await startGateway({ config: config(), env });
    strict = await startGateway({ config: config({ ui_access_mode: 'admin_only' }), env });
    idp.allowRedirectUri(`${gw.url}/sso/callback`);
    idp.allowRedirectUri(`${strict.url}/sso/callback`);
    browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      headless: true,
      userDataDir: makeTempDir('switchyard-chromium-'),
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
      timeout: WAIT,
    });
  });
  after(async () => {
    await browser?.close();
    await stopAll();
    await fake?.close();
    await idp?.close();
    if (dbUrl) psql(SERVER_URL, `DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
  });

  test('an admin signs in, creates a team and a key with a budget, and sees its spend', async () => {
    const { page } = await signIn(gw, BOSS);
    assert.equal(page.url(), `${gw.url}/ui/`);
    await page.waitForSelector('[data-testid="who"]', { timeout: WAIT });
    assert.equal(await page.$eval('[data-testid="who"]', (e) => e.textContent), 'boss@example.com');
    assert.equal(await page.$eval('[data-testid="role"]', (e) => e.textContent), 'proxy_admin');
    await open(page, gw, 'overview');

    // A team.
    await open(page, gw, 'teams');
    await page.click('main details summary');
    await fill(page, 'main details form', { team_alias: 'research', max_budget: 50 });
    await page.click('main details button[type=submit]');
    await page.waitForFunction(() => document.querySelector('[data-testid="teams-table"]')?.innerText.includes('research'),
      { timeout: WAIT });
    const teamId = psql(dbUrl, "SELECT team_id FROM teams WHERE team_alias = 'research'");
    assert.ok(teamId, 'the team is in Postgres');
    await shot(page, 'teams');

    // A key with a budget in that team: the secret is shown once.
    await open(page, gw, 'keys');
    await page.click('main details summary');
    await fill(page, 'main details form', { key_alias: 'research-key', team_id: teamId, max_budget: 10, rpm_limit: 100,
      duration: '30d', metadata: '{"owner":"research"}' });
    await page.click('main details button[type=submit]');
    await page.waitForSelector('[data-testid="new-key"]', { timeout: WAIT });
    const key = await page.$eval('[data-testid="new-key"]', (e) => e.textContent);
    assert.match(key, /^sk-[0-9a-f]{32}$/);
    await shot(page, 'key-created');
    await page.click('[data-testid="close-secret"]');
    await page.waitForFunction(() => document.querySelector('[data-testid="keys-table"]')?.innerText.includes('research-key'),
      { timeout: WAIT });
    const keysText = await page.$eval('[data-testid="keys-table"]', (e) => e.innerText);
    assert.ok(!keysText.includes(key), 'the secret is not in the list');
    assert.match(keysText, /research-key\s+sk-\.\.\.[0-9a-f]{4}\s+research/);
    assert.match(keysText, /\$10\.00/);
    const row = psql(dbUrl, `SELECT team_id || '|' || max_budget || '|' || rpm_limit || '|' || (metadata->>'owner') FROM verification_tokens WHERE key_alias = 'research-key'`);
    assert.equal(row, `${teamId}|10|100|research`);
    await shot(page, 'keys');

    // The key makes a request.
    const client = new OpenAI({ apiKey: key, baseURL: `${gw.url}/v1`, maxRetries: 0 });
    const { data: answer, response } = await client.chat.completions
      .create({ model: 'gpt-ui', messages: [{ role: 'user', content: 'Hello UI' }] }).withResponse();
    assert.ok(answer.choices[0].message.content.length > 0);
    const requestId = response.headers.get('x-litellm-call-id');

    // The overview shows it once the spend is flushed (bounded poll of the page itself). The
    // page's panels come from four requests made in parallel, so a flush can commit between
    // them: the poll waits until every panel has it, not only the first.
    const deadline = Date.now() + WAIT;
    const panel = (id) => page.$eval(`[data-testid="${id}"]`, (e) => e.textContent);
    let text;
    for (;;) {
      text = await open(page, gw, 'overview');
      if ((await panel('kpi-requests')) === '1' && /research-key/.test(await panel('top-keys'))
        && /research/.test(await panel('top-teams')) && /gpt-ui/.test(await panel('top-models'))) break;
      assert.ok(Date.now() < deadline, `the overview never showed the request:\n${text}`);
      await delay(100);
    }
    const spend = await page.$eval('[data-testid="kpi-spend"]', (e) => e.textContent);
    assert.match(spend, /^\$\d/);
    assert.notEqual(spend, '$0');
    assert.match(await page.$eval('[data-testid="top-keys"]', (e) => e.textContent), /research-key/);
    assert.match(await page.$eval('[data-testid="top-teams"]', (e) => e.textContent), /research/);
    assert.match(await page.$eval('[data-testid="top-models"]', (e) => e.textContent), /gpt-ui/);
    assert.ok((await page.$$('main svg.chart rect')).length > 0, 'the charts have bars');
    await shot(page, 'overview');

    // The spend logs page lists the request with its cost.
    const logs = await open(page, gw, 'logs');
    assert.match(logs, /research-key/);
    assert.match(logs, /gpt-ui/);
    const dbSpend = Number(psql(dbUrl, `SELECT spend FROM spend_logs WHERE api_key = encode(sha256('${key}'::bytea), 'hex')`));
    assert.ok(dbSpend > 0);
    const logRow = await page.$eval('[data-testid="logs-table"] tbody tr', (e) => e.innerText);
    assert.match(logRow, /success/);
    assert.ok(logRow.includes(`$${dbSpend.toPrecision(2)}`) || logRow.includes(`$${dbSpend.toFixed(2)}`), `${logRow} vs ${dbSpend}`);
    await shot(page, 'spend-logs');
    // Filtered by the request id, then by another key: the paging and filters reach the API.
    const one = await open(page, gw, `logs?request_id=${encodeURIComponent(requestId)}`);
    assert.match(one, /research-key/);
    const none = await open(page, gw, 'logs?api_key=sk-nothing-like-it');
    assert.match(none, /No requests match/);

    // The remaining pages load for the admin.
    for (const route of ['orgs', 'users', 'budgets']) {
      await open(page, gw, route);
      await shot(page, route);
    }
    assert.match(await open(page, gw, 'models'), /gpt-ui/);
    assert.ok(!(await open(page, gw, 'models')).includes('sk-upstream-ui'), 'no provider secret on the models page');
    await open(page, gw, `team?team_id=${encodeURIComponent(teamId)}`);
    await shot(page, 'team');
    assert.deepEqual(page.errors, []);
  });

  test('the key page blocks, regenerates and deletes through the API', async () => {
    const made = await call(gw, '/key/generate', { body: { key_alias: 'to-manage' } });
    assert.equal(made.status, 200, made.text);
    const { page } = await signIn(gw, BOSS);
    await open(page, gw, 'keys?key_alias=to-manage');
    const buttons = async () => page.$$eval('[data-testid="keys-table"] tbody tr button', (bs) => bs.map((b) => b.textContent));
    assert.deepEqual(await buttons(), ['Regenerate', 'Block', 'Delete']);
    await page.$$eval('[data-testid="keys-table"] tbody tr button', (bs) => bs.find((b) => b.textContent === 'Block').click());
    await page.waitForFunction(() => document.querySelector('[data-testid="keys-table"]')?.innerText.includes('blocked'), { timeout: WAIT });
    assert.equal(psql(dbUrl, "SELECT blocked FROM verification_tokens WHERE key_alias = 'to-manage'"), 't');
    await page.$$eval('[data-testid="keys-table"] tbody tr button', (bs) => bs.find((b) => b.textContent === 'Regenerate').click());
    await page.type('dialog input[name="grace_period"]', '1h');
    await page.$$eval('dialog button', (bs) => bs.find((b) => b.textContent === 'Regenerate').click());
    await page.waitForSelector('[data-testid="new-key"]', { timeout: WAIT });
    const fresh = await page.$eval('[data-testid="new-key"]', (e) => e.textContent);
    assert.notEqual(fresh, made.json.key);
    assert.match(await page.$eval('dialog', (e) => e.innerText), /old key works until/);
    await page.click('[data-testid="close-secret"]');
    await open(page, gw, 'keys?key_alias=to-manage');
    await page.$$eval('[data-testid="keys-table"] tbody tr button', (bs) => bs.find((b) => b.textContent === 'Delete').click());
    await page.click('[data-testid="confirm"]');
    await page.waitForFunction(() => document.querySelector('main')?.innerText.includes('No keys'), { timeout: WAIT });
    assert.equal(psql(dbUrl, "SELECT count(*) FROM verification_tokens WHERE key_alias = 'to-manage'"), '0');
  });

  test('organisations, users and roles, team members and budgets act through the API', async () => {
    const { page } = await signIn(gw, BOSS);
    const clickRow = (table, rowText, label) => page.$$eval(`[data-testid="${table}"] tbody tr`, (trs, t, l) => {
      const tr = trs.find((r) => r.innerText.includes(t));
      if (!tr) throw new Error(`no row with ${t}`);
      [...tr.querySelectorAll('button')].find((b) => b.textContent === l).click();
    }, rowText, label);
    const waitText = (sel, text, present = true) => page.waitForFunction((s, t, p) =>
      (document.querySelector(s)?.innerText.includes(t) ?? false) === p, { timeout: WAIT }, sel, text, present);

    // An organisation with a budget; teams of it.
    await open(page, gw, 'orgs');
    await page.click('main details summary');
    await fill(page, 'main details form', { organization_alias: 'acme', max_budget: 100 });
    await page.click('main details button[type=submit]');
    await waitText('[data-testid="orgs-table"]', 'acme');
    const orgId = psql(dbUrl, "SELECT organization_id FROM organizations WHERE organization_alias = 'acme'");
    assert.ok(orgId);
    // Its limits live in a budgets row, named on the page and listed with the budgets.
    const orgBudget = psql(dbUrl, `SELECT budget_id FROM organizations WHERE organization_id = '${orgId}'`);
    assert.ok(orgBudget);
    assert.match(await page.$eval('[data-testid="orgs-table"]', (e) => e.innerText), new RegExp(`acme.*${orgBudget}`, 's'));
    await open(page, gw, 'budgets');
    assert.match(await page.$eval('[data-testid="budgets-table"]', (e) => e.innerText), new RegExp(`${orgBudget}\\s+\\$100\\.00`));

    // A user, then their role changed from the list.
    await open(page, gw, 'users');
    await page.click('main details summary');
    await fill(page, 'main details form', { user_id: 'carol', user_email: 'carol@example.com', user_role: 'internal_user_viewer' });
    await page.click('main details button[type=submit]');
    await waitText('[data-testid="users-table"]', 'carol@example.com');
    assert.equal(psql(dbUrl, "SELECT user_role FROM users WHERE user_id = 'carol'"), 'internal_user_viewer');
    await page.$$eval('[data-testid="users-table"] tbody tr', (trs) => {
      const sel = trs.find((r) => r.innerText.includes('carol')).querySelector('select');
      sel.value = 'org_admin';
      sel.dispatchEvent(new Event('change'));
    });
    for (const deadline = Date.now() + WAIT; psql(dbUrl, "SELECT user_role FROM users WHERE user_id = 'carol'") !== 'org_admin';) {
      assert.ok(Date.now() < deadline, 'the role change did not reach Postgres');
      await delay(50);
    }

    // A team with carol as a member, then removed; the team blocked and deleted.
    const team = await call(gw, '/team/new', { body: { team_alias: 'ops-team', organization_id: orgId } });
    assert.equal(team.status, 200, team.text);
    const teamId = team.json.team_id;
    await open(page, gw, `team?team_id=${teamId}`);
    await page.click('main details summary');
    await fill(page, 'main details form', { user_id: 'carol', role: 'admin' });
    await page.click('main details button[type=submit]');
    await waitText('[data-testid="members-table"]', 'carol');
    assert.equal(psql(dbUrl, `SELECT role FROM team_memberships WHERE team_id = '${teamId}' AND user_id = 'carol'`), 'admin');
    await clickRow('members-table', 'carol', 'Remove');
    await waitText('main', 'No members');
    assert.equal(psql(dbUrl, `SELECT count(*) FROM team_memberships WHERE team_id = '${teamId}'`), '0');
    await open(page, gw, `teams?organization_id=${orgId}`);
    await clickRow('teams-table', 'ops-team', 'Block');
    await waitText('[data-testid="teams-table"]', 'blocked');
    assert.equal(psql(dbUrl, `SELECT blocked FROM teams WHERE team_id = '${teamId}'`), 't');
    await clickRow('teams-table', 'ops-team', 'Delete');
    await page.click('[data-testid="confirm"]');
    await waitText('main', 'No teams');
    assert.equal(psql(dbUrl, `SELECT count(*) FROM teams WHERE team_id = '${teamId}'`), '0');

    // A budget, then deleted.
    await open(page, gw, 'budgets');
    await page.click('main details summary');
    await fill(page, 'main details form', { budget_id: 'monthly-100', max_budget: 100, budget_duration: '30d', rpm_limit: 60 });
    await page.click('main details button[type=submit]');
    await waitText('[data-testid="budgets-table"]', 'monthly-100');
    assert.equal(psql(dbUrl, "SELECT max_budget || '|' || budget_duration || '|' || rpm_limit FROM budgets WHERE budget_id = 'monthly-100'"), '100|30d|60');
    await shot(page, 'budgets');
    await clickRow('budgets-table', 'monthly-100', 'Delete');
    await page.click('[data-testid="confirm"]');
    await waitText('main', 'monthly-100', false);

    // The organisation and the user deleted.
    await open(page, gw, 'orgs');
    await clickRow('orgs-table', 'acme', 'Delete');
    await page.click('[data-testid="confirm"]');
    await waitText('main', 'acme', false);
    assert.equal(psql(dbUrl, "SELECT count(*) FROM organizations WHERE organization_alias = 'acme'"), '0');
    await open(page, gw, 'users?role=org_admin');
    await clickRow('users-table', 'carol', 'Delete');
    await page.click('[data-testid="confirm"]');
    await waitText('main', 'carol', false);
    assert.equal(psql(dbUrl, "SELECT count(*) FROM users WHERE user_id = 'carol'"), '0');
    assert.deepEqual(page.errors, []);
  });

  test('an API refusal is shown on the page', async () => {
    const { page } = await signIn(gw, BOSS);
    await open(page, gw, 'budgets');
    await page.click('main details summary');
    await fill(page, 'main details form', { budget_id: 'dup-budget' });
    await page.click('main details button[type=submit]');
    await waitFor(page, () => document.querySelector('[data-testid="budgets-table"]')?.innerText.includes('dup-budget'));
    // The page was rendered again: its form is closed.
    await page.click('main details summary');
    await fill(page, 'main details form', { budget_id: 'dup-budget' });
    await page.click('main details button[type=submit]');
    await page.waitForSelector('main details [role="alert"]', { timeout: WAIT });
    assert.match(await page.$eval('main details [role="alert"]', (e) => e.textContent), /Budget already exists: dup-budget/);
  });

  test('without store_model_in_db the models page is read-only and says how to turn it on', async () => {
    const { page } = await signIn(gw, BOSS);
    const text = await open(page, gw, 'models');
    assert.match(text, /gpt-ui/);
    assert.match(text, /read-only\. To add, edit and delete models here, set general_settings\.store_model_in_db: true/);
    assert.match(await modelRow(page, 'gpt-ui'), /from config/);
    assert.equal(await page.$('main details'), null, 'no form to add a model');
    assert.deepEqual(await page.$$eval('[data-testid="models-table"] button', (bs) => bs.map((b) => b.textContent)), []);
    assert.deepEqual(page.errors, []);
  });

  test('with store_model_in_db the models page adds, edits and deletes a model that serves requests', async () => {
    const FORM_KEY = 'sk-ui-form-upstream-3e71c0';
    recordSecret(FORM_KEY, 'the api_key typed into the models page');
    const fake2 = await startFakeProvider();
    try {
      const dbgw = await startGateway({ config: config({ store_model_in_db: true }), env });
      await dbgw.proc.waitForStderr(/models in the database: on/, WAIT);
      idp.allowRedirectUri(`${dbgw.url}/sso/callback`);
      const { page } = await signIn(dbgw, BOSS);
      let text = await open(page, dbgw, 'models');
      assert.equal(await page.$('[data-testid="models-read-only"]'), null);
      // The config file's model stays read-only.
      assert.match(await modelRow(page, 'gpt-ui'), /from config/);
      assert.deepEqual(await rowButtons(page, 'gpt-ui'), []);

      // A model the config check refuses: the API's 400 is shown in the form, nothing stored.
      await page.click('main details summary');
      await fill(page, 'main details form', { model_name: 'page-model', model: 'nosuchprovider/x', api_key: FORM_KEY });
      assert.equal(await page.$eval('main details [name="api_key"]', (e) => e.type), 'password');
      await page.click('main details button[type=submit]');
      await page.waitForSelector('main details [role="alert"]', { timeout: WAIT });
      assert.match(await page.$eval('main details [role="alert"]', (e) => e.textContent), /^Invalid model: litellm_params\.model: /);
      assert.equal(psql(dbUrl, 'SELECT count(*) FROM proxy_models'), '0');

      // Added: listed from the database, the key stored sealed, never shown.
      await setField(page, 'main details [name="model"]', 'openai/gpt-page');
      await fill(page, 'main details form', { api_base: `${fake.url}/v1`, rpm: 30, extra_params: '{"max_tokens": 64}' });
      await page.click('main details button[type=submit]');
      await waitFor(page, () => document.querySelector('[data-testid="models-table"]')?.innerText.includes('page-model'));
      const row = await modelRow(page, 'page-model');
      assert.match(row, /openai\/gpt-page/);
      assert.ok(row.includes(`${fake.url}/v1`), row);
      assert.match(row, /30 rpm/);
      assert.match(row, /database/);
      assert.deepEqual(await rowButtons(page, 'page-model'), ['Edit', 'Delete']);
      text = await page.$eval('main', (m) => m.innerText);
      assert.ok(!text.includes(FORM_KEY), 'the key is not on the page');
      const stored = psql(dbUrl, "SELECT model_id || '|' || (litellm_params->>'api_key') || '|' || (litellm_params->>'max_tokens') FROM proxy_models WHERE model_name = 'page-model'");
      const [modelId, sealed, maxTokens] = stored.split('|');
      assert.match(sealed, /^sy-enc:v1:/);
      assert.equal(maxTokens, '64');
      await shot(page, 'models');

      // A request with a virtual key reaches the fake provider with the key typed in the form.
      const made = await call(dbgw, '/key/generate', { body: { key_alias: 'models-page-key' } });
      assert.equal(made.status, 200, made.text);
      const client = new OpenAI({ apiKey: made.json.key, baseURL: `${dbgw.url}/v1`, maxRetries: 0 });
      const ask = { model: 'page-model', messages: [{ role: 'user', content: 'Hello model page' }] };
      const before1 = fake.requests({ path: '/v1/chat/completions' }).length;
      const first = await client.chat.completions.create(ask);
      assert.ok(first.choices[0].message.content.length > 0);
      const seen = fake.requests({ path: '/v1/chat/completions' });
      assert.equal(seen.length, before1 + 1);
      assert.equal(seen.at(-1).headers.authorization, `Bearer ${FORM_KEY}`);
      assert.equal(seen.at(-1).body.model, 'gpt-page');
      assert.equal(seen.at(-1).body.max_tokens, 64);

      // Edited: the form comes prefilled but for the key; a refused change shows its 400 in
      // the dialog; a new api_base and rpm with the key left empty keep the stored key.
      await clickRowButton(page, 'page-model', 'Edit');
      await page.waitForSelector('dialog [data-testid="model-edit"]', { timeout: WAIT });
      const prefilled = await page.$$eval('dialog [data-testid="model-edit"] [name]', (els) => Object.fromEntries(els.map((e) => [e.name, e.value])));
      assert.deepEqual(prefilled, { model_name: 'page-model', model: 'openai/gpt-page', api_base: `${fake.url}/v1`, api_key: '',
        rpm: '30', tpm: '', extra_params: '{"max_tokens":64}' });
      await shot(page, 'model-edit');
      await setField(page, 'dialog [name="model"]', 'nosuchprovider/x');
      await page.click('dialog [data-testid="save-model"]');
      await page.waitForSelector('dialog [role="alert"]', { timeout: WAIT });
      assert.match(await page.$eval('dialog [role="alert"]', (e) => e.textContent), /^Invalid model: litellm_params\.model: /);
      await setField(page, 'dialog [name="model"]', 'openai/gpt-page');
      await setField(page, 'dialog [name="api_base"]', `${fake2.url}/v1`);
      await setField(page, 'dialog [name="rpm"]', '45');
      await page.click('dialog [data-testid="save-model"]');
      await waitFor(page, (u) => !document.querySelector('dialog')
        && document.querySelector('[data-testid="models-table"]')?.innerText.includes(u), `${fake2.url}/v1`);
      assert.match(await modelRow(page, 'page-model'), /45 rpm/);
      assert.equal(psql(dbUrl, `SELECT (litellm_params->>'rpm') || '|' || (litellm_params->>'api_base') FROM proxy_models WHERE model_id = '${modelId}'`),
        `45|${fake2.url}/v1`);
      const second = await client.chat.completions.create(ask);
      assert.ok(second.choices[0].message.content.length > 0);
      const seen2 = fake2.requests({ path: '/v1/chat/completions' });
      assert.equal(seen2.length, 1);
      assert.equal(seen2[0].headers.authorization, `Bearer ${FORM_KEY}`, 'an empty key field keeps the stored key');
      assert.equal(fake.requests({ path: '/v1/chat/completions' }).length, before1 + 1, 'the old api_base is not called');

      // Deleted after a confirm: gone from the page and from the router (LiteLLM's 400).
      await clickRowButton(page, 'page-model', 'Delete');
      await page.click('[data-testid="confirm"]');
      await waitFor(page, () => !document.querySelector('[data-testid="models-table"]')?.innerText.includes('page-model'));
      assert.equal(psql(dbUrl, 'SELECT count(*) FROM proxy_models'), '0');
      const gone = await client.chat.completions.create(ask).then(() => null, (e) => e);
      assert.equal(gone?.status, 400, String(gone));
      assert.deepEqual(openaiErrorProblems({ error: gone.error }, 400), []);
      assert.match(gone.error.message, /Invalid model name passed in model=page-model/);
      assert.deepEqual(page.errors, []);

      // A user who is not a proxy admin sees no form and no buttons, and the API refuses
      // the session anyway.
      const seeded = await call(dbgw, '/model/new', { body: { model_name: 'seeded', litellm_params: { model: 'openai/seeded', mock_response: 'hi' } } });
      assert.equal(seeded.status, 200, seeded.text);
      const alice = await signIn(dbgw, ALICE);
      await alice.page.waitForSelector('[data-testid="who"]', { timeout: WAIT });
      await open(alice.page, dbgw, 'models');
      assert.match(await modelRow(alice.page, 'seeded'), /database/);
      assert.equal(await alice.page.$('main details'), null);
      assert.deepEqual(await alice.page.$$eval('[data-testid="models-table"] button', (bs) => bs.length), 0);
      const refused = await alice.page.evaluate(async () => {
        const s = await (await fetch('/sso/session')).json();
        const r = await fetch('/model/delete', { method: 'POST', headers: { 'content-type': 'application/json', 'x-csrf-token': s.csrf_token },
          body: JSON.stringify({ id: 'anything' }) });
        return { status: r.status, text: await r.text() };
      });
      assert.equal(refused.status, 403, refused.text);
      assert.match(JSON.parse(refused.text).error.message, /user not allowed to access this route, role= internal_user/);
      assert.equal(psql(dbUrl, "SELECT count(*) FROM proxy_models WHERE model_name = 'seeded'"), '1');
      await call(dbgw, '/model/delete', { body: { id: seeded.json.model_id } });
      await dbgw.stop();
    } finally {
      await fake2.close();
    }
  });

  test('ui_access_mode admin_only: a non-admin is refused at sign-in', async () => {
    const { page } = await signIn(strict, ALICE);
    // Back on the UI's sign-in page with the reason; no session was made.
    assert.ok(page.url().startsWith(`${strict.url}/ui/`), page.url());
    await page.waitForSelector('[data-testid="sso-signin"]', { timeout: WAIT });
    const alert = await page.$eval('[role="alert"]', (e) => e.textContent);
    assert.match(alert, /ui_access_mode is admin_only and alice has role internal_user/);
    assert.equal(await page.$('[data-testid="who"]'), null);
    const cookies = await page.cookies();
    assert.ok(!cookies.some((c) => c.name === 'switchyard_session'), JSON.stringify(cookies));
    await shot(page, 'signin-refused');
    // The reason came from the server (a cookie only /sso/session reads, once), not from
    // the URL: a crafted link shows no words of its own, and a reload shows no reason.
    await page.goto(`${strict.url}/ui/?error=Your%20account%20is%20locked%2C%20call%20555-0100`);
    await page.waitForSelector('[data-testid="sso-signin"]', { timeout: WAIT });
    const crafted = await page.$eval('.signin', (e) => e.textContent);
    assert.doesNotMatch(crafted, /locked|555-0100|alice has role/);
    await page.goto(`${strict.url}/ui/`);
    await page.waitForSelector('[data-testid="sso-signin"]', { timeout: WAIT });
    assert.equal(await page.$('[role="alert"]'), null);
    await shot(page, 'signin');
  });

  test('an internal user sees only their own keys and spend', async () => {
    for (const [user, alias] of [['alice', 'alice-key'], ['bob', 'bob-key']]) {
      const r = await call(gw, '/key/generate', { body: { user_id: user, key_alias: alias } });
      assert.equal(r.status, 200, r.text);
    }
    const { page } = await signIn(gw, ALICE);
    await page.waitForSelector('[data-testid="who"]', { timeout: WAIT });
    assert.equal(await page.$eval('[data-testid="role"]', (e) => e.textContent), 'internal_user');
    const nav = await page.$$eval('nav a', (as) => as.map((a) => a.textContent));
    assert.deepEqual(nav, ['My spend', 'My keys', 'My teams', 'Models', 'My requests']);
    const keys = await open(page, gw, 'keys');
    assert.match(keys, /My keys/);
    assert.match(keys, /alice-key/);
    assert.ok(!keys.includes('bob-key'), keys);
    assert.ok(!keys.includes('research-key'), keys);
    await shot(page, 'my-keys');
    const spend = await open(page, gw, 'overview');
    assert.match(spend, /My spend/);
    assert.equal(await page.$eval('[data-testid="kpi-requests"]', (e) => e.textContent), '0');
    const logs = await open(page, gw, 'logs');
    assert.ok(!logs.includes('research-key'), 'the admin key\'s request is not among alice\'s');
    // A page outside the role falls back to the overview; the API refuses it anyway.
    await page.evaluate(() => { location.hash = '#/users'; });
    await page.waitForSelector('main[data-route="overview"][data-ready]', { timeout: WAIT });
    assert.deepEqual(page.errors, []);
  });
});
