// HTTP server limits: malformed JSON, body size, slow headers, huge headers; the server keeps
// serving everyone else.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';

import {
  MASTER_KEY, SLOW, call, curlHttp, fetchWithTimeout, mockModel, openaiErrorProblems, startGateway, stopAll,
} from '../lib/gateway.mjs';

const HEADER_TIMEOUT_MS = 1000;
let gw;

before(async () => {
  gw = await startGateway({
    config: {
      model_list: [mockModel('demo', 'still here')],
      general_settings: { max_request_size_mb: 1 },
    },
    // The header-read timeout, shortened so the slow-header test is quick.
    // (SWITCHYARD_HEADER_TIMEOUT_MS: a test knob of the binary.) The keep-alive idle timeout
    // stays at its default: a short one races with fetch's pooled connections.
    env: { SWITCHYARD_HEADER_TIMEOUT_MS: String(HEADER_TIMEOUT_MS) },
  });
});
after(() => stopAll());

const CHAT = { model: 'demo', messages: [{ role: 'user', content: 'hi' }] };

async function stillServing() {
  const r = await call(gw, '/v1/chat/completions', { body: CHAT, timeoutMs: 5000 });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.choices[0].message.content, 'still here');
}

// Opens a raw TCP connection, writes `data`, collects everything until the server closes
// or timeoutMs passes. Resolves {text, closed, elapsed}.
function rawExchange(data, { timeoutMs = 5000, onConnect } = {}) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(gw.port, '127.0.0.1');
    const t0 = performance.now();
    let text = '';
    let finished = false;
    const finish = (closed) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      sock.destroy();
      resolve({ text, closed, elapsed: performance.now() - t0 });
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    sock.setEncoding('latin1');
    sock.on('data', (d) => {
      text += d;
    });
    sock.on('end', () => finish(true));
    sock.on('close', () => finish(true));
    // A server that answers early (413, 431) and closes may reset a connection we still
    // write to: that ends the exchange; the caller checks what was received.
    sock.on('error', (e) => (['ECONNRESET', 'EPIPE'].includes(e.code) || text ? finish(true) : reject(e)));
    sock.on('connect', () => {
      if (data) sock.write(data);
      onConnect?.(sock);
    });
  });
}

const statusOf = (raw) => Number((raw.match(/^HTTP\/1\.[01] (\d{3})/) ?? [])[1] ?? 0);
const bodyOf = (raw) => {
  const i = raw.indexOf('\r\n\r\n');
  return i < 0 ? '' : raw.slice(i + 4);
};

describe('bad requests', () => {
  test('malformed JSON body: 400, OpenAI-shaped (curl)', async () => {
    const r = await curlHttp([`${gw.url}/v1/chat/completions`, '-H', `Authorization: Bearer ${MASTER_KEY}`,
      '-H', 'content-type: application/json', '-d', '{"model": "demo", "messages": [']);
    assert.equal(r.status, 400, r.body);
    const j = JSON.parse(r.body);
    assert.deepEqual(openaiErrorProblems(j, 400), []);
    await stillServing();
  });

  test('JSON that is not an object, and a missing model: 400', async () => {
    const a = await call(gw, '/v1/chat/completions', { body: '[1,2,3]' });
    assert.equal(a.status, 400, a.text);
    assert.deepEqual(openaiErrorProblems(a.json, 400), []);
    const b = await call(gw, '/v1/chat/completions', { body: { messages: [] } });
    assert.equal(b.status, 400, b.text);
    assert.deepEqual(openaiErrorProblems(b.json, 400), []);
  });

  test('body larger than max_request_size_mb (1 MB; 2 MB sent): 413', async () => {
    // The server answers as soon as it has the head, while the client is still sending;
    // it must then keep reading (a lingering close), or the kernel resets the connection
    // and the client loses the answer. So: no fallback, the SDK-like client sees the 413.
    const big = JSON.stringify({ ...CHAT, messages: [{ role: 'user', content: 'x'.repeat(2 * 1024 * 1024) }] });
    const res = await fetchWithTimeout(`${gw.url}/v1/chat/completions`, {
      method: 'POST', headers: { authorization: `Bearer ${MASTER_KEY}`, 'content-type': 'application/json' },
      body: big, timeoutMs: 10_000,
    });
    const text = await res.text();
    assert.equal(res.status, 413, text);
    assert.deepEqual(openaiErrorProblems(JSON.parse(text), 413), []);
    await stillServing();
  });

  test('chunked body over the limit: 413 too', async () => {
    const head = `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${MASTER_KEY}\r\n` +
      'Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n';
    const piece = 'x'.repeat(64 * 1024);
    const raw = await rawExchange(null, {
      timeoutMs: 10_000,
      onConnect: async (sock) => {
        // Paced: 64 KiB chunks, each written once the previous one left, until the server
        // answers or 2 MiB are out; then the terminating chunk.
        let answered = false;
        sock.once('data', () => {
          answered = true;
        });
        const write = (d) => new Promise((res) => sock.write(d, () => res()));
        await write(head);
        for (let sent = 0; sent < 2 * 1024 * 1024 && !answered && !sock.destroyed; sent += piece.length) {
          await write(`${piece.length.toString(16)}\r\n${piece}\r\n`);
        }
        if (!answered && !sock.destroyed) sock.write('0\r\n\r\n');
      },
    });
    assert.equal(statusOf(raw.text), 413, raw.text.slice(0, 300));
    assert.deepEqual(openaiErrorProblems(JSON.parse(bodyOf(raw.text).replace(/^[0-9a-f]+\r\n/, '').split('\r\n')[0]), 413), []);
    await stillServing();
  });

  test('garbage request line: 400 (or closed), server stays up', async () => {
    const raw = await rawExchange('THIS IS NOT HTTP\r\n\r\n', { timeoutMs: 3000 });
    assert.ok(raw.closed || statusOf(raw.text) === 400, raw.text);
    if (raw.text) assert.equal(statusOf(raw.text), 400, raw.text);
    await stillServing();
  });

  test('header too large: 431 (or 400), server stays up', async () => {
    const huge = 'a'.repeat(128 * 1024);
    const raw = await rawExchange(
      `GET /health/liveliness HTTP/1.1\r\nHost: x\r\nX-Huge: ${huge}\r\n\r\n`, { timeoutMs: 5000 });
    const st = statusOf(raw.text);
    assert.ok(st === 431 || st === 400, `status ${st}: ${raw.text.slice(0, 200)}`);
    await stillServing();
  });

  test('slow headers: 408 (or close) within the header timeout, others served meanwhile', async () => {
    const slow = rawExchange('POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Ty', {
      timeoutMs: HEADER_TIMEOUT_MS * 4 * SLOW + 2000,
    });
    // While the slow client hangs, others are served at full speed.
    for (let i = 0; i < 3; ++i) {
      const t0 = performance.now();
      await stillServing();
      assert.ok(performance.now() - t0 < 1000 * SLOW);
    }
    const raw = await slow;
    assert.ok(raw.closed, `connection still open after ${raw.elapsed.toFixed(0)} ms`);
    if (raw.text) {
      assert.equal(statusOf(raw.text), 408, raw.text);
      assert.deepEqual(openaiErrorProblems(JSON.parse(bodyOf(raw.text)), 408), []);
    }
    assert.ok(raw.elapsed >= HEADER_TIMEOUT_MS * 0.8, `closed after only ${raw.elapsed.toFixed(0)} ms`);
    assert.ok(raw.elapsed < HEADER_TIMEOUT_MS * 3 * SLOW + 1000, `closed after ${raw.elapsed.toFixed(0)} ms`);
    await stillServing();
  });

  test('a connection that sends nothing is closed by the header timeout; the server stays up', async () => {
    const raw = await rawExchange(null, { timeoutMs: HEADER_TIMEOUT_MS * 4 * SLOW + 2000 });
    assert.ok(raw.closed);
    await stillServing();
  });

  test('unknown path: 404 OpenAI-shaped; wrong method: 405', async () => {
    const a = await call(gw, '/v1/definitely-not-here', { method: 'GET' });
    assert.equal(a.status, 404);
    assert.deepEqual(openaiErrorProblems(a.json, 404), []);
    const b = await call(gw, '/v1/chat/completions', { method: 'GET' });
    assert.equal(b.status, 405);
    assert.deepEqual(openaiErrorProblems(b.json, 405), []);
    // RFC 9110: a 405 names what the path takes.
    assert.equal(b.headers.get('allow'), 'POST');
    assert.equal((await call(gw, '/health/liveliness', { method: 'POST' })).headers.get('allow'), 'GET, HEAD');
    assert.equal((await call(gw, '/key/generate', { method: 'GET' })).headers.get('allow'), 'POST');
  });

  test('keep-alive: several requests on one connection', async () => {
    const req = `GET /health/liveliness HTTP/1.1\r\nHost: x\r\n\r\n`;
    const raw = await rawExchange(null, {
      timeoutMs: 3000,
      onConnect: (sock) => {
        sock.write(req + req);
        setTimeout(() => sock.write(`GET /health/liveliness HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`), 100);
      },
    });
    assert.equal((raw.text.match(/HTTP\/1\.1 200/g) ?? []).length, 3, raw.text);
    assert.ok(raw.closed, 'Connection: close was not honoured');
  });
});

// RFC 9112 request framing the server must (or should) accept or refuse, on raw sockets.
describe('request line and Host (RFC 9112)', () => {
  const chatBody = JSON.stringify(CHAT);
  const chatHead = (target, host = 'Host: x\r\n') => `POST ${target} HTTP/1.1\r\n${host}Authorization: Bearer ${MASTER_KEY}\r\n` +
    `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(chatBody)}\r\nConnection: close\r\n\r\n`;

  test('an absolute-form target is served as the path it names', async () => {
    const raw = await rawExchange(chatHead(`http://127.0.0.1:${gw.port}/v1/chat/completions`, `Host: 127.0.0.1:${gw.port}\r\n`) + chatBody);
    assert.equal(statusOf(raw.text), 200, raw.text);
    assert.equal(JSON.parse(bodyOf(raw.text)).choices[0].message.content, 'still here');
    // With a query, and with no path at all (the root).
    const health = await rawExchange(`GET http://127.0.0.1:${gw.port}/health/liveliness?x=1 HTTP/1.1\r\nHost: 127.0.0.1:${gw.port}\r\nConnection: close\r\n\r\n`);
    assert.equal(statusOf(health.text), 200, health.text);
  });

  test('an HTTP/1.1 request without Host, or with two, gets 400; HTTP/1.0 needs none', async () => {
    for (const host of ['', 'Host: x\r\nHost: y\r\n']) {
      const raw = await rawExchange(chatHead('/v1/chat/completions', host) + chatBody);
      assert.equal(statusOf(raw.text), 400, raw.text);
      assert.deepEqual(openaiErrorProblems(JSON.parse(bodyOf(raw.text)), 400), []);
      assert.match(JSON.parse(bodyOf(raw.text)).error.message, /Host/);
    }
    const old = await rawExchange('GET /health/liveliness HTTP/1.0\r\n\r\n');
    assert.equal(statusOf(old.text), 200, old.text);
    const probe = await curlHttp(['-0', `${gw.url}/health/liveliness`]);
    assert.equal(probe.status, 200, probe.body);
    await stillServing();
  });

  test('an invalid Host value, or userinfo in an absolute-form target, gets 400; ports and IPv6 literals pass', async () => {
    const refused = [
      'Host: bad host\r\n',            // a space
      'Host: x\ty\r\n',                // a control character
      'Host: x:abc\r\n',               // a port that is not a number
      'Host: x:99999\r\n',             // past 65535
      'Host: a.example, b.example\r\n',  // more than one host in the field
      'Host: a.example,b.example\r\n',
      'Host: user@x\r\n',              // userinfo
      'Host: [::1\r\n',                // an unclosed IP literal
      'Host: [not-ipv6]:80\r\n',
      'Host: x/y\r\n',
    ];
    for (const host of refused) {
      const raw = await rawExchange(chatHead('/v1/chat/completions', host) + chatBody);
      assert.equal(statusOf(raw.text), 400, `${JSON.stringify(host)}: ${raw.text}`);
      assert.deepEqual(openaiErrorProblems(JSON.parse(bodyOf(raw.text)), 400), []);
      assert.match(JSON.parse(bodyOf(raw.text)).error.message, /Host/);
    }
    // Userinfo in the request target (RFC 9110, 4.2.4), with or without a password.
    for (const auth of ['user@', 'user:secret@']) {
      const raw = await rawExchange(chatHead(`http://${auth}127.0.0.1:${gw.port}/v1/chat/completions`,
        `Host: 127.0.0.1:${gw.port}\r\n`) + chatBody);
      assert.equal(statusOf(raw.text), 400, raw.text);
      assert.deepEqual(openaiErrorProblems(JSON.parse(bodyOf(raw.text)), 400), []);
      assert.match(JSON.parse(bodyOf(raw.text)).error.message, /userinfo/);
    }
    // An absolute-form target's authority is checked as a Host field would be.
    const badAuthority = await rawExchange(chatHead('http://x:abc/v1/chat/completions') + chatBody);
    assert.equal(statusOf(badAuthority.text), 400, badAuthority.text);
    // What clients send: a name, a name with a port, IPv4 and IPv6 literals with and
    // without a port, the empty value RFC 9110 allows.
    for (const host of ['Host: localhost\r\n', `Host: 127.0.0.1:${gw.port}\r\n`, 'Host: [::1]:4000\r\n',
      'Host: [::1]\r\n', 'Host: api.example.com\r\n', 'Host: my_host.internal:80\r\n', 'Host:\r\n']) {
      const raw = await rawExchange(chatHead('/v1/chat/completions', host) + chatBody);
      assert.equal(statusOf(raw.text), 200, `${JSON.stringify(host)}: ${raw.text}`);
    }
    // Through Beast's parser too (HTTP/1.0, which the plain head parser leaves to it).
    const old = await rawExchange('GET /health/liveliness HTTP/1.0\r\nHost: bad host\r\n\r\n');
    assert.equal(statusOf(old.text), 400, old.text);
    const oldOk = await rawExchange('GET /health/liveliness HTTP/1.0\r\nHost: [::1]:4000\r\n\r\n');
    assert.equal(statusOf(oldOk.text), 200, oldOk.text);
    const probe = await curlHttp([`${gw.url}/health/liveliness`]);
    assert.equal(probe.status, 200, probe.body);
    await stillServing();
  });

  test('empty lines before the request line are ignored (a few of them)', async () => {
    const raw = await rawExchange(`\r\n\r\n${chatHead('/v1/chat/completions')}${chatBody}`);
    assert.equal(statusOf(raw.text), 200, raw.text);
    // The CRLF some clients send after a POST body, before the next request on the connection.
    const get = 'GET /health/liveliness HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n';
    const two = await rawExchange(`${chatHead('/v1/chat/completions').replace('Connection: close\r\n', '')}${chatBody}\r\n${get}`);
    assert.equal((two.text.match(/HTTP\/1\.1 200/g) ?? []).length, 2, two.text);
    // Not without bound.
    const many = await rawExchange(`${'\r\n'.repeat(64)}${get}`);
    assert.equal(statusOf(many.text), 400, many.text);
  });
});
