// Small strict fakes of the services the gateway's callbacks and alerts talk to:
//
// * startOtlpCollector({headers}): POST /v1/traces, OTLP/HTTP JSON (ExportTraceServiceRequest).
//   Validates strictly: content type, required headers, resourceSpans/scopeSpans/spans
//   shapes, only the fields the protobuf defines, valid UTF-8 (as every fake here), hex
//   ids of the right length (not all zero), times as decimal strings (end >= start),
//   attribute values with exactly one typed member (intValue as a decimal string). A bad
//   request gets 400 and is kept in `errors`; a good one 200 {} and its spans go to `spans`.
// * startLangfuse({publicKey, secretKey}): POST /api/public/ingestion. Basic auth
//   public:secret (else 401), {batch: [...]} with event envelopes {id, timestamp, type,
//   body} (ISO 8601 timestamps, unique event ids), trace-create / generation-create bodies
//   checked; answers 207 {successes, errors} as Langfuse does.
// * startWebhook({headers}): any POST with a JSON body; required headers checked.
//
// Each returns {url, port, received (accepted bodies), errors, requests (every request's
// headers and path), failNext(n, status), holdNext(n), release(), waitFor(pred, what,
// timeoutMs), close()}.
import http from 'node:http';
import assert from 'node:assert/strict';

const HEX32 = /^[0-9a-f]{32}$/;
const HEX16 = /^[0-9a-f]{16}$/;
const DIGITS = /^[0-9]+$/;
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

function base(name, check) {
  const state = { received: [], errors: [], requests: [], failures: [], waiters: new Set(), hold: 0, held: [] };
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      state.requests.push({ method: req.method, path: req.url, headers: { ...req.headers } });
      if (state.hold > 0) {
        state.hold -= 1;
        state.held.push(() => answer());
        for (const w of state.waiters) w();
        return;
      }
      answer();
    });
    const answer = () => {
      const reply = (status, body) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
        for (const w of state.waiters) w();
      };
      if (state.failures.length > 0) {
        return reply(state.failures.shift(), { error: 'scripted failure' });
      }
      let body;
      try {
        // JSON text is UTF-8 (RFC 8259); the real receivers refuse anything else (an OTLP
        // collector's protobuf JSON decoder rejects a string with invalid UTF-8), where
        // toString('utf8') would quietly mend it.
        const raw = new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(chunks));
        body = JSON.parse(raw);
      } catch (e) {
        state.errors.push(`${name}: body is not UTF-8 JSON: ${e.message}`);
        return reply(400, { error: 'invalid json' });
      }
      let out;
      try {
        out = check(req, body);
      } catch (e) {
        state.errors.push(`${name}: ${e.message}`);
        return reply(e.status ?? 400, { error: e.message });
      }
      state.received.push(body);
      return reply(out?.status ?? 200, out?.body ?? {});
    };
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const port = server.address().port;
      resolve({
        url: `http://127.0.0.1:${port}`,
        port,
        get received() { return state.received; },
        get errors() { return state.errors; },
        get requests() { return state.requests; },
        failNext(n, status = 503) { for (let i = 0; i < n; i++) state.failures.push(status); },
        // The next n requests get no answer until release() (they count in `requests`).
        holdNext(n = 1) { state.hold += n; },
        release() { for (const a of state.held.splice(0)) a(); },
        // Resolves with pred()'s value once truthy (checked after each request); rejects after timeoutMs.
        waitFor(pred, what = 'condition', timeoutMs = 20_000) {
          return new Promise((resolve2, reject) => {
            const check2 = () => {
              let v;
              try { v = pred(); } catch (e) { v = undefined; }
              if (v) {
                clearTimeout(t);
                state.waiters.delete(check2);
                resolve2(v);
              }
            };
            const t = setTimeout(() => {
              state.waiters.delete(check2);
              reject(new Error(`${name}: not within ${timeoutMs} ms: ${what} (errors: ${JSON.stringify(state.errors)})`));
            }, timeoutMs);
            state.waiters.add(check2);
            check2();
          });
        },
        close() { server.closeAllConnections?.(); return new Promise((r) => server.close(() => r())); },
      });
    });
  });
}

function fail(msg, status = 400) {
  const e = new Error(msg);
  e.status = status;
  throw e;
}

function requireHeaders(req, headers) {
  for (const [k, v] of Object.entries(headers ?? {})) {
    if (req.headers[k.toLowerCase()] !== v) fail(`header ${k}: expected ${JSON.stringify(v)}, got ${JSON.stringify(req.headers[k.toLowerCase()])}`, 401);
  }
}

function onlyKeys(obj, allowed, where) {
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) fail(`${where}: not an object`);
  for (const k of Object.keys(obj)) if (!allowed.includes(k)) fail(`${where}: unknown field ${k}`);
}

function checkAnyValue(v, where) {
  onlyKeys(v, ['stringValue', 'boolValue', 'intValue', 'doubleValue', 'arrayValue', 'kvlistValue', 'bytesValue'], where);
  const keys = Object.keys(v);
  if (keys.length !== 1) fail(`${where}: exactly one value member expected, got ${keys.join(',')}`);
  const [k] = keys;
  if (k === 'stringValue' && typeof v[k] !== 'string') fail(`${where}: stringValue not a string`);
  if (k === 'boolValue' && typeof v[k] !== 'boolean') fail(`${where}: boolValue not a boolean`);
  if (k === 'intValue' && !(typeof v[k] === 'string' && /^-?[0-9]+$/.test(v[k]))) fail(`${where}: intValue must be a decimal string, got ${JSON.stringify(v[k])}`);
  if (k === 'doubleValue' && typeof v[k] !== 'number') fail(`${where}: doubleValue not a number`);
}

function checkAttributes(attrs, where) {
  if (!Array.isArray(attrs)) fail(`${where}: attributes not an array`);
  const seen = new Set();
  attrs.forEach((a, i) => {
    onlyKeys(a, ['key', 'value'], `${where}[${i}]`);
    if (typeof a.key !== 'string' || a.key === '') fail(`${where}[${i}]: key missing`);
    if (seen.has(a.key)) fail(`${where}: duplicate attribute ${a.key}`);
    seen.add(a.key);
    checkAnyValue(a.value, `${where}[${i}].value`);
  });
}

const SPAN_FIELDS = ['traceId', 'spanId', 'traceState', 'parentSpanId', 'flags', 'name', 'kind', 'startTimeUnixNano',
  'endTimeUnixNano', 'attributes', 'droppedAttributesCount', 'events', 'droppedEventsCount', 'links',
  'droppedLinksCount', 'status'];

function checkSpan(s, where) {
  onlyKeys(s, SPAN_FIELDS, where);
  if (!HEX32.test(s.traceId ?? '') || /^0+$/.test(s.traceId)) fail(`${where}: traceId must be 32 lower-case hex digits, not zero: ${s.traceId}`);
  if (!HEX16.test(s.spanId ?? '') || /^0+$/.test(s.spanId)) fail(`${where}: spanId must be 16 lower-case hex digits, not zero: ${s.spanId}`);
  if (s.parentSpanId !== undefined && s.parentSpanId !== '' && !HEX16.test(s.parentSpanId)) fail(`${where}: parentSpanId malformed: ${s.parentSpanId}`);
  if (typeof s.name !== 'string' || s.name === '') fail(`${where}: name missing`);
  if (s.kind !== undefined && !(Number.isInteger(s.kind) && s.kind >= 0 && s.kind <= 5)) fail(`${where}: kind must be an integer 0..5`);
  for (const k of ['startTimeUnixNano', 'endTimeUnixNano']) {
    if (typeof s[k] !== 'string' || !DIGITS.test(s[k])) fail(`${where}: ${k} must be a decimal string, got ${JSON.stringify(s[k])}`);
  }
  if (BigInt(s.endTimeUnixNano) < BigInt(s.startTimeUnixNano)) fail(`${where}: ends before it starts`);
  if (BigInt(s.startTimeUnixNano) < 1_600_000_000_000_000_000n) fail(`${where}: start time is not Unix nanoseconds`);
  if (s.attributes !== undefined) checkAttributes(s.attributes, `${where}.attributes`);
  if (s.status !== undefined) {
    onlyKeys(s.status, ['code', 'message'], `${where}.status`);
    if (s.status.code !== undefined && ![0, 1, 2].includes(s.status.code)) fail(`${where}.status.code must be 0, 1 or 2`);
    if (s.status.message !== undefined && typeof s.status.message !== 'string') fail(`${where}.status.message not a string`);
  }
}

// Flattened span with its attributes as a plain object.
function flat(span, resource) {
  const attrs = {};
  const attrTypes = {};  // key -> the value's member (intValue, doubleValue, ...)
  for (const a of span.attributes ?? []) {
    const [k, v] = Object.entries(a.value)[0];
    attrs[a.key] = k === 'intValue' ? Number(v) : v;
    attrTypes[a.key] = k;
  }
  return { ...span, attrs, attrTypes, resource };
}

export async function startOtlpCollector({ headers } = {}) {
  const spans = [];
  const c = await base('otlp', (req, body) => {
    if (req.method !== 'POST' || req.url !== '/v1/traces') fail(`unexpected ${req.method} ${req.url}`, 404);
    if (!(req.headers['content-type'] ?? '').startsWith('application/json')) fail(`content-type ${req.headers['content-type']}`, 415);
    requireHeaders(req, headers);
    onlyKeys(body, ['resourceSpans'], 'request');
    if (!Array.isArray(body.resourceSpans)) fail('resourceSpans not an array');
    const got = [];
    body.resourceSpans.forEach((rs, i) => {
      onlyKeys(rs, ['resource', 'scopeSpans', 'schemaUrl'], `resourceSpans[${i}]`);
      onlyKeys(rs.resource, ['attributes', 'droppedAttributesCount'], `resourceSpans[${i}].resource`);
      checkAttributes(rs.resource.attributes, `resourceSpans[${i}].resource.attributes`);
      if (!Array.isArray(rs.scopeSpans)) fail(`resourceSpans[${i}].scopeSpans not an array`);
      const resource = Object.fromEntries(rs.resource.attributes.map((a) => [a.key, Object.values(a.value)[0]]));
      if (typeof resource['service.name'] !== 'string') fail('resource attribute service.name missing');
      rs.scopeSpans.forEach((ss, j) => {
        onlyKeys(ss, ['scope', 'spans', 'schemaUrl'], `scopeSpans[${j}]`);
        onlyKeys(ss.scope, ['name', 'version', 'attributes', 'droppedAttributesCount'], `scopeSpans[${j}].scope`);
        if (typeof ss.scope.name !== 'string') fail('scope.name missing');
        if (!Array.isArray(ss.spans)) fail(`scopeSpans[${j}].spans not an array`);
        ss.spans.forEach((s, k) => {
          checkSpan(s, `scopeSpans[${j}].spans[${k}]`);
          got.push(flat(s, resource));
        });
      });
    });
    spans.push(...got);
    return { status: 200, body: {} };
  });
  c.spans = spans;
  return c;
}

export async function startLangfuse({ publicKey, secretKey }) {
  const events = [];
  const eventIds = new Set();
  const c = await base('langfuse', (req, body) => {
    if (req.method !== 'POST' || req.url !== '/api/public/ingestion') fail(`unexpected ${req.method} ${req.url}`, 404);
    const want = `Basic ${Buffer.from(`${publicKey}:${secretKey}`).toString('base64')}`;
    if (req.headers.authorization !== want) fail('bad Basic auth', 401);
    onlyKeys(body, ['batch', 'metadata'], 'request');
    if (!Array.isArray(body.batch)) fail('batch not an array');
    const successes = [];
    body.batch.forEach((ev, i) => {
      onlyKeys(ev, ['id', 'timestamp', 'type', 'body', 'metadata'], `batch[${i}]`);
      if (typeof ev.id !== 'string' || ev.id === '') fail(`batch[${i}].id missing`);
      if (eventIds.has(ev.id)) fail(`batch[${i}].id ${ev.id} reused`);
      eventIds.add(ev.id);
      if (!ISO.test(ev.timestamp ?? '')) fail(`batch[${i}].timestamp not ISO 8601 UTC: ${ev.timestamp}`);
      const b = ev.body;
      if (b === null || typeof b !== 'object') fail(`batch[${i}].body missing`);
      if (typeof b.id !== 'string' || b.id === '') fail(`batch[${i}].body.id missing`);
      if (ev.type === 'trace-create') {
        if (b.timestamp !== undefined && !ISO.test(b.timestamp)) fail(`batch[${i}].body.timestamp malformed`);
        if (b.name !== undefined && typeof b.name !== 'string') fail(`batch[${i}].body.name not a string`);
      } else if (ev.type === 'generation-create') {
        if (typeof b.traceId !== 'string' || b.traceId === '') fail(`batch[${i}].body.traceId missing`);
        for (const k of ['startTime', 'endTime', 'completionStartTime']) {
          if (b[k] !== undefined && !ISO.test(b[k])) fail(`batch[${i}].body.${k} malformed: ${b[k]}`);
        }
        if (b.usage !== undefined) {
          for (const k of ['input', 'output', 'total']) if (typeof b.usage[k] !== 'number') fail(`batch[${i}].body.usage.${k} not a number`);
          if (!['TOKENS', 'CHARACTERS', 'MILLISECONDS', 'SECONDS', 'IMAGES', 'REQUESTS'].includes(b.usage.unit)) fail(`batch[${i}].body.usage.unit`);
        }
        if (b.level !== undefined && !['DEBUG', 'DEFAULT', 'WARNING', 'ERROR'].includes(b.level)) fail(`batch[${i}].body.level`);
      } else {
        fail(`batch[${i}].type ${ev.type} not expected from the gateway`);
      }
      successes.push({ id: ev.id, status: 201 });
    });
    events.push(...body.batch);
    return { status: 207, body: { successes, errors: [] } };
  });
  c.events = events;
  return c;
}

export async function startWebhook({ headers } = {}) {
  return base('webhook', (req, body) => {
    if (req.method !== 'POST') fail(`unexpected ${req.method}`, 405);
    if (!(req.headers['content-type'] ?? '').startsWith('application/json')) fail(`content-type ${req.headers['content-type']}`, 415);
    requireHeaders(req, headers);
    return { status: 200, body: { ok: true } };
  });
}

// Every span of one request (by litellm.call_id on its root span).
export function traceOf(spans, callId) {
  const root = spans.filter((s) => s.attrs['litellm.call_id'] === callId);
  if (root.length === 0) return undefined;
  assert.equal(root.length, 1, `one root span per request (${callId})`);
  const children = spans.filter((s) => s.traceId === root[0].traceId && s.parentSpanId === root[0].spanId);
  return { root: root[0], children };
}
