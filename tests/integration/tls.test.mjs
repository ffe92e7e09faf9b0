// TLS end to end (docs/tls.md), with certificates made at test time by the openssl CLI
// (a test CA, server certificates for 127.0.0.1 with known serials, a self-signed one,
// a second CA); no key is ever committed.
//  - HTTPS listener: the OpenAI SDK trusting the test CA (a child process with
//    NODE_EXTRA_CA_CERTS), streamed and not; TLS 1.1 and non-AEAD TLS 1.2 ciphers refused;
//    plain HTTP on the port answered 400 in clear text and closed; SIGHUP swaps the
//    certificate for new handshakes (the serial changes) while an established connection
//    keeps working, and a broken pair is refused with the old one serving; bad files stop
//    the start with exit code 2; general_settings paths work.
//  - Upstream: a provider with a self-signed certificate fails with a clear OpenAI-shaped
//    error by default and works with ssl_verify false (global, per deployment) or a CA
//    bundle path.
//  - Redis over TLS (a real redis-server with --tls-port): the response cache through
//    rediss://, and a wrong CA fails clearly.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { randomUUID } from 'node:crypto';

import { startFakeProvider } from '../fake_provider/server.mjs';
import {
  call, delay, freePort, httpsGet, makeTempDir, MASTER_KEY, runGateway, SLOW, SOURCE_DIR, startGateway, stopAll,
  writeConfig,
} from '../lib/gateway.mjs';

const CHAT = '/v1/chat/completions';
const execFileP = promisify(execFile);
let dir;
const f = (name) => path.join(dir, name);

function openssl(...args) {
  execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}
// An EC key and a certificate for 127.0.0.1/localhost signed by `ca` (or self-signed).
function makeCert(name, { serial, ca, cn = 'localhost' }) {
  openssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', f(`${name}.key`));
  writeFileSync(f(`${name}.ext`), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n');
  openssl('req', '-new', '-key', f(`${name}.key`), '-subj', `/CN=${cn}`, '-out', f(`${name}.csr`));
  const sign = ca ? ['-CA', f(`${ca}.pem`), '-CAkey', f(`${ca}.key`)] : ['-signkey', f(`${name}.key`)];
  openssl('x509', '-req', '-in', f(`${name}.csr`), ...sign, '-set_serial', String(serial), '-days', '2',
    '-extfile', f(`${name}.ext`), '-out', f(`${name}.pem`));
}
function makeCa(name) {
  openssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', f(`${name}.key`));
  openssl('req', '-x509', '-new', '-key', f(`${name}.key`), '-subj', `/CN=${name}`, '-days', '2', '-out', f(`${name}.pem`));
}

// The serial of the certificate a fresh handshake sees (hex, upper case).
function peerSerial(port, ca) {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, ca, servername: 'localhost' }, () => {
      const serial = s.getPeerCertificate().serialNumber;
      s.end();
      resolve(serial);
    });
    s.on('error', reject);
  });
}
// A handshake with the given options: resolves 'ok' or the error's code/message.
function tryHandshake(port, options) {
  return new Promise((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ...options }, () => {
      const v = s.getProtocol();
      s.destroy();
      resolve(`ok ${v}`);
    });
    s.on('error', (e) => resolve(e.code ?? e.message));
  });
}

// Asynchronous: the fake provider runs in this process and must keep answering.
async function sdkOverTls(baseURL, model, ca) {
  const { stdout } = await execFileP(process.execPath, [path.join(SOURCE_DIR, 'tests/integration/tls_sdk_client.mjs'), baseURL, MASTER_KEY, model], {
    env: { ...process.env, NODE_EXTRA_CA_CERTS: ca },
    encoding: 'utf8',
    timeout: 60_000 * SLOW,
  });
  return JSON.parse(stdout.trim().split('\n').pop());
}

function openaiModel(name, base, extra = {}) {
  return { model_name: name, litellm_params: { model: 'openai/gpt-4o', api_base: `${base}/v1`, api_key: 'sk-upstream-key', ...extra } };
}

before(() => {
  dir = makeTempDir('switchyard-tls-');
  makeCa('ca');
  makeCa('other-ca');
  makeCert('server-a', { serial: 0x1001, ca: 'ca' });
  makeCert('server-b', { serial: 0x1002, ca: 'ca' });
  makeCert('self', { serial: 0x2001 });
  copyFileSync(f('server-a.pem'), f('live.pem'));
  copyFileSync(f('server-a.key'), f('live.key'));
});

after(() => stopAll());

describe('HTTPS listener', { timeout: 300_000 }, () => {
  let fake;
  let gw;
  let ca;
  before(async () => {
    fake = await startFakeProvider();
    ca = readFileSync(f('ca.pem'));
    gw = await startGateway({
      config: { model_list: [openaiModel('gpt', fake.url)] },
      args: ['--ssl_certfile_path', f('live.pem'), '--ssl_keyfile_path', f('live.key')],
      ca,
    });
  });
  after(async () => {
    await gw?.stop();
    await fake?.close();
  });

  test('the OpenAI SDK trusting the test CA: streamed and not', async () => {
    assert.match(gw.url, /^https:\/\//);
    assert.match(gw.stderr(), /switchyard listening on https:\/\/127\.0\.0\.1:\d+/);
    const r = await sdkOverTls(`${gw.url}/v1`, 'gpt', f('ca.pem'));
    assert.equal(r.error, undefined, `${r.error} ${r.cause}`);
    assert.ok(r.plain.length > 0);
    assert.equal(r.streamed, r.plain);
    assert.ok(r.chunks >= 2, `${r.chunks} chunks`);
    assert.ok(fake.requests({ path: CHAT }).length >= 2);
  });

  test('without the CA the SDK refuses the certificate', async () => {
    const r = await sdkOverTls(`${gw.url}/v1`, 'gpt', f('other-ca.pem'));
    assert.ok(r.error, JSON.stringify(r));
    assert.match(`${r.error} ${r.cause}`, /certificate|connection/i);
  });

  test('TLS 1.2 at least, AEAD ciphers only', async () => {
    assert.match(await tryHandshake(gw.port, { ca, maxVersion: 'TLSv1.3', minVersion: 'TLSv1.3' }), /^ok TLSv1\.3/);
    assert.match(await tryHandshake(gw.port, { ca, maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256' }), /^ok TLSv1\.2/);
    assert.doesNotMatch(await tryHandshake(gw.port, { ca, maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-SHA' }), /^ok/);
    assert.doesNotMatch(await tryHandshake(gw.port, { ca, minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' }), /^ok/);
  });

  test('plain HTTP to the TLS port: a 400 in clear text, then the connection closes', async () => {
    const raw = await new Promise((resolve, reject) => {
      const s = net.connect(gw.port, '127.0.0.1', () => {
        s.write('GET /health/liveliness HTTP/1.1\r\nHost: x\r\n\r\n');
      });
      let got = '';
      s.setEncoding('utf8');
      s.on('data', (d) => { got += d; });
      s.on('end', () => { s.destroy(); resolve(got); });
      s.on('error', reject);
      s.setTimeout(10_000 * SLOW, () => reject(new Error(`no close; got ${got}`)));
    });
    assert.match(raw, /^HTTP\/1\.1 400 Bad Request\r\n/);
    assert.match(raw, /Connection: close/);
    const body = JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4));
    assert.match(body.error.message, /speaks HTTPS/);
    assert.equal(body.error.code, '400');
    // fetch over http:// reads the same answer
    const r = await fetch(`http://127.0.0.1:${gw.port}/health/liveliness`);
    assert.equal(r.status, 400);
    assert.match((await r.json()).error.message, /https:\/\//);
    // and the gateway still serves HTTPS
    assert.equal((await httpsGet(`${gw.url}/health/liveliness`, { ca })).status, 200);
  });

  test('SIGHUP: new handshakes get the new certificate, open connections keep working', async () => {
    assert.equal(await peerSerial(gw.port, ca), '1001');
    // A keep-alive connection made before the reload.
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca });
    const get = () => new Promise((resolve, reject) => {
      const req = https.get(`${gw.url}/health/liveliness`, { agent, ca }, (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode, socket: req.socket }));
      });
      req.on('error', reject);
    });
    const first = await get();
    assert.equal(first.status, 200);
    copyFileSync(f('server-b.pem'), f('live.pem'));
    copyFileSync(f('server-b.key'), f('live.key'));
    gw.proc.signal('SIGHUP');
    await gw.proc.waitForStderr(/SIGHUP: TLS certificate reloaded/);
    assert.equal(await peerSerial(gw.port, ca), '1002');
    const second = await get();
    assert.equal(second.status, 200);
    assert.equal(second.socket, first.socket, 'the connection made before the reload was reused');
    assert.equal(second.socket.getPeerCertificate().serialNumber, '1001');
    agent.destroy();

    // A key that does not match: refused, the current certificate keeps serving.
    copyFileSync(f('server-a.key'), f('live.key'));
    gw.proc.signal('SIGHUP');
    await gw.proc.waitForStderr(/TLS certificate NOT reloaded, the previous one keeps serving: .*does not match the certificate/);
    assert.equal(await peerSerial(gw.port, ca), '1002');
    assert.equal((await httpsGet(`${gw.url}/health/liveliness`, { ca })).status, 200);
    copyFileSync(f('server-b.key'), f('live.key'));
  });
});

describe('HTTPS configuration', { timeout: 120_000 }, () => {
  test('general_settings.ssl_certfile_path / ssl_keyfile_path', async () => {
    const ca = readFileSync(f('ca.pem'));
    const gw = await startGateway({
      config: {
        model_list: [{ model_name: 'demo', litellm_params: { model: 'openai/demo', mock_response: 'hi' } }],
        general_settings: { ssl_certfile_path: f('server-a.pem'), ssl_keyfile_path: f('server-a.key') },
      },
      ca,
    });
    assert.match(gw.url, /^https:/);
    assert.equal(await peerSerial(gw.port, ca), '1001');
    await gw.stop();
  });

  test('bad TLS files stop the start with a clear message and exit code 2', async () => {
    const file = writeConfig({ model_list: [{ model_name: 'demo', litellm_params: { model: 'openai/demo', mock_response: 'hi' } }] });
    const cases = [
      [['--ssl_certfile_path', f('server-a.pem'), '--ssl_keyfile_path', f('missing.key')], /cannot load the private key \(ssl_keyfile_path\) '.*missing\.key'/],
      [['--ssl_certfile_path', f('missing.pem'), '--ssl_keyfile_path', f('server-a.key')], /cannot load the certificate \(ssl_certfile_path\)/],
      [['--ssl_certfile_path', f('server-a.pem')], /needs both ssl_certfile_path and ssl_keyfile_path/],
      [['--ssl_certfile_path', f('server-a.pem'), '--ssl_keyfile_path', f('server-b.key')], /does not match the certificate/],
      [['--ssl_certfile_path', f('server-a.key'), '--ssl_keyfile_path', f('server-a.key')], /cannot load the certificate/],
      [['--ssl_certfile_path', dir, '--ssl_keyfile_path', f('server-a.key')],
        /cannot load the certificate \(ssl_certfile_path\) '.*': is a directory, not a file/],
      [['--ssl_certfile_path', f('server-a.pem'), '--ssl_keyfile_path', f('missing.key')], /'.*missing\.key': No such file or directory/],
    ];
    for (const [args, re] of cases) {
      const r = await runGateway(['--config', file, '--port', '0', '--host', '127.0.0.1', ...args]);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, re);
      assert.doesNotMatch(r.stderr, /listening on/);
    }
  });
});

describe('upstream TLS (ssl_verify)', { timeout: 180_000 }, () => {
  const fakes = [];
  let selfSigned;
  before(async () => {
    selfSigned = { key: readFileSync(f('self.key')), cert: readFileSync(f('self.pem')) };
    for (let i = 0; i < 3; ++i) fakes.push(await startFakeProvider({ tls: selfSigned }));
  });
  after(async () => {
    for (const fk of fakes) await fk.close();
  });
  const ask = (model) => ({ body: { model, messages: [{ role: 'user', content: 'hi' }] } });

  test('per deployment: refused by default with a clear error, false and a CA bundle work', async () => {
    assert.match(fakes[0].url, /^https:/);
    const gw = await startGateway({
      config: {
        model_list: [
          openaiModel('strict', fakes[0].url),
          openaiModel('lenient', fakes[1].url, { ssl_verify: false }),
          openaiModel('bundle', fakes[2].url, { ssl_verify: f('self.pem') }),
        ],
        router_settings: { num_retries: 0 },
      },
    });
    const strict = await call(gw, CHAT, ask('strict'));
    assert.equal(strict.status, 500, strict.text);
    assert.equal(strict.json.error.code, '500');
    assert.match(strict.json.error.message, /certificate verify failed/);
    assert.match(strict.json.error.message, /ssl_verify/);
    assert.equal(fakes[0].requests({ path: CHAT }).length, 0);

    const lenient = await call(gw, CHAT, ask('lenient'));
    assert.equal(lenient.status, 200, lenient.text);
    assert.equal(fakes[1].requests({ path: CHAT }).length, 1);
    assert.match(gw.stderr(), /TLS certificate verification is OFF for https:\/\/127\.0\.0\.1:\d+ \(ssl_verify: false\)/);

    const bundle = await call(gw, CHAT, ask('bundle'));
    assert.equal(bundle.status, 200, bundle.text);
    assert.equal(fakes[2].requests({ path: CHAT }).length, 1);
    await gw.stop();
  });

  test('litellm_settings.ssl_verify: false covers every deployment; a bad bundle path is a config error', async () => {
    const gw = await startGateway({
      config: { model_list: [openaiModel('gpt', fakes[0].url)], litellm_settings: { ssl_verify: false } },
    });
    const r = await call(gw, CHAT, ask('gpt'));
    assert.equal(r.status, 200, r.text);
    assert.match(gw.stderr(), /TLS certificate verification is OFF for every upstream/);
    await gw.stop();

    const gw2 = await startGateway({
      config: { model_list: [openaiModel('gpt', fakes[0].url)], litellm_settings: { ssl_verify: f('ca.pem') } },
    });
    const wrong = await call(gw2, CHAT, ask('gpt'));
    assert.equal(wrong.status, 500, wrong.text);
    assert.match(wrong.json.error.message, /certificate verify failed/);
    await gw2.stop();

    const file = writeConfig({ model_list: [openaiModel('gpt', fakes[0].url, { ssl_verify: f('nope.pem') })] });
    const bad = await runGateway(['--check-config', file]);
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(bad.stderr, /model_list\[0\]\.litellm_params\.ssl_verify: CA bundle ".*nope\.pem" is not a readable file/);
  });
});

// A private redis-server speaking only TLS on a free port.
async function startTlsRedis() {
  const port = await freePort();
  const data = makeTempDir('switchyard-tls-redis-');
  const proc = spawn('redis-server', [
    '--port', '0', '--tls-port', String(port), '--bind', '127.0.0.1',
    '--tls-cert-file', f('server-a.pem'), '--tls-key-file', f('server-a.key'), '--tls-ca-cert-file', f('ca.pem'),
    '--tls-auth-clients', 'no', '--save', '', '--appendonly', 'no', '--dir', data,
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout.setEncoding('utf8');
  await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`redis-server did not start:\n${out}`)), 20_000 * SLOW);
    proc.stdout.on('data', (d) => {
      out += d;
      if (/Ready to accept connections/.test(out)) {
        clearTimeout(t);
        resolve();
      }
    });
    proc.once('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`redis-server exited ${code}:\n${out}`));
    });
  });
  return {
    port,
    cli: (...args) => execFileSync('redis-cli', ['--tls', '--cacert', f('ca.pem'), '-h', '127.0.0.1', '-p', String(port), ...args], { encoding: 'utf8' }).trim(),
    stop: () => new Promise((resolve) => {
      if (proc.exitCode !== null) return resolve();
      proc.once('exit', resolve);
      proc.kill('SIGTERM');
    }),
  };
}

describe('Redis over TLS', { timeout: 180_000 }, () => {
  let redis;
  let fake;
  before(async () => {
    fake = await startFakeProvider();
    redis = await startTlsRedis();
  });
  after(async () => {
    await redis?.stop();
    await fake?.close();
  });

  const config = (cacheParams) => ({
    model_list: [openaiModel('gpt', fake.url)],
    litellm_settings: { cache: true, cache_params: { type: 'redis', namespace: 'tls', ...cacheParams } },
  });

  test('the response cache through rediss:// (the CA from cache_params.ssl_ca_certs)', async () => {
    assert.equal(redis.cli('PING'), 'PONG');
    const gw = await startGateway({
      config: config({ url: `rediss://127.0.0.1:${redis.port}`, ssl_ca_certs: f('ca.pem') }),
      env: { SWITCHYARD_CACHE_MEMORY_MB: 0, SWITCHYARD_CACHE_REDIS_TIMEOUT_MS: 2000 },
    });
    // Connected: /cache/ping answers 200 once the first connection is up.
    const deadline = Date.now() + 15_000 * SLOW;
    let ping;
    for (;;) {
      ping = await call(gw, '/cache/ping', { method: 'GET' });
      if (ping.status === 200 || Date.now() > deadline) break;
      await delay(50);
    }
    assert.equal(ping.status, 200, ping.text);
    const m = randomUUID();
    const body = { model: 'gpt', messages: [{ role: 'user', content: `q ${m}` }], temperature: 0 };
    const a = await call(gw, CHAT, { body });
    assert.equal(a.status, 200, a.text);
    const key = a.headers.get('x-litellm-cache-key');
    // Written fire-and-forget: wait until the TLS Redis holds it.
    const until = Date.now() + 10_000 * SLOW;
    while (redis.cli('EXISTS', `tls:${key}`) !== '1' && redis.cli('--scan', '--pattern', `*${key}*`) === '') {
      assert.ok(Date.now() < until, `cache entry ${key} never reached the TLS Redis: ${redis.cli('--scan')}`);
      await delay(20);
    }
    const b = await call(gw, CHAT, { body });
    assert.equal(b.status, 200);
    assert.equal(b.json.id, a.json.id);
    const calls = fake.requests({ path: CHAT }).filter((r) => JSON.stringify(r.body).includes(m)).length;
    assert.equal(calls, 1, 'the second answer came from the TLS Redis');
    const after = await call(gw, '/cache/ping', { method: 'GET' });
    assert.equal(after.json.counters.redis_hits, 1);
    await gw.stop();
  });

  test('cache_params.ssl: true with host/port works too; a wrong CA fails clearly', async () => {
    const ok = await startGateway({
      config: config({ host: '127.0.0.1', port: redis.port, ssl: true, ssl_ca_certs: f('ca.pem') }),
    });
    const deadline = Date.now() + 15_000 * SLOW;
    let ping;
    for (;;) {
      ping = await call(ok, '/cache/ping', { method: 'GET' });
      if (ping.status === 200 || Date.now() > deadline) break;
      await delay(50);
    }
    assert.equal(ping.status, 200, ping.text);
    await ok.stop();

    const gw = await startGateway({
      config: config({ url: `rediss://127.0.0.1:${redis.port}`, ssl_ca_certs: f('other-ca.pem') }),
    });
    await gw.proc.waitForStderr(/rediss:\/\/127\.0\.0\.1:\d+: rediss: TLS handshake failed: .*certificate verify failed/, 15_000 * SLOW);
    const bad = await call(gw, '/cache/ping', { method: 'GET' });
    assert.equal(bad.status, 503, bad.text);
    // Requests are still served (a cache that cannot reach Redis counts misses).
    const r = await call(gw, CHAT, { body: { model: 'gpt', messages: [{ role: 'user', content: 'hi' }] } });
    assert.equal(r.status, 200, r.text);
    await gw.stop();
  });
});
