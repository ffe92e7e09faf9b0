#!/usr/bin/env node
// After the test suite: no secret the tests gave the gateway (master keys, provider
// api_keys, passwords, the virtual keys it created) appears in anything the gateway
// printed or answered. The exception is the one answer that creates a key and shows it
// once. Reads what tests/lib/capture.mjs kept in DIR.
//
//   node tests/secrets_scan.mjs DIR        exit 0: nothing found; 1: leaks (listed); 2: usage
//
// A secret matches only as a whole token (not inside a longer word), so a short test key
// such as "sk-up" is not found inside "sk-upstream".

import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import process from 'node:process';

const dir = process.argv[2];
if (!dir) {
  console.error('usage: node tests/secrets_scan.mjs DIR');
  process.exit(2);
}

const names = readdirSync(dir);
const readLines = (f) => readFileSync(path.join(dir, f), 'utf8').split('\n').filter(Boolean);

const secrets = new Map();  // value -> {what, origins:Set}
for (const f of names.filter((n) => n.startsWith('secrets-'))) {
  for (const line of readLines(f)) {
    const s = JSON.parse(line);
    const e = secrets.get(s.value) ?? { what: s.what, origins: new Set() };
    if (s.origin) e.origins.add(s.origin);
    secrets.set(s.value, e);
  }
}

const escape = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const matchers = [...secrets.entries()].map(([value, e]) => ({
  value,
  e,
  re: new RegExp(`(?<![A-Za-z0-9_-])${escape(value)}(?![A-Za-z0-9_-])`),
}));

const leaks = [];
const context = (text, value) => {
  const i = text.indexOf(value);
  return text.slice(Math.max(0, i - 80), i + value.length + 40).replace(/\s+/g, ' ');
};
const mask = (v) => (v.length <= 8 ? `${v.slice(0, 2)}…` : `${v.slice(0, 6)}…${v.slice(-2)}`);

let logs = 0;
for (const f of names.filter((n) => n.startsWith('gateway-'))) {
  logs += 1;
  const text = readFileSync(path.join(dir, f), 'utf8');
  for (const m of matchers) {
    if (m.re.test(text)) leaks.push({ where: `log ${f}`, secret: m, context: context(text, m.value) });
  }
}

let answers = 0;
for (const f of names.filter((n) => n.startsWith('responses-'))) {
  for (const line of readLines(f)) {
    const r = JSON.parse(line);
    answers += 1;
    for (const m of matchers) {
      if (m.e.origins.has(r.id)) continue;
      if (m.re.test(r.text)) {
        leaks.push({ where: `answer ${r.method} ${r.path} (${r.status})`, secret: m, context: context(r.text, m.value) });
      }
    }
  }
}

console.log(`secrets scan: ${secrets.size} secrets, ${logs} gateway logs, ${answers} answers`);
if (leaks.length === 0) {
  console.log('secrets scan: nothing found');
  process.exit(0);
}
const seen = new Set();
for (const l of leaks) {
  const k = `${l.where}|${l.secret.value}`;
  if (seen.has(k)) continue;
  seen.add(k);
  // The secret itself is masked here: this output ends up in CI logs.
  console.log(`LEAK ${mask(l.secret.value)} (${l.secret.e.what}) in ${l.where}: ${l.context.split(l.secret.value).join(mask(l.secret.value))}`);
}
console.log(`secrets scan: ${seen.size} leaks`);
process.exit(1);
