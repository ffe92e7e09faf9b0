// Loads every admin UI page in headless Chromium and prints, per page, the time until it
// has rendered its data (main[data-ready="true"]) and the API calls it made: a cold load
// (the whole page, /ui/#/<route>, browser cache empty) and in-app navigation (a hash
// change), RUNS times each; medians and the slowest run. Signs in with the password form
// (UI_PASSWORD defaults to the master key). Used by bench/ui_pages.sh.
//
//   node bench/ui_pages.mjs URL MASTER_KEY [RUNS]
import path from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, '..', 'tests', 'package.json'));
const puppeteer = (await import(require.resolve('puppeteer-core'))).default;

const [url, master, runsArg] = process.argv.slice(2);
const RUNS = Number(runsArg || 7);
const ROUTES = ['overview', 'keys', 'teams', 'users', 'orgs', 'budgets', 'models', 'logs'];

const profile = mkdtempSync(path.join(os.tmpdir(), 'switchyard-ui-bench-'));
const browser = await puppeteer.launch({
  executablePath: '/usr/bin/chromium',
  headless: true,
  userDataDir: profile,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
});
const page = await browser.newPage();
await page.setViewport({ width: 1280, height: 860 });
const calls = [];
page.on('request', (r) => {
  if (['fetch', 'xhr'].includes(r.resourceType())) calls.push(new URL(r.url()).pathname);
});

await page.goto(`${url}/ui/`);
await page.waitForSelector('input[name=username]');
await page.type('input[name=username]', 'admin');
await page.type('input[name=password]', master);
await Promise.all([page.waitForNavigation(), page.click('form[action="/login"] button')]);
await page.waitForSelector('[data-testid=who]');

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
let visit = 0;

async function ready(route) {
  await page.waitForSelector(`main[data-route="${route}"][data-ready]`, { timeout: 60_000 });
  const state = await page.$eval('main', (m) => m.dataset.ready);
  if (state !== 'true') throw new Error(`${route}: ${await page.$eval('main', (m) => m.innerText)}`);
}

const rows = [];
for (const route of ROUTES) {
  const cold = [];
  const warm = [];
  let apiCalls = 0;
  for (let i = 0; i < RUNS + 1; i++) {
    // Cold: a new document with an empty cache (the first run warms Postgres and is dropped).
    await page.setCacheEnabled(false);
    calls.length = 0;
    const t0 = performance.now();
    await page.goto(`${url}/ui/#/${route}?v=${++visit}`);
    await ready(route);
    const t = performance.now() - t0;
    // Subtract nothing: from the request of the page to its data on screen.
    if (i > 0) cold.push(t);
    apiCalls = calls.filter((p) => p !== '/sso/session').length;
    await page.setCacheEnabled(true);
    // Warm: the hash change inside the running page (another route first).
    await page.evaluate(() => { location.hash = '#/models'; });
    await ready('models');
    calls.length = 0;
    const w = await page.evaluate(async (r, v) => {
      const start = performance.now();
      document.querySelector('main')?.removeAttribute('data-ready');
      location.hash = `#/${r}?v=${v}`;
      for (;;) {
        const m = document.querySelector(`main[data-route="${r}"][data-ready]`);
        if (m) return performance.now() - start;
        await new Promise((res) => requestAnimationFrame(res));
      }
    }, route, ++visit);
    if (i > 0) warm.push(w);
  }
  rows.push({ route, cold, warm, apiCalls });
}

console.log(`| page | API calls (besides /sso/session) | cold load, median (max) | in-app navigation, median (max) |`);
console.log('|---|---|---|---|');
for (const r of rows) {
  const f = (xs) => `${median(xs).toFixed(0)} ms (${Math.max(...xs).toFixed(0)} ms)`;
  console.log(`| \`#/${r.route}\` | ${r.apiCalls} | ${f(r.cold)} | ${f(r.warm)} |`);
}
await browser.close();
rmSync(profile, { recursive: true, force: true });
