// Fake LLM provider for Switchyard's integration tests and benchmarks.
//
// A real HTTP/1.1 server (plain node:http, no npm dependencies) speaking the wire formats
// of the providers Switchyard talks to:
//   OpenAI     POST /v1/chat/completions (+ /chat/completions), /v1/completions (+ /completions),
//              /v1/embeddings (+ /embeddings), GET /v1/models (+ /models)
//              JSON, or SSE (`data: {chunk}\n\n` ... `data: [DONE]\n\n`) when `stream: true`.
//   Azure      POST /openai/deployments/{dep}/chat/completions|completions|embeddings?api-version=...
//              (OpenAI bodies; 400 without api-version, as Azure does)
//   Responses  POST /v1/responses (+ /responses; Azure: /openai/responses?api-version=, /openai/v1/responses):
//              a Response object, or its typed event stream (`event: response.created` ...
//              `response.completed`) when `stream: true`; the responses it made are kept, so
//              GET / DELETE /v1/responses/{id}, POST /v1/responses/{id}/cancel and
//              `previous_response_id` work (an unknown one is a 400, as OpenAI answers).
//   Anthropic  POST /v1/messages: Messages API JSON or its event stream
//              (message_start, content_block_start, ping, content_block_delta, content_block_stop,
//              message_delta, message_stop; `error` events on scripted mid-stream failure).
//              POST /v1/messages/count_tokens: {"input_tokens": N}, N = ceil(length of
//              JSON.stringify([system ?? null, messages ?? [], tools ?? []]) / 4), or the
//              behaviour's `input_tokens`.
//   Ollama     POST /api/chat, /api/generate (JSON, or NDJSON when `stream` is not false, as Ollama
//              defaults to streaming), /api/embed, /api/embeddings (legacy), GET /api/tags.
//   Gemini     POST /v1beta/models/{model}:generateContent (a GenerateContentResponse) and
//              :streamGenerateContent?alt=sse (one GenerateContentResponse per `data:` event,
//              \r\n\r\n-separated as Google sends them; finishReason and usageMetadata in the
//              last; with generationConfig.candidateCount N > 1 every event carries N
//              candidates, candidate i > 0 answering "[i] <content>", the first finishing
//              one event before the others), :embedContent, :batchEmbedContents. Errors
//              in Google's shape ({"error": {"code", "message", "status"}}). Schemas (tool parameters,
//              responseSchema) with keywords Gemini's Schema lacks ($ref, $defs,
//              additionalProperties, ...) are a 400. gemini-3* models (also on Vertex)
//              sign their first function call (thoughtSignature) and answer 400 when a model
//              turn after the last user text comes back without a signature they issued.
//   Vertex AI  POST /v1/projects/{p}/locations/{l}/publishers/google/models/{model}:generateContent
//              | :streamGenerateContent (the Gemini format), and .../publishers/anthropic/models/
//              {model}:rawPredict | :streamRawPredict (Anthropic's Messages format; the body must
//              carry anthropic_version "vertex-2023-10-16" and no model). Every Vertex request
//              needs `authorization: Bearer <token>` with a token this fake's token endpoint
//              issued (else 401 UNAUTHENTICATED, as Google answers).
//   OAuth2     POST /token: Google's token endpoint (JWT-bearer grant). The assertion's RS256
//              signature is VERIFIED against the public key set with /__control/oauth, and its
//              claims (iss = client_email, aud = this URL, scope cloud-platform, iat/exp within
//              an hour of now); anything wrong is a 400 invalid_grant naming it.
//              POST /{tenant}/oauth2/v2.0/token: Microsoft Entra ID's client-credentials grant,
//              checking tenant, client_id, client_secret and the Cognitive Services scope.
//              Azure routes then need the issued token when a request sends a bearer.
//              Behaviour `expires_in` sets the tokens' lifetime (default 3599).
//   Bedrock    POST /model/{modelId}/converse (Converse JSON), /model/{modelId}/converse-stream
//              (application/vnd.amazon.eventstream binary frames with both CRCs: messageStart,
//              contentBlockStart/Delta/Stop, messageStop, metadata; exceptions as
//              `:message-type exception`), /model/{modelId}/invoke (Titan and Cohere embeddings).
//              Every Bedrock request must carry a valid AWS SigV4 signature: the fake recomputes it
//              from the request as received (its own implementation, node:crypto) with the secret
//              of the access key in the `aws_keys` default ({access key id: secret}) and answers
//              403 with Bedrock's error JSON on a mismatch (`rec.sigv4` records what it computed).
//              Converse requests whose messages hold toolUse / toolResult blocks without a
//              toolConfig are a 400 ValidationException, as Bedrock answers them.
//   Cohere     POST /v2/chat: v2 chat JSON, or its typed SSE stream (message-start, content-start,
//              content-delta, content-end, tool-call-start, tool-call-delta, tool-call-end,
//              message-end with finish_reason and usage {billed_units, tokens}) when `stream: true`;
//              401 without `authorization: Bearer ...`; 400 for a response_format other than
//              {type: text} or {type: json_object, json_schema?}.
//
// Behaviour is scripted per test through the control API (all JSON):
//   POST   /__control/script     body: [behaviour, ...] or {"behaviours": [...]}: appended to the
//                                queue; each request takes the first queued behaviour whose
//                                `match` fits (or that has none). Empty queue: the defaults.
//   DELETE /__control/script     empty the queue.
//   GET    /__control/script     what is still queued.
//   POST   /__control/defaults   merge into the default behaviour (e.g. {"content": "...",
//                                "delay_ms": 5, "chunk_delay_ms": 2, "echo": true}).
//   GET    /__control/requests   every recorded request, oldest first (see `record` below).
//                                Query: ?min=N&timeout_ms=T waits (bounded) until N are recorded;
//                                ?path=/v1/messages filters by path.
//   DELETE /__control/requests   forget the recorded requests.
//   POST   /__control/reset      queue, defaults and records back to the start state.
//   POST   /__control/oauth      {google: {client_email, public_key_pem}, entra: {tenant, client_id,
//                                client_secret}}: the credentials the token endpoints accept.
//   GET    /__control/health     200 {"ok":true}.
//
// A behaviour (every field optional):
//   match            {path: "/v1/messages" | "^regex", model: "gpt-x", provider: "openai"|"azure"|
//                    "anthropic"|"ollama"|"gemini"|"vertex"|"vertex_anthropic"|"google_oauth"|"entra",
//                    method: "POST"}: only requests that fit consume it (token endpoints only
//                    take behaviours whose match names their provider).
//   times            how many requests it answers before it is used up (default 1; -1 = forever).
//   status           HTTP status (default 200). >= 400 without body/raw_body: the provider's own
//                    error shape with `error_message` / `error_type` (defaults per status).
//   headers          extra response headers, e.g. {"retry-after": "2"}.
//   body             a JSON value sent as the whole response body (status as given).
//   raw_body         a string sent as the whole body (content-type: `content_type` or text/plain).
//   delay_ms         wait before the response head (a "latency" knob; also in the defaults).
//   chunk_delay_ms   wait between streamed chunks/events/lines.
//   content          the assistant text (default "Hello from fake provider").
//   echo             true: the content is the text of the last user message / prompt / input.
//   chunks           streamed content pieces: a number N (content split into N pieces) or an
//                    explicit list of strings (then also the content). Default: split on words.
//   tool_calls       [{id?, name, arguments: object|string}]: the answer calls tools
//                    (OpenAI tool_calls, Anthropic tool_use blocks, Ollama message.tool_calls,
//                    Gemini functionCall parts).
//   thinking         Anthropic: the text of the signed thinking block that opens the answer when
//                    the request turns extended thinking on (default "Let me think."). Such a
//                    request whose last assistant message calls tools without opening with a signed
//                    thinking block is a 400, as Anthropic answers it.
//   block_reason     Gemini/Vertex: the prompt is refused (promptFeedback.blockReason, no candidates).
//   empty_candidates Gemini/Vertex: true: `candidates: []` and no block reason.
//   (Gemini/Vertex answers are grounded when the request asks as Gemini's are asked: a
//   `googleSearch` tool -> groundingMetadata, citationMetadata and safetyRatings on the
//   candidate (streamed: on the finishing event); a `urlContext` tool -> urlContextMetadata.)
//   finish_reason    OpenAI name ("stop", "length", "tool_calls"); mapped per provider.
//   usage            {prompt_tokens, completion_tokens, cache_read_input_tokens,
//                    cache_creation_input_tokens, cached_tokens, reasoning_tokens} overrides the
//                    deterministic counts. OpenAI/Azure: prompt_tokens includes the cached ones, as
//                    OpenAI counts; `cached_tokens` becomes usage.prompt_tokens_details.cached_tokens
//                    and `reasoning_tokens` usage.completion_tokens_details.reasoning_tokens (JSON
//                    and the final stream chunk; absent when not scripted). Anthropic:
//                    prompt_tokens is input_tokens (without the cache), cache_read_input_tokens /
//                    cache_creation_input_tokens go to message_start (stream) or usage (JSON).
//   model            the model name in the answer (default: the request's).
//   stream           force streaming (true) or JSON (false) regardless of the request.
//   stall            true: never answer (the socket stays open until the client gives up).
//   stall_after_chunks  N: stream N pieces, then nothing more (for stream-idle timeouts).
//   cut_after_chunks N: stream N pieces, then destroy the socket (no terminator).
//   error_after_chunks N: stream N pieces, then the provider's mid-stream error event
//                    (OpenAI `data: {"error":...}`, Anthropic `event: error`, Ollama {"error"}).
//   invalid_json     true: a 200 whose body (or, streaming, whose first frame) is not JSON.
//   raw_chunks       [string, ...]: stream exactly these bytes, one write each (status 200,
//                    content-type `content_type` or the provider's stream type).
//   dimensions       embedding length (default 8).
//   eventstream_fault  Bedrock streams: {kind: "message_crc" | "prelude_crc" | "truncate" |
//                    "not_json", after_chunks: N}: after N content pieces the next frame has a bad
//                    message CRC, a bad prelude CRC, is cut in half (then the response ends
//                    cleanly), or carries a payload that is not JSON; nothing follows it.
//   close            true: answer with `connection: close`.
//
// Recorded request (GET /__control/requests):
//   {seq, method, url, path, query, provider, headers (lower-case), body (parsed JSON or null),
//    raw_body (only when not JSON), body_text (Anthropic routes: the body exactly as received),
//    received_at, finished_at, aborted, aborted_at, cut,
//    behaviour (the scripted one or null), reply: {status, stream, content, usage, tool_calls,
//    chunks_sent}}
//   `aborted` becomes true when the client closed the connection before the response ended.
//   `reply.usage` is OpenAI-named ({prompt_tokens, completion_tokens, total_tokens}) whatever
//   the provider, so tests can compare what the client got with what the fake produced.
//
// HTTPS:  startFakeProvider({tls: {key, cert}}) serves the same over TLS (url https://...).
// CLI:    node tests/fake_provider/server.mjs [--port N] [--host 127.0.0.1]
//         port 0 (default) picks a free port; prints one line {"port":N} on stdout when ready.
// Import: const fake = await startFakeProvider({port: 0, host: '127.0.0.1', defaults: {...}});
//         fake.url ("http://127.0.0.1:N"), fake.port, fake.script([...]), fake.setDefaults({}),
//         fake.requests({path}), fake.clearRequests(), fake.waitForRequests(n, {timeoutMs}),
//         fake.waitFor(pred, {timeoutMs}), fake.reset(), await fake.close().

import http from 'node:http';
import https from 'node:https';
import { createHash, createHmac, randomBytes, verify as cryptoVerify } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import process from 'node:process';

export const DEFAULT_CONTENT = 'Hello from fake provider';

const BASE_DEFAULTS = Object.freeze({
  content: DEFAULT_CONTENT,
  delay_ms: 0,
  chunk_delay_ms: 0,
  dimensions: 8,
  aws_keys: { AKIDFAKEBEDROCK: 'fake/bedrock+secret/KEY' },
});

const OPENAI_ERROR_TYPES = {
  400: ['invalid_request_error', null],
  401: ['invalid_request_error', 'invalid_api_key'],
  403: ['permission_error', null],
  404: ['invalid_request_error', 'model_not_found'],
  408: ['timeout', null],
  409: ['conflict', null],
  413: ['invalid_request_error', null],
  422: ['invalid_request_error', null],
  429: ['requests', 'rate_limit_exceeded'],
};
const BEDROCK_ERROR_TYPES = {
  400: 'ValidationException',
  403: 'AccessDeniedException',
  404: 'ResourceNotFoundException',
  408: 'ModelTimeoutException',
  424: 'ModelErrorException',
  429: 'ThrottlingException',
  500: 'InternalServerException',
  503: 'ServiceUnavailableException',
};
const ANTHROPIC_ERROR_TYPES = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  403: 'permission_error',
  404: 'not_found_error',
  413: 'request_too_large',
  429: 'rate_limit_error',
  500: 'api_error',
  529: 'overloaded_error',
};

// ------------------------------------------------------------------ helpers

const sleep = (ms, signal) =>
  new Promise((resolve) => {
    if (!ms || ms <= 0) return resolve();
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });

const nowSec = () => Math.floor(Date.now() / 1000);
const randId = (n = 12) => randomBytes(n).toString('hex').slice(0, n * 2);
const clone = (v) => (v === undefined ? undefined : JSON.parse(JSON.stringify(v)));

function textOf(content) {
  if (content == null) return '';
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    return content
      .map((p) => (typeof p === 'string' ? p : p?.type === 'text' ? (p.text ?? '') : p?.text ?? ''))
      .join('');
  }
  return String(content);
}

function countWords(s) {
  const m = String(s).trim().match(/\S+/g);
  return m ? m.length : 0;
}

// Deterministic prompt token count: words in every message / prompt / system text, plus
// three per message (a rough stand-in for the chat template).
function promptTokens(provider, kind, body) {
  if (!body || typeof body !== 'object') return 1;
  let n = 0;
  if (Array.isArray(body.messages)) {
    for (const m of body.messages) n += 3 + countWords(textOf(m?.content));
  }
  if (body.system != null) n += countWords(textOf(body.system));
  if (body.prompt != null) {
    n += Array.isArray(body.prompt) ? body.prompt.map((p) => countWords(textOf(p))).reduce((a, b) => a + b, 0)
                                    : countWords(textOf(body.prompt));
  }
  if (body.input != null) {
    // Embedding inputs, or Responses input items ({role, content} / function_call_output).
    const itemText = (p) => (p && typeof p === 'object' && !Array.isArray(p)
      ? textOf(p.content ?? p.output ?? p.arguments ?? '') : textOf(p));
    n += Array.isArray(body.input) ? body.input.map((p) => countWords(itemText(p))).reduce((a, b) => a + b, 0)
                                   : countWords(textOf(body.input));
  }
  if (typeof body.instructions === 'string') n += countWords(body.instructions);
  if (Array.isArray(body.contents)) {
    for (const c of body.contents) n += 3 + countWords(geminiText(c));
  }
  if (body.systemInstruction != null) n += countWords(geminiText(body.systemInstruction));
  return Math.max(1, n);
}

// The text parts of a Gemini content ({role, parts: [{text}, ...]}).
function geminiText(c) {
  return Array.isArray(c?.parts) ? c.parts.filter((p) => typeof p?.text === 'string').map((p) => p.text).join(' ') : '';
}

function lastUserText(body) {
  if (!body || typeof body !== 'object') return '';
  if (Array.isArray(body.contents)) {
    for (let i = body.contents.length - 1; i >= 0; --i) {
      if (body.contents[i]?.role === 'user' && geminiText(body.contents[i])) return geminiText(body.contents[i]);
    }
  }
  if (Array.isArray(body.messages)) {
    for (let i = body.messages.length - 1; i >= 0; --i) {
      const m = body.messages[i];
      if (m?.role === 'user') return textOf(m.content);
    }
  }
  if (body.prompt != null) return Array.isArray(body.prompt) ? textOf(body.prompt[0]) : textOf(body.prompt);
  if (typeof body.input === 'string') return body.input;  // Responses API
  if (Array.isArray(body.input)) {
    for (let i = body.input.length - 1; i >= 0; --i) {
      if (body.input[i]?.role === 'user') return textOf(body.input[i].content);
    }
  }
  return '';
}

// Split `content` into the streamed pieces.
function splitPieces(content, chunks) {
  if (Array.isArray(chunks)) return chunks.map(String);
  if (typeof chunks === 'number' && chunks > 0) {
    const n = Math.floor(chunks);
    if (content.length === 0) return Array.from({ length: n }, () => '');
    const pieces = [];
    const size = Math.max(1, Math.ceil(content.length / n));
    for (let i = 0; i < n; ++i) pieces.push(content.slice(i * size, (i + 1) * size));
    // content shorter than n: the tail pieces are empty strings; keep the count exact.
    return pieces;
  }
  // Default: one piece per word, the separating space kept in front ("Hello", " from", ...).
  const m = content.match(/\s*\S+\s*$|\s*\S+/g);
  return m && m.length ? m : [content];
}

function embeddingFor(text, dims) {
  const out = [];
  let block = Buffer.alloc(0);
  let i = 0;
  while (out.length < dims) {
    if (block.length < 4) {
      block = createHash('sha256').update(`${i++}:${text}`).digest();
    }
    const v = block.readUInt32LE(0);
    block = block.subarray(4);
    out.push(Math.round(((v / 0xffffffff) * 2 - 1) * 1e6) / 1e6);
  }
  return out;
}

function toBase64Floats(vec) {
  const f = new Float32Array(vec);
  return Buffer.from(f.buffer).toString('base64');
}

function parseArgs(args) {
  if (typeof args === 'string') return args;
  return JSON.stringify(args ?? {});
}

function normToolCalls(list) {
  if (!Array.isArray(list) || list.length === 0) return null;
  return list.map((tc, i) => ({
    id: tc.id ?? `call_${randId(8)}_${i}`,
    name: tc.name ?? tc.function?.name ?? 'tool',
    arguments: parseArgs(tc.arguments ?? tc.function?.arguments ?? {}),
  }));
}

function splitArgs(s) {
  if (s.length <= 2) return [s];
  const a = Math.ceil(s.length / 3);
  return [s.slice(0, a), s.slice(a, 2 * a), s.slice(2 * a)].filter((p) => p.length > 0);
}

// ------------------------------------------------------------------ routing

// Returns {provider, kind, model?} for the wire-format endpoints, or null.
function classify(method, path) {
  const p = path.length > 1 ? path.replace(/\/+$/, '') : path;
  if (method === 'POST') {
    if (p === '/v1/chat/completions' || p === '/chat/completions') return { provider: 'openai', kind: 'chat' };
    if (p === '/v1/completions' || p === '/completions') return { provider: 'openai', kind: 'completion' };
    if (p === '/v1/embeddings' || p === '/embeddings') return { provider: 'openai', kind: 'embedding' };
    let m = p.match(/^\/openai\/deployments\/([^/]+)\/(chat\/completions|completions|embeddings)$/);
    if (m) {
      const kind = m[2] === 'chat/completions' ? 'chat' : m[2] === 'completions' ? 'completion' : 'embedding';
      return { provider: 'azure', kind, deployment: decodeURIComponent(m[1]) };
    }
    if (p === '/v1/messages') return { provider: 'anthropic', kind: 'chat' };
    if (p === '/v1/responses' || p === '/responses') return { provider: 'openai', kind: 'responses' };
    if (p === '/openai/responses' || p === '/openai/v1/responses') {
      return { provider: 'azure', kind: 'responses', v1: p.startsWith('/openai/v1/') };
    }
    m = p.match(/^(\/v1|\/openai|\/openai\/v1)?\/responses\/([^/]+)\/cancel$/);
    if (m) return { provider: m[1]?.startsWith('/openai') ? 'azure' : 'openai', kind: 'responses_cancel', id: m[2], v1: m[1] === '/openai/v1' };
    if (p === '/v1/messages/count_tokens') return { provider: 'anthropic', kind: 'count_tokens' };
    if (p === '/api/chat') return { provider: 'ollama', kind: 'chat' };
    if (p === '/api/generate') return { provider: 'ollama', kind: 'generate' };
    if (p === '/api/embed') return { provider: 'ollama', kind: 'embed' };
    if (p === '/api/embeddings') return { provider: 'ollama', kind: 'embeddings_legacy' };
    m = p.match(/^\/v1beta\/models\/([^/:]+):(generateContent|streamGenerateContent|embedContent|batchEmbedContents)$/);
    if (m) {
      return { provider: 'gemini', kind: GEMINI_KINDS[m[2]], deployment: decodeURIComponent(m[1]),
               stream: m[2] === 'streamGenerateContent' };
    }
    m = p.match(/^\/v1\/projects\/([^/]+)\/locations\/([^/]+)\/publishers\/(google|anthropic)\/models\/([^/:]+):(generateContent|streamGenerateContent|rawPredict|streamRawPredict)$/);
    if (m) {
      const anthropic = m[3] === 'anthropic';
      if (anthropic !== m[5].toLowerCase().endsWith('rawpredict')) return null;
      return { provider: anthropic ? 'vertex_anthropic' : 'vertex', kind: anthropic ? 'chat' : GEMINI_KINDS[m[5]],
               deployment: decodeURIComponent(m[4]), project: m[1], location: m[2],
               stream: m[5].startsWith('stream') };
    }
    if (p === '/token') return { provider: 'google_oauth', kind: 'token' };
    m = p.match(/^\/([^/]+)\/oauth2\/v2\.0\/token$/);
    if (m) return { provider: 'entra', kind: 'token', tenant: m[1] };
    if (p === '/v2/chat') return { provider: 'cohere', kind: 'chat' };
    m = p.match(/^\/model\/([^/]+)\/(converse|converse-stream|invoke)$/);
    if (m) {
      const kind = m[2] === 'converse' ? 'chat' : m[2] === 'converse-stream' ? 'chat_stream' : 'invoke';
      let id;
      try {
        id = decodeURIComponent(m[1]);
      } catch {
        id = m[1];
      }
      return { provider: 'bedrock', kind, deployment: id };
    }
  } else if (method === 'GET') {
    if (p === '/v1/models' || p === '/models') return { provider: 'openai', kind: 'models' };
    if (p === '/api/tags') return { provider: 'ollama', kind: 'tags' };
  }
  if (method === 'GET' || method === 'DELETE') {
    const m = p.match(/^(\/v1|\/openai|\/openai\/v1)?\/responses\/([^/]+)$/);
    if (m) {
      return { provider: m[1]?.startsWith('/openai') ? 'azure' : 'openai',
               kind: method === 'GET' ? 'responses_get' : 'responses_delete', id: m[2], v1: m[1] === '/openai/v1' };
    }
  }
  return null;
}

const GEMINI_KINDS = {
  generateContent: 'chat', streamGenerateContent: 'chat', embedContent: 'embed', batchEmbedContents: 'batch_embed',
};
const GOOGLE_STATUS = {
  400: 'INVALID_ARGUMENT', 401: 'UNAUTHENTICATED', 403: 'PERMISSION_DENIED', 404: 'NOT_FOUND',
  429: 'RESOURCE_EXHAUSTED', 500: 'INTERNAL', 503: 'UNAVAILABLE', 504: 'DEADLINE_EXCEEDED',
};
// The first JSON-schema keyword Gemini's Schema does not have, with where it is ({name, where}),
// or null. Names under `properties` are property names.
const GEMINI_SCHEMA_UNKNOWN = new Set(['$ref', '$defs', 'definitions', 'additionalProperties', '$schema', 'strict']);
function unknownSchemaField(schema, where) {
  if (schema == null || typeof schema !== 'object') return null;
  if (Array.isArray(schema)) {
    for (const [i, s] of schema.entries()) {
      const bad = unknownSchemaField(s, `${where}[${i}]`);
      if (bad) return bad;
    }
    return null;
  }
  for (const [k, v] of Object.entries(schema)) {
    if (GEMINI_SCHEMA_UNKNOWN.has(k)) return { name: k, where };
    if (k === 'properties' && v && typeof v === 'object') {
      for (const [name, sub] of Object.entries(v)) {
        const bad = unknownSchemaField(sub, `${where}.properties[${name}].value`);
        if (bad) return bad;
      }
    } else if (k === 'items' || k === 'anyOf') {
      const bad = unknownSchemaField(v, `${where}.${k}`);
      if (bad) return bad;
    }
  }
  return null;
}

// Gemini 3 models (gemini-3-pro-preview, ...) enforce thought signatures on function calls.
const isGemini3 = (model) => /^gemini-3/.test(String(model ?? ''));
// The candidates a Gemini request asks for (generationConfig.candidateCount, default 1).
function geminiCandidates(body) {
  const n = Number(body?.generationConfig?.candidateCount ?? 1);
  return Number.isInteger(n) && n > 1 ? Math.min(n, 8) : 1;
}

const GEMINI_FINISH = { stop: 'STOP', length: 'MAX_TOKENS', tool_calls: 'STOP', content_filter: 'SAFETY' };

function b64urlDecode(s) {
  return Buffer.from(String(s).replace(/-/g, '+').replace(/_/g, '/'), 'base64');
}

function matches(beh, req) {
  const m = beh.match;
  // Token endpoints take only behaviours scripted for them (match.provider "google_oauth"
  // or "entra"): a gateway fetching a token must not consume the next chat behaviour.
  if (req.kind === 'token' && m?.provider !== req.provider) return false;
  if (!m) return true;
  if (m.method && m.method.toUpperCase() !== req.method) return false;
  if (m.provider && m.provider !== req.provider) return false;
  if (m.path) {
    if (m.path.startsWith('^')) {
      if (!new RegExp(m.path).test(req.path)) return false;
    } else if (m.path !== req.path) {
      return false;
    }
  }
  if (m.model != null) {
    const model = req.body && typeof req.body === 'object' ? req.body.model : undefined;
    if (m.model !== model && m.model !== req.deployment) return false;
  }
  return true;
}

// ------------------------------------------------------------------ the server

class FakeProvider {
  constructor(opts = {}) {
    this.host = opts.host ?? '127.0.0.1';
    this.wantPort = opts.port ?? 0;
    this.initialDefaults = { ...BASE_DEFAULTS, ...(opts.defaults ?? {}) };
    this.quiet = opts.quiet ?? true;
    // OAuth2: the credentials the token endpoints accept and the tokens they issued (kept
    // across reset(): a gateway keeps its token between tests).
    this.oauth = {};
    this.issuedTokens = new Map();  // token -> subject (client_email / client_id)
    // Gemini 3 thought signatures handed out with function calls (kept across reset():
    // a conversation may span tests no more than a token does, but it costs nothing).
    this.thoughtSignatures = new Set();
    this.reset();
    this.sockets = new Set();
    this.waiters = new Set();
    // opts.tls = {key, cert} (PEM): the same server over HTTPS (an upstream with its own,
    // e.g. self-signed, certificate).
    this.tls = opts.tls ?? null;
    const serverOpts = { noDelay: true, keepAliveTimeout: 30_000, ...(this.tls ?? {}) };
    this.server = (this.tls ? https : http).createServer(serverOpts, (req, res) =>
      this.handle(req, res).catch((err) => {
        if (!this.quiet) console.error('fake provider: handler error', err);
        try {
          if (!res.headersSent) {
            res.writeHead(500, { 'content-type': 'application/json' });
            res.end(JSON.stringify({ error: { message: `fake provider bug: ${err.message}` } }));
          } else {
            res.destroy();
          }
        } catch {
          /* socket already gone */
        }
      }),
    );
    this.server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    // Node's default (300 s) is fine, but stalled requests must never be cut by us.
    this.server.requestTimeout = 0;
    this.server.headersTimeout = 60_000;
  }

  reset() {
    this.queue = [];
    this.defaults = { ...this.initialDefaults };
    this.records = [];
    this.responses = new Map();  // Responses API objects made here, by id (bounded)
    this.seq = 0;
    // Stalled responses of an earlier test must not hang forever.
    for (const s of this.stalled ?? []) s();
    this.stalled = new Set();
  }

  listen() {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.wantPort, this.host, () => {
        this.server.off('error', reject);
        this.port = this.server.address().port;
        const h = this.host.includes(':') ? `[${this.host}]` : this.host;
        this.url = `${this.tls ? 'https' : 'http'}://${h}:${this.port}`;
        resolve(this);
      });
    });
  }

  close() {
    for (const s of this.stalled) s();
    this.stalled.clear();
    for (const w of this.waiters) w.cancel();
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections?.();
      for (const s of this.sockets) s.destroy();
    });
  }

  script(list) {
    const arr = Array.isArray(list) ? list : list?.behaviours ?? list?.script ?? [list];
    for (const b of arr) this.queue.push({ ...clone(b), _left: b.times ?? 1 });
  }

  setDefaults(obj) {
    Object.assign(this.defaults, clone(obj ?? {}));
  }

  takeBehaviour(req) {
    for (let i = 0; i < this.queue.length; ++i) {
      const b = this.queue[i];
      if (!matches(b, req)) continue;
      if (b._left > 0) {
        b._left -= 1;
        if (b._left === 0) this.queue.splice(i, 1);
      }
      const { _left, ...rest } = b;
      return rest;
    }
    return null;
  }

  requests(filter = {}) {
    let out = this.records;
    if (filter.path) out = out.filter((r) => r.path === filter.path);
    if (filter.provider) out = out.filter((r) => r.provider === filter.provider);
    return clone(out);
  }

  clearRequests() {
    this.records = [];
  }

  notify() {
    for (const w of this.waiters) w.check();
  }

  // Resolves with requests() once pred(requests()) is truthy; rejects after timeoutMs.
  waitFor(pred, { timeoutMs = 5000 } = {}) {
    return new Promise((resolve, reject) => {
      const w = {
        check: () => {
          let ok = false;
          try {
            ok = pred(this.records);
          } catch (e) {
            finish();
            reject(e);
            return;
          }
          if (ok) {
            finish();
            resolve(this.requests());
          }
        },
        cancel: () => {
          finish();
          reject(new Error('fake provider closed'));
        },
      };
      const t = setTimeout(() => {
        finish();
        reject(new Error(`fake provider: condition not met within ${timeoutMs} ms; ` +
                         `${this.records.length} request(s) recorded`));
      }, timeoutMs);
      const finish = () => {
        clearTimeout(t);
        this.waiters.delete(w);
      };
      this.waiters.add(w);
      w.check();
    });
  }

  waitForRequests(n, opts) {
    return this.waitFor((recs) => recs.length >= n, opts);
  }

  // -------------------------------------------------------------- per request

  async handle(req, res) {
    const url = new URL(req.url, 'http://fake');
    const path = url.pathname;
    const raw = await readBody(req);

    if (path.startsWith('/__control/')) return this.control(req, res, url, raw);

    const route = classify(req.method, path);
    const rec = {
      seq: ++this.seq,
      method: req.method,
      url: req.url,
      path,
      query: Object.fromEntries(url.searchParams),
      provider: route?.provider ?? null,
      headers: { ...req.headers },
      body: null,
      received_at: Date.now(),
      finished_at: null,
      aborted: false,
      aborted_at: null,
      cut: false,
      behaviour: null,
      reply: { status: null, stream: false, content: null, usage: null, tool_calls: null, chunks_sent: 0 },
    };
    if (route?.provider === 'anthropic') rec.body_text = raw.toString('utf8');
    if (raw.length > 0) {
      try {
        rec.body = JSON.parse(raw.toString('utf8'));
      } catch {
        rec.raw_body = raw.toString('utf8');
      }
    }
    this.records.push(rec);

    const ac = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished && !rec.cut) {
        rec.aborted = true;
        rec.aborted_at = Date.now();
      }
      ac.abort();
      this.notify();
    });
    res.on('finish', () => {
      rec.finished_at = Date.now();
      this.notify();
    });
    this.notify();

    if (!route) {
      return sendJson(res, 404, {
        error: { message: `fake provider: no route for ${req.method} ${path}`, type: 'invalid_request_error',
                 param: null, code: 'not_found' },
      }, rec);
    }

    if (route.provider === 'bedrock') {
      const v = verifySigV4(req, raw, this.defaults.aws_keys ?? {});
      rec.sigv4 = v;
      if (!v.ok) {
        return sendJson(res, 403, { message: v.message }, rec, { 'x-amzn-errortype': `${v.type}:http://internal.amazon.com/coral/com.amazon.coral.service/` });
      }
    }

    const ctx = { ...route, method: req.method, path, body: rec.body };
    const scripted = this.takeBehaviour(ctx);
    rec.behaviour = scripted ? clone(scripted) : null;
    const beh = { ...this.defaults, ...(scripted ?? {}) };
    const x = { req, res, rec, route, beh, body: rec.body ?? {}, query: url.searchParams, signal: ac.signal };

    if (beh.delay_ms) await sleep(beh.delay_ms, ac.signal);
    if (ac.signal.aborted) return;

    if (beh.stall) return this.stall(x);

    if (beh.close) res.shouldKeepAlive = false;

    // Whole-body overrides.
    if (beh.raw_body != null) {
      return sendRaw(res, beh.status ?? 200, beh.content_type ?? 'text/plain', beh.raw_body, beh.headers, rec);
    }
    if (beh.body !== undefined) {
      return sendJson(res, beh.status ?? 200, beh.body, rec, beh.headers);
    }
    if ((beh.status ?? 200) >= 400) return this.sendProviderError(x, beh.status);

    if (route.kind === 'token') return this.tokenEndpoint(x);
    if (rec.raw_body != null && req.method === 'POST') {
      return this.sendProviderError(x, 400, 'We could not parse the JSON body of your request.');
    }
    if (route.provider === 'vertex' || route.provider === 'vertex_anthropic' ||
        (route.provider === 'azure' && req.headers.authorization)) {
      const m = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
      if (!m || !this.issuedTokens.has(m[1])) {
        rec.reply.auth = 'refused';
        if (route.provider === 'azure') {
          return sendJson(res, 401, { error: { code: '401', message: 'Access token is missing, invalid or expired.' } }, rec);
        }
        return sendJson(res, 401, this.errorBody('vertex', 401,
          'Request had invalid authentication credentials. Expected OAuth 2 access token.'), rec);
      }
      rec.reply.auth = this.issuedTokens.get(m[1]);
    }
    if (route.provider === 'vertex_anthropic') {
      rec.body_text = raw.toString('utf8');
      const b = rec.body ?? {};
      if (b.anthropic_version !== 'vertex-2023-10-16' || 'model' in b) {
        return sendJson(res, 400, this.errorBody('vertex_anthropic', 400,
          'anthropic_version: vertex-2023-10-16 is required and model must not be in the body'), rec);
      }
      if (route.stream !== (b.stream === true)) {
        return sendJson(res, 400, this.errorBody('vertex_anthropic', 400,
          'stream must be true exactly on :streamRawPredict'), rec);
      }
    }
    if ((route.provider === 'gemini' || route.provider === 'vertex') && route.kind === 'chat') {
      // Gemini's Schema (an OpenAPI subset) has no references and no additionalProperties.
      const schemas = [['generation_config.response_schema', x.body.generationConfig?.responseSchema]];
      for (const [t, tool] of (x.body.tools ?? []).entries()) {
        for (const [f, decl] of (tool?.functionDeclarations ?? []).entries()) {
          schemas.push([`tools[${t}].function_declarations[${f}].parameters`, decl?.parameters]);
        }
      }
      for (const [where, schema] of schemas) {
        const bad = unknownSchemaField(schema, where);
        if (bad) {
          return this.sendProviderError(x, 400,
            `Invalid JSON payload received. Unknown name "${bad.name}" at '${bad.where}': Cannot find field.`);
        }
      }
    }
    if ((route.provider === 'gemini' || route.provider === 'vertex') && isGemini3(route.deployment) &&
        (route.kind === 'chat' || route.kind === 'chat_stream')) {
      const missing = this.unsignedFunctionCall(x.body);
      if (missing) {
        return this.sendProviderError(x, 400, `Function call is missing a thought_signature in functionCall parts. ` +
          `This is required for tools to work correctly. Additional data, function call \`${missing}\`. ` +
          'Please refer to https://ai.google.dev/gemini-api/docs/thought-signatures for more details.');
      }
    }
    if (route.provider === 'bedrock' && route.kind !== 'invoke' && !x.body.toolConfig &&
        (x.body.messages ?? []).some((m) => (m?.content ?? []).some((b) => b?.toolUse || b?.toolResult))) {
      return this.sendProviderError(x, 400,
        'The toolConfig field must be defined when using toolUse and toolResult content blocks.');
    }
    if ((route.provider === 'anthropic' || route.provider === 'vertex_anthropic') && route.kind === 'chat' &&
        x.body.thinking?.type === 'enabled') {
      // Anthropic's rule for extended thinking with tools: the last assistant message, when it
      // calls tools, must open with the (signed) thinking block that came with those calls.
      const msgs = Array.isArray(x.body.messages) ? x.body.messages : [];
      const i = msgs.findLastIndex((m) => m?.role === 'assistant');
      const content = Array.isArray(msgs[i]?.content) ? msgs[i].content : [];
      const first = content[0];
      if (content.some((b) => b?.type === 'tool_use') &&
          !((first?.type === 'thinking' && first.signature) || (first?.type === 'redacted_thinking' && first.data))) {
        return this.sendProviderError(x, 400, `messages.${i}.content.0.type: Expected \`thinking\` or ` +
          `\`redacted_thinking\`, but found \`${first?.type}\`. When \`thinking\` is enabled, a final \`assistant\` ` +
          'message must start with a thinking block (preceeding the lastmost set of `tool_use` and `tool_result` ' +
          'blocks). We recommend you include thinking blocks from previous turns. To avoid this requirement, ' +
          'disable `thinking`.');
      }
    }
    if (route.provider === 'gemini' && route.kind === 'embed') return this.geminiEmbed(x, false);
    if (route.provider === 'gemini' && route.kind === 'batch_embed') return this.geminiEmbed(x, true);
    if (route.provider === 'azure' && !route.v1 && !url.searchParams.get('api-version')) {
      return sendJson(res, 404, {
        error: { code: '404', message: 'Resource not found' },
      }, rec, beh.headers);
    }
    if (beh.invalid_json && !this.wantsStream(x)) {
      return sendRaw(res, 200, 'application/json', '{"id": "broken", "choices": [ {"message": ', beh.headers, rec);
    }

    switch (`${route.provider}:${route.kind}`) {
      case 'openai:models':
        return sendJson(res, 200, {
          object: 'list',
          data: (beh.models ?? ['gpt-x', 'gpt-4o', 'text-embedding-3-small']).map((id) => ({
            id, object: 'model', created: 1686935002, owned_by: 'fake-provider',
          })),
        }, rec, beh.headers);
      case 'ollama:tags':
        return sendJson(res, 200, {
          models: (beh.models ?? ['llama3.1']).map((name) => ({
            name, model: name, modified_at: new Date(0).toISOString(), size: 1, digest: randId(8), details: {},
          })),
        }, rec, beh.headers);
      case 'openai:embedding':
      case 'azure:embedding':
        return this.openaiEmbeddings(x);
      case 'ollama:embed':
      case 'ollama:embeddings_legacy':
        return this.ollamaEmbed(x);
      case 'bedrock:invoke':
        return this.bedrockInvoke(x);
      case 'openai:responses_get':
      case 'azure:responses_get':
      case 'openai:responses_delete':
      case 'azure:responses_delete':
      case 'openai:responses_cancel':
      case 'azure:responses_cancel':
        return this.responsesById(x);
      case 'anthropic:count_tokens': {
        const b = x.body;
        const n = beh.input_tokens ??
          Math.ceil(JSON.stringify([b.system ?? null, b.messages ?? [], b.tools ?? []]).length / 4);
        rec.reply.status = 200;
        return sendJson(res, 200, { input_tokens: n }, rec, beh.headers);
      }
      default:
        break;
    }
    if (route.provider === 'cohere' && !/^Bearer \S+/.test(req.headers.authorization ?? '')) {
      return this.sendProviderError(x, 401, 'no api key supplied');
    }
    // v2's response_format is {type: "text"} or {type: "json_object", json_schema?}.
    const rf = route.provider === 'cohere' ? x.body.response_format : undefined;
    if (rf != null && (!['text', 'json_object'].includes(rf.type) ||
                       Object.keys(rf).some((k) => k !== 'type' && !(k === 'json_schema' && rf.type === 'json_object')))) {
      return this.sendProviderError(x, 400,
        'invalid request: response_format must be {"type": "text"} or {"type": "json_object", "json_schema": {...}}');
    }
    if (route.kind === 'responses') {
      const prev = x.body?.previous_response_id;
      if (prev != null && !this.responses.has(prev)) {
        return sendJson(res, 400, {
          error: { message: `Previous response with id '${prev}' not found.`, type: 'invalid_request_error',
                   param: 'previous_response_id', code: 'previous_response_not_found' },
        }, rec, beh.headers);
      }
      const answer = this.buildAnswer(x);
      if (this.wantsStream(x)) {
        rec.reply.stream = true;
        return this.responsesStream(x, answer);
      }
      return this.responsesJson(x, answer);
    }

    const answer = this.buildAnswer(x);
    if (this.wantsStream(x)) {
      rec.reply.stream = true;
      if (beh.raw_chunks) return this.streamRaw(x);
      switch (route.provider) {
        case 'anthropic':
        case 'vertex_anthropic': return this.anthropicStream(x, answer);
        case 'gemini':
        case 'vertex': return this.geminiStream(x, answer);
        case 'cohere': return this.cohereStream(x, answer);
        case 'bedrock': return this.bedrockStream(x, answer);
        case 'ollama': return this.ollamaStream(x, answer);
        default: return route.kind === 'completion' ? this.openaiCompletionStream(x, answer)
                                                    : this.openaiChatStream(x, answer);
      }
    }
    switch (route.provider) {
      case 'anthropic':
      case 'vertex_anthropic': return this.anthropicJson(x, answer);
      case 'gemini':
      case 'vertex': return this.geminiJson(x, answer);
      case 'cohere': return this.cohereJson(x, answer);
      case 'bedrock': return this.bedrockJson(x, answer);
      case 'ollama': return this.ollamaJson(x, answer);
      default: return route.kind === 'completion' ? this.openaiCompletionJson(x, answer)
                                                  : this.openaiChatJson(x, answer);
    }
  }

  wantsStream({ route, beh, body }) {
    if (typeof beh.stream === 'boolean') return beh.stream;
    if (route.provider === 'gemini' || route.provider === 'vertex') {
      return route.stream ?? false;
    }
    if (route.provider === 'ollama') return body?.stream !== false;  // Ollama streams by default
    if (route.provider === 'bedrock') return route.kind === 'chat_stream';  // the path says
    return body?.stream === true;
  }

  stall({ res, rec, signal }) {
    // Never answer; end only when the client gives up, the test resets, or we close.
    return new Promise((resolve) => {
      const done = () => {
        this.stalled.delete(done);
        if (!res.destroyed) res.destroy();
        resolve();
      };
      this.stalled.add(done);
      signal.addEventListener('abort', () => {
        this.stalled.delete(done);
        resolve();
      }, { once: true });
      rec.reply.status = null;
    });
  }

  buildAnswer({ body, beh, route }) {
    let content = beh.echo ? lastUserText(body) : (beh.content ?? DEFAULT_CONTENT);
    if (Array.isArray(beh.chunks)) content = beh.chunks.join('');
    const toolCalls = normToolCalls(beh.tool_calls);
    const pieces = content === '' && toolCalls ? [] : splitPieces(content, beh.chunks);
    const model = beh.model ?? body?.model ?? route.deployment ?? 'fake-model';
    const u = beh.usage ?? {};
    const prompt = u.prompt_tokens ?? u.input_tokens ?? promptTokens(route.provider, route.kind, body);
    const completion = u.completion_tokens ?? u.output_tokens
      ?? Math.max(1, pieces.length + (toolCalls ? toolCalls.length * 5 : 0));
    const finish = beh.finish_reason ?? (toolCalls ? 'tool_calls' : 'stop');
    return {
      content,
      pieces,
      toolCalls,
      model,
      finish,
      usage: {
        prompt_tokens: prompt,
        completion_tokens: completion,
        total_tokens: prompt + completion,
        cache_read_input_tokens: u.cache_read_input_tokens ?? 0,
        cache_creation_input_tokens: u.cache_creation_input_tokens ?? 0,
        cached_tokens: u.cached_tokens ?? null,
        reasoning_tokens: u.reasoning_tokens ?? null,
      },
    };
  }

  // OpenAI's usage object; the details only when the behaviour scripted them.
  openaiUsage(a) {
    const u = {
      prompt_tokens: a.usage.prompt_tokens,
      completion_tokens: a.usage.completion_tokens,
      total_tokens: a.usage.total_tokens,
    };
    if (a.usage.cached_tokens != null) u.prompt_tokens_details = { cached_tokens: a.usage.cached_tokens };
    if (a.usage.reasoning_tokens != null) u.completion_tokens_details = { reasoning_tokens: a.usage.reasoning_tokens };
    return u;
  }

  noteReply(rec, status, answer) {
    rec.reply.status = status;
    rec.reply.content = answer.content;
    rec.reply.tool_calls = answer.toolCalls;
    rec.reply.usage = this.openaiUsage(answer);
    rec.reply.finish_reason = answer.finish;
  }

  // -------------------------------------------------------------- errors

  errorBody(provider, status, message, type) {
    if (provider === 'anthropic') {
      return { type: 'error', error: { type: type ?? ANTHROPIC_ERROR_TYPES[status] ?? 'api_error', message } };
    }
    if (provider === 'ollama') return { error: message };
    if (provider === 'vertex_anthropic') {
      return { type: 'error', error: { type: type ?? ANTHROPIC_ERROR_TYPES[status] ?? 'api_error', message } };
    }
    if (provider === 'gemini' || provider === 'vertex') {
      return { error: { code: status, message, status: type ?? GOOGLE_STATUS[status] ?? 'UNKNOWN' } };
    }
    if (provider === 'google_oauth' || provider === 'entra') {
      return { error: type ?? 'invalid_grant', error_description: message };
    }
    if (provider === 'bedrock' || provider === 'cohere') return { message };
    const [t, code] = OPENAI_ERROR_TYPES[status] ?? ['server_error', null];
    return { error: { message, type: type ?? t, param: null, code } };
  }

  sendProviderError({ res, rec, route, beh }, status, message) {
    const msg = message ?? beh.error_message ?? `fake provider error ${status}`;
    const body = this.errorBody(route?.provider ?? 'openai', status, msg, beh.error_type);
    let headers = beh.headers;
    if (route?.provider === 'bedrock') {
      const type = beh.error_type ?? BEDROCK_ERROR_TYPES[status] ?? 'InternalServerException';
      headers = { 'x-amzn-errortype': `${type}:http://internal.amazon.com/coral/com.amazon.bedrock/`, ...(headers ?? {}) };
    }
    return sendJson(res, status, body, rec, headers);
  }

  // -------------------------------------------------------------- OpenAI / Azure

  openaiChatJson({ res, rec, beh }, a) {
    const message = { role: 'assistant', content: a.toolCalls && a.content === '' ? null : a.content, refusal: null };
    if (a.toolCalls) {
      message.tool_calls = a.toolCalls.map((t) => ({
        id: t.id, type: 'function', function: { name: t.name, arguments: t.arguments },
      }));
    }
    this.noteReply(rec, 200, a);
    return sendJson(res, 200, {
      id: `chatcmpl-${randId(12)}`,
      object: 'chat.completion',
      created: nowSec(),
      model: a.model,
      system_fingerprint: 'fp_fake',
      choices: [{ index: 0, message, logprobs: null, finish_reason: a.finish }],
      usage: this.openaiUsage(a),
    }, rec, beh.headers);
  }

  openaiCompletionJson({ res, rec, beh }, a) {
    this.noteReply(rec, 200, a);
    return sendJson(res, 200, {
      id: `cmpl-${randId(12)}`,
      object: 'text_completion',
      created: nowSec(),
      model: a.model,
      choices: [{ text: a.content, index: 0, logprobs: null, finish_reason: a.finish === 'tool_calls' ? 'stop' : a.finish }],
      usage: this.openaiUsage(a),
    }, rec, beh.headers);
  }

  openaiEmbeddings(x) {
    const { res, rec, beh, body } = x;
    // OpenAI's input: a string, a list of strings, one token list (numbers) or a list of
    // token lists. A flat list of numbers is one input, not one per number.
    const isTokens = (v) => Array.isArray(v) && v.length > 0 && v.every((t) => Number.isInteger(t));
    let inputs;
    if (typeof body.input === 'string') inputs = [body.input];
    else if (isTokens(body.input)) inputs = [body.input];
    else if (Array.isArray(body.input) && body.input.length > 0 &&
             (body.input.every((v) => typeof v === 'string') || body.input.every(isTokens))) inputs = body.input;
    else {
      return this.sendProviderError(x, 400,
        "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.");
    }
    const dims = body.dimensions ?? beh.dimensions ?? 8;
    const b64 = body.encoding_format === 'base64';
    const data = inputs.map((inp, index) => {
      const vec = embeddingFor(typeof inp === 'string' ? inp : JSON.stringify(inp), dims);
      return { object: 'embedding', index, embedding: b64 ? toBase64Floats(vec) : vec };
    });
    const prompt = beh.usage?.prompt_tokens ?? promptTokens('openai', 'embedding', body);
    rec.reply.status = 200;
    rec.reply.usage = { prompt_tokens: prompt, completion_tokens: 0, total_tokens: prompt };
    rec.reply.embeddings = inputs.map((inp) => embeddingFor(typeof inp === 'string' ? inp : JSON.stringify(inp), dims));
    return sendJson(res, 200, {
      object: 'list',
      data,
      model: beh.model ?? body.model ?? 'text-embedding-fake',
      usage: { prompt_tokens: prompt, total_tokens: prompt },
    }, rec, beh.headers);
  }

  async openaiChatStream(x, a) {
    const { res, rec, beh, body } = x;
    const id = `chatcmpl-${randId(12)}`;
    const created = nowSec();
    const includeUsage = body?.stream_options?.include_usage === true;
    const base = { id, object: 'chat.completion.chunk', created, model: a.model, system_fingerprint: 'fp_fake' };
    const chunk = (delta, finish = null) => {
      const c = { ...base, choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }] };
      if (includeUsage) c.usage = null;
      return `data: ${JSON.stringify(c)}\n\n`;
    };
    const frames = [];  // [frame, countsAsPiece]
    frames.push([chunk({ role: 'assistant', content: '', refusal: null }), false]);
    for (const p of a.pieces) frames.push([chunk({ content: p }), true]);
    if (a.toolCalls) {
      a.toolCalls.forEach((t, index) => {
        frames.push([chunk({
          tool_calls: [{ index, id: t.id, type: 'function', function: { name: t.name, arguments: '' } }],
        }), true]);
        for (const part of splitArgs(t.arguments)) {
          frames.push([chunk({ tool_calls: [{ index, function: { arguments: part } }] }), true]);
        }
      });
    }
    frames.push([chunk({}, a.finish), false]);
    if (includeUsage) {
      frames.push([`data: ${JSON.stringify({
        ...base, choices: [],
        usage: this.openaiUsage(a),
      })}\n\n`, false]);
    }
    frames.push(['data: [DONE]\n\n', false]);
    this.noteReply(rec, 200, a);
    return this.runStream(x, 'text/event-stream', frames, {
      errorFrame: (msg) => `data: ${JSON.stringify(this.errorBody('openai', 500, msg))}\n\n`,
      invalidFrame: 'data: {"id": "broken", "choices": [\n\n',
    });
  }

  async openaiCompletionStream(x, a) {
    const { rec, body } = x;
    const id = `cmpl-${randId(12)}`;
    const created = nowSec();
    const includeUsage = body?.stream_options?.include_usage === true;
    const base = { id, object: 'text_completion', created, model: a.model };
    const chunk = (text, finish = null) => {
      const c = { ...base, choices: [{ text, index: 0, logprobs: null, finish_reason: finish }] };
      if (includeUsage) c.usage = null;
      return `data: ${JSON.stringify(c)}\n\n`;
    };
    const frames = a.pieces.map((p) => [chunk(p), true]);
    frames.push([chunk('', a.finish === 'tool_calls' ? 'stop' : a.finish), false]);
    if (includeUsage) {
      frames.push([`data: ${JSON.stringify({
        ...base, choices: [],
        usage: this.openaiUsage(a),
      })}\n\n`, false]);
    }
    frames.push(['data: [DONE]\n\n', false]);
    this.noteReply(rec, 200, a);
    return this.runStream(x, 'text/event-stream', frames, {
      errorFrame: (msg) => `data: ${JSON.stringify(this.errorBody('openai', 500, msg))}\n\n`,
      invalidFrame: 'data: {"id": "broken", "choices": [\n\n',
    });
  }

  // -------------------------------------------------------------- OpenAI Responses

  // The Responses usage object (input/output names, details always present, as OpenAI sends).
  responsesUsage(a) {
    return {
      input_tokens: a.usage.prompt_tokens,
      input_tokens_details: { cached_tokens: a.usage.cached_tokens ?? 0 },
      output_tokens: a.usage.completion_tokens,
      output_tokens_details: { reasoning_tokens: a.usage.reasoning_tokens ?? 0 },
      total_tokens: a.usage.total_tokens,
    };
  }

  responseObject(body, a, id, status, output, usage) {
    return {
      id, object: 'response', created_at: nowSec(), status, error: null,
      incomplete_details: a.finish === 'length' ? { reason: 'max_output_tokens' } : null,
      instructions: body.instructions ?? null, max_output_tokens: body.max_output_tokens ?? null,
      model: a.model, output, parallel_tool_calls: body.parallel_tool_calls ?? true,
      previous_response_id: body.previous_response_id ?? null,
      reasoning: { effort: null, summary: null }, store: body.store ?? true,
      temperature: body.temperature ?? 1, text: body.text ?? { format: { type: 'text' } },
      tool_choice: body.tool_choice ?? 'auto', tools: body.tools ?? [], top_p: body.top_p ?? 1,
      truncation: 'disabled', usage, user: null, metadata: body.metadata ?? {},
    };
  }

  responseOutput(a, id) {
    const out = [];
    if (a.content !== '' || !a.toolCalls) {
      out.push({ id: `msg_${id}`, type: 'message', status: 'completed', role: 'assistant',
                 content: [{ type: 'output_text', text: a.content, annotations: [] }] });
    }
    for (const [i, t] of (a.toolCalls ?? []).entries()) {
      out.push({ id: `fc_${id}_${i}`, type: 'function_call', status: 'completed', call_id: t.id, name: t.name,
                 arguments: t.arguments });
    }
    return out;
  }

  keepResponse(obj, body) {
    if (body?.store === false) return;
    this.responses.set(obj.id, obj);
    while (this.responses.size > 1000) this.responses.delete(this.responses.keys().next().value);
  }

  responsesJson({ res, rec, beh, body }, a) {
    const id = `resp_${randId(16)}`;
    const status = a.finish === 'length' ? 'incomplete' : 'completed';
    const obj = this.responseObject(body, a, id, status, this.responseOutput(a, randId(8)), this.responsesUsage(a));
    this.keepResponse(obj, body);
    this.noteReply(rec, 200, a);
    rec.reply.response_id = id;
    return sendJson(res, 200, obj, rec, beh.headers);
  }

  async responsesStream(x, a) {
    const { rec, body } = x;
    const id = `resp_${randId(16)}`;
    const item = randId(8);
    let seq = 0;
    const ev = (type, data) => `event: ${type}\ndata: ${JSON.stringify({ type, sequence_number: seq++, ...data })}\n\n`;
    const frames = [];
    frames.push([ev('response.created', { response: this.responseObject(body, a, id, 'in_progress', [], null) }), false]);
    frames.push([ev('response.in_progress', { response: this.responseObject(body, a, id, 'in_progress', [], null) }), false]);
    const output = this.responseOutput(a, item);
    output.forEach((it, index) => {
      if (it.type === 'message') {
        frames.push([ev('response.output_item.added', {
          output_index: index, item: { ...it, status: 'in_progress', content: [] } }), false]);
        frames.push([ev('response.content_part.added', {
          item_id: it.id, output_index: index, content_index: 0, part: { type: 'output_text', text: '', annotations: [] } }), false]);
        for (const p of a.pieces) {
          frames.push([ev('response.output_text.delta', { item_id: it.id, output_index: index, content_index: 0, delta: p }), true]);
        }
        frames.push([ev('response.output_text.done', { item_id: it.id, output_index: index, content_index: 0, text: a.content }), false]);
        frames.push([ev('response.content_part.done', { item_id: it.id, output_index: index, content_index: 0, part: it.content[0] }), false]);
      } else {
        frames.push([ev('response.output_item.added', { output_index: index, item: { ...it, status: 'in_progress', arguments: '' } }), true]);
        for (const part of splitArgs(it.arguments)) {
          frames.push([ev('response.function_call_arguments.delta', { item_id: it.id, output_index: index, delta: part }), false]);
        }
        frames.push([ev('response.function_call_arguments.done', { item_id: it.id, output_index: index, arguments: it.arguments }), false]);
      }
      frames.push([ev('response.output_item.done', { output_index: index, item: it }), false]);
    });
    const status = a.finish === 'length' ? 'incomplete' : 'completed';
    const final = this.responseObject(body, a, id, status, output, this.responsesUsage(a));
    frames.push([ev(status === 'completed' ? 'response.completed' : 'response.incomplete', { response: final }), false]);
    this.keepResponse(final, body);
    this.noteReply(rec, 200, a);
    rec.reply.response_id = id;
    return this.runStream(x, 'text/event-stream', frames, {
      errorFrame: (msg) => ev('error', { code: 'server_error', message: msg, param: null }),
      invalidFrame: 'event: response.created\ndata: {"type": "response.created", "response": [\n\n',
    });
  }

  responsesById({ res, rec, beh, route }) {
    const id = decodeURIComponent(route.id);
    const obj = this.responses.get(id);
    if (!obj) {
      return sendJson(res, 404, {
        error: { message: `Response with id '${id}' not found.`, type: 'invalid_request_error', param: null, code: null },
      }, rec, beh.headers);
    }
    if (route.kind === 'responses_delete') {
      this.responses.delete(id);
      return sendJson(res, 200, { id, object: 'response', deleted: true }, rec, beh.headers);
    }
    if (route.kind === 'responses_cancel') {
      return sendJson(res, 400, {
        error: { message: 'Only responses created with background=true can be cancelled.', type: 'invalid_request_error',
                 param: null, code: null },
      }, rec, beh.headers);
    }
    return sendJson(res, 200, obj, rec, beh.headers);
  }

  // -------------------------------------------------------------- Anthropic

  anthropicStopReason(a, beh) {
    if (beh.stop_reason) return beh.stop_reason;
    switch (a.finish) {
      case 'length': return 'max_tokens';
      case 'tool_calls': return 'tool_use';
      case 'stop_sequence': return 'stop_sequence';
      default: return 'end_turn';
    }
  }

  anthropicUsage(a) {
    return {
      input_tokens: a.usage.prompt_tokens,
      cache_creation_input_tokens: a.usage.cache_creation_input_tokens,
      cache_read_input_tokens: a.usage.cache_read_input_tokens,
      output_tokens: a.usage.completion_tokens,
    };
  }

  // With extended thinking on (body.thinking.type "enabled"), the answer opens with a
  // signed thinking block (`thinking` behaviour: its text).
  anthropicContent(a, x) {
    const content = [];
    if (x.body?.thinking?.type === 'enabled') {
      content.push({ type: 'thinking', thinking: x.beh.thinking ?? 'Let me think.',
                     signature: Buffer.from(`sig-${randId(12)}`).toString('base64') });
    }
    if (a.content !== '' || !a.toolCalls) content.push({ type: 'text', text: a.content });
    for (const t of a.toolCalls ?? []) {
      let input;
      try {
        input = JSON.parse(t.arguments);
      } catch {
        input = {};
      }
      content.push({ type: 'tool_use', id: t.id.startsWith('toolu_') ? t.id : `toolu_${t.id}`, name: t.name, input });
    }
    return content;
  }

  anthropicJson(x, a) {
    const { res, rec, beh } = x;
    this.noteReply(rec, 200, a);
    const content = this.anthropicContent(a, x);
    rec.reply.anthropic_tool_ids = content.filter((c) => c.type === 'tool_use').map((c) => c.id);
    return sendJson(res, 200, {
      id: `msg_${randId(12)}`,
      type: 'message',
      role: 'assistant',
      model: a.model,
      content,
      stop_reason: this.anthropicStopReason(a, beh),
      stop_sequence: null,
      usage: this.anthropicUsage(a),
    }, rec, beh.headers);
  }

  async anthropicStream(x, a) {
    const { rec, beh } = x;
    const ev = (type, data) => `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
    const usage = this.anthropicUsage(a);
    const frames = [];
    frames.push([ev('message_start', {
      message: {
        id: `msg_${randId(12)}`, type: 'message', role: 'assistant', model: a.model, content: [],
        stop_reason: null, stop_sequence: null,
        usage: { ...usage, output_tokens: 1 },
      },
    }), false]);
    const content = this.anthropicContent(a, x);
    rec.reply.anthropic_tool_ids = content.filter((c) => c.type === 'tool_use').map((c) => c.id);
    content.forEach((block, index) => {
      if (block.type === 'thinking') {
        frames.push([ev('content_block_start', { index, content_block: { type: 'thinking', thinking: '', signature: '' } }), false]);
        frames.push([ev('content_block_delta', { index, delta: { type: 'thinking_delta', thinking: block.thinking } }), false]);
        frames.push([ev('content_block_delta', { index, delta: { type: 'signature_delta', signature: block.signature } }), false]);
      } else if (block.type === 'text') {
        frames.push([ev('content_block_start', { index, content_block: { type: 'text', text: '' } }), false]);
        if (index === 0) frames.push([ev('ping', {}), false]);
        for (const p of a.pieces) {
          frames.push([ev('content_block_delta', { index, delta: { type: 'text_delta', text: p } }), true]);
        }
      } else {
        frames.push([ev('content_block_start', {
          index, content_block: { type: 'tool_use', id: block.id, name: block.name, input: {} },
        }), true]);
        if (index === 0) frames.push([ev('ping', {}), false]);
        const args = JSON.stringify(block.input);
        frames.push([ev('content_block_delta', { index, delta: { type: 'input_json_delta', partial_json: '' } }), false]);
        for (const part of splitArgs(args)) {
          frames.push([ev('content_block_delta', { index, delta: { type: 'input_json_delta', partial_json: part } }), true]);
        }
      }
      frames.push([ev('content_block_stop', { index }), false]);
    });
    frames.push([ev('message_delta', {
      delta: { stop_reason: this.anthropicStopReason(a, beh), stop_sequence: null },
      usage: { output_tokens: usage.output_tokens },
    }), false]);
    frames.push([ev('message_stop', {}), false]);
    this.noteReply(rec, 200, a);
    return this.runStream(x, 'text/event-stream', frames, {
      errorFrame: (msg) => ev('error', { error: { type: 'overloaded_error', message: msg } }),
      invalidFrame: 'event: content_block_delta\ndata: {"type": "content_block_delta", "index": 0, "delta": {\n\n',
    });
  }

  // -------------------------------------------------------------- Gemini / Vertex AI

  geminiUsage(a) {
    const u = {
      promptTokenCount: a.usage.prompt_tokens,
      candidatesTokenCount: a.usage.completion_tokens,
      totalTokenCount: a.usage.total_tokens + (a.usage.reasoning_tokens ?? 0),
    };
    if (a.usage.cached_tokens != null) u.cachedContentTokenCount = a.usage.cached_tokens;
    if (a.usage.reasoning_tokens != null) u.thoughtsTokenCount = a.usage.reasoning_tokens;
    return u;
  }

  // Gemini 3 models sign the first function call of each answer (thoughtSignature, a
  // sibling of functionCall in the part) and want that part back as it was.
  geminiCallParts(a, model) {
    return (a.toolCalls ?? []).map((t, i) => {
      const part = { functionCall: { name: t.name, args: JSON.parse(t.arguments || '{}') } };
      if (i === 0 && isGemini3(model)) {
        part.thoughtSignature = Buffer.from(`sig-${randId(12)}`).toString('base64');
        this.thoughtSignatures.add(part.thoughtSignature);
      }
      return part;
    });
  }

  // Gemini 3's rule: in the current turn (the contents after the last user text), the
  // first functionCall part of every model step carries a signature this model issued.
  // Returns the name of the first call that breaks it, or null.
  unsignedFunctionCall(body) {
    const contents = Array.isArray(body?.contents) ? body.contents : [];
    let start = 0;
    contents.forEach((c, i) => {
      if (c?.role === 'user' && (c.parts ?? []).some((p) => typeof p?.text === 'string')) start = i + 1;
    });
    for (const c of contents.slice(start)) {
      if (c?.role !== 'model') continue;
      const first = (c.parts ?? []).find((p) => p?.functionCall);
      if (first && !this.thoughtSignatures.has(first.thoughtSignature)) return first.functionCall.name;
    }
    return null;
  }

  // Google Search grounding, switched on by the request as Gemini's is: a `googleSearch`
  // tool grounds the answer (groundingMetadata with the query, two web sources and the
  // supports that split the text between them, citationMetadata), a `urlContext` tool adds
  // urlContextMetadata; either adds safetyRatings. null when the request has neither.
  // Segment offsets are UTF-8 byte offsets, as Google counts them.
  geminiGrounding(body, content) {
    const tools = Array.isArray(body?.tools) ? body.tools : [];
    const search = tools.some((t) => t?.googleSearch != null || t?.google_search != null);
    const urlContext = tools.some((t) => t?.urlContext != null || t?.url_context != null);
    if (!search && !urlContext) return null;
    const m = { safetyRatings: [{ category: 'HARM_CATEGORY_DANGEROUS_CONTENT', probability: 'NEGLIGIBLE' }] };
    if (search) {
      const words = content.split(' ');
      const head = words.slice(0, Math.ceil(words.length / 2)).join(' ');
      const headEnd = Buffer.byteLength(head);
      const end = Buffer.byteLength(content);
      const query = geminiText(body.contents?.findLast?.((c) => c?.role === 'user') ?? {}) || 'query';
      m.groundingMetadata = {
        webSearchQueries: [query],
        searchEntryPoint: { renderedContent: '<div class="fake-search-chips"></div>' },
        groundingChunks: [{ web: { uri: 'https://fake.example/grounding/1', title: 'source-one.example' } },
                          { web: { uri: 'https://fake.example/grounding/2', title: 'source-two.example' } }],
        groundingSupports: [
          { segment: { startIndex: 0, endIndex: headEnd, text: head }, groundingChunkIndices: [0] },
          ...(end > headEnd + 1 ? [{ segment: { startIndex: headEnd + 1, endIndex: end, text: content.slice(head.length + 1) },
                                     groundingChunkIndices: [1, 0] }] : []),
        ],
      };
      m.citationMetadata = { citations: [{ startIndex: 0, endIndex: headEnd, uri: 'https://fake.example/grounding/1' }] };
    }
    if (urlContext) {
      m.urlContextMetadata = { urlMetadata: [{ retrievedUrl: 'https://fake.example/page',
        urlRetrievalStatus: 'URL_RETRIEVAL_STATUS_SUCCESS' }] };
    }
    return m;
  }

  geminiJson(x, a) {
    const { res, rec, beh } = x;
    this.noteReply(rec, 200, a);
    const usageMetadata = this.geminiUsage(a);
    if (beh.block_reason) {
      return sendJson(res, 200, { promptFeedback: { blockReason: beh.block_reason, safetyRatings: [] }, usageMetadata,
        modelVersion: a.model }, rec, beh.headers);
    }
    if (beh.empty_candidates) {
      return sendJson(res, 200, { candidates: [], usageMetadata, modelVersion: a.model }, rec, beh.headers);
    }
    const parts = [];
    if (a.content !== '') parts.push({ text: a.content });
    parts.push(...this.geminiCallParts(a, x.route.deployment));
    // generationConfig.candidateCount N > 1: candidates 1..N-1 answer "[i] <content>".
    const extra = [];
    for (let i = 1; i < geminiCandidates(x.body); i++) {
      extra.push({ content: { role: 'model', parts: [{ text: `[${i}] ${a.content}` }] }, finishReason: 'STOP', index: i });
    }
    return sendJson(res, 200, {
      candidates: [{ content: { role: 'model', parts }, finishReason: GEMINI_FINISH[a.finish] ?? 'STOP', index: 0,
                     ...(this.geminiGrounding(x.body, a.content) ?? {}) },
                   ...extra],
      usageMetadata,
      modelVersion: a.model,
      responseId: `resp_${randId(8)}`,
    }, rec, beh.headers);
  }

  async geminiStream(x, a) {
    const { rec, beh } = x;
    const ev = (obj) => `data: ${JSON.stringify(obj)}\r\n\r\n`;
    const responseId = `resp_${randId(8)}`;
    const usageMetadata = this.geminiUsage(a);
    const frames = [];
    const cand = (parts, extra) => ({ candidates: [{ content: { role: 'model', parts }, index: 0, ...(extra ?? {}) }],
      modelVersion: a.model, responseId });
    if (beh.block_reason) {
      frames.push([ev({ promptFeedback: { blockReason: beh.block_reason }, usageMetadata, modelVersion: a.model }), false]);
    } else if (beh.empty_candidates) {
      frames.push([ev({ candidates: [], usageMetadata, modelVersion: a.model }), false]);
    } else if (geminiCandidates(x.body) > 1) {
      // candidateCount N > 1: every frame carries each candidate's piece (candidate i > 0
      // answers "[i] <content>"); candidate 0 finishes first, the others in a later frame
      // with the usage.
      const n = geminiCandidates(x.body);
      const all = (fn) => ({ candidates: Array.from({ length: n }, (_, i) => fn(i)).filter(Boolean),
        modelVersion: a.model, responseId });
      a.pieces.forEach((p, k) => frames.push([ev(all((i) => ({ content: { role: 'model',
        parts: [{ text: (k === 0 && i > 0 ? `[${i}] ` : '') + p }] }, index: i }))), true]));
      frames.push([ev(all((i) => (i === 0 ? { content: { role: 'model', parts: [{ text: '' }] }, index: 0,
        finishReason: 'STOP' } : null))), false]);
      frames.push([ev({ ...all((i) => (i === 0 ? null : { content: { role: 'model', parts: [{ text: '' }] }, index: i,
        finishReason: 'STOP' })), usageMetadata }), false]);
    } else {
      for (const p of a.pieces) frames.push([ev(cand([{ text: p }])), true]);
      for (const part of this.geminiCallParts(a, x.route.deployment)) frames.push([ev(cand([part])), true]);
      // The grounding metadata comes with the finishing event, as Gemini streams it.
      frames.push([ev({ ...cand([{ text: '' }], { finishReason: GEMINI_FINISH[a.finish] ?? 'STOP',
        ...(this.geminiGrounding(x.body, a.content) ?? {}) }), usageMetadata }), false]);
    }
    this.noteReply(rec, 200, a);
    return this.runStream(x, 'text/event-stream', frames, {
      errorFrame: (msg) => ev({ error: { code: 500, message: msg, status: 'INTERNAL' } }),
      invalidFrame: 'data: {"candidates": [ {"content": \r\n\r\n',
    });
  }

  geminiEmbed({ res, rec, beh, body }, batch) {
    const dims = beh.dimensions ?? 8;
    const texts = batch ? (body.requests ?? []).map((r) => geminiText(r?.content))
                        : [geminiText(body.content)];
    rec.reply.status = 200;
    const out = texts.map((t) => ({ values: embeddingFor(t, dims) }));
    return sendJson(res, 200, batch ? { embeddings: out } : { embedding: out[0] }, rec, beh.headers);
  }

  // -------------------------------------------------------------- OAuth2 token endpoints

  tokenEndpoint(x) {
    const { res, rec, beh, route, req } = x;
    const form = new URLSearchParams(rec.raw_body ?? '');
    const refuse = (why, error = 'invalid_grant') => {
      rec.reply.refused = why;
      return sendJson(res, 400, { error, error_description: why }, rec);
    };
    if (!String(req.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded')) {
      return refuse('the body must be application/x-www-form-urlencoded', 'invalid_request');
    }
    const now = nowSec();
    let subject;
    if (route.provider === 'google_oauth') {
      const g = this.oauth.google;
      if (!g) return refuse('no service account is configured (POST /__control/oauth)');
      if (form.get('grant_type') !== 'urn:ietf:params:oauth:grant-type:jwt-bearer') {
        return refuse('grant_type must be urn:ietf:params:oauth:grant-type:jwt-bearer', 'unsupported_grant_type');
      }
      const parts = String(form.get('assertion') ?? '').split('.');
      if (parts.length !== 3) return refuse('the assertion is not a JWT');
      let header;
      let claims;
      try {
        header = JSON.parse(b64urlDecode(parts[0]).toString('utf8'));
        claims = JSON.parse(b64urlDecode(parts[1]).toString('utf8'));
      } catch {
        return refuse('the JWT header or claims are not JSON');
      }
      if (header.alg !== 'RS256' || header.typ !== 'JWT') return refuse('the JWT must be alg RS256, typ JWT');
      const ok = cryptoVerify('RSA-SHA256', Buffer.from(`${parts[0]}.${parts[1]}`), g.public_key_pem,
        b64urlDecode(parts[2]));
      if (!ok) return refuse('Invalid JWT Signature.');
      const aud = `http://${req.headers.host}/token`;
      if (claims.iss !== g.client_email) return refuse(`iss must be ${g.client_email}`);
      if (claims.aud !== aud) return refuse(`aud must be ${aud}`);
      if (!String(claims.scope ?? '').split(' ').includes('https://www.googleapis.com/auth/cloud-platform')) {
        return refuse('scope must include https://www.googleapis.com/auth/cloud-platform', 'invalid_scope');
      }
      if (!Number.isInteger(claims.iat) || !Number.isInteger(claims.exp) || claims.iat > now + 300 ||
          claims.exp <= now || claims.exp - claims.iat > 3600) {
        return refuse('Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe.');
      }
      subject = claims.iss;
    } else {
      const e = this.oauth.entra;
      if (!e) return refuse('no Entra application is configured (POST /__control/oauth)');
      if (route.tenant !== e.tenant) return refuse(`tenant '${route.tenant}' not found`, 'invalid_request');
      if (form.get('grant_type') !== 'client_credentials') return refuse('grant_type must be client_credentials', 'unsupported_grant_type');
      if (form.get('client_id') !== e.client_id || form.get('client_secret') !== e.client_secret) {
        return refuse('AADSTS7000215: Invalid client secret provided.', 'invalid_client');
      }
      if (form.get('scope') !== 'https://cognitiveservices.azure.com/.default') {
        return refuse('scope must be https://cognitiveservices.azure.com/.default', 'invalid_scope');
      }
      subject = e.client_id;
    }
    const token = `fake-token-${randId(12)}`;
    this.issuedTokens.set(token, subject);
    rec.reply.status = 200;
    rec.reply.token = token;
    return sendJson(res, 200, { access_token: token, expires_in: beh.expires_in ?? 3599, token_type: 'Bearer' },
      rec, beh.headers);
  }

  // -------------------------------------------------------------- Ollama

  ollamaTiming(a) {
    return {
      total_duration: 123456789,
      load_duration: 1234567,
      prompt_eval_count: a.usage.prompt_tokens,
      prompt_eval_duration: 2345678,
      eval_count: a.usage.completion_tokens,
      eval_duration: 3456789,
    };
  }

  ollamaDoneReason(a) {
    return a.finish === 'length' ? 'length' : 'stop';
  }

  ollamaToolCalls(a) {
    return (a.toolCalls ?? []).map((t) => {
      let args;
      try {
        args = JSON.parse(t.arguments);
      } catch {
        args = {};
      }
      return { function: { name: t.name, arguments: args } };
    });
  }

  ollamaJson({ res, rec, beh, route }, a) {
    this.noteReply(rec, 200, a);
    const created_at = new Date().toISOString();
    const done = { done: true, done_reason: this.ollamaDoneReason(a), ...this.ollamaTiming(a) };
    if (route.kind === 'generate') {
      return sendJson(res, 200, { model: a.model, created_at, response: a.content, ...done, context: [1, 2, 3] },
                      rec, beh.headers);
    }
    const message = { role: 'assistant', content: a.content };
    if (a.toolCalls) message.tool_calls = this.ollamaToolCalls(a);
    return sendJson(res, 200, { model: a.model, created_at, message, ...done }, rec, beh.headers);
  }

  async ollamaStream(x, a) {
    const { rec, route } = x;
    const line = (o) => `${JSON.stringify({ model: a.model, created_at: new Date().toISOString(), ...o })}\n`;
    const gen = route.kind === 'generate';
    const frames = a.pieces.map((p) => [
      line(gen ? { response: p, done: false } : { message: { role: 'assistant', content: p }, done: false }), true]);
    if (a.toolCalls && !gen) {
      frames.push([line({ message: { role: 'assistant', content: '', tool_calls: this.ollamaToolCalls(a) }, done: false }), true]);
    }
    const done = { done: true, done_reason: this.ollamaDoneReason(a), ...this.ollamaTiming(a) };
    frames.push([line(gen ? { response: '', ...done, context: [1, 2, 3] }
                          : { message: { role: 'assistant', content: '' }, ...done }), false]);
    this.noteReply(rec, 200, a);
    return this.runStream(x, 'application/x-ndjson', frames, {
      errorFrame: (msg) => `${JSON.stringify({ error: msg })}\n`,
      invalidFrame: '{"model": "broken", "message": {\n',
    });
  }

  ollamaEmbed({ res, rec, beh, body, route }) {
    const dims = beh.dimensions ?? 8;
    const prompt = beh.usage?.prompt_tokens ?? promptTokens('ollama', 'embed', body);
    rec.reply.status = 200;
    rec.reply.usage = { prompt_tokens: prompt, completion_tokens: 0, total_tokens: prompt };
    if (route.kind === 'embeddings_legacy') {
      const vec = embeddingFor(String(body.prompt ?? ''), dims);
      rec.reply.embeddings = [vec];
      return sendJson(res, 200, { embedding: vec }, rec, beh.headers);
    }
    const inputs = Array.isArray(body.input) ? body.input : [body.input ?? ''];
    const embeddings = inputs.map((s) => embeddingFor(String(s), dims));
    rec.reply.embeddings = embeddings;
    return sendJson(res, 200, {
      model: beh.model ?? body.model ?? 'fake-embed',
      embeddings,
      total_duration: 1234567,
      load_duration: 12345,
      prompt_eval_count: prompt,
    }, rec, beh.headers);
  }

  // -------------------------------------------------------------- Bedrock

  bedrockStopReason(a, beh) {
    if (beh.stop_reason) return beh.stop_reason;
    switch (a.finish) {
      case 'length': return 'max_tokens';
      case 'tool_calls': return 'tool_use';
      case 'content_filter': return 'content_filtered';
      default: return 'end_turn';
    }
  }

  bedrockUsage(a) {
    const u = {
      inputTokens: a.usage.prompt_tokens,
      outputTokens: a.usage.completion_tokens,
      totalTokens: a.usage.prompt_tokens + a.usage.completion_tokens,
    };
    if (a.usage.cache_read_input_tokens) u.cacheReadInputTokens = a.usage.cache_read_input_tokens;
    if (a.usage.cache_creation_input_tokens) u.cacheWriteInputTokens = a.usage.cache_creation_input_tokens;
    return u;
  }

  bedrockContent(a) {
    const content = [];
    if (a.content !== '' || !a.toolCalls) content.push({ text: a.content });
    for (const t of a.toolCalls ?? []) {
      let input;
      try {
        input = JSON.parse(t.arguments);
      } catch {
        input = {};
      }
      content.push({ toolUse: { toolUseId: t.id.startsWith('tooluse_') ? t.id : `tooluse_${t.id}`, name: t.name, input } });
    }
    return content;
  }

  bedrockJson({ res, rec, beh }, a) {
    this.noteReply(rec, 200, a);
    const content = this.bedrockContent(a);
    rec.reply.bedrock_tool_ids = content.filter((c) => c.toolUse).map((c) => c.toolUse.toolUseId);
    return sendJson(res, 200, {
      output: { message: { role: 'assistant', content } },
      stopReason: this.bedrockStopReason(a, beh),
      usage: this.bedrockUsage(a),
      metrics: { latencyMs: 12 },
    }, rec, beh.headers);
  }

  async bedrockStream(x, a) {
    const { rec, beh } = x;
    const ev = (type, data) => encodeEventMessage(
      { ':event-type': type, ':content-type': 'application/json', ':message-type': 'event' },
      JSON.stringify({ ...data, p: 'abcdefghij'.slice(0, 1 + (randomBytes(1)[0] % 10)) }));
    const frames = [];
    frames.push([ev('messageStart', { role: 'assistant' }), false]);
    const content = this.bedrockContent(a);
    rec.reply.bedrock_tool_ids = content.filter((c) => c.toolUse).map((c) => c.toolUse.toolUseId);
    content.forEach((block, index) => {
      if (block.text !== undefined) {
        for (const p of a.pieces) {
          frames.push([ev('contentBlockDelta', { contentBlockIndex: index, delta: { text: p } }), true]);
        }
      } else {
        const t = block.toolUse;
        frames.push([ev('contentBlockStart', {
          contentBlockIndex: index, start: { toolUse: { toolUseId: t.toolUseId, name: t.name } },
        }), true]);
        for (const part of splitArgs(JSON.stringify(t.input))) {
          frames.push([ev('contentBlockDelta', { contentBlockIndex: index, delta: { toolUse: { input: part } } }), true]);
        }
      }
      frames.push([ev('contentBlockStop', { contentBlockIndex: index }), false]);
    });
    frames.push([ev('messageStop', { stopReason: this.bedrockStopReason(a, beh) }), false]);
    frames.push([ev('metadata', { usage: this.bedrockUsage(a), metrics: { latencyMs: 12 } }), false]);
    this.noteReply(rec, 200, a);

    const fault = beh.eventstream_fault;
    if (fault && typeof fault === 'object') {
      let pieces = 0;
      let at = frames.length - 1;
      for (let i = 0; i < frames.length; ++i) {
        if (pieces >= (fault.after_chunks ?? 0)) {
          at = i;
          break;
        }
        if (frames[i][1]) pieces += 1;
      }
      const f = Buffer.from(frames[at][0]);
      if (fault.kind === 'message_crc') {
        f[f.length - 1] ^= 0xff;
      } else if (fault.kind === 'prelude_crc') {
        f[8] ^= 0xff;
      } else if (fault.kind === 'not_json') {
        frames[at][0] = encodeEventMessage(
          { ':event-type': 'contentBlockDelta', ':content-type': 'application/json', ':message-type': 'event' },
          '{"contentBlockIndex": 0, "delta": {');
      }
      if (fault.kind !== 'not_json') {
        frames[at][0] = fault.kind === 'truncate' ? f.subarray(0, Math.floor(f.length / 2)) : f;
      }
      frames.length = at + 1;
      rec.reply.fault = { kind: fault.kind, frame: at };
    }
    return this.runStream(x, 'application/vnd.amazon.eventstream', frames, {
      errorFrame: (msg) => encodeEventMessage(
        { ':exception-type': beh.error_type ?? 'modelStreamErrorException', ':content-type': 'application/json',
          ':message-type': 'exception' },
        JSON.stringify({ message: msg })),
      invalidFrame: encodeEventMessage(
        { ':event-type': 'messageStart', ':content-type': 'application/json', ':message-type': 'event' }, '{"role": '),
    });
  }

  bedrockInvoke({ res, rec, beh, body, route }) {
    const id = route.deployment;
    const dims = body.dimensions ?? beh.dimensions ?? 8;
    if (id.includes('titan-embed')) {
      if (typeof body.inputText !== 'string') {
        return this.sendProviderError({ res, rec, route, beh }, 400, 'Malformed input request: required key [inputText] not found');
      }
      const vec = embeddingFor(body.inputText, dims);
      const n = beh.usage?.prompt_tokens ?? Math.max(1, countWords(body.inputText));
      rec.reply.status = 200;
      rec.reply.usage = { prompt_tokens: n, completion_tokens: 0, total_tokens: n };
      rec.reply.embeddings = [vec];
      return sendJson(res, 200, { embedding: vec, inputTextTokenCount: n }, rec, beh.headers);
    }
    if (id.includes('cohere.embed')) {
      if (!Array.isArray(body.texts)) {
        return this.sendProviderError({ res, rec, route, beh }, 400, 'Malformed input request: required key [texts] not found');
      }
      const embeddings = body.texts.map((t) => embeddingFor(String(t), dims));
      rec.reply.status = 200;
      rec.reply.embeddings = embeddings;
      return sendJson(res, 200, { id: randId(8), texts: body.texts, embeddings, response_type: 'embeddings_floats' },
                      rec, beh.headers);
    }
    return this.sendProviderError({ res, rec, route, beh }, 400, `The fake serves InvokeModel for embedding models only, not ${id}`);
  }

  // -------------------------------------------------------------- Cohere (v2 chat)

  cohereFinish(a, beh) {
    if (beh.stop_reason) return beh.stop_reason;
    switch (a.finish) {
      case 'length': return 'MAX_TOKENS';
      case 'tool_calls': return 'TOOL_CALL';
      case 'stop_sequence': return 'STOP_SEQUENCE';
      default: return 'COMPLETE';
    }
  }

  cohereUsage(a) {
    const t = { input_tokens: a.usage.prompt_tokens, output_tokens: a.usage.completion_tokens };
    return { billed_units: { ...t }, tokens: { ...t } };
  }

  cohereToolCalls(a) {
    return (a.toolCalls ?? []).map((t) => ({ id: t.id, type: 'function', function: { name: t.name, arguments: t.arguments } }));
  }

  cohereJson({ res, rec, beh }, a) {
    this.noteReply(rec, 200, a);
    const message = { role: 'assistant' };
    if (a.content !== '') message.content = [{ type: 'text', text: a.content }];
    if (a.toolCalls) {
      message.tool_plan = 'I will call a tool.';
      message.tool_calls = this.cohereToolCalls(a);
    }
    return sendJson(res, 200, {
      id: randId(16), finish_reason: this.cohereFinish(a, beh), message, usage: this.cohereUsage(a),
    }, rec, beh.headers);
  }

  async cohereStream(x, a) {
    const { rec, beh } = x;
    const ev = (type, data) => `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
    const frames = [];
    frames.push([ev('message-start', {
      id: randId(16), delta: { message: { role: 'assistant', content: [], tool_plan: '', tool_calls: [], citations: [] } },
    }), false]);
    if (a.pieces.length > 0) {
      frames.push([ev('content-start', { index: 0, delta: { message: { content: { type: 'text', text: '' } } } }), false]);
      for (const p of a.pieces) {
        frames.push([ev('content-delta', { index: 0, delta: { message: { content: { text: p } } } }), true]);
      }
      frames.push([ev('content-end', { index: 0 }), false]);
    }
    this.cohereToolCalls(a).forEach((t, index) => {
      frames.push([ev('tool-call-start', {
        index, delta: { message: { tool_calls: { ...t, function: { name: t.function.name, arguments: '' } } } },
      }), true]);
      for (const part of splitArgs(t.function.arguments)) {
        frames.push([ev('tool-call-delta', { index, delta: { message: { tool_calls: { function: { arguments: part } } } } }), true]);
      }
      frames.push([ev('tool-call-end', { index }), false]);
    });
    frames.push([ev('message-end', { delta: { finish_reason: this.cohereFinish(a, beh), usage: this.cohereUsage(a) } }), false]);
    this.noteReply(rec, 200, a);
    return this.runStream(x, 'text/event-stream', frames, {
      errorFrame: (msg) => ev('message-end', { delta: { finish_reason: 'ERROR', error: msg } }),
      invalidFrame: 'event: content-delta\ndata: {"type": "content-delta", "delta": {\n\n',
    });
  }

  // -------------------------------------------------------------- streaming engine

  async streamRaw(x) {
    const { route, beh } = x;
    const type = beh.content_type ?? (route.provider === 'ollama' ? 'application/x-ndjson' : 'text/event-stream');
    const frames = beh.raw_chunks.map((c) => [String(c), true]);
    return this.runStream(x, type, frames, { errorFrame: () => '', invalidFrame: '' });
  }

  // frames: [[text, countsAsPiece], ...]. Applies chunk_delay_ms, cut/stall/error_after_chunks
  // (counted in content pieces) and invalid_json.
  async runStream({ res, rec, beh, signal }, contentType, frames, { errorFrame, invalidFrame }) {
    const headers = {
      'content-type': contentType,
      'cache-control': 'no-cache',
      'x-request-id': `req_${randId(8)}`,
      ...(beh.headers ?? {}),
    };
    if (beh.close) headers.connection = 'close';
    res.writeHead(beh.status ?? 200, headers);
    res.flushHeaders();
    rec.reply.status = beh.status ?? 200;
    if (beh.invalid_json) {
      res.write(invalidFrame);
    }
    let pieces = 0;
    let first = true;
    const limit = (v) => (typeof v === 'number' && v >= 0 ? v : null);
    const cutAt = limit(beh.cut_after_chunks);
    const stallAt = limit(beh.stall_after_chunks);
    const errorAt = limit(beh.error_after_chunks);
    for (const [frame, isPiece] of frames) {
      if (signal.aborted) return;
      // Limits count content pieces and apply to the next frame of any kind, so N equal to
      // the number of pieces still withholds the finish/usage/terminator frames.
      if (cutAt !== null && pieces >= cutAt) {
        rec.cut = true;
        res.socket?.destroy();
        res.destroy();
        return;
      }
      if (stallAt !== null && pieces >= stallAt) {
        return this.stall({ res, rec, signal });
      }
      if (errorAt !== null && pieces >= errorAt) {
        res.write(errorFrame(beh.error_message ?? 'fake provider: upstream failed mid-stream'));
        res.end();
        return;
      }
      if (isPiece) {
        if (!first && beh.chunk_delay_ms) {
          await sleep(beh.chunk_delay_ms, signal);
          if (signal.aborted) return;
        }
        first = false;
        pieces += 1;
        rec.reply.chunks_sent = pieces;
      }
      // Wait until each frame is handed to the kernel: pacing is then real, and a cut that
      // follows never discards frames still queued in user space.
      await writeFlushed(res, frame, signal);
    }
    res.end();
  }

  // -------------------------------------------------------------- control API

  async control(req, res, url, raw) {
    const path = url.pathname.replace(/\/+$/, '');
    let body = null;
    if (raw.length) {
      try {
        body = JSON.parse(raw.toString('utf8'));
      } catch (e) {
        return sendJson(res, 400, { error: `invalid JSON: ${e.message}` });
      }
    }
    const m = req.method;
    if (path === '/__control/health' && m === 'GET') return sendJson(res, 200, { ok: true });
    if (path === '/__control/script') {
      if (m === 'POST' || m === 'PUT') {
        if (m === 'PUT') this.queue = [];
        this.script(body ?? []);
        return sendJson(res, 200, { queued: this.queue.length });
      }
      if (m === 'DELETE') {
        this.queue = [];
        return sendJson(res, 200, { queued: 0 });
      }
      if (m === 'GET') return sendJson(res, 200, this.queue);
    }
    if (path === '/__control/defaults') {
      if (m === 'POST' || m === 'PUT') {
        if (m === 'PUT') this.defaults = { ...this.initialDefaults };
        this.setDefaults(body ?? {});
      }
      return sendJson(res, 200, this.defaults);
    }
    if (path === '/__control/requests') {
      if (m === 'DELETE') {
        this.clearRequests();
        return sendJson(res, 200, { cleared: true });
      }
      if (m === 'GET') {
        const min = Number(url.searchParams.get('min') ?? 0);
        const timeoutMs = Math.min(Number(url.searchParams.get('timeout_ms') ?? 5000), 60_000);
        const filter = { path: url.searchParams.get('path') ?? undefined };
        if (min > 0) {
          try {
            await this.waitFor(() => this.requests(filter).length >= min, { timeoutMs });
          } catch {
            return sendJson(res, 408, { error: `fewer than ${min} requests within ${timeoutMs} ms`,
                                        requests: this.requests(filter) });
          }
        }
        return sendJson(res, 200, this.requests(filter));
      }
    }
    if (path === '/__control/oauth' && m === 'POST') {
      this.oauth = { ...this.oauth, ...(body ?? {}) };
      return sendJson(res, 200, { ok: true });
    }
    if (path === '/__control/reset' && m === 'POST') {
      this.reset();
      return sendJson(res, 200, { reset: true });
    }
    return sendJson(res, 404, { error: `no control route ${m} ${path}` });
  }
}

// ------------------------------------------------------------------ AWS

// CRC-32 (IEEE), for the event-stream framing.
const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; ++i) {
    let c = i;
    for (let k = 0; k < 8; ++k) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

export function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

// One event-stream message with string headers (type 7).
export function encodeEventMessage(headers, payload) {
  const hs = [];
  for (const [k, v] of Object.entries(headers)) {
    const name = Buffer.from(k);
    const value = Buffer.from(v);
    const h = Buffer.alloc(1 + name.length + 3 + value.length);
    h[0] = name.length;
    name.copy(h, 1);
    h[1 + name.length] = 7;
    h.writeUInt16BE(value.length, 2 + name.length);
    value.copy(h, 4 + name.length);
    hs.push(h);
  }
  const hb = Buffer.concat(hs);
  const pb = Buffer.from(payload);
  const total = 16 + hb.length + pb.length;
  const out = Buffer.alloc(total);
  out.writeUInt32BE(total, 0);
  out.writeUInt32BE(hb.length, 4);
  out.writeUInt32BE(crc32(out.subarray(0, 8)), 8);
  hb.copy(out, 12);
  pb.copy(out, 12 + hb.length);
  out.writeUInt32BE(crc32(out.subarray(0, total - 4)), total - 4);
  return out;
}

// RFC 3986 encoding as SigV4 defines it (unreserved kept, the rest %XX upper-case).
function awsEncode(s) {
  let out = '';
  for (const b of Buffer.from(s, 'utf8')) {
    const c = String.fromCharCode(b);
    out += /[A-Za-z0-9\-._~]/.test(c) ? c : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

function safeDecode(s) {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

// Recomputes the SigV4 signature of a request as received: the canonical URI encodes each
// segment of the path as it arrived (so an id sent as %3A is signed as %253A, as AWS does
// for every service but S3). {ok, type, message, canonical_request, signed_headers, ...}.
function verifySigV4(req, raw, keys) {
  const auth = req.headers.authorization ?? '';
  const m = auth.match(/^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, ?SignedHeaders=([^,]+), ?Signature=([0-9a-f]{64})$/);
  if (!m) {
    return { ok: false, type: 'MissingAuthenticationTokenException', message: 'Missing Authentication Token' };
  }
  const [, akid, date, region, service, signedHeaders, signature] = m;
  const secret = keys[akid];
  if (secret == null) {
    return { ok: false, type: 'UnrecognizedClientException', message: 'The security token included in the request is invalid.', access_key: akid };
  }
  const amzDate = req.headers['x-amz-date'] ?? '';
  const names = signedHeaders.split(';');
  if (!names.includes('host') || !names.includes('x-amz-date') || !amzDate.startsWith(date) ||
      (req.headers['x-amz-security-token'] != null && !names.includes('x-amz-security-token'))) {
    return { ok: false, type: 'InvalidSignatureException', message: 'The request must sign host, x-amz-date and x-amz-security-token.', access_key: akid };
  }
  const url = req.url;
  const q = url.indexOf('?');
  const rawPath = q < 0 ? url : url.slice(0, q);
  const canonicalUri = rawPath.split('/').map(awsEncode).join('/') || '/';
  const query = q < 0 ? '' : url.slice(q + 1);
  const params = query.split('&').filter((p) => p !== '').map((p) => {
    const eq = p.indexOf('=');
    const k = eq < 0 ? p : p.slice(0, eq);
    const v = eq < 0 ? '' : p.slice(eq + 1);
    return [awsEncode(safeDecode(k)), awsEncode(safeDecode(v))];
  }).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
  const canonicalQuery = params.map(([k, v]) => `${k}=${v}`).join('&');
  const canonicalHeaders = names.map((n) => `${n}:${String(req.headers[n] ?? '').trim().replace(/\s+/g, ' ')}\n`).join('');
  const payloadHash = createHash('sha256').update(raw).digest('hex');
  const canonicalRequest = [req.method, canonicalUri, canonicalQuery, canonicalHeaders, signedHeaders, payloadHash].join('\n');
  const scope = `${date}/${region}/${service}/aws4_request`;
  const stringToSign = ['AWS4-HMAC-SHA256', amzDate, scope, createHash('sha256').update(canonicalRequest).digest('hex')].join('\n');
  const hmac = (key, data) => createHmac('sha256', key).update(data).digest();
  const kSigning = hmac(hmac(hmac(hmac(`AWS4${secret}`, date), region), service), 'aws4_request');
  const expected = createHmac('sha256', kSigning).update(stringToSign).digest('hex');
  const base = { access_key: akid, region, service, signed_headers: signedHeaders, canonical_request: canonicalRequest,
                 session_token: req.headers['x-amz-security-token'] ?? null };
  if (expected !== signature) {
    return { ...base, ok: false, type: 'InvalidSignatureException',
             message: 'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.' };
  }
  return { ...base, ok: true };
}

// ------------------------------------------------------------------ I/O helpers

function readBody(req) {
  return new Promise((resolve) => {
    const parts = [];
    req.on('data', (d) => parts.push(d));
    req.on('end', () => resolve(Buffer.concat(parts)));
    req.on('error', () => resolve(Buffer.concat(parts)));
    req.on('aborted', () => resolve(Buffer.concat(parts)));
  });
}

function writeFlushed(res, data, signal) {
  return new Promise((resolve) => {
    let settled = false;
    const done = () => {
      if (settled) return;
      settled = true;
      res.off('close', done);
      signal.removeEventListener('abort', done);
      resolve();
    };
    res.on('close', done);
    signal.addEventListener('abort', done, { once: true });
    if (res.destroyed) return done();
    res.write(data, done);
  });
}

function sendJson(res, status, obj, rec, headers) {
  const text = JSON.stringify(obj);
  if (rec && rec.reply && rec.reply.status == null) rec.reply.status = status;
  if (res.destroyed) return;
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'x-request-id': `req_${randId(8)}`,
    ...(headers ?? {}),
  });
  res.end(text);
}

function sendRaw(res, status, contentType, text, headers, rec) {
  if (rec && rec.reply) rec.reply.status = status;
  if (res.destroyed) return;
  res.writeHead(status, {
    'content-type': contentType,
    'content-length': Buffer.byteLength(text),
    ...(headers ?? {}),
  });
  res.end(text);
}

// ------------------------------------------------------------------ public API

export async function startFakeProvider(opts = {}) {
  const fp = new FakeProvider(opts);
  await fp.listen();
  return {
    get url() { return fp.url; },
    get port() { return fp.port; },
    host: fp.host,
    server: fp.server,
    close: () => fp.close(),
    script: (list) => fp.script(list),
    setDefaults: (d) => fp.setDefaults(d),
    requests: (filter) => fp.requests(filter),
    clearRequests: () => fp.clearRequests(),
    waitFor: (pred, o) => fp.waitFor(pred, o),
    setOAuth: (o) => { fp.oauth = { ...fp.oauth, ...o }; },
    waitForRequests: (n, o) => fp.waitForRequests(n, o),
    reset: () => fp.reset(),
  };
}

function cliArgs(argv) {
  const o = { port: 0, host: '127.0.0.1', quiet: true };
  for (let i = 0; i < argv.length; ++i) {
    const a = argv[i];
    const [k, inline] = a.includes('=') ? a.split(/=(.*)/s, 2) : [a, undefined];
    const val = () => inline ?? argv[++i];
    if (k === '--port' || k === '-p') o.port = Number(val());
    else if (k === '--host') o.host = val();
    else if (k === '--content') o.defaults = { ...(o.defaults ?? {}), content: val() };
    else if (k === '--verbose') o.quiet = false;
    else if (k === '--help' || k === '-h') {
      process.stdout.write('usage: node server.mjs [--port N] [--host 127.0.0.1] [--content TEXT] [--verbose]\n');
      process.exit(0);
    } else {
      process.stderr.write(`fake provider: unknown option ${a}\n`);
      process.exit(2);
    }
  }
  if (!Number.isInteger(o.port) || o.port < 0 || o.port > 65535) {
    process.stderr.write('fake provider: invalid --port\n');
    process.exit(2);
  }
  return o;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const fp = new FakeProvider(cliArgs(process.argv.slice(2)));
  await fp.listen();
  process.stdout.write(`${JSON.stringify({ port: fp.port })}\n`);
  const stop = () => fp.close().then(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
