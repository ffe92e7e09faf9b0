// A small, strict OpenID Connect provider for the sign-in and JWT-auth tests: discovery
// document, /authorize (redirects back with a code), /token (authorization code with PKCE
// S256 and the client secret; issues RS256 ID tokens signed with its own keys), /userinfo
// and /jwks, with key rotation and removal. Every check a real provider makes on the
// client is made here and refused with a 400/401 naming it: client_id, redirect_uri,
// response_type, scope openid, state and nonce present, code single-use and bound to its
// client and redirect_uri, the PKCE verifier, the client secret.
//
// Tests can also sign tokens themselves (mint), spoil the next ID token (tamperNext) and
// have the token endpoint refuse the next exchange with their own error
// (tokenErrorNext: { status, error, error_description }).
// Whoever signs in next is setUser(claims, { userinfo }): `claims` go into the ID token and
// the userinfo answer (a groups claim, e.g. { groups: ['team-a'] } or a nested
// { realm_access: { roles: [...] } }, is just another claim), `userinfo` only into the
// userinfo answer (as providers that keep groups out of the ID token do).
import crypto from 'node:crypto';
import http from 'node:http';

function b64url(buf) {
  return Buffer.from(buf).toString('base64').replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_');
}

function newKey(kid) {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = publicKey.export({ format: 'jwk' });
  return { kid, privateKey, jwk: { ...jwk, kid, use: 'sig', alg: 'RS256' } };
}

export function signJwt(key, claims, header = {}) {
  const h = { alg: 'RS256', typ: 'JWT', kid: key.kid, ...header };
  const input = `${b64url(JSON.stringify(h))}.${b64url(JSON.stringify(claims))}`;
  const sig = crypto.sign('sha256', Buffer.from(input), key.privateKey);
  return `${input}.${b64url(sig)}`;
}

// Options: clientId, clientSecret, redirectUri (accepted; allowRedirectUri adds more), user (the claims
// of whoever signs in next: sub, email, groups, ...), port (0: any).
export async function startFakeOidc({ clientId = 'switchyard-client', clientSecret = 'oidc-client-secret-4711', redirectUri,
  user = { sub: 'user-1', email: 'user1@example.com', preferred_username: 'user1' }, port = 0 } = {}) {
  let keyCounter = 0;
  const keys = [newKey(`k${++keyCounter}`)];  // the last one signs
  const codes = new Map();    // code -> {clientId, redirectUri, challenge, nonce, user, used}
  const accessTokens = new Map();  // token -> user
  const state = {
    user: { ...user },
    userinfoOnly: {},
    redirectUris: new Set(redirectUri ? [redirectUri] : []),
    tamperNext: null,  // 'signature' | 'audience' | 'expired' | (claims) => claims
    tokenErrorNext: null,  // { status, error, error_description }: the next /token answer
    jwksFetches: 0,
    tokenRequests: [],
    errors: [],
  };

  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      try {
        handle(req, res, body);
      } catch (e) {
        res.writeHead(500, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: 'server_error', error_description: String(e) }));
      }
    });
  });
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${server.address().port}`;

  function refuse(res, status, error, description) {
    state.errors.push(`${error}: ${description}`);
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error, error_description: description }));
  }

  function idToken(entry) {
    const now = Math.floor(Date.now() / 1000);
    let claims = { iss: url, aud: clientId, iat: now, exp: now + 600, nonce: entry.nonce, ...entry.user };
    let signer = keys[keys.length - 1];
    const tamper = state.tamperNext;
    state.tamperNext = null;
    if (tamper === 'audience') claims.aud = 'another-client';
    if (tamper === 'expired') { claims.iat = now - 7200; claims.exp = now - 3600; }
    if (typeof tamper === 'function') claims = tamper(claims);
    if (tamper === 'signature') signer = { ...newKey(signer.kid) };  // same kid, another key
    return signJwt(signer, claims);
  }

  function handle(req, res, body) {
    const u = new URL(req.url, url);
    if (req.method === 'GET' && u.pathname === '/.well-known/openid-configuration') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({
        issuer: url,
        authorization_endpoint: `${url}/authorize`,
        token_endpoint: `${url}/token`,
        userinfo_endpoint: `${url}/userinfo`,
        jwks_uri: `${url}/jwks`,
        response_types_supported: ['code'],
        subject_types_supported: ['public'],
        id_token_signing_alg_values_supported: ['RS256'],
        code_challenge_methods_supported: ['S256'],
      }));
      return;
    }
    if (req.method === 'GET' && u.pathname === '/jwks') {
      state.jwksFetches += 1;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ keys: keys.map((k) => k.jwk) }));
      return;
    }
    if (req.method === 'GET' && u.pathname === '/authorize') {
      const q = u.searchParams;
      if (q.get('client_id') !== clientId) return refuse(res, 400, 'unauthorized_client', 'unknown client_id');
      if (!state.redirectUris.has(q.get('redirect_uri'))) {
        return refuse(res, 400, 'invalid_request', `redirect_uri ${q.get('redirect_uri')} is not registered`);
      }
      if (q.get('response_type') !== 'code') return refuse(res, 400, 'unsupported_response_type', 'response_type must be code');
      if (!(q.get('scope') ?? '').split(' ').includes('openid')) return refuse(res, 400, 'invalid_scope', 'scope must include openid');
      if (!q.get('state')) return refuse(res, 400, 'invalid_request', 'state is required');
      if (!q.get('nonce')) return refuse(res, 400, 'invalid_request', 'nonce is required');
      if (q.get('code_challenge_method') !== 'S256' || !/^[A-Za-z0-9_-]{43}$/.test(q.get('code_challenge') ?? '')) {
        return refuse(res, 400, 'invalid_request', 'PKCE code_challenge (S256) is required');
      }
      const code = b64url(crypto.randomBytes(24));
      codes.set(code, {
        clientId, redirectUri: q.get('redirect_uri'), challenge: q.get('code_challenge'),
        nonce: q.get('nonce'), user: { ...state.user }, userinfoOnly: { ...state.userinfoOnly }, used: false,
      });
      const back = new URL(q.get('redirect_uri'));
      back.searchParams.set('code', code);
      back.searchParams.set('state', q.get('state'));
      res.writeHead(302, { location: back.toString() });
      res.end();
      return;
    }
    if (req.method === 'POST' && u.pathname === '/token') {
      if (!(req.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded')) {
        return refuse(res, 400, 'invalid_request', 'the token request must be form-encoded');
      }
      const f = new URLSearchParams(body);
      state.tokenRequests.push(Object.fromEntries(f));
      if (state.tokenErrorNext) {
        const { status, error, error_description: description } = state.tokenErrorNext;
        state.tokenErrorNext = null;
        return refuse(res, status, error, description);
      }
      let id = f.get('client_id');
      let secret = f.get('client_secret');
      const basic = req.headers.authorization ?? '';
      if (basic.startsWith('Basic ')) {
        const [a, b] = Buffer.from(basic.slice(6), 'base64').toString().split(':');
        id = decodeURIComponent(a);
        secret = decodeURIComponent(b);
      }
      if (id !== clientId || secret !== clientSecret) return refuse(res, 401, 'invalid_client', 'client authentication failed');
      if (f.get('grant_type') !== 'authorization_code') return refuse(res, 400, 'unsupported_grant_type', 'authorization_code only');
      const entry = codes.get(f.get('code') ?? '');
      if (!entry || entry.used) return refuse(res, 400, 'invalid_grant', 'unknown or used code');
      entry.used = true;
      if (f.get('redirect_uri') !== entry.redirectUri) return refuse(res, 400, 'invalid_grant', 'redirect_uri differs from the authorization request');
      const verifier = f.get('code_verifier') ?? '';
      if (!/^[A-Za-z0-9._~-]{43,128}$/.test(verifier) ||
          b64url(crypto.createHash('sha256').update(verifier).digest()) !== entry.challenge) {
        return refuse(res, 400, 'invalid_grant', 'PKCE verification failed');
      }
      const access = b64url(crypto.randomBytes(24));
      accessTokens.set(access, { ...entry.user, ...entry.userinfoOnly });
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(JSON.stringify({ access_token: access, token_type: 'Bearer', expires_in: 3600, id_token: idToken(entry) }));
      return;
    }
    if (req.method === 'GET' && u.pathname === '/userinfo') {
      const t = (req.headers.authorization ?? '').replace(/^Bearer /, '');
      const who = accessTokens.get(t);
      if (!who) return refuse(res, 401, 'invalid_token', 'unknown access token');
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(who));
      return;
    }
    refuse(res, 404, 'not_found', `${req.method} ${u.pathname}`);
  }

  return {
    url,
    issuer: url,
    clientId,
    clientSecret,
    state,
    get keys() { return keys.map((k) => k.kid); },
    setUser(claims, { userinfo = {} } = {}) { state.user = { ...claims }; state.userinfoOnly = { ...userinfo }; },
    allowRedirectUri(uri) { state.redirectUris.add(uri); },
    // A token signed by the current key (or the key `kid`), e.g. for JWT auth of API calls.
    mint(claims, { kid } = {}) {
      const now = Math.floor(Date.now() / 1000);
      const key = kid ? keys.find((k) => k.kid === kid) : keys[keys.length - 1];
      if (!key) throw new Error(`no key ${kid}`);
      return signJwt(key, { iss: url, aud: clientId, iat: now, exp: now + 600, ...claims });
    },
    // A new signing key (published next to the old ones); returns its kid.
    rotate() {
      const k = newKey(`k${++keyCounter}`);
      keys.push(k);
      return k.kid;
    },
    // Takes `kid` out of the JWKS (a revoked key). Its private half is kept for mintWith.
    removeKey(kid) {
      const i = keys.findIndex((k) => k.kid === kid);
      if (i < 0) throw new Error(`no key ${kid}`);
      const [k] = keys.splice(i, 1);
      this.removed.push(k);
    },
    removed: [],
    mintWithRemoved(kid, claims) {
      const k = this.removed.find((r) => r.kid === kid);
      const now = Math.floor(Date.now() / 1000);
      return signJwt(k, { iss: url, aud: clientId, iat: now, exp: now + 600, ...claims });
    },
    close() {
      return new Promise((resolve) => { server.closeAllConnections?.(); server.close(() => resolve()); });
    },
  };
}
