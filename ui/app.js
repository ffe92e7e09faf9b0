// Switchyard admin UI: one page, hash routes, plain DOM. Every action calls the gateway's
// management API with the session cookie (and, for anything but GET, the session's CSRF
// token in x-csrf-token), so the UI can do nothing the API would refuse: the API applies
// the signed-in user's role rules, the UI only hides what the role cannot do.
'use strict';

(() => {
  const PAGE_SIZE = 25;
  const COLORS = ['#2f7bd8', '#d64545', '#2e9d5b', '#d98e04', '#7a4fd6', '#1aa3a3'];
  const ADMIN_ROLES = ['proxy_admin', 'proxy_admin_viewer'];
  const state = { session: null, csrf: '' };
  const app = document.getElementById('app');

  // ------------------------------------------------------------------ DOM helpers

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k === 'class') el.className = v;
      else if (k === 'value') el.value = v;
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    append(el, children);
    return el;
  }
  function append(el, children) {
    for (const c of children.flat(Infinity)) {
      if (c === undefined || c === null || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }
  function svg(tag, attrs, ...children) {
    const el = document.createElementNS('http://www.w3.org/2000/svg', tag);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
    for (const c of children.flat(Infinity)) {
      if (c === undefined || c === null || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  const money = (v) => {
    const n = Number(v || 0);
    if (n === 0) return '$0';
    if (Math.abs(n) < 0.01) return `$${n.toPrecision(2)}`;
    return `$${n.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`;
  };
  const count = (v) => Number(v || 0).toLocaleString('en-US');
  const when = (v) => (v ? String(v).replace('T', ' ').replace(/(\.\d+)?(Z|[+-]00(:?00)?)$/, ' UTC') : '');
  const list = (v) => (Array.isArray(v) ? v.join(', ') : v || '');
  const day = (d) => d.toISOString().slice(0, 10);
  const daysAgo = (n) => { const d = new Date(); d.setUTCDate(d.getUTCDate() - n); return day(d); };
  const isAdmin = () => ADMIN_ROLES.includes(state.session?.user_role);
  const canWrite = () => ['proxy_admin', 'org_admin'].includes(state.session?.user_role);
  const isProxyAdmin = () => state.session?.user_role === 'proxy_admin';
  const ownOnly = () => ['internal_user', 'internal_user_viewer'].includes(state.session?.user_role);

  // ------------------------------------------------------------------ API

  class ApiError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  async function api(path, { method = 'GET', body, query } = {}) {
    let url = path;
    if (query) {
      const q = new URLSearchParams();
      for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== '') q.set(k, v);
      const s = q.toString();
      if (s) url += `?${s}`;
    }
    const headers = { accept: 'application/json' };
    if (method !== 'GET') headers['x-csrf-token'] = state.csrf;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const r = await fetch(url, {
      method, headers, credentials: 'same-origin', body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    let json;
    try { json = text ? JSON.parse(text) : null; } catch { json = null; }
    if (!r.ok) {
      const msg = json?.error?.message || json?.detail || text || `HTTP ${r.status}`;
      if (r.status === 401 && path !== '/sso/session') {
        state.session = null;
        location.hash = '#/signin';
      }
      throw new ApiError(r.status, msg);
    }
    return json;
  }

  // ------------------------------------------------------------------ charts (inline SVG)

  function niceMax(v) {
    if (!(v > 0)) return 1;
    const p = 10 ** Math.floor(Math.log10(v));
    for (const m of [1, 2, 2.5, 4, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  // Vertical bars per day; `series` stacked ({key, name}); `fmt` formats the axis.
  // The frame the day charts share: the SVG, four grid lines labelled up to `max`, and the
  // plot area's size (iw x ih, from L, T).
  const CHART = { W: 460, H: 220, L: 64, B: 26, T: 10, R: 10 };
  function chartFrame(max, fmt) {
    const { W, H, L, B, T, R } = CHART;
    const iw = W - L - R; const ih = H - T - B;
    const el = svg('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img' });
    for (let i = 0; i <= 4; i++) {
      const y = T + ih - (ih * i) / 4;
      el.append(svg('line', { class: 'grid', x1: L, x2: W - R, y1: y, y2: y }));
      el.append(svg('text', { x: L - 6, y: y + 4, 'text-anchor': 'end' }, fmt((max * i) / 4)));
    }
    return { el, iw, ih };
  }

  function barChart(rows, series, fmt = count) {
    const { W, H, L, T, R } = CHART;
    // Counts: at least 4, so the four grid lines fall on whole numbers.
    const max = niceMax(Math.max(fmt === count ? 4 : 0, ...rows.map((r) => series.reduce((s, x) => s + Number(r[x.key] || 0), 0))));
    const { el, iw, ih } = chartFrame(max, fmt);
    el.append(svg('line', { class: 'axis', x1: L, x2: W - R, y1: T + ih, y2: T + ih }));
    const n = Math.max(rows.length, 1);
    const bw = iw / n;
    rows.forEach((r, i) => {
      let base = 0;
      series.forEach((s, si) => {
        const v = Number(r[s.key] || 0);
        if (v <= 0) return;
        const hgt = (ih * v) / max;
        const y = T + ih - ((ih * base) / max) - hgt;
        el.append(svg('rect', {
          x: L + i * bw + bw * 0.15, y, width: Math.max(1, bw * 0.7), height: Math.max(0.5, hgt), fill: COLORS[si], rx: 1,
        }, svg('title', {}, `${r.date} ${s.name}: ${fmt(v)}`)));
        base += v;
      });
      const every = Math.ceil(n / 6);
      if (i % every === 0) {
        el.append(svg('text', { x: L + i * bw + bw / 2, y: H - 8, 'text-anchor': 'middle' }, r.date.slice(5)));
      }
    });
    if (!rows.length) el.append(svg('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle' }, 'No data for these days'));
    return el;
  }

  // A line per series over the days.
  function lineChart(rows, series, fmt = count) {
    const { W, H, L, T } = CHART;
    const max = niceMax(Math.max(0, ...rows.flatMap((r) => series.map((s) => Number(r[s.key] || 0)))));
    const { el, iw, ih } = chartFrame(max, fmt);
    const n = rows.length;
    const xOf = (i) => (n <= 1 ? L + iw / 2 : L + (iw * i) / (n - 1));
    const yOf = (v) => T + ih - (ih * v) / max;
    series.forEach((s, si) => {
      const pts = rows.map((r, i) => `${xOf(i).toFixed(1)},${yOf(Number(r[s.key] || 0)).toFixed(1)}`);
      if (n > 1) el.append(svg('polyline', { points: pts.join(' '), fill: 'none', stroke: COLORS[si], 'stroke-width': 2 }));
      rows.forEach((r, i) => el.append(svg('circle', {
        cx: xOf(i), cy: yOf(Number(r[s.key] || 0)), r: 3, fill: COLORS[si],
      }, svg('title', {}, `${r.date} ${s.name}: ${fmt(r[s.key])}`))));
    });
    const every = Math.ceil(Math.max(n, 1) / 6);
    rows.forEach((r, i) => {
      if (i % every === 0) el.append(svg('text', { x: xOf(i), y: H - 8, 'text-anchor': 'middle' }, r.date.slice(5)));
    });
    if (!n) el.append(svg('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle' }, 'No data for these days'));
    return el;
  }

  // Horizontal bars: [{label, value}], largest first.
  function rankChart(items, fmt = money) {
    const W = 420; const row = 26; const L = 150; const R = 70;
    const H = Math.max(1, items.length) * row + 6;
    const max = Math.max(0, ...items.map((x) => x.value)) || 1;
    const el = svg('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img' });
    items.forEach((x, i) => {
      const y = 3 + i * row;
      const w = ((W - L - R) * x.value) / max;
      const label = x.label.length > 22 ? `${x.label.slice(0, 21)}…` : x.label;
      el.append(svg('text', { x: L - 8, y: y + 16, 'text-anchor': 'end' }, svg('title', {}, x.label), label));
      el.append(svg('rect', { x: L, y: y + 4, width: Math.max(1, w), height: row - 10, fill: COLORS[0], rx: 2 },
        svg('title', {}, `${x.label}: ${fmt(x.value)}`)));
      el.append(svg('text', { x: L + Math.max(1, w) + 6, y: y + 16 }, fmt(x.value)));
    });
    if (!items.length) el.append(svg('text', { x: W / 2, y: 18, 'text-anchor': 'middle' }, 'Nothing yet'));
    return el;
  }

  function legend(names) {
    return h('div', { class: 'legend' }, names.map((n, i) => h('span', {}, h('i', { class: `c${i}` }), n)));
  }

  // ------------------------------------------------------------------ shared pieces

  function errorBox(e) { return h('div', { class: 'error', role: 'alert' }, e.message || String(e)); }

  function table(columns, rows, { empty = 'Nothing here yet', testid } = {}) {
    if (!rows.length) return h('div', { class: 'empty', 'data-testid': testid }, empty);
    return h('div', { class: 'table-wrap' }, h('table', { 'data-testid': testid },
      h('thead', {}, h('tr', {}, columns.map((c) => h('th', { class: c.num ? 'num' : '' }, c.title)))),
      h('tbody', {}, rows.map((r) => h('tr', {}, columns.map((c) => h('td', { class: c.num ? 'num' : '' }, c.cell(r))))))));
  }

  // Paging without a total: "next" while a full page came back.
  function pager(page, gotFull, go, total) {
    return h('div', { class: 'pager' },
      total !== undefined ? h('span', {}, `${count(total)} in all`) : null,
      h('button', { class: 'small', disabled: page <= 1, onclick: () => go(page - 1) }, '‹ Prev'),
      h('span', { 'data-testid': 'page' }, `Page ${page}`),
      h('button', { class: 'small', disabled: !gotFull, onclick: () => go(page + 1) }, 'Next ›'));
  }

  function dialog(title, body, buttons) {
    const d = h('dialog', {}, h('h2', {}, title), body, h('div', { class: 'buttons' }, buttons));
    document.body.append(d);
    d.addEventListener('close', () => d.remove());
    d.showModal();
    return d;
  }
  function confirmDialog(title, text) {
    return new Promise((resolve) => {
      const d = dialog(title, h('p', {}, text), [
        h('button', { onclick: () => { d.close(); resolve(false); } }, 'Cancel'),
        h('button', { class: 'primary danger', 'data-testid': 'confirm', onclick: () => { d.close(); resolve(true); } }, 'Confirm'),
      ]);
    });
  }
  function showSecret(title, key, extra) {
    const d = dialog(title, h('div', {},
      h('p', {}, 'Copy it now: this is the only time the key is shown. The gateway keeps only its hash.'),
      h('div', { class: 'secret' }, h('code', { 'data-testid': 'new-key' }, key),
        h('button', { class: 'small', onclick: () => navigator.clipboard?.writeText(key) }, 'Copy')),
      extra ? h('p', { class: 'muted' }, extra) : null),
    [h('button', { class: 'primary', 'data-testid': 'close-secret', onclick: () => d.close() }, 'Done')]);
  }

  // Form values: numbers for type=number, lists for data-list, JSON for data-json; empty
  // fields are left out so the API applies its defaults.
  function formValues(form) {
    const out = {};
    for (const el of form.elements) {
      if (!el.name || el.value === '') continue;
      let v = el.value.trim();
      if (v === '') continue;
      if (el.type === 'number') v = Number(v);
      else if (el.dataset.list !== undefined) v = v.split(',').map((s) => s.trim()).filter(Boolean);
      else if (el.dataset.json !== undefined) {
        try { v = JSON.parse(v); } catch { throw new Error(`${el.name}: not valid JSON`); }
      }
      out[el.name] = v;
    }
    return out;
  }

  function field(label, input, wide) {
    return h('label', { class: wide ? 'wide' : '' }, label, input);
  }

  // A form in a panel; onsubmit gets the values and shows any error above the fields.
  function createForm(title, fields, submitLabel, onsubmit) {
    const err = h('div');
    const form = h('form', { class: 'fields' }, fields,
      h('div', { class: 'wide actions' }, h('button', { class: 'primary', type: 'submit' }, submitLabel)));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      err.replaceChildren();
      const btn = form.querySelector('button[type=submit]');
      btn.disabled = true;
      try {
        await onsubmit(formValues(form), form);
        form.reset();
      } catch (e) {
        err.replaceChildren(errorBox(e));
      } finally {
        btn.disabled = false;
      }
    });
    return h('details', { class: 'panel' }, h('summary', {}, h('b', {}, title)), h('div', { class: 'mt' }, err, form));
  }

  // Runs an action from a row button; errors go to `where`, success re-renders.
  async function act(where, fn, rerender) {
    try {
      await fn();
      rerender();
    } catch (e) {
      where.prepend(errorBox(e));
    }
  }

  function hashQuery() {
    const i = location.hash.indexOf('?');
    return new URLSearchParams(i < 0 ? '' : location.hash.slice(i + 1));
  }
  function setQuery(route, params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, v);
    const s = q.toString();
    location.hash = `#/${route}${s ? `?${s}` : ''}`;
  }

  // ------------------------------------------------------------------ pages

  function signInPage(message) {
    return h('div', { class: 'signin' }, h('div', { class: 'panel' },
      h('h1', {}, h('img', { src: document.querySelector('link[rel=icon]')?.href || '', alt: '' }), 'Switchyard'),
      message ? h('div', { class: 'error', role: 'alert' }, message) : null,
      h('a', { class: 'sso', href: '/sso/key/generate', 'data-testid': 'sso-signin' }, 'Sign in with your identity provider'),
      h('form', { method: 'post', action: '/login' },
        h('label', {}, 'Username', h('input', { name: 'username', autocomplete: 'username', required: true })),
        h('label', {}, 'Password', h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true })),
        h('button', { class: 'primary', type: 'submit' }, 'Sign in with a password')),
      h('p', { class: 'muted' }, 'Password sign-in: UI_USERNAME and UI_PASSWORD.')));
  }

  // The last 30 days, from the daily rollups (never spend_logs): four calls whose answers
  // stay small however many keys there are (per day, the top teams, keys and models). An
  // admin's top teams come from /global/spend/teams (the ten that spent most, summed by the
  // server); anyone else's from the activity of their own few teams.
  async function overviewPage(main) {
    const days = 30;
    const range = { start_date: daysAgo(days - 1), end_date: daysAgo(0), page_size: 1000, breakdown: 'false' };
    main.append(h('div', { class: 'toolbar' }, h('h1', { class: 'grow' }, ownOnly() ? 'My spend' : 'Overview'),
      h('span', { class: 'muted' }, `Last ${days} days (UTC)`)));
    const [users, teams, topKeys, topModels] = await Promise.all([
      api('/user/daily/activity', { query: range }),
      isAdmin() ? api('/global/spend/teams') : api('/team/daily/activity', { query: range }),
      api('/global/spend/keys', { query: { limit: 8 } }),
      api('/global/spend/models', { query: { limit: 8 } }),
    ]);
    const byDate = new Map();
    for (let i = days - 1; i >= 0; i--) byDate.set(daysAgo(i), { date: daysAgo(i), ok: 0, failed: 0, spend: 0, prompt: 0, completion: 0 });
    for (const r of users.results) {
      const d = byDate.get(r.date) || { date: r.date, ok: 0, failed: 0, spend: 0, prompt: 0, completion: 0 };
      d.ok += r.metrics.successful_requests; d.failed += r.metrics.failed_requests; d.spend += r.metrics.spend;
      d.prompt += r.metrics.prompt_tokens; d.completion += r.metrics.completion_tokens;
      byDate.set(r.date, d);
    }
    const teamSpend = new Map();
    for (const t of teams.total_spend_per_team || []) teamSpend.set(t.team_id, Number(t.total_spend));
    for (const r of teams.results || []) {
      for (const [t, v] of Object.entries(r.breakdown.entities || {})) {
        const label = v.metadata?.team_alias || t;
        teamSpend.set(label, (teamSpend.get(label) || 0) + v.metrics.spend);
      }
    }
    const rows = [...byDate.values()].sort((a, b) => a.date.localeCompare(b.date));
    const top = (m) => [...m.entries()].map(([label, value]) => ({ label, value })).sort((a, b) => b.value - a.value).slice(0, 8);
    const m = users.metadata;
    main.append(h('div', { class: 'kpis' },
      [['Spend', money(m.total_spend), 'kpi-spend'], ['Requests', count(m.total_api_requests), 'kpi-requests'],
        ['Errors', count(m.total_failed_requests), 'kpi-errors'], ['Tokens', count(m.total_tokens), 'kpi-tokens']]
        .map(([l, v, id]) => h('div', { class: 'kpi' }, h('div', { class: 'label' }, l), h('div', { class: 'value', 'data-testid': id }, v)))));
    main.append(h('div', { class: 'grid3' },
      h('div', { class: 'panel' }, h('h2', {}, 'Requests per day'),
        barChart(rows, [{ key: 'ok', name: 'succeeded' }, { key: 'failed', name: 'failed' }]), legend(['succeeded', 'failed'])),
      h('div', { class: 'panel' }, h('h2', {}, 'Spend per day'), lineChart(rows, [{ key: 'spend', name: 'spend' }], money)),
      h('div', { class: 'panel' }, h('h2', {}, 'Tokens per day'),
        barChart(rows, [{ key: 'prompt', name: 'prompt' }, { key: 'completion', name: 'completion' }]), legend(['prompt', 'completion']))));
    main.append(h('div', { class: 'grid3' },
      h('div', { class: 'panel', 'data-testid': 'top-keys' }, h('h2', {}, 'Top keys'),
        rankChart(topKeys.map((k) => ({ label: k.key_alias || `${String(k.api_key).slice(0, 10)}…`, value: Number(k.total_spend) })))),
      h('div', { class: 'panel', 'data-testid': 'top-teams' }, h('h2', {}, 'Top teams'), rankChart(top(teamSpend))),
      h('div', { class: 'panel', 'data-testid': 'top-models' }, h('h2', {}, 'Top models'),
        rankChart(topModels.map((x) => ({ label: x.model, value: Number(x.total_spend) }))))));
  }

  async function keysPage(main, rerender) {
    const q = hashQuery();
    const page = Number(q.get('page') || 1);
    const filters = { team_id: q.get('team_id') || '', key_alias: q.get('key_alias') || '', user_id: q.get('user_id') || '' };
    main.append(h('h1', {}, ownOnly() ? 'My keys' : 'Virtual keys'));
    const [res, teams] = await Promise.all([
      api('/key/list', { query: { return_full_object: 'true', page, size: PAGE_SIZE, ...filters } }),
      api('/team/list', { query: { page_size: 100 } }).catch(() => []),
    ]);
    const teamName = new Map(teams.map((t) => [t.team_id, t.team_alias || t.team_id]));
    // Suggestions for the team fields: the first 100 teams (any team id may be typed).
    main.append(h('datalist', { id: 'team-ids' }, teams.map((t) => h('option', { value: t.team_id }, t.team_alias || ''))));
    if (!['proxy_admin_viewer', 'internal_user_viewer'].includes(state.session.user_role)) {
      main.append(createForm('Create a key', [
        field('Alias', h('input', { name: 'key_alias', placeholder: 'billing-service' })),
        field('Team id', h('input', { name: 'team_id', list: 'team-ids', placeholder: '(none)' })),
        ownOnly() ? null : field('User id', h('input', { name: 'user_id' })),
        field('Models (comma-separated)', h('input', { name: 'models', 'data-list': '', placeholder: 'all models' })),
        field('Max budget ($)', h('input', { name: 'max_budget', type: 'number', step: 'any', min: 0 })),
        field('Budget period', h('input', { name: 'budget_duration', placeholder: '30d, 1mo' })),
        field('RPM limit', h('input', { name: 'rpm_limit', type: 'number', min: 0 })),
        field('TPM limit', h('input', { name: 'tpm_limit', type: 'number', min: 0 })),
        field('Max parallel requests', h('input', { name: 'max_parallel_requests', type: 'number', min: 0 })),
        field('Expires after', h('input', { name: 'duration', placeholder: '30d (empty: never)' })),
        field('Metadata (JSON object)', h('textarea', { name: 'metadata', 'data-json': '', placeholder: '{"owner": "billing"}' }), true),
      ], 'Create key', async (body) => {
        const r = await api('/key/generate', { method: 'POST', body });
        showSecret('Key created', r.key, r.expires ? `Expires ${when(r.expires)}` : null);
        rerender();
      }));
    }
    const go = (p) => setQuery('keys', { ...filters, page: p });
    main.append(h('div', { class: 'panel' },
      h('form', { class: 'toolbar', onsubmit: (e) => { e.preventDefault(); setQuery('keys', { ...formValues(e.target), page: 1 }); } },
        field('Alias', h('input', { name: 'key_alias', value: filters.key_alias })),
        ownOnly() ? null : field('User id', h('input', { name: 'user_id', value: filters.user_id })),
        field('Team id', h('input', { name: 'team_id', list: 'team-ids', value: filters.team_id })),
        h('button', { type: 'submit' }, 'Filter')),
      table([
        { title: 'Alias', cell: (k) => h('b', {}, k.key_alias || '') },
        { title: 'Key', cell: (k) => h('code', {}, k.key_name || '') },
        { title: 'Team', cell: (k) => (k.team_id ? teamName.get(k.team_id) || k.team_id : '') },
        { title: 'User', cell: (k) => k.user_id || '' },
        { title: 'Models', cell: (k) => list(k.models) || h('span', { class: 'muted' }, 'all') },
        { title: 'Spend', num: true, cell: (k) => money(k.spend) },
        { title: 'Budget', num: true, cell: (k) => (k.max_budget != null ? money(k.max_budget) : '—') },
        { title: 'Limits', cell: (k) => [k.rpm_limit != null ? `${k.rpm_limit} rpm` : null, k.tpm_limit != null ? `${k.tpm_limit} tpm` : null].filter(Boolean).join(', ') },
        { title: 'Expires', cell: (k) => (k.expires ? when(k.expires) : 'never') },
        { title: 'State', cell: (k) => (k.blocked ? h('span', { class: 'badge bad' }, 'blocked') : h('span', { class: 'badge ok' }, 'active')) },
        { title: '', cell: (k) => keyActions(k, main, rerender) },
      ], res.keys, { empty: 'No keys', testid: 'keys-table' }),
      pager(page, page < res.total_pages, go, res.total_count)));
  }

  function keyActions(k, main, rerender) {
    const role = state.session.user_role;
    if (role === 'proxy_admin_viewer' || role === 'internal_user_viewer') return null;
    const token = k.token_id || k.token;
    return h('div', { class: 'actions' },
      h('button', { class: 'small', onclick: () => {
        const grace = h('input', { name: 'grace_period', placeholder: '24h (empty: none)' });
        const d = dialog(`Regenerate ${k.key_alias || k.key_name}`, h('div', {},
          h('p', {}, 'A new secret replaces this one. During the grace period the old secret keeps working.'),
          field('Grace period', grace)), [
          h('button', { onclick: () => d.close() }, 'Cancel'),
          h('button', { class: 'primary', onclick: () => act(main, async () => {
            d.close();
            const r = await api('/key/regenerate', { method: 'POST', body: { key: token, ...(grace.value ? { grace_period: grace.value } : {}) } });
            showSecret('Key regenerated', r.key, r.grace_period_ends_at ? `The old key works until ${when(r.grace_period_ends_at)}.` : null);
          }, rerender) }, 'Regenerate')]);
      } }, 'Regenerate'),
      isProxyAdmin() ? h('button', { class: 'small', onclick: () => act(main,
        () => api(k.blocked ? '/key/unblock' : '/key/block', { method: 'POST', body: { key: token } }), rerender) },
      k.blocked ? 'Unblock' : 'Block') : null,
      h('button', { class: 'small danger', onclick: async () => {
        if (await confirmDialog('Delete key', `Delete ${k.key_alias || k.key_name}? Requests with it fail at once.`)) {
          act(main, () => api('/key/delete', { method: 'POST', body: { keys: [token] } }), rerender);
        }
      } }, 'Delete'));
  }

  async function teamsPage(main, rerender) {
    const q = hashQuery();
    const page = Number(q.get('page') || 1);
    const org = q.get('organization_id') || '';
    main.append(h('h1', {}, ownOnly() ? 'My teams' : 'Teams'));
    const [teams, orgs] = await Promise.all([
      api('/team/list', { query: { page, page_size: PAGE_SIZE, organization_id: org } }),
      canWrite() || isAdmin() ? api('/organization/list', { query: { page_size: 100 } }).catch(() => []) : Promise.resolve([]),
    ]);
    if (canWrite()) {
      main.append(createForm('Create a team', [
        field('Team name', h('input', { name: 'team_alias', required: true, placeholder: 'research' })),
        field('Organisation', h('select', { name: 'organization_id' }, h('option', { value: '' }, '(none)'),
          orgs.map((o) => h('option', { value: o.organization_id }, o.organization_alias || o.organization_id)))),
        field('Models (comma-separated)', h('input', { name: 'models', 'data-list': '', placeholder: 'all models' })),
        field('Max budget ($)', h('input', { name: 'max_budget', type: 'number', step: 'any', min: 0 })),
        field('Budget period', h('input', { name: 'budget_duration', placeholder: '30d, 1mo' })),
        field('RPM limit', h('input', { name: 'rpm_limit', type: 'number', min: 0 })),
        field('TPM limit', h('input', { name: 'tpm_limit', type: 'number', min: 0 })),
      ], 'Create team', async (body) => { await api('/team/new', { method: 'POST', body }); rerender(); }));
    }
    main.append(h('div', { class: 'panel' }, table([
      { title: 'Team', cell: (t) => h('a', { href: `#/team?team_id=${encodeURIComponent(t.team_id)}` }, t.team_alias || t.team_id) },
      { title: 'Id', cell: (t) => h('code', {}, t.team_id) },
      { title: 'Organisation', cell: (t) => t.organization_id || '' },
      { title: 'Models', cell: (t) => list(t.models) || h('span', { class: 'muted' }, 'all') },
      { title: 'Spend', num: true, cell: (t) => money(t.spend) },
      { title: 'Budget', num: true, cell: (t) => (t.max_budget != null ? money(t.max_budget) : '—') },
      { title: 'State', cell: (t) => (t.blocked ? h('span', { class: 'badge bad' }, 'blocked') : h('span', { class: 'badge ok' }, 'active')) },
      { title: '', cell: (t) => (canWrite() ? h('div', { class: 'actions' },
        h('button', { class: 'small', onclick: () => act(main, () => api(t.blocked ? '/team/unblock' : '/team/block', { method: 'POST', body: { team_id: t.team_id } }), rerender) }, t.blocked ? 'Unblock' : 'Block'),
        h('button', { class: 'small danger', onclick: async () => {
          if (await confirmDialog('Delete team', `Delete ${t.team_alias || t.team_id}? Its keys are deleted too.`)) {
            act(main, () => api('/team/delete', { method: 'POST', body: { team_ids: [t.team_id] } }), rerender);
          }
        } }, 'Delete')) : null) },
    ], teams, { empty: 'No teams', testid: 'teams-table' }),
    pager(page, teams.length === PAGE_SIZE, (p) => setQuery('teams', { organization_id: org, page: p }))));
  }

  async function teamPage(main, rerender) {
    const id = hashQuery().get('team_id');
    const t = await api('/team/info', { query: { team_id: id } });
    const info = t.team_info;
    main.append(h('h1', {}, h('a', { href: '#/teams' }, 'Teams'), ' / ', info.team_alias || id));
    main.append(h('div', { class: 'kpis' },
      [['Spend', money(info.spend)], ['Budget', info.max_budget != null ? money(info.max_budget) : 'none'],
        ['Members', count(t.team_memberships.length)], ['Keys', count(t.keys.length)]]
        .map(([l, v]) => h('div', { class: 'kpi' }, h('div', { class: 'label' }, l), h('div', { class: 'value' }, v)))));
    if (canWrite()) {
      main.append(createForm('Add a member', [
        field('User id', h('input', { name: 'user_id', placeholder: 'alice' })),
        field('or email', h('input', { name: 'user_email', type: 'email' })),
        field('Role', h('select', { name: 'role' }, h('option', { value: 'user' }, 'user'), h('option', { value: 'admin' }, 'admin'))),
      ], 'Add member', async (m) => {
        await api('/team/member_add', { method: 'POST', body: { team_id: id, member: [m] } });
        rerender();
      }));
    }
    main.append(h('div', { class: 'grid2' },
      h('div', { class: 'panel' }, h('h2', {}, 'Members'), table([
        { title: 'User', cell: (m) => m.user_id || m.user_email || '' },
        { title: 'Role', cell: (m) => m.role || m.user_role || 'user' },
        { title: 'Spend', num: true, cell: (m) => money(m.spend) },
        { title: '', cell: (m) => (canWrite() ? h('button', { class: 'small danger', onclick: () => act(main,
          () => api('/team/member_delete', { method: 'POST', body: { team_id: id, user_id: m.user_id } }), rerender) }, 'Remove') : null) },
      ], t.team_memberships, { empty: 'No members', testid: 'members-table' })),
      h('div', { class: 'panel' }, h('h2', {}, 'Keys'), table([
        { title: 'Alias', cell: (k) => k.key_alias || '' },
        { title: 'Key', cell: (k) => h('code', {}, k.key_name || '') },
        { title: 'Spend', num: true, cell: (k) => money(k.spend) },
      ], t.keys, { empty: 'No keys' }))));
  }

  async function orgsPage(main, rerender) {
    const page = Number(hashQuery().get('page') || 1);
    main.append(h('h1', {}, 'Organisations'));
    const orgs = await api('/organization/list', { query: { page, page_size: PAGE_SIZE } });
    if (isProxyAdmin()) {
      main.append(createForm('Create an organisation', [
        field('Name', h('input', { name: 'organization_alias', required: true })),
        field('Models (comma-separated)', h('input', { name: 'models', 'data-list': '' })),
        field('Max budget ($)', h('input', { name: 'max_budget', type: 'number', step: 'any', min: 0 })),
        field('Budget period', h('input', { name: 'budget_duration', placeholder: '30d, 1mo' })),
      ], 'Create organisation', async (body) => { await api('/organization/new', { method: 'POST', body }); rerender(); }));
    }
    main.append(h('div', { class: 'panel' }, table([
      { title: 'Name', cell: (o) => h('a', { href: `#/teams?organization_id=${encodeURIComponent(o.organization_id)}` }, o.organization_alias || o.organization_id) },
      { title: 'Id', cell: (o) => h('code', {}, o.organization_id) },
      { title: 'Models', cell: (o) => list(o.models) || h('span', { class: 'muted' }, 'all') },
      { title: 'Spend', num: true, cell: (o) => money(o.spend) },
      { title: 'Budget', cell: (o) => (o.budget_id ? h('a', { href: '#/budgets' }, h('code', {}, o.budget_id)) : '—') },
      { title: '', cell: (o) => (isProxyAdmin() ? h('button', { class: 'small danger', onclick: async () => {
        if (await confirmDialog('Delete organisation', `Delete ${o.organization_alias || o.organization_id}?`)) {
          act(main, () => api('/organization/delete', { method: 'DELETE', body: { organization_ids: [o.organization_id] } }), rerender);
        }
      } }, 'Delete') : null) },
    ], orgs, { empty: 'No organisations', testid: 'orgs-table' }),
    pager(page, orgs.length === PAGE_SIZE, (p) => setQuery('orgs', { page: p }))));
  }

  const ROLES = ['proxy_admin', 'proxy_admin_viewer', 'org_admin', 'internal_user', 'internal_user_viewer'];

  async function usersPage(main, rerender) {
    const q = hashQuery();
    const page = Number(q.get('page') || 1);
    const role = q.get('role') || '';
    main.append(h('h1', {}, 'Users and roles'));
    const res = await api('/user/list', { query: { page, page_size: PAGE_SIZE, role } });
    if (canWrite()) {
      main.append(createForm('Add a user', [
        field('User id', h('input', { name: 'user_id', placeholder: 'alice' })),
        field('Email', h('input', { name: 'user_email', type: 'email' })),
        field('Role', h('select', { name: 'user_role' }, ROLES.map((r) => h('option', { value: r, selected: r === 'internal_user' }, r)))),
        field('Max budget ($)', h('input', { name: 'max_budget', type: 'number', step: 'any', min: 0 })),
        field('Models (comma-separated)', h('input', { name: 'models', 'data-list': '' })),
      ], 'Add user', async (body) => {
        await api('/user/new', { method: 'POST', body: { ...body, auto_create_key: false } });
        rerender();
      }));
    }
    main.append(h('div', { class: 'panel' },
      h('div', { class: 'toolbar' }, field('Role', h('select', { onchange: (e) => setQuery('users', { role: e.target.value }) },
        h('option', { value: '' }, 'any'), ROLES.map((r) => h('option', { value: r, selected: r === role }, r))))),
      table([
        { title: 'User', cell: (u) => h('b', {}, u.user_id) },
        { title: 'Email', cell: (u) => u.user_email || '' },
        { title: 'Role', cell: (u) => (canWrite() ? h('select', { class: 'small', onchange: (e) => act(main,
          () => api('/user/update', { method: 'POST', body: { user_id: u.user_id, user_role: e.target.value } }), rerender) },
        ROLES.map((r) => h('option', { value: r, selected: r === u.user_role }, r))) : u.user_role) },
        { title: 'Organisation', cell: (u) => u.organization_id || '' },
        { title: 'Spend', num: true, cell: (u) => money(u.spend) },
        { title: 'Budget', num: true, cell: (u) => (u.max_budget != null ? money(u.max_budget) : '—') },
        { title: '', cell: (u) => (canWrite() ? h('button', { class: 'small danger', onclick: async () => {
          if (await confirmDialog('Delete user', `Delete ${u.user_id}?`)) {
            act(main, () => api('/user/delete', { method: 'POST', body: { user_ids: [u.user_id] } }), rerender);
          }
        } }, 'Delete') : null) },
      ], res.users, { empty: 'No users', testid: 'users-table' }),
      pager(page, page < res.total_pages, (p) => setQuery('users', { role, page: p }), res.total)));
  }

  async function budgetsPage(main, rerender) {
    const page = Number(hashQuery().get('page') || 1);
    main.append(h('h1', {}, 'Budgets'));
    const rows = await api('/budget/list', { query: { page, page_size: PAGE_SIZE } });
    if (isProxyAdmin()) {
      main.append(createForm('Create a budget', [
        field('Budget id', h('input', { name: 'budget_id', placeholder: 'team-monthly' })),
        field('Max budget ($)', h('input', { name: 'max_budget', type: 'number', step: 'any', min: 0 })),
        field('Soft budget ($)', h('input', { name: 'soft_budget', type: 'number', step: 'any', min: 0 })),
        field('Period', h('input', { name: 'budget_duration', placeholder: '30d, 1mo' })),
        field('RPM limit', h('input', { name: 'rpm_limit', type: 'number', min: 0 })),
        field('TPM limit', h('input', { name: 'tpm_limit', type: 'number', min: 0 })),
        field('Max parallel requests', h('input', { name: 'max_parallel_requests', type: 'number', min: 0 })),
      ], 'Create budget', async (body) => { await api('/budget/new', { method: 'POST', body }); rerender(); }));
    }
    main.append(h('div', { class: 'panel' }, table([
      { title: 'Budget', cell: (b) => h('code', {}, b.budget_id) },
      { title: 'Max', num: true, cell: (b) => (b.max_budget != null ? money(b.max_budget) : '—') },
      { title: 'Soft', num: true, cell: (b) => (b.soft_budget != null ? money(b.soft_budget) : '—') },
      { title: 'Period', cell: (b) => b.budget_duration || '' },
      { title: 'Resets', cell: (b) => when(b.budget_reset_at) },
      { title: 'Limits', cell: (b) => [b.rpm_limit != null ? `${b.rpm_limit} rpm` : null, b.tpm_limit != null ? `${b.tpm_limit} tpm` : null, b.max_parallel_requests != null ? `${b.max_parallel_requests} parallel` : null].filter(Boolean).join(', ') },
      { title: '', cell: (b) => (isProxyAdmin() ? h('button', { class: 'small danger', onclick: async () => {
        if (await confirmDialog('Delete budget', `Delete ${b.budget_id}?`)) {
          act(main, () => api('/budget/delete', { method: 'POST', body: { id: b.budget_id } }), rerender);
        }
      } }, 'Delete') : null) },
    ], rows, { empty: 'No budgets', testid: 'budgets-table' }),
    pager(page, rows.length === PAGE_SIZE, (p) => setQuery('budgets', { page: p }))));
  }

  // A model's form. `m` (an entry of /model/info) prefills it for an edit, except the
  // provider key: the API never returns it, and /model/update keeps the stored value of
  // every litellm_params member it is not sent, so an empty key field keeps the key.
  const MODEL_PARAMS = ['model', 'api_base', 'api_key', 'rpm', 'tpm'];
  const redacted = (v) => v === '<redacted>' || (v !== null && typeof v === 'object' && Object.values(v).includes('<redacted>'));
  function modelFields(m) {
    const lp = m?.litellm_params || {};
    // The other params, less what the API redacted (header values): sent back, the
    // placeholder would replace the stored values; left out, they are kept.
    const extra = Object.fromEntries(Object.entries(lp).filter(([k, v]) => !MODEL_PARAMS.includes(k) && !redacted(v)));
    return [
      field('Model name (what clients ask for)', h('input', { name: 'model_name', required: true, value: m?.model_name, placeholder: 'gpt-4o' })),
      field('Provider/model', h('input', { name: 'model', required: true, value: lp.model, placeholder: 'openai/gpt-4o' })),
      field('API base', h('input', { name: 'api_base', value: lp.api_base, placeholder: "(the provider's default)" })),
      field('API key', h('input', { name: 'api_key', type: 'password', autocomplete: 'new-password',
        placeholder: m ? '(empty: keep the stored key)' : 'sk-… or os.environ/NAME' })),
      field('RPM', h('input', { name: 'rpm', type: 'number', min: 0, value: lp.rpm })),
      field('TPM', h('input', { name: 'tpm', type: 'number', min: 0, value: lp.tpm })),
      field('Other litellm_params (JSON object)', h('textarea', { name: 'extra_params', 'data-json': '',
        placeholder: '{"max_tokens": 1024, "timeout": 60}', value: Object.keys(extra).length ? JSON.stringify(extra) : undefined }), true),
    ];
  }
  // litellm_params from the form's values: the named fields over the JSON ones.
  function modelParams(v) {
    const extra = v.extra_params ?? {};
    if (typeof extra !== 'object' || extra === null || Array.isArray(extra)) {
      throw new Error('Other litellm_params: not a JSON object (e.g. {"max_tokens": 1024})');
    }
    const lp = { ...extra };
    for (const k of MODEL_PARAMS) if (v[k] !== undefined) lp[k] = v[k];
    return lp;
  }

  function editModel(m, rerender) {
    const err = h('div');
    const form = h('form', { class: 'fields', 'data-testid': 'model-edit' }, modelFields(m),
      h('p', { class: 'wide muted' }, 'An empty field keeps its stored value; the key is never shown.'));
    const save = h('button', { class: 'primary', 'data-testid': 'save-model', onclick: () => form.requestSubmit() }, 'Save');
    const d = dialog(`Edit ${m.model_name}`, h('div', {}, err, form), [h('button', { onclick: () => d.close() }, 'Cancel'), save]);
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      err.replaceChildren();
      save.disabled = true;
      try {
        const v = formValues(form);
        await api('/model/update', { method: 'POST', body: { model_info: { id: m.model_info.id }, model_name: v.model_name, litellm_params: modelParams(v) } });
        d.close();
        rerender();
      } catch (e) {
        err.replaceChildren(errorBox(e));
      } finally {
        save.disabled = false;
      }
    });
  }

  // The model list (config file and database). With store_model_in_db on (the answer says
  // so) proxy admins add, edit and delete the database's models; the config file's stay
  // read-only.
  async function modelsPage(main, rerender) {
    main.append(h('div', { class: 'toolbar' }, h('h1', { class: 'grow' }, 'Models')));
    const res = await api('/model/info');
    const editable = res.store_model_in_db === true && isProxyAdmin();
    const health = h('div');
    if (isAdmin()) {
      main.querySelector('.toolbar').append(h('button', { onclick: async (e) => {
        e.target.disabled = true;
        health.replaceChildren(h('div', { class: 'notice' }, 'Checking every deployment with a real call…'));
        try {
          const r = await api('/health');
          const bad = (r.unhealthy_endpoints || []).map((x) => `${x.model} (${x.api_base || ''}): ${x.error || 'unhealthy'}`);
          health.replaceChildren(h('div', { class: bad.length ? 'error' : 'notice' },
            `${r.healthy_count} healthy, ${r.unhealthy_count} unhealthy`, bad.length ? h('ul', {}, bad.map((b) => h('li', {}, b))) : null));
        } catch (err) {
          health.replaceChildren(errorBox(err));
        } finally {
          e.target.disabled = false;
        }
      } }, 'Check health'));
      if (res.store_model_in_db !== true) {
        main.append(h('div', { class: 'notice', 'data-testid': 'models-read-only' },
          'These models come from the config file and are read-only. To add, edit and delete models here, set ',
          h('code', {}, 'general_settings.store_model_in_db: true'), ' (or ', h('code', {}, 'STORE_MODEL_IN_DB=True'),
          ') on a gateway with a database, and restart it.'));
      }
    }
    if (editable) {
      main.append(createForm('Add a model', modelFields(null), 'Add model', async (v) => {
        await api('/model/new', { method: 'POST', body: { model_name: v.model_name, litellm_params: modelParams(v) } });
        rerender();
      }));
    }
    main.append(health, h('div', { class: 'panel' }, table([
      { title: 'Model group', cell: (m) => h('b', {}, m.model_name) },
      { title: 'Source', cell: (m) => (m.model_info?.db_model ? h('span', { class: 'badge ok' }, 'database') : h('span', { class: 'badge' }, 'from config')) },
      { title: 'Provider model', cell: (m) => h('code', {}, m.litellm_params?.model || '') },
      { title: 'API base', cell: (m) => m.litellm_params?.api_base || '' },
      // Ids derived from the config are 64 hex digits: the start, the whole id on hover.
      { title: 'Deployment id', cell: (m) => {
        const id = m.model_info?.id || '';
        return h('code', { title: id }, id.length > 16 ? `${id.slice(0, 12)}…` : id);
      } },
      { title: 'Limits', cell: (m) => [m.litellm_params?.rpm ? `${m.litellm_params.rpm} rpm` : null, m.litellm_params?.tpm ? `${m.litellm_params.tpm} tpm` : null].filter(Boolean).join(', ') },
      { title: 'Price in / out (per 1M)', num: true, cell: (m) => {
        // The deployment's own prices (litellm_params) over model_info's.
        const i = m.litellm_params?.input_cost_per_token ?? m.model_info?.input_cost_per_token;
        const o = m.litellm_params?.output_cost_per_token ?? m.model_info?.output_cost_per_token;
        return i != null || o != null ? `${money((i || 0) * 1e6)} / ${money((o || 0) * 1e6)}` : '';
      } },
      { title: '', cell: (m) => (editable && m.model_info?.db_model ? h('div', { class: 'actions' },
        h('button', { class: 'small', onclick: () => editModel(m, rerender) }, 'Edit'),
        h('button', { class: 'small danger', onclick: async () => {
          if (await confirmDialog('Delete model', `Delete ${m.model_name} (${m.model_info.id})? Every instance stops serving this deployment.`)) {
            act(main, () => api('/model/delete', { method: 'POST', body: { id: m.model_info.id } }), rerender);
          }
        } }, 'Delete')) : null) },
    ], res.data, { empty: 'No models configured', testid: 'models-table' })));
  }

  async function logsPage(main) {
    const q = hashQuery();
    const page = Number(q.get('page') || 1);
    const f = {
      api_key: q.get('api_key') || '', user_id: q.get('user_id') || '', request_id: q.get('request_id') || '',
      start_date: q.get('start_date') || '', end_date: q.get('end_date') || '',
    };
    const size = 50;
    main.append(h('h1', {}, ownOnly() ? 'My requests' : 'Spend logs'));
    const query = { ...f, page, page_size: size };
    if (f.start_date || f.end_date) {
      query.start_date = f.start_date || f.end_date;
      query.end_date = f.end_date || f.start_date;
      query.summarize = 'false';
    }
    const rows = await api('/spend/logs', { query });
    main.append(h('div', { class: 'panel' },
      h('form', { class: 'toolbar', onsubmit: (e) => { e.preventDefault(); setQuery('logs', { ...formValues(e.target), page: 1 }); } },
        field('Key (sk-… or hash)', h('input', { name: 'api_key', value: f.api_key })),
        ownOnly() ? null : field('User id', h('input', { name: 'user_id', value: f.user_id })),
        field('Request id', h('input', { name: 'request_id', value: f.request_id })),
        field('From', h('input', { name: 'start_date', type: 'date', value: f.start_date })),
        field('To', h('input', { name: 'end_date', type: 'date', value: f.end_date })),
        h('button', { type: 'submit' }, 'Filter')),
      table([
        { title: 'Time', cell: (r) => when(r.startTime) },
        { title: 'Request', cell: (r) => h('code', {}, r.request_id) },
        { title: 'Model', cell: (r) => r.model_group || r.model },
        { title: 'Key', cell: (r) => r.key_alias || h('code', {}, `${(r.api_key || '').slice(0, 10)}…`) },
        { title: 'User', cell: (r) => r.user || '' },
        { title: 'Team', cell: (r) => r.team_id || '' },
        { title: 'Status', cell: (r) => h('span', { class: `badge ${r.status === 'success' ? 'ok' : 'bad'}` }, r.status_code ? `${r.status} ${r.status_code}` : r.status) },
        { title: 'Tokens', num: true, cell: (r) => count(r.total_tokens) },
        { title: 'Spend', num: true, cell: (r) => money(r.spend) },
        { title: 'Duration', num: true, cell: (r) => (r.request_duration_ms != null ? `${count(r.request_duration_ms)} ms` : '') },
      ], rows, { empty: 'No requests match', testid: 'logs-table' }),
      pager(page, rows.length === size, (p) => setQuery('logs', { ...f, page: p }))));
  }

  // ------------------------------------------------------------------ shell and routing

  const ROUTES = {
    overview: { title: 'Overview', own: 'My spend', render: overviewPage },
    keys: { title: 'Keys', own: 'My keys', render: keysPage },
    teams: { title: 'Teams', own: 'My teams', render: teamsPage },
    team: { render: teamPage, nav: false, under: 'teams' },
    orgs: { title: 'Organisations', render: orgsPage, roles: ['proxy_admin', 'proxy_admin_viewer', 'org_admin'] },
    users: { title: 'Users', render: usersPage, roles: ['proxy_admin', 'proxy_admin_viewer', 'org_admin'] },
    budgets: { title: 'Budgets', render: budgetsPage, roles: ['proxy_admin', 'proxy_admin_viewer'] },
    models: { title: 'Models', render: modelsPage },
    logs: { title: 'Spend logs', own: 'My requests', render: logsPage },
  };

  async function signOut() {
    try { await api('/sso/logout', { method: 'POST' }); } catch { /* the session is gone either way */ }
    state.session = null;
    location.hash = '#/signin';
    render();
  }

  function shell(route) {
    const s = state.session;
    const nav = h('nav', {}, Object.entries(ROUTES)
      .filter(([, r]) => r.nav !== false && (!r.roles || r.roles.includes(s.user_role)))
      .map(([name, r]) => h('a', { href: `#/${name}`, class: name === route || r === ROUTES[route]?.under ? 'active' : '', 'data-nav': name },
        ownOnly() && r.own ? r.own : r.title)));
    for (const a of nav.children) if (ROUTES[route]?.under === a.dataset.nav) a.classList.add('active');
    const main = h('main', { 'data-route': route });
    app.replaceChildren(h('div', { class: 'layout' },
      h('aside', { class: 'side' },
        h('div', { class: 'logo' }, h('img', { src: document.querySelector('link[rel=icon]')?.href || '', alt: '' }), 'Switchyard'),
        nav,
        h('div', { class: 'who' }, 'Signed in as', h('b', { 'data-testid': 'who' }, s.user_email || s.user_id),
          h('span', { 'data-testid': 'role' }, s.user_role),
          h('div', {}, h('button', { class: 'small', 'data-testid': 'signout', onclick: signOut }, 'Sign out')))),
      main));
    return main;
  }

  let renderSeq = 0;
  async function render() {
    const seq = ++renderSeq;
    const path = location.hash.replace(/^#\/?/, '').split('?')[0];
    if (!state.session) {
      try {
        state.session = await api('/sso/session');
        state.csrf = state.session.csrf_token;
      } catch (e) {
        // After a refused sign-in (`?error=signin`) the server's 401 carries the reason, once;
        // the URL itself carries no words, so a link cannot put any on this page.
        const refused = new URLSearchParams(location.search).has('error');
        app.replaceChildren(signInPage(e.status === 401 && !refused ? '' : e.message));
        if (refused) history.replaceState(null, '', location.pathname + location.hash);
        document.title = 'Sign in - Switchyard';
        return;
      }
    }
    const s = state.session;
    if (s.ui_access_mode === 'admin_only' && !ADMIN_ROLES.includes(s.user_role)) {
      app.replaceChildren(h('div', { class: 'signin' }, h('div', { class: 'panel' }, h('h1', {}, 'Switchyard'),
        h('div', { class: 'error', role: 'alert', 'data-testid': 'refused' },
          `ui_access_mode is admin_only: ${s.user_id} has role ${s.user_role}; only proxy_admin and proxy_admin_viewer may use the UI.`),
        h('button', { onclick: signOut }, 'Sign out'))));
      return;
    }
    let route = ROUTES[path] ? path : 'overview';
    if (ROUTES[route].roles && !ROUTES[route].roles.includes(s.user_role)) route = 'overview';
    const main = shell(route);
    document.title = `${ROUTES[route].title || 'Team'} - Switchyard`;
    const loading = h('div', { class: 'muted', 'data-testid': 'loading' }, 'Loading…');
    main.append(loading);
    const rerender = () => { if (seq === renderSeq) render(); };
    try {
      const content = h('div');
      await ROUTES[route].render(content, rerender);
      if (seq !== renderSeq) return;
      main.replaceChildren(content);
      main.dataset.ready = 'true';
    } catch (e) {
      if (seq !== renderSeq) return;
      main.replaceChildren(errorBox(e));
      main.dataset.ready = 'error';
    }
  }

  window.addEventListener('hashchange', render);
  render();
})();
