// Test OpenID Provider for Gatehouse, built on the real `oidc-provider` (panva) library.
//
//   node tests/idp/server.mjs /path/to/config.json
//
// The JSON config is written by tests/idp/fixture.py; see that module for the schema.  Summary:
//   issuer            "http://127.0.0.1:PORT" or "http://127.0.0.1:PORT/some/prefix"
//   host, port        where to listen (default 127.0.0.1 and the issuer's port)
//   admin_token       value required in the X-Admin-Token header of /__admin/* requests
//   clients           oidc-provider client metadata objects (snake_case)
//   users             [{sub, username, password, email, email_verified, name, groups, disabled}]
//   ttl               {IdToken, AccessToken, RefreshToken, Session, DeviceCode, Grant, ...} seconds
//   claims_in_id_token  true: scope claims also go into the ID token (conformIdTokenClaims=false)
//   groups_in_profile true: the `groups` claim is also released with the `profile` scope
//   algs              signing algorithms to generate keys for, first is the default ("RS256")
//   jwks              optional {keys: [private JWKs]} to use instead of generating keys
//   state_file        optional path; signing keys, cookie keys and users are persisted there so a
//                     restarted server (same config) keeps its keys. Sessions/tokens are not kept.
//   id_token_on_refresh false: refresh responses carry no new ID token (allowed by OIDC Core 12.2,
//                     as some IdPs do); default true
//   refresh_expires_with_session  null (default): tokens end with the IdP session unless
//                     offline_access was granted; true: always; false: never
//   iss_on_errors     false: error redirects (e.g. the user pressed Cancel) carry no `iss`
//                     although discovery advertises it, as some IdPs do; default true
//
// Everything is logged to stderr. Admin endpoints live under /__admin/ (never under the issuer
// path prefix).

import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';

import Provider from 'oidc-provider';

const log = (...args) => {
  process.stderr.write(`[idp ${new Date().toISOString()}] ${args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join(' ')}\n`);
};

log(`starting: node ${process.version}, pid ${process.pid}`);
process.on('uncaughtException', (err) => log('uncaughtException', String(err?.stack || err)));
process.on('unhandledRejection', (err) => log('unhandledRejection', String(err?.stack || err)));

if (!process.argv[2]) {
  process.stderr.write('usage: node server.mjs CONFIG.json\n');
  process.exit(2);
}

const config = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const issuer = String(config.issuer).replace(/\/+$/, '');
const issuerUrl = new URL(issuer);
const prefix = issuerUrl.pathname === '/' ? '' : issuerUrl.pathname.replace(/\/+$/, '');
const listenHost = config.host || issuerUrl.hostname;
const listenPort = Number(config.port || issuerUrl.port);
const adminToken = config.admin_token || '';
const algs = Array.isArray(config.algs) && config.algs.length ? config.algs : ['RS256'];
const claimsInIdToken = config.claims_in_id_token !== false;
const groupsInProfile = config.groups_in_profile !== false;
const idTokenOnRefresh = config.id_token_on_refresh !== false;
const issOnErrors = config.iss_on_errors !== false;
// null/undefined: oidc-provider's default -- tokens die with the IdP session (logout, disable)
// unless the offline_access scope was granted (needs prompt=consent); true/false: always/never.
const refreshExpiresWithSession = typeof config.refresh_expires_with_session === 'boolean'
  ? config.refresh_expires_with_session : null;

const TTL_DEFAULTS = {
  AccessToken: 3600,
  AuthorizationCode: 60,
  ClientCredentials: 600,
  DeviceCode: 600,
  Grant: 14 * 24 * 3600,
  IdToken: 3600,
  Interaction: 3600,
  RefreshToken: 14 * 24 * 3600,
  Session: 14 * 24 * 3600,
  BackchannelAuthenticationRequest: 600,
};
const ttl = { ...TTL_DEFAULTS };
for (const [k, v] of Object.entries(config.ttl || {})) {
  if (v !== null && v !== undefined) ttl[k] = Number(v);
}

// ---------------------------------------------------------------------------------------------
// Keys & persistent state
// ---------------------------------------------------------------------------------------------

function generateKey(alg) {
  let pair;
  if (/^(RS|PS)\d+$/.test(alg)) {
    pair = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  } else if (alg === 'ES256') {
    pair = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  } else if (alg === 'ES384') {
    pair = crypto.generateKeyPairSync('ec', { namedCurve: 'P-384' });
  } else if (alg === 'ES512') {
    pair = crypto.generateKeyPairSync('ec', { namedCurve: 'P-521' });
  } else if (alg === 'EdDSA' || alg === 'Ed25519') {
    pair = crypto.generateKeyPairSync('ed25519');
  } else {
    throw new Error(`unsupported signing alg ${alg}`);
  }
  const jwk = pair.privateKey.export({ format: 'jwk' });
  jwk.kid = `${alg.toLowerCase()}-${Date.now().toString(36)}-${crypto.randomBytes(4).toString('hex')}`;
  jwk.alg = alg;
  jwk.use = 'sig';
  return jwk;
}

function loadState() {
  if (config.state_file && fs.existsSync(config.state_file)) {
    try {
      return JSON.parse(fs.readFileSync(config.state_file, 'utf8'));
    } catch (err) {
      log('could not read state file, starting fresh:', String(err));
    }
  }
  return undefined;
}

const persisted = loadState();
let signingKeys = persisted?.keys
  || (config.jwks?.keys?.length ? config.jwks.keys : algs.map(generateKey));
const cookieKeys = persisted?.cookie_keys || config.cookie_keys
  || [crypto.randomBytes(32).toString('hex')];
const users = new Map();
for (const u of (persisted?.users || config.users || [])) {
  users.set(String(u.sub), { ...u, sub: String(u.sub) });
}
let clients = structuredClone(persisted?.clients || config.clients || []);

function saveState() {
  if (!config.state_file) return;
  const tmp = `${config.state_file}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify({
    keys: signingKeys, cookie_keys: cookieKeys, users: [...users.values()], clients,
  }));
  fs.renameSync(tmp, config.state_file);
}
saveState();

// ---------------------------------------------------------------------------------------------
// In-memory adapter shared by every Provider instance (survives key rotation swaps)
// ---------------------------------------------------------------------------------------------

const store = new Map(); // `${model}:${id}` -> { payload, exp (ms epoch | undefined) }
const GRACE_MS = 60_000; // keep expired entries a while so the provider can say "expired"

function storeGet(key) {
  const entry = store.get(key);
  if (!entry) return undefined;
  if (entry.exp !== undefined && entry.exp + GRACE_MS <= Date.now()) {
    store.delete(key);
    return undefined;
  }
  return entry.payload;
}

function* storeEntries(model) {
  for (const key of [...store.keys()]) {
    if (model && !key.startsWith(`${model}:`)) continue;
    const payload = storeGet(key);
    if (payload !== undefined) yield [key, payload];
  }
}

class SharedMemoryAdapter {
  constructor(model) {
    this.model = model;
  }

  key(id) {
    return `${this.model}:${id}`;
  }

  async upsert(id, payload, expiresIn) {
    store.set(this.key(id), {
      payload,
      exp: typeof expiresIn === 'number' ? Date.now() + expiresIn * 1000 : undefined,
    });
  }

  async find(id) {
    return storeGet(this.key(id));
  }

  async findByUid(uid) {
    for (const [, payload] of storeEntries(this.model)) {
      if (payload.uid === uid) return payload;
    }
    return undefined;
  }

  async findByUserCode(userCode) {
    for (const [, payload] of storeEntries(this.model)) {
      if (payload.userCode === userCode) return payload;
    }
    return undefined;
  }

  async consume(id) {
    const payload = storeGet(this.key(id));
    if (payload) payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) {
    store.delete(this.key(id));
  }

  async revokeByGrantId(grantId) {
    // only this model's entries (oidc-provider calls it per token model): an Interaction that
    // carries the grant id must survive, e.g. while another account signs in over an IdP
    // session whose grant is being revoked ("use another account")
    for (const [key, payload] of storeEntries(this.model)) {
      if (payload.grantId === grantId) store.delete(key);
    }
  }
}

function revokeEverythingFor(sub) {
  let grants = 0;
  let sessions = 0;
  for (const [key, payload] of storeEntries('Grant')) {
    if (payload.accountId === sub) {
      const grantId = key.slice('Grant:'.length);
      for (const [k2, p2] of storeEntries()) {
        if (p2.grantId === grantId) store.delete(k2);
      }
      store.delete(key);
      grants += 1;
    }
  }
  for (const [key, payload] of storeEntries()) {
    if (payload.accountId === sub) {
      if (key.startsWith('Session:')) sessions += 1;
      store.delete(key);
    }
  }
  return { grants, sessions };
}

function listSessions() {
  const out = [];
  for (const [key, payload] of storeEntries('Session')) {
    out.push({
      id: key.slice('Session:'.length),
      uid: payload.uid,
      sub: payload.accountId,
      login_ts: payload.loginTs,
      exp: payload.exp,
      clients: Object.fromEntries(Object.entries(payload.authorizations || {}).map(
        ([clientId, a]) => [clientId, { sid: a.sid, grant_id: a.grantId }],
      )),
    });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// HTML
// ---------------------------------------------------------------------------------------------

const esc = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => ({
  '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
}[c]));

function page(title, body, marker) {
  return `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>${esc(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font-family:sans-serif;max-width:28em;margin:2em auto}label,input,button{display:block;margin:.4em 0}
.error{color:#b00020}</style></head>
<body data-page="${esc(marker)}"><h1 id="title">${esc(title)}</h1>
${body}
</body></html>`;
}

function loginPage({ uid, clientId, loginHint, error }) {
  const action = `${prefix}/interaction/${encodeURIComponent(uid)}/login`;
  return page('Sign in to Test IdP', `
<p>Client: <code id="client-id">${esc(clientId)}</code></p>
${error ? `<p id="error" class="error">${esc(error)}</p>` : ''}
<form id="login-form" method="post" action="${esc(action)}" autocomplete="off">
  <label for="username">Username</label>
  <input id="username" name="username" type="text" value="${esc(loginHint || '')}" autofocus required>
  <label for="password">Password</label>
  <input id="password" name="password" type="password" required>
  <button id="submit" type="submit">Sign in</button>
  <button id="cancel" type="submit" name="cancel" value="yes" formnovalidate>Cancel</button>
</form>`, 'login');
}

// ---------------------------------------------------------------------------------------------
// Provider configuration
// ---------------------------------------------------------------------------------------------

function findUserByUsername(username) {
  for (const u of users.values()) {
    if (u.username === username || u.sub === username) return u;
  }
  return undefined;
}

async function findAccount(ctx, sub) {
  const user = users.get(String(sub));
  if (!user || user.disabled) return undefined;
  return {
    accountId: user.sub,
    async claims() {
      const claims = { sub: user.sub };
      if (user.name !== undefined) claims.name = user.name;
      if (user.username !== undefined) claims.preferred_username = user.username;
      if (user.email !== undefined) claims.email = user.email;
      if (user.email_verified !== undefined) claims.email_verified = Boolean(user.email_verified);
      if (user.groups !== undefined) claims.groups = user.groups;
      Object.assign(claims, user.extra_claims || {});
      return claims;
    },
  };
}

function buildConfiguration() {
  const extraClaimNames = new Set();
  for (const u of users.values()) Object.keys(u.extra_claims || {}).forEach((k) => extraClaimNames.add(k));
  return {
    clients: structuredClone(clients),
    adapter: SharedMemoryAdapter,
    findAccount,
    jwks: { keys: structuredClone(signingKeys) },
    cookies: { keys: cookieKeys },
    claims: {
      openid: ['sub'],
      profile: ['name', 'preferred_username', ...(groupsInProfile ? ['groups'] : [])],
      email: ['email', 'email_verified'],
      groups: ['groups'],
      ...(extraClaimNames.size ? { extra: [...extraClaimNames] } : {}),
    },
    scopes: ['openid', 'offline_access', 'profile', 'email', 'groups'],
    conformIdTokenClaims: !claimsInIdToken,
    pkce: { required: () => true },
    clientBasedCORS: () => true,
    // Refresh tokens for every client allowed to use the refresh_token grant, no offline_access
    // or prompt=consent dance needed; they rotate on every use.
    issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
    rotateRefreshToken: () => true,
    expiresWithSession: async (ctx, token) => (refreshExpiresWithSession === null
      ? !token.scopes.has('offline_access') : refreshExpiresWithSession),
    ttl: { ...ttl },
    // oidc-provider protects outgoing requests (back-channel logout) against SSRF by refusing
    // special-use addresses such as 127.0.0.1 -- our relying parties live exactly there.
    fetch: (url, options) => {
      const opts = { ...options };
      delete opts.dispatcher;
      return globalThis.fetch(url, opts);
    },
    interactions: {
      url: async (ctx, interaction) => `${prefix}/interaction/${interaction.uid}`,
    },
    features: {
      devInteractions: { enabled: false },
      claimsParameter: { enabled: true },
      revocation: { enabled: true },
      introspection: { enabled: true },
      userinfo: { enabled: true },
      backchannelLogout: { enabled: true },
      rpInitiatedLogout: {
        enabled: true,
        async logoutSource(ctx, form) {
          // `form` is <form id="op.logoutForm" method="post" action="..."> with a hidden xsrf
          // input; put the buttons inside it so a plain HTTP client can submit it too.
          const buttons = '<button id="logout" type="submit" name="logout" value="yes">Yes, sign me out</button>'
            + '<button id="logout-cancel" type="submit">No, stay signed in</button>';
          ctx.body = page('Sign out?', form.replace('</form>', `${buttons}</form>`), 'logout');
        },
        async postLogoutSuccessSource(ctx) {
          const display = ctx.oidc.client?.clientName || ctx.oidc.client?.clientId || '';
          ctx.body = page('Signed out', `<p id="logout-success">You are signed out ${esc(display)}.</p>`, 'logout-success');
        },
      },
      deviceFlow: {
        enabled: true,
        charset: 'base-20',
        mask: '****-****',
        async userCodeInputSource(ctx, form, out, err) {
          let msg = '<p id="message">Enter the code displayed on your device</p>';
          if (err) {
            msg = `<p id="error" class="error">${esc(err.userCode || err.name === 'NoCodeError'
              ? 'The code you entered is incorrect. Try again'
              : err.name === 'AbortedError' ? 'The sign-in request was interrupted'
                : `There was an error processing your request (${err.name || err.message})`)}</p>`;
          }
          const withIds = form
            .replace('name="user_code"', 'id="user_code" name="user_code"')
            .replace('</form>', '<button id="submit" type="submit">Continue</button></form>');
          ctx.body = page('Device sign-in', `${msg}${withIds}`, 'device-input');
        },
        async userCodeConfirmSource(ctx, form, client, deviceInfo, userCode) {
          const display = client.clientName || client.clientId;
          const buttons = '<button id="confirm" type="submit">Continue</button>'
            + '<button id="abort" type="submit" name="abort" value="yes">Abort</button>';
          ctx.body = page('Confirm device', `<p>Client <code id="client-id">${esc(display)}</code> shows the code <code id="user-code">${esc(userCode)}</code>.</p>${form.replace('</form>', `${buttons}</form>`)}`, 'device-confirm');
        },
        async successSource(ctx) {
          const display = ctx.oidc.client?.clientName || ctx.oidc.client?.clientId || '';
          ctx.body = page('Sign-in Success', `<p id="device-success">Your sign-in with ${esc(display)} was successful, you can now close this page.</p>`, 'device-success');
        },
      },
    },
    async renderError(ctx, out) {
      ctx.type = 'html';
      ctx.body = page('Error', `<p id="error" class="error" data-error="${esc(out.error)}">${esc(out.error)}: ${esc(out.error_description || '')}</p>`, 'error');
    },
  };
}

function buildProvider() {
  const provider = new Provider(issuer, buildConfiguration());
  if (!idTokenOnRefresh) {
    provider.use(async (ctx, next) => {
      await next();
      if (ctx.oidc?.route === 'token' && ctx.oidc.params?.grant_type === 'refresh_token'
        && ctx.status === 200 && ctx.body && typeof ctx.body === 'object') {
        delete ctx.body.id_token;
      }
    });
  }
  if (!issOnErrors) {
    // RFC 9207 says an IdP that advertises `iss` MUST send it on every authorization response;
    // some send it only with a code. Mimic them: drop `iss` from error redirects.
    provider.use(async (ctx, next) => {
      await next();
      const location = ctx.response.get('location');
      if (!location || !/[?&]error=/.test(location)) return;
      const url = new URL(location);
      if (url.searchParams.has('error') && url.searchParams.has('iss')) {
        url.searchParams.delete('iss');
        ctx.response.set('location', url.toString());
      }
    });
  }
  provider.on('server_error', (ctx, err) => log('server_error', String(err?.stack || err)));
  provider.on('grant.error', (ctx, err) => log('grant.error', err.error || '', err.error_description || String(err)));
  provider.on('authorization.error', (ctx, err) => log('authorization.error', err.error || '', err.error_description || String(err)));
  provider.on('end_session.error', (ctx, err) => log('end_session.error', err.error || '', err.error_description || String(err)));
  provider.on('backchannel.error', (ctx, err, client) => log('backchannel.error', client.clientId, String(err)));
  provider.on('backchannel.success', (ctx, client, accountId, sid) => log('backchannel.success', client.clientId, accountId, sid || ''));
  return { provider, handler: provider.callback() };
}

let current = buildProvider();

function swapProvider() {
  current = buildProvider(); // adapter storage is module level: sessions/grants/tokens survive
}

// ---------------------------------------------------------------------------------------------
// HTTP helpers
// ---------------------------------------------------------------------------------------------

async function readBody(req, limit = 1 << 20) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > limit) throw Object.assign(new Error('body too large'), { status: 413 });
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function send(res, status, body, type = 'text/html; charset=utf-8', headers = {}) {
  if (res.headersSent) return;
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store', ...headers });
  res.end(body);
}

function sendJson(res, status, obj) {
  send(res, status, JSON.stringify(obj), 'application/json');
}

function redirect(res, location) {
  if (res.headersSent) return;
  res.writeHead(303, { location, 'cache-control': 'no-store' });
  res.end();
}

// ---------------------------------------------------------------------------------------------
// Interactions (login + auto-consent)
// ---------------------------------------------------------------------------------------------

async function autoConsent(provider, details) {
  const { prompt: { details: pd }, params, session } = details;
  let { grantId } = details;
  const grant = grantId
    ? await provider.Grant.find(grantId)
    : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  if (pd.missingOIDCScope) grant.addOIDCScope(pd.missingOIDCScope.join(' '));
  if (pd.missingOIDCClaims) grant.addOIDCClaims(pd.missingOIDCClaims);
  if (pd.missingResourceScopes) {
    for (const [indicator, scopes] of Object.entries(pd.missingResourceScopes)) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
  }
  grantId = await grant.save();
  return details.grantId ? {} : { grantId };
}

async function handleInteraction(req, res, rest) {
  const { provider } = current;
  const [uid, action] = rest.split('/');
  let details;
  try {
    details = await provider.interactionDetails(req, res);
  } catch (err) {
    log('interaction lookup failed', String(err));
    send(res, 400, page('Error', `<p id="error" class="error" data-error="invalid_request">invalid_request: ${esc(err.error_description || err.message)}</p>`, 'error'));
    return;
  }
  if (details.uid !== uid) {
    send(res, 400, page('Error', '<p id="error" class="error" data-error="invalid_request">interaction mismatch</p>', 'error'));
    return;
  }
  const { prompt, params } = details;

  if (prompt.name === 'login') {
    if (req.method === 'POST' && action === 'login') {
      const form = new URLSearchParams(await readBody(req));
      if (form.get('cancel')) {
        log('login cancelled', params.client_id);
        const location = await provider.interactionResult(req, res, {
          error: 'access_denied', error_description: 'End-User cancelled the sign-in',
        }, { mergeWithLastSubmission: false });
        redirect(res, location);
        return;
      }
      const username = form.get('username') || '';
      const password = form.get('password') || '';
      const user = findUserByUsername(username);
      let error;
      if (!user || user.password !== password) error = 'Invalid username or password.';
      else if (user.disabled) error = 'This account is disabled.';
      if (error) {
        log('login failed', username, error);
        send(res, 401, loginPage({ uid, clientId: params.client_id, loginHint: username, error }));
        return;
      }
      log('login ok', user.sub, params.client_id);
      const location = await provider.interactionResult(req, res, {
        login: { accountId: user.sub, amr: ['pwd'], remember: true },
      }, { mergeWithLastSubmission: false });
      redirect(res, location);
      return;
    }
    send(res, 200, loginPage({ uid, clientId: params.client_id, loginHint: params.login_hint }));
    return;
  }

  if (prompt.name === 'consent') {
    const consent = await autoConsent(provider, details);
    const location = await provider.interactionResult(req, res, { consent }, { mergeWithLastSubmission: true });
    redirect(res, location);
    return;
  }

  send(res, 400, page('Error', `<p id="error" class="error" data-error="invalid_request">unsupported prompt ${esc(prompt.name)}</p>`, 'error'));
}

// ---------------------------------------------------------------------------------------------
// Admin API
// ---------------------------------------------------------------------------------------------

function publicJwks() {
  return signingKeys.map((k) => {
    const pub = crypto.createPublicKey({ key: k, format: 'jwk' }).export({ format: 'jwk' });
    return { ...pub, kid: k.kid, alg: k.alg, use: 'sig' };
  });
}

async function handleAdmin(req, res, url) {
  const given = req.headers['x-admin-token'] || '';
  if (!adminToken || given.length !== adminToken.length
    || !crypto.timingSafeEqual(Buffer.from(given), Buffer.from(adminToken))) {
    sendJson(res, 401, { error: 'unauthorized', error_description: 'missing or wrong X-Admin-Token' });
    return;
  }
  const raw = req.method === 'POST' ? await readBody(req) : '';
  let body = {};
  if (raw.trim()) {
    try {
      body = JSON.parse(raw);
    } catch {
      sendJson(res, 400, { error: 'invalid_json' });
      return;
    }
  }
  const parts = url.pathname.split('/').filter(Boolean).slice(1).map(decodeURIComponent);
  const route = `${req.method} ${parts[0] || ''}`;

  if (route === 'GET health') {
    sendJson(res, 200, {
      ok: true, issuer, pid: process.pid, launch_id: process.env.TEST_IDP_LAUNCH_ID || null,
      kids: signingKeys.map((k) => k.kid),
    });
    return;
  }
  if (route === 'GET keys') {
    sendJson(res, 200, { keys: publicJwks() });
    return;
  }
  if (route === 'POST rotate-keys') {
    const keepOld = body.keep_old !== false;
    const rotateAlgs = Array.isArray(body.algs) && body.algs.length ? body.algs : algs;
    const fresh = rotateAlgs.map(generateKey);
    signingKeys = keepOld ? [...fresh, ...signingKeys] : fresh;
    saveState();
    swapProvider();
    log('rotated keys', fresh.map((k) => k.kid), 'keep_old', keepOld);
    sendJson(res, 200, { kid: fresh[0].kid, kids: fresh.map((k) => k.kid), jwks_kids: signingKeys.map((k) => k.kid) });
    return;
  }
  if (route === 'GET users' && parts.length === 1) {
    sendJson(res, 200, { users: [...users.values()] });
    return;
  }
  if (route === 'POST users' && parts.length === 1) {
    if (!body.sub) {
      sendJson(res, 400, { error: 'invalid_request', error_description: 'sub is required' });
      return;
    }
    const sub = String(body.sub);
    const merged = { ...(users.get(sub) || {}), ...body, sub };
    users.set(sub, merged);
    saveState();
    sendJson(res, 200, { user: merged });
    return;
  }
  if (route === 'POST users' && parts.length === 3) {
    const sub = parts[1];
    const user = users.get(sub);
    if (!user) {
      sendJson(res, 404, { error: 'not_found', error_description: `no user ${sub}` });
      return;
    }
    const op = parts[2];
    if (op === 'disable') {
      user.disabled = true;
      const revoked = revokeEverythingFor(sub);
      saveState();
      log('disabled user', sub, revoked);
      sendJson(res, 200, { sub, disabled: true, revoked });
      return;
    }
    if (op === 'enable') {
      user.disabled = false;
      saveState();
      sendJson(res, 200, { sub, disabled: false });
      return;
    }
    if (op === 'logout') {
      const revoked = revokeEverythingFor(sub);
      sendJson(res, 200, { sub, revoked });
      return;
    }
  }
  if (route === 'GET sessions') {
    sendJson(res, 200, { sessions: listSessions() });
    return;
  }
  if (route === 'POST clients') {
    if (!body.client_id) {
      sendJson(res, 400, { error: 'invalid_request', error_description: 'client_id is required' });
      return;
    }
    const previous = clients;
    clients = [...clients.filter((c) => c.client_id !== body.client_id), body];
    try {
      swapProvider();
    } catch (err) {
      clients = previous;
      sendJson(res, 400, { error: 'invalid_client_metadata', error_description: String(err.message || err) });
      return;
    }
    saveState();
    sendJson(res, 200, { client: body });
    return;
  }
  if (route === 'POST backchannel-logout') {
    const { provider } = current;
    const clientId = body.client_id;
    const sub = body.sub;
    if (!clientId || !sub) {
      sendJson(res, 400, { error: 'invalid_request', error_description: 'client_id and sub are required' });
      return;
    }
    const client = await provider.Client.find(String(clientId));
    if (!client) {
      sendJson(res, 404, { error: 'invalid_client', error_description: `no client ${clientId}` });
      return;
    }
    if (!client.backchannelLogoutUri) {
      sendJson(res, 400, { error: 'invalid_client', error_description: `${clientId} has no backchannel_logout_uri` });
      return;
    }
    let { sid } = body;
    if (!sid) {
      const s = listSessions().find((x) => x.sub === sub && x.clients[clientId]);
      sid = s?.clients[clientId]?.sid;
    }
    if (!sid && client.backchannelLogoutSessionRequired) {
      sid = crypto.randomUUID(); // no known session: still send a well-formed token
    }
    try {
      await client.backchannelLogout(String(sub), sid);
      log('backchannel logout delivered', clientId, sub, sid || '');
      if (body.revoke) revokeEverythingFor(String(sub));
      sendJson(res, 200, { delivered: true, client_id: clientId, sub, sid: sid ?? null, uri: client.backchannelLogoutUri });
    } catch (err) {
      log('backchannel logout failed', clientId, String(err));
      sendJson(res, 502, {
        delivered: false,
        client_id: clientId,
        sub,
        sid: sid ?? null,
        uri: client.backchannelLogoutUri,
        status: err.response?.status ?? null,
        error: String(err.message || err),
      });
    }
    return;
  }
  sendJson(res, 404, { error: 'not_found', error_description: `${req.method} ${url.pathname}` });
}

// ---------------------------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------------------------

const server = http.createServer(async (req, res) => {
  const started = Date.now();
  res.on('finish', () => {
    if (config.quiet_requests) return;
    log(`${req.method} ${req.originalUrl || req.url} -> ${res.statusCode} (${Date.now() - started}ms)`);
  });
  try {
    const url = new URL(req.url, issuerUrl.origin);
    if (url.pathname === '/__admin' || url.pathname.startsWith('/__admin/')) {
      await handleAdmin(req, res, url);
      return;
    }
    if (prefix) {
      if (url.pathname !== prefix && !url.pathname.startsWith(`${prefix}/`)) {
        send(res, 404, page('Not found', '<p id="error" class="error">not found</p>', 'error'));
        return;
      }
    }
    const rest = url.pathname.slice(prefix.length);
    if (rest.startsWith('/interaction/')) {
      await handleInteraction(req, res, rest.slice('/interaction/'.length));
      return;
    }
    if (prefix) {
      // what express' app.use(prefix, ...) does; oidc-provider derives its mount path from it
      req.originalUrl = req.url;
      req.url = req.url.slice(prefix.length) || '/';
    }
    await current.handler(req, res);
  } catch (err) {
    log('request failed', req.method, req.url, String(err?.stack || err));
    if (!res.headersSent) {
      sendJson(res, err.status && err.status < 500 ? err.status : 500, { error: 'server_error', error_description: String(err.message || err) });
    } else {
      res.end();
    }
  }
});

server.on('error', (err) => {
  log('server error, exiting:', String(err?.stack || err));
  process.exit(1);
});

server.on('clientError', (err, socket) => {
  socket.end('HTTP/1.1 400 Bad Request\r\n\r\n');
});

server.listen(listenPort, listenHost, () => {
  log(`listening on http://${listenHost}:${listenPort}, issuer ${issuer}, kids ${signingKeys.map((k) => k.kid).join(',')}`);
});

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    log(`${sig}, shutting down`);
    server.close();
    server.closeAllConnections?.();
    setTimeout(() => process.exit(0), 200).unref();
  });
}
