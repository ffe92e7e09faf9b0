// End to end with the official `openai` npm SDK: gemini/ (Google AI Studio), vertex_ai/
// (Gemini and claude-* models, with a service-account key made here: the fake's token
// endpoint verifies each JWT's RS256 signature and claims) and azure/ with Entra ID
// (client credentials at the fake's token endpoint). Streamed and non-streamed answers with
// tool calls and usage; embeddings through gemini; safety blocks, empty candidates, cut and
// garbled streams, refused credentials; Google Search grounding (LiteLLM's vertex_ai_*
// lists, url_citation annotations, web_search_requests).
import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import OpenAI from 'openai';

import { startFakeProvider } from '../fake_provider/server.mjs';
import { MASTER_KEY, startGateway, stopAll } from '../lib/gateway.mjs';

let fake;
let gw;
let client;

const CLIENT_EMAIL = 'switchyard-test@proj-1.iam.gserviceaccount.com';

function serviceAccount(privateKeyPem, tokenUri) {
  return {
    type: 'service_account',
    project_id: 'proj-1',
    private_key_id: 'kid-test',
    private_key: privateKeyPem,
    client_email: CLIENT_EMAIL,
    client_id: '1234567890',
    token_uri: tokenUri,
  };
}

const tools = [{
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'The weather in a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'], additionalProperties: false },
  },
}];
const messages = [
  { role: 'system', content: 'You are terse.' },
  { role: 'user', content: 'Weather in Paris?' },
];
const weatherCall = [{ name: 'get_weather', arguments: { city: 'Paris' } }];

before(async () => {
  fake = await startFakeProvider();
  // A key pair made for this run: the private half only in the gateway's credentials.
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const privatePem = privateKey.export({ type: 'pkcs8', format: 'pem' });
  const other = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' });
  fake.setOAuth({
    google: { client_email: CLIENT_EMAIL, public_key_pem: publicKey.export({ type: 'spki', format: 'pem' }) },
    entra: { tenant: 'tenant-1', client_id: 'app-1', client_secret: 'entra-secret' },
  });
  const dir = mkdtempSync(join(tmpdir(), 'sy-google-'));
  const saFile = join(dir, 'sa.json');
  writeFileSync(saFile, JSON.stringify(serviceAccount(privatePem, `${fake.url}/token`)), { mode: 0o600 });
  const vertex = (model, creds) => ({
    model: `vertex_ai/${model}`, api_base: fake.url, vertex_project: 'proj-1', vertex_location: 'us-central1',
    vertex_credentials: creds,
  });
  gw = await startGateway({
    env: { GEMINI_API_KEY: 'AIza-from-env', AZURE_AUTHORITY_HOST: fake.url },
    config: {
      router_settings: { num_retries: 0, disable_cooldowns: true, fallbacks: [{ 'g-3-fb': ['oai-after-g'] }] },
      model_list: [
        { model_name: 'g-flash', litellm_params: { model: 'gemini/gemini-2.5-flash', api_base: fake.url } },
        { model_name: 'g-3', litellm_params: { model: 'gemini/gemini-3-pro-preview', api_base: fake.url } },
        { model_name: 'g-3-fb', litellm_params: { model: 'gemini/gemini-3-pro-preview', api_base: fake.url } },
        { model_name: 'oai-after-g',
          litellm_params: { model: 'openai/gpt-x', api_base: `${fake.url}/v1`, api_key: 'sk-upstream-oai' } },
        { model_name: 'claude-after-g',
          litellm_params: { model: 'anthropic/claude-3-5-sonnet-20241022', api_base: fake.url, api_key: 'sk-ant-up' } },
        { model_name: 'g-keyed',
          litellm_params: { model: 'gemini/gemini-2.5-flash', api_base: fake.url, api_key: 'AIza-upstream' } },
        { model_name: 'g-embed', litellm_params: { model: 'gemini/gemini-embedding-001', api_base: fake.url } },
        { model_name: 'g-defaults',
          litellm_params: { model: 'gemini/gemini-2.5-flash', api_base: fake.url, max_tokens: 64, temperature: 0.1,
                            stop: ['###'], additional_drop_params: ['logit_bias'] } },
        { model_name: 'v-pro', litellm_params: vertex('gemini-2.5-pro', saFile) },
        { model_name: 'v-claude',
          litellm_params: vertex('claude-sonnet-4@20250514', JSON.stringify(serviceAccount(privatePem, `${fake.url}/token`))) },
        { model_name: 'v-wrong-key',
          litellm_params: vertex('gemini-2.5-flash', JSON.stringify({
            ...serviceAccount(other, `${fake.url}/token`), client_email: 'other@proj-1.iam.gserviceaccount.com' })) },
        { model_name: 'az-entra',
          litellm_params: { model: 'azure/az-chat-dep', api_base: fake.url, api_version: '2024-06-01',
                            tenant_id: 'tenant-1', client_id: 'app-1', client_secret: 'entra-secret' } },
        { model_name: 'az-entra-bad',
          litellm_params: { model: 'azure/az-chat-dep', api_base: fake.url, api_version: '2024-06-01',
                            tenant_id: 'tenant-1', client_id: 'app-1', client_secret: 'wrong' } },
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

const chatRecords = () => fake.requests().filter((r) => r.provider !== 'google_oauth' && r.provider !== 'entra');

describe('gemini/', () => {
  test('non-streamed: tool calls, usage with reasoning and cached tokens, the key from GEMINI_API_KEY', async () => {
    fake.script([{ tool_calls: weatherCall, content: '',
                   usage: { prompt_tokens: 11, completion_tokens: 7, reasoning_tokens: 3, cached_tokens: 2 } }]);
    const r = await client.chat.completions.create({ model: 'g-flash', messages, tools, tool_choice: 'auto' });
    assert.equal(r.choices[0].finish_reason, 'tool_calls');
    const tc = r.choices[0].message.tool_calls;
    assert.equal(tc.length, 1);
    assert.equal(tc[0].function.name, 'get_weather');
    assert.deepEqual(JSON.parse(tc[0].function.arguments), { city: 'Paris' });
    assert.equal(r.usage.prompt_tokens, 11);
    assert.equal(r.usage.completion_tokens, 10);
    assert.equal(r.usage.completion_tokens_details.reasoning_tokens, 3);
    assert.equal(r.usage.prompt_tokens_details.cached_tokens, 2);
    const [rec] = chatRecords();
    assert.equal(rec.path, '/v1beta/models/gemini-2.5-flash:generateContent');
    assert.equal(rec.query.key, 'AIza-from-env', 'the key in the query, as LiteLLM sends it');
    assert.deepEqual(rec.body.systemInstruction, { parts: [{ text: 'You are terse.' }] });
    assert.equal(rec.body.tools[0].functionDeclarations[0].name, 'get_weather');
    assert.equal(rec.body.tools[0].functionDeclarations[0].parameters.additionalProperties, undefined);
    assert.deepEqual(rec.body.toolConfig, { functionCallingConfig: { mode: 'AUTO' } });
  });

  test('streamed: text then a tool call, the usage chunk', async () => {
    fake.script([{ chunks: ['Let me ', 'check.'], tool_calls: weatherCall,
                   usage: { prompt_tokens: 9, completion_tokens: 4 } }]);
    const s = await client.chat.completions.create({
      model: 'g-keyed', messages, tools, stream: true, stream_options: { include_usage: true },
    });
    const got = await collect(s);
    assert.equal(got.text, 'Let me check.');
    assert.equal(got.finish, 'tool_calls');
    assert.equal(got.toolCalls.length, 1);
    assert.equal(got.toolCalls[0].name, 'get_weather');
    assert.match(got.toolCalls[0].id, /^call_/);
    assert.deepEqual(JSON.parse(got.toolCalls[0].arguments), { city: 'Paris' });
    assert.deepEqual([got.usage.prompt_tokens, got.usage.completion_tokens, got.usage.total_tokens], [9, 4, 13]);
    const [rec] = chatRecords();
    assert.equal(rec.path, '/v1beta/models/gemini-2.5-flash:streamGenerateContent');
    assert.equal(rec.query.alt, 'sse');
    assert.equal(rec.query.key, 'AIza-upstream');
  });

  test('n: 2 streamed: every candidate is a choice with its index, its role and its finish', async () => {
    fake.script([{ chunks: ['Hello ', 'there.'], usage: { prompt_tokens: 6, completion_tokens: 8 } }]);
    const s = await client.chat.completions.create({
      model: 'g-flash', messages, n: 2, stream: true, stream_options: { include_usage: true },
    });
    const text = {};
    const finish = {};
    const roles = {};
    let usage = null;
    for await (const chunk of s) {
      if (chunk.usage) usage = chunk.usage;
      for (const c of chunk.choices) {
        text[c.index] = (text[c.index] ?? '') + (c.delta?.content ?? '');
        if (c.delta?.role) roles[c.index] = (roles[c.index] ?? 0) + 1;
        if (c.finish_reason) finish[c.index] = c.finish_reason;
      }
    }
    assert.deepEqual(text, { 0: 'Hello there.', 1: '[1] Hello there.' });
    assert.deepEqual(finish, { 0: 'stop', 1: 'stop' });
    assert.deepEqual(roles, { 0: 1, 1: 1 });
    assert.equal(usage?.prompt_tokens, 6, 'the usage that came with the last candidate\'s finish');
    assert.equal(chatRecords()[0].body.generationConfig.candidateCount, 2);
  });

  test('a tool result goes back as a functionResponse', async () => {
    fake.script([{ content: 'It is 18C.' }]);
    const r = await client.chat.completions.create({
      model: 'g-flash',
      messages: [...messages,
        { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function',
          function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] },
        { role: 'tool', tool_call_id: 'call_1', content: '18C' }],
      tools,
    });
    assert.equal(r.choices[0].message.content, 'It is 18C.');
    const [rec] = chatRecords();
    assert.deepEqual(rec.body.contents.map((c) => c.role), ['user', 'model', 'user']);
    assert.deepEqual(rec.body.contents[2].parts[0],
      { functionResponse: { name: 'get_weather', response: { content: '18C' } } });
  });

  test('the deployment\'s request defaults and drop lists reach Gemini translated', async () => {
    fake.script([{ content: 'one' }, { content: 'two' }, { content: 'three' }]);
    // The defaults, as generationConfig members.
    await client.chat.completions.create({ model: 'g-defaults', messages });
    // The request wins; logit_bias (a 400 on Gemini) is dropped by the deployment.
    await client.chat.completions.create({ model: 'g-defaults', messages, temperature: 0.7, logit_bias: { 1: 2 } });
    // The request's own additional_drop_params drops defaults too and is never sent.
    await client.chat.completions.create({ model: 'g-defaults', messages, additional_drop_params: ['max_tokens', 'stop'] });
    const [first, second, third] = chatRecords().map((r) => r.body);
    assert.deepEqual(first.generationConfig, { maxOutputTokens: 64, temperature: 0.1, stopSequences: ['###'] });
    assert.deepEqual(second.generationConfig, { maxOutputTokens: 64, temperature: 0.7, stopSequences: ['###'] });
    assert.ok(!JSON.stringify(second).includes('logit_bias'), JSON.stringify(second));
    assert.deepEqual(third.generationConfig, { temperature: 0.1 });
    assert.ok(!JSON.stringify(third).includes('additional_drop_params'), JSON.stringify(third));
  });

  test('a Gemini 3 function call keeps its thought signature through the tool call id', async () => {
    // Gemini 3 refuses a follow-up whose function call lost the signature it came with;
    // the client only hands back the tool call, so the signature travels in its id.
    for (const stream of [false, true]) {
      fake.reset();
      fake.script([{ tool_calls: weatherCall, content: '' }, { content: 'It is 18C.' }]);
      let call;
      if (stream) {
        const got = await collect(await client.chat.completions.create({ model: 'g-3', messages, tools, stream: true }));
        assert.equal(got.finish, 'tool_calls');
        call = { id: got.toolCalls[0].id, type: 'function',
                 function: { name: got.toolCalls[0].name, arguments: got.toolCalls[0].arguments } };
      } else {
        const first = await client.chat.completions.create({ model: 'g-3', messages, tools });
        call = first.choices[0].message.tool_calls[0];
      }
      assert.match(call.id, /^call_/);
      const r = await client.chat.completions.create({
        model: 'g-3',
        messages: [...messages, { role: 'assistant', content: null, tool_calls: [call] },
          { role: 'tool', tool_call_id: call.id, content: '18C' }],
        tools,
      });
      assert.equal(r.choices[0].message.content, 'It is 18C.', `stream: ${stream}`);
      const [firstRec, second] = chatRecords();
      const sent = second.body.contents[1].parts[0];
      assert.equal(sent.functionCall.name, 'get_weather');
      assert.ok(sent.thoughtSignature, 'the signature goes back beside the functionCall');
      assert.equal(firstRec.reply.status, 200);
      assert.deepEqual(second.body.contents[2].parts[0],
        { functionResponse: { name: 'get_weather', response: { content: '18C' } } });
    }
  });

  test('a signed tool call id reaches another provider without its signature (a switch, a fallback)', async () => {
    fake.script([{ tool_calls: weatherCall, content: '' }]);
    const call = (await client.chat.completions.create({ model: 'g-3', messages, tools })).choices[0].message.tool_calls[0];
    assert.match(call.id, /__thought__/);
    const bare = call.id.slice(0, call.id.indexOf('__thought__'));
    assert.match(bare, /^call_[A-Za-z0-9]+$/);
    assert.ok(bare.length <= 40, `OpenAI takes ids of up to 40 characters: ${bare}`);
    const followUp = [...messages, { role: 'assistant', content: null, tool_calls: [call] },
      { role: 'tool', tool_call_id: call.id, content: '18C' }];
    // OpenAI and Anthropic asked directly, then OpenAI as the fallback of a failing Gemini.
    fake.reset();
    fake.script([{ content: 'It is 18C.' }, { content: 'It is 18C.' }]);
    for (const model of ['oai-after-g', 'claude-after-g']) {
      const r = await client.chat.completions.create({ model, messages: followUp, tools });
      assert.equal(r.choices[0].message.content, 'It is 18C.', model);
    }
    const [oai, claude] = chatRecords();
    assert.equal(oai.provider, 'openai');
    const ids = (rec) => [rec.body.messages.find((m) => m.role === 'assistant').tool_calls[0].id,
      rec.body.messages.find((m) => m.role === 'tool').tool_call_id];
    assert.deepEqual(ids(oai), [bare, bare]);
    assert.equal(claude.provider, 'anthropic');
    const blocks = claude.body.messages.flatMap((m) => (Array.isArray(m.content) ? m.content : []));
    assert.equal(blocks.find((b) => b.type === 'tool_use').id, bare);
    assert.equal(blocks.find((b) => b.type === 'tool_result').tool_use_id, bare);
    fake.reset();
    fake.script([{ match: { provider: 'gemini' }, status: 429 }, { content: 'It is 18C.' }]);
    const fb = await client.chat.completions.create({ model: 'g-3-fb', messages: followUp, tools });
    assert.equal(fb.choices[0].message.content, 'It is 18C.');
    const [gem, after] = chatRecords();
    assert.equal(gem.provider, 'gemini');
    const signed = gem.body.contents.flatMap((c) => c.parts).find((p) => p.functionCall);
    assert.ok(signed.thoughtSignature, 'Gemini still gets the signature');
    assert.equal(after.provider, 'openai');
    assert.deepEqual(ids(after), [bare, bare]);
  });

  test('schemas with $defs (pydantic\'s nested models) reach Gemini with the definitions inlined', async () => {
    fake.script([{ content: '{"home":{"name":"Paris"}}' }]);
    const schema = {
      $defs: { City: { type: 'object', properties: { name: { type: 'string' } }, required: ['name'],
                       additionalProperties: false } },
      type: 'object', properties: { home: { $ref: '#/$defs/City' } }, required: ['home'], additionalProperties: false,
    };
    const r = await client.chat.completions.create({
      model: 'g-flash', messages,
      response_format: { type: 'json_schema', json_schema: { name: 'place', strict: true, schema } },
      tools: [{ type: 'function', function: { name: 'save_place', parameters: schema } }],
    });
    assert.equal(r.choices[0].message.content, '{"home":{"name":"Paris"}}');
    const [rec] = chatRecords();
    const inlined = { type: 'object', properties: { home: { type: 'object', properties: { name: { type: 'string' } },
                                                           required: ['name'] } }, required: ['home'] };
    assert.deepEqual(rec.body.generationConfig.responseSchema, inlined);
    assert.deepEqual(rec.body.tools[0].functionDeclarations[0].parameters, inlined);
  });

  test('embeddings: one input and a batch', async () => {
    const one = await client.embeddings.create({ model: 'g-embed', input: 'hello' });
    assert.equal(one.data.length, 1);
    assert.equal(one.data[0].embedding.length, 8);
    const many = await client.embeddings.create({ model: 'g-embed', input: ['a', 'b', 'c'] });
    assert.deepEqual(many.data.map((d) => d.index), [0, 1, 2]);
    const paths = chatRecords().map((r) => r.path);
    assert.deepEqual(paths, ['/v1beta/models/gemini-embedding-001:embedContent',
      '/v1beta/models/gemini-embedding-001:batchEmbedContents']);
  });

  test('Google Search grounding: LiteLLM\'s vertex_ai_* lists and url_citation annotations, streamed and not', async () => {
    const content = 'Spain won Euro 2024 beating England in the final';
    fake.script([{ content }, { content }, { content }]);
    const grounded = { model: 'g-flash', messages, tools: [{ googleSearch: {} }] };
    const sources = [['https://fake.example/grounding/1', 'source-one.example'],
                     ['https://fake.example/grounding/2', 'source-two.example']];
    const expected = [[0, 27, ...sources[0]], [28, content.length, ...sources[1]]].map(([s, e, url, title]) => (
      { type: 'url_citation', url_citation: { start_index: s, end_index: e, url, title } }));

    const r = await client.chat.completions.create(grounded);
    assert.equal(fake.requests()[0].body.tools[0].googleSearch !== undefined, true);
    assert.equal(r.choices[0].message.content, content);
    assert.deepEqual(r.choices[0].message.annotations, expected);
    assert.equal(r.vertex_ai_grounding_metadata.length, 1);
    assert.deepEqual(r.vertex_ai_grounding_metadata[0].webSearchQueries, ['Weather in Paris?']);
    assert.equal(r.vertex_ai_grounding_metadata[0].groundingChunks[1].web.uri, sources[1][0]);
    assert.deepEqual(r.vertex_ai_safety_results, [[{ category: 'HARM_CATEGORY_DANGEROUS_CONTENT', probability: 'NEGLIGIBLE' }]]);
    assert.equal(r.vertex_ai_citation_metadata[0].citations[0].uri, sources[0][0]);
    assert.deepEqual(r.vertex_ai_url_context_metadata, []);
    assert.equal(r.usage.prompt_tokens_details.web_search_requests, 1);

    const stream = await client.chat.completions.create({ ...grounded, stream: true, stream_options: { include_usage: true } });
    let text = '';
    const annotations = [];
    const withLists = [];
    let usage = null;
    for await (const chunk of stream) {
      if (chunk.vertex_ai_grounding_metadata) withLists.push(chunk);
      if (chunk.usage) usage = chunk.usage;
      for (const c of chunk.choices) {
        text += c.delta?.content ?? '';
        annotations.push(...(c.delta?.annotations ?? []));
      }
    }
    assert.equal(text, content);
    assert.deepEqual(annotations, expected);
    assert.equal(withLists.length, 1, 'only the event with the metadata carries the lists');
    assert.equal(withLists[0].choices[0].finish_reason, 'stop');
    assert.equal(withLists[0].vertex_ai_grounding_metadata[0].groundingSupports.length, 2);
    assert.equal(withLists[0].vertex_ai_safety_ratings.length, 1);
    assert.equal(usage.prompt_tokens_details.web_search_requests, 1);

    // Without grounding: the lists are there, empty; no annotations.
    const plain = await client.chat.completions.create({ model: 'g-flash', messages });
    assert.deepEqual(plain.vertex_ai_grounding_metadata, []);
    assert.deepEqual(plain.vertex_ai_safety_results, []);
    assert.equal(plain.choices[0].message.annotations, undefined);
  });

  test('a blocked prompt is finish_reason content_filter, streamed and not', async () => {
    fake.script([{ block_reason: 'SAFETY' }, { block_reason: 'SAFETY' }]);
    const r = await client.chat.completions.create({ model: 'g-flash', messages });
    assert.equal(r.choices[0].finish_reason, 'content_filter');
    assert.equal(r.choices[0].message.content, null);
    const got = await collect(await client.chat.completions.create({ model: 'g-flash', messages, stream: true }));
    assert.equal(got.finish, 'content_filter');
    assert.equal(got.text, '');
  });

  test('empty candidates, a cut stream and a garbled stream are clear OpenAI errors', async () => {
    fake.script([{ empty_candidates: true }]);
    await assert.rejects(client.chat.completions.create({ model: 'g-flash', messages }), (e) => {
      assert.equal(e.status, 500);
      assert.match(e.message, /GeminiException - the provider returned no candidates/);
      return true;
    });
    fake.script([{ empty_candidates: true }]);
    await assert.rejects(client.chat.completions.create({ model: 'g-flash', messages, stream: true }), (e) => {
      assert.equal(e.status, 500, 'nothing was sent yet: a real status');
      assert.match(e.message, /stream ended before a finishReason/);
      return true;
    });
    fake.script([{ chunks: ['one ', 'two ', 'three'], cut_after_chunks: 2 }]);
    let text = '';
    await assert.rejects((async () => {
      const s = await client.chat.completions.create({ model: 'g-flash', messages, stream: true });
      for await (const c of s) text += c.choices[0]?.delta?.content ?? '';
    })(), (e) => { assert.ok(e instanceof OpenAI.APIError, `${e}`); return true; });
    assert.equal(text, 'one two ');
    fake.script([{ invalid_json: true }]);
    await assert.rejects(client.chat.completions.create({ model: 'g-flash', messages, stream: true }), (e) => {
      assert.equal(e.status, 500);
      assert.match(e.message, /not valid JSON/);
      return true;
    });
    fake.script([{ status: 429, error_message: 'Resource has been exhausted (e.g. check quota).' }]);
    await assert.rejects(client.chat.completions.create({ model: 'g-flash', messages }), (e) => {
      assert.equal(e.status, 429);
      assert.match(e.message, /GeminiException.*Resource has been exhausted/);
      return true;
    });
  });
});

describe('vertex_ai/', () => {
  test('gemini: non-streamed and streamed with tool calls and usage, one verified token for both', async () => {
    fake.script([{ tool_calls: weatherCall, content: '', usage: { prompt_tokens: 20, completion_tokens: 6 } },
                 { chunks: ['Sunny ', 'today.'], tool_calls: weatherCall, usage: { prompt_tokens: 21, completion_tokens: 5 } }]);
    const r = await client.chat.completions.create({ model: 'v-pro', messages, tools });
    assert.equal(r.choices[0].finish_reason, 'tool_calls');
    assert.equal(r.choices[0].message.tool_calls[0].function.name, 'get_weather');
    assert.deepEqual([r.usage.prompt_tokens, r.usage.completion_tokens], [20, 6]);
    const got = await collect(await client.chat.completions.create({
      model: 'v-pro', messages, tools, stream: true, stream_options: { include_usage: true } }));
    assert.equal(got.text, 'Sunny today.');
    assert.equal(got.toolCalls[0].name, 'get_weather');
    assert.deepEqual([got.usage.prompt_tokens, got.usage.completion_tokens], [21, 5]);
    const recs = chatRecords();
    assert.deepEqual(recs.map((x) => x.path), [
      '/v1/projects/proj-1/locations/us-central1/publishers/google/models/gemini-2.5-pro:generateContent',
      '/v1/projects/proj-1/locations/us-central1/publishers/google/models/gemini-2.5-pro:streamGenerateContent',
    ]);
    for (const x of recs) assert.equal(x.reply.auth, CLIENT_EMAIL, 'a token the fake issued for the service account');
  });

  test('claude-*: the Anthropic body on rawPredict / streamRawPredict, tool calls and usage', async () => {
    fake.script([{ tool_calls: weatherCall, content: '', usage: { prompt_tokens: 30, completion_tokens: 8 } },
                 { chunks: ['Hi ', 'there.'], tool_calls: weatherCall, usage: { prompt_tokens: 31, completion_tokens: 9 } }]);
    const r = await client.chat.completions.create({ model: 'v-claude', messages, tools, max_tokens: 100 });
    assert.equal(r.choices[0].finish_reason, 'tool_calls');
    assert.deepEqual(JSON.parse(r.choices[0].message.tool_calls[0].function.arguments), { city: 'Paris' });
    assert.deepEqual([r.usage.prompt_tokens, r.usage.completion_tokens], [30, 8]);
    const got = await collect(await client.chat.completions.create({
      model: 'v-claude', messages, tools, stream: true, stream_options: { include_usage: true } }));
    assert.equal(got.text, 'Hi there.');
    assert.equal(got.toolCalls[0].name, 'get_weather');
    assert.deepEqual([got.usage.prompt_tokens, got.usage.completion_tokens], [31, 9]);
    const recs = chatRecords();
    assert.deepEqual(recs.map((x) => x.path.split(':')[1]), ['rawPredict', 'streamRawPredict']);
    assert.equal(recs[0].body.anthropic_version, 'vertex-2023-10-16');
    assert.equal(recs[0].body.system, 'You are terse.');
    assert.equal(recs[0].body.model, undefined);
    assert.equal(recs[1].reply.auth, CLIENT_EMAIL);
  });

  test('tokens are fetched once and reused', async () => {
    await client.chat.completions.create({ model: 'v-pro', messages });
    await client.chat.completions.create({ model: 'v-claude', messages, max_tokens: 10 });
    await Promise.all([1, 2, 3, 4].map(() => client.chat.completions.create({ model: 'v-pro', messages })));
    assert.equal(fake.requests().filter((r) => r.provider === 'google_oauth').length, 0,
      'one service account, one token: fetched by the earlier tests and still valid');
    assert.equal(chatRecords().length, 6);
  });

  test('a key the token endpoint does not accept is a clear 401', async () => {
    await assert.rejects(client.chat.completions.create({ model: 'v-wrong-key', messages }), (e) => {
      assert.equal(e.status, 401);
      assert.match(e.message, /VertexAIException.*refused the credentials.*invalid_grant/);
      return true;
    });
    const token = fake.requests().filter((r) => r.provider === 'google_oauth');
    assert.equal(token.length, 1);
    assert.match(token[0].reply.refused, /iss must be|Invalid JWT Signature/);
    assert.equal(chatRecords().length, 0, 'nothing reached Vertex without a token');
  });
});

describe('azure/ with Entra ID', () => {
  test('the client-credentials token is sent as a bearer instead of api-key', async () => {
    fake.script([{ tool_calls: weatherCall, content: '' }]);
    const r = await client.chat.completions.create({ model: 'az-entra', messages, tools });
    assert.equal(r.choices[0].message.tool_calls[0].function.name, 'get_weather');
    const token = fake.requests().filter((x) => x.provider === 'entra');
    assert.equal(token.length, 1);
    assert.equal(token[0].path, '/tenant-1/oauth2/v2.0/token');
    const [rec] = chatRecords();
    assert.equal(rec.headers['api-key'], undefined);
    assert.equal(rec.reply.auth, 'app-1');
    const got = await collect(await client.chat.completions.create({ model: 'az-entra', messages, stream: true }));
    assert.ok(got.text.length > 0);
    assert.equal(fake.requests().filter((x) => x.provider === 'entra').length, 1, 'the token is reused');
  });

  test('a wrong client secret is a clear 401', async () => {
    await assert.rejects(client.chat.completions.create({ model: 'az-entra-bad', messages }), (e) => {
      assert.equal(e.status, 401);
      assert.match(e.message, /AzureException.*Invalid client secret/);
      return true;
    });
    assert.equal(chatRecords().length, 0);
  });
});
