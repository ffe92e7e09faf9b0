// /metrics end to end: a load of requests through the real binary (two teams, a key in
// each, some answered with a provider error, some streamed, some refused at auth) and the
// Prometheus counters checked against what the fake provider received and what the spend
// writer stored in spend_logs, exactly; `promtool check metrics` on the real output;
// OpenMetrics on request; require_auth_for_metrics_endpoint; SWITCHYARD_DISABLE_METRICS=1.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import OpenAI from 'openai';

import { startFakeProvider } from '../fake_provider/server.mjs';
import {
  call, delay, fetchWithTimeout, mockModel, psql, SLOW, startGateway, stopAll, until, withDatabase,
} from '../lib/gateway.mjs';

const SERVER_URL = process.env.SWITCHYARD_TEST_DATABASE_URL;
const skipDb = !SERVER_URL && 'SWITCHYARD_TEST_DATABASE_URL not set (scripts/test.sh sets it)';
const LOAD = Number(process.env.SWITCHYARD_METRICS_LOAD ?? 300);

function havePromtool() {
  try {
    execFileSync('promtool', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

// Prometheus text format -> [{name, labels, value}] (comments skipped).
export function parseMetrics(text) {
  const out = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$/);
    assert.ok(m, `not a sample line: ${line}`);
    const labels = {};
    if (m[3]) {
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)/g;
      let lm;
      while ((lm = re.exec(m[3])) !== null) {
        labels[lm[1]] = lm[2].replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
      }
    }
    out.push({ name: m[1], labels, value: Number(m[4]) });
  }
  return out;
}

// Sum of the samples named `name` whose labels include `where`.
function sum(samples, name, where = {}) {
  let s = 0;
  for (const x of samples) {
    if (x.name !== name) continue;
    if (Object.entries(where).every(([k, v]) => x.labels[k] === v)) s += x.value;
  }
  return s;
}

// A quantile of a histogram (all series summed) from its cumulative buckets, as
// histogram_quantile() estimates it (linear within the bucket).
function quantile(samples, name, q) {
  const buckets = new Map();
  for (const x of samples) {
    if (x.name !== `${name}_bucket`) continue;
    const le = x.labels.le === '+Inf' ? Infinity : Number(x.labels.le);
    buckets.set(le, (buckets.get(le) ?? 0) + x.value);
  }
  const les = [...buckets.keys()].sort((a, b) => a - b);
  const total = buckets.get(Infinity) ?? 0;
  const rank = q * total;
  let prevLe = 0;
  let prevCount = 0;
  for (const le of les) {
    const c = buckets.get(le);
    if (c >= rank) {
      if (le === Infinity) return prevLe;
      return prevLe + (le - prevLe) * ((rank - prevCount) / Math.max(1, c - prevCount));
    }
    prevLe = le;
    prevCount = c;
  }
  return NaN;
}

const close = (a, b) => Math.abs(a - b) <= 1e-9 + 1e-9 * Math.abs(b);

describe('metrics under load, against the fake provider and spend_logs', { skip: skipDb }, () => {
  const dbName = `swy_metrics_${process.pid}_${Date.now()}`;
  let dbUrl;
  let gw;
  let fake;
  const keys = {};

  before(async () => {
    fake = await startFakeProvider();
    psql(SERVER_URL, `CREATE DATABASE ${dbName}`);
    dbUrl = withDatabase(SERVER_URL, dbName);
    gw = await startGateway({
      config: {
        model_list: [
          { model_name: 'gpt4o', litellm_params: { model: 'openai/gpt-4o', api_base: `${fake.url}/v1`, api_key: 'sk-up' } },
          // Answered with a 400 by the fake provider (scripted below): no retry, no cooldown.
          { model_name: 'broken', litellm_params: { model: 'openai/broken-model', api_base: `${fake.url}/v1`, api_key: 'sk-up' } },
        ],
        router_settings: { num_retries: 0 },
        litellm_settings: { callbacks: ['prometheus'] },
      },
      env: { DATABASE_URL: dbUrl, SWITCHYARD_DATA_DIR: `/tmp/${dbName}` },
    });
    await gw.proc.waitForStderr(/schema up to date/, 15_000 * SLOW);
    for (const [team, alias] of [['alpha', 'key-a'], ['beta', 'key-b']]) {
      const t = await call(gw, '/team/new', { body: { team_alias: team } });
      assert.equal(t.status, 200, t.text);
      const k = await call(gw, '/key/generate', { body: { team_id: t.json.team_id, key_alias: alias, max_budget: 100 } });
      assert.equal(k.status, 200, k.text);
      keys[team] = { key: k.json.key, hash: k.json.token, teamId: t.json.team_id, alias };
    }
    fake.script([{ match: { model: 'broken-model' }, times: -1, status: 400, error_message: 'bad things' }]);
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

  test(`${LOAD} requests: counters equal the provider's counts and the spend log; promtool accepts the output`, async () => {
    const clients = {
      alpha: new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: keys.alpha.key, maxRetries: 0, timeout: 30_000 }),
      beta: new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: keys.beta.key, maxRetries: 0, timeout: 30_000 }),
    };
    const expected = { alpha: { ok: 0, failed: 0, streamed: 0 }, beta: { ok: 0, failed: 0, streamed: 0 } };
    let refused = 0;
    const one = async (i) => {
      const team = i % 2 === 0 ? 'alpha' : 'beta';
      const kind = i % 10;
      const messages = [{ role: 'user', content: `request number ${i} says hello` }];
      if (kind === 9) {
        // Refused at auth: counted by the proxy counters only, no spend row.
        const r = await fetchWithTimeout(`${gw.url}/v1/chat/completions`, {
          method: 'POST',
          headers: { authorization: 'Bearer sk-not-a-key', 'content-type': 'application/json' },
          body: JSON.stringify({ model: 'gpt4o', messages }),
          timeoutMs: 30_000,
        });
        await r.arrayBuffer();
        assert.equal(r.status, 401);
        refused += 1;
      } else if (kind === 7 || kind === 8) {
        await assert.rejects(clients[team].chat.completions.create({ model: 'broken', messages }), (e) => e.status === 400);
        expected[team].failed += 1;
      } else if (kind >= 4) {
        const stream = await clients[team].chat.completions.create({
          model: 'gpt4o', messages, stream: true, stream_options: { include_usage: true },
        });
        let text = '';
        for await (const c of stream) text += c.choices[0]?.delta?.content ?? '';
        assert.ok(text.length > 0);
        expected[team].ok += 1;
        expected[team].streamed += 1;
      } else {
        const r = await clients[team].chat.completions.create({ model: 'gpt4o', messages });
        assert.ok(r.choices[0].message.content.length > 0);
        expected[team].ok += 1;
      }
    };
    const concurrency = 16;
    let next = 0;
    await Promise.all(Array.from({ length: concurrency }, async () => {
      while (next < LOAD) await one(next++);
    }));

    // Wait for the spend writer: every authenticated request has its row.
    const rows = expected.alpha.ok + expected.alpha.failed + expected.beta.ok + expected.beta.failed;
    const deadline = Date.now() + 30_000 * SLOW;
    for (;;) {
      const n = Number(psql(dbUrl, 'SELECT count(*) FROM spend_logs'));
      if (n === rows) break;
      assert.ok(n < rows, `more spend rows (${n}) than requests (${rows})`);
      if (Date.now() > deadline) assert.fail(`only ${n} of ${rows} spend rows within the deadline`);
      await delay(50);
    }

    const r = await fetchWithTimeout(`${gw.url}/metrics`);
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
    const text = await r.text();
    const m = parseMetrics(text);
    const provider = fake.requests().filter((q) => q.path === '/v1/chat/completions');

    // Every provider call is a deployment request; successes and failures split them.
    assert.equal(sum(m, 'litellm_deployment_total_requests_total'), provider.length);
    assert.equal(sum(m, 'litellm_deployment_failure_responses_total'),
      provider.filter((q) => q.reply.status >= 400).length);
    assert.equal(sum(m, 'litellm_deployment_success_responses_total'),
      provider.filter((q) => q.reply.status < 400).length);
    assert.equal(sum(m, 'litellm_deployment_failure_responses_total', { exception_status: '400', exception_class: 'BadRequestError' }),
      expected.alpha.failed + expected.beta.failed);
    assert.equal(sum(m, 'litellm_requests_metric_total'), provider.length);
    // Tokens: what the provider reported.
    const providerPrompt = provider.reduce((s, q) => s + (q.reply.usage?.prompt_tokens ?? 0), 0);
    const providerCompletion = provider.reduce((s, q) => s + (q.reply.usage?.completion_tokens ?? 0), 0);
    assert.equal(sum(m, 'litellm_input_tokens_metric_total'), providerPrompt);
    assert.equal(sum(m, 'litellm_output_tokens_metric_total'), providerCompletion);
    assert.equal(sum(m, 'litellm_total_tokens_metric_total'), providerPrompt + providerCompletion);
    // Refusals at auth: counted by the proxy, with no key.
    assert.equal(sum(m, 'litellm_proxy_total_requests_metric_total', { hashed_api_key: '', status_code: '401' }), refused);
    assert.equal(sum(m, 'litellm_proxy_failed_requests_metric_total', { exception_status: '401' }), refused);

    for (const team of ['alpha', 'beta']) {
      const k = keys[team];
      const who = { hashed_api_key: k.hash, api_key_alias: k.alias, team: k.teamId, team_alias: team };
      const q = (sql) => psql(dbUrl, `${sql} FROM spend_logs WHERE api_key = '${k.hash}'`);
      const [n, ok, failed] = q("SELECT count(*), count(*) FILTER (WHERE status = 'success'), count(*) FILTER (WHERE status <> 'success')")
        .split('|').map(Number);
      assert.equal(n, expected[team].ok + expected[team].failed);
      assert.equal(ok, expected[team].ok);
      assert.equal(failed, expected[team].failed);
      assert.equal(sum(m, 'litellm_proxy_total_requests_metric_total', who), n, team);
      assert.equal(sum(m, 'litellm_proxy_total_requests_metric_total', { ...who, status_code: '200' }), ok, team);
      assert.equal(sum(m, 'litellm_proxy_failed_requests_metric_total', who), failed, team);
      assert.equal(sum(m, 'litellm_requests_metric_total', who), n, team);
      const [spend, prompt, completion] = q('SELECT sum(spend), sum(prompt_tokens), sum(completion_tokens)').split('|').map(Number);
      assert.ok(spend > 0);
      assert.ok(close(sum(m, 'litellm_spend_metric_total', who), spend), `${team}: ${sum(m, 'litellm_spend_metric_total', who)} != ${spend}`);
      assert.equal(sum(m, 'litellm_input_tokens_metric_total', who), prompt, team);
      assert.equal(sum(m, 'litellm_output_tokens_metric_total', who), completion, team);
      assert.equal(sum(m, 'litellm_request_total_latency_metric_count', who), n, team);
      // Time to first token: streams only.
      assert.equal(sum(m, 'litellm_llm_api_time_to_first_token_metric_count', { hashed_api_key: k.hash }),
        expected[team].streamed, team);
      assert.equal(sum(m, 'litellm_api_key_max_budget_metric', { hashed_api_key: k.hash }), 100);
    }
    // Latencies: one observation per request that reached a provider.
    assert.equal(sum(m, 'litellm_llm_api_latency_metric_count'), provider.length);
    assert.equal(sum(m, 'litellm_overhead_latency_metric_count'), provider.length);
    // Our own gauges are there and plausible.
    assert.equal(sum(m, 'switchyard_postgres_up'), 1);
    assert.equal(sum(m, 'switchyard_spend_queue_rows'), 0);
    assert.equal(sum(m, 'switchyard_spend_flush_failures_total'), 0);
    assert.ok(sum(m, 'switchyard_spend_rows_written_total') >= rows);
    assert.ok(sum(m, 'switchyard_open_connections') >= 1);
    assert.ok(sum(m, 'switchyard_event_loop_lag_seconds_count') >= 0);
    assert.ok(sum(m, 'switchyard_key_cache_hits_total') > 0);
    assert.equal(sum(m, 'switchyard_config_info'), 1);
    assert.equal(sum(m, 'litellm_deployment_state'), 0 + 1);  // gpt4o healthy (0), broken: last call failed (1)

    const p50 = quantile(m, 'litellm_overhead_latency_metric', 0.5);
    const p99 = quantile(m, 'litellm_overhead_latency_metric', 0.99);
    console.log(`# overhead over ${provider.length} provider calls: p50 ${(p50 * 1000).toFixed(3)} ms, p99 ${(p99 * 1000).toFixed(3)} ms`);

    if (havePromtool()) {
      execFileSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    } else {
      console.log('# promtool not installed (Debian package prometheus): the format check is skipped');
    }
  });

  test('OpenMetrics when Accept asks for it', async () => {
    const r = await fetchWithTimeout(`${gw.url}/metrics`, { headers: { accept: 'application/openmetrics-text; version=1.0.0' } });
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type'), /^application\/openmetrics-text; version=1\.0\.0/);
    const text = await r.text();
    assert.ok(text.endsWith('# EOF\n'));
    assert.match(text, /^# TYPE litellm_spend_metric counter$/m);
    assert.match(text, /^litellm_spend_metric_total\{/m);
  });

  test('readiness lists prometheus among the success callbacks', async () => {
    const r = await fetchWithTimeout(`${gw.url}/health/readiness`);
    const j = await r.json();
    assert.equal(j.status, 'healthy');
    assert.deepEqual(j.success_callbacks, ['prometheus']);
  });

  test('a key given a max_budget after its first request gets the budget gauges', async () => {
    const k = await call(gw, '/key/generate', { body: { key_alias: 'late-budget' } });
    assert.equal(k.status, 200, k.text);
    const ask = () => call(gw, '/v1/chat/completions', { key: k.json.key, body: { model: 'gpt4o', messages: [{ role: 'user', content: 'hi' }] } });
    assert.equal((await ask()).status, 200);
    let m = parseMetrics(await (await fetchWithTimeout(`${gw.url}/metrics`)).text());
    assert.equal(m.filter((x) => x.name === 'litellm_api_key_max_budget_metric' && x.labels.hashed_api_key === k.json.token).length, 0);
    const u = await call(gw, '/key/update', { body: { key: k.json.key, max_budget: 42 } });
    assert.equal(u.status, 200, u.text);
    // The key's record in memory follows the update: each request from then on carries the budget.
    await until('the max budget gauge of the key', async () => {
      assert.equal((await ask()).status, 200);
      m = parseMetrics(await (await fetchWithTimeout(`${gw.url}/metrics`)).text());
      return sum(m, 'litellm_api_key_max_budget_metric', { hashed_api_key: k.json.token }) === 42;
    });
    const remaining = m.filter((x) => x.name === 'litellm_remaining_api_key_budget_metric' && x.labels.hashed_api_key === k.json.token);
    assert.equal(remaining.length, 1);
    assert.equal(remaining[0].labels.api_key_alias, 'late-budget');
    assert.ok(remaining[0].value > 0 && remaining[0].value <= 42);
  });
});

describe('/metrics access', () => {
  after(() => stopAll());

  test('open by default, and served with no callback configured', async () => {
    const gw = await startGateway({ config: { model_list: [mockModel('demo')] } });
    const r = await fetchWithTimeout(`${gw.url}/metrics`);
    assert.equal(r.status, 200);
    const text = await r.text();
    assert.match(text, /^# TYPE litellm_proxy_total_requests_metric_total counter$/m);
    if (havePromtool()) execFileSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    const slash = await fetchWithTimeout(`${gw.url}/metrics/`);
    assert.equal(slash.status, 200);
    await slash.arrayBuffer();
    const post = await fetchWithTimeout(`${gw.url}/metrics`, { method: 'POST' });
    assert.equal(post.status, 405);
    await post.arrayBuffer();
  });

  test('a refused request leaves no empty series of an LLM call', async () => {
    const gw = await startGateway({ config: { model_list: [mockModel('demo')] } });
    const bad = await call(gw, '/v1/chat/completions', { body: { model: 'no-such-model', messages: [{ role: 'user', content: 'hi' }] } });
    assert.equal(bad.status, 400);
    const anon = await call(gw, '/v1/chat/completions', { key: 'sk-wrong', body: { model: 'demo', messages: [{ role: 'user', content: 'hi' }] } });
    assert.equal(anon.status, 401);
    const m = parseMetrics(await (await fetchWithTimeout(`${gw.url}/metrics`)).text());
    // Both are counted as requests to the proxy, failed, with their latency...
    assert.equal(sum(m, 'litellm_proxy_total_requests_metric_total'), 2);
    assert.equal(sum(m, 'litellm_proxy_failed_requests_metric_total'), 2);
    assert.equal(sum(m, 'litellm_request_total_latency_metric_count'), 2);
    // ...but no LLM call was made: none of its series exists, not even at zero (each would
    // hold one of the capped series of its metric for nothing).
    for (const name of ['litellm_requests_metric_total', 'litellm_spend_metric_total', 'litellm_total_tokens_metric_total',
      'litellm_input_tokens_metric_total', 'litellm_output_tokens_metric_total', 'litellm_llm_api_latency_metric_count',
      'litellm_overhead_latency_metric_count']) {
      assert.deepEqual(m.filter((x) => x.name === name), [], name);
    }
  });

  test('require_auth_for_metrics_endpoint: a key is needed', async () => {
    const gw = await startGateway({
      config: { model_list: [mockModel('demo')], litellm_settings: { require_auth_for_metrics_endpoint: true } },
    });
    const anon = await fetchWithTimeout(`${gw.url}/metrics`);
    assert.equal(anon.status, 401);
    const body = await anon.json();
    assert.equal(body.error.type, 'auth_error');
    const bad = await fetchWithTimeout(`${gw.url}/metrics`, { headers: { authorization: 'Bearer sk-wrong' } });
    assert.equal(bad.status, 401);
    await bad.arrayBuffer();
    const ok = await fetchWithTimeout(`${gw.url}/metrics`, { headers: { authorization: `Bearer ${gw.masterKey}` } });
    assert.equal(ok.status, 200);
    assert.match(await ok.text(), /litellm_requests_metric_total/);
  });

  test('SWITCHYARD_DISABLE_METRICS=1: /metrics is 404 and readiness lists no callback', async () => {
    const gw = await startGateway({
      config: { model_list: [mockModel('demo')], litellm_settings: { callbacks: ['prometheus'] } },
      env: { SWITCHYARD_DISABLE_METRICS: '1' },
    });
    const r = await fetchWithTimeout(`${gw.url}/metrics`);
    assert.equal(r.status, 404);
    await r.arrayBuffer();
    const ready = await (await fetchWithTimeout(`${gw.url}/health/readiness`)).json();
    assert.deepEqual(ready.success_callbacks, []);
    assert.match(gw.stderr(), /prometheus is configured but SWITCHYARD_DISABLE_METRICS=1/);
  });

  test('a callback that cannot run is named in one warning', async () => {
    const gw = await startGateway({
      config: { model_list: [mockModel('demo')], litellm_settings: { success_callback: ['datadog'] } },
    });
    // In the config's one "recognised but not supported" warning, and nowhere else.
    await gw.proc.waitForStderr(/litellm_settings\.success_callback \(ignored: the callbacks served are prometheus, otel, langfuse, generic_api and webhook; not sent to datadog\)/, 5000);
    const { stderr } = await gw.stop();
    assert.equal(stderr.split('datadog').length - 1, 1, stderr);
  });
});
