// Multi-tenant management end to end: /user/*, /team/* (members), /organization/*,
// /budget/*, /model/info on a real Postgres; roles (proxy_admin, proxy_admin_viewer,
// internal_user, internal_user_viewer, keys without a user); model access through the key,
// team, user and organisation (aliases, access groups), applied at once after a change;
// the team archive and the audit log, read straight from Postgres. Each run gets a fresh
// database on the server of SWITCHYARD_TEST_DATABASE_URL (skipped when unset).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import {
  call, mockModel, openaiErrorProblems, startGateway, stopAll,
} from '../lib/gateway.mjs';

const SERVER_URL = process.env.SWITCHYARD_TEST_DATABASE_URL;
const skip = !SERVER_URL && 'SWITCHYARD_TEST_DATABASE_URL not set (scripts/test.sh sets it)';

function withDatabase(url, db) {
  const u = new URL(url);
  u.pathname = `/${db}`;
  return u.toString();
}
function psql(url, sql) {
  return execFileSync('psql', ['-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1', url, '-c', sql], { encoding: 'utf8' }).trim();
}

const dbName = `swy_tenants_${process.pid}_${Date.now()}`;
let dbUrl;
let gw;

const get = (path, key) => call(gw, path, { method: 'GET', key: key ?? gw.masterKey });
const post = (path, body, key, headers = {}) => call(gw, path, { body, key: key ?? gw.masterKey, headers });

async function ok(promise) {
  const r = await promise;
  assert.equal(r.status, 200, r.text);
  return r.json;
}

function chat(key, model) {
  return call(gw, '/v1/chat/completions', { key, body: { model, messages: [{ role: 'user', content: 'hi' }] } });
}

// An error in LiteLLM's shape with this status (and type, when given).
function assertError(r, status, type) {
  assert.equal(r.status, status, r.text);
  assert.deepEqual(openaiErrorProblems(r.json, status), [], r.text);
  if (type) assert.equal(r.json.error.type, type, r.text);
}

async function modelsOf(key) {
  const r = await get('/v1/models', key);
  assert.equal(r.status, 200, r.text);
  return r.json.data.map((m) => m.id).sort();
}

const audit = (table, id) => psql(dbUrl,
  `SELECT string_agg(action || ':' || changed_by, ',' ORDER BY id) FROM audit_log WHERE table_name = '${table}' AND object_id = '${id}'`);

describe('tenants', { skip }, () => {
  before(async () => {
    psql(SERVER_URL, `CREATE DATABASE ${dbName}`);
    dbUrl = withDatabase(SERVER_URL, dbName);
    gw = await startGateway({
      config: {
        model_list: [
          mockModel('a', 'from a'),
          mockModel('b', 'from b'),
          {
            model_name: 'c',
            litellm_params: { model: 'openai/c', mock_response: 'from c', api_key: 'sk-upstream-secret-c' },
            model_info: { id: 'dep-c', access_groups: ['beta'] },
          },
        ],
      },
      env: { DATABASE_URL: dbUrl },
    });
    await gw.proc.waitForStderr(/schema up to date/, 15_000);
  });
  after(async () => {
    if (process.env.SWITCHYARD_TEST_VERBOSE) process.stderr.write(gw?.stderr?.() ?? '');
    await stopAll();
    if (dbUrl) psql(SERVER_URL, `DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
  });

  test('/team/new, /team/info, /team/update, /team/list', async () => {
    const t = await ok(post('/team/new', { team_alias: 'blue', models: ['a'], max_budget: 10, tags: ['x'] }));
    assert.match(t.team_id, /^[0-9a-f-]{36}$/, 'a uuid when team_id is omitted');
    assert.equal(t.team_alias, 'blue');
    assert.deepEqual(t.models, ['a']);
    assert.equal(t.max_budget, 10);
    assert.deepEqual(t.members_with_roles, []);
    assert.deepEqual(t.metadata, { tags: ['x'] });
    assert.equal(t.blocked, false);

    const again = await post('/team/new', { team_id: t.team_id });
    assertError(again, 400);

    const info = await ok(get(`/team/info?team_id=${t.team_id}`));
    assert.equal(info.team_id, t.team_id);
    assert.equal(info.team_info.team_alias, 'blue');
    assert.deepEqual(info.keys, []);
    assert.deepEqual(info.team_memberships, []);

    const up = await ok(post('/team/update', { team_id: t.team_id, team_alias: 'navy', rpm_limit: 5 }));
    assert.equal(up.team_id, t.team_id);
    assert.equal(up.data.team_alias, 'navy');
    assert.equal(up.data.rpm_limit, 5);
    assert.deepEqual(up.data.models, ['a'], 'omitted fields are left unchanged');

    const list = await ok(get('/team/list'));
    assert.ok(Array.isArray(list));
    assert.ok(list.some((x) => x.team_id === t.team_id && x.team_alias === 'navy'));
    assertError(await get('/team/info?team_id=nope'), 404);
    assertError(await post('/team/update', { team_id: 'nope', team_alias: 'x' }), 404);
    assert.equal(audit('teams', t.team_id), 'created:proxy_admin,updated:proxy_admin');
  });

  test('/user/new (with a key), /user/info, /user/update, /user/list, /user/delete', async () => {
    const u = await ok(post('/user/new', { user_id: 'alice', user_email: 'alice@example.com', models: ['a', 'b'] }));
    assert.equal(u.user_id, 'alice');
    assert.equal(u.user_role, 'internal_user', 'LiteLLM default role');
    assert.match(u.key, /^sk-[0-9a-f]{32}$/, 'auto_create_key defaults to true');
    assert.equal((await chat(u.key, 'a')).status, 200);

    const nokey = await ok(post('/user/new', { user_email: 'nokey@example.com', auto_create_key: false }));
    assert.match(nokey.user_id, /^[0-9a-f-]{36}$/);
    assert.equal(nokey.key, undefined);

    const info = await ok(get('/user/info?user_id=alice'));
    assert.equal(info.user_id, 'alice');
    assert.equal(info.user_info.user_email, 'alice@example.com');
    assert.equal(info.keys.length, 1);
    assert.equal(info.keys[0].token, u.token_id);

    const up = await ok(post('/user/update', { user_email: 'alice@example.com', user_alias: 'Alice' }));
    assert.equal(up.user_id, 'alice');
    assert.equal(up.data.user_alias, 'Alice');

    const list = await ok(get('/user/list?page=1&page_size=1'));
    assert.equal(list.users.length, 1);
    assert.ok(list.total >= 2, JSON.stringify(list));
    assert.equal(list.page_size, 1);

    assertError(await post('/user/new', { user_id: 'alice' }), 400);
    assertError(await post('/user/new', { user_role: 'emperor' }), 422);

    const del = await ok(post('/user/delete', { user_ids: [nokey.user_id] }));
    assert.deepEqual(del.deleted_users, [nokey.user_id]);
    assertError(await get(`/user/info?user_id=${nokey.user_id}`), 404);
    assert.equal(audit('users', nokey.user_id), 'created:proxy_admin,deleted:proxy_admin');
  });

  test('/team/member_add and /team/member_delete', async () => {
    const t = await ok(post('/team/new', { team_id: 'team-m', members_with_roles: [{ role: 'admin', user_id: 'boss' }] }));
    assert.deepEqual(t.members_with_roles.map((m) => [m.user_id, m.role]), [['boss', 'admin']]);
    const added = await ok(post('/team/member_add', {
      team_id: 'team-m', member: [{ role: 'user', user_id: 'carol' }, { role: 'user', user_email: 'dan@example.com' }],
      max_budget_in_team: 2,
    }));
    assert.deepEqual(added.members_with_roles.map((m) => m.role), ['admin', 'user', 'user']);
    assert.equal(added.updated_users.length, 2);
    assert.deepEqual(added.updated_users[0].teams, ['team-m']);
    const info = await ok(get('/team/info?team_id=team-m'));
    assert.equal(info.team_memberships.length, 3);
    assert.ok(info.team_memberships.find((m) => m.user_id === 'carol').budget_id, 'max_budget_in_team -> a budget');
    assert.equal(psql(dbUrl, `SELECT b.max_budget FROM team_memberships m JOIN budgets b USING (budget_id) WHERE m.user_id = 'carol'`), '2');

    const removed = await ok(post('/team/member_delete', { team_id: 'team-m', user_id: 'carol' }));
    assert.deepEqual(removed.members_with_roles.map((m) => m.user_id).sort(), ['boss', added.updated_users[1].user_id].sort());
    assert.equal(psql(dbUrl, `SELECT array_length(teams, 1) IS NULL FROM users WHERE user_id = 'carol'`), 't');
    assertError(await post('/team/member_delete', { team_id: 'team-m', user_id: 'carol' }), 400);
    assertError(await post('/team/member_add', { team_id: 'nope', member: { user_id: 'x' } }), 404);
    assert.equal(audit('teams', 'team-m'), 'created:proxy_admin,member_added:proxy_admin,member_added:proxy_admin,member_removed:proxy_admin');

    // /user/new with teams joins them; unknown teams refuse the whole call.
    const tess = await ok(post('/user/new', { user_id: 'tess', teams: ['team-m'] }));
    assert.deepEqual(tess.teams, ['team-m']);
    assert.ok((await ok(get('/team/info?team_id=team-m'))).team_memberships.some((m) => m.user_id === 'tess'));
    assertError(await post('/user/new', { user_id: 'nobody', teams: ['no-such-team'] }), 404);
    assertError(await get('/user/info?user_id=nobody'), 404);
  });

  test('/team/member_add of a user already in the team: 400 team_member_already_in_team, role unchanged', async () => {
    await ok(post('/team/new', { team_id: 'team-dup', members_with_roles: [{ role: 'admin', user_id: 'dup-boss' }] }));
    await ok(post('/team/member_add', { team_id: 'team-dup', member: { role: 'user', user_id: 'dup-u', user_email: 'dup-u@example.com' } }));
    const roles = async () => (await ok(get('/team/info?team_id=team-dup'))).team_info.members_with_roles
      .map((m) => `${m.user_id}:${m.role}`).sort();

    const again = await post('/team/member_add', { team_id: 'team-dup', member: { role: 'admin', user_id: 'dup-u' } });
    assertError(again, 400, 'team_member_already_in_team');
    assert.equal(again.json.error.param, 'member');
    assert.match(again.json.error.message, /^User already in team\. Member: user_id=dup-u, user_email=None\. Existing members=/);
    const byEmail = await post('/team/member_add', { team_id: 'team-dup', member: { user_email: 'dup-u@example.com' } });
    assertError(byEmail, 400, 'team_member_already_in_team');
    const all = await post('/team/member_add', { team_id: 'team-dup', member: [{ user_id: 'dup-boss' }, { user_id: 'dup-u' }] });
    assertError(all, 400, 'team_member_already_in_team');
    assert.match(all.json.error.message, /^All users are already in team\. Existing members=/);
    assert.deepEqual(await roles(), ['dup-boss:admin', 'dup-u:user'], 'nothing changed');

    // Some already in: LiteLLM adds the others and leaves the existing ones as they are.
    const some = await ok(post('/team/member_add', {
      team_id: 'team-dup', member: [{ role: 'user', user_id: 'dup-boss' }, { role: 'admin', user_id: 'dup-new' }],
    }));
    assert.deepEqual(some.updated_users.map((u) => u.user_id), ['dup-new']);
    assert.deepEqual(await roles(), ['dup-boss:admin', 'dup-new:admin', 'dup-u:user']);
    assert.equal(psql(dbUrl, "SELECT string_agg(user_id || ':' || role, ',' ORDER BY user_id) FROM team_memberships WHERE team_id = 'team-dup'"),
      'dup-boss:admin,dup-new:admin,dup-u:user');
  });

  test('/team/member_update: a member\'s own budget and rate limits in the team, and their role', async () => {
    // LiteLLM's merge-patch: a value sets, null clears, an absent field is left as it is.
    // A member held to the team's default gets a row of their own made from it; the
    // default itself is never changed.
    const t = await ok(post('/team/new', {
      team_id: 'team-mu', team_member_budget: 10, team_member_tpm_limit: 100,
      members_with_roles: [{ role: 'admin', user_id: 'mu-boss' }, { role: 'user', user_id: 'mu-ann', user_email: 'ann@mu.example' },
        { role: 'user', user_id: 'mu-bob' }],
    }));
    const defaultId = t.metadata.team_member_budget_id;
    const membership = (u) => JSON.parse(psql(dbUrl,
      `SELECT to_jsonb(m) || jsonb_build_object('b', to_jsonb(b)) FROM team_memberships m LEFT JOIN budgets b USING (budget_id)
       WHERE m.team_id = 'team-mu' AND m.user_id = '${u}'`));

    const r = await ok(post('/team/member_update', { team_id: 'team-mu', user_id: 'mu-ann', max_budget_in_team: 5 }));
    assert.deepEqual(r, { team_id: 'team-mu', user_id: 'mu-ann', user_email: null, max_budget_in_team: 5, tpm_limit: null,
      rpm_limit: null });
    let ann = membership('mu-ann');
    assert.ok(ann.budget_id && ann.budget_id !== defaultId, 'a row of her own');
    assert.equal(ann.b.max_budget, 5);
    assert.equal(ann.b.tpm_limit, 100, 'the default\'s other limits come with it');
    assert.equal(psql(dbUrl, `SELECT max_budget || ',' || tpm_limit FROM budgets WHERE budget_id = '${defaultId}'`), '10,100');
    assert.equal(membership('mu-bob').budget_id, null, 'the others keep the default');

    // Her own row is changed in place; what is not sent stays.
    await ok(post('/team/member_update', { team_id: 'team-mu', user_id: 'mu-ann', tpm_limit: 7, rpm_limit: 3 }));
    const firstRow = ann.budget_id;
    ann = membership('mu-ann');
    assert.equal(ann.budget_id, firstRow);
    assert.deepEqual([ann.b.max_budget, ann.b.tpm_limit, ann.b.rpm_limit], [5, 7, 3]);

    // The role, found by email: team_memberships and members_with_roles (in place).
    const byEmail = await ok(post('/team/member_update', { team_id: 'team-mu', user_email: 'ann@mu.example', role: 'admin' }));
    assert.equal(byEmail.user_id, 'mu-ann');
    assert.equal(byEmail.user_email, 'ann@mu.example');
    const info = await ok(get('/team/info?team_id=team-mu'));
    assert.deepEqual(info.team_info.members_with_roles.map((m) => [m.user_id, m.role]),
      [['mu-boss', 'admin'], ['mu-ann', 'admin'], ['mu-bob', 'user']]);
    assert.equal(membership('mu-ann').role, 'admin');
    assert.deepEqual([membership('mu-ann').b.max_budget, membership('mu-ann').b.tpm_limit], [5, 7], 'limits untouched');

    // Every limit cleared: she is held to the team's default again.
    await ok(post('/team/member_update', { team_id: 'team-mu', user_id: 'mu-ann', max_budget_in_team: null, tpm_limit: null,
      rpm_limit: null }));
    assert.equal(membership('mu-ann').budget_id, null);

    // Audited in the transaction that made each change.
    assert.equal(psql(dbUrl, `SELECT count(*) FROM audit_log WHERE table_name = 'team_memberships' AND object_id = 'team-mu:mu-ann'
      AND action = 'updated'`), '3', 'her own row, the role, back to the default (the in-place change is the budget row\'s)');
    assert.equal(psql(dbUrl, `SELECT count(*) FROM audit_log WHERE table_name = 'budgets' AND object_id = '${firstRow}'`), '2',
      'created, then updated');
    assert.match(audit('teams', 'team-mu'), /,updated:proxy_admin$/, 'the role change');
  });

  test('/team/member_update errors: LiteLLM\'s 400s for a missing member, team or id; 422 for bad values', async () => {
    await ok(post('/team/new', { team_id: 'team-mue', members_with_roles: [{ role: 'user', user_id: 'mue-in' }] }));
    await ok(post('/user/new', { user_id: 'mue-out', user_email: 'out@mue.example', auto_create_key: false }));
    let r = await post('/team/member_update', { team_id: 'team-mue' });
    assertError(r, 400);
    assert.equal(r.json.error.message, 'Either user_id or user_email needs to be passed in');
    r = await post('/team/member_update', { team_id: 'no-such-team-mue', user_id: 'mue-in' });
    assertError(r, 400);
    assert.equal(r.json.error.message, 'Team id=no-such-team-mue does not exist in db');
    for (const who of [{ user_id: 'mue-out' }, { user_email: 'out@mue.example' }, { user_id: 'nobody-at-all' }]) {
      r = await post('/team/member_update', { team_id: 'team-mue', ...who, max_budget_in_team: 1 });
      assertError(r, 400);
      assert.match(r.json.error.message, /^User id doesn't exist in team table\. Data=team_id='team-mue' /, r.text);
    }
    assert.equal(psql(dbUrl, `SELECT count(*) FROM team_memberships WHERE user_id = 'mue-out'`), '0', 'not made a member');
    for (const [body, param] of [[{ role: 'owner' }, 'role'], [{ max_budget_in_team: -1 }, 'max_budget_in_team'],
      [{ tpm_limit: 'x' }, 'tpm_limit'], [{ rpm_limit: -2 }, 'rpm_limit'], [{ user_id: 5 }, 'user_id']]) {
      r = await post('/team/member_update', { team_id: 'team-mue', user_id: 'mue-in', ...body });
      assertError(r, 422);
      assert.equal(r.json.error.param, param, r.text);
    }
  });

  test('/team/member_update: proxy admins and the team\'s admin members (org_admins in their organisation); others 403', async () => {
    const org = await ok(post('/organization/new', { organization_alias: 'org-mup' }));
    await ok(post('/team/new', { team_id: 'team-mup', organization_id: org.organization_id, members_with_roles: [
      { role: 'admin', user_id: 'mup-admin' }, { role: 'user', user_id: 'mup-user' }] }));
    await ok(post('/team/new', { team_id: 'team-mup-2', members_with_roles: [{ role: 'user', user_id: 'mup-admin' }] }));
    const keyOf = async (user_id) => (await ok(post('/key/generate', { user_id }))).key;
    const teamAdmin = await keyOf('mup-admin');
    const member = await keyOf('mup-user');
    const viewer = (await ok(post('/user/new', { user_id: 'mup-viewer', user_role: 'proxy_admin_viewer' }))).key;
    const orgAdmin = (await ok(post('/user/new', { user_id: 'mup-org', user_role: 'org_admin',
      organization_id: org.organization_id }))).key;
    const otherOrg = await ok(post('/organization/new', { organization_alias: 'org-mup-2' }));
    const strangerAdmin = (await ok(post('/user/new', { user_id: 'mup-org-2', user_role: 'org_admin',
      organization_id: otherOrg.organization_id }))).key;
    const noUser = (await ok(post('/key/generate', {}))).key;
    const body = { team_id: 'team-mup', user_id: 'mup-user', rpm_limit: 9 };

    for (const key of [teamAdmin, orgAdmin]) {
      assert.equal((await ok(post('/team/member_update', body, key))).user_id, 'mup-user');
    }
    for (const key of [member, strangerAdmin]) {
      const r = await post('/team/member_update', body, key);
      assertError(r, 403);
      assert.equal(r.json.error.message,
        'Call not allowed. User not proxy admin OR team admin. route=/team/member_update, team_id=team-mup');
    }
    // An admin of one team is not one of another; viewers make no writes; a key without a user: 401.
    assertError(await post('/team/member_update', { team_id: 'team-mup-2', user_id: 'mup-admin', rpm_limit: 1 }, teamAdmin), 403);
    assertError(await post('/team/member_update', body, viewer), 403, 'auth_error');
    assertError(await post('/team/member_update', body, noUser), 401);
    assert.equal(psql(dbUrl, `SELECT b.rpm_limit FROM team_memberships m JOIN budgets b USING (budget_id)
      WHERE m.team_id = 'team-mup-2' AND m.user_id = 'mup-admin'`), '', 'nothing written');
  });

  test('/user/new gives its key the key fields of the request, as LiteLLM; the budget stays the user\'s', async () => {
    const u = await ok(post('/user/new', {
      user_id: 'keyed', duration: '2h', key_alias: 'keyed-first', models: ['a'], max_budget: 7, budget_duration: '30d',
      tpm_limit: 1000000, rpm_limit: 600, max_parallel_requests: 3, metadata: { app: 'x' }, allowed_routes: ['llm_api_routes'],
    }));
    assert.equal(u.max_budget, 7);
    assert.equal(u.budget_duration, '30d');
    assert.equal(u.key_alias, 'keyed-first');
    const hours = (Date.parse(u.expires) - Date.now()) / 3_600_000;
    assert.ok(hours > 1.5 && hours <= 2, `expires in 2h: ${u.expires}`);
    const info = await ok(get(`/key/info?key=${u.key}`));
    const k = info.info;
    assert.equal(k.user_id, 'keyed');
    assert.equal(k.key_alias, 'keyed-first');
    assert.deepEqual(k.models, ['a']);
    assert.equal(k.expires, u.expires);
    assert.equal(k.tpm_limit, 1000000);
    assert.equal(k.rpm_limit, 600);
    assert.equal(k.max_parallel_requests, 3);
    assert.deepEqual(k.metadata, { app: 'x' });
    assert.deepEqual(k.allowed_routes, ['llm_api_routes']);
    assert.equal(k.max_budget, null, 'max_budget is the user\'s budget, not the key\'s');
    assert.equal(k.budget_duration, null);
    const first = await chat(u.key, 'a');
    assert.equal(first.status, 200, first.text);
    assertError(await chat(u.key, 'b'), 403);
    assertError(await post('/user/new', { user_id: 'bad-duration', duration: 'soon' }), 422);
    assertError(await get('/user/info?user_id=bad-duration'), 404);
  });

  test('/user/new with team_id and budget_id: the key is the team\'s, under the budget; the user joins the team', async () => {
    // LiteLLM's /user/new hands team_id and budget_id to the key it makes and adds the user
    // to team_id as a member (role user).
    await ok(post('/team/new', { team_id: 'team-onboard', team_alias: 'onboard' }));
    await ok(post('/team/new', { team_id: 'team-onboard-2' }));
    const budget = await ok(post('/budget/new', { budget_id: 'budget-onboard', max_budget: 5 }));
    assert.equal(budget.budget_id, 'budget-onboard');
    const u = await ok(post('/user/new', { user_id: 'onboarded', team_id: 'team-onboard', budget_id: 'budget-onboard' }));
    assert.equal(u.team_id, 'team-onboard');
    assert.equal(u.budget_id, 'budget-onboard');
    const k = (await ok(get(`/key/info?key=${u.key}`))).info;
    assert.equal(k.user_id, 'onboarded');
    assert.equal(k.team_id, 'team-onboard');
    assert.equal(k.budget_id, 'budget-onboard');
    assert.equal(psql(dbUrl, "SELECT role FROM team_memberships WHERE team_id = 'team-onboard' AND user_id = 'onboarded'"), 'user');
    const team = await ok(get('/team/info?team_id=team-onboard'));
    assert.ok(team.team_info.members_with_roles.some((m) => m.user_id === 'onboarded' && m.role === 'user'),
      JSON.stringify(team.team_info.members_with_roles));
    assert.equal((await chat(u.key, 'a')).status, 200);
    // With `teams` too, the user joins both; unknown ids create nothing.
    const both = await ok(post('/user/new', { user_id: 'onboarded-2', team_id: 'team-onboard', teams: ['team-onboard-2'], auto_create_key: false }));
    assert.deepEqual([...both.teams].sort(), ['team-onboard', 'team-onboard-2']);
    const noTeam = await post('/user/new', { user_id: 'onboard-x', team_id: 'no-such-team' });
    assertError(noTeam, 404);
    assert.equal(noTeam.json.error.param, 'team_id');
    const noBudget = await post('/user/new', { user_id: 'onboard-y', budget_id: 'no-such-budget' });
    assertError(noBudget, 404);
    assert.equal(noBudget.json.error.param, 'budget_id');
    assert.match(noBudget.json.error.message, /^Budget not found: no-such-budget$/);
    assertError(await get('/user/info?user_id=onboard-x'), 404);
    assertError(await get('/user/info?user_id=onboard-y'), 404);
  });

  test('a value the database refuses is a 400 naming the field and the problem, not the constraint', async () => {
    await ok(post('/team/new', { team_id: 'team-refused' }));
    await ok(post('/user/new', { user_id: 'refused-u', sso_user_id: 'sso-refused', auto_create_key: false }));
    await ok(post('/user/new', { user_id: 'refused-v', auto_create_key: false }));
    await ok(post('/customer/new', { user_id: 'refused-c' }));
    const org = await ok(post('/organization/new', { organization_alias: 'org-refused' }));
    const cases = [
      // An organisation that does not exist: LiteLLM's words.
      ['/team/new', { team_id: 'team-refused-2', organization_id: 'no-org' }, 'organization_id',
        'Organization not found for organization_id=no-org'],
      ['/team/update', { team_id: 'team-refused', organization_id: 'no-org' }, 'organization_id',
        'Organization not found for organization_id=no-org'],
      ['/user/new', { user_id: 'refused-w', organization_id: 'no-org' }, 'organization_id',
        'Organization not found for organization_id=no-org'],
      ['/user/update', { user_id: 'refused-v', organization_id: 'no-org' }, 'organization_id',
        'Organization not found for organization_id=no-org'],
      // A unique value another row has.
      ['/user/new', { user_id: 'refused-x', sso_user_id: 'sso-refused' }, 'sso_user_id',
        "sso_user_id 'sso-refused' is already used by another user"],
      ['/user/update', { user_id: 'refused-v', sso_user_id: 'sso-refused' }, 'sso_user_id',
        "sso_user_id 'sso-refused' is already used by another user"],
    ];
    for (const [path, body, param, message] of cases) {
      const r = await post(path, body);
      assertError(r, 400, 'invalid_request_error');
      assert.equal(r.json.error.message, message, `${path} ${JSON.stringify(body)}: ${r.text}`);
      assert.equal(r.json.error.param, param, r.text);
      assert.doesNotMatch(r.text, /constraint|violates|fkey|DETAIL|ERROR:|table|Key \(/, r.text);
    }
    // An organisation's or end user's budget that does not exist: 404 naming it, as the
    // key and user routes answer.
    for (const [path, body] of [
      ['/organization/new', { organization_alias: 'org-refused-2', budget_id: 'no-budget' }],
      ['/organization/update', { organization_id: org.organization_id, budget_id: 'no-budget' }],
      ['/customer/new', { user_id: 'refused-d', budget_id: 'no-budget' }],
      ['/customer/update', { user_id: 'refused-c', budget_id: 'no-budget' }],
    ]) {
      const r = await post(path, body);
      assertError(r, 404, 'not_found_error');
      assert.equal(r.json.error.message, 'Budget not found: no-budget', `${path}: ${r.text}`);
      assert.equal(r.json.error.param, 'budget_id', r.text);
    }
    assert.equal(psql(dbUrl, "SELECT count(*) FROM organizations WHERE organization_alias = 'org-refused-2'"), '0');
    assert.notEqual((await ok(get(`/organization/info?organization_id=${org.organization_id}`))).budget_id, 'no-budget');
    // Nothing was written.
    assertError(await get('/team/info?team_id=team-refused-2'), 404);
    assertError(await get('/user/info?user_id=refused-w'), 404);
    assertError(await get('/user/info?user_id=refused-x'), 404);
    assert.equal((await ok(get('/team/info?team_id=team-refused'))).team_info.organization_id, null);
    assert.equal((await ok(get('/user/info?user_id=refused-v'))).user_info.sso_user_id, null);
  });

  test('a key naming a budget that does not exist is a 404 naming it; nothing is written', async () => {
    const r = await post('/key/generate', { key_alias: 'key-no-budget', budget_id: 'no-such-budget' });
    assertError(r, 404, 'not_found_error');
    assert.equal(r.json.error.param, 'budget_id', r.text);
    assert.equal(r.json.error.message, 'Budget not found: no-such-budget');
    assert.equal(psql(dbUrl, "SELECT count(*) FROM verification_tokens WHERE key_alias = 'key-no-budget'"), '0');

    const k = await ok(post('/key/generate', { key_alias: 'key-budget-later' }));
    const up = await post('/key/update', { key: k.key, budget_id: 'no-such-budget' });
    assertError(up, 404, 'not_found_error');
    assert.equal(up.json.error.param, 'budget_id', up.text);
    const regen = await post('/key/regenerate', { key: k.key, budget_id: 'no-such-budget' });
    assertError(regen, 404, 'not_found_error');
    assert.equal(regen.json.error.param, 'budget_id', regen.text);
    assert.equal(psql(dbUrl, `SELECT coalesce(budget_id, 'none') FROM verification_tokens WHERE key_alias = 'key-budget-later'`), 'none');
    assert.equal((await ok(get(`/key/info?key=${k.key}`))).info.budget_id, null);

    // A budget that exists is taken.
    await ok(post('/budget/new', { budget_id: 'budget-for-keys', max_budget: 5 }));
    const made = await ok(post('/key/generate', { budget_id: 'budget-for-keys' }));
    assert.equal(made.budget_id, 'budget-for-keys');
    const upd = await ok(post('/key/update', { key: k.key, budget_id: 'budget-for-keys' }));
    assert.equal(upd.budget_id, 'budget-for-keys', JSON.stringify(upd));
  });

  test('a budget deleted between the check and the key write: the same 404, the key does not name it', async () => {
    // The budget goes away in the key write's own statement (a trigger of this test's
    // database deletes it as the key is about to take it), after the route checked it.
    psql(dbUrl, `CREATE FUNCTION delete_budget_first() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        DELETE FROM budgets WHERE budget_id = NEW.budget_id AND budget_id LIKE 'vanishing-%';
        RETURN NEW;
      END $$`);
    psql(dbUrl, `CREATE TRIGGER delete_budget_first BEFORE UPDATE OF budget_id ON verification_tokens
      FOR EACH ROW WHEN (NEW.budget_id IS DISTINCT FROM OLD.budget_id) EXECUTE FUNCTION delete_budget_first()`);
    try {
      const k = await ok(post('/key/generate', { key_alias: 'key-race' }));
      const cases = [
        ['/key/generate', { key_alias: 'key-race-new', budget_id: 'vanishing-1' }],
        ['/key/update', { key: k.key, budget_id: 'vanishing-2' }],
        ['/key/regenerate', { key: k.key, budget_id: 'vanishing-3' }],
        ['/user/new', { user_id: 'user-race', budget_id: 'vanishing-4' }],
      ];
      for (const [path, body] of cases) {
        await ok(post('/budget/new', { budget_id: body.budget_id, max_budget: 1 }));
        const r = await post(path, body);
        assertError(r, 404, 'not_found_error');
        assert.equal(r.json.error.message, `Budget not found: ${body.budget_id}`, `${path}: ${r.text}`);
        assert.equal(r.json.error.param, 'budget_id', r.text);
      }
      assert.equal(psql(dbUrl, "SELECT count(*) FROM verification_tokens WHERE budget_id LIKE 'vanishing-%'"), '0');
      assert.equal(psql(dbUrl, "SELECT count(*) FROM verification_tokens WHERE key_alias = 'key-race-new'"), '0');
      assertError(await get('/user/info?user_id=user-race'), 404);
      assert.equal((await ok(get(`/key/info?key=${k.key}`))).info.budget_id, null);
    } finally {
      psql(dbUrl, 'DROP TRIGGER delete_budget_first ON verification_tokens');
    }
  });

  test('/user/new whose key is refused (its alias taken) creates nothing: the user, its teams, its key', async () => {
    await ok(post('/team/new', { team_id: 'team-atomic' }));
    await ok(post('/key/generate', { key_alias: 'taken-alias' }));
    const r = await post('/user/new', { user_id: 'atomic', teams: ['team-atomic'], key_alias: 'taken-alias' });
    assertError(r, 400);
    assert.equal(r.json.error.param, 'key_alias', r.text);
    assertError(await get('/user/info?user_id=atomic'), 404);
    assert.equal(psql(dbUrl, "SELECT count(*) FROM team_memberships WHERE user_id = 'atomic'"), '0');
    const team = await ok(get('/team/info?team_id=team-atomic'));
    assert.deepEqual(team.team_info.members_with_roles, []);
    assert.equal(audit('users', 'atomic'), '');
    // The same request with a free alias then works.
    const u = await ok(post('/user/new', { user_id: 'atomic', teams: ['team-atomic'], key_alias: 'free-alias' }));
    assert.deepEqual(u.teams, ['team-atomic']);
    assert.equal(psql(dbUrl, "SELECT count(*) FROM team_memberships WHERE user_id = 'atomic'"), '1');
  });

  test('/team/new and /team/update write the team, its member budget and its members in one transaction', async () => {
    // The database refuses the members' default budget of a team whose alias is
    // 'refused' (a trigger of this test's database): what the team write did before it
    // must be undone with it.
    psql(dbUrl, `CREATE FUNCTION refuse_member_budget() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.budget_id LIKE 'team-refused-budget-%' THEN RAISE EXCEPTION 'member budget refused by the test'; END IF;
        RETURN NEW;
      END $$`);
    psql(dbUrl, 'CREATE TRIGGER refuse_member_budget BEFORE INSERT ON budgets FOR EACH ROW EXECUTE FUNCTION refuse_member_budget()');
    try {
      const body = { team_id: 'team-one-tx', team_alias: 'refused', team_member_budget: 5,
                     members_with_roles: [{ role: 'user', user_id: 'one-tx-member' }] };
      const r = await post('/team/new', body);
      assertError(r, 500);
      assert.doesNotMatch(r.text, /refused by the test/, 'the database\'s text stays in the log');
      assertError(await get('/team/info?team_id=team-one-tx'), 404);
      assert.equal(psql(dbUrl, "SELECT count(*) FROM users WHERE user_id = 'one-tx-member'"), '0');
      assert.equal(audit('teams', 'team-one-tx'), '');

      await ok(post('/team/new', { team_id: 'team-one-tx-2', team_alias: 'kept' }));
      const u = await post('/team/update', { team_id: 'team-one-tx-2', team_alias: 'refused', max_budget: 7,
                                             team_member_budget: 5, members_with_roles: [{ role: 'user', user_id: 'one-tx-member' }] });
      assertError(u, 500);
      const kept = (await ok(get('/team/info?team_id=team-one-tx-2'))).team_info;
      assert.equal(kept.team_alias, 'kept');
      assert.equal(kept.max_budget, null);
      assert.deepEqual(kept.members_with_roles, []);
      assert.equal(kept.team_member_budget_table, null);
    } finally {
      psql(dbUrl, 'DROP TRIGGER refuse_member_budget ON budgets');
    }
    // The same request again: one team, with its budget and member.
    const t = await ok(post('/team/new', { team_id: 'team-one-tx', team_alias: 'refused', team_member_budget: 5,
                                           members_with_roles: [{ role: 'user', user_id: 'one-tx-member' }] }));
    assert.match(t.metadata.team_member_budget_id, /^team-refused-budget-[0-9a-f]{32}$/);
    assert.deepEqual(t.members_with_roles, [{ role: 'user', user_id: 'one-tx-member', user_email: null }]);
    const info = (await ok(get('/team/info?team_id=team-one-tx'))).team_info;
    assert.equal(info.team_member_budget_table.max_budget, 5);
    assert.equal(audit('teams', 'team-one-tx'), 'created:proxy_admin,updated:proxy_admin,member_added:proxy_admin');
  });

  test('/team/update with tags alone keeps the rest of the metadata; a metadata patch replaces it', async () => {
    await ok(post('/team/new', { team_id: 'team-tags', metadata: { a: 1 }, tags: ['x'] }));
    const update = async (body) => (await ok(post('/team/update', { team_id: 'team-tags', ...body }))).data.metadata;
    assert.deepEqual(await update({ tags: ['y'] }), { a: 1, tags: ['y'] }, 'tags replaced, "a" kept');
    assert.deepEqual(await update({ max_budget: 5 }), { a: 1, tags: ['y'] }, 'no tags: metadata untouched');
    assert.deepEqual(await update({ metadata: { b: 2 }, tags: ['z'] }), { b: 2, tags: ['z'] });
    assert.deepEqual(await update({ metadata: { c: 3 } }), { c: 3 }, 'a metadata patch replaces');
    assertError(await post('/team/update', { team_id: 'team-tags', tags: 'x' }), 422);
  });

  test('/user/new with an email another user has (any case): 409, nothing created', async () => {
    await ok(post('/user/new', { user_id: 'mail-1', user_email: 'Same@Example.com', auto_create_key: false }));
    const again = await post('/user/new', { user_id: 'mail-2', user_email: 'same@example.COM' });
    assertError(again, 409);
    assert.equal(again.json.error.message, 'User with email Same@Example.com already exists');
    assert.equal(again.json.error.param, 'user_email');
    assertError(await get('/user/info?user_id=mail-2'), 404);
    // Concurrent requests for one new email: exactly one user gets it.
    const racing = await Promise.all(['r1', 'r2', 'r3', 'r4'].map((id) =>
      post('/user/new', { user_id: `mail-${id}`, user_email: 'race@example.com', auto_create_key: false })));
    assert.deepEqual(racing.map((r) => r.status).sort(), [200, 409, 409, 409]);
    assert.equal(psql(dbUrl, "SELECT count(*) FROM users WHERE lower(user_email) = 'race@example.com'"), '1');
  });

  test('/organization/new, /info, /update (PATCH), /list, /delete (DELETE)', async () => {
    const o = await ok(post('/organization/new', { organization_alias: 'acme', models: ['a', 'b'], max_budget: 100, tpm_limit: 1000 }));
    assert.match(o.organization_id, /^[0-9a-f-]{36}$/);
    assert.equal(o.organization_alias, 'acme');
    assert.ok(o.budget_id, 'a budget row is created for the organisation');
    assert.equal(o.litellm_budget_table.max_budget, 100);
    assert.equal(o.litellm_budget_table.tpm_limit, 1000);

    const up = await call(gw, '/organization/update', { method: 'PATCH', body: { organization_id: o.organization_id, models: ['a'], max_budget: 50 } });
    assert.equal(up.status, 200, up.text);
    assert.deepEqual(up.json.models, ['a']);
    assert.equal(up.json.litellm_budget_table.max_budget, 50);

    const t = await ok(post('/team/new', { team_id: 'team-org', organization_id: o.organization_id }));
    assert.equal(t.organization_id, o.organization_id);
    assertError(await post('/team/new', { team_id: 'team-bad-org', organization_id: 'no-such-org' }), 400);

    const info = await ok(get(`/organization/info?organization_id=${o.organization_id}`));
    assert.deepEqual(info.teams.map((x) => x.team_id), ['team-org']);
    const list = await ok(get('/organization/list'));
    assert.ok(list.some((x) => x.organization_id === o.organization_id));
    assertError(await post('/organization/new', { models: ['a'] }), 422);

    const del = await call(gw, '/organization/delete', { method: 'DELETE', body: { organization_ids: [o.organization_id] } });
    assert.equal(del.status, 200, del.text);
    assert.equal(del.json[0].organization_id, o.organization_id);
    assert.equal(psql(dbUrl, `SELECT organization_id IS NULL FROM teams WHERE team_id = 'team-org'`), 't');
    assert.equal(audit('organizations', o.organization_id), 'created:proxy_admin,updated:proxy_admin,deleted:proxy_admin');
  });

  test('/organization/member_add, _update, _delete: memberships, users kept in step, one audited transaction', async () => {
    const o = await ok(post('/organization/new', { organization_alias: 'om-org' }));
    const org = o.organization_id;
    await ok(post('/user/new', { user_id: 'om-mail', user_email: 'om-mail@example.com', auto_create_key: false }));
    const added = await ok(post('/organization/member_add', {
      organization_id: org,
      member: [{ role: 'internal_user', user_id: 'om-new' }, { role: 'internal_user_viewer', user_email: 'om-mail@example.com' }],
      max_budget_in_organization: 7,
    }));
    assert.equal(added.organization_id, org);
    assert.deepEqual(added.updated_users.map((u) => [u.user_id, u.organization_id]), [['om-new', org], ['om-mail', org]]);
    assert.deepEqual(added.updated_organization_memberships.map((m) => [m.user_id, m.organization_id, m.user_role]),
      [['om-new', org, 'internal_user'], ['om-mail', org, 'internal_user_viewer']]);
    const budgetId = added.updated_organization_memberships[0].budget_id;
    assert.equal(psql(dbUrl, `SELECT max_budget FROM budgets WHERE budget_id = '${budgetId}'`), '7');
    assert.equal(psql(dbUrl, `SELECT user_role FROM users WHERE user_id = 'om-new'`), 'internal_user', 'a new user');
    const info = await ok(get(`/organization/info?organization_id=${org}`));
    assert.deepEqual(info.members.map((m) => m.user_id), ['om-mail', 'om-new']);
    assert.equal(audit('organization_memberships', `${org}:om-new`), 'created:proxy_admin');
    assert.equal(audit('users', 'om-new'), 'created:proxy_admin,updated:proxy_admin');

    // A member already there: 400, and nothing of the request is written.
    const again = await post('/organization/member_add', { organization_id: org, member: [{ role: 'internal_user', user_id: 'om-other' }, { role: 'org_admin', user_id: 'om-new' }] });
    assertError(again, 400);
    assert.equal(again.json.error.message, `User om-new is already a member of organization ${org}`);
    assert.equal(psql(dbUrl, `SELECT count(*) FROM users WHERE user_id = 'om-other'`), '0');
    assert.equal(psql(dbUrl, `SELECT user_role FROM organization_memberships WHERE user_id = 'om-new'`), 'internal_user');

    // member_update (PATCH): role and own budget; the membership with its budget row.
    const up = await call(gw, '/organization/member_update', { method: 'PATCH', body: { organization_id: org, user_email: 'om-mail@example.com', role: 'internal_user', max_budget_in_organization: 3 } });
    assert.equal(up.status, 200, up.text);
    assert.equal(up.json.user_id, 'om-mail');
    assert.equal(up.json.user_role, 'internal_user');
    assert.equal(up.json.litellm_budget_table.max_budget, 3);
    assert.equal(audit('organization_memberships', `${org}:om-mail`), 'created:proxy_admin,updated:proxy_admin');

    // member_delete (DELETE): the deleted row; the user leaves the organisation.
    const del = await call(gw, '/organization/member_delete', { method: 'DELETE', body: { organization_id: org, user_id: 'om-mail' } });
    assert.equal(del.status, 200, del.text);
    assert.equal(del.json.user_id, 'om-mail');
    assert.equal(psql(dbUrl, `SELECT count(*) FROM organization_memberships WHERE user_id = 'om-mail'`), '0');
    assert.equal(psql(dbUrl, `SELECT organization_id IS NULL FROM users WHERE user_id = 'om-mail'`), 't');
    assert.equal(audit('organization_memberships', `${org}:om-mail`), 'created:proxy_admin,updated:proxy_admin,deleted:proxy_admin');
  });

  test('an org_admin made by /organization/member_add gets the org_admin powers at once; losing the role takes them', async () => {
    const org = (await ok(post('/organization/new', { organization_alias: 'om-powers' }))).organization_id;
    await ok(post('/team/new', { team_id: 'om-elsewhere' }));
    const u = await ok(post('/user/new', { user_id: 'om-admin', user_role: 'internal_user' }));
    assertError(await post('/team/new', { team_alias: 'om-t0' }, u.key), 403);  // the key is cached as internal_user
    await ok(post('/organization/member_add', { organization_id: org, member: { role: 'org_admin', user_id: 'om-admin' } }));
    assert.equal(psql(dbUrl, `SELECT user_role || ',' || organization_id FROM users WHERE user_id = 'om-admin'`), `org_admin,${org}`);
    const t = await ok(post('/team/new', { team_alias: 'om-t1' }, u.key));
    assert.equal(t.organization_id, org, 'an org_admin makes teams in their organisation');
    assertError(await get('/team/info?team_id=om-elsewhere', u.key), 403);
    // ... and manages the members of their organisation, not of another.
    await ok(post('/organization/member_add', { organization_id: org, member: { role: 'internal_user', user_id: 'om-added-by-admin' } }, u.key));
    const other = (await ok(post('/organization/new', { organization_alias: 'om-other-org' }))).organization_id;
    assertError(await post('/organization/member_add', { organization_id: other, member: { role: 'internal_user', user_id: 'x' } }, u.key), 403, 'auth_error');
    // One organisation per org_admin: another's org_admin role is refused, nothing written.
    const conflict = await post('/organization/member_add', { organization_id: other, member: { role: 'org_admin', user_id: 'om-admin' } });
    assertError(conflict, 400);
    assert.match(conflict.json.error.message, /^User om-admin belongs to organization .*; a user can be org_admin of one organization only/);
    // Back to internal_user: the powers go at once.
    const down = await post('/organization/member_update', { organization_id: org, user_id: 'om-admin', role: 'internal_user' });
    assert.equal(down.status, 200, down.text);
    assert.equal(psql(dbUrl, `SELECT user_role FROM users WHERE user_id = 'om-admin'`), 'internal_user');
    assertError(await post('/team/new', { team_alias: 'om-t2' }, u.key), 403);
    // org_admin again, then removed: the user is an internal_user without an organisation.
    await ok(post('/organization/member_update', { organization_id: org, user_id: 'om-admin', role: 'org_admin' }));
    assert.equal((await ok(post('/team/new', { team_alias: 'om-t3' }, u.key))).organization_id, org);
    await ok(post('/organization/member_delete', { organization_id: org, user_id: 'om-admin' }));
    assert.equal(psql(dbUrl, `SELECT user_role || ',' || coalesce(organization_id, '-') FROM users WHERE user_id = 'om-admin'`), 'internal_user,-');
    assertError(await post('/team/new', { team_alias: 'om-t4' }, u.key), 403);
  });

  test('/organization/member_* refusals: who, unknown ids, LiteLLM\'s texts, malformed bodies', async () => {
    const org = (await ok(post('/organization/new', { organization_alias: 'om-refusals' }))).organization_id;
    const iu = await ok(post('/user/new', { user_id: 'om-iu', user_role: 'internal_user' }));
    const pv = await ok(post('/user/new', { user_id: 'om-pv', user_role: 'proxy_admin_viewer' }));
    const bare = await ok(post('/key/generate', {}));
    const body = { organization_id: org, member: { role: 'internal_user', user_id: 'om-x' } };
    for (const path of ['/organization/member_add', '/organization/member_update', '/organization/member_delete']) {
      assertError(await post(path, body, iu.key), 403, 'auth_error');
      assertError(await post(path, body, pv.key), 403, 'auth_error');
      assertError(await post(path, body, bare.key), 401, 'auth_error');
    }
    assert.equal(psql(dbUrl, `SELECT count(*) FROM users WHERE user_id = 'om-x'`), '0');
    // Unknown organisation: LiteLLM's 404 (add) and 400 (update).
    const noOrg = await post('/organization/member_add', { ...body, organization_id: 'om-no-org' });
    assertError(noOrg, 404);
    assert.equal(noOrg.json.error.message, 'Organization not found for organization_id=om-no-org');
    const noOrgUp = await post('/organization/member_update', { organization_id: 'om-no-org', user_id: 'om-iu', role: 'internal_user' });
    assertError(noOrgUp, 400);
    assert.equal(noOrgUp.json.error.message, 'Organization not found for organization_id=om-no-org');
    // Not a member, an unknown email.
    const notMember = await post('/organization/member_update', { organization_id: org, user_id: 'om-iu', role: 'org_admin' });
    assertError(notMember, 404);
    assert.equal(notMember.json.error.message, 'Member not found in organization for user_id=om-iu');
    assertError(await post('/organization/member_delete', { organization_id: org, user_id: 'om-iu' }), 404);
    const noMail = await post('/organization/member_update', { organization_id: org, user_email: 'nobody@example.com', role: 'org_admin' });
    assertError(noMail, 400);
    assert.match(noMail.json.error.message, /^Unique user not found for user_email=nobody@example.com\./);
    // The body: 422 naming the field; malformed JSON 400.
    const badRole = await post('/organization/member_add', { organization_id: org, member: { role: 'proxy_admin', user_id: 'om-x' } });
    assertError(badRole, 422);
    assert.equal(badRole.json.error.param, 'member.role');
    const noIds = await post('/organization/member_add', { organization_id: org, member: [{ role: 'internal_user' }] });
    assertError(noIds, 422);
    assert.equal(noIds.json.error.param, 'member[0]');
    assertError(await post('/organization/member_add', { organization_id: org }), 422);
    assertError(await post('/organization/member_add', { member: body.member }), 422);
    assertError(await post('/organization/member_add', { ...body, max_budget_in_organization: -1 }), 422);
    assertError(await post('/organization/member_update', { organization_id: org, role: 'internal_user' }), 422);
    assertError(await post('/organization/member_add', '{"organization_id":'), 400);
    assert.equal(psql(dbUrl, `SELECT count(*) FROM users WHERE user_id = 'om-x'`), '0');
    // An org_admin may not change a proxy admin's membership (LiteLLM's 403); a proxy admin may.
    const oa = await ok(post('/user/new', { user_id: 'om-oa', user_role: 'internal_user' }));
    await ok(post('/organization/member_add', { organization_id: org, member: [{ role: 'org_admin', user_id: 'om-oa' }, { role: 'internal_user', user_id: 'om-pv' }] }));
    const admin = await post('/organization/member_update', { organization_id: org, user_id: 'om-pv', role: 'org_admin' }, oa.key);
    assertError(admin, 403, 'auth_error');
    assert.equal(admin.json.error.message, 'Only PROXY_ADMIN may modify the organization role of a user who is a global PROXY_ADMIN.');
    assert.equal((await ok(post('/organization/member_update', { organization_id: org, user_id: 'om-pv', role: 'org_admin' }))).user_role, 'org_admin');
    assert.equal(psql(dbUrl, `SELECT user_role FROM users WHERE user_id = 'om-pv'`), 'proxy_admin_viewer', 'a global admin keeps their role');
  });

  test('/organization/new and /organization/update write the organisation and its budget in one transaction', async () => {
    // Constraints the test adds provoke a failure in the second write of each.
    const budgets = () => psql(dbUrl, 'SELECT count(*) FROM budgets');
    psql(dbUrl, "ALTER TABLE organizations ADD CONSTRAINT swy_test_org_alias CHECK (organization_alias <> 'refused-org')");
    psql(dbUrl, 'ALTER TABLE budgets ADD CONSTRAINT swy_test_budget CHECK (max_budget IS NULL OR max_budget <> 13.13)');
    try {
      // New: the budgets row is written first, then the organisation, which is refused.
      const before = budgets();
      assertError(await post('/organization/new', { organization_alias: 'refused-org', max_budget: 7 }), 400);
      assert.equal(budgets(), before, 'no budgets row left behind');
      assert.equal(psql(dbUrl, "SELECT count(*) FROM organizations WHERE organization_alias = 'refused-org'"), '0');
      // A new organisation whose id is taken leaves none either.
      const o = await ok(post('/organization/new', { organization_alias: 'tx-org', models: ['a'], max_budget: 3 }));
      const afterOne = budgets();
      assertError(await post('/organization/new', { organization_id: o.organization_id, organization_alias: 'again', max_budget: 4 }), 400);
      assert.equal(budgets(), afterOne);
      // Update: the organisation's row is written first, then its budget, which is refused.
      assertError(await post('/organization/update', { organization_id: o.organization_id, models: ['b'], max_budget: 13.13 }), 400);
      const info = await ok(get(`/organization/info?organization_id=${o.organization_id}`));
      assert.deepEqual(info.models, ['a'], 'the organisation is unchanged');
      assert.equal(info.litellm_budget_table.max_budget, 3);
      assert.equal(audit('organizations', o.organization_id), 'created:proxy_admin');
      // Without the failure both change together.
      const up = await ok(post('/organization/update', { organization_id: o.organization_id, models: ['b'], max_budget: 5 }));
      assert.deepEqual(up.models, ['b']);
      assert.equal(up.litellm_budget_table.max_budget, 5);
    } finally {
      psql(dbUrl, 'ALTER TABLE organizations DROP CONSTRAINT swy_test_org_alias');
      psql(dbUrl, 'ALTER TABLE budgets DROP CONSTRAINT swy_test_budget');
    }
  });

  test('/customer/new and /customer/update write the end user and its budget in one transaction', async () => {
    const budgets = () => psql(dbUrl, 'SELECT count(*) FROM budgets');
    psql(dbUrl, "ALTER TABLE end_users ADD CONSTRAINT swy_test_cust_alias CHECK (alias IS NULL OR alias <> 'refused-cust')");
    psql(dbUrl, 'ALTER TABLE budgets ADD CONSTRAINT swy_test_cust_budget CHECK (max_budget IS NULL OR max_budget <> 13.13)');
    try {
      // New: the end user is refused after its budgets row was written.
      const before = budgets();
      assertError(await post('/customer/new', { user_id: 'tx-cust-refused', alias: 'refused-cust', max_budget: 7 }), 400);
      assert.equal(budgets(), before, 'no budgets row left behind');
      assert.equal(psql(dbUrl, "SELECT count(*) FROM end_users WHERE user_id = 'tx-cust-refused'"), '0');
      // An end user without limits gets no budgets row; one with limits gets one.
      await ok(post('/customer/new', { user_id: 'tx-cust-plain' }));
      assert.equal(budgets(), before);
      const c = await ok(post('/customer/new', { user_id: 'tx-cust', alias: 'Acme', max_budget: 3 }));
      assert.equal(c.litellm_budget_table.max_budget, 3);
      const afterOne = budgets();
      // Its id taken: nothing more.
      assertError(await post('/customer/new', { user_id: 'tx-cust', max_budget: 4 }), 400);
      assert.equal(budgets(), afterOne);
      // Update: the end user's row is changed, then its budget is refused: neither stays.
      assertError(await post('/customer/update', { user_id: 'tx-cust', alias: 'Changed', max_budget: 13.13 }), 400);
      const info = await ok(get('/customer/info?end_user_id=tx-cust'));
      assert.equal(info.alias, 'Acme', 'the end user is unchanged');
      assert.equal(info.litellm_budget_table.max_budget, 3);
      // A refused end user row leaves its new budget unwritten too.
      assertError(await post('/customer/update', { user_id: 'tx-cust-plain', alias: 'refused-cust', max_budget: 2 }), 400);
      assert.equal(budgets(), afterOne);
      assert.equal((await ok(get('/customer/info?end_user_id=tx-cust-plain'))).budget_id, null);
      // Without a failure both change together; a first limit links a new budgets row.
      const up = await ok(post('/customer/update', { user_id: 'tx-cust', alias: 'Changed', max_budget: 5 }));
      assert.equal(up.alias, 'Changed');
      assert.equal(up.litellm_budget_table.max_budget, 5);
      const linked = await ok(post('/customer/update', { user_id: 'tx-cust-plain', max_budget: 2 }));
      assert.equal(linked.litellm_budget_table.max_budget, 2);
      assertError(await post('/customer/update', { user_id: 'tx-cust-none', max_budget: 2 }), 400);
    } finally {
      psql(dbUrl, 'ALTER TABLE end_users DROP CONSTRAINT swy_test_cust_alias');
      psql(dbUrl, 'ALTER TABLE budgets DROP CONSTRAINT swy_test_cust_budget');
    }
  });

  test('/budget/new, /budget/info, /budget/update, /budget/delete', async () => {
    const b = await ok(post('/budget/new', { budget_id: 'gold', max_budget: 5, rpm_limit: 10, budget_duration: '30d' }));
    assert.equal(b.budget_id, 'gold');
    assert.equal(b.max_budget, 5);
    // 30d: the 1st of the next month at midnight UTC (LiteLLM's standardized schedule).
    const reset = new Date(b.budget_reset_at);
    const now = new Date();
    assert.equal(reset.getTime(), Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1), b.budget_reset_at);
    const info = await ok(post('/budget/info', { budgets: ['gold'] }));
    assert.equal(info[0].rpm_limit, 10);
    assert.equal((await ok(get('/budget/info?budget_id=gold'))).max_budget, 5);
    const up = await ok(post('/budget/update', { budget_id: 'gold', max_budget: 7 }));
    assert.equal(up.max_budget, 7);
    assert.equal(up.rpm_limit, 10);
    const del = await ok(post('/budget/delete', { id: 'gold' }));
    assert.equal(del.budget_id, 'gold');
    assertError(await post('/budget/delete', { id: 'gold' }), 404);
    assert.equal(audit('budgets', 'gold'), 'created:proxy_admin,updated:proxy_admin,deleted:proxy_admin');
  });

  test('a budget row\'s changes reach the keys and end users that name it at once; its delete clears them', async () => {
    await ok(post('/budget/new', { budget_id: 'tight', max_budget: 0 }));
    const k = await ok(post('/key/generate', { budget_id: 'tight' }));
    await ok(post('/customer/new', { user_id: 'cust-tight', budget_id: 'tight' }));
    const master = (body) => call(gw, '/v1/chat/completions', { body: { model: 'a', messages: [{ role: 'user', content: 'hi' }], ...body } });
    assert.equal((await chat(k.key, 'a')).status, 429, 'the key is over its budget row');
    assert.equal((await master({ user: 'cust-tight' })).status, 429, 'the end user is over its budget row');
    await ok(post('/budget/update', { budget_id: 'tight', max_budget: 100 }));
    assert.equal((await chat(k.key, 'a')).status, 200, 'the raised budget applies to the key at once');
    assert.equal((await master({ user: 'cust-tight' })).status, 200, 'and to the end user');
    await ok(post('/budget/update', { budget_id: 'tight', max_budget: 0 }));
    assert.equal((await chat(k.key, 'a')).status, 429, 'lowered again: at once too');
    await ok(post('/budget/delete', { id: 'tight' }));
    assert.equal((await ok(get(`/key/info?key=${k.key}`))).info.budget_id, null);
    assert.equal((await chat(k.key, 'a')).status, 200, 'no budget row: no bound');
    // A new budget under the same id does not bound the key again.
    await ok(post('/budget/new', { budget_id: 'tight', max_budget: 0 }));
    assert.equal((await chat(k.key, 'a')).status, 200);
  });

  test('wrong field types: 422 naming the field, on every endpoint', async () => {
    for (const [path, body, field] of [
      ['/user/new', { models: 'a' }, 'models'],
      ['/user/new', { max_budget: 'lots' }, 'max_budget'],
      ['/user/update', { user_id: 'alice', tpm_limit: 1.5 }, 'tpm_limit'],
      ['/team/new', { max_budget: 'x' }, 'max_budget'],
      ['/team/new', { members_with_roles: [{ role: 'owner', user_id: 'z' }] }, 'members_with_roles'],
      ['/team/update', { team_id: 42 }, 'team_id'],
      ['/team/member_add', { team_id: 'team-m', member: 'x' }, 'member'],
      ['/organization/new', { organization_alias: 'o', models: 'a' }, 'models'],
      ['/organization/new', { organization_alias: 'o', max_budget: [] }, 'max_budget'],
      ['/budget/new', { tpm_limit: 1.5 }, 'tpm_limit'],
      ['/budget/new', { budget_duration: 'soon' }, 'budget_duration'],
      ['/user/delete', { user_ids: 'alice' }, 'user_ids'],
    ]) {
      const r = await post(path, body);
      assert.equal(r.status, 422, `${path} ${JSON.stringify(body)}: ${r.status} ${r.text}`);
      assert.equal(r.json.error.param, field, r.text);
      assert.deepEqual(openaiErrorProblems(r.json, 422), []);
    }
  });

  test('negative budgets and limits: 422 naming the field, on every endpoint that takes them', async () => {
    const t = await ok(post('/team/new', { team_alias: 'non-negative' }));
    for (const [path, body, field] of [
      ['/key/generate', { max_budget: -5 }, 'max_budget'],
      ['/key/generate', { max_parallel_requests: -1 }, 'max_parallel_requests'],
      ['/user/new', { user_id: 'neg-user', tpm_limit: -1 }, 'tpm_limit'],
      ['/team/new', { soft_budget: -0.5 }, 'soft_budget'],
      ['/team/update', { team_id: t.team_id, rpm_limit: -2 }, 'rpm_limit'],
      ['/team/member_add', { team_id: t.team_id, member: { role: 'user', user_id: 'neg-m' }, max_budget_in_team: -1 },
        'max_budget_in_team'],
      ['/organization/new', { organization_alias: 'neg-org', max_budget: -5 }, 'max_budget'],
      ['/budget/new', { max_parallel_requests: -3 }, 'max_parallel_requests'],
      ['/customer/new', { user_id: 'neg-customer', max_budget: -5 }, 'max_budget'],
    ]) {
      const r = await post(path, body);
      assertError(r, 422);
      assert.equal(r.json.error.param, field, `${path}: ${r.text}`);
      assert.match(r.json.error.message, new RegExp(`^${field} cannot be negative\\. Received: -`), r.text);
    }
    assertError(await get('/user/info?user_id=neg-user'), 404);
    const members = await ok(get(`/team/info?team_id=${t.team_id}`));
    assert.deepEqual(members.team_memberships, [], 'nothing was added');
  });

  test('/model/info: model_list without secrets, model_info.id; filtered for a restricted key', async () => {
    const all = await ok(get('/model/info'));
    assert.deepEqual(all.data.map((m) => m.model_name), ['a', 'b', 'c']);
    const c = all.data[2];
    assert.equal(c.model_info.id, 'dep-c');
    assert.deepEqual(c.model_info.access_groups, ['beta']);
    assert.equal(c.litellm_params.model, 'openai/c');
    assert.ok(!('api_key' in c.litellm_params), JSON.stringify(c));
    assert.ok(!JSON.stringify(all).includes('sk-upstream-secret-c'));
    assert.ok(all.data[0].model_info.id, 'a generated id');
    const k = await ok(post('/key/generate', { models: ['b'] }));
    const mine = await ok(get('/model/info', k.key));
    assert.deepEqual(mine.data.map((m) => m.model_name), ['b']);
  });

  test('/model/info and /model_group/info: what the price map says of a model, per deployment and per group; filtered for a restricted key', async () => {
    // A price map of its own (LITELLM_MODEL_COST_MAP_URL: a local file), so the figures
    // below are the test's, not the shipped table's.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'swy-prices-'));
    const prices = path.join(dir, 'prices.json');
    fs.writeFileSync(prices, JSON.stringify({
      'test-wide': { max_tokens: 8000, max_input_tokens: 128000, max_output_tokens: 8000, input_cost_per_token: 2e-6,
                     output_cost_per_token: 8e-6, litellm_provider: 'openai', mode: 'chat', supports_vision: true,
                     supports_function_calling: true },
      'test-deep': { max_input_tokens: 200000, max_output_tokens: 4096, input_cost_per_token: 3e-6,
                     output_cost_per_token: 1.5e-5, litellm_provider: 'anthropic', mode: 'chat', supports_reasoning: true },
    }));
    const g2 = await startGateway({
      config: {
        model_list: [
          { model_name: 'smart', litellm_params: { model: 'openai/test-wide', mock_response: 'w', rpm: 10, tpm: 5000 } },
          { model_name: 'smart', litellm_params: { model: 'anthropic/test-deep', mock_response: 'd', rpm: 5 } },
          { model_name: 'plain', litellm_params: { model: 'openai/not-in-the-map', mock_response: 'p' },
            model_info: { max_input_tokens: 4096, mode: 'completion' } },
        ],
      },
      env: { DATABASE_URL: dbUrl, LITELLM_MODEL_COST_MAP_URL: prices },
    });
    const get2 = async (p, key) => {
      const r = await call(g2, p, { method: 'GET', key: key ?? g2.masterKey });
      assert.equal(r.status, 200, r.text);
      return r.json;
    };
    const info = await get2('/model/info');
    const wide = info.data.find((m) => m.litellm_params.model === 'openai/test-wide').model_info;
    assert.equal(wide.max_input_tokens, 128000);
    assert.equal(wide.max_tokens, 8000);
    assert.equal(wide.input_cost_per_token, 2e-6);
    assert.equal(wide.litellm_provider, 'openai');
    assert.equal(wide.mode, 'chat');
    assert.equal(wide.supports_vision, true);
    const plain = info.data.find((m) => m.model_name === 'plain').model_info;
    assert.equal(plain.max_input_tokens, 4096, 'the config\'s own model_info');
    assert.equal(plain.mode, 'completion');
    assert.ok(!('input_cost_per_token' in plain), JSON.stringify(plain));

    const groups = await get2('/model_group/info');
    assert.deepEqual(groups.data.map((g) => g.model_group), ['smart', 'plain']);
    const smart = groups.data[0];
    assert.deepEqual(smart.providers, ['openai', 'anthropic']);
    assert.equal(smart.max_input_tokens, 200000);
    assert.equal(smart.max_output_tokens, 8000);
    assert.equal(smart.input_cost_per_token, 3e-6);
    assert.equal(smart.output_cost_per_token, 1.5e-5);
    assert.equal(smart.rpm, 15);
    assert.equal(smart.tpm, 5000);
    assert.equal(smart.mode, 'chat');
    assert.equal(smart.supports_vision, true);
    assert.equal(smart.supports_function_calling, true);
    assert.equal(smart.supports_reasoning, true);
    assert.equal(smart.supports_web_search, false);
    const p = groups.data[1];
    assert.equal(p.mode, 'completion');
    assert.equal(p.max_input_tokens, 4096);
    assert.equal(p.input_cost_per_token, null);
    assert.equal(p.rpm, null);
    assert.deepEqual((await get2('/model_group/info?model_group=smart')).data.map((g) => g.model_group), ['smart']);
    assert.deepEqual((await get2('/model_group/info?model_group=nope')).data, []);

    // A key limited to one group sees that group only.
    const k = await ok(post('/key/generate', { models: ['plain'] }));
    assert.deepEqual((await get2('/model_group/info', k.key)).data.map((g) => g.model_group), ['plain']);
    assert.deepEqual((await get2('/model_group/info?model_group=smart', k.key)).data, []);
    assert.equal((await call(g2, '/model_group/info', { method: 'GET', key: 'sk-not-a-key' })).status, 401);
    await g2.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('team models restrict its keys: 403 team_model_access_denied, /v1/models filtered, updates apply at once', async () => {
    await ok(post('/team/new', { team_id: 'team-r', models: ['a'], model_aliases: { fast: 'a' } }));
    const k = await ok(post('/key/generate', { team_id: 'team-r' }));
    assert.equal((await chat(k.key, 'a')).status, 200);
    const denied = await chat(k.key, 'b');
    assertError(denied, 403, 'team_model_access_denied');
    assert.equal(denied.json.error.param, 'model');
    assert.match(denied.json.error.message, /team not allowed to access model\. This team can only access models=\['a'\]\. Tried to access b/);
    assert.deepEqual(await modelsOf(k.key), ['a']);
    const aliased = await chat(k.key, 'fast');
    assert.equal(aliased.status, 200, aliased.text);
    assert.equal(aliased.json.choices[0].message.content, 'from a', 'team model_aliases route fast -> a');

    // The key's own list is checked first; then the team's.
    const narrow = await ok(post('/key/generate', { team_id: 'team-r', models: ['a'] }));
    assertError(await chat(narrow.key, 'b'), 403, 'key_model_access_denied');
    const wider = await ok(post('/key/generate', { team_id: 'team-r', models: ['b'] }));
    assertError(await chat(wider.key, 'b'), 403, 'team_model_access_denied');

    await ok(post('/team/update', { team_id: 'team-r', models: ['a', 'b'] }));
    assert.equal((await chat(k.key, 'b')).status, 200, 'the cached key saw the team change at once');
    assert.deepEqual(await modelsOf(k.key), ['a', 'b']);

    await ok(post('/team/update', { team_id: 'team-r', blocked: true }));
    assertError(await chat(k.key, 'a'), 401);
    await ok(post('/team/update', { team_id: 'team-r', blocked: false }));
    assert.equal((await chat(k.key, 'a')).status, 200);
    assert.equal((await ok(post('/team/block', { team_id: 'team-r' }))).blocked, true);
    const blocked = await chat(k.key, 'a');
    assertError(blocked, 401, 'auth_error');
    assert.match(blocked.json.error.message, /Team=team-r is blocked/);
    assert.equal((await ok(post('/team/unblock', { team_id: 'team-r' }))).blocked, false);
    assert.equal((await chat(k.key, 'a')).status, 200);
    assertError(await post('/team/block', { team_id: 'nope' }), 404);
  });

  test('wildcard entries in key and team models match whole names, as LiteLLM reads them', async () => {
    await ok(post('/team/new', { team_id: 'team-w', models: ['c*', '*b'] }));
    const k = await ok(post('/key/generate', { team_id: 'team-w' }));
    assert.equal((await chat(k.key, 'b')).status, 200);
    assert.equal((await chat(k.key, 'c')).status, 200);
    assertError(await chat(k.key, 'a'), 403, 'team_model_access_denied');
    assert.deepEqual(await modelsOf(k.key), ['b', 'c']);
    const narrow = await ok(post('/key/generate', { team_id: 'team-w', models: ['b*'] }));
    assert.equal((await chat(narrow.key, 'b')).status, 200);
    assertError(await chat(narrow.key, 'c'), 403, 'key_model_access_denied');
    assert.deepEqual(await modelsOf(narrow.key), ['b']);
  });

  test('user and organisation models, all-team-models, access groups, key aliases', async () => {
    // The user's models only (those of /user/new also go to its key, as LiteLLM).
    await ok(post('/user/new', { user_id: 'ursula', models: ['a'], auto_create_key: false }));
    const u = await ok(post('/key/generate', { user_id: 'ursula' }));
    assertError(await chat(u.key, 'b'), 403, 'user_model_access_denied');
    await ok(post('/user/update', { user_id: 'ursula', models: [] }));
    assert.equal((await chat(u.key, 'b')).status, 200, 'user change applied at once');

    const o = await ok(post('/organization/new', { organization_alias: 'small', models: ['b'] }));
    const ok1 = await ok(post('/key/generate', { organization_id: o.organization_id }));
    assertError(await chat(ok1.key, 'a'), 403, 'org_model_access_denied');
    assert.equal((await chat(ok1.key, 'b')).status, 200);

    await ok(post('/team/new', { team_id: 'team-all', models: ['b', 'c'] }));
    const allTeam = await ok(post('/key/generate', { team_id: 'team-all', models: ['all-team-models'] }));
    assert.deepEqual(await modelsOf(allTeam.key), ['b', 'c']);
    assertError(await chat(allTeam.key, 'a'), 403, 'team_model_access_denied');

    const beta = await ok(post('/key/generate', { models: ['beta'] }));
    assert.deepEqual(await modelsOf(beta.key), ['c'], 'access group beta = [c]');
    assert.equal((await chat(beta.key, 'c')).status, 200);
    assertError(await chat(beta.key, 'a'), 403, 'key_model_access_denied');

    const al = await ok(post('/key/generate', { models: ['b'], aliases: { mine: 'b' } }));
    const r = await chat(al.key, 'mine');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.choices[0].message.content, 'from b');
  });

  test('roles: internal_user manages only their own keys; viewers cannot write', async () => {
    const iu = await ok(post('/user/new', { user_id: 'ivan', user_role: 'internal_user' }));
    const other = await ok(post('/key/generate', { user_id: 'someone-else' }));

    // /key/generate forces user_id to the caller.
    const mine = await ok(post('/key/generate', { key_alias: 'ivan-2' }, iu.key));
    assert.equal(mine.user_id, 'ivan');
    assertError(await post('/key/generate', { user_id: 'someone-else' }, iu.key), 403);
    // Their own keys: info, update, list, delete.
    assert.equal((await ok(get(`/key/info?key=${mine.key}`, iu.key))).info.user_id, 'ivan');
    assert.equal((await ok(post('/key/update', { key: mine.key, key_alias: 'ivan-3' }, iu.key))).key_alias, 'ivan-3');
    const list = await ok(get('/key/list?return_full_object=true', iu.key));
    assert.deepEqual(list.keys.map((k) => k.user_id), ['ivan', 'ivan']);
    // Not someone else's.
    assertError(await get(`/key/info?key=${other.key}`, iu.key), 403);
    assertError(await post('/key/update', { key: other.key, max_budget: 1 }, iu.key), 403);
    assertError(await post('/key/delete', { keys: [other.key] }, iu.key), 403);
    assertError(await get('/key/list?user_id=someone-else', iu.key), 403);
    assertError(await post('/key/block', { key: mine.key }, iu.key), 403);
    // Not admin routes.
    assertError(await post('/team/new', {}, iu.key), 403, 'auth_error');
    assertError(await get('/user/list', iu.key), 403);
    assertError(await get('/user/info?user_id=alice', iu.key), 403);
    assert.equal((await ok(get('/user/info', iu.key))).user_id, 'ivan');
    assert.deepEqual((await ok(post('/key/delete', { keys: [mine.key] }, iu.key))).deleted_keys, [mine.token]);
    assert.equal((await chat(other.key, 'a')).status, 200, 'the other key survived');

    // internal_user_viewer: reads own keys only.
    const v = await ok(post('/user/new', { user_id: 'vera', user_role: 'internal_user_viewer' }));
    assertError(await post('/key/generate', {}, v.key), 403, 'auth_error');
    assert.equal((await ok(get(`/key/info?key=${v.key}`, v.key))).info.user_id, 'vera');
    assertError(await get(`/key/info?key=${other.key}`, v.key), 403);

    // proxy_admin_viewer: reads everything, writes nothing.
    const pv = await ok(post('/user/new', { user_id: 'paul', user_role: 'proxy_admin_viewer' }));
    assert.ok((await ok(get('/user/list', pv.key))).total >= 3);
    assert.equal((await ok(get(`/key/info?key=${other.key}`, pv.key))).info.user_id, 'someone-else');
    assertError(await post('/team/new', {}, pv.key), 403);
    assertError(await post('/key/generate', {}, pv.key), 403);
    assertError(await post('/budget/new', {}, pv.key), 403);

    // A proxy_admin user's key manages like the master key.
    const pa = await ok(post('/user/new', { user_id: 'pam', user_role: 'proxy_admin' }));
    const t = await ok(post('/team/new', { team_alias: 'by-pam' }, pa.key));
    assert.equal(audit('teams', t.team_id), 'created:pam');

    // A key without a user: no management at all (401), but it may read itself.
    const bare = await ok(post('/key/generate', {}));
    assertError(await post('/team/new', {}, bare.key), 401, 'auth_error');
    assertError(await get('/key/list', bare.key), 401);
    assert.equal((await ok(get('/key/info', bare.key))).info.token, bare.token_id);

    // Promoting the user takes effect at once (cached keys of the user are invalidated).
    await ok(post('/user/update', { user_id: 'vera', user_role: 'internal_user' }));
    assert.equal((await ok(post('/key/generate', {}, v.key))).user_id, 'vera');
  });

  test('an internal_user cannot lift what an admin set on their own key, nor charge another organisation', async () => {
    const u = await ok(post('/user/new', { user_id: 'ines', user_role: 'internal_user' }));
    await ok(post('/organization/new', { organization_id: 'org-other', organization_alias: 'other', models: ['a'] }));
    await ok(post('/team/new', { team_id: 'team-ines', models: ['a'], members_with_roles: [{ role: 'user', user_id: 'ines' }] }));
    const k = await ok(post('/key/generate', {
      user_id: 'ines', team_id: 'team-ines', max_budget: 1, rpm_limit: 5, duration: '1h',
      metadata: { model_rpm_limit: { a: 2 }, owner: 'admin' },
    }));
    await ok(post('/key/block', { key: k.key }));
    const refused = {
      blocked: false, spend: -1000, max_budget: 1000, soft_budget: 10, budget_duration: '30d', budget_id: 'b-any',
      tpm_limit: 1e6, rpm_limit: 1e6, max_parallel_requests: 1000, model_max_budget: { a: 100 },
      organization_id: 'org-other', duration: '365d', team_id: null,
    };
    for (const [field, value] of Object.entries(refused)) {
      const r = await post('/key/update', { key: k.key, [field]: value }, u.key);
      assertError(r, 403, 'auth_error');
      assert.equal(r.json.error.param, field, JSON.stringify(r.json));
      const g = await post('/key/regenerate', { key: k.key, [field]: value }, u.key);
      assertError(g, 403, 'auth_error');
    }
    assertError(await post('/key/update', { key: k.key, metadata: { model_rpm_limit: {} } }, u.key), 403, 'auth_error');
    // What they may change: the alias, and metadata, whose per-model limits stay.
    const renamed = await ok(post('/key/update', { key: k.key, key_alias: 'ines-k', metadata: { mine: true } }, u.key));
    assert.equal(renamed.key_alias, 'ines-k');
    const info = (await ok(get(`/key/info?key=${k.key}`))).info;
    assert.deepEqual(info.metadata, { mine: true, model_rpm_limit: { a: 2 } });
    assert.equal(info.blocked, true);
    assert.equal(info.max_budget, 1);
    assert.equal(info.team_id, 'team-ines');
    // A new key of their own: their own limits, but no spend credit and no other organisation.
    assertError(await post('/key/generate', { spend: -1000 }, u.key), 403, 'auth_error');
    assertError(await post('/key/generate', { organization_id: 'org-other' }, u.key), 403, 'auth_error');
    assert.equal((await ok(post('/key/generate', { max_budget: 3, rpm_limit: 7 }, u.key))).max_budget, 3);
    // The master key changes all of it.
    assert.equal((await ok(post('/key/update', { key: k.key, blocked: false, max_budget: 2 }))).max_budget, 2);
  });

  test('team keys need the team admin role (or team_member_permissions): 401 team_member_permission_error', async () => {
    await ok(post('/team/new', { team_id: 'team-p', members_with_roles: [{ role: 'admin', user_id: 'tadmin' }, { role: 'user', user_id: 'tuser' }] }));
    const admin = await ok(post('/key/generate', { user_id: 'tadmin' }));
    const member = await ok(post('/key/generate', { user_id: 'tuser' }));
    const outsider = await ok(post('/user/new', { user_id: 'olive' }));
    const made = await ok(post('/key/generate', { team_id: 'team-p' }, admin.key));
    assert.equal(made.team_id, 'team-p');
    assert.equal(made.user_id, 'tadmin');
    assertError(await post('/key/generate', { team_id: 'team-p' }, member.key), 401, 'team_member_permission_error');
    assertError(await post('/key/generate', { team_id: 'team-p' }, outsider.key), 401, 'team_member_permission_error');
    assertError(await post('/key/update', { key: outsider.key, team_id: 'team-p' }, outsider.key), 401, 'team_member_permission_error');
    // A team that does not exist: LiteLLM's 400 for a caller who is not an admin; an admin
    // may name any team_id ("assigning team_id without using the team table", as there).
    const unknown = await post('/key/generate', { team_id: 'no-such-team-p' }, member.key);
    assertError(unknown, 400);
    assert.equal(unknown.json.error.message, 'Unable to find team object in database. Team ID: no-such-team-p');
    assert.equal(unknown.json.error.param, 'team_id');
    assert.equal((await ok(post('/key/generate', { team_id: 'no-such-team-p' }))).team_id, 'no-such-team-p');
    await ok(post('/team/update', { team_id: 'team-p', team_member_permissions: ['/key/generate'] }));
    assert.equal((await ok(post('/key/generate', { team_id: 'team-p' }, member.key))).team_id, 'team-p');
  });

  test('/team/permissions_update and /team/permissions_list: what the team\'s members may do with team keys, at once', async () => {
    await ok(post('/team/new', { team_id: 'team-perm', members_with_roles: [{ role: 'admin', user_id: 'perm-admin' }, { role: 'user', user_id: 'perm-user' }] }));
    const admin = await ok(post('/key/generate', { user_id: 'perm-admin' }));
    const member = await ok(post('/key/generate', { user_id: 'perm-user' }));
    await ok(post('/user/update', { user_id: 'perm-user', user_role: 'internal_user' }));
    const outsider = await ok(post('/user/new', { user_id: 'perm-out', user_role: 'internal_user' }));

    // None set: LiteLLM's defaults; every /key/* route is available.
    const listed = await ok(get('/team/permissions_list?team_id=team-perm'));
    assert.equal(listed.team_id, 'team-perm');
    assert.deepEqual(listed.team_member_permissions, ['/key/info', '/key/health']);
    for (const route of ['/key/generate', '/key/update', '/key/delete', '/key/bulk_update', '/key/{key}/regenerate']) {
      assert.ok(listed.all_available_permissions.includes(route), route);
    }
    assertError(await post('/key/generate', { team_id: 'team-perm' }, member.key), 401, 'team_member_permission_error');

    // The team's admin member grants /key/generate: the member's next call may make team keys.
    const updated = await ok(post('/team/permissions_update', { team_id: 'team-perm', team_member_permissions: ['/key/generate'] }, admin.key));
    assert.equal(updated.team_id, 'team-perm');
    assert.deepEqual(updated.team_member_permissions, ['/key/generate']);
    assert.equal(audit('teams', 'team-perm'), 'created:proxy_admin,member_added:proxy_admin,updated:perm-admin');
    assert.equal((await ok(post('/key/generate', { team_id: 'team-perm' }, member.key))).team_id, 'team-perm');
    assert.deepEqual((await ok(get('/team/permissions_list?team_id=team-perm', admin.key))).team_member_permissions, ['/key/generate']);

    // Who: not a plain member, nor an outsider (LiteLLM's 403); a viewer reads only.
    const refused = await post('/team/permissions_update', { team_id: 'team-perm', team_member_permissions: [] }, member.key);
    assertError(refused, 403, 'auth_error');
    assert.equal(refused.json.error.message, 'Call not allowed. User not proxy admin OR team admin. route=/team/permissions_update, team_id=team-perm');
    assertError(await get('/team/permissions_list?team_id=team-perm', outsider.key), 403, 'auth_error');
    const pv = await ok(post('/user/new', { user_id: 'perm-pv', user_role: 'proxy_admin_viewer' }));
    assert.deepEqual((await ok(get('/team/permissions_list?team_id=team-perm', pv.key))).team_member_permissions, ['/key/generate']);
    assertError(await post('/team/permissions_update', { team_id: 'team-perm', team_member_permissions: [] }, pv.key), 403);
    // Unknown team (LiteLLM's 404, before who), malformed bodies.
    const unknown = await post('/team/permissions_update', { team_id: 'no-such-team', team_member_permissions: [] }, member.key);
    assertError(unknown, 404);
    assert.equal(unknown.json.error.message, 'Team not found for team_id=no-such-team');
    assertError(await get('/team/permissions_list?team_id=no-such-team'), 404);
    assertError(await get('/team/permissions_list'), 422);
    assertError(await post('/team/permissions_update', { team_id: 'team-perm' }), 422);
    assertError(await post('/team/permissions_update', { team_id: 'team-perm', team_member_permissions: [1] }), 422);
    assertError(await post('/team/permissions_update', '{"team_id":'), 400);
    // Taking it back: the member is refused again.
    await ok(post('/team/permissions_update', { team_id: 'team-perm', team_member_permissions: [] }));
    assertError(await post('/key/generate', { team_id: 'team-perm' }, member.key), 401, 'team_member_permission_error');
  });

  test('org_admin manages the users and teams of their organisation only', async () => {
    const org = await ok(post('/organization/new', { organization_alias: 'org-a' }));
    await ok(post('/team/new', { team_id: 'team-elsewhere' }));
    const olga = await ok(post('/user/new', { user_id: 'olga', user_role: 'org_admin', organization_id: org.organization_id }));
    const t = await ok(post('/team/new', { team_alias: 'olga-team' }, olga.key));
    assert.equal(t.organization_id, org.organization_id, 'created inside their organisation');
    assertError(await post('/team/new', { organization_id: 'somewhere-else' }, olga.key), 403);
    assert.equal((await ok(get(`/team/info?team_id=${t.team_id}`, olga.key))).team_info.team_alias, 'olga-team');
    assertError(await get('/team/info?team_id=team-elsewhere', olga.key), 403);
    assertError(await post('/team/update', { team_id: 'team-elsewhere', team_alias: 'mine now' }, olga.key), 403);
    assert.deepEqual((await ok(get('/team/list', olga.key))).map((x) => x.team_id), [t.team_id]);
    const oscar = await ok(post('/user/new', { user_id: 'oscar' }, olga.key));
    assert.equal(oscar.organization_id, org.organization_id);
    assertError(await post('/user/new', { user_id: 'mallory', user_role: 'proxy_admin' }, olga.key), 403);
    assertError(await post('/user/update', { user_id: 'alice', user_alias: 'x' }, olga.key), 403);
    assertError(await post('/organization/new', { organization_alias: 'mine' }, olga.key), 403);
    assertError(await post('/budget/new', {}, olga.key), 403);
    assert.equal((await ok(get(`/organization/info?organization_id=${org.organization_id}`, olga.key))).organization_alias, 'org-a');
  });

  test('/team/delete: archived in deleted_teams with who, its keys deleted, audited', async () => {
    await ok(post('/team/new', { team_id: 'team-gone', team_alias: 'gone' }));
    await ok(post('/team/member_add', { team_id: 'team-gone', member: { user_id: 'gina' } }));
    const k = await ok(post('/key/generate', { team_id: 'team-gone' }));
    assert.equal((await chat(k.key, 'a')).status, 200);
    const del = await ok(post('/team/delete', { team_ids: ['team-gone'] }, undefined, { 'litellm-changed-by': 'ops-bot' }));
    assert.deepEqual(del.deleted_teams, ['team-gone']);
    assertError(await chat(k.key, 'a'), 401);
    assert.equal(psql(dbUrl, `SELECT deleted_by || '|' || litellm_changed_by || '|' || (row_data->>'team_alias') FROM deleted_teams WHERE team_id = 'team-gone'`),
      'ops-bot|ops-bot|gone');
    assert.equal(psql(dbUrl, `SELECT count(*) FROM deleted_verification_tokens WHERE token = '${k.token_id}'`), '1');
    assert.equal(audit('teams', 'team-gone'), 'created:proxy_admin,member_added:proxy_admin,deleted:ops-bot');
    assert.equal(psql(dbUrl, `SELECT changed_by_api_key FROM audit_log WHERE table_name = 'teams' AND object_id = 'team-gone' AND action = 'deleted'`).length, 64,
      'the hash of the calling key');
    assert.equal(psql(dbUrl, `SELECT array_length(teams, 1) IS NULL FROM users WHERE user_id = 'gina'`), 't');
    assertError(await post('/team/delete', { team_ids: ['team-gone'] }), 404);
  });
});

describe('team changes reach every instance (Redis)', {
  skip: !(SERVER_URL && process.env.SWITCHYARD_TEST_REDIS_URL)
    && 'SWITCHYARD_TEST_DATABASE_URL / SWITCHYARD_TEST_REDIS_URL not set (scripts/test.sh sets them)',
}, () => {
  const name = `swy_tenants2_${process.pid}_${Date.now()}`;
  let url;
  let a;
  let b;
  before(async () => {
    psql(SERVER_URL, `CREATE DATABASE ${name}`);
    url = withDatabase(SERVER_URL, name);
    const env = { DATABASE_URL: url, REDIS_URL: process.env.SWITCHYARD_TEST_REDIS_URL };
    const config = { model_list: [mockModel('a', 'from a'), mockModel('b', 'from b')] };
    a = await startGateway({ config, env });
    b = await startGateway({ config, env });
    await Promise.all([a, b].map((g) => g.proc.waitForStderr(/redis connected/, 15_000)));
    await Promise.all([a, b].map((g) => g.proc.waitForStderr(/schema up to date/, 15_000)));
  });
  after(async () => {
    await stopAll();
    if (url) psql(SERVER_URL, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  });

  test('a team restricted through instance A is enforced by instance B within 1 s', async () => {
    assert.equal((await call(a, '/team/new', { body: { team_id: 'shared' } })).status, 200);
    const gen = await call(a, '/key/generate', { body: { team_id: 'shared' } });
    assert.equal(gen.status, 200, gen.text);
    const body = { model: 'b', messages: [{ role: 'user', content: 'hi' }] };
    assert.equal((await call(b, '/v1/chat/completions', { key: gen.json.key, body })).status, 200, 'B caches the key');
    const up = await call(a, '/team/update', { body: { team_id: 'shared', models: ['a'] } });
    assert.equal(up.status, 200, up.text);
    const t0 = Date.now();
    let r;
    while (Date.now() - t0 < 1000) {
      r = await call(b, '/v1/chat/completions', { key: gen.json.key, body });
      if (r.status === 403) break;
      await new Promise((res) => { setTimeout(res, 20); });
    }
    assert.equal(r.status, 403, `B still allowed b ${Date.now() - t0} ms after the change: ${r.text}`);
    assert.equal(r.json.error.type, 'team_model_access_denied');
  });

  test('an org_admin made by /organization/member_add through instance A has the powers on instance B within 1 s', async () => {
    const org = await call(a, '/organization/new', { body: { organization_alias: 'shared-org' } });
    assert.equal(org.status, 200, org.text);
    const u = await call(a, '/user/new', { body: { user_id: 'shared-oa', user_role: 'internal_user' } });
    assert.equal(u.status, 200, u.text);
    const denied = await call(b, '/team/new', { key: u.json.key, body: { team_alias: 'shared-t0' } });
    assert.equal(denied.status, 403, 'B caches the key as an internal_user');
    const added = await call(a, '/organization/member_add', {
      body: { organization_id: org.json.organization_id, member: { role: 'org_admin', user_id: 'shared-oa' } },
    });
    assert.equal(added.status, 200, added.text);
    const t0 = Date.now();
    let r;
    while (Date.now() - t0 < 1000) {
      r = await call(b, '/team/new', { key: u.json.key, body: { team_alias: `shared-t${Date.now()}` } });
      if (r.status === 200) break;
      await new Promise((res) => { setTimeout(res, 20); });
    }
    assert.equal(r.status, 200, `B still refused the org_admin ${Date.now() - t0} ms after member_add: ${r.text}`);
    assert.equal(r.json.organization_id, org.json.organization_id);
  });
});
