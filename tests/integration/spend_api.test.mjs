// The spend API end to end: requests through the gateway with virtual keys (the fake
// provider answers with fixed usage, the deployments carry their own prices), then every
// report's shape and figures (/spend/logs raw and summarized, /spend/tags,
// /spend/calculate, /global/spend*, /user/daily/activity, /team/daily/activity), the
// running totals of /key|user|team|organization/info, the role rules and the 400s.
// Each run gets a fresh database on the server of SWITCHYARD_TEST_DATABASE_URL (skipped
// when unset).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';

import { startFakeProvider } from '../fake_provider/server.mjs';
import {
  SLOW, call, delay, openaiErrorProblems, openaiModel, psql, startGateway, stopAll, withDatabase,
} from '../lib/gateway.mjs';

const SERVER_URL = process.env.SWITCHYARD_TEST_DATABASE_URL;
const skip = !SERVER_URL && 'SWITCHYARD_TEST_DATABASE_URL not set (scripts/test.sh sets it)';

const dbName = `swy_spend_${process.pid}_${Date.now()}`;
let dbUrl;
let gw;
let fake;

const get = (path, key) => call(gw, path, { method: 'GET', key: key ?? gw.masterKey });
const post = (path, body, key) => call(gw, path, { body, key: key ?? gw.masterKey });
const sha256 = (s) => createHash('sha256').update(s).digest('hex');

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

// Figures are sums of doubles: compared to 1e-9.
function near(actual, expected, what) {
  assert.ok(Math.abs(actual - expected) < 1e-9, `${what}: ${actual} != ${expected}`);
}

// Polls `fn` until it returns a truthy value; generous deadline (the writer flushes every
// 100 ms, a loaded sanitizer build may take far longer).
async function eventually(fn, what, timeoutMs = 60_000 * SLOW) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await fn();
    if (last) return last;
    if (Date.now() > deadline) throw new Error(`not reached within ${timeoutMs} ms: ${what}`);
    await delay(100);
  }
}

const day = (offset) => new Date(Date.now() + offset * 86_400_000).toISOString().slice(0, 10);

// Prices of the two deployments (USD per token), and the fake provider's fixed usage:
// a request to `a` costs 10 * 0.001 + 20 * 0.002 = 0.05, one to `b` 0.1.
const PRICE_A = { input_cost_per_token: 0.001, output_cost_per_token: 0.002 };
const PRICE_B = { input_cost_per_token: 0.002, output_cost_per_token: 0.004 };
const COST_A = 0.05;
const COST_B = 0.1;

const keys = {};
let org;
let hashA;

function chat(key, model, extra = {}) {
  return call(gw, '/v1/chat/completions', { key, body: { model, messages: [{ role: 'user', content: 'hi' }], ...extra } });
}

describe('spend API', { skip }, () => {
  before(async () => {
    fake = await startFakeProvider({ defaults: { usage: { prompt_tokens: 10, completion_tokens: 20 } } });
    psql(SERVER_URL, `CREATE DATABASE ${dbName}`);
    dbUrl = withDatabase(SERVER_URL, dbName);
    gw = await startGateway({
      config: {
        model_list: [
          openaiModel('a', fake.url, { params: PRICE_A }),
          openaiModel('b', fake.url, { upstreamModel: 'gpt-y', params: PRICE_B }),
        ],
        litellm_settings: { max_budget: 100 },
      },
      env: { DATABASE_URL: dbUrl },
    });
    await gw.proc.waitForStderr(/schema up to date/, 15_000 * SLOW);

    // An organisation with a team; alice (internal user, in the organisation and the team),
    // bob (internal user, no organisation), vic (proxy_admin_viewer), olga (org_admin).
    org = (await ok(post('/organization/new', { organization_alias: 'acme' }))).organization_id;
    await ok(post('/team/new', { team_id: 't-blue', team_alias: 'blue', organization_id: org }));
    keys.alice = (await ok(post('/user/new', { user_id: 'alice', organization_id: org }))).key;
    keys.bob = (await ok(post('/user/new', { user_id: 'bob' }))).key;
    keys.vic = (await ok(post('/user/new', { user_id: 'vic', user_role: 'proxy_admin_viewer' }))).key;
    keys.olga = (await ok(post('/user/new', { user_id: 'olga', user_role: 'org_admin', organization_id: org }))).key;
    await ok(post('/team/member_add', { team_id: 't-blue', member: [{ user_id: 'alice', role: 'user' }] }));
    keys.a = (await ok(post('/key/generate', {
      user_id: 'alice', team_id: 't-blue', organization_id: org, key_alias: 'alice-blue',
    }))).key;
    hashA = sha256(keys.a);

    // Five requests: three with alice's team key (two tagged, for a customer), one with
    // bob's key, one with the master key.
    const sent = [
      await chat(keys.a, 'a', { tags: ['t1'], user: 'cust-1' }),
      await chat(keys.a, 'a', { tags: ['t1'], user: 'cust-1' }),
      await chat(keys.a, 'b'),
      await chat(keys.bob, 'a'),
      await chat(gw.masterKey, 'a'),
    ];
    for (const r of sent) assert.equal(r.status, 200, r.text);
    await eventually(async () => {
      const r = await get('/spend/logs');
      return r.status === 200 && r.json.length === 5;
    }, 'five spend_logs rows');
  });
  after(async () => {
    if (process.env.SWITCHYARD_TEST_VERBOSE) process.stderr.write(gw?.stderr?.() ?? '');
    await stopAll();
    await fake?.close();
    if (dbUrl) psql(SERVER_URL, `DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
  });

  test('/spend/logs: raw rows with LiteLLM field names, filters, paging', async () => {
    const rows = await ok(get(`/spend/logs?api_key=${keys.a}`));
    assert.equal(rows.length, 3);
    const times = rows.map((r) => r.startTime);
    assert.deepEqual(times, [...times].sort().reverse(), 'newest first');
    for (const r of rows) {
      assert.equal(r.api_key, hashA, 'a plain sk- key is looked up by its hash');
      assert.equal(r.user, 'alice');
      assert.equal(r.team_id, 't-blue');
      assert.equal(r.organization_id, org);
      assert.equal(r.prompt_tokens, 10);
      assert.equal(r.completion_tokens, 20);
      assert.equal(r.total_tokens, 30);
      assert.equal(r.status, 'success');
      assert.equal(r.cache_hit, 'False');
      assert.equal(r.custom_llm_provider, 'openai');
      for (const f of ['request_id', 'call_type', 'startTime', 'endTime', 'completionStartTime', 'model', 'model_id',
        'model_group', 'api_base', 'end_user', 'metadata', 'request_tags', 'session_id', 'requester_ip_address']) {
        assert.ok(f in r, `${f} in ${JSON.stringify(r)}`);
      }
      near(r.spend, r.model === 'a' ? COST_A : COST_B, 'row spend');
    }
    assert.deepEqual(rows.filter((r) => r.end_user === 'cust-1').map((r) => r.request_tags), [['t1'], ['t1']]);
    assert.deepEqual(await ok(get(`/spend/logs?api_key=${hashA}`)), rows, 'the hash works as well');

    const one = await ok(get(`/spend/logs?request_id=${rows[0].request_id}`));
    assert.deepEqual(one.map((r) => r.request_id), [rows[0].request_id]);
    assert.equal((await ok(get('/spend/logs?user_id=bob'))).length, 1);
    assert.deepEqual(await ok(get('/spend/logs?api_key=sk-nobody-has-this-key')), [], 'unknown key: empty');

    const p1 = await ok(get('/spend/logs?page=1&page_size=2'));
    const p2 = await ok(get('/spend/logs?page=2&page_size=2'));
    const p3 = await ok(get('/spend/logs?page=3&page_size=2'));
    assert.deepEqual([p1.length, p2.length, p3.length], [2, 2, 1]);
    assert.equal(new Set([...p1, ...p2, ...p3].map((r) => r.request_id)).size, 5);

    const unsummarized = await ok(get(`/spend/logs?start_date=${day(-1)}&end_date=${day(1)}&summarize=false`));
    assert.equal(unsummarized.length, 5);
    assert.deepEqual(await ok(get('/spend/logs?start_date=2020-01-01&end_date=2020-01-31&summarize=false')), []);
  });

  test('/spend/logs: one summary per day with both dates', async () => {
    const days = await ok(get(`/spend/logs?start_date=${day(-1)}&end_date=${day(1)}`));
    assert.ok(days.length >= 2, JSON.stringify(days));
    assert.equal(days.at(-1).startTime, day(1), 'zero days up to end_date');
    const sum = (f) => days.reduce((s, d) => s + f(d), 0);
    near(sum((d) => d.spend), 4 * COST_A + COST_B, 'spend');
    near(sum((d) => d.models.a ?? 0), 4 * COST_A, 'models.a');
    near(sum((d) => d.models.b ?? 0), COST_B, 'models.b');
    near(sum((d) => d.users.alice ?? 0), 2 * COST_A + COST_B, 'users.alice');
    near(sum((d) => d.users.bob ?? 0), COST_A, 'users.bob');
    near(sum((d) => d[hashA] ?? 0), 2 * COST_A + COST_B, 'the key');
    const mine = await ok(get(`/spend/logs?api_key=${keys.a}&start_date=${day(-1)}&end_date=${day(1)}`));
    near(mine.reduce((s, d) => s + d.spend, 0), 2 * COST_A + COST_B, 'one key');
    assert.deepEqual(await ok(get(`/spend/logs?api_key=sk-unknown&start_date=${day(-1)}&end_date=${day(1)}`)), []);
  });

  test('/spend/logs: role rules', async () => {
    // Internal users see their own requests whatever they ask for.
    const alice = await ok(get('/spend/logs', keys.alice));
    assert.equal(alice.length, 3);
    assert.ok(alice.every((r) => r.user === 'alice'));
    assert.equal((await ok(get('/spend/logs?user_id=bob', keys.alice))).length, 3);
    assert.deepEqual(await ok(get(`/spend/logs?api_key=${keys.a}`, keys.bob)), []);
    assert.equal((await ok(get('/spend/logs', keys.bob))).length, 1);
    // The viewer sees everything; an org_admin their organisation's requests.
    assert.equal((await ok(get('/spend/logs', keys.vic))).length, 5);
    const olga = await ok(get('/spend/logs', keys.olga));
    assert.equal(olga.length, 3);
    assert.ok(olga.every((r) => r.organization_id === org));
    assertError(await get('/spend/logs?user_id=bob', keys.olga), 403);
  });

  test('/spend/logs: bad parameters are 400', async () => {
    assertError(await get(`/spend/logs?start_date=${day(0)}`), 400, 'end_date');
    assertError(await get('/spend/logs?start_date=2024-02-30&end_date=2024-03-01'), 400, 'start_date');
    assertError(await get('/spend/logs?start_date=2024-03-01&end_date=yesterday'), 400, 'end_date');
    assertError(await get('/spend/logs?start_date=2024-03-02&end_date=2024-03-01'), 400, 'end_date');
    assertError(await get('/spend/logs?summarize=maybe'), 400, 'summarize');
    assertError(await get('/spend/logs?page=0'), 400, 'page');
    assertError(await get('/spend/logs?page_size=-1'), 400, 'page_size');
    assertError(await get('/spend/logs?page_size=5000'), 400, 'page_size');
  });

  test('/spend/logs/ui: a page of rows in a range of times, with the count; filters and role rules as /spend/logs', async () => {
    const t = (offsetDays) => new Date(Date.now() + offsetDays * 86_400_000).toISOString().slice(0, 19).replace('T', ' ');
    const range = `start_date=${encodeURIComponent(t(-1))}&end_date=${encodeURIComponent(t(1))}`;
    const all = await ok(get(`/spend/logs/ui?${range}`));
    assert.equal(all.total, 5);
    assert.equal(all.page, 1);
    assert.equal(all.page_size, 50);
    assert.equal(all.total_pages, 1);
    assert.equal(all.data.length, 5);
    const times = all.data.map((r) => r.startTime);
    assert.deepEqual(times, [...times].sort().reverse(), 'newest first');
    const paged = await ok(get(`/spend/logs/ui?${range}&page=2&page_size=2`));
    assert.deepEqual([paged.total, paged.page, paged.page_size, paged.total_pages, paged.data.length], [5, 2, 2, 3, 2]);
    assert.deepEqual(paged.data.map((r) => r.request_id), all.data.slice(2, 4).map((r) => r.request_id));
    assert.equal((await ok(get(`/spend/logs/ui?${range}&team_id=t-blue`))).total, 3);
    assert.equal((await ok(get(`/spend/logs/ui?${range}&api_key=${keys.a}`))).total, 3);
    const mid = (COST_A + COST_B) / 2;
    assert.equal((await ok(get(`/spend/logs/ui?${range}&min_spend=${mid}`))).total, 1);
    assert.equal((await ok(get(`/spend/logs/ui?${range}&max_spend=${mid}`))).total, 4);
    // Both ends are times: a range that ends before the requests finds none.
    const before = `start_date=${encodeURIComponent(t(-2))}&end_date=${encodeURIComponent(t(-1))}`;
    assert.deepEqual(await ok(get(`/spend/logs/ui?${before}`)), { data: [], total: 0, page: 1, page_size: 50, total_pages: 0 });
    // Roles as /spend/logs: alice her own, the org_admin their organisation's.
    assert.equal((await ok(get(`/spend/logs/ui?${range}&user_id=bob`, keys.alice))).total, 3);
    assert.equal((await ok(get(`/spend/logs/ui?${range}`, keys.olga))).total, 3);
    // Bad parameters.
    const missing = await get('/spend/logs/ui');
    assertError(missing, 400, 'start_date');
    assert.match(missing.json.error.message, /Start date and end date are required/);
    assertError(await get(`/spend/logs/ui?start_date=${day(-1)}&end_date=${day(1)}`), 400, 'start_date');
    assertError(await get(`/spend/logs/ui?start_date=${encodeURIComponent('2024-02-30 00:00:00')}&end_date=${encodeURIComponent(t(1))}`), 400, 'start_date');
    assertError(await get(`/spend/logs/ui?${range}&page_size=101`), 400, 'page_size');
    assertError(await get(`/spend/logs/ui?${range}&min_spend=lots`), 400, 'min_spend');
  });

  test('/global/spend, /global/spend/keys, /global/spend/models', async () => {
    const total = await ok(get('/global/spend'));
    near(total.spend, 4 * COST_A + COST_B, '/global/spend');
    assert.equal(total.max_budget, 100);
    near((await ok(get('/global/spend', keys.alice))).spend, 2 * COST_A + COST_B, 'alice: her own');
    near((await ok(get('/global/spend', keys.olga))).spend, 2 * COST_A + COST_B, 'olga: her organisation');
    near((await ok(get('/global/spend', keys.vic))).spend, 4 * COST_A + COST_B, 'the viewer: all');

    const top = await ok(get('/global/spend/keys'));
    assert.equal(top[0].api_key, hashA);
    assert.equal(top[0].key_alias, 'alice-blue');
    near(top[0].total_spend, 2 * COST_A + COST_B, 'top key');
    assert.equal(top.length, 3, 'alice\'s, bob\'s and the master key\'s requests');
    assert.equal((await ok(get('/global/spend/keys?limit=1'))).length, 1);
    assert.deepEqual((await ok(get('/global/spend/keys', keys.bob))).map((k) => k.api_key), [sha256(keys.bob)]);
    assertError(await get('/global/spend/keys?limit=abc'), 400, 'limit');
    assertError(await get('/global/spend/keys?limit=0'), 400, 'limit');
    assertError(await get('/global/spend/keys?limit=-3'), 400, 'limit');

    const models = await ok(get('/global/spend/models'));
    assert.deepEqual(models.map((m) => m.model), ['a', 'b']);
    near(models[0].total_spend, 4 * COST_A, 'model a');
    assert.equal(models[0].total_tokens, 120);
    assert.equal((await ok(get('/global/spend/models?limit=1'))).length, 1);
    assert.deepEqual((await ok(get('/global/spend/models', keys.bob))).map((m) => m.model), ['a']);
    assertError(await get('/global/spend/models?limit=1.5'), 400, 'limit');
  });

  test('/global/spend/teams and /global/spend/report', async () => {
    const teams = await ok(get('/global/spend/teams'));
    assert.deepEqual([...teams.teams].sort(), ['Unassigned', 'blue']);
    const blue = teams.daily_spend.reduce((s, d) => s + (d.blue ?? 0), 0);
    near(blue, 2 * COST_A + COST_B, 'blue');
    assert.equal(teams.total_spend_per_team[0].team_id, 'blue');
    assertError(await get('/global/spend/teams', keys.alice), 403);
    assert.equal((await get('/global/spend/teams', keys.vic)).status, 200);

    const range = `start_date=${day(-1)}&end_date=${day(1)}`;
    const byTeam = await ok(get(`/global/spend/report?${range}`));
    const allTeams = byTeam.flatMap((d) => d.teams);
    assert.match(byTeam[0].group_by_day, /^\d{4}-\d{2}-\d{2}T00:00:00\+00:00$/);
    const teamSpend = (name) => allTeams.filter((t) => t.team_name === name).reduce((s, t) => s + t.total_spend, 0);
    near(teamSpend('blue'), 2 * COST_A + COST_B, 'report: blue');
    near(teamSpend('Unassigned Team'), 2 * COST_A, 'report: unassigned');
    const meta = allTeams.find((t) => t.team_name === 'blue').metadata;
    assert.deepEqual(meta.map((m) => m.model).sort(), ['a', 'b']);
    assert.ok(meta.every((m) => m.api_key === hashA && m.total_tokens === (m.model === 'a' ? 60 : 30)));

    const byCustomer = (await ok(get(`/global/spend/report?${range}&group_by=customer`))).flatMap((d) => d.customers);
    near(byCustomer.filter((c) => c.customer === 'cust-1').reduce((s, c) => s + c.total_spend, 0), 2 * COST_A, 'cust-1');
    near(byCustomer.filter((c) => c.customer === null).reduce((s, c) => s + c.total_spend, 0), 2 * COST_A + COST_B,
      'no customer');

    const byKey = await ok(get(`/global/spend/report?${range}&group_by=api_key`));
    assert.equal(byKey[0].api_key, hashA);
    near(byKey[0].total_cost, 2 * COST_A + COST_B, 'report: key');
    assert.equal(byKey[0].total_input_tokens, 30);
    assert.equal(byKey[0].total_output_tokens, 60);
    assert.deepEqual(byKey[0].model_details.map((m) => m.model).sort(), ['a', 'b']);
    const oneKey = await ok(get(`/global/spend/report?${range}&api_key=${keys.bob}`));
    assert.deepEqual(oneKey.map((k) => k.api_key), [sha256(keys.bob)]);
    assert.deepEqual(await ok(get(`/global/spend/report?${range}&api_key=sk-unknown`)), []);

    assertError(await get(`/global/spend/report?${range}&group_by=model`), 400, 'group_by');
    assertError(await get('/global/spend/report'), 400, 'start_date');
    assertError(await get('/global/spend/report?start_date=2024-05-02&end_date=2024-05-01'), 400, 'end_date');
    assertError(await get(`/global/spend/report?${range}`, keys.alice), 403);
    assertError(await get(`/global/spend/report?${range}`, keys.olga), 403);
    assert.equal((await get(`/global/spend/report?${range}`, keys.vic)).status, 200);
  });

  test('/spend/tags', async () => {
    const tags = await ok(get('/spend/tags'));
    assert.deepEqual(tags.map((t) => [t.individual_request_tag, t.log_count]), [['t1', 2]]);
    near(tags[0].total_spend, 2 * COST_A, 'tag t1');
    assert.deepEqual(await ok(get('/spend/tags?start_date=2020-01-01&end_date=2020-01-02')), []);
    assertError(await get('/spend/tags?start_date=2020-01-01'), 400, 'end_date');
    assertError(await get('/spend/tags', keys.alice), 403);
    assert.equal((await get('/spend/tags', keys.vic)).status, 200);
  });

  test('/global/spend/tags', async () => {
    const range = `start_date=${day(-1)}&end_date=${day(1)}`;
    for (const q of [range, `${range}&tags=t1`, `${range}&tags=t1,all-tags`]) {
      const r = await ok(get(`/global/spend/tags?${q}`));
      assert.deepEqual(r.spend_per_tag.map((t) => [t.name, t.log_count]), [['t1', 2]], q);
      near(r.spend_per_tag[0].spend, Math.round(2 * COST_A * 1e4) / 1e4, `tag t1 (${q})`);
    }
    assert.deepEqual(await ok(get(`/global/spend/tags?${range}&tags=nope`)), { spend_per_tag: [] });
    assert.deepEqual(await ok(get('/global/spend/tags?start_date=2020-01-01&end_date=2020-01-02')), { spend_per_tag: [] });
    const missing = await get('/global/spend/tags');
    assertError(missing, 400, 'start_date');
    assert.match(missing.json.error.message, /Please provide start_date and end_date/);
    assertError(await get(`/global/spend/tags?${range}`, keys.alice), 403);
    assert.equal((await get(`/global/spend/tags?${range}`, keys.vic)).status, 200);
  });

  test('/user/daily/activity and /team/daily/activity', async () => {
    const range = `start_date=${day(-1)}&end_date=${day(1)}`;
    const all = await ok(get(`/user/daily/activity?${range}`));
    near(all.metadata.total_spend, 4 * COST_A + COST_B, 'activity: all');
    assert.equal(all.metadata.total_api_requests, 5);
    assert.equal(all.metadata.total_successful_requests, 5);
    assert.equal(all.metadata.total_tokens, 150);
    assert.equal(all.metadata.page, 1);
    assert.equal(all.metadata.has_more, false);
    const d = all.results[0];
    assert.match(d.date, /^\d{4}-\d{2}-\d{2}$/);
    near(d.breakdown.models.a.metrics.spend, 4 * COST_A, 'breakdown model a');
    assert.equal(d.breakdown.api_keys[hashA].metadata.key_alias, 'alice-blue');
    assert.equal(d.breakdown.api_keys[hashA].metadata.team_id, 't-blue');
    near(d.breakdown.providers.openai.metrics.spend, 4 * COST_A + COST_B, 'breakdown provider');
    for (const f of ['spend', 'prompt_tokens', 'completion_tokens', 'total_tokens', 'api_requests',
      'successful_requests', 'failed_requests', 'cache_read_input_tokens', 'cache_creation_input_tokens']) {
      assert.ok(f in d.metrics, f);
    }
    near((await ok(get(`/user/daily/activity?${range}&model=b`))).metadata.total_spend, COST_B, 'model filter');
    near((await ok(get(`/user/daily/activity?${range}&api_key=${keys.bob}`))).metadata.total_spend, COST_A, 'key filter');
    near((await ok(get(`/user/daily/activity?${range}&user_id=alice`))).metadata.total_spend, 2 * COST_A + COST_B,
      'one user');
    near((await ok(get(`/user/daily/activity?${range}`, keys.alice))).metadata.total_spend, 2 * COST_A + COST_B,
      'alice: her own');
    assertError(await get(`/user/daily/activity?${range}&user_id=bob`, keys.alice), 403);
    near((await ok(get(`/user/daily/activity?${range}`, keys.olga))).metadata.total_spend, 2 * COST_A + COST_B,
      'olga: her organisation');
    assertError(await get(`/user/daily/activity?${range}&user_id=bob`, keys.olga), 403);

    const team = await ok(get(`/team/daily/activity?${range}`));
    near(team.metadata.total_spend, 2 * COST_A + COST_B, 'team activity');
    assert.equal(team.results[0].breakdown.entities['t-blue'].metadata.team_alias, 'blue');
    near((await ok(get(`/team/daily/activity?${range}&team_ids=t-blue`))).metadata.total_spend, 2 * COST_A + COST_B,
      'team_ids');
    near((await ok(get(`/team/daily/activity?${range}`, keys.alice))).metadata.total_spend, 2 * COST_A + COST_B,
      'alice: her team');
    assert.equal((await ok(get(`/team/daily/activity?${range}`, keys.bob))).metadata.total_spend, 0, 'bob: no team');
    near((await ok(get(`/team/daily/activity?${range}`, keys.olga))).metadata.total_spend, 2 * COST_A + COST_B,
      'olga: her organisation\'s teams');
    const none = await ok(get('/team/daily/activity?start_date=2020-01-01&end_date=2020-01-02&team_ids=nope'));
    assert.deepEqual(none.results, []);

    for (const path of ['/user/daily/activity', '/team/daily/activity']) {
      assertError(await get(path), 400, 'start_date');
      assertError(await get(`${path}?start_date=2024-13-01&end_date=2024-12-01`), 400, 'start_date');
      assertError(await get(`${path}?start_date=2024-05-02&end_date=2024-05-01`), 400, 'end_date');
      assertError(await get(`${path}?${range}&page=0`), 400, 'page');
      assertError(await get(`${path}?${range}&page_size=-5`), 400, 'page_size');
      assertError(await get(`${path}?${range}&page_size=x`), 400, 'page_size');
    }
  });

  test('breakdown=false: the days (and teams) summed over keys and models', async () => {
    const range = `start_date=${day(-1)}&end_date=${day(1)}`;
    const full = await ok(get(`/user/daily/activity?${range}`));
    const lean = await ok(get(`/user/daily/activity?${range}&breakdown=false`));
    // The same sums from two rollups (daily_spend_totals and daily_spend): the spend may
    // differ in its last bits, as floating-point sums taken in another order do.
    const { total_spend: leanSpend, ...leanRest } = lean.metadata;
    const { total_spend: fullSpend, ...fullRest } = full.metadata;
    assert.deepEqual(leanRest, fullRest);
    near(leanSpend, fullSpend, 'total spend');
    assert.equal(lean.results.length, full.results.length);
    for (const [i, d] of lean.results.entries()) {
      assert.equal(d.date, full.results[i].date);
      near(d.metrics.spend, full.results[i].metrics.spend, `day ${d.date}`);
      assert.equal(d.metrics.api_requests, full.results[i].metrics.api_requests);
      assert.equal(d.metrics.total_tokens, full.results[i].metrics.total_tokens);
      assert.deepEqual(d.breakdown.api_keys, {});
      assert.deepEqual(d.breakdown.models, {});
    }
    const team = await ok(get(`/team/daily/activity?${range}&breakdown=false`));
    near(team.metadata.total_spend, 2 * COST_A + COST_B, 'team activity');
    assert.equal(team.results[0].breakdown.entities['t-blue'].metadata.team_alias, 'blue');
    near(team.results.reduce((s, d) => s + d.breakdown.entities['t-blue'].metrics.spend, 0), 2 * COST_A + COST_B, 't-blue');
    assert.deepEqual(team.results[0].breakdown.api_keys, {});
    near((await ok(get(`/user/daily/activity?${range}&breakdown=false`, keys.alice))).metadata.total_spend,
      2 * COST_A + COST_B, 'alice: her own');
    assertError(await get(`/user/daily/activity?${range}&breakdown=maybe`), 400, 'breakdown');
  });

  test('/user/daily/activity pages by day', async () => {
    const range = `start_date=${day(-1)}&end_date=${day(1)}`;
    const first = await ok(get(`/user/daily/activity?${range}&page_size=1`));
    assert.equal(first.results.length, 1);
    const empty = await ok(get(`/user/daily/activity?${range}&page_size=1&page=9`));
    assert.deepEqual(empty.results, []);
    near(empty.metadata.total_spend, first.metadata.total_spend, 'totals cover the whole range');
  });

  test('/spend/calculate', async () => {
    // 40 characters: 10 prompt tokens at 0.001.
    const before = await ok(post('/spend/calculate', { model: 'a', messages: [{ role: 'user', content: 'x'.repeat(40) }] }));
    near(before.cost, 0.01, 'estimated prompt');
    const afterCall = await ok(post('/spend/calculate', {
      completion_response: { model: 'b', usage: { prompt_tokens: 10, completion_tokens: 20, total_tokens: 30 } },
    }, keys.bob));
    near(afterCall.cost, COST_B, 'from usage');
    assertError(await post('/spend/calculate', { model: 'a' }), 400, 'messages');
    assertError(await post('/spend/calculate', {}), 400);
    assertError(await post('/spend/calculate', { model: 'no-such-model-anywhere', messages: [] }), 400, 'model');
    assertError(await post('/spend/calculate', { completion_response: { model: 'a' } }), 400);
    assertError(await post('/spend/calculate', 'not json'), 400);
    assertError(await get('/spend/calculate'), 405);
  });

  test('running totals: /key/info, /user/info, /team/info, /organization/info', async () => {
    const mine = 2 * COST_A + COST_B;
    near((await ok(get(`/key/info?key=${keys.a}`))).info.spend, mine, '/key/info');
    near((await ok(get('/user/info?user_id=alice'))).user_info.spend, mine, '/user/info');
    near((await ok(get('/team/info?team_id=t-blue'))).team_info.spend, mine, '/team/info');
    near((await ok(get(`/organization/info?organization_id=${org}`))).spend, mine, '/organization/info');
    near((await ok(get('/user/info?user_id=bob'))).user_info.spend, COST_A, '/user/info bob');
  });
});
