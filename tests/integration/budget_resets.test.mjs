// Budgets: the end-user API (/customer/*, /end_user/*: LiteLLM's bodies, roles and 4xx),
// and budget resets on LiteLLM's schedule through two gateway instances sharing Postgres
// and Redis: a key, its user, team and organisation, an end user, and the user's spend in
// the team (the team's default member budget), all with `budget_duration: 2s`, spend through both instances, then every level resets on the next
// boundary (waited for by polling /key/info, never by sleeping), /key/info shows the new
// budget_reset_at, both instances' cached keys see spend 0 at once, and each reset was run
// by exactly one instance (the budget_resets rows, checked against both gateways' logs).
// Each run gets a fresh database on the server of SWITCHYARD_TEST_DATABASE_URL.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';

import { startFakeProvider } from '../fake_provider/server.mjs';
import { spawn } from 'node:child_process';

import { call, delay, mockModel, openaiErrorProblems, psql, SLOW, startGateway, stopAll, withDatabase } from '../lib/gateway.mjs';

const SERVER_URL = process.env.SWITCHYARD_TEST_DATABASE_URL;
const REDIS_URL = process.env.SWITCHYARD_TEST_REDIS_URL;
const skip = (!SERVER_URL || !REDIS_URL) && 'SWITCHYARD_TEST_DATABASE_URL / SWITCHYARD_TEST_REDIS_URL not set (scripts/test.sh sets them)';

const dbName = `swy_budgets_${process.pid}_${Date.now()}`;
let dbUrl;
let fake;
let gwA;
let gwB;

const get = (gw, path, key) => call(gw, path, { method: 'GET', key: key ?? gw.masterKey });
const post = (gw, path, body, key) => call(gw, path, { body, key: key ?? gw.masterKey });

async function ok(promise) {
  const r = await promise;
  assert.equal(r.status, 200, r.text);
  return r.json;
}

function assertError(r, status, param) {
  assert.equal(r.status, status, r.text);
  assert.deepEqual(openaiErrorProblems(r.json, status), [], r.text);
  if (param) assert.equal(r.json.error.param, param, r.text);
}

// Polls `probe` (async, returns a value or undefined) until it returns something.
async function waitFor(what, probe, timeoutMs = 30_000 * SLOW) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await delay(50);
  }
}

const q = (sql) => psql(dbUrl, sql);

describe('budgets', { skip }, () => {
  before(async () => {
    fake = await startFakeProvider();
    psql(SERVER_URL, `CREATE DATABASE ${dbName}`);
    dbUrl = withDatabase(SERVER_URL, dbName);
    const config = {
      model_list: [{
        model_name: 'priced',
        litellm_params: { model: 'openai/priced', api_base: `${fake.url}/v1`, api_key: 'sk-up',
                          input_cost_per_token: 0.001, output_cost_per_token: 0.002 },
      }],
      litellm_settings: { max_end_user_budget: 3.5, max_budget: 50, budget_duration: '30d' },
    };
    const env = { DATABASE_URL: dbUrl, REDIS_URL, SWITCHYARD_DATA_DIR: `/tmp/${dbName}`, SWITCHYARD_BUDGET_METRICS_S: '1',
                  // Both instances look every second, so both contend for each reset.
                  SWITCHYARD_BUDGET_RESET_POLL_S: '1' };
    gwA = await startGateway({ config, env });
    gwB = await startGateway({ config, env });
  });
  after(async () => {
    await stopAll();
    await fake?.close();
    try {
      psql(SERVER_URL, `DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
    } catch {
      /* best effort */
    }
  });

  test('/customer/*: LiteLLM bodies, the budgets row, aliases, block/unblock, delete', async () => {
    const c = await ok(post(gwA, '/customer/new', { user_id: 'cust-1', alias: 'Acme', max_budget: 5, budget_duration: '1d',
                                                    allowed_model_region: 'eu', default_model: 'priced' }));
    assert.equal(c.user_id, 'cust-1');
    assert.equal(c.alias, 'Acme');
    assert.equal(c.blocked, false);
    assert.equal(c.allowed_model_region, 'eu');
    assert.equal(c.litellm_budget_table.max_budget, 5);
    assert.equal(c.litellm_budget_table.budget_id, c.budget_id);
    const midnight = new Date();
    midnight.setUTCHours(24, 0, 0, 0);
    assert.equal(Date.parse(c.litellm_budget_table.budget_reset_at), midnight.getTime(), '1d: the next midnight UTC');

    const info = await ok(get(gwB, '/customer/info?end_user_id=cust-1'));
    assert.equal(info.litellm_budget_table.max_budget, 5);
    assert.equal((await ok(get(gwB, '/end_user/info?end_user_id=cust-1'))).alias, 'Acme');

    const up = await ok(post(gwA, '/customer/update', { user_id: 'cust-1', max_budget: 9, alias: 'Acme 2' }));
    assert.equal(up.alias, 'Acme 2');
    assert.equal(up.budget_id, c.budget_id, 'the budgets row it has takes the new limits');
    assert.equal(up.litellm_budget_table.max_budget, 9);

    const shared = await ok(post(gwA, '/budget/new', { budget_id: 'shared-eu', max_budget: 1 }));
    const c2 = await ok(post(gwA, '/end_user/new', { user_id: 'cust-2', budget_id: shared.budget_id }));
    assert.equal(c2.litellm_budget_table.max_budget, 1);

    const blocked = await ok(post(gwA, '/customer/block', { user_ids: ['cust-1', 'cust-new'] }));
    assert.deepEqual(blocked.blocked_users.map((u) => [u.user_id, u.blocked]), [['cust-1', true], ['cust-new', true]]);
    const unblocked = await ok(post(gwA, '/end_user/unblock', { user_ids: ['cust-1'] }));
    assert.equal(unblocked.blocked_users[0].blocked, false);

    const list = await ok(get(gwA, '/customer/list'));
    assert.deepEqual(list.map((u) => u.user_id).sort(), ['cust-1', 'cust-2', 'cust-new']);

    const del = await ok(post(gwA, '/customer/delete', { user_ids: ['cust-2', 'cust-new', 'nobody'] }));
    assert.equal(del.deleted_customers, 2);
    assert.match(del.message, /Successfully deleted customers with ids: \["cust-2","cust-new"\]/);
    // Deleting a budget that end users use detaches them (no foreign-key 500).
    await ok(post(gwA, '/budget/delete', { id: c.budget_id }));
    assert.equal((await ok(get(gwA, '/customer/info?end_user_id=cust-1'))).budget_id, null);
  });

  test('/customer/*: bad parameters are clear 4xx', async () => {
    assertError(await post(gwA, '/customer/new', { alias: 'no id' }), 422, 'user_id');
    assertError(await post(gwA, '/customer/new', { user_id: 5 }), 422, 'user_id');
    assertError(await post(gwA, '/customer/new', { user_id: 'x', max_budget: 'lots' }), 422, 'max_budget');
    assertError(await post(gwA, '/customer/new', { user_id: 'x', budget_duration: 'weekly' }), 422, 'budget_duration');
    assertError(await post(gwA, '/customer/new', { user_id: 'x', allowed_model_region: 'mars' }), 422, 'allowed_model_region');
    assertError(await post(gwA, '/customer/new', { user_id: 'x', budget_id: 'shared-eu', max_budget: 2 }), 400, 'budget_id');
    // An unknown budget_id: the 404 of the key, user and organisation routes; nothing written.
    const noBudget = await post(gwA, '/customer/new', { user_id: 'x', budget_id: 'no-such-budget' });
    assertError(noBudget, 404, 'budget_id');
    assert.equal(noBudget.json.error.message, 'Budget not found: no-such-budget');
    assertError(await get(gwA, '/customer/info?end_user_id=x'), 400, 'end_user_id');
    await ok(post(gwA, '/customer/new', { user_id: 'dup' }));
    const dup = await post(gwA, '/customer/new', { user_id: 'dup' });
    assertError(dup, 400, 'user_id');
    assert.match(dup.json.error.message, /Customer already exists, passed user_id=dup/);
    assertError(await get(gwA, '/customer/info'), 422, 'end_user_id');
    const missing = await get(gwA, '/customer/info?end_user_id=ghost');
    assertError(missing, 400, 'end_user_id');
    assert.match(missing.json.error.message, /End User Id=ghost does not exist in db/);
    assertError(await post(gwA, '/customer/update', { user_id: 'ghost', alias: 'x' }), 400, 'user_id');
    assertError(await post(gwA, '/customer/update', { alias: 'x' }), 422, 'user_id');
    const updateNoBudget = await post(gwA, '/customer/update', { user_id: 'dup', budget_id: 'no-such-budget', alias: 'y' });
    assertError(updateNoBudget, 404, 'budget_id');
    assert.equal(updateNoBudget.json.error.message, 'Budget not found: no-such-budget');
    assert.equal((await ok(get(gwA, '/customer/info?end_user_id=dup'))).alias, null, 'nothing changed');
    assertError(await post(gwA, '/customer/delete', { user_ids: [] }), 422, 'user_ids');
    assertError(await post(gwA, '/customer/delete', { user_ids: 'dup' }), 422, 'user_ids');
    assertError(await post(gwA, '/customer/delete', { user_ids: ['ghost'] }), 400, 'user_ids');
    assertError(await post(gwA, '/customer/block', {}), 422, 'user_ids');
    assertError(await post(gwA, '/customer/unblock', { user_ids: ['ghost'] }), 400, 'user_ids');
    const badJson = await call(gwA, '/customer/new', { body: '{"user_id":', headers: { 'content-type': 'application/json' } });
    assert.equal(badJson.status, 400, badJson.text);
  });

  test('/customer/*: admins write, viewers read, others are refused', async () => {
    const viewer = (await ok(post(gwA, '/user/new', { user_id: 'viewer-1', user_role: 'proxy_admin_viewer' }))).key;
    const internal = (await ok(post(gwA, '/user/new', { user_id: 'internal-1', user_role: 'internal_user' }))).key;
    const bare = (await ok(post(gwA, '/key/generate', {}))).key;
    assert.equal((await get(gwA, '/customer/list', viewer)).status, 200);
    assert.equal((await get(gwA, '/customer/info?end_user_id=dup', viewer)).status, 200);
    assertError(await post(gwA, '/customer/new', { user_id: 'v' }, viewer), 403);
    assertError(await post(gwA, '/customer/block', { user_ids: ['dup'] }, viewer), 403);
    assertError(await get(gwA, '/customer/list', internal), 403);
    assertError(await post(gwA, '/customer/delete', { user_ids: ['dup'] }, internal), 403);
    assertError(await get(gwA, '/customer/list', bare), 401);
    assertError(await post(gwA, '/customer/new', { user_id: 'v' }, 'sk-not-a-key'), 401);
  });

  test('litellm_settings.max_budget: the user litellm-proxy-budget counts every request', async () => {
    const row = () => {
      const out = q("SELECT row_to_json(u) FROM users u WHERE user_id = 'litellm-proxy-budget'");
      return out ? JSON.parse(out) : undefined;
    };
    const p = await waitFor('the proxy budget row (written once the schema is up)', async () => row());
    assert.equal(p.max_budget, 50);
    assert.equal(p.budget_duration, '30d');
    const now = new Date();
    assert.equal(Date.parse(p.budget_reset_at), Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1));
    const before = p.spend;
    const r = await call(gwB, '/v1/chat/completions', { body: { model: 'priced', messages: [{ role: 'user', content: 'hi' }] } });
    assert.equal(r.status, 200, r.text);
    const cost = Number(r.headers.get('x-litellm-response-cost'));
    assert.ok(cost > 0);
    await waitFor('the proxy budget\'s spend', async () => (Math.abs(row().spend - before - cost) < 1e-9 ? true : undefined));
  });

  test('end users are charged like keys: blocked refused, over budget refused, the default budget applies', async () => {
    const chat = (user, extra = {}) => call(gwA, '/v1/chat/completions', {
      body: { model: 'priced', max_tokens: 10, user, messages: [{ role: 'user', content: 'hi' }], ...extra } });
    const atProvider = () => fake.requests({ path: '/v1/chat/completions' }).length;
    await ok(post(gwA, '/customer/new', { user_id: 'eu-blocked' }));
    await ok(post(gwA, '/customer/block', { user_ids: ['eu-blocked'] }));
    await ok(post(gwA, '/customer/new', { user_id: 'eu-small', max_budget: 0.0001 }));
    const before = atProvider();
    const blocked = await chat('eu-blocked');
    assertError(blocked, 400);
    assert.match(blocked.json.error.message, /End User=eu-blocked is blocked/);
    // The worst case of one request (prompt + 10 completion tokens) is more than 0.0001.
    const small = await chat('eu-small');
    assertError(small, 429);
    assert.equal(small.json.error.type, 'budget_exceeded');
    assert.match(small.json.error.message, /^ExceededBudget: End User=eu-small over budget/);
    // The header names the end user as the body does; refusals never reach the provider.
    const viaHeader = await call(gwA, '/v1/chat/completions', {
      body: { model: 'priced', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] },
      headers: { 'x-litellm-end-user-id': 'eu-small' } });
    assertError(viaHeader, 429);
    assert.equal(atProvider(), before);
    // Unblocked (every instance hears it), the end user passes; an unknown one gets
    // litellm_settings.max_end_user_budget (3.5): a request whose worst case is more is refused.
    await ok(post(gwB, '/customer/unblock', { user_ids: ['eu-blocked'] }));
    await waitFor('the unblocked end user', async () => ((await chat('eu-blocked')).status === 200 ? true : undefined));
    assert.equal((await chat('eu-unknown')).status, 200);
    const big = await chat('eu-unknown', { max_tokens: 2000 });  // 2,000 x 0.002 = 4 > 3.5
    assertError(big, 429);
    assert.match(big.json.error.message, /End User=eu-unknown over budget/);
  });

  test('a new budget_duration starts a new period; the same one keeps the spend', async () => {
    const k = await ok(post(gwA, '/key/generate', { max_budget: 1 }));
    q(`UPDATE verification_tokens SET spend = 5 WHERE token = '${k.token}'`);
    q("INSERT INTO teams (team_id, spend) VALUES ('t-fresh', 5)");
    const up = await ok(post(gwA, '/key/update', { key: k.key, budget_duration: '1mo' }));
    assert.equal(up.spend, 0, 'over budget, then a period set: it starts at 0 (LiteLLM keeps 5 and refuses)');
    const now = new Date();
    assert.equal(Date.parse(up.budget_reset_at), Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1));
    q(`UPDATE verification_tokens SET spend = 0.25 WHERE token = '${k.token}'`);
    const same = await ok(post(gwA, '/key/update', { key: k.key, budget_duration: '1mo', max_budget: 2 }));
    assert.equal(same.spend, 0.25, 'the same duration again changes nothing');
    const team = await ok(post(gwA, '/team/update', { team_id: 't-fresh', budget_duration: '7d' }));
    assert.equal(team.data.spend, 0);
    assertError(await post(gwA, '/key/update', { key: k.key, budget_duration: '7 days' }), 422, 'budget_duration');
  });

  test('soft_budget: one warning per entity and period, team budget gauges', async () => {
    await ok(post(gwA, '/team/new', { team_id: 't-soft', team_alias: 'Soft', max_budget: 10, soft_budget: 1 }));
    q("UPDATE teams SET spend = 2 WHERE team_id = 't-soft'");
    const gauge = async (value) => {
      const r = await fetch(`${gwA.url}/metrics`);
      const text = await r.text();
      const m = text.match(/^litellm_remaining_team_budget_metric\{team_id="t-soft",team_alias="Soft"\} (\S+)$/m);
      return m && Number(m[1]) === value ? true : undefined;
    };
    await waitFor('the remaining-budget gauge at 8', () => gauge(8));
    await gwA.proc.waitForStderr(/soft budget crossed: team t-soft \(Soft\) spend 2\.0+ >= soft_budget 1\.0+/, 10_000 * SLOW);
    q("UPDATE teams SET spend = 3 WHERE team_id = 't-soft'");
    await waitFor('the remaining-budget gauge at 7', () => gauge(7));
    assert.equal([...gwA.stderr().matchAll(/soft budget crossed: team t-soft/g)].length, 1, 'once per period');
    const m = (await (await fetch(`${gwA.url}/metrics`)).text()).match(/^switchyard_soft_budget_crossed_total\{level="team"\} (\S+)$/m);
    assert.ok(m && Number(m[1]) >= 1, 'the counter');
  });

  test('budget_duration 2s: every level resets on time through two instances, each reset by one', async () => {
    // A key, its user, team and organisation, and an end user, each with a 2 s period.
    const org = await ok(post(gwA, '/organization/new', { organization_alias: 'o2s', max_budget: 100, budget_duration: '2s' }));
    // The team's default budget for its members has the same period: the user's spend in
    // the team (a member without a budget of their own) resets with it.
    const team = await ok(post(gwA, '/team/new', { team_id: 't2s', organization_id: org.organization_id, max_budget: 100,
                                                    budget_duration: '2s', team_member_budget: 100,
                                                    team_member_budget_duration: '2s' }));
    assert.equal(team.team_id, 't2s');
    const memberBudget = team.metadata.team_member_budget_id;
    await ok(post(gwA, '/user/new', { user_id: 'u2s', max_budget: 100, budget_duration: '2s', auto_create_key: false }));
    await ok(post(gwA, '/team/member_add', { team_id: 't2s', member: { user_id: 'u2s', role: 'user' } }));
    const k = await ok(post(gwA, '/key/generate', { user_id: 'u2s', team_id: 't2s', organization_id: org.organization_id,
                                                    max_budget: 100, budget_duration: '2s' }));
    await ok(post(gwA, '/customer/new', { user_id: 'eu2s', max_budget: 100, budget_duration: '2s' }));
    const first = await ok(get(gwB, `/key/info?key=${k.key}`));
    const firstReset = Date.parse(first.info.budget_reset_at);
    assert.ok(firstReset % 2000 === 0, `a 2 s period ends on an even second: ${first.info.budget_reset_at}`);

    const clients = [gwA, gwB].map((gw) => new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: k.key, maxRetries: 0, timeout: 20_000 }));
    const spends = () => JSON.parse(q(
      `SELECT json_build_object(
         'key', (SELECT spend FROM verification_tokens WHERE token = '${k.token}'),
         'user', (SELECT spend FROM users WHERE user_id = 'u2s'),
         'team', (SELECT spend FROM teams WHERE team_id = 't2s'),
         'org', (SELECT spend FROM organizations WHERE organization_id = '${org.organization_id}'),
         'end_user', (SELECT spend FROM end_users WHERE user_id = 'eu2s'),
         'member', (SELECT spend FROM team_memberships WHERE team_id = 't2s' AND user_id = 'u2s'),
         'reset_at', (SELECT extract(epoch FROM budget_reset_at) * 1000 FROM verification_tokens WHERE token = '${k.token}'),
         'logged', (SELECT count(*) FROM spend_logs WHERE api_key = '${k.token}'))`));

    // Spend in one period on every level, through both instances (so both cache the key).
    let sent = 0;
    const period = await waitFor('spend on every level within one period', async () => {
      for (const client of clients) {
        const r = await client.chat.completions.create({ model: 'priced', user: 'eu2s', messages: [{ role: 'user', content: 'hi' }] });
        assert.ok(r.choices[0].message.content);
        sent += 1;
      }
      // Every request's spend is written (so nothing lands after the reset), then look.
      await waitFor('spend rows', async () => (Number(spends().logged) === sent ? true : undefined));
      const s = spends();
      return ['key', 'user', 'team', 'org', 'end_user', 'member'].every((l) => s[l] > 0) ? s : undefined;
    });

    // The reset: /key/info (through the other instance) shows the next period and spend 0.
    const after = await waitFor('the key\'s budget reset', async () => {
      const r = await ok(get(gwB, `/key/info?key=${k.key}`));
      return Date.parse(r.info.budget_reset_at) > period.reset_at ? r.info : undefined;
    });
    assert.equal(after.spend, 0);
    assert.ok(Date.parse(after.budget_reset_at) % 2000 === 0, after.budget_reset_at);
    const s = spends();
    for (const level of ['key', 'user', 'team', 'org', 'end_user', 'member']) {
      assert.equal(s[level], 0, `${level} spend after the reset: ${JSON.stringify(s)}`);
    }
    // Every level's reset was recorded for the period that ended, on time (never early).
    const periodEnd = new Date(period.reset_at).toISOString();
    const rows = q(`SELECT string_agg(entity_type || '=' || entity_id, ',' ORDER BY entity_type) FROM budget_resets
                    WHERE period_end = '${periodEnd}'::timestamptz
                      AND entity_id IN ('${k.token}', 'u2s', 't2s', '${org.organization_id}', '${org.budget_id}', 'eu2s',
                                        (SELECT budget_id FROM end_users WHERE user_id = 'eu2s'), '${memberBudget}',
                                        't2s:u2s')`);
    for (const want of [`key=${k.token}`, 'user=u2s', 'team=t2s', `organization=${org.organization_id}`, 'end_user=eu2s',
                        `budget=${org.budget_id}`, `budget=${memberBudget}`, 'team_membership=t2s:u2s']) {
      assert.ok(rows.split(',').includes(want), `${want} reset for the period ending ${periodEnd}: ${rows}`);
    }
    assert.equal(q('SELECT count(*) FROM budget_resets WHERE reset_at < period_end'), '0', 'no reset before its time');

    // Cached keys see spend 0 at once (x-litellm-key-spend: the key's spend before the
    // request, from the instance's key cache; a cache the reset did not reach would show the
    // old spend): A's first request after this reset, then B's first after the next one.
    const keySpendOn = async (gw) => {
      const r = await call(gw, '/v1/chat/completions', { key: k.key, body: { model: 'priced', messages: [{ role: 'user', content: 'x' }] } });
      assert.equal(r.status, 200, r.text);
      sent += 1;
      return Number(r.headers.get('x-litellm-key-spend'));
    };
    assert.equal(await keySpendOn(gwA), 0, 'instance A after the reset');
    await waitFor('the check request\'s spend row', async () => (Number(spends().logged) === sent ? true : undefined));
    const inPeriod = spends().reset_at;
    await waitFor('the next reset', async () => {
      const r = await ok(get(gwA, `/key/info?key=${k.key}`));
      return Date.parse(r.info.budget_reset_at) > inPeriod ? true : undefined;
    });
    assert.equal(await keySpendOn(gwB), 0, 'instance B after the next reset');

    // The info endpoints show budget_reset_at at every level.
    assert.ok((await ok(get(gwA, '/user/info?user_id=u2s'))).user_info.budget_reset_at);
    assert.ok((await ok(get(gwA, '/team/info?team_id=t2s'))).team_info.budget_reset_at);
    assert.ok((await ok(get(gwA, `/organization/info?organization_id=${org.organization_id}`))).litellm_budget_table.budget_reset_at);
    assert.ok((await ok(get(gwA, '/customer/info?end_user_id=eu2s'))).litellm_budget_table.budget_reset_at);

    // Both gateways stop: every budget_resets row (one per entity and period, its primary
    // key) was written by the instance that logged it, and the two logs together count each
    // reset once.
    const logs = [];
    for (const gw of [gwA, gwB]) {
      const { stderr } = await gw.stop();
      logs.push(stderr);
    }
    const logged = (log) => [...log.matchAll(/budget reset: (\d+) budget\(s\) reset by instance (\S+)/g)]
      .reduce((sum, m) => sum + Number(m[1]), 0);
    const total = Number(q('SELECT count(*) FROM budget_resets'));
    const byInstance = q("SELECT string_agg(instance || ': ' || n, ', ') FROM (SELECT instance, count(*) n FROM budget_resets GROUP BY 1) x");
    console.log(`budget resets: ${total} rows (${byInstance}); logged by A: ${logged(logs[0])}, by B: ${logged(logs[1])}`);
    assert.ok(total >= 12, `at least two periods of six entities: ${total}`);
    assert.equal(logged(logs[0]) + logged(logs[1]), total, 'each reset was run by exactly one instance');
  });
});

// A stop that finds the reset job inside a reset's transaction waits for it: the reset
// commits, is logged by the instance that ran it, and reaches the other instances' key
// caches. The transaction is held on a row lock that the test takes before the key's
// period ends and releases once the gateway is draining.
describe('a stop during a budget reset', { skip }, () => {
  const stopDb = `swy_budget_stop_${process.pid}_${Date.now()}`;
  let url;
  before(() => {
    psql(SERVER_URL, `CREATE DATABASE ${stopDb}`);
    url = withDatabase(SERVER_URL, stopDb);
  });
  after(async () => {
    await stopAll();
    try {
      psql(SERVER_URL, `DROP DATABASE IF EXISTS ${stopDb} WITH (FORCE)`);
    } catch {
      /* best effort */
    }
  });

  test('SIGTERM while a reset waits on a row lock: the gateway logs the reset it committed, then exits', async () => {
    const gw = await startGateway({
      config: { model_list: [mockModel('m')] },
      env: { DATABASE_URL: url, SWITCHYARD_BUDGET_RESET_POLL_S: '1', SWITCHYARD_DATA_DIR: `/tmp/${stopDb}` },
    });
    const sql = (text) => psql(url, text);
    // A psql session that holds the key's row until told to commit.
    const holdRow = async (token) => {
      const child = spawn('psql', ['-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1', url], { stdio: ['pipe', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (d) => { out += d; });
      child.stdin.write(`BEGIN;\nSELECT 'held' FROM verification_tokens WHERE token = '${token}' FOR UPDATE;\n`);
      await waitFor('the row lock', async () => (out.includes('held') ? true : undefined));
      return {
        release: () => new Promise((resolve) => {
          child.once('close', resolve);
          child.stdin.end('COMMIT;\n');
        }),
      };
    };
    // The key's 2 s period ends on an even second; the lock is taken before it does. When
    // the reset got there first (a period ending within the few milliseconds this takes),
    // the next key is tried.
    let key;
    let holder;
    for (let attempt = 0; attempt < 20 && !key; attempt += 1) {
      const k = await ok(post(gw, '/key/generate', { max_budget: 10, budget_duration: '2s' }));
      const h = await holdRow(k.token);
      const blocked = await waitFor('the reset job at the lock, or the key already reset', async () => {
        if (Number(sql(`SELECT count(*) FROM budget_resets WHERE entity_id = '${k.token}'`)) > 0) return false;
        const waiting = Number(sql(`SELECT count(*) FROM pg_stat_activity WHERE datname = '${stopDb}' AND wait_event_type = 'Lock'`));
        return waiting > 0 ? true : undefined;
      });
      if (blocked) {
        key = k;
        holder = h;
      } else {
        await h.release();
      }
    }
    assert.ok(key, 'a reset held at the lock');
    gw.proc.signal('SIGTERM');
    await gw.proc.waitForStderr(/signal 15: draining/, 10_000 * SLOW);
    await holder.release();
    const exit = await gw.proc.exited;
    assert.equal(exit.code, 0, gw.stderr());
    const rows = Number(sql('SELECT count(*) FROM budget_resets'));
    assert.ok(Number(sql(`SELECT count(*) FROM budget_resets WHERE entity_id = '${key.token}'`)) >= 1, 'the held reset committed');
    const logged = [...gw.stderr().matchAll(/budget reset: (\d+) budget\(s\) reset by instance/g)]
      .reduce((sum, m) => sum + Number(m[1]), 0);
    assert.equal(logged, rows, `every committed reset is logged: ${gw.stderr()}`);
  });
});
