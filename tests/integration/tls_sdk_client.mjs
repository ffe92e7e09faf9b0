// Child process of tls.test.mjs: the official OpenAI SDK against an HTTPS gateway, trusting
// the test CA through NODE_EXTRA_CA_CERTS (Node reads it at start, so it needs a process of
// its own). Prints one JSON line: {plain, streamed, chunks} or {error}.
// usage: NODE_EXTRA_CA_CERTS=ca.pem node tls_sdk_client.mjs BASE_URL API_KEY MODEL
import OpenAI from 'openai';

const [baseURL, apiKey, model] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 30_000 });
const messages = [{ role: 'user', content: 'Hello over TLS' }];
try {
  const r = await client.chat.completions.create({ model, messages });
  const s = await client.chat.completions.create({ model, messages, stream: true });
  let streamed = '';
  let chunks = 0;
  for await (const chunk of s) {
    chunks += 1;
    for (const c of chunk.choices) streamed += c.delta?.content ?? '';
  }
  process.stdout.write(`${JSON.stringify({ plain: r.choices[0].message.content, streamed, chunks })}\n`);
} catch (e) {
  process.stdout.write(`${JSON.stringify({ error: String(e?.message ?? e), cause: String(e?.cause?.message ?? '') })}\n`);
}
