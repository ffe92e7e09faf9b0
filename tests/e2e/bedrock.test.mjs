// End to end through bedrock/ with the official `openai` npm SDK: the fake provider speaks
// Bedrock's Converse JSON, the ConverseStream binary event stream and InvokeModel, and
// recomputes every request's SigV4 signature itself (403 on a mismatch). Streamed and
// non-streamed answers with tool calls and usage, credentials from litellm_params and from
// the AWS_* environment (with a session token), Titan and Cohere embeddings, and malformed
// event streams (bad CRCs, truncated frames, non-JSON payloads) surfacing as OpenAI errors.
import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import OpenAI from 'openai';

import { startFakeProvider } from '../fake_provider/server.mjs';
import { MASTER_KEY, startGateway, stopAll } from '../lib/gateway.mjs';

const AKID = 'AKIDFAKEBEDROCK';
const SECRET = 'fake/bedrock+secret/KEY';
const ENV_AKID = 'ASIAFAKEENVKEY';
const ENV_SECRET = 'env-secret/with+chars';
const SESSION_TOKEN = 'IQoJb3JpZ2luX2VjEFAKE//////////token+/=';

let fake;
let gw;
let client;

before(async () => {
  fake = await startFakeProvider({ defaults: { aws_keys: { [AKID]: SECRET, [ENV_AKID]: ENV_SECRET } } });
  const keys = { aws_access_key_id: AKID, aws_secret_access_key: SECRET, aws_region_name: 'us-west-2',
                 aws_bedrock_runtime_endpoint: fake.url };
  gw = await startGateway({
    env: {
      AWS_ACCESS_KEY_ID: ENV_AKID,
      AWS_SECRET_ACCESS_KEY: ENV_SECRET,
      AWS_SESSION_TOKEN: SESSION_TOKEN,
      AWS_REGION: 'eu-central-1',
    },
    config: {
      router_settings: { num_retries: 0, disable_cooldowns: true },
      model_list: [
        { model_name: 'br-claude', litellm_params: { model: 'bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0', ...keys } },
        // Credentials and region from the environment; the endpoint through api_base.
        { model_name: 'br-claude-env',
          litellm_params: { model: 'bedrock/converse/us.anthropic.claude-3-5-sonnet-20240620-v1:0', api_base: fake.url } },
        { model_name: 'br-wrong-secret',
          litellm_params: { model: 'bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0', ...keys,
                            aws_secret_access_key: 'not-the-secret' } },
        { model_name: 'br-titan', litellm_params: { model: 'bedrock/amazon.titan-embed-text-v2:0', ...keys } },
        { model_name: 'br-cohere-embed', litellm_params: { model: 'bedrock/cohere.embed-english-v3', ...keys } },
      ],
    },
  });
  client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: MASTER_KEY, maxRetries: 0, timeout: 15_000 });
});
after(async () => {
  await stopAll();
  await fake?.close();
});
beforeEach(() => fake.reset());

const messages = [
  { role: 'system', content: 'You are terse.' },
  { role: 'user', content: 'What is the weather in Paris?' },
];
const tools = [{
  type: 'function',
  function: { name: 'get_weather', description: 'Weather for a city',
              parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } },
}];

function onlyRecord() {
  const recs = fake.requests();
  assert.equal(recs.length, 1, `expected one upstream request, got ${JSON.stringify(recs.map((r) => r.url))}`);
  assert.equal(recs[0].provider, 'bedrock');
  assert.ok(recs[0].sigv4?.ok, `the fake rejected the signature: ${JSON.stringify(recs[0].sigv4)}`);
  return recs[0];
}

function sameUsage(got, rec, what) {
  assert.ok(got, `${what}: no usage`);
  assert.deepEqual(
    { prompt_tokens: got.prompt_tokens, completion_tokens: got.completion_tokens, total_tokens: got.total_tokens },
    rec.reply.usage, `${what}: usage differs from what the fake produced`);
}

async function collect(stream) {
  let text = '';
  let usage = null;
  let finish = null;
  const toolCalls = [];
  for await (const chunk of stream) {
    assert.equal(chunk.object, 'chat.completion.chunk');
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      text += c.delta?.content ?? '';
      finish = c.finish_reason ?? finish;
      for (const tc of c.delta?.tool_calls ?? []) {
        const t = (toolCalls[tc.index] ??= { id: '', name: '', arguments: '' });
        if (tc.id) t.id = tc.id;
        if (tc.function?.name) t.name += tc.function.name;
        if (tc.function?.arguments) t.arguments += tc.function.arguments;
      }
    }
  }
  return { text, usage, finish, toolCalls };
}

describe('bedrock chat through Converse', () => {
  test('non-streamed: tool calls, usage and cost; the request is Converse, signed, at the encoded model path', async () => {
    fake.script([{ content: 'Let me check.', tool_calls: [{ name: 'get_weather', arguments: { city: 'Paris' } }],
                   usage: { prompt_tokens: 31, completion_tokens: 9 } }]);
    const raw = await client.chat.completions.create(
      { model: 'br-claude', messages, tools, tool_choice: 'auto', max_tokens: 200, temperature: 0.2 }).withResponse();
    const r = raw.data;
    const rec = onlyRecord();
    assert.equal(rec.url, '/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse');
    assert.match(rec.sigv4.canonical_request, /^POST\n\/model\/anthropic\.claude-3-5-sonnet-20240620-v1%253A0\/converse\n/);
    assert.equal(rec.sigv4.region, 'us-west-2');
    assert.equal(rec.sigv4.service, 'bedrock');
    assert.deepEqual(rec.body.system, [{ text: 'You are terse.' }]);
    assert.deepEqual(rec.body.messages, [{ role: 'user', content: [{ text: 'What is the weather in Paris?' }] }]);
    assert.deepEqual(rec.body.inferenceConfig, { maxTokens: 200, temperature: 0.2 });
    assert.equal(rec.body.toolConfig.tools[0].toolSpec.name, 'get_weather');
    assert.deepEqual(rec.body.toolConfig.tools[0].toolSpec.inputSchema.json, tools[0].function.parameters);
    assert.deepEqual(rec.body.toolConfig.toolChoice, { auto: {} });

    assert.equal(r.object, 'chat.completion');
    assert.equal(r.model, 'br-claude');
    assert.equal(r.choices[0].finish_reason, 'tool_calls');
    assert.equal(r.choices[0].message.content, 'Let me check.');
    const calls = r.choices[0].message.tool_calls;
    assert.equal(calls.length, 1);
    assert.equal(calls[0].id, rec.reply.bedrock_tool_ids[0]);
    assert.equal(calls[0].function.name, 'get_weather');
    assert.deepEqual(JSON.parse(calls[0].function.arguments), { city: 'Paris' });
    sameUsage(r.usage, rec, 'non-streamed');
    // anthropic.claude-3-5-sonnet on Bedrock: $3 / $15 per million tokens.
    const cost = Number(raw.response.headers.get('x-litellm-response-cost'));
    assert.ok(Math.abs(cost - (31 * 3e-6 + 9 * 15e-6)) < 1e-12, `cost ${cost}`);
  });

  test('streamed with include_usage: text, tool call and usage from the binary event stream', async () => {
    fake.script([{ chunks: ['Check', 'ing ', 'now.'], tool_calls: [{ name: 'get_weather', arguments: { city: 'Paris' } }],
                   usage: { prompt_tokens: 17, completion_tokens: 11 } }]);
    const stream = await client.chat.completions.create({
      model: 'br-claude', messages, tools, stream: true, stream_options: { include_usage: true },
    });
    const got = await collect(stream);
    const rec = onlyRecord();
    assert.equal(rec.url, '/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse-stream');
    assert.equal(rec.reply.stream, true);
    assert.equal(got.text, 'Checking now.');
    assert.equal(got.finish, 'tool_calls');
    assert.equal(got.toolCalls.length, 1);
    assert.equal(got.toolCalls[0].id, rec.reply.bedrock_tool_ids[0]);
    assert.equal(got.toolCalls[0].name, 'get_weather');
    assert.deepEqual(JSON.parse(got.toolCalls[0].arguments), { city: 'Paris' });
    sameUsage(got.usage, rec, 'usage chunk');
  });

  test('the tool result goes back as toolUse / toolResult blocks', async () => {
    await client.chat.completions.create({
      model: 'br-claude',
      tools,
      messages: [
        ...messages,
        { role: 'assistant', content: null, tool_calls: [
          { id: 'tooluse_abc', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] },
        { role: 'tool', tool_call_id: 'tooluse_abc', content: '18C and sunny' },
      ],
    });
    const rec = onlyRecord();
    assert.deepEqual(rec.body.messages.slice(1), [
      { role: 'assistant', content: [{ toolUse: { toolUseId: 'tooluse_abc', name: 'get_weather', input: { city: 'Paris' } } }] },
      { role: 'user', content: [{ toolResult: { toolUseId: 'tooluse_abc', content: [{ text: '18C and sunny' }] } }] },
    ]);
  });

  test('tool_choice none after tool results still sends the tools Bedrock needs for those blocks', async () => {
    // Asking for a plain-text answer once the tools ran: Converse has no "none", and it
    // refuses toolUse / toolResult blocks without a toolConfig.
    fake.script([{ content: 'It is 18C and sunny.' }]);
    const r = await client.chat.completions.create({
      model: 'br-claude',
      tools,
      tool_choice: 'none',
      messages: [
        ...messages,
        { role: 'assistant', content: null, tool_calls: [
          { id: 'tooluse_abc', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] },
        { role: 'tool', tool_call_id: 'tooluse_abc', content: '18C and sunny' },
      ],
    });
    assert.equal(r.choices[0].message.content, 'It is 18C and sunny.');
    const rec = onlyRecord();
    assert.equal(rec.body.toolConfig.tools[0].toolSpec.name, 'get_weather');
    assert.equal(rec.body.toolConfig.toolChoice, undefined, 'Converse has no "none"');
  });

  test('credentials and region from AWS_* variables; the session token is sent and signed; us. profile id', async () => {
    const stream = await client.chat.completions.create({ model: 'br-claude-env', messages, stream: true });
    const got = await collect(stream);
    const rec = onlyRecord();
    assert.equal(got.text, rec.reply.content);
    assert.equal(rec.url, '/model/us.anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse-stream');
    assert.equal(rec.sigv4.access_key, ENV_AKID);
    assert.equal(rec.sigv4.region, 'eu-central-1');
    assert.equal(rec.headers['x-amz-security-token'], SESSION_TOKEN);
    assert.match(rec.sigv4.signed_headers, /x-amz-security-token/);
  });

  test('a signature the fake cannot reproduce is a 403 with Bedrock\'s message', async () => {
    await assert.rejects(client.chat.completions.create({ model: 'br-wrong-secret', messages }), (e) => {
      assert.ok(e instanceof OpenAI.PermissionDeniedError, `got ${e?.constructor?.name} ${e?.status}: ${e?.message}`);
      assert.match(e.message, /BedrockException/);
      assert.match(e.message, /signature we calculated does not match/);
      return true;
    });
    const rec = fake.requests()[0];
    assert.equal(rec.sigv4.ok, false);
  });

  test('a throttled request is a 429 RateLimitError', async () => {
    fake.script([{ status: 429, error_message: 'Too many requests, please wait before trying again.' }]);
    await assert.rejects(client.chat.completions.create({ model: 'br-claude', messages }), (e) => {
      assert.ok(e instanceof OpenAI.RateLimitError, `got ${e?.constructor?.name} ${e?.status}: ${e?.message}`);
      assert.match(e.message, /Too many requests/);
      return true;
    });
  });

  test('an unsupported OpenAI parameter is a 400 naming it', async () => {
    await assert.rejects(client.chat.completions.create({ model: 'br-claude', messages, logit_bias: { 1: 2 } }), (e) => {
      assert.ok(e instanceof OpenAI.BadRequestError, `got ${e?.constructor?.name} ${e?.status}: ${e?.message}`);
      assert.match(e.message, /logit_bias/);
      return true;
    });
    assert.equal(fake.requests().length, 0);
  });
});

describe('bedrock embeddings through InvokeModel', () => {
  test('Titan v2: the vector and token count the fake produced, priced', async () => {
    const raw = await client.embeddings.create({ model: 'br-titan', input: 'hello bedrock world', dimensions: 16 })
      .withResponse();
    const r = raw.data;
    const rec = onlyRecord();
    assert.equal(rec.url, '/model/amazon.titan-embed-text-v2%3A0/invoke');
    assert.deepEqual(rec.body, { inputText: 'hello bedrock world', dimensions: 16 });
    assert.equal(r.data.length, 1);
    assert.equal(r.data[0].embedding.length, 16);
    assert.deepEqual(r.data[0].embedding.map((v) => Math.round(v * 1e6) / 1e6), rec.reply.embeddings[0]);
    assert.equal(r.usage.prompt_tokens, rec.reply.usage.prompt_tokens);
    const cost = Number(raw.response.headers.get('x-litellm-response-cost'));
    assert.ok(Math.abs(cost - rec.reply.usage.prompt_tokens * 2e-8) < 1e-15, `cost ${cost}`);
  });

  test('Cohere: several inputs in one call', async () => {
    const r = await client.embeddings.create({ model: 'br-cohere-embed', input: ['one', 'two'] });
    const rec = onlyRecord();
    assert.deepEqual(rec.body, { texts: ['one', 'two'], input_type: 'search_document' });
    assert.equal(r.data.length, 2);
    assert.deepEqual(r.data[1].embedding.map((v) => Math.round(v * 1e6) / 1e6), rec.reply.embeddings[1]);
  });

  test('Titan with several inputs is a 400 before any upstream call', async () => {
    await assert.rejects(client.embeddings.create({ model: 'br-titan', input: ['a', 'b'] }), (e) => {
      assert.ok(e instanceof OpenAI.BadRequestError, `got ${e?.constructor?.name} ${e?.status}: ${e?.message}`);
      return true;
    });
    assert.equal(fake.requests().length, 0);
  });
});

describe('malformed Bedrock answers are OpenAI errors, never a crash', () => {
  const faults = [
    ['message_crc', /message CRC/],
    ['prelude_crc', /prelude CRC/],
    ['truncate', /truncated|ended inside a message/],
    ['not_json', /not valid JSON/],
  ];
  for (const [kind, pattern] of faults) {
    test(`${kind} after streaming began: an error event in the stream after the text before it`, async () => {
      fake.script([{ chunks: ['one ', 'two ', 'three'], eventstream_fault: { kind, after_chunks: 2 } }]);
      const stream = await client.chat.completions.create({ model: 'br-claude', messages, stream: true });
      let text = '';
      await assert.rejects((async () => {
        for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
      })(), (e) => {
        assert.ok(e instanceof OpenAI.APIError, `got ${e?.constructor?.name}: ${e?.message}`);
        assert.match(e.message, /BedrockException/);
        assert.match(e.message, pattern);
        return true;
      });
      assert.equal(text, 'one two ');
    });

    test(`${kind} in the first frame: a 5xx before any chunk`, async () => {
      fake.script([{ chunks: ['one ', 'two'], eventstream_fault: { kind, after_chunks: 0 } }]);
      await assert.rejects((async () => {
        const stream = await client.chat.completions.create({ model: 'br-claude', messages, stream: true });
        for await (const chunk of stream) void chunk;
      })(), (e) => {
        assert.ok(e instanceof OpenAI.APIError && e.status >= 500, `got ${e?.constructor?.name} ${e?.status}: ${e?.message}`);
        assert.match(e.message, pattern);
        return true;
      });
    });
  }

  test('an exception message mid-stream keeps its status mapping and message', async () => {
    fake.script([{ chunks: ['one ', 'two ', 'three'], error_after_chunks: 1, error_type: 'throttlingException',
                   error_message: 'Too many tokens per minute' }]);
    const stream = await client.chat.completions.create({ model: 'br-claude', messages, stream: true });
    await assert.rejects((async () => {
      for await (const chunk of stream) void chunk;
    })(), (e) => {
      assert.ok(e instanceof OpenAI.APIError, `got ${e?.constructor?.name}: ${e?.message}`);
      assert.match(e.message, /throttlingException: Too many tokens per minute/);
      return true;
    });
  });

  test('a stream cut between frames before messageStop is an error, not a silent end', async () => {
    fake.script([{ chunks: ['one ', 'two ', 'three'], cut_after_chunks: 2 }]);
    const stream = await client.chat.completions.create({ model: 'br-claude', messages, stream: true });
    await assert.rejects((async () => {
      for await (const chunk of stream) void chunk;
    })(), (e) => e instanceof OpenAI.APIError || e instanceof OpenAI.APIConnectionError);
  });

  test('invalid JSON (non-streamed) is a 5xx APIError', async () => {
    fake.script([{ invalid_json: true }]);
    await assert.rejects(client.chat.completions.create({ model: 'br-claude', messages }), (e) => {
      assert.ok(e instanceof OpenAI.APIError && e.status >= 500, `got ${e?.constructor?.name} ${e?.status}`);
      return true;
    });
  });

  test('the gateway is still healthy after the faults', async () => {
    const r = await client.chat.completions.create({ model: 'br-claude', messages });
    assert.equal(r.choices[0].message.content, onlyRecord().reply.content);
  });
});
