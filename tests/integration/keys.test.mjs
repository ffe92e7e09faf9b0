// Virtual keys end to end: the /key/* management API on a real Postgres, and the
// keys it makes used through the official `openai` SDK (auth stage, model access,
// /v1/models filtering, block/delete/expiry, regenerate with a grace period), plus the
// archive and audit rows. Each test file run gets a fresh database on the server of
// SWITCHYARD_TEST_DATABASE_URL (skipped when unset; scripts/test.sh sets it).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';

import OpenAI from 'openai';

import {
  MASTER_KEY, SLOW, SOURCE_DIR, call, delay, makeTempDir, mockModel, openaiErrorProblems, startGateway, stopAll,
} from '../lib/gateway.mjs';

const SERVER_URL = process.env.SWITCHYARD_TEST_DATABASE_URL;
const skip = !SERVER_URL && 'SWITCHYARD_TEST_DATABASE_URL not set (scripts/test.sh sets it)';

// postgresql://u@h:p/db?x -> the same URL naming database `db`.
function withDatabase(url, db) {
  const u = new URL(url);
  u.pathname = `/${db}`;
  return u.toString();
}
function psql(url, sql) {
  return execFileSync('psql', ['-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1', url, '-c', sql], { encoding: 'utf8' }).trim();
}

const dbName = `swy_keys_${process.pid}_${Date.now()}`;
let dbUrl;
let gw;

function sdk(key) {
  return new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: key, maxRetries: 0, timeout: 20_000 });
}
const chat = (key, model = 'a') => sdk(key).chat.completions.create({ model, messages: [{ role: 'user', content: 'hi' }] });

async function generate(body = {}, headers = {}) {
  const r = await call(gw, '/key/generate', { body, headers });
  assert.equal(r.status, 200, r.text);
  return r.json;
}

// Expects the SDK call to fail with `status`; returns the error.
async function rejects(promise, status) {
  try {
    await promise;
  } catch (e) {
    assert.equal(e.status, status, `${e.status} ${e.message}`);
    return e;
  }
  assert.fail(`expected HTTP ${status}, the call succeeded`);
}

describe('virtual keys', { skip }, () => {
  before(async () => {
    psql(SERVER_URL, `CREATE DATABASE ${dbName}`);
    dbUrl = withDatabase(SERVER_URL, dbName);
    gw = await startGateway({
      config: { model_list: [mockModel('a', 'from a'), mockModel('b', 'from b')] },
      env: { DATABASE_URL: dbUrl },
    });
    // Ready once the migrations ran (readiness reports the database).
    for (let i = 0; i < 200; i += 1) {
      const r = await call(gw, '/health/readiness', { method: 'GET' });
      if (r.status === 200 && r.json?.db === 'connected') break;
      await delay(50);
    }
  });
  after(async () => {
    await stopAll();
    if (dbUrl) psql(SERVER_URL, `DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
  });

  test('/key/generate: sk- + 32 hex, key_name, token_id = sha256; the key works through the SDK', async () => {
    const k = await generate({ key_alias: 'first', metadata: { team: 'x' } });
    assert.match(k.key, /^sk-[0-9a-f]{32}$/);
    assert.equal(k.key_name, `sk-...${k.key.slice(-4)}`);
    assert.match(k.token_id, /^[0-9a-f]{64}$/);
    assert.equal(k.expires, null);
    assert.deepEqual(k.models, []);
    assert.deepEqual(k.metadata, { team: 'x' });
    assert.equal(k.key_alias, 'first');
    const stored = psql(dbUrl, `SELECT count(*) FROM verification_tokens WHERE token = '${k.token_id}'`);
    assert.equal(stored, '1');
    const plaintext = psql(dbUrl, `SELECT count(*) FROM verification_tokens WHERE token = '${k.key}' OR key_name = '${k.key}'`);
    assert.equal(plaintext, '0', 'the plaintext key is never stored');

    const r = await chat(k.key);
    assert.equal(r.choices[0].message.content, 'from a');
    const models = await sdk(k.key).models.list();
    assert.deepEqual(models.data.map((m) => m.id).sort(), ['a', 'b']);
  });

  test('a key limited to models [a]: 403 key_model_access_denied for b, models.list() shows only a', async () => {
    const k = await generate({ models: ['a'] });
    assert.equal((await chat(k.key, 'a')).choices[0].message.content, 'from a');
    const e = await rejects(chat(k.key, 'b'), 403);
    assert.equal(e.error?.type ?? e.type, 'key_model_access_denied');
    assert.equal(e.error?.param ?? e.param, 'model');
    assert.match(e.message, /key not allowed to access model\. This key can only access models=\['a'\]\. Tried to access b/);
    const models = await sdk(k.key).models.list();
    assert.deepEqual(models.data.map((m) => m.id), ['a']);
    const direct = await call(gw, '/v1/models/b', { method: 'GET', key: k.key });
    assert.equal(direct.status, 404, direct.text);
  });

  test('unknown key: 401 auth_error (OpenAI shape)', async () => {
    const r = await call(gw, '/v1/chat/completions', { key: 'sk-not-a-real-key-0000', body: { model: 'a', messages: [] } });
    assert.equal(r.status, 401, r.text);
    assert.deepEqual(openaiErrorProblems(r.json, 401), []);
    assert.equal(r.json.error.type, 'auth_error');
  });

  test('blocked key: 401, unblocked: works again (no cache delay)', async () => {
    const k = await generate();
    await chat(k.key);  // cached now
    let r = await call(gw, '/key/block', { body: { key: k.key } });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.blocked, true);
    const e = await rejects(chat(k.key), 401);
    assert.match(e.message, /blocked/);
    r = await call(gw, '/key/unblock', { body: { key: k.key } });
    assert.equal(r.status, 200, r.text);
    await chat(k.key);
  });

  test('deleted key: 401; the row is archived and the deletion audited with who', async () => {
    const k = await generate({ key_alias: 'doomed' });
    await chat(k.key);
    const r = await call(gw, '/key/delete', { body: { keys: [k.key] }, headers: { 'litellm-changed-by': 'ops-bot' } });
    assert.equal(r.status, 200, r.text);
    // Answers name a key by its hashed token, never its secret value.
    assert.deepEqual(r.json.deleted_keys, [k.token_id]);
    await rejects(chat(k.key), 401);
    assert.equal(psql(dbUrl, `SELECT deleted_by FROM deleted_verification_tokens WHERE token = '${k.token_id}'`), 'ops-bot');
    assert.equal(psql(dbUrl, `SELECT row_data->>'key_alias' FROM deleted_verification_tokens WHERE token = '${k.token_id}'`), 'doomed');
    assert.equal(psql(dbUrl, `SELECT string_agg(action || ':' || changed_by, ',' ORDER BY id) FROM audit_log WHERE object_id = '${k.token_id}'`),
      'created:proxy_admin,deleted:ops-bot');
    const again = await call(gw, '/key/delete', { body: { keys: [k.key] } });
    assert.equal(again.status, 404, again.text);
  });

  test('delete by key_aliases', async () => {
    const k = await generate({ key_alias: 'by-alias' });
    const r = await call(gw, '/key/delete', { body: { key_aliases: ['by-alias'] } });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json.deleted_keys, [k.token_id]);
    await rejects(chat(k.key), 401);
  });

  test('expired key (duration "1s"): 401 expired_key', async () => {
    const k = await generate({ duration: '1s' });
    assert.ok(Date.parse(k.expires) > Date.now() - 1000, k.expires);
    await chat(k.key);
    await delay(1200);
    const e = await rejects(chat(k.key), 401);
    assert.equal(e.error?.type ?? e.type, 'expired_key');
  });

  test('regenerate with grace_period: the old value works until the grace ends, the new one at once', async () => {
    const k = await generate({ models: ['a'] });
    await chat(k.key);
    const r = await call(gw, '/key/regenerate', { body: { key: k.key, grace_period: '2s' } });
    assert.equal(r.status, 200, r.text);
    const fresh = r.json.key;
    assert.match(fresh, /^sk-[0-9a-f]{32}$/);
    assert.notEqual(fresh, k.key);
    assert.equal(r.json.rotation_count, 1);
    assert.deepEqual(r.json.models, ['a'], 'settings are kept');
    await chat(fresh);
    await chat(k.key);  // inside the grace period
    await delay(2200);
    await rejects(chat(k.key), 401);
    await chat(fresh);
  });

  test('regenerate without grace: the old value stops at once', async () => {
    const k = await generate();
    await chat(k.key);
    const r = await call(gw, `/key/${k.key}/regenerate`, { body: {} });
    assert.equal(r.status, 200, r.text);
    await rejects(chat(k.key), 401);
    await chat(r.json.key);
  });

  test('regenerate to a value another key has: 400 as /key/generate, both keys unchanged', async () => {
    const a = await generate();
    const b = await generate({ key: 'sk-taken-by-b-0001' });
    const r = await call(gw, '/key/regenerate', { body: { key: a.key, new_key: b.key } });
    assert.equal(r.status, 400, r.text);
    assert.deepEqual(openaiErrorProblems(r.json, 400), [], r.text);
    assert.equal(r.json.error.message, 'A key with this value already exists', r.text);
    assert.equal(r.json.error.param, 'new_key', r.text);
    const path = await call(gw, `/key/${a.key}/regenerate`, { body: { new_key: b.key } });
    assert.equal(path.status, 400, path.text);
    await chat(a.key);
    await chat(b.key);
    const info = await call(gw, `/key/info?key=${a.key}`, { method: 'GET' });
    assert.equal(info.json.info.rotation_count, 0, info.text);
  });

  test('a value still valid in a grace period is refused as a new key value, by /key/generate and /key/regenerate', async () => {
    const a = await generate({ key: 'sk-graced-old-0001', models: ['a'] });
    const r = await call(gw, '/key/regenerate', { body: { key: a.key, grace_period: '1h' } });
    assert.equal(r.status, 200, r.text);
    const fresh = r.json.key;
    await chat(a.key);  // the old value works in its grace period

    const again = await call(gw, '/key/generate', { body: { key: a.key } });
    assert.equal(again.status, 400, again.text);
    assert.deepEqual(openaiErrorProblems(again.json, 400), [], again.text);
    assert.equal(again.json.error.message, 'A key with this value already exists', again.text);
    assert.equal(again.json.error.param, 'key', again.text);

    const b = await generate();
    const onto = await call(gw, '/key/regenerate', { body: { key: b.key, new_key: a.key } });
    assert.equal(onto.status, 400, onto.text);
    assert.equal(onto.json.error.param, 'new_key', onto.text);
    const back = await call(gw, '/key/regenerate', { body: { key: fresh, new_key: a.key } });
    assert.equal(back.status, 400, `not even the key's own old value: ${back.text}`);

    // The old value still reaches the regenerated key (models [a]), nothing else.
    const info = await call(gw, `/key/info?key=${a.key}`, { method: 'GET' });
    assert.equal(info.status, 200, info.text);
    assert.deepEqual(info.json.info.models, ['a']);
    await chat(b.key, 'b');
    assert.equal(psql(dbUrl, `SELECT count(*) FROM verification_tokens WHERE token = '${r.json.token_id}'`), '1');
  });

  test('key_type sets the key\'s allowed_routes as LiteLLM (llm_api, management, read_only), enforced', async () => {
    const llm = await generate({ key_type: 'llm_api' });
    assert.deepEqual(llm.allowed_routes, ['llm_api_routes']);
    await chat(llm.key);
    const denied = await call(gw, '/key/info', { method: 'GET', key: llm.key });
    assert.equal(denied.status, 403, denied.text);
    assert.deepEqual(openaiErrorProblems(denied.json, 403), [], denied.text);

    const ro = await generate({ key_type: 'read_only', allowed_routes: ['/v1/chat/completions'] });
    assert.deepEqual(ro.allowed_routes, ['info_routes'], 'the key_type replaces allowed_routes');
    assert.equal((await call(gw, '/key/info', { method: 'GET', key: ro.key })).status, 200);
    await rejects(chat(ro.key), 403);

    const mgmt = await generate({ key_type: 'management' });
    assert.deepEqual(mgmt.allowed_routes, ['management_routes']);
    await rejects(chat(mgmt.key), 403);

    const plain = await generate({ key_type: 'default', allowed_routes: ['/v1/chat/completions'] });
    assert.deepEqual(plain.allowed_routes, ['/v1/chat/completions'], 'default keeps allowed_routes');
    const bad = await call(gw, '/key/generate', { body: { key_type: 'superuser' } });
    assert.equal(bad.status, 422, bad.text);
    assert.equal(bad.json.error.param, 'key_type', bad.text);
  });

  test('a bad duration: the 422 lists every accepted unit, weeks included (and "2w" is accepted)', async () => {
    const r = await call(gw, '/key/generate', { body: { duration: '10 parsecs' } });
    assert.equal(r.status, 422, r.text);
    assert.equal(r.json.error.param, 'duration', r.text);
    assert.match(r.json.error.message, /"2w"/, r.text);
    const k = await generate({ duration: '2w' });
    const days = (Date.parse(k.expires) - Date.now()) / 86_400_000;
    assert.ok(days > 13.9 && days <= 14, k.expires);
  });

  test('/key/update with tags keeps the rest of the metadata; a metadata patch replaces it', async () => {
    const k = await generate({ metadata: { a: 1 }, tags: ['x'] });
    assert.deepEqual(k.metadata, { a: 1, tags: ['x'] });
    const update = async (body) => {
      const r = await call(gw, '/key/update', { body: { key: k.key, ...body } });
      assert.equal(r.status, 200, r.text);
      return r.json.metadata;
    };
    assert.deepEqual(await update({ tags: ['y'] }), { a: 1, tags: ['y'] }, 'tags replaced, "a" kept');
    assert.deepEqual(await update({ max_budget: 5 }), { a: 1, tags: ['y'] }, 'no tags: metadata untouched');
    assert.deepEqual(await update({ metadata: { b: 2 }, tags: ['z'] }), { b: 2, tags: ['z'] });
    assert.deepEqual(await update({ metadata: { c: 3 } }), { c: 3 }, 'a metadata patch replaces, as before');
    const plain = await generate({ tags: ['t'] });
    assert.deepEqual(plain.metadata, { tags: ['t'] });
  });

  test('a key_alias another key has is refused by /key/generate and /key/update (LiteLLM\'s 400)', async () => {
    const message = "Key with alias 'dup' already exists. Unique key aliases across all keys are required.";
    const first = await generate({ key_alias: 'dup' });
    const again = await call(gw, '/key/generate', { body: { key_alias: 'dup' } });
    assert.equal(again.status, 400, again.text);
    assert.deepEqual(openaiErrorProblems(again.json, 400), [], again.text);
    assert.equal(again.json.error.message, message);
    assert.equal(again.json.error.param, 'key_alias');

    const other = await generate({ key_alias: 'not-dup' });
    const moved = await call(gw, '/key/update', { body: { key: other.key, key_alias: 'dup' } });
    assert.equal(moved.status, 400, moved.text);
    assert.equal(moved.json.error.message, message);
    const own = await call(gw, '/key/update', { body: { key: first.key, key_alias: 'dup', max_budget: 3 } });
    assert.equal(own.status, 200, `a key may keep its own alias: ${own.text}`);
    const regen = await call(gw, '/key/regenerate', { body: { key: other.key, key_alias: 'dup' } });
    assert.equal(regen.status, 400, regen.text);
    assert.equal(psql(dbUrl, "SELECT count(*) FROM verification_tokens WHERE key_alias = 'dup'"), '1');

    // Concurrent requests for one new alias: exactly one gets it.
    const racing = await Promise.all(Array.from({ length: 8 }, () =>
      call(gw, '/key/generate', { body: { key_alias: 'raced' } })));
    assert.deepEqual(racing.map((r) => r.status).sort(), [200, 400, 400, 400, 400, 400, 400, 400]);
    assert.equal(psql(dbUrl, "SELECT count(*) FROM verification_tokens WHERE key_alias = 'raced'"), '1');
  });

  test('/key/info, /key/update (models, duration), /key/list pagination', async () => {
    const k = await generate({ key_alias: 'info-me', user_id: 'u-list' });
    let r = await call(gw, `/key/info?key=${k.key}`, { method: 'GET' });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.key, k.token_id, 'the answer names the key by its token');
    assert.ok(!r.text.includes(k.key), 'the key itself is not repeated');
    assert.equal(r.json.info.key_alias, 'info-me');
    assert.equal(r.json.info.token, k.token_id);

    await chat(k.key, 'b');
    r = await call(gw, '/key/update', { body: { key: k.key, models: ['a'], duration: '30d' } });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json.models, ['a']);
    assert.ok(Date.parse(r.json.expires) > Date.now() + 29 * 86400_000, r.json.expires);
    await rejects(chat(k.key, 'b'), 403);  // the update took effect at once
    // "-1": never expires again (LiteLLM's spelling on /key/update).
    r = await call(gw, '/key/update', { body: { key: k.key, duration: '-1' } });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.expires, null);

    await generate({ user_id: 'u-list' });
    await generate({ user_id: 'u-list' });
    r = await call(gw, '/key/list?user_id=u-list&page=1&size=2', { method: 'GET' });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.total_count, 3);
    assert.equal(r.json.total_pages, 2);
    assert.equal(r.json.current_page, 1);
    assert.equal(r.json.keys.length, 2);
    r = await call(gw, '/key/list?user_id=u-list&page=2&size=2&return_full_object=true', { method: 'GET' });
    assert.equal(r.json.keys.length, 1);
    assert.equal(r.json.keys[0].user_id, 'u-list');

    r = await call(gw, '/key/info?key=sk-nope', { method: 'GET' });
    assert.equal(r.status, 404, r.text);
  });

  test('validation: wrong field types name the field; custom keys must start with sk-', async () => {
    for (const [body, field] of [
      [{ models: 'a' }, 'models'], [{ max_budget: 'lots' }, 'max_budget'], [{ metadata: [] }, 'metadata'],
      [{ duration: '10 parsecs' }, 'duration'], [{ tpm_limit: 1.5 }, 'tpm_limit'], [{ key: 42 }, 'key'],
    ]) {
      const r = await call(gw, '/key/generate', { body });
      assert.ok(r.status === 422 || r.status === 400, `${JSON.stringify(body)}: ${r.status} ${r.text}`);
      assert.equal(r.json.error.param, field, r.text);
    }
    let r = await call(gw, '/key/generate', { body: { key: 'mykey-123' } });
    assert.equal(r.status, 400, r.text);
    assert.equal(r.json.error.param, 'key');
    r = await call(gw, '/key/generate', { body: { key: 'sk-custom-value-1' } });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.key, 'sk-custom-value-1');
    await chat('sk-custom-value-1');
    r = await call(gw, '/key/generate', { body: { key: 'sk-custom-value-1' } });
    assert.equal(r.status, 400, 'a duplicate custom key is refused');
  });

  test('a NUL character in a body or a query is a 400 naming it, not a database error', async () => {
    // Postgres' text and jsonb cannot hold U+0000: the write failed with a 500 that quoted
    // the database's message.
    for (const [path, body, param, where] of [
      ['/key/generate', { key_alias: 'a\u0000b' }, 'key_alias', 'key_alias'],
      ['/key/generate', { metadata: { x: '\u0000' } }, 'metadata', 'metadata.x'],
      ['/key/generate', { tags: ['ok', '\u0000'] }, 'tags', 'tags[1]'],
      ['/team/new', { team_alias: 't\u0000' }, 'team_alias', 'team_alias'],
      ['/user/new', { user_id: 'u\u0000' }, 'user_id', 'user_id'],
    ]) {
      const r = await call(gw, path, { body });
      assert.equal(r.status, 400, `${path} ${JSON.stringify(body)}: ${r.text}`);
      assert.equal(r.json.error.param, param, r.text);
      assert.ok(r.json.error.message.startsWith(`\`${where}\` contains a NUL character`), r.text);
      assert.doesNotMatch(r.text, /database error/);
    }
    const q = await call(gw, '/team/list?organization_id=%00', { method: 'GET' });
    assert.equal(q.status, 400, q.text);
    assert.match(q.json.error.message, /NUL character \(%00\)/);
    const fine = await call(gw, '/team/list?organization_id=%2500', { method: 'GET' });
    assert.equal(fine.status, 200, `an escaped "%00" is text: ${fine.text}`);
  });

  test('a write Postgres refuses is a 500 in LiteLLM\'s shape that does not quote the database; the log does', async () => {
    // A user_id too large for its primary key's index: Postgres refuses the row ("index
    // row size ... exceeds btree ... maximum"). Random text, so compression cannot save it.
    const huge = randomBytes(12_000).toString('hex');
    const r = await call(gw, '/user/new', { body: { user_id: huge, auto_create_key: false } });
    assert.equal(r.status, 500, r.text.slice(0, 300));
    assert.deepEqual(openaiErrorProblems(r.json), [], r.text.slice(0, 300));
    assert.equal(r.json.error.type, 'internal_server_error');
    assert.equal(r.json.error.code, '500');
    assert.equal(r.json.error.message, 'Internal Server Error, the database could not complete the request. The gateway\'s log has the details.');
    assert.doesNotMatch(r.text, /index row|btree|SQLSTATE|ERROR:|users_pkey/);
    // The database's own words are in the gateway's log, for the operator.
    await gw.proc.waitForStderr(/\/user\/new: database error: .*index row/, 10_000 * SLOW);
  });

  test('invalid UTF-8 in a query parameter is a 400 naming it, not a database error', async () => {
    // Postgres' text refuses the bytes: the lookups failed with a 500 quoting the database.
    for (const [path, param] of [
      ['/user/info?user_id=%ff', 'user_id'],
      ['/team/info?team_id=%ff', 'team_id'],
      ['/key/info?key=%ff', 'key'],
      ['/organization/info?organization_id=%ff', 'organization_id'],
      ['/customer/info?end_user_id=%ff', 'end_user_id'],
      ['/budget/info?budget_id=%ff', 'budget_id'],
      ['/team/list?user_id=%ff', 'user_id'],
      ['/key/list?key_alias=a%c3', 'key_alias'],
      ['/spend/logs?user_id=%ff', 'user_id'],
      ['/user/list?page=1&user_email=%ed%a0%80', 'user_email'],
    ]) {
      const r = await call(gw, path, { method: 'GET' });
      assert.equal(r.status, 400, `${path}: ${r.text}`);
      assert.deepEqual(openaiErrorProblems(r.json, 400), [], r.text);
      assert.equal(r.json.error.param, param, r.text);
      assert.match(r.json.error.message, /not valid UTF-8/, r.text);
    }
    const fine = await call(gw, '/key/list?key_alias=%C3%A9', { method: 'GET' });
    assert.equal(fine.status, 200, `an encoded "é" is text: ${fine.text}`);
  });

  test('a number too large for a double in a management body is a 400, not a 500', async () => {
    // nlohmann refuses 1e400 while parsing with out_of_range, which was not caught.
    for (const [path, text] of [
      ['/key/generate', '{"max_budget":1e400}'],
      ['/team/new', '{"max_budget":-1e400}'],
      ['/budget/new', '{"soft_budget":1e400}'],
    ]) {
      const r = await call(gw, path, { body: text });
      assert.equal(r.status, 400, `${path} ${text}: ${r.text}`);
      assert.deepEqual(openaiErrorProblems(r.json, 400), [], r.text);
      assert.equal(r.json.error.type, 'invalid_request_error', r.text);
      assert.match(r.json.error.message, /number out of range/, r.text);
    }
  });

  test('/key/bulk_update: each item as /key/update, one audited write each; the changes bind at the next request', async () => {
    const k1 = await generate({ key_alias: 'bulk-1' });
    const k2 = await generate({ key_alias: 'bulk-2' });
    await generate({ key_alias: 'bulk-taken' });
    assert.equal((await chat(k1.key)).choices[0].message.content, 'from a');  // both cached now
    assert.equal((await chat(k2.key)).choices[0].message.content, 'from a');
    const unknown = 'sk-bulk-no-such-key-0000';
    const r = await call(gw, '/key/bulk_update', {
      body: {
        keys: [
          { key: k1.key, rpm_limit: 1, max_budget: 10, tags: ['bulk'] },
          { key: k2.token_id, blocked: true },
          { key: unknown, max_budget: 1 },
          { key: k1.key, key_alias: 'bulk-taken' },
        ],
      },
    });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.total_requested, 4);
    assert.deepEqual(r.json.successful_updates.map((u) => u.key), [k1.token_id, k2.token_id], 'named by hashed token');
    const [u1, u2] = r.json.successful_updates;
    assert.equal(u1.key_info.rpm_limit, 1);
    assert.equal(u1.key_info.max_budget, 10);
    assert.deepEqual(u1.key_info.metadata, { tags: ['bulk'] });
    assert.equal(u1.key_info.token, undefined, 'key_info without the token, as LiteLLM');
    assert.equal(u2.key_info.blocked, true);
    assert.ok(!r.text.includes(k1.key) && !r.text.includes(unknown), 'no secret key value in the answer');
    const [f1, f2] = r.json.failed_updates;
    assert.equal(r.json.failed_updates.length, 2);
    assert.equal(f1.key, createHash('sha256').update(unknown).digest('hex'));
    assert.equal(f1.failed_reason, `Key not found: ${f1.key}`);
    assert.equal(f1.key_info, null);
    assert.equal(f2.key, k1.token_id);
    assert.equal(f2.failed_reason, "Key with alias 'bulk-taken' already exists. Unique key aliases across all keys are required.");
    assert.equal(f2.key_info.key_alias, 'bulk-1', 'the refused item wrote nothing; key_info is the stored row');
    assert.equal(f2.key_info.rpm_limit, 1);

    // Each write is audited, as a /key/update (the refused one is not).
    const audited = (t) => psql(dbUrl, `SELECT string_agg(action, ',' ORDER BY id) FROM audit_log WHERE table_name = 'verification_tokens' AND object_id = '${t}'`);
    assert.equal(audited(k1.token_id), 'created,updated');
    assert.equal(audited(k2.token_id), 'created,updated');
    assert.equal(psql(dbUrl, `SELECT rpm_limit || ',' || max_budget || ',' || key_alias FROM verification_tokens WHERE token = '${k1.token_id}'`), '1,10,bulk-1');

    // The cached keys reloaded: the new rpm_limit and the block bind at once.
    assert.equal((await chat(k1.key)).choices[0].message.content, 'from a');
    await rejects(chat(k1.key), 429);
    const e = await rejects(chat(k2.key), 401);
    assert.equal(e.error?.type ?? e.type, 'auth_error');
  });

  test('/key/bulk_update refusals: who may call it, the body\'s shape, LiteLLM\'s limits', async () => {
    const target = await generate();
    const body = { keys: [{ key: target.key, max_budget: 5 }] };
    const expectError = (r, status, message) => {
      assert.equal(r.status, status, r.text);
      assert.deepEqual(openaiErrorProblems(r.json, status), []);
      if (message) assert.equal(r.json.error.message, message);
    };
    const iu = (await call(gw, '/user/new', { body: { user_id: 'bulk-iu', user_role: 'internal_user' } })).json;
    const viewer = (await call(gw, '/user/new', { body: { user_id: 'bulk-pv', user_role: 'proxy_admin_viewer' } })).json;
    const own = await generate({ user_id: 'bulk-iu' });
    // Proxy admins only: an internal user gets LiteLLM's 403 even for their own key.
    const denied = await call(gw, '/key/bulk_update', { key: iu.key, body: { keys: [{ key: own.key, max_budget: 5 }] } });
    expectError(denied, 403, 'Only proxy admins can perform bulk key updates');
    assert.equal(denied.json.error.type, 'auth_error');
    expectError(await call(gw, '/key/bulk_update', { key: viewer.key, body }), 403);
    expectError(await call(gw, '/key/bulk_update', { key: target.key, body }), 401);
    expectError(await call(gw, '/key/bulk_update', { key: null, body }), 401);
    // The body: keys required, each item with a string key (422 naming it); none, or more
    // than 500, LiteLLM's 400s; malformed JSON a 400.
    expectError(await call(gw, '/key/bulk_update', { body: {} }), 422);
    expectError(await call(gw, '/key/bulk_update', { body: { keys: {} } }), 422);
    const noKey = await call(gw, '/key/bulk_update', { body: { keys: [{ key: target.key }, { max_budget: 1 }] } });
    expectError(noKey, 422);
    assert.equal(noKey.json.error.param, 'keys[1].key');
    expectError(await call(gw, '/key/bulk_update', { body: { keys: [] } }), 400, 'No keys provided for update');
    const many = Array.from({ length: 501 }, () => ({ key: target.key, max_budget: 1 }));
    expectError(await call(gw, '/key/bulk_update', { body: { keys: many } }), 400,
      'Maximum 500 keys can be updated at once. Found 501 keys.');
    const bad = await call(gw, '/key/bulk_update', { body: '{"keys": [' });
    expectError(bad, 400);
    assert.match(bad.json.error.message, /^Invalid JSON in request body/);
    // An item /key/update would refuse is refused the same way, the others written.
    const typed = await call(gw, '/key/bulk_update', { body: { keys: [{ key: target.key, max_budget: -1 }, { key: target.key, rpm_limit: 7 }] } });
    assert.equal(typed.status, 200, typed.text);
    assert.equal(typed.json.failed_updates[0].failed_reason, 'max_budget cannot be negative. Received: -1');
    assert.equal(typed.json.failed_updates[0].key_info.max_budget, null);
    assert.equal(typed.json.successful_updates[0].key_info.rpm_limit, 7);
    assert.equal(psql(dbUrl, `SELECT max_budget IS NULL FROM verification_tokens WHERE token = '${target.token_id}'`), 't',
      'nothing written by a refused request');
  });

  test('/v2/key/info: several keys in one call, as /key/info shows one; unknown keys left out; own keys only for users', async () => {
    const a = await generate({ key_alias: 'v2-a' });
    const b = await generate({ key_alias: 'v2-b' });
    const unknown = 'sk-v2-no-such-key-0000';
    const r = await call(gw, '/v2/key/info', { body: { keys: [b.key, a.token_id, unknown, b.token_id] } });
    assert.equal(r.status, 200, r.text);
    const unknownHash = createHash('sha256').update(unknown).digest('hex');
    assert.deepEqual(r.json.key, [b.token_id, a.token_id, unknownHash], 'the keys asked, by hashed token, each once');
    assert.deepEqual(r.json.info.map((k) => k.key_alias), ['v2-b', 'v2-a']);
    const one = (await call(gw, `/key/info?key=${a.key}`, { method: 'GET' })).json.info;
    assert.deepEqual(r.json.info[1], one, 'the rows /key/info shows');
    assert.ok(!r.text.includes(b.key), 'no secret key value in the answer');
    assert.deepEqual((await call(gw, '/v2/key/info', { body: { keys: [unknown] } })).json, { key: [unknownHash], info: [] });

    const iu = (await call(gw, '/user/new', { body: { user_id: 'v2-iu', user_role: 'internal_user' } })).json;
    const viewer = (await call(gw, '/user/new', { body: { user_id: 'v2-pv', user_role: 'proxy_admin_viewer' } })).json;
    const mine = await generate({ user_id: 'v2-iu' });
    const own = await call(gw, '/v2/key/info', { key: iu.key, body: { keys: [mine.key, iu.key] } });
    assert.equal(own.status, 200, own.text);
    assert.deepEqual(own.json.info.map((k) => k.user_id), ['v2-iu', 'v2-iu']);
    const other = await call(gw, '/v2/key/info', { key: iu.key, body: { keys: [mine.key, a.key] } });
    assert.equal(other.status, 403, other.text);
    assert.equal(other.json.error.type, 'auth_error');
    assert.equal((await call(gw, '/v2/key/info', { key: viewer.key, body: { keys: [a.key] } })).json.info[0].key_alias, 'v2-a');
    // A key without a user reads itself only, as with /key/info.
    assert.equal((await call(gw, '/v2/key/info', { key: a.key, body: { keys: [a.key] } })).json.info[0].token, a.token_id);
    assert.equal((await call(gw, '/v2/key/info', { key: a.key, body: { keys: [b.key] } })).status, 403);
    assert.equal((await call(gw, '/v2/key/info', { key: null, body: { keys: [b.key] } })).status, 401);

    // No keys: LiteLLM's 422 and words; a wrong type 422; malformed JSON 400; GET 405.
    for (const body of [{}, { keys: null }, { keys: [] }]) {
      const none = await call(gw, '/v2/key/info', { body });
      assert.equal(none.status, 422, none.text);
      assert.equal(none.json.error.message, 'Malformed request. No keys passed in.');
      assert.equal(none.json.error.param, 'keys');
    }
    assert.equal((await call(gw, '/v2/key/info', { body: { keys: [1] } })).status, 422);
    assert.equal((await call(gw, '/v2/key/info', { body: '{"keys":' })).status, 400);
    assert.equal((await call(gw, '/v2/key/info', { method: 'GET' })).status, 405);
  });

  test('/key/health: the calling key\'s logging callbacks; LiteLLM\'s answer for a key without any', async () => {
    const k = await generate({ metadata: { team: 'x' } });
    const plain = await call(gw, '/key/health', { key: k.key });
    assert.equal(plain.status, 200, plain.text);
    assert.deepEqual(plain.json, { key: 'healthy', logging_callbacks: null });
    assert.deepEqual((await call(gw, '/key/health', {})).json, { key: 'healthy', logging_callbacks: null }, 'the master key');
    // A user's key, any role, checks itself too.
    const viewer = (await call(gw, '/user/new', { body: { user_id: 'health-v', user_role: 'internal_user_viewer' } })).json;
    assert.deepEqual((await call(gw, '/key/health', { key: viewer.key })).json, { key: 'healthy', logging_callbacks: null });

    // Key-based logging callbacks: this gateway does not run them, and says so.
    await call(gw, '/key/update', { body: { key: k.key, metadata: { logging: [{ callback_name: 'langfuse', callback_type: 'success', callback_vars: {} }] } } });
    const named = await call(gw, '/key/health', { key: k.key });
    assert.equal(named.status, 200, named.text);
    assert.equal(named.json.key, 'unhealthy');
    assert.deepEqual(named.json.logging_callbacks.callbacks, ['langfuse']);
    assert.equal(named.json.logging_callbacks.status, 'unhealthy');
    assert.match(named.json.logging_callbacks.details, /^Logging test failed: this gateway does not run a key's own logging callbacks/);
    // An entry without callback_name: LiteLLM's 500.
    await call(gw, '/key/update', { body: { key: k.key, metadata: { logging: [{ callback_type: 'success' }] } } });
    const broken = await call(gw, '/key/health', { key: k.key });
    assert.equal(broken.status, 500, broken.text);
    assert.deepEqual(openaiErrorProblems(broken.json, 500), []);
    assert.equal(broken.json.error.message, 'Key health check failed: callback_name is required in key_logging');
    // The metadata changed back: healthy at once.
    await call(gw, '/key/update', { body: { key: k.key, metadata: {} } });
    assert.deepEqual((await call(gw, '/key/health', { key: k.key })).json, { key: 'healthy', logging_callbacks: null });
    // No key: 401; GET: 405.
    assert.equal((await call(gw, '/key/health', { key: null })).status, 401);
    assert.equal((await call(gw, '/key/health', { method: 'GET', key: k.key })).status, 405);
  });

  test('management needs the master key: a virtual key gets 401', async () => {
    const k = await generate();
    const r = await call(gw, '/key/generate', { key: k.key, body: {} });
    assert.equal(r.status, 401, r.text);
    const none = await call(gw, '/key/list', { method: 'GET', key: null });
    assert.equal(none.status, 401, none.text);
  });

  test('the master key still works and sees every model', async () => {
    assert.equal((await chat(MASTER_KEY, 'b')).choices[0].message.content, 'from b');
  });
});

describe('two instances on one Postgres and Redis', {
  skip: !(SERVER_URL && process.env.SWITCHYARD_TEST_REDIS_URL)
    && 'SWITCHYARD_TEST_DATABASE_URL / SWITCHYARD_TEST_REDIS_URL not set (scripts/test.sh sets them)',
}, () => {
  const name = `swy_keys2_${process.pid}_${Date.now()}`;
  let url;
  let a;
  let b;
  before(async () => {
    psql(SERVER_URL, `CREATE DATABASE ${name}`);
    url = withDatabase(SERVER_URL, name);
    const env = { DATABASE_URL: url, REDIS_URL: process.env.SWITCHYARD_TEST_REDIS_URL };
    const config = { model_list: [mockModel('a', 'from a')] };
    a = await startGateway({ config, env });
    b = await startGateway({ config, env });
    await Promise.all([a, b].map((g) => g.proc.waitForStderr(/redis connected/, 15_000)));
    await Promise.all([a, b].map((g) => g.proc.waitForStderr(/schema up to date/, 15_000)));
  });
  after(async () => {
    await stopAll();
    if (url) psql(SERVER_URL, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  });

  test('a key blocked by /key/bulk_update through instance A is refused by instance B within 1 s', async () => {
    const gen = await call(a, '/key/generate', { body: {} });
    assert.equal(gen.status, 200, gen.text);
    const key = gen.json.key;
    const body = { model: 'a', messages: [{ role: 'user', content: 'hi' }] };
    assert.equal((await call(b, '/v1/chat/completions', { key, body })).status, 200, 'B caches the key');
    const bulk = await call(a, '/key/bulk_update', { body: { keys: [{ key, blocked: true }] } });
    assert.equal(bulk.status, 200, bulk.text);
    assert.equal(bulk.json.successful_updates.length, 1, bulk.text);
    const t0 = Date.now();
    let status;
    while (Date.now() - t0 < 1000) {
      status = (await call(b, '/v1/chat/completions', { key, body })).status;
      if (status === 401) break;
      await delay(20);
    }
    assert.equal(status, 401, `B still accepted the key ${Date.now() - t0} ms after the bulk update`);
  });

  test('a key blocked through instance A is refused by instance B within 1 s', async () => {
    const gen = await call(a, '/key/generate', { body: {} });
    assert.equal(gen.status, 200, gen.text);
    const key = gen.json.key;
    const body = { model: 'a', messages: [{ role: 'user', content: 'hi' }] };
    assert.equal((await call(b, '/v1/chat/completions', { key, body })).status, 200, 'B caches the key');
    const blocked = await call(a, '/key/block', { body: { key } });
    assert.equal(blocked.status, 200, blocked.text);
    const t0 = Date.now();
    let status;
    while (Date.now() - t0 < 1000) {
      status = (await call(b, '/v1/chat/completions', { key, body })).status;
      if (status === 401) break;
      await delay(20);
    }
    assert.equal(status, 401, `B still accepted the key ${Date.now() - t0} ms after the block`);
  });
});

describe('Postgres outage', { skip: skip || (!hasBinary('pg_ctl') && !hasPgCtl() && 'pg_ctl not found') }, () => {
  const dir = makeTempDir('swy-keys-pg-');
  let gw2;
  let pgUrl;
  let port;
  const services = (...args) => execFileSync(`${SOURCE_DIR}/scripts/services.sh`, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  before(async () => {
    services('start', dir, '--no-redis', '--ephemeral');
    const envText = readFileSync(`${dir}/env.sh`, 'utf8');
    pgUrl = /SWITCHYARD_TEST_DATABASE_URL=(\S+)/.exec(envText)[1];
    port = new URL(pgUrl).port;
    gw2 = await startGateway({ config: { model_list: [mockModel('a', 'from a')] }, env: { DATABASE_URL: pgUrl } });
    await gw2.proc.waitForStderr(/schema up to date/, 15_000);
  });
  after(async () => {
    await stopAll();
    try {
      services('stop', dir);
    } catch {
      /* already stopped */
    }
  });

  test('cached keys keep working (50 clients), unknown keys get 503, recovery is automatic', async () => {
    const gen = await call(gw2, '/key/generate', { body: {} });
    assert.equal(gen.status, 200, gen.text);
    const key = gen.json.key;
    const body = { model: 'a', messages: [{ role: 'user', content: 'hi' }] };
    assert.equal((await call(gw2, '/v1/chat/completions', { key, body })).status, 200);

    services('stop', dir);
    const results = await Promise.all(Array.from({ length: 50 }, () => call(gw2, '/v1/chat/completions', { key, body })));
    assert.deepEqual(results.filter((r) => r.status !== 200).map((r) => `${r.status} ${r.text}`), []);
    const unknown = await call(gw2, '/v1/chat/completions', { key: 'sk-unknown-during-outage', body });
    assert.equal(unknown.status, 503, unknown.text);
    assert.deepEqual(openaiErrorProblems(unknown.json, 503), []);
    const mgmt = await call(gw2, '/key/generate', { body: {} });
    assert.equal(mgmt.status, 503, mgmt.text);
    for (const [path, method, body] of [['/team/new', 'POST', {}], ['/user/list', 'GET'], ['/organization/list', 'GET'],
      ['/budget/new', 'POST', {}], ['/team/info?team_id=x', 'GET']]) {
      const r = await call(gw2, path, { method, body });
      assert.equal(r.status, 503, `${path}: ${r.text}`);
      assert.deepEqual(openaiErrorProblems(r.json, 503), []);
    }

    services('start', dir, '--no-redis', '--ephemeral', '--pg-port', port);
    let again;
    for (let i = 0; i < 150; i += 1) {
      again = await call(gw2, '/key/generate', { body: {} });
      if (again.status === 200) break;
      await delay(100);
    }
    assert.equal(again.status, 200, again.text);
    assert.equal((await call(gw2, '/v1/chat/completions', { key: again.json.key, body })).status, 200);
    assert.equal((await call(gw2, '/v1/chat/completions', { key, body })).status, 200);
  });
});

function hasBinary(name) {
  return Boolean(process.env.PATH?.split(':').some((d) => d && existsSync(`${d}/${name}`)));
}
function hasPgCtl() {
  try {
    return execFileSync('bash', ['-c', 'ls /usr/lib/postgresql/*/bin/pg_ctl'], { encoding: 'utf8' }).trim() !== '';
  } catch {
    return false;
  }
}

// Another session holds the migration advisory lock in database `url` (as a second
// instance migrating would). Returns {release()}: ends that session's backend (killing
// psql alone would leave it sleeping with the lock).
async function holdMigrationLock(url) {
  const thisDb = 'database = (SELECT oid FROM pg_database WHERE datname = current_database())';
  const lockKey = '8320252287354759026';  // store::postgres::migration_lock_key ("swy_migr")
  const holder = spawn('psql', ['-X', '-q', url, '-c', `SELECT pg_advisory_lock(${lockKey}); SELECT pg_sleep(120)`],
    { stdio: 'ignore' });
  for (let i = 0; i < 200; ++i) {
    if (psql(url, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND ${thisDb}`) === '1') break;
    await delay(50);
  }
  return {
    release() {
      psql(url, `SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted AND ${thisDb}`);
      holder.kill('SIGKILL');
    },
  };
}

describe('before the schema exists', { skip }, () => {
  test('management calls and unknown keys get 503 (not 500) until the migrations ran, then work', async () => {
    // Another session holds the migration lock (as a second instance migrating would), so
    // the gateway reaches Postgres but has no tables yet.
    const name = `swy_premig_${process.pid}_${Date.now()}`;
    psql(SERVER_URL, `CREATE DATABASE ${name}`);
    const url = withDatabase(SERVER_URL, name);
    const lock = await holdMigrationLock(url);
    let g;
    try {
      g = await startGateway({ config: { model_list: [mockModel('a')] }, env: { DATABASE_URL: url }, waitForDb: false });
      const admin = { authorization: `Bearer ${MASTER_KEY}`, 'content-type': 'application/json' };
      const list = await fetch(`${g.url}/key/list`, { headers: admin });
      assert.equal(list.status, 503, await list.text());
      const gen = await fetch(`${g.url}/key/generate`, { method: 'POST', headers: admin, body: '{}' });
      const genBody = await gen.json();
      assert.equal(gen.status, 503, JSON.stringify(genBody));
      assert.deepEqual(openaiErrorProblems(genBody, 503), []);
      const team = await fetch(`${g.url}/team/new`, { method: 'POST', headers: admin, body: '{}' });
      assert.equal(team.status, 503, await team.text());
      const chat = await fetch(`${g.url}/v1/chat/completions`, {
        method: 'POST', headers: { authorization: 'Bearer sk-not-a-key-yet', 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'a', messages: [{ role: 'user', content: 'hi' }] }),
      });
      assert.equal(chat.status, 503, await chat.text());
      lock.release();  // the migrations run now
      let status = 0;
      for (const deadline = Date.now() + 20_000; Date.now() < deadline;) {
        const r = await fetch(`${g.url}/key/list`, { headers: admin });
        status = r.status;
        await r.arrayBuffer();
        if (status === 200) break;
        await delay(100);
      }
      assert.equal(status, 200, 'management works once the schema exists');
    } finally {
      lock.release();
      await g?.stop();
      psql(SERVER_URL, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    }
  });
  test('a gateway waiting for another instance\'s migration lock still stops promptly on SIGTERM', async () => {
    const name = `swy_lockstop_${process.pid}_${Date.now()}`;
    psql(SERVER_URL, `CREATE DATABASE ${name}`);
    const url = withDatabase(SERVER_URL, name);
    const lock = await holdMigrationLock(url);
    let g;
    try {
      g = await startGateway({ config: { model_list: [mockModel('a')] }, env: { DATABASE_URL: url }, waitForDb: false });
      // Until the migration job waits on the lock (Postgres lists its request, not granted).
      const thisDb = 'database = (SELECT oid FROM pg_database WHERE datname = current_database())';
      const waitDeadline = Date.now() + 20_000 * SLOW;
      while (psql(url, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND ${thisDb}`) !== '1') {
        assert.ok(Date.now() < waitDeadline, 'the migration job never waited on the lock');
        await delay(20);
      }
      const t0 = Date.now();
      const { code } = await g.stop({ timeoutMs: 30_000 });
      g = null;
      assert.equal(code, 0);
      // The lock wait is bounded (lock_timeout 10 s), so shutdown cannot hang on it.
      assert.ok(Date.now() - t0 < 25_000, `stop took ${Date.now() - t0} ms`);
    } finally {
      lock.release();
      await g?.stop();
      psql(SERVER_URL, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    }
  });
});
