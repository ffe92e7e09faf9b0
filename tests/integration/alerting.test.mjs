// Alerting (general_settings.alerting) against strict fake receivers (fake_collectors.mjs):
// * a key crossing its soft budget sends exactly one webhook alert (LiteLLM's WebhookEvent
//   fields), however many budget passes and requests follow;
// * a key over its max_budget: its refusals send one budget_crossed alert;
// * slow requests (alerting_threshold) and a provider outage (failures in a window) alert
//   once each to Slack and the webhook;
// * SIGTERM: the alert being sent and those queued reach the receiver before the exit;
// * the alert sender retries as SWITCHYARD_CALLBACK_RETRIES / _BACKOFF_MS say.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';

import { startFakeProvider } from '../fake_provider/server.mjs';
import {
  call, metricValue, psql, SLOW, startDeadReceiver, startGateway, stopAll, until, withDatabase,
} from '../lib/gateway.mjs';
import { startWebhook } from './fake_collectors.mjs';

const SERVER_URL = process.env.SWITCHYARD_TEST_DATABASE_URL;
const skip = !SERVER_URL && 'SWITCHYARD_TEST_DATABASE_URL not set (scripts/test.sh sets it)';
const dbName = `swy_alerting_${process.pid}_${Date.now()}`;
const USER = [{ role: 'user', content: 'hi' }];
const OUT_PRICE = 0.001;  // USD per completion token; the fake reports 10 per answer

let fake;
let hook;
let slack;

before(async () => {
  fake = await startFakeProvider({ defaults: { usage: { prompt_tokens: 1, completion_tokens: 10 } } });
  hook = await startWebhook();
  slack = await startWebhook();
});
after(async () => {
  await stopAll();
  await Promise.all([fake?.close(), hook?.close(), slack?.close()]);
});

describe('budget alerts to a webhook', { skip }, () => {
  let gw;
  let dbUrl;
  const q = (sql) => psql(dbUrl, sql);
  before(async () => {
    psql(SERVER_URL, `CREATE DATABASE ${dbName}`);
    dbUrl = withDatabase(SERVER_URL, dbName);
    gw = await startGateway({
      config: {
        model_list: [{
          model_name: 'priced',
          litellm_params: { model: 'openai/priced', api_base: `${fake.url}/v1`, api_key: 'sk-up',
                            input_cost_per_token: 0, output_cost_per_token: OUT_PRICE },
        }],
        general_settings: { alerting: ['webhook'], alert_types: ['budget_alerts'] },
      },
      env: { DATABASE_URL: dbUrl, WEBHOOK_URL: `${hook.url}/alerts`, SWITCHYARD_BUDGET_METRICS_S: '1',
             SWITCHYARD_DATA_DIR: `/tmp/${dbName}` },
    });
  });
  after(() => {
    try {
      psql(SERVER_URL, `DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
    } catch {
      /* best effort */
    }
  });

  test('a key crossing its soft budget sends exactly one webhook alert', async () => {
    const team = await call(gw, '/team/new', { body: { team_id: 't-alert', max_budget: 100 } });
    assert.equal(team.status, 200, team.text);
    const k = await call(gw, '/key/generate', { body: { team_id: 't-alert', key_alias: 'soft-key', soft_budget: 0.025, max_budget: 10 } });
    assert.equal(k.status, 200, k.text);
    const oa = new OpenAI({ apiKey: k.json.key, baseURL: gw.base, maxRetries: 0 });
    for (let i = 0; i < 5; i++) await oa.chat.completions.create({ model: 'priced', messages: USER });  // 0.05 > 0.025
    const soft = (b) => b.event === 'soft_budget_crossed' && b.token === k.json.token;
    const alert = await hook.waitFor(() => hook.received.find(soft), 'the soft budget alert', 30_000 * SLOW);
    assert.deepEqual(hook.errors, []);
    assert.equal(alert.event_group, 'key');
    assert.equal(alert.key_alias, 'soft-key');
    assert.equal(alert.soft_budget, 0.025);
    assert.equal(alert.max_budget, 10);
    assert.ok(alert.spend >= 0.025, `spend ${alert.spend}`);
    assert.equal(alert.alert_type, 'budget_alerts');
    // More spend, and at least two more budget passes (each moves the team's gauge; the
    // requests' own spend, still being written, may add a few cents to the team's).
    for (let i = 0; i < 3; i++) await oa.chat.completions.create({ model: 'priced', messages: USER });
    for (const spend of [10, 20]) {
      q(`UPDATE teams SET spend = ${spend} WHERE team_id = 't-alert'`);
      await until(`the team gauge near ${100 - spend}`, async () => {
        const v = await metricValue(gw, 'litellm_remaining_team_budget_metric', { team_id: 't-alert' });
        return v !== undefined && Math.abs(v - (100 - spend)) < 1;
      });
    }
    await until('the alert delivered', async () => (await metricValue(gw, 'switchyard_alerts_total', { outcome: 'sent' })) === 1);
    assert.equal(await metricValue(gw, 'switchyard_alerts_total', { outcome: 'raised' }), 1, 'raised once');
    assert.equal(hook.received.filter(soft).length, 1, 'exactly one webhook alert');
  });

  test('refusals over max_budget send one budget_crossed alert', async () => {
    const k = await call(gw, '/key/generate', { body: { max_budget: 0.02 } });
    assert.equal(k.status, 200, k.text);
    const statuses = [];
    for (let i = 0; i < 6; i++) {
      const r = await call(gw, '/v1/chat/completions', { key: k.json.key, body: { model: 'priced', messages: USER, max_tokens: 10 } });
      statuses.push(r.status);
    }
    assert.ok(statuses.filter((s) => s === 429).length >= 2, `refusals: ${statuses}`);
    const crossed = (b) => b.event === 'budget_crossed' && b.token === k.json.token;
    await hook.waitFor(() => hook.received.find(crossed), 'the budget_crossed alert', 20_000 * SLOW);
    // The later refusals were suppressed (counted when they finished, before their answers).
    assert.ok((await metricValue(gw, 'switchyard_alerts_total', { outcome: 'suppressed' })) >= 1);
    await until('every raised alert delivered', async () =>
      (await metricValue(gw, 'switchyard_alerts_total', { outcome: 'sent' })) ===
      (await metricValue(gw, 'switchyard_alerts_total', { outcome: 'raised' })));
    assert.equal(hook.received.filter(crossed).length, 1);
  });
});

describe('slow requests and outages to Slack and a webhook', () => {
  let gw;
  let down;
  after(() => down?.close());
  before(async () => {
    down = await startDeadReceiver();
    const dead = down.port;
    gw = await startGateway({
      config: {
        model_list: [
          { model_name: 'slow', litellm_params: { model: 'openai/slow', api_base: `${fake.url}/v1`, api_key: 'sk-up' } },
          { model_name: 'down', litellm_params: { model: 'openai/down', api_base: `http://127.0.0.1:${dead}/v1`, api_key: 'sk-up' },
            model_info: { id: 'dep-down' } },
        ],
        general_settings: { alerting: ['slack', 'webhook'], alerting_threshold: 0.2,
                            alerting_args: { minor_outage_alert_threshold: 3, major_outage_alert_threshold: 100 } },
      },
      env: { WEBHOOK_URL: `${hook.url}/alerts2`, SLACK_WEBHOOK_URL: `${slack.url}/services/x` },
    });
  });

  test('one llm_too_slow alert for two slow requests; one outage alert for many failures', async () => {
    fake.script([{ delay_ms: 600, times: 2, match: { model: 'slow' } }]);
    for (let i = 0; i < 2; i++) {
      const r = await call(gw, '/v1/chat/completions', { body: { model: 'slow', messages: USER } });
      assert.equal(r.status, 200, r.text);
    }
    for (let i = 0; i < 5; i++) {
      const r = await call(gw, '/v1/chat/completions', { body: { model: 'down', messages: USER, num_retries: 0 } });
      assert.ok(r.status >= 500, r.text);
    }
    await slack.waitFor(() => slack.received.some((b) => /Slow request/.test(b.text)) &&
                               slack.received.some((b) => /Minor outage: 3 failures of deployment dep-down/.test(b.text)),
    'both alerts in Slack', 20_000 * SLOW);
    await hook.waitFor(() => hook.received.some((b) => b.event === 'minor_outage' && b.model_id === 'dep-down'), 'the webhook', 20_000 * SLOW);
    assert.deepEqual(slack.errors, []);
    assert.equal(slack.received.filter((b) => /Slow request/.test(b.text)).length, 1, 'deduplicated');
    assert.equal(slack.received.filter((b) => /outage/.test(b.text)).length, 1, 'deduplicated');
    assert.ok(slack.received.every((b) => typeof b.text === 'string' && Object.keys(b).length === 1), "Slack's {text} shape");
    const svc = await call(gw, '/health/services?service=slack', { method: 'GET' });
    assert.equal(svc.status, 200, svc.text);
    const a = await call(gw, '/active/callbacks', { method: 'GET' });
    assert.deepEqual(a.json.alerting, ['slack', 'webhook']);
  });
});

describe('alert delivery settings', () => {
  test('the alert sender honours SWITCHYARD_CALLBACK_RETRIES and _BACKOFF_MS, as the logging callbacks do', async () => {
    const failing = await startWebhook();
    try {
      failing.failNext(10, 503);
      const gw = await startGateway({
        config: {
          model_list: [{ model_name: 'slow-r', litellm_params: { model: 'openai/slow-r', api_base: `${fake.url}/v1`, api_key: 'sk-up' } }],
          general_settings: { alerting: ['webhook'], alerting_threshold: 0.2 },
        },
        // One retry, 50 ms after the first try (the defaults: three, from 500 ms).
        env: { WEBHOOK_URL: `${failing.url}/alerts`, SWITCHYARD_CALLBACK_RETRIES: '1', SWITCHYARD_CALLBACK_BACKOFF_MS: '50' },
      });
      fake.script([{ delay_ms: 400, times: 1, match: { model: 'slow-r' } }]);
      const r = await call(gw, '/v1/chat/completions', { body: { model: 'slow-r', messages: USER } });
      assert.equal(r.status, 200, r.text);
      await until('the alert given up', async () => (await metricValue(gw, 'switchyard_alerts_total', { outcome: 'failed' })) === 1);
      assert.equal(failing.requests.length, 2, 'the first try and one retry');
      await gw.stop();
    } finally {
      await failing.close();
    }
  });
});

describe('shutdown', () => {
  test('SIGTERM delivers the alert being sent and the one queued behind it', async () => {
    const held = await startWebhook();
    try {
      const gw = await startGateway({
        config: {
          model_list: [
            { model_name: 'slow-a', litellm_params: { model: 'openai/slow-a', api_base: `${fake.url}/v1`, api_key: 'sk-up' } },
            { model_name: 'slow-b', litellm_params: { model: 'openai/slow-b', api_base: `${fake.url}/v1`, api_key: 'sk-up' } },
          ],
          general_settings: { alerting: ['webhook'], alerting_threshold: 0.2 },
        },
        env: { WEBHOOK_URL: `${held.url}/alerts` },
      });
      fake.script([{ delay_ms: 400, times: 2 }]);
      // The first alert's POST gets no answer yet; the second (another deployment) queues.
      held.holdNext(1);
      for (const model of ['slow-a', 'slow-b']) {
        const r = await call(gw, '/v1/chat/completions', { body: { model, messages: USER } });
        assert.equal(r.status, 200, r.text);
      }
      await held.waitFor(() => held.requests.length === 1, 'the first alert at the receiver');
      assert.equal(await metricValue(gw, 'switchyard_alerts_total', { outcome: 'raised' }), 2);
      gw.proc.signal('SIGTERM');
      // Past the drain: the stop is under way, and waits for the sender.
      await gw.proc.waitForStderr(/all connections closed; exiting/, 10_000 * SLOW);
      held.release();
      const r = await gw.proc.wait(20_000 * SLOW);  // not gw.stop(): a second signal exits at once
      assert.equal(r.code, 0, gw.stderr());
      assert.deepEqual(held.errors, []);
      assert.deepEqual(held.received.map((b) => b.event), ['llm_too_slow', 'llm_too_slow']);
      assert.equal(new Set(held.received.map((b) => b.model_group)).size, 2);
    } finally {
      await held.close();
    }
  });
});
