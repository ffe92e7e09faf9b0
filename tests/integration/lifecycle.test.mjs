// Process lifecycle: CLI flags, bad configs (exit 2, file:line, nothing listens), graceful stop
// during a stream, JSON access logs.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';

import { startFakeProvider } from '../fake_provider/server.mjs';
import {
  MASTER_KEY, SLOW, SOURCE_DIR, assembleChat, call, canConnect, freePort, mockModel, openaiModel, runGateway,
  spawnGateway, sseData, startGateway, stopAll, streamTimed, until, writeConfig,
} from '../lib/gateway.mjs';

let fake;
before(async () => {
  fake = await startFakeProvider();
});
after(async () => {
  await stopAll();
  await fake?.close();
});

const GOOD_CONFIG = { model_list: [mockModel('demo', 'hi')] };
const GOOD = `model_list:
  - model_name: demo
    litellm_params:
      model: openai/demo
      mock_response: "hi"
`;

describe('CLI', () => {
  test('--version prints the version and exits 0', async () => {
    const r = await runGateway(['--version']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout + r.stderr, /\d+\.\d+\.\d+/);
  });

  test('--help prints the usage and exits 0', async () => {
    const r = await runGateway(['--help']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /--config/);
    assert.match(r.stdout, /--check-config/);
  });

  test('--check-config: 0 for a good file, 2 for a bad one (naming file:line)', async () => {
    const good = writeConfig(GOOD);
    const ok = await runGateway(['--check-config', good]);
    assert.equal(ok.code, 0, ok.stderr);
    const bad = writeConfig('model_list:\n  - litellm_params:\n      model: openai/x\n');
    const ko = await runGateway(['--check-config', bad]);
    assert.equal(ko.code, 2, ko.stderr);
    assert.ok(ko.stderr.includes(`${bad}:`), ko.stderr);
    assert.match(ko.stderr, /model_name/);
  });

  test('a routing strategy served as simple-shuffle is reported once by --check-config and once at start', async () => {
    const file = writeConfig(`${GOOD}router_settings:\n  routing_strategy: cost-based-routing\n`);
    const check = await runGateway(['--check-config', file]);
    assert.equal(check.code, 0, check.stderr);
    assert.ok(check.stdout.includes(`unsupported: router_settings.routing_strategy (${file}:7): 'cost-based-routing' is not implemented; using simple-shuffle`), check.stdout);
    assert.match(check.stdout, /OK \(1 deployments, 1 unsupported keys\)/);
    const gw = await startGateway({ configFile: file });
    const said = gw.stderr().split('\n').filter((l) => l.includes('cost-based-routing'));
    assert.equal(said.length, 1, gw.stderr());
    assert.match(said[0], /warn.*recognised but not supported: .*router_settings\.routing_strategy \('cost-based-routing' is not implemented; using simple-shuffle\)/);
    await gw.stop();
  });

  test('--check-config accepts the shipped config/switchyard.yaml', async () => {
    const file = path.join(SOURCE_DIR, 'config', 'switchyard.yaml');
    const r = await runGateway(['--check-config', file], { env: { LITELLM_MASTER_KEY: MASTER_KEY } });
    assert.equal(r.code, 0, r.stderr);
  });

  test('--grace-period must be a finite number of seconds (0 to 86400): anything else exits 2 with the usage', async () => {
    const file = writeConfig(GOOD);
    for (const bad of ['5abc', '-5', 'nan', 'inf', '86401']) {
      const r = await runGateway(['--config', file, '--port', '0', '--grace-period', bad]);
      assert.equal(r.code, 2, `${bad}: ${r.stderr}`);
      assert.ok(r.stderr.includes(`invalid --grace-period '${bad}' (seconds, 0 to 86400)`), r.stderr);
      assert.match(r.stderr, /usage: switchyard/);
      assert.doesNotMatch(r.stderr, /listening on/);
    }
  });

  test('--host takes a host name (resolved at start, IPv4 first); one that does not resolve exits 2 with the usage', async () => {
    const gw = await startGateway({ config: GOOD_CONFIG, host: 'localhost' });
    assert.match(gw.stderr(), /switchyard listening on http:\/\/(127\.0\.0\.1|\[::1\]):\d+/);
    const r = await call(gw, '/health/liveliness', { method: 'GET' });
    assert.equal(r.status, 200, r.text);
    await gw.stop();
    const bad = await runGateway(['--config', writeConfig(GOOD), '--port', '0', '--host', 'no-such-host.invalid']);
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(bad.stderr, /invalid --host 'no-such-host\.invalid': not an IP address, and the name does not resolve \(/);
    assert.match(bad.stderr, /usage: switchyard/);
  });

  test('an unknown option exits 2 with the usage', async () => {
    const r = await runGateway(['--no-such-flag']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /no-such-flag/);
  });
});

describe('bad configs: exit 2, file:line and key, nothing listens', () => {
  // [name, yaml, line the error must name, key (regex) it must name, env]
  const cases = [
    ['YAML syntax error', 'model_list:\n  - model_name: demo\n    litellm_params: {model: openai/x\n  - oops: [\n', null, null],
    ['missing model_name', 'model_list:\n  - litellm_params:\n      model: openai/x\n', 2, /model_name/],
    ['missing litellm_params.model', 'model_list:\n  - model_name: demo\n    litellm_params:\n      api_key: sk-1\n', null, /model/],
    ['unknown provider prefix foo/bar', 'model_list:\n  - model_name: demo\n    litellm_params:\n      model: foo/bar\n', 4, /model|foo/],
    ['unset os.environ/VAR', 'model_list:\n  - model_name: demo\n    litellm_params:\n      model: openai/x\n      api_key: os.environ/SWITCHYARD_TEST_SURELY_UNSET_VAR\n', 5, /SWITCHYARD_TEST_SURELY_UNSET_VAR/],
    ['rpm: "abc" (wrong type)', 'model_list:\n  - model_name: demo\n    litellm_params:\n      model: openai/x\n      rpm: "abc"\n', 5, /rpm/],
    ['model_list is not a list', 'model_list:\n  model_name: demo\n', 2, /model_list/],
  ];
  for (const [name, yaml, line, key] of cases) {
    test(name, async () => {
      const file = writeConfig(yaml);
      const port = await freePort();
      const g = spawnGateway(['--config', file, '--port', String(port), '--host', '127.0.0.1'],
        { env: { SWITCHYARD_TEST_SURELY_UNSET_VAR: null } });
      const r = await g.wait(15_000 * SLOW);
      const stderr = g.stderr();
      assert.equal(r.code, 2, `exit ${JSON.stringify(r)}; stderr:\n${stderr}`);
      // file:line (any line for the syntax error / missing key, the exact one otherwise)
      const re = new RegExp(`${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:(\\d+)`);
      const m = stderr.match(re);
      assert.ok(m, `stderr does not name ${file}:<line>:\n${stderr}`);
      if (line !== null) assert.equal(Number(m[1]), line, stderr);
      if (key) assert.match(stderr, key);
      assert.doesNotMatch(stderr, /listening on/);
      assert.equal(await canConnect(port), false, 'something listens on the port');
    });
  }
});

describe('an empty config file: exit 2 naming the file, nothing listens', () => {
  for (const [name, yaml] of [['empty', ''], ['comments only', '# nothing here yet\n'], ['document markers only', '---\n...\n']]) {
    test(name, async () => {
      const file = writeConfig(yaml);
      const check = await runGateway(['--check-config', file]);
      assert.equal(check.code, 2, check.stdout + check.stderr);
      assert.ok(check.stderr.includes(`config error: ${file}: config: the file is empty`), check.stderr);
      assert.doesNotMatch(check.stdout, /OK/);
      const port = await freePort();
      const g = spawnGateway(['--config', file, '--port', String(port), '--host', '127.0.0.1']);
      const r = await g.wait(15_000 * SLOW);
      const stderr = g.stderr();
      assert.equal(r.code, 2, `exit ${JSON.stringify(r)}; stderr:\n${stderr}`);
      assert.ok(stderr.includes(`${file}: config: the file is empty`), stderr);
      assert.doesNotMatch(stderr, /listening on/);
      assert.equal(await canConnect(port), false, 'something listens on the port');
    });
  }
});

describe('graceful stop', () => {
  test('SIGTERM during a 3-second stream: the stream completes with [DONE], exit 0', async () => {
    const gw = await startGateway({ config: { model_list: [openaiModel('gpt-x', `${fake.url}/v1`)] } });
    fake.reset();
    fake.script([{ chunks: 6, chunk_delay_ms: 500 }]);
    let signalled = false;
    const streaming = streamTimed(`${gw.url}/v1/chat/completions`, {
      headers: { authorization: `Bearer ${MASTER_KEY}` },
      body: { model: 'gpt-x', messages: [{ role: 'user', content: 'hi' }], stream: true },
      timeoutMs: 20_000 * SLOW,
      onChunk: (ev, text) => {
        if (!signalled && assembleChat(sseData(text).filter((d) => d !== '[DONE]')).text.length > 0) {
          signalled = true;
          gw.proc.signal('SIGTERM');
        }
      },
    });
    const r = await streaming;
    assert.ok(signalled, 'never saw a content chunk');
    const a = assembleChat(sseData(r.text));
    assert.equal(a.done, true, `stream cut: ${JSON.stringify(r.text.slice(-200))}`);
    assert.equal(a.text, 'Hello from fake provider');
    assert.ok(r.endAt > 2000, `stream finished after only ${r.endAt.toFixed(0)} ms`);
    const exit = await gw.proc.wait(15_000 * SLOW);
    assert.equal(exit.code, 0, gw.stderr());
    assert.equal(fake.requests()[0].aborted, false);
  });

  test('requests that outlive --grace-period: the provider calls are given up, the outcomes logged, exit 0', async () => {
    const gw = await startGateway({
      config: { model_list: [openaiModel('gpt-x', `${fake.url}/v1`)] },
      args: ['--grace-period', '0.5'],
    });
    fake.reset();
    // One answer that never comes, one stream that stops after its first piece.
    fake.script([{ stall: true, match: { path: '/v1/chat/completions' }, times: 1 },
      { stall_after_chunks: 1, chunks: 4 }]);
    const body = { model: 'gpt-x', messages: [{ role: 'user', content: 'hi' }] };
    const plain = call(gw, '/v1/chat/completions', { body, timeoutMs: 30_000 * SLOW }).catch((e) => e);
    const streamed = streamTimed(`${gw.url}/v1/chat/completions`, {
      headers: { authorization: `Bearer ${MASTER_KEY}` }, body: { ...body, stream: true }, timeoutMs: 30_000 * SLOW,
    }).catch((e) => e);
    await until('both calls reach the provider', () => fake.requests().length === 2);
    gw.proc.signal('SIGTERM');
    const exit = await gw.proc.wait(20_000 * SLOW);
    assert.equal(exit.code, 0, gw.stderr());
    await Promise.all([plain, streamed]);
    // `finish` ran for both (the access line is its last observer), before the exit.
    const access = gw.stderr().split('\n').filter((l) => / access POST \/v1\/chat\/completions /.test(l));
    assert.equal(access.length, 2, gw.stderr());
    // The plain one never got an answer: its client was gone (0) or it failed (500).
    assert.ok(access.some((l) => / (0|500) model=/.test(l)), access.join('\n'));
    assert.match(gw.stderr(), /grace period over: closing 2 remaining connection\(s\)/);
    await until('the provider saw both calls given up', () => fake.requests().every((r) => r.aborted));
  });

  test('a SIGHUP during the start waits for the gateway and reloads; it does not end the process', async () => {
    // Enough deployments that the start takes a while after its first log line.
    const model_list = [];
    for (let i = 0; i < 2000; ++i) model_list.push(mockModel(`m${i}`));
    const file = writeConfig({ model_list, litellm_settings: { an_unknown_setting: 1 } });
    const proc = spawnGateway(['--config', file, '--port', '0', '--host', '127.0.0.1']);
    await proc.waitForStderr(/an_unknown_setting/, 30_000 * SLOW);
    proc.signal('SIGHUP');
    await proc.waitForStderr(/switchyard listening on/, 30_000 * SLOW);
    await proc.waitForStderr(/config reload \(SIGHUP\)/, 30_000 * SLOW);
    proc.signal('SIGTERM');
    assert.equal((await proc.wait(15_000 * SLOW)).code, 0);
  });

  test('SIGTERM when idle: exits 0 promptly and stops listening', async () => {
    const gw = await startGateway({ config: GOOD });
    const t0 = performance.now();
    const { code, stderr } = await gw.stop({ timeoutMs: 10_000 * SLOW });
    assert.equal(code, 0, stderr);
    assert.ok(performance.now() - t0 < 5000 * SLOW);
    assert.equal(await canConnect(gw.port), false);
  });

  test('SIGINT stops it too (exit 0)', async () => {
    const gw = await startGateway({ config: GOOD });
    const { code, stderr } = await gw.stop({ signal: 'SIGINT' });
    assert.equal(code, 0, stderr);
  });

  test('new connections are refused once draining', async () => {
    const gw = await startGateway({ config: { model_list: [openaiModel('gpt-x', `${fake.url}/v1`)] } });
    fake.reset();
    fake.script([{ chunks: 4, chunk_delay_ms: 400 }]);
    let signalled = false;
    const streaming = streamTimed(`${gw.url}/v1/chat/completions`, {
      headers: { authorization: `Bearer ${MASTER_KEY}` },
      body: { model: 'gpt-x', messages: [{ role: 'user', content: 'hi' }], stream: true },
      timeoutMs: 20_000 * SLOW,
      onChunk: () => {
        if (!signalled) {
          signalled = true;
          gw.proc.signal('SIGTERM');
        }
      },
    });
    await gw.proc.waitForStderr(/drain|signal|stopping|shutting/i, 5000 * SLOW).catch(() => {});
    // Give the gateway a bounded moment to close its acceptor, then check.
    const deadline = Date.now() + 2000 * SLOW;
    let refused = false;
    while (Date.now() < deadline && !refused) {
      refused = !(await canConnect(gw.port, '127.0.0.1', 500));
      if (!refused) await new Promise((res) => setTimeout(res, 50));
    }
    assert.ok(refused, 'still accepting connections while draining');
    const r = await streaming;
    assert.equal(assembleChat(sseData(r.text)).done, true);
    assert.equal((await gw.proc.wait(15_000 * SLOW)).code, 0);
  });
});

describe('logs', () => {
  test('json_logs: every stderr line is a JSON object; one access line per request, key redacted', async () => {
    const gw = await startGateway({
      config: {
        model_list: [mockModel('demo', 'logged'), openaiModel('gpt-x', `${fake.url}/v1`)],
        litellm_settings: { json_logs: true },
      },
    });
    fake.reset();
    const ids = ['log-call-1', 'log-call-2', 'log-call-3', 'log-call-4'];
    const ok = await call(gw, '/v1/chat/completions', {
      body: { model: 'demo', messages: [{ role: 'user', content: 'x' }] }, headers: { 'x-litellm-call-id': ids[0] },
    });
    assert.equal(ok.status, 200);
    const up = await call(gw, '/v1/chat/completions', {
      body: { model: 'gpt-x', messages: [{ role: 'user', content: 'x' }] }, headers: { 'x-litellm-call-id': ids[1] },
    });
    assert.equal(up.status, 200);
    const bad = await call(gw, '/v1/chat/completions', {
      body: { model: 'demo', messages: [] }, key: 'sk-wrong-key-zz99', headers: { 'x-litellm-call-id': ids[2] },
    });
    assert.equal(bad.status, 401);
    const models = await call(gw, '/v1/models', { method: 'GET', headers: { 'x-litellm-call-id': ids[3] } });
    assert.equal(models.status, 200);
    const { code, stderr } = await gw.stop();
    assert.equal(code, 0, stderr);

    const lines = stderr.split('\n').filter((l) => l.trim() !== '');
    assert.ok(lines.length > 0);
    const objs = lines.map((l) => {
      try {
        const o = JSON.parse(l);
        assert.equal(typeof o, 'object');
        return o;
      } catch {
        assert.fail(`stderr line is not JSON: ${l}`);
      }
      return null;
    });
    assert.ok(!stderr.includes(MASTER_KEY), 'the master key appears in the logs');
    assert.ok(!stderr.includes('sk-wrong-key-zz99'), 'a client key appears in the logs');

    const hasCallId = (o, id) => JSON.stringify(o).includes(id);
    for (const [i, id] of ids.entries()) {
      const access = objs.filter((o) => hasCallId(o, id));
      assert.equal(access.length, 1, `expected one access line for request ${i}, got ${access.length}:\n${stderr}`);
      const o = access[0];
      const flat = JSON.stringify(o);
      assert.equal(o.method, i === 3 ? 'GET' : 'POST', flat);
      assert.equal(o.path, i === 3 ? '/v1/models' : '/v1/chat/completions', flat);
      assert.equal(Number(o.status), [200, 200, 401, 200][i], flat);
      const duration = o.duration_ms ?? o.duration ?? o.latency_ms;
      assert.equal(typeof duration, 'number', `no numeric duration: ${flat}`);
      assert.ok(duration >= 0);
      if (i < 2) assert.equal(o.model, i === 0 ? 'demo' : 'gpt-x', flat);
      const key = o.key ?? o.api_key ?? o.key_name;
      if (i === 2) {
        assert.equal(key, 'sk-...zz99', flat);
      } else {
        assert.equal(key, `sk-...${MASTER_KEY.slice(-4)}`, flat);
      }
    }
  });

  test('text logs by default name the listening address', async () => {
    const gw = await startGateway({ config: GOOD });
    const { code, stderr } = await gw.stop();
    assert.equal(code, 0);
    assert.match(stderr, /switchyard listening on http:\/\/127\.0\.0\.1:\d+/);
    assert.ok(!stderr.includes(MASTER_KEY));
  });

  test('LITELLM_LOG sets the level; the listening line and the access lines are written at any level', async () => {
    // An unknown key makes a start-up warning, which ERROR hides.
    const config = `${GOOD}litellm_settings:\n  not_a_litellm_setting: 1\n`;
    const quiet = await startGateway({ config, env: { LITELLM_LOG: 'error' } });
    const ok = await call(quiet, '/v1/chat/completions', { body: { model: 'demo', messages: [{ role: 'user', content: 'x' }] } });
    assert.equal(ok.status, 200, ok.text);
    const { code, stderr } = await quiet.stop();
    assert.equal(code, 0);
    const lines = stderr.split('\n').filter(Boolean);
    assert.ok(lines.some((l) => / info switchyard listening on http:\/\/127\.0\.0\.1:\d+$/.test(l)), stderr);
    assert.ok(lines.some((l) => / info access POST \/v1\/chat\/completions 200 /.test(l)), stderr);
    const others = lines.filter((l) => !/ info (switchyard listening on|access) /.test(l));
    assert.deepEqual(others, [], 'lines below ERROR were written');

    // The same config at the default level warns about the key.
    const loud = await startGateway({ config });
    const { stderr: all } = await loud.stop();
    assert.match(all, / warning .*not_a_litellm_setting/);

    // A value that is not a level: INFO, and one warning naming it.
    const odd = await startGateway({ config: GOOD, env: { LITELLM_LOG: 'chatty' } });
    const { stderr: oddErr } = await odd.stop();
    assert.equal(oddErr.split('LITELLM_LOG=chatty is not a log level').length - 1, 1, oddErr);
    assert.match(oddErr, / info \d+ deployment\(s\) in /);
  });

  test('a master key from general_settings (os.environ/) works like LITELLM_MASTER_KEY', async () => {
    const gw = await startGateway({
      config: {
        model_list: [mockModel('demo')],
        general_settings: { master_key: 'os.environ/SWITCHYARD_TEST_MK' },
      },
      masterKey: null,
      env: { SWITCHYARD_TEST_MK: 'sk-from-config-5678' },
    });
    const ok = await call(gw, '/v1/models', { method: 'GET', key: 'sk-from-config-5678' });
    assert.equal(ok.status, 200, ok.text);
    const ko = await call(gw, '/v1/models', { method: 'GET', key: MASTER_KEY });
    assert.equal(ko.status, 401);
    await gw.stop();
  });

  test('SWITCHYARD_MASTER_KEY is honoured', async () => {
    const gw = await startGateway({ config: GOOD, masterKey: null, env: { SWITCHYARD_MASTER_KEY: 'sk-sw-key-4321' } });
    const ok = await call(gw, '/v1/models', { method: 'GET', key: 'sk-sw-key-4321' });
    assert.equal(ok.status, 200, ok.text);
    await gw.stop();
  });
});
