// Hot reload: SIGHUP and POST /config/reload re-read the config file and its includes; a
// valid config serves the requests that start after it while those in flight finish on the
// old one; an invalid one is refused with its file:line and the old one keeps serving;
// cooldowns of deployments that did not change survive; GET /config/version says which
// config serves (hash, time, source) without a secret. Waits on events (log lines, the fake
// provider's records, answers), never on sleeps.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import http from 'node:http';

import { startFakeProvider } from '../fake_provider/server.mjs';
import {
  call, mockModel, openaiErrorProblems, openaiModel, psql, sseData, startGateway, stopAll, toYaml, withDatabase,
} from '../lib/gateway.mjs';

const SERVER_URL = process.env.SWITCHYARD_TEST_DATABASE_URL;
const UPSTREAM_SECRET = 'sk-upstream-reload-secret-5d1c';

// One request on a new connection (no keep-alive: with several workers each may land on
// either). Resolves {status, text, chunks} and never rejects (a failure is a status 0).
function once(port, body, { onFirstChunk } = {}) {
  return new Promise((resolve) => {
    const data = JSON.stringify(body);
    const req = http.request({
      host: '127.0.0.1', port, method: 'POST', path: '/v1/chat/completions', agent: false,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data), authorization: 'Bearer sk-test-master-key-8f3a' },
      timeout: 60_000,
    }, (res) => {
      let text = '';
      let chunks = 0;
      res.setEncoding('utf8');
      res.on('data', (d) => {
        text += d;
        chunks += 1;
        if (chunks === 1 && onFirstChunk) onFirstChunk();
      });
      res.on('end', () => resolve({ status: res.statusCode, text, chunks }));
      res.on('error', (e) => resolve({ status: 0, text: String(e), chunks }));
    });
    req.on('error', (e) => resolve({ status: 0, text: String(e), chunks: 0 }));
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end(data);
  });
}

const ask = (model, extra = {}) => ({ model, messages: [{ role: 'user', content: 'hi' }], ...extra });

// Polls `fn` until it returns a truthy value (bounded; short steps, not a timing claim).
async function until(fn, what, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('hot reload', () => {
  let fake;
  before(async () => {
    fake = await startFakeProvider();
  });
  after(async () => {
    await stopAll();
    await fake.close();
  });

  test('SIGHUP adds a model during a streaming load through two workers: nothing fails, old streams complete', async () => {
    const base = { model_list: [openaiModel('old', `${fake.url}/v1`)] };
    const gw = await startGateway({ config: base, args: ['--num_workers', '2'] });
    await gw.proc.waitForStderr(/(switchyard listening on[^\n]*\n[\s\S]*){2}/);
    // Long streams: 200 pieces, 25 ms apart. They start before the reload and must end whole.
    fake.setDefaults({ chunks: 200, chunk_delay_ms: 25, content: Array.from({ length: 200 }, (_, i) => `w${i}`).join(' ') });
    const streams = [];
    let streamsStarted = 0;
    let streamsEnded = 0;
    for (let i = 0; i < 6; i += 1) {
      streams.push(once(gw.port, ask('old', { stream: true }), { onFirstChunk: () => { streamsStarted += 1; } })
        .then((r) => { streamsEnded += 1; return r; }));
    }
    await until(() => streamsStarted === 6, 'every stream sent its first chunk');

    // Non-streamed load on the old model for the whole test.
    let stop = false;
    const results = [];
    const loops = Array.from({ length: 4 }, async () => {
      while (!stop) results.push(await once(gw.port, ask('old')));
    });

    writeFileSync(gw.configFile, toYaml({ model_list: [...base.model_list, mockModel('added', 'from the new model')] }));
    gw.proc.signal('SIGHUP');
    await gw.proc.waitForStderr(/(config reloaded \(SIGHUP\)[^\n]*1 deployment\(s\) added[^\n]*\n[\s\S]*){2}/, 20_000);
    // The streams were in flight across the reload (200 pieces 25 ms apart: they end well after).
    assert.equal(streamsEnded, 0);

    // The new model answers on both workers (new connections spread over them).
    for (let i = 0; i < 20; i += 1) {
      const r = await once(gw.port, ask('added'));
      assert.equal(r.status, 200, r.text);
      assert.match(r.text, /from the new model/);
    }
    const done = await Promise.all(streams);
    stop = true;
    await Promise.all(loops);
    for (const s of done) {
      assert.equal(s.status, 200, s.text.slice(0, 300));
      const payloads = sseData(s.text);
      assert.equal(payloads.at(-1), '[DONE]');
      const text = payloads.filter((p) => p !== '[DONE]').map((p) => JSON.parse(p).choices?.[0]?.delta?.content ?? '').join('');
      assert.ok(text.includes('w0') && text.includes('w199'), `stream incomplete: ${text.length} chars`);
    }
    assert.ok(results.length > 0);
    const failed = results.filter((r) => r.status !== 200);
    assert.equal(failed.length, 0, `${failed.length} of ${results.length} failed: ${failed[0]?.text}`);
    // The supervisor re-read it too: the group keeps serving the new model.
    assert.match(gw.stderr(), /config reloaded \(SIGHUP\)/);
    fake.reset();
    const { code } = await gw.stop();
    assert.equal(code, 0);
  });

  test('a SIGHUP during POST /config/reload is not lost: the file is read again when that reload ends', async () => {
    const hold = path.join(mkdtempSync(path.join(tmpdir(), 'sy-reload-hold-')), 'hold');
    const gw = await startGateway({
      config: { model_list: [mockModel('a', 'from a')] },
      env: { SWITCHYARD_TEST_RELOAD_HOLD: hold },
    });
    const models = async () => (await call(gw, '/v1/models', { method: 'GET' })).json.data.map((m) => m.id).sort();
    writeFileSync(hold, '');
    // The POST reads the file as it is (unchanged), then waits on the hold file.
    const post = call(gw, '/config/reload');
    await gw.proc.waitForStderr(/config reload \(POST \/config\/reload\): files read, held while/);
    // The file changes and a SIGHUP comes while that reload runs.
    writeFileSync(gw.configFile, toYaml({ model_list: [mockModel('a', 'from a'), mockModel('b', 'from b')] }));
    gw.proc.signal('SIGHUP');
    rmSync(hold);
    const r = await post;
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.status, 'unchanged');
    // The hangup's reload runs when the POST's ends, and reads the new file.
    await gw.proc.waitForStderr(/config reloaded \(SIGHUP\)[^\n]*1 deployment\(s\) added/);
    assert.deepEqual(await models(), ['a', 'b']);
    const b = await call(gw, '/v1/chat/completions', { body: ask('b') });
    assert.equal(b.status, 200, b.text);
    assert.equal(b.json.choices[0].message.content, 'from b');
  });

  test('an invalid edit is refused with its file:line (POST and SIGHUP) and the old config keeps serving', async () => {
    const gw = await startGateway({ config: { model_list: [mockModel('a', 'still a')] } });
    const v1 = (await call(gw, '/config/version', { method: 'GET' })).json;
    // Line 4: the entry has no litellm_params.model.
    writeFileSync(gw.configFile, 'model_list:\n  - model_name: b\n    litellm_params:\n      api_base: http://127.0.0.1:9\n');
    const r = await call(gw, '/config/reload');
    assert.equal(r.status, 400, r.text);
    assert.deepEqual(openaiErrorProblems(r.json, 400), []);
    assert.match(r.json.error.message, /^Config reload refused: .*config\.yaml:\d+: model_list\[0\]/);
    gw.proc.signal('SIGHUP');
    await gw.proc.waitForStderr(/config reload \(SIGHUP\) refused, still serving [0-9a-f]{12}[^\n]*config\.yaml:\d+: model_list\[0\]/);
    // YAML that does not parse: its line too.
    writeFileSync(gw.configFile, 'model_list:\n  - model_name: c\n    litellm_params: [unclosed\n');
    const y = await call(gw, '/config/reload');
    assert.equal(y.status, 400, y.text);
    assert.match(y.json.error.message, /config\.yaml:\d+: yaml: /);

    const ok = await call(gw, '/v1/chat/completions', { body: ask('a') });
    assert.equal(ok.status, 200, ok.text);
    assert.equal(ok.json.choices[0].message.content, 'still a');
    const v2 = (await call(gw, '/config/version', { method: 'GET' })).json;
    assert.equal(v2.hash, v1.hash);
    assert.equal(v2.generation, 1);
  });

  test('an emptied config file is refused (POST and SIGHUP) and every model keeps serving', async () => {
    const gw = await startGateway({ config: { model_list: [mockModel('a', 'still a')] } });
    const v1 = (await call(gw, '/config/version', { method: 'GET' })).json;
    writeFileSync(gw.configFile, '');
    const r = await call(gw, '/config/reload');
    assert.equal(r.status, 400, r.text);
    assert.deepEqual(openaiErrorProblems(r.json, 400), []);
    assert.match(r.json.error.message, /^Config reload refused: .*config\.yaml: config: the file is empty/);
    // Comments only, as an editor might leave it half-way: the same, through SIGHUP.
    writeFileSync(gw.configFile, '# model_list: moved elsewhere\n---\n');
    gw.proc.signal('SIGHUP');
    await gw.proc.waitForStderr(/config reload \(SIGHUP\) refused, still serving [0-9a-f]{12}[^\n]*config\.yaml: config: the file is empty/);

    const ok = await call(gw, '/v1/chat/completions', { body: ask('a') });
    assert.equal(ok.status, 200, ok.text);
    assert.equal(ok.json.choices[0].message.content, 'still a');
    const v2 = (await call(gw, '/config/version', { method: 'GET' })).json;
    assert.equal(v2.hash, v1.hash);
    assert.equal(v2.generation, 1);
  });

  test('unknown and unsupported settings are not in needs_restart: they get the warnings of a start', async () => {
    const gw = await startGateway({ config: { model_list: [mockModel('a', 'still a')] } });
    writeFileSync(gw.configFile, toYaml({
      model_list: [mockModel('a', 'still a'), mockModel('b', 'new b')],
      litellm_settings: { modify_params: true, totally_unknown_key: 1 },
      general_settings: { proxy_batch_write_at: 1, max_request_size_mb: 5 },
    }));
    const r = await call(gw, '/config/reload');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.status, 'reloaded');
    // A setting the gateway reads at start is still listed; the others never apply.
    assert.deepEqual(r.json.needs_restart, ['general_settings.max_request_size_mb']);
    await gw.proc.waitForStderr(/config reload: these settings changed but apply only after a restart: general_settings\.max_request_size_mb\n/);
    const stderr = gw.stderr();
    assert.match(stderr, /config: .*config\.yaml:\d+: litellm_settings\.totally_unknown_key: unknown key; ignored/);
    assert.match(stderr, /config: 2 config key\(s\) recognised but not supported: litellm_settings\.modify_params \(ignored[^)]*\); general_settings\.proxy_batch_write_at \(ignored/);
    const restartLines = stderr.split('\n').filter((l) => l.includes('apply only after a restart'));
    assert.equal(restartLines.length, 1, stderr);
    assert.doesNotMatch(restartLines[0], /modify_params|totally_unknown_key|proxy_batch_write_at/);
    const ok = await call(gw, '/v1/chat/completions', { body: ask('b') });
    assert.equal(ok.status, 200, ok.text);
  });

  test('the cooldown of an unchanged deployment survives a reload; an edited deployment starts fresh', async () => {
    fake.reset();
    const deployments = [
      openaiModel('g', `${fake.url}/v1`, { upstreamModel: 'up-a' }),
      openaiModel('g', `${fake.url}/v1`, { upstreamModel: 'up-b' }),
    ];
    const cfg = (extra = []) => ({ model_list: [...deployments, ...extra], router_settings: { cooldown_time: 300 } });
    const gw = await startGateway({ config: cfg() });
    fake.script([{ match: { model: 'up-a' }, status: 429 }]);
    // Until up-a has failed once (and, in a group of two, is cooled for 300 s).
    await until(async () => {
      await call(gw, '/v1/chat/completions', { body: ask('g') });
      return fake.requests().some((q) => q.body?.model === 'up-a' && q.reply?.status === 429);
    }, 'up-a answered its 429');
    const countA = () => fake.requests().filter((q) => q.body?.model === 'up-a').length;
    const aBefore = countA();
    for (let i = 0; i < 10; i += 1) assert.equal((await call(gw, '/v1/chat/completions', { body: ask('g') })).status, 200);
    assert.equal(countA(), aBefore, 'up-a is cooled down');

    writeFileSync(gw.configFile, toYaml(cfg([mockModel('other')])));
    const r = await call(gw, '/config/reload');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.status, 'reloaded');
    assert.deepEqual([r.json.added, r.json.removed, r.json.changed, r.json.unchanged], [1, 0, 0, 2]);
    for (let i = 0; i < 20; i += 1) assert.equal((await call(gw, '/v1/chat/completions', { body: ask('g') })).status, 200);
    assert.equal(countA(), aBefore, 'up-a is still cooled down after the reload');

    // An edited deployment is another endpoint: its cooldown is gone.
    deployments[0] = openaiModel('g', `${fake.url}/v1`, { upstreamModel: 'up-a', params: { rpm: 1000 } });
    writeFileSync(gw.configFile, toYaml(cfg([mockModel('other')])));
    const r2 = await call(gw, '/config/reload');
    assert.equal(r2.status, 200, r2.text);
    // The edit changed up-a's identity (its id hashes its params): one gone, one new.
    assert.deepEqual([r2.json.added, r2.json.removed, r2.json.unchanged], [1, 1, 2]);
    await until(async () => {
      assert.equal((await call(gw, '/v1/chat/completions', { body: ask('g') })).status, 200);
      return countA() > aBefore;
    }, 'the edited up-a is picked again');
  });

  test('GET /config/version: hash, time and source change with a reload; no secret in it', async () => {
    const cfg = { model_list: [openaiModel('s', `${fake.url}/v1`, { params: { api_key: UPSTREAM_SECRET } })] };
    const gw = await startGateway({ config: cfg });
    const v1 = await call(gw, '/config/version', { method: 'GET' });
    assert.equal(v1.status, 200, v1.text);
    assert.match(v1.json.hash, /^[0-9a-f]{64}$/);
    assert.equal(v1.json.version, v1.json.hash.slice(0, 12));
    assert.equal(v1.json.source, 'startup');
    assert.equal(v1.json.generation, 1);
    assert.equal(v1.json.path, gw.configFile);
    assert.ok(!Number.isNaN(Date.parse(v1.json.loaded_at)));

    // Reloading the same files changes nothing.
    const same = await call(gw, '/config/reload');
    assert.equal(same.status, 200, same.text);
    assert.equal(same.json.status, 'unchanged');

    writeFileSync(gw.configFile, toYaml({ ...cfg, model_list: [...cfg.model_list, mockModel('t')] }));
    const rr = await call(gw, '/config/reload');
    assert.equal(rr.status, 200, rr.text);
    const v2 = await call(gw, '/config/version', { method: 'GET' });
    assert.notEqual(v2.json.hash, v1.json.hash);
    assert.equal(v2.json.source, 'POST /config/reload');
    assert.equal(v2.json.generation, 2);
    assert.ok(Date.parse(v2.json.loaded_at) >= Date.parse(v1.json.loaded_at));

    writeFileSync(gw.configFile, toYaml(cfg));
    gw.proc.signal('SIGHUP');
    await gw.proc.waitForStderr(/config reloaded \(SIGHUP\)/);
    const v3 = await call(gw, '/config/version', { method: 'GET' });
    assert.equal(v3.json.source, 'SIGHUP');
    assert.equal(v3.json.generation, 3);
    assert.equal(v3.json.hash, v1.json.hash);  // the same files as at the start
    for (const text of [v1.text, v2.text, v3.text, rr.text]) {
      assert.ok(!text.includes(UPSTREAM_SECRET), text);
      assert.ok(!text.includes(gw.masterKey), text);
    }
    const models = await call(gw, '/v1/models', { method: 'GET' });
    assert.deepEqual(models.json.data.map((m) => m.id), ['s']);
    // /model/info follows the reload too.
    const info = await call(gw, '/model/info', { method: 'GET' });
    assert.deepEqual(info.json.data.map((m) => m.model_name), ['s']);
  });
});

describe('config routes: admins only', { skip: !SERVER_URL && 'SWITCHYARD_TEST_DATABASE_URL not set (scripts/test.sh sets it)' }, () => {
  const dbName = `swy_reload_${process.pid}_${Date.now()}`;
  let dbUrl;
  let gw;
  before(async () => {
    psql(SERVER_URL, `CREATE DATABASE ${dbName}`);
    dbUrl = withDatabase(SERVER_URL, dbName);
    gw = await startGateway({ config: { model_list: [mockModel('a')] }, env: { DATABASE_URL: dbUrl } });
  });
  after(async () => {
    await stopAll();
    if (dbUrl) psql(SERVER_URL, `DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
  });

  test('POST /config/reload and GET /config/version: 401 without a key and for a non-admin key (LiteLLM\'s answer), 200 for the admin', async () => {
    const k = await call(gw, '/key/generate', { body: {} });
    assert.equal(k.status, 200, k.text);
    const userKey = k.json.key;
    for (const [method, p] of [['POST', '/config/reload'], ['GET', '/config/version']]) {
      const none = await call(gw, p, { method, key: null });
      assert.equal(none.status, 401, none.text);
      assert.deepEqual(openaiErrorProblems(none.json, 401), []);
      // LiteLLM's answer to a key that is not the proxy admin's on an admin route.
      const user = await call(gw, p, { method, key: userKey });
      assert.equal(user.status, 401, user.text);
      assert.deepEqual(openaiErrorProblems(user.json, 401), []);
      assert.equal(user.json.error.type, 'auth_error');
      assert.match(user.json.error.message, new RegExp(`^Authentication Error, Only proxy admin can be used.*Route=${p}\\.`));
      const admin = await call(gw, p, { method });
      assert.equal(admin.status, 200, admin.text);
    }
    const wrong = await call(gw, '/config/reload', { method: 'GET' });
    assert.equal(wrong.status, 405, wrong.text);
  });
});
