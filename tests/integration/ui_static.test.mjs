// The admin UI's static files through the real gateway: /ui/ (no-cache) pointing at
// content-hashed assets (immutable, their content type, the hash of their bytes), /ui ->
// /ui/, 404 for unknown assets and traversal attempts sent byte for byte, 405 for other
// methods, SWITCHYARD_UI_DIR, and a gateway without the UI files still starting.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';

import { SOURCE_DIR, makeTempDir, startGateway, stopAll } from '../lib/gateway.mjs';

const hash12 = (buf) => crypto.createHash('sha256').update(buf).digest('hex').slice(0, 12);

// GET with the path exactly as given (fetch and curl would normalise "..").
function rawGet(url, rawPath, method = 'GET') {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: u.port, method, path: rawPath, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('admin UI static files', () => {
  let gw;
  before(async () => {
    gw = await startGateway({});
  });
  after(async () => {
    await stopAll();
  });

  test('/ui/ is revalidated and names the assets by the hash of their bytes', async () => {
    const r = await fetch(`${gw.url}/ui/`);
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('content-type'), 'text/html; charset=utf-8');
    assert.equal(r.headers.get('cache-control'), 'no-cache');
    assert.match(r.headers.get('content-security-policy'), /script-src 'self'/);
    const page = await r.text();
    for (const [file, type] of [['app.js', 'text/javascript; charset=utf-8'], ['app.css', 'text/css; charset=utf-8'],
      ['favicon.svg', 'image/svg+xml']]) {
      const bytes = readFileSync(path.join(SOURCE_DIR, 'ui', file));
      const [stem, ext] = [file.slice(0, file.lastIndexOf('.')), file.slice(file.lastIndexOf('.'))];
      const url = `/ui/assets/${stem}.${hash12(bytes)}${ext}`;
      assert.ok(page.includes(`"${url}"`), `${file}: index.html should reference ${url}:\n${page}`);
      const a = await fetch(`${gw.url}${url}`);
      assert.equal(a.status, 200, url);
      assert.equal(a.headers.get('content-type'), type, url);
      assert.equal(a.headers.get('cache-control'), 'public, max-age=31536000, immutable', url);
      assert.ok(Buffer.from(await a.arrayBuffer()).equals(bytes), `${url} serves the file's bytes`);
    }
    assert.ok(!page.includes('"app.js"'), 'no unhashed reference is left');
    const red = await fetch(`${gw.url}/ui`, { redirect: 'manual' });
    assert.equal(red.status, 301);
    assert.equal(red.headers.get('location'), '/ui/');
  });

  test('unknown assets and traversal attempts are 404; other methods 405', async () => {
    for (const p of ['/ui/assets/app.js', '/ui/assets/app.000000000000.js', '/ui/app.js', '/ui/index.htm',
      '/ui/assets/../../README.md', '/ui/assets/../index.html', '/ui/../CMakeLists.txt', '/ui/assets/%2e%2e/app.js',
      '/ui/assets/..%2f..%2fREADME.md', '/ui/assets//etc/passwd']) {
      const r = await rawGet(gw.url, p);
      assert.equal(r.status, 404, `${p}: ${r.body}`);
      assert.equal(JSON.parse(r.body).error.code, '404', p);
      assert.ok(!r.body.includes('Switchyard is an LLM') && !r.body.includes('root:'), p);
    }
    const post = await rawGet(gw.url, '/ui/', 'POST');
    assert.equal(post.status, 405);
  });

  test('SWITCHYARD_UI_DIR serves another folder; without the files the gateway still starts and /ui/ is 404', async () => {
    const dir = makeTempDir('switchyard-ui-');
    mkdirSync(path.join(dir, 'ui'));
    writeFileSync(path.join(dir, 'ui', 'index.html'), '<script src="main.js"></script>');
    writeFileSync(path.join(dir, 'ui', 'main.js'), 'custom();');
    const custom = await startGateway({ env: { SWITCHYARD_UI_DIR: path.join(dir, 'ui') } });
    const page = await (await fetch(`${custom.url}/ui/`)).text();
    assert.equal(page, `<script src="/ui/assets/main.${hash12('custom();')}.js"></script>`);
    assert.match(custom.stderr(), /admin UI at \/ui\/ from .*\(1 assets\)/);

    const none = await startGateway({ env: { SWITCHYARD_UI_DIR: path.join(dir, 'missing') } });
    const r = await fetch(`${none.url}/ui/`);
    assert.equal(r.status, 404);
    assert.match((await r.json()).error.message, /admin UI is not installed .*missing/);
    assert.match(none.stderr(), /admin UI: the admin UI folder .*missing does not exist/);
    assert.equal((await fetch(`${none.url}/health/liveliness`)).status, 200);
  });
});
